/*
 * winsock_server.c -- a Windows multithreaded socket-notification server, compiled on Linux
 * with its include lines changed and nothing else.
 *
 * It is written like the multithreaded server sample of Microsoft's "Winsock socket state
 * notifications" documentation (this is our own code, following its description): one I/O
 * completion port; several server threads, each looping on one ProcessSocketNotifications
 * call that applies the registrations it prepared and dequeues the next notifications; every
 * socket registered LEVEL|ONESHOT, so that one notification goes to one thread, which owns
 * the socket until it re-enables it; a connection removed on hang-up, error or end of
 * stream, and its memory freed only when its SOCK_NOTIFY_EVENT_REMOVE packet arrives. Client
 * threads connect to the server on 127.0.0.1, send messages, and check every echoed byte.
 *
 * On Windows the first three lines read <winsock2.h>, <ws2tcpip.h> and <windows.h>; with
 * -I<includedir>/socknotify they may stay that way. Build on Linux (C or C++):
 *   cc  -std=c11   -Wall -Wextra -Werror winsock_server.c $(pkg-config --cflags --libs socknotify) -o winsock_server
 *   c++ -std=c++17 -Wall -Wextra -Werror -x c++ winsock_server.c $(pkg-config --cflags --libs socknotify) -o winsock_server
 * Run: ./winsock_server [server_threads client_threads connections_per_client messages]
 * Exits 0 when every byte came back intact and every context was freed.
 */
#include <socknotify/winsock2.h>
#include <socknotify/ws2tcpip.h>
#include <socknotify/windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 32          /* server or client threads (WaitForMultipleObjects takes 64) */
#define MAX_ENTRIES 16          /* notifications dequeued per call */
#define MAX_ACCEPTS 16          /* connections accepted per listener notification */
#define MAX_REGISTRATIONS (MAX_ENTRIES + MAX_ACCEPTS + 1)
#define BUFFER_SIZE 4096        /* per connection: received bytes not yet echoed */
#define MAX_MESSAGE 3000        /* client message sizes are 1..MAX_MESSAGE bytes */
#define WAIT_LIMIT_MS 60000     /* bound on every wait of main() */

/* A registered socket: the listener or one accepted connection. Its address is the key. */
typedef struct CONNECTION {
    SOCKET socket;
    BOOL isListener;
    char buffer[BUFFER_SIZE]; /* bytes to echo */
    int length;               /* bytes in buffer */
    int offset;               /* bytes of buffer already sent */
} CONNECTION;

static HANDLE completionPort;
static SOCKADDR_IN serverAddress;
static int connectionsPerClient = 25, messagesPerConnection = 20;

static volatile LONG liveConnections;   /* accepted and not yet freed */
static volatile LONG acceptedConnections;
static volatile LONG freedConnections;
static volatile LONG listenerRemoved;
static volatile LONG bytesEchoed;       /* counted by the server threads */
static volatile LONG bytesChecked;      /* counted by the client threads */
static volatile LONG failures;

static void Fail(const char *what, long code)
{
    fprintf(stderr, "winsock_server: %s failed: %ld\n", what, code);
    InterlockedIncrement(&failures);
}

static SOCK_NOTIFY_REGISTRATION Registration(CONNECTION *c, UINT8 operation, UINT16 filter)
{
    SOCK_NOTIFY_REGISTRATION r;
    ZeroMemory(&r, sizeof r);
    r.socket = c->socket;
    r.completionKey = c;
    r.operation = operation;
    if (operation == SOCK_NOTIFY_OP_ENABLE) {
        r.eventFilter = filter;
        r.triggerFlags = SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT;
    }
    return r;
}

/* Applies registrations without dequeuing anything. */
static void Apply(SOCK_NOTIFY_REGISTRATION *regs, UINT32 count)
{
    UINT32 i;
    DWORD rc;
    if (count == 0)
        return;
    rc = ProcessSocketNotifications(completionPort, count, regs, 0, 0, NULL, NULL);
    if (rc != ERROR_SUCCESS)
        Fail("ProcessSocketNotifications (apply)", (long)rc);
    for (i = 0; i < count; i++)
        if (regs[i].registrationResult != ERROR_SUCCESS)
            Fail("registration", (long)regs[i].registrationResult);
}

