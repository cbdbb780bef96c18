// SPDX-License-Identifier: BSD-2-Clause
/*
 * Channels: Go's chan.go, with a lock-free buffer. One lock per channel
 * guards the two FIFO wait queues and every unbuffered hand-off; a sender
 * that finds a parked receiver copies straight into the receiver's
 * destination and readies it into its own P's runnext. A buffered send or
 * receive with room or data is one CAS on the ring (chanring.h) and takes the
 * lock only when somebody waits. Failing non-blocking operations take no
 * lock: they read the state only.
 */
#include "chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chanring.h"
#include "fatal.h"
#include "preempt.h"
#include "probes.h"

#define MAX_ELEM_SIZE (1u << 16)
#define MAX_BUF_SIZE (1ull << 48) /* Go's maxAlloc on amd64: larger is "size out of range" */

/* ---- wait queues [c->lock] ---- */

void rg_waitq_enqueue(struct rg_waitq *q, struct rg_sudog *sg)
{
	atomic_store_explicit(&sg->queued, true, memory_order_relaxed);
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
	/* The last touch: its select may take it back without the lock from here. */
	atomic_store_explicit(&sg->queued, false, memory_order_release);
}

struct rg_sudog *rg_waitq_dequeue(struct rg_waitq *q)
{
	for (;;) {
		struct rg_sudog *sg = atomic_load_explicit(&q->first, memory_order_relaxed);
		if (!sg)
			return NULL;
		/*
		 * A select parked on several channels is woken by one partner only:
		 * whoever sets select_done first; the others skip its sudogs. The
		 * flag is tried before the removal: a sudog seen unqueued is no
		 * longer touched, so its select may be over and the next one may
		 * have cleared the flag.
		 */
		bool won = true;
		if (sg->is_select) {
			uint32_t zero = 0;
			won = atomic_compare_exchange_strong_explicit(&sg->g->select_done, &zero, 1,
								      memory_order_acq_rel,
								      memory_order_relaxed);
		}
		rg_waitq_remove(q, sg);
		if (won)
			return sg;
	}
}

/* ---- make, free, len, cap ---- */

rg_chan *rg_chan_make(size_t elem_size, size_t cap)
{
	/* A slot is its stamp and the element, 8-byte aligned for the next stamp;
	 * elements of size 0 need no slots (chanring.h). */
	size_t slotsize = elem_size ? (sizeof(struct rg_chanslot) + elem_size + 7) & ~(size_t)7 : 0;

	size_t bufsize;

	/* A multiply, not cap > MAX / slotsize: a division was a tenth of a make. */
	if (elem_size >= MAX_ELEM_SIZE || __builtin_mul_overflow(slotsize, cap, &bufsize) ||
	    bufsize > MAX_BUF_SIZE) {
		errno = EINVAL;
		return NULL;
	}
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
	/* Field by field: zeroing the whole header would write its gaps too
	 * (5 cache lines for a 28 ns operation). */
	c->cap = cap;
	c->elemsize = elem_size;
	c->slotsize = slotsize;
	c->one_lap = 0;
	c->buf = (unsigned char *)c + hdr;
	c->owner = NULL;
	c->release = NULL;
	atomic_init(&c->sendpos, 0);
	atomic_init(&c->recvpos_near, 0);
	atomic_init(&c->recvpos_far, 0);
	c->lock = (struct rg_spinlock){0};
	atomic_init(&c->closed, 0);
	atomic_init(&c->recvq.first, NULL);
	c->recvq.last = NULL;
	atomic_init(&c->sendq.first, NULL);
	c->sendq.last = NULL;
	if (cap && elem_size) {
		uint64_t lap = 1;
		while (lap <= cap)
			lap <<= 1;
		c->one_lap = lap;
		/* Lap 0: slot i (ring_slot(c, i), as i < one_lap) free for the sender at i. */
		unsigned char *slot = c->buf;
		for (size_t i = 0; i < cap; i++, slot += slotsize)
			atomic_init(&((struct rg_chanslot *)slot)->stamp, i);
	}
	return c;
}

