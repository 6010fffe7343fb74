/*
 * nx_registry.c — tenant registry: indexes, persistence, auth policy.
 *
 * tenants.json (version 1), written by nx_registry_to_json, checked strictly
 * by nx_registry_parse (unknown keys, duplicate keys, bad types, out-of-range
 * numbers, duplicate ids or nums, num >= next_num, bad hashes: all rejected):
 *
 *   {"format": "nexus-tenants", "version": 1, "next_num": 3,
 *    "tenants": [
 *      {"id": "acme", "num": 1, "created_ms": 1700000000000,
 *       "token_sha256": "<64 lowercase hex digits>",
 *       "quotas": {"events_per_s": 1000, "burst": 2000, "max_streams": 10000,
 *                  "max_bytes": 67108864, "http_requests_per_s": 50}},
 *      ...]}
 *
 * next_num is persisted (not max(num)+1) so nums are never reused even when
 * the newest tenant was deleted.
 *
 * In memory: one heap record per tenant, reachable from three open-addressing
 * indexes keyed by u64 — by num, by XXH3(id) and by the first 8 bytes of the
 * token hash. Equal keys may repeat (hash collisions), so finds compare the
 * real key; deletion is backward-shift (no tombstones). The `default` tenant
 * (num 0) is a record outside the indexes. Records are freed only under the
 * write lock; readers copy what they need under the read lock.
 */
#include "tenant/nx_registry.h"
#include "common/nx_clock.h"
#include "nexus.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define NX_REG_FORMAT "nexus-tenants"
#define NX_REG_VERSION 1
#define NX_REG_MAX_FILE (256u << 20) /* 256 MiB: far above 1e6 tenants */

typedef struct nx_treg {
    nx_tenant_info info;
    nx_token_hash hash;
    bool has_token;       /* false only for `default` */
    atomic_flag http_lock; /* guards http_rl */
    nx_rl http_rl;
} nx_treg;

/* ---- u64 -> record multimap ------------------------------------------ */

typedef struct nx_rmap {
    uint64_t *keys;
    nx_treg **vals; /* NULL = empty */
    size_t mask, used;
} nx_rmap;

static size_t nx__rm_home(uint64_t k, size_t mask)
{
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & mask;
}

static int nx__rm_init(nx_rmap *m, size_t n)
{
    m->keys = calloc(n, sizeof *m->keys);
    m->vals = calloc(n, sizeof *m->vals);
    if (!m->keys || !m->vals) {
        free(m->keys);
        free(m->vals);
        return NX_ENOMEM;
    }
    m->mask = n - 1;
    m->used = 0;
    return 0;
}

static void nx__rm_free(nx_rmap *m)
{
    free(m->keys);
    free(m->vals);
}

static void nx__rm_put(nx_rmap *m, uint64_t k, nx_treg *v)
{
    size_t i = nx__rm_home(k, m->mask);
    while (m->vals[i])
        i = (i + 1) & m->mask;
    m->keys[i] = k;
    m->vals[i] = v;
    m->used++;
}

/* Makes room for one more entry (load <= 1/2). */
static int nx__rm_reserve(nx_rmap *m)
{
    if ((m->used + 1) * 2 <= m->mask + 1)
        return 0;
    nx_rmap n;
    int rc = nx__rm_init(&n, (m->mask + 1) * 2);
    if (rc)
        return rc;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->vals[i])
            nx__rm_put(&n, m->keys[i], m->vals[i]);
    nx__rm_free(m);
    *m = n;
    return 0;
}

/* Iterates the records with key k: *pos starts at SIZE_MAX. */
static nx_treg *nx__rm_next(const nx_rmap *m, uint64_t k, size_t *pos)
{
    size_t i = *pos == SIZE_MAX ? nx__rm_home(k, m->mask) : ((*pos + 1) & m->mask);
    for (; m->vals[i]; i = (i + 1) & m->mask) {
        if (m->keys[i] == k) {
            *pos = i;
            return m->vals[i];
        }
    }
    return NULL;
}

