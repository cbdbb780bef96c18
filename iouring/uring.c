// SPDX-License-Identifier: BSD-2-Clause
/*
 * The io_uring backend: one ring per scheduler, shared by its Ms.
 *
 * A goroutine's operation becomes an SQE whose user_data points at a
 * struct uring_op on the goroutine's own stack; the goroutine parks until
 * the CQE arrives, so the op (and every buffer the kernel may touch) stays
 * valid until the kernel is done with it, even when the op is cancelled.
 *
 * Submission is batched: SQEs accumulate while an M runs its goroutines and
 * go to the kernel in one io_uring_enter when the M runs out of local work
 * (rg_netpoll's non-blocking poll, before stealing) - or at once when an M
 * is asleep in the ring, because then the machine is idle and latency is
 * what matters. Completions are reaped by whichever M polls: the idle M
 * blocked in io_uring_enter (with the next timer as its timeout) or a
 * running M between goroutines. docs/design.md says why one shared ring
 * (rather than one per P or per M, with SINGLE_ISSUER and DEFER_TASKRUN).
 */
#include <errno.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "context.h"
#include "fatal.h"
#include "poller.h"
#include "probes.h"
#include "runtime.h"
#include "sanitizer.h"
#include "uring.h"

#define RING_ENTRIES 4096
#define CQ_ENTRIES (4 * RING_ENTRIES)
/* The idle M's spin window (RINGO_URING_SPIN_US; 0 never spins). */
#define SPIN_US 50

/* ---- entering the kernel ---- */

/*
 * Registered ring fds (IORING_REGISTER_RING_FDS) spare io_uring_enter the
 * fd-table lookup and file refcount, but a registration belongs to the
 * thread that made it while the ring is shared by every M: each thread
 * registers on its first enter and remembers which ring its slot holds.
 * liburing's own registration would make every thread use the slot, so the
 * enters are ours. A thread that cannot register uses the plain fd.
 */
static _Atomic uint64_t ring_gens;
static _Thread_local struct {
	uint64_t gen; /* ring whose fd this thread registered (0: none) */
	int idx;      /* its slot, -1 when registration failed */
} tl_ring;

/* Drop this thread's slot idx; any live ring's fd will do, the slots are the thread's. */
static void unregister_slot(struct uring *u, int idx)
{
	struct io_uring_rsrc_update up = {.offset = (unsigned)idx};

	syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_UNREGISTER_RING_FDS, &up, 1);
}

static int ring_slot(struct uring *u)
{
	if (tl_ring.gen == u->gen)
		return tl_ring.idx;
	/* A slot for an earlier ring pins that ring's memory: give it back first. */
	if (tl_ring.gen && tl_ring.idx >= 0)
		unregister_slot(u, tl_ring.idx);
	struct io_uring_rsrc_update up = {.offset = -1U, .data = (uint64_t)u->ring.ring_fd};
	long r = syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_RING_FDS, &up, 1);

	tl_ring.gen = u->gen;
	tl_ring.idx = r == 1 ? (int)up.offset : -1;
	return tl_ring.idx;
}

/*
 * io_uring_enter; result or -errno. registered: through this thread's slot,
 * only on a scheduler thread outside any goroutine (g0, sysmon): a
 * goroutine may be preempted between reading the thread-local slot and
 * the system call and resume on a thread that holds no such slot.
 */
static int ring_enter(struct uring *u, bool registered, unsigned submit, unsigned wait,
		      unsigned flags, void *arg, size_t argsz)
{
	int saved = errno, fd = registered ? ring_slot(u) : -1;

	if (fd >= 0)
		flags |= IORING_ENTER_REGISTERED_RING;
	else
		fd = u->ring.ring_fd;
	long r = syscall(__NR_io_uring_enter, fd, submit, wait, flags, arg, argsz);
	if (r < 0)
		r = -errno;
	errno = saved;
	return (int)r;
}

/* ---- submission ---- */

/* Make the prepared SQEs visible to the kernel; how many it has yet to take. Needs sq_lock. */
static unsigned publish_locked(struct uring *u)
{
	struct io_uring_sq *sq = &u->ring.sq;

	if (sq->sqe_head != sq->sqe_tail) {
		sq->sqe_head = sq->sqe_tail;
		io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
	}
	atomic_store_explicit(&u->unsubmitted, 0, memory_order_relaxed);
	return sq->sqe_tail - io_uring_smp_load_acquire(sq->khead);
}

