/*
 * nx_syncer.c — fdatasync() on a helper thread, in order (see nx_syncer.h).
 *
 * Invariants (under mu):
 *   - q[head .. head+n) are the queued requests, oldest first; the thread
 *     takes q[head] and runs it with `running` set, outside the lock;
 *   - done only grows, and only to the lsn of a request that completed
 *     after every request queued before it;
 *   - every queued fd is a dup() owned by the queue, every queued path a
 *     copy: closed / freed after their request ran (destroy runs the queue).
 */
#include "store/nx_syncer.h"
#include "store/nx_store_util.h"
#include "nexus.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct sync_req {
    int fd;         /* -1 for an unlink */
    bool full;      /* fsync, not fdatasync */
    char *path;     /* unlink this (owned), or NULL */
    uint64_t file_id;
    uint64_t lsn;   /* 0 for an unlink: moves nothing */
    uint64_t clean_end; /* after the sync, drop cached pages below this */
} sync_req;

struct nx_syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a request was queued, or stop */
    pthread_cond_t idle;  /* a request completed */
    sync_req q[NX_SYNCER_QUEUE];
    unsigned head, n;
    bool running, stop;
    _Atomic uint64_t done;
    _Atomic int failed;
    _Atomic uint64_t unlink_failed;
};

static void *syncer_main(void *arg)
{
    nx_syncer *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->n && !s->stop)
            pthread_cond_wait(&s->work, &s->mu);
        if (!s->n)
            break; /* stop, nothing left */
        sync_req r = s->q[s->head];
        s->head = (s->head + 1) % NX_SYNCER_QUEUE;
        s->n--;
        s->running = true;
        pthread_mutex_unlock(&s->mu);
        int rc = 0;
        if (r.path) {
            /* a file nothing needs any more: a failure leaves it behind
             * (counted), it fails nothing */
            if (unlink(r.path) < 0 && errno != ENOENT)
                atomic_fetch_add(&s->unlink_failed, 1);
            free(r.path);
        } else {
            rc = atomic_load(&s->failed) ? -1 : r.full ? fsync(r.fd) : fdatasync(r.fd);
            /* synced pages are clean: give them back (see nx_syncer.h) */
            if (rc == 0 && r.clean_end)
                (void)posix_fadvise(r.fd, 0, (off_t)r.clean_end, POSIX_FADV_DONTNEED);
            close(r.fd);
        }
        pthread_mutex_lock(&s->mu);
        s->running = false;
        if (rc < 0)
            atomic_store(&s->failed, NX_EIO);
        else if (r.lsn > atomic_load(&s->done))
            atomic_store(&s->done, r.lsn);
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int nx_syncer_create(nx_syncer **out)
{
    nx_syncer *s = calloc(1, sizeof *s);
    if (!s)
        return NX_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (pthread_create(&s->thread, NULL, syncer_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->idle);
        free(s);
        return NX_EIO;
    }
    pthread_setname_np(s->thread, "nx-walsync");
    *out = s;
    return 0;
}

static int push(nx_syncer *s, int fd, bool full, uint64_t file_id, uint64_t lsn,
                uint64_t clean_end)
{
    int rc = atomic_load(&s->failed);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    if (s->n) {
        sync_req *last = &s->q[(s->head + s->n - 1) % NX_SYNCER_QUEUE];
        if (!last->path && last->file_id == file_id && last->full == full) { /* not started yet: it will cover lsn too */
            if (lsn > last->lsn)
                last->lsn = lsn;
            if (clean_end > last->clean_end)
                last->clean_end = clean_end;
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
    }
    if (s->n == NX_SYNCER_QUEUE) {
        pthread_mutex_unlock(&s->mu);
        return 1;
    }
    int dfd = dup(fd);
    if (dfd < 0) {
        rc = nx_store_errno(errno);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    s->q[(s->head + s->n) % NX_SYNCER_QUEUE] = (sync_req){dfd, full, NULL, file_id, lsn, clean_end};
    s->n++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int nx_syncer_push(nx_syncer *s, int fd, uint64_t file_id, uint64_t lsn, uint64_t clean_end)
{
    return push(s, fd, false, file_id, lsn, clean_end);
}

int nx_syncer_push_fsync(nx_syncer *s, int fd, uint64_t file_id, uint64_t lsn)
{
    return push(s, fd, true, file_id, lsn, 0);
}

int nx_syncer_push_unlink(nx_syncer *s, const char *path)
{
    char *p = strdup(path);
    if (!p)
        return NX_ENOMEM;
    pthread_mutex_lock(&s->mu);
    if (s->n == NX_SYNCER_QUEUE) {
        pthread_mutex_unlock(&s->mu);
        free(p);
        return 1;
    }
    s->q[(s->head + s->n) % NX_SYNCER_QUEUE] = (sync_req){-1, false, p, 0, 0, 0};
    s->n++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

uint64_t nx_syncer_unlink_failed(const nx_syncer *s)
{
    return atomic_load(&((nx_syncer *)s)->unlink_failed);
}

uint64_t nx_syncer_done_lsn(const nx_syncer *s)
{
    return atomic_load(&((nx_syncer *)s)->done);
}

int nx_syncer_failed(const nx_syncer *s)
{
    return atomic_load(&((nx_syncer *)s)->failed);
}

void nx_syncer_wait_idle(nx_syncer *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->n || s->running)
        pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void nx_syncer_destroy(nx_syncer *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); /* the thread finishes the queue first */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    free(s);
}
