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

int nx_applier_init(nx_applier *a, nx_engine *e, const nx_statsd_limits *lim)
{
    memset(a, 0, sizeof(*a));
    a->engine = e;
    a->lim = *lim;
    a->tags = calloc((size_t)lim->max_tags + 1, sizeof(nx_tag));
    /* key = name + for each tag '|' k ':' v: never longer than the line */
    a->key_cap = (size_t)lim->max_line + 2 * ((size_t)lim->max_tags + 1) + 16;
    a->key = malloc(a->key_cap);
    a->nxb = malloc(sizeof(*a->nxb));
    a->nxb_streams = calloc(NX_NXB_MAX_STREAMS, sizeof(nx_stream *));
    a->nxb_serr = calloc(NX_NXB_MAX_STREAMS, sizeof(int));
    if (!a->tags || !a->key || !a->nxb || !a->nxb_streams || !a->nxb_serr) {
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
        if (rc < 0) {
            reject(a, res, nx_statsd_reason_of_error(rc), line, len, now);
        } else {
            res->events++;
            if (a->on_event)
                a->on_event(a->event_arg, t, a->key, (size_t)klen, &u, now);
        }
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
