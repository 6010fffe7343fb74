/*
 * nexus.c — the command-line client of nexusd's HTTP API.
 *
 *   nexus send [LINE...]            StatsD lines from args or stdin -> POST /v1/ingest
 *   nexus send --nxb [--tcp] [--num N] [--nxb-addr HOST:PORT] [LINE...]
 *                                   the same lines as NXB batches (libnexus-client)
 *   nexus query METRIC [--tags k:v,..] [--window 1m] [--q 0.5,0.99] [--json]
 *   nexus streams [--prefix P] [--json]
 *   nexus stats [--json]
 *   nexus tenant create|list|get|delete|rotate-token|quotas   (admin token:
 *                                   NEXUS_ADMIN_TOKEN, else NEXUS_TOKEN)
 *   nexus udf put NAME FILE.wasm | bind NAME --metric M|--prefix P [--window all]
 *             [--params k=v,..] | list | delete NAME       (docs/udf.md)
 *   nexus top [--window 10s] [--n 20] [--interval S] [--once]
 *   nexus health
 *   nexus admin snapshot            POST /v1/admin/snapshot (every shard, now)
 *   nexus admin verify DIR          offline check of a data directory (exit 0/1)
 * Global: --tenant ID (open mode only), env NEXUS_URL (default
 * http://127.0.0.1:8080) and NEXUS_TOKEN (sent as a Bearer token).
 *
 * Design: a small blocking HTTP/1.0 client over a TCP socket (one request
 * per connection, Connection: close; the server answers with Content-Length
 * or closes), JSON parsed with jansson. No libcurl: nothing here needs TLS,
 * redirects or keep-alive. Exit status: 0 ok, 1 server/network error or
 * not found, 2 usage.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/nx_fs.h"
#include "store/nx_store.h"
#include "nexus_client.h"
#include "ingest/nx_statsd.h"

typedef struct opts {
    const char *tenant, *tags, *window, *q, *prefix, *num, *nxb_addr, *metric, *params;
    int json, once, n, nxb, tcp;
    double interval;
} opts;

typedef struct resp {
    int status;
    char *body;
    size_t len;
} resp;

static void usage(void)
{
    fprintf(stderr,
            "usage: nexus [--tenant ID] COMMAND [ARGS]\n"
            "  send [LINE...]              send StatsD lines (args, or stdin) via POST /v1/ingest\n"
            "  send --nxb [--tcp] [--num N] [--nxb-addr HOST:PORT] [LINE...]\n"
            "                              the same as NXB binary batches over UDP (or TCP, acked)\n"
            "                              to tenant number N (default 0; env NEXUS_NXB)\n"
            "  query METRIC [--tags k:v,..] [--window 1m|all] [--q 0.5,0.99] [--json]\n"
            "  streams [--prefix P] [--json]\n"
            "  stats [--json]\n"
            "  top [--window 10s] [--n 20] [--interval 1] [--once]\n"
            "  health\n"
            "  admin snapshot              snapshot every shard now (POST /v1/admin/snapshot)\n"
            "  admin verify DIR            check a data directory offline (exit 0 ok, 1 problems)\n"
            "  udf put NAME FILE.wasm | udf bind NAME --metric M|--prefix P [--window all]\n"
            "      [--params k=v,..] | udf list [--json] | udf delete NAME\n"
            "  tenant create|list|get|delete|rotate-token|quotas ...  (admin; nexus tenant for help)\n"
            "env: NEXUS_URL (default http://127.0.0.1:8080), NEXUS_TOKEN\n");
}

/* ---- HTTP ---------------------------------------------------------------- */

static int url_parts(char *host, size_t hn, char *port, size_t pn, char *base, size_t bn)
{
    const char *u = getenv("NEXUS_URL");
    if (!u || !*u)
        u = "http://127.0.0.1:8080";
    if (strncmp(u, "http://", 7) != 0) {
        fprintf(stderr, "nexus: NEXUS_URL must start with http://\n");
        return -1;
    }
    u += 7;
    const char *slash = strchr(u, '/');
    size_t hl = slash ? (size_t)(slash - u) : strlen(u);
    char hp[256];
    if (hl >= sizeof(hp))
        return -1;
    memcpy(hp, u, hl);
    hp[hl] = 0;
    snprintf(base, bn, "%s", slash ? slash : "");
    size_t bl = strlen(base);
    if (bl && base[bl - 1] == '/')
        base[bl - 1] = 0;
    char *colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
    if (hp[0] == '[') {
        char *rb = strchr(hp, ']');
        if (!rb)
            return -1;
        *rb = 0;
        snprintf(host, hn, "%s", hp + 1);
        snprintf(port, pn, "%s", colon ? colon + 2 : "80");
    } else {
        if (colon)
            *colon = 0;
        snprintf(host, hn, "%s", hp);
        snprintf(port, pn, "%s", colon ? colon + 1 : "80");
    }
    return 0;
}

