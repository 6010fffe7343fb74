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

#include <pthread.h>
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

/* A countdown latch a sender waits on until every shard answered. */
typedef struct nx_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int remaining;
} nx_waiter;

void nx_waiter_init(nx_waiter *w, int count);
void nx_waiter_destroy(nx_waiter *w);
void nx_waiter_done(nx_waiter *w);
void nx_waiter_wait(nx_waiter *w);

#endif
