//! The io_uring half of the `sys` layer: one `io_uring_enter` that applies a batch of
//! epoll operations (`EPOLL_CTL_MOD`, and `ADD`/`DEL` for new and removed registrations) to
//! the port's epoll instance, reads the identity (`SO_COOKIE`) of a batch of sockets, and then
//! (optionally) waits in `IORING_OP_EPOLL_WAIT`, bounded by a linked timeout.
//!
//! The port's sockets stay in its epoll set either way: io_uring only carries the epoll
//! operations, so a socket closed by the application is released as with plain epoll (a
//! `POLL_ADD` request would hold the socket open).

use super::{count, EpollEvent};
use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// `user_data` of the wait and of its linked timeout; epoll operations carry their caller's
/// tag (< 2^62), identity probes their index with [`PROBE_TAG`] set.
const WAIT_TAG: u64 = u64::MAX;
const TIMEOUT_TAG: u64 = u64::MAX - 1;
const PROBE_TAG: u64 = 1 << 62;

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
/// events of the wait, the events of the epoll operations and the probed cookies), so a round that fails half-way leaves the
/// kernel pointing only into memory the ring owns; a ring that failed that way is poisoned
/// (every later round fails) and leaks those buffers when it is dropped rather than free
/// memory the kernel might still write.
pub(crate) struct Ring {
    ring: IoUring,
    /// Where `IORING_OP_EPOLL_WAIT` writes its events.
    events: ManuallyDrop<Box<[EpollEvent]>>,
    /// The `epoll_event` of each epoll operation in the current round.
    ctl: ManuallyDrop<Vec<EpollEvent>>,
    /// Where each identity probe of the current round writes its socket's cookie.
    cookies: ManuallyDrop<Vec<u64>>,
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
                ManuallyDrop::drop(&mut self.cookies);
            }
        }
        // A poisoned ring leaks its buffers: the kernel may still complete a request into them.
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
    let mut ring = Ring {
        ring,
        events: ManuallyDrop::new(vec![EpollEvent { events: 0, u64: 0 }; RING_EVENTS].into_boxed_slice()),
        ctl: ManuallyDrop::new(Vec::with_capacity(MAX_RING_MODS)),
        cookies: ManuallyDrop::new(Vec::with_capacity(MAX_RING_MODS)),
        poisoned: false,
    };
    ring.learn_probes();
    Ok(ring)
}

/// Whether this kernel reads socket options through io_uring (`SOCKET_URING_OP_GETSOCKOPT`,
/// Linux 6.7): 0 not known yet, 1 yes, 2 no. Learnt once per process.
static PROBES: AtomicU8 = AtomicU8::new(0);

/// True when a round can read sockets' identities ([`Ring::rounds`]'s `probes`).
pub(crate) fn ring_probes() -> bool {
    PROBES.load(Ordering::Relaxed) == 1
}

/// One epoll operation to apply in a round: `EPOLL_CTL_MOD` (a re-arm), `EPOLL_CTL_ADD` (a
/// new registration) or `EPOLL_CTL_DEL` (a REMOVE).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mod {
    /// `libc::EPOLL_CTL_MOD`, `EPOLL_CTL_ADD` or `EPOLL_CTL_DEL`.
    pub op: i32,
    pub fd: RawFd,
    pub flags: u32,
    pub token: u64,
    /// The caller's tag for the result.
    pub tag: u64,
}

impl Mod {
    /// The `EPOLL_CTL_DEL` of `fd`.
    pub(crate) fn delete(fd: RawFd, tag: u64) -> Mod {
        Mod { op: libc::EPOLL_CTL_DEL, fd, flags: 0, token: 0, tag }
    }

    /// Applies this operation with one `epoll_ctl` (a round could not carry it). An ADD that
    /// meets the item already there (a round applied it before it failed) is made a MOD.
    pub(crate) fn apply_now(&self, epfd: &OwnedFd) -> io::Result<()> {
        match self.op {
            libc::EPOLL_CTL_ADD => {
                super::epoll_add(epfd, self.fd, self.flags, self.token).or_else(|e| match e.raw_os_error() {
                    Some(libc::EEXIST) => super::epoll_mod(epfd, self.fd, self.flags, self.token),
                    _ => Err(e),
                })
            }
            libc::EPOLL_CTL_DEL => super::epoll::epoll_del(epfd, self.fd),
            _ => super::epoll_mod(epfd, self.fd, self.flags, self.token),
        }
    }
}

/// What a round did.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Epoll operations that did not apply: `(tag, errno)`.
    pub failed: Vec<(u64, i32)>,
    /// Events written to the caller's buffer (0 on timeout, or when the wait was cancelled).
    pub events: usize,
    /// The cookie of each probed descriptor, in the order of the probes (`None`: the probe
    /// failed: not an open socket, or closed meanwhile).
    pub cookies: Vec<Option<u64>>,
}

