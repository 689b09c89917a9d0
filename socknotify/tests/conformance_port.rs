//! Conformance suite, part 4 of 5: the completion port (packets, threads, closing, concurrency)
//! (spec §6; §8 T46, T47, T52, T56–T61, T64–T66, T68, T72; decisions D5, D6, D20, D22, D23).
//! The index of all cases and the excluded ids are in `conformance_calls.rs`.

mod common;

use common::*;
use socknotify::winsock::*;
use socknotify::{Completion, CompletionPort, Error, Events, Trigger};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const K: usize = 0xD00D;

/// Result of a dequeue on another thread: Ok(packets) or Err(code).
type Outcome = Result<Vec<Completion>, u32>;

/// Starts a thread that does one safe dequeue of up to `max` packets and reports the outcome.
fn spawn_dequeue(port: &CompletionPort, max: usize, timeout: Option<Duration>) -> mpsc::Receiver<Outcome> {
    let (tx, rx) = mpsc::channel();
    let port = port.clone();
    thread::spawn(move || {
        let mut out = vec![Completion::default(); max];
        let r = port.dequeue(&mut out, timeout).map(|n| out[..n].to_vec()).map_err(|e| e.code());
        let _ = tx.send(r);
    });
    rx
}

/// Starts a thread that does one `ProcessSocketNotifications` dequeue (INFINITE unless given)
/// and reports (code, count, entries).
fn spawn_psn(port: &CompletionPort, timeout_ms: u32) -> mpsc::Receiver<(u32, u32, Vec<OVERLAPPED_ENTRY>)> {
    let (tx, rx) = mpsc::channel();
    let port = port.clone();
    thread::spawn(move || {
        let mut out = sentinel_entries::<4>();
        let mut n = SENTINEL;
        let rc = ProcessSocketNotifications(&port, None, timeout_ms, Some(&mut out), Some(&mut n));
        let k = if rc == ERROR_SUCCESS { n.min(4) as usize } else { 0 };
        let _ = tx.send((rc, n, out[..k].to_vec()));
    });
    rx
}

