//! The echo server of `echo_server.rs` written with async Rust: the same PSN loop, run by
//! async tasks on a tokio multi-threaded runtime instead of blocking threads, under the same
//! built-in load, printing the same figures.
//!
//! ```text
//! cargo run --release --example tokio_echo --features tokio -- [--connections N] [--requests M]
//!     [--workers W] [--seconds S] [--concurrency C] [--size B]
//! ```
//!
//! * **One port, W tasks.** The port is wrapped once in a [`socknotify::tokio::AsyncPort`]
//!   (registered with tokio's reactor through the port's descriptor) and shared by `--workers`
//!   tasks (default 2), each running the loop of `echo_server.rs` with
//!   `port.process(&mut regs, &mut out).await` in place of the blocking call: while a task
//!   waits, it holds no thread. Each packet goes to exactly one task.
//! * **Everything else is the blocking demo's** (`common/server.rs`): clients
//!   `LEVEL | ONESHOT`, re-enabled in the task's next `process` call; the listener
//!   `LEVEL | PERSISTENT`; a closed connection REMOVEd, its slot freed when the REMOVE packet
//!   arrives. The handling of a packet never awaits, so a connection's state is touched by one
//!   task at a time, as in the blocking demo.
//! * **Stopping** with posted packets, one per task. A task may take several in one batch: it
//!   posts back all but one and ends, so every task gets its own. (No timeout is needed; a
//!   `tokio::time::timeout` around `process` would also be safe: a dropped future loses no
//!   packet.)
//! * **Concurrency.** The port's concurrency value counts threads: a runtime thread that took
//!   packets counts as running until it calls the port again. The default (`--concurrency 0`,
//!   the number of processors) matches the number of threads of tokio's multi-threaded
//!   runtime.
//!
//! The load generator (threads, outside the runtime) and the checks are those of
//! `echo_server.rs` (`common/load.rs`); the exit status is 0 only if every request completed
//! with the right bytes and every connection was REMOVEd and freed.

#[path = "common/load.rs"]
mod load;
#[path = "common/server.rs"]
mod server;

use server::{registrations, Next, Server, BATCH, BUF, STOP_KEY};
use socknotify::tokio::AsyncPort;
use socknotify::{Completion, CompletionPort};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// One task: the PSN loop of `echo_server.rs`, awaiting `process`.
async fn worker(server: Arc<Server>, port: Arc<AsyncPort>) {
    let mut out = vec![Completion::default(); BATCH];
    let mut next: Vec<Next> = Vec::new();
    let mut buf = vec![0u8; BUF];
    loop {
        // The registrations decided while handling the previous batch, then the dequeue.
        let mut regs = registrations(&next);
        let result = port.process(&mut regs, &mut out).await;
        server.check_registrations(&regs, &next);
        drop(regs);
        next.clear();
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                eprintln!("tokio_echo: task stops: {e}");
                server.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut stops = 0;
        for packet in &out[..n] {
            match packet.key() {
                STOP_KEY => stops += 1,
                // Accept, or read and echo: decides the registrations of the next call.
                _ => server.handle(packet, &mut next, &mut buf),
            }
        }
        if stops > 0 {
            // This task ends; the stop packets of the other tasks go back to the port.
            for _ in 1..stops {
                if let Err(e) = port.port().post(Completion::new(STOP_KEY, 0, 0)) {
                    eprintln!("tokio_echo: post: {e}");
                    server.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Pending re-enables are dropped on purpose: the server is stopping.
            return;
        }
    }
}

fn main() {
    load::main_with("tokio_echo", run);
}

fn run(o: &load::Opts) -> Result<bool, Box<dyn std::error::Error>> {
    // --- the server ---
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let port = CompletionPort::with_concurrency(o.concurrency)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // The listener: LEVEL|PERSISTENT, registered once.
    let server = Arc::new(Server::new("tokio_echo", port.clone(), listener)?);
    // Registered with the runtime's reactor (it needs the runtime's context).
    let async_port = Arc::new({
        let _in_runtime = rt.enter();
        AsyncPort::new(port)?
    });
    let tasks: Vec<_> = (0..o.workers).map(|_| rt.spawn(worker(server.clone(), async_port.clone()))).collect();
    println!(
        "tokio_echo on {addr}: {} tasks on a tokio runtime of {} threads, port concurrency {}; \
         load: {} connections x {} requests of {} bytes",
        o.workers,
        rt.metrics().num_workers(),
        server.port.concurrency(),
        o.connections,
        o.requests,
        o.size
    );

    // --- the load generator (threads of its own, outside the runtime) ---
    let load = load::run(addr, o)?;
    let notifications = server.notifications.load(Ordering::Relaxed);

    // Every client has closed: wait (bounded) for the server to REMOVE and free them all.
    let left_open = server.wait_closed();

    // Stop the tasks: one posted packet each, out of the same FIFO as notifications.
    for _ in 0..o.workers {
        server.port.post(Completion::new(STOP_KEY, 0, 0))?;
    }
    let ended = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            for t in tasks {
                t.await.map_err(|_| "a task panicked")?;
            }
            Ok::<(), &str>(())
        })
        .await
    });
    match ended {
        Ok(r) => r?,
        Err(_) => {
            eprintln!("tokio_echo: the tasks did not stop within 5 s");
            server.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(async_port);
    server.port.close();
    rt.shutdown_timeout(Duration::from_secs(1));

    // --- report ---
    Ok(load::report(o, &load, &server.figures(notifications, left_open)))
}
