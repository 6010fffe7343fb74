/*
 * nx_clock.h — the monotonic clock in nanoseconds, for measuring intervals
 * (request latency, rate-limit refills, a background thread's duty cycle).
 * Inline: one vDSO call, no state. Wall-clock time for events comes from
 * the callers (nx_now_ms in the server), never from here.
 */
#ifndef NX_CLOCK_H
#define NX_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t nx_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
