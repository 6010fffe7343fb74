/*
 * nx_udfhost.c — the daemon side of tenant UDFs (see nx_udfhost.h).
 *
 * Registry: a short linked list of entries (tenant, name) under one mutex;
 * tenants upload a handful of modules, so lists beat hash tables here. An
 * entry's generation number lets a compile callback that finishes after a
 * DELETE or a re-upload drop its module instead of installing a stale one.
 *
 * Shard state: an open-addressing table keyed by XXH3-64 of
 * "tenant\0stream-key" whose entries list the stream's instances (an entry
 * with none is a cached "no binding matches"). New bindings are applied to
 * existing entries at once (instances created on the stream's next event
 * would be the same); unbinding flushes, then destroys the instances. Each
 * instance buffers events (growing to 1024) and sits on the shard's dirty
 * list until the end of the batch.
 */
#include "server/nx_udfhost.h"
#include "common/nx_fs.h"
#include "isolate/nx_udf_rt.h"
#include "server/nx_log.h"
#include "ingest/nx_statsd.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

enum { ST_COMPILING = 0, ST_READY = 1, ST_FAILED = 2 };
static const char *const st_names[] = {"compiling", "ready", "failed"};

typedef struct udf_entry {
    struct udf_entry *next;
    char tenant[65];
    char name[NX_UDF_NAME_MAX + 1];
    uint64_t hash;
    uint64_t gen;
    size_t size;
    int status;
    char error[NX_UDF_ERRLEN];
    nx_udf_module *module;
} udf_entry;

typedef struct bind_node {
    struct bind_node *next;
    nx_udf_binding *b;
} bind_node;

typedef struct inst {
    nx_udf_binding *b;
    nx_udf_instance *in;
    nx_udf_event *buf;
    uint32_t n, cap;
    int dirty;
} inst;

typedef struct sentry {
    uint64_t h;        /* 0: empty slot */
    char *tk;          /* tenant '\0' key */
    uint32_t tk_len;
    uint32_t ninst;
    inst **v;
} sentry;

struct nx_udf_shard {
    nx_udf_host *host;
    int id;
    nx_udf_binding **b;
    size_t nb, bcap;
    sentry *tab;
    size_t cap, used;
    inst **dirty;
    size_t ndirty, dcap;
    const nx_tenant *last_t; /* per-batch cache: tenant of the previous event */
    int last_has;
    nx_udf_limits lim;
    nx_udf_shard_stats st;
};

struct nx_udf_host {
    pthread_mutex_t mu;
    nx_udf_cache *cache;
    char udf_dir[PATH_MAX];
    udf_entry *entries;
    bind_node *binds;
    uint64_t next_gen, next_bind;
    int nshards;
    nx_udf_shard *shards;
};

typedef struct cb_arg {
    nx_udf_host *h;
    char tenant[65];
    char name[NX_UDF_NAME_MAX + 1];
    uint64_t gen;
} cb_arg;

static inline void st_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

int nx_udf_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NX_UDF_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return s[0] != '.';
}

void nx_udf_binding_ref(nx_udf_binding *b)
{
    atomic_fetch_add(&b->refs, 1);
}

void nx_udf_binding_unref(nx_udf_binding *b)
{
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    nx_udf_module_unref(b->module);
    free(b->params);
    free(b);
}

/* ---- registry ------------------------------------------------------------- */

static udf_entry *find_entry(nx_udf_host *h, const char *tenant, const char *name)
{
    for (udf_entry *e = h->entries; e; e = e->next)
        if (!strcmp(e->tenant, tenant) && !strcmp(e->name, name))
            return e;
    return NULL;
}

static void on_compiled(void *arg, int rc, nx_udf_module *m, const char *err)
{
    cb_arg *a = arg;
    nx_udf_host *h = a->h;
    pthread_mutex_lock(&h->mu);
    udf_entry *e = find_entry(h, a->tenant, a->name);
    if (e && e->gen == a->gen && e->status == ST_COMPILING) {
        if (rc == 0) {
            e->module = m;
            e->status = ST_READY;
            m = NULL;
        } else {
            e->status = ST_FAILED;
            snprintf(e->error, sizeof(e->error), "%s", err && *err ? err : nx_strerror(rc));
        }
    }
    pthread_mutex_unlock(&h->mu);
    if (rc == 0 && m)
        nx_udf_module_unref(m); /* deleted or replaced meanwhile */
    if (rc)
        nx_log(NX_LOG_WARN, "udf compile failed", "tenant=%s name=%s error=\"%s\"", a->tenant,
               a->name, err ? err : "");
    free(a);
}

