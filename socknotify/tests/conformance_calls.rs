//! Conformance suite, part 1 of 5: the shape of a `ProcessSocketNotifications` call and the
//! per-entry checks (spec §3, §8 T01–T19, T41, T53–T55; decisions D2–D5, D7, D9, D10, D12).
//!
//! The suite is split over five files, each `mod common;`:
//!
//! | file | cases |
//! |---|---|
//! | `conformance_calls.rs` | T01–T10, T12–T19, T41, T53, T54, T55; D2, D4, D5, D7, D9, D10, D12; bad input never panics |
//! | `conformance_readiness.rs` | T11, T20–T39, T69, T71; D8, D16, D17, D18, D19 per socket type |
//! | `conformance_registration.rs` | T40, T42–T45, T48–T51, T67, T70; D6, D11, D13, D14, D15, D21, D24 |
//! | `conformance_port.rs` | T46, T47, T52, T56–T61, T64–T66, T68, T72; D5, D20, D22, D23 |
//! | `conformance_batches.rs` | several entries for one socket in one call (§3.3 step 2, §4.3; D11, D14, D15, D17, D21; issue 8) |
//!
//! Every case of §8 has one `#[test]` named `tNN_what_it_proves`; the edge cases beyond §8 are
//! named `dNN_what_it_proves` after the decision they check.
//!
//! # Cases of §8 that do not apply on Linux
//!
//! * **T62** (GQCSEx alertable, unassociated thread, APC pending → `WAIT_IO_COMPLETION`, APC ran,
//!   packet still queued) and **T63** (associated thread, APC pending → the packet wins, the APC
//!   stays pending): Linux has no APCs and socknotify offers no alertable wait (`dequeue` and
//!   `ProcessSocketNotifications` are non-alertable, spec Q17), so there is nothing to queue an
//!   APC with and nothing that could return `WAIT_IO_COMPLETION`.
//!
//! Cases that apply with an adaptation (documented at each test):
//!
//! * T06 "completionCount = 1 with a NULL entries pointer" cannot be spelt through the Rust
//!   `ProcessSocketNotifications` (a `None` slice has count 0); the test calls the real function
//!   with a NULL `receivedEntryCount` (the other half of rule V3) and checks the NULL-entries
//!   shape with `CallShape::check`, the validation the function runs.
//! * T56/T57 (GQCS vs GQCSEx) both use `CompletionPort::dequeue` (one slot for GQCS, several for
//!   GQCSEx); T72 (GQCS on a notification) is `dequeue` with one slot: `Ok(1)` with overlapped 0.
//! * T43 "closesocket" is `forget_registration_raw(fd)` followed by `close(fd)`, which is what the
//!   C API's `closesocket` does; plain `close()` is covered by the D21 tests.

mod common;

use common::*;
use proptest::prelude::*;
use socknotify::winsock::*;
use socknotify::{Completion, CompletionPort, Error, Events, Operation, Registration, RegistrationError, Trigger};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

const K: usize = 0x1234;
const LEVEL_PERSISTENT: u8 = SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT;
const LEVEL_ONESHOT: u8 = SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT;

/// Posts a marker packet; `assert_marker_still_queued` then proves that a call did not dequeue.
fn post_marker(port: &CompletionPort) {
    port.post(Completion::new(0xFEED, 0x1111, 0x2222)).unwrap();
}

fn assert_marker_still_queued(port: &CompletionPort) {
    let got = dequeue(port, 8, PATIENCE);
    assert_eq!(got, vec![Completion::new(0xFEED, 0x1111, 0x2222)], "the marker packet was consumed or changed");
}

/// A connected TCP pair whose socket `a` has unread data (so any ENABLE IN LEVEL would post).
fn readable_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let (a, b) = tcp_pair();
    write_all(&b, b"data");
    std::thread::sleep(MS(5));
    (a, b)
}

/// Asserts that the whole call failed without touching the entry, and that the socket is not
/// registered (no packet although it is readable; REMOVE finds nothing; another port accepts it).
fn assert_call_changed_nothing(
    port: &CompletionPort,
    reg: &SOCK_NOTIFY_REGISTRATION,
    before: SOCK_NOTIFY_REGISTRATION,
    s: &impl AsFd,
) {
    assert_eq!(*reg, before, "a failed call modified the registration entry (registrationResult must stay untouched)");
    if !port.is_closed() {
        expect_no_key(port, before.completionKey, MS(100));
    }
    let check = if port.is_closed() { self::port() } else { port.clone() };
    assert_unregistered(&check, s);
}

// ------------------------------------------------------------------------------------------
// T01–T07: whole-call rules