void rg_chan_free(rg_chan *c)
{
	if (!c)
		return;
	if (c->release)
		c->release(c); /* rg_after: cancel its timer, which may be sending right now */
	/*
	 * The free must come after the critical section of whoever the caller
	 * last heard from through the ring (a closer still clearing marks after
	 * its CLOSED bit was seen, a sender still unlocking after its hand-off).
	 * That holder took the lock before publishing what the caller saw, so
	 * the caller's acquire load of the lock word finds it held, or its
	 * unlock: waiting for the word to be free orders the free, and takes no
	 * locked instruction (it was half of MakeChan's cost). A holder the
	 * caller never synchronized with is a use during the free, the caller's bug.
	 */
	rg_spin_wait_free(&c->lock);
	bool waiters = atomic_load_explicit(&c->recvq.first, memory_order_relaxed) ||
		       atomic_load_explicit(&c->sendq.first, memory_order_relaxed);
	if (waiters)
		rg_fatal("free of a channel that goroutines wait on (or that a select is still leaving)");
	free(c);
}

size_t rg_chan_len(rg_chan *c)
{
	return c && c->cap ? ring_len(c) : 0;
}

size_t rg_chan_cap(rg_chan *c)
{
	return c ? c->cap : 0;
}

/* ---- waking partners ---- */

static void push_wake(struct rg_sudog **wake, struct rg_sudog *sg, bool success)
{
	sg->success = success;
	sg->wakelink = *wake;
	*wake = sg;
}

void rg_chan_wake_all(struct rg_sudog *list)
{
	while (list) {
		struct rg_sudog *sg = list;
		struct rg_g *g = sg->g;
		list = sg->wakelink;
		sg->wakelink = NULL;
		g->param = sg;
		rg_ready(g);
	}
}

/* ---- the buffered channel's waiters [c->lock] ---- */

void rg_chan_sync_marks(struct rg_chan *c)
{
	uint64_t clear = 0;

	if (!atomic_load_explicit(&c->recvq.first, memory_order_relaxed))
		clear |= RG_CHAN_RECVWAIT;
	if (!atomic_load_explicit(&c->sendq.first, memory_order_relaxed))
		clear |= RG_CHAN_SENDWAIT;
	if (atomic_load_explicit(&c->sendpos, memory_order_relaxed) & clear)
		atomic_fetch_and_explicit(&c->sendpos, ~clear, memory_order_release);
	if (atomic_load_explicit(chan_recvpos(c), memory_order_relaxed) & clear)
		atomic_fetch_and_explicit(chan_recvpos(c), ~clear, memory_order_release);
}

/*
 * Keep Go's invariants (data buffered ⇒ no parked receiver; room ⇒ no
 * parked sender): parked receivers take the buffered values, then parked
 * senders fill the room, both in arrival order, as Go's recv does when it
 * frees a slot of a full buffer. While a direction is marked only lock
 * holders claim, so every claim here succeeds (waiting out at most a copy
 * that a claim made before the mark still has in flight).
 */
static void balance(struct rg_chan *c, struct rg_sudog **wake)
{
	struct rg_sudog *sg;

	while (atomic_load_explicit(&c->recvq.first, memory_order_relaxed) && ring_nonempty(c)) {
		if (!(sg = rg_waitq_dequeue(&c->recvq)))
			break;
		if (ring_recv(c, sg->elem, true) != RING_OK)
			rg_fatal("channel: a marked ring lost its element");
		push_wake(wake, sg, true);
	}
	/* After a close, parked senders are failed by close itself. */
	while (atomic_load_explicit(&c->sendq.first, memory_order_relaxed) &&
	       !atomic_load_explicit(&c->closed, memory_order_relaxed) && ring_has_room(c)) {
		if (!(sg = rg_waitq_dequeue(&c->sendq)))
			break;
		if (ring_send(c, sg->elem, true) != RING_OK)
			rg_fatal("channel: a marked ring lost its room");
		push_wake(wake, sg, true);
	}
	/*
	 * The marks are left alone: a goroutine may have marked a direction and
	 * not queued yet. Whoever ends a locked operation without queueing
	 * clears the marks nobody needs (rg_chan_sync_marks).
	 */
}

void rg_chan_mark_waiting(struct rg_chan *c, bool send, struct rg_sudog **wake)
{
	uint64_t mark = send ? RG_CHAN_SENDWAIT : RG_CHAN_RECVWAIT;

	if (!c->cap)
		return;
	atomic_fetch_or_explicit(&c->sendpos, mark, memory_order_seq_cst);
	atomic_fetch_or_explicit(chan_recvpos(c), mark, memory_order_seq_cst);
	balance(c, wake);
}

