//! Harness of the fuzz target `machine`: drives `socknotify::machine::Machine` (two ports sharing one
//! one-port-per-socket table) with arbitrary operation sequences against a scripted fake
//! kernel, and checks invariants after every step.
//!
//! The fake kernel simulates descriptors (sockets of three kinds, non-sockets, closed
//! numbers and number reuse, each socket with a unique cookie), per-port epoll interest
//! lists with Linux's rules (level / edge / one-shot, MOD re-arms and re-polls, interests
//! vanish when the socket is closed, ADD of a watched descriptor fails), `poll`-style
//! sampling, TCP byte counters, and an injectable ADD failure (`max_user_watches`).
//!
//! A small reference model predicts every `apply` result exactly (decisions D7–D14 in the
//! order of decisions.md) and tracks which keys may still produce packets. Checked:
//! - no panic (debug assertions are on in fuzz builds);
//! - `apply` results equal the model's (and so come only from the decided set);
//! - at most one queued packet per registration: a key appears at most once in one drain,
//!   and `queued() - posted_in_fifo <= registrations()`;
//! - after a packet carrying REMOVE, never another packet with that key (keys are unique per
//!   registration, so "until registered again" is automatic); after a port is cleared, none
//!   of its keys ever again; after a socket is closed or forgotten, at most one more packet
//!   (the one already queued) with its key, so a descriptor number reused by a new socket
//!   never gets the old key;
//! - notifications carry `overlapped = internal = 0`, a non-empty mask within 0xC7, and a key
//!   of a registration of that very port;
//! - posted packets come back unchanged and in the order posted;
//! - `live() <= registrations()`, both at least the model's counts; after `clear` all zero;
//! - liveness for LEVEL|PERSISTENT: a registration whose socket plainly holds a filtered
//!   condition gets a packet when the port settles (harvest + drain, twice).
use socknotify::machine::{Claims, Interest as Watch, Kernel, Machine, Readiness, SocketKind, TcpCounters, Token};
use socknotify::{Completion, Events, Operation, RegistrationError, Trigger};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::os::fd::RawFd;

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
const EPOLLET: u32 = libc::EPOLLET as u32;

/// Descriptor numbers the world uses.
const FDS: usize = 6;
const PORTS: usize = 2;
/// Keys of posted packets have this bit; registration keys never do.
const POSTED: usize = 1 << 62;

// ------------------------------------------------------------------------------------------
// Input decoding

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.byte()) | u16::from(self.byte()) << 8
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }
    fn empty(&self) -> bool {
        self.data.is_empty()
    }
}

// ------------------------------------------------------------------------------------------
// The simulated world

#[derive(Clone, Debug)]
struct Sock {
    cookie: u64,
    socket: bool,
    stream: bool,
    tcp: bool,
    /// Readiness as Linux reports it (epoll bits).
    revents: u32,
    counters: (u64, u64, u64),
    never_connected: bool,
    /// ERR, HUP or RDHUP was ever reported (D19's latches make such sockets hard to predict).
    ever_bad: bool,
}

#[derive(Clone, Debug)]
struct Interest {
    cookie: u64,
    flags: u32,
    token: u64,
    armed: bool,
    /// Edge-triggered: a wake-up is pending.
    pending: bool,
}

/// The port's own translation between the machine's terms and epoll's bits (the simulation
/// speaks epoll).
use socknotify::epoll_bits::{flags as flags_of, readiness as readiness_of};

fn reported(flags: u32, revents: u32) -> u32 {
    revents & ((flags & (EPOLLIN | EPOLLOUT | EPOLLRDHUP)) | EPOLLERR | EPOLLHUP)
}

struct World {
    fds: Vec<Option<Sock>>,
    next_cookie: u64,
    /// Per port: descriptor → interest (Linux keys interests by (descriptor, file)).
    epolls: Vec<BTreeMap<RawFd, Interest>>,
    /// Fail the next ADDs while non-zero (ENOSPC from max_user_watches).
    fail_adds: u32,
    /// Shared claims table: descriptor → (port, cookie).
    claims: HashMap<RawFd, (usize, u64)>,
    /// Another thread closes the socket inside the next ADD: 1 = just before it, 2 = just
    /// after it (so the ENABLE that follows finds the socket gone).
    race: u8,
    /// The socket a race closed (descriptor, socket).
    raced: Option<(RawFd, Sock)>,
}

