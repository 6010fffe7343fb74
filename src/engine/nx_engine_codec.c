/*
 * nx_engine_codec.c — the whole engine as bytes (snapshots, shard handoff).
 *
 * A decoded engine answers every read, series and stats call exactly like
 * the encoded one: all state is copied bit for bit (f64 as binary64, sketches
 * by their own exact encodings), including open buckets, window rings with
 * their running and Two-Stacks aggregates, tier rings and all-time.
 *
 * Layout (nx_codec frame: u32 magic 0x4E45584E "NXEN" little-endian |
 * u8 version 10 | payload | u32 crc32 (zlib) of everything before):
 *
 *   payload:
 *     f64  alpha | uvar ddsketch_max_bins | u8 hll_precision | uvar topk_capacity
 *     uvar nwindows, then per window: uvar length_s | uvar bucket_s
 *     uvar ntiers,   then per tier:   uvar step_s   | uvar buckets
 *         (the shape of the state; decoding needs a config with the same
 *          values — tolerances and limits may differ — else NX_EINVAL)
 *     uvar ntenants, then per tenant (its header):
 *       bytes id (uvar length + bytes, [a-z0-9_-]{1,64})
 *       uvar max_streams | uvar max_bytes
 *       uvar events_of_deleted_streams | uvar rejected_late |
 *       uvar rejected_future | uvar rejected_quota | uvar rejected_type
 *         (streams and bytes are recomputed on decode; the events stat is
 *          this plus every stream's events)
 *       uvar nstreams
 *     uvar total streams (the sum of the headers' nstreams), then per stream,
 *     in any order (an incremental snapshot writes them as it reaches them):
 *       uvar tenant (index into the header list; each tenant gets exactly
 *                    its nstreams)
 *       stream:
 *         bytes key (1..65535)
 *         u8   type (1..6)
 *         svar open_sec | svar max_now_ms | svar last_update_ms | svar first_ts
 *         uvar events
 *         f64  last | svar last_ts
 *         acc  open | acc all                 (layout in src/window/nx_window.h)
 *         sets only: u8 has_shll; if 1: the sliding HLL (nx_shll.h layout,
 *              ages relative to open_sec) — the distinct counts of every
 *              window, which keep none themselves
 *         u8   has_hist; if 1: nwindows x window, then ntiers x tier, then
 *              u8 has_direct; if 1: nwindows x svar direct_k (the window
 *              cascade's directly fed sub-buckets, nx_window.h), then
 *              all-time's svar direct_k (absent when none has any)
 *         uvar npending (<= 16, 8 for set streams),
 *              npending x (svar sec | acc): the closed
 *              seconds not yet folded, oldest first, each non-empty and
 *              before open_sec (versions 2 and 3 had it at the end of the
 *              has_hist part, version 1 had none; before version 8 every
 *              stream held at most 8, in version 8 every stream but
 *              quantile streams)
 *   Trailing bytes are an error.
 *   Versions 1 and 2 (still decoded) nest each tenant's streams right after
 *   its header instead of the flat list. Versions 1 to 3 (still decoded)
 *   have no sliding HLL; their windows kept an HLL per sub-bucket (and per
 *   Two-Stacks aggregate). Decoding rebuilds the sliding HLL from those
 *   sub-bucket HLLs, each member taken as seen at the last second of its
 *   sub-bucket, plus the open and pending seconds' HLLs: a window read
 *   after the upgrade counts the members of the sub-buckets it overlaps
 *   (within one sub-bucket of the exact range).
 *   Versions 1 to 4 (still decoded) fold every closed second into every
 *   window: a window fed by another (the cascade, src/engine/nx_engine.c)
 *   already holds its feeder's current sub-bucket. Decoding marks each such
 *   window's current sub-bucket direct (direct_k = cur_k + 1), so it keeps
 *   being fed directly and is not handed those seconds again; the next one
 *   is cascaded. The same for all-time, fed by the widest window. Their
 *   set streams' open and pending buckets have HLLs, which version 5 keeps
 *   in all-time only: decoding merges them into it.
 *   Version 5 (still decoded) is version 6 without derived backs: its set
 *   windows' has_btopk is never 2 (nx_window.h), every back stack's top-k
 *   is kept, and the first aligned flip derives it from then on.
 *   Version 6 (still decoded) is version 7 without front holes: every set
 *   window's front slot holds its suffix (nx_window.h, "Front holes"). The
 *   same decoder reads both; an older nexusd refuses version 7, whose holes
 *   it would read as an empty front.
 *   Version 7 (still decoded) is version 8 with at most 8 pending seconds
 *   per stream: quantile streams' rings hold 16 from version 8 on, which an
 *   older nexusd would refuse as corrupt, so it refuses the version.
 *   Version 8 (still decoded) is version 9 with at most 8 pending seconds
 *   for counter and gauge streams: theirs hold 16 from version 9 on, which
 *   a version 8 nexusd would refuse as corrupt, so it refuses the version.
 *   Version 9 (still decoded) is version 10 without wide current top-ks:
 *   from version 10 on a set window's current sub-bucket may hold a top-k
 *   of nx_window_wide_topk counters (nx_window.h, "Wide current"), which a
 *   version 9 nexusd would refuse as corrupt, so it refuses the version.
 *
 * Decoding builds a fresh engine and only hands it out when every byte was
 * consumed and checked; on any error it is destroyed and *out is untouched.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nx_codec.h"
#include "engine/nx_engine_int.h"
#include "sketch/nx_hll.h"

#define NX_ENGINE_MAGIC 0x4E45584Eu
#define NX_ENGINE_VERSION 10

/* An empty open bucket may hold cleared sketches recycled by the pending
 * ring (or none): encode it canonically, without them, so equal states
 * encode equally. */
