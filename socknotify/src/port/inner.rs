//! The port's shared state ([`Inner`]), its lock ([`Locked`]) and the lock order.
//!
//! # Lock order
//!
//! 1. `Inner::state`, the port lock: every change to the machine, the waiters and the
//!    running count happens under it.
//! 2. The process-wide claims table (`claims::CLAIMS`): taken only while the port lock is
//!    held (the machine reaches it through `PortClaims`), or alone (`forget_registration_raw`
//!    reads it and lets it go before it takes a port lock). Never the other way round.
//! 3. `Inner::ring`: the poller locks it with the port lock released, for the whole of its
//!    round; a thread holding the port lock only ever `try_lock`s it (and falls back to
//!    plain `epoll_ctl` when the poller has it), so no thread waits for the ring while
//!    holding the port lock. The mutex is uncontended in the steady state: only the thread
//!    in the poller role uses the ring.
//! 4. `Inner::posts`, the inbox of posts made without the port lock (`posts`), has no lock:
//!    a `post` claims a slot of its ring with a compare-and-swap; only holders of the port
//!    lock take from it or turn its fast path off, and they wait (a few instructions) only for
//!    a post between claiming its slot and filling it, which holds no lock.
//!
//! Condition variables belong to waiters; wake-ups decided under the port lock are made
//! after it is released ([`Locked`]).

use super::claims::PortClaims;
use super::posts::PostBox;
use super::sync::{lock, try_lock, wait, Condvar, Mutex, MutexGuard};
use crate::abi::Completion;
use crate::machine::{AuditBy, Machine, Token};
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub(super) static NEXT_PORT: AtomicU64 = AtomicU64::new(1);
pub(super) static NEXT_WAITER: AtomicU64 = AtomicU64::new(1);

/// The token of the port's own wake-up descriptor in its epoll set (never a machine token:
/// those carry a slot below 2^32 - 1 in their low half).
pub(super) const WAKE_TOKEN: u64 = u64::MAX;

/// Tokens in the port descriptor's own epoll instance (`Inner::pollfd`).
pub(super) const READY_TOKEN: u64 = 1;
pub(super) const NESTED_TOKEN: u64 = 0;

/// One port; [`CompletionPort`](super::CompletionPort)s are handles to it.
pub(crate) struct Inner {
    pub(super) id: u64,
    /// This port, weakly (what registrations record as their owner), made once.
    pub(super) me: Weak<Inner>,
    pub(super) epfd: OwnedFd,
    pub(super) wakefd: OwnedFd,
    /// The descriptor [`CompletionPort::as_fd`](super::CompletionPort) hands out: an epoll
    /// instance watching `readyfd` and, once it was first handed out, `epfd` (kernel readiness
    /// may be pending).
    pub(super) pollfd: OwnedFd,
    /// An eventfd kept signalled, once the port is polled, while a dequeue would find a packet
    /// (see [`Locked::settle`]).
    pub(super) readyfd: OwnedFd,
    /// The io_uring instance, used by the thread in the poller role (see the lock order).
    pub(super) ring: Option<Mutex<sys::Ring>>,
    /// The ring failed in a way that leaves it unusable; the port goes on with plain epoll.
    pub(super) ring_broken: AtomicBool,
    /// The fewest re-arms a call carries in the ring (the per-batch choice; 1 when io_uring
    /// was asked for by name).
    pub(super) ring_min_mods: usize,
    pub(super) concurrency: usize,
    pub(super) state: Mutex<PortState>,
    /// Posts made without the port lock (see `posts`).
    pub(super) posts: PostBox,
}

/// One blocked thread.
pub(super) struct Waiter {
    pub id: u64,
    pub capacity: usize,
    /// Packets handed to this thread by another one (valid once `served`, unless `direct`).
    pub buf: Vec<Completion>,
    pub served: Option<usize>,
    /// The thread served itself, straight into its caller's array (no copy through `buf`).
    pub direct: bool,
    /// Created the first time the thread sleeps on a condition variable (a thread that only
    /// ever waits in the kernel, as the poller, never needs one). Whenever the waiter is
    /// not the poller and the port lock is free, it is set.
    pub cv: Option<Arc<Condvar>>,
}

