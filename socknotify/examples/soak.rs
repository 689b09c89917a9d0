//! Soak run: many threads and thousands of TCP loopback connections churning through one
//! completion port for a bounded time (connect, echo, close; the server REMOVEs each
//! connection, or closes it with `close_socket`), with posted packets mixed in. Every
//! invariant is checked as it happens and again at the end; the run prints what it churned.
//!
//! ```text
//! cargo run --release -p socknotify --example soak -- [--seconds 120] [--workers 4]
//!     [--clients 8] [--per-client 250]
//! ```
//! (`scripts/soak.sh` runs it.) Exit status 0 only if every check passed. Traffic goes to
//! 127.0.0.1 only; every loop is bounded in count and in time.
//!
//! Checked: each packet goes to exactly one worker; a LEVEL|ONESHOT registration never fires
//! twice without a re-arm; REMOVE comes exactly once, only after a REMOVE, and nothing comes
//! after it; nothing comes after `close_socket`; every byte a client sends comes back intact;
//! every posted packet arrives once, unchanged; at the end every connection was removed or
//! closed, the port holds only the listener, and after its REMOVE nothing at all.

use socket2::{Domain, SockRef, Socket, Type};
use socknotify::{Completion, CompletionPort, Error, Events, Registration, Trigger};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const LISTENER: usize = 0;
const POST_KEY: usize = 1 << 40;

const ARMED: u8 = 0;
const IN_FLIGHT: u8 = 1;
const REMOVING: u8 = 2;
const DONE: u8 = 3;

struct Conn {
    sock: TcpStream,
    state: AtomicU8,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    churned: AtomicU64,
    packets: AtomicU64,
    removes: AtomicU64,
    closed_directly: AtomicU64,
    posted: AtomicU64,
    echoed: AtomicU64,
    client_errors: AtomicU64,
}

struct Shared {
    port: CompletionPort,
    listener: TcpListener,
    listener_state: AtomicU8,
    conns: Mutex<HashMap<usize, Arc<Conn>>>,
    next_key: AtomicUsize,
    posted_seen: Mutex<Vec<u8>>,
    stats: Stats,
    violations: Mutex<Vec<String>>,
    stop_workers: AtomicBool,
    /// The listener is about to be removed: no more re-arms.
    closing_listener: AtomicBool,
}

impl Shared {
    fn violation(&self, msg: String) {
        let mut v = self.violations.lock().unwrap();
        if v.len() < 50 {
            eprintln!("VIOLATION: {msg}");
            v.push(msg);
        }
    }
}

/// What a worker does with a connection in its next call.
enum Next {
    Rearm(Arc<Conn>, usize),
    Remove(Arc<Conn>, usize),
    Register(Arc<Conn>, usize),
    Listener,
}

