/*
 * nx_udf_wasm.c — structural validation of an uploaded WebAssembly module
 * against the UDF ABI, before any compiler runs.
 *
 * Reads only what the ABI cares about, bounds-checking every byte (the
 * input is hostile): the 8-byte header ("\0asm", version 1), then sections
 * `u8 id | uleb32 size | payload` in order:
 *   1 type      vec(0x60 vec(valtype) vec(valtype))
 *   2 import    vec(name name kind desc)  -- only func nx.log : (i32,i32)->()
 *   3 function  vec(typeidx)              -- types of defined functions
 *   5 memory    vec(limits)               -- exactly one, defined here
 *   7 export    vec(name kind idx)        -- memory + nx_* (table below)
 * Other sections are skipped by size. The code itself is validated by
 * wasm2c, which refuses invalid modules. Rejections carry a sentence a
 * tenant can act on ("import env.system is not allowed; only nx.log").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isolate/nx_udf.h"
#include "isolate/nx_udf_rt.h"

#define VT_I32 0x7f

typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

static uint8_t rd_u8(rd *r)
{
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static uint32_t rd_uleb(rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        uint8_t b = rd_u8(r);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (v > UINT32_MAX)
                r->bad = 1;
            return (uint32_t)v;
        }
    }
    r->bad = 1;
    return 0;
}

static const uint8_t *rd_bytes(rd *r, uint32_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        r->p = r->end;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

typedef struct functype {
    uint8_t np, nr;
    uint8_t p[2], res[1]; /* only the first ones are kept; np/nr are exact */
} functype;

typedef struct exp_spec {
    const char *name;
    uint8_t np, nr; /* all params and the result are i32 */
    bool required;
    uint32_t flag;
} exp_spec;

static const exp_spec abi_exports[] = {
    {"nx_buffer", 1, 1, true, 0},
    {"nx_init", 2, 1, true, 0},
    {"nx_update", 2, 1, true, 0},
    {"nx_result", 2, 1, true, 0},
    {"nx_merge", 2, 1, false, NX_UDF_HAS_MERGE},
    {"nx_snapshot", 2, 1, false, NX_UDF_HAS_SNAPSHOT},
    {"nx_restore", 2, 1, false, NX_UDF_HAS_RESTORE},
};
#define NABI (sizeof abi_exports / sizeof abi_exports[0])

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static bool all_i32(const functype *t, uint8_t np, uint8_t nr)
{
    if (t->np != np || t->nr != nr)
        return false;
    for (uint8_t i = 0; i < np && i < 2; i++)
        if (t->p[i] != VT_I32)
            return false;
    return nr == 0 || t->res[0] == VT_I32;
}

