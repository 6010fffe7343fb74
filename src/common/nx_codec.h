/*
 * nx_codec.h — the byte-level toolkit every encoder and decoder shares.
 *
 * Writers append to an nx_buf (include/nexus.h) and fail only with
 * NX_ENOMEM. Readers consume an nx_rbuf, a bounds-checked cursor: every get
 * checks the remaining length first and sets the sticky `err` flag instead of
 * reading past the end, so a decoder can read a whole structure and check
 * once (`if (in.err) return NX_ECORRUPT;`). Integers are little-endian;
 * unsigned LEB128 varints and zigzag-signed varints keep small numbers small.
 *
 * Framing for a top-level encoded object (summary, engine, WAL record):
 *   u32 magic | u8 version | payload ... | u32 crc32 (zlib) of everything before
 * nx_frame_begin/nx_frame_end write it; nx_frame_open checks magic, version and
 * crc and returns a reader over the payload.
 */
#ifndef NX_CODEC_H
#define NX_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "nexus.h"

typedef struct nx_rbuf {
    const uint8_t *p;
    size_t n;   /* bytes remaining */
    int err;    /* sticky: set when a read ran past the end or was invalid */
} nx_rbuf;

int nx_buf_reserve(nx_buf *b, size_t extra);

/* The writers are inline: an engine encode is millions of small appends
 * (a snapshot of 450 MB in ~650 ms, of which a call, a reserve check and a
 * memcpy call per field were a fifth). Each has a fast path for when the
 * room is there and calls out of line only to grow the buffer. */
int nx_buf_put_grow(nx_buf *b, const void *p, size_t n);
int nx_buf_uvar_grow(nx_buf *b, uint64_t v);

static inline int nx_buf_put(nx_buf *b, const void *p, size_t n)
{
    if (__builtin_expect(n <= b->cap - b->len, 1)) {
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        return NX_OK;
    }
    return nx_buf_put_grow(b, p, n);
}

static inline int nx_buf_u8(nx_buf *b, uint8_t v) { return nx_buf_put(b, &v, 1); }
static inline int nx_buf_u16(nx_buf *b, uint16_t v) { return nx_buf_put(b, &v, 2); }
static inline int nx_buf_u32(nx_buf *b, uint32_t v) { return nx_buf_put(b, &v, 4); }
static inline int nx_buf_u64(nx_buf *b, uint64_t v) { return nx_buf_put(b, &v, 8); }
static inline int nx_buf_f64(nx_buf *b, double v) { return nx_buf_put(b, &v, 8); }

/* unsigned LEB128: 7 bits per byte, least significant first, high bit set
 * on every byte but the last (at most 10 bytes) */
static inline int nx_buf_uvar(nx_buf *b, uint64_t v)
{
    if (__builtin_expect(b->cap - b->len >= 10, 1)) {
        uint8_t *p = b->data + b->len;
        while (v >= 0x80) {
            *p++ = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        *p++ = (uint8_t)v;
        b->len = (size_t)(p - b->data);
        return NX_OK;
    }
    return nx_buf_uvar_grow(b, v);
}

/* zigzag, then uvar */
static inline int nx_buf_svar(nx_buf *b, int64_t v)
{
    return nx_buf_uvar(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* length-prefixed (uvar) bytes */
static inline int nx_buf_bytes(nx_buf *b, const void *p, size_t n)
{
    int rc = nx_buf_uvar(b, n);
    return rc ? rc : nx_buf_put(b, p, n);
}

static inline nx_rbuf nx_rbuf_make(const uint8_t *p, size_t n)
{
    nx_rbuf r = {p, n, 0};
    return r;
}
uint8_t nx_rbuf_u8(nx_rbuf *r);
uint16_t nx_rbuf_u16(nx_rbuf *r);
uint32_t nx_rbuf_u32(nx_rbuf *r);
uint64_t nx_rbuf_u64(nx_rbuf *r);
double nx_rbuf_f64(nx_rbuf *r);
uint64_t nx_rbuf_uvar(nx_rbuf *r);
int64_t nx_rbuf_svar(nx_rbuf *r);
/* Returns a pointer into the input (not copied) and its length via *n;
 * NULL (and err set) if the length runs past the end or exceeds max. */
const uint8_t *nx_rbuf_bytes(nx_rbuf *r, size_t *n, size_t max);
/* Raw n bytes; NULL (and err set) if fewer remain. */
const uint8_t *nx_rbuf_take(nx_rbuf *r, size_t n);

uint32_t nx_crc32(const void *p, size_t n);
/* Continues a CRC: nx_crc32_more(nx_crc32(a, n), b, m) == CRC of a then b. */
uint32_t nx_crc32_more(uint32_t crc, const void *p, size_t n);

/* Frame: returns the offset where the frame began (pass to nx_frame_end). */
int nx_frame_begin(nx_buf *b, uint32_t magic, uint8_t version, size_t *start);
int nx_frame_end(nx_buf *b, size_t start);
/* Checks magic, version (must equal), crc; on success *payload reads the
 * bytes between the header and the crc. NX_ECORRUPT / NX_EVERSION otherwise. */
int nx_frame_open(const uint8_t *p, size_t n, uint32_t magic, uint8_t version,
                  nx_rbuf *payload);

#endif
