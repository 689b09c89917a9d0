//! `posts`: packets per second from one producer thread to one consumer thread, every packet
//! checked: delivered once, in FIFO order, nothing left afterwards.
//!
//! * `queue+eventfd` (the reference): a `Mutex<VecDeque>`; the consumer takes up to a batch
//!   under the lock, and when it finds the queue empty it says so (a flag under the lock)
//!   and sleeps on an eventfd, which the producer signals only when that flag is set.
//! * socknotify / sn-epoll: `post` on one side, `dequeue` of up to a batch on the other.
//!
//! The producer runs on the second CPU and the consumer on the first when there are two.

use crate::cli::Opts;
use crate::run::{ctx, interleave, report, Cell, Col, Mech, Ratio, Res, WAIT};
use crate::stats::{group, Fmt};
use crate::sys::{self, EventFd};
use crate::table::Table;
use socknotify::{Completion, CompletionPort};
use std::collections::VecDeque;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// Packets a consumer takes per call at most.
pub const BATCH: usize = 256;
const KEY: usize = 0x5eed;

fn packet(seq: u64) -> Completion {
    Completion::new(KEY, seq as u32, seq as usize)
}

/// Checks that `got` are the packets `next`, `next + 1`, ... in order.
pub fn check_fifo(got: &[Completion], next: u64) -> Res<()> {
    for (j, c) in got.iter().enumerate() {
        let s = next + j as u64;
        if *c != packet(s) {
            return Err(format!("received {c:?} where packet {s} was due (lost, duplicated or out of FIFO order)"));
        }
    }
    Ok(())
}

/// The reference: a mutex-protected queue and an eventfd.
struct Queue {
    q: Mutex<(VecDeque<Completion>, bool)>,
    efd: EventFd,
}

impl Queue {
    fn post(&self, p: Completion) -> Res<()> {
        let wake = {
            let mut g = self.q.lock().unwrap();
            g.0.push_back(p);
            std::mem::take(&mut g.1)
        };
        if wake {
            self.efd.signal()?;
        }
        Ok(())
    }

    /// Up to `out.len()` packets, waiting at most `timeout`; 0 on timeout.
    fn take(&self, out: &mut [Completion], timeout: Duration) -> Res<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut g = self.q.lock().unwrap();
                if !g.0.is_empty() {
                    let n = g.0.len().min(out.len());
                    for (o, p) in out.iter_mut().zip(g.0.drain(..n)) {
                        *o = p;
                    }
                    return Ok(n);
                }
                g.1 = true; // asleep: the next post signals
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.efd.ready(left)? {
                return Ok(0);
            }
            self.efd.take()?;
        }
    }
}

enum Chan {
    Queue(Queue),
    Port(CompletionPort),
}

impl Chan {
    fn post(&self, p: Completion) -> Res<()> {
        match self {
            Chan::Queue(q) => q.post(p),
            Chan::Port(port) => ctx(port.post(p), "post"),
        }
    }
    fn take(&self, out: &mut [Completion], timeout: Duration) -> Res<usize> {
        match self {
            Chan::Queue(q) => q.take(out, timeout),
            Chan::Port(port) => ctx(port.dequeue(out, Some(timeout)), "dequeue"),
        }
    }
}

