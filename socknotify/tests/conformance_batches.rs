//! Conformance suite, part 5 of 5: several entries for the same socket in one call (issue 8).
//!
//! Windows applies a call's entries one at a time, in array order, and whatever an entry
//! queues (an ENABLE's level packet, a REMOVE packet) is queued before the next entry runs
//! (spec §3.3 step 2); the state table of §4.3 applies to each entry in turn. So a batch
//! `[e1, e2]` behaves like the call `[e1]` followed by the call `[e2]`. Each test here states
//! what Windows' rules give for one order of entries and checks it
//!
//! * for every starting state of the socket's registration ([`Pre`]: none, disabled, a fired
//!   one-shot, enabled with nothing to report), and
//! * for every way of sending the entries ([`Shape`]: one call that only applies them, one
//!   call that applies them and then waits for packets, one call per entry).
//!
//! All mismatches of a test are listed together in its failure message.
//!
//! The first tests are the two reproductions of issue 8: a descriptor number that was closed
//! with plain `close()` and now names another socket, named twice in one waiting call (D15,
//! D21), and `[ENABLE LEVEL, DISABLE]` on a socket whose condition holds (§3.3, §4.3).

mod common;

use common::*;
use socknotify::winsock::*;
use socknotify::{CompletionPort, Events, Operation, Registration, Trigger};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Key of a registration created before the call under test.
const K0: usize = 0x100;
/// Key of entry `i` of the call under test: `K1 + i`.
const K1: usize = 0x101;
const K2: usize = 0x102;

const IN: Events = Events::IN;
const OUT: Events = Events::OUT;
const REMOVE: Events = Events::REMOVE;
const LP: Trigger = Trigger::LEVEL_PERSISTENT;
const LO: Trigger = Trigger::LEVEL_ONESHOT;
const EP: Trigger = Trigger::EDGE_PERSISTENT;

// ------------------------------------------------------------------------------------------
// Issue 8, bug 1: a reused descriptor number named twice in one waiting call

/// A non-blocking Unix stream pair.
fn unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Registers `s` with key 1 (OUT, LEVEL|ONESHOT) and dequeues its OUT packet in the same
/// call, as the program does: the registration is then disabled by the delivery, so
/// the next ENABLE of the number is a plain re-arm.
fn register_and_fire(port: &CompletionPort, s: &impl AsFd) {
    let mut regs = [Registration::enable(s, 1, OUT, LO)];
    let (res, got) = process_batch(port, &mut regs, 4, PATIENCE);
    assert_eq!(res, [ERROR_SUCCESS]);
    assert_eq!(summary(&got), [(1, OUT)]);
}

/// Issue 8's first program: the number of a registered, fired socket is closed and taken by
/// a new socket, and one waiting call carries `[ENABLE key 2, ENABLE key 3]` for it. The
/// first entry creates the new socket's registration with key 2 (the old one died with the
/// close, D21); the second is a re-ENABLE, which keeps the key (D15).
#[test]
fn reused_number_in_one_batch_keeps_first_key() {
    let port = port_without_the_promise();
    let (a0, _a1) = unix_pair();
    let (b0, _b1) = unix_pair();
    register_and_fire(&port, &a0);
    let num = reuse_number(a0, b0);
    let mut regs = [Registration::enable(&num, 2, OUT, LO), Registration::enable(&num, 3, OUT, LO)];
    let (res, got) = process_batch(&port, &mut regs, 4, MS(100));
    assert_eq!(res, [ERROR_SUCCESS, ERROR_SUCCESS]);
    assert_eq!(summary(&got), [(2, OUT)], "the new socket's packet must carry the first entry's key");
    // The registration that exists is key 2's: its REMOVE packet says so.
    remove_and_wait(&port, &num, 2);
    let rest = collect(&port, QUIET, 16);
    assert!(rest.is_empty(), "packets after the REMOVE packet: {rest:?}");
}

