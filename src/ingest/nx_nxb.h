/*
 * nx_nxb.h — NXB, the NexusCore binary batch protocol: encoder, zero-copy
 * decoder, TCP framing and ack frames.
 *
 * One NXB batch = a fixed 40-byte little-endian header + a stream table +
 * compact events. The header carries the tenant's numeric id at the FIXED
 * offset 8 (NX_NXB_OFF_TENANT) so that the kernel stage (bpf/nx_steer.bpf.c,
 * the cBPF fallback in nx_steer.c) can steer and rate-limit a datagram by
 * tenant without parsing it. Every byte is documented in docs/nxb.md; the
 * short version:
 *
 *   off size field
 *   0   4    magic        0xA7 'N' 'X' 'B'  (u32 LE 0x42584EA7; first byte
 *                         non-ASCII, so a StatsD text datagram never matches)
 *   4   1    version      1
 *   5   1    flags        bit0 CRC present, bit1 ack requested (TCP);
 *                         other bits must be 0
 *   6   2    header_len   40 (a decoder skips [40, header_len) if larger)
 *   8   4    tenant_num   numeric tenant id (0 = "default")
 *   12  4    event_count  number of events in the body
 *   16  8    sequence     batch sequence (echoed in the TCP ack)
 *   24  4    total_len    header + body bytes (the TCP frame length)
 *   28  4    crc32        zlib crc32 of body bytes if flags bit0, else 0
 *   32  8    base_ts_ms   i64 event-time base (0 = "receive time")
 *   40  ...  body:
 *        uvar nstreams; nstreams x { u8 type (nx_type 1..6); uvar key_len;
 *                                     key bytes (canonical stream key) }
 *        event_count x event:
 *          uvar head = stream_idx << 2 | F64 (bit0) | EXT (bit1)
 *          [EXT]  u8 ext: bit0 TS (svar ms delta from base), bit1 RATE
 *                 (f64 sample rate in (0,1]), bit2 GAUGE_DELTA; others 0
 *          value: set stream  -> uvar len + member bytes (F64 must be 0)
 *                 F64         -> f64 LE (finite)
 *                 otherwise   -> svar (zigzag LEB128) integer
 *          [TS] svar delta   [RATE] f64
 *
 * Design: the decoder validates the WHOLE batch in one pass (header, stream
 * table, every event, exact event count, no trailing bytes, optional CRC)
 * before anything is applied, so a batch is all-or-nothing: a shard never
 * applies half a batch, and a TCP ack's status is exact. The validated batch
 * then iterates without re-checking bounds. Nothing is copied: stream keys
 * and set members point into the datagram. No allocation anywhere: the
 * encoder writes into a caller-supplied buffer (a datagram), the decoder
 * into a caller-supplied nx_nxb_batch. Rejections are counted by reason in
 * a caller-owned nx_nxb_stats (one per shard: no shared counters).
 */
#ifndef NX_NXB_H
#define NX_NXB_H

#include <stddef.h>
#include <stdint.h>
#include "nexus.h"

#define NX_NXB_MAGIC 0x42584EA7u   /* bytes A7 4E 58 42 = "\xA7NXB" */
#define NX_NXB_ACK_MAGIC 0x41584EA7u /* bytes A7 4E 58 41 = "\xA7NXA" */
#define NX_NXB_VERSION 1
#define NX_NXB_HDR_LEN 40
#define NX_NXB_ACK_LEN 32
#define NX_NXB_OFF_MAGIC 0
#define NX_NXB_OFF_TENANT 8
#define NX_NXB_OFF_COUNT 12
#define NX_NXB_OFF_TOTAL 24

#define NX_NXB_F_CRC 0x01
#define NX_NXB_F_ACK 0x02
#define NX_NXB_F_KNOWN (NX_NXB_F_CRC | NX_NXB_F_ACK)

#define NX_NXB_EV_F64 0x1
#define NX_NXB_EV_EXT 0x2
#define NX_NXB_EXT_TS 0x1
#define NX_NXB_EXT_RATE 0x2
#define NX_NXB_EXT_GDELTA 0x4
#define NX_NXB_EXT_KNOWN 0x7

