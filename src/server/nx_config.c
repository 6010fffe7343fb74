/*
 * nx_config.c — defaults, flags and config file of nexusd (see nx_config.h).
 *
 * One table maps each key to a setter so the flag parser, the file parser
 * and --help agree by construction.
 */
#include "server/nx_config.h"
#include "server/nx_listener.h"
#include "server/nx_log.h"

#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nx_config_default(nx_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->data_dir, sizeof(c->data_dir), "./nexus-data");
    snprintf(c->http, sizeof(c->http), "127.0.0.1:8080");
    snprintf(c->statsd_udp, sizeof(c->statsd_udp), "127.0.0.1:8125");
    snprintf(c->statsd_tcp, sizeof(c->statsd_tcp), "127.0.0.1:8125");
    snprintf(c->nxb_udp, sizeof(c->nxb_udp), "127.0.0.1:8126");
    snprintf(c->nxb_tcp, sizeof(c->nxb_tcp), "127.0.0.1:8126");
    snprintf(c->default_tenant, sizeof(c->default_tenant), "default");
    c->shards = 0;
    c->pin = 1;
    c->realtime = 1;
    c->log_level = NX_LOG_INFO;
    nx_statsd_limits_default(&c->limits);
    c->rcvbuf = 64u << 20;
    c->recv_batch = 64;
    c->max_body = 16u << 20;
    c->max_tcp_conns = 1024;
    c->http_conns = 256;
    c->max_subscribers = 64;
    c->sse_max_per_sec = 4;
    c->sse_heartbeat_s = 15;
    c->prom_window_s = 60;
    c->ack_durable = 1;
    c->snapshot_interval_ms = 60000;
    c->wal_sync_ms = 1000;
    c->snapshot_zstd_level = -1;
    c->prefault_ahead_mb = 64;
    nx_engine_config_default(&c->engine);
    snprintf(c->steer, sizeof(c->steer), "auto");
}

int nx_parse_duration_s(const char *s, uint32_t *out)
{
    if (strcmp(s, "all") == 0) {
        *out = NX_WINDOW_ALL;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || errno || v > 100000000ul)
        return NX_EINVAL;
    unsigned long mul = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60, end++;
    else if (*end == 'h')
        mul = 3600, end++;
    else if (*end == 'd')
        mul = 86400, end++;
    if (*end)
        return NX_EINVAL;
    *out = (uint32_t)(v * mul);
    return 0;
}

int nx_parse_duration_ms(const char *s, uint32_t *out)
{
    size_t n = strlen(s);
    if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (end != s + n - 2 || errno || v > 0xfffffffful || s[0] == '-')
            return NX_EINVAL;
        *out = (uint32_t)v;
        return 0;
    }
    uint32_t sec;
    if (strcmp(s, "all") == 0 || s[0] == '-' || nx_parse_duration_s(s, &sec) || sec > 0xffffffffu / 1000)
        return NX_EINVAL;
    *out = sec * 1000;
    return 0;
}

enum kind { K_STR, K_INT, K_BOOL, K_LEVEL, K_DOUBLE, K_MS, K_ACK, K_NXBT };

typedef struct opt {
    const char *key;
    enum kind kind;
    size_t off;    /* offset in nx_config */
    size_t size;   /* string buffer size, or integer width */
    long min, max; /* integers */
    const char *help;
} opt;

#define S(f, h) {#f, K_STR, offsetof(nx_config, f), sizeof(((nx_config *)0)->f), 0, 0, h}
#define U32(k, f, lo, hi, h) {k, K_INT, offsetof(nx_config, f), 4, lo, hi, h}

