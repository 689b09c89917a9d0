//! Floor 3, the completion port: the safe API over the pure machine and the `sys` layer.
//!
//! Threads that wait form a LIFO stack (D22). While the port has registrations, one waiting
//! thread at a time — the *poller* — sleeps in the kernel (`epoll_wait`, or an io_uring round)
//! on the port's epoll instance; the others sleep on their own condition variable. Packets
//! (posted, or made from kernel events) are handed straight to the most recent waiter, up to
//! its capacity, while fewer than `concurrency` threads are running (D23). A hand-off to the
//! poller wakes it through the port's eventfd; to anyone else, through its condition variable.
//!
//! Files, by concern: `builder` (making a port, choosing the kernel path), `inner` (shared
//! state, the lock and the lock order), `batch` (one call: apply entries, then dequeue; the
//! re-arms that ride with the wait), `waiters` (blocked threads, the poller role, running
//! threads), `claims` (the process-wide one-port-per-socket table and closing sockets),
//! `pollable` (the port as a descriptor for other event loops), `posts` (posting without
//! the port lock while nobody waits), `sync` (the loom shim).

mod batch;
mod builder;
mod claims;
mod inner;
mod pollable;
mod posts;
mod sync;
mod waiters;

pub use builder::{Backend, Builder};

/// A snapshot of one port, from [`CompletionPort::stats`]. Counts are since the port was
/// created.
///
/// ```
/// let s = socknotify::CompletionPort::new()?.stats();
/// assert_eq!((s.registrations, s.queued, s.waiters, s.running), (0, 0, 0, 0));
/// # Ok::<(), socknotify::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Registrations held, including those whose REMOVE packet is not yet dequeued.
    pub registrations: usize,
    /// Packets queued and not yet handed to a thread.
    pub queued: usize,
    /// Threads blocked in a dequeue on this port.
    pub waiters: usize,
    /// Threads counted as running (decision D23).
    pub running: usize,
    /// Packets posted.
    pub posted: u64,
    /// Packets handed to threads (notifications and posted packets).
    pub delivered: u64,
    /// Audits of the kernel's watch list (`Builder::closes_through_port` only).
    pub audits: u64,
    /// Registrations dropped because their socket was closed behind the port's back and its
    /// number reused (`Builder::closes_through_port` only: the promise was broken).
    pub reuse_repairs: u64,
}
pub use claims::{close_socket, forget_registration_raw};

use crate::abi::{Completion, Error, Registration};
use crate::sys;
use claims::PortClaims;
use inner::Inner;
use std::sync::Arc;
use std::time::Duration;
use sync::Condvar;

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
    pub(crate) inner: Arc<Inner>,
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
        if let Some(done) = self.inner.try_post_fast(packet) {
            return done; // nobody can be waiting for it: queued without the port lock
        }
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
        st.machine.queue_posted(packet);
        st.counters.posted += 1;
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
        self.call::<Registration<'_>>(&mut [], out, timeout)
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
        if out.is_empty() && timeout != Some(Duration::ZERO) {
            return Err(Error::InvalidArgument("a timeout needs room for packets (pass a zero timeout)"));
        }
        self.call(registrations, out, timeout)
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
        if st.machine.registrations() > 0 {
            diag!(
                debug,
                "port closed with {} registration(s): dropped without REMOVE packets (D6)",
                st.machine.registrations()
            );
        }
        let weak = Arc::downgrade(inner);
        st.machine.clear(&mut PortClaims { port: inner.id, owner: &weak });
        let cvs: Vec<Arc<Condvar>> = st.waiters.iter().filter_map(|w| w.cv.clone()).collect();
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

    /// How many system calls socknotify has made on the calling thread (all ports). Unlike
    /// [`syscalls`](Self::syscalls) it is not disturbed by other threads, so a test or a
    /// benchmark can count what one call costs.
    ///
    /// ```
    /// use socknotify::{Completion, CompletionPort};
    /// let port = CompletionPort::new()?;
    /// port.post(Completion::new(1, 0, 0))?;
    /// let before = CompletionPort::thread_syscalls();
    /// port.dequeue(&mut [Completion::default()], None)?; // the packet is queued: no wait
    /// assert_eq!(CompletionPort::thread_syscalls(), before);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn thread_syscalls() -> u64 {
        sys::thread_syscall_count()
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

    /// Turns [`Builder::closes_through_port`] on or off after the port was made, before its
    /// first registration (the C API's `socknotify_SetPortOptions`). Later, or on a closed
    /// port, it fails and changes nothing.
    ///
    /// ```
    /// let port = socknotify::CompletionPort::new()?;
    /// port.set_closes_through_port(true)?;
    /// assert!(port.closes_through_port());
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn set_closes_through_port(&self, promise: bool) -> Result<(), Error> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(Error::InvalidHandle);
        }
        if st.machine.ever_registered() {
            return Err(Error::InvalidArgument("port options must be set before the first registration"));
        }
        st.machine.set_user_rearm(promise);
        Ok(())
    }

    /// True when the port re-arms in user space ([`Builder::closes_through_port`]).
    ///
    /// ```
    /// let port = socknotify::CompletionPort::builder().closes_through_port(true).build()?;
    /// assert!(port.closes_through_port());
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn closes_through_port(&self) -> bool {
        self.inner.lock().machine.user_rearm()
    }

    /// A snapshot of the port's state and counts (for monitoring and diagnostics).
    ///
    /// ```
    /// use socknotify::{Completion, CompletionPort};
    /// use std::time::Duration;
    /// let port = CompletionPort::new()?;
    /// port.post(Completion::new(1, 0, 0))?;
    /// assert_eq!(port.stats().queued, 1);
    /// port.dequeue(&mut [Completion::default()], Some(Duration::ZERO))?;
    /// let s = port.stats();
    /// assert_eq!((s.posted, s.delivered, s.queued), (1, 1, 0));
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let st = self.inner.lock();
        let c = st.counters;
        Stats {
            registrations: st.machine.registrations(),
            queued: st.machine.queued(),
            waiters: st.waiters.iter().filter(|w| w.served.is_none()).count(),
            running: st.running,
            posted: c.posted,
            delivered: c.delivered,
            audits: c.audits,
            reuse_repairs: c.reuse_repairs,
        }
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
