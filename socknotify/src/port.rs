//! The completion port: the safe API over the pure [`Machine`] and the `sys` layer.
//!
//! Threads that wait form a LIFO stack (D22). While the port has registrations, one waiting
//! thread at a time — the *poller* — sleeps in `epoll_wait` on the port's epoll instance;
//! the others sleep on their own condition variable. Packets (posted, or made from epoll
//! events) are handed straight to the most recent waiter, up to its capacity, while fewer
//! than `concurrency` threads are running (D23). A hand-off to the poller wakes it through
//! the port's eventfd; to anyone else, through its condition variable.

use crate::error::{Error, RegistrationError};
use crate::machine::{Claims, Kernel, Machine, SocketKind, WAKE_TOKEN};
use crate::sync::{lock, thread_local, wait, Condvar, Mutex, MutexGuard};
use crate::sys;
use crate::types::{Completion, Entry, Registration};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

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
/// (`EPOLL_CTL_MOD`s chained to `IORING_OP_EPOLL_WAIT`); with plain epoll that takes one
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
        sys::epoll_add(&epfd, raw(&wakefd), sys::EPOLLIN, WAKE_TOKEN)?;
        let concurrency = match self.concurrency {
            0 => sys::processors(),
            n => n,
        };
        let ring = open_ring(self.backend)?;
        let inner = Arc::new(Inner {
            id: NEXT_PORT.fetch_add(1, Ordering::Relaxed),
            epfd,
            wakefd,
            ring: ring.map(std::sync::Mutex::new),
            ring_broken: std::sync::atomic::AtomicBool::new(false),
            concurrency: concurrency as usize,
            state: Mutex::new(State {
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

fn lock_ring(ring: &std::sync::Mutex<sys::Ring>) -> std::sync::MutexGuard<'_, sys::Ring> {
    ring.lock().unwrap_or_else(|p| p.into_inner())
}

fn raw(fd: &OwnedFd) -> RawFd {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

static NEXT_PORT: AtomicU64 = AtomicU64::new(1);
static NEXT_WAITER: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Inner {
    id: u64,
    epfd: OwnedFd,
    wakefd: OwnedFd,
    /// The io_uring instance, used only by the thread that holds the poller role.
    ring: Option<std::sync::Mutex<sys::Ring>>,
    /// The ring failed in a way that leaves it unusable; the port goes on with plain epoll.
    ring_broken: std::sync::atomic::AtomicBool,
    concurrency: usize,
    state: Mutex<State>,
}

/// One blocked thread.
struct Waiter {
    id: u64,
    capacity: usize,
    /// Packets handed to this thread (valid once `served`).
    buf: Vec<Completion>,
    served: Option<usize>,
    cv: Arc<Condvar>,
}

struct State {
    closed: bool,
    machine: Machine,
    /// Blocked threads, oldest first (the last unserved one is served first).
    waiters: Vec<Waiter>,
    /// The waiter sleeping in `epoll_wait`.
    poller: Option<u64>,
    /// Threads that returned from a dequeue on this port and are not back in one (D23).
    running: usize,
    /// Buffer for non-blocking harvests made under the lock.
    events: Vec<sys::EpollEvent>,
    /// Wake-ups decided under the lock, made once it is released (see [`Locked`]), so that a
    /// woken thread does not run straight into the lock its waker still holds.
    wakes: Vec<Arc<Condvar>>,
    /// The poller must be woken through the eventfd once the lock is released.
    wake_poller: bool,
}

/// The port's lock. Dropping it releases the mutex first and then makes the wake-ups that
/// were decided while it was held; no path can forget them.
struct Locked<'a> {
    guard: Option<MutexGuard<'a, State>>,
    inner: &'a Inner,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("held")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("held")
    }
}

impl Locked<'_> {
    /// Releases the lock and makes the pending wake-ups.
    fn release(&mut self) {
        let Some(mut g) = self.guard.take() else { return };
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
    fn reacquire(&mut self) {
        debug_assert!(self.guard.is_none());
        self.guard = Some(self.inner.raw_lock());
    }

    /// Waits on this thread's condition variable (releasing the lock while it waits).
    fn wait(&mut self, cv: &Condvar, timeout: Option<Duration>) {
        let mut g = self.guard.take().expect("held");
        // Wake-ups decided by this thread go out before it sleeps.
        let wakes = std::mem::take(&mut g.wakes);
        if std::mem::replace(&mut g.wake_poller, false) {
            sys::eventfd_signal(&self.inner.wakefd);
        }
        for w in wakes {
            sys::note_futex_call();
            w.notify_one();
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

/// The kernel as the machine sees it: this port's epoll instance and the `sys` layer.
struct SysKernel<'a> {
    epfd: &'a OwnedFd,
    /// When set, `EPOLL_CTL_MOD`s are collected here (tagged with `tag`) instead of being
    /// made at once: the waiting thread submits them with its wait in one io_uring call.
    defer: Option<&'a mut Vec<sys::Mod>>,
    tag: u64,
}

impl<'a> SysKernel<'a> {
    fn new(epfd: &'a OwnedFd) -> Self {
        SysKernel { epfd, defer: None, tag: 0 }
    }
}

impl Kernel for SysKernel<'_> {
    fn socket_info(&mut self, fd: RawFd) -> Result<(u64, SocketKind), RegistrationError> {
        sys::socket_info(fd)
            .map(|i| (i.cookie, SocketKind { stream: i.stream }))
            .map_err(|_| RegistrationError::NotASocket)
    }
    fn cookie(&mut self, fd: RawFd) -> Option<u64> {
        sys::socket_cookie(fd).ok()
    }
    fn add(&mut self, fd: RawFd, flags: u32, token: u64) -> bool {
        sys::epoll_add(self.epfd, fd, flags, token).is_ok()
    }
    fn modify(&mut self, fd: RawFd, flags: u32, token: u64) -> bool {
        match &mut self.defer {
            Some(pending) => {
                pending.push(sys::Mod { fd, flags, token, tag: self.tag });
                true
            }
            None => sys::epoll_mod(self.epfd, fd, flags, token).is_ok(),
        }
    }
    fn delete(&mut self, fd: RawFd) -> bool {
        sys::epoll_del(self.epfd, fd).is_ok()
    }
    fn sample(&mut self, fd: RawFd, cookie: u64) -> Option<u32> {
        let rev = sys::poll_now(fd)?;
        (sys::socket_cookie(fd).ok()? == cookie).then_some(rev)
    }
    fn never_connected(&mut self, fd: RawFd) -> bool {
        sys::tcp_never_connected(fd)
    }
    fn tcp_counters(&mut self, fd: RawFd) -> Option<(u64, u64, u64)> {
        sys::tcp_counters(fd).map(|c| (c.received, c.queued, c.acked))
    }
}

/// The process-wide one-port-per-socket table (D13): descriptor → (port, socket cookie).
struct Claim {
    port: u64,
    cookie: u64,
    owner: Weak<Inner>,
}

static CLAIMS: std::sync::Mutex<Vec<Option<Claim>>> = std::sync::Mutex::new(Vec::new());

fn claims_table() -> std::sync::MutexGuard<'static, Vec<Option<Claim>>> {
    CLAIMS.lock().unwrap_or_else(|p| p.into_inner())
}

struct PortClaims<'a> {
    port: u64,
    owner: &'a Weak<Inner>,
}

impl Claims for PortClaims<'_> {
    fn claim(&mut self, fd: RawFd, cookie: u64) -> bool {
        let Ok(i) = usize::try_from(fd) else {
            return false;
        };
        let mut t = claims_table();
        if i >= t.len() {
            t.resize_with((i + 1).next_power_of_two(), || None);
        }
        match &t[i] {
            // Another port holds this very socket.
            Some(c) if c.port != self.port && c.cookie == cookie && c.owner.strong_count() > 0 => false,
            // Free, or a claim left by a socket that was closed and whose number was reused.
            _ => {
                t[i] = Some(Claim { port: self.port, cookie, owner: self.owner.clone() });
                true
            }
        }
    }
    fn release(&mut self, fd: RawFd, cookie: u64) {
        let Ok(i) = usize::try_from(fd) else { return };
        let mut t = claims_table();
        if let Some(slot) = t.get_mut(i) {
            if matches!(slot, Some(c) if c.port == self.port && c.cookie == cookie) {
                *slot = None;
            }
        }
    }
}

