/*
 * nx_nxb_tcp.h — NXB over TCP for one shard: framed batches in, acks out.
 *
 * Each connection reads back-to-back frames (nx_nxb_frame_len() frames
 * them; a stream that is out of sync — bad magic/version/header, frame over
 * NX_NXB_MAX_FRAME — is closed, because nothing after it can be trusted),
 * hands every complete frame to the shard's apply callback, and queues the
 * ack the callback filled. Acks leave in batch order.
 *
 * THE ack point: nx_nxb_tcp_ack() is the only place an ack is queued. The
 * shard's apply callback returns NX_NXB_TCP_DEFERRED after handing the batch
 * to the WAL (nx_shard_submit) and acks later, through
 * nx_nxb_tcp_ack_deferred(), once the group commit covering the batch was
 * written (ack=applied) or fsynced (ack=durable) — in batch order, because
 * the shard releases parked acks first in, first out. A connection closed in
 * between is recognised by its generation and its late acks are dropped.
 *
 * Back-pressure: acks go to a small per-connection out buffer flushed with
 * one write per read; a client that does not read its acks fills it, then
 * the connection stops reading (EPOLLOUT only) until the buffer drains — the
 * socket buffers, not nexusd's memory, absorb a slow client. Buffers: 64 KiB
 * in, grown to the frame size for large frames (at most 1 MiB + header).
 * Counters go to the shard's nx_shard_stats (single writer: this thread).
 */
#ifndef NX_NXB_TCP_H
#define NX_NXB_TCP_H

#include <stdint.h>
#include "ingest/nx_nxb.h"
#include "server/nx_shard.h"

#define NX_NXB_TCP_DEFERRED 1

/* Applies one complete frame [p, p+n) of connection conn (generation gen)
 * and fills *ack (status, events; tenant and sequence are pre-filled from the
 * header). Returns 0 (ack now) or NX_NXB_TCP_DEFERRED (the caller acks later
 * with nx_nxb_tcp_ack_deferred(conn, gen)). */
typedef int (*nx_nxb_tcp_apply_fn)(void *arg, const uint8_t *p, size_t n, int64_t now_ms,
                                   uint32_t conn, uint32_t gen, nx_nxb_ack *ack);

typedef struct nx_nxb_tcp nx_nxb_tcp;

/* tag_base: the epoll tag of connection i is tag_base | i. */
int nx_nxb_tcp_create(int epfd, uint64_t tag_base, uint32_t max_conns, nx_shard_stats *st,
                      nx_nxb_tcp_apply_fn fn, void *arg, nx_nxb_tcp **out);
void nx_nxb_tcp_destroy(nx_nxb_tcp *t);
/* Accepts up to 64 pending connections from listen_fd. */
void nx_nxb_tcp_accept(nx_nxb_tcp *t, int listen_fd, int shard_id);
/* Handles an epoll event of connection idx (one read, complete frames). */
void nx_nxb_tcp_event(nx_nxb_tcp *t, uint32_t idx, uint32_t events);
/* Queues the ack of a batch of connection idx (see above). */
void nx_nxb_tcp_ack(nx_nxb_tcp *t, uint32_t idx, const nx_nxb_ack *ack);
/* A deferred ack: queued and flushed if connection idx still is generation
 * gen (else dropped: the client is gone). */
void nx_nxb_tcp_ack_deferred(nx_nxb_tcp *t, uint32_t idx, uint32_t gen, const nx_nxb_ack *ack);

#endif
