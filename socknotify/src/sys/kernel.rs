//! The adapter between the machine and the kernel: [`SysKernel`] implements the machine's
//! [`Kernel`] trait on the port's epoll instance and the socket probes.

use super::epoll::{epoll_add, epoll_del, epoll_mod, flags};
use super::socket::{poll_now, socket_cookie, socket_kind, tcp_counters, tcp_never_connected};
use super::uring::Mod;
use crate::abi::RegistrationError;
use crate::machine::{Interest, Kernel, Readiness, SocketKind, TcpCounters, Token};
use std::os::fd::{OwnedFd, RawFd};

/// What the kernel already answered, in one io_uring round: for a batch of entries, before
/// they are applied, the identity of the descriptors that have no registration yet and the
/// outcome of the REMOVEs' `EPOLL_CTL_DEL`s; for an audit, right before it, the identity of
/// the descriptors it checks. Each list is sorted by descriptor.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    /// `(descriptor, cookie)` of each descriptor that named a socket when probed.
    pub cookies: Vec<(RawFd, u64)>,
    /// `(descriptor, the DEL applied)`.
    pub deleted: Vec<(RawFd, bool)>,
}

impl Answers {
    /// The identities a round read for `probes` (its `cookies`, in the same order), without
    /// the descriptors that did not name a socket.
    pub(crate) fn identities(probes: &[RawFd], cookies: Vec<Option<u64>>) -> Answers {
        let cookies = probes.iter().zip(cookies).filter_map(|(&fd, c)| Some((fd, c?))).collect();
        Answers { cookies, deleted: Vec::new() }
    }

    fn cookie(&self, fd: RawFd) -> Option<u64> {
        let i = self.cookies.binary_search_by_key(&fd, |&(f, _)| f).ok()?;
        Some(self.cookies[i].1)
    }

    fn deleted(&self, fd: RawFd) -> Option<bool> {
        let i = self.deleted.binary_search_by_key(&fd, |&(f, _)| f).ok()?;
        Some(self.deleted[i].1)
    }
}

static NO_ANSWERS: Answers = Answers { cookies: Vec::new(), deleted: Vec::new() };

/// The kernel as the machine sees it: one port's epoll instance and the socket probes.
pub(crate) struct SysKernel<'a> {
    epfd: &'a OwnedFd,
    /// When set, `modify`s, and the `add` of a new registration, are collected here (tagged
    /// with `tag`) instead of being made at once: they go to the kernel in one io_uring call,
    /// after the batch (or, for `modify`s, with the wait).
    defer: Option<(&'a mut Vec<Mod>, u64)>,
    /// Answers read before the batch was applied (identities and DELs).
    answers: &'a Answers,
    /// Identities read just now, for `cookie` (an audit's questions). Kept apart from
    /// `answers`: a batch's `cookie` questions come after its own operations and must see the
    /// kernel as it is then (a close since the probe).
    identities: &'a Answers,
    /// TCP counters already read for this batch of reports (see [`Diag`](super::Diag)).
    counters: &'a [(RawFd, TcpCounters)],
    /// Where the next `counters` lookup starts (they are asked for in report order).
    cursor: usize,
}

impl<'a> SysKernel<'a> {
    /// The kernel of the port whose epoll instance is `epfd`.
    pub(crate) fn new(epfd: &'a OwnedFd) -> Self {
        SysKernel { epfd, defer: None, answers: &NO_ANSWERS, identities: &NO_ANSWERS, counters: &[], cursor: 0 }
    }

    /// This kernel, answering `identify` and `delete` from `answers` where they hold the
    /// descriptor.
    pub(crate) fn with_answers(self, answers: &'a Answers) -> Self {
        SysKernel { answers, ..self }
    }

    /// This kernel, answering `cookie` from `identities` (read just before) where they hold
    /// the descriptor.
    pub(crate) fn with_identities(self, identities: &'a Answers) -> Self {
        SysKernel { identities, ..self }
    }

    /// This kernel, answering `tcp_counters` from `counters` (read for the reports being
    /// applied) where they hold the descriptor.
    pub(crate) fn with_counters(self, counters: &'a [(RawFd, TcpCounters)]) -> Self {
        SysKernel { counters, ..self }
    }

    /// A kernel whose `modify`s and `add`s are collected into `pending`, tagged with `tag`.
    pub(crate) fn deferring(epfd: &'a OwnedFd, pending: &'a mut Vec<Mod>, tag: u64) -> Self {
        SysKernel {
            epfd,
            defer: Some((pending, tag)),
            answers: &NO_ANSWERS,
            identities: &NO_ANSWERS,
            counters: &[],
            cursor: 0,
        }
    }
}

impl Kernel for SysKernel<'_> {
    fn identify(&mut self, fd: RawFd) -> Result<u64, RegistrationError> {
        if let Some(cookie) = self.answers.cookie(fd) {
            return Ok(cookie);
        }
        socket_cookie(fd).map_err(|_| RegistrationError::NotASocket)
    }
    fn kind(&mut self, fd: RawFd) -> Option<SocketKind> {
        socket_kind(fd)
    }
    fn cookie(&mut self, fd: RawFd) -> Option<u64> {
        self.identities.cookie(fd).or_else(|| socket_cookie(fd).ok())
    }
    fn add(&mut self, fd: RawFd, interest: Interest, token: Token) -> bool {
        match &mut self.defer {
            Some((pending, tag)) => {
                let op = libc::EPOLL_CTL_ADD;
                pending.push(Mod { op, fd, flags: flags(interest), token: token.0, tag: *tag });
                true
            }
            None => epoll_add(self.epfd, fd, flags(interest), token.0).is_ok(),
        }
    }
    fn modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> bool {
        match &mut self.defer {
            Some((pending, tag)) => {
                let op = libc::EPOLL_CTL_MOD;
                pending.push(Mod { op, fd, flags: flags(interest), token: token.0, tag: *tag });
                true
            }
            None => epoll_mod(self.epfd, fd, flags(interest), token.0).is_ok(),
        }
    }
    fn delete(&mut self, fd: RawFd) -> bool {
        if let Some(done) = self.answers.deleted(fd) {
            return done;
        }
        epoll_del(self.epfd, fd).is_ok()
    }
    fn sample(&mut self, fd: RawFd, cookie: u64) -> Option<Readiness> {
        let now = poll_now(fd)?;
        (socket_cookie(fd).ok()? == cookie).then_some(now)
    }
    fn poll(&mut self, fd: RawFd) -> Option<Readiness> {
        poll_now(fd)
    }
    fn never_connected(&mut self, fd: RawFd) -> bool {
        tcp_never_connected(fd)
    }
    fn tcp_counters(&mut self, fd: RawFd) -> Option<TcpCounters> {
        let n = self.counters.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.counters[i].0 == fd {
                self.cursor = i + 1;
                return Some(self.counters[i].1);
            }
        }
        tcp_counters(fd)
    }
}
