/*
 * nx_listener.h — creating nexusd's sockets.
 *
 * UDP ingest is a SO_REUSEPORT group of N sockets bound to the same address,
 * one per shard: the kernel spreads datagrams over the group (by 4-tuple
 * hash, or by an attached eBPF/cBPF steering program — that hook belongs to
 * whoever owns the group after nx_listener_udp_group() returns: see
 * nx_server_hooks in nx_server.h). Every UDP socket is non-blocking, has
 * SO_RXQ_OVFL on (the kernel then reports its drop counter with each
 * datagram) and SO_RCVBUF set (SO_RCVBUFFORCE first when privileged, so the
 * size is not clamped to net.core.rmem_max).
 *
 * TCP ingest is also a reuseport group (one listening socket per shard, the
 * kernel balances connections). Before a group is built its address is
 * probed with a plain bind: SO_REUSEPORT would let another process of the
 * same user share the port, so one already held fails with NX_EIO (logged). Addresses are "HOST:PORT" with a numeric
 * IPv4 host, "[IPv6]:PORT", or "*:PORT" / ":PORT" for any address.
 */
#ifndef NX_LISTENER_H
#define NX_LISTENER_H

#include <stdint.h>
#include <sys/socket.h>

int nx_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* n non-blocking SO_REUSEPORT UDP sockets on addr into fds[0..n). On error
 * nothing stays open. */
int nx_listener_udp_group(const char *addr, int n, uint32_t rcvbuf, int *fds);
/* n non-blocking SO_REUSEPORT listening TCP sockets. */
int nx_listener_tcp_group(const char *addr, int n, int *fds);
/* One listening TCP socket (blocking accept is left to the user, e.g. MHD). */
int nx_listener_tcp(const char *addr, int *fd);
/* A non-blocking unix datagram socket at path (an old socket file is
 * replaced). */
int nx_listener_unix_dgram(const char *path, uint32_t rcvbuf, int *fd);

#endif