struct FakeKernel<'a> {
    fds: &'a mut Vec<Option<Sock>>,
    ep: &'a mut BTreeMap<RawFd, Interest>,
    fail_adds: &'a mut u32,
    race: &'a mut u8,
    raced: &'a mut Option<(RawFd, Sock)>,
}

impl FakeKernel<'_> {
    fn sock(&self, fd: RawFd) -> Option<&Sock> {
        self.fds.get(usize::try_from(fd).ok()?)?.as_ref()
    }
    fn current_cookie(&self, fd: RawFd) -> Option<u64> {
        self.sock(fd).filter(|s| s.socket).map(|s| s.cookie)
    }
}

impl Kernel for FakeKernel<'_> {
    fn identify(&mut self, fd: RawFd) -> Result<u64, RegistrationError> {
        match self.sock(fd) {
            Some(s) if s.socket => Ok(s.cookie),
            _ => Err(RegistrationError::NotASocket),
        }
    }
    fn kind(&mut self, fd: RawFd) -> Option<SocketKind> {
        self.sock(fd).filter(|s| s.socket).map(|s| SocketKind { stream: s.stream })
    }
    fn cookie(&mut self, fd: RawFd) -> Option<u64> {
        self.current_cookie(fd)
    }
    fn add(&mut self, fd: RawFd, watch: Watch, token: Token) -> bool {
        let (flags, token) = (flags_of(watch), token.0);
        if *self.race == 1 {
            // Closed by another thread just before the ADD: EBADF.
            *self.race = 0;
            if let Some(s) = self.fds[fd as usize].take() {
                *self.raced = Some((fd, s));
            }
            return false;
        }
        let Some(s) = self.sock(fd).cloned() else { return false };
        if self.ep.get(&fd).is_some_and(|i| i.cookie == s.cookie) {
            return false; // EEXIST
        }
        if *self.fail_adds > 0 {
            *self.fail_adds -= 1;
            return false; // ENOSPC
        }
        let pending = reported(flags, s.revents) != 0;
        self.ep.insert(fd, Interest { cookie: s.cookie, flags, token, armed: true, pending });
        if *self.race == 2 {
            // Closed by another thread just after the ADD: the interest goes with the file.
            *self.race = 0;
            self.ep.remove(&fd);
            *self.raced = self.fds[fd as usize].take().map(|s| (fd, s));
        }
        true
    }
    fn modify(&mut self, fd: RawFd, watch: Watch, token: Token) -> bool {
        let (flags, token) = (flags_of(watch), token.0);
        let Some(s) = self.sock(fd).cloned() else { return false };
        match self.ep.get_mut(&fd) {
            Some(i) if i.cookie == s.cookie => {
                // EPOLL_CTL_MOD re-arms a one-shot interest and re-polls the file.
                i.flags = flags;
                i.token = token;
                i.armed = true;
                i.pending = reported(flags, s.revents) != 0;
                true
            }
            _ => false, // ENOENT: the number names another file now
        }
    }
    fn delete(&mut self, fd: RawFd) -> bool {
        let Some(cookie) = self.sock(fd).map(|s| s.cookie) else { return false };
        if self.ep.get(&fd).is_some_and(|i| i.cookie == cookie) {
            self.ep.remove(&fd);
            true
        } else {
            false
        }
    }
    fn sample(&mut self, fd: RawFd, cookie: u64) -> Option<Readiness> {
        let s = self.sock(fd)?;
        // poll(POLLIN|POLLOUT|POLLRDHUP) of a descriptor that names another file is still an
        // answer; the cookie check is the caller's contract.
        (s.socket && s.cookie == cookie).then_some(readiness_of(s.revents))
    }
    fn poll(&mut self, fd: RawFd) -> Option<Readiness> {
        self.sock(fd).map(|s| readiness_of(s.revents))
    }
    fn never_connected(&mut self, fd: RawFd) -> bool {
        self.sock(fd).is_some_and(|s| s.tcp && s.never_connected)
    }
    fn tcp_counters(&mut self, fd: RawFd) -> Option<TcpCounters> {
        self.sock(fd).filter(|s| s.tcp).map(|s| TcpCounters {
            received: s.counters.0,
            queued: s.counters.1,
            acked: s.counters.2,
        })
    }
}

