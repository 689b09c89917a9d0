//! Floor 1, the pure state machine of a port: registrations, the packet FIFO, coalescing,
//! the trigger rules and delivery.
//!
//! No system calls happen here, and nothing here knows epoll. What the machine needs from the
//! kernel (watch a descriptor, sample its readiness, read TCP byte counters) it asks of a
//! [`Kernel`], in its own terms ([`Interest`], [`Token`], [`Readiness`]); what it needs from
//! the process-wide one-port-per-socket table it asks of [`Claims`]. The port supplies real
//! implementations; the unit tests (`tests.rs`) and the fuzz harness supply scripted ones.
//! Only the batch reservation ([`Machine::reserve`]) fails cleanly on out-of-memory; other
//! growth aborts as usual.
//!
//! It imports only the vocabulary (`crate::abi`).

mod kernel;
pub(crate) mod paged;
mod readiness;
mod record;
#[cfg(test)]
mod tests;

pub use kernel::{Claims, Interest, Kernel, Readiness, SocketKind, TcpCounters, Token};
pub use readiness::readiness;
pub use record::RegState;

use crate::abi::{Completion, Events, Operation, RegistrationError, Trigger};
use paged::{Slab, Sparse};
use record::{ColdReg, HotReg, Watch};
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// One FIFO entry: a posted packet, or a registration's notification (its slot in `key`, its
/// generation in `bytes`). 32 bytes, a `Completion`'s size: the kind rides in the padding, so
/// that a FIFO of posts moves no more memory than a queue of `Completion`s. Outside the
/// machine only posted packets can be made ([`Packet::posted`]).
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    key: usize,
    overlapped: usize,
    internal: usize,
    bytes: u32,
    notify: bool,
}

const _: () = assert!(std::mem::size_of::<Packet>() == 32);

impl Packet {
    /// A posted packet (D24: never interpreted).
    #[inline]
    pub fn posted(c: Completion) -> Packet {
        Packet { key: c.key(), overlapped: c.overlapped(), internal: c.internal(), bytes: c.bytes(), notify: false }
    }

    /// The packet [`posted`](Self::posted) made, as it was posted.
    #[inline]
    pub fn into_posted(self) -> Completion {
        debug_assert!(!self.notify, "only posted packets are kept apart from the machine");
        Completion::with_internal(self.key, self.bytes, self.overlapped, self.internal)
    }

    fn notify(slot: u32, generation: u32) -> Packet {
        Packet { key: slot as usize, overlapped: 0, internal: 0, bytes: generation, notify: true }
    }
}

/// Registration slots per page of the registration tables (2 KiB of hot records, 1 KiB of
/// cold ones).
const REG_PAGE: usize = 64;
/// Descriptors per page of the descriptor → slot table (1 KiB).
const FD_PAGE: usize = 256;
/// Slots per page of the side tables (TCP marks, entries awaiting an audit).
const SIDE_PAGE: usize = 64;

/// The registrations and packet queue of one port.
///
/// A registration lives in slot `s` of two parallel tables: `hot` (what reports and
/// deliveries touch) and `cold`. Both grow a page at a time (at most one page wasted, never
/// copied). A free slot keeps its hot record, unoccupied, for its generation; so does the
/// unused tail of the last page (generation 0).
#[derive(Debug, Default)]
pub struct Machine {
    hot: Slab<HotReg, REG_PAGE>,
    cold: Slab<ColdReg, REG_PAGE>,
    free: Vec<u32>,
    /// Descriptor → slot + 1 (0: none).
    by_fd: Sparse<u32, FD_PAGE>,
    /// TCP edge registrations: (total bytes received when IN was last seen high, total bytes
    /// acked when OUT was last seen high). Pages exist only where such registrations were.
    marks: Sparse<(u64, u64), SIDE_PAGE>,
    /// Entries applied without asking the kernel since the last audit: the first one's key
    /// and the last one's operation (what a new socket at this number would have been given).
    pending: Sparse<Option<(usize, Operation)>, SIDE_PAGE>,
    /// The latest epoch in which a level ENABLE was applied (no registration's
    /// `enabled_epoch` is later: the cold record need not be read when this one rules it out).
    last_enable: u64,
    fifo: VecDeque<Packet>,
    epoch: u64,
    live: usize,
    /// Re-arms in user space (the port option `closes_through_port`, issue 10's contract:
    /// every registered socket is closed through the port or REMOVEd first).
    user_rearm: bool,
    /// Registrations with entries applied since the last audit without asking the kernel
    /// (the `Some` entries of `pending`).
    unverified: usize,
    /// The registrations (slot, generation) that went unconfirmed, in order: each one is
    /// pushed when its `pending` entry goes from `None` to `Some`. Entries may be stale
    /// (confirmed since, or the slot reused); an audit skips those.
    backlog: Vec<(u32, u32)>,
    /// How many of `backlog` were there at the last audit: those have waited at least one
    /// audit interval, and the next audit checks them (the later ones wait for the one after).
    backlog_aged: usize,
    /// Stray reports (user-space re-arms): disabled registrations (slot, generation) the
    /// kernel reported once while their watch stayed armed, not quieted yet. Usually another
    /// thread holds the registration's packet and is about to re-arm it, which makes the
    /// quiet (and the re-arm's own kernel call after it) unnecessary; a second report
    /// quiets it (see [`quiet_strays`](Self::quiet_strays)).
    strays: Vec<(u32, u32)>,
    /// While reports from a kernel wait are applied: the epoch in which that wait began.
    reports_since: Option<u64>,
    /// The last entry applied was a re-arm in user space (no kernel call).
    last_in_user_space: bool,
}

/// What an [`audit`](Machine::audit) checks the registrations against.
#[derive(Clone, Copy, Debug)]
pub enum AuditBy<'a> {
    /// The kernel's watch list: every (descriptor, token) it watches for this port, sorted.
    /// One read for all registrations; also catches registrations no entry touched.
    WatchList(&'a [(RawFd, u64)]),
    /// The identity (`SO_COOKIE`) of each unconfirmed registration's descriptor: one question
    /// per unconfirmed registration, cheaper when they are few among many; also catches a
    /// closed socket whose number now names a `dup` of another.
    Identity,
}

/// How an applied entry learnt that its descriptor still names the registered socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// The kernel answered through the operation itself (`EPOLL_CTL_MOD` or `DEL`).
    Kernel,
    /// No kernel call was made (user-space re-arm): an audit confirms it later.
    Later,
}

