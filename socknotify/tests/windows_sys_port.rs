//! A crate written against `windows-sys`'s PSN API, ported by changing its `use` lines only.
//!
//! `windows_sys_port/poller.rs` (a small poller: `ProcessSocketNotifications`,
//! `GetQueuedCompletionStatus(Ex)`, `PostQueuedCompletionStatus`, `CloseHandle`, threads from
//! `CreateThread`) has no `use` lines of its own. It is included twice: in [`ported`], under
//! `use` lines naming `socknotify::windows_sys`, where the tests below run it on real sockets;
//! and in [`original`], under the same `use` lines naming the real `windows-sys` crate, where
//! it is type-checked only (its functions are Windows'; nothing calls them here). The two
//! blocks of `use` lines differ only in their first path segment: that is the whole port.

/// The port: `windows_sys::` became `socknotify::windows_sys::` in the `use` lines.
mod ported {
    use socknotify::windows_sys::Win32::Foundation::{
        CloseHandle, GetLastError, ERROR_SUCCESS, FALSE, HANDLE, INVALID_HANDLE_VALUE, TRUE, WAIT_OBJECT_0,
        WAIT_TIMEOUT,
    };
    use socknotify::windows_sys::Win32::Networking::WinSock::{
        closesocket, ProcessSocketNotifications, WSAGetLastError, SOCKET, SOCKET_ERROR, SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_OP_REMOVE, SOCK_NOTIFY_REGISTRATION, WSAENOTSOCK, WSA_ERROR,
    };
    use socknotify::windows_sys::Win32::System::Threading::{
        CreateThread, GetExitCodeThread, WaitForMultipleObjects, INFINITE, LPTHREAD_START_ROUTINE,
    };
    use socknotify::windows_sys::Win32::System::IO::{
        CreateIoCompletionPort, GetQueuedCompletionStatus, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
        OVERLAPPED, OVERLAPPED_ENTRY,
    };
    use std::ffi::c_void;
    use std::ptr::{null, null_mut};

    include!("windows_sys_port/poller.rs");
}

/// The original, against the real `windows-sys` (type-checked on Linux, never called).
#[allow(dead_code)]
mod original {
    use std::ffi::c_void;
    use std::ptr::{null, null_mut};
    use windows_sys::Win32::Foundation::{
        CloseHandle, GetLastError, ERROR_SUCCESS, FALSE, HANDLE, INVALID_HANDLE_VALUE, TRUE, WAIT_OBJECT_0,
        WAIT_TIMEOUT,
    };
    use windows_sys::Win32::Networking::WinSock::{
        closesocket, ProcessSocketNotifications, WSAGetLastError, SOCKET, SOCKET_ERROR, SOCK_NOTIFY_OP_ENABLE,
        SOCK_NOTIFY_OP_REMOVE, SOCK_NOTIFY_REGISTRATION, WSAENOTSOCK, WSA_ERROR,
    };
    use windows_sys::Win32::System::Threading::{
        CreateThread, GetExitCodeThread, WaitForMultipleObjects, INFINITE, LPTHREAD_START_ROUTINE,
    };
    use windows_sys::Win32::System::IO::{
        CreateIoCompletionPort, GetQueuedCompletionStatus, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
        OVERLAPPED, OVERLAPPED_ENTRY,
    };

    include!("windows_sys_port/poller.rs");
}

use ported::{Code, Poller};
use socknotify::windows_sys as ws;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Bounded waits: no call in these tests is expected to get anywhere near it.
const LONG_MS: u32 = 10_000;

fn socket_of(s: &impl AsRawFd) -> ws::SOCKET {
    s.as_raw_fd() as ws::SOCKET
}

