//! What the echo examples (`echo_server.rs`, `tokio_echo.rs`) share on the server side: the
//! per-connection state keyed by slab index, the registrations a worker decides while handling
//! a batch, and the handling of one dequeued packet (accept, read and echo, REMOVE, free).
//! Only the loop around `process` differs between the examples: a blocking call on a thread,
//! or an `.await` in a task. Included by each with `#[path = "common/server.rs"] mod server;`.

use crate::load::ServerFigures;
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The listener's completion key.
pub const LISTENER_KEY: usize = usize::MAX;
/// The key of the packets that tell workers to stop.
pub const STOP_KEY: usize = usize::MAX - 1;
/// Packets one `process` call may return.
pub const BATCH: usize = 64;
/// Read buffer per worker.
pub const BUF: usize = 16 * 1024;
/// Reads per packet before a connection yields to the others (LEVEL re-fires if more is there).
const READS_PER_PACKET: usize = 16;

// --- per-connection state, keyed by slab index ------------------------------------------------

/// One accepted connection. Only the worker that dequeued its (ONESHOT) packet touches it,
/// so the mutex is never contended; it is there to make sharing the slab safe Rust.
pub struct Conn {
    stream: TcpStream,
    /// Echo bytes that could not be written yet.
    unsent: Mutex<Vec<u8>>,
}

#[derive(Default)]
struct Slab {
    slots: Vec<Option<Arc<Conn>>>,
    free: Vec<usize>,
    live: usize,
}

impl Slab {
    fn insert(&mut self, c: Arc<Conn>) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(c);
                i
            }
            None => {
                self.slots.push(Some(c));
                self.slots.len() - 1
            }
        }
    }
    fn get(&self, key: usize) -> Option<Arc<Conn>> {
        self.slots.get(key).and_then(|s| s.clone())
    }
    fn remove(&mut self, key: usize) -> Option<Arc<Conn>> {
        let c = self.slots.get_mut(key)?.take()?;
        self.free.push(key);
        self.live -= 1;
        Some(c)
    }
}

/// What the server shares between its workers.
pub struct Server {
    /// The example's name, for messages.
    program: &'static str,
    pub port: CompletionPort,
    listener: TcpListener,
    conns: Mutex<Slab>,
    pub notifications: AtomicU64,
    accepted: AtomicU64,
    removed: AtomicU64,
    echoed_bytes: AtomicU64,
    /// Times a connection had to wait for OUT (its peer was not reading fast enough).
    out_waits: AtomicU64,
    pub errors: AtomicU64,
}

/// What a worker asks for in its next `process` call.
pub enum Next {
    /// A new connection or a re-enable: ONESHOT|LEVEL with this filter.
    Enable(usize, Arc<Conn>, Events),
    /// End the registration; the slot is freed when its REMOVE packet is dequeued.
    Remove(usize, Arc<Conn>),
}

/// The registrations of `next`, for the next `process` call.
pub fn registrations(next: &[Next]) -> Vec<Registration<'_>> {
    next.iter()
        .map(|n| match n {
            Next::Enable(key, c, filter) => Registration::enable(&c.stream, *key, *filter, Trigger::LEVEL_ONESHOT),
            Next::Remove(_, c) => Registration::remove(&c.stream),
        })
        .collect()
}

