//! Conformance suite, part 2 of 5: triggers and readiness per socket type
//! (spec §4.2, §5; §8 T11, T20–T39, T69, T71; decisions D8, D16–D19).
//! The index of all cases and the excluded ids are in `conformance_calls.rs`.

mod common;

use common::*;
use socket2::SockAddr;
use socknotify::winsock::*;
use socknotify::{Completion, Events, Trigger};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

const K: usize = 0xA11CE;

fn ev(c: &Completion) -> Events {
    c.events()
}

// ------------------------------------------------------------------------------------------
// LEVEL

#[test]
fn t11_level_without_persistence_bit_behaves_as_persistent() {
    let port = port();
    let (a, b) = tcp_pair();
    write_all(&b, b"12345");
    std::thread::sleep(MS(5));
    let mut regs =
        [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_TRIGGER_LEVEL)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, 0, "LEVEL alone must be accepted (D7)");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    read_n(&a, 2);
    assert!(ev(&expect_key(&port, K)).contains(Events::IN), "LEVEL alone did not re-fire: it behaved as one-shot");
}

#[test]
fn t20_nothing_to_report_times_out_with_count_zero() {
    let port = port();
    let (a, _b) = tcp_pair();
    let mut regs = [raw_reg(
        sock(&a),
        K,
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
    )];
    let mut out = sentinel_entries::<4>();
    let mut n = SENTINEL;
    let rc = ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut out), Some(&mut n));
    assert_eq!(regs[0].registrationResult, 0);
    assert_eq!(rc, WAIT_TIMEOUT);
    assert_eq!(n, 0);
}

#[test]
fn t21_peer_write_delivers_in_with_the_registration_key() {
    let port = port();
    let (a, b) = tcp_pair();
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
    let mut out = sentinel_entries::<4>();
    let (rc, n) = psn_dequeue(&port, &mut out, 1000);
    assert_eq!((rc, n), (ERROR_SUCCESS, 1));
    assert_eq!(out[0].lpCompletionKey, K);
    assert_ne!(out[0].dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN, 0);
}

#[test]
fn t22_level_persistent_refires_after_partial_read_and_not_after_drain() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    write_all(&b, b"12345");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    read_n(&a, 3);
    assert!(ev(&expect_key(&port, K)).contains(Events::IN), "no IN after a partial read");
    read_n(&a, 2);
    let got = dequeue(&port, 8, Duration::ZERO);
    assert!(with_key(&got, K).is_empty(), "stale IN after the drain: {got:?}");
    expect_no_key(&port, K, MS(100));
}

#[test]
fn t23_level_oneshot_is_silent_after_delivery_until_reenabled() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    write_all(&b, b"1");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    write_all(&b, b"2");
    expect_no_key(&port, K, MS(200));
}

#[test]
fn t24_reenable_of_fired_oneshot_delivers_in_the_same_call() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    write_all(&b, b"1");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    write_all(&b, b"2");
    expect_no_key(&port, K, MS(100));
    // Data unread: re-ENABLE with the same key and dequeue in one call.
    let mut regs = [raw_reg(
        sock(&a),
        K,
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
    )];
    let mut out = sentinel_entries::<4>();
    let mut n = SENTINEL;
    let rc = ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut out), Some(&mut n));
    assert_eq!(regs[0].registrationResult, 0);
    assert_eq!((rc, n), (ERROR_SUCCESS, 1), "re-ENABLE did not post IN for the unread data");
    assert_eq!(out[0].lpCompletionKey, K);
    assert_ne!(out[0].dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN, 0);
}

// ------------------------------------------------------------------------------------------
// EDGE

#[test]
fn t25_edge_persistent_fires_again_only_after_drain_and_new_data() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::EDGE_PERSISTENT), Ok(()));
    write_all(&b, b"12345");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    read_n(&a, 3);
    let got = dequeue(&port, 8, Duration::ZERO);
    assert!(with_key(&got, K).is_empty(), "partial read re-armed the edge: {got:?}");
    expect_no_key(&port, K, MS(100));
    read_n(&a, 2);
    write_all(&b, b"67890");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN), "no IN after drain + new data");
    expect_no_key(&port, K, MS(100)); // exactly once
}

