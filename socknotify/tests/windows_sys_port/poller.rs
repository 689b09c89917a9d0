// A small poller over Winsock socket state notifications (`ProcessSocketNotifications` and an
// I/O completion port), written against `windows-sys` the way a Windows crate writes it: raw
// pointers, `HANDLE`s, `unsafe` calls, `as _` where windows-sys's field types need it.
//
// This file has no `use` lines: `windows_sys_port.rs` includes it twice, under the `use`
// lines of socknotify's `windows_sys` module (where it runs) and under those of the real
// `windows-sys` crate (where it is only type-checked: the functions are Windows'), so the two
// blocks of `use` lines are the whole port.

/// A Win32 or Winsock error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub u32);

/// One completion port.
pub struct Poller {
    port: HANDLE,
}

// SAFETY: a completion-port handle may be used from any thread.
unsafe impl Send for Poller {}
// SAFETY: as above; every call on the port is thread-safe.
unsafe impl Sync for Poller {}

impl Poller {
    /// A port letting `threads` threads run at once (0: one per processor).
    pub fn new(threads: u32) -> Result<Poller, Code> {
        let port = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, null_mut(), 0, threads) };
        if port.is_null() {
            return Err(Code(unsafe { GetLastError() }));
        }
        Ok(Poller { port })
    }

    /// The port's handle.
    pub fn handle(&self) -> HANDLE {
        self.port
    }

    /// An ENABLE entry.
    pub fn enable(socket: SOCKET, key: usize, filter: u32, trigger: u32) -> SOCK_NOTIFY_REGISTRATION {
        SOCK_NOTIFY_REGISTRATION {
            socket,
            completionKey: key as _,
            eventFilter: filter as _,
            operation: SOCK_NOTIFY_OP_ENABLE as _,
            triggerFlags: trigger as _,
            registrationResult: 0,
        }
    }

    /// A REMOVE entry.
    pub fn remove(socket: SOCKET) -> SOCK_NOTIFY_REGISTRATION {
        SOCK_NOTIFY_REGISTRATION { socket, operation: SOCK_NOTIFY_OP_REMOVE as _, ..Default::default() }
    }

    /// One `ProcessSocketNotifications` call: applies `regs`, then dequeues into `out`
    /// (nothing when `out` is empty). `Ok(0)` on timeout.
    pub fn process(
        &self,
        regs: &mut [SOCK_NOTIFY_REGISTRATION],
        out: &mut [OVERLAPPED_ENTRY],
        timeout_ms: u32,
    ) -> Result<usize, Code> {
        let mut received = 0u32;
        let regs_ptr = if regs.is_empty() { null_mut() } else { regs.as_mut_ptr() };
        let (out_ptr, received_ptr) =
            if out.is_empty() { (null_mut(), null_mut()) } else { (out.as_mut_ptr(), &mut received as *mut u32) };
        let rc = unsafe {
            ProcessSocketNotifications(
                self.port,
                regs.len() as u32,
                regs_ptr,
                timeout_ms,
                out.len() as u32,
                out_ptr,
                received_ptr,
            )
        };
        match rc {
            ERROR_SUCCESS => Ok(received as usize),
            WAIT_TIMEOUT => Ok(0),
            code => Err(Code(code)),
        }
    }

    /// The canonical PSN loop: each call applies the registrations decided while handling the
    /// previous batch (re-arms, REMOVEs), then dequeues. `handle` sees every packet and says
    /// whether to go on. A timeout, or an entry that failed, ends the loop with its code.
    /// Returns the number of packets handled.
    pub fn run<F>(
        &self,
        mut pending: Vec<SOCK_NOTIFY_REGISTRATION>,
        timeout_ms: u32,
        mut handle: F,
    ) -> Result<usize, Code>
    where
        F: FnMut(&OVERLAPPED_ENTRY, &mut Vec<SOCK_NOTIFY_REGISTRATION>) -> bool,
    {
        let mut out = [OVERLAPPED_ENTRY::default(); 16];
        let mut handled = 0;
        loop {
            let n = self.process(&mut pending, &mut out, timeout_ms)?;
            for reg in &pending {
                if reg.registrationResult != ERROR_SUCCESS {
                    return Err(Code(reg.registrationResult));
                }
            }
            pending.clear();
            if n == 0 {
                return Err(Code(WAIT_TIMEOUT));
            }
            for entry in &out[..n] {
                handled += 1;
                if !handle(entry, &mut pending) {
                    return Ok(handled);
                }
            }
        }
    }

    /// One `GetQueuedCompletionStatusEx` call; `Ok(0)` on timeout.
    pub fn wait(&self, out: &mut [OVERLAPPED_ENTRY], timeout_ms: u32) -> Result<usize, Code> {
        let mut removed = 0u32;
        let ok = unsafe {
            GetQueuedCompletionStatusEx(self.port, out.as_mut_ptr(), out.len() as u32, &mut removed, timeout_ms, FALSE)
        };
        if ok == FALSE {
            let e = unsafe { GetLastError() };
            return if e == WAIT_TIMEOUT { Ok(0) } else { Err(Code(e)) };
        }
        Ok(removed as usize)
    }

    /// One `GetQueuedCompletionStatus` call: `(bytes, key, overlapped)`, `None` on timeout.
    pub fn wait_one(&self, timeout_ms: u32) -> Result<Option<(u32, usize, *mut OVERLAPPED)>, Code> {
        let mut bytes = 0u32;
        let mut key = 0usize;
        let mut overlapped: *mut OVERLAPPED = null_mut();
        let ok = unsafe { GetQueuedCompletionStatus(self.port, &mut bytes, &mut key, &mut overlapped, timeout_ms) };
        if ok == FALSE {
            let e = unsafe { GetLastError() };
            return if e == WAIT_TIMEOUT && overlapped.is_null() { Ok(None) } else { Err(Code(e)) };
        }
        Ok(Some((bytes, key, overlapped)))
    }

    /// `PostQueuedCompletionStatus`.
    pub fn post(&self, bytes: u32, key: usize, overlapped: *const OVERLAPPED) -> Result<(), Code> {
        if unsafe { PostQueuedCompletionStatus(self.port, bytes, key, overlapped) } == FALSE {
            return Err(Code(unsafe { GetLastError() }));
        }
        Ok(())
    }

    /// Closes the port: threads blocked on it wake with `ERROR_ABANDONED_WAIT_0`.
    pub fn close(self) -> Result<(), Code> {
        let port = self.port;
        std::mem::forget(self);
        if unsafe { CloseHandle(port) } == FALSE {
            return Err(Code(unsafe { GetLastError() }));
        }
        Ok(())
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        unsafe { CloseHandle(self.port) };
    }
}

