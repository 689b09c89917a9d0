//! A multi-threaded TCP echo server written the canonical Windows way, with a built-in load
//! generator that checks every byte.
//!
//! ```text
//! cargo run --release --example echo_server -- [--connections N] [--requests M]
//!     [--workers W] [--seconds S] [--concurrency C] [--size B]
//! ```
//!
//! # The pattern (what a port from Windows looks like)
//!
//! On Windows, `ProcessSocketNotifications` (PSN) lets a pool of threads share one I/O
//! completion port: each thread loops on one call that both *applies registrations* and
//! *dequeues notifications*. socknotify keeps that shape on Linux:
//!
//! ```text
//! loop {
//!     // regs = what this thread decided while handling its previous batch:
//!     //   re-enable (ONESHOT|LEVEL) of each socket it handled, new connections, REMOVEs
//!     let n = port.process(&mut regs, &mut out, timeout)?;   // apply, then dequeue
//!     for packet in &out[..n] { handle(packet) /* pushes into the next regs */ }
//! }
//! ```
//!
//! * **One port, W worker threads.** Every worker runs the loop above on the same
//!   [`CompletionPort`]. Each packet goes to exactly one worker. The port's concurrency value
//!   (`--concurrency`, 0 = the number of CPUs, as on Windows) caps how many of them run
//!   packets at once.
//! * **Clients are `LEVEL | ONESHOT`.** When a worker dequeues a connection's packet, the
//!   registration disables itself, so no other worker can get a packet for that connection
//!   while this one reads and writes it: the per-connection state is touched by one thread at
//!   a time, with no extra protocol. The worker re-enables it in its **next** `process` call,
//!   together with its next dequeue: one API call per batch, not one re-arm call per socket
//!   (socknotify applies the batch's re-enables, then waits). Because the
//!   trigger is LEVEL, re-enabling a socket that still has unread data queues a packet at once
//!   (nothing is lost if the worker stopped reading early for fairness).
//! * **The listener is `LEVEL | PERSISTENT`.** It stays armed; whichever worker gets its packet
//!   accepts until `WouldBlock` (two workers may race; the loser just sees `WouldBlock`) and
//!   registers each new connection in its next `process` call.
//! * **Keys identify per-connection state.** Here a key is an index into a slab of
//!   connection states (`Mutex<Slab>` of `Arc<Conn>`), which is safe Rust with no lookups by
//!   descriptor. The listener and the stop packets use reserved keys.
//! * **Closing is a REMOVE, and the state is freed only when the REMOVE packet arrives.**
//!   On end of stream, hang-up or error the worker issues `Registration::remove` (again in its
//!   next `process` call). `Events::REMOVE` marks the registration's last packet: only when a
//!   worker dequeues it is the slot freed (and the socket closed), so no packet can ever
//!   arrive for a key whose state was already freed or reused.
//! * **Non-blocking sockets**, read until `WouldBlock` (bounded per packet for fairness), and
//!   output that cannot be written now is kept and the registration switched to `OUT`.
//! * **Stopping**: the main thread posts one packet with a reserved key per worker
//!   ([`CompletionPort::post`]); posted packets come out of the same FIFO as notifications.
//!
//! The load generator (one thread per connection, loopback only) sends `--requests` messages
//! of `--size` bytes on each of `--connections` connections, one outstanding request per
//! connection, checks every echoed byte and measures each request's round trip. The program
//! prints requests/s, notifications/s (packets the server dequeued), p50/p99 latency, and
//! exits with status 0 only if every request completed with the right bytes within
//! `--seconds` and every connection was REMOVEd and freed. Expect fewer notifications than
//! requests: after echoing, a worker reads again until `WouldBlock`, and the client's next
//! request is often there already. The latency includes the scheduling of hundreds of client
//! threads on the same machine, so its p99 says more about the machine than about the server.

use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// The listener's completion key.
const LISTENER_KEY: usize = usize::MAX;
/// The key of the packets that tell workers to stop.
const STOP_KEY: usize = usize::MAX - 1;
/// Packets one `process` call may return.
const BATCH: usize = 64;
/// Reads per packet before a connection yields to the others (LEVEL re-fires if more is there).
const READS_PER_PACKET: usize = 16;