/* The kernel refused some SQEs for now: make the next poll try again. */
static void submit_failed(struct uring *u, int r)
{
	if (r != -EBUSY && r != -EAGAIN && r != -EINTR)
		rg_fatal("io_uring_enter: %s", strerror(-r));
	atomic_store_explicit(&u->unsubmitted, 1, memory_order_relaxed);
}

/* Hand every prepared SQE to the kernel. Needs sq_lock. */
static void submit_locked(struct uring *u, bool registered)
{
	unsigned n = publish_locked(u);

	/* SUBMIT_ALL: the kernel takes every SQE or fails outright. */
	if (n) {
		int r = ring_enter(u, registered, n, 0, 0, NULL, 0);
		if (r < 0)
			submit_failed(u, r);
	}
}

/* From any thread or goroutine. */
void uring_submit_locked(struct uring *u)
{
	submit_locked(u, false);
}

/*
 * n free SQEs, submitting (and, when the kernel pushes back, waiting for
 * reapers) as needed. Needs sq_lock; may drop it while waiting.
 */
void uring_reserve_locked(struct uring *u, unsigned n)
{
	while (io_uring_sq_space_left(&u->ring) < n) {
		uring_submit_locked(u);
		if (io_uring_sq_space_left(&u->ring) >= n)
			return;
		/* The CQ is backed up: let the reapers catch up. */
		rg_unlock(&u->sq_lock);
		rg_osyield();
		rg_lock(&u->sq_lock);
	}
}

struct io_uring_sqe *uring_sqe_locked(struct uring *u, uint64_t user_data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe)
		rg_fatal("io_uring: no SQE after reserving one");
	io_uring_sqe_set_data64(sqe, user_data);
	atomic_fetch_add_explicit(&u->inflight, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&u->unsubmitted, 1, memory_order_relaxed);
	return sqe;
}

static void prep(struct io_uring_sqe *sqe, const struct rg_io_req *r)
{
	switch (r->op) {
	case RG_IO_READ:
		io_uring_prep_read(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)r->off);
		break;
	case RG_IO_WRITE:
		io_uring_prep_write(sqe, r->fd, r->cbuf, (unsigned)r->len, (uint64_t)r->off);
		break;
	case RG_IO_READV:
		io_uring_prep_readv(sqe, r->fd, r->iov, (unsigned)r->len, (uint64_t)r->off);
		break;
	case RG_IO_WRITEV:
		io_uring_prep_writev(sqe, r->fd, r->iov, (unsigned)r->len, (uint64_t)r->off);
		break;
	case RG_IO_RECV:
		io_uring_prep_recv(sqe, r->fd, r->buf, r->len, r->flags);
		break;
	case RG_IO_SEND:
		io_uring_prep_send(sqe, r->fd, r->cbuf, r->len, r->flags | MSG_NOSIGNAL);
		break;
	case RG_IO_RECVMSG:
		io_uring_prep_recvmsg(sqe, r->fd, r->msg, (unsigned)r->flags);
		break;
	case RG_IO_SENDMSG:
		io_uring_prep_sendmsg(sqe, r->fd, r->cmsg, (unsigned)r->flags | MSG_NOSIGNAL);
		break;
	case RG_IO_ACCEPT:
		io_uring_prep_accept(sqe, r->fd, r->addr, r->addrlen, SOCK_CLOEXEC);
		break;
	case RG_IO_CONNECT:
		io_uring_prep_connect(sqe, r->fd, r->caddr, (socklen_t)r->len);
		break;
	case RG_IO_OPENAT:
		io_uring_prep_openat(sqe, r->fd, r->path, r->flags, r->mode);
		break;
	case RG_IO_CLOSE:
		io_uring_prep_close(sqe, r->fd);
		break;
	case RG_IO_FSYNC:
		io_uring_prep_fsync(sqe, r->fd, 0);
		break;
	case RG_IO_POLL:
		io_uring_prep_poll_add(sqe, r->fd, (unsigned)r->flags);
		break;
	case RG_IO_NOP:
		io_uring_prep_nop(sqe);
		break;
	case RG_IO_OP_COUNT:
		rg_fatal("io_uring: bad operation %d", (int)r->op);
	}
}

