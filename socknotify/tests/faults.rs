//! Fault injection with real sockets and real threads: descriptor exhaustion, memory
//! exhaustion, a socket closed by another thread while its registration is being enabled,
//! a port closed under threads that register and dequeue, and signals (EINTR) during waits.
//!
//! Resource limits are lowered only in a child process (this test binary re-runs itself
//! with one test selected), so the other tests never see them. Every test is bounded in
//! count and in time; every thread is joined under a watchdog.

use socknotify::winsock::{
    ProcessSocketNotifications, OVERLAPPED_ENTRY, SOCKET, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_NONE,
    SOCK_NOTIFY_OP_REMOVE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_REGISTRATION, SOCK_NOTIFY_TRIGGER_LEVEL,
    SOCK_NOTIFY_TRIGGER_PERSISTENT, WSAENOBUFS, WSAENOTSOCK,
};
use socknotify::{Completion, CompletionPort, Error, Events, Registration, Trigger};
use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const CHILD: &str = "SOCKNOTIFY_FAULTS_CHILD";
const SENTINEL: u32 = 0xDEAD;

// ---------------------------------------------------------------------------------------
// Helpers

/// True inside the child process started for `test`.
fn in_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}

/// Re-runs this test binary with only `test` selected, in a child process, and fails if it
/// fails. The child sees `CHILD=test` and may change its own resource limits.
fn run_in_child(test: &str) {
    let exe = std::env::current_exe().unwrap();
    // Under Address/ThreadSanitizer an allocation beyond RLIMIT_AS must fail, not abort.
    let asan = std::env::var("ASAN_OPTIONS").map_or(String::new(), |o| o + ":");
    let tsan = std::env::var("TSAN_OPTIONS").map_or(String::new(), |o| o + ":");
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .env("ASAN_OPTIONS", asan + "allocator_may_return_null=1")
        .env("TSAN_OPTIONS", tsan + "allocator_may_return_null=1")
        .output()
        .expect("start the child test process");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child process for {test} failed ({}):\n{text}", out.status);
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn entry(fd: RawFd, key: usize, op: u8, filter: u16) -> SOCK_NOTIFY_REGISTRATION {
    SOCK_NOTIFY_REGISTRATION {
        socket: fd as SOCKET,
        completionKey: key,
        eventFilter: filter,
        operation: op,
        triggerFlags: if op == SOCK_NOTIFY_OP_ENABLE {
            SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT
        } else {
            0
        },
        registrationResult: SENTINEL,
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn max_fd() -> RawFd {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .max()
        .unwrap_or(2)
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        assert_eq!(libc::getrlimit(resource, &mut r), 0);
        r.rlim_cur = soft.min(r.rlim_max);
        assert_eq!(libc::setrlimit(resource, &r), 0, "setrlimit: {}", std::io::Error::last_os_error());
    }
}

/// Drains `port` until `quiet` passes without a packet (bounded by `limit`).
fn drain(port: &CompletionPort, quiet: Duration, limit: Duration) -> Vec<Completion> {
    let mut got = Vec::new();
    let mut out = [Completion::default(); 64];
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match port.dequeue(&mut out, Some(quiet)) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&out[..n]),
            Err(e) => panic!("dequeue: {e}"),
        }
    }
    got
}

/// Waits until `h` has finished (without joining it), or fails after `limit`: a hung
/// thread fails the test instead of hanging it.
fn wait_finished<T>(h: &thread::JoinHandle<T>, limit: Duration, what: &str) {
    let end = Instant::now() + limit;
    while !h.is_finished() {
        assert!(Instant::now() < end, "{what}: thread still running after {limit:?} (hang)");
        thread::sleep(Duration::from_millis(2));
    }
}

/// Joins `h` or fails after `limit`.
fn join_within<T: Send + 'static>(h: thread::JoinHandle<T>, limit: Duration, what: &str) -> T {
    wait_finished(&h, limit, what);
    h.join().unwrap_or_else(|_| panic!("{what}: thread panicked"))
}

// ---------------------------------------------------------------------------------------
// Descriptor exhaustion

