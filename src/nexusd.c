/*
 * nexusd.c — the daemon's main: configuration, signals, start and orderly
 * shutdown. Everything else lives in src/server (shards, listeners) and
 * src/query (HTTP).
 *
 * Shutdown (SIGTERM / SIGINT): stop HTTP first (no new queries or ingest;
 * SSE streams end), then stop the shards (each answers what is left in its
 * mailbox, then exits), then free everything. Signals are blocked in every
 * thread and taken synchronously with sigwait() by the main thread, so no
 * handler runs in the middle of anything.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nexus.h"
#include "query/nx_http.h"
#include "server/nx_config.h"
#include "server/nx_listener.h"
#include "server/nx_log.h"
#include "server/nx_server.h"
#include "server/nx_tenants.h"

/* jemalloc's built-in options (the release nexusd links it; the ASan build
 * ignores this). The state grows in 4 KiB pages faulted in one by one while
 * windows and tiers fill, and under a hypervisor each fault is expensive;
 * transparent huge pages (madvise mode, as Debian ships the kernel) cut the
 * faults 512-fold, and a 30 s decay keeps freed pages for reuse instead of
 * returning them to the kernel and faulting them back in. Measured by A/B
 * runs of 1.3M lines/s for 12 s: 12.45M -> 14.3M lines
 * applied, kernel drops 95K -> 23K datagrams (docs/benchmarks.md).
 * oversize_threshold:0 keeps large allocations in the calling thread's arena
 * (not jemalloc's shared huge arena), so a shard's big buffers also come
 * from its prefaulted reservation (server/nx_prefault.h), whose pages are
 * 4 KiB unless --huge-pages yes: there a huge page's first touch (5-10 ms
 * on this VM) stalled the shard and every query waiting on it, and the
 * prefault thread now takes most first touches off the shards anyway
 * (twenty-first session); thp:always still applies to the other arenas.
 * background_thread:true moves the decay's purging (madvise, up to 26 ms a
 * call measured under strace) from the shard threads, where every query
 * waiting on the shard paid for it, to jemalloc's own threads.
 * MALLOC_CONF in the environment still overrides these. */
const char *malloc_conf = "thp:always,metadata_thp:always,dirty_decay_ms:30000,muzzy_decay_ms:30000,oversize_threshold:0,background_thread:true";

int main(int argc, char **argv)
{
    static nx_config cfg; /* large (paths); static storage, main's only */
    nx_config_default(&cfg);
    char err[512];
    int rc = nx_config_parse_args(&cfg, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc) {
        fprintf(stderr, "nexusd: %s\n", err);
        return 2;
    }
    nx_log_set_level(cfg.log_level);

    /* every thread created from here on inherits the blocked set */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int http_fd = -1;
    if (!cfg.http[0] || nx_listener_tcp(cfg.http, &http_fd) != 0) {
        fprintf(stderr, "nexusd: cannot listen on HTTP address '%s'\n", cfg.http);
        return 1;
    }
    /* tenant registry + admin token (never from argv); fatal if unusable */
    nx_registry *reg = NULL;
    if (nx_tenants_open(&cfg, &reg) != 0) {
        close(http_fd);
        fprintf(stderr, "nexusd: cannot open the tenant registry (see the log)\n");
        return 1;
    }
    cfg.registry = reg;
    nx_server *srv = NULL;
    rc = nx_server_create(&cfg, NULL, &srv);
    if (rc) {
        nx_registry_close(reg);
        close(http_fd);
        fprintf(stderr, "nexusd: cannot start: %s\n", nx_strerror(rc));
        return 1;
    }
    rc = nx_server_start(srv);
    nx_http *http = NULL;
    if (!rc)
        rc = nx_http_start(srv, http_fd, &http);
    else
        close(http_fd);
    if (rc) {
        fprintf(stderr, "nexusd: cannot start: %s\n", nx_strerror(rc));
        nx_server_stop(srv);
        nx_server_destroy(srv);
        nx_registry_close(reg);
        return 1;
    }
    nx_log(NX_LOG_INFO, "nexusd started",
           "pid=%d shards=%d http=\"%s\" statsd_udp=\"%s\" statsd_tcp=\"%s\" statsd_unix=\"%s\" "
           "data_dir=\"%s\" default_tenant=%s",
           (int)getpid(), nx_server_nshards(srv), cfg.http, cfg.statsd_udp, cfg.statsd_tcp,
           cfg.statsd_unix, cfg.data_dir, cfg.default_tenant);

    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            nx_log(NX_LOG_INFO, "SIGHUP ignored (restart to reload the configuration)", NULL);
            continue;
        }
        break;
    }
    nx_log(NX_LOG_INFO, "shutting down", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
    nx_http_stop(http);
    nx_server_stop(srv);
    nx_server_destroy(srv);
    if (reg)
        nx_registry_flush(reg);
    nx_registry_close(reg);
    nx_log(NX_LOG_INFO, "nexusd stopped", NULL);
    return 0;
}
