//! Harness of the fuzz target `capi`: drives the C entry points of `socknotify-c` (called through the
//! crate's Rust functions, exactly the symbols C links against) with arbitrary counts,
//! NULL or real buffers (never wild pointers: a non-NULL pointer always points to a buffer
//! at least `count` elements long), flags, operations, handles (live, closed, garbage) and
//! descriptors (pool sockets, closed numbers, a pipe, garbage numbers).
//!
//! Each run makes a small pool of Unix socket pairs and a pipe, and closes every port and
//! descriptor it made before it ends (bounded: at most 4 live ports, 3 pairs, 300 calls).
//! Every wait has timeout 0, except calls whose shape is invalid (they fail before waiting).
//!
//! Checked after every call:
//! - return values and last errors only from the decided sets; never ERROR_INTERNAL_ERROR
//!   (a caught panic);
//! - a failed `ProcessSocketNotifications` changed nothing visible: every
//!   `registrationResult`, the received count and the output entries are untouched;
//!   input fields of the registrations are never written;
//! - per-entry results: NONE → 0, an unknown operation → WSAEINVAL, a pipe or garbage
//!   descriptor → WSAENOTSOCK, anything else from {0, WSAEINVAL, WSAENOTSOCK, WSAEALREADY,
//!   ERROR_NOT_FOUND, WSAENOBUFS};
//! - counts: success with packets wanted → 1..=count; WAIT_TIMEOUT → 0;
//! - packets: posted ones come back unchanged and in order per port; notifications carry
//!   overlapped = internal = 0, a mask within 0xC7, a key used with that port; nothing after
//!   REMOVE with that key; nothing from a closed port; at most one packet per key after the
//!   socket was closed.
use socknotify_c as c;
use socknotify_c::{HANDLE, OVERLAPPED, OVERLAPPED_ENTRY, SOCK_NOTIFY_REGISTRATION};
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::c_void;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

const PAIRS: usize = 3;
const REGS: usize = 4;
const ENTRIES: usize = 8;
const POSTED: usize = 1 << 62;
const SENTINEL: u32 = 0xDEAD_BEEF;
const KEYBASE: usize = 1 << 20;

const CALL_CODES: [u32; 6] = [0, 258, 10022, 10014, 6, 10055];
const ENTRY_CODES: [u32; 6] = [0, 10022, 10038, 10037, 1168, 10055];

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

/// What a descriptor choice turned out to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Desc {
    /// An open socket of the pool (slot, generation of that slot).
    Sock(usize),
    /// Surely not an open socket: the pipe, a garbage number, INVALID_SOCKET.
    NotSock,
    /// A closed pool number: nothing known (the number may have been reused by a port).
    Unknown,
}

struct Port {
    handle: HANDLE,
    live: bool,
    posted: VecDeque<OVERLAPPED_ENTRY>,
    keys: HashSet<usize>,
}

struct Run {
    ours: Vec<Option<OwnedFd>>,
    peers: Vec<Option<UnixStream>>,
    numbers: Vec<usize>,
    pipe: (OwnedFd, OwnedFd),
    ports: Vec<Port>,
    next_key: usize,
    next_post: usize,
    /// key → pool slot it was used with (successful entries only).
    key_slot: HashMap<usize, usize>,
    dead: HashSet<usize>,
    allowance: HashMap<usize, u32>,
    buf: Vec<u8>,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    (r.into(), w.into())
}

impl Run {
    fn new() -> Run {
        let mut ours = Vec::new();
        let mut peers = Vec::new();
        let mut numbers = Vec::new();
        for _ in 0..PAIRS {
            let (a, b) = UnixStream::pair().expect("socketpair");
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            numbers.push(a.as_raw_fd() as usize);
            ours.push(Some(OwnedFd::from(a)));
            peers.push(Some(b));
        }
        Run {
            ours,
            peers,
            numbers,
            pipe: pipe(),
            ports: Vec::new(),
            next_key: KEYBASE,
            next_post: 1,
            key_slot: HashMap::new(),
            dead: HashSet::new(),
            allowance: HashMap::new(),
            buf: vec![0; 4096],
        }
    }