static void nx__rm_del(nx_rmap *m, uint64_t k, const nx_treg *v)
{
    size_t i = nx__rm_home(k, m->mask);
    while (m->vals[i] != v) {
        assert(m->vals[i]); /* must be present */
        i = (i + 1) & m->mask;
    }
    for (;;) {
        m->vals[i] = NULL;
        size_t j = i;
        for (;;) {
            j = (j + 1) & m->mask;
            if (!m->vals[j]) {
                m->used--;
                return;
            }
            size_t h = nx__rm_home(m->keys[j], m->mask);
            bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
            if (!stays)
                break;
        }
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
}

/* ---- registry ---------------------------------------------------------- */

struct nx_registry {
    pthread_rwlock_t lock;
    nx_rmap by_num, by_id, by_tok;
    uint32_t next_num;
    nx_treg dflt;
    nx_registry_options opt;
    char *data_dir;
    atomic_uint_fast64_t gen;
    /* persistence: mutations bump gen under the write lock; flush writes
     * the newest serialized state, skipping stale ones */
    pthread_mutex_t persist_lock;
    uint64_t written_gen;  /* guarded by persist_lock */
    bool admin_set;
    nx_token_hash admin;
    nx_registry_observer obs; /* set before sharing; read-only afterwards */
    void *obs_arg;
};

void nx_registry_set_observer(nx_registry *r, nx_registry_observer fn, void *arg)
{
    r->obs = fn;
    r->obs_arg = arg;
}

static void nx__notify(nx_registry *r, nx_registry_op op, const nx_tenant_info *t)
{
    if (r->obs)
        r->obs(r->obs_arg, op, t);
}

static void nx__err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void nx__err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool nx_registry_id_valid(const char *id, size_t len)
{
    if (len < 1 || len > NX_TENANT_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int nx__quotas_valid(const nx_quotas *q)
{
    if (q->events_per_s > NX_RL_MAX_RATE || q->burst > NX_RL_MAX_BURST ||
        q->http_requests_per_s > NX_RL_MAX_RATE)
        return NX_EINVAL;
    return 0;
}

static int64_t nx__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t nx__id_key(const char *id, size_t len)
{
    return XXH3_64bits(id, len);
}

static nx_treg *nx__find_id(const nx_registry *r, const char *id, size_t len)
{
    uint64_t k = nx__id_key(id, len);
    size_t pos = SIZE_MAX;
    nx_treg *t;
    while ((t = nx__rm_next(&r->by_id, k, &pos)))
        if (strlen(t->info.id) == len && memcmp(t->info.id, id, len) == 0)
            return t;
    return NULL;
}

static nx_treg *nx__find_num(const nx_registry *r, uint32_t num)
{
    size_t pos = SIZE_MAX;
    nx_treg *t;
    while ((t = nx__rm_next(&r->by_num, num, &pos)))
        if (t->info.num == num)
            return t;
    return NULL;
}

static void nx__http_rl_init(nx_treg *t)
{
    atomic_flag_clear(&t->http_lock);
    int rc = nx_rl_init(&t->http_rl, t->info.quotas.http_requests_per_s, 0, 1, nx_mono_ns());
    assert(rc == 0); /* quotas were validated */
    (void)rc;
}

static int nx__alloc(nx_registry_options const *opt, nx_registry **out)
{
    nx_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NX_ENOMEM;
    if (opt)
        r->opt = *opt;
    r->opt.data_dir = NULL;
    if (opt && opt->data_dir && !(r->data_dir = strdup(opt->data_dir))) {
        free(r);
        return NX_ENOMEM;
    }
    if (nx__quotas_valid(&r->opt.default_quotas)) {
        free(r->data_dir);
        free(r);
        return NX_EINVAL;
    }
    if (nx__rm_init(&r->by_num, 64) || nx__rm_init(&r->by_id, 64) ||
        nx__rm_init(&r->by_tok, 64)) {
        nx__rm_free(&r->by_num);
        nx__rm_free(&r->by_id);
        nx__rm_free(&r->by_tok);
        free(r->data_dir);
        free(r);
        return NX_ENOMEM;
    }
    pthread_rwlock_init(&r->lock, NULL);
    pthread_mutex_init(&r->persist_lock, NULL);
    r->next_num = 1;
    strcpy(r->dflt.info.id, NX_DEFAULT_TENANT);
    r->dflt.info.num = 0;
    r->dflt.info.quotas = r->opt.default_quotas;
    nx__http_rl_init(&r->dflt);
    atomic_init(&r->gen, 1);
    *out = r;
    return 0;
}

void nx_registry_close(nx_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i <= r->by_num.mask; i++)
        free(r->by_num.vals[i]);
    nx__rm_free(&r->by_num);
    nx__rm_free(&r->by_id);
    nx__rm_free(&r->by_tok);
    pthread_rwlock_destroy(&r->lock);
    pthread_mutex_destroy(&r->persist_lock);
    memset(&r->admin, 0, sizeof r->admin);
    free(r->data_dir);
    free(r);
}

/* Inserts a record into the three indexes (write lock held / not shared). */
static int nx__insert(nx_registry *r, nx_treg *t)
{
    int rc;
    if ((rc = nx__rm_reserve(&r->by_num)) || (rc = nx__rm_reserve(&r->by_id)) ||
        (rc = nx__rm_reserve(&r->by_tok)))
        return rc;
    nx__rm_put(&r->by_num, t->info.num, t);
    nx__rm_put(&r->by_id, nx__id_key(t->info.id, strlen(t->info.id)), t);
    nx__rm_put(&r->by_tok, nx_token_hash_key(&t->hash), t);
    return 0;
}

static void nx__remove(nx_registry *r, nx_treg *t)
{
    nx__rm_del(&r->by_num, t->info.num, t);
    nx__rm_del(&r->by_id, nx__id_key(t->info.id, strlen(t->info.id)), t);
    nx__rm_del(&r->by_tok, nx_token_hash_key(&t->hash), t);
}

/* ---- JSON --------------------------------------------------------------- */

static int nx__json_u64(json_t *o, const char *key, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_integer(v))
        return NX_ECORRUPT;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x > max)
        return NX_ECORRUPT;
    *out = (uint64_t)x;
    return 0;
}