/* ---- operations under the lock ---- */

int rg_chan_send_locked(struct rg_chan *c, const void *ep, struct rg_sudog **wake)
{
	struct rg_sudog *sg;

	if (atomic_load_explicit(&c->closed, memory_order_relaxed))
		return -EPIPE;
	if (c->cap)
		balance(c, wake);
	if ((sg = rg_waitq_dequeue(&c->recvq)) != NULL) {
		/* The only place one goroutine writes another's stack: the receiver's destination. */
		if (sg->elem && c->elemsize)
			rg_elem_copy(sg->elem, ep, c->elemsize);
		push_wake(wake, sg, true);
		return 0;
	}
	/* Parked senders go first; balance left them queued only on a full ring. */
	if (c->cap && !atomic_load_explicit(&c->sendq.first, memory_order_relaxed) &&
	    ring_send(c, ep, true) == RING_OK)
		return 0;
	return -EAGAIN;
}

int rg_chan_recv_locked(struct rg_chan *c, void *ep, struct rg_sudog **wake)
{
	struct rg_sudog *sg;

	if (c->cap) {
		balance(c, wake);
		switch (ring_recv(c, ep, true)) {
		case RING_OK:
			balance(c, wake); /* the room taken by a parked sender, as Go's recv does */
			return 1;
		case RING_CLOSED:
			if (ep && c->elemsize)
				memset(ep, 0, c->elemsize);
			return 0;
		default:
			return -EAGAIN;
		}
	}
	if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
		if (ep && c->elemsize)
			memset(ep, 0, c->elemsize);
		return 0;
	}
	if ((sg = rg_waitq_dequeue(&c->sendq)) != NULL) {
		if (ep && c->elemsize)
			rg_elem_copy(ep, sg->elem, c->elemsize);
		push_wake(wake, sg, true);
		return 1;
	}
	return -EAGAIN;
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

/* Queue the running goroutine on c (whose lock is held) and park until a partner or close serves it. */
static int chan_wait(struct rg_chan *c, void *ep, bool send)
{
	struct rg_g *g = rg_getg();
	if (!g)
		rg_fatal(send ? "channel send outside a goroutine" : "channel receive outside a goroutine");
	struct rg_sudog me = {.g = g, .elem = ep, .c = c};
	g->param = NULL;
	rg_waitq_enqueue(send ? &c->sendq : &c->recvq, &me);
	rg_park_handoff(chan_park_commit, c, send ? WAIT_CHAN_SEND : WAIT_CHAN_RECV, c);
	if (g->param != &me)
		rg_fatal(send ? "chansend: spurious wakeup" : "chanrecv: spurious wakeup");
	g->param = NULL;
	if (send)
		return me.success ? 0 : -EPIPE;
	return me.success ? 1 : 0;
}

/* Hand a parked partner its value's fate and ready it, after c's lock is released. */
static inline void chan_serve(struct rg_chan *c, struct rg_sudog *sg)
{
	struct rg_g *g = sg->g;

	sg->success = true;
	rg_spin_unlock(&c->lock);
	g->param = sg;
	rg_ready(g);
}

/*
 * Blocking operations on an unbuffered channel: one look under the lock
 * decides (nothing claims without it), so they skip chan_block's marks,
 * loop and wake list: a partner is served, or we wait.
 */
static int chan_sync_send(struct rg_chan *c, const void *ep)
{
	struct rg_sudog *sg;

	rg_spin_lock(&c->lock);
	if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
		rg_spin_unlock(&c->lock);
		return -EPIPE;
	}
	if ((sg = rg_waitq_dequeue(&c->recvq)) != NULL) {
		/* The only place one goroutine writes another's stack: the receiver's destination. */
		if (sg->elem)
			rg_elem_copy(sg->elem, ep, c->elemsize);
		chan_serve(c, sg);
		return 0;
	}
	return chan_wait(c, (void *)ep, true);
}

