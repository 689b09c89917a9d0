/*
 * Completion-port behaviour through the C API with real pthreads: closing a port under
 * blocked waiters (T56-T58), stale handles (T59), LIFO wake-up (T60), batch FIFO (T61),
 * the concurrency value (T64), and GQCS on a notification (T72).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What a waiter thread did. */
struct waiter {
    HANDLE port;
    int kind; /* 0: GQCS, 1: GQCSEx, 2: PSN */
    int entered;
    int done;
    BOOL ok;
    DWORD rc;      /* PSN's return value */
    DWORD error;   /* GetLastError() in the waiter */
    DWORD bytes;
    ULONG_PTR key;
    LPOVERLAPPED ov;
    UINT32 count;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = (struct waiter *)arg;
    OVERLAPPED_ENTRY e;
    ULONG removed = 0xC0FFEEu;
    w->ov = (LPOVERLAPPED)(uintptr_t)0x5555; /* must be overwritten with NULL on failure */
    w->count = 0xC0FFEEu;
    SetLastError(0);
    TH_STORE(w->entered, 1);
    switch (w->kind) {
    case 0:
        w->ok = GetQueuedCompletionStatus(w->port, &w->bytes, &w->key, &w->ov, INFINITE);
        break;
    case 1:
        w->ok = GetQueuedCompletionStatusEx(w->port, &e, 1, &removed, INFINITE, FALSE);
        if (w->ok) {
            w->key = e.lpCompletionKey;
            w->bytes = e.dwNumberOfBytesTransferred;
            w->ov = e.lpOverlapped;
        }
        w->count = removed;
        break;
    default:
        w->rc = ProcessSocketNotifications(w->port, 0, NULL, INFINITE, 1, &e, &w->count);
        w->ok = w->rc == ERROR_SUCCESS;
        if (w->ok)
            w->key = e.lpCompletionKey;
        break;
    }
    w->error = GetLastError();
    TH_STORE(w->done, 1);
    return NULL;
}

static void start(pthread_t *t, struct waiter *w, HANDLE port, int kind)
{
    memset(w, 0, sizeof *w);
    w->port = port;
    w->kind = kind;
    CHECK_EQ(pthread_create(t, NULL, waiter_main, w), 0);
    while (!TH_LOAD(w->entered))
        th_sleep_ms(1);
    th_sleep_ms(100); /* let it block inside the call */
}

static void closed_under_waiter(int kind)
{
    HANDLE port = th_port(0);
    pthread_t t;
    struct waiter w;
    uint64_t t0;
    start(&t, &w, port, kind);
    CHECKF(!TH_LOAD(w.done), "the waiter returned before the close (kind %d)", kind);
    t0 = th_now_ms();
    CHECK(CloseHandle(port));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECKF(th_now_ms() - t0 < TH_LONG, "the waiter took too long to return");
    CHECK(!w.ok);
    if (kind == 2) {
        CHECK_EQ(w.rc, ERROR_ABANDONED_WAIT_0);
        CHECK_EQ(w.count, 0xC0FFEEu); /* a failed call leaves the count alone */
    } else {
        CHECK_EQ(w.error, ERROR_ABANDONED_WAIT_0);
    }
    if (kind == 0)
        CHECK(w.ov == NULL);
}

static void t56(void)
{
    closed_under_waiter(0);
}

static void t57(void)
{
    closed_under_waiter(1);
}

static void t58(void)
{
    closed_under_waiter(2);
}

static void t59(void)
{
    HANDLE port = th_port(0);
    DWORD bytes = 1;
    ULONG_PTR key = 2;
    LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)0x77;
    OVERLAPPED_ENTRY e;
    ULONG removed = 0xC0FFEEu;
    UINT32 n = 0xC0FFEEu;
    CHECK(PostQueuedCompletionStatus(port, 1, 1, NULL)); /* discarded with the port */
    CHECK(CloseHandle(port));
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, 0));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(ov == NULL);
    SetLastError(0);
    CHECK(!GetQueuedCompletionStatusEx(port, &e, 1, &removed, 0, FALSE));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK_EQ(removed, 0xC0FFEEu);
    SetLastError(0);
    CHECK(!PostQueuedCompletionStatus(port, 1, 1, NULL));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK_EQ(ProcessSocketNotifications(port, 0, NULL, 0, 1, &e, &n), ERROR_INVALID_HANDLE);
    CHECK_EQ(n, 0xC0FFEEu);
    SetLastError(0);
    CHECK(!CloseHandle(port));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    /* a new port never gets the old handle value back */
    {
        HANDLE again = th_port(0);
        CHECK(again != port);
        CHECK(CloseHandle(again));
    }
}

