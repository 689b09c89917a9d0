//! `socknotify::tokio::AsyncPort` on tokio runtimes: an idle port never wakes a task, a post
//! from another thread or a socket's readiness does, many tasks share one port with each
//! packet going to exactly one, and a cancelled future loses nothing.
#![cfg(feature = "tokio")]

use socknotify::tokio::AsyncPort;
use socknotify::{Completion, CompletionPort, Error, Events, Registration, Trigger};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

const QUIET: Duration = Duration::from_millis(150);
const PATIENCE: Duration = Duration::from_secs(5);

fn async_port() -> AsyncPort {
    AsyncPort::new(CompletionPort::new().unwrap()).unwrap()
}

#[tokio::test]
async fn idle_port_never_completes_a_dequeue() {
    let port = async_port();
    let mut out = [Completion::default(); 4];
    assert!(timeout(QUIET, port.dequeue(&mut out)).await.is_err(), "an idle port must not complete a dequeue");
    assert_eq!(port.port().stats().delivered, 0);
}

#[tokio::test]
async fn post_from_another_thread_wakes_the_task() {
    let port = async_port();
    let p = port.port().clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        p.post(Completion::new(5, 6, 7)).unwrap();
    });
    let mut out = [Completion::default(); 4];
    let n = timeout(PATIENCE, port.dequeue(&mut out)).await.expect("a post must wake the task").unwrap();
    assert_eq!((n, out[0]), (1, Completion::new(5, 6, 7)));
    t.join().unwrap();
}

#[tokio::test]
async fn process_applies_then_waits_for_the_socket() {
    let port = async_port();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut regs = [Registration::enable(&a, 9, Events::IN, Trigger::LEVEL_ONESHOT)];
    let mut out = [Completion::default(); 4];
    // Not ready yet: the future waits (and is dropped by the timeout); the registration stays.
    assert!(timeout(QUIET, port.process(&mut regs, &mut out)).await.is_err());
    regs[0].result().unwrap();
    b.write_all(b"x").unwrap();
    let n = timeout(PATIENCE, port.dequeue(&mut out)).await.expect("readiness must wake the task").unwrap();
    assert_eq!((n, out[0].key()), (1, 9));
    assert!(out[0].events().contains(Events::IN));
    // ONESHOT: nothing more until re-enabled.
    assert!(timeout(QUIET, port.dequeue(&mut out)).await.is_err());
}

