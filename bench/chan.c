/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ports of every benchmark in Go 1.19's runtime/chan_test.go, with the same
 * workloads and the same meaning of one op (b.N). Go's `int` is 64 bits, so
 * channels of int carry int64_t; chan bool carries bool; chan struct{} has
 * elements of size 0.
 *
 * Where Go's code is a select with one case and a default, the Go compiler
 * turns it into a non-blocking send or receive (selectnbsend/selectnbrecv);
 * the ports call rg_chan_trysend/rg_chan_tryrecv, their ringo equivalents.
 *
 * Go's garbage collector reclaims channels; here every channel is freed
 * explicitly, inside the timed region when Go's allocation is too (the GC
 * runs there as well).
 */
#include "harness.h"
#include "work.h"

#include <stdatomic.h>
#include <stdbool.h>

static const int64_t zero64 = 0;
static const int64_t one64 = 1;

static rg_chan *must_make(size_t elem_size, size_t cap)
{
	rg_chan *c = rg_chan_make(elem_size, cap);

	if (!c)
		rb_fatal(NULL, "rg_chan_make(%zu, %zu) failed", elem_size, cap);
	return c;
}

/* Blocking operations whose failure would be a runtime bug (nothing here is closed early). */
static inline void must_send(rg_chan *c, const void *v)
{
	if (__builtin_expect(rg_chan_send(c, v) != 0, 0))
		rb_fatal(NULL, "rg_chan_send on an open channel failed");
}

static inline void must_recv(rg_chan *c, void *out)
{
	if (__builtin_expect(rg_chan_recv(c, out) != 1, 0))
		rb_fatal(NULL, "rg_chan_recv on an open channel reported closed");
}

/*
 * BenchmarkMakeChan/{Byte,Int,Ptr,Struct/0,Struct/32,Struct/40}: make a
 * channel of capacity 8 of the element size; op = one make. The previous
 * channel is freed after each make, where Go leaves it to the GC; the last
 * one is closed, as in Go.
 */
static void make_chan(struct rb_b *b, size_t elem_size)
{
	rg_chan *x = NULL;

	for (int64_t i = 0; i < b->N; i++) {
		rg_chan *prev = x;

		x = must_make(elem_size, 8);
		rg_chan_free(prev); /* what Go's GC does later, after x exists */
	}
	if (x)
		rg_chan_close(x);
	rg_chan_free(x);
}

static void bench_make_chan_byte(struct rb_b *b)
{
	make_chan(b, sizeof(uint8_t));
}

static void bench_make_chan_int(struct rb_b *b)
{
	make_chan(b, sizeof(int64_t));
}

static void bench_make_chan_ptr(struct rb_b *b)
{
	make_chan(b, sizeof(void *));
}

static void bench_make_chan_struct0(struct rb_b *b)
{
	make_chan(b, 0); /* struct{} */
}

static void bench_make_chan_struct32(struct rb_b *b)
{
	make_chan(b, 4 * sizeof(int64_t)); /* struct{ a, b, c, d int64 } */
}

static void bench_make_chan_struct40(struct rb_b *b)
{
	make_chan(b, 5 * sizeof(int64_t)); /* struct{ a, b, c, d, e int64 } */
}

/* BenchmarkChanNonblocking: a failing non-blocking receive on an idle unbuffered channel. */
static void chan_nonblocking_body(struct rb_pb *pb, void *arg)
{
	rg_chan *myc = arg;
	int64_t v;

	while (rb_pb_next(pb))
		(void)rg_chan_tryrecv(myc, &v);
}

static void bench_chan_nonblocking(struct rb_b *b)
{
	rg_chan *myc = must_make(sizeof(int64_t), 0);

	rb_run_parallel(b, chan_nonblocking_body, myc);
	rg_chan_free(myc);
}

/*
 * BenchmarkSelectUncontended: each goroutine bounces one token between its
 * own two 1-buffered channels; op = one two-case select plus one send.
 */
