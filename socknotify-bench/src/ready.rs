//! The readiness scenarios (`rearm`, `burst`): K of N registered sockets are made readable,
//! the mechanism collects K notifications, the byte is read, and (oneshot) the socket re-armed.
//!
//! Every mechanism does exactly the same socket work as the no-mechanism baseline (one 1-byte
//! `write` on the peer and one `read` on the registered side per notification) plus its own
//! waits and re-arms, so `time(mechanism) - time(baseline)` is the mechanism's overhead.

use crate::util::{ctx, guarded, read_one, write_one, Expect, Pairs, Plan, Res, Stopwatch, WAIT};
use socknotify::{Backend, Completion, CompletionPort, Events, Registration, Trigger};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How registrations behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Disarm on delivery, re-arm after the read (EPOLLONESHOT + MOD, mio reregister,
    /// polling modify, socknotify LEVEL_ONESHOT re-enabled in the next `process`).
    Oneshot,
    /// Persistent level registrations (mio is edge-triggered: it has no level mode).
    Level,
}

/// The mechanisms, in table order. `Baseline` is the same socket work with no mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    Baseline,
    Epoll,
    Mio,
    Polling,
    /// socknotify with its default backend (`Backend::Auto`: io_uring where the kernel has it).
    Socknotify,
    /// socknotify forced onto plain epoll system calls (`Backend::Epoll`).
    SocknotifyEpoll,
}

impl Mech {
    pub const ALL: [Mech; 6] =
        [Mech::Baseline, Mech::Epoll, Mech::Mio, Mech::Polling, Mech::Socknotify, Mech::SocknotifyEpoll];
    pub fn name(self) -> &'static str {
        match self {
            Mech::Baseline => "baseline",
            Mech::Epoll => "epoll",
            Mech::Mio => "mio",
            Mech::Polling => "polling",
            Mech::Socknotify => "socknotify",
            Mech::SocknotifyEpoll => "sn-epoll",
        }
    }

    /// True for the socknotify variants.
    pub fn is_socknotify(self) -> bool {
        matches!(self, Mech::Socknotify | Mech::SocknotifyEpoll)
    }

    /// A port for this socknotify variant.
    pub fn port(self) -> Res<CompletionPort> {
        let backend = if self == Mech::SocknotifyEpoll { Backend::Epoll } else { Backend::Auto };
        ctx(CompletionPort::builder().backend(backend).build(), "CompletionPort::build")
    }
}

/// Registrations per `process` call when registering or removing many sockets at once.
pub const BATCH: usize = 1024;

static OUT_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1024);

/// Size of every mechanism's output buffer while collecting notifications (epoll_wait
/// maxevents, mio/polling capacity, socknotify `out.len()`); `--batch` sets it.
pub fn out_len() -> usize {
    OUT_LEN.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn set_out_len(n: usize) {
    OUT_LEN.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// One registered mechanism over one set of pairs.
trait Collector {
    /// Waits for the round's pending notifications (the sockets of `chosen` were just made
    /// readable), reading each socket's byte (and re-arming).
    fn collect(&mut self, exp: &mut Expect, chosen: &[u32]) -> Res<()>;
    /// Applies what is still deferred (socknotify's last re-enables).
    fn finish(&mut self) -> Res<()> {
        Ok(())
    }
    /// A zero-timeout wait: anything delivered now is spurious. Returns how many.
    fn leftovers(&mut self) -> Res<usize>;
    /// Unregisters everything (not timed).
    fn teardown(&mut self) -> Res<()> {
        Ok(())
    }
}

/// One timed slice of rounds.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Nanoseconds per notification.
    pub ns: f64,
    /// System calls socknotify made per notification (`CompletionPort::syscalls`; 0 for others).
    pub sn_syscalls: f64,
}

/// What one lane produced: per plan, its slices; or why it failed.
pub type LaneResult = Res<Vec<Vec<Sample>>>;

fn collector<'a>(mech: Mech, mode: Mode, srv: &'a [RawFd], pairs: &'a Pairs) -> Res<Box<dyn Collector + 'a>> {
    Ok(match mech {
        Mech::Baseline => Box::new(BaselineC { srv }),
        Mech::Epoll => Box::new(EpollC::new(srv, mode)?),
        Mech::Mio => Box::new(MioC::new(srv, mode)?),
        Mech::Polling => Box::new(PollingC::new(srv, mode)?),
        Mech::Socknotify | Mech::SocknotifyEpoll => Box::new(SnC::new(mech, &pairs.servers, mode)?),
    })
}

/// A mechanism registered over its own pairs, with its own expectations.
struct Lane<'a> {
    c: Option<Box<dyn Collector + 'a>>,
    peers: Vec<RawFd>,
    exp: Expect,
    out: LaneResult,
}

