// SPDX-License-Identifier: BSD-2-Clause
/*
 * Multishot accept for the io_uring backend.
 *
 * A listener that goroutines rg_accept from repeatedly gets one multishot
 * accept (5.19) instead of an SQE per connection: its CQEs hand accepted
 * descriptors to the goroutines waiting in rg_accept, in order, or queue
 * them for the next calls, which then return without parking. The first
 * rg_accept on a listener is an ordinary single-shot accept, so a program
 * that accepts once and then close()s the listener (with plain close, which
 * ringo allows) never leaves a multishot holding the socket open; from the
 * second on, the listener is the same socket (its inode is checked when the
 * multishot is armed) and is expected to be closed with rg_close. rg_close
 * forgets the listener: waiters return -ECANCELED (a cancelled accept's
 * result), queued descriptors are closed, and the linked ASYNC_CANCEL ends
 * the multishot.
 *
 * The kernel ends a multishot on any error (no IORING_CQE_F_MORE): the
 * error goes to one waiter (EMFILE reaches the program's back-off as
 * before, and the connection stays in the kernel's queue since the fd is
 * allocated before the connection is taken) and the next rg_accept arms a
 * new one. So that a program at its own connection cap does not have the
 * kernel accept on its behalf without bound, the multishot is cancelled
 * when QUEUE_MAX descriptors wait, and re-armed when a goroutine must wait
 * (or, when it ends with goroutines still waiting, at once).
 * Addresses come from getpeername (a multishot has one address buffer for
 * all its CQEs); a peer already gone gives an AF_UNSPEC address.
 *
 * Everything here is under acc_lock; CQEs arrive under cq_lock too (lock
 * order: cq_lock, then acc_lock, then sq_lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fatal.h"
#include "runtime.h"
#include "uring.h"

#define QUEUE_MAX 32

/* A goroutine in rg_accept (on its stack). */
struct acc_waiter {
	struct rg_iowait w;
	int res;
	_Atomic int fired; /* a CQE or the context: the first one completes w */
	struct rg_ctx_hook hook;
	struct acc_waiter *next;
};

struct uring_listener {
	struct uring_listener *next;
	struct uring *u;
	int fd;
	ino_t ino;	/* the socket this entry describes (fd numbers are reused) */
	unsigned calls; /* rg_accepts seen: the second arms the multishot */
	bool armed;	/* the multishot is in flight (its last CQE not seen) */
	bool disarming; /* cancelled because the queue is full */
	bool closed;	/* rg_close forgot it: free at the last CQE */
	struct acc_waiter *head, *tail;
	int *queue; /* accepted descriptors, a ring of qcap */
	unsigned qhead, qlen, qcap;
};

static struct uring_listener *find(struct uring *u, int fd)
{
	for (struct uring_listener *l = u->listeners; l; l = l->next) {
		if (l->fd == fd)
			return l;
	}
	return NULL;
}

static void unlink_listener(struct uring *u, struct uring_listener *l)
{
	for (struct uring_listener **pp = &u->listeners; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			return;
		}
	}
}

static ino_t inode_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* Close the queued descriptors (nobody can accept them any more). */
static void drain(struct uring_listener *l)
{
	int saved = errno;

	for (; l->qlen; l->qlen--, l->qhead = (l->qhead + 1) % l->qcap)
		close(l->queue[l->qhead]);
	errno = saved;
}

static void free_listener(struct uring_listener *l)
{
	free(l->queue);
	free(l);
}

/*
 * Queue an accepted descriptor. The queue grows past QUEUE_MAX for the
 * CQEs already on their way when the cancel went out: the kernel has taken
 * those connections, and dropping one would reset a client for nothing.
 */
static bool enqueue(struct uring_listener *l, int fd)
{
	if (l->qlen == l->qcap) {
		unsigned cap = l->qcap ? 2 * l->qcap : QUEUE_MAX;
		int *q = malloc(cap * sizeof(*q));
		if (!q)
			return false;
		for (unsigned i = 0; i < l->qlen; i++)
			q[i] = l->queue[(l->qhead + i) % l->qcap];
		free(l->queue);
		l->queue = q;
		l->qcap = cap;
		l->qhead = 0;
	}
	l->queue[(l->qhead + l->qlen) % l->qcap] = fd;
	l->qlen++;
	return true;
}

