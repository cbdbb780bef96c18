// SPDX-License-Identifier: BSD-2-Clause
/*
 * Channels: Go's chan.go. One lock per channel guards the buffer ring and the
 * two FIFO wait queues; a sender that finds a parked receiver copies straight
 * into the receiver's destination and readies it into its own P's runnext.
 * Failing non-blocking operations take no lock: they read one word (Go's
 * full/empty), and a closed check ordered after it.
 */
#include "chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fatal.h"
#include "preempt.h"
#include "probes.h"

#define MAX_ELEM_SIZE (1u << 16)
#define MAX_BUF_SIZE (1ull << 48) /* Go's maxAlloc on amd64: larger is "size out of range" */

/* ---- wait queues [c->lock] ---- */

void rg_waitq_enqueue(struct rg_waitq *q, struct rg_sudog *sg)
{
	sg->queued = true;
	sg->next = NULL;
	sg->prev = q->last;
	if (q->last)
		q->last->next = sg;
	else
		atomic_store_explicit(&q->first, sg, memory_order_relaxed);
	q->last = sg;
}

void rg_waitq_remove(struct rg_waitq *q, struct rg_sudog *sg)
{
	if (sg->prev)
		sg->prev->next = sg->next;
	else
		atomic_store_explicit(&q->first, sg->next, memory_order_relaxed);
	if (sg->next)
		sg->next->prev = sg->prev;
	else
		q->last = sg->prev;
	sg->next = sg->prev = NULL;
	sg->queued = false;
}

struct rg_sudog *rg_waitq_dequeue(struct rg_waitq *q)
{
	for (;;) {
		struct rg_sudog *sg = atomic_load_explicit(&q->first, memory_order_relaxed);
		if (!sg)
			return NULL;
		rg_waitq_remove(q, sg);
		/* A select parked on several channels is woken by one partner only:
		 * whoever sets select_done first; the others skip its sudogs. */
		if (sg->is_select) {
			uint32_t zero = 0;
			if (!atomic_compare_exchange_strong_explicit(&sg->g->select_done, &zero, 1,
								     memory_order_acq_rel,
								     memory_order_relaxed))
				continue;
		}
		return sg;
	}
}

/* ---- make, free, len, cap ---- */

rg_chan *rg_chan_make(size_t elem_size, size_t cap)
{
	if (elem_size >= MAX_ELEM_SIZE || (elem_size && cap > MAX_BUF_SIZE / elem_size)) {
		errno = EINVAL;
		return NULL;
	}
	size_t bufsize = elem_size * cap;
	/*
	 * Header and buffer in one allocation, as Go does for pointer-free
	 * elements. Plain malloc, not aligned_alloc: glibc's memalign path skips
	 * the per-thread cache and made make+free three times slower than Go's.
	 */
	size_t hdr = (sizeof(struct rg_chan) + 15) & ~(size_t)15;
	struct rg_chan *c = malloc(hdr + bufsize);
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, hdr);
	c->cap = cap;
	c->elemsize = elem_size;
	c->buf = (unsigned char *)c + hdr;
	return c;
}

void rg_chan_free(rg_chan *c)
{
	if (!c)
		return;
	if (c->release)
		c->release(c); /* rg_after: cancel its timer, which may be sending right now */
	rg_spin_lock(&c->lock);
	bool waiters = atomic_load_explicit(&c->recvq.first, memory_order_relaxed) ||
		       atomic_load_explicit(&c->sendq.first, memory_order_relaxed);
	rg_spin_unlock(&c->lock);
	if (waiters)
		rg_fatal("free of a channel that goroutines wait on (or that a select is still leaving)");
	free(c);
}

size_t rg_chan_len(rg_chan *c)
{
	return c ? atomic_load_explicit(&c->qcount, memory_order_relaxed) : 0;
}

size_t rg_chan_cap(rg_chan *c)
{
	return c ? c->cap : 0;
}

/* ---- hand-offs with a parked partner ---- */

static void wake(struct rg_sudog *sg, bool success)
{
	struct rg_g *g = sg->g;

	g->param = sg;
	sg->success = success;
	rg_ready(g);
}

