/*
 * test_statsd.c — unit tests of the StatsD / DogStatsD line parser
 * (src/ingest/nx_statsd.c): every type, multi-value lines, rates, tags,
 * tenants, DogStatsD fields, and each rejection reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/nx_statsd.h"

static nx_statsd_limits lim;
static nx_tag tags[128];

static int parse(const char *s, nx_statsd_line *l)
{
    return nx_statsd_parse(s, strlen(s), &lim, tags, l);
}

static int setup(void **state)
{
    (void)state;
    nx_statsd_limits_default(&lim);
    return 0;
}

static void test_types(void **state)
{
    (void)state;
    struct { const char *s; nx_type t; } cases[] = {
        {"a:1|c", NX_TYPE_COUNTER}, {"a:1|g", NX_TYPE_GAUGE}, {"a:1|ms", NX_TYPE_TIMER},
        {"a:1|h", NX_TYPE_HISTOGRAM}, {"a:1|d", NX_TYPE_DISTRIBUTION}, {"a:x|s", NX_TYPE_SET},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        nx_statsd_line l;
        assert_int_equal(parse(cases[i].s, &l), NX_SD_OK);
        assert_int_equal(l.type, cases[i].t);
        assert_int_equal(l.name_len, 1);
        assert_int_equal(l.nvalues, 1);
        assert_true(l.rate == 1.0);
        assert_null(l.tenant);
    }
    nx_statsd_line l;
    assert_int_equal(parse("a:1|x", &l), NX_SD_BAD_TYPE);
    assert_int_equal(parse("a:1|msx", &l), NX_SD_BAD_TYPE);
    assert_int_equal(parse("a:1|", &l), NX_SD_BAD_TYPE);
}

static void test_values(void **state)
{
    (void)state;
    nx_statsd_line l;
    nx_statsd_value v;
    uint32_t pos = 0;
    assert_int_equal(parse("lat:1.5:2:-3.25:1e3|ms", &l), NX_SD_OK);
    assert_int_equal(l.nvalues, 4);
    double want[] = {1.5, 2, -3.25, 1000};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(nx_statsd_value_next(&l, &pos, &v), 1);
        assert_true(v.value == want[i]);
        assert_int_equal(v.delta, 0);
    }
    assert_int_equal(nx_statsd_value_next(&l, &pos, &v), 0);

    /* gauge deltas */
    assert_int_equal(parse("g:+5:-2:7|g", &l), NX_SD_OK);
    pos = 0;
    assert_int_equal(nx_statsd_value_next(&l, &pos, &v), 1);
    assert_true(v.value == 5 && v.delta);
    assert_int_equal(nx_statsd_value_next(&l, &pos, &v), 1);
    assert_true(v.value == -2 && v.delta);
    assert_int_equal(nx_statsd_value_next(&l, &pos, &v), 1);
    assert_true(v.value == 7 && !v.delta);

    /* sets take the span whole */
    assert_int_equal(parse("u:fe80::1|s", &l), NX_SD_OK);
    pos = 0;
    assert_int_equal(nx_statsd_value_next(&l, &pos, &v), 1);
    assert_int_equal(v.member_len, 7);
    assert_memory_equal(v.member, "fe80::1", 7);
    assert_int_equal(nx_statsd_value_next(&l, &pos, &v), 0);

    const char *bad[] = {"a:nan|ms", "a:inf|c", "a:-Infinity|g", "a:1x|c", "a:|c", "a:1:|c",
                         "a:0x10|c", "a:1e999|ms", "a:.|c", "a:--1|c", "a:1e|c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &l), NX_SD_BAD_VALUE);
}

static void test_numbers_exact(void **state)
{
    (void)state;
    const char *nums[] = {"0", "1", "0.1", "123.456", "-0.001", "99999999999.5",
                          "3.14159265358979", "12345678901234567890", "1.5e-7", "7E3"};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        double d;
        assert_int_equal(nx_statsd_parse_double(nums[i], strlen(nums[i]), &d), NX_OK);
        assert_true(d == strtod(nums[i], NULL));
    }
    /* random decimals agree bit for bit with strtod */
    srand(42);
    for (int i = 0; i < 20000; i++) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "%d.%0*d", rand() % 100000, 1 + rand() % 9,
                         rand() % 1000000);
        double d;
        assert_int_equal(nx_statsd_parse_double(buf, (size_t)n, &d), NX_OK);
        assert_true(d == strtod(buf, NULL));
    }
}

