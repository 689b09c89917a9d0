//! The posting fast path: while nobody could be waiting for a packet, `post` takes no lock:
//! it claims the next slot of a ring of its own (the *inbox*) with one compare-and-swap and
//! fills it, as a producer of a lock-free bounded queue would, instead of taking the port
//! lock, harvesting and dispatching; and a plain dequeue takes such posts straight from the
//! ring, as that queue's consumer would.
//!
//! # The ring
//!
//! Dmitry Vyukov's bounded queue: each slot carries a sequence number that says whose turn
//! it is (free for the post at position `pos` while it is `pos`, filled once it is `pos + 1`,
//! free again for the post one lap later once taken: `pos + SLOTS`). A post claims position
//! `pos` by moving `tail` from `pos` to `pos + 1`, fills the slot and publishes it (a release
//! store of the sequence number: a plain store on x86, no locked instruction after the
//! packet's writes). Positions are taken in order from `head`, only under the port lock (one
//! taker at a time). The taker reads only the slots, never `tail`, in the common case: a
//! dequeue costs the posting thread one cache line that the dequeue read, not a lock's.
//!
//! # The protocol
//!
//! * The inbox holds posted packets not yet in the machine's FIFO, in post order; everything
//!   in the FIFO came before them. A plain dequeue (no entries) takes from the FIFO first and
//!   then from the inbox ([`Inner::deliver_posts`]): the packets go from the slots straight to
//!   the caller's array, with no lock but the port lock the dequeue holds anyway. Every other
//!   holder of the port lock moves the inbox to the FIFO when it takes the lock
//!   ([`Inner::take_posts`]), so that whatever it queues comes after every post made before,
//!   and every count or close sees them; it waits for posts that claimed a slot and have not
//!   filled it yet (a few instructions, as long as a mutex-protected queue's lock is held).
//! * `slow` (bit 0 of `tail`) says that posts must take the port lock (today's path: harvest
//!   kernel readiness first for FIFO order (T52), dispatch to a waiter, settle the pollable
//!   descriptor). It is set and cleared only under the port lock, and it is true whenever the
//!   port is closed or polled, has live registrations, or has a thread blocked in a dequeue
//!   that was not handed packets yet: every release of the port lock recomputes it
//!   ([`Inner::sync_posts`]). A post claims a slot only by a compare-and-swap from a `tail`
//!   without `slow`, so the thread that sets `slow` learns from the same atomic operation
//!   exactly which positions were claimed before: it takes them (waiting for their packets),
//!   and no later post enters the ring.
//! * A thread that will block sets `slow` when it finds the inbox empty (`deliver_posts`), or
//!   takes what was claimed when it sets it (`deliver_posts`, `sync_posts` before it sleeps;
//!   it then does not sleep but dispatches, and finds itself served). A post comes either
//!   before (the thread takes its packet) or after (it sees `slow` and hands its packet over
//!   under the port lock, waking the thread). No wake-up is lost (the loom models in
//!   `tests/loom.rs` check it).
//! * A full ring (the takers fell `SLOTS` posts behind) also sends a post to the port lock,
//!   which moves the ring to the FIFO first: the FIFO then holds the backlog beyond the ring.
//! * While `slow` is set nothing enters the inbox, so a lock holder that finds the cached
//!   `PortState::posts_slow` true knows the inbox is empty and skips it.

use super::inner::{Inner, PortState};
use super::sync::{backoff, AtomicU32, AtomicU64};
use crate::abi::{Completion, Error};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU32 as StdAtomicU32, AtomicU64 as StdAtomicU64, AtomicUsize};

/// Slots in the ring (a power of two). A dequeue that falls further behind sends posts to the
/// port lock, which moves the ring to the FIFO.
#[cfg(not(loom))]
const SLOTS: usize = 1024;
#[cfg(loom)]
const SLOTS: usize = 2;

/// Bit 0 of `tail`: posts take the port lock.
const SLOW: u64 = 1;