/// With RLIMIT_NOFILE reached in the middle of building a batch (some sockets could not be
/// created, their entries carry INVALID_SOCKET), the batch still applies: each entry gets
/// its own result (0, or WSAENOTSOCK for the missing sockets), notifications flow for every
/// registered socket, REMOVE ends each of them exactly once, and the port is left empty.
/// A new port cannot be made at the limit: `CompletionPort::new` fails with WSAENOBUFS and
/// leaks no descriptor. Once the limit is raised again everything works as before.
#[test]
fn descriptor_exhaustion_mid_batch_gives_per_entry_errors_and_no_corrupted_state() {
    const NAME: &str = "descriptor_exhaustion_mid_batch_gives_per_entry_errors_and_no_corrupted_state";
    if !in_child(NAME) {
        return run_in_child(NAME);
    }
    let port = CompletionPort::new().unwrap();
    let early: Vec<(UnixStream, UnixStream)> = (0..4).map(|_| pair()).collect();
    // Room for exactly three more descriptors: lower the limit, fill every free number
    // below it, then free three.
    set_limit(libc::RLIMIT_NOFILE, max_fd() as u64 + 1 + 16);
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
    }
    assert!(fillers.len() >= 3);
    fillers.truncate(fillers.len() - 3);

    let mut late = Vec::new();
    let mut failures = 0;
    for _ in 0..6 {
        match UnixStream::pair() {
            Ok((a, b)) => {
                a.set_nonblocking(true).unwrap();
                late.push((a, b));
            }
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                failures += 1;
            }
        }
    }
    assert!(failures >= 4, "the limit did not bite ({failures} failures)");
    assert_eq!(late.len(), 1);

    // A port needs two descriptors: it cannot be made now, and must not leak the first.
    let fds = open_fds();
    for _ in 0..3 {
        match CompletionPort::new() {
            Err(e) => assert_eq!(e.code(), WSAENOBUFS, "{e}"),
            Ok(_) => panic!("a port was created beyond RLIMIT_NOFILE"),
        }
    }
    assert_eq!(open_fds(), fds, "a failed CompletionPort::new leaked a descriptor");

    // The batch: early and late sockets, with the sockets that could not be made in between.
    let mut regs = Vec::new();
    let mut want = HashMap::new();
    let mut key = 100;
    for (i, (a, _)) in early.iter().enumerate() {
        regs.push(entry(a.as_raw_fd(), key, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN));
        want.insert(key, i);
        key += 1;
        if i < failures {
            regs.push(SOCK_NOTIFY_REGISTRATION { socket: !0, ..entry(-1, key, SOCK_NOTIFY_OP_ENABLE, 1) });
            key += 1;
        }
    }
    regs.push(entry(late[0].0.as_raw_fd(), key, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN));
    let late_key = key;
    // At the limit: the call itself needs no descriptor.
    let rc = ProcessSocketNotifications(&port, Some(&mut regs), 0, None, None);
    assert_eq!(rc, 0);
    for r in &regs {
        if r.socket == !0 {
            assert_eq!(r.registrationResult, WSAENOTSOCK, "{r:?}");
        } else {
            assert_eq!(r.registrationResult, 0, "{r:?}");
        }
    }
    assert_eq!(port.registrations(), 5);

    // Every registered socket notifies, under its own key.
    for (_, b) in early.iter().chain(late.iter()) {
        (&*b).write_all(b"x").unwrap();
    }
    let got = drain(&port, Duration::from_millis(100), Duration::from_secs(5));
    let keys: HashSet<usize> = got.iter().map(|c| c.key()).collect();
    let mut expect: HashSet<usize> = want.keys().copied().collect();
    expect.insert(late_key);
    assert_eq!(keys, expect, "packets {got:?}");
    assert!(got.iter().all(|c| c.events() == Events::IN), "{got:?}");

    // REMOVE everything in one call that also collects: one REMOVE per registration.
    let mut rm: Vec<SOCK_NOTIFY_REGISTRATION> =
        regs.iter().filter(|r| r.socket != !0).map(|r| entry(r.socket as RawFd, 0, SOCK_NOTIFY_OP_REMOVE, 0)).collect();
    let mut out = [OVERLAPPED_ENTRY::default(); 16];
    let mut n = 0u32;
    let rc = ProcessSocketNotifications(&port, Some(&mut rm), 1000, Some(&mut out), Some(&mut n));
    assert_eq!(rc, 0);
    assert!(rm.iter().all(|r| r.registrationResult == 0));
    let mut removed: Vec<usize> = out[..n as usize]
        .iter()
        .filter(|e| e.dwNumberOfBytesTransferred & 0x80 != 0)
        .map(|e| e.lpCompletionKey)
        .collect();
    removed.extend(drain(&port, Duration::from_millis(50), Duration::from_secs(5)).iter().map(|c| {
        assert!(c.events().contains(Events::REMOVE), "{c:?}");
        c.key()
    }));
    removed.sort();
    let mut expect: Vec<usize> = expect.into_iter().collect();
    expect.sort();
    assert_eq!(removed, expect);
    assert_eq!((port.registrations(), port.queued()), (0, 0));

    // Raise the limit again: a new port works and the same sockets can join it.
    set_limit(libc::RLIMIT_NOFILE, u64::MAX);
    let port2 = CompletionPort::new().unwrap();
    let mut again = [Registration::enable(&early[0].0, 7, Events::IN, Trigger::LEVEL_ONESHOT)];
    let mut out = [Completion::default(); 4];
    assert_eq!(port2.process(&mut again, &mut out, Some(Duration::from_secs(2))).unwrap(), 1);
    again[0].result().unwrap();
    assert_eq!(out[0].key(), 7);
}

