// SPDX-License-Identifier: BSD-2-Clause
/*
 * Multishot receive for the io_uring backend: receive streams
 * (rg_recvstream_*; recvstream.c is the public half).
 *
 * A stream keeps one multishot receive (6.0) armed on its socket, selecting
 * buffers from one provided buffer ring per ring (5.19): the kernel
 * receives into a free buffer as data arrives, with no SQE per receive and
 * no failed first attempt followed by a poll arming, which is what a
 * single-shot receive on an idle connection costs. The CQE hands the
 * buffer to the stream: straight into the buffer of a goroutine waiting
 * in rg_recvstream_recv, or onto the stream's queue for the next call,
 * which then returns without parking. A buffer goes back to the ring as
 * soon as its last byte is copied out.
 *
 * Fairness between streams: one that holds QUEUE_MAX unread buffers has its
 * multishot cancelled, and re-armed when a goroutine must wait on it, so a
 * connection nobody reads cannot take every buffer. When the buffers run
 * out anyway (-ENOBUFS ends the multishot), the waiting goroutines receive
 * with an ordinary single-shot receive into their own buffers: a stream
 * never waits for another stream's reader.
 *
 * Ends come after the queued data, as recv(2) reports them: end of stream
 * to every later receive, an error to one (the next asks the socket again,
 * which then says end of stream, as the kernel and Go's Read do). rg_close's
 * cancel of the fd ends the multishot with -ECANCELED, which is what its
 * parked readers then get.
 *
 * Locks: a stream's lock guards its queue, its waiters and its flags. CQEs
 * arrive under cq_lock (order: cq_lock, a stream's lock, rs_lock or
 * sq_lock; br_lock is innermost). SQEs naming a stream are submitted with
 * its lock held, so a stream's address can never be reused by a new stream
 * while an SQE for the old one is still being prepared.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fatal.h"
#include "runtime.h"
#include "uring.h"

#define BGID 0x5247	/* our buffer group */
#define BUF_COUNT 1024u /* a power of two: 4 MiB of buffers per ring */
#define BUF_SIZE 4096u
#define QUEUE_MAX 16
#define RECV_RETRY INT64_MIN /* a waiter's result: receive with a single-shot SQE */

/* Received data in one provided buffer: bytes off..off+len of buffer bid. */
struct rs_chunk {
	uint16_t bid;
	uint32_t off, len;
};

/* A goroutine in rg_recvstream_recv (on its stack). */
struct rs_waiter {
	struct rg_iowait w;
	char *buf;
	size_t len;
	int64_t res;
	_Atomic int fired; /* a CQE or the context: the first one completes w */
	bool by_ctx;	   /* the context did: w may still be on the list */
	struct rg_ctx_hook hook;
	struct rs_waiter *next;
};

struct uring_rstream {
	struct uring *u;
	int fd;
	void (*detach)(void *owner); /* the public handle, told if the ring goes first */
	void *owner;
	struct uring_rstream *next, *prev; /* u->rstreams [u->rs_lock] */
	struct rg_lock lock;
	bool armed;	/* the multishot is in flight (its last CQE not seen) */
	bool disarming; /* cancelled because the queue is full */
	bool closed;	/* rg_recvstream_close forgot it: free at the last CQE */
	int64_t end; /* after the queue: 1 end of stream (kept), < 0 an error (once), 0 neither */
	struct rs_chunk *q; /* a ring of qcap */
	unsigned qhead, qlen, qcap;
	struct rs_waiter *head, *tail;
};

/* ---- the provided buffer ring [u->rs_lock to set up, u->br_lock to refill] ---- */