static void select_uncontended_body(struct rb_pb *pb, void *arg)
{
	rg_chan *myc1 = must_make(sizeof(int64_t), 1);
	rg_chan *myc2 = must_make(sizeof(int64_t), 1);
	int64_t v;

	(void)arg;
	must_send(myc1, &zero64);
	while (rb_pb_next(pb)) {
		rg_case cs[] = {RG_RECV(myc1, &v), RG_RECV(myc2, &v)};

		if (rg_select(cs, 2, false) == 0)
			must_send(myc2, &zero64);
		else
			must_send(myc1, &zero64);
	}
	rg_chan_free(myc1);
	rg_chan_free(myc2);
}

static void bench_select_uncontended(struct rb_b *b)
{
	rb_run_parallel(b, select_uncontended_body, NULL);
}

/*
 * BenchmarkSelectSyncContended: every RunParallel goroutine starts a helper
 * that offers 0 on three shared unbuffered channels in one select until done
 * closes; the goroutine receives in a three-case select. op = one receiving
 * select, so one synchronous hand-off.
 */
static struct {
	rg_chan *myc1, *myc2, *myc3, *done;
	rg_wg helpers; /* Go leaves its helpers to exit on their own; C must not free under them */
} ssc;

static void select_sync_helper(void *arg)
{
	(void)arg;
	for (;;) {
		rg_case cs[] = {
			RG_SEND(ssc.myc1, &zero64),
			RG_SEND(ssc.myc2, &zero64),
			RG_SEND(ssc.myc3, &zero64),
			RG_RECV(ssc.done, NULL),
		};

		if (rg_select(cs, 4, false) == 3)
			break;
	}
	rg_wg_done(&ssc.helpers);
}

static void select_sync_contended_body(struct rb_pb *pb, void *arg)
{
	(void)arg;
	rg_wg_add(&ssc.helpers, 1);
	rb_go(select_sync_helper, NULL);
	while (rb_pb_next(pb)) {
		rg_case cs[] = {
			RG_RECV(ssc.myc1, NULL),
			RG_RECV(ssc.myc2, NULL),
			RG_RECV(ssc.myc3, NULL),
		};

		(void)rg_select(cs, 3, false);
	}
}

static void bench_select_sync_contended(struct rb_b *b)
{
	ssc.myc1 = must_make(sizeof(int64_t), 0);
	ssc.myc2 = must_make(sizeof(int64_t), 0);
	ssc.myc3 = must_make(sizeof(int64_t), 0);
	ssc.done = must_make(sizeof(int64_t), 0);
	rb_run_parallel(b, select_sync_contended_body, NULL);
	rg_chan_close(ssc.done);
	/* Go's timing ends here too: it returns without waiting for the helpers. */
	rb_stop_timer(b);
	rg_wg_wait(&ssc.helpers);
	rg_chan_free(ssc.myc1);
	rg_chan_free(ssc.myc2);
	rg_chan_free(ssc.myc3);
	rg_chan_free(ssc.done);
}

/*
 * BenchmarkSelectAsyncContended: the same bouncing as SelectUncontended,
 * but on two channels shared by all goroutines, each of capacity GOMAXPROCS;
 * every goroutine first adds one token.
 */
static void select_async_contended_body(struct rb_pb *pb, void *arg)
{
	rg_chan **myc = arg;
	int64_t v;

	must_send(myc[0], &zero64);
	while (rb_pb_next(pb)) {
		rg_case cs[] = {RG_RECV(myc[0], &v), RG_RECV(myc[1], &v)};

		if (rg_select(cs, 2, false) == 0)
			must_send(myc[1], &zero64);
		else
			must_send(myc[0], &zero64);
	}
}

static void bench_select_async_contended(struct rb_b *b)
{
	size_t procs = (size_t)rg_maxprocs(0);
	rg_chan *myc[2] = {must_make(sizeof(int64_t), procs), must_make(sizeof(int64_t), procs)};

	rb_run_parallel(b, select_async_contended_body, myc);
	rg_chan_free(myc[0]);
	rg_chan_free(myc[1]);
}

/*
 * BenchmarkSelectNonblock: four non-blocking operations per op, on shared
 * channels: receive from and send to unbuffered channels nobody else uses
 * (always fail), receive from an always-empty 1-buffered channel (fails),
 * send to a 1-buffered channel (succeeds once, then fails: nobody drains it).
 */
