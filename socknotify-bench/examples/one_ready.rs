//! One ready socket per call, one mechanism per process: the loop of the `burst` scenario at
//! N = 1,000, K = 1, stripped to its core so that tools that measure a whole process
//! (callgrind's instruction counts, `perf`, `farm-bench`) can put socknotify's call beside raw
//! `epoll_wait`.
//!
//! ```sh
//! cargo build --release -p socknotify-bench --example one_ready
//! target/release/examples/one_ready socknotify 200000        # or: epoll; add `edge` for EPOLLET / EDGE_PERSISTENT
//! # user-space instructions per call: (count for R rounds − count for 0 rounds) / R
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/one_ready socknotify 20000
//! ```
//!
//! Each round writes one byte to the peer of one of 1,000 registered AF_UNIX stream sockets
//! (a different one each round), collects its one notification with a blocking call, checks
//! that it names that socket, and reads the byte back.

use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const SOCKETS: usize = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: one_ready (socknotify|epoll) ROUNDS [edge]";
    let mech = args.first().ok_or(usage)?.clone();
    let rounds: usize = args.get(1).ok_or(usage)?.parse().map_err(|_| usage)?;
    let edge = args.get(2).is_some_and(|a| a == "edge");
    let pairs = (0..SOCKETS)
        .map(|_| {
            let (a, b) = UnixStream::pair()?;
            a.set_nonblocking(true)?;
            Ok((a, b))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    // The socket of round r: a stride through all of them, so that no two rounds in a row
    // touch the same registration.
    let socket_of = |r: usize| (r * 7919) % SOCKETS;
    let mut byte = [0u8; 1];
    match mech.as_str() {
        "socknotify" => {
            let port = CompletionPort::new()?;
            let trigger = if edge { Trigger::EDGE_PERSISTENT } else { Trigger::LEVEL_PERSISTENT };
            let mut regs: Vec<Registration<'_>> =
                pairs.iter().enumerate().map(|(i, (a, _))| Registration::enable(a, i, Events::IN, trigger)).collect();
            port.process(&mut regs, &mut [], Some(Duration::ZERO))?;
            if let Some(r) = regs.iter().find(|r| r.result().is_err()) {
                return Err(format!("registration of key {} failed: {:?}", r.key(), r.result()).into());
            }
            let mut out = [Completion::default(); 64];
            for r in 0..rounds {
                let i = socket_of(r);
                (&pairs[i].1).write_all(b"x")?;
                let n = port.dequeue(&mut out, Some(Duration::from_secs(5)))?;
                if n != 1 || out[0].key() != i {
                    return Err(format!("round {r}: {n} packets, first key {}, expected key {i}", out[0].key()).into());
                }
                (&pairs[i].0).read_exact(&mut byte)?;
            }
        }
        "epoll" => {
            // SAFETY (each call): no pointer arguments, or pointers to live locals of the
            // right size; every result is checked.
            let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if ep < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            let flags = libc::EPOLLIN as u32 | if edge { libc::EPOLLET as u32 } else { 0 };
            for (i, (a, _)) in pairs.iter().enumerate() {
                let mut ev = libc::epoll_event { events: flags, u64: i as u64 };
                if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, a.as_raw_fd(), &mut ev) } < 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
            }
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
            for r in 0..rounds {
                let i = socket_of(r);
                (&pairs[i].1).write_all(b"x")?;
                let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 5000) };
                let key = events[0].u64 as usize;
                if n != 1 || key != i {
                    return Err(format!("round {r}: {n} events, first key {key}, expected key {i}").into());
                }
                (&pairs[i].0).read_exact(&mut byte)?;
            }
            // SAFETY: `ep` is ours and closed once.
            unsafe { libc::close(ep) };
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
