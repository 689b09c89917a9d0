//! Edge-triggered echo servers: one thread, persistent edge-triggered registrations, each
//! notification served by [`serve_edge`] (read until drained, echo each read). Write
//! interest is added only when a write could not be completed, and then kept.
//!
//! * epoll: `EPOLLIN | EPOLLRDHUP | EPOLLET` (`| EPOLLOUT` once needed, by `EPOLL_CTL_MOD`,
//!   which also reports what is ready at that moment).
//! * mio (always edge-triggered): `READABLE` (`| WRITABLE` by `reregister`).
//! * polling: `PollMode::Edge`, readable (all, by `modify_with_mode`).
//! * socknotify / sn-epoll: `EDGE_PERSISTENT`, `IN | HANGUP` (`| OUT` by a new ENABLE). By
//!   Windows' edge rule a condition that already holds when a registration is enabled gives
//!   no edge, so after every ENABLE the server serves the connection once itself; registered
//!   sockets are REMOVEd and closed when the REMOVE packet arrives.

use super::server::{serve_edge, spawn, Conn, Next, Server, Shared, BATCH, BUF, IDLE_WAIT, LISTENER};
use crate::run::{ctx, Mech, Res};
use crate::sys::{self, model, Epoll, EP_EMPTY, EP_ET, EP_IN, EP_OUT, EP_RDHUP};
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub fn start(mech: Mech, s: &mut Server) -> Res<()> {
    let sh = s.sh.clone();
    let w: Box<dyn FnOnce() + Send> = match mech {
        Mech::Epoll => {
            let ep = Epoll::new()?;
            ep.add(sh.listener.as_raw_fd(), EP_IN, LISTENER as u64)?;
            Box::new(move || epoll_worker(&sh, &ep))
        }
        Mech::Mio => {
            let poll = ctx(mio::Poll::new(), "mio::Poll::new")?;
            ctx(
                poll.registry().register(
                    &mut mio::unix::SourceFd(&sh.listener.as_raw_fd()),
                    mio::Token(LISTENER),
                    mio::Interest::READABLE,
                ),
                "mio register listener",
            )?;
            Box::new(move || mio_worker(&sh, poll))
        }
        Mech::Polling => {
            let poller = ctx(polling::Poller::new(), "polling::Poller::new")?;
            // SAFETY: the listener outlives the poller (dropped in the worker, before the
            // `Shared` that holds the listener).
            ctx(
                unsafe {
                    poller.add_with_mode(&sh.listener, polling::Event::readable(LISTENER), polling::PollMode::Level)
                },
                "polling add listener",
            )?;
            Box::new(move || polling_worker(&sh, poller))
        }
        Mech::Socknotify | Mech::SnEpoll | Mech::SnCtp => {
            let p = mech.port(1)?;
            let mut reg = [Registration::enable(&sh.listener, LISTENER, Events::IN, Trigger::LEVEL_PERSISTENT)];
            ctx(p.process(&mut reg, &mut [], Some(Duration::ZERO)), "process(listener)")?;
            ctx(reg[0].result(), "listener registration")?;
            s.port = Some(p.clone());
            Box::new(move || sn_worker(&sh, &p))
        }
        _ => unreachable!(),
    };
    s.workers.push(spawn(mech, 0, w)?);
    Ok(())
}

const EP_CONN: u32 = EP_IN | EP_RDHUP | EP_ET;

/// Whether write interest must be added now (first time the echo could not be written).
#[inline]
fn arm_out(conn: &Conn) -> bool {
    !conn.out_armed.swap(true, Ordering::Relaxed)
}

fn epoll_worker(sh: &Shared, ep: &Epoll) {
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
                sh.accept_all(|k, c| ep.add(c.stream.as_raw_fd(), EP_CONN, k as u64));
                continue;
            }
            sh.woke(0);
            let Some(conn) = sh.get(key, "epoll event") else { continue };
            let fd = conn.stream.as_raw_fd();
            let r = match serve_edge(&conn, &mut buf) {
                Next::In => Ok(()),
                Next::Out if arm_out(&conn) => ep.modify(fd, EP_CONN | EP_OUT, key as u64),
                Next::Out => Ok(()),
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
        sh.publish(0);
    }
}