static void t60(void)
{
    HANDLE port = th_port(4);
    pthread_t t1, t2;
    struct waiter w1, w2;
    start(&t1, &w1, port, 0);
    start(&t2, &w2, port, 0);
    CHECK(PostQueuedCompletionStatus(port, 0, 3, NULL));
    CHECK(PostQueuedCompletionStatus(port, 0, 4, NULL));
    CHECK_EQ(pthread_join(t1, NULL), 0);
    CHECK_EQ(pthread_join(t2, NULL), 0);
    CHECK(w1.ok && w2.ok);
    CHECKF(w2.key == 3 && w1.key == 4, "LIFO: later waiter got %lu, earlier got %lu (want 3, 4)",
           (unsigned long)w2.key, (unsigned long)w1.key);
    CHECK(CloseHandle(port));
}

static void t61(void)
{
    HANDLE port = th_port(0);
    OVERLAPPED_ENTRY e[4];
    ULONG n = 0;
    CHECK(PostQueuedCompletionStatus(port, 789, 123, (LPOVERLAPPED)(uintptr_t)456));
    CHECK(PostQueuedCompletionStatus(port, 56, 12, (LPOVERLAPPED)(uintptr_t)34));
    memset(e, 0xEE, sizeof e);
    CHECK(GetQueuedCompletionStatusEx(port, e, 2, &n, 0, FALSE));
    CHECK_EQ(n, 2);
    CHECK_EQ(e[0].lpCompletionKey, 123);
    CHECK_EQ((uintptr_t)e[0].lpOverlapped, 456);
    CHECK_EQ(e[0].Internal, 0);
    CHECK_EQ(e[0].dwNumberOfBytesTransferred, 789);
    CHECK_EQ(e[1].lpCompletionKey, 12);
    CHECK_EQ((uintptr_t)e[1].lpOverlapped, 34);
    CHECK_EQ(e[1].Internal, 0);
    CHECK_EQ(e[1].dwNumberOfBytesTransferred, 56);
    /* the entry past the count is untouched */
    CHECK_EQ(e[2].lpCompletionKey, (ULONG_PTR)0xEEEEEEEEEEEEEEEEull);
    CHECK(CloseHandle(port));
}

/* T64: concurrency 1. T1 dequeues a packet and stays busy; T2 waits; a new packet must not
 * release T2 while T1 runs, and T1 takes it without blocking when it calls again. */
struct busy {
    HANDLE port;
    int got_first, go_again, done;
    BOOL ok1, ok2;
    ULONG_PTR key1, key2;
    uint64_t second_ms;
};

static void *busy_main(void *arg)
{
    struct busy *b = (struct busy *)arg;
    DWORD bytes;
    LPOVERLAPPED ov;
    uint64_t t0;
    b->ok1 = GetQueuedCompletionStatus(b->port, &bytes, &b->key1, &ov, INFINITE);
    TH_STORE(b->got_first, 1);
    while (!TH_LOAD(b->go_again)) /* busy: not in a dequeue */
        th_sleep_ms(1);
    t0 = th_now_ms();
    b->ok2 = GetQueuedCompletionStatus(b->port, &bytes, &b->key2, &ov, 0);
    b->second_ms = th_now_ms() - t0;
    TH_STORE(b->done, 1);
    return NULL;
}

static void t64(void)
{
    HANDLE port = th_port(1);
    pthread_t t1, t2;
    struct busy b;
    struct waiter w2;
    memset(&b, 0, sizeof b);
    b.port = port;
    CHECK_EQ(pthread_create(&t1, NULL, busy_main, &b), 0);
    th_sleep_ms(50);
    CHECK(PostQueuedCompletionStatus(port, 0, 1, NULL));
    while (!TH_LOAD(b.got_first))
        th_sleep_ms(1);
    CHECK(b.ok1);
    CHECK_EQ(b.key1, 1);
    start(&t2, &w2, port, 0); /* T2 waits */
    CHECK(PostQueuedCompletionStatus(port, 0, 2, NULL));
    th_sleep_ms(300);
    CHECKF(!TH_LOAD(w2.done), "T2 was released (key %lu) while T1 was running with concurrency 1",
           (unsigned long)w2.key);
    TH_STORE(b.go_again, 1);
    CHECK_EQ(pthread_join(t1, NULL), 0);
    CHECK(b.ok2);
    CHECK_EQ(b.key2, 2);
    /* T2 never got a packet; closing the port releases it */
    CHECK(!TH_LOAD(w2.done));
    CHECK(CloseHandle(port));
    CHECK_EQ(pthread_join(t2, NULL), 0);
    CHECK(!w2.ok);
    CHECK_EQ(w2.error, ERROR_ABANDONED_WAIT_0);
}