/* Adds or replaces an entry and queues its compile; caller holds h->mu. An
 * already loaded module with the same hash is taken at once ("ready"). */
static int register_locked(nx_udf_host *h, const char *tenant, const char *name,
                           const uint8_t *wasm, size_t n, uint64_t hash, udf_entry **out)
{
    udf_entry *e = find_entry(h, tenant, name);
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return NX_ENOMEM;
        snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
        snprintf(e->name, sizeof(e->name), "%s", name);
        e->next = h->entries;
        h->entries = e;
    }
    if (e->module)
        nx_udf_module_unref(e->module);
    e->module = NULL;
    e->hash = hash;
    e->size = n;
    e->gen = ++h->next_gen;
    e->error[0] = 0;
    e->status = ST_COMPILING;
    *out = e;
    for (udf_entry *o = h->entries; o; o = o->next)
        if (o != e && o->status == ST_READY && o->hash == hash) {
            nx_udf_module_ref(o->module);
            e->module = o->module;
            e->status = ST_READY;
            return 0;
        }
    cb_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return NX_ENOMEM;
    a->h = h;
    a->gen = e->gen;
    snprintf(a->tenant, sizeof(a->tenant), "%s", tenant);
    snprintf(a->name, sizeof(a->name), "%s", name);
    int rc = nx_udf_compile_async(h->cache, wasm, n, on_compiled, a);
    if (rc) {
        free(a);
        e->status = ST_FAILED;
        snprintf(e->error, sizeof(e->error), "cannot queue compile: %s", nx_strerror(rc));
    }
    return 0;
}

/* Writes <udf_dir>/<tenant>/<name>.wasm atomically (tmp + rename). */
static int persist(nx_udf_host *h, const char *tenant, const char *name, const uint8_t *p,
                   size_t n)
{
    char dir[PATH_MAX + 80], path[PATH_MAX + 160], tmp[PATH_MAX + 170];
    snprintf(dir, sizeof(dir), "%s/%s", h->udf_dir, tenant);
    snprintf(path, sizeof(path), "%s/%s.wasm", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (nx_mkdirs(dir, 0700) < 0)
        return NX_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return NX_EIO;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return NX_EIO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return NX_EIO;
    }
    return 0;
}

/* Start-up: every persisted upload is registered and recompiled (normally a
 * cache hit: the .so is on disk). Bindings are not persisted. */
static void reload(nx_udf_host *h)
{
    DIR *d = opendir(h->udf_dir);
    if (!d)
        return;
    struct dirent *t;
    while ((t = readdir(d))) {
        if (!nx_tenant_id_valid(t->d_name, strlen(t->d_name)))
            continue;
        char tdir[PATH_MAX + 320];
        snprintf(tdir, sizeof(tdir), "%s/%s", h->udf_dir, t->d_name);
        DIR *td = opendir(tdir);
        if (!td)
            continue;
        struct dirent *f;
        while ((f = readdir(td))) {
            size_t l = strlen(f->d_name);
            if (l < 6 || strcmp(f->d_name + l - 5, ".wasm"))
                continue;
            char name[NX_UDF_NAME_MAX + 1];
            if (l - 5 > NX_UDF_NAME_MAX)
                continue;
            memcpy(name, f->d_name, l - 5);
            name[l - 5] = 0;
            if (!nx_udf_name_valid(name))
                continue;
            char path[PATH_MAX + 640];
            snprintf(path, sizeof(path), "%s/%s", tdir, f->d_name);
            size_t n;
            char *wc;
            if (nx_read_file(path, NX_UDF_MAX_WASM, &wc, &n) != 0)
                continue;
            uint8_t *w = (uint8_t *)wc;
            udf_entry *e;
            pthread_mutex_lock(&h->mu);
            register_locked(h, t->d_name, name, w, n, XXH3_64bits(w, n), &e);
            pthread_mutex_unlock(&h->mu);
            nx_log(NX_LOG_INFO, "udf reloaded", "tenant=%s name=%s bytes=%zu", t->d_name, name, n);
            free(w);
        }
        closedir(td);
    }
    closedir(d);
}

