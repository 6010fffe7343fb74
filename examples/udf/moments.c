/*
 * moments.c — the trivial summarizer the benchmark runs: weighted count,
 * sum, mean, m2 (Welford/West), min, max — the same arithmetic as the
 * built-in nx_moments_add, so the two can be compared per event.
 *
 * result: {"count", "sum", "mean", "variance", "min", "max"}
 */
#include "nexus_udf.h"

NX_UDF_BUFFER(65536)

static double count, sum, mean, m2, mn, mx;

NX_EXPORT(nx_init) nx_i32 nx_init(const char *p, nx_u32 len)
{
    count = sum = mean = m2 = 0;
    mn = __builtin_inf();
    mx = -__builtin_inf();
    return 0;
}

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    for (nx_u32 i = 0; i < n; i++) {
        double v = ev[i].value, w = ev[i].weight;
        count += w;
        sum += w * v;
        double d = v - mean;
        mean += d * w / count;
        m2 += w * d * (v - mean);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    return 0;
}

NX_EXPORT(nx_result) nx_i32 nx_result(nx_u32 out, nx_u32 cap)
{
    nx_res r;
    nx_res_begin(&r, out, cap);
    nx_res_num(&r, "count", count);
    nx_res_num(&r, "sum", sum);
    nx_res_num(&r, "mean", mean);
    nx_res_num(&r, "variance", count > 0 ? m2 / count : 0);
    nx_res_num(&r, "min", mn);
    nx_res_num(&r, "max", mx);
    return nx_res_end(&r);
}
