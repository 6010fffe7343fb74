/*
 * nexus_udf.h — write a NexusCore summarizer (UDF) in plain C, compile it to
 * WebAssembly, upload it with `PUT /v1/udfs/NAME`.
 *
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
 *         -Wl,-z,stack-size=16384 -Wl,--initial-memory=131072 \
 *         -I include my_udf.c -o my_udf.wasm
 *
 * Freestanding: no libc, no libm (a module that calls exp() would import it,
 * and every import other than nx.log is rejected). This header supplies the
 * few helpers a summarizer needs: nx_exp, a params parser, result records.
 *
 * The ABI (docs/udf.md has the full text). All pointers are offsets into
 * the module's own linear memory, which it must export as "memory".
 *
 *   u32 nx_buffer(u32 bytes)            scratch area of >= bytes the host may
 *                                       write events / read results into;
 *                                       0 if it cannot. NX_UDF_BUFFER(N)
 *                                       defines it for you.
 *   i32 nx_init(u32 params, u32 len)    once per instance; params is the
 *                                       bind's "k=v,k2=v2" text. < 0: error.
 *   i32 nx_update(u32 events, u32 n)    a batch of n nx_event (24 bytes
 *                                       each, below). < 0: error.
 *   i32 nx_result(u32 out, u32 cap)     writes the result, returns its length
 *                                       (> cap: call again with a bigger
 *                                       buffer). Either a JSON object text
 *                                       (starts with '{') or NXR1 records
 *                                       written with nx_res_* below.
 * optional:
 *   i32 nx_snapshot(u32 out, u32 cap)   serialise the state (same length
 *                                       protocol as nx_result)
 *   i32 nx_restore(u32 state, u32 len)  replace the state by a snapshot
 *   i32 nx_merge(u32 state, u32 len)    fold in another instance's snapshot
 *                                       (shards, windows). Needs nx_snapshot.
 *
 * Import whitelist: only `nx.log(u32 ptr, u32 len)` (declared below as
 * nx_log). Limits the host enforces per instance: linear memory (default
 * 256 pages = 16 MiB; memory.grow past it returns -1), call depth, and CPU
 * time per call (default 10 ms): a trap of any kind disables the binding.
 */
#ifndef NEXUS_UDF_H
#define NEXUS_UDF_H

#if !defined(__wasm__)
#error "nexus_udf.h is for modules compiled with clang --target=wasm32"
#endif

typedef unsigned char nx_u8;
typedef unsigned int nx_u32;
typedef int nx_i32;
typedef long long nx_i64;
typedef unsigned long long nx_u64;

#define NX_EXPORT(name) __attribute__((export_name(#name), used))

/* One event as the host passes it: little-endian, 24 bytes, 8-aligned. */
typedef struct nx_event {
    double value;   /* the sample (counter increment, gauge value, ...) */
    nx_i64 ts_ms;   /* event time, ms since the Unix epoch              */
    double weight;  /* 1/sample_rate, > 0                               */
} nx_event;
_Static_assert(sizeof(nx_event) == 24, "nx_event is 24 bytes");

/* The one import: a line to the daemon's log (rate-limited, <= 256 bytes). */
__attribute__((import_module("nx"), import_name("log"))) void nx_log(const char *msg,
                                                                    nx_u32 len);

/* Defines nx_buffer() over a static scratch area of N bytes. */
#define NX_UDF_BUFFER(N)                                                   \
    static nx_u8 nx_udf_scratch_[(N)] __attribute__((aligned(8)));         \
    NX_EXPORT(nx_buffer) nx_u32 nx_buffer(nx_u32 bytes)                     \
    {                                                                      \
        return bytes <= (N) ? (nx_u32)(unsigned long)nx_udf_scratch_ : 0u; \
    }

static inline void *nx_memcpy(void *d, const void *s, nx_u32 n)
{
    return __builtin_memcpy(d, s, n); /* lowers to memory.copy or a loop */
}

static inline int nx_isfinite(double x)
{
    return x == x && x - x == 0.0;
}