/* True if o has only keys from the NULL-terminated list. */
static bool nx__json_only(json_t *o, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        bool ok = false;
        for (size_t i = 0; keys[i]; i++)
            if (strcmp(k, keys[i]) == 0)
                ok = true;
        if (!ok)
            return false;
    }
    return true;
}

static int nx__parse_quotas(json_t *o, nx_quotas *q)
{
    static const char *const keys[] = {"events_per_s", "burst", "max_streams", "max_bytes",
                                       "http_requests_per_s", NULL};
    uint64_t ms;
    if (!json_is_object(o) || !nx__json_only(o, keys) || json_object_size(o) != 5)
        return NX_ECORRUPT;
    if (nx__json_u64(o, "events_per_s", NX_RL_MAX_RATE, &q->events_per_s) ||
        nx__json_u64(o, "burst", NX_RL_MAX_BURST, &q->burst) ||
        nx__json_u64(o, "max_streams", UINT32_MAX, &ms) ||
        nx__json_u64(o, "max_bytes", INT64_MAX, &q->max_bytes) ||
        nx__json_u64(o, "http_requests_per_s", NX_RL_MAX_RATE, &q->http_requests_per_s))
        return NX_ECORRUPT;
    q->max_streams = (uint32_t)ms;
    return 0;
}

static int nx__parse_tenant(nx_registry *r, json_t *o, size_t idx, char *err, size_t errlen)
{
    static const char *const keys[] = {"id", "num", "created_ms", "token_sha256", "quotas",
                                       NULL};
    if (!json_is_object(o) || !nx__json_only(o, keys) || json_object_size(o) != 5) {
        nx__err(err, errlen, "tenant #%zu: expected an object with exactly the keys "
                "id, num, created_ms, token_sha256, quotas", idx);
        return NX_ECORRUPT;
    }
    json_t *id = json_object_get(o, "id"), *hash = json_object_get(o, "token_sha256");
    if (!json_is_string(id) ||
        !nx_registry_id_valid(json_string_value(id), json_string_length(id)) ||
        strcmp(json_string_value(id), NX_DEFAULT_TENANT) == 0) {
        nx__err(err, errlen, "tenant #%zu: id missing or not [a-z0-9_-]{1,64} (or 'default')",
                idx);
        return NX_ECORRUPT;
    }
    nx_treg *t = calloc(1, sizeof *t);
    if (!t)
        return NX_ENOMEM;
    uint64_t num, created;
    int rc = NX_ECORRUPT;
    memcpy(t->info.id, json_string_value(id), json_string_length(id) + 1);
    if (nx__json_u64(o, "num", UINT32_MAX, &num) || num == 0 || num >= r->next_num) {
        nx__err(err, errlen, "tenant '%s': num must be in 1..next_num-1", t->info.id);
        goto fail;
    }
    t->info.num = (uint32_t)num;
    if (nx__json_u64(o, "created_ms", INT64_MAX, &created)) {
        nx__err(err, errlen, "tenant '%s': created_ms must be a non-negative integer",
                t->info.id);
        goto fail;
    }
    t->info.created_ms = (int64_t)created;
    if (!json_is_string(hash) ||
        nx_token_hash_parse(json_string_value(hash), json_string_length(hash), &t->hash)) {
        nx__err(err, errlen, "tenant '%s': token_sha256 must be 64 hex digits", t->info.id);
        goto fail;
    }
    t->has_token = true;
    if (nx__parse_quotas(json_object_get(o, "quotas"), &t->info.quotas)) {
        nx__err(err, errlen, "tenant '%s': quotas must hold exactly events_per_s, burst, "
                "max_streams, max_bytes, http_requests_per_s as in-range integers",
                t->info.id);
        goto fail;
    }
    if (nx__find_id(r, t->info.id, strlen(t->info.id))) {
        nx__err(err, errlen, "tenant '%s' appears twice", t->info.id);
        goto fail;
    }
    if (nx__find_num(r, t->info.num)) {
        nx__err(err, errlen, "tenant '%s': num %u already used", t->info.id, t->info.num);
        goto fail;
    }
    nx__http_rl_init(t);
    if ((rc = nx__insert(r, t)) != 0)
        goto fail;
    return 0;
fail:
    free(t);
    return rc;
}

