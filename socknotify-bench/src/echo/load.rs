//! The load generator, the same for every server: `conns` TCP connections on 127.0.0.1, all
//! connected and accepted before the clock starts, each sending `requests` requests of `size`
//! bytes with one request outstanding per connection. A few client threads (`clients`)
//! multiplex the connections with raw level-triggered epoll, so the client side costs the
//! same whatever the server. Every echoed byte is compared with what was sent (the bytes
//! differ per connection and request), the latency of each request (first byte written to
//! last byte of its echo read) is recorded, and after the last request every connection must
//! have nothing more to read. Bounded in count and in time: a run fails if it exceeds
//! `limit`, or if no reply arrives for [`STALL`].

use super::Config;
use crate::run::{ctx, Res};
use crate::sys::{Epoll, EP_EMPTY, EP_ERR, EP_HUP, EP_IN, EP_OUT};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A run fails when no reply at all arrives for this long.
pub const STALL: Duration = Duration::from_secs(5);
/// Client events per wait.
const BATCH: usize = 64;

/// Byte `i` of request `req` on connection `conn`: different for every connection and request,
/// so an echo from the wrong connection or of an old request is caught.
#[inline]
fn pattern(conn: usize, req: usize, i: usize) -> u8 {
    (conn.wrapping_mul(131) ^ req.wrapping_mul(31) ^ i.wrapping_mul(7) ^ (i >> 8)) as u8
}

/// One client connection.
struct CConn {
    stream: TcpStream,
    id: usize,
    req: usize,
    sent: usize,
    got: usize,
    t0: Instant,
    msg: Vec<u8>,
    out_armed: bool,
}

/// What a client thread measured.
#[derive(Default)]
pub struct LoadOut {
    pub latencies_ns: Vec<u64>,
    pub end: Option<Instant>,
}

/// Opens `conns` connections to `addr` (blocking connect, then TCP_NODELAY, non-blocking).
fn connect_all(addr: SocketAddr, conns: usize) -> Res<Vec<TcpStream>> {
    (0..conns)
        .map(|i| {
            let s = ctx(TcpStream::connect(addr), &format!("connect #{i} to {addr}"))?;
            ctx(s.set_nodelay(true), "TCP_NODELAY")?;
            ctx(s.set_nonblocking(true), "set_nonblocking")?;
            Ok(s)
        })
        .collect()
}

/// Writes what is left of the current request; arms EPOLLOUT if the socket did not take it all.
fn push_request(ep: &Epoll, i: usize, c: &mut CConn) -> Res<()> {
    while c.sent < c.msg.len() {
        match (&c.stream).write(&c.msg[c.sent..]) {
            Ok(0) => return Err(format!("connection {}: write returned 0", c.id)),
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("connection {}, request {}: write: {e}", c.id, c.req)),
        }
    }
    let want_out = c.sent < c.msg.len();
    if want_out != c.out_armed {
        let ev = if want_out { EP_IN | EP_OUT } else { EP_IN };
        ep.modify(c.stream.as_raw_fd(), ev, i as u64)?;
        c.out_armed = want_out;
    }
    Ok(())
}

fn start_request(ep: &Epoll, i: usize, c: &mut CConn) -> Res<()> {
    for (j, b) in c.msg.iter_mut().enumerate() {
        *b = pattern(c.id, c.req, j);
    }
    c.sent = 0;
    c.got = 0;
    c.t0 = Instant::now();
    push_request(ep, i, c)
}

/// One client thread: drives its connections until each has done `requests` requests.
/// Returns the connections (still open) so that their closing is not timed.
fn client_thread(
    streams: Vec<(usize, TcpStream)>,
    cfg: &Config,
    start: &Barrier,
    deadline: Instant,
) -> (Res<LoadOut>, Vec<TcpStream>) {
    let mut conns: Vec<CConn> = streams
        .into_iter()
        .map(|(id, stream)| CConn {
            stream,
            id,
            req: 0,
            sent: 0,
            got: 0,
            t0: Instant::now(),
            msg: vec![0; cfg.size],
            out_armed: false,
        })
        .collect();
    let setup = || -> Res<Epoll> {
        let ep = Epoll::new()?;
        for (i, c) in conns.iter().enumerate() {
            ep.add(c.stream.as_raw_fd(), EP_IN, i as u64)?;
        }
        Ok(ep)
    };
    let ep = setup();
    start.wait(); // every thread waits here, even a failed one (the barrier counts them all)
    let r = ep.and_then(|ep| drive(&ep, &mut conns, cfg, deadline));
    (r, conns.into_iter().map(|c| c.stream).collect())
}

