//! `socknotify-bench`: what socknotify costs per notification, next to raw epoll (the floor),
//! mio and polling, all measured in one run on the same machine.
//!
//! ```text
//! cargo run --release -p socknotify-bench -- [--quick] [--markdown] [--tcp] [--reps N]
//!     [--batch N] [--wall] [--mech epoll,mio,polling,socknotify,sn-epoll]
//!     [--echo-conns C] [--echo-reqs M] [--echo-size B] [--echo-workers W] [--echo-clients T]
//!     [--echo-seconds S] [rearm] [burst] [churn] [postwake] [echo]
//! ```
//!
//! Mechanisms: `baseline` (the same socket writes and reads with no mechanism), raw `epoll`
//! (hand-written with libc: the floor), `mio`, `polling`, `socknotify` (its default backend:
//! io_uring where the kernel offers it) and `sn-epoll` (socknotify on plain epoll calls).
//!
//! Readiness scenarios (rearm, burst): every repetition makes fresh socket pairs for each
//! mechanism. When they all fit under the descriptor limit, the mechanisms run side by side,
//! taking turns in short slices of rounds (the order rotates every slice), so that load from
//! other processes hits them alike; otherwise one at a time, the order rotating every
//! repetition. Each slice gives a sample of ns per notification and a figure is the median of
//! the samples. The *overhead* per notification is `median(mechanism) − median(baseline)`.
//! Single-threaded sections are timed with the thread's CPU time (`--wall`: wall time).
//!
//! Every run checks what it receives: each round must deliver exactly the K expected
//! notifications (one per socket made readable, no duplicate, nothing left over afterwards),
//! every wait has a timeout, and a watchdog ends a stuck run with an error. A failing or
//! panicking mechanism (for example a core still at `todo!()`) shows as an error and makes
//! the exit status non-zero; the other mechanisms still run.
//!
//! `echo` (see `echo.rs`) is the echo demo's server written once per mechanism, all under the
//! same multiplexed TCP load: requests/s, p50/p99 latency and server CPU time per request.

mod churn;
mod echo;
mod postwake;
mod ready;
mod util;

use ready::{Mech, Mode};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use util::{fmt_ns, group, guarded, PairKind, Pairs, Plan};

const SCENARIOS: [&str; 5] = ["rearm", "burst", "churn", "postwake", "echo"];

struct Opts {
    quick: bool,
    markdown: bool,
    kind: PairKind,
    reps: usize,
    mechs: Vec<Mech>,
    scenarios: Vec<String>,
    echo: echo::Config,
    /// Runs per mechanism of the echo scenario (`--reps`, else 5; quick 1).
    echo_reps: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: socknotify-bench [--quick] [--markdown] [--tcp] [--reps N] [--batch N] [--wall] \
         [--mech epoll,mio,polling,socknotify,sn-epoll] [--echo-conns C] [--echo-reqs M] [--echo-size B] \
         [--echo-workers W] [--echo-clients T] [--echo-seconds S] [{}]...\n\
         scenarios (default: all): rearm, burst, churn, postwake, and echo (the echo demo's TCP server \
         written once per mechanism under one shared load: requests/s, p50/p99, server CPU per request; \
         defaults 200 connections x 200 requests of 64 bytes, 2 workers, 2 client threads, 5 runs per \
         mechanism, quick 100 x 100 and 1 run)",
        SCENARIOS.join("|")
    );
    std::process::exit(2);
}

