/*
 * ProcessSocketNotifications: whole-call validation (spec §3.2 V1-V7, conformance T01-T07,
 * decisions D3/D4) and per-entry validation (T08-T19, decisions D7-D12), through the C API.
 * A whole-call failure must change nothing: no registrationResult, no *receivedEntryCount,
 * no registration.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Fills a registration's result, an entries array and a count with sentinels. */
static void poison(OVERLAPPED_ENTRY *e, size_t n, UINT32 *count)
{
    memset(e, 0xAB, n * sizeof *e);
    *count = 0xC0FFEEu;
}

static int entries_untouched(const OVERLAPPED_ENTRY *e, size_t n)
{
    const unsigned char *p = (const unsigned char *)e;
    size_t i;
    for (i = 0; i < n * sizeof *e; i++)
        if (p[i] != 0xAB)
            return 0;
    return 1;
}

/* The socket got no registration from a failed call: data written by the peer produces no
 * packet on `port`, and REMOVE through `port` answers ERROR_NOT_FOUND. */
static void check_not_registered(HANDLE port, int fd, int peer)
{
    th_write(peer, "x", 1);
    th_expect_none(port, TH_SHORT);
    th_expect_unregistered(port, fd);
}

static void t01(void)
{
    HANDLE port = th_port(0);
    OVERLAPPED_ENTRY e;
    ULONG n = 0;
    CHECK(PostQueuedCompletionStatus(port, 11, 22, NULL));
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 0, 0, NULL, NULL), ERROR_SUCCESS);
    /* no effect: the packet queued before is still there, and only it */
    CHECK(GetQueuedCompletionStatusEx(port, &e, 1, &n, 0, FALSE));
    CHECK_EQ(n, 1);
    CHECK_EQ(e.lpCompletionKey, 22);
    CHECK_EQ(e.dwNumberOfBytesTransferred, 11);
    th_expect_none(port, 0);
    CHECK(CloseHandle(port));
}

static void t02(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_unix(&a, &b);
    r = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    /* count 0 with a non-NULL array */
    CHECK_EQ(ProcessSocketNotifications(port, 0, &r, 0, 0, NULL, NULL), WSAEINVAL);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    /* and the converse: count 1 with a NULL array */
    CHECK_EQ(ProcessSocketNotifications(port, 1, NULL, 0, 0, NULL, NULL), WSAEINVAL);
    check_not_registered(port, a, b);
    th_finish(port, a, b);
}

static void t03(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_tcp(&a, &b);
    r = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 100, 0, NULL, NULL), WSAEINVAL);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    /* D4: a timeout with completionCount 0 is WSAEINVAL whatever registrationCount is */
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 100, 0, NULL, NULL), WSAEINVAL);
    check_not_registered(port, a, b);
    th_finish(port, a, b);
}

static void t04(void)
{
    HANDLE port;
    int a, b;
    UINT32 count = 0xC0FFEEu;
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_tcp(&a, &b);
    r = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 0, NULL, &count), WSAEINVAL);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    CHECK_EQ(count, 0xC0FFEEu);
    check_not_registered(port, a, b);
    th_finish(port, a, b);
}

static void t05(void)
{
    HANDLE port;
    int a, b;
    UINT32 count;
    OVERLAPPED_ENTRY e[2];
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_tcp(&a, &b);
    poison(e, 2, &count);
    r = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 0, e, NULL), WSAEINVAL);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    CHECK(entries_untouched(e, 2));
    check_not_registered(port, a, b);
    th_finish(port, a, b);
}

static void t06(void)
{
    HANDLE port;
    int a, b;
    UINT32 count;
    OVERLAPPED_ENTRY e[1];
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_tcp(&a, &b);
    th_write(b, "data", 4); /* an ENABLE that slipped through would queue a packet at once */
    poison(e, 1, &count);
    r = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    /* V3: packets wanted but no output array */
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 1, NULL, &count), WSAEFAULT);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    CHECK_EQ(count, 0xC0FFEEu);
    /* V3: no count pointer */
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 1, e, NULL), WSAEFAULT);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    CHECK(entries_untouched(e, 1));
    th_expect_none(port, TH_SHORT);
    th_expect_unregistered(port, a);
    th_finish(port, a, b);
}

