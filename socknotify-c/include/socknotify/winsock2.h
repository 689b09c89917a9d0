/*
 * socknotify/winsock2.h -- Winsock on Linux for ported socket servers: everything of
 * socknotify.h (ProcessSocketNotifications, completion ports, closesocket, WSAGetLastError)
 * plus the Winsock basics, mapped onto POSIX sockets.
 *
 * A port changes only its include lines: <winsock2.h> -> <socknotify/winsock2.h> (and the
 * same for ws2tcpip.h, windows.h, mswsock.h), or keeps them and compiles with
 * -I<includedir>/socknotify. Include the porting headers before any system header.
 *
 * Mapped (static inline, over the POSIX call of the same name):
 *   WSAStartup, WSACleanup (no-ops that fill WSADATA), socket, bind, listen, accept,
 *   connect, send, recv, sendto, recvfrom, shutdown, select, getsockopt, setsockopt,
 *   getsockname, getpeername, ioctlsocket (FIONBIO, FIONREAD).
 * Each takes Windows' argument types (SOCKET, char buffers, int lengths) and, on failure,
 * sets the thread's last error (WSAGetLastError) to the WSAE* code for errno, returning
 * SOCKET_ERROR or INVALID_SOCKET as Winsock does. Differences from POSIX that Windows code
 * relies on are kept: send never raises SIGPIPE; a non-blocking connect fails with
 * WSAEWOULDBLOCK; accept gives a socket that inherits the listener's non-blocking mode;
 * SO_RCVTIMEO/SO_SNDTIMEO take a DWORD of milliseconds; SO_ERROR reads a WSAE* code; a
 * timed-out blocking receive is WSAETIMEDOUT; select ignores nfds (descriptors must be
 * below FD_SETSIZE).
 * In C these are function-like macros over socknotify_ws_* functions; in C++ `bind` is an
 * overload taking a SOCKET (so that std::bind keeps working) and the others are macros.
 *
 * Not mapped (see socknotify-c/README.md): WSASocket, WSASend/WSARecv and the rest of
 * overlapped socket I/O, AcceptEx/ConnectEx/TransmitFile (mswsock), WSAPoll,
 * WSAEventSelect/WSAAsyncSelect, WSAIoctl, WSADuplicateSocket, getaddrinfo error codes
 * (the system's EAI_* values).
 */
#ifndef SOCKNOTIFY_PORT_WINSOCK2_H
#define SOCKNOTIFY_PORT_WINSOCK2_H

#include "windows.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/* BSD short type names (glibc has them with its default feature set). */
#if !defined(__USE_MISC)
typedef unsigned char u_char;
typedef unsigned short u_short;
typedef unsigned int u_int;
typedef unsigned long u_long;
#endif

/* Address and socket types. */
typedef struct sockaddr SOCKADDR, *PSOCKADDR, *LPSOCKADDR;
typedef struct sockaddr_in SOCKADDR_IN, *PSOCKADDR_IN, *LPSOCKADDR_IN;
typedef struct sockaddr_in6 SOCKADDR_IN6, *PSOCKADDR_IN6, *LPSOCKADDR_IN6;
typedef struct sockaddr_storage SOCKADDR_STORAGE, *PSOCKADDR_STORAGE;
typedef struct in_addr IN_ADDR, *PIN_ADDR;
typedef struct in6_addr IN6_ADDR, *PIN6_ADDR;
typedef struct linger LINGER, *PLINGER;
typedef struct timeval TIMEVAL, *PTIMEVAL;
typedef unsigned short ADDRESS_FAMILY;

/* shutdown() directions. */
#define SD_RECEIVE SHUT_RD
#define SD_SEND SHUT_WR
#define SD_BOTH SHUT_RDWR

/* WSAStartup. */
#define WSADESCRIPTION_LEN 256
#define WSASYS_STATUS_LEN 128
typedef struct WSAData {
    WORD wVersion;
    WORD wHighVersion;
    unsigned short iMaxSockets;
    unsigned short iMaxUdpDg;
    char *lpVendorInfo;
    char szDescription[WSADESCRIPTION_LEN + 1];
    char szSystemStatus[WSASYS_STATUS_LEN + 1];
} WSADATA, *LPWSADATA;

