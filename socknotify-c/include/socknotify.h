/*
 * socknotify.h -- Winsock socket state notifications (ProcessSocketNotifications) and
 * I/O completion ports for Linux, with Windows' names, values and x86_64 layouts.
 *
 * Link with pkg-config: `pkg-config --cflags --libs socknotify` (shared library) or
 * `pkg-config --cflags --libs socknotify-static` (libsocknotify.a plus the system libraries
 * -lgcc_s -lutil -lrt -lpthread -lm -ldl), or with CMake: find_package(socknotify) and the
 * targets socknotify::socknotify / socknotify::socknotify_static.
 * Porting Windows code: the headers under socknotify/ (winsock2.h, ws2tcpip.h, windows.h,
 * mswsock.h) add the Winsock basics and threads on top of this header.
 *
 * Conventions, as on Windows:
 *  - the completion-port calls return a BOOL and leave a code for GetLastError();
 *  - ProcessSocketNotifications returns its DWORD code directly (it also stores a
 *    failure code, WAIT_TIMEOUT included, as the thread's last error, so code that
 *    wrongly reads GetLastError() after it still sees the right value);
 *  - closesocket returns 0 or SOCKET_ERROR with the code for WSAGetLastError().
 * The last error is per thread; GetLastError() and WSAGetLastError() read the same value.
 *
 * A SOCKET is a Linux descriptor number widened to uintptr_t. A completion-port HANDLE is
 * an opaque, checked value: a stale or garbage HANDLE gives ERROR_INVALID_HANDLE, never a
 * crash. No function of this library ever lets a Rust panic unwind into C: an internal
 * failure is reported as ERROR_INTERNAL_ERROR.
 *
 * Usable from C99 (and later) and C++11 (and later).
 */
#ifndef SOCKNOTIFY_H
#define SOCKNOTIFY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------ */
/* Helpers of this header (not Windows names).                                          */
/* ------------------------------------------------------------------------------------ */

/** Marks an anonymous struct or union, which C99 and C++11 lack, as a GNU extension. */
#if defined(__GNUC__) || defined(__clang__)
#define SOCKNOTIFY_EXTENSION __extension__
#else
#define SOCKNOTIFY_EXTENSION
#endif

