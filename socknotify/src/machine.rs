//! The pure state machine of a port: registrations, the packet FIFO, coalescing and delivery.
//!
//! No system calls happen here. What the machine needs from the kernel (watch a descriptor,
//! sample its readiness, read TCP byte counters) it asks of a [`Kernel`], and what it needs
//! from the process-wide one-port-per-socket table it asks of [`Claims`]. The port supplies
//! real implementations; the fuzz harness (`fuzz/src/machine.rs`) supplies a scripted one and
//! checks every result against a reference model. Only the batch reservation
//! ([`Machine::reserve`]) fails cleanly on out-of-memory; other growth aborts as usual.
//!
//! Readiness comes from epoll bits (`revents`). [`readiness`] turns them into Windows' bits
//! (spec §5.4, decision D19).

use crate::error::RegistrationError;
use crate::events::{Events, Trigger};
use crate::sys::{EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLONESHOT, EPOLLOUT, EPOLLRDHUP};
use crate::types::Completion;
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// What a socket is, as far as the mapping of §5.4 cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketKind {
    /// Connection-oriented (TCP, Unix stream or seqpacket).
    pub stream: bool,
}

/// Windows readiness `S` of a socket from its epoll bits (spec §5.4, decision D19).
///
/// `err_latched` keeps ERR for a stream socket once it was seen (a reset or a failed
/// connect), because Linux forgets the error once the application reads it.
///
/// ```
/// use socknotify::machine::{readiness, SocketKind};
/// use socknotify::Events;
/// let stream = SocketKind { stream: true };
/// let mut latch = false;
/// // A fresh, never-connected TCP socket: Linux says OUT|HUP, Windows nothing.
/// assert_eq!(readiness(stream, 0x4 | 0x10, &mut latch), Events::NONE);
/// // Peer FIN: IN and HANGUP.
/// assert_eq!(readiness(stream, 0x1 | 0x2000 | 0x4, &mut latch), Events::IN | Events::OUT | Events::HANGUP);
/// // Failed connect: ERR, never OUT.
/// assert!(!readiness(stream, 0x1 | 0x4 | 0x8 | 0x10 | 0x2000, &mut latch).contains(Events::OUT));
/// assert!(latch);
/// ```
pub fn readiness(kind: SocketKind, revents: u32, err_latched: &mut bool) -> Events {
    let mut s = Events::NONE;
    if !kind.stream {
        if revents & EPOLLIN != 0 {
            s |= Events::IN;
        }
        if revents & EPOLLOUT != 0 {
            s |= Events::OUT;
        }
        if revents & EPOLLERR != 0 {
            s |= Events::ERR;
        }
        return s;
    }
    if revents & EPOLLERR != 0 {
        *err_latched = true;
    }
    let hup = revents & EPOLLHUP != 0;
    let rdhup = revents & EPOLLRDHUP != 0;
    if *err_latched {
        // Reset or failed connect: ERR, readable (recv fails at once), hung up; no OUT (D19).
        s |= Events::ERR;
        if hup || rdhup || revents & EPOLLIN != 0 {
            s |= Events::IN | Events::HANGUP;
        }
        return s;
    }
    if hup && !rdhup && revents & EPOLLIN == 0 {
        // Closed without any shutdown of the receive side: a fresh or never-connected socket.
        return s;
    }
    if revents & EPOLLIN != 0 || rdhup || hup {
        s |= Events::IN;
    }
    if revents & EPOLLOUT != 0 {
        s |= Events::OUT;
    }
    if rdhup || hup {
        s |= Events::HANGUP;
    }
    s
}

/// What the machine needs from the kernel. All methods may fail because the descriptor was
/// closed or now names another socket; they then report `false` / `None`.
pub trait Kernel {
    /// Identity and kind of a descriptor for a new registration.
    fn socket_info(&mut self, fd: RawFd) -> Result<(u64, SocketKind), RegistrationError>;
    /// The cookie of the socket a descriptor names now (`None`: not an open socket).
    fn cookie(&mut self, fd: RawFd) -> Option<u64>;
    /// Start watching `fd` with these epoll flags and this token.
    fn add(&mut self, fd: RawFd, flags: u32, token: u64) -> bool;
    /// Change the flags of a watched `fd`. `false`: `fd` is no longer the watched socket.
    fn modify(&mut self, fd: RawFd, flags: u32, token: u64) -> bool;
    /// Stop watching `fd`. `false`: `fd` is no longer the watched socket.
    fn delete(&mut self, fd: RawFd) -> bool;
    /// Readiness of `fd` now, as epoll bits, if it still names the socket with `cookie`.
    fn sample(&mut self, fd: RawFd, cookie: u64) -> Option<u32>;
    /// True for a TCP socket that is closed and never completed a connection (its connect
    /// failed), even when the error was already read by the application.
    fn never_connected(&mut self, fd: RawFd) -> bool;
    /// TCP byte counters `(received, queued, acked)`, or `None` for other sockets.
    fn tcp_counters(&mut self, fd: RawFd) -> Option<(u64, u64, u64)>;
}

