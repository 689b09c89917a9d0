//! One registration's record (spec §4.1), split in two: the hot part every report and every
//! delivery touches ([`HotReg`], 32 bytes, two to a cache line: 10,000 registrations' hot
//! state is 313 KiB) and the cold part read only on slower paths ([`ColdReg`]). What most
//! registrations never have (TCP byte marks, entries awaiting an audit) lives in side tables
//! of the machine.

use super::kernel::{Interest, SocketKind, Token};
use crate::abi::{Events, Trigger};
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

// Bits of `HotReg::flags`.
/// The slot holds a registration (a free slot keeps only its generation).
const OCCUPIED: u8 = 1;
/// The registration's single packet is in the FIFO.
const QUEUED: u8 = 1 << 1;
/// ERR seen on a stream socket; kept until REMOVE or close.
const ERR_LATCHED: u8 = 1 << 2;
/// A closed stream socket was already checked for a failed connect.
const CLOSE_CHECKED: u8 = 1 << 3;
/// The socket kind is known (`Machine::kind`)...
const KIND_KNOWN: u8 = 1 << 4;
/// ... and it is a stream.
const KIND_STREAM: u8 = 1 << 5;
/// Whether the socket is TCP is known (first needed by an edge decision)...
const TCP_KNOWN: u8 = 1 << 6;
/// ... and it is.
const TCP: u8 = 1 << 7;

/// The hot part of one registration (spec §4.1): what a report, a delivery and a re-arm touch.
/// A free slot keeps its record, unoccupied, for its generation.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
pub(super) struct HotReg {
    pub key: usize,
    /// While a packet is queued: the epoch in which `published` was sampled (level packets
    /// are fresh in that epoch only). Once it is dequeued: the epoch of that dequeue (a report
    /// from a kernel wait that began before it may be older than it, `Machine::on_event`).
    pub sampled: u64,
    pub fd: RawFd,
    pub generation: u32,
    pub state: RegState,
    pub watch: Watch,
    pub trigger: Trigger,
    /// The filter's `Events` bits (every bit a notification can carry fits in a byte).
    filter: u8,
    /// Bits of the queued packet.
    published: u8,
    /// Edge baseline: the readiness last seen.
    prev: u8,
    flags: u8,
}

// Two to a cache line, and never across one (the alignment).
const _: () = assert!(std::mem::size_of::<HotReg>() == 32);
const _: () = assert!(Events::ALL.bits() <= 0xFF);

impl Default for HotReg {
    fn default() -> Self {
        HotReg::vacant()
    }
}

/// The cold part of one registration: read when the kernel is asked about its socket (which
/// costs a system call anyway) and by a level ENABLE.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ColdReg {
    pub cookie: u64,
    /// The epoch of the last level ENABLE: within it, the kernel has not yet reported the
    /// condition that ENABLE found (see `Machine::collect_enable_packet`).
    pub enabled_epoch: u64,
}

const _: () = assert!(std::mem::size_of::<ColdReg>() == 16);

fn byte(e: Events) -> u8 {
    debug_assert!(e.bits() <= 0xFF, "{e:?}");
    e.bits() as u8
}

impl HotReg {
    /// A free slot that never held a registration.
    pub fn vacant() -> HotReg {
        HotReg {
            key: 0,
            sampled: 0,
            fd: -1,
            generation: 0,
            state: RegState::Disabled,
            watch: Watch::Quiet,
            trigger: Trigger::LEVEL_PERSISTENT,
            filter: 0,
            published: 0,
            prev: 0,
            flags: 0,
        }
    }

    /// A new registration in this slot (whose generation was already advanced), disabled
    /// until its first ENABLE.
    pub fn occupy(&mut self, fd: RawFd, key: usize) {
        *self = HotReg { fd, key, generation: self.generation, flags: OCCUPIED, ..HotReg::vacant() };
    }

    /// Frees the slot; its generation stays.
    pub fn vacate(&mut self) {
        *self = HotReg { generation: self.generation, ..HotReg::vacant() };
    }

