//! The completion port: the safe API over the pure state machine and the `sys` layer.

use crate::error::Error;
use crate::types::{Completion, Entry, Registration};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// Options for creating a [`CompletionPort`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    concurrency: u32,
}

impl Builder {
    /// The concurrency value: how many threads may run packets from this port at once
    /// (0 = the number of processors).
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// Creates the port.
    pub fn build(self) -> Result<CompletionPort, Error> {
        todo!()
    }
}

struct Inner;

/// An I/O completion port with socket state notifications. Cheap to clone; all clones are
/// the same port. See the crate documentation for an example.
#[derive(Clone)]
pub struct CompletionPort {
    #[allow(dead_code)]
    inner: Arc<Inner>,
}

impl CompletionPort {
    /// A port whose concurrency value is the number of processors.
    pub fn new() -> Result<CompletionPort, Error> {
        Builder::default().build()
    }
    /// A port with the given concurrency value (0 = the number of processors).
    pub fn with_concurrency(n: u32) -> Result<CompletionPort, Error> {
        Builder::default().concurrency(n).build()
    }
    /// A builder for a port.
    pub fn builder() -> Builder {
        Builder::default()
    }
    /// The concurrency value in force (0 was replaced by the number of processors).
    pub fn concurrency(&self) -> u32 {
        todo!()
    }
    /// Queues a packet (`PostQueuedCompletionStatus`); it comes back exactly as posted.
    pub fn post(&self, _packet: Completion) -> Result<(), Error> {
        todo!()
    }
    /// Dequeues up to `out.len()` packets (`GetQueuedCompletionStatusEx`). `None` waits forever.
    /// `Ok(0)` means the wait timed out.
    pub fn dequeue(&self, _out: &mut [Completion], _timeout: Option<Duration>) -> Result<usize, Error> {
        todo!()
    }
    /// Applies `registrations` in order, then dequeues like [`dequeue`](Self::dequeue)
    /// (`ProcessSocketNotifications`). With an empty `out` the timeout must be zero.
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
        _regs: &mut [E],
        _out: &mut [Completion],
        _timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        todo!()
    }
    /// Closes the port (`CloseHandle`): blocked threads return [`Error::Abandoned`], later
    /// calls [`Error::InvalidHandle`]; registrations are dropped without REMOVE packets.
    pub fn close(&self) {
        todo!()
    }
    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        todo!()
    }
}

/// Drops the registration of descriptor `fd`, whatever port holds it, without a REMOVE
/// packet, as Windows does when a socket is closed. Call it just before closing a
/// registered descriptor yourself (the C API's `closesocket` does).
pub fn forget_registration_raw(_fd: RawFd) {
    todo!()
}
