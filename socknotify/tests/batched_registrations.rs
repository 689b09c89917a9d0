//! Batches of registrations large enough for the io_uring path's per-batch choice (at least
//! 32 entries): the identities of the descriptors new to the port are read in one ring round
//! before the entries are applied, the REMOVEs' DELs go in that round too, and the new
//! registrations' ADDs go in one round after the entries. The results and packets must be
//! those of entries applied one by one: these tests run every case on the default port
//! (whatever `SOCKNOTIFY_BACKEND` says) and on a port forced onto io_uring (skipped where
//! io_uring is unavailable), and pin the system calls saved.

use socknotify::{Backend, Completion, CompletionPort, Events, Registration, RegistrationError, Trigger};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Entries per batch: above the per-batch threshold of the default port.
const N: usize = 40;

/// The default port and, where io_uring works, one forced onto it; both without the
/// `closes_through_port` promise (these tests close registered sockets with plain `close()`).
fn ports() -> Vec<CompletionPort> {
    let mut v = vec![CompletionPort::builder().closes_through_port(false).build().unwrap()];
    match CompletionPort::builder().closes_through_port(false).backend(Backend::IoUring).build() {
        Ok(p) => v.push(p),
        Err(e) => eprintln!("io_uring is not available here ({e}); the io_uring port is skipped"),
    }
    v
}

fn pairs(n: usize) -> Vec<(UnixStream, UnixStream)> {
    (0..n).map(|_| UnixStream::pair().unwrap()).collect()
}

/// Applies `regs` without dequeuing.
fn apply(port: &CompletionPort, regs: &mut [Registration<'_>]) {
    assert_eq!(port.process(regs, &mut [], Some(Duration::ZERO)).unwrap(), 0);
}

/// Every packet the port delivers within `wait` after the last one.
fn drain(port: &CompletionPort, out: &mut Vec<Completion>, wait: Duration) {
    let mut buf = [Completion::default(); 64];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = port.dequeue(&mut buf, Some(wait)).unwrap();
        out.extend_from_slice(&buf[..n]);
        if n == 0 || Instant::now() > deadline {
            return;
        }
    }
}

/// Closes `old` and gives its number to a new socket in one step (`dup2` over it, so that no
/// test running in parallel can take the number in between), then closes the new socket's
/// first descriptor: the number is the only one that names the new socket, as after a plain
/// `close()` and a `socket()` that got the lowest free number. Returns it, with its peer.
fn reuse_number(old: UnixStream) -> (UnixStream, UnixStream) {
    let fd = old.into_raw_fd();
    let (x, peer) = UnixStream::pair().unwrap();
    // SAFETY: `fd` is owned here (taken from `old`); dup2 closes it and makes it a second
    // descriptor of `x`'s socket, owned by the stream made from it.
    assert_eq!(unsafe { libc::dup2(x.as_raw_fd(), fd) }, fd);
    drop(x);
    // SAFETY: `fd` now names the new socket and nothing else owns it.
    (unsafe { UnixStream::from_raw_fd(fd) }, peer)
}

/// N sockets registered in one batch (key = index), then socket `gone` closed behind the
/// port's back and its number given to a new socket whose peer has written a byte.
struct Reused {
    socks: Vec<(UnixStream, UnixStream)>,
    new: UnixStream,
    _new_peer: UnixStream,
    old_peer: UnixStream,
}

fn register_then_reuse(port: &CompletionPort, trigger: Trigger, gone: usize) -> Reused {
    let mut socks = pairs(N);
    let mut regs: Vec<Registration<'_>> =
        socks.iter().enumerate().map(|(k, (a, _))| Registration::enable(a, k, Events::IN, trigger)).collect();
    apply(port, &mut regs);
    assert!(regs.iter().all(|r| r.result().is_ok()));
    drop(regs);
    let (old, old_peer) = std::mem::replace(&mut socks[gone], UnixStream::pair().unwrap());
    let (new, new_peer) = reuse_number(old);
    (&new_peer).write_all(b"x").unwrap();
    Reused { socks, new, _new_peer: new_peer, old_peer }
}

/// True when this kernel reads socket options through io_uring (Linux 6.7 or later).
fn kernel_probes_in_the_ring() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 7)
}

/// System calls the calling thread makes for `f`.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = CompletionPort::thread_syscalls();
    let r = f();
    (r, CompletionPort::thread_syscalls() - before)
}