/// The variant: `[DISABLE key 2, ENABLE key 3]` on the reused number. DISABLE of an
/// unregistered socket creates a disabled registration with its key (D11), and the ENABLE
/// turns it on and keeps that key (D15).
#[test]
fn reused_number_disable_then_enable_in_one_batch_keeps_disable_key() {
    let port = port_without_the_promise();
    let (a0, _a1) = unix_pair();
    let (b0, _b1) = unix_pair();
    register_and_fire(&port, &a0);
    let num = reuse_number(a0, b0);
    let mut regs = [Registration::disable(&num, 2), Registration::enable(&num, 3, OUT, LO)];
    let (res, got) = process_batch(&port, &mut regs, 4, MS(100));
    assert_eq!(res, [ERROR_SUCCESS, ERROR_SUCCESS]);
    assert_eq!(summary(&got), [(2, OUT)]);
    remove_and_wait(&port, &num, 2);
}

/// The same on TCP, the new socket at the number being of another type (UDP): the number's
/// new registration is made for what the number names now (key 2, UDP's readiness: always
/// writable), whatever the call shape.
#[test]
fn reused_number_by_another_socket_type_keeps_first_key_in_every_call_shape() {
    for shape in SHAPES {
        let port = port_without_the_promise();
        let (a, _peer) = tcp_pair();
        register_and_fire(&port, &a);
        let num = reuse_number(a, fresh_udp());
        let regs = vec![Registration::enable(&num, 2, OUT, LO), Registration::enable(&num, 3, IN | OUT, LO)];
        let (res, rounds) = send(&port, regs, shape);
        assert_eq!(res, [ERROR_SUCCESS, ERROR_SUCCESS], "{shape:?}");
        assert_eq!(rounds, [vec![(2, OUT)], vec![]], "{shape:?}");
        remove_and_wait(&port, &num, 2);
    }
}

/// A packet the old registration had queued before the close is still delivered with the
/// old key (D21), once; the new socket's packets carry the new registration's key, and the
/// second entry's key never appears.
#[test]
fn reused_number_delivers_old_queued_packet_once_and_new_packets_with_first_key() {
    let port = port_without_the_promise();
    let (a0, _a1) = unix_pair();
    let (b0, _b1) = unix_pair();
    // Applied without a dequeue: the level packet is queued (collected) and stays queued.
    assert_eq!(apply_batch(&port, &mut [Registration::enable(&a0, 1, OUT, LP)]), [ERROR_SUCCESS]);
    let num = reuse_number(a0, b0);
    let mut regs = [Registration::enable(&num, 2, OUT, LO), Registration::enable(&num, 3, OUT, LO)];
    let (res, mut got) = process_batch(&port, &mut regs, 4, MS(100));
    assert_eq!(res, [ERROR_SUCCESS, ERROR_SUCCESS]);
    got.extend(collect(&port, QUIET, 16));
    assert_eq!(summary(&got), [(1, OUT), (2, OUT)]);
}

// ------------------------------------------------------------------------------------------
// Issue 8, bug 2: ENABLE LEVEL then DISABLE in one call

/// Issue 8's second program: `[ENABLE OUT LEVEL|PERSISTENT, DISABLE]` on a writable socket,
/// applied without a dequeue, then a dequeue. The ENABLE queues the OUT packet (§4.2, §3.3
/// step 2) and the DISABLE leaves a queued packet queued (§4.3), so the packet is delivered;
/// the registration is disabled, so nothing follows it.
#[test]
fn enable_level_then_disable_in_one_call_delivers_packet() {
    let port = port();
    let (s, _peer) = unix_pair();
    let mut regs = [Registration::enable(&s, 7, OUT, LP), Registration::disable(&s, 7)];
    assert_eq!(apply_batch(&port, &mut regs), [ERROR_SUCCESS, ERROR_SUCCESS]);
    let got = dequeue(&port, 4, MS(200));
    assert_eq!(summary(&got), [(7, OUT)]);
    expect_empty(&port, QUIET);
}

// ------------------------------------------------------------------------------------------
// The family: two or three entries for one socket, every starting state, every call shape

/// The registration of the socket before the call under test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pre {
    /// None.
    Fresh,
    /// Created by DISABLE with key `K0` (D11).
    Disabled,
    /// `K0`, OUT LEVEL|ONESHOT, whose packet was delivered (so disabled by the delivery).
    Fired,
    /// `K0`, enabled LEVEL|PERSISTENT with filter NONE: nothing to report (D8).
    Quiet,
    /// `K0`, IN EDGE|PERSISTENT, and the peer has written since: a rising edge that Windows
    /// queued at once and socknotify has not collected yet.
    EdgeRisen,
    /// `K0`, IN LEVEL|PERSISTENT, and the peer has written since: a level condition that
    /// Windows queued at once and socknotify has not collected yet.
    LevelRisen,
    /// `K0`, OUT LEVEL|PERSISTENT, applied without a dequeue: its OUT packet is queued.
    Queued,
}