/// One posted packet's place in the ring (32 bytes: two per cache line). The packet's fields
/// are published by `seq` (release / acquire); they are atomics only so that no `unsafe` is
/// needed, and relaxed ones cost what plain loads and stores do. They are std's atomics even
/// under loom, which models the hand-off through `seq` and `tail` (modelling every field
/// would multiply the states explored for nothing the protocol decides).
struct Slot {
    /// Whose turn it is (see the module's comment), the position's low 32 bits.
    seq: AtomicU32,
    bytes: StdAtomicU32,
    key: AtomicUsize,
    overlapped: AtomicUsize,
    internal: AtomicUsize,
}

/// A value on cache lines of its own (two, for the adjacent-line prefetcher).
#[repr(align(128))]
struct Padded<T>(T);

/// The inbox: posts not yet moved to the machine's FIFO (see the module's protocol).
pub(super) struct PostBox {
    /// The next position a post claims, shifted left by one, with `SLOW` in bit 0.
    tail: Padded<AtomicU64>,
    /// The next position to take; used only under the port lock.
    head: Padded<StdAtomicU64>,
    slots: Box<[Slot]>,
}

impl Default for PostBox {
    fn default() -> PostBox {
        let slot = |i: usize| Slot {
            seq: AtomicU32::new(i as u32),
            bytes: StdAtomicU32::new(0),
            key: AtomicUsize::new(0),
            overlapped: AtomicUsize::new(0),
            internal: AtomicUsize::new(0),
        };
        PostBox {
            tail: Padded(AtomicU64::new(0)),
            head: Padded(StdAtomicU64::new(0)),
            slots: (0..SLOTS).map(slot).collect(),
        }
    }
}

impl PostBox {
    #[inline]
    fn slot(&self, pos: u64) -> &Slot {
        &self.slots[pos as usize % SLOTS]
    }

    /// Claims the next slot and fills it; false when posts must take the port lock (`slow`,
    /// or the ring is full).
    #[inline]
    fn push(&self, c: Completion) -> bool {
        let mut t = self.tail.0.load(SeqCst);
        let mut round = 0;
        loop {
            if t & SLOW != 0 {
                return false;
            }
            let pos = t >> 1;
            let slot = self.slot(pos);
            // Acquire: the taker's reads of the slot's previous packet came before.
            let lag = slot.seq.load(Acquire).wrapping_sub(pos as u32) as i32;
            if lag == 0 {
                match self.tail.0.compare_exchange_weak(t, t + 2, SeqCst, SeqCst) {
                    Ok(_) => {
                        slot.key.store(c.key(), Relaxed);
                        slot.overlapped.store(c.overlapped(), Relaxed);
                        slot.internal.store(c.internal(), Relaxed);
                        slot.bytes.store(c.bytes(), Relaxed);
                        slot.seq.store((pos as u32).wrapping_add(1), Release);
                        return true;
                    }
                    Err(now) => t = now,
                }
            } else if lag < 0 {
                return false; // still holds the packet of one lap before: full
            } else {
                // Another post claimed `pos` since `t` was read.
                backoff(&mut round);
                t = self.tail.0.load(SeqCst);
            }
        }
    }

    /// The packet at `pos` if its post filled the slot; the slot is then free for the next lap.
    #[inline]
    fn take(&self, pos: u64) -> Option<Completion> {
        let slot = self.slot(pos);
        // Acquire: the post's writes of the packet came before.
        if slot.seq.load(Acquire) != (pos as u32).wrapping_add(1) {
            return None;
        }
        let c = Completion::with_internal(
            slot.key.load(Relaxed),
            slot.bytes.load(Relaxed),
            slot.overlapped.load(Relaxed),
            slot.internal.load(Relaxed),
        );
        slot.seq.store((pos as u32).wrapping_add(SLOTS as u32), Release);
        Some(c)
    }

    /// Takes the filled packets at the head, in order, into `out` (as many as fit, up to the
    /// first slot not filled yet). Port lock held.
    #[inline]
    fn take_ready(&self, out: &mut [Completion]) -> usize {
        let head = self.head.0.load(Relaxed);
        let mut k = 0;
        while k < out.len() {
            match self.take(head + k as u64) {
                Some(c) => out[k] = c,
                None => break,
            }
            k += 1;
        }
        self.head.0.store(head + k as u64, Relaxed);
        k
    }

