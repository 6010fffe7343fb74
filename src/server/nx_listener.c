/*
 * nx_listener.c — socket creation for nexusd (see nx_listener.h). Errors are
 * logged here with errno and returned as NX_EINVAL (bad address) or NX_EIO.
 */
#include "server/nx_listener.h"
#include "server/nx_log.h"
#include "nexus.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int nx_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    char host[128];
    const char *port;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
            return NX_EINVAL;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = 0;
        port = rb + 2;
    } else {
        const char *c = strrchr(s, ':');
        if (!c || (size_t)(c - s) >= sizeof(host))
            return NX_EINVAL;
        memcpy(host, s, (size_t)(c - s));
        host[c - s] = 0;
        port = c + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (end == port || *end || p < 0 || p > 65535)
        return NX_EINVAL;
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (host[0] == 0 || strcmp(host, "*") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)p);
        *len = sizeof(*in4);
    } else if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        *len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*in6);
    } else {
        return NX_EINVAL;
    }
    return 0;
}

static int make_socket(const char *addr, int type, int reuseport, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (nx_addr_parse(addr, &ss, &sl) != 0) {
        nx_log(NX_LOG_ERROR, "bad listen address", "addr=\"%s\"", addr);
        return NX_EINVAL;
    }
    int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
        goto fail;
    if (type == SOCK_STREAM && listen(fd, 1024) < 0)
        goto fail;
    *fd_out = fd;
    return 0;
fail:;
    int e = errno;
    nx_log(NX_LOG_ERROR, "cannot open listener", "addr=\"%s\" errno=\"%s\"", addr, strerror(e));
    if (fd >= 0)
        close(fd);
    return NX_EIO;
}

/* SO_REUSEPORT lets any process of the same user join a group on our port
 * and take a share of its traffic (a second nexusd started by mistake, say).
 * Before building a group, a probe without SO_REUSEPORT binds the address:
 * EADDRINUSE means someone holds it. The TCP probe sets SO_REUSEADDR, so only
 * a listener (not a TIME_WAIT connection) counts; the UDP one sets nothing.
 * Port 0 is not probed. Returns 0 when free, NX_EIO (logged) when taken. */
static int probe_free(const char *addr, int type)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (nx_addr_parse(addr, &ss, &sl) != 0)
        return 0; /* make_socket reports it */
    if (((struct sockaddr_in *)&ss)->sin_port == 0) /* same offset in sockaddr_in6 */
        return 0;
    int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int taken = bind(fd, (struct sockaddr *)&ss, sl) < 0 && errno == EADDRINUSE;
    close(fd);
    if (taken)
        nx_log(NX_LOG_ERROR, "cannot open listener: address already in use (another process?)",
               "addr=\"%s\" proto=%s", addr, type == SOCK_STREAM ? "tcp" : "udp");
    return taken ? NX_EIO : 0;
}

/* The receive buffer is what absorbs a shard's transient shortfalls: the
 * first seconds of a snapshot, when events reach streams the encoder has
 * not and each pays its copy-on-write encode, cost a shard ~0.3-0.8 s of
 * CPU within 1-2 s. At 1.5M lines/s for 40 s with durability, datagrams
 * dropped: 8 MiB 56-137 K, 32 MiB 26-69 K, 64 MiB 0-10 K (docs/benchmarks.md).
 * Memory is only used while datagrams wait. Without CAP_NET_ADMIN the
 * kernel caps the size at net.core.rmem_max: said once, in the log. */
static void set_rcvbuf(int fd, uint32_t rcvbuf, const char *addr, bool say)
{
    if (!rcvbuf)
        return;
    int v = (int)rcvbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
    int got = 0;
    socklen_t len = sizeof(got);
    /* the kernel reports twice the size set (its bookkeeping overhead) */
    if (say && getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 && got >= 0 &&
        (uint32_t)got / 2 < rcvbuf)
        nx_log(NX_LOG_WARN,
               "datagram receive buffer smaller than asked (not privileged): bursts may drop "
               "datagrams; raise net.core.rmem_max or grant CAP_NET_ADMIN",
               "addr=\"%s\" asked=%u got=%d", addr, rcvbuf, got / 2);
}

int nx_listener_udp_group(const char *addr, int n, uint32_t rcvbuf, int *fds)
{
    if (probe_free(addr, SOCK_DGRAM))
        return NX_EIO;
    for (int i = 0; i < n; i++) {
        int rc = make_socket(addr, SOCK_DGRAM, 1, &fds[i]);
        if (rc) {
            while (i--)
                close(fds[i]);
            return rc;
        }
        int one = 1;
        setsockopt(fds[i], SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
        set_rcvbuf(fds[i], rcvbuf, addr, i == 0);
    }
    return 0;
}

int nx_listener_tcp_group(const char *addr, int n, int *fds)
{
    if (probe_free(addr, SOCK_STREAM))
        return NX_EIO;
    for (int i = 0; i < n; i++) {
        int rc = make_socket(addr, SOCK_STREAM, 1, &fds[i]);
        if (rc) {
            while (i--)
                close(fds[i]);
            return rc;
        }
    }
    return 0;
}

int nx_listener_tcp(const char *addr, int *fd)
{
    int rc = make_socket(addr, SOCK_STREAM, 0, fd);
    if (rc)
        return rc;
    /* MHD wants a blocking-mode listen socket it then manages itself */
    int fl = fcntl(*fd, F_GETFL);
    fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK);
    return 0;
}

int nx_listener_unix_dgram(const char *path, uint32_t rcvbuf, int *fd_out)
{
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(un.sun_path)) {
        nx_log(NX_LOG_ERROR, "unix socket path too long", "path=\"%s\"", path);
        return NX_EINVAL;
    }
    memcpy(un.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NX_EIO;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
        nx_log(NX_LOG_ERROR, "cannot bind unix socket", "path=\"%s\" errno=\"%s\"", path,
               strerror(errno));
        close(fd);
        return NX_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    set_rcvbuf(fd, rcvbuf, path, true);
    *fd_out = fd;
    return 0;
}