/// Which port this thread is "running" on (D23), if any. Dropping it (thread exit, or a
/// dequeue on another port) stops the thread from counting as running there.
struct Association(Option<Weak<Inner>>);

impl Drop for Association {
    fn drop(&mut self) {
        if let Some(port) = self.0.take().and_then(|w| w.upgrade()) {
            port.leave_running();
        }
    }
}

// loom's thread_local! takes no `const` initialiser.
#[allow(clippy::missing_const_for_thread_local)]
mod association {
    use super::{thread_local, Association};
    thread_local! {
        pub(super) static ASSOCIATION: std::cell::RefCell<Association> = std::cell::RefCell::new(Association(None));
        /// The event buffer of this thread's last wait, kept for its next one.
        pub(super) static EVENTS: std::cell::Cell<Vec<crate::sys::EpollEvent>> = std::cell::Cell::new(Vec::new());
    }
}
use association::{ASSOCIATION, EVENTS};

/// An I/O completion port with socket state notifications. Cheap to clone; all clones are
/// the same port, usable from any number of threads at once.
///
/// ```
/// use socknotify::{Completion, CompletionPort};
/// use std::time::Duration;
/// let port = CompletionPort::new()?;
/// port.post(Completion::new(1, 2, 3))?;
/// let mut out = [Completion::default(); 8];
/// assert_eq!(port.dequeue(&mut out, Some(Duration::ZERO))?, 1);
/// assert_eq!(out[0], Completion::new(1, 2, 3));
/// # Ok::<(), socknotify::Error>(())
/// ```
#[derive(Clone)]
pub struct CompletionPort {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CompletionPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionPort")
            .field("id", &self.inner.id)
            .field("concurrency", &self.inner.concurrency)
            .finish()
    }
}

