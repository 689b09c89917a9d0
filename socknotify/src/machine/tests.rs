//! Unit tests of the machine against a scripted kernel: every rule checked here without a
//! system call, so a failure points at the machine and not at the kernel or the port.

use super::*;
use std::collections::HashMap;

/// A socket of the scripted world.
#[derive(Clone, Copy)]
struct Sock {
    cookie: u64,
    stream: bool,
    ready: Readiness,
}

/// The scripted kernel: descriptors, what is watched, and the calls the machine made.
#[derive(Default)]
struct Script {
    fds: HashMap<RawFd, Sock>,
    watched: HashMap<RawFd, (u64, Interest, Token)>,
    next_cookie: u64,
    modifies: usize,
}

impl Script {
    /// A new socket at descriptor `fd` (replacing whatever was there, as a reuse would).
    fn open(&mut self, fd: RawFd, stream: bool, ready: Readiness) -> u64 {
        self.next_cookie += 1;
        self.fds.insert(fd, Sock { cookie: self.next_cookie, stream, ready });
        self.next_cookie
    }
    /// `close(fd)`: the kernel forgets what it watched for that socket.
    fn close(&mut self, fd: RawFd) {
        self.fds.remove(&fd);
        self.watched.remove(&fd);
    }
    fn set(&mut self, fd: RawFd, ready: Readiness) {
        self.fds.get_mut(&fd).expect("open").ready = ready;
    }
    /// What epoll would report now for `fd`, as (token, readiness), if anything.
    fn report(&self, fd: RawFd) -> Option<(Token, Readiness)> {
        let (cookie, interest, token) = *self.watched.get(&fd)?;
        let s = self.fds.get(&fd).filter(|s| s.cookie == cookie)?;
        let wanted = match interest {
            Interest::Level { read, write, .. } => {
                let mut w = Readiness::ERROR | Readiness::HANGUP | Readiness::READ_HANGUP;
                if read {
                    w |= Readiness::READ;
                }
                if write {
                    w |= Readiness::WRITE;
                }
                s.ready & w
            }
            Interest::Edge => s.ready,
            Interest::Off => Readiness::NONE,
        };
        (wanted != Readiness::NONE).then_some((token, s.ready))
    }
}

impl Kernel for Script {
    fn identify(&mut self, fd: RawFd) -> Result<u64, RegistrationError> {
        self.fds.get(&fd).map(|s| s.cookie).ok_or(RegistrationError::NotASocket)
    }
    fn kind(&mut self, fd: RawFd) -> Option<SocketKind> {
        self.fds.get(&fd).map(|s| SocketKind { stream: s.stream })
    }
    fn cookie(&mut self, fd: RawFd) -> Option<u64> {
        self.fds.get(&fd).map(|s| s.cookie)
    }
    fn add(&mut self, fd: RawFd, interest: Interest, token: Token) -> bool {
        let Some(s) = self.fds.get(&fd) else { return false };
        if self.watched.get(&fd).is_some_and(|w| w.0 == s.cookie) {
            return false;
        }
        self.watched.insert(fd, (s.cookie, interest, token));
        true
    }
    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> bool {
        self.modifies += 1;
        let Some(cookie) = self.fds.get(&fd).map(|s| s.cookie) else { return false };
        match self.watched.get_mut(&fd) {
            Some(w) if w.0 == cookie => {
                *w = (cookie, interest, token);
                true
            }
            _ => false,
        }
    }
    fn delete(&mut self, fd: RawFd) -> bool {
        let Some(cookie) = self.fds.get(&fd).map(|s| s.cookie) else { return false };
        self.watched.remove(&fd).is_some_and(|w| w.0 == cookie)
    }
    fn sample(&mut self, fd: RawFd, cookie: u64) -> Option<Readiness> {
        self.fds.get(&fd).filter(|s| s.cookie == cookie).map(|s| s.ready)
    }
    fn poll(&mut self, fd: RawFd) -> Option<Readiness> {
        self.fds.get(&fd).map(|s| s.ready)
    }
    fn never_connected(&mut self, _fd: RawFd) -> bool {
        false
    }
    fn tcp_counters(&mut self, _fd: RawFd) -> Option<TcpCounters> {
        None
    }
}