static void select_nonblock_body(struct rb_pb *pb, void *arg)
{
	rg_chan **myc = arg;
	int64_t v;

	while (rb_pb_next(pb)) {
		(void)rg_chan_tryrecv(myc[0], &v);
		(void)rg_chan_trysend(myc[1], &zero64);
		(void)rg_chan_tryrecv(myc[2], &v);
		(void)rg_chan_trysend(myc[3], &zero64);
	}
}

static void bench_select_nonblock(struct rb_b *b)
{
	rg_chan *myc[4] = {
		must_make(sizeof(int64_t), 0),
		must_make(sizeof(int64_t), 0),
		must_make(sizeof(int64_t), 1),
		must_make(sizeof(int64_t), 1),
	};

	rb_run_parallel(b, select_nonblock_body, myc);
	for (int i = 0; i < 4; i++)
		rg_chan_free(myc[i]);
}

/*
 * BenchmarkChanUncontended / BenchmarkChanContended: op = fill a channel of
 * capacity C = 100 with 100 sends, then drain it with 100 receives. The
 * channel is per goroutine (uncontended) or one shared by all goroutines with
 * capacity C * GOMAXPROCS (contended), so no send or receive ever blocks.
 */
enum { CHAN_C = 100 };

static void fill_drain_body(struct rb_pb *pb, rg_chan *myc)
{
	int64_t v;

	while (rb_pb_next(pb)) {
		for (int i = 0; i < CHAN_C; i++)
			must_send(myc, &zero64);
		for (int i = 0; i < CHAN_C; i++)
			must_recv(myc, &v);
	}
}

static void chan_uncontended_body(struct rb_pb *pb, void *arg)
{
	rg_chan *myc = must_make(sizeof(int64_t), CHAN_C);

	(void)arg;
	fill_drain_body(pb, myc);
	rg_chan_free(myc);
}

static void bench_chan_uncontended(struct rb_b *b)
{
	rb_run_parallel(b, chan_uncontended_body, NULL);
}

static void chan_contended_body(struct rb_pb *pb, void *arg)
{
	fill_drain_body(pb, arg);
}

static void bench_chan_contended(struct rb_b *b)
{
	rg_chan *myc = must_make(sizeof(int64_t), CHAN_C * (size_t)rg_maxprocs(0));

	rb_run_parallel(b, chan_contended_body, myc);
	rg_chan_free(myc);
}

/*
 * BenchmarkChanSync{,Work}: two goroutines (always two, whatever GOMAXPROCS)
 * take batch numbers from a shared counter of b.N/1000/2*2 batches; in a
 * batch each makes 1000 exchanges on one unbuffered channel, the one with the
 * even batch number receiving first, the other sending first, with
 * localWork(work) after each operation. op = one send (or receive) of one
 * goroutine: a batch is 1000 ops, and the total is b.N rounded down to a
 * multiple of 2000. Completion is reported on a chan bool of capacity 2.
 */
enum { CALLS_PER_SCHED = 1000 };

static struct {
	_Atomic int32_t n;
	int work;
	rg_chan *myc, *c;
} cs_sync;

static void chan_sync_worker(void *arg)
{
	const bool t = true;
	int64_t v;

	(void)arg;
	for (;;) {
		int32_t i = atomic_fetch_sub(&cs_sync.n, 1) - 1;

		if (i < 0)
			break;
		for (int g = 0; g < CALLS_PER_SCHED; g++) {
			if (i % 2 == 0) {
				must_recv(cs_sync.myc, &v);
				local_work(cs_sync.work);
				must_send(cs_sync.myc, &zero64);
				local_work(cs_sync.work);
			} else {
				must_send(cs_sync.myc, &zero64);
				local_work(cs_sync.work);
				must_recv(cs_sync.myc, &v);
				local_work(cs_sync.work);
			}
		}
	}
	must_send(cs_sync.c, &t);
}