/// ENABLE of N new sockets and their REMOVE, each one call: on io_uring a few ring rounds
/// whatever N (the identity probes, then the ADDs; the DELs), plus the collection of what the
/// ENABLEs may have queued; on plain epoll one identity probe and one ADD per socket, and one
/// DEL. Every REMOVE packet is delivered by the REMOVE call (they fill its output, so it
/// collects nothing from the kernel).
#[test]
fn batched_enable_and_remove_of_new_sockets_cost_a_few_system_calls_on_io_uring() {
    for port in [
        CompletionPort::builder().closes_through_port(false).backend(Backend::IoUring).build().ok(),
        Some(CompletionPort::builder().closes_through_port(false).backend(Backend::Epoll).build().unwrap()),
    ]
    .into_iter()
    .flatten()
    {
        let socks = pairs(N);
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| Registration::enable(a, k, Events::IN, Trigger::LEVEL_ONESHOT))
            .collect();
        let ((), enable_calls) = counted(|| apply(&port, &mut regs));
        assert!(regs.iter().all(|r| r.result().is_ok()));
        assert_eq!(port.registrations(), N);
        let mut regs: Vec<Registration<'_>> = socks.iter().map(|(a, _)| Registration::remove(a)).collect();
        let mut out = [Completion::default(); N];
        let (n, remove_calls) = counted(|| port.process(&mut regs, &mut out, Some(Duration::ZERO)).unwrap());
        assert!(regs.iter().all(|r| r.result().is_ok()));
        assert_eq!(n, N, "every REMOVE packet in the same call");
        let mut keys: Vec<usize> = out.iter().map(|c| c.key()).collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..N).collect::<Vec<_>>());
        assert!(out.iter().all(|c| c.events() == Events::REMOVE));
        assert_eq!(port.registrations(), 0);
        let n = N as u64;
        match port.backend() {
            Backend::IoUring if kernel_probes_in_the_ring() => {
                assert_eq!(enable_calls, 3, "probe round, ADD round, collection");
                assert_eq!(remove_calls, 1, "DEL round");
            }
            Backend::IoUring => {
                // The identities are read one call each; the ADDs and DELs still go in rounds.
                assert_eq!(enable_calls, n + 2);
                assert_eq!(remove_calls, 1);
            }
            _ => {
                assert_eq!(enable_calls, 2 * n + 1, "identity + ADD per socket, collection");
                assert_eq!(remove_calls, n, "DEL per socket");
            }
        }
    }
}

/// A registered socket closed with plain `close()` between a batched ENABLE and a batched
/// REMOVE, its number now naming a new socket that is readable: the REMOVE of that number
/// finds no registration of the new socket (D12), the old registration ends without a REMOVE
/// packet (D21), no packet carries the old key, and every other REMOVE goes through. The new
/// socket can then be registered with the port, under its own key.
#[test]
fn a_socket_closed_and_its_number_reused_between_batched_enable_and_remove_gets_no_packet_under_the_old_key() {
    const GONE: usize = 7;
    for port in ports() {
        let Reused { socks, new, _new_peer, old_peer } = register_then_reuse(&port, Trigger::LEVEL_PERSISTENT, GONE);
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| if k == GONE { Registration::remove(&new) } else { Registration::remove(a) })
            .collect();
        let mut out = [Completion::default(); 64];
        let n = port.process(&mut regs, &mut out, Some(Duration::ZERO)).unwrap();
        for (k, r) in regs.iter().enumerate() {
            let want = if k == GONE { Err(RegistrationError::NotFound) } else { Ok(()) };
            assert_eq!(r.result(), want, "{:?}: entry {k}", port.backend());
        }
        let mut got = out[..n].to_vec();
        drain(&port, &mut got, Duration::from_millis(50));
        let mut keys: Vec<usize> = got.iter().map(|c| c.key()).collect();
        keys.sort_unstable();
        let want: Vec<usize> = (0..N).filter(|&k| k != GONE).collect();
        assert_eq!(
            keys,
            want,
            "{:?}: one REMOVE packet per live registration, none for the closed one",
            port.backend()
        );
        assert!(got.iter().all(|c| c.events() == Events::REMOVE));
        assert_eq!(port.registrations(), 0);
        // The number is free on this port: the new socket registers under its own key.
        let mut regs = [Registration::enable(&new, 1000, Events::IN, Trigger::LEVEL_ONESHOT)];
        let n = port.process(&mut regs, &mut out, Some(Duration::from_secs(5))).unwrap();
        regs[0].result().unwrap();
        assert_eq!(n, 1);
        assert_eq!((out[0].key(), out[0].events()), (1000, Events::IN));
        drop(old_peer);
    }
}

/// The same close and reuse between two batched ENABLEs: the second batch's re-ENABLEs are
/// re-arms (their ADD or MOD made after the entries), and the one for the reused number is
/// refused by the kernel; that entry then registers the new socket, under the entry's key,
/// in the same call, and its readiness is delivered under that key, never under the old one.
#[test]
fn a_batched_reenable_of_a_reused_number_registers_the_new_socket_under_the_entry_key() {
    const GONE: usize = 3;
    for port in ports() {
        let Reused { socks, new, _new_peer, old_peer } = register_then_reuse(&port, Trigger::LEVEL_ONESHOT, GONE);
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| {
                let s = if k == GONE { &new } else { a };
                Registration::enable(s, 100 + k, Events::IN, Trigger::LEVEL_ONESHOT)
            })
            .collect();
        apply(&port, &mut regs);
        assert!(regs.iter().all(|r| r.result().is_ok()), "{:?}", port.backend());
        assert_eq!(port.registrations(), N);
        let mut got = Vec::new();
        drain(&port, &mut got, Duration::from_millis(50));
        let keys: Vec<usize> = got.iter().map(|c| c.key()).collect();
        assert_eq!(
            keys,
            vec![100 + GONE],
            "{:?}: only the new socket is readable, under its entry's key",
            port.backend()
        );
        assert_eq!(got[0].events(), Events::IN);
        // Re-ENABLEs of the others kept their keys (D15).
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| if k == GONE { Registration::remove(&new) } else { Registration::remove(a) })
            .collect();
        let mut out = [Completion::default(); 64];
        let n = port.process(&mut regs, &mut out, Some(Duration::ZERO)).unwrap();
        assert!(regs.iter().all(|r| r.result().is_ok()));
        let mut keys: Vec<usize> = out[..n].iter().map(|c| c.key()).collect();
        keys.sort_unstable();
        let want: Vec<usize> = (0..N).map(|k| if k == GONE { 100 + k } else { k }).collect();
        let mut want = want;
        want.sort_unstable();
        assert_eq!(keys, want);
        drop(old_peer);
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds: [RawFd; 2] = [0; 2];
    // SAFETY: fds has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Descriptors that are not sockets in a batched ENABLE (a pipe, which epoll would accept,
