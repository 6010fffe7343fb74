/*
 * nx_window_codec.c — serialization of accumulators, windows and tiers for
 * engine snapshots. The byte layouts are documented in nx_window.h (they are
 * always nested inside the engine's framed, checksummed snapshot, which owns
 * the version). All numbers little-endian; f64 are IEEE-754 binary64, copied
 * bit for bit so a decoded window answers exactly like the encoded one.
 */
#include <math.h>
#include <stdlib.h>

#include "common/nx_codec.h"
#include "window/nx_window.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_topk.h"

static int opt_topk_encode(const nx_topk *t, nx_buf *out)
{
    int rc = nx_buf_u8(out, t ? 1 : 0);
    return rc ? rc : (t ? nx_topk_encode(t, out) : 0);
}

static int hll_decode_checked(nx_rbuf *in, nx_hll **out, const nx_acc_params *p)
{
    int rc = nx_hll_decode(in, out);
    if (rc)
        return rc == NX_ENOMEM ? rc : NX_ECORRUPT;
    if (nx_hll_precision(*out) != p->hll_precision)
        return NX_ECORRUPT;
    return 0;
}

/* wide: a window's current slot, whose top-k may be wide and exact
 * (nx_window.h, "Wide current") */
static int topk_decode_checked(nx_rbuf *in, nx_topk **out, const nx_acc_params *p, bool wide)
{
    int rc = nx_topk_decode(in, out);
    if (rc)
        return rc == NX_ENOMEM ? rc : NX_ECORRUPT;
    uint32_t cap = nx_topk_capacity(*out);
    if (cap != p->topk_capacity &&
        !(wide && cap == nx_window_wide_topk(p) && nx_topk_size(*out) < cap))
        return NX_ECORRUPT;
    return 0;
}

/* A suffix or back aggregate: [legacy: u8 has_hll [hll], dropped] then
 * u8 has_topk [topk]. */
static int opt_decode(nx_rbuf *in, nx_topk **t, const nx_acc_params *p, nx_type type, bool legacy)
{
    int rc;
    uint8_t has;
    if (legacy) {
        has = nx_rbuf_u8(in);
        if (in->err || has > 1 || (has && type != NX_TYPE_SET))
            return NX_ECORRUPT;
        nx_hll *h = NULL;
        rc = has ? hll_decode_checked(in, &h, p) : 0;
        nx_hll_destroy(h); /* the engine's sliding HLL replaces it */
        if (rc)
            return rc;
    }
    has = nx_rbuf_u8(in);
    if (in->err || has > 1 || (has && type != NX_TYPE_SET))
        return NX_ECORRUPT;
    if (has && (rc = topk_decode_checked(in, t, p, false)))
        return rc;
    return 0;
}

/* The back stack's top-k: as opt_decode, or 2 = derived (a set window with
 * a bgroup whose back starts on a multiple of it: window_step's rule). */
static int back_decode(nx_rbuf *in, nx_window *w, const nx_acc_params *p, nx_type type,
                       bool legacy)
{
    if (legacy || in->n < 1 || in->p[0] != 2)
        return opt_decode(in, &w->btopk, p, type, legacy);
    (void)nx_rbuf_u8(in);
    int64_t b = w->cur_k - (int64_t)w->n + (int64_t)w->nfront, g = w->bgroup;
    if (type != NX_TYPE_SET || g == 0 || b != nx_floordiv(b, g) * g)
        return NX_ECORRUPT;
    w->bderived = 1;
    return 0;
}

int nx_acc_encode(const nx_acc *a, nx_buf *out)
{
    int rc;
    uint8_t mask = (a->dd ? 1 : 0) | (a->hll ? 2 : 0) | (a->topk ? 4 : 0);
    if ((rc = nx_buf_f64(out, a->m.count)) || (rc = nx_buf_f64(out, a->m.sum)) ||
        (rc = nx_buf_f64(out, a->m.mean)) || (rc = nx_buf_f64(out, a->m.m2)) ||
        (rc = nx_buf_f64(out, a->m.min)) || (rc = nx_buf_f64(out, a->m.max)) ||
        (rc = nx_buf_u8(out, mask)))
        return rc;
    if (a->dd && (rc = nx_ddsketch_encode(a->dd, out)))
        return rc;
    if (a->hll && (rc = nx_hll_encode(a->hll, out)))
        return rc;
    if (a->topk && (rc = nx_topk_encode(a->topk, out)))
        return rc;
    return 0;
}

