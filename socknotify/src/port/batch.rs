//! One call: apply a batch of entries in order, then dequeue (spec §3.3), and the re-arms
//! that ride with the wait on the io_uring path.

use super::claims::PortClaims;
use super::inner::{Inner, PortState};
use super::CompletionPort;
use crate::abi::{Completion, Entry, Error, Operation};
use crate::sys;
use std::os::fd::RawFd;
use std::sync::Weak;
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
        // The clock is read only when it can matter: a call with entries and a finite, non-zero
        // timeout measures it from its start (T55); a plain dequeue from when it blocks (later,
        // so never early, D5), and a dequeue that finds packets never reads it.
        let start = (!regs.is_empty() && timeout.is_some_and(|t| !t.is_zero())).then(Instant::now);
        let inner = &self.inner;
        let weak = &inner.me;
        // Leaving any port we are running on (D23); this one is left under its lock below.
        let was_running_here = !out.is_empty() && inner.take_association();
        // A plain dequeue takes posts made without the port lock straight from the inbox.
        let mut st = if regs.is_empty() && !out.is_empty() { inner.lock_for_dequeue() } else { inner.lock() };
        if st.closed {
            return Err(Error::InvalidHandle);
        }
        if !regs.is_empty() && st.machine.reserve(regs.len(), regs.len()).is_err() {
            if was_running_here {
                st.running -= 1;
                inner.dispatch(&mut st);
            }
            return Err(Error::NoBuffers);
        }
        // Re-arms may ride on this thread's wait, in one io_uring call, when this thread is
        // going to be the one that waits in the kernel, and when there are enough of them
        // for a ring round to beat plain `epoll_ctl`s and `epoll_wait` (chosen per batch).
        // A batch that large also reads its new descriptors' identities and makes its REMOVEs'
        // DELs in one round before its entries are applied, and its new registrations' ADDs
        // (and its re-arms, when they cannot ride) in one round after them.
        let mut deferred = Deferred { mods: Vec::new(), weak };
        let batched = inner.ring_usable() && regs.len() >= inner.ring_min_mods;
        let ride = batched && !out.is_empty() && st.poller.is_none() && timeout != Some(Duration::ZERO);
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
            let twice = if batched { named_twice(regs) } else { Vec::new() };
            let answers = if batched { inner.prepare(&st, regs, &twice) } else { sys::Answers::default() };
            let mut after = Vec::new();
            for (i, e) in regs.iter_mut().enumerate() {
                // Only a descriptor named once in the batch has its kernel call moved: the
                // kernel sees every descriptor's operations in the batch's order.
                let alone = batched && e.fd().is_some_and(|fd| twice.binary_search(&fd).is_err());
                let to = match e.fd() {
                    Some(fd) if alone && st.machine.adds(fd, e.operation()) => Some(&mut after),
                    Some(fd) if alone && st.machine.deferrable(fd, e.operation()) => {
                        Some(if ride { &mut deferred.mods } else { &mut after })
                    }
                    _ => None,
                };
                let this_enabled = match to {
                    Some(pending) => {
                        let mut kernel =
                            sys::SysKernel::deferring(&inner.epfd, pending, i as u64).with_answers(&answers);
                        inner.apply_entry(&mut st, e, &mut kernel, weak)
                    }
                    None => {
                        let mut kernel = sys::SysKernel::new(&inner.epfd).with_answers(&answers);
                        inner.apply_entry(&mut st, e, &mut kernel, weak)
                    }
                };
                enabled |= this_enabled && !st.machine.last_in_user_space();
            }
            inner.flush_mods(&mut st, regs, after, weak);
            inner.note_unverified(&mut st);
            inner.audit_if_due(&mut st, weak);
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
        let (mut st, result) = inner.wait_for_packets(st, out, timeout, start, regs, &mut deferred);
        // Every exit of the dequeue applies the re-arms held back for its wait (a zero timeout
        // holds none back).
        debug_assert!(deferred.mods.is_empty(), "a re-arm held back for the wait was left behind");
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

