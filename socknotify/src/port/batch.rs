//! One call: apply a batch of entries in order, then dequeue (spec §3.3), and the re-arms
//! that ride with the wait on the io_uring path.

use super::claims::PortClaims;
use super::inner::{Inner, PortState};
use super::sync::try_lock;
use super::CompletionPort;
use crate::abi::{Completion, Entry, Error, Operation};
use crate::sys;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Re-arms applied to the machine but not yet to the kernel: they go with the wait.
pub(super) struct Deferred<'w> {
    pub mods: Vec<sys::Mod>,
    pub weak: &'w Weak<Inner>,
}

impl CompletionPort {
    /// Applies `regs` in order, writing each entry's result, then dequeues into `out`
    /// (nothing with an empty `out`). The call's shape was validated by the caller (the safe
    /// API or the Windows-shaped front end), once: here it is not checked again.
    pub(crate) fn call<E: Entry>(
        &self,
        regs: &mut [E],
        out: &mut [Completion],
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        let start = Instant::now();
        let inner = &self.inner;
        let weak = Arc::downgrade(inner);
        // Leaving any port we are running on (D23); this one is left under its lock below.
        let was_running_here = !out.is_empty() && inner.take_association();
        let mut st = inner.lock();
        if st.closed {
            return Err(Error::InvalidHandle);
        }
        if st.machine.reserve(regs.len(), regs.len()).is_err() {
            if was_running_here {
                st.running -= 1;
                inner.dispatch(&mut st);
            }
            return Err(Error::NoBuffers);
        }
        // Re-arms may ride on this thread's wait, in one io_uring call, when this thread is
        // going to be the one that waits in the kernel, and when there are enough of them
        // for a ring round to beat plain `epoll_ctl`s and `epoll_wait` (chosen per batch).
        let mut deferred = Deferred { mods: Vec::new(), weak: &weak };
        let defer = inner.ring_usable()
            && !out.is_empty()
            && st.poller.is_none()
            && timeout != Some(Duration::ZERO)
            && regs.len() >= inner.ring_min_mods;
        let mut enabled = false;
        if !regs.is_empty() {
            let was_live = st.machine.live();
            if was_live > 0
                && regs.iter().any(|e| e.fd().is_some_and(|fd| st.machine.keeps_pending_packets(fd, e.operation())))
            {
                // Packets Windows would already have queued survive a DISABLE (T44) or a
                // re-ENABLE of an edge registration: collect them from the kernel first.
                inner.harvest(&mut st);
            }
            let immediate = if defer { not_deferrable(&st, regs) } else { Vec::new() };
            for (i, e) in regs.iter_mut().enumerate() {
                let deferred_here = defer
                    && e.fd().is_some_and(|fd| {
                        st.machine.deferrable(fd, e.operation()) && immediate.binary_search(&fd).is_err()
                    });
                let this_enabled = if deferred_here {
                    let mut kernel = sys::SysKernel::deferring(&inner.epfd, &mut deferred.mods, i as u64);
                    inner.apply_entry(&mut st, e, &mut kernel, &weak)
                } else {
                    inner.apply_entry(&mut st, e, &mut sys::SysKernel::new(&inner.epfd), &weak)
                };
                enabled |= this_enabled && !st.machine.last_in_user_space();
            }
            inner.note_unverified(&mut st);
            inner.audit_if_due(&mut st, &weak);
            inner.dispatch(&mut st);
            if (was_live == 0 && st.machine.live() > 0) || st.stray_pause.is_some() {
                // (A re-arm may have resolved the strays a paused poller waits for.)
                inner.promote(&mut st);
            }
        }
        if out.is_empty() {
            if enabled {
                // Windows queues a level packet at ENABLE: collect it now, so that it is queued
                // (and survives a close of the socket, D21) even if nobody dequeues for a while.
                // A re-arm in user space (`closes_through_port`) asked nothing of the kernel and
                // leaves nothing new to collect: it stays free of system calls.
                inner.harvest(&mut st);
                inner.dispatch(&mut st);
            }
            inner.settle_strays(&mut st);
            return Ok(0);
        }
        if was_running_here {
            st.running -= 1;
        }
        let deadline = timeout.map(|t| start + t);
        let (mut st, result) = inner.wait_for_packets(st, out, timeout, deadline, regs, &mut deferred);
        match result {
            Ok(n) => {
                if n == 0 {
                    inner.settle_strays(&mut st);
                }
                st.running += 1;
                drop(st);
                inner.associate();
            }
            Err(_) => inner.dispatch(&mut st),
        }
        result
    }
}

