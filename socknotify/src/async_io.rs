//! [`AsyncPort`]: a [`CompletionPort`] used from async Rust with the async-io reactor
//! (feature `async-io`): smol, async-std and other executors of that family.
//!
//! The same protocol and guarantees as the `tokio` feature's adapter: the
//! task waits until the port's descriptor is readable (see
//! [`impl AsFd for CompletionPort`](CompletionPort#impl-AsFd-for-CompletionPort)) and takes
//! packets with a non-blocking dequeue, so a dropped future never loses a packet; a `process`
//! future applies its registrations the first time it is polled. The concurrency value (D23)
//! counts threads, as for blocking calls.

use crate::{Completion, CompletionPort, Error, Registration};
use async_io::Async;
use std::time::Duration;

/// A [`CompletionPort`] registered with the async-io reactor. Cheap to share
/// (`Arc<AsyncPort>`); any number of tasks may wait on it at once.
///
/// ```
/// use socknotify::{async_io::AsyncPort, Completion, CompletionPort};
/// async_io::block_on(async {
///     let port = AsyncPort::new(CompletionPort::new()?)?;
///     port.port().post(Completion::new(1, 2, 3))?;
///     let mut out = [Completion::default(); 8];
///     assert_eq!(port.dequeue(&mut out).await?, 1);
///     assert_eq!(out[0], Completion::new(1, 2, 3));
///     Ok::<(), socknotify::Error>(())
/// })?;
/// # Ok::<(), socknotify::Error>(())
/// ```
#[derive(Debug)]
pub struct AsyncPort {
    fd: Async<CompletionPort>,
}

impl AsyncPort {
    /// Registers `port` with the async-io reactor ([`Error::Io`] if it cannot take it).
    ///
    /// ```
    /// let port = socknotify::async_io::AsyncPort::new(socknotify::CompletionPort::new()?)?;
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn new(port: CompletionPort) -> Result<AsyncPort, Error> {
        Async::new(port).map(|fd| AsyncPort { fd }).map_err(Error::Io)
    }

    /// The port (post to it, close it, or make blocking calls on it from other threads).
    ///
    /// ```
    /// let port = socknotify::async_io::AsyncPort::new(socknotify::CompletionPort::new()?)?;
    /// assert_eq!(port.port().queued(), 0);
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub fn port(&self) -> &CompletionPort {
        self.fd.get_ref()
    }

    /// Waits for packets and dequeues up to `out.len()` of them (at least one); like
    /// [`CompletionPort::dequeue`] with no timeout. Cancellation-safe. An empty `out` is
    /// invalid; a closed port gives [`Error::InvalidHandle`].
    ///
    /// ```
    /// use socknotify::{async_io::AsyncPort, Completion, CompletionPort};
    /// let port = AsyncPort::new(CompletionPort::new()?)?;
    /// let p = port.port().clone();
    /// std::thread::spawn(move || p.post(Completion::new(5, 0, 0)));
    /// let mut out = [Completion::default(); 8];
    /// let n = async_io::block_on(port.dequeue(&mut out))?;
    /// assert_eq!((n, out[0].key()), (1, 5));
    /// # Ok::<(), socknotify::Error>(())
    /// ```
    pub async fn dequeue(&self, out: &mut [Completion]) -> Result<usize, Error> {
        if out.is_empty() {
            return Err(Error::InvalidArgument("dequeue needs room for at least one packet"));
        }
        self.process(&mut [], out).await
    }

    /// Applies `registrations` in order (each entry's result is written), then waits for
    /// packets like [`dequeue`](Self::dequeue). With an empty `out` it only applies the
    /// registrations and returns `Ok(0)`.
    ///
    /// ```
    /// use socknotify::{async_io::AsyncPort, Completion, CompletionPort, Events, Registration, Trigger};
    /// let port = AsyncPort::new(CompletionPort::new()?)?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// std::io::Write::write_all(&mut &b, b"ping")?;
    /// let mut regs = [Registration::enable(&a, 9, Events::IN, Trigger::LEVEL_ONESHOT)];
    /// let mut out = [Completion::default(); 4];
    /// assert_eq!(async_io::block_on(port.process(&mut regs, &mut out))?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn process(
        &self,
        registrations: &mut [Registration<'_>],
        out: &mut [Completion],
    ) -> Result<usize, Error> {
        let mut n = self.port().process(registrations, out, Some(Duration::ZERO))?;
        while n == 0 && !out.is_empty() {
            // async-io reports the descriptor readable if it is at or after this call: a
            // packet queued since the empty dequeue is not missed.
            self.fd.readable().await.map_err(Error::Io)?;
            n = self.port().dequeue(out, Some(Duration::ZERO))?;
        }
        Ok(n)
    }
}