/// The process-wide table that keeps a socket on one port at a time (decision D13).
pub trait Claims {
    /// Claims `fd` (whose socket has `cookie`) for this port. `false`: another port holds it.
    fn claim(&mut self, fd: RawFd, cookie: u64) -> bool;
    /// Gives up the claim on `fd`, if this port holds it for the socket with `cookie`.
    fn release(&mut self, fd: RawFd, cookie: u64);
}

/// A registration's state (spec §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
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
enum Watch {
    /// Level-triggered (with `EPOLLONESHOT` for one-shot registrations).
    Level,
    /// A one-shot level watch that fired: the kernel disabled it.
    Fired,
    /// Edge-triggered: used by edge registrations, and by level registrations whose socket
    /// reports bits that map to nothing (a fresh TCP socket says OUT|HUP forever).
    Edge,
    /// Quiet: a disabled registration.
    Quiet,
}

/// One registration (spec §4.1).
#[derive(Clone, Debug)]
struct Reg {
    fd: RawFd,
    cookie: u64,
    kind: SocketKind,
    key: usize,
    filter: Events,
    trigger: Trigger,
    state: State,
    watch: Watch,
    generation: u32,
    /// The registration's single packet is in the FIFO.
    queued: bool,
    /// Bits of the queued packet.
    published: Events,
    /// The epoch in which `published` was sampled (level packets are fresh in that epoch only).
    sampled: u64,
    /// Edge baseline: the readiness last seen.
    prev: Events,
    /// ERR seen on a stream socket; kept until REMOVE or close.
    err_latched: bool,
    /// A closed stream socket was already checked for a failed connect.
    close_checked: bool,
    /// TCP only (`None` until first needed).
    tcp: Option<bool>,
    /// TCP edge IN: total bytes received when IN was last seen high.
    in_mark: u64,
    /// TCP edge OUT: total bytes acked when OUT was last seen high.
    out_mark: u64,
    /// The epoch of the last level ENABLE: within it, the kernel has not yet reported the
    /// condition that ENABLE found (see [`Machine::collect_enable_packet`]).
    enabled_epoch: u64,
}

impl Reg {
    fn eligible(&self) -> Events {
        self.filter | Events::ERR
    }
    fn token(&self, slot: usize) -> u64 {
        (u64::from(self.generation) << 32) | slot as u64
    }
    fn flags(&self) -> u32 {
        let mut f = EPOLLRDHUP;
        if self.filter.contains(Events::IN) {
            f |= EPOLLIN;
        }
        if self.filter.contains(Events::OUT) {
            f |= EPOLLOUT;
        }
        match self.watch {
            Watch::Level | Watch::Fired if self.trigger.is_oneshot() => f | EPOLLONESHOT,
            Watch::Level | Watch::Fired => f,
            Watch::Edge => f | EPOLLIN | EPOLLOUT | EPOLLET,
            Watch::Quiet => EPOLLET | EPOLLONESHOT,
        }
    }
}

/// One FIFO entry.
#[derive(Clone, Copy, Debug)]
enum Packet {
    Posted(Completion),
    Notify { slot: u32, generation: u32 },
}

/// The token of the port's own wake-up descriptor in its epoll set.
pub const WAKE_TOKEN: u64 = u64::MAX;

/// The registrations and packet queue of one port.
#[derive(Debug, Default)]
pub struct Machine {
    regs: Vec<Option<Reg>>,
    free: Vec<u32>,
    generations: Vec<u32>,
    by_fd: Vec<u32>,
    fifo: VecDeque<Packet>,
    epoch: u64,
    live: usize,
}

