//! `wake`: waking another thread. Two threads ping-pong through two channels (A signals B,
//! B signals A); a round trip is two signal→wake hops. Both threads pinned to one CPU, then
//! to two CPUs; p50 and p99 of the round trips.
//!
//! Mechanisms: `eventfd` = an eventfd with a blocking `read` (the reference); epoll = the
//! eventfd in an epoll set (`epoll_wait`, then `read`); mio = `Waker`; polling = `notify()`;
//! socknotify = `post` / `dequeue` on a `CompletionPort` (each packet checked).

use crate::cli::Opts;
use crate::run::{ctx, interleave, report, Cell, Col, Mech, Ratio, Res, WAIT};
use crate::stats::{percentile, Fmt};
use crate::sys::{self, Epoll, EventFd, EP_EMPTY, EP_IN};
use crate::table::Table;
use socknotify::{Completion, CompletionPort};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The signalling side of one channel.
trait Sig: Send {
    fn signal(&self, seq: u64) -> Res<()>;
}

/// The waiting side of one channel: waits for exactly the signal `seq`.
trait Wait: Send {
    fn wait_one(&mut self, seq: u64) -> Res<()>;
}

type Chan = (Box<dyn Sig>, Box<dyn Wait>);

struct EfdSig(Arc<EventFd>);
impl Sig for EfdSig {
    fn signal(&self, _: u64) -> Res<()> {
        self.0.signal()
    }
}

struct EfdWait(Arc<EventFd>);
impl Wait for EfdWait {
    /// A plain blocking read (the reference: no timeout; the watchdog bounds the run).
    fn wait_one(&mut self, _: u64) -> Res<()> {
        match self.0.take()? {
            1 => Ok(()),
            v => Err(format!("eventfd counter {v}, expected 1")),
        }
    }
}

struct EpWait {
    ep: Epoll,
    efd: Arc<EventFd>,
}
impl Wait for EpWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        let mut ev = [EP_EMPTY; 4];
        if self.ep.wait(&mut ev, WAIT)? == 0 {
            return Err(format!("epoll: signal {seq} not received within {WAIT:?}"));
        }
        match self.efd.take()? {
            1 => Ok(()),
            v => Err(format!("eventfd counter {v}, expected 1")),
        }
    }
}

struct MioSig(mio::Waker);
impl Sig for MioSig {
    fn signal(&self, _: u64) -> Res<()> {
        ctx(self.0.wake(), "mio Waker::wake")
    }
}

struct MioWait {
    poll: mio::Poll,
    events: mio::Events,
}
impl Wait for MioWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.poll.poll(&mut self.events, Some(left)) {
                // A signal (the profiler's, the test harness's) interrupted the wait: wait on.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted && !left.is_zero() => continue,
                r => break ctx(r, "mio poll")?,
            }
        }
        if self.events.is_empty() {
            return Err(format!("mio: wake {seq} not received within {WAIT:?}"));
        }
        Ok(())
    }
}

/// polling's `wait` returns no event for a `notify()`, so a wake is told from a timeout by a
/// sequence number the signaller publishes first.
struct PollingSig(Arc<polling::Poller>, Arc<AtomicU64>);
impl Sig for PollingSig {
    fn signal(&self, seq: u64) -> Res<()> {
        self.1.store(seq + 1, Ordering::Release);
        ctx(self.0.notify(), "polling notify")
    }
}

struct PollingWait(Arc<polling::Poller>, Arc<AtomicU64>, polling::Events);
impl Wait for PollingWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        let deadline = Instant::now() + WAIT;
        while self.1.load(Ordering::Acquire) < seq + 1 {
            self.2.clear();
            match self.0.wait(&mut self.2, Some(WAIT)) {
                // Interrupted by a signal: wait again (within the deadline).
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => {
                    ctx(r, "polling wait")?;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("polling: notify {seq} not received within {WAIT:?}"));
            }
        }
        Ok(())
    }
}

const SN_KEY: usize = 0x5eed;

struct SnSig(CompletionPort);
impl Sig for SnSig {
    fn signal(&self, seq: u64) -> Res<()> {
        ctx(self.0.post(Completion::new(SN_KEY, seq as u32, seq as usize)), "post")
    }
}

struct SnWait(CompletionPort, [Completion; 1]);
impl Wait for SnWait {
    fn wait_one(&mut self, seq: u64) -> Res<()> {
        let n = ctx(self.0.dequeue(&mut self.1, Some(WAIT)), "dequeue")?;
        if n != 1 {
            return Err(format!("socknotify: posted packet {seq} not dequeued within {WAIT:?}"));
        }
        if self.1[0] != Completion::new(SN_KEY, seq as u32, seq as usize) {
            return Err(format!("socknotify: dequeued {:?}, expected the packet posted as {seq}", self.1[0]));
        }
        Ok(())
    }
}