#[test]
fn t01_no_registrations_no_output_succeeds_without_effect() {
    let port = port();
    post_marker(&port);
    assert_eq!(ProcessSocketNotifications(&port, None, 0, None, None), ERROR_SUCCESS);
    assert_marker_still_queued(&port);
}

#[test]
fn t02_empty_non_null_registration_array_fails_whole_call() {
    let port = port();
    post_marker(&port);
    // registrationCount 0 with a non-NULL array (V2).
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut []), 0, None, None), WSAEINVAL);
    // Same with a valid output side: the call must fail before dequeuing anything.
    let mut out = sentinel_entries::<2>();
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut []), 0, Some(&mut out), Some(&mut n)), WSAEINVAL);
    assert_eq!(n, SENTINEL, "*receivedEntryCount written by a failed call");
    assert_eq!(out, sentinel_entries::<2>(), "entries written by a failed call");
    assert_marker_still_queued(&port);
}

#[test]
fn t03_timeout_without_output_fails_whole_call_and_registers_nothing() {
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_PERSISTENT)];
    let before = regs[0];
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 100, None, None), WSAEINVAL);
    assert_call_changed_nothing(&port, &regs[0], before, &a);
}

#[test]
fn t04_count_pointer_without_output_fails_whole_call_and_registers_nothing() {
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_PERSISTENT)];
    let before = regs[0];
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, None, Some(&mut n)), WSAEINVAL);
    assert_eq!(n, SENTINEL, "*receivedEntryCount written by a failed call");
    assert_call_changed_nothing(&port, &regs[0], before, &a);
}

#[test]
fn t05_entries_pointer_with_count_zero_fails_whole_call_and_registers_nothing() {
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_PERSISTENT)];
    let before = regs[0];
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut []), None), WSAEINVAL);
    assert_call_changed_nothing(&port, &regs[0], before, &a);
    // With both output pointers non-NULL and count 0: still V1.
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut []), Some(&mut n)), WSAEINVAL);
    assert_eq!(n, SENTINEL);
    assert_call_changed_nothing(&port, &regs[0], before, &a);
}

/// T06 adapted: the Rust signature cannot pass count 1 with a NULL entries pointer, so the real
/// call is made with entries but a NULL `receivedEntryCount` (the other half of V3), and the
/// NULL-entries shape is checked through `CallShape::check`, which the call runs first.
#[test]
fn t06_missing_output_pointer_fails_whole_call_before_registering() {
    let port = port();
    let (a, _b) = readable_pair();
    post_marker(&port);
    let mut regs = [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_PERSISTENT)];
    let before = regs[0];
    let mut out = sentinel_entries::<1>();
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut out), None), WSAEFAULT);
    assert_eq!(out, sentinel_entries::<1>(), "entries written by a failed call");
    assert_marker_still_queued(&port);
    assert_call_changed_nothing(&port, &regs[0], before, &a);

    let shape = CallShape {
        registration_count: 1,
        registrations_null: false,
        completion_count: 1,
        entries_null: true,
        received_null: false,
        timeout_ms: 0,
        arrays_overlap: false,
    };
    assert_eq!(shape.check(), Err(WSAEFAULT), "V3: entries NULL with completionCount 1");
    assert_eq!(CallShape { received_null: true, ..shape }.check(), Err(WSAEFAULT));
    assert_eq!(CallShape { entries_null: false, received_null: true, ..shape }.check(), Err(WSAEFAULT));
    assert_eq!(CallShape { entries_null: false, ..shape }.check(), Ok(()));
    // V4: overlapping arrays.
    assert_eq!(CallShape { entries_null: false, arrays_overlap: true, ..shape }.check(), Err(WSAEINVAL));
}

#[test]
fn t07_closed_port_fails_whole_call_with_invalid_handle_and_registers_nothing() {
    let port = port();
    let (a, _b) = readable_pair();
    port.close();
    assert!(port.is_closed());
    let mut regs = [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_PERSISTENT)];
    let before = regs[0];
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, None, None), ERROR_INVALID_HANDLE);
    assert_eq!(regs[0], before);
    let mut out = sentinel_entries::<1>();
    let mut n = SENTINEL;
    assert_eq!(
        ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut out), Some(&mut n)),
        ERROR_INVALID_HANDLE
    );
    assert_eq!(n, SENTINEL, "*receivedEntryCount written by a failed call");
    assert_call_changed_nothing(&port, &regs[0], before, &a);
    // The safe API says the same.
    let mut safe = [Registration::enable(&a, K, Events::IN, Trigger::LEVEL_PERSISTENT)];
    assert!(matches!(port.process(&mut safe, &mut [], Some(Duration::ZERO)), Err(Error::InvalidHandle)));
    assert_eq!(safe[0].result(), Ok(()), "a failed call wrote a result");
    assert_unregistered(&self::port(), &a);
}