// ---------------------------------------------------------------------------------------
// Memory exhaustion

/// A batch whose bookkeeping cannot be allocated (RLIMIT_AS lowered in a child, so the
/// allocator really fails) fails the whole call with WSAENOBUFS and changes nothing: not one
/// `registrationResult` is written, the registrations already in place keep working, and a
/// smaller batch then succeeds.
#[test]
fn out_of_memory_fails_the_whole_call_with_wsaenobufs_and_changes_nothing() {
    const NAME: &str = "out_of_memory_fails_the_whole_call_with_wsaenobufs_and_changes_nothing";
    if !in_child(NAME) {
        return run_in_child(NAME);
    }
    let port = CompletionPort::new().unwrap();
    let (a, b) = pair();
    let mut first = [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_PERSISTENT)];
    port.process(&mut first, &mut [], Some(Duration::ZERO)).unwrap();
    first[0].result().unwrap();

    // 12 million NONE entries (288 MB): the machine would need about 1.5 GB to reserve room
    // for that many registrations and packets. Leave it 256 MB of address space.
    const N: usize = 12_000_000;
    let mut regs = vec![entry(a.as_raw_fd(), 9, SOCK_NOTIFY_OP_NONE, 0); N];
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    set_limit(libc::RLIMIT_AS, vm_kb * 1024 + (256 << 20));

    let mut out = [OVERLAPPED_ENTRY::default(); 4];
    let mut n = SENTINEL;
    let rc = ProcessSocketNotifications(&port, Some(&mut regs), 0, Some(&mut out), Some(&mut n));
    assert_eq!(rc, WSAENOBUFS);
    assert_eq!(n, SENTINEL, "a failed call wrote the count");
    assert!(regs.iter().all(|r| r.registrationResult == SENTINEL), "a failed call wrote a result");
    drop(regs);

    // Nothing changed: the registration in place still works, and so does a small batch.
    assert_eq!(port.registrations(), 1);
    (&b).write_all(b"x").unwrap();
    let mut out = [Completion::default(); 4];
    assert_eq!(port.dequeue(&mut out, Some(Duration::from_secs(2))).unwrap(), 1);
    assert_eq!((out[0].key(), out[0].events()), (1, Events::IN));
    let (c, _d) = pair();
    let mut small = [Registration::enable(&c, 2, Events::OUT, Trigger::LEVEL_ONESHOT)];
    port.process(&mut small, &mut [], Some(Duration::ZERO)).unwrap();
    small[0].result().unwrap();
    port.post(Completion::new(5, 6, 7)).unwrap();
    let got = drain(&port, Duration::from_millis(50), Duration::from_secs(2));
    assert!(got.contains(&Completion::new(5, 6, 7)), "{got:?}");
    assert!(got.iter().any(|c| c.key() == 2 && c.events() == Events::OUT), "{got:?}");
}

// ---------------------------------------------------------------------------------------
// Close racing ENABLE

