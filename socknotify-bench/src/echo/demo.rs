//! The echo demo's server (`socknotify/examples/echo_server.rs`) written once per mechanism:
//! `workers` threads, connections with level-triggered one-shot read interest re-armed after
//! each handled notification, served by [`serve_oneshot`].
//!
//! * epoll: one epoll descriptor shared by the workers; `EPOLLIN | EPOLLRDHUP | EPOLLONESHOT`,
//!   one `EPOLL_CTL_MOD` per notification; close = `EPOLL_CTL_DEL`.
//! * mio: a `mio::Poll` cannot be shared (`poll` takes `&mut self`), so one `Poll` per worker;
//!   worker 0 holds the listener and hands connection k to worker k mod W through a cloned
//!   `Registry`; edge-triggered, re-armed with `reregister`.
//! * polling: only one thread may wait on a `Poller` at a time, so, as for mio, one `Poller`
//!   per worker, connections handed out round-robin; oneshot, re-armed with `modify`.
//! * socknotify / sn-epoll: one `CompletionPort` shared by the workers (concurrency = W);
//!   `LEVEL_ONESHOT` (`IN | HANGUP`) re-enabled in the worker's **next** `process` call
//!   together with its dequeue; the listener `LEVEL_PERSISTENT`; a closed connection is
//!   REMOVEd in the next call and its slot freed when the REMOVE packet arrives.

use super::server::{serve_oneshot, spawn, Conn, Next, Server, Shared, BATCH, BUF, IDLE_WAIT, LISTENER};
use crate::run::{ctx, Mech, Res};
use crate::sys::{self, model, Epoll, EP_EMPTY, EP_IN, EP_ONESHOT, EP_OUT, EP_RDHUP};
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

pub fn start(mech: Mech, s: &mut Server, w: usize) -> Res<()> {
    let sh = s.sh.clone();
    match mech {
        Mech::Epoll => {
            let ep = Arc::new(Epoll::new()?);
            ep.add(sh.listener.as_raw_fd(), EP_IN, LISTENER as u64)?;
            for i in 0..w {
                let (sh, ep) = (sh.clone(), ep.clone());
                s.workers.push(spawn(mech, i, Box::new(move || epoll_worker(&sh, &ep, i)))?);
            }
        }
        Mech::Mio => {
            let polls: Vec<mio::Poll> = (0..w).map(|_| ctx(mio::Poll::new(), "mio::Poll::new")).collect::<Res<_>>()?;
            let regs: Vec<mio::Registry> =
                polls.iter().map(|p| ctx(p.registry().try_clone(), "mio Registry::try_clone")).collect::<Res<_>>()?;
            ctx(
                polls[0].registry().register(
                    &mut mio::unix::SourceFd(&sh.listener.as_raw_fd()),
                    mio::Token(LISTENER),
                    mio::Interest::READABLE,
                ),
                "mio register listener",
            )?;
            let mut regs = Some(regs);
            for (i, poll) in polls.into_iter().enumerate() {
                let sh = sh.clone();
                let regs = if i == 0 { regs.take().unwrap() } else { Vec::new() };
                s.workers.push(spawn(mech, i, Box::new(move || mio_worker(&sh, poll, regs, i)))?);
            }
        }
        Mech::Polling => {
            let pollers: Arc<Vec<polling::Poller>> =
                Arc::new((0..w).map(|_| ctx(polling::Poller::new(), "polling::Poller::new")).collect::<Res<_>>()?);
            // SAFETY: the listener stays open until after the pollers are dropped (the
            // workers hold them; the listener lives in `Shared`, dropped after the join).
            ctx(
                unsafe {
                    pollers[0].add_with_mode(&sh.listener, polling::Event::readable(LISTENER), polling::PollMode::Level)
                },
                "polling add listener",
            )?;
            for i in 0..w {
                let (sh, pollers) = (sh.clone(), pollers.clone());
                s.workers.push(spawn(mech, i, Box::new(move || polling_worker(&sh, &pollers, i)))?);
            }
        }
        Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp => {
            let p = sn_port(mech, &sh, w)?;
            s.port = Some(p.clone());
            for i in 0..w {
                let (sh, p) = (sh.clone(), p.clone());
                s.workers.push(spawn(mech, i, Box::new(move || sn_worker(&sh, &p, i)))?);
            }
        }
        _ => unreachable!(),
    }
    Ok(())
}