#[test]
fn t26_edge_oneshot_reenable_ignores_present_data_until_drain_and_refill() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::EDGE_ONESHOT), Ok(()));
    write_all(&b, b"12345");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    read_n(&a, 3);
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::EDGE_ONESHOT), Ok(()));
    let got = dequeue(&port, 8, Duration::ZERO);
    assert!(with_key(&got, K).is_empty(), "EDGE re-ENABLE reported data already present: {got:?}");
    expect_no_key(&port, K, MS(100));
    read_n(&a, 2);
    write_all(&b, b"x");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN), "no IN after drain + refill");
}

#[test]
fn t27_edge_gives_no_packet_for_readiness_present_at_enable() {
    let port = port();
    let (a, _b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::OUT, Trigger::EDGE_PERSISTENT), Ok(()));
    expect_no_key(&port, K, MS(200));
}

#[test]
fn t28_connect_completion_is_an_out_edge() {
    let port = port();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let s = fresh_tcp();
    assert_eq!(enable(&port, &s, K, Events::OUT, Trigger::EDGE_PERSISTENT), Ok(()));
    start_connect(&s, l.local_addr().unwrap()).unwrap();
    let (c, others) = wait_key(&port, K, Duration::from_secs(1));
    let c = c.unwrap_or_else(|| panic!("no OUT within 1 s of connect ({others:?})"));
    assert!(ev(&c).contains(Events::OUT), "{:?}", ev(&c));
    assert!(!ev(&c).contains(Events::ERR));
}

#[test]
fn t29_udp_edge_registered_before_bind_fires_after_each_drain() {
    let port = port();
    let s = fresh_udp();
    assert_eq!(enable(&port, &s, K, Events::IN, Trigger::EDGE_PERSISTENT), Ok(()));
    s.bind(&SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap())).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..3u8 {
        peer.send_to(&[i], addr).unwrap();
    }
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    let udp: std::net::UdpSocket = s.into();
    let mut drained = 0;
    let mut buf = [0u8; 16];
    loop {
        match udp.recv(&mut buf) {
            Ok(_) => drained += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(drained, 3);
    peer.send_to(&[9], addr).unwrap();
    assert!(ev(&expect_key(&port, K)).contains(Events::IN), "no IN after drain + new datagram");
}

// ------------------------------------------------------------------------------------------
// Coalescing, OUT, failed connect

#[test]
fn t30_many_events_coalesce_into_one_packet_per_registration() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::OUT, Trigger::LEVEL_PERSISTENT), Ok(()));
    for i in 0..20u8 {
        write_all(&b, &[i]);
        std::thread::sleep(MS(2));
        // Posting makes the port take in the readiness it has seen so far (FIFO order), so
        // the registration's packet is queued early and every later event must merge into it.
        port.post(Completion::new(1 + i as usize, 0, 0)).unwrap();
    }
    std::thread::sleep(MS(30));
    let got = dequeue(&port, 64, PATIENCE);
    let mine = with_key(&got, K);
    assert_eq!(mine.len(), 1, "expected exactly one packet for the registration, got {got:?}");
    assert!(ev(&mine[0]).contains(Events::IN | Events::OUT), "{:?}", ev(&mine[0]));
    assert_eq!(got.len(), 21, "posted packets lost: {got:?}");
}