static const opt opts[] = {
    {"data-dir", K_STR, offsetof(nx_config, data_dir), PATH_MAX, 0, 0, "data directory (WAL, snapshots) [./nexus-data]"},
    {"http", K_STR, offsetof(nx_config, http), NX_ADDR_MAX, 0, 0, "HTTP API address [127.0.0.1:8080]"},
    {"statsd-udp", K_STR, offsetof(nx_config, statsd_udp), NX_ADDR_MAX, 0, 0, "StatsD UDP address, \"off\" to disable [127.0.0.1:8125]"},
    {"statsd-tcp", K_STR, offsetof(nx_config, statsd_tcp), NX_ADDR_MAX, 0, 0, "StatsD TCP address, \"off\" to disable [127.0.0.1:8125]"},
    {"statsd-unix", K_STR, offsetof(nx_config, statsd_unix), PATH_MAX, 0, 0, "StatsD unix datagram socket path [none]"},
    {"nxb-udp", K_STR, offsetof(nx_config, nxb_udp), NX_ADDR_MAX, 0, 0, "NXB binary UDP address [127.0.0.1:8126]"},
    {"nxb-tcp", K_STR, offsetof(nx_config, nxb_tcp), NX_ADDR_MAX, 0, 0, "NXB binary TCP address [127.0.0.1:8126]"},
    {"admin-token-file", K_STR, offsetof(nx_config, admin_token_file), PATH_MAX, 0, 0, "file holding the admin token [none]"},
    {"allow-default", K_BOOL, offsetof(nx_config, allow_default), 4, 0, 1, "tokenless `default` tenant on loopback even when tenants exist (bare flag = yes) [no]"},
    {"default-tenant", K_STR, offsetof(nx_config, default_tenant), 65, 0, 0, "tenant of lines without a tenant tag [default]"},
    {"shards", K_INT, offsetof(nx_config, shards), 4, 0, 256, "shard threads, 0 = one per online CPU [0]"},
    {"pin", K_BOOL, offsetof(nx_config, pin), 4, 0, 1, "pin shard i to CPU i (yes/no) [yes]"},
    {"realtime", K_BOOL, offsetof(nx_config, realtime), 4, 0, 1, "SCHED_FIFO for the HTTP threads, a shard while it owes a query an answer, and the prefault thread, when permitted (yes/no; docs/architecture.md) [yes]"},
    {"log-level", K_LEVEL, offsetof(nx_config, log_level), 4, 0, 3, "debug, info, warn or error [info]"},
    U32("max-line", limits.max_line, 16, 1 << 20, "bytes per StatsD line [4096]"),
    U32("max-tags", limits.max_tags, 0, 1024, "tags per StatsD line [64]"),
    U32("max-name", limits.max_name, 1, 4096, "bytes of a metric name [256]"),
    U32("rcvbuf", rcvbuf, 0, 1 << 30, "SO_RCVBUF of each UDP socket in bytes [67108864]"),
    U32("recv-batch", recv_batch, 1, 1024, "datagrams per recvmmsg call [64]"),
    U32("max-body", max_body, 1024, 1 << 30, "bytes of an HTTP request body [16777216]"),
    U32("max-tcp-conns", max_tcp_conns, 1, 1 << 20, "StatsD TCP connections per shard [1024]"),
    U32("http-conns", http_conns, 4, 65536, "concurrent HTTP connections [256]"),
    U32("max-subscribers", max_subscribers, 0, 65536, "concurrent SSE subscribers [64]"),
    U32("sse-max-per-sec", sse_max_per_sec, 1, 1000, "default SSE pushes per second [4]"),
    U32("sse-heartbeat", sse_heartbeat_s, 1, 3600, "seconds between SSE heartbeats [15]"),
    U32("prom-window", prom_window_s, 0, 1 << 30, "window (s) of /metrics quantiles, 0 = all time [60]"),
    {"alpha", K_DOUBLE, offsetof(nx_config, engine.alpha), 8, 0, 0, "DDSketch relative accuracy [0.01]"},
    U32("late-tolerance", engine.late_tolerance_s, 0, 1 << 30, "seconds an event may be late [60]"),
    U32("future-tolerance", engine.future_tolerance_s, 0, 1 << 30, "seconds an event may be early [10]"),
    U32("max-streams-per-tenant", engine.max_streams_per_tenant, 0, 1 << 30, "0 = unlimited [0]"),
    {"ack", K_ACK, offsetof(nx_config, ack_durable), 4, 0, 1, "default HTTP ingest ack: durable or applied [durable]"},
    {"snapshot-interval", K_MS, offsetof(nx_config, snapshot_interval_ms), 4, 10, 86400000, "at most one snapshot per shard this often (250ms, 60s, 5m) [60s]"},
    {"snapshot-zstd-level", K_INT, offsetof(nx_config, snapshot_zstd_level), 4, -7, 19, "zstd level of snapshots, negative = faster, 0 = zstd's default (3); -1 costs ~40% less CPU than 3 for ~20% bigger files [-1]"},
    {"wal-sync-interval", K_MS, offsetof(nx_config, wal_sync_ms), 4, 1, 3600000, "fdatasync un-acked WAL data at least this often, on a helper thread [1s]"},
    {"huge-pages", K_BOOL, offsetof(nx_config, huge_pages), 4, 0, 1, "shard heaps on 2 MB transparent huge pages: fewer TLB misses, but each first touch stalls a shard for milliseconds (yes/no; jemalloc builds; src/server/nx_prefault.h) [no]"},
    U32("prefault-ahead", prefault_ahead_mb, 0, 1 << 20, "MiB of each shard's heap faulted in ahead of use by a background thread (idle priority, or real-time with --realtime; jemalloc builds), 0 = off [64]"),
    {"steer", K_STR, offsetof(nx_config, steer), 8, 0, 0, "kernel stage of UDP groups: auto, ebpf, cbpf or plain [auto]"},
    {"nxb-tenant", K_NXBT, 0, 0, 0, 0, "NUM:ID, NXB tenant number -> tenant id (repeatable; 0 = default tenant)"},
    {"tenant-quota", K_NXBT, 0, 0, 0, 0, "NUM:RATE[:BURST], NXB events/s quota of tenant NUM (repeatable)"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

const nx_nxb_tenant_cfg *nx_config_nxb_tenant(const nx_config *c, uint32_t num)
{
    for (uint32_t i = 0; i < c->nxb_ntenants; i++)
        if (c->nxb_tenants[i].num == num)
            return &c->nxb_tenants[i];
    return NULL;
}

/* --nxb-tenant NUM:ID and --tenant-quota NUM:RATE[:BURST] fill one entry per
 * NUM (a later flag for the same NUM overrides that part). */
static int nxb_tenant_set(nx_config *c, const char *key, const char *value, char *err,
                          size_t errlen)
{
    int quota = strcmp(key, "tenant-quota") == 0;
    char *end;
    errno = 0;
    unsigned long num = strtoul(value, &end, 10);
    if (end == value || *end != ':' || errno || num > UINT32_MAX)
        goto bad;
    const char *rest = end + 1;
    nx_nxb_tenant_cfg *t = (nx_nxb_tenant_cfg *)nx_config_nxb_tenant(c, (uint32_t)num);
    if (!t) {
        if (c->nxb_ntenants == NX_NXB_TENANTS_MAX) {
            snprintf(err, errlen, "--%s: at most %d NXB tenants", key, NX_NXB_TENANTS_MAX);
            return NX_EINVAL;
        }
        t = &c->nxb_tenants[c->nxb_ntenants];
        memset(t, 0, sizeof(*t));
        t->num = (uint32_t)num;
    }
    if (!quota) {
        if (!nx_tenant_id_valid(rest, strlen(rest)))
            goto bad;
        snprintf(t->id, sizeof(t->id), "%s", rest);
    } else {
        unsigned long long rate = strtoull(rest, &end, 10), burst = rate;
        if (end == rest || (*end && *end != ':') || errno || rate > 1000000000ull)
            goto bad;
        if (*end == ':') {
            const char *b = end + 1;
            burst = strtoull(b, &end, 10);
            if (end == b || *end || errno || burst > 1000000000ull)
                goto bad;
        }
        t->rate = rate;
        t->burst = burst;
    }
    if (t == &c->nxb_tenants[c->nxb_ntenants])
        c->nxb_ntenants++;
    return 0;
bad:
    snprintf(err, errlen, "--%s: expected %s", key,
             quota ? "NUM:RATE[:BURST] (events/s, events)" : "NUM:ID with ID [a-z0-9_-]{1,64}");
    return NX_EINVAL;
}

void nx_config_usage(const char *prog)
{
    printf("usage: %s [--config FILE] [--key VALUE ...]\n\n"
           "NexusCore summarizer daemon: StatsD/DogStatsD ingest, HTTP query API,\n"
           "Prometheus /metrics, Server-Sent Events. Every flag is also a config\n"
           "file key (`key = value`).\n\n",
           prog);
    printf("  %-24s %s\n", "--config FILE", "load FILE before the other flags");
    for (size_t i = 0; i < NOPTS; i++)
        printf("  --%-22s %s\n", opts[i].key, opts[i].help);
    printf("  %-24s %s\n", "--help", "this text");
}

int nx_config_set(nx_config *c, const char *key, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &opts[i];
        if (strcmp(o->key, key) != 0)
            continue;
        char *field = (char *)c + o->off;
        switch (o->kind) {
        case K_STR: {
            const char *v = value;
            if (strcmp(o->key, "statsd-udp") == 0 || strcmp(o->key, "statsd-tcp") == 0 ||
                strcmp(o->key, "nxb-udp") == 0 || strcmp(o->key, "nxb-tcp") == 0 ||
                strcmp(o->key, "statsd-unix") == 0 || strcmp(o->key, "data-dir") == 0)
                if (strcmp(v, "off") == 0)
                    v = "";
            if (strlen(v) >= o->size) {
                snprintf(err, errlen, "--%s: value too long", key);
                return NX_EINVAL;
            }
            if (strcmp(o->key, "steer") == 0 && strcmp(v, "auto") && strcmp(v, "ebpf") &&
                strcmp(v, "cbpf") && strcmp(v, "plain")) {
                snprintf(err, errlen, "--%s: expected auto, ebpf, cbpf or plain", key);
                return NX_EINVAL;
            }
            if (strcmp(o->key, "default-tenant") == 0 && !nx_tenant_id_valid(v, strlen(v))) {
                snprintf(err, errlen, "--%s: tenant ids are [a-z0-9_-]{1,64}", key);
                return NX_EINVAL;
            }
            memcpy(field, v, strlen(v) + 1);
            return 0;
        }
        case K_INT: {
            char *end;
            errno = 0;
            long v = strtol(value, &end, 10);
            if (end == value || *end || errno || v < o->min || v > o->max) {
                snprintf(err, errlen, "--%s: expected an integer in [%ld, %ld]", key, o->min,
                         o->max);
                return NX_EINVAL;
            }
            if (o->size == 4 && (strcmp(o->key, "shards") == 0 || o->min < 0))
                *(int *)field = (int)v;
            else
                *(uint32_t *)field = (uint32_t)v;
            return 0;
        }
        case K_BOOL:
            if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1"))
                *(int *)field = 1;
            else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0"))
                *(int *)field = 0;
            else {
                snprintf(err, errlen, "--%s: expected yes or no", key);
                return NX_EINVAL;
            }
            return 0;
        case K_LEVEL: {
            int l = nx_log_level_parse(value);
            if (l < 0) {
                snprintf(err, errlen, "--%s: expected debug, info, warn or error", key);
                return NX_EINVAL;
            }
            *(int *)field = l;
            return 0;
        }
        case K_ACK:
            if (strcmp(value, "durable") && strcmp(value, "applied")) {
                snprintf(err, errlen, "--%s: expected durable or applied", key);
                return NX_EINVAL;
            }
            *(int *)field = strcmp(value, "durable") == 0;
            return 0;
        case K_MS: {
            uint32_t ms;
            if (nx_parse_duration_ms(value, &ms) || ms < o->min || ms > o->max) {
                snprintf(err, errlen, "--%s: expected a duration in [%ldms, %lds] (e.g. 250ms, 1s, 5m)",
                         key, o->min, o->max / 1000);
                return NX_EINVAL;
            }
            *(uint32_t *)field = ms;
            return 0;
        }
        case K_DOUBLE: {
            char *end;
            double v = strtod(value, &end);
            if (end == value || *end || !(v > 0 && v < 1)) {
                snprintf(err, errlen, "--%s: expected a number in (0, 1)", key);
                return NX_EINVAL;
            }
            *(double *)field = v;
            return 0;
        }
        case K_NXBT:
            return nxb_tenant_set(c, key, value, err, errlen);
        }
    }
    snprintf(err, errlen, "unknown option --%s (see --help)", key);
    return NX_EINVAL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

int nx_config_load_file(nx_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return NX_EIO;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = NX_EINVAL;
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        char sub[256];
        if (nx_config_set(c, k, v, sub, sizeof(sub)) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
            rc = NX_EINVAL;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* Whether two listen addresses take the same port: equal, or one a wildcard
 * of the same family. Port 0 (any free port) never clashes. */
static int addr_clash(const char *a, const char *b)
{
    struct sockaddr_storage x, y;
    socklen_t xl, yl;
    if (!a[0] || !b[0] || nx_addr_parse(a, &x, &xl) || nx_addr_parse(b, &y, &yl) ||
        x.ss_family != y.ss_family)
        return 0; /* off, or a bad address the listener itself reports */
    if (x.ss_family == AF_INET) {
        const struct sockaddr_in *p = (const void *)&x, *q = (const void *)&y;
        return p->sin_port && p->sin_port == q->sin_port &&
               (p->sin_addr.s_addr == q->sin_addr.s_addr || p->sin_addr.s_addr == htonl(INADDR_ANY) ||
                q->sin_addr.s_addr == htonl(INADDR_ANY));
    }
    const struct sockaddr_in6 *p = (const void *)&x, *q = (const void *)&y;
    return p->sin6_port && p->sin6_port == q->sin6_port &&
           (!memcmp(&p->sin6_addr, &q->sin6_addr, sizeof(p->sin6_addr)) ||
            !memcmp(&p->sin6_addr, &in6addr_any, sizeof(in6addr_any)) ||
            !memcmp(&q->sin6_addr, &in6addr_any, sizeof(in6addr_any)));
}

/* Two listeners of one protocol on one port would not fail to bind: every
 * group sets SO_REUSEPORT, so the kernel would quietly split the traffic
 * between them (NXB frames read as StatsD lines, and no acks). Refused. */
int nx_config_check_listeners(const nx_config *c, char *err, size_t errlen)
{
    struct {
        const char *flag, *addr;
    } tcp[] = {{"http", c->http}, {"statsd-tcp", c->statsd_tcp}, {"nxb-tcp", c->nxb_tcp}},
      udp[] = {{"statsd-udp", c->statsd_udp}, {"nxb-udp", c->nxb_udp}};
    size_t ntcp = sizeof tcp / sizeof tcp[0];
    for (size_t i = 0; i < ntcp; i++)
        for (size_t j = i + 1; j < ntcp; j++)
            if (addr_clash(tcp[i].addr, tcp[j].addr)) {
                snprintf(err, errlen, "--%s %s and --%s %s share a TCP port; give each its own",
                         tcp[i].flag, tcp[i].addr, tcp[j].flag, tcp[j].addr);
                return NX_EINVAL;
            }
    if (addr_clash(udp[0].addr, udp[1].addr)) {
        snprintf(err, errlen, "--%s %s and --%s %s share a UDP port; give each its own",
                 udp[0].flag, udp[0].addr, udp[1].flag, udp[1].addr);
        return NX_EINVAL;
    }
    return 0;
}

int nx_config_parse_args(nx_config *c, int argc, char **argv, char *err, size_t errlen)
{
    /* pass 1: --config and --help */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            nx_config_usage(argv[0]);
            return 1;
        }
        const char *path = NULL;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a file");
                return NX_EINVAL;
            }
            path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        }
        if (path) {
            int rc = nx_config_load_file(c, path, err, errlen);
            if (rc)
                return rc < 0 ? rc : NX_EINVAL;
        }
    }
    /* pass 2: everything else */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return NX_EINVAL;
        }
        char key[64];
        const char *val;
        const char *eq = strchr(a, '=');
        if (eq) {
            size_t kl = (size_t)(eq - a - 2);
            if (kl >= sizeof(key)) {
                snprintf(err, errlen, "unknown option %s", a);
                return NX_EINVAL;
            }
            memcpy(key, a + 2, kl);
            key[kl] = 0;
            val = eq + 1;
        } else {
            snprintf(key, sizeof(key), "%s", a + 2);
            if (!strcmp(key, "allow-default") &&
                (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
                c->allow_default = 1; /* bare flag */
                continue;
            }
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s needs a value", a);
                return NX_EINVAL;
            }
            val = argv[++i];
        }
        int rc = nx_config_set(c, key, val, err, errlen);
        if (rc)
            return rc;
    }
    return nx_config_check_listeners(c, err, errlen);
}