/// What the port lock protects.
pub(super) struct PortState {
    pub closed: bool,
    pub machine: Machine,
    /// Blocked threads, oldest first (the last unserved one is served first).
    pub waiters: Vec<Waiter>,
    /// Buffers of waiters that left, for the next ones (no allocation per hand-off).
    pub spare_bufs: Vec<Vec<Completion>>,
    /// The waiter sleeping in the kernel (`epoll_wait` or an io_uring round).
    pub poller: Option<u64>,
    /// Threads that returned from a dequeue on this port and are not back in one (D23).
    pub running: usize,
    /// Buffer for non-blocking harvests made under the lock.
    pub events: Vec<sys::EpollEvent>,
    /// Wake-ups decided under the lock, made once it is released (see [`Locked`]), so that a
    /// woken thread does not run straight into the lock its waker still holds.
    pub wakes: Vec<Arc<Condvar>>,
    /// The poller must be woken through the eventfd once the lock is released.
    pub wake_poller: bool,
    /// Since when entries applied without asking the kernel wait for an audit (user-space
    /// re-arms only): the first such entry, or the last audit when entries still wait; the
    /// next audit is due `AUDIT_INTERVAL` later.
    pub unverified_since: Option<Instant>,
    /// Polling pauses until then while stray reports wait for their re-arm (user-space
    /// re-arms only; see `Inner::stray_pause`).
    pub stray_pause: Option<Instant>,
    /// Counts for [`CompletionPort::stats`](super::CompletionPort::stats).
    pub counters: Counters,
    /// The port's descriptor was handed out: `epfd` is watched by `pollfd`, and `readyfd`
    /// follows the packet queue.
    pub polled: bool,
    /// `readyfd` is signalled (by [`Locked::settle`]).
    pub ready_signalled: bool,
    /// A non-blocking dequeue found packets but could not take them (the concurrency limit,
    /// D23): the running count it left behind (itself included). Once fewer threads run,
    /// `readyfd` is signalled again, a new edge for edge-triggered pollers.
    pub ready_stalled: Option<usize>,
    /// `epfd` could not join `pollfd`: `readyfd` stays signalled (see `mark_polled`).
    pub ready_always: bool,
    /// Reads the TCP counters of many edge registrations at once (see `absorb`).
    pub diag: sys::Diag,
    /// The sockets whose counters the reports being applied may need.
    pub probes: Vec<(std::os::fd::RawFd, u64)>,
    /// Posts take the port lock (the inbox's `slow`, as last set under this lock; see `posts`).
    pub posts_slow: bool,
}

/// Event counts of one port (see [`Stats`](crate::Stats)).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub posted: u64,
    pub delivered: u64,
    pub audits: u64,
    pub reuse_repairs: u64,
}

/// How often, at most, the port audits while user-space re-arms wait unconfirmed. An entry is
/// checked by the first audit that finds it at least one interval old (so between one and two
/// intervals after it was applied), unless a kernel report confirmed it before; this bounds
/// how long a registration made for a socket that reused the number of one closed behind the
/// port's back goes unwatched (issue 10: at most 100 ms).
pub(super) const AUDIT_INTERVAL: Duration = Duration::from_millis(45);

/// The longest a kernel wait is put off for stray reports (see `Inner::stray_pause`): the
/// time a running thread normally takes to read a socket and re-arm it, with room for a
/// loaded machine.
pub(super) const STRAY_PAUSE: Duration = Duration::from_millis(2);

/// Ports with at most this many live registrations are audited through the kernel's watch
/// list (all registrations at once, however recent their entries); larger ones by the
/// identity of each aged unconfirmed registration. Reading the watch list costs about two
/// identity checks per watched socket (`/proc` formats a line for each), so it is never the
/// cheaper way on a large port.
const SMALL_PORT: usize = 16;

/// The port's lock. Dropping it releases the mutex first and then makes the wake-ups that
/// were decided while it was held; no path can forget them.
pub(super) struct Locked<'a> {
    guard: Option<MutexGuard<'a, PortState>>,
    inner: &'a Inner,
}

impl std::ops::Deref for Locked<'_> {
    type Target = PortState;
    fn deref(&self) -> &PortState {
        self.guard.as_ref().expect("held")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut PortState {
        self.guard.as_mut().expect("held")
    }
}