impl CompletionPort {
    /// A port whose concurrency value is the number of processors.
    ///
    /// ```
    /// let port = socknotify::CompletionPort::new()?;
    /// assert!(port.concurrency() >= 1);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn new() -> Result<CompletionPort, Error> {
        Builder::default().build()
    }

    /// A port with the given concurrency value (0 = the number of processors).
    ///
    /// ```
    /// assert_eq!(socknotify::CompletionPort::with_concurrency(3)?.concurrency(), 3);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn with_concurrency(n: u32) -> Result<CompletionPort, Error> {
        Builder::default().concurrency(n).build()
    }

    /// A builder for a port.
    ///
    /// ```
    /// let port = socknotify::CompletionPort::builder().concurrency(2).build()?;
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The concurrency value in force (0 was replaced by the number of processors).
    ///
    /// ```
    /// let n = std::thread::available_parallelism().unwrap().get() as u32;
    /// assert_eq!(socknotify::CompletionPort::with_concurrency(0)?.concurrency(), n);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn concurrency(&self) -> u32 {
        u32::try_from(self.inner.concurrency).unwrap_or(u32::MAX)
    }

    /// Queues a packet (`PostQueuedCompletionStatus`); it comes back exactly as posted,
    /// in FIFO order with notifications (D22, D24). Fails only on a closed port.
    ///
    /// ```
    /// use socknotify::{Completion, CompletionPort, Error};
    /// let port = CompletionPort::new()?;
    /// port.post(Completion::new(7, 0x80, 0))?; // a REMOVE bit in a posted packet means nothing
    /// port.close();
    /// assert!(matches!(port.post(Completion::new(7, 0, 0)), Err(Error::InvalidHandle)));
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn post(&self, packet: Completion) -> Result<(), Error> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(Error::InvalidHandle);
        }
        if st.machine.reserve(0, 1).is_err() {
            return Err(Error::NoBuffers);
        }
        if st.machine.live() > 0 {
            // Readiness that arrived before this post is queued before it (FIFO, T52).
            self.inner.harvest(&mut st);
        }
        st.machine.push_posted(packet);
        self.inner.dispatch(&mut st);
        Ok(())
    }

    /// Dequeues up to `out.len()` packets (`GetQueuedCompletionStatusEx`), waiting at most
    /// `timeout` (`None` waits forever; a wait never ends early, D5). `Ok(0)` means the wait
    /// timed out. An empty `out` is invalid.
    ///
    /// ```
    /// use socknotify::{Completion, CompletionPort};
    /// use std::time::{Duration, Instant};
    /// let port = CompletionPort::new()?;
    /// let t = Instant::now();
    /// assert_eq!(port.dequeue(&mut [Completion::default()], Some(Duration::from_millis(20)))?, 0);
    /// assert!(t.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn dequeue(&self, out: &mut [Completion], timeout: Option<Duration>) -> Result<usize, Error> {
        if out.is_empty() {
            return Err(Error::InvalidArgument("dequeue needs room for at least one packet"));
        }
        self.process_entries::<Registration<'_>>(&mut [], out, timeout)
    }

    /// Applies `registrations` in order, writing each entry's result, then dequeues like
    /// [`dequeue`](Self::dequeue) (`ProcessSocketNotifications`). Packets the registrations
    /// produce are queued before the dequeue, so the same call can return them. With an empty
    /// `out` only the registrations are applied, and the timeout must be zero.
    ///
    /// ```
    /// use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
    /// use std::time::Duration;
    /// let port = CompletionPort::new()?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// std::io::Write::write_all(&mut &b, b"ping")?;
    /// let mut regs = [Registration::enable(&a, 9, Events::IN, Trigger::LEVEL_ONESHOT)];
    /// let mut out = [Completion::default(); 4];
    /// let n = port.process(&mut regs, &mut out, Some(Duration::ZERO))?;
    /// assert_eq!((n, out[0].key()), (1, 9));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn process(
        &self,
        registrations: &mut [Registration<'_>],
        out: &mut [Completion],
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        self.process_entries(registrations, out, timeout)
    }

    pub(crate) fn process_entries<E: Entry>(
        &self,
        regs: &mut [E],
        out: &mut [Completion],
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        if out.is_empty() && timeout != Some(Duration::ZERO) {
            return Err(Error::InvalidArgument("a timeout needs room for packets (pass a zero timeout)"));
        }
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
        // going to be the one that waits in the kernel.
        let mut deferred = Deferred { mods: Vec::new(), weak: &weak };
        let defer = inner.ring_usable()
            && !out.is_empty()
            && st.poller.is_none()
            && timeout != Some(Duration::ZERO)
            && regs.len() <= sys::MAX_RING_MODS;
        let mut enabled = false;
        if !regs.is_empty() {
            let was_live = st.machine.live();
            if was_live > 0 && regs.iter().any(|e| st.machine.keeps_pending_packets(e.raw_fd(), e.op())) {
                // Packets Windows would already have queued survive a DISABLE (T44) or a
                // re-ENABLE of an edge registration: collect them from the kernel first.
                inner.harvest(&mut st);
            }
            // Only plain re-arms ride with the wait, and only for descriptors that no other
            // entry of this batch touches at once: the kernel then sees every descriptor's
            // operations in the batch's order.
            let deferrable = |st: &State, e: &E| st.machine.deferrable(e.raw_fd(), e.op(), e.filter(), e.trigger());
            let mut immediate: Vec<RawFd> = Vec::new();
            if defer {
                // A descriptor named by more than one entry, or by an entry that is not a plain
                // re-arm, is applied at once: its operations must reach the kernel in order.
                let mut fds: Vec<RawFd> = regs.iter().map(|e| e.raw_fd()).collect();
                fds.sort_unstable();
                immediate = fds.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
                immediate.extend(regs.iter().filter(|e| !deferrable(&st, e)).map(|e| e.raw_fd()));
                immediate.sort_unstable();
                immediate.dedup();
            }
            for (i, e) in regs.iter_mut().enumerate() {
                let mut kernel = SysKernel::new(&inner.epfd);
                if defer && deferrable(&st, e) && immediate.binary_search(&e.raw_fd()).is_err() {
                    kernel.defer = Some(&mut deferred.mods);
                    kernel.tag = i as u64;
                }
                enabled |= inner.apply_entry(&mut st, e, &mut kernel, &weak);
            }
            inner.dispatch(&mut st);
            if was_live == 0 && st.machine.live() > 0 {
                inner.promote(&mut st);
            }
        }
        if out.is_empty() {
            if enabled {
                // Windows queues a level packet at ENABLE: collect it now, so that it is queued
                // (and survives a close of the socket, D21) even if nobody dequeues for a while.
                inner.harvest(&mut st);
                inner.dispatch(&mut st);
            }
            return Ok(0);
        }
        if was_running_here {
            st.running -= 1;
        }
        let deadline = timeout.map(|t| start + t);
        let (mut st, result) = inner.wait_for_packets(st, out, timeout, deadline, regs, &mut deferred);
        match result {
            Ok(_) => {
                st.running += 1;
                drop(st);
                inner.associate();
            }
            Err(_) => inner.dispatch(&mut st),
        }
        result
    }

    /// Which kernel interface this port uses: [`Backend::IoUring`] or [`Backend::Epoll`].
    ///
    /// ```
    /// use socknotify::{Backend, CompletionPort};
    /// let port = CompletionPort::builder().backend(Backend::Epoll).build()?;
    /// assert_eq!(port.backend(), Backend::Epoll);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn backend(&self) -> Backend {
        if self.inner.ring_usable() {
            Backend::IoUring
        } else {
            Backend::Epoll
        }
    }

    /// Closes the port (`CloseHandle`): blocked threads return [`Error::Abandoned`], later
    /// calls [`Error::InvalidHandle`]. Registrations are dropped without REMOVE packets and
    /// queued packets are discarded (D6); the sockets may then join another port.
    ///
    /// ```
    /// let port = socknotify::CompletionPort::new()?;
    /// port.close();
    /// assert!(port.is_closed());
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn close(&self) {
        let inner = &self.inner;
        let mut st = inner.lock();
        if st.closed {
            return;
        }
        st.closed = true;
        let weak = Arc::downgrade(inner);
        st.machine.clear(&mut PortClaims { port: inner.id, owner: &weak });
        let cvs: Vec<Arc<Condvar>> = st.waiters.iter().map(|w| w.cv.clone()).collect();
        st.wakes.extend(cvs);
        if st.poller.is_some() {
            st.wake_poller = true;
        }
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// ```
    /// assert!(!socknotify::CompletionPort::new()?.is_closed());
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// How many system calls socknotify has made, process-wide (all ports). For tests and
    /// benchmarks that count them.
    ///
    /// ```
    /// let before = socknotify::CompletionPort::syscalls();
    /// let _port = socknotify::CompletionPort::new()?;
    /// assert!(socknotify::CompletionPort::syscalls() > before);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn syscalls() -> u64 {
        sys::syscall_count()
    }

    /// Packets queued on the port and not yet handed to a thread (for monitoring and tests).
    ///
    /// ```
    /// let port = socknotify::CompletionPort::new()?;
    /// port.post(socknotify::Completion::new(0, 0, 0))?;
    /// assert_eq!(port.queued(), 1);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn queued(&self) -> usize {
        self.inner.lock().machine.queued()
    }

    /// Registrations the port holds, including those waiting for their REMOVE packet to be
    /// dequeued (for monitoring and tests).
    ///
    /// ```
    /// assert_eq!(socknotify::CompletionPort::new()?.registrations(), 0);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn registrations(&self) -> usize {
        self.inner.lock().machine.registrations()
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