static int open_encode(const nx_acc *open, nx_buf *out)
{
    if (!nx_acc_empty(open))
        return nx_acc_encode(open, out);
    nx_acc bare = *open;
    bare.dd = NULL;
    bare.hll = NULL;
    bare.topk = NULL;
    return nx_acc_encode(&bare, out);
}

/* Drains the stream's open-second buffer first (nx_stream.qbuf): that
 * changes how the state is held, not the state, so an engine encoded as
 * `const` is still the same engine. */
static int stream_encode(const nx_engine *e, nx_stream *s, nx_buf *out)
{
    int rc = nx_stream_drain(s);
    if (rc)
        return rc;
    /* all-time's HLL is the sliding HLL's grave: folding every pair into it
     * makes it the whole all-time count on its own, as every snapshot
     * version has it (how the state is held, not the state) */
    if (s->shll && (rc = nx_shll_bury(s->shll, s->open_sec)))
        return rc;
    nx_acc open = nx_stream_open(s);
    if ((rc = nx_buf_bytes(out, s->key, s->key_len)) || (rc = nx_buf_u8(out, s->type)) ||
        (rc = nx_buf_svar(out, s->open_sec)) || (rc = nx_buf_svar(out, s->max_now_ms)) ||
        (rc = nx_buf_svar(out, s->last_update_ms)) || (rc = nx_buf_svar(out, s->first_ts)) ||
        (rc = nx_buf_uvar(out, s->events)) || (rc = nx_buf_f64(out, s->last)) || (rc = nx_buf_svar(out, s->last_ts)) ||
        (rc = open_encode(&open, out)) || (rc = nx_acc_encode(&s->all, out)))
        return rc;
    if (s->type == NX_TYPE_SET) {
        if ((rc = nx_buf_u8(out, s->shll ? 1 : 0)) ||
            (s->shll && (rc = nx_shll_encode(s->shll, s->open_sec, out))))
            return rc;
    }
    if ((rc = nx_buf_u8(out, s->win ? 1 : 0)))
        return rc;
    if (s->win) {
        /* suffixes a flip left to build: like the drain above, how the
         * state is held, not the state */
        for (uint32_t i = 0; i < e->cfg.nwindows; i++)
            if ((rc = nx_window_front_build(&s->win[i], &e->ap)) ||
                (rc = nx_window_encode(&s->win[i], out)))
                return rc;
        const nx_tier *tr = nx_stream_tiers(e, s);
        for (uint32_t i = 0; i < e->cfg.ntiers; i++)
            if ((rc = nx_tier_encode(&tr[i], out)))
                return rc;
        const int64_t *ad = nx_stream_all_direct(e, s);
        bool direct = *ad != NX_WINDOW_NO_DIRECT;
        for (uint32_t i = 0; i < e->cfg.nwindows; i++)
            direct |= s->win[i].direct_k != NX_WINDOW_NO_DIRECT;
        if ((rc = nx_buf_u8(out, direct)))
            return rc;
        for (uint32_t i = 0; direct && i <= e->cfg.nwindows; i++)
            if ((rc = nx_buf_svar(out, i < e->cfg.nwindows ? s->win[i].direct_k : *ad)))
                return rc;
    }
    uint32_t np = s->npend;
    if ((rc = nx_buf_uvar(out, np)))
        return rc;
    for (uint32_t i = 0; i < np; i++) {
        nx_acc a = nx_stream_pend_get(s, i);
        if ((rc = nx_buf_svar(out, s->pend[i].sec)) || (rc = nx_acc_encode(&a, out)))
            return rc;
    }
    return 0;
}

