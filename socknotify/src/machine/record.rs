//! One registration's record (spec §4.1) and how the kernel should watch its socket.

use super::kernel::{Interest, SocketKind, Token};
use crate::abi::{Events, Operation, Trigger};
use std::os::fd::RawFd;

/// A registration's state (spec §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegState {
    /// Notifications are queued.
    Enabled,
    /// No notification is queued; a packet already queued is still delivered.
    Disabled,
    /// REMOVE was accepted; its packet has not been dequeued.
    RemovePending,
    /// The socket was closed; the registration lives only until its queued packet is dequeued.
    Closed,
}

/// How the kernel watches a registration's socket right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Watch {
    /// Level-triggered (disarmed after one report for one-shot registrations).
    Level,
    /// A one-shot level watch that fired: the kernel disarmed it.
    Fired,
    /// Every change: used by edge registrations, and by level registrations whose socket
    /// reports bits that map to nothing (a fresh TCP socket is writable and hung up forever).
    Edge,
    /// Quiet: a disabled registration.
    Quiet,
}

/// One registration (spec §4.1).
#[derive(Clone, Debug)]
pub(super) struct Reg {
    pub fd: RawFd,
    pub cookie: u64,
    /// `None` until the mapping of its readiness first depends on it (`Machine::kind`).
    pub kind: Option<SocketKind>,
    pub key: usize,
    pub filter: Events,
    pub trigger: Trigger,
    pub state: RegState,
    pub watch: Watch,
    pub generation: u32,
    /// The registration's single packet is in the FIFO.
    pub queued: bool,
    /// Bits of the queued packet.
    pub published: Events,
    /// The epoch in which `published` was sampled (level packets are fresh in that epoch only).
    pub sampled: u64,
    /// Edge baseline: the readiness last seen.
    pub prev: Events,
    /// ERR seen on a stream socket; kept until REMOVE or close.
    pub err_latched: bool,
    /// A closed stream socket was already checked for a failed connect.
    pub close_checked: bool,
    /// TCP only (`None` until first needed).
    pub tcp: Option<bool>,
    /// TCP edge IN: total bytes received when IN was last seen high.
    pub in_mark: u64,
    /// TCP edge OUT: total bytes acked when OUT was last seen high.
    pub out_mark: u64,
    /// The epoch of the last level ENABLE: within it, the kernel has not yet reported the
    /// condition that ENABLE found (see `Machine::collect_enable_packet`).
    pub enabled_epoch: u64,
    /// The port re-arms in user space (`closes_through_port`): one-shot watches stay armed in
    /// the kernel, and ENABLE/DISABLE change flags here only.
    pub user_rearm: bool,
    /// Entries applied without asking the kernel since the last audit: the first one's key
    /// and the last one's operation (what a new socket at this number would have been given).
    pub unverified: Option<(usize, Operation)>,
}

impl Reg {
    /// A new registration, disabled until its first ENABLE.
    pub fn new(fd: RawFd, cookie: u64, key: usize, generation: u32, user_rearm: bool) -> Reg {
        Reg {
            fd,
            cookie,
            kind: None,
            key,
            filter: Events::NONE,
            trigger: Trigger::LEVEL_PERSISTENT,
            state: RegState::Disabled,
            watch: Watch::Quiet,
            generation,
            queued: false,
            published: Events::NONE,
            sampled: 0,
            prev: Events::NONE,
            err_latched: false,
            close_checked: false,
            tcp: None,
            in_mark: 0,
            out_mark: 0,
            enabled_epoch: 0,
            user_rearm,
            unverified: None,
        }
    }

    /// Bits that may be delivered: the filter, and ERR whatever the filter.
    pub fn eligible(&self) -> Events {
        self.filter | Events::ERR
    }

    /// The kernel's name for this registration in `slot`.
    pub fn token(&self, slot: usize) -> Token {
        Token((u64::from(self.generation) << 32) | slot as u64)
    }

    /// What the kernel should report for this registration now.
    pub fn interest(&self) -> Interest {
        match self.watch {
            Watch::Level | Watch::Fired => Interest::Level {
                read: self.filter.contains(Events::IN),
                write: self.filter.contains(Events::OUT),
                once: self.trigger.is_oneshot() && !self.user_rearm,
            },
            Watch::Edge => Interest::Edge,
            Watch::Quiet => Interest::Off,
        }
    }
}
