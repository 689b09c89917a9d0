// The porting headers from C++, included before the standard library: std::bind still
// works (bind is an overload there, not a macro), the mapped calls accept size_t lengths,
// and a short round trip runs.
#include <socknotify/winsock2.h>
#include <socknotify/ws2tcpip.h>
#include <socknotify/windows.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#define EXPECT(cond)                                                                                 \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            std::fprintf(stderr, "FAIL %s:%d: %s (WSAGetLastError()=%d)\n", __FILE__, __LINE__, #cond, \
                         WSAGetLastError());                                                         \
            return 1;                                                                                \
        }                                                                                            \
    } while (0)

static int add(int a, int b)
{
    return a + b;
}

int main()
{
    WSADATA d;
    EXPECT(WSAStartup(MAKEWORD(2, 2), &d) == 0);
    auto plus2 = std::bind(add, std::placeholders::_1, 2);
    EXPECT(plus2(40) == 42);

    SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    EXPECT(l != INVALID_SOCKET);
    SOCKADDR_IN a;
    ZeroMemory(&a, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sizeof a;
    EXPECT(bind(l, reinterpret_cast<SOCKADDR *>(&a), sizeof a) == 0);
    EXPECT(::bind(l, reinterpret_cast<SOCKADDR *>(&a), sizeof a) == SOCKET_ERROR); // already bound
    EXPECT(WSAGetLastError() == WSAEINVAL);
    EXPECT(listen(l, SOMAXCONN) == 0);
    EXPECT(getsockname(l, reinterpret_cast<SOCKADDR *>(&a), &len) == 0);

    std::string msg = "round trip through the porting header";
    std::future<std::string> server = std::async(std::launch::async, [l]() {
        SOCKET s = accept(l, nullptr, nullptr);
        char buf[128];
        int n = recv(s, buf, sizeof buf, 0);
        std::string got(buf, n > 0 ? static_cast<size_t>(n) : 0);
        send(s, got.data(), got.size(), 0); // a size_t length, as Windows code often passes
        closesocket(s);
        return got;
    });
    SOCKET c = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    EXPECT(connect(c, reinterpret_cast<SOCKADDR *>(&a), sizeof a) == 0);
    EXPECT(send(c, msg.c_str(), msg.size(), 0) == static_cast<int>(msg.size()));
    std::vector<char> back(msg.size());
    int got = 0;
    while (got < static_cast<int>(back.size())) {
        int n = recv(c, back.data() + got, static_cast<int>(back.size()) - got, 0);
        EXPECT(n > 0);
        got += n;
    }
    EXPECT(std::string(back.begin(), back.end()) == msg);
    EXPECT(server.get() == msg);
    EXPECT(closesocket(c) == 0);
    EXPECT(closesocket(l) == 0);
    EXPECT(WSACleanup() == 0);
    std::puts("ok porting_cpp");
    return 0;
}
