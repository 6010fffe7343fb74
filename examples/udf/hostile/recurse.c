/* recurse.c — unbounded recursion on update (call depth limit). */
#include "hostile.h"

#pragma clang diagnostic ignored "-Winfinite-recursion"

static nx_u32 deep(volatile nx_u32 x)
{
    volatile nx_u32 pad[4] = {x, x, x, x};
    return deep(pad[x & 3] + 1) + pad[0];
}

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    state = deep(n);
    return 0;
}
