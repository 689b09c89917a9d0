//! The command line.

use crate::pairs::PairKind;
use crate::run::Mech;

/// The scenarios, in the order a full run takes them.
pub const SCENARIOS: [&str; 9] =
    ["burst", "rearm", "churn", "echo-edge", "echo", "echo-async", "posts", "heap", "wake"];

/// What to run, and how.
#[derive(Clone, Debug)]
pub struct Opts {
    pub quick: bool,
    pub markdown: bool,
    pub kind: PairKind,
    /// Repetitions per mechanism and cell.
    pub reps: usize,
    /// The mechanisms selected with `--mech` (the references of each scenario always run).
    pub mechs: Vec<Mech>,
    pub scenarios: Vec<String>,
    /// `--n`: the N of burst, rearm, churn and heap (default per scenario).
    pub ns: Option<Vec<usize>>,
    /// `--k`: the K of burst and rearm.
    pub ks: Option<Vec<usize>>,
    /// `--conns`: connections of echo-edge (default 64 and 1,024).
    pub conns: Option<Vec<usize>>,
    /// `--workers`: workers of echo (default 2 and 4) and echo-async (default 2).
    pub workers: Option<Vec<usize>>,
    /// `--requests`: requests per echo run, spread over its connections.
    pub requests: Option<usize>,
    /// `--posts`: packets per posts repetition.
    pub posts: Option<u64>,
    /// The arguments as given (to print the command that produced a table).
    pub args: Vec<String>,
}

pub fn usage() -> ! {
    eprintln!(
        "usage: socknotify-bench [--quick] [--markdown] [--reps R] [--mech LIST] [--n LIST] [--k LIST]\n\
         \x20                       [--conns LIST] [--workers LIST] [--requests M] [--posts P] [--batch B]\n\
         \x20                       [--tcp] [--wall] [SCENARIO]...\n\
         scenarios (default: all, in this order): {}\n\
         --mech: a comma-separated subset of epoll,socknotify,sn-epoll,sn-ctp,mio,polling (each scenario's\n\
         \x20       reference -- no mechanism, epoll floor, queue+eventfd, eventfd -- always runs)\n\
         LISTs are comma-separated numbers; see socknotify-bench/README.md",
        SCENARIOS.join(" ")
    );
    std::process::exit(2);
}

fn list(v: Option<String>) -> Vec<usize> {
    let v = v.unwrap_or_else(|| usage());
    let r: Option<Vec<usize>> =
        v.split(',').map(|x| x.trim().replace('_', "").parse().ok().filter(|&n| n > 0)).collect();
    r.filter(|r| !r.is_empty()).unwrap_or_else(|| usage())
}

fn one(v: Option<String>) -> usize {
    let l = list(v);
    if l.len() != 1 {
        usage()
    }
    l[0]
}

/// Parses `args` (without the program name). Errors end the process with the usage text.
pub fn parse(args: Vec<String>) -> Opts {
    let mut o = Opts {
        quick: false,
        markdown: false,
        kind: PairKind::Unix,
        reps: 0,
        mechs: Mech::SELECTABLE.to_vec(),
        scenarios: Vec::new(),
        ns: None,
        ks: None,
        conns: None,
        workers: None,
        requests: None,
        posts: None,
        args: args.clone(),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--markdown" => o.markdown = true,
            "--tcp" => o.kind = PairKind::Tcp,
            "--unix" => o.kind = PairKind::Unix,
            "--wall" => crate::run::set_wall_clock(true),
            "--reps" => o.reps = one(it.next()),
            "--batch" => crate::ready::collectors::set_out_len(one(it.next())),
            "--n" => o.ns = Some(list(it.next())),
            "--k" => o.ks = Some(list(it.next())),
            "--conns" => o.conns = Some(list(it.next())),
            "--workers" => o.workers = Some(list(it.next())),
            "--requests" => o.requests = Some(one(it.next())),
            "--posts" => o.posts = Some(one(it.next()) as u64),
            "--mech" => {
                let names = it.next().unwrap_or_else(|| usage());
                let mut m = Vec::new();
                for name in names.split(',') {
                    match Mech::SELECTABLE.iter().find(|x| x.arg() == name) {
                        Some(&x) => m.push(x),
                        None => usage(),
                    }
                }
                // Keep the table order.
                o.mechs = Mech::SELECTABLE.iter().copied().filter(|x| m.contains(x)).collect();
            }
            "-h" | "--help" => usage(),
            s if SCENARIOS.contains(&s) => {
                if !o.scenarios.iter().any(|x| x == s) {
                    o.scenarios.push(s.to_string())
                }
            }
            _ => usage(),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    if o.reps == 0 {
        o.reps = if o.quick { 2 } else { 7 };
    }
    o
}

impl Opts {
    /// The selected mechanisms of `from`, in table order.
    pub fn pick(&self, from: &[Mech]) -> Vec<Mech> {
        from.iter().copied().filter(|m| !Mech::SELECTABLE.contains(m) || self.mechs.contains(m)).collect()
    }

    /// The command line that reproduces this run (cargo's form, arguments quoted for a shell).
    pub fn command(&self) -> String {
        let mut s = String::from("cargo run --release -p socknotify-bench");
        if !self.args.is_empty() {
            s += " --";
            for a in &self.args {
                s.push(' ');
                if a.chars().all(|c| c.is_ascii_alphanumeric() || ",._-=/".contains(c)) {
                    s += a;
                } else {
                    s += &format!("'{}'", a.replace('\'', r"'\''"));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Opts {
        parse(s.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn defaults_and_selection() {
        let o = p("");
        assert_eq!(o.scenarios, SCENARIOS);
        assert_eq!(o.reps, 7);
        assert_eq!(o.command(), "cargo run --release -p socknotify-bench");
        let o = p("--quick --markdown rearm burst --n 1000,9_800 --k 64 --mech sn-epoll,epoll");
        assert_eq!(o.scenarios, ["rearm", "burst"]);
        assert_eq!((o.reps, o.quick, o.markdown), (2, true, true));
        assert_eq!(o.ns, Some(vec![1000, 9800]));
        assert_eq!(o.mechs, [Mech::Epoll, Mech::SnEpoll]);
        assert_eq!(
            o.pick(&[Mech::Baseline, Mech::Epoll, Mech::Mio, Mech::SnEpoll]),
            [Mech::Baseline, Mech::Epoll, Mech::SnEpoll]
        );
        assert_eq!(
            o.command(),
            "cargo run --release -p socknotify-bench -- --quick --markdown rearm burst --n 1000,9_800 --k 64 \
             --mech sn-epoll,epoll"
        );
    }
}
