/*
 * median.c — exact median of the last `window` events (by time).
 *
 * Keeps the newest `window` (ts, value) pairs (default 101, at most 4096)
 * in a ring; the result is the exact lower median (element (n-1)/2 of the
 * sorted values), found by quickselect on a copy. Merge takes the union of
 * both windows and keeps the `window` newest by timestamp (ties: the
 * incoming snapshot's events count as newer).
 *
 * params: window=101
 * result: {"median": m, "n": items in window, "min": .., "max": ..}
 * snapshot: u32 n | n x { i64 ts | f64 value }, oldest first.
 */
#include "nexus_udf.h"

#define MAXW 4096
NX_UDF_BUFFER(MAXW * 16 + 64)

static nx_i64 ts[MAXW];
static double val[MAXW];
static nx_u32 head, n, window; /* ring: oldest at head */
static double tmp[MAXW];
static nx_i64 mts[2 * MAXW];
static double mval[2 * MAXW];

static void push(nx_i64 t, double v)
{
    if (n < window) {
        nx_u32 i = (head + n) % window;
        ts[i] = t;
        val[i] = v;
        n++;
    } else {
        ts[head] = t;
        val[head] = v;
        head = (head + 1) % window;
    }
}

NX_EXPORT(nx_init) nx_i32 nx_init(const char *p, nx_u32 len)
{
    double w = nx_param_f64(p, len, "window", 101);
    if (!(w >= 1 && w <= MAXW))
        return -1;
    window = (nx_u32)w;
    head = n = 0;
    return 0;
}

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 cnt)
{
    for (nx_u32 i = 0; i < cnt; i++)
        push(ev[i].ts_ms, ev[i].value);
    return 0;
}

static double select_k(double *a, nx_u32 len, nx_u32 k)
{
    nx_u32 lo = 0, hi = len - 1;
    while (lo < hi) {
        double pivot = a[lo + (hi - lo) / 2];
        nx_u32 i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                double t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

NX_EXPORT(nx_result) nx_i32 nx_result(nx_u32 out, nx_u32 cap)
{
    nx_res r;
    nx_res_begin(&r, out, cap);
    double mn = __builtin_inf(), mx = -__builtin_inf();
    for (nx_u32 i = 0; i < n; i++) {
        tmp[i] = val[(head + i) % window];
        mn = tmp[i] < mn ? tmp[i] : mn;
        mx = tmp[i] > mx ? tmp[i] : mx;
    }
    nx_res_num(&r, "median", n ? select_k(tmp, n, (n - 1) / 2) : __builtin_nan(""));
    nx_res_num(&r, "n", n);
    nx_res_num(&r, "min", n ? mn : __builtin_nan(""));
    nx_res_num(&r, "max", n ? mx : __builtin_nan(""));
    return nx_res_end(&r);
}

NX_EXPORT(nx_snapshot) nx_i32 nx_snapshot(nx_u8 *out, nx_u32 cap)
{
    nx_u32 need = 4 + n * 16;
    if (cap >= need) {
        nx_memcpy(out, &n, 4);
        for (nx_u32 i = 0; i < n; i++) {
            nx_u32 j = (head + i) % window;
            nx_memcpy(out + 4 + i * 16, &ts[j], 8);
            nx_memcpy(out + 12 + i * 16, &val[j], 8);
        }
    }
    return (nx_i32)need;
}

static int decode(const nx_u8 *p, nx_u32 len, nx_u32 *cnt)
{
    if (len < 4)
        return -1;
    nx_memcpy(cnt, p, 4);
    if (*cnt > MAXW || len != 4 + *cnt * 16)
        return -1;
    return 0;
}

NX_EXPORT(nx_restore) nx_i32 nx_restore(const nx_u8 *p, nx_u32 len)
{
    nx_u32 cnt;
    if (decode(p, len, &cnt) < 0)
        return -1;
    head = n = 0;
    for (nx_u32 i = 0; i < cnt; i++) {
        nx_i64 t;
        double v;
        nx_memcpy(&t, p + 4 + i * 16, 8);
        nx_memcpy(&v, p + 12 + i * 16, 8);
        push(t, v);
    }
    return 0;
}

NX_EXPORT(nx_merge) nx_i32 nx_merge(const nx_u8 *p, nx_u32 len)
{
    nx_u32 cnt, a = 0, b = 0, m = 0;
    if (decode(p, len, &cnt) < 0)
        return -1;
    /* both sides are oldest-first: a two-way merge by timestamp */
    while (a < n || b < cnt) {
        nx_i64 tb = 0;
        double vb = 0;
        if (b < cnt) {
            nx_memcpy(&tb, p + 4 + b * 16, 8);
            nx_memcpy(&vb, p + 12 + b * 16, 8);
        }
        nx_u32 ja = (head + a) % window;
        if (a < n && (b >= cnt || ts[ja] < tb)) {
            mts[m] = ts[ja];
            mval[m++] = val[ja];
            a++;
        } else {
            mts[m] = tb;
            mval[m++] = vb;
            b++;
        }
    }
    nx_u32 from = m > window ? m - window : 0;
    head = n = 0;
    for (nx_u32 i = from; i < m; i++)
        push(mts[i], mval[i]);
    return 0;
}
