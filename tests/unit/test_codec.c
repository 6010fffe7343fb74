/*
 * test_codec.c — the shared byte toolkit: varints, bounds-checked reads,
 * frames and their checksums. Everything else's "garbage never crashes"
 * rests on these.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/nx_codec.h"

static void test_varint_round_trip(void **state)
{
    (void)state;
    const uint64_t u[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX};
    const int64_t s[] = {0, -1, 1, -64, 64, INT32_MIN, INT32_MAX, INT64_MIN, INT64_MAX};
    nx_buf b = {0};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        assert_int_equal(nx_buf_uvar(&b, u[i]), 0);
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        assert_int_equal(nx_buf_svar(&b, s[i]), 0);
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        assert_true(nx_rbuf_uvar(&r) == u[i]);
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        assert_true(nx_rbuf_svar(&r) == s[i]);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n, 0);
    nx_buf_free(&b);
}

static void test_varint_rejects_overlong(void **state)
{
    (void)state;
    uint8_t eleven[11];
    memset(eleven, 0x80, sizeof eleven);
    eleven[10] = 0x01;
    nx_rbuf r = nx_rbuf_make(eleven, sizeof eleven);
    nx_rbuf_uvar(&r);
    assert_int_not_equal(r.err, 0);

    uint8_t overflow[10];
    memset(overflow, 0xff, 9);
    overflow[9] = 0x02; /* bit 64 set */
    r = nx_rbuf_make(overflow, sizeof overflow);
    nx_rbuf_uvar(&r);
    assert_int_not_equal(r.err, 0);

    uint8_t truncated[2] = {0x80, 0x80};
    r = nx_rbuf_make(truncated, sizeof truncated);
    nx_rbuf_uvar(&r);
    assert_int_not_equal(r.err, 0);
}

static void test_reads_never_pass_the_end(void **state)
{
    (void)state;
    uint8_t three[3] = {1, 2, 3};
    nx_rbuf r = nx_rbuf_make(three, sizeof three);
    assert_int_equal(nx_rbuf_u16(&r), 0x0201);
    assert_int_equal(nx_rbuf_u32(&r), 0); /* only 1 byte left */
    assert_int_not_equal(r.err, 0);
    assert_int_equal(nx_rbuf_u8(&r), 0); /* sticky */

    nx_buf b = {0};
    assert_int_equal(nx_buf_bytes(&b, "hello", 5), 0);
    size_t n = 0;
    r = nx_rbuf_make(b.data, b.len);
    const uint8_t *p = nx_rbuf_bytes(&r, &n, 4); /* over max */
    assert_null(p);
    assert_int_not_equal(r.err, 0);
    r = nx_rbuf_make(b.data, b.len - 1); /* truncated */
    assert_null(nx_rbuf_bytes(&r, &n, 100));
    r = nx_rbuf_make(b.data, b.len);
    p = nx_rbuf_bytes(&r, &n, 100);
    assert_non_null(p);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    nx_buf_free(&b);
}

static void test_frame_detects_every_flip_and_truncation(void **state)
{
    (void)state;
    nx_buf b = {0};
    size_t start;
    assert_int_equal(nx_frame_begin(&b, 0x4e58544bu, 3, &start), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(nx_buf_u32(&b, (uint32_t)i * 2654435761u), 0);
    assert_int_equal(nx_frame_end(&b, start), 0);

    nx_rbuf payload;
    assert_int_equal(nx_frame_open(b.data, b.len, 0x4e58544bu, 3, &payload), 0);
    assert_int_equal(payload.n, 160);
    assert_int_equal(nx_rbuf_u32(&payload), 0);
    assert_int_equal(nx_frame_open(b.data, b.len, 0x4e58544bu, 4, &payload), NX_EVERSION);
    assert_int_equal(nx_frame_open(b.data, b.len, 0x11111111u, 3, &payload), NX_ECORRUPT);

    for (size_t n = 0; n < b.len; n++)
        assert_int_not_equal(nx_frame_open(b.data, n, 0x4e58544bu, 3, &payload), 0);
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (uint8_t)(1u << bit);
            assert_int_not_equal(nx_frame_open(b.data, b.len, 0x4e58544bu, 3, &payload), 0);
            b.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    nx_buf_free(&b);
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(nx_errname(NX_ETOOLATE), "too_late");
    assert_string_equal(nx_errname(NX_EQUOTA), "quota");
    assert_string_equal(nx_errname(12345), "unknown");
    assert_string_equal(nx_type_name(NX_TYPE_DISTRIBUTION), "distribution");
    assert_string_equal(nx_strerror(NX_ENOSPC), "no space left on device");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_round_trip),
        cmocka_unit_test(test_varint_rejects_overlong),
        cmocka_unit_test(test_reads_never_pass_the_end),
        cmocka_unit_test(test_frame_detects_every_flip_and_truncation),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