impl Lane<'_> {
    fn ok(&self) -> bool {
        self.c.is_some() && self.out.is_ok()
    }
    fn fail(&mut self, e: String) {
        if self.out.is_ok() {
            self.out = Err(e);
        }
    }
    /// Runs `f` on the collector, turning an error or a panic into the lane's failure.
    fn step(&mut self, f: impl FnOnce(&mut dyn Collector, &mut Expect, &[RawFd]) -> Res<()>) {
        if !self.ok() {
            return;
        }
        let c = self.c.as_mut().unwrap().as_mut();
        let (exp, peers) = (&mut self.exp, &self.peers[..]);
        if let Err(e) = guarded(|| f(c, exp, peers)) {
            self.fail(e);
        }
    }
}

/// Runs every plan on every lane (one mechanism over its own pairs each). The lanes take
/// turns slice by slice, in an order that rotates every slice (starting at `rot`), so that
/// background load on a shared machine hits them alike; each plan's timed rounds are cut
/// into `slices` slices, and each slice gives one sample per lane.
pub fn run_lanes(lanes: &[(Mech, &Pairs)], mode: Mode, plans: &[Plan], slices: usize, rot: usize) -> Vec<LaneResult> {
    let fds: Vec<(Vec<RawFd>, Vec<RawFd>)> = lanes
        .iter()
        .map(|(_, p)| {
            (p.servers.iter().map(|s| s.as_raw_fd()).collect(), p.peers.iter().map(|s| s.as_raw_fd()).collect())
        })
        .collect();
    let mut ls: Vec<Lane<'_>> = lanes
        .iter()
        .zip(&fds)
        .map(|(&(mech, pairs), (srv, peers))| {
            let (c, out) = match guarded(|| collector(mech, mode, srv, pairs)) {
                Ok(c) => (Some(c), Ok(Vec::new())),
                Err(e) => (None, Err(e)),
            };
            Lane { c, peers: peers.clone(), exp: Expect::new(peers.len()), out }
        })
        .collect();
    let n = ls.len();
    for plan in plans {
        for l in ls.iter_mut() {
            if let Ok(v) = &mut l.out {
                v.push(Vec::with_capacity(slices));
            }
        }
        for r in 0..plan.warmup {
            for l in ls.iter_mut() {
                l.step(|c, exp, peers| one_round(c, peers, exp, plan.round(r)));
            }
        }
        let per = plan.rounds.div_ceil(slices.max(1));
        let mut r0 = plan.warmup;
        let end = plan.warmup + plan.rounds;
        let mut s = 0;
        while r0 < end {
            let r1 = (r0 + per).min(end);
            for j in 0..n {
                let l = &mut ls[(j + s + rot) % n];
                let mut sample = None;
                l.step(|c, exp, peers| {
                    let s0 = CompletionPort::syscalls();
                    let t0 = Stopwatch::start();
                    for r in r0..r1 {
                        one_round(c, peers, exp, plan.round(r))?;
                    }
                    let ns = t0.ns();
                    let units = ((r1 - r0) * plan.k) as f64;
                    let sys = (CompletionPort::syscalls() - s0) as f64;
                    sample = Some(Sample { ns: ns as f64 / units, sn_syscalls: sys / units });
                    Ok(())
                });
                if let (Some(smp), Ok(v)) = (sample, &mut l.out) {
                    v.last_mut().unwrap().push(smp);
                }
            }
            r0 = r1;
            s += 1;
        }
        for l in ls.iter_mut() {
            let k = plan.k;
            l.step(|c, _, _| {
                c.finish()?;
                match c.leftovers()? {
                    0 => Ok(()),
                    extra => Err(format!("{extra} spurious notification(s) after the last round (K = {k})")),
                }
            });
        }
    }
    for l in ls.iter_mut() {
        if let Some(c) = l.c.as_mut() {
            if let Err(e) = guarded(|| c.teardown()) {
                l.fail(format!("teardown: {e}"));
            }
        }
    }
    ls.into_iter().map(|l| l.out).collect()
}

