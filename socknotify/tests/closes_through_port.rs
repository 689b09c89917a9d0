//! `Builder::closes_through_port` (issue 10): re-arms without system calls, a lazily quieted
//! kernel watch, and the safety net for a broken promise (a plain `close()` whose number a
//! new socket takes). Syscall counts are process-wide, so the counting test runs alone in
//! its own binary's serial section (see `COUNTING`).

mod common;
use common::*;
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tests that count system calls must not overlap with each other.
static COUNTING: Mutex<()> = Mutex::new(());

fn promised_port() -> CompletionPort {
    CompletionPort::builder().closes_through_port(true).build().unwrap()
}

fn one(port: &CompletionPort, regs: &mut [Registration<'_>], within: Duration) -> Vec<Completion> {
    let mut out = [Completion::default(); 8];
    let n = port.process(regs, &mut out, Some(within)).unwrap();
    out[..n].to_vec()
}

#[test]
fn oneshot_rearm_with_the_wait_costs_only_the_wait() {
    let _serial = COUNTING.lock().unwrap_or_else(|p| p.into_inner());
    let port = promised_port();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let enable = |s| Registration::enable(s, 3, Events::IN, Trigger::LEVEL_ONESHOT);
    b.write_all(b"x").unwrap();
    assert_eq!(one(&port, &mut [enable(&a)], PATIENCE).len(), 1);
    let mut buf = [0u8; 8];
    (&a).read(&mut buf).unwrap();
    let rounds = 200u64;
    let before = CompletionPort::syscalls();
    for _ in 0..rounds {
        b.write_all(b"x").unwrap();
        // The re-arm rides with the wait; the data is already there, so the wait finds it.
        let got = one(&port, &mut [enable(&a)], PATIENCE);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].key(), got[0].events()), (3, Events::IN));
        (&a).read(&mut buf).unwrap();
    }
    let per_round = (CompletionPort::syscalls() - before) as f64 / rounds as f64;
    // Without the option a re-arm is an EPOLL_CTL_MOD (or a ring request); with it, none:
    // what remains is the wait itself (one epoll_wait or io_uring_enter, or none when the
    // readiness is collected by a harvest).
    assert!(per_round <= 1.05, "{per_round:.2} system calls per re-arm and wait");
    socknotify::close_socket(a);
}

#[test]
fn a_disabled_socket_that_stays_ready_does_not_spin_the_poller() {
    let _serial = COUNTING.lock().unwrap_or_else(|p| p.into_inner());
    let port = promised_port();
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"unread").unwrap();
    let got = one(&port, &mut [Registration::enable(&a, 4, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE);
    assert_eq!(got.len(), 1);
    // Delivered, so disabled; the data stays unread and the kernel watch is still armed.
    let before = CompletionPort::syscalls();
    assert!(one(&port, &mut [], Duration::from_millis(200)).is_empty());
    let used = CompletionPort::syscalls() - before;
    // One report, one lazy quiet (EPOLL_CTL_MOD), and the rest of the wait: a handful.
    assert!(used < 20, "{used} system calls in a 200 ms wait on a quiet port");
    // Re-arming arms the kernel again: the packet comes back.
    let got = one(&port, &mut [Registration::enable(&a, 4, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE);
    assert_eq!((got.len(), got[0].key()), (1, 4));
    socknotify::close_socket(a);
}

#[test]
fn a_broken_promise_never_gives_the_old_key_and_the_new_socket_works_within_100_ms() {
    let port = promised_port();
    let (a, _peer_a) = UnixStream::pair().unwrap();
    let (b, mut peer_b) = UnixStream::pair().unwrap();
    let number = a.as_raw_fd();
    let got = one(&port, &mut [Registration::enable(&a, 1, Events::OUT, Trigger::LEVEL_ONESHOT)], PATIENCE);
    assert_eq!((got.len(), got[0].key()), (1, 1));
    // Broken promise: a plain close, and a new socket takes the number.
    drop(a);
    let b_fd = b.into_raw_fd();
    // SAFETY-free: dup2 through libc is the test's way of reusing a number.
    assert_eq!(unsafe { libc::dup2(b_fd, number) }, number);
    unsafe { libc::close(b_fd) };
    // SAFETY: `number` is open (dup2 above) and owned by nobody else from here on.
    let reused = unsafe { OwnedFd::from_raw_fd(number) };
    peer_b.write_all(b"y").unwrap();
    let start = Instant::now();
    // The program (wrongly) believes this is a re-arm; on Windows it is the new socket's
    // first registration, with key 2.
    let mut regs = [Registration::enable(&reused, 2, Events::IN, Trigger::LEVEL_ONESHOT)];
    let mut got = one(&port, &mut regs, Duration::from_millis(20));
    regs[0].result().unwrap();
    while got.is_empty() && start.elapsed() < PATIENCE {
        got = one(&port, &mut [], Duration::from_millis(20));
    }
    let waited = start.elapsed();
    assert_eq!(got.len(), 1, "the new socket's registration never started working");
    assert_eq!(got[0].key(), 2, "a packet under the old key for a new socket");
    assert!(got[0].events().contains(Events::IN));
    assert!(waited < Duration::from_millis(400), "took {waited:?} (audit every 50 ms)");
    assert!(port.stats().reuse_repairs >= 1);
    socknotify::close_socket(reused);
}

#[test]
fn every_worker_re_arms_without_a_kernel_call() {
    let _serial = COUNTING.lock().unwrap_or_else(|p| p.into_inner());
    // Two threads share the port; whichever is not in the kernel re-arms for free too.
    let port = promised_port();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..8).map(|_| UnixStream::pair().unwrap()).collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        a.set_nonblocking(true).unwrap();
        port.process(&mut [Registration::enable(a, i, Events::IN, Trigger::LEVEL_ONESHOT)], &mut [], Some(Duration::ZERO))
            .unwrap();
    }
    let before = CompletionPort::syscalls();
    let rounds = 50;
    std::thread::scope(|s| {
        for w in 0..2usize {
            let port = port.clone();
            let pairs = &pairs;
            s.spawn(move || {
                let mut buf = [0u8; 8];
                for r in 0..rounds {
                    let i = (w * 4 + r % 4) % pairs.len();
                    let (a, b) = &pairs[i];
                    (&*b).write_all(b"z").unwrap();
                    let mut got = Vec::new();
                    while got.is_empty() {
                        got = one(&port, &mut [], PATIENCE);
                    }
                    for c in got {
                        let (a2, _) = &pairs[c.key()];
                        while (&*a2).read(&mut buf).is_ok() {}
                        port.process(
                            &mut [Registration::enable(a2, c.key(), Events::IN, Trigger::LEVEL_ONESHOT)],
                            &mut [],
                            Some(Duration::ZERO),
                        )
                        .unwrap();
                    }
                    let _ = a;
                }
            });
        }
    });
    let per_request = (CompletionPort::syscalls() - before) as f64 / (2 * rounds) as f64;
    // Waits and wake-ups only; no EPOLL_CTL_MOD per re-arm.
    assert!(per_request < 3.0, "{per_request:.2} system calls per request");
    for (a, _) in pairs {
        socknotify::close_socket(a);
    }
}