/* Copies a wasm name into buf for messages, replacing non-printables. */
static void name_str(const uint8_t *p, uint32_t n, char *buf, size_t cap)
{
    size_t k = 0;
    for (uint32_t i = 0; i < n && k + 1 < cap; i++)
        buf[k++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    buf[k] = 0;
}

int nx_udf_validate(const uint8_t *wasm, size_t n, nx_udf_info *info, char *err,
                    size_t errlen)
{
    static const uint8_t magic[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
    nx_udf_info inf = {0, false, 0};
    functype *types = NULL;
    uint32_t ntypes = 0, nimport_funcs = 0, nmem = 0;
    uint32_t *func_type = NULL, nfunc = 0; /* all funcs: imports first */
    bool seen_export[NABI] = {false};
    bool mem_exported = false;
    int rc = 0;
    uint8_t last_id = 0;

    if (!wasm || n < 8 || memcmp(wasm, magic, 8) != 0)
        return fail(err, errlen, NX_EINVAL, "not a WebAssembly 1.0 binary (bad magic/version)");
    if (n > NX_UDF_MAX_WASM)
        return fail(err, errlen, NX_ETOOBIG, "module is %zu bytes; the limit is %u", n,
                    NX_UDF_MAX_WASM);
    rd r = {wasm + 8, wasm + n, 0};
    while (r.p < r.end && !r.bad && rc == 0) {
        uint8_t id = rd_u8(&r);
        uint32_t size = rd_uleb(&r);
        const uint8_t *body = rd_bytes(&r, size);
        if (r.bad)
            break;
        if (id != 0) {
            if (id <= last_id && id != 12) {
                rc = fail(err, errlen, NX_EINVAL, "section %u out of order", id);
                break;
            }
            if (id != 12)
                last_id = id;
        }
        rd s = {body, body + size, 0};
        switch (id) {
        case 1: { /* types */
            uint32_t cnt = rd_uleb(&s);
            if (cnt > 100000 || cnt > size) {
                s.bad = 1;
                break;
            }
            types = calloc(cnt ? cnt : 1, sizeof *types);
            if (!types) {
                rc = NX_ENOMEM;
                break;
            }
            ntypes = cnt;
            for (uint32_t i = 0; i < cnt && !s.bad; i++) {
                if (rd_u8(&s) != 0x60) {
                    s.bad = 1;
                    break;
                }
                uint32_t np = rd_uleb(&s);
                for (uint32_t k = 0; k < np && !s.bad; k++) {
                    uint8_t t = rd_u8(&s);
                    if (k < 2)
                        types[i].p[k] = t;
                }
                uint32_t nr = rd_uleb(&s);
                for (uint32_t k = 0; k < nr && !s.bad; k++) {
                    uint8_t t = rd_u8(&s);
                    if (k < 1)
                        types[i].res[k] = t;
                }
                types[i].np = np > 255 ? 255 : (uint8_t)np;
                types[i].nr = nr > 255 ? 255 : (uint8_t)nr;
            }
            break;
        }
        case 2: { /* imports */
            uint32_t cnt = rd_uleb(&s);
            for (uint32_t i = 0; i < cnt && !s.bad && rc == 0; i++) {
                uint32_t ml = rd_uleb(&s);
                const uint8_t *mod = rd_bytes(&s, ml);
                uint32_t fl = rd_uleb(&s);
                const uint8_t *fld = rd_bytes(&s, fl);
                uint8_t kind = rd_u8(&s);
                if (s.bad)
                    break;
                char mname[64], fname[64];
                name_str(mod, ml, mname, sizeof mname);
                name_str(fld, fl, fname, sizeof fname);
                bool is_log = ml == 2 && memcmp(mod, "nx", 2) == 0 && fl == 3 &&
                              memcmp(fld, "log", 3) == 0;
                if (kind != 0 || !is_log) {
                    rc = fail(err, errlen, NX_EINVAL,
                              "import %s.%s is not allowed; the only permitted import is "
                              "the function nx.log(i32 ptr, i32 len)",
                              mname, fname);
                    break;
                }
                uint32_t ti = rd_uleb(&s);
                if (s.bad)
                    break;
                if (ti >= ntypes || !all_i32(&types[ti], 2, 0)) {
                    rc = fail(err, errlen, NX_EINVAL,
                              "import nx.log must have type (i32, i32) -> ()");
                    break;
                }
                uint32_t *nf = realloc(func_type, (nfunc + 1) * sizeof *nf);
                if (!nf) {
                    rc = NX_ENOMEM;
                    break;
                }
                func_type = nf;
                func_type[nfunc++] = ti;
                nimport_funcs++;
                inf.imports_log = true;
            }
            break;
        }
        case 3: { /* functions */
            uint32_t cnt = rd_uleb(&s);
            if (cnt > size) {
                s.bad = 1;
                break;
            }
            uint32_t *nf = realloc(func_type, (nfunc + cnt + 1) * sizeof *nf);
            if (!nf) {
                rc = NX_ENOMEM;
                break;
            }
            func_type = nf;
            for (uint32_t i = 0; i < cnt && !s.bad; i++) {
                uint32_t ti = rd_uleb(&s);
                if (ti >= ntypes)
                    s.bad = 1;
                func_type[nfunc++] = ti;
            }
            inf.nfuncs = cnt;
            break;
        }
        case 5: /* memories */
            nmem = rd_uleb(&s);
            if (nmem != 1)
                rc = fail(err, errlen, NX_EINVAL,
                          "the module must define exactly one linear memory (has %u)", nmem);
            break;
        case 7: { /* exports */
            uint32_t cnt = rd_uleb(&s);
            for (uint32_t i = 0; i < cnt && !s.bad && rc == 0; i++) {
                uint32_t nl = rd_uleb(&s);
                const uint8_t *nm = rd_bytes(&s, nl);
                uint8_t kind = rd_u8(&s);
                uint32_t idx = rd_uleb(&s);
                if (s.bad)
                    break;
                if (kind == 2 && nl == 6 && memcmp(nm, "memory", 6) == 0) {
                    mem_exported = true;
                    continue;
                }
                for (size_t k = 0; k < NABI; k++) {
                    const exp_spec *e = &abi_exports[k];
                    if (strlen(e->name) != nl || memcmp(nm, e->name, nl) != 0)
                        continue;
                    if (kind != 0 || idx >= nfunc ||
                        !all_i32(&types[func_type[idx]], e->np, e->nr)) {
                        rc = fail(err, errlen, NX_EINVAL,
                                  "export %s must be a function (%s) -> i32", e->name,
                                  e->np == 1 ? "i32" : "i32, i32");
                        break;
                    }
                    seen_export[k] = true;
                    inf.flags |= e->flag;
                }
            }
            break;
        }
        default:
            break;
        }
        if (s.bad && rc == 0)
            rc = fail(err, errlen, NX_EINVAL, "malformed section %u", id);
    }
    if (rc == 0 && r.bad)
        rc = fail(err, errlen, NX_EINVAL, "truncated module (a section runs past the end)");
    if (rc == 0 && nmem != 1)
        rc = fail(err, errlen, NX_EINVAL, "the module defines no linear memory");
    if (rc == 0 && !mem_exported)
        rc = fail(err, errlen, NX_EINVAL, "the module must export its memory as \"memory\"");
    for (size_t k = 0; k < NABI && rc == 0; k++)
        if (abi_exports[k].required && !seen_export[k])
            rc = fail(err, errlen, NX_EINVAL, "missing required export %s",
                      abi_exports[k].name);
    if (rc == 0 && (inf.flags & NX_UDF_HAS_MERGE) && !(inf.flags & NX_UDF_HAS_SNAPSHOT))
        rc = fail(err, errlen, NX_EINVAL, "nx_merge needs nx_snapshot as well");
    free(types);
    free(func_type);
    if (rc == NX_ENOMEM)
        fail(err, errlen, rc, "out of memory");
    if (rc == 0 && info)
        *info = inf;
    return rc;
}
