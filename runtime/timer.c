// SPDX-License-Identifier: BSD-2-Clause
/*
 * Per-P timer heaps. A timer lives on the heap of the P that started it
 * (Go's model since 1.14); any thread may stop it, taking that P's lock.
 * Expired timers are removed under the lock and their function runs after
 * the lock is dropped, so a function may start or stop timers itself.
 */
#include "timer.h"
#include "poller.h"

#include <errno.h>
#include <stdlib.h>

#include "fatal.h"
#include "lock.h"

/*
 * A 4-ary min-heap (as Go's) of (when, timer) entries: the key sits in the
 * entry, so a sift compares without touching the timers (scattered over the
 * heap of the process; the timer benchmarks keep 32,768 on each P), and four
 * children per node halve the depth. An entry's key may be earlier than its
 * timer's when: a timer reset to later keeps its place until it surfaces
 * (rg_rtimer_reset). Needs p->timers_lock.
 */
static inline void heap_set(struct rg_p *p, int32_t i, struct rg_tentry e)
{
	p->timers[i] = e;
	e.t->idx = i;
}

static void sift_up(struct rg_p *p, int32_t i)
{
	struct rg_tentry e = p->timers[i];

	while (i > 0) {
		int32_t parent = (i - 1) / 4;
		if (p->timers[parent].when <= e.when)
			break;
		heap_set(p, i, p->timers[parent]);
		i = parent;
	}
	heap_set(p, i, e);
}

static void sift_down(struct rg_p *p, int32_t i)
{
	struct rg_tentry e = p->timers[i];
	int32_t n = p->ntimers;

	for (;;) {
		int32_t c = 4 * i + 1, m = -1;
		int64_t w = e.when;
		for (int32_t k = c; k < c + 4 && k < n; k++) {
			if (p->timers[k].when < w) {
				w = p->timers[k].when;
				m = k;
			}
		}
		if (m < 0)
			break;
		heap_set(p, i, p->timers[m]);
		i = m;
	}
	heap_set(p, i, e);
}

/* Needs p->timers_lock. */
static void publish_timer0(struct rg_p *p)
{
	atomic_store_explicit(&p->timer0_when, p->ntimers ? p->timers[0].when : 0,
			      memory_order_release);
}

/* Needs p->timers_lock. */
static void heap_remove(struct rg_p *p, struct rg_rtimer *t)
{
	int32_t i = t->idx, last = --p->ntimers;

	if (i != last) {
		heap_set(p, i, p->timers[last]);
		sift_down(p, i);
		sift_up(p, i);
	}
	atomic_store_explicit(&t->p, NULL, memory_order_relaxed);
	publish_timer0(p);
}

/* Needs p->timers_lock. */
static void heap_push(struct rg_p *p, struct rg_rtimer *t)
{
	if (p->ntimers == p->captimers) {
		int32_t cap = p->captimers ? p->captimers * 2 : 64;
		struct rg_tentry *h = realloc(p->timers, (size_t)cap * sizeof(*h));
		if (!h)
			rg_fatal("out of memory growing P%d's timer heap", p->id);
		p->timers = h;
		p->captimers = cap;
	}
	p->timers[p->ntimers] = (struct rg_tentry){t->when, t};
	atomic_store_explicit(&t->p, p, memory_order_relaxed);
	sift_up(p, p->ntimers++);
	publish_timer0(p);
}

/*
 * After a timer on p became due at when: an idle M sleeping past it must
 * recompute its deadline; with no sleeper, make sure some M is awake to look
 * (Go's wakeNetPoller). The fence pairs with the sleeper's between its CAS
 * on timer_sleeping and its rescan: either it sees the timer, or we see it
 * sleeping.
 */
static void timer_notify(struct rg_sched *s, struct rg_p *p, struct rg_m *m, int64_t when)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->timer_sleeping, memory_order_seq_cst)) {
		if (when < atomic_load_explicit(&s->timer_sleep_until, memory_order_relaxed))
			rg_timer_kick(s);
	} else if (p != (m ? m->p : NULL)) {
		rg_wakep(s, true);
	}
}

void rg_rtimer_add(struct rg_sched *s, struct rg_rtimer *t)
{
	struct rg_m *m = rg_getm();
	struct rg_p *p = m && m->p && m->sched == s ? m->p : s->allp[0];

	t->sched = s;
	rg_spin_lock(&p->timers_lock);
	heap_push(p, t);
	rg_spin_unlock(&p->timers_lock);
	timer_notify(s, p, m, t->when);
}

/* Lock the heap t is pending on and return its P; NULL when t is not pending. */
static struct rg_p *lock_timer_heap(struct rg_rtimer *t)
{
	for (;;) {
		struct rg_p *p = atomic_load_explicit(&t->p, memory_order_acquire);
		if (!p)
			return NULL;
		rg_spin_lock(&p->timers_lock);
		if (atomic_load_explicit(&t->p, memory_order_relaxed) == p)
			return p;
		rg_spin_unlock(&p->timers_lock); /* fired or moved meanwhile */
	}
}

