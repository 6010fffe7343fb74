/*
 * nx_apply.c — the single path from a received batch to engine updates
 * (see nx_apply.h). Deterministic: no clock, no randomness, no I/O.
 */
#include "server/nx_apply.h"
#include "tenant/nx_registry.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A StatsD line between the stages of nx_applier_apply (see below). */
typedef struct nx_apply_line {
    const char *line;   /* for reject callbacks */
    size_t len;
    nx_statsd_line l;   /* l.tags is stale after stage 1 (the array is reused) */
    nx_tenant *t;
    uint32_t tnum;      /* the gate's tenant number */
    uint32_t key_off, key_len;
    uint64_t hash;
    nx_stream *s;       /* found ahead by stage 2 (types with sketches), or NULL */
} nx_apply_line;

/* The key room one more line may need: its key is at most its own bytes
 * plus a separator per tag (nx_stream_key_build) and the NUL. */
static size_t key_bound(const nx_applier *a, size_t len)
{
    return len + 2 * ((size_t)a->lim.max_tags + 1) + 16;
}

int nx_applier_init(nx_applier *a, nx_engine *e, const nx_statsd_limits *lim)
{
    memset(a, 0, sizeof(*a));
    a->engine = e;
    a->lim = *lim;
    a->tags = calloc((size_t)lim->max_tags + 1, sizeof(nx_tag));
    /* the longest line's key, and room for a chunk of short ones */
    a->key_cap = key_bound(a, lim->max_line) + NX_APPLY_KEY_ROOM;
    a->key = malloc(a->key_cap);
    a->lines = malloc(NX_APPLY_CHUNK * sizeof(*a->lines));
    a->nxb = malloc(sizeof(*a->nxb));
    a->nxb_streams = calloc(NX_NXB_MAX_STREAMS, sizeof(nx_stream *));
    a->nxb_serr = calloc(NX_NXB_MAX_STREAMS, sizeof(int));
    if (!a->tags || !a->key || !a->lines || !a->nxb || !a->nxb_streams || !a->nxb_serr) {
        nx_applier_free(a);
        return NX_ENOMEM;
    }
    return 0;
}

void nx_applier_free(nx_applier *a)
{
    free(a->tags);
    free(a->key);
    free(a->nxb);
    free(a->nxb_streams);
    free(a->nxb_serr);
    free(a->lines);
    a->lines = NULL;
    a->nxb_serr = NULL;
    a->tags = NULL;
    a->key = NULL;
    a->nxb = NULL;
    a->nxb_streams = NULL;
}

void nx_apply_result_add(nx_apply_result *dst, const nx_apply_result *src)
{
    dst->lines += src->lines;
    dst->events += src->events;
    dst->rejected += src->rejected;
    for (int i = 0; i < NX_SD_NREASONS; i++)
        dst->reasons[i] += src->reasons[i];
    dst->nxb_batches += src->nxb_batches;
    for (int i = 0; i < NX_NXB_NREJECT; i++)
        dst->nxb_rejected[i] += src->nxb_rejected[i];
    dst->nxb_last_status = src->nxb_last_status;
    dst->nxb_last_applied = src->nxb_last_applied;
}

const char *nx_nxb_reject_name(int reason)
{
    return reason == NX_NXB_UNKNOWN_TENANT ? "unknown_tenant" : nx_nxb_reason_name(reason);
}

static void reject(nx_applier *a, nx_apply_result *res, int reason, const char *line, size_t len,
                   int64_t now)
{
    assert(reason > 0 && reason < NX_SD_NREASONS);
    res->rejected++;
    res->reasons[reason]++;
    if (a->on_reject)
        a->on_reject(a->reject_arg, reason, line, len, now);
}

/* The tenant of the previous line of the same batch: StatsD clients send a
 * datagram per tenant, so most lines skip the tenant table. Valid for one
 * batch only (tenants are never deleted while a batch is applied). */
typedef struct tenant_cache {
    const char *id;
    size_t len;
    nx_tenant *t;   /* NULL with reason set: the gate refused this tenant */
    int reason;
    uint32_t num;   /* from the gate */
} tenant_cache;

