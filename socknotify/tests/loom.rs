//! Loom model of the port's queue and waiter logic (posts, blocking dequeues, hand-off to
//! the most recent waiter, close). Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p socknotify --release --test loom`.
//! The first models have no registrations, so no thread sleeps in the kernel: they cover the
//! mutex/condition-variable protocol exhaustively, which is where lost wake-ups hide. The
//! last ones have a registration, so one waiter becomes the poller and sleeps in loom's
//! model of epoll and the eventfd (`socknotify/src/sys/model.rs`): they cover the poller's
//! hand-off through the eventfd.
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

/// (Bounded at 4 preemptions: unbounded, with the posts' lock-free ring, the model runs for
/// minutes.)
#[test]
fn two_waiters_two_posts_each_packet_once() {
    model_bounded_at(4, || {
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

// Posts without the port lock (`port/posts.rs`): while nobody waits and nothing is registered,
// a post only appends to the port's inbox; a thread about to block moves the inbox to the FIFO
// and turns that path off in one step, under the inbox lock.

/// Posts race a consumer that blocks between them: each post either lands in the inbox before
/// the consumer looks (it takes it without sleeping) or finds it asleep and hands the packet
/// over under the port lock. Nothing is lost (loom reports a deadlock if a wake-up is), nothing
/// comes twice, the order holds.
#[test]
fn posts_racing_a_blocking_consumer_arrive_once_in_order() {
    loom::model(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let p2 = port.clone();
        let t = loom::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 2 {
                let mut out = [Completion::default(); 2];
                let n = p2.dequeue(&mut out, None).unwrap();
                got.extend(out[..n].iter().map(|c| c.key()));
            }
            got
        });
        port.post(Completion::new(1, 0, 0)).unwrap();
        port.post(Completion::new(2, 0, 0)).unwrap();
        assert_eq!(t.join().unwrap(), vec![1, 2]);
        assert_eq!(port.queued(), 0);
        assert_eq!(port.stats().posted, 2);
    });
}

/// A consumer taking one packet per call from an inbox that holds more, while posts go on:
/// four posts through a ring of two slots (under loom), so that the ring wraps, and fills
/// (the post then moves it to the FIFO under the port lock): each packet once, in post order.
#[test]
fn a_consumer_smaller_than_the_inbox_takes_the_rest_in_order() {
    model_bounded(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let p2 = port.clone();
        let t = loom::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 4 {
                let mut out = [Completion::default(); 1];
                let n = p2.dequeue(&mut out, None).unwrap();
                got.extend(out[..n].iter().map(|c| c.key()));
            }
            got
        });
        for k in 1..=4 {
            port.post(Completion::new(k, 0, 0)).unwrap();
        }
        assert_eq!(t.join().unwrap(), vec![1, 2, 3, 4]);
        let s = port.stats();
        assert_eq!((s.queued, s.posted, s.delivered), (0, 4, 4));
    });
}

/// Two threads post while a consumer blocks: a post may have claimed its slot in the ring and
/// not filled it yet when the consumer turns the fast path off (the consumer waits for it), or
/// see the fast path off and hand its packet over under the port lock; each packet once, and
/// each poster's packets in its order.
#[test]
fn two_posters_and_a_blocking_consumer_each_packet_once_in_order() {
    model_bounded(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let p2 = port.clone();
        let consumer = loom::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 3 {
                let mut out = [Completion::default(); 2];
                let n = p2.dequeue(&mut out, None).unwrap();
                got.extend(out[..n].iter().map(|c| c.key()));
            }
            got
        });
        let p3 = port.clone();
        let poster = loom::thread::spawn(move || p3.post(Completion::new(10, 0, 0)).unwrap());
        port.post(Completion::new(1, 0, 0)).unwrap();
        port.post(Completion::new(2, 0, 0)).unwrap();
        poster.join().unwrap();
        let got = consumer.join().unwrap();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 10], "lost or duplicated: {got:?}");
        let pos = |k| got.iter().position(|&x| x == k).unwrap();
        assert!(pos(1) < pos(2), "one poster's packets out of order: {got:?}");
        assert_eq!(port.stats().posted, 3);
    });
}

/// Two consumers, one of them maybe already running when the posts come: each packet once,
/// and a consumer that takes both takes them in order.
#[test]
fn posts_reach_two_consumers_once_each_in_order() {
    model_bounded(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let p = port.clone();
                loom::thread::spawn(move || {
                    let mut out = [Completion::default(); 2];
                    let n = p.dequeue(&mut out, None).unwrap();
                    out[..n].iter().map(|c| c.key()).collect::<Vec<_>>()
                })
            })
            .collect();
        port.post(Completion::new(1, 0, 0)).unwrap();
        port.post(Completion::new(2, 0, 0)).unwrap();
        port.post(Completion::new(3, 0, 0)).unwrap();
        let got: Vec<Vec<usize>> = consumers.into_iter().map(|t| t.join().unwrap()).collect();
        for g in &got {
            assert!(g.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
        }
        let delivered: Vec<usize> = got.iter().flatten().copied().collect();
        let mut distinct = delivered.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), delivered.len(), "a packet came twice: {got:?}");
        assert_eq!(delivered.len() + port.queued(), 3, "a packet was lost: {got:?}");
    });
}

