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
#include "nexus.h"

typedef struct nx_rbuf {
    const uint8_t *p;
    size_t n;   /* bytes remaining */
    int err;    /* sticky: set when a read ran past the end or was invalid */
} nx_rbuf;

int nx_buf_reserve(nx_buf *b, size_t extra);
int nx_buf_put(nx_buf *b, const void *p, size_t n);
int nx_buf_u8(nx_buf *b, uint8_t v);
int nx_buf_u16(nx_buf *b, uint16_t v);
int nx_buf_u32(nx_buf *b, uint32_t v);
int nx_buf_u64(nx_buf *b, uint64_t v);
int nx_buf_f64(nx_buf *b, double v);
int nx_buf_uvar(nx_buf *b, uint64_t v);
int nx_buf_svar(nx_buf *b, int64_t v);
/* length-prefixed (uvar) bytes */
int nx_buf_bytes(nx_buf *b, const void *p, size_t n);

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
/* The same, when crc already covers the bytes [start, upto): only the rest
 * is read (a frame written over many steps checksums as it grows). */
int nx_frame_end_from(nx_buf *b, size_t start, uint32_t crc, size_t upto);
/* Checks magic, version (must equal), crc; on success *payload reads the
 * bytes between the header and the crc. NX_ECORRUPT / NX_EVERSION otherwise. */
int nx_frame_open(const uint8_t *p, size_t n, uint32_t magic, uint8_t version,
                  nx_rbuf *payload);

#endif
