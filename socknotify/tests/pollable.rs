//! The port as a descriptor (`impl AsFd for CompletionPort`, extension E1): readable when a
//! non-blocking dequeue may find a packet, quiet while the port is idle, and a new edge for
//! every event after a dequeue that found nothing. Checked with plain `poll(2)` and with an
//! edge-triggered epoll instance, as tokio watches descriptors.

mod common;

use common::*;
use socknotify::{Completion, CompletionPort, Error, Events, Registration, Trigger};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// `poll(2)` on the port's descriptor for readability, waiting at most `wait`.
fn readable_within(port: &CompletionPort, wait: Duration) -> bool {
    let mut p = libc::pollfd { fd: port.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one live pollfd.
    let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) };
    assert!(n >= 0, "poll failed: {}", std::io::Error::last_os_error());
    n == 1 && p.revents & libc::POLLIN != 0
}

fn readable(port: &CompletionPort) -> bool {
    readable_within(port, Duration::ZERO)
}

/// An edge-triggered epoll instance watching the port's descriptor (as tokio's reactor does).
struct EdgeWatcher {
    epfd: RawFd,
}

impl EdgeWatcher {
    fn new(port: &CompletionPort) -> EdgeWatcher {
        // SAFETY: plain system calls on descriptors this test owns.
        unsafe {
            let epfd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            assert!(epfd >= 0);
            let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: 1 };
            assert_eq!(libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, port.as_raw_fd(), &mut ev), 0);
            EdgeWatcher { epfd }
        }
    }

    /// True if an edge arrived within `wait`.
    fn edge_within(&self, wait: Duration) -> bool {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 1];
        // SAFETY: a live buffer of one event.
        let n = unsafe { libc::epoll_wait(self.epfd, ev.as_mut_ptr(), 1, wait.as_millis() as i32) };
        assert!(n >= 0);
        n == 1
    }
}

impl Drop for EdgeWatcher {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this watcher's.
        unsafe { libc::close(self.epfd) };
    }
}

fn unix_pair() -> (std::os::unix::net::UnixStream, std::os::unix::net::UnixStream) {
    std::os::unix::net::UnixStream::pair().expect("socketpair")
}

/// After a delivery the descriptor may still be readable for readiness the kernel reports
/// and the port will discard (a disarmed registration that user-space re-arms leave armed in
/// the kernel, a stale internal wake-up): one empty dequeue absorbs it, then it is quiet.
fn assert_quiet_after_at_most_one_empty_dequeue(port: &CompletionPort) {
    if readable(port) {
        assert_eq!(dequeue_now(port, &mut [Completion::default(); 4]), 0, "nothing more to deliver");
    }
    assert!(!readable_within(port, QUIET), "the descriptor must go quiet");
}

fn dequeue_now(port: &CompletionPort, out: &mut [Completion]) -> usize {
    port.dequeue(out, Some(Duration::ZERO)).expect("dequeue")
}

#[test]
fn idle_port_descriptor_is_not_readable() {
    let port = port();
    assert!(!readable_within(&port, QUIET));
    // Registered sockets with nothing to report keep it quiet too.
    let (a, _b) = unix_pair();
    let mut regs = [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_PERSISTENT)];
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    assert!(!readable_within(&port, QUIET));
    assert_eq!(dequeue_now(&port, &mut [Completion::default(); 4]), 0);
}

#[test]
fn post_from_another_thread_makes_it_readable() {
    let port = port();
    let fd_taken = port.as_raw_fd(); // handed out before the post
    assert!(fd_taken >= 0);
    let p2 = port.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(MS(30));
        p2.post(Completion::new(5, 6, 7)).unwrap();
    });
    assert!(readable_within(&port, PATIENCE), "a post from another thread must wake a poller");
    let mut out = [Completion::default(); 4];
    assert_eq!(dequeue_now(&port, &mut out), 1);
    assert_eq!(out[0], Completion::new(5, 6, 7));
    assert!(!readable(&port), "drained: quiet again");
    t.join().unwrap();
}

#[test]
fn packets_queued_before_the_descriptor_was_taken_make_it_readable() {
    let port = port();
    port.post(Completion::new(1, 0, 0)).unwrap();
    assert!(readable(&port));
}

