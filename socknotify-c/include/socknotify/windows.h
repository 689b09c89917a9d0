/*
 * socknotify/windows.h -- the part of <windows.h> a ported socket server uses, for Linux.
 *
 * Include it (or <socknotify/winsock2.h>, which includes it) where the Windows program has
 * `#include <windows.h>`; with `-I<includedir>/socknotify` the original include lines work
 * unchanged. Include the porting headers before any system header, as Windows code usually
 * does (they select glibc's default feature set, _DEFAULT_SOURCE, when nothing else was
 * selected), or compile with -D_DEFAULT_SOURCE.
 *
 * Provided: the basic Windows types; GetLastError/SetLastError, CloseHandle and the
 * completion-port calls (socknotify.h); threads (CreateThread, WaitForSingleObject,
 * WaitForMultipleObjects, GetExitCodeThread; implemented by libsocknotify, thread handles
 * live in the same handle table as ports); Sleep, GetTickCount(64), the Interlocked* calls
 * on LONG, ZeroMemory/CopyMemory/FillMemory/MoveMemory. Everything else of <windows.h> is
 * absent (see the porting section of socknotify-c/README.md).
 */
#ifndef SOCKNOTIFY_PORT_WINDOWS_H
#define SOCKNOTIFY_PORT_WINDOWS_H

#if !defined(_DEFAULT_SOURCE) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && \
    !defined(_BSD_SOURCE)
#define _DEFAULT_SOURCE 1
#endif

#include "../socknotify.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Basic types (Windows sizes: LONG is 32 bits). */
typedef uint8_t BYTE;
typedef uint16_t WORD;
typedef char CHAR;
typedef int16_t SHORT;
typedef uint16_t USHORT;
typedef int INT;
typedef unsigned int UINT;
typedef int32_t LONG;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef uint8_t BOOLEAN;
typedef void *LPVOID;
typedef const void *LPCVOID;
typedef char *LPSTR;
typedef const char *LPCSTR;
typedef size_t SIZE_T;
typedef LONG *PLONG;
typedef LONG *LPLONG;
typedef BOOL *LPBOOL;
typedef HANDLE *PHANDLE;
typedef HANDLE *LPHANDLE;
typedef DWORD *PDWORD;

#define MAKEWORD(low, high) ((WORD)(((BYTE)((low) & 0xff)) | ((WORD)((BYTE)((high) & 0xff))) << 8))
#define LOBYTE(w) ((BYTE)((w) & 0xff))
#define HIBYTE(w) ((BYTE)(((w) >> 8) & 0xff))
#define LOWORD(l) ((WORD)((l) & 0xffff))
#define HIWORD(l) ((WORD)(((l) >> 16) & 0xffff))

#define ZeroMemory(dst, len) memset((dst), 0, (len))
#define FillMemory(dst, len, fill) memset((dst), (fill), (len))
#define CopyMemory(dst, src, len) memcpy((dst), (src), (len))
#define MoveMemory(dst, src, len) memmove((dst), (src), (len))

/* Threads (libsocknotify). */

/** Security attributes: accepted and ignored (pass NULL). */
typedef struct _SECURITY_ATTRIBUTES {
    DWORD nLength;
    LPVOID lpSecurityDescriptor;
    BOOL bInheritHandle;
} SECURITY_ATTRIBUTES, *PSECURITY_ATTRIBUTES, *LPSECURITY_ATTRIBUTES;

/** A thread's start routine. It must not throw (no C++ exception may leave it). */
typedef DWORD(WINAPI *LPTHREAD_START_ROUTINE)(LPVOID lpThreadParameter);

/** WaitFor*: the (first) object is signalled. */
#define WAIT_OBJECT_0 0u
/** WaitFor*: the call failed; see GetLastError(). */
#define WAIT_FAILED 0xFFFFFFFFu
/** GetExitCodeThread: the thread still runs. */
#define STILL_ACTIVE 259u
/** The most handles one WaitForMultipleObjects call takes. */
#define MAXIMUM_WAIT_OBJECTS 64
/** CreateThread flag (accepted; every other flag, CREATE_SUSPENDED included, is refused). */
#define STACK_SIZE_PARAM_IS_A_RESERVATION 0x00010000u
/** The request is not supported (a wait on a completion-port handle). */
#define ERROR_NOT_SUPPORTED 50

/**
 * Runs lpStartAddress(lpParameter) on a new thread; returns its handle (close it with
 * CloseHandle: the thread runs on), or NULL with ERROR_INVALID_PARAMETER (NULL routine or an
 * unsupported flag) or ERROR_NOT_ENOUGH_MEMORY. dwStackSize 0: the default stack.
 */
HANDLE WINAPI CreateThread(LPSECURITY_ATTRIBUTES lpThreadAttributes, SIZE_T dwStackSize,
                           LPTHREAD_START_ROUTINE lpStartAddress, LPVOID lpParameter, DWORD dwCreationFlags,
                           LPDWORD lpThreadId);
/** Waits for a thread to return: WAIT_OBJECT_0, WAIT_TIMEOUT or WAIT_FAILED (not a thread handle). */
DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
/** Waits for all (bWaitAll) or any of up to 64 threads: WAIT_OBJECT_0 (+ index), WAIT_TIMEOUT or WAIT_FAILED. */
DWORD WINAPI WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll, DWORD dwMilliseconds);
/** *lpExitCode = the thread's return value, or STILL_ACTIVE. */
BOOL WINAPI GetExitCodeThread(HANDLE hThread, LPDWORD lpExitCode);

/* Time. */

/** Sleeps dwMilliseconds (INFINITE: for a very long time). */
static inline void Sleep(DWORD dwMilliseconds)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(dwMilliseconds / 1000u);
    ts.tv_nsec = (long)(dwMilliseconds % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/** Milliseconds since an arbitrary start (the monotonic clock). */
static inline ULONGLONG GetTickCount64(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ULONGLONG)ts.tv_sec * 1000u + (ULONGLONG)ts.tv_nsec / 1000000u;
}

/** GetTickCount64, truncated to 32 bits (wraps after 49.7 days). */
static inline DWORD GetTickCount(void)
{
    return (DWORD)GetTickCount64();
}

/* Interlocked operations on LONG (sequentially consistent, as on Windows). */

static inline LONG InterlockedIncrement(LONG volatile *p)
{
    return __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}

static inline LONG InterlockedDecrement(LONG volatile *p)
{
    return __atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST);
}

static inline LONG InterlockedExchangeAdd(LONG volatile *p, LONG v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

static inline LONG InterlockedExchange(LONG volatile *p, LONG v)
{
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}

static inline LONG InterlockedCompareExchange(LONG volatile *p, LONG exchange, LONG comparand)
{
    __atomic_compare_exchange_n(p, &comparand, exchange, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return comparand;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SOCKNOTIFY_PORT_WINDOWS_H */