    #[inline]
    fn flag(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    #[inline]
    fn set_flag(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    /// The slot holds a registration.
    #[inline]
    pub fn occupied(&self) -> bool {
        self.flag(OCCUPIED)
    }

    /// The registration's single packet is in the FIFO.
    #[inline]
    pub fn queued(&self) -> bool {
        self.flag(QUEUED)
    }

    #[inline]
    pub fn set_queued(&mut self, on: bool) {
        self.set_flag(QUEUED, on);
    }

    /// ERR seen on a stream socket; kept until REMOVE or close.
    #[inline]
    pub fn err_latched(&self) -> bool {
        self.flag(ERR_LATCHED)
    }

    #[inline]
    pub fn set_err_latched(&mut self, on: bool) {
        self.set_flag(ERR_LATCHED, on);
    }

    /// A closed stream socket was already checked for a failed connect.
    #[inline]
    pub fn close_checked(&self) -> bool {
        self.flag(CLOSE_CHECKED)
    }

    #[inline]
    pub fn set_close_checked(&mut self) {
        self.set_flag(CLOSE_CHECKED, true);
    }

    /// `None` until the mapping of its readiness first depends on it (`Machine::kind`).
    #[inline]
    pub fn kind(&self) -> Option<SocketKind> {
        self.flag(KIND_KNOWN).then(|| SocketKind { stream: self.flag(KIND_STREAM) })
    }

    #[inline]
    pub fn set_kind(&mut self, k: SocketKind) {
        self.set_flag(KIND_KNOWN, true);
        self.set_flag(KIND_STREAM, k.stream);
    }

    /// TCP or not (`None` until first needed).
    #[inline]
    pub fn tcp(&self) -> Option<bool> {
        self.flag(TCP_KNOWN).then(|| self.flag(TCP))
    }

    #[inline]
    pub fn set_tcp(&mut self, tcp: bool) {
        self.set_flag(TCP_KNOWN, true);
        self.set_flag(TCP, tcp);
    }

    #[inline]
    pub fn filter(&self) -> Events {
        Events::from_bits(u32::from(self.filter))
    }

    #[inline]
    pub fn set_filter(&mut self, e: Events) {
        self.filter = byte(e);
    }

    /// Bits of the queued packet.
    #[inline]
    pub fn published(&self) -> Events {
        Events::from_bits(u32::from(self.published))
    }

    #[inline]
    pub fn set_published(&mut self, e: Events) {
        self.published = byte(e);
    }

    /// Edge baseline: the readiness last seen.
    #[inline]
    pub fn prev(&self) -> Events {
        Events::from_bits(u32::from(self.prev))
    }

    #[inline]
    pub fn set_prev(&mut self, e: Events) {
        self.prev = byte(e);
    }

    /// Bits that may be delivered: the filter, and ERR whatever the filter.
    #[inline]
    pub fn eligible(&self) -> Events {
        self.filter() | Events::ERR
    }

    /// The kernel's name for this registration in `slot`.
    #[inline]
    pub fn token(&self, slot: usize) -> Token {
        Token((u64::from(self.generation) << 32) | slot as u64)
    }

    /// What the kernel should report for this registration now. `user_rearm`: the port
    /// re-arms in user space (`closes_through_port`): one-shot watches stay armed in the
    /// kernel, and ENABLE/DISABLE change flags here only.
    #[inline]
    pub fn interest(&self, user_rearm: bool) -> Interest {
        match self.watch {
            Watch::Level | Watch::Fired => Interest::Level {
                read: self.filter().contains(Events::IN),
                write: self.filter().contains(Events::OUT),
                once: self.trigger.is_oneshot() && !user_rearm,
            },
            Watch::Edge => Interest::Edge,
            Watch::Quiet => Interest::Off,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_do_not_overlap() {
        let mut r = HotReg::vacant();
        r.occupy(3, 9);
        r.set_kind(SocketKind { stream: true });
        r.set_tcp(false);
        r.set_queued(true);
        assert!(r.occupied() && r.queued() && !r.err_latched() && !r.close_checked());
        assert_eq!((r.kind(), r.tcp()), (Some(SocketKind { stream: true }), Some(false)));
        r.set_err_latched(true);
        r.set_close_checked();
        r.set_queued(false);
        assert!(r.err_latched() && r.close_checked() && !r.queued());
        r.set_published(Events::ALL);
        r.set_prev(Events::IN | Events::ERR);
        r.set_filter(Events::FILTER_ALL);
        assert_eq!((r.published(), r.prev(), r.filter()), (Events::ALL, Events::IN | Events::ERR, Events::FILTER_ALL));
        r.generation = 7;
        r.vacate();
        assert_eq!((r.occupied(), r.generation, r.kind(), r.tcp()), (false, 7, None, None));
    }
}