/** SOCKNOTIFY_STATIC_ASSERT(cond, name): a compile-time check (C11/C++11 static_assert, or a C99 fallback). */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define SOCKNOTIFY_STATIC_ASSERT(cond, name) static_assert(cond, #name)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define SOCKNOTIFY_STATIC_ASSERT(cond, name) _Static_assert(cond, #name)
#else
#define SOCKNOTIFY_STATIC_ASSERT(cond, name) typedef char socknotify_static_assert_##name[(cond) ? 1 : -1]
#endif

/** The library's version, as major*10000 + minor*100 + patch. */
#define SOCKNOTIFY_VERSION 100

/* ------------------------------------------------------------------------------------ */
/* Calling-convention macros (empty on Linux; kept so that ported code compiles).      */
/* ------------------------------------------------------------------------------------ */

#ifndef WINAPI
/** Windows' calling convention of the system APIs: nothing on Linux x86_64. */
#define WINAPI
#endif
#ifndef WSAAPI
/** Windows' calling convention of the Winsock APIs: nothing on Linux x86_64. */
#define WSAAPI
#endif

/* ------------------------------------------------------------------------------------ */
/* Basic types (Windows LLP64 sizes: ULONG and DWORD are 32 bits).                      */
/* ------------------------------------------------------------------------------------ */

/** An opaque object handle; here only completion ports are handles. */
typedef void *HANDLE;
/** A pointer to anything. */
typedef void *PVOID;
/** 32-bit unsigned integer. */
typedef uint32_t DWORD;
/** 32-bit unsigned integer (32 bits, as on Windows, not `unsigned long`). */
typedef uint32_t ULONG;
/** 8-bit unsigned integer. */
typedef uint8_t UINT8;
/** 16-bit unsigned integer. */
typedef uint16_t UINT16;
/** 32-bit unsigned integer. */
typedef uint32_t UINT32;
/** Boolean result: TRUE (1) or FALSE (0). */
typedef int BOOL;
/** Unsigned integer the size of a pointer. */
typedef uintptr_t ULONG_PTR;
/** Pointer to a ULONG_PTR. */
typedef ULONG_PTR *PULONG_PTR;
/** Pointer to a DWORD. */
typedef DWORD *LPDWORD;
/** Pointer to a ULONG. */
typedef ULONG *PULONG;
/** A socket: the Linux descriptor number, widened to a pointer-sized unsigned integer. */
typedef uintptr_t SOCKET;

#ifndef FALSE
/** BOOL false. */
#define FALSE 0
#endif
#ifndef TRUE
/** BOOL true. */
#define TRUE 1
#endif

/** Wait forever (a timeout in milliseconds). */
#define INFINITE 0xFFFFFFFF
/** The invalid handle value ((HANDLE)-1); also the FileHandle that asks CreateIoCompletionPort for a new port. */
#define INVALID_HANDLE_VALUE ((HANDLE)(intptr_t)-1)
/** The invalid socket value (~(SOCKET)0). */
#define INVALID_SOCKET (~(SOCKET)0)
/** closesocket's failure result. */
#define SOCKET_ERROR (-1)

/* ------------------------------------------------------------------------------------ */
/* OVERLAPPED and OVERLAPPED_ENTRY (minwinbase.h).                                      */
/* ------------------------------------------------------------------------------------ */

#if defined(NONAMELESSUNION)
/** Name of OVERLAPPED's union: "u" with NONAMELESSUNION, else anonymous (as in Windows' headers). */
#define SOCKNOTIFY_UNIONNAME u
/** Name of OVERLAPPED's Offset/OffsetHigh struct: "s" with NONAMELESSUNION, else anonymous. */
#define SOCKNOTIFY_STRUCTNAME s
#else
/** Name of OVERLAPPED's union: "u" with NONAMELESSUNION, else anonymous (as in Windows' headers). */
#define SOCKNOTIFY_UNIONNAME
/** Name of OVERLAPPED's Offset/OffsetHigh struct: "s" with NONAMELESSUNION, else anonymous. */
#define SOCKNOTIFY_STRUCTNAME
#endif

/**
 * The Windows OVERLAPPED structure (32 bytes on x86_64). socknotify never reads or writes
 * one: an LPOVERLAPPED passed to PostQueuedCompletionStatus is an opaque value that comes
 * back unchanged from the dequeue calls.
 */
typedef struct _OVERLAPPED {
    ULONG_PTR Internal;     /**< Status of the I/O (reserved). */
    ULONG_PTR InternalHigh; /**< Bytes transferred (reserved). */
    /** The file offset, or a pointer. */
    SOCKNOTIFY_EXTENSION union {
        /** The file offset in two halves. */
        SOCKNOTIFY_EXTENSION struct {
            DWORD Offset;     /**< Low 32 bits of the offset. */
            DWORD OffsetHigh; /**< High 32 bits of the offset. */
        } SOCKNOTIFY_STRUCTNAME;
        PVOID Pointer; /**< Reserved. */
    } SOCKNOTIFY_UNIONNAME;
    HANDLE hEvent; /**< Event handle (unused here). */
} OVERLAPPED;

/** Pointer to an OVERLAPPED. */
typedef OVERLAPPED *LPOVERLAPPED;

/**
 * One dequeued completion packet (32 bytes on x86_64). For a socket notification:
 * lpCompletionKey = the registration's key, dwNumberOfBytesTransferred = the
 * SOCK_NOTIFY_EVENT_* mask, lpOverlapped = NULL and Internal = 0. A posted packet comes
 * back exactly as posted.
 */
typedef struct _OVERLAPPED_ENTRY {
    ULONG_PTR lpCompletionKey;        /**< The completion key. */
    LPOVERLAPPED lpOverlapped;        /**< The posted overlapped value; NULL for notifications. */
    ULONG_PTR Internal;               /**< Reserved (status); 0 for notifications and posted packets. */
    DWORD dwNumberOfBytesTransferred; /**< The posted byte count; for notifications the event mask. */
} OVERLAPPED_ENTRY;

/** Pointer to an OVERLAPPED_ENTRY. */
typedef OVERLAPPED_ENTRY *LPOVERLAPPED_ENTRY;

/* ------------------------------------------------------------------------------------ */
/* SOCK_NOTIFY_REGISTRATION and the SOCK_NOTIFY_* constants (winsock2.h).               */
/* ------------------------------------------------------------------------------------ */

/** One registration request for ProcessSocketNotifications (24 bytes on x86_64). */
typedef struct SOCK_NOTIFY_REGISTRATION {
    SOCKET socket;             /**< The socket (descriptor number). */
    PVOID completionKey;       /**< The key of its packets; fixed when the registration is created. */
    UINT16 eventFilter;        /**< SOCK_NOTIFY_REGISTER_EVENT_* bits (ENABLE only). */
    UINT8 operation;           /**< One SOCK_NOTIFY_OP_* value. */
    UINT8 triggerFlags;        /**< SOCK_NOTIFY_TRIGGER_* bits (ENABLE only). */
    DWORD registrationResult;  /**< Out: 0, or this entry's error code. The only field the call writes. */
} SOCK_NOTIFY_REGISTRATION;

/** Filter: nothing requested (only ERR can then be delivered). */
#define SOCK_NOTIFY_REGISTER_EVENT_NONE 0x00
/** Filter: a receive (or accept) would not block. */
#define SOCK_NOTIFY_REGISTER_EVENT_IN 0x01
/** Filter: a send would not block. */
#define SOCK_NOTIFY_REGISTER_EVENT_OUT 0x02
/** Filter: the stream connection was shut down by the peer or aborted. */
#define SOCK_NOTIFY_REGISTER_EVENT_HANGUP 0x04
/** Filter: IN | OUT | HANGUP. */
#define SOCK_NOTIFY_REGISTER_EVENTS_ALL 0x07

/** Event: IN (same value as SOCK_NOTIFY_REGISTER_EVENT_IN). */
#define SOCK_NOTIFY_EVENT_IN SOCK_NOTIFY_REGISTER_EVENT_IN
/** Event: OUT (same value as SOCK_NOTIFY_REGISTER_EVENT_OUT). */
#define SOCK_NOTIFY_EVENT_OUT SOCK_NOTIFY_REGISTER_EVENT_OUT
/** Event: HANGUP (same value as SOCK_NOTIFY_REGISTER_EVENT_HANGUP). */
#define SOCK_NOTIFY_EVENT_HANGUP SOCK_NOTIFY_REGISTER_EVENT_HANGUP
/** Event: the socket is in an error state; delivered whatever the filter. */
#define SOCK_NOTIFY_EVENT_ERR 0x40
/** Event: the registration is gone; the last packet it produces. */
#define SOCK_NOTIFY_EVENT_REMOVE 0x80
/** Every event bit: IN | OUT | HANGUP | ERR | REMOVE. */
#define SOCK_NOTIFY_EVENTS_ALL (SOCK_NOTIFY_REGISTER_EVENTS_ALL | SOCK_NOTIFY_EVENT_ERR | SOCK_NOTIFY_EVENT_REMOVE)

/** Operation: nothing (the entry always succeeds). */
#define SOCK_NOTIFY_OP_NONE 0x00
/** Operation: create the registration, or re-arm or change it (its key stays). */
#define SOCK_NOTIFY_OP_ENABLE 0x01
/** Operation: stop notifications; a packet already queued is still delivered. */
#define SOCK_NOTIFY_OP_DISABLE 0x02
/** Operation: end the registration with one last packet carrying SOCK_NOTIFY_EVENT_REMOVE. */
#define SOCK_NOTIFY_OP_REMOVE 0x04

/** Trigger: disable the registration when its packet is dequeued. */
#define SOCK_NOTIFY_TRIGGER_ONESHOT 0x01
/** Trigger: stay enabled after delivery (the default when neither ONESHOT nor PERSISTENT is given). */
#define SOCK_NOTIFY_TRIGGER_PERSISTENT 0x02
/** Trigger: notify while the condition holds. */
#define SOCK_NOTIFY_TRIGGER_LEVEL 0x04
/** Trigger: notify when the condition starts to hold. */
#define SOCK_NOTIFY_TRIGGER_EDGE 0x08
/** Every trigger bit. */
#define SOCK_NOTIFY_TRIGGER_ALL 0x0F

/* ------------------------------------------------------------------------------------ */
/* Result and error codes (values from socknotify's code table, codes.rs).              */
/* ------------------------------------------------------------------------------------ */

/** Success. */
#define ERROR_SUCCESS 0
/** Success (alias of ERROR_SUCCESS). */
#define NO_ERROR 0
/** The handle is not a live completion port. */
#define ERROR_INVALID_HANDLE 6
/** Out of memory. */
#define ERROR_NOT_ENOUGH_MEMORY 8
/** An argument of a completion-port call is invalid. */
#define ERROR_INVALID_PARAMETER 87
/** An alertable wait was interrupted by an APC; never produced on Linux. */
#define WAIT_IO_COMPLETION 192
/** Nothing was dequeued before the timeout. */
#define WAIT_TIMEOUT 258
/** The completion port was closed while the thread waited on it. */
#define ERROR_ABANDONED_WAIT_0 735
/** Overlapped I/O is in progress; defined for completeness, never produced. */
#define ERROR_IO_PENDING 997
/** REMOVE of a socket that has no registration (registrationResult). */
#define ERROR_NOT_FOUND 1168
/** An internal failure of the library (a bug); the call did nothing or its effect is unknown. */
#define ERROR_INTERNAL_ERROR 1359
/** The timeout code named in one Windows doc sentence; never returned (WAIT_TIMEOUT is). */
#define ERROR_TIMEOUT 1460
/** Same value as ERROR_INVALID_HANDLE. */
#define WSA_INVALID_HANDLE ERROR_INVALID_HANDLE
/** Same value as ERROR_NOT_ENOUGH_MEMORY. */
#define WSA_NOT_ENOUGH_MEMORY ERROR_NOT_ENOUGH_MEMORY
/** Same value as ERROR_INVALID_PARAMETER. */
#define WSA_INVALID_PARAMETER ERROR_INVALID_PARAMETER
/** Same value as WAIT_TIMEOUT. */
#define WSA_WAIT_TIMEOUT WAIT_TIMEOUT
/** Base of the WSAE* codes. */
#define WSABASEERR 10000
/** Bad descriptor. */
#define WSAEBADF 10009
/** A required pointer is NULL or misaligned (ProcessSocketNotifications V3). */
#define WSAEFAULT 10014
/** Invalid argument: a bad call shape, operation, filter or trigger, or a socket registered with another port. */
#define WSAEINVAL 10022
/** A non-blocking operation would block. */
#define WSAEWOULDBLOCK 10035
/** The registration is waiting for its REMOVE packet to be dequeued. */
#define WSAEALREADY 10037
/** The descriptor is not an open socket. */
#define WSAENOTSOCK 10038
/** Operation not supported. */
#define WSAEOPNOTSUPP 10045
/** Connection reset by peer. */
#define WSAECONNRESET 10054
/** Out of resources; nothing was changed. */
#define WSAENOBUFS 10055
/** The socket is not connected. */
#define WSAENOTCONN 10057
/** Connection refused. */
#define WSAECONNREFUSED 10061
/** Winsock not initialised; never produced (no WSAStartup is needed on Linux). */
#define WSANOTINITIALISED 10093

/* ------------------------------------------------------------------------------------ */
/* Layout checks (x86_64 / LP64; the library asserts the same on the Rust side).        */
/* ------------------------------------------------------------------------------------ */

#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
SOCKNOTIFY_STATIC_ASSERT(sizeof(SOCKET) == 8, socket_size);
SOCKNOTIFY_STATIC_ASSERT(sizeof(HANDLE) == 8, handle_size);
SOCKNOTIFY_STATIC_ASSERT(sizeof(ULONG) == 4, ulong_size);
SOCKNOTIFY_STATIC_ASSERT(sizeof(DWORD) == 4, dword_size);
SOCKNOTIFY_STATIC_ASSERT(sizeof(BOOL) == 4, bool_size);
SOCKNOTIFY_STATIC_ASSERT(sizeof(OVERLAPPED) == 32, overlapped_size);
SOCKNOTIFY_STATIC_ASSERT(offsetof(OVERLAPPED, Internal) == 0, overlapped_internal);
SOCKNOTIFY_STATIC_ASSERT(offsetof(OVERLAPPED, InternalHigh) == 8, overlapped_internalhigh);
SOCKNOTIFY_STATIC_ASSERT(offsetof(OVERLAPPED, hEvent) == 24, overlapped_hevent);
SOCKNOTIFY_STATIC_ASSERT(sizeof(OVERLAPPED_ENTRY) == 32, overlapped_entry_size);
SOCKNOTIFY_STATIC_ASSERT(offsetof(OVERLAPPED_ENTRY, lpCompletionKey) == 0, entry_key);
SOCKNOTIFY_STATIC_ASSERT(offsetof(OVERLAPPED_ENTRY, lpOverlapped) == 8, entry_overlapped);
SOCKNOTIFY_STATIC_ASSERT(offsetof(OVERLAPPED_ENTRY, Internal) == 16, entry_internal);
SOCKNOTIFY_STATIC_ASSERT(offsetof(OVERLAPPED_ENTRY, dwNumberOfBytesTransferred) == 24, entry_bytes);
SOCKNOTIFY_STATIC_ASSERT(sizeof(SOCK_NOTIFY_REGISTRATION) == 24, registration_size);
SOCKNOTIFY_STATIC_ASSERT(offsetof(SOCK_NOTIFY_REGISTRATION, socket) == 0, registration_socket);
SOCKNOTIFY_STATIC_ASSERT(offsetof(SOCK_NOTIFY_REGISTRATION, completionKey) == 8, registration_key);
SOCKNOTIFY_STATIC_ASSERT(offsetof(SOCK_NOTIFY_REGISTRATION, eventFilter) == 16, registration_filter);
SOCKNOTIFY_STATIC_ASSERT(offsetof(SOCK_NOTIFY_REGISTRATION, operation) == 18, registration_operation);
SOCKNOTIFY_STATIC_ASSERT(offsetof(SOCK_NOTIFY_REGISTRATION, triggerFlags) == 19, registration_trigger);
SOCKNOTIFY_STATIC_ASSERT(offsetof(SOCK_NOTIFY_REGISTRATION, registrationResult) == 20, registration_result);
#else
#error "socknotify.h: only 64-bit (LP64) targets are supported"
#endif

/* ------------------------------------------------------------------------------------ */
/* Completion ports.                                                                     */
/* ------------------------------------------------------------------------------------ */

/**
 * Creates an I/O completion port. Only the creation form is supported:
 * FileHandle == INVALID_HANDLE_VALUE and ExistingCompletionPort == NULL; CompletionKey is
 * then ignored, and NumberOfConcurrentThreads is the concurrency value (0 = the number of
 * processors). Associating a file handle with a port (any other form) is not supported and
 * returns NULL with last error ERROR_INVALID_PARAMETER.
 * Returns the port's handle, or NULL with GetLastError() set (WSAENOBUFS when the system
 * refuses a resource).
 */
HANDLE WINAPI CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort,
                                     ULONG_PTR CompletionKey, DWORD NumberOfConcurrentThreads);

