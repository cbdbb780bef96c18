// SPDX-License-Identifier: BSD-2-Clause
/* rg_sleep, rg_timer, rg_ticker, rg_after: Go's time package over the per-P timers. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "chan.h"
#include "fatal.h"
#include "timer.h"

struct rg_timer {
	struct rg_rtimer rt;
	rg_chan *c; /* NULL for rg_after_func's */
	void (*fn)(void *arg);
	void *fn_arg;
};

struct rg_ticker {
	struct rg_timer t;
};

int64_t rg_now(void)
{
	return rg_nanotime();
}

static struct rg_sched *caller_sched(void)
{
	struct rg_m *m = rg_getm();

	return m ? m->sched : NULL;
}

/* ---- sleep ---- */

static void sleep_wake(void *arg, int64_t now)
{
	(void)now;
	rg_ready(arg);
}

static bool sleep_commit(struct rg_g *g, void *arg)
{
	struct rg_rtimer *t = arg;

	(void)g;
	/* Started only now that g is switched out: the timer may fire at once. */
	rg_rtimer_add(t->sched, t);
	return true;
}

void rg_sleep(int64_t ns)
{
	struct rg_g *g = rg_getg();

	if (ns <= 0)
		return;
	if (!g) {
		struct timespec ts = {ns / 1000000000, ns % 1000000000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		return;
	}
	struct rg_rtimer t = {
		.when = rg_nanotime() + ns,
		.f = sleep_wake,
		.arg = g,
		.sched = g->sched,
	};
	rg_park(sleep_commit, &t, WAIT_SLEEP, NULL);
}

/* ---- timers and tickers ---- */

static void send_time(void *arg, int64_t now)
{
	/* Non-blocking, as Go's sendTime: a full channel drops the tick. */
	rg_chan_trysend(arg, &now);
}

/* When a timer started now for ns fires: now for ns <= 0, as Go's when(). */
static int64_t when_after(int64_t ns)
{
	return rg_nanotime() + (ns > 0 ? ns : 0);
}

static void timer_arm(struct rg_timer *t, int64_t when, int64_t period,
		      void (*f)(void *arg, int64_t now), void *arg)
{
	t->rt.when = when;
	t->rt.period = period;
	t->rt.f = f;
	t->rt.arg = arg;
	t->rt.sync = true; /* rg_timer_free waits for an f in progress */
}

/* A timer or ticker that sends on its capacity-1 channel. */
static bool timer_init(struct rg_timer *t, int64_t when, int64_t period)
{
	t->c = rg_chan_make(sizeof(int64_t), 1);
	if (!t->c)
		return false;
	timer_arm(t, when, period, send_time, t->c);
	return true;
}

static struct rg_sched *timer_sched(void)
{
	struct rg_sched *s = caller_sched();

	if (!s)
		rg_fatal("timers need the runtime: call from a goroutine");
	return s;
}

rg_timer *rg_timer_new(int64_t ns)
{
	struct rg_sched *s = timer_sched();
	struct rg_timer *t = rg_zalloc(sizeof(*t));

	if (!t || !timer_init(t, when_after(ns), 0)) {
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	rg_rtimer_add(s, &t->rt);
	return t;
}

/*
 * Go's goFunc: the timer only starts the goroutine. It runs on a P's M
 * inside findrunnable (rg_check_timers), so the goroutine lands on that P
 * like any rg_go's, in runnext.
 */
static void go_func(void *arg, int64_t now)
{
	struct rg_timer *t = arg;

	(void)now;
	if (rg_go(t->fn, t->fn_arg) != 0)
		rg_fatal("rg_after_func: no goroutine for the call (out of memory)");
}

rg_timer *rg_after_func(int64_t ns, void (*fn)(void *arg), void *arg)
{
	struct rg_sched *s = timer_sched();
	struct rg_timer *t;

	if (!fn) {
		errno = EINVAL;
		return NULL;
	}
	if (!(t = rg_zalloc(sizeof(*t)))) {
		errno = ENOMEM;
		return NULL;
	}
	t->fn = fn;
	t->fn_arg = arg;
	timer_arm(t, when_after(ns), 0, go_func, t);
	rg_rtimer_add(s, &t->rt);
	return t;
}

rg_chan *rg_timer_chan(rg_timer *t)
{
	return t->c;
}

bool rg_timer_stop(rg_timer *t)
{
	return rg_rtimer_del(&t->rt);
}

bool rg_timer_reset(rg_timer *t, int64_t ns)
{
	return rg_rtimer_reset(timer_sched(), &t->rt, when_after(ns), 0);
}

void rg_timer_free(rg_timer *t)
{
	if (!t)
		return;
	rg_rtimer_del(&t->rt); /* waits for a send in progress */
	rg_chan_free(t->c);
	free(t);
}

rg_ticker *rg_ticker_new(int64_t period_ns)
{
	if (period_ns <= 0) {
		errno = EINVAL;
		return NULL;
	}
	struct rg_sched *s = timer_sched();
	struct rg_ticker *t = rg_zalloc(sizeof(*t));
	if (!t || !timer_init(&t->t, rg_nanotime() + period_ns, period_ns)) {
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	rg_rtimer_add(s, &t->t.rt);
	return t;
}

rg_chan *rg_ticker_chan(rg_ticker *t)
{
	return t->t.c;
}

void rg_ticker_stop(rg_ticker *t)
{
	rg_rtimer_del(&t->t.rt);
}

int rg_ticker_reset(rg_ticker *t, int64_t period_ns)
{
	if (period_ns <= 0)
		return -EINVAL;
	rg_rtimer_reset(timer_sched(), &t->t.rt, rg_nanotime() + period_ns, period_ns);
	return 0;
}

void rg_ticker_free(rg_ticker *t)
{
	if (!t)
		return;
	rg_rtimer_del(&t->t.rt);
	rg_chan_free(t->t.c);
	free(t);
}

/* rg_after's timer is owned by its channel: rg_chan_free cancels and frees it. */
static void after_release(rg_chan *c)
{
	struct rg_timer *t = c->owner;

	rg_rtimer_del(&t->rt);
	free(t);
}

rg_chan *rg_after(int64_t ns)
{
	rg_timer *t = rg_timer_new(ns);

	if (!t)
		return NULL;
	/* Stop it before publishing the owner hook, then restart: no window where
	 * it can fire into a channel that does not know its owner yet. */
	t->c->owner = t;
	t->c->release = after_release;
	return t->c;
}
