//! Multi-threaded randomized test (issue 8): workers send random batches (several entries,
//! the same socket more than once, ENABLE LEVEL/EDGE ONESHOT/PERSISTENT, DISABLE, REMOVE;
//! applied alone or with a dequeue), write to and read from their sockets, post packets,
//! close sockets with `socknotify::close_socket` and with plain `close()`, put new sockets
//! (TCP, UDP, Unix stream) at the number of a closed one with `dup2`, while other threads
//! dequeue. What it does is random; what it asserts holds whatever the interleaving:
//!
//! * every entry's result is the one Windows' rules give (each worker owns its sockets, so it
//!   knows their registrations; after an accepted REMOVE it leaves the socket alone until the
//!   REMOVE packet was dequeued or closes it);
//! * every notification carries the key of a registration (each entry carries a key never
//!   used before; only an entry that creates a registration gives its key to packets): a
//!   reused number never gets an old key, and a re-ENABLE never changes the key (D15, D21);
//! * exactly one REMOVE packet per accepted REMOVE, none for any other registration, and
//!   nothing for a key after its REMOVE packet;
//! * a ONESHOT registration is delivered at most once per ENABLE (never twice without a
//!   re-ENABLE in between);
//! * after its socket is closed, a registration delivers at most the one packet that was
//!   queued (D21);
//! * every posted packet is dequeued exactly once, exactly as posted, and two posts of one
//!   thread never come out in the opposite order.
//!
//! "Before" and "after" across threads come from one atomic counter read before each call
//! starts and after it returns: a violation is only reported when the order is certain.
//!
//! `SOCKNOTIFY_RANDOM_SECS` (default 3) sets how long the workers run; `SOCKNOTIFY_SEED`
//! replays a seed (the seed is printed, and every failure message names it).

use socknotify::winsock::*;
use socknotify::{Completion, CompletionPort, Events, Operation, Registration, Trigger};
use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 3;
const DEQUEUERS: usize = 2;
const SLOTS: usize = 6;
/// Keys of posted packets start here; registration entry keys stay below.
const POST_KEY: usize = 1 << 40;

/// splitmix64: small, seedable, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// What every thread shares.
struct Shared {
    port: CompletionPort,
    seed: u64,
    /// Orders calls across threads (read before a call starts and after it returns).
    clock: AtomicU64,
    next_key: AtomicUsize,
    /// Keys whose REMOVE packet has been dequeued.
    removed: Mutex<HashSet<usize>>,
    stop: AtomicBool,
}

impl Shared {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
    fn key(&self) -> usize {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }
}

/// One dequeue (or call with a dequeue) and what it returned.
struct Delivery {
    before: u64,
    after: u64,
    packets: Vec<Completion>,
}

/// What a worker knows about a registration it created.
#[derive(Clone, Debug)]
struct RegRecord {
    key: usize,
    oneshot: bool,
    /// Accepted ENABLE entries.
    arms: usize,
    /// REMOVE accepted.
    removed: bool,
    /// Clock value after the socket was closed.
    closed_at: Option<u64>,
    /// How the socket was closed: `close_socket`, a plain `close()`, or a `dup2` over its number.
    closed_by: &'static str,
}

/// A posted packet.
#[derive(Clone, Copy, Debug)]
struct Post {
    packet: Completion,
    thread: usize,
    serial: usize,
}

/// Everything a thread saw, merged after the run.
#[derive(Default)]
struct Log {
    deliveries: Vec<Delivery>,
    regs: Vec<RegRecord>,
    posts: Vec<Post>,
    errors: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Tcp,
    Udp,
    Unix,
}

/// The peer of one of our sockets (it writes to ours).
enum Peer {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Unix(UnixStream),
}

/// The registration of a slot's socket, as its worker knows it.
struct View {
    /// Index in the worker's `Log::regs`.
    rec: usize,
    key: usize,
    oneshot: bool,
    remove_pending: bool,
}

struct Slot {
    fd: OwnedFd,
    kind: Kind,
    peer: Peer,
    peer_shut: bool,
    reg: Option<View>,
}

