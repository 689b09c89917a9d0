/*
 * prog.c -- the smallest program on socknotify: one completion port, one socket registered
 * for IN (LEVEL|ONESHOT), one notification dequeued. The README's install section builds it
 * with pkg-config (shared and static) and with CMake (examples/cmake/CMakeLists.txt).
 */
#include <socknotify.h>

#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    int sv[2];
    SOCK_NOTIFY_REGISTRATION r = {0, NULL, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE,
                                  SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT, 0};
    OVERLAPPED_ENTRY e;
    UINT32 n = 0;
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (port == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    r.socket = (SOCKET)sv[0];
    r.completionKey = &r;
    if (write(sv[1], "x", 1) != 1)
        return 1;
    /* register and wait (up to 5 s) for the notification, in one call */
    if (ProcessSocketNotifications(port, 1, &r, 5000, 1, &e, &n) != ERROR_SUCCESS || r.registrationResult != 0 ||
        n != 1 || e.lpCompletionKey != (ULONG_PTR)&r || !(SocketNotificationRetrieveEvents(&e) & SOCK_NOTIFY_EVENT_IN))
        return 1;
    if (closesocket((SOCKET)sv[0]) != 0 || closesocket((SOCKET)sv[1]) != 0 || !CloseHandle(port))
        return 1;
    puts("prog: socket notification received");
    return 0;
}