int nx_registry_parse(const nx_registry_options *opt, const char *json, size_t len,
                      nx_registry **out, char *err, size_t errlen)
{
    nx_registry *r;
    int rc = nx__alloc(opt, &r);
    if (rc)
        return rc;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        nx__err(err, errlen, "not valid JSON: %s (line %d, column %d)", je.text, je.line,
                je.column);
        nx_registry_close(r);
        return NX_ECORRUPT;
    }
    static const char *const keys[] = {"format", "version", "next_num", "tenants", NULL};
    json_t *fmt = json_object_get(root, "format"), *ten = json_object_get(root, "tenants");
    uint64_t ver, next;
    rc = NX_ECORRUPT;
    if (!json_is_object(root) || !nx__json_only(root, keys) || !json_is_string(fmt) ||
        strcmp(json_string_value(fmt), NX_REG_FORMAT) != 0) {
        nx__err(err, errlen, "not a nexus tenants file (format must be \"%s\", keys format, "
                "version, next_num, tenants)", NX_REG_FORMAT);
        goto out;
    }
    if (nx__json_u64(root, "version", UINT32_MAX, &ver)) {
        nx__err(err, errlen, "version missing");
        goto out;
    }
    if (ver != NX_REG_VERSION) {
        nx__err(err, errlen, "unsupported version %llu (this nexusd reads %d)",
                (unsigned long long)ver, NX_REG_VERSION);
        rc = NX_EVERSION;
        goto out;
    }
    if (nx__json_u64(root, "next_num", UINT32_MAX, &next) || next == 0) {
        nx__err(err, errlen, "next_num must be an integer in 1..2^32-1");
        goto out;
    }
    r->next_num = (uint32_t)next;
    if (!json_is_array(ten) || json_array_size(ten) > NX_REGISTRY_MAX_TENANTS) {
        nx__err(err, errlen, "tenants must be an array of at most %u entries",
                NX_REGISTRY_MAX_TENANTS);
        goto out;
    }
    size_t i;
    json_t *t;
    json_array_foreach(ten, i, t) {
        if ((rc = nx__parse_tenant(r, t, i, err, errlen)) != 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc) {
        nx_registry_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

static int nx__cmp_num(const void *a, const void *b)
{
    const nx_tenant_info *x = a, *y = b;
    return x->num < y->num ? -1 : x->num > y->num;
}

static int nx__cmp_rec(const void *a, const void *b)
{
    const nx_treg *x = *(nx_treg *const *)a, *y = *(nx_treg *const *)b;
    return nx__cmp_num(&x->info, &y->info);
}

/* Serializes under the caller's lock (read or write). */
static int nx__to_json_locked(nx_registry *r, char **out, size_t *len)
{
    json_t *root = json_object(), *arr = json_array();
    int rc = NX_ENOMEM;
    if (!root || !arr) {
        json_decref(root);
        json_decref(arr);
        return rc;
    }
    /* sorted by num so the file is stable and diffable */
    size_t n = 0;
    nx_treg **v = malloc((r->by_num.used + 1) * sizeof *v);
    if (!v)
        goto out;
    for (size_t i = 0; i <= r->by_num.mask; i++)
        if (r->by_num.vals[i])
            v[n++] = r->by_num.vals[i];
    qsort(v, n, sizeof *v, nx__cmp_rec);
    for (size_t i = 0; i < n; i++) {
        char hex[2 * NX_TOKEN_HASH + 1];
        nx_token_hash_hex(&v[i]->hash, hex);
        const nx_quotas *q = &v[i]->info.quotas;
        json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I}}",
                              "id", v[i]->info.id, "num", (json_int_t)v[i]->info.num,
                              "created_ms", (json_int_t)v[i]->info.created_ms,
                              "token_sha256", hex, "quotas",
                              "events_per_s", (json_int_t)q->events_per_s,
                              "burst", (json_int_t)q->burst,
                              "max_streams", (json_int_t)q->max_streams,
                              "max_bytes", (json_int_t)q->max_bytes,
                              "http_requests_per_s", (json_int_t)q->http_requests_per_s);
        if (!o || json_array_append_new(arr, o))
            goto out;
    }
    if (json_object_set_new(root, "format", json_string(NX_REG_FORMAT)) ||
        json_object_set_new(root, "version", json_integer(NX_REG_VERSION)) ||
        json_object_set_new(root, "next_num", json_integer(r->next_num)) ||
        json_object_set(root, "tenants", arr))
        goto out;
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!s)
        goto out;
    *out = s;
    *len = strlen(s);
    rc = 0;
out:
    free(v);
    json_decref(arr);
    json_decref(root);
    return rc;
}

int nx_registry_to_json(nx_registry *r, char **out, size_t *len)
{
    pthread_rwlock_rdlock(&r->lock);
    int rc = nx__to_json_locked(r, out, len);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

/* Writes path atomically: temp file, fsync, rename, fsync dir. */
static int nx__write_atomic(const char *dir, const char *name, const char *data, size_t len,
                            mode_t mode)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp)
        return NX_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == ENOSPC ? NX_ENOSPC : NX_EIO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return e == ENOSPC ? NX_ENOSPC : NX_EIO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return e == ENOSPC ? NX_ENOSPC : NX_EIO;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return NX_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return NX_EIO;
    int rc = fsync(dfd) == 0 ? 0 : NX_EIO;
    close(dfd);
    return rc;
}

/* Persists the state serialized at generation gen (NULL data: nothing). */
static int nx__persist(nx_registry *r, char *data, size_t len, uint64_t gen)
{
    int rc = 0;
    pthread_mutex_lock(&r->persist_lock);
    if (gen > r->written_gen) {
        rc = nx__write_atomic(r->data_dir, NX_REGISTRY_FILE, data, len, 0600);
        if (rc == 0)
            r->written_gen = gen;
    }
    pthread_mutex_unlock(&r->persist_lock);
    free(data);
    return rc;
}

/* After a mutation under the write lock: bump gen and, unless NOSYNC,
 * serialize. Returns 0 and *data NULL when there is nothing to write. */
