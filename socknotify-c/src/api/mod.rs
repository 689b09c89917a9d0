//! The exported entry points (`#[no_mangle] extern "C"`), one file per family. Each one runs
//! inside the panic guard (`errors`), checks its pointers through `ptr` and
//! its handle through `handles`, then calls the core crate once.
//!
//! `unsafe` here is limited to exporting (`#[no_mangle]`, `unsafe extern "C" fn`) and to
//! calls of the `ptr` layer's checked conversions, each under the C caller's contract.
#![allow(unsafe_code)]

pub mod iocp;
pub mod psn;
pub mod sockets;
pub mod threads;