const PRES: [Pre; 4] = [Pre::Fresh, Pre::Disabled, Pre::Fired, Pre::Quiet];

/// How the entries under test are sent.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// One call, no dequeue; then the dequeues.
    OneCall,
    /// One call that applies the entries and dequeues (first round) with a timeout.
    OneCallWithWait,
    /// One call per entry, no dequeue; then the dequeues.
    SeparateCalls,
}

const SHAPES: [Shape; 3] = [Shape::OneCall, Shape::OneCallWithWait, Shape::SeparateCalls];

/// Whether the socket under test has unread data when the call is made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ready {
    /// Connected TCP, nothing to read: S = OUT.
    Writable,
    /// Connected TCP with unread data: S = IN | OUT.
    Readable,
}

/// One entry under test; entry `i` carries key `K1 + i`.
#[derive(Clone, Copy, Debug)]
enum E {
    Enable(Events, Trigger),
    Disable,
    Remove,
}

/// Packets of one dequeue round, as [`summary`] gives them.
type Round = Vec<(usize, Events)>;

/// What a run shows: each entry's result code and the packets of each dequeue round.
type Outcome = (Vec<u32>, Vec<Round>);

/// Sends `regs` in `shape` and returns the results and two dequeue rounds: the first sees
/// what the entries queued, the second whether anything re-fires.
fn send(port: &CompletionPort, mut regs: Vec<Registration<'_>>, shape: Shape) -> (Vec<u32>, Vec<Round>) {
    let (results, first) = match shape {
        Shape::OneCall => (apply_batch(port, &mut regs), dequeue(port, 16, QUIET)),
        Shape::OneCallWithWait => process_batch(port, &mut regs, 16, QUIET),
        Shape::SeparateCalls => {
            let res = regs.iter_mut().flat_map(|r| apply_batch(port, std::slice::from_mut(r))).collect();
            (res, dequeue(port, 16, QUIET))
        }
    };
    let second = dequeue(port, 16, QUIET);
    (results, vec![summary(&first), summary(&second)])
}

fn wait_readable(s: &TcpStream) {
    let mut p = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut p, 1, PATIENCE.as_millis() as i32) };
    assert_eq!(rc, 1, "the peer's data did not arrive");
}

/// Builds the starting state, sends `entries` in `shape`, and returns what happened. With
/// `then_write`, the peer writes once more after the two rounds and a third round follows.
fn run(ready: Ready, pre: Pre, entries: &[E], shape: Shape, then_write: bool) -> Outcome {
    let port = port();
    let (a, b) = tcp_pair();
    if ready == Ready::Readable {
        write_all(&b, b"data");
        wait_readable(&a);
    }
    match pre {
        Pre::Fresh => {}
        Pre::Disabled => assert_eq!(disable(&port, &a, K0), Ok(())),
        Pre::Fired => {
            assert_eq!(enable(&port, &a, K0, OUT, LO), Ok(()));
            assert_eq!(summary(&dequeue(&port, 4, PATIENCE)), [(K0, OUT)]);
        }
        Pre::Quiet => {
            assert_eq!(enable(&port, &a, K0, Events::NONE, LP), Ok(()));
            expect_empty(&port, Duration::ZERO);
        }
        Pre::EdgeRisen => {
            assert_eq!(ready, Ready::Writable, "EdgeRisen makes the data arrive itself");
            assert_eq!(enable(&port, &a, K0, IN, EP), Ok(()));
            write_all(&b, b"rise");
            wait_readable(&a);
        }
        Pre::Queued => {
            assert_eq!(enable(&port, &a, K0, OUT, LP), Ok(()));
            assert_eq!(port.queued(), 1, "the ENABLE's packet is queued");
        }
        Pre::LevelRisen => {
            assert_eq!(ready, Ready::Writable, "LevelRisen makes the data arrive itself");
            assert_eq!(enable(&port, &a, K0, IN, LP), Ok(()));
            expect_empty(&port, Duration::ZERO);
            write_all(&b, b"rise");
            wait_readable(&a);
        }
    }
    let regs = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let key = K1 + i;
            match *e {
                E::Enable(ev, t) => Registration::enable(&a, key, ev, t),
                E::Disable => Registration::new(&a, key, Operation::Disable),
                E::Remove => Registration::new(&a, key, Operation::Remove),
            }
        })
        .collect();
    let (results, mut rounds) = send(&port, regs, shape);
    if then_write {
        write_all(&b, b"more");
        wait_readable(&a);
        rounds.push(summary(&dequeue(&port, 16, QUIET)));
    }
    (results, rounds)
}

