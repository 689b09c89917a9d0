//! The readiness scenarios, `burst` and `rearm`: N registered sockets; per round K of them
//! (chosen at random, distinct) get one byte from their peer; the mechanism collects the K
//! notifications, reads each byte and, in `rearm`, re-arms the socket.
//!
//! Every mechanism does exactly the socket I/O of the no-mechanism baseline (one 1-byte
//! `write` on the peer and one `read` on the registered side per notification) plus its own
//! waits and re-arms, so `time(mechanism) − time(baseline)` is its overhead per notification.
//!
//! One set of N pairs serves every mechanism of a cell: a repetition registers all N sockets
//! with one mechanism (untimed), runs the warm-up rounds, times the measured rounds, checks
//! that nothing is left over, and unregisters (untimed); then the next mechanism's turn.

pub mod collectors;

use crate::cli::Opts;
use crate::pairs::{large_n, Pairs};
use crate::run::{interleave, report, Cell, Col, Mech, Ratio, Res, Stopwatch};
use crate::stats::{group, Fmt};
use crate::sys;
use crate::table::Table;
use std::os::fd::RawFd;

/// How registrations behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Persistent, level-triggered (epoll LT, socknotify `LEVEL_PERSISTENT`, polling `Level`;
    /// mio has no level mode and sits out).
    Level,
    /// Persistent, edge-triggered (`EPOLLET`, `EDGE_PERSISTENT`, polling `Edge`, mio).
    Edge,
    /// Disarmed on delivery and re-armed after the read: `EPOLLONESHOT` + one `EPOLL_CTL_MOD`
    /// per event, socknotify `LEVEL_ONESHOT` re-enabled in the next `process` call, polling
    /// `Oneshot` + `modify`, mio (edge-triggered) `reregister`.
    Oneshot,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Level => "level",
            Mode::Edge => "edge",
            Mode::Oneshot => "oneshot",
        }
    }
}

/// Metric indices of a readiness repetition.
pub const NS: usize = 0;
pub const SYSCALLS: usize = 1;
/// Added after the run: [`NS`] minus the no-mechanism baseline's, same repetition.
pub const OVERHEAD: usize = 2;

/// Writes one byte to `fd` (the peer side of a pair).
#[inline]
pub fn write_one(fd: RawFd) -> Res<()> {
    match sys::write(fd, b"x") {
        Ok(1) => Ok(()),
        r => Err(format!("write to peer fd {fd}: {r:?}")),
    }
}

/// Reads the one byte a round wrote to the socket of `key`. Anything but exactly one byte is
/// an error: a notification for a socket with nothing to read is a spurious notification.
#[inline]
pub fn read_one(fd: RawFd, key: usize) -> Res<()> {
    let mut buf = [0u8; 64];
    match sys::read(fd, &mut buf) {
        Ok(1) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Err(format!("notification for key {key} but its socket has nothing to read (spurious)"))
        }
        r => Err(format!("read on key {key}: {r:?}, expected 1 byte")),
    }
}

/// Which socket each round makes readable and which notification it therefore expects.
/// `stamp[i] == round` while socket `i` owes a notification in `round` (rounds count from 1).
pub struct Expect {
    stamp: Vec<u32>,
    pub pending: usize,
    pub round: u32,
}

impl Expect {
    pub fn new(n: usize) -> Expect {
        Expect { stamp: vec![0; n], pending: 0, round: 0 }
    }

    #[inline]
    pub fn arm(&mut self, i: usize) {
        self.stamp[i] = self.round;
        self.pending += 1;
    }

    /// Accounts for a notification of key `i`; an unexpected or duplicate one is an error.
    #[inline]
    pub fn take(&mut self, i: usize) -> Res<()> {
        match self.stamp.get_mut(i) {
            Some(s) if *s == self.round && self.round != 0 => {
                *s = 0;
                self.pending -= 1;
                Ok(())
            }
            Some(_) => Err(format!(
                "round {}: notification for key {i}, which was not made readable in this round \
                 or was already notified (duplicate or spurious)",
                self.round
            )),
            None => Err(format!("round {}: notification with unknown key {i}", self.round)),
        }
    }
}

/// A deterministic plan: for each round, K distinct socket indices out of N.
pub struct Plan {
    pub k: usize,
    pub rounds: usize,
    pub warmup: usize,
    chosen: Vec<u32>,
}

impl Plan {
    pub fn new(n: usize, k: usize, rounds: usize, warmup: usize, seed: u64) -> Plan {
        assert!(k <= n && k > 0);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        let mut rng = seed | 1;
        let total = rounds + warmup;
        let mut chosen = Vec::with_capacity(total * k);
        for _ in 0..total {
            // Partial Fisher-Yates: the first k entries become this round's choice.
            for j in 0..k {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let r = j + (rng % (n - j) as u64) as usize;
                perm.swap(j, r);
            }
            chosen.extend_from_slice(&perm[..k]);
        }
        Plan { k, rounds, warmup, chosen }
    }

