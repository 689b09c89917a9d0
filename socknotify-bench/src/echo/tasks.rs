//! The echo servers of `echo-async`, run by tasks on a tokio multi-threaded runtime of W
//! worker threads (built per run, so that its threads are the server's and nothing else's):
//!
//! * sn-tokio: the echo demo's server as W tasks sharing one `socknotify::tokio::AsyncPort`
//!   (port concurrency W): each runs the loop of [`demo`](super::demo)'s socknotify worker
//!   with `process(&mut regs, &mut out).await` in place of the blocking call (same
//!   `LEVEL_ONESHOT` re-enables in the next call, `LEVEL_PERSISTENT` listener, REMOVE frees the
//!   slot, packets handled by the same code); stopped by posted packets.
//! * tokio: no socknotify: one task per connection on `tokio::net::TcpStream`, `read` then
//!   `write_all` of what was read, until end of stream; an accept task.
//!
//! Server CPU time is that of the runtime's worker threads (their clocks are taken as they
//! start). System calls are not counted: tokio makes its reactor's `epoll_wait`, its threads'
//! parking and (plain tokio) the socket I/O inside its own code.

use super::demo::{sn_check, sn_handle, sn_port, sn_registrations, SnNext};
use super::server::{bind, conclude, EchoServer, Shared, BATCH, BUF};
use super::Config;
use crate::run::{ctx, Mech, Res};
use crate::sys;
use socknotify::tokio::AsyncPort;
use socknotify::{Completion, CompletionPort};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// The key of the packets that stop the sn-tokio tasks.
const STOP: usize = usize::MAX / 2 + 1;

/// A running server on a tokio runtime.
pub struct TokioServer {
    sh: Arc<Shared>,
    addr: SocketAddr,
    mech: Mech,
    workers: usize,
    rt: Option<Runtime>,
    clocks: Vec<libc::clockid_t>,
    tasks: Vec<JoinHandle<()>>,
    port: Option<CompletionPort>,
}

pub fn start(mech: Mech, cfg: &Config) -> Res<TokioServer> {
    let w = cfg.workers.max(1);
    let (listener, addr) = bind()?;
    // Counter slots: one per task (sn-tokio), one per connection task (tokio).
    let slots = if mech == Mech::SnTokio { w } else { cfg.conns };
    let sh = Arc::new(Shared::new(listener, cfg.conns, slots));
    let clocks = Arc::new(Mutex::new(Vec::new()));
    let rt = {
        let clocks = clocks.clone();
        ctx(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(w)
                .thread_name(format!("echo-{}", mech.name()))
                .enable_all()
                .on_thread_start(move || clocks.lock().unwrap().push(sys::current_thread_clock()))
                .build(),
            "tokio runtime",
        )?
    };
    // Built first, so that an error below stops what was started (Drop).
    let mut s = TokioServer {
        sh: sh.clone(),
        addr,
        mech,
        workers: w,
        rt: None,
        clocks: Vec::new(),
        tasks: Vec::new(),
        port: None,
    };
    match mech {
        Mech::SnTokio => {
            let p = sn_port(mech, &sh, w)?;
            s.port = Some(p.clone());
            let port = {
                let _in_runtime = rt.enter();
                Arc::new(ctx(AsyncPort::new(p), "AsyncPort::new")?)
            };
            for i in 0..w {
                s.tasks.push(rt.spawn(sn_task(sh.clone(), port.clone(), i)));
            }
        }
        Mech::Tokio => {
            let l = ctx(sh.listener.try_clone(), "listener try_clone")?;
            let l = {
                let _in_runtime = rt.enter();
                ctx(tokio::net::TcpListener::from_std(l), "tokio TcpListener::from_std")?
            };
            s.tasks.push(rt.spawn(accept_task(sh.clone(), l)));
        }
        _ => return Err(format!("echo-async has no {} server", mech.name())),
    }
    s.rt = Some(rt);
    // The worker threads start with the runtime; wait for their clocks.
    let t = Instant::now();
    while clocks.lock().unwrap().len() < w {
        if t.elapsed() > Duration::from_secs(5) {
            return Err("the tokio runtime's worker threads did not start within 5 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    s.clocks = clocks.lock().unwrap().iter().cloned().collect::<Res<Vec<_>>>()?;
    Ok(s)
}

/// The demo's socknotify loop as a task: the registrations decided while handling one batch
/// go into the next `process` call, awaited. It ends at a stop packet, posting back any other
/// stop packet it took (they are the other tasks').
async fn sn_task(sh: Arc<Shared>, port: Arc<AsyncPort>, me: usize) {
    let mut out = vec![Completion::default(); BATCH];
    let mut next = SnNext::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let mut regs = sn_registrations(&next);
        let result = port.process(&mut regs, &mut out).await;
        sn_check(&sh, &regs);
        drop(regs);
        next.clear();
        let n = match result {
            Ok(n) => n,
            Err(e) => return sh.fail(format!("process: {e}")),
        };
        let stops = sn_handle(&sh, &out[..n], &mut next, &mut buf, me, Some(STOP));
        if stops > 0 {
            for _ in 1..stops {
                if let Err(e) = port.port().post(Completion::new(STOP, 0, 0)) {
                    sh.fail(format!("post: {e}"));
                }
            }
            return;
        }
    }
}

async fn accept_task(sh: Arc<Shared>, listener: tokio::net::TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // ECONNABORTED and the like: the connection is gone, go on.
                if e.kind() != std::io::ErrorKind::ConnectionAborted {
                    sh.fail(format!("accept: {e}"));
                }
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            sh.fail(format!("accepted socket: {e}"));
            continue;
        }
        // Only this task counts accepted connections: the count is the key.
        let key = sh.accepted.load(Ordering::Relaxed);
        if key >= sh.conns() {
            sh.fail(format!("accepted connection #{key}, more than the load generator opened"));
            continue;
        }
        tokio::spawn(Polls { f: Box::pin(conn_task(sh.clone(), stream)), sh: sh.clone(), key });
        sh.accepted.fetch_add(1, Ordering::Release);
    }
}