static int nx__changed_locked(nx_registry *r, unsigned flags, char **data, size_t *len,
                              uint64_t *gen)
{
    *gen = atomic_fetch_add(&r->gen, 1) + 1;
    *data = NULL;
    if (!r->data_dir || (flags & NX_REG_NOSYNC))
        return 0;
    return nx__to_json_locked(r, data, len);
}

int nx_registry_flush(nx_registry *r)
{
    if (!r->data_dir)
        return 0;
    char *data;
    size_t len;
    pthread_rwlock_rdlock(&r->lock);
    uint64_t gen = atomic_load(&r->gen);
    int rc = nx__to_json_locked(r, &data, &len);
    pthread_rwlock_unlock(&r->lock);
    if (rc)
        return rc;
    return nx__persist(r, data, len, gen);
}

int nx_registry_open(const nx_registry_options *opt, nx_registry **out, char *err,
                     size_t errlen)
{
    if (!opt || !opt->data_dir)
        return nx__alloc(opt, out);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", opt->data_dir, NX_REGISTRY_FILE) >=
        (int)sizeof path) {
        nx__err(err, errlen, "data directory path too long");
        return NX_EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            nx__err(err, errlen, "%s: %s", path, strerror(errno));
            return NX_EIO;
        }
        nx_registry *r;
        int rc = nx__alloc(opt, &r);
        if (rc)
            return rc;
        *out = r;
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)NX_REG_MAX_FILE) {
        nx__err(err, errlen, "%s: not a regular file of at most %u bytes", path,
                NX_REG_MAX_FILE);
        close(fd);
        return NX_ECORRUPT;
    }
    size_t n = (size_t)st.st_size, off = 0;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return NX_ENOMEM;
    }
    while (off < n) {
        ssize_t got = read(fd, buf + off, n - off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        off += (size_t)got;
    }
    close(fd);
    if (off != n) {
        free(buf);
        nx__err(err, errlen, "%s: short read", path);
        return NX_EIO;
    }
    char perr[200] = "";
    int rc = nx_registry_parse(opt, buf, n, out, perr, sizeof perr);
    free(buf);
    if (rc) {
        nx__err(err, errlen, "%s: %s", path, perr[0] ? perr : nx_strerror(rc));
        return rc;
    }
    (*out)->written_gen = atomic_load(&(*out)->gen);
    return 0;
}

/* ---- mutations ---------------------------------------------------------- */

int nx_registry_create(nx_registry *r, const char *id, size_t len, const nx_quotas *q,
                       unsigned flags, nx_tenant_info *info, char token[NX_TOKEN_LEN + 1])
{
    if (!nx_registry_id_valid(id, len))
        return NX_EINVAL;
    if (!q)
        q = &r->opt.default_quotas;
    if (nx__quotas_valid(q))
        return NX_EINVAL;
    if (len == strlen(NX_DEFAULT_TENANT) && memcmp(id, NX_DEFAULT_TENANT, len) == 0)
        return NX_EEXIST;
    char tok[NX_TOKEN_LEN + 1];
    int rc = nx_token_generate("nxt_", tok);
    if (rc)
        return rc;
    nx_treg *t = calloc(1, sizeof *t);
    if (!t)
        return NX_ENOMEM;
    memcpy(t->info.id, id, len);
    t->info.id[len] = '\0';
    t->info.quotas = *q;
    t->info.created_ms = nx__now_ms();
    nx_token_hash_of(tok, NX_TOKEN_LEN, &t->hash);
    t->has_token = true;
    nx__http_rl_init(t);

    char *data = NULL;
    size_t dlen = 0;
    uint64_t gen;
    pthread_rwlock_wrlock(&r->lock);
    if (nx__find_id(r, id, len)) {
        rc = NX_EEXIST;
    } else if (r->by_num.used >= NX_REGISTRY_MAX_TENANTS || r->next_num == UINT32_MAX) {
        rc = NX_EQUOTA;
    } else {
        t->info.num = r->next_num;
        rc = nx__insert(r, t);
        if (rc == 0) {
            r->next_num++;
            rc = nx__changed_locked(r, flags, &data, &dlen, &gen);
            if (rc) { /* could not serialize: undo */
                nx__remove(r, t);
                r->next_num--;
            }
        }
    }
    nx_tenant_info copy = t->info; /* t may be deleted once we unlock */
    pthread_rwlock_unlock(&r->lock);
    if (rc) {
        free(t);
        memset(tok, 0, sizeof tok);
        return rc;
    }
    if (data && (rc = nx__persist(r, data, dlen, gen)) != 0) {
        /* not durable: take it back so the caller never holds a token for a
         * tenant that would vanish on restart (num stays consumed). Another
         * thread may have deleted it meanwhile: remove only if still there. */
        pthread_rwlock_wrlock(&r->lock);
        if (nx__find_num(r, copy.num) == t) {
            nx__remove(r, t);
            free(t);
            atomic_fetch_add(&r->gen, 1);
        }
        pthread_rwlock_unlock(&r->lock);
        memset(tok, 0, sizeof tok);
        return rc;
    }
    if (info)
        *info = copy;
    memcpy(token, tok, sizeof tok);
    memset(tok, 0, sizeof tok);
    nx__notify(r, NX_REG_OP_CREATE, &copy);
    return 0;
}

