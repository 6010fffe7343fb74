/*
 * ewma.c — exponentially-weighted moving average with a time half-life.
 *
 * ewma(T) = sum_i w_i v_i e^{-l (T - t_i)} / sum_i w_i e^{-l (T - t_i)},
 * l = ln 2 / halflife_ms, T = the newest event time seen. Keeping the two
 * decayed sums S and W referenced at T makes the state exactly mergeable
 * (rescale both to the later T and add) and independent of arrival order.
 *
 * params: halflife_ms=10000
 * result: {"ewma": S/W, "count": events, "last_ts": T}
 * snapshot: 5 little-endian f64/i64: S, W, T (i64), count, halflife_ms.
 */
#include "nexus_udf.h"

NX_UDF_BUFFER(65536)

static struct {
    double s, w;
    nx_i64 t;
    double count;
    double halflife, lambda;
} st;

static void rescale(nx_i64 t)
{
    if (t > st.t) {
        double f = st.w > 0 ? nx_exp(-st.lambda * (double)(t - st.t)) : 0.0;
        st.s *= f;
        st.w *= f;
        st.t = t;
    }
}

NX_EXPORT(nx_init) nx_i32 nx_init(const char *p, nx_u32 len)
{
    st.halflife = nx_param_f64(p, len, "halflife_ms", 10000.0);
    if (!(st.halflife > 0))
        return -1;
    st.lambda = 0.69314718055994530942 / st.halflife;
    st.s = st.w = st.count = 0;
    st.t = 0;
    return 0;
}

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    for (nx_u32 i = 0; i < n; i++) {
        if (st.count == 0 && st.w == 0)
            st.t = ev[i].ts_ms;
        rescale(ev[i].ts_ms);
        double f = nx_exp(-st.lambda * (double)(st.t - ev[i].ts_ms));
        st.s += ev[i].weight * ev[i].value * f;
        st.w += ev[i].weight * f;
        st.count += 1;
    }
    return 0;
}

NX_EXPORT(nx_result) nx_i32 nx_result(nx_u32 out, nx_u32 cap)
{
    nx_res r;
    nx_res_begin(&r, out, cap);
    nx_res_num(&r, "ewma", st.w > 0 ? st.s / st.w : __builtin_nan(""));
    nx_res_num(&r, "count", st.count);
    nx_res_num(&r, "last_ts", (double)st.t);
    return nx_res_end(&r);
}

NX_EXPORT(nx_snapshot) nx_i32 nx_snapshot(nx_u8 *out, nx_u32 cap)
{
    if (cap >= 40) {
        nx_memcpy(out, &st.s, 8);
        nx_memcpy(out + 8, &st.w, 8);
        nx_memcpy(out + 16, &st.t, 8);
        nx_memcpy(out + 24, &st.count, 8);
        nx_memcpy(out + 32, &st.halflife, 8);
    }
    return 40;
}

NX_EXPORT(nx_restore) nx_i32 nx_restore(const nx_u8 *p, nx_u32 len)
{
    if (len != 40)
        return -1;
    nx_memcpy(&st.s, p, 8);
    nx_memcpy(&st.w, p + 8, 8);
    nx_memcpy(&st.t, p + 16, 8);
    nx_memcpy(&st.count, p + 24, 8);
    nx_memcpy(&st.halflife, p + 32, 8);
    st.lambda = 0.69314718055994530942 / st.halflife;
    return 0;
}

NX_EXPORT(nx_merge) nx_i32 nx_merge(const nx_u8 *p, nx_u32 len)
{
    double s, w, c, hl;
    nx_i64 t;
    if (len != 40)
        return -1;
    nx_memcpy(&s, p, 8);
    nx_memcpy(&w, p + 8, 8);
    nx_memcpy(&t, p + 16, 8);
    nx_memcpy(&c, p + 24, 8);
    nx_memcpy(&hl, p + 32, 8);
    if (hl != st.halflife)
        return -2;
    if (c == 0)
        return 0;
    if (st.count == 0 && st.w == 0)
        st.t = t;
    rescale(t);
    double f = nx_exp(-st.lambda * (double)(st.t - t));
    st.s += s * f;
    st.w += w * f;
    st.count += c;
    return 0;
}