// --- options --------------------------------------------------------------------------------

struct Opts {
    connections: usize,
    requests: usize,
    workers: usize,
    seconds: u64,
    concurrency: u32,
    size: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts { connections: 400, requests: 500, workers: 2, seconds: 30, concurrency: 0, size: 64 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--connections" => o.connections = num("--connections")? as usize,
            "--requests" => o.requests = num("--requests")? as usize,
            "--workers" => o.workers = num("--workers")? as usize,
            "--seconds" => o.seconds = num("--seconds")?,
            "--concurrency" => o.concurrency = num("--concurrency")? as u32,
            "--size" => o.size = num("--size")? as usize,
            "-h" | "--help" => {
                return Err("usage: echo_server [--connections N] [--requests M] [--workers W] \
                            [--seconds S] [--concurrency C] [--size BYTES]"
                    .into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if o.connections == 0 || o.requests == 0 || o.workers == 0 || o.size == 0 || o.seconds == 0 {
        return Err("every count must be at least 1".into());
    }
    Ok(o)
}

// --- per-connection state, keyed by slab index ------------------------------------------------

/// One accepted connection. Only the worker that dequeued its (ONESHOT) packet touches it,
/// so the mutex is never contended; it is there to make sharing the slab safe Rust.
struct Conn {
    stream: TcpStream,
    /// Echo bytes that could not be written yet.
    unsent: Mutex<Vec<u8>>,
}

#[derive(Default)]
struct Slab {
    slots: Vec<Option<Arc<Conn>>>,
    free: Vec<usize>,
    live: usize,
}

impl Slab {
    fn insert(&mut self, c: Arc<Conn>) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(c);
                i
            }
            None => {
                self.slots.push(Some(c));
                self.slots.len() - 1
            }
        }
    }
    fn get(&self, key: usize) -> Option<Arc<Conn>> {
        self.slots.get(key).and_then(|s| s.clone())
    }
    fn remove(&mut self, key: usize) -> Option<Arc<Conn>> {
        let c = self.slots.get_mut(key)?.take()?;
        self.free.push(key);
        self.live -= 1;
        Some(c)
    }
}

/// What the server shares between its workers.
struct Server {
    port: CompletionPort,
    listener: TcpListener,
    conns: Mutex<Slab>,
    notifications: AtomicU64,
    accepted: AtomicU64,
    removed: AtomicU64,
    echoed_bytes: AtomicU64,
    /// Times a connection had to wait for OUT (its peer was not reading fast enough).
    out_waits: AtomicU64,
    errors: AtomicU64,
}

/// What a worker asks for in its next `process` call.
enum Next {
    /// A new connection or a re-enable: ONESHOT|LEVEL with this filter.
    Enable(usize, Arc<Conn>, Events),
    /// End the registration; the slot is freed when its REMOVE packet is dequeued.
    Remove(usize, Arc<Conn>),
}