void rg_chan_send_to(struct rg_chan *c, struct rg_sudog *sg, const void *ep,
		     void (*unlock)(void *), void *arg)
{
	/* The only place one goroutine writes another's stack: the receiver's destination. */
	if (sg->elem && c->elemsize)
		rg_elem_copy(sg->elem, ep, c->elemsize);
	unlock(arg);
	wake(sg, true);
}

void rg_chan_recv_from(struct rg_chan *c, struct rg_sudog *sg, void *ep,
		       void (*unlock)(void *), void *arg)
{
	if (c->cap == 0) {
		if (ep && c->elemsize)
			rg_elem_copy(ep, sg->elem, c->elemsize);
	} else {
		/* Full buffer: take its head and put the sender's value at its tail,
		 * which is the same slot; the queue order stays FIFO. */
		unsigned char *qp = rg_chanbuf(c, c->recvx);
		if (ep && c->elemsize)
			rg_elem_copy(ep, qp, c->elemsize);
		if (c->elemsize)
			rg_elem_copy(qp, sg->elem, c->elemsize);
		if (++c->recvx == c->cap)
			c->recvx = 0;
		c->sendx = c->recvx;
	}
	unlock(arg);
	wake(sg, true);
}

static void unlock_chan(void *c)
{
	rg_spin_unlock(&((struct rg_chan *)c)->lock);
}

static bool chan_park_commit(struct rg_g *g, void *c)
{
	(void)g;
	rg_spin_unlock(&((struct rg_chan *)c)->lock);
	return true;
}

__attribute__((noreturn)) static void park_forever(enum rg_wait_reason reason)
{
	rg_park(NULL, NULL, reason, NULL);
	rg_fatal("goroutine woken from a nil-channel wait");
}

/* ---- send ---- */

static int chansend(struct rg_chan *c, const void *ep, bool block)
{
	if (!c) {
		if (!block)
			return -EAGAIN;
		park_forever(WAIT_CHAN_SEND_NIL);
	}

	/*
	 * Fast failure: an open channel that is not ready for sending. Reading
	 * closed after full is enough: a closed channel never goes back to
	 * "ready to send", so the answer was true at some moment between the reads.
	 */
	if (!block && !atomic_load_explicit(&c->closed, memory_order_relaxed) && rg_chan_full(c))
		return -EAGAIN;

	rg_spin_lock(&c->lock);
	if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
		rg_spin_unlock(&c->lock);
		return -EPIPE;
	}
	struct rg_sudog *sg = rg_waitq_dequeue(&c->recvq);
	if (sg) {
		rg_chan_send_to(c, sg, ep, unlock_chan, c);
		return 0;
	}
	size_t q = atomic_load_explicit(&c->qcount, memory_order_relaxed);
	if (q < c->cap) {
		if (c->elemsize)
			rg_elem_copy(rg_chanbuf(c, c->sendx), ep, c->elemsize);
		if (++c->sendx == c->cap)
			c->sendx = 0;
		atomic_store_explicit(&c->qcount, q + 1, memory_order_relaxed);
		rg_spin_unlock(&c->lock);
		return 0;
	}
	if (!block) {
		rg_spin_unlock(&c->lock);
		return -EAGAIN;
	}

	struct rg_g *g = rg_getg();
	if (!g)
		rg_fatal("channel send outside a goroutine");
	struct rg_sudog me = {.g = g, .elem = (void *)ep, .c = c};
	g->param = NULL;
	rg_waitq_enqueue(&c->sendq, &me);
	rg_park(chan_park_commit, c, WAIT_CHAN_SEND, c);
	if (g->param != &me)
		rg_fatal("chansend: spurious wakeup");
	g->param = NULL;
	return me.success ? 0 : -EPIPE;
}

int rg_chan_send(rg_chan *c, const void *elem)
{
	return chansend(c, elem, true);
}

int rg_chan_trysend(rg_chan *c, const void *elem)
{
	int r = chansend(c, elem, false);

	if (r == -EAGAIN)
		rg_preempt_poll(); /* a polling loop: a safe point (preempt.h) */
	return r;
}