fn mio_worker(sh: &Shared, mut poll: mio::Poll) {
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
            let reg = poll.registry();
            if key == LISTENER {
                sh.accept_all(|k, c| {
                    sys::note(model::MIO_CTL);
                    ctx(
                        reg.register(&mut SourceFd(&c.stream.as_raw_fd()), Token(k), Interest::READABLE),
                        "mio register",
                    )
                });
                continue;
            }
            sh.woke(0);
            let Some(conn) = sh.get(key, "mio event") else { continue };
            let fd = conn.stream.as_raw_fd();
            let r = match serve_edge(&conn, &mut buf) {
                Next::In => Ok(()),
                Next::Out if arm_out(&conn) => {
                    sys::note(model::MIO_CTL);
                    reg.reregister(&mut SourceFd(&fd), Token(key), Interest::READABLE | Interest::WRITABLE)
                }
                Next::Out => Ok(()),
                Next::Close => {
                    sys::note(model::MIO_CTL);
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
        sh.publish(0);
    }
}

fn polling_worker(sh: &Shared, poller: polling::Poller) {
    use polling::{Event, PollMode};
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
                    ctx(unsafe { poller.add_with_mode(&c.stream, Event::readable(k), PollMode::Edge) }, "polling add")
                });
                continue;
            }
            sh.woke(0);
            let Some(conn) = sh.get(key, "polling event") else { continue };
            let r = match serve_edge(&conn, &mut buf) {
                Next::In => Ok(()),
                Next::Out if arm_out(&conn) => {
                    sys::note(model::POLLING_CTL);
                    poller.modify_with_mode(&conn.stream, Event::all(key), PollMode::Edge)
                }
                Next::Out => Ok(()),
                Next::Close => {
                    sys::note(model::POLLING_CTL);
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
        sh.publish(0);
    }
    let _ = poller.delete(&sh.listener);
}

/// Applies one ENABLE now and checks it.
fn enable(port: &CompletionPort, conn: &Conn, key: usize, events: Events) -> Res<()> {
    let mut r = [Registration::enable(&conn.stream, key, events, Trigger::EDGE_PERSISTENT)];
    ctx(port.process(&mut r, &mut [], Some(Duration::ZERO)), "process(ENABLE)")?;
    ctx(r[0].result(), "ENABLE")
}

/// Serves `conn` until it waits for an edge: after an ENABLE (write interest added) it is
/// served again, since what already held at the ENABLE gives no edge.
fn sn_serve(
    sh: &Shared,
    port: &CompletionPort,
    conn: Arc<Conn>,
    key: usize,
    buf: &mut [u8],
    remove: &mut Vec<Arc<Conn>>,
) {
    loop {
        match serve_edge(&conn, buf) {
            Next::In => return,
            Next::Out if arm_out(&conn) => {
                if let Err(e) = enable(port, &conn, key, Events::IN | Events::OUT | Events::HANGUP) {
                    return sh.fail(format!("key {key}: {e}"));
                }
            }
            Next::Out => return,
            Next::Close => {
                conn.closing.store(true, Ordering::Relaxed);
                return remove.push(conn);
            }
        }
    }
}

fn sn_worker(sh: &Shared, port: &CompletionPort) {
    let mut out = vec![Completion::default(); BATCH];
    let mut buf = vec![0u8; BUF];
    // Connections to REMOVE in the next process call.
    let mut remove: Vec<Arc<Conn>> = Vec::new();
    while !sh.stopping() {
        let mut regs: Vec<Registration<'_>> = remove.iter().map(|c| Registration::remove(&c.stream)).collect();
        let result = port.process(&mut regs, &mut out, Some(IDLE_WAIT));
        for r in &regs {
            if let Err(e) = r.result() {
                sh.fail(format!("REMOVE failed: {e} (code {})", r.result_code()));
            }
        }
        drop(regs);
        remove.clear();
        let n = match result {
            Ok(n) => n,
            Err(e) => return sh.fail(format!("process: {e}")),
        };
        for p in &out[..n] {
            let key = p.key();
            if key == LISTENER {
                let mut new = Vec::new();
                sh.accept_all(|k, c| {
                    enable(port, c, k, Events::IN | Events::HANGUP)?;
                    new.push((k, c.clone()));
                    Ok(())
                });
                for (k, c) in new {
                    sn_serve(sh, port, c, k, &mut buf, &mut remove);
                }
                continue;
            }
            if p.events().contains(Events::REMOVE) {
                sh.close(key);
                continue;
            }
            sh.woke(0);
            let Some(conn) = sh.get(key, "packet") else { continue };
            if conn.closing.load(Ordering::Relaxed) {
                continue; // queued before its REMOVE
            }
            sn_serve(sh, port, conn, key, &mut buf, &mut remove);
        }
        sh.publish(0);
    }
}