impl Ring {
    /// True once a round failed after submitting: the ring is out of use for good.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Learns once per process whether this kernel reads socket options through io_uring:
    /// probes a socket of its own and compares with `getsockopt`.
    fn learn_probes(&mut self) {
        if PROBES.load(Ordering::Relaxed) != 0 {
            return;
        }
        count();
        // SAFETY: plain system call; the descriptor it returns is owned below.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return;
        }
        // SAFETY: the kernel just returned this descriptor and nobody else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let got =
            self.round(-1, &[], &[sock.as_raw_fd()], None).ok().and_then(|r| r.cookies.first().copied().flatten());
        let works = got.is_some() && got == super::socket::socket_cookie(sock.as_raw_fd()).ok();
        count();
        drop(sock);
        PROBES.store(if works { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// [`round`](Self::round) for any number of operations: a batch larger than the ring goes
    /// in rounds of [`MAX_RING_MODS`], in order (the probes first, then the epoll operations),
    /// the last one carrying the wait (rather than falling back to one system call each).
    /// Failures and cookies of every round are reported together. `probes` must be empty
    /// unless [`ring_probes`] is true.
    pub(crate) fn rounds(
        &mut self,
        epfd: RawFd,
        mods: &[Mod],
        probes: &[RawFd],
        wait: Option<(&mut [EpollEvent], Option<Duration>)>,
    ) -> io::Result<Round> {
        let mut failed = Vec::new();
        let mut cookies = Vec::with_capacity(probes.len());
        let (mut mods, mut probes) = (mods, probes);
        while mods.len() + probes.len() > MAX_RING_MODS {
            let p = probes.len().min(MAX_RING_MODS);
            let m = (MAX_RING_MODS - p).min(mods.len());
            let r = self.round(epfd, &mods[..m], &probes[..p], None)?;
            failed.extend(r.failed);
            cookies.extend(r.cookies);
            (mods, probes) = (&mods[m..], &probes[p..]);
        }
        let mut last = self.round(epfd, mods, probes, wait)?;
        failed.append(&mut last.failed);
        cookies.append(&mut last.cookies);
        last.failed = failed;
        last.cookies = cookies;
        Ok(last)
    }

    /// Reads the cookie of each of `probes`, applies `mods` in order, then (with `wait`) waits
    /// for epoll events for at most its timeout (`None`: until one arrives) and copies them
    /// into its buffer, all in one system call when nothing interrupts it. The requests are
    /// not linked to each other nor to the wait (io_uring's link machinery costs more per
    /// request than a system call): they start in order, and one that cannot finish at once
    /// finishes later, still within the round; a MOD that fails is reported in
    /// [`Round::failed`] after the wait, so callers bound that wait (see `MOD_ROUND_WAIT`).
    ///
    /// An error before anything was submitted (too many MODs, a poisoned ring) leaves the ring
    /// as it was; an error after it poisons the ring.
    pub(crate) fn round(
        &mut self,
        epfd: RawFd,
        mods: &[Mod],
        probes: &[RawFd],
        wait: Option<(&mut [EpollEvent], Option<Duration>)>,
    ) -> io::Result<Round> {
        if self.poisoned {
            return Err(io::Error::other("the ring failed earlier and is out of use"));
        }
        let (out, timeout) = match wait {
            Some((out, timeout)) => (Some(out), timeout),
            None => (None, None),
        };
        let wanted = mods.len() + probes.len() + out.as_ref().map_or(0, |_| 1 + usize::from(timeout.is_some()));
        {
            let sq = self.ring.submission();
            if mods.len() + probes.len() > MAX_RING_MODS || wanted > sq.capacity() - sq.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "the round does not fit the ring"));
            }
        }
        self.ctl.clear();
        self.ctl.extend(mods.iter().map(|m| EpollEvent { events: m.flags, u64: m.token }));
        self.cookies.clear();
        self.cookies.resize(probes.len(), 0);
        let ts = timeout.map(|t| types::Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos()));
        let max = out.as_ref().map_or(0, |o| o.len().clamp(1, RING_EVENTS));
        {
            let mut sq = self.ring.submission();
            for (i, (&fd, cookie)) in probes.iter().zip(self.cookies.iter_mut()).enumerate() {
                let e = opcode::GetSockOpt::new(
                    types::Fd(fd),
                    libc::SOL_SOCKET as u32,
                    libc::SO_COOKIE as u32,
                    (cookie as *mut u64).cast::<libc::c_void>(),
                    std::mem::size_of::<u64>() as u32,
                )
                .build()
                .user_data(PROBE_TAG | i as u64);
                // SAFETY: the entry points into `self.cookies`, which the ring owns and does
                // not touch again before every request of this round has been reaped (or, if
                // the round fails, ever: a poisoned ring leaks it). Room was checked above.
                unsafe { sq.push(&e) }.expect("room checked above");
            }
            for (m, ev) in mods.iter().zip(self.ctl.iter()) {
                let e = opcode::EpollCtl::new(
                    types::Fd(epfd),
                    types::Fd(m.fd),
                    m.op,
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
        let mut round = Round { cookies: vec![None; probes.len()], ..Round::default() };
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
                    tag if tag & PROBE_TAG != 0 => {
                        // A cookie is 8 bytes: the result is the length written.
                        let i = (tag & !PROBE_TAG) as usize;
                        if res == 8 {
                            round.cookies[i] = Some(self.cookies[i]);
                        }
                    }
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