/*
 * StatsD lines go through three stages, in chunks of up to NX_APPLY_CHUNK
 * lines of a batch (DPDK-style: the stream a line names is seldom in cache,
 * and a line at a time would wait for the tenant's table slot, then the
 * stream's key, then its lines, one miss after the other):
 *   1. prepare: parse, build the key (into the chunk's key arena), resolve
 *      the tenant, hash the key and prefetch its table slot;
 *   2. hint (NX_APPLY_AHEAD lines before 3): read the slot, prefetch the
 *      stream's key and the lines its update touches; then, NX_APPLY_NEXT
 *      lines before 3, for types with sketches: find the stream (its lines
 *      in cache by now) and prefetch what its update will touch beyond them
 *      (nx_stream_prefetch_next: the open DDSketch, the pending ring),
 *      keeping it for stage 3;
 *   3. apply: rate limit, find (unless stage 2 did) or create the stream,
 *      apply each value.
 * Every stage takes the lines in order, so the outcome is the one of
 * applying them one by one (stage 1 only reads the parsed line and creates
 * tenants, which stage 3 of earlier lines never depends on); only the
 * order of the reject callbacks between stages differs.
 */

/* Stage 1. Returns true when the line waits for stage 3 in *pl (its key at
 * key + used); false when it was rejected (and counted). */
static bool line_prepare(nx_applier *a, const nx_batch *b, const char *line, size_t len,
                         nx_apply_result *res, tenant_cache *tc, size_t used,
                         nx_apply_line *pl)
{
    nx_statsd_line *l = &pl->l;
    int64_t now = b->recv_ms;
    res->lines++;
    int rc = nx_statsd_parse(line, len, &a->lim, a->tags, l);
    if (rc != NX_SD_OK) {
        reject(a, res, rc, line, len, now);
        return false;
    }
    char *key = a->key + used;
    int klen = nx_stream_key_build(l->name, l->name_len, l->tags, l->ntags, key, a->key_cap - used);
    l->tags = NULL;
    if (klen < 0) {
        reject(a, res, klen == NX_ETOOBIG ? NX_SD_TOO_LONG : NX_SD_BAD_NAME, line, len, now);
        return false;
    }
    const char *tid = l->tenant ? l->tenant : b->tenant;
    size_t tlen = l->tenant ? l->tenant_len : b->tenant_len;
    if (l->tenant && b->tenant_locked &&
        (l->tenant_len != b->tenant_len || memcmp(l->tenant, b->tenant, tlen) != 0)) {
        reject(a, res, NX_SD_WRONG_TENANT, line, len, now);
        return false;
    }
    nx_tenant *t;
    if ((tc->t || tc->reason) && tc->len == tlen && memcmp(tc->id, tid, tlen) == 0) {
        if (!tc->t) {
            reject(a, res, tc->reason, line, len, now);
            return false;
        }
        t = tc->t;
    } else {
        nx_tenant_gate g = {0, 0, 0};
        if (a->gate && (rc = a->gate(a->gate_arg, b, tid, tlen, &g)) != NX_SD_OK) {
            *tc = (tenant_cache){.id = tid, .len = tlen, .reason = rc};
            reject(a, res, rc, line, len, now);
            return false;
        }
        rc = nx_engine_tenant(a->engine, tid, tlen, &t);
        if (rc < 0) {
            reject(a, res, nx_statsd_reason_of_error(rc), line, len, now);
            return false;
        }
        if (a->gate)
            nx_tenant_set_limits(t, g.max_streams, g.max_bytes);
        *tc = (tenant_cache){.id = tid, .len = tlen, .t = t, .num = g.num};
    }
    pl->line = line;
    pl->len = len;
    pl->t = t;
    pl->tnum = tc->num;
    pl->key_off = (uint32_t)used;
    pl->key_len = (uint32_t)klen;
    pl->hash = nx_stream_key_hash(key, (size_t)klen);
    pl->s = NULL;
    nx_tenant_stream_prefetch(t, pl->hash);
    return true;
}

