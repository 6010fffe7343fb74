/*
 * nx_statsd.c — zero-copy StatsD / DogStatsD line parser (grammar in
 * nx_statsd.h, user documentation in docs/statsd.md).
 *
 * Design: one left-to-right pass over the line with memchr() for the field
 * separators; no allocation, no copy (except a <= 63-byte stack copy for the
 * rare number strtod must parse). The order of checks decides which reason a
 * line with several defects gets: length, UTF-8, structure, name, type,
 * fields (rate, tags, tenant, timestamp), then values. Values are all
 * validated here so that applying a line never fails half-way on input.
 *
 * Numbers: the common case "123", "-4.25", "0.001" is parsed exactly with an
 * integer mantissa (< 2^53) divided by an exact power of ten (<= 10^22): a
 * single correctly rounded IEEE division gives the same double as strtod.
 * Anything else (exponents, long mantissas) goes to strtod on a copy, and
 * "inf"/"nan"/hex floats are refused up front since StatsD never sends them.
 */
#include "ingest/nx_statsd.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[NX_SD_NREASONS] = {
    [NX_SD_OK] = "ok",
    [NX_SD_BAD_FORMAT] = "bad_format",
    [NX_SD_BAD_VALUE] = "bad_value",
    [NX_SD_BAD_TYPE] = "bad_type",
    [NX_SD_BAD_RATE] = "bad_rate",
    [NX_SD_BAD_TAGS] = "bad_tags",
    [NX_SD_TOO_LONG] = "too_long",
    [NX_SD_TOO_MANY_TAGS] = "too_many_tags",
    [NX_SD_BAD_NAME] = "bad_name",
    [NX_SD_BAD_UTF8] = "bad_utf8",
    [NX_SD_BAD_TENANT] = "bad_tenant",
    [NX_SD_BAD_TIMESTAMP] = "bad_timestamp",
    [NX_SD_TYPE_MISMATCH] = "type_mismatch",
    [NX_SD_QUOTA] = "quota",
    [NX_SD_TOO_LATE] = "too_late",
    [NX_SD_TOO_EARLY] = "too_early",
    [NX_SD_INTERNAL] = "internal",
    [NX_SD_UNKNOWN_TENANT] = "unknown_tenant",
    [NX_SD_WRONG_TENANT] = "wrong_tenant",
    [NX_SD_RATE_LIMITED] = "rate_limited",
};

const char *nx_statsd_reason_name(int reason)
{
    if (reason < 0 || reason >= NX_SD_NREASONS)
        return "unknown";
    return reason_names[reason];
}

int nx_statsd_reason_of_error(int err)
{
    switch (err) {
    case NX_OK: return NX_SD_OK;
    case NX_EINVAL: return NX_SD_BAD_VALUE;
    case NX_ETYPE: return NX_SD_TYPE_MISMATCH;
    case NX_EQUOTA: return NX_SD_QUOTA;
    case NX_ETOOLATE: return NX_SD_TOO_LATE;
    case NX_EFUTURE: return NX_SD_TOO_EARLY;
    case NX_ETOOBIG: return NX_SD_TOO_LONG;
    default: return NX_SD_INTERNAL;
    }
}

void nx_statsd_limits_default(nx_statsd_limits *lim)
{
    lim->max_line = 4096;
    lim->max_tags = 64;
    lim->max_name = 256;
}

/* ---- helpers ----------------------------------------------------------- */