static void t72(void)
{
    HANDLE port;
    int a, b;
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    LPOVERLAPPED ov = (LPOVERLAPPED)(uintptr_t)0x99;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 72, SOCK_NOTIFY_REGISTER_EVENT_IN,
                       SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT), 0);
    th_write(b, "x", 1);
    CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, TH_LONG));
    CHECK(ov == NULL);
    CHECK_EQ(key, 72);
    CHECK(bytes & SOCK_NOTIFY_EVENT_IN);
    CHECK_EQ(bytes & ~(DWORD)SOCK_NOTIFY_EVENTS_ALL, 0);
    th_finish(port, a, b);
}

/* A waiter sleeping inside the port (with a live registration, so it waits on the kernel
 * for everybody) is handed a posted packet while another thread makes a non-blocking
 * dequeue at the same moment: the waiter must still return with the packet (spec §6.2, a
 * post satisfies one waiter; §4.5, waiters are woken). Repeated to catch the race. */
static struct waiter handoff_w;

static void wake_handoff(void)
{
    HANDLE port;
    int a, b, i;
    port = th_port_tcp(&a, &b);
    CHECK_EQ(th_enable(port, a, 5, SOCK_NOTIFY_REGISTER_EVENT_IN,
                       SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT), 0);
    for (i = 0; i < 200; i++) {
        pthread_t t;
        uint64_t t0;
        OVERLAPPED_ENTRY e;
        UINT32 n = 0;
        DWORD rc;
        memset(&handoff_w, 0, sizeof handoff_w);
        handoff_w.port = port;
        handoff_w.kind = 2;
        CHECK_EQ(pthread_create(&t, NULL, waiter_main, &handoff_w), 0);
        while (!TH_LOAD(handoff_w.entered))
            th_sleep_ms(1);
        th_sleep_ms(2);
        CHECK(PostQueuedCompletionStatus(port, 1, 77, NULL));
        rc = ProcessSocketNotifications(port, 0, NULL, 0, 1, &e, &n);
        if (rc == ERROR_SUCCESS) {
            /* The waiter was not yet blocked when the packet came (a loaded machine): the
             * caller took it. Release the waiter with a second packet. */
            CHECK(PostQueuedCompletionStatus(port, 1, 78, NULL));
        }
        t0 = th_now_ms();
        while (!TH_LOAD(handoff_w.done) && th_now_ms() - t0 < 2000)
            th_sleep_ms(1);
        if (!TH_LOAD(handoff_w.done)) {
            /* release the stuck waiter before failing, so the process can exit */
            CHECK(CloseHandle(port));
            pthread_join(t, NULL);
            th_fail(__FILE__, __LINE__,
                    "iteration %d: the posted packet went neither to the blocked waiter (still asleep) "
                    "nor to the polling caller (rc %lu)", i, (unsigned long)rc);
        }
        CHECK_EQ(pthread_join(t, NULL), 0);
        /* exactly one of the two got the packet */
        if (rc == ERROR_SUCCESS) {
            CHECK_EQ(e.lpCompletionKey, 77);
            CHECK(handoff_w.ok);
            CHECK_EQ(handoff_w.key, 78);
        } else {
            CHECK_EQ(rc, WAIT_TIMEOUT);
            CHECK(handoff_w.ok);
            CHECK_EQ(handoff_w.key, 77);
        }
        if (handoff_w.ok && handoff_w.key != 77 && handoff_w.key != 78)
            th_fail(__FILE__, __LINE__, "the waiter got key %lu", (unsigned long)handoff_w.key);
    }
    th_finish(port, a, b);
}

const struct tcase tcases[] = {
    {"T56", "GQCS INFINITE, CloseHandle: FALSE, ov NULL, ERROR_ABANDONED_WAIT_0", t56},
    {"T57", "GQCSEx INFINITE, CloseHandle: FALSE, ERROR_ABANDONED_WAIT_0", t57},
    {"T58", "PSN dequeue INFINITE, CloseHandle: returns ERROR_ABANDONED_WAIT_0", t58},
    {"T59", "stale handle: every call fails with ERROR_INVALID_HANDLE", t59},
    {"T60", "two waiters, posts 3 then 4: the later waiter gets 3 (LIFO)", t60},
    {"T61", "GQCSEx count 2: FIFO, key/overlapped/Internal/bytes preserved", t61},
    {"T64", "concurrency 1: a waiter is not released while another thread runs", t64},
    {"T72", "GQCS on a notification: TRUE, ov NULL, bytes = mask", t72},
    {"wake_handoff", "a packet handed to a sleeping waiter wakes it despite a concurrent poll", wake_handoff},
};
const size_t ntcases = sizeof tcases / sizeof tcases[0];