/// The key of the registration an entry list creates or finds: `K0` when one existed before
/// the call, else the key of the first entry (which creates it).
fn key(pre: Pre) -> usize {
    if pre == Pre::Fresh {
        K1
    } else {
        K0
    }
}

/// Runs `entries` from every state of `pres` in every shape and compares with `want(pre)`;
/// panics with every mismatch.
/// The runs are independent (each has its own port and sockets) and mostly wait, so they run
/// on threads of their own.
fn check(ready: Ready, pres: &[Pre], entries: &[E], then_write: bool, want: impl Fn(Pre) -> Outcome) {
    let runs: Vec<(Pre, Shape)> = pres.iter().flat_map(|&p| SHAPES.map(|s| (p, s))).collect();
    let got: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            runs.iter().map(|&(pre, shape)| scope.spawn(move || run(ready, pre, entries, shape, then_write))).collect();
        handles.into_iter().map(|h| h.join().expect("run panicked")).collect()
    });
    let bad: Vec<String> = runs
        .iter()
        .zip(got)
        .filter(|&(&(pre, _), ref got)| *got != want(pre))
        .map(|(&(pre, shape), got)| format!("  {pre:?} / {shape:?}: got {got:?}, want {:?}", want(pre)))
        .collect();
    assert!(bad.is_empty(), "{ready:?} socket, entries {entries:?}:\n{}", bad.join("\n"));
}

fn ok(n: usize) -> Vec<u32> {
    vec![ERROR_SUCCESS; n]
}

/// `[ENABLE LEVEL, DISABLE]` where the condition holds: the ENABLE queues the packet, the
/// DISABLE leaves it queued, it is delivered once; nothing re-fires (disabled), persistent
/// or one-shot alike, and a new peer write brings nothing either.
#[test]
fn enable_level_then_disable_delivers_the_packet_once() {
    for t in [LP, LO] {
        check(Ready::Writable, &PRES, &[E::Enable(OUT, t), E::Disable], true, |pre| {
            (ok(2), vec![vec![(key(pre), OUT)], vec![], vec![]])
        });
    }
    check(Ready::Readable, &PRES, &[E::Enable(IN, LP), E::Disable], false, |pre| {
        (ok(2), vec![vec![(key(pre), IN)], vec![]])
    });
}

/// `[ENABLE EDGE, DISABLE]` where the condition already holds: an edge ENABLE queues nothing
/// for it (T27), so nothing is delivered, and the disabled registration ignores new data.
#[test]
fn enable_edge_then_disable_delivers_nothing() {
    check(Ready::Writable, &PRES, &[E::Enable(IN | OUT, EP), E::Disable], true, |_| (ok(2), vec![vec![]; 3]));
}

/// `[ENABLE LEVEL, REMOVE]`: the REMOVE coalesces into the packet the ENABLE queued (T70), so
/// exactly one packet, with REMOVE, carrying the registration's key (not the REMOVE entry's);
/// nothing after it, not even for new data.
#[test]
fn enable_level_then_remove_delivers_one_remove_packet_with_the_registration_key() {
    for t in [LP, LO] {
        check(Ready::Writable, &PRES, &[E::Enable(OUT, t), E::Remove], true, |pre| {
            (ok(2), vec![vec![(key(pre), REMOVE)], vec![], vec![]])
        });
    }
}