/**
 * Queues a packet {CompletionKey, lpOverlapped, Internal 0, dwNumberOfBytesTransferred} on
 * the port. No value is validated or interpreted. Returns TRUE, or FALSE with
 * ERROR_INVALID_HANDLE for a handle that is not a live port.
 */
BOOL WINAPI PostQueuedCompletionStatus(HANDLE CompletionPort, DWORD dwNumberOfBytesTransferred,
                                       ULONG_PTR dwCompletionKey, LPOVERLAPPED lpOverlapped);

/**
 * Dequeues one packet, waiting up to dwMilliseconds (INFINITE: forever; 0: poll).
 * TRUE: *lpNumberOfBytesTransferred, *lpCompletionKey and *lpOverlapped hold the packet
 * (*lpOverlapped is NULL for a socket notification, whose event mask is the byte count).
 * FALSE: *lpOverlapped = NULL and GetLastError() is WAIT_TIMEOUT (nothing within the time),
 * ERROR_ABANDONED_WAIT_0 (the port was closed during the wait), ERROR_INVALID_HANDLE (not a
 * live port) or ERROR_INVALID_PARAMETER (a NULL or misaligned output pointer).
 */
BOOL WINAPI GetQueuedCompletionStatus(HANDLE CompletionPort, LPDWORD lpNumberOfBytesTransferred,
                                      PULONG_PTR lpCompletionKey, LPOVERLAPPED *lpOverlapped,
                                      DWORD dwMilliseconds);

