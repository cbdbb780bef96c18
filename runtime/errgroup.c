// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_errgroup: golang.org/x/sync/errgroup. A WaitGroup for the goroutines, a
 * Once for the first error, and (with a limit) a semaphore for the slots.
 * Cancellation is a flag the goroutines can poll and, with
 * rg_errgroup_with_ctx, a context (errgroup.WithContext).
 */
#include <errno.h>
#include <stdlib.h>

#include "ringo.h"

#include "context.h"
#include "lock.h"

struct errgroup_task {
	rg_errgroup *g;
	int (*fn)(void *);
	void *arg;
};

struct first_error {
	rg_errgroup *g;
	int err;
};

static void set_error(void *arg)
{
	struct first_error *fe = arg;

	fe->g->err = fe->err;
	__atomic_store_n(&fe->g->canceled, 1, __ATOMIC_RELEASE);
	if (fe->g->ctx)
		rg_ctx_cancel(fe->g->ctx);
}

static void errgroup_run(void *arg)
{
	struct errgroup_task t = *(struct errgroup_task *)arg;

	free(arg);
	int err = t.fn(t.arg);
	if (err) {
		struct first_error fe = {t.g, err};
		rg_once_do(&t.g->err_once, set_error, &fe);
	}
	if (t.g->limit > 0)
		rg_sem_release(&t.g->sem, 1);
	rg_wg_done(&t.g->wg);
}

static int start(rg_errgroup *g, int (*fn)(void *), void *arg)
{
	struct errgroup_task *t = malloc(sizeof(*t));

	if (!t) {
		if (g->limit > 0)
			rg_sem_release(&g->sem, 1);
		return -ENOMEM;
	}
	*t = (struct errgroup_task){g, fn, arg};
	rg_wg_add(&g->wg, 1);
	int err = rg_go(errgroup_run, t);
	if (err) {
		free(t);
		if (g->limit > 0)
			rg_sem_release(&g->sem, 1);
		rg_wg_done(&g->wg);
	}
	return err;
}

int rg_errgroup_go(rg_errgroup *g, int (*fn)(void *), void *arg)
{
	if (!fn)
		return -EINVAL;
	if (g->limit > 0)
		rg_sem_acquire(&g->sem, 1);
	return start(g, fn, arg);
}

int rg_errgroup_trygo(rg_errgroup *g, int (*fn)(void *), void *arg)
{
	if (!fn)
		return -EINVAL;
	if (g->limit > 0 && !rg_sem_tryacquire(&g->sem, 1))
		return -EAGAIN;
	return start(g, fn, arg);
}

int rg_errgroup_set_limit(rg_errgroup *g, int n)
{
	/* As Go (len(g.sem) != 0): refuse while any slot is held. A Go() call
	 * that was just handed a slot holds it in sem.cur before the WaitGroup
	 * counts it, so look at both, and at queued callers, under the lock. */
	struct rg_lock *l = (struct rg_lock *)&g->sem.lock;
	rg_lock(l);
	bool busy = (__atomic_load_n(&g->wg.state, __ATOMIC_ACQUIRE) >> 32) != 0 ||
		    (g->limit > 0 && (g->sem.cur != 0 || g->sem.head));
	if (!busy) {
		g->limit = n > 0 ? n : 0;
		g->sem.size = g->limit;
		g->sem.cur = 0;
	}
	rg_unlock(l);
	return busy ? -EBUSY : 0;
}

int rg_errgroup_wait(rg_errgroup *g)
{
	rg_wg_wait(&g->wg);
	/* As Go's Wait: cancel the context. Then drop the group's reference;
	 * the caller's keeps it alive until rg_ctx_free. */
	rg_ctx *ctx = g->ctx;
	if (ctx) {
		g->ctx = NULL;
		rg_ctx_free(ctx);
	}
	return g->err;
}

rg_ctx *rg_errgroup_with_ctx(rg_errgroup *g, rg_ctx *parent)
{
	if (!g || !parent) {
		errno = EINVAL;
		return NULL;
	}
	if (g->ctx) {
		errno = EBUSY;
		return NULL;
	}
	rg_ctx *ctx = rg_ctx_with_cancel(parent);
	if (!ctx)
		return NULL;
	/* Two references: the caller's, and the group's until Wait returns, so
	 * the goroutines may use ctx even if the caller frees it early. */
	rg_ctx_ref(ctx);
	g->ctx = ctx;
	return ctx;
}

bool rg_errgroup_canceled(rg_errgroup *g)
{
	return __atomic_load_n(&g->canceled, __ATOMIC_ACQUIRE) != 0;
}