#[test]
fn t31_level_out_follows_send_buffer_space() {
    let port = port();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let s = fresh_tcp();
    assert_eq!(enable(&port, &s, K, Events::OUT, Trigger::LEVEL_PERSISTENT), Ok(()));
    start_connect(&s, l.local_addr().unwrap()).unwrap();
    let (peer, _) = l.accept().unwrap();
    peer.set_nonblocking(true).unwrap();
    assert!(ev(&expect_key(&port, K)).contains(Events::OUT), "no OUT after connect");
    let sent = fill_send_buffer(&s);
    let got = dequeue(&port, 8, Duration::ZERO);
    let stale: Vec<_> = with_key(&got, K).into_iter().filter(|c| c.events().contains(Events::OUT)).collect();
    assert!(stale.is_empty(), "OUT delivered while the send buffer is full: {got:?}");
    expect_no_key(&port, K, MS(100));
    read_n(&peer, sent);
    let c = expect_key(&port, K);
    assert!(ev(&c).contains(Events::OUT), "no OUT after the peer read everything: {:?}", ev(&c));
}

fn failed_connect(filter: Events) -> Events {
    let port = port();
    let (_guard, addr) = refused_addr();
    let s = fresh_tcp();
    assert_eq!(enable(&port, &s, K, filter, Trigger::LEVEL_ONESHOT), Ok(()));
    let _ = start_connect(&s, addr); // EINPROGRESS, or an immediate ECONNREFUSED
    let (c, others) = wait_key(&port, K, Duration::from_secs(5));
    ev(&c.unwrap_or_else(|| panic!("no packet for a failed connect within 5 s ({others:?})")))
}

#[test]
fn t32_failed_connect_reports_err_and_not_out() {
    let e = failed_connect(Events::IN | Events::OUT | Events::HANGUP);
    assert!(e.contains(Events::ERR), "failed connect: {e:?}");
    assert!(!e.contains(Events::OUT), "failed connect reported OUT: {e:?}");
}

#[test]
fn t33_err_is_delivered_although_not_requested() {
    let e = failed_connect(Events::IN);
    assert!(e.contains(Events::ERR), "failed connect with filter IN: {e:?}");
    assert!(!e.contains(Events::OUT) && !e.contains(Events::HANGUP), "unrequested bits delivered: {e:?}");
}

// ------------------------------------------------------------------------------------------
// Hangup and reset

#[test]
fn t34_peer_shutdown_reports_hangup() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    shutdown_write(&b);
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::HANGUP), "peer FIN: {e:?}"); // IN: accept either
    assert!(!e.contains(Events::OUT), "OUT was not requested: {e:?}");
}

#[test]
fn t35_peer_shutdown_without_hangup_in_filter_reports_in_only() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    shutdown_write(&b);
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::IN), "peer FIN: {e:?}");
    assert!(!e.contains(Events::HANGUP), "HANGUP delivered although not requested: {e:?}");
}

#[test]
fn t36_peer_reset_reports_err_and_hangup() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    close_with_rst(b);
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::ERR | Events::HANGUP), "peer RST: {e:?}");
}

#[test]
fn t37_listener_reports_in_and_never_out() {
    let port = port();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    assert_eq!(enable(&port, &l, K, Events::IN | Events::OUT, Trigger::LEVEL_PERSISTENT), Ok(()));
    expect_no_key(&port, K, MS(100)); // no pending connection: nothing
    let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let first = expect_key(&port, K);
    assert_eq!(ev(&first), Events::IN, "listener with a pending connection");
    // Persistent level: it re-fires while the connection is pending; never with OUT.
    let more = collect(&port, MS(30), 5);
    for c in with_key(&more, K) {
        assert_eq!(ev(&c), Events::IN);
    }
    let _accepted = l.accept().unwrap();
}

#[test]
fn t38_unbound_udp_is_writable_at_once() {
    let port = port();
    let s = fresh_udp();
    assert_eq!(enable(&port, &s, K, Events::OUT, Trigger::LEVEL_ONESHOT), Ok(()));
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::OUT), "{e:?}");
}

