//! # socknotify
//!
//! Windows' *Winsock socket state notifications* (`ProcessSocketNotifications`) and the
//! I/O completion port they are delivered into, for Linux.
//!
//! One call ([`CompletionPort::process`]) applies a batch of registrations and collects
//! notifications; packets you [`post`](CompletionPort::post) come out of the same FIFO;
//! REMOVE ends a registration with one terminal packet; any number of threads may wait on
//! one port and each packet goes to exactly one of them; a concurrency value limits how many
//! run at once.
//!
//! ```
//! use socknotify::{CompletionPort, Completion, Events, Registration, Trigger};
//! use std::io::Write;
//! use std::time::Duration;
//!
//! let port = CompletionPort::new()?;
//! let (mut peer, sock) = std::os::unix::net::UnixStream::pair()?;
//! let mut out = [Completion::default(); 16];
//!
//! // Register and wait in one call.
//! let mut regs = [Registration::enable(&sock, 7, Events::IN, Trigger::LEVEL_ONESHOT)];
//! assert_eq!(port.process(&mut regs, &mut out, Some(Duration::ZERO))?, 0); // nothing yet
//! regs[0].result()?;
//!
//! peer.write_all(b"hello")?;
//! let n = port.dequeue(&mut out, Some(Duration::from_secs(5)))?;
//! assert_eq!(n, 1);
//! assert_eq!(out[0].key(), 7);
//! assert!(out[0].events().contains(Events::IN));
//!
//! // ONESHOT: re-arm and remove in later calls; REMOVE is the last packet.
//! let mut regs = [Registration::remove(&sock)];
//! let n = port.process(&mut regs, &mut out, Some(Duration::from_secs(5)))?;
//! assert_eq!(n, 1);
//! assert!(out[0].events().contains(Events::REMOVE));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate is built in floors, each importing only the floors below it (see
//! `ARCHITECTURE.md` in the repository):
//!
//! 0. `abi`: the vocabulary — Windows' values and layouts, [`Events`], [`Trigger`],
//!    [`Completion`], [`Registration`], the errors, the [`codes`] table;
//! 1. `machine`: the pure state machine (registrations, packet FIFO, trigger rules), no
//!    system calls;
//! 2. `sys`: every system call and every `unsafe` block;
//! 3. the port: [`CompletionPort`] — waiters, the poller, claims;
//! 4. the front ends: [`winsock`], the Windows-shaped safe layer
//!    (`ProcessSocketNotifications` over slices), and [`windows_sys`], the same calls with
//!    `windows-sys`'s names, types and `unsafe fn` signatures over raw pointers and `HANDLE`s
//!    (for code ported from `windows-sys`; socknotify-c's C API calls it); the async
//!    adapters `tokio` and `async_io` (features of the same names, off by default), over the
//!    port's descriptor (`impl AsFd for CompletionPort`).
#![cfg_attr(doc_examples_check, feature(rustdoc_missing_doc_code_examples))]
#![cfg_attr(doc_examples_check, warn(rustdoc::missing_doc_code_examples))]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

/// A diagnostic message through the `log` crate (feature `log`; target "socknotify"). Without
/// the feature it compiles its arguments and does nothing.
macro_rules! diag {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        log::$level!(target: "socknotify", $($arg)+);
        #[cfg(not(feature = "log"))]
        if false {
            let _ = format_args!($($arg)+);
        }
    }};
}

mod abi;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
/// The pure state machine, public only for the fuzz harness (feature `fuzzing`); not part of
/// the API and not covered by semver.
pub mod machine;
#[cfg(not(feature = "fuzzing"))]
mod machine;
/// The `sys` layer's translation between the machine's terms and epoll's bits, public only for
/// the fuzz harness's simulated kernel (feature `fuzzing`); not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod epoll_bits {
    pub use crate::sys::epoll::{flags, readiness};
}
mod port;
#[allow(unsafe_code)]
mod sys;
// The `windows-sys`-shaped front end declares `unsafe fn`s (that is `unsafe_code` too) and
// forwards their contracts to the `sys` floor's pointer layer; it dereferences nothing itself.
#[allow(unsafe_code)]
pub mod windows_sys;
pub mod winsock;
// The async adapters (floor 4, beside the front ends): the port's descriptor on a reactor.
#[cfg(feature = "async-io")]
pub mod async_io;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use abi::codes;
pub use abi::{Completion, Error, Events, Operation, Registration, RegistrationError, Trigger};
pub use port::{close_socket, forget_registration_raw, Backend, Builder, CompletionPort, Stats};