// ------------------------------------------------------------------------------------------
// T08–T19: per-entry checks

/// ENABLE with these raw fields must fail with WSAEINVAL and leave the socket unregistered.
fn assert_invalid_enable(filter: u16, trigger: u8) {
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [raw_reg(sock(&a), K, filter, SOCK_NOTIFY_OP_ENABLE, trigger)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS, "a per-entry problem failed the whole call");
    assert_eq!(
        regs[0].registrationResult, WSAEINVAL,
        "ENABLE filter {filter:#x} trigger {trigger:#x}: expected WSAEINVAL (D7)"
    );
    expect_no_key(&port, K, MS(100));
    assert_unregistered(&port, &a);
}

#[test]
fn t08_enable_with_level_and_edge_is_rejected() {
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_EDGE);
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_ALL);
}

#[test]
fn t09_enable_with_oneshot_only_is_rejected() {
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_ONESHOT);
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_PERSISTENT);
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN, 0);
}

#[test]
fn t10_enable_with_oneshot_and_persistent_is_rejected() {
    assert_invalid_enable(
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_PERSISTENT | SOCK_NOTIFY_TRIGGER_LEVEL,
    );
    assert_invalid_enable(
        SOCK_NOTIFY_REGISTER_EVENT_IN,
        SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_PERSISTENT | SOCK_NOTIFY_TRIGGER_EDGE,
    );
}

#[test]
fn t12_enable_with_filter_bit_outside_in_out_hangup_is_rejected() {
    assert_invalid_enable(0x08, LEVEL_PERSISTENT);
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN | 0x40, LEVEL_PERSISTENT); // ERR is not a filter bit
    assert_invalid_enable(0x80, LEVEL_PERSISTENT); // nor REMOVE
    assert_invalid_enable(0xFFFF, LEVEL_PERSISTENT);
    // The safe API validates the same way.
    let port = port();
    let (a, _b) = readable_pair();
    for bad in [Events::ERR, Events::REMOVE, Events::from_bits(0x08), Events::from_bits(0x1_0001)] {
        assert_eq!(
            enable(&port, &a, K, bad, Trigger::LEVEL_PERSISTENT),
            Err(RegistrationError::InvalidArgument),
            "{bad:?}"
        );
    }
    assert_unregistered(&port, &a);
}

#[test]
fn t13_enable_with_trigger_bit_outside_low_nibble_is_rejected() {
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN, 0x14);
    assert_invalid_enable(SOCK_NOTIFY_REGISTER_EVENT_IN, 0x80 | LEVEL_PERSISTENT);
    let port = port();
    let (a, _b) = readable_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::from_bits(0x14)), Err(RegistrationError::InvalidArgument));
    assert_unregistered(&port, &a);
}

/// An entry with this operation must fail with WSAEINVAL, on an unregistered socket (which stays
/// unregistered) and on a registered one (which keeps working, unchanged).
fn assert_invalid_operation(op: u8) {
    // Unregistered socket.
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, op, LEVEL_PERSISTENT)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, WSAEINVAL, "operation {op:#x}");
    expect_no_key(&port, K, MS(100));
    assert_unregistered(&port, &a);

    // Registered socket (LEVEL|ONESHOT IN, no data yet): still registered, same key, not removed.
    let port = self::port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let mut regs = [raw_reg(sock(&a), K + 1, SOCK_NOTIFY_REGISTER_EVENT_OUT, op, LEVEL_PERSISTENT)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, WSAEINVAL, "operation {op:#x} on a registered socket");
    expect_empty(&port, MS(100)); // no REMOVE, no OUT
    write_all(&b, b"x");
    let c = expect_key(&port, K);
    assert_eq!(c.events() & !Events::ERR, Events::IN, "registration changed by an invalid operation");
    assert_eq!(remove(&port, &a), Ok(()), "registration gone after an invalid operation");
}

#[test]
fn t14_operation_enable_or_remove_combined_is_rejected() {
    assert_invalid_operation(SOCK_NOTIFY_OP_ENABLE | SOCK_NOTIFY_OP_REMOVE);
}

#[test]
fn t15_unknown_operation_values_are_rejected() {
    for op in [3u8, 8, 0xFF] {
        assert_invalid_operation(op);
    }
}

