/*
 * test_store_common.h — helpers shared by the durability tests
 * (test_wal.c, test_snapshot.c, test_store_*.c): temporary directories on
 * the real file system, recursive removal, file copy and byte flips, and a
 * small-disk fixture (tmpfs of a given size; RLIMIT_FSIZE as a stand-in when
 * mounting is not permitted).
 */
#ifndef TEST_STORE_COMMON_H
#define TEST_STORE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int ts_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void ts_rmrf(const char *dir)
{
    nftw(dir, ts_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh temporary directory (caller frees the string). */
static inline char *ts_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/nx-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    if (!d)
        abort();
    return strdup(d);
}

static inline long ts_file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) < 0 ? -1 : (long)st.st_size;
}

static inline int ts_copy(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) {
        if (a)
            fclose(a);
        if (b)
            fclose(b);
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
    return 0;
}

static inline int ts_flip(const char *p, long off, unsigned char mask)
{
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return -1;
    unsigned char c;
    if (pread(fd, &c, 1, off) != 1) {
        close(fd);
        return -1;
    }
    c ^= mask;
    int rc = pwrite(fd, &c, 1, off) == 1 ? 0 : -1;
    close(fd);
    return rc;
}

/* Scale factor from NX_TEST_SCALE (default 1). */
static inline int ts_scale(void)
{
    const char *s = getenv("NX_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/*
 * A small disk at dir: a tmpfs of `bytes` if we may mount (root), else
 * RLIMIT_FSIZE = bytes with SIGXFSZ ignored, so writes past it fail with
 * EFBIG (mapped to NX_ENOSPC). Returns 1 for tmpfs, 2 for the rlimit,
 * 0 if neither worked. ts_small_disk_end undoes it.
 */
static inline int ts_small_disk(const char *dir, size_t bytes, struct rlimit *saved)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%zu", bytes);
    if (!getenv("NX_TEST_NO_MOUNT") && mount("tmpfs", dir, "tmpfs", 0, opts) == 0)
        return 1;
    if (getrlimit(RLIMIT_FSIZE, saved) != 0)
        return 0;
    struct rlimit rl = *saved;
    rl.rlim_cur = bytes;
    signal(SIGXFSZ, SIG_IGN);
    return setrlimit(RLIMIT_FSIZE, &rl) == 0 ? 2 : 0;
}

static inline void ts_small_disk_end(const char *dir, int kind, const struct rlimit *saved)
{
    if (kind == 1)
        umount2(dir, MNT_DETACH);
    else if (kind == 2)
        setrlimit(RLIMIT_FSIZE, saved);
}

#endif
