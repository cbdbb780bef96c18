// SPDX-License-Identifier: BSD-2-Clause
/*
 * Go's checkdead: when the last M goes idle, every goroutine is parked on a
 * ringo object and nothing outside the run queues can wake one, the program
 * can never make progress again. Go prints "all goroutines are asleep -
 * deadlock!" and exits 2; so does ringo.
 *
 * What can still wake a parked goroutine without any M running: a timer (on
 * some P's heap), an I/O completion (the poller's count of waiting
 * goroutines) or a goroutine returning from a blocking system call (counted
 * in pending_wakeups),
 * or a thread that is not a goroutine touching a ringo object
 * (rg_chan_trysend from a plain pthread, say). The last one the runtime
 * cannot see: such programs set RINGO_DEADLOCK=0.
 */
#include <stdlib.h>
#include <unistd.h>

#include "fatal.h"
#include "poller.h"
#include "runq.h"
#include "runtime.h"
#include "schedstats.h"

void rg_checkdead(struct rg_sched *s)
{
	if (!s->deadlock_check || atomic_load_explicit(&s->stopping, memory_order_relaxed))
		return;
	if (atomic_load_explicit(&s->pending_wakeups, memory_order_acquire) > 0)
		return;
	/* Goroutines waiting for I/O (the poller's count): a completion can still come. */
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);
	if (pl && atomic_load_explicit(&pl->waiting, memory_order_acquire) > 0)
		return;
	int32_t nallp = atomic_load_explicit(&s->nallp, memory_order_acquire);
	for (int32_t i = 0; i < nallp; i++)
		if (s->allp[i] &&
		    atomic_load_explicit(&s->allp[i]->timer0_when, memory_order_acquire))
			return;
	if (atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0)
		return;
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
	for (int32_t i = 0; i < n; i++)
		if (!rg_runqempty(s->allp[i]))
			return;

	/* Every M is idle: a goroutine that is not parked would be a runtime bug. */
	long waiting = 0;
	for (size_t i = 0; i < s->nallg; i++) {
		uint32_t st = atomic_load_explicit(&s->allg[i]->status, memory_order_relaxed);
		if (st == G_WAITING)
			waiting++;
		else if (st == G_RUNNABLE || st == G_RUNNING)
			rg_fatal("checkdead: goroutine %llu is %s with every M idle",
				 (unsigned long long)s->allg[i]->goid,
				 st == G_RUNNABLE ? "runnable" : "running");
		else if (st == G_SYSCALL)
			return;
	}
	if (waiting == 0)
		return; /* nothing alive: main is on its way out */

	/*
	 * Go unlocks the scheduler here so that its schedtrace can take the
	 * lock. ringo keeps it, and the trace reads under the lock we hold: a
	 * plain thread's wake-up that the lock held off would otherwise show in
	 * the dump as a runnable goroutine, after all were found asleep.
	 */
	static const char msg[] = "ringo: fatal: all goroutines are asleep - deadlock!\n";
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* stderr is gone; exit with the status anyway */
	}
	rg_schedtrace_dying(s, true);
	rg_dump_goroutines(s, NULL);
	_exit(2);
}