static void chan_sync(struct rb_b *b, int work)
{
	const int procs = 2;
	bool ok;

	atomic_store(&cs_sync.n, (int32_t)(b->N / CALLS_PER_SCHED / procs * procs));
	cs_sync.work = work;
	cs_sync.c = must_make(sizeof(bool), (size_t)procs);
	cs_sync.myc = must_make(sizeof(int64_t), 0);
	for (int p = 0; p < procs; p++)
		rb_go(chan_sync_worker, NULL);
	for (int p = 0; p < procs; p++)
		must_recv(cs_sync.c, &ok);
	rg_chan_free(cs_sync.c);
	rg_chan_free(cs_sync.myc);
}

static void bench_chan_sync(struct rb_b *b)
{
	chan_sync(b, 0);
}

static void bench_chan_sync_work(struct rb_b *b)
{
	chan_sync(b, 1000);
}

/*
 * BenchmarkChanProdCons{,Work}{0,10,100}: GOMAXPROCS producers and as many
 * consumers share one channel of capacity 0, 10 or 100. Producers take
 * batches of 1000 sends from a counter of b.N/1000 batches; each send of 1
 * follows `work` (0 or 100) rounds of mul_div_work; then each producer sends
 * the terminator 0, and each consumer stops at the first 0 it receives,
 * doing the same work per value. op = one value sent and received (b.N
 * rounded down to a multiple of 1000).
 */
static struct {
	_Atomic int32_t n;
	int work;
	rg_chan *myc, *c;
	rg_chan *myclose; /* SelectProdCons only */
} pc;

static void prod_worker(void *arg)
{
	int64_t foo = 0;
	bool res;

	(void)arg;
	while (atomic_fetch_sub(&pc.n, 1) - 1 >= 0) {
		for (int g = 0; g < CALLS_PER_SCHED; g++) {
			foo = mul_div_work(foo, pc.work);
			must_send(pc.myc, &one64);
		}
	}
	must_send(pc.myc, &zero64);
	res = foo == 42;
	must_send(pc.c, &res);
}

static void cons_worker(void *arg)
{
	int64_t foo = 0, v;
	bool res;

	(void)arg;
	for (;;) {
		must_recv(pc.myc, &v);
		if (v == 0)
			break;
		foo = mul_div_work(foo, pc.work);
	}
	res = foo == 42;
	must_send(pc.c, &res);
}

static void prod_cons(struct rb_b *b, size_t chan_size, int work, void (*prod)(void *),
		      void (*cons)(void *))
{
	int procs = rg_maxprocs(0);
	bool res;

	atomic_store(&pc.n, (int32_t)(b->N / CALLS_PER_SCHED));
	pc.work = work;
	pc.c = must_make(sizeof(bool), 2 * (size_t)procs);
	pc.myc = must_make(sizeof(int64_t), chan_size);
	pc.myclose = must_make(sizeof(bool), 0);
	for (int p = 0; p < procs; p++) {
		rb_go(prod, NULL);
		rb_go(cons, NULL);
	}
	for (int p = 0; p < procs; p++) {
		must_recv(pc.c, &res);
		must_recv(pc.c, &res);
	}
	rg_chan_free(pc.c);
	rg_chan_free(pc.myc);
	rg_chan_free(pc.myclose);
}

static void bench_chan_prod_cons0(struct rb_b *b)
{
	prod_cons(b, 0, 0, prod_worker, cons_worker);
}

static void bench_chan_prod_cons10(struct rb_b *b)
{
	prod_cons(b, 10, 0, prod_worker, cons_worker);
}

static void bench_chan_prod_cons100(struct rb_b *b)
{
	prod_cons(b, 100, 0, prod_worker, cons_worker);
}

static void bench_chan_prod_cons_work0(struct rb_b *b)
{
	prod_cons(b, 0, 100, prod_worker, cons_worker);
}

static void bench_chan_prod_cons_work10(struct rb_b *b)
{
	prod_cons(b, 10, 100, prod_worker, cons_worker);
}

static void bench_chan_prod_cons_work100(struct rb_b *b)
{
	prod_cons(b, 100, 100, prod_worker, cons_worker);
}

/*
 * BenchmarkSelectProdCons: ChanProdConsWork100 with a channel of capacity
 * 128 and every send and receive made through a three-case select: the data
 * channel, a timer that never fires during the run (each goroutine's own
 * time.After(time.Hour), here rg_after) and a channel that is never closed.
 * The consumer works after every select, the terminating one excepted.
 */
