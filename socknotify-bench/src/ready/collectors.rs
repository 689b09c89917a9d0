//! One collector per mechanism: it registers N sockets, and per round collects the K
//! notifications of the sockets just made readable, reading each one's byte (and re-arming
//! in `Oneshot` mode). Every collector does the same socket I/O as [`BaselineC`].

use super::{read_one, Expect, Mode};
use crate::run::{ctx, Mech, Res, WAIT};
use crate::sys::{self, model, Epoll, EP_EMPTY, EP_ET, EP_IN, EP_ONESHOT};
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

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

/// One registered mechanism over one set of sockets.
pub trait Collector {
    /// Waits for the round's pending notifications (the sockets of the round were just made
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

/// The collector of `mech` in `mode`, every socket of `srv` registered (key = index).
pub fn new<'a>(mech: Mech, mode: Mode, srv: &'a [RawFd], owned: &'a [OwnedFd]) -> Res<Box<dyn Collector + 'a>> {
    Ok(match mech {
        Mech::Baseline => Box::new(BaselineC { srv }),
        Mech::Floor => Box::new(EpollC::new(srv, Mode::Level)?),
        Mech::Epoll => Box::new(EpollC::new(srv, mode)?),
        Mech::Mio => Box::new(MioC::new(srv, mode)?),
        Mech::Polling => Box::new(PollingC::new(srv, mode)?),
        Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp => Box::new(SnC::new(mech, owned, mode)?),
        Mech::Queue | Mech::EventFd | Mech::SnTokio | Mech::Tokio => {
            return Err(format!("{} has no readiness collector", mech.name()))
        }
    })
}

fn missing(exp: &Expect, what: &str) -> String {
    format!(
        "round {}: {} notification(s) still missing after waiting {:?} in {what} (a broken or \
         lost notification)",
        exp.round, exp.pending, WAIT
    )
}

// --- no mechanism -------------------------------------------------------------------------------

/// The same reads, of the sockets known to be readable.
pub struct BaselineC<'a> {
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

// --- raw epoll ----------------------------------------------------------------------------------

pub struct EpollC<'a> {
    ep: Epoll,
    srv: &'a [RawFd],
    evs: Vec<libc::epoll_event>,
    events: u32,
    oneshot: bool,
}

impl<'a> EpollC<'a> {
    pub fn new(srv: &'a [RawFd], mode: Mode) -> Res<Self> {
        let ep = Epoll::new()?;
        let events = match mode {
            Mode::Level => EP_IN,
            Mode::Edge => EP_IN | EP_ET,
            Mode::Oneshot => EP_IN | EP_ONESHOT,
        };
        for (i, &s) in srv.iter().enumerate() {
            ep.add(s, events, i as u64)?;
        }
        Ok(EpollC { ep, srv, evs: vec![EP_EMPTY; out_len()], events, oneshot: mode == Mode::Oneshot })
    }
}

impl Collector for EpollC<'_> {
    fn collect(&mut self, exp: &mut Expect, _: &[u32]) -> Res<()> {
        while exp.pending > 0 {
            let n = self.ep.wait(&mut self.evs, WAIT)?;
            if n == 0 {
                return Err(missing(exp, "epoll_wait"));
            }
            for j in 0..n {
                let key = self.evs[j].u64 as usize;
                exp.take(key)?;
                read_one(self.srv[key], key)?;
                if self.oneshot {
                    self.ep.modify(self.srv[key], self.events, key as u64)?;
                }
            }
        }
        Ok(())
    }
    fn leftovers(&mut self) -> Res<usize> {
        self.ep.wait(&mut self.evs, Duration::ZERO)
    }
}

// --- mio (always edge-triggered; Oneshot = reregister after each event) -------------------------

pub struct MioC<'a> {
    poll: mio::Poll,
    events: mio::Events,
    srv: &'a [RawFd],
    oneshot: bool,
}

impl<'a> MioC<'a> {
    pub fn new(srv: &'a [RawFd], mode: Mode) -> Res<Self> {
        if mode == Mode::Level {
            return Err("mio has no level-triggered mode".into());
        }
        let poll = ctx(mio::Poll::new(), "mio::Poll::new")?;
        for (i, s) in srv.iter().enumerate() {
            sys::note(model::MIO_CTL);
            ctx(
                poll.registry().register(&mut mio::unix::SourceFd(s), mio::Token(i), mio::Interest::READABLE),
                "mio register",
            )?;
        }
        Ok(MioC { poll, events: mio::Events::with_capacity(out_len()), srv, oneshot: mode == Mode::Oneshot })
    }

    fn poll(&mut self, t: Duration) -> Res<()> {
        sys::note(model::MIO_POLL);
        match self.poll.poll(&mut self.events, Some(t)) {
            // Interrupted by a signal: no events this time; the caller polls again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            r => ctx(r, "mio poll"),
        }
    }
}

