/*
 * Several entries for the same socket in one ProcessSocketNotifications call (issue 8).
 * Windows applies the entries one at a time, in array order, and whatever an entry queues is
 * queued before the next entry runs (spec 3.3 step 2, 4.3). The first three cases are the
 * issue's two programs (and the variant it names); the others are the other orders of the
 * same family. The Rust suite (socknotify/tests/conformance_batches.rs) runs the whole
 * family from every starting state and in every call shape.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LEVEL_ONESHOT (SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT)
#define LEVEL_PERSISTENT (SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT)
#define EDGE_PERSISTENT (SOCK_NOTIFY_TRIGGER_EDGE | SOCK_NOTIFY_TRIGGER_PERSISTENT)
#define OUT SOCK_NOTIFY_REGISTER_EVENT_OUT
#define IN SOCK_NOTIFY_REGISTER_EVENT_IN

/* A non-blocking AF_UNIX stream pair (writable, nothing to read). */
static void pair(int *a, int *b)
{
    th_unix_pair(a, b);
    th_nonblock(*a);
    th_nonblock(*b);
}

/* A new port and a non-blocking AF_UNIX stream pair (th_port_unix, non-blocking). */
static HANDLE start(int *a, int *b)
{
    HANDLE port = th_port_unix(a, b);
    th_nonblock(*a);
    th_nonblock(*b);
    return port;
}

/* Dequeues one packet and checks its key and its exact mask. */
static void expect_exactly(HANDLE port, uintptr_t key, UINT32 mask)
{
    OVERLAPPED_ENTRY e = th_expect(port, key, mask);
    CHECKF(e.dwNumberOfBytesTransferred == mask, "key %lu: mask 0x%x, want exactly 0x%x", (unsigned long)key,
           (unsigned)e.dwNumberOfBytesTransferred, (unsigned)mask);
}

/* Dequeues one packet and checks its key and its REMOVE bit (other bits may be coalesced). */
static void expect_remove(HANDLE port, uintptr_t key)
{
    th_expect(port, key, SOCK_NOTIFY_EVENT_REMOVE);
}

/*
 * The setup for bug 1: a new port; a[0] registered with key 1 (OUT, LEVEL|ONESHOT)
 * and its packet dequeued in the same call; then its number closed with close() and taken by
 * b[0]. *num is that number, *pa and *pb the two peers.
 */