static int tenant_header_encode(const nx_tenant *t, nx_buf *out)
{
    int rc;
    if ((rc = nx_buf_bytes(out, t->id, t->id_len)) || (rc = nx_buf_uvar(out, t->max_streams)) ||
        (rc = nx_buf_uvar(out, t->max_bytes)) || (rc = nx_buf_uvar(out, t->st.events)) ||
        (rc = nx_buf_uvar(out, t->st.rejected_late)) ||
        (rc = nx_buf_uvar(out, t->st.rejected_future)) ||
        (rc = nx_buf_uvar(out, t->st.rejected_quota)) ||
        (rc = nx_buf_uvar(out, t->st.rejected_type)) || (rc = nx_buf_uvar(out, t->streams.count)))
        return rc;
    return 0;
}

/* Frame start, configuration shape, tenant headers and the stream total
 * (tenants in table order: the order nx_engine_encode_begin numbers them). */
static int head_encode(const nx_engine *e, nx_buf *out, size_t *start)
{
    int rc;
    const nx_engine_config *c = &e->cfg;
    if ((rc = nx_frame_begin(out, NX_ENGINE_MAGIC, NX_ENGINE_VERSION, start)))
        return rc;
    if ((rc = nx_buf_f64(out, c->alpha)) || (rc = nx_buf_uvar(out, c->ddsketch_max_bins)) ||
        (rc = nx_buf_u8(out, c->hll_precision)) || (rc = nx_buf_uvar(out, c->topk_capacity)) ||
        (rc = nx_buf_uvar(out, c->nwindows)))
        return rc;
    for (uint32_t i = 0; i < c->nwindows; i++)
        if ((rc = nx_buf_uvar(out, c->windows[i].length_s)) ||
            (rc = nx_buf_uvar(out, c->windows[i].bucket_s)))
            return rc;
    if ((rc = nx_buf_uvar(out, c->ntiers)))
        return rc;
    for (uint32_t i = 0; i < c->ntiers; i++)
        if ((rc = nx_buf_uvar(out, c->tiers[i].step_s)) ||
            (rc = nx_buf_uvar(out, c->tiers[i].buckets)))
            return rc;
    if ((rc = nx_buf_uvar(out, e->tenants.count)))
        return rc;
    uint64_t total = 0;
    for (uint32_t i = 0; i < e->tenants.cap; i++) {
        const nx_tenant *t = e->tenants.slot[i].ptr;
        if (!t)
            continue;
        if ((rc = tenant_header_encode(t, out)))
            return rc;
        total += t->streams.count;
    }
    return nx_buf_uvar(out, total);
}

int nx_engine_encode(const nx_engine *e, nx_buf *out)
{
    size_t start, len0 = out->len;
    int rc = head_encode(e, out, &start);
    uint64_t idx = 0;
    for (uint32_t i = 0; rc == 0 && i < e->tenants.cap; i++) {
        const nx_tenant *t = e->tenants.slot[i].ptr;
        if (!t)
            continue;
        for (uint32_t k = 0; rc == 0 && k < t->streams.cap; k++)
            if (t->streams.slot[k].ptr && !(rc = nx_buf_uvar(out, idx)))
                rc = stream_encode(e, t->streams.slot[k].ptr, out);
        idx++;
    }
    if (rc == 0)
        rc = nx_frame_end(out, start);
    if (rc)
        out->len = len0;
    return rc;
}

/* ---- incremental encoding (see nx_engine_snap in nx_engine_int.h) ---------- */

int nx_engine_encode_begin(nx_engine *e, size_t chunk_bytes, nx_encode_sink sink,
                           void *sink_arg)
{
    nx_engine_snap *sn = &e->snap;
    if (sn->active)
        return NX_EEXIST;
    if (!sink != !chunk_bytes)
        return NX_EINVAL;
    nx_buf b = {0};
    /* Without a sink the buffer grows by doubling (a caller that wants the
     * whole encoding at once pays the copies). With one, pieces of about
     * chunk_bytes go to it as soon as they fill, and it passes buffers
     * back for reuse: the encoding never needs a buffer of the state's
     * size nor fresh pages for one (a whole-state buffer's page faults
     * were 26% of the shard iterations that a snapshot slowed). */
    int rc = sink ? nx_buf_reserve(&b, chunk_bytes + chunk_bytes / 4) : 0;
    if (rc == 0)
        rc = head_encode(e, &b, &sn->frame_start);
    if (rc) {
        nx_buf_free(&b);
        return rc;
    }
    uint32_t idx = 0;
    uint64_t total = 0;
    sn->epoch++; /* every existing stream now differs: due */
    for (uint32_t i = 0; i < e->tenants.cap; i++) {
        nx_tenant *t = e->tenants.slot[i].ptr;
        if (!t)
            continue;
        t->snap_idx = idx++;
        total += t->streams.count;
    }
    sn->buf = b;
    sn->chunk = chunk_bytes;
    sn->sink = sink;
    sn->sink_arg = sink_arg;
    sn->passed = 0;
    sn->due = total;
    sn->cur_t = sn->cur_s = 0;
    sn->crc = nx_crc32(NULL, 0);
    sn->crc_upto = sn->frame_start;
    sn->emitted = 0;
    sn->err = 0;
    sn->active = true;
    return 0;
}

