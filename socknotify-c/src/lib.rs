//! The C API of socknotify: Windows' `ProcessSocketNotifications` and I/O completion port
//! calls with Windows' names, values and x86_64 layouts (header `include/socknotify.h`),
//! plus the thread calls a ported Windows server needs (`CreateThread` and the waits; the
//! porting headers under `include/socknotify/` map the rest of Winsock onto POSIX sockets).
//!
//! The crate only translates: each exported function runs the core's call of the same name in
//! `socknotify::windows_sys` (the `windows-sys`-shaped Rust surface, which owns the handle
//! table, the per-thread last error and the pointer checks) inside a panic guard.
//!
//! Layout (one concern per file):
//! - [`api`]: the exported entry points, one file per family;
//! - `errors`: the panic guard;
//! - [`types`]: the types of this boundary (the core's, and the C-only aliases).
//!
//! `unsafe` is denied at the crate root and allowed only in `api` (exporting, and calling the
//! core's `unsafe fn`s under the C caller's contract).
//!
//! Panics never unwind into C: with `panic = "unwind"` an entry point catches the panic and
//! fails with [`ERROR_INTERNAL_ERROR`]; with `panic = "abort"` the process aborts. Both
//! builds are supported.
//!
//! The crate is also an `rlib` (library name `socknotify_c`), so Rust code (the fuzz harness,
//! tests) can call the same functions.
#![allow(non_snake_case, non_camel_case_types)]
#![deny(unsafe_code, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod api;
mod errors;
pub mod types;

#[cfg(test)]
mod tests;

pub use api::iocp::*;
pub use api::psn::*;
pub use api::sockets::*;
pub use api::threads::*;
pub use socknotify::codes::*;
pub use socknotify::windows_sys::{
    INFINITE, INVALID_SOCKET, SOCK_NOTIFY_EVENTS_ALL, SOCK_NOTIFY_EVENT_ERR, SOCK_NOTIFY_EVENT_HANGUP,
    SOCK_NOTIFY_EVENT_IN, SOCK_NOTIFY_EVENT_OUT, SOCK_NOTIFY_EVENT_REMOVE, SOCK_NOTIFY_OP_DISABLE,
    SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_NONE, SOCK_NOTIFY_OP_REMOVE, SOCK_NOTIFY_REGISTER_EVENTS_ALL,
    SOCK_NOTIFY_REGISTER_EVENT_HANGUP, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_REGISTER_EVENT_NONE,
    SOCK_NOTIFY_REGISTER_EVENT_OUT, SOCK_NOTIFY_TRIGGER_ALL, SOCK_NOTIFY_TRIGGER_EDGE, SOCK_NOTIFY_TRIGGER_LEVEL,
    SOCK_NOTIFY_TRIGGER_ONESHOT, SOCK_NOTIFY_TRIGGER_PERSISTENT,
};
pub use types::*;