static int chan_sync_recv(struct rg_chan *c, void *ep)
{
	struct rg_sudog *sg;

	rg_spin_lock(&c->lock);
	if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
		/* Close failed every parked sender: closed and drained. */
		rg_spin_unlock(&c->lock);
		if (ep && c->elemsize)
			memset(ep, 0, c->elemsize);
		return 0;
	}
	if ((sg = rg_waitq_dequeue(&c->sendq)) != NULL) {
		if (ep)
			rg_elem_copy(ep, sg->elem, c->elemsize);
		chan_serve(c, sg);
		return 1;
	}
	return chan_wait(c, ep, false);
}

/*
 * The blocking slow path of a buffered channel's both directions: under the
 * lock, try; mark the direction as waited on and try again (an operation
 * that raced with the mark is visible now, and one after it will serve us);
 * then queue and park.
 */
static int chan_block(struct rg_chan *c, void *ep, bool send)
{
	struct rg_sudog *wake = NULL;
	bool marked = false; /* in this hold of the lock: another holder may clear it */
	int r;

	rg_spin_lock(&c->lock);
	for (;;) {
		r = send ? rg_chan_send_locked(c, ep, &wake) : rg_chan_recv_locked(c, ep, &wake);
		if (r != -EAGAIN) {
			rg_chan_sync_marks(c);
			rg_spin_unlock(&c->lock);
			rg_chan_wake_all(wake);
			return r;
		}
		if (marked && !wake)
			break;
		if (!marked) {
			rg_chan_mark_waiting(c, send, &wake);
			marked = true;
		}
		if (wake) {
			/* Partners must not be readied under the lock: do it, then look again. */
			rg_spin_unlock(&c->lock);
			rg_chan_wake_all(wake);
			wake = NULL;
			marked = false;
			rg_spin_lock(&c->lock);
		}
	}
	return chan_wait(c, ep, send);
}

/* ---- send ---- */

static int chansend(struct rg_chan *c, const void *ep, bool block)
{
	if (!c) {
		if (!block)
			return -EAGAIN;
		park_forever(WAIT_CHAN_SEND_NIL);
	}

	if (c->cap) {
		switch (ring_send(c, ep, false)) {
		case RING_OK:
			return 0;
		case RING_CLOSED:
			return -EPIPE;
		case RING_FULL:
			if (!block)
				return -EAGAIN; /* read-only: nothing was claimed */
			break;
		case RING_SLOW:
			/* Somebody waits. Parked senders mean a full ring, unless a
			 * receive is being served; parked receivers get a hand-off. */
			if (!block && !ring_has_room(c))
				return -EAGAIN;
			break;
		default:
			break;
		}
	} else if (!block && !atomic_load_explicit(&c->closed, memory_order_relaxed) &&
		   rg_chan_full(c)) {
		/*
		 * Fast failure: an open channel that is not ready for sending. Reading
		 * closed after full is enough: a closed channel never goes back to
		 * "ready to send", so the answer was true at some moment between the reads.
		 */
		return -EAGAIN;
	}

	if (block)
		return c->cap ? chan_block(c, (void *)ep, true) : chan_sync_send(c, ep);
	struct rg_sudog *wake = NULL;
	rg_spin_lock(&c->lock);
	int r = rg_chan_send_locked(c, ep, &wake);
	if (c->cap)
		rg_chan_sync_marks(c);
	rg_spin_unlock(&c->lock);
	rg_chan_wake_all(wake);
	return r;
}

int rg_chan_send(rg_chan *c, const void *elem)
{
	return chansend(c, elem, true);
}

__attribute__((noinline)) static int trysend_slow(struct rg_chan *c, const void *elem)
{
	int r = chansend(c, elem, false);

	if (r == -EAGAIN)
		rg_preempt_poll(); /* a polling loop: a safe point (preempt.h) */
	return r;
}

int rg_chan_trysend(rg_chan *c, const void *elem)
{
	/* Failing fast only reads, in a leaf (the claiming loops need registers saved). */
	if (c &&
	    (c->cap ? ring_send_would_fail(c) :
		      !atomic_load_explicit(&c->closed, memory_order_relaxed) && rg_chan_full(c))) {
		rg_preempt_poll();
		return -EAGAIN;
	}
	return trysend_slow(c, elem);
}

/* ---- receive ---- */