/// `mech`'s port with concurrency `w`, the listener registered `LEVEL_PERSISTENT`.
pub fn sn_port(mech: Mech, sh: &Shared, w: usize) -> Res<CompletionPort> {
    let p = mech.port(w as u32)?;
    let mut reg = [Registration::enable(&sh.listener, LISTENER, Events::IN, Trigger::LEVEL_PERSISTENT)];
    ctx(p.process(&mut reg, &mut [], Some(Duration::ZERO)), "process(listener)")?;
    ctx(reg[0].result(), "listener registration")?;
    Ok(p)
}

const EP_CONN_IN: u32 = EP_IN | EP_RDHUP | EP_ONESHOT;
const EP_CONN_OUT: u32 = EP_OUT | EP_ONESHOT;

fn epoll_worker(sh: &Shared, ep: &Epoll, me: usize) {
    let mut evs = vec![EP_EMPTY; BATCH];
    let mut buf = vec![0u8; BUF];
    while !sh.stopping() {
        let n = match ep.wait(&mut evs, IDLE_WAIT) {
            Ok(n) => n,
            Err(e) => return sh.fail(e),
        };
        for ev in &evs[..n] {
            let key = ev.u64 as usize;
            if key == LISTENER {
                sh.accept_all(|k, c| ep.add(c.stream.as_raw_fd(), EP_CONN_IN, k as u64));
                continue;
            }
            sh.woke(me);
            let Some(conn) = sh.get(key, "epoll event") else { continue };
            let fd = conn.stream.as_raw_fd();
            let r = match serve_oneshot(&conn, &mut buf) {
                Next::In => ep.modify(fd, EP_CONN_IN, key as u64),
                Next::Out => ep.modify(fd, EP_CONN_OUT, key as u64),
                Next::Close => {
                    let r = ep.delete(fd);
                    drop(conn);
                    sh.close(key);
                    r
                }
            };
            if let Err(e) = r {
                sh.fail(e);
            }
        }
        sh.publish(me);
    }
}

/// `regs` (worker 0 only): every worker's registry, to hand out new connections.
fn mio_worker(sh: &Shared, mut poll: mio::Poll, regs: Vec<mio::Registry>, me: usize) {
    use mio::{unix::SourceFd, Interest, Token};
    let mut events = mio::Events::with_capacity(BATCH);
    let mut buf = vec![0u8; BUF];
    while !sh.stopping() {
        sys::note(model::MIO_POLL);
        if let Err(e) = poll.poll(&mut events, Some(IDLE_WAIT)) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return sh.fail(format!("mio poll: {e}"));
        }
        for ev in events.iter() {
            let key = ev.token().0;
            if key == LISTENER {
                sh.accept_all(|k, c| {
                    let r = &regs[k % regs.len()];
                    sys::note(model::MIO_CTL);
                    ctx(r.register(&mut SourceFd(&c.stream.as_raw_fd()), Token(k), Interest::READABLE), "mio register")
                });
                continue;
            }
            sh.woke(me);
            let Some(conn) = sh.get(key, "mio event") else { continue };
            let fd = conn.stream.as_raw_fd();
            let reg = poll.registry();
            sys::note(model::MIO_CTL);
            let r = match serve_oneshot(&conn, &mut buf) {
                Next::In => reg.reregister(&mut SourceFd(&fd), Token(key), Interest::READABLE),
                Next::Out => reg.reregister(&mut SourceFd(&fd), Token(key), Interest::WRITABLE),
                Next::Close => {
                    let r = reg.deregister(&mut SourceFd(&fd));
                    drop(conn);
                    sh.close(key);
                    r
                }
            };
            if let Err(e) = r {
                sh.fail(format!("mio reregister/deregister key {key}: {e}"));
            }
        }
        sh.publish(me);
    }
}

