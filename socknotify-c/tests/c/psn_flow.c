/*
 * ProcessSocketNotifications on real sockets: the basic notification flow (T20-T24),
 * REMOVE and closesocket (T40-T43), the shared FIFO and the dequeue half of the call
 * (T52-T55), and the packet format (T66, T67).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LEVEL_ONESHOT (SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT)
#define LEVEL_PERSISTENT (SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT)

static void t20(void)
{
    HANDLE port;
    int a, b;
    UINT32 n = 77;
    OVERLAPPED_ENTRY e;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 20, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_ONESHOT), 0);
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 0, 1, &e, &n), WAIT_TIMEOUT);
    CHECK_EQ(n, 0);
    th_finish(port, a, b);
}

static void t21(void)
{
    HANDLE port;
    int a, b;
    OVERLAPPED_ENTRY e;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 21, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_ONESHOT), 0);
    th_write(b, "!", 1);
    e = th_expect(port, 21, SOCK_NOTIFY_EVENT_IN);
    CHECK(e.lpOverlapped == NULL);
    CHECK_EQ(e.Internal, 0);
    CHECK_EQ(e.dwNumberOfBytesTransferred & ~(DWORD)SOCK_NOTIFY_EVENTS_ALL, 0);
    CHECK_EQ(e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_REMOVE, 0);
    th_finish(port, a, b);
}

static void t22(void)
{
    HANDLE port;
    int a, b;
    char buf[8];
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 22, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_PERSISTENT), 0);
    th_write(b, "12345", 5);
    th_expect(port, 22, SOCK_NOTIFY_EVENT_IN);
    th_read(a, buf, 3);
    th_expect(port, 22, SOCK_NOTIFY_EVENT_IN); /* re-fires after a partial read */
    th_read(a, buf, 2);
    th_expect_none(port, 0); /* nothing stale after the drain */
    CHECK_EQ(memcmp(buf, "45", 2), 0);
    th_finish(port, a, b);
}

static void t23(void)
{
    HANDLE port;
    int a, b;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 23, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_ONESHOT), 0);
    th_write(b, "1", 1);
    th_expect(port, 23, SOCK_NOTIFY_EVENT_IN);
    th_write(b, "2", 1);
    th_expect_none(port, TH_SHORT); /* disabled by the delivery until ENABLE is reissued */
    th_finish(port, a, b);
}

static void t24(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    OVERLAPPED_ENTRY e;
    UINT32 n = 0;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 24, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_ONESHOT), 0);
    th_write(b, "1", 1);
    th_expect(port, 24, SOCK_NOTIFY_EVENT_IN);
    th_expect_none(port, TH_SHORT);
    /* re-ENABLE with the data still unread: the same call returns IN */
    r = th_reg(a, 24, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_ONESHOT);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, TH_LONG, 1, &e, &n), ERROR_SUCCESS);
    CHECK_EQ(r.registrationResult, 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(e.lpCompletionKey, 24);
    CHECK(e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN);
    th_finish(port, a, b);
}

/* Dequeues until `key`'s REMOVE packet; counts the packets of `key` (all must come before
 * or with the REMOVE). Returns the REMOVE packet's mask. */
static DWORD drain_until_remove(HANDLE port, uintptr_t key, int *packets_of_key)
{
    uint64_t deadline = th_now_ms() + TH_LONG;
    *packets_of_key = 0;
    while (th_now_ms() < deadline) {
        OVERLAPPED_ENTRY e;
        if (th_dequeue(port, &e, 1, 100) == 0)
            continue;
        if (e.lpCompletionKey != key)
            continue;
        (*packets_of_key)++;
        if (e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_REMOVE)
            return e.dwNumberOfBytesTransferred;
    }
    th_fail(__FILE__, __LINE__, "no REMOVE packet for key %lu", (unsigned long)key);
}

static void t40(void)
{
    HANDLE port;
    int a, b, count;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 40, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_PERSISTENT), 0);
    CHECK_EQ(th_op(port, a, SOCK_NOTIFY_OP_REMOVE), 0);
    drain_until_remove(port, 40, &count);
    CHECK_EQ(count, 1); /* exactly one packet, the REMOVE */
    th_write(b, "x", 1);
    th_expect_none(port, TH_SHORT); /* REMOVE is terminal */
    th_expect_unregistered(port, a); /* and the socket is free again */
    th_finish(port, a, b);
}

static void t41(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    OVERLAPPED_ENTRY e;
    UINT32 n = 0;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 41, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_PERSISTENT), 0);
    th_expect_none(port, 0);
    r = th_reg(a, 0, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 1000, 1, &e, &n), ERROR_SUCCESS);
    CHECK_EQ(r.registrationResult, 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(e.lpCompletionKey, 41);
    CHECK(e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_REMOVE);
    th_finish(port, a, b);
}

