//! The `echo` scenario: the echo demo's server (`socknotify/examples/echo_server.rs`) under one
//! shared load, with every mechanism: requests/s, p50/p99 latency and the server's CPU time
//! per request.
//!
//! **Load generator** (the same for every server): `conns` TCP connections on 127.0.0.1, all
//! connected and accepted before the clock starts, each sending `requests` requests of `size`
//! bytes with one request outstanding per connection. A few client threads (`clients`,
//! default 2) multiplex the connections with raw level-triggered epoll, so the client side
//! costs the same whatever the server. Every echoed byte is compared with what was sent (the
//! bytes differ per connection and request), the latency of each request (first byte written
//! to last byte of its echo read) is recorded, and after the last request every connection
//! must have nothing more to read. Bounded in count and in time: a run fails if it exceeds
//! `limit`, or if no reply arrives for [`STALL`].
//!
//! **Servers** (the same structure for every mechanism): `workers` threads, one non-blocking
//! listener, non-blocking connections with level-triggered one-shot read interest re-armed
//! after each handled notification; a notification is handled by reading until `WouldBlock`
//! (at most [`READS_PER_PACKET`] reads, as in the demo) and writing each read's echo back
//! (what the socket does not take is kept and the connection re-armed for writing instead).
//! Per-connection state is a slot of a table indexed by the key, touched only by the thread
//! that holds the connection's one-shot notification (its mutex is never contended).
//!
//! * `epoll`: one epoll descriptor shared by the workers; connections `EPOLLIN | EPOLLRDHUP |
//!   EPOLLONESHOT`, re-armed with one `EPOLL_CTL_MOD` each; the listener level-triggered.
//! * `mio`: `mio::Poll` cannot be shared between threads (`poll` takes `&mut self`), so each
//!   worker has its own `Poll`; worker 0 also holds the listener and hands connection `k` to
//!   worker `k % workers` (registered through a cloned `Registry`). mio is edge-triggered: the
//!   "re-arm" is a `reregister` after each handled event (an `EPOLL_CTL_MOD`, which also
//!   re-checks readiness, so stopping after [`READS_PER_PACKET`] reads loses nothing).
//! * `polling`: only one thread may wait on a `polling::Poller` at a time (a concurrent
//!   `wait` returns at once with no events), so, as for mio, one `Poller` per worker with
//!   connections handed out round-robin by worker 0; connections oneshot, re-armed with
//!   `modify`; the listener `PollMode::Level`.
//! * `socknotify` / `sn-epoll`: one `CompletionPort` shared by the workers (concurrency =
//!   workers), written like the demo: connections `LEVEL_ONESHOT` (`IN | HANGUP`), re-enabled in
//!   the worker's **next** `process` call together with its dequeue; the listener
//!   `LEVEL_PERSISTENT`; a closed connection is REMOVEd and its slot freed when the REMOVE
//!   packet arrives.
//!
//! Every worker waits in batches of [`BATCH`] and with a short timeout, so that it notices the
//! stop flag; a run ends with every connection closed by the client, closed (REMOVEd) by the
//! server, and no server-side error.

