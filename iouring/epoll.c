// SPDX-License-Identifier: BSD-2-Clause
/*
 * The epoll backend: Go's netpoll_epoll.go, for kernels without io_uring
 * (or RINGO_POLLER=epoll).
 *
 * Readiness-based: an operation is first tried without blocking; on EAGAIN
 * the goroutine parks on its descriptor until epoll reports it ready, then
 * tries again. Descriptors epoll refuses (regular files) do the plain call
 * with the P handed off (rg_syscall_enter/exit).
 *
 * ringo never sees a descriptor opened or closed (plain close() is allowed),
 * so registrations are EPOLLONESHOT and re-armed with EPOLL_CTL_MOD at every
 * wait, falling back to ADD when the kernel no longer knows the descriptor:
 * a closed-and-reused number is simply registered again. Stale events only
 * cause spurious wake-ups, and every waiter retries its operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "context.h"
#include "fatal.h"
#include "lock.h"
#include "poller.h"
#include "runtime.h"

/*
 * Per-descriptor state lives in a three-level table indexed by fd number, so
 * any descriptor fits, lookups take no lock, and a slot never moves (epoll
 * keeps its address as the event's data).
 */
#define EP_L1_SHIFT 20
#define EP_L2_SHIFT 10
#define EP_L1_SIZE (1u << (31 - EP_L1_SHIFT))
#define EP_L2_SIZE (1u << (EP_L1_SHIFT - EP_L2_SHIFT))
#define EP_CHUNK (1u << EP_L2_SHIFT)

#define EP_EVENTS 128

/* ep_wait's "epoll refuses this descriptor": do the blocking call instead. */
#define EP_NOPOLL 1

/* Who completed a waiter: the poller (it also unlinked it) or a context. */
#define EP_FIRED_POLL 1u
#define EP_FIRED_CANCEL 2u

/* Events that make a waiter a writer (every other wait is a reader's). */
#define EP_WRITE_EVENTS (EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND)
#define EP_POLL_EVENTS                                                                           \
	(EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | \
	 EPOLLMSG | EPOLLRDHUP)

struct ep_waiter;

/* One descriptor (Go's pollDesc): its readers and writers. */
struct ep_fd {
	struct rg_lock lock; /* held across epoll_ctl, so arms never reorder */
	int fd;
	bool added;		   /* in the epoll set, as far as we know [lock] */
	_Atomic bool notfile;	   /* a hint: last seen, the number was no regular file */
	struct ep_waiter *rq, *wq; /* [lock] */
};

/* A parked goroutine's wait, on its stack. */
struct ep_waiter {
	struct rg_iowait w;
	struct rg_ctx_hook hook;
	struct ep_waiter *next, *prev, **head; /* on an ep_fd list; head NULL when off [fd lock] */
	struct ep_waiter *link;		       /* on a list of completed waiters */
	struct rg_g *g;			       /* to run, once on such a list */
	uint32_t events;
	_Atomic uint32_t fired; /* 0, then who completed the wait */
	_Atomic int err;	/* 0: maybe ready, retry; else the error to return */
};

typedef _Atomic(struct ep_fd *) ep_chunk_ptr;

struct ep {
	int epfd;
	int evfd;		       /* wakes a blocking poll (Go's netpollBreak) */
	_Atomic uint32_t wake_sig;     /* a wake-up is in flight (Go's netpollWakeSig) */
	_Atomic bool no_pwait2;	       /* kernel before 5.11: millisecond timeouts */
	struct rg_spinlock stash_lock; /* completed waiters that did not fit in out */
	_Atomic(struct ep_waiter *) stash;
	_Atomic(ep_chunk_ptr *) l1[EP_L1_SIZE];
};

/* ---- descriptor table ---- */

static struct ep_fd *ep_slot(struct ep *e, int fd, bool alloc)
{
	unsigned u = (unsigned)fd;
	_Atomic(ep_chunk_ptr *) *l1 = &e->l1[u >> EP_L1_SHIFT];
	ep_chunk_ptr *l2 = atomic_load_explicit(l1, memory_order_acquire);
	struct ep_fd *c;

