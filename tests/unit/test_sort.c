/*
 * test_sort.c — common/nx_sort: the radix sorts give qsort's order.
 *
 * Sizes around the insertion-sort cut-off and far above it; keys random
 * over all bits, over a few low bits (most digit passes skipped), over a
 * few high bits only, all equal, already sorted and reversed; u64 and u32
 * (the u32 sort gets each key's low or, for the high-byte kind, high half).
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

/* Sorts n keys of one kind with nx_sort_u64 and (their u32 part) with
 * nx_sort_u32, and compares both with qsort. */
static void check(size_t n, int kind)
{
    uint64_t *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
    uint32_t *a32 = malloc((n + 1) * sizeof *a32), *b32 = malloc((n + 1) * sizeof *b32);
    assert_true(a && b && a32 && b32);
    for (size_t i = 0; i < n; i++) {
        a[i] = b[i] = key(kind, i, n);
        a32[i] = b32[i] = (uint32_t)(a[i] >> (kind == 2 ? 32 : 0));
    }
    assert_int_equal(nx_sort_u64(a, n), 0);
    assert_int_equal(nx_sort_u32(a32, n), 0);
    qsort(b, n, sizeof *b, cmp64);
    qsort(b32, n, sizeof *b32, cmp32);
    if (n) {
        assert_memory_equal(a, b, n * sizeof *a);
        assert_memory_equal(a32, b32, n * sizeof *a32);
    }
    free(a);
    free(b);
    free(a32);
    free(b32);
}

static void test_matches_qsort(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 3, 5, NX_SORT_SMALL - 1, NX_SORT_SMALL,
                                   NX_SORT_SMALL + 1, 257, 1000, 4096, 65537, 100003};
    rng_state = 7;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int k = 0; k < KINDS; k++)
            check(sizes[s], k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_qsort),
    };
    return cmocka_run_group_tests_name("sort", tests, NULL, NULL);
}