/*
 * Complete w with res unless someone did first (false). *g: the goroutine
 * to ready, or NULL when it had not parked yet (it will not).
 */
static bool fire(struct acc_waiter *w, int res, struct rg_g **g)
{
	int zero = 0;

	*g = NULL;
	if (!atomic_compare_exchange_strong_explicit(&w->fired, &zero, 1, memory_order_acq_rel,
						     memory_order_relaxed))
		return false;
	w->res = res;
	*g = rg_iowait_complete(&w->w);
	return true;
}

static void unlink_waiter(struct uring_listener *l, struct acc_waiter *w)
{
	struct acc_waiter *prev = NULL;

	for (struct acc_waiter *x = l->head; x; prev = x, x = x->next) {
		if (x != w)
			continue;
		if (prev)
			prev->next = w->next;
		else
			l->head = w->next;
		if (l->tail == w)
			l->tail = prev;
		return;
	}
}

/* The first waiter the context has not claimed yet, unlinked; or NULL. */
static struct acc_waiter *next_waiter(struct uring_listener *l)
{
	struct acc_waiter *w;

	while ((w = l->head) != NULL) {
		l->head = w->next;
		if (!l->head)
			l->tail = NULL;
		if (!atomic_load_explicit(&w->fired, memory_order_acquire))
			return w;
		/* Cancelled: it unlinks itself too, which finds it gone. */
	}
	return NULL;
}

/* Submit an SQE with l's user_data (a multishot accept, or its cancel). */
static void submit_for(struct uring *u, struct uring_listener *l, bool cancel)
{
	uint64_t ud = (uint64_t)(uintptr_t)l | TAG_ACCEPT;

	uring_sq_lock(u);
	uring_reserve_locked(u, 1);
	if (cancel) {
		io_uring_prep_cancel64(uring_sqe_locked(u, TAG_CANCEL), ud, 0);
	} else {
		struct io_uring_sqe *sqe = uring_sqe_locked(u, ud);
		io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	}
	/* Not batched: a goroutine is about to wait for it, or the queue is full. */
	uring_submit_locked(u);
	uring_sq_unlock(u);
}

static void fill_addr(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	int saved = errno;

	if (getpeername(fd, addr, addrlen) < 0) {
		/* The peer is gone already: the connection still reads EOF or the reset. */
		memset(addr, 0, *addrlen);
		if (*addrlen >= sizeof(sa_family_t))
			addr->sa_family = AF_UNSPEC;
		*addrlen = sizeof(sa_family_t);
	}
	errno = saved;
}

static void ctx_cancelled(struct rg_ctx_hook *h, int err)
{
	struct acc_waiter *w = (struct acc_waiter *)((char *)h - offsetof(struct acc_waiter, hook));
	struct rg_g *g;

	fire(w, err, &g);
	/* Still on the list: the waiter unlinks itself once it runs. */
	if (g)
		rg_ready(g);
}

int64_t uring_accept(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx,
		     bool *handled)
{
	struct uring *u = pl->backend;
	struct acc_waiter w = {.hook = {.fn = ctx_cancelled}};
	struct uring_listener *l;
	int r;

	*handled = false;
	if (req->fd < 0)
		return 0;
	rg_lock(&u->acc_lock);
	l = find(u, req->fd);
	if (l && l->qlen) {
		/* Accepted already: no wait, no SQE. */
		r = l->queue[l->qhead];
		l->qhead = (l->qhead + 1) % l->qcap;
		l->qlen--;
		rg_unlock(&u->acc_lock);
		if (req->addr)
			fill_addr(r, req->addr, req->addrlen);
		*handled = true;
		return r;
	}
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l) {
			rg_unlock(&u->acc_lock);
			return 0; /* single-shot it is */
		}
		l->u = u;
		l->fd = req->fd;
		l->ino = inode_of(req->fd);
		l->next = u->listeners;
		u->listeners = l;
		atomic_fetch_add_explicit(&u->nlisteners, 1, memory_order_relaxed);
	}
	if (!l->armed && ++l->calls >= 2) {
		/* The number may name another socket since the last call (plain close). */
		ino_t ino = inode_of(req->fd);
		if (ino != l->ino || ino == 0) {
			l->ino = ino;
			l->calls = 1;
		}
	}
	if (l->calls < 2) {
		rg_unlock(&u->acc_lock);
		return 0;
	}

	*handled = true;
	rg_iowait_begin(pl, &w.w);
	if (l->tail)
		l->tail->next = &w;
	else
		l->head = &w;
	l->tail = &w;
	/* Armed, or being disarmed: its last CQE re-arms for us. */
	bool arm = !l->armed;
	l->armed = true;
	rg_unlock(&u->acc_lock);
	if (arm)
		submit_for(u, l, false);

	if (ctx && (r = rg_ctx_hook_add(ctx, &w.hook)) != 0) {
		struct rg_g *g; /* cancelled before the hook was in place */
		if (fire(&w, r, &g) && g)
			rg_fatal("accept: a waiter parked before it parked");
	}
	rg_iowait_park(&w.w);
	if (ctx)
		rg_ctx_hook_del(&w.hook); /* from here on only this goroutine touches w */
	rg_iowait_end(pl, &w.w);
	if (w.res < 0) {
		/* Cancelled, or the listener closed: we may still be on its list. */
		rg_lock(&u->acc_lock);
		if (find(u, req->fd) == l)
			unlink_waiter(l, &w);
		rg_unlock(&u->acc_lock);
		if (ctx && (w.res == -ECANCELED || w.res == -EINTR) && (r = rg_ctx_err(ctx)) != 0)
			return r;
		return w.res;
	}
	if (req->addr)
		fill_addr(w.res, req->addr, req->addrlen);
	return w.res;
}