/// The claims table of a process with two ports: `port` is the one this machine is.
struct Table<'a> {
    claims: &'a mut HashMap<RawFd, (u32, u64)>,
    port: u32,
}

impl Claims for Table<'_> {
    fn claim(&mut self, fd: RawFd, cookie: u64) -> bool {
        match self.claims.get(&fd) {
            Some(&(p, c)) if p != self.port && c == cookie => false,
            _ => {
                self.claims.insert(fd, (self.port, cookie));
                true
            }
        }
    }
    fn release(&mut self, fd: RawFd, cookie: u64) {
        if self.claims.get(&fd) == Some(&(self.port, cookie)) {
            self.claims.remove(&fd);
        }
    }
}

/// One port's machine in a scripted world.
struct World {
    machine: Machine,
    kernel: Script,
    claims: HashMap<RawFd, (u32, u64)>,
}

const R: Readiness = Readiness::READ;
const W: Readiness = Readiness::WRITE;
const LEVEL_IN: Operation = Operation::Enable { events: Events::IN, trigger: Trigger::LEVEL_PERSISTENT };
const ONESHOT_IN: Operation = Operation::Enable { events: Events::IN, trigger: Trigger::LEVEL_ONESHOT };
const EDGE_IN: Operation = Operation::Enable { events: Events::IN, trigger: Trigger::EDGE_PERSISTENT };
const LEVEL_OUT: Operation = Operation::Enable { events: Events::OUT, trigger: Trigger::LEVEL_PERSISTENT };

impl World {
    fn new() -> World {
        World { machine: Machine::new(), kernel: Script::default(), claims: HashMap::new() }
    }
    fn apply(&mut self, fd: RawFd, key: usize, op: Operation) -> Result<(), RegistrationError> {
        self.apply_raw(fd, key, Some(op))
    }
    fn apply_raw(&mut self, fd: RawFd, key: usize, op: Option<Operation>) -> Result<(), RegistrationError> {
        let mut claims = Table { claims: &mut self.claims, port: 0 };
        self.machine.apply(Some(fd), key, op, &mut self.kernel, &mut claims)
    }
    /// What a port does when it collects readiness: every report the kernel has, then a new
    /// epoch for the delivery (as a new lock acquisition gives).
    fn harvest(&mut self) {
        let mut fds: Vec<RawFd> = self.kernel.watched.keys().copied().collect();
        fds.sort_unstable();
        for fd in fds {
            if let Some((token, ready)) = self.kernel.report(fd) {
                self.report(token, ready);
            }
        }
    }
    /// Applies one kernel report.
    fn report(&mut self, token: Token, ready: Readiness) {
        let mut claims = Table { claims: &mut self.claims, port: 0 };
        self.machine.on_event(token, ready, &mut self.kernel, &mut claims);
    }
    fn deliver(&mut self) -> Vec<(usize, Events)> {
        self.machine.new_epoch();
        let mut out = [Completion::default(); 16];
        let mut claims = Table { claims: &mut self.claims, port: 0 };
        let n = self.machine.deliver(&mut out, &mut self.kernel, &mut claims);
        out[..n].iter().map(|c| (c.key(), c.events())).collect()
    }
    fn harvest_and_deliver(&mut self) -> Vec<(usize, Events)> {
        self.harvest();
        self.deliver()
    }
}

