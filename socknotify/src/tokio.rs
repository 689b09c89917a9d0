//! [`AsyncPort`]: a [`CompletionPort`] used from async Rust on a tokio runtime (feature
//! `tokio`), without a blocking thread per waiter.
//!
//! It follows the protocol of the port's descriptor (see
//! [`impl AsFd for CompletionPort`](CompletionPort#impl-AsFd-for-CompletionPort)): the task
//! waits on tokio's reactor until the descriptor is readable, then takes packets with a
//! non-blocking dequeue. **Cancellation safety**: packets are taken only inside a poll that
//! returns them, so dropping a [`dequeue`](AsyncPort::dequeue) or
//! [`process`](AsyncPort::process) future (a `tokio::time::timeout`, a `select!` branch that
//! lost) never loses a packet: the next call gets it. A `process` future applies its
//! registrations the first time it is polled, and they stay applied if it is dropped later
//! (their results are written to the slice, as always).
//!
//! The concurrency value (D23) counts threads, as for blocking calls: a runtime worker thread
//! that took packets counts as running on the port until it calls the port again. Give the
//! port a concurrency value of at least the runtime's worker threads (the default, the number
//! of processors, is that of tokio's multi-threaded runtime).

use crate::{Completion, CompletionPort, Error, Registration};
use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use std::time::Duration;

/// A [`CompletionPort`] registered with the current tokio runtime's reactor. Cheap to share
/// (`Arc<AsyncPort>`); any number of tasks may wait on it at once.
///
/// ```
/// use socknotify::{tokio::AsyncPort, Completion, CompletionPort};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), socknotify::Error> {
/// let port = AsyncPort::new(CompletionPort::new()?)?;
/// port.port().post(Completion::new(1, 2, 3))?;
/// let mut out = [Completion::default(); 8];
/// assert_eq!(port.dequeue(&mut out).await?, 1);
/// assert_eq!(out[0], Completion::new(1, 2, 3));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncPort {
    fd: AsyncFd<CompletionPort>,
}

impl AsyncPort {
    /// Registers `port` with the current tokio runtime. Fails outside a runtime (or if the
    /// reactor cannot take the descriptor) with [`Error::Io`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), socknotify::Error> {
    /// let port = socknotify::tokio::AsyncPort::new(socknotify::CompletionPort::new()?)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(port: CompletionPort) -> Result<AsyncPort, Error> {
        if ::tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Io(std::io::Error::other("socknotify::tokio::AsyncPort::new needs a tokio runtime")));
        }
        // SAFETY: `as_raw_fd` gives the port's own descriptor, made with the port and closed
        // only when the last handle to it is dropped; the `CompletionPort` moved into the
        // `AsyncFd` is such a handle, so the descriptor stays open and the same for the
        // whole life of the `AsyncFd`.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register_with_interest(port, Interest::READABLE) };
        fd.map(|fd| AsyncPort { fd }).map_err(|e| Error::Io(e.into_parts().1))
    }

    /// The port (post to it, close it, or make blocking calls on it from other threads).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), socknotify::Error> {
    /// let port = socknotify::tokio::AsyncPort::new(socknotify::CompletionPort::new()?)?;
    /// assert_eq!(port.port().queued(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn port(&self) -> &CompletionPort {
        self.fd.get_ref()
    }

    /// Waits for packets and dequeues up to `out.len()` of them (at least one); like
    /// [`CompletionPort::dequeue`] with no timeout. Wrap it in `tokio::time::timeout` for one.
    /// Cancellation-safe (see the [module](self)). An empty `out` is invalid; a closed port
    /// gives [`Error::InvalidHandle`].
    ///
    /// ```
    /// use socknotify::{tokio::AsyncPort, Completion, CompletionPort};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), socknotify::Error> {
    /// let port = AsyncPort::new(CompletionPort::new()?)?;
    /// let mut out = [Completion::default(); 8];
    /// // Nothing queued: the timeout drops the future, which loses nothing.
    /// assert!(tokio::time::timeout(Duration::from_millis(10), port.dequeue(&mut out)).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dequeue(&self, out: &mut [Completion]) -> Result<usize, Error> {
        if out.is_empty() {
            return Err(Error::InvalidArgument("dequeue needs room for at least one packet"));
        }
        self.process(&mut [], out).await
    }

    /// Applies `registrations` in order (each entry's result is written), then waits for
    /// packets like [`dequeue`](Self::dequeue) — [`CompletionPort::process`] with no
    /// timeout. With an empty `out` it only applies the registrations and returns `Ok(0)`.
    ///
    /// ```
    /// use socknotify::{tokio::AsyncPort, Completion, CompletionPort, Events, Registration, Trigger};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let port = AsyncPort::new(CompletionPort::new()?)?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// std::io::Write::write_all(&mut &b, b"ping")?;
    /// let mut regs = [Registration::enable(&a, 9, Events::IN, Trigger::LEVEL_ONESHOT)];
    /// let mut out = [Completion::default(); 4];
    /// assert_eq!(port.process(&mut regs, &mut out).await?, 1);
    /// assert_eq!(out[0].key(), 9);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn process(
        &self,
        registrations: &mut [Registration<'_>],
        out: &mut [Completion],
    ) -> Result<usize, Error> {
        let n = self.port().process(registrations, out, Some(Duration::ZERO))?;
        if n > 0 || out.is_empty() {
            return Ok(n);
        }
        loop {
            let mut ready = self.fd.readable().await.map_err(Error::Io)?;
            let n = self.port().dequeue(out, Some(Duration::ZERO))?;
            if n > 0 {
                // The readiness is kept: more packets may be queued for the next call.
                return Ok(n);
            }
            // Nothing now: wait for the next edge. tokio clears only the readiness this guard
            // saw, never one that arrived since, so no wake-up is lost.
            ready.clear_ready();
        }
    }
}