#[test]
fn t16_op_none_succeeds_and_leaves_registration_unchanged() {
    let port = port();
    let (a, b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_ONESHOT), Ok(()));
    let mut regs = [raw_reg(sock(&a), K + 99, 0xFFFF, SOCK_NOTIFY_OP_NONE, 0xFF)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, ERROR_SUCCESS);
    assert_eq!(none_op(&port, &a, K + 98), Ok(()));
    expect_empty(&port, MS(100));
    // Still LEVEL|ONESHOT IN with key K.
    write_all(&b, b"x");
    let c = expect_key(&port, K);
    assert!(c.events().contains(Events::IN));
    write_all(&b, b"y");
    expect_empty(&port, MS(100)); // one-shot: disabled after that delivery
}

#[test]
fn t17_remove_unregistered_fails_without_packet() {
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [raw_reg(sock(&a), K, 0, SOCK_NOTIFY_OP_REMOVE, 0)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, ERROR_NOT_FOUND, "D12: REMOVE of an unregistered socket");
    assert_eq!(remove(&port, &a), Err(RegistrationError::NotFound));
    let (rc, n) = psn_dequeue(&port, &mut sentinel_entries::<4>(), 200);
    assert_eq!((rc, n), (WAIT_TIMEOUT, 0), "REMOVE of an unregistered socket produced a packet");
}

#[test]
fn t18_non_socket_descriptors_are_rejected_with_wsaenotsock() {
    let port = port();
    let (r, w) = pipe();
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let mut values: Vec<SOCKET> = vec![sock(&r), sock(&w), sock(&devnull), INVALID_SOCKET, usize::MAX - 1, 1 << 40];
    values.extend(never_open_fds().into_iter().map(|fd| fd as SOCKET));
    for &s in &values {
        for op in [SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_REMOVE] {
            let mut regs = [raw_reg(s, K, SOCK_NOTIFY_REGISTER_EVENT_IN, op, LEVEL_PERSISTENT)];
            assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS, "socket {s:#x} op {op}");
            assert_eq!(regs[0].registrationResult, WSAENOTSOCK, "socket {s:#x} op {op}");
        }
    }
    // The safe API.
    assert_eq!(enable(&port, &r, K, Events::IN, Trigger::LEVEL_PERSISTENT), Err(RegistrationError::NotASocket));
    assert_eq!(disable(&port, &w, K), Err(RegistrationError::NotASocket));
    assert_eq!(remove(&port, &devnull), Err(RegistrationError::NotASocket));
    // Nothing was registered: writing into the pipe produces no packet.
    std::io::Write::write_all(&mut std::fs::File::from(w), b"x").unwrap();
    expect_empty(&port, MS(100));
}

#[test]
fn t19_entries_are_independent_bad_entry_does_not_stop_others() {
    let port = port();
    let (a1, _b1) = readable_pair();
    let (a2, _b2) = readable_pair();
    let (a3, _b3) = readable_pair();
    let mut regs = [
        raw_reg(sock(&a1), 1, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_ONESHOT),
        raw_reg(
            sock(&a2),
            2,
            SOCK_NOTIFY_REGISTER_EVENT_IN,
            SOCK_NOTIFY_OP_ENABLE,
            SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_EDGE,
        ),
        raw_reg(sock(&a3), 3, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_ONESHOT),
    ];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, 0);
    assert_ne!(regs[1].registrationResult, 0);
    assert_eq!(regs[1].registrationResult, WSAEINVAL);
    assert_eq!(regs[2].registrationResult, 0);
    let got = collect(&port, MS(150), 16);
    let mut keys: Vec<usize> = got.iter().map(|c| c.key()).collect();
    keys.sort();
    assert_eq!(keys, vec![1, 3], "entries 1 and 3 effective, entry 2 not: {got:?}");
    assert_unregistered(&port, &a2);
}

// ------------------------------------------------------------------------------------------
// T41, T53–T55: registrations and dequeue in one call

