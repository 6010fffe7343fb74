/*
 * test_fs.c — the shared file-system helpers (src/common/nx_fs.c): mkdir -p
 * and whole-file reads (empty, small, past the first buffer, over the
 * limit, missing).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/nx_fs.h"

static char dir[64];

static void write_bytes(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)(i * 7 % 251), f);
    fclose(f);
}

static void test_read_file(void **state)
{
    (void)state;
    char path[128];
    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 300000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        snprintf(path, sizeof path, "%s/f%zu", dir, k);
        write_bytes(path, sizes[k]);
        char *b = NULL;
        size_t n = 99;
        assert_int_equal(nx_read_file(path, SIZE_MAX, &b, &n), 0);
        assert_int_equal(n, sizes[k]);
        assert_int_equal(b[n], 0);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)b[i] != i * 7 % 251)
                fail_msg("byte %zu of %zu differs", i, n);
        free(b);
        /* exactly at the limit is fine, one byte over is EFBIG */
        assert_int_equal(nx_read_file(path, sizes[k], &b, &n), 0);
        free(b);
        if (sizes[k]) {
            errno = 0;
            assert_int_equal(nx_read_file(path, sizes[k] - 1, &b, &n), -1);
            assert_int_equal(errno, EFBIG);
        }
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/missing", dir);
    char *b;
    size_t n;
    errno = 0;
    assert_int_equal(nx_read_file(path, SIZE_MAX, &b, &n), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_mkdirs(void **state)
{
    (void)state;
    char path[128], file[128];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(nx_mkdirs(path, 0700), 0);
    assert_int_equal(nx_mkdirs(path, 0700), 0); /* already there: fine */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(file, sizeof file, "%s/a/file", dir);
    write_bytes(file, 3);
    snprintf(path, sizeof path, "%s/a/file/x", dir);
    errno = 0;
    assert_int_equal(nx_mkdirs(path, 0700), -1); /* a file in the way */
    assert_int_equal(errno, ENOTDIR);
    unlink(file);
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/a/b", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/a", dir);
    rmdir(path);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/nx-test-fs.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_mkdirs),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
