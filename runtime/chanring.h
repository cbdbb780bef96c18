/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A buffered channel's ring of stamped slots (docs/design.md §9), private to
 * chan.c. Stamps are lap|index with one_lap a power of two above cap, so the
 * next position needs no division, and a slot's stamp says whose turn it is:
 * stamp == t: free for the sender at t; stamp == t+1: full, for the receiver
 * at t. A receiver hands the slot on to the next lap with t+one_lap.
 *
 * Memory order: the sender's release store of the stamp publishes the element
 * to the receiver's acquire load (send happens-before receive); the
 * receiver's release store publishes the freed slot to the sender of the next
 * lap (the k-th receive happens-before the (k+C)-th send completes). A claim
 * never looks at the channel after its stamp store (chan.h).
 */
#ifndef RINGO_CHANRING_H
#define RINGO_CHANRING_H

#include "arch.h"
#include "chan.h"
#include "lock.h"

enum ring_result { RING_OK, RING_FULL, RING_EMPTY, RING_CLOSED, RING_SLOW };

static inline struct rg_chanslot *ring_slot(struct rg_chan *c, uint64_t stamp)
{
	return (struct rg_chanslot *)(c->buf + (stamp & (c->one_lap - 1)) * c->slotsize);
}

static inline uint64_t ring_next(struct rg_chan *c, uint64_t stamp)
{
	if ((stamp & (c->one_lap - 1)) + 1 < c->cap)
		return stamp + 1;
	return (stamp & ~(c->one_lap - 1)) + c->one_lap;
}

/*
 * Another thread is between its claim and its stamp store, a few instructions
 * long; it may have lost its CPU, so the wait ends in sched_yield.
 */
static inline void ring_backoff(unsigned *spins)
{
	if (*spins < 6) {
		for (unsigned i = 0; i < (1u << *spins); i++)
			rg_arch_relax();
	} else {
		rg_osyield();
	}
	(*spins)++;
}

/*
 * chan struct{} (elements of size 0) has no slots, only the two counts, so
 * its capacity costs no memory, as in Go. A claim is a CAS that checks the
 * other count first; there is no copy, so no claim is ever half done.
 */
static inline enum ring_result count_send(struct rg_chan *c, bool locked)
{
	uint64_t tail = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
	unsigned fails = 0;

	for (;;) {
		if (tail & RG_CHAN_CLOSED)
			return RING_CLOSED;
		if (!locked && (tail & RG_CHAN_WAITING))
			return RING_SLOW;
		uint64_t head = atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst);
		/* The head only grows: full now means full when it was read. */
		if ((tail & RG_CHAN_STAMP) - (head & RG_CHAN_STAMP) >= c->cap)
			return RING_FULL;
		if (atomic_compare_exchange_weak_explicit(&c->sendpos, &tail, tail + 1,
							  memory_order_seq_cst, memory_order_relaxed))
			return RING_OK;
		rg_backoff(&fails);
	}
}

static inline enum ring_result count_recv(struct rg_chan *c, bool locked)
{
	uint64_t head = atomic_load_explicit(chan_recvpos(c), memory_order_relaxed);
	unsigned fails = 0;

	for (;;) {
		if (!locked && (head & RG_CHAN_WAITING))
			return RING_SLOW;
		uint64_t tail = atomic_load_explicit(&c->sendpos, memory_order_seq_cst);
		if ((tail & RG_CHAN_STAMP) == (head & RG_CHAN_STAMP))
			return (tail & RG_CHAN_CLOSED) ? RING_CLOSED : RING_EMPTY;
		if (atomic_compare_exchange_weak_explicit(chan_recvpos(c), &head, head + 1,
							  memory_order_seq_cst, memory_order_relaxed))
			return RING_OK;
		rg_backoff(&fails);
	}
}

/* Put *ep in the ring. RING_FULL and RING_CLOSED are exact. */
static inline enum ring_result ring_send(struct rg_chan *c, const void *ep, bool locked)
{
	uint64_t tail = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
	unsigned spins = 0, fails = 0;

	if (!c->elemsize)
		return count_send(c, locked);
	for (;;) {
		if (tail & RG_CHAN_CLOSED)
			return RING_CLOSED;
		if (!locked && (tail & RG_CHAN_WAITING))
			return RING_SLOW;
		uint64_t t = tail & RG_CHAN_STAMP;
		struct rg_chanslot *sl = ring_slot(c, t);
		uint64_t stamp = atomic_load_explicit(&sl->stamp, memory_order_acquire);
		if (stamp == t) {
			uint64_t next = (tail & ~RG_CHAN_STAMP) | ring_next(c, t);
			if (atomic_compare_exchange_weak_explicit(&c->sendpos, &tail, next,
								  memory_order_seq_cst,
								  memory_order_relaxed)) {
				rg_elem_copy(sl->elem, ep, c->elemsize);
				atomic_store_explicit(&sl->stamp, t + 1, memory_order_release);
				return RING_OK;
			}
			rg_backoff(&fails);
			continue; /* tail reloaded by the failed CAS */
		}
		if (stamp + c->one_lap == t + 1) {
			/* Last lap's element is still there: full, unless its receiver has
			 * claimed it and is copying it out. */
			uint64_t head = atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst);
			if ((head & RG_CHAN_STAMP) + c->one_lap == t)
				return RING_FULL;
		}
		ring_backoff(&spins);
		tail = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
	}
}