#[test]
fn a_psn_loop_registers_waits_rearms_and_removes() {
    const SOCKETS: usize = 3;
    const ROUNDS: usize = 4;
    const POSTED: usize = 1 << 40;
    let poller = Poller::new(0).unwrap();
    let mut ours = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..SOCKETS {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        ours.push(a);
        peers.push(b);
    }
    // A posted packet goes out of the same FIFO as the notifications.
    let mut ov = ws::OVERLAPPED::default();
    let ov_ptr: *mut ws::OVERLAPPED = &mut ov;
    poller.post(123, POSTED, ov_ptr).unwrap();

    let level_oneshot = ws::SOCK_NOTIFY_TRIGGER_LEVEL | ws::SOCK_NOTIFY_TRIGGER_ONESHOT;
    let first: Vec<_> = (0..SOCKETS)
        .map(|i| Poller::enable(socket_of(&ours[i]), i, ws::SOCK_NOTIFY_REGISTER_EVENT_IN, level_oneshot))
        .collect();
    for (i, p) in peers.iter_mut().enumerate() {
        p.write_all(format!("{i}:0;").as_bytes()).unwrap();
    }
    let mut got = vec![String::new(); SOCKETS];
    let mut rounds = [0usize; SOCKETS];
    let (mut posted_seen, mut removed) = (0, 0);
    let handled = poller
        .run(first, LONG_MS, |e, next| {
            if e.lpCompletionKey == POSTED {
                assert_eq!((e.dwNumberOfBytesTransferred, e.lpOverlapped), (123, ov_ptr));
                posted_seen += 1;
                return true;
            }
            let i = e.lpCompletionKey;
            let events = ported::events(e);
            assert!(e.lpOverlapped.is_null(), "a notification carries no OVERLAPPED");
            if events & ws::SOCK_NOTIFY_EVENT_REMOVE != 0 {
                removed += 1;
                return removed < SOCKETS;
            }
            assert_ne!(events & ws::SOCK_NOTIFY_EVENT_IN, 0, "{events:#x}");
            // Read until WouldBlock (the socket is non-blocking).
            let mut buf = [0u8; 256];
            loop {
                match ours[i].read(&mut buf) {
                    Ok(0) => panic!("end of stream"),
                    Ok(n) => got[i].push_str(std::str::from_utf8(&buf[..n]).unwrap()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            rounds[i] += 1;
            if rounds[i] < ROUNDS {
                // More data, and the ONESHOT registration re-armed in the loop's next call.
                peers[i].write_all(format!("{i}:{};", rounds[i]).as_bytes()).unwrap();
                next.push(Poller::enable(socket_of(&ours[i]), i, ws::SOCK_NOTIFY_REGISTER_EVENT_IN, level_oneshot));
            } else {
                next.push(Poller::remove(socket_of(&ours[i])));
            }
            true
        })
        .unwrap();
    assert_eq!(posted_seen, 1);
    assert_eq!(handled, 1 + SOCKETS * ROUNDS + SOCKETS, "one packet per round, one REMOVE each");
    for (i, text) in got.iter().enumerate() {
        let want: String = (0..ROUNDS).map(|r| format!("{i}:{r};")).collect();
        assert_eq!(text, &want);
    }
    let mut out = [ws::OVERLAPPED_ENTRY::default(); 4];
    assert_eq!(poller.wait(&mut out, 0), Ok(0), "nothing after the REMOVE packets");

    // Per-entry results: REMOVE of a removed registration, ENABLE of a non-socket.
    let (pipe_r, _pipe_w) = std::io::pipe().unwrap();
    let mut regs = [
        Poller::remove(socket_of(&ours[0])),
        Poller::enable(socket_of(&pipe_r), 9, ws::SOCK_NOTIFY_REGISTER_EVENT_IN, level_oneshot),
    ];
    assert_eq!(poller.process(&mut regs, &mut [], 0), Ok(0));
    assert_eq!(regs[0].registrationResult, ws::ERROR_NOT_FOUND);
    assert!(ported::not_a_socket(&regs[1]));
    // A whole-call error: a timeout with nowhere to put packets (V1).
    assert_eq!(poller.process(&mut [], &mut [], 5), Err(Code(ws::WSAEINVAL as u32)));
    poller.close().unwrap();
}

#[test]
fn gqcs_and_gqcs_ex_dequeue_posts_and_notifications_in_order() {
    let poller = Poller::new(1).unwrap();
    let mut ovs = [ws::OVERLAPPED::default(); 5];
    for (k, ov) in ovs.iter_mut().enumerate() {
        poller.post(10 * k as u32, 100 + k, ov).unwrap();
    }
    let ptr_of = |ovs: &mut [ws::OVERLAPPED; 5], k: usize| -> *mut ws::OVERLAPPED { &mut ovs[k] };
    assert_eq!(poller.wait_one(LONG_MS), Ok(Some((0, 100, ptr_of(&mut ovs, 0)))));
    let mut out = [ws::OVERLAPPED_ENTRY::default(); 8];
    assert_eq!(poller.wait(&mut out, LONG_MS), Ok(4));
    for k in 1..5 {
        let e = &out[k - 1];
        assert_eq!(
            (e.lpCompletionKey, e.dwNumberOfBytesTransferred, e.lpOverlapped),
            (100 + k, 10 * k as u32, ptr_of(&mut ovs, k))
        );
        assert_eq!(e.Internal, 0);
    }
    assert_eq!(poller.wait_one(0), Ok(None), "WAIT_TIMEOUT with a NULL overlapped");
    assert_eq!(poller.wait(&mut out, 0), Ok(0));

    // A notification through GetQueuedCompletionStatus: a connected socket is writable.
    let (a, _b) = UnixStream::pair().unwrap();
    let trigger = ws::SOCK_NOTIFY_TRIGGER_LEVEL | ws::SOCK_NOTIFY_TRIGGER_ONESHOT;
    let mut regs = [Poller::enable(socket_of(&a), 7, ws::SOCK_NOTIFY_REGISTER_EVENT_OUT, trigger)];
    assert_eq!(poller.process(&mut regs, &mut [], 0), Ok(0));
    assert_eq!(regs[0].registrationResult, ws::ERROR_SUCCESS);
    let (events, key, ov) = poller.wait_one(LONG_MS).unwrap().expect("OUT");
    assert_eq!((key, ov), (7, std::ptr::null_mut()));
    assert_ne!(events & ws::SOCK_NOTIFY_EVENT_OUT, 0);
    assert_eq!(poller.wait_one(0), Ok(None), "ONESHOT: disabled at delivery");
}

#[test]
fn closing_the_port_wakes_blocked_waiters_with_abandoned_wait() {
    let poller = Poller::new(0).unwrap();
    let h = poller.handle();
    let threads =
        [ported::spawn(Some(ported::gqcs_waiter), h).unwrap(), ported::spawn(Some(ported::psn_waiter), h).unwrap()];
    // Both threads blocked in the port (socknotify's own view of it; a bounded wait).
    let port = ws::completion_port(h).expect("a live port handle");
    let deadline = Instant::now() + Duration::from_secs(10);
    while port.stats().waiters < 2 {
        assert!(Instant::now() < deadline, "the waiters never blocked");
        std::thread::sleep(Duration::from_millis(1));
    }
    poller.close().unwrap();
    assert_eq!(ported::join(&threads, LONG_MS), Ok(vec![ws::ERROR_ABANDONED_WAIT_0, ws::ERROR_ABANDONED_WAIT_0]));
    // The handle is retired.
    // SAFETY: CloseHandle, GetLastError and PostQueuedCompletionStatus dereference nothing.
    unsafe {
        assert_eq!(ws::CloseHandle(h), ws::FALSE);
        assert_eq!(ws::GetLastError(), ws::ERROR_INVALID_HANDLE);
        assert_eq!(ws::PostQueuedCompletionStatus(h, 0, 0, std::ptr::null()), ws::FALSE);
        assert_eq!(ws::GetLastError(), ws::ERROR_INVALID_HANDLE);
    }
    assert!(port.is_closed());
}

#[test]
fn winsock_errors_have_windows_sys_types() {
    assert_eq!(ported::close_socket(ws::INVALID_SOCKET), Err(ws::WSAENOTSOCK));
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().into_raw_fd() as ws::SOCKET;
    assert_eq!(ported::close_socket(s), Ok(()));
    assert_eq!(ported::close_socket(s), Err(ws::WSAENOTSOCK), "closed already");
}

#[test]
fn the_port_changed_the_use_lines_only() {
    let me = include_str!("windows_sys_port.rs");
    // The `use` statements of a module, whitespace-normalised, in order of their text
    // (rustfmt sorts them by path, so the two blocks list them in different orders).
    let uses = |start: &str, rename: bool| {
        let from = me.find(start).expect("module") + start.len();
        let to = from + me[from..].find("include!(").expect("include");
        let mut v: Vec<String> = me[from..to]
            .split(';')
            .map(|u| u.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|u| !u.is_empty())
            .map(|u| if rename { u.replace("socknotify::windows_sys::", "windows_sys::") } else { u })
            .collect();
        v.sort();
        v
    };
    let ported = uses("mod ported {", true);
    assert_eq!(ported.len(), 6);
    assert!(ported.iter().all(|u| u.starts_with("use ")));
    assert_eq!(ported, uses("mod original {", false));
    assert!(me.contains("use socknotify::windows_sys::Win32::System::IO::"));
    let source = include_str!("windows_sys_port/poller.rs");
    assert!(!source.contains("\nuse ") && !source.contains("socknotify::"), "the ported source names no crate");
}