#[test]
fn stays_readable_until_every_packet_is_taken() {
    let port = port();
    for k in 0..3 {
        port.post(Completion::new(k, 0, 0)).unwrap();
    }
    let mut one = [Completion::default(); 1];
    for k in 0..3 {
        assert!(readable(&port), "packet {k} still queued");
        assert_eq!(dequeue_now(&port, &mut one), 1);
        assert_eq!(one[0].key(), k as usize);
    }
    assert!(!readable(&port));
}

#[test]
fn socket_readiness_makes_it_readable_and_one_shot_delivery_quiets_it() {
    let port = port();
    let (a, mut b) = unix_pair();
    let mut regs = [Registration::enable(&a, 9, Events::IN, Trigger::LEVEL_ONESHOT)];
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    assert!(!readable_within(&port, QUIET));
    b.write_all(b"x").unwrap();
    assert!(readable_within(&port, PATIENCE), "a socket's readiness must make the descriptor readable");
    let mut out = [Completion::default(); 4];
    assert_eq!(dequeue_now(&port, &mut out), 1);
    assert_eq!(out[0].key(), 9);
    // The one-shot registration fired: the data still there must not keep it readable.
    assert_quiet_after_at_most_one_empty_dequeue(&port);
}

#[test]
fn user_space_rearm_port_goes_quiet_after_a_disarm() {
    // Under closes_through_port sockets stay armed in the kernel: a report for a disarmed one
    // must be absorbed by the next dequeue, not keep the descriptor readable.
    let port = CompletionPort::builder().closes_through_port(true).build().unwrap();
    let (a, mut b) = unix_pair();
    let mut regs = [Registration::enable(&a, 9, Events::IN, Trigger::LEVEL_ONESHOT)];
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    b.write_all(b"x").unwrap();
    assert!(readable_within(&port, PATIENCE));
    let mut out = [Completion::default(); 4];
    assert_eq!(dequeue_now(&port, &mut out), 1);
    assert_quiet_after_at_most_one_empty_dequeue(&port);
    socknotify::close_socket(a);
}

#[test]
fn closing_the_port_makes_it_readable_and_the_dequeue_fails() {
    let port = port();
    assert!(!readable(&port));
    let p2 = port.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(MS(30));
        p2.close();
    });
    assert!(readable_within(&port, PATIENCE), "a poller must learn that the port closed");
    assert!(matches!(port.dequeue(&mut [Completion::default()], Some(Duration::ZERO)), Err(Error::InvalidHandle)));
    t.join().unwrap();
}

#[test]
fn a_stale_internal_wakeup_does_not_keep_it_readable() {
    // A blocked thread (the poller) is woken through the port's internal eventfd; once it has
    // its packet, the descriptor must not stay readable for that signal.
    let port = port();
    let (a, mut b) = unix_pair();
    let mut regs = [Registration::enable(&a, 3, Events::IN, Trigger::LEVEL_ONESHOT)];
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    let _ = port.as_raw_fd();
    let p2 = port.clone();
    let waiter = std::thread::spawn(move || {
        let mut out = [Completion::default(); 4];
        p2.dequeue(&mut out, Some(PATIENCE)).unwrap()
    });
    std::thread::sleep(MS(30));
    port.post(Completion::new(1, 0, 0)).unwrap();
    assert_eq!(waiter.join().unwrap(), 1);
    b.write_all(b"x").unwrap();
    let mut out = [Completion::default(); 4];
    let deadline = Instant::now() + PATIENCE;
    let mut got = 0;
    while got == 0 && Instant::now() < deadline {
        if readable_within(&port, MS(50)) {
            got += dequeue_now(&port, &mut out);
        }
    }
    assert_eq!((got, out[0].key()), (1, 3));
    assert_quiet_after_at_most_one_empty_dequeue(&port);
}

