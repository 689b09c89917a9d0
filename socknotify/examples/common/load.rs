//! What the echo examples (`echo_server.rs`, `tokio_echo.rs`) share on the client side: the
//! command line, the built-in load generator and the report. Included by each with
//! `#[path = "common/load.rs"] mod load;` (a file in a subdirectory of `examples/` is not an
//! example of its own).
//!
//! The load generator (one thread per connection, loopback only) sends `--requests` messages
//! of `--size` bytes on each of `--connections` connections, one outstanding request per
//! connection, checks every echoed byte and measures each request's round trip.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

// --- options --------------------------------------------------------------------------------

pub struct Opts {
    /// The example's name, for messages.
    pub program: &'static str,
    pub connections: usize,
    pub requests: usize,
    pub workers: usize,
    pub seconds: u64,
    pub concurrency: u32,
    pub size: usize,
}

/// The command line (`--workers` counts what runs the PSN loop: threads or tasks).
pub fn parse_args(program: &'static str) -> Result<Opts, String> {
    let mut o = Opts { program, connections: 400, requests: 500, workers: 2, seconds: 30, concurrency: 0, size: 64 };
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
                return Err(format!(
                    "usage: {program} [--connections N] [--requests M] [--workers W] \
                     [--seconds S] [--concurrency C] [--size BYTES]"
                ))
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if o.connections == 0 || o.requests == 0 || o.workers == 0 || o.size == 0 || o.seconds == 0 {
        return Err("every count must be at least 1".into());
    }
    Ok(o)
}

/// Runs `run` with the parsed command line and exits with its verdict: 0 only if it returned
/// `Ok(true)`, 1 on a failed check or an error, 2 on a bad command line.
pub fn main_with(program: &'static str, run: impl FnOnce(&Opts) -> Result<bool, Box<dyn std::error::Error>>) {
    let o = match parse_args(program) {
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
            eprintln!("{program}: {e}");
            std::process::exit(1);
        }
    }
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

/// What the load generator saw, once every client thread has finished (and closed its
/// connection).
pub struct Load {
    /// One per completed request, sorted.
    pub latencies_ns: Vec<u64>,
    pub mismatched: u64,
    /// Connections that hit the time limit.
    pub timed_out: usize,
    pub failed: Vec<String>,
    /// From the start signal to the last client's end.
    pub elapsed: Duration,
    pub limit: Duration,
}

/// Runs the load against the server at `addr` and waits for every client thread.
pub fn run(addr: SocketAddr, o: &Opts) -> Result<Load, Box<dyn std::error::Error>> {
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
                eprintln!("{}: cannot start client thread {id}: {e}", o.program);
                std::process::exit(1);
            }
        }
    }
    let limit = Duration::from_secs(o.seconds);
    let t0 = Instant::now();
    *deadline.lock().unwrap() = Some(t0 + limit);
    start.wait();
    let t0 = Instant::now();
    let mut load = Load {
        latencies_ns: Vec::with_capacity(o.connections * o.requests),
        mismatched: 0,
        timed_out: 0,
        failed: Vec::new(),
        elapsed: Duration::ZERO,
        limit,
    };
    for h in clients {
        let r = h.join().map_err(|_| "a client thread panicked")?;
        load.latencies_ns.extend_from_slice(&r.latencies_ns);
        load.mismatched += r.mismatched_bytes;
        load.timed_out += r.timed_out as usize;
        if let Some(e) = r.error {
            load.failed.push(e);
        }
    }
    load.elapsed = t0.elapsed();
    load.latencies_ns.sort_unstable();
    Ok(load)
}

// --- the report -----------------------------------------------------------------------------

/// The server's side of the report.
pub struct ServerFigures {
    /// Packets the server dequeued (listener and connections; not the stop packets), counted
    /// when the last client finished.
    pub notifications: u64,
    pub echoed_bytes: u64,
    pub accepted: u64,
    pub removed: u64,
    /// Connections not REMOVEd and freed after every client closed.
    pub left_open: usize,
    pub out_waits: u64,
    pub errors: u64,
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

/// Prints the figures and every failed check; true if everything checked out ("ok").
pub fn report(o: &Opts, load: &Load, s: &ServerFigures) -> bool {
    let latencies = &load.latencies_ns;
    let done = latencies.len();
    let expected = o.connections * o.requests;
    let secs = load.elapsed.as_secs_f64();
    println!("requests:      {done} of {expected} in {secs:.3} s = {:.0} requests/s", done as f64 / secs);
    println!(
        "notifications: {} dequeued by the server = {:.0}/s ({:.2} per request)",
        s.notifications,
        s.notifications as f64 / secs,
        s.notifications as f64 / done.max(1) as f64
    );
    println!(
        "latency:       p50 {}, p99 {}, max {} (one request of {} bytes, send to full echo)",
        ms(percentile(latencies, 50.0)),
        ms(percentile(latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or(0)),
        o.size
    );
    println!("checked:       {} bytes echoed, {} mismatched", s.echoed_bytes, load.mismatched);
    println!(
        "connections:   {} accepted, {} REMOVE packets, {} still open; {} waits for OUT",
        s.accepted, s.removed, s.left_open, s.out_waits
    );

    let mut ok = true;
    if load.mismatched > 0 {
        eprintln!("FAIL: {} echoed bytes differ from what was sent", load.mismatched);
        ok = false;
    }
    if load.timed_out > 0 {
        eprintln!("FAIL: the time limit of {:?} was hit ({} connections unfinished)", load.limit, load.timed_out);
        ok = false;
    }
    if done != expected {
        eprintln!("FAIL: {done} of {expected} requests completed");
        ok = false;
    }
    for e in load.failed.iter().take(5) {
        eprintln!("FAIL: {e}");
    }
    ok &= load.failed.is_empty();
    if s.left_open > 0 {
        eprintln!("FAIL: {} connections were not REMOVEd and freed", s.left_open);
        ok = false;
    }
    if s.errors > 0 {
        eprintln!("FAIL: {} server-side errors", s.errors);
        ok = false;
    }
    if ok {
        println!("ok");
    }
    ok
}