int nx_udf_host_create(const char *data_dir, int nshards, nx_udf_host **out)
{
    nx_udf_host *h = calloc(1, sizeof(*h));
    if (!h)
        return NX_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    h->nshards = nshards;
    h->shards = calloc((size_t)nshards, sizeof(nx_udf_shard));
    if (!h->shards) {
        free(h);
        return NX_ENOMEM;
    }
    for (int i = 0; i < nshards; i++) {
        h->shards[i].host = h;
        h->shards[i].id = i;
        nx_udf_limits_default(&h->shards[i].lim);
    }
    char cdir[PATH_MAX + 16];
    snprintf(cdir, sizeof(cdir), "%s/udf-cache", data_dir);
    snprintf(h->udf_dir, sizeof(h->udf_dir), "%s/udfs", data_dir);
    int rc = nx_udf_cache_open(cdir, &h->cache);
    if (rc) {
        nx_log(NX_LOG_ERROR, "cannot open udf cache", "dir=\"%s\"", cdir);
        nx_udf_host_destroy(h);
        return rc;
    }
    reload(h);
    *out = h;
    return 0;
}

static void inst_free(nx_udf_shard *us, inst *x)
{
    nx_udf_instance_destroy(x->in);
    free(x->buf);
    nx_udf_binding_unref(x->b);
    free(x);
    st_add(&us->st.instances, (uint64_t)-1);
}

void nx_udf_host_destroy(nx_udf_host *h)
{
    if (!h)
        return;
    if (h->cache)
        nx_udf_cache_close(h->cache); /* callbacks run (NX_EIO) before this returns */
    for (int i = 0; h->shards && i < h->nshards; i++) {
        nx_udf_shard *us = &h->shards[i];
        for (size_t k = 0; k < us->cap; k++) {
            sentry *e = &us->tab[k];
            if (!e->h)
                continue;
            for (uint32_t j = 0; j < e->ninst; j++)
                inst_free(us, e->v[j]);
            free(e->v);
            free(e->tk);
        }
        free(us->tab);
        for (size_t k = 0; k < us->nb; k++)
            nx_udf_binding_unref(us->b[k]);
        free(us->b);
        free(us->dirty);
    }
    free(h->shards);
    while (h->binds) {
        bind_node *n = h->binds;
        h->binds = n->next;
        nx_udf_binding_unref(n->b);
        free(n);
    }
    while (h->entries) {
        udf_entry *e = h->entries;
        h->entries = e->next;
        if (e->module)
            nx_udf_module_unref(e->module);
        free(e);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
}

nx_udf_shard *nx_udf_host_shard(nx_udf_host *h, int i)
{
    assert(i >= 0 && i < h->nshards);
    return &h->shards[i];
}

int nx_udf_host_put(nx_udf_host *h, const char *tenant, const char *name, const uint8_t *wasm,
                    size_t n, uint64_t *hash_out, const char **status_out, char *err,
                    size_t errlen)
{
    nx_udf_info info;
    int rc = nx_udf_validate(wasm, n, &info, err, errlen);
    if (rc)
        return rc;
    uint64_t hash = XXH3_64bits(wasm, n);
    *hash_out = hash;
    pthread_mutex_lock(&h->mu);
    udf_entry *e = find_entry(h, tenant, name);
    if (e && e->hash == hash && e->status != ST_FAILED) {
        *status_out = st_names[e->status]; /* same bytes again: nothing to do */
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    for (bind_node *b = h->binds; e && b; b = b->next)
        if (!strcmp(b->b->tenant, tenant) && !strcmp(b->b->name, name)) {
            pthread_mutex_unlock(&h->mu);
            snprintf(err, errlen, "udf %s has bindings: DELETE it before uploading other bytes",
                     name);
            return NX_EEXIST;
        }
    rc = persist(h, tenant, name, wasm, n);
    if (rc) {
        pthread_mutex_unlock(&h->mu);
        snprintf(err, errlen, "cannot store the module: %s", strerror(errno));
        return rc;
    }
    rc = register_locked(h, tenant, name, wasm, n, hash, &e);
    if (rc == 0)
        *status_out = st_names[e->status];
    pthread_mutex_unlock(&h->mu);
    if (rc)
        snprintf(err, errlen, "%s", nx_strerror(rc));
    return rc;
}

static json_t *binding_json(nx_udf_binding *b)
{
    int dis = atomic_load(&b->disabled);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:I}", "id", (json_int_t)b->id,
                          b->is_prefix ? "prefix" : "metric", b->match, "window", "all",
                          "params", b->params, "status", dis ? "disabled" : "active", "disabled",
                          dis, "events", (json_int_t)atomic_load(&b->events), "traps",
                          (json_int_t)atomic_load(&b->traps), "errors",
                          (json_int_t)atomic_load(&b->errors), "instances",
                          (json_int_t)atomic_load(&b->instances));
    if (o && dis)
        json_object_set_new(o, "error", json_string(b->error));
    if (o && atomic_load(&b->over_limit))
        json_object_set_new(o, "streams_over_limit",
                            json_integer((json_int_t)atomic_load(&b->over_limit)));
    return o;
}