/* Accepts what is pending on the listener; returns the registrations to make. */
static UINT32 AcceptConnections(CONNECTION *listener, SOCK_NOTIFY_REGISTRATION *regs)
{
    UINT32 n = 0;
    while (n < MAX_ACCEPTS) {
        CONNECTION *c;
        SOCKET s = accept(listener->socket, NULL, NULL);
        if (s == INVALID_SOCKET) {
            if (WSAGetLastError() != WSAEWOULDBLOCK)
                Fail("accept", WSAGetLastError());
            break;
        }
        c = (CONNECTION *)calloc(1, sizeof *c);
        if (c == NULL) {
            Fail("calloc", 0);
            closesocket(s);
            break;
        }
        c->socket = s;
        InterlockedIncrement(&liveConnections);
        InterlockedIncrement(&acceptedConnections);
        regs[n++] = Registration(c, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN | SOCK_NOTIFY_REGISTER_EVENT_HANGUP);
    }
    /* The listener is ONESHOT: enable it again for the next connections. */
    regs[n++] = Registration(listener, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN);
    return n;
}

/* Sends what is buffered. Returns FALSE when the connection failed. */
static BOOL Flush(CONNECTION *c)
{
    while (c->offset < c->length) {
        int sent = send(c->socket, c->buffer + c->offset, c->length - c->offset, 0);
        if (sent == SOCKET_ERROR)
            return WSAGetLastError() == WSAEWOULDBLOCK;
        c->offset += sent;
        InterlockedExchangeAdd(&bytesEchoed, sent);
    }
    c->offset = c->length = 0;
    return TRUE;
}

/* Serves one notification of a connection; returns the registration that re-arms it. */
static SOCK_NOTIFY_REGISTRATION ServeConnection(CONNECTION *c, UINT32 events)
{
    BOOL ok = TRUE;
    if (c->length > 0) { /* echo bytes the socket did not take last time */
        ok = Flush(c);
    } else if (events & SOCK_NOTIFY_EVENT_IN) {
        int received = recv(c->socket, c->buffer, BUFFER_SIZE, 0);
        if (received > 0) {
            c->length = received;
            ok = Flush(c);
        } else if (received == 0 || WSAGetLastError() != WSAEWOULDBLOCK) {
            ok = FALSE; /* end of stream or error */
        }
    } else if (events & (SOCK_NOTIFY_EVENT_HANGUP | SOCK_NOTIFY_EVENT_ERR)) {
        ok = FALSE;
    }
    if (!ok) /* the REMOVE packet will free it */
        return Registration(c, SOCK_NOTIFY_OP_REMOVE, 0);
    return Registration(c, SOCK_NOTIFY_OP_ENABLE,
                        (UINT16)((c->length > 0 ? SOCK_NOTIFY_REGISTER_EVENT_OUT : SOCK_NOTIFY_REGISTER_EVENT_IN) |
                                 SOCK_NOTIFY_REGISTER_EVENT_HANGUP));
}

static DWORD WINAPI ServerThread(LPVOID parameter)
{
    SOCK_NOTIFY_REGISTRATION regs[MAX_REGISTRATIONS];
    OVERLAPPED_ENTRY entries[MAX_ENTRIES];
    UINT32 regCount = 0, received, i, r;
    BOOL quit = FALSE;
    (void)parameter;
    while (!quit) {
        DWORD rc = ProcessSocketNotifications(completionPort, regCount, regCount ? regs : NULL, INFINITE, MAX_ENTRIES,
                                              entries, &received);
        for (r = 0; r < regCount; r++)
            if (regs[r].registrationResult != ERROR_SUCCESS)
                Fail("registration", (long)regs[r].registrationResult);
        regCount = 0;
        if (rc != ERROR_SUCCESS) {
            Fail("ProcessSocketNotifications", (long)rc);
            return 1;
        }
        for (i = 0; i < received; i++) {
            CONNECTION *c = (CONNECTION *)entries[i].lpCompletionKey;
            UINT32 events = SocketNotificationRetrieveEvents(&entries[i]);
            if (c == NULL) { /* a quit packet: one per thread */
                if (quit && !PostQueuedCompletionStatus(completionPort, 0, 0, NULL))
                    Fail("PostQueuedCompletionStatus", (long)GetLastError());
                quit = TRUE;
            } else if (events & SOCK_NOTIFY_EVENT_REMOVE) {
                closesocket(c->socket);
                if (c->isListener) {
                    InterlockedExchange(&listenerRemoved, 1);
                } else {
                    InterlockedIncrement(&freedConnections);
                    InterlockedDecrement(&liveConnections);
                }
                free(c);
            } else if (c->isListener) {
                if (regCount + MAX_ACCEPTS + 1 > MAX_REGISTRATIONS) {
                    Apply(regs, regCount);
                    regCount = 0;
                }
                regCount += AcceptConnections(c, regs + regCount);
            } else {
                regs[regCount++] = ServeConnection(c, events);
            }
        }
    }
    Apply(regs, regCount);
    return 0;
}

