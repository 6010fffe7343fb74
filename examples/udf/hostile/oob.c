/* oob.c — writes far past the end of its linear memory on update. */
#include "hostile.h"

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    volatile nx_u32 addr = 0xfffffff0u - (nx_u32)n;
    *(volatile double *)(unsigned long)addr = ev[0].value;
    state = 1;
    return 0;
}
