//! Floor 0, the vocabulary: Windows' values and layouts ([`windows`], and [`win32`] with the
//! raw-pointer spelling of the `windows-sys` crate), the one table of result
//! codes ([`codes`]), and the safe value types built on them — [`Events`], [`Trigger`],
//! [`Completion`], [`Registration`], [`Operation`] — and the errors.
//!
//! It imports nothing from the rest of the crate; every other floor may import it.

pub mod codes;
mod completion;
mod error;
mod events;
mod registration;
pub mod win32;
pub mod windows;

pub use completion::Completion;
pub use error::{Error, RegistrationError};
pub use events::{Events, Trigger};
pub(crate) use registration::Entry;
pub use registration::{Operation, Registration};
