// The header from C++: compile-time layout checks, extern "C" linkage (this program links
// against the library, so mangled names would fail), and a short round trip.
#include "socknotify.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(sizeof(OVERLAPPED_ENTRY) == 32, "OVERLAPPED_ENTRY");
static_assert(sizeof(SOCK_NOTIFY_REGISTRATION) == 24, "SOCK_NOTIFY_REGISTRATION");
static_assert(sizeof(OVERLAPPED) == 32, "OVERLAPPED");
static_assert(std::is_standard_layout<SOCK_NOTIFY_REGISTRATION>::value, "standard layout");
static_assert(std::is_standard_layout<OVERLAPPED_ENTRY>::value, "standard layout");
static_assert(std::is_same<ULONG, std::uint32_t>::value, "ULONG is 32 bits");

#define EXPECT(cond)                                                                          \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            std::fprintf(stderr, "FAIL %s:%d: %s (GetLastError()=%u)\n", __FILE__, __LINE__, \
                         #cond, static_cast<unsigned>(GetLastError()));                      \
            return 1;                                                                         \
        }                                                                                     \
    } while (0)

int main()
{
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
    EXPECT(port != nullptr);
    EXPECT(PostQueuedCompletionStatus(port, 0xC7, 9, nullptr));
    OVERLAPPED_ENTRY e[2];
    std::memset(e, 0, sizeof e);
    UINT32 n = 0;
    EXPECT(ProcessSocketNotifications(port, 0, nullptr, INFINITE, 2, e, &n) == ERROR_SUCCESS);
    EXPECT(n == 1);
    EXPECT(e[0].lpCompletionKey == 9);
    EXPECT(SocketNotificationRetrieveEvents(&e[0]) == SOCK_NOTIFY_EVENTS_ALL);
    EXPECT(ProcessSocketNotifications(port, 0, nullptr, 0, 1, e, &n) == WAIT_TIMEOUT);
    EXPECT(CloseHandle(port));
    EXPECT(!CloseHandle(port));
    EXPECT(GetLastError() == ERROR_INVALID_HANDLE);
    EXPECT(WSAGetLastError() == ERROR_INVALID_HANDLE);
    EXPECT(closesocket(INVALID_SOCKET) == SOCKET_ERROR);
    EXPECT(WSAGetLastError() == WSAENOTSOCK);
    std::puts("ok header_cpp");
    return 0;
}
