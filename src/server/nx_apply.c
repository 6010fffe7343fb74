/*
 * nx_apply.c — the single path from a received batch to engine updates
 * (see nx_apply.h). Deterministic: no clock, no randomness, no I/O.
 */
#include "server/nx_apply.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int nx_applier_init(nx_applier *a, nx_engine *e, const nx_statsd_limits *lim)
{
    memset(a, 0, sizeof(*a));
    a->engine = e;
    a->lim = *lim;
    a->tags = calloc((size_t)lim->max_tags + 1, sizeof(nx_tag));
    /* key = name + for each tag '|' k ':' v: never longer than the line */
    a->key_cap = (size_t)lim->max_line + 2 * ((size_t)lim->max_tags + 1) + 16;
    a->key = malloc(a->key_cap);
    if (!a->tags || !a->key) {
        nx_applier_free(a);
        return NX_ENOMEM;
    }
    return 0;
}

void nx_applier_free(nx_applier *a)
{
    free(a->tags);
    free(a->key);
    a->tags = NULL;
    a->key = NULL;
}

void nx_apply_result_add(nx_apply_result *dst, const nx_apply_result *src)
{
    dst->lines += src->lines;
    dst->events += src->events;
    dst->rejected += src->rejected;
    for (int i = 0; i < NX_SD_NREASONS; i++)
        dst->reasons[i] += src->reasons[i];
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

/* Applies one line; returns after counting it. */
static void apply_line(nx_applier *a, const nx_batch *b, const char *line, size_t len,
                       nx_apply_result *res, tenant_cache *tc)
{
    nx_statsd_line l;
    int64_t now = b->recv_ms;
    res->lines++;
    int rc = nx_statsd_parse(line, len, &a->lim, a->tags, &l);
    if (rc != NX_SD_OK) {
        reject(a, res, rc, line, len, now);
        return;
    }
    int klen = nx_stream_key_build(l.name, l.name_len, l.tags, l.ntags, a->key, a->key_cap);
    if (klen < 0) {
        reject(a, res, klen == NX_ETOOBIG ? NX_SD_TOO_LONG : NX_SD_BAD_NAME, line, len, now);
        return;
    }
    const char *tid = l.tenant ? l.tenant : b->tenant;
    size_t tlen = l.tenant ? l.tenant_len : b->tenant_len;
    if (l.tenant && b->tenant_locked &&
        (l.tenant_len != b->tenant_len || memcmp(l.tenant, b->tenant, tlen) != 0)) {
        reject(a, res, NX_SD_WRONG_TENANT, line, len, now);
        return;
    }
    nx_tenant *t;
    if ((tc->t || tc->reason) && tc->len == tlen && memcmp(tc->id, tid, tlen) == 0) {
        if (!tc->t) {
            reject(a, res, tc->reason, line, len, now);
            return;
        }
        t = tc->t;
    } else {
        nx_tenant_gate g = {0, 0, 0};
        if (a->gate && (rc = a->gate(a->gate_arg, b, tid, tlen, &g)) != NX_SD_OK) {
            *tc = (tenant_cache){.id = tid, .len = tlen, .reason = rc};
            reject(a, res, rc, line, len, now);
            return;
        }
        rc = nx_engine_tenant(a->engine, tid, tlen, &t);
        if (rc < 0) {
            reject(a, res, nx_statsd_reason_of_error(rc), line, len, now);
            return;
        }
        if (a->gate)
            nx_tenant_set_limits(t, g.max_streams, g.max_bytes);
        *tc = (tenant_cache){.id = tid, .len = tlen, .t = t, .num = g.num};
    }
    uint32_t nvals = l.nvalues;
    if (a->take && b->source != NX_SRC_REPLAY) {
        uint32_t granted = a->take(a->gate_arg, tc->num, l.nvalues, now);
        assert(granted <= l.nvalues);
        if (granted < l.nvalues) {
            uint32_t d = l.nvalues - granted;
            res->rejected += d;
            res->reasons[NX_SD_RATE_LIMITED] += d;
            if (a->on_reject)
                a->on_reject(a->reject_arg, NX_SD_RATE_LIMITED, line, len, now);
        }
        if (granted == 0)
            return;
        nvals = granted;
    }
    nx_stream *s;
    rc = nx_tenant_stream(t, a->key, (size_t)klen, l.type, &s);
    if (rc < 0) {
        reject(a, res, nx_statsd_reason_of_error(rc), line, len, now);
        return;
    }
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = l.type == NX_TYPE_GAUGE ? 1.0 : 1.0 / l.rate;
    u.ts_ms = l.ts_ms;
    uint32_t pos = 0;
    nx_statsd_value v;
    while (nvals-- > 0 && nx_statsd_value_next(&l, &pos, &v)) {
        u.value = v.value;
        u.gauge_delta = v.delta;
        u.member = v.member;
        u.member_len = v.member_len;
        rc = nx_stream_update(s, &u, now);
        if (rc < 0)
            reject(a, res, nx_statsd_reason_of_error(rc), line, len, now);
        else
            res->events++;
    }
}

int nx_applier_apply(nx_applier *a, const nx_batch *b, nx_apply_result *res)
{
    if (b->format != NX_BATCH_STATSD)
        return NX_EINVAL;
    const char *p = (const char *)b->data, *end = p + b->len;
    tenant_cache tc = {NULL, 0, NULL, 0, 0};
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t len = (size_t)(le - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (len)
            apply_line(a, b, p, len, res, &tc);
        p = nl ? nl + 1 : end;
    }
    return 0;
}