static int acc_decode(nx_rbuf *in, nx_acc *a, const nx_acc_params *p, nx_type type, bool wide)
{
    int rc;
    nx_moments m;
    m.count = nx_rbuf_f64(in);
    m.sum = nx_rbuf_f64(in);
    m.mean = nx_rbuf_f64(in);
    m.m2 = nx_rbuf_f64(in);
    m.min = nx_rbuf_f64(in);
    m.max = nx_rbuf_f64(in);
    uint8_t mask = nx_rbuf_u8(in);
    if (in->err || !(m.count >= 0) || !isfinite(m.count) || !isfinite(m.sum) ||
        !isfinite(m.mean) || !(m.m2 >= 0) || !isfinite(m.m2) || isnan(m.min) || isnan(m.max))
        return NX_ECORRUPT;
    /* sets only have an hll or a top-k (a window slot's top-k comes alone;
     * all-time's hll may come alone, before the cascade hands it counts) */
    if ((mask & ~7u) || ((mask & 1) && !nx_type_has_quantiles(type)) ||
        ((mask & 6) && type != NX_TYPE_SET))
        return NX_ECORRUPT;
    a->m = m;
    if (mask & 1) {
        if ((rc = nx_ddsketch_decode(in, &a->dd)))
            return rc == NX_ENOMEM ? rc : NX_ECORRUPT;
        if (nx_ddsketch_alpha(a->dd) != p->alpha)
            return NX_ECORRUPT;
    }
    if ((mask & 2) && (rc = hll_decode_checked(in, &a->hll, p)))
        return rc;
    if ((mask & 4) && (rc = topk_decode_checked(in, &a->topk, p, wide)))
        return rc;
    return 0;
}

int nx_acc_decode(nx_rbuf *in, nx_acc *a, const nx_acc_params *p, nx_type type)
{
    return acc_decode(in, a, p, type, false);
}

int nx_window_encode(const nx_window *w, nx_buf *out)
{
    int rc;
    if (w->flazy)
        return NX_EINVAL; /* nx_window_front_build first: the format holds suffixes */
    /* a lazy inv is written as the kept one would be: the complete slots'
     * sketch (nx_window.h, "Lazy inv"), built for the encoding only */
    nx_acc inv = w->inv;
    if (w->ilazy && (rc = nx_window_inv_sketch(w, &inv.dd)))
        return rc;
    rc = nx_buf_svar(out, w->cur_k);
    if (!rc && !(rc = nx_buf_uvar(out, w->nfront)) && !(rc = nx_buf_uvar(out, w->nonempty)))
        rc = nx_acc_encode(&inv, out);
    if (w->ilazy)
        nx_ddsketch_destroy(inv.dd);
    if (rc ||
        (rc = nx_buf_f64(out, w->bmin)) || (rc = nx_buf_f64(out, w->bmax)) ||
        (rc = (w->bderived ? nx_buf_u8(out, 2) : opt_topk_encode(w->btopk, out))) ||
        (rc = nx_buf_u8(out, w->slots ? 1 : 0)))
        return rc;
    if (!w->slots)
        return 0;
    for (uint32_t i = 0; i <= w->n; i++) {
        const nx_wslot *s = &w->slots[i];
        const nx_wsk *k = w->sk ? &w->sk[i] : NULL;
        /* an empty top-k is left out: whether an empty slot still holds
         * one (cleared for reuse) depends on which suffixes were ever built
         * in it (nx_window.h, "Lazy front"), not on the window's content */
        nx_topk *t = k && k->topk && nx_topk_total(k->topk) > 0 ? k->topk : NULL;
        nx_acc a = {s->m, k ? k->dd : NULL, NULL, t};
        if ((rc = nx_acc_encode(&a, out)) || (rc = nx_buf_f64(out, s->fmin)) ||
            (rc = nx_buf_f64(out, s->fmax)))
            return rc;
    }
    return 0;
}