static void t07(void)
{
    HANDLE port = th_port(0), probe = th_port(0);
    int a, b;
    UINT32 count;
    OVERLAPPED_ENTRY e[1];
    SOCK_NOTIFY_REGISTRATION r;
    th_tcp_pair(&a, &b);
    th_write(b, "data", 4);
    CHECK(CloseHandle(port));
    poison(e, 1, &count);
    r = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 0, NULL, NULL), ERROR_INVALID_HANDLE);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 1, e, &count), ERROR_INVALID_HANDLE);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    CHECK_EQ(count, 0xC0FFEEu);
    CHECK(entries_untouched(e, 1));
    th_expect_unregistered(probe, a);
    th_closesocket(a);
    th_closesocket(b);
    CHECK(CloseHandle(probe));
}

/* V4 (not in the T list): the registration and entry arrays overlap; the count pointer
 * inside an array is treated the same way by the C API. */
static void v4_overlap(void)
{
    HANDLE port;
    int a, b;
    union {
        SOCK_NOTIFY_REGISTRATION r[4];
        OVERLAPPED_ENTRY e[3];
    } buf;
    OVERLAPPED_ENTRY e[2];
    UINT32 count = 0xC0FFEEu;
    port = th_port_tcp(&a, &b);
    th_write(b, "data", 4);
    buf.r[0] = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    buf.r[1] = th_reg(b, 2, SOCK_NOTIFY_OP_NONE, 0, 0);
    /* same start */
    CHECK_EQ(ProcessSocketNotifications(port, 1, buf.r, 0, 1, buf.e, &count), WSAEINVAL);
    CHECK_EQ(buf.r[0].registrationResult, TH_SENTINEL);
    CHECK_EQ(count, 0xC0FFEEu);
    /* partial: registrations [0, 48) and entries [32, 64) */
    CHECK_EQ(ProcessSocketNotifications(port, 2, buf.r, 0, 1, &buf.e[1], &count), WSAEINVAL);
    CHECK_EQ(buf.r[0].registrationResult, TH_SENTINEL);
    CHECK_EQ(buf.r[1].registrationResult, TH_SENTINEL);
    CHECK_EQ(count, 0xC0FFEEu);
    /* the count inside the entries array */
    CHECK_EQ(ProcessSocketNotifications(port, 1, buf.r, 0, 2, e, (UINT32 *)&e[1].dwNumberOfBytesTransferred),
             WSAEINVAL);
    CHECK_EQ(buf.r[0].registrationResult, TH_SENTINEL);
    /* the count inside the registration array */
    CHECK_EQ(ProcessSocketNotifications(port, 1, buf.r, 0, 2, e, &buf.r[0].registrationResult), WSAEINVAL);
    CHECK_EQ(buf.r[0].registrationResult, TH_SENTINEL);
    /* disjoint arrays in the same buffer are fine: registrations [0, 24), entries [32, 64) */
    CHECK_EQ(ProcessSocketNotifications(port, 1, buf.r, 0, 1, &buf.e[1], &count), ERROR_SUCCESS);
    CHECK_EQ(buf.r[0].registrationResult, 0);
    CHECK_EQ(count, 1);
    CHECK_EQ(buf.e[1].lpCompletionKey, 1);
    th_finish(port, a, b);
}

/* V7 and the return-code convention: a failed PSN also leaves its code in GetLastError(). */
static void v7_both_zero(void)
{
    HANDLE port = th_port(0);
    SetLastError(1234);
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 0, 0, NULL, NULL), ERROR_SUCCESS);
    CHECK_EQ(GetLastError(), 1234); /* success leaves the last error alone */
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 5, 0, NULL, NULL), WSAEINVAL);
    CHECK_EQ(GetLastError(), WSAEINVAL);
    CHECK(CloseHandle(port));
}

/* Checks that one ENABLE entry with (filter, trigger) or operation `op` is refused with
 * WSAEINVAL and leaves the socket unregistered. */
static void refuse(UINT8 op, UINT16 filter, UINT8 trigger)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_tcp(&a, &b);
    r = th_reg(a, 9, op, filter, trigger);
    CHECKF(th_apply(port, &r) == WSAEINVAL, "op %u filter 0x%x trigger 0x%x: result %lu, want WSAEINVAL",
           (unsigned)op, (unsigned)filter, (unsigned)trigger, (unsigned long)r.registrationResult);
    check_not_registered(port, a, b);
    th_finish(port, a, b);
}

static void t08(void)
{
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN,
           SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_EDGE | SOCK_NOTIFY_TRIGGER_PERSISTENT);
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_EDGE);
}

static void t09(void)
{
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_ONESHOT);
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_PERSISTENT);
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, 0);
}

