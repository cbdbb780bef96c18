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
	struct rg_sudog *wakelink; /* a list of sudogs to ready once the lock is dropped */
	int case_index;
	bool is_select;
	/* In a waitq now: written under c->lock, false last of all by a remover,
	 * so a select's pass 3 may read it without the lock (select.c). */
	_Atomic bool queued;
	bool success; /* woken by a partner (true) or by close (false) */
};

struct rg_waitq {
	/* first is read without the lock by the failing-fast-path checks. */
	_Atomic(struct rg_sudog *) first;
	struct rg_sudog *last;
};

/*
 * A buffered channel's ring (docs/design.md §9): a bounded MPMC queue of
 * stamped slots (Vyukov's, with crossbeam's lap|index stamps so any capacity
 * works without a division). Senders claim a slot with one CAS on sendpos,
 * receivers with one CAS on recvpos; neither takes the lock while nobody
 * waits. The high bits of both positions say somebody waits: a fast path's
 * CAS carries them, so it fails once a goroutine is about to park, and the
 * operation goes to the lock. A claim is thus never followed by a look at
 * the channel: its last access is the stamp store that hands the slot on, so
 * a channel may be freed as soon as its last value is received.
 */
#define RG_CHAN_CLOSED (1ull << 63)   /* in sendpos: no claim succeeds any more */
#define RG_CHAN_SENDWAIT (1ull << 62) /* in both: senders are parked, new ones queue */
#define RG_CHAN_RECVWAIT (1ull << 61) /* in both: receivers are parked, new ones queue */
#define RG_CHAN_WAITING (RG_CHAN_SENDWAIT | RG_CHAN_RECVWAIT)
#define RG_CHAN_STAMP ((1ull << 61) - 1)

struct rg_chanslot {
	_Atomic uint64_t stamp; /* lap|index: free for the sender at stamp, full for the receiver at stamp-1 */
	unsigned char elem[];
};

/*
 * The header is malloc'd (16-byte aligned) or embedded, so what keeps two
 * words off one cache line is distance: 64 bytes apart, they never share one.
 */
#define RG_CHAN_GAP 64

/* rg_chan_make sets each field, not the gaps: a new field needs its line there. */
struct rg_chan {
	/*
	 * Written once at make and then only read, by every operation. A gap
	 * away from every word that changes: a claim on another CPU must not
	 * evict what this CPU reads next to it.
	 */
	size_t cap;	  /* immutable */
	size_t elemsize;  /* immutable */
	size_t slotsize;  /* immutable: stamp + element, 8-byte aligned */
	uint64_t one_lap; /* immutable: the smallest power of two above cap */
	unsigned char *buf;
	/* A channel owned by something else (rg_after's timer): rg_chan_free calls release first. */
	void *owner;
	void (*release)(struct rg_chan *c);
	unsigned char gap_ro[RG_CHAN_GAP];
	/*
	 * Senders' and receivers' words a gap apart, except for chan struct{}:
	 * each of its claims reads the other count, so there both share
	 * sendpos's line, one line to move between CPUs instead of two
	 * (chan_recvpos).
	 */
	_Atomic uint64_t sendpos;      /* buffered: next stamp to send | CLOSED | WAITING */
	_Atomic uint64_t recvpos_near; /* chan struct{}: its recvpos */
	unsigned char gap_send[RG_CHAN_GAP];
	_Atomic uint64_t recvpos_far; /* buffered: next stamp to receive | WAITING */
	unsigned char gap_recv[RG_CHAN_GAP];
	/* The slow path's words, together: an unbuffered operation reads them all. */
	struct rg_spinlock lock;
	_Atomic uint32_t closed;
	struct rg_waitq recvq, sendq;
};

/* The receivers' word: next stamp to receive (chan struct{}: count) | WAITING. */
static inline _Atomic uint64_t *chan_recvpos(struct rg_chan *c)
{
	return c->elemsize ? &c->recvpos_far : &c->recvpos_near;
}

void rg_waitq_enqueue(struct rg_waitq *q, struct rg_sudog *sg);
/* First sudog whose goroutine can still be woken (skips select losers), or NULL. */
struct rg_sudog *rg_waitq_dequeue(struct rg_waitq *q);
/* Remove sg, which must be in q. */
void rg_waitq_remove(struct rg_waitq *q, struct rg_sudog *sg);

/*
 * Operations under c->lock that never block, shared by chan.c and select.c.
 * Partners they complete are pushed on *wake (through wakelink) and must be
 * readied with rg_chan_wake_all once every lock is dropped.
 *   send: 0 sent, -EPIPE closed, -EAGAIN it would block;
 *   recv: 1 a value, 0 closed and drained (*ep zeroed), -EAGAIN it would block.
 */
int rg_chan_send_locked(struct rg_chan *c, const void *ep, struct rg_sudog **wake);
int rg_chan_recv_locked(struct rg_chan *c, void *ep, struct rg_sudog **wake);

/*
 * Before parking on a buffered channel [c->lock]: mark the direction as
 * waited on in both positions, so that every later fast claim fails and goes
 * to the lock, then serve what is due to parked partners. After it, the
 * caller must look again (the *_locked call) before it queues, in the same
 * hold of the lock (another holder may clear a mark nobody is queued for).
 * The mark and a fast claim are RMWs of the same word, so one of them comes
 * first: a claim before the mark is seen by the second look (which waits out
 * its copy), a claim after it fails.
 */
void rg_chan_mark_waiting(struct rg_chan *c, bool send, struct rg_sudog **wake);
/* Clear the marks of directions nobody waits on any more [c->lock]. */
void rg_chan_sync_marks(struct rg_chan *c);

void rg_chan_wake_all(struct rg_sudog *list);

/* Element copy: word-sized elements (the common case) without a call to memcpy. */
static inline void rg_elem_copy(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 0:
		return;
	case 1: /* chan bool, chan byte */
		__builtin_memcpy(dst, src, 1);
		return;
	case 2:
		__builtin_memcpy(dst, src, 2);
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

/* Failing-fast-path predicates of unbuffered channels (Go's full and empty). */
static inline bool rg_chan_full(struct rg_chan *c)
{
	return atomic_load_explicit(&c->recvq.first, memory_order_relaxed) == NULL;
}

static inline bool rg_chan_empty(struct rg_chan *c)
{
	return atomic_load_explicit(&c->sendq.first, memory_order_relaxed) == NULL;
}

#endif /* RINGO_CHAN_H */