	if (!l2) {
		ep_chunk_ptr *old = NULL;

		if (!alloc || !(l2 = calloc(EP_L2_SIZE, sizeof(*l2))))
			return NULL;
		if (!atomic_compare_exchange_strong_explicit(l1, &old, l2, memory_order_acq_rel,
							     memory_order_acquire)) {
			free(l2);
			l2 = old;
		}
	}
	ep_chunk_ptr *cp = &l2[(u >> EP_L2_SHIFT) & (EP_L2_SIZE - 1)];
	c = atomic_load_explicit(cp, memory_order_acquire);
	if (!c) {
		struct ep_fd *old = NULL;

		if (!alloc || !(c = calloc(EP_CHUNK, sizeof(*c))))
			return NULL;
		for (unsigned i = 0; i < EP_CHUNK; i++)
			c[i].fd = (int)((u & ~(EP_CHUNK - 1)) + i);
		if (!atomic_compare_exchange_strong_explicit(cp, &old, c, memory_order_acq_rel,
							     memory_order_acquire)) {
			free(c);
			c = old;
		}
	}
	return &c[u & (EP_CHUNK - 1)];
}

static void ep_push(struct ep_waiter **head, struct ep_waiter *wt)
{
	wt->head = head;
	wt->prev = NULL;
	wt->next = *head;
	if (*head)
		(*head)->prev = wt;
	*head = wt;
}

static void ep_unlink(struct ep_waiter *wt)
{
	if (wt->prev)
		wt->prev->next = wt->next;
	else
		*wt->head = wt->next;
	if (wt->next)
		wt->next->prev = wt->prev;
	wt->head = NULL;
}

/* (Re)arm s for the union of its waiters' events. Needs s->lock; 0 or -errno. */
static int ep_arm(struct ep *e, struct ep_fd *s)
{
	struct epoll_event ev = {.events = EPOLLONESHOT, .data.ptr = s};
	int op = s->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	for (struct ep_waiter *w = s->rq; w; w = w->next)
		ev.events |= w->events;
	for (struct ep_waiter *w = s->wq; w; w = w->next)
		ev.events |= w->events;
	/* MOD finds nothing after a close (and reuse) of the number; ADD finds it there. */
	for (int tries = 0; tries < 4; tries++) {
		if (epoll_ctl(e->epfd, op, s->fd, &ev) == 0) {
			s->added = true;
			atomic_store_explicit(&s->notfile, true, memory_order_relaxed);
			return 0;
		}
		if (errno == ENOENT && op == EPOLL_CTL_MOD)
			op = EPOLL_CTL_ADD;
		else if (errno == EEXIST && op == EPOLL_CTL_ADD)
			op = EPOLL_CTL_MOD;
		else
			break;
	}
	if (errno == EPERM)
		atomic_store_explicit(&s->notfile, false, memory_order_relaxed);
	return -errno;
}

/* Complete wt unless someone did already; the goroutine to run, if it had parked. */
static struct rg_g *ep_fire(struct ep_waiter *wt, int err, uint32_t who)
{
	uint32_t zero = 0;

	if (!atomic_compare_exchange_strong_explicit(&wt->fired, &zero, who, memory_order_acq_rel,
						     memory_order_relaxed))
		return NULL;
	atomic_store_explicit(&wt->err, err, memory_order_relaxed);
	return rg_iowait_complete(&wt->w);
}

/* The context hook: runs on the cancelling thread, under the context's lock. */
static void ep_cancel(struct rg_ctx_hook *h, int err)
{
	struct ep_waiter *wt = (struct ep_waiter *)((char *)h - offsetof(struct ep_waiter, hook));
	struct rg_g *g = ep_fire(wt, err, EP_FIRED_CANCEL);

	/* Still on the descriptor's list: the waiter unlinks itself once it runs. */
	if (g)
		rg_ready(g);
}