fn parse_args() -> Opts {
    let mut o = Opts {
        quick: false,
        markdown: false,
        kind: PairKind::Unix,
        reps: 0,
        mechs: Mech::ALL.to_vec(),
        scenarios: Vec::new(),
        echo: echo::Config::new(false),
        echo_reps: 0,
    };
    // Applied after the loop, over the defaults of --quick (which may come later).
    let mut echo_set: Vec<(String, usize)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--markdown" => o.markdown = true,
            "--tcp" => o.kind = PairKind::Tcp,
            "--wall" => util::set_wall_clock(true),
            "--batch" => ready::set_out_len(
                args.next().and_then(|v| v.parse().ok()).filter(|&v| v > 0).unwrap_or_else(|| usage()),
            ),
            "--unix" => o.kind = PairKind::Unix,
            "--reps" => o.reps = args.next().and_then(|v| v.parse().ok()).filter(|&v| v > 0).unwrap_or_else(|| usage()),
            "--mech" => {
                let list = args.next().unwrap_or_else(|| usage());
                let mut m = vec![Mech::Baseline];
                for name in list.split(',') {
                    match Mech::ALL.iter().find(|x| x.name() == name) {
                        Some(&x) if x != Mech::Baseline => m.push(x),
                        Some(_) => {}
                        None => usage(),
                    }
                }
                o.mechs = m;
            }
            "--echo-conns" | "--echo-reqs" | "--echo-size" | "--echo-workers" | "--echo-clients" | "--echo-seconds" => {
                let v = args.next().and_then(|v| v.parse().ok()).filter(|&v| v > 0).unwrap_or_else(|| usage());
                echo_set.push((a.clone(), v));
            }
            "-h" | "--help" => usage(),
            s if SCENARIOS.contains(&s) => o.scenarios.push(s.to_string()),
            _ => usage(),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    o.echo_reps = if o.reps > 0 {
        o.reps
    } else if o.quick {
        1
    } else {
        5
    };
    if o.reps == 0 {
        o.reps = if o.quick { 3 } else { 7 };
    }
    o.echo = echo::Config::new(o.quick);
    for (f, v) in echo_set {
        match f.as_str() {
            "--echo-conns" => o.echo.conns = v,
            "--echo-reqs" => o.echo.requests = v,
            "--echo-size" => o.echo.size = v,
            "--echo-workers" => o.echo.workers = v,
            "--echo-clients" => o.echo.clients = v,
            _ => o.echo.limit = Duration::from_secs(v as u64),
        }
    }
    o
}

// --- watchdog -----------------------------------------------------------------------------------

static STAGE: Mutex<Option<(String, Instant)>> = Mutex::new(None);

fn stage(name: String) {
    eprintln!("  {name}");
    *STAGE.lock().unwrap() = Some((name, Instant::now()));
}

/// Ends the process with a clear message if one stage runs longer than `limit`.
fn start_watchdog(limit: Duration) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        if let Some((name, t0)) = STAGE.lock().unwrap().as_ref() {
            if t0.elapsed() > limit {
                eprintln!("error: watchdog: `{name}` has run for more than {limit:?}; a wait is stuck (missing notification?)");
                std::process::exit(3);
            }
        }
    });
}

// --- results ------------------------------------------------------------------------------------

/// One table row: per mechanism, samples of ns per unit (one per timed slice or run), or an
/// error.
struct Row {
    scenario: &'static str,
    n: usize,
    k: usize,
    /// Notifications (or sockets, for churn) timed per mechanism and repetition.
    units: u64,
    samples: Vec<Vec<f64>>,
    /// Per mechanism, socknotify's system calls per unit, per sample (socknotify variants).
    sn_syscalls: Vec<Vec<f64>>,
    errors: Vec<Option<String>>,
}

impl Row {
    fn new(scenario: &'static str, n: usize, k: usize) -> Row {
        Row {
            scenario,
            n,
            k,
            units: 0,
            samples: vec![Vec::new(); Mech::ALL.len()],
            sn_syscalls: vec![Vec::new(); Mech::ALL.len()],
            errors: vec![None; Mech::ALL.len()],
        }
    }
    fn failed(&self, m: Mech) -> bool {
        self.errors[m as usize].is_some()
    }
    fn record(&mut self, m: Mech, r: Result<Vec<ready::Sample>, String>, units: u64) {
        match r {
            Ok(v) => {
                self.units = units;
                for s in v {
                    self.samples[m as usize].push(s.ns);
                    if m.is_socknotify() {
                        self.sn_syscalls[m as usize].push(s.sn_syscalls);
                    }
                }
            }
            Err(e) => {
                eprintln!("  error: {} {} N={} K={}: {e}", self.scenario, m.name(), self.n, self.k);
                self.errors[m as usize] = Some(e);
            }
        }
    }
    /// Median ns per unit, or None.
    fn per_unit(&self, m: Mech) -> Option<f64> {
        if self.failed(m) || self.samples[m as usize].is_empty() {
            return None;
        }
        Some(fmedian(&self.samples[m as usize]))
    }
    /// socknotify's median system calls per unit, for variant `m`.
    fn sn_syscalls_per_unit(&self, m: Mech) -> Option<f64> {
        let v = &self.sn_syscalls[m as usize];
        if v.is_empty() || self.failed(m) {
            return None;
        }
        Some(fmedian(v))
    }
    fn overhead(&self, m: Mech) -> Option<f64> {
        Some(self.per_unit(m)? - self.per_unit(Mech::Baseline).unwrap_or(0.0))
    }
}