/// and a regular file): their identity probe fails, so each entry gets `WSAENOTSOCK` (D10),
/// exactly as alone, and the sockets around them register.
#[test]
fn non_sockets_in_a_batched_enable_are_refused_and_the_sockets_register() {
    for port in ports() {
        let socks = pairs(N);
        let (r, _w) = pipe();
        let file = std::fs::File::open("/dev/null").unwrap();
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| Registration::enable(a, k, Events::IN, Trigger::LEVEL_ONESHOT))
            .collect();
        regs.insert(5, Registration::enable(&r, 500, Events::IN, Trigger::LEVEL_ONESHOT));
        regs.insert(20, Registration::disable(&file, 501));
        apply(&port, &mut regs);
        for reg in &regs {
            let want = if reg.key() >= 500 { Err(RegistrationError::NotASocket) } else { Ok(()) };
            assert_eq!(reg.result(), want, "{:?}: key {}", port.backend(), reg.key());
        }
        assert_eq!(port.registrations(), N);
        let mut regs: Vec<Registration<'_>> = socks.iter().map(|(a, _)| Registration::remove(a)).collect();
        let mut got = Vec::new();
        let mut out = [Completion::default(); 64];
        let n = port.process(&mut regs, &mut out, Some(Duration::ZERO)).unwrap();
        got.extend_from_slice(&out[..n]);
        drain(&port, &mut got, Duration::from_millis(50));
        assert_eq!(got.len(), N);
        assert!(got.iter().all(|c| c.key() < N && c.events() == Events::REMOVE));
    }
}

/// A batch of re-arms that rides with the call's kernel wait, in a call whose deadline has
/// passed by the time its entries are applied and that finds a packet to return at once (here
/// a level-persistent socket that stays readable): the re-arms still reach the kernel before
/// the call returns. Every re-armed ONESHOT registration whose socket is still readable fires
/// again; before the fix the re-arms were dropped with the call and those registrations stayed
/// silent for good (seen in `random_mt`, whose calls wait 1-5 ms).
#[test]
fn rearms_riding_with_the_wait_apply_even_when_the_call_returns_without_waiting() {
    const STEADY: usize = 9999;
    for port in ports() {
        let socks = pairs(N);
        let (steady, steady_peer) = UnixStream::pair().unwrap();
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| Registration::enable(a, k, Events::IN, Trigger::LEVEL_ONESHOT))
            .collect();
        regs.push(Registration::enable(&steady, STEADY, Events::IN, Trigger::LEVEL_PERSISTENT));
        apply(&port, &mut regs);
        assert!(regs.iter().all(|r| r.result().is_ok()));
        drop(regs);
        // Every socket readable, every ONESHOT delivered once (and so disabled); the data
        // stays unread, so a re-arm makes each fire again.
        for (_, b) in &socks {
            (&*b).write_all(b"x").unwrap();
        }
        let mut got = Vec::new();
        drain(&port, &mut got, Duration::from_millis(50));
        assert_eq!(got.len(), N, "{:?}: one packet per socket", port.backend());
        (&steady_peer).write_all(b"x").unwrap();
        let mut regs: Vec<Registration<'_>> = socks
            .iter()
            .enumerate()
            .map(|(k, (a, _))| Registration::enable(a, k, Events::IN, Trigger::LEVEL_ONESHOT))
            .collect();
        let mut out = [Completion::default(); 1];
        // A deadline that has passed once the entries are applied: the call collects what
        // the kernel holds and returns without waiting.
        let n = port.process(&mut regs, &mut out, Some(Duration::from_nanos(1))).unwrap();
        assert!(regs.iter().all(|r| r.result().is_ok()));
        drop(regs);
        let mut got: Vec<Completion> = out[..n].to_vec();
        drain(&port, &mut got, Duration::from_millis(100));
        let mut keys: Vec<usize> = got.iter().map(|c| c.key()).filter(|&k| k != STEADY).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys, (0..N).collect::<Vec<_>>(), "{:?}: every re-armed socket fires again", port.backend());
    }
}