static json_t *entry_json(nx_udf_host *h, udf_entry *e)
{
    char hx[17];
    snprintf(hx, sizeof(hx), "%016llx", (unsigned long long)e->hash);
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "name", e->name, "hash", hx, "status",
                          st_names[e->status], "size", (json_int_t)e->size);
    if (!o)
        return NULL;
    if (e->status == ST_FAILED)
        json_object_set_new(o, "error", json_string(e->error));
    if (e->module)
        json_object_set_new(o, "merge",
                            json_boolean(nx_udf_module_flags(e->module) & NX_UDF_HAS_MERGE));
    json_t *arr = json_array();
    for (bind_node *b = h->binds; b; b = b->next)
        if (!strcmp(b->b->tenant, e->tenant) && !strcmp(b->b->name, e->name))
            json_array_append_new(arr, binding_json(b->b));
    json_object_set_new(o, "bindings", arr);
    return o;
}

json_t *nx_udf_host_describe(nx_udf_host *h, const char *tenant, const char *name)
{
    pthread_mutex_lock(&h->mu);
    udf_entry *e = find_entry(h, tenant, name);
    json_t *o = e ? entry_json(h, e) : NULL;
    pthread_mutex_unlock(&h->mu);
    return o;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp((*(udf_entry *const *)a)->name, (*(udf_entry *const *)b)->name);
}

json_t *nx_udf_host_list(nx_udf_host *h, const char *tenant)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&h->mu);
    size_t n = 0;
    for (udf_entry *e = h->entries; e; e = e->next)
        n += !strcmp(e->tenant, tenant);
    udf_entry **v = calloc(n ? n : 1, sizeof(*v));
    size_t k = 0;
    for (udf_entry *e = h->entries; v && e; e = e->next)
        if (!strcmp(e->tenant, tenant))
            v[k++] = e;
    if (k)
        qsort(v, k, sizeof(*v), entry_cmp);
    for (size_t i = 0; i < k; i++)
        json_array_append_new(arr, entry_json(h, v[i]));
    pthread_mutex_unlock(&h->mu);
    free(v);
    return json_pack("{s:s,s:o}", "tenant", tenant, "udfs", arr);
}

int nx_udf_host_delete(nx_udf_host *h, const char *tenant, const char *name,
                       nx_udf_binding ***unbind, size_t *nunbind)
{
    *unbind = NULL;
    *nunbind = 0;
    pthread_mutex_lock(&h->mu);
    udf_entry **pp = &h->entries;
    while (*pp && (strcmp((*pp)->tenant, tenant) || strcmp((*pp)->name, name)))
        pp = &(*pp)->next;
    udf_entry *e = *pp;
    if (!e) {
        pthread_mutex_unlock(&h->mu);
        return NX_ENOENT;
    }
    *pp = e->next;
    size_t n = 0;
    for (bind_node *b = h->binds; b; b = b->next)
        n += !strcmp(b->b->tenant, tenant) && !strcmp(b->b->name, name);
    nx_udf_binding **v = n ? calloc(n, sizeof(*v)) : NULL;
    bind_node **bp = &h->binds;
    while (*bp) {
        bind_node *b = *bp;
        if (!strcmp(b->b->tenant, tenant) && !strcmp(b->b->name, name)) {
            *bp = b->next;
            if (v)
                v[(*nunbind)++] = b->b; /* the list's reference moves to the caller */
            else
                nx_udf_binding_unref(b->b);
            free(b);
            continue;
        }
        bp = &b->next;
    }
    char path[PATH_MAX + 160];
    snprintf(path, sizeof(path), "%s/%s/%s.wasm", h->udf_dir, tenant, name);
    unlink(path);
    pthread_mutex_unlock(&h->mu);
    if (e->module)
        nx_udf_module_unref(e->module);
    free(e);
    *unbind = v;
    return 0;
}