#[test]
fn t39_udp_never_reports_hangup() {
    let port = port();
    let (a, b) = udp_pair();
    assert_eq!(enable(&port, &a, K, Events::FILTER_ALL, Trigger::LEVEL_PERSISTENT), Ok(()));
    drop(b);
    // Sending to the closed peer brings an ICMP port-unreachable (an error on a connected socket).
    let _ = a.send(b"ping");
    std::thread::sleep(MS(20));
    let _ = a.send(b"ping");
    let got = collect(&port, MS(50), 40);
    let mine = with_key(&got, K);
    assert!(!mine.is_empty(), "a writable UDP socket with LEVEL|PERSISTENT OUT reported nothing");
    for c in &mine {
        assert!(!ev(c).contains(Events::HANGUP), "UDP reported HANGUP: {:?}", ev(c));
    }
}

#[test]
fn t69_oneshot_delivery_disarms_the_whole_registration() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP | Events::OUT, Trigger::LEVEL_ONESHOT), Ok(()));
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::OUT), "{e:?}");
    assert!(!e.contains(Events::IN), "{e:?}");
    write_all(&b, b"x");
    expect_no_key(&port, K, MS(200));
}

#[test]
fn t71_fresh_tcp_socket_reports_nothing() {
    let port = port();
    let s = fresh_tcp();
    assert_eq!(enable(&port, &s, K, Events::FILTER_ALL, Trigger::LEVEL_PERSISTENT), Ok(()));
    expect_no_key(&port, K, MS(200));
}

// ------------------------------------------------------------------------------------------
// D8, D16, D17

#[test]
fn d8_empty_filter_delivers_only_err() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::NONE, Trigger::LEVEL_PERSISTENT), Ok(()));
    write_all(&b, b"data");
    expect_no_key(&port, K, MS(150)); // readable and writable, but nothing requested
    close_with_rst(b);
    let e = ev(&expect_key(&port, K));
    assert_eq!(e, Events::ERR, "filter NONE after a reset");
}

#[test]
fn d16_coalesced_packet_keeps_its_place_in_the_fifo() {
    let port = port();
    let (a, b) = tcp_pair();
    port.post(Completion::new(1, 0, 0)).unwrap();
    write_all(&b, b"first");
    std::thread::sleep(MS(10));
    // LEVEL ENABLE with data present queues the packet now, between the two posts.
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_PERSISTENT), Ok(()));
    port.post(Completion::new(2, 0, 0)).unwrap();
    write_all(&b, b"second");
    shutdown_write(&b);
    std::thread::sleep(MS(50));
    let got = dequeue(&port, 64, PATIENCE);
    let keys: Vec<usize> = got.iter().map(|c| c.key()).collect();
    assert_eq!(keys, vec![1, K, 2], "coalesced packet moved or duplicated: {got:?}");
    assert!(ev(&got[1]).contains(Events::IN | Events::HANGUP), "{:?}", ev(&got[1]));
}

#[test]
fn d17_queued_level_packet_of_a_drained_socket_is_dropped_and_the_dequeue_goes_on() {
    let port = port();
    let (a, b) = tcp_pair();
    write_all(&b, b"12345");
    std::thread::sleep(MS(10));
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(())); // IN queued
    port.post(Completion::new(7, 77, 0)).unwrap(); // behind it
    read_n(&a, 5); // drained before the dequeue
    let t = Instant::now();
    let got = dequeue(&port, 1, PATIENCE);
    assert_eq!(got, vec![Completion::new(7, 77, 0)], "stale level packet delivered, or the dequeue stopped at it");
    assert!(t.elapsed() < Duration::from_secs(1));
    expect_no_key(&port, K, MS(100));
}

#[test]
fn d17_level_mask_reflects_the_state_at_dequeue() {
    let port = port();
    let (a, b) = tcp_pair();
    write_all(&b, b"12345");
    std::thread::sleep(MS(10));
    // Readable and writable: the packet is queued now with IN|OUT.
    assert_eq!(enable(&port, &a, K, Events::IN | Events::OUT, Trigger::LEVEL_PERSISTENT), Ok(()));
    // Make the socket unwritable before anyone dequeues (the peer does not read).
    fill_send_buffer(&a);
    let c = expect_key(&port, K);
    assert!(ev(&c).contains(Events::IN), "{:?}", ev(&c));
    assert!(!ev(&c).contains(Events::OUT), "stale OUT: the mask was not computed at dequeue: {:?}", ev(&c));
}