/*
 * Park until fd may be ready for events. 0: try the operation again (a
 * wake-up may be spurious); EP_NOPOLL: epoll cannot wait for fd; else -errno
 * (the context's error when it was cancelled first).
 */
static int ep_wait(struct rg_poller *pl, int fd, uint32_t events, rg_ctx *ctx)
{
	struct ep *e = pl->backend;
	struct ep_waiter wt = {.hook = {.fn = ep_cancel}, .events = events};
	struct ep_fd *s;
	int r, err;

	if (fd < 0)
		return -EBADF;
	s = ep_slot(e, fd, true);
	if (!s)
		return -ENOMEM;
	rg_iowait_begin(pl, &wt.w);
	if (ctx && (r = rg_ctx_hook_add(ctx, &wt.hook)) != 0) {
		rg_iowait_end(pl, &wt.w);
		return r;
	}

	rg_lock(&s->lock);
	ep_push(events & ~EP_WRITE_EVENTS ? &s->rq : &s->wq, &wt);
	r = ep_arm(e, s);
	if (r < 0)
		ep_unlink(&wt);
	rg_unlock(&s->lock);

	if (r == 0)
		rg_iowait_park(&wt.w);
	if (ctx)
		rg_ctx_hook_del(&wt.hook); /* from here on only this goroutine touches wt */
	if (atomic_load_explicit(&wt.fired, memory_order_acquire) != EP_FIRED_POLL && r == 0) {
		/* Cancelled: the poller may not have unlinked us. */
		rg_lock(&s->lock);
		if (wt.head)
			ep_unlink(&wt);
		rg_unlock(&s->lock);
	}
	rg_iowait_end(pl, &wt.w);

	err = atomic_load_explicit(&wt.err, memory_order_relaxed);
	if (err)
		return err;
	if (r == -EPERM || r == -ENOSPC || r == -ENOMEM)
		return EP_NOPOLL;
	return r;
}

/* ---- completion ---- */

static void ep_stash_push(struct ep *e, struct ep_waiter *wt)
{
	rg_spin_lock(&e->stash_lock);
	wt->link = atomic_load_explicit(&e->stash, memory_order_relaxed);
	atomic_store_explicit(&e->stash, wt, memory_order_relaxed);
	rg_spin_unlock(&e->stash_lock);
}

static int ep_stash_pop(struct ep *e, struct rg_g **out, int max)
{
	int n = 0;

	if (!atomic_load_explicit(&e->stash, memory_order_relaxed))
		return 0;
	rg_spin_lock(&e->stash_lock);
	for (struct ep_waiter *wt;
	     n < max && (wt = atomic_load_explicit(&e->stash, memory_order_relaxed));) {
		atomic_store_explicit(&e->stash, wt->link, memory_order_relaxed);
		out[n++] = wt->g; /* wt dies once g runs: read it first */
	}
	rg_spin_unlock(&e->stash_lock);
	return n;
}

/* Complete wt; its goroutine goes to out, or to the stash when out is full. */
static void ep_done(struct ep *e, struct ep_waiter *wt, struct rg_g **out, int max, int *n)
{
	struct rg_g *g;

	ep_unlink(wt);
	g = ep_fire(wt, 0, EP_FIRED_POLL);
	if (!g)
		return;
	if (*n < max) {
		out[(*n)++] = g;
	} else {
		wt->g = g;
		ep_stash_push(e, wt);
	}
}

/* s fired with ev (its registration is disarmed now, being one-shot). */
static void ep_event(struct ep *e, struct ep_fd *s, uint32_t ev, struct rg_g **out, int max, int *n)
{
	struct ep_waiter *w, *next;

	rg_lock(&s->lock);
	for (w = s->rq; w; w = next) {
		next = w->next;
		if (ev & (w->events | EPOLLERR | EPOLLHUP))
			ep_done(e, w, out, max, n);
	}
	for (w = s->wq; w; w = next) {
		next = w->next;
		if (ev & (w->events | EPOLLERR | EPOLLHUP))
			ep_done(e, w, out, max, n);
	}
	/* Waiters for other events still need the registration; if it fails, let them retry. */
	if ((s->rq || s->wq) && ep_arm(e, s) < 0) {
		while (s->rq)
			ep_done(e, s->rq, out, max, n);
		while (s->wq)
			ep_done(e, s->wq, out, max, n);
	}
	rg_unlock(&s->lock);
}