int nx_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        /* ASCII fast path, 8 bytes at a time */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ull)
                break;
            p += 8;
        }
        if (p >= end)
            break;
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t need;
        unsigned min;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) { need = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { need = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if ((size_t)(end - p) <= need)
            return 0;
        for (size_t i = 1; i <= need; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += need + 1;
    }
    return 1;
}

int nx_tenant_id_valid(const char *id, size_t n)
{
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static const double pow10_tab[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

int nx_statsd_parse_double(const char *p, size_t n, double *out)
{
    if (n == 0)
        return NX_EINVAL;
    size_t i = 0;
    int neg = 0;
    if (p[0] == '+' || p[0] == '-') {
        neg = p[0] == '-';
        i = 1;
    }
    uint64_t mant = 0;
    int digits = 0, frac = 0, seen_dot = 0, simple = 1;
    size_t start = i;
    for (; i < n; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9') {
            if (mant < (1ull << 53) / 10 - 1) {
                mant = mant * 10 + (uint64_t)(c - '0');
                digits++;
                if (seen_dot)
                    frac++;
            } else {
                simple = 0;
            }
        } else if (c == '.' && !seen_dot) {
            seen_dot = 1;
        } else if (c == 'e' || c == 'E') {
            simple = 0;
            break;
        } else {
            return NX_EINVAL;
        }
    }
    if (simple) {
        if (digits == 0 || frac > 22)
            simple = 0;
    }
    if (simple) {
        double v = (double)mant;
        if (frac)
            v /= pow10_tab[frac];
        *out = neg ? -v : v;
        return NX_OK;
    }
    /* slow path: only digits, one dot, one exponent with optional sign */
    if (n - start > 63 || n - start == 0)
        return NX_EINVAL;
    int seen_e = 0, mdigits = 0;
    seen_dot = 0;
    for (size_t j = start; j < n; j++) {
        char c = p[j];
        if (c >= '0' && c <= '9') {
            if (!seen_e)
                mdigits++;
            continue;
        }
        if (c == '.' && !seen_dot && !seen_e) {
            seen_dot = 1;
            continue;
        }
        if ((c == 'e' || c == 'E') && !seen_e && mdigits) {
            seen_e = 1;
            if (j + 1 < n && (p[j + 1] == '+' || p[j + 1] == '-'))
                j++;
            if (j + 1 >= n)
                return NX_EINVAL;
            continue;
        }
        return NX_EINVAL;
    }
    if (!mdigits)
        return NX_EINVAL;
    char tmp[72];
    memcpy(tmp, p, n);
    tmp[n] = 0;
    char *end = NULL;
    double v = strtod(tmp, &end);
    if (end != tmp + n || !isfinite(v))
        return NX_EINVAL;
    *out = v;
    return NX_OK;
}

static int parse_type(const char *p, size_t n, nx_type *t)
{
    if (n == 1) {
        switch (p[0]) {
        case 'c': *t = NX_TYPE_COUNTER; return 1;
        case 'g': *t = NX_TYPE_GAUGE; return 1;
        case 'h': *t = NX_TYPE_HISTOGRAM; return 1;
        case 'd': *t = NX_TYPE_DISTRIBUTION; return 1;
        case 's': *t = NX_TYPE_SET; return 1;
        default: return 0;
        }
    }
    if (n == 2 && p[0] == 'm' && p[1] == 's') {
        *t = NX_TYPE_TIMER;
        return 1;
    }
    return 0;
}

/* Name: printable, no spaces, no '#', '@', ',' (they would break keys). */
static int name_ok(const char *p, size_t n, const nx_statsd_limits *lim)
{
    if (n == 0 || n > lim->max_name)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7f || c == '#' || c == '@' || c == ',' || c == '|')
            return 0;
    }
    return 1;
}

static int tag_text_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '|')
            return 0;
    }
    return 1;
}

/* Parses "k:v,k2,k3:v3" into tags[]; handles the tenant tag. */
static int parse_tags(const char *p, size_t n, const nx_statsd_limits *lim, nx_tag *tags,
                      nx_statsd_line *out)
{
    size_t i = 0;
    while (i <= n) {
        const char *comma = memchr(p + i, ',', n - i);
        size_t end = comma ? (size_t)(comma - p) : n;
        const char *t = p + i;
        size_t tl = end - i;
        if (tl == 0) {
            /* tolerate a trailing comma ("#a:b,") but not empty tags inside */
            if (!comma && i > 0)
                break;
            return NX_SD_BAD_TAGS;
        }
        if (!tag_text_ok(t, tl))
            return NX_SD_BAD_TAGS;
        const char *colon = memchr(t, ':', tl);
        size_t kl = colon ? (size_t)(colon - t) : tl;
        if (kl == 0 || kl > 0xffff || tl - kl > 0xffff)
            return NX_SD_BAD_TAGS;
        if (kl == 6 && memcmp(t, "tenant", 6) == 0) {
            if (!colon || out->tenant)
                return NX_SD_BAD_TENANT;
            const char *id = colon + 1;
            size_t idl = tl - kl - 1;
            if (!nx_tenant_id_valid(id, idl))
                return NX_SD_BAD_TENANT;
            out->tenant = id;
            out->tenant_len = (uint32_t)idl;
        } else {
            if (out->ntags >= lim->max_tags)
                return NX_SD_TOO_MANY_TAGS;
            nx_tag *tg = &tags[out->ntags++];
            tg->key = t;
            tg->key_len = (uint16_t)kl;
            if (colon) {
                tg->value = colon + 1;
                tg->value_len = (uint16_t)(tl - kl - 1);
            } else {
                tg->value = NULL;
                tg->value_len = 0;
            }
        }
        if (!comma)
            break;
        i = end + 1;
    }
    return NX_SD_OK;
}