fn polling_worker(sh: &Shared, pollers: &[polling::Poller], me: usize) {
    use polling::Event;
    let poller = &pollers[me];
    let mut events = polling::Events::with_capacity(std::num::NonZeroUsize::new(BATCH).unwrap());
    let mut buf = vec![0u8; BUF];
    while !sh.stopping() {
        events.clear();
        sys::note(model::POLLING_WAIT);
        if let Err(e) = poller.wait(&mut events, Some(IDLE_WAIT)) {
            return sh.fail(format!("polling wait: {e}"));
        }
        for ev in events.iter() {
            let key = ev.key;
            if key == LISTENER {
                sh.accept_all(|k, c| {
                    sys::note(model::POLLING_CTL);
                    // SAFETY: the connection is deleted from the poller before its socket
                    // is closed (Next::Close below).
                    ctx(unsafe { pollers[k % pollers.len()].add(&c.stream, Event::readable(k)) }, "polling add")
                });
                continue;
            }
            sh.woke(me);
            let Some(conn) = sh.get(key, "polling event") else { continue };
            sys::note(model::POLLING_CTL);
            let r = match serve_oneshot(&conn, &mut buf) {
                Next::In => poller.modify(&conn.stream, Event::readable(key)),
                Next::Out => poller.modify(&conn.stream, Event::writable(key)),
                Next::Close => {
                    let r = poller.delete(&conn.stream);
                    drop(conn);
                    sh.close(key);
                    r
                }
            };
            if let Err(e) = r {
                sh.fail(format!("polling modify/delete key {key}: {e}"));
            }
        }
        sh.publish(me);
    }
    if me == 0 {
        let _ = pollers[0].delete(&sh.listener);
    }
}

/// What a socknotify worker asks for in its next `process` call: per connection its key, the
/// connection, and `Some(filter)` to re-enable it or `None` to REMOVE it.
pub type SnNext = Vec<(usize, Arc<Conn>, Option<Events>)>;

/// The registrations of `next`, for the next `process` call.
pub fn sn_registrations(next: &SnNext) -> Vec<Registration<'_>> {
    next.iter()
        .map(|(key, c, filter)| match filter {
            Some(f) => Registration::enable(&c.stream, *key, *f, Trigger::LEVEL_ONESHOT),
            None => Registration::remove(&c.stream),
        })
        .collect()
}

/// Records every registration that failed.
pub fn sn_check(sh: &Shared, regs: &[Registration<'_>]) {
    for r in regs {
        if let Err(e) = r.result() {
            sh.fail(format!("registration of key {} failed: {e} (code {})", r.key(), r.result_code()));
        }
    }
}

/// Handles one batch of packets: accepts, serves, frees on REMOVE; what it decides goes into
/// `next`. Returns how many packets had the key `stop` (not served).
pub fn sn_handle(
    sh: &Shared,
    packets: &[Completion],
    next: &mut SnNext,
    buf: &mut [u8],
    me: usize,
    stop: Option<usize>,
) -> usize {
    let mut stops = 0;
    for p in packets {
        let key = p.key();
        if key == LISTENER {
            sh.accept_all(|k, c| {
                next.push((k, c.clone(), Some(Events::IN | Events::HANGUP)));
                Ok(())
            });
            continue;
        }
        if Some(key) == stop {
            stops += 1;
            continue;
        }
        if p.events().contains(Events::REMOVE) {
            // The registration's last packet: now the state can go.
            sh.close(key);
            continue;
        }
        sh.woke(me);
        let Some(conn) = sh.get(key, "packet") else { continue };
        match serve_oneshot(&conn, buf) {
            Next::In => next.push((key, conn, Some(Events::IN | Events::HANGUP))),
            Next::Out => next.push((key, conn, Some(Events::OUT | Events::HANGUP))),
            Next::Close => next.push((key, conn, None)),
        }
    }
    stops
}

/// The demo's loop: the registrations decided while handling one batch go into the next
/// `process` call, which applies them and then dequeues.
fn sn_worker(sh: &Shared, port: &CompletionPort, me: usize) {
    let mut out = vec![Completion::default(); BATCH];
    let mut next = SnNext::new();
    let mut buf = vec![0u8; BUF];
    while !sh.stopping() {
        let mut regs = sn_registrations(&next);
        let result = port.process(&mut regs, &mut out, Some(IDLE_WAIT));
        sn_check(sh, &regs);
        drop(regs);
        next.clear();
        let n = match result {
            Ok(n) => n,
            Err(e) => return sh.fail(format!("process: {e}")),
        };
        sn_handle(sh, &out[..n], &mut next, &mut buf, me, None); // it stops on the flag

        sh.publish(me);
    }
}