impl Server {
    /// A server on `listener` (non-blocking), registered `LEVEL | PERSISTENT` with `port`
    /// once (an empty output: apply only).
    pub fn new(
        program: &'static str,
        port: CompletionPort,
        listener: TcpListener,
    ) -> Result<Server, Box<dyn std::error::Error>> {
        let mut reg = [Registration::enable(&listener, LISTENER_KEY, Events::IN, Trigger::LEVEL_PERSISTENT)];
        port.process(&mut reg, &mut [], Some(Duration::ZERO))?;
        reg[0].result()?;
        Ok(Server {
            program,
            port,
            listener,
            conns: Mutex::new(Slab::default()),
            notifications: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            echoed_bytes: AtomicU64::new(0),
            out_waits: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    /// Looks at the results of the registrations of `next` once `process` returned.
    pub fn check_registrations(&self, regs: &[Registration<'_>], next: &[Next]) {
        for (r, n) in regs.iter().zip(next) {
            if let Err(e) = r.result() {
                // Not expected here; free the connection so that nothing leaks.
                eprintln!("{}: registration failed: {e}", self.program);
                self.errors.fetch_add(1, Ordering::Relaxed);
                let key = match n {
                    Next::Enable(k, ..) | Next::Remove(k, _) => *k,
                };
                self.conns.lock().unwrap().remove(key);
            }
        }
    }

    /// Handles one dequeued packet (not a stop packet): the listener's, or a connection's.
    /// What it decides goes into `next`.
    pub fn handle(&self, packet: &Completion, next: &mut Vec<Next>, buf: &mut [u8]) {
        self.notifications.fetch_add(1, Ordering::Relaxed);
        let key = packet.key();
        if key == LISTENER_KEY {
            return self.accept_all(next);
        }
        let events = packet.events();
        if events.contains(Events::REMOVE) {
            // The last packet of this registration: now the state can go.
            // Dropping the last Arc closes the socket.
            self.conns.lock().unwrap().remove(key);
            self.removed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(conn) = self.conns.lock().unwrap().get(key) else {
            eprintln!("{}: packet for unknown key {key} ({events:?})", self.program);
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match serve(&conn, buf, &self.echoed_bytes) {
            Some(filter) => {
                if filter.contains(Events::OUT) {
                    self.out_waits.fetch_add(1, Ordering::Relaxed);
                }
                next.push(Next::Enable(key, conn, filter))
            }
            None => next.push(Next::Remove(key, conn)),
        }
    }

    /// Accepts until `WouldBlock`; each new connection is registered in the next `process` call.
    fn accept_all(&self, next: &mut Vec<Next>) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let conn = Arc::new(Conn { stream, unsent: Mutex::new(Vec::new()) });
                    let key = self.conns.lock().unwrap().insert(conn.clone());
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    next.push(Next::Enable(key, conn, Events::IN | Events::HANGUP));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // For example EMFILE: the listener stays registered (LEVEL|PERSISTENT), so
                    // the connection is accepted later.
                    eprintln!("{}: accept: {e}", self.program);
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Every client has closed: waits (bounded) for the server to REMOVE and free them all;
    /// returns how many are still open.
    pub fn wait_closed(&self) -> usize {
        let wait_until = Instant::now() + Duration::from_secs(5);
        while self.conns.lock().unwrap().live > 0 && Instant::now() < wait_until {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.conns.lock().unwrap().live
    }

    /// The server's side of the report.
    pub fn figures(&self, notifications: u64, left_open: usize) -> ServerFigures {
        ServerFigures {
            notifications,
            echoed_bytes: self.echoed_bytes.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            removed: self.removed.load(Ordering::Relaxed),
            left_open,
            out_waits: self.out_waits.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// Serves one packet of a connection: flushes what is unsent, then reads and echoes until
/// `WouldBlock`. Returns the filter to re-enable with, or `None` to REMOVE the connection
/// (end of stream, hang-up, error).
fn serve(conn: &Conn, buf: &mut [u8], echoed: &AtomicU64) -> Option<Events> {
    let mut unsent = conn.unsent.lock().unwrap();
    if !unsent.is_empty() && !flush(&conn.stream, &mut unsent)? {
        return Some(Events::OUT | Events::HANGUP);
    }
    for _ in 0..READS_PER_PACKET {
        match (&conn.stream).read(buf) {
            Ok(0) => return None, // the peer closed
            Ok(n) => {
                echoed.fetch_add(n as u64, Ordering::Relaxed);
                unsent.extend_from_slice(&buf[..n]);
                if !flush(&conn.stream, &mut unsent)? {
                    return Some(Events::OUT | Events::HANGUP);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(Events::IN | Events::HANGUP),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None, // reset or another error
        }
    }
    // Fairness: more may be waiting; LEVEL re-queues a packet at once when re-enabled.
    Some(Events::IN | Events::HANGUP)
}

/// Writes as much of `unsent` as the socket takes. `Some(true)`: all written;
/// `Some(false)`: the rest must wait for OUT; `None`: the connection failed.
fn flush(mut stream: &TcpStream, unsent: &mut Vec<u8>) -> Option<bool> {
    let mut done = 0;
    let r = loop {
        if done == unsent.len() {
            break Some(true);
        }
        match stream.write(&unsent[done..]) {
            Ok(0) => break None,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break Some(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break None,
        }
    };
    unsent.drain(..done);
    r
}
