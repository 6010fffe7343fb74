/*
 * test_window_cfg.h — window shapes and time steps the window tests share
 * (test_window's property test and test_window_derived's comparison run
 * both on the shapes; the twin tests of test_window_holes and
 * test_window_inv step time the same way).
 */
#ifndef NX_TEST_WINDOW_CFG_H
#define NX_TEST_WINDOW_CFG_H

#include "nexus.h"

/* A cascade that is a tree: (30,2) is fed by (4,2) (same width, listed
 * earlier), (60,6) by one of them, (600,60) by (60,6); (7,7) is fed by
 * nothing and feeds nothing. Derived backs (sets): (4,2) feeds (60,6) and
 * (30,2) and derives from (30,2) (g = 1, n/g = 2; with (60,6) g = 3 does
 * not divide its n = 2); (60,6) derives from (600,60) (g = 10, n/g = 1);
 * the others feed no window. */
static inline void test_window_cfg_tree(nx_engine_config *cfg)
{
    nx_engine_config_default(cfg);
    cfg->nwindows = 5;
    cfg->windows[0] = (nx_window_spec){600, 60};
    cfg->windows[1] = (nx_window_spec){4, 2};
    cfg->windows[2] = (nx_window_spec){60, 6};
    cfg->windows[3] = (nx_window_spec){30, 2};
    cfg->windows[4] = (nx_window_spec){7, 7};
}

/* The next second of a twin test (a window against its twin, which does
 * the same work at other moments) over a window of n one-second
 * sub-buckets: mostly the next second, short gaps (empty slots amid the
 * window) and now and then a gap past the window (a restart: everything
 * freed). x: a random 64-bit value. */
static inline int64_t test_window_twin_sec(int64_t sec, uint64_t x, int64_t n)
{
    uint64_t g = (x >> 8) % 40;
    return sec + (g == 0 ? n + 1 + (int64_t)(x >> 14) % 10 : g < 12 ? 2 + (int64_t)(g % 3) : 1);
}

#endif