impl Collector for MioC<'_> {
    fn collect(&mut self, exp: &mut Expect, _: &[u32]) -> Res<()> {
        while exp.pending > 0 {
            self.poll(WAIT)?;
            if self.events.is_empty() {
                return Err(missing(exp, "mio::Poll::poll"));
            }
            for ev in self.events.iter() {
                let key = ev.token().0;
                exp.take(key)?;
                read_one(self.srv[key], key)?;
                if self.oneshot {
                    sys::note(model::MIO_CTL);
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
        self.poll(Duration::ZERO)?;
        Ok(self.events.iter().count())
    }
}

// --- polling ------------------------------------------------------------------------------------

pub struct PollingC<'a> {
    poller: polling::Poller,
    events: polling::Events,
    srv: &'a [RawFd],
    mode: polling::PollMode,
    oneshot: bool,
}

impl<'a> PollingC<'a> {
    pub fn new(srv: &'a [RawFd], mode: Mode) -> Res<Self> {
        let poller = ctx(polling::Poller::new(), "polling::Poller::new")?;
        let pm = match mode {
            Mode::Oneshot => polling::PollMode::Oneshot,
            Mode::Level => polling::PollMode::Level,
            Mode::Edge => polling::PollMode::Edge,
        };
        for (i, &s) in srv.iter().enumerate() {
            sys::note(model::POLLING_CTL);
            // SAFETY: each descriptor stays open until after teardown deleted it.
            ctx(unsafe { poller.add_with_mode(s, polling::Event::readable(i), pm) }, "polling add")?;
        }
        let cap = std::num::NonZeroUsize::new(out_len()).unwrap();
        Ok(PollingC {
            poller,
            events: polling::Events::with_capacity(cap),
            srv,
            mode: pm,
            oneshot: mode == Mode::Oneshot,
        })
    }

    fn wait(&mut self, t: Duration) -> Res<()> {
        self.events.clear();
        sys::note(model::POLLING_WAIT);
        match self.poller.wait(&mut self.events, Some(t)) {
            // Interrupted by a signal: no events this time; the caller polls again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            r => ctx(r, "polling wait").map(|_| ()),
        }
    }
}

impl Collector for PollingC<'_> {
    fn collect(&mut self, exp: &mut Expect, _: &[u32]) -> Res<()> {
        while exp.pending > 0 {
            self.wait(WAIT)?;
            if self.events.is_empty() {
                return Err(missing(exp, "polling::Poller::wait"));
            }
            for ev in self.events.iter() {
                let key = ev.key;
                exp.take(key)?;
                read_one(self.srv[key], key)?;
                if self.oneshot {
                    // SAFETY: the descriptor is open for the lifetime of the borrow.
                    let fd = unsafe { BorrowedFd::borrow_raw(self.srv[key]) };
                    sys::note(model::POLLING_CTL);
                    ctx(self.poller.modify_with_mode(fd, polling::Event::readable(key), self.mode), "polling modify")?;
                }
            }
        }
        Ok(())
    }
    fn leftovers(&mut self) -> Res<usize> {
        self.wait(Duration::ZERO)?;
        Ok(self.events.len())
    }
    fn teardown(&mut self) -> Res<()> {
        for &s in self.srv {
            // SAFETY: the descriptor is still open.
            let fd = unsafe { BorrowedFd::borrow_raw(s) };
            sys::note(model::POLLING_CTL);
            ctx(self.poller.delete(fd), "polling delete")?;
        }
        Ok(())
    }
}

// --- socknotify: the canonical loop; the re-enables of one batch go into the next `process` -----

pub struct SnC<'a> {
    port: CompletionPort,
    srv: &'a [OwnedFd],
    regs: Vec<Registration<'a>>,
    out: Vec<Completion>,
    trigger: Trigger,
}

impl<'a> SnC<'a> {
    pub fn new(mech: Mech, srv: &'a [OwnedFd], mode: Mode) -> Res<Self> {
        let port = mech.port(0)?;
        let trigger = match mode {
            Mode::Oneshot => Trigger::LEVEL_ONESHOT,
            Mode::Level => Trigger::LEVEL_PERSISTENT,
            Mode::Edge => Trigger::EDGE_PERSISTENT,
        };
        let mut regs = Vec::with_capacity(BATCH);
        for (base, chunk) in srv.chunks(BATCH).enumerate() {
            regs.extend(
                chunk.iter().enumerate().map(|(j, s)| Registration::enable(s, base * BATCH + j, Events::IN, trigger)),
            );
            apply(&port, &mut regs, "register")?;
        }
        Ok(SnC { port, srv, regs, out: vec![Completion::default(); out_len()], trigger })
    }
}

/// Applies `regs` with no dequeue (`process` with an empty output and timeout zero), checks
/// every result and clears `regs`.
pub fn apply(port: &CompletionPort, regs: &mut Vec<Registration<'_>>, what: &str) -> Res<()> {
    if regs.is_empty() {
        return Ok(());
    }
    let n = ctx(port.process(regs, &mut [], Some(Duration::ZERO)), what)?;
    if n != 0 {
        return Err(format!("{what}: process with an empty output returned {n} packets"));
    }
    check_results(regs, what)?;
    regs.clear();
    Ok(())
}

#[inline]
pub fn check_results(regs: &[Registration<'_>], what: &str) -> Res<()> {
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
        apply(&self.port, &mut self.regs, "final re-enable")
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
        let other = remove_all(&self.port, self.srv, &mut self.out)?;
        self.port.close();
        if other != 0 {
            return Err(format!("{other} readiness packet(s) came with the REMOVE packets (expected none)"));
        }
        Ok(())
    }
}

/// REMOVEs every registration of `srv` (keys are indices) in batches of [`BATCH`] and
/// dequeues the N REMOVE packets, checking each key comes once. Returns how many other
/// packets were seen on the way.
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