/* e^x, |relative error| < 1e-15 over the whole double range. */
static inline double nx_exp(double x)
{
    if (x != x)
        return x;
    if (x > 709.0)
        return __builtin_inf();
    if (x < -745.0)
        return 0.0;
    const double ln2 = 0.69314718055994530942;
    double kf = __builtin_floor(x / ln2 + 0.5);
    double r = x - kf * ln2;          /* |r| <= ln2/2 */
    double term = 1.0, sum = 1.0;
    for (int i = 1; i < 20; i++) {
        term *= r / i;
        sum += term;
    }
    int k = (int)kf;
    /* scale by 2^k in two steps so subnormal results stay right */
    int k1 = k / 2, k2 = k - k1;
    union { double d; nx_u64 u; } a, b;
    a.u = (nx_u64)(k1 + 1023) << 52;
    b.u = (nx_u64)(k2 + 1023) << 52;
    return sum * a.d * b.d;
}

/* Parses a decimal number ("-12.5e3") from [s, end); *ok = 1 on success. */
static inline double nx_parse_f64(const char *s, const char *end, int *ok)
{
    double v = 0, sign = 1, scale = 1;
    int digits = 0, ex = 0, exsign = 1;
    if (s < end && (*s == '-' || *s == '+'))
        sign = *s++ == '-' ? -1 : 1;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    if (s < end && *s == '.') {
        s++;
        while (s < end && *s >= '0' && *s <= '9') {
            scale /= 10;
            v += (*s++ - '0') * scale;
            digits++;
        }
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < end && (*s == '-' || *s == '+'))
            exsign = *s++ == '-' ? -1 : 1;
        while (s < end && *s >= '0' && *s <= '9' && ex < 400)
            ex = ex * 10 + (*s++ - '0');
    }
    while (ex-- > 0)
        v = exsign > 0 ? v * 10 : v / 10;
    *ok = digits > 0 && s == end;
    return sign * v;
}

/* Value of `key` in "k=v,k2=v2" params, or dflt if absent or malformed. */
static inline double nx_param_f64(const char *p, nx_u32 len, const char *key, double dflt)
{
    const char *end = p + len;
    while (p < end) {
        const char *e = p;
        while (e < end && *e != ',')
            e++;
        const char *eq = p;
        while (eq < e && *eq != '=')
            eq++;
        nx_u32 kl = 0;
        while (key[kl])
            kl++;
        nx_u32 same = eq < e && (nx_u32)(eq - p) == kl;
        for (nx_u32 i = 0; same && i < kl; i++)
            same = p[i] == key[i];
        if (same) {
            int ok;
            double v = nx_parse_f64(eq + 1, e, &ok);
            return ok ? v : dflt;
        }
        p = e < end ? e + 1 : end;
    }
    return dflt;
}

/*
 * Result records ("NXR1"): the host turns them into a JSON object
 * {"name": value, ...} (non-finite values become null). Layout:
 *   "NXR1" | u32 count | count x { u8 name_len | name | f64 value }
 * Usage in nx_result(out, cap):
 *   nx_res r; nx_res_begin(&r, out, cap);
 *   nx_res_num(&r, "ewma", v); ...
 *   return nx_res_end(&r);   // length; > cap means "give me a bigger buffer"
 */
typedef struct nx_res {
    nx_u8 *p;
    nx_u32 cap, len, count;
} nx_res;

static inline void nx_res_begin(nx_res *r, nx_u32 out, nx_u32 cap)
{
    r->p = (nx_u8 *)(unsigned long)out;
    r->cap = cap;
    r->len = 8;
    r->count = 0;
}

static inline void nx_res_num(nx_res *r, const char *name, double v)
{
    nx_u32 nl = 0;
    while (name[nl] && nl < 255)
        nl++;
    if (r->len + 1 + nl + 8 <= r->cap) {
        r->p[r->len] = (nx_u8)nl;
        nx_memcpy(r->p + r->len + 1, name, nl);
        nx_memcpy(r->p + r->len + 1 + nl, &v, 8);
    }
    r->len += 1 + nl + 8;
    r->count++;
}

static inline nx_i32 nx_res_end(nx_res *r)
{
    if (r->cap >= 8) {
        nx_memcpy(r->p, "NXR1", 4);
        nx_memcpy(r->p + 4, &r->count, 4);
    }
    return (nx_i32)r->len;
}

#endif