/// Receives within `within`; on timeout releases the blocked thread (closes the port) and fails.
fn recv_or_fail<T>(rx: &mpsc::Receiver<T>, port: &CompletionPort, within: Duration, what: &str) -> T {
    match rx.recv_timeout(within) {
        Ok(v) => v,
        Err(_) => {
            port.close();
            panic!("{what}: the waiting thread was not released within {within:?}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Registrations from another thread wake a waiter

#[test]
fn t46_disable_first_then_enable_from_another_thread_wakes_the_waiter() {
    let port = port();
    let (a, b) = tcp_pair();
    let mut regs = [raw_reg(sock(&a), K, 0, SOCK_NOTIFY_OP_DISABLE, 0)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, 0, "DISABLE on a never-registered socket");
    let rx = spawn_psn(&port, INFINITE);
    thread::sleep(MS(100));
    let mut regs = [raw_reg(
        sock(&a),
        K,
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
    )];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, 0);
    write_all(&b, b"x");
    let (rc, n, out) = recv_or_fail(&rx, &port, PATIENCE, "T46");
    assert_eq!((rc, n), (ERROR_SUCCESS, 1));
    assert_eq!(out[0].lpCompletionKey, K);
    assert_ne!(out[0].dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN, 0);
}

#[test]
fn t47_enable_from_another_thread_wakes_an_infinite_waiter() {
    let port = port();
    let rx = spawn_psn(&port, INFINITE);
    thread::sleep(MS(100));
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    write_all(&b, b"x");
    let (rc, n, out) = recv_or_fail(&rx, &port, PATIENCE, "T47");
    assert_eq!((rc, n), (ERROR_SUCCESS, 1));
    assert_eq!(out[0].lpCompletionKey, K);
    assert_ne!(out[0].dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN, 0);
}

// ------------------------------------------------------------------------------------------
// Packets

#[test]
fn t52_notifications_and_posted_packets_share_one_fifo() {
    let port = port();
    let (a, b) = tcp_pair();
    write_all(&b, b"data");
    thread::sleep(MS(10));
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(())); // IN queued now
    port.post(Completion::new(7, 0xABC, 0)).unwrap();
    let mut out = sentinel_entries::<2>();
    let (rc, n) = psn_dequeue(&port, &mut out, 1000);
    assert_eq!((rc, n), (ERROR_SUCCESS, 2));
    assert_eq!(out[0].lpCompletionKey, K);
    assert_ne!(out[0].dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN, 0);
    assert_eq!(
        out[1],
        OVERLAPPED_ENTRY { lpCompletionKey: 7, lpOverlapped: 0, Internal: 0, dwNumberOfBytesTransferred: 0xABC }
    );
}

/// The other direction: a packet posted while the port has no registration (it takes the
/// port's lock-free path) stays ahead of a notification queued afterwards.
#[test]
fn t52_a_post_stays_ahead_of_a_notification_queued_after_it() {
    let port = port();
    let (a, b) = tcp_pair();
    write_all(&b, b"data");
    thread::sleep(MS(10));
    port.post(Completion::new(7, 0xABC, 0)).unwrap();
    assert_eq!(port.queued(), 1);
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(())); // IN queued now
    let mut out = [Completion::default(); 2];
    assert_eq!(port.dequeue(&mut out, Some(PATIENCE)).unwrap(), 2);
    assert_eq!(out[0], Completion::new(7, 0xABC, 0));
    assert_eq!(out[1].key(), K);
    assert!(out[1].events().contains(Events::IN));
}

#[test]
fn t61_batch_dequeue_keeps_fifo_order_and_every_field() {
    let port = port();
    let size = 0x1234_5678u32;
    let p1 = Completion::with_internal(123, size, 456, 789);
    let p2 = Completion::with_internal(12, size, 34, 56);
    port.post(p1).unwrap();
    port.post(p2).unwrap();
    let mut out = [Completion::default(); 2];
    assert_eq!(port.dequeue(&mut out, Some(PATIENCE)).unwrap(), 2);
    assert_eq!(out, [p1, p2]);
    assert_eq!((out[0].key(), out[0].overlapped(), out[0].internal(), out[0].bytes()), (123, 456, 789, size));
}

#[test]
fn t66_retrieve_events_equals_the_byte_count() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::OUT | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    shutdown_write(&b);
    thread::sleep(MS(20));
    let mut out = sentinel_entries::<1>();
    let (rc, n) = psn_dequeue(&port, &mut out, 1000);
    assert_eq!((rc, n), (ERROR_SUCCESS, 1));
    assert_eq!(out[0].lpCompletionKey, K);
    assert_eq!(SocketNotificationRetrieveEvents(&out[0]), out[0].dwNumberOfBytesTransferred);
    let c = Completion::from(out[0]);
    assert_eq!(c.events().bits(), c.bytes());
    assert_ne!(c.bytes(), 0);
}

#[test]
fn t72_single_dequeue_of_a_notification_succeeds_with_null_overlapped() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    write_all(&b, b"x");
    let mut out = [Completion::with_internal(0xDEAD, SENTINEL, 0xDEAD, 0xDEAD)];
    assert_eq!(port.dequeue(&mut out, Some(PATIENCE)).unwrap(), 1, "GQCS-style dequeue must succeed");
    assert_eq!(out[0].key(), K);
    assert_eq!(out[0].overlapped(), 0, "notification packets carry a NULL overlapped");
    assert_eq!(out[0].bytes(), out[0].events().bits());
    assert_eq!(out[0].events() & !Events::ERR, Events::IN);
}

#[test]
fn d20_notification_packet_fields() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, usize::MAX - 5, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    write_all(&b, b"x");
    let mut out = sentinel_entries::<3>();
    let (rc, n) = psn_dequeue(&port, &mut out, 2000);
    assert_eq!((rc, n), (ERROR_SUCCESS, 1));
    assert_eq!(
        out[0],
        OVERLAPPED_ENTRY {
            lpCompletionKey: usize::MAX - 5,
            lpOverlapped: 0,
            Internal: 0,
            dwNumberOfBytesTransferred: SOCK_NOTIFY_EVENT_IN
        }
    );
    assert_eq!(&out[1..], &sentinel_entries::<2>()[..], "entries beyond the count were written");
}

