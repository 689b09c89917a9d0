//! Conformance suite, part 3 of 5: the registration state machine, REMOVE, closing, keys and
//! ports (spec §4.3, §4.4; §8 T40, T42–T45, T48–T51, T67, T70; decisions D6, D11, D13–D15,
//! D21, D24). The index of all cases and the excluded ids are in `conformance_calls.rs`.

mod common;

use common::*;
use socknotify::winsock::*;
use socknotify::{forget_registration_raw, Completion, CompletionPort, Events, RegistrationError, Trigger};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

const K: usize = 0xBEE;
const K2: usize = 0xCAFE;

fn ev(c: &Completion) -> Events {
    c.events()
}

/// A TCP pair whose first socket has unread data.
fn readable_pair() -> (TcpStream, TcpStream) {
    let (a, b) = tcp_pair();
    write_all(&b, b"data");
    std::thread::sleep(MS(10));
    (a, b)
}

/// Collects packets until quiet and returns those with `key`.
fn all_with_key(port: &CompletionPort, key: usize, quiet: Duration) -> Vec<Completion> {
    with_key(&collect(port, quiet, 256), key)
}

// ------------------------------------------------------------------------------------------
// REMOVE

#[test]
fn t40_remove_is_terminal() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    assert_eq!(remove(&port, &a), Ok(()));
    let (c, others) = wait_key(&port, K, PATIENCE);
    let c = c.unwrap_or_else(|| panic!("no REMOVE packet ({others:?})"));
    assert!(ev(&c).contains(Events::REMOVE), "first packet after REMOVE lacks REMOVE: {:?}", ev(&c));
    write_all(&b, b"after");
    let rest = all_with_key(&port, K, MS(200));
    assert!(rest.is_empty(), "packets after the REMOVE packet: {rest:?}");
}

#[test]
fn t42_disabled_registration_can_be_removed() {
    let port = port();
    let (a, _b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    assert_eq!(disable(&port, &a, K), Ok(()));
    assert_eq!(remove(&port, &a), Ok(()));
    let got = all_with_key(&port, K, MS(150));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(ev(&got[0]).contains(Events::REMOVE));
}

#[test]
fn t43_close_drops_registration_but_queued_packet_is_delivered() {
    let port = port();
    let (a, _b) = readable_pair();
    // LEVEL ENABLE with data present queues the IN packet now.
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    // closesocket: what the C API does (forget, then close).
    let fd = a.into_raw_fd();
    forget_registration_raw(fd);
    // SAFETY: fd came from into_raw_fd above and is closed exactly once here.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    let got = all_with_key(&port, K, MS(200));
    assert_eq!(got.len(), 1, "expected the queued IN packet and nothing else: {got:?}");
    assert!(ev(&got[0]).contains(Events::IN), "{:?}", ev(&got[0]));
    assert!(!ev(&got[0]).contains(Events::REMOVE), "closesocket produced REMOVE: {:?}", ev(&got[0]));
}

#[test]
fn t44_disable_keeps_queued_packet_then_silence() {
    let port = port();
    let (a, b) = readable_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(())); // IN queued
    assert_eq!(disable(&port, &a, K), Ok(()));
    let c = expect_key(&port, K);
    assert!(ev(&c).contains(Events::IN), "{:?}", ev(&c));
    write_all(&b, b"more");
    expect_no_key(&port, K, MS(200));
}

#[test]
fn t45_enable_of_disabled_registration_resamples_level() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    assert_eq!(disable(&port, &a, K), Ok(()));
    write_all(&b, b"data");
    expect_no_key(&port, K, MS(150));
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    assert!(ev(&expect_key(&port, K)).contains(Events::IN));
}

// ------------------------------------------------------------------------------------------
// Keys and ports

#[test]
fn t48_reenable_keeps_the_original_key() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let mut regs = [raw_reg(
        sock(&a),
        K2,
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
    )];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, 0);
    write_all(&b, b"x");
    let got = collect(&port, MS(150), 16);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].key(), K, "re-ENABLE changed the key");
}

#[test]
fn t49_after_remove_a_new_enable_uses_the_new_key() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    remove_and_wait(&port, &a, K);
    assert_eq!(enable(&port, &a, K2, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    write_all(&b, b"x");
    let got = collect(&port, MS(150), 16);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].key(), K2);
    assert!(ev(&got[0]).contains(Events::IN));
}