    fn desc(&self, b: u8) -> (usize, Desc) {
        match b % 10 {
            n @ 0..=4 => {
                let i = usize::from(n) % PAIRS;
                let d = if self.ours[i].is_some() { Desc::Sock(i) } else { Desc::Unknown };
                (self.numbers[i], d)
            }
            5 => (self.pipe.0.as_raw_fd() as usize, Desc::NotSock),
            6 => (c::INVALID_SOCKET, Desc::NotSock),
            7 => (1 << 40, Desc::NotSock),
            8 => (1_000_000, Desc::NotSock),
            _ => (u32::MAX as usize, Desc::NotSock),
        }
    }

    fn handle(&self, b: u8) -> (HANDLE, Option<usize>) {
        match b % 8 {
            n @ 0..=4 if !self.ports.is_empty() => {
                let i = usize::from(n) % self.ports.len();
                (self.ports[i].handle, self.ports[i].live.then_some(i))
            }
            5 => (std::ptr::null_mut(), None),
            6 => (c::INVALID_HANDLE_VALUE, None),
            _ => (0x7777_0000 as HANDLE, None),
        }
    }

    fn check_packets(&mut self, port: usize, got: &[OVERLAPPED_ENTRY]) {
        for e in got {
            if e.lpCompletionKey & POSTED != 0 {
                let want = self.ports[port].posted.pop_front();
                assert_eq!(Some(*e), want, "posted packets come back unchanged and in order");
                continue;
            }
            let key = e.lpCompletionKey;
            assert!(self.ports[port].keys.contains(&key), "notification {e:?} with a key never used on this port");
            assert!(!self.dead.contains(&key), "notification {e:?} after REMOVE or port close");
            assert_eq!((e.lpOverlapped as usize, e.Internal), (0, 0), "D20: {e:?}");
            let m = e.dwNumberOfBytesTransferred;
            assert!(m != 0 && m & !0xC7 == 0, "mask {m:#x}");
            if let Some(a) = self.allowance.get_mut(&key) {
                assert!(*a > 0, "second packet with key {key} after its socket was closed");
                *a -= 1;
            }
            if m & 0x80 != 0 {
                self.dead.insert(key);
            }
        }
    }

    fn close_slot(&mut self, i: usize) {
        for (&k, &s) in &self.key_slot {
            if s == i && !self.dead.contains(&k) {
                self.allowance.entry(k).or_insert(1);
            }
        }
        self.key_slot.retain(|_, s| *s != i);
    }