    pub fn round(&self, r: usize) -> &[u32] {
        &self.chosen[r * self.k..(r + 1) * self.k]
    }
}

#[inline]
fn one_round(c: &mut dyn collectors::Collector, peers: &[RawFd], exp: &mut Expect, chosen: &[u32]) -> Res<()> {
    exp.round += 1;
    for &i in chosen {
        write_one(peers[i as usize])?;
        exp.arm(i as usize);
    }
    c.collect(exp, chosen)
}

/// One repetition of `mech` over `pairs`: register, warm up, time `plan.rounds` rounds,
/// check, unregister. Returns `[ns per notification, mechanism system calls per
/// notification]`; the socket I/O (one write and one read per notification) is not counted.
pub fn rep(mech: Mech, mode: Mode, pairs: &Pairs, plan: &Plan) -> Res<Vec<f64>> {
    let srv = pairs.server_fds();
    let peers = pairs.peer_fds();
    let r = rep_on(mech, mode, pairs, &srv, &peers, plan);
    if r.is_err() {
        // Leave the pairs clean for the next mechanism.
        let mut b = [0u8; 256];
        for &s in &srv {
            while matches!(sys::read(s, &mut b), Ok(n) if n > 0) {}
        }
    }
    r
}

fn rep_on(mech: Mech, mode: Mode, pairs: &Pairs, srv: &[RawFd], peers: &[RawFd], plan: &Plan) -> Res<Vec<f64>> {
    let mut c = collectors::new(mech, mode, srv, &pairs.servers)?;
    let mut exp = Expect::new(srv.len());
    for r in 0..plan.warmup {
        one_round(c.as_mut(), peers, &mut exp, plan.round(r))?;
    }
    let s0 = mech.calls();
    let t = Stopwatch::start();
    for r in plan.warmup..plan.warmup + plan.rounds {
        one_round(c.as_mut(), peers, &mut exp, plan.round(r))?;
    }
    let ns = t.ns() as f64;
    let calls = (mech.calls() - s0) as f64;
    let units = (plan.rounds * plan.k) as f64;
    c.finish()?;
    match c.leftovers()? {
        0 => {}
        extra => return Err(format!("{extra} spurious notification(s) after the last round (K = {})", plan.k)),
    }
    c.teardown()?;
    Ok(vec![ns / units, (calls - 2.0 * units) / units])
}

/// The mechanisms of a readiness cell.
fn mechs(o: &Opts, mode: Mode, floor: bool) -> Vec<Mech> {
    let mut all = vec![Mech::Baseline];
    if floor {
        all.push(Mech::Floor);
    }
    all.extend([Mech::Epoll, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp]);
    if mode != Mode::Level {
        all.push(Mech::Mio);
    }
    all.push(Mech::Polling);
    o.pick(&all)
}