fn new_socket(rng: &mut Rng, listener: &TcpListener) -> (OwnedFd, Kind, Peer) {
    match rng.below(3) {
        0 => {
            let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (s, _) = listener.accept().unwrap();
            s.set_nonblocking(true).unwrap();
            c.set_nonblocking(true).unwrap();
            c.set_nodelay(true).unwrap();
            (s.into(), Kind::Tcp, Peer::Tcp(c))
        }
        1 => {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.connect(b.local_addr().unwrap()).unwrap();
            b.connect(a.local_addr().unwrap()).unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            (a.into(), Kind::Udp, Peer::Udp(b))
        }
        _ => {
            let (a, b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            (a.into(), Kind::Unix, Peer::Unix(b))
        }
    }
}

/// The entries a worker can send for one of its slots.
#[derive(Clone, Copy, Debug)]
enum Op {
    Enable(Events, Trigger),
    Disable,
    Remove,
}

struct Worker {
    id: usize,
    sh: Arc<Shared>,
    rng: Rng,
    listener: TcpListener,
    slots: Vec<Slot>,
    log: Log,
    posts: usize,
}

impl Worker {
    fn fail(&mut self, msg: String) {
        if self.log.errors.len() < 20 {
            self.log.errors.push(format!("worker {}: {msg}", self.id));
        }
    }

    /// A slot whose registration waits for its REMOVE packet is usable again once the packet
    /// was dequeued: the registration is gone.
    fn refresh(&mut self, s: usize) {
        let removed = self.sh.removed.lock().unwrap();
        if let Some(v) = &self.slots[s].reg {
            if v.remove_pending && removed.contains(&v.key) {
                self.slots[s].reg = None;
            }
        }
    }

    fn usable(&self, s: usize) -> bool {
        !self.slots[s].reg.as_ref().is_some_and(|v| v.remove_pending)
    }

    fn random_op(&mut self) -> Op {
        match self.rng.below(10) {
            0..=5 => {
                let filter = Events::from_bits(self.rng.below(8) as u32);
                let level = if self.rng.chance(60) { Trigger::LEVEL } else { Trigger::EDGE };
                let once = if self.rng.chance(50) { Trigger::ONESHOT } else { Trigger::PERSISTENT };
                Op::Enable(filter, level | once)
            }
            6 | 7 => Op::Disable,
            _ => Op::Remove,
        }
    }

    /// One call with 1–4 entries for this worker's usable slots; checks every result against
    /// the worker's view and updates it.
    fn batch(&mut self) {
        for s in 0..SLOTS {
            self.refresh(s);
        }
        let usable: Vec<usize> = (0..SLOTS).filter(|&s| self.usable(s)).collect();
        if usable.is_empty() {
            return;
        }
        let n = 1 + self.rng.below(4);
        let mut plan: Vec<(usize, Op, usize)> = Vec::new();
        for _ in 0..n {
            // Often the same socket again.
            let s = match plan.last() {
                Some(&(last, _, _)) if self.rng.chance(40) => last,
                _ => usable[self.rng.below(usable.len())],
            };
            let op = self.random_op();
            plan.push((s, op, self.sh.key()));
        }
        // Expected results, entry by entry, from the worker's view (spec §4.3, D11-D15). A
        // registration's one-shot mode is fixed at creation; later ENABLEs keep it.
        let mut want = Vec::new();
        let mut ops = Vec::new();
        for &(s, op, key) in &plan {
            let slot = &mut self.slots[s];
            let (code, op) = match (&mut slot.reg, op) {
                (Some(v), _) if v.remove_pending => (WSAEALREADY, op),
                (Some(v), Op::Enable(ev, t)) => {
                    // LEVEL or EDGE as drawn; ONESHOT or PERSISTENT as the registration is.
                    let once = if v.oneshot { Trigger::ONESHOT } else { Trigger::PERSISTENT };
                    let t = Trigger::from_bits(t.bits() & (Trigger::LEVEL | Trigger::EDGE).bits()) | once;
                    self.log.regs[v.rec].arms += 1;
                    (ERROR_SUCCESS, Op::Enable(ev, t))
                }
                (Some(_), Op::Disable) => (ERROR_SUCCESS, op),
                (Some(v), Op::Remove) => {
                    v.remove_pending = true;
                    self.log.regs[v.rec].removed = true;
                    (ERROR_SUCCESS, op)
                }
                (None, Op::Remove) => (ERROR_NOT_FOUND, op),
                (None, op) => {
                    let oneshot = match op {
                        Op::Enable(_, t) => t.is_oneshot(),
                        _ => self.rng.chance(50),
                    };
                    let arms = usize::from(matches!(op, Op::Enable(..)));
                    self.log.regs.push(RegRecord {
                        key,
                        oneshot,
                        arms,
                        removed: false,
                        closed_at: None,
                        closed_by: "",
                    });
                    slot.reg = Some(View { rec: self.log.regs.len() - 1, key, oneshot, remove_pending: false });
                    (ERROR_SUCCESS, op)
                }
            };
            want.push(code);
            ops.push(op);
        }
        let mut regs: Vec<Registration<'_>> = plan
            .iter()
            .zip(&ops)
            .map(|(&(s, _, key), op)| {
                let fd = &self.slots[s].fd;
                match *op {
                    Op::Enable(ev, t) => Registration::enable(fd, key, ev, t),
                    Op::Disable => Registration::new(fd, key, Operation::Disable),
                    Op::Remove => Registration::new(fd, key, Operation::Remove),
                }
            })
            .collect();
        let mut out = [Completion::default(); 16];
        let (room, timeout) = match self.rng.below(3) {
            0 => (0, Duration::ZERO),
            1 => (1 + self.rng.below(16), Duration::ZERO),
            _ => (1 + self.rng.below(16), Duration::from_millis(1 + self.rng.below(5) as u64)),
        };
        let before = self.sh.tick();
        let r = self.sh.port.process(&mut regs, &mut out[..room], Some(timeout));
        let after = self.sh.tick();
        let got: Vec<u32> = regs.iter().map(Registration::result_code).collect();
        drop(regs);
        match r {
            Ok(n) => {
                let packets = out[..n].to_vec();
                note_removes(&self.sh, &packets);
                self.log.deliveries.push(Delivery { before, after, packets });
            }
            Err(e) => self.fail(format!("process failed: {e}")),
        }
        if got != want {
            let entries: Vec<String> =
                plan.iter().zip(&ops).map(|((s, _, k), op)| format!("slot {s} key {k} {op:?}")).collect();
            self.fail(format!("results {got:?}, want {want:?} for [{}]", entries.join(", ")));
        }
    }

    fn peer_write(&mut self, s: usize) {
        let n = 1 + self.rng.below(64);
        let data = vec![0x42u8; n];
        let slot = &mut self.slots[s];
        if slot.peer_shut {
            return;
        }
        let r = match &slot.peer {
            Peer::Tcp(p) => (&*p).write(&data).map(|_| ()),
            Peer::Udp(p) => p.send(&data).map(|_| ()),
            Peer::Unix(p) => (&*p).write(&data).map(|_| ()),
        };
        if let Err(e) = r {
            if e.kind() != ErrorKind::WouldBlock {
                let msg = format!("peer write on slot {s}: {e}");
                self.fail(msg);
            }
        }
    }

    fn read(&mut self, s: usize) {
        let all = self.rng.chance(70);
        let mut buf = [0u8; 4096];
        let fd = self.slots[s].fd.as_raw_fd();
        loop {
            // SAFETY: buf is valid for its length; fd is open (owned by the slot).
            let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), if all { buf.len() } else { 7 }, 0) };
            if r <= 0 || !all {
                break;
            }
        }
    }

    /// Closes slot `s`'s socket: with `close_socket`, with a plain close, or by putting a new
    /// socket at its number (`dup2`). The slot then holds a new socket.
    fn close(&mut self, s: usize) {
        let how = self.rng.below(3);
        let (new, kind, peer) = new_socket(&mut self.rng, &self.listener);
        let slot = &mut self.slots[s];
        let old = std::mem::replace(&mut slot.fd, new);
        match how {
            0 => socknotify::close_socket(old),
            1 => drop(old),
            _ => {
                // The new socket goes to the old number, which keeps naming it; dup2 closes
                // the old socket (no closesocket).
                // SAFETY: both descriptors are open and owned here.
                let rc = unsafe { libc::dup2(slot.fd.as_raw_fd(), old.as_raw_fd()) };
                assert_eq!(rc, old.as_raw_fd(), "dup2");
                slot.fd = old;
            }
        }
        let at = self.sh.tick();
        slot.kind = kind;
        slot.peer = peer;
        slot.peer_shut = false;
        if let Some(v) = slot.reg.take() {
            self.log.regs[v.rec].closed_at = Some(at);
            self.log.regs[v.rec].closed_by = ["close_socket", "plain close()", "dup2 over its number"][how];
        }
    }

    fn post(&mut self) {
        let serial = self.posts;
        self.posts += 1;
        let key = POST_KEY + (self.id << 24) + serial;
        let packet = Completion::with_internal(key, (serial as u32) ^ 0xA5A5_0000, key ^ 0x77, serial ^ 0x1234);
        match self.sh.port.post(packet) {
            Ok(()) => self.log.posts.push(Post { packet, thread: self.id, serial }),
            Err(e) => self.fail(format!("post failed: {e}")),
        }
    }

    fn dequeue(&mut self) {
        let mut out = [Completion::default(); 8];
        let room = 1 + self.rng.below(8);
        let before = self.sh.tick();
        let r = self.sh.port.dequeue(&mut out[..room], Some(Duration::ZERO));
        let after = self.sh.tick();
        match r {
            Ok(n) => {
                note_removes(&self.sh, &out[..n]);
                self.log.deliveries.push(Delivery { before, after, packets: out[..n].to_vec() });
            }
            Err(e) => self.fail(format!("dequeue failed: {e}")),
        }
    }

    fn run(mut self) -> Log {
        while !self.sh.stop.load(Ordering::Relaxed) {
            let s = self.rng.below(SLOTS);
            match self.rng.below(20) {
                0..=7 => self.batch(),
                8..=10 => self.peer_write(s),
                11 | 12 => self.read(s),
                13 => self.post(),
                14 | 15 => self.close(s),
                16 => {
                    if let (Kind::Tcp, Peer::Tcp(p)) = (self.slots[s].kind, &self.slots[s].peer) {
                        let _ = p.shutdown(std::net::Shutdown::Write);
                        self.slots[s].peer_shut = true;
                    }
                }
                _ => self.dequeue(),
            }
        }
        // End every registration: REMOVE what is live (its REMOVE packet ends the key).
        for s in 0..SLOTS {
            self.refresh(s);
            let Some(v) = &mut self.slots[s].reg else { continue };
            if v.remove_pending {
                continue;
            }
            v.remove_pending = true;
            self.log.regs[v.rec].removed = true;
            let mut r = [Registration::remove(&self.slots[s].fd)];
            self.sh.port.process(&mut r, &mut [], Some(Duration::ZERO)).unwrap();
            if r[0].result_code() != ERROR_SUCCESS {
                let msg = format!("final REMOVE of slot {s}: {}", r[0].result_code());
                self.fail(msg);
            }
        }
        self.log
    }
}