    fn psn(&mut self, inp: &mut Input<'_>) {
        let (h, port) = self.handle(inp.byte());
        let shape = inp.byte();
        let mut regs = [SOCK_NOTIFY_REGISTRATION::default(); REGS];
        let mut descs = [Desc::Unknown; REGS];
        for (r, d) in regs.iter_mut().zip(descs.iter_mut()) {
            let (sock, desc) = self.desc(inp.byte());
            *d = desc;
            r.socket = sock;
            r.completionKey = self.next_key as *mut c_void;
            self.next_key += 1;
            r.operation = match inp.byte() % 8 {
                0 => 0,
                1..=3 => 1,
                4 => 2,
                5 | 6 => 4,
                _ => inp.byte(),
            };
            r.eventFilter = match inp.byte() % 4 {
                0 => u16::from(inp.byte()) << (inp.byte() % 9),
                _ => u16::from(inp.byte() & 7),
            };
            r.triggerFlags = match inp.byte() % 4 {
                0 => inp.byte(),
                n => [0x05, 0x06, 0x09, 0x0A, 0x04][(usize::from(n) + usize::from(inp.byte())) % 5],
            };
            r.registrationResult = SENTINEL;
        }
        let before = regs;
        let reg_null = shape & 1 != 0;
        let reg_count = if reg_null {
            [0, 1, 3, u32::MAX][usize::from(inp.byte() % 4)]
        } else {
            u32::from(inp.byte()) % (REGS as u32 + 1)
        };
        let ent_null = shape & 2 != 0;
        let rcv_null = shape & 4 != 0;
        let overlap = shape & 0x80 != 0 && !reg_null && !ent_null && reg_count > 0;
        let mut entries = [OVERLAPPED_ENTRY {
            lpCompletionKey: 0xAAAA,
            lpOverlapped: 0xBBBB as *mut OVERLAPPED,
            Internal: 0xCCCC,
            dwNumberOfBytesTransferred: SENTINEL,
        }; ENTRIES];
        let entries_before = entries;
        let ent_count = if ent_null {
            [0, 1, 8, u32::MAX][usize::from(inp.byte() % 4)]
        } else {
            u32::from(inp.byte()) % (ENTRIES as u32 + 1)
        };
        let mut received: u32 = SENTINEL;
        // A wait only where the call's shape is surely invalid (it must fail before waiting).
        let may_wait = ent_count == 0 || ent_null || rcv_null || overlap;
        let timeout = if may_wait && shape & 8 != 0 { [1, 50, c::INFINITE][usize::from(inp.byte() % 3)] } else { 0 };

        let rc;
        if overlap {
            // V4: both arrays inside one buffer, overlapping. Must fail with WSAEINVAL and
            // touch nothing.
            let mut raw = vec![0u64; (REGS * 24 + ENTRIES * 32) / 8];
            let base = raw.as_mut_ptr();
            let rp = base.cast::<SOCK_NOTIFY_REGISTRATION>();
            // SAFETY: the buffer holds REGS registrations from its start.
            unsafe { std::ptr::copy_nonoverlapping(regs.as_ptr(), rp, REGS) };
            // An entry array starting inside the last registration used.
            let off_words = (usize::from(inp.byte()) % (reg_count as usize * 3)).min(raw.len() - ENTRIES * 4);
            // SAFETY: off_words + ENTRIES*4 words stay inside `raw`.
            let ep = unsafe { base.add(off_words) }.cast::<OVERLAPPED_ENTRY>();
            let snapshot = raw.clone();
            let cnt = ent_count.min(ENTRIES as u32).max(1);
            // SAFETY: valid (overlapping) buffers of the announced sizes.
            rc = unsafe {
                c::ProcessSocketNotifications(
                    h,
                    reg_count,
                    rp,
                    timeout,
                    cnt,
                    ep,
                    if rcv_null { std::ptr::null_mut() } else { &mut received },
                )
            };
            assert!(rc != 0 && rc != 258, "overlapping arrays accepted: rc {rc}");
            assert_eq!(raw, snapshot, "a failed call wrote into its arrays");
            assert_eq!(received, SENTINEL);
            return;
        }
        // SAFETY: every non-NULL pointer points to a live buffer at least `count` long.
        rc = unsafe {
            c::ProcessSocketNotifications(
                h,
                reg_count,
                if reg_null { std::ptr::null_mut() } else { regs.as_mut_ptr() },
                timeout,
                ent_count,
                if ent_null { std::ptr::null_mut() } else { entries.as_mut_ptr() },
                if rcv_null { std::ptr::null_mut() } else { &mut received },
            )
        };
        assert!(CALL_CODES.contains(&rc), "ProcessSocketNotifications returned {rc}");
        for (a, b) in regs.iter().zip(before.iter()) {
            assert_eq!(
                (a.socket, a.completionKey, a.eventFilter, a.operation, a.triggerFlags),
                (b.socket, b.completionKey, b.eventFilter, b.operation, b.triggerFlags),
                "an input field was written"
            );
        }
        if rc != 0 && rc != 258 {
            assert_eq!(c::GetLastError(), rc);
            assert_eq!(regs, before, "a failed call wrote registrationResult");
            assert_eq!(received, SENTINEL, "a failed call wrote the count");
            assert_eq!(entries, entries_before, "a failed call wrote entries");
            if port.is_some() && !(reg_null && reg_count > 0) && !(ent_null && ent_count > 0) {
                // A live port and a consistent shape can only fail on the shape rules.
                assert!(rc == 10022 || rc == 10014, "rc {rc}");
            }
            return;
        }
        let port = port.expect("a call on a dead handle succeeded");
        let used = if reg_null { 0 } else { reg_count as usize };
        for (i, r) in regs.iter().enumerate() {
            if i >= used {
                assert_eq!(r.registrationResult, SENTINEL, "entry beyond the count was written");
                continue;
            }
            let code = r.registrationResult;
            assert!(ENTRY_CODES.contains(&code), "registrationResult {code}");
            match r.operation {
                0 => assert_eq!(code, 0, "NONE"),
                1 | 2 | 4 => {
                    if descs[i] == Desc::NotSock {
                        assert_eq!(code, 10038, "not a socket: {r:?}");
                    }
                }
                _ => assert_eq!(code, 10022, "unknown operation {}", r.operation),
            }
            if r.operation != 0 {
                // The key may identify packets from this port from now on.
                self.ports[port].keys.insert(r.completionKey as usize);
                if code == 0 {
                    if let Desc::Sock(s) = descs[i] {
                        self.key_slot.insert(r.completionKey as usize, s);
                    }
                }
            }
        }
        if ent_count == 0 || ent_null {
            assert_eq!(rc, 0);
            assert_eq!(received, SENTINEL);
            return;
        }
        let n = received as usize;
        if rc == 258 {
            assert_eq!(n, 0, "WAIT_TIMEOUT with a count");
        } else {
            assert!(n >= 1 && n <= ent_count as usize, "count {n} of {ent_count}");
        }
        assert_eq!(&entries[n..], &entries_before[n..], "entries beyond the count were written");
        self.check_packets(port, &entries[..n]);
    }

