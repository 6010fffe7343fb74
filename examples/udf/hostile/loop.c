/* loop.c — an infinite loop on update (only the CPU budget stops it). */
#include "hostile.h"

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    volatile nx_u32 i = 0;
    for (;;)
        i++;
    return 0;
}
