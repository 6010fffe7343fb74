/* logger.c — a well-behaved module using the one permitted import, nx.log;
 * `state` counts updates; its global shows whether instances share state. */
#include "hostile.h"

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    for (nx_u32 i = 0; i < n; i++)
        state += ev[i].value;
    nx_log("updated", 7);
    return 0;
}