impl Locked<'_> {
    /// Once the port is polled, makes `readyfd` follow the packet queue: signalled while a
    /// dequeue would find a packet (or the port is closed, so that the poller sees the error),
    /// reset otherwise. Done under the lock, on every release, so that a reset can never
    /// swallow a signal decided later; it costs a system call only on a change.
    fn settle(g: &mut PortState, inner: &Inner) {
        if !g.polled {
            return;
        }
        let want = g.closed || g.ready_always || g.machine.queued() > 0;
        let kick = g.ready_stalled.is_some_and(|level| g.running < level);
        if want && (!g.ready_signalled || kick) {
            sys::eventfd_signal(&inner.readyfd);
            g.ready_signalled = true;
            g.ready_stalled = None;
        } else if !want && g.ready_signalled {
            sys::eventfd_drain(&inner.readyfd);
            g.ready_signalled = false;
            g.ready_stalled = None;
        }
    }

    /// Releases the lock and makes the pending wake-ups.
    pub fn release(&mut self) {
        let Some(mut g) = self.guard.take() else { return };
        if self.inner.sync_posts(&mut g) {
            self.inner.dispatch(&mut g);
        }
        Self::settle(&mut g, self.inner);
        if g.wakes.is_empty() && !g.wake_poller {
            return; // nothing to wake: just unlock
        }
        let wakes = std::mem::take(&mut g.wakes);
        let poller = std::mem::replace(&mut g.wake_poller, false);
        drop(g);
        if poller {
            sys::eventfd_signal(&self.inner.wakefd);
        }
        for cv in wakes {
            sys::note_futex_call();
            cv.notify_one();
        }
    }

    /// Takes the lock again after [`release`](Self::release).
    pub fn reacquire(&mut self) {
        debug_assert!(self.guard.is_none());
        self.guard = Some(self.inner.raw_lock());
    }

    /// Waits on this thread's condition variable (releasing the lock while it waits).
    pub fn wait(&mut self, cv: &Condvar, timeout: Option<Duration>) {
        let mut g = self.guard.take().expect("held");
        // Posts that came in meanwhile may be for this thread: then it does not sleep.
        let moved = self.inner.sync_posts(&mut g);
        if moved {
            self.inner.dispatch(&mut g);
        }
        Self::settle(&mut g, self.inner);
        // Wake-ups decided by this thread go out before it sleeps.
        let wakes = std::mem::take(&mut g.wakes);
        if std::mem::replace(&mut g.wake_poller, false) {
            sys::eventfd_signal(&self.inner.wakefd);
        }
        for w in wakes {
            sys::note_futex_call();
            w.notify_one();
        }
        if moved {
            self.guard = Some(g); // a spurious wake-up: the caller's loop checks again
            return;
        }
        sys::note_futex_call();
        let mut g = wait(cv, g, timeout);
        g.machine.new_epoch();
        self.guard = Some(g);
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl Inner {
    /// True while the port takes the io_uring path.
    pub(super) fn ring_usable(&self) -> bool {
        self.ring.is_some() && !self.ring_broken.load(Ordering::Relaxed)
    }

    /// One io_uring call (or several, for a batch larger than the ring) that reads the
    /// identity of `probes`, applies `mods` and, with `wait`, waits (see `sys::Ring::rounds`).
    /// `None` when the port has no ring, or when it is busy (another thread waits on it) and
    /// `blocking` is false. A ring that fails is put out of use: the port goes on with epoll.
    pub(super) fn ring_rounds(
        &self,
        mods: &[sys::Mod],
        probes: &[RawFd],
        wait: Option<(&mut [sys::EpollEvent], Option<Duration>)>,
        blocking: bool,
    ) -> Option<std::io::Result<sys::Round>> {
        let ring = self.ring.as_ref()?;
        let mut ring = if blocking { lock(ring) } else { try_lock(ring)? };
        let round = ring.rounds(self.epfd.as_raw_fd(), mods, probes, wait);
        if ring.is_poisoned() {
            self.ring_broken.store(true, Ordering::Relaxed);
            diag!(warn, "the io_uring ring failed; the port goes on with plain epoll");
        }
        Some(round)
    }

    /// Takes the port lock (a new epoch for the machine: level samples before it are stale).
    pub(super) fn lock(&self) -> Locked<'_> {
        Locked { guard: Some(self.raw_lock()), inner: self }
    }

    /// Takes the port lock for a dequeue that applies no entries: posts made without the lock
    /// stay in the inbox, and the dequeue takes them from there after the FIFO (see `posts`).
    pub(super) fn lock_for_dequeue(&self) -> Locked<'_> {
        let mut st = lock(&self.state);
        st.machine.new_epoch();
        Locked { guard: Some(st), inner: self }
    }

    pub(super) fn raw_lock(&self) -> MutexGuard<'_, PortState> {
        let mut st = lock(&self.state);
        st.machine.new_epoch();
        self.take_posts(&mut st);
        st
    }

    /// How long until the next audit is due, if one will be (user-space re-arms went
    /// unconfirmed); a waiter in the kernel wakes up for it.
    pub(super) fn audit_due_in(&self, st: &PortState) -> Option<Duration> {
        if st.machine.unverified() == 0 {
            return None; // every entry was confirmed by the kernel since
        }
        st.unverified_since.map(|t| AUDIT_INTERVAL.saturating_sub(t.elapsed()))
    }

    /// Starts the audit clock when entries went unconfirmed (call after applying entries).
    pub(super) fn note_unverified(&self, st: &mut PortState) {
        if st.unverified_since.is_none() && st.machine.unverified() > 0 {
            st.unverified_since = Some(Instant::now());
        }
    }

    /// Audits the registrations whose entries went unconfirmed, when an audit is due (see
    /// `Builder::closes_through_port` and [`Machine::audit`]).
    #[inline]
    pub(super) fn audit_if_due(&self, st: &mut PortState, weak: &Weak<Inner>) {
        if st.machine.unverified() == 0 {
            st.unverified_since = None; // the usual case: nothing to check, no call
            return;
        }
        self.audit_unverified_if_due(st, weak);
    }

    /// [`audit_if_due`](Self::audit_if_due) once some registration is unverified.
    fn audit_unverified_if_due(&self, st: &mut PortState, weak: &Weak<Inner>) {
        if self.audit_due_in(st) != Some(Duration::ZERO) {
            return;
        }
        let mut claims = PortClaims { port: self.id, owner: weak };
        let watched = if st.machine.live() <= SMALL_PORT { sys::epoll::watched(&self.epfd).ok() } else { None };
        let repaired = match watched {
            Some(watched) => {
                let mut kernel = sys::SysKernel::new(&self.epfd);
                st.machine.audit(AuditBy::WatchList(&watched), &mut kernel, &mut claims)
            }
            None => {
                let answers = self.identities(&st.machine.audit_questions());
                let mut kernel = sys::SysKernel::new(&self.epfd).with_identities(&answers);
                st.machine.audit(AuditBy::Identity, &mut kernel, &mut claims)
            }
        };
        // Entries too recent for this audit wait for the next one.
        st.unverified_since = (st.machine.unverified() > 0).then(Instant::now);
        st.counters.audits += 1;
        st.counters.reuse_repairs += repaired as u64;
        if repaired > 0 {
            diag!(
                warn,
                "closes_through_port broken: {repaired} registration(s) lost their socket to a plain close(); dropped, and the new socket at the number registered"
            );
        }
        self.dispatch(st);
    }

    /// The identity of each of `fds` (sorted), read in one io_uring round when there are
    /// several and the ring is free; otherwise nothing, and each question costs a system call.
    fn identities(&self, fds: &[RawFd]) -> sys::Answers {
        if fds.len() < 2 || !self.ring_usable() || !sys::ring_probes() {
            return sys::Answers::default();
        }
        match self.ring_rounds(&[], fds, None, false) {
            Some(Ok(round)) => sys::Answers::identities(fds, round.cookies),
            _ => sys::Answers::default(),
        }
    }

    /// Turns pending epoll events into packets without blocking.
    pub(super) fn harvest(&self, st: &mut PortState) {
        let mut events = std::mem::take(&mut st.events);
        if let Ok(n) = sys::epoll_wait(&self.epfd, &mut events, Some(Duration::ZERO)) {
            self.absorb(st, &events[..n], None);
        }
        st.events = events;
    }

    /// Applies harvested epoll events to the machine. Only the poller resets the wake-up
    /// eventfd: a signal meant for it must never be consumed by a thread that merely collects
    /// events, or the poller could sleep on with packets in hand. (The eventfd is watched
    /// level-triggered, so an undrained signal keeps waking the poller until it drains it.)
    ///
    /// `wait_began` is, for the poller, the epoch in which its kernel wait began (the lock
    /// was released then): a registration re-armed since may have been reported from before
    /// its re-arm, so the machine samples such a packet again at delivery.
    pub(super) fn absorb(&self, st: &mut PortState, events: &[sys::EpollEvent], wait_began: Option<u64>) {
        // Edge registrations of TCP sockets need byte counters (D18): when several are
        // reported, read them all at once rather than two system calls each.
        st.probes.clear();
        for ev in events {
            if ev.u64 != WAKE_TOKEN {
                let wanted = st.machine.counters_wanted(Token(ev.u64), sys::epoll::readiness(ev.events));
                st.probes.extend(wanted);
            }
        }
        let counters = if st.probes.len() >= 2 { st.diag.counters(&st.probes) } else { &[] };
        let mut kernel = sys::SysKernel::new(&self.epfd).with_counters(counters);
        st.machine.set_reports_since(wait_began);
        for ev in events {
            let (token, revents) = (ev.u64, ev.events);
            if token == WAKE_TOKEN {
                // A signal with no poller in the kernel is stale (its poller left without
                // seeing it): a polled port resets it, or its descriptor would stay readable.
                if wait_began.is_some() || (st.polled && st.poller.is_none()) {
                    sys::eventfd_drain(&self.wakefd);
                }
            } else {
                let mut claims = PortClaims { port: self.id, owner: &self.me };
                st.machine.on_event(Token(token), sys::epoll::readiness(revents), &mut kernel, &mut claims);
            }
        }
        st.machine.set_reports_since(None);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: release what the port still claims (D6).
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if !st.closed {
            let weak = Weak::new();
            st.machine.clear(&mut PortClaims { port: self.id, owner: &weak });
        }
    }
}