static HANDLE fired_then_reused(int *num, int *pa, int *pb)
{
    int b0;
    SOCK_NOTIFY_REGISTRATION r;
    OVERLAPPED_ENTRY e[4];
    UINT32 n = 0;
    HANDLE port = start(num, pa);
    pair(&b0, pb);
    r = th_reg(*num, 1, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_ONESHOT);
    CHECK_EQ(ProcessSocketNotifications(port, 1, &r, TH_LONG, 4, e, &n), ERROR_SUCCESS);
    CHECK_EQ(r.registrationResult, 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(e[0].lpCompletionKey, 1);
    th_reuse_number(*num, b0);
    return port;
}

/* Issue 8, program 1: [ENABLE key 2, ENABLE key 3] on the reused number in one waiting call. */
static void reuse_key(void)
{
    int num, pa, pb;
    SOCK_NOTIFY_REGISTRATION r[2];
    OVERLAPPED_ENTRY e[4];
    UINT32 n = 0;
    HANDLE port = fired_then_reused(&num, &pa, &pb);
    r[0] = th_reg(num, 2, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_ONESHOT);
    r[1] = th_reg(num, 3, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_ONESHOT);
    CHECK_EQ(ProcessSocketNotifications(port, 2, r, 100 * th_scale(), 4, e, &n), ERROR_SUCCESS);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    CHECK_EQ(n, 1);
    CHECKF(e[0].lpCompletionKey == 2, "key %lu, want 2 (created by the first entry, kept by the re-ENABLE)",
           (unsigned long)e[0].lpCompletionKey);
    CHECK_EQ(e[0].dwNumberOfBytesTransferred, SOCK_NOTIFY_EVENT_OUT);
    th_expect_none(port, TH_SHORT);
    CHECK_EQ(th_op(port, num, SOCK_NOTIFY_OP_REMOVE), 0);
    expect_remove(port, 2);
    th_closesocket(pb);
    th_finish(port, num, pa);
}

/* The variant: [DISABLE key 2, ENABLE key 3] on the reused number: key 2 (D11, D15). */
static void reuse_disable_enable(void)
{
    int num, pa, pb;
    SOCK_NOTIFY_REGISTRATION r[2];
    OVERLAPPED_ENTRY e[4];
    UINT32 n = 0;
    HANDLE port = fired_then_reused(&num, &pa, &pb);
    r[0] = th_reg(num, 2, SOCK_NOTIFY_OP_DISABLE, 0, 0);
    r[1] = th_reg(num, 3, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_ONESHOT);
    CHECK_EQ(ProcessSocketNotifications(port, 2, r, 100 * th_scale(), 4, e, &n), ERROR_SUCCESS);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    CHECK_EQ(n, 1);
    CHECKF(e[0].lpCompletionKey == 2, "key %lu, want 2", (unsigned long)e[0].lpCompletionKey);
    th_expect_none(port, TH_SHORT);
    th_closesocket(pb);
    th_finish(port, num, pa);
}

/* Issue 8, program 2: [ENABLE OUT LEVEL|PERSISTENT, DISABLE] on a writable socket delivers OUT. */
static void enable_disable(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r[2];
    port = start(&a, &b);
    r[0] = th_reg(a, 7, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_PERSISTENT);
    r[1] = th_reg(a, 7, SOCK_NOTIFY_OP_DISABLE, 0, 0);
    th_apply_all(port, r, 2);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    expect_exactly(port, 7, SOCK_NOTIFY_EVENT_OUT);
    th_expect_none(port, TH_SHORT); /* disabled: nothing re-fires */
    th_finish(port, a, b);
}

/*
 * The same two entries on a socket that already has a (disabled) registration, in one call
 * that also waits: the packet comes back from that very call, with the registration's key.
 */
static void enable_disable_wait(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r[2];
    OVERLAPPED_ENTRY e[4];
    UINT32 n = 0;
    port = start(&a, &b);
    r[0] = th_reg(a, 8, SOCK_NOTIFY_OP_DISABLE, 0, 0); /* a disabled registration with key 8 (D11) */
    CHECK_EQ(th_apply(port, &r[0]), 0);
    r[0] = th_reg(a, 9, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_PERSISTENT);
    r[1] = th_reg(a, 9, SOCK_NOTIFY_OP_DISABLE, 0, 0);
    CHECK_EQ(ProcessSocketNotifications(port, 2, r, TH_SHORT, 4, e, &n), ERROR_SUCCESS);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(e[0].lpCompletionKey, 8);
    CHECK_EQ(e[0].dwNumberOfBytesTransferred, SOCK_NOTIFY_EVENT_OUT);
    th_expect_none(port, TH_SHORT);
    th_finish(port, a, b);
}

/* [ENABLE LEVEL, REMOVE]: one packet, with REMOVE and the ENABLE's key; nothing after it. */
static void enable_remove(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r[2];
    port = start(&a, &b);
    r[0] = th_reg(a, 10, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_PERSISTENT);
    r[1] = th_reg(a, 11, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    th_apply_all(port, r, 2);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    expect_remove(port, 10);
    th_write(b, "x", 1);
    th_expect_none(port, TH_SHORT);
    th_finish(port, a, b);
}

/* [DISABLE key 12, ENABLE LEVEL|ONESHOT key 13] on a new socket: OUT with key 12, once. */
static void disable_enable(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r[2];
    port = start(&a, &b);
    r[0] = th_reg(a, 12, SOCK_NOTIFY_OP_DISABLE, 0, 0);
    r[1] = th_reg(a, 13, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_ONESHOT);
    th_apply_all(port, r, 2);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    expect_exactly(port, 12, SOCK_NOTIFY_EVENT_OUT);
    th_expect_none(port, TH_SHORT);
    th_finish(port, a, b);
}

/* [ENABLE IN, ENABLE OUT] on a writable socket: the second filter is in force, the key stays. */
static void reenable_filter(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r[2];
    port = start(&a, &b);
    r[0] = th_reg(a, 14, SOCK_NOTIFY_OP_ENABLE, IN, LEVEL_PERSISTENT);
    r[1] = th_reg(a, 15, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_ONESHOT);
    th_apply_all(port, r, 2);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    expect_exactly(port, 14, SOCK_NOTIFY_EVENT_OUT);
    th_expect_none(port, TH_SHORT); /* the second entry's ONESHOT is in force */
    th_finish(port, a, b);
}

/*
 * [ENABLE OUT LEVEL, ENABLE OUT EDGE] on a writable socket: the level ENABLE queues OUT, the
 * edge one queues nothing but leaves the packet queued: OUT once. TCP, where socknotify can
 * tell that OUT did not fall and rise again (on other sockets every wake-up may count as an
 * edge, which would hide a lost packet).
 */
static void level_then_edge(void)
{
    int a, b;
    SOCK_NOTIFY_REGISTRATION r[2];
    HANDLE port = th_port_tcp(&a, &b);
    th_nonblock(a);
    th_nonblock(b);
    r[0] = th_reg(a, 16, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_PERSISTENT);
    r[1] = th_reg(a, 16, SOCK_NOTIFY_OP_ENABLE, OUT, EDGE_PERSISTENT);
    th_apply_all(port, r, 2);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, 0);
    expect_exactly(port, 16, SOCK_NOTIFY_EVENT_OUT);
    th_expect_none(port, TH_SHORT);
    th_finish(port, a, b);
}

/* [REMOVE, ENABLE] on a registered socket: 0 then WSAEALREADY (D14); one REMOVE packet. */
static void remove_enable(void)
{
    HANDLE port;
    int a, b;
    SOCK_NOTIFY_REGISTRATION r[2];
    port = start(&a, &b);
    CHECK_EQ(th_enable(port, a, 17, 0, LEVEL_PERSISTENT), 0);
    r[0] = th_reg(a, 18, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    r[1] = th_reg(a, 19, SOCK_NOTIFY_OP_ENABLE, OUT, LEVEL_PERSISTENT);
    th_apply_all(port, r, 2);
    CHECK_EQ(r[0].registrationResult, 0);
    CHECK_EQ(r[1].registrationResult, WSAEALREADY);
    expect_remove(port, 17);
    th_expect_none(port, TH_SHORT);
    th_finish(port, a, b);
}

const struct tcase tcases[] = {
    {"reuse_key", "reused number, [ENABLE k2, ENABLE k3] in one waiting call: key 2", reuse_key},
    {"reuse_disable_enable", "reused number, [DISABLE k2, ENABLE k3] in one waiting call: key 2",
     reuse_disable_enable},
    {"enable_disable", "[ENABLE OUT LEVEL, DISABLE] on a writable socket delivers OUT once", enable_disable},
    {"enable_disable_wait", "[ENABLE LEVEL, DISABLE] of a registration, in a waiting call: OUT", enable_disable_wait},
    {"enable_remove", "[ENABLE LEVEL, REMOVE]: one REMOVE packet with the ENABLE's key", enable_remove},
    {"disable_enable", "[DISABLE k12, ENABLE k13 LEVEL|ONESHOT]: OUT with key 12, once", disable_enable},
    {"reenable_filter", "[ENABLE IN, ENABLE OUT ONESHOT]: OUT once, first key", reenable_filter},
    {"level_then_edge", "[ENABLE OUT LEVEL, ENABLE OUT EDGE]: OUT once", level_then_edge},
    {"remove_enable", "[REMOVE, ENABLE]: 0, WSAEALREADY; one REMOVE packet", remove_enable},
};
const size_t ntcases = sizeof tcases / sizeof tcases[0];
