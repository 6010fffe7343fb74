/*
 * nexus_client.h — libnexus-client: send events to nexusd as NXB binary
 * batches (docs/nxb.md) over UDP (fire-and-forget, one batch per datagram)
 * or TCP (framed, every batch acknowledged with its sequence once the
 * daemon applied it).
 *
 *   nx_client *c;
 *   nx_client_opts o = NX_CLIENT_OPTS_INIT;
 *   o.tenant_num = 17;                        // from POST /v1/tenants
 *   nx_client_open(NX_CLIENT_TCP, "127.0.0.1", 8126, &o, &c);
 *   uint32_t lat;
 *   nx_client_stream(c, NX_TYPE_TIMER, "api.latency|route:/x", 20, &lat);
 *   nx_client_add(c, lat, 12.5, 0, 1.0, 0);   // buffered; sent when full
 *   nx_client_flush(c);
 *   nx_client_wait_acks(c, 1000);             // TCP: all applied?
 *   nx_client_close(c);
 *
 * Streams are registered once per client (the key must be canonical:
 * "name|k:v|k2:v2" with tags sorted, as nx_stream_key_build() makes them)
 * and declared in a batch only when the batch first uses them. Events are
 * buffered into a batch of at most opts.batch_bytes; a full batch is sent
 * automatically. No allocation per event. Not thread-safe: one client per
 * thread.
 */
#ifndef NEXUS_CLIENT_H
#define NEXUS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "nexus.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nx_client_proto { NX_CLIENT_UDP = 0, NX_CLIENT_TCP = 1 } nx_client_proto;

typedef struct nx_client_opts {
    uint32_t tenant_num;  /* the tenant's numeric id (0 = default) */
    size_t batch_bytes;   /* max batch size; 0 = 1400 for UDP, 65536 for TCP */
    int crc;              /* 1: add a CRC32 of the body to every batch */
} nx_client_opts;
#define NX_CLIENT_OPTS_INIT {0, 0, 0}

typedef struct nx_client nx_client;

typedef struct nx_client_stats {
    uint64_t batches_sent, events_sent, bytes_sent;
    uint64_t batches_acked, events_acked; /* TCP, status 0 */
    uint64_t batches_refused;             /* TCP, non-zero ack status */
    uint8_t last_refusal;                 /* status of the last refusal */
} nx_client_stats;

/* Connects (TCP) or connects the UDP socket to host:port (numeric IPv4/IPv6
 * or a name). NX_EIO with errno set on network errors. */
int nx_client_open(nx_client_proto proto, const char *host, uint16_t port,
                   const nx_client_opts *opts, nx_client **out);
/* Flushes pending events (best effort) and closes. */
void nx_client_close(nx_client *c);

/* Registers a stream; *sid is the handle for nx_client_add*. */
int nx_client_stream(nx_client *c, nx_type type, const char *key, size_t key_len, uint32_t *sid);
/* Numeric event. ts_ms 0 = receive time; rate in (0,1] (1 = unsampled);
 * gauge_delta 1 for gauge +N/-N. */
int nx_client_add(nx_client *c, uint32_t sid, double value, int64_t ts_ms, double rate,
                  int gauge_delta);
/* Set member. */
int nx_client_set_add(nx_client *c, uint32_t sid, const char *member, size_t len);
/* Sends the pending batch now (no-op if empty). */
int nx_client_flush(nx_client *c);
/* TCP: waits until every sent batch is acknowledged. NX_ETIMEOUT, NX_EIO
 * (connection lost), NX_ECORRUPT (bad ack frame), NX_EQUOTA if any batch was
 * refused since the last call (see stats.last_refusal). UDP: returns 0. */
int nx_client_wait_acks(nx_client *c, int timeout_ms);
void nx_client_get_stats(const nx_client *c, nx_client_stats *out);

#ifdef __cplusplus
}
#endif
#endif
