//! How every scenario runs and reports: the mechanisms, the interleaved repetitions, the
//! stopwatch, the watchdog, and the table of one scenario's cells.

use crate::stats::{median, median_interval, pair_ratios, summary, Fmt, CONFIDENCE};
use crate::table::Table;
use socknotify::{Backend, CompletionPort};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Result type of everything fallible in the benchmark: a message that says what went wrong.
pub type Res<T> = Result<T, String>;

/// Adds context to an error.
pub fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// How long any single wait may block before the benchmark declares a notification missing.
pub const WAIT: Duration = Duration::from_secs(5);

// --- mechanisms ---------------------------------------------------------------------------------

/// Everything a scenario can compare. Each scenario runs the ones that apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mech {
    /// The same socket I/O with no notification mechanism (readiness scenarios).
    Baseline,
    /// Raw epoll, level-triggered and persistent, no re-arm: the physical floor of `rearm`.
    Floor,
    /// Raw epoll through libc: the reference of every ratio.
    Epoll,
    /// socknotify with its default backend (`Backend::Auto`: io_uring where the kernel has it).
    Socknotify,
    /// socknotify forced onto plain epoll system calls (`Backend::Epoll`).
    SnEpoll,
    /// socknotify (default backend) built with `Builder::closes_through_port(true)`: re-arms
    /// in user space.
    SnCtp,
    Mio,
    Polling,
    /// A mutex-protected queue plus an eventfd (the reference of `posts`).
    Queue,
    /// An eventfd with a blocking read (the reference of `wake`).
    EventFd,
    /// socknotify (default backend) awaited by tokio tasks through `socknotify::tokio::AsyncPort`
    /// (`echo-async`).
    SnTokio,
    /// Plain tokio, no socknotify: a task per connection on `tokio::net::TcpStream` (the
    /// reference of `echo-async`).
    Tokio,
}

impl Mech {
    /// The mechanisms `--mech` selects from (the references always run).
    pub const SELECTABLE: [Mech; 6] =
        [Mech::Epoll, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp, Mech::Mio, Mech::Polling];

    pub fn name(self) -> &'static str {
        match self {
            Mech::Baseline => "no mechanism",
            Mech::Floor => "epoll floor",
            Mech::Epoll => "epoll",
            Mech::Socknotify => "socknotify",
            Mech::SnEpoll => "sn-epoll",
            Mech::SnCtp => "sn-ctp",
            Mech::Mio => "mio",
            Mech::Polling => "polling",
            Mech::Queue => "queue+eventfd",
            Mech::EventFd => "eventfd",
            Mech::SnTokio => "sn-tokio",
            Mech::Tokio => "tokio",
        }
    }

    /// The name `--mech` takes.
    pub fn arg(self) -> &'static str {
        match self {
            Mech::Baseline => "baseline",
            Mech::Floor => "floor",
            Mech::Queue => "queue",
            Mech::EventFd => "eventfd",
            m => m.name(),
        }
    }

    pub fn is_socknotify(self) -> bool {
        matches!(self, Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp | Mech::SnTokio)
    }

    /// The mechanisms served by a tokio runtime (`echo-async`).
    pub fn is_tokio(self) -> bool {
        matches!(self, Mech::SnTokio | Mech::Tokio)
    }

    /// The system calls this mechanism made so far, as far as the calling thread can tell:
    /// the thread's own count (the bench's wrappers and the mio/polling models) plus, for
    /// socknotify, `CompletionPort::syscalls()` (process-wide: read it only while no other
    /// thread uses a port).
    pub fn calls(self) -> u64 {
        crate::sys::calls() + if self.is_socknotify() { CompletionPort::syscalls() } else { 0 }
    }

    /// The backend a socknotify variant asks for.
    pub fn backend(self) -> Backend {
        if self == Mech::SnEpoll {
            Backend::Epoll
        } else {
            Backend::Auto
        }
    }

    /// A port for this socknotify variant, with the given concurrency (0: processors).
    pub fn port(self, concurrency: u32) -> Res<CompletionPort> {
        ctx(
            CompletionPort::builder()
                .backend(self.backend())
                .concurrency(concurrency)
                .closes_through_port(self == Mech::SnCtp)
                .build(),
            "CompletionPort::build",
        )
    }
}

