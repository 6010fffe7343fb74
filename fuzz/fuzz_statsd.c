/*
 * fuzz_statsd.c — libFuzzer target for the StatsD/DogStatsD line parser
 * (src/ingest/nx_statsd.c). The input is split into lines like a datagram;
 * every accepted line's values are iterated and its fields checked against
 * the limits it was parsed with.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "ingest/nx_statsd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nx_statsd_limits lim;
    nx_statsd_limits_default(&lim);
    if (size > 0 && (data[0] & 1)) { /* tight limits half of the time */
        lim.max_line = 64;
        lim.max_tags = 3;
        lim.max_name = 16;
    }
    nx_tag tags[65];
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        nx_statsd_line l;
        if (nx_statsd_parse(p, len, &lim, tags, &l) == NX_SD_OK) {
            assert(l.name_len > 0 && l.name_len <= lim.max_name);
            assert(l.ntags <= lim.max_tags);
            assert(l.rate > 0 && l.rate <= 1);
            if (l.tenant)
                assert(nx_tenant_id_valid(l.tenant, l.tenant_len));
            uint32_t pos = 0, k = 0;
            nx_statsd_value v;
            while (nx_statsd_value_next(&l, &pos, &v) == 1)
                k++;
            assert(k == l.nvalues);
            char key[4096];
            (void)nx_stream_key_build(l.name, l.name_len, tags, l.ntags, key, sizeof key);
        }
        p += len + 1;
    }
    double d;
    (void)nx_statsd_parse_double((const char *)data, size, &d);
    (void)nx_utf8_valid((const char *)data, size);
    return 0;
}