struct FakeClaims<'a> {
    table: &'a mut HashMap<RawFd, (usize, u64)>,
    port: usize,
}

impl Claims for FakeClaims<'_> {
    fn claim(&mut self, fd: RawFd, cookie: u64) -> bool {
        match self.table.get(&fd) {
            Some(&(p, c)) if p != self.port && c == cookie => false,
            _ => {
                self.table.insert(fd, (self.port, cookie));
                true
            }
        }
    }
    fn release(&mut self, fd: RawFd, cookie: u64) {
        if self.table.get(&fd) == Some(&(self.port, cookie)) {
            self.table.remove(&fd);
        }
    }
}

macro_rules! split {
    ($w:expr, $p:expr) => {{
        let w = &mut *$w;
        (
            FakeKernel {
                fds: &mut w.fds,
                ep: &mut w.epolls[$p],
                fail_adds: &mut w.fail_adds,
                race: &mut w.race,
                raced: &mut w.raced,
            },
            FakeClaims { table: &mut w.claims, port: $p },
        )
    }};
}

// ------------------------------------------------------------------------------------------
// The reference model

#[derive(Clone, Debug)]
struct MReg {
    key: usize,
    fd: RawFd,
    remove_pending: bool,
    enabled: bool,
    filter: u32,
    trigger: u8,
}

#[derive(Default)]
struct Model {
    /// Per port: cookie → live registration (Enabled, Disabled or RemovePending).
    regs: Vec<HashMap<u64, MReg>>,
    /// Per port: every key a registration of that port ever had.
    issued: Vec<HashSet<usize>>,
    /// Keys that must never show up again.
    dead: HashSet<usize>,
    /// Keys of registrations dropped with their socket: packets still allowed (at most one).
    allowance: HashMap<usize, u32>,
    /// (port, cookie) whose epoll interest outlived a forgotten registration.
    leaked: HashSet<(usize, u64)>,
    /// Per port: posted packets not yet delivered, in order.
    posted: Vec<VecDeque<Completion>>,
    next_key: usize,
    next_post: usize,
}

impl Model {
    fn drop_reg(&mut self, port: usize, cookie: u64) {
        if let Some(r) = self.regs[port].remove(&cookie) {
            self.allowance.entry(r.key).or_insert(1);
        }
    }
}

/// Close-during-ADD races (another thread closes the socket while its entry is applied) are
/// injected unless SOCKNOTIFY_FUZZ_RACES=0. Before commit 2471d43 they found a core bug: a
/// close between `socket_info` and ADD gave WSAENOBUFS instead of WSAENOTSOCK, and one between
/// ADD and the ENABLE tripped `debug_assert!(ok)` in `Machine::apply_new`.
fn races_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SOCKNOTIFY_FUZZ_RACES").is_none_or(|v| v != "0"))
}

struct Fuzz {
    world: World,
    machines: Vec<Machine>,
    model: Model,
}

fn new_sock(cookie: u64, kind: u8) -> Sock {
    let (socket, stream, tcp) = match kind % 4 {
        0 => (true, true, true),    // TCP
        1 => (true, true, false),   // Unix stream
        2 => (true, false, false),  // UDP
        _ => (false, false, false), // a pipe: open, not a socket
    };
    Sock {
        cookie,
        socket,
        stream,
        tcp,
        // A fresh TCP socket says OUT|HUP (and maps to nothing, D19); the others are writable.
        revents: if tcp { EPOLLOUT | EPOLLHUP } else { EPOLLOUT },
        counters: (0, 0, 0),
        never_connected: false,
        ever_bad: tcp,
    }
}

fn revents_from(b: u8) -> u32 {
    let mut r = 0;
    for (bit, ev) in [(1, EPOLLIN), (2, EPOLLOUT), (4, EPOLLERR), (8, EPOLLHUP), (16, EPOLLRDHUP), (32, EPOLLIN)] {
        if b & bit != 0 {
            r |= ev;
        }
    }
    r
}

