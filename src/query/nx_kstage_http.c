/*
 * nx_kstage_http.c — stats, metrics and the quota endpoint of the kernel
 * stage (see nx_kstage_http.h).
 *
 * Tenants listed: number 0 (the default tenant), every --nxb-tenant
 * mapping and every tenant with a quota. The kernel's per-tenant counters
 * are read per listed tenant (nx_steer_tenant_counters: one map lookup
 * each, summed over CPUs); a tenant the kernel never saw reads as zeros.
 */
#include "query/nx_kstage_http.h"
#include "server/nx_kstage.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define L(p, f) ((json_int_t)atomic_load_explicit(&(p)->f, memory_order_relaxed))

json_t *nx_shard_nxb_json(const nx_shard_stats *st)
{
    json_t *rej = json_object();
    for (int r = 1; r < NX_NXB_NREJECT; r++) {
        json_int_t v = L(st, nxb_rejected[r]);
        if (v)
            json_object_set_new(rej, nx_nxb_reject_name(r), json_integer(v));
    }
    return json_pack("{s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "datagrams",
                     L(st, nxb_datagrams), "batches", L(st, nxb_batches), "events",
                     L(st, nxb_events), "rejected_by_reason", rej, "quota_dropped_batches",
                     L(st, nxb_quota_dropped), "quota_dropped_events",
                     L(st, nxb_quota_dropped_events), "recv_calls", L(st, nxb_recv_calls),
                     "kernel_drops", L(st, kernel_drops_nxb), "tcp_connections",
                     L(st, nxb_tcp_conns), "tcp_accepted", L(st, nxb_tcp_accepted),
                     "tcp_desync_closed", L(st, nxb_tcp_desync), "acks", L(st, nxb_acks));
}

static json_t *counters_json(const nx_steer_counters *c)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "accepted_pkts", (json_int_t)c->accepted_pkts,
                     "accepted_events", (json_int_t)c->accepted_events, "accepted_bytes",
                     (json_int_t)c->accepted_bytes, "dropped_pkts", (json_int_t)c->dropped_pkts,
                     "dropped_events", (json_int_t)c->dropped_events, "dropped_bytes",
                     (json_int_t)c->dropped_bytes);
}

/* The tenant numbers to report, sorted, without duplicates. */
static int tenant_nums(nx_server *srv, uint32_t *out, int max, nx_kstage_quota *q, int *nq)
{
    const nx_config *cfg = nx_server_config(srv);
    *nq = nx_kstage_quotas(nx_server_kstage(srv), q, NX_KSTAGE_MAX_QUOTAS);
    int n = 0;
    out[n++] = 0;
    for (uint32_t i = 0; i < cfg->nxb_ntenants && n < max; i++)
        out[n++] = cfg->nxb_tenants[i].num;
    for (int i = 0; i < *nq && n < max; i++)
        out[n++] = q[i].num;
    for (int i = 1; i < n; i++) /* insertion sort: tens of entries */
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            uint32_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    int w = 0;
    for (int i = 0; i < n; i++)
        if (!w || out[w - 1] != out[i])
            out[w++] = out[i];
    return w;
}

static const nx_kstage_quota *quota_of(const nx_kstage_quota *q, int nq, uint32_t num)
{
    for (int i = 0; i < nq; i++)
        if (q[i].num == num && q[i].rate)
            return &q[i];
    return NULL;
}

static const char *tenant_id(const nx_config *cfg, uint32_t num)
{
    const nx_nxb_tenant_cfg *t = nx_config_nxb_tenant(cfg, num);
    if (t && t->id[0])
        return t->id;
    return num == 0 ? cfg->default_tenant : NULL;
}

#define MAX_LISTED (NX_KSTAGE_MAX_QUOTAS + NX_NXB_TENANTS_MAX + 1)

