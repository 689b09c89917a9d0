//! Event masks and trigger flags: small value types whose values are Windows' constants.

use super::windows::*;
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// A set of socket state notification bits, with the values of Windows'
/// `SOCK_NOTIFY_EVENT_*` / `SOCK_NOTIFY_REGISTER_EVENT_*` constants.
///
/// As a *filter* (what to watch) only [`IN`](Events::IN), [`OUT`](Events::OUT)
/// and [`HANGUP`](Events::HANGUP) are allowed. A delivered mask may also hold
/// [`ERR`](Events::ERR) (delivered whatever the filter) and
/// [`REMOVE`](Events::REMOVE) (the registration's last packet).
///
/// ```
/// use socknotify::Events;
/// let filter = Events::IN | Events::HANGUP;
/// assert!(filter.contains(Events::IN));
/// assert!(!filter.contains(Events::OUT));
/// assert_eq!(filter.bits(), 0x05);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u32);

impl Events {
    /// No bits.
    pub const NONE: Events = Events(SOCK_NOTIFY_REGISTER_EVENT_NONE as u32);
    /// A receive (or accept) would not block.
    pub const IN: Events = Events(SOCK_NOTIFY_EVENT_IN);
    /// A send would not block.
    pub const OUT: Events = Events(SOCK_NOTIFY_EVENT_OUT);
    /// A stream connection was shut down by the peer or aborted. Delivered only when requested.
    pub const HANGUP: Events = Events(SOCK_NOTIFY_EVENT_HANGUP);
    /// The socket is in an error state. Delivered whatever the filter.
    pub const ERR: Events = Events(SOCK_NOTIFY_EVENT_ERR);
    /// The registration is gone: the last packet it will ever produce.
    pub const REMOVE: Events = Events(SOCK_NOTIFY_EVENT_REMOVE);
    /// Every bit a filter may hold (`SOCK_NOTIFY_REGISTER_EVENTS_ALL`).
    pub const FILTER_ALL: Events = Events(SOCK_NOTIFY_REGISTER_EVENTS_ALL as u32);
    /// Every bit a notification may carry (`SOCK_NOTIFY_EVENTS_ALL`).
    pub const ALL: Events = Events(SOCK_NOTIFY_EVENTS_ALL);

    /// Builds a set from raw bits, keeping them all (no validation).
    ///
    /// ```
    /// assert_eq!(socknotify::Events::from_bits(0x41), socknotify::Events::IN | socknotify::Events::ERR);
    /// ```
    pub const fn from_bits(bits: u32) -> Events {
        Events(bits)
    }

    /// The raw bits.
    ///
    /// ```
    /// assert_eq!(socknotify::Events::REMOVE.bits(), 0x80);
    /// ```
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True when every bit of `other` is set in `self`.
    ///
    /// ```
    /// use socknotify::Events;
    /// assert!((Events::IN | Events::OUT).contains(Events::OUT));
    /// ```
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when `self` and `other` share at least one bit.
    ///
    /// ```
    /// use socknotify::Events;
    /// assert!((Events::IN | Events::OUT).intersects(Events::OUT | Events::ERR));
    /// ```
    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }

    /// True when no bit is set.
    ///
    /// ```
    /// assert!(socknotify::Events::NONE.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every bit is one a filter may hold (IN, OUT, HANGUP).
    ///
    /// ```
    /// use socknotify::Events;
    /// assert!((Events::IN | Events::HANGUP).is_valid_filter());
    /// assert!(!Events::ERR.is_valid_filter());
    /// ```
    pub const fn is_valid_filter(self) -> bool {
        self.0 & !Events::FILTER_ALL.0 == 0
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
    }
}

impl Not for Events {
    type Output = Events;
    fn not(self) -> Events {
        Events(!self.0)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Events, &str); 5] = [
            (Events::IN, "IN"),
            (Events::OUT, "OUT"),
            (Events::HANGUP, "HANGUP"),
            (Events::ERR, "ERR"),
            (Events::REMOVE, "REMOVE"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let rest = self.0 & !Events::ALL.0;
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
            first = false;
        }
        if first {
            f.write_str("NONE")?;
        }
        Ok(())
    }
}