/* op's SQE. Needs sq_lock. */
static void op_prep_locked(struct uring *u, struct uring_op *op)
{
	prep(uring_sqe_locked(u, (uint64_t)(uintptr_t)op), op->req);
	/* user_data joins these probes with the kernel's io_uring tracepoints. */
	RG_PROBE(io_submit, op->w.g->goid, (uint64_t)(uintptr_t)op, (int)op->req->op);
	/* The reaper's acquire: the kernel hands op over (also from the thread that prepped it). */
	rg_tsan_release(op);
}

/* An M asleep in the ring means idle CPUs: submit now rather than batch. Needs sq_lock. */
static void submit_if_sleeping_locked(struct uring *u)
{
	if (atomic_load_explicit(&u->sleeping, memory_order_relaxed))
		uring_submit_locked(u);
}

/*
 * Prep the queued operations; whether there were any. Needs sq_lock. Newest
 * first: they go to the kernel in the same enter anyway, and reversing the
 * list wrote to every op, a line on another goroutine's stack, usually in
 * another CPU's cache (90% of this function's time).
 */
static bool pending_prep_locked(struct uring *u)
{
	if (!atomic_load_explicit(&u->pending, memory_order_relaxed))
		return false;
	struct uring_op *op = atomic_exchange_explicit(&u->pending, NULL, memory_order_acquire);
	while (op) {
		/* Read before the prep: once submitted, op may complete and its frame go. */
		struct uring_op *next = op->pending_next;
		uring_reserve_locked(u, 1);
		op_prep_locked(u, op);
		op = next;
	}
	return true;
}

void uring_sq_lock(struct uring *u)
{
	rg_lock(&u->sq_lock);
	pending_prep_locked(u);
}

void uring_sq_unlock(struct uring *u)
{
	for (;;) {
		if (pending_prep_locked(u))
			submit_if_sleeping_locked(u);
		rg_unlock(&u->sq_lock);
		/* Against uring_io's push then trylock: one of the two sees the other. */
		atomic_thread_fence(memory_order_seq_cst);
		if (!atomic_load_explicit(&u->pending, memory_order_relaxed) ||
		    !rg_trylock(&u->sq_lock))
			return;
	}
}

/* Cancel op in the kernel; its own CQE still arrives (with -ECANCELED or its result). */
static void cancel_op(struct uring *u, struct uring_op *op)
{
	uring_sq_lock(u);
	uring_reserve_locked(u, 1);
	io_uring_prep_cancel64(uring_sqe_locked(u, TAG_CANCEL), (uint64_t)(uintptr_t)op, 0);
	uring_submit_locked(u);
	uring_sq_unlock(u);
}

static void ctx_cancelled(struct rg_ctx_hook *h, int err)
{
	struct uring_op *op = (struct uring_op *)((char *)h - offsetof(struct uring_op, hook));

	cancel_op(op->u, op);
}

static int64_t uring_io(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx)
{
	struct uring *u = pl->backend;
	struct uring_op op = {.u = u, .hook = {.fn = ctx_cancelled}};
	int err;

	if (ctx && (err = rg_ctx_err(ctx)) != 0)
		return err;
	if (req->op == RG_IO_ACCEPT) {
		bool handled;
		int64_t r = uring_accept(pl, req, ctx, &handled);
		if (handled)
			return r;
	} else if (req->op == RG_IO_CLOSE) {
		uring_accept_close(u, req->fd);
	}
	rg_iowait_begin(pl, &op.w);
	op.req = req;

	/*
	 * While another M holds sq_lock (a flush holds it across its enter,
	 * which runs the batch's inline sends), queue the operation for the
	 * holder instead of sleeping on the lock: it preps it before letting
	 * go, and it reaches the kernel in the next batch, as it would have.
	 */
	bool locked = rg_trylock(&u->sq_lock);
	if (!locked && req->op != RG_IO_CLOSE) {
		struct uring_op *head = atomic_load_explicit(&u->pending, memory_order_relaxed);
		do
			op.pending_next = head;
		while (!atomic_compare_exchange_weak_explicit(&u->pending, &head, &op,
							      memory_order_seq_cst,
							      memory_order_relaxed));
		/* The holder may have let go before our push: then it is ours to prep. */
		if (rg_trylock(&u->sq_lock))
			uring_sq_unlock(u);
	} else {
		if (!locked)
			rg_lock(&u->sq_lock);
		pending_prep_locked(u);
		uring_reserve_locked(u, 2);
		if (req->op == RG_IO_CLOSE) {
			/* Go's Close wakes the fd's blocked readers and writers: cancel them first. */
			struct io_uring_sqe *c = uring_sqe_locked(u, TAG_CANCEL);
			io_uring_prep_cancel_fd(c, req->fd, IORING_ASYNC_CANCEL_ALL);
			c->flags |= IOSQE_IO_HARDLINK;
		}
		op_prep_locked(u, &op);
		submit_if_sleeping_locked(u);
		uring_sq_unlock(u);
	}

	if (ctx && rg_ctx_hook_add(ctx, &op.hook) != 0)
		cancel_op(u, &op); /* cancelled before the hook was in place */

	rg_iowait_park(&op.w);

	if (ctx)
		rg_ctx_hook_del(&op.hook);
	rg_iowait_end(pl, &op.w);
	RG_PROBE(io_complete, op.w.g->goid, (uint64_t)(uintptr_t)&op, op.res);
	if (ctx && (op.res == -ECANCELED || op.res == -EINTR) && (err = rg_ctx_err(ctx)) != 0)
		return err;
	return op.res;
}

