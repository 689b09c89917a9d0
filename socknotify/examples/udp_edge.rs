//! UDP with `EDGE | PERSISTENT`: one registration for the socket's whole life, and every
//! notification drained until `WouldBlock`.
//!
//! ```text
//! cargo run --example udp_edge -- [--datagrams N] [--burst B]
//! ```
//!
//! An edge-triggered registration reports a condition when it *starts* to hold, and a
//! PERSISTENT one stays armed after each packet, so the program never re-arms it. The price
//! is the drain: after a notification, read until `WouldBlock`. Datagrams that arrive while
//! the buffer is being drained need no notification of their own (the drain reads them), and
//! a datagram that arrives after `WouldBlock` raises a new edge, so nothing is stranded. One
//! notification often covers many datagrams.
//!
//! A sender thread sends `--datagrams` numbered datagrams over loopback in bursts of
//! `--burst`, waiting (flow control, so that no datagram is dropped for lack of buffer space)
//! until the receiver has read each burst before it sends the next. The receiver checks that
//! every datagram arrived once, in order, then REMOVEs the registration and waits for its
//! last packet. It prints what it saw and exits with status 0 only if every check passed
//! (every wait is bounded: it fails rather than hangs).

use socknotify::{Completion, CompletionPort, Events, Registration, Trigger};
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::Duration;

const KEY: usize = 1;
/// No wait in this program is expected to come anywhere near it.
const LONG: Duration = Duration::from_secs(10);

fn parse_args() -> Result<(u32, u32), String> {
    let (mut datagrams, mut burst) = (2000u32, 64u32);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num =
            |name: &str| args.next().and_then(|v| v.parse::<u32>().ok()).ok_or(format!("{name} needs a number"));
        match a.as_str() {
            "--datagrams" => datagrams = num("--datagrams")?,
            "--burst" => burst = num("--burst")?,
            _ => return Err("usage: udp_edge [--datagrams N] [--burst B]".into()),
        }
    }
    if datagrams == 0 || burst == 0 || burst > 256 {
        return Err("--datagrams must be at least 1, --burst 1..=256".into());
    }
    Ok((datagrams, burst))
}

fn main() {
    match parse_args().and_then(|(n, b)| run(n, b).map_err(|e| e.to_string())) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("udp_edge: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

fn run(datagrams: u32, burst: u32) -> Result<(), Box<dyn std::error::Error>> {
    let port = CompletionPort::new()?;
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    receiver.set_nonblocking(true)?;
    let to = receiver.local_addr()?;

    // Registered before anything is sent: an edge is a change, and nothing has changed yet.
    let mut regs = [Registration::enable(&receiver, KEY, Events::IN, Trigger::EDGE_PERSISTENT)];
    port.process(&mut regs, &mut [], Some(Duration::ZERO))?;
    regs[0].result()?;

    // The sender: a burst, then wait until the receiver reports having read all of it.
    let (progress_tx, progress_rx) = mpsc::channel::<u32>();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let mut next = 0u32;
        while next < datagrams {
            let end = (next + burst).min(datagrams);
            for seq in next..end {
                s.send_to(&seq.to_le_bytes(), to)?;
            }
            next = end;
            while progress_rx.recv_timeout(LONG).map_err(|_| ErrorKind::TimedOut)? < next {}
        }
        Ok(())
    });

    let mut out = [Completion::default(); 8];
    let (mut expected, mut notifications, mut empty_wakeups, mut longest_drain) = (0u32, 0u32, 0u32, 0u32);
    let mut buf = [0u8; 64];
    while expected < datagrams {
        let n = port.dequeue(&mut out, Some(LONG))?;
        if n == 0 {
            return Err(format!(
                "no notification within {LONG:?} with {} datagrams still to come",
                datagrams - expected
            )
            .into());
        }
        for c in &out[..n] {
            if c.key() != KEY || !c.events().contains(Events::IN) {
                return Err(format!("unexpected packet: key {}, events {:?}", c.key(), c.events()).into());
            }
            notifications += 1;
            // The drain: until WouldBlock, whatever arrives meanwhile.
            let mut drained = 0u32;
            loop {
                match receiver.recv(&mut buf) {
                    Ok(4) => {
                        let seq = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                        if seq != expected {
                            return Err(format!("datagram {seq} arrived when {expected} was due").into());
                        }
                        expected += 1;
                        drained += 1;
                    }
                    Ok(len) => return Err(format!("a datagram of {len} bytes").into()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if drained == 0 {
                // Its datagrams were read by the previous drain: harmless, and expected now
                // and then (a notification is never missing, sometimes one too many).
                empty_wakeups += 1;
            }
            longest_drain = longest_drain.max(drained);
        }
        let _ = progress_tx.send(expected);
    }
    sender.join().map_err(|_| "the sender panicked")??;

    // Nothing more may come: no datagram is left, so no edge either.
    if receiver.recv(&mut buf).map_err(|e| e.kind()) != Err(ErrorKind::WouldBlock) {
        return Err("a datagram arrived after the last one".into());
    }
    // REMOVE: the registration's last packet carries REMOVE.
    let mut regs = [Registration::remove(&receiver)];
    let n = port.process(&mut regs, &mut out, Some(LONG))?;
    regs[0].result()?;
    if n != 1 || !out[0].events().contains(Events::REMOVE) {
        return Err(format!("expected one REMOVE packet, got {n}").into());
    }
    if port.registrations() != 0 {
        return Err("the registration outlived its REMOVE packet".into());
    }
    println!(
        "udp_edge: {datagrams} datagrams in bursts of {burst}, all received once and in order, with {notifications} \
         notifications from one EDGE|PERSISTENT registration (never re-armed; each drained until WouldBlock; \
         {empty_wakeups} found nothing left, the longest drain read {longest_drain}); REMOVE delivered its last packet"
    );
    Ok(())
}