static void t10(void)
{
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN,
           SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_PERSISTENT | SOCK_NOTIFY_TRIGGER_LEVEL);
}

static void t11(void)
{
    HANDLE port;
    int a, b;
    char buf[8];
    port = th_port_tcp(&a, &b);
    th_write(b, "12345", 5);
    CHECK_EQ(th_enable(port, a, 11, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL), 0);
    th_expect(port, 11, SOCK_NOTIFY_EVENT_IN);
    th_read(a, buf, 2);
    /* no persistence bit = PERSISTENT: IN again without a re-ENABLE */
    th_expect(port, 11, SOCK_NOTIFY_EVENT_IN);
    th_read(a, buf, 3);
    th_finish(port, a, b);
}

static void t12(void)
{
    refuse(SOCK_NOTIFY_OP_ENABLE, 0x08, SOCK_NOTIFY_TRIGGER_LEVEL);
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN | 0x40, SOCK_NOTIFY_TRIGGER_LEVEL);
    refuse(SOCK_NOTIFY_OP_ENABLE, 0x100 | SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
}

static void t13(void)
{
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, 0x14);
    refuse(SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, 0x84);
}

static void t14(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    char c;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 14, SOCK_NOTIFY_REGISTER_EVENT_IN,
                       SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT), 0);
    r = th_reg(a, 99, SOCK_NOTIFY_OP_ENABLE | SOCK_NOTIFY_OP_REMOVE, SOCK_NOTIFY_REGISTER_EVENT_IN,
               SOCK_NOTIFY_TRIGGER_LEVEL);
    CHECK_EQ(th_apply(port, &r), WSAEINVAL);
    /* state unchanged: no REMOVE happened and the registration still works with its key */
    th_expect_none(port, TH_SHORT);
    th_write(b, "x", 1);
    th_expect(port, 14, SOCK_NOTIFY_EVENT_IN);
    th_read(a, &c, 1);
    CHECK_EQ(th_op(port, a, SOCK_NOTIFY_OP_REMOVE), 0);
    th_expect(port, 14, SOCK_NOTIFY_EVENT_REMOVE);
    th_finish(port, a, b);
}

