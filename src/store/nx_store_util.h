/*
 * nx_store_util.h — small helpers shared by the durability files
 * (nx_wal.c, nx_snapshot.c, nx_store.c): logging through a caller-supplied
 * callback (no global logger state), errno -> NX_E* mapping, directory fsync,
 * mkdir -p and a monotonic clock.
 */
#ifndef NX_STORE_UTIL_H
#define NX_STORE_UTIL_H

#include <stdint.h>
#include "nexus.h"

/* Log callback: level 0 = info, 1 = warning, 2 = error. NULL -> stderr. */
typedef void (*nx_store_log_fn)(void *arg, int level, const char *msg);

void nx_store_logf(nx_store_log_fn fn, void *arg, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* errno -> NX_ENOSPC (ENOSPC, EDQUOT, EFBIG), NX_ENOMEM, NX_ENOENT, else NX_EIO. */
int nx_store_errno(int e);
/* fsync() a directory so that creates / renames / unlinks in it are durable. */
int nx_store_fsync_dir(const char *dir);
/* mkdir -p (mode 0755). */
int nx_store_mkdirs(const char *path);
/* CLOCK_MONOTONIC in milliseconds (fractional). */
double nx_store_now_ms(void);

#endif