/* Checksums what was encoded since the last call (encodes only append), so
 * that the end does not read it all again. */
static void snap_crc_update(nx_engine_snap *sn)
{
    sn->crc = nx_crc32_more(sn->crc, sn->buf.data + sn->crc_upto, sn->buf.len - sn->crc_upto);
    sn->crc_upto = sn->buf.len;
}

/* Hands what is encoded so far to the sink, which leaves an empty buffer
 * (maybe with capacity: a piece it is done with) to encode on. Called as
 * soon as the buffer reaches the chunk size, also from a copy-on-write
 * encode on the event path: a buffer that grew between steps (tens of MB
 * when an iteration's events touch thousands of due streams) was copied
 * into fresh pages by realloc, 21% of a shard's time in a snapshot. */
static void snap_pass_piece(nx_engine_snap *sn, bool last)
{
    snap_crc_update(sn);
    size_t n = sn->buf.len;
    int rc = sn->sink(sn->sink_arg, &sn->buf);
    sn->buf.len = 0; /* taken (or, after an error, dropped: the encoding fails) */
    /* the next piece's room at once: the sink may have had no buffer to
     * give back, and growing an empty one by doubling copied each piece
     * a dozen times into fresh pages (5% of a shard's time at 1.5M lines/s) */
    if (rc == 0 && !last)
        rc = nx_buf_reserve(&sn->buf, sn->chunk + sn->chunk / 4);
    if (rc && !sn->err)
        sn->err = rc;
    sn->crc_upto = 0;
    sn->passed += n;
}

void nx_engine_snap_emit(nx_engine *e, nx_stream *s)
{
    nx_engine_snap *sn = &e->snap;
    s->snap_epoch = sn->epoch;
    sn->due--;
    sn->emitted++;
    if (sn->err)
        return; /* the encoding failed: the last step reports it */
    int rc = nx_buf_uvar(&sn->buf, s->tenant->snap_idx);
    if (rc == 0)
        rc = stream_encode(e, s, &sn->buf);
    if (rc)
        sn->err = rc;
    else if (sn->sink && sn->buf.len >= sn->chunk)
        snap_pass_piece(sn, false);
}

/* Table slots (tenants and streams) one encode step visits at most. */
#define NX_SNAP_STEP_SLOTS 4096u

int nx_engine_encode_step(nx_engine *e, size_t max_bytes, nx_buf *out, bool *done)
{
    nx_engine_snap *sn = &e->snap;
    *done = false;
    if (!sn->active || out->len)
        return NX_EINVAL;
    uint64_t from = sn->passed + sn->buf.len;
    /* A step also ends after NX_SNAP_STEP_SLOTS table slots: late in a
     * snapshot most streams were already encoded by copy-on-write, and a
     * step could walk tens of thousands of them (a cold miss each) without
     * filling max_bytes. SIZE_MAX still means everything left. */
    uint32_t visit_max = max_bytes == SIZE_MAX ? UINT32_MAX : NX_SNAP_STEP_SLOTS, visited = 0;
    while (sn->due > 0 && !sn->err && visited++ < visit_max) {
        if (sn->cur_t >= e->tenants.cap) {
            /* a table rehashed or shifted under the cursor: sweep again;
             * a whole sweep that found nothing due while `due` says there
             * is would loop forever: a bug, reported instead */
            if (sn->emitted == 0) {
                sn->err = NX_EIO;
                break;
            }
            sn->emitted = 0;
            sn->cur_t = sn->cur_s = 0;
            continue;
        }
        nx_tenant *t = e->tenants.slot[sn->cur_t].ptr;
        if (!t || sn->cur_s >= t->streams.cap) {
            sn->cur_t++;
            sn->cur_s = 0;
            continue;
        }
        nx_stream *s = t->streams.slot[sn->cur_s++].ptr;
        if (s && s->snap_epoch != sn->epoch) {
            nx_engine_snap_emit(e, s);
            if (sn->passed + sn->buf.len - from >= max_bytes)
                break;
        }
    }
    int rc = sn->err;
    snap_crc_update(sn);
    if (rc == 0 && sn->due > 0)
        return 0; /* more steps */
    if (rc == 0)
        rc = nx_buf_u32(&sn->buf, sn->crc); /* the frame's CRC, over every piece */
    if (rc == 0 && sn->sink) {
        snap_pass_piece(sn, true);
        rc = sn->err;
    }
    sn->active = false;
    if (rc || sn->sink) {
        nx_buf_free(&sn->buf);
        if (rc)
            return rc;
    } else {
        *out = sn->buf;
        memset(&sn->buf, 0, sizeof(sn->buf));
    }
    *done = true;
    return 0;
}