static int http(const char *method, const char *path, const char *body, size_t blen, resp *r)
{
    char host[256], port[16], base[256];
    memset(r, 0, sizeof(*r));
    if (url_parts(host, sizeof(host), port, sizeof(port), base, sizeof(base)))
        return -1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int e = getaddrinfo(host, port, &hints, &ai);
    if (e) {
        fprintf(stderr, "nexus: %s: %s\n", host, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, 0);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        fprintf(stderr, "nexus: cannot connect to %s:%s: %s\n", host, port, strerror(errno));
        return -1;
    }
    const char *tok = getenv("NEXUS_TOKEN");
    char *hdr = NULL;
    int hl = asprintf(&hdr,
                      "%s %s%s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\nUser-Agent: nexus\r\n"
                      "%s%s%sContent-Length: %zu\r\n\r\n",
                      method, base, path, host, tok && *tok ? "Authorization: Bearer " : "",
                      tok && *tok ? tok : "", tok && *tok ? "\r\n" : "", blen);
    if (hl < 0) {
        close(fd);
        return -1;
    }
    int ok = 1;
    const char *parts[2] = {hdr, body};
    size_t lens[2] = {(size_t)hl, blen};
    for (int k = 0; k < 2 && ok; k++) {
        size_t off = 0;
        while (off < lens[k]) {
            ssize_t w = write(fd, parts[k] + off, lens[k] - off);
            if (w <= 0) {
                ok = 0;
                break;
            }
            off += (size_t)w;
        }
    }
    free(hdr);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    while (ok && buf) {
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf || !ok || len < 12) {
        free(buf);
        fprintf(stderr, "nexus: no answer from %s:%s\n", host, port);
        return -1;
    }
    buf[len] = 0;
    r->status = atoi(buf + 9);
    char *sep = strstr(buf, "\r\n\r\n");
    size_t boff = sep ? (size_t)(sep - buf) + 4 : len;
    r->len = len - boff;
    r->body = malloc(r->len + 1);
    if (!r->body) {
        free(buf);
        return -1;
    }
    memcpy(r->body, buf + boff, r->len);
    r->body[r->len] = 0;
    free(buf);
    return 0;
}

/* percent-encodes s onto the end of out */
static void append_enc(char *out, size_t cap, const char *key, const char *s)
{
    size_t o = strlen(out);
    o += (size_t)snprintf(out + o, cap - o, "%s%s=", strchr(out, '?') ? "&" : "?", key);
    static const char hex[] = "0123456789ABCDEF";
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c))
            out[o++] = (char)c;
        else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

/* One request whose answer is JSON; NULL (reported) if the request failed
 * or the answer is not JSON. *status = the HTTP status. */
static json_t *call_json(const char *method, const char *path, const char *body, size_t len,
                         int *status)
{
    resp r;
    if (http(method, path, body, len, &r))
        return NULL;
    *status = r.status;
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    if (!j)
        fprintf(stderr, "nexus: bad answer (HTTP %d): %.200s\n", r.status, r.body);
    free(r.body);
    return j;
}

static json_t *get_json(const char *path, int *status)
{
    return call_json("GET", path, "", 0, status);
}

static int print_error(json_t *j, int status)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    const char *c = json_string_value(json_object_get(j, "code"));
    fprintf(stderr, "nexus: HTTP %d: %s (%s)\n", status, e ? e : "?", c ? c : "?");
    return 1;
}

static void dump(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (s) {
        puts(s);
        free(s);
    }
}

/* GET path and show the answer: an error as an error (exit 1), --json as
 * the raw document, else through the command's table printer. */
static int show_get(const opts *o, const char *path, void (*table)(json_t *j))
{
    int status = 0;
    json_t *j = get_json(path, &status);
    if (!j)
        return 1;
    int rc = 0;
    if (status != 200)
        rc = print_error(j, status);
    else if (o->json)
        dump(j);
    else
        table(j);
    json_decref(j);
    return rc;
}