#define HOUR_NS (3600 * INT64_C(1000000000))

static rg_chan *must_after(int64_t ns)
{
	rg_chan *c = rg_after(ns);

	if (!c)
		rb_fatal(NULL, "rg_after failed");
	return c;
}

static void select_prod_worker(void *arg)
{
	rg_chan *mytimer = must_after(HOUR_NS);
	int64_t foo = 0;
	bool res;

	(void)arg;
	while (atomic_fetch_sub(&pc.n, 1) - 1 >= 0) {
		for (int g = 0; g < CALLS_PER_SCHED; g++) {
			foo = mul_div_work(foo, 100);
			rg_case cs[] = {
				RG_SEND(pc.myc, &one64),
				RG_RECV(mytimer, NULL),
				RG_RECV(pc.myclose, NULL),
			};

			(void)rg_select(cs, 3, false);
		}
	}
	must_send(pc.myc, &zero64);
	res = foo == 42;
	rg_chan_free(mytimer); /* Go leaves it to fire in an hour and be collected */
	must_send(pc.c, &res);
}

static void select_cons_worker(void *arg)
{
	rg_chan *mytimer = must_after(HOUR_NS);
	int64_t foo = 0, v;
	bool res;

	(void)arg;
	for (;;) {
		rg_case cs[] = {
			RG_RECV(pc.myc, &v),
			RG_RECV(mytimer, NULL),
			RG_RECV(pc.myclose, NULL),
		};

		if (rg_select(cs, 3, false) == 0 && v == 0)
			break;
		foo = mul_div_work(foo, 100);
	}
	res = foo == 42;
	rg_chan_free(mytimer);
	must_send(pc.c, &res);
}

static void bench_select_prod_cons(struct rb_b *b)
{
	prod_cons(b, 128, 100, select_prod_worker, select_cons_worker);
}

/*
 * BenchmarkReceiveDataFromClosedChan: b.N empty values are buffered in a
 * chan struct{} that is then closed (untimed); op = one receive, and the
 * loop ends with the receive that reports the close (Go's `for range ch`).
 */
static void bench_receive_data_from_closed_chan(struct rb_b *b)
{
	int64_t count = b->N;
	rg_chan *ch = must_make(0, (size_t)count);
	char empty; /* a struct{} value: nothing is copied */

	for (int64_t i = 0; i < count; i++)
		must_send(ch, &empty);
	rg_chan_close(ch);

	rb_reset_timer(b);
	while (rg_chan_recv(ch, NULL) == 1)
		;
	rg_chan_free(ch);
}

/* BenchmarkChanCreation: op = make a 1-buffered chan int, send on it, receive (and free it). */
static void chan_creation_body(struct rb_pb *pb, void *arg)
{
	int64_t v;

	(void)arg;
	while (rb_pb_next(pb)) {
		rg_chan *myc = must_make(sizeof(int64_t), 1);

		must_send(myc, &zero64);
		must_recv(myc, &v);
		rg_chan_free(myc);
	}
}

static void bench_chan_creation(struct rb_b *b)
{
	rb_run_parallel(b, chan_creation_body, NULL);
}

/*
 * BenchmarkChanSem: a channel of capacity GOMAXPROCS used as a semaphore by
 * as many goroutines; op = acquire (send) then release (receive), never blocking.
 */
static void chan_sem_body(struct rb_pb *pb, void *arg)
{
	rg_chan *myc = arg;
	char empty; /* struct{} */

	while (rb_pb_next(pb)) {
		must_send(myc, &empty);
		must_recv(myc, NULL);
	}
}

static void bench_chan_sem(struct rb_b *b)
{
	rg_chan *myc = must_make(0, (size_t)rg_maxprocs(0));

	rb_run_parallel(b, chan_sem_body, myc);
	rg_chan_free(myc);
}

/*
 * BenchmarkChanPopular: 1000 goroutines each select b.N times on a shared
 * channel that never fires and on their own unbuffered channel; the main
 * goroutine sends to the 1000 private channels in turn, b.N rounds. op = one
 * round: 1000 hand-offs, each one a select queueing on (and leaving) the
 * popular channel's wait queue.
 */