void nx_engine_encode_abort(nx_engine *e)
{
    nx_buf_free(&e->snap.buf);
    memset(&e->snap.buf, 0, sizeof(e->snap.buf));
    e->snap.active = false;
}

bool nx_engine_encoding(const nx_engine *e)
{
    return e->snap.active;
}

/* ---- decoding ---------------------------------------------------------------- */

/* The pending list: at most nx_stream_pend_cap() non-empty seconds (16, 8
 * for sets; 8 for every stream before version 8, and for counters and
 * gauges in version 8), strictly increasing, all before the open second.
 * A version 1-4 set's pending second may come with an HLL, which the ring
 * does not keep (a slot holds the type's one sketch): it goes to hll[i],
 * held by the caller until its members are where they belong now. From
 * version 5 on a pending HLL is corrupt. */
static int pending_decode(nx_engine *e, nx_stream *s, nx_rbuf *in, int version,
                          nx_hll *hll[NX_PENDING_MAX])
{
    uint64_t n = nx_rbuf_uvar(in);
    uint32_t max = version < 8 || (version == 8 && !nx_type_has_quantiles((nx_type)s->type))
                       ? 8 /* every ring before v8, and counters' and gauges' in v8 */
                       : nx_stream_pend_cap(s);
    if (in->err || n > max || (n && s->open_sec == INT64_MIN))
        return NX_ECORRUPT;
    if (n == 0)
        return 0;
    int prc = nx_stream_pend_alloc(s);
    if (prc)
        return prc;
    nx_pend_slot *pd = s->pend;
    for (uint32_t i = 0; i < n; i++) {
        int64_t sec = nx_rbuf_svar(in);
        if (in->err || sec >= s->open_sec || sec < INT64_MIN / 4 ||
            (i > 0 && sec <= pd[i - 1].sec))
            return NX_ECORRUPT;
        nx_acc a;
        nx_acc_init(&a);
        int rc = nx_acc_decode(in, &a, &e->ap, (nx_type)s->type);
        if (!rc && a.hll && version >= 5)
            rc = NX_ECORRUPT;
        if (rc) {
            nx_acc_free(&a);
            return rc;
        }
        hll[i] = a.hll;
        a.hll = NULL;
        pd[i].sec = sec;
        nx_stream_pend_put(s, i, &a);
        s->npend = i + 1; /* owned from here on: freed with the stream */
        if (nx_acc_empty(&a))
            return NX_ECORRUPT;
    }
    return 0;
}

/* Version <= 3 window slot HLLs -> the stream's sliding HLL. */
static int legacy_absorb(void *arg, const nx_hll *h, int64_t last_sec)
{
    nx_stream *s = arg;
    return nx_stream_shll_absorb(s, h, last_sec < s->open_sec ? last_sec : s->open_sec);
}

/* The windows' direct_k (version 5), or the mark that makes a version <= 4
 * state, where every window holds every folded second, consistent with the
 * cascade (see the top). */
static int direct_decode(const nx_engine *e, nx_stream *s, nx_rbuf *in, int version)
{
    int64_t *ad = nx_stream_all_direct(e, s);
    if (version < 5) {
        for (uint32_t i = 0; i < e->cfg.nwindows; i++)
            if (e->win_feeder[i] >= 0)
                s->win[i].direct_k = s->win[i].cur_k + 1;
        if (e->all_feeder >= 0)
            *ad = s->win[e->all_feeder].cur_k + 1;
        return 0;
    }
    uint8_t has = nx_rbuf_u8(in);
    if (in->err || has > 1)
        return NX_ECORRUPT;
    for (uint32_t i = 0; has && i <= e->cfg.nwindows; i++) {
        int64_t d = nx_rbuf_svar(in);
        /* any value is consistent (the same test decides what is fed
         * directly and what is not handed on); only the range is checked */
        if (in->err || d > INT64_MAX / 4 || d < NX_WINDOW_NO_DIRECT)
            return NX_ECORRUPT;
        if (i < e->cfg.nwindows)
            s->win[i].direct_k = d;
        else
            *ad = d;
    }
    return 0;
}

