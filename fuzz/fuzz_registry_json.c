/*
 * fuzz_registry_json.c — libFuzzer target for the tenant registry loader
 * (src/tenant/nx_registry.c, tenants.json). Whatever loads must serialize,
 * and the serialization must load again with the same tenant count.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include "tenant/nx_registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nx_registry_options o = {0};
    nx_registry *r = NULL;
    char err[256];
    if (nx_registry_parse(&o, (const char *)data, size, &r, err, sizeof err) != 0)
        return 0;
    char *json;
    size_t len;
    if (nx_registry_to_json(r, &json, &len) == 0) {
        nx_registry *r2 = NULL;
        int rc = nx_registry_parse(&o, json, len, &r2, err, sizeof err);
        assert(rc == 0);
        if (rc == 0) {
            assert(nx_registry_count(r2) == nx_registry_count(r));
            nx_registry_close(r2);
        }
        free(json);
    }
    nx_tenant_info x;
    (void)nx_registry_get_num(r, 1, &x);
    (void)nx_registry_authenticate(r, (const char *)data, size > 64 ? 64 : size, &x);
    nx_registry_close(r);
    return 0;
}