/// `[ENABLE EDGE, REMOVE]`: nothing to coalesce with; one REMOVE packet, then nothing.
#[test]
fn enable_edge_then_remove_delivers_only_the_remove_packet() {
    check(Ready::Writable, &PRES, &[E::Enable(IN | OUT, EP), E::Remove], true, |pre| {
        (ok(2), vec![vec![(key(pre), REMOVE)], vec![], vec![]])
    });
}

/// `[ENABLE IN, re-ENABLE OUT]` (LEVEL|PERSISTENT) on a writable socket: the first queues
/// nothing, the second replaces the filter (key unchanged, D15) and queues OUT; persistent,
/// so OUT re-fires.
#[test]
fn enable_then_reenable_with_another_filter_delivers_the_new_filter() {
    check(Ready::Writable, &PRES, &[E::Enable(IN, LP), E::Enable(OUT, LP)], false, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![(key(pre), OUT)]])
    });
}

/// `[ENABLE IN, re-ENABLE OUT]` on a socket that is readable and writable: the second ENABLE
/// coalesces OUT into the IN packet, and a level packet's mask is computed at delivery under
/// the filter then in force (D17): OUT alone.
#[test]
fn enable_then_reenable_with_another_filter_masks_the_coalesced_packet_at_delivery() {
    check(Ready::Readable, &PRES, &[E::Enable(IN, LP), E::Enable(OUT, LP)], false, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![(key(pre), OUT)]])
    });
}

/// `[ENABLE OUT, re-ENABLE IN]` on a writable socket: the OUT packet queued by the first
/// entry has nothing deliverable under the filter in force at delivery, so it is dropped
/// (D17, as with the same two entries in two calls).
#[test]
fn enable_then_reenable_with_a_filter_that_does_not_hold_drops_the_stale_level_packet() {
    check(Ready::Writable, &PRES, &[E::Enable(OUT, LP), E::Enable(IN, LP)], true, |pre| {
        (ok(2), vec![vec![], vec![], vec![(key(pre), IN)]])
    });
}

/// The last ENABLE's trigger is the one in force: ONESHOT then PERSISTENT re-fires,
/// PERSISTENT then ONESHOT is delivered once.
#[test]
fn enable_then_reenable_with_another_trigger_uses_the_last_trigger() {
    check(Ready::Writable, &PRES, &[E::Enable(OUT, LO), E::Enable(OUT, LP)], false, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![(key(pre), OUT)]])
    });
    check(Ready::Writable, &PRES, &[E::Enable(OUT, LP), E::Enable(OUT, LO)], false, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![]])
    });
}

/// `[ENABLE LEVEL, re-ENABLE EDGE]` where the condition holds: the level ENABLE queued the
/// packet; the edge re-ENABLE takes the current state as its baseline and queues nothing, but
/// leaves the queued packet alone. Delivered once; the edge registration then waits for a
/// change (new data: IN).
#[test]
fn enable_level_then_reenable_edge_delivers_the_level_packet_once() {
    check(Ready::Writable, &PRES, &[E::Enable(IN | OUT, LP), E::Enable(IN | OUT, EP)], true, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![], vec![(key(pre), IN)]])
    });
}

/// `[ENABLE EDGE, re-ENABLE LEVEL]` where the condition holds: the edge ENABLE queues
/// nothing, the level one queues the condition; persistent, so it re-fires.
#[test]
fn enable_edge_then_reenable_level_delivers_the_condition() {
    check(Ready::Writable, &PRES, &[E::Enable(OUT, EP), E::Enable(OUT, LP)], false, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![(key(pre), OUT)]])
    });
}

/// `[DISABLE, ENABLE LEVEL]`: on a socket without a registration the DISABLE creates a
/// disabled one with its key (D11) and the ENABLE turns it on, keeping that key (D15); on a
/// registered socket it is a plain re-arm. Either way the level condition is queued.
#[test]
fn disable_then_enable_level_delivers_with_the_first_key() {
    check(Ready::Writable, &PRES, &[E::Disable, E::Enable(OUT, LP)], false, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![(key(pre), OUT)]])
    });
    check(Ready::Writable, &PRES, &[E::Disable, E::Enable(OUT, LO)], false, |pre| {
        (ok(2), vec![vec![(key(pre), OUT)], vec![]])
    });
}