/// Runs `burst` (`rearm == false`: level and edge persistent) or `rearm` (oneshot + re-arm,
/// with the epoll floor) over the grid N × K, every cell interleaved.
pub fn scenario(o: &Opts, rearm: bool, nofile: u64) -> (Table, Vec<String>) {
    let name = if rearm { "rearm" } else { "burst" };
    let big = large_n(nofile);
    let ns = o.ns.clone().unwrap_or_else(|| if o.quick { vec![1000] } else { vec![1000, big] });
    let ks = o.ks.clone().unwrap_or_else(|| if o.quick { vec![1, 64] } else { vec![1, 64, 1024] });
    let modes: &[Mode] = if rearm { &[Mode::Oneshot] } else { &[Mode::Level, Mode::Edge] };
    let budget = if o.quick { 2048 } else { 32768 };
    let mut cells = Vec::new();
    let mut errors = Vec::new();
    for &n in &ns {
        if n > crate::pairs::max_pairs(nofile) {
            errors.push(format!("{name} N={n}: {} descriptors needed, RLIMIT_NOFILE is {nofile}", 2 * n + 300));
            continue;
        }
        let pairs = match Pairs::new(o.kind, n) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("{name} N={n}: cannot create the pairs: {e}"));
                continue;
            }
        };
        for &mode in modes {
            for &k in ks.iter().filter(|&&k| k <= n) {
                let rounds = (budget / k).clamp(16, 8000);
                let plan = Plan::new(n, k, rounds, (rounds / 10).max(2), 0x2545_f491_4f6c_dd1d ^ (k * n) as u64);
                let what = format!("{name} N={n} K={k} {}", mode.name());
                let series = interleave(&what, &mechs(o, mode, rearm), o.reps, |m, _| rep(m, mode, &pairs, &plan));
                let mut cell = Cell { params: vec![group(n as i64), group(k as i64), mode.name().into()], series };
                cell.push_difference(NS, Mech::Baseline);
                errors.extend(cell.errors(name));
                cells.push(cell);
            }
        }
    }
    let mut intro = vec![format!(
        "{} repetitions per cell, interleaved (each repetition runs every mechanism once, in an order that rotates), \
         {} per round; one set of pairs per N, registered with one mechanism at a time. ns/notification = \
         the time of the measured rounds (one byte written to each of K peers, the K notifications collected, \
         each byte read) over their notifications{}; overhead = that minus the no-mechanism baseline's, same \
         repetition; syscalls = the mechanism's system calls per notification (the write and the read are not \
         counted). Ratios: per repetition pair, then the median.",
        o.reps,
        "K sockets readable",
        if crate::run::wall_clock() { ", wall-clock time" } else { ", thread CPU time" }
    )];
    if rearm {
        intro.push(
            "oneshot: epoll EPOLLONESHOT + one EPOLL_CTL_MOD per event; socknotify LEVEL_ONESHOT re-enabled in the \
             next process call; polling Oneshot + modify; mio (edge-triggered) reregister. epoll floor = raw epoll \
             level-triggered and persistent, no re-arm at all (the physical floor)."
                .into(),
        );
    } else {
        intro.push(
            "level = epoll LT, LEVEL_PERSISTENT, polling Level (mio has no level mode); edge = EPOLLET, \
             EDGE_PERSISTENT, polling Edge, mio."
                .into(),
        );
    }
    let cols = [
        Col { head: "ns/notification", metric: NS, fmt: Fmt::Ns, range: true },
        Col { head: "overhead ns", metric: OVERHEAD, fmt: Fmt::Ns, range: false },
        Col { head: "syscalls/notification", metric: SYSCALLS, fmt: Fmt::F2, range: false },
    ];
    let mut ratios = vec![
        Ratio { head: "÷ epoll".into(), metric: NS, reference: Mech::Epoll },
        Ratio { head: "overhead ÷ epoll".into(), metric: OVERHEAD, reference: Mech::Epoll },
    ];
    if rearm {
        ratios.push(Ratio { head: "overhead ÷ floor".into(), metric: OVERHEAD, reference: Mech::Floor });
    }
    (report(name, intro, &["N", "K", "trigger"], &cells, &cols, &ratios), errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::PairKind;
    use std::os::fd::AsRawFd;

    fn check(mech: Mech, mode: Mode) {
        let pairs = Pairs::new(PairKind::Unix, 200).unwrap();
        for k in [1, 32] {
            let plan = Plan::new(200, k, 40, 4, 7);
            let v = rep(mech, mode, &pairs, &plan).unwrap_or_else(|e| panic!("{} {mode:?}: {e}", mech.name()));
            assert!(v[NS] > 0.0 && v[SYSCALLS] >= 0.0, "{} {mode:?}: {v:?}", mech.name());
        }
    }

    #[test]
    fn references_and_baselines_deliver_exactly_the_expected_notifications() {
        for m in [Mech::Baseline, Mech::Floor, Mech::Epoll, Mech::Polling] {
            for mode in [Mode::Level, Mode::Edge, Mode::Oneshot] {
                check(m, mode);
            }
        }
        check(Mech::Mio, Mode::Edge);
        check(Mech::Mio, Mode::Oneshot);
    }

    #[test]
    fn socknotify_delivers_exactly_the_expected_notifications() {
        for m in [Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp] {
            for mode in [Mode::Level, Mode::Edge, Mode::Oneshot] {
                check(m, mode);
            }
        }
    }

    #[test]
    fn raw_epoll_counts_one_mod_per_rearm_and_none_when_persistent() {
        let pairs = Pairs::new(PairKind::Unix, 100).unwrap();
        // K = 1: every round is one wait with one event.
        let plan = Plan::new(100, 1, 50, 2, 3);
        let one = rep(Mech::Epoll, Mode::Oneshot, &pairs, &plan).unwrap();
        assert_eq!(one[SYSCALLS], 2.0, "epoll_wait + EPOLL_CTL_MOD per notification");
        let lvl = rep(Mech::Epoll, Mode::Level, &pairs, &plan).unwrap();
        assert_eq!(lvl[SYSCALLS], 1.0, "epoll_wait per notification");
        let none = rep(Mech::Baseline, Mode::Level, &pairs, &plan).unwrap();
        assert_eq!(none[SYSCALLS], 0.0, "the I/O is not counted");
    }

    #[test]
    fn a_socket_left_readable_fails_the_repetition() {
        // A byte nobody asked for: the mechanism reports it, and the run says so.
        let pairs = Pairs::new(PairKind::Unix, 10).unwrap();
        write_one(pairs.peers[3].as_raw_fd()).unwrap();
        let plan = Plan::new(10, 1, 5, 0, 11);
        let e = rep(Mech::Epoll, Mode::Level, &pairs, &plan).unwrap_err();
        assert!(e.contains("not made readable") || e.contains("expected 1 byte"), "{e}");
        // rep() drained the pairs after the failure: the next repetition is clean.
        rep(Mech::Epoll, Mode::Level, &pairs, &plan).unwrap();
    }

    #[test]
    fn expect_rejects_duplicates_and_strangers() {
        let mut e = Expect::new(4);
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
