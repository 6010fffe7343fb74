/*
 * test_registry.c — tenant registry: create/list/delete/rotate, persistence
 * and reload (nums never reused), hashes on disk and no plaintext, corrupt
 * files rejected with a message, the auth policy (401 / 403 / default on
 * loopback only / off once tenants exist / --allow-default), admin token
 * sources, HTTP request quota and shard bucket sync.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus.h"
#include "tenant/nx_registry.h"

static char g_dir[64];

static int setup_dir(void **st)
{
    (void)st;
    strcpy(g_dir, "/tmp/nx_test_registry.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **st)
{
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static nx_registry *open_reg(nx_default_policy pol)
{
    nx_registry_options o = {.data_dir = g_dir, .default_policy = pol};
    nx_registry *r = NULL;
    char err[256] = "";
    int rc = nx_registry_open(&o, &r, err, sizeof err);
    if (rc)
        fail_msg("open: %s (%s)", nx_strerror(rc), err);
    return r;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *n = fread(buf, 1, (1 << 20) - 1, f);
    buf[*n] = 0;
    fclose(f);
    return buf;
}

static void write_file(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_create_list_delete_persist(void **st)
{
    (void)st;
    nx_registry *r = open_reg(NX_DEFAULT_AUTO);
    char ta[NX_TOKEN_LEN + 1], tb[NX_TOKEN_LEN + 1], tc[NX_TOKEN_LEN + 1];
    char scratch[NX_TOKEN_LEN + 1];
    nx_tenant_info a, b, c, x;
    nx_quotas q = {.events_per_s = 1000, .burst = 2000, .max_streams = 10,
                   .max_bytes = 1 << 20, .http_requests_per_s = 5};
    assert_int_equal(nx_registry_create(r, "acme", 4, &q, 0, &a, ta), 0);
    assert_int_equal(nx_registry_create(r, "beta", 4, NULL, 0, &b, tb), 0);
    assert_int_equal(nx_registry_create(r, "gamma", 5, NULL, 0, &c, tc), 0);
    assert_int_equal(a.num, 1);
    assert_int_equal(b.num, 2);
    assert_int_equal(c.num, 3);
    assert_int_equal(a.quotas.max_streams, 10);
    assert_true(a.created_ms > 1600000000000ll);
    assert_int_equal(nx_registry_create(r, "acme", 4, NULL, 0, &x, scratch), NX_EEXIST);
    assert_int_equal(nx_registry_create(r, "default", 7, NULL, 0, &x, scratch), NX_EEXIST);
    assert_int_equal(nx_registry_create(r, "Bad", 3, NULL, 0, &x, scratch), NX_EINVAL);
    assert_int_equal(nx_registry_create(r, "a b", 3, NULL, 0, &x, scratch), NX_EINVAL);
    assert_int_equal(nx_registry_create(r, "", 0, NULL, 0, &x, scratch), NX_EINVAL);
    char long_id[66];
    memset(long_id, 'a', 65);
    assert_int_equal(nx_registry_create(r, long_id, 65, NULL, 0, &x, scratch), NX_EINVAL);
    assert_int_equal(nx_registry_create(r, long_id, 64, NULL, 0, &x, scratch), 0);
    assert_int_equal(x.num, 4);
    assert_int_equal(nx_registry_count(r), 4);

    nx_tenant_info *v;
    size_t n;
    assert_int_equal(nx_registry_list(r, &v, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(v[0].id, "acme");
    assert_string_equal(v[2].id, "gamma");
    free(v);

    /* delete the newest: its num must not come back */
    assert_int_equal(nx_registry_delete(r, long_id, 64, 0, &x), 0);
    assert_int_equal(x.num, 4);
    assert_int_equal(nx_registry_delete(r, long_id, 64, 0, NULL), NX_ENOENT);
    assert_int_equal(nx_registry_delete(r, "beta", 4, 0, NULL), 0);
    assert_int_equal(nx_registry_get(r, "beta", 4, &x), NX_ENOENT);
    assert_int_equal(nx_registry_authenticate(r, tb, strlen(tb), &x), NX_EAUTH);
    nx_registry_close(r);

    /* the file holds hashes, never a plaintext token */
    char path[256];
    snprintf(path, sizeof path, "%s/tenants.json", g_dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    size_t len;
    char *file = slurp(path, &len);
    assert_non_null(file);
    assert_null(strstr(file, ta));
    assert_null(strstr(file, ta + 4)); /* not even the hex part */
    assert_null(strstr(file, tc + 4));
    assert_null(strstr(file, "nxt_"));
    assert_non_null(strstr(file, "token_sha256"));
    free(file);

    /* reload: same tenants, tokens still work, next num is 5 */
    r = open_reg(NX_DEFAULT_AUTO);
    assert_int_equal(nx_registry_count(r), 2);
    assert_int_equal(nx_registry_authenticate(r, ta, strlen(ta), &x), 0);
    assert_string_equal(x.id, "acme");
    assert_int_equal(x.num, 1);
    assert_int_equal(x.quotas.events_per_s, 1000);
    assert_int_equal(x.quotas.burst, 2000);
    assert_int_equal(x.quotas.max_bytes, 1 << 20);
    assert_int_equal(x.quotas.http_requests_per_s, 5);
    assert_int_equal(x.created_ms, a.created_ms);
    assert_int_equal(nx_registry_authenticate(r, tc, strlen(tc), &x), 0);
    assert_string_equal(x.id, "gamma");
    assert_int_equal(nx_registry_get_num(r, 3, &x), 0);
    assert_string_equal(x.id, "gamma");
    assert_int_equal(nx_registry_get_num(r, 2, &x), NX_ENOENT);
    assert_int_equal(nx_registry_get_num(r, 0, &x), 0);
    assert_string_equal(x.id, "default");
    assert_int_equal(nx_registry_create(r, "delta", 5, NULL, 0, &x, tb), 0);
    assert_int_equal(x.num, 5);
    nx_registry_close(r);
}