/// `mechs` rotated left by `rep`: every mechanism takes every place in turn.
pub fn rotated(mechs: &[Mech], rep: usize) -> Vec<Mech> {
    let mut v = mechs.to_vec();
    let len = v.len();
    v.rotate_left(rep % len.max(1));
    v
}

// --- stopwatch ----------------------------------------------------------------------------------

static WALL: AtomicBool = AtomicBool::new(false);

/// Use wall-clock time instead of the thread's CPU time for the single-threaded scenarios.
pub fn set_wall_clock(on: bool) {
    WALL.store(on, Ordering::Relaxed);
}

pub fn wall_clock() -> bool {
    WALL.load(Ordering::Relaxed)
}

/// A stopwatch for single-threaded timed sections. By default it reads the calling thread's
/// CPU time (`CLOCK_THREAD_CPUTIME_ID`: user + kernel time of this thread, its system calls
/// and the socket wake-ups they run included), so that other processes on a shared machine
/// do not add their time slices; `--wall` switches to wall-clock time. The sections it times
/// never block (the data is written before each wait).
pub struct Stopwatch {
    wall: Option<Instant>,
    cpu: u64,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        if wall_clock() {
            Stopwatch { wall: Some(Instant::now()), cpu: 0 }
        } else {
            Stopwatch { wall: None, cpu: crate::sys::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) }
        }
    }
    pub fn ns(&self) -> u64 {
        match self.wall {
            Some(t) => t.elapsed().as_nanos() as u64,
            None => crate::sys::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).saturating_sub(self.cpu),
        }
    }
}

// --- watchdog -----------------------------------------------------------------------------------

static STAGE: Mutex<Option<(String, Instant)>> = Mutex::new(None);

/// Names what runs now (printed on stderr; the watchdog times it).
pub fn stage(name: String) {
    eprintln!("  {name}");
    *STAGE.lock().unwrap() = Some((name, Instant::now()));
}

pub fn stage_done() {
    *STAGE.lock().unwrap() = None;
}

/// Ends the process with a clear message if one stage runs longer than `limit`.
pub fn start_watchdog(limit: Duration) {
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

/// Runs `f`, turning a panic into an error message (a `todo!()` or a failed assertion in the
/// core shows as a failed cell, not as a dead benchmark).
pub fn guarded<T>(f: impl FnOnce() -> Res<T>) -> Res<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = if let Some(s) = p.downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = p.downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown panic".to_string()
            };
            Err(format!("panicked: {msg}"))
        }
    }
}

// --- interleaved repetitions --------------------------------------------------------------------

/// One mechanism's repetitions in one cell: per repetition, its metrics (`None`: it did not
/// run, because an earlier repetition failed).
#[derive(Clone, Debug)]
pub struct Series {
    pub mech: Mech,
    pub reps: Vec<Option<Vec<f64>>>,
    pub error: Option<String>,
}

impl Series {
    /// Metric `i` of every repetition.
    pub fn metric(&self, i: usize) -> Vec<Option<f64>> {
        self.reps.iter().map(|r| r.as_ref().and_then(|v| v.get(i).copied())).collect()
    }
}

/// One cell of a scenario (one N, K, trigger, ...): its parameters and every mechanism's
/// repetitions.
#[derive(Clone, Debug)]
pub struct Cell {
    pub params: Vec<String>,
    pub series: Vec<Series>,
}

impl Cell {
    pub fn get(&self, m: Mech) -> Option<&Series> {
        self.series.iter().find(|s| s.mech == m)
    }

    /// Appends to every repetition of every series a metric: its metric `src` minus that of
    /// `reference` in the same repetition (the overhead over the no-mechanism baseline).
    pub fn push_difference(&mut self, src: usize, reference: Mech) {
        let base = self.get(reference).map(|s| s.metric(src)).unwrap_or_default();
        for s in &mut self.series {
            for (i, r) in s.reps.iter_mut().enumerate() {
                if let Some(v) = r {
                    let d = match (v.get(src), base.get(i).copied().flatten()) {
                        (Some(x), Some(b)) => x - b,
                        _ => f64::NAN,
                    };
                    v.push(d);
                }
            }
        }
    }

