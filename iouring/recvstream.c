// SPDX-License-Identifier: BSD-2-Clause
/*
 * Receive streams, the public half: a handle that routes a connection's
 * receives to its poller's multishot receive (uring_recv.c) or, for a
 * poller without one, to plain rg_recv.
 */
#include <errno.h>
#include <stdlib.h>

#include "poller.h"
#include "runtime.h"

struct rg_recvstream {
	int fd;
	struct rg_poller *pl; /* with st: the backend's stream */
	void *st;	      /* NULL: plain receives (or the poller went first) */
};

/* The poller is going away before the stream: it freed st. */
static void detach(void *owner)
{
	struct rg_recvstream *s = owner;

	s->st = NULL;
	s->pl = NULL;
}

rg_recvstream *rg_recvstream_open(int fd)
{
	struct rg_g *g = rg_getg();

	if (fd < 0) {
		errno = EINVAL;
		return NULL;
	}
	if (!g) {
		errno = EPERM;
		return NULL;
	}
	struct rg_recvstream *s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->fd = fd;
	struct rg_poller *pl = rg_poller_get(g->sched);
	if (pl && pl->ops->rstream_open) {
		s->st = pl->ops->rstream_open(pl, fd, detach, s);
		if (s->st)
			s->pl = pl;
	}
	return s;
}

ssize_t rg_recvstream_recv_ctx(rg_ctx *ctx, rg_recvstream *s, void *buf, size_t n)
{
	if (!s)
		return -EINVAL;
	if (!rg_getg())
		return -EPERM; /* data may sit in the stream's buffers: never bypass them */
	if (n == 0)
		return 0; /* as Go's Read: nothing asked, nothing waited for */
	if (s->st)
		return s->pl->ops->rstream_recv(s->pl, s->st, buf, n, ctx);
	return rg_recv_ctx(ctx, s->fd, buf, n, 0);
}

ssize_t rg_recvstream_recv(rg_recvstream *s, void *buf, size_t n)
{
	return rg_recvstream_recv_ctx(NULL, s, buf, n);
}

void rg_recvstream_close(rg_recvstream *s)
{
	if (!s)
		return;
	if (s->st)
		s->pl->ops->rstream_close(s->pl, s->st);
	free(s);
}