static void fmt_num(char *buf, size_t n, json_t *v)
{
    if (!v || json_is_null(v))
        snprintf(buf, n, "-");
    else if (json_is_integer(v))
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else {
        double d = json_number_value(v);
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(buf, n, "%.0f", d);
        else
            snprintf(buf, n, "%.6g", d);
    }
}

/* ---- commands --------------------------------------------------------------- */

/* ---- send --nxb ------------------------------------------------------------ */

/* Streams seen so far: canonical key + type -> client stream id (open
 * addressing, so a large stdin with many streams stays linear). */
typedef struct sid_ent {
    char *key;
    size_t len;
    int type;
    uint32_t sid;
} sid_ent;

typedef struct sid_map {
    sid_ent *e;
    size_t cap, n;
} sid_map;

static uint64_t fnv(const char *p, size_t n, int type)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)type;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int sid_get(sid_map *m, nx_client *c, int type, const char *key, size_t len, uint32_t *sid)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        sid_ent *ne = calloc(nc, sizeof(*ne));
        if (!ne)
            return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].key) {
                size_t j = fnv(m->e[i].key, m->e[i].len, m->e[i].type) & (nc - 1);
                while (ne[j].key)
                    j = (j + 1) & (nc - 1);
                ne[j] = m->e[i];
            }
        free(m->e);
        m->e = ne;
        m->cap = nc;
    }
    size_t j = fnv(key, len, type) & (m->cap - 1);
    for (; m->e[j].key; j = (j + 1) & (m->cap - 1))
        if (m->e[j].type == type && m->e[j].len == len && !memcmp(m->e[j].key, key, len)) {
            *sid = m->e[j].sid;
            return 0;
        }
    if (nx_client_stream(c, (nx_type)type, key, len, sid) != 0)
        return -1;
    m->e[j] = (sid_ent){.key = strndup(key, len), .len = len, .type = type, .sid = *sid};
    m->n++;
    return m->e[j].key ? 0 : -1;
}

/* Parses one StatsD line and adds its values; 1 added, 0 rejected. */
static int nxb_line(nx_client *c, sid_map *m, const char *line, size_t len, nx_tag *tags,
                    const nx_statsd_limits *lim, char *key, size_t key_cap)
{
    nx_statsd_line l;
    int rc = nx_statsd_parse(line, len, lim, tags, &l);
    if (rc != NX_SD_OK || l.tenant) {
        fprintf(stderr, "nexus: skipped line (%s): %.*s\n",
                rc != NX_SD_OK ? nx_statsd_reason_name(rc) : "tenant tags need --num", (int)len,
                line);
        return 0;
    }
    int kl = nx_stream_key_build(l.name, l.name_len, l.tags, l.ntags, key, key_cap);
    uint32_t sid;
    if (kl < 0 || sid_get(m, c, l.type, key, (size_t)kl, &sid) != 0)
        return 0;
    uint32_t pos = 0;
    nx_statsd_value v;
    while (nx_statsd_value_next(&l, &pos, &v)) {
        rc = l.type == NX_TYPE_SET ? nx_client_set_add(c, sid, v.member, v.member_len)
                                   : nx_client_add(c, sid, v.value, l.ts_ms, l.rate, v.delta);
        if (rc != 0)
            return 0;
    }
    return 1;
}