/// Re-arms applied to the machine but not yet to the kernel: they go with the wait.
struct Deferred<'w> {
    mods: Vec<sys::Mod>,
    weak: &'w Weak<Inner>,
}

impl Inner {
    fn ring_usable(&self) -> bool {
        self.ring.is_some() && !self.ring_broken.load(Ordering::Relaxed)
    }

    /// Applies one entry and writes its result; true for a successful ENABLE.
    fn apply_entry<E: Entry>(&self, st: &mut State, e: &mut E, kernel: &mut SysKernel<'_>, weak: &Weak<Inner>) -> bool {
        let mut claims = PortClaims { port: self.id, owner: weak };
        let result = st.machine.apply(
            e.raw_fd(),
            !e.fd_out_of_range(),
            e.key(),
            e.op(),
            e.filter(),
            e.trigger(),
            kernel,
            &mut claims,
        );
        let enabled = result.is_ok() && e.op() == crate::winsock::SOCK_NOTIFY_OP_ENABLE;
        e.set_result(result);
        enabled
    }

    /// Entries whose deferred re-arm did not apply: `(entry index, errno)`. `ECANCELED` (the
    /// ring itself failed): not attempted; anything else: the descriptor no longer names the
    /// registered socket, so the registration is dropped silently (D21). Either way the entry
    /// is applied again, now synchronously, as it would have been without io_uring.
    ///
    /// Entries are repaired in batch order. Only the registration the failed re-arm was made
    /// for is forgotten: an earlier repair (or another thread, while the round waited) may
    /// already have registered the socket that now has the number, and the entry then
    /// applies to that registration (a re-ENABLE keeps its key, D15).
    fn repair<E: Entry>(
        &self,
        st: &mut State,
        regs: &mut [E],
        mods: &[sys::Mod],
        failed: &[(u64, i32)],
        weak: &Weak<Inner>,
    ) {
        let mut failed = failed.to_vec();
        failed.sort_unstable_by_key(|&(tag, _)| tag);
        for (tag, errno) in failed {
            let Some(e) = usize::try_from(tag).ok().and_then(|i| regs.get_mut(i)) else { continue };
            let token = mods.iter().find(|m| m.tag == tag).map(|m| m.token);
            if errno != libc::ECANCELED && token.is_some() && st.machine.token_of(e.raw_fd()) == token {
                let mut claims = PortClaims { port: self.id, owner: weak };
                st.machine.forget_fd(e.raw_fd(), &mut SysKernel::new(&self.epfd), &mut claims);
            }
            self.apply_entry(st, e, &mut SysKernel::new(&self.epfd), weak);
        }
    }

