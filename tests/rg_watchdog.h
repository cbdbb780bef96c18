// SPDX-License-Identifier: BSD-2-Clause
/*
 * A hung test's evidence. At a test's timeout the harness kills its process
 * group with SIGKILL, which leaves nothing to read, and a hang seen once in
 * many CI runs stays a mystery. So each test child the harness forks arms a
 * watchdog: 3 s before the timeout it sends SIGQUIT to the test's processes,
 * so that those running ringo print schedtrace's detailed lines and every
 * goroutine's stack and exit 2 (ringo's SIGQUIT dump; the lines are forced on
 * in the test child itself), and 2 s later, SIGKILL to whatever is left (a
 * child the test forked may be stuck where no dump can run). A test that ends
 * in time never hears from it.
 *
 * The watchdog is a POSIX timer whose signal handler only sends signals: a
 * thread would make the test child multithreaded, and a child it forks could
 * then inherit a lock that thread held (under ASan, its allocator's lock:
 * seen in CI), or be killed by TSan for starting threads after such a fork.
 * Timers are not inherited across fork, so the test's own children have none.
 *
 * It is armed from a fork handler, in each child the harness forks for a
 * test. The harness runs its tests in list order and records each child's
 * pid in the test's metadata after the fork, so the test being forked is the
 * first whose pid is still 0 (no test here has variants, which would run a
 * test more than once).
 */
#ifndef RG_WATCHDOG_H
#define RG_WATCHDOG_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "runtime.h"
#include "schedstats.h"

static struct {
	pid_t harness;
	timer_t timer;
	_Atomic int stage;
	char line[192]; /* what it says when it fires, written ahead */
	size_t len;
} rt_watchdog;

static void rt_watchdog_fire(int sig, siginfo_t *si, void *uc)
{
	struct itimerspec again = {.it_value = {.tv_sec = 2}};
	struct sigaction sa;

	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER)
		return;
	if (atomic_fetch_add(&rt_watchdog.stage, 1) > 0) {
		kill(0, SIGKILL);
		return;
	}
	if (write(STDERR_FILENO, rt_watchdog.line, rt_watchdog.len) < 0) {
		/* stderr is gone: the signals still go */
	}
	/* Not running ringo (its dump took SIGQUIT over), this process outlives
	 * the SIGQUIT to send the SIGKILL. */
	if (sigaction(SIGQUIT, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGQUIT, SIG_IGN);
	atomic_store(&rg_schedtrace_forced, true);
	kill(0, SIGQUIT);
	timer_settime(rt_watchdog.timer, 0, &again, NULL);
}

static void rt_watchdog_forked(void)
{
	struct __test_metadata *t = NULL;
	struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMAX};
	struct sigaction sa = {.sa_sigaction = rt_watchdog_fire,
			       .sa_flags = SA_SIGINFO | SA_RESTART};
	struct itimerspec when;
	int margin;

	if (getppid() != rt_watchdog.harness)
		return;
	for (struct __fixture_metadata *f = __fixture_list; f && !t; f = f->next)
		for (struct __test_metadata *x = f->tests; x && !t; x = x->next)
			if (x->pid == 0)
				t = x;
	if (!t || t->timeout <= 0)
		return;
	margin = t->timeout >= 20 ? 3 : t->timeout / 4;
	memset(&when, 0, sizeof(when));
	when.it_value.tv_sec = t->timeout - margin;
	int n = snprintf(rt_watchdog.line, sizeof(rt_watchdog.line),
			 "# watchdog: %s has run %d of its %d s: SIGQUIT for the dumps, then "
			 "SIGKILL\n",
			 t->name, t->timeout - margin, t->timeout);
	rt_watchdog.len = n < 0 ? 0 : strnlen(rt_watchdog.line, sizeof(rt_watchdog.line));
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGRTMAX, &sa, NULL) ||
	    timer_create(CLOCK_MONOTONIC, &ev, &rt_watchdog.timer) ||
	    timer_settime(rt_watchdog.timer, 0, &when, NULL))
		fprintf(stderr, "# watchdog: not armed (%s): a hang would leave no dump\n",
			strerror(errno));
}

static void __attribute__((constructor)) rt_watchdog_init(void)
{
	rt_watchdog.harness = getpid();
	pthread_atfork(NULL, NULL, rt_watchdog_forked);
}

/* ---- a test's own report, from a goroutine that gave up waiting ---- */

/* The goroutines' counts by state: a dump of thousands of goroutines is long. */
static void rt_sched_count(struct rg_sched *s)
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
	fprintf(stderr, "# goroutines: runnable=%ld running=%ld syscall=%ld", runnable, running,
		syscall);
	for (int r = 0; r < WAIT_REASON_COUNT; r++)
		if (waiting[r])
			fprintf(stderr, " [%s]=%ld", rg_wait_reason_string((enum rg_wait_reason)r),
				waiting[r]);
	fprintf(stderr, "\n");
}

/* A line saying why, the counts, and schedtrace's detailed lines. */
static inline void rt_sched_report(const char *why)
{
	struct rg_sched *s = rg_sched_current();

	fprintf(stderr, "# %s\n", why);
	if (s) {
		rt_sched_count(s);
		rg_schedtrace_now(s);
	}
}

#endif /* RG_WATCHDOG_H */
