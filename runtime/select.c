// SPDX-License-Identifier: BSD-2-Clause
/*
 * select: Go's selectgo. Cases are polled in a random order (uniform choice
 * among the ready ones), first one channel at a time (pass 0), then with
 * every involved channel locked in address order.
 * If none is ready, the goroutine queues a sudog on every channel and parks;
 * the first partner to win the goroutine's select_done flag completes its
 * case and wakes it, and the goroutine then dequeues its other sudogs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "chanring.h"
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

/*
 * A select with a default must find no case ready at one instant, as Go's
 * does with every channel locked. The locks hold unbuffered channels still,
 * but a buffered one's fast paths move without the lock: pass 1 runs between
 * two reads of every buffered channel's positions, and is repeated if any
 * moved (a double collect). Positions only grow, and their flag bits change
 * only under the lock we hold, so equal means untouched.
 */
static void snapshot(const struct selstate *s, uint64_t *snap)
{
	for (size_t i = 0; i < s->nlock; i++) {
		struct rg_chan *c = s->cases[s->lockorder[i]].chan;
		if (c->cap) {
			snap[2 * i] = atomic_load_explicit(&c->sendpos, memory_order_seq_cst);
			snap[2 * i + 1] = atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst);
		}
	}
}

static bool snapshot_moved(const struct selstate *s, const uint64_t *snap)
{
	for (size_t i = 0; i < s->nlock; i++) {
		struct rg_chan *c = s->cases[s->lockorder[i]].chan;
		if (c->cap &&
		    (atomic_load_explicit(&c->sendpos, memory_order_seq_cst) != snap[2 * i] ||
		     atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst) != snap[2 * i + 1]))
			return true;
	}
	return false;
}

