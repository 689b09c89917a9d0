//! The echo scenarios: a TCP echo server written once per mechanism, under one shared,
//! byte-checked load ([`load`](mod@load)).
//!
//! * `echo` ([`demo`]): the echo demo's shape, `workers` threads, level-triggered one-shot
//!   registrations re-armed after each notification.
//! * `echo-edge` ([`edge`]): one thread, persistent edge-triggered registrations.
//! * `echo-async` ([`tasks`]): the demo's server on threads (socknotify), as tokio tasks over
//!   `socknotify::tokio::AsyncPort` (sn-tokio), and plain tokio (a task per connection).
//!
//! Per run: requests/s, the server's system calls per request (its socket I/O included:
//! counted by the bench's own wrappers, the mio/polling per-call model, and socknotify's
//! `CompletionPort::syscalls()`), its CPU time per request, latency percentiles, and the
//! notifications it handled per request. A run ends with every connection closed by the
//! client, closed (REMOVEd) by the server, and no server-side error.

mod demo;
mod edge;
mod load;
mod server;
mod tasks;

pub use load::{load, Measured};

use crate::cli::Opts;
use crate::run::{interleave, report, Cell, Col, Mech, Ratio, Res};
use crate::stats::{group, percentile, Fmt};
use crate::table::Table;
use server::{EchoServer, Server};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// The demo's: `workers` threads, one-shot level-triggered.
    Demo,
    /// One thread, persistent edge-triggered.
    Edge,
}

/// The load and the server's shape.
#[derive(Clone, Debug)]
pub struct Config {
    pub conns: usize,
    /// Requests per connection.
    pub requests: usize,
    pub size: usize,
    pub workers: usize,
    pub clients: usize,
    /// Upper bound on the timed part of one run.
    pub limit: Duration,
    pub style: Style,
}

