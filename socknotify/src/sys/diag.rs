//! TCP byte counters of many sockets in two system calls, through the kernel's socket
//! diagnostics (`NETLINK_SOCK_DIAG`, the interface `ss` uses).
//!
//! An edge registration's decisions (decision D18) need each reported TCP socket's byte
//! counters. Asked one socket at a time that is two calls per report (`FIONREAD`, then
//! `TCP_INFO`: see [`tcp_counters`](super::socket::tcp_counters)); when one kernel wait reports
//! several TCP edge registrations, [`Diag::counters`] asks for all of them with one `sendmsg`
//! (one exact request per socket) and one `recvmmsg` (one reply each). Each reply carries
//! the bytes not yet read (`rcv_nxt - copied_seq`, read first) and `struct tcp_info` (bytes
//! received and acknowledged, read after), so the counters keep the order that makes them
//! safe (see `tcp_counters`).
//!
//! A request names its socket by its address pair, learnt once per socket
//! (`getsockname`/`getpeername`, cached under its cookie), and by its cookie: the kernel
//! answers only for the socket with that cookie, so a stale address pair (the descriptor was
//! closed and its number reused) is an error answer, never another socket's counters. Any
//! socket the kernel does not answer for is left out; the caller then asks it the usual way.

use super::{count, cvt};
use crate::machine::TcpCounters;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
/// `INET_DIAG_INFO`: the reply attribute holding `struct tcp_info`.
const INET_DIAG_INFO: u16 = 2;
/// Requests per `sendmsg`: their replies (about 1 KiB of receive buffer each) must fit in
/// the netlink socket's default receive buffer, or the kernel drops them.
const CHUNK: usize = 32;
/// Room for one reply (header, `inet_diag_msg`, a few attributes, `struct tcp_info`).
const REPLY: usize = 1024;
/// Whole batches without a single answer before the interface is taken as unavailable.
const STRIKES: u32 = 3;

/// TCP states whose reply counters are used: `ESTABLISHED`, `FIN_WAIT1`, `FIN_WAIT2` (no FIN
/// received) and `CLOSE_WAIT`, `CLOSING`, `LAST_ACK` (FIN received). Others are asked the usual
/// way.
fn fin_received(state: u8) -> Option<bool> {
    match state {
        1 | 4 | 5 => Some(false),
        8 | 9 | 11 => Some(true),
        _ => None,
    }
}

/// A socket's address pair, as a diagnostics request names it (`struct inet_diag_sockid`
/// without the cookie; ports and addresses in network byte order, as the kernel stores them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoints {
    family: u8,
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
}

