#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

static const char *current = "?";

void th_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s at %s:%d: ", current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (GetLastError()=%lu)\n", (unsigned long)GetLastError());
    fflush(stderr);
    exit(1);
}

unsigned th_scale(void)
{
    const char *s = getenv("SOCKNOTIFY_TIME_SCALE");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v >= 1 && v <= 100 ? (unsigned)v : 1u;
}

uint64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void th_sleep_ms(unsigned ms)
{
    uint64_t total = (uint64_t)ms * th_scale();
    struct timespec ts;
    ts.tv_sec = (time_t)(total / 1000u);
    ts.tv_nsec = (long)(total % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

HANDLE th_port(DWORD concurrency)
{
    HANDLE h = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, concurrency);
    CHECKF(h != NULL, "CreateIoCompletionPort failed");
    CHECK(h != INVALID_HANDLE_VALUE);
    return h;
}

void th_tcp_pair(int *client, int *server)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_SYS(l);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_SYS(bind(l, (struct sockaddr *)&a, sizeof a));
    CHECK_SYS(listen(l, 4));
    CHECK_SYS(getsockname(l, (struct sockaddr *)&a, &len));
    *client = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_SYS(*client);
    CHECK_SYS(connect(*client, (struct sockaddr *)&a, sizeof a));
    *server = accept(l, NULL, NULL);
    CHECK_SYS(*server);
    CHECK_SYS(setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    CHECK_SYS(setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    CHECK_SYS(close(l));
}

void th_unix_pair(int *a, int *b)
{
    int sv[2];
    CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    *a = sv[0];
    *b = sv[1];
}

int th_udp_bound(struct sockaddr_in *addr)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK_SYS(s);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_SYS(bind(s, (struct sockaddr *)&a, sizeof a));
    CHECK_SYS(getsockname(s, (struct sockaddr *)&a, &len));
    if (addr)
        *addr = a;
    return s;
}

void th_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK_SYS(fl);
    CHECK_SYS(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

void th_write(int fd, const void *buf, size_t n)
{
    const char *p = (const char *)buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w == -1 && errno == EINTR)
            continue;
        CHECKF(w > 0, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

void th_read(int fd, void *buf, size_t n)
{
    char *p = (char *)buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r == -1 && errno == EINTR)
            continue;
        CHECKF(r > 0, "recv: %s", r == 0 ? "EOF" : strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

void th_closesocket(int fd)
{
    CHECK_EQ(closesocket((SOCKET)fd), 0);
}

HANDLE th_port_tcp(int *a, int *b)
{
    th_tcp_pair(a, b);
    return th_port(0);
}

HANDLE th_port_unix(int *a, int *b)
{
    th_unix_pair(a, b);
    return th_port(0);
}

void th_finish(HANDLE port, int a, int b)
{
    th_closesocket(a);
    th_closesocket(b);
    CHECK(CloseHandle(port));
}

SOCK_NOTIFY_REGISTRATION th_reg(int fd, uintptr_t key, UINT8 op, UINT16 filter, UINT8 trigger)
{
    SOCK_NOTIFY_REGISTRATION r;
    memset(&r, 0, sizeof r);
    r.socket = fd < 0 ? INVALID_SOCKET : (SOCKET)fd;
    r.completionKey = (PVOID)key;
    r.eventFilter = filter;
    r.operation = op;
    r.triggerFlags = trigger;
    r.registrationResult = TH_SENTINEL;
    return r;
}

DWORD th_apply(HANDLE port, SOCK_NOTIFY_REGISTRATION *r)
{
    DWORD rc = ProcessSocketNotifications(port, 1, r, 0, 0, NULL, NULL);
    CHECK_EQ(rc, ERROR_SUCCESS);
    CHECKF(r->registrationResult != TH_SENTINEL, "registrationResult was not written");
    return r->registrationResult;
}

DWORD th_op(HANDLE port, int fd, UINT8 op)
{
    SOCK_NOTIFY_REGISTRATION r = th_reg(fd, 0, op, 0, 0);
    return th_apply(port, &r);
}

DWORD th_enable(HANDLE port, int fd, uintptr_t key, UINT16 filter, UINT8 trigger)
{
    SOCK_NOTIFY_REGISTRATION r = th_reg(fd, key, SOCK_NOTIFY_OP_ENABLE, filter, trigger);
    return th_apply(port, &r);
}

void th_apply_all(HANDLE port, SOCK_NOTIFY_REGISTRATION *r, UINT32 n)
{
    UINT32 i;
    CHECK_EQ(ProcessSocketNotifications(port, n, r, 0, 0, NULL, NULL), ERROR_SUCCESS);
    for (i = 0; i < n; i++)
        CHECKF(r[i].registrationResult != TH_SENTINEL, "registrationResult %u was not written", (unsigned)i);
}

void th_reuse_number(int num, int newfd)
{
    CHECK(num != newfd);
    CHECK_SYS(close(num));
    CHECK_EQ(dup2(newfd, num), num);
    CHECK_SYS(close(newfd));
}

UINT32 th_dequeue(HANDLE port, OVERLAPPED_ENTRY *out, ULONG max, UINT32 ms)
{
    UINT32 n = 0xDEADu;
    DWORD rc = ProcessSocketNotifications(port, 0, NULL, ms, max, out, &n);
    if (rc == WAIT_TIMEOUT) {
        CHECK_EQ(n, 0);
        return 0;
    }
    CHECK_EQ(rc, ERROR_SUCCESS);
    CHECKF(n >= 1 && n <= max, "receivedEntryCount %u out of 1..%u", (unsigned)n, (unsigned)max);
    return n;
}

OVERLAPPED_ENTRY th_expect(HANDLE port, uintptr_t key, UINT32 bits)
{
    OVERLAPPED_ENTRY e;
    memset(&e, 0xEE, sizeof e);
    CHECKF(th_dequeue(port, &e, 1, TH_LONG) == 1, "expected a packet for key %lu, got none",
           (unsigned long)key);
    CHECK_EQ(e.lpCompletionKey, key);
    CHECKF((e.dwNumberOfBytesTransferred & bits) == bits, "mask 0x%x lacks 0x%x",
           (unsigned)e.dwNumberOfBytesTransferred, (unsigned)bits);
    return e;
}

void th_expect_none(HANDLE port, UINT32 ms)
{
    OVERLAPPED_ENTRY e;
    memset(&e, 0, sizeof e);
    CHECKF(th_dequeue(port, &e, 1, ms) == 0, "unexpected packet: key %lu mask 0x%x",
           (unsigned long)e.lpCompletionKey, (unsigned)e.dwNumberOfBytesTransferred);
}

void th_expect_unregistered(HANDLE probe, int fd)
{
    CHECK_EQ(th_op(probe, fd, SOCK_NOTIFY_OP_REMOVE), ERROR_NOT_FOUND);
    th_expect_none(probe, 50);
}

int main(int argc, char **argv)
{
    size_t i;
    int a, ran = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (i = 0; i < ntcases; i++)
            printf("%s\t%s\n", tcases[i].name, tcases[i].what);
        return 0;
    }
    for (i = 0; i < ntcases; i++) {
        int wanted = argc == 1;
        for (a = 1; a < argc; a++)
            if (strcmp(argv[a], tcases[i].name) == 0)
                wanted = 1;
        if (!wanted)
            continue;
        current = tcases[i].name;
        SetLastError(0);
        tcases[i].fn();
        printf("ok %s - %s\n", tcases[i].name, tcases[i].what);
        ran++;
    }
    if (ran == 0 || (argc > 1 && ran != argc - 1)) {
        fprintf(stderr, "no such case (see --list)\n");
        return 2;
    }
    return 0;
}
