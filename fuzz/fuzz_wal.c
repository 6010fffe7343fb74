/*
 * fuzz_wal.c — libFuzzer target for WAL recovery (src/store/nx_wal.c): the
 * input becomes one segment file (wal-...01.log) in a private tmpfs
 * directory, with the segment header's first_lsn/crc and each record's lsn
 * and crc patched valid (so mutations reach the record parser instead of
 * dying at checksums). Then nx_wal_verify_dir (read-only) and nx_wal_open
 * (replay + torn-tail truncation) run on it; every replayed record must lie
 * inside the file and have consecutive LSNs.
 */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>
#include "store/nx_wal.h"

static char g_dir[64];

static void put32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static void clean_dir(void)
{
    DIR *d = opendir(g_dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, "..") != 0)) {
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            unlink(p);
        }
    closedir(d);
}

static void at_exit(void)
{
    clean_dir();
    rmdir(g_dir);
}

typedef struct replay_state {
    uint64_t next, n;
} replay_state;

static int on_record(void *arg, const nx_wal_record *r)
{
    replay_state *st = arg;
    assert(r->lsn == st->next);
    assert(r->tenant_len == 0 || r->tenant != NULL);
    st->next++;
    st->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) {
        strcpy(g_dir, "/dev/shm/nx_fuzz_wal.XXXXXX");
        if (!mkdtemp(g_dir)) {
            strcpy(g_dir, "/tmp/nx_fuzz_wal.XXXXXX");
            if (!mkdtemp(g_dir))
                abort();
        }
        atexit(at_exit);
    }
    if (size > (1u << 20))
        return 0;
    uint8_t *b = malloc(size ? size : 1);
    if (!b)
        return 0;
    memcpy(b, data, size);
    if (size >= 24) {
        put64(b + 8, 1); /* first_lsn = 1, matching the file name */
        put32(b + 20, (uint32_t)crc32(0L, b, 20));
        uint64_t lsn = 1;
        size_t off = 24;
        while (off + 8 <= size) {
            uint32_t len = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
                           (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
            if (len < 8 || len > size - off - 8)
                break;
            put64(b + off + 8, lsn++);
            if (b[4] >= 2) { /* the format's record checksum (store/nx_wal.c) */
                put32(b + off + 4, (uint32_t)XXH3_64bits_withSeed(b + off + 8, len, len));
            } else {
                uLong c = crc32(0L, b + off, 4);
                c = crc32(c, b + off + 8, len);
                put32(b + off + 4, (uint32_t)c);
            }
            off += 8 + (size_t)len;
        }
    }
    clean_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/wal-%020d.log", g_dir, 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        ssize_t w = write(fd, b, size);
        (void)w;
        close(fd);
        nx_wal_verify v;
        (void)nx_wal_verify_dir(g_dir, &v);
        nx_wal_options o = {0};
        replay_state st = {1, 0};
        nx_wal_recovery rec;
        nx_wal *wal = NULL;
        if (nx_wal_open(g_dir, &o, 0, on_record, &st, &rec, &wal) == 0) {
            assert(st.n == rec.replayed);
            nx_wal_close(wal);
        }
    }
    free(b);
    return 0;
}