    fn gqcsex(&mut self, inp: &mut Input<'_>) {
        let (h, port) = self.handle(inp.byte());
        let b = inp.byte();
        let ent_null = b & 1 != 0;
        let cnt_null = b & 2 != 0;
        let count =
            if ent_null { [0, 1, 4][usize::from(b >> 2) % 3] } else { u32::from(b >> 2) % (ENTRIES as u32 + 1) };
        let mut entries = [OVERLAPPED_ENTRY { lpCompletionKey: 0xAAAA, ..Default::default() }; ENTRIES];
        let snapshot = entries;
        let mut removed: u32 = SENTINEL;
        // SAFETY: NULL or real buffers of at least `count` entries; timeout 0.
        let ok = unsafe {
            c::GetQueuedCompletionStatusEx(
                h,
                if ent_null { std::ptr::null_mut() } else { entries.as_mut_ptr() },
                count,
                if cnt_null { std::ptr::null_mut() } else { &mut removed },
                0,
                c::BOOL::from(inp.byte() & 1),
            )
        };
        if ok == c::TRUE {
            let port = port.expect("GQCSEx on a dead handle succeeded");
            let n = removed as usize;
            assert!(n >= 1 && n <= count as usize);
            assert_eq!(&entries[n..], &snapshot[n..]);
            self.check_packets(port, &entries[..n]);
        } else {
            assert_eq!(ok, c::FALSE);
            let e = c::GetLastError();
            match e {
                258 => {
                    assert!(port.is_some());
                    assert_eq!(removed, 0);
                }
                87 | 6 => assert_eq!(removed, SENTINEL),
                _ => panic!("GQCSEx last error {e}"),
            }
            if port.is_some() && e == 6 {
                panic!("GQCSEx: live port reported invalid");
            }
            assert_eq!(entries, snapshot);
        }
    }

