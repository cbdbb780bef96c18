/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pipeline: stages connected by channels, with error propagation and
 * cancellation.
 *
 *   pipeline [N [FAIL_AT]]
 *
 *   gen ──nums──▶ square ×4 ──squares──▶ sum (main)
 *
 * gen sends 1..N, four square workers square them, main adds the squares.
 * The stages run in an rg_errgroup, so the first error is the group's
 * error. A worker that fails (on item FAIL_AT, to show the path) cancels
 * the pipeline by closing `done`: every stage selects on `done` next to its
 * channel operation, so none of them is left blocked on a channel that
 * nobody will ever read or write again. rg_leakcheck proves it at the end.
 *
 * stdout:  "sum of squares of 1..N: S"         (exit 0)
 *     or   "error: square: item K: <strerror>"  (exit 1)
 *          "canceled after generating G of N items"
 *          "leaked goroutines: 0"               (exit 3 if not 0)
 */
#include <ringo.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PL_WORKERS 4
#define PL_BUF 16 /* channel capacity between stages */

static struct {
	long n, fail_at;
	rg_chan *nums, *squares;
	rg_chan *done;	      /* closed once, to cancel every stage */
	rg_once cancel_once;
	rg_errgroup g;
	atomic_int workers_left;
	long generated;	      /* written by gen, read after the group's Wait */
	long failed_item;     /* written by the failing worker, read after Wait */
	int exit_status;
} pl;

static void pl_close_done(void *arg)
{
	rg_chan_close(pl.done);
}

/* Cancel the pipeline; any stage may call it, any number of times. */
static void pl_cancel(void)
{
	rg_once_do(&pl.cancel_once, pl_close_done, NULL);
}

static bool pl_canceled(void)
{
	return rg_chan_tryrecv(pl.done, NULL) == 0; /* 0: closed */
}

static int pl_gen(void *arg)
{
	for (long i = 1; i <= pl.n; i++) {
		/*
		 * select picks at random among ready cases, so with room in nums
		 * it would keep sending half the time after a cancel: look at
		 * done first.
		 */
		if (pl_canceled())
			break;
		rg_case cs[] = {RG_SEND(pl.nums, &i), RG_RECV(pl.done, NULL)};
		if (rg_select(cs, 2, false) == 1)
			break;
		pl.generated++;
	}
	rg_chan_close(pl.nums); /* no more input: the workers drain and stop */
	return 0;
}

static int pl_square(void *arg)
{
	int err = 0;
	long x, sq;

	for (;;) {
		rg_case in[] = {RG_RECV(pl.nums, &x), RG_RECV(pl.done, NULL)};
		if (rg_select(in, 2, false) == 1 || in[0].result == 0)
			break; /* canceled, or nums closed and drained */
		if (x == pl.fail_at) {
			/* A failing stage records what failed, cancels, and returns the error. */
			pl.failed_item = x;
			err = -ERANGE;
			pl_cancel();
			break;
		}
		sq = x * x;
		rg_case out[] = {RG_SEND(pl.squares, &sq), RG_RECV(pl.done, NULL)};
		if (rg_select(out, 2, false) == 1)
			break;
	}
	/* The last worker out closes squares, so the sink sees the end. */
	if (atomic_fetch_sub(&pl.workers_left, 1) == 1)
		rg_chan_close(pl.squares);
	return err;
}

static void pl_main(void *arg)
{
	long sum = 0, sq;
	int err;

	pl.nums = rg_chan_make(sizeof(long), PL_BUF);
	pl.squares = rg_chan_make(sizeof(long), PL_BUF);
	pl.done = rg_chan_make(0, 0);
	if (!pl.nums || !pl.squares || !pl.done) {
		fprintf(stderr, "pipeline: out of memory\n");
		pl.exit_status = 4;
		return;
	}
	atomic_store(&pl.workers_left, PL_WORKERS);
	if (rg_errgroup_go(&pl.g, pl_gen, NULL) != 0)
		pl_cancel();
	for (int i = 0; i < PL_WORKERS; i++) {
		if (rg_errgroup_go(&pl.g, pl_square, NULL) != 0) {
			atomic_fetch_sub(&pl.workers_left, 1);
			pl_cancel();
		}
	}

	/* The sink: main itself. It stops when squares closes or on cancel. */
	for (;;) {
		rg_case cs[] = {RG_RECV(pl.squares, &sq), RG_RECV(pl.done, NULL)};
		if (rg_select(cs, 2, false) == 1 || cs[0].result == 0)
			break;
		sum += sq;
	}

	err = rg_errgroup_wait(&pl.g); /* every stage has returned: no goroutine is left */
	pl_cancel();		       /* idempotent; frees nobody, but is the rule */
	if (err) {
		printf("error: square: item %ld: %s\n", pl.failed_item, strerror(-err));
		printf("canceled after generating %ld of %ld items\n", pl.generated, pl.n);
		pl.exit_status = 1;
	} else {
		printf("sum of squares of 1..%ld: %ld\n", pl.n, sum);
	}

	long leaked = rg_leakcheck(NULL);
	printf("leaked goroutines: %ld\n", leaked);
	if (leaked)
		pl.exit_status = 3;
	rg_chan_free(pl.nums);
	rg_chan_free(pl.squares);
	rg_chan_free(pl.done);
}

int main(int argc, char **argv)
{
	pl.n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	pl.fail_at = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
	if (argc > 3 || pl.n < 0 || pl.n > 2000000 || pl.fail_at < 0) {
		fprintf(stderr, "usage: pipeline [N [FAIL_AT]]   (N <= 2000000; FAIL_AT 0: never)\n");
		return 64;
	}
	int err = rg_run(pl_main, NULL);
	if (err) {
		fprintf(stderr, "pipeline: rg_run: %s\n", strerror(-err));
		return 4;
	}
	return pl.exit_status;
}