    /// "scenario params mech: error" for every failed series.
    pub fn errors(&self, scenario: &str) -> Vec<String> {
        self.series
            .iter()
            .filter_map(|s| {
                s.error.as_ref().map(|e| format!("{scenario} {} {}: {e}", self.params.join(" "), s.mech.name()))
            })
            .collect()
    }
}

/// Runs `reps` repetitions of every mechanism of `mechs`, **interleaved**: repetition `r`
/// runs each mechanism once, in an order rotated by `r`, before repetition `r + 1` starts;
/// so a slow moment of a shared machine falls on one repetition of every mechanism, not on
/// all repetitions of one. `one(mech, rep)` runs one repetition and returns its metrics. A
/// mechanism that fails (error or panic) keeps its error and is not run again.
pub fn interleave(
    what: &str,
    mechs: &[Mech],
    reps: usize,
    mut one: impl FnMut(Mech, usize) -> Res<Vec<f64>>,
) -> Vec<Series> {
    let mut series: Vec<Series> =
        mechs.iter().map(|&mech| Series { mech, reps: vec![None; reps], error: None }).collect();
    for rep in 0..reps {
        for m in rotated(mechs, rep) {
            let s = series.iter_mut().find(|s| s.mech == m).unwrap();
            if s.error.is_some() {
                continue;
            }
            stage(format!("{what} rep {}/{reps} {}", rep + 1, m.name()));
            match guarded(|| one(m, rep)) {
                Ok(v) => s.reps[rep] = Some(v),
                Err(e) => {
                    eprintln!("  error: {what} {}: {e}", m.name());
                    s.error = Some(e);
                }
            }
        }
    }
    series
}

// --- report -------------------------------------------------------------------------------------

/// A metric column: the median over the repetitions, and with `range` a min–max column.
pub struct Col {
    pub head: &'static str,
    pub metric: usize,
    pub fmt: Fmt,
    pub range: bool,
}

/// A ratio column: per repetition, this mechanism's `metric` over `reference`'s; the median
/// of those ratios.
pub struct Ratio {
    pub head: String,
    pub metric: usize,
    pub reference: Mech,
}

/// One row per cell and mechanism.
pub fn report(
    title: &str,
    intro: Vec<String>,
    params: &[&str],
    cells: &[Cell],
    cols: &[Col],
    ratios: &[Ratio],
) -> Table {
    let mut header: Vec<String> = params.iter().map(|s| s.to_string()).collect();
    header.push("mechanism".into());
    for c in cols {
        header.push(c.head.into());
        if c.range {
            header.push("min–max".into());
        }
    }
    for r in ratios {
        header.push(r.head.clone());
    }
    let mut rows = Vec::new();
    for cell in cells {
        for s in &cell.series {
            let mut row = cell.params.clone();
            row.push(s.mech.name().into());
            if s.error.is_some() {
                row.extend((row.len()..header.len()).map(|_| "ERROR".to_string()));
                rows.push(row);
                continue;
            }
            for c in cols {
                let v: Vec<f64> = s.metric(c.metric).into_iter().flatten().filter(|x| x.is_finite()).collect();
                match summary(&v) {
                    Some(sm) => {
                        row.push(c.fmt.show(sm.median));
                        if c.range {
                            row.push(format!("{}–{}", c.fmt.show(sm.min), c.fmt.show(sm.max)));
                        }
                    }
                    None => {
                        row.push("-".into());
                        if c.range {
                            row.push("-".into());
                        }
                    }
                }
            }
            for r in ratios {
                let ratios = match cell.get(r.reference) {
                    Some(refs) if s.mech != Mech::Baseline && refs.error.is_none() => {
                        pair_ratios(&s.metric(r.metric), &refs.metric(r.metric))
                    }
                    _ => Vec::new(),
                };
                row.push(show_ratio(&ratios, s.mech == r.reference));
            }
            rows.push(row);
        }
    }
    Table { title: title.into(), intro, header, rows, left: params.len() + 1 }
}