/* Wait for events until the rg_nanotime() deadline until (0: poll, -1: forever). */
static int ep_epoll_wait(struct ep *e, struct epoll_event *evs, int64_t until)
{
	for (;;) {
		int64_t d = until;
		int k;

		if (until > 0) {
			d = until - rg_nanotime();
			if (d < 0)
				d = 0;
		}
		if (d > 0 && !atomic_load_explicit(&e->no_pwait2, memory_order_relaxed)) {
			struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};

			k = epoll_pwait2(e->epfd, evs, EP_EVENTS, &ts, NULL);
			if (k < 0 && errno == ENOSYS) {
				atomic_store_explicit(&e->no_pwait2, true, memory_order_relaxed);
				continue;
			}
		} else {
			/* Round up: waking before the deadline would just poll again. */
			int ms = -1;

			if (d >= 0)
				ms = d / 1000000 >= INT_MAX ? INT_MAX :
							      (int)((d + 999999) / 1000000);
			k = epoll_wait(e->epfd, evs, EP_EVENTS, ms);
		}
		if (k >= 0)
			return k;
		if (errno != EINTR)
			rg_fatal("epoll_wait on fd %d failed: errno %d", e->epfd, errno);
		/* Interrupted: a timed wait returns so the caller recomputes its deadline. */
		if (until > 0)
			return 0;
	}
}

