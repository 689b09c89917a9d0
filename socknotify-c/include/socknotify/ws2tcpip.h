/*
 * socknotify/ws2tcpip.h -- <ws2tcpip.h> for ported programs: socknotify/winsock2.h plus the
 * system's getaddrinfo/freeaddrinfo/getnameinfo/inet_pton/inet_ntop (same names and
 * signatures as Windows'; their errors are the system's EAI_* codes, not WSA codes) and
 * Windows' type names for them.
 */
#ifndef SOCKNOTIFY_PORT_WS2TCPIP_H
#define SOCKNOTIFY_PORT_WS2TCPIP_H

#include "winsock2.h"

#include <netdb.h>

typedef struct addrinfo ADDRINFOA, *PADDRINFOA;

#define InetPtonA inet_pton
#define InetNtopA inet_ntop

#endif /* SOCKNOTIFY_PORT_WS2TCPIP_H */
