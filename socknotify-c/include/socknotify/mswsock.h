/*
 * socknotify/mswsock.h -- <mswsock.h> for ported programs: includes socknotify/winsock2.h.
 * The Microsoft extensions it declares on Windows (AcceptEx, ConnectEx, TransmitFile,
 * WSARecvMsg, ...) are overlapped I/O and are not provided.
 */
#ifndef SOCKNOTIFY_PORT_MSWSOCK_H
#define SOCKNOTIFY_PORT_MSWSOCK_H

#include "winsock2.h"

#endif /* SOCKNOTIFY_PORT_MSWSOCK_H */
