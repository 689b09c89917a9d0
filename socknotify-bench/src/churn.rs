//! `churn`: register N idle sockets, then remove them all, timed end to end (socknotify:
//! ENABLE, then REMOVE, with every REMOVE packet dequeued, as the API requires before a
//! socket may be registered again; epoll: ADD + DEL; mio: register + deregister; polling:
//! add + delete). Reported per socket (one registration and its removal).

use crate::cli::Opts;
use crate::pairs::Pairs;
use crate::ready::collectors::{apply, remove_all, BATCH};
use crate::run::{ctx, interleave, report, Cell, Col, Mech, Ratio, Res, Stopwatch};
use crate::stats::{group, Fmt};
use crate::sys::{self, model, Epoll, EP_IN, EP_ONESHOT};
use crate::table::Table;
use socknotify::{Completion, Events, Registration, Trigger};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// One repetition: `[ns per socket, system calls per socket]`.
pub fn rep(mech: Mech, socks: &[OwnedFd]) -> Res<Vec<f64>> {
    let fds: Vec<RawFd> = socks.iter().map(|s| s.as_raw_fd()).collect();
    let (ns, calls) = match mech {
        Mech::Epoll => epoll(&fds)?,
        Mech::Mio => mio_(&fds)?,
        Mech::Polling => polling_(&fds)?,
        Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp => socknotify_(mech, socks)?,
        _ => return Err(format!("{} does not register sockets", mech.name())),
    };
    let n = socks.len() as f64;
    Ok(vec![ns as f64 / n, calls as f64 / n])
}

/// Times the work between `start` and `stop`, and counts its system calls.
struct Meter {
    mech: Mech,
    t: Stopwatch,
    calls: u64,
}

impl Meter {
    fn start(mech: Mech) -> Meter {
        Meter { mech, calls: mech.calls(), t: Stopwatch::start() }
    }
    fn stop(self) -> (u64, u64) {
        let ns = self.t.ns();
        (ns, self.mech.calls() - self.calls)
    }
}

fn epoll(srv: &[RawFd]) -> Res<(u64, u64)> {
    let ep = Epoll::new()?;
    let t = Meter::start(Mech::Epoll);
    for (i, &s) in srv.iter().enumerate() {
        ep.add(s, EP_IN | EP_ONESHOT, i as u64)?;
    }
    for &s in srv {
        ep.delete(s)?;
    }
    Ok(t.stop())
}

fn mio_(srv: &[RawFd]) -> Res<(u64, u64)> {
    let poll = ctx(mio::Poll::new(), "mio::Poll::new")?;
    let t = Meter::start(Mech::Mio);
    for (i, s) in srv.iter().enumerate() {
        sys::note(model::MIO_CTL);
        ctx(
            poll.registry().register(&mut mio::unix::SourceFd(s), mio::Token(i), mio::Interest::READABLE),
            "mio register",
        )?;
    }
    for s in srv {
        sys::note(model::MIO_CTL);
        ctx(poll.registry().deregister(&mut mio::unix::SourceFd(s)), "mio deregister")?;
    }
    Ok(t.stop())
}

fn polling_(srv: &[RawFd]) -> Res<(u64, u64)> {
    let poller = ctx(polling::Poller::new(), "polling::Poller::new")?;
    let t = Meter::start(Mech::Polling);
    for (i, &s) in srv.iter().enumerate() {
        sys::note(model::POLLING_CTL);
        // SAFETY: deleted below while still open.
        ctx(unsafe { poller.add(s, polling::Event::readable(i)) }, "polling add")?;
    }
    for &s in srv {
        sys::note(model::POLLING_CTL);
        // SAFETY: the descriptor is open.
        ctx(poller.delete(unsafe { BorrowedFd::borrow_raw(s) }), "polling delete")?;
    }
    Ok(t.stop())
}

fn socknotify_(mech: Mech, srv: &[OwnedFd]) -> Res<(u64, u64)> {
    let port = mech.port(0)?;
    let mut out = vec![Completion::default(); BATCH];
    let mut regs: Vec<Registration<'_>> = Vec::with_capacity(BATCH);
    let t = Meter::start(mech);
    for (base, chunk) in srv.chunks(BATCH).enumerate() {
        regs.extend(
            chunk
                .iter()
                .enumerate()
                .map(|(j, s)| Registration::enable(s, base * BATCH + j, Events::IN, Trigger::LEVEL_ONESHOT)),
        );
        apply(&port, &mut regs, "ENABLE")?;
    }
    let other = remove_all(&port, srv, &mut out)?;
    let r = t.stop();
    port.close();
    if other != 0 {
        return Err(format!("{other} readiness packet(s) for idle sockets (expected none)"));
    }
    Ok(r)
}

pub fn scenario(o: &Opts) -> (Table, Vec<String>) {
    let ns = o.ns.clone().unwrap_or_else(|| if o.quick { vec![1024] } else { vec![1024, 10_000] });
    let mechs = o.pick(&[Mech::Epoll, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp, Mech::Mio, Mech::Polling]);
    let mut cells = Vec::new();
    let mut errors = Vec::new();
    for n in ns {
        let socks = match Pairs::idle_sockets(o.kind, n) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("churn N={n}: cannot create the sockets: {e}"));
                continue;
            }
        };
        let series = interleave(&format!("churn N={n}"), &mechs, o.reps, |m, _| rep(m, &socks));
        let cell = Cell { params: vec![group(n as i64)], series };
        errors.extend(cell.errors("churn"));
        cells.push(cell);
    }
    let intro = vec![format!(
        "Register N idle sockets (both ends of N/2 pairs), then remove them all; ns and system calls per socket \
         (one registration and its removal). socknotify: ENABLE in batches of {BATCH} per process call, then \
         REMOVE likewise and every REMOVE packet dequeued; epoll ADD + DEL; mio register + deregister; polling \
         add + delete. {} repetitions, interleaved; ratios per repetition pair, then the median.",
        o.reps
    )];
    let cols = [
        Col { head: "ns/socket", metric: 0, fmt: Fmt::Ns, range: true },
        Col { head: "syscalls/socket", metric: 1, fmt: Fmt::F2, range: false },
    ];
    let ratios = [
        Ratio { head: "÷ epoll".into(), metric: 0, reference: Mech::Epoll },
        Ratio { head: "syscalls ÷ epoll".into(), metric: 1, reference: Mech::Epoll },
    ];
    (report("churn", intro, &["N"], &cells, &cols, &ratios), errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::PairKind;

    #[test]
    fn every_mechanism_registers_and_removes() {
        let socks = Pairs::idle_sockets(PairKind::Unix, 1100).unwrap();
        for m in [Mech::Epoll, Mech::Mio, Mech::Polling, Mech::Socknotify, Mech::SnEpoll, Mech::SnCtp] {
            let v = rep(m, &socks).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert!(v[0] > 0.0, "{}: {v:?}", m.name());
        }
        // ADD + DEL, counted in the wrapper.
        assert_eq!(rep(Mech::Epoll, &socks).unwrap()[1], 2.0);
        assert_eq!(rep(Mech::Mio, &socks).unwrap()[1], 2.0);
    }
}
