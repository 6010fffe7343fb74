/*
 * nx_sort.c — LSD radix sorts of unsigned integer keys (see nx_sort.h).
 *
 * One counting pass builds all the digit histograms at once; then each
 * non-trivial digit (not every key in one bucket) scatters the keys from
 * one buffer to the other. After an odd number of scatters the result is in
 * the scratch buffer and is copied back.
 */
#include "common/nx_sort.h"
#include "nexus.h"

#include <stdlib.h>
#include <string.h>

#define RADIX_SORT(T, NAME, DIGITS)                                                             \
    void NAME##_with(T *v, size_t n, T *tmp)                                                    \
    {                                                                                           \
        if (n < NX_SORT_SMALL) {                                                                \
            for (size_t i = 1; i < n; i++) {                                                    \
                T x = v[i];                                                                     \
                size_t j = i;                                                                   \
                for (; j > 0 && v[j - 1] > x; j--)                                              \
                    v[j] = v[j - 1];                                                            \
                v[j] = x;                                                                       \
            }                                                                                   \
            return;                                                                             \
        }                                                                                       \
        size_t count[DIGITS][256];                                                              \
        memset(count, 0, sizeof(count));                                                        \
        for (size_t i = 0; i < n; i++) {                                                        \
            T x = v[i];                                                                         \
            for (int d = 0; d < DIGITS; d++)                                                    \
                count[d][(x >> (8 * d)) & 0xff]++;                                              \
        }                                                                                       \
        T *src = v, *dst = tmp;                                                                 \
        for (int d = 0; d < DIGITS; d++) {                                                      \
            size_t *c = count[d];                                                               \
            if (c[(src[0] >> (8 * d)) & 0xff] == n)                                             \
                continue; /* every key has this digit: nothing moves */                         \
            size_t sum = 0;                                                                     \
            for (int b = 0; b < 256; b++) {                                                     \
                size_t k = c[b];                                                                \
                c[b] = sum;                                                                     \
                sum += k;                                                                       \
            }                                                                                   \
            for (size_t i = 0; i < n; i++) {                                                    \
                T x = src[i];                                                                   \
                dst[c[(x >> (8 * d)) & 0xff]++] = x;                                            \
            }                                                                                   \
            T *t = src;                                                                         \
            src = dst;                                                                          \
            dst = t;                                                                            \
        }                                                                                       \
        if (src != v)                                                                           \
            memcpy(v, src, n * sizeof(T));                                                      \
    }                                                                                           \
    int NAME(T *v, size_t n)                                                                    \
    {                                                                                           \
        if (n < NX_SORT_SMALL) {                                                                \
            NAME##_with(v, n, NULL);                                                            \
            return 0;                                                                           \
        }                                                                                       \
        T *tmp = malloc(n * sizeof(T));                                                         \
        if (!tmp)                                                                               \
            return NX_ENOMEM;                                                                   \
        NAME##_with(v, n, tmp);                                                                 \
        free(tmp);                                                                              \
        return 0;                                                                               \
    }

RADIX_SORT(uint64_t, nx_sort_u64, 8)
RADIX_SORT(uint32_t, nx_sort_u32, 4)