fn note_removes(sh: &Shared, packets: &[Completion]) {
    let keys: Vec<usize> =
        packets.iter().filter(|c| c.key() < POST_KEY && c.events().contains(Events::REMOVE)).map(|c| c.key()).collect();
    if !keys.is_empty() {
        sh.removed.lock().unwrap().extend(keys);
    }
}

fn dequeuer(sh: Arc<Shared>, seed: u64) -> Log {
    let mut rng = Rng(seed);
    let mut log = Log::default();
    let mut out = [Completion::default(); 16];
    while !sh.stop.load(Ordering::Relaxed) {
        let room = 1 + rng.below(16);
        let timeout = Duration::from_millis(rng.below(20) as u64);
        let before = sh.tick();
        let r = sh.port.dequeue(&mut out[..room], Some(timeout));
        let after = sh.tick();
        match r {
            Ok(n) => {
                note_removes(&sh, &out[..n]);
                log.deliveries.push(Delivery { before, after, packets: out[..n].to_vec() });
            }
            Err(e) => {
                log.errors.push(format!("dequeuer: {e}"));
                break;
            }
        }
    }
    log
}

/// Checks the invariants of the file's doc over everything the threads saw.
fn check(logs: Vec<Log>) -> Vec<String> {
    let mut errors: Vec<String> = logs.iter().flat_map(|l| l.errors.iter().cloned()).collect();
    let regs: HashMap<usize, RegRecord> = logs.iter().flat_map(|l| l.regs.iter().map(|r| (r.key, r.clone()))).collect();
    let posts: HashMap<usize, Post> = logs.iter().flat_map(|l| l.posts.iter().map(|p| (p.packet.key(), *p))).collect();
    let deliveries: Vec<&Delivery> = logs.iter().flat_map(|l| l.deliveries.iter()).collect();

    // Per key: (delivery index, position in it, packet).
    let mut by_key: HashMap<usize, Vec<(usize, usize, Completion)>> = HashMap::new();
    for (d, del) in deliveries.iter().enumerate() {
        for (i, c) in del.packets.iter().enumerate() {
            by_key.entry(c.key()).or_default().push((d, i, *c));
        }
    }
    let mut err = |m: String| {
        if errors.len() < 40 {
            errors.push(m);
        }
    };

    // Posted packets: each exactly once, as posted; one thread's posts never reversed.
    for (key, p) in &posts {
        match by_key.get(key).map(Vec::as_slice) {
            Some([(_, _, c)]) if *c == p.packet => {}
            other => err(format!("posted {:?} dequeued as {other:?}", p.packet)),
        }
    }
    let mut seen_posts: Vec<(&Post, &Delivery, usize)> = Vec::new();
    for (key, v) in &by_key {
        if *key >= POST_KEY {
            if !posts.contains_key(key) {
                err(format!("a packet with key {key:#x} that nobody posted: {v:?}"));
            }
            if let (Some(p), Some(&(d, i, _))) = (posts.get(key), v.first()) {
                seen_posts.push((p, deliveries[d], i));
            }
        }
    }
    seen_posts.sort_by_key(|(p, _, _)| (p.thread, p.serial));
    for w in seen_posts.windows(2) {
        let ((p1, d1, i1), (p2, d2, i2)) = (w[0], w[1]);
        if p1.thread != p2.thread {
            continue;
        }
        let reversed = d2.after < d1.before || (std::ptr::eq(d1, d2) && i2 < i1);
        if reversed {
            err(format!(
                "posts {} and {} of thread {} came out in the opposite order",
                p1.serial, p2.serial, p1.thread
            ));
        }
    }

    // Notifications.
    for (key, v) in &by_key {
        if *key >= POST_KEY {
            continue;
        }
        let Some(r) = regs.get(key) else {
            let first: Vec<Completion> = v.iter().take(3).map(|x| x.2).collect();
            err(format!(
                "{} packets with key {key}, which is no registration's (an entry's key that did not create one), first {first:?}",
                v.len()
            ));
            continue;
        };
        for &(_, _, c) in v {
            if c.events().bits() & !Events::ALL.bits() != 0 || c.overlapped() != 0 || c.internal() != 0 {
                err(format!("key {key}: malformed notification {c:?}"));
            }
        }
        let removes: Vec<&(usize, usize, Completion)> =
            v.iter().filter(|(_, _, c)| c.events().contains(Events::REMOVE)).collect();
        if removes.len() != usize::from(r.removed) {
            err(format!("key {key}: {} REMOVE packets, {} accepted REMOVE", removes.len(), usize::from(r.removed)));
        }
        if let Some(&&(rd, ri, _)) = removes.first() {
            let rdel = deliveries[rd];
            for &(d, i, c) in v {
                let after_remove = (d == rd && i > ri) || deliveries[d].before > rdel.after;
                if after_remove && !c.events().contains(Events::REMOVE) {
                    err(format!("key {key}: {c:?} dequeued after its REMOVE packet"));
                }
            }
        }
        let others = v.iter().filter(|(_, _, c)| !c.events().contains(Events::REMOVE)).count();
        if r.oneshot && others > r.arms {
            err(format!("key {key} (ONESHOT): {others} packets for {} ENABLEs", r.arms));
        }
        // Whatever the close (`close_socket`, plain `close()`, a `dup2` over the number): the
        // registration ends with it, and only the packet it already had comes out (D21). A
        // plain close is noticed lazily, but the kernel forgets the closed socket at once, so
        // nothing new can be collected for it.
        if let Some(at) = r.closed_at {
            let late: Vec<Completion> = v.iter().filter(|&&(d, _, _)| deliveries[d].before > at).map(|x| x.2).collect();
            if late.len() > 1 {
                err(format!(
                    "key {key}: {} packets after its socket was closed ({}): {late:?}",
                    late.len(),
                    r.closed_by
                ));
            }
        }
    }
    errors
}