    fn step(&mut self, inp: &mut Input<'_>) {
        match inp.byte() % 12 {
            0 => {
                if self.ports.iter().filter(|p| p.live).count() >= 4 {
                    return;
                }
                let b = inp.byte();
                let file = if b & 1 == 0 { c::INVALID_HANDLE_VALUE } else { 5 as HANDLE };
                let existing = if b & 2 == 0 { std::ptr::null_mut() } else { self.handle(inp.byte()).0 };
                let h = c::CreateIoCompletionPort(file, existing, usize::from(inp.byte()), u32::from(inp.byte() % 4));
                if file == c::INVALID_HANDLE_VALUE && existing.is_null() {
                    assert!(!h.is_null(), "CreateIoCompletionPort failed: {}", c::GetLastError());
                    assert!(!self.ports.iter().any(|p| p.handle == h), "a handle value was reused");
                    self.ports.push(Port { handle: h, live: true, posted: VecDeque::new(), keys: HashSet::new() });
                } else {
                    assert!(h.is_null());
                    assert_eq!(c::GetLastError(), 87);
                }
            }
            1..=3 => self.psn(inp),
            4 => {
                let (h, port) = self.handle(inp.byte());
                let bytes = inp.u32();
                let key = POSTED | self.next_post;
                self.next_post += 1;
                let ov = (usize::from(inp.byte()) << 4) as *mut OVERLAPPED;
                let ok = c::PostQueuedCompletionStatus(h, bytes, key, ov);
                match port {
                    Some(i) => {
                        assert_eq!(ok, c::TRUE);
                        self.ports[i].posted.push_back(OVERLAPPED_ENTRY {
                            lpCompletionKey: key,
                            lpOverlapped: ov,
                            Internal: 0,
                            dwNumberOfBytesTransferred: bytes,
                        });
                    }
                    None => {
                        assert_eq!(ok, c::FALSE);
                        assert_eq!(c::GetLastError(), 6);
                    }
                }
            }
            5 | 6 => self.gqcsex(inp),
            7 => {
                let (h, port) = self.handle(inp.byte());
                let ok = c::CloseHandle(h);
                match port {
                    Some(i) => {
                        assert_eq!(ok, c::TRUE);
                        let p = &mut self.ports[i];
                        p.live = false;
                        p.posted.clear();
                        let keys: Vec<usize> = p.keys.iter().copied().collect();
                        self.dead.extend(keys);
                    }
                    None => {
                        assert_eq!(ok, c::FALSE);
                        assert_eq!(c::GetLastError(), 6);
                    }
                }
            }
            8 => {
                let (s, d) = self.desc(inp.byte());
                let rc = c::closesocket(s);
                match d {
                    Desc::Sock(i) => {
                        assert_eq!(rc, 0, "closesocket of an open socket: {}", c::GetLastError());
                        // Closed by closesocket: forget the descriptor without closing it again.
                        let _ = self.ours[i].take().map(IntoRawFd::into_raw_fd);
                        self.close_slot(i);
                    }
                    Desc::NotSock => {
                        assert_eq!(rc, -1);
                        assert_eq!(c::GetLastError(), 10038);
                    }
                    Desc::Unknown => {
                        assert!(rc == 0 || rc == -1);
                        assert_eq!(rc, -1, "closesocket closed a number the run had closed");
                    }
                }
            }
            9 => {
                // Peer activity: write, shut down, close.
                use std::io::Write;
                let i = usize::from(inp.byte()) % PAIRS;
                let what = inp.byte();
                if let Some(p) = self.peers[i].as_mut() {
                    match what % 4 {
                        0 | 1 => {
                            let n = usize::from(inp.byte()) + 1;
                            let _ = p.write(&self.buf[..n]);
                        }
                        2 => {
                            let _ = p.shutdown(std::net::Shutdown::Write);
                        }
                        _ => self.peers[i] = None,
                    }
                }
            }
            10 => {
                // Drain our side (a read that empties the buffer).
                let i = usize::from(inp.byte()) % PAIRS;
                if let Some(fd) = self.ours[i].as_ref() {
                    // SAFETY: reads into our own buffer; the descriptor is non-blocking.
                    unsafe {
                        libc::recv(fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), libc::MSG_DONTWAIT)
                    };
                }
            }
            _ => {
                // Plain close (no closesocket): the core notices lazily.
                let i = usize::from(inp.byte()) % PAIRS;
                if self.ours[i].take().is_some() {
                    self.close_slot(i);
                }
            }
        }
    }

    fn finish(mut self) {
        for p in &mut self.ports {
            if p.live {
                assert_eq!(c::CloseHandle(p.handle), c::TRUE);
                p.live = false;
            }
        }
        // Remaining descriptors close when `self` drops.
    }
}

/// Runs one input (the fuzz target's body).
pub fn run(data: &[u8]) {
    let mut inp = Input { data };
    let mut run = Run::new();
    let mut steps = 0;
    while !inp.data.is_empty() && steps < 300 {
        run.step(&mut inp);
        steps += 1;
    }
    run.finish();
}
