/*
 * udp_sink.c — the ceiling of UDP ingest on this machine: a receiver that
 * does what nexusd's receive path does (SO_REUSEPORT sockets, one thread per
 * socket, 8 MiB receive buffers, recvmmsg of 64 datagrams) and then nothing
 * but count lines. No parsing, no summaries, no WAL.
 *
 * It is the reference bench/ingest.sh measures with SINK=1: the highest
 * lossless rate of nx-loadgen -> udp_sink on the same 2 cores bounds what any
 * StatsD server, nexusd included, can sustain here, because the sender and
 * the kernel's UDP path alone need that much CPU. nexusd's figure divided by
 * this one is how much of the machine's ceiling nexusd reaches.
 *
 * usage: nx-udp-sink --port P [--host H] [--threads N] --count-file F
 * F holds N little-endian uint64 line counters (one per thread, updated
 * after every recvmmsg batch); the sum is the lines received so far.
 * Stops on SIGTERM/SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define SINK_BATCH 64
#define SINK_DGRAM 65536
#define SINK_THREADS_MAX 64

typedef struct sink_thread {
    pthread_t tid;
    int fd;
    volatile uint64_t *lines; /* this thread's counter in the mmap'd file */
    volatile sig_atomic_t *stop;
} sink_thread;

static volatile sig_atomic_t g_stop; /* set by the signal handler (main's state) */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Lines in one datagram as a StatsD server splits them: by '\n', a last line
 * without one counts too. */
static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *end = p + n, *q;
    while (p < end && (q = memchr(p, '\n', (size_t)(end - p)))) {
        c += q > p;
        p = q + 1;
    }
    return c + (p < end);
}

static void *sink_loop(void *arg)
{
    sink_thread *t = arg;
    char (*bufs)[SINK_DGRAM] = malloc(sizeof(char[SINK_BATCH][SINK_DGRAM]));
    if (!bufs) {
        fprintf(stderr, "udp_sink: out of memory\n");
        return NULL;
    }
    struct mmsghdr msgs[SINK_BATCH];
    struct iovec iov[SINK_BATCH];
    for (int i = 0; i < SINK_BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = SINK_DGRAM;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t lines = 0;
    while (!*t->stop) {
        int n = recvmmsg(t->fd, msgs, SINK_BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            perror("udp_sink: recvmmsg");
            break;
        }
        for (int i = 0; i < n; i++)
            lines += count_lines(bufs[i], msgs[i].msg_len);
        __atomic_store_n(t->lines, lines, __ATOMIC_RELAXED);
    }
    free(bufs);
    return NULL;
}

static int open_socket(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1, buf = 8 << 20;
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000}; /* to see the stop flag */
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
        bind(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    /* best effort, as nexusd: the kernel caps it at net.core.rmem_max */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: nx-udp-sink --port P [--host 127.0.0.1] [--threads N] "
                    "--count-file F\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *count_file = NULL;
    int port = 0, nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nthreads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--count-file") && i + 1 < argc)
            count_file = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || !count_file || nthreads < 1 ||
        nthreads > SINK_THREADS_MAX) {
        usage();
        return 2;
    }
    int cfd = open(count_file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    size_t csize = sizeof(uint64_t) * (size_t)nthreads;
    if (cfd < 0 || ftruncate(cfd, (off_t)csize)) {
        perror("udp_sink: count file");
        return 1;
    }
    volatile uint64_t *counts = mmap(NULL, csize, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    if (counts == MAP_FAILED) {
        perror("udp_sink: mmap");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sink_thread th[SINK_THREADS_MAX];
    for (int i = 0; i < nthreads; i++) {
        th[i].fd = open_socket(host, port);
        if (th[i].fd < 0) {
            fprintf(stderr, "udp_sink: cannot bind %s:%d: %s\n", host, port, strerror(errno));
            return 1;
        }
        th[i].lines = &counts[i];
        th[i].stop = &g_stop;
    }
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&th[i].tid, NULL, sink_loop, &th[i])) {
            fprintf(stderr, "udp_sink: pthread_create failed\n");
            return 1;
        }
    fprintf(stderr, "udp_sink: %d thread(s) on %s:%d\n", nthreads, host, port);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i].tid, NULL);
        close(th[i].fd);
    }
    munmap((void *)counts, csize);
    close(cfd);
    return 0;
}
