//! The io_uring half of the `sys` layer: one `io_uring_enter` that applies a batch of
//! `EPOLL_CTL_MOD`s to the port's epoll instance and then waits in `IORING_OP_EPOLL_WAIT`,
//! bounded by a linked timeout.
//!
//! The port's sockets stay in its epoll set either way: io_uring only carries the epoll
//! operations, so a socket closed by the application is released as with plain epoll (a
//! `POLL_ADD` request would hold the socket open).

use super::{count, EpollEvent};
use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::time::Duration;

/// `user_data` of the wait and of its linked timeout; MODs carry their caller's tag (< 2^62).
const WAIT_TAG: u64 = u64::MAX;
const TIMEOUT_TAG: u64 = u64::MAX - 1;

/// Submission queue size. A round needs one entry per MOD plus two.
const RING_ENTRIES: u32 = 1024;
/// The longest a round that carries MODs waits. A MOD that fails (its descriptor was closed,
/// or now names another socket) is only seen when the round ends; the caller then registers
/// the new socket and waits again. This bounds how long such a socket can go unwatched.
pub(crate) const MOD_ROUND_WAIT: Duration = Duration::from_millis(50);
/// The most MODs one round carries; a larger batch is split ([`Ring::rounds`]).
pub(crate) const MAX_RING_MODS: usize = RING_ENTRIES as usize - 2;
/// The fewest re-arms worth a ring round. A round that waits costs a fixed amount more than
/// a plain `epoll_wait` (the wait request, its linked timeout and their completions), and
/// saves a little per re-arm over one `epoll_ctl` each: on the bench machine a round loses
/// clearly at 1 re-arm and breaks even near 64, so a smaller batch takes plain epoll.
pub(crate) const RING_MIN_MODS: usize = 32;
/// The most events one wait returns.
pub(crate) const RING_EVENTS: usize = 1024;

/// An io_uring instance used by one port.
///
/// It owns every buffer the kernel may write into or read from after a call returns (the
/// events of the wait and the events of the MODs), so a round that fails half-way leaves the
/// kernel pointing only into memory the ring owns; a ring that failed that way is poisoned
/// (every later round fails) and leaks those buffers when it is dropped rather than free
/// memory the kernel might still write.
pub(crate) struct Ring {
    ring: IoUring,
    /// Where `IORING_OP_EPOLL_WAIT` writes its events.
    events: ManuallyDrop<Box<[EpollEvent]>>,
    /// The `epoll_event` of each MOD in the current round.
    ctl: ManuallyDrop<Vec<EpollEvent>>,
    poisoned: bool,
}

impl Drop for Ring {
    fn drop(&mut self) {
        if !self.poisoned {
            // SAFETY: each field is dropped exactly once, here; after a clean round the
            // kernel holds no pointer into either buffer (every request was reaped).
            unsafe {
                ManuallyDrop::drop(&mut self.events);
                ManuallyDrop::drop(&mut self.ctl);
            }
        }
        // A poisoned ring leaks both buffers: the kernel may still complete a request into them.
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("poisoned", &self.poisoned).finish()
    }
}

/// A ring for one port, if this kernel (and any seccomp filter) lets us use io_uring with
/// the operations a round needs.
pub(crate) fn ring_new() -> io::Result<Ring> {
    count();
    let ring = IoUring::builder().setup_clamp().build(RING_ENTRIES)?;
    let mut probe = io_uring::Probe::new();
    count();
    ring.submitter().register_probe(&mut probe)?;
    for code in [opcode::EpollCtl::CODE, opcode::EpollWait::CODE, opcode::LinkTimeout::CODE] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks EPOLL_CTL, EPOLL_WAIT or LINK_TIMEOUT",
            ));
        }
    }
    Ok(Ring {
        ring,
        events: ManuallyDrop::new(vec![EpollEvent { events: 0, u64: 0 }; RING_EVENTS].into_boxed_slice()),
        ctl: ManuallyDrop::new(Vec::with_capacity(MAX_RING_MODS)),
        poisoned: false,
    })
}

/// One `EPOLL_CTL_MOD` to apply in a round.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mod {
    pub fd: RawFd,
    pub flags: u32,
    pub token: u64,
    /// The caller's tag for the result.
    pub tag: u64,
}

/// What a round did.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// MODs that did not apply: `(tag, errno)`.
    pub failed: Vec<(u64, i32)>,
    /// Events written to the caller's buffer (0 on timeout, or when the wait was cancelled).
    pub events: usize,
}