/// One address of `fd`: its own (`peer == false`) or its peer's. `(family, port, address)`.
fn address(fd: RawFd, peer: bool) -> Option<(u8, [u8; 2], [u8; 16])> {
    count();
    let mut ss = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = ss.as_mut_ptr().cast::<libc::sockaddr>();
    // SAFETY: `ss` has room for `len` bytes; the kernel writes at most that many.
    let rc = unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    };
    cvt(rc).ok()?;
    // SAFETY: zeroed storage is a valid `sockaddr_storage`; the kernel wrote an address over it.
    let ss = unsafe { ss.assume_init() };
    let mut addr = [0u8; 16];
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`; the storage is larger
            // and at least as aligned.
            let sin = unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            addr[..4].copy_from_slice(&sin.sin_addr.s_addr.to_ne_bytes());
            Some((libc::AF_INET as u8, sin.sin_port.to_ne_bytes(), addr))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let sin6 = unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            if sin6.sin6_scope_id != 0 {
                return None; // a scoped (link-local) pair needs the interface: not handled
            }
            addr.copy_from_slice(&sin6.sin6_addr.s6_addr);
            Some((libc::AF_INET6 as u8, sin6.sin6_port.to_ne_bytes(), addr))
        }
        _ => None,
    }
}

fn endpoints(fd: RawFd) -> Option<Endpoints> {
    let (family, sport, src) = address(fd, false)?;
    let (pf, dport, dst) = address(fd, true)?;
    (pf == family).then_some(Endpoints { family, sport, dport, src, dst })
}

/// One exact request (`nlmsghdr` + `inet_diag_req_v2`), 72 bytes.
fn request(seq: u32, e: &Endpoints, cookie: u64) -> [u8; 72] {
    let mut b = [0u8; 72];
    b[0..4].copy_from_slice(&72u32.to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // inet_diag_req_v2 at 16: family, protocol, ext, pad, states, then the socket id.
    b[16] = e.family;
    b[17] = libc::IPPROTO_TCP as u8;
    b[18] = 1 << (INET_DIAG_INFO - 1);
    b[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    b[24..26].copy_from_slice(&e.sport);
    b[26..28].copy_from_slice(&e.dport);
    b[28..44].copy_from_slice(&e.src);
    b[44..60].copy_from_slice(&e.dst);
    // idiag_if (60..64) stays 0: any interface.
    b[64..68].copy_from_slice(&(cookie as u32).to_ne_bytes());
    b[68..72].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
    b
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses one reply: `(sequence number, cookie, counters)`, `None` for an error answer or a
/// state whose counters are not used.
fn parse(b: &[u8]) -> Option<(u32, u64, TcpCounters)> {
    let len = (u32_at(b, 0)? as usize).min(b.len());
    let b = &b[..len];
    if u16_at(b, 4)? != SOCK_DIAG_BY_FAMILY {
        return None; // NLMSG_ERROR and anything else
    }
    let seq = u32_at(b, 8)?;
    // The socket id sits at 20; its cookie at 40 within it, as two 32-bit halves.
    let cookie = u64::from(u32_at(b, 60)?) | (u64::from(u32_at(b, 64)?) << 32);
    // inet_diag_msg at 16: family, state, timer, retrans, id (48), expires, rqueue, ...
    let fin = fin_received(*b.get(17)?)?;
    let rqueue = u64::from(u32_at(b, 16 + 56)?);
    // Attributes after the 72-byte inet_diag_msg.
    let mut at = 16 + 72;
    while at + 4 <= b.len() {
        let alen = usize::from(u16_at(b, at)?);
        let ty = u16_at(b, at + 2)? & 0x3fff;
        if alen < 4 {
            return None;
        }
        if ty == INET_DIAG_INFO {
            let info = b.get(at + 4..at + alen)?;
            let acked = u64_at(info, 120)?;
            let received = u64_at(info, 128)?;
            // `rcv_nxt - copied_seq` counts a received, unread FIN; FIONREAD (which the
            // machine's counters follow) does not.
            let queued = if fin { rqueue.saturating_sub(1) } else { rqueue };
            return Some((seq, cookie, TcpCounters { received, queued, acked }));
        }
        at += (alen + 3) & !3;
    }
    None
}

/// A port's socket-diagnostics channel: the netlink socket (opened when first needed) and
/// the address pairs of the sockets it asked about.
#[derive(Default)]
pub(crate) struct Diag {
    sock: Option<OwnedFd>,
    /// The interface is unavailable (no netlink socket, or batches without any answer).
    off: bool,
    strikes: u32,
    /// The sequence number of the next request (replies are matched by it and by cookie).
    seq: u32,
    /// Per descriptor number: the cookie and address pair last learnt.
    pairs: Vec<Option<(u64, Endpoints)>>,
    /// The answers of the last [`counters`](Self::counters) call.
    answers: Vec<(RawFd, TcpCounters)>,
    req: Vec<u8>,
    replies: Vec<u8>,
}

impl std::fmt::Debug for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diag").field("off", &self.off).field("pairs", &self.pairs.len()).finish()
    }
}

impl Diag {
    /// A channel that opens nothing until first used.
    pub(crate) fn new() -> Diag {
        Diag::default()
    }

    fn pair(&mut self, fd: RawFd, cookie: u64) -> Option<Endpoints> {
        let i = usize::try_from(fd).ok()?;
        if let Some(Some((c, e))) = self.pairs.get(i) {
            if *c == cookie {
                return Some(*e);
            }
        }
        let e = endpoints(fd)?;
        if i >= self.pairs.len() {
            self.pairs.resize((i + 1).next_power_of_two(), None);
        }
        self.pairs[i] = Some((cookie, e));
        Some(e)
    }

    fn open(&mut self) -> Option<RawFd> {
        if self.off {
            return None;
        }
        if self.sock.is_none() {
            count();
            // SAFETY: plain system call with integer arguments.
            let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
            if fd < 0 {
                self.off = true;
                return None;
            }
            // SAFETY: the kernel just returned this descriptor and nobody else owns it.
            self.sock = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        self.sock.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Counters of the TCP sockets `socks` names (descriptor, cookie), for those the kernel
    /// answered for; the others are left out. Two system calls per 32 sockets, plus two the
    /// first time a socket is asked about.
    pub(crate) fn counters(&mut self, socks: &[(RawFd, u64)]) -> &[(RawFd, TcpCounters)] {
        self.answers.clear();
        if socks.is_empty() {
            return &self.answers;
        }
        let Some(nl) = self.open() else { return &self.answers };
        let mut answered = false;
        for chunk in socks.chunks(CHUNK) {
            self.req.clear();
            let mut asked: Vec<(RawFd, u64)> = Vec::with_capacity(chunk.len());
            let base = self.seq;
            for &(fd, cookie) in chunk {
                let Some(e) = self.pair(fd, cookie) else { continue };
                let seq = base.wrapping_add(asked.len() as u32);
                self.req.extend_from_slice(&request(seq, &e, cookie));
                asked.push((fd, cookie));
            }
            self.seq = base.wrapping_add(asked.len() as u32);
            if asked.is_empty() {
                continue;
            }
            if !send(nl, &self.req) {
                break;
            }
            let got = receive(nl, &mut self.replies, asked.len());
            for (i, len) in got.into_iter().enumerate() {
                let Some((seq, cookie, c)) = parse(&self.replies[i * REPLY..i * REPLY + len]) else { continue };
                // Only an answer to a request of this chunk, about the socket it asked for.
                match asked.get(seq.wrapping_sub(base) as usize) {
                    Some(&(fd, asked_cookie)) if asked_cookie == cookie => {
                        self.answers.push((fd, c));
                        answered = true;
                    }
                    _ => {}
                }
            }
        }
        if answered {
            self.strikes = 0;
        } else {
            self.strikes += 1;
            if self.strikes >= STRIKES {
                self.off = true;
            }
        }
        &self.answers
    }
}

fn send(nl: RawFd, req: &[u8]) -> bool {
    count();
    // SAFETY: `req` is valid for `req.len()` bytes during the call. The kernel's netlink
    // socket is the destination when no address is given.
    let n = unsafe { libc::send(nl, req.as_ptr().cast(), req.len(), 0) };
    n >= 0 && n as usize == req.len()
}

/// Receives up to `n` replies without waiting (the kernel queued them during `send`): the
/// length of each, in `buf` at `REPLY` bytes apart.
fn receive(nl: RawFd, buf: &mut Vec<u8>, n: usize) -> Vec<usize> {
    buf.clear();
    buf.resize(n * REPLY, 0);
    let mut iov: Vec<libc::iovec> =
        buf.chunks_mut(REPLY).map(|c| libc::iovec { iov_base: c.as_mut_ptr().cast(), iov_len: c.len() }).collect();
    // SAFETY: zeroed `mmsghdr`s are valid (null name and control, no iovecs).
    let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    count();
    // SAFETY: `msgs` holds `n` headers, each pointing at one iovec of `iov`, each of which
    // points into `buf`; all live across the call and nothing else touches them.
    let got =
        unsafe { libc::recvmmsg(nl, msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
    if got <= 0 {
        return Vec::new();
    }
    msgs[..got as usize]
        .iter()
        .map(|m| if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 { 0 } else { m.msg_len as usize })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};

    fn pair(addr: &str) -> (TcpStream, TcpStream) {
        let l = TcpListener::bind(addr).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    fn cookie(fd: RawFd) -> u64 {
        super::super::socket::socket_cookie(fd).unwrap()
    }

    #[test]
    fn diag_counters_match_the_per_socket_probes() {
        let mut d = Diag::new();
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let (mut c, mut s) = pair(addr);
            let (mut c2, s2) = pair(addr);
            c.write_all(b"hello world").unwrap();
            c2.write_all(b"abc").unwrap();
            s.write_all(b"xy").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            let mut b2 = [0u8; 2];
            c.read_exact(&mut b2).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let socks = [(s.as_raw_fd(), cookie(s.as_raw_fd())), (s2.as_raw_fd(), cookie(s2.as_raw_fd()))];
            let got = d.counters(&socks).to_vec();
            if d.sock.is_none() {
                return; // no socket diagnostics here: the per-socket probes are used
            }
            assert_eq!(got.len(), 2, "{addr}: {got:?}");
            for (fd, c) in got {
                assert_eq!(Some(c), super::super::socket::tcp_counters(fd), "{addr}");
            }
            // After the peer's FIN: the FIN is not a queued byte.
            c.shutdown(Shutdown::Write).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let got = d.counters(&socks[..1]).to_vec();
            assert_eq!(got.len(), 1, "{addr} after FIN");
            let per = super::super::socket::tcp_counters(s.as_raw_fd()).unwrap();
            assert_eq!(got[0].1.queued, per.queued, "{addr} after FIN");
            assert_eq!(got[0].1.queued, 7);
        }
    }

    #[test]
    fn diag_never_answers_for_another_socket() {
        let mut d = Diag::new();
        let (_c, s) = pair("127.0.0.1:0");
        let (_c2, s2) = pair("127.0.0.1:0");
        // The address pair of `s`, asked under the cookie of `s2`: no answer.
        let e = endpoints(s.as_raw_fd()).unwrap();
        let i = s.as_raw_fd() as usize;
        d.pairs.resize(i + 1, None);
        d.pairs[i] = Some((cookie(s2.as_raw_fd()), e));
        let got = d.counters(&[(s.as_raw_fd(), cookie(s2.as_raw_fd()))]).to_vec();
        assert!(got.is_empty(), "{got:?}");
    }
}