    /// Applies deferred re-arms now, without waiting (one io_uring call).
    fn flush<E: Entry>(&self, st: &mut State, regs: &mut [E], deferred: &mut Deferred<'_>) {
        if deferred.mods.is_empty() {
            return;
        }
        let mods = std::mem::take(&mut deferred.mods);
        let round = match &self.ring {
            Some(ring) => lock_ring(ring).round(raw(&self.epfd), &mods, None, None),
            None => Err(std::io::Error::other("no ring")),
        };
        let failed: Vec<(u64, i32)> = match round {
            Ok(r) => r.failed,
            Err(_) => {
                self.ring_broken.store(true, Ordering::Relaxed);
                mods.iter().map(|m| (m.tag, libc::ECANCELED)).collect()
            }
        };
        self.repair(st, regs, &mods, &failed, deferred.weak);
    }

    fn lock(&self) -> Locked<'_> {
        Locked { guard: Some(self.raw_lock()), inner: self }
    }

    fn raw_lock(&self) -> MutexGuard<'_, State> {
        let mut st = lock(&self.state);
        st.machine.new_epoch();
        st
    }

    /// Takes this thread's association; true if it was with this port (the caller then
    /// decrements `running` under the lock). An association with another port is dropped,
    /// which stops the thread from counting as running there.
    fn take_association(self: &Arc<Self>) -> bool {
        let old = ASSOCIATION.with(|a| std::mem::replace(&mut *a.borrow_mut(), Association(None)));
        let mut old = old;
        match old.0.take() {
            Some(w) if std::ptr::eq(w.as_ptr(), Arc::as_ptr(self)) => true,
            Some(w) => {
                drop(Association(Some(w)));
                false
            }
            None => false,
        }
    }

    fn associate(self: &Arc<Self>) {
        let new = Association(Some(Arc::downgrade(self)));
        let old = ASSOCIATION.with(|a| std::mem::replace(&mut *a.borrow_mut(), new));
        drop(old);
    }

    /// A thread stopped running on this port (it exited, or dequeues elsewhere now).
    fn leave_running(&self) {
        let mut st = self.lock();
        st.running = st.running.saturating_sub(1);
        self.dispatch(&mut st);
        self.promote(&mut st);
    }

    /// Turns pending epoll events into packets without blocking.
    fn harvest(&self, st: &mut State) {
        let mut events = std::mem::take(&mut st.events);
        if let Ok(n) = sys::epoll_wait(&self.epfd, &mut events, Some(Duration::ZERO)) {
            self.absorb(st, &events[..n], false);
        }
        st.events = events;
    }

    /// Applies harvested epoll events to the machine. Only the poller resets the wake-up
    /// eventfd: a signal meant for it must never be consumed by a thread that merely collects
    /// events, or the poller could sleep on with packets in hand. (The eventfd is watched
    /// level-triggered, so an undrained signal keeps waking the poller until it drains it.)
    fn absorb(&self, st: &mut State, events: &[sys::EpollEvent], poller: bool) {
        let mut kernel = SysKernel::new(&self.epfd);
        for ev in events {
            let (token, revents) = (ev.u64, ev.events);
            if token == WAKE_TOKEN {
                if poller {
                    sys::eventfd_drain(&self.wakefd);
                }
            } else {
                st.machine.on_event(token, revents, &mut kernel);
            }
        }
    }

    /// Hands queued packets to blocked threads, most recent first, while fewer than
    /// `concurrency` threads run (D22, D23).
    fn dispatch(&self, st: &mut State) {
        self.dispatch_as(st, None);
    }

    /// [`dispatch`](Self::dispatch) run by waiter `me`, which needs no wake-up of its own.
    fn dispatch_as(&self, st: &mut State, me: Option<u64>) {
        let weak = Weak::new();
        while st.machine.queued() > 0 && st.running < self.concurrency {
            let Some(i) = st.waiters.iter().rposition(|w| w.served.is_none()) else {
                break;
            };
            let State { machine, waiters, .. } = st;
            let w = &mut waiters[i];
            // No more room than packets queued: the cost follows what is delivered.
            let cap = w.capacity.min(machine.queued());
            if w.buf.len() < cap {
                w.buf.resize(cap, Completion::default());
            }
            let mut kernel = SysKernel::new(&self.epfd);
            let n = machine.deliver(&mut w.buf[..cap], &mut kernel, &mut PortClaims { port: self.id, owner: &weak });
            if n == 0 {
                break;
            }
            w.served = Some(n);
            st.running += 1;
            let id = st.waiters[i].id;
            if me == Some(id) {
                // The dispatching thread served itself.
            } else if st.poller == Some(id) {
                st.wake_poller = true;
            } else {
                let cv = st.waiters[i].cv.clone();
                st.wakes.push(cv);
            }
        }
    }

    /// Wakes the most recent waiter to take over `epoll_wait` when nobody sleeps there.
    fn promote(&self, st: &mut State) {
        if st.poller.is_none() && st.machine.live() > 0 && st.running < self.concurrency {
            if let Some(w) = st.waiters.iter().rev().find(|w| w.served.is_none()) {
                let cv = w.cv.clone();
                st.wakes.push(cv);
            }
        }
    }

    /// The dequeue half of every call. On `Ok` the caller counts the thread as running.
    fn wait_for_packets<'a, E: Entry>(
        &'a self,
        mut st: Locked<'a>,
        out: &mut [Completion],
        timeout: Option<Duration>,
        deadline: Option<Instant>,
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
            if queued < out.len()
                && st.machine.live() > 0
                && (queued > 0 || st.poller.is_some() || timeout == Some(Duration::ZERO))
            {
                self.harvest(&mut st);
            }
            if st.machine.queued() > 0 {
                let mut kernel = SysKernel::new(&self.epfd);
                let n = st.machine.deliver(out, &mut kernel, &mut PortClaims { port: self.id, owner: &weak });
                if n > 0 {
                    self.dispatch(&mut st);
                    return (st, Ok(n));
                }
            }
        }
        if timeout == Some(Duration::ZERO) {
            return (st, Ok(0));
        }
        let id = NEXT_WAITER.fetch_add(1, Ordering::Relaxed);

        let cv = Arc::new(Condvar::new());
        st.waiters.push(Waiter { id, capacity: out.len(), buf: Vec::new(), served: None, cv: cv.clone() });
        let mut events: Vec<sys::EpollEvent> = EVENTS.with(|e| e.take());
        let result = loop {
            let i = st.waiters.iter().position(|w| w.id == id).expect("own waiter entry");
            if let Some(n) = st.waiters[i].served {
                let w = st.waiters.remove(i);
                out[..n].copy_from_slice(&w.buf[..n]);
                // The dispatcher counted us as running; the caller counts us again.
                st.running -= 1;
                break Ok(n);
            }
            if st.closed {
                st.waiters.remove(i);
                break Err(Error::Abandoned);
            }
            let remaining = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => {
                        st.waiters.remove(i);
                        break Ok(0);
                    }
                },
            };
            if st.poller.is_none() && st.machine.live() > 0 && st.running < self.concurrency {
                // Become the poller: sleep in epoll_wait on behalf of every waiter.
                st.poller = Some(id);
                let want: usize = st.waiters.iter().filter(|w| w.served.is_none()).map(|w| w.capacity).sum();
                let want = want.clamp(1, 1024);
                if events.len() < want {
                    events.resize(want, sys::EpollEvent { events: 0, u64: 0 });
                }
                let buf = &mut events[..want];
                let mut lost = false;
                if !deferred.mods.is_empty() && self.ring_usable() {
                    // One io_uring call: this batch's re-arms, then the wait.
                    let mods = std::mem::take(&mut deferred.mods);
                    // A failed MOD is only seen when the round ends: bound it (sys::MOD_ROUND_WAIT).
                    let bounded = Some(remaining.map_or(sys::MOD_ROUND_WAIT, |r| r.min(sys::MOD_ROUND_WAIT)));
                    st.release();
                    let round = match &self.ring {
                        Some(ring) => lock_ring(ring).round(raw(&self.epfd), &mods, Some(&mut *buf), bounded),
                        None => Err(std::io::Error::other("no ring")),
                    };
                    st.reacquire();
                    st.poller = None;
                    match round {
                        Ok(r) => {
                            self.repair(&mut st, regs, &mods, &r.failed, deferred.weak);
                            self.absorb(&mut st, &buf[..r.events.min(buf.len())], true);
                        }
                        Err(_) => {
                            // The kernel may still write into this buffer: give it up for good.
                            lost = true;
                            self.ring_broken.store(true, Ordering::Relaxed);
                            let failed: Vec<(u64, i32)> = mods.iter().map(|m| (m.tag, libc::ECANCELED)).collect();
                            self.repair(&mut st, regs, &mods, &failed, deferred.weak);
                        }
                    }
                } else {
                    st.release();
                    let n = sys::epoll_wait(&self.epfd, buf, remaining);
                    st.reacquire();
                    st.poller = None;
                    if let Ok(n) = n {
                        self.absorb(&mut st, &buf[..n], true);
                    }
                }
                if lost {
                    std::mem::forget(std::mem::take(&mut events));
                }
                self.dispatch_as(&mut st, Some(id));
            } else {
                st.wait(&cv, remaining);
            }
        };
        EVENTS.with(|e| e.set(events));
        // Re-arms still deferred (the wait ended before this thread polled) apply now.
        self.flush(&mut st, regs, deferred);
        self.promote(&mut st);
        (st, result)
    }
}

