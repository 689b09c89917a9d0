/*
 * Properties of the C API itself: handle checking, argument checking of the
 * completion-port calls, timeouts, the per-thread last error and closesocket.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every call with a handle that is not a live port answers ERROR_INVALID_HANDLE. */
static void check_dead_handle(HANDLE h)
{
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)1;
    OVERLAPPED_ENTRY e;
    ULONG removed = 0;
    UINT32 n = 0;
    SetLastError(0);
    CHECK(!PostQueuedCompletionStatus(h, 1, 2, NULL));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(h, &bytes, &key, &ov, 0));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(ov == NULL);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(h, &e, 1, &removed, 0, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK_EQ(ProcessSocketNotifications(h, 0, NULL, 0, 0, NULL, NULL), ERROR_INVALID_HANDLE);
    CHECK_EQ(ProcessSocketNotifications(h, 0, NULL, 0, 1, &e, &n), ERROR_INVALID_HANDLE);
    SetLastError(0);
    CHECK(!CloseHandle(h));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

static void garbage_handles(void)
{
    int local = 0;
    HANDLE live = th_port(0);
    check_dead_handle(NULL);
    check_dead_handle(INVALID_HANDLE_VALUE);
    check_dead_handle((HANDLE)(uintptr_t)1);
    check_dead_handle((HANDLE)(uintptr_t)0xDEADBEEF);
    check_dead_handle((HANDLE)((uintptr_t)live + 1));
    check_dead_handle((HANDLE)&local);
    /* the live port was not disturbed */
    CHECK(PostQueuedCompletionStatus(live, 5, 6, NULL));
    {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        CHECK(GetQueuedCompletionStatus(live, &bytes, &key, &ov, 0));
        CHECK_EQ(key, 6);
        CHECK_EQ(bytes, 5);
    }
    CHECK(CloseHandle(live));
    check_dead_handle(live);
}

static void handle_values(void)
{
    HANDLE h[8];
    int i, j;
    for (i = 0; i < 8; i++) {
        h[i] = th_port((DWORD)i);
        CHECK(h[i] != NULL && h[i] != INVALID_HANDLE_VALUE);
        for (j = 0; j < i; j++)
            CHECK(h[i] != h[j]);
        if (i % 2 == 1)
            CHECK(CloseHandle(h[i])); /* closed values are never handed out again */
    }
    for (i = 0; i < 8; i += 2)
        CHECK(CloseHandle(h[i]));
}

static void create_forms(void)
{
    HANDLE port;
    int a, b;
    port = th_port_unix(&a, &b);
    SetLastError(0);
    /* association of a "file handle" with a new port */
    CHECK(CreateIoCompletionPort((HANDLE)(uintptr_t)a, NULL, 1, 0) == NULL);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    SetLastError(0);
    /* association with an existing port */
    CHECK(CreateIoCompletionPort((HANDLE)(uintptr_t)a, port, 1, 0) == NULL);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(CreateIoCompletionPort(INVALID_HANDLE_VALUE, port, 1, 0) == NULL);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(CreateIoCompletionPort(NULL, NULL, 0, 0) == NULL);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    /* the key is ignored for the creation form */
    {
        HANDLE p2 = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 12345, 3);
        CHECK(p2 != NULL);
        CHECK(CloseHandle(p2));
    }
    th_finish(port, a, b);
}