json_t *nx_kstage_stats_json(nx_server *srv)
{
    nx_kstage *ks = nx_server_kstage(srv);
    const nx_config *cfg = nx_server_config(srv);
    json_t *root = json_object();
    static const char *const gname[] = {"statsd", "nxb"};
    nx_kstage_quota *q = malloc(sizeof(*q) * NX_KSTAGE_MAX_QUOTAS);
    uint32_t *nums = malloc(sizeof(*nums) * MAX_LISTED);
    if (!q || !nums) {
        free(q);
        free(nums);
        return root;
    }
    int nq = 0, nn = tenant_nums(srv, nums, MAX_LISTED, q, &nq);
    for (int g = 0; g < NX_KS_NGROUPS; g++) {
        const nx_steer *s = nx_kstage_steer(ks, (nx_kstage_group)g);
        json_t *o = json_pack("{s:s,s:s}", "mode", nx_kstage_mode_name(ks, (nx_kstage_group)g),
                              "detail", s ? nx_steer_describe(s) : "listener off");
        nx_steer_global gl;
        if (s && nx_steer_global_counters(s, &gl) == 0)
            json_object_set_new(o, "global",
                                json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "nxb_pkts",
                                          (json_int_t)gl.nxb_pkts, "text_tenant_pkts",
                                          (json_int_t)gl.text_tenant_pkts, "other_pkts",
                                          (json_int_t)gl.other_pkts, "select_errors",
                                          (json_int_t)gl.select_err, "stats_full",
                                          (json_int_t)gl.stats_full, "dropped_pkts",
                                          (json_int_t)gl.dropped_pkts));
        if (g == NX_KS_NXB) {
            json_t *tens = json_array();
            for (int i = 0; i < nn; i++) {
                const nx_kstage_quota *qq = quota_of(q, nq, nums[i]);
                const char *id = tenant_id(cfg, nums[i]);
                json_t *t = json_pack("{s:I,s:o,s:o}", "num", (json_int_t)nums[i], "tenant",
                                      id ? json_string(id) : json_null(), "quota",
                                      qq ? json_pack("{s:I,s:I}", "rate", (json_int_t)qq->rate,
                                                     "burst", (json_int_t)qq->burst)
                                         : json_null());
                int sh = s ? nx_steer_shard_of(s, nums[i]) : -1;
                json_object_set_new(t, "shard", sh >= 0 ? json_integer(sh) : json_null());
                nx_steer_counters c;
                if (s && nx_steer_tenant_counters(s, nums[i], &c) == 0)
                    json_object_set_new(t, "kernel", counters_json(&c));
                json_array_append_new(tens, t);
            }
            json_object_set_new(o, "tenants", tens);
            json_t *shs = json_array();
            for (int i = 0; s && i < nx_server_nshards(srv); i++) {
                nx_steer_counters c;
                if (nx_steer_shard_counters(s, (uint32_t)i, &c) == 0) {
                    json_t *x = counters_json(&c);
                    json_object_set_new(x, "shard", json_integer(i));
                    json_array_append_new(shs, x);
                }
            }
            json_object_set_new(o, "shards", shs);
        }
        json_object_set_new(root, gname[g], o);
    }
    free(q);
    free(nums);
    return root;
}

void nx_kstage_prom(FILE *f, nx_server *srv)
{
    nx_kstage *ks = nx_server_kstage(srv);
    int n = nx_server_nshards(srv);
#define FAM(name, type, help) fprintf(f, "# HELP " name " " help "\n# TYPE " name " " type "\n")
#define SHARD_FIELD(name, field)                                                                 \
    for (int i = 0; i < n; i++)                                                                  \
        fprintf(f, name "{shard=\"%d\"} %lld\n", i,                                              \
                (long long)L(nx_shard_get_stats(nx_server_shard(srv, i)), field))
    FAM("nexusd_nxb_batches_total", "counter", "NXB batches applied.");
    SHARD_FIELD("nexusd_nxb_batches_total", nxb_batches);
    FAM("nexusd_nxb_events_total", "counter", "NXB events applied.");
    SHARD_FIELD("nexusd_nxb_events_total", nxb_events);
    FAM("nexusd_nxb_rejected_total", "counter", "NXB batches rejected whole, by reason.");
    for (int i = 0; i < n; i++) {
        const nx_shard_stats *st = nx_shard_get_stats(nx_server_shard(srv, i));
        for (int r = 1; r < NX_NXB_NREJECT; r++)
            fprintf(f, "nexusd_nxb_rejected_total{shard=\"%d\",reason=\"%s\"} %lld\n", i,
                    nx_nxb_reject_name(r), (long long)L(st, nxb_rejected[r]));
    }
    FAM("nexusd_nxb_quota_dropped_total", "counter", "NXB batches dropped by a user-space quota.");
    SHARD_FIELD("nexusd_nxb_quota_dropped_total", nxb_quota_dropped);
    FAM("nexusd_recv_calls_total", "counter", "recvmmsg calls, by socket group.");
    for (int i = 0; i < n; i++) {
        const nx_shard_stats *st = nx_shard_get_stats(nx_server_shard(srv, i));
        fprintf(f, "nexusd_recv_calls_total{shard=\"%d\",group=\"statsd\"} %lld\n", i,
                (long long)L(st, recv_calls));
        fprintf(f, "nexusd_recv_calls_total{shard=\"%d\",group=\"nxb\"} %lld\n", i,
                (long long)L(st, nxb_recv_calls));
    }
    FAM("nexusd_nxb_tcp_connections", "gauge", "Open NXB TCP connections.");
    SHARD_FIELD("nexusd_nxb_tcp_connections", nxb_tcp_conns);
    FAM("nexusd_steer_mode", "gauge", "Kernel steering mode of a UDP group (1 = active).");
    fprintf(f, "nexusd_steer_mode{group=\"statsd\",mode=\"%s\"} 1\n",
            nx_kstage_mode_name(ks, NX_KS_STATSD));
    fprintf(f, "nexusd_steer_mode{group=\"nxb\",mode=\"%s\"} 1\n", nx_kstage_mode_name(ks, NX_KS_NXB));
    const nx_steer *s = nx_kstage_steer(ks, NX_KS_NXB);
    if (s && nx_steer_mode_of(s) == NX_STEER_EBPF) {
        nx_kstage_quota *q = malloc(sizeof(*q) * NX_KSTAGE_MAX_QUOTAS);
        uint32_t *nums = malloc(sizeof(*nums) * MAX_LISTED);
        int nq = 0, nn = q && nums ? tenant_nums(srv, nums, MAX_LISTED, q, &nq) : 0;
        static const char *const what[] = {"accepted", "dropped"};
        FAM("nexusd_steer_tenant_packets_total", "counter",
            "NXB datagrams the kernel stage accepted or dropped over quota, per tenant number.");
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < nn; i++) {
                nx_steer_counters c;
                if (nx_steer_tenant_counters(s, nums[i], &c) == 0)
                    fprintf(f, "nexusd_steer_tenant_packets_total{num=\"%u\",result=\"%s\"} %llu\n",
                            nums[i], what[k],
                            (unsigned long long)(k ? c.dropped_pkts : c.accepted_pkts));
            }
        FAM("nexusd_steer_tenant_events_total", "counter",
            "NXB events the kernel stage accepted or dropped over quota, per tenant number.");
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < nn; i++) {
                nx_steer_counters c;
                if (nx_steer_tenant_counters(s, nums[i], &c) == 0)
                    fprintf(f, "nexusd_steer_tenant_events_total{num=\"%u\",result=\"%s\"} %llu\n",
                            nums[i], what[k],
                            (unsigned long long)(k ? c.dropped_events : c.accepted_events));
            }
        FAM("nexusd_steer_shard_packets_total", "counter",
            "NXB datagrams the kernel stage steered to a shard or dropped, per shard.");
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < n; i++) {
                nx_steer_counters c;
                if (nx_steer_shard_counters(s, (uint32_t)i, &c) == 0)
                    fprintf(f, "nexusd_steer_shard_packets_total{shard=\"%d\",result=\"%s\"} %llu\n",
                            i, what[k], (unsigned long long)(k ? c.dropped_pkts : c.accepted_pkts));
            }
        free(q);
        free(nums);
    }