impl Fuzz {
    fn new() -> Fuzz {
        let mut world = World {
            fds: vec![None; FDS],
            next_cookie: 1,
            epolls: vec![BTreeMap::new(); PORTS],
            fail_adds: 0,
            claims: HashMap::new(),
            race: 0,
            raced: None,
        };
        // Start with a few open sockets.
        for (fd, kind) in [(0, 0u8), (1, 1), (2, 2), (3, 3)] {
            world.fds[fd] = Some(new_sock(world.next_cookie, kind));
            world.next_cookie += 1;
        }
        let model = Model {
            regs: vec![HashMap::new(); PORTS],
            issued: vec![HashSet::new(); PORTS],
            posted: vec![VecDeque::new(); PORTS],
            next_key: 1,
            next_post: 1,
            ..Model::default()
        };
        Fuzz { world, machines: (0..PORTS).map(|_| Machine::new()).collect(), model }
    }

    fn fd_from(&self, b: u8) -> RawFd {
        match b % 16 {
            n @ 0..=11 => RawFd::from(n) % FDS as RawFd,
            12 => -1,
            13 => 1 << 20,
            14 => RawFd::MAX,
            _ => FDS as RawFd, // never opened
        }
    }

    fn cur_cookie(&self, fd: RawFd) -> Option<u64> {
        let s = self.world.fds.get(usize::try_from(fd).ok()?)?.as_ref()?;
        s.socket.then_some(s.cookie)
    }

    fn predict(
        &self,
        port: usize,
        fd: RawFd,
        fd_valid: bool,
        op: u8,
        filter: u16,
        trigger: u8,
    ) -> Result<(), RegistrationError> {
        use RegistrationError::*;
        match op {
            0 => return Ok(()),
            1 | 2 | 4 => {}
            _ => return Err(InvalidArgument),
        }
        if !fd_valid || fd < 0 {
            return Err(NotASocket);
        }
        let Some(cookie) = self.cur_cookie(fd) else { return Err(NotASocket) };
        let flags_ok = op != 1
            || (Events::from_bits(u32::from(filter)).is_valid_filter() && Trigger::from_bits(trigger).is_valid());
        if !flags_ok {
            return Err(InvalidArgument);
        }
        if let Some(r) = self.model.regs[port].get(&cookie) {
            return if r.remove_pending { Err(RemovePending) } else { Ok(()) };
        }
        let other = (0..PORTS).any(|q| q != port && self.model.regs[q].contains_key(&cookie));
        if op == 4 {
            return Err(if other { OtherPort } else { NotFound });
        }
        if other {
            return Err(OtherPort);
        }
        Ok(())
    }

    fn apply(&mut self, port: usize, inp: &mut Input<'_>) {
        let fd = self.fd_from(inp.byte());
        let fd_valid = !inp.byte().is_multiple_of(16);
        let op = match inp.byte() % 8 {
            0 => 0,
            1 | 2 => 1,
            3 => 2,
            4 | 5 => 4,
            6 => 5,
            _ => inp.byte(),
        };
        let filter = match inp.byte() % 4 {
            0 => inp.u16(),
            _ => u16::from(inp.byte() & 7),
        };
        let trigger = match inp.byte() % 4 {
            0 => inp.byte(),
            n => [0x05, 0x06, 0x09, 0x0A, 0x04, 0x08][(usize::from(n) + usize::from(inp.byte())) % 6],
        };
        let key = self.model.next_key;
        self.model.next_key += 1;
        let expected = self.predict(port, fd, fd_valid, op, filter, trigger);
        let cookie = self.cur_cookie(fd);
        let leaked = cookie.is_some_and(|c| self.model.leaked.contains(&(port, c))) || self.world.fail_adds > 0;
        let (mut k, mut c) = split!(&mut self.world, port);
        let fd_arg = if fd_valid { Some(fd) } else { None };
        let got = self.machines[port].apply(fd_arg, key, Operation::from_windows(op, filter, trigger), &mut k, &mut c);
        self.world.race = 0;
        if let Some((rfd, sock)) = self.world.raced.take() {
            // The socket was closed by "another thread" during this entry: it either
            // succeeded (and the registration dies with the socket) or says NotASocket.
            assert!(
                got.is_ok() || got == Err(RegistrationError::NotASocket),
                "ENABLE/DISABLE racing a close of fd {rfd}: {got:?}"
            );
            if got.is_ok() {
                self.model.issued[port].insert(key);
                self.model.allowance.insert(key, 1);
            }
            self.forget_closed(rfd, sock);
            return;
        }
        let creating = expected.is_ok() && op != 0 && !cookie.is_some_and(|c| self.model.regs[port].contains_key(&c));
        if got != expected {
            // The one tolerated difference: an epoll interest that outlived a forgotten
            // registration makes the new ADD fail with EEXIST (see the report).
            let tolerated = leaked && creating && got == Err(RegistrationError::NoBuffers);
            assert!(tolerated, "apply(port {port}, fd {fd}, valid {fd_valid}, op {op}, filter {filter:#x}, trigger {trigger:#x}): got {got:?}, model says {expected:?}");
            return;
        }
        if got.is_err() || op == 0 {
            return;
        }
        let cookie = cookie.expect("a successful entry names a socket");
        if let Some(r) = self.model.regs[port].get_mut(&cookie) {
            match op {
                1 => {
                    r.enabled = true;
                    r.filter = u32::from(filter);
                    r.trigger = trigger;
                }
                2 => r.enabled = false,
                _ => r.remove_pending = true,
            }
        } else {
            assert!(creating);
            self.model.issued[port].insert(key);
            self.model.regs[port].insert(
                cookie,
                MReg {
                    key,
                    fd,
                    remove_pending: false,
                    enabled: op == 1,
                    filter: if op == 1 { u32::from(filter) } else { 0 },
                    trigger: if op == 1 { trigger } else { 0 },
                },
            );
        }
    }

