/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Runtime timers (Go 1.14+'s per-P timers): each P keeps a min-heap of the
 * timers started on it; the P's owner runs the expired ones in findrunnable,
 * a thief runs a victim's on its last steal round, and when every M is idle
 * one of them sleeps until the earliest timer.
 */
#ifndef RINGO_TIMER_H
#define RINGO_TIMER_H

#include "runtime.h"

struct rg_rtimer {
	int64_t when;	/* CLOCK_MONOTONIC ns */
	int64_t period; /* > 0: fire again every period */
	/* Runs on the firing M with no lock held; must not block. */
	void (*f)(void *arg, int64_t now);
	void *arg;
	_Atomic(struct rg_p *) p; /* heap it is on, NULL when not pending [p->timers_lock] */
	int32_t idx;		  /* position in that heap */
	bool sync;		  /* rg_rtimer_del waits for a running f (heap-allocated owners) */
	struct rg_sched *sched;
	_Atomic uint32_t firing;
};

/* A heap entry: its key (t's when, or earlier once t was reset to later) and t. */
struct rg_tentry {
	int64_t when;
	struct rg_rtimer *t;
};

/* Start t (when, period, f, arg set) on the calling M's P (P0's heap from a plain thread). */
void rg_rtimer_add(struct rg_sched *s, struct rg_rtimer *t);

/*
 * Change t's when and period (Go's modtimer); true if it was pending. A
 * pending timer stays on its P's heap, and one moved later is not even
 * sifted; otherwise it waits out a running f (as a stop does) and starts
 * again as rg_rtimer_add does.
 */
bool rg_rtimer_reset(struct rg_sched *s, struct rg_rtimer *t, int64_t when, int64_t period);

/* Stop t; true if it was pending. With t->sync, also waits until a running f returns. */
bool rg_rtimer_del(struct rg_rtimer *t);

/* Run p's expired timers; returns the next pending when, or 0. */
int64_t rg_check_timers(struct rg_p *p, int64_t now);

/* The earliest pending timer over all Ps, or 0. */
int64_t rg_timers_next(struct rg_sched *s);

/*
 * The idle M's sleep (at most one M at a time): until the earliest timer
 * (until, 0: none) or a kick, in the poller once there is one - then I/O
 * completions end it too, and the goroutines they made ready (at most max)
 * are stored in gs. Returns how many, or -1 if another M is the sleeper.
 */
int rg_timer_sleep(struct rg_sched *s, int64_t until, struct rg_g **gs, int max);

/* Wake the timed sleeper (a new earlier timer, or shutdown). */
void rg_timer_kick(struct rg_sched *s);

/*
 * Move every pending timer of from, a P about to die, to to (Go's
 * moveTimers); returns how many. Neither P's owner is needed. to must never
 * itself be moved from (callers use P0, which never dies), so that two moves
 * cannot take the two locks in opposite orders.
 */
int rg_timers_move(struct rg_p *from, struct rg_p *to);

/* Free p's heap storage (the scheduler is gone). */
void rg_timers_destroy(struct rg_p *p);

#endif /* RINGO_TIMER_H */
