/*
 * nx_fs.c — file-system helpers (see nx_fs.h). One mkdir -p for the whole
 * daemon, so that every directory it creates follows the same rules: parents
 * created in order, an existing directory is fine, anything else in the way
 * is an error rather than a silent success.
 */
#include "common/nx_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int nx_mkdirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0) {
        errno = ENOENT;
        return -1;
    }
    if (n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -1;
        tmp[i] = c;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int nx_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    size_t cap = 1 << 16;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size < cap * 1024ull)
        cap = (size_t)st.st_size + 1; /* usually one read, no regrowth */
    char *buf = malloc(cap + 1);
    size_t n = 0;
    int err = buf ? 0 : ENOMEM;
    while (!err) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                err = ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            err = errno;
        else if (r == 0)
            break;
        else if ((n += (size_t)r) > max)
            err = EFBIG;
    }
    close(fd);
    if (err) {
        free(buf);
        errno = err;
        return -1;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}