fn worker(server: Arc<Server>, stop: Arc<AtomicBool>) {
    let mut out = vec![Completion::default(); BATCH];
    let mut next: Vec<Next> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut done = false;
    while !done {
        // The registrations decided while handling the previous batch, then the dequeue.
        let mut regs: Vec<Registration<'_>> = next
            .iter()
            .map(|n| match n {
                Next::Enable(key, c, filter) => Registration::enable(&c.stream, *key, *filter, Trigger::LEVEL_ONESHOT),
                Next::Remove(_, c) => Registration::remove(&c.stream),
            })
            .collect();
        let result = server.port.process(&mut regs, &mut out, Some(Duration::from_millis(200)));
        for (r, n) in regs.iter().zip(&next) {
            if let Err(e) = r.result() {
                // Not expected here; free the connection so that nothing leaks.
                eprintln!("echo_server: registration failed: {e}");
                server.errors.fetch_add(1, Ordering::Relaxed);
                let key = match n {
                    Next::Enable(k, ..) | Next::Remove(k, _) => *k,
                };
                server.conns.lock().unwrap().remove(key);
            }
        }
        drop(regs);
        next.clear();
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                eprintln!("echo_server: worker stops: {e}");
                return;
            }
        };
        if n == 0 && stop.load(Ordering::Acquire) {
            break; // another worker took more than one stop packet
        }
        for packet in &out[..n] {
            match packet.key() {
                STOP_KEY => done = true,
                LISTENER_KEY => {
                    server.notifications.fetch_add(1, Ordering::Relaxed);
                    accept_all(&server, &mut next);
                }
                key => {
                    server.notifications.fetch_add(1, Ordering::Relaxed);
                    let events = packet.events();
                    if events.contains(Events::REMOVE) {
                        // The last packet of this registration: now the state can go.
                        // Dropping the last Arc closes the socket.
                        server.conns.lock().unwrap().remove(key);
                        server.removed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let Some(conn) = server.conns.lock().unwrap().get(key) else {
                        eprintln!("echo_server: packet for unknown key {key} ({events:?})");
                        server.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    match serve(&conn, &mut buf, &server.echoed_bytes) {
                        Some(filter) => {
                            if filter.contains(Events::OUT) {
                                server.out_waits.fetch_add(1, Ordering::Relaxed);
                            }
                            next.push(Next::Enable(key, conn, filter))
                        }
                        None => next.push(Next::Remove(key, conn)),
                    }
                }
            }
        }
    }
    // Pending re-enables are dropped on purpose: the server is stopping.
}

