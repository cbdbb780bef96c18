/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Scheduler snapshots for ringo-schedtrace (the sched_* USDT probes) and for
 * RINGO_DEBUG=schedtrace=MS[,scheddetail=1] (the same lines on stderr), both
 * taken by sysmon. Costs one load and one branch per sysmon tick when off.
 */
#ifndef RINGO_SCHEDSTATS_H
#define RINGO_SCHEDSTATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct rg_sched;

/* The kernel bumps it while a tracer is attached to ringo:sched_stats. */
extern volatile unsigned short ringo_sched_stats_semaphore;
/* RINGO_DEBUG's schedtrace period in ns; 0 off; -1 not parsed yet. */
extern int64_t rg_schedtrace_ns;

int64_t rg_schedstats_tick(struct rg_sched *s, int64_t sleep_ns);

/*
 * schedtrace(detailed) on stderr now, from any thread, for a process that is
 * dying or hung: a scheduler lock that stays held (perhaps by the caller)
 * leaves out what it guards instead of deadlocking.
 */
void rg_schedtrace_now(struct rg_sched *s);

/*
 * Go's startpanic: a fatal error, the deadlock report or SIGQUIT prints it
 * first when RINGO_DEBUG sets schedtrace or scheddetail, or when
 * rg_schedtrace_forced is set (by the tests' watchdog, before its SIGQUIT).
 * have_sched_lock: the caller holds s->lock (the deadlock detector).
 */
extern _Atomic bool rg_schedtrace_forced;
void rg_schedtrace_dying(struct rg_sched *s, bool have_sched_lock);

/*
 * Called by sysmon right before it sleeps for sleep_ns: fires the probes and
 * prints the trace when due; returns the sleep, shortened to the next due time.
 */
static inline int64_t rg_schedstats(struct rg_sched *s, int64_t sleep_ns)
{
	if (__builtin_expect(ringo_sched_stats_semaphore == 0 &&
				     __atomic_load_n(&rg_schedtrace_ns, __ATOMIC_RELAXED) == 0,
			     1))
		return sleep_ns;
	return rg_schedstats_tick(s, sleep_ns);
}

#endif /* RINGO_SCHEDSTATS_H */