int nx_registry_delete(nx_registry *r, const char *id, size_t len, unsigned flags,
                       nx_tenant_info *info)
{
    char *data = NULL;
    size_t dlen = 0;
    uint64_t gen = 0;
    int rc = 0;
    pthread_rwlock_wrlock(&r->lock);
    nx_treg *t = nx__find_id(r, id, len);
    nx_tenant_info was;
    if (!t) {
        rc = NX_ENOENT;
    } else {
        was = t->info;
        if (info)
            *info = t->info;
        nx__remove(r, t);
        free(t);
        rc = nx__changed_locked(r, flags, &data, &dlen, &gen);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc)
        return rc;
    rc = data ? nx__persist(r, data, dlen, gen) : 0;
    nx__notify(r, NX_REG_OP_DELETE, &was); /* gone from memory even if not persisted */
    return rc;
}

int nx_registry_rotate(nx_registry *r, const char *id, size_t len, unsigned flags,
                       char token[NX_TOKEN_LEN + 1])
{
    char tok[NX_TOKEN_LEN + 1];
    int rc = nx_token_generate("nxt_", tok);
    if (rc)
        return rc;
    nx_token_hash h;
    nx_token_hash_of(tok, NX_TOKEN_LEN, &h);
    char *data = NULL;
    size_t dlen = 0;
    uint64_t gen = 0;
    pthread_rwlock_wrlock(&r->lock);
    nx_treg *t = nx__find_id(r, id, len);
    if (!t) {
        rc = NX_ENOENT;
    } else if ((rc = nx__rm_reserve(&r->by_tok)) == 0) {
        nx__rm_del(&r->by_tok, nx_token_hash_key(&t->hash), t);
        t->hash = h;
        nx__rm_put(&r->by_tok, nx_token_hash_key(&t->hash), t);
        rc = nx__changed_locked(r, flags, &data, &dlen, &gen);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc == 0 && data)
        rc = nx__persist(r, data, dlen, gen);
    if (rc == 0)
        memcpy(token, tok, sizeof tok);
    memset(tok, 0, sizeof tok);
    return rc;
}

int nx_registry_set_quotas(nx_registry *r, const char *id, size_t len, const nx_quotas *q,
                           unsigned flags)
{
    if (nx__quotas_valid(q))
        return NX_EINVAL;
    char *data = NULL;
    size_t dlen = 0;
    uint64_t gen = 0;
    int rc;
    pthread_rwlock_wrlock(&r->lock);
    nx_treg *t = nx__find_id(r, id, len);
    nx_tenant_info now_info;
    if (!t) {
        rc = NX_ENOENT;
    } else {
        t->info.quotas = *q;
        now_info = t->info;
        while (atomic_flag_test_and_set_explicit(&t->http_lock, memory_order_acquire))
            ;
        rc = nx_rl_reconfigure(&t->http_rl, q->http_requests_per_s, 0, 1, nx_mono_ns());
        atomic_flag_clear_explicit(&t->http_lock, memory_order_release);
        assert(rc == 0);
        rc = nx__changed_locked(r, flags, &data, &dlen, &gen);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc)
        return rc;
    rc = data ? nx__persist(r, data, dlen, gen) : 0;
    nx__notify(r, NX_REG_OP_QUOTAS, &now_info);
    return rc;
}

/* ---- reads -------------------------------------------------------------- */

static bool nx__is_default(const char *id, size_t len)
{
    return len == strlen(NX_DEFAULT_TENANT) && memcmp(id, NX_DEFAULT_TENANT, len) == 0;
}

int nx_registry_get(nx_registry *r, const char *id, size_t len, nx_tenant_info *out)
{
    if (nx__is_default(id, len)) {
        *out = r->dflt.info;
        return 0;
    }
    pthread_rwlock_rdlock(&r->lock);
    nx_treg *t = nx__find_id(r, id, len);
    if (t)
        *out = t->info;
    pthread_rwlock_unlock(&r->lock);
    return t ? 0 : NX_ENOENT;
}

int nx_registry_get_num(nx_registry *r, uint32_t num, nx_tenant_info *out)
{
    if (num == 0) {
        *out = r->dflt.info;
        return 0;
    }
    pthread_rwlock_rdlock(&r->lock);
    nx_treg *t = nx__find_num(r, num);
    if (t)
        *out = t->info;
    pthread_rwlock_unlock(&r->lock);
    return t ? 0 : NX_ENOENT;
}

int nx_registry_list(nx_registry *r, nx_tenant_info **out, size_t *n)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t cnt = r->by_num.used, k = 0;
    nx_tenant_info *v = malloc((cnt ? cnt : 1) * sizeof *v);
    if (v)
        for (size_t i = 0; i <= r->by_num.mask; i++)
            if (r->by_num.vals[i])
                v[k++] = r->by_num.vals[i]->info;
    pthread_rwlock_unlock(&r->lock);
    if (!v)
        return NX_ENOMEM;
    assert(k == cnt);
    qsort(v, k, sizeof *v, nx__cmp_num);
    *out = v;
    *n = k;
    return 0;
}

size_t nx_registry_count(nx_registry *r)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t n = r->by_num.used;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