/// Accepts until `WouldBlock`; each new connection is registered in the next `process` call.
fn accept_all(server: &Server, next: &mut Vec<Next>) {
    loop {
        match server.listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                    server.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let conn = Arc::new(Conn { stream, unsent: Mutex::new(Vec::new()) });
                let key = server.conns.lock().unwrap().insert(conn.clone());
                server.accepted.fetch_add(1, Ordering::Relaxed);
                next.push(Next::Enable(key, conn, Events::IN | Events::HANGUP));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => {}
            Err(e) => {
                // For example EMFILE: the listener stays registered (LEVEL|PERSISTENT), so
                // the connection is accepted later.
                eprintln!("echo_server: accept: {e}");
                server.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Serves one packet of a connection: flushes what is unsent, then reads and echoes until
/// `WouldBlock`. Returns the filter to re-enable with, or `None` to REMOVE the connection
/// (end of stream, hang-up, error).
fn serve(conn: &Conn, buf: &mut [u8], echoed: &AtomicU64) -> Option<Events> {
    let mut unsent = conn.unsent.lock().unwrap();
    if !unsent.is_empty() && !flush(&conn.stream, &mut unsent)? {
        return Some(Events::OUT | Events::HANGUP);
    }
    for _ in 0..READS_PER_PACKET {
        match (&conn.stream).read(buf) {
            Ok(0) => return None, // the peer closed
            Ok(n) => {
                echoed.fetch_add(n as u64, Ordering::Relaxed);
                unsent.extend_from_slice(&buf[..n]);
                if !flush(&conn.stream, &mut unsent)? {
                    return Some(Events::OUT | Events::HANGUP);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(Events::IN | Events::HANGUP),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None, // reset or another error
        }
    }
    // Fairness: more may be waiting; LEVEL re-queues a packet at once when re-enabled.
    Some(Events::IN | Events::HANGUP)
}

/// Writes as much of `unsent` as the socket takes. `Some(true)`: all written;
/// `Some(false)`: the rest must wait for OUT; `None`: the connection failed.
fn flush(mut stream: &TcpStream, unsent: &mut Vec<u8>) -> Option<bool> {
    let mut done = 0;
    let r = loop {
        if done == unsent.len() {
            break Some(true);
        }
        match stream.write(&unsent[done..]) {
            Ok(0) => break None,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break Some(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break None,
        }
    };
    unsent.drain(..done);
    r
}

// --- the load generator ---------------------------------------------------------------------

#[derive(Default)]
struct ClientResult {
    latencies_ns: Vec<u64>,
    mismatched_bytes: u64,
    error: Option<String>,
    timed_out: bool,
}

/// The bytes of request `req` on connection `conn`: different for every request, so a reply
/// from the wrong connection or an old request is caught.
fn fill(msg: &mut [u8], conn: usize, req: usize) {
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (conn.wrapping_mul(131) ^ req.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8;
    }
}

fn client(
    addr: SocketAddr,
    id: usize,
    o: &ClientOpts,
    start: &Barrier,
    deadline: &Mutex<Option<Instant>>,
) -> ClientResult {
    let mut res = ClientResult { latencies_ns: Vec::with_capacity(o.requests), ..Default::default() };
    let stream = TcpStream::connect(addr).and_then(|s| {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(s)
    });
    start.wait(); // every client connects first, then the clock starts
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            res.error = Some(format!("connect: {e}"));
            return res;
        }
    };
    let deadline = deadline.lock().unwrap().expect("deadline set before the start");
    let mut msg = vec![0u8; o.size];
    let mut reply = vec![0u8; o.size];
    for req in 0..o.requests {
        if Instant::now() > deadline {
            res.timed_out = true;
            break;
        }
        fill(&mut msg, id, req);
        let t0 = Instant::now();
        if let Err(e) = exchange(&mut stream, &msg, &mut reply, deadline) {
            res.error = Some(format!("connection {id}, request {req}: {e}"));
            break;
        }
        res.latencies_ns.push(t0.elapsed().as_nanos() as u64);
        res.mismatched_bytes += msg.iter().zip(&reply).filter(|(a, b)| a != b).count() as u64;
    }
    // Closing the connection: the server sees end of stream, REMOVEs and frees it.
    res
}

/// Sends `msg` and reads its echo into `reply`. Small messages: write, then read. Large ones
/// are pumped both ways at once, as the server may stop reading until its echo is read.
fn exchange(stream: &mut TcpStream, msg: &[u8], reply: &mut [u8], deadline: Instant) -> std::io::Result<()> {
    if msg.len() <= 64 * 1024 {
        stream.write_all(msg)?;
        return stream.read_exact(reply);
    }
    stream.set_nonblocking(true)?;
    let (mut w, mut r) = (0, 0);
    while r < reply.len() {
        let mut progress = false;
        if w < msg.len() {
            match stream.write(&msg[w..]) {
                Ok(n) => (w, progress) = (w + n, true),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match stream.read(&mut reply[r..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => (r, progress) = (r + n, true),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if !progress {
            if Instant::now() > deadline + Duration::from_secs(5) {
                return Err(ErrorKind::TimedOut.into());
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    stream.set_nonblocking(false)
}

struct ClientOpts {
    requests: usize,
    size: usize,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(&o) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("echo_server: {e}");
            std::process::exit(1);
        }
    }
}

fn run(o: &Opts) -> Result<bool, Box<dyn std::error::Error>> {
    // --- the server ---
    let port = CompletionPort::with_concurrency(o.concurrency)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let server = Arc::new(Server {
        port: port.clone(),
        listener,
        conns: Mutex::new(Slab::default()),
        notifications: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        removed: AtomicU64::new(0),
        echoed_bytes: AtomicU64::new(0),
        out_waits: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    // The listener: LEVEL|PERSISTENT, registered once (an empty output: apply only).
    let mut reg = [Registration::enable(&server.listener, LISTENER_KEY, Events::IN, Trigger::LEVEL_PERSISTENT)];
    port.process(&mut reg, &mut [], Some(Duration::ZERO))?;
    reg[0].result()?;

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..o.workers)
        .map(|i| {
            let (s, f) = (server.clone(), stop.clone());
            std::thread::Builder::new().name(format!("worker-{i}")).spawn(move || worker(s, f))
        })
        .collect::<Result<_, _>>()?;
    println!(
        "echo_server on {addr}: {} workers, port concurrency {}; load: {} connections x {} requests of {} bytes",
        o.workers,
        port.concurrency(),
        o.connections,
        o.requests,
        o.size
    );

    // --- the load generator ---
    let start = Arc::new(Barrier::new(o.connections + 1));
    let deadline = Arc::new(Mutex::new(None));
    let copts = Arc::new(ClientOpts { requests: o.requests, size: o.size });
    let mut clients = Vec::with_capacity(o.connections);
    for id in 0..o.connections {
        let (start, deadline, copts) = (start.clone(), deadline.clone(), copts.clone());
        let h = std::thread::Builder::new()
            .name(format!("client-{id}"))
            .stack_size(128 * 1024)
            .spawn(move || client(addr, id, &copts, &start, &deadline));
        match h {
            Ok(h) => clients.push(h),
            Err(e) => {
                // The barrier expects every client: give up cleanly.
                eprintln!("echo_server: cannot start client thread {id}: {e}");
                std::process::exit(1);
            }
        }
    }
    let limit = Duration::from_secs(o.seconds);
    let t0 = Instant::now();
    *deadline.lock().unwrap() = Some(t0 + limit);
    start.wait();
    let t0 = Instant::now();
    let mut latencies = Vec::with_capacity(o.connections * o.requests);
    let (mut mismatched, mut timed_out, mut failed) = (0u64, 0usize, Vec::new());
    for h in clients {
        let r = h.join().map_err(|_| "a client thread panicked")?;
        latencies.extend_from_slice(&r.latencies_ns);
        mismatched += r.mismatched_bytes;
        timed_out += r.timed_out as usize;
        if let Some(e) = r.error {
            failed.push(e);
        }
    }
    let elapsed = t0.elapsed();
    let notifications = server.notifications.load(Ordering::Relaxed);

    // Every client has closed: wait (bounded) for the server to REMOVE and free them all.
    let wait_until = Instant::now() + Duration::from_secs(5);
    while server.conns.lock().unwrap().live > 0 && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let left_open = server.conns.lock().unwrap().live;

    // Stop the workers: one posted packet each, out of the same FIFO as notifications.
    stop.store(true, Ordering::Release);
    for _ in 0..o.workers {
        port.post(Completion::new(STOP_KEY, 0, 0))?;
    }
    for w in workers {
        w.join().map_err(|_| "a worker panicked")?;
    }
    port.close();

    // --- report ---
    latencies.sort_unstable();
    let done = latencies.len();
    let expected = o.connections * o.requests;
    let secs = elapsed.as_secs_f64();
    println!("requests:      {done} of {expected} in {secs:.3} s = {:.0} requests/s", done as f64 / secs);
    println!(
        "notifications: {notifications} dequeued by the server = {:.0}/s ({:.2} per request)",
        notifications as f64 / secs,
        notifications as f64 / done.max(1) as f64
    );
    println!(
        "latency:       p50 {}, p99 {}, max {} (one request of {} bytes, send to full echo)",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or(0)),
        o.size
    );
    println!("checked:       {} bytes echoed, {} mismatched", server.echoed_bytes.load(Ordering::Relaxed), mismatched);
    println!(
        "connections:   {} accepted, {} REMOVE packets, {} still open; {} waits for OUT",
        server.accepted.load(Ordering::Relaxed),
        server.removed.load(Ordering::Relaxed),
        left_open,
        server.out_waits.load(Ordering::Relaxed)
    );

    let mut ok = true;
    if mismatched > 0 {
        eprintln!("FAIL: {mismatched} echoed bytes differ from what was sent");
        ok = false;
    }
    if timed_out > 0 {
        eprintln!("FAIL: the time limit of {limit:?} was hit ({timed_out} connections unfinished)");
        ok = false;
    }
    if done != expected {
        eprintln!("FAIL: {done} of {expected} requests completed");
        ok = false;
    }
    for e in failed.iter().take(5) {
        eprintln!("FAIL: {e}");
    }
    ok &= failed.is_empty();
    if left_open > 0 {
        eprintln!("FAIL: {left_open} connections were not REMOVEd and freed");
        ok = false;
    }
    let errors = server.errors.load(Ordering::Relaxed);
    if errors > 0 {
        eprintln!("FAIL: {errors} server-side errors");
        ok = false;
    }
    if ok {
        println!("ok");
    }
    Ok(ok)
}
