//! `heap`: heap bytes per registration, from a counting global allocator (the bench binary's
//! `#[global_allocator]`): the net change of the registering thread's live heap bytes across
//! registering N sockets, divided by N. Only what the process asks `malloc` for is counted (requested sizes, not
//! the allocator's own overhead), and not the kernel's memory (epoll's `epitem`s etc.).

use crate::cli::Opts;
use crate::pairs::Pairs;
use crate::ready::collectors::{apply, check_results, BATCH};
use crate::run::{ctx, interleave, report, Cell, Col, Mech, Res};
use crate::stats::{group, Fmt};
use crate::sys::{Epoll, EP_IN, EP_ONESHOT};
use crate::table::Table;
use socknotify::{Completion, Events, Registration, Trigger};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell as LocalCell;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The system allocator, counting the live bytes of the threads that opened a [`Window`]
/// (thread-local: the scenarios that run many threads share no counter, and tests running
/// side by side do not count each other's allocations). socknotify starts no thread of its
/// own, so a registration's allocations are all made by the thread that registers.
pub struct Counting;

thread_local! {
    static ON: LocalCell<bool> = const { LocalCell::new(false) };
    static LIVE: LocalCell<i64> = const { LocalCell::new(0) };
}

#[inline]
fn count(delta: i64) {
    // try_with: no panic while a thread's locals are being torn down (these have no
    // destructor, so they never are, but an allocator must not unwind).
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|l| l.set(l.get() + delta));
        }
    });
}

// SAFETY: every call goes to `System` unchanged; the counting only reads the layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            count(l.size() as i64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            count(l.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as i64));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            count(new as i64 - l.size() as i64);
        }
        q
    }
}

/// While open, the calling thread's allocations are counted; [`Window::bytes`] is the net
/// change of its live bytes since the window opened (frees of blocks allocated before count
/// too: a net change). Windows nest.
pub struct Window {
    start: i64,
    was_on: bool,
}

impl Window {
    pub fn open() -> Window {
        let was_on = ON.with(|on| on.replace(true));
        Window { start: LIVE.with(|l| l.get()), was_on }
    }
    pub fn bytes(&self) -> i64 {
        LIVE.with(|l| l.get()) - self.start
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        ON.with(|on| on.set(self.was_on));
    }
}

/// One repetition: `[bytes per registration, bytes still live after everything was
/// unregistered and the mechanism dropped]`.
pub fn rep(mech: Mech, socks: &[OwnedFd]) -> Res<Vec<f64>> {
    let n = socks.len();
    let mut out = vec![Completion::default(); BATCH];
    let mut regs: Vec<Registration<'_>> = Vec::with_capacity(BATCH);
    let w = Window::open();
    let (per, after) = match mech {
        Mech::Epoll => {
            let ep = Epoll::new()?;
            let w1 = Window::open();
            for (i, s) in socks.iter().enumerate() {
                ep.add(s.as_raw_fd(), EP_IN | EP_ONESHOT, i as u64)?;
            }
            let b = w1.bytes();
            drop(ep);
            (b, w.bytes())
        }
        Mech::Mio => {
            let poll = ctx(mio::Poll::new(), "mio::Poll::new")?;
            let w1 = Window::open();
            for (i, s) in socks.iter().enumerate() {
                let fd = s.as_raw_fd();
                ctx(
                    poll.registry().register(&mut mio::unix::SourceFd(&fd), mio::Token(i), mio::Interest::READABLE),
                    "mio register",
                )?;
            }
            let b = w1.bytes();
            drop(poll);
            (b, w.bytes())
        }
        Mech::Polling => {
            let poller = ctx(polling::Poller::new(), "polling::Poller::new")?;
            let w1 = Window::open();
            for (i, s) in socks.iter().enumerate() {
                // SAFETY: deleted below while still open.
                ctx(unsafe { poller.add(s.as_raw_fd(), polling::Event::readable(i)) }, "polling add")?;
            }
            let b = w1.bytes();
            for s in socks {
                // SAFETY: the descriptor is open.
                ctx(poller.delete(unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) }), "polling delete")?;
            }
            drop(poller);
            (b, w.bytes())
        }
        Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp => {
            let port = mech.port(0)?;
            let w1 = Window::open();
            for (base, chunk) in socks.chunks(BATCH).enumerate() {
                regs.extend(
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(j, s)| Registration::enable(s, base * BATCH + j, Events::IN, Trigger::LEVEL_ONESHOT)),
                );
                apply(&port, &mut regs, "ENABLE")?;
            }
            let b = w1.bytes();
            drop(w1);
            let other = crate::ready::collectors::remove_all(&port, socks, &mut out)?;
            if other != 0 {
                return Err(format!("{other} readiness packet(s) for idle sockets"));
            }
            check_results(&regs, "REMOVE")?;
            let left = port.registrations();
            if left != 0 {
                return Err(format!("{left} registrations left after removing all"));
            }
            let n0 = port.dequeue(&mut out, Some(Duration::ZERO));
            if !matches!(n0, Ok(0)) {
                return Err(format!("packets left after the REMOVE packets: {n0:?}"));
            }
            port.close();
            drop(port);
            (b, w.bytes())
        }
        _ => return Err(format!("{} does not register sockets", mech.name())),
    };
    Ok(vec![per as f64 / n as f64, after as f64])
}