/// One thread enables a registration on a socket while another thread closes that socket
/// (with plain `close`), many times. No panic; the entry either succeeds or reports
/// WSAENOTSOCK. A new socket that reuses the descriptor number is then registered with a
/// new key: every packet for it carries the new key, never the old one, and the old key
/// produces at most the one packet that was queued before the close.
/// (Before commit 2471d43 this found a core bug: a close landing between `socket_info` and
/// `epoll_ctl(ADD)` gave WSAENOBUFS, and one between ADD and the ENABLE's MOD tripped
/// `debug_assert!(ok)` in `Machine::apply_new` in debug builds.)
#[test]
fn socket_closed_by_another_thread_while_enabling_never_leaks_the_old_key() {
    let port = CompletionPort::new().unwrap();
    let started = Instant::now();
    let (mut ok, mut notsock, mut reused, mut rounds) = (0, 0, 0, 0);
    // Registrations left by rounds whose number no new socket of this test took (another
    // test's socket did): socknotify frees such a record when it notices the close (D21),
    // here only when the number is registered again, so it may linger until the end.
    let mut unnoticed = 0usize;
    let mut key = 1usize;
    while rounds < 1500 && started.elapsed() < Duration::from_secs(10) {
        rounds += 1;
        let before_round = port.registrations();
        let (a, peer) = pair();
        (&peer).write_all(b"old").unwrap();
        let fd = a.into_raw_fd();
        let old_key = key;
        key += 1;
        let barrier = Arc::new(Barrier::new(2));
        let enabler = {
            let (port, barrier) = (port.clone(), barrier.clone());
            thread::spawn(move || {
                let mut r = [entry(fd, old_key, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN)];
                barrier.wait();
                let rc = ProcessSocketNotifications(&port, Some(&mut r), 0, None, None);
                assert_eq!(rc, 0);
                r[0].registrationResult
            })
        };
        let closer = {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                if rounds % 2 == 0 {
                    thread::yield_now();
                }
                // SAFETY: the descriptor was handed over with into_raw_fd; closed once.
                unsafe { libc::close(fd) };
            })
        };
        let code = join_within(enabler, Duration::from_secs(5), "enabler");
        join_within(closer, Duration::from_secs(5), "closer");
        match code {
            0 => ok += 1,
            WSAENOTSOCK => notsock += 1,
            c => panic!("ENABLE racing close returned {c}"),
        }
        // Whatever was queued for the old socket comes out now (at most one packet).
        let before = drain(&port, Duration::from_millis(1), Duration::from_secs(2));
        let olds = before.iter().filter(|c| c.key() == old_key).count();
        assert!(olds <= 1, "old key delivered {olds} times after its socket closed: {before:?}");
        assert!(before.iter().all(|c| c.key() == old_key), "{before:?}");

        // A new socket on (very likely) the same number, registered with a new key.
        let (b, peer2) = pair();
        let reused_here = b.as_raw_fd() == fd;
        if reused_here {
            reused += 1;
        }
        let new_key = key;
        key += 1;
        let mut r = [Registration::enable(&b, new_key, Events::IN, Trigger::LEVEL_PERSISTENT)];
        port.process(&mut r, &mut [], Some(Duration::ZERO)).unwrap();
        r[0].result().unwrap();
        (&peer2).write_all(b"new").unwrap();
        let mut out = [Completion::default(); 8];
        let n = port.dequeue(&mut out, Some(Duration::from_secs(2))).unwrap();
        assert!(n >= 1);
        for c in &out[..n] {
            assert_eq!(c.key(), new_key, "a packet for the new socket under another key: {c:?}");
        }
        socknotify::close_socket(b);
        drop(peer);
        let after = drain(&port, Duration::from_millis(1), Duration::from_secs(2));
        assert!(after.iter().all(|c| c.key() == new_key), "{after:?}");
        // A reused number's registration was replaced by the new socket's, which
        // `close_socket` dropped: nothing is left of this round. Otherwise the old socket's
        // record may stay (at most one).
        let left = port.registrations().saturating_sub(before_round);
        if reused_here {
            assert_eq!(left, 0, "round {rounds}: a zombie registration left behind on a reused number");
        } else {
            assert!(left <= 1, "round {rounds}: {left} registrations left behind");
            unnoticed += left;
        }
    }
    assert!(port.registrations() <= unnoticed, "zombie registrations left behind: {}", port.registrations());
    eprintln!("close-vs-enable: {rounds} rounds, {ok} enabled, {notsock} WSAENOTSOCK, {reused} numbers reused");
    assert!(rounds >= 100);
    assert!(reused > rounds / 2, "descriptor numbers were not reused ({reused}/{rounds})");
}

// ---------------------------------------------------------------------------------------
// Port closed under load

