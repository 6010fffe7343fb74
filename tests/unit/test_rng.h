/*
 * test_rng.h — the deterministic generator and scale knob the unit tests
 * share: splitmix64 over a per-file state (each test file seeds it, so its
 * sequence and thus its cases stay fixed), and NX_TEST_SCALE (>= 1, default
 * 1) for longer runs of the randomised tests.
 */
#ifndef NX_TEST_RNG_H
#define NX_TEST_RNG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static inline uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline int scale(void)
{
    const char *s = getenv("NX_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* dst := src (n > 0 bytes) with 1 to 4 random bytes changed: the byte-flip
 * loops of the decoder tests. */
static inline void flip_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
    int flips = 1 + (int)(rng() % 4);
    for (int f = 0; f < flips; f++)
        dst[rng() % n] ^= (uint8_t)(1 + rng() % 255);
}

#endif
