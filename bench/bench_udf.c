/*
 * bench_udf.c — cost of a tenant summarizer in a Wasm isolate vs the
 * built-in summary doing the same arithmetic.
 *
 * The UDF is examples/udf/moments.c (weighted count/sum/mean/m2/min/max,
 * Welford), the built-in is nx_moments_add (src/sketch/nx_moments.h), on
 * the same events. Prints one line per figure: `name value unit`, with the
 * UDF/built-in ratio per batch size (issue 7's target: <= 3x with
 * batching), the compile time, and the memory of one instance.
 *
 *   make BUILD=build/release build/release/bench/bench_udf
 *   build/release/bench/bench_udf [events]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "isolate/nx_udf.h"
#include "sketch/nx_moments.h"

#ifndef NX_UDF_WASM_DIR
#define NX_UDF_WASM_DIR "build/release/udf"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *load(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

int main(int argc, char **argv)
{
    size_t total = argc > 1 ? (size_t)atoll(argv[1]) : 20000000;
    size_t nev = 1 << 16;
    nx_udf_event *ev = malloc(nev * sizeof *ev);
    if (!ev)
        return 1;
    for (size_t i = 0; i < nev; i++) {
        ev[i].value = (double)((i * 2654435761u) % 10007) / 7.0;
        ev[i].ts_ms = 1700000000000 + (int64_t)i;
        ev[i].weight = 1.0 + (double)(i & 1);
    }

    /* built-in */
    nx_moments m;
    nx_moments_init(&m);
    double t0 = now_s();
    for (size_t done = 0; done < total; done += nev)
        for (size_t i = 0; i < nev; i++)
            nx_moments_add(&m, ev[i].value, ev[i].weight);
    double builtin_ns = (now_s() - t0) * 1e9 / (double)total;
    printf("builtin_moments_add %.2f ns/event (%.1f Mevents/s) [count %.0f]\n", builtin_ns,
           1e3 / builtin_ns, m.count);

    char dir[] = "/tmp/nx_bench_udf.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    nx_udf_cache *c;
    if (nx_udf_cache_open(dir, &c))
        return 1;
    size_t wn;
    uint8_t *w = load(NX_UDF_WASM_DIR "/moments.wasm", &wn);
    if (!w) {
        fprintf(stderr, "missing %s/moments.wasm (make udf-examples)\n", NX_UDF_WASM_DIR);
        return 1;
    }
    char err[NX_UDF_ERRLEN];
    nx_udf_module *mod;
    t0 = now_s();
    if (nx_udf_compile(c, w, wn, &mod, err, sizeof err)) {
        fprintf(stderr, "compile: %s\n", err);
        return 1;
    }
    printf("udf_compile %.0f ms (validate + wasm2c + cc -O2 + dlopen)\n", (now_s() - t0) * 1e3);

    static const size_t batches[] = {1, 16, 256, 1024};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        size_t bs = batches[b];
        nx_udf_instance *in;
        if (nx_udf_instance_create(mod, NULL, "", 0, NULL, NULL, &in, err, sizeof err)) {
            fprintf(stderr, "instance: %s\n", err);
            return 1;
        }
        size_t n = bs == 1 ? total / 20 : total;
        t0 = now_s();
        size_t done = 0;
        while (done < n) {
            for (size_t i = 0; i + bs <= nev && done < n; i += bs, done += bs)
                if (nx_udf_update(in, ev + i, bs)) {
                    fprintf(stderr, "update: %s\n", nx_udf_instance_error(in));
                    return 1;
                }
        }
        double ns = (now_s() - t0) * 1e9 / (double)done;
        printf("udf_update_batch%zu %.2f ns/event (%.1f Mevents/s) ratio_vs_builtin %.2f\n", bs,
               ns, 1e3 / ns, ns / builtin_ns);
        if (bs == 1024) {
            char *js;
            size_t len;
            if (nx_udf_result(in, &js, &len) == 0) {
                printf("udf_result %s\n", js);
                free(js);
            }
            nx_udf_instance_stats s;
            nx_udf_instance_get_stats(in, &s);
            printf("udf_instance_linear_memory %u bytes\n", s.memory_bytes);
            printf("udf_instance_host_bytes %zu bytes\n", s.host_bytes);
            printf("udf_instance_total %zu KiB\n", (s.memory_bytes + s.host_bytes) / 1024);
            printf("udf_cpu_clock_reads %llu (one per fuel chunk)\n",
                   (unsigned long long)s.cpu_checks);
        }
        nx_udf_instance_destroy(in);
    }
    nx_udf_module_unref(mod);
    nx_udf_cache_close(c);
    free(w);
    free(ev);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
