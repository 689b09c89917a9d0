//! The `postwake` scenario: waking another thread.
//!
//! * Latency: two threads ping-pong through two channels (A signals B, B signals A); each
//!   round trip is two post→wake hops. We report the round trip's p50/p99.
//! * Throughput: one thread signals N times as fast as it can, another consumes in batches.
//!   socknotify queues every packet (with its payload, checked in FIFO order); eventfd counts
//!   (exact); mio's `Waker` and polling's `notify()` coalesce, so for them "posts/s" is how fast
//!   the poster can signal while a consumer keeps waking.
//!
//! Mechanisms: baseline = a raw eventfd with a blocking `read`; epoll = the eventfd inside an
//! epoll set (`epoll_wait` then `read`); mio = `Waker`; polling = `notify()`;
//! socknotify = `post` / `dequeue` on a [`CompletionPort`].

use crate::ready::Mech;
use crate::util::{ctx, percentile, Res, WAIT};
use socknotify::{Completion, CompletionPort};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The signalling side of one channel.
trait Sig: Send {
    fn signal(&self, seq: u64) -> Res<()>;
}

/// The waiting side of one channel.
trait Wait: Send {
    /// Ping-pong: waits for exactly the signal `seq`.
    fn wait_one(&mut self, seq: u64) -> Res<()>;
    /// Throughput: waits for whatever arrives; returns how many signals it accounts for
    /// (0 when the mechanism cannot count them, or when nothing came before `WAIT`).
    fn wait_some(&mut self, next_seq: u64) -> Res<u64>;
}

type Chan = (Box<dyn Sig>, Box<dyn Wait>);

fn eventfd() -> Res<OwnedFd> {
    // SAFETY: eventfd returns a fresh descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn efd_write(fd: RawFd) -> Res<()> {
    let v: u64 = 1;
    // SAFETY: writes 8 bytes from a local.
    let n = unsafe { libc::write(fd, &v as *const u64 as *const libc::c_void, 8) };
    if n != 8 {
        return Err(format!("eventfd write: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Blocking read of the eventfd counter.
fn efd_read(fd: RawFd) -> Res<u64> {
    let mut v: u64 = 0;
    loop {
        // SAFETY: reads 8 bytes into a local.
        let n = unsafe { libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
        if n == 8 {
            return Ok(v);
        }
        let e = std::io::Error::last_os_error();
        if n < 0 && e.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Err(format!("eventfd read: {e}"));
    }
}

// --- baseline: raw eventfd, blocking read -------------------------------------------------------

struct EfdSig(Arc<OwnedFd>);
struct EfdWait(Arc<OwnedFd>);
impl Sig for EfdSig {
    fn signal(&self, _: u64) -> Res<()> {
        efd_write(self.0.as_raw_fd())
    }
}
impl Wait for EfdWait {
    fn wait_one(&mut self, _: u64) -> Res<()> {
        let v = efd_read(self.0.as_raw_fd())?;
        if v != 1 {
            return Err(format!("eventfd counter {v}, expected 1"));
        }
        Ok(())
    }
    fn wait_some(&mut self, _: u64) -> Res<u64> {
        efd_read(self.0.as_raw_fd())
    }
}

// --- epoll: the eventfd in an epoll set ---------------------------------------------------------

struct EpWait {
    ep: OwnedFd,
    efd: Arc<OwnedFd>,
}
impl EpWait {
    fn new(efd: Arc<OwnedFd>) -> Res<Self> {
        // SAFETY: fresh descriptor.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is ours.
        let ep = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
        // SAFETY: valid arguments.
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, efd.as_raw_fd(), &mut ev) } != 0 {
            return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
        }
        Ok(EpWait { ep, efd })
    }
    fn wait(&mut self) -> Res<u64> {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 4];
        loop {
            // SAFETY: buffer of 4 events.
            let n = unsafe { libc::epoll_wait(self.ep.as_raw_fd(), ev.as_mut_ptr(), 4, WAIT.as_millis() as i32) };
            if n > 0 {
                return efd_read(self.efd.as_raw_fd());
            }
            if n == 0 {
                return Ok(0);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("epoll_wait: {e}"));
            }
        }
    }
}
impl Wait for EpWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        match self.wait()? {
            1 => Ok(()),
            0 => Err(format!("epoll: signal {seq} not received within {WAIT:?}")),
            v => Err(format!("eventfd counter {v}, expected 1")),
        }
    }
    fn wait_some(&mut self, _: u64) -> Res<u64> {
        self.wait()
    }
}

// --- mio Waker ----------------------------------------------------------------------------------