/* Take the ring's head into ep (may be NULL). RING_EMPTY and RING_CLOSED (empty and closed) are exact. */
static inline enum ring_result ring_recv(struct rg_chan *c, void *ep, bool locked)
{
	uint64_t head = atomic_load_explicit(chan_recvpos(c), memory_order_relaxed);
	unsigned spins = 0, fails = 0;

	if (!c->elemsize)
		return count_recv(c, locked);
	for (;;) {
		if (!locked && (head & RG_CHAN_WAITING))
			return RING_SLOW;
		uint64_t h = head & RG_CHAN_STAMP;
		struct rg_chanslot *sl = ring_slot(c, h);
		uint64_t stamp = atomic_load_explicit(&sl->stamp, memory_order_acquire);
		if (stamp == h + 1) {
			uint64_t next = (head & ~RG_CHAN_STAMP) | ring_next(c, h);
			if (atomic_compare_exchange_weak_explicit(chan_recvpos(c), &head, next,
								  memory_order_seq_cst,
								  memory_order_relaxed)) {
				if (ep)
					rg_elem_copy(ep, sl->elem, c->elemsize);
				atomic_store_explicit(&sl->stamp, h + c->one_lap, memory_order_release);
				return RING_OK;
			}
			rg_backoff(&fails);
			continue;
		}
		if (stamp == h) {
			/* Empty, unless a sender has claimed the slot and is filling it.
			 * Acquire: a close seen here happened before this receive. */
			uint64_t tail = atomic_load_explicit(&c->sendpos, memory_order_seq_cst);
			if ((tail & RG_CHAN_STAMP) == h)
				return (tail & RG_CHAN_CLOSED) ? RING_CLOSED : RING_EMPTY;
		}
		ring_backoff(&spins);
		head = atomic_load_explicit(chan_recvpos(c), memory_order_relaxed);
	}
}

/*
 * Read-only and exact: a receive would fail now (empty, not closed, nobody
 * waiting), or a send would (full, not closed, nobody waiting). The
 * non-blocking operations ask these first, in a leaf that only reads (Go's
 * selectnbrecv/selectnbsend); anything else takes the claiming paths above.
 * Exact because the second word is read after the first and both only
 * grow: equal (or a lap apart) at the second read means so at that moment.
 */
static inline bool ring_recv_would_fail(struct rg_chan *c)
{
	uint64_t head = atomic_load_explicit(chan_recvpos(c), memory_order_relaxed);

	if (head & RG_CHAN_WAITING)
		return false;
	uint64_t tail = atomic_load_explicit(&c->sendpos, memory_order_seq_cst);
	return (tail & RG_CHAN_STAMP) == (head & RG_CHAN_STAMP) && !(tail & RG_CHAN_CLOSED);
}

static inline bool ring_send_would_fail(struct rg_chan *c)
{
	uint64_t tail = atomic_load_explicit(&c->sendpos, memory_order_relaxed);

	if (tail & (RG_CHAN_CLOSED | RG_CHAN_WAITING))
		return false;
	uint64_t head = atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst) & RG_CHAN_STAMP;
	tail &= RG_CHAN_STAMP;
	return c->elemsize ? head + c->one_lap == tail : tail - head >= c->cap;
}

/* [c->lock] or read-only answers: claims in flight count as done. */
static inline bool ring_nonempty(struct rg_chan *c)
{
	return (atomic_load_explicit(&c->sendpos, memory_order_seq_cst) & RG_CHAN_STAMP) !=
	       (atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst) & RG_CHAN_STAMP);
}

static inline bool ring_has_room(struct rg_chan *c)
{
	uint64_t tail = atomic_load_explicit(&c->sendpos, memory_order_seq_cst) & RG_CHAN_STAMP;
	uint64_t head = atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst) & RG_CHAN_STAMP;

	if (!c->elemsize)
		return tail - head < c->cap;
	return head + c->one_lap != tail;
}

/* Claimed elements, counting those still being written or read. */
static inline size_t ring_len(struct rg_chan *c)
{
	uint64_t head, tail;

	/* A consistent pair: the tail did not move while the head was read. */
	do {
		tail = atomic_load_explicit(&c->sendpos, memory_order_seq_cst) & RG_CHAN_STAMP;
		head = atomic_load_explicit(chan_recvpos(c), memory_order_seq_cst) & RG_CHAN_STAMP;
	} while ((atomic_load_explicit(&c->sendpos, memory_order_seq_cst) & RG_CHAN_STAMP) != tail);

	if (!c->elemsize)
		return tail - head;
	uint64_t mask = c->one_lap - 1, hix = head & mask, tix = tail & mask;
	if (hix < tix)
		return tix - hix;
	if (hix > tix)
		return c->cap - hix + tix;
	return tail == head ? 0 : c->cap;
}

#endif /* RINGO_CHANRING_H */