#define NX_NXB_MAX_STREAMS 1024     /* stream declarations per batch */
#define NX_NXB_MAX_KEY 1024         /* bytes of a canonical stream key */
#define NX_NXB_MAX_MEMBER 1024      /* bytes of a set member */
#define NX_NXB_MAX_EVENTS 65536     /* events per batch */
#define NX_NXB_MAX_UDP 65507        /* largest UDP/IPv4 payload */
#define NX_NXB_MAX_FRAME (1u << 20) /* largest batch (TCP frame) */

/* Why a batch was rejected (index into nx_nxb_stats.rejected). */
typedef enum nx_nxb_reason {
    NX_NXB_OK = 0,
    NX_NXB_BAD_MAGIC,        /* not an NXB batch */
    NX_NXB_BAD_VERSION,      /* version != 1 */
    NX_NXB_BAD_HEADER,       /* header_len < 40, unknown flag bits */
    NX_NXB_TRUNCATED,        /* fewer bytes than the header or total_len says,
                              * or a field runs past the end */
    NX_NXB_OVERSIZED,        /* total_len over the limit (or a datagram longer
                              * than total_len: trailing garbage) */
    NX_NXB_TOO_MANY_EVENTS,  /* event_count > NX_NXB_MAX_EVENTS */
    NX_NXB_TOO_MANY_STREAMS, /* nstreams > NX_NXB_MAX_STREAMS */
    NX_NXB_BAD_STREAM,       /* bad type, empty or oversized key */
    NX_NXB_BAD_STREAM_REF,   /* event refers to an undeclared stream */
    NX_NXB_BAD_VALUE,        /* NaN/Inf, bad sample rate, bad member, bad ext */
    NX_NXB_BAD_CHECKSUM,     /* CRC mismatch */
    NX_NXB_COUNT_MISMATCH,   /* body holds more/fewer events than event_count */
    NX_NXB_NREASONS
} nx_nxb_reason;

/* "ok", "bad_magic", "bad_version", ... (static). */
const char *nx_nxb_reason_name(int reason);

/* Per-shard decode counters (owned by the caller; not shared). */
typedef struct nx_nxb_stats {
    uint64_t batches;  /* accepted batches */
    uint64_t events;   /* events in accepted batches */
    uint64_t rejected[NX_NXB_NREASONS]; /* rejected batches by reason */
} nx_nxb_stats;

typedef struct nx_nxb_stream {
    const char *key; /* canonical stream key, NOT NUL-terminated, in the input */
    uint16_t key_len;
    uint8_t type;    /* nx_type */
} nx_nxb_stream;

/* A validated batch. Points into the input buffer, which must outlive it. */
typedef struct nx_nxb_batch {
    uint32_t tenant_num;
    uint32_t event_count;
    uint64_t sequence;
    int64_t base_ts_ms;
    uint8_t flags;
    uint32_t total_len;
    uint32_t nstreams;
    const uint8_t *events;     /* first event */
    const uint8_t *end;        /* end of the body */
    nx_nxb_stream streams[NX_NXB_MAX_STREAMS];
} nx_nxb_batch;

/*
 * Validates and decodes the batch in p[0, n). n must equal total_len (one
 * datagram = one batch; for TCP use nx_nxb_frame_len first). Returns 0 and
 * fills *out, or a negative NX_E* code (NX_ECORRUPT / NX_EVERSION /
 * NX_ETOOBIG) with the reason in *reason (if non-NULL) and counted in
 * *stats (if non-NULL). Never reads outside p[0, n).
 */
int nx_nxb_decode(const uint8_t *p, size_t n, nx_nxb_batch *out, nx_nxb_stats *stats,
                  int *reason);

/* One event of a validated batch. */
typedef struct nx_nxb_event {
    uint32_t stream_idx;   /* index into batch->streams */
    nx_update u;           /* value/weight/ts/member/gauge_delta, ready for
                            * nx_stream_update(); ts_ms 0 = "now" */
} nx_nxb_event;

typedef struct nx_nxb_iter {
    const nx_nxb_batch *b;
    const uint8_t *p;
    uint32_t left;
} nx_nxb_iter;

void nx_nxb_iter_init(nx_nxb_iter *it, const nx_nxb_batch *b);
/* Next event into *ev; returns 1, or 0 at the end. Only for validated batches. */
int nx_nxb_next(nx_nxb_iter *it, nx_nxb_event *ev);