/* WSAE* codes beyond those of socknotify.h (Windows' values). */
#define WSAEINTR 10004
#define WSAEACCES 10013
#define WSAEMFILE 10024
#define WSAEINPROGRESS 10036
#define WSAEDESTADDRREQ 10039
#define WSAEMSGSIZE 10040
#define WSAEPROTOTYPE 10041
#define WSAENOPROTOOPT 10042
#define WSAEPROTONOSUPPORT 10043
#define WSAESOCKTNOSUPPORT 10044
#define WSAEPFNOSUPPORT 10046
#define WSAEAFNOSUPPORT 10047
#define WSAEADDRINUSE 10048
#define WSAEADDRNOTAVAIL 10049
#define WSAENETDOWN 10050
#define WSAENETUNREACH 10051
#define WSAENETRESET 10052
#define WSAECONNABORTED 10053
#define WSAEISCONN 10056
#define WSAESHUTDOWN 10058
#define WSAETIMEDOUT 10060
#define WSAEHOSTDOWN 10064
#define WSAEHOSTUNREACH 10065
#define WSAVERNOTSUPPORTED 10092

/** The WSAE* code for an errno value of a socket call (WSAEINVAL for anything unlisted). */
static inline int socknotify_ws_code(int e)
{
    switch (e) {
    case 0: return 0;
    case EINTR: return WSAEINTR;
    case EBADF: case ENOTSOCK: return WSAENOTSOCK;
    case EACCES: case EPERM: return WSAEACCES;
    case EFAULT: return WSAEFAULT;
    case EMFILE: case ENFILE: return WSAEMFILE;
    case EAGAIN: case EINPROGRESS: return WSAEWOULDBLOCK;
    case EALREADY: return WSAEALREADY;
    case EDESTADDRREQ: return WSAEDESTADDRREQ;
    case EMSGSIZE: return WSAEMSGSIZE;
    case EPROTOTYPE: return WSAEPROTOTYPE;
    case ENOPROTOOPT: return WSAENOPROTOOPT;
    case EPROTONOSUPPORT: return WSAEPROTONOSUPPORT;
    case ESOCKTNOSUPPORT: return WSAESOCKTNOSUPPORT;
    case EOPNOTSUPP: return WSAEOPNOTSUPP;
    case EPFNOSUPPORT: return WSAEPFNOSUPPORT;
    case EAFNOSUPPORT: return WSAEAFNOSUPPORT;
    case EADDRINUSE: return WSAEADDRINUSE;
    case EADDRNOTAVAIL: return WSAEADDRNOTAVAIL;
    case ENETDOWN: return WSAENETDOWN;
    case ENETUNREACH: return WSAENETUNREACH;
    case ENETRESET: return WSAENETRESET;
    case ECONNABORTED: return WSAECONNABORTED;
    case ECONNRESET: case EPIPE: return WSAECONNRESET;
    case ENOBUFS: case ENOMEM: return WSAENOBUFS;
    case EISCONN: return WSAEISCONN;
    case ENOTCONN: return WSAENOTCONN;
    case ESHUTDOWN: return WSAESHUTDOWN;
    case ETIMEDOUT: return WSAETIMEDOUT;
    case ECONNREFUSED: return WSAECONNREFUSED;
    case EHOSTDOWN: return WSAEHOSTDOWN;
    case EHOSTUNREACH: return WSAEHOSTUNREACH;
    default: return WSAEINVAL;
    }
}

/** Sets the last error from errno; returns SOCKET_ERROR. */
static inline int socknotify_ws_fail(void)
{
    WSASetLastError(socknotify_ws_code(errno));
    return SOCKET_ERROR;
}

/** The descriptor of a SOCKET, or -1 (with WSAENOTSOCK as the last error) for a value no descriptor has. */
static inline int socknotify_ws_fd(SOCKET s)
{
    if (s > (SOCKET)INT32_MAX) {
        WSASetLastError(WSAENOTSOCK);
        return -1;
    }
    return (int)s;
}

