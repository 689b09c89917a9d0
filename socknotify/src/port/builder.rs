//! [`Builder`] and [`Backend`]: how a port is made, and which kernel path it takes.

use super::inner::{Counters, Inner, PortState, NEXT_PORT, READY_TOKEN, WAKE_TOKEN};
use super::sync::Mutex;
use super::CompletionPort;
use crate::abi::Error;
use crate::machine::Machine;
use crate::sys;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Options for creating a [`CompletionPort`].
///
/// ```
/// let port = socknotify::CompletionPort::builder().concurrency(1).build()?;
/// assert_eq!(port.concurrency(), 1);
/// # Ok::<(), socknotify::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    concurrency: u32,
    backend: Backend,
    closes_through_port: Option<bool>,
}

/// How a port talks to the kernel.
///
/// Both keep every registered socket in the port's epoll instance. With io_uring, the thread
/// that is about to wait applies its batch's re-arms and waits in one system call
/// (`EPOLL_CTL_MOD`s submitted with `IORING_OP_EPOLL_WAIT`); with plain epoll that takes one
/// `epoll_ctl` per re-arm plus the `epoll_wait`.
///
/// [`Backend::Auto`] (the default) takes io_uring when the kernel offers it and falls back to
/// epoll when it does not (io_uring missing, disabled by `kernel.io_uring_disabled`, or
/// refused by a seccomp filter). The environment variable `SOCKNOTIFY_BACKEND` (`epoll` or
/// `io_uring`) overrides `Auto`, so that a whole test suite can run on either path.
///
/// Under `Auto` the io_uring path is chosen per batch: a call carries its re-arms in the ring
/// only when it has enough of them for a ring round to beat plain `epoll_ctl`s and
/// `epoll_wait` (a small batch costs less the plain way); [`Backend::IoUring`] (or
/// `SOCKNOTIFY_BACKEND=io_uring`) sends every batch through the ring.
///
/// ```
/// use socknotify::{Backend, CompletionPort};
/// let port = CompletionPort::builder().backend(Backend::Epoll).build()?;
/// assert_eq!(port.backend(), Backend::Epoll);
/// # Ok::<(), socknotify::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// io_uring if available, else epoll (or what `SOCKNOTIFY_BACKEND` says).
    #[default]
    Auto,
    /// Plain epoll system calls.
    Epoll,
    /// epoll operations carried by io_uring; building the port fails if io_uring is unavailable.
    IoUring,
}

impl Builder {
    /// The concurrency value: how many threads may run packets from this port at once
    /// (0, the default, means the number of processors).
    ///
    /// ```
    /// let b = socknotify::CompletionPort::builder().concurrency(4);
    /// assert_eq!(b.build()?.concurrency(), 4);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// Which kernel interface the port uses (see [`Backend`]).
    ///
    /// ```
    /// use socknotify::{Backend, CompletionPort};
    /// let port = CompletionPort::builder().backend(Backend::Auto).build()?;
    /// assert_ne!(port.backend(), Backend::Auto); // resolved at creation
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Promises that every socket registered with this port is closed through the port
    /// ([`close_socket`](crate::close_socket) in Rust, `closesocket` in C) or REMOVEd before
    /// it is closed, as Windows programs do (`closesocket` is the only way to close a socket
    /// there). In return, re-arms cost no system call: sockets stay armed in the kernel, a
    /// ONESHOT registration is disarmed in user space when its packet is delivered, and an
    /// ENABLE or DISABLE that changes nothing the kernel watches only changes flags. The
    /// kernel is touched when it must be: a new or removed registration, a filter change, or
    /// a disabled socket the kernel reports again (it is quieted then, lazily, unless the
    /// thread holding its packet re-arms it first: kernel waits pause for that, at most 2 ms).
    ///
    /// A broken promise (a plain `close()` of a registered socket whose number a new socket
    /// then takes) is caught within 100 ms: a re-arm is confirmed by the kernel's next report
    /// of the socket, or else checked by an audit 45 to 90 ms after it was applied (one
    /// `SO_COOKIE` query each, all of an audit's in one io_uring round where the kernel
    /// allows, or on a small port one read of the kernel's watch list). The old
    /// registration is dropped silently, no packet
    /// ever carries its key for the new socket, and what the program applied to the number
    /// since is applied to the new socket then (see [`Stats::reuse_repairs`](crate::Stats)).
    /// Off by default: the default confirms the socket's identity at every re-arm (D21).
    /// When this method is not called, the environment variable
    /// `SOCKNOTIFY_CLOSES_THROUGH_PORT=1` turns it on (so a whole test suite can run that way).
    ///
    /// ```
    /// use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
    /// use std::time::Duration;
    /// let port = CompletionPort::builder().closes_through_port(true).build()?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut out = [Completion::default(); 4];
    /// let mut regs = [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_ONESHOT)];
    /// std::io::Write::write_all(&mut &b, b"x")?;
    /// assert_eq!(port.process(&mut regs, &mut out, Some(Duration::from_secs(5)))?, 1);
    /// socknotify::close_socket(a); // the promise: close through the port
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn closes_through_port(mut self, promise: bool) -> Self {
        self.closes_through_port = Some(promise);
        self
    }