impl Ring {
    /// True once a round failed after submitting: the ring is out of use for good.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// [`round`](Self::round) for any number of MODs: a batch larger than the ring goes in
    /// rounds of [`MAX_RING_MODS`], in order, the last one carrying the wait (rather than
    /// falling back to one `epoll_ctl` each). Failures of every round are reported together.
    pub(crate) fn rounds(
        &mut self,
        epfd: RawFd,
        mods: &[Mod],
        wait: Option<(&mut [EpollEvent], Option<Duration>)>,
    ) -> io::Result<Round> {
        let mut failed = Vec::new();
        let mut rest = mods;
        while rest.len() > MAX_RING_MODS {
            let (head, tail) = rest.split_at(MAX_RING_MODS);
            failed.extend(self.round(epfd, head, None)?.failed);
            rest = tail;
        }
        let mut last = self.round(epfd, rest, wait)?;
        if !failed.is_empty() {
            failed.append(&mut last.failed);
            last.failed = failed;
        }
        Ok(last)
    }

    /// Applies `mods` in order, then (with `wait`) waits for epoll events for at most its
    /// timeout (`None`: until one arrives) and copies them into its buffer, all in one system
    /// call when nothing interrupts it. The MODs are not linked to each other nor to the wait
    /// (io_uring's link machinery costs more per request than a system call): a MOD that fails
    /// is reported in [`Round::failed`] after the wait, so callers bound that wait (see
    /// `MOD_ROUND_WAIT`).
    ///
    /// An error before anything was submitted (too many MODs, a poisoned ring) leaves the ring
    /// as it was; an error after it poisons the ring.
    pub(crate) fn round(
        &mut self,
        epfd: RawFd,
        mods: &[Mod],
        wait: Option<(&mut [EpollEvent], Option<Duration>)>,
    ) -> io::Result<Round> {
        if self.poisoned {
            return Err(io::Error::other("the ring failed earlier and is out of use"));
        }
        let (out, timeout) = match wait {
            Some((out, timeout)) => (Some(out), timeout),
            None => (None, None),
        };
        let wanted = mods.len() + out.as_ref().map_or(0, |_| 1 + usize::from(timeout.is_some()));
        {
            let sq = self.ring.submission();
            if mods.len() > MAX_RING_MODS || wanted > sq.capacity() - sq.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "the round does not fit the ring"));
            }
        }
        self.ctl.clear();
        self.ctl.extend(mods.iter().map(|m| EpollEvent { events: m.flags, u64: m.token }));
        let ts = timeout.map(|t| types::Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos()));
        let max = out.as_ref().map_or(0, |o| o.len().clamp(1, RING_EVENTS));
        {
            let mut sq = self.ring.submission();
            for (m, ev) in mods.iter().zip(self.ctl.iter()) {
                let e = opcode::EpollCtl::new(
                    types::Fd(epfd),
                    types::Fd(m.fd),
                    libc::EPOLL_CTL_MOD,
                    (ev as *const EpollEvent).cast::<types::epoll_event>(),
                )
                .build()
                .user_data(m.tag);
                // SAFETY: the entry points into `self.ctl`, which the ring owns and does not
                // touch again before every request of this round has been reaped (or, if the
                // round fails, ever: a poisoned ring leaks it). Room was checked above.
                unsafe { sq.push(&e) }.expect("room checked above");
            }
            if out.is_some() {
                let mut wait = opcode::EpollWait::new(
                    types::Fd(epfd),
                    self.events.as_mut_ptr().cast::<types::epoll_event>(),
                    max as u32,
                )
                .build()
                .user_data(WAIT_TAG);
                if ts.is_some() {
                    wait = wait.flags(squeue::Flags::IO_LINK);
                }
                // SAFETY: the wait writes at most `max` ≤ RING_EVENTS events into
                // `self.events`, which the ring owns for as long as the kernel may write there
                // (see `ctl` above and `Drop`).
                unsafe { sq.push(&wait) }.expect("room checked above");
                if let Some(ts) = &ts {
                    let t = opcode::LinkTimeout::new(ts).build().user_data(TIMEOUT_TAG);
                    // SAFETY: the timespec is read when the timeout is prepared, which happens
                    // during the submission below, while `ts` is alive.
                    unsafe { sq.push(&t) }.expect("room checked above");
                }
            }
            sq.sync();
        }
        let mut round = Round::default();
        let mut reaped = 0;
        while reaped < wanted {
            count();
            match self.ring.submitter().submit_and_wait(wanted - reaped) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
                Err(e) => {
                    // The kernel may still hold requests that point into the ring's buffers:
                    // keep them for good.
                    self.poisoned = true;
                    return Err(e);
                }
            }
            let mut cq = self.ring.completion();
            cq.sync();
            for cqe in &mut cq {
                reaped += 1;
                let res = cqe.result();
                match cqe.user_data() {
                    WAIT_TAG => round.events = usize::try_from(res).unwrap_or(0).min(max),
                    TIMEOUT_TAG => {}
                    tag if res < 0 => round.failed.push((tag, -res)),
                    _ => {}
                }
            }
        }
        if let Some(out) = out {
            out[..round.events].copy_from_slice(&self.events[..round.events]);
        }
        Ok(round)
    }
}