    /// Takes every position claimed before `tail` read `end` (waiting for posts that claimed
    /// theirs and have not filled it yet), in order, handing each packet to `each`; returns
    /// how many. Port lock held.
    fn take_until(&self, end: u64, mut each: impl FnMut(Completion)) -> u64 {
        let head = self.head.0.load(Relaxed);
        for pos in head..end {
            let mut round = 0;
            let c = loop {
                match self.take(pos) {
                    Some(c) => break c,
                    None => backoff(&mut round),
                }
            };
            each(c);
        }
        self.head.0.store(end, Relaxed);
        end - head
    }

    /// Sets `slow` (port lock held); returns the end of the positions claimed before.
    fn stop_fast_path(&self) -> u64 {
        self.tail.0.fetch_or(SLOW, SeqCst) >> 1
    }

    /// Clears `slow` (port lock held; the ring is empty).
    fn resume_fast_path(&self) {
        self.tail.0.fetch_and(!SLOW, SeqCst);
    }
}

impl Inner {
    /// Queues `packet` in the inbox when posts need not take the port lock; `None` when they
    /// must (the caller takes the slow path).
    #[inline]
    pub(super) fn try_post_fast(&self, packet: Completion) -> Option<Result<(), Error>> {
        self.posts.push(packet).then_some(Ok(()))
    }

    /// Moves the inbox's packets to the FIFO (call right after taking the port lock).
    #[inline]
    pub(super) fn take_posts(&self, st: &mut PortState) {
        if st.posts_slow {
            return; // the inbox was emptied when `slow` was set, and stays empty
        }
        let b = &self.posts;
        let end = b.tail.0.load(SeqCst) >> 1;
        if end != b.head.0.load(Relaxed) {
            let machine = &mut st.machine;
            st.counters.posted += b.take_until(end, |c| machine.queue_posted(c));
        }
    }

    /// Delivers posts from the inbox into `out` (as many as fit), straight from the slots.
    /// Only once the FIFO is empty (everything in it came before them). A thread that finds
    /// nothing and will block (`will_block`) sets `slow`, so that the next post hands its
    /// packet over and wakes it, as a consumer of a mutex-protected queue raises its "asleep"
    /// flag under the lock where it found the queue empty; posts that claimed a slot before it
    /// did are then waited for and delivered (those that do not fit go to the FIFO), and the
    /// thread does not block.
    #[inline]
    pub(super) fn deliver_posts(&self, st: &mut PortState, out: &mut [Completion], will_block: bool) -> usize {
        debug_assert_eq!(st.machine.queued(), 0);
        if st.posts_slow || out.is_empty() {
            return 0; // the inbox is empty while `slow` is set
        }
        let b = &self.posts;
        let mut k = b.take_ready(out);
        let mut taken = k as u64;
        if k == 0 && will_block {
            let end = b.stop_fast_path();
            st.posts_slow = true;
            let machine = &mut st.machine;
            taken = b.take_until(end, |c| match out.get_mut(k) {
                Some(o) => {
                    *o = c;
                    k += 1;
                }
                None => machine.queue_posted(c),
            });
            // (`slow` stays set until the port lock is released: `sync_posts` clears it
            // again unless this thread blocks.)
        }
        st.counters.posted += taken;
        st.counters.delivered += k as u64;
        k
    }

    /// Before the port lock is released: makes `slow` follow the port's state (see the
    /// module's protocol). True when it moved posts to the FIFO, which the caller then
    /// dispatches (a thread about to block must not sleep: it may be one to serve).
    #[inline]
    pub(super) fn sync_posts(&self, st: &mut PortState) -> bool {
        let slow = st.closed || st.polled || st.machine.live() > 0 || st.waiters.iter().any(|w| w.served.is_none());
        if slow == st.posts_slow {
            return false;
        }
        let b = &self.posts;
        let mut moved = false;
        if slow {
            let end = b.stop_fast_path();
            let (closed, machine) = (st.closed, &mut st.machine);
            // Posted before the close completed: discarded with the rest (D6).
            let n = b.take_until(end, |c| {
                if !closed {
                    machine.queue_posted(c);
                }
            });
            st.counters.posted += n;
            moved = n > 0 && !closed;
        } else {
            b.resume_fast_path();
        }
        st.posts_slow = slow;
        moved
    }
}