impl Config {
    pub fn demo(quick: bool) -> Config {
        Config {
            conns: if quick { 100 } else { 200 },
            requests: if quick { 50 } else { 200 },
            size: 64,
            workers: 2,
            clients: 2,
            limit: Duration::from_secs(if quick { 15 } else { 30 }),
            style: Style::Demo,
        }
    }
    pub fn edge(quick: bool) -> Config {
        Config { workers: 1, style: Style::Edge, ..Config::demo(quick) }
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub requests: u64,
    /// Wall-clock seconds from the start signal to the last echo.
    pub secs: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    /// CPU time (user + kernel) of all server workers during the timed part.
    pub server_cpu_ns: u64,
    /// System calls of the server during the timed part (its workers' own, and socknotify's);
    /// `None` where the bench cannot count them (the tokio servers).
    pub server_calls: Option<u64>,
    /// Connection notifications the server handled during the timed part.
    pub wakeups: u64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// One run: a fresh server for `mech`, the load against it, every check.
pub fn run(mech: Mech, cfg: &Config) -> Res<Outcome> {
    if mech.is_tokio() {
        measure(tasks::start(mech, cfg)?, cfg)
    } else {
        measure(Server::start(mech, cfg)?, cfg)
    }
}

fn measure(mut server: impl EchoServer, cfg: &Config) -> Res<Outcome> {
    let sh = server.shared().clone();
    let (mut cpu0, mut cpu1, mut w0, mut w1) = (0, 0, 0, 0);
    let (mut s0, mut s1) = (None, None);
    let (r, open) = {
        let srv = &server;
        let mut window = |starting: bool| {
            let (cpu, w, s) = (srv.cpu_ns(), sh.wakeups(), srv.calls());
            if starting {
                (cpu0, w0, s0) = (cpu, w, s);
            } else {
                (cpu1, w1, s1) = (cpu, w, s);
            }
        };
        let accepted = || sh.accepted.load(Ordering::Acquire);
        load(srv.addr(), cfg, &accepted, &mut window)
    };
    // Close the client side; the server must see every end of stream and close (REMOVE) all.
    drop(open);
    let mut problems = Vec::new();
    if let Err(e) = &r {
        problems.push(e.clone());
    } else {
        let t = Instant::now();
        while sh.closed.load(Ordering::Relaxed) < cfg.conns && t.elapsed() < load::STALL {
            std::thread::sleep(Duration::from_millis(1));
        }
        let closed = sh.closed.load(Ordering::Relaxed);
        if closed != cfg.conns {
            problems.push(format!(
                "the server closed {closed} of {} connections within {:?} after the clients closed them \
                 (end of stream or REMOVE packet missing)",
                cfg.conns,
                load::STALL
            ));
        }
    }
    if let Err(e) = server.stop(problems.is_empty()) {
        problems.push(e);
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let Measured { latencies_ns: mut lat, secs, .. } = r.unwrap();
    lat.sort_unstable();
    Ok(Outcome {
        requests: lat.len() as u64,
        secs,
        p50_ns: percentile(&lat, 50.0),
        p99_ns: percentile(&lat, 99.0),
        server_cpu_ns: cpu1.saturating_sub(cpu0),
        server_calls: s0.zip(s1).map(|(a, b)| b.saturating_sub(a)),
        wakeups: w1.saturating_sub(w0),
    })
}

/// `[requests/s, server syscalls/request, server CPU µs/request, p50 µs, p99 µs,
/// notifications/request]`.
fn metrics(o: &Outcome) -> Vec<f64> {
    let r = o.requests as f64;
    vec![
        o.rate(),
        o.server_calls.map_or(f64::NAN, |c| c as f64 / r),
        o.server_cpu_ns as f64 / 1e3 / r,
        o.p50_ns as f64 / 1e3,
        o.p99_ns as f64 / 1e3,
        o.wakeups as f64 / r,
    ]
}

/// The cells of an echo scenario: one per connection count and worker count, every mechanism
/// of `mechs` run `o.reps` times, interleaved. `with_w`: W is a parameter column.
#[allow(clippy::too_many_arguments)]
fn cells(
    name: &str,
    o: &Opts,
    nofile: u64,
    base: &Config,
    conns: &[usize],
    workers: &[usize],
    total: usize,
    mechs: &[Mech],
    with_w: bool,
) -> (Vec<Cell>, Vec<String>) {
    let mut cells = Vec::new();
    let mut errors = Vec::new();
    for &c in conns {
        let need = (2 * c + 300) as u64;
        if nofile < need {
            errors.push(format!("{name} {c} connections: about {need} descriptors needed, RLIMIT_NOFILE is {nofile}"));
            continue;
        }
        for &w in workers {
            let cfg = Config { conns: c, requests: (total / c).max(1), workers: w, ..base.clone() };
            let what = format!("{name} conns={c} workers={w}");
            let series = interleave(&what, mechs, o.reps, |m, _| {
                let out = run(m, &cfg)?;
                let calls = match out.server_calls {
                    Some(n) => format!("{:.2}", n as f64 / out.requests as f64),
                    None => "uncounted".into(),
                };
                eprintln!(
                    "    {:.0} requests/s, {calls} server syscalls/request, server CPU {:.2} us/request, p99 {:.0} us",
                    out.rate(),
                    out.server_cpu_ns as f64 / 1e3 / out.requests as f64,
                    out.p99_ns as f64 / 1e3
                );
                Ok(metrics(&out))
            });
            let mut params = vec![group(c as i64), group(cfg.requests as i64)];
            if with_w {
                params.push(w.to_string());
            }
            let cell = Cell { params, series };
            errors.extend(cell.errors(name));
            cells.push(cell);
        }
    }
    (cells, errors)
}

/// The columns of every echo table.
const COLS: [Col; 6] = [
    Col { head: "requests/s", metric: 0, fmt: Fmt::Int, range: true },
    Col { head: "syscalls/request", metric: 1, fmt: Fmt::F2, range: true },
    Col { head: "server CPU µs/request", metric: 2, fmt: Fmt::F2, range: false },
    Col { head: "p50 µs", metric: 3, fmt: Fmt::Int, range: false },
    Col { head: "p99 µs", metric: 4, fmt: Fmt::Int, range: false },
    Col { head: "notifications/request", metric: 5, fmt: Fmt::F2, range: false },
];

/// Runs `echo` (`edge == false`) or `echo-edge`.
pub fn scenario(o: &Opts, edge: bool, nofile: u64) -> (Table, Vec<String>) {
    let name = if edge { "echo-edge" } else { "echo" };
    let base = if edge { Config::edge(o.quick) } else { Config::demo(o.quick) };
    let conns = o.conns.clone().unwrap_or_else(|| match (edge, o.quick) {
        (true, false) => vec![64, 1024],
        (true, true) => vec![64],
        (false, _) => vec![base.conns],
    });
    let workers =
        if edge { vec![1] } else { o.workers.clone().unwrap_or_else(|| if o.quick { vec![2] } else { vec![2, 4] }) };
    let total = o.requests.unwrap_or(if o.quick {
        5_000
    } else if edge {
        100_000
    } else {
        40_000
    });
    let mechs = o.pick(&[Mech::Epoll, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp, Mech::Mio, Mech::Polling]);
    let (cells, errors) = cells(name, o, nofile, &base, &conns, &workers, total, &mechs, !edge);
    let shape = if edge {
        "One server thread; connections registered persistent and edge-triggered (epoll EPOLLIN|EPOLLRDHUP|EPOLLET, \
         socknotify EDGE_PERSISTENT IN|HANGUP, polling Edge, mio); each notification served by reading until a \
         short read or EAGAIN and writing each read back."
    } else {
        "The echo demo's server: W worker threads, connections level-triggered one-shot (epoll EPOLLONESHOT + MOD on \
         one shared epoll; socknotify LEVEL_ONESHOT re-enabled in the worker's next process call on one shared \
         port; mio and polling one poller per worker), up to 16 reads per notification."
    };
    let intro = vec![
        format!(
            "{shape} Load: C TCP loopback connections x M requests of {} bytes, one outstanding per connection, \
             {} client threads on raw epoll, every byte checked. {} repetitions, interleaved (a fresh server and \
             fresh connections each); ratios per repetition pair, then the median.",
            base.size, base.clients, o.reps
        ),
        "requests/s and latency are wall-clock (they move with the machine's load). syscalls/request = the server's \
         system calls in the timed part (its reads, writes, waits and re-arms: the bench's counting wrappers; mio \
         and polling by their per-call counts, see the README; socknotify's own by CompletionPort::syscalls, its \
         futex calls included) per request; server CPU = CPU time of the worker threads per request; \
         notifications = connection notifications the server handled per request."
            .into(),
    ];
    let ratios = [
        Ratio { head: "requests/s ÷ epoll".into(), metric: 0, reference: Mech::Epoll },
        Ratio { head: "syscalls ÷ epoll".into(), metric: 1, reference: Mech::Epoll },
        Ratio { head: "CPU ÷ epoll".into(), metric: 2, reference: Mech::Epoll },
    ];
    let params: &[&str] = if edge { &["C", "M"] } else { &["C", "M", "W"] };
    (report(name, intro, params, &cells, &COLS, &ratios), errors)
}

/// Runs `echo-async`: the same echo workload served by the demo's blocking socknotify server
/// (threads), by socknotify through `socknotify::tokio::AsyncPort` (tasks), and by plain tokio.
pub fn scenario_async(o: &Opts, nofile: u64) -> (Table, Vec<String>) {
    let name = "echo-async";
    let base = Config::demo(o.quick);
    let conns = o.conns.clone().unwrap_or_else(|| vec![base.conns]);
    let workers = o.workers.clone().unwrap_or_else(|| vec![2]);
    let total = o.requests.unwrap_or(if o.quick { 5_000 } else { 40_000 });
    let mechs = o.pick(&[Mech::Socknotify, Mech::SnTokio, Mech::Tokio]);
    let (cells, errors) = cells(name, o, nofile, &base, &conns, &workers, total, &mechs, true);
    let intro = vec![
        format!(
            "The echo demo's workload served three ways, W = worker threads: socknotify = the `echo` scenario's \
             blocking server (W threads on one port, LEVEL_ONESHOT re-enabled in the next process call); sn-tokio = \
             the same server as W tasks on a tokio multi-threaded runtime of W threads, awaiting \
             socknotify::tokio::AsyncPort::process on one shared port (concurrency W), the same packet handling; \
             tokio = plain tokio on a runtime of W threads, one task per connection (TcpStream read, then write_all \
             of what was read). Load: C TCP loopback connections x M requests of {} bytes, one outstanding per \
             connection, {} client threads on raw epoll, every byte checked. {} repetitions, interleaved (a fresh \
             server, runtime and connections each); ratios per repetition pair, then the median.",
            base.size, base.clients, o.reps
        ),
        "requests/s and latency are wall-clock. syscalls/request is counted for the blocking server only (as in \
         `echo`): tokio makes its reactor's epoll_wait, its threads' parking and wake-ups and (plain tokio) the \
         socket I/O inside its own code, which the bench's counters do not see, so the tokio rows show -. server \
         CPU = CPU time of the server's threads (the runtime's worker threads) per request; notifications = packets \
         handled (socknotify, sn-tokio) or connection task polls (tokio) per request."
            .into(),
    ];
    let ratios = [
        Ratio { head: "requests/s ÷ tokio".into(), metric: 0, reference: Mech::Tokio },
        Ratio { head: "CPU ÷ tokio".into(), metric: 2, reference: Mech::Tokio },
        Ratio { head: "requests/s ÷ socknotify".into(), metric: 0, reference: Mech::Socknotify },
    ];
    (report(name, intro, &["C", "M", "W"], &cells, &COLS, &ratios), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Mech; 6] = [Mech::Epoll, Mech::Mio, Mech::Polling, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp];

    fn small(style: Style) -> Config {
        Config { conns: 24, requests: 30, workers: 2, limit: Duration::from_secs(10), style, ..Config::demo(true) }
    }

    #[test]
    fn every_demo_server_echoes_every_byte() {
        for m in ALL {
            let o = run(m, &small(Style::Demo)).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert_eq!(o.requests, 24 * 30, "{}", m.name());
            assert!(o.wakeups > 0 && o.p50_ns > 0 && o.p99_ns >= o.p50_ns, "{}: {o:?}", m.name());
            // At least the read and the write of every request.
            assert!(o.server_calls.unwrap() >= 2 * o.requests, "{}: {o:?}", m.name());
        }
    }

    #[test]
    fn every_async_server_echoes_every_byte() {
        for m in [Mech::SnTokio, Mech::Tokio] {
            let o = run(m, &small(Style::Demo)).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert_eq!(o.requests, 24 * 30, "{}", m.name());
            assert!(o.wakeups > 0 && o.p50_ns > 0 && o.p99_ns >= o.p50_ns, "{}: {o:?}", m.name());
            assert!(o.server_cpu_ns > 0, "{}: {o:?}", m.name());
            assert_eq!(o.server_calls, None, "{}: tokio's system calls are not counted", m.name());
        }
    }

    #[test]
    fn every_edge_server_echoes_every_byte() {
        for m in ALL {
            let o = run(m, &small(Style::Edge)).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert_eq!(o.requests, 24 * 30, "{}", m.name());
            assert!(o.server_calls.unwrap() >= 2 * o.requests, "{}: {o:?}", m.name());
        }
    }

    fn large(m: Mech, style: Style) {
        // 1 MiB requests overflow the socket buffers: partial writes on both sides, and
        // data arriving while the server reads.
        let cfg = Config { conns: 4, requests: 3, size: 1 << 20, ..small(style) };
        let o = run(m, &cfg).unwrap_or_else(|e| panic!("{} {style:?}: {e}", m.name()));
        assert_eq!(o.requests, 12, "{} {style:?}", m.name());
    }

    #[test]
    fn large_requests_take_the_write_interest_path() {
        for m in ALL.into_iter().chain([Mech::SnTokio, Mech::Tokio]) {
            large(m, Style::Demo);
        }
        for m in [Mech::Epoll, Mech::Mio, Mech::Polling] {
            large(m, Style::Edge);
        }
    }

    /// 1 MiB requests to socknotify's edge server: bytes arriving while socknotify reads a
    /// socket's byte counters must never look consumed (the counters are read queue length
    /// first, then received bytes; this test caught the other order, which stalled a
    /// connection now and then).
    #[test]
    fn socknotify_edge_large_requests() {
        for m in [Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp] {
            large(m, Style::Edge);
        }
    }
}