static bool bufs_setup(struct uring *u)
{
	size_t ring_size = BUF_COUNT * sizeof(struct io_uring_buf);
	size_t bufs_size = (size_t)BUF_COUNT * BUF_SIZE;

	if (u->br)
		return true;
	if (u->br_failed)
		return false;
	u->br_failed = true;
	void *br = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			0);
	if (br == MAP_FAILED)
		return false;
	void *bufs = mmap(NULL, bufs_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			  0);
	if (bufs == MAP_FAILED) {
		munmap(br, ring_size);
		return false;
	}
	/* As the rings themselves: a forked child must not write into our buffers. */
	madvise(br, ring_size, MADV_DONTFORK);
	madvise(bufs, bufs_size, MADV_DONTFORK);
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
				       .ring_entries = BUF_COUNT,
				       .bgid = BGID};
	if (io_uring_register_buf_ring(&u->ring, &reg, 0) < 0) {
		munmap(bufs, bufs_size);
		munmap(br, ring_size);
		return false;
	}
	u->br = br;
	u->bufs = bufs;
	io_uring_buf_ring_init(u->br);
	for (unsigned i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (uint16_t)i,
				      io_uring_buf_ring_mask(BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(u->br, BUF_COUNT);
	u->br_failed = false;
	return true;
}

/* Give n buffers back to the kernel. */
static void bufs_refill(struct uring *u, const uint16_t *bids, unsigned n)
{
	if (!n)
		return;
	rg_spin_lock(&u->br_lock);
	for (unsigned i = 0; i < n; i++)
		io_uring_buf_ring_add(u->br, u->bufs + (size_t)bids[i] * BUF_SIZE, BUF_SIZE,
				      bids[i], io_uring_buf_ring_mask(BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(u->br, (int)n);
	rg_spin_unlock(&u->br_lock);
}

void uring_recv_destroy(struct uring *u)
{
	struct uring_rstream *st;

	/* Every CQE is in: nothing is armed. Open streams only free themselves from now on. */
	while ((st = u->rstreams) != NULL) {
		u->rstreams = st->next;
		st->detach(st->owner);
		free(st->q);
		free(st);
	}
	if (u->br) {
		io_uring_unregister_buf_ring(&u->ring, BGID);
		munmap(u->bufs, (size_t)BUF_COUNT * BUF_SIZE);
		munmap(u->br, BUF_COUNT * sizeof(struct io_uring_buf));
		u->br = NULL;
	}
}

/* ---- a stream's queue and waiters [st->lock] ---- */

static bool enqueue(struct uring_rstream *st, uint16_t bid, uint32_t len)
{
	if (st->qlen == st->qcap) {
		unsigned cap = st->qcap ? 2 * st->qcap : 2 * QUEUE_MAX;
		struct rs_chunk *q = malloc(cap * sizeof(*q));
		if (!q)
			return false;
		for (unsigned i = 0; i < st->qlen; i++)
			q[i] = st->q[(st->qhead + i) % st->qcap];
		free(st->q);
		st->q = q;
		st->qcap = cap;
		st->qhead = 0;
	}
	st->q[(st->qhead + st->qlen) % st->qcap] = (struct rs_chunk){.bid = bid, .len = len};
	st->qlen++;
	return true;
}

/* Copy up to len queued bytes into buf, refilling the buffers emptied; the count. */
static size_t copy_out(struct uring_rstream *st, char *buf, size_t len)
{
	uint16_t done[32];
	unsigned ndone = 0;
	size_t n = 0;

	while (st->qlen && n < len) {
		struct rs_chunk *c = &st->q[st->qhead];
		size_t k = c->len < len - n ? c->len : len - n;
		memcpy(buf + n, st->u->bufs + (size_t)c->bid * BUF_SIZE + c->off, k);
		n += k;
		c->off += (uint32_t)k;
		c->len -= (uint32_t)k;
		if (c->len)
			break;
		done[ndone++] = c->bid;
		st->qhead = (st->qhead + 1) % st->qcap;
		st->qlen--;
		if (ndone == sizeof(done) / sizeof(done[0])) {
			bufs_refill(st->u, done, ndone);
			ndone = 0;
		}
	}
	bufs_refill(st->u, done, ndone);
	return n;
}

/* Every queued buffer back to the kernel (the stream is closing). */
static void drop_queue(struct uring_rstream *st)
{
	while (st->qlen) {
		bufs_refill(st->u, &st->q[st->qhead].bid, 1);
		st->qhead = (st->qhead + 1) % st->qcap;
		st->qlen--;
	}
}

/* Claim w for a result (false: the context did first). */
static bool claim(struct rs_waiter *w)
{
	int zero = 0;

	return atomic_compare_exchange_strong_explicit(&w->fired, &zero, 1, memory_order_acq_rel,
						       memory_order_relaxed);
}

/* The first waiter the context has not claimed yet, unlinked and claimed; or NULL. */
static struct rs_waiter *take_waiter(struct uring_rstream *st)
{
	struct rs_waiter *w;

	while ((w = st->head) != NULL) {
		st->head = w->next;
		if (!st->head)
			st->tail = NULL;
		w->next = NULL;
		if (claim(w))
			return w;
		/* Cancelled: it unlinks itself too, which finds it gone. */
	}
	return NULL;
}

static void unlink_waiter(struct uring_rstream *st, struct rs_waiter *w)
{
	struct rs_waiter *prev = NULL;

	for (struct rs_waiter *x = st->head; x; prev = x, x = x->next) {
		if (x != w)
			continue;
		if (prev)
			prev->next = w->next;
		else
			st->head = w->next;
		if (st->tail == w)
			st->tail = prev;
		return;
	}
}

/* Goroutines a CQE or a close completed: the first is returned, the rest readied. */
struct readied {
	struct rg_g *first;
	struct rg_g *more[16];
	unsigned nmore;
};

static void complete(struct readied *r, struct rs_waiter *w, int64_t res)
{
	w->res = res;
	struct rg_g *g = rg_iowait_complete(&w->w);
	if (!g)
		return; /* it had not parked yet: it will not */
	if (!r->first)
		r->first = g;
	else if (r->nmore < sizeof(r->more) / sizeof(r->more[0]))
		r->more[r->nmore++] = g;
	else
		rg_ready(g);
}

static void ready_more(struct readied *r)
{
	for (unsigned i = 0; i < r->nmore; i++)
		rg_ready(r->more[i]);
}

/* What a receive that finds no data gets: 0 at end of stream, an error once. */
static int64_t take_end(struct uring_rstream *st)
{
	int64_t r = st->end > 0 ? 0 : st->end;

	if (st->end < 0)
		st->end = 0;
	return r;
}

/* Hand queued data, then the end, to the waiters. */
static void serve(struct uring_rstream *st, struct readied *r)
{
	struct rs_waiter *w;

	while ((st->qlen || st->end) && (w = take_waiter(st)) != NULL) {
		if (st->qlen)
			complete(r, w, (int64_t)copy_out(st, w->buf, w->len));
		else
			complete(r, w, take_end(st));
	}
}

/* Submit the stream's multishot receive, or its cancel. Needs st->lock (see the top). */
static void submit_for(struct uring_rstream *st, bool cancel)
{
	struct uring *u = st->u;
	uint64_t ud = (uint64_t)(uintptr_t)st | TAG_RECV;

	rg_lock(&u->sq_lock);
	uring_reserve_locked(u, 1);
	if (cancel) {
		io_uring_prep_cancel64(uring_sqe_locked(u, TAG_CANCEL), ud, 0);
	} else {
		struct io_uring_sqe *sqe = uring_sqe_locked(u, ud);
		io_uring_prep_recv_multishot(sqe, st->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BGID;
	}
	/* Not batched: a goroutine is about to wait for it, or the queue is full. */
	uring_submit_locked(u);
	rg_unlock(&u->sq_lock);
}

/* ---- CQEs ---- */

struct rg_g *uring_recv_cqe(struct uring *u, const struct io_uring_cqe *cqe)
{
	struct uring_rstream *st = (struct uring_rstream *)(uintptr_t)(cqe->user_data & ~TAG_RECV);
	struct readied r = {0};
	int res = cqe->res;

	rg_lock(&st->lock);
	if (!(cqe->flags & IORING_CQE_F_MORE))
		st->armed = false;
	if (res > 0 && !(cqe->flags & IORING_CQE_F_BUFFER))
		rg_fatal("multishot receive: data without a buffer");
	uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	if (st->closed) {
		if (res > 0)
			bufs_refill(u, &bid, 1);
		bool last = !st->armed;
		rg_unlock(&st->lock);
		if (last) {
			free(st->q);
			free(st);
		}
		return NULL;
	}
	if (res > 0) {
		if (!enqueue(st, bid, (uint32_t)res))
			rg_fatal("out of memory queueing received data");
		serve(st, &r);
		if (st->qlen >= QUEUE_MAX && st->armed && !st->disarming) {
			st->disarming = true;
			submit_for(st, true);
		}
	} else if (res == -ENOBUFS) {
		/* The shared buffers ran out: the waiters receive on their own. */
		struct rs_waiter *w;
		while ((w = take_waiter(st)) != NULL)
			complete(&r, w, RECV_RETRY);
	} else if (res == -ECANCELED && st->disarming) {
		/* Our cancel for a full queue: not the connection's error. */
	} else if (res <= 0) {
		st->end = res == 0 ? 1 : res;
		serve(st, &r);
	}
	if (!st->armed) {
		st->disarming = false;
		/* Ended (a full queue, or the kernel's reasons) with goroutines waiting: go on. */
		if (st->head && !st->end) {
			st->armed = true;
			submit_for(st, false);
		}
	}
	rg_unlock(&st->lock);
	ready_more(&r);
	return r.first;
}

/* ---- the backend's stream operations ---- */

void *uring_rstream_open(struct rg_poller *pl, int fd, void (*detach)(void *owner), void *owner)
{
	struct uring *u = pl->backend;
	struct uring_rstream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	rg_lock(&u->rs_lock);
	if (!bufs_setup(u)) {
		rg_unlock(&u->rs_lock);
		free(st);
		return NULL; /* no provided buffers here: plain receives */
	}
	st->u = u;
	st->fd = fd;
	st->detach = detach;
	st->owner = owner;
	st->next = u->rstreams;
	if (u->rstreams)
		u->rstreams->prev = st;
	u->rstreams = st;
	rg_unlock(&u->rs_lock);
	return st;
}

static void rs_ctx_cancelled(struct rg_ctx_hook *h, int err)
{
	struct rs_waiter *w = (struct rs_waiter *)((char *)h - offsetof(struct rs_waiter, hook));

	if (!claim(w))
		return;
	w->res = err;
	w->by_ctx = true; /* still on the list: the waiter unlinks itself once it runs */
	struct rg_g *g = rg_iowait_complete(&w->w);
	if (g)
		rg_ready(g);
}

int64_t uring_rstream_recv(struct rg_poller *pl, void *vst, void *buf, size_t len, rg_ctx *ctx)
{
	struct uring_rstream *st = vst;
	struct rs_waiter w = {.buf = buf, .len = len, .hook = {.fn = rs_ctx_cancelled}};
	int64_t r;

	if (ctx && (r = rg_ctx_err(ctx)) != 0)
		return r;
	rg_lock(&st->lock);
	if (st->qlen || st->end) {
		/* Received already: no SQE, no wait. */
		r = st->qlen ? (int64_t)copy_out(st, buf, len) : take_end(st);
		rg_unlock(&st->lock);
		return r;
	}
	rg_iowait_begin(pl, &w.w);
	if (st->tail)
		st->tail->next = &w;
	else
		st->head = &w;
	st->tail = &w;
	/* Armed, or being disarmed: its last CQE re-arms for us. */
	if (!st->armed) {
		st->armed = true;
		submit_for(st, false);
	}
	rg_unlock(&st->lock);

	if (ctx && (r = rg_ctx_hook_add(ctx, &w.hook)) != 0 && claim(&w)) {
		/* Cancelled before the hook was in place: complete the wait ourselves. */
		w.res = r;
		w.by_ctx = true;
		if (rg_iowait_complete(&w.w))
			rg_fatal("receive stream: a waiter parked before it parked");
	}
	rg_iowait_park(&w.w);
	if (ctx)
		rg_ctx_hook_del(&w.hook); /* from here on only this goroutine touches w */
	rg_iowait_end(pl, &w.w);
	if (w.res == RECV_RETRY) {
		struct rg_io_req req = {.op = RG_IO_RECV, .fd = st->fd, .buf = buf, .len = len};
		return pl->ops->io(pl, &req, ctx);
	}
	if (w.by_ctx) {
		rg_lock(&st->lock);
		unlink_waiter(st, &w);
		rg_unlock(&st->lock);
	}
	return w.res;
}

void uring_rstream_close(struct rg_poller *pl, void *vst)
{
	struct uring_rstream *st = vst;
	struct uring *u = pl->backend;
	struct readied r = {0};
	struct rs_waiter *w;

	rg_lock(&u->rs_lock);
	if (st->prev)
		st->prev->next = st->next;
	else
		u->rstreams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	rg_unlock(&u->rs_lock);

	rg_lock(&st->lock);
	st->closed = true;
	drop_queue(st);
	while ((w = take_waiter(st)) != NULL)
		complete(&r, w, -ECANCELED); /* misuse, but no goroutine is left parked on it */
	bool free_now = !st->armed;
	if (st->armed && !st->disarming)
		submit_for(st, true); /* its last CQE frees st */
	rg_unlock(&st->lock);
	if (r.first)
		rg_ready(r.first);
	ready_more(&r);
	if (free_now) {
		free(st->q);
		free(st);
	}
}
