//! Thread objects behind `CreateThread` handles: a std thread running the start routine,
//! its exit code, and waits with a timeout on one or several of them.
//!
//! Lock: `EXITS` (one process-wide mutex and condition variable) guards nothing but the
//! "has exited" transition, so a waiter cannot miss it; it is never held while a start routine runs
//! or while a thread is joined.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A thread started by `CreateThread`.
pub(crate) struct Thread {
    /// `RUNNING`, or the start routine's return value.
    exit: AtomicU64,
    /// The std handle, taken by the first wait that sees the thread exited (to join it, so
    /// that its resources are released before the program goes on).
    join: Mutex<Option<JoinHandle<()>>>,
}

const RUNNING: u64 = u64::MAX;

static EXITS: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

fn exits_lock() -> MutexGuard<'static, ()> {
    EXITS.0.lock().unwrap_or_else(|e| e.into_inner())
}

impl Thread {
    /// Starts `body` on a new thread (with `stack_size` bytes of stack when not 0); `body`'s
    /// return value becomes the exit code. `None` when the system refuses a thread.
    pub(crate) fn spawn(stack_size: usize, body: impl FnOnce() -> u32 + Send + 'static) -> Option<Arc<Thread>> {
        let t = Arc::new(Thread { exit: AtomicU64::new(RUNNING), join: Mutex::new(None) });
        let me = Arc::clone(&t);
        let mut builder = std::thread::Builder::new();
        if stack_size != 0 {
            builder = builder.stack_size(stack_size.max(64 * 1024));
        }
        let handle = builder
            .spawn(move || {
                let code = body();
                let _g = exits_lock();
                me.exit.store(u64::from(code), Ordering::Release);
                EXITS.1.notify_all();
            })
            .ok()?;
        *t.join.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Some(t)
    }

    /// The exit code, or `None` while the thread runs.
    pub(crate) fn exit_code(&self) -> Option<u32> {
        match self.exit.load(Ordering::Acquire) {
            RUNNING => None,
            code => Some(code as u32),
        }
    }

    /// Joins the thread if it has exited and nobody joined it yet (quick: it is past its
    /// start routine). Never blocks on a running thread.
    pub(crate) fn reap(&self) {
        if self.exit_code().is_none() {
            return;
        }
        let handle = self.join.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Waits until every thread of `threads` has exited (`all`) or one has (`!all`), for at most
/// `timeout` (`None`: forever). Returns the index of the signalled thread (0 for `all`), or
/// `None` on timeout. Exited threads are joined before it returns.
pub(crate) fn wait(threads: &[Arc<Thread>], all: bool, timeout: Option<Duration>) -> Option<usize> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
    let mut g = exits_lock();
    let found = loop {
        let done = if all {
            threads.iter().all(|t| t.exit_code().is_some()).then_some(0)
        } else {
            threads.iter().position(|t| t.exit_code().is_some())
        };
        if done.is_some() {
            break done;
        }
        g = match deadline {
            None => EXITS.1.wait(g).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    break None;
                }
                EXITS.1.wait_timeout(g, d - now).unwrap_or_else(|e| e.into_inner()).0
            }
        };
    };
    drop(g);
    if found.is_some() {
        threads.iter().for_each(|t| t.reap());
    }
    found
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_waits() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g2 = Arc::clone(&gate);
        let slow = Thread::spawn(0, move || {
            let mut open = g2.0.lock().unwrap();
            while !*open {
                open = g2.1.wait(open).unwrap();
            }
            7
        })
        .unwrap();
        let fast = Thread::spawn(256 * 1024, || 3).unwrap();
        assert_eq!(wait(&[Arc::clone(&slow), Arc::clone(&fast)], false, None), Some(1));
        assert_eq!(fast.exit_code(), Some(3));
        assert_eq!(slow.exit_code(), None);
        assert_eq!(wait(&[Arc::clone(&slow)], true, Some(Duration::from_millis(20))), None);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        assert_eq!(wait(&[Arc::clone(&slow), Arc::clone(&fast)], true, None), Some(0));
        assert_eq!(slow.exit_code(), Some(7));
        assert!(slow.join.lock().unwrap().is_none(), "joined by the wait");
    }
}
