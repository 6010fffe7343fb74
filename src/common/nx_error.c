/*
 * nx_error.c — names for error codes and stream types.
 *
 * Two names per code: a sentence for logs and humans (nx_strerror) and a
 * stable snake_case token for JSON "code" fields and metric labels
 * (nx_errname). The tokens are part of the HTTP API contract: never rename one.
 */
#include "nexus.h"

typedef struct {
    int code;
    const char *name;
    const char *text;
} nx_error_desc;

static const nx_error_desc nx_errors[] = {
    {NX_OK, "ok", "success"},
    {NX_ENOMEM, "no_memory", "out of memory"},
    {NX_EINVAL, "invalid", "invalid argument or malformed input"},
    {NX_ECORRUPT, "corrupt", "data failed its checksum or structure check"},
    {NX_ETOOLATE, "too_late", "event older than the late-event tolerance"},
    {NX_EQUOTA, "quota", "tenant quota exceeded"},
    {NX_ENOENT, "not_found", "no such object"},
    {NX_ETYPE, "type_mismatch", "stream exists with another type"},
    {NX_EVERSION, "bad_version", "unsupported encoding version"},
    {NX_EIO, "io_error", "input/output error"},
    {NX_ENOSPC, "no_space", "no space left on device"},
    {NX_EEXIST, "exists", "already exists"},
    {NX_ETOOBIG, "too_big", "input exceeds a configured limit"},
    {NX_EAUTH, "unauthorized", "missing or invalid credentials"},
    {NX_ETRAP, "trap", "isolate trapped"},
    {NX_ETIMEOUT, "timeout", "deadline exceeded"},
    {NX_EFUTURE, "too_early", "event timestamp too far in the future"},
};

static const nx_error_desc *nx_error_find(int code)
{
    for (size_t i = 0; i < sizeof nx_errors / sizeof nx_errors[0]; i++)
        if (nx_errors[i].code == code)
            return &nx_errors[i];
    return NULL;
}

const char *nx_strerror(int code)
{
    const nx_error_desc *d = nx_error_find(code);
    return d ? d->text : "unknown error";
}

const char *nx_errname(int code)
{
    const nx_error_desc *d = nx_error_find(code);
    return d ? d->name : "unknown";
}

const char *nx_type_name(nx_type t)
{
    switch (t) {
    case NX_TYPE_COUNTER: return "counter";
    case NX_TYPE_GAUGE: return "gauge";
    case NX_TYPE_TIMER: return "timer";
    case NX_TYPE_HISTOGRAM: return "histogram";
    case NX_TYPE_DISTRIBUTION: return "distribution";
    case NX_TYPE_SET: return "set";
    default: return "none";
    }
}
