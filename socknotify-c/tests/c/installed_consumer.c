/* A program built against an installed copy of the library, found with pkg-config. */
#include <socknotify.h>

#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    int sv[2];
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    SOCK_NOTIFY_REGISTRATION r = {0, NULL, SOCK_NOTIFY_REGISTER_EVENT_IN, SOCK_NOTIFY_OP_ENABLE,
                                  SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_ONESHOT, 0};
    OVERLAPPED_ENTRY e;
    UINT32 n = 0;
    if (!port || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    r.socket = (SOCKET)sv[0];
    r.completionKey = &r;
    if (write(sv[1], "x", 1) != 1)
        return 1;
    if (ProcessSocketNotifications(port, 1, &r, 5000, 1, &e, &n) != ERROR_SUCCESS || r.registrationResult != 0 ||
        n != 1 || e.lpCompletionKey != (ULONG_PTR)&r || !(SocketNotificationRetrieveEvents(&e) & SOCK_NOTIFY_EVENT_IN))
        return 1;
    if (closesocket((SOCKET)sv[0]) != 0 || closesocket((SOCKET)sv[1]) != 0 || !CloseHandle(port))
        return 1;
    puts("ok installed_consumer");
    return 0;
}
