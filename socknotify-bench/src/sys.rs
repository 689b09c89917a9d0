//! Every system call the benchmark makes itself, in one place, each one counted.
//!
//! * [`Epoll`]: the one raw epoll wrapper (the floor every scenario compares with, the servers
//!   written on raw epoll and the echo load generator).
//! * [`EventFd`], [`read()`], [`write()`]: the remaining calls of the scenarios' own I/O.
//! * [`calls`]: how many system calls the calling thread made through this module so far.
//!   Calls that mio and polling make inside their own code are added by their wrappers with
//!   [`note`] and the per-call counts of [`model`]; socknotify counts its own
//!   (`CompletionPort::syscalls`).
//! * Descriptor limit, CPU affinity and clocks.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

thread_local! {
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// Adds `n` system calls to the calling thread's count.
#[inline]
pub fn note(n: u64) {
    CALLS.with(|c| c.set(c.get() + n));
}

/// System calls the calling thread made through this module (and [`note`]) so far.
#[inline]
pub fn calls() -> u64 {
    CALLS.with(|c| c.get())
}

/// How many system calls one call into mio or polling makes on Linux, read from the sources
/// of the versions in `Cargo.lock` (mio 1.2, polling 3.11). The wrappers add these with
/// [`note`]; `socknotify-bench/README.md` says how they were checked (strace).
pub mod model {
    /// `Poll::poll`: one `epoll_wait`.
    pub const MIO_POLL: u64 = 1;
    /// `Registry::register` / `reregister` / `deregister`: one `epoll_ctl`.
    pub const MIO_CTL: u64 = 1;
    /// `Poller::wait` (with its timerfd, which polling creates whenever the kernel has one):
    /// `timerfd_settime`, `epoll_ctl(MOD)` of the timerfd, `epoll_wait`, `read` of its
    /// notification eventfd, `epoll_ctl(MOD)` of the eventfd.
    pub const POLLING_WAIT: u64 = 5;
    /// `Poller::add` / `modify` / `delete`: one `epoll_ctl`.
    pub const POLLING_CTL: u64 = 1;
}

fn last_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

// --- epoll --------------------------------------------------------------------------------------

/// `EPOLLIN` and friends as the `u32` an `epoll_event` holds.
pub const EP_IN: u32 = libc::EPOLLIN as u32;
pub const EP_OUT: u32 = libc::EPOLLOUT as u32;
pub const EP_HUP: u32 = libc::EPOLLHUP as u32;
pub const EP_ERR: u32 = libc::EPOLLERR as u32;
pub const EP_RDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const EP_ET: u32 = libc::EPOLLET as u32;
pub const EP_ONESHOT: u32 = libc::EPOLLONESHOT as u32;

/// An empty event, to fill buffers with.
pub const EP_EMPTY: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

/// An epoll instance. Every method is one system call (a wait retried after `EINTR`, one
/// more each time).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> Result<Epoll, String> {
        note(1);
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(last_err("epoll_create1"));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    #[inline]
    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> Result<(), String> {
        note(1);
        let mut ev = libc::epoll_event { events, u64: key };
        // SAFETY: ev is a valid epoll_event (ignored by DEL); fd is the caller's open descriptor.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) } != 0 {
            let name = match op {
                libc::EPOLL_CTL_ADD => "ADD",
                libc::EPOLL_CTL_MOD => "MOD",
                _ => "DEL",
            };
            return Err(last_err(&format!("epoll_ctl({name}) of fd {fd}")));
        }
        Ok(())
    }

    #[inline]
    pub fn add(&self, fd: RawFd, events: u32, key: u64) -> Result<(), String> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, key)
    }

    #[inline]
    pub fn modify(&self, fd: RawFd, events: u32, key: u64) -> Result<(), String> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, key)
    }

    #[inline]
    pub fn delete(&self, fd: RawFd) -> Result<(), String> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// `epoll_wait` into `evs` (`timeout` rounded down to milliseconds); returns how many.
    #[inline]
    pub fn wait(&self, evs: &mut [libc::epoll_event], timeout: Duration) -> Result<usize, String> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        loop {
            note(1);
            // SAFETY: the buffer holds evs.len() entries.
            let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, ms) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("epoll_wait: {e}"));
            }
        }
    }
}