#[test]
fn edge_triggered_watcher_gets_a_new_edge_for_every_event_after_an_empty_dequeue() {
    let port = port();
    let w = EdgeWatcher::new(&port);
    let mut out = [Completion::default(); 8];
    for k in 0..20usize {
        // Nothing pending: no edge.
        assert_eq!(dequeue_now(&port, &mut out), 0);
        assert!(!w.edge_within(Duration::ZERO), "round {k}: an edge with nothing pending");
        port.post(Completion::new(k, 0, 0)).unwrap();
        assert!(w.edge_within(PATIENCE), "round {k}: a post after an empty dequeue needs a new edge");
        assert_eq!(dequeue_now(&port, &mut out), 1);
        assert_eq!(out[0].key(), k);
    }
}

#[test]
fn edge_triggered_protocol_loses_nothing_under_concurrent_posts() {
    // The documented protocol (wait for an edge → dequeue until 0 → wait) against two posting
    // threads: every packet arrives exactly once, in each producer's order.
    let port = port();
    let w = EdgeWatcher::new(&port);
    const PER: usize = 5_000;
    let producers: Vec<_> = (0..2usize)
        .map(|p| {
            let port = port.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    port.post(Completion::new(p, i as u32, 0)).unwrap();
                    if i % 512 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut next = [0u32; 2];
    let mut out = [Completion::default(); 16];
    let deadline = Instant::now() + Duration::from_secs(20);
    while next.iter().map(|&n| n as usize).sum::<usize>() < 2 * PER {
        assert!(Instant::now() < deadline, "packets lost: got {next:?} of {PER} each");
        loop {
            let n = dequeue_now(&port, &mut out);
            if n == 0 {
                break;
            }
            for c in &out[..n] {
                let p = c.key();
                assert_eq!(c.bytes(), next[p], "producer {p}: FIFO order");
                next[p] += 1;
            }
        }
        w.edge_within(MS(200));
    }
    for t in producers {
        t.join().unwrap();
    }
}

#[test]
fn a_thread_that_stops_running_gives_a_stalled_poller_a_new_edge() {
    // Concurrency 1: while another thread counts as running (D23), a non-blocking dequeue may
    // not take the queued packet; when that thread stops running, the descriptor gets a new
    // edge so an edge-triggered poller tries again.
    let port = CompletionPort::with_concurrency(1).unwrap();
    let w = EdgeWatcher::new(&port);
    port.post(Completion::new(1, 0, 0)).unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (took_tx, took_rx) = std::sync::mpsc::channel::<()>();
    let p2 = port.clone();
    let runner = std::thread::spawn(move || {
        let mut out = [Completion::default(); 1];
        assert_eq!(p2.dequeue(&mut out, Some(PATIENCE)).unwrap(), 1); // now running
        took_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        // Thread exit stops it from running on the port.
    });
    took_rx.recv().unwrap();
    // (The first post's edge is gone: epoll reports what is readable when it is asked, and
    // the runner took that packet.)
    port.post(Completion::new(2, 0, 0)).unwrap();
    let mut out = [Completion::default(); 1];
    assert_eq!(dequeue_now(&port, &mut out), 0, "the runner still counts as running");
    while w.edge_within(Duration::ZERO) {} // consume what is there
    go_tx.send(()).unwrap();
    runner.join().unwrap();
    assert!(w.edge_within(PATIENCE), "the running thread left: a new edge");
    assert_eq!(dequeue_now(&port, &mut out), 1);
    assert_eq!(out[0].key(), 2);
}

#[test]
fn the_descriptor_is_quiet_under_many_idle_registrations_for_a_while() {
    // No busy loop: over a stretch of idle time, an edge-triggered watcher sees no edge and a
    // level-triggered one sees the descriptor not readable.
    let port = port();
    let pairs: Vec<_> = (0..64).map(|_| unix_pair()).collect();
    let mut regs: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, _))| Registration::enable(a, i, Events::IN | Events::OUT, Trigger::EDGE_PERSISTENT))
        .collect();
    let mut out = [Completion::default(); 128];
    // Writable at ENABLE: the OUT edges are queued now; take them.
    port.process(&mut regs, &mut out, Some(Duration::ZERO)).unwrap();
    while dequeue_now(&port, &mut out) > 0 {}
    let w = EdgeWatcher::new(&port);
    assert!(!w.edge_within(QUIET));
    assert!(!readable_within(&port, QUIET));
}