uint64_t nx_registry_generation(nx_registry *r)
{
    return atomic_load_explicit(&r->gen, memory_order_acquire);
}

void nx_registry_foreach(nx_registry *r, int (*fn)(const nx_tenant_info *t, void *arg),
                         void *arg)
{
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i <= r->by_num.mask; i++)
        if (r->by_num.vals[i] && fn(&r->by_num.vals[i]->info, arg))
            break;
    pthread_rwlock_unlock(&r->lock);
}

bool nx_registry_default_enabled(nx_registry *r)
{
    switch (r->opt.default_policy) {
    case NX_DEFAULT_ON:
        return true;
    case NX_DEFAULT_OFF:
        return false;
    default:
        return nx_registry_count(r) == 0;
    }
}

/* ---- auth --------------------------------------------------------------- */

int nx_registry_authenticate(nx_registry *r, const char *token, size_t len,
                             nx_tenant_info *out)
{
    if (!token || len == 0 || len > NX_ADMIN_TOKEN_MAX)
        return NX_EAUTH;
    nx_token_hash h;
    nx_token_hash_of(token, len, &h);
    uint64_t k = nx_token_hash_key(&h);
    int rc = NX_EAUTH;
    pthread_rwlock_rdlock(&r->lock);
    size_t pos = SIZE_MAX;
    nx_treg *t;
    while ((t = nx__rm_next(&r->by_tok, k, &pos))) {
        if (t->has_token && nx_token_hash_equal(&t->hash, &h)) {
            *out = t->info;
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int nx_registry_bearer(const char *hdr, const char **tok, size_t *len)
{
    if (!hdr || strncasecmp(hdr, "Bearer ", 7) != 0)
        return NX_EINVAL;
    const char *p = hdr + 7;
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NX_EINVAL;
    *tok = p;
    *len = n;
    return 0;
}

static void nx__why(nx_auth_result *why, unsigned status, const char *code, const char *msg)
{
    if (why) {
        why->status = status;
        why->code = code;
        why->msg = msg;
    }
}

int nx_registry_resolve(nx_registry *r, const char *bearer, size_t len, bool peer_is_loopback,
                        nx_tenant_info *out, nx_auth_result *why)
{
    if (bearer) {
        if (nx_registry_authenticate(r, bearer, len, out) == 0) {
            nx__why(why, 0, NULL, NULL);
            return 0;
        }
        nx__why(why, 403, "bad_token", "the bearer token does not belong to any tenant");
        return NX_EAUTH;
    }
    if (!nx_registry_default_enabled(r)) {
        nx__why(why, 401, "missing_token",
                "tenants are configured: send Authorization: Bearer <tenant token>");
        return NX_EAUTH;
    }
    if (!peer_is_loopback) {
        nx__why(why, 401, "missing_token",
                "the tokenless default tenant is only served to loopback clients");
        return NX_EAUTH;
    }
    *out = r->dflt.info;
    nx__why(why, 0, NULL, NULL);
    return 0;
}

/* Reads a whole small file, trims trailing whitespace. */
static int nx__read_token_file(const char *path, char *buf, size_t cap, size_t *len,
                               bool *insecure, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nx__err(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? NX_ENOENT : NX_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        nx__err(err, errlen, "%s: not a regular file", path);
        return NX_EINVAL;
    }
    if (insecure)
        *insecure = (st.st_mode & 077) != 0;
    size_t off = 0;
    for (;;) {
        ssize_t got = read(fd, buf + off, cap - off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        off += (size_t)got;
        if (off == cap)
            break;
    }
    close(fd);
    if (off == cap) {
        nx__err(err, errlen, "%s: admin token longer than %d bytes", path, NX_ADMIN_TOKEN_MAX);
        return NX_EINVAL;
    }
    while (off && (buf[off - 1] == '\n' || buf[off - 1] == '\r' || buf[off - 1] == ' ' ||
                   buf[off - 1] == '\t'))
        off--;
    *len = off;
    return 0;
}

int nx_registry_admin_setup(nx_registry *r, const char *token_file, const char *env_token,
                            bool *insecure, char *used_path, size_t used_len, char *err,
                            size_t errlen)
{
    char buf[NX_ADMIN_TOKEN_MAX + 2];
    size_t len = 0;
    int rc;
    char path[PATH_MAX];
    if (insecure)
        *insecure = false;
    if (token_file) {
        if ((rc = nx__read_token_file(token_file, buf, sizeof buf, &len, insecure, err,
                                      errlen)) != 0)
            return rc;
        snprintf(path, sizeof path, "%s", token_file);
    } else if (env_token && env_token[0]) {
        len = strlen(env_token);
        if (len > NX_ADMIN_TOKEN_MAX) {
            nx__err(err, errlen, "NEXUS_ADMIN_TOKEN longer than %d bytes", NX_ADMIN_TOKEN_MAX);
            return NX_EINVAL;
        }
        memcpy(buf, env_token, len);
        path[0] = '\0';
    } else {
        if (!r->data_dir) {
            nx__err(err, errlen, "no admin token given and no data directory to keep one");
            return NX_EINVAL;
        }
        if (snprintf(path, sizeof path, "%s/%s", r->data_dir, NX_ADMIN_TOKEN_FILE) >=
            (int)sizeof path)
            return NX_EINVAL;
        rc = nx__read_token_file(path, buf, sizeof buf, &len, insecure, err, errlen);
        if (rc == NX_ENOENT) {
            char tok[NX_TOKEN_LEN + 1];
            if ((rc = nx_token_generate("nxa_", tok)) != 0)
                return rc;
            tok[NX_TOKEN_LEN] = '\n';
            rc = nx__write_atomic(r->data_dir, NX_ADMIN_TOKEN_FILE, tok, NX_TOKEN_LEN + 1, 0600);
            memcpy(buf, tok, NX_TOKEN_LEN);
            len = NX_TOKEN_LEN;
            memset(tok, 0, sizeof tok);
            if (rc) {
                nx__err(err, errlen, "%s: cannot write: %s", path, nx_strerror(rc));
                return rc;
            }
        } else if (rc) {
            return rc;
        }
    }
    if (!nx_token_admin_valid(buf, len)) {
        nx__err(err, errlen, "admin token%s%s must be %d..%d printable bytes without spaces",
                path[0] ? " in " : " (NEXUS_ADMIN_TOKEN)", path, NX_ADMIN_TOKEN_MIN,
                NX_ADMIN_TOKEN_MAX);
        memset(buf, 0, sizeof buf);
        return NX_EINVAL;
    }
    nx_token_hash h;
    nx_token_hash_of(buf, len, &h);
    memset(buf, 0, sizeof buf);
    pthread_rwlock_wrlock(&r->lock);
    r->admin = h;
    r->admin_set = true;
    pthread_rwlock_unlock(&r->lock);
    if (used_path && used_len)
        snprintf(used_path, used_len, "%s", path);
    return 0;
}

bool nx_registry_is_admin(nx_registry *r, const char *token, size_t len)
{
    if (!token || len == 0 || len > NX_ADMIN_TOKEN_MAX)
        return false;
    nx_token_hash h;
    nx_token_hash_of(token, len, &h);
    pthread_rwlock_rdlock(&r->lock);
    bool ok = r->admin_set && nx_token_hash_equal(&r->admin, &h);
    pthread_rwlock_unlock(&r->lock);
    return ok;
}

/* ---- quotas --------------------------------------------------------------- */

int nx_registry_http_admit(nx_registry *r, uint32_t num, int64_t now_ns,
                           uint64_t *retry_after_s)
{
    int rc = 0;
    pthread_rwlock_rdlock(&r->lock);
    nx_treg *t = num == 0 ? &r->dflt : nx__find_num(r, num);
    if (!t) {
        rc = NX_ENOENT;
    } else {
        while (atomic_flag_test_and_set_explicit(&t->http_lock, memory_order_acquire))
            ;
        if (!nx_rl_admit(&t->http_rl, now_ns)) {
            rc = NX_EQUOTA;
            if (retry_after_s)
                *retry_after_s = nx_rl_wait_s(&t->http_rl, now_ns, 1);
        }
        atomic_flag_clear_explicit(&t->http_lock, memory_order_release);
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

typedef struct nx__gone {
    nx_registry *r;
    uint32_t *nums;
    size_t n, cap;
    int rc;
} nx__gone;

static void nx__collect_gone(uint32_t num, const nx_rl_counts *c, void *arg)
{
    (void)c;
    nx__gone *g = arg;
    if (g->rc || num == 0 || nx__find_num(g->r, num))
        return;
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 16;
        uint32_t *p = realloc(g->nums, nc * sizeof *p);
        if (!p) {
            g->rc = NX_ENOMEM;
            return;
        }
        g->nums = p;
        g->cap = nc;
    }
    g->nums[g->n++] = num;
}

int nx_registry_sync_limits(nx_registry *r, nx_rl_table *t, uint32_t divisor, int64_t now_ns,
                            uint64_t *seen_gen)
{
    uint64_t gen = nx_registry_generation(r);
    if (gen == *seen_gen)
        return 0;
    int rc = 0;
    pthread_rwlock_rdlock(&r->lock);
    gen = atomic_load(&r->gen); /* stable while we hold the read lock */
    const nx_quotas *dq = &r->dflt.info.quotas;
    rc = nx_rl_table_set(t, 0, dq->events_per_s, dq->burst, divisor, now_ns);
    for (size_t i = 0; rc == 0 && i <= r->by_num.mask; i++) {
        nx_treg *x = r->by_num.vals[i];
        if (x)
            rc = nx_rl_table_set(t, x->info.num, x->info.quotas.events_per_s,
                                 x->info.quotas.burst, divisor, now_ns);
    }
    nx__gone g = {r, NULL, 0, 0, 0};
    if (rc == 0) {
        nx_rl_table_foreach(t, nx__collect_gone, &g);
        rc = g.rc;
    }
    pthread_rwlock_unlock(&r->lock);
    for (size_t i = 0; rc == 0 && i < g.n; i++)
        nx_rl_table_remove(t, g.nums[i]);
    free(g.nums);
    if (rc == 0)
        *seen_gen = gen;
    return rc;
}