    /// Fake `epoll_wait` on `port`: at most `max` events, then `on_event` for each.
    fn harvest(&mut self, port: usize, max: usize) {
        let mut events = Vec::new();
        for (&fd, i) in self.world.epolls[port].iter_mut() {
            if events.len() >= max {
                break;
            }
            let Some(s) = self.world.fds[fd as usize].as_ref() else { continue };
            assert_eq!(s.cookie, i.cookie, "an interest outlived its file");
            if !i.armed {
                continue;
            }
            let mask = reported(i.flags, s.revents);
            let fire = if i.flags & EPOLLET != 0 {
                let f = i.pending && mask != 0;
                i.pending = false;
                f
            } else {
                mask != 0
            };
            if fire {
                if i.flags & EPOLLONESHOT != 0 {
                    i.armed = false;
                }
                events.push((i.token, mask));
            }
        }
        let (mut k, mut c) = split!(&mut self.world, port);
        for (token, mask) in events {
            self.machines[port].on_event(Token(token), readiness_of(mask), &mut k, &mut c);
        }
    }

    /// Delivers up to `n` packets from `port` and checks each; returns the keys delivered.
    fn deliver(&mut self, port: usize, n: usize) -> Vec<usize> {
        let mut out = vec![Completion::with_internal(0xDEAD, 0xDEAD, 0xDEAD, 0xDEAD); n];
        let before = self.machines[port].queued();
        let (mut k, mut c) = split!(&mut self.world, port);
        let got = self.machines[port].deliver(&mut out, &mut k, &mut c);
        assert!(got <= n);
        assert!(before - self.machines[port].queued() >= got, "delivered more than was queued");
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for p in &out[..got] {
            if p.key() & POSTED != 0 {
                let want = self.model.posted[port].pop_front();
                assert_eq!(Some(*p), want, "posted packets come back unchanged and in order");
                continue;
            }
            let key = p.key();
            assert!(self.model.issued[port].contains(&key), "packet {p:?} with a key port {port} never issued");
            assert!(!self.model.dead.contains(&key), "packet {p:?} after REMOVE or port close");
            assert!(seen.insert(key), "two packets for one registration in one drain: {:?}", &out[..got]);
            assert_eq!((p.overlapped(), p.internal()), (0, 0), "D20: {p:?}");
            let ev = p.events();
            assert!(!ev.is_empty() && Events::ALL.contains(ev), "mask {ev:?}");
            if let Some(a) = self.model.allowance.get_mut(&key) {
                assert!(*a > 0, "second packet for key {key} after its socket was closed or forgotten");
                *a -= 1;
            }
            keys.push(key);
            if ev.contains(Events::REMOVE) {
                self.model.dead.insert(key);
                self.model.regs[port].retain(|_, r| r.key != key);
            } else if let Some(r) = self.model.regs[port].values_mut().find(|r| r.key == key) {
                assert!(!r.remove_pending, "a packet of a removed registration without REMOVE: {p:?}");
                if r.trigger & 0x01 != 0 {
                    r.enabled = false;
                }
            }
        }
        keys
    }