/// The descriptors named by more than one entry, sorted: their entries reach the kernel at
/// once, in the batch's order.
fn named_twice<E: Entry>(regs: &[E]) -> Vec<RawFd> {
    let mut fds: Vec<RawFd> = regs.iter().filter_map(|e| e.fd()).collect();
    fds.sort_unstable();
    let mut twice: Vec<RawFd> = fds.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    twice.dedup();
    twice
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

    /// What the kernel can answer for a batch before it is applied, in one io_uring round:
    /// the identity of each descriptor that has no registration on this port (so that an
    /// ENABLE of a new socket asks nothing more than its ADD, made after the batch), and the
    /// DEL of each REMOVE of a live registration whose descriptor the batch names once. Only
    /// when there are enough of them for a round to pay (the per-batch choice) and the ring
    /// is free; otherwise every entry asks the kernel itself.
    pub(super) fn prepare<E: Entry>(&self, st: &PortState, regs: &[E], twice: &[RawFd]) -> sys::Answers {
        let probing = sys::ring_probes();
        let mut probes = Vec::new();
        let mut dels = Vec::new();
        for e in regs {
            let (Some(fd), op) = (e.fd().filter(|&fd| fd >= 0), e.operation()) else { continue };
            if !matches!(op, Some(Operation::Enable { .. } | Operation::Disable | Operation::Remove)) {
                continue;
            }
            if st.machine.token_of(fd).is_none() {
                if probing {
                    probes.push(fd);
                }
            } else if st.machine.deletes(fd, op) && twice.binary_search(&fd).is_err() {
                let tag = dels.len() as u64;
                dels.push(sys::Mod::delete(fd, tag));
            }
        }
        probes.sort_unstable();
        probes.dedup();
        if probes.len() + dels.len() < self.ring_min_mods {
            return sys::Answers::default();
        }
        let Some(round) = self.ring_rounds(&dels, &probes, None, false) else {
            return sys::Answers::default();
        };
        let (failed, cookies) = match round {
            Ok(r) => (r.failed, r.cookies),
            Err(_) if dels.is_empty() => return sys::Answers::default(),
            Err(_) => {
                // The round may have made some DELs before it failed: make them again, one
                // call each; a DEL the round made fails again with ENOENT, which counts as done
                // (a socket closed meanwhile would then get a REMOVE packet: one more packet,
                // never one fewer).
                let failed = dels
                    .iter()
                    .filter_map(|m| match m.apply_now(&self.epfd) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some((m.tag, 0)),
                        _ => None,
                    })
                    .collect();
                (failed, Vec::new())
            }
        };
        let mut deleted: Vec<(RawFd, bool)> =
            dels.iter().map(|m| (m.fd, !failed.iter().any(|&(tag, _)| tag == m.tag))).collect();
        deleted.sort_unstable();
        sys::Answers { deleted, ..sys::Answers::identities(&probes, cookies) }
    }

    /// Applies deferred re-arms now, without waiting: in one io_uring call when the ring is
    /// free, else (the poller holds it) with one `epoll_ctl` each.
    #[inline]
    pub(super) fn flush<E: Entry>(&self, st: &mut PortState, regs: &mut [E], deferred: &mut Deferred<'_>) {
        if deferred.mods.is_empty() {
            return; // the usual case: nothing held back (no call, no move of the vector)
        }
        let mods = std::mem::take(&mut deferred.mods);
        self.flush_mods(st, regs, mods, deferred.weak);
    }

    /// Applies `mods` (epoll operations of `regs`' entries, tagged with their index) now, as
    /// [`flush`](Self::flush) does, and repairs the entries of those that failed.
    pub(super) fn flush_mods<E: Entry>(
        &self,
        st: &mut PortState,
        regs: &mut [E],
        mods: Vec<sys::Mod>,
        weak: &Weak<Inner>,
    ) {
        if mods.is_empty() {
            return;
        }
        let round = self.ring_rounds(&mods, &[], None, false);
        let failed = match round {
            Some(Ok(r)) => r.failed,
            _ => self.apply_mods_now(&mods),
        };
        self.repair(st, regs, &mods, &failed, weak);
    }

    /// Applies re-arms and ADDs with one `epoll_ctl` each (the ring is busy or failed);
    /// re-applying one the ring already applied changes nothing. Returns the failures as a
    /// round would.
    pub(super) fn apply_mods_now(&self, mods: &[sys::Mod]) -> Vec<(u64, i32)> {
        mods.iter()
            .filter_map(|m| m.apply_now(&self.epfd).err().map(|e| (m.tag, e.raw_os_error().unwrap_or(0))))
            .collect()
    }
}
