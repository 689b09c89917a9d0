/*
 * The porting headers (socknotify/winsock2.h, windows.h): the mapped Winsock calls take
 * Windows' types, report WSAE* codes through WSAGetLastError, and keep the Windows
 * behaviours ported code relies on; threads live in the handle table beside ports.
 * Compiled without _GNU_SOURCE: the porting header must select the features it needs.
 */
#include <socknotify/winsock2.h>
#include <socknotify/ws2tcpip.h>
#include <socknotify/windows.h>

#include "harness.h"

#include <stdio.h>
#include <string.h>

/* A listening TCP socket on 127.0.0.1 (blocking); its address in *addr. */
static SOCKET listener(SOCKADDR_IN *addr)
{
    int len = sizeof *addr;
    SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(l != INVALID_SOCKET);
    ZeroMemory(addr, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(l, (SOCKADDR *)addr, sizeof *addr), 0);
    CHECK_EQ(listen(l, SOMAXCONN), 0);
    CHECK_EQ(getsockname(l, (SOCKADDR *)addr, &len), 0);
    CHECK_EQ(len, sizeof *addr);
    return l;
}

/* A connected pair through the mapped calls: *c the client, *s the accepted socket. */
static void pair(SOCKET *c, SOCKET *s)
{
    SOCKADDR_IN addr, peer;
    int len = sizeof peer;
    SOCKET l = listener(&addr);
    *c = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(*c != INVALID_SOCKET);
    CHECK_EQ(connect(*c, (SOCKADDR *)&addr, sizeof addr), 0);
    *s = accept(l, (SOCKADDR *)&peer, &len);
    CHECK(*s != INVALID_SOCKET);
    CHECK_EQ(len, sizeof peer);
    CHECK_EQ(peer.sin_family, AF_INET);
    CHECK_EQ(closesocket(l), 0);
}

static void wsastartup(void)
{
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    CHECK_EQ(d.wVersion, 0x0202);
    CHECK_EQ(d.wHighVersion, 0x0202);
    CHECK(strlen(d.szDescription) > 0);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 0), &d), 0);
    CHECK_EQ(d.wVersion, MAKEWORD(2, 0));
    CHECK_EQ(WSAStartup(MAKEWORD(3, 1), &d), 0);
    CHECK_EQ(d.wVersion, 0x0202); /* the highest this offers */
    CHECK_EQ(WSAStartup(MAKEWORD(1, 0), &d), WSAVERNOTSUPPORTED);
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), NULL), WSAEFAULT);
    CHECK_EQ(WSACleanup(), 0);
    CHECK_EQ(LOBYTE(0x1234), 0x34);
    CHECK_EQ(HIBYTE(0x1234), 0x12);
}

