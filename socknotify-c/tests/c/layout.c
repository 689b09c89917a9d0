/*
 * Runtime layout and constant checks of socknotify.h (the header also checks the layouts
 * at compile time). Compiled as C99, C11 and with NONAMELESSUNION by the test suite.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <stddef.h>
#include <string.h>

static void sizes(void)
{
    CHECK_EQ(sizeof(SOCKET), 8);
    CHECK_EQ(sizeof(HANDLE), 8);
    CHECK_EQ(sizeof(PVOID), 8);
    CHECK_EQ(sizeof(ULONG_PTR), 8);
    CHECK_EQ(sizeof(DWORD), 4);
    CHECK_EQ(sizeof(ULONG), 4);
    CHECK_EQ(sizeof(UINT32), 4);
    CHECK_EQ(sizeof(UINT16), 2);
    CHECK_EQ(sizeof(UINT8), 1);
    CHECK_EQ(sizeof(BOOL), 4);
}

static void overlapped(void)
{
    OVERLAPPED o;
    CHECK_EQ(sizeof(OVERLAPPED), 32);
    CHECK_EQ(offsetof(OVERLAPPED, Internal), 0);
    CHECK_EQ(offsetof(OVERLAPPED, InternalHigh), 8);
    CHECK_EQ(offsetof(OVERLAPPED, hEvent), 24);
    memset(&o, 0, sizeof o);
#ifdef NONAMELESSUNION
    CHECK_EQ((char *)&o.u.s.Offset - (char *)&o, 16);
    CHECK_EQ((char *)&o.u.s.OffsetHigh - (char *)&o, 20);
    CHECK_EQ((char *)&o.u.Pointer - (char *)&o, 16);
#else
    CHECK_EQ((char *)&o.Offset - (char *)&o, 16);
    CHECK_EQ((char *)&o.OffsetHigh - (char *)&o, 20);
    CHECK_EQ((char *)&o.Pointer - (char *)&o, 16);
#endif
    CHECK_EQ(sizeof(LPOVERLAPPED), 8);
}

static void entry(void)
{
    CHECK_EQ(sizeof(OVERLAPPED_ENTRY), 32);
    CHECK_EQ(offsetof(OVERLAPPED_ENTRY, lpCompletionKey), 0);
    CHECK_EQ(offsetof(OVERLAPPED_ENTRY, lpOverlapped), 8);
    CHECK_EQ(offsetof(OVERLAPPED_ENTRY, Internal), 16);
    CHECK_EQ(offsetof(OVERLAPPED_ENTRY, dwNumberOfBytesTransferred), 24);
    CHECK_EQ(sizeof(LPOVERLAPPED_ENTRY), 8);
}

static void registration(void)
{
    CHECK_EQ(sizeof(SOCK_NOTIFY_REGISTRATION), 24);
    CHECK_EQ(offsetof(SOCK_NOTIFY_REGISTRATION, socket), 0);
    CHECK_EQ(offsetof(SOCK_NOTIFY_REGISTRATION, completionKey), 8);
    CHECK_EQ(offsetof(SOCK_NOTIFY_REGISTRATION, eventFilter), 16);
    CHECK_EQ(offsetof(SOCK_NOTIFY_REGISTRATION, operation), 18);
    CHECK_EQ(offsetof(SOCK_NOTIFY_REGISTRATION, triggerFlags), 19);
    CHECK_EQ(offsetof(SOCK_NOTIFY_REGISTRATION, registrationResult), 20);
}

static void constants(void)
{
    CHECK_EQ(INVALID_SOCKET, ~(uintptr_t)0);
    CHECK(INVALID_HANDLE_VALUE == (HANDLE)(intptr_t)-1);
    CHECK_EQ(INFINITE, 0xFFFFFFFFu);
    CHECK_EQ(TRUE, 1);
    CHECK_EQ(FALSE, 0);
    CHECK_EQ(SOCKET_ERROR, -1);
    CHECK_EQ(SOCK_NOTIFY_EVENTS_ALL, 0xC7);
    CHECK_EQ(SOCK_NOTIFY_REGISTER_EVENTS_ALL,
             SOCK_NOTIFY_REGISTER_EVENT_IN | SOCK_NOTIFY_REGISTER_EVENT_OUT | SOCK_NOTIFY_REGISTER_EVENT_HANGUP);
    CHECK_EQ(SOCK_NOTIFY_TRIGGER_ALL, 0x0F);
    CHECK_EQ(SOCK_NOTIFY_EVENT_IN, 0x01);
    CHECK_EQ(SOCK_NOTIFY_EVENT_OUT, 0x02);
    CHECK_EQ(SOCK_NOTIFY_EVENT_HANGUP, 0x04);
    CHECK_EQ(WAIT_TIMEOUT, 258);
    CHECK_EQ(ERROR_ABANDONED_WAIT_0, 735);
    CHECK_EQ(ERROR_INVALID_HANDLE, 6);
    CHECK_EQ(WSA_INVALID_HANDLE, ERROR_INVALID_HANDLE);
    CHECK_EQ(WSA_WAIT_TIMEOUT, WAIT_TIMEOUT);
}

const struct tcase tcases[] = {
    {"sizes", "basic type sizes (LLP64 ULONG/DWORD)", sizes},
    {"overlapped", "OVERLAPPED layout, union members included", overlapped},
    {"entry", "OVERLAPPED_ENTRY layout", entry},
    {"registration", "SOCK_NOTIFY_REGISTRATION layout", registration},
    {"constants", "special values and derived constants", constants},
};
const size_t ntcases = sizeof tcases / sizeof tcases[0];