fn fmedian(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn rotated(mechs: &[Mech], rep: usize) -> Vec<Mech> {
    let mut v = mechs.to_vec();
    let len = v.len();
    v.rotate_left(rep % len.max(1));
    v
}

// --- scenarios ----------------------------------------------------------------------------------

/// Slices per plan and repetition when all mechanisms run side by side.
const SLICES: usize = 10;

/// Runs `plans` for every mechanism of `o.mechs` over `n` fresh pairs each, `o.reps` times,
/// recording into `rows` (one per plan). When every mechanism's pairs fit under the
/// descriptor limit at once, the mechanisms run side by side, taking turns slice by slice;
/// otherwise one at a time, the order rotating every repetition.
fn run_ready(o: &Opts, name: &str, mode: Mode, n: usize, plans: &[Plan], rows: &mut [Row]) {
    let side_by_side = n * o.mechs.len() <= util::max_pairs(util::raise_nofile());
    for rep in 0..o.reps {
        let live: Vec<Mech> = o.mechs.iter().copied().filter(|&m| !rows[0].failed(m)).collect();
        if live.is_empty() {
            return;
        }
        let groups: Vec<Vec<Mech>> =
            if side_by_side { vec![live.clone()] } else { rotated(&live, rep).into_iter().map(|m| vec![m]).collect() };
        for group in groups {
            let names: Vec<&str> = group.iter().map(|m| m.name()).collect();
            stage(format!("{name} N={n} rep {}/{} {}", rep + 1, o.reps, names.join(",")));
            let pairs: Vec<Result<Pairs, String>> = group.iter().map(|_| Pairs::new(o.kind, n)).collect();
            if let Some(Err(e)) = pairs.iter().find(|p| p.is_err()) {
                eprintln!("error: cannot create {n} socket pairs: {e}");
                std::process::exit(1);
            }
            let pairs: Vec<Pairs> = pairs.into_iter().map(|p| p.unwrap()).collect();
            let lanes: Vec<(Mech, &Pairs)> = group.iter().copied().zip(pairs.iter()).collect();
            let slices = if side_by_side { SLICES } else { SLICES / 2 };
            let results = ready::run_lanes(&lanes, mode, plans, slices, rep);
            for (&m, res) in group.iter().zip(results) {
                match res {
                    Ok(per_plan) => {
                        for ((row, plan), v) in rows.iter_mut().zip(plans).zip(per_plan) {
                            row.record(m, Ok(v), (plan.rounds * plan.k) as u64);
                        }
                    }
                    Err(e) => {
                        for (row, plan) in rows.iter_mut().zip(plans) {
                            row.record(m, Err(e.clone()), (plan.rounds * plan.k) as u64);
                        }
                    }
                }
            }
        }
    }
}

fn scen_rearm(o: &Opts, rows: &mut Vec<Row>) {
    let (n, k, rounds) = if o.quick { (1000, 64, 200) } else { (1000, 64, 2000) };
    let plan = Plan::new(n, k, rounds, rounds / 10, 0x9e37_79b9_7f4a_7c15);
    let mut new = vec![Row::new("rearm", n, k)];
    run_ready(o, "rearm", Mode::Oneshot, n, std::slice::from_ref(&plan), &mut new);
    rows.extend(new);
}

fn scen_burst(o: &Opts, rows: &mut Vec<Row>, max_pairs: usize) {
    let ns: Vec<usize> = if o.quick { vec![1000] } else { vec![1000, 5000, max_pairs] };
    let ks: Vec<usize> = if o.quick { vec![1, 64] } else { vec![1, 64, 1024] };
    let budget = if o.quick { 4096 } else { 32768 };
    for &n in &ns {
        if n == 0 || n > max_pairs {
            continue;
        }
        let plans: Vec<Plan> = ks
            .iter()
            .filter(|&&k| k <= n)
            .map(|&k| {
                let rounds = (budget / k).clamp(20, 4000);
                Plan::new(n, k, rounds, (rounds / 10).max(2), 0x2545_f491_4f6c_dd1d ^ k as u64)
            })
            .collect();
        let mut new: Vec<Row> = plans.iter().map(|p| Row::new("burst", n, p.k)).collect();
        run_ready(o, "burst", Mode::Level, n, &plans, &mut new);
        rows.extend(new);
    }
}

fn scen_churn(o: &Opts, rows: &mut Vec<Row>, max_pairs: usize) {
    let ns: Vec<usize> = if o.quick { vec![1000] } else { vec![1000, max_pairs] };
    for n in ns {
        let mut row = Row::new("churn", n, 0);
        for rep in 0..o.reps {
            for m in rotated(&o.mechs, rep) {
                if m == Mech::Baseline || row.failed(m) {
                    continue;
                }
                stage(format!("churn N={n} rep {}/{} {}", rep + 1, o.reps, m.name()));
                let r = guarded(|| {
                    let pairs = Pairs::new(o.kind, n)?;
                    churn::run(m, &pairs)
                })
                .map(|t| {
                    vec![ready::Sample { ns: t.ns as f64 / n as f64, sn_syscalls: t.sn_syscalls as f64 / n as f64 }]
                });
                row.record(m, r, n as u64);
            }
        }
        rows.push(row);
    }
}

/// One mechanism's echo runs.
struct EchoRow {
    mech: Mech,
    runs: Vec<echo::Outcome>,
    error: Option<String>,
}

impl EchoRow {
    /// The median over the runs of `f`.
    fn med(&self, f: impl Fn(&echo::Outcome) -> f64) -> Option<f64> {
        if self.error.is_some() || self.runs.is_empty() {
            return None;
        }
        Some(fmedian(&self.runs.iter().map(f).collect::<Vec<f64>>()))
    }
}

/// The echo scenario: every mechanism but the baseline, `o.echo_reps` runs each, the order
/// rotating every repetition; a fresh server and fresh connections every run.
fn scen_echo(o: &Opts) -> Vec<EchoRow> {
    let mechs: Vec<Mech> = o.mechs.iter().copied().filter(|&m| m != Mech::Baseline).collect();
    let mut rows: Vec<EchoRow> = mechs.iter().map(|&mech| EchoRow { mech, runs: Vec::new(), error: None }).collect();
    let need = (2 * o.echo.conns + 300) as u64;
    if util::raise_nofile() < need {
        let e = format!("{} connections need about {need} descriptors (RLIMIT_NOFILE is lower)", o.echo.conns);
        eprintln!("  error: echo: {e}");
        for r in &mut rows {
            r.error = Some(e.clone());
        }
        return rows;
    }
    for rep in 0..o.echo_reps {
        for m in rotated(&mechs, rep) {
            let row = rows.iter_mut().find(|r| r.mech == m).unwrap();
            if row.error.is_some() {
                continue;
            }
            stage(format!("echo rep {}/{} {}", rep + 1, o.echo_reps, m.name()));
            match guarded(|| echo::run(m, &o.echo)) {
                Ok(out) => {
                    eprintln!(
                        "    {:.0} requests/s, p50 {:.1} us, p99 {:.1} us, max {:.1} us, server CPU {:.2} us/request, \
                         first connection done at {:.0} % of the run",
                        out.rate(),
                        out.p50_ns as f64 / 1e3,
                        out.p99_ns as f64 / 1e3,
                        out.max_ns as f64 / 1e3,
                        out.server_cpu_ns as f64 / 1e3 / out.requests as f64,
                        100.0 * out.first_done_secs / out.secs
                    );
                    row.runs.push(out);
                }
                Err(e) => {
                    eprintln!("  error: echo {}: {e}", m.name());
                    row.error = Some(e);
                }
            }
        }
    }
    rows
}

struct WakeRow {
    mech: Mech,
    /// Round trips with both threads on one CPU.
    same: Vec<u64>,
    /// Round trips with the threads on two CPUs.
    rtt: Vec<u64>,
    rates: Vec<f64>,
    error: Option<String>,
}

fn scen_postwake(o: &Opts) -> Vec<WakeRow> {
    let (pings, posts) = if o.quick { (2_000usize, 100_000u64) } else { (20_000, 1_000_000) };
    let per_rep = (pings / o.reps).max(1);
    let cpus = postwake::cpus();
    let (c0, c1) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));
    let mut rows: Vec<WakeRow> = o
        .mechs
        .iter()
        .map(|&mech| WakeRow { mech, same: Vec::new(), rtt: Vec::new(), rates: Vec::new(), error: None })
        .collect();
    for rep in 0..o.reps {
        for (i, _) in rotated(&o.mechs, rep).iter().enumerate() {
            let idx = (i + rep) % rows.len();
            let row = &mut rows[idx];
            if row.error.is_some() {
                continue;
            }
            let m = row.mech;
            stage(format!("postwake rep {}/{} {}", rep + 1, o.reps, m.name()));
            let r = guarded(|| {
                let warm = if rep == 0 { 500 } else { 50 };
                let same = postwake::pingpong(m, per_rep, warm, (c0, c0))?;
                let rtt = postwake::pingpong(m, per_rep, warm, (c0, c1))?;
                let rate = postwake::throughput(m, posts / o.reps as u64)?;
                Ok((same, rtt, rate))
            });
            match r {
                Ok((same, rtt, rate)) => {
                    row.same.extend(same);
                    row.rtt.extend(rtt);
                    row.rates.push(rate);
                }
                Err(e) => {
                    eprintln!("  error: postwake {}: {e}", m.name());
                    row.error = Some(e);
                }
            }
        }
    }
    for r in &mut rows {
        r.rtt.sort_unstable();
        r.same.sort_unstable();
    }
    rows
}

