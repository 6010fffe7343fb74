/* divzero.c — integer division by zero on update. */
#include "hostile.h"

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    volatile int zero = 0, seven = 7;
    state = seven / zero;
    return 0;
}