static int cmd_send_nxb(opts *o, int argc, char **argv)
{
    const char *addr = o->nxb_addr ? o->nxb_addr : getenv("NEXUS_NXB");
    if (!addr || !*addr)
        addr = "127.0.0.1:8126";
    char host[256];
    const char *colon = strrchr(addr, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (!colon || (size_t)(colon - addr) >= sizeof(host) || port <= 0 || port > 65535) {
        fprintf(stderr, "nexus: bad NXB address '%s' (HOST:PORT)\n", addr);
        return 2;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    nx_client_opts co = NX_CLIENT_OPTS_INIT;
    co.tenant_num = o->num ? (uint32_t)strtoul(o->num, NULL, 10) : 0;
    co.crc = 1;
    nx_client *c;
    if (nx_client_open(o->tcp ? NX_CLIENT_TCP : NX_CLIENT_UDP, host, (uint16_t)port, &co, &c)) {
        fprintf(stderr, "nexus: cannot connect to %s: %s\n", addr, strerror(errno));
        return 1;
    }
    nx_statsd_limits lim;
    nx_statsd_limits_default(&lim);
    nx_tag tags[65];
    char key[8192];
    sid_map m = {0};
    uint64_t ok = 0, bad = 0;
    if (argc > 0) {
        for (int i = 0; i < argc; i++)
            nxb_line(c, &m, argv[i], strlen(argv[i]), tags, &lim, key, sizeof(key)) ? ok++ : bad++;
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) > 0) {
            while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                n--;
            if (n)
                nxb_line(c, &m, line, (size_t)n, tags, &lim, key, sizeof(key)) ? ok++ : bad++;
        }
        free(line);
    }
    int rc = nx_client_flush(c);
    if (!rc && o->tcp)
        rc = nx_client_wait_acks(c, 10000);
    nx_client_stats st;
    nx_client_get_stats(c, &st);
    nx_client_close(c);
    for (size_t i = 0; i < m.cap; i++)
        free(m.e[i].key);
    free(m.e);
    if (o->tcp)
        printf("lines %llu, skipped %llu, batches %llu, events %llu, acked %llu, refused %llu\n",
               (unsigned long long)ok, (unsigned long long)bad,
               (unsigned long long)st.batches_sent, (unsigned long long)st.events_sent,
               (unsigned long long)st.events_acked, (unsigned long long)st.batches_refused);
    else
        printf("lines %llu, skipped %llu, batches %llu, events %llu (udp: not acknowledged)\n",
               (unsigned long long)ok, (unsigned long long)bad,
               (unsigned long long)st.batches_sent, (unsigned long long)st.events_sent);
    if (rc) {
        fprintf(stderr, "nexus: %s (last refusal status %u)\n", nx_strerror(rc), st.last_refusal);
        return 1;
    }
    return bad ? 1 : 0;
}

static int cmd_send(opts *o, int argc, char **argv)
{
    if (o->nxb)
        return cmd_send_nxb(o, argc, argv);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f)
        return 1;
    if (argc > 0) {
        for (int i = 0; i < argc; i++)
            fprintf(f, "%s\n", argv[i]);
    } else {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
            fwrite(buf, 1, n, f);
    }
    fclose(f);
    char path[512] = "/v1/ingest";
    if (o->tenant)
        append_enc(path, sizeof(path), "tenant", o->tenant);
    int status = 0;
    json_t *j = call_json("POST", path, body, len, &status);
    free(body);
    if (!j)
        return 1;
    if (status != 200) {
        int rc = print_error(j, status);
        json_decref(j);
        return rc;
    }
    if (o->json) {
        dump(j);
    } else {
        printf("accepted %lld, rejected %lld", (long long)json_integer_value(json_object_get(j, "accepted")),
               (long long)json_integer_value(json_object_get(j, "rejected")));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(j, "errors"), k, v)
            printf(" %s=%lld", k, (long long)json_integer_value(v));
        printf("\n");
    }
    json_decref(j);
    return 0;
}

static void query_table(json_t *j)
{
    printf("%s", json_string_value(json_object_get(j, "metric")));
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(json_object_get(j, "tags"), k, v) {
        printf("%s%s:%s", first ? " {" : ",", k, json_string_value(v));
        first = 0;
    }
    printf("%s  (%s, tenant %s, window %s)\n", first ? "" : "}",
           json_string_value(json_object_get(j, "type")),
           json_string_value(json_object_get(j, "tenant")),
           json_string_value(json_object_get(j, "window")));
    static const char *const fields[] = {"count", "sum", "min", "max", "mean", "stddev",
                                         "rate", "last", "distinct", "alpha"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *val = json_object_get(j, fields[i]);
        if (!val)
            continue;
        char b[64];
        fmt_num(b, sizeof(b), val);
        printf("  %-10s %s\n", fields[i], b);
    }
    json_object_foreach(json_object_get(j, "quantiles"), k, v) {
        char b[64], name[40];
        fmt_num(b, sizeof(b), v);
        snprintf(name, sizeof(name), "p%g", atof(k) * 100);
        printf("  %-10s %s\n", name, b);
    }
    size_t i;
    json_array_foreach(json_object_get(j, "top"), i, v) {
        char b[64];
        fmt_num(b, sizeof(b), json_object_get(v, "count"));
        printf("  top%-7zu %s (%s)\n", i + 1, json_string_value(json_object_get(v, "member")), b);
    }
    json_object_foreach(json_object_get(j, "udfs"), k, v) {
        char *u = json_dumps(v, JSON_COMPACT);
        printf("  udf %-6s %s\n", k, u ? u : "?");
        free(u);
    }
}

