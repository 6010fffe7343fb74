/*
 * engine_v4_events.h — the deterministic event stream behind
 * tests/data/engine_v4.bin (written by the version-4 engine with
 * tests/data/gen_engine_v4.c.txt) and test_engine_codec's migration test,
 * which replays it: phase A is what the snapshot holds, phase B what the
 * test feeds afterwards. Three streams (counter, distribution, set) of
 * tenant "legacy"; ~6 events/s for ~7 minutes, 1 in 10 late by up to 8 s.
 * Phase A ends in the middle of a 5 s, a 30 s and a 300 s sub-bucket, so
 * every coarse window's current sub-bucket holds seconds its finer
 * windows have not completed — the state version 5 stores differently.
 */
#ifndef ENGINE_V4_EVENTS_H
#define ENGINE_V4_EVENTS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "nexus.h"

#define V4_T0 1700000000000ll
#define V4_SPLIT_SEC 437 /* phase A: seconds [0, 437); B: [437, 900) */
#define V4_END_SEC 900

static const char *const v4_keys[3] = {"hits|env:prod", "latency_ms", "users"};
static const nx_type v4_types[3] = {NX_TYPE_COUNTER, NX_TYPE_DISTRIBUTION, NX_TYPE_SET};

static uint64_t v4_rng(uint64_t *st)
{
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Feeds seconds [from, to) to s[3]; *st is the generator state (start it
 * at 4 and carry it from phase A to phase B). Returns the last now_ms, or
 * -1 if an update failed. */
static int64_t v4_feed(nx_stream *s[3], int from, int to, uint64_t *st)
{
    int64_t now = -1;
    nx_update u;
    for (int sec = from; sec < to; sec++) {
        for (int k = 0; k < 18; k++) {
            uint64_t r = v4_rng(st);
            int i = (int)(r % 3);
            char m[16];
            memset(&u, 0, sizeof u);
            u.weight = (r >> 8) % 7 == 0 ? 2 : 1;
            u.value = (double)(1 + (r >> 16) % 1000) * ((r >> 30) % 5 == 0 ? 0.01 : 1);
            int len = snprintf(m, sizeof m, "m%d", (int)((r >> 40) % 50) + sec / 60);
            u.member = m;
            u.member_len = (uint32_t)len;
            now = V4_T0 + sec * 1000ll + k * 55;
            u.ts_ms = (r >> 20) % 10 == 0 ? now - (int64_t)((r >> 44) % 8000) : 0;
            if (nx_stream_update(s[i], &u, now))
                return -1;
        }
    }
    return now;
}

#endif
