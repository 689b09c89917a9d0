//! A pool of worker threads on one completion port that shuts down cleanly: every
//! registration is REMOVEd (its state freed only when its REMOVE packet arrives), then one
//! posted stop packet per worker, then the workers are joined.
//!
//! ```text
//! cargo run --example worker_pool -- [--workers W] [--connections C] [--messages M]
//! ```
//!
//! * `--workers` threads loop on the same port, each with the canonical PSN call: the
//!   registrations it decided while handling its previous batch (re-arms, REMOVEs), then the
//!   dequeue, in one [`CompletionPort::process`] call.
//! * Connections are `LEVEL | ONESHOT`: a dequeued packet disables its registration, so only
//!   the worker that got it touches the connection until it re-arms it.
//! * A client thread per connection (loopback TCP) sends `--messages` messages and closes its
//!   side. The worker that reads the end of stream REMOVEs the registration; the worker that
//!   dequeues the REMOVE packet (any of them) frees the connection and reports it.
//! * Shutdown: once every connection was freed, the main thread posts one packet with the
//!   stop key per worker ([`CompletionPort::post`]; posted packets come out of the same FIFO
//!   as notifications, each to exactly one thread) and joins the workers. A worker keeps the
//!   first stop packet it dequeues and posts again any further one in the same batch, so that
//!   every worker gets one.
//!
//! The program checks every byte count and checksum, that every registration got exactly
//! one REMOVE packet, that each worker got exactly one stop packet, and that the port is
//! empty at the end; it prints what it saw and exits with status 0 only if every check passed
//! (every wait is bounded: it fails rather than hangs).

use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The key of the posted packets that stop a worker.
const STOP_KEY: usize = usize::MAX;
/// No wait in this program is expected to come anywhere near it.
const LONG: Duration = Duration::from_secs(10);
const MESSAGE: usize = 100;

/// One connection. Only the worker holding its (ONESHOT) packet touches `seen`; the mutex
/// makes sharing it safe Rust and is never contended.
struct Conn {
    stream: TcpStream,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    bytes: u64,
    sum: u64,
    eof: bool,
}

/// What a worker reports to the main thread.
enum Report {
    /// A REMOVE packet was dequeued: the connection's totals.
    Freed { key: usize, bytes: u64, sum: u64 },
    /// Something that should not happen.
    Problem(String),
}

/// What a worker asks for in its next call.
enum Next {
    Rearm(usize, Arc<Conn>),
    Remove(Arc<Conn>),
}

/// Runs until it dequeues a stop packet; returns the packets it dequeued and the stop packets
/// it kept (1 unless something went wrong).
fn worker(port: CompletionPort, conns: Arc<Vec<Arc<Conn>>>, reports: mpsc::Sender<Report>) -> (u64, u32) {
    let mut out = [Completion::default(); 16];
    let mut next: Vec<Next> = Vec::new();
    let mut buf = [0u8; 4096];
    let (mut packets, mut stops) = (0u64, 0u32);
    loop {
        let mut regs: Vec<Registration<'_>> = next
            .iter()
            .map(|n| match n {
                Next::Rearm(key, c) => Registration::enable(&c.stream, *key, Events::IN, Trigger::LEVEL_ONESHOT),
                Next::Remove(c) => Registration::remove(&c.stream),
            })
            .collect();
        let got = port.process(&mut regs, &mut out, Some(LONG));
        for r in &regs {
            if let Err(e) = r.result() {
                let _ = reports.send(Report::Problem(format!("a registration failed: {e}")));
            }
        }
        drop(regs);
        next.clear();
        let n = match got {
            Ok(0) => {
                let _ = reports.send(Report::Problem(format!("a worker waited {LONG:?} for nothing")));
                return (packets, stops);
            }
            Ok(n) => n,
            Err(e) => {
                let _ = reports.send(Report::Problem(format!("process failed: {e}")));
                return (packets, stops);
            }
        };
        for c in &out[..n] {
            packets += 1;
            if c.key() == STOP_KEY {
                // One stop packet per worker: the first is ours (finish the batch, then
                // leave); a second one in the same batch belongs to another worker: hand it on.
                if stops == 0 {
                    stops = 1;
                } else if let Err(e) = port.post(*c) {
                    let _ = reports.send(Report::Problem(format!("re-posting a stop packet: {e}")));
                }
                continue;
            }
            let conn = &conns[c.key()];
            if c.events().contains(Events::REMOVE) {
                let seen = conn.seen.lock().unwrap();
                let _ = reports.send(Report::Freed { key: c.key(), bytes: seen.bytes, sum: seen.sum });
                continue;
            }
            let mut seen = conn.seen.lock().unwrap();
            loop {
                match (&conn.stream).read(&mut buf) {
                    Ok(0) => {
                        seen.eof = true;
                        break;
                    }
                    Ok(k) => {
                        seen.bytes += k as u64;
                        seen.sum += buf[..k].iter().map(|&b| u64::from(b)).sum::<u64>();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        let _ = reports.send(Report::Problem(format!("read: {e}")));
                        seen.eof = true;
                        break;
                    }
                }
            }
            next.push(if seen.eof { Next::Remove(conn.clone()) } else { Next::Rearm(c.key(), conn.clone()) });
        }
        if stops > 0 {
            if !next.is_empty() {
                let _ = reports.send(Report::Problem("a worker stopped with registrations pending".into()));
            }
            return (packets, stops);
        }
    }
}

