//! [`Builder`] and [`Backend`]: how a port is made, and which kernel path it takes.

use super::inner::{Inner, PortState, NEXT_PORT, WAKE_TOKEN};
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

    /// Creates the port.
    ///
    /// ```
    /// let port = socknotify::CompletionPort::builder().build()?;
    /// assert!(!port.is_closed());
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn build(self) -> Result<CompletionPort, Error> {
        let epfd = sys::epoll_create()?;
        let wakefd = sys::eventfd()?;
        sys::epoll_add(&epfd, wakefd.as_raw_fd(), sys::epoll::WAKE_FLAGS, WAKE_TOKEN)?;
        let concurrency = match self.concurrency {
            0 => sys::processors(),
            n => n,
        };
        let ring = open_ring(self.backend)?;
        let inner = Arc::new(Inner {
            id: NEXT_PORT.fetch_add(1, Ordering::Relaxed),
            epfd,
            wakefd,
            ring: ring.map(Mutex::new),
            ring_broken: AtomicBool::new(false),
            concurrency: concurrency as usize,
            state: Mutex::new(PortState {
                closed: false,
                machine: Machine::new(),
                waiters: Vec::new(),
                poller: None,
                running: 0,
                events: sys::event_buffer(256),
                wakes: Vec::new(),
                wake_poller: false,
            }),
        });
        Ok(CompletionPort { inner })
    }
}

/// Resolves the backend and opens a ring when it is io_uring.
fn open_ring(backend: Backend) -> Result<Option<sys::Ring>, Error> {
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
        return Ok(None);
    }
    match backend {
        Backend::Epoll => Ok(None),
        Backend::IoUring => sys::ring_new().map(Some).map_err(Error::Io),
        Backend::Auto => Ok(sys::ring_new().ok()),
    }
}