/* What the cascade relies on between a stream's windows, which every
 * window of a stream moving to the same second keeps (a CRC-valid snapshot
 * that breaks it is refused, not trusted into an assert):
 *   - a fed window's current sub-bucket holds its feeder's current one;
 *   - a window whose back is derived reads the window it feeds at the
 *     sub-buckets holding its own (nx_window.h), so that window is fed by
 *     the cascade only. */
static int windows_check(const nx_engine *e, const nx_stream *s)
{
    for (uint32_t j = 0; j < e->cfg.nwindows; j++) {
        int f = e->win_feeder[j];
        const nx_window *wj = &s->win[j];
        /* a feeder's sub-bucket divides the fed one's (cascade_plan) */
        if (f >= 0 && nx_floordiv(s->win[f].cur_k, (int64_t)(wj->bucket_s / s->win[f].bucket_s)) !=
                          wj->cur_k)
            return NX_ECORRUPT;
        if (!wj->bderived)
            continue;
        int d = e->win_derive[j];
        if (d < 0 || s->win[d].cur_k != nx_floordiv(wj->cur_k, (int64_t)wj->bgroup) ||
            s->win[d].direct_k != NX_WINDOW_NO_DIRECT)
            return NX_ECORRUPT;
    }
    return 0;
}

/* A version 1-4 set's HLLs that the stream no longer keeps anywhere: its
 * open bucket's and its pending seconds'. */
typedef struct legacy_hlls {
    nx_hll *open;
    nx_hll *pend[NX_PENDING_MAX];
} legacy_hlls;

static int stream_decode_with(nx_engine *e, nx_tenant *t, nx_rbuf *in, int version,
                              legacy_hlls *lh)
{
    size_t klen;
    const uint8_t *key = nx_rbuf_bytes(in, &klen, NX_STREAM_KEY_MAX);
    uint8_t type = nx_rbuf_u8(in);
    if (in->err || !key || klen == 0 || type < NX_TYPE_COUNTER || type > NX_TYPE_SET)
        return NX_ECORRUPT;
    nx_stream *s;
    int rc = nx_tenant_stream_insert(t, (const char *)key, klen, (nx_type)type, &s);
    if (rc)
        return rc == NX_EEXIST || rc == NX_EINVAL ? NX_ECORRUPT : rc;
    s->open_sec = nx_rbuf_svar(in);
    s->max_now_ms = nx_rbuf_svar(in);
    s->last_update_ms = nx_rbuf_svar(in);
    s->first_ts = nx_rbuf_svar(in);
    s->events = nx_rbuf_uvar(in);
    s->last = nx_rbuf_f64(in);
    s->last_ts = nx_rbuf_svar(in);
    if (in->err || !isfinite(s->last) ||
        (s->open_sec != INT64_MIN && (s->open_sec > INT64_MAX / 4 || s->open_sec < INT64_MIN / 4)))
        return NX_ECORRUPT;
    nx_acc open;
    nx_acc_init(&open);
    rc = nx_acc_decode(in, &open, &e->ap, (nx_type)type);
    lh->open = open.hll; /* a version 1-4 set's; the stream keeps none */
    open.hll = NULL;
    nx_stream_open_set(s, &open); /* the stream owns what was decoded */
    if (rc || (rc = nx_acc_decode(in, &s->all, &e->ap, (nx_type)type)))
        return rc;
    if (version >= 4 && type == NX_TYPE_SET) {
        uint8_t has_shll = nx_rbuf_u8(in);
        if (in->err || has_shll > 1 || (has_shll && (s->open_sec == INT64_MIN || !e->shll_horizon)))
            return NX_ECORRUPT;
        if (has_shll && (rc = nx_shll_decode(in, e->cfg.hll_precision, e->shll_horizon,
                                             s->open_sec, &s->shll)))
            return rc == NX_ENOMEM ? rc : NX_ECORRUPT;
    }
    bool legacy = version < 4 && type == NX_TYPE_SET;
    uint8_t has = nx_rbuf_u8(in);
    /* a stream that never saw an event has no windows */
    if (in->err || has > 1 || (has && s->open_sec == INT64_MIN))
        return NX_ECORRUPT;
    if (has) {
        if ((rc = nx_stream_hist_alloc(s)))
            return rc;
        for (uint32_t i = 0; i < e->cfg.nwindows; i++)
            if ((rc = nx_window_decode(in, &s->win[i], &e->ap, (nx_type)type, version >= 10,
                                       legacy ? legacy_absorb : NULL, s)))
                return rc;
        nx_tier *tr = nx_stream_tiers(e, s);
        for (uint32_t i = 0; i < e->cfg.ntiers; i++)
            if ((rc = nx_tier_decode(in, &tr[i])))
                return rc;
        if (version >= 2 && version <= 3 && (rc = pending_decode(e, s, in, version, lh->pend)))
            return rc;
        if ((rc = direct_decode(e, s, in, version)))
            return rc;
        if ((rc = windows_check(e, s)))
            return rc;
    }
    if (version >= 4 && (rc = pending_decode(e, s, in, version, lh->pend)))
        return rc;
    const nx_pend_slot *pd = s->pend;
    uint32_t np = s->npend;
    if (s->win) {
        /* windows are not past the first second still to fold into them */
        int64_t upto = np ? pd[0].sec : s->open_sec;
        for (uint32_t i = 0; i < e->cfg.nwindows; i++)
            if (!nx_window_valid_at(&s->win[i], upto))
                return NX_ECORRUPT;
    }
    for (uint32_t i = 0; legacy && i < np; i++)
        if (lh->pend[i] && (rc = nx_stream_shll_absorb(s, lh->pend[i], pd[i].sec)))
            return rc;
    if (legacy && lh->open && s->open_m.count > 0 &&
        (rc = nx_stream_shll_absorb(s, lh->open, s->open_sec)))
        return rc;
    if (version < 5 && type == NX_TYPE_SET) {
        /* all-time's HLL has every member (see the top) */
        for (uint32_t i = 0; i <= np; i++) {
            nx_hll **h = i < np ? &lh->pend[i] : &lh->open;
            nx_acc a = {.m = i < np ? pd[i].m : s->open_m, .hll = *h};
            if (a.hll && !nx_acc_empty(&a) && (rc = nx_acc_merge_distinct(&s->all, &a, &e->ap)))
                return rc;
            nx_hll_destroy(*h);
            *h = NULL;
        }
    }
    if ((rc = nx_stream_grave_attach(s)))
        return rc;
    nx_stream_account(s);
    return 0;
}