use crate::ready::Mech;
use crate::util::{ctx, percentile, Res};
use socknotify::{Backend, Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Notifications one wait may return (epoll `maxevents`, mio/polling capacity, socknotify
/// `out.len()`), as in the demo.
pub const BATCH: usize = 64;
/// Reads per notification before a connection yields to the others, as in the demo.
pub const READS_PER_PACKET: usize = 16;
/// A run fails when no reply at all arrives for this long.
pub const STALL: Duration = Duration::from_secs(5);
/// How long a server worker blocks before it looks at the stop flag again.
const IDLE_WAIT: Duration = Duration::from_millis(20);
/// The listener's key (not `usize::MAX`: polling reserves it for `notify`).
const LISTENER: usize = usize::MAX / 2;

/// The load and the server's shape.
#[derive(Clone, Debug)]
pub struct Config {
    pub conns: usize,
    pub requests: usize,
    pub size: usize,
    pub workers: usize,
    pub clients: usize,
    /// Upper bound on the timed part of one run.
    pub limit: Duration,
}

impl Config {
    pub fn new(quick: bool) -> Config {
        Config {
            conns: if quick { 100 } else { 200 },
            requests: if quick { 100 } else { 200 },
            size: 64,
            workers: 2,
            clients: 2,
            limit: Duration::from_secs(if quick { 15 } else { 30 }),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub requests: u64,
    /// Wall-clock seconds from the start signal to the last echo.
    pub secs: f64,
    /// Wall-clock seconds from the start signal until the first connection was done (a fair
    /// server keeps every connection at about the same pace: close to `secs`).
    pub first_done_secs: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// CPU time (user + kernel) of all server workers during the timed part.
    pub server_cpu_ns: u64,
    /// CPU time of all client threads during the timed part.
    pub client_cpu_ns: u64,
    /// Connection notifications the server handled during the timed part.
    pub wakeups: u64,
    /// socknotify's own system calls during the timed part (socknotify variants only).
    pub sn_syscalls: Option<u64>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

// --- small system helpers ----------------------------------------------------------------------

fn ep_create() -> Res<OwnedFd> {
    // SAFETY: epoll_create1 returns a new descriptor that we own, or -1.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ep_ctl(ep: RawFd, op: libc::c_int, fd: RawFd, events: libc::c_int, key: usize) -> Res<()> {
    let mut ev = libc::epoll_event { events: events as u32, u64: key as u64 };
    // SAFETY: ev is a valid epoll_event; fd is a descriptor the caller holds open.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(format!("epoll_ctl({op}) on fd {fd}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// epoll_wait, retried on EINTR.
fn ep_wait(ep: RawFd, evs: &mut [libc::epoll_event], timeout: Duration) -> Res<usize> {
    loop {
        // SAFETY: the buffer holds evs.len() entries.
        let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, timeout.as_millis() as i32) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(format!("epoll_wait: {e}"));
        }
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes a timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CPU-time clock of a running thread.
fn thread_clock<T>(h: &JoinHandle<T>) -> Res<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive (not joined) and clock is a local we own.
    let r = unsafe { libc::pthread_getcpuclockid(h.as_pthread_t(), &mut clock) };
    if r != 0 {
        return Err(format!("pthread_getcpuclockid: {}", std::io::Error::from_raw_os_error(r)));
    }
    Ok(clock)
}

/// Byte `i` of request `req` on connection `conn`: different for every connection and request,
/// so an echo from the wrong connection or of an old request is caught.
#[inline]
fn pattern(conn: usize, req: usize, i: usize) -> u8 {
    (conn.wrapping_mul(131) ^ req.wrapping_mul(31) ^ i.wrapping_mul(7) ^ (i >> 8)) as u8
}

// --- the server side, shared by every mechanism -------------------------------------------------

/// One accepted connection. Only the thread that holds its one-shot notification touches it.
struct Conn {
    stream: TcpStream,
    /// Echo bytes the socket did not take yet.
    unsent: Mutex<Vec<u8>>,
}

/// A worker's own counter, on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct PerWorker {
    wakeups: AtomicU64,
}

struct Shared {
    listener: TcpListener,
    slots: Box<[Mutex<Option<Arc<Conn>>>]>,
    next_key: AtomicUsize,
    accepted: AtomicUsize,
    closed: AtomicUsize,
    per_worker: Box<[PerWorker]>,
    stop: AtomicBool,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn new(listener: TcpListener, conns: usize, workers: usize) -> Shared {
        Shared {
            listener,
            slots: (0..conns).map(|_| Mutex::new(None)).collect(),
            next_key: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            per_worker: (0..workers).map(|_| PerWorker::default()).collect(),
            stop: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    fn fail(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_error.lock().unwrap();
        if f.is_none() {
            *f = Some(msg);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    #[inline]
    fn woke(&self, worker: usize) {
        let c = &self.per_worker[worker].wakeups;
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn wakeups(&self) -> u64 {
        self.per_worker.iter().map(|w| w.wakeups.load(Ordering::Relaxed)).sum()
    }

    /// The connection of `key`, or a recorded error (a notification for a key with no
    /// connection is a stray notification).
    #[inline]
    fn get(&self, key: usize, what: &str) -> Option<Arc<Conn>> {
        let c = self.slots.get(key).and_then(|s| s.lock().unwrap().clone());
        if c.is_none() {
            self.fail(format!("{what} for key {key}, which has no open connection (stray notification)"));
        }
        c
    }

    /// Frees the slot of `key`: dropping the last `Arc` closes the socket.
    fn close(&self, key: usize) {
        match self.slots.get(key).and_then(|s| s.lock().unwrap().take()) {
            Some(_) => {
                self.closed.fetch_add(1, Ordering::Relaxed);
            }
            None => self.fail(format!("close of key {key}, which has no open connection (duplicate)")),
        }
    }

    /// Accepts until `WouldBlock`; `register` is called with each new connection's key.
    fn accept_all(&self, mut register: impl FnMut(usize, &Arc<Conn>) -> Res<()>) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true).and_then(|_| stream.set_nodelay(true)) {
                        self.fail(format!("accepted socket: {e}"));
                        continue;
                    }
                    let key = self.next_key.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = self.slots.get(key) else {
                        self.fail(format!("accepted connection #{key}, more than the load generator opened"));
                        continue;
                    };
                    let conn = Arc::new(Conn { stream, unsent: Mutex::new(Vec::new()) });
                    *slot.lock().unwrap() = Some(conn.clone());
                    self.accepted.fetch_add(1, Ordering::Release);
                    if let Err(e) = register(key, &conn) {
                        self.fail(format!("registering connection {key}: {e}"));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    self.fail(format!("accept: {e}"));
                    return;
                }
            }
        }
    }
}

/// What to do with a connection after serving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Re-arm for reading.
    In,
    /// Part of the echo is unsent: re-arm for writing.
    Out,
    /// End of stream or error: close it.
    Close,
}

/// Serves one notification: flushes what is unsent, then reads until `WouldBlock` (at most
/// [`READS_PER_PACKET`] reads) and writes each read's echo back.
#[inline]
fn serve(conn: &Conn, buf: &mut [u8]) -> Next {
    let mut unsent = conn.unsent.lock().unwrap();
    if !unsent.is_empty() {
        match write_some(&conn.stream, &unsent) {
            Some(n) if n == unsent.len() => unsent.clear(),
            Some(n) => {
                unsent.drain(..n);
                return Next::Out;
            }
            None => return Next::Close,
        }
    }
    for _ in 0..READS_PER_PACKET {
        match (&conn.stream).read(buf) {
            Ok(0) => return Next::Close,
            Ok(n) => match write_some(&conn.stream, &buf[..n]) {
                Some(w) if w == n => {}
                Some(w) => {
                    unsent.extend_from_slice(&buf[w..n]);
                    return Next::Out;
                }
                None => return Next::Close,
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::In,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
    Next::In // fairness: level re-arming notices what is left
}

/// Writes as much of `data` as the socket takes: `Some(bytes written)`, `None` on error.
#[inline]
fn write_some(mut stream: &TcpStream, data: &[u8]) -> Option<usize> {
    let mut done = 0;
    while done < data.len() {
        match stream.write(&data[done..]) {
            Ok(0) => return None,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(done)
}

/// A running server.
struct Server {
    sh: Arc<Shared>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
    clocks: Vec<libc::clockid_t>,
    port: Option<CompletionPort>,
}

impl Server {
    fn start(mech: Mech, cfg: &Config) -> Res<Server> {
        let listener = ctx(TcpListener::bind("127.0.0.1:0"), "bind 127.0.0.1:0")?;
        ctx(listener.set_nonblocking(true), "listener set_nonblocking")?;
        // A backlog that holds every connection even if the workers are slow to accept.
        // SAFETY: listen on a socket we own; calling it again only changes the backlog.
        unsafe { libc::listen(listener.as_raw_fd(), 4096) };
        let addr = ctx(listener.local_addr(), "local_addr")?;
        let sh = Arc::new(Shared::new(listener, cfg.conns, cfg.workers));
        let w = cfg.workers;
        // Built first, so that an error below stops the workers already started (Drop).
        let mut s = Server { sh: sh.clone(), addr, workers: Vec::with_capacity(w), clocks: Vec::new(), port: None };
        let spawn = |i: usize, f: Box<dyn FnOnce() + Send>| {
            ctx(std::thread::Builder::new().name(format!("echo-{}-{i}", mech.name())).spawn(f), "spawn worker")
        };
        match mech {
            Mech::Baseline => return Err("the echo scenario has no no-mechanism baseline".into()),
            Mech::Epoll => {
                let ep = Arc::new(ep_create()?);
                ep_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, sh.listener.as_raw_fd(), libc::EPOLLIN, LISTENER)?;
                for i in 0..w {
                    let (sh, ep) = (sh.clone(), ep.clone());
                    s.workers.push(spawn(i, Box::new(move || epoll_worker(&sh, ep.as_raw_fd(), i)))?);
                }
            }
            Mech::Mio => {
                let polls: Vec<mio::Poll> =
                    (0..w).map(|_| ctx(mio::Poll::new(), "mio::Poll::new")).collect::<Res<_>>()?;
                let regs: Vec<mio::Registry> = polls
                    .iter()
                    .map(|p| ctx(p.registry().try_clone(), "mio Registry::try_clone"))
                    .collect::<Res<_>>()?;
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
                    s.workers.push(spawn(i, Box::new(move || mio_worker(&sh, poll, regs, i)))?);
                }
            }
            Mech::Polling => {
                let pollers: Arc<Vec<polling::Poller>> =
                    Arc::new((0..w).map(|_| ctx(polling::Poller::new(), "polling::Poller::new")).collect::<Res<_>>()?);
                // SAFETY: the listener stays open until after the pollers are dropped (the
                // workers hold them; the listener lives in `Shared`, dropped after the join).
                ctx(
                    unsafe {
                        pollers[0].add_with_mode(
                            &sh.listener,
                            polling::Event::readable(LISTENER),
                            polling::PollMode::Level,
                        )
                    },
                    "polling add listener",
                )?;
                for i in 0..w {
                    let (sh, pollers) = (sh.clone(), pollers.clone());
                    s.workers.push(spawn(i, Box::new(move || polling_worker(&sh, &pollers, i)))?);
                }
            }
            Mech::Socknotify | Mech::SocknotifyEpoll => {
                let backend = if mech == Mech::SocknotifyEpoll { Backend::Epoll } else { Backend::Auto };
                let p = ctx(
                    CompletionPort::builder().backend(backend).concurrency(w as u32).build(),
                    "CompletionPort::build",
                )?;
                let mut reg = [Registration::enable(&sh.listener, LISTENER, Events::IN, Trigger::LEVEL_PERSISTENT)];
                ctx(p.process(&mut reg, &mut [], Some(Duration::ZERO)), "process(listener)")?;
                ctx(reg[0].result(), "listener registration")?;
                s.port = Some(p.clone());
                for i in 0..w {
                    let (sh, p) = (sh.clone(), p.clone());
                    s.workers.push(spawn(i, Box::new(move || sn_worker(&sh, &p, i)))?);
                }
            }
        }
        s.clocks = s.workers.iter().map(thread_clock).collect::<Res<Vec<_>>>()?;
        Ok(s)
    }

    fn cpu_ns(&self) -> u64 {
        self.clocks.iter().map(|&c| clock_ns(c)).sum()
    }

    /// Stops and joins the workers; returns the server-side errors, if any. `clean`: every
    /// connection was closed, so a port must hold only the listener's registration.
    fn stop(&mut self, clean: bool) -> Res<()> {
        self.sh.stop.store(true, Ordering::Release);
        let mut panicked = 0;
        for h in self.workers.drain(..) {
            panicked += h.join().is_err() as usize;
        }
        let mut problems = Vec::new();
        if panicked > 0 {
            problems.push(format!("{panicked} server worker(s) panicked"));
        }
        let errors = self.sh.errors.load(Ordering::Relaxed);
        if errors > 0 {
            let first = self.sh.first_error.lock().unwrap().clone().unwrap_or_default();
            problems.push(format!("{errors} server-side error(s), the first: {first}"));
        }
        if let Some(p) = self.port.take() {
            // Only the listener is left once every REMOVE packet was dequeued.
            let regs = p.registrations();
            if clean && regs != 1 && problems.is_empty() {
                problems.push(format!("the port still holds {regs} registrations (expected only the listener's)"));
            }
            p.close();
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.workers.is_empty() || self.port.is_some() {
            let _ = self.stop(false);
        }
    }
}

// --- the workers, one per mechanism -------------------------------------------------------------

const EP_CONN_IN: libc::c_int = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT;
const EP_CONN_OUT: libc::c_int = libc::EPOLLOUT | libc::EPOLLONESHOT;

fn epoll_worker(sh: &Shared, ep: RawFd, me: usize) {
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
    let mut buf = vec![0u8; 16 * 1024];
    while !sh.stopping() {
        let n = match ep_wait(ep, &mut evs, IDLE_WAIT) {
            Ok(n) => n,
            Err(e) => return sh.fail(e),
        };
        for ev in &evs[..n] {
            let key = ev.u64 as usize;
            if key == LISTENER {
                sh.accept_all(|k, c| ep_ctl(ep, libc::EPOLL_CTL_ADD, c.stream.as_raw_fd(), EP_CONN_IN, k));
                continue;
            }
            sh.woke(me);
            let Some(conn) = sh.get(key, "epoll event") else { continue };
            let fd = conn.stream.as_raw_fd();
            let r = match serve(&conn, &mut buf) {
                Next::In => ep_ctl(ep, libc::EPOLL_CTL_MOD, fd, EP_CONN_IN, key),
                Next::Out => ep_ctl(ep, libc::EPOLL_CTL_MOD, fd, EP_CONN_OUT, key),
                Next::Close => {
                    let r = ep_ctl(ep, libc::EPOLL_CTL_DEL, fd, 0, key);
                    drop(conn);
                    sh.close(key);
                    r
                }
            };
            if let Err(e) = r {
                sh.fail(e);
            }
        }
    }
}

/// `regs` (worker 0 only): every worker's registry, to hand out new connections.
fn mio_worker(sh: &Shared, mut poll: mio::Poll, regs: Vec<mio::Registry>, me: usize) {
    use mio::{unix::SourceFd, Interest, Token};
    let mut events = mio::Events::with_capacity(BATCH);
    let mut buf = vec![0u8; 16 * 1024];
    while !sh.stopping() {
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
                    ctx(r.register(&mut SourceFd(&c.stream.as_raw_fd()), Token(k), Interest::READABLE), "mio register")
                });
                continue;
            }
            sh.woke(me);
            let Some(conn) = sh.get(key, "mio event") else { continue };
            let fd = conn.stream.as_raw_fd();
            let reg = poll.registry();
            let r = match serve(&conn, &mut buf) {
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
    }
}

fn polling_worker(sh: &Shared, pollers: &[polling::Poller], me: usize) {
    use polling::Event;
    let poller = &pollers[me];
    let mut events = polling::Events::with_capacity(std::num::NonZeroUsize::new(BATCH).unwrap());
    let mut buf = vec![0u8; 16 * 1024];
    while !sh.stopping() {
        events.clear();
        if let Err(e) = poller.wait(&mut events, Some(IDLE_WAIT)) {
            return sh.fail(format!("polling wait: {e}"));
        }
        for ev in events.iter() {
            let key = ev.key;
            if key == LISTENER {
                sh.accept_all(|k, c| {
                    // SAFETY: the connection is deleted from the poller before its socket
                    // is closed (Next::Close below).
                    ctx(unsafe { pollers[k % pollers.len()].add(&c.stream, Event::readable(k)) }, "polling add")
                });
                continue;
            }
            sh.woke(me);
            let Some(conn) = sh.get(key, "polling event") else { continue };
            let r = match serve(&conn, &mut buf) {
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
    }
    if me == 0 {
        let _ = pollers[0].delete(&sh.listener);
    }
}

/// The demo's loop: the registrations decided while handling one batch go into the next
/// `process` call, which applies them and then dequeues.
fn sn_worker(sh: &Shared, port: &CompletionPort, me: usize) {
    let mut out = vec![Completion::default(); BATCH];
    // (key, connection, Some(filter) to re-enable | None to REMOVE)
    let mut next: Vec<(usize, Arc<Conn>, Option<Events>)> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while !sh.stopping() {
        let mut regs: Vec<Registration<'_>> = next
            .iter()
            .map(|(key, c, filter)| match filter {
                Some(f) => Registration::enable(&c.stream, *key, *f, Trigger::LEVEL_ONESHOT),
                None => Registration::remove(&c.stream),
            })
            .collect();
        let result = port.process(&mut regs, &mut out, Some(IDLE_WAIT));
        for r in &regs {
            if let Err(e) = r.result() {
                sh.fail(format!("registration of key {} failed: {e} (code {})", r.key(), r.result_code()));
            }
        }
        drop(regs);
        next.clear();
        let n = match result {
            Ok(n) => n,
            Err(e) => return sh.fail(format!("process: {e}")),
        };
        for p in &out[..n] {
            let key = p.key();
            if key == LISTENER {
                sh.accept_all(|k, c| {
                    next.push((k, c.clone(), Some(Events::IN | Events::HANGUP)));
                    Ok(())
                });
                continue;
            }
            if p.events().contains(Events::REMOVE) {
                // The registration's last packet: now the state can go.
                sh.close(key);
                continue;
            }
            sh.woke(me);
            let Some(conn) = sh.get(key, "packet") else { continue };
            match serve(&conn, &mut buf) {
                Next::In => next.push((key, conn, Some(Events::IN | Events::HANGUP))),
                Next::Out => next.push((key, conn, Some(Events::OUT | Events::HANGUP))),
                Next::Close => next.push((key, conn, None)),
            }
        }
    }
}

// --- the load generator -------------------------------------------------------------------------

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
    pub cpu_ns: u64,
    pub end: Option<Instant>,
    /// When the first of the thread's connections did its last request.
    pub first_done: Option<Instant>,
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
fn push_request(ep: RawFd, i: usize, c: &mut CConn) -> Res<()> {
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
        let ev = if want_out { libc::EPOLLIN | libc::EPOLLOUT } else { libc::EPOLLIN };
        ep_ctl(ep, libc::EPOLL_CTL_MOD, c.stream.as_raw_fd(), ev, i)?;
        c.out_armed = want_out;
    }
    Ok(())
}

fn start_request(ep: RawFd, i: usize, c: &mut CConn) -> Res<()> {
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
    let setup = || -> Res<OwnedFd> {
        let ep = ep_create()?;
        for (i, c) in conns.iter().enumerate() {
            ep_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, c.stream.as_raw_fd(), libc::EPOLLIN, i)?;
        }
        Ok(ep)
    };
    let ep = setup();
    start.wait(); // every thread waits here, even a failed one (the barrier counts them all)
    let r = ep.and_then(|ep| drive(ep.as_raw_fd(), &mut conns, cfg, deadline));
    (r, conns.into_iter().map(|c| c.stream).collect())
}

fn drive(ep: RawFd, conns: &mut [CConn], cfg: &Config, deadline: Instant) -> Res<LoadOut> {
    let cpu0 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let mut out = LoadOut { latencies_ns: Vec::with_capacity(conns.len() * cfg.requests), ..Default::default() };
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
    let mut rbuf = vec![0u8; cfg.size];
    for (i, c) in conns.iter_mut().enumerate() {
        start_request(ep, i, c)?;
    }
    let mut remaining = conns.len();
    let mut last_progress = Instant::now();
    while remaining > 0 {
        let n = ep_wait(ep, &mut evs, Duration::from_millis(200))?;
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
            let flags = ev.events as libc::c_int;
            let c = &mut conns[i];
            if flags & libc::EPOLLOUT != 0 && c.sent < c.msg.len() {
                push_request(ep, i, c)?;
            }
            if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) == 0 || c.req == cfg.requests {
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
                    out.first_done.get_or_insert(now);
                    ep_ctl(ep, libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, i)?;
                } else {
                    start_request(ep, i, c)?;
                }
            }
        }
    }
    out.end = Some(Instant::now());
    out.cpu_ns = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu0;
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
    /// Seconds from the start to the moment the first connection was done.
    pub first_done_secs: f64,
    pub client_cpu_ns: u64,
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
    let mut cpu = 0;
    let mut end = t0;
    let mut first_done: Option<Instant> = None;
    let mut errors = Vec::new();
    let mut open = Vec::new();
    for (j, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok((r, streams)) => {
                open.extend(streams);
                match r {
                    Ok(o) => {
                        lat.extend_from_slice(&o.latencies_ns);
                        cpu += o.cpu_ns;
                        end = end.max(o.end.unwrap_or(end));
                        if let Some(f) = o.first_done {
                            first_done = Some(first_done.map_or(f, |x| x.min(f)));
                        }
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
    let first_done_secs = (first_done.unwrap_or(end) - t0).as_secs_f64();
    (Ok(Measured { latencies_ns: lat, secs, first_done_secs, client_cpu_ns: cpu }), open)
}

/// One run: a fresh server for `mech`, the load against it, every check.
pub fn run(mech: Mech, cfg: &Config) -> Res<Outcome> {
    let mut server = Server::start(mech, cfg)?;
    let sh = server.sh.clone();
    let (mut cpu0, mut cpu1, mut w0, mut w1, mut s0, mut s1) = (0, 0, 0, 0, 0, 0);
    let (r, open) = {
        let srv = &server;
        let mut window = |starting: bool| {
            let (cpu, w, s) = (srv.cpu_ns(), sh.wakeups(), CompletionPort::syscalls());
            if starting {
                (cpu0, w0, s0) = (cpu, w, s);
            } else {
                (cpu1, w1, s1) = (cpu, w, s);
            }
        };
        let accepted = || sh.accepted.load(Ordering::Acquire);
        load(server.addr, cfg, &accepted, &mut window)
    };
    // Close the client side; the server must see every end of stream and close (REMOVE) all.
    drop(open);
    let mut problems = Vec::new();
    if let Err(e) = &r {
        problems.push(e.clone());
    } else {
        let t = Instant::now();
        while sh.closed.load(Ordering::Relaxed) < cfg.conns && t.elapsed() < STALL {
            std::thread::sleep(Duration::from_millis(1));
        }
        let closed = sh.closed.load(Ordering::Relaxed);
        if closed != cfg.conns {
            problems.push(format!(
                "the server closed {closed} of {} connections within {STALL:?} after the clients closed them \
                 (end of stream or REMOVE packet missing)",
                cfg.conns
            ));
        }
    }
    if let Err(e) = server.stop(problems.is_empty()) {
        problems.push(e);
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let Measured { latencies_ns: mut lat, secs, first_done_secs, client_cpu_ns: client_cpu } = r.unwrap();
    lat.sort_unstable();
    Ok(Outcome {
        requests: lat.len() as u64,
        secs,
        first_done_secs,
        p50_ns: percentile(&lat, 50.0),
        p99_ns: percentile(&lat, 99.0),
        max_ns: lat.last().copied().unwrap_or(0),
        server_cpu_ns: cpu1.saturating_sub(cpu0),
        client_cpu_ns: client_cpu,
        wakeups: w1.saturating_sub(w0),
        sn_syscalls: mech.is_socknotify().then(|| s1.saturating_sub(s0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Config {
        Config { conns: 24, requests: 30, size: 64, workers: 2, clients: 2, limit: Duration::from_secs(10) }
    }

    #[test]
    fn every_mechanism_echoes_every_byte() {
        for m in [Mech::Epoll, Mech::Mio, Mech::Polling, Mech::Socknotify, Mech::SocknotifyEpoll] {
            let o = run(m, &small()).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert_eq!(o.requests, 24 * 30, "{}", m.name());
            assert!(o.wakeups > 0 && o.p50_ns > 0 && o.p99_ns >= o.p50_ns, "{}: {o:?}", m.name());
        }
    }

    #[test]
    fn large_requests_take_the_write_interest_path() {
        // 1 MiB requests overflow the socket buffers: partial writes on both sides.
        let cfg = Config { conns: 4, requests: 3, size: 1 << 20, ..small() };
        for m in [Mech::Epoll, Mech::Mio, Mech::Polling, Mech::Socknotify, Mech::SocknotifyEpoll] {
            let o = run(m, &cfg).unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert_eq!(o.requests, 12, "{}", m.name());
        }
    }

    /// A server that echoes every byte except that it flips one: the load generator must fail.
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