#[test]
fn random_batches_closes_reuses_and_posts_across_threads_keep_every_invariant() {
    let seed = std::env::var("SOCKNOTIFY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let secs: f64 = std::env::var("SOCKNOTIFY_RANDOM_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    // Plain close() and reused numbers break closes_through_port's promise: keep the default.
    let port = CompletionPort::builder().closes_through_port(false).build().expect("the port");
    eprintln!("random_mt: SOCKNOTIFY_SEED={seed} SOCKNOTIFY_RANDOM_SECS={secs} backend {:?}", port.backend());
    let sh = Arc::new(Shared {
        port,
        seed,
        clock: AtomicU64::new(0),
        next_key: AtomicUsize::new(1),
        removed: Mutex::new(HashSet::new()),
        stop: AtomicBool::new(false),
    });
    let mut workers = Vec::new();
    for id in 0..WORKERS {
        let sh = sh.clone();
        let mut rng = Rng(seed ^ (0x1000 + id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let slots = (0..SLOTS)
            .map(|_| {
                let (fd, kind, peer) = new_socket(&mut rng, &listener);
                Slot { fd, kind, peer, peer_shut: false, reg: None }
            })
            .collect();
        let w = Worker { id, sh, rng, listener, slots, log: Log::default(), posts: 0 };
        workers.push(std::thread::Builder::new().name(format!("worker {id}")).spawn(move || w.run()).unwrap());
    }
    let dequeuers: Vec<_> = (0..DEQUEUERS)
        .map(|k| {
            let sh = sh.clone();
            let s = seed ^ (0x2000 + k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            std::thread::Builder::new().name(format!("dequeuer {k}")).spawn(move || dequeuer(sh, s)).unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    sh.stop.store(true, Ordering::Relaxed);
    let mut logs: Vec<Log> = workers.into_iter().map(|h| h.join().expect("worker panicked")).collect();
    logs.extend(dequeuers.into_iter().map(|h| h.join().expect("dequeuer panicked")));
    // Drain: every registration was removed, so the port falls quiet.
    let mut drain = Log::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = [Completion::default(); 64];
    loop {
        let before = sh.tick();
        let n = sh.port.dequeue(&mut out, Some(Duration::from_millis(200))).unwrap();
        let after = sh.tick();
        if n == 0 {
            break;
        }
        drain.deliveries.push(Delivery { before, after, packets: out[..n].to_vec() });
        if Instant::now() > deadline {
            drain.errors.push("the port did not fall quiet within 10 s after the run".to_string());
            break;
        }
    }
    logs.push(drain);
    let packets: usize = logs.iter().flat_map(|l| &l.deliveries).map(|d| d.packets.len()).sum();
    let regs: usize = logs.iter().map(|l| l.regs.len()).sum();
    eprintln!("random_mt: {regs} registrations, {packets} packets dequeued");
    let errors = check(logs);
    assert!(
        errors.is_empty(),
        "seed {} (replay: SOCKNOTIFY_SEED={} SOCKNOTIFY_RANDOM_SECS={secs}), {} violations:\n{}",
        sh.seed,
        sh.seed,
        errors.len(),
        errors.join("\n")
    );
    assert!(regs > 0 && packets > 0, "seed {}: the run did nothing", sh.seed);
}