#[test]
fn d22_packets_come_out_in_fifo_order_across_batches() {
    let port = port();
    let mut expected = Vec::new();
    let mut pairs = Vec::new();
    for i in 0..60usize {
        if i % 15 == 7 {
            // A notification queued at this point (LEVEL ENABLE with data present).
            let (a, b) = tcp_pair();
            write_all(&b, b"x");
            thread::sleep(MS(10));
            assert_eq!(enable(&port, &a, 1000 + i, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
            expected.push(1000 + i);
            pairs.push((a, b));
        } else {
            port.post(Completion::new(i, i as u32, i)).unwrap();
            expected.push(i);
        }
    }
    let mut got = Vec::new();
    let mut batch = 1;
    while got.len() < expected.len() {
        let v = dequeue(&port, batch, PATIENCE);
        assert!(!v.is_empty(), "packets lost: got {} of {}", got.len(), expected.len());
        got.extend(v.iter().map(|c| c.key()));
        batch = batch % 7 + 1;
    }
    assert_eq!(got, expected);
    expect_empty(&port, MS(50));
}

// ------------------------------------------------------------------------------------------
// Closing the port

#[test]
fn t56_closing_the_port_releases_a_single_dequeue_with_abandoned() {
    let port = port();
    let rx = spawn_dequeue(&port, 1, None);
    thread::sleep(MS(100));
    port.close();
    let r = rx.recv_timeout(PATIENCE).expect("the blocked dequeue was not released by close");
    assert_eq!(r, Err(ERROR_ABANDONED_WAIT_0));
}

#[test]
fn t57_closing_the_port_releases_a_batch_dequeue_with_abandoned() {
    let port = port();
    let rx1 = spawn_dequeue(&port, 8, None);
    let rx2 = spawn_dequeue(&port, 8, Some(Duration::from_secs(30)));
    thread::sleep(MS(100));
    let t = Instant::now();
    port.close();
    for rx in [rx1, rx2] {
        let r = rx.recv_timeout(PATIENCE).expect("a blocked dequeue was not released by close");
        assert_eq!(r, Err(ERROR_ABANDONED_WAIT_0));
    }
    assert!(t.elapsed() < Duration::from_secs(2), "release was not immediate");
}

#[test]
fn t58_closing_the_port_releases_psn_with_abandoned_wait() {
    let port = port();
    let rx = spawn_psn(&port, INFINITE);
    thread::sleep(MS(100));
    port.close();
    let (rc, n, _) = rx.recv_timeout(PATIENCE).expect("the blocked PSN was not released by close");
    assert_eq!(rc, ERROR_ABANDONED_WAIT_0);
    assert_eq!(n, SENTINEL, "a failed call wrote *receivedEntryCount (D2)");
}

#[test]
fn t59_calls_after_close_fail_with_invalid_handle() {
    let port = port();
    port.post(Completion::new(1, 1, 1)).unwrap();
    port.close();
    assert!(matches!(port.dequeue(&mut [Completion::default()], Some(Duration::ZERO)), Err(Error::InvalidHandle)));
    assert!(matches!(port.dequeue(&mut [Completion::default()], None), Err(Error::InvalidHandle)));
    assert!(matches!(port.post(Completion::new(2, 2, 2)), Err(Error::InvalidHandle)));
    let mut out = sentinel_entries::<1>();
    let (rc, n) = psn_dequeue(&port, &mut out, 0);
    assert_eq!((rc, n), (ERROR_INVALID_HANDLE, SENTINEL));
    assert_eq!(ProcessSocketNotifications(&port, None, 0, None, None), ERROR_INVALID_HANDLE);
    assert_eq!(Error::InvalidHandle.code(), ERROR_INVALID_HANDLE);
}

// ------------------------------------------------------------------------------------------
// Threads: LIFO, exactly-once, concurrency

#[test]
fn t60_blocked_threads_are_released_lifo() {
    let port = CompletionPort::with_concurrency(8).unwrap();
    let t1 = spawn_dequeue(&port, 1, Some(Duration::from_secs(5)));
    thread::sleep(MS(200)); // T1 surely blocked
    let t2 = spawn_dequeue(&port, 1, Some(Duration::from_secs(5)));
    thread::sleep(MS(200)); // T2 surely blocked, after T1
    port.post(Completion::new(3, 0, 0)).unwrap();
    port.post(Completion::new(4, 0, 0)).unwrap();
    let r2 = recv_or_fail(&t2, &port, PATIENCE, "T2").expect("T2 dequeue");
    let r1 = recv_or_fail(&t1, &port, PATIENCE, "T1").expect("T1 dequeue");
    assert_eq!(
        r2.iter().map(|c| c.key()).collect::<Vec<_>>(),
        vec![3],
        "the most recent waiter must get the first packet"
    );
    assert_eq!(r1.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![4]);
}

#[test]
fn d22_three_blocked_threads_are_released_most_recent_first() {
    let port = CompletionPort::with_concurrency(8).unwrap();
    let mut rxs = Vec::new();
    for _ in 0..3 {
        rxs.push(spawn_dequeue(&port, 1, Some(Duration::from_secs(5))));
        thread::sleep(MS(150));
    }
    for k in 1..=3 {
        port.post(Completion::new(k, 0, 0)).unwrap();
    }
    let keys: Vec<usize> =
        rxs.iter().map(|rx| recv_or_fail(rx, &port, PATIENCE, "waiter").expect("dequeue")[0].key()).collect();
    assert_eq!(keys, vec![3, 2, 1], "waiters (oldest first) got these keys");
}

#[test]
fn t64_concurrency_limit_holds_a_waiter_while_a_thread_runs() {
    let port = CompletionPort::with_concurrency(1).unwrap();
    assert_eq!(port.concurrency(), 1);
    port.post(Completion::new(1, 0, 0)).unwrap();
    // T1: takes packet 1, then stays "running" until told to dequeue again.
    let (got1_tx, got1_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (t1_tx, t1_rx) = mpsc::channel();
    let p = port.clone();
    let t1 = thread::spawn(move || {
        let mut out = [Completion::default()];
        let n = p.dequeue(&mut out, Some(PATIENCE)).unwrap();
        got1_tx.send((n, out[0].key())).unwrap();
        if go_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            return;
        }
        let t = Instant::now();
        let r = p.dequeue(&mut out, Some(Duration::ZERO)).map(|n| (n, out[0].key(), t.elapsed()));
        t1_tx.send(r.map_err(|e| e.code())).unwrap();
    });
    assert_eq!(got1_rx.recv_timeout(PATIENCE).expect("T1 did not get packet 1"), (1, 1));
    // T2 waits; a packet arrives; T1 is running and the limit is 1, so T2 stays blocked.
    let t2 = spawn_dequeue(&port, 1, Some(Duration::from_secs(10)));
    thread::sleep(MS(150));
    port.post(Completion::new(2, 0, 0)).unwrap();
    match t2.recv_timeout(MS(300)) {
        Err(_) => {}
        Ok(r) => {
            port.close();
            panic!("T2 was released while T1 was running with concurrency 1: {r:?}");
        }
    }
    // T1 calls dequeue again: it takes packet 2 at once.
    go_tx.send(()).unwrap();
    let r = recv_or_fail(&t1_rx, &port, PATIENCE, "T1's second dequeue");
    let (n, key, took) = r.expect("T1's second dequeue failed");
    assert_eq!((n, key), (1, 2), "T1 must take the queued packet without blocking");
    assert!(took < Duration::from_secs(1));
    t1.join().unwrap();
    // T2 never got a packet; closing the port releases it.
    port.close();
    assert_eq!(t2.recv_timeout(PATIENCE).expect("T2 not released by close"), Err(ERROR_ABANDONED_WAIT_0));
}

#[test]
fn d23_an_exited_thread_no_longer_counts_as_running() {
    let port = CompletionPort::with_concurrency(1).unwrap();
    port.post(Completion::new(1, 0, 0)).unwrap();
    let p = port.clone();
    thread::spawn(move || {
        let mut out = [Completion::default()];
        assert_eq!(p.dequeue(&mut out, Some(PATIENCE)).unwrap(), 1);
    })
    .join()
    .unwrap();
    let t2 = spawn_dequeue(&port, 1, Some(Duration::from_secs(5)));
    thread::sleep(MS(100));
    let t = Instant::now();
    port.post(Completion::new(2, 0, 0)).unwrap();
    let r = recv_or_fail(&t2, &port, PATIENCE, "T2");
    assert!(t.elapsed() < Duration::from_secs(1), "T2 was held back by a thread that had exited");
    assert_eq!(r.expect("dequeue")[0].key(), 2);
}

#[test]
fn d23_running_thread_limit_two_releases_two() {
    let port = CompletionPort::with_concurrency(2).unwrap();
    let (a, b) =
        (spawn_dequeue(&port, 1, Some(Duration::from_secs(5))), spawn_dequeue(&port, 1, Some(Duration::from_secs(5))));
    thread::sleep(MS(150));
    port.post(Completion::new(1, 0, 0)).unwrap();
    port.post(Completion::new(2, 0, 0)).unwrap();
    let mut keys: Vec<usize> =
        [a, b].iter().map(|rx| recv_or_fail(rx, &port, PATIENCE, "waiter").unwrap()[0].key()).collect();
    keys.sort();
    assert_eq!(keys, vec![1, 2]);
}

#[test]
fn t65_concurrency_zero_means_number_of_processors() {
    let cpus = thread::available_parallelism().unwrap().get() as u32;
    assert_eq!(CompletionPort::with_concurrency(0).unwrap().concurrency(), cpus);
    assert_eq!(CompletionPort::new().unwrap().concurrency(), cpus);
    assert_eq!(CompletionPort::builder().build().unwrap().concurrency(), cpus);
    assert_eq!(CompletionPort::with_concurrency(3).unwrap().concurrency(), 3);
    assert_eq!(CompletionPort::builder().concurrency(5).build().unwrap().concurrency(), 5);
}

#[test]
fn t68_one_packet_goes_to_exactly_one_of_two_waiting_threads() {
    let port = CompletionPort::with_concurrency(4).unwrap();
    let (a, b) = tcp_pair();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let p = port.clone();
        handles.push(thread::spawn(move || {
            let mut mine = Vec::new();
            loop {
                let mut out = sentinel_entries::<4>();
                let mut n = SENTINEL;
                let rc = ProcessSocketNotifications(&p, None, 400, Some(&mut out), Some(&mut n));
                if rc != ERROR_SUCCESS {
                    return (rc, mine);
                }
                mine.extend_from_slice(&out[..n as usize]);
            }
        }));
    }
    thread::sleep(MS(100));
    write_all(&b, b"x");
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (rc, _) in &results {
        assert_eq!(*rc, WAIT_TIMEOUT);
    }
    let counts: Vec<usize> = results.iter().map(|(_, v)| v.iter().filter(|e| e.lpCompletionKey == K).count()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 1, "packets per thread: {counts:?}");
}

#[test]
fn posted_packets_wake_a_waiter_from_another_thread() {
    let port = port();
    let rx = spawn_dequeue(&port, 4, Some(Duration::from_secs(5)));
    thread::sleep(MS(50));
    let t = Instant::now();
    port.post(Completion::new(9, 8, 7)).unwrap();
    let r = recv_or_fail(&rx, &port, PATIENCE, "waiter").unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(r, vec![Completion::new(9, 8, 7)]);
}

#[test]
fn d23_dequeue_on_another_port_ends_running_on_the_first() {
    let pa = CompletionPort::with_concurrency(1).unwrap();
    let pb = port();
    pa.post(Completion::new(1, 0, 0)).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (got_tx, got_rx) = mpsc::channel();
    let (pa1, pb1) = (pa.clone(), pb.clone());
    let t1 = thread::spawn(move || {
        let mut out = [Completion::default()];
        got_tx.send(pa1.dequeue(&mut out, Some(PATIENCE)).map(|n| (n, out[0].key())).map_err(|e| e.code())).unwrap();
        if go_rx.recv_timeout(Duration::from_secs(10)).is_ok() {
            // Dequeue elsewhere: the thread leaves port A.
            let _ = pb1.dequeue(&mut out, Some(Duration::ZERO));
        }
        let _ = go_rx.recv_timeout(Duration::from_secs(10)); // stay alive until told
    });
    assert_eq!(got_rx.recv_timeout(PATIENCE).unwrap(), Ok((1, 1)));
    let t2 = spawn_dequeue(&pa, 1, Some(Duration::from_secs(5)));
    thread::sleep(MS(100));
    pa.post(Completion::new(2, 0, 0)).unwrap();
    if let Ok(r) = t2.recv_timeout(MS(200)) {
        pa.close();
        panic!("T2 released while T1 runs on a concurrency-1 port: {r:?}");
    }
    go_tx.send(()).unwrap();
    let r = recv_or_fail(&t2, &pa, PATIENCE, "T2 after T1 dequeued on another port");
    assert_eq!(r.expect("dequeue")[0].key(), 2);
    go_tx.send(()).unwrap();
    t1.join().unwrap();
}

#[test]
fn d22_packets_of_registrations_enabled_in_one_call_follow_array_order() {
    let port = port();
    let pairs: Vec<_> = (0..6).map(|_| tcp_pair()).collect();
    for (_, b) in &pairs {
        write_all(b, b"x");
    }
    thread::sleep(MS(20));
    // Array order is the reverse of creation order, to rule out "descriptor order".
    let mut regs: Vec<OVERLAPPED_ENTRY> = Vec::new();
    let mut raw: Vec<SOCK_NOTIFY_REGISTRATION> = pairs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, (a, _))| {
            raw_reg(
                sock(a),
                100 + i,
                SOCK_NOTIFY_REGISTER_EVENT_IN,
                SOCK_NOTIFY_OP_ENABLE,
                SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
            )
        })
        .collect();
    let expected: Vec<usize> = raw.iter().map(|r| r.completionKey).collect();
    assert_eq!(psn_apply(&port, &mut raw), ERROR_SUCCESS);
    assert!(raw.iter().all(|r| r.registrationResult == 0));
    port.post(Completion::new(7, 0, 0)).unwrap();
    let got = collect(&port, MS(50), 16);
    regs.extend(got.iter().map(|&c| OVERLAPPED_ENTRY::from(c)));
    let keys: Vec<usize> = regs.iter().map(|e| e.lpCompletionKey).collect();
    let mut want = expected.clone();
    want.push(7);
    assert_eq!(keys, want, "notifications queued by ENABLE must come out in array order, before a later post");
}