// ------------------------------------------------------------------------------------------
// D19: readiness per socket type

#[test]
fn d19_listener_reports_in_only_whatever_the_filter() {
    let port = port();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(enable(&port, &l, K, Events::FILTER_ALL, Trigger::LEVEL_ONESHOT), Ok(()));
    expect_no_key(&port, K, MS(100));
    let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    assert_eq!(ev(&expect_key(&port, K)), Events::IN);
}

#[test]
fn d19_bound_but_unconnected_tcp_reports_nothing() {
    let port = port();
    let (s, _addr) = refused_addr(); // bound, not listening, never connected
    s.set_nonblocking(true).unwrap();
    assert_eq!(enable(&port, &s, K, Events::FILTER_ALL, Trigger::LEVEL_PERSISTENT), Ok(()));
    expect_no_key(&port, K, MS(150));
    // EDGE too.
    let s2 = fresh_tcp();
    assert_eq!(enable(&port, &s2, K + 1, Events::FILTER_ALL, Trigger::EDGE_PERSISTENT), Ok(()));
    expect_no_key(&port, K + 1, MS(100));
}

/// Waits until the failed connect of `s` shows in SO_ERROR, and consumes it as an application
/// does (Linux clears the pending error when it is read).
fn consume_connect_error(s: &socket2::Socket) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match s.take_error().unwrap() {
            Some(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
                break;
            }
            None => {
                assert!(Instant::now() < deadline, "connect did not fail");
                std::thread::sleep(MS(5));
            }
        }
    }
    assert!(s.take_error().unwrap().is_none(), "SO_ERROR was not cleared");
}

#[test]
fn d19_failed_connect_err_is_latched_after_so_error_was_read() {
    let port = port();
    let (_guard, addr) = refused_addr();
    let s = fresh_tcp();
    assert_eq!(enable(&port, &s, K, Events::IN | Events::OUT | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    let _ = start_connect(&s, addr);
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::ERR) && !e.contains(Events::OUT), "{e:?}");
    consume_connect_error(&s);
    for round in 0..2 {
        assert_eq!(enable(&port, &s, K, Events::IN | Events::OUT | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
        let e = ev(&expect_key(&port, K));
        assert!(e.contains(Events::ERR), "round {round}: ERR not latched after a failed connect: {e:?}");
        assert!(!e.contains(Events::OUT), "round {round}: failed connect reported OUT: {e:?}");
    }
}

/// The connect fails and the application reads SO_ERROR *before* registering. On Windows the
/// failure is sticky endpoint state (AFD CONNECT_FAIL), so a later registration still sees ERR
/// and no OUT (D19: "a failed connect reports ERR and not OUT").
#[test]
fn d19_failed_connect_consumed_before_registration_reports_err_not_out() {
    let port = port();
    let (_guard, addr) = refused_addr();
    let s = fresh_tcp();
    let _ = start_connect(&s, addr);
    consume_connect_error(&s);
    assert_eq!(enable(&port, &s, K, Events::IN | Events::OUT | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    let (c, _) = wait_key(&port, K, MS(500));
    let e = c.map(|c| ev(&c)).unwrap_or(Events::NONE);
    assert!(!e.contains(Events::OUT), "failed connect reported OUT: {e:?}");
    assert!(e.contains(Events::ERR), "failed connect (error already read) does not report ERR: {e:?}");
}

#[test]
fn d19_peer_fin_reports_in_and_hangup() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::FILTER_ALL, Trigger::EDGE_PERSISTENT), Ok(()));
    shutdown_write(&b);
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::IN | Events::HANGUP), "peer FIN: {e:?}");
    assert!(!e.contains(Events::ERR), "peer FIN is not an error: {e:?}");
}