/* Stage 3: the line's values, counted. */
static void line_apply(nx_applier *a, const nx_batch *b, const nx_apply_line *pl,
                       nx_apply_result *res)
{
    const nx_statsd_line *l = &pl->l;
    const char *key = a->key + pl->key_off, *line = pl->line;
    size_t len = pl->len;
    int64_t now = b->recv_ms;
    uint32_t nvals = l->nvalues;
    if (a->take && b->source != NX_SRC_REPLAY) {
        uint32_t granted = a->take(a->gate_arg, pl->tnum, l->nvalues, now);
        assert(granted <= l->nvalues);
        if (granted < l->nvalues) {
            uint32_t d = l->nvalues - granted;
            res->rejected += d;
            res->reasons[NX_SD_RATE_LIMITED] += d;
            if (a->on_reject)
                a->on_reject(a->reject_arg, NX_SD_RATE_LIMITED, line, len, now);
        }
        if (granted == 0)
            return;
        nvals = granted;
    }
    /* found by stage 2: lines applied since never delete or retype a
     * stream; a type clash is refused (and counted) by the lookup */
    nx_stream *s = pl->s;
    int rc = 0;
    if (!s || nx_stream_type(s) != l->type)
        rc = nx_tenant_stream_hashed(pl->t, key, pl->key_len, pl->hash, l->type, &s);
    if (rc < 0) {
        reject(a, res, nx_statsd_reason_of_error(rc), line, len, now);
        return;
    }
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = l->type == NX_TYPE_GAUGE ? 1.0 : 1.0 / l->rate;
    u.ts_ms = l->ts_ms;
    uint32_t pos = 0;
    nx_statsd_value v;
    while (nvals-- > 0 && nx_statsd_value_next(l, &pos, &v)) {
        u.value = v.value;
        u.gauge_delta = v.delta;
        u.member = v.member;
        u.member_len = v.member_len;
        rc = nx_stream_update(s, &u, now);
        if (rc < 0) {
            reject(a, res, nx_statsd_reason_of_error(rc), line, len, now);
        } else {
            res->events++;
            if (a->on_event)
                a->on_event(a->event_arg, pl->t, key, pl->key_len, &u, now);
        }
    }
}

/* Stages 2 and 3 over a prepared chunk. */
static void chunk_apply(nx_applier *a, const nx_batch *b, uint32_t n, nx_apply_result *res)
{
    for (uint32_t i = 0; i < n + NX_APPLY_AHEAD; i++) {
        if (i < n) {
            const nx_apply_line *pl = &a->lines[i];
            nx_tenant_stream_prefetch_found(pl->t, pl->hash, pl->l.type, pl->key_len);
        }
        if (i >= NX_APPLY_NEXT && i - NX_APPLY_NEXT < n) {
            nx_apply_line *pl = &a->lines[i - NX_APPLY_NEXT];
            if (pl->l.type != NX_TYPE_COUNTER && pl->l.type != NX_TYPE_GAUGE) {
                pl->s = nx_tenant_stream_find_hashed(pl->t, a->key + pl->key_off, pl->key_len,
                                                     pl->hash);
                if (pl->s)
                    nx_stream_prefetch_next(pl->s, b->recv_ms);
            }
        }
        if (i >= NX_APPLY_AHEAD)
            line_apply(a, b, &a->lines[i - NX_APPLY_AHEAD], res);
    }
}

/* Counts an engine refusal of NXB events and keeps the batch's first one as
 * its ack status (100 + -err, see docs/nxb.md). */
static void nxb_refuse(nx_apply_result *res, int err, uint64_t n)
{
    int r = nx_statsd_reason_of_error(err);
    res->rejected += n;
    res->reasons[r] += n;
    if (res->nxb_last_status == 0)
        res->nxb_last_status = (uint8_t)(100 + (-err < 100 ? -err : 99));
}

/*
 * One NXB batch: validated whole by nx_nxb_decode (a bad batch changes
 * nothing), tenant number -> tenant, each declared stream looked up once,
 * then every event goes to its stream. Engine refusals (late, type clash,
 * stream quota) refuse those events only, as for StatsD lines.
 */