/**
 * Dequeues up to ulCount packets into lpCompletionPortEntries, in FIFO order, waiting up to
 * dwMilliseconds for the first. TRUE: *ulNumEntriesRemoved = the number written (>= 1).
 * FALSE with GetLastError(): WAIT_TIMEOUT (and *ulNumEntriesRemoved = 0),
 * ERROR_ABANDONED_WAIT_0, ERROR_INVALID_HANDLE, or ERROR_INVALID_PARAMETER (ulCount == 0,
 * a NULL or misaligned pointer, or ulNumEntriesRemoved inside the entries array); only the
 * timeout writes *ulNumEntriesRemoved. fAlertable is accepted and has no effect: Linux has
 * no APCs, so WAIT_IO_COMPLETION is never returned.
 */
BOOL WINAPI GetQueuedCompletionStatusEx(HANDLE CompletionPort, LPOVERLAPPED_ENTRY lpCompletionPortEntries,
                                        ULONG ulCount, PULONG ulNumEntriesRemoved, DWORD dwMilliseconds,
                                        BOOL fAlertable);

/**
 * Closes a completion port: threads blocked in GetQueuedCompletionStatus(Ex) or
 * ProcessSocketNotifications on it return ERROR_ABANDONED_WAIT_0, later calls with the
 * handle get ERROR_INVALID_HANDLE (handle values are never reused), queued packets are
 * discarded and the port's registrations are dropped without REMOVE packets.
 * Also releases a thread handle from CreateThread (socknotify/windows.h; the thread runs on).
 * Returns TRUE, or FALSE with ERROR_INVALID_HANDLE for anything that is not a live port or
 * thread handle (sockets are closed with closesocket).
 */