struct MioSig(mio::Waker);
struct MioWait {
    poll: mio::Poll,
    events: mio::Events,
}
impl Sig for MioSig {
    fn signal(&self, _: u64) -> Res<()> {
        ctx(self.0.wake(), "mio Waker::wake")
    }
}
impl Wait for MioWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        ctx(self.poll.poll(&mut self.events, Some(WAIT)), "mio poll")?;
        if self.events.is_empty() {
            return Err(format!("mio: wake {seq} not received within {WAIT:?}"));
        }
        Ok(())
    }
    fn wait_some(&mut self, _: u64) -> Res<u64> {
        ctx(self.poll.poll(&mut self.events, Some(WAIT)), "mio poll")?;
        Ok(0)
    }
}

// --- polling notify -----------------------------------------------------------------------------

/// polling's `wait` returns 0 events for a `notify()`, so a wake is told from a timeout by a
/// sequence number the signaller publishes first.
struct PollingSig(Arc<polling::Poller>, Arc<AtomicU64>);
struct PollingWait(Arc<polling::Poller>, Arc<AtomicU64>, polling::Events);
impl Sig for PollingSig {
    fn signal(&self, seq: u64) -> Res<()> {
        self.1.store(seq + 1, Ordering::Release);
        ctx(self.0.notify(), "polling notify")
    }
}
impl Wait for PollingWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        let deadline = Instant::now() + WAIT;
        while self.1.load(Ordering::Acquire) < seq + 1 {
            self.2.clear();
            ctx(self.0.wait(&mut self.2, Some(WAIT)), "polling wait")?;
            if Instant::now() > deadline {
                return Err(format!("polling: notify {seq} not received within {WAIT:?}"));
            }
        }
        Ok(())
    }
    fn wait_some(&mut self, _: u64) -> Res<u64> {
        self.2.clear();
        ctx(self.0.wait(&mut self.2, Some(WAIT)), "polling wait")?;
        Ok(0)
    }
}

// --- socknotify post / dequeue ------------------------------------------------------------------

const SN_KEY: usize = 0x5eed;

struct SnSig(CompletionPort);
struct SnWait(CompletionPort, Vec<Completion>);
impl Sig for SnSig {
    fn signal(&self, seq: u64) -> Res<()> {
        ctx(self.0.post(Completion::new(SN_KEY, seq as u32, seq as usize)), "post")
    }
}
impl Wait for SnWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        let n = ctx(self.0.dequeue(&mut self.1[..1], Some(WAIT)), "dequeue")?;
        if n != 1 {
            return Err(format!("socknotify: posted packet {seq} not dequeued within {WAIT:?}"));
        }
        let c = self.1[0];
        if c != Completion::new(SN_KEY, seq as u32, seq as usize) {
            return Err(format!("socknotify: dequeued {c:?}, expected the packet posted as {seq}"));
        }
        Ok(())
    }
    fn wait_some(&mut self, next: u64) -> Res<u64> {
        let n = ctx(self.0.dequeue(&mut self.1, Some(WAIT)), "dequeue")?;
        for (j, c) in self.1[..n].iter().enumerate() {
            let s = next + j as u64;
            if *c != Completion::new(SN_KEY, s as u32, s as usize) {
                return Err(format!("socknotify: dequeued {c:?}, expected packet {s} (FIFO order)"));
            }
        }
        Ok(n as u64)
    }
}

fn make_chan(mech: Mech) -> Res<Chan> {
    Ok(match mech {
        Mech::Baseline => {
            let e = Arc::new(eventfd()?);
            (Box::new(EfdSig(e.clone())), Box::new(EfdWait(e)))
        }
        Mech::Epoll => {
            let e = Arc::new(eventfd()?);
            (Box::new(EfdSig(e.clone())), Box::new(EpWait::new(e)?))
        }
        Mech::Mio => {
            let poll = ctx(mio::Poll::new(), "mio::Poll::new")?;
            let waker = ctx(mio::Waker::new(poll.registry(), mio::Token(0)), "mio::Waker::new")?;
            (Box::new(MioSig(waker)), Box::new(MioWait { poll, events: mio::Events::with_capacity(64) }))
        }
        Mech::Polling => {
            let p = Arc::new(ctx(polling::Poller::new(), "polling::Poller::new")?);
            let seq = Arc::new(AtomicU64::new(0));
            let ev = polling::Events::with_capacity(std::num::NonZeroUsize::new(64).unwrap());
            (Box::new(PollingSig(p.clone(), seq.clone())), Box::new(PollingWait(p, seq, ev)))
        }
        Mech::Socknotify | Mech::SocknotifyEpoll => {
            let port = mech.port()?;
            (Box::new(SnSig(port.clone())), Box::new(SnWait(port, vec![Completion::default(); 256])))
        }
    })
}

