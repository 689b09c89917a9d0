//! The mapping from Linux's readiness to Windows' bits (spec §5.4, decision D19).

use super::kernel::{Readiness, SocketKind};
use crate::abi::Events;

/// Windows readiness `S` of a socket from the kernel's [`Readiness`] (spec §5.4, decision D19).
///
/// `err_latched` keeps ERR for a stream socket once it was seen (a reset or a failed
/// connect), because Linux forgets the error once the application reads it.
///
/// (Examples: the unit test `readiness_maps_linux_states_to_windows_bits`.)
pub fn readiness(kind: SocketKind, r: Readiness, err_latched: &mut bool) -> Events {
    let mut s = Events::NONE;
    if !kind.stream {
        if r.contains(Readiness::READ) {
            s |= Events::IN;
        }
        if r.contains(Readiness::WRITE) {
            s |= Events::OUT;
        }
        if r.contains(Readiness::ERROR) {
            s |= Events::ERR;
        }
        return s;
    }
    if r.contains(Readiness::ERROR) {
        *err_latched = true;
    }
    let hup = r.contains(Readiness::HANGUP);
    let rdhup = r.contains(Readiness::READ_HANGUP);
    let read = r.contains(Readiness::READ);
    if *err_latched {
        // Reset or failed connect: ERR, readable (recv fails at once), hung up; no OUT (D19).
        s |= Events::ERR;
        if hup || rdhup || read {
            s |= Events::IN | Events::HANGUP;
        }
        return s;
    }
    if hup && !rdhup && !read {
        // Closed without any shutdown of the receive side: a fresh or never-connected socket.
        return s;
    }
    if read || rdhup || hup {
        s |= Events::IN;
    }
    if r.contains(Readiness::WRITE) {
        s |= Events::OUT;
    }
    if rdhup || hup {
        s |= Events::HANGUP;
    }
    s
}
