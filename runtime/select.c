// SPDX-License-Identifier: BSD-2-Clause
/*
 * select: Go's selectgo. Cases are polled in a random order (uniform choice
 * among the ready ones) with every involved channel locked in address order.
 * If none is ready, the goroutine queues a sudog on every channel and parks;
 * the first partner to win the goroutine's select_done flag completes its
 * case and wakes it, and the goroutine then dequeues its other sudogs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "fatal.h"
#include "preempt.h"

#define MAX_CASES 65536
#define STACK_CASES 8 /* above this, the bookkeeping goes to the heap: stacks are 64 KiB */

struct selstate {
	rg_case *cases;
	uint32_t *lockorder;
	size_t nlock;
};

static uintptr_t chan_key(const struct selstate *s, uint32_t i)
{
	return (uintptr_t)s->cases[i].chan;
}

/* Heap sort of lockorder by channel address: O(n log n), no allocation. */
static void sort_lockorder(struct selstate *s)
{
	uint32_t *a = s->lockorder;
	size_t n = s->nlock;

	for (size_t i = 1; i < n; i++) {
		/* Sift up into a max-heap. */
		size_t j = i;
		uint32_t v = a[i];
		while (j > 0 && chan_key(s, a[(j - 1) / 2]) < chan_key(s, v)) {
			a[j] = a[(j - 1) / 2];
			j = (j - 1) / 2;
		}
		a[j] = v;
	}
	for (size_t i = n; i-- > 1;) {
		uint32_t v = a[i];
		a[i] = a[0];
		size_t j = 0;
		for (;;) {
			size_t k = 2 * j + 1;
			if (k >= i)
				break;
			if (k + 1 < i && chan_key(s, a[k]) < chan_key(s, a[k + 1]))
				k++;
			if (chan_key(s, v) >= chan_key(s, a[k]))
				break;
			a[j] = a[k];
			j = k;
		}
		a[j] = v;
	}
}

static void sellock(const struct selstate *s)
{
	struct rg_chan *last = NULL;

	for (size_t i = 0; i < s->nlock; i++) {
		struct rg_chan *c = s->cases[s->lockorder[i]].chan;
		if (c != last)
			rg_spin_lock(&c->lock);
		last = c;
	}
}

static void selunlock(void *arg)
{
	const struct selstate *s = arg;

	/* Reverse order; a duplicate channel is unlocked once, at its first position. */
	for (size_t i = s->nlock; i-- > 0;) {
		struct rg_chan *c = s->cases[s->lockorder[i]].chan;
		if (i > 0 && s->cases[s->lockorder[i - 1]].chan == c)
			continue;
		rg_spin_unlock(&c->lock);
	}
}

static bool selpark_commit(struct rg_g *g, void *arg)
{
	(void)g;
	selunlock(arg);
	return true;
}