    fn close_fd(&mut self, fd: RawFd) {
        let Some(s) = self.world.fds.get_mut(fd as usize).and_then(Option::take) else { return };
        self.forget_closed(fd, s);
    }

    /// Bookkeeping for socket `s`, just closed at `fd`: its interests go, its registrations
    /// may deliver at most their queued packet.
    fn forget_closed(&mut self, fd: RawFd, s: Sock) {
        for ep in &mut self.world.epolls {
            if ep.get(&fd).is_some_and(|i| i.cookie == s.cookie) {
                ep.remove(&fd);
            }
        }
        for p in 0..PORTS {
            self.model.drop_reg(p, s.cookie);
            self.model.leaked.remove(&(p, s.cookie));
        }
    }

    fn check(&self) {
        for p in 0..PORTS {
            let m = &self.machines[p];
            let posted = self.model.posted[p].len();
            assert!(m.queued() >= posted, "port {p}: posted packets lost");
            assert!(m.queued() - posted <= m.registrations(), "port {p}: more notification packets than registrations");
            assert!(m.live() <= m.registrations());
            let model_regs = self.model.regs[p].len();
            let model_live = self.model.regs[p].values().filter(|r| !r.remove_pending).count();
            assert!(m.registrations() >= model_regs, "port {p}: {} < {model_regs}", m.registrations());
            assert!(m.live() >= model_live, "port {p}: live {} < {model_live}", m.live());
        }
        // D13: every live registration of an open socket holds the claim for it.
        for (p, regs) in self.model.regs.iter().enumerate() {
            for (&cookie, r) in regs {
                if self.cur_cookie(r.fd) == Some(cookie) {
                    assert_eq!(self.world.claims.get(&r.fd), Some(&(p, cookie)), "claim of key {}", r.key);
                }
            }
        }
    }

    /// Harvest and drain twice, then check LEVEL|PERSISTENT liveness.
    fn settle(&mut self, port: usize) {
        let mut keys = HashSet::new();
        for _ in 0..2 {
            self.harvest(port, usize::MAX);
            while self.machines[port].queued() > 0 {
                keys.extend(self.deliver(port, 64));
            }
        }
        assert_eq!(self.machines[port].queued(), self.model.posted[port].len());
        for (cookie, r) in &self.model.regs[port] {
            let level_persistent = r.trigger & 0x04 != 0 && r.trigger & 0x01 == 0;
            if !r.enabled || r.remove_pending || !level_persistent {
                continue;
            }
            let Some(s) = self.world.fds[r.fd as usize].as_ref() else { continue };
            if s.cookie != *cookie || s.ever_bad || self.model.leaked.contains(&(port, *cookie)) {
                continue;
            }
            let holds =
                (s.revents & EPOLLIN != 0 && r.filter & 1 != 0) || (s.revents & EPOLLOUT != 0 && r.filter & 2 != 0);
            assert!(
                !holds || keys.contains(&r.key),
                "LEVEL|PERSISTENT key {} (filter {:#x}) holds {:#x} but got no packet",
                r.key,
                r.filter,
                s.revents
            );
        }
    }