/* Fills a message whose bytes depend on who sends it. */
static void Pattern(char *buffer, int length, int client, int connection, int message)
{
    int i;
    for (i = 0; i < length; i++)
        buffer[i] = (char)('!' + (client * 7 + connection * 13 + message * 3 + i) % 90);
}

static DWORD WINAPI ClientThread(LPVOID parameter)
{
    int client = (int)(ULONG_PTR)parameter, connection, message;
    for (connection = 0; connection < connectionsPerClient; connection++) {
        DWORD timeout = 10000; /* a lost echo fails the run instead of hanging it */
        SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
        if (s == INVALID_SOCKET) {
            Fail("socket", WSAGetLastError());
            return 1;
        }
        if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&timeout, sizeof timeout) == SOCKET_ERROR ||
            connect(s, (SOCKADDR *)&serverAddress, sizeof serverAddress) == SOCKET_ERROR) {
            Fail("connect", WSAGetLastError());
            closesocket(s);
            return 1;
        }
        for (message = 0; message < messagesPerConnection; message++) {
            char out[MAX_MESSAGE], in[MAX_MESSAGE];
            int length = 1 + (client * 7919 + connection * 104729 + message * 31) % MAX_MESSAGE, done;
            Pattern(out, length, client, connection, message);
            for (done = 0; done < length;) {
                int n = send(s, out + done, length - done, 0);
                if (n == SOCKET_ERROR) {
                    Fail("send", WSAGetLastError());
                    closesocket(s);
                    return 1;
                }
                done += n;
            }
            for (done = 0; done < length;) {
                int n = recv(s, in + done, length - done, 0);
                if (n == SOCKET_ERROR || n == 0) {
                    Fail("recv", n == 0 ? 0 : WSAGetLastError());
                    closesocket(s);
                    return 1;
                }
                done += n;
            }
            if (memcmp(in, out, (size_t)length) != 0) {
                Fail("echo check", message);
                closesocket(s);
                return 1;
            }
            InterlockedExchangeAdd(&bytesChecked, length);
        }
        if (closesocket(s) == SOCKET_ERROR)
            Fail("closesocket", WSAGetLastError());
    }
    return 0;
}

/* Waits (bounded) until *value == expected. */
static BOOL WaitForValue(volatile LONG *value, LONG expected)
{
    ULONGLONG start = GetTickCount64();
    while (InterlockedCompareExchange(value, expected, expected) != expected) {
        if (GetTickCount64() - start > WAIT_LIMIT_MS)
            return FALSE;
        Sleep(5);
    }
    return TRUE;
}