/// The descriptors whose entries must reach the kernel at once, sorted: those named by more
/// than one entry, and those of any entry that is not a plain re-arm. Only the remaining
/// re-arms ride with the wait, so the kernel sees every descriptor's operations in the
/// batch's order.
fn not_deferrable<E: Entry>(st: &PortState, regs: &[E]) -> Vec<RawFd> {
    let mut fds: Vec<RawFd> = regs.iter().filter_map(|e| e.fd()).collect();
    fds.sort_unstable();
    let mut immediate: Vec<RawFd> = fds.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    immediate.extend(regs.iter().filter_map(|e| e.fd().filter(|&fd| !st.machine.deferrable(fd, e.operation()))));
    immediate.sort_unstable();
    immediate.dedup();
    immediate
}

impl Inner {
    /// Applies one entry and writes its result; true for a successful ENABLE.
    pub(super) fn apply_entry<E: Entry>(
        &self,
        st: &mut PortState,
        e: &mut E,
        kernel: &mut sys::SysKernel<'_>,
        weak: &Weak<Inner>,
    ) -> bool {
        let mut claims = PortClaims { port: self.id, owner: weak };
        let op = e.operation();
        let result = st.machine.apply(e.fd(), e.key(), op, kernel, &mut claims);
        let enabled = result.is_ok() && matches!(op, Some(Operation::Enable { .. }));
        e.set_result(result);
        enabled
    }

    /// Entries whose deferred re-arm did not apply: `(entry index, errno)`. The descriptor no
    /// longer names the registered socket, so that registration is dropped silently (D21),
    /// and the entry is applied again, now synchronously, as it would have been without
    /// io_uring.
    ///
    /// Entries are repaired in batch order. Only the registration the failed re-arm was made
    /// for is forgotten: an earlier repair (or another thread, while the round waited) may
    /// already have registered the socket that now has the number, and the entry then
    /// applies to that registration (a re-ENABLE keeps its key, D15).
    pub(super) fn repair<E: Entry>(
        &self,
        st: &mut PortState,
        regs: &mut [E],
        mods: &[sys::Mod],
        failed: &[(u64, i32)],
        weak: &Weak<Inner>,
    ) {
        let mut failed = failed.to_vec();
        failed.sort_unstable_by_key(|&(tag, _)| tag);
        for (tag, _errno) in failed {
            let Some(e) = usize::try_from(tag).ok().and_then(|i| regs.get_mut(i)) else { continue };
            let token = mods.iter().find(|m| m.tag == tag).map(|m| crate::machine::Token(m.token));
            if let Some(fd) = e.fd() {
                if token.is_some() && st.machine.token_of(fd) == token {
                    let mut claims = PortClaims { port: self.id, owner: weak };
                    diag!(
                        debug,
                        "descriptor {fd} was closed and now names another socket: its registration is dropped (D21)"
                    );
                    st.machine.forget_fd(fd, &mut sys::SysKernel::new(&self.epfd), &mut claims);
                }
            }
            self.apply_entry(st, e, &mut sys::SysKernel::new(&self.epfd), weak);
        }
    }

    /// Applies deferred re-arms now, without waiting: in one io_uring call when the ring is
    /// free, else (the poller holds it) with one `epoll_ctl` each.
    pub(super) fn flush<E: Entry>(&self, st: &mut PortState, regs: &mut [E], deferred: &mut Deferred<'_>) {
        if deferred.mods.is_empty() {
            return;
        }
        let mods = std::mem::take(&mut deferred.mods);
        let round = self.ring.as_ref().and_then(try_lock).map(|mut ring| {
            let r = ring.rounds(self.epfd.as_raw_fd(), &mods, None);
            if ring.is_poisoned() {
                self.ring_broken.store(true, Ordering::Relaxed);
                diag!(warn, "the io_uring ring failed; the port goes on with plain epoll");
            }
            r
        });
        let failed = match round {
            Some(Ok(r)) => r.failed,
            _ => self.apply_mods_now(&mods),
        };
        self.repair(st, regs, &mods, &failed, deferred.weak);
    }

    /// Applies re-arms with one `epoll_ctl` each (the ring is busy or failed); re-applying
    /// one the ring already applied changes nothing. Returns the failures as a round would.
    pub(super) fn apply_mods_now(&self, mods: &[sys::Mod]) -> Vec<(u64, i32)> {
        mods.iter()
            .filter_map(|m| {
                sys::epoll_mod(&self.epfd, m.fd, m.flags, m.token).err().map(|e| (m.tag, e.raw_os_error().unwrap_or(0)))
            })
            .collect()
    }
}
