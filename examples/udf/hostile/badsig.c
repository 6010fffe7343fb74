/* badsig.c — exports nx_update with the wrong signature (f64 result). */
#include "hostile.h"

NX_EXPORT(nx_update) double nx_update(const nx_event *ev, nx_u32 n)
{
    return 0;
}