/// Threads register, re-arm, remove, post and dequeue (blocking, some forever) on a port
/// while the main thread closes it. Every call ends in success, Abandoned (a wait the close
/// interrupted) or InvalidHandle (a call after the close); every thread ends; nothing hangs
/// or panics. The sockets can join a new port afterwards (D6).
#[test]
fn port_closed_while_threads_register_and_dequeue_ends_every_thread() {
    let started = Instant::now();
    let mut rounds = 0;
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    while rounds < 60 && started.elapsed() < Duration::from_secs(15) {
        rounds += 1;
        let port = CompletionPort::with_concurrency(2).unwrap();
        let socks: Arc<Vec<(UnixStream, UnixStream)>> = Arc::new((0..8).map(|_| pair()).collect());
        let (tx, rx) = mpsc::channel::<&'static str>();
        let mut handles = Vec::new();
        for t in 0..6 {
            let (port, socks, tx) = (port.clone(), socks.clone(), tx.clone());
            handles.push(thread::spawn(move || {
                let mut out = [Completion::default(); 4];
                let mut i = t;
                loop {
                    i += 1;
                    let r = match t % 3 {
                        // Dequeuers: one waits forever, one with a timeout.
                        0 => port.dequeue(&mut out, if t == 0 { None } else { Some(Duration::from_millis(50)) }),
                        // Registrars: enable, re-arm, remove, with a dequeue in the same call.
                        1 => {
                            let (a, _) = &socks[i % socks.len()];
                            let op = if i % 3 == 0 {
                                Registration::remove(a)
                            } else {
                                Registration::enable(
                                    a,
                                    i % socks.len(),
                                    Events::IN | Events::OUT,
                                    Trigger::LEVEL_ONESHOT,
                                )
                            };
                            let mut regs = [op];
                            port.process(&mut regs, &mut out, Some(Duration::from_millis(5)))
                        }
                        // Posters, with non-blocking dequeues.
                        _ => port
                            .post(Completion::new(1 << 40, 1, 2))
                            .and_then(|_| port.dequeue(&mut out, Some(Duration::ZERO))),
                    };
                    match r {
                        // Keep calling until the close is seen.
                        Ok(_) => {}
                        Err(Error::Abandoned) => {
                            tx.send("abandoned").unwrap();
                            return;
                        }
                        Err(Error::InvalidHandle) => {
                            tx.send("invalid-handle").unwrap();
                            return;
                        }
                        Err(e) => panic!("thread {t}: unexpected error {e}"),
                    }
                }
            }));
        }
        thread::sleep(Duration::from_millis(1 + (rounds % 7) as u64 * 3));
        port.close();
        for h in handles {
            join_within(h, Duration::from_secs(10), "worker after port close");
        }
        drop(tx);
        for o in rx.iter() {
            *outcomes.entry(o).or_default() += 1;
        }
        assert!(port.is_closed());
        assert!(matches!(port.post(Completion::default()), Err(Error::InvalidHandle)));
        // D6: the sockets are free to join another port.
        let port2 = CompletionPort::new().unwrap();
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| Registration::enable(a, k, Events::OUT, Trigger::LEVEL_ONESHOT))
            .collect();
        port2.process(&mut regs, &mut [], Some(Duration::ZERO)).unwrap();
        for r in &regs {
            r.result().unwrap();
        }
    }
    eprintln!("port close under load: {rounds} rounds, outcomes {outcomes:?}");
    assert_eq!(outcomes.values().sum::<usize>(), rounds * 6);
}

// ---------------------------------------------------------------------------------------
// Signals during waits

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigusr1(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// A no-op SIGUSR1 handler installed WITHOUT SA_RESTART, so blocking calls fail with EINTR.
fn install_sigusr1() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with a zeroed struct, an empty mask and an async-signal-safe handler.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = 0; // no SA_RESTART
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
    });
}

/// Sends SIGUSR1 to `thread` every `every` until `stop`. The caller sets `stop` and joins
/// the pester before it joins `thread` (a finished but unjoined thread's id stays valid).
fn pester(thread: libc::pthread_t, every: Duration, stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
    let thread = thread as usize;
    thread::spawn(move || {
        let mut sent = 0;
        while !stop.load(Ordering::SeqCst) {
            // SAFETY: the target thread is alive until `stop` is set (joined after).
            if unsafe { libc::pthread_kill(thread as libc::pthread_t, libc::SIGUSR1) } == 0 {
                sent += 1;
            }
            thread::sleep(every);
        }
        sent
    })
}

