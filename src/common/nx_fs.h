/*
 * nx_fs.h — file-system helpers shared by every part that owns a directory
 * (WAL and snapshots, the tenant registry, the UDF store, the data dir).
 */
#ifndef NX_FS_H
#define NX_FS_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: creates path and its missing parents with `mode`. Returns 0 when
 * path is (now) a directory, else -1 with errno set (ENOTDIR when something
 * else is in the way, ENAMETOOLONG past PATH_MAX). */
int nx_mkdirs(const char *path, mode_t mode);

/* Reads the whole file into a fresh buffer (*out, freed by the caller) with
 * a NUL after its *len bytes. Returns 0, or -1 with errno set (EFBIG when
 * the file holds more than max bytes; ENOMEM; open/read errors). */
int nx_read_file(const char *path, size_t max, char **out, size_t *len);

#endif