int nx_udf_host_bind(nx_udf_host *h, const char *tenant, const char *name, const char *match,
                     int is_prefix, const char *params, nx_udf_binding **out, char *err,
                     size_t errlen)
{
    pthread_mutex_lock(&h->mu);
    udf_entry *e = find_entry(h, tenant, name);
    int rc = 0;
    if (!e) {
        rc = NX_ENOENT;
        snprintf(err, errlen, "no such udf: %s", name);
    } else if (e->status == ST_COMPILING) {
        rc = NX_ETIMEOUT;
        snprintf(err, errlen, "udf %s is still compiling; retry when GET /v1/udfs/%s says ready",
                 name, name);
    } else if (e->status == ST_FAILED) {
        rc = NX_EINVAL;
        snprintf(err, errlen, "udf %s failed to compile: %s", name, e->error);
    }
    for (bind_node *b = h->binds; !rc && b; b = b->next)
        if (!strcmp(b->b->tenant, tenant) && !strcmp(b->b->name, name) &&
            !strcmp(b->b->match, match) && b->b->is_prefix == is_prefix) {
            nx_udf_binding_ref(b->b);
            *out = b->b;
            rc = NX_EEXIST;
        }
    if (rc) {
        pthread_mutex_unlock(&h->mu);
        return rc;
    }
    nx_udf_binding *b = calloc(1, sizeof(*b));
    bind_node *node = calloc(1, sizeof(*node));
    char *pcopy = strdup(params);
    if (!b || !node || !pcopy) {
        pthread_mutex_unlock(&h->mu);
        free(b);
        free(node);
        free(pcopy);
        return NX_ENOMEM;
    }
    atomic_init(&b->refs, 2); /* the list + the caller */
    b->id = ++h->next_bind;
    snprintf(b->tenant, sizeof(b->tenant), "%s", tenant);
    snprintf(b->name, sizeof(b->name), "%s", name);
    snprintf(b->match, sizeof(b->match), "%s", match);
    b->is_prefix = is_prefix;
    b->params = pcopy;
    b->params_len = strlen(pcopy);
    nx_udf_module_ref(e->module);
    b->module = e->module;
    node->b = b;
    node->next = h->binds;
    h->binds = node;
    pthread_mutex_unlock(&h->mu);
    *out = b;
    return 0;
}

int nx_udf_host_tenant_has_bindings(nx_udf_host *h, const char *tenant)
{
    pthread_mutex_lock(&h->mu);
    int has = 0;
    for (bind_node *b = h->binds; b && !has; b = b->next)
        has = !strcmp(b->b->tenant, tenant);
    pthread_mutex_unlock(&h->mu);
    return has;
}

void nx_udf_binding_error(nx_udf_host *h, nx_udf_binding *b, char *buf, size_t n)
{
    pthread_mutex_lock(&h->mu);
    snprintf(buf, n, "%s", atomic_load(&b->disabled) ? b->error : "");
    pthread_mutex_unlock(&h->mu);
}

/* Disables b for every shard; the first error wins. Any thread. */
static void disable(nx_udf_host *h, nx_udf_binding *b, const char *why)
{
    pthread_mutex_lock(&h->mu);
    if (!atomic_load(&b->disabled)) {
        snprintf(b->error, sizeof(b->error), "%s", why);
        atomic_store(&b->disabled, 1);
        nx_log(NX_LOG_WARN, "udf binding disabled", "tenant=%s name=%s id=%llu error=\"%s\"",
               b->tenant, b->name, (unsigned long long)b->id, why);
    }
    pthread_mutex_unlock(&h->mu);
}