/*
 * TCP framing: given the first n bytes of a stream, returns the frame
 * length (> 0) once the 40-byte header is in, 0 if more bytes are needed to
 * know, or a negative NX_E* code (bad magic/version/header, total_len below
 * the header or over max_frame) with *reason set: the connection is then
 * out of sync and must be closed.
 */
long nx_nxb_frame_len(const uint8_t *p, size_t n, uint32_t max_frame, int *reason);

/* ---- encoder ------------------------------------------------------------ */

/*
 * Writes one batch into a caller-supplied buffer. Streams must be declared
 * before events that use them; since the wire format puts the stream table
 * first, the writer keeps the table in buf and the events in a second
 * caller-supplied area (evbuf) and joins them in nx_nxb_writer_finish (one
 * memmove of the events per batch). Every add returns NX_ETOOBIG when the
 * batch would no longer fit in `cap` bytes: the caller finishes/sends the
 * batch and starts a new one.
 */
typedef struct nx_nxb_writer {
    uint8_t *buf;       /* header + stream table, then the finished batch */
    size_t cap;         /* capacity of buf = the largest batch */
    size_t tab_len;     /* header + stream table bytes in buf */
    uint8_t *evbuf;     /* events under construction */
    size_t ev_cap, ev_len;
    uint32_t nstreams, nevents;
    uint8_t types[NX_NXB_MAX_STREAMS];
    uint32_t tenant_num;
    uint64_t sequence;
    int64_t base_ts_ms;
    uint8_t flags;
} nx_nxb_writer;

/* buf/evbuf must each hold cap bytes (cap >= 64, <= NX_NXB_MAX_FRAME). */
int nx_nxb_writer_init(nx_nxb_writer *w, uint8_t *buf, uint8_t *evbuf, size_t cap);
/* Starts a new batch (forgets streams and events). */
void nx_nxb_writer_reset(nx_nxb_writer *w, uint32_t tenant_num, uint64_t sequence,
                         int64_t base_ts_ms, uint8_t flags);
/* Declares a stream; *idx receives its index in this batch. */
int nx_nxb_writer_stream(nx_nxb_writer *w, nx_type type, const char *key, size_t key_len,
                         uint32_t *idx);
/* Numeric event. Integral values in [-2^53, 2^53] are sent as varints,
 * others as f64. ts_ms: absolute event time or 0 (base). rate: (0,1], 1 = none. */
int nx_nxb_writer_add(nx_nxb_writer *w, uint32_t idx, double value, int64_t ts_ms,
                      double rate, int gauge_delta);
/* Set member event. */
int nx_nxb_writer_add_member(nx_nxb_writer *w, uint32_t idx, const char *member, size_t len,
                             int64_t ts_ms, double rate);
/* Bytes the finished batch would take now. */
size_t nx_nxb_writer_size(const nx_nxb_writer *w);
/* Completes the batch in w->buf; *len receives its length. The writer must
 * be reset before the next batch. */
int nx_nxb_writer_finish(nx_nxb_writer *w, size_t *len);

/* ---- TCP ack frames (server -> client) --------------------------------- */

/*
 *   off size field
 *   0   4    magic      0xA7 'N' 'X' 'A' (u32 LE 0x41584EA7)
 *   4   1    version    1
 *   5   1    status     0 = applied (or durable, per the server's ack mode),
 *                       else an nx_nxb_reason, or 100 + (-NX_E* code) for a
 *                       batch that decoded but was refused (e.g. quota)
 *   6   2    ack_len    32
 *   8   4    tenant_num echoed
 *   12  4    events     events applied
 *   16  8    sequence   echoed batch sequence
 *   24  4    reserved   0
 *   28  4    crc32      zlib crc32 of bytes [0, 28)
 */
typedef struct nx_nxb_ack {
    uint8_t status;
    uint32_t tenant_num;
    uint32_t events;
    uint64_t sequence;
} nx_nxb_ack;

void nx_nxb_ack_encode(const nx_nxb_ack *a, uint8_t out[NX_NXB_ACK_LEN]);
/* NX_ECORRUPT (bad magic/len/crc), NX_EVERSION, NX_EINVAL if n < 32. */
int nx_nxb_ack_decode(const uint8_t *p, size_t n, nx_nxb_ack *out);

#endif