/// A thread blocked in a dequeue, pestered with signals (EINTR in epoll_wait for the poller,
/// in the futex for the others), never returns before its timeout (D5), on a port with and
/// without registrations, and as poller or as an ordinary waiter.
#[test]
fn signals_during_waits_never_end_a_wait_early() {
    install_sigusr1();
    for case in 0..3 {
        let port = CompletionPort::new().unwrap();
        let (a, _peer) = pair();
        if case > 0 {
            // Registrations make the waiter the poller (it sleeps in epoll_wait).
            let mut r = [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_PERSISTENT)];
            port.process(&mut r, &mut [], Some(Duration::ZERO)).unwrap();
            r[0].result().unwrap();
        }
        let (tx, rx) = mpsc::channel();
        let waiters = if case == 2 { 3 } else { 1 };
        let mut hs = Vec::new();
        for _ in 0..waiters {
            let (port, tx) = (port.clone(), tx.clone());
            hs.push(thread::spawn(move || {
                // SAFETY: pthread_self has no preconditions.
                tx.send(unsafe { libc::pthread_self() } as usize).unwrap();
                let mut out = [Completion::default(); 4];
                let mut short = 0;
                for _ in 0..5 {
                    let t = Instant::now();
                    let timeout = Duration::from_millis(120);
                    assert_eq!(port.dequeue(&mut out, Some(timeout)).unwrap(), 0, "a packet from nowhere");
                    if t.elapsed() < timeout {
                        short += 1;
                    }
                }
                short
            }));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pesters: Vec<_> = (0..waiters)
            .map(|_| pester(rx.recv().unwrap() as libc::pthread_t, Duration::from_micros(700), stop.clone()))
            .collect();
        let before = SIGNALS.load(Ordering::SeqCst);
        for h in &hs {
            wait_finished(h, Duration::from_secs(10), "pestered waiter");
        }
        stop.store(true, Ordering::SeqCst);
        let sent: usize = pesters.into_iter().map(|p| p.join().unwrap()).sum();
        for h in hs {
            let short = h.join().expect("pestered waiter panicked");
            assert_eq!(short, 0, "case {case}: {short} waits ended before their timeout (D5)");
        }
        let handled = SIGNALS.load(Ordering::SeqCst) - before;
        eprintln!("EINTR case {case}: {sent} signals sent, {handled} handled, no wait ended early");
        assert!(sent > 100 && handled > 100, "case {case}: only {sent} signals sent, {handled} handled");
    }
}

