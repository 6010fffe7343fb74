/*
 * nx_rt.h — real-time priority for the query path (`--realtime`).
 *
 * Why: on a machine whose cores are all busy ingesting (the two shards and
 * a load generator on a 2-core box), a query waits for CPU three times: the
 * HTTP thread for its wake-up, the owning shard to get back on a core and
 * reach its mailbox, the HTTP thread again for the answer. Each wait is a
 * scheduler time slice (1-4 ms here: CONFIG_HZ=250, PREEMPT_NONE), and the
 * shards also stall 5-10 ms on first touches of fresh 2 MB pages when the
 * idle-priority prefault thread never gets a core (at 3.5M lines/s: ~200
 * such stalls per 10 s; docs/architecture.md, "The real-time query path").
 *
 * How: three SCHED_FIFO levels above every normal thread, and the ingest
 * itself stays SCHED_OTHER:
 *   NX_RT_HTTP      HTTP threads (they sleep until a request comes; bulk
 *                   answers such as /metrics are rendered at normal
 *                   priority, nx_http.c);
 *   NX_RT_SHARD     a shard only while it owes a synchronous answer: the
 *                   poster raises it (nx_rt_boost_take) before pushing the
 *                   message, the shard drops back once it has handled every
 *                   such message (nx_rt_boost_drop). It then preempts the
 *                   load on its core at once and answers from the next
 *                   datagram boundary;
 *   NX_RT_PREFAULT  the prefault thread, so that first touches happen off
 *                   the shards even when no core is idle (the shards would
 *                   pay the same CPU themselves, in stalls); it sleeps as
 *                   long as it ran, so a core never gives it more than half
 *                   its time (without that it once ran 570 ms straight and
 *                   starved the shard pinned there).
 * Everything is SCHED_RESET_ON_FORK except the HTTP threads (libmicrohttpd
 * creates a thread per connection, which must inherit the priority), so no
 * helper thread a boosted shard starts is real-time by accident. Linux's RT
 * throttling (sched_rt_runtime_us, 95% by default) still bounds them all.
 *
 * Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least NX_RT_HTTP; without,
 * nx_rt_available says why and nexusd runs everything SCHED_OTHER (as with
 * --realtime no).
 */
#ifndef NX_RT_H
#define NX_RT_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/types.h>

#define NX_RT_PREFAULT 1
#define NX_RT_SHARD 2
#define NX_RT_HTTP 3

/* 0 when this process may use SCHED_FIFO up to NX_RT_HTTP (tried on the
 * calling thread, then undone); else an NX_E* code and *why says why. */
int nx_rt_available(const char **why);

/* Sets thread `tid` (0 = the caller) to SCHED_FIFO `prio`, or back to
 * SCHED_OTHER for prio 0. reset_on_fork: threads it creates start
 * SCHED_OTHER. 0 or -errno. */
int nx_rt_set(pid_t tid, int prio, int reset_on_fork);

/* The calling thread's policy, saved by nx_rt_push and put back by
 * nx_rt_pop: in between the caller is SCHED_FIFO `prio`, so the threads it
 * creates inherit that (how the HTTP threads get NX_RT_HTTP). */
typedef struct nx_rt_saved {
    int policy;
    struct sched_param param;
} nx_rt_saved;
int nx_rt_push(int prio, nx_rt_saved *saved);
void nx_rt_pop(const nx_rt_saved *saved);

/*
 * A thread's priority raised while anyone waits on it, without a lock: a
 * mutex here was a priority inversion (the thread, demoting itself while
 * holding it, lost its core to the real-time prefault thread, and the next
 * query's HTTP thread waited behind it for 570 ms).
 *
 * `n` counts boosts taken and not yet dropped. A poster that takes n from
 * 0 raises the thread, before it pushes its message; the thread, dropping
 * n to 0, lowers itself and then raises itself again if n went up
 * meanwhile. A raise always precedes the drop of its own message, so once
 * every message has been handled the last policy change is a lowering:
 * the thread never stays real-time with n == 0. (It may serve a message
 * unraised for a moment: latency, never a hang.)
 */
typedef struct nx_rt_boost {
    _Atomic int n;
    int prio;              /* 0 = boosting off */
    _Atomic pid_t tid;     /* the boosted thread, 0 until it bound itself */
} nx_rt_boost;

void nx_rt_boost_init(nx_rt_boost *b, int prio);
/* The calling thread is the one to boost (call it first thing). */
void nx_rt_boost_bind(nx_rt_boost *b);
/* Raises the thread (if this is the first boost); returns 1 when the
 * caller must later have the thread call nx_rt_boost_drop, 0 when boosting
 * is off or the thread has not bound yet. */
int nx_rt_boost_take(nx_rt_boost *b);
/* Called by the boosted thread for every taken boost it has served. */
void nx_rt_boost_drop(nx_rt_boost *b);

#endif