fn worker(sh: Arc<Shared>, id: usize) {
    let mut out = [Completion::default(); 64];
    let mut next: Vec<Next> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let batch = std::mem::take(&mut next);
        let mut regs: Vec<Registration<'_>> = batch
            .iter()
            .map(|n| match n {
                Next::Rearm(c, k) | Next::Register(c, k) => {
                    c.state.store(ARMED, Ordering::SeqCst);
                    Registration::enable(&c.sock, *k, Events::IN | Events::HANGUP, Trigger::LEVEL_ONESHOT)
                }
                Next::Remove(c, _) => {
                    c.state.store(REMOVING, Ordering::SeqCst);
                    Registration::remove(&c.sock)
                }
                Next::Listener => {
                    sh.listener_state.store(ARMED, Ordering::SeqCst);
                    Registration::enable(&sh.listener, LISTENER, Events::IN, Trigger::LEVEL_ONESHOT)
                }
            })
            .collect();
        let stopping = sh.stop_workers.load(Ordering::SeqCst);
        let timeout = if stopping { Duration::ZERO } else { Duration::from_millis(50) };
        let n = match sh.port.process(&mut regs, &mut out, Some(timeout)) {
            Ok(n) => n,
            Err(Error::Abandoned) | Err(Error::InvalidHandle) => return,
            Err(e) => {
                sh.violation(format!("worker {id}: call failed: {e}"));
                return;
            }
        };
        for (r, b) in regs.iter().zip(&batch) {
            if let Err(e) = r.result() {
                let k = match b {
                    Next::Rearm(_, k) | Next::Remove(_, k) | Next::Register(_, k) => *k,
                    Next::Listener => LISTENER,
                };
                sh.violation(format!("worker {id}: registration of key {k} failed: {e}"));
            }
        }
        drop(regs);
        drop(batch);
        if n == 0 && stopping {
            return;
        }
        for c in &out[..n] {
            let key = c.key();
            if key >= POST_KEY {
                let p = key - POST_KEY;
                if c.bytes() != p as u32 || c.overlapped() != p.wrapping_mul(3) {
                    sh.violation(format!("posted packet {p} changed: {c:?}"));
                }
                let mut seen = sh.posted_seen.lock().unwrap();
                if seen.len() <= p || seen[p] != 0 {
                    sh.violation(format!("posted packet {p} unknown or delivered twice"));
                } else {
                    seen[p] = 1;
                }
                continue;
            }
            sh.stats.packets.fetch_add(1, Ordering::Relaxed);
            let ev = c.events();
            if key == LISTENER {
                if ev.contains(Events::REMOVE) {
                    if !sh.closing_listener.load(Ordering::SeqCst)
                        || sh.listener_state.swap(DONE, Ordering::SeqCst) == DONE
                    {
                        sh.violation(format!("unexpected listener REMOVE {ev:?}"));
                    }
                    continue;
                }
                if sh.listener_state.compare_exchange(ARMED, IN_FLIGHT, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                    sh.violation(format!("listener packet {ev:?} while not armed"));
                }
                loop {
                    match sh.listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true).unwrap();
                            s.set_nodelay(true).unwrap();
                            let k = sh.next_key.fetch_add(1, Ordering::Relaxed);
                            let conn = Arc::new(Conn { sock: s, state: AtomicU8::new(ARMED) });
                            sh.conns.lock().unwrap().insert(k, conn.clone());
                            sh.stats.accepted.fetch_add(1, Ordering::Relaxed);
                            next.push(Next::Register(conn, k));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                        Err(e) => {
                            sh.violation(format!("accept: {e}"));
                            break;
                        }
                    }
                }
                if !sh.closing_listener.load(Ordering::SeqCst) {
                    next.push(Next::Listener);
                }
                continue;
            }
            let conn = match sh.conns.lock().unwrap().get(&key) {
                Some(c) => c.clone(),
                None => {
                    sh.violation(format!("packet {ev:?} for key {key} after its connection was closed"));
                    continue;
                }
            };
            if ev.contains(Events::REMOVE) {
                sh.stats.removes.fetch_add(1, Ordering::Relaxed);
                if conn.state.compare_exchange(REMOVING, DONE, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                    sh.violation(format!("REMOVE for key {key} in state {}", conn.state.load(Ordering::SeqCst)));
                }
                sh.conns.lock().unwrap().remove(&key);
                sh.stats.churned.fetch_add(1, Ordering::Relaxed);
                continue; // the socket closes when the last Arc goes
            }
            match conn.state.compare_exchange(ARMED, IN_FLIGHT, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {}
                Err(s) => {
                    sh.violation(format!("packet {ev:?} for key {key} in state {s}: twice, or after REMOVE"));
                    continue;
                }
            }
            // Echo everything there is; EOF or an error ends the connection.
            let mut ended = false;
            loop {
                match (&conn.sock).read(&mut buf) {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(m) => {
                        let mut off = 0;
                        let t = Instant::now();
                        while off < m {
                            match (&conn.sock).write(&buf[off..m]) {
                                Ok(w) => off += w,
                                Err(e) if e.kind() == ErrorKind::WouldBlock && t.elapsed() < Duration::from_secs(5) => {
                                    thread::yield_now()
                                }
                                Err(_) => {
                                    ended = true;
                                    break;
                                }
                            }
                        }
                        sh.stats.echoed.fetch_add(off as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        ended = true;
                        break;
                    }
                }
            }
            if !ended {
                next.push(Next::Rearm(conn, key));
            } else if key % 4 == 0 {
                // Close without REMOVE (D21): nothing may come for this key any more.
                sh.conns.lock().unwrap().remove(&key);
                conn.state.store(DONE, Ordering::SeqCst);
                sh.stats.closed_directly.fetch_add(1, Ordering::Relaxed);
                sh.stats.churned.fetch_add(1, Ordering::Relaxed);
                // The worker that registered it may still hold its batch for a moment.
                let mut conn = conn;
                let t = Instant::now();
                loop {
                    match Arc::try_unwrap(conn) {
                        Ok(c) => {
                            socknotify::close_socket(c.sock);
                            break;
                        }
                        Err(c) if t.elapsed() < Duration::from_secs(5) => {
                            conn = c;
                            thread::yield_now();
                        }
                        Err(_) => {
                            sh.violation(format!("key {key}: connection still shared 5 s after its end"));
                            break;
                        }
                    }
                }
            } else {
                next.push(Next::Remove(conn, key));
            }
        }
    }
}