/* Validates the value span; counts values. */
static int check_values(nx_statsd_line *l)
{
    if (l->values_len == 0)
        return NX_SD_BAD_VALUE;
    if (l->type == NX_TYPE_SET) {
        l->nvalues = 1;
        return NX_SD_OK;
    }
    uint32_t pos = 0, n = 0;
    while (pos <= l->values_len) {
        const char *v = l->values + pos;
        const char *c = memchr(v, ':', l->values_len - pos);
        size_t vl = c ? (size_t)(c - v) : l->values_len - pos;
        double d;
        if (nx_statsd_parse_double(v, vl, &d) != NX_OK)
            return NX_SD_BAD_VALUE;
        if (n == 0)
            l->value0 = d;
        n++;
        if (!c)
            break;
        pos += (uint32_t)vl + 1;
    }
    l->nvalues = n;
    return NX_SD_OK;
}

int nx_statsd_parse(const char *line, size_t len, const nx_statsd_limits *lim, nx_tag *tags,
                    nx_statsd_line *out)
{
    assert(line && lim && tags && out);
    memset(out, 0, sizeof(*out));
    out->rate = 1.0;
    out->tags = tags;
    if (len > lim->max_line)
        return NX_SD_TOO_LONG;
    if (!nx_utf8_valid(line, len))
        return NX_SD_BAD_UTF8;
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return NX_SD_BAD_FORMAT;
    size_t name_len = (size_t)(colon - line);
    const char *rest = colon + 1;
    size_t rest_len = len - name_len - 1;
    const char *bar = memchr(rest, '|', rest_len);
    if (!bar)
        return NX_SD_BAD_FORMAT;
    if (name_len == 0)
        return NX_SD_BAD_NAME;
    if (!name_ok(line, name_len, lim))
        return NX_SD_BAD_NAME;
    out->name = line;
    out->name_len = (uint32_t)name_len;
    out->values = rest;
    out->values_len = (uint32_t)(bar - rest);

    /* type */
    const char *f = bar + 1;
    const char *end = line + len;
    const char *nb = memchr(f, '|', (size_t)(end - f));
    const char *fend = nb ? nb : end;
    if (!parse_type(f, (size_t)(fend - f), &out->type))
        return NX_SD_BAD_TYPE;

    /* optional fields */
    int seen_rate = 0, seen_tags = 0, seen_ts = 0;
    while (nb) {
        f = nb + 1;
        nb = memchr(f, '|', (size_t)(end - f));
        fend = nb ? nb : end;
        size_t fl = (size_t)(fend - f);
        if (fl == 0)
            return NX_SD_BAD_FORMAT;
        if (f[0] == '@') {
            double r;
            if (seen_rate++ || nx_statsd_parse_double(f + 1, fl - 1, &r) != NX_OK || !(r > 0) ||
                r > 1)
                return NX_SD_BAD_RATE;
            out->rate = r;
        } else if (f[0] == '#') {
            if (seen_tags++)
                return NX_SD_BAD_TAGS;
            int rc = parse_tags(f + 1, fl - 1, lim, tags, out);
            if (rc != NX_SD_OK)
                return rc;
        } else if (f[0] == 'T') {
            if (seen_ts++ || fl < 2 || fl > 12)
                return NX_SD_BAD_TIMESTAMP;
            int64_t s = 0;
            for (size_t i = 1; i < fl; i++) {
                if (f[i] < '0' || f[i] > '9')
                    return NX_SD_BAD_TIMESTAMP;
                s = s * 10 + (f[i] - '0');
            }
            if (s <= 0)
                return NX_SD_BAD_TIMESTAMP;
            out->ts_ms = s * 1000;
        } else if (fl >= 2 && f[0] >= 'a' && f[0] <= 'z' && f[1] == ':') {
            /* c:container-id, e:external-data, ...: accepted, ignored */
        } else {
            return NX_SD_BAD_FORMAT;
        }
    }
    return check_values(out);
}

int nx_statsd_value_next(const nx_statsd_line *l, uint32_t *pos, nx_statsd_value *v)
{
    if (*pos > l->values_len)
        return 0;
    memset(v, 0, sizeof(*v));
    if (l->type == NX_TYPE_SET) {
        v->member = l->values;
        v->member_len = l->values_len;
        *pos = l->values_len + 1;
        return 1;
    }
    const char *p = l->values + *pos;
    size_t n;
    if (*pos == 0 && l->nvalues == 1) { /* the common line: parsed already */
        n = l->values_len;
        v->value = l->value0;
    } else {
        const char *c = memchr(p, ':', l->values_len - *pos);
        n = c ? (size_t)(c - p) : l->values_len - *pos;
        int rc = nx_statsd_parse_double(p, n, &v->value);
        assert(rc == NX_OK); /* validated by nx_statsd_parse */
        (void)rc;
    }
    v->delta = l->type == NX_TYPE_GAUGE && (p[0] == '+' || p[0] == '-');
    *pos += (uint32_t)n + 1;
    return 1;
}