// --- eventfd ------------------------------------------------------------------------------------

/// A blocking eventfd.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> Result<EventFd, String> {
        note(1);
        // SAFETY: eventfd returns a fresh descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(last_err("eventfd"));
        }
        // SAFETY: fd is ours.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Adds 1 to the counter.
    #[inline]
    pub fn signal(&self) -> Result<(), String> {
        let v: u64 = 1;
        note(1);
        // SAFETY: writes 8 bytes from a local.
        let n = unsafe { libc::write(self.raw(), &v as *const u64 as *const libc::c_void, 8) };
        if n != 8 {
            return Err(last_err("eventfd write"));
        }
        Ok(())
    }

    /// Reads (and resets) the counter, blocking until it is non-zero.
    #[inline]
    pub fn take(&self) -> Result<u64, String> {
        let mut v: u64 = 0;
        loop {
            note(1);
            // SAFETY: reads 8 bytes into a local.
            let n = unsafe { libc::read(self.raw(), &mut v as *mut u64 as *mut libc::c_void, 8) };
            if n == 8 {
                return Ok(v);
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("eventfd read: {e}"));
        }
    }

    /// Waits until the counter is non-zero or `timeout` passes (`poll`); true if it is.
    pub fn ready(&self, timeout: Duration) -> Result<bool, String> {
        let mut p = libc::pollfd { fd: self.raw(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        loop {
            note(1);
            // SAFETY: one pollfd we own.
            let n = unsafe { libc::poll(&mut p, 1, ms) };
            if n >= 0 {
                return Ok(n > 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll(eventfd): {e}"));
            }
        }
    }
}

// --- socket I/O ---------------------------------------------------------------------------------

/// One `read` (retried after `EINTR`).
#[inline]
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        note(1);
        // SAFETY: reads into a buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One `write` (retried after `EINTR`).
#[inline]
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        note(1);
        // SAFETY: writes from a buffer of the given length.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// SO_LINGER 0: closing the socket resets it (no TIME_WAIT piles up).
pub fn set_linger0(fd: RawFd) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    note(1);
    // SAFETY: setsockopt with a pointer to a local linger struct of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// `listen` again with a larger backlog.
pub fn listen(fd: RawFd, backlog: i32) {
    note(1);
    // SAFETY: listen on a socket the caller owns; calling it again only changes the backlog.
    unsafe { libc::listen(fd, backlog) };
}

// --- process ------------------------------------------------------------------------------------

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit on local structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let cur = lim.rlim_cur as u64;
    cur
}

/// The CPUs this process may run on.
pub fn cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a zeroed local cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling thread to `cpus` (all of them: unpins).
pub fn pin(cpus: &[usize]) {
    // SAFETY: sched_setaffinity with a zeroed local cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Nanoseconds on `clock`.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes a timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CPU-time clock of a running thread.
pub fn thread_clock<T>(h: &std::thread::JoinHandle<T>) -> Result<libc::clockid_t, String> {
    use std::os::unix::thread::JoinHandleExt;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive (not joined) and clock is a local we own.
    let r = unsafe { libc::pthread_getcpuclockid(h.as_pthread_t(), &mut clock) };
    if r != 0 {
        return Err(format!("pthread_getcpuclockid: {}", io::Error::from_raw_os_error(r)));
    }
    Ok(clock)
}

/// The CPU-time clock of the calling thread, valid from other threads while it runs.
pub fn current_thread_clock() -> Result<libc::clockid_t, String> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: pthread_self is the calling (live) thread; clock is a local we own.
    let r = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
    if r != 0 {
        return Err(format!("pthread_getcpuclockid: {}", io::Error::from_raw_os_error(r)));
    }
    Ok(clock)
}