/// One repetition: `n` posts; returns `[posts per second, system calls per post]`.
pub fn rep(mech: Mech, n: u64) -> Res<Vec<f64>> {
    let chan = Arc::new(match mech {
        Mech::Queue => Chan::Queue(Queue { q: Mutex::new((VecDeque::new(), false)), efd: EventFd::new()? }),
        Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp => Chan::Port(mech.port(0)?),
        _ => return Err(format!("{} has no posts channel", mech.name())),
    });
    let cpus = sys::cpus();
    let (consumer_cpu, producer_cpu) = (cpus[0], cpus.get(1).copied());
    if producer_cpu.is_some() {
        sys::pin(&[consumer_cpu]);
    }
    let start = Arc::new(Barrier::new(2));
    let (c2, s2) = (chan.clone(), start.clone());
    let producer = std::thread::spawn(move || -> Res<u64> {
        if let Some(c) = producer_cpu {
            sys::pin(&[c]);
        }
        s2.wait();
        let s0 = sys::calls();
        for i in 0..n {
            c2.post(packet(i))?;
        }
        Ok(sys::calls() - s0)
    });
    let r = consume(&chan, n, &start, mech.is_socknotify());
    let p = producer.join().map_err(|_| "producer thread panicked".to_string());
    sys::pin(&cpus);
    let (secs, consumer_calls, sn_calls) = r?;
    let producer_calls = p??;
    // Nothing may follow the last packet.
    let mut out = [Completion::default(); 4];
    match chan.take(&mut out, Duration::ZERO)? {
        0 => {}
        k => return Err(format!("{k} packet(s) after the last of {n}")),
    }
    if let Chan::Port(port) = &*chan {
        port.close();
    }
    let calls = consumer_calls + producer_calls + sn_calls;
    Ok(vec![n as f64 / secs, calls as f64 / n as f64])
}

/// Consumes `n` packets, checking each; returns (seconds from the start to the last packet,
/// this thread's counted system calls, socknotify's).
fn consume(chan: &Chan, n: u64, start: &Barrier, sn: bool) -> Res<(f64, u64, u64)> {
    let sn_calls = || if sn { CompletionPort::syscalls() } else { 0 };
    let mut out = vec![Completion::default(); BATCH];
    start.wait();
    let t0 = Instant::now();
    let (s0, sn0) = (sys::calls(), sn_calls());
    let mut got = 0u64;
    while got < n {
        let k = chan.take(&mut out, WAIT)?;
        if k == 0 {
            return Err(format!("no packet for {WAIT:?} after {got} of {n}"));
        }
        check_fifo(&out[..k], got)?;
        got += k as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok((secs, sys::calls() - s0, sn_calls() - sn0))
}

pub fn scenario(o: &Opts) -> (Table, Vec<String>) {
    let n = o.posts.unwrap_or(if o.quick { 100_000 } else { 2_000_000 });
    let mechs = o.pick(&[Mech::Queue, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp]);
    let series = interleave(&format!("posts n={n}"), &mechs, o.reps, |m, _| rep(m, n));
    let cell = Cell { params: vec![group(n as i64)], series };
    let errors = cell.errors("posts");
    let intro = vec![format!(
        "One producer thread posts n packets, one consumer takes them in batches of up to {BATCH} (producer on \
         the second CPU, consumer on the first); posts/s = n over the wall-clock time from the start to the last \
         packet; every packet checked (once, FIFO, nothing after). queue+eventfd = Mutex<VecDeque> + an eventfd \
         signalled only when the consumer sleeps. syscalls/post: both threads (socknotify: CompletionPort::syscalls, \
         its futex calls included). {} repetitions, interleaved; ratios per repetition pair, then the median.",
        o.reps
    )];
    let cols = [
        Col { head: "posts/s", metric: 0, fmt: Fmt::Int, range: true },
        Col { head: "syscalls/post", metric: 1, fmt: Fmt::F2, range: false },
    ];
    let ratios = [Ratio { head: "÷ queue+eventfd".into(), metric: 0, reference: Mech::Queue }];
    (report("posts", intro, &["n"], &[cell], &cols, &ratios), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_arrives_once_in_order() {
        for m in [Mech::Queue, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp] {
            let v = rep(m, 20_000).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert!(v[0] > 0.0, "{}: {v:?}", m.name());
        }
    }

    #[test]
    fn the_fifo_check_catches_loss_duplicates_and_reordering() {
        let p = |s: &[u64]| s.iter().map(|&x| packet(x)).collect::<Vec<_>>();
        check_fifo(&p(&[5, 6, 7]), 5).unwrap();
        assert!(check_fifo(&p(&[5, 7]), 5).is_err(), "lost");
        assert!(check_fifo(&p(&[5, 5]), 5).is_err(), "duplicate");
        assert!(check_fifo(&p(&[6, 5]), 5).is_err(), "reordered");
    }
}