static inline int WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData)
{
    static const char description[] = "socknotify: Winsock on POSIX sockets";
    if (lpWSAData == NULL)
        return WSAEFAULT;
    memset(lpWSAData, 0, sizeof *lpWSAData);
    lpWSAData->wHighVersion = MAKEWORD(2, 2);
    if (LOBYTE(wVersionRequested) < 1 || (LOBYTE(wVersionRequested) == 1 && HIBYTE(wVersionRequested) < 1)) {
        lpWSAData->wVersion = MAKEWORD(2, 2);
        return WSAVERNOTSUPPORTED;
    }
    lpWSAData->wVersion = LOBYTE(wVersionRequested) > 2 || (LOBYTE(wVersionRequested) == 2 && HIBYTE(wVersionRequested) > 2)
                              ? (WORD)MAKEWORD(2, 2)
                              : wVersionRequested;
    memcpy(lpWSAData->szDescription, description, sizeof description);
    memcpy(lpWSAData->szSystemStatus, "Running", sizeof "Running");
    return 0;
}

static inline int WSACleanup(void)
{
    return 0;
}

static inline SOCKET socknotify_ws_socket(int af, int type, int protocol)
{
    int fd = (socket)(af, type, protocol);
    if (fd < 0) {
        socknotify_ws_fail();
        return INVALID_SOCKET;
    }
    return (SOCKET)fd;
}

