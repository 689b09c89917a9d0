//! `socknotify::async_io::AsyncPort` with the async-io reactor: an idle port never completes a
//! dequeue, a post from another thread or a socket's readiness does, and a cancelled future
//! loses nothing.
#![cfg(feature = "async-io")]

use async_io::{block_on, Timer};
use futures_lite::future::{or, FutureExt};
use socknotify::async_io::AsyncPort;
use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::Write;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(150);
const PATIENCE: Duration = Duration::from_secs(5);

/// `fut`'s output, or `None` if `limit` passed first (the future is then dropped).
async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    or(async { Some(fut.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

fn async_port() -> AsyncPort {
    AsyncPort::new(CompletionPort::new().unwrap()).unwrap()
}

#[test]
fn idle_port_never_completes_a_dequeue() {
    let port = async_port();
    let mut out = [Completion::default(); 4];
    assert!(block_on(within(QUIET, port.dequeue(&mut out))).is_none());
}

#[test]
fn post_from_another_thread_and_socket_readiness_wake_the_task() {
    let port = async_port();
    let p = port.port().clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        p.post(Completion::new(5, 6, 7)).unwrap();
    });
    let mut out = [Completion::default(); 4];
    let n = block_on(within(PATIENCE, port.dequeue(&mut out))).expect("a post must wake the task").unwrap();
    assert_eq!((n, out[0]), (1, Completion::new(5, 6, 7)));
    t.join().unwrap();

    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut regs = [Registration::enable(&a, 9, Events::IN, Trigger::LEVEL_ONESHOT)];
    assert!(block_on(within(QUIET, port.process(&mut regs, &mut out))).is_none());
    regs[0].result().unwrap();
    b.write_all(b"x").unwrap();
    let n = block_on(within(PATIENCE, port.dequeue(&mut out))).expect("readiness must wake the task").unwrap();
    assert_eq!((n, out[0].key()), (1, 9));
}

#[test]
fn cancelled_futures_lose_nothing() {
    const TOTAL: u32 = 10_000;
    let port = async_port();
    let p = port.port().clone();
    let producer = std::thread::spawn(move || {
        for i in 0..TOTAL {
            p.post(Completion::new(1, i, 0)).unwrap();
            if i % 64 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    let (mut next, mut cancelled) = (0u32, 0u32);
    let mut out = [Completion::default(); 7];
    let mut seed = 0x2545_f491_u32;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    block_on(async {
        while next < TOTAL {
            assert!(std::time::Instant::now() < deadline, "stuck at packet {next} of {TOTAL}");
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            match within(Duration::from_micros(u64::from(seed % 300)), port.dequeue(&mut out).boxed_local()).await {
                None => cancelled += 1,
                Some(n) => {
                    for c in &out[..n.unwrap()] {
                        assert_eq!(c.bytes(), next, "FIFO order, nothing lost or repeated");
                        next += 1;
                    }
                }
            }
        }
    });
    producer.join().unwrap();
    assert!(cancelled > 0, "the test must cancel some futures to prove anything");
}