#[test]
fn d19_peer_fin_with_data_buffered_reports_in_and_hangup_at_level() {
    let port = port();
    let (a, b) = tcp_pair();
    write_all(&b, b"tail");
    shutdown_write(&b);
    std::thread::sleep(MS(20));
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::IN | Events::HANGUP), "{e:?}");
    // After reading everything (EOF), the state persists: IN (recv returns 0) and HANGUP.
    assert_eq!(drain_socket(&a), 4);
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::IN | Events::HANGUP), "after EOF: {e:?}");
}

#[test]
fn d19_reset_reports_err_in_and_hangup() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::EDGE_ONESHOT), Ok(()));
    close_with_rst(b);
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::ERR | Events::IN | Events::HANGUP), "reset: {e:?}");
}

#[test]
fn d19_reset_err_stays_latched_after_recv_consumed_the_error() {
    let port = port();
    let (mut a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_PERSISTENT), Ok(()));
    close_with_rst(b);
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::ERR), "{e:?}");
    // recv reports the reset once and clears sk_err; Linux's poll then no longer says ERR.
    let mut buf = [0u8; 8];
    let deadline = Instant::now() + PATIENCE;
    loop {
        match a.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline);
                std::thread::sleep(MS(2));
            }
            other => panic!("expected ECONNRESET, got {other:?}"),
        }
    }
    // Drain whatever the persistent registration queued meanwhile, then look again.
    for round in 0..3 {
        let e = ev(&expect_key(&port, K));
        assert!(e.contains(Events::ERR), "round {round}: ERR not latched after recv consumed the error: {e:?}");
        assert!(e.contains(Events::HANGUP), "round {round}: {e:?}");
    }
    // A new ENABLE re-samples: still ERR.
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let _ = collect(&port, MS(30), 10);
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::ERR), "re-ENABLE after recv consumed the reset: {e:?}");
}

#[test]
fn d19_udp_reports_in_and_out_and_never_hangup_even_with_error() {
    let port = port();
    let (a, b) = udp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    expect_no_key(&port, K, MS(100));
    b.send(b"dgram").unwrap();
    assert_eq!(ev(&expect_key(&port, K)), Events::IN);
    assert_eq!(enable(&port, &a, K, Events::OUT, Trigger::LEVEL_ONESHOT), Ok(()));
    assert!(ev(&expect_key(&port, K)).contains(Events::OUT));
    // ICMP unreachable on a connected UDP socket: an error, still no HANGUP.
    drop(b);
    let _ = a.send(b"x");
    std::thread::sleep(MS(30));
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    let got = collect(&port, MS(100), 8);
    for c in with_key(&got, K) {
        assert!(!ev(&c).contains(Events::HANGUP), "{:?}", ev(&c));
    }
}

#[test]
fn d19_unix_stream_pair_in_out_and_hangup() {
    let port = port();
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    expect_no_key(&port, K, MS(100));
    write_all(&b, b"hi");
    assert_eq!(ev(&expect_key(&port, K)), Events::IN);
    assert_eq!(enable(&port, &a, K, Events::OUT, Trigger::LEVEL_ONESHOT), Ok(()));
    assert_eq!(ev(&expect_key(&port, K)), Events::OUT);
    assert_eq!(drain_socket(&a), 2);
    drop(b);
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::IN | Events::HANGUP), "unix stream peer closed: {e:?}");
}

