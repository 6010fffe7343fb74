/*
 * nx_auth.c — request -> tenant resolution (see nx_auth.h for the policy;
 * the decision table itself lives in nx_registry_resolve).
 */
#include "query/nx_auth.h"
#include "common/nx_clock.h"
#include "ingest/nx_statsd.h"
#include "tenant/nx_registry.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static int fail(nx_auth_error *err, unsigned status, const char *code, const char *msg, int rc)
{
    err->status = status;
    err->code = code;
    err->msg = msg;
    err->retry_after_s = 0;
    return rc;
}

bool nx_auth_peer_loopback(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* ?tenant= or X-Nexus-Tenant: NULL if absent; NX_EINVAL if not a valid id */
static int wanted(struct MHD_Connection *c, const char **out, nx_auth_error *err)
{
    const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tenant");
    if (!t)
        t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Nexus-Tenant");
    *out = t;
    if (t && !nx_tenant_id_valid(t, strlen(t)))
        return fail(err, 400, "bad_tenant", "tenant ids are [a-z0-9_-]{1,64}", NX_EINVAL);
    return 0;
}

/* Bearer token of the request: 0 with *tok NULL when there is no
 * Authorization header; NX_EAUTH for a malformed one. */
static int bearer(struct MHD_Connection *c, const char **tok, size_t *len, nx_auth_error *err)
{
    *tok = NULL;
    *len = 0;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h)
        return 0;
    if (nx_registry_bearer(h, tok, len) != 0)
        return fail(err, 401, "bad_auth_header", "Authorization must be: Bearer <token>",
                    NX_EAUTH);
    return 0;
}

static int open_mode(const nx_config *cfg, struct MHD_Connection *c, char tenant[65],
                     nx_auth_error *err)
{
    const char *t;
    if (wanted(c, &t, err))
        return NX_EINVAL;
    if (!t)
        t = cfg->default_tenant;
    size_t n = strlen(t);
    if (!nx_tenant_id_valid(t, n))
        return fail(err, 400, "bad_tenant", "tenant ids are [a-z0-9_-]{1,64}", NX_EINVAL);
    memcpy(tenant, t, n + 1);
    return 0;
}

static bool embedded(nx_registry *reg)
{
    return nx_registry_count(reg) == 0 && nx_registry_default_enabled(reg);
}

/* Core of nx_auth_resolve / nx_auth_view. *is_admin_view set when the
 * admin token came without ?tenant= (then tenant is not filled). */
static int resolve(const nx_config *cfg, struct MHD_Connection *c, char tenant[65],
                   bool *admin_global, nx_auth_error *err)
{
    nx_registry *reg = cfg->registry;
    const char *want, *tok;
    size_t tl;
    if (wanted(c, &want, err) || bearer(c, &tok, &tl, err))
        return err->status == 400 ? NX_EINVAL : NX_EAUTH;
    if (tok && nx_registry_is_admin(reg, tok, tl)) {
        if (!want) {
            if (admin_global) {
                *admin_global = true;
                return 0;
            }
            return fail(err, 403, "admin_token",
                        "the admin token is not a tenant credential (name one with ?tenant=ID)",
                        NX_EAUTH);
        }
        nx_tenant_info info;
        if (nx_registry_get(reg, want, strlen(want), &info) != 0 && !embedded(reg))
            return fail(err, 404, "unknown_tenant", "no such tenant", NX_ENOENT);
        snprintf(tenant, 65, "%s", want);
        return 0; /* admin requests are not counted against a tenant's HTTP quota */
    }
    nx_tenant_info info;
    nx_auth_result why;
    if (nx_registry_resolve(reg, tok, tl, nx_auth_peer_loopback(c), &info, &why) != 0)
        return fail(err, why.status, why.code, why.msg, NX_EAUTH);
    if (want && strcmp(want, info.id) != 0) {
        if (!(info.num == 0 && !tok && embedded(reg)))
            return fail(err, 403, "wrong_tenant", "a token acts only for its own tenant",
                        NX_EAUTH);
        snprintf(tenant, 65, "%s", want); /* embedded-default mode: any tenant */
    } else {
        snprintf(tenant, 65, "%s", info.id);
    }
    uint64_t retry = 1;
    if (nx_registry_http_admit(reg, info.num, nx_mono_ns(), &retry) == NX_EQUOTA) {
        fail(err, 429, "rate_limited", "over the tenant's HTTP request quota", NX_EQUOTA);
        err->retry_after_s = retry ? retry : 1;
        return NX_EQUOTA;
    }
    return 0;
}

int nx_auth_resolve(const nx_config *cfg, struct MHD_Connection *c, char tenant[65],
                    nx_auth_error *err)
{
    if (!cfg->registry)
        return open_mode(cfg, c, tenant, err);
    return resolve(cfg, c, tenant, NULL, err);
}

int nx_auth_admin(const nx_config *cfg, struct MHD_Connection *c, nx_auth_error *err)
{
    if (!cfg->registry)
        return fail(err, 403, "no_registry", "tenant administration is not available", NX_EAUTH);
    const char *tok;
    size_t tl;
    if (bearer(c, &tok, &tl, err))
        return NX_EAUTH;
    if (!tok)
        return fail(err, 401, "missing_token", "admin token required (Authorization: Bearer)",
                    NX_EAUTH);
    if (!nx_registry_is_admin(cfg->registry, tok, tl))
        return fail(err, 403, "bad_token", "not the admin token", NX_EAUTH);
    return 0;
}

int nx_auth_view(const nx_config *cfg, struct MHD_Connection *c, char tenant[65], bool *global,
                 nx_auth_error *err)
{
    *global = false;
    if (!cfg->registry) {
        *global = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tenant") == NULL;
        return *global ? 0 : open_mode(cfg, c, tenant, err);
    }
    int rc = resolve(cfg, c, tenant, global, err);
    if (rc || *global)
        return rc;
    /* embedded-default mode, tokenless loopback, no ?tenant=: the whole process */
    const char *want = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tenant");
    if (!want && !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Nexus-Tenant") &&
        !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization") &&
        embedded(cfg->registry))
        *global = true;
    return 0;
}