/// Trigger flags of an ENABLE, with the values of Windows' `SOCK_NOTIFY_TRIGGER_*`.
///
/// A valid trigger has exactly one of [`LEVEL`](Trigger::LEVEL) /
/// [`EDGE`](Trigger::EDGE), and at most one of [`ONESHOT`](Trigger::ONESHOT) /
/// [`PERSISTENT`](Trigger::PERSISTENT) (neither means persistent, decision D7).
///
/// ```
/// use socknotify::Trigger;
/// assert!(Trigger::LEVEL_ONESHOT.is_valid());
/// assert!((Trigger::LEVEL | Trigger::EDGE).is_valid() == false);
/// assert!(Trigger::LEVEL.is_valid()); // persistent by default
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Trigger(u8);

impl Trigger {
    /// Disable the registration when its packet is dequeued; re-arm with ENABLE.
    pub const ONESHOT: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_ONESHOT);
    /// Stay enabled after delivery.
    pub const PERSISTENT: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_PERSISTENT);
    /// Notify while the condition holds.
    pub const LEVEL: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_LEVEL);
    /// Notify when the condition starts to hold.
    pub const EDGE: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_EDGE);
    /// All trigger bits (`SOCK_NOTIFY_TRIGGER_ALL`).
    pub const ALL: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_ALL);
    /// `LEVEL | ONESHOT`: the pattern Windows recommends for many threads on one port.
    pub const LEVEL_ONESHOT: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT);
    /// `LEVEL | PERSISTENT`.
    pub const LEVEL_PERSISTENT: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT);
    /// `EDGE | ONESHOT`.
    pub const EDGE_ONESHOT: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_EDGE | SOCK_NOTIFY_TRIGGER_ONESHOT);
    /// `EDGE | PERSISTENT`.
    pub const EDGE_PERSISTENT: Trigger = Trigger(SOCK_NOTIFY_TRIGGER_EDGE | SOCK_NOTIFY_TRIGGER_PERSISTENT);

    /// Builds a trigger from raw bits (no validation).
    ///
    /// ```
    /// assert_eq!(socknotify::Trigger::from_bits(0x05), socknotify::Trigger::LEVEL_ONESHOT);
    /// ```
    pub const fn from_bits(bits: u8) -> Trigger {
        Trigger(bits)
    }

    /// The raw bits.
    ///
    /// ```
    /// assert_eq!(socknotify::Trigger::EDGE_PERSISTENT.bits(), 0x0A);
    /// ```
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True for a trigger an ENABLE accepts (decision D7).
    ///
    /// ```
    /// use socknotify::Trigger;
    /// assert!(!Trigger::ONESHOT.is_valid()); // neither LEVEL nor EDGE
    /// assert!(!(Trigger::LEVEL_ONESHOT | Trigger::PERSISTENT).is_valid());
    /// ```
    pub const fn is_valid(self) -> bool {
        let b = self.0;
        let once_and_kept = SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_PERSISTENT;
        b & !SOCK_NOTIFY_TRIGGER_ALL == 0
            && ((b & SOCK_NOTIFY_TRIGGER_LEVEL != 0) != (b & SOCK_NOTIFY_TRIGGER_EDGE != 0))
            && (b & once_and_kept != once_and_kept)
    }

    /// True when EDGE is set.
    ///
    /// ```
    /// assert!(socknotify::Trigger::EDGE_ONESHOT.is_edge());
    /// ```
    pub const fn is_edge(self) -> bool {
        self.0 & SOCK_NOTIFY_TRIGGER_EDGE != 0
    }

    /// True when ONESHOT is set.
    ///
    /// ```
    /// assert!(socknotify::Trigger::LEVEL_ONESHOT.is_oneshot());
    /// assert!(!socknotify::Trigger::LEVEL.is_oneshot());
    /// ```
    pub const fn is_oneshot(self) -> bool {
        self.0 & SOCK_NOTIFY_TRIGGER_ONESHOT != 0
    }
}

impl BitOr for Trigger {
    type Output = Trigger;
    fn bitor(self, rhs: Trigger) -> Trigger {
        Trigger(self.0 | rhs.0)
    }
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (SOCK_NOTIFY_TRIGGER_ONESHOT, "ONESHOT"),
            (SOCK_NOTIFY_TRIGGER_PERSISTENT, "PERSISTENT"),
            (SOCK_NOTIFY_TRIGGER_LEVEL, "LEVEL"),
            (SOCK_NOTIFY_TRIGGER_EDGE, "EDGE"),
        ];
        let mut first = true;
        for (bit, name) in names {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if self.0 & !SOCK_NOTIFY_TRIGGER_ALL != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{:#x}", self.0 & !SOCK_NOTIFY_TRIGGER_ALL)?;
            first = false;
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}
