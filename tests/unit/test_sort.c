/*
 * test_sort.c — common/nx_sort: the radix sorts give qsort's order.
 *
 * Sizes around the insertion-sort cut-off and far above it; keys random
 * over all bits, over a few low bits (most digit passes skipped), over a
 * few high bits only, all equal, already sorted and reversed; u64 and u32.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/nx_sort.h"
#include "test_rng.h"

static int cmp64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

enum { KINDS = 6 };

/* Key i of an array of kind k. */
static uint64_t key(int kind, size_t i, size_t n)
{
    switch (kind) {
    case 0: return rng();                       /* every bit */
    case 1: return rng() & 0x3ff;               /* 10 low bits */
    case 2: return rng() & 0xff00000000000000ull; /* one high byte */
    case 3: return 42;                                       /* all equal */
    case 4: return (uint64_t)i * 3;                          /* sorted */
    default: return (uint64_t)(n - i) << 20;                 /* reversed */
    }
}

static void test_u64_matches_qsort(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 3, NX_SORT_SMALL - 1, NX_SORT_SMALL,
                                   NX_SORT_SMALL + 1, 257, 1000, 65537};
    rng_state = 7;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int k = 0; k < KINDS; k++) {
            size_t n = sizes[s];
            uint64_t *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
            assert_non_null(a);
            assert_non_null(b);
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = key(k, i, n);
            assert_int_equal(nx_sort_u64(a, n), 0);
            qsort(b, n, sizeof *b, cmp64);
            if (n)
                assert_memory_equal(a, b, n * sizeof *a);
            free(a);
            free(b);
        }
}

static void test_u32_matches_qsort(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 5, NX_SORT_SMALL, NX_SORT_SMALL + 1, 4096, 100003};
    rng_state = 11;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int k = 0; k < KINDS; k++) {
            size_t n = sizes[s];
            uint32_t *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
            assert_non_null(a);
            assert_non_null(b);
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = (uint32_t)(key(k, i, n) >> (k == 2 ? 32 : 0));
            assert_int_equal(nx_sort_u32(a, n), 0);
            qsort(b, n, sizeof *b, cmp32);
            if (n)
                assert_memory_equal(a, b, n * sizeof *a);
            free(a);
            free(b);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_matches_qsort),
        cmocka_unit_test(test_u32_matches_qsort),
    };
    return cmocka_run_group_tests_name("sort", tests, NULL, NULL);
}