static void gqcs_arguments(void)
{
    HANDLE port = th_port(0);
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)1;
    OVERLAPPED_ENTRY e[2];
    ULONG removed = 0xC0FFEEu;
    CHECK(PostQueuedCompletionStatus(port, 1, 2, NULL)); /* must survive every refused call */
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, NULL, &key, &ov, 0));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(ov == NULL);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, &bytes, NULL, &ov, 0));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, NULL, 0));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(port, e, 0, &removed, 0, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(removed, 0xC0FFEEu);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(port, NULL, 1, &removed, 0, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(port, e, 1, NULL, 0, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(port, e, 2, (PULONG)&e[1].dwNumberOfBytesTransferred, 0, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    /* the packet is still there */
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, 0));
    CHECK_EQ(key, 2);
    CHECK_EQ(bytes, 1);
    CHECK(ov == NULL);
    CHECK(CloseHandle(port));
}

static void timeouts(void)
{
    HANDLE port = th_port(0);
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)1;
    OVERLAPPED_ENTRY e;
    ULONG removed = 0xC0FFEEu;
    uint64_t t0, dt;
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, 0));
    CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
    CHECK(ov == NULL);
    t0 = th_now_ms();
    ov = (LPOVERLAPPED)(uintptr_t)1;
    CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, 120));
    dt = th_now_ms() - t0;
    CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
    CHECK(ov == NULL);
    CHECKF(dt >= 119 && dt < 120 + 1000 * th_scale(), "GQCS(120 ms) took %lu ms", (unsigned long)dt);
    SetLastError(0);
    t0 = th_now_ms();
    CHECK(!GetQueuedCompletionStatusEx(port, &e, 1, &removed, 120, TRUE));
    dt = th_now_ms() - t0;
    CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
    CHECK_EQ(removed, 0);
    CHECKF(dt >= 119 && dt < 120 + 1000 * th_scale(), "GQCSEx(120 ms) took %lu ms", (unsigned long)dt);
    /* fAlertable has no effect: a queued packet is returned as with FALSE */
    CHECK(PostQueuedCompletionStatus(port, 3, 4, (LPOVERLAPPED)(uintptr_t)5));
    CHECK(GetQueuedCompletionStatusEx(port, &e, 1, &removed, 0, TRUE));
    CHECK_EQ(removed, 1);
    CHECK_EQ(e.lpCompletionKey, 4);
    CHECK_EQ(e.dwNumberOfBytesTransferred, 3);
    CHECK_EQ((uintptr_t)e.lpOverlapped, 5);
    CHECK(CloseHandle(port));
}

struct err_thread {
    DWORD set, seen_before, seen_after;
};

static void *err_main(void *arg)
{
    struct err_thread *t = (struct err_thread *)arg;
    t->seen_before = GetLastError();
    WSASetLastError((int)t->set);
    th_sleep_ms(20);
    t->seen_after = (DWORD)WSAGetLastError();
    return NULL;
}