#[test]
fn d19_unix_datagram_pair_in_out_never_hangup() {
    let port = port();
    let (a, b) = UnixDatagram::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    expect_no_key(&port, K, MS(100));
    b.send(b"d").unwrap();
    assert_eq!(ev(&expect_key(&port, K)), Events::IN);
    assert_eq!(enable(&port, &a, K, Events::OUT, Trigger::LEVEL_ONESHOT), Ok(()));
    assert!(ev(&expect_key(&port, K)).contains(Events::OUT));
    let mut buf = [0u8; 4];
    a.recv(&mut buf).unwrap();
    drop(b);
    assert_eq!(enable(&port, &a, K, Events::FILTER_ALL, Trigger::LEVEL_PERSISTENT), Ok(()));
    let got = collect(&port, MS(50), 10);
    for c in with_key(&got, K) {
        assert!(!ev(&c).contains(Events::HANGUP), "datagram socket reported HANGUP: {:?}", ev(&c));
    }
}

#[test]
fn d19_edge_out_rises_again_after_send_buffer_drains() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::OUT, Trigger::EDGE_PERSISTENT), Ok(()));
    expect_no_key(&port, K, MS(50));
    let sent = fill_send_buffer(&a);
    expect_no_key(&port, K, MS(50));
    read_n(&b, sent);
    assert!(ev(&expect_key(&port, K)).contains(Events::OUT), "OUT did not rise after the send buffer emptied");
}

#[test]
fn d19_unix_listener_reports_in_only() {
    let dir = std::env::temp_dir().join(format!("socknotify-conf-{}-{}", std::process::id(), K));
    let _ = std::fs::remove_file(&dir);
    let l = std::os::unix::net::UnixListener::bind(&dir).unwrap();
    let port = port();
    assert_eq!(enable(&port, &l, K, Events::FILTER_ALL, Trigger::LEVEL_PERSISTENT), Ok(()));
    expect_no_key(&port, K, MS(100)); // no pending connection: nothing (not OUT)
    let _c = UnixStream::connect(&dir).unwrap();
    let c = expect_key(&port, K);
    let _ = std::fs::remove_file(&dir);
    assert_eq!(ev(&c), Events::IN, "unix listener with a pending connection");
}

/// Spec §4.2 EDGE / §5.5 row 2: on Windows a new arrival is no new edge until the receive
/// buffer was emptied (unlike EPOLLET). On TCP socknotify can tell (D18: TCP_INFO counters).
#[test]
fn d18_tcp_edge_new_data_without_a_drain_is_not_a_new_edge() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::EDGE_PERSISTENT), Ok(()));
    write_all(&b, b"12345");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    write_all(&b, b"67890"); // nothing read yet
    expect_no_key(&port, K, MS(150));
    read_n(&a, 3); // partial read, then more data
    write_all(&b, b"abc");
    expect_no_key(&port, K, MS(150));
    assert_eq!(drain_socket(&a), 10);
    write_all(&b, b"z");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN), "no IN after drain + new data");
}

// When one kernel wait reports several TCP edge registrations, their byte counters are read
// at once (socket diagnostics, two system calls for all of them) instead of `FIONREAD` and
// `TCP_INFO` per socket. The edge rule must come out the same: these run with several
// sockets, so that every report below is part of such a batch.

const PAIRS: usize = 6;

fn edge_pairs(port: &socknotify::CompletionPort, events: Events) -> Vec<(std::net::TcpStream, std::net::TcpStream)> {
    (0..PAIRS)
        .map(|i| {
            let (a, b) = tcp_pair();
            assert_eq!(enable(port, &a, K + i, events, Trigger::EDGE_PERSISTENT), Ok(()));
            (a, b)
        })
        .collect()
}

/// Dequeues until every pair's key came once (or `PATIENCE` passed): key → events.
fn one_packet_each(port: &socknotify::CompletionPort) -> Vec<Events> {
    let mut got = vec![Events::NONE; PAIRS];
    let mut seen = 0;
    let deadline = Instant::now() + PATIENCE;
    while seen < PAIRS && Instant::now() < deadline {
        for c in dequeue(port, 64, deadline - Instant::now()) {
            let i = c.key().checked_sub(K).filter(|&i| i < PAIRS).expect("a pair's key");
            assert!(got[i].is_empty(), "pair {i} got a second packet: {:?}", ev(&c));
            got[i] = ev(&c);
            seen += 1;
        }
    }
    assert_eq!(seen, PAIRS, "not every pair got its packet: {got:?}");
    got
}

