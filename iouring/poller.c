// SPDX-License-Identifier: BSD-2-Clause
/*
 * Poller lifecycle and the pieces both backends share: choosing a backend,
 * the scheduler's rg_netpoll entry points, and the park/complete handshake
 * of a goroutine waiting for I/O.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fatal.h"
#include "poller.h"
#include "runtime.h"
#include "timer.h"

/* Which backend this process prefers; io_uring unless told or unable. */
static _Atomic int fallback_reported;

static bool want_epoll(void)
{
	const char *env = getenv("RINGO_POLLER");

	return env && strcmp(env, "epoll") == 0;
}

/* Go ignores SIGPIPE for non-stdio fds: a write to a reset peer returns EPIPE. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
	    sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

static struct rg_poller *poller_create(struct rg_sched *s)
{
	struct rg_poller *pl = calloc(1, sizeof(*pl));

	if (!pl)
		return NULL;
	pl->sched = s;
	if (!want_epoll()) {
		pl->ops = &rg_uring_ops;
		int err = pl->ops->init(pl);
		if (err == 0)
			return pl;
		if (atomic_exchange(&fallback_reported, 1) == 0)
			fprintf(stderr, "ringo: io_uring unavailable (%s); using the epoll poller\n",
				strerror(-err));
	}
	pl->ops = &rg_epoll_ops;
	if (pl->ops->init(pl) == 0)
		return pl;
	free(pl);
	return NULL;
}

struct rg_poller *rg_poller_get(struct rg_sched *s)
{
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);

	if (pl)
		return pl;
	rg_lock(&s->poller_lock);
	pl = atomic_load_explicit(&s->poller, memory_order_relaxed);
	if (!pl) {
		ignore_sigpipe();
		pl = poller_create(s);
		atomic_store_explicit(&s->poller, pl, memory_order_release);
		/* An M asleep on the timer futex must move into the poller. */
		rg_timer_kick(s);
	}
	rg_unlock(&s->poller_lock);
	return pl;
}

void rg_poller_destroy(struct rg_sched *s)
{
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);

	if (!pl)
		return;
	pl->ops->destroy(pl);
	free(pl);
	atomic_store_explicit(&s->poller, NULL, memory_order_relaxed);
}

const char *rg_poller_name(void)
{
	struct rg_sched *s = rg_sched_current();
	struct rg_poller *pl = s ? rg_poller_get(s) : NULL;

	if (pl)
		return pl->ops->name;
	return want_epoll() ? rg_epoll_ops.name : rg_uring_ops.name;
}

/* ---- the scheduler's side ---- */

bool rg_netpoll_active(struct rg_sched *s)
{
	return atomic_load_explicit(&s->poller, memory_order_acquire) != NULL;
}

int rg_netpoll(struct rg_sched *s, int64_t until, struct rg_g **out, int max)
{
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);

	if (!pl)
		return 0;
	if (until != 0) {
		/* Only one M blocks in the poller (Go: sched.lastpoll == 0). */
		uint32_t zero = 0;
		if (!atomic_compare_exchange_strong_explicit(&pl->blocked, &zero, 1,
							     memory_order_seq_cst,
							     memory_order_relaxed))
			return -EBUSY;
		int n = pl->ops->poll(pl, until, out, max);
		atomic_store_explicit(&pl->blocked, 0, memory_order_release);
		return n;
	}
	return pl->ops->poll(pl, 0, out, max);
}

void rg_netpoll_wake(struct rg_sched *s)
{
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);

	/*
	 * Even when nobody is blocked yet: the sleeper may be on its way in,
	 * and a pending wake ends its next blocking poll at once. Callers are
	 * rare (an earlier timer, shutdown), so this costs nothing on hot paths.
	 */
	if (pl)
		pl->ops->wake(pl);
}

/* ---- waiting ---- */

void rg_iowait_begin(struct rg_poller *pl, struct rg_iowait *w)
{
	w->g = rg_getg();
	atomic_store_explicit(&w->state, IOWAIT_PENDING, memory_order_relaxed);
	/* Also the deadlock detector's count of I/O in flight (one shared line, not two). */
	atomic_fetch_add_explicit(&pl->waiting, 1, memory_order_release);
}

static bool iowait_commit(struct rg_g *g, void *arg)
{
	struct rg_iowait *w = arg;
	uint32_t pending = IOWAIT_PENDING;

	/* Fails only when the completion came first: then resume at once. */
	return atomic_compare_exchange_strong_explicit(&w->state, &pending, IOWAIT_PARKED,
						       memory_order_acq_rel, memory_order_acquire);
}

void rg_iowait_park(struct rg_iowait *w)
{
	if (atomic_load_explicit(&w->state, memory_order_acquire) == IOWAIT_DONE)
		return;
	rg_park(iowait_commit, w, WAIT_IO, w);
	/* Pairs with the completer's release: its result is visible now. */
	if (atomic_load_explicit(&w->state, memory_order_acquire) != IOWAIT_DONE)
		rg_fatal("I/O wait resumed before it completed");
}

struct rg_g *rg_iowait_complete(struct rg_iowait *w)
{
	struct rg_g *g = w->g; /* read first: w dies once the waiter sees DONE */
	uint32_t old = atomic_exchange_explicit(&w->state, IOWAIT_DONE, memory_order_acq_rel);

	if (old == IOWAIT_DONE)
		rg_fatal("I/O wait completed twice");
	return old == IOWAIT_PARKED ? g : NULL;
}

void rg_iowait_end(struct rg_poller *pl, struct rg_iowait *w)
{
	atomic_fetch_sub_explicit(&pl->waiting, 1, memory_order_release);
}