struct rg_g *uring_accept_cqe(struct uring *u, const struct io_uring_cqe *cqe)
{
	struct uring_listener *l = (struct uring_listener *)(uintptr_t)(cqe->user_data & ~TAG_ACCEPT);
	struct rg_g *g = NULL;
	int res = cqe->res;

	rg_lock(&u->acc_lock);
	if (!(cqe->flags & IORING_CQE_F_MORE))
		l->armed = false;
	if (l->closed) {
		if (res >= 0)
			close(res);
		if (!l->armed)
			free_listener(l);
		rg_unlock(&u->acc_lock);
		return NULL;
	}
	if (res == -ECANCELED && !l->armed) {
		/* Ended by a cancel (ours, queue full; or the kernel's): not an accept's error. */
	} else {
		struct acc_waiter *w;
		bool taken = false;
		while (!taken && (w = next_waiter(l)) != NULL)
			taken = fire(w, res, &g);
		if (!taken && res >= 0) {
			if (!enqueue(l, res))
				close(res); /* no memory: that client sees a reset */
			if (l->qlen >= QUEUE_MAX && l->armed && !l->disarming) {
				l->disarming = true;
				submit_for(u, l, true);
			}
		}
		/* An error with nobody waiting: the next rg_accept re-arms and sees it again. */
	}
	if (!l->armed) {
		l->disarming = false;
		/* Ended (an error, our cancel) with goroutines still waiting: go on. */
		if (l->head) {
			l->armed = true;
			submit_for(u, l, false);
		}
	}
	rg_unlock(&u->acc_lock);
	return g;
}

void uring_accept_close(struct uring *u, int fd)
{
	struct uring_listener *l;
	struct rg_g *ready[16];
	int n = 0;

	if (!atomic_load_explicit(&u->nlisteners, memory_order_relaxed))
		return;
	rg_lock(&u->acc_lock);
	l = find(u, fd);
	if (l) {
		unlink_listener(u, l);
		atomic_fetch_sub_explicit(&u->nlisteners, 1, memory_order_relaxed);
		l->closed = true;
		drain(l);
		struct acc_waiter *w;
		while ((w = next_waiter(l)) != NULL) {
			struct rg_g *g;
			fire(w, -ECANCELED, &g);
			if (g && n < 16)
				ready[n++] = g;
			else if (g)
				rg_ready(g);
		}
		if (!l->armed)
			free_listener(l);
		/* Else the cancel linked to the close ends it, and its last CQE frees l. */
	}
	rg_unlock(&u->acc_lock);
	for (int i = 0; i < n; i++)
		rg_ready(ready[i]);
}

void uring_accept_destroy(struct uring *u)
{
	struct uring_listener *l;

	/* Every CQE is in: nothing is armed (or its CQE will never come). */
	while ((l = u->listeners) != NULL) {
		u->listeners = l->next;
		drain(l);
		free_listener(l);
	}
}