BOOL WINAPI CloseHandle(HANDLE hObject);

/* ------------------------------------------------------------------------------------ */
/* socknotify's own port options (an extension: not in Windows).                         */
/* ------------------------------------------------------------------------------------ */

/**
 * SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT: the program promises that every socket it registers
 * with this port is closed with closesocket (or REMOVEd first), as Windows programs do. In
 * return re-arms cost no system call: sockets stay armed in the kernel, a ONESHOT
 * registration is disarmed in user space when its packet is dequeued, and an ENABLE or
 * DISABLE that changes nothing the kernel watches only changes flags. A broken promise (a
 * plain close() of a registered socket whose number a new socket then takes) is caught within
 * 100 ms (a re-arm is confirmed by the kernel's next report of the socket, or else checked by
 * an audit 45 to 90 ms after it): no packet ever carries the old key for the new socket, and
 * what was applied to the number since is applied to the new socket then.
 */
#define SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT 0x1u

/**
 * Sets port options (SOCKNOTIFY_PORT_* bits; 0 turns them all off). Call it right after
 * CreateIoCompletionPort, before the port's first registration.
 * Returns TRUE, or FALSE with GetLastError() = ERROR_INVALID_HANDLE (not a live port) or
 * ERROR_INVALID_PARAMETER (unknown bits, or the port already had a registration).
 */
