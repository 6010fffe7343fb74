/*
 * nx_rt.c — SCHED_FIFO for the query path (see nx_rt.h for why and the
 * levels).
 */
#include "server/nx_rt.h"
#include "nexus.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>

int nx_rt_set(pid_t tid, int prio, int reset_on_fork)
{
    struct sched_param sp = {.sched_priority = prio};
    int policy = (prio > 0 ? SCHED_FIFO : SCHED_OTHER) | (reset_on_fork ? SCHED_RESET_ON_FORK : 0);
    return sched_setscheduler(tid, policy, &sp) == 0 ? 0 : -errno;
}

int nx_rt_push(int prio, nx_rt_saved *saved)
{
    saved->policy = sched_getscheduler(0);
    if (saved->policy < 0 || sched_getparam(0, &saved->param) != 0)
        return -errno;
    return nx_rt_set(0, prio, 0);
}

void nx_rt_pop(const nx_rt_saved *saved)
{
    (void)sched_setscheduler(0, saved->policy, &saved->param);
}

int nx_rt_available(const char **why)
{
    nx_rt_saved saved;
    int rc = nx_rt_push(NX_RT_HTTP, &saved);
    if (rc) {
        *why = rc == -EPERM ? "not permitted (needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 3)"
                            : "sched_setscheduler(SCHED_FIFO) failed";
        return NX_EINVAL;
    }
    nx_rt_pop(&saved); /* only probing */
    *why = "";
    return 0;
}

void nx_rt_boost_init(nx_rt_boost *b, int prio)
{
    atomic_init(&b->n, 0);
    b->prio = prio;
    atomic_init(&b->tid, 0);
}

void nx_rt_boost_bind(nx_rt_boost *b)
{
    atomic_store(&b->tid, gettid());
}

int nx_rt_boost_take(nx_rt_boost *b)
{
    pid_t tid = atomic_load(&b->tid);
    if (!b->prio || !tid)
        return 0;
    if (atomic_fetch_add(&b->n, 1) == 0)
        (void)nx_rt_set(tid, b->prio, 1); /* a failure only costs latency */
    return 1;
}

void nx_rt_boost_drop(nx_rt_boost *b)
{
    if (atomic_fetch_sub(&b->n, 1) != 1)
        return;
    (void)nx_rt_set(0, 0, 0);
    if (atomic_load(&b->n) > 0) /* a poster raised us meanwhile: stay up */
        (void)nx_rt_set(0, b->prio, 1);
}