/// A post racing `close` is either refused or discarded with the rest (D6): never delivered
/// afterwards, never left queued.
#[test]
fn a_post_racing_close_is_refused_or_discarded() {
    loom::model(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let p2 = port.clone();
        let t = loom::thread::spawn(move || p2.post(Completion::new(1, 0, 0)));
        port.close();
        let r = t.join().unwrap();
        assert!(matches!(r, Ok(()) | Err(Error::InvalidHandle)), "{r:?}");
        assert_eq!(port.queued(), 0);
        assert!(matches!(port.post(Completion::new(2, 0, 0)), Err(Error::InvalidHandle)));
    });
}

// The poller: with a live registration, one waiter sleeps in the kernel (here loom's model of
// epoll and the eventfd, `sys/model.rs`) on behalf of all, and is woken through the eventfd.

/// A thread that dequeued counts as running on the port until it dequeues elsewhere or exits
/// (D23). loom tears thread-locals down after the model's statics, so a thread leaves the
/// port before it ends, by dequeuing once from a port of its own.
fn leave_the_port() {
    let own = CompletionPort::with_concurrency(1).unwrap();
    let _ = own.dequeue(&mut [Completion::default()], Some(std::time::Duration::ZERO));
}

/// The poller models have more steps than the others (the kernel wait, the eventfd): they are
/// explored with at most two preemptions per execution, loom's usual bound for models of this
/// size (every interleaving with up to two forced context switches, at any points).
fn model_bounded(f: impl Fn() + Sync + Send + 'static) {
    model_bounded_at(2, f);
}

fn model_bounded_at(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b.check(f);
}

/// A port with one registration that never becomes ready, so waiters go to the kernel.
fn port_with_a_quiet_registration(concurrency: u32) -> (CompletionPort, std::net::UdpSocket) {
    use socknotify::{Events, Registration, Trigger};
    let port = CompletionPort::with_concurrency(concurrency).unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut regs = [Registration::enable(&s, 99, Events::IN, Trigger::LEVEL_PERSISTENT)];
    port.process(&mut regs, &mut [], Some(std::time::Duration::ZERO)).unwrap();
    regs[0].result().unwrap();
    (port, s)
}

#[test]
fn a_post_reaches_the_poller_through_the_eventfd() {
    model_bounded(|| {
        let (port, _s) = port_with_a_quiet_registration(4);
        let p2 = port.clone();
        let t = loom::thread::spawn(move || {
            let mut out = [Completion::default(); 2];
            let n = p2.dequeue(&mut out, None).unwrap();
            leave_the_port();
            (n, out[0])
        });
        port.post(Completion::new(7, 1, 2)).unwrap();
        assert_eq!(t.join().unwrap(), (1, Completion::new(7, 1, 2)));
    });
}

#[test]
fn a_poller_and_a_sleeper_get_one_post_each() {
    model_bounded(|| {
        let (port, _s) = port_with_a_quiet_registration(4);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let p = port.clone();
                loom::thread::spawn(move || {
                    let mut out = [Completion::default(); 1];
                    p.dequeue(&mut out, None).unwrap();
                    leave_the_port();
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
fn close_wakes_the_poller_with_abandoned() {
    model_bounded(|| {
        let (port, _s) = port_with_a_quiet_registration(4);
        let p2 = port.clone();
        let t = loom::thread::spawn(move || p2.dequeue(&mut [Completion::default()], None));
        port.close();
        match t.join().unwrap() {
            Err(Error::Abandoned) | Err(Error::InvalidHandle) => {}
            other => panic!("expected Abandoned or InvalidHandle, got {other:?}"),
        }
    });
}

/// The port's descriptor (extension E1): whatever the interleaving of a post with a
/// non-blocking dequeue, the packet is taken exactly once, and the descriptor is readable
/// exactly when it is still queued (the set and the reset of its eventfd are made under the
/// port lock, so a reset can never swallow a later post's signal).
#[test]
fn the_descriptor_is_readable_exactly_while_a_packet_is_queued() {
    loom::model(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        assert!(!port.model_descriptor_readable());
        let p2 = port.clone();
        let poster = loom::thread::spawn(move || p2.post(Completion::new(3, 0, 0)).unwrap());
        let mut out = [Completion::default(); 1];
        let taken = port.dequeue(&mut out, Some(std::time::Duration::ZERO)).unwrap();
        poster.join().unwrap();
        assert_eq!(taken + port.queued(), 1, "the packet is taken once or still queued");
        assert_eq!(port.model_descriptor_readable(), port.queued() > 0);
        leave_the_port();
    });
}

/// A blocked waiter and a polling thread on one port: a post goes to exactly one of them, and
/// the descriptor is left quiet once it was taken.
#[test]
fn a_blocked_waiter_and_a_poller_share_a_post_once() {
    model_bounded(|| {
        let port = CompletionPort::with_concurrency(4).unwrap();
        let _ = port.model_descriptor_readable(); // the descriptor is in use
        let p2 = port.clone();
        let blocked = loom::thread::spawn(move || {
            let mut out = [Completion::default(); 1];
            let n = p2.dequeue(&mut out, None);
            leave_the_port();
            n
        });
        port.post(Completion::new(1, 0, 0)).unwrap();
        let mut out = [Completion::default(); 1];
        let polled = port.dequeue(&mut out, Some(std::time::Duration::ZERO)).unwrap();
        if polled == 1 {
            // The waiter still sleeps: end it.
            port.close();
            assert!(blocked.join().unwrap().is_err());
        } else {
            assert_eq!(blocked.join().unwrap().unwrap(), 1);
            assert!(!port.model_descriptor_readable(), "taken: quiet");
            port.close();
        }
        leave_the_port();
    });
}