/* ---- completion ---- */

/*
 * Reap CQEs; goroutines whose wait completed go to out (at most max), and
 * *woken says whether a wake NOP was among them. Needs cq_lock.
 */
static int reap_locked(struct uring *u, struct rg_g **out, int max, bool *woken)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0, more = 0;
	int n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe)
	{
		uint64_t ud = cqe->user_data;

		if (ud == TAG_WAKE) {
			atomic_store_explicit(&u->wake_pending, 0, memory_order_release);
			*woken = true;
		} else if (ud != TAG_CANCEL) {
			if (n == max)
				break;
			struct rg_g *g;
			if (ud & TAG_ACCEPT) {
				g = uring_accept_cqe(u, cqe);
			} else {
				struct uring_op *op = (struct uring_op *)(uintptr_t)ud;
				rg_tsan_acquire(op);
				op->res = cqe->res; /* before complete: the waiter may run at once */
				g = rg_iowait_complete(&op->w);
			}
			if (g)
				out[n++] = g;
		}
		/* A multishot request stays in flight until its last CQE. */
		if (cqe->flags & IORING_CQE_F_MORE)
			more++;
		seen++;
	}
	if (seen) {
		io_uring_cq_advance(&u->ring, seen);
		atomic_fetch_sub_explicit(&u->inflight, seen - more, memory_order_relaxed);
	}
	return n;
}

/* Submit what is prepared (from the poll: never in a goroutine). */
static void flush(struct uring *u)
{
	if (atomic_load_explicit(&u->unsubmitted, memory_order_relaxed) == 0)
		return;
	uring_sq_lock(u);
	if (atomic_load_explicit(&u->unsubmitted, memory_order_relaxed))
		submit_locked(u, true);
	uring_sq_unlock(u);
}

/*
 * The kernel holds completions we cannot see in the CQ: task work waiting
 * for its thread to enter the kernel (COOP_TASKRUN), or CQEs that overflowed.
 */
static bool cq_nonempty(struct uring *u)
{
	/* io_uring_cq_ready reads khead plainly: only safe under cq_lock. */
	return io_uring_smp_load_acquire(u->ring.cq.ktail) !=
	       IO_URING_READ_ONCE(*u->ring.cq.khead);
}