/// A ratio cell: the median of the per-repetition ratios and, when the repetitions allow
/// one, a confidence interval of at least [`CONFIDENCE`] for it in parentheses (not for the
/// reference's own 1.00x).
fn show_ratio(ratios: &[f64], reference: bool) -> String {
    if ratios.is_empty() {
        return "-".into();
    }
    let m = median(ratios);
    match median_interval(ratios, CONFIDENCE) {
        Some((lo, hi, _)) if !reference => format!("{m:.2}x ({lo:.2}–{hi:.2})"),
        _ => format!("{m:.2}x"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_runs_each_repetition_of_every_mechanism_before_the_next() {
        let mut order = Vec::new();
        let mechs = [Mech::Epoll, Mech::Socknotify, Mech::Mio];
        let s = interleave("t", &mechs, 3, |m, rep| {
            order.push((rep, m));
            if m == Mech::Mio && rep == 1 {
                return Err("broken".into());
            }
            Ok(vec![rep as f64])
        });
        let reps: Vec<usize> = order.iter().map(|&(r, _)| r).collect();
        assert_eq!(reps, [0, 0, 0, 1, 1, 1, 2, 2], "repetitions interleaved; mio not run after its error");
        let firsts: Vec<Mech> = [0, 3, 6].iter().map(|&i| order[i].1).collect();
        // Rotated by the repetition: epoll first, then socknotify, then mio (failed: skipped).
        assert_eq!(firsts, [Mech::Epoll, Mech::Socknotify, Mech::Epoll], "the order rotates");
        assert_eq!(s[2].error.as_deref(), Some("broken"));
        assert_eq!(s[0].metric(0), [Some(0.0), Some(1.0), Some(2.0)]);
    }

    #[test]
    fn report_shows_medians_ranges_ratios_and_errors() {
        let ser = |mech, v: &[f64]| Series { mech, reps: v.iter().map(|&x| Some(vec![x])).collect(), error: None };
        let mut cell = Cell {
            params: vec!["1,000".into()],
            series: vec![
                ser(Mech::Baseline, &[1.0, 1.0, 1.0]),
                ser(Mech::Epoll, &[2.0, 4.0, 3.0]),
                ser(Mech::Socknotify, &[3.0, 5.0, 5.5]),
                Series { mech: Mech::Mio, reps: vec![None; 3], error: Some("x".into()) },
            ],
        };
        cell.push_difference(0, Mech::Baseline);
        assert_eq!(cell.get(Mech::Epoll).unwrap().metric(1), [Some(1.0), Some(3.0), Some(2.0)]);
        let t = report(
            "t",
            vec![],
            &["N"],
            &[cell.clone()],
            &[Col { head: "ns", metric: 0, fmt: Fmt::F1, range: true }],
            &[Ratio { head: "÷ epoll".into(), metric: 0, reference: Mech::Epoll }],
        );
        assert_eq!(t.header, ["N", "mechanism", "ns", "min–max", "÷ epoll"]);
        assert_eq!(t.rows[1], ["1,000", "epoll", "3.0", "2.0–4.0", "1.00x"]);
        // ratios 1.5, 1.25, 1.83: median 1.5
        assert_eq!(t.rows[2], ["1,000", "socknotify", "5.0", "3.0–5.5", "1.50x"]);
        assert_eq!(t.rows[0][4], "-", "no ratio for the no-mechanism baseline");
        assert_eq!(t.rows[3][2..], ["ERROR", "ERROR", "ERROR"]);
        assert_eq!(cell.errors("s"), ["s 1,000 mio: x"]);
        // With 5 repetitions or more, a ratio comes with its median's confidence interval.
        assert_eq!(show_ratio(&[1.2, 1.0, 1.1, 0.9, 1.3], false), "1.10x (0.90–1.30)");
        assert_eq!(show_ratio(&[1.0; 5], true), "1.00x", "the reference's own ratio has none");
        assert_eq!(show_ratio(&[], false), "-");
    }
}
