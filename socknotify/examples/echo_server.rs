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
//! The per-connection handling (the slab, accepting, reading and echoing, REMOVE) is in
//! `common/server.rs`, and the load generator and the report in `common/load.rs`: both are
//! shared with `tokio_echo.rs`, the same server as tasks on a tokio runtime.
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

#[path = "common/load.rs"]
mod load;
#[path = "common/server.rs"]
mod server;

use server::{registrations, Next, Server, BATCH, BUF, STOP_KEY};
use socknotify::{Completion, CompletionPort};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn worker(server: Arc<Server>, stop: Arc<AtomicBool>) {
    let mut out = vec![Completion::default(); BATCH];
    let mut next: Vec<Next> = Vec::new();
    let mut buf = vec![0u8; BUF];
    let mut done = false;
    while !done {
        // The registrations decided while handling the previous batch, then the dequeue.
        let mut regs = registrations(&next);
        let result = server.port.process(&mut regs, &mut out, Some(Duration::from_millis(200)));
        server.check_registrations(&regs, &next);
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
                // Accept, or read and echo: decides the registrations of the next call.
                _ => server.handle(packet, &mut next, &mut buf),
            }
        }
    }
    // Pending re-enables are dropped on purpose: the server is stopping.
}

fn main() {
    load::main_with("echo_server", run);
}

fn run(o: &load::Opts) -> Result<bool, Box<dyn std::error::Error>> {
    // --- the server ---
    let port = CompletionPort::with_concurrency(o.concurrency)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // The listener: LEVEL|PERSISTENT, registered once.
    let server = Arc::new(Server::new("echo_server", port.clone(), listener)?);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..o.workers)
        .map(|i| {
            let (s, f) = (server.clone(), stop.clone());
            std::thread::Builder::new().name(format!("worker-{i}")).spawn(move || worker(s, f))
        })
        .collect::<Result<_, _>>()?;
    println!(
        "echo_server on {addr}: {} workers, port concurrency {}, kernel path {}; load: {} connections x {} requests of {} bytes",
        o.workers,
        port.concurrency(),
        match port.backend() {
            socknotify::Backend::IoUring => "io_uring",
            _ => "epoll",
        },
        o.connections,
        o.requests,
        o.size
    );

    // --- the load generator ---
    let load = load::run(addr, o)?;
    let notifications = server.notifications.load(Ordering::Relaxed);

    // Every client has closed: wait (bounded) for the server to REMOVE and free them all.
    let left_open = server.wait_closed();

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
    Ok(load::report(o, &load, &server.figures(notifications, left_open)))
}
