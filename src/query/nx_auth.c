/*
 * nx_auth.c — request -> tenant resolution (see nx_auth.h).
 */
#include "query/nx_auth.h"
#include "ingest/nx_statsd.h"

#include <string.h>

int nx_auth_resolve(const nx_config *cfg, struct MHD_Connection *c, char tenant[65],
                    nx_auth_error *err)
{
    const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tenant");
    if (!t)
        t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Nexus-Tenant");
    if (!t)
        t = cfg->default_tenant;
    size_t n = strlen(t);
    if (!nx_tenant_id_valid(t, n)) {
        err->status = 400;
        err->code = "bad_tenant";
        err->msg = "tenant ids are [a-z0-9_-]{1,64}";
        return NX_EINVAL;
    }
    memcpy(tenant, t, n + 1);
    return 0;
}