#[inline]
fn one_round(c: &mut dyn Collector, peers: &[RawFd], exp: &mut Expect, chosen: &[u32]) -> Res<()> {
    exp.round += 1;
    for &i in chosen {
        write_one(peers[i as usize])?;
        exp.arm(i as usize);
    }
    c.collect(exp, chosen)
}

/// No mechanism: the same writes, then the reads of the sockets known to be readable.
struct BaselineC<'a> {
    srv: &'a [RawFd],
}

impl Collector for BaselineC<'_> {
    fn collect(&mut self, exp: &mut Expect, chosen: &[u32]) -> Res<()> {
        for &i in chosen {
            let i = i as usize;
            exp.take(i)?;
            read_one(self.srv[i], i)?;
        }
        Ok(())
    }
    fn leftovers(&mut self) -> Res<usize> {
        Ok(0)
    }
}

fn missing(exp: &Expect, what: &str) -> String {
    format!(
        "round {}: {} notification(s) still missing after waiting {:?} in {what} (a broken or \
         lost notification)",
        exp.round, exp.pending, WAIT
    )
}

// ---------------------------------------------------------------------------------------------
// Raw epoll: the floor.

struct EpollC<'a> {
    ep: OwnedFd,
    srv: &'a [RawFd],
    evs: Vec<libc::epoll_event>,
    oneshot: bool,
}

impl<'a> EpollC<'a> {
    fn new(srv: &'a [RawFd], mode: Mode) -> Res<Self> {
        // SAFETY: epoll_create1 returns a new descriptor that we own, or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let ep = unsafe { OwnedFd::from_raw_fd(fd) };
        let oneshot = mode == Mode::Oneshot;
        for (i, &s) in srv.iter().enumerate() {
            epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, s, i, oneshot)?;
        }
        let evs = vec![libc::epoll_event { events: 0, u64: 0 }; out_len()];
        Ok(EpollC { ep, srv, evs, oneshot })
    }

    fn wait(&mut self, timeout_ms: i32) -> Res<usize> {
        loop {
            // SAFETY: the buffer holds evs.len() entries.
            let n = unsafe {
                libc::epoll_wait(self.ep.as_raw_fd(), self.evs.as_mut_ptr(), self.evs.len() as i32, timeout_ms)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("epoll_wait: {e}"));
            }
        }
    }
}

#[inline]
fn epoll_ctl(ep: RawFd, op: libc::c_int, fd: RawFd, key: usize, oneshot: bool) -> Res<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | if oneshot { libc::EPOLLONESHOT } else { 0 }) as u32,
        u64: key as u64,
    };
    // SAFETY: ev is a valid epoll_event; fd is a descriptor we hold open.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(format!("epoll_ctl({op}) on fd {fd}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Collector for EpollC<'_> {
    fn collect(&mut self, exp: &mut Expect, _: &[u32]) -> Res<()> {
        while exp.pending > 0 {
            let n = self.wait(WAIT.as_millis() as i32)?;
            if n == 0 {
                return Err(missing(exp, "epoll_wait"));
            }
            for j in 0..n {
                let key = self.evs[j].u64 as usize;
                exp.take(key)?;
                read_one(self.srv[key], key)?;
                if self.oneshot {
                    epoll_ctl(self.ep.as_raw_fd(), libc::EPOLL_CTL_MOD, self.srv[key], key, true)?;
                }
            }
        }
        Ok(())
    }
    fn leftovers(&mut self) -> Res<usize> {
        self.wait(0)
    }
}

// ---------------------------------------------------------------------------------------------
// mio (always edge-triggered; "oneshot" = reregister after each event, as the brief asks).

struct MioC<'a> {
    poll: mio::Poll,
    events: mio::Events,
    srv: &'a [RawFd],
    oneshot: bool,
}

impl<'a> MioC<'a> {
    fn new(srv: &'a [RawFd], mode: Mode) -> Res<Self> {
        let poll = ctx(mio::Poll::new(), "mio::Poll::new")?;
        for (i, s) in srv.iter().enumerate() {
            ctx(
                poll.registry().register(&mut mio::unix::SourceFd(s), mio::Token(i), mio::Interest::READABLE),
                "mio register",
            )?;
        }
        Ok(MioC { poll, events: mio::Events::with_capacity(out_len()), srv, oneshot: mode == Mode::Oneshot })
    }
}

