/*
 * nx_statsd.h — zero-copy StatsD / DogStatsD line parser.
 *
 * Grammar accepted (one event line; a datagram or TCP stream holds many,
 * separated by '\n', an optional '\r' before it is stripped):
 *
 *   line    = name ":" values "|" type *( "|" field )
 *   values  = value *( ":" value )          (several values per line, as statsd)
 *   type    = "c" | "g" | "ms" | "h" | "d" | "s"
 *   field   = "@" rate                      (0 < rate <= 1; weight = 1/rate)
 *           | "#" tag *( "," tag )          (tag = key [ ":" value ])
 *           | "T" unix-seconds              (DogStatsD timestamp)
 *           | "c:" container-id             (DogStatsD, accepted and ignored)
 *           | lower-letter ":" anything     (future DogStatsD fields, ignored)
 *
 * Gauge values starting with '+' or '-' are deltas (statsd semantics). A
 * set's value span is taken whole as one member (so members may contain
 * ':', e.g. IPv6 addresses). The tag `tenant:<id>` selects the tenant
 * ([a-z0-9_-]{1,64}) and is removed from the stream's tags.
 *
 * Nothing is copied or allocated: the parsed line points into the caller's
 * buffer and the tags go into a caller-provided array. Every check that can
 * reject a line runs before the caller applies anything, so a line is either
 * applied whole or rejected whole with one reason.
 */
#ifndef NX_STATSD_H
#define NX_STATSD_H

#include <stddef.h>
#include <stdint.h>
#include "nexus.h"

/* Why a line was rejected. Names (nx_statsd_reason_name) appear in stats,
 * logs, /metrics labels and HTTP ingest answers; keep them stable. */
typedef enum nx_sd_reason {
    NX_SD_OK = 0,
    NX_SD_BAD_FORMAT,     /* no ':' or '|', empty parts, unknown field */
    NX_SD_BAD_VALUE,      /* unparsable, NaN or Inf */
    NX_SD_BAD_TYPE,       /* unknown type letter */
    NX_SD_BAD_RATE,       /* rate not in (0, 1] */
    NX_SD_BAD_TAGS,       /* empty tag key, control characters */
    NX_SD_TOO_LONG,       /* line or datagram over the limit, truncated datagram */
    NX_SD_TOO_MANY_TAGS,  /* more tags than the limit */
    NX_SD_BAD_NAME,       /* empty, too long or with forbidden characters */
    NX_SD_BAD_UTF8,       /* invalid UTF-8 anywhere in the line */
    NX_SD_BAD_TENANT,     /* tenant tag not [a-z0-9_-]{1,64}, or repeated */
    NX_SD_BAD_TIMESTAMP,  /* |T field not a positive integer */
    NX_SD_TYPE_MISMATCH,  /* stream exists with another type (engine) */
    NX_SD_QUOTA,          /* tenant stream/memory quota (engine) */
    NX_SD_TOO_LATE,       /* timestamp older than the late tolerance (engine) */
    NX_SD_TOO_EARLY,      /* timestamp too far in the future (engine) */
    NX_SD_INTERNAL,       /* out of memory or another engine error */
    NX_SD_UNKNOWN_TENANT, /* tenant not in the registry (tenants configured) */
    NX_SD_WRONG_TENANT,   /* tenant tag names another tenant than the token's */
    NX_SD_RATE_LIMITED,   /* over the tenant's events/s quota (user space) */
    NX_SD_NREASONS
} nx_sd_reason;

const char *nx_statsd_reason_name(int reason);
/* Maps an engine NX_E* code to a reason (NX_ETYPE -> NX_SD_TYPE_MISMATCH...). */
int nx_statsd_reason_of_error(int nx_err);

typedef struct nx_statsd_limits {
    uint32_t max_line; /* bytes per line, default 4096 */
    uint32_t max_tags; /* tags per line, default 64 */
    uint32_t max_name; /* bytes of the metric name, default 256 */
} nx_statsd_limits;

void nx_statsd_limits_default(nx_statsd_limits *lim);

typedef struct nx_statsd_line {
    const char *name;
    uint32_t name_len;
    const char *values;   /* the raw value span ("1.5:2:3") */
    uint32_t values_len;
    uint32_t nvalues;
    nx_type type;
    double rate;          /* 1 when absent */
    nx_tag *tags;         /* the caller's array, tenant tag removed */
    uint32_t ntags;
    const char *tenant;   /* NULL: use the listener's default tenant */
    uint32_t tenant_len;
    int64_t ts_ms;        /* 0 when absent */
    double value0;        /* numeric types: the first value (parsed once, by
                           * the validation; nx_statsd_value_next reuses it) */
} nx_statsd_line;

/*
 * Parses one line (without its '\n'). tags must hold lim->max_tags + 1
 * entries. Returns NX_SD_OK and fills *out, or the reason for rejecting.
 */
int nx_statsd_parse(const char *line, size_t len, const nx_statsd_limits *lim,
                    nx_tag *tags, nx_statsd_line *out);

/* One value of a parsed line. */
typedef struct nx_statsd_value {
    double value;         /* numeric types */
    uint8_t delta;        /* gauge +N / -N */
    const char *member;   /* sets: the member bytes */
    uint32_t member_len;
} nx_statsd_value;

/*
 * Iterates the values of a line nx_statsd_parse() accepted: *pos starts at
 * 0; returns 1 with *v filled, 0 when done. (Values were validated by the
 * parse, so this cannot fail.)
 */
int nx_statsd_value_next(const nx_statsd_line *l, uint32_t *pos, nx_statsd_value *v);

/*
 * Parses a number the way the StatsD parser does: [+-]digits[.digits][e[+-]d]
 * with an exact fast path, strtod otherwise; NX_EINVAL for junk, NaN, Inf.
 */
int nx_statsd_parse_double(const char *p, size_t n, double *out);

/* Validates UTF-8 (no overlongs, no surrogates); 1 if valid. */
int nx_utf8_valid(const char *p, size_t n);

/* True when id is a valid tenant id: [a-z0-9_-]{1,64}. */
int nx_tenant_id_valid(const char *id, size_t n);

#endif /* NX_STATSD_H */
