/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ports of Go 1.19's sync package benchmarks (sync/mutex_test.go and
 * sync/waitgroup_test.go) for rg_mutex and rg_wg, with the same workloads
 * and the same meaning of one op. All run under RunParallel: one goroutine
 * per P (Go's SetParallelism is only used by the Slack variants, not ported).
 */
#include "harness.h"
#include "work.h"

/*
 * BenchmarkMutexUncontended: every goroutine locks and unlocks its own
 * mutex, padded (as Go's PaddedMutex) so no two share a cache line. op = one
 * Lock plus one Unlock.
 */
struct padded_mutex {
	rg_mutex mu;
	uint8_t pad[128];
};

static void mutex_uncontended_body(struct rb_pb *pb, void *arg)
{
	struct padded_mutex m = {.mu = RG_MUTEX_INIT};

	(void)arg;
	while (rb_pb_next(pb)) {
		rg_mutex_lock(&m.mu);
		rg_mutex_unlock(&m.mu);
	}
}

static void bench_mutex_uncontended(struct rb_b *b)
{
	rb_run_parallel(b, mutex_uncontended_body, NULL);
}

/*
 * BenchmarkMutex (Go's benchmarkMutex(b, slack=false, work=false)): all
 * goroutines lock and unlock one shared mutex. op = one Lock plus one Unlock.
 */
static void mutex_body(struct rb_pb *pb, void *arg)
{
	rg_mutex *mu = arg;

	while (rb_pb_next(pb)) {
		rg_mutex_lock(mu);
		rg_mutex_unlock(mu);
	}
}

static void bench_mutex(struct rb_b *b)
{
	rg_mutex mu = RG_MUTEX_INIT;

	rb_run_parallel(b, mutex_body, &mu);
}

/*
 * BenchmarkWaitGroupUncontended: every goroutine has its own padded
 * WaitGroup; op = Add(1), Done, Wait (which finds the counter at zero).
 */
struct padded_wg {
	rg_wg wg;
	uint8_t pad[128];
};

static void wg_uncontended_body(struct rb_pb *pb, void *arg)
{
	struct padded_wg w = {.wg = RG_WG_INIT};

	(void)arg;
	while (rb_pb_next(pb)) {
		rg_wg_add(&w.wg, 1);
		rg_wg_done(&w.wg);
		rg_wg_wait(&w.wg);
	}
}

static void bench_wg_uncontended(struct rb_b *b)
{
	rb_run_parallel(b, wg_uncontended_body, NULL);
}

/*
 * BenchmarkWaitGroupAddDone and BenchmarkWaitGroupAddDoneWork (Go's
 * benchmarkWaitGroupAddDone(b, 0 and 100)): all goroutines share one
 * WaitGroup; op = Add(1), the local work, then Done. Go's local work here
 * compiles to an empty loop of `work` rounds (dead_work_loop says why).
 */
struct wg_work {
	rg_wg wg;
	int work;
};

static void wg_add_done_body(struct rb_pb *pb, void *arg)
{
	struct wg_work *w = arg;

	while (rb_pb_next(pb)) {
		rg_wg_add(&w->wg, 1);
		dead_work_loop(w->work);
		rg_wg_done(&w->wg);
	}
}

static void bench_wg_add_done(struct rb_b *b)
{
	struct wg_work w = {.wg = RG_WG_INIT, .work = 0};

	rb_run_parallel(b, wg_add_done_body, &w);
}

static void bench_wg_add_done_work(struct rb_b *b)
{
	struct wg_work w = {.wg = RG_WG_INIT, .work = 100};

	rb_run_parallel(b, wg_add_done_body, &w);
}

/*
 * BenchmarkWaitGroupWait and BenchmarkWaitGroupWaitWork (Go's
 * benchmarkWaitGroupWait(b, 0 and 100)): all goroutines Wait on one shared
 * WaitGroup whose counter is zero, then do the local work (an empty loop,
 * as Go's compiles); op = one Wait, which never blocks.
 */
static void wg_wait_body(struct rb_pb *pb, void *arg)
{
	struct wg_work *w = arg;

	while (rb_pb_next(pb)) {
		rg_wg_wait(&w->wg);
		dead_work_loop(w->work);
	}
}

static void bench_wg_wait(struct rb_b *b)
{
	struct wg_work w = {.wg = RG_WG_INIT, .work = 0};

	rb_run_parallel(b, wg_wait_body, &w);
}

static void bench_wg_wait_work(struct rb_b *b)
{
	struct wg_work w = {.wg = RG_WG_INIT, .work = 100};

	rb_run_parallel(b, wg_wait_body, &w);
}

/*
 * BenchmarkWaitGroupActuallyWait: op = a fresh WaitGroup, Add(1), a new
 * goroutine that calls Done, and a Wait that blocks until it has.
 */
static void wg_done_fn(void *arg)
{
	rg_wg_done(arg);
}

static void wg_actually_wait_body(struct rb_pb *pb, void *arg)
{
	(void)arg;
	while (rb_pb_next(pb)) {
		rg_wg wg = RG_WG_INIT;

		rg_wg_add(&wg, 1);
		rb_go(wg_done_fn, &wg);
		rg_wg_wait(&wg);
	}
}

static void bench_wg_actually_wait(struct rb_b *b)
{
	rb_run_parallel(b, wg_actually_wait_body, NULL);
}

const struct rb_benchmark rb_sync_benchmarks[] = {
	{"BenchmarkMutexUncontended", bench_mutex_uncontended},
	{"BenchmarkMutex", bench_mutex},
	{"BenchmarkWaitGroupUncontended", bench_wg_uncontended},
	{"BenchmarkWaitGroupAddDone", bench_wg_add_done},
	{"BenchmarkWaitGroupAddDoneWork", bench_wg_add_done_work},
	{"BenchmarkWaitGroupWait", bench_wg_wait},
	{"BenchmarkWaitGroupWaitWork", bench_wg_wait_work},
	{"BenchmarkWaitGroupActuallyWait", bench_wg_actually_wait},
	{NULL, NULL},
};