static inline int socknotify_ws_bind(SOCKET s, const struct sockaddr *name, int namelen)
{
    int fd = socknotify_ws_fd(s);
    if (fd < 0)
        return SOCKET_ERROR;
    if (namelen < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    return (bind)(fd, name, (socklen_t)namelen) == 0 ? 0 : socknotify_ws_fail();
}

static inline int socknotify_ws_listen(SOCKET s, int backlog)
{
    int fd = socknotify_ws_fd(s);
    if (fd < 0)
        return SOCKET_ERROR;
    return (listen)(fd, backlog) == 0 ? 0 : socknotify_ws_fail();
}

static inline SOCKET socknotify_ws_accept(SOCKET s, struct sockaddr *addr, int *addrlen)
{
    int fd = socknotify_ws_fd(s), c, fl;
    socklen_t len = addrlen ? (socklen_t)*addrlen : 0;
    if (fd < 0)
        return INVALID_SOCKET;
    if (addrlen && *addrlen < 0) {
        WSASetLastError(WSAEFAULT);
        return INVALID_SOCKET;
    }
    c = (accept)(fd, addrlen ? addr : NULL, addrlen ? &len : NULL);
    if (c < 0) {
        socknotify_ws_fail();
        return INVALID_SOCKET;
    }
    if (addrlen)
        *addrlen = (int)len;
    /* As on Windows, the new socket inherits the listener's non-blocking mode. */
    fl = fcntl(fd, F_GETFL);
    if (fl != -1 && (fl & O_NONBLOCK)) {
        int cfl = fcntl(c, F_GETFL);
        if (cfl != -1)
            (void)fcntl(c, F_SETFL, cfl | O_NONBLOCK);
    }
    return (SOCKET)c;
}

static inline int socknotify_ws_connect(SOCKET s, const struct sockaddr *name, int namelen)
{
    int fd = socknotify_ws_fd(s);
    if (fd < 0)
        return SOCKET_ERROR;
    if (namelen < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    return (connect)(fd, name, (socklen_t)namelen) == 0 ? 0 : socknotify_ws_fail();
}

/** Failure of a data transfer: a blocking socket's timeout is WSAETIMEDOUT, as on Windows. */
static inline int socknotify_ws_io_fail(int fd)
{
    if (errno == EAGAIN) {
        int fl = fcntl(fd, F_GETFL);
        if (fl != -1 && !(fl & O_NONBLOCK)) {
            WSASetLastError(WSAETIMEDOUT);
            return SOCKET_ERROR;
        }
    }
    return socknotify_ws_fail();
}

static inline int socknotify_ws_send(SOCKET s, const char *buf, int len, int flags)
{
    int fd = socknotify_ws_fd(s);
    ssize_t n;
    if (fd < 0)
        return SOCKET_ERROR;
    if (len < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    n = (send)(fd, buf, (size_t)len, flags | MSG_NOSIGNAL);
    return n < 0 ? socknotify_ws_io_fail(fd) : (int)n;
}

static inline int socknotify_ws_recv(SOCKET s, char *buf, int len, int flags)
{
    int fd = socknotify_ws_fd(s);
    ssize_t n;
    if (fd < 0)
        return SOCKET_ERROR;
    if (len < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    n = (recv)(fd, buf, (size_t)len, flags);
    return n < 0 ? socknotify_ws_io_fail(fd) : (int)n;
}

static inline int socknotify_ws_sendto(SOCKET s, const char *buf, int len, int flags, const struct sockaddr *to,
                                       int tolen)
{
    int fd = socknotify_ws_fd(s);
    ssize_t n;
    if (fd < 0)
        return SOCKET_ERROR;
    if (len < 0 || tolen < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    n = (sendto)(fd, buf, (size_t)len, flags | MSG_NOSIGNAL, to, (socklen_t)tolen);
    return n < 0 ? socknotify_ws_io_fail(fd) : (int)n;
}

static inline int socknotify_ws_recvfrom(SOCKET s, char *buf, int len, int flags, struct sockaddr *from,
                                         int *fromlen)
{
    int fd = socknotify_ws_fd(s);
    socklen_t flen = fromlen ? (socklen_t)*fromlen : 0;
    ssize_t n;
    if (fd < 0)
        return SOCKET_ERROR;
    if (len < 0 || (fromlen && *fromlen < 0)) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    n = (recvfrom)(fd, buf, (size_t)len, flags, fromlen ? from : NULL, fromlen ? &flen : NULL);
    if (n < 0)
        return socknotify_ws_io_fail(fd);
    if (fromlen)
        *fromlen = (int)flen;
    return (int)n;
}

static inline int socknotify_ws_shutdown(SOCKET s, int how)
{
    int fd = socknotify_ws_fd(s);
    if (fd < 0)
        return SOCKET_ERROR;
    return (shutdown)(fd, how) == 0 ? 0 : socknotify_ws_fail();
}

static inline int socknotify_ws_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                                       const struct timeval *timeout)
{
    struct timeval tv;
    int n;
    (void)nfds; /* ignored, as on Windows */
    if (timeout)
        tv = *timeout;
    n = (select)(FD_SETSIZE, readfds, writefds, exceptfds, timeout ? &tv : NULL);
    return n < 0 ? socknotify_ws_fail() : n;
}

static inline int socknotify_ws_getsockopt(SOCKET s, int level, int optname, char *optval, int *optlen)
{
    int fd = socknotify_ws_fd(s);
    socklen_t len;
    if (fd < 0)
        return SOCKET_ERROR;
    if (optlen == NULL || *optlen < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    if (level == SOL_SOCKET && (optname == SO_RCVTIMEO || optname == SO_SNDTIMEO)) {
        struct timeval tv;
        DWORD ms;
        len = sizeof tv;
        if (*optlen < (int)sizeof ms) {
            WSASetLastError(WSAEFAULT);
            return SOCKET_ERROR;
        }
        if ((getsockopt)(fd, level, optname, &tv, &len) != 0)
            return socknotify_ws_fail();
        ms = (DWORD)tv.tv_sec * 1000u + (DWORD)(tv.tv_usec / 1000);
        memcpy(optval, &ms, sizeof ms);
        *optlen = (int)sizeof ms;
        return 0;
    }
    len = (socklen_t)*optlen;
    if ((getsockopt)(fd, level, optname, optval, &len) != 0)
        return socknotify_ws_fail();
    if (level == SOL_SOCKET && optname == SO_ERROR && len >= sizeof(int)) {
        int e;
        memcpy(&e, optval, sizeof e);
        e = socknotify_ws_code(e);
        memcpy(optval, &e, sizeof e);
    }
    *optlen = (int)len;
    return 0;
}

static inline int socknotify_ws_setsockopt(SOCKET s, int level, int optname, const char *optval, int optlen)
{
    int fd = socknotify_ws_fd(s);
    if (fd < 0)
        return SOCKET_ERROR;
    if (optlen < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    if (level == SOL_SOCKET && (optname == SO_RCVTIMEO || optname == SO_SNDTIMEO) && optlen == (int)sizeof(DWORD)) {
        DWORD ms;
        struct timeval tv;
        memcpy(&ms, optval, sizeof ms);
        tv.tv_sec = (time_t)(ms / 1000u);
        tv.tv_usec = (suseconds_t)(ms % 1000u) * 1000;
        return (setsockopt)(fd, level, optname, &tv, sizeof tv) == 0 ? 0 : socknotify_ws_fail();
    }
    return (setsockopt)(fd, level, optname, optval, (socklen_t)optlen) == 0 ? 0 : socknotify_ws_fail();
}

static inline int socknotify_ws_getsockname(SOCKET s, struct sockaddr *name, int *namelen)
{
    int fd = socknotify_ws_fd(s);
    socklen_t len;
    if (fd < 0)
        return SOCKET_ERROR;
    if (namelen == NULL || *namelen < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    len = (socklen_t)*namelen;
    if ((getsockname)(fd, name, &len) != 0)
        return socknotify_ws_fail();
    *namelen = (int)len;
    return 0;
}

static inline int socknotify_ws_getpeername(SOCKET s, struct sockaddr *name, int *namelen)
{
    int fd = socknotify_ws_fd(s);
    socklen_t len;
    if (fd < 0)
        return SOCKET_ERROR;
    if (namelen == NULL || *namelen < 0) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    len = (socklen_t)*namelen;
    if ((getpeername)(fd, name, &len) != 0)
        return socknotify_ws_fail();
    *namelen = (int)len;
    return 0;
}

/** ioctlsocket: FIONBIO (*argp != 0: non-blocking) and FIONREAD (*argp = bytes readable). */
static inline int ioctlsocket(SOCKET s, long cmd, u_long *argp)
{
    int fd = socknotify_ws_fd(s);
    if (fd < 0)
        return SOCKET_ERROR;
    if (argp == NULL) {
        WSASetLastError(WSAEFAULT);
        return SOCKET_ERROR;
    }
    if (cmd == (long)FIONBIO) {
        int fl = fcntl(fd, F_GETFL);
        if (fl == -1)
            return socknotify_ws_fail();
        fl = *argp ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
        return fcntl(fd, F_SETFL, fl) == 0 ? 0 : socknotify_ws_fail();
    }
    if (cmd == (long)FIONREAD) {
        int n = 0;
        if (ioctl(fd, FIONREAD, &n) != 0)
            return socknotify_ws_fail();
        *argp = (u_long)n;
        return 0;
    }
    WSASetLastError(WSAEINVAL);
    return SOCKET_ERROR;
}

#ifdef __cplusplus
} /* extern "C" */

/* C++: bind is an overload (a macro named bind would break std::bind). */
static inline int bind(SOCKET s, const struct sockaddr *name, int namelen)
{
    return socknotify_ws_bind(s, name, namelen);
}
#else
#define bind(s, name, namelen) socknotify_ws_bind((s), (name), (namelen))
#endif

#define socket(af, type, protocol) socknotify_ws_socket((af), (type), (protocol))
#define listen(s, backlog) socknotify_ws_listen((s), (backlog))
#define accept(s, addr, addrlen) socknotify_ws_accept((s), (addr), (addrlen))
#define connect(s, name, namelen) socknotify_ws_connect((s), (name), (namelen))
#define send(s, buf, len, flags) socknotify_ws_send((s), (buf), (len), (flags))
#define recv(s, buf, len, flags) socknotify_ws_recv((s), (buf), (len), (flags))
#define sendto(s, buf, len, flags, to, tolen) socknotify_ws_sendto((s), (buf), (len), (flags), (to), (tolen))
#define recvfrom(s, buf, len, flags, from, fromlen) \
    socknotify_ws_recvfrom((s), (buf), (len), (flags), (from), (fromlen))
#define shutdown(s, how) socknotify_ws_shutdown((s), (how))
#define select(nfds, r, w, e, timeout) socknotify_ws_select((nfds), (r), (w), (e), (timeout))
#define getsockopt(s, level, name, val, len) socknotify_ws_getsockopt((s), (level), (name), (val), (len))
#define setsockopt(s, level, name, val, len) socknotify_ws_setsockopt((s), (level), (name), (val), (len))
#define getsockname(s, name, namelen) socknotify_ws_getsockname((s), (name), (namelen))
#define getpeername(s, name, namelen) socknotify_ws_getpeername((s), (name), (namelen))

#endif /* SOCKNOTIFY_PORT_WINSOCK2_H */
