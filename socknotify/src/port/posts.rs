//! The posting fast path: while nobody could be waiting for a packet, `post` takes only a
//! small lock of its own and appends to a queue of posts (the *inbox*), as a mutex-protected
//! queue would, instead of taking the port lock, harvesting and dispatching; and a plain
//! dequeue takes such posts straight from the inbox, as that queue's consumer would.
//!
//! # The protocol
//!
//! * The inbox holds posted packets not yet in the machine's FIFO, in post order; everything
//!   in the FIFO came before them. A plain dequeue (no entries) takes from the FIFO first and
//!   then from the inbox ([`Inner::deliver_posts`]). Every other holder of the port lock moves
//!   the inbox to the FIFO when it takes the lock ([`Inner::take_posts`]), so that whatever it
//!   queues comes after every post made before, and every count or close sees them.
//! * `slow` says that posts must take the port lock (today's path: harvest kernel readiness
//!   first for FIFO order (T52), dispatch to a waiter, settle the pollable descriptor). It is
//!   written only under both locks, and it is true whenever the port is closed or polled, has
//!   live registrations, or has a thread blocked in a dequeue that was not handed packets yet:
//!   every release of the port lock recomputes it ([`Inner::sync_posts`]).
//! * A thread that will block sets `slow` in the same inbox critical section in which it
//!   finds the inbox empty (`deliver_posts`), or in which it moves what the inbox holds to the
//!   FIFO (`sync_posts`, before it sleeps; it then does not sleep but dispatches, and finds
//!   itself served). A post comes either before (the thread takes its packet) or after (it
//!   sees `slow` and hands its packet over under the port lock, waking the thread). No wake-up
//!   is lost (the loom models in `tests/loom.rs` check it).
//! * While `slow` is true nothing enters the inbox, so a lock holder that finds the cached
//!   `PortState::posts_slow` true knows the inbox is empty and skips its lock.

use super::inner::{Inner, PortState};
use super::sync::{lock, Mutex, MutexGuard};
use crate::abi::{Completion, Error};
use crate::machine::Packet;
use std::collections::VecDeque;

/// Posts not yet moved to the machine's FIFO (see the module's protocol).
#[derive(Default)]
pub(super) struct Inbox {
    q: VecDeque<Packet>,
    /// Posts take the port lock.
    slow: bool,
}

/// The inbox on cache lines of its own: the producer side touches nothing else of the port.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct PostBox(Mutex<Inbox>);

impl PostBox {
    /// Takes the inbox lock. Every holder keeps it for a few instructions (a push, a check, or
    /// a move of what was posted since the last one), so a thread that finds it held tries
    /// again a few times before it waits: a waiter marks the lock contended, and then every
    /// unlock of the other side costs a system call (`futex` wake), which is what a producer
    /// and a consumer taking turns at a plain mutex spend most of their time on.
    #[inline]
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        #[cfg(not(loom))]
        for _ in 0..64 {
            if let Some(g) = super::sync::try_lock(&self.0) {
                return g;
            }
            std::hint::spin_loop();
        }
        lock(&self.0)
    }
}

impl Inner {
    /// Queues `packet` in the inbox when posts need not take the port lock; `None` when they
    /// must (the caller takes the slow path).
    #[inline]
    pub(super) fn try_post_fast(&self, packet: Completion) -> Option<Result<(), Error>> {
        let mut b = self.posts.lock();
        if b.slow {
            return None;
        }
        if b.q.len() == b.q.capacity() && b.q.try_reserve(1).is_err() {
            return Some(Err(Error::NoBuffers));
        }
        b.q.push_back(Packet::posted(packet));
        Some(Ok(()))
    }

    /// Moves the inbox's packets to the FIFO (call right after taking the port lock): a swap
    /// of buffers when the FIFO is empty, the usual case, else a copy, under the inbox lock.
    /// (Swapping lets a consumer that falls behind grow two buffers to the backlog's size
    /// instead of one; in exchange a dequeue holds the inbox lock for a few instructions.)
    #[inline]
    pub(super) fn take_posts(&self, st: &mut PortState) {
        if st.posts_slow {
            return; // the inbox was emptied when `slow` was set, and stays empty
        }
        let mut b = self.posts.lock();
        if !b.q.is_empty() {
            st.counters.posted += b.q.len() as u64;
            st.machine.take_posts(&mut b.q);
        }
    }

    /// Delivers posts from the inbox into `out` (as many as fit). Only once the FIFO is empty
    /// (everything in it came before them): the inbox's buffer then becomes the FIFO's, in
    /// one swap under the inbox lock (the producers go on into the FIFO's old, empty buffer),
    /// and the packets are copied out after the inbox lock is released; what does not fit
    /// stays queued, and the next dequeues take it from the FIFO without the inbox lock. A
    /// thread that finds nothing and will block (`will_block`) turns the fast path off in the
    /// same critical section, so that the next post hands its packet over and wakes it, as a
    /// consumer of a mutex-protected queue raises its "asleep" flag under the lock where it
    /// found the queue empty.
    #[inline]
    pub(super) fn deliver_posts(&self, st: &mut PortState, out: &mut [Completion], will_block: bool) -> usize {
        debug_assert_eq!(st.machine.queued(), 0);
        if st.posts_slow || out.is_empty() {
            return 0; // the inbox is empty while `slow` is set
        }
        let mut b = self.posts.lock();
        let taken = b.q.len();
        if taken > 0 {
            st.machine.take_posts(&mut b.q);
        } else if will_block {
            b.slow = true;
            st.posts_slow = true;
        }
        drop(b);
        if taken == 0 {
            return 0;
        }
        let k = st.machine.deliver_posted(out);
        st.counters.posted += taken as u64;
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
        let mut b = self.posts.lock();
        let mut moved = false;
        if slow && !b.q.is_empty() {
            st.counters.posted += b.q.len() as u64;
            if st.closed {
                b.q.clear(); // posted before the close completed: discarded with the rest (D6)
            } else {
                st.machine.take_posts(&mut b.q);
                moved = true;
            }
        }
        b.slow = slow;
        st.posts_slow = slow;
        moved
    }
}