int rg_select(rg_case *cases, size_t n, bool has_default)
{
	uint32_t poll_small[STACK_CASES], lock_small[STACK_CASES];
	struct rg_sudog sg_small[STACK_CASES];
	uint32_t *pollorder = poll_small;
	struct rg_sudog *sgs = sg_small;
	struct selstate s = {.cases = cases, .lockorder = lock_small};
	size_t npoll = 0;
	int ret;

	if (n > MAX_CASES || (n && !cases))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (cases[i].dir != RG_CASE_SEND && cases[i].dir != RG_CASE_RECV)
			return -EINVAL;
	if (n > STACK_CASES) {
		pollorder = malloc(n * sizeof(*pollorder));
		s.lockorder = malloc(n * sizeof(*s.lockorder));
		sgs = malloc(n * sizeof(*sgs));
		if (!pollorder || !s.lockorder || !sgs) {
			ret = -ENOMEM;
			goto out;
		}
	}

	/* Random poll order over the non-nil cases (inside-out Fisher-Yates). */
	for (size_t i = 0; i < n; i++) {
		if (!cases[i].chan)
			continue;
		uint32_t j = rg_fastrandn((uint32_t)npoll + 1);
		pollorder[npoll] = pollorder[j];
		pollorder[j] = (uint32_t)i;
		npoll++;
	}
	if (npoll == 0) {
		if (has_default) {
			ret = -EAGAIN;
			goto out;
		}
		rg_park(NULL, NULL, WAIT_SELECT_NO_CASES, NULL); /* Go's select {} */
		rg_fatal("goroutine woken from select with no cases");
	}
	memcpy(s.lockorder, pollorder, npoll * sizeof(*pollorder));
	s.nlock = npoll;
	sort_lockorder(&s);

	sellock(&s);

	/* Pass 1: the first ready case in poll order wins. */
	for (size_t k = 0; k < npoll; k++) {
		uint32_t i = pollorder[k];
		rg_case *cs = &cases[i];
		struct rg_chan *c = cs->chan;
		struct rg_sudog *sg;
		ret = (int)i;
		if (cs->dir == RG_CASE_RECV) {
			if ((sg = rg_waitq_dequeue(&c->sendq)) != NULL) {
				cs->result = 1;
				rg_chan_recv_from(c, sg, cs->elem, selunlock, &s);
				goto out;
			}
			size_t q = atomic_load_explicit(&c->qcount, memory_order_relaxed);
			if (q > 0) {
				unsigned char *qp = rg_chanbuf(c, c->recvx);
				if (cs->elem && c->elemsize)
					rg_elem_copy(cs->elem, qp, c->elemsize);
				if (++c->recvx == c->cap)
					c->recvx = 0;
				atomic_store_explicit(&c->qcount, q - 1, memory_order_relaxed);
				cs->result = 1;
				selunlock(&s);
				goto out;
			}
			if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
				selunlock(&s);
				if (cs->elem && c->elemsize)
					memset(cs->elem, 0, c->elemsize);
				cs->result = 0;
				goto out;
			}
		} else {
			if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
				selunlock(&s);
				cs->result = -EPIPE;
				goto out;
			}
			if ((sg = rg_waitq_dequeue(&c->recvq)) != NULL) {
				cs->result = 0;
				rg_chan_send_to(c, sg, cs->elem, selunlock, &s);
				goto out;
			}
			size_t q = atomic_load_explicit(&c->qcount, memory_order_relaxed);
			if (q < c->cap) {
				if (c->elemsize)
					rg_elem_copy(rg_chanbuf(c, c->sendx), cs->elem, c->elemsize);
				if (++c->sendx == c->cap)
					c->sendx = 0;
				atomic_store_explicit(&c->qcount, q + 1, memory_order_relaxed);
				cs->result = 0;
				selunlock(&s);
				goto out;
			}
		}
	}
	if (has_default) {
		selunlock(&s);
		ret = -EAGAIN;
		goto out;
	}

	/* Pass 2: queue on every channel, in lock order, and park. */
	struct rg_g *g = rg_getg();
	if (!g)
		rg_fatal("select outside a goroutine");
	atomic_store_explicit(&g->select_done, 0, memory_order_relaxed);
	g->param = NULL;
	for (size_t k = 0; k < npoll; k++) {
		uint32_t i = s.lockorder[k];
		struct rg_sudog *sg = &sgs[i];
		memset(sg, 0, sizeof(*sg));
		sg->g = g;
		sg->elem = cases[i].elem;
		sg->c = cases[i].chan;
		sg->case_index = (int)i;
		sg->is_select = true;
		rg_waitq_enqueue(cases[i].dir == RG_CASE_SEND ? &sg->c->sendq : &sg->c->recvq, sg);
	}
	rg_park(selpark_commit, &s, WAIT_SELECT, NULL);

	/* Pass 3: find the winner, take our other sudogs off their queues. */
	sellock(&s);
	struct rg_sudog *won = g->param;
	g->param = NULL;
	if (!won)
		rg_fatal("select: bad wake-up");
	for (size_t k = 0; k < npoll; k++) {
		uint32_t i = s.lockorder[k];
		struct rg_sudog *sg = &sgs[i];
		if (sg != won && sg->queued)
			rg_waitq_remove(cases[i].dir == RG_CASE_SEND ? &sg->c->sendq
								: &sg->c->recvq,
					sg);
	}
	selunlock(&s);
	ret = won->case_index;
	if (cases[ret].dir == RG_CASE_SEND)
		cases[ret].result = won->success ? 0 : -EPIPE;
	else
		cases[ret].result = won->success ? 1 : 0;

out:
	if (pollorder != poll_small) {
		free(pollorder);
		free(s.lockorder);
		free(sgs);
	}
	if (ret == -EAGAIN)
		rg_preempt_poll(); /* a polling loop: a safe point (preempt.h) */
	return ret;
}
