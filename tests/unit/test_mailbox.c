/*
 * test_mailbox.c — server/nx_mailbox: the shards' MPSC inbox and the
 * countdown latch a query waits on.
 *
 * Inbox: every node pushed by several producer threads is popped exactly
 * once, each producer's nodes in its push order, and the eventfd counts
 * the pushes. Latch: nx_waiter_wait returns only once every one of its
 * count nx_waiter_done calls happened (their writes visible), at once for
 * a count of 0, and across many rounds with done called from other threads
 * while the waiter sleeps or has not yet slept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/nx_mailbox.h"

#define PRODUCERS 4
#define PER_PRODUCER 20000

typedef struct item {
    nx_mbox_node node; /* first */
    int producer;
    int seq;
} item;

typedef struct producer_arg {
    nx_mailbox *mb;
    item *items;
    int id;
} producer_arg;

static void *producer(void *p)
{
    producer_arg *a = p;
    for (int i = 0; i < PER_PRODUCER; i++) {
        a->items[i].producer = a->id;
        a->items[i].seq = i;
        nx_mailbox_push(a->mb, &a->items[i].node);
    }
    return NULL;
}

static void test_mpsc_order_and_count(void **state)
{
    (void)state;
    nx_mailbox mb;
    assert_int_equal(nx_mailbox_init(&mb), 0);
    item *items = calloc((size_t)PRODUCERS * PER_PRODUCER, sizeof(*items));
    assert_non_null(items);
    pthread_t th[PRODUCERS];
    producer_arg args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (producer_arg){.mb = &mb, .items = items + (size_t)i * PER_PRODUCER, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, producer, &args[i]), 0);
    }
    int next[PRODUCERS] = {0};
    long popped = 0;
    while (popped < (long)PRODUCERS * PER_PRODUCER) {
        nx_mbox_node *n = nx_mailbox_pop(&mb);
        if (!n) {
            sched_yield(); /* empty, or a producer between its two steps */
            continue;
        }
        item *it = (item *)n;
        assert_in_range(it->producer, 0, PRODUCERS - 1);
        assert_int_equal(it->seq, next[it->producer]); /* FIFO per producer, none twice */
        next[it->producer]++;
        popped++;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(next[i], PER_PRODUCER);
    }
    assert_null(nx_mailbox_pop(&mb));
    uint64_t v = 0;
    assert_int_equal(read(mb.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    assert_int_equal(v, (uint64_t)PRODUCERS * PER_PRODUCER); /* one doorbell per push */
    nx_mailbox_destroy(&mb);
    free(items);
}

static void test_waiter_zero_returns(void **state)
{
    (void)state;
    nx_waiter w;
    nx_waiter_init(&w, 0);
    nx_waiter_wait(&w); /* must not block */
    nx_waiter_destroy(&w);
}

#define DONERS 3
#define ROUNDS 2000

typedef struct round_arg {
    nx_waiter *w;
    _Atomic int *flags; /* written before done: visible once wait returns */
    int id;
    int delay_us;
} round_arg;

static void *doner(void *p)
{
    round_arg *a = p;
    if (a->delay_us) {
        struct timespec ts = {0, (long)a->delay_us * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store_explicit(&a->flags[a->id], 1, memory_order_relaxed);
    nx_waiter_done(a->w);
    return NULL;
}

/* Each round: DONERS threads finish (some at once, before the waiter even
 * sleeps; some after a short sleep, while it sleeps); when wait returns,
 * every one of them must have counted down. */
static void test_waiter_counts_down_across_threads(void **state)
{
    (void)state;
    for (int r = 0; r < ROUNDS; r++) {
        nx_waiter w;
        _Atomic int flags[DONERS];
        nx_waiter_init(&w, DONERS);
        pthread_t th[DONERS];
        round_arg args[DONERS];
        for (int i = 0; i < DONERS; i++) {
            atomic_init(&flags[i], 0);
            args[i] = (round_arg){.w = &w, .flags = flags, .id = i,
                                  .delay_us = (r % 4 == 0) ? 0 : (r * 7 + i * 13) % 200};
        }
        for (int i = 0; i < DONERS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, doner, &args[i]), 0);
        nx_waiter_wait(&w);
        for (int i = 0; i < DONERS; i++)
            assert_int_equal(atomic_load_explicit(&flags[i], memory_order_relaxed), 1);
        assert_int_equal(atomic_load(&w.remaining), 0);
        for (int i = 0; i < DONERS; i++)
            pthread_join(th[i], NULL);
        nx_waiter_destroy(&w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpsc_order_and_count),
        cmocka_unit_test(test_waiter_zero_returns),
        cmocka_unit_test(test_waiter_counts_down_across_threads),
    };
    return cmocka_run_group_tests_name("mailbox", tests, NULL, NULL);
}
