/*
 * nx_json.h — JSON shapes of the HTTP API (jansson), shared by the HTTP
 * handlers and SSE: summaries, stream keys split back into metric + tags,
 * window labels. Field reference: docs/api.md.
 */
#ifndef NX_JSON_H
#define NX_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "nexus.h"

#define NX_MAX_Q 32

/* The asked quantiles (parsed from "q=0.5,0.99"); default 0.5,0.9,0.99. */
typedef struct nx_qlist {
    size_t n;
    double q[NX_MAX_Q];
} nx_qlist;

int nx_qlist_parse(const char *s, nx_qlist *out);
void nx_qlist_default(nx_qlist *out);

/* "10s", "1m", "5m", "1h", "all", else "<n>s". */
void nx_window_label(uint32_t window_s, char *buf, size_t n);

/* A number, or null for NaN/Inf (JSON has neither). */
json_t *nx_json_num(double v);

/* Splits a canonical key "name|k:v|k2" into a name and a tags object. */
json_t *nx_key_tags(const char *key, size_t key_len, size_t *name_len);

/*
 * The summary object of docs/api.md. now_ms is used for all-time rates
 * (events / seconds since the stream's first event). topk: members listed
 * for sets.
 */
json_t *nx_summary_json(const char *tenant, const char *key, size_t key_len,
                        const nx_summary *s, uint32_t window_s, const nx_qlist *q,
                        size_t topk, int64_t now_ms);

#endif
