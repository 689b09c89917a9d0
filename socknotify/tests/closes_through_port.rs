//! `Builder::closes_through_port` (issue 10): re-arms without system calls, a lazily quieted
//! kernel watch, and the safety net for a broken promise (a plain `close()` whose number a
//! new socket takes). Tests that count the process-wide system calls run one at a time
//! (`COUNTING`); the others count the calling thread's own.

mod common;
use common::*;
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{Read, Write};
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

/// `n` socket pairs whose first sockets are registered (LEVEL_ONESHOT IN, keys from
/// `first_key`) and stay quiet: a port larger than a small one, so that audits ask identities.
fn idle_registrations(port: &CompletionPort, n: usize, first_key: usize) -> Vec<(UnixStream, UnixStream)> {
    let idle: Vec<(UnixStream, UnixStream)> = (0..n).map(|_| UnixStream::pair().unwrap()).collect();
    let mut regs: Vec<_> = idle
        .iter()
        .enumerate()
        .map(|(i, (s, _))| Registration::enable(s, first_key + i, Events::IN, Trigger::LEVEL_ONESHOT))
        .collect();
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    for r in &regs {
        r.result().unwrap();
    }
    idle
}

/// The keys of the packets dequeued until `n` came or `until` passed, sorted.
fn keys_until(port: &CompletionPort, n: usize, until: Instant) -> Vec<usize> {
    let mut keys = Vec::new();
    while keys.len() < n && Instant::now() < until {
        keys.extend(one(port, &mut [], Duration::from_millis(20)).iter().map(|c| c.key()));
    }
    keys.sort_unstable();
    keys
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
    (&a).read_exact(&mut buf[..1]).unwrap();
    let rounds = 200u64;
    let before = CompletionPort::syscalls();
    for _ in 0..rounds {
        b.write_all(b"x").unwrap();
        // The re-arm rides with the wait; the data is already there, so the wait finds it.
        let got = one(&port, &mut [enable(&a)], PATIENCE);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].key(), got[0].events()), (3, Events::IN));
        (&a).read_exact(&mut buf[..1]).unwrap();
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
    let port = promised_port();
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"unread").unwrap();
    let got = one(&port, &mut [Registration::enable(&a, 4, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE);
    assert_eq!(got.len(), 1);
    // Delivered, so disabled; the data stays unread and the kernel watch is still armed.
    let before = CompletionPort::thread_syscalls();
    assert!(one(&port, &mut [], Duration::from_millis(200)).is_empty());
    let used = CompletionPort::thread_syscalls() - before;
    // One report, one lazy quiet (EPOLL_CTL_MOD), and the rest of the wait: a handful.
    assert!(used < 20, "{used} system calls in a 200 ms wait on a quiet port");
    // Re-arming arms the kernel again: the packet comes back.
    let got = one(&port, &mut [Registration::enable(&a, 4, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE);
    assert_eq!((got.len(), got[0].key()), (1, 4));
    socknotify::close_socket(a);
}

/// The audit asks the kernel for its whole watch list when many registrations went
/// unconfirmed, and each unconfirmed descriptor's identity when they are few among many: a
/// broken promise is caught either way.
fn broken_promise(idle_count: usize) {
    let port = promised_port();
    let idle = idle_registrations(&port, idle_count, 1000);
    let (a, mut peer_a) = UnixStream::pair().unwrap();
    let (b, mut peer_b) = UnixStream::pair().unwrap();
    peer_a.write_all(b"x").unwrap();
    let got = one(&port, &mut [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE);
    assert_eq!((got.len(), got[0].key()), (1, 1));
    // Read the data: the kernel has nothing more to report, so its watch stays armed and
    // the next ENABLE of the number is a re-arm in user space, unconfirmed by the kernel.
    (&a).read_exact(&mut [0u8; 1]).unwrap();
    // Broken promise: the socket is closed behind the port's back, and a new one takes its
    // number (one dup2, so no other thread can take the number in between).
    let reused = reuse_number(a, b);
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
    // 50 ms audits; the slack is for a loaded machine, not for the design.
    assert!(waited < Duration::from_millis(400), "took {waited:?}");
    assert!(port.stats().reuse_repairs >= 1, "{:?} after {waited:?}", port.stats());
    socknotify::close_socket(reused);
    for (s, _) in idle {
        socknotify::close_socket(s);
    }
}

#[test]
fn a_broken_promise_never_gives_the_old_key_and_the_new_socket_works_within_100_ms() {
    broken_promise(0); // audited through the kernel's watch list
}

#[test]
fn a_broken_promise_among_many_quiet_registrations_is_caught_by_identity() {
    broken_promise(40); // one unconfirmed among 41: audited by the descriptor's identity
}

#[test]
fn several_broken_promises_in_one_audit_are_each_caught_and_kept_sockets_are_not() {
    // Many registrations, so the audit asks each unconfirmed descriptor's identity; several
    // of them at once (on io_uring, in one round).
    let port = promised_port();
    let idle = idle_registrations(&port, 40, 1000);
    let pairs: Vec<(UnixStream, UnixStream)> = (0..6).map(|_| UnixStream::pair().unwrap()).collect();
    for (i, (s, peer)) in pairs.iter().enumerate() {
        (&*peer).write_all(b"x").unwrap();
        let got = one(&port, &mut [Registration::enable(s, i, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE);
        assert_eq!((got.len(), got[0].key()), (1, i));
        (&*s).read_exact(&mut [0u8; 1]).unwrap();
    }
    // Sockets 0..3 are closed behind the port's back and their numbers taken by new sockets;
    // 3..6 stay. Every number is then ENABLEd: re-arms in user space, all unconfirmed.
    let mut kept = Vec::new();
    let mut reused = Vec::new();
    for (i, (s, peer)) in pairs.into_iter().enumerate() {
        if i < 3 {
            let (new, new_peer) = UnixStream::pair().unwrap();
            drop(peer);
            reused.push((UnixStream::from(reuse_number(s, new)), new_peer));
        } else {
            kept.push((s, peer));
        }
    }
    let mut regs: Vec<_> = reused
        .iter()
        .enumerate()
        .map(|(i, (s, _))| Registration::enable(s, 100 + i, Events::IN, Trigger::LEVEL_ONESHOT))
        .chain(
            kept.iter()
                .enumerate()
                .map(|(i, (s, _))| Registration::enable(s, 3 + i, Events::IN, Trigger::LEVEL_ONESHOT)),
        )
        .collect();
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    for r in &regs {
        r.result().unwrap();
    }
    drop(regs);
    for (_, peer) in &reused {
        (&*peer).write_all(b"y").unwrap();
    }
    // The new sockets' registrations start working, under the keys given to them.
    let start = Instant::now();
    assert_eq!(keys_until(&port, 3, start + PATIENCE), [100, 101, 102], "after {:?}", start.elapsed());
    assert_eq!(port.stats().reuse_repairs, 3, "only the reused numbers are repaired");
    // The kept sockets' re-arms were real.
    for (_, peer) in &kept {
        (&*peer).write_all(b"z").unwrap();
    }
    assert_eq!(keys_until(&port, 3, start + PATIENCE * 2), [3, 4, 5]);
    assert_eq!(port.stats().reuse_repairs, 3);
    for (s, _) in reused.into_iter().chain(kept).chain(idle) {
        socknotify::close_socket(s);
    }
}

#[test]
fn a_re_arm_the_kernel_reports_again_is_confirmed_without_an_audit() {
    // More registrations than a small port has, so that an audit would check identities.
    let port = promised_port();
    let idle = idle_registrations(&port, 24, 100);
    let (a, mut b) = UnixStream::pair().unwrap();
    let enable = |s| Registration::enable(s, 7, Events::IN, Trigger::LEVEL_ONESHOT);
    b.write_all(b"1").unwrap();
    assert_eq!(one(&port, &mut [enable(&a)], PATIENCE).len(), 1);
    (&a).read_exact(&mut [0u8; 1]).unwrap();
    for round in 0..3 {
        // A re-arm in user space, then the kernel reports the socket from a wait that began
        // after it: the report confirms the re-arm.
        b.write_all(b"2").unwrap();
        let got = one(&port, &mut [enable(&a)], PATIENCE);
        assert_eq!(got.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![7], "round {round}");
        (&a).read_exact(&mut [0u8; 1]).unwrap();
    }
    // Nothing is left unconfirmed: no audit becomes due, however long the port waits.
    assert!(one(&port, &mut [], Duration::from_millis(150)).is_empty());
    assert_eq!(port.stats().audits, 0, "{:?}", port.stats());
    socknotify::close_socket(a);
    for (s, _) in idle {
        socknotify::close_socket(s);
    }
}

#[test]
fn a_re_arm_from_a_thread_that_is_not_waiting_makes_no_system_call() {
    // One thread waits in the kernel for everybody; another re-arms a drained socket. Under
    // the promise the re-arm is a flag change: no EPOLL_CTL_MOD, no wake-up of the waiter.
    let port = promised_port();
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"1").unwrap();
    let got = one(&port, &mut [Registration::enable(&a, 6, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE);
    assert_eq!(got.len(), 1);
    (&a).read_exact(&mut [0u8; 1]).unwrap();
    let waiter = {
        let port = port.clone();
        std::thread::spawn(move || one(&port, &mut [], PATIENCE * 2))
    };
    // Let the waiter reach the kernel wait (no assertion depends on it having done so).
    std::thread::sleep(Duration::from_millis(50));
    let before = CompletionPort::thread_syscalls();
    let mut rearm = [Registration::enable(&a, 6, Events::IN, Trigger::LEVEL_ONESHOT)];
    port.process(&mut rearm, &mut [], Some(Duration::ZERO)).unwrap();
    rearm[0].result().unwrap();
    assert_eq!(CompletionPort::thread_syscalls() - before, 0, "the re-arm made a system call");
    b.write_all(b"2").unwrap();
    let got = waiter.join().unwrap();
    assert_eq!(got.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![6]);
    socknotify::close_socket(a);
}

#[test]
fn a_stray_report_nobody_re_arms_is_quieted_after_a_short_pause_without_spinning() {
    // The main thread holds a packet and leaves its socket unread; another thread waits.
    // Its kernel wait reports the disabled (still armed) socket: polling pauses briefly for
    // the holder's re-arm, then the watch is quieted and the waiter sleeps in the kernel.
    let port = promised_port();
    let (a, mut b) = UnixStream::pair().unwrap();
    let enable = |s| Registration::enable(s, 1, Events::IN, Trigger::LEVEL_ONESHOT);
    b.write_all(b"x").unwrap();
    assert_eq!(one(&port, &mut [enable(&a)], PATIENCE).len(), 1);
    let waiter = {
        let port = port.clone();
        std::thread::spawn(move || {
            let before = CompletionPort::thread_syscalls();
            let got = one(&port, &mut [], Duration::from_millis(300));
            (got.len(), CompletionPort::thread_syscalls() - before)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let (got, used) = waiter.join().unwrap();
    assert_eq!(got, 0, "the socket's registration is disabled until its re-arm");
    assert!(used < 20, "{used} system calls in a 300 ms wait: the waiter spun");
    // The re-arm arms the quieted watch again: the data still there is reported.
    (&a).read_exact(&mut [0u8; 1]).unwrap();
    b.write_all(b"y").unwrap();
    let got = one(&port, &mut [enable(&a)], PATIENCE);
    assert_eq!(got.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![1]);
    socknotify::close_socket(a);
}

#[test]
fn a_re_arm_by_the_packet_holder_while_another_thread_waits_loses_nothing() {
    // Whether the waiter is still pausing for the stray or already quieted it, the re-arm
    // (with no dequeue of its own) must leave the socket watched.
    let port = promised_port();
    let (a, mut b) = UnixStream::pair().unwrap();
    let enable = |s| Registration::enable(s, 2, Events::IN, Trigger::LEVEL_ONESHOT);
    for round in 0..20u64 {
        b.write_all(b"x").unwrap();
        let mut regs = if round == 0 { vec![enable(&a)] } else { vec![] };
        let got = one(&port, &mut regs, PATIENCE);
        assert_eq!(got.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![2], "round {round}");
        let waiter = {
            let port = port.clone();
            std::thread::spawn(move || one(&port, &mut [], PATIENCE))
        };
        // Give the waiter a chance to see the unread socket (no assertion depends on it).
        std::thread::sleep(Duration::from_millis(round % 4));
        (&a).read_exact(&mut [0u8; 1]).unwrap();
        let mut rearm = [enable(&a)];
        port.process(&mut rearm, &mut [], Some(Duration::ZERO)).unwrap();
        rearm[0].result().unwrap();
        b.write_all(b"y").unwrap();
        let got = waiter.join().unwrap();
        assert_eq!(got.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![2], "round {round}");
        (&a).read_exact(&mut [0u8; 1]).unwrap();
        let mut rearm = [enable(&a)];
        port.process(&mut rearm, &mut [], Some(Duration::ZERO)).unwrap();
    }
    socknotify::close_socket(a);
}

#[test]
fn without_the_promise_a_re_arm_asks_the_kernel() {
    // The default, for contrast: the re-arm confirms the socket's identity (D21).
    let port = CompletionPort::builder().closes_through_port(false).build().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"1").unwrap();
    assert_eq!(one(&port, &mut [Registration::enable(&a, 6, Events::IN, Trigger::LEVEL_ONESHOT)], PATIENCE).len(), 1);
    let before = CompletionPort::thread_syscalls();
    let mut rearm = [Registration::enable(&a, 6, Events::IN, Trigger::LEVEL_ONESHOT)];
    port.process(&mut rearm, &mut [], Some(Duration::ZERO)).unwrap();
    assert!(CompletionPort::thread_syscalls() - before >= 1);
    socknotify::close_socket(a);
}