#[test]
fn t50_a_socket_cannot_be_registered_with_two_ports() {
    let pa = port();
    let pb = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&pa, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let mut regs = [raw_reg(
        sock(&a),
        K2,
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
    )];
    assert_eq!(psn_apply(&pb, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, WSAEINVAL, "D13: ENABLE on a second port");
    assert_eq!(enable_code(&pb, &a, K2, Events::IN, Trigger::LEVEL_ONESHOT), WSAEINVAL);
    write_all(&b, b"x");
    let c = expect_key(&pa, K);
    assert!(ev(&c).contains(Events::IN));
    expect_empty(&pb, MS(150));
}

#[test]
fn t51_after_remove_the_socket_can_join_another_port() {
    let pa = port();
    let pb = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&pa, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    remove_and_wait(&pa, &a, K);
    assert_eq!(enable(&pb, &a, K2, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    write_all(&b, b"x");
    let c = expect_key(&pb, K2);
    assert!(ev(&c).contains(Events::IN));
    expect_empty(&pa, MS(100));
}

#[test]
fn t67_remove_packet_has_remove_bit_and_zero_overlapped_and_internal() {
    let port = port();
    let (a, _b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    let mut regs = [raw_reg(sock(&a), 0, 0, SOCK_NOTIFY_OP_REMOVE, 0)];
    let mut out = sentinel_entries::<2>();
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 1000, Some(&mut out), Some(&mut n)), ERROR_SUCCESS);
    assert_eq!(n, 1);
    let e = out[0];
    assert_eq!(e.lpCompletionKey, K);
    assert_ne!(SocketNotificationRetrieveEvents(&e) & SOCK_NOTIFY_EVENT_REMOVE, 0);
    assert_eq!(e.lpOverlapped, 0);
    assert_eq!(e.Internal, 0);
    assert_eq!(out[1], sentinel_entries::<1>()[0], "an entry beyond the received count was written");
}

#[test]
fn t70_remove_merges_into_the_queued_packet() {
    let port = port();
    let (a, b) = readable_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(())); // IN queued
    assert_eq!(remove(&port, &a), Ok(()));
    let got = all_with_key(&port, K, MS(150));
    assert_eq!(got.len(), 1, "expected one packet carrying REMOVE (IN may be merged in): {got:?}");
    assert!(ev(&got[0]).contains(Events::REMOVE));
    write_all(&b, b"more");
    assert!(all_with_key(&port, K, MS(150)).is_empty());
}

// ------------------------------------------------------------------------------------------
// D6: closing a port

#[test]
fn d6_closing_a_port_drops_its_registrations_silently() {
    let pa = port();
    let pb = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&pa, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    pa.close();
    assert_eq!(remove(&pb, &a), Err(RegistrationError::NotFound), "registration survived its port's close");
    assert_eq!(
        enable(&pb, &a, K2, Events::IN, Trigger::LEVEL_PERSISTENT),
        Ok(()),
        "socket of a closed port could not join another port"
    );
    write_all(&b, b"x");
    let got = collect(&pb, MS(100), 4);
    assert!(!got.is_empty(), "nothing delivered on the new port");
    for c in &got {
        assert_eq!(c.key(), K2, "{got:?}");
        assert!(!ev(c).contains(Events::REMOVE));
    }
}

#[test]
fn d6_closed_port_rejects_every_call_and_discards_queued_packets() {
    let port = port();
    let (a, _b) = readable_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    port.post(Completion::new(1, 2, 3)).unwrap();
    let clone = port.clone();
    port.close();
    assert!(clone.is_closed(), "clones are the same port");
    let mut out = sentinel_entries::<4>();
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&clone, None, 0, Some(&mut out), Some(&mut n)), ERROR_INVALID_HANDLE);
    assert_eq!(n, SENTINEL);
    let mut regs = [raw_reg(sock(&a), 0, 0, SOCK_NOTIFY_OP_REMOVE, 0)];
    assert_eq!(psn_apply(&clone, &mut regs), ERROR_INVALID_HANDLE);
    assert_eq!(regs[0].registrationResult, SENTINEL);
}

// ------------------------------------------------------------------------------------------
// D11, D13, D14, D15

#[test]
fn d11_disable_creates_a_disabled_registration_with_its_key() {
    let port = port();
    let (a, _b) = readable_pair();
    assert_eq!(disable(&port, &a, K), Ok(()));
    expect_no_key(&port, K, MS(150)); // disabled: nothing although readable
                                      // It exists: a second port cannot take the socket, and ENABLE (any key) turns it on with K.
    assert_eq!(enable_code(&self::port(), &a, K2, Events::IN, Trigger::LEVEL_ONESHOT), WSAEINVAL, "D13");
    assert_eq!(enable(&port, &a, K2, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let got = collect(&port, MS(100), 8);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].key(), K, "the key of the DISABLE that created the registration must stay");
    assert!(ev(&got[0]).contains(Events::IN));
}