static int chanrecv(struct rg_chan *c, void *ep, bool block)
{
	if (!c) {
		if (!block)
			return -EAGAIN;
		park_forever(WAIT_CHAN_RECV_NIL);
	}

	if (c->cap) {
		switch (ring_recv(c, ep, false)) {
		case RING_OK:
			return 1;
		case RING_CLOSED:
			if (ep && c->elemsize)
				memset(ep, 0, c->elemsize);
			return 0;
		case RING_EMPTY:
			if (!block)
				return -EAGAIN; /* read-only: nothing was claimed */
			break;
		case RING_SLOW:
			/* Somebody waits. Parked receivers mean an empty ring, unless a
			 * send is being served; a closed channel has none left. */
			if (!block && !ring_nonempty(c) &&
			    !(atomic_load_explicit(&c->sendpos, memory_order_acquire) & RG_CHAN_CLOSED))
				return -EAGAIN;
			break;
		default:
			break;
		}
	} else if (!block && rg_chan_empty(c)) {
		/* Fast failure: nothing to receive and not closed. The closed load must
		 * follow the empty check (acquire), or a send-then-close seen in the
		 * other order would look closed. */
		if (!atomic_load_explicit(&c->closed, memory_order_acquire))
			return -EAGAIN;
		/* Closed: a sender parked before the close may have been taken between
		 * the two loads, so look again; still empty means closed and drained. */
		if (rg_chan_empty(c)) {
			if (ep && c->elemsize)
				memset(ep, 0, c->elemsize);
			return 0;
		}
	}

	if (block)
		return c->cap ? chan_block(c, ep, false) : chan_sync_recv(c, ep);
	struct rg_sudog *wake = NULL;
	rg_spin_lock(&c->lock);
	int r = rg_chan_recv_locked(c, ep, &wake);
	if (c->cap)
		rg_chan_sync_marks(c);
	rg_spin_unlock(&c->lock);
	rg_chan_wake_all(wake);
	return r;
}

int rg_chan_recv(rg_chan *c, void *out)
{
	return chanrecv(c, out, true);
}

__attribute__((noinline)) static int tryrecv_slow(struct rg_chan *c, void *out)
{
	int r = chanrecv(c, out, false);

	if (r == -EAGAIN)
		rg_preempt_poll(); /* a polling loop: a safe point (preempt.h) */
	return r;
}

int rg_chan_tryrecv(rg_chan *c, void *out)
{
	/* As rg_chan_trysend. Unbuffered: closed is read after empty (chanrecv says why). */
	if (c && (c->cap ? ring_recv_would_fail(c) : rg_chan_empty(c))) {
		if (c->cap || !atomic_load_explicit(&c->closed, memory_order_acquire)) {
			rg_preempt_poll();
			return -EAGAIN;
		}
		/* Closed and still empty (chanrecv): drained, here too, in the leaf. */
		if (rg_chan_empty(c) && (!out || !c->elemsize))
			return 0;
	}
	return tryrecv_slow(c, out);
}

/* ---- close ---- */

int rg_chan_close(rg_chan *c)
{
	struct rg_sudog *wake = NULL, *sg;

	if (!c)
		return -EINVAL;
	rg_spin_lock(&c->lock);
	if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
		rg_spin_unlock(&c->lock);
		return -EPIPE;
	}
	if (c->cap) {
		/* Stop new claims. While receivers are parked nobody claims without
		 * the lock, so none has a value in flight that they should get. */
		atomic_fetch_or_explicit(&c->sendpos, RG_CHAN_CLOSED, memory_order_seq_cst);
	}
	atomic_store_explicit(&c->closed, 1, memory_order_release);

	/* Every other receiver gets the zero value, every sender "closed". */
	while ((sg = rg_waitq_dequeue(&c->recvq)) != NULL) {
		if (sg->elem && c->elemsize)
			memset(sg->elem, 0, c->elemsize);
		push_wake(&wake, sg, false);
	}
	while ((sg = rg_waitq_dequeue(&c->sendq)) != NULL) {
		sg->elem = NULL;
		push_wake(&wake, sg, false);
	}
	if (c->cap)
		rg_chan_sync_marks(c);
	rg_spin_unlock(&c->lock);

	/* Ready them only now: never wake a goroutine while holding a channel lock. */
	rg_chan_wake_all(wake);
	return 0;
}
