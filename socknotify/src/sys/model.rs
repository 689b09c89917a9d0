//! Under `--cfg loom` only: the port's wake-up path modelled with loom's primitives, so that
//! the loom model covers the poller's sleep in the kernel and its hand-off through the
//! eventfd. The model's kernel knows only eventfds: a port's epoll instance reports its
//! eventfd while the eventfd's counter is non-zero (level-triggered, as epoll does), and
//! sockets are never ready (they still go through the real `epoll_ctl`, so identity errors
//! stay real). A wait with a timeout returns at once when nothing is ready (loom has no
//! time); a wait without one blocks on a loom condition variable until an eventfd it
//! watches is signalled.

use super::epoll::EpollEvent;
use loom::sync::{Condvar, Mutex};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::Duration;

#[derive(Default)]
struct Kernel {
    /// Eventfd → counter.
    eventfds: HashMap<RawFd, u64>,
    /// Epoll instance → the eventfds it watches, with their tokens.
    watches: HashMap<RawFd, Vec<(RawFd, u64)>>,
}

loom::lazy_static! {
    static ref KERNEL: (Mutex<Kernel>, Condvar) = (Mutex::new(Kernel::default()), Condvar::new());
}

/// A new eventfd (its real descriptor gives it an identity).
pub(crate) fn eventfd_created(fd: RawFd) {
    KERNEL.0.lock().unwrap().eventfds.insert(fd, 0);
}

/// `EPOLL_CTL_ADD` of `fd` to `epfd`: recorded when `fd` is an eventfd.
pub(crate) fn epoll_added(epfd: RawFd, fd: RawFd, token: u64) {
    let mut k = KERNEL.0.lock().unwrap();
    if k.eventfds.contains_key(&fd) {
        k.watches.entry(epfd).or_default().push((fd, token));
    }
}

/// Adds 1 to an eventfd and wakes the waits that watch it.
pub(crate) fn eventfd_signal(fd: RawFd) {
    let mut k = KERNEL.0.lock().unwrap();
    *k.eventfds.entry(fd).or_default() += 1;
    KERNEL.1.notify_all();
}

/// Resets an eventfd to 0.
pub(crate) fn eventfd_drain(fd: RawFd) {
    KERNEL.0.lock().unwrap().eventfds.insert(fd, 0);
}

/// `epoll_wait` on the model.
pub(crate) fn epoll_wait(epfd: RawFd, buf: &mut [EpollEvent], timeout: Option<Duration>) -> usize {
    let mut k = KERNEL.0.lock().unwrap();
    loop {
        let mut n = 0;
        for &(fd, token) in k.watches.get(&epfd).into_iter().flatten() {
            if n < buf.len() && k.eventfds.get(&fd).copied().unwrap_or(0) > 0 {
                buf[n] = EpollEvent { events: libc::EPOLLIN as u32, u64: token };
                n += 1;
            }
        }
        if n > 0 || timeout.is_some() {
            return n;
        }
        k = KERNEL.1.wait(k).unwrap();
    }
}