fn client(addr: SocketAddr, id: usize, per_client: usize, deadline: Instant, stats: Arc<Shared>) {
    let mut round = 0usize;
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64) << 17;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while Instant::now() < deadline {
        round += 1;
        let mut conns = Vec::with_capacity(per_client);
        for _ in 0..per_client {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.set_nodelay(true).unwrap();
                    conns.push(s);
                }
                Err(e) => {
                    eprintln!("client {id}: connect: {e}");
                    stats.stats.client_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let msgs: Vec<Vec<u8>> = (0..conns.len())
            .map(|i| {
                let len = 1 + (rnd() % 2048) as usize;
                (0..len).map(|j| (i * 31 + j * 7 + round) as u8).collect()
            })
            .collect();
        for (s, m) in conns.iter_mut().zip(&msgs) {
            if let Err(e) = s.write_all(m) {
                eprintln!("client {id}: write: {e}");
                stats.stats.client_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        for (s, m) in conns.iter_mut().zip(&msgs) {
            let mut back = vec![0u8; m.len()];
            match s.read_exact(&mut back) {
                Ok(()) if &back == m => {}
                Ok(()) => {
                    stats.violation(format!("client {id}: echo differs"));
                }
                Err(e) => {
                    eprintln!("client {id}: read echo: {e}");
                    stats.stats.client_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Close: graceful, half-close first, or abortive (RST).
        for (i, s) in conns.into_iter().enumerate() {
            match (i + round) % 3 {
                0 => drop(s),
                1 => {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let mut b = [0u8; 1];
                    let _ = (&s).read(&mut b);
                }
                _ => {
                    let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    drop(s);
                }
            }
        }
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = arg(&args, "--seconds", 120);
    let workers = arg(&args, "--workers", 4) as usize;
    let clients = arg(&args, "--clients", 8) as usize;
    let per_client = arg(&args, "--per-client", 250) as usize;

    // Room for 2 descriptors per connection.
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }

    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.set_reuse_address(true).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    l.listen(4096).unwrap();
    l.set_nonblocking(true).unwrap();
    let listener: TcpListener = l.into();
    let addr = listener.local_addr().unwrap();

    const POSTS: usize = 2_000_000;
    let sh = Arc::new(Shared {
        port: CompletionPort::new().unwrap(),
        listener,
        listener_state: AtomicU8::new(ARMED),
        conns: Mutex::new(HashMap::new()),
        next_key: AtomicUsize::new(1),
        posted_seen: Mutex::new(vec![0; POSTS]),
        stats: Stats::default(),
        violations: Mutex::new(Vec::new()),
        stop_workers: AtomicBool::new(false),
        closing_listener: AtomicBool::new(false),
    });
    let mut first = [Registration::enable(&sh.listener, LISTENER, Events::IN, Trigger::LEVEL_ONESHOT)];
    sh.port.process(&mut first, &mut [], Some(Duration::ZERO)).unwrap();
    first[0].result().unwrap();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let ws: Vec<_> = (0..workers)
        .map(|i| {
            let sh = sh.clone();
            thread::spawn(move || worker(sh, i))
        })
        .collect();
    let cs: Vec<_> = (0..clients)
        .map(|i| {
            let sh = sh.clone();
            thread::spawn(move || client(addr, i, per_client, deadline, sh))
        })
        .collect();
    // Posted packets mixed in, until the deadline.
    let mut posts = 0;
    while Instant::now() < deadline && posts < POSTS {
        for _ in 0..50 {
            if posts < POSTS {
                sh.port.post(Completion::new(POST_KEY + posts, posts as u32, posts.wrapping_mul(3))).unwrap();
                posts += 1;
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    sh.stats.posted.store(posts as u64, Ordering::Relaxed);
    for c in cs {
        c.join().expect("client panicked");
    }
    // Let the server finish every connection (bounded).
    let drain_end = Instant::now() + Duration::from_secs(30);
    while (!sh.conns.lock().unwrap().is_empty() || sh.posted_seen.lock().unwrap()[..posts].contains(&0))
        && Instant::now() < drain_end
    {
        thread::sleep(Duration::from_millis(20));
    }
    // End the listener with REMOVE (registration only: the workers collect its packet).
    // First stop the re-arms and give every worker time to make its pending call.
    sh.closing_listener.store(true, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(300));
    let mut rm = [Registration::remove(&sh.listener)];
    let listener_removed = match sh.port.process(&mut rm, &mut [], Some(Duration::ZERO)) {
        Ok(_) => match rm[0].result() {
            Ok(()) => true,
            Err(e) => {
                sh.violation(format!("REMOVE of the listener: {e}"));
                false
            }
        },
        Err(e) => {
            sh.violation(format!("REMOVE of the listener failed: {e}"));
            false
        }
    };
    let end = Instant::now() + Duration::from_secs(5);
    while sh.listener_state.load(Ordering::SeqCst) != DONE && Instant::now() < end {
        thread::sleep(Duration::from_millis(10));
    }
    sh.stop_workers.store(true, Ordering::SeqCst);
    for w in ws {
        w.join().expect("worker panicked");
    }
    // Final checks.
    let left = sh.conns.lock().unwrap().len();
    if left != 0 {
        sh.violation(format!("{left} connections never finished"));
    }
    if !listener_removed || sh.listener_state.load(Ordering::SeqCst) != DONE {
        sh.violation("the listener's REMOVE packet never came".into());
    }
    let unseen = sh.posted_seen.lock().unwrap()[..posts].iter().filter(|&&s| s == 0).count();
    if unseen != 0 {
        sh.violation(format!("{unseen} posted packets lost"));
    }
    if sh.port.registrations() != 0 || sh.port.queued() != 0 {
        sh.violation(format!(
            "port not empty at the end: {} registrations, {} queued",
            sh.port.registrations(),
            sh.port.queued()
        ));
    }
    let s = &sh.stats;
    let accepted = s.accepted.load(Ordering::Relaxed);
    let churned = s.churned.load(Ordering::Relaxed);
    if accepted != churned {
        sh.violation(format!("{accepted} accepted but {churned} finished"));
    }
    let violations = sh.violations.lock().unwrap().len();
    let client_errors = s.client_errors.load(Ordering::Relaxed);
    println!(
        "soak: {:.1}s, {workers} workers, {clients} clients x {per_client} connections at once",
        started.elapsed().as_secs_f64()
    );
    println!(
        "soak: {churned} connections churned ({} REMOVE, {} close_socket), {} notification packets, \
         {posts} posted packets, {} bytes echoed",
        s.removes.load(Ordering::Relaxed),
        s.closed_directly.load(Ordering::Relaxed),
        s.packets.load(Ordering::Relaxed),
        s.echoed.load(Ordering::Relaxed),
    );
    println!("soak: {violations} violations, {client_errors} client errors");
    if violations > 0 || client_errors > 0 {
        std::process::exit(1);
    }
}