static int cmd_query(opts *o, const char *metric)
{
    char path[8192] = "/v1/summary";
    append_enc(path, sizeof(path), "metric", metric);
    if (o->tags)
        append_enc(path, sizeof(path), "tags", o->tags);
    append_enc(path, sizeof(path), "window", o->window ? o->window : "1m");
    if (o->q)
        append_enc(path, sizeof(path), "q", o->q);
    if (o->tenant)
        append_enc(path, sizeof(path), "tenant", o->tenant);
    return show_get(o, path, query_table);
}

static void streams_table(json_t *j)
{
    size_t i;
    json_t *v;
    printf("%-14s %s\n", "TYPE", "STREAM");
    json_array_foreach(json_object_get(j, "streams"), i, v)
        printf("%-14s %s\n", json_string_value(json_object_get(v, "type")),
               json_string_value(json_object_get(v, "key")));
    printf("%lld streams\n", (long long)json_integer_value(json_object_get(j, "count")));
}

static int cmd_streams(opts *o)
{
    char path[4096] = "/v1/streams";
    if (o->prefix)
        append_enc(path, sizeof(path), "prefix", o->prefix);
    if (o->tenant)
        append_enc(path, sizeof(path), "tenant", o->tenant);
    return show_get(o, path, streams_table);
}

static void stats_table(json_t *j)
{
    json_t *t = json_object_get(j, "totals");
    char b[64];
    printf("uptime %.0fs, %lld shards, rss %.1f MiB, %lld SSE subscribers\n",
           json_number_value(json_object_get(j, "uptime_s")),
           (long long)json_integer_value(json_object_get(j, "shards")),
           (double)json_integer_value(json_object_get(j, "rss_bytes")) / 1048576.0,
           (long long)json_integer_value(json_object_get(j, "subscribers")));
    static const char *const f[] = {"datagrams", "lines", "events", "rejected", "kernel_drops",
                                    "streams", "summary_bytes"};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        fmt_num(b, sizeof(b), json_object_get(t, f[i]));
        printf("  %-14s %s\n", f[i], b);
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(t, "rejected_by_reason"), k, v)
        printf("  rejected:%-16s %lld\n", k, (long long)json_integer_value(v));
    /* answer times per route: bucket upper bounds (docs/api.md) */
    json_t *http = json_object_get(j, "http");
    if (json_object_size(http))
        printf("  %-10s %10s %10s %10s %10s\n", "http", "requests", "p50 <=", "p99 <=", "p99.9 <=");
    json_object_foreach(http, k, v) {
        char q[3][24];
        static const char *const qn[] = {"p50_us_le", "p99_us_le", "p999_us_le"};
        for (int i = 0; i < 3; i++) {
            json_t *x = json_object_get(v, qn[i]);
            if (json_is_integer(x) && json_integer_value(x) >= 1000)
                snprintf(q[i], sizeof(q[i]), "%.4g ms", (double)json_integer_value(x) / 1000.0);
            else if (json_is_integer(x))
                snprintf(q[i], sizeof(q[i]), "%lld us", (long long)json_integer_value(x));
            else
                snprintf(q[i], sizeof(q[i]), "> 10 s");
        }
        printf("  %-10s %10lld %10s %10s %10s\n", k,
               (long long)json_integer_value(json_object_get(v, "requests")), q[0], q[1], q[2]);
    }
}

static int cmd_stats(opts *o)
{
    return show_get(o, "/v1/stats", stats_table);
}

static int top_frame(opts *o, int clear)
{
    char path[512] = "/v1/streams";
    char nbuf[16];
    snprintf(nbuf, sizeof(nbuf), "%d", o->n);
    append_enc(path, sizeof(path), "top", nbuf);
    append_enc(path, sizeof(path), "window", o->window ? o->window : "10s");
    if (o->tenant)
        append_enc(path, sizeof(path), "tenant", o->tenant);
    int status = 0;
    json_t *j = get_json(path, &status);
    if (!j)
        return 1;
    if (status != 200) {
        int rc = print_error(j, status);
        json_decref(j);
        return rc;
    }
    if (clear)
        printf("\033[H\033[2J");
    time_t now = time(NULL);
    char ts[32];
    strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&now));
    printf("nexus top — tenant %s, %lld streams, window %s, %s\n\n",
           json_string_value(json_object_get(j, "tenant")),
           (long long)json_integer_value(json_object_get(j, "count")),
           json_string_value(json_object_get(j, "window")), ts);
    printf("%12s %12s %-13s %s\n", "RATE/s", "COUNT", "TYPE", "STREAM");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "streams"), i, v) {
        char r[64], c[64];
        fmt_num(r, sizeof(r), json_object_get(v, "rate"));
        fmt_num(c, sizeof(c), json_object_get(v, "count"));
        printf("%12s %12s %-13s %s\n", r, c, json_string_value(json_object_get(v, "type")),
               json_string_value(json_object_get(v, "key")));
    }
    fflush(stdout);
    json_decref(j);
    return 0;
}