/* Decodes one stream into tenant t. A version 1-4 set's open bucket and
 * pending seconds may come with HLLs, which the stream no longer keeps
 * anywhere: they are held here until their members are where they belong
 * now, and freed on every path. */
static int stream_decode(nx_engine *e, nx_tenant *t, nx_rbuf *in, int version)
{
    legacy_hlls lh = {0};
    int rc = stream_decode_with(e, t, in, version, &lh);
    nx_hll_destroy(lh.open);
    for (uint32_t i = 0; i < NX_PENDING_MAX; i++)
        nx_hll_destroy(lh.pend[i]);
    return rc;
}

/* A tenant header; *nstreams = its stream count (bounded by the input). */
static int tenant_header_decode(nx_engine *e, nx_rbuf *in, nx_tenant **out, uint64_t *nstreams)
{
    size_t idlen;
    const uint8_t *id = nx_rbuf_bytes(in, &idlen, NX_TENANT_ID_MAX);
    if (in->err || !id)
        return NX_ECORRUPT;
    if (nx_engine_tenant_find(e, (const char *)id, idlen))
        return NX_ECORRUPT; /* duplicate */
    nx_tenant *t;
    int rc = nx_engine_tenant(e, (const char *)id, idlen, &t);
    if (rc)
        return rc == NX_EINVAL ? NX_ECORRUPT : rc;
    uint64_t ms = nx_rbuf_uvar(in);
    t->max_bytes = nx_rbuf_uvar(in);
    t->st.events = nx_rbuf_uvar(in);
    t->st.rejected_late = nx_rbuf_uvar(in);
    t->st.rejected_future = nx_rbuf_uvar(in);
    t->st.rejected_quota = nx_rbuf_uvar(in);
    t->st.rejected_type = nx_rbuf_uvar(in);
    *nstreams = nx_rbuf_uvar(in);
    /* a stream takes well over 100 bytes: bound the count by the input */
    if (in->err || ms > UINT32_MAX || *nstreams > in->n / 100)
        return NX_ECORRUPT;
    t->max_streams = (uint32_t)ms;
    *out = t;
    return 0;
}

