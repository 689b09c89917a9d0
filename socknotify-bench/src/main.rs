//! `socknotify-bench`: what socknotify costs, next to raw epoll (the reference of every
//! ratio), mio and polling, all measured in one run on the same machine, every cell
//! interleaved (each repetition runs every mechanism once, in a rotating order).
//!
//! ```text
//! cargo run --release -p socknotify-bench -- [--quick] [--markdown] [--reps R] [--mech LIST]
//!     [--n LIST] [--k LIST] [--conns LIST] [--workers LIST] [--requests M] [--posts P]
//!     [--batch B] [--tcp] [--wall] [burst] [rearm] [churn] [echo-edge] [echo] [echo-async] [posts]
//!     [heap] [wake]
//! ```
//!
//! Every scenario checks what it receives (exact notifications, echoed bytes, packets in FIFO
//! order); a failing or panicking mechanism shows as `ERROR` in its row and makes the exit
//! status 1, while the other mechanisms go on; a watchdog ends a stuck stage (exit status 3).
//! See `socknotify-bench/README.md` for the method and the scenarios.

mod churn;
mod cli;
mod echo;
mod heap;
mod pairs;
mod posts;
mod ready;
mod run;
mod stats;
mod sys;
mod table;
mod wake;

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heap::Counting = heap::Counting;

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

fn backend() -> String {
    match run::Mech::Socknotify.port(0) {
        Ok(p) => {
            let b = format!("{:?}", p.backend());
            p.close();
            b
        }
        Err(e) => format!("unavailable ({e})"),
    }
}

fn main() {
    let o = cli::parse(std::env::args().skip(1).collect());
    let nofile = sys::raise_nofile();
    start(&o, nofile);
}

fn start(o: &cli::Opts, nofile: u64) {
    run::start_watchdog(Duration::from_secs(if o.quick { 30 } else { 120 }));
    let t0 = Instant::now();
    let command = o.command();
    eprintln!("socknotify-bench: {} repetitions, RLIMIT_NOFILE {nofile}", o.reps);
    let load0 = loadavg();
    let mut tables = Vec::new();
    let mut errors = Vec::new();
    for s in &o.scenarios {
        let (t, e) = match s.as_str() {
            "burst" => ready::scenario(o, false, nofile),
            "rearm" => ready::scenario(o, true, nofile),
            "churn" => churn::scenario(o),
            "echo-edge" => echo::scenario(o, true, nofile),
            "echo" => echo::scenario(o, false, nofile),
            "echo-async" => echo::scenario_async(o, nofile),
            "posts" => posts::scenario(o),
            "heap" => heap::scenario(o),
            "wake" => wake::scenario(o),
            _ => unreachable!(),
        };
        run::stage_done();
        tables.push(t);
        errors.extend(e);
    }

    let header = format!(
        "Machine: {}. socknotify's default backend resolved to {} (sn-epoll = Backend::Epoll). Sockets: {}. \
         RLIMIT_NOFILE {nofile}. Load average {} at the start, {} at the end. \
         A ratio is the median of the per-repetition ratios; in parentheses, from 5 repetitions on, a \
         confidence interval of at least 90% for that median, whatever the figures' distribution (the sign \
         test's: with 5 to 7 repetitions the ratios' whole range, from 8 on a narrower one).{}",
        machine(),
        backend(),
        o.kind.describe(),
        load0,
        loadavg(),
        if cfg!(debug_assertions) { " DEBUG BUILD: the figures mean nothing." } else { "" }
    );
    if o.markdown {
        println!("{header}\n");
    } else {
        println!("socknotify-bench: {command}\n{header}\n");
    }
    for t in &tables {
        println!("{}", t.render(o.markdown, &command));
    }
    println!("({:.1} s)", t0.elapsed().as_secs_f64());
    if !errors.is_empty() {
        eprintln!();
        for e in &errors {
            eprintln!("error: {e}");
        }
        std::process::exit(1);
    }
}
