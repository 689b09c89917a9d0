/*
 * A tiny test harness for the C API tests. Each test program defines a table of cases
 * (`tcases`, `ntcases`); harness.c provides main():
 *   prog --list        prints the case names, one per line
 *   prog NAME...       runs the named cases in this process
 *   prog               runs every case
 * A failed check prints file:line and the values, and exits with status 1.
 * SOCKNOTIFY_TIME_SCALE=N (environment) multiplies the generous waits by N (for valgrind).
 */
#ifndef SOCKNOTIFY_TEST_HARNESS_H
#define SOCKNOTIFY_TEST_HARNESS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "socknotify.h"

/** One test case. */
struct tcase {
    const char *name; /**< Name used on the command line (e.g. "T01"). */
    const char *what; /**< One line: what it checks. */
    void (*fn)(void); /**< The case. */
};

/** The cases of this program (defined by each test program). */
extern const struct tcase tcases[];
/** How many cases tcases holds. */
extern const size_t ntcases;

/** Reports a failed check and exits with status 1. */
void th_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noreturn))
#endif
    ;

/** Checks a condition. */
#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (!(cond))                                                                                   \
            th_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                                    \
    } while (0)

/** Checks a condition, with a printf-style explanation. */
#define CHECKF(cond, ...)                                                                              \
    do {                                                                                               \
        if (!(cond))                                                                                   \
            th_fail(__FILE__, __LINE__, __VA_ARGS__);                                                  \
    } while (0)

/** Checks that two integers are equal (compared as unsigned long long). */
#define CHECK_EQ(a, b)                                                                                 \
    do {                                                                                               \
        unsigned long long th_a_ = (unsigned long long)(a), th_b_ = (unsigned long long)(b);           \
        if (th_a_ != th_b_)                                                                            \
            th_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %llu (0x%llx) != %llu (0x%llx)", #a, #b,     \
                    th_a_, th_a_, th_b_, th_b_);                                                       \
    } while (0)

/** Checks that a POSIX call did not return -1. */
#define CHECK_SYS(expr)                                                                                \
    do {                                                                                               \
        if ((expr) == -1)                                                                              \
            th_fail(__FILE__, __LINE__, "%s failed: %s", #expr, strerror(errno));                      \
    } while (0)

/** The time scale from SOCKNOTIFY_TIME_SCALE (default 1). */
unsigned th_scale(void);
/** Milliseconds on the monotonic clock. */
uint64_t th_now_ms(void);
/** Sleeps ms milliseconds times the time scale. */
void th_sleep_ms(unsigned ms);

/** Creates a port with the given concurrency value (fails the test on error). */
HANDLE th_port(DWORD concurrency);
/** A connected TCP pair on 127.0.0.1 (blocking). */
void th_tcp_pair(int *client, int *server);
/** A connected AF_UNIX stream socketpair. */
void th_unix_pair(int *a, int *b);
/** A UDP socket bound to 127.0.0.1 on an ephemeral port; its address in *addr if not NULL. */
int th_udp_bound(struct sockaddr_in *addr);
/** Sets O_NONBLOCK. */
void th_nonblock(int fd);
/** Writes all n bytes (fails the test on error). */
void th_write(int fd, const void *buf, size_t n);
/** Reads exactly n bytes (fails the test on error or EOF). */
void th_read(int fd, void *buf, size_t n);
/** Closes with closesocket and checks it succeeded. */
void th_closesocket(int fd);

/**
 * The usual start of a case: a new port (concurrency 0) and a connected TCP pair on
 * 127.0.0.1 (*a the client, *b the accepted side). Returns the port.
 */
HANDLE th_port_tcp(int *a, int *b);
/** The same with a connected AF_UNIX stream pair. */
HANDLE th_port_unix(int *a, int *b);
/** The usual end of a case: closesocket(a), closesocket(b) and CloseHandle(port), all checked. */
void th_finish(HANDLE port, int a, int b);

/** An entry {fd, key, filter, op, trigger} with registrationResult preset to a sentinel. */
SOCK_NOTIFY_REGISTRATION th_reg(int fd, uintptr_t key, UINT8 op, UINT16 filter, UINT8 trigger);
/** The sentinel preset in registrationResult by th_reg. */
#define TH_SENTINEL 0xA5A5A5A5u

/** Applies one entry with no dequeue (the call must succeed); returns its registrationResult. */
DWORD th_apply(HANDLE port, SOCK_NOTIFY_REGISTRATION *r);
/** Applies one entry {fd, key 0, op} (NONE, DISABLE or REMOVE); returns its registrationResult. */
DWORD th_op(HANDLE port, int fd, UINT8 op);
/** Shorthand: th_apply of an ENABLE entry. */
DWORD th_enable(HANDLE port, int fd, uintptr_t key, UINT16 filter, UINT8 trigger);
/**
 * Dequeues with ProcessSocketNotifications(port, 0, NULL, ms, max, out, &n): returns n and
 * checks the code (ERROR_SUCCESS with n >= 1, or WAIT_TIMEOUT with n == 0).
 */
UINT32 th_dequeue(HANDLE port, OVERLAPPED_ENTRY *out, ULONG max, UINT32 ms);
/** Dequeues one packet with a generous timeout and checks its key and that it carries `bits`. */
OVERLAPPED_ENTRY th_expect(HANDLE port, uintptr_t key, UINT32 bits);
/** Checks that nothing is dequeued within ms milliseconds. */
void th_expect_none(HANDLE port, UINT32 ms);
/**
 * Checks that fd has no registration on any port: REMOVE through `probe` (a live port)
 * answers ERROR_NOT_FOUND (not WSAEINVAL, the answer for a socket of another port, D13)
 * and queues no packet.
 */
void th_expect_unregistered(HANDLE probe, int fd);

/**
 * Applies the n entries of r in one call with no dequeue (the call must succeed and write
 * every registrationResult); the results are left in r.
 */
void th_apply_all(HANDLE port, SOCK_NOTIFY_REGISTRATION *r, UINT32 n);
/**
 * Puts the socket newfd at the descriptor number num the way a program reusing numbers does:
 * close(num) (plain close, not closesocket), dup2(newfd, num), close(newfd). Cases run one
 * per process, so no other thread can take the number in between.
 */
void th_reuse_number(int num, int newfd);

/** Atomic store of an int flag shared between threads. */
#define TH_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
/** Atomic load of an int flag shared between threads. */
#define TH_LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)

/** A generous timeout for "must arrive" waits, in ms (5 s times the scale). */
#define TH_LONG (5000u * th_scale())
/** A wait for "must not arrive" checks, in ms (200 ms times the scale). */
#define TH_SHORT (200u * th_scale())

#endif
