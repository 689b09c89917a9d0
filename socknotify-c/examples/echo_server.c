/*
 * echo_server.c -- a multi-threaded TCP echo server on ProcessSocketNotifications, with a
 * built-in, bounded client load on 127.0.0.1 that checks every echoed byte.
 *
 * The server follows the pattern of Microsoft's multithreaded sample:
 *  - the listener is registered once, IN with LEVEL|PERSISTENT;
 *  - each connection is registered IN|HANGUP with LEVEL|ONESHOT, so one packet goes to one
 *    worker, which owns the connection until it re-arms it;
 *  - N worker threads loop on one ProcessSocketNotifications call that both applies the
 *    re-enable registrations of the sockets they just handled and dequeues the next batch;
 *  - on hang-up, end of stream or error a connection is REMOVEd, and its context is freed
 *    (and the socket closed) only when the REMOVE packet arrives.
 *
 * Build (against an install, see socknotify-c/README.md):
 *   cc -O2 socknotify-c/examples/echo_server.c $(pkg-config --cflags --libs socknotify-static) -o echo_server
 * Run:
 *   ./echo_server [-w workers] [-c connections] [-m messages] [-s size] [-t client_threads]
 *                 [-C concurrency] [-T time_limit_s]
 * Exits 0 when every message came back intact and every context was freed; 1 on a check
 * failure; 3 when the time limit expires.
 */
#define _GNU_SOURCE
#include "socknotify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_REGS 256     /* registrations gathered by a worker before a PSN call */
#define BATCH 32         /* packets dequeued per PSN call */
#define QUIT_KEY 0       /* key of the packets that stop the workers */
#define MAX_SIZE 16384   /* message size limit (keeps the lock-step client deadlock-free) */

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_SEQ_CST)

enum kind { KIND_LISTENER = 1, KIND_CONN = 2 };

/* The listener's context (owned by main; workers only accept on it). */
struct listener {
    enum kind kind;
    SOCKET s;
};

/* One accepted connection; owned by the worker that dequeued its (one-shot) packet. */
struct conn {
    enum kind kind;
    SOCKET s;
    char *out;      /* echo bytes the socket did not take yet */
    size_t out_len; /* bytes in out */
    size_t out_off; /* bytes of out already sent */
};

static struct {
    int workers, conns, msgs, size, client_threads, time_limit;
    DWORD concurrency;
} opt = {4, 100, 200, 128, 4, 60, 0};

static HANDLE port;
static struct listener listener = {KIND_LISTENER, INVALID_SOCKET};
static struct sockaddr_in server_addr;

static long live_conns;        /* contexts allocated and not yet freed */
static long contexts_created;  /* total contexts allocated */
static long contexts_freed;    /* total contexts freed on their REMOVE packet */
static int listener_removed;   /* the listener's REMOVE packet was dequeued */
static long messages_checked;  /* messages echoed back intact */
static int failures;           /* any check failure */

static void fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "echo_server: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ADD(failures, 1);
}