#[test]
fn d11_disable_created_registration_can_be_removed() {
    let port = port();
    let (a, _b) = tcp_pair();
    assert_eq!(disable(&port, &a, K), Ok(()));
    assert_eq!(remove(&port, &a), Ok(()), "DISABLE did not create a registration");
    let got = all_with_key(&port, K, MS(100));
    assert_eq!(got.len(), 1);
    assert!(ev(&got[0]).contains(Events::REMOVE));
}

#[test]
fn d13_other_port_operations_fail_and_leave_the_first_registration_untouched() {
    let pa = port();
    let pb = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&pa, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    let mut regs = [
        raw_reg(
            sock(&a),
            K2,
            SOCK_NOTIFY_REGISTER_EVENT_OUT,
            SOCK_NOTIFY_OP_ENABLE,
            SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT,
        ),
        raw_reg(sock(&a), K2, 0, SOCK_NOTIFY_OP_DISABLE, 0),
        raw_reg(sock(&a), K2, 0, SOCK_NOTIFY_OP_REMOVE, 0),
    ];
    assert_eq!(psn_apply(&pb, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, WSAEINVAL, "ENABLE on another port");
    assert_eq!(regs[1].registrationResult, WSAEINVAL, "DISABLE on another port");
    assert_eq!(regs[2].registrationResult, WSAEINVAL, "REMOVE on another port (check order: other port → WSAEINVAL)");
    assert_eq!(apply_code(&pb, socknotify::Registration::disable(&a, K2)), WSAEINVAL);
    expect_empty(&pb, MS(100));
    expect_empty(&pa, MS(50)); // still IN-only, not disabled, not removed: nothing yet
    write_all(&b, b"x");
    let c = expect_key(&pa, K);
    assert_eq!(ev(&c), Events::IN, "filter changed by the other port's ENABLE");
    assert!(ev(&expect_key(&pa, K)).contains(Events::IN), "no longer persistent");
    remove_and_wait(&pa, &a, K);
    expect_empty(&pb, MS(50));
}

#[test]
fn d14_operations_while_remove_is_pending_fail_and_remove_is_delivered_once() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    assert_eq!(remove(&port, &a), Ok(()));
    let mut regs = [
        raw_reg(
            sock(&a),
            K2,
            SOCK_NOTIFY_REGISTER_EVENT_IN,
            SOCK_NOTIFY_OP_ENABLE,
            SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT,
        ),
        raw_reg(sock(&a), K2, 0, SOCK_NOTIFY_OP_DISABLE, 0),
        raw_reg(sock(&a), K2, 0, SOCK_NOTIFY_OP_REMOVE, 0),
    ];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    for (i, r) in regs.iter().enumerate() {
        assert_eq!(r.registrationResult, WSAEALREADY, "entry {i} while REMOVE is pending");
    }
    assert_eq!(remove(&port, &a), Err(RegistrationError::RemovePending));
    // Another port cannot take it either while the REMOVE is pending.
    let pb = self::port();
    assert!(
        enable(&pb, &a, K2, Events::IN, Trigger::LEVEL_ONESHOT).is_err(),
        "socket joined another port while its REMOVE was pending"
    );
    write_all(&b, b"x");
    let got = collect(&port, MS(150), 16);
    assert_eq!(got.len(), 1, "expected exactly one packet (the REMOVE): {got:?}");
    assert_eq!(got[0].key(), K);
    assert!(ev(&got[0]).contains(Events::REMOVE));
    // After the REMOVE packet: a fresh registration with a new key works.
    assert_eq!(enable(&port, &a, K2, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let c = expect_key(&port, K2);
    assert!(ev(&c).contains(Events::IN));
}

#[test]
fn d15_reenable_keeps_key_and_replaces_filter_and_trigger() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    assert_eq!(enable(&port, &a, K2, Events::OUT, Trigger::LEVEL_PERSISTENT), Ok(()));
    write_all(&b, b"x");
    std::thread::sleep(MS(10));
    for round in 0..3 {
        let got = dequeue(&port, 4, PATIENCE);
        assert_eq!(got.len(), 1, "round {round}: {got:?}");
        assert_eq!(got[0].key(), K, "round {round}: key changed by re-ENABLE");
        assert_eq!(
            ev(&got[0]),
            Events::OUT,
            "round {round}: filter/trigger not replaced (IN still watched or one-shot kept)"
        );
    }
    // And back to EDGE IN: no packet for the data already there (new trigger, new baseline).
    assert_eq!(enable(&port, &a, K2, Events::IN, Trigger::EDGE_PERSISTENT), Ok(()));
    let _ = collect(&port, MS(20), 8); // a coalesced OUT packet may still be queued
    expect_no_key(&port, K, MS(100));
}

// ------------------------------------------------------------------------------------------
// D21: close and descriptor reuse

#[test]
fn d21_plain_close_drops_registration_without_remove() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_PERSISTENT), Ok(()));
    drop(a);
    let _ = std::io::Write::write(&mut &b, b"into the void");
    let got = all_with_key(&port, K, MS(200));
    assert!(got.is_empty(), "a closed socket produced packets (REMOVE or other): {got:?}");
}