/// T56–T58 with live registrations: blocked threads may then be sleeping inside the port's
/// readiness wait rather than on a plain queue wait; closing must release them all at once.
#[test]
fn t58_close_releases_every_waiter_while_registrations_exist() {
    let port = port();
    let (a, _b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    let psn = spawn_psn(&port, INFINITE);
    thread::sleep(MS(50));
    let d1 = spawn_dequeue(&port, 1, None);
    thread::sleep(MS(50));
    let d2 = spawn_dequeue(&port, 4, Some(Duration::from_secs(30)));
    thread::sleep(MS(100));
    let t = Instant::now();
    port.close();
    let (rc, n, _) = psn.recv_timeout(PATIENCE).expect("PSN waiter not released by close");
    assert_eq!((rc, n), (ERROR_ABANDONED_WAIT_0, SENTINEL));
    for rx in [d1, d2] {
        assert_eq!(
            rx.recv_timeout(PATIENCE).expect("dequeue waiter not released by close"),
            Err(ERROR_ABANDONED_WAIT_0)
        );
    }
    assert!(t.elapsed() < Duration::from_secs(2), "release was not immediate: {:?}", t.elapsed());
}

/// T60 with notification packets while one waiter sleeps in the port's readiness wait.
#[test]
fn t60_lifo_holds_for_notifications_too() {
    let port = CompletionPort::with_concurrency(8).unwrap();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let t1 = spawn_dequeue(&port, 1, Some(Duration::from_secs(5)));
    thread::sleep(MS(200));
    let t2 = spawn_dequeue(&port, 1, Some(Duration::from_secs(5)));
    thread::sleep(MS(200));
    write_all(&b, b"x");
    let r2 = recv_or_fail(&t2, &port, PATIENCE, "T2").expect("T2 dequeue");
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0].key(), K, "the most recent waiter must get the notification");
    port.post(Completion::new(4, 0, 0)).unwrap();
    let r1 = recv_or_fail(&t1, &port, PATIENCE, "T1").expect("T1 dequeue");
    assert_eq!(r1.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![4]);
}