#[test]
fn t41_remove_and_wait_in_one_call_returns_the_remove_packet() {
    let port = port();
    let (a, _b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    let mut regs = [raw_reg(sock(&a), 0, 0, SOCK_NOTIFY_OP_REMOVE, 0)];
    let mut out = sentinel_entries::<4>();
    let mut n = SENTINEL;
    let t = Instant::now();
    let rc = ProcessSocketNotifications(&port, Some(&mut regs), 1000, Some(&mut out), Some(&mut n));
    let took = t.elapsed();
    assert_eq!(rc, ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, ERROR_SUCCESS);
    assert_eq!(n, 1);
    assert_eq!(out[0].lpCompletionKey, K);
    assert_ne!(SocketNotificationRetrieveEvents(&out[0]) & SOCK_NOTIFY_EVENT_REMOVE, 0);
    assert!(took < MS(900), "the REMOVE packet was not dequeued by the same call at once ({took:?})");
}

#[test]
fn t53_dequeue_count_limits_entries_and_the_rest_stays_queued() {
    let port = port();
    for k in 1..=5 {
        port.post(Completion::new(k, k as u32 * 10, k * 100)).unwrap();
    }
    let mut out = sentinel_entries::<2>();
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&port, None, 0, Some(&mut out), Some(&mut n)), ERROR_SUCCESS);
    assert_eq!(n, 2);
    assert_eq!((out[0].lpCompletionKey, out[1].lpCompletionKey), (1, 2));
    let rest = collect(&port, MS(50), 16);
    assert_eq!(rest.iter().map(|c| c.key()).collect::<Vec<_>>(), vec![3, 4, 5]);
}

#[test]
fn t54_empty_port_times_out_after_the_full_timeout_with_count_zero() {
    let port = port();
    let mut out = sentinel_entries::<1>();
    let mut n = SENTINEL;
    let t = Instant::now();
    let rc = ProcessSocketNotifications(&port, None, 100, Some(&mut out), Some(&mut n));
    let took = t.elapsed();
    assert_eq!(rc, WAIT_TIMEOUT);
    assert_eq!(n, 0, "D2: *receivedEntryCount = 0 on timeout");
    assert_between(took, MS(100), Duration::from_secs(2), "PSN timeout 100 ms");
}

#[test]
fn t55_registrations_are_applied_before_the_dequeue_of_the_same_call() {
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_ONESHOT)];
    let mut out = sentinel_entries::<4>();
    let mut n = SENTINEL;
    assert_eq!(ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut out), Some(&mut n)), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, 0);
    assert_eq!(n, 1);
    assert_eq!(out[0].lpCompletionKey, K);
    assert_ne!(out[0].dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN, 0);
}

// ------------------------------------------------------------------------------------------
// Decisions about calls

#[test]
fn d4_timeout_with_no_output_is_invalid_even_without_registrations() {
    let port = port();
    post_marker(&port);
    assert_eq!(ProcessSocketNotifications(&port, None, 100, None, None), WSAEINVAL);
    assert_eq!(ProcessSocketNotifications(&port, None, INFINITE, None, None), WSAEINVAL);
    assert_marker_still_queued(&port);
}

#[test]
fn d4_safe_api_rejects_a_wait_with_nowhere_to_put_packets() {
    let port = port();
    let (a, _b) = readable_pair();
    for timeout in [Some(MS(100)), None] {
        let mut regs = [Registration::enable(&a, K, Events::IN, Trigger::LEVEL_PERSISTENT)];
        let r = port.process(&mut regs, &mut [], timeout);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "timeout {timeout:?}: got {r:?}");
        assert_eq!(r.unwrap_err().code(), WSAEINVAL);
        assert_eq!(regs[0].result(), Ok(()), "a failed call wrote a result");
    }
    assert_unregistered(&port, &a);
}

#[test]
fn d4_registrations_only_call_succeeds_whatever_the_entries_say() {
    let port = port();
    let (a, _b) = tcp_pair();
    let (r, _w) = pipe();
    let mut regs = [
        raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, 9, 0),
        raw_reg(sock(&r), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_PERSISTENT),
        raw_reg(sock(&a), K, 0, SOCK_NOTIFY_OP_REMOVE, 0),
    ];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(
        [regs[0].registrationResult, regs[1].registrationResult, regs[2].registrationResult],
        [WSAEINVAL, WSAENOTSOCK, ERROR_NOT_FOUND]
    );
}

#[test]
fn d5_safe_dequeue_never_returns_before_its_timeout() {
    let port = port();
    for ms in [1u64, 30, 120] {
        let t = Instant::now();
        assert_eq!(port.dequeue(&mut [Completion::default(); 2], Some(MS(ms))).unwrap(), 0);
        assert_between(t.elapsed(), MS(ms), MS(ms) + Duration::from_secs(2), "dequeue timeout");
    }
    let t = Instant::now();
    assert_eq!(port.dequeue(&mut [Completion::default(); 2], Some(Duration::ZERO)).unwrap(), 0);
    assert!(t.elapsed() < Duration::from_secs(1), "a zero timeout waited");
}

#[test]
fn d7_neither_oneshot_nor_persistent_means_persistent_for_edge_too() {
    let port = port();
    let (a, b) = tcp_pair();
    let mut regs =
        [raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_TRIGGER_EDGE)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, 0);
    write_all(&b, b"abc");
    assert!(expect_key(&port, K).events().contains(Events::IN));
    read_n(&a, 3); // drained: IN fell
    write_all(&b, b"def");
    assert!(expect_key(&port, K).events().contains(Events::IN), "EDGE without a persistence bit behaved as one-shot");
}

