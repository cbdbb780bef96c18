// SPDX-License-Identifier: BSD-2-Clause
/*
 * Run queues (Go's runqput/runqget/runqgrab/runqsteal and the global queue).
 *
 * A P's local ring is single-producer, multi-consumer: only the P's owner
 * writes slots and the tail; the owner and thieves take from the head by CAS.
 * Slots are relaxed atomics: a thief may read a slot that the owner is about
 * to overwrite, but then its CAS on head fails and the value is discarded.
 */
#include "runq.h"

#include <stdlib.h>

#include "arch.h"
#include "fatal.h"
#include "probes.h"

#define RUNQ_MASK (RG_RUNQ_SIZE - 1)

/* Room for n more Gs in the global queue. Needs s->lock. */
static void gq_reserve(struct rg_sched *s, uint32_t n)
{
	uint32_t len = (uint32_t)atomic_load_explicit(&s->runqsize, memory_order_relaxed);

	if (len + n <= s->gq_cap)
		return;
	uint32_t cap = s->gq_cap ? s->gq_cap : 1024;
	while (cap < len + n)
		cap *= 2;
	struct rg_g **q = malloc(cap * sizeof(*q));
	if (!q)
		rg_fatal("out of memory growing the global run queue to %u", cap);
	for (uint32_t i = 0; i < len; i++)
		q[i] = s->gq[(s->gq_head + i) & (s->gq_cap - 1)];
	free(s->gq);
	s->gq = q;
	s->gq_cap = cap;
	s->gq_head = 0;
}

/* Append n Gs. Needs s->lock. */
static void gq_push(struct rg_sched *s, struct rg_g *const *gs, uint32_t n)
{
	gq_reserve(s, n);
	uint32_t len = (uint32_t)atomic_load_explicit(&s->runqsize, memory_order_relaxed);
	int64_t now = atomic_load_explicit(&s->coarse_now, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++) {
		gs[i]->queued_at = now; /* for sysmon's rg_global_late */
		s->gq[(s->gq_head + len + i) & (s->gq_cap - 1)] = gs[i];
	}
	atomic_store_explicit(&s->runqsize, (int32_t)(len + n), memory_order_relaxed);
}

void rg_globrunq_destroy(struct rg_sched *s)
{
	free(s->gq);
	s->gq = NULL;
	s->gq_cap = 0;
}

/* Move half of p's ring plus g to the global queue, in one batch. */
static bool runqputslow(struct rg_p *p, struct rg_sched *s, struct rg_g *g, uint32_t h, uint32_t t)
{
	struct rg_g *batch[RG_RUNQ_SIZE / 2 + 1];
	uint32_t n = (t - h) / 2;

	if (n != RG_RUNQ_SIZE / 2)
		rg_fatal("runqputslow: queue is not full");
	for (uint32_t i = 0; i < n; i++)
		batch[i] = atomic_load_explicit(&p->runq[(h + i) & RUNQ_MASK], memory_order_relaxed);
	if (!atomic_compare_exchange_strong_explicit(&p->runqhead, &h, h + n, memory_order_release,
						     memory_order_relaxed))
		return false; /* thieves took some: the ring has room now */
	batch[n] = g;
	rg_lock(&s->lock);
	gq_push(s, batch, n + 1);
	rg_unlock(&s->lock);
	return true;
}

void rg_runqput(struct rg_p *p, struct rg_g *g, bool next)
{
	if (next) {
		/* Thieves only ever swap a G out for NULL, so an empty slot can be
		 * filled with a plain release store: no locked instruction. */
		if (!atomic_load_explicit(&p->runnext, memory_order_relaxed)) {
			atomic_store_explicit(&p->runnext, g, memory_order_release);
			return;
		}
		struct rg_g *old = atomic_exchange_explicit(&p->runnext, g, memory_order_acq_rel);
		if (!old)
			return;
		g = old; /* the previous runnext goes to the ring's tail */
	}
	for (;;) {
		uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
		uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
		if (t - h < RG_RUNQ_SIZE) {
			atomic_store_explicit(&p->runq[t & RUNQ_MASK], g, memory_order_relaxed);
			atomic_store_explicit(&p->runqtail, t + 1, memory_order_release);
			return;
		}
		if (runqputslow(p, g->sched, g, h, t))
			return;
	}
}

