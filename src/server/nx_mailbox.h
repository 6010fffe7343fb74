/*
 * nx_mailbox.h — a shard's inbox: intrusive lock-free MPSC queue + eventfd.
 *
 * Any thread (HTTP workers, the main thread) pushes messages; only the
 * owning shard pops them. The queue is Vyukov's intrusive MPSC list: push is
 * one atomic exchange plus one store (wait-free), pop is single-consumer and
 * may report "empty" for a moment while a producer is between its two steps
 * — the producer then writes the eventfd, so the shard wakes up again and
 * retries. The eventfd is in the shard's epoll set; each push writes 1 to it.
 *
 * A message embeds an nx_mbox_node (first member); its owner (the sender)
 * keeps it alive until the shard signals completion (nx_waiter).
 */
#ifndef NX_MAILBOX_H
#define NX_MAILBOX_H

#include <stdatomic.h>

typedef struct nx_mbox_node {
    struct nx_mbox_node *_Atomic next;
} nx_mbox_node;

typedef struct nx_mailbox {
    nx_mbox_node *_Atomic head; /* producers push here */
    char pad[64 - sizeof(void *)];
    nx_mbox_node *tail;         /* consumer pops here */
    nx_mbox_node stub;
    int efd;                    /* eventfd, EFD_NONBLOCK */
} nx_mailbox;

int nx_mailbox_init(nx_mailbox *m);
void nx_mailbox_destroy(nx_mailbox *m);
/* Pushes n and wakes the consumer. Any thread. */
void nx_mailbox_push(nx_mailbox *m, nx_mbox_node *n);
/* Pops one node or NULL. Consumer thread only. */
nx_mbox_node *nx_mailbox_pop(nx_mailbox *m);
/* Resets the eventfd counter (consumer, before draining). */
void nx_mailbox_ack(nx_mailbox *m);

/*
 * A countdown latch a sender waits on until every shard answered: an atomic
 * count and a futex on it, no mutex. With a mutex the last shard signalled
 * while holding it, and a waiter woken on that shard's CPU preempted the
 * shard, found the mutex held and slept again: the shard, back in the run
 * queue behind whatever else shared its core, released the mutex a whole
 * time slice later (measured: 0.6-2.9 ms of a query's latency under ingest
 * load, even with the HTTP thread at real-time priority). Here the shard's
 * part is one atomic decrement and, for the last one, one FUTEX_WAKE.
 */
typedef struct nx_waiter {
    _Atomic int remaining;
} nx_waiter;

void nx_waiter_init(nx_waiter *w, int count);
void nx_waiter_destroy(nx_waiter *w);
void nx_waiter_done(nx_waiter *w);
void nx_waiter_wait(nx_waiter *w);

#endif