#[test]
fn d9_op_none_succeeds_whatever_the_other_fields_hold() {
    let port = port();
    let (r, _w) = pipe();
    let mut regs = [
        raw_reg(INVALID_SOCKET, usize::MAX, 0xFFFF, SOCK_NOTIFY_OP_NONE, 0xFF),
        raw_reg(sock(&r), 0, 0xFFFF, SOCK_NOTIFY_OP_NONE, 0xFF),
        raw_reg(never_open_fds()[0] as SOCKET, 0, 0, SOCK_NOTIFY_OP_NONE, 0),
    ];
    let copy = regs;
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    for (i, (after, before)) in regs.iter().zip(copy.iter()).enumerate() {
        assert_eq!(after.registrationResult, 0, "entry {i}");
        // D-spec §1.2: only registrationResult is written.
        assert_eq!(
            SOCK_NOTIFY_REGISTRATION { registrationResult: SENTINEL, ..*after },
            *before,
            "entry {i}: input fields modified"
        );
    }
    expect_empty(&port, MS(50));
}

#[test]
fn d10_operation_check_comes_before_the_socket_check() {
    // Check order (decisions.md): operation valid → NONE stops → open socket → filter/trigger.
    let port = port();
    let (r, _w) = pipe();
    let mut regs = [
        raw_reg(sock(&r), K, SOCK_NOTIFY_REGISTER_EVENT_IN, 5, LEVEL_PERSISTENT),
        raw_reg(INVALID_SOCKET, K, 0xFFFF, SOCK_NOTIFY_OP_ENABLE, 0xFF),
        raw_reg(sock(&r), K, 0, SOCK_NOTIFY_OP_REMOVE, 0),
    ];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, WSAEINVAL, "invalid operation on a pipe");
    assert_eq!(regs[1].registrationResult, WSAENOTSOCK, "invalid flags on a non-socket: the socket check comes first");
    assert_eq!(regs[2].registrationResult, WSAENOTSOCK, "REMOVE on a pipe: WSAENOTSOCK, not ERROR_NOT_FOUND");
}

#[test]
fn d12_remove_twice_second_is_not_found_after_remove_packet() {
    let port = port();
    let (a, _b) = tcp_pair();
    assert_eq!(enable(&port, &a, K, Events::IN, Trigger::LEVEL_PERSISTENT), Ok(()));
    remove_and_wait(&port, &a, K);
    let mut regs = [raw_reg(sock(&a), K, 0, SOCK_NOTIFY_OP_REMOVE, 0)];
    assert_eq!(psn_apply(&port, &mut regs), ERROR_SUCCESS);
    assert_eq!(regs[0].registrationResult, ERROR_NOT_FOUND);
    expect_empty(&port, MS(100));
}

#[test]
fn registration_entry_input_fields_are_never_written() {
    let port = port();
    let (a, _b) = readable_pair();
    let mut regs = [
        raw_reg(sock(&a), K, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE, LEVEL_ONESHOT),
        raw_reg(sock(&a), K + 1, 0x1234, SOCK_NOTIFY_OP_DISABLE, 0x56),
        raw_reg(sock(&a), K + 2, 0x77, SOCK_NOTIFY_OP_REMOVE, 0x99),
    ];
    let copy = regs;
    let mut out = sentinel_entries::<4>();
    let mut n = SENTINEL;
    let rc = ProcessSocketNotifications(&port, Some(&mut regs), 1000, Some(&mut out), Some(&mut n));
    assert_eq!(rc, ERROR_SUCCESS);
    for (i, (after, before)) in regs.iter().zip(copy.iter()).enumerate() {
        assert_eq!(after.registrationResult, 0, "entry {i}");
        assert_eq!(
            SOCK_NOTIFY_REGISTRATION { registrationResult: SENTINEL, ..*after },
            *before,
            "entry {i}: input fields modified"
        );
    }
    // DISABLE and REMOVE ignore filter/trigger (E9); the REMOVE packet carries the creation key K.
    assert!(n >= 1);
    let all: Vec<OVERLAPPED_ENTRY> = out[..n as usize].to_vec();
    assert!(all.iter().all(|e| e.lpCompletionKey == K), "{all:?}");
    assert!(
        all.iter().any(|e| e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_REMOVE != 0) || {
            let more = collect(&port, MS(200), 8);
            more.iter().any(|c| c.key() == K && c.events().contains(Events::REMOVE))
        }
    );
}

