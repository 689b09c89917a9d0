//! The server side every mechanism shares: the listener, the connection table, serving one
//! notification, counters, and starting and stopping the workers.

use super::{Config, Style};
use crate::run::{ctx, Mech, Res};
use crate::sys;
use socknotify::CompletionPort;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Notifications one wait may return (epoll `maxevents`, mio/polling capacity, socknotify
/// `out.len()`), as in the demo.
pub const BATCH: usize = 64;
/// Reads per notification before a one-shot connection yields to the others, as in the demo.
pub const READS_PER_PACKET: usize = 16;
/// How long a server worker blocks before it looks at the stop flag again.
pub const IDLE_WAIT: Duration = Duration::from_millis(20);
/// The listener's key (not `usize::MAX`: polling reserves it for `notify`).
pub const LISTENER: usize = usize::MAX / 2;
/// Read buffer per worker.
pub const BUF: usize = 16 * 1024;

/// One accepted connection. Only the thread that holds its notification touches it.
pub struct Conn {
    pub stream: TcpStream,
    /// Echo bytes the socket did not take yet.
    pub unsent: Mutex<Vec<u8>>,
    /// Edge style: write interest was added (it is kept from then on).
    pub out_armed: AtomicBool,
    /// Edge style, socknotify: its REMOVE is on the way; later packets are not served.
    pub closing: AtomicBool,
}

/// A worker's own counters, on its own cache line.
#[repr(align(128))]
#[derive(Default)]
pub struct PerWorker {
    wakeups: AtomicU64,
    /// The worker thread's system calls (`sys::calls()`), published after every batch.
    calls: AtomicU64,
}

pub struct Shared {
    pub listener: TcpListener,
    slots: Box<[Mutex<Option<Arc<Conn>>>]>,
    next_key: AtomicUsize,
    pub accepted: AtomicUsize,
    pub closed: AtomicUsize,
    per_worker: Box<[PerWorker]>,
    stop: AtomicBool,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    /// `per_worker`: counter slots (one per worker, or one per connection task).
    pub fn new(listener: TcpListener, conns: usize, per_worker: usize) -> Shared {
        Shared {
            listener,
            slots: (0..conns).map(|_| Mutex::new(None)).collect(),
            next_key: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            per_worker: (0..per_worker).map(|_| PerWorker::default()).collect(),
            stop: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    pub fn fail(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_error.lock().unwrap();
        if f.is_none() {
            *f = Some(msg);
        }
    }

    /// How many connections the load generator opens (one slot each).
    pub fn conns(&self) -> usize {
        self.slots.len()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Counts one connection notification handled by `worker`.
    #[inline]
    pub fn woke(&self, worker: usize) {
        let c = &self.per_worker[worker].wakeups;
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Publishes the calling worker's system call count.
    #[inline]
    pub fn publish(&self, worker: usize) {
        self.per_worker[worker].calls.store(sys::calls(), Ordering::Relaxed);
    }

    pub fn wakeups(&self) -> u64 {
        self.per_worker.iter().map(|w| w.wakeups.load(Ordering::Relaxed)).sum()
    }

    pub fn calls(&self) -> u64 {
        self.per_worker.iter().map(|w| w.calls.load(Ordering::Relaxed)).sum()
    }

    /// The connection of `key`, or a recorded error (a notification for a key with no
    /// connection is a stray notification).
    #[inline]
    pub fn get(&self, key: usize, what: &str) -> Option<Arc<Conn>> {
        let c = self.slots.get(key).and_then(|s| s.lock().unwrap().clone());
        if c.is_none() {
            self.fail(format!("{what} for key {key}, which has no open connection (stray notification)"));
        }
        c
    }

    /// Frees the slot of `key`: dropping the last `Arc` closes the socket.
    pub fn close(&self, key: usize) {
        match self.slots.get(key).and_then(|s| s.lock().unwrap().take()) {
            Some(_) => {
                self.closed.fetch_add(1, Ordering::Relaxed);
            }
            None => self.fail(format!("close of key {key}, which has no open connection (duplicate)")),
        }
    }

    /// Accepts until `WouldBlock`; `register` is called with each new connection's key.
    pub fn accept_all(&self, mut register: impl FnMut(usize, &Arc<Conn>) -> Res<()>) {
        loop {
            sys::note(1); // accept4
            match self.listener.accept() {
                Ok((stream, _)) => {
                    sys::note(2); // FIONBIO, TCP_NODELAY
                    if let Err(e) = stream.set_nonblocking(true).and_then(|_| stream.set_nodelay(true)) {
                        self.fail(format!("accepted socket: {e}"));
                        continue;
                    }
                    let key = self.next_key.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = self.slots.get(key) else {
                        self.fail(format!("accepted connection #{key}, more than the load generator opened"));
                        continue;
                    };
                    let conn = Arc::new(Conn {
                        stream,
                        unsent: Mutex::new(Vec::new()),
                        out_armed: AtomicBool::new(false),
                        closing: AtomicBool::new(false),
                    });
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
pub enum Next {
    /// Wait for more to read (one-shot: re-arm for reading; edge: drop write interest if armed).
    In,
    /// Part of the echo is unsent: wait until the socket is writable.
    Out,
    /// End of stream or error: close it.
    Close,
}

/// Writes what is unsent; `Some(true)` when nothing is left, `Some(false)` when the socket
/// took only part, `None` on error.
#[inline]
fn flush(conn: &Conn, unsent: &mut Vec<u8>) -> Option<bool> {
    if unsent.is_empty() {
        return Some(true);
    }
    let n = write_some(conn, unsent)?;
    unsent.drain(..n);
    Some(unsent.is_empty())
}

/// One-shot, level-triggered (the demo's shape): flushes what is unsent, then reads and
/// writes each read's echo back, until a read returns less than the buffer or `WouldBlock`,
/// at most [`READS_PER_PACKET`] reads. Unlike the demo, which reads on until `WouldBlock`, it
/// stops at a short read: the registration is re-armed level-triggered, so anything that
/// arrives later is notified again, and the extra `read` that would only return `EAGAIN` is
/// saved (for every mechanism alike).
#[inline]
pub fn serve_oneshot(conn: &Conn, buf: &mut [u8]) -> Next {
    let mut unsent = conn.unsent.lock().unwrap();
    match flush(conn, &mut unsent) {
        Some(true) => {}
        Some(false) => return Next::Out,
        None => return Next::Close,
    }
    for _ in 0..READS_PER_PACKET {
        match sys::read(conn.stream.as_raw_fd(), buf) {
            Ok(0) => return Next::Close,
            Ok(n) => {
                match echo(conn, &buf[..n], &mut unsent) {
                    Some(true) => {}
                    Some(false) => return Next::Out,
                    None => return Next::Close,
                }
                if n < buf.len() {
                    return Next::In;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::In,
            Err(_) => return Next::Close,
        }
    }
    Next::In // fairness: level re-arming notices what is left
}

/// Edge-triggered: flushes what is unsent, then reads until the socket is drained — a read
/// that returns less than the buffer (for a stream socket that means the receive queue is
/// empty, epoll(7)) or `WouldBlock` — writing each read's echo back.
#[inline]
pub fn serve_edge(conn: &Conn, buf: &mut [u8]) -> Next {
    let mut unsent = conn.unsent.lock().unwrap();
    match flush(conn, &mut unsent) {
        Some(true) => {}
        Some(false) => return Next::Out,
        None => return Next::Close,
    }
    loop {
        match sys::read(conn.stream.as_raw_fd(), buf) {
            Ok(0) => return Next::Close,
            Ok(n) => {
                match echo(conn, &buf[..n], &mut unsent) {
                    Some(true) => {}
                    Some(false) => return Next::Out,
                    None => return Next::Close,
                }
                if n < buf.len() {
                    return Next::In;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::In,
            Err(_) => return Next::Close,
        }
    }
}

/// Writes `data` back; what the socket does not take goes to `unsent`. `Some(true)`: all
/// written.
#[inline]
fn echo(conn: &Conn, data: &[u8], unsent: &mut Vec<u8>) -> Option<bool> {
    let w = write_some(conn, data)?;
    if w < data.len() {
        unsent.extend_from_slice(&data[w..]);
        return Some(false);
    }
    Some(true)
}

/// Writes as much of `data` as the socket takes: `Some(bytes written)`, `None` on error.
#[inline]
fn write_some(conn: &Conn, data: &[u8]) -> Option<usize> {
    let mut done = 0;
    while done < data.len() {
        match sys::write(conn.stream.as_raw_fd(), &data[done..]) {
            Ok(0) => return None,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => return None,
        }
    }
    Some(done)
}

/// A running echo server, whatever runs it (threads, or tasks on a tokio runtime).
pub trait EchoServer {
    fn shared(&self) -> &Arc<Shared>;
    fn addr(&self) -> SocketAddr;
    /// CPU time of every thread serving so far.
    fn cpu_ns(&self) -> u64;
    /// The server's system calls so far (its workers' own and socknotify's), where the bench
    /// can count them all; `None` where it cannot.
    fn calls(&self) -> Option<u64>;
    /// Stops the server; returns the server-side errors, if any. `clean`: every connection
    /// was closed, so a port must hold only the listener's registration.
    fn stop(&mut self, clean: bool) -> Res<()>;
}

/// The listener every server starts with, on 127.0.0.1, non-blocking.
pub fn bind() -> Res<(TcpListener, SocketAddr)> {
    let listener = ctx(TcpListener::bind("127.0.0.1:0"), "bind 127.0.0.1:0")?;
    ctx(listener.set_nonblocking(true), "listener set_nonblocking")?;
    // A backlog that holds every connection even if the workers are slow to accept.
    sys::listen(listener.as_raw_fd(), 4096);
    let addr = ctx(listener.local_addr(), "local_addr")?;
    Ok((listener, addr))
}

/// The end of a server's `stop`: adds the errors recorded in `sh` and, once every REMOVE packet
/// was dequeued, checks that the port holds only the listener's registration, then closes it.
pub fn conclude(
    sh: &Shared,
    port: Option<CompletionPort>,
    clean: bool,
    mut problems: Vec<String>,
) -> Result<(), String> {
    let errors = sh.errors.load(Ordering::Relaxed);
    if errors > 0 {
        let first = sh.first_error.lock().unwrap().clone().unwrap_or_default();
        problems.push(format!("{errors} server-side error(s), the first: {first}"));
    }
    if let Some(p) = port {
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

/// A running server on threads.
pub struct Server {
    pub sh: Arc<Shared>,
    pub addr: SocketAddr,
    pub workers: Vec<JoinHandle<()>>,
    clocks: Vec<libc::clockid_t>,
    pub port: Option<CompletionPort>,
    mech: Mech,
}

/// Spawns worker `i` of `mech`'s server.
pub fn spawn(mech: Mech, i: usize, f: Box<dyn FnOnce() + Send>) -> Res<JoinHandle<()>> {
    ctx(std::thread::Builder::new().name(format!("echo-{}-{i}", mech.name())).spawn(f), "spawn worker")
}

impl Server {
    pub fn start(mech: Mech, cfg: &Config) -> Res<Server> {
        let (listener, addr) = bind()?;
        let workers = match cfg.style {
            Style::Demo => cfg.workers,
            Style::Edge => 1,
        };
        let sh = Arc::new(Shared::new(listener, cfg.conns, workers));
        // Built first, so that an error below stops the workers already started (Drop).
        let mut s = Server { sh: sh.clone(), addr, workers: Vec::new(), clocks: Vec::new(), port: None, mech };
        if !Mech::SELECTABLE.contains(&mech) {
            return Err(format!("the echo scenarios have no {} server", mech.name()));
        }
        match cfg.style {
            Style::Demo => super::demo::start(mech, &mut s, workers)?,
            Style::Edge => super::edge::start(mech, &mut s)?,
        }
        s.clocks = s.workers.iter().map(sys::thread_clock).collect::<Res<Vec<_>>>()?;
        Ok(s)
    }
}

impl EchoServer for Server {
    fn shared(&self) -> &Arc<Shared> {
        &self.sh
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn cpu_ns(&self) -> u64 {
        self.clocks.iter().map(|&c| sys::clock_ns(c)).sum()
    }

    fn calls(&self) -> Option<u64> {
        let sn = if self.mech.is_socknotify() { CompletionPort::syscalls() } else { 0 };
        Some(self.sh.calls() + sn)
    }

    /// Stops and joins the workers.
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
        conclude(&self.sh, self.port.take(), clean, problems)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.workers.is_empty() || self.port.is_some() {
            let _ = self.stop(false);
        }
    }
}