int nx_window_decode(nx_rbuf *in, nx_window *w, const nx_acc_params *p, nx_type type,
                     bool wide, nx_window_legacy_hll_fn legacy, void *legacy_arg)
{
    int rc;
    w->cur_k = nx_rbuf_svar(in);
    uint64_t nfront = nx_rbuf_uvar(in), nonempty = nx_rbuf_uvar(in);
    if (in->err || nfront > w->n || nonempty > (uint64_t)w->n + 1 ||
        w->cur_k > INT64_MAX / 4 || w->cur_k < INT64_MIN / 4)
        return NX_ECORRUPT;
    w->nfront = (uint32_t)nfront;
    w->nonempty = (uint32_t)nonempty;
    if ((rc = nx_acc_decode(in, &w->inv, p, type)))
        return rc;
    if (w->inv.hll || w->inv.topk)
        return NX_ECORRUPT; /* inv is moments and DDSketch only */
    w->ilazy = 0; /* the decoded inv is kept until n steps go unread */
    w->iquiet = 0;
    w->bmin = nx_rbuf_f64(in);
    w->bmax = nx_rbuf_f64(in);
    if (in->err || isnan(w->bmin) || isnan(w->bmax))
        return NX_ECORRUPT;
    if ((rc = back_decode(in, w, p, type, legacy != NULL)))
        return rc;
    uint8_t has_slots = nx_rbuf_u8(in);
    if (in->err || has_slots > 1 || (!has_slots && nonempty))
        return NX_ECORRUPT;
    if (!has_slots)
        return 0;
    /* each slot takes at least 58 bytes: refuse absurd sizes before allocating */
    if (in->n / 58 < (size_t)w->n + 1)
        return NX_ECORRUPT;
    w->slots = w->store ? w->store : malloc(sizeof(nx_wslot) * ((size_t)w->n + 1));
    if (!w->slots)
        return NX_ENOMEM;
    for (uint32_t i = 0; i <= w->n; i++) {
        nx_moments_init(&w->slots[i].m);
        w->slots[i].fmin = INFINITY;
        w->slots[i].fmax = -INFINITY;
    }
    if (type == NX_TYPE_SET || nx_type_has_quantiles(type)) {
        w->sk = calloc((size_t)w->n + 1, sizeof(nx_wsk));
        if (!w->sk)
            return NX_ENOMEM;
    }
    uint32_t seen = 0;
    for (uint32_t i = 0; i <= w->n; i++) {
        nx_wslot *s = &w->slots[i];
        nx_wsk *k = w->sk ? &w->sk[i] : NULL;
        /* ring index i holds sub-bucket k = i (mod n+1), the newest such <= cur_k */
        int64_t M = (int64_t)w->n + 1, cm = ((w->cur_k % M) + M) % M;
        int64_t k_i = w->cur_k - (cm - (int64_t)i + M) % M;
        int64_t oldest = w->cur_k - (int64_t)w->n;
        bool front = k_i >= oldest && k_i < oldest + (int64_t)w->nfront;
        nx_acc a;
        nx_acc_init(&a);
        rc = acc_decode(in, &a, p, type, wide && k_i == w->cur_k);
        s->m = a.m;
        if (k) {
            k->dd = a.dd;
            k->topk = a.topk;
        }
        if (!rc && a.hll) {
            if (!legacy)
                rc = NX_ECORRUPT; /* version 4 windows have no HLL */
            else if (s->m.count > 0)
                rc = legacy(legacy_arg, a.hll, (k_i + 1) * (int64_t)w->bucket_s - 1);
        }
        nx_hll_destroy(a.hll);
        if (rc)
            return rc; /* nx_acc_decode allows sketches only where the type has them */
        s->fmin = nx_rbuf_f64(in);
        s->fmax = nx_rbuf_f64(in);
        if (in->err || isnan(s->fmin) || isnan(s->fmax))
            return NX_ECORRUPT;
        if (legacy) {
            /* the old separate suffix: it becomes a front slot's top-k */
            nx_topk *ft = NULL;
            rc = opt_decode(in, &ft, p, type, true);
            if (!rc && k && front) {
                nx_topk_destroy(k->topk);
                k->topk = ft;
            } else {
                nx_topk_destroy(ft);
            }
            if (rc)
                return rc;
        }
        if (s->m.count > 0)
            seen++;
    }
    if (seen != w->nonempty)
        return NX_ECORRUPT;
    return nx_window_front_decoded(w, type);
}

int nx_tier_encode(const nx_tier *t, nx_buf *out)
{
    int rc;
    if ((rc = nx_buf_svar(out, t->newest)) || (rc = nx_buf_svar(out, t->oldest)) ||
        (rc = nx_buf_uvar(out, t->cap)))
        return rc;
    for (uint32_t i = 0; i < t->cap; i++) {
        const nx_tpoint *pt = &t->pts[i];
        if ((rc = nx_buf_f64(out, pt->count)) || (rc = nx_buf_f64(out, pt->sum)) ||
            (rc = nx_buf_f64(out, pt->min)) || (rc = nx_buf_f64(out, pt->max)))
            return rc;
    }
    return 0;
}

int nx_tier_decode(nx_rbuf *in, nx_tier *t)
{
    t->newest = nx_rbuf_svar(in);
    t->oldest = nx_rbuf_svar(in);
    uint64_t cap = nx_rbuf_uvar(in);
    /* the ring holds (newest - cap, newest], oldest among them */
    if (in->err || cap > t->buckets || t->newest > INT64_MAX / 4 || t->newest < INT64_MIN / 4 ||
        t->oldest > t->newest || t->oldest < INT64_MIN / 4 || in->n / 32 < cap ||
        (cap > 0 && t->oldest < t->newest - (int64_t)cap + 1))
        return NX_ECORRUPT;
    if (cap == 0)
        return 0;
    t->pts = malloc(sizeof(nx_tpoint) * cap);
    if (!t->pts)
        return NX_ENOMEM;
    t->cap = (uint32_t)cap;
    for (uint32_t i = 0; i < t->cap; i++) {
        nx_tpoint *pt = &t->pts[i];
        pt->count = nx_rbuf_f64(in);
        pt->sum = nx_rbuf_f64(in);
        pt->min = nx_rbuf_f64(in);
        pt->max = nx_rbuf_f64(in);
        if (in->err || !(pt->count >= 0) || !isfinite(pt->count) || !isfinite(pt->sum) ||
            isnan(pt->min) || isnan(pt->max))
            return NX_ECORRUPT;
    }
    return 0;
}
