/*
 * nx_store_util.c — helpers for the durability files; see nx_store_util.h.
 * Nothing here keeps state: the log destination is passed by every caller.
 */
#include "store/nx_store_util.h"
#include "common/nx_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void nx_store_logf(nx_store_log_fn fn, void *arg, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (fn) {
        fn(arg, level, msg);
        return;
    }
    static const char *const lv[] = {"info", "warning", "error"};
    fprintf(stderr, "nexusd: store %s: %s\n", lv[level < 0 ? 0 : level > 2 ? 2 : level], msg);
}

int nx_store_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return NX_ENOSPC;
    case ENOMEM:
        return NX_ENOMEM;
    case ENOENT:
        return NX_ENOENT;
    case EEXIST:
        return NX_EEXIST;
    default:
        return NX_EIO;
    }
}

int nx_store_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return nx_store_errno(errno);
    int rc = fsync(fd) < 0 ? nx_store_errno(errno) : NX_OK;
    close(fd);
    return rc;
}

int nx_store_mkdirs(const char *path)
{
    if (!path[0])
        return NX_EINVAL;
    if (nx_mkdirs(path, 0755) == 0)
        return NX_OK;
    return errno == ENOTDIR || errno == ENAMETOOLONG ? NX_EINVAL : nx_store_errno(errno);
}

double nx_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