json_t *nx_udf_host_stats_json(nx_udf_host *h)
{
    uint64_t ev = 0, calls = 0, traps = 0, errs = 0, ninst = 0;
    for (int i = 0; i < h->nshards; i++) {
        nx_udf_shard_stats *s = &h->shards[i].st;
        ev += atomic_load(&s->events);
        calls += atomic_load(&s->calls);
        traps += atomic_load(&s->traps);
        errs += atomic_load(&s->errors);
        ninst += atomic_load(&s->instances);
    }
    uint64_t nb = 0, dis = 0, mods = 0;
    pthread_mutex_lock(&h->mu);
    for (bind_node *b = h->binds; b; b = b->next) {
        nb++;
        dis += atomic_load(&b->b->disabled) != 0;
    }
    for (udf_entry *e = h->entries; e; e = e->next)
        mods++;
    pthread_mutex_unlock(&h->mu);
    nx_udf_cache_stats cs;
    nx_udf_cache_get_stats(h->cache, &cs);
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "events",
                     (json_int_t)ev, "update_calls", (json_int_t)calls, "traps",
                     (json_int_t)traps, "errors", (json_int_t)errs, "instances",
                     (json_int_t)ninst, "bindings", (json_int_t)nb, "disabled", (json_int_t)dis,
                     "udfs", (json_int_t)mods, "compiles", (json_int_t)cs.compiles,
                     "cache_hits", (json_int_t)(cs.disk_hits + cs.mem_hits), "compile_failures",
                     (json_int_t)cs.failures, "last_compile_ms", cs.last_compile_ms);
}

/* ---- shard side ------------------------------------------------------------ */

static int tenant_bound(nx_udf_shard *us, const char *tid)
{
    for (size_t i = 0; i < us->nb; i++)
        if (!strcmp(us->b[i]->tenant, tid))
            return 1;
    return 0;
}

static int matches(const nx_udf_binding *b, const char *key, size_t klen)
{
    const char *bar = memchr(key, '|', klen);
    size_t nl = bar ? (size_t)(bar - key) : klen;
    size_t ml = strlen(b->match);
    if (b->is_prefix)
        return ml <= nl && memcmp(key, b->match, ml) == 0;
    return ml == nl && memcmp(key, b->match, ml) == 0;
}

static void on_log(void *arg, const char *msg, size_t len)
{
    nx_udf_binding *b = arg;
    char esc[300];
    nx_log_escape(msg, len, esc, sizeof(esc));
    nx_log(NX_LOG_INFO, "udf log", "tenant=%s name=%s msg=%s", b->tenant, b->name, esc);
}

/* Adds an instance of b to entry e (the stream's key follows the tenant). */
static void add_instance(nx_udf_shard *us, sentry *e, nx_udf_binding *b)
{
    if (atomic_load_explicit(&b->disabled, memory_order_relaxed))
        return;
    if (atomic_load(&b->instances) >= (uint64_t)NX_UDF_MAX_INST * (uint64_t)us->host->nshards) {
        st_add(&b->over_limit, 1);
        return;
    }
    inst *x = calloc(1, sizeof(*x));
    inst **nv = realloc(e->v, (e->ninst + 1) * sizeof(*nv));
    if (!x || !nv) {
        free(x);
        if (nv)
            e->v = nv;
        return;
    }
    e->v = nv;
    char err[NX_UDF_ERRLEN] = "";
    int rc = nx_udf_instance_create(b->module, &us->lim, b->params, b->params_len, on_log, b,
                                    &x->in, err, sizeof(err));
    if (rc) {
        free(x);
        char why[NX_UDF_ERRLEN + 32];
        snprintf(why, sizeof(why), "instance creation failed: %s", err);
        if (rc == NX_ETRAP || rc == NX_ETIMEOUT) {
            st_add(&us->st.traps, 1);
            atomic_fetch_add(&b->traps, 1);
        }
        disable(us->host, b, why);
        return;
    }
    nx_udf_binding_ref(b);
    x->b = b;
    e->v[e->ninst++] = x;
    atomic_fetch_add(&b->instances, 1);
    st_add(&us->st.instances, 1);
}

static sentry *slot(nx_udf_shard *us, uint64_t h, const char *tk, size_t len)
{
    size_t mask = us->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        sentry *e = &us->tab[i];
        if (!e->h || (e->h == h && e->tk_len == len && memcmp(e->tk, tk, len) == 0))
            return e;
    }
}