static void test_rate_tags_tenant(void **state)
{
    (void)state;
    nx_statsd_line l;
    assert_int_equal(parse("req:1|c|@0.25|#route:/x,host:a,tenant:acme,flag", &l), NX_SD_OK);
    assert_true(l.rate == 0.25);
    assert_int_equal(l.ntags, 3);
    assert_non_null(l.tenant);
    assert_int_equal(l.tenant_len, 4);
    assert_memory_equal(l.tenant, "acme", 4);
    assert_memory_equal(l.tags[0].key, "route", 5);
    assert_memory_equal(l.tags[0].value, "/x", 2);
    assert_int_equal(l.tags[2].key_len, 4);
    assert_null(l.tags[2].value);

    /* tags before rate, DogStatsD container and timestamp fields */
    assert_int_equal(parse("req:2|d|#a:b|@1|c:abc123|T1700000000", &l), NX_SD_OK);
    assert_int_equal(l.ts_ms, 1700000000000LL);
    assert_int_equal(l.ntags, 1);
    /* tag values may hold ':' */
    assert_int_equal(parse("x:1|c|#url:http://h:1/p", &l), NX_SD_OK);
    assert_int_equal(l.tags[0].value_len, strlen("http://h:1/p"));

    assert_int_equal(parse("a:1|c|@0", &l), NX_SD_BAD_RATE);
    assert_int_equal(parse("a:1|c|@1.5", &l), NX_SD_BAD_RATE);
    assert_int_equal(parse("a:1|c|@x", &l), NX_SD_BAD_RATE);
    assert_int_equal(parse("a:1|c|@-0.5", &l), NX_SD_BAD_RATE);
    assert_int_equal(parse("a:1|c|#tenant:ACME", &l), NX_SD_BAD_TENANT);
    assert_int_equal(parse("a:1|c|#tenant:", &l), NX_SD_BAD_TENANT);
    assert_int_equal(parse("a:1|c|#tenant:a,tenant:b", &l), NX_SD_BAD_TENANT);
    assert_int_equal(parse("a:1|c|#tenant", &l), NX_SD_BAD_TENANT);
    assert_int_equal(parse("a:1|c|#,a", &l), NX_SD_BAD_TAGS);
    assert_int_equal(parse("a:1|c|#a,,b", &l), NX_SD_BAD_TAGS);
    assert_int_equal(parse("a:1|c|#:v", &l), NX_SD_BAD_TAGS);
    assert_int_equal(parse("a:1|c|#a\tb", &l), NX_SD_BAD_TAGS);
    assert_int_equal(parse("a:1|c|Tx", &l), NX_SD_BAD_TIMESTAMP);
    assert_int_equal(parse("a:1|c|T0", &l), NX_SD_BAD_TIMESTAMP);
    assert_int_equal(parse("a:1|c|@0.5|@0.5", &l), NX_SD_BAD_RATE);
    assert_int_equal(parse("a:1|c|?", &l), NX_SD_BAD_FORMAT);
    assert_int_equal(parse("a:1|c||", &l), NX_SD_BAD_FORMAT);

    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "m:1|c|#");
    for (int i = 0; i < 65; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "k%d:v,", i);
    assert_int_equal(parse(buf, &l), NX_SD_TOO_MANY_TAGS);
}

static void test_format_name_utf8_length(void **state)
{
    (void)state;
    nx_statsd_line l;
    assert_int_equal(parse("nocolon", &l), NX_SD_BAD_FORMAT);
    assert_int_equal(parse("a:1", &l), NX_SD_BAD_FORMAT);
    assert_int_equal(parse(":1|c", &l), NX_SD_BAD_NAME);
    assert_int_equal(parse("a b:1|c", &l), NX_SD_BAD_NAME);
    assert_int_equal(parse("a#b:1|c", &l), NX_SD_BAD_NAME);
    assert_int_equal(parse("caf\xc3\xa9.latency:1|ms", &l), NX_SD_OK);
    assert_int_equal(parse("bad\xff:1|c", &l), NX_SD_BAD_UTF8);
    assert_int_equal(parse("bad\xc0\xaf:1|c", &l), NX_SD_BAD_UTF8);     /* overlong */
    assert_int_equal(parse("bad\xed\xa0\x80:1|c", &l), NX_SD_BAD_UTF8); /* surrogate */
    assert_int_equal(parse("bad\xe2\x82:1|c", &l), NX_SD_BAD_UTF8);     /* truncated */

    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, 'a', 70000);
    memcpy(big + 69990, ":1|c", 4);
    assert_int_equal(nx_statsd_parse(big, 69994, &lim, tags, &l), NX_SD_TOO_LONG);
    /* long name within line limit */
    memcpy(big + 300, ":1|c", 4);
    assert_int_equal(nx_statsd_parse(big, 304, &lim, tags, &l), NX_SD_BAD_NAME);
    free(big);
}

static void test_random_garbage(void **state)
{
    (void)state;
    /* the parser never crashes and never accepts a line without ':' and '|' */
    srand(7);
    char buf[512];
    for (int i = 0; i < 50000; i++) {
        size_t n = (size_t)(rand() % (int)sizeof(buf));
        for (size_t j = 0; j < n; j++)
            buf[j] = (char)(rand() & 0xff);
        nx_statsd_line l;
        int rc = nx_statsd_parse(buf, n, &lim, tags, &l);
        assert_true(rc >= 0 && rc < NX_SD_NREASONS);
        if (rc == NX_SD_OK) {
            assert_non_null(memchr(buf, ':', n));
            assert_non_null(memchr(buf, '|', n));
        }
    }
}

static void test_reason_names(void **state)
{
    (void)state;
    for (int r = 0; r < NX_SD_NREASONS; r++) {
        const char *n = nx_statsd_reason_name(r);
        assert_non_null(n);
        assert_string_not_equal(n, "unknown");
    }
    assert_int_equal(nx_statsd_reason_of_error(NX_ETYPE), NX_SD_TYPE_MISMATCH);
    assert_int_equal(nx_statsd_reason_of_error(NX_ETOOLATE), NX_SD_TOO_LATE);
    assert_true(nx_tenant_id_valid("acme-01_x", 9));
    assert_false(nx_tenant_id_valid("", 0));
    assert_false(nx_tenant_id_valid("A", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_types, setup),
        cmocka_unit_test_setup(test_values, setup),
        cmocka_unit_test_setup(test_numbers_exact, setup),
        cmocka_unit_test_setup(test_rate_tags_tenant, setup),
        cmocka_unit_test_setup(test_format_name_utf8_length, setup),
        cmocka_unit_test_setup(test_random_garbage, setup),
        cmocka_unit_test_setup(test_reason_names, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