// --- output -------------------------------------------------------------------------------------

/// Prints a padded Markdown table; the first `left` columns are left-aligned.
fn print_table(header: &[String], body: &[Vec<String>], left: usize) {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in body {
        for (j, c) in r.iter().enumerate() {
            w[j] = w[j].max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (j, c) in cells.iter().enumerate() {
            if j < left {
                s += &format!(" {:<w$} |", c, w = w[j]);
            } else {
                s += &format!(" {:>w$} |", c, w = w[j]);
            }
        }
        println!("{s}");
    };
    line(header);
    let mut sep = String::from("|");
    for (j, wj) in w.iter().enumerate().take(cols) {
        sep += &if j < left { format!(" {} |", "-".repeat(*wj)) } else { format!(" {}: |", "-".repeat(wj - 1)) };
    }
    println!("{sep}");
    for r in body {
        line(r);
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn cell(row: &Row, m: Mech) -> String {
    if row.failed(m) {
        return "ERROR".into();
    }
    match (row.overhead(m), row.per_unit(m)) {
        (Some(o), Some(t)) => format!("{} ({})", fmt_ns(o), fmt_ns(t)),
        _ => "-".into(),
    }
}

fn print_ready(rows: &[Row], mechs: &[Mech]) {
    let ready: Vec<&Row> = rows.iter().filter(|r| r.scenario != "churn").collect();
    if !ready.is_empty() {
        println!();
        println!("Overhead per notification in ns, with the total per notification in brackets");
        println!("(overhead = median ns per notification with the mechanism - median ns per notification");
        println!("of the same writes and reads with no mechanism). Lower is better.");
        println!();
        let mut header =
            vec!["scenario".to_string(), "N".into(), "K".into(), "notifications".into(), "no mechanism".into()];
        for &m in mechs.iter().filter(|&&m| m != Mech::Baseline) {
            header.push(m.name().into());
        }
        let sn: Vec<Mech> = mechs.iter().copied().filter(|m| m.is_socknotify()).collect();
        for m in &sn {
            header.push(format!("{}/epoll", m.name()));
        }
        for m in &sn {
            header.push(format!("{} syscalls/notif", m.name()));
        }
        let body: Vec<Vec<String>> = ready
            .iter()
            .map(|r| {
                let mut v = vec![
                    r.scenario.to_string(),
                    group(r.n as i64),
                    group(r.k as i64),
                    group(r.units as i64),
                    r.per_unit(Mech::Baseline).map(fmt_ns).unwrap_or_else(|| "-".into()),
                ];
                for &m in mechs.iter().filter(|&&m| m != Mech::Baseline) {
                    v.push(cell(r, m));
                }
                for &m in &sn {
                    v.push(ratio(r.overhead(m), r.overhead(Mech::Epoll)));
                }
                for &m in &sn {
                    v.push(r.sn_syscalls_per_unit(m).map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into()));
                }
                v
            })
            .collect();
        print_table(&header, &body, 1);
    }
    let churn: Vec<&Row> = rows.iter().filter(|r| r.scenario == "churn").collect();
    if !churn.is_empty() {
        println!();
        println!("churn: ns per socket to register it and remove it again (socknotify: ENABLE, REMOVE,");
        println!("and dequeue the REMOVE packet; batches of {} registrations per process call).", ready::BATCH);
        println!();
        let mut header = vec!["scenario".to_string(), "N".into()];
        for &m in mechs.iter().filter(|&&m| m != Mech::Baseline) {
            header.push(m.name().into());
        }
        let sn: Vec<Mech> = mechs.iter().copied().filter(|m| m.is_socknotify()).collect();
        for m in &sn {
            header.push(format!("{}/epoll", m.name()));
        }
        for m in &sn {
            header.push(format!("{} syscalls/socket", m.name()));
        }
        let body: Vec<Vec<String>> = churn
            .iter()
            .map(|r| {
                let mut v = vec!["churn".to_string(), group(r.n as i64)];
                for &m in mechs.iter().filter(|&&m| m != Mech::Baseline) {
                    v.push(if r.failed(m) {
                        "ERROR".into()
                    } else {
                        r.per_unit(m).map(fmt_ns).unwrap_or_else(|| "-".into())
                    });
                }
                for &m in &sn {
                    v.push(ratio(r.per_unit(m), r.per_unit(Mech::Epoll)));
                }
                for &m in &sn {
                    v.push(r.sn_syscalls_per_unit(m).map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into()));
                }
                v
            })
            .collect();
        print_table(&header, &body, 1);
    }
}

fn print_wake(rows: &[WakeRow]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!("postwake: round trip between two threads (two post->wake hops), both threads pinned to one");
    println!("CPU, then to two CPUs; and posts/s with one thread posting and one consuming in batches on");
    println!("two CPUs (eventfd, mio Waker and polling notify() coalesce wakes; socknotify queues and");
    println!("delivers every packet, checked in FIFO order).");
    println!();
    let header: Vec<String> =
        ["mechanism", "what", "1 CPU RTT p50 (ns)", "1 CPU p99", "2 CPUs RTT p50 (ns)", "2 CPUs p99", "posts/s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let what = |m: Mech| match m {
        Mech::Baseline => "eventfd, blocking read",
        Mech::Epoll => "eventfd in epoll",
        Mech::Mio => "mio::Waker",
        Mech::Polling => "Poller::notify",
        Mech::Socknotify | Mech::SocknotifyEpoll => "post / dequeue",
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            if r.error.is_some() {
                let mut v = vec![r.mech.name().into(), what(r.mech).into()];
                v.extend((0..5).map(|_| "ERROR".to_string()));
                return v;
            }
            let (s50, s99) = postwake::p50_p99(&r.same);
            let (p50, p99) = postwake::p50_p99(&r.rtt);
            let mut rates = r.rates.clone();
            rates.sort_by(|a, b| a.total_cmp(b));
            let rate = if rates.is_empty() { 0.0 } else { rates[rates.len() / 2] };
            vec![
                r.mech.name().into(),
                what(r.mech).into(),
                group(s50 as i64),
                group(s99 as i64),
                group(p50 as i64),
                group(p99 as i64),
                group(rate.round() as i64),
            ]
        })
        .collect();
    print_table(&header, &body, 2);
    let get = |m: Mech, one: bool| {
        rows.iter()
            .find(|r| r.mech == m && r.error.is_none())
            .map(|r| postwake::p50_p99(if one { &r.same } else { &r.rtt }).0 as f64)
    };
    println!();
    for m in [Mech::Socknotify, Mech::SocknotifyEpoll] {
        if rows.iter().any(|r| r.mech == m) {
            println!(
                "{}/epoll RTT p50: {} on 1 CPU, {} on 2 CPUs",
                m.name(),
                ratio(get(m, true), get(Mech::Epoll, true)),
                ratio(get(m, false), get(Mech::Epoll, false))
            );
        }
    }
}