    /// Creates the port.
    ///
    /// ```
    /// let port = socknotify::CompletionPort::builder().build()?;
    /// assert!(!port.is_closed());
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn build(self) -> Result<CompletionPort, Error> {
        let closes_through_port = self
            .closes_through_port
            .unwrap_or_else(|| std::env::var("SOCKNOTIFY_CLOSES_THROUGH_PORT").is_ok_and(|v| v == "1"));
        let epfd = sys::epoll_create()?;
        let wakefd = sys::eventfd()?;
        sys::epoll_add(&epfd, wakefd.as_raw_fd(), sys::epoll::WAKE_FLAGS, WAKE_TOKEN)?;
        // The descriptor handed out by `as_fd`: readable when `readyfd` is (a packet is
        // queued) or, once it was handed out, `epfd` is (kernel readiness may be pending).
        // `epfd` joins it only then: a watched epoll instance makes every later ADD to it take
        // the kernel's slower nested-epoll checks.
        let pollfd = sys::epoll_create()?;
        let readyfd = sys::eventfd()?;
        sys::epoll_add(&pollfd, readyfd.as_raw_fd(), sys::epoll::WAKE_FLAGS, READY_TOKEN)?;
        let concurrency = match self.concurrency {
            0 => sys::processors(),
            n => n,
        };
        let (ring, every_batch) = open_ring(self.backend)?;
        let inner = Arc::new_cyclic(|me| Inner {
            id: NEXT_PORT.fetch_add(1, Ordering::Relaxed),
            me: me.clone(),
            epfd,
            wakefd,
            pollfd,
            readyfd,
            ring: ring.map(Mutex::new),
            ring_broken: AtomicBool::new(false),
            ring_min_mods: if every_batch { 1 } else { sys::RING_MIN_MODS },
            concurrency: concurrency as usize,
            state: Mutex::new(PortState {
                closed: false,
                machine: {
                    let mut m = Machine::new();
                    m.set_user_rearm(closes_through_port);
                    m
                },
                waiters: Vec::new(),
                spare_bufs: Vec::new(),
                poller: None,
                running: 0,
                events: sys::event_buffer(256),
                wakes: Vec::new(),
                wake_poller: false,
                unverified_since: None,
                stray_pause: None,
                counters: Counters::default(),
                polled: false,
                ready_signalled: false,
                ready_stalled: None,
                ready_always: false,
                diag: sys::Diag::new(),
                probes: Vec::new(),
                posts_slow: false,
            }),
            posts: Default::default(),
        });
        Ok(CompletionPort { inner })
    }
}

/// Resolves the backend and opens a ring when it is io_uring; true when io_uring was asked
/// for by name (every batch then goes through the ring).
fn open_ring(backend: Backend) -> Result<(Option<sys::Ring>, bool), Error> {
    let backend = match backend {
        Backend::Auto => match std::env::var("SOCKNOTIFY_BACKEND").as_deref() {
            Ok("epoll") => Backend::Epoll,
            Ok("io_uring" | "uring" | "io-uring") => Backend::IoUring,
            _ => Backend::Auto,
        },
        b => b,
    };
    if cfg!(loom) {
        // The loom model covers the waiter protocol; it runs on plain epoll.
        return Ok((None, false));
    }
    match backend {
        Backend::Epoll => {
            diag!(debug, "port uses plain epoll (asked for)");
            Ok((None, false))
        }
        Backend::IoUring => sys::ring_new().map(|r| (Some(r), true)).map_err(Error::Io),
        Backend::Auto => match sys::ring_new() {
            Ok(r) => {
                diag!(debug, "port uses io_uring for large batches of re-arms");
                Ok((Some(r), false))
            }
            Err(e) => {
                diag!(info, "io_uring unavailable ({e}): the port uses plain epoll");
                Ok((None, false))
            }
        },
    }
}