struct rg_g *rg_runqget(struct rg_p *p, bool *inherit)
{
	struct rg_g *next = atomic_load_explicit(&p->runnext, memory_order_relaxed);

	/* Only the owner clears runnext to non-NULL values, thieves only to NULL. */
	if (next && atomic_compare_exchange_strong_explicit(&p->runnext, &next, NULL,
							    memory_order_acquire,
							    memory_order_relaxed)) {
		*inherit = true;
		return next;
	}
	*inherit = false;
	for (;;) {
		uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
		uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
		if (t == h)
			return NULL;
		struct rg_g *g = atomic_load_explicit(&p->runq[h & RUNQ_MASK], memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(&p->runqhead, &h, h + 1,
							  memory_order_release,
							  memory_order_relaxed))
			return g;
	}
}

bool rg_runqempty(struct rg_p *p)
{
	/* Re-read tail after runnext: runqput's kick moves a G from runnext to the
	 * ring, and we must not see neither. */
	for (;;) {
		uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
		uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_acquire);
		struct rg_g *next = atomic_load_explicit(&p->runnext, memory_order_acquire);
		if (atomic_load_explicit(&p->runqtail, memory_order_acquire) == t)
			return h == t && next == NULL;
	}
}

uint32_t rg_runqlen(struct rg_p *p)
{
	uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
	uint32_t n = t - h;

	return n > RG_RUNQ_SIZE ? 0 : n;
}

/*
 * Wait about 3 µs for a running victim to take its own runnext. A sync
 * hand-off takes well under 1 µs, so this gives the pair a chance to stay on
 * one P (Go uses usleep(3); we spin, since a sleep syscall costs more here).
 */
static void runnext_backoff(struct rg_p *victim, struct rg_g *next)
{
	int64_t deadline = rg_nanotime() + 3000;

	while (atomic_load_explicit(&victim->runnext, memory_order_relaxed) == next) {
		for (int i = 0; i < 64; i++)
			rg_arch_relax();
		if (rg_nanotime() >= deadline)
			break;
	}
}

/*
 * Grab half of victim's ring into p's ring starting at p's tail, without
 * publishing it. Returns the number of Gs grabbed.
 */
static uint32_t runqgrab(struct rg_p *victim, struct rg_p *p, uint32_t batch_head, bool steal_runnext)
{
	for (;;) {
		uint32_t h = atomic_load_explicit(&victim->runqhead, memory_order_acquire);
		uint32_t t = atomic_load_explicit(&victim->runqtail, memory_order_acquire);
		uint32_t n = t - h;
		n = n - n / 2;
		if (n == 0) {
			if (!steal_runnext)
				return 0;
			struct rg_g *next = atomic_load_explicit(&victim->runnext, memory_order_acquire);
			if (!next)
				return 0;
			/*
			 * No grace for the P a loan is for: its M is stuck (sysmon
			 * lent p for that) and will not take its runnext soon. The
			 * kernel-fed handoff's start went from 12 to 8-10 us at p50.
			 */
			uint32_t st = atomic_load_explicit(&victim->status, memory_order_relaxed);
			if (st == P_RUNNING && p->lent_for != victim)
				runnext_backoff(victim, next);
			if (!atomic_compare_exchange_strong_explicit(&victim->runnext, &next, NULL,
								     memory_order_acq_rel,
								     memory_order_relaxed))
				continue;
			atomic_store_explicit(&p->runq[batch_head & RUNQ_MASK], next,
					      memory_order_relaxed);
			return 1;
		}
		if (n > RG_RUNQ_SIZE / 2)
			continue; /* read head and tail at different times: inconsistent */
		for (uint32_t i = 0; i < n; i++) {
			struct rg_g *g = atomic_load_explicit(&victim->runq[(h + i) & RUNQ_MASK],
							      memory_order_relaxed);
			atomic_store_explicit(&p->runq[(batch_head + i) & RUNQ_MASK], g,
					      memory_order_relaxed);
		}
		if (atomic_compare_exchange_strong_explicit(&victim->runqhead, &h, h + n,
							    memory_order_release,
							    memory_order_relaxed))
			return n;
	}
}