static void last_error(void)
{
    pthread_t th[4];
    struct err_thread t[4];
    int i;
    SetLastError(42);
    CHECK_EQ(GetLastError(), 42);
    CHECK_EQ(WSAGetLastError(), 42);
    WSASetLastError(WSAENOTSOCK);
    CHECK_EQ(GetLastError(), WSAENOTSOCK);
    for (i = 0; i < 4; i++) {
        t[i].set = (DWORD)(1000 + i);
        CHECK_EQ(pthread_create(&th[i], NULL, err_main, &t[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(t[i].seen_before, 0); /* a new thread starts at 0 */
        CHECK_EQ(t[i].seen_after, 1000 + i);
    }
    CHECK_EQ(GetLastError(), WSAENOTSOCK); /* untouched by the other threads */
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void closesocket_errors(void)
{
    int p[2], a, b;
    CHECK_SYS(pipe(p));
    WSASetLastError(0);
    CHECK_EQ(closesocket((SOCKET)p[0]), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK(fd_is_open(p[0])); /* not a socket: not closed */
    th_unix_pair(&a, &b);
    CHECK_EQ(closesocket((SOCKET)a), 0);
    CHECK(!fd_is_open(a));
    WSASetLastError(0);
    CHECK_EQ(closesocket((SOCKET)a), SOCKET_ERROR); /* already closed */
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    WSASetLastError(0);
    CHECK_EQ(closesocket(INVALID_SOCKET), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    WSASetLastError(0);
    CHECK_EQ(closesocket((SOCKET)1 << 40), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    th_closesocket(b);
    close(p[0]);
    close(p[1]);
}

/* closesocket drops the registration silently: no REMOVE on the old port, and the
 * descriptor number, reused by a new socket, can be registered with another port. */
static void closesocket_forgets(void)
{
    HANDLE p1 = th_port(0), p2 = th_port(0);
    int a, b, c, d;
    th_unix_pair(&a, &b);
    CHECK_EQ(th_enable(p1, a, 1, SOCK_NOTIFY_REGISTER_EVENT_IN,
                       SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT), 0);
    th_closesocket(a);
    th_unix_pair(&c, &d);
    CHECKF(c == a || d == a, "descriptor %d was not reused (got %d, %d)", a, c, d);
    if (d == a) { /* keep c as the reused number */
        int t = c;
        c = d;
        d = t;
    }
    /* same number, new socket: not "registered with another port" */
    CHECK_EQ(th_enable(p2, c, 2, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT), 0);
    th_write(d, "x", 1);
    th_expect(p2, 2, SOCK_NOTIFY_EVENT_IN);
    th_expect_none(p1, TH_SHORT); /* no REMOVE and nothing under the old key */
    th_closesocket(b);
    th_closesocket(c);
    th_closesocket(d);
    CHECK(CloseHandle(p1));
    CHECK(CloseHandle(p2));
}

/* Closing a port drops its registrations silently (D6): the socket can then go elsewhere. */
static void close_port_frees_sockets(void)
{
    HANDLE p1 = th_port(0), p2 = th_port(0);
    int a, b;
    SOCK_NOTIFY_REGISTRATION r;
    th_unix_pair(&a, &b);
    CHECK_EQ(th_enable(p1, a, 1, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL), 0);
    /* D13: another port is refused while p1 holds the socket */
    r = th_reg(a, 2, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    CHECK_EQ(th_apply(p2, &r), WSAEINVAL);
    CHECK(CloseHandle(p1));
    CHECK_EQ(th_enable(p2, a, 2, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL), 0);
    th_write(b, "x", 1);
    th_expect(p2, 2, SOCK_NOTIFY_EVENT_IN);
    th_closesocket(a);
    th_closesocket(b);
    CHECK(CloseHandle(p2));
}

/* Pointers that Rust could not use (misaligned) are refused with WSAEFAULT, changing nothing. */
static void misaligned(void)
{
    HANDLE port;
    int a, b;
    union {
        OVERLAPPED_ENTRY e[3];
        unsigned char bytes[96];
    } buf;
    UINT32 n = 0xC0FFEEu;
    SOCK_NOTIFY_REGISTRATION r;
    port = th_port_unix(&a, &b);
    th_write(b, "x", 1);
    r = th_reg(a, 1, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_TRIGGER_LEVEL);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, 0, 1, (OVERLAPPED_ENTRY *)(void *)(buf.bytes + 4), &n),
             WSAEFAULT);
    CHECK_EQ(r.registrationResult, TH_SENTINEL);
    CHECK_EQ(n, 0xC0FFEEu);
    th_expect_unregistered(port, a);
    th_finish(port, a, b);
}

/* socknotify_SetPortOptions: checked arguments, only before the first registration; with
 * SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT the PSN loop behaves as without it. */
static void port_options(void)
{
    HANDLE port = th_port(0), late;
    int a, b, i;
    SetLastError(0);
    CHECK(!socknotify_SetPortOptions(INVALID_HANDLE_VALUE, SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(!socknotify_SetPortOptions(port, 0x2));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(socknotify_SetPortOptions(port, SOCKNOTIFY_PORT_CLOSES_THROUGH_PORT));
    th_unix_pair(&a, &b);
    CHECK_EQ(th_enable(port, a, 9, SOCK_NOTIFY_REGISTER_EVENT_IN,
                       SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT), 0);
    th_write(b, "x", 1);
    for (i = 0; i < 3; i++) {
        /* ONESHOT: one packet, then nothing until the re-arm; the data is still unread. */
        th_expect(port, 9, SOCK_NOTIFY_EVENT_IN);
        th_expect_none(port, 50);
        CHECK_EQ(th_enable(port, a, 9, SOCK_NOTIFY_REGISTER_EVENT_IN,
                           SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT), 0);
    }
    th_expect(port, 9, SOCK_NOTIFY_EVENT_IN);
    {
        SOCKNOTIFY_PORT_STATS st;
        CHECK(socknotify_GetPortStats(port, &st));
        CHECK_EQ(st.registrations, 1);
        CHECK_EQ(st.delivered, 4);
        CHECK_EQ(st.queued, 0);
        CHECK(!socknotify_GetPortStats(port, NULL));
        CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    }
    /* Too late now: the port has a registration. */
    CHECK(!socknotify_SetPortOptions(port, 0));
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    th_finish(port, a, b);
    late = th_port(0);
    CHECK(CloseHandle(late));
    CHECK(!socknotify_SetPortOptions(late, 0));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

/* poll(2) on the port's descriptor: 1 if readable within ms milliseconds. */
static int readable_within(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, ms);
    CHECK(n >= 0);
    return n == 1 && (p.revents & POLLIN);
}

static void port_descriptor(void)
{
    HANDLE port = th_port(0), dead;
    OVERLAPPED_ENTRY e[4];
    ULONG n = 0;
    int fd, a, b;
    CHECK_EQ(socknotify_GetPortDescriptor(INVALID_HANDLE_VALUE), -1);
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    fd = socknotify_GetPortDescriptor(port);
    CHECK(fd >= 0);
    CHECK_EQ(socknotify_GetPortDescriptor(port), fd);
    /* Idle: quiet. A post: readable until it is dequeued. */
    CHECK(!readable_within(fd, 50));
    CHECK(PostQueuedCompletionStatus(port, 1, 7, NULL));
    CHECK(readable_within(fd, 0));
    CHECK(GetQueuedCompletionStatusEx(port, e, 4, &n, 0, FALSE));
    CHECK_EQ(n, 1);
    CHECK_EQ(e[0].lpCompletionKey, 7);
    CHECK(!readable_within(fd, 50));
    CHECK(!GetQueuedCompletionStatusEx(port, e, 4, &n, 0, FALSE));
    CHECK_EQ(GetLastError(), WAIT_TIMEOUT);
    /* A socket's readiness makes it readable; the dequeue takes the packet. */
    th_unix_pair(&a, &b);
    CHECK_EQ(th_enable(port, a, 3, SOCK_NOTIFY_REGISTER_EVENT_IN,
                       SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT), 0);
    CHECK(!readable_within(fd, 50));
    th_write(b, "x", 1);
    CHECK(readable_within(fd, 3000));
    CHECK(GetQueuedCompletionStatusEx(port, e, 4, &n, 0, FALSE));
    CHECK_EQ(n, 1);
    CHECK_EQ(e[0].lpCompletionKey, 3);
    th_finish(port, a, b);
    dead = th_port(0);
    CHECK(CloseHandle(dead));
    CHECK_EQ(socknotify_GetPortDescriptor(dead), -1);
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
}

const struct tcase tcases[] = {
    {"garbage_handles", "NULL, INVALID_HANDLE_VALUE and random handles: ERROR_INVALID_HANDLE", garbage_handles},
    {"handle_values", "port handles are distinct, never NULL/INVALID, never reused", handle_values},
    {"create_forms", "CreateIoCompletionPort association forms: NULL + ERROR_INVALID_PARAMETER", create_forms},
    {"gqcs_arguments", "NULL outputs and ulCount 0: FALSE + ERROR_INVALID_PARAMETER", gqcs_arguments},
    {"timeouts", "GQCS/GQCSEx timeouts: FALSE, WAIT_TIMEOUT, never early; fAlertable ignored", timeouts},
    {"last_error", "GetLastError/WSAGetLastError share one value per thread", last_error},
    {"closesocket_errors", "closesocket of non-sockets: SOCKET_ERROR + WSAENOTSOCK", closesocket_errors},
    {"closesocket_forgets", "closesocket drops the registration silently; fd reuse is safe", closesocket_forgets},
    {"close_port_frees_sockets", "CloseHandle(port) drops its registrations (D6)", close_port_frees_sockets},
    {"misaligned", "a misaligned array: WSAEFAULT, nothing changes", misaligned},
    {"port_options", "socknotify_SetPortOptions: checked, before the first registration only", port_options},
    {"port_descriptor", "socknotify_GetPortDescriptor: quiet when idle, readable with a packet", port_descriptor},
};
const size_t ntcases = sizeof tcases / sizeof tcases[0];