impl Collector for MioC<'_> {
    fn collect(&mut self, exp: &mut Expect, _: &[u32]) -> Res<()> {
        while exp.pending > 0 {
            ctx(self.poll.poll(&mut self.events, Some(WAIT)), "mio poll")?;
            if self.events.is_empty() {
                return Err(missing(exp, "mio::Poll::poll"));
            }
            for ev in self.events.iter() {
                let key = ev.token().0;
                exp.take(key)?;
                read_one(self.srv[key], key)?;
                if self.oneshot {
                    ctx(
                        self.poll.registry().reregister(
                            &mut mio::unix::SourceFd(&self.srv[key]),
                            mio::Token(key),
                            mio::Interest::READABLE,
                        ),
                        "mio reregister",
                    )?;
                }
            }
        }
        Ok(())
    }
    fn leftovers(&mut self) -> Res<usize> {
        ctx(self.poll.poll(&mut self.events, Some(Duration::ZERO)), "mio poll")?;
        Ok(self.events.iter().count())
    }
}

// ---------------------------------------------------------------------------------------------
// polling (oneshot by default; Level via add_with_mode).

struct PollingC<'a> {
    poller: polling::Poller,
    events: polling::Events,
    srv: &'a [RawFd],
    oneshot: bool,
}

impl<'a> PollingC<'a> {
    fn new(srv: &'a [RawFd], mode: Mode) -> Res<Self> {
        let poller = ctx(polling::Poller::new(), "polling::Poller::new")?;
        let pm = match mode {
            Mode::Oneshot => polling::PollMode::Oneshot,
            Mode::Level => polling::PollMode::Level,
        };
        for (i, &s) in srv.iter().enumerate() {
            // SAFETY: each descriptor stays open until after the poller is dropped
            // (teardown deletes it first).
            ctx(unsafe { poller.add_with_mode(s, polling::Event::readable(i), pm) }, "polling add")?;
        }
        let cap = std::num::NonZeroUsize::new(out_len()).unwrap();
        Ok(PollingC { poller, events: polling::Events::with_capacity(cap), srv, oneshot: mode == Mode::Oneshot })
    }
}