static void t42(void)
{
    HANDLE port = th_port(0);
    int a, b, c, d, count;
    SOCK_NOTIFY_REGISTRATION r;
    th_tcp_pair(&a, &b);
    th_tcp_pair(&c, &d);
    /* disabled after being enabled */
    CHECK_EQ(th_enable(port, a, 42, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_PERSISTENT), 0);
    CHECK_EQ(th_op(port, a, SOCK_NOTIFY_OP_DISABLE), 0);
    /* disabled from the start (D11) */
    r = th_reg(c, 43, SOCK_NOTIFY_OP_DISABLE, 0, 0);
    CHECK_EQ(th_apply(port, &r), 0);
    th_write(b, "x", 1);
    th_write(d, "x", 1);
    th_expect_none(port, TH_SHORT);
    CHECK_EQ(th_op(port, a, SOCK_NOTIFY_OP_REMOVE), 0);
    drain_until_remove(port, 42, &count);
    CHECK_EQ(count, 1);
    CHECK_EQ(th_op(port, c, SOCK_NOTIFY_OP_REMOVE), 0);
    drain_until_remove(port, 43, &count);
    CHECK_EQ(count, 1);
    th_closesocket(a);
    th_closesocket(b);
    th_closesocket(c);
    th_closesocket(d);
    CHECK(CloseHandle(port));
}

static void t43(void)
{
    HANDLE port = th_port(0);
    int a, b, packets = 0;
    OVERLAPPED_ENTRY e;
    th_tcp_pair(&a, &b);
    CHECK_EQ(th_enable(port, a, 43, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_PERSISTENT), 0);
    th_write(b, "x", 1);
    th_sleep_ms(200); /* let the notification be queued */
    th_closesocket(a);
    /* the queued IN packet is still delivered; no REMOVE, ever */
    while (th_dequeue(port, &e, 1, TH_SHORT) == 1) {
        CHECK_EQ(e.lpCompletionKey, 43);
        CHECK_EQ(e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_REMOVE, 0);
        CHECK(e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN);
        packets++;
        CHECK(packets < 100);
    }
    CHECK_EQ(packets, 1);
    th_closesocket(b);
    CHECK(CloseHandle(port));
}

static void t52(void)
{
    HANDLE port;
    int a, b;
    OVERLAPPED_ENTRY e[2];
    UINT32 n = 0;
    port = th_port_tcp(&a, &b);
    th_write(b, "x", 1);
    CHECK_EQ(th_enable(port, a, 52, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_PERSISTENT), 0);
    CHECK(PostQueuedCompletionStatus(port, 0xABC, 7, (LPOVERLAPPED)(uintptr_t)0x1234));
    memset(e, 0xEE, sizeof e);
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, TH_LONG, 2, e, &n), ERROR_SUCCESS);
    CHECK_EQ(n, 2);
    CHECK_EQ(e[0].lpCompletionKey, 52);
    CHECK(e[0].dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN);
    CHECK(e[0].lpOverlapped == NULL);
    CHECK_EQ(e[1].lpCompletionKey, 7);
    CHECK_EQ(e[1].dwNumberOfBytesTransferred, 0xABC);
    CHECK_EQ((uintptr_t)e[1].lpOverlapped, 0x1234);
    CHECK_EQ(e[1].Internal, 0);
    th_finish(port, a, b);
}

static void t53(void)
{
    HANDLE port = th_port(0);
    OVERLAPPED_ENTRY e[8];
    UINT32 n = 0;
    ULONG m = 0;
    int i;
    for (i = 1; i <= 5; i++)
        CHECK(PostQueuedCompletionStatus(port, (DWORD)(i * 10), (ULONG_PTR)i, NULL));
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 0, 2, e, &n), ERROR_SUCCESS);
    CHECK_EQ(n, 2);
    CHECK_EQ(e[0].lpCompletionKey, 1);
    CHECK_EQ(e[1].lpCompletionKey, 2);
    /* 3 remain, in order */
    CHECK(GetQueuedCompletionStatusEx(port, e, 8, &m, 0, FALSE));
    CHECK_EQ(m, 3);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(e[i].lpCompletionKey, i + 3);
        CHECK_EQ(e[i].dwNumberOfBytesTransferred, (i + 3) * 10);
    }
    CHECK(CloseHandle(port));
}

static void t54(void)
{
    HANDLE port = th_port(0);
    OVERLAPPED_ENTRY e;
    UINT32 n = 99;
    uint64_t t0 = th_now_ms(), dt;
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 100, 1, &e, &n), WAIT_TIMEOUT);
    dt = th_now_ms() - t0;
    CHECK_EQ(n, 0);
    CHECKF(dt >= 99, "returned early after %lu ms (D5: never early)", (unsigned long)dt);
    CHECKF(dt < 100 + 1000 * th_scale(), "returned after %lu ms", (unsigned long)dt);
    CHECK(CloseHandle(port));
}