/* Clear the waiting marks nobody needs on the buffered channels [locked]. */
static void sync_marks(const struct selstate *s)
{
	for (size_t i = 0; i < s->nlock; i++) {
		struct rg_chan *c = s->cases[s->lockorder[i]].chan;
		if (c->cap)
			rg_chan_sync_marks(c);
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
	uint64_t snap_small[2 * STACK_CASES];
	uint64_t *snap = snap_small;
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
		snap = malloc(2 * n * sizeof(*snap));
		if (!pollorder || !s.lockorder || !sgs || !snap) {
			ret = -ENOMEM;
			goto out;
		}
	}

	/* Random poll order over the non-nil cases (inside-out Fisher-Yates; the first draws nothing). */
	struct rg_m *m = rg_getm();
	for (size_t i = 0; i < n; i++) {
		if (!cases[i].chan)
			continue;
		uint32_t j = npoll ? rg_fastrandn_m(m, (uint32_t)npoll + 1) : 0;
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
	/*
	 * Pass 0, one channel at a time: buffered channels' own lock-free
	 * claims, and an unbuffered channel's lock alone when a partner is
	 * queued on it or it is closed, in poll order, for as long as no case
	 * needs every lock to be judged (a buffered channel with parked
	 * goroutines): the first case that completes is the first ready one in
	 * poll order, which is what pass 1 would choose. A case that fails here
	 * was not ready at that instant (a queued partner may be another
	 * select's, already taken); if none completes, pass 1 decides under all
	 * the locks. A select that finds its partner waiting, the common case
	 * in a ping-pong, so takes one lock instead of all of them.
	 */
	for (size_t k = 0; k < npoll; k++) {
		uint32_t i = pollorder[k];
		rg_case *cs = &cases[i];
		struct rg_chan *c = cs->chan;
		bool recv = cs->dir == RG_CASE_RECV;
		if (!c->cap) {
			if (!atomic_load_explicit(&c->closed, memory_order_relaxed) &&
			    (recv ? rg_chan_empty(c) : rg_chan_full(c)))
				continue; /* nobody to take from or give to */
			struct rg_sudog *wake = NULL;
			rg_spin_lock(&c->lock);
			int r = recv ? rg_chan_recv_locked(c, cs->elem, &wake) :
				       rg_chan_send_locked(c, cs->elem, &wake);
			rg_spin_unlock(&c->lock);
			if (r == -EAGAIN)
				continue;
			rg_chan_wake_all(wake);
			cs->result = r;
			ret = (int)i;
			goto out;
		}
		enum ring_result rr = recv ? ring_recv(c, cs->elem, false) :
					     ring_send(c, cs->elem, false);
		if (rr == RING_OK || rr == RING_CLOSED) {
			if (rr == RING_CLOSED && recv && cs->elem && c->elemsize)
				memset(cs->elem, 0, c->elemsize); /* Go's zero value */
			cs->result = rr == RING_OK ? (recv ? 1 : 0) : (recv ? 0 : -EPIPE);
			ret = (int)i;
			goto out;
		}
		if (rr != RING_EMPTY && rr != RING_FULL)
			break;
	}

	memcpy(s.lockorder, pollorder, npoll * sizeof(*pollorder));
	s.nlock = npoll;
	sort_lockorder(&s);

	struct rg_sudog *wake = NULL;
	bool marked = false; /* in this hold of the locks: another holder may clear the marks */
	sellock(&s);
	for (;;) {
		if (has_default)
			snapshot(&s, snap);
		/* Pass 1: the first ready case in poll order wins. */
		for (size_t k = 0; k < npoll; k++) {
			uint32_t i = pollorder[k];
			rg_case *cs = &cases[i];
			int r = cs->dir == RG_CASE_RECV ? rg_chan_recv_locked(cs->chan, cs->elem, &wake)
							: rg_chan_send_locked(cs->chan, cs->elem, &wake);
			if (r != -EAGAIN) {
				cs->result = r;
				ret = (int)i;
				goto done_locked;
			}
		}
		if (has_default) {
			/* None was ready, in one instant: unless the snapshot moved. */
			if (!snapshot_moved(&s, snap)) {
				ret = -EAGAIN;
				goto done_locked;
			}
			continue;
		}
		if (marked && !wake)
			break;
		/*
		 * Mark every buffered channel as waited on before queueing, then look
		 * again (chan.h): a fast operation that raced with a mark is seen by
		 * the second pass 1, and one after it will find our sudog.
		 */
		if (!marked) {
			for (size_t k = 0; k < npoll; k++) {
				rg_case *cs = &cases[s.lockorder[k]];
				rg_chan_mark_waiting(cs->chan, cs->dir == RG_CASE_SEND, &wake);
			}
			marked = true;
		}
		if (wake) {
			sync_marks(&s);
			selunlock(&s);
			rg_chan_wake_all(wake);
			wake = NULL;
			marked = false;
			sellock(&s);
		}
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
	rg_park_handoff(selpark_commit, &s, WAIT_SELECT, NULL);

	/*
	 * Pass 3: the winner is in g->param; our other sudogs still queued come
	 * off their queues, one channel at a time. A partner that dequeued one
	 * (and lost select_done) touches it last with the queued store, so one
	 * seen unqueued needs no lock; a buffered channel is locked anyway, for
	 * its waiting marks.
	 */
	struct rg_sudog *won = g->param;
	g->param = NULL;
	if (!won)
		rg_fatal("select: bad wake-up");
	for (size_t k = 0; k < npoll; k++) {
		uint32_t i = s.lockorder[k];
		struct rg_sudog *sg = &sgs[i];
		struct rg_chan *c = sg->c;
		if (!c->cap && !atomic_load_explicit(&sg->queued, memory_order_acquire))
			continue;
		rg_spin_lock(&c->lock);
		if (atomic_load_explicit(&sg->queued, memory_order_relaxed))
			rg_waitq_remove(cases[i].dir == RG_CASE_SEND ? &c->sendq : &c->recvq, sg);
		if (c->cap)
			rg_chan_sync_marks(c);
		rg_spin_unlock(&c->lock);
	}
	ret = won->case_index;
	if (cases[ret].dir == RG_CASE_SEND)
		cases[ret].result = won->success ? 0 : -EPIPE;
	else
		cases[ret].result = won->success ? 1 : 0;

	goto out;

done_locked:
	sync_marks(&s);
	selunlock(&s);
	rg_chan_wake_all(wake);
out:
	if (pollorder != poll_small) {
		free(pollorder);
		free(s.lockorder);
		free(sgs);
		free(snap);
	}
	if (ret == -EAGAIN)
		rg_preempt_poll(); /* a polling loop: a safe point (preempt.h) */
	return ret;
}