static bool kernel_has_events(struct uring *u)
{
	return IO_URING_READ_ONCE(*u->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

static int reap(struct uring *u, struct rg_g **out, int max, bool *woken)
{
	rg_lock(&u->cq_lock);
	int n = reap_locked(u, out, max, woken);
	rg_unlock(&u->cq_lock);
	return n;
}

/*
 * The idle M's spin (Go's spinning M, Linux's busy poll): while completions
 * keep arriving within the window, watch the CQ for up to spin_ns before
 * sleeping, which spares the sleep and the wake-up (an IPI and a halt exit
 * on a VM) in a latency-bound exchange. It submits what running Ms prepare
 * meanwhile, and runs task work (IORING_SQ_TASKRUN) when the kernel asks.
 * Adaptive and bounded: it spins only if the previous wait ended within
 * the window, and a spin that times out stops spinning until a sleep ends
 * that fast again, so an idle daemon never spins and a missed spin costs
 * spin_ns of one CPU once. Returns whether the CQ has something.
 */
static bool spin(struct uring *u, int64_t until)
{
	int64_t now = rg_nanotime(), end = now + u->spin_ns;
	bool entered = false;

	if (until > 0 && until < end)
		end = until;
	for (;;) {
		if (cq_nonempty(u))
			return true;
		/* Task work for another thread stays flagged: enter once per flagging. */
		bool events = kernel_has_events(u);
		if (atomic_load_explicit(&u->unsubmitted, memory_order_relaxed) ||
		    (events && !entered)) {
			entered = events;
			uring_sq_lock(u);
			unsigned n = publish_locked(u);
			uring_sq_unlock(u);
			int r = ring_enter(u, true, n, 0, IORING_ENTER_GETEVENTS, NULL, 0);
			if (r < 0 && n)
				submit_failed(u, r);
			continue;
		}
		entered = entered && events;
		for (int i = 0; i < 64; i++)
			rg_arch_relax();
		if (rg_nanotime() >= end)
			return false;
	}
}

static void uring_wake(struct rg_poller *pl);

/*
 * A non-blocking poll reaped a wake NOP: it was meant for the M that sleeps,
 * or is about to sleep, in the ring (a timer kick, the shutdown). Owe that M
 * the wake-up, and send a new NOP if it may already be inside the wait. With
 * the sleeper's store of sleeping and its exchange of wake_owed (seq_cst both
 * sides), one of the two sees the other: the wake is never lost.
 */
static void wake_reaped_elsewhere(struct rg_poller *pl, struct uring *u)
{
	atomic_store_explicit(&u->wake_owed, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&u->sleeping, memory_order_seq_cst))
		uring_wake(pl);
}

static int uring_poll(struct rg_poller *pl, int64_t until, struct rg_g **out, int max)
{
	struct uring *u = pl->backend;
	bool woken = false;
	int n;

	if (until == 0) {
		flush(u);
		if (!cq_nonempty(u)) {
			if (!kernel_has_events(u))
				return 0;
			ring_enter(u, true, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
		}
		if (!rg_trylock(&u->cq_lock))
			return 0; /* another M is reaping */
		n = reap_locked(u, out, max, &woken);
		rg_unlock(&u->cq_lock);
		if (woken)
			wake_reaped_elsewhere(pl, u);
		return n;
	}

	n = reap(u, out, max, &woken);
	if (n || woken) {
		flush(u);
		return n; /* a wake sent before we got here still counts */
	}
	if (u->spin_ok && u->spin_ns > 0) {
		u->spin_ok = spin(u, until);
		if (u->spin_ok)
			return reap(u, out, max, &woken);
	}

	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg = {.sigmask_sz = _NSIG / 8};
	int64_t start = rg_nanotime();
	if (until > 0) {
		int64_t left = until - start;
		if (left <= 0) {
			flush(u);
			return 0;
		}
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		arg.ts = (uint64_t)(uintptr_t)&ts;
	}
	/*
	 * Submit and wait in one enter. SQEs prepared after the publish see
	 * sleeping and submit themselves. One wait, then return even if
	 * another M reaped what woke us: the caller re-examines timers and
	 * queues, so a wake-up is never lost.
	 */
	uring_sq_lock(u);
	unsigned sub = publish_locked(u);
	atomic_store_explicit(&u->sleeping, 1, memory_order_seq_cst);
	uring_sq_unlock(u);
	/* A wake reaped by another M's non-blocking poll ends this wait before it starts. */
	unsigned wait = atomic_exchange_explicit(&u->wake_owed, 0, memory_order_seq_cst) ? 0 : 1;
	int r = ring_enter(u, true, sub, wait, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
			   sizeof(arg));
	atomic_store_explicit(&u->sleeping, 0, memory_order_relaxed);
	/* The wait's own errors (-ETIME, -EINTR) count only when nothing was submitted. */
	if (r < 0 && sub && r != -ETIME)
		submit_failed(u, r);
	n = reap(u, out, max, &woken);
	if (n)
		u->spin_ok = rg_nanotime() - start < u->spin_ns;
	return n;
}

static void uring_wake(struct rg_poller *pl)
{
	struct uring *u = pl->backend;
	uint32_t zero = 0;

	/* One NOP in flight is enough: its CQE ends the blocked wait. */
	if (!atomic_compare_exchange_strong_explicit(&u->wake_pending, &zero, 1,
						     memory_order_acq_rel, memory_order_relaxed))
		return;
	uring_sq_lock(u);
	uring_reserve_locked(u, 1);
	io_uring_prep_nop(uring_sqe_locked(u, TAG_WAKE));
	uring_submit_locked(u);
	uring_sq_unlock(u);
}

/* ---- lifecycle ---- */

/*
 * liburing maps and unmaps rings with raw system calls TSan cannot see: a
 * new ring at an old ring's address would look like a race with the old
 * ring's last writer. Every destroy happens-before every later init.
 */
static char ring_epoch;

static int uring_init(struct rg_poller *pl)
{
	static const unsigned flag_sets[] = {
		IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
			IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_CQSIZE,
	};
	struct uring *u = calloc(1, sizeof(*u));
	int r = -EINVAL;

	if (!u)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		struct io_uring_params p = {.flags = flag_sets[i], .cq_entries = CQ_ENTRIES};
		r = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &p);
		if (r == 0 && !(p.features & IORING_FEAT_EXT_ARG)) {
			/* Before 5.11 a timed wait needs a timeout SQE per sleep: use epoll. */
			io_uring_queue_exit(&u->ring);
			r = -EOPNOTSUPP;
			break;
		}
		if (r != -EINVAL)
			break;
	}
	if (r < 0) {
		free(u);
		return r;
	}
	/*
	 * After the mapping, not before: only then is it sure that an old ring
	 * at this address was unmapped, so its destroy's release came first.
	 */
	rg_tsan_acquire(&ring_epoch);
	u->gen = atomic_fetch_add_explicit(&ring_gens, 1, memory_order_relaxed) + 1;
	const char *spin_env = getenv("RINGO_URING_SPIN_US");
	u->spin_ns = (spin_env ? atol(spin_env) : SPIN_US) * 1000;
	/* A forked child must not write into the parent's rings. */
	io_uring_ring_dontfork(&u->ring);
	pl->backend = u;
	return 0;
}