#[test]
fn d21_plain_close_keeps_an_already_queued_packet_without_remove() {
    let port = port_without_the_promise();
    let (a, _b) = readable_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(())); // IN queued
    drop(a);
    let got = all_with_key(&port, K, MS(200));
    assert!(got.len() <= 1, "{got:?}");
    assert_eq!(got.len(), 1, "the packet queued before close was lost");
    assert!(ev(&got[0]).contains(Events::IN));
    assert!(!ev(&got[0]).contains(Events::REMOVE), "close produced REMOVE");
}

/// Replaces the socket behind descriptor `fd` with `new` atomically (dup2), closing the old
/// socket's description: "a new socket reusing the same descriptor number", without any window
/// in which a test running in parallel could take the number.
fn reuse_fd_number(fd: RawFd, new: OwnedFd) -> TcpStream {
    // SAFETY: fd is owned by the caller (taken with into_raw_fd) and `new` is a live descriptor;
    // dup2 closes the old description and makes fd refer to `new`'s.
    let rc = unsafe { libc::dup2(new.as_raw_fd(), fd) };
    assert_eq!(rc, fd, "dup2");
    drop(new);
    // SAFETY: fd now refers to the new socket and nobody else owns it.
    unsafe { TcpStream::from_raw_fd(fd) }
}

