/*
 * threshold.c — "count above threshold" alert.
 *
 * Counts events whose value is strictly above `threshold`, raw and
 * weighted, out of all events; `alert` is 1 once at least `min_count` raw
 * events were above. Exactly mergeable (sums; last_above_ts is a max).
 *
 * params: threshold=0,min_count=1
 * result: {"above", "above_weighted", "total", "fraction", "alert", "last_above_ts"}
 * snapshot: 4 x f64 (above, above_weighted, total, total_weighted) | i64 last_above_ts
 */
#include "nexus_udf.h"

NX_UDF_BUFFER(65536)

static double threshold, min_count;
static double above, above_w, total, total_w;
static nx_i64 last_ts;

NX_EXPORT(nx_init) nx_i32 nx_init(const char *p, nx_u32 len)
{
    threshold = nx_param_f64(p, len, "threshold", 0);
    min_count = nx_param_f64(p, len, "min_count", 1);
    above = above_w = total = total_w = 0;
    last_ts = 0;
    return 0;
}

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    for (nx_u32 i = 0; i < n; i++) {
        total += 1;
        total_w += ev[i].weight;
        if (ev[i].value > threshold) {
            above += 1;
            above_w += ev[i].weight;
            if (ev[i].ts_ms > last_ts)
                last_ts = ev[i].ts_ms;
        }
    }
    return 0;
}

NX_EXPORT(nx_result) nx_i32 nx_result(nx_u32 out, nx_u32 cap)
{
    nx_res r;
    nx_res_begin(&r, out, cap);
    nx_res_num(&r, "above", above);
    nx_res_num(&r, "above_weighted", above_w);
    nx_res_num(&r, "total", total);
    nx_res_num(&r, "fraction", total_w > 0 ? above_w / total_w : 0);
    nx_res_num(&r, "alert", above >= min_count ? 1 : 0);
    nx_res_num(&r, "last_above_ts", (double)last_ts);
    return nx_res_end(&r);
}

NX_EXPORT(nx_snapshot) nx_i32 nx_snapshot(nx_u8 *out, nx_u32 cap)
{
    if (cap >= 40) {
        nx_memcpy(out, &above, 8);
        nx_memcpy(out + 8, &above_w, 8);
        nx_memcpy(out + 16, &total, 8);
        nx_memcpy(out + 24, &total_w, 8);
        nx_memcpy(out + 32, &last_ts, 8);
    }
    return 40;
}

NX_EXPORT(nx_merge) nx_i32 nx_merge(const nx_u8 *p, nx_u32 len)
{
    double a, aw, t, tw;
    nx_i64 l;
    if (len != 40)
        return -1;
    nx_memcpy(&a, p, 8);
    nx_memcpy(&aw, p + 8, 8);
    nx_memcpy(&t, p + 16, 8);
    nx_memcpy(&tw, p + 24, 8);
    nx_memcpy(&l, p + 32, 8);
    above += a;
    above_w += aw;
    total += t;
    total_w += tw;
    if (l > last_ts)
        last_ts = l;
    return 0;
}

NX_EXPORT(nx_restore) nx_i32 nx_restore(const nx_u8 *p, nx_u32 len)
{
    above = above_w = total = total_w = 0;
    last_ts = 0;
    return nx_merge(p, len);
}
