//! The two kernel paths: io_uring (one system call per call that waits) and plain epoll.
//! This file is its own test binary because it counts the process's system calls.

use socknotify::{Backend, Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

/// Counting is process-wide: tests of this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn io_uring_port() -> Option<CompletionPort> {
    match CompletionPort::builder().closes_through_port(false).backend(Backend::IoUring).build() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("io_uring is not available here ({e}); the io_uring half of this test is skipped");
            None
        }
    }
}

/// 64 sockets registered ONESHOT|LEVEL, each delivered once (so disabled) and drained, then
/// made readable again. Returns the system calls of one `process` call that re-enables all
/// 64 and dequeues their 64 packets.
fn syscalls_for_64_reenables(port: &CompletionPort) -> u64 {
    const K: usize = 64;
    let pairs: Vec<(UnixStream, UnixStream)> = (0..K).map(|_| UnixStream::pair().unwrap()).collect();
    for (a, _) in &pairs {
        a.set_nonblocking(true).unwrap();
    }
    let mut regs: Vec<Registration<'_>> = pairs
        .iter()
        .enumerate()
        .map(|(k, (a, _))| Registration::enable(a, k, Events::IN, Trigger::LEVEL_ONESHOT))
        .collect();
    let mut out = [Completion::default(); K];
    let mut buf = [0u8; 8];
    for round in 0..3 {
        for (_, b) in &pairs {
            (&*b).write_all(b"x").unwrap();
        }
        let before = CompletionPort::syscalls();
        let mut got = port.process(&mut regs, &mut out, Some(Duration::from_secs(5))).unwrap();
        let after = CompletionPort::syscalls();
        assert!(regs.iter().all(|r| r.result().is_ok()));
        while got < K {
            got += port.dequeue(&mut out[got..], Some(Duration::from_secs(5))).unwrap();
        }
        let mut keys: Vec<usize> = out.iter().map(|c| c.key()).collect();
        keys.sort();
        assert_eq!(keys, (0..K).collect::<Vec<_>>());
        for (a, _) in &pairs {
            assert_eq!((&*a).read(&mut buf).unwrap(), 1);
        }
        if round > 0 {
            // The first round created the registrations; later ones only re-arm.
            return after - before;
        }
    }
    unreachable!()
}

#[test]
fn io_uring_batch_of_64_reenables_and_a_dequeue_is_one_system_call() {
    let _g = SERIAL.lock().unwrap();
    let Some(port) = io_uring_port() else { return };
    assert_eq!(port.backend(), Backend::IoUring);
    assert_eq!(syscalls_for_64_reenables(&port), 1);
}

#[test]
fn epoll_batch_of_64_reenables_and_a_dequeue_is_65_system_calls() {
    let _g = SERIAL.lock().unwrap();
    let port = CompletionPort::builder().closes_through_port(false).backend(Backend::Epoll).build().unwrap();
    assert_eq!(port.backend(), Backend::Epoll);
    assert_eq!(syscalls_for_64_reenables(&port), 65);
}

#[test]
fn a_dequeue_with_packets_already_queued_makes_no_system_call() {
    let _g = SERIAL.lock().unwrap();
    for port in [
        Some(CompletionPort::builder().closes_through_port(false).backend(Backend::Epoll).build().unwrap()),
        io_uring_port(),
    ]
    .into_iter()
    .flatten()
    {
        for i in 0..8 {
            port.post(Completion::new(i, 0, 0)).unwrap();
        }
        let mut out = [Completion::default(); 8];
        let before = CompletionPort::syscalls();
        assert_eq!(port.dequeue(&mut out, Some(Duration::from_secs(1))).unwrap(), 8);
        assert_eq!(CompletionPort::syscalls() - before, 0, "{:?}", port.backend());
    }
}

/// A re-enable carried by io_uring for a descriptor whose socket was closed with plain
/// `close()` and whose number now names a new socket: the kernel refuses the MOD, the chain
/// (and the wait) is cancelled, and the entry is applied again as the new socket's
/// registration, with its own key, in the same call (D21).
#[test]
fn io_uring_reenable_of_a_reused_descriptor_registers_the_new_socket() {
    let _g = SERIAL.lock().unwrap();
    let Some(port) = io_uring_port() else { return };
    let (a, a_peer) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let mut out = [Completion::default(); 4];
    (&a_peer).write_all(b"1").unwrap();
    let n = port.process(
        &mut [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_ONESHOT)],
        &mut out,
        Some(Duration::from_secs(5)),
    );
    assert_eq!(n.unwrap(), 1);
    assert_eq!(out[0].key(), 1);
    drop(a);
    // The lowest free number is reused at once.
    let (b, b_peer) = UnixStream::pair().unwrap();
    let (b, _keep) = if b.as_raw_fd() == fd { (b, b_peer) } else { (b_peer, b) };
    assert_eq!(b.as_raw_fd(), fd, "the descriptor number was not reused");
    (&_keep).write_all(b"2").unwrap();
    let mut regs = [Registration::enable(&b, 2, Events::IN, Trigger::LEVEL_ONESHOT)];
    let n = port.process(&mut regs, &mut out, Some(Duration::from_secs(5))).unwrap();
    regs[0].result().unwrap();
    assert_eq!(n, 1);
    assert_eq!(out[0].key(), 2, "the new socket's packet must carry its own key");
    assert!(out[0].events().contains(Events::IN));
    assert_eq!(port.dequeue(&mut out, Some(Duration::from_millis(100))).unwrap(), 0);
    drop(a_peer);
}

/// A thread waiting inside io_uring (its re-arms went with the wait) is woken by a post.
#[test]
fn io_uring_waiter_is_woken_by_a_post() {
    let _g = SERIAL.lock().unwrap();
    let Some(port) = io_uring_port() else { return };
    let (a, _b) = UnixStream::pair().unwrap();
    port.process(&mut [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_ONESHOT)], &mut [], Some(Duration::ZERO))
        .unwrap();
    let p2 = port.clone();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        p2.post(Completion::new(99, 7, 0)).unwrap();
    });
    let mut out = [Completion::default(); 4];
    let t = std::time::Instant::now();
    let mut regs = [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_ONESHOT)];
    let n = port.process(&mut regs, &mut out, Some(Duration::from_secs(10))).unwrap();
    assert_eq!((n, out[0].key(), out[0].bytes()), (1, 99, 7));
    assert!(t.elapsed() < Duration::from_secs(5));
    poster.join().unwrap();
}

/// A wait carried by io_uring ends at its timeout, never before (D5).
#[test]
fn io_uring_wait_times_out_without_ending_early() {
    let _g = SERIAL.lock().unwrap();
    let Some(port) = io_uring_port() else { return };
    let (a, _b) = UnixStream::pair().unwrap();
    let mut out = [Completion::default(); 4];
    let mut regs = [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_ONESHOT)];
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    for ms in [1u64, 30, 120] {
        let t = std::time::Instant::now();
        let n = port.process(&mut regs, &mut out, Some(Duration::from_millis(ms))).unwrap();
        assert_eq!(n, 0);
        let el = t.elapsed();
        assert!(el >= Duration::from_millis(ms), "ended early: {el:?} < {ms} ms");
        assert!(el < Duration::from_millis(ms) + Duration::from_secs(2));
    }
}
