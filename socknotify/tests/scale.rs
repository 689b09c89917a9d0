//! Scale: as many registrations as RLIMIT_NOFILE allows (the soft limit is raised to the
//! hard limit), memory per registration measured with a counting global allocator, and the
//! cost of a notification from 1,000 registrations up to the maximum.
//!
//! `registrations_up_to_the_descriptor_limit_cost_bounded_memory_and_all_notify` runs in the
//! default test run (about a second). The table of costs per notification is an ignored test:
//!   cargo test --release -p socknotify --test scale -- --ignored --nocapture

use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts live heap bytes (the whole test binary; the tests here run one at a time).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests of this file measure the whole process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        r.rlim_cur = r.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
    }
    r.rlim_cur
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// As many socket pairs as the descriptor limit allows, keeping `spare` descriptors free.
fn pairs_up_to_the_limit(spare: usize, cap: usize) -> Vec<(UnixStream, UnixStream)> {
    let limit = raise_nofile() as usize;
    let room = limit.saturating_sub(open_fds() + spare) / 2;
    let mut v = Vec::with_capacity(room.min(cap));
    while v.len() < room.min(cap) {
        match UnixStream::pair() {
            Ok((a, b)) => {
                a.set_nonblocking(true).unwrap();
                b.set_nonblocking(true).unwrap();
                v.push((a, b));
            }
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("socketpair: {e}"),
        }
    }
    v
}

/// Registers one end of each pair (key = index) with IN, LEVEL|ONESHOT, in batches.
fn register_all(port: &CompletionPort, pairs: &[(UnixStream, UnixStream)]) {
    for (chunk_no, chunk) in pairs.chunks(1024).enumerate() {
        let mut regs: Vec<Registration<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, (a, _))| Registration::enable(a, chunk_no * 1024 + i, Events::IN, Trigger::LEVEL_ONESHOT))
            .collect();
        port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
        for r in &regs {
            r.result().unwrap();
        }
    }
}

/// Collects exactly `want` notifications (bounded in time); returns their keys.
fn collect(port: &CompletionPort, want: usize, out: &mut [Completion]) -> Vec<usize> {
    let mut keys = Vec::with_capacity(want);
    let end = Instant::now() + Duration::from_secs(30);
    while keys.len() < want {
        assert!(Instant::now() < end, "only {} of {want} notifications within 30 s", keys.len());
        let n = port.dequeue(out, Some(Duration::from_secs(1))).unwrap();
        keys.extend(out[..n].iter().map(|c| c.key()));
    }
    keys
}

/// Every socket the descriptor limit allows is registered; the heap cost per registration
/// is measured and bounded; K sockets made readable give exactly K notifications, one per
/// key; REMOVE of everything gives one REMOVE packet each and leaves the port empty.
#[test]
fn registrations_up_to_the_descriptor_limit_cost_bounded_memory_and_all_notify() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pairs = pairs_up_to_the_limit(64, usize::MAX);
    let n = pairs.len();
    assert!(n >= 1000, "only {n} socket pairs fit under RLIMIT_NOFILE");
    let port = CompletionPort::new().unwrap();

    // Heap growth of the registrations themselves: register, then free the batch vectors.
    let before = live();
    register_all(&port, &pairs);
    let bytes = live() - before;
    let per_reg = bytes as f64 / n as f64;
    eprintln!("scale: {n} registrations, {per_reg:.1} heap bytes per registration");
    assert_eq!(port.registrations(), n);
    // Issue 9's budget: 96 bytes per registration (here only one descriptor in two is
    // registered, so the tables indexed by descriptor count twice), plus what does not grow
    // with registrations: the packet room reserved for one batch of 1,024 entries (64 KiB)
    // and the rounding of the tables to whole pages.
    assert!(bytes as f64 <= 96.0 * n as f64 + 96.0 * 1024.0, "{per_reg:.1} bytes per registration");

    // K readable: exactly K packets, one per key.
    const K: usize = 1000;
    let step = n / K;
    let chosen: HashSet<usize> = (0..K).map(|i| i * step).collect();
    for &k in &chosen {
        (&pairs[k].1).write_all(b"r").unwrap();
    }
    let mut out = vec![Completion::default(); 256];
    let keys = collect(&port, K, &mut out);
    let got: HashSet<usize> = keys.iter().copied().collect();
    assert_eq!(got.len(), K, "a key came twice");
    assert_eq!(got, chosen);
    assert_eq!(port.dequeue(&mut out, Some(Duration::from_millis(50))).unwrap(), 0, "extra packets");

    // REMOVE everything: n REMOVE packets, then nothing is left.
    for chunk in pairs.chunks(1024) {
        let mut regs: Vec<Registration<'_>> = chunk.iter().map(|(a, _)| Registration::remove(a)).collect();
        port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
        for r in &regs {
            r.result().unwrap();
        }
    }
    let removed = collect(&port, n, &mut out);
    assert_eq!(removed.iter().copied().collect::<HashSet<_>>().len(), n);
    assert_eq!((port.registrations(), port.queued()), (0, 0));
}

