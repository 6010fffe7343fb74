/*
 * nx_json.c — summary and key JSON (see nx_json.h).
 */
#include "query/nx_json.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_topk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nx_qlist_default(nx_qlist *out)
{
    out->n = 3;
    out->q[0] = 0.5;
    out->q[1] = 0.9;
    out->q[2] = 0.99;
}

int nx_qlist_parse(const char *s, nx_qlist *out)
{
    out->n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double q = strtod(p, &end);
        if (end == p || !(q >= 0 && q <= 1) || out->n >= NX_MAX_Q)
            return NX_EINVAL;
        out->q[out->n++] = q;
        if (*end == ',')
            end++;
        else if (*end)
            return NX_EINVAL;
        p = end;
    }
    return out->n ? 0 : NX_EINVAL;
}

void nx_window_label(uint32_t w, char *buf, size_t n)
{
    if (w == NX_WINDOW_ALL)
        snprintf(buf, n, "all");
    else if (w % 3600 == 0)
        snprintf(buf, n, "%uh", w / 3600);
    else if (w % 60 == 0)
        snprintf(buf, n, "%um", w / 60);
    else
        snprintf(buf, n, "%us", w);
}

json_t *nx_json_num(double v)
{
    if (!isfinite(v))
        return json_null();
    return json_real(v);
}

json_t *nx_key_tags(const char *key, size_t key_len, size_t *name_len)
{
    const char *bar = memchr(key, '|', key_len);
    *name_len = bar ? (size_t)(bar - key) : key_len;
    json_t *tags = json_object();
    const char *p = bar, *end = key + key_len;
    while (p && p < end) {
        p++;
        const char *nb = memchr(p, '|', (size_t)(end - p));
        const char *te = nb ? nb : end;
        const char *colon = memchr(p, ':', (size_t)(te - p));
        char k[1024];
        size_t kl = (size_t)((colon ? colon : te) - p);
        if (kl >= sizeof(k))
            kl = sizeof(k) - 1;
        memcpy(k, p, kl);
        k[kl] = 0;
        json_t *v = colon ? json_stringn(colon + 1, (size_t)(te - colon - 1)) : json_string("");
        json_object_set_new(tags, k, v ? v : json_null());
        p = nb;
    }
    return tags;
}

json_t *nx_summary_json(const char *tenant, const char *key, size_t key_len,
                        const nx_summary *s, uint32_t window_s, const nx_qlist *q,
                        size_t topk, int64_t now_ms)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    size_t nl;
    json_t *tags = nx_key_tags(key, key_len, &nl);
    char wl[32];
    nx_window_label(window_s, wl, sizeof(wl));
    json_object_set_new(o, "tenant", json_string(tenant));
    json_object_set_new(o, "metric", json_stringn(key, nl));
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "type", json_string(nx_type_name(s->type)));
    json_object_set_new(o, "window", json_string(wl));
    json_object_set_new(o, "count", nx_json_num(s->count));
    int empty = !(s->count > 0);
    if (s->type != NX_TYPE_SET) {
    json_object_set_new(o, "sum", nx_json_num(s->sum));
    json_object_set_new(o, "min", empty ? json_null() : nx_json_num(s->min));
    json_object_set_new(o, "max", empty ? json_null() : nx_json_num(s->max));
    json_object_set_new(o, "mean", empty ? json_null() : nx_json_num(s->mean));
    json_object_set_new(o, "stddev", empty ? json_null() : nx_json_num(nx_summary_stddev(s)));
    }
    double secs = window_s;
    if (window_s == NX_WINDOW_ALL) {
        secs = s->first_ts > 0 ? (double)(now_ms - s->first_ts) / 1000.0 : 1.0;
        if (secs < 1.0)
            secs = 1.0;
    }
    json_object_set_new(o, "rate", nx_json_num(nx_summary_rate(s, secs)));
    if (s->type == NX_TYPE_GAUGE) {
        json_object_set_new(o, "last", empty && s->last_ts == 0 ? json_null() : nx_json_num(s->last));
        json_object_set_new(o, "last_ts", json_integer(s->last_ts));
    }
    if (nx_type_has_quantiles(s->type)) {
        json_object_set_new(o, "alpha", s->dd ? nx_json_num(nx_ddsketch_alpha(s->dd)) : json_null());
        json_t *qs = json_object();
        for (size_t i = 0; i < q->n; i++) {
            char k[32];
            snprintf(k, sizeof(k), "%g", q->q[i]);
            json_object_set_new(qs, k, nx_json_num(nx_summary_quantile(s, q->q[i])));
        }
        json_object_set_new(o, "quantiles", qs);
    }
    if (s->type == NX_TYPE_SET) {
        json_object_set_new(o, "distinct", nx_json_num(nx_summary_distinct(s)));
        json_t *arr = json_array();
        if (s->topk && topk) {
            nx_topk_item items[256];
            size_t n = nx_topk_list(s->topk, items, topk < 256 ? topk : 256);
            for (size_t i = 0; i < n; i++) {
                json_t *it = json_object();
                json_object_set_new(it, "member", json_stringn(items[i].member, items[i].member_len));
                json_object_set_new(it, "count", nx_json_num(items[i].count));
                json_object_set_new(it, "error", nx_json_num(items[i].error));
                json_array_append_new(arr, it);
            }
        }
        json_object_set_new(o, "top", arr);
    }
    return o;
}