BOOL WINAPI socknotify_SetPortOptions(HANDLE CompletionPort, DWORD options);

/** A snapshot of one port (socknotify's own; counts are since the port was created). */
typedef struct SOCKNOTIFY_PORT_STATS {
    uint64_t registrations; /**< registrations held, REMOVE-pending ones included */
    uint64_t queued;        /**< packets queued and not yet handed to a thread */
    uint64_t waiters;       /**< threads blocked in a dequeue on the port */
    uint64_t running;       /**< threads counted as running (concurrency limit) */
    uint64_t posted;        /**< packets posted */
    uint64_t delivered;     /**< packets handed to threads */
    uint64_t audits;        /**< audits of the kernel's watch list (CLOSES_THROUGH_PORT) */
    uint64_t reuse_repairs; /**< registrations repaired after a broken CLOSES_THROUGH_PORT promise */
} SOCKNOTIFY_PORT_STATS;

/**
 * Fills *stats with a snapshot of the port (for monitoring). Returns TRUE, or FALSE with
 * GetLastError() = ERROR_INVALID_HANDLE (not a live port) or ERROR_INVALID_PARAMETER (stats
 * NULL or misaligned).
 */
BOOL WINAPI socknotify_GetPortStats(HANDLE CompletionPort, SOCKNOTIFY_PORT_STATS *stats);