/// One round: make `k` of the registered sockets readable, collect the `k` notifications,
/// read the byte and re-arm each (ONESHOT) in the next call. Returns (ns, syscalls).
fn round(port: &CompletionPort, pairs: &[(UnixStream, UnixStream)], k: usize, seed: usize) -> (u128, u64) {
    let n = pairs.len();
    let step = n / k;
    let mut out = vec![Completion::default(); 64];
    let mut buf = [0u8; 16];
    let t = Instant::now();
    let s0 = CompletionPort::syscalls();
    for i in 0..k {
        (&pairs[(i * step + seed) % n].1).write_all(b"r").unwrap();
    }
    let mut got = 0;
    let mut rearm: Vec<usize> = Vec::new();
    while got < k {
        let mut regs: Vec<Registration<'_>> = rearm
            .iter()
            .map(|&key| Registration::enable(&pairs[key].0, key, Events::IN, Trigger::LEVEL_ONESHOT))
            .collect();
        let m = port.process(&mut regs, &mut out, Some(Duration::from_secs(5))).unwrap();
        assert!(m > 0, "notifications lost at {n} registrations");
        rearm.clear();
        for c in &out[..m] {
            let key = c.key();
            match (&pairs[key].0).read(&mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => panic!("IN without data on key {key}"),
                Err(e) => panic!("{e}"),
            }
            rearm.push(key);
        }
        got += m;
    }
    let mut regs: Vec<Registration<'_>> =
        rearm.iter().map(|&key| Registration::enable(&pairs[key].0, key, Events::IN, Trigger::LEVEL_ONESHOT)).collect();
    port.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
    (t.elapsed().as_nanos(), CompletionPort::syscalls() - s0)
}

/// The cost of one notification (write, collect, read, re-arm) at 1,000, 5,000 and the
/// maximum number of registrations: time and socknotify system calls per notification.
/// System calls per notification must not grow with the number of registrations.
#[test]
#[ignore = "measurement: cargo test --release -p socknotify --test scale -- --ignored --nocapture"]
fn cost_per_notification_stays_flat_from_1000_registrations_to_the_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pairs = pairs_up_to_the_limit(64, usize::MAX);
    let max = pairs.len();
    const K: usize = 1000;
    const ROUNDS: usize = 20;
    let mut rows = Vec::new();
    for size in [1000, 5000, max] {
        let size = size.min(max);
        let port = CompletionPort::new().unwrap();
        register_all(&port, &pairs[..size]);
        round(&port, &pairs[..size], K, 0); // warm-up
        let (mut ns, mut sc) = (0u128, 0u64);
        for r in 1..=ROUNDS {
            let (t, s) = round(&port, &pairs[..size], K, r * 7);
            ns += t;
            sc += s;
        }
        let per = (ns as f64 / (ROUNDS * K) as f64, sc as f64 / (ROUNDS * K) as f64);
        rows.push((size, per.0, per.1));
        port.close();
    }
    eprintln!("registrations | ns per notification | socknotify syscalls per notification");
    for (size, ns, sc) in &rows {
        eprintln!("{size:>13} | {ns:>19.0} | {sc:>36.2}");
    }
    let (first, last) = (rows[0], rows[rows.len() - 1]);
    assert!(last.2 <= first.2 * 1.25 + 0.1, "system calls per notification grew: {rows:?}");
    assert!(last.1 <= first.1 * 3.0, "time per notification grew more than 3x: {rows:?}");
}
