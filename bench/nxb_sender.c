/*
 * nxb_sender.c — NXB load generator for bench/nxb_ingest.sh, built on
 * libnexus-client (include/nexus_client.h): T tenants (numbers 1..T), one
 * UDP client per tenant (its own socket, so plain reuseport hashing sees T
 * flows), each with a timer stream and a counter stream; integer values so
 * sums are exact. Events go round-robin over tenants in runs of 512, the
 * client packs them into batches of --batch-bytes (65000: one loopback
 * datagram ~ 13,000 events) and sends a datagram whenever one is full.
 *
 *   nx-nxb-sender --port P [--tenants 8] [--events N] [--rate R]
 *                 [--batch-bytes B] [--threads K]
 * Prints "sent_events N", "sent_batches N", "send_seconds S". --rate paces
 * (events/s, all threads together; 0 = as fast as possible), checked every
 * run of 512 events, so pacing costs no syscall per event.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nexus_client.h"

typedef struct targ {
    int port, first, ntenants;
    uint64_t events;
    double rate;
    size_t batch_bytes;
    uint64_t sent_batches;
} targ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *p)
{
    targ *a = p;
    nx_client **c = calloc((size_t)a->ntenants, sizeof(*c));
    uint32_t *lat = calloc((size_t)a->ntenants, sizeof(*lat));
    uint32_t *cnt = calloc((size_t)a->ntenants, sizeof(*cnt));
    for (int i = 0; i < a->ntenants; i++) {
        nx_client_opts o = NX_CLIENT_OPTS_INIT;
        o.tenant_num = (uint32_t)(a->first + i);
        o.batch_bytes = a->batch_bytes;
        if (nx_client_open(NX_CLIENT_UDP, "127.0.0.1", (uint16_t)a->port, &o, &c[i]) ||
            nx_client_stream(c[i], NX_TYPE_TIMER, "bench.lat", 9, &lat[i]) ||
            nx_client_stream(c[i], NX_TYPE_COUNTER, "bench.hits", 10, &cnt[i])) {
            perror("nx_client_open");
            exit(1);
        }
    }
    double t0 = now_s();
    uint64_t v = 1;
    for (uint64_t sent = 0; sent < a->events;) {
        int t = (int)((sent / 512) % (uint64_t)a->ntenants);
        for (int k = 0; k < 512 && sent < a->events; k++, sent++, v++) {
            if (k & 1)
                nx_client_add(c[t], cnt[t], 1, 0, 1.0, 0);
            else
                nx_client_add(c[t], lat[t], (double)(v % 1000 + 1), 0, 1.0, 0);
        }
        if (a->rate > 0) {
            double due = t0 + (double)sent / a->rate;
            double d = due - now_s();
            if (d > 0.0002)
                usleep((useconds_t)(d * 1e6));
        }
    }
    for (int i = 0; i < a->ntenants; i++) {
        nx_client_flush(c[i]);
        nx_client_stats st;
        nx_client_get_stats(c[i], &st);
        a->sent_batches += st.batches_sent;
        nx_client_close(c[i]);
    }
    free(c);
    free(lat);
    free(cnt);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 8126, tenants = 8, threads = 1;
    uint64_t events = 20000000;
    double rate = 0;
    size_t bb = 65000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tenants")) tenants = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--events")) events = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch-bytes")) bb = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || tenants < threads) {
        fprintf(stderr, "need 1 <= threads <= tenants\n");
        return 2;
    }
    targ *a = calloc((size_t)threads, sizeof(*a));
    pthread_t *th = calloc((size_t)threads, sizeof(*th));
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        a[i] = (targ){.port = port, .first = 1 + i * (tenants / threads),
                      .ntenants = i == threads - 1 ? tenants - i * (tenants / threads) : tenants / threads,
                      .events = events / (uint64_t)threads + (i == 0 ? events % (uint64_t)threads : 0),
                      .rate = rate / threads, .batch_bytes = bb};
        pthread_create(&th[i], NULL, run, &a[i]);
    }
    uint64_t batches = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        batches += a[i].sent_batches;
    }
    printf("sent_events %llu\nsent_batches %llu\nsend_seconds %.3f\n", (unsigned long long)events,
           (unsigned long long)batches, now_s() - t0);
    free(a);
    free(th);
    return 0;
}