#[tokio::test]
async fn a_process_with_no_room_only_applies() {
    let port = async_port();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut regs = [Registration::enable(&a, 1, Events::OUT, Trigger::LEVEL_ONESHOT)];
    assert_eq!(port.process(&mut regs, &mut []).await.unwrap(), 0);
    regs[0].result().unwrap();
    // The level packet was queued at ENABLE (writable): the next dequeue has it.
    let mut out = [Completion::default(); 2];
    assert_eq!(timeout(PATIENCE, port.dequeue(&mut out)).await.unwrap().unwrap(), 1);
    assert!(matches!(port.dequeue(&mut []).await, Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn closing_the_port_ends_a_waiting_dequeue_with_an_error() {
    let port = Arc::new(async_port());
    let p = port.clone();
    let waiter = tokio::spawn(async move {
        let mut out = [Completion::default(); 4];
        p.dequeue(&mut out).await
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    port.port().close();
    let r = timeout(PATIENCE, waiter).await.expect("a closed port must wake its waiters").unwrap();
    assert!(matches!(r, Err(Error::InvalidHandle)), "{r:?}");
}

#[test]
fn new_outside_a_runtime_is_an_error_not_a_panic() {
    let r = AsyncPort::new(CompletionPort::new().unwrap());
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_futures_lose_nothing() {
    // A producer thread posts while tasks keep starting dequeues and dropping them after a
    // random short time (a timeout, as `select!` would): every packet arrives once, in order.
    const TOTAL: u32 = 20_000;
    let port = Arc::new(async_port());
    let p = port.port().clone();
    let producer = std::thread::spawn(move || {
        for i in 0..TOTAL {
            p.post(Completion::new(1, i, 0)).unwrap();
            if i % 400 == 0 {
                // A gap longer than tokio's timer tick: dequeues time out and are dropped.
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    });
    let mut next = 0u32;
    let mut cancelled = 0u32;
    let mut out = [Completion::default(); 7];
    let mut seed = 0x9e37_79b9_u32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while next < TOTAL {
        assert!(tokio::time::Instant::now() < deadline, "stuck at packet {next} of {TOTAL}");
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let wait = Duration::from_micros(u64::from(seed % 2_000));
        match timeout(wait, port.dequeue(&mut out)).await {
            Err(_) => cancelled += 1,
            Ok(n) => {
                for c in &out[..n.unwrap()] {
                    assert_eq!(c.bytes(), next, "FIFO order, nothing lost or repeated");
                    next += 1;
                }
            }
        }
    }
    producer.join().unwrap();
    assert!(timeout(QUIET, port.dequeue(&mut out)).await.is_err(), "nothing after the last packet");
    assert!(cancelled > 0, "the test must cancel some futures to prove anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_port_and_each_packet_goes_to_one() {
    const TASKS: usize = 8;
    const TOTAL: usize = 10_000;
    let port = Arc::new(async_port());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (port, tx) = (port.clone(), tx.clone());
            tokio::spawn(async move {
                let mut out = [Completion::default(); 16];
                loop {
                    let n = match port.dequeue(&mut out).await {
                        Ok(n) => n,
                        Err(Error::InvalidHandle) => return,
                        Err(e) => panic!("{e}"),
                    };
                    for c in &out[..n] {
                        tx.send(c.bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let p = port.port().clone();
    let producer = std::thread::spawn(move || {
        for i in 0..TOTAL {
            p.post(Completion::new(0, i as u32, 0)).unwrap();
        }
    });
    let mut seen = vec![false; TOTAL];
    for _ in 0..TOTAL {
        let i = timeout(PATIENCE, rx.recv()).await.expect("a packet went missing").unwrap() as usize;
        assert!(!seen[i], "packet {i} delivered twice");
        seen[i] = true;
    }
    producer.join().unwrap();
    port.port().close();
    for t in tasks {
        timeout(PATIENCE, t).await.expect("tasks end when the port closes").unwrap();
    }
    assert!(rx.recv().await.is_none(), "nothing delivered beyond what was posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_through_the_async_port() {
    // One connection served with LEVEL|ONESHOT re-arms in the same call that waits, as the
    // tokio_echo example does, for a few hundred round trips.
    use std::io::Read;
    let port = async_port();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let (server, _) = l.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        for i in 0u64..300 {
            client.write_all(&i.to_le_bytes()).unwrap();
            client.read_exact(&mut buf).unwrap();
            assert_eq!(u64::from_le_bytes(buf), i);
        }
    });
    let mut out = [Completion::default(); 4];
    let mut buf = [0u8; 64];
    let mut served = 0;
    while served < 300 * 8 {
        let mut regs = [Registration::enable(&server, 3, Events::IN, Trigger::LEVEL_ONESHOT)];
        let n = timeout(PATIENCE, port.process(&mut regs, &mut out)).await.expect("stalled").unwrap();
        regs[0].result().unwrap();
        assert_eq!((n, out[0].key()), (1, 3));
        loop {
            match (&server).read(&mut buf) {
                Ok(0) => {
                    assert_eq!(served, 300 * 8, "the client closed early");
                    break;
                }
                Ok(k) => {
                    (&server).write_all(&buf[..k]).unwrap();
                    served += k;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    echo.join().unwrap();
}

#[tokio::test]
async fn a_woken_future_dropped_before_its_next_poll_leaves_the_packet_queued() {
    let port = async_port();
    let mut out = [Completion::default(); 4];
    {
        let mut fut = Box::pin(port.dequeue(&mut out));
        assert!(futures_lite::future::poll_once(&mut fut).await.is_none(), "nothing queued yet");
        port.port().post(Completion::new(4, 0, 0)).unwrap();
        // Woken, never polled again: dropped here.
    }
    assert_eq!(port.port().queued(), 1, "the packet stays queued");
    let n = timeout(PATIENCE, port.dequeue(&mut out)).await.unwrap().unwrap();
    assert_eq!((n, out[0].key()), (1, 4));
}