/* ---- receive ---- */

static int chanrecv(struct rg_chan *c, void *ep, bool block)
{
	if (!c) {
		if (!block)
			return -EAGAIN;
		park_forever(WAIT_CHAN_RECV_NIL);
	}

	/* Fast failure: nothing to receive and not closed. */
	if (!block && rg_chan_empty(c)) {
		/* The closed load must follow the empty check (acquire), or a
		 * send-then-close seen in the other order would look closed. */
		if (!atomic_load_explicit(&c->closed, memory_order_acquire))
			return -EAGAIN;
		/* Closed: data sent before the close may have arrived between the
		 * two loads, so look again; still empty means closed and drained. */
		if (rg_chan_empty(c)) {
			if (ep && c->elemsize)
				memset(ep, 0, c->elemsize);
			return 0;
		}
	}

	rg_spin_lock(&c->lock);
	if (atomic_load_explicit(&c->closed, memory_order_relaxed) &&
	    atomic_load_explicit(&c->qcount, memory_order_relaxed) == 0) {
		rg_spin_unlock(&c->lock);
		if (ep && c->elemsize)
			memset(ep, 0, c->elemsize);
		return 0;
	}
	struct rg_sudog *sg = rg_waitq_dequeue(&c->sendq);
	if (sg) {
		rg_chan_recv_from(c, sg, ep, unlock_chan, c);
		return 1;
	}
	size_t q = atomic_load_explicit(&c->qcount, memory_order_relaxed);
	if (q > 0) {
		unsigned char *qp = rg_chanbuf(c, c->recvx);
		if (ep && c->elemsize)
			rg_elem_copy(ep, qp, c->elemsize);
		if (++c->recvx == c->cap)
			c->recvx = 0;
		atomic_store_explicit(&c->qcount, q - 1, memory_order_relaxed);
		rg_spin_unlock(&c->lock);
		return 1;
	}
	if (!block) {
		rg_spin_unlock(&c->lock);
		return -EAGAIN;
	}

	struct rg_g *g = rg_getg();
	if (!g)
		rg_fatal("channel receive outside a goroutine");
	struct rg_sudog me = {.g = g, .elem = ep, .c = c};
	g->param = NULL;
	rg_waitq_enqueue(&c->recvq, &me);
	rg_park(chan_park_commit, c, WAIT_CHAN_RECV, c);
	if (g->param != &me)
		rg_fatal("chanrecv: spurious wakeup");
	g->param = NULL;
	return me.success ? 1 : 0;
}

int rg_chan_recv(rg_chan *c, void *out)
{
	return chanrecv(c, out, true);
}

int rg_chan_tryrecv(rg_chan *c, void *out)
{
	int r = chanrecv(c, out, false);

	if (r == -EAGAIN)
		rg_preempt_poll(); /* a polling loop: a safe point (preempt.h) */
	return r;
}

/* ---- close ---- */

int rg_chan_close(rg_chan *c)
{
	struct rg_sudog *wake_list = NULL, *sg;

	if (!c)
		return -EINVAL;
	rg_spin_lock(&c->lock);
	if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
		rg_spin_unlock(&c->lock);
		return -EPIPE;
	}
	atomic_store_explicit(&c->closed, 1, memory_order_release);

	/* Every receiver gets the zero value, every sender "closed". */
	while ((sg = rg_waitq_dequeue(&c->recvq)) != NULL) {
		if (sg->elem && c->elemsize)
			memset(sg->elem, 0, c->elemsize);
		sg->closelink = wake_list;
		wake_list = sg;
	}
	while ((sg = rg_waitq_dequeue(&c->sendq)) != NULL) {
		sg->elem = NULL;
		sg->closelink = wake_list;
		wake_list = sg;
	}
	rg_spin_unlock(&c->lock);

	/* Ready them only now: never wake a goroutine while holding a channel lock. */
	while (wake_list) {
		sg = wake_list;
		wake_list = sg->closelink;
		sg->closelink = NULL;
		wake(sg, false);
	}
	return 0;
}
