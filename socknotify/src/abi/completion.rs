//! [`Completion`]: one packet of a completion port, laid out as Windows' `OVERLAPPED_ENTRY`.

use super::events::Events;

/// One packet dequeued from a [`CompletionPort`](crate::CompletionPort).
///
/// It has exactly the layout of Windows' `OVERLAPPED_ENTRY` (32 bytes on x86_64).
/// A notification carries the registration's key and the event mask in
/// [`bytes`](Completion::bytes) (read it with [`events`](Completion::events));
/// its overlapped and internal values are 0. A posted packet comes back exactly as posted.
///
/// ```
/// use socknotify::{Completion, Events};
/// let c = Completion::new(7, 0xABC, 42);
/// assert_eq!((c.key(), c.bytes(), c.overlapped()), (7, 0xABC, 42));
/// let n = Completion::new(3, (Events::IN | Events::REMOVE).bits(), 0);
/// assert!(n.events().contains(Events::REMOVE));
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Completion {
    key: usize,
    overlapped: usize,
    internal: usize,
    bytes: u32,
}

const _: () = assert!(std::mem::size_of::<Completion>() == 32);
const _: () = assert!(std::mem::align_of::<Completion>() == 8);

impl Completion {
    /// A packet to [`post`](crate::CompletionPort::post): key, byte count and overlapped value.
    ///
    /// ```
    /// let c = socknotify::Completion::new(1, 2, 3);
    /// assert_eq!(c.internal(), 0);
    /// ```
    pub const fn new(key: usize, bytes: u32, overlapped: usize) -> Completion {
        Completion { key, overlapped, internal: 0, bytes }
    }

    /// A packet with every field of `OVERLAPPED_ENTRY` given, `Internal` included.
    ///
    /// ```
    /// let c = socknotify::Completion::with_internal(1, 2, 3, 4);
    /// assert_eq!(c.internal(), 4);
    /// ```
    pub const fn with_internal(key: usize, bytes: u32, overlapped: usize, internal: usize) -> Completion {
        Completion { key, overlapped, internal, bytes }
    }

    /// The completion key (`lpCompletionKey`).
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(9, 0, 0).key(), 9);
    /// ```
    pub const fn key(&self) -> usize {
        self.key
    }

    /// The byte count (`dwNumberOfBytesTransferred`); for a notification, the event mask.
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(0, 5, 0).bytes(), 5);
    /// ```
    pub const fn bytes(&self) -> u32 {
        self.bytes
    }

    /// The overlapped value (`lpOverlapped`); 0 for notifications.
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(0, 0, 77).overlapped(), 77);
    /// ```
    pub const fn overlapped(&self) -> usize {
        self.overlapped
    }

    /// The `Internal` field; 0 for notifications and for packets posted with [`Completion::new`].
    ///
    /// ```
    /// assert_eq!(socknotify::Completion::new(0, 0, 0).internal(), 0);
    /// ```
    pub const fn internal(&self) -> usize {
        self.internal
    }

    /// The byte count read as an event mask (Windows' `SocketNotificationRetrieveEvents`).
    ///
    /// ```
    /// use socknotify::{Completion, Events};
    /// assert_eq!(Completion::new(0, 0x41, 0).events(), Events::IN | Events::ERR);
    /// ```
    pub const fn events(&self) -> Events {
        Events::from_bits(self.bytes)
    }
}