/// T27 for IN, with the reports read in a batch: data already there at ENABLE gives no edge,
/// and neither does more data or the peer's FIN before a drain (only HANGUP rises).
#[test]
fn edge_does_not_rise_for_data_present_at_enable() {
    let port = port();
    let pairs: Vec<_> = (0..PAIRS)
        .map(|i| {
            let (a, b) = tcp_pair();
            write_all(&b, b"12345");
            std::thread::sleep(MS(2));
            assert_eq!(enable(&port, &a, K + i, Events::IN | Events::HANGUP, Trigger::EDGE_PERSISTENT), Ok(()));
            (a, b)
        })
        .collect();
    expect_empty(&port, QUIET);
    for (_, b) in &pairs {
        write_all(b, b"67890");
    }
    expect_empty(&port, QUIET);
    for (_, b) in &pairs {
        shutdown_write(b);
    }
    for (i, e) in one_packet_each(&port).into_iter().enumerate() {
        assert_eq!(e, Events::HANGUP, "pair {i}: the FIN before a drain re-raised IN");
    }
    expect_empty(&port, QUIET);
}

/// T25 / D18 with the reports read in a batch: new data without a drain, or after a partial
/// read, is no edge; after a drain it is one, exactly once. The second round of edges is
/// decided without a probe per socket: its system calls stay below the two per socket that
/// `FIONREAD` + `TCP_INFO` would cost.
#[test]
fn edge_re_rises_after_drain_without_extra_probe() {
    let port = port();
    let pairs = edge_pairs(&port, Events::IN);
    for (_, b) in &pairs {
        write_all(b, b"12345");
    }
    assert!(one_packet_each(&port).iter().all(|e| e.contains(Events::IN)));
    for (_, b) in &pairs {
        write_all(b, b"67890"); // nothing read yet
    }
    expect_empty(&port, QUIET);
    for (a, b) in &pairs {
        read_n(a, 3); // a partial read, then more data
        write_all(b, b"abc");
    }
    expect_empty(&port, QUIET);
    for (a, _) in &pairs {
        assert_eq!(drain_socket(a), 10);
    }
    for (_, b) in &pairs {
        write_all(b, b"z");
    }
    std::thread::sleep(MS(20));
    let before = socknotify::CompletionPort::thread_syscalls();
    let got = one_packet_each(&port);
    let calls = socknotify::CompletionPort::thread_syscalls() - before;
    assert!(got.iter().all(|e| e.contains(Events::IN)), "no IN after drain + new data: {got:?}");
    assert!(calls < PAIRS as u64, "{calls} system calls to decide {PAIRS} edges: counters read per socket?");
    expect_empty(&port, QUIET); // exactly once
}

/// Spec §4.2 ONESHOT: delivery disables the whole registration, for EDGE too; only ENABLE re-arms.
#[test]
fn edge_oneshot_is_disarmed_by_its_delivery() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::EDGE_ONESHOT), Ok(()));
    write_all(&b, b"12345");
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    assert_eq!(drain_socket(&a), 5);
    write_all(&b, b"new edge");
    expect_no_key(&port, K, MS(150));
    shutdown_write(&b);
    expect_no_key(&port, K, MS(100));
    // Re-ENABLE: new baseline (IN|HANGUP hold now): still nothing until a new edge.
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::EDGE_ONESHOT), Ok(()));
    expect_no_key(&port, K, MS(100));
}

/// The UDP flavour of T25/T29 with a one-shot: delivery disarms, re-ENABLE re-arms.
#[test]
fn udp_edge_oneshot_is_disarmed_by_its_delivery() {
    let port = port();
    let (a, b) = udp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::EDGE_ONESHOT), Ok(()));
    b.send(b"1").unwrap();
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
    b.send(b"2").unwrap();
    expect_no_key(&port, K, MS(150));
}
