//! The `churn` scenario: register N idle sockets, then remove them all. Timed end to end;
//! for socknotify that includes dequeuing the N REMOVE packets, which the API requires before
//! a socket may be registered again.

use crate::ready::{remove_all, Mech, BATCH};
use crate::util::{ctx, Pairs, Res, Stopwatch};
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// One timed run.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    /// Nanoseconds for all the sockets.
    pub ns: u64,
    /// System calls socknotify made meanwhile.
    pub sn_syscalls: u64,
}

/// Nanoseconds (and socknotify system calls) to register and remove every server socket of
/// `pairs` (the baseline is 0).
pub fn run(mech: Mech, pairs: &Pairs) -> Res<Timed> {
    let s0 = CompletionPort::syscalls();
    let ns = run_ns(mech, pairs)?;
    Ok(Timed { ns, sn_syscalls: CompletionPort::syscalls() - s0 })
}

fn run_ns(mech: Mech, pairs: &Pairs) -> Res<u64> {
    let srv: Vec<RawFd> = pairs.servers.iter().map(|s| s.as_raw_fd()).collect();
    match mech {
        Mech::Baseline => Ok(0),
        Mech::Epoll => epoll(&srv),
        Mech::Mio => mio_(&srv),
        Mech::Polling => polling_(&srv),
        Mech::Socknotify | Mech::SocknotifyEpoll => socknotify_(mech, &pairs.servers),
    }
}

fn epoll(srv: &[RawFd]) -> Res<u64> {
    // SAFETY: a fresh descriptor, owned below.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is ours.
    let ep = unsafe { OwnedFd::from_raw_fd(fd) };
    let t0 = Stopwatch::start();
    for (i, &s) in srv.iter().enumerate() {
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32, u64: i as u64 };
        // SAFETY: valid event struct and open descriptors.
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, s, &mut ev) } != 0 {
            return Err(format!("EPOLL_CTL_ADD: {}", std::io::Error::last_os_error()));
        }
    }
    for &s in srv {
        // SAFETY: as above; DEL ignores the event argument.
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_DEL, s, std::ptr::null_mut()) } != 0 {
            return Err(format!("EPOLL_CTL_DEL: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(t0.ns())
}

fn mio_(srv: &[RawFd]) -> Res<u64> {
    let poll = ctx(mio::Poll::new(), "mio::Poll::new")?;
    let t0 = Stopwatch::start();
    for (i, s) in srv.iter().enumerate() {
        ctx(
            poll.registry().register(&mut mio::unix::SourceFd(s), mio::Token(i), mio::Interest::READABLE),
            "mio register",
        )?;
    }
    for s in srv {
        ctx(poll.registry().deregister(&mut mio::unix::SourceFd(s)), "mio deregister")?;
    }
    Ok(t0.ns())
}

fn polling_(srv: &[RawFd]) -> Res<u64> {
    let poller = ctx(polling::Poller::new(), "polling::Poller::new")?;
    let t0 = Stopwatch::start();
    for (i, &s) in srv.iter().enumerate() {
        // SAFETY: deleted below while still open.
        ctx(unsafe { poller.add(s, polling::Event::readable(i)) }, "polling add")?;
    }
    for &s in srv {
        // SAFETY: the descriptor is open.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(s) };
        ctx(poller.delete(fd), "polling delete")?;
    }
    Ok(t0.ns())
}

fn socknotify_(mech: Mech, srv: &[OwnedFd]) -> Res<u64> {
    let port = mech.port()?;
    let mut out = vec![Completion::default(); BATCH];
    let t0 = Stopwatch::start();
    let mut regs: Vec<Registration<'_>> = Vec::with_capacity(BATCH);
    for (base, chunk) in srv.chunks(BATCH).enumerate() {
        regs.clear();
        regs.extend(
            chunk
                .iter()
                .enumerate()
                .map(|(j, s)| Registration::enable(s, base * BATCH + j, Events::IN, Trigger::LEVEL_ONESHOT)),
        );
        let n = ctx(port.process(&mut regs, &mut [], Some(Duration::ZERO)), "process(ENABLE)")?;
        if n != 0 {
            return Err(format!("process with an empty output returned {n}"));
        }
        for r in &regs {
            ctx(r.result(), "ENABLE")?;
        }
    }
    let other = remove_all(&port, srv, &mut out)?;
    let dt = t0.ns();
    port.close();
    if other != 0 {
        return Err(format!("{other} readiness packet(s) for idle sockets (expected none)"));
    }
    Ok(dt)
}