pub fn scenario(o: &Opts) -> (Table, Vec<String>) {
    let n = o.ns.as_ref().and_then(|v| v.last().copied()).unwrap_or(if o.quick { 1000 } else { 10_000 });
    let mechs = o.pick(&[Mech::Epoll, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp, Mech::Mio, Mech::Polling]);
    let mut errors = Vec::new();
    let mut cells = Vec::new();
    match Pairs::idle_sockets(o.kind, n) {
        Ok(socks) => {
            let reps = o.reps.min(3);
            let series = interleave(&format!("heap N={n}"), &mechs, reps, |m, _| rep(m, &socks));
            let cell = Cell { params: vec![group(n as i64)], series };
            errors.extend(cell.errors("heap"));
            cells.push(cell);
        }
        Err(e) => errors.push(format!("heap N={n}: cannot create the sockets: {e}")),
    }
    let intro =
        vec!["Net change of the process's live heap bytes (a counting global allocator: requested sizes) across \
         registering N idle sockets, divided by N; the mechanism's instance is created before and not counted. \
         'left after teardown' = live bytes changed by the whole repetition (instance created, N registered, all \
         removed, instance dropped): 0 when nothing is kept. Kernel memory is not counted for anyone."
            .to_string()];
    let cols = [
        Col { head: "bytes/registration", metric: 0, fmt: Fmt::F1, range: true },
        Col { head: "left after teardown (bytes)", metric: 1, fmt: Fmt::Int, range: false },
    ];
    (report("heap", intro, &["N"], &cells, &cols, &[]), errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::PairKind;

    #[test]
    fn the_window_counts_net_live_bytes() {
        let w = Window::open();
        let v: Vec<u8> = Vec::with_capacity(1000);
        assert!(w.bytes() >= 1000, "{}", w.bytes());
        drop(v);
        assert!(w.bytes() < 1000, "{}", w.bytes());
    }

    #[test]
    fn every_mechanism_is_measured() {
        let socks = Pairs::idle_sockets(PairKind::Unix, 300).unwrap();
        for m in [Mech::Epoll, Mech::Mio, Mech::Polling, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp] {
            let v = rep(m, &socks).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert!(v[0].is_finite(), "{}: {v:?}", m.name());
        }
        // Raw epoll keeps nothing in user space.
        assert_eq!(rep(Mech::Epoll, &socks).unwrap()[0], 0.0);
    }
}
