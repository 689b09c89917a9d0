//! Floor 2, the `sys` layer: every system call socknotify makes and all of its `unsafe`,
//! as rustix keeps its backends. One file per kernel interface:
//!
//! - [`epoll`](self::epoll): the port's epoll instance, and the translation between the
//!   machine's [`Interest`](crate::machine::Interest) / [`Readiness`](crate::machine::Readiness)
//!   and epoll's bits;
//! - `eventfd`: the port's wake-up descriptor;
//! - `socket`: socket probes (identity, kind, TCP counters, a non-blocking `poll`);
//! - `diag`: the TCP counters of many sockets at once (socket diagnostics over netlink);
//! - `uring`: the io_uring round (epoll operations, identity probes and the wait in one
//!   system call);
//! - `kernel`: the adapter that implements the machine's [`Kernel`](crate::machine::Kernel);
//! - `cast`: the layout casts between Windows' arrays and the port's types (`OVERLAPPED_ENTRY`
//!   as `Completion`; `windows-sys`'s raw-pointer spellings as the `usize` ones);
//! - `ptr`: the checks that turn a caller's raw pointers into references (the
//!   [`windows_sys`](crate::windows_sys) front end, and through it the C API).
//!
//! Each function is a thin, safe wrapper that turns a failure into `io::Error`. Nothing above
//! this module calls `libc` or writes `unsafe` (the crate root denies `unsafe_code`; only this
//! module allows it). Every `unsafe` block states why it is sound in a `SAFETY:` comment.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

mod cast;
mod diag;
pub(crate) mod epoll;
mod eventfd;
mod kernel;
#[cfg(loom)]
mod model;
pub(crate) mod ptr;
mod socket;
mod uring;

pub(crate) use cast::{completions_mut, entries_mut, registrations_mut};
pub(crate) use diag::Diag;
pub(crate) use epoll::{epoll_add, epoll_create, epoll_mod, epoll_wait, event_buffer, EpollEvent};
pub(crate) use eventfd::{eventfd, eventfd_drain, eventfd_signal};
pub(crate) use kernel::{Answers, SysKernel};
pub(crate) use socket::{close_raw, is_open_socket, CloseError};
pub(crate) use uring::{ring_new, ring_probes, Mod, Ring, Round, MOD_ROUND_WAIT, RING_MIN_MODS};

/// System calls made through this module, counted per thread so that counting shares no
/// cache line between threads: each thread bumps its own counter (a plain load and store:
/// only that thread writes it), registered once in `THREADS` so the process-wide total can be
/// summed; a thread that exits adds its count to `EXITED`.
static THREADS: Mutex<Vec<Arc<AtomicU64>>> = Mutex::new(Vec::new());
static EXITED: AtomicU64 = AtomicU64::new(0);

struct ThreadCounter(Arc<AtomicU64>);

impl Drop for ThreadCounter {
    fn drop(&mut self) {
        let mut all = THREADS.lock().unwrap_or_else(|p| p.into_inner());
        EXITED.fetch_add(self.0.load(Ordering::Relaxed), Ordering::Relaxed);
        all.retain(|c| !Arc::ptr_eq(c, &self.0));
    }
}

thread_local! {
    static MINE: ThreadCounter = {
        let c = Arc::new(AtomicU64::new(0));
        THREADS.lock().unwrap_or_else(|p| p.into_inner()).push(c.clone());
        ThreadCounter(c)
    };
}

#[inline]
fn count() {
    // During thread teardown the counter may be gone; that call goes uncounted.
    let _ = MINE.try_with(|c| c.0.store(c.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed));
}

/// Counts a futex call made by a condition variable (wait or wake-up), so that
/// [`syscall_count`] covers the port's own blocking too.
pub(crate) fn note_futex_call() {
    count();
}

/// The number of system calls made through the `sys` layer so far, process-wide.
pub(crate) fn syscall_count() -> u64 {
    let all = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    EXITED.load(Ordering::Relaxed) + all.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>()
}

/// The number of system calls the calling thread made through the `sys` layer so far.
pub(crate) fn thread_syscall_count() -> u64 {
    MINE.try_with(|c| c.0.load(Ordering::Relaxed)).unwrap_or(0)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The number of processors this process may run on.
pub(crate) fn processors() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}