static int grow_tab(nx_udf_shard *us)
{
    size_t nc = us->cap ? us->cap * 2 : 64;
    sentry *old = us->tab;
    size_t oc = us->cap;
    us->tab = calloc(nc, sizeof(sentry));
    if (!us->tab) {
        us->tab = old;
        return NX_ENOMEM;
    }
    us->cap = nc;
    for (size_t i = 0; i < oc; i++)
        if (old[i].h)
            *slot(us, old[i].h, old[i].tk, old[i].tk_len) = old[i];
    free(old);
    return 0;
}

/* Passes x's buffered events to the module (the dirty flag is the caller's). */
static void flush_one(nx_udf_shard *us, inst *x)
{
    uint32_t n = x->n;
    x->n = 0;
    nx_udf_binding *b = x->b;
    if (!n || atomic_load_explicit(&b->disabled, memory_order_relaxed))
        return;
    int rc = nx_udf_update(x->in, x->buf, n);
    st_add(&us->st.calls, 1);
    st_add(&us->st.events, n);
    atomic_fetch_add_explicit(&b->events, n, memory_order_relaxed);
    if (rc == NX_ETRAP || rc == NX_ETIMEOUT) {
        st_add(&us->st.traps, 1);
        atomic_fetch_add(&b->traps, 1);
        disable(us->host, b, nx_udf_instance_error(x->in));
    } else if (rc) {
        st_add(&us->st.errors, 1);
        atomic_fetch_add(&b->errors, 1);
    }
}

void nx_udf_shard_flush(nx_udf_shard *us)
{
    for (size_t i = 0; i < us->ndirty; i++) {
        us->dirty[i]->dirty = 0;
        flush_one(us, us->dirty[i]);
    }
    us->ndirty = 0;
    us->last_t = NULL; /* tenants may be deleted between batches */
}

void nx_udf_shard_event(void *arg, nx_tenant *t, const char *key, size_t key_len,
                        const nx_update *u, int64_t now_ms)
{
    nx_udf_shard *us = arg;
    if (!us->nb)
        return;
    if (t != us->last_t) {
        us->last_t = t;
        us->last_has = tenant_bound(us, nx_tenant_id(t));
    }
    if (!us->last_has)
        return;
    /* tenant '\0' key into a stack buffer (keys are bounded by the line limit) */
    const char *tid = nx_tenant_id(t);
    size_t tl = strlen(tid);
    char stackbuf[1024];
    size_t len = tl + 1 + key_len;
    char *tk = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (!tk)
        return;
    memcpy(tk, tid, tl + 1);
    memcpy(tk + tl + 1, key, key_len);
    uint64_t h = XXH3_64bits(tk, len) | 1;
    if ((us->used + 1) * 4 > us->cap * 3 && grow_tab(us)) {
        if (tk != stackbuf)
            free(tk);
        return;
    }
    sentry *e = slot(us, h, tk, len);
    if (!e->h) {
        e->tk = malloc(len);
        if (!e->tk) {
            if (tk != stackbuf)
                free(tk);
            return;
        }
        memcpy(e->tk, tk, len);
        e->tk_len = (uint32_t)len;
        e->h = h;
        us->used++;
        for (size_t i = 0; i < us->nb; i++)
            if (!strcmp(us->b[i]->tenant, tid) && matches(us->b[i], key, key_len))
                add_instance(us, e, us->b[i]);
    }
    if (tk != stackbuf)
        free(tk);
    for (uint32_t i = 0; i < e->ninst; i++) {
        inst *x = e->v[i];
        if (atomic_load_explicit(&x->b->disabled, memory_order_relaxed))
            continue;
        if (x->n == x->cap) {
            if (x->cap < 1024) {
                uint32_t nc = x->cap ? x->cap * 4 : 16;
                nx_udf_event *nb = realloc(x->buf, nc * sizeof(*nb));
                if (!nb)
                    continue;
                x->buf = nb;
                x->cap = nc;
            } else {
                flush_one(us, x); /* a full buffer goes now; stays on the dirty list */
            }
        }
        x->buf[x->n++] = (nx_udf_event){.value = u->value,
                                        .ts_ms = u->ts_ms ? u->ts_ms : now_ms,
                                        .weight = u->weight};
        if (!x->dirty) {
            if (us->ndirty == us->dcap) {
                size_t nc = us->dcap ? us->dcap * 2 : 64;
                inst **nd = realloc(us->dirty, nc * sizeof(*nd));
                if (!nd) {
                    flush_one(us, x);
                    continue;
                }
                us->dirty = nd;
                us->dcap = nc;
            }
            x->dirty = 1;
            us->dirty[us->ndirty++] = x;
        }
    }
}

