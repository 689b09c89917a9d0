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
/// The most MODs one round carries; a larger batch is applied with plain `epoll_ctl`.
pub(crate) const MAX_RING_MODS: usize = RING_ENTRIES as usize - 2;

/// An io_uring instance used by one port.
pub(crate) struct Ring {
    ring: IoUring,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ring")
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
    Ok(Ring { ring })
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
    /// Applies `mods` in order, then (with `events`) waits for epoll events into it for at
    /// most `timeout` (`None`: until one arrives), all in one system call when nothing
    /// interrupts it. The MODs are not linked to each other nor to the wait (io_uring's link
    /// machinery costs more per request than a system call): a MOD that fails is reported in
    /// [`Round::failed`] after the wait, so callers bound that wait (see `MOD_ROUND_WAIT`).
    pub(crate) fn round(
        &mut self,
        epfd: RawFd,
        mods: &[Mod],
        events: Option<&mut [EpollEvent]>,
        timeout: Option<Duration>,
    ) -> io::Result<Round> {
        debug_assert!(mods.len() <= MAX_RING_MODS);
        // The kernel copies these at submission, within the call below.
        let ctl: Vec<EpollEvent> = mods.iter().map(|m| EpollEvent { events: m.flags, u64: m.token }).collect();
        let ts = timeout.map(|t| types::Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos()));
        let wait_in = events.map(|e| (e.as_mut_ptr(), u32::try_from(e.len()).unwrap_or(u32::MAX).max(1)));
        let mut want = 0;
        {
            let mut sq = self.ring.submission();
            for (m, ev) in mods.iter().zip(&ctl) {
                let e = opcode::EpollCtl::new(
                    types::Fd(epfd),
                    types::Fd(m.fd),
                    libc::EPOLL_CTL_MOD,
                    (ev as *const EpollEvent).cast::<types::epoll_event>(),
                )
                .build()
                .user_data(m.tag);
                // SAFETY: the entry points to `ctl`, alive until the submission below has
                // been consumed by the kernel (EPOLL_CTL copies its event at submission).
                unsafe { sq.push(&e) }.map_err(|_| io::Error::other("submission queue full"))?;
                want += 1;
            }
            if let Some((ptr, max)) = wait_in {
                let mut wait = opcode::EpollWait::new(types::Fd(epfd), ptr.cast::<types::epoll_event>(), max)
                    .build()
                    .user_data(WAIT_TAG);
                if ts.is_some() {
                    wait = wait.flags(squeue::Flags::IO_LINK);
                }
                // SAFETY: the events buffer outlives the wait: this function does not return
                // before the wait's completion has been reaped (see the loop below).
                unsafe { sq.push(&wait) }.map_err(|_| io::Error::other("submission queue full"))?;
                want += 1;
                if let Some(ts) = &ts {
                    let t = opcode::LinkTimeout::new(ts).build().user_data(TIMEOUT_TAG);
                    // SAFETY: the timespec is copied at submission, within the call below.
                    unsafe { sq.push(&t) }.map_err(|_| io::Error::other("submission queue full"))?;
                    want += 1;
                }
            }
            sq.sync();
        }
        let mut round = Round::default();
        let mut reaped = 0;
        while reaped < want {
            count();
            match self.ring.submitter().submit_and_wait(want - reaped) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
                // Unexpected: the kernel may still hold entries that point into `events`.
                // The caller must then abandon this ring and that buffer (leak both).
                Err(e) => return Err(e),
            }
            let mut cq = self.ring.completion();
            cq.sync();
            for cqe in &mut cq {
                reaped += 1;
                let res = cqe.result();
                match cqe.user_data() {
                    WAIT_TAG => round.events = usize::try_from(res).unwrap_or(0),
                    TIMEOUT_TAG => {}
                    tag if res < 0 => round.failed.push((tag, -res)),
                    _ => {}
                }
            }
        }
        Ok(round)
    }
}
