//! Synchronisation primitives, swapped for loom's under `--cfg loom` (tokio's shim pattern),
//! so that the waiter logic of [`crate::CompletionPort`] can be model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::thread_local;
#[cfg(not(loom))]
pub(crate) use std::thread_local;

/// Locks, ignoring poisoning: the port's state is kept consistent at every unlock point, and
/// no code holding the lock panics on user input.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Waits on `cv` for at most `timeout` (`None`: until notified).
pub(crate) fn wait<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    timeout: Option<std::time::Duration>,
) -> MutexGuard<'a, T> {
    match timeout {
        None => match cv.wait(g) {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        },
        Some(t) => match cv.wait_timeout(g, t) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        },
    }
}

/// Takes the lock if it is free (ignoring poisoning), without waiting.
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};

/// One round of waiting for another thread to finish a step of a few instructions (a post
/// between claiming its slot and filling it): a pause, and every so often a yield, in case
/// that thread was preempted.
#[inline]
pub(crate) fn backoff(round: &mut u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        *round = round.wrapping_add(1);
        if *round % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}
