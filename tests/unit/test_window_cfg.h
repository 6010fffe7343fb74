/*
 * test_window_cfg.h — window shapes the window tests share (test_window's
 * property test and test_window_derived's comparison run both on them).
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

#endif
