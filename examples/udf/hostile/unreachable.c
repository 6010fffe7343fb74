/* unreachable.c — executes `unreachable` on update. */
#include "hostile.h"

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    if (n > 0)
        __builtin_trap();
    return 0;
}