static int ep_poll(struct rg_poller *pl, int64_t until, struct rg_g **out, int max)
{
	struct ep *e = pl->backend;
	struct epoll_event evs[EP_EVENTS];
	int n, k;

	if (max <= 0)
		return 0;
	/* Goroutines left over from the last poll are ready now: never block for more. */
	n = ep_stash_pop(e, out, max);
	if (n > 0)
		return n;
	k = ep_epoll_wait(e, evs, until);
	for (int i = 0; i < k; i++) {
		if (!evs[i].data.ptr) {
			/* A non-blocking poll leaves the wake-up for the blocking one (as Go). */
			if (until != 0) {
				uint64_t v;

				if (read(e->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					rg_fatal("epoll poller: eventfd read failed: errno %d",
						 errno);
				atomic_store_explicit(&e->wake_sig, 0, memory_order_release);
			}
			continue;
		}
		ep_event(e, evs[i].data.ptr, evs[i].events, out, max, &n);
	}
	return n;
}

static void ep_wake(struct rg_poller *pl)
{
	struct ep *e = pl->backend;
	uint32_t zero = 0;
	uint64_t one = 1;
	int saved;

	/* At most one wake-up in flight (Go's netpollWakeSig). */
	if (!atomic_compare_exchange_strong_explicit(&e->wake_sig, &zero, 1, memory_order_acq_rel,
						     memory_order_relaxed))
		return;
	saved = errno;
	/* EAGAIN: the counter is full, so the poll is woken anyway. */
	while (write(e->evfd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	errno = saved;
}

/* ---- operations ---- */

/* req as a plain call, with the P handed to another thread meanwhile. */
static int64_t ep_blocking(const struct rg_io_req *req)
{
	int64_t r;

	rg_syscall_enter();
	r = rg_io_syscall(req);
	rg_syscall_exit();
	return r;
}

/* Try req without blocking: -EAGAIN if it would; -EOPNOTSUPP if fd refuses RWF_NOWAIT. */
static int64_t ep_try(const struct rg_io_req *r)
{
	struct iovec one = {.iov_base = r->buf, .iov_len = r->len};
	const struct iovec *iov = r->iov;
	int cnt = (int)r->len;
	ssize_t n;

	if ((r->op == RG_IO_READV || r->op == RG_IO_WRITEV) && r->len > INT_MAX)
		return -EINVAL;
	if (r->op == RG_IO_READ || r->op == RG_IO_WRITE) {
		iov = &one;
		cnt = 1;
	}
	do {
		switch (r->op) {
		case RG_IO_READ:
		case RG_IO_READV:
			n = preadv2(r->fd, iov, cnt, r->off, RWF_NOWAIT);
			break;
		case RG_IO_WRITE:
		case RG_IO_WRITEV:
			n = pwritev2(r->fd, iov, cnt, r->off, RWF_NOWAIT);
			break;
		case RG_IO_RECV:
			n = recv(r->fd, r->buf, r->len, r->flags | MSG_DONTWAIT);
			break;
		case RG_IO_SEND:
			n = send(r->fd, r->cbuf, r->len, r->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
			break;
		case RG_IO_RECVMSG:
			n = recvmsg(r->fd, r->msg, r->flags | MSG_DONTWAIT);
			break;
		case RG_IO_SENDMSG:
			n = sendmsg(r->fd, r->cmsg, r->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
			break;
		default:
			return -EINVAL;
		}
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static bool ep_ready_now(int fd, uint32_t events)
{
	struct pollfd p = {.fd = fd, .events = (short)(events & EP_POLL_EVENTS)};
	int k;

	do {
		k = poll(&p, 1, 0);
	} while (k < 0 && errno == EINTR);
	return k != 0; /* an error: let the call itself report it */
}

/*
 * Operations with no non-blocking form for a blocking descriptor (accept,
 * and reads and writes on descriptors that refuse RWF_NOWAIT): on a
 * non-blocking descriptor try, wait on EAGAIN; on a blocking one wait until
 * ready, then call with the P handed off in case another thread was first.
 */
static int64_t ep_wait_then_call(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx,
				 uint32_t events)
{
	int fl = fcntl(req->fd, F_GETFL);

	if (fl < 0)
		return -errno;
	for (;;) {
		int64_t r;

		if (fl & O_NONBLOCK) {
			r = rg_io_syscall(req);
			if (r != -EAGAIN)
				return r;
		} else if (ep_ready_now(req->fd, events)) {
			return ep_blocking(req);
		}
		r = ep_wait(pl, req->fd, events, ctx);
		if (r == EP_NOPOLL)
			return ep_blocking(req);
		if (r < 0)
			return r;
	}
}

/* Bytes a read or write asks for. */
static size_t ep_req_len(const struct rg_io_req *r)
{
	size_t n = 0;

	if (r->op == RG_IO_READ || r->op == RG_IO_WRITE)
		return r->len;
	for (size_t i = 0; i < r->len; i++)
		n += r->iov[i].iov_len;
	return n;
}

static off_t ep_off(const struct rg_io_req *r, int64_t done)
{
	return r->off == -1 ? -1 : r->off + done;
}

/*
 * RWF_NOWAIT stops a regular file's read or write at the first page that
 * needs the disk. Finish the rest blocking, as the plain call (and io_uring)
 * would: files do not give the short counts that pipes and sockets do.
 */
static int64_t ep_finish_file(struct rg_poller *pl, const struct rg_io_req *req, int64_t done)
{
	struct ep_fd *s = ep_slot(pl->backend, req->fd, true);
	struct rg_io_req rest = *req;
	struct stat st;
	size_t skip = (size_t)done, i = 0;
	int64_t r;

	if (s && atomic_load_explicit(&s->notfile, memory_order_relaxed))
		return done;
	if (fstat(req->fd, &st) < 0)
		return done;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		if (s)
			atomic_store_explicit(&s->notfile, true, memory_order_relaxed);
		return done;
	}
	if (req->op == RG_IO_READ || req->op == RG_IO_WRITE) {
		rest.buf = (char *)req->buf + done;
		rest.len -= (size_t)done;
	} else {
		while (i < req->len && skip >= req->iov[i].iov_len)
			skip -= req->iov[i++].iov_len;
		if (skip) {
			/* The iovec it stopped in first, then the whole ones after it. */
			struct rg_io_req one = {
				.op = req->op == RG_IO_READV ? RG_IO_READ : RG_IO_WRITE,
				.fd = req->fd,
				.buf = (char *)req->iov[i].iov_base + skip,
				.len = req->iov[i].iov_len - skip,
				.off = ep_off(req, done),
			};

			r = ep_blocking(&one);
			if (r <= 0)
				return done;
			done += r;
			if ((size_t)r < one.len)
				return done;
			i++;
		}
		if (i == req->len)
			return done;
		rest.iov = req->iov + i;
		rest.len = req->len - i;
	}
	rest.off = ep_off(req, done);
	r = ep_blocking(&rest);
	return r > 0 ? done + r : done;
}

static int64_t ep_rw(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx,
		     uint32_t events)
{
	bool sock = req->op == RG_IO_RECV || req->op == RG_IO_SEND || req->op == RG_IO_RECVMSG ||
		    req->op == RG_IO_SENDMSG;

	for (;;) {
		int64_t r = ep_try(req);

		if (r > 0 && !sock && (size_t)r < ep_req_len(req))
			return ep_finish_file(pl, req, r);
		if (r == -EOPNOTSUPP && !sock)
			return ep_wait_then_call(pl, req, ctx, events);
		/* The caller's own MSG_DONTWAIT asks for EAGAIN rather than a wait. */
		if (r != -EAGAIN || (sock && (req->flags & MSG_DONTWAIT)))
			return r;
		r = ep_wait(pl, req->fd, events, ctx);
		if (r == EP_NOPOLL)
			return ep_blocking(req);
		if (r < 0)
			return r;
	}
}

static int64_t ep_connect(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx)
{
	int fl = fcntl(req->fd, F_GETFL);
	int soerr;
	socklen_t len;

	if (fl < 0)
		return -errno;
	/* A blocking socket connects in the call: hand the P off meanwhile. */
	if (!(fl & O_NONBLOCK))
		return ep_blocking(req);
	if (connect(req->fd, req->caddr, (socklen_t)req->len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EALREADY && errno != EINTR)
		return -errno;
	for (;;) {
		int64_t r = ep_wait(pl, req->fd, EPOLLOUT, ctx);

		if (r == EP_NOPOLL) {
			struct rg_io_req p = {.op = RG_IO_POLL, .fd = req->fd, .flags = POLLOUT};

			r = ep_blocking(&p);
		}
		if (r < 0)
			return r;
		len = sizeof(soerr);
		if (getsockopt(req->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			return -errno;
		switch (soerr) {
		case 0: {
			/* Wake-ups can be spurious (Go issues 14548, 19289): connected yet? */
			struct sockaddr_storage ss;

			len = sizeof(ss);
			if (getpeername(req->fd, (struct sockaddr *)&ss, &len) == 0)
				return 0;
			if (errno != ENOTCONN)
				return -errno;
			break;
		}
		case EINPROGRESS:
		case EALREADY:
		case EINTR:
			break;
		case EISCONN:
			return 0;
		default:
			return -soerr;
		}
	}
}

static int64_t ep_pollfd(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx)
{
	uint32_t events = (uint32_t)(unsigned short)req->flags & EP_POLL_EVENTS;

	for (;;) {
		struct pollfd p = {.fd = req->fd, .events = (short)req->flags};
		int64_t r;
		int k;

		do {
			k = poll(&p, 1, 0);
		} while (k < 0 && errno == EINTR);
		if (k < 0)
			return -errno;
		if (k > 0)
			return p.revents;
		r = ep_wait(pl, req->fd, events, ctx);
		if (r == EP_NOPOLL)
			return ep_blocking(req);
		if (r < 0)
			return r;
	}
}

/*
 * Go's Close evicts the descriptor's waiters: they return -ECANCELED (as a
 * cancelled io_uring operation does) instead of waiting on a number that
 * may soon name another file. And the registration goes, for a duplicate of
 * the descriptor would otherwise keep it alive.
 */
static int64_t ep_close(struct rg_poller *pl, const struct rg_io_req *req)
{
	struct ep *e = pl->backend;
	struct ep_fd *s = req->fd >= 0 ? ep_slot(e, req->fd, false) : NULL;
	struct ep_waiter *ready = NULL, *wt;
	struct rg_g *g;

	if (s) {
		rg_lock(&s->lock);
		if (s->added) {
			struct epoll_event ev = {0};

			epoll_ctl(e->epfd, EPOLL_CTL_DEL, s->fd, &ev);
			s->added = false;
		}
		atomic_store_explicit(&s->notfile, false, memory_order_relaxed);
		while ((wt = s->rq ? s->rq : s->wq)) {
			ep_unlink(wt);
			g = ep_fire(wt, -ECANCELED, EP_FIRED_POLL);
			if (g) {
				wt->g = g;
				wt->link = ready;
				ready = wt;
			}
		}
		rg_unlock(&s->lock);
		while ((wt = ready)) {
			ready = wt->link; /* wt dies once its goroutine runs */
			rg_ready(wt->g);
		}
	}
	return ep_blocking(req);
}

static int64_t ep_do(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx)
{
	switch (req->op) {
	case RG_IO_READ:
	case RG_IO_READV:
	case RG_IO_RECV:
	case RG_IO_RECVMSG:
		return ep_rw(pl, req, ctx, EPOLLIN);
	case RG_IO_WRITE:
	case RG_IO_WRITEV:
	case RG_IO_SEND:
	case RG_IO_SENDMSG:
		return ep_rw(pl, req, ctx, EPOLLOUT);
	case RG_IO_ACCEPT:
		return ep_wait_then_call(pl, req, ctx, EPOLLIN);
	case RG_IO_CONNECT:
		return ep_connect(pl, req, ctx);
	case RG_IO_POLL:
		return ep_pollfd(pl, req, ctx);
	case RG_IO_CLOSE:
		return ep_close(pl, req);
	case RG_IO_OPENAT:
	case RG_IO_FSYNC:
		return ep_blocking(req);
	case RG_IO_NOP:
		return 0; /* nothing to wait for */
	default:
		return -EINVAL;
	}
}

static int64_t ep_io(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx)
{
	int saved = errno;
	int64_t r;

	if (!req)
		return -EINVAL;
	r = ctx ? rg_ctx_err(ctx) : 0;
	if (r == 0)
		r = ep_do(pl, req, ctx);
	errno = saved;
	return r;
}

/* ---- lifecycle ---- */

static void ep_free(struct ep *e)
{
	if (e->evfd >= 0)
		close(e->evfd);
	if (e->epfd >= 0)
		close(e->epfd);
	for (unsigned i = 0; i < EP_L1_SIZE; i++) {
		ep_chunk_ptr *l2 = atomic_load_explicit(&e->l1[i], memory_order_acquire);

		if (!l2)
			continue;
		for (unsigned j = 0; j < EP_L2_SIZE; j++)
			free(atomic_load_explicit(&l2[j], memory_order_acquire));
		free(l2);
	}
	free(e);
}

static int ep_init(struct rg_poller *pl)
{
	struct ep *e = calloc(1, sizeof(*e));
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int saved = errno, err = 0;

	if (!e)
		return -ENOMEM;
	e->evfd = -1;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd >= 0)
		e->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->epfd < 0 || e->evfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev) < 0) {
		err = -errno;
		ep_free(e);
	} else {
		pl->backend = e;
	}
	errno = saved;
	return err;
}

static void ep_destroy(struct rg_poller *pl)
{
	if (pl->backend)
		ep_free(pl->backend);
	pl->backend = NULL;
}

const struct rg_poller_ops rg_epoll_ops = {
	.name = "epoll",
	.init = ep_init,
	.destroy = ep_destroy,
	.poll = ep_poll,
	.wake = ep_wake,
	.io = ep_io,
};