/// The CPUs this process may run on.
pub fn cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a local cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling thread to `cpus` (all of them: unpins).
pub fn pin(cpus: &[usize]) {
    // SAFETY: sched_setaffinity with a local cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Round-trip times (ns) of `n` ping-pongs after `warm` unmeasured ones, sorted, with this
/// thread on CPU `cpus.0` and the echo thread on CPU `cpus.1`.
pub fn pingpong(mech: Mech, n: usize, warm: usize, cpus: (usize, usize)) -> Res<Vec<u64>> {
    let all = self::cpus();
    let r = pingpong_pinned(mech, n, warm, cpus);
    pin(&all);
    r
}

fn pingpong_pinned(mech: Mech, n: usize, warm: usize, cpus: (usize, usize)) -> Res<Vec<u64>> {
    let (ab_sig, mut ab_wait) = make_chan(mech)?;
    let (ba_sig, mut ba_wait) = make_chan(mech)?;
    let total = (n + warm) as u64;
    pin(&[cpus.0]);
    // The signalling halves are handed back by the threads, not dropped there: dropping a
    // mio Waker closes its eventfd, and epoll forgets a pending event of a closed descriptor.
    let echo = std::thread::spawn(move || -> (Res<()>, Box<dyn Sig>) {
        pin(&[cpus.1]);
        let r = (|| {
            for i in 0..total {
                ab_wait.wait_one(i).map_err(|e| format!("echo side: {e}"))?;
                ba_sig.signal(i)?;
            }
            Ok(())
        })();
        (r, ba_sig)
    });
    let mut rtt = Vec::with_capacity(n);
    let mut res = Ok(());
    for i in 0..total {
        let t0 = Instant::now();
        if let Err(e) = ab_sig.signal(i).and_then(|_| ba_wait.wait_one(i)) {
            res = Err(e);
            break;
        }
        if i >= warm as u64 {
            rtt.push(t0.elapsed().as_nanos() as u64);
        }
    }
    let (echo_res, _ba_sig) = echo.join().map_err(|_| "echo thread panicked".to_string())?;
    drop(ab_sig);
    res?;
    echo_res?;
    rtt.sort_unstable();
    Ok(rtt)
}

/// Posts per second: one thread signals `n` times, this one consumes until it accounted for
/// all of them (counting mechanisms) or saw the poster's end (coalescing ones).
/// The two threads run on different CPUs when there are two.
pub fn throughput(mech: Mech, n: u64) -> Res<f64> {
    let all = cpus();
    if all.len() >= 2 {
        pin(&all[..1]);
    }
    let r = throughput_pinned(mech, n, all.get(1).copied());
    pin(&all);
    r
}

fn throughput_pinned(mech: Mech, n: u64, poster_cpu: Option<usize>) -> Res<f64> {
    let (sig, mut wait) = make_chan(mech)?;
    let counts = matches!(mech, Mech::Baseline | Mech::Epoll | Mech::Socknotify | Mech::SocknotifyEpoll);
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(2));
    let (d2, s2) = (done.clone(), start.clone());
    let poster = std::thread::spawn(move || -> (Res<()>, Box<dyn Sig>) {
        if let Some(c) = poster_cpu {
            pin(&[c]);
        }
        s2.wait();
        let r = (|| {
            for i in 0..n {
                sig.signal(i)?;
            }
            d2.store(true, Ordering::Release);
            sig.signal(n) // a final wake so that a coalescing consumer sees `done`
        })();
        (r, sig)
    });
    start.wait();
    let t0 = Instant::now();
    let limit = Duration::from_secs(30);
    let mut got = 0u64;
    let mut res = Ok(());
    loop {
        match wait.wait_some(got) {
            Ok(k) => got += k,
            Err(e) => {
                res = Err(e);
                break;
            }
        }
        if counts && got >= n {
            break;
        }
        if !counts && done.load(Ordering::Acquire) {
            break;
        }
        if t0.elapsed() > limit {
            res = Err(format!("consumer accounted for {got} of {n} posts within {limit:?}"));
            break;
        }
    }
    let dt = t0.elapsed();
    let (p, _sig) = poster.join().map_err(|_| "poster thread panicked".to_string())?;
    res?;
    p?;
    Ok(n as f64 / dt.as_secs_f64())
}

/// p50 and p99 of sorted round-trip times.
pub fn p50_p99(sorted: &[u64]) -> (u64, u64) {
    (percentile(sorted, 50.0), percentile(sorted, 99.0))
}