static void uring_destroy(struct rg_poller *pl)
{
	struct uring *u = pl->backend;
	struct rg_g *sink[64];

	rg_tsan_acquire(&ring_epoch); /* an earlier ring's destroy, maybe at this address */
	/*
	 * Goroutines abandoned in I/O still own their buffers: cancel all of
	 * it and wait for every CQE before the stacks can be unmapped.
	 */
	uring_sq_lock(u);
	uring_reserve_locked(u, 1);
	io_uring_prep_cancel64(uring_sqe_locked(u, TAG_CANCEL), 0, IORING_ASYNC_CANCEL_ANY);
	uring_submit_locked(u);
	uring_sq_unlock(u);
	for (int tries = 0; atomic_load_explicit(&u->inflight, memory_order_relaxed) > 0; tries++) {
		struct __kernel_timespec ts = {.tv_nsec = 100000000};
		struct io_uring_cqe *cqe;
		if (tries == 100) {
			fprintf(stderr, "ringo: %lld io_uring operations still running at exit\n",
				(long long)atomic_load(&u->inflight));
			break;
		}
		io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
		rg_lock(&u->cq_lock);
		bool woken;
		reap_locked(u, sink, 64, &woken); /* parked forever: nobody readies them */
		rg_unlock(&u->cq_lock);
	}
	uring_accept_destroy(u);
	if (tl_ring.gen == u->gen && tl_ring.idx >= 0)
		unregister_slot(u, tl_ring.idx);
	tl_ring.gen = 0;
	/* Before the unmap: a new ring may be mapped at this address right after it. */
	rg_tsan_release(&ring_epoch);
	io_uring_queue_exit(&u->ring);
	free(u);
	pl->backend = NULL;
}

const struct rg_poller_ops rg_uring_ops = {
	.name = "io_uring",
	.init = uring_init,
	.destroy = uring_destroy,
	.poll = uring_poll,
	.wake = uring_wake,
	.io = uring_io,
};
