/*
 * nx_steer.c — loads and drives the kernel stage (see nx_steer.h for the
 * modes and bpf/nx_steer.bpf.c for the eBPF program).
 *
 * eBPF: the object is embedded in the bpftool skeleton (build/.../gen/
 * nx_steer.skel.h), so there is no file to find at run time. The shard
 * count is a read-only global patched before load (the verifier then sees
 * a constant); sockets go into the REUSEPORT_SOCKARRAY by shard index; the
 * program is attached to the group with SO_ATTACH_REUSEPORT_EBPF on any of
 * its sockets.
 *
 * cBPF fallback: classic BPF cannot read little-endian words, so the
 * program assembles tenant_num from its four bytes:
 *
 *     ld   len              ; payload length (kernel pulled the UDP header)
 *     jge  #16, 1f, hash    ; shorter than magic..event_count: not NXB
 *  1: ld   [0]              ; magic, loaded big-endian: A7 4E 58 42
 *     jeq  #0xA74E5842, 2f, hash
 *  2: ldb  [11]; lsh #8; tax; ldb [10]; or x; lsh #8; tax
 *     ldb  [9];  or x; lsh #8; tax; ldb [8]; or x   ; A = tenant_num (LE)
 *     mod  #n; ret a        ; index into the group = shard
 *  hash: ret #0xffffffff    ; index >= n: the kernel falls back to its hash
 *
 * Quota config is eBPF-only: classic BPF has no maps or clock.
 */
#include "ingest/nx_steer.h"

#include <assert.h>
#include <errno.h>
#include <linux/filter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../bpf/nx_steer_abi.h"
#include "nx_steer.skel.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

_Static_assert(NX_STEER_MAX_SHARDS == NX_STEER_MAX_SHARDS_API, "shard limit mismatch");
_Static_assert(sizeof(nx_steer_counters) == sizeof(struct nx_steer_ctr), "counter layout");

struct nx_steer {
    nx_steer_mode mode;
    uint32_t n;
    int fd0;                  /* a socket of the group (for detach) */
    struct nx_steer_bpf *skel;/* eBPF mode */
    int ncpus;
    char desc[192];
};

const char *nx_steer_mode_name(nx_steer_mode m)
{
    switch (m) {
    case NX_STEER_EBPF: return "ebpf";
    case NX_STEER_CBPF: return "cbpf";
    case NX_STEER_PLAIN: return "plain";
    default: return "auto";
    }
}

static int steer_try_ebpf(nx_steer *s, const int *fds, char *err, size_t errsz)
{
    struct nx_steer_bpf *skel = nx_steer_bpf__open();
    if (!skel) {
        snprintf(err, errsz, "open: %s", strerror(errno));
        return -1;
    }
    skel->rodata->nshards = s->n;
    int rc = nx_steer_bpf__load(skel);
    if (rc) {
        snprintf(err, errsz, "load: %s", strerror(rc < 0 ? -rc : errno));
        nx_steer_bpf__destroy(skel);
        return -1;
    }
    int mfd = bpf_map__fd(skel->maps.nx_socks);
    for (uint32_t i = 0; i < s->n; i++) {
        uint64_t fd = (uint64_t)fds[i];
        if (bpf_map_update_elem(mfd, &i, &fd, BPF_ANY)) {
            snprintf(err, errsz, "sockarray[%u]: %s", i, strerror(errno));
            nx_steer_bpf__destroy(skel);
            return -1;
        }
    }
    int pfd = bpf_program__fd(skel->progs.nx_steer);
    if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &pfd, sizeof(pfd))) {
        snprintf(err, errsz, "SO_ATTACH_REUSEPORT_EBPF: %s", strerror(errno));
        nx_steer_bpf__destroy(skel);
        return -1;
    }
    int nc = libbpf_num_possible_cpus();
    s->ncpus = nc > 0 ? nc : 1;
    s->skel = skel;
    return 0;
}