fn parse_args() -> Result<(usize, usize, usize), String> {
    let (mut workers, mut connections, mut messages) = (4usize, 16usize, 50usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num =
            |name: &str| args.next().and_then(|v| v.parse::<usize>().ok()).ok_or(format!("{name} needs a number"));
        match a.as_str() {
            "--workers" => workers = num("--workers")?,
            "--connections" => connections = num("--connections")?,
            "--messages" => messages = num("--messages")?,
            _ => return Err("usage: worker_pool [--workers W] [--connections C] [--messages M]".into()),
        }
    }
    if workers == 0 || connections == 0 || connections > 1000 || workers > 64 {
        return Err("--workers 1..=64, --connections 1..=1000".into());
    }
    Ok((workers, connections, messages))
}

fn main() {
    match parse_args().and_then(|(w, c, m)| run(w, c, m).map_err(|e| e.to_string())) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("worker_pool: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// The bytes client `i` sends: `messages` messages of `MESSAGE` bytes.
fn payload(i: usize, messages: usize) -> Vec<u8> {
    (0..messages * MESSAGE).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

fn run(workers: usize, connections: usize, messages: usize) -> Result<(), Box<dyn std::error::Error>> {
    let port = CompletionPort::with_concurrency(workers as u32)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;

    // Connections, accepted up front; the clients start once everything is registered.
    let mut clients = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..connections {
        clients.push(TcpStream::connect(addr)?);
        let (s, _) = listener.accept()?;
        s.set_nonblocking(true)?;
        conns.push(Arc::new(Conn { stream: s, seen: Mutex::new(Seen::default()) }));
    }
    let conns = Arc::new(conns);
    let mut regs: Vec<Registration<'_>> = conns
        .iter()
        .enumerate()
        .map(|(key, c)| Registration::enable(&c.stream, key, Events::IN, Trigger::LEVEL_ONESHOT))
        .collect();
    port.process(&mut regs, &mut [], Some(Duration::ZERO))?;
    for r in &regs {
        r.result()?;
    }
    drop(regs);

    let (tx, rx) = mpsc::channel();
    let pool: Vec<_> = (0..workers)
        .map(|_| {
            let (port, conns, tx) = (port.clone(), conns.clone(), tx.clone());
            std::thread::spawn(move || worker(port, conns, tx))
        })
        .collect();
    drop(tx);
    let senders: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || -> std::io::Result<()> {
                for chunk in payload(i, messages).chunks(MESSAGE) {
                    s.write_all(chunk)?;
                }
                s.shutdown(Shutdown::Write)
            })
        })
        .collect();
    for s in senders {
        s.join().map_err(|_| "a client panicked")??;
    }

    // Every connection ends with its REMOVE packet; only then is it freed.
    let mut freed = vec![false; connections];
    let mut problems = Vec::new();
    let mut left = connections;
    while left > 0 {
        match rx.recv_timeout(LONG) {
            Ok(Report::Freed { key, bytes, sum }) => {
                if std::mem::replace(&mut freed[key], true) {
                    problems.push(format!("connection {key}: a second REMOVE packet"));
                }
                let want = payload(key, messages);
                let want_sum: u64 = want.iter().map(|&b| u64::from(b)).sum();
                if (bytes, sum) != (want.len() as u64, want_sum) {
                    problems.push(format!("connection {key}: {bytes} bytes (sum {sum}), expected {}", want.len()));
                }
                left -= 1;
            }
            Ok(Report::Problem(p)) => problems.push(p),
            Err(_) => return Err(format!("{left} connections were never freed").into()),
        }
    }
    let registrations_left = port.registrations();

    // Shutdown: one stop packet per worker, then join them.
    for _ in 0..workers {
        port.post(Completion::new(STOP_KEY, 0, 0))?;
    }
    let mut per_worker = Vec::new();
    for w in pool {
        let (packets, stops) = w.join().map_err(|_| "a worker panicked")?;
        if stops != 1 {
            problems.push(format!("a worker got {stops} stop packets"));
        }
        per_worker.push(packets);
    }
    problems.extend(rx.try_iter().map(|r| match r {
        Report::Problem(p) => p,
        Report::Freed { key, .. } => format!("connection {key} freed after the shutdown"),
    }));
    let leftover = port.dequeue(&mut [Completion::default()], Some(Duration::ZERO))?;
    if registrations_left != 0 || leftover != 0 {
        problems.push(format!("{registrations_left} registrations and {leftover} packets left on the port"));
    }
    port.close();
    if !problems.is_empty() {
        return Err(problems.join("; ").into());
    }
    let total: u64 = per_worker.iter().sum();
    println!(
        "worker_pool: one port, workers: {workers}, connections: {connections} (each {messages} messages of \
         {MESSAGE} bytes, every byte checked); every registration REMOVEd, one REMOVE packet each; one stop \
         packet posted per worker, each kept by exactly one worker; every worker joined, nothing left on the \
         port; packets per worker {per_worker:?} ({total} in all)"
    );
    Ok(())
}