enum { POPULAR_N = 1000 };

static struct {
	rg_chan *c;
	rg_chan *d[POPULAR_N];
	int64_t n;
	rg_wg wg;
} pop;

static void popular_waiter(void *arg)
{
	rg_chan *d = arg;

	for (int64_t i = 0; i < pop.n; i++) {
		rg_case cs[] = {RG_RECV(pop.c, NULL), RG_RECV(d, NULL)};

		(void)rg_select(cs, 2, false);
	}
	rg_wg_done(&pop.wg);
}

static void bench_chan_popular(struct rb_b *b)
{
	const bool t = true;

	pop.n = b->N;
	pop.c = must_make(sizeof(bool), 0);
	rg_wg_add(&pop.wg, POPULAR_N);
	for (int j = 0; j < POPULAR_N; j++) {
		pop.d[j] = must_make(sizeof(bool), 0);
		rb_go(popular_waiter, pop.d[j]);
	}
	for (int64_t i = 0; i < b->N; i++)
		for (int j = 0; j < POPULAR_N; j++)
			must_send(pop.d[j], &t);
	rg_wg_wait(&pop.wg);
	for (int j = 0; j < POPULAR_N; j++)
		rg_chan_free(pop.d[j]);
	rg_chan_free(pop.c);
}

/*
 * BenchmarkChanClosed: op = a non-blocking receive from a closed chan
 * struct{}, which must succeed (report the close), never take the default.
 */
static void chan_closed_body(struct rb_pb *pb, void *arg)
{
	rg_chan *c = arg;

	while (rb_pb_next(pb))
		if (__builtin_expect(rg_chan_tryrecv(c, NULL) != 0, 0))
			rb_fatal(NULL, "ChanClosed: receive from a closed channel did not proceed");
}

static void bench_chan_closed(struct rb_b *b)
{
	rg_chan *c = must_make(0, 0);

	rg_chan_close(c);
	rb_run_parallel(b, chan_closed_body, c);
	rg_chan_free(c);
}

const struct rb_benchmark rb_chan_benchmarks[] = {
	{"BenchmarkMakeChan/Byte", bench_make_chan_byte},
	{"BenchmarkMakeChan/Int", bench_make_chan_int},
	{"BenchmarkMakeChan/Ptr", bench_make_chan_ptr},
	{"BenchmarkMakeChan/Struct/0", bench_make_chan_struct0},
	{"BenchmarkMakeChan/Struct/32", bench_make_chan_struct32},
	{"BenchmarkMakeChan/Struct/40", bench_make_chan_struct40},
	{"BenchmarkChanNonblocking", bench_chan_nonblocking},
	{"BenchmarkSelectUncontended", bench_select_uncontended},
	{"BenchmarkSelectSyncContended", bench_select_sync_contended},
	{"BenchmarkSelectAsyncContended", bench_select_async_contended},
	{"BenchmarkSelectNonblock", bench_select_nonblock},
	{"BenchmarkChanUncontended", bench_chan_uncontended},
	{"BenchmarkChanContended", bench_chan_contended},
	{"BenchmarkChanSync", bench_chan_sync},
	{"BenchmarkChanSyncWork", bench_chan_sync_work},
	{"BenchmarkChanProdCons0", bench_chan_prod_cons0},
	{"BenchmarkChanProdCons10", bench_chan_prod_cons10},
	{"BenchmarkChanProdCons100", bench_chan_prod_cons100},
	{"BenchmarkChanProdConsWork0", bench_chan_prod_cons_work0},
	{"BenchmarkChanProdConsWork10", bench_chan_prod_cons_work10},
	{"BenchmarkChanProdConsWork100", bench_chan_prod_cons_work100},
	{"BenchmarkSelectProdCons", bench_select_prod_cons},
	{"BenchmarkReceiveDataFromClosedChan", bench_receive_data_from_closed_chan},
	{"BenchmarkChanCreation", bench_chan_creation},
	{"BenchmarkChanSem", bench_chan_sem},
	{"BenchmarkChanPopular", bench_chan_popular},
	{"BenchmarkChanClosed", bench_chan_closed},
	{NULL, NULL},
};
