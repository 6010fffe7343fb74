/*
 * nx_log.h — structured logs to stderr: `ts=... level=info msg="..." k=v`.
 *
 * One line per call, written with a single write(2) so lines from several
 * threads never interleave. Values are escaped (quotes, backslashes, control
 * and non-ASCII bytes as \xNN) so a malformed client line logged as a sample
 * can never forge a log line. The level is a process-wide setting chosen
 * once at start (nx_log_set_level) before threads exist.
 */
#ifndef NX_LOG_H
#define NX_LOG_H

#include <stddef.h>

enum { NX_LOG_DEBUG = 0, NX_LOG_INFO = 1, NX_LOG_WARN = 2, NX_LOG_ERROR = 3 };

/* Parses "debug|info|warn|error"; -1 if unknown. */
int nx_log_level_parse(const char *s);
void nx_log_set_level(int level);
int nx_log_enabled(int level);

/* msg is a plain message; fmt (may be NULL) appends " k=v ..." pairs
 * formatted with printf; use nx_log_escape for untrusted values. */
void nx_log(int level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes a quoted, escaped copy of p[0,n) into out (at most out_size bytes,
 * always NUL-terminated, truncated with "..." when too long). */
void nx_log_escape(const char *p, size_t n, char *out, size_t out_size);

#endif