#[test]
fn readiness_maps_linux_states_to_windows_bits() {
    let stream = SocketKind { stream: true };
    let mut latch = false;
    // A fresh, never-connected TCP socket: Linux says WRITE|HANGUP, Windows nothing.
    assert_eq!(readiness(stream, W | Readiness::HANGUP, &mut latch), Events::NONE);
    // Peer FIN: IN and HANGUP.
    let fin = R | Readiness::READ_HANGUP | W;
    assert_eq!(readiness(stream, fin, &mut latch), Events::IN | Events::OUT | Events::HANGUP);
    assert!(!latch);
    // Failed connect: ERR, never OUT; the error is latched.
    let failed = fin | Readiness::ERROR | Readiness::HANGUP;
    assert_eq!(readiness(stream, failed, &mut latch), Events::ERR | Events::IN | Events::HANGUP);
    assert!(latch);
    assert!(readiness(stream, W, &mut latch).contains(Events::ERR), "ERR stays latched");
    // Datagram sockets never report HANGUP.
    let dgram = SocketKind { stream: false };
    let mut l = false;
    assert_eq!(readiness(dgram, R | W | Readiness::HANGUP, &mut l), Events::IN | Events::OUT);
}

#[test]
fn level_enable_of_a_ready_socket_queues_one_packet_with_its_key() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    assert_eq!(w.apply(3, 7, LEVEL_IN), Ok(()));
    assert_eq!(w.harvest_and_deliver(), vec![(7, Events::IN)]);
    // Persistent: the condition still holds, so it comes again.
    assert_eq!(w.harvest_and_deliver(), vec![(7, Events::IN)]);
}

#[test]
fn bits_coalesce_into_the_one_queued_packet() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 7, Operation::Enable { events: Events::IN | Events::OUT, trigger: Trigger::LEVEL_PERSISTENT }).unwrap();
    w.harvest();
    w.kernel.set(3, R | W);
    w.harvest();
    assert_eq!(w.machine.queued(), 1);
    assert_eq!(w.deliver(), vec![(7, Events::IN | Events::OUT)]);
}

#[test]
fn oneshot_disables_at_delivery_and_enable_rearms() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 7, ONESHOT_IN).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![(7, Events::IN)]);
    assert_eq!(w.harvest_and_deliver(), vec![], "disabled after delivery");
    w.apply(3, 8, ONESHOT_IN).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![(7, Events::IN)], "re-ENABLE keeps the key (D15)");
}

#[test]
fn level_packet_whose_condition_ended_is_dropped_at_delivery() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 7, LEVEL_IN).unwrap();
    w.harvest();
    w.kernel.set(3, Readiness::NONE);
    assert_eq!(w.deliver(), vec![], "D17: the mask is computed when dequeued");
}

#[test]
fn edge_gives_no_packet_for_what_holds_at_enable_and_one_per_rise() {
    let mut w = World::new();
    w.kernel.open(3, false, R);
    w.apply(3, 7, EDGE_IN).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![(7, Events::IN)], "datagram: every wake-up counts (D18)");
    let mut w = World::new();
    w.kernel.open(3, false, Readiness::NONE);
    w.apply(3, 7, EDGE_IN).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![]);
    w.kernel.set(3, R);
    assert_eq!(w.harvest_and_deliver(), vec![(7, Events::IN)]);
}

#[test]
fn remove_is_terminal() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 7, LEVEL_IN).unwrap();
    w.harvest();
    assert_eq!(w.apply(3, 0, Operation::Remove), Ok(()));
    assert_eq!(w.apply(3, 0, LEVEL_IN), Err(RegistrationError::RemovePending), "D14");
    let got = w.harvest_and_deliver();
    assert_eq!(got.len(), 1);
    assert!(got[0].1.contains(Events::REMOVE) && got[0].0 == 7, "REMOVE coalesced into the queued packet");
    assert_eq!(w.harvest_and_deliver(), vec![], "nothing after REMOVE");
    assert_eq!(w.machine.registrations(), 0);
    assert_eq!(w.apply(3, 9, LEVEL_IN), Ok(()), "registered again after the REMOVE packet");
    assert_eq!(w.harvest_and_deliver(), vec![(9, Events::IN)]);
}

