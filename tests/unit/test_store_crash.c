/*
 * test_store_crash.c — kill -9 at random moments, in-process edition.
 *
 * A child process runs the shard's durability loop over a toy state machine
 * (batch with LSN L carries event ids 4(L-1)..4(L-1)+3; the state counts how
 * often each id was applied): append a few batches, commit with fdatasync,
 * report the durable LSN to the parent through a pipe ("ack"), tick the
 * snapshot policy (snapshots every few ms, so kills also land mid-snapshot
 * and mid-WAL-cleanup). The parent SIGKILLs it after a random delay,
 * recovers the directory itself and checks: every acknowledged batch is
 * present, every recovered id counts exactly once (no double apply across
 * snapshot + replay), nothing beyond the recovered LSN is present. Then the
 * next child continues from the same directory. 25 cycles (x NX_TEST_SCALE).
 * The full daemon version over TCP is tests/integration/test_crash.py.
 */
#include "test_store_common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "common/nx_codec.h"
#include "store/nx_store.h"

#define IDS (1u << 18)

typedef struct toy {
    uint8_t counts[IDS];
} toy;

static void quiet(void *arg, int level, const char *msg)
{
    (void)arg;
    (void)level;
    (void)msg;
}

static int toy_apply(void *arg, const nx_wal_record *r)
{
    toy *t = arg;
    if (r->payload_len != 16)
        return NX_ECORRUPT;
    for (uint32_t i = 0; i < 16; i += 4) {
        uint32_t id;
        memcpy(&id, r->payload + i, 4);
        if (id >= IDS)
            return NX_ECORRUPT;
        t->counts[id]++;
    }
    return 0;
}

static int toy_encode(void *arg, nx_buf *out)
{
    toy *t = arg;
    return nx_buf_put(out, t->counts, sizeof t->counts);
}

static int toy_load(void *arg, const uint8_t *raw, size_t n, uint64_t lsn)
{
    (void)lsn;
    toy *t = arg;
    if (n != sizeof t->counts)
        return NX_ECORRUPT;
    memcpy(t->counts, raw, n);
    return 0;
}

static nx_store_options opts(const char *dir)
{
    nx_store_options o = {
        .data_dir = dir,
        .shard = 0,
        .segment_bytes = 16384,
        .buffer_bytes = 4096,
        .zstd_level = 1,
        .snapshot_interval_ms = 15,
        .log = quiet,
    };
    return o;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child: recover, then ingest until killed (or out of ids). */
static void child(const char *dir, int wfd)
{
    toy *t = calloc(1, sizeof *t);
    nx_store_ops ops = {.load = toy_load, .apply = toy_apply, .encode = toy_encode, .arg = t};
    nx_store_options o = opts(dir);
    nx_store *st;
    if (!t || nx_store_open(&o, &ops, NULL, &st) != 0)
        _exit(3);
    unsigned seed = (unsigned)getpid();
    for (;;) {
        int k = 1 + (int)(rand_r(&seed) % 6);
        for (int i = 0; i < k; i++) {
            uint64_t lsn = nx_store_last_lsn(st) + 1;
            uint32_t ids[4];
            for (uint32_t j = 0; j < 4; j++)
                ids[j] = (uint32_t)(4 * (lsn - 1) + j);
            if (ids[3] >= IDS)
                _exit(0);
            nx_wal_record r = {.recv_ms = now_ms(), .payload = (const uint8_t *)ids, .payload_len = 16};
            uint64_t got;
            if (nx_store_append(st, &r, &got) != 0 || got != lsn || toy_apply(t, &r) != 0)
                _exit(4);
        }
        uint64_t durable;
        if (nx_store_commit(st, true, &durable) != 0)
            _exit(5);
        if (write(wfd, &durable, sizeof durable) != sizeof durable)
            _exit(6);
        if (nx_store_tick(st, now_ms()) != 0)
            _exit(7);
    }
}

static void test_kill9_cycles(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("crash");
    int cycles = 25 * ts_scale();
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u, %d cycles\n", seed, cycles);
    toy *t = calloc(1, sizeof *t);
    uint64_t max_acked = 0, total_replayed = 0, snaps_loaded = 0;
    for (int c = 0; c < cycles; c++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child(dir, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        usleep(5000 + rand_r(&seed) % 40000);
        kill(pid, SIGKILL);
        /* Every ack the child sent before it died is in the pipe. */
        uint64_t d;
        while (read(pfd[0], &d, sizeof d) == sizeof d)
            if (d > max_acked)
                max_acked = d;
        close(pfd[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("child exited by itself (status %d): out of ids or an error", status);

        memset(t, 0, sizeof *t);
        nx_store_ops ops = {.load = toy_load, .apply = toy_apply, .encode = toy_encode, .arg = t};
        nx_store_options o = opts(dir);
        nx_store *st;
        nx_store_recovery rep;
        assert_int_equal(nx_store_open(&o, &ops, &rep, &st), 0);
        uint64_t last = nx_store_last_lsn(st);
        if (last < max_acked)
            fail_msg("cycle %d: recovered up to lsn %llu but %llu was acknowledged", c,
                     (unsigned long long)last, (unsigned long long)max_acked);
        assert_false(rep.wal.gap);
        for (uint64_t id = 0; id < IDS; id++) {
            uint8_t want = id < 4 * last ? 1 : 0;
            if (t->counts[id] != want)
                fail_msg("cycle %d: id %llu counted %u times, expected %u (recovered lsn %llu, snapshot %llu)",
                         c, (unsigned long long)id, t->counts[id], want, (unsigned long long)last,
                         (unsigned long long)rep.snapshot_lsn);
        }
        total_replayed += rep.wal.replayed;
        snaps_loaded += rep.snapshot_lsn != 0;
        nx_store_close(st);
    }
    nx_store_verify_report vr;
    assert_int_equal(nx_store_verify(dir, &vr, NULL), 0);
    print_message("acked up to lsn %llu; %llu batches replayed over all recoveries; %llu recoveries "
                  "started from a snapshot\n",
                  (unsigned long long)max_acked, (unsigned long long)total_replayed,
                  (unsigned long long)snaps_loaded);
    assert_true(max_acked > 0);
    free(t);
    ts_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
