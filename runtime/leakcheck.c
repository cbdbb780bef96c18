// SPDX-License-Identifier: BSD-2-Clause
/*
 * Leak check, uber-go/goleak's idea inside the runtime: at the end of a test
 * (or of a request), every goroutine other than the caller should be gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fatal.h"
#include "runtime.h"

#define DEFAULT_TIMEOUT_NS 1000000000LL
#define KERNEL_WAIT_POLL_NS 100000LL

static bool ignored(const struct rg_leakcheck_opts *o, const struct rg_g *g)
{
	for (size_t i = 0; i < o->n_ignore_ids; i++)
		if (o->ignore_ids[i] == g->goid)
			return true;
	for (size_t i = 0; i < o->n_ignore_fns; i++)
		if (o->ignore_fns[i] == g->fn)
			return true;
	return false;
}

/* How a suspect may still finish by itself. */
enum busy {
	BUSY_NONE,    /* every suspect is parked on a ringo object */
	BUSY_KERNEL,  /* some wait for I/O or a timer: the kernel or a timer wakes them */
	BUSY_RUNNING, /* some are runnable, running or in a system call */
};

/*
 * Count the suspects, and collect them into *out (malloc'd) when out is set;
 * *busy tells whether (and how) any of them may still finish by itself.
 */
static long scan(struct rg_sched *s, struct rg_g *self, const struct rg_leakcheck_opts *o,
		 enum busy *busy, struct rg_g ***out)
{
	long n = 0;

	*busy = BUSY_NONE;
	rg_lock(&s->allg_lock);
	if (out)
		*out = malloc(s->nallg * sizeof(**out));
	for (size_t i = 0; i < s->nallg; i++) {
		struct rg_g *g = s->allg[i];
		uint32_t st = atomic_load_explicit(&g->status, memory_order_acquire);
		/* System goroutines (signal delivery) are the runtime's, as goleak ignores Go's. */
		if (g == self || st == G_DEAD || st == G_IDLE || g->system || ignored(o, g))
			continue;
		if (out && *out)
			(*out)[n] = g;
		n++;
		if (st != G_WAITING)
			*busy = BUSY_RUNNING;
		else if (*busy == BUSY_NONE) {
			uint8_t why = __atomic_load_n(&g->wait_reason, __ATOMIC_RELAXED);
			if (why == WAIT_IO || why == WAIT_SLEEP)
				*busy = BUSY_KERNEL;
		}
	}
	rg_unlock(&s->allg_lock);
	return n;
}

long rg_leakcheck(const struct rg_leakcheck_opts *opts)
{
	static const struct rg_leakcheck_opts none;
	const struct rg_leakcheck_opts *o = opts ? opts : &none;
	struct rg_m *m = rg_getm();
	struct rg_g *self = m ? m->curg : NULL;
	enum busy busy;

	if (!self)
		return -EPERM;
	if ((o->n_ignore_ids && !o->ignore_ids) || (o->n_ignore_fns && !o->ignore_fns) ||
	    o->timeout_ns < 0)
		return -EINVAL;
	struct rg_sched *s = m->sched;
	int64_t deadline = rg_nanotime() + (o->timeout_ns ? o->timeout_ns : DEFAULT_TIMEOUT_NS);

	/*
	 * Goroutines that are runnable are on their way somewhere: let them
	 * run. Ones waiting for I/O or a timer (a connection's handler seeing
	 * its peer's close, say) may finish too: then park for a moment, so
	 * that this P's M can wait in the poller for them.
	 */
	while (scan(s, self, o, &busy, NULL) > 0 && busy != BUSY_NONE && rg_nanotime() < deadline) {
		if (busy == BUSY_RUNNING)
			rg_yield();
		else
			rg_sleep(KERNEL_WAIT_POLL_NS);
	}
	/* One final scan decides: the count printed, dumped and returned agree. */
	struct rg_g **leaked = NULL;
	long n = scan(s, self, o, &busy, &leaked);
	if (n > 0) {
		fprintf(stderr, "ringo: leakcheck: %ld goroutine%s still alive:\n", n,
			n == 1 ? "" : "s");
		fflush(stderr);
		for (long i = 0; leaked && i < n; i++)
			rg_dump_goroutine(leaked[i], NULL);
	}
	free(leaked);
	return n;
}