/// Drops the registration of descriptor `fd`, whatever port holds it, without a REMOVE
/// packet, as Windows does when a socket is closed (D21). A packet already queued for it is
/// still delivered. Call it just before closing a registered descriptor yourself (the C
/// API's `closesocket` does); plain `close` is detected too, but only lazily.
///
/// ```
/// use socknotify::{CompletionPort, Events, Registration, Trigger};
/// use std::os::fd::AsRawFd;
/// let port = CompletionPort::new()?;
/// let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// port.process(&mut [Registration::enable(&s, 1, Events::IN, Trigger::LEVEL_ONESHOT)], &mut [], Some(std::time::Duration::ZERO))?;
/// assert_eq!(port.registrations(), 1);
/// socknotify::forget_registration_raw(s.as_raw_fd());
/// assert_eq!(port.registrations(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn forget_registration_raw(fd: RawFd) {
    let Ok(i) = usize::try_from(fd) else { return };
    let owner = match claims_table().get(i) {
        Some(Some(c)) => c.owner.upgrade(),
        _ => None,
    };
    if let Some(port) = owner {
        let mut st = port.lock();
        if st.closed {
            return;
        }
        // Readiness the kernel noted before the close becomes packets first: a packet that
        // was queued is still delivered after the close (D21, T43).
        port.harvest(&mut st);
        let weak = Arc::downgrade(&port);
        st.machine.forget_fd(fd, &mut SysKernel::new(&port.epfd), &mut PortClaims { port: port.id, owner: &weak });
        port.dispatch(&mut st);
    }
}

/// Closes a socket the way Windows' `closesocket` does: its registration, on whatever port,
/// is dropped without a REMOVE packet, and a packet already queued for it is still
/// delivered (D21). Prefer it to a plain `drop` for registered sockets: a plain close is
/// detected only lazily, and readiness not yet collected from the kernel is lost with it.
///
/// ```
/// use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
/// use std::time::Duration;
/// let port = CompletionPort::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// port.process(&mut [Registration::enable(&a, 5, Events::IN, Trigger::LEVEL_PERSISTENT)], &mut [], Some(Duration::ZERO))?;
/// std::io::Write::write_all(&mut &b, b"x")?;
/// socknotify::close_socket(a);
/// let mut out = [Completion::default(); 4];
/// assert_eq!(port.dequeue(&mut out, Some(Duration::ZERO))?, 1); // the queued IN, no REMOVE
/// assert_eq!((out[0].key(), out[0].events()), (5, Events::IN));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn close_socket(socket: impl Into<OwnedFd>) {
    use std::os::fd::AsRawFd;
    let fd: OwnedFd = socket.into();
    forget_registration_raw(fd.as_raw_fd());
    drop(fd);
}