/**
 * The port's descriptor, to nest the port in another event loop (epoll, poll, libuv, an
 * async runtime). It is readable when a dequeue with a zero timeout may find a packet (one is
 * queued, or a registered socket's readiness is pending) and quiet while the port is idle.
 * Protocol: wait until it is readable; call GetQueuedCompletionStatusEx (or
 * ProcessSocketNotifications) with timeout 0 until it returns WAIT_TIMEOUT; wait again. Every
 * event after such an empty dequeue makes it readable again (a new edge for EPOLLET).
 * The descriptor belongs to the port: do not close, read or change it; it is valid until
 * CloseHandle(CompletionPort).
 * Returns the descriptor, or -1 with GetLastError() = ERROR_INVALID_HANDLE (not a live port).
 */
int WINAPI socknotify_GetPortDescriptor(HANDLE CompletionPort);

/* ------------------------------------------------------------------------------------ */
/* Socket state notifications.                                                           */
/* ------------------------------------------------------------------------------------ */

/**
 * Applies registrationCount registrations in array order (each one's result goes to its
 * registrationResult), then, if completionCount > 0, dequeues up to completionCount packets
 * like GetQueuedCompletionStatusEx, waiting up to timeoutMs (INFINITE: forever).
 * Returns (directly; GetLastError() is not needed):
 *  - ERROR_SUCCESS: the call was accepted; with completionCount > 0, *receivedEntryCount
 *    (>= 1) entries were written. Check every registrationResult.
 *  - WAIT_TIMEOUT: nothing to dequeue within timeoutMs; *receivedEntryCount = 0.
 *  - ERROR_ABANDONED_WAIT_0: the port was closed during the wait (registrations stay applied).
 *  - a whole-call error, after which nothing was changed (no registration applied, no
 *    registrationResult and not *receivedEntryCount written): WSAEINVAL (completionCount 0
 *    with an output pointer or a non-zero timeout; registrationCount and registrationInfos
 *    disagree about NULL; the arrays, or *receivedEntryCount and an array, overlap),
 *    WSAEFAULT (completionCount > 0 with a NULL output array or count pointer, or a
 *    misaligned pointer), ERROR_INVALID_HANDLE (not a live port), WSAENOBUFS.
 */
DWORD WSAAPI ProcessSocketNotifications(HANDLE completionPort, UINT32 registrationCount,
                                        SOCK_NOTIFY_REGISTRATION *registrationInfos, UINT32 timeoutMs,
                                        ULONG completionCount, OVERLAPPED_ENTRY *completionPortEntries,
                                        UINT32 *receivedEntryCount);

/** The event mask (SOCK_NOTIFY_EVENT_* bits) of a notification packet: its dwNumberOfBytesTransferred. */
static inline UINT32 SocketNotificationRetrieveEvents(OVERLAPPED_ENTRY *notification)
{
    return (UINT32)notification->dwNumberOfBytesTransferred;
}

/**
 * The exported form of SocketNotificationRetrieveEvents, for callers that cannot use a
 * static inline function (foreign-function interfaces). NULL gives 0.
 */
UINT32 socknotify_SocketNotificationRetrieveEvents(const OVERLAPPED_ENTRY *notification);

/* ------------------------------------------------------------------------------------ */
/* Sockets and errors.                                                                   */
/* ------------------------------------------------------------------------------------ */

/**
 * Closes a socket: drops its registration silently (no REMOVE packet; a packet already
 * queued is still delivered), then closes the descriptor. Returns 0, or SOCKET_ERROR with
 * WSAGetLastError() = WSAENOTSOCK when s is not an open socket (nothing is closed then).
 */
int WSAAPI closesocket(SOCKET s);

/** The calling thread's last error code (the same value as WSAGetLastError()). */
DWORD WINAPI GetLastError(void);

/** Sets the calling thread's last error code. */
void WINAPI SetLastError(DWORD dwErrCode);

/** The calling thread's last error code (the same value as GetLastError()). */
int WSAAPI WSAGetLastError(void);

/** Sets the calling thread's last error code (the same value as SetLastError()). */
void WSAAPI WSASetLastError(int iError);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SOCKNOTIFY_H */