fn print_echo(rows: &[EchoRow], o: &Opts) {
    if rows.is_empty() {
        return;
    }
    let c = &o.echo;
    println!();
    println!(
        "echo: the echo demo's server per mechanism, {} workers; load: {} TCP loopback connections x {} requests \
         of {} bytes, one outstanding per connection, {} client threads on raw epoll, every byte checked.",
        c.workers, c.conns, c.requests, c.size, c.clients
    );
    println!(
        "Each cell is the median of {} run(s) per mechanism (order rotating, fresh server each run). requests/s and \
         latency are wall-clock (they move with the machine's load); server CPU = CPU time of the worker \
         threads per request (user + kernel), client CPU likewise for the client threads; wakeups = \
         connection notifications the server handled per request; 1st conn done = when the first connection \
         finished its requests (a server that keeps every connection at the same pace: near 100 %; the \
         requests/s of a less fair one suffer from the tail where few connections are left).",
        o.echo_reps
    );
    println!();
    let header: Vec<String> = [
        "mechanism",
        "requests/s",
        "req/s min-max",
        "p50 (us)",
        "p99 (us)",
        "server CPU/req (us)",
        "client CPU/req (us)",
        "wakeups/req",
        "1st conn done (% of run)",
        "req/s vs epoll",
        "server CPU vs epoll",
        "socknotify syscalls/req",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let epoll = rows.iter().find(|r| r.mech == Mech::Epoll);
    let per_req = |r: &echo::Outcome, ns: u64| ns as f64 / 1e3 / r.requests as f64;
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.mech.name().to_string()];
            if r.error.is_some() {
                v.extend((0..header.len() - 1).map(|_| "ERROR".to_string()));
                return v;
            }
            let rate = r.med(|x| x.rate());
            let cpu = r.med(|x| per_req(x, x.server_cpu_ns));
            let (lo, hi) =
                r.runs.iter().map(|x| x.rate()).fold((f64::INFINITY, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
            let f1 = |x: Option<f64>| x.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
            let f2 = |x: Option<f64>| x.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
            v.push(rate.map(|x| group(x.round() as i64)).unwrap_or_else(|| "-".into()));
            v.push(format!("{}-{}", group(lo.round() as i64), group(hi.round() as i64)));
            v.push(f1(r.med(|x| x.p50_ns as f64 / 1e3)));
            v.push(f1(r.med(|x| x.p99_ns as f64 / 1e3)));
            v.push(f2(cpu));
            v.push(f2(r.med(|x| per_req(x, x.client_cpu_ns))));
            v.push(f2(r.med(|x| x.wakeups as f64 / x.requests as f64)));
            v.push(
                r.med(|x| 100.0 * x.first_done_secs / x.secs).map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into()),
            );
            v.push(ratio(rate, epoll.and_then(|e| e.med(|x| x.rate()))));
            v.push(ratio(cpu, epoll.and_then(|e| e.med(|x| per_req(x, x.server_cpu_ns)))));
            v.push(if r.mech.is_socknotify() {
                f2(r.med(|x| x.sn_syscalls.unwrap_or(0) as f64 / x.requests as f64))
            } else {
                "-".into()
            });
            v
        })
        .collect();
    print_table(&header, &body, 1);
}