struct rg_g *rg_runqsteal(struct rg_p *p, struct rg_p *victim, bool steal_runnext)
{
	uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
	uint32_t n = runqgrab(victim, p, t, steal_runnext);

	if (n == 0)
		return NULL;
	RG_COUNTER_ADD(p->steals, 1);
	RG_COUNTER_ADD(p->stolen, n);
	RG_PROBE(steal, p->id, victim->id, n);
	n--;
	struct rg_g *g = atomic_load_explicit(&p->runq[(t + n) & RUNQ_MASK], memory_order_relaxed);
	if (n == 0)
		return g;
	uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
	if (t - h + n >= RG_RUNQ_SIZE)
		rg_fatal("runqsteal: runq overflow");
	atomic_store_explicit(&p->runqtail, t + n, memory_order_release);
	return g;
}

/* Empty p's ring and runnext onto the global queue (a retired P). Owner only. */
void rg_runqdrain(struct rg_p *p, struct rg_sched *s)
{
	bool inherit;
	struct rg_g *g;

	while ((g = rg_runqget(p, &inherit)) != NULL) {
		rg_lock(&s->lock);
		rg_globrunqput_locked(s, g);
		rg_unlock(&s->lock);
	}
}

void rg_globrunqput_locked(struct rg_sched *s, struct rg_g *g)
{
	gq_push(s, &g, 1);
}

void rg_globrunqput(struct rg_sched *s, struct rg_g *g)
{
	rg_lock(&s->lock);
	rg_globrunqput_locked(s, g);
	rg_unlock(&s->lock);
}

void rg_globrunqput_wakep(struct rg_sched *s, struct rg_g *g)
{
	rg_globrunqput(s, g);
	/* StoreLoad: g is in the queue before wakep reads the idle counts. */
	rg_arch_fence_after_rmw();
	rg_wakep(s, false);
}

struct rg_g *rg_globrunqget_locked(struct rg_sched *s, struct rg_p *p, int max)
{
	int32_t size = atomic_load_explicit(&s->runqsize, memory_order_relaxed);
	int32_t procs = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);

	if (size == 0)
		return NULL;
	int32_t n = size / procs + 1;
	if (n > size)
		n = size;
	if (max > 0 && n > max)
		n = max;
	if (n > (int32_t)RG_RUNQ_SIZE / 2)
		n = RG_RUNQ_SIZE / 2;
	atomic_store_explicit(&s->runqsize, size - n, memory_order_relaxed);
	RG_COUNTER_ADD(p->global_get, (uint64_t)n);

	uint32_t mask = s->gq_cap - 1;
	struct rg_g *g = s->gq[s->gq_head];
	s->gq_head = (s->gq_head + 1) & mask;
	if (n > 1) {
		/* Callers only batch-get with an empty ring, so this never overflows. */
		uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
		uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
		if (t - h + (uint32_t)(n - 1) > RG_RUNQ_SIZE)
			rg_fatal("globrunqget: local run queue overflow");
		for (int32_t i = 1; i < n; i++) {
			atomic_store_explicit(&p->runq[(t + (uint32_t)i - 1) & RUNQ_MASK],
					      s->gq[s->gq_head], memory_order_relaxed);
			s->gq_head = (s->gq_head + 1) & mask;
		}
		atomic_store_explicit(&p->runqtail, t + (uint32_t)n - 1, memory_order_release);
	}
	return g;
}
