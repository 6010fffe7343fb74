/*
 * hostile.h — shared boilerplate of the hostile test modules: a scratch
 * buffer, nx_init, and an nx_result reporting `state` (set by each
 * module's misbehaving nx_update). Every module here must be contained by
 * the host: its binding disabled with the right error, nothing else hurt.
 */
#include "nexus_udf.h"

NX_UDF_BUFFER(65536)

static volatile double state;

NX_EXPORT(nx_init) nx_i32 nx_init(const char *p, nx_u32 len)
{
    state = 0;
    return 0;
}

NX_EXPORT(nx_result) nx_i32 nx_result(nx_u32 out, nx_u32 cap)
{
    nx_res r;
    nx_res_begin(&r, out, cap);
    nx_res_num(&r, "state", state);
    return nx_res_end(&r);
}