static void on_alarm(int sig)
{
    static const char msg[] = "echo_server: time limit expired\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    _exit(3);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------- */
/* Server side.                                                                        */
/* ---------------------------------------------------------------------------------- */

/* A worker's pending registrations, applied by its next ProcessSocketNotifications call. */
struct regs {
    SOCK_NOTIFY_REGISTRATION r[MAX_REGS];
    UINT32 n;
};

static void check_results(const struct regs *q)
{
    UINT32 i;
    for (i = 0; i < q->n; i++)
        if (q->r[i].registrationResult != 0)
            fail("registration op %u of socket %lu failed: %lu", (unsigned)q->r[i].operation,
                 (unsigned long)q->r[i].socket, (unsigned long)q->r[i].registrationResult);
}

/* Applies the pending registrations now (no dequeue). */
static void flush_regs(struct regs *q)
{
    DWORD rc;
    if (q->n == 0)
        return;
    rc = ProcessSocketNotifications(port, q->n, q->r, 0, 0, NULL, NULL);
    if (rc != ERROR_SUCCESS)
        fail("ProcessSocketNotifications (apply) failed: %lu", (unsigned long)rc);
    check_results(q);
    q->n = 0;
}

static void push_reg(struct regs *q, SOCKET s, void *key, UINT8 op, UINT16 filter, UINT8 trigger)
{
    SOCK_NOTIFY_REGISTRATION *r;
    if (q->n == MAX_REGS)
        flush_regs(q);
    r = &q->r[q->n++];
    memset(r, 0, sizeof *r);
    r->socket = s;
    r->completionKey = key;
    r->operation = op;
    r->eventFilter = filter;
    r->triggerFlags = trigger;
}

static void rearm(struct regs *q, struct conn *c)
{
    UINT16 filter = SOCK_NOTIFY_REGISTER_EVENT_IN | SOCK_NOTIFY_REGISTER_EVENT_HANGUP;
    if (c->out_off < c->out_len) /* wait for room instead of reading more */
        filter = SOCK_NOTIFY_REGISTER_EVENT_OUT | SOCK_NOTIFY_REGISTER_EVENT_HANGUP;
    push_reg(q, c->s, c, SOCK_NOTIFY_OP_ENABLE, filter, SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT);
}

static void accept_all(struct regs *q)
{
    for (;;) {
        struct conn *c;
        int one = 1;
        int fd = accept4((int)listener.s, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fail("accept: %s", strerror(errno));
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = (struct conn *)calloc(1, sizeof *c);
        if (!c) {
            fail("out of memory");
            close(fd);
            return;
        }
        c->kind = KIND_CONN;
        c->s = (SOCKET)fd;
        ADD(live_conns, 1);
        ADD(contexts_created, 1);
        push_reg(q, c->s, c, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN | SOCK_NOTIFY_REGISTER_EVENT_HANGUP,
                 SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT);
    }
}

/* Sends what it can of buf; keeps the rest in c->out. Returns -1 on a socket error. */
static int send_or_keep(struct conn *c, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send((int)c->s, buf, len, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
        } else if (w == -1 && errno == EINTR) {
            continue;
        } else if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            char *grown = (char *)realloc(c->out, c->out_len + len);
            if (!grown)
                return -1;
            c->out = grown;
            memcpy(c->out + c->out_len, buf, len);
            c->out_len += len;
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Sends pending output. Returns -1 on a socket error. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send((int)c->s, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0)
            c->out_off += (size_t)w;
        else if (w == -1 && errno == EINTR)
            continue;
        else if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 0;
}

/* Handles one notification of a connection; queues its re-enable or its REMOVE. */
static void serve(struct regs *q, struct conn *c, UINT32 events)
{
    char buf[16384];
    int done = (events & SOCK_NOTIFY_EVENT_ERR) != 0;
    if (!done && flush_out(c) == -1)
        done = 1;
    while (!done && c->out_off >= c->out_len) {
        ssize_t r = recv((int)c->s, buf, sizeof buf, 0);
        if (r > 0) {
            if (send_or_keep(c, buf, (size_t)r) == -1)
                done = 1;
        } else if (r == 0) {
            done = 1; /* end of stream */
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            done = 1;
        }
    }
    if (!done && (events & SOCK_NOTIFY_EVENT_HANGUP))
        done = 1; /* the peer is gone: whatever was readable was read above */
    if (done)
        push_reg(q, c->s, c, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    else
        rearm(q, c);
}

/* The REMOVE packet arrived: nothing refers to the context any more. */
static void destroy(struct conn *c)
{
    if (closesocket(c->s) != 0)
        fail("closesocket: %d", WSAGetLastError());
    free(c->out);
    free(c);
    ADD(contexts_freed, 1);
    ADD(live_conns, -1);
}

static void *worker_main(void *arg)
{
    struct regs *q = (struct regs *)calloc(1, sizeof *q);
    OVERLAPPED_ENTRY ev[BATCH];
    int quit = 0; /* quit packets in the last batch */
    (void)arg;
    if (!q) {
        fail("out of memory");
        return NULL;
    }
    while (!quit) {
        UINT32 n = 0, i;
        DWORD rc = ProcessSocketNotifications(port, q->n, q->n ? q->r : NULL, INFINITE, BATCH, ev, &n);
        if (rc != ERROR_SUCCESS) {
            fail("ProcessSocketNotifications failed: %lu", (unsigned long)rc);
            break;
        }
        check_results(q);
        q->n = 0;
        for (i = 0; i < n; i++) {
            UINT32 events = SocketNotificationRetrieveEvents(&ev[i]);
            void *key = (void *)ev[i].lpCompletionKey;
            if (ev[i].lpCompletionKey == QUIT_KEY) {
                quit++;
                continue;
            }
            if (*(enum kind *)key == KIND_LISTENER) {
                if (events & SOCK_NOTIFY_EVENT_REMOVE)
                    STORE(listener_removed, 1);
                else if (!LOAD(listener_removed))
                    accept_all(q);
                continue;
            }
            if (events & SOCK_NOTIFY_EVENT_REMOVE)
                destroy((struct conn *)key);
            else
                serve(q, (struct conn *)key, events);
        }
    }
    /* One batch may hold several workers' quit packets: hand the others back. */
    while (quit-- > 1)
        if (!PostQueuedCompletionStatus(port, 0, QUIT_KEY, NULL))
            fail("PostQueuedCompletionStatus: %lu", (unsigned long)GetLastError());
    flush_regs(q);
    free(q);
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Client load.                                                                        */
/* ---------------------------------------------------------------------------------- */

struct client {
    int first, count; /* connection ids [first, first + count) */
    pthread_t thread;
};

static unsigned char pattern(int conn, int msg, int i)
{
    return (unsigned char)(conn * 131 + msg * 31 + i * 7 + (i >> 8));
}

static int connect_one(void)
{
    struct timeval tv;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    tv.tv_sec = 10;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    while (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == -1) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void *client_main(void *arg)
{
    struct client *cl = (struct client *)arg;
    int *fds = (int *)malloc((size_t)cl->count * sizeof *fds);
    unsigned char *msg = (unsigned char *)malloc((size_t)opt.size);
    unsigned char *back = (unsigned char *)malloc((size_t)opt.size);
    int k, m, i, opened = 0;
    if (!fds || !msg || !back) {
        fail("out of memory");
        goto out;
    }
    for (k = 0; k < cl->count; k++, opened++) {
        fds[k] = connect_one();
        if (fds[k] == -1) {
            fail("connect: %s", strerror(errno));
            goto out;
        }
    }
    for (m = 0; m < opt.msgs; m++) {
        for (k = 0; k < cl->count; k++) { /* one message out on every connection... */
            size_t off = 0;
            for (i = 0; i < opt.size; i++)
                msg[i] = pattern(cl->first + k, m, i);
            while (off < (size_t)opt.size) {
                ssize_t w = send(fds[k], msg + off, (size_t)opt.size - off, MSG_NOSIGNAL);
                if (w <= 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    fail("client send: %s", strerror(errno));
                    goto out;
                }
                off += (size_t)w;
            }
        }
        for (k = 0; k < cl->count; k++) { /* ...then every echo back, byte-checked */
            size_t off = 0;
            while (off < (size_t)opt.size) {
                ssize_t r = recv(fds[k], back + off, (size_t)opt.size - off, 0);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    fail("client recv (connection %d, message %d): %s", cl->first + k, m,
                         r == 0 ? "end of stream" : strerror(errno));
                    goto out;
                }
                off += (size_t)r;
            }
            for (i = 0; i < opt.size; i++)
                if (back[i] != pattern(cl->first + k, m, i)) {
                    fail("connection %d, message %d: byte %d is 0x%02x, want 0x%02x", cl->first + k, m, i,
                         back[i], pattern(cl->first + k, m, i));
                    goto out;
                }
            ADD(messages_checked, 1);
        }
    }
out:
    for (k = 0; k < opened; k++)
        if (closesocket((SOCKET)fds[k]) != 0)
            fail("client closesocket: %d", WSAGetLastError());
    free(fds);
    free(msg);
    free(back);
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* main                                                                                 */
/* ---------------------------------------------------------------------------------- */

static int parse_int(const char *s, int lo, int hi, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "echo_server: %s must be in %d..%d\n", what, lo, hi);
        exit(2);
    }
    return (int)v;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_server [-w workers] [-c connections] [-m messages] [-s size] "
                    "[-t client_threads] [-C concurrency] [-T time_limit_s]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    pthread_t *workers;
    struct client *clients;
    SOCK_NOTIFY_REGISTRATION r;
    socklen_t len = sizeof server_addr;
    double t0, t1, wait_until;
    int i, one = 1, fd;
    long expected;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc || a[0] != '-' || a[1] == '\0' || a[2] != '\0')
            usage();
        switch (a[1]) {
        case 'w': opt.workers = parse_int(argv[++i], 1, 256, "workers"); break;
        case 'c': opt.conns = parse_int(argv[++i], 1, 10000, "connections"); break;
        case 'm': opt.msgs = parse_int(argv[++i], 1, 10000000, "messages"); break;
        case 's': opt.size = parse_int(argv[++i], 1, MAX_SIZE, "size"); break;
        case 't': opt.client_threads = parse_int(argv[++i], 1, 256, "client threads"); break;
        case 'C': opt.concurrency = (DWORD)parse_int(argv[++i], 0, 256, "concurrency"); break;
        case 'T': opt.time_limit = parse_int(argv[++i], 1, 3600, "time limit"); break;
        default: usage();
        }
    }
    if (opt.client_threads > opt.conns)
        opt.client_threads = opt.conns;
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)opt.time_limit);

    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, opt.concurrency);
    if (!port) {
        fprintf(stderr, "echo_server: CreateIoCompletionPort failed: %lu\n", (unsigned long)GetLastError());
        return 1;
    }

    /* The listener: 127.0.0.1, ephemeral port, non-blocking, LEVEL|PERSISTENT IN. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        perror("echo_server: socket");
        return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == -1 || listen(fd, SOMAXCONN) == -1 ||
        getsockname(fd, (struct sockaddr *)&server_addr, &len) == -1) {
        perror("echo_server: bind/listen");
        return 1;
    }
    listener.s = (SOCKET)fd;
    memset(&r, 0, sizeof r);
    r.socket = listener.s;
    r.completionKey = &listener;
    r.operation = SOCK_NOTIFY_OP_ENABLE;
    r.eventFilter = SOCK_NOTIFY_REGISTER_EVENT_IN;
    r.triggerFlags = SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_PERSISTENT;
    if (ProcessSocketNotifications(port, 1, &r, 0, 0, NULL, NULL) != ERROR_SUCCESS || r.registrationResult != 0) {
        fprintf(stderr, "echo_server: listener registration failed: %lu\n", (unsigned long)r.registrationResult);
        return 1;
    }

    workers = (pthread_t *)calloc((size_t)opt.workers, sizeof *workers);
    clients = (struct client *)calloc((size_t)opt.client_threads, sizeof *clients);
    if (!workers || !clients) {
        fprintf(stderr, "echo_server: out of memory\n");
        return 1;
    }
    for (i = 0; i < opt.workers; i++)
        if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0) {
            fprintf(stderr, "echo_server: pthread_create failed\n");
            return 1;
        }

    /* The load: connections split over the client threads. */
    t0 = now_s();
    for (i = 0; i < opt.client_threads; i++) {
        clients[i].first = opt.conns * i / opt.client_threads;
        clients[i].count = opt.conns * (i + 1) / opt.client_threads - clients[i].first;
        if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) != 0) {
            fprintf(stderr, "echo_server: pthread_create failed\n");
            return 1;
        }
    }
    for (i = 0; i < opt.client_threads; i++)
        pthread_join(clients[i].thread, NULL);
    t1 = now_s();

    /* Every connection is closed by its client; wait until the server saw every REMOVE. */
    wait_until = now_s() + 10.0;
    while (LOAD(live_conns) != 0 && now_s() < wait_until)
        usleep(1000);
    if (LOAD(live_conns) != 0)
        fail("%ld connection contexts still live after the clients closed", LOAD(live_conns));

    /* Deregister the listener and wait for its REMOVE packet, then stop the workers. */
    memset(&r, 0, sizeof r);
    r.socket = listener.s;
    r.operation = SOCK_NOTIFY_OP_REMOVE;
    if (ProcessSocketNotifications(port, 1, &r, 0, 0, NULL, NULL) != ERROR_SUCCESS || r.registrationResult != 0)
        fail("listener REMOVE failed: %lu", (unsigned long)r.registrationResult);
    wait_until = now_s() + 10.0;
    while (!LOAD(listener_removed) && now_s() < wait_until)
        usleep(1000);
    if (!LOAD(listener_removed))
        fail("no REMOVE packet for the listener");
    for (i = 0; i < opt.workers; i++)
        if (!PostQueuedCompletionStatus(port, 0, QUIT_KEY, NULL))
            fail("PostQueuedCompletionStatus: %lu", (unsigned long)GetLastError());
    for (i = 0; i < opt.workers; i++)
        pthread_join(workers[i], NULL);
    if (closesocket(listener.s) != 0)
        fail("closesocket(listener): %d", WSAGetLastError());
    if (!CloseHandle(port))
        fail("CloseHandle: %lu", (unsigned long)GetLastError());
    free(workers);
    free(clients);

    expected = (long)opt.conns * opt.msgs;
    if (LOAD(messages_checked) != expected)
        fail("%ld of %ld messages echoed intact", LOAD(messages_checked), expected);
    if (LOAD(contexts_created) != opt.conns || LOAD(contexts_freed) != opt.conns)
        fail("contexts: %ld created, %ld freed, want %d", LOAD(contexts_created), LOAD(contexts_freed), opt.conns);

    printf("echo_server: %d workers (concurrency %lu), %d connections x %d messages of %d bytes, %d client threads\n",
           opt.workers, (unsigned long)opt.concurrency, opt.conns, opt.msgs, opt.size, opt.client_threads);
    printf("echo_server: %ld messages echoed and checked in %.3f s: %.0f messages/s, %.2f MB/s each way\n",
           LOAD(messages_checked), t1 - t0, (double)LOAD(messages_checked) / (t1 - t0),
           (double)LOAD(messages_checked) * opt.size / (t1 - t0) / 1e6);
    printf("echo_server: %ld contexts created, %ld freed on their REMOVE packet\n", LOAD(contexts_created),
           LOAD(contexts_freed));
    if (LOAD(failures) != 0) {
        printf("echo_server: FAILED (%d problems)\n", LOAD(failures));
        return 1;
    }
    printf("echo_server: OK\n");
    return 0;
}
