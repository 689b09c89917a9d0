//! Waiting threads (decisions D22, D23): the LIFO of blocked threads, the hand-off of packets
//! to the most recent one, the poller role (one waiter sleeps in the kernel on behalf of all),
//! and which threads count as running.

use super::batch::Deferred;
use super::claims::PortClaims;
use super::inner::{Inner, Locked, PortState, Waiter, AUDIT_INTERVAL, NEXT_WAITER, STRAY_PAUSE};
use super::sync::{thread_local, Condvar};
use crate::abi::{Completion, Entry, Error};
use crate::sys;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Which port this thread is "running" on (D23), if any. Dropping it (thread exit, or a
/// dequeue on another port) stops the thread from counting as running there. The port is
/// kept while the thread is in a call on it (`active` false), so that the usual sequence of
/// calls on one port makes no reference-count traffic.
struct Association {
    port: Option<Weak<Inner>>,
    /// The thread counts as running on `port`.
    active: bool,
}

impl Drop for Association {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        if let Some(port) = self.port.take().and_then(|w| w.upgrade()) {
            port.leave_running();
        }
    }
}

// loom's thread_local! takes no `const` initialiser.
#[allow(clippy::missing_const_for_thread_local)]
mod association {
    use super::{thread_local, Association};
    thread_local! {
        pub(super) static ASSOCIATION: std::cell::RefCell<Association> = std::cell::RefCell::new(Association { port: None, active: false });
        /// The event buffer of this thread's last wait, kept for its next one.
        pub(super) static EVENTS: std::cell::Cell<Vec<crate::sys::EpollEvent>> = std::cell::Cell::new(Vec::new());
        /// This thread's waiter id (0: not drawn yet).
        pub(super) static WAITER_ID: std::cell::Cell<u64> = std::cell::Cell::new(0);
        /// This thread's condition variable (see `thread_condvar`).
        pub(super) static CONDVAR: std::cell::OnceCell<std::sync::Arc<super::Condvar>> = std::cell::OnceCell::new();
    }
}
use association::{ASSOCIATION, CONDVAR, EVENTS, WAITER_ID};

/// A waiter's buffer goes back to the port's spares (a few are kept).
fn recycle(st: &mut PortState, buf: Vec<Completion>) {
    if buf.capacity() > 0 && st.spare_bufs.len() < 8 {
        st.spare_bufs.push(buf);
    }
}

/// This thread's condition variable, made once and reused by all its waits (a thread is at
/// most one waiter at a time). A wake-up meant for an earlier wait that lands on a later one
/// is a spurious wake-up, which the waiter's loop absorbs (it checks `served` under the lock).
fn thread_condvar() -> Arc<Condvar> {
    CONDVAR.with(|c| c.get_or_init(|| Arc::new(Condvar::new())).clone())
}

/// This thread's waiter id, unique in the process: a thread is at most one waiter at a time,
/// and nothing keeps a waiter's id once it left (`PortState::poller` is cleared when its
/// round ends), so one id per thread, drawn once, serves all its waits.
fn waiter_id() -> u64 {
    WAITER_ID.with(|c| {
        if c.get() == 0 {
            c.set(NEXT_WAITER.fetch_add(1, Ordering::Relaxed));
        }
        c.get()
    })
}

