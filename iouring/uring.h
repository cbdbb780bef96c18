/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The io_uring backend's state, shared by uring.c (submission, completion,
 * sleeping) and uring_accept.c (multishot accept).
 */
#ifndef RINGO_URING_H
#define RINGO_URING_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "context.h"
#include "lock.h"
#include "poller.h"

/*
 * user_data: below 4096 a tag; else an address, of a struct uring_op
 * (aligned) or, with bit 0 set, of a listener's multishot accept.
 */
enum { TAG_WAKE = 1, TAG_CANCEL = 2 };
#define TAG_ACCEPT 1ull

struct uring_listener;

struct uring {
	struct io_uring ring;
	uint64_t gen; /* tells this ring from earlier ones in per-thread state */
	struct rg_lock sq_lock; /* SQ tail and submission */
	struct rg_lock cq_lock; /* CQ head */
	_Atomic uint32_t unsubmitted; /* SQEs prepared, not yet handed to the kernel */
	/* Operations queued while sq_lock was busy, newest first (uring_io); sq_lock's holder preps them. */
	struct uring_op *_Atomic pending;
	_Atomic uint32_t sleeping;    /* an M waits inside io_uring_enter */
	_Atomic int64_t inflight;     /* SQEs whose CQE is not reaped yet */
	_Atomic uint32_t wake_pending; /* a wake NOP is in flight */
	_Atomic uint32_t wake_owed;    /* a non-blocking poll reaped a wake NOP meant for a sleeper */
	/* Listeners with a multishot accept, or on their way to one (uring_accept.c). */
	struct rg_lock acc_lock;
	struct uring_listener *listeners;
	_Atomic uint32_t nlisteners; /* read without the lock: rg_close's fast path */
	/* The idle M's spin (only it touches these): the last wait ended within the spin window. */
	bool spin_ok;
	int64_t spin_ns;
};

struct uring_op {
	struct rg_iowait w;
	int32_t res;
	struct uring *u;
	struct rg_ctx_hook hook;
	const struct rg_io_req *req;   /* read when the SQE is prepped */
	struct uring_op *pending_next; /* [pending list] */
};

/*
 * sq_lock, taken and released through these: taking it preps the operations
 * goroutines queued meanwhile (so a cancel's SQE follows the SQE it cancels),
 * and the release leaves none of them behind.
 */
void uring_sq_lock(struct uring *u);
void uring_sq_unlock(struct uring *u);

/* Needs sq_lock: room for n SQEs (may drop the lock meanwhile); one SQE; submit all. */
void uring_reserve_locked(struct uring *u, unsigned n);
struct io_uring_sqe *uring_sqe_locked(struct uring *u, uint64_t user_data);
void uring_submit_locked(struct uring *u);

/*
 * Multishot accept (uring_accept.c). uring_accept performs an accept from a
 * goroutine if the listener's multishot handles it (*handled), else leaves
 * it to a single-shot SQE. uring_accept_cqe takes one of the multishot's
 * CQEs (needs cq_lock) and returns a goroutine to make runnable, or NULL.
 * uring_accept_close forgets fd's listener before rg_close closes it;
 * uring_accept_destroy frees what is left, once no CQE can come.
 */
int64_t uring_accept(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx,
		     bool *handled);
struct rg_g *uring_accept_cqe(struct uring *u, const struct io_uring_cqe *cqe);
void uring_accept_close(struct uring *u, int fd);
void uring_accept_destroy(struct uring *u);

#endif /* RINGO_URING_H */