#[test]
fn entry_checks_run_in_the_decided_order() {
    let mut w = World::new();
    // D7 before D10: an invalid operation on a non-socket is WSAEINVAL.
    assert_eq!(w.apply_raw(40, 1, None), Err(RegistrationError::InvalidArgument));
    // D9: NONE succeeds whatever the descriptor.
    assert_eq!(w.apply(40, 1, Operation::None), Ok(()));
    // D10 before the flags: a non-socket with bad flags is WSAENOTSOCK.
    let bad = Operation::Enable { events: Events::ERR, trigger: Trigger::LEVEL };
    assert_eq!(w.apply(40, 1, bad), Err(RegistrationError::NotASocket));
    w.kernel.open(3, true, Readiness::NONE);
    assert_eq!(w.apply(3, 1, bad), Err(RegistrationError::InvalidArgument));
    // D12: REMOVE of an unregistered socket.
    assert_eq!(w.apply(3, 1, Operation::Remove), Err(RegistrationError::NotFound));
    // D11: DISABLE creates a disabled registration with its key.
    assert_eq!(w.apply(3, 5, Operation::Disable), Ok(()));
    w.kernel.set(3, R);
    assert_eq!(w.harvest_and_deliver(), vec![]);
    w.apply(3, 6, LEVEL_IN).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![(5, Events::IN)]);
    // D13: another port (another machine sharing the claims table) cannot take it.
    let mut other = Machine::new();
    let mut claims = Table { claims: &mut w.claims, port: 1 };
    assert_eq!(other.apply(Some(3), 1, Some(LEVEL_IN), &mut w.kernel, &mut claims), Err(RegistrationError::OtherPort));
    assert_eq!(
        other.apply(Some(3), 1, Some(Operation::Remove), &mut w.kernel, &mut claims),
        Err(RegistrationError::OtherPort)
    );
}

#[test]
fn enable_then_disable_in_one_batch_keeps_the_enable_packet() {
    // Issue 8, second reproduction: [ENABLE OUT LEVEL, DISABLE] on a writable socket.
    let mut w = World::new();
    w.kernel.open(3, true, W);
    w.apply(3, 7, LEVEL_OUT).unwrap();
    w.apply(3, 7, Operation::Disable).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![(7, Events::OUT)]);
    assert_eq!(w.harvest_and_deliver(), vec![], "disabled: nothing more");
}

#[test]
fn enable_then_disable_in_separate_epochs_relies_on_the_kernel_report() {
    // Across calls the kernel's report is what queues the packet; no extra sampling.
    let mut w = World::new();
    w.kernel.open(3, true, W);
    w.apply(3, 7, LEVEL_OUT).unwrap();
    w.machine.new_epoch();
    w.apply(3, 7, Operation::Disable).unwrap();
    assert_eq!(w.machine.queued(), 0);
}

#[test]
fn a_reused_descriptor_number_never_gets_the_old_key() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 1, ONESHOT_IN).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![(1, Events::IN)]);
    // Plain close, and a new socket takes the number.
    w.kernel.close(3);
    w.kernel.open(3, true, R);
    w.apply(3, 2, ONESHOT_IN).unwrap();
    w.apply(3, 3, ONESHOT_IN).unwrap();
    assert_eq!(w.harvest_and_deliver(), vec![(2, Events::IN)], "created with key 2; re-ENABLE keeps it (D15, D21)");
}