int main(int argc, char **argv)
{
    WSADATA wsaData;
    HANDLE servers[MAX_THREADS], clients[MAX_THREADS];
    int serverCount = 4, clientCount = 4, i, addressLength = sizeof serverAddress;
    CONNECTION *listener;
    SOCK_NOTIFY_REGISTRATION reg;
    u_long nonBlocking = 1;
    long expectedBytes = 0;
    if (argc == 5) {
        serverCount = atoi(argv[1]);
        clientCount = atoi(argv[2]);
        connectionsPerClient = atoi(argv[3]);
        messagesPerConnection = atoi(argv[4]);
    }
    if (argc != 1 && argc != 5) {
        fprintf(stderr, "usage: %s [server_threads client_threads connections_per_client messages]\n", argv[0]);
        return 2;
    }
    if (serverCount < 1 || serverCount > MAX_THREADS || clientCount < 1 || clientCount > MAX_THREADS ||
        connectionsPerClient < 1 || connectionsPerClient > 1000 || messagesPerConnection < 1 ||
        messagesPerConnection > 1000) {
        fprintf(stderr, "winsock_server: thread counts 1..%d, connections and messages 1..1000\n", MAX_THREADS);
        return 2;
    }

    if (WSAStartup(MAKEWORD(2, 2), &wsaData) != 0 || wsaData.wVersion != MAKEWORD(2, 2)) {
        fprintf(stderr, "winsock_server: WSAStartup failed\n");
        return 1;
    }
    listener = (CONNECTION *)calloc(1, sizeof *listener);
    if (listener == NULL)
        return 1;
    listener->isListener = TRUE;
    listener->socket = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    ZeroMemory(&serverAddress, sizeof serverAddress);
    serverAddress.sin_family = AF_INET;
    serverAddress.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    serverAddress.sin_port = htons(0);
    if (listener->socket == INVALID_SOCKET || ioctlsocket(listener->socket, FIONBIO, &nonBlocking) == SOCKET_ERROR ||
        bind(listener->socket, (SOCKADDR *)&serverAddress, sizeof serverAddress) == SOCKET_ERROR ||
        listen(listener->socket, SOMAXCONN) == SOCKET_ERROR ||
        getsockname(listener->socket, (SOCKADDR *)&serverAddress, &addressLength) == SOCKET_ERROR) {
        fprintf(stderr, "winsock_server: listener setup failed: %d\n", WSAGetLastError());
        return 1;
    }

    completionPort = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (completionPort == NULL) {
        fprintf(stderr, "winsock_server: CreateIoCompletionPort failed: %lu\n", (unsigned long)GetLastError());
        return 1;
    }
    reg = Registration(listener, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_REGISTER_EVENT_IN);
    Apply(&reg, 1);

    for (i = 0; i < serverCount; i++) {
        servers[i] = CreateThread(NULL, 0, ServerThread, NULL, 0, NULL);
        if (servers[i] == NULL)
            return 1;
    }
    for (i = 0; i < clientCount; i++) {
        clients[i] = CreateThread(NULL, 0, ClientThread, (LPVOID)(ULONG_PTR)i, 0, NULL);
        if (clients[i] == NULL)
            return 1;
    }

    if (WaitForMultipleObjects((DWORD)clientCount, clients, TRUE, WAIT_LIMIT_MS) != WAIT_OBJECT_0) {
        fprintf(stderr, "winsock_server: the clients did not finish\n");
        return 1;
    }
    for (i = 0; i < clientCount; i++) {
        DWORD code = STILL_ACTIVE;
        if (!GetExitCodeThread(clients[i], &code) || code != 0)
            Fail("client thread", (long)code);
        CloseHandle(clients[i]);
    }

    /* Every connection's REMOVE packet frees it; then the listener goes the same way. */
    if (!WaitForValue(&liveConnections, 0))
        Fail("waiting for the connections' REMOVE packets", liveConnections);
    reg = Registration(listener, SOCK_NOTIFY_OP_REMOVE, 0);
    Apply(&reg, 1);
    if (!WaitForValue(&listenerRemoved, 1))
        Fail("waiting for the listener's REMOVE packet", 0);

    for (i = 0; i < serverCount; i++)
        if (!PostQueuedCompletionStatus(completionPort, 0, 0, NULL))
            Fail("PostQueuedCompletionStatus", (long)GetLastError());
    if (WaitForMultipleObjects((DWORD)serverCount, servers, TRUE, WAIT_LIMIT_MS) != WAIT_OBJECT_0) {
        fprintf(stderr, "winsock_server: the server threads did not finish\n");
        return 1;
    }
    for (i = 0; i < serverCount; i++) {
        DWORD code = STILL_ACTIVE;
        if (!GetExitCodeThread(servers[i], &code) || code != 0)
            Fail("server thread", (long)code);
        CloseHandle(servers[i]);
    }
    CloseHandle(completionPort);
    WSACleanup();

    for (i = 0; i < clientCount; i++) {
        int connection, message;
        for (connection = 0; connection < connectionsPerClient; connection++)
            for (message = 0; message < messagesPerConnection; message++)
                expectedBytes += 1 + (i * 7919 + connection * 104729 + message * 31) % MAX_MESSAGE;
    }
    if (bytesChecked != expectedBytes || bytesEchoed != expectedBytes)
        Fail("byte count", (long)bytesChecked - expectedBytes);
    if (acceptedConnections != clientCount * connectionsPerClient || freedConnections != acceptedConnections)
        Fail("connection count", (long)freedConnections);
    printf("winsock_server: %d server threads, %ld connections, %ld bytes echoed and checked, %ld contexts freed\n",
           serverCount, (long)acceptedConnections, (long)bytesChecked, (long)freedConnections);
    return failures == 0 ? 0 : 1;
}
