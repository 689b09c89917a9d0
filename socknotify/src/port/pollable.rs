//! The port as a descriptor (decision extension E1): what lets a port be nested in another
//! event loop — tokio, async-io, or a program's own `epoll`/`poll`.
//!
//! The descriptor is an epoll instance that watches two things, both from the first time it is
//! handed out: the port's own epoll instance (readable when kernel readiness may be pending for
//! a registration; joined only then, as a watched epoll instance makes every later ADD to it
//! dearer) and an eventfd kept signalled exactly while packets are queued (`Locked::settle`,
//! under the port lock). An internal wake-up left over with no thread in the kernel can make it
//! readable once; the next non-blocking dequeue resets it.

use super::inner::NESTED_TOKEN;
use super::CompletionPort;
use crate::sys;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// The port's descriptor, for nesting the port in another event loop.
///
/// It is **readable** when a non-blocking dequeue may find a packet: one is queued (posted,
/// a REMOVE, a notification), or the kernel holds readiness for a registered socket that
/// the dequeue will turn into one — and it stays **quiet** while the port is idle. Use it as:
///
/// 1. wait until the descriptor is readable (edge- or level-triggered);
/// 2. call [`dequeue`](CompletionPort::dequeue) or [`process`](CompletionPort::process) with
///    a zero timeout;
/// 3. if that returned packets, handle them and go back to 2; if it returned 0, go back to 1.
///
/// Every event after a dequeue that returned 0 (a post, a socket's readiness, a thread that
/// stops running under the concurrency limit, the port's closing) makes the descriptor
/// readable again, with a new edge for edge-triggered watchers, so this protocol never misses
/// a packet. A dequeue that returned 0 may be spurious (the readiness the kernel held turned
/// out not to produce a packet); step 3 absorbs it. The descriptor belongs to the port: do not
/// close it, read it or change its flags. The `tokio` and `async-io` features wrap this
/// protocol as `async fn`s (`socknotify::tokio::AsyncPort`, `socknotify::async_io::AsyncPort`).
///
/// Blocking dequeues may be mixed with this protocol on the same port.
///
/// ```
/// use socknotify::{Completion, CompletionPort};
/// use std::os::fd::AsRawFd;
/// use std::time::Duration;
/// let port = CompletionPort::new()?;
/// let readable = |port: &CompletionPort| {
///     let mut p = libc::pollfd { fd: port.as_raw_fd(), events: libc::POLLIN, revents: 0 };
///     unsafe { libc::poll(&mut p, 1, 0) == 1 }
/// };
/// assert!(!readable(&port)); // idle: quiet
/// port.post(Completion::new(7, 0, 0))?;
/// assert!(readable(&port)); // a packet is queued
/// let mut out = [Completion::default(); 4];
/// assert_eq!(port.dequeue(&mut out, Some(Duration::ZERO))?, 1);
/// assert!(!readable(&port)); // drained: quiet again
/// # Ok::<(), socknotify::Error>(())
/// ```
impl AsFd for CompletionPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.mark_polled();
        self.inner.pollfd.as_fd()
    }
}

/// The raw number of the port's descriptor (see [`AsFd`](#impl-AsFd-for-CompletionPort)).
///
/// ```
/// use std::os::fd::AsRawFd;
/// let port = socknotify::CompletionPort::new()?;
/// assert!(port.as_raw_fd() >= 0);
/// # Ok::<(), socknotify::Error>(())
/// ```
impl AsRawFd for CompletionPort {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl super::inner::Inner {
    /// The descriptor was handed out: from now on `readyfd` follows the packet queue.
    fn mark_polled(&self) {
        let mut st = self.lock();
        if st.polled {
            return;
        }
        st.polled = true;
        if let Err(_e) = sys::epoll_add(&self.pollfd, self.epfd.as_raw_fd(), sys::epoll::WAKE_FLAGS, NESTED_TOKEN) {
            // Out of kernel memory, say: `as_fd` cannot fail, so the descriptor stays readable
            // for good. A poller then spins on empty dequeues but never misses a packet.
            diag!(warn, "the port's descriptor cannot watch its epoll instance ({_e}): it stays readable");
            st.ready_always = true;
        }
        // Releasing the lock settles `readyfd` (packets queued before now included).
        st.release();
    }
}

#[cfg(loom)]
impl CompletionPort {
    /// Under the loom model only: whether the port's descriptor is readable now, asked of the
    /// model's kernel (which sees the eventfds; sockets are never ready there).
    #[doc(hidden)]
    pub fn model_descriptor_readable(&self) -> bool {
        let _ = self.as_fd();
        let mut ev = [crate::sys::EpollEvent { events: 0, u64: 0 }; 2];
        crate::sys::epoll_wait(&self.inner.pollfd, &mut ev, Some(std::time::Duration::ZERO)).unwrap_or(0) > 0
    }
}