/// `[DISABLE, ENABLE EDGE]` where the condition holds: no packet for it (T27); the next
/// change (new data) is delivered.
#[test]
fn disable_then_enable_edge_delivers_only_later_changes() {
    check(Ready::Writable, &PRES, &[E::Disable, E::Enable(IN | OUT, EP)], true, |pre| {
        (ok(2), vec![vec![], vec![], vec![(key(pre), IN)]])
    });
}

/// An edge that rose before the call (Windows queued its packet at the change) survives
/// `[DISABLE, ENABLE EDGE]` and `[re-ENABLE EDGE, DISABLE]`: neither entry removes a queued
/// packet (§4.2 "Disabled": a packet already queued is delivered; §4.3).
#[test]
fn edge_packet_queued_before_the_call_survives_disable_and_reenable() {
    for entries in [[E::Disable, E::Enable(IN, EP)], [E::Enable(IN, EP), E::Disable]] {
        check(Ready::Writable, &[Pre::EdgeRisen], &entries, false, |_| (ok(2), vec![vec![(K0, IN)], vec![]]));
    }
}

/// `[REMOVE, ENABLE]`: after an accepted REMOVE the registration waits for its REMOVE packet,
/// so the ENABLE is refused (D14) and only the REMOVE packet comes. Without a registration
/// the REMOVE fails (D12) and the ENABLE creates one with its own key.
#[test]
fn remove_then_enable_in_one_call_refuses_the_enable_until_the_remove_packet() {
    check(Ready::Writable, &PRES, &[E::Remove, E::Enable(OUT, LP)], false, |pre| match pre {
        Pre::Fresh => (vec![ERROR_NOT_FOUND, ERROR_SUCCESS], vec![vec![(K2, OUT)], vec![(K2, OUT)]]),
        _ => (vec![ERROR_SUCCESS, WSAEALREADY], vec![vec![(K0, REMOVE)], vec![]]),
    });
}

/// `[ENABLE, REMOVE, ENABLE]`: one REMOVE packet with the registration's key; the last
/// ENABLE is refused (D14).
#[test]
fn enable_remove_enable_in_one_call_gives_one_remove_packet() {
    check(Ready::Writable, &PRES, &[E::Enable(OUT, LP), E::Remove, E::Enable(OUT, LP)], false, |pre| {
        (vec![ERROR_SUCCESS, ERROR_SUCCESS, WSAEALREADY], vec![vec![(key(pre), REMOVE)], vec![]])
    });
}

/// A level condition that came true after socknotify last collected readiness (Windows
/// queued its packet when it came true, §4.2) survives a re-ENABLE as EDGE: the edge ENABLE
/// takes a new baseline but leaves a queued packet queued (§4.3), which is then delivered
/// with its bits. One entry is enough; in two calls as in one.
#[test]
fn level_packet_not_yet_collected_survives_reenable_as_edge() {
    check(Ready::Writable, &[Pre::LevelRisen], &[E::Enable(IN, EP)], false, |_| (ok(1), vec![vec![(K0, IN)], vec![]]));
    check(Ready::Writable, &[Pre::LevelRisen], &[E::Enable(IN, EP), E::Disable], false, |_| {
        (ok(2), vec![vec![(K0, IN)], vec![]])
    });
}

/// The same condition survives a DISABLE and a level re-ENABLE (socknotify collects before
/// a DISABLE; a level packet is computed at delivery).
#[test]
fn level_packet_not_yet_collected_survives_disable_and_level_reenable() {
    check(Ready::Writable, &[Pre::LevelRisen], &[E::Disable], false, |_| (ok(1), vec![vec![(K0, IN)], vec![]]));
    check(Ready::Writable, &[Pre::LevelRisen], &[E::Enable(IN, LP), E::Disable], false, |_| {
        (ok(2), vec![vec![(K0, IN)], vec![]])
    });
    check(Ready::Writable, &[Pre::LevelRisen], &[E::Enable(IN, LO)], false, |_| (ok(1), vec![vec![(K0, IN)], vec![]]));
}