static int cmd_top(opts *o)
{
    if (o->once)
        return top_frame(o, 0);
    for (;;) {
        if (top_frame(o, 1))
            return 1;
        struct timespec ts = {.tv_sec = (time_t)o->interval,
                              .tv_nsec = (long)((o->interval - (double)(time_t)o->interval) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int cmd_health(void)
{
    int status = 0;
    json_t *j = get_json("/v1/health", &status);
    if (!j)
        return 1;
    dump(j);
    json_decref(j);
    return status == 200 ? 0 : 1;
}

static int cmd_admin_snapshot(opts *o)
{
    int status = 0;
    json_t *j = call_json("POST", "/v1/admin/snapshot", "", 0, &status);
    if (!j)
        return 1;
    int rc = 0;
    if (status != 200) {
        rc = print_error(j, status);
    } else if (o->json) {
        dump(j);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(j, "shards"), i, v)
            printf("shard %lld: snapshot at lsn %lld\n",
                   (long long)json_integer_value(json_object_get(v, "shard")),
                   (long long)json_integer_value(json_object_get(v, "lsn")));
        printf("done in %lld ms\n", (long long)json_integer_value(json_object_get(j, "ms")));
    }
    json_decref(j);
    return rc;
}

/* Offline and read-only: safe while nexusd runs (it may then report a torn
 * tail that is only a write in progress). */
static int cmd_admin_verify(const char *dir)
{
    nx_store_verify_report rep;
    int rc = nx_store_verify(dir, &rep, stdout);
    return rc == 0 ? 0 : 1;
}

/* One request; prints the JSON answer (or a table for `udf list`). */
static int udf_call(opts *o, const char *method, const char *path0, const char *body,
                    size_t blen, int list)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", path0);
    if (o->tenant)
        append_enc(path, sizeof(path), "tenant", o->tenant);
    int status = 0;
    json_t *j = call_json(method, path, body, blen, &status);
    if (!j)
        return 1;
    int rc = 0;
    if (status >= 300) {
        rc = print_error(j, status);
    } else if (list && !o->json) {
        size_t i, k;
        json_t *v, *b;
        printf("%-24s %-10s %-16s %s\n", "NAME", "STATUS", "HASH", "BINDINGS / ERROR");
        json_array_foreach(json_object_get(j, "udfs"), i, v) {
            printf("%-24s %-10s %-16s", json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "status")),
                   json_string_value(json_object_get(v, "hash")));
            if (json_object_get(v, "error"))
                printf(" %s", json_string_value(json_object_get(v, "error")));
            json_array_foreach(json_object_get(v, "bindings"), k, b) {
                json_t *m = json_object_get(b, "metric");
                printf(" %s=%s[%s]", m ? "metric" : "prefix",
                       json_string_value(m ? m : json_object_get(b, "prefix")),
                       json_string_value(json_object_get(b, "status")));
                if (json_object_get(b, "error"))
                    printf(" (%s)", json_string_value(json_object_get(b, "error")));
            }
            printf("\n");
        }
    } else {
        dump(j);
    }
    json_decref(j);
    return rc;
}