static int steer_try_cbpf(nx_steer *s, const int *fds, char *err, size_t errsz)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 16, 0, 17),               /* -> hash */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xA74E5842u, 0, 15),      /* -> hash */
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 11),
        BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 8),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 10),
        BPF_STMT(BPF_ALU | BPF_OR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 8),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
        BPF_STMT(BPF_ALU | BPF_OR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 8),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
        BPF_STMT(BPF_ALU | BPF_OR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, s->n),
        BPF_STMT(BPF_RET | BPF_A, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),                       /* hash */
    };
    _Static_assert(sizeof(code) / sizeof(code[0]) == 20, "jump offsets assume 20 insns");
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog))) {
        snprintf(err, errsz, "SO_ATTACH_REUSEPORT_CBPF: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int nx_steer_attach(const int *fds, uint32_t n, nx_steer_mode want, nx_steer **out)
{
    if (!fds || !out || n == 0 || n > NX_STEER_MAX_SHARDS || want > NX_STEER_PLAIN)
        return NX_EINVAL;
    nx_steer *s = calloc(1, sizeof(*s));
    if (!s)
        return NX_ENOMEM;
    s->n = n;
    s->fd0 = fds[0];
    char why[160] = "";
    size_t wl;
    if (want == NX_STEER_AUTO || want == NX_STEER_EBPF) {
        if (steer_try_ebpf(s, fds, why, sizeof(why)) == 0) {
            s->mode = NX_STEER_EBPF;
            snprintf(s->desc, sizeof(s->desc), "ebpf (%u shards; NXB by tenant number, StatsD by tenant tag)", n);
            *out = s;
            return NX_OK;
        }
    } else {
        snprintf(why, sizeof(why), "ebpf not requested");
    }
    wl = strlen(why);
    if (want != NX_STEER_PLAIN) {
        char e2[96] = "";
        if (steer_try_cbpf(s, fds, e2, sizeof(e2)) == 0) {
            s->mode = NX_STEER_CBPF;
            snprintf(s->desc, sizeof(s->desc), "cbpf (%u shards; %.*s)", n, (int)wl, why);
            *out = s;
            return NX_OK;
        }
        snprintf(why + wl, sizeof(why) - wl, "; %s", e2);
    }
    /* plain: make sure no earlier program remains on the group */
    (void)setsockopt(fds[0], SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, NULL, 0);
    s->mode = NX_STEER_PLAIN;
    snprintf(s->desc, sizeof(s->desc), "plain (%u shards, kernel hash%s%s)", n,
             want == NX_STEER_PLAIN ? "" : "; ", want == NX_STEER_PLAIN ? "" : why);
    *out = s;
    return NX_OK;
}

void nx_steer_detach(nx_steer *s)
{
    if (!s)
        return;
    if (s->mode != NX_STEER_PLAIN)
        (void)setsockopt(s->fd0, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, NULL, 0);
    if (s->skel)
        nx_steer_bpf__destroy(s->skel);
    free(s);
}

nx_steer_mode nx_steer_mode_of(const nx_steer *s) { return s->mode; }
const char *nx_steer_describe(const nx_steer *s) { return s->desc; }

int nx_steer_set_tenant(nx_steer *s, uint32_t tenant_num, uint32_t shard,
                        nx_steer_quota_kind kind, uint64_t rate, uint64_t burst)
{
    if (s->mode != NX_STEER_EBPF || shard >= s->n || kind > NX_STEER_QUOTA_KIND_BYTES)
        return NX_EINVAL;
    if (burst > UINT64_MAX / NX_STEER_NS || rate > 1000000000000ull)
        return NX_ETOOBIG;
    struct nx_steer_tenant_cfg cfg = {.shard = shard, .kind = kind, .rate = rate};
    if (kind != NX_STEER_QUOTA_KIND_NONE) {
        cfg.burst_n = burst * NX_STEER_NS;
        cfg.fill_ns = rate ? (cfg.burst_n + rate - 1) / rate : 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        struct nx_steer_bucket b = {.tokens_n = cfg.burst_n,
                                    .last_ns = (uint64_t)ts.tv_sec * NX_STEER_NS + (uint64_t)ts.tv_nsec};
        if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.nx_buckets), &tenant_num, &b,
                                BPF_ANY | BPF_F_LOCK))
            return errno == E2BIG ? NX_ETOOBIG : NX_EIO;
    }
    if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.nx_tenants), &tenant_num, &cfg, BPF_ANY))
        return errno == E2BIG ? NX_ETOOBIG : NX_EIO;
    return NX_OK;
}