    fn step(&mut self, inp: &mut Input<'_>) {
        let port = usize::from(inp.byte() & 1);
        match inp.byte() % 16 {
            0..=3 => self.apply(port, inp),
            4 => {
                // Readiness change on a socket, with an epoll wake-up for edge interests.
                let fd = usize::from(inp.byte()) % FDS;
                let r = revents_from(inp.byte());
                let (dr, dq, da) = (u64::from(inp.byte() % 8), u64::from(inp.byte() % 8), u64::from(inp.byte() % 8));
                let nc = inp.byte() & 1 != 0;
                if let Some(s) = self.world.fds[fd].as_mut() {
                    s.revents = r;
                    s.ever_bad |= r & (EPOLLERR | EPOLLHUP | EPOLLRDHUP) != 0;
                    let (rec, q, ack) = s.counters;
                    s.counters = (rec + dr, (q + dr).saturating_sub(dq), ack + da);
                    s.never_connected = nc;
                    let cookie = s.cookie;
                    for ep in &mut self.world.epolls {
                        if let Some(i) = ep.get_mut(&(fd as RawFd)) {
                            if i.cookie == cookie && reported(i.flags, r) != 0 {
                                i.pending = true;
                            }
                        }
                    }
                }
            }
            5 | 6 => {
                let max = usize::from(inp.byte() % 4) + 1;
                self.harvest(port, max);
            }
            7 | 8 => {
                let n = usize::from(inp.byte() % 8) + 1;
                self.deliver(port, n);
            }
            9 => {
                // Plain close(): detected lazily by the machine.
                let fd = usize::from(inp.byte()) % FDS;
                self.close_fd(fd as RawFd);
            }
            10 => {
                // Open a descriptor on a free number (reuse of a closed number).
                let fd = usize::from(inp.byte()) % FDS;
                let kind = inp.byte();
                if self.world.fds[fd].is_none() {
                    let c = self.world.next_cookie;
                    self.world.next_cookie += 1;
                    self.world.fds[fd] = Some(new_sock(c, kind));
                }
            }
            11 => {
                // closesocket (forget_fd on every port, then close) or a bare forget_fd.
                let fd = self.fd_from(inp.byte());
                let bare = inp.byte().is_multiple_of(4);
                let cookie = self.cur_cookie(fd);
                for p in 0..PORTS {
                    let (mut k, mut c) = split!(&mut self.world, p);
                    self.machines[p].forget_fd(fd, &mut k, &mut c);
                    if let Some(cookie) = cookie {
                        if self.model.regs[p].contains_key(&cookie) {
                            self.model.drop_reg(p, cookie);
                            if bare && self.world.epolls[p].get(&fd).is_some_and(|i| i.cookie == cookie) {
                                self.model.leaked.insert((p, cookie));
                            }
                        }
                    }
                }
                if !bare && fd >= 0 && (fd as usize) < FDS {
                    self.close_fd(fd);
                }
            }
            12 => {
                let bytes = inp.u32();
                let ov = usize::from(inp.byte()) << 3;
                let internal = usize::from(inp.byte());
                let c = Completion::with_internal(POSTED | self.model.next_post, bytes, ov, internal);
                self.model.next_post += 1;
                self.machines[port].queue_posted(c);
                self.model.posted[port].push_back(c);
            }
            13 => {
                // The port is closed: everything goes, nothing of it is ever seen again.
                let w = &mut self.world;
                self.machines[port].clear(&mut FakeClaims { table: &mut w.claims, port });
                assert_eq!(
                    (self.machines[port].queued(), self.machines[port].registrations(), self.machines[port].live()),
                    (0, 0, 0)
                );
                assert!(!w.claims.values().any(|&(p, _)| p == port), "a closed port still claims a socket");
                let keys: Vec<usize> = self.model.issued[port].iter().copied().collect();
                self.model.dead.extend(keys);
                self.model.regs[port].clear();
                self.model.posted[port].clear();
                self.model.leaked.retain(|&(p, _)| p != port);
                // A closed port is never used again; model "a new port" with a new epoll set.
                self.world.epolls[port].clear();
            }
            14 => match inp.byte() % 4 {
                0 | 1 => self.machines[port].new_epoch(),
                2 => self.world.fail_adds = u32::from(inp.byte() % 3),
                _ => {
                    let b = inp.byte();
                    if races_enabled() {
                        self.world.race = 1 + b % 2;
                    }
                }
            },
            _ => {
                if inp.byte() & 1 != 0 {
                    self.settle(port);
                } else {
                    // A stale or foreign token: must be ignored.
                    // Generation 0 is never issued (generations start at 1).
                    let token = u64::from(inp.u32());
                    let (mut k, mut c) = split!(&mut self.world, port);
                    self.machines[port].on_event(Token(token), readiness_of(revents_from(inp.byte())), &mut k, &mut c);
                }
            }
        }
        self.check();
    }
}

/// Runs one input (the fuzz target's body).
pub fn run(data: &[u8]) {
    let mut inp = Input { data };
    let mut f = Fuzz::new();
    let mut steps = 0;
    while !inp.empty() && steps < 400 {
        f.step(&mut inp);
        steps += 1;
    }
    for p in 0..PORTS {
        f.world.fail_adds = 0;
        f.settle(p);
    }
}
