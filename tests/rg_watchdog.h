// SPDX-License-Identifier: BSD-2-Clause
/*
 * A hung test's evidence. At a test's timeout the harness kills its process
 * group with SIGKILL, which leaves nothing to read, and a hang seen once in
 * many CI runs stays a mystery. So every test child gets a watchdog thread:
 * if the test still runs 3 s before its timeout, the watchdog prints the
 * scheduler's state (schedtrace's detailed lines) and every goroutine's
 * stack, and ends the test as failed. It only waits on a clock: it
 * synchronises nothing, and a test that ends in time never hears from it.
 *
 * It starts from a fork handler, in each child the harness forks for a
 * test (not in the children tests fork themselves). The harness runs its
 * tests in list order and records each child's pid in the test's metadata
 * after the fork, so the test being forked is the first whose pid is still
 * 0 (no test here has variants, which would run a test more than once).
 */
#ifndef RG_WATCHDOG_H
#define RG_WATCHDOG_H

#include <pthread.h>

#include "kselftest_harness.h"
#include "runtime.h"
#include "schedstats.h"

static struct {
	pid_t harness;
	const char *name;
	int timeout, margin; /* seconds */
} rt_watchdog;

/* One line of counts first: a dump of thousands of goroutines is long. */
static void rt_watchdog_count(struct rg_sched *s)
{
	long waiting[WAIT_REASON_COUNT] = {0}, runnable = 0, running = 0, syscall = 0;
	int tries = 0;

	while (!rg_trylock(&s->allg_lock)) {
		if (++tries == 1000)
			return;
		rg_osyield();
	}
	for (size_t i = 0; i < s->nallg; i++) {
		struct rg_g *g = s->allg[i];
		switch (atomic_load_explicit(&g->status, memory_order_relaxed)) {
		case G_RUNNABLE:
			runnable++;
			break;
		case G_RUNNING:
			running++;
			break;
		case G_SYSCALL:
			syscall++;
			break;
		case G_WAITING:
			if (g->wait_reason < WAIT_REASON_COUNT)
				waiting[g->wait_reason]++;
			break;
		}
	}
	rg_unlock(&s->allg_lock);
	fprintf(stderr, "# goroutines: runnable=%ld running=%ld syscall=%ld", runnable,
		running, syscall);
	for (int r = 0; r < WAIT_REASON_COUNT; r++)
		if (waiting[r])
			fprintf(stderr, " [%s]=%ld", rg_wait_reason_string((enum rg_wait_reason)r),
				waiting[r]);
	fprintf(stderr, "\n");
}

/* The counts and schedtrace's detailed lines, after a line saying why. */
static inline void rt_sched_report(const char *why)
{
	struct rg_sched *s = rg_sched_current();

	fprintf(stderr, "# %s\n", why);
	if (s) {
		rt_watchdog_count(s);
		rg_schedtrace_now(s);
	}
}

static void *rt_watchdog_main(void *arg)
{
	struct timespec until;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += rt_watchdog.timeout - rt_watchdog.margin;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
	char why[256];
	snprintf(why, sizeof(why),
		 "watchdog: %s has run %d of its %d s: the scheduler and every goroutine follow",
		 rt_watchdog.name, rt_watchdog.timeout - rt_watchdog.margin, rt_watchdog.timeout);
	rt_sched_report(why);
	struct rg_sched *s = rg_sched_current();
	if (s)
		rg_dump_goroutines(s, NULL);
	_exit(KSFT_FAIL);
}

static void rt_watchdog_forked(void)
{
	struct __test_metadata *t = NULL;
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;

	if (getppid() != rt_watchdog.harness)
		return;
	for (struct __fixture_metadata *f = __fixture_list; f && !t; f = f->next)
		for (struct __test_metadata *x = f->tests; x && !t; x = x->next)
			if (x->pid == 0)
				t = x;
	if (!t || t->timeout <= 0)
		return;
	rt_watchdog.name = t->name;
	rt_watchdog.timeout = t->timeout;
	/* Enough to print the counts and schedtrace; a long dump may be cut short. */
	rt_watchdog.margin = t->timeout >= 20 ? 3 : t->timeout / 4;
	/* It must never take a signal meant for the test. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, rt_watchdog_main, NULL) != 0)
		fprintf(stderr, "# watchdog: not started: a hang would leave no dump\n");
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void __attribute__((constructor)) rt_watchdog_init(void)
{
	rt_watchdog.harness = getpid();
	pthread_atfork(NULL, NULL, rt_watchdog_forked);
}

#endif /* RG_WATCHDOG_H */