/// A new registration's first state, before `apply_enable` or `apply_disable` runs.
struct NewReg {
    fd: RawFd,
    cookie: u64,
    kind: SocketKind,
    key: usize,
}

impl Machine {
    /// An empty machine.
    pub fn new() -> Machine {
        Machine::default()
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
        self.regs.iter().filter(|r| r.is_some()).count()
    }

    /// Makes room for `regs` new registrations and `packets` more packets, or fails
    /// without changing anything (decision D4: out of memory → `WSAENOBUFS`).
    pub fn reserve(&mut self, regs: usize, packets: usize) -> Result<(), std::collections::TryReserveError> {
        self.regs.try_reserve(regs)?;
        self.generations.try_reserve(regs)?;
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
        if i >= self.by_fd.len() {
            if slot.is_none() {
                return;
            }
            self.by_fd.resize((i + 1).next_power_of_two(), 0);
        }
        self.by_fd[i] = slot.map_or(0, |s| s as u32 + 1);
    }

    /// The kernel token of the registration `fd` names on this port, if any.
    pub fn token_of(&self, fd: RawFd) -> Option<u64> {
        self.slot_of(fd).map(|s| self.reg(s).token(s))
    }

    fn reg(&self, slot: usize) -> &Reg {
        self.regs[slot].as_ref().expect("live slot")
    }

    fn reg_mut(&mut self, slot: usize) -> &mut Reg {
        self.regs[slot].as_mut().expect("live slot")
    }

    /// True when applying `op` to `fd` would make the kernel forget readiness it noted but
    /// that was not collected yet: DISABLE, or ENABLE of an existing edge registration. The
    /// port then collects pending events before applying the batch.
    pub fn keeps_pending_packets(&self, fd: RawFd, op: u8) -> bool {
        use crate::winsock::{SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE};
        match op {
            SOCK_NOTIFY_OP_DISABLE => true,
            SOCK_NOTIFY_OP_ENABLE => {
                self.slot_of(fd).is_some_and(|s| self.reg(s).trigger.is_edge() && self.reg(s).state == State::Enabled)
            }
            _ => false,
        }
    }

    /// True when applying this entry touches the kernel only through one `modify` of an
    /// existing registration (a level ENABLE with valid flags, or a DISABLE), so that the
    /// `modify` may be carried later, with the wait, without reordering anything.
    pub fn deferrable(&self, fd: RawFd, op: u8, filter: u16, trigger: u8) -> bool {
        use crate::winsock::{SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE};
        let Some(slot) = self.slot_of(fd) else { return false };
        let r = self.reg(slot);
        if !matches!(r.state, State::Enabled | State::Disabled) {
            return false;
        }
        let trigger = Trigger::from_bits(trigger);
        match op {
            SOCK_NOTIFY_OP_DISABLE => true,
            SOCK_NOTIFY_OP_ENABLE => {
                trigger.is_valid() && !trigger.is_edge() && Events::from_bits(u32::from(filter)).is_valid_filter()
            }
            _ => false,
        }
    }