/// A new registration's first state, before `apply_enable` or `apply_disable` runs.
struct NewReg {
    fd: RawFd,
    cookie: u64,
    key: usize,
}

/// A DISABLE, or an ENABLE that is level-triggered with valid flags: an entry whose kernel
/// interest is level or quiet, set by one call with nothing to sample after it.
fn level_or_quiet(op: Option<Operation>) -> bool {
    match op {
        Some(Operation::Disable) => true,
        Some(Operation::Enable { events, trigger }) => {
            trigger.is_valid() && !trigger.is_edge() && events.is_valid_filter()
        }
        _ => false,
    }
}

impl Machine {
    /// An empty machine.
    pub fn new() -> Machine {
        Machine::default()
    }

    /// Re-arm in user space: one-shot registrations stay armed in the kernel (disarmed there
    /// only when the kernel reports a disabled one), and an ENABLE or DISABLE that changes
    /// nothing the kernel watches makes no kernel call. The descriptor's identity is then not
    /// confirmed at each entry; [`audit`](Self::audit) confirms it later. Set before the first
    /// registration.
    pub fn set_user_rearm(&mut self, on: bool) {
        self.user_rearm = on;
    }

    /// True when the last entry applied was a re-arm in user space: it asked nothing of the
    /// kernel (so the port has nothing to collect for it either).
    pub fn last_in_user_space(&self) -> bool {
        self.last_in_user_space
    }

    /// True when re-arms happen in user space.
    pub fn user_rearm(&self) -> bool {
        self.user_rearm
    }

    /// True once any registration was ever made on this machine.
    pub fn ever_registered(&self) -> bool {
        self.hot.len() > 0
    }