bool rg_rtimer_reset(struct rg_sched *s, struct rg_rtimer *t, int64_t when, int64_t period)
{
	struct rg_p *p = lock_timer_heap(t);

	if (!p) {
		rg_rtimer_del(t); /* not pending: wait out a running f, as a stop does */
		t->when = when;
		t->period = period;
		rg_rtimer_add(s, t);
		return false;
	}
	t->when = when;
	t->period = period;
	bool earlier = when < p->timers[t->idx].when;
	if (earlier) {
		p->timers[t->idx].when = when;
		sift_up(p, t->idx);
		publish_timer0(p);
	}
	/* Later: the entry keeps its key, and rg_check_timers moves it when it
	 * surfaces (Go's timerModifiedLater): no sift for a deadline pushed
	 * back, the common reset. */
	rg_spin_unlock(&p->timers_lock);
	if (earlier)
		timer_notify(s, p, rg_getm(), when);
	return true;
}

int rg_timers_move(struct rg_p *from, struct rg_p *to)
{
	int n = 0;

	rg_spin_lock(&from->timers_lock);
	if (from->ntimers) {
		/* Both locks while t->p changes: rg_rtimer_del rechecks it under the lock. */
		rg_spin_lock(&to->timers_lock);
		while (from->ntimers > 0) {
			struct rg_rtimer *t = from->timers[from->ntimers - 1].t;
			from->ntimers--;
			heap_push(to, t); /* keyed by its when: a lazy key is refreshed */
			n++;
		}
		publish_timer0(from);
		rg_spin_unlock(&to->timers_lock);
	}
	rg_spin_unlock(&from->timers_lock);
	return n;
}

bool rg_rtimer_del(struct rg_rtimer *t)
{
	struct rg_p *p = lock_timer_heap(t);

	if (p) {
		heap_remove(p, t);
		rg_spin_unlock(&p->timers_lock);
		return true;
	}
	/* Not pending; for a heap-allocated owner, wait out a running f. */
	while (t->sync && atomic_load_explicit(&t->firing, memory_order_acquire))
		rg_osyield();
	return false;
}

int64_t rg_check_timers(struct rg_p *p, int64_t now)
{
	for (;;) {
		int64_t next = atomic_load_explicit(&p->timer0_when, memory_order_acquire);
		if (next == 0 || next > now)
			return next;
		rg_spin_lock(&p->timers_lock);
		if (p->ntimers == 0 || p->timers[0].when > now) {
			rg_spin_unlock(&p->timers_lock);
			continue;
		}
		struct rg_rtimer *t = p->timers[0].t;
		if (t->when > p->timers[0].when) {
			/* Reset to later since it was keyed: re-key it, and look again. */
			p->timers[0].when = t->when;
			sift_down(p, 0);
			publish_timer0(p);
			rg_spin_unlock(&p->timers_lock);
			continue;
		}
		bool periodic = t->period > 0;
		if (periodic) {
			/* Next tick from the scheduled time, skipping missed ones (Go's ticker). */
			t->when += t->period * (1 + (now - t->when) / t->period);
			p->timers[0].when = t->when;
			sift_down(p, 0);
			publish_timer0(p);
		} else {
			heap_remove(p, t);
		}
		if (t->sync)
			atomic_store_explicit(&t->firing, 1, memory_order_relaxed);
		void (*f)(void *, int64_t) = t->f;
		void *arg = t->arg;
		bool sync = t->sync;
		rg_spin_unlock(&p->timers_lock);
		f(arg, now); /* a sleep timer is gone once f readies its goroutine */
		if (sync)
			atomic_store_explicit(&t->firing, 0, memory_order_release);
	}
}

int64_t rg_timers_next(struct rg_sched *s)
{
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);
	int64_t next = 0;

	for (int32_t i = 0; i < n; i++) {
		int64_t w = atomic_load_explicit(&s->allp[i]->timer0_when, memory_order_acquire);
		if (w && (next == 0 || w < next))
			next = w;
	}
	return next;
}

int rg_timer_sleep(struct rg_sched *s, int64_t until, struct rg_g **gs, int max)
{
	uint32_t zero = 0;
	int n = 0;

	if (!atomic_compare_exchange_strong_explicit(&s->timer_sleeping, &zero, 1,
						     memory_order_seq_cst, memory_order_relaxed))
		return -1;
	atomic_store_explicit(&s->timer_sleep_until, until ? until : INT64_MAX,
			      memory_order_release);
	/* A timer added between our scan and the store above may not have kicked us. */
	atomic_thread_fence(memory_order_seq_cst);
	int64_t next = rg_timers_next(s);
	if (next && (until == 0 || next < until))
		until = next;
	if (!atomic_load_explicit(&s->stopping, memory_order_acquire)) {
		if (rg_netpoll_active(s)) {
			n = rg_netpoll(s, until ? until : -1, gs, max);
			if (n < 0)
				n = 0;
		} else if (until) {
			int64_t now = rg_nanotime();
			if (until > now)
				rg_futex_wait(&s->timer_note, 0, until - now);
		}
	}
	atomic_store_explicit(&s->timer_note, 0, memory_order_relaxed);
	atomic_store_explicit(&s->timer_sleeping, 0, memory_order_release);
	return n;
}

void rg_timer_kick(struct rg_sched *s)
{
	rg_netpoll_wake(s); /* the sleeper may be in the poller */
	atomic_store_explicit(&s->timer_note, 1, memory_order_release);
	rg_futex_wake(&s->timer_note, 1);
}

void rg_timers_destroy(struct rg_p *p)
{
	free(p->timers);
	p->timers = NULL;
	p->ntimers = p->captimers = 0;
}