static void error_codes(void)
{
    SOCKADDR_IN addr;
    SOCKET l, s, c;
    char b = 0;
    int p[2];
    WSASetLastError(0);
    CHECK(socket(12345, SOCK_STREAM, 0) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEAFNOSUPPORT);
    CHECK_SYS(pipe(p));
    CHECK_EQ(recv((SOCKET)p[0], &b, 1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(send(INVALID_SOCKET, &b, 1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    CHECK_EQ(send((SOCKET)0x7FFFFFF0, &b, 1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAENOTSOCK);
    close(p[0]);
    close(p[1]);
    /* the same address twice */
    l = listener(&addr);
    s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK_EQ(bind(s, (SOCKADDR *)&addr, sizeof addr), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEADDRINUSE);
    CHECK_EQ(closesocket(l), 0);
    /* nobody listens there any more */
    c = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK_EQ(connect(c, (SOCKADDR *)&addr, sizeof addr), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAECONNREFUSED);
    CHECK_EQ(recv(c, &b, -1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(ioctlsocket(c, 0x12345, NULL), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEFAULT);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

static void nonblocking(void)
{
    SOCKADDR_IN addr;
    SOCKET c, s, l, a, nb;
    u_long on = 1, n = 0;
    char buf[8];
    int rc;
    pair(&c, &s);
    CHECK_EQ(ioctlsocket(s, FIONBIO, &on), 0);
    CHECK_EQ(recv(s, buf, sizeof buf, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);
    CHECK_EQ(send(c, "hello", 5, 0), 5);
    th_sleep_ms(50);
    CHECK_EQ(ioctlsocket(s, FIONREAD, &n), 0);
    CHECK_EQ(n, 5);
    CHECK_EQ(recv(s, buf, sizeof buf, 0), 5);
    CHECK_EQ(memcmp(buf, "hello", 5), 0);
    on = 0; /* blocking again */
    CHECK_EQ(ioctlsocket(s, FIONBIO, &on), 0);
    CHECK_EQ(send(c, "x", 1, 0), 1);
    CHECK_EQ(recv(s, buf, 1, 0), 1);
    /* an accepted socket inherits the listener's non-blocking mode, as on Windows */
    l = listener(&addr);
    on = 1;
    CHECK_EQ(ioctlsocket(l, FIONBIO, &on), 0);
    CHECK(accept(l, NULL, NULL) == INVALID_SOCKET);
    CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);
    nb = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK_EQ(ioctlsocket(nb, FIONBIO, &on), 0);
    rc = connect(nb, (SOCKADDR *)&addr, sizeof addr);
    CHECKF(rc == 0 || WSAGetLastError() == WSAEWOULDBLOCK, "non-blocking connect: %d, error %d", rc,
           WSAGetLastError());
    th_sleep_ms(50);
    a = accept(l, NULL, NULL);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(recv(a, buf, 1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAEWOULDBLOCK);
    CHECK_EQ(closesocket(a), 0);
    CHECK_EQ(closesocket(nb), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

static void socket_options(void)
{
    SOCKET c, s;
    DWORD ms = 120, got = 0;
    int len = sizeof got, err = -1, one = 1;
    char b;
    pair(&c, &s);
    CHECK_EQ(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&ms, sizeof ms), 0);
    CHECK_EQ(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (char *)&got, &len), 0);
    CHECK_EQ(len, sizeof got);
    CHECK_EQ(got, 120);
    /* a blocking receive that times out is WSAETIMEDOUT, as on Windows */
    CHECK_EQ(recv(s, &b, 1, 0), SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAETIMEDOUT);
    CHECK_EQ(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one), 0);
    len = sizeof err;
    CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_ERROR, (char *)&err, &len), 0);
    CHECK_EQ(err, 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(s), 0);
}

/* SO_ERROR reads a WSAE* code; select ignores nfds as on Windows. */
static void so_error_and_select(void)
{
    SOCKADDR_IN addr;
    SOCKET l = listener(&addr), c;
    u_long on = 1;
    fd_set w;
    struct timeval tv;
    int err = 0, len = sizeof err;
    CHECK_EQ(closesocket(l), 0); /* refused from now on */
    c = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK_EQ(ioctlsocket(c, FIONBIO, &on), 0);
    if (connect(c, (SOCKADDR *)&addr, sizeof addr) == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK) {
        FD_ZERO(&w);
        FD_SET(c, &w);
        tv.tv_sec = 5;
        tv.tv_usec = 0;
        CHECK_EQ(select(0, NULL, &w, NULL, &tv), 1);
        CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_ERROR, (char *)&err, &len), 0);
        CHECK_EQ(err, WSAECONNREFUSED);
    } else {
        CHECK_EQ(WSAGetLastError(), WSAECONNREFUSED);
    }
    CHECK_EQ(closesocket(c), 0);
}

/* send to a closed peer fails with a code; no SIGPIPE kills the process. */
static void no_sigpipe(void)
{
    SOCKET c, s;
    char buf[4096];
    int i, rc = 0;
    pair(&c, &s);
    CHECK_EQ(closesocket(s), 0);
    memset(buf, 'x', sizeof buf);
    for (i = 0; i < 100 && rc != SOCKET_ERROR; i++) {
        rc = send(c, buf, sizeof buf, 0);
        th_sleep_ms(1);
    }
    CHECK_EQ(rc, SOCKET_ERROR);
    CHECK_EQ(WSAGetLastError(), WSAECONNRESET);
    CHECK_EQ(closesocket(c), 0);
}

static volatile LONG gate;

static DWORD WINAPI returns_parameter(LPVOID p)
{
    return (DWORD)(ULONG_PTR)p;
}

static DWORD WINAPI waits_for_gate(LPVOID p)
{
    (void)p;
    while (InterlockedCompareExchange(&gate, 0, 0) == 0)
        Sleep(1);
    return 77;
}

static void threads(void)
{
    HANDLE t[2], port = th_port(0);
    DWORD code = 0, id = 0;
    gate = 0;
    t[0] = CreateThread(NULL, 0, waits_for_gate, NULL, 0, &id);
    CHECK(t[0] != NULL);
    CHECK(id != 0);
    t[1] = CreateThread(NULL, 128 * 1024, returns_parameter, (LPVOID)(ULONG_PTR)42, STACK_SIZE_PARAM_IS_A_RESERVATION,
                        NULL);
    CHECK(t[1] != NULL && t[1] != t[0] && t[1] != port);
    CHECK_EQ(WaitForMultipleObjects(2, t, FALSE, TH_LONG), WAIT_OBJECT_0 + 1);
    CHECK(GetExitCodeThread(t[1], &code));
    CHECK_EQ(code, 42);
    CHECK_EQ(WaitForSingleObject(t[0], 20), WAIT_TIMEOUT);
    CHECK_EQ(WaitForMultipleObjects(2, t, TRUE, 20), WAIT_TIMEOUT);
    CHECK(GetExitCodeThread(t[0], &code));
    CHECK_EQ(code, STILL_ACTIVE);
    InterlockedExchange(&gate, 1);
    CHECK_EQ(WaitForMultipleObjects(2, t, TRUE, INFINITE), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(t[0], 0), WAIT_OBJECT_0);
    CHECK(GetExitCodeThread(t[0], &code));
    CHECK_EQ(code, 77);
    /* thread handles are not ports, and ports are not waitable here */
    SetLastError(0);
    CHECK(!PostQueuedCompletionStatus(t[0], 1, 2, NULL));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK_EQ(WaitForSingleObject(port, 0), WAIT_FAILED);
    CHECK_EQ(GetLastError(), ERROR_NOT_SUPPORTED);
    CHECK(!GetExitCodeThread(port, &code));
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(CloseHandle(t[0]));
    CHECK(CloseHandle(t[1]));
    CHECK_EQ(WaitForSingleObject(t[0], 0), WAIT_FAILED);
    CHECK_EQ(GetLastError(), ERROR_INVALID_HANDLE);
    CHECK(!CloseHandle(t[0]));
    /* refused forms */
    CHECK(CreateThread(NULL, 0, NULL, NULL, 0, NULL) == NULL);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(CreateThread(NULL, 0, returns_parameter, NULL, 0x4 /* CREATE_SUSPENDED */, NULL) == NULL);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(WaitForMultipleObjects(0, t, TRUE, 0), WAIT_FAILED);
    CHECK_EQ(GetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(CloseHandle(port));
}

static void interlocked_and_time(void)
{
    volatile LONG v = 5;
    ULONGLONG t0 = GetTickCount64();
    CHECK_EQ(InterlockedIncrement(&v), 6);
    CHECK_EQ(InterlockedDecrement(&v), 5);
    CHECK_EQ(InterlockedExchangeAdd(&v, 10), 5);
    CHECK_EQ(InterlockedExchange(&v, -1), 15);
    CHECK_EQ(InterlockedCompareExchange(&v, 3, -1), -1);
    CHECK_EQ(InterlockedCompareExchange(&v, 9, -1), 3);
    CHECK_EQ(v, 3);
    Sleep(20);
    CHECK(GetTickCount64() - t0 >= 20);
    CHECK_EQ(sizeof(LONG), 4);
    CHECK_EQ(sizeof(WORD), 2);
}

const struct tcase tcases[] = {
    {"wsastartup", "WSAStartup/WSACleanup: versions, WSADATA, MAKEWORD", wsastartup},
    {"error_codes", "failed socket calls leave WSAE* codes for WSAGetLastError", error_codes},
    {"nonblocking", "ioctlsocket FIONBIO/FIONREAD; accept inherits non-blocking; WSAEWOULDBLOCK", nonblocking},
    {"socket_options", "SO_RCVTIMEO in DWORD ms; a timed-out recv is WSAETIMEDOUT", socket_options},
    {"so_error_and_select", "SO_ERROR is a WSAE* code; select ignores nfds", so_error_and_select},
    {"no_sigpipe", "send to a closed peer: WSAECONNRESET, no SIGPIPE", no_sigpipe},
    {"threads", "CreateThread, WaitFor*, GetExitCodeThread, CloseHandle on thread handles", threads},
    {"interlocked_and_time", "Interlocked* on LONG, Sleep, GetTickCount64", interlocked_and_time},
};
const size_t ntcases = sizeof tcases / sizeof tcases[0];
