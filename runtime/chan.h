/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Channel internals shared by chan.c and select.c (Go's hchan, sudog, waitq).
 */
#ifndef RINGO_CHAN_H
#define RINGO_CHAN_H

#include "runtime.h"

/*
 * A goroutine waiting on a channel. It lives on the waiting goroutine's own
 * stack: ringo's stacks never move, and the goroutine stays parked (its frame
 * alive) until whoever dequeues the sudog has finished with it.
 */
struct rg_sudog {
	struct rg_g *g;
	struct rg_sudog *next, *prev; /* in the channel's waitq [c->lock] */
	void *elem;		      /* send: the value; recv: the destination (may be NULL) */
	struct rg_chan *c;
	struct rg_sudog *waitlink; /* select: the goroutine's other sudogs, in lock order */
	struct rg_sudog *closelink; /* close's list of sudogs to wake */
	int case_index;
	bool is_select;
	bool queued;  /* in a waitq now [c->lock] */
	bool success; /* woken by a partner (true) or by close (false) */
};

struct rg_waitq {
	/* first is read without the lock by the failing-fast-path checks. */
	_Atomic(struct rg_sudog *) first;
	struct rg_sudog *last;
};

struct rg_chan {
	struct rg_spinlock lock;
	_Atomic uint32_t closed;
	_Atomic size_t qcount; /* elements in buf; read without the lock by len and fast paths */
	size_t cap;	       /* immutable */
	size_t elemsize;       /* immutable */
	size_t sendx, recvx;   /* ring indices [lock] */
	struct rg_waitq recvq, sendq;
	unsigned char *buf;
	/* A channel owned by something else (rg_after's timer): rg_chan_free calls release first. */
	void *owner;
	void (*release)(struct rg_chan *c);
};

void rg_waitq_enqueue(struct rg_waitq *q, struct rg_sudog *sg);
/* First sudog whose goroutine can still be woken (skips select losers), or NULL. */
struct rg_sudog *rg_waitq_dequeue(struct rg_waitq *q);
/* Remove sg, which must be in q. */
void rg_waitq_remove(struct rg_waitq *q, struct rg_sudog *sg);

/* Hand-offs with a dequeued partner; they release the lock(s) through unlock(arg). */
void rg_chan_send_to(struct rg_chan *c, struct rg_sudog *sg, const void *ep,
		     void (*unlock)(void *), void *arg);
void rg_chan_recv_from(struct rg_chan *c, struct rg_sudog *sg, void *ep,
		       void (*unlock)(void *), void *arg);

/* Element copy: word-sized elements (the common case) without a call to memcpy. */
static inline void rg_elem_copy(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 0:
		return;
	case 4:
		__builtin_memcpy(dst, src, 4);
		return;
	case 8:
		__builtin_memcpy(dst, src, 8);
		return;
	case 16:
		__builtin_memcpy(dst, src, 16);
		return;
	default:
		__builtin_memcpy(dst, src, n);
	}
}

static inline unsigned char *rg_chanbuf(struct rg_chan *c, size_t i)
{
	return c->buf + i * c->elemsize;
}

/* Failing-fast-path predicates (Go's full and empty): a single relaxed read each. */
static inline bool rg_chan_full(struct rg_chan *c)
{
	if (c->cap == 0)
		return atomic_load_explicit(&c->recvq.first, memory_order_relaxed) == NULL;
	return atomic_load_explicit(&c->qcount, memory_order_relaxed) == c->cap;
}

static inline bool rg_chan_empty(struct rg_chan *c)
{
	if (c->cap == 0)
		return atomic_load_explicit(&c->sendq.first, memory_order_relaxed) == NULL;
	return atomic_load_explicit(&c->qcount, memory_order_relaxed) == 0;
}

#endif /* RINGO_CHAN_H */