int nx_steer_clear_tenant(nx_steer *s, uint32_t tenant_num)
{
    if (s->mode != NX_STEER_EBPF)
        return NX_EINVAL;
    int rc = bpf_map_delete_elem(bpf_map__fd(s->skel->maps.nx_tenants), &tenant_num);
    (void)bpf_map_delete_elem(bpf_map__fd(s->skel->maps.nx_buckets), &tenant_num);
    return rc && errno == ENOENT ? NX_ENOENT : rc ? NX_EIO : NX_OK;
}

int nx_steer_shard_of(const nx_steer *s, uint32_t tenant_num)
{
    if (s->mode == NX_STEER_PLAIN)
        return -1;
    if (s->mode == NX_STEER_EBPF) {
        struct nx_steer_tenant_cfg cfg;
        if (bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.nx_tenants), &tenant_num, &cfg) == 0 &&
            cfg.shard < s->n)
            return (int)cfg.shard;
    }
    return (int)(tenant_num % s->n);
}

/* Sums a per-CPU value of `words` u64 counters into out[]. */
static int steer_percpu_sum(const nx_steer *s, int mfd, uint32_t key, size_t words, uint64_t *out)
{
    memset(out, 0, words * sizeof(uint64_t));
    uint64_t *vals = calloc((size_t)s->ncpus, words * sizeof(uint64_t));
    if (!vals)
        return NX_ENOMEM;
    if (bpf_map_lookup_elem(mfd, &key, vals)) {
        free(vals);
        return errno == ENOENT ? NX_OK : NX_EIO; /* never seen: zeros */
    }
    for (int c = 0; c < s->ncpus; c++)
        for (size_t w = 0; w < words; w++)
            out[w] += vals[(size_t)c * words + w];
    free(vals);
    return NX_OK;
}

int nx_steer_tenant_counters(const nx_steer *s, uint32_t tenant_num, nx_steer_counters *out)
{
    if (s->mode != NX_STEER_EBPF)
        return NX_EINVAL;
    return steer_percpu_sum(s, bpf_map__fd(s->skel->maps.nx_tenant_stats), tenant_num,
                            sizeof(*out) / 8, (uint64_t *)out);
}

int nx_steer_shard_counters(const nx_steer *s, uint32_t shard, nx_steer_counters *out)
{
    if (s->mode != NX_STEER_EBPF || shard >= s->n)
        return NX_EINVAL;
    return steer_percpu_sum(s, bpf_map__fd(s->skel->maps.nx_shard_stats), shard,
                            sizeof(*out) / 8, (uint64_t *)out);
}

int nx_steer_global_counters(const nx_steer *s, nx_steer_global *out)
{
    if (s->mode != NX_STEER_EBPF)
        return NX_EINVAL;
    uint64_t g[NX_STEER_G_N];
    int mfd = bpf_map__fd(s->skel->maps.nx_global_stats);
    for (uint32_t i = 0; i < NX_STEER_G_N; i++) {
        int rc = steer_percpu_sum(s, mfd, i, 1, &g[i]);
        if (rc)
            return rc;
    }
    out->nxb_pkts = g[NX_STEER_G_NXB];
    out->other_pkts = g[NX_STEER_G_OTHER];
    out->text_tenant_pkts = g[NX_STEER_G_TEXT_TENANT];
    out->select_err = g[NX_STEER_G_SELECT_ERR];
    out->stats_full = g[NX_STEER_G_STATS_FULL];
    out->dropped_pkts = g[NX_STEER_G_DROPPED];
    return NX_OK;
}

int nx_steer_text_shard(const void *payload, size_t len, uint32_t nshards)
{
    const uint8_t *buf = payload;
    if (nshards == 0)
        return -1;
    if (len > NX_STEER_TEXT_SCAN - 1)
        len = NX_STEER_TEXT_SCAN - 1;
    if (len < 9)
        return -1;
    static const char tag[] = "tenant:";
    for (size_t i = 0; i + 8 < len && buf[i] != '\n'; i++) {
        if ((buf[i] != '#' && buf[i] != ',') || memcmp(buf + i + 1, tag, 7) != 0)
            continue;
        uint32_t h = NX_STEER_FNV_INIT, hn = 0;
        for (size_t j = i + 8; j < len && hn < NX_STEER_TENANT_MAX && nx_steer_tenant_char(buf[j]); j++, hn++)
            h = (h ^ buf[j]) * NX_STEER_FNV_PRIME;
        return hn ? (int)(h % nshards) : -1;
    }
    return -1;
}