// ------------------------------------------------------------------------------------------
// Bad input never panics, and every entry gets the result the decisions prescribe.

#[derive(Clone, Copy, Debug)]
enum SockChoice {
    Tcp,
    Udp,
    Pipe,
    NeverOpen,
    Invalid,
    Huge(u64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    Unregistered,
    Registered,
    RemovePending,
}

fn sock_choice() -> impl Strategy<Value = SockChoice> {
    prop_oneof![
        3 => Just(SockChoice::Tcp),
        3 => Just(SockChoice::Udp),
        1 => Just(SockChoice::Pipe),
        1 => Just(SockChoice::NeverOpen),
        1 => Just(SockChoice::Invalid),
        1 => (1u64 << 31..u64::MAX).prop_map(SockChoice::Huge),
    ]
}

fn op_choice() -> impl Strategy<Value = u8> {
    prop_oneof![4 => prop_oneof![Just(0u8), Just(1), Just(2), Just(4)], 1 => any::<u8>()]
}

fn filter_choice() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 0u16..8, 1 => any::<u16>()]
}

fn trigger_choice() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0u8..16, 1 => any::<u8>()]
}

fn valid_enable(filter: u16, trigger: u8) -> bool {
    filter & !0x7 == 0 && trigger & !0xF == 0 && ((trigger & 0x4 != 0) != (trigger & 0x8 != 0)) && trigger & 0x3 != 0x3
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random call shapes and entries (sockets restricted to this test's own descriptors and
    /// numbers that cannot be open, so parallel tests are never touched): never a panic, the
    /// whole-call code follows D4, a failed call writes nothing, and every per-entry result
    /// follows the check order and the state rules of decisions.md.
    #[test]
    fn bad_input_never_panics_and_results_follow_the_decisions(
        entries in proptest::collection::vec((sock_choice(), any::<usize>(), filter_choice(), op_choice(), trigger_choice()), 0..7),
        regs_null in any::<bool>(),
        out_mode in 0u8..3,
        out_len in 1usize..4,
        recv_null in any::<bool>(),
        timeout in prop_oneof![Just(0u32), Just(1u32)],
    ) {
        let port = port();
        let (tcp, _tcp_peer) = tcp_pair();
        let (udp, _udp_peer) = udp_pair();
        let (pipe_r, _pipe_w) = pipe();
        let never = never_open_fds()[0];
        let mut raw: Vec<SOCK_NOTIFY_REGISTRATION> = entries.iter().map(|&(s, key, filter, op, trigger)| {
            let socket = match s {
                SockChoice::Tcp => sock(&tcp),
                SockChoice::Udp => sock(&udp),
                SockChoice::Pipe => sock(&pipe_r),
                SockChoice::NeverOpen => never as SOCKET,
                SockChoice::Invalid => INVALID_SOCKET,
                SockChoice::Huge(v) => v as SOCKET,
            };
            raw_reg(socket, key, filter, op, trigger)
        }).collect();
        let before = raw.clone();
        let regs_arg: Option<&mut [SOCK_NOTIFY_REGISTRATION]> =
            if raw.is_empty() && regs_null { None } else { Some(&mut raw[..]) };
        let regs_count = regs_arg.as_ref().map_or(0, |r| r.len());
        let regs_is_null = regs_arg.is_none();
        let mut out = vec![OVERLAPPED_ENTRY { lpCompletionKey: 0xDEAD, ..Default::default() }; out_len];
        let out_arg: Option<&mut [OVERLAPPED_ENTRY]> = match out_mode {
            0 => None,
            1 => Some(&mut out[..0]),
            _ => Some(&mut out[..]),
        };
        let c = out_arg.as_ref().map_or(0, |o| o.len());
        let out_is_null = out_arg.is_none();
        let mut n = SENTINEL;
        let recv_arg = if recv_null { None } else { Some(&mut n) };

        let rc = ProcessSocketNotifications(&port, regs_arg, timeout, out_arg, recv_arg);

        // Expected whole-call code (D4): V1, V2, V3 in that order.
        let v1 = c == 0 && (!out_is_null || !recv_null || timeout != 0);
        let v2 = (regs_count == 0) != regs_is_null;
        let expected_call = if v1 || v2 {
            Some(WSAEINVAL)
        } else if c > 0 && recv_null {
            Some(WSAEFAULT)
        } else {
            None
        };
        if let Some(code) = expected_call {
            prop_assert_eq!(rc, code);
            prop_assert_eq!(&raw, &before, "a failed call wrote registration entries");
            prop_assert_eq!(n, SENTINEL, "a failed call wrote *receivedEntryCount");
        } else {
            if c > 0 {
                prop_assert!(rc == ERROR_SUCCESS || rc == WAIT_TIMEOUT, "rc {}", rc);
                if rc == WAIT_TIMEOUT { prop_assert_eq!(n, 0); } else { prop_assert!(n >= 1 && n as usize <= c); }
            } else {
                prop_assert_eq!(rc, ERROR_SUCCESS);
                prop_assert_eq!(n, SENTINEL);
            }
            // Per-entry results against a model of the two sockets' registrations.
            let mut tcp_m = Model::Unregistered;
            let mut udp_m = Model::Unregistered;
            for (i, (e, &(s, ..))) in raw.iter().zip(entries.iter()).enumerate() {
                prop_assert_eq!(SOCK_NOTIFY_REGISTRATION { registrationResult: SENTINEL, ..*e }, before[i], "entry {} input modified", i);
                let op = e.operation;
                let expected = if !matches!(op, 0 | 1 | 2 | 4) {
                    WSAEINVAL
                } else if op == 0 {
                    0
                } else {
                    let m = match s {
                        SockChoice::Tcp => &mut tcp_m,
                        SockChoice::Udp => &mut udp_m,
                        _ => { prop_assert_eq!(e.registrationResult, WSAENOTSOCK, "entry {}", i); continue; }
                    };
                    if op == 1 && !valid_enable(e.eventFilter, e.triggerFlags) {
                        WSAEINVAL
                    } else if *m == Model::RemovePending {
                        WSAEALREADY
                    } else if op == 4 {
                        if *m == Model::Unregistered { ERROR_NOT_FOUND } else { *m = Model::RemovePending; 0 }
                    } else {
                        *m = Model::Registered;
                        0
                    }
                };
                prop_assert_eq!(e.registrationResult, expected, "entry {} {:?}", i, e);
            }
        }
        port.close();
    }

    /// The safe API with arbitrary filter and trigger bits: never a panic, and the result is
    /// Ok exactly for valid ENABLEs (D7).
    #[test]
    fn safe_api_arbitrary_bits_never_panic(filter in any::<u32>(), trigger in any::<u8>(), key in any::<usize>()) {
        let port = port();
        let (a, _b) = tcp_pair();
        let r = enable(&port, &a, key, Events::from_bits(filter), Trigger::from_bits(trigger));
        let valid = filter <= 0xFFFF && valid_enable(filter as u16, trigger);
        prop_assert_eq!(r.is_ok(), valid, "filter {:#x} trigger {:#x}: {:?}", filter, trigger, r);
        if !valid { prop_assert_eq!(r, Err(RegistrationError::InvalidArgument)); }
        prop_assert_eq!(Trigger::from_bits(trigger).is_valid(), trigger & !0xF == 0 && valid_enable(0, trigger));
        port.close();
    }
}

#[test]
fn odd_but_legal_calls_do_not_panic_or_hang() {
    let port = port();
    let (a, _b) = tcp_pair();
    // Empty output slice with zero timeout on the safe API: nothing to do.
    assert_eq!(port.process(&mut [], &mut [], Some(Duration::ZERO)).unwrap(), 0);
    // Empty output slice in dequeue: must return (any result), never hang or panic.
    let p = port.clone();
    let r = run_bounded(Duration::from_secs(3), move || p.dequeue(&mut [], Some(MS(10))).map_err(|e| e.code()));
    assert!(r.is_some(), "dequeue with an empty output slice hung");
    // A huge completion key and every valid trigger.
    for t in [
        Trigger::LEVEL,
        Trigger::EDGE,
        Trigger::LEVEL_ONESHOT,
        Trigger::LEVEL_PERSISTENT,
        Trigger::EDGE_ONESHOT,
        Trigger::EDGE_PERSISTENT,
    ] {
        assert_eq!(enable(&port, &a, usize::MAX, Events::FILTER_ALL, t), Ok(()), "{t:?}");
    }
    // Operation::Enable with an empty filter (D8) is valid.
    assert_eq!(
        apply(&port, Registration::new(&a, 1, Operation::Enable { events: Events::NONE, trigger: Trigger::LEVEL })),
        Ok(())
    );
    let _ = a.as_raw_fd();
    port.close();
    // Calls on a closed port.
    assert!(matches!(port.dequeue(&mut [Completion::default()], Some(Duration::ZERO)), Err(Error::InvalidHandle)));
    assert!(matches!(port.post(Completion::new(1, 2, 3)), Err(Error::InvalidHandle)));
    port.close(); // closing twice is harmless
    assert!(port.is_closed());
}