static void shard_bind(nx_udf_shard *us, nx_udf_binding *b)
{
    if (us->nb == us->bcap) {
        size_t nc = us->bcap ? us->bcap * 2 : 8;
        nx_udf_binding **nv = realloc(us->b, nc * sizeof(*nv));
        if (!nv)
            return;
        us->b = nv;
        us->bcap = nc;
    }
    nx_udf_binding_ref(b);
    us->b[us->nb++] = b;
    us->last_t = NULL;
    size_t tl = strlen(b->tenant);
    for (size_t i = 0; i < us->cap; i++) {
        sentry *e = &us->tab[i];
        if (e->h && e->tk_len > tl && memcmp(e->tk, b->tenant, tl + 1) == 0 &&
            matches(b, e->tk + tl + 1, e->tk_len - tl - 1))
            add_instance(us, e, b);
    }
}

static void shard_unbind(nx_udf_shard *us, nx_udf_binding *b)
{
    nx_udf_shard_flush(us);
    for (size_t i = 0; i < us->nb; i++)
        if (us->b[i] == b) {
            us->b[i] = us->b[--us->nb];
            nx_udf_binding_unref(b);
            break;
        }
    us->last_t = NULL;
    for (size_t i = 0; i < us->cap; i++) {
        sentry *e = &us->tab[i];
        for (uint32_t j = 0; e->h && j < e->ninst;) {
            if (e->v[j]->b == b) {
                atomic_fetch_sub(&b->instances, 1);
                inst_free(us, e->v[j]);
                e->v[j] = e->v[--e->ninst];
            } else {
                j++;
            }
        }
    }
}

static void shard_result(nx_udf_shard *us, nx_udf_msg *m)
{
    nx_udf_shard_flush(us);
    m->parts = NULL;
    m->nparts = 0;
    if (!us->cap)
        return;
    size_t tl = strlen(m->tenant), len = tl + 1 + m->key_len;
    char *tk = malloc(len);
    if (!tk)
        return;
    memcpy(tk, m->tenant, tl + 1);
    memcpy(tk + tl + 1, m->key, m->key_len);
    sentry *e = slot(us, XXH3_64bits(tk, len) | 1, tk, len);
    free(tk);
    if (!e->h || !e->ninst)
        return;
    m->parts = calloc(e->ninst, sizeof(nx_udf_part));
    if (!m->parts)
        return;
    for (uint32_t i = 0; i < e->ninst; i++) {
        inst *x = e->v[i];
        nx_udf_part *p = &m->parts[m->nparts++];
        nx_udf_binding_ref(x->b);
        p->b = x->b;
        if (atomic_load(&x->b->disabled))
            continue;
        size_t jl;
        int rc = nx_udf_result(x->in, &p->json, &jl);
        if (rc == 0 && (nx_udf_module_flags(x->b->module) & NX_UDF_HAS_MERGE))
            rc = nx_udf_snapshot(x->in, &p->snap, &p->snap_len);
        if (rc == NX_ETRAP || rc == NX_ETIMEOUT) {
            st_add(&us->st.traps, 1);
            atomic_fetch_add(&x->b->traps, 1);
            disable(us->host, x->b, nx_udf_instance_error(x->in));
        }
        if (rc) {
            free(p->json);
            free(p->snap);
            p->json = NULL;
            p->snap = NULL;
        }
    }
}

void nx_udf_shard_handle(nx_udf_shard *us, nx_udf_msg *m)
{
    switch (m->op) {
    case NX_UDF_OP_BIND: shard_bind(us, m->b); break;
    case NX_UDF_OP_UNBIND: shard_unbind(us, m->b); break;
    case NX_UDF_OP_RESULT: shard_result(us, m); break;
    }
}

void nx_udf_parts_free(nx_udf_part *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].json);
        free(p[i].snap);
        nx_udf_binding_unref(p[i].b);
    }
    free(p);
}
