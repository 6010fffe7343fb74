/*
 * nx_log.c — structured stderr logging (see nx_log.h).
 *
 * The only process-wide state is the log level: an atomic int written once
 * at start-up, read by every thread.
 */
#include "server/nx_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = NX_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int nx_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void nx_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int nx_log_enabled(int level)
{
    return level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void nx_log(int level, const char *msg, const char *fmt, ...)
{
    if (!nx_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char esc[512];
    nx_log_escape(msg, strlen(msg), esc, sizeof(esc));
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level & 3], esc);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    if (fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
        if ((size_t)n >= sizeof(line) - 1)
            n = (int)sizeof(line) - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void nx_log_escape(const char *p, size_t n, char *out, size_t out_size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (out_size < 8) {
        if (out_size)
            out[0] = 0;
        return;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (o + 8 >= out_size) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = 0;
}
