/*
 * nx_nxb.c — NXB binary batches: one-pass validating decoder, unchecked
 * iterator over validated batches, fixed-buffer encoder, TCP frame length,
 * ack frames. The byte layout is at the top of nx_nxb.h and, in full, in
 * docs/nxb.md.
 *
 * Trade-offs:
 *  - Validation walks every event once and the iterator walks it again.
 *    Varint decoding is a few ns per event, and in exchange a batch is
 *    all-or-nothing (a shard never applies half a batch; the TCP ack status
 *    is exact) and the apply loop carries no error paths.
 *  - Self-contained little-endian readers instead of nx_rbuf: the decoder
 *    is on the hottest path of the daemon and checks bounds per field with
 *    a plain pointer compare; the sticky-error reader would check again.
 *  - Integral values travel as zigzag varints (a counter increment of 1 is
 *    one byte), anything else as f64, so values round-trip bit-exactly.
 */
#include "ingest/nx_nxb.h"
#include "common/nx_codec.h"

#include <assert.h>
#include <math.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "NXB codec assumes a little-endian host");
_Static_assert(NX_NXB_OFF_TENANT == 8, "the kernel stage reads the tenant at offset 8");

static const char *const nxb_reason_names[NX_NXB_NREASONS] = {
    "ok",           "bad_magic",        "bad_version",       "bad_header", "truncated",
    "oversized",    "too_many_events",  "too_many_streams",  "bad_stream", "bad_stream_ref",
    "bad_value",    "bad_checksum",     "count_mismatch",
};

const char *nx_nxb_reason_name(int reason)
{
    if (reason < 0 || reason >= NX_NXB_NREASONS)
        return "unknown";
    return nxb_reason_names[reason];
}

/* ---- little-endian helpers --------------------------------------------- */

static inline uint16_t nxb_ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t nxb_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t nxb_ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline double nxb_ldf64(const uint8_t *p)
{
    double v;
    memcpy(&v, p, 8);
    return v;
}
static inline void nxb_st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void nxb_st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void nxb_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Checked unsigned LEB128: returns bytes consumed, 0 if truncated or
 * overlong (more than 10 bytes, or a 10th byte above 1). */