static void t55(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    OVERLAPPED_ENTRY e;
    UINT32 n = 0;
    port = th_port_tcp(&a, &b);
    th_write(b, "buffered", 8);
    th_sleep_ms(50); /* the data is in a's receive buffer (loopback) */
    r = th_reg(a, 55, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_ONESHOT);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 1, &e, &n), ERROR_SUCCESS);
    CHECK_EQ(r.registrationResult, 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(e.lpCompletionKey, 55);
    CHECK(e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_IN);
    th_finish(port, a, b);
}

static void t66(void)
{
    HANDLE port;
    int a, b;
    OVERLAPPED_ENTRY e;
    port = th_port_unix(&a, &b);
    CHECK_EQ(th_enable(port, a, 66, SOCK_NOTIFY_REGISTER_EVENTS_ALL, LEVEL_ONESHOT), 0);
    th_write(b, "x", 1);
    e = th_expect(port, 66, 0);
    CHECK(e.dwNumberOfBytesTransferred != 0);
    CHECK_EQ(SocketNotificationRetrieveEvents(&e), e.dwNumberOfBytesTransferred);
    CHECK_EQ(socknotify_SocketNotificationRetrieveEvents(&e), e.dwNumberOfBytesTransferred);
    CHECK_EQ(socknotify_SocketNotificationRetrieveEvents(NULL), 0);
    /* a posted packet's byte count is never interpreted: it comes back as posted */
    CHECK(PostQueuedCompletionStatus(port, 0xFFFFFFFFu, 1, NULL));
    e = th_expect(port, 1, 0);
    CHECK_EQ(SocketNotificationRetrieveEvents(&e), 0xFFFFFFFFu);
    th_finish(port, a, b);
}

static void t67(void)
{
    HANDLE port;
    int a, b;
    OVERLAPPED_ENTRY e;
    UINT32 n = 0;
    port = th_port_tcp(&a, &b);
    th_write(b, "x", 1); /* an IN packet may be coalesced into the REMOVE packet */
    CHECK_EQ(th_enable(port, a, 67, SOCK_NOTIFY_REGISTER_EVENT_IN, LEVEL_PERSISTENT), 0);
    CHECK_EQ(th_op(port, a, SOCK_NOTIFY_OP_REMOVE), 0);
    for (;;) {
        memset(&e, 0xAA, sizeof e);
        CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, TH_LONG, 1, &e, &n), ERROR_SUCCESS);
        CHECK_EQ(e.lpCompletionKey, 67);
        CHECK(e.lpOverlapped == NULL);
        CHECK_EQ(e.Internal, 0);
        if (e.dwNumberOfBytesTransferred & SOCK_NOTIFY_EVENT_REMOVE)
            break;
    }
    CHECK_EQ(e.dwNumberOfBytesTransferred & ~(DWORD)SOCK_NOTIFY_EVENTS_ALL, 0);
    th_expect_none(port, TH_SHORT);
    th_finish(port, a, b);
}

const struct tcase tcases[] = {
    {"T20", "LEVEL|ONESHOT IN, no data: WAIT_TIMEOUT and count 0", t20},
    {"T21", "peer sends 1 byte: 1 entry with the key and IN, lpOverlapped NULL", t21},
    {"T22", "LEVEL|PERSISTENT: IN, partial read, IN, drain, nothing", t22},
    {"T23", "LEVEL|ONESHOT: nothing after delivery until ENABLE is reissued", t23},
    {"T24", "re-ENABLE with data unread: the same call returns IN", t24},
    {"T40", "REMOVE: exactly one REMOVE packet, nothing afterwards", t40},
    {"T41", "PSN(REMOVE, c=1, timeout 1000) returns the REMOVE packet", t41},
    {"T42", "REMOVE of a disabled registration delivers the REMOVE packet", t42},
    {"T43", "closesocket: the queued IN packet is delivered, no REMOVE ever", t43},
    {"T52", "notification and posted packet share the FIFO; posted bytes unchanged", t52},
    {"T53", "5 posted, PSN c=2: 2 entries, 3 remain in order", t53},
    {"T54", "empty port, timeout 100: WAIT_TIMEOUT after >= 100 ms, count 0", t54},
    {"T55", "registrations are applied before the dequeue (timeout 0)", t55},
    {"T66", "SocketNotificationRetrieveEvents = dwNumberOfBytesTransferred", t66},
    {"T67", "REMOVE packet: REMOVE bit, lpOverlapped NULL, Internal 0", t67},
};
const size_t ntcases = sizeof tcases / sizeof tcases[0];