/// One connection: reads, writes back what it read, until end of stream (or an error, which
/// closes it as the other servers do).
async fn conn_task(sh: Arc<Shared>, mut stream: tokio::net::TcpStream) {
    let mut buf = vec![0u8; BUF];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(stream);
    sh.closed.fetch_add(1, Ordering::Relaxed);
}

/// A connection's task, counting its polls as the notifications it handled (the first poll
/// and every wake-up).
struct Polls<F> {
    f: Pin<Box<F>>,
    sh: Arc<Shared>,
    key: usize,
}

impl<F: Future<Output = ()>> Future for Polls<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sh.woke(self.key);
        self.f.as_mut().poll(cx)
    }
}

impl EchoServer for TokioServer {
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
        None
    }

    fn stop(&mut self, clean: bool) -> Res<()> {
        let mut problems = Vec::new();
        if let Some(rt) = self.rt.take() {
            if let Some(p) = &self.port {
                for _ in 0..self.workers {
                    if let Err(e) = p.post(Completion::new(STOP, 0, 0)) {
                        problems.push(format!("post: {e}"));
                    }
                }
            }
            // The accept task waits for connections that will never come.
            let tasks: Vec<_> = self.tasks.drain(..).collect();
            if self.mech == Mech::Tokio {
                tasks.iter().for_each(|t| t.abort());
            }
            let joined = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), async {
                    let mut panicked = 0;
                    for t in tasks {
                        if let Err(e) = t.await {
                            panicked += e.is_panic() as usize;
                        }
                    }
                    panicked
                })
                .await
            });
            match joined {
                Ok(0) => {}
                Ok(n) => problems.push(format!("{n} server task(s) panicked")),
                Err(_) => problems.push("the server's tasks did not end within 5 s of the stop".into()),
            }
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        conclude(&self.sh, self.port.take(), clean, problems)
    }
}

impl Drop for TokioServer {
    fn drop(&mut self) {
        if self.rt.is_some() || self.port.is_some() {
            let _ = self.stop(false);
        }
    }
}