#undef FAM
#undef SHARD_FIELD
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

/* Admin check until the registry's admin tokens are wired: with
 * --admin-token-file the request must carry "Authorization: Bearer <the
 * file's first line>"; without it nexusd is in open (loopback) mode. */
static int admin_ok(const nx_config *cfg, struct MHD_Connection *c)
{
    if (!cfg->admin_token_file[0])
        return 1;
    FILE *f = fopen(cfg->admin_token_file, "r");
    char tok[512] = "";
    if (!f)
        return 0;
    if (!fgets(tok, sizeof(tok), f))
        tok[0] = 0;
    fclose(f);
    tok[strcspn(tok, "\r\n")] = 0;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!tok[0] || !h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(tok);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned char)tok[i] ^ (unsigned char)(i < a ? h[i] : 0);
    return diff == 0;
}

json_t *nx_kstage_quota_put(nx_server *srv, struct MHD_Connection *c, unsigned *status)
{
    if (!admin_ok(nx_server_config(srv), c)) {
        *status = 401;
        return json_pack("{s:s,s:s}", "error", "admin token required", "code", "unauthorized");
    }
    const char *snum = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "num");
    const char *srate = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "rate");
    const char *sburst = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "burst");
    uint64_t num, rate, burst = 0;
    if (parse_u64(snum, UINT32_MAX, &num) || parse_u64(srate, 1000000000ull, &rate) ||
        (sburst && parse_u64(sburst, 1000000000ull, &burst))) {
        *status = 400;
        return json_pack("{s:s,s:s}", "error",
                         "expected num (u32), rate (events/s, 0 removes) and optional burst",
                         "code", "bad_request");
    }
    nx_kstage *ks = nx_server_kstage(srv);
    int rc = nx_kstage_set_quota(ks, (uint32_t)num, rate, burst);
    if (rc) {
        *status = rc == NX_ETOOBIG ? 507 : 400;
        return json_pack("{s:s,s:s}", "error", nx_strerror(rc), "code", nx_errname(rc));
    }
    const nx_steer *s = nx_kstage_steer(ks, NX_KS_NXB);
    *status = 200;
    return json_pack("{s:I,s:I,s:I,s:s}", "num", (json_int_t)num, "rate", (json_int_t)rate,
                     "burst", (json_int_t)(burst ? burst : rate), "enforced",
                     s && nx_steer_mode_of(s) == NX_STEER_EBPF ? "kernel" : "user");
}