/// A kernel wait's report applied after a packet of its registration was dequeued (the
/// poller waited for the port lock meanwhile) may be older than that dequeue. After a plain
/// `close()` it must give no second packet: at most the one already queued comes out (D21).
/// While the socket is open it still counts (every wake-up of a datagram socket is an edge).
#[test]
fn a_wait_report_older_than_a_dequeue_gives_nothing_after_a_plain_close() {
    for closed in [true, false] {
        let mut w = World::new();
        w.kernel.open(7, false, R);
        w.apply(7, 1, EDGE_IN).unwrap();
        let token = w.machine.token_of(7).unwrap();
        // The poller releases the lock and waits in the kernel; a datagram arrives, which its
        // wait reports, and which another thread collects under the lock meanwhile.
        let began = w.machine.epoch();
        w.machine.new_epoch();
        w.report(token, R);
        if closed {
            w.kernel.close(7);
        }
        assert_eq!(w.deliver(), vec![(1, Events::IN)], "the packet queued before the close");
        // The poller gets the lock back and applies its report.
        w.machine.new_epoch();
        w.machine.set_reports_since(Some(began));
        w.report(token, R);
        w.machine.set_reports_since(None);
        let again = if closed { vec![] } else { vec![(1, Events::IN)] };
        assert_eq!(w.deliver(), again, "closed: {closed}");
        // The closed socket's registration is forgotten, its claim released (no zombie).
        assert_eq!(w.machine.registrations(), usize::from(!closed), "closed: {closed}");
        assert_eq!(w.claims.len(), usize::from(!closed), "closed: {closed}");
    }
}

#[test]
fn a_stale_report_of_a_reused_number_registers_what_was_applied_to_it_since() {
    // With user-space re-arms, a program that broke its promise (a plain close, a new socket
    // at the number, an ENABLE of the number taken for a re-arm): a stale report that finds the
    // socket gone does what an audit would, so the new socket's registration works at once.
    let mut w = World::new();
    w.machine.set_user_rearm(true);
    w.kernel.open(7, false, R);
    w.apply(7, 1, ONESHOT_IN).unwrap();
    let token = w.machine.token_of(7).unwrap();
    let began = w.machine.epoch();
    w.machine.new_epoch();
    w.harvest();
    assert_eq!(w.deliver(), vec![(1, Events::IN)]);
    w.kernel.close(7);
    w.kernel.open(7, false, R);
    w.apply(7, 2, ONESHOT_IN).unwrap(); // a flag change in user space, not confirmed
    assert_eq!(w.machine.unverified(), 1);
    w.machine.new_epoch();
    w.machine.set_reports_since(Some(began));
    w.report(token, R);
    w.machine.set_reports_since(None);
    assert_eq!(w.machine.unverified(), 0);
    assert_eq!(w.machine.registrations(), 1);
    assert_ne!(w.machine.token_of(7), Some(token), "the new socket has a registration of its own");
    w.harvest();
    assert_eq!(w.deliver(), vec![(2, Events::IN)], "the key applied since, for the new socket");
}

#[test]
fn posted_packets_keep_fifo_order_with_notifications() {
    let mut w = World::new();
    w.machine.queue_posted(Completion::new(100, 1, 2));
    w.kernel.open(3, true, R);
    w.apply(3, 7, LEVEL_IN).unwrap();
    w.harvest();
    w.machine.queue_posted(Completion::new(101, 0x80, 0));
    let got = w.deliver();
    assert_eq!(got, vec![(100, Events::from_bits(1)), (7, Events::IN), (101, Events::REMOVE)]);
}

#[test]
fn a_stale_token_is_ignored() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 7, LEVEL_IN).unwrap();
    w.report(Token(u64::MAX - 5), R);
    assert_eq!(w.machine.queued(), 0);
}

#[test]
fn clear_drops_everything_and_releases_claims() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 7, LEVEL_IN).unwrap();
    w.harvest();
    let mut claims = Table { claims: &mut w.claims, port: 0 };
    w.machine.clear(&mut claims);
    assert_eq!((w.machine.queued(), w.machine.registrations(), w.machine.live()), (0, 0, 0));
    assert!(w.claims.is_empty());
    let mut other = Machine::new();
    let mut claims = Table { claims: &mut w.claims, port: 1 };
    let taken = other.apply(Some(3), 1, Some(LEVEL_IN), &mut w.kernel, &mut claims);
    assert_eq!(taken, Ok(()), "another port may take the socket now (D6)");
}