#[test]
fn d21_new_socket_on_a_reused_descriptor_never_gets_the_old_key_same_port() {
    let port = port();
    let (old, old_peer) = tcp_pair();
    assert_eq!(enable(&port, &old, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    let fd = old.into_raw_fd();
    let (new, new_peer) = tcp_pair();
    let new = reuse_fd_number(fd, OwnedFd::from(new));
    assert_eq!(new.as_raw_fd(), fd);
    drop(old_peer);
    // The new socket is readable: nothing may come under the old key.
    write_all(&new_peer, b"new");
    expect_no_key(&port, K, MS(150));
    // The old registration is gone: REMOVE finds nothing and produces no packet.
    assert_eq!(
        remove(&port, &new),
        Err(RegistrationError::NotFound),
        "the old registration was applied to the new socket"
    );
    expect_no_key(&port, K, MS(50));
    // Registering the new socket creates a new registration with the new key.
    assert_eq!(enable(&port, &new, K2, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let got = collect(&port, MS(100), 8);
    assert!(with_key(&got, K).is_empty(), "old key delivered for the new socket: {got:?}");
    assert_eq!(with_key(&got, K2).len(), 1, "{got:?}");
}

#[test]
fn d21_new_socket_on_a_reused_descriptor_can_join_another_port() {
    let pa = port();
    let pb = port();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (old, _old_peer) = tcp_pair();
    assert_eq!(enable(&pa, &old, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    let fd = old.as_raw_fd();
    drop(old); // plain close
               // Create sockets until one gets the same number (descriptors are allocated lowest-first).
    let mut spare = Vec::new();
    let mut found = None;
    for _ in 0..64 {
        let s = fresh_tcp();
        match s.as_raw_fd() {
            n if n == fd => {
                found = Some(s);
                break;
            }
            n if n > fd => break, // a test running in parallel took the number
            _ => spare.push(s),
        }
    }
    drop(spare);
    let Some(new) = found else {
        eprintln!(
            "d21 (allocation variant): descriptor {fd} was taken by a parallel test; the dup2 variant covers the case"
        );
        return;
    };
    new.set_nonblocking(false).unwrap();
    new.connect(&listener.local_addr().unwrap().into()).unwrap();
    new.set_nonblocking(true).unwrap();
    let (new_peer, _) = listener.accept().unwrap();
    write_all(&new_peer, b"x");
    assert_eq!(
        enable(&pb, &new, K2, Events::IN, Trigger::LEVEL_ONESHOT),
        Ok(()),
        "a new socket on a reused number was taken for the old socket (still registered with the old port)"
    );
    let c = expect_key(&pb, K2);
    assert!(ev(&c).contains(Events::IN));
    let on_a = collect(&pa, MS(100), 8);
    assert!(with_key(&on_a, K).is_empty(), "old key delivered for the new socket: {on_a:?}");
}

// ------------------------------------------------------------------------------------------
// D24: posted values are never interpreted

#[test]
fn d24_posted_remove_bit_is_returned_unchanged_and_ends_nothing() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    // A posted packet indistinguishable from a notification: same key, REMOVE bit, overlapped 0.
    let fake = Completion::new(K, SOCK_NOTIFY_EVENT_REMOVE | SOCK_NOTIFY_EVENT_IN, 0);
    port.post(fake).unwrap();
    let got = dequeue(&port, 4, PATIENCE);
    assert_eq!(got, vec![fake], "posted packet changed or merged");
    // The registration is still live and not pending removal.
    assert_eq!(enable(&port, &a, K2, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    write_all(&b, b"x");
    let c = expect_key(&port, K);
    assert_eq!(ev(&c) & Events::REMOVE, Events::NONE, "{:?}", ev(&c));
    assert!(ev(&c).contains(Events::IN));
    read_n(&a, 1); // no readiness left: no more notifications
    let _ = collect(&port, MS(20), 16);
    // Posting more odd values, including all bits, changes nothing either.
    for bytes in [u32::MAX, SOCK_NOTIFY_EVENT_REMOVE, 0] {
        let p = Completion::with_internal(K, bytes, usize::MAX, 0xC000_0008);
        port.post(p).unwrap();
        assert_eq!(dequeue(&port, 4, PATIENCE), vec![p]);
    }
    remove_and_wait(&port, &a, K);
}

/// D13 through the safe API: the entry's error is `RegistrationError::OtherPort`, code WSAEINVAL.
#[test]
fn d13_safe_api_reports_other_port() {
    let pa = port();
    let pb = port();
    let (a, _b) = tcp_pair();
    assert_eq!(enable(&pa, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let mut regs = [socknotify::Registration::enable(&a, K2, Events::IN, Trigger::LEVEL_ONESHOT)];
    pb.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    assert_eq!(regs[0].result_code(), WSAEINVAL);
    assert_eq!(RegistrationError::OtherPort.code(), WSAEINVAL);
    assert_eq!(
        regs[0].result(),
        Err(RegistrationError::OtherPort),
        "Registration::result() cannot tell OtherPort from InvalidArgument (both are WSAEINVAL)"
    );
}

#[test]
fn d6_dropping_the_last_handle_of_a_port_releases_its_sockets() {
    let pb = port();
    let (a, b) = tcp_pair();
    {
        let pa = port();
        let clone = pa.clone();
        assert_eq!(enable(&pa, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
        drop(pa);
        assert_eq!(
            enable_code(&pb, &a, K2, Events::IN, Trigger::LEVEL_PERSISTENT),
            WSAEINVAL,
            "a clone still holds the port"
        );
        drop(clone);
    }
    assert_eq!(
        enable(&pb, &a, K2, Events::IN, Trigger::LEVEL_PERSISTENT),
        Ok(()),
        "the socket of a dropped port could not join another port"
    );
    write_all(&b, b"x");
    assert!(ev(&expect_key(&pb, K2)).contains(Events::IN));
}

#[test]
fn d21_reused_descriptor_on_another_port_is_a_new_socket() {
    let pa = port();
    let pb = port();
    let (old, _old_peer) = tcp_pair();
    assert_eq!(enable(&pa, &old, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    let fd = old.into_raw_fd();
    let (new, new_peer) = tcp_pair();
    let new = reuse_fd_number(fd, OwnedFd::from(new));
    write_all(&new_peer, b"x");
    assert_eq!(
        enable(&pb, &new, K2, Events::IN, Trigger::LEVEL_ONESHOT),
        Ok(()),
        "the new socket on a reused descriptor number was refused as if it were the old one"
    );
    let c = expect_key(&pb, K2);
    assert!(ev(&c).contains(Events::IN));
    let on_a = collect(&pa, MS(100), 8);
    assert!(on_a.is_empty(), "the old port delivered something for the new socket: {on_a:?}");
}

#[test]
fn d21_reused_descriptor_while_remove_is_pending_is_a_new_socket() {
    let port = port();
    let (old, _old_peer) = tcp_pair();
    assert_eq!(enable(&port, &old, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    assert_eq!(remove(&port, &old), Ok(())); // REMOVE pending, packet not dequeued
    let fd = old.into_raw_fd();
    let (new, new_peer) = tcp_pair();
    let new = reuse_fd_number(fd, OwnedFd::from(new));
    write_all(&new_peer, b"x");
    assert_eq!(
        enable(&port, &new, K2, Events::IN, Trigger::LEVEL_ONESHOT),
        Ok(()),
        "the new socket was refused (WSAEALREADY) because of the old socket's pending REMOVE"
    );
    let got = collect(&port, MS(100), 16);
    let old_packets = with_key(&got, K);
    assert!(old_packets.len() <= 1, "{got:?}");
    for c in &old_packets {
        assert!(ev(c).contains(Events::REMOVE), "old key delivered a notification: {got:?}");
    }
    let new_packets = with_key(&got, K2);
    assert_eq!(new_packets.len(), 1, "{got:?}");
    assert!(ev(&new_packets[0]).contains(Events::IN));
}

#[test]
fn disabled_registration_queues_nothing_not_even_err() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_PERSISTENT), Ok(()));
    assert_eq!(disable(&port, &a, K), Ok(()));
    write_all(&b, b"x");
    close_with_rst(b);
    expect_no_key(&port, K, MS(150));
    // Re-enable re-samples: the reset shows now.
    assert_eq!(enable(&port, &a, K, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT), Ok(()));
    let e = ev(&expect_key(&port, K));
    assert!(e.contains(Events::ERR), "{e:?}");
}

#[test]
fn failed_call_leaves_an_existing_registration_untouched() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    // V1 failures carrying REMOVE, DISABLE and a changing ENABLE: none may be applied.
    let mut regs = [
        raw_reg(sock(&a), K2, SOCK_NOTIFY_REGISTER_EVENT_OUT, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_TRIGGER_EDGE),
        raw_reg(sock(&a), 0, 0, SOCK_NOTIFY_OP_DISABLE, 0),
        raw_reg(sock(&a), 0, 0, SOCK_NOTIFY_OP_REMOVE, 0),
    ];
    let before = regs;
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 50, None, None), WSAEINVAL);
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut []), Some(&mut n)), WSAEINVAL);
    let mut out = sentinel_entries::<1>();
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut out), None), WSAEFAULT);
    assert_eq!(regs, before);
    assert_eq!(n, SENTINEL);
    expect_empty(&port, MS(100)); // no REMOVE, no OUT
    write_all(&b, b"x");
    for _ in 0..2 {
        let c = expect_key(&port, K);
        assert_eq!(ev(&c), Events::IN, "registration changed by a failed call");
    }
    remove_and_wait(&port, &a, K);
}

/// A new registration is one identity probe (`SO_COOKIE`) and one ADD with its final interest
/// (no ADD-then-MOD, no `SO_TYPE` before the kind matters), plus, for an apply-only call, the
/// collection of a packet its ENABLE may have queued (one `epoll_wait`); its REMOVE is one
/// DEL. Counted on the calling thread, on the default port (under `closes_through_port` a
/// REMOVE of an enabled registration first collects what the kernel noted: one more).
#[test]
fn new_level_registration_and_its_remove_cost_at_most_four_system_calls() {
    let port = port_without_the_promise();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    for trigger in [Trigger::LEVEL_PERSISTENT, Trigger::LEVEL_ONESHOT] {
        let before = CompletionPort::thread_syscalls();
        assert_eq!(enable(&port, &a, K, Events::IN, trigger), Ok(()));
        let used = CompletionPort::thread_syscalls() - before;
        assert!(used <= 3, "{trigger:?}: ENABLE of a new socket made {used} system calls");
        let before = CompletionPort::thread_syscalls();
        assert_eq!(remove(&port, &a), Ok(()));
        let used = CompletionPort::thread_syscalls() - before;
        assert!(used <= 1, "{trigger:?}: REMOVE made {used} system calls");
        let got = dequeue(&port, 4, PATIENCE);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].key(), got[0].events()), (K, Events::REMOVE));
    }
}