fn print_method(o: &Opts) {
    println!(
        "{} repetitions, fresh pairs each; a cell is the median of its samples (readiness: one per \
         slice of rounds, mechanisms taking turns; churn: one per repetition; postwake: all round \
         trips); rearm = oneshot + re-arm per event \
         (socknotify: LEVEL_ONESHOT re-enabled in the next process call), burst = persistent level \
         registrations (mio is edge-triggered: it has no level mode); every mechanism collects \
         into a buffer of {} entries. Timed with {}.",
        o.reps,
        ready::out_len(),
        if util::wall_clock() {
            "wall-clock time"
        } else {
            "the thread's CPU time (user + kernel; rearm, burst and churn run on one thread and never \
             block), so other processes' load does not count; --wall for wall-clock time"
        }
    );
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them.
fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

fn main() {
    let o = parse_args();
    let nofile = util::raise_nofile();
    // The largest N of burst and churn (quick runs stay at 1,000).
    let max_pairs = util::max_pairs(nofile).min(if o.quick { 1000 } else { usize::MAX });
    start_watchdog(Duration::from_secs(if o.quick { 30 } else { 90 }));
    let t0 = Instant::now();
    let cmd: Vec<String> = std::env::args().skip(1).collect();
    eprintln!(
        "socknotify-bench: {} reps, sockets: {}, RLIMIT_NOFILE {nofile} -> up to {max_pairs} pairs",
        o.reps,
        o.kind.describe()
    );

    let mut rows = Vec::new();
    let mut wake = Vec::new();
    let mut echo_rows = Vec::new();
    for s in &o.scenarios {
        match s.as_str() {
            "rearm" => scen_rearm(&o, &mut rows),
            "burst" => scen_burst(&o, &mut rows, max_pairs),
            "churn" => scen_churn(&o, &mut rows, max_pairs),
            "postwake" => wake = scen_postwake(&o),
            "echo" => echo_rows = scen_echo(&o),
            _ => unreachable!(),
        }
    }
    *STAGE.lock().unwrap() = None;

    if o.markdown {
        println!("### socknotify-bench");
        println!();
        println!("`cargo run --release -p socknotify-bench -- {}`", cmd.join(" "));
        println!();
    } else {
        println!("socknotify-bench {}", cmd.join(" "));
    }
    let pairs_used = o.scenarios.iter().any(|s| s != "echo");
    if pairs_used {
        println!("Machine: {}. Sockets: {}.", machine(), o.kind.describe());
    } else {
        println!("Machine: {}. Load average: {}.", machine(), loadavg());
    }
    let backend = match Mech::Socknotify.port() {
        Ok(p) => {
            let b = format!("{:?}", p.backend());
            p.close();
            b
        }
        Err(e) => format!("unavailable ({e})"),
    };
    println!(
        "socknotify = the default backend (Backend::Auto, which resolved to {backend} here); sn-epoll = \
         Backend::Epoll (plain epoll system calls)."
    );
    if pairs_used {
        print_method(&o);
    }
    print_ready(&rows, &o.mechs);
    print_wake(&wake);
    print_echo(&echo_rows, &o);
    if pairs_used && !echo_rows.is_empty() {
        println!();
        println!("Load average at the end: {}.", loadavg());
    }

    let mut errors = Vec::new();
    for r in &rows {
        for m in Mech::ALL {
            if let Some(e) = &r.errors[m as usize] {
                errors.push(format!("{} N={} K={} {}: {e}", r.scenario, r.n, r.k, m.name()));
            }
        }
    }
    for w in &wake {
        if let Some(e) = &w.error {
            errors.push(format!("postwake {}: {e}", w.mech.name()));
        }
    }
    for r in &echo_rows {
        if let Some(e) = &r.error {
            errors.push(format!("echo {}: {e}", r.mech.name()));
        }
    }
    println!();
    println!("({:.1} s)", t0.elapsed().as_secs_f64());
    if !errors.is_empty() {
        eprintln!();
        for e in &errors {
            eprintln!("error: {e}");
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    //! Self-checks: each mechanism, socknotify included, must deliver exactly the expected
    //! notifications (a broken core fails here instead of producing a fast number).
    use super::*;

    fn check(mech: Mech, mode: Mode, n: usize, k: usize) {
        let pairs = Pairs::new(PairKind::Unix, n).unwrap();
        let plans = [Plan::new(n, k, 40, 4, 7), Plan::new(n, 1, 40, 4, 9)];
        let mut r = ready::run_lanes(&[(mech, &pairs)], mode, &plans, 3, 0);
        let t = r.pop().unwrap().unwrap_or_else(|e| panic!("{} {mode:?}: {e}", mech.name()));
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|slices| slices.len() == 3));
    }

    #[test]
    fn lanes_side_by_side() {
        let a = Pairs::new(PairKind::Unix, 100).unwrap();
        let b = Pairs::new(PairKind::Unix, 100).unwrap();
        let plans = [Plan::new(100, 8, 20, 2, 5)];
        for r in ready::run_lanes(&[(Mech::Baseline, &a), (Mech::Epoll, &b)], Mode::Oneshot, &plans, 4, 1) {
            assert_eq!(r.unwrap()[0].len(), 4);
        }
    }

    #[test]
    fn baselines_deliver_exactly_the_expected_notifications() {
        for m in [Mech::Baseline, Mech::Epoll, Mech::Mio, Mech::Polling] {
            check(m, Mode::Oneshot, 200, 32);
            check(m, Mode::Level, 200, 32);
        }
    }

    #[test]
    fn socknotify_delivers_exactly_the_expected_notifications() {
        for m in [Mech::Socknotify, Mech::SocknotifyEpoll] {
            check(m, Mode::Oneshot, 200, 32);
            check(m, Mode::Level, 200, 32);
            let pairs = Pairs::new(PairKind::Unix, 300).unwrap();
            churn::run(m, &pairs).unwrap();
            let c = postwake::cpus();
            postwake::pingpong(m, 200, 10, (c[0], *c.last().unwrap())).unwrap();
            postwake::throughput(m, 10_000).unwrap();
        }
    }

    #[test]
    fn expect_rejects_duplicates_and_strangers() {
        let mut e = util::Expect::new(4);
        e.round = 1;
        e.arm(2);
        assert!(e.take(1).is_err(), "not made readable");
        assert!(e.take(9).is_err(), "unknown key");
        e.take(2).unwrap();
        assert!(e.take(2).is_err(), "duplicate");
        assert_eq!(e.pending, 0);
    }

    #[test]
    fn plan_rounds_hold_distinct_sockets() {
        let p = Plan::new(100, 64, 10, 0, 3);
        for r in 0..10 {
            let mut v = p.round(r).to_vec();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), 64);
        }
    }
}