/* Versions 1 and 2: each tenant's streams follow its header. */
static int tenants_decode_nested(nx_engine *e, nx_rbuf *in, uint64_t ntenants, int version)
{
    for (uint64_t i = 0; i < ntenants; i++) {
        nx_tenant *t;
        uint64_t n;
        int rc = tenant_header_decode(e, in, &t, &n);
        for (uint64_t k = 0; rc == 0 && k < n; k++)
            rc = stream_decode(e, t, in, version);
        if (rc)
            return rc;
    }
    return 0;
}

/* Version 3: all headers, then the flat list of (tenant index, stream). */
static int tenants_decode_flat(nx_engine *e, nx_rbuf *in, uint64_t ntenants, int version)
{
    nx_tenant **ts = calloc(ntenants ? ntenants : 1, sizeof(*ts));
    uint64_t *want = calloc(ntenants ? ntenants : 1, sizeof(*want));
    int rc = ts && want ? 0 : NX_ENOMEM;
    uint64_t sum = 0;
    for (uint64_t i = 0; rc == 0 && i < ntenants; i++) {
        rc = tenant_header_decode(e, in, &ts[i], &want[i]);
        sum += want[i];
    }
    uint64_t total = rc ? 0 : nx_rbuf_uvar(in);
    if (rc == 0 && (in->err || total != sum))
        rc = NX_ECORRUPT;
    for (uint64_t k = 0; rc == 0 && k < total; k++) {
        uint64_t idx = nx_rbuf_uvar(in);
        if (in->err || idx >= ntenants || want[idx] == 0) {
            rc = NX_ECORRUPT;
            break;
        }
        want[idx]--;
        rc = stream_decode(e, ts[idx], in, version);
    }
    free(ts);
    free(want);
    return rc;
}

int nx_engine_decode(const nx_engine_config *cfg, const uint8_t *p, size_t n, nx_engine **out)
{
    nx_rbuf in;
    int version = NX_ENGINE_VERSION;
    int rc = nx_frame_open(p, n, NX_ENGINE_MAGIC, NX_ENGINE_VERSION, &in);
    /* older versions: 2 nests streams under tenants, 1 also lacks pending seconds */
    for (int v = NX_ENGINE_VERSION - 1; rc == NX_EVERSION && v >= 1; v--) {
        version = v;
        rc = nx_frame_open(p, n, NX_ENGINE_MAGIC, (uint8_t)v, &in);
    }
    if (rc)
        return rc;
    nx_engine_config def;
    if (!cfg) {
        nx_engine_config_default(&def);
        cfg = &def;
    }
    if (nx_engine_cfg_check(cfg))
        return NX_EINVAL;
    /* the shape of the encoded state must match the configuration */
    double alpha = nx_rbuf_f64(&in);
    uint64_t bins = nx_rbuf_uvar(&in);
    uint8_t prec = nx_rbuf_u8(&in);
    uint64_t cap = nx_rbuf_uvar(&in);
    uint64_t nw = nx_rbuf_uvar(&in);
    if (in.err || nw > NX_MAX_WINDOWS)
        return NX_ECORRUPT;
    bool same = alpha == cfg->alpha && bins == cfg->ddsketch_max_bins &&
                prec == cfg->hll_precision && cap == cfg->topk_capacity && nw == cfg->nwindows;
    for (uint64_t i = 0; i < nw; i++) {
        uint64_t l = nx_rbuf_uvar(&in), b = nx_rbuf_uvar(&in);
        if (same && (l != cfg->windows[i].length_s || b != cfg->windows[i].bucket_s))
            same = false;
    }
    uint64_t nt = nx_rbuf_uvar(&in);
    if (in.err || nt > NX_MAX_TIERS)
        return NX_ECORRUPT;
    same = same && nt == cfg->ntiers;
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t st = nx_rbuf_uvar(&in), b = nx_rbuf_uvar(&in);
        if (same && (st != cfg->tiers[i].step_s || b != cfg->tiers[i].buckets))
            same = false;
    }
    if (in.err)
        return NX_ECORRUPT;
    if (!same)
        return NX_EINVAL;
    nx_engine *e;
    if ((rc = nx_engine_create(cfg, &e)))
        return rc;
    uint64_t ntenants = nx_rbuf_uvar(&in);
    if (in.err || ntenants > in.n / 8) {
        rc = NX_ECORRUPT;
        goto fail;
    }
    rc = version >= 3 ? tenants_decode_flat(e, &in, ntenants, version)
                      : tenants_decode_nested(e, &in, ntenants, version);
    if (rc)
        goto fail;
    if (in.err || in.n != 0) {
        rc = NX_ECORRUPT;
        goto fail;
    }
    *out = e;
    return 0;
fail:
    nx_engine_destroy(e);
    return rc;
}