impl Inner {
    /// Takes this thread's association; true if it was with this port (the caller then
    /// decrements `running` under the lock). An association with another port is dropped,
    /// which stops the thread from counting as running there.
    pub(super) fn take_association(self: &Arc<Self>) -> bool {
        let other = ASSOCIATION.with(|a| {
            let mut a = a.borrow_mut();
            if a.port.as_ref().is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(self))) {
                return Ok(std::mem::replace(&mut a.active, false));
            }
            Err(std::mem::replace(&mut *a, Association { port: None, active: false }))
        });
        // An association with another port is dropped (outside the borrow: it takes that
        // port's lock).
        other.unwrap_or_else(|old| {
            drop(old);
            false
        })
    }

    pub(super) fn associate(self: &Arc<Self>) {
        let old = ASSOCIATION.with(|a| {
            let mut a = a.borrow_mut();
            if a.port.as_ref().is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(self))) {
                a.active = true;
                return None;
            }
            Some(std::mem::replace(&mut *a, Association { port: Some(Arc::downgrade(self)), active: true }))
        });
        drop(old);
    }

    /// A thread stopped running on this port (it exited, or dequeues elsewhere now).
    pub(super) fn leave_running(&self) {
        let mut st = self.lock();
        st.running = st.running.saturating_sub(1);
        self.dispatch(&mut st);
        self.promote(&mut st);
    }

    /// Hands queued packets to blocked threads, most recent first, while fewer than
    /// `concurrency` threads run (D22, D23).
    pub(super) fn dispatch(&self, st: &mut PortState) {
        self.dispatch_as(st, None);
    }

    /// [`dispatch`](Self::dispatch) run by waiter `me`, which needs no wake-up of its own and
    /// takes its packets straight into its caller's array `out`.
    pub(super) fn dispatch_as(&self, st: &mut PortState, mut me: Option<(u64, &mut [Completion])>) {
        let weak = Weak::new();
        while st.machine.queued() > 0 && st.running < self.concurrency {
            let Some(i) = st.waiters.iter().rposition(|w| w.served.is_none()) else {
                break;
            };
            let PortState { machine, waiters, spare_bufs, .. } = st;
            let w = &mut waiters[i];
            let mut kernel = sys::SysKernel::new(&self.epfd);
            let mut claims = PortClaims { port: self.id, owner: &weak };
            let mine = me.as_mut().filter(|(id, _)| *id == w.id);
            let n = if let Some((_, out)) = mine {
                w.direct = true;
                machine.deliver(&mut out[..w.capacity], &mut kernel, &mut claims)
            } else {
                // No more room than packets queued: the cost follows what is delivered.
                let cap = w.capacity.min(machine.queued());
                if w.buf.len() < cap {
                    // A buffer of the port's spares, taken only by a waiter that needs one.
                    if w.buf.capacity() == 0 {
                        w.buf = spare_bufs.pop().unwrap_or_default();
                    }
                    w.buf.resize(cap, Completion::default());
                }
                machine.deliver(&mut w.buf[..cap], &mut kernel, &mut claims)
            };
            if n == 0 {
                w.direct = false;
                break;
            }
            st.counters.delivered += n as u64;
            w.served = Some(n);
            st.running += 1;
            let id = st.waiters[i].id;
            if me.as_ref().is_some_and(|(m, _)| *m == id) {
                // The dispatching thread served itself.
            } else if st.poller == Some(id) {
                st.wake_poller = true;
            } else if let Some(cv) = &st.waiters[i].cv {
                let cv = cv.clone();
                st.wakes.push(cv);
            }
        }
    }

    /// Wakes the most recent waiter to take over `epoll_wait` when nobody sleeps there (unless
    /// a stray pause holds polling back, see [`stray_pause`](Self::stray_pause)).
    pub(super) fn promote(&self, st: &mut PortState) {
        if st.poller.is_none()
            && st.machine.live() > 0
            && st.running < self.concurrency
            && self.stray_pause(st).is_none()
        {
            if let Some(cv) = st.waiters.iter().rev().find(|w| w.served.is_none()).and_then(|w| w.cv.clone()) {
                st.wakes.push(cv);
            }
        }
    }

    /// With user-space re-arms, a kernel wait may return disabled registrations whose socket
    /// is still ready: usually their packet was just handed to a running thread, which has
    /// not read the socket yet and will re-arm it soon. Quieting such a stray watch costs an
    /// `EPOLL_CTL_MOD`, and the re-arm another; waiting again at once would return it again.
    /// So while strays are unresolved and threads run, polling pauses (for at most
    /// [`STRAY_PAUSE`]): the next thread that comes back, most often the one re-arming them,
    /// polls. Returns how long the pause still lasts, `None` when there is none.
    /// (A pause that ran out stays recorded until its strays are quieted, so that it is not
    /// started again.)
    pub(super) fn stray_pause(&self, st: &mut PortState) -> Option<Duration> {
        let until = st.stray_pause?;
        if st.running == 0 || !st.machine.has_strays() {
            st.stray_pause = None;
            return None;
        }
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// At the end of a call that leaves no packet with its thread: stray reports are quieted
    /// at once when no running thread could re-arm them (nobody would end a pause), so that
    /// the port's kernel readiness (and its pollable descriptor) goes quiet.
    pub(super) fn settle_strays(&self, st: &mut PortState) {
        if st.machine.user_rearm() && st.running == 0 && st.machine.has_strays() {
            st.machine.quiet_strays(&mut sys::SysKernel::new(&self.epfd));
            st.stray_pause = None;
        }
    }

    /// The dequeue half of every call. On `Ok` the caller counts the thread as running.
    pub(super) fn wait_for_packets<'a, E: Entry>(
        &'a self,
        mut st: Locked<'a>,
        out: &mut [Completion],
        timeout: Option<Duration>,
        start: Option<Instant>,
        regs: &mut [E],
        deferred: &mut Deferred<'_>,
    ) -> (Locked<'a>, Result<usize, Error>) {
        let weak = Weak::new();
        if !deferred.mods.is_empty() && (st.machine.queued() > 0 || st.running >= self.concurrency) {
            // This thread will not be the one that waits: apply the re-arms now.
            self.flush(&mut st, regs, deferred);
        }
        // A thread that enters takes what is queued without blocking, if allowed (D23).
        if st.running < self.concurrency {
            // Collect readiness the kernel holds, unless this thread is about to sleep in
            // epoll_wait anyway: so one call returns everything that is queued (spec §3.3).
            let queued = st.machine.queued();
            // A call whose deadline passed while its entries were applied still returns what
            // they queued (spec §3.3 step 2, T55).
            if queued < out.len()
                && st.machine.live() > 0
                && (queued > 0
                    || st.poller.is_some()
                    || timeout == Some(Duration::ZERO)
                    || start.zip(timeout).is_some_and(|(s, t)| Instant::now() >= s + t))
            {
                // Re-arms that were to ride with the wait apply first: this call will not
                // wait, and what they make ready is collected with the rest.
                self.flush(&mut st, regs, deferred);
                self.harvest(&mut st);
            }
            let mut n = 0;
            if st.machine.queued() > 0 {
                let mut kernel = sys::SysKernel::new(&self.epfd);
                n = st.machine.deliver(out, &mut kernel, &mut PortClaims { port: self.id, owner: &weak });
                st.counters.delivered += n as u64;
            }
            if st.machine.queued() == 0 {
                // Posts made without the port lock come after everything in the FIFO.
                let will_block = n == 0 && timeout != Some(Duration::ZERO);
                n += self.deliver_posts(&mut st, &mut out[n..], will_block);
            }
            if n > 0 {
                // Returning without a wait: no re-arm may be left behind.
                self.flush(&mut st, regs, deferred);
                self.dispatch(&mut st);
                return (st, Ok(n));
            }
        }
        if timeout == Some(Duration::ZERO) {
            // Packets this thread may not take (D23): a polled port signals its descriptor
            // again once a running thread stops (see `Locked::settle`).
            // The caller counts as running once it returns, hence the + 1.
            st.ready_stalled = (st.machine.queued() > 0).then_some(st.running + 1);
            return (st, Ok(0));
        }
        let deadline = timeout.map(|t| start.unwrap_or_else(Instant::now) + t);
        // The first pass waits the whole timeout when it began just now: one clock read per
        // blocking call, not two.
        let mut fresh = start.is_none();
        let id = waiter_id();
        st.waiters.push(Waiter { id, capacity: out.len(), buf: Vec::new(), served: None, direct: false, cv: None });
        let mut events: Vec<sys::EpollEvent> = EVENTS.with(|e| e.take());
        let result = loop {
            let i = st.waiters.iter().rposition(|w| w.id == id).expect("own waiter entry");
            if let Some(n) = st.waiters[i].served {
                let w = st.waiters.remove(i);
                if !w.direct {
                    out[..n].copy_from_slice(&w.buf[..n]);
                }
                recycle(&mut st, w.buf);
                // The dispatcher counted us as running; the caller counts us again.
                st.running -= 1;
                // Packets queued since the hand-off found no other waiter to take them (the
                // dispatcher runs after every change): this thread, running now, takes them
                // as its next call would, in the same return.
                let mut n = n;
                if n < out.len() && st.machine.queued() > 0 {
                    let mut kernel = sys::SysKernel::new(&self.epfd);
                    let more =
                        st.machine.deliver(&mut out[n..], &mut kernel, &mut PortClaims { port: self.id, owner: &weak });
                    st.counters.delivered += more as u64;
                    n += more;
                }
                if st.machine.queued() == 0 {
                    n += self.deliver_posts(&mut st, &mut out[n..], false);
                }
                break Ok(n);
            }
            if st.closed {
                let w = st.waiters.remove(i);
                recycle(&mut st, w.buf);
                break Err(Error::Abandoned);
            }
            let remaining = match deadline {
                None => None,
                _ if std::mem::take(&mut fresh) => timeout,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => {
                        let w = st.waiters.remove(i);
                        recycle(&mut st, w.buf);
                        break Ok(0);
                    }
                },
            };
            let mut poll = st.poller.is_none() && st.machine.live() > 0 && st.running < self.concurrency;
            if poll && st.machine.user_rearm() && st.machine.has_strays() {
                if st.stray_pause.is_none() && st.running > 0 {
                    st.stray_pause = Some(Instant::now() + STRAY_PAUSE);
                }
                if self.stray_pause(&mut st).is_some() {
                    poll = false; // wait on the condition variable until the pause ends
                } else {
                    // Nobody runs who could re-arm them, or the pause ran out: quiet them.
                    st.machine.quiet_strays(&mut sys::SysKernel::new(&self.epfd));
                    st.stray_pause = None;
                }
            }
            if poll {
                // With user-space re-arms the poller wakes at least every AUDIT_INTERVAL, so
                // that an audit another thread's unconfirmed re-arm made due runs in time
                // (without the re-arming thread having to wake it: that would cost a system
                // call per re-arm).
                let remaining = match st.machine.user_rearm() {
                    true => {
                        let bound = self.audit_due_in(&st).unwrap_or(AUDIT_INTERVAL).max(Duration::from_millis(1));
                        Some(remaining.map_or(bound, |r| r.min(bound)))
                    }
                    false => remaining,
                };
                // Become the poller: sleep in epoll_wait on behalf of every waiter.
                st.poller = Some(id);
                let want: usize = st.waiters.iter().filter(|w| w.served.is_none()).map(|w| w.capacity).sum();
                let want = want.clamp(1, 1024);
                if events.len() < want {
                    events.resize(want, sys::EpollEvent { events: 0, u64: 0 });
                }
                let buf = &mut events[..want];
                if !deferred.mods.is_empty() && self.ring_usable() {
                    self.round(&mut st, buf, remaining, regs, deferred);
                } else {
                    let began = st.machine.epoch();
                    st.release();
                    let n = sys::epoll_wait(&self.epfd, buf, remaining);
                    st.reacquire();
                    st.poller = None;
                    if let Ok(n) = n {
                        self.absorb(&mut st, &buf[..n], Some(began));
                    }
                }
                self.audit_if_due(&mut st, deferred.weak);
                self.dispatch_as(&mut st, Some((id, &mut *out)));
            } else {
                let cv = st.waiters[i].cv.get_or_insert_with(thread_condvar).clone();
                let remaining = match self.stray_pause(&mut st) {
                    Some(pause) => Some(remaining.map_or(pause, |r| r.min(pause))),
                    None => remaining,
                };
                st.wait(&cv, remaining);
            }
        };
        EVENTS.with(|e| e.set(events));
        // Re-arms still deferred (the wait ended before this thread polled) apply now.
        self.flush(&mut st, regs, deferred);
        self.promote(&mut st);
        (st, result)
    }

    /// The poller's io_uring round: this batch's deferred re-arms, then the wait, in one
    /// system call. A failed re-arm is only seen when the round ends, so a round that carries
    /// re-arms is bounded (`sys::MOD_ROUND_WAIT`); the entries are then repaired.
    fn round<E: Entry>(
        &self,
        st: &mut Locked<'_>,
        buf: &mut [sys::EpollEvent],
        remaining: Option<Duration>,
        regs: &mut [E],
        deferred: &mut Deferred<'_>,
    ) {
        let mods = std::mem::take(&mut deferred.mods);
        let bounded = Some(remaining.map_or(sys::MOD_ROUND_WAIT, |r| r.min(sys::MOD_ROUND_WAIT)));
        let began = st.machine.epoch();
        st.release();
        let round = self.ring_rounds(&mods, &[], Some((&mut *buf, bounded)), true);
        st.reacquire();
        st.poller = None;
        match round {
            Some(Ok(r)) => {
                self.repair(st, regs, &mods, &r.failed, deferred.weak);
                self.absorb(st, &buf[..r.events], Some(began));
            }
            _ => {
                let failed = self.apply_mods_now(&mods);
                self.repair(st, regs, &mods, &failed, deferred.weak);
            }
        }
    }
}