static void test_tokens_isolate_and_rotate(void **st)
{
    (void)st;
    nx_registry *r = open_reg(NX_DEFAULT_AUTO);
    char ta[NX_TOKEN_LEN + 1], tb[NX_TOKEN_LEN + 1], old[NX_TOKEN_LEN + 1];
    nx_tenant_info a, b, x;
    nx_auth_result why;
    assert_int_equal(nx_registry_create(r, "a", 1, NULL, 0, &a, ta), 0);
    assert_int_equal(nx_registry_create(r, "b", 1, NULL, 0, &b, tb), 0);
    /* each token resolves to its own tenant only */
    assert_int_equal(nx_registry_resolve(r, ta, strlen(ta), false, &x, &why), 0);
    assert_string_equal(x.id, "a");
    assert_int_equal(nx_registry_resolve(r, tb, strlen(tb), false, &x, &why), 0);
    assert_string_equal(x.id, "b");
    /* wrong token -> 403 */
    char bad[NX_TOKEN_LEN + 1];
    memcpy(bad, ta, sizeof bad);
    bad[NX_TOKEN_LEN - 1] = bad[NX_TOKEN_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(nx_registry_resolve(r, bad, strlen(bad), true, &x, &why), NX_EAUTH);
    assert_int_equal(why.status, 403);
    assert_string_equal(why.code, "bad_token");
    /* a prefix or extension of a valid token is not valid */
    assert_int_equal(nx_registry_authenticate(r, ta, strlen(ta) - 1, &x), NX_EAUTH);
    assert_int_equal(nx_registry_authenticate(r, ta, 0, &x), NX_EAUTH);
    /* missing token with tenants configured -> 401, even on loopback */
    assert_int_equal(nx_registry_resolve(r, NULL, 0, true, &x, &why), NX_EAUTH);
    assert_int_equal(why.status, 401);
    /* rotation: old token rejected, new one works, B untouched */
    memcpy(old, ta, sizeof old);
    assert_int_equal(nx_registry_rotate(r, "a", 1, 0, ta), 0);
    assert_string_not_equal(old, ta);
    assert_int_equal(nx_registry_authenticate(r, old, strlen(old), &x), NX_EAUTH);
    assert_int_equal(nx_registry_authenticate(r, ta, strlen(ta), &x), 0);
    assert_string_equal(x.id, "a");
    assert_int_equal(nx_registry_authenticate(r, tb, strlen(tb), &x), 0);
    assert_string_equal(x.id, "b");
    assert_int_equal(nx_registry_rotate(r, "zz", 2, 0, ta), NX_ENOENT);
    nx_registry_close(r);
    /* rotation persisted */
    r = open_reg(NX_DEFAULT_AUTO);
    assert_int_equal(nx_registry_authenticate(r, old, strlen(old), &x), NX_EAUTH);
    assert_int_equal(nx_registry_authenticate(r, ta, strlen(ta), &x), 0);
    assert_string_equal(x.id, "a");
    nx_registry_close(r);
}

static void test_default_policy(void **st)
{
    (void)st;
    nx_tenant_info x;
    nx_auth_result why;
    char t[NX_TOKEN_LEN + 1];
    /* memory-only registries: no file involved */
    nx_registry_options o = {.default_policy = NX_DEFAULT_AUTO};
    nx_registry *r;
    assert_int_equal(nx_registry_open(&o, &r, NULL, 0), 0);
    assert_true(nx_registry_default_enabled(r));
    assert_int_equal(nx_registry_resolve(r, NULL, 0, true, &x, &why), 0);
    assert_string_equal(x.id, "default");
    assert_int_equal(x.num, 0);
    assert_int_equal(nx_registry_resolve(r, NULL, 0, false, &x, &why), NX_EAUTH);
    assert_int_equal(why.status, 401);
    assert_int_equal(nx_registry_create(r, "one", 3, NULL, 0, &x, t), 0);
    assert_false(nx_registry_default_enabled(r));
    assert_int_equal(nx_registry_resolve(r, NULL, 0, true, &x, &why), NX_EAUTH);
    assert_int_equal(why.status, 401);
    /* deleting the last tenant brings the default back (AUTO) */
    assert_int_equal(nx_registry_delete(r, "one", 3, 0, NULL), 0);
    assert_int_equal(nx_registry_resolve(r, NULL, 0, true, &x, &why), 0);
    nx_registry_close(r);

    o.default_policy = NX_DEFAULT_ON;
    assert_int_equal(nx_registry_open(&o, &r, NULL, 0), 0);
    assert_int_equal(nx_registry_create(r, "one", 3, NULL, 0, &x, t), 0);
    assert_int_equal(nx_registry_resolve(r, NULL, 0, true, &x, &why), 0);
    assert_string_equal(x.id, "default");
    assert_int_equal(nx_registry_resolve(r, NULL, 0, false, &x, &why), NX_EAUTH);
    assert_int_equal(nx_registry_resolve(r, t, strlen(t), false, &x, &why), 0);
    assert_string_equal(x.id, "one");
    nx_registry_close(r);

    o.default_policy = NX_DEFAULT_OFF;
    assert_int_equal(nx_registry_open(&o, &r, NULL, 0), 0);
    assert_int_equal(nx_registry_resolve(r, NULL, 0, true, &x, &why), NX_EAUTH);
    assert_int_equal(why.status, 401);
    nx_registry_close(r);
}

static void test_bearer_parse(void **st)
{
    (void)st;
    const char *t;
    size_t n;
    assert_int_equal(nx_registry_bearer("Bearer nxt_abc", &t, &n), 0);
    assert_int_equal(n, 7);
    assert_memory_equal(t, "nxt_abc", 7);
    assert_int_equal(nx_registry_bearer("bearer   xyz  ", &t, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(nx_registry_bearer("Basic abc", &t, &n), NX_EINVAL);
    assert_int_equal(nx_registry_bearer("Bearer ", &t, &n), NX_EINVAL);
    assert_int_equal(nx_registry_bearer(NULL, &t, &n), NX_EINVAL);
}

static void expect_corrupt(const char *text, int want, const char *needle)
{
    write_file("tenants.json", text);
    nx_registry_options o = {.data_dir = g_dir};
    nx_registry *r = NULL;
    char err[256] = "";
    int rc = nx_registry_open(&o, &r, err, sizeof err);
    if (rc != want)
        fail_msg("want %d got %d for %s (%s)", want, rc, text, err);
    assert_null(r);
    assert_non_null(strstr(err, "tenants.json"));
    if (!strstr(err, needle))
        fail_msg("error '%s' lacks '%s'", err, needle);
}

#define H64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define Q "{\"events_per_s\":0,\"burst\":0,\"max_streams\":0,\"max_bytes\":0," \
          "\"http_requests_per_s\":0}"
#define T(id, num) "{\"id\":\"" id "\",\"num\":" #num ",\"created_ms\":1,\"token_sha256\":\"" \
                   H64 "\",\"quotas\":" Q "}"
#define F(next, tenants) "{\"format\":\"nexus-tenants\",\"version\":1,\"next_num\":" #next \
                         ",\"tenants\":[" tenants "]}"

static void test_corrupt_rejected(void **st)
{
    (void)st;
    /* the valid baseline loads */
    write_file("tenants.json", F(3, T("a", 1) "," T("b", 2)));
    nx_registry_options o = {.data_dir = g_dir};
    nx_registry *r = NULL;
    char err[256] = "";
    assert_int_equal(nx_registry_open(&o, &r, err, sizeof err), 0);
    assert_int_equal(nx_registry_count(r), 2);
    nx_registry_close(r);

    expect_corrupt("", NX_ECORRUPT, "JSON");
    expect_corrupt("{\"format\":\"nexus-tenants\",\"version\":1,", NX_ECORRUPT, "JSON");
    expect_corrupt("[]", NX_ECORRUPT, "format");
    expect_corrupt(F(3, T("a", 1)) "garbage", NX_ECORRUPT, "JSON");
    expect_corrupt("{\"format\":\"nexus-tenants\",\"version\":2,\"next_num\":1,\"tenants\":[]}",
                   NX_EVERSION, "version 2");
    expect_corrupt(F(3, T("a", 1) "," T("a", 2)), NX_ECORRUPT, "twice");
    expect_corrupt(F(3, T("a", 1) "," T("b", 1)), NX_ECORRUPT, "already used");
    expect_corrupt(F(2, T("a", 1) "," T("b", 2)), NX_ECORRUPT, "next_num");
    expect_corrupt(F(3, T("a", 0)), NX_ECORRUPT, "num");
    expect_corrupt(F(3, T("A", 1)), NX_ECORRUPT, "id");
    expect_corrupt(F(3, T("default", 1)), NX_ECORRUPT, "id");
    expect_corrupt(F(3, "{\"id\":\"a\",\"num\":1,\"created_ms\":1,\"token_sha256\":\"xx\","
                        "\"quotas\":" Q "}"), NX_ECORRUPT, "token_sha256");
    expect_corrupt(F(3, "{\"id\":\"a\",\"num\":1,\"created_ms\":1,\"token_sha256\":\"" H64
                        "\",\"quotas\":{\"events_per_s\":-1,\"burst\":0,\"max_streams\":0,"
                        "\"max_bytes\":0,\"http_requests_per_s\":0}}"), NX_ECORRUPT, "quotas");
    expect_corrupt(F(3, "{\"id\":\"a\",\"num\":1,\"created_ms\":1,\"token_sha256\":\"" H64
                        "\",\"quotas\":" Q ",\"token\":\"nxt_x\"}"), NX_ECORRUPT, "exactly");
    expect_corrupt("{\"format\":\"nexus-tenants\",\"format\":\"x\",\"version\":1}", NX_ECORRUPT,
                   "JSON"); /* duplicate key */
    char p[256];
    snprintf(p, sizeof p, "%s/tenants.json", g_dir);
    unlink(p);
}

static void test_admin_token(void **st)
{
    (void)st;
    nx_registry *r = open_reg(NX_DEFAULT_AUTO);
    bool insecure = true;
    char used[512], err[256] = "";
    /* generated into the data dir, 0600, and reused on the next start */
    assert_int_equal(nx_registry_admin_setup(r, NULL, NULL, &insecure, used, sizeof used,
                                             err, sizeof err), 0);
    assert_false(insecure);
    struct stat sb;
    assert_int_equal(stat(used, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    size_t n;
    char *tok = slurp(used, &n);
    assert_int_equal(n, NX_TOKEN_LEN + 1);
    assert_memory_equal(tok, "nxa_", 4);
    assert_true(nx_registry_is_admin(r, tok, NX_TOKEN_LEN));
    assert_false(nx_registry_is_admin(r, tok, NX_TOKEN_LEN - 1));
    nx_registry_close(r);
    r = open_reg(NX_DEFAULT_AUTO);
    assert_false(nx_registry_is_admin(r, tok, NX_TOKEN_LEN)); /* not set up yet */
    assert_int_equal(nx_registry_admin_setup(r, NULL, "", NULL, NULL, 0, err, sizeof err), 0);
    assert_true(nx_registry_is_admin(r, tok, NX_TOKEN_LEN));
    /* the admin token is not a tenant credential */
    nx_tenant_info x;
    nx_auth_result why;
    assert_int_equal(nx_registry_resolve(r, tok, NX_TOKEN_LEN, true, &x, &why), NX_EAUTH);
    assert_int_equal(why.status, 403);
    free(tok);
    /* from the environment */
    assert_int_equal(nx_registry_admin_setup(r, NULL, "s3cret-s3cret-s3cret", NULL, NULL, 0,
                                             err, sizeof err), 0);
    assert_true(nx_registry_is_admin(r, "s3cret-s3cret-s3cret", 20));
    assert_int_equal(nx_registry_admin_setup(r, NULL, "short", NULL, NULL, 0, err, sizeof err),
                     NX_EINVAL);
    /* from a file, trailing newline trimmed, group-readable flagged */
    write_file("my.token", "file-token-0123456789\n");
    char p[256];
    snprintf(p, sizeof p, "%s/my.token", g_dir);
    chmod(p, 0640);
    assert_int_equal(nx_registry_admin_setup(r, p, "ignored-env-token-xx", &insecure, NULL, 0,
                                             err, sizeof err), 0);
    assert_true(insecure);
    assert_true(nx_registry_is_admin(r, "file-token-0123456789", 21));
    assert_false(nx_registry_is_admin(r, "ignored-env-token-xx", 20));
    snprintf(p, sizeof p, "%s/missing.token", g_dir);
    assert_int_equal(nx_registry_admin_setup(r, p, NULL, NULL, NULL, 0, err, sizeof err),
                     NX_ENOENT);
    assert_non_null(strstr(err, "missing.token"));
    nx_registry_close(r);
}

static void test_http_quota_and_sync(void **st)
{
    (void)st;
    nx_registry_options o = {.default_quotas = {.http_requests_per_s = 2}};
    nx_registry *r;
    assert_int_equal(nx_registry_open(&o, &r, NULL, 0), 0);
    char t[NX_TOKEN_LEN + 1];
    nx_tenant_info a, b;
    nx_quotas qa = {.events_per_s = 100, .burst = 100, .http_requests_per_s = 3};
    assert_int_equal(nx_registry_create(r, "a", 1, &qa, 0, &a, t), 0);
    assert_int_equal(nx_registry_create(r, "b", 1, NULL, 0, &b, t), 0);
    int64_t now = 1000000000000ll; /* the limiter's fake clock */
    int ok = 0;
    uint64_t retry = 0;
    for (int i = 0; i < 10; i++)
        ok += nx_registry_http_admit(r, a.num, now, &retry) == 0;
    assert_int_equal(ok, 3);
    assert_int_equal(retry, 1);
    /* B's budget is its own */
    ok = 0;
    for (int i = 0; i < 10; i++)
        ok += nx_registry_http_admit(r, b.num, now, NULL) == 0;
    assert_int_equal(ok, 2);
    assert_int_equal(nx_registry_http_admit(r, 99, now, NULL), NX_ENOENT);

    /* shard buckets follow the registry */
    nx_rl_table *tbl;
    assert_int_equal(nx_rl_table_create(4, &tbl), 0);
    uint64_t seen = 0;
    assert_int_equal(nx_registry_sync_limits(r, tbl, 2, now, &seen), 0);
    assert_int_equal(seen, nx_registry_generation(r));
    assert_int_equal(nx_rl_table_take(tbl, a.num, now, 1000), 50); /* 100 / 2 shards */
    assert_int_equal(nx_rl_table_take(tbl, b.num, now, 1000), 1000); /* unlimited */
    qa.events_per_s = 10;
    qa.burst = 10;
    assert_int_equal(nx_registry_set_quotas(r, "a", 1, &qa, 0), 0);
    assert_int_equal(nx_registry_delete(r, "b", 1, 0, NULL), 0);
    assert_int_equal(nx_registry_sync_limits(r, tbl, 1, now + 1000000000ll, &seen), 0);
    assert_int_equal(nx_rl_table_take(tbl, a.num, now + 1000000000ll, 1000), 10);
    nx_rl_counts c;
    assert_int_equal(nx_rl_table_counts(tbl, b.num, &c), NX_ENOENT);
    assert_int_equal(nx_rl_table_counts(tbl, 0, &c), 0); /* default has a bucket */
    nx_rl_table_destroy(tbl);
    nx_registry_close(r);
}

static void test_many_tenants_nosync(void **st)
{
    (void)st;
    int scale = getenv("NX_TEST_SCALE") ? atoi(getenv("NX_TEST_SCALE")) : 1;
    int N = 10000 * (scale > 0 ? scale : 1);
    nx_registry *r = open_reg(NX_DEFAULT_AUTO);
    char (*tok)[NX_TOKEN_LEN + 1] = malloc((size_t)N * sizeof *tok);
    assert_non_null(tok);
    char id[32];
    nx_tenant_info x;
    for (int i = 0; i < N; i++) {
        int n = snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(nx_registry_create(r, id, (size_t)n, NULL, NX_REG_NOSYNC, &x, tok[i]),
                         0);
    }
    assert_int_equal(nx_registry_flush(r), 0);
    /* delete every third, then reload and check every token */
    for (int i = 0; i < N; i += 3) {
        int n = snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(nx_registry_delete(r, id, (size_t)n, NX_REG_NOSYNC, NULL), 0);
    }
    assert_int_equal(nx_registry_flush(r), 0);
    nx_registry_close(r);
    r = open_reg(NX_DEFAULT_AUTO);
    assert_int_equal(nx_registry_count(r), (size_t)(N - (N + 2) / 3));
    for (int i = 0; i < N; i++) {
        int rc = nx_registry_authenticate(r, tok[i], NX_TOKEN_LEN, &x);
        if (i % 3 == 0) {
            assert_int_equal(rc, NX_EAUTH);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(x.num, (uint32_t)i + 1);
            snprintf(id, sizeof id, "t%d", i);
            assert_string_equal(x.id, id);
        }
    }
    free(tok);
    nx_registry_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_list_delete_persist, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_tokens_isolate_and_rotate, setup_dir, teardown_dir),
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_bearer_parse),
        cmocka_unit_test_setup_teardown(test_corrupt_rejected, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_admin_token, setup_dir, teardown_dir),
        cmocka_unit_test(test_http_quota_and_sync),
        cmocka_unit_test_setup_teardown(test_many_tenants_nosync, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