    /// Registrations whose descriptor's identity an [`audit`](Self::audit) should confirm.
    pub fn unverified(&self) -> usize {
        self.unverified
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Reports applied from now on come from a kernel wait that began in epoch `began`
    /// (`None`: from a collection made under the port lock). A level registration re-armed
    /// since then may be reported from before its re-arm — possible when its kernel watch
    /// stays armed (user-space re-arms) — so its packet is sampled again when delivered.
    pub fn set_reports_since(&mut self, began: Option<u64>) {
        self.reports_since = began;
    }

    /// Starts a new epoch: level masks sampled before it are no longer fresh.
    pub fn new_epoch(&mut self) {
        self.epoch += 1;
    }

    /// Packets waiting in the FIFO.
    pub fn queued(&self) -> usize {
        self.fifo.len()
    }

    /// Registrations that may still produce packets from the kernel (Enabled or Disabled).
    pub fn live(&self) -> usize {
        self.live
    }

    /// Registrations in any state, zombies included.
    pub fn registrations(&self) -> usize {
        self.hot.len() - self.free.len()
    }

    /// Makes room for `regs` new registrations and `packets` more packets, or fails
    /// without changing anything (decision D4: out of memory → `WSAENOBUFS`).
    pub fn reserve(&mut self, regs: usize, packets: usize) -> Result<(), std::collections::TryReserveError> {
        // Free slots are taken first.
        let fresh = regs.saturating_sub(self.free.len());
        if fresh > 0 {
            self.hot.try_reserve(fresh)?;
            self.cold.try_reserve(fresh)?;
        }
        if self.fifo.capacity() - self.fifo.len() >= packets + regs {
            return Ok(());
        }
        self.fifo.try_reserve(packets + regs)
    }

    fn slot_of(&self, fd: RawFd) -> Option<usize> {
        let i = usize::try_from(fd).ok()?;
        match self.by_fd.get(i) {
            Some(&s) if s != 0 => Some(s as usize - 1),
            _ => None,
        }
    }

    fn set_fd(&mut self, fd: RawFd, slot: Option<usize>) {
        let Ok(i) = usize::try_from(fd) else { return };
        match slot {
            Some(s) => *self.by_fd.entry(i) = s as u32 + 1,
            None => {
                if let Some(e) = self.by_fd.get_mut(i) {
                    *e = 0;
                }
            }
        }
    }

    /// The kernel token of the registration `fd` names on this port, if any.
    pub fn token_of(&self, fd: RawFd) -> Option<Token> {
        self.slot_of(fd).map(|s| self.reg(s).token(s))
    }

    /// The hot record of the registration in `slot`.
    #[inline]
    fn reg(&self, slot: usize) -> &HotReg {
        let r = self.hot.get(slot).expect("live slot");
        debug_assert!(r.occupied(), "live slot");
        r
    }

    #[inline]
    fn reg_mut(&mut self, slot: usize) -> &mut HotReg {
        let r = self.hot.get_mut(slot).expect("live slot");
        debug_assert!(r.occupied(), "live slot");
        r
    }

    /// The cold record of the registration in `slot`.
    fn cold(&self, slot: usize) -> &ColdReg {
        self.cold.get(slot).expect("live slot")
    }

    /// Notes a level ENABLE of `slot` in `epoch` (the current one).
    fn set_enabled(&mut self, slot: usize, epoch: u64) {
        self.cold.get_mut(slot).expect("live slot").enabled_epoch = epoch;
        self.last_enable = epoch;
    }

    /// Takes the entry of `slot` awaiting an audit, if any (the kernel confirmed that its
    /// descriptor still names the registered socket, or the registration is gone). Its
    /// `backlog` entry goes stale.
    fn take_pending(&mut self, slot: usize) -> Option<(usize, Operation)> {
        if self.unverified == 0 {
            return None;
        }
        let p = self.pending.get_mut(slot)?.take();
        if p.is_some() {
            self.unverified -= 1;
        }
        p
    }

    /// True when applying `op` to `fd` would make the kernel forget readiness it noted but
    /// that was not collected yet: DISABLE, an ENABLE of an enabled registration that is or
    /// becomes edge-triggered, and with user-space re-arms a filter change or a REMOVE. The
    /// port then collects pending events before applying the batch.
    pub fn keeps_pending_packets(&self, fd: RawFd, op: Option<Operation>) -> bool {
        match op {
            Some(Operation::Disable) => true,
            Some(Operation::Enable { events, trigger }) => self.slot_of(fd).is_some_and(|s| {
                let r = self.reg(s);
                r.state == RegState::Enabled
                    && (r.trigger.is_edge()
                        || trigger.is_edge()
                        // With user-space re-arms an ENABLE that only changes flags collects
                        // nothing itself, so a level condition the kernel noted under the old
                        // filter is collected before the filter changes.
                        || (self.user_rearm && events != r.filter()))
            }),
            Some(Operation::Remove) => {
                self.user_rearm && self.slot_of(fd).is_some_and(|s| self.reg(s).state == RegState::Enabled)
            }
            _ => false,
        }
    }

    /// True when applying this entry touches the kernel only through one `modify` of an
    /// existing registration (a level ENABLE with valid flags, or a DISABLE), so that the
    /// `modify` may be carried later, with the wait, without reordering anything.
    pub fn deferrable(&self, fd: RawFd, op: Option<Operation>) -> bool {
        let Some(slot) = self.slot_of(fd) else { return false };
        let r = self.reg(slot);
        if !matches!(r.state, RegState::Enabled | RegState::Disabled) {
            return false;
        }
        level_or_quiet(op)
    }

    /// True when applying this entry creates a registration whose only kernel call is one
    /// `add` with a level or quiet interest (an ENABLE, level with valid flags, or a DISABLE,
    /// D11, of a descriptor this port has no registration for), so that the `add` may be made
    /// after the batch's other entries. (An edge registration samples its baseline after its
    /// `add`: it is not one of these.)
    pub fn adds(&self, fd: RawFd, op: Option<Operation>) -> bool {
        if self.slot_of(fd).is_some() {
            return false;
        }
        level_or_quiet(op)
    }

    /// True when applying this entry is a REMOVE whose only kernel call is one `delete` of a
    /// live registration, so that the `delete` may be made before the batch's other entries.
    pub fn deletes(&self, fd: RawFd, op: Option<Operation>) -> bool {
        op == Some(Operation::Remove)
            && self.slot_of(fd).is_some_and(|s| matches!(self.reg(s).state, RegState::Enabled | RegState::Disabled))
    }

    /// Applies one registration entry and returns its result (its `registrationResult`)
    /// (decisions D7–D15, spec §4.3). Checks run in the order the decisions give. `fd` is
    /// `None` for a value that cannot be a descriptor; `op` is `None` for an operation code
    /// that is not one of the four.
    pub fn apply(
        &mut self,
        fd: Option<RawFd>,
        key: usize,
        op: Option<Operation>,
        kernel: &mut impl Kernel,
        claims: &mut impl Claims,
    ) -> Result<(), RegistrationError> {
        self.last_in_user_space = false;
        let Some(op) = op else {
            return Err(RegistrationError::InvalidArgument);
        };
        if op == Operation::None {
            return Ok(());
        }
        let Some(fd) = fd.filter(|&fd| fd >= 0) else {
            return Err(RegistrationError::NotASocket);
        };
        let flags_ok = match op {
            Operation::Enable { events, trigger } => events.is_valid_filter() && trigger.is_valid(),
            _ => true,
        };

        // An existing registration on this port: make sure the descriptor still names its socket.
        let mut existing = self.slot_of(fd);
        if let Some(slot) = existing {
            let still_ours = match (self.reg(slot).state, flags_ok) {
                // The fast path: the kernel answers identity through the operation itself.
                (RegState::Enabled | RegState::Disabled, true) => None,
                _ => Some(kernel.cookie(fd) == Some(self.cold(slot).cookie)),
            };
            if still_ours == Some(false) {
                self.drop_silently(slot, claims);
                existing = None;
            }
        }
        let Some(slot) = existing else {
            return self.apply_new(fd, key, op, flags_ok, kernel, claims);
        };
        if !flags_ok {
            return Err(RegistrationError::InvalidArgument);
        }
        if self.reg(slot).state == RegState::RemovePending {
            return Err(RegistrationError::RemovePending);
        }
        self.collect_enable_packet(slot, kernel);
        let applied = match op {
            Operation::Enable { events, trigger } => self.enable(slot, events, trigger, kernel),
            Operation::Disable => self.disable(slot, kernel),
            _ => self.remove(slot, kernel).then_some(Checked::Kernel),
        };
        match applied {
            Some(Checked::Kernel) => {
                self.take_pending(slot);
                return Ok(());
            }
            Some(Checked::Later) => {
                self.last_in_user_space = true;
                let generation = self.reg(slot).generation;
                match self.pending.entry(slot) {
                    Some((_, last)) => *last = op,
                    e @ None => {
                        *e = Some((key, op));
                        if self.unverified == 0 {
                            // Every entry of the backlog was confirmed since: start afresh.
                            self.backlog.clear();
                            self.backlog_aged = 0;
                        }
                        self.unverified += 1;
                        self.backlog.push((slot as u32, generation));
                    }
                }
                return Ok(());
            }
            None => {}
        }
        // The descriptor no longer names the registered socket (closed, or its number reused):
        // forget the old registration silently (D21) and treat the entry as a new socket's.
        self.drop_silently(slot, claims);
        self.apply_new(fd, key, op, true, kernel, claims)
    }

    /// The entry names a descriptor this port has no (valid) registration for.
    #[allow(clippy::too_many_arguments)]
    fn apply_new(
        &mut self,
        fd: RawFd,
        key: usize,
        op: Operation,
        flags_ok: bool,
        kernel: &mut impl Kernel,
        claims: &mut impl Claims,
    ) -> Result<(), RegistrationError> {
        let cookie = kernel.identify(fd)?;
        if !flags_ok {
            return Err(RegistrationError::InvalidArgument);
        }
        if op == Operation::Remove {
            // Registered elsewhere or nowhere: this port has nothing to remove (D12).
            return if claims.claim(fd, cookie) {
                claims.release(fd, cookie);
                Err(RegistrationError::NotFound)
            } else {
                Err(RegistrationError::OtherPort)
            };
        }
        if !claims.claim(fd, cookie) {
            return Err(RegistrationError::OtherPort); // registered with another port (D13)
        }
        let slot = self.insert(NewReg { fd, cookie, key });
        // The kernel is given the final interest at once (one ADD, no ADD-then-MOD).
        let mut edge = false;
        if let Operation::Enable { events, trigger } = op {
            let epoch = self.epoch;
            let r = self.reg_mut(slot);
            r.set_filter(events);
            r.trigger = trigger;
            r.state = RegState::Enabled;
            edge = trigger.is_edge();
            if edge {
                r.watch = Watch::Edge;
            } else {
                r.watch = Watch::Level;
                self.set_enabled(slot, epoch);
            }
        }
        let token = self.reg(slot).token(slot);
        let interest = self.reg(slot).interest(self.user_rearm);
        // An ADD can meet an item the kernel still holds for the same socket (one whose
        // registration was dropped while the socket stayed open): take it over.
        if !kernel.add(fd, interest, token) && !kernel.modify(fd, interest, token) {
            self.free_slot(slot);
            claims.release(fd, cookie);
            // Closed by another thread since it was checked, or the kernel is out of memory.
            return Err(if kernel.cookie(fd) == Some(cookie) {
                RegistrationError::NoBuffers
            } else {
                RegistrationError::NotASocket
            });
        }
        if edge {
            // The edge baseline: what holds now gives no packet (T27). Sampled after the ADD, so
            // a change after the sample is reported by the kernel; a report of what the sample
            // already saw is no rise. The identity was learnt at the top of this entry: no
            // second cookie check.
            let Some(rev) = kernel.poll(fd) else {
                // Closed by another thread after the ADD: as if the close came first.
                self.free_slot(slot);
                claims.release(fd, cookie);
                return Err(RegistrationError::NotASocket);
            };
            self.edge_baseline(slot, rev, kernel);
        }
        Ok(())
    }

    fn insert(&mut self, n: NewReg) -> usize {
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.hot.push(HotReg::vacant());
                self.cold.push(ColdReg::default());
                self.hot.len() - 1
            }
        };
        let r = self.hot.get_mut(slot).expect("slot");
        debug_assert!(!r.occupied());
        r.generation = r.generation.wrapping_add(1);
        r.occupy(n.fd, n.key);
        *self.cold.get_mut(slot).expect("slot") = ColdReg { cookie: n.cookie, enabled_epoch: 0 };
        if let Some(m) = self.marks.get_mut(slot) {
            *m = (0, 0);
        }
        debug_assert!(!matches!(self.pending.get(slot), Some(Some(_))));
        self.set_fd(n.fd, Some(slot));
        self.live += 1;
        slot
    }

    fn free_slot(&mut self, slot: usize) {
        let r = self.reg_mut(slot);
        let (fd, state) = (r.fd, r.state);
        r.vacate();
        self.take_pending(slot);
        if self.slot_of(fd) == Some(slot) {
            self.set_fd(fd, None);
        }
        if matches!(state, RegState::Enabled | RegState::Disabled) {
            self.live -= 1;
        }
        self.free.push(slot as u32);
    }

    /// ENABLE (create-time or later): replace filter and trigger, re-evaluate (spec §4.2).
    /// `None` when the descriptor no longer names the registered socket.
    fn enable(&mut self, slot: usize, filter: Events, trigger: Trigger, kernel: &mut impl Kernel) -> Option<Checked> {
        let (epoch, user_rearm) = (self.epoch, self.user_rearm);
        let r = self.reg_mut(slot);
        let before = (r.watch, r.interest(user_rearm));
        r.set_filter(filter);
        r.trigger = trigger;
        r.state = RegState::Enabled;
        if trigger.is_edge() {
            // New baseline; no packet for what already holds (T27).
            r.watch = Watch::Edge;
            let fd = r.fd;
            let rev = kernel.sample(fd, self.cold(slot).cookie)?;
            self.edge_baseline(slot, rev, kernel);
        } else {
            r.watch = Watch::Level;
            let unchanged = user_rearm && before == (Watch::Level, r.interest(user_rearm));
            self.set_enabled(slot, epoch);
            if unchanged {
                // The kernel already watches exactly this: a re-arm in user space.
                return Some(Checked::Later);
            }
        }
        let r = self.reg(slot);
        kernel.modify(r.fd, r.interest(user_rearm), r.token(slot)).then_some(Checked::Kernel)
    }

    /// Windows queues a level registration's packet at ENABLE when its condition holds (spec
    /// §3.3 step 2, §4.2); socknotify leaves that to the kernel, which reports it when the
    /// port next collects readiness. An entry later in the same batch that stops the kernel
    /// from reporting it (DISABLE, REMOVE, a switch to EDGE) must not lose that packet: the
    /// condition is sampled now and queued as the ENABLE would have queued it, under the filter
    /// that ENABLE set: a later re-ENABLE with another filter does not take back a packet
    /// Windows had already queued (it coalesces into it; the level mask is still computed
    /// under the filter in force when the packet is dequeued, D17).
    fn collect_enable_packet(&mut self, slot: usize, kernel: &mut impl Kernel) {
        let r = self.reg(slot);
        if r.state != RegState::Enabled
            || r.trigger.is_edge()
            || self.last_enable != self.epoch
            || self.cold(slot).enabled_epoch != self.epoch
        {
            return;
        }
        let (fd, cookie) = (r.fd, self.cold(slot).cookie);
        let Some(rev) = kernel.sample(fd, cookie) else { return };
        let bits = self.sample_readiness(slot, rev, true, kernel) & self.reg(slot).eligible();
        let epoch = self.epoch;
        self.queue_bits(slot, bits, epoch);
    }

    /// Readiness of `slot` from `revents`. The first time a stream socket shows up closed in
    /// both directions without an error, the kernel is asked whether it ever connected: a
    /// failed connect whose error the application already read is still ERR (D19).
    fn sample_readiness(
        &mut self,
        slot: usize,
        revents: Readiness,
        verified: bool,
        kernel: &mut impl Kernel,
    ) -> Events {
        // Readable and writable map alike for every kind (and `err_latched` is only ever set
        // on a stream socket, whose kind is then known): the kind is learnt when it matters.
        let sensitive = Readiness::ERROR | Readiness::HANGUP | Readiness::READ_HANGUP;
        if revents & sensitive == Readiness::NONE {
            // The common case, one look at the record: no close to check, and no ERR to latch.
            let r = self.reg(slot);
            let mut err_latched = r.err_latched();
            return readiness(r.kind().unwrap_or(SocketKind { stream: false }), revents, &mut err_latched);
        }
        let kind = self.kind(slot, verified, kernel);
        let r = self.reg_mut(slot);
        let closed = Readiness::HANGUP | Readiness::READ_HANGUP;
        if kind.stream
            && !r.err_latched()
            && !r.close_checked()
            && revents.contains(closed)
            && !revents.contains(Readiness::ERROR)
        {
            r.set_close_checked();
            let fd = r.fd;
            if kernel.never_connected(fd) {
                self.reg_mut(slot).set_err_latched(true);
            }
        }
        let r = self.reg_mut(slot);
        let mut err_latched = r.err_latched();
        let s = readiness(kind, revents, &mut err_latched);
        r.set_err_latched(err_latched);
        s
    }

    /// The registration's socket kind, learnt from the kernel the first time it is needed.
    /// `verified`: the descriptor's identity was checked just before (a sample, or the entry
    /// that created the registration); otherwise it is checked after the kind is read, so that
    /// a report racing a close never gives the registration the kind of a socket that reuses
    /// its number. A descriptor that no longer names the socket is taken as a stream (whose
    /// mapping gives at least as many bits), without remembering it.
    fn kind(&mut self, slot: usize, verified: bool, kernel: &mut impl Kernel) -> SocketKind {
        let r = self.reg(slot);
        if let Some(k) = r.kind() {
            return k;
        }
        let (fd, cookie) = (r.fd, self.cold(slot).cookie);
        match kernel.kind(fd) {
            Some(k) if verified || kernel.cookie(fd) == Some(cookie) => {
                self.reg_mut(slot).set_kind(k);
                k
            }
            _ => SocketKind { stream: true },
        }
    }

    /// Takes `rev` as an edge registration's new baseline (no packet for what holds, T27),
    /// with the TCP byte counters seen with it.
    fn edge_baseline(&mut self, slot: usize, rev: Readiness, kernel: &mut impl Kernel) {
        let prev = self.sample_readiness(slot, rev, true, kernel);
        self.reg_mut(slot).set_prev(prev);
        let c = self.counters(slot, prev, true, kernel);
        self.mark(slot, c);
    }

    /// TCP byte counters for edge decisions, when IN or OUT is high on a TCP socket.
    fn counters(&mut self, slot: usize, high: Events, verified: bool, kernel: &mut impl Kernel) -> Option<TcpCounters> {
        if !high.intersects(Events::IN | Events::OUT) || self.reg(slot).tcp() == Some(false) {
            return None;
        }
        if !self.kind(slot, verified, kernel).stream {
            return None;
        }
        let fd = self.reg(slot).fd;
        let c = kernel.tcp_counters(fd);
        self.reg_mut(slot).set_tcp(c.is_some());
        // The peer's FIN takes one unit of sequence space, which Linux counts as a byte received.
        let fin = u64::from(high.contains(Events::HANGUP));
        c.map(|c| TcpCounters { received: c.received.saturating_sub(fin), ..c })
    }

    /// Remembers the counters seen with the readiness just recorded as the edge baseline.
    fn mark(&mut self, slot: usize, c: Option<TcpCounters>) {
        if let Some(c) = c {
            *self.marks.entry(slot) = (c.received, c.acked);
        }
    }

    /// DISABLE. `None` when the descriptor no longer names the registered socket. With
    /// user-space re-arms the kernel watch stays as it is until the kernel reports the
    /// disabled registration ([`on_event`](Self::on_event) quiets it then).
    fn disable(&mut self, slot: usize, kernel: &mut impl Kernel) -> Option<Checked> {
        let user_rearm = self.user_rearm;
        let r = self.reg_mut(slot);
        r.state = RegState::Disabled;
        if user_rearm {
            return Some(Checked::Later);
        }
        r.watch = Watch::Quiet;
        kernel.modify(r.fd, r.interest(user_rearm), r.token(slot)).then_some(Checked::Kernel)
    }

    /// REMOVE: the registration's last packet, coalesced into a queued one (spec §4.3).
    /// `false` when the descriptor no longer names the registered socket.
    fn remove(&mut self, slot: usize, kernel: &mut impl Kernel) -> bool {
        let epoch = self.epoch;
        if !kernel.delete(self.reg(slot).fd) {
            return false;
        }
        self.reg_mut(slot).state = RegState::RemovePending;
        self.live -= 1;
        self.queue_bits(slot, Events::REMOVE, epoch);
        true
    }

    /// Queues `bits` for `slot`: coalesces into its packet if one is queued (D16).
    fn queue_bits(&mut self, slot: usize, bits: Events, epoch: u64) {
        if bits.is_empty() {
            return;
        }
        let r = self.hot.get_mut(slot).expect("live slot");
        Self::queue_into(r, &mut self.fifo, slot, bits, epoch);
    }

    /// [`queue_bits`](Self::queue_bits) for a record already in hand.
    #[inline]
    fn queue_into(r: &mut HotReg, fifo: &mut VecDeque<Packet>, slot: usize, bits: Events, epoch: u64) {
        if bits.is_empty() {
            return;
        }
        debug_assert!(r.occupied(), "live slot");
        if r.queued() {
            if r.trigger.is_edge() || bits.contains(Events::REMOVE) || r.state != RegState::Enabled {
                r.set_published(r.published() | bits);
            } else {
                // A level packet carries the latest sample.
                r.set_published(bits | (r.published() & Events::REMOVE));
            }
            r.sampled = epoch;
            return;
        }
        r.set_queued(true);
        r.set_published(bits);
        r.sampled = epoch;
        fifo.push_back(Packet::notify(slot as u32, r.generation));
    }

    /// Drops a registration without a REMOVE packet (closed socket, D21; closed port, D6).
    /// A queued packet is still delivered with the bits it had.
    pub fn drop_silently(&mut self, slot: usize, claims: &mut impl Claims) {
        let r = self.reg(slot);
        let (fd, state, queued) = (r.fd, r.state, r.queued());
        if state != RegState::Closed {
            claims.release(fd, self.cold(slot).cookie);
        }
        if queued {
            if matches!(state, RegState::Enabled | RegState::Disabled) {
                self.live -= 1;
            }
            self.reg_mut(slot).state = RegState::Closed;
            self.take_pending(slot);
            if self.slot_of(fd) == Some(slot) {
                self.set_fd(fd, None);
            }
        } else {
            self.free_slot(slot);
        }
    }

    /// Drops the registration of `fd` silently, if this port has one (the C API's `closesocket`).
    pub fn forget_fd(&mut self, fd: RawFd, kernel: &mut impl Kernel, claims: &mut impl Claims) -> bool {
        let Some(slot) = self.slot_of(fd) else { return false };
        let r = self.reg(slot);
        if r.queued() && !r.trigger.is_edge() && r.state != RegState::RemovePending {
            // The socket is still open: a queued level packet leaves with the bits that hold
            // now, as if every change had been merged into it (D16, D21).
            let (fd, cookie) = (r.fd, self.cold(slot).cookie);
            if let Some(rev) = kernel.sample(fd, cookie) {
                let bits = self.sample_readiness(slot, rev, true, kernel) & self.reg(slot).eligible();
                if !bits.is_empty() {
                    self.reg_mut(slot).set_published(bits);
                }
            }
        }
        // The socket may stay open (a forget without a close): stop watching it.
        if self.reg(slot).state != RegState::RemovePending {
            kernel.delete(fd);
        }
        self.drop_silently(slot, claims);
        true
    }

    /// Drops every registration and packet (the port was closed, D6).
    pub fn clear(&mut self, claims: &mut impl Claims) {
        for (r, c) in self.hot.iter().zip(self.cold.iter()) {
            if r.occupied() && r.state != RegState::Closed {
                claims.release(r.fd, c.cookie);
            }
        }
        *self = Machine { epoch: self.epoch, user_rearm: self.user_rearm, ..Machine::default() };
    }

    /// With user-space re-arms: confirms that registrations' sockets are still the ones the
    /// kernel watches. A registration whose socket is gone lost it to a plain `close()`: it is
    /// dropped silently (D21), and if entries were applied to it since it was last confirmed
    /// without asking the kernel, they were meant for the socket that has the number now,
    /// which is registered with the first one's key and the last one's operation.
    ///
    /// [`AuditBy::WatchList`] checks every live registration and confirms every one that
    /// survives. [`AuditBy::Identity`] checks only the unconfirmed registrations that were
    /// already waiting at the previous audit (the aged part of the backlog); the others wait
    /// for the next audit, unless a kernel report confirms them first (see
    /// [`on_event`](Self::on_event)). So an audit every interval checks each entry between one
    /// and two intervals after it was applied, and an entry whose socket the kernel reports
    /// in between costs no check at all. Returns how many registrations were dropped.
    pub fn audit(&mut self, by: AuditBy<'_>, kernel: &mut impl Kernel, claims: &mut impl Claims) -> usize {
        let mut gone = Vec::new();
        let live = |r: &HotReg| r.occupied() && matches!(r.state, RegState::Enabled | RegState::Disabled);
        match by {
            AuditBy::WatchList(watched) => {
                for (slot, r) in self.hot.iter().enumerate() {
                    if live(r) && watched.binary_search(&(r.fd, r.token(slot).0)).is_err() {
                        let meant = if self.unverified > 0 { self.pending.get(slot).copied().flatten() } else { None };
                        gone.push((slot, r.fd, meant));
                    }
                }
                if self.unverified > 0 {
                    for p in self.pending.iter_mut() {
                        *p = None;
                    }
                }
                self.unverified = 0;
                self.backlog.clear();
                self.backlog_aged = 0;
            }
            AuditBy::Identity if self.unverified == 0 => {
                // Every entry in the backlog was confirmed since (or its slot freed).
                self.backlog.clear();
                self.backlog_aged = 0;
            }
            AuditBy::Identity => {
                let aged = self.backlog_aged.min(self.backlog.len());
                for i in 0..aged {
                    let slot = self.backlog[i].0 as usize;
                    if !self.still_meant(self.backlog[i]) {
                        continue; // the slot was freed or reused
                    }
                    let Some(meant) = self.take_pending(slot) else {
                        continue; // confirmed since
                    };
                    let r = self.reg(slot);
                    if live(r) && kernel.cookie(r.fd) != Some(self.cold(slot).cookie) {
                        gone.push((slot, r.fd, Some(meant)));
                    }
                }
                self.backlog.drain(..aged);
                self.backlog_aged = self.backlog.len();
            }
        }
        for &(slot, fd, meant) in &gone {
            self.replace_gone(slot, fd, meant, kernel, claims);
        }
        gone.len()
    }

    /// Drops a registration whose socket is gone (D21) and, if entries were applied to its
    /// number in user space since it was last confirmed (`meant`: the first one's key, the last
    /// one's operation), registers the socket that has the number now with them.
    fn replace_gone(
        &mut self,
        slot: usize,
        fd: RawFd,
        meant: Option<(usize, Operation)>,
        kernel: &mut impl Kernel,
        claims: &mut impl Claims,
    ) {
        self.drop_silently(slot, claims);
        if let Some((key, op)) = meant {
            // The entry's own result was success; what it meant is applied now.
            let _ = self.apply_new(fd, key, op, true, kernel, claims);
        }
    }

    /// The descriptors whose identity the next [`AuditBy::Identity`] audit asks for: those of
    /// the aged backlog's registrations still waiting for confirmation. The port may read
    /// them all at once beforehand (one io_uring round) and answer the audit's questions.
    pub fn audit_questions(&self) -> Vec<RawFd> {
        if self.unverified == 0 {
            return Vec::new();
        }
        let aged = self.backlog_aged.min(self.backlog.len());
        let mut fds: Vec<RawFd> = self.backlog[..aged]
            .iter()
            .filter(|&&entry| self.still_meant(entry))
            .map(|&(slot, _)| (slot as usize, self.reg(slot as usize)))
            .filter(|&(slot, r)| {
                matches!(r.state, RegState::Enabled | RegState::Disabled)
                    && self.pending.get(slot).copied().flatten().is_some()
            })
            .map(|(_, r)| r.fd)
            .collect();
        fds.sort_unstable();
        fds.dedup();
        fds
    }

    /// A backlog entry's slot still holds the registration the entry was made for.
    fn still_meant(&self, (slot, generation): (u32, u32)) -> bool {
        self.hot.get(slot as usize).is_some_and(|r| r.occupied() && r.generation == generation)
    }

    /// Queues a posted packet (D24: never interpreted).
    pub fn queue_posted(&mut self, c: Completion) {
        self.fifo.push_back(Packet::posted(c));
    }

    /// The socket (descriptor, cookie) whose TCP byte counters [`on_event`](Self::on_event)
    /// may ask for when it applies this report: an enabled edge registration of a socket
    /// already known to be TCP, reported readable, writable or hung up. The port reads the
    /// counters of all such reports of one kernel wait at once, before applying them.
    pub fn counters_wanted(&self, token: Token, revents: Readiness) -> Option<(RawFd, u64)> {
        let slot = (token.0 & 0xFFFF_FFFF) as usize;
        let generation = (token.0 >> 32) as u32;
        let r = self.hot.get(slot)?;
        let moved = Readiness::READ | Readiness::WRITE | Readiness::HANGUP | Readiness::READ_HANGUP;
        let wanted = r.occupied()
            && r.generation == generation
            && r.state == RegState::Enabled
            && r.trigger.is_edge()
            && r.tcp() == Some(true)
            && revents & moved != Readiness::NONE;
        wanted.then(|| (r.fd, self.cold(slot).cookie))
    }

    /// One epoll event for `token` with `revents`: apply the trigger rules (spec §4.2).
    pub fn on_event(&mut self, token: Token, revents: Readiness, kernel: &mut impl Kernel, claims: &mut impl Claims) {
        let slot = (token.0 & 0xFFFF_FFFF) as usize;
        let generation = (token.0 >> 32) as u32;
        let epoch = self.epoch;
        let reports_since = self.reports_since;
        let user_rearm = self.user_rearm;
        match self.hot.get_mut(slot) {
            Some(r) if r.occupied() && r.generation == generation && r.state == RegState::Enabled => {
                // A report from a wait that began after the registration's last ENABLE (or
                // from a collection made now) shows that the kernel still watches the socket
                // that ENABLE was applied to: a socket closed behind the port's back would
                // have left the watch list first. It confirms an entry applied in user space
                // as an audit would.
                if self.unverified > 0
                    && matches!(self.pending.get(slot), Some(Some(_)))
                    && !matches!(reports_since, Some(began) if self.cold(slot).enabled_epoch > began)
                {
                    self.take_pending(slot);
                }
            }
            Some(r)
                if user_rearm
                    && r.occupied()
                    && r.generation == generation
                    && r.state == RegState::Disabled
                    && r.watch != Watch::Quiet =>
            {
                // User-space re-arms: a disabled registration the kernel still watches was
                // reported. The first time, it is only noted: the port decides whether to
                // quiet it now or to give the thread that holds its packet a moment to re-arm
                // it. A second report quiets it (the next ENABLE arms it again).
                let id = (slot as u32, generation);
                if let Some(i) = self.strays.iter().position(|&s| s == id) {
                    self.strays.swap_remove(i);
                    self.quiet(slot, kernel);
                } else {
                    self.strays.push(id);
                }
                return;
            }
            _ => return,
        }
        let mut verified = false;
        if let Some(began) = reports_since {
            let r = self.reg(slot);
            if !r.queued() && r.sampled > began {
                // A packet of this registration was dequeued after the wait that made this
                // report began (by another thread, while this one waited in the kernel or for
                // the port lock): the report may be older than that dequeue, and than a plain
                // close() of the socket after it, which must give no second packet (D21: after
                // a close, at most the packet already queued comes out). So the report counts
                // only if the descriptor still names the socket (an edge registration would
                // otherwise take the report as a new edge: its counters cannot be read any
                // more); a closed socket's registration is dropped silently then (D21).
                let (fd, cookie) = (r.fd, self.cold(slot).cookie);
                if kernel.cookie(fd) != Some(cookie) {
                    // (With user-space re-arms, entries applied to the number since were meant
                    // for the socket that has it now, as an audit would find.)
                    let meant = self.take_pending(slot);
                    self.replace_gone(slot, fd, meant, kernel, claims);
                    return;
                }
                verified = true;
            }
        }
        let s = self.sample_readiness(slot, revents, verified, kernel);
        // The fields are borrowed one by one below: one look-up of the hot record.
        let r = self.hot.get_mut(slot).expect("live slot");
        let eligible = r.eligible();
        if r.trigger.is_edge() {
            let prev = r.prev();
            let mut rising = s & !prev & eligible;
            let still = s & prev & eligible & (Events::IN | Events::OUT);
            let fin_arrived = s.contains(Events::HANGUP) && !prev.contains(Events::HANGUP);
            r.set_prev(s);
            let c = self.counters(slot, s, verified, kernel);
            rising |= self.re_rise(slot, still, c, fin_arrived);
            self.mark(slot, c);
            self.queue_bits(slot, rising, epoch);
            return;
        }
        let mask = s & eligible;
        // Reported from before a re-arm made during the wait: not known fresh, so the level
        // mask is sampled again at delivery (sampled in no epoch). `last_enable` spares the
        // cold record when no level ENABLE came after the wait began.
        let epoch = match reports_since {
            Some(began)
                if self.last_enable > began && self.cold.get(slot).expect("live slot").enabled_epoch > began =>
            {
                0
            }
            _ => epoch,
        };
        match r.watch {
            Watch::Edge => {
                // A level registration parked on an edge watch: resume level watching once
                // something deliverable holds.
                if !mask.is_empty() {
                    r.watch = Watch::Level;
                    let (fd, interest, tok) = (r.fd, r.interest(user_rearm), r.token(slot));
                    Self::queue_into(r, &mut self.fifo, slot, mask, epoch);
                    kernel.modify(fd, interest, tok);
                }
            }
            _ => {
                if r.trigger.is_oneshot() && !user_rearm {
                    // EPOLLONESHOT disarmed the kernel watch. (With user-space re-arms the
                    // watch stays armed; delivery disables the registration here.)
                    r.watch = Watch::Fired;
                }
                if mask.is_empty() {
                    // Bits that map to nothing (a fresh socket's OUT|HUP): stop the level watch
                    // from reporting them again and again.
                    r.watch = Watch::Edge;
                    let (fd, interest, tok) = (r.fd, r.interest(user_rearm), r.token(slot));
                    kernel.modify(fd, interest, tok);
                } else {
                    Self::queue_into(r, &mut self.fifo, slot, mask, epoch);
                }
            }
        }
    }

    /// Quiets the kernel watch of a disabled registration (user-space re-arms).
    fn quiet(&mut self, slot: usize, kernel: &mut impl Kernel) {
        let user_rearm = self.user_rearm;
        let r = self.reg_mut(slot);
        r.watch = Watch::Quiet;
        let (fd, interest, tok) = (r.fd, r.interest(user_rearm), r.token(slot));
        if kernel.modify(fd, interest, tok) {
            // The kernel found the descriptor's watch: it still names the socket.
            self.take_pending(slot);
        }
    }

    /// True while a stray report (see `strays`) is still unresolved: its registration is
    /// disabled and its kernel watch armed, so a kernel wait would return it again at once.
    pub fn has_strays(&mut self) -> bool {
        let hot = &self.hot;
        self.strays.retain(|&(slot, generation)| {
            matches!(hot.get(slot as usize), Some(r) if r.occupied() && r.generation == generation
                && r.state == RegState::Disabled && r.watch != Watch::Quiet)
        });
        !self.strays.is_empty()
    }

    /// Quiets every unresolved stray report's kernel watch (one `EPOLL_CTL_MOD` each).
    pub fn quiet_strays(&mut self, kernel: &mut impl Kernel) {
        if !self.has_strays() {
            return;
        }
        for (slot, _) in std::mem::take(&mut self.strays) {
            self.quiet(slot as usize, kernel);
        }
    }

    /// Edge: bits that were high at the last wakeup and are high again. They rise again when
    /// socknotify cannot rule out that they fell in between (decision D18, guiding rule):
    /// on TCP the byte counters decide; elsewhere every wakeup counts as a new edge.
    fn re_rise(&self, slot: usize, still: Events, counters: Option<TcpCounters>, fin_arrived: bool) -> Events {
        if still.is_empty() {
            return still;
        }
        let Some(TcpCounters { received, queued, acked }) = counters else {
            return still;
        };
        let (in_mark, out_mark) = self.marks.get(slot).copied().unwrap_or((0, 0));
        let mut rise = Events::NONE;
        // IN fell if every byte seen last time has been read since; it rose again if new bytes
        // or the peer's FIN (end of file is readable) came after.
        if still.contains(Events::IN)
            && received.saturating_sub(queued) >= in_mark
            && (received > in_mark || fin_arrived)
        {
            rise |= Events::IN;
        }
        // OUT may have fallen and risen again only if bytes were acknowledged since.
        if still.contains(Events::OUT) && acked > out_mark {
            rise |= Events::OUT;
        }
        rise
    }

    /// Moves up to `out.len()` packets from the FIFO into `out`, applying delivery-time rules:
    /// level masks computed now (D17), ONESHOT disabling and REMOVE finalisation (D16).
    /// Returns how many entries were written.
    pub fn deliver(&mut self, out: &mut [Completion], kernel: &mut impl Kernel, claims: &mut impl Claims) -> usize {
        let mut n = 0;
        while n < out.len() {
            // Posted packets at the front go out as a run: no rule applies to them.
            let run = self.posted_run(&mut out[n..]);
            if run > 0 {
                n += run;
                continue;
            }
            let Some(p) = self.fifo.pop_front() else {
                break;
            };
            if let Some(c) = self.deliver_one(p, kernel, claims) {
                out[n] = c;
                n += 1;
            }
        }
        n
    }

    /// Copies the posted packets at the front of the FIFO (as many as fit in `out`, up to the
    /// first notification) and removes them; returns how many.
    fn posted_run(&mut self, out: &mut [Completion]) -> usize {
        let (front, _) = self.fifo.as_slices();
        let mut k = 0;
        for (o, p) in out.iter_mut().zip(front) {
            if p.notify {
                break;
            }
            *o = p.into_posted();
            k += 1;
        }
        if k > 0 {
            self.fifo.drain(..k);
        }
        k
    }

    fn deliver_one(&mut self, p: Packet, kernel: &mut impl Kernel, claims: &mut impl Claims) -> Option<Completion> {
        if !p.notify {
            return Some(Completion::with_internal(p.key, p.bytes, p.overlapped, p.internal));
        }
        let (slot, generation) = (p.key, p.bytes);
        let (epoch, user_rearm) = (self.epoch, self.user_rearm);
        let r = self.hot.get_mut(slot)?;
        if !r.occupied() || r.generation != generation {
            return None;
        }
        r.set_queued(false);
        // From now on `sampled` is the epoch of this dequeue (see `HotReg::sampled`).
        let sampled = std::mem::replace(&mut r.sampled, epoch);
        let key = r.key;
        if r.published().contains(Events::REMOVE) || r.state == RegState::Closed {
            let bits = r.published();
            let remove = r.state == RegState::RemovePending;
            let (fd, cookie) = (r.fd, self.cold(slot).cookie);
            self.free_slot(slot);
            if remove {
                claims.release(fd, cookie);
            }
            return Some(Completion::new(key, bits.bits(), 0));
        }
        let mut bits = r.published();
        let r = if !r.trigger.is_edge() && sampled != epoch {
            // Not sampled in this epoch: compute the level mask now (D17).
            let (fd, cookie) = (r.fd, self.cold(slot).cookie);
            match kernel.sample(fd, cookie) {
                Some(rev) => bits = self.sample_readiness(slot, rev, true, kernel) & self.reg(slot).eligible(),
                None => {
                    // Closed under us: deliver what was queued, then forget the registration (D21).
                    self.drop_silently(slot, claims);
                    return Some(Completion::new(key, bits.bits(), 0));
                }
            }
            self.reg_mut(slot)
        } else {
            if !r.trigger.is_edge() {
                // Sampled in this epoch, perhaps under a filter a later re-ENABLE replaced: a
                // level mask holds only what the filter in force asks for (D17).
                bits = bits & r.eligible();
            }
            r
        };
        if bits.is_empty() {
            // Stale level packet: dropped silently. A fired one-shot watch must be re-armed.
            if r.state == RegState::Enabled && r.watch == Watch::Fired {
                r.watch = Watch::Level;
                let (fd, interest, tok) = (r.fd, r.interest(user_rearm), r.token(slot));
                kernel.modify(fd, interest, tok);
            }
            return None;
        }
        if r.trigger.is_oneshot() && r.state == RegState::Enabled {
            r.state = RegState::Disabled;
            if r.watch == Watch::Level && !user_rearm {
                // Delivered from a non-kernel path while the kernel watch is still armed.
                r.watch = Watch::Quiet;
                let (fd, interest, tok) = (r.fd, r.interest(user_rearm), r.token(slot));
                kernel.modify(fd, interest, tok);
            }
        }
        Some(Completion::new(key, bits.bits(), 0))
    }
}