static int apply_nxb(nx_applier *a, const nx_batch *b, nx_apply_result *res)
{
    res->nxb_last_status = 0;
    res->nxb_last_applied = 0;
    int reason = 0;
    if (nx_nxb_decode(b->data, b->len, a->nxb, NULL, &reason) != 0) {
        assert(reason > 0 && reason < NX_NXB_NREASONS);
        res->nxb_rejected[reason]++;
        res->nxb_last_status = (uint8_t)reason;
        return 0;
    }
    const nx_nxb_batch *nb = a->nxb;
    const char *tid = b->tenant;
    size_t tlen = b->tenant_len;
    const nx_nxb_tenant_cfg *tc = a->nxb_cfg ? nx_config_nxb_tenant(a->nxb_cfg, nb->tenant_num) : NULL;
    if (tc && tc->id[0]) {
        tid = tc->id;
        tlen = strlen(tc->id);
    } else if (nb->tenant_num != 0) {
        /* the tenant registry's numbers (POST /v1/tenants answers "num") */
        nx_tenant_info info;
        nx_registry *reg = a->nxb_cfg ? a->nxb_cfg->registry : NULL;
        if (!reg || nx_registry_get_num(reg, nb->tenant_num, &info) != 0) {
            res->nxb_rejected[NX_NXB_UNKNOWN_TENANT]++;
            res->nxb_last_status = NX_NXB_UNKNOWN_TENANT;
            return 0;
        }
        snprintf(a->nxb_tenant, sizeof(a->nxb_tenant), "%s", info.id);
        tid = a->nxb_tenant;
        tlen = strlen(a->nxb_tenant);
    }
    if (a->gate) {
        nx_tenant_gate g = {0, 0, 0};
        if (a->gate(a->gate_arg, b, tid, tlen, &g) != NX_SD_OK) {
            res->nxb_rejected[NX_NXB_UNKNOWN_TENANT]++;
            res->nxb_last_status = NX_NXB_UNKNOWN_TENANT;
            return 0;
        }
        a->nxb_gate = g;
    }
    res->nxb_batches++;
    nx_tenant *t;
    int rc = nx_engine_tenant(a->engine, tid, tlen, &t);
    if (rc < 0) {
        nxb_refuse(res, rc, nb->event_count);
        return 0;
    }
    if (a->gate)
        nx_tenant_set_limits(t, a->nxb_gate.max_streams, a->nxb_gate.max_bytes);
    for (uint32_t i = 0; i < nb->nstreams; i++) {
        rc = nx_tenant_stream(t, nb->streams[i].key, nb->streams[i].key_len,
                              (nx_type)nb->streams[i].type, &a->nxb_streams[i]);
        a->nxb_serr[i] = rc < 0 ? rc : 0;
        if (rc < 0)
            a->nxb_streams[i] = NULL;
    }
    nx_nxb_iter it;
    nx_nxb_event ev;
    nx_nxb_iter_init(&it, nb);
    uint32_t applied = 0;
    while (nx_nxb_next(&it, &ev)) {
        assert(ev.stream_idx < nb->nstreams);
        nx_stream *s = a->nxb_streams[ev.stream_idx];
        rc = s ? nx_stream_update(s, &ev.u, b->recv_ms) : a->nxb_serr[ev.stream_idx];
        if (rc < 0)
            nxb_refuse(res, rc, 1);
        else
            applied++;
    }
    res->events += applied;
    res->nxb_last_applied = applied;
    return 0;
}

int nx_applier_apply(nx_applier *a, const nx_batch *b, nx_apply_result *res)
{
    if (b->format == NX_BATCH_NXB)
        return apply_nxb(a, b, res);
    if (b->format != NX_BATCH_STATSD)
        return NX_EINVAL;
    const char *p = (const char *)b->data, *end = p + b->len;
    tenant_cache tc = {NULL, 0, NULL, 0, 0};
    uint32_t n = 0;
    size_t used = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t len = (size_t)(le - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (len && (n == NX_APPLY_CHUNK || a->key_cap - used < key_bound(a, len))) {
            chunk_apply(a, b, n, res); /* full: apply it, then this line */
            n = 0;
            used = 0;
        }
        if (len && line_prepare(a, b, p, len, res, &tc, used, &a->lines[n])) {
            used += a->lines[n].key_len + 1;
            n++;
        }
        p = nl ? nl + 1 : end;
    }
    chunk_apply(a, b, n, res);
    return 0;
}