impl Collector for PollingC<'_> {
    fn collect(&mut self, exp: &mut Expect, _: &[u32]) -> Res<()> {
        while exp.pending > 0 {
            self.events.clear();
            ctx(self.poller.wait(&mut self.events, Some(WAIT)), "polling wait")?;
            if self.events.is_empty() {
                return Err(missing(exp, "polling::Poller::wait"));
            }
            for ev in self.events.iter() {
                let key = ev.key;
                exp.take(key)?;
                read_one(self.srv[key], key)?;
                if self.oneshot {
                    // SAFETY: the descriptor is open for the lifetime of the borrow.
                    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.srv[key]) };
                    ctx(self.poller.modify(fd, polling::Event::readable(key)), "polling modify")?;
                }
            }
        }
        Ok(())
    }
    fn leftovers(&mut self) -> Res<usize> {
        self.events.clear();
        ctx(self.poller.wait(&mut self.events, Some(Duration::ZERO)), "polling wait")?;
        Ok(self.events.len())
    }
    fn teardown(&mut self) -> Res<()> {
        for &s in self.srv {
            // SAFETY: the descriptor is still open.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(s) };
            ctx(self.poller.delete(fd), "polling delete")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// socknotify: the canonical loop. The re-enables of one batch go into the next `process`.

struct SnC<'a> {
    port: CompletionPort,
    srv: &'a [OwnedFd],
    regs: Vec<Registration<'a>>,
    out: Vec<Completion>,
    trigger: Trigger,
}

impl<'a> SnC<'a> {
    fn new(mech: Mech, srv: &'a [OwnedFd], mode: Mode) -> Res<Self> {
        let port = mech.port()?;
        let trigger = match mode {
            Mode::Oneshot => Trigger::LEVEL_ONESHOT,
            Mode::Level => Trigger::LEVEL_PERSISTENT,
        };
        let mut c =
            SnC { port, srv, regs: Vec::with_capacity(BATCH), out: vec![Completion::default(); out_len()], trigger };
        for (base, chunk) in srv.chunks(BATCH).enumerate() {
            c.regs.extend(
                chunk.iter().enumerate().map(|(j, s)| Registration::enable(s, base * BATCH + j, Events::IN, trigger)),
            );
            c.apply_regs("register")?;
        }
        Ok(c)
    }

    /// Applies `regs` with no dequeue (`process` with an empty output and timeout zero).
    fn apply_regs(&mut self, what: &str) -> Res<()> {
        if self.regs.is_empty() {
            return Ok(());
        }
        let n = ctx(self.port.process(&mut self.regs, &mut [], Some(Duration::ZERO)), what)?;
        if n != 0 {
            return Err(format!("{what}: process with an empty output returned {n} packets"));
        }
        check_results(&self.regs, what)?;
        self.regs.clear();
        Ok(())
    }
}

#[inline]
fn check_results(regs: &[Registration<'_>], what: &str) -> Res<()> {
    for r in regs {
        if let Err(e) = r.result() {
            return Err(format!("{what}: registration of key {} failed: {e} (code {})", r.key(), r.result_code()));
        }
    }
    Ok(())
}

impl<'a> Collector for SnC<'a> {
    fn collect(&mut self, exp: &mut Expect, _: &[u32]) -> Res<()> {
        let oneshot = self.trigger.is_oneshot();
        let srv: &'a [OwnedFd] = self.srv;
        while exp.pending > 0 {
            // Re-enable what the previous batch handled, and dequeue, in one call.
            let n = ctx(self.port.process(&mut self.regs, &mut self.out, Some(WAIT)), "process")?;
            check_results(&self.regs, "re-enable")?;
            self.regs.clear();
            if n == 0 {
                return Err(missing(exp, "CompletionPort::process"));
            }
            for c in &self.out[..n] {
                let key = c.key();
                if !c.events().contains(Events::IN) || c.events().contains(Events::REMOVE) {
                    return Err(format!("key {key}: unexpected event mask {:?}", c.events()));
                }
                exp.take(key)?;
                read_one(srv[key].as_raw_fd(), key)?;
                if oneshot {
                    self.regs.push(Registration::enable(&srv[key], key, Events::IN, self.trigger));
                }
            }
        }
        Ok(())
    }
    fn finish(&mut self) -> Res<()> {
        self.apply_regs("final re-enable")
    }
    fn leftovers(&mut self) -> Res<usize> {
        self.finish()?;
        let n = ctx(self.port.dequeue(&mut self.out, Some(Duration::ZERO)), "dequeue")?;
        if n > 0 {
            eprintln!(
                "  socknotify leftovers: {:?}",
                self.out[..n.min(8)].iter().map(|c| (c.key(), c.events())).collect::<Vec<_>>()
            );
        }
        Ok(n)
    }
    fn teardown(&mut self) -> Res<()> {
        self.regs.clear();
        let srv = self.srv;
        remove_all(&self.port, srv, &mut self.out)?;
        self.port.close();
        Ok(())
    }
}

/// REMOVEs every registration of `srv` (keys are indices) and dequeues the N REMOVE packets.
/// Returns how many non-REMOVE packets were seen on the way (readiness packets queued before).
pub fn remove_all(port: &CompletionPort, srv: &[OwnedFd], out: &mut [Completion]) -> Res<usize> {
    let mut seen = vec![false; srv.len()];
    let mut removed = 0usize;
    let mut other = 0usize;
    let mut regs: Vec<Registration<'_>> = Vec::with_capacity(BATCH);
    let mut take = |out: &[Completion], removed: &mut usize, other: &mut usize| -> Res<()> {
        for c in out {
            if c.events().contains(Events::REMOVE) {
                let k = c.key();
                if k >= seen.len() || seen[k] {
                    return Err(format!("REMOVE packet for key {k}: unknown or duplicate"));
                }
                seen[k] = true;
                *removed += 1;
            } else {
                *other += 1;
            }
        }
        Ok(())
    };
    for chunk in srv.chunks(BATCH) {
        regs.clear();
        regs.extend(chunk.iter().map(Registration::remove));
        let n = ctx(port.process(&mut regs, out, Some(Duration::ZERO)), "process(REMOVE)")?;
        check_results(&regs, "REMOVE")?;
        take(&out[..n], &mut removed, &mut other)?;
    }
    let deadline = Instant::now() + WAIT;
    while removed < srv.len() {
        let n = ctx(port.dequeue(out, Some(WAIT)), "dequeue(REMOVE)")?;
        take(&out[..n], &mut removed, &mut other)?;
        if n == 0 || Instant::now() > deadline {
            return Err(format!("only {removed} of {} REMOVE packets arrived within {WAIT:?}", srv.len()));
        }
    }
    Ok(other)
}