static int cmd_udf(opts *o, int argc, char **argv)
{
    char path[512];
    if (argc == 1 && !strcmp(argv[0], "list"))
        return udf_call(o, "GET", "/v1/udfs", "", 0, 1);
    if (argc < 2 || strlen(argv[1]) > 64) {
        usage();
        return 2;
    }
    snprintf(path, sizeof(path), "/v1/udfs/%s", argv[1]);
    if (argc == 2 && !strcmp(argv[0], "delete"))
        return udf_call(o, "DELETE", path, "", 0, 0);
    if (argc == 3 && !strcmp(argv[0], "put")) {
        char *buf;
        size_t n;
        if (nx_read_file(argv[2], 64u << 20, &buf, &n) != 0) {
            fprintf(stderr, "nexus: %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        int rc = udf_call(o, "PUT", path, buf, n, 0);
        free(buf);
        return rc;
    }
    if (argc == 2 && !strcmp(argv[0], "bind") && (!o->metric) != (!o->prefix)) {
        strncat(path, "/bind", sizeof(path) - strlen(path) - 1);
        json_t *b = json_pack("{s:s,s:s,s:s}", o->metric ? "metric" : "prefix",
                              o->metric ? o->metric : o->prefix, "window",
                              o->window ? o->window : "all", "params",
                              o->params ? o->params : "");
        char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
        json_decref(b);
        if (!s)
            return 1;
        int rc = udf_call(o, "POST", path, s, strlen(s), 0);
        free(s);
        return rc;
    }
    usage();
    return 2;
}

/* ---- tenant administration (admin token) --------------------------------- */

/*
 * nexus tenant create ID [--events-per-s N] [--burst N] [--max-streams N]
 *                        [--max-bytes N] [--http-per-s N]
 * nexus tenant list | get ID | delete ID | rotate-token ID
 * nexus tenant quotas ID [--events-per-s N ...]
 * The admin token comes from NEXUS_ADMIN_TOKEN, else NEXUS_TOKEN (never
 * from the command line: argv is visible to every user in ps).
 */
static int tenant_usage(void)
{
    fprintf(stderr,
            "usage: nexus tenant create ID [--events-per-s N] [--burst N] [--max-streams N]\n"
            "                              [--max-bytes N] [--http-per-s N]\n"
            "       nexus tenant list | get ID | delete ID | rotate-token ID\n"
            "       nexus tenant quotas ID [--events-per-s N ...]\n"
            "admin token from env NEXUS_ADMIN_TOKEN (else NEXUS_TOKEN)\n");
    return 2;
}

static int tenant_call(const char *method, const char *path, json_t *body, int as_json)
{
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int status = 0;
    json_t *j = call_json(method, path, b ? b : "", b ? strlen(b) : 0, &status);
    free(b);
    if (!j)
        return 1;
    if (status >= 300) {
        int rc = print_error(j, status);
        json_decref(j);
        return rc;
    }
    json_t *list = json_object_get(j, "tenants");
    if (!as_json && json_is_array(list)) {
        size_t i;
        json_t *t;
        printf("%-24s %8s %12s %12s %14s\n", "ID", "NUM", "EVENTS/S", "MAX_STREAMS", "MAX_BYTES");
        json_array_foreach(list, i, t) {
            json_t *q = json_object_get(t, "quotas");
            printf("%-24s %8lld %12lld %12lld %14lld\n", json_string_value(json_object_get(t, "id")),
                   (long long)json_integer_value(json_object_get(t, "num")),
                   (long long)json_integer_value(json_object_get(q, "events_per_s")),
                   (long long)json_integer_value(json_object_get(q, "max_streams")),
                   (long long)json_integer_value(json_object_get(q, "max_bytes")));
        }
    } else if (!as_json && json_object_get(j, "token")) {
        printf("tenant %s (num %lld)\ntoken %s\n", json_string_value(json_object_get(j, "id")),
               (long long)json_integer_value(json_object_get(j, "num")),
               json_string_value(json_object_get(j, "token")));
        fprintf(stderr, "(the token is shown once: store it now)\n");
    } else if (!as_json && json_object_get(j, "deleted")) {
        printf("deleted %s\n", json_string_value(json_object_get(j, "deleted")));
    } else {
        dump(j);
    }
    json_decref(j);
    return 0;
}

static int cmd_tenant(int argc, char **argv)
{
    const char *adm = getenv("NEXUS_ADMIN_TOKEN");
    if (adm && *adm)
        setenv("NEXUS_TOKEN", adm, 1); /* http() sends NEXUS_TOKEN */
    if (argc < 1)
        return tenant_usage();
    const char *sub = argv[0];
    const char *id = NULL;
    int as_json = 0;
    json_t *q = json_object();
    for (int i = 1; i < argc; i++) {
        static const char *const keys[][2] = {
            {"--events-per-s", "events_per_s"}, {"--burst", "burst"},
            {"--max-streams", "max_streams"},   {"--max-bytes", "max_bytes"},
            {"--http-per-s", "http_requests_per_s"},
        };
        int hit = 0;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            if (!strcmp(argv[i], keys[k][0])) {
                char *end;
                if (i + 1 >= argc)
                    break;
                long long v = strtoll(argv[i + 1], &end, 10);
                if (*end || v < 0)
                    break;
                json_object_set_new(q, keys[k][1], json_integer(v));
                i++;
                hit = 1;
            }
        if (hit)
            continue;
        if (!strcmp(argv[i], "--json"))
            as_json = 1;
        else if (!id && argv[i][0] != '-')
            id = argv[i];
        else {
            json_decref(q);
            return tenant_usage();
        }
    }
    char path[512] = "/v1/tenants";
    if (id) {
        size_t o = strlen(path);
        snprintf(path + o, sizeof(path) - o, "/");
        append_enc(path, sizeof(path), "", id); /* "?=" + id: fix up below */
        char *qm = strstr(path, "?=");
        if (qm)
            memmove(qm, qm + 2, strlen(qm + 2) + 1);
    }
    if (!strcmp(sub, "list") && !id) {
        json_decref(q);
        return tenant_call("GET", "/v1/tenants", NULL, as_json);
    }
    if (!id) {
        json_decref(q);
        return tenant_usage();
    }
    if (!strcmp(sub, "create")) {
        json_t *b = json_pack("{s:s}", "id", id);
        if (json_object_size(q))
            json_object_set(b, "quotas", q);
        json_decref(q);
        return tenant_call("POST", "/v1/tenants", b, as_json);
    }
    if (!strcmp(sub, "quotas")) {
        char p2[600];
        snprintf(p2, sizeof(p2), "%s/quotas", path);
        return tenant_call("PUT", p2, q, as_json);
    }
    json_decref(q);
    if (!strcmp(sub, "get"))
        return tenant_call("GET", path, NULL, as_json);
    if (!strcmp(sub, "delete"))
        return tenant_call("DELETE", path, NULL, as_json);
    if (!strcmp(sub, "rotate-token")) {
        char p2[600];
        snprintf(p2, sizeof(p2), "%s/rotate", path);
        return tenant_call("POST", p2, NULL, as_json);
    }
    return tenant_usage();
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "tenant"))
        return cmd_tenant(argc - 2, argv + 2);
    opts o = {.n = 20, .interval = 1.0};
    char *pos[256];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--once")) o.once = 1;
        else if (!strcmp(a, "--nxb")) o.nxb = 1;
        else if (!strcmp(a, "--tcp")) o.tcp = 1;
        else if (!strcmp(a, "--num")) dst = &o.num;
        else if (!strcmp(a, "--nxb-addr")) dst = &o.nxb_addr;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else if (!strcmp(a, "--tenant")) dst = &o.tenant;
        else if (!strcmp(a, "--tags")) dst = &o.tags;
        else if (!strcmp(a, "--window")) dst = &o.window;
        else if (!strcmp(a, "--q")) dst = &o.q;
        else if (!strcmp(a, "--prefix")) dst = &o.prefix;
        else if (!strcmp(a, "--metric")) dst = &o.metric;
        else if (!strcmp(a, "--params")) dst = &o.params;
        else if (!strcmp(a, "--n") || !strcmp(a, "--interval")) {
            if (i + 1 >= argc) { usage(); return 2; }
            if (a[2] == 'n') o.n = atoi(argv[++i]);
            else o.interval = atof(argv[++i]);
            if (o.n <= 0 || !(o.interval > 0)) { usage(); return 2; }
        } else if (npos < 256) pos[npos++] = argv[i];
        if (dst) {
            if (i + 1 >= argc) { usage(); return 2; }
            *dst = argv[++i];
        }
    }
    if (npos == 0) {
        usage();
        return 2;
    }
    const char *cmd = pos[0];
    if (!strcmp(cmd, "send")) return cmd_send(&o, npos - 1, pos + 1);
    if (!strcmp(cmd, "query")) {
        if (npos != 2) { usage(); return 2; }
        return cmd_query(&o, pos[1]);
    }
    if (!strcmp(cmd, "streams")) return cmd_streams(&o);
    if (!strcmp(cmd, "stats")) return cmd_stats(&o);
    if (!strcmp(cmd, "top")) return cmd_top(&o);
    if (!strcmp(cmd, "health")) return cmd_health();
    if (!strcmp(cmd, "udf")) return cmd_udf(&o, npos - 1, pos + 1);
    if (!strcmp(cmd, "admin") && npos == 2 && !strcmp(pos[1], "snapshot"))
        return cmd_admin_snapshot(&o);
    if (!strcmp(cmd, "admin") && npos == 3 && !strcmp(pos[1], "verify"))
        return cmd_admin_verify(pos[2]);
    usage();
    return 2;
}
