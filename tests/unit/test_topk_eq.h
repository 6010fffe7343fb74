/*
 * test_topk_eq.h — "the same top-k": equal encodings (members, counts,
 * errors, capacity, in candidate order: the sketch's whole logical content)
 * and equal totals. Shared by test_topk and test_window_wide, which compare
 * sketches against references built from the definition. Include after
 * <cmocka.h>.
 */
#ifndef NX_TEST_TOPK_EQ_H
#define NX_TEST_TOPK_EQ_H

#include "common/nx_codec.h"
#include "sketch/nx_topk.h"

static inline void topk_encodings_equal(const nx_topk *a, const nx_topk *b)
{
    nx_buf x = {0}, y = {0};
    assert_int_equal(nx_topk_encode(a, &x), 0);
    assert_int_equal(nx_topk_encode(b, &y), 0);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.data, y.data, x.len);
    assert_true(nx_topk_total(a) == nx_topk_total(b));
    nx_buf_free(&x);
    nx_buf_free(&y);
}

#endif
