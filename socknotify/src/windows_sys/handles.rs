//! The handle table: the objects a `HANDLE` names (completion ports and threads), one per
//! process, shared by the Rust calls of [`crate::windows_sys`] and the C API that calls them.
//!
//! Handle values are multiples of 4 (as on Windows), start at 4 and are never reused, so a
//! handle is never NULL nor `INVALID_HANDLE_VALUE`, and a stale or garbage handle finds
//! nothing (`ERROR_INVALID_HANDLE`) instead of another object or a crash.
//!
//! Lock: one process-wide `RwLock`, held only to look up, insert or remove an entry (never
//! across a wait, a port call or a join: lookups hand out clones).

use super::thread::Thread;
use crate::abi::win32::HANDLE;
use crate::port::CompletionPort;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a handle names.
#[derive(Clone)]
pub(crate) enum Object {
    /// A completion port (`CreateIoCompletionPort`).
    Port(CompletionPort),
    /// A thread (`CreateThread`).
    Thread(Arc<Thread>),
}

static TABLE: RwLock<BTreeMap<usize, Object>> = RwLock::new(BTreeMap::new());
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
const HANDLE_STRIDE: usize = 4;

fn read() -> RwLockReadGuard<'static, BTreeMap<usize, Object>> {
    TABLE.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, BTreeMap<usize, Object>> {
    TABLE.write().unwrap_or_else(|e| e.into_inner())
}

/// The object behind `h` (a clone: the table lock is not held while the caller uses it).
pub(crate) fn lookup(h: HANDLE) -> Option<Object> {
    read().get(&(h as usize)).cloned()
}

/// The live port behind `h`, or `None` for anything else.
pub(crate) fn port(h: HANDLE) -> Option<CompletionPort> {
    match read().get(&(h as usize)) {
        Some(Object::Port(p)) => Some(p.clone()),
        _ => None,
    }
}

/// Adds `object` under a new handle; `None` when the handle space is exhausted.
pub(crate) fn insert(object: Object) -> Option<HANDLE> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let value = id.checked_mul(HANDLE_STRIDE).filter(|v| *v != usize::MAX)?;
    write().insert(value, object);
    Some(value as HANDLE)
}

/// Retires `h`: removes and returns its object (the handle value is never handed out again).
pub(crate) fn remove(h: HANDLE) -> Option<Object> {
    write().remove(&(h as usize))
}