static inline size_t nxb_uvar_get(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    if (p < end && p[0] < 0x80) { /* fast path: one byte */
        *out = p[0];
        return 1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < 10; i++) {
        if (p + i >= end)
            return 0;
        uint8_t b = p[i];
        if (i == 9 && b > 1)
            return 0;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

/* Unchecked LEB128 for validated input. */
static inline const uint8_t *nxb_uvar_fast(const uint8_t *p, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    for (;;) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
        shift += 7;
    }
    *out = v;
    return p;
}

static inline int64_t nxb_unzig(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }
static inline uint64_t nxb_zig(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static inline size_t nxb_uvar_put(uint8_t *p, uint64_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

/* ---- decoder ------------------------------------------------------------ */

static int nxb_reject(nx_nxb_stats *stats, int *reason, int why)
{
    assert(why > 0 && why < NX_NXB_NREASONS);
    if (stats)
        stats->rejected[why]++;
    if (reason)
        *reason = why;
    if (why == NX_NXB_BAD_VERSION)
        return NX_EVERSION;
    if (why == NX_NXB_OVERSIZED || why == NX_NXB_TOO_MANY_EVENTS || why == NX_NXB_TOO_MANY_STREAMS)
        return NX_ETOOBIG;
    return NX_ECORRUPT;
}

/* Header checks shared by decode and frame_len; 0 or a reason. */
static int nxb_check_header(const uint8_t *p, size_t n, uint32_t max_frame)
{
    if (n >= 4 && nxb_ld32(p) != NX_NXB_MAGIC)
        return NX_NXB_BAD_MAGIC;
    if (n < NX_NXB_HDR_LEN)
        return NX_NXB_TRUNCATED;
    if (p[4] != NX_NXB_VERSION)
        return NX_NXB_BAD_VERSION;
    if (p[5] & ~NX_NXB_F_KNOWN)
        return NX_NXB_BAD_HEADER;
    uint16_t hlen = nxb_ld16(p + 6);
    uint32_t total = nxb_ld32(p + NX_NXB_OFF_TOTAL);
    if (hlen < NX_NXB_HDR_LEN)
        return NX_NXB_BAD_HEADER;
    if (total > max_frame)
        return NX_NXB_OVERSIZED;
    if (total < hlen)
        return NX_NXB_BAD_HEADER;
    return NX_NXB_OK;
}

long nx_nxb_frame_len(const uint8_t *p, size_t n, uint32_t max_frame, int *reason)
{
    if (n < NX_NXB_HDR_LEN && (n < 4 || nxb_ld32(p) == NX_NXB_MAGIC))
        return 0;
    int why = nxb_check_header(p, n, max_frame);
    if (why)
        return nxb_reject(NULL, reason, why);
    return (long)nxb_ld32(p + NX_NXB_OFF_TOTAL);
}

int nx_nxb_decode(const uint8_t *p, size_t n, nx_nxb_batch *out, nx_nxb_stats *stats,
                  int *reason)
{
    int why = nxb_check_header(p, n, NX_NXB_MAX_FRAME);
    if (why)
        return nxb_reject(stats, reason, why);
    uint32_t total = nxb_ld32(p + NX_NXB_OFF_TOTAL);
    if (total > n)
        return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
    if (total < n)
        return nxb_reject(stats, reason, NX_NXB_OVERSIZED);
    uint32_t count = nxb_ld32(p + NX_NXB_OFF_COUNT);
    if (count > NX_NXB_MAX_EVENTS)
        return nxb_reject(stats, reason, NX_NXB_TOO_MANY_EVENTS);
    uint8_t flags = p[5];
    const uint8_t *q = p + nxb_ld16(p + 6);
    const uint8_t *end = p + total;
    if (flags & NX_NXB_F_CRC) {
        if (nx_crc32(q, (size_t)(end - q)) != nxb_ld32(p + 28))
            return nxb_reject(stats, reason, NX_NXB_BAD_CHECKSUM);
    }

    /* stream table */
    uint64_t nstreams, v;
    size_t k = nxb_uvar_get(q, end, &nstreams);
    if (!k)
        return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
    q += k;
    if (nstreams > NX_NXB_MAX_STREAMS)
        return nxb_reject(stats, reason, NX_NXB_TOO_MANY_STREAMS);
    for (uint32_t i = 0; i < nstreams; i++) {
        if (q >= end)
            return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
        uint8_t type = *q++;
        if (type < NX_TYPE_COUNTER || type > NX_TYPE_SET)
            return nxb_reject(stats, reason, NX_NXB_BAD_STREAM);
        if (!(k = nxb_uvar_get(q, end, &v)))
            return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
        q += k;
        if (v == 0 || v > NX_NXB_MAX_KEY)
            return nxb_reject(stats, reason, NX_NXB_BAD_STREAM);
        if (v > (uint64_t)(end - q))
            return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
        out->streams[i].key = (const char *)q;
        out->streams[i].key_len = (uint16_t)v;
        out->streams[i].type = type;
        q += v;
    }
    const uint8_t *events = q;

    /* events: validate everything once */
    for (uint32_t i = 0; i < count; i++) {
        if (q >= end)
            return nxb_reject(stats, reason, NX_NXB_COUNT_MISMATCH);
        uint64_t head;
        if (!(k = nxb_uvar_get(q, end, &head)))
            return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
        q += k;
        uint64_t idx = head >> 2;
        if (idx >= nstreams)
            return nxb_reject(stats, reason, NX_NXB_BAD_STREAM_REF);
        uint8_t ext = 0;
        if (head & NX_NXB_EV_EXT) {
            if (q >= end)
                return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
            ext = *q++;
            if (ext & ~NX_NXB_EXT_KNOWN)
                return nxb_reject(stats, reason, NX_NXB_BAD_VALUE);
        }
        if (out->streams[idx].type == NX_TYPE_SET) {
            if ((head & NX_NXB_EV_F64) || (ext & NX_NXB_EXT_GDELTA))
                return nxb_reject(stats, reason, NX_NXB_BAD_VALUE);
            if (!(k = nxb_uvar_get(q, end, &v)))
                return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
            q += k;
            if (v > NX_NXB_MAX_MEMBER)
                return nxb_reject(stats, reason, NX_NXB_BAD_VALUE);
            if (v > (uint64_t)(end - q))
                return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
            q += v;
        } else {
            if ((ext & NX_NXB_EXT_GDELTA) && out->streams[idx].type != NX_TYPE_GAUGE)
                return nxb_reject(stats, reason, NX_NXB_BAD_VALUE);
            if (head & NX_NXB_EV_F64) {
                if (end - q < 8)
                    return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
                if (!isfinite(nxb_ldf64(q)))
                    return nxb_reject(stats, reason, NX_NXB_BAD_VALUE);
                q += 8;
            } else {
                if (!(k = nxb_uvar_get(q, end, &v)))
                    return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
                q += k;
            }
        }
        if (ext & NX_NXB_EXT_TS) {
            if (!(k = nxb_uvar_get(q, end, &v)))
                return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
            q += k;
        }
        if (ext & NX_NXB_EXT_RATE) {
            if (end - q < 8)
                return nxb_reject(stats, reason, NX_NXB_TRUNCATED);
            double r = nxb_ldf64(q);
            if (!(r > 0.0 && r <= 1.0))
                return nxb_reject(stats, reason, NX_NXB_BAD_VALUE);
            q += 8;
        }
    }
    if (q != end)
        return nxb_reject(stats, reason, NX_NXB_COUNT_MISMATCH);

    out->tenant_num = nxb_ld32(p + NX_NXB_OFF_TENANT);
    out->event_count = count;
    out->sequence = nxb_ld64(p + 16);
    out->base_ts_ms = (int64_t)nxb_ld64(p + 32);
    out->flags = flags;
    out->total_len = total;
    out->nstreams = (uint32_t)nstreams;
    out->events = events;
    out->end = end;
    if (stats) {
        stats->batches++;
        stats->events += count;
    }
    if (reason)
        *reason = NX_NXB_OK;
    return NX_OK;
}

void nx_nxb_iter_init(nx_nxb_iter *it, const nx_nxb_batch *b)
{
    it->b = b;
    it->p = b->events;
    it->left = b->event_count;
}

int nx_nxb_next(nx_nxb_iter *it, nx_nxb_event *ev)
{
    if (it->left == 0)
        return 0;
    const nx_nxb_batch *b = it->b;
    const uint8_t *q = it->p;
    uint64_t head, v;
    q = nxb_uvar_fast(q, &head);
    uint32_t idx = (uint32_t)(head >> 2);
    assert(idx < b->nstreams);
    uint8_t ext = (head & NX_NXB_EV_EXT) ? *q++ : 0;
    ev->stream_idx = idx;
    ev->u.weight = 1.0;
    ev->u.ts_ms = b->base_ts_ms;
    ev->u.member = NULL;
    ev->u.member_len = 0;
    ev->u.gauge_delta = (ext & NX_NXB_EXT_GDELTA) ? 1 : 0;
    if (b->streams[idx].type == NX_TYPE_SET) {
        q = nxb_uvar_fast(q, &v);
        ev->u.member = (const char *)q;
        ev->u.member_len = (uint32_t)v;
        ev->u.value = 1.0;
        q += v;
    } else if (head & NX_NXB_EV_F64) {
        ev->u.value = nxb_ldf64(q);
        q += 8;
    } else {
        q = nxb_uvar_fast(q, &v);
        ev->u.value = (double)nxb_unzig(v);
    }
    if (ext & NX_NXB_EXT_TS) {
        q = nxb_uvar_fast(q, &v);
        /* wrapping add: a hostile delta must not be signed overflow; the
         * engine rejects an absurd timestamp as too late / too early */
        ev->u.ts_ms = (int64_t)((uint64_t)b->base_ts_ms + (uint64_t)nxb_unzig(v));
    }
    if (ext & NX_NXB_EXT_RATE) {
        ev->u.weight = 1.0 / nxb_ldf64(q);
        q += 8;
    }
    assert(q <= b->end);
    it->p = q;
    it->left--;
    return 1;
}

/* ---- encoder ------------------------------------------------------------ */

int nx_nxb_writer_init(nx_nxb_writer *w, uint8_t *buf, uint8_t *evbuf, size_t cap)
{
    if (!w || !buf || !evbuf || cap < 64 || cap > NX_NXB_MAX_FRAME)
        return NX_EINVAL;
    memset(w, 0, sizeof(*w));
    w->buf = buf;
    w->evbuf = evbuf;
    w->cap = cap;
    w->ev_cap = cap;
    nx_nxb_writer_reset(w, 0, 0, 0, 0);
    return NX_OK;
}

void nx_nxb_writer_reset(nx_nxb_writer *w, uint32_t tenant_num, uint64_t sequence,
                         int64_t base_ts_ms, uint8_t flags)
{
    w->tenant_num = tenant_num;
    w->sequence = sequence;
    w->base_ts_ms = base_ts_ms;
    w->flags = flags & NX_NXB_F_KNOWN;
    w->nstreams = 0;
    w->nevents = 0;
    w->ev_len = 0;
    w->tab_len = NX_NXB_HDR_LEN + 2; /* room for a 2-byte nstreams varint */
}

/* The nstreams varint takes 1 byte below 128, 2 up to 1024. */
static size_t nxb_nstreams_len(uint32_t n) { return n < 128 ? 1 : 2; }

size_t nx_nxb_writer_size(const nx_nxb_writer *w)
{
    return w->tab_len - 2 + nxb_nstreams_len(w->nstreams) + w->ev_len;
}

int nx_nxb_writer_stream(nx_nxb_writer *w, nx_type type, const char *key, size_t key_len,
                         uint32_t *idx)
{
    if (type < NX_TYPE_COUNTER || type > NX_TYPE_SET || key_len == 0 || key_len > NX_NXB_MAX_KEY)
        return NX_EINVAL;
    if (w->nstreams >= NX_NXB_MAX_STREAMS)
        return NX_ETOOBIG;
    size_t need = 1 + 2 + key_len + (w->nstreams == 127 ? 1 : 0);
    if (nx_nxb_writer_size(w) + need > w->cap)
        return NX_ETOOBIG;
    uint8_t *p = w->buf + w->tab_len;
    *p++ = (uint8_t)type;
    p += nxb_uvar_put(p, key_len);
    memcpy(p, key, key_len);
    p += key_len;
    w->tab_len = (size_t)(p - w->buf);
    w->types[w->nstreams] = (uint8_t)type;
    *idx = w->nstreams++;
    return NX_OK;
}

/* Appends one event; `member` non-NULL for sets. */
static int nxb_add(nx_nxb_writer *w, uint32_t idx, double value, const char *member,
                   size_t mlen, int64_t ts_ms, double rate, int gauge_delta)
{
    if (idx >= w->nstreams || w->nevents >= NX_NXB_MAX_EVENTS)
        return idx >= w->nstreams ? NX_EINVAL : NX_ETOOBIG;
    int is_set = w->types[idx] == NX_TYPE_SET;
    if (is_set != (member != NULL) || (gauge_delta && w->types[idx] != NX_TYPE_GAUGE))
        return NX_EINVAL;
    if (!(rate > 0.0 && rate <= 1.0) || (!is_set && !isfinite(value)) || mlen > NX_NXB_MAX_MEMBER)
        return NX_EINVAL;
    uint8_t tmp[10 + 1 + 10 + 8 + 10 + 8];
    uint8_t ext = 0;
    int64_t delta = 0;
    if (ts_ms != 0 && ts_ms != w->base_ts_ms) {
        ext |= NX_NXB_EXT_TS;
        delta = ts_ms - w->base_ts_ms;
    }
    if (rate < 1.0)
        ext |= NX_NXB_EXT_RATE;
    if (gauge_delta)
        ext |= NX_NXB_EXT_GDELTA;
    int f64 = 0;
    int64_t iv = 0;
    if (!is_set) {
        if (value >= -9007199254740992.0 && value <= 9007199254740992.0 &&
            (double)(int64_t)value == value && !(value == 0.0 && signbit(value)))
            iv = (int64_t)value;
        else
            f64 = 1;
    }
    uint64_t head = ((uint64_t)idx << 2) | (f64 ? NX_NXB_EV_F64 : 0) | (ext ? NX_NXB_EV_EXT : 0);
    size_t k = nxb_uvar_put(tmp, head);
    if (ext)
        tmp[k++] = ext;
    if (is_set) {
        k += nxb_uvar_put(tmp + k, mlen);
    } else if (f64) {
        memcpy(tmp + k, &value, 8);
        k += 8;
    } else {
        k += nxb_uvar_put(tmp + k, nxb_zig(iv));
    }
    size_t tail = k; /* bytes of tmp written before the member */
    uint8_t tmp2[18];
    size_t k2 = 0;
    if (ext & NX_NXB_EXT_TS)
        k2 += nxb_uvar_put(tmp2, nxb_zig(delta));
    if (ext & NX_NXB_EXT_RATE) {
        memcpy(tmp2 + k2, &rate, 8);
        k2 += 8;
    }
    size_t need = tail + (is_set ? mlen : 0) + k2;
    if (nx_nxb_writer_size(w) + need > w->cap)
        return NX_ETOOBIG;
    uint8_t *p = w->evbuf + w->ev_len;
    memcpy(p, tmp, tail);
    p += tail;
    if (is_set) {
        memcpy(p, member, mlen);
        p += mlen;
    }
    memcpy(p, tmp2, k2);
    w->ev_len += need;
    w->nevents++;
    return NX_OK;
}

int nx_nxb_writer_add(nx_nxb_writer *w, uint32_t idx, double value, int64_t ts_ms, double rate,
                      int gauge_delta)
{
    return nxb_add(w, idx, value, NULL, 0, ts_ms, rate, gauge_delta);
}

int nx_nxb_writer_add_member(nx_nxb_writer *w, uint32_t idx, const char *member, size_t len,
                             int64_t ts_ms, double rate)
{
    if (!member)
        return NX_EINVAL;
    return nxb_add(w, idx, 0.0, member, len, ts_ms, rate, 0);
}

int nx_nxb_writer_finish(nx_nxb_writer *w, size_t *len)
{
    size_t total = nx_nxb_writer_size(w);
    assert(total <= w->cap);
    uint8_t *p = w->buf;
    size_t nl = nxb_nstreams_len(w->nstreams);
    /* the table was written after a 2-byte hole; close it up if 1 suffices */
    size_t tab_body = w->tab_len - (NX_NXB_HDR_LEN + 2);
    if (nl == 1)
        memmove(p + NX_NXB_HDR_LEN + 1, p + NX_NXB_HDR_LEN + 2, tab_body);
    nxb_uvar_put(p + NX_NXB_HDR_LEN, w->nstreams);
    size_t off = NX_NXB_HDR_LEN + nl + tab_body;
    memcpy(p + off, w->evbuf, w->ev_len);
    assert(off + w->ev_len == total);
    nxb_st32(p + 0, NX_NXB_MAGIC);
    p[4] = NX_NXB_VERSION;
    p[5] = w->flags;
    nxb_st16(p + 6, NX_NXB_HDR_LEN);
    nxb_st32(p + 8, w->tenant_num);
    nxb_st32(p + 12, w->nevents);
    nxb_st64(p + 16, w->sequence);
    nxb_st32(p + 24, (uint32_t)total);
    uint32_t crc = 0;
    if (w->flags & NX_NXB_F_CRC) {
        crc = nx_crc32(p + NX_NXB_HDR_LEN, total - NX_NXB_HDR_LEN);
    }
    nxb_st32(p + 28, crc);
    nxb_st64(p + 32, (uint64_t)w->base_ts_ms);
    *len = total;
    return NX_OK;
}

/* ---- acks ----------------------------------------------------------------- */

void nx_nxb_ack_encode(const nx_nxb_ack *a, uint8_t out[NX_NXB_ACK_LEN])
{
    nxb_st32(out, NX_NXB_ACK_MAGIC);
    out[4] = NX_NXB_VERSION;
    out[5] = a->status;
    nxb_st16(out + 6, NX_NXB_ACK_LEN);
    nxb_st32(out + 8, a->tenant_num);
    nxb_st32(out + 12, a->events);
    nxb_st64(out + 16, a->sequence);
    nxb_st32(out + 24, 0);
    nxb_st32(out + 28, nx_crc32(out, 28));
}

int nx_nxb_ack_decode(const uint8_t *p, size_t n, nx_nxb_ack *out)
{
    if (n < NX_NXB_ACK_LEN)
        return NX_EINVAL;
    if (nxb_ld32(p) != NX_NXB_ACK_MAGIC || nxb_ld16(p + 6) != NX_NXB_ACK_LEN)
        return NX_ECORRUPT;
    if (p[4] != NX_NXB_VERSION)
        return NX_EVERSION;
    if (nx_crc32(p, 28) != nxb_ld32(p + 28))
        return NX_ECORRUPT;
    out->status = p[5];
    out->tenant_num = nxb_ld32(p + 8);
    out->events = nxb_ld32(p + 12);
    out->sequence = nxb_ld64(p + 16);
    return NX_OK;
}
