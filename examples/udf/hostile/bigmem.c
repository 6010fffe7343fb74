/* bigmem.c — built with a 32 MiB initial memory: over the 16 MiB cap. */
#include "hostile.h"

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    return 0;
}