fn drive(ep: &Epoll, conns: &mut [CConn], cfg: &Config, deadline: Instant) -> Res<LoadOut> {
    let mut out = LoadOut { latencies_ns: Vec::with_capacity(conns.len() * cfg.requests), ..Default::default() };
    let mut evs = vec![EP_EMPTY; BATCH];
    let mut rbuf = vec![0u8; cfg.size];
    for (i, c) in conns.iter_mut().enumerate() {
        start_request(ep, i, c)?;
    }
    let mut remaining = conns.len();
    let mut last_progress = Instant::now();
    while remaining > 0 {
        let n = ep.wait(&mut evs, Duration::from_millis(200))?;
        let now = Instant::now();
        if now > deadline {
            return Err(format!(
                "time limit of {:?} reached with {remaining} of {} connections unfinished",
                cfg.limit,
                conns.len()
            ));
        }
        if n == 0 {
            if now - last_progress > STALL {
                let c = conns.iter().find(|c| c.req < cfg.requests).unwrap();
                return Err(format!(
                    "no echo for {STALL:?}: {remaining} connections waiting, e.g. connection {} at request {} \
                     ({} of {} bytes sent, {} echoed)",
                    c.id, c.req, c.sent, cfg.size, c.got
                ));
            }
            continue;
        }
        for ev in &evs[..n] {
            let i = ev.u64 as usize;
            let flags = ev.events;
            let c = &mut conns[i];
            if flags & EP_OUT != 0 && c.sent < c.msg.len() {
                push_request(ep, i, c)?;
            }
            if flags & (EP_IN | EP_HUP | EP_ERR) == 0 || c.req == cfg.requests {
                continue;
            }
            while c.got < cfg.size {
                let want = (cfg.size - c.got).min(c.sent - c.got).max(1);
                match (&c.stream).read(&mut rbuf[..want]) {
                    Ok(0) => {
                        return Err(format!(
                            "connection {}: the server closed it at request {} ({} of {} bytes echoed)",
                            c.id, c.req, c.got, cfg.size
                        ))
                    }
                    Ok(k) => {
                        if c.got + k > c.sent {
                            return Err(format!(
                                "connection {}, request {}: {} bytes echoed but only {} sent",
                                c.id,
                                c.req,
                                c.got + k,
                                c.sent
                            ));
                        }
                        for (j, &b) in rbuf[..k].iter().enumerate() {
                            let off = c.got + j;
                            let want = pattern(c.id, c.req, off);
                            if b != want {
                                return Err(format!(
                                    "connection {}, request {}: echoed byte {off} is {b:#04x}, sent {want:#04x}",
                                    c.id, c.req
                                ));
                            }
                        }
                        c.got += k;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("connection {}, request {}: read: {e}", c.id, c.req)),
                }
            }
            if c.got == cfg.size {
                out.latencies_ns.push(c.t0.elapsed().as_nanos() as u64);
                last_progress = now;
                c.req += 1;
                if c.req == cfg.requests {
                    remaining -= 1;
                    ep.delete(c.stream.as_raw_fd())?;
                } else {
                    start_request(ep, i, c)?;
                }
            }
        }
    }
    out.end = Some(Instant::now());
    // Nothing may follow the last echo.
    let mut b = [0u8; 64];
    for c in conns.iter() {
        match (&c.stream).read(&mut b) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(0) => return Err(format!("connection {}: closed by the server after the last echo", c.id)),
            Ok(k) => return Err(format!("connection {}: {k} unexpected byte(s) after the last echo", c.id)),
            Err(e) => return Err(format!("connection {}: read after the last echo: {e}", c.id)),
        }
    }
    Ok(out)
}

/// What the load generator measured over all its threads.
#[derive(Debug)]
pub struct Measured {
    /// Per request, unsorted.
    pub latencies_ns: Vec<u64>,
    /// Wall-clock seconds from the start signal to the last echo.
    pub secs: f64,
}