/// `[ENABLE OUT LEVEL, re-ENABLE IN LEVEL, re-ENABLE IN EDGE]` on a writable socket: the first
/// entry queues OUT; the second queues nothing new and leaves the packet queued; the third
/// takes a baseline and leaves it queued too. Delivered as an edge packet, with the bits it
/// carries: OUT, once. (The same three entries in three calls deliver it.)
#[test]
fn level_packet_of_an_earlier_enable_survives_a_narrower_reenable_then_a_switch_to_edge() {
    check(Ready::Writable, &PRES, &[E::Enable(OUT, LP), E::Enable(IN, LP), E::Enable(IN, EP)], false, |pre| {
        (ok(3), vec![vec![(key(pre), OUT)], vec![]])
    });
}

/// `[ENABLE OUT LEVEL, re-ENABLE HANGUP LEVEL]` on a writable socket, then `close_socket`:
/// the OUT packet the first entry queued is still queued at the close, so it is delivered
/// after it (D21), with the key; never a REMOVE. In one call as in two.
#[test]
fn level_packet_of_an_earlier_enable_survives_a_narrower_reenable_and_close_socket() {
    let mut bad = Vec::new();
    for shape in [Shape::OneCall, Shape::SeparateCalls] {
        let port = port();
        let (a, _b) = tcp_pair();
        let mut regs = [Registration::enable(&a, K1, OUT, LP), Registration::enable(&a, K2, Events::HANGUP, LP)];
        let res = match shape {
            Shape::SeparateCalls => regs.iter_mut().flat_map(|r| apply_batch(&port, std::slice::from_mut(r))).collect(),
            _ => apply_batch(&port, &mut regs),
        };
        socknotify::close_socket(a);
        let got = summary(&collect(&port, QUIET, 16));
        if (res.as_slice(), got.as_slice()) != (ok(2).as_slice(), [(K1, OUT)].as_slice()) {
            bad.push(format!("  {shape:?}: results {res:?}, packets {got:?}"));
        }
    }
    assert!(bad.is_empty(), "want results [0, 0] and one packet ({K1}, OUT):\n{}", bad.join("\n"));
}

/// A queued level packet (its socket writable) meets entries of one call: DISABLE keeps it
/// (T44); a re-ENABLE with a filter that does not hold leaves nothing deliverable (D17), also
/// when the same call's DISABLE made socknotify collect readiness before the entries and the
/// same call dequeues; a switch to EDGE keeps it (delivered once); REMOVE takes it over.
#[test]
fn queued_level_packet_meets_disable_reenable_and_remove() {
    let q = [Pre::Queued];
    let w = Ready::Writable;
    check(w, &q, &[E::Disable], false, |_| (ok(1), vec![vec![(K0, OUT)], vec![]]));
    check(w, &q, &[E::Enable(IN, LP)], true, |_| (ok(1), vec![vec![], vec![], vec![(K0, IN)]]));
    check(w, &q, &[E::Enable(IN, LP), E::Disable], false, |_| (ok(2), vec![vec![], vec![]]));
    check(w, &q, &[E::Enable(OUT, EP)], false, |_| (ok(1), vec![vec![(K0, OUT)], vec![]]));
    check(w, &q, &[E::Remove], false, |_| (ok(1), vec![vec![(K0, REMOVE)], vec![]]));
}

/// A call whose timeout has run out by the time its entries are applied still returns the
/// packets those entries queued: Windows queues them before the dequeue (§3.3 step 2, T55),
/// and a dequeue returns queued packets whatever its timeout. 2000 fresh UDP sockets (always
/// writable) are registered LEVEL|ONESHOT for OUT in one call with a 1 ms timeout; applying
/// 2000 entries takes longer than that.
#[test]
fn call_whose_timeout_ends_while_applying_still_returns_the_packets_its_entries_queued() {
    const N: usize = 2000;
    let port = port();
    let socks: Vec<_> = (0..N).map(|_| fresh_udp()).collect();
    let mut regs: Vec<_> = socks.iter().enumerate().map(|(k, s)| Registration::enable(s, k, OUT, LO)).collect();
    let (res, got) = process_batch(&port, &mut regs, N, MS(1));
    assert!(res.iter().all(|&r| r == ERROR_SUCCESS));
    assert!(!got.is_empty(), "the call returned no packet although its {N} ENABLEs queued {N}");
    let mut all = got;
    all.extend(collect(&port, QUIET, N + 1));
    assert_eq!(all.len(), N, "every socket's OUT, once");
}