    /// Applies one registration entry and returns its result (its `registrationResult`)
    /// (decisions D7–D15, spec §4.3). Checks run in the order decisions.md gives.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        fd: RawFd,
        fd_valid: bool,
        key: usize,
        op: u8,
        filter: u16,
        trigger: u8,
        kernel: &mut impl Kernel,
        claims: &mut impl Claims,
    ) -> Result<(), RegistrationError> {
        use crate::winsock::{
            SOCK_NOTIFY_OP_DISABLE, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_NONE, SOCK_NOTIFY_OP_REMOVE,
        };
        match op {
            SOCK_NOTIFY_OP_NONE => return Ok(()),
            SOCK_NOTIFY_OP_ENABLE | SOCK_NOTIFY_OP_DISABLE | SOCK_NOTIFY_OP_REMOVE => {}
            _ => return Err(RegistrationError::InvalidArgument),
        }
        if !fd_valid || fd < 0 {
            return Err(RegistrationError::NotASocket);
        }
        let flags_ok = op != SOCK_NOTIFY_OP_ENABLE
            || (Events::from_bits(u32::from(filter)).is_valid_filter() && Trigger::from_bits(trigger).is_valid());

        // An existing registration on this port: make sure the descriptor still names its socket.
        let mut existing = self.slot_of(fd);
        if let Some(slot) = existing {
            let r = self.reg(slot);
            let still_ours = match (r.state, flags_ok) {
                // The fast path: the kernel answers identity through the operation itself.
                (State::Enabled | State::Disabled, true) => None,
                _ => Some(kernel.cookie(fd) == Some(r.cookie)),
            };
            if still_ours == Some(false) {
                self.drop_silently(slot, claims);
                existing = None;
            }
        }
        let Some(slot) = existing else {
            return self.apply_new(fd, key, op, flags_ok, filter, trigger, kernel, claims);
        };
        if !flags_ok {
            return Err(RegistrationError::InvalidArgument);
        }
        if self.reg(slot).state == State::RemovePending {
            return Err(RegistrationError::RemovePending);
        }
        if op != SOCK_NOTIFY_OP_ENABLE || Trigger::from_bits(trigger).is_edge() {
            self.collect_enable_packet(slot, kernel);
        }
        match op {
            SOCK_NOTIFY_OP_ENABLE => {
                if self.enable(slot, Events::from_bits(u32::from(filter)), Trigger::from_bits(trigger), kernel) {
                    return Ok(());
                }
            }
            SOCK_NOTIFY_OP_DISABLE => {
                if self.disable(slot, kernel) {
                    return Ok(());
                }
            }
            _ => {
                if self.remove(slot, kernel) {
                    return Ok(());
                }
            }
        }
        // The descriptor no longer names the registered socket (closed, or its number reused):
        // forget the old registration silently (D21) and treat the entry as a new socket's.
        self.drop_silently(slot, claims);
        self.apply_new(fd, key, op, true, filter, trigger, kernel, claims)
    }

    /// The entry names a descriptor this port has no (valid) registration for.
    #[allow(clippy::too_many_arguments)]
    fn apply_new(
        &mut self,
        fd: RawFd,
        key: usize,
        op: u8,
        flags_ok: bool,
        filter: u16,
        trigger: u8,
        kernel: &mut impl Kernel,
        claims: &mut impl Claims,
    ) -> Result<(), RegistrationError> {
        use crate::winsock::{SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_OP_REMOVE};
        let (cookie, kind) = kernel.socket_info(fd)?;
        if !flags_ok {
            return Err(RegistrationError::InvalidArgument);
        }
        if op == SOCK_NOTIFY_OP_REMOVE {
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
        let slot = self.insert(NewReg { fd, cookie, kind, key });
        let token = self.reg(slot).token(slot);
        let flags = self.reg(slot).flags();
        // An ADD can meet an item this epoll instance still holds for the same socket (one
        // whose registration was dropped while the socket stayed open): take it over.
        if !kernel.add(fd, flags, token) && !kernel.modify(fd, flags, token) {
            self.free_slot(slot);
            claims.release(fd, cookie);
            // Closed by another thread since it was checked, or the kernel is out of memory.
            return Err(if kernel.cookie(fd) == Some(cookie) {
                RegistrationError::NoBuffers
            } else {
                RegistrationError::NotASocket
            });
        }
        if op == SOCK_NOTIFY_OP_ENABLE
            && !self.enable(slot, Events::from_bits(u32::from(filter)), Trigger::from_bits(trigger), kernel)
        {
            // Closed by another thread between the ADD and the ENABLE: as if the close came first.
            self.free_slot(slot);
            claims.release(fd, cookie);
            return Err(RegistrationError::NotASocket);
        }
        Ok(())
    }

    fn insert(&mut self, n: NewReg) -> usize {
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.regs.push(None);
                self.generations.push(0);
                self.regs.len() - 1
            }
        };
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        self.regs[slot] = Some(Reg {
            fd: n.fd,
            cookie: n.cookie,
            kind: n.kind,
            key: n.key,
            filter: Events::NONE,
            trigger: Trigger::LEVEL_PERSISTENT,
            state: State::Disabled,
            watch: Watch::Quiet,
            generation: self.generations[slot],
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
        });
        self.set_fd(n.fd, Some(slot));
        self.live += 1;
        slot
    }

    fn free_slot(&mut self, slot: usize) {
        let r = self.regs[slot].take().expect("live slot");
        if self.slot_of(r.fd) == Some(slot) {
            self.set_fd(r.fd, None);
        }
        if matches!(r.state, State::Enabled | State::Disabled) {
            self.live -= 1;
        }
        self.free.push(slot as u32);
    }

    /// ENABLE (create-time or later): replace filter and trigger, re-evaluate (spec §4.2).
    /// `false` when the descriptor no longer names the registered socket.
    fn enable(&mut self, slot: usize, filter: Events, trigger: Trigger, kernel: &mut impl Kernel) -> bool {
        let epoch = self.epoch;
        let r = self.reg_mut(slot);
        r.filter = filter;
        r.trigger = trigger;
        r.state = State::Enabled;
        if trigger.is_edge() {
            // New baseline; no packet for what already holds (T27).
            let (fd, cookie) = (r.fd, r.cookie);
            let Some(rev) = kernel.sample(fd, cookie) else {
                return false;
            };
            let prev = self.sample_readiness(slot, rev, kernel);
            let r = self.reg_mut(slot);
            r.prev = prev;
            r.watch = Watch::Edge;
            let prev = r.prev;
            let c = self.counters(slot, prev, kernel);
            self.mark(slot, c);
        } else {
            r.watch = Watch::Level;
            r.enabled_epoch = epoch;
        }
        let r = self.reg(slot);
        kernel.modify(r.fd, r.flags(), r.token(slot))
    }

    /// Windows queues a level registration's packet at ENABLE when its condition holds (spec
    /// §3.3 step 2, §4.2); socknotify leaves that to the kernel, which reports it when the
    /// port next collects readiness. An entry later in the same batch that stops the kernel
    /// from reporting it (DISABLE, REMOVE, a switch to EDGE) must not lose that packet: the
    /// condition is sampled now and queued as the ENABLE would have queued it.
    fn collect_enable_packet(&mut self, slot: usize, kernel: &mut impl Kernel) {
        let r = self.reg(slot);
        if r.state != State::Enabled || r.trigger.is_edge() || r.enabled_epoch != self.epoch {
            return;
        }
        let (fd, cookie) = (r.fd, r.cookie);
        let Some(rev) = kernel.sample(fd, cookie) else { return };
        let bits = self.sample_readiness(slot, rev, kernel) & self.reg(slot).eligible();
        let epoch = self.epoch;
        self.post(slot, bits, epoch);
    }

    /// Readiness of `slot` from `revents`. The first time a stream socket shows up closed in
    /// both directions without an error, the kernel is asked whether it ever connected: a
    /// failed connect whose error the application already read is still ERR (D19).
    fn sample_readiness(&mut self, slot: usize, revents: u32, kernel: &mut impl Kernel) -> Events {
        let r = self.reg_mut(slot);
        let closed = EPOLLHUP | EPOLLRDHUP;
        if r.kind.stream && !r.err_latched && !r.close_checked && revents & closed == closed && revents & EPOLLERR == 0
        {
            r.close_checked = true;
            let fd = r.fd;
            if kernel.never_connected(fd) {
                self.reg_mut(slot).err_latched = true;
            }
        }
        let r = self.reg_mut(slot);
        readiness(r.kind, revents, &mut r.err_latched)
    }

    /// TCP byte counters for edge decisions, when IN or OUT is high on a TCP socket.
    fn counters(&mut self, slot: usize, high: Events, kernel: &mut impl Kernel) -> Option<(u64, u64, u64)> {
        let r = self.reg(slot);
        if !r.kind.stream || !high.intersects(Events::IN | Events::OUT) || r.tcp == Some(false) {
            return None;
        }
        let fd = r.fd;
        let c = kernel.tcp_counters(fd);
        self.reg_mut(slot).tcp = Some(c.is_some());
        // The peer's FIN takes one unit of sequence space, which Linux counts as a byte received.
        let fin = u64::from(high.contains(Events::HANGUP));
        c.map(|(received, queued, acked)| (received.saturating_sub(fin), queued, acked))
    }

    /// Remembers the counters seen with the readiness just recorded as the edge baseline.
    fn mark(&mut self, slot: usize, c: Option<(u64, u64, u64)>) {
        if let Some((received, _, acked)) = c {
            let r = self.reg_mut(slot);
            r.in_mark = received;
            r.out_mark = acked;
        }
    }

    /// DISABLE. `false` when the descriptor no longer names the registered socket.
    fn disable(&mut self, slot: usize, kernel: &mut impl Kernel) -> bool {
        let r = self.reg_mut(slot);
        r.state = State::Disabled;
        r.watch = Watch::Quiet;
        let r = self.reg(slot);
        kernel.modify(r.fd, r.flags(), r.token(slot))
    }

    /// REMOVE: the registration's last packet, coalesced into a queued one (spec §4.3).
    /// `false` when the descriptor no longer names the registered socket.
    fn remove(&mut self, slot: usize, kernel: &mut impl Kernel) -> bool {
        let epoch = self.epoch;
        if !kernel.delete(self.reg(slot).fd) {
            return false;
        }
        self.reg_mut(slot).state = State::RemovePending;
        self.live -= 1;
        self.post(slot, Events::REMOVE, epoch);
        true
    }

    /// Queues `bits` for `slot`: coalesces into its packet if one is queued (D16).
    fn post(&mut self, slot: usize, bits: Events, epoch: u64) {
        if bits.is_empty() {
            return;
        }
        let r = self.reg_mut(slot);
        if r.queued {
            if r.trigger.is_edge() || bits.contains(Events::REMOVE) || r.state != State::Enabled {
                r.published |= bits;
            } else {
                // A level packet carries the latest sample.
                r.published = bits | (r.published & Events::REMOVE);
            }
            r.sampled = epoch;
            return;
        }
        r.queued = true;
        r.published = bits;
        r.sampled = epoch;
        let generation = r.generation;
        self.fifo.push_back(Packet::Notify { slot: slot as u32, generation });
    }

    /// Drops a registration without a REMOVE packet (closed socket, D21; closed port, D6).
    /// A queued packet is still delivered with the bits it had.
    pub fn drop_silently(&mut self, slot: usize, claims: &mut impl Claims) {
        let r = self.reg(slot);
        let (fd, cookie, state, queued) = (r.fd, r.cookie, r.state, r.queued);
        if state != State::Closed {
            claims.release(fd, cookie);
        }
        if queued {
            if matches!(state, State::Enabled | State::Disabled) {
                self.live -= 1;
            }
            let r = self.reg_mut(slot);
            r.state = State::Closed;
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
        if r.queued && !r.trigger.is_edge() && r.state != State::RemovePending {
            // The socket is still open: a queued level packet leaves with the bits that hold
            // now, as if every change had been merged into it (D16, D21).
            let (fd, cookie) = (r.fd, r.cookie);
            if let Some(rev) = kernel.sample(fd, cookie) {
                let bits = self.sample_readiness(slot, rev, kernel) & self.reg(slot).eligible();
                if !bits.is_empty() {
                    self.reg_mut(slot).published = bits;
                }
            }
        }
        // The socket may stay open (a forget without a close): stop watching it.
        if self.reg(slot).state != State::RemovePending {
            kernel.delete(fd);
        }
        self.drop_silently(slot, claims);
        true
    }

    /// Drops every registration and packet (the port was closed, D6).
    pub fn clear(&mut self, claims: &mut impl Claims) {
        for r in self.regs.iter().flatten() {
            if r.state != State::Closed {
                claims.release(r.fd, r.cookie);
            }
        }
        *self = Machine { epoch: self.epoch, ..Machine::default() };
    }

    /// Queues a posted packet (D24: never interpreted).
    pub fn push_posted(&mut self, c: Completion) {
        self.fifo.push_back(Packet::Posted(c));
    }

    /// One epoll event for `token` with `revents`: apply the trigger rules (spec §4.2).
    pub fn on_event(&mut self, token: u64, revents: u32, kernel: &mut impl Kernel) {
        let slot = (token & 0xFFFF_FFFF) as usize;
        let generation = (token >> 32) as u32;
        let epoch = self.epoch;
        match self.regs.get(slot) {
            Some(Some(r)) if r.generation == generation && r.state == State::Enabled => {}
            _ => return,
        }
        let s = self.sample_readiness(slot, revents, kernel);
        let r = self.reg_mut(slot);
        let eligible = r.eligible();
        if r.trigger.is_edge() {
            let mut rising = s & !r.prev & eligible;
            let still = s & r.prev & eligible & (Events::IN | Events::OUT);
            let fin_arrived = s.contains(Events::HANGUP) && !r.prev.contains(Events::HANGUP);
            r.prev = s;
            let c = self.counters(slot, s, kernel);
            rising |= self.re_rise(slot, still, c, fin_arrived);
            self.mark(slot, c);
            self.post(slot, rising, epoch);
            return;
        }
        let mask = s & eligible;
        match r.watch {
            Watch::Edge => {
                // A level registration parked on an edge watch: resume level watching once
                // something deliverable holds.
                if !mask.is_empty() {
                    r.watch = Watch::Level;
                    let (fd, flags, tok) = (r.fd, r.flags(), r.token(slot));
                    self.post(slot, mask, epoch);
                    kernel.modify(fd, flags, tok);
                }
            }
            _ => {
                if r.trigger.is_oneshot() {
                    r.watch = Watch::Fired;
                }
                if mask.is_empty() {
                    // Bits that map to nothing (a fresh socket's OUT|HUP): stop the level watch
                    // from reporting them again and again.
                    r.watch = Watch::Edge;
                    let (fd, flags, tok) = (r.fd, r.flags(), r.token(slot));
                    kernel.modify(fd, flags, tok);
                } else {
                    self.post(slot, mask, epoch);
                }
            }
        }
    }

    /// Edge: bits that were high at the last wakeup and are high again. They rise again when
    /// socknotify cannot rule out that they fell in between (decision D18, guiding rule):
    /// on TCP the byte counters decide; elsewhere every wakeup counts as a new edge.
    fn re_rise(&self, slot: usize, still: Events, counters: Option<(u64, u64, u64)>, fin_arrived: bool) -> Events {
        if still.is_empty() {
            return still;
        }
        let r = self.reg(slot);
        let Some((received, queued, acked)) = counters else {
            return still;
        };
        let mut rise = Events::NONE;
        // IN fell if every byte seen last time has been read since; it rose again if new bytes
        // or the peer's FIN (end of file is readable) came after.
        if still.contains(Events::IN)
            && received.saturating_sub(queued) >= r.in_mark
            && (received > r.in_mark || fin_arrived)
        {
            rise |= Events::IN;
        }
        // OUT may have fallen and risen again only if bytes were acknowledged since.
        if still.contains(Events::OUT) && acked > r.out_mark {
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

    fn deliver_one(&mut self, p: Packet, kernel: &mut impl Kernel, claims: &mut impl Claims) -> Option<Completion> {
        let (slot, generation) = match p {
            Packet::Posted(c) => return Some(c),
            Packet::Notify { slot, generation } => (slot as usize, generation),
        };
        let epoch = self.epoch;
        let r = self.regs.get_mut(slot)?.as_mut()?;
        if r.generation != generation {
            return None;
        }
        r.queued = false;
        let key = r.key;
        if r.published.contains(Events::REMOVE) || r.state == State::Closed {
            let bits = r.published;
            let remove = r.state == State::RemovePending;
            let (fd, cookie) = (r.fd, r.cookie);
            self.free_slot(slot);
            if remove {
                claims.release(fd, cookie);
            }
            return Some(Completion::new(key, bits.bits(), 0));
        }
        let mut bits = r.published;
        if !r.trigger.is_edge() && r.sampled != epoch {
            // Not sampled in this epoch: compute the level mask now (D17).
            let (fd, cookie) = (r.fd, r.cookie);
            match kernel.sample(fd, cookie) {
                Some(rev) => bits = self.sample_readiness(slot, rev, kernel) & self.reg(slot).eligible(),
                None => {
                    // Closed under us: deliver what was queued, then forget the registration (D21).
                    self.drop_silently(slot, claims);
                    return Some(Completion::new(key, bits.bits(), 0));
                }
            }
        }
        let r = self.reg_mut(slot);
        if bits.is_empty() {
            // Stale level packet: dropped silently. A fired one-shot watch must be re-armed.
            if r.state == State::Enabled && r.watch == Watch::Fired {
                r.watch = Watch::Level;
                let (fd, flags, tok) = (r.fd, r.flags(), r.token(slot));
                kernel.modify(fd, flags, tok);
            }
            return None;
        }
        if r.trigger.is_oneshot() && r.state == State::Enabled {
            r.state = State::Disabled;
            if r.watch == Watch::Level {
                // Delivered from a non-kernel path while the kernel watch is still armed.
                r.watch = Watch::Quiet;
                let (fd, flags, tok) = (r.fd, r.flags(), r.token(slot));
                kernel.modify(fd, flags, tok);
            }
        }
        Some(Completion::new(key, bits.bits(), 0))
    }
}