/// Drives the load against a server at `addr` whose accepted-connection count is `accepted`
/// (the clock starts once it reached `cfg.conns`). `window` is called just before the start
/// and just after the end with `true`/`false` (to read the server's CPU clocks). Returns
/// the client results and the still-open client sockets.
pub fn load(
    addr: SocketAddr,
    cfg: &Config,
    accepted: &dyn Fn() -> usize,
    window: &mut dyn FnMut(bool),
) -> (Res<Measured>, Vec<TcpStream>) {
    let streams = match connect_all(addr, cfg.conns) {
        Ok(s) => s,
        Err(e) => return (Err(e), Vec::new()),
    };
    let t = Instant::now();
    while accepted() < cfg.conns {
        if t.elapsed() > STALL {
            let msg = format!("the server accepted only {} of {} connections within {STALL:?}", accepted(), cfg.conns);
            return (Err(msg), streams);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let threads = cfg.clients.clamp(1, cfg.conns);
    let mut per: Vec<Vec<(usize, TcpStream)>> = (0..threads).map(|_| Vec::new()).collect();
    for (id, s) in streams.into_iter().enumerate() {
        per[id % threads].push((id, s));
    }
    let start = Arc::new(Barrier::new(threads + 1));
    let deadline = Instant::now() + cfg.limit;
    let mut handles = Vec::new();
    let mut spawn_err = None;
    for (j, streams) in per.into_iter().enumerate() {
        let (cfg, start) = (cfg.clone(), start.clone());
        let h = std::thread::Builder::new()
            .name(format!("echo-client-{j}"))
            .spawn(move || client_thread(streams, &cfg, &start, deadline));
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                spawn_err = Some(format!("spawn client thread: {e}"));
                break;
            }
        }
    }
    if let Some(e) = spawn_err {
        // The barrier would never open: the process cannot go on with a consistent state.
        eprintln!("error: echo: {e}");
        std::process::exit(1);
    }
    window(true);
    start.wait();
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(cfg.conns * cfg.requests);
    let mut end = t0;
    let mut errors = Vec::new();
    let mut open = Vec::new();
    for (j, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok((r, streams)) => {
                open.extend(streams);
                match r {
                    Ok(o) => {
                        lat.extend_from_slice(&o.latencies_ns);
                        end = end.max(o.end.unwrap_or(end));
                    }
                    Err(e) => errors.push(format!("client thread {j}: {e}")),
                }
            }
            Err(_) => errors.push(format!("client thread {j} panicked")),
        }
    }
    window(false);
    if !errors.is_empty() {
        return (Err(errors.join("; ")), open);
    }
    let expected = cfg.conns * cfg.requests;
    if lat.len() != expected {
        return (Err(format!("{} of {expected} requests completed", lat.len())), open);
    }
    let secs = (end - t0).as_secs_f64();
    if end - t0 > cfg.limit {
        return (Err(format!("the run took {secs:.1} s, over the limit of {:?}", cfg.limit)), open);
    }
    (Ok(Measured { latencies_ns: lat, secs }), open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn small() -> Config {
        Config { conns: 24, requests: 30, ..Config::demo(true) }
    }

    #[test]
    fn a_corrupting_server_fails_the_run() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        std::thread::spawn(move || {
            for (n, s) in listener.incoming().enumerate() {
                let Ok(mut s) = s else { return };
                acc.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    let mut total = 0usize;
                    while let Ok(k) = s.read(&mut buf) {
                        if k == 0 {
                            return;
                        }
                        for b in &mut buf[..k] {
                            if n == 3 && total == 200 {
                                *b ^= 1;
                            }
                            total += 1;
                        }
                        if s.write_all(&buf[..k]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let cfg = Config { conns: 8, requests: 10, ..small() };
        let (r, _open) = load(addr, &cfg, &|| accepted.load(Ordering::SeqCst), &mut |_| {});
        let e = r.expect_err("a corrupted echo must fail the run");
        assert!(e.contains("connection 3, request 3: echoed byte 8"), "{e}");
    }

    /// A server that never answers: the run must end with an error, not hang.
    #[test]
    fn a_silent_server_fails_the_run_in_bounded_time() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cfg = Config { conns: 4, requests: 2, limit: Duration::from_secs(2), ..small() };
        let t = Instant::now();
        let (r, _open) = load(addr, &cfg, &|| 4, &mut |_| {});
        let e = r.expect_err("no echo must fail the run");
        assert!(e.contains("no echo for") || e.contains("time limit"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(15));
        drop(listener);
    }
}