/// Posted packets and socket notifications reach a waiter that is being interrupted by
/// signals all the time: none is lost, none is duplicated, posted ones keep their order.
#[test]
fn signals_during_waits_lose_no_packet() {
    install_sigusr1();
    let port = CompletionPort::new().unwrap();
    let (a, peer) = pair();
    let mut r = [Registration::enable(&a, 7, Events::IN, Trigger::LEVEL_ONESHOT)];
    port.process(&mut r, &mut [], Some(Duration::ZERO)).unwrap();
    r[0].result().unwrap();
    const POSTS: usize = 3000;
    const WRITES: usize = 300;
    let (tx, rx) = mpsc::channel();
    let consumer = {
        let port = port.clone();
        let a = a.try_clone().unwrap();
        thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() } as usize).unwrap();
            let mut next_post = 0usize;
            let mut notifications = 0usize;
            let mut bytes = 0usize;
            let mut out = [Completion::default(); 8];
            let end = Instant::now() + Duration::from_secs(20);
            while (next_post < POSTS || bytes < WRITES) && Instant::now() < end {
                let n = port.dequeue(&mut out, Some(Duration::from_millis(200))).unwrap();
                for c in &out[..n] {
                    if c.key() == 7 {
                        notifications += 1;
                        let mut buf = [0u8; 512];
                        loop {
                            match (&a).read(&mut buf) {
                                Ok(0) => break,
                                Ok(m) => bytes += m,
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        let mut r = [Registration::enable(&a, 7, Events::IN, Trigger::LEVEL_ONESHOT)];
                        port.process(&mut r, &mut [], Some(Duration::ZERO)).unwrap();
                        r[0].result().unwrap();
                    } else {
                        assert_eq!(c.key(), 1 << 40, "{c:?}");
                        assert_eq!(c.bytes() as usize, next_post, "posted packet lost, duplicated or reordered");
                        next_post += 1;
                    }
                }
            }
            (next_post, notifications, bytes)
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let p = pester(rx.recv().unwrap() as libc::pthread_t, Duration::from_micros(300), stop.clone());
    let before = SIGNALS.load(Ordering::SeqCst);
    let mut w = 0;
    for i in 0..POSTS {
        port.post(Completion::new(1 << 40, i as u32, 0)).unwrap();
        if i % 10 == 0 && w < WRITES {
            (&peer).write_all(b"z").unwrap();
            w += 1;
        }
        if i % 50 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    while w < WRITES {
        (&peer).write_all(b"z").unwrap();
        w += 1;
    }
    wait_finished(&consumer, Duration::from_secs(30), "pestered consumer");
    stop.store(true, Ordering::SeqCst);
    p.join().unwrap();
    let (posts, notifications, bytes) = consumer.join().expect("pestered consumer panicked");
    assert_eq!(posts, POSTS, "posted packets lost");
    assert_eq!(bytes, WRITES, "bytes lost");
    assert!(notifications >= 1);
    let handled = SIGNALS.load(Ordering::SeqCst) - before;
    eprintln!("EINTR delivery: {handled} signals handled; {posts} posted and {bytes} bytes ({notifications} notifications) all arrived");
    assert!(handled > 50, "too few signals to prove anything");
    // Nothing left over, and no duplicate arrives late.
    let rest = drain(&port, Duration::from_millis(100), Duration::from_secs(2));
    assert!(rest.iter().all(|c| c.key() == 7), "late posted packet: {rest:?}");
}

// ---------------------------------------------------------------------------------------
// A registration forgotten while its socket stays open

/// `forget_registration_raw` on a socket that stays open (the public Rust function, or the
/// C API's `closesocket` on a descriptor that was `dup`ed, so the close does not release
/// the socket) must not leave the socket's epoll interest behind: the socket can be
/// registered with the same port again, and a readable socket does not keep waking the
/// port's poller for nothing.
/// (Before commit 2471d43 this found a core bug: the stale interest made an idle 300 ms wait
/// spin through about 180,000 system calls, and the new ENABLE failed with WSAENOBUFS because
/// EPOLL_CTL_ADD answered EEXIST.)
#[test]
fn a_registration_forgotten_while_its_socket_stays_open_can_be_made_again() {
    let port = CompletionPort::new().unwrap();
    let (a, peer) = pair();
    let mut r = [Registration::enable(&a, 1, Events::IN, Trigger::LEVEL_PERSISTENT)];
    port.process(&mut r, &mut [], Some(Duration::ZERO)).unwrap();
    r[0].result().unwrap();
    socknotify::forget_registration_raw(a.as_raw_fd());
    assert_eq!(port.registrations(), 0);

    // Readable, but nobody is registered: a waiter must sleep, not spin on a stale interest.
    (&peer).write_all(b"x").unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let port = port.clone();
        let (b, pb) = pair();
        thread::spawn(move || {
            let _peer_stays_open = pb;
            // A live registration of another socket makes this waiter the poller.
            let mut r = [Registration::enable(&b, 2, Events::IN, Trigger::LEVEL_PERSISTENT)];
            port.process(&mut r, &mut [], Some(Duration::ZERO)).unwrap();
            tx.send(()).unwrap();
            let mut out = [Completion::default(); 4];
            let n = port.dequeue(&mut out, Some(Duration::from_millis(300))).unwrap();
            assert_eq!(n, 0, "a packet from nowhere: {:?}", &out[..n]);
            n
        })
    };
    rx.recv().unwrap();
    let before = CompletionPort::syscalls();
    let n = join_within(waiter, Duration::from_secs(5), "waiter");
    let spent = CompletionPort::syscalls() - before;
    assert_eq!(n, 0);
    assert!(spent < 100, "an idle 300 ms wait made {spent} system calls (a stale interest keeps firing)");

    let mut again = [Registration::enable(&a, 3, Events::IN, Trigger::LEVEL_ONESHOT)];
    let mut out = [Completion::default(); 4];
    let n = port.process(&mut again, &mut out, Some(Duration::from_secs(2))).unwrap();
    again[0].result().expect("the socket can be registered again");
    assert_eq!((n, out[0].key()), (1, 3));
}
