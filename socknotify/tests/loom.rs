//! Loom model of the port's queue and waiter logic (posts, blocking dequeues, hand-off to
//! the most recent waiter, close). Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p socknotify --release --test loom`.
//! The port has no registrations here, so no thread sleeps in `epoll_wait`: the model covers
//! the mutex/condition-variable protocol exhaustively, which is where lost wake-ups hide.
#![cfg(loom)]

use socknotify::{Completion, CompletionPort, Error};

#[test]
fn a_posted_packet_reaches_a_blocked_waiter_exactly_once() {
    loom::model(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let p2 = port.clone();
        let t = loom::thread::spawn(move || {
            let mut out = [Completion::default(); 2];
            let n = p2.dequeue(&mut out, None).unwrap();
            (n, out[0])
        });
        port.post(Completion::new(7, 1, 2)).unwrap();
        let (n, c) = t.join().unwrap();
        assert_eq!((n, c), (1, Completion::new(7, 1, 2)));
        assert_eq!(port.queued(), 0);
    });
}

#[test]
fn two_waiters_two_posts_each_packet_once() {
    loom::model(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let p = port.clone();
                loom::thread::spawn(move || {
                    let mut out = [Completion::default(); 1];
                    p.dequeue(&mut out, None).unwrap();
                    out[0].key()
                })
            })
            .collect();
        port.post(Completion::new(1, 0, 0)).unwrap();
        port.post(Completion::new(2, 0, 0)).unwrap();
        let mut got: Vec<usize> = waiters.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![1, 2]);
    });
}

#[test]
fn close_wakes_a_blocked_waiter_with_abandoned() {
    loom::model(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let p2 = port.clone();
        let t = loom::thread::spawn(move || p2.dequeue(&mut [Completion::default()], None));
        port.close();
        match t.join().unwrap() {
            Err(Error::Abandoned) | Err(Error::InvalidHandle) => {}
            other => panic!("expected Abandoned or InvalidHandle, got {other:?}"),
        }
    });
}

#[test]
fn a_running_thread_that_exits_releases_the_next_waiter() {
    loom::model(|| {
        let port = CompletionPort::with_concurrency(1).unwrap();
        port.post(Completion::new(1, 0, 0)).unwrap();
        port.post(Completion::new(2, 0, 0)).unwrap();
        let take = |p: CompletionPort| {
            loom::thread::spawn(move || {
                let mut out = [Completion::default(); 1];
                assert_eq!(p.dequeue(&mut out, None).unwrap(), 1);
                out[0].key()
                // The thread ends here: it no longer counts as running (D23).
            })
        };
        let a = take(port.clone());
        let b = take(port.clone());
        let mut got = vec![a.join().unwrap(), b.join().unwrap()];
        got.sort();
        assert_eq!(got, vec![1, 2]);
    });
}