/// The event mask of a notification.
pub fn events(entry: &OVERLAPPED_ENTRY) -> u32 {
    entry.dwNumberOfBytesTransferred
}

/// A thread routine: blocks in `GetQueuedCompletionStatus` on the port `param`; its exit code
/// is 0 for a packet, else the last error.
pub unsafe extern "system" fn gqcs_waiter(param: *mut c_void) -> u32 {
    let (mut bytes, mut key, mut overlapped) = (0u32, 0usize, null_mut::<OVERLAPPED>());
    if unsafe { GetQueuedCompletionStatus(param, &mut bytes, &mut key, &mut overlapped, INFINITE) } == FALSE {
        return unsafe { GetLastError() };
    }
    0
}

/// A thread routine: blocks in `ProcessSocketNotifications` (no registrations) on the port
/// `param`; its exit code is the call's result.
pub unsafe extern "system" fn psn_waiter(param: *mut c_void) -> u32 {
    let mut entries = [OVERLAPPED_ENTRY::default(); 4];
    let mut received = 0u32;
    unsafe { ProcessSocketNotifications(param, 0, null_mut(), INFINITE, 4, entries.as_mut_ptr(), &mut received) }
}

/// Starts `routine(port)` on a new thread.
pub fn spawn(routine: LPTHREAD_START_ROUTINE, port: HANDLE) -> Result<HANDLE, Code> {
    let mut id = 0u32;
    let thread = unsafe { CreateThread(null(), 0, routine, port, 0, &mut id) };
    if thread.is_null() {
        return Err(Code(unsafe { GetLastError() }));
    }
    Ok(thread)
}

/// Waits up to `timeout_ms` for all `threads`, then returns their exit codes and closes their
/// handles.
pub fn join(threads: &[HANDLE], timeout_ms: u32) -> Result<Vec<u32>, Code> {
    let r = unsafe { WaitForMultipleObjects(threads.len() as u32, threads.as_ptr(), TRUE, timeout_ms) };
    if r != WAIT_OBJECT_0 {
        return Err(Code(if r == WAIT_TIMEOUT { r } else { unsafe { GetLastError() } }));
    }
    let mut codes = Vec::new();
    for &t in threads {
        let mut code = 0u32;
        if unsafe { GetExitCodeThread(t, &mut code) } == FALSE {
            return Err(Code(unsafe { GetLastError() }));
        }
        codes.push(code);
        unsafe { CloseHandle(t) };
    }
    Ok(codes)
}

/// `closesocket`, with `WSAGetLastError` on failure.
pub fn close_socket(socket: SOCKET) -> Result<(), WSA_ERROR> {
    if unsafe { closesocket(socket) } == SOCKET_ERROR {
        return Err(unsafe { WSAGetLastError() });
    }
    Ok(())
}

/// Whether a failed entry named something that is not a socket (`registrationResult` is a
/// `u32`, the `WSAE*` codes are `WSA_ERROR`s).
pub fn not_a_socket(reg: &SOCK_NOTIFY_REGISTRATION) -> bool {
    reg.registrationResult == WSAENOTSOCK as u32
}