fn make_chan(mech: Mech) -> Res<Chan> {
    Ok(match mech {
        Mech::EventFd => {
            let e = Arc::new(EventFd::new()?);
            (Box::new(EfdSig(e.clone())), Box::new(EfdWait(e)))
        }
        Mech::Epoll => {
            let e = Arc::new(EventFd::new()?);
            let ep = Epoll::new()?;
            ep.add(e.raw(), EP_IN, 0)?;
            (Box::new(EfdSig(e.clone())), Box::new(EpWait { ep, efd: e }))
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
        Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp => {
            let port = mech.port(0)?;
            (Box::new(SnSig(port.clone())), Box::new(SnWait(port, [Completion::default()])))
        }
        _ => return Err(format!("{} cannot wake a thread", mech.name())),
    })
}

/// Round-trip times (ns) of `n` ping-pongs after `warm` unmeasured ones, sorted, with this
/// thread on CPU `cpus.0` and the echo thread on CPU `cpus.1`.
pub fn pingpong(mech: Mech, n: usize, warm: usize, cpus: (usize, usize)) -> Res<Vec<u64>> {
    let all = sys::cpus();
    let r = pingpong_pinned(mech, n, warm, cpus);
    sys::pin(&all);
    r
}

fn pingpong_pinned(mech: Mech, n: usize, warm: usize, cpus: (usize, usize)) -> Res<Vec<u64>> {
    let (ab_sig, mut ab_wait) = make_chan(mech)?;
    let (ba_sig, mut ba_wait) = make_chan(mech)?;
    let total = (n + warm) as u64;
    sys::pin(&[cpus.0]);
    // The signalling halves are handed back by the threads, not dropped there: dropping a
    // mio Waker closes its eventfd, and epoll forgets a pending event of a closed descriptor.
    let echo = std::thread::spawn(move || -> (Res<()>, Box<dyn Sig>) {
        sys::pin(&[cpus.1]);
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

pub fn scenario(o: &Opts) -> (Table, Vec<String>) {
    let n = if o.quick { 1_000 } else { 5_000 };
    let cpus = sys::cpus();
    let (c0, c1) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));
    let mechs =
        o.pick(&[Mech::EventFd, Mech::Epoll, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp, Mech::Mio, Mech::Polling]);
    let series = interleave("wake", &mechs, o.reps, |m, _| {
        let one = pingpong(m, n, 100, (c0, c0))?;
        let two = pingpong(m, n, 100, (c0, c1))?;
        let p = |v: &[u64], q| percentile(v, q) as f64;
        Ok(vec![p(&one, 50.0), p(&one, 99.0), p(&two, 50.0), p(&two, 99.0)])
    });
    let cell = Cell { params: vec![], series };
    let errors = cell.errors("wake");
    let intro = vec![format!(
        "Round trip = two signal→wake hops between two threads, both on one CPU, then on two CPUs ({} and {}); \
         {n} round trips per repetition and setting, after 100 unmeasured; wall-clock. {} repetitions, \
         interleaved; ratios per repetition pair, then the median.",
        c0, c1, o.reps
    )];
    let cols = [
        Col { head: "1 CPU p50 ns", metric: 0, fmt: Fmt::Int, range: true },
        Col { head: "1 CPU p99 ns", metric: 1, fmt: Fmt::Int, range: false },
        Col { head: "2 CPUs p50 ns", metric: 2, fmt: Fmt::Int, range: true },
        Col { head: "2 CPUs p99 ns", metric: 3, fmt: Fmt::Int, range: false },
    ];
    let ratios = [
        Ratio { head: "1 CPU p50 ÷ epoll".into(), metric: 0, reference: Mech::Epoll },
        Ratio { head: "2 CPUs p50 ÷ epoll".into(), metric: 2, reference: Mech::Epoll },
    ];
    (report("wake", intro, &[], &[cell], &cols, &ratios), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mechanism_wakes_the_other_thread() {
        let c = sys::cpus();
        for m in [Mech::EventFd, Mech::Epoll, Mech::Mio, Mech::Polling, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp] {
            let v = pingpong(m, 100, 5, (c[0], *c.last().unwrap())).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert_eq!(v.len(), 100, "{}", m.name());
        }
    }
}
