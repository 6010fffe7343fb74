/* import.c — imports a function the host does not offer (env.system). */
#include "hostile.h"

__attribute__((import_module("env"), import_name("system"))) int host_system(const char *cmd);

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    return host_system("rm -rf /");
}