#[test]
fn a_disabled_registration_is_quiet_in_the_kernel() {
    let mut w = World::new();
    w.kernel.open(3, true, R);
    w.apply(3, 7, Operation::Disable).unwrap();
    assert_eq!(w.kernel.watched.get(&3).map(|x| x.1), Some(Interest::Off));
    w.apply(3, 7, ONESHOT_IN).unwrap();
    assert_eq!(w.kernel.watched.get(&3).map(|x| x.1), Some(Interest::Level { read: true, write: false, once: true }));
}

#[test]
fn posts_follow_what_is_queued_and_runs_stop_at_notifications() {
    let mut w = World::new();
    w.machine.queue_posted(Completion::new(100, 1, 2));
    w.kernel.open(3, true, R);
    w.apply(3, 7, LEVEL_IN).unwrap();
    w.harvest();
    // Posted after the notification (the port's inbox handed over): after it, in order.
    for k in 101..104 {
        w.machine.queue_posted(Completion::new(k, 0, 0));
    }
    assert_eq!(w.machine.queued(), 5);
    let keys = |v: Vec<(usize, Events)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(w.deliver()), vec![100, 7, 101, 102, 103]);
    // A delivery smaller than a run of posts.
    for k in 200..204 {
        w.machine.queue_posted(Completion::new(k, 0, 0));
    }
    let mut out = [Completion::default(); 3];
    let mut claims = Table { claims: &mut w.claims, port: 0 };
    assert_eq!(w.machine.deliver(&mut out, &mut w.kernel, &mut claims), 3);
    assert_eq!(out.map(|c| c.key()), [200, 201, 202]);
    assert_eq!(keys(w.deliver()), vec![203]);
}

#[test]
fn user_space_re_arms_are_confirmed_by_a_later_report_or_by_an_audit_once_aged() {
    let mut w = World::new();
    w.machine.set_user_rearm(true);
    for fd in [3, 4, 5, 6] {
        w.kernel.open(fd, true, R);
        w.apply(fd, fd as usize * 10, ONESHOT_IN).unwrap();
    }
    assert_eq!(w.harvest_and_deliver().len(), 4);
    for fd in [3, 4, 5, 6] {
        w.kernel.set(fd, Readiness::NONE);
    }
    // Drained, then re-armed in user space: three unconfirmed entries.
    for fd in [3, 4, 5] {
        w.apply(fd, fd as usize * 10, ONESHOT_IN).unwrap();
        assert!(w.machine.last_in_user_space());
    }
    assert_eq!(w.machine.unverified(), 3);
    // A report from a wait that began before the re-arm confirms nothing...
    w.kernel.set(3, R);
    w.machine.set_reports_since(Some(w.machine.epoch() - 1));
    w.harvest();
    assert_eq!(w.machine.unverified(), 3);
    // ... one from a collection made after it confirms it.
    w.machine.set_reports_since(None);
    w.harvest();
    assert_eq!(w.machine.unverified(), 2);
    assert_eq!(w.deliver(), vec![(30, Events::IN)]);
    w.kernel.set(3, Readiness::NONE);
    // A broken promise: 5 closed behind the port's back, a new socket at its number.
    w.kernel.close(5);
    w.kernel.open(5, true, Readiness::NONE);
    let audit = |w: &mut World| {
        let mut claims = Table { claims: &mut w.claims, port: 0 };
        w.machine.audit(AuditBy::Identity, &mut w.kernel, &mut claims)
    };
    // The first audit finds nothing aged; a re-arm after it waits for the audit after next.
    assert_eq!(audit(&mut w), 0);
    assert_eq!(w.machine.unverified(), 2);
    w.apply(6, 60, ONESHOT_IN).unwrap();
    assert_eq!(w.machine.unverified(), 3);
    // The second checks 4 (still its socket) and 5 (gone: the entry goes to the new socket).
    assert_eq!(audit(&mut w), 1);
    assert_eq!(w.machine.unverified(), 1);
    assert_eq!(audit(&mut w), 0);
    assert_eq!(w.machine.unverified(), 0);
    w.kernel.set(5, R);
    assert_eq!(w.harvest_and_deliver(), vec![(50, Events::IN)]);
}
