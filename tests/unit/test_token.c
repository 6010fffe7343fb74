/*
 * test_token.c — tokens: format, randomness, SHA-256 against a known vector,
 * hex round trip, constant-time equality, admin token validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "nexus.h"
#include "tenant/nx_token.h"

static void test_generate_format(void **st)
{
    (void)st;
    char a[NX_TOKEN_LEN + 1], b[NX_TOKEN_LEN + 1];
    assert_int_equal(nx_token_generate("nxt_", a), 0);
    assert_int_equal(nx_token_generate("nxt_", b), 0);
    assert_int_equal(strlen(a), 68);
    assert_memory_equal(a, "nxt_", 4);
    for (size_t i = 4; i < 68; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_string_not_equal(a, b); /* 2^-256 chance of a false failure */
}

static void test_sha256_vector(void **st)
{
    (void)st;
    /* FIPS 180-2 test vector: SHA-256("abc") */
    nx_token_hash h;
    nx_token_hash_of("abc", 3, &h);
    char hex[65];
    nx_token_hash_hex(&h, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    nx_token_hash back;
    assert_int_equal(nx_token_hash_parse(hex, 64, &back), 0);
    assert_true(nx_token_hash_equal(&h, &back));
    back.h[31] ^= 1;
    assert_false(nx_token_hash_equal(&h, &back));
    back.h[31] ^= 1;
    back.h[0] ^= 0x80;
    assert_false(nx_token_hash_equal(&h, &back));
}

static void test_hash_parse_rejects(void **st)
{
    (void)st;
    nx_token_hash h;
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = 0;
    assert_int_equal(nx_token_hash_parse(hex, 64, &h), 0);
    assert_int_equal(nx_token_hash_parse(hex, 63, &h), NX_EINVAL);
    hex[10] = 'g';
    assert_int_equal(nx_token_hash_parse(hex, 64, &h), NX_EINVAL);
    hex[10] = '\0';
    assert_int_equal(nx_token_hash_parse(hex, 64, &h), NX_EINVAL);
}

static void test_admin_valid(void **st)
{
    (void)st;
    assert_true(nx_token_admin_valid("0123456789abcdef", 16));
    assert_false(nx_token_admin_valid("0123456789abcde", 15));
    assert_false(nx_token_admin_valid("0123456789 abcdef", 17));
    assert_false(nx_token_admin_valid("0123456789\nabcdef", 17));
    char big[258];
    memset(big, 'x', sizeof big);
    assert_true(nx_token_admin_valid(big, 256));
    assert_false(nx_token_admin_valid(big, 257));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_format),
        cmocka_unit_test(test_sha256_vector),
        cmocka_unit_test(test_hash_parse_rejects),
        cmocka_unit_test(test_admin_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
