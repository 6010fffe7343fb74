/*
 * nx_mailbox.c — Vyukov intrusive MPSC queue with an eventfd doorbell, and
 * a countdown latch (see nx_mailbox.h). The latch is an atomic count and a
 * futex: it is on the query path (one wait per HTTP request), never on the
 * ingest hot path, but a shard must never hold a lock its waiter needs.
 */
#include "server/nx_mailbox.h"
#include "nexus.h"

#include <assert.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int nx_mailbox_init(nx_mailbox *m)
{
    atomic_store(&m->stub.next, NULL);
    atomic_store(&m->head, &m->stub);
    m->tail = &m->stub;
    m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return m->efd < 0 ? NX_EIO : 0;
}

void nx_mailbox_destroy(nx_mailbox *m)
{
    if (m->efd >= 0)
        close(m->efd);
    m->efd = -1;
}

static void push_node(nx_mailbox *m, nx_mbox_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    nx_mbox_node *prev = atomic_exchange_explicit(&m->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

void nx_mailbox_push(nx_mailbox *m, nx_mbox_node *n)
{
    push_node(m, n);
    uint64_t one = 1;
    ssize_t w = write(m->efd, &one, sizeof(one));
    (void)w; /* EAGAIN only when the counter would overflow: already signalled */
}

nx_mbox_node *nx_mailbox_pop(nx_mailbox *m)
{
    nx_mbox_node *tail = m->tail;
    nx_mbox_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &m->stub) {
        if (!next)
            return NULL;
        m->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        m->tail = next;
        return tail;
    }
    nx_mbox_node *head = atomic_load_explicit(&m->head, memory_order_acquire);
    if (tail != head)
        return NULL; /* a producer is mid-push; its eventfd write wakes us */
    push_node(m, &m->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        m->tail = next;
        return tail;
    }
    return NULL;
}

void nx_mailbox_ack(nx_mailbox *m)
{
    uint64_t v;
    ssize_t r = read(m->efd, &v, sizeof(v));
    (void)r;
}

void nx_waiter_init(nx_waiter *w, int count)
{
    atomic_init(&w->remaining, count);
}

void nx_waiter_destroy(nx_waiter *w)
{
    (void)w;
}

/*
 * The waker may call FUTEX_WAKE after the waiter saw 0 and returned, on
 * memory that is by then someone else's: a spurious wake-up, which every
 * futex user (glibc's included) tolerates by re-checking its own word.
 */
void nx_waiter_done(nx_waiter *w)
{
    int left = atomic_fetch_sub_explicit(&w->remaining, 1, memory_order_acq_rel) - 1;
    assert(left >= 0);
    if (left == 0)
        syscall(SYS_futex, &w->remaining, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

void nx_waiter_wait(nx_waiter *w)
{
    for (;;) {
        int v = atomic_load_explicit(&w->remaining, memory_order_acquire);
        if (v == 0)
            return;
        /* sleeps only while remaining still equals v; EAGAIN/EINTR: re-check */
        syscall(SYS_futex, &w->remaining, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
    }
}