/// T64 with a notification instead of a posted packet.
#[test]
fn t64_concurrency_limit_applies_to_notifications_too() {
    let port = CompletionPort::with_concurrency(1).unwrap();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    port.post(Completion::new(1, 0, 0)).unwrap();
    let (got1_tx, got1_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (t1_tx, t1_rx) = mpsc::channel();
    let p = port.clone();
    let t1 = thread::spawn(move || {
        let mut out = [Completion::default()];
        let n = p.dequeue(&mut out, Some(PATIENCE)).unwrap();
        got1_tx.send((n, out[0].key())).unwrap();
        if go_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            return;
        }
        let r = p.dequeue(&mut out, Some(Duration::ZERO)).map(|n| (n, out[0].key()));
        t1_tx.send(r.map_err(|e| e.code())).unwrap();
    });
    assert_eq!(got1_rx.recv_timeout(PATIENCE).expect("T1 did not get packet 1"), (1, 1));
    let t2 = spawn_dequeue(&port, 1, Some(Duration::from_secs(10)));
    thread::sleep(MS(150));
    write_all(&b, b"x");
    if let Ok(r) = t2.recv_timeout(MS(300)) {
        port.close();
        panic!("T2 was released while T1 was running with concurrency 1: {r:?}");
    }
    go_tx.send(()).unwrap();
    let r = recv_or_fail(&t1_rx, &port, PATIENCE, "T1's second dequeue");
    assert_eq!(r.expect("T1's second dequeue failed"), (1, K), "T1 must take the notification without blocking");
    t1.join().unwrap();
    port.close();
    assert_eq!(t2.recv_timeout(PATIENCE).expect("T2 not released by close"), Err(ERROR_ABANDONED_WAIT_0));
}