static void t15(void)
{
    refuse(3, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    refuse(8, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    refuse(0xFF, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
}

static void t16(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 16, SOCK_NOTIFY_REGISTER_EVENT_IN,
                       SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT), 0);
    /* NONE with garbage in every other field: 0 and nothing else (D9) */
    r = th_reg(a, 1234, SOCK_NOTIFY_OP_NONE, 0xFFFF, 0xFF);
    CHECK_EQ(th_apply(port, &r), 0);
    r = th_reg(-1, 1234, SOCK_NOTIFY_OP_NONE, 0, 0); /* not even the socket is checked */
    CHECK_EQ(th_apply(port, &r), 0);
    th_expect_none(port, 0);
    th_write(b, "x", 1);
    th_expect(port, 16, SOCK_NOTIFY_EVENT_IN); /* same key, same filter */
    th_write(b, "y", 1);
    th_expect_none(port, TH_SHORT); /* still ONESHOT: disabled by the delivery */
    th_finish(port, a, b);
}

static void t17(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_tcp(&a, &b);
    r = th_reg(a, 17, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    CHECK_EQ(th_apply(port, &r), ERROR_NOT_FOUND);
    th_expect_none(port, TH_SHORT);
    th_finish(port, a, b);
}

static void t18(void)
{
    HANDLE port = th_port(0);
    int p[2], devnull, a, b, closed;
    SOCK_NOTIFY_REGISTRATION r;
    CHECK_SYS(pipe(p));
    devnull = open("/dev/null", O_RDWR);
    CHECK_SYS(devnull);
    th_unix_pair(&a, &b);
    closed = a;
    th_closesocket(a); /* a closed socket's number */
    {
        SOCKET bad[6];
        size_t i;
        bad[0] = (SOCKET)p[0];
        bad[1] = (SOCKET)devnull;
        bad[2] = (SOCKET)closed;
        bad[3] = INVALID_SOCKET;
        bad[4] = (SOCKET)0x7FFFFFF0;   /* out of the descriptor table */
        bad[5] = (SOCKET)1 << 40;      /* not even an int */
        for (i = 0; i < 6; i++) {
            r = th_reg(0, 18, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
            r.socket = bad[i];
            CHECKF(th_apply(port, &r) == WSAENOTSOCK, "socket value %lu: result %lu, want WSAENOTSOCK",
                   (unsigned long)bad[i], (unsigned long)r.registrationResult);
        }
    }
    /* the pipe was not registered: data in it produces nothing */
    CHECK_SYS((int)write(p[1], "x", 1));
    th_expect_none(port, TH_SHORT);
    close(p[0]);
    close(p[1]);
    close(devnull);
    th_closesocket(b);
    CHECK(CloseHandle(port));
}

static void t19(void)
{
    HANDLE port = th_port(0);
    int a[3], peer[3], i, seen[3] = {0, 0, 0};
    SOCK_NOTIFY_REGISTRATION r[3];
    OVERLAPPED_ENTRY e[8];
    UINT32 n = 0, got = 0;
    uint64_t deadline;
    for (i = 0; i < 3; i++)
        th_tcp_pair(&a[i], &peer[i]);
    for (i = 0; i < 3; i++)
        r[i] = th_reg(a[i], (uintptr_t)(100 + i), SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN,
                      SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT);
    r[1].triggerFlags = SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_EDGE; /* invalid */
    CHECK_EQ(ProcessSocketNotifications(port, 3, r, 0, 0, NULL, NULL), ERROR_SUCCESS);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, WSAEINVAL);
    CHECK_EQ(r[2].registrationResult, 0);
    for (i = 0; i < 3; i++)
        th_write(peer[i], "x", 1);
    /* entries 1 and 3 are effective (keys 100 and 102), entry 2 is not (key 101) */
    deadline = th_now_ms() + TH_LONG;
    while ((!seen[0] || !seen[2]) && th_now_ms() < deadline) {
        UINT32 k;
        n = th_dequeue(port, e, 8, 100);
        for (k = 0; k < n; k++) {
            uintptr_t key = e[k].lpCompletionKey;
            CHECKF(key == 100 || key == 102, "packet with key %lu", (unsigned long)key);
            seen[key - 100] = 1;
            got++;
        }
    }
    CHECK(seen[0] && seen[2]);
    CHECK(!seen[1]);
    th_expect_unregistered(port, a[1]);
    for (i = 0; i < 3; i++) {
        th_closesocket(a[i]);
        th_closesocket(peer[i]);
    }
    CHECK(got >= 2);
    CHECK(CloseHandle(port));
}

const struct tcase tcases[] = {
    {"T01", "PSN(0, NULL, 0, 0, NULL, NULL) succeeds and has no effect", t01},
    {"T02", "registrationCount/registrationInfos NULL mismatch: WSAEINVAL, nothing changes", t02},
    {"T03", "completionCount 0 with a timeout: WSAEINVAL, socket not registered", t03},
    {"T04", "completionCount 0 with a count pointer: WSAEINVAL, not registered", t04},
    {"T05", "completionCount 0 with an entries array: WSAEINVAL, not registered", t05},
    {"T06", "completionCount 1 with a NULL array or count: WSAEFAULT, not registered", t06},
    {"T07", "closed port handle: ERROR_INVALID_HANDLE, not registered", t07},
    {"V4", "overlapping arrays (or count inside an array): WSAEINVAL, nothing changes", v4_overlap},
    {"V7", "both counts 0 succeed; a failure code is also the last error", v7_both_zero},
    {"T08", "ENABLE with LEVEL|EDGE: WSAEINVAL, not registered", t08},
    {"T09", "ENABLE without LEVEL or EDGE: WSAEINVAL", t09},
    {"T10", "ENABLE with ONESHOT|PERSISTENT: WSAEINVAL", t10},
    {"T11", "ENABLE with LEVEL alone behaves as persistent", t11},
    {"T12", "ENABLE with filter bits outside 0x7: WSAEINVAL", t12},
    {"T13", "ENABLE with trigger bits outside 0xF: WSAEINVAL", t13},
    {"T14", "operation ENABLE|REMOVE: WSAEINVAL, registration unchanged", t14},
    {"T15", "operations 3, 8, 0xFF: WSAEINVAL", t15},
    {"T16", "OP_NONE: 0 and the registration is unchanged", t16},
    {"T17", "REMOVE of a never-registered socket: ERROR_NOT_FOUND, no packet", t17},
    {"T18", "pipe, file, closed, invalid and huge socket values: WSAENOTSOCK", t18},
    {"T19", "valid, invalid, valid entries: results 0, WSAEINVAL, 0; 1 and 3 effective", t19},
};
const size_t ntcases = sizeof tcases / sizeof tcases[0];
