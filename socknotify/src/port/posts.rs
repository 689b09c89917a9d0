//! The posting fast path: while nobody could be waiting for a packet, `post` takes only a
//! small lock of its own and appends to a queue of posts (the *inbox*), as a mutex-protected
//! queue would, instead of taking the port lock, harvesting and dispatching.
//!
//! # The protocol
//!
//! * The inbox holds posted packets not yet in the machine's FIFO, in post order. Whoever
//!   takes the port lock moves them to the FIFO first ([`Inner::take_posts`]), so that
//!   everything queued under the port lock comes after every post made before it, and every
//!   dequeue, count or close sees them.
//! * `slow` says that posts must take the port lock (today's path: harvest kernel readiness
//!   first for FIFO order (T52), dispatch to a waiter, settle the pollable descriptor). It is
//!   written only under both locks, by [`Inner::sync_posts`], which every release of the port
//!   lock runs, and it is true whenever the port is closed or polled, has live registrations,
//!   or has a thread blocked in a dequeue that was not handed packets yet.
//! * A thread about to block sets `slow` (through `sync_posts`, before the port lock is
//!   released) in the same inbox critical section in which it moves what the inbox holds to
//!   the FIFO. A post either came before (its packet is moved, and the thread does not
//!   sleep: it dispatches, and the waiter loop finds itself served) or after (it sees `slow`
//!   and hands its packet over under the port lock, waking the waiter). No wake-up is lost.
//! * While `slow` is true nothing enters the inbox, so a lock holder that finds the cached
//!   `PortState::posts_slow` true knows the inbox is empty and skips its lock.

use super::inner::{Inner, PortState};
use super::sync::{lock, Mutex};
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

impl Inner {
    /// Queues `packet` in the inbox when posts need not take the port lock; `None` when they
    /// must (the caller takes the slow path).
    #[inline]
    pub(super) fn try_post_fast(&self, packet: Completion) -> Option<Result<(), Error>> {
        let mut b = lock(&self.posts.0);
        if b.slow {
            return None;
        }
        if b.q.len() == b.q.capacity() && b.q.try_reserve(1).is_err() {
            return Some(Err(Error::NoBuffers));
        }
        b.q.push_back(Packet::posted(packet));
        Some(Ok(()))
    }

    /// Moves the inbox's packets to the FIFO (call right after taking the port lock): a copy
    /// of what was posted since the last move, under the inbox lock, as a consumer of a
    /// mutex-protected queue copies what it takes. (Swapping buffers instead would save the
    /// copy but, with a consumer that falls behind, grow two buffers to the backlog's size
    /// instead of one.)
    #[inline]
    pub(super) fn take_posts(&self, st: &mut PortState) {
        if st.posts_slow {
            return; // the inbox was emptied when `slow` was set, and stays empty
        }
        let mut b = lock(&self.posts.0);
        if !b.q.is_empty() {
            st.counters.posted += b.q.len() as u64;
            st.machine.take_posts(&mut b.q);
        }
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
        let mut b = lock(&self.posts.0);
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
