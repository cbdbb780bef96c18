/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ports of the scheduler benchmarks in Go's runtime/proc_test.go (Go 1.19),
 * with the same workloads and the same meaning of one op, plus
 * BenchmarkGoschedPingPong, which Go lacks; its Go twin is bench/go.
 */
#include "harness.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

/*
 * BenchmarkCreateGoroutines{,Parallel}: procs chains of goroutines, each
 * goroutine starting the next and exiting; op = one goroutine created. The
 * last goroutine of a chain reports on an unbuffered chan bool, as Go's does.
 */
static rg_chan *chain_done;

static void create_chain(void *arg)
{
	uintptr_t n = (uintptr_t)arg;

	if (n == 0) {
		const bool t = true;

		if (rg_chan_send(chain_done, &t) != 0)
			rb_fatal(NULL, "CreateGoroutines: send on the done channel failed");
		return;
	}
	rb_go(create_chain, (void *)(n - 1));
}

static void create_goroutines(struct rb_b *b, int procs)
{
	bool t;

	chain_done = rg_chan_make(sizeof(bool), 0);
	if (!chain_done)
		rb_fatal(b, "rg_chan_make failed");
	for (int i = 0; i < procs; i++)
		rb_go(create_chain, (void *)(uintptr_t)(b->N / procs));
	for (int i = 0; i < procs; i++)
		if (rg_chan_recv(chain_done, &t) != 1)
			rb_fatal(b, "CreateGoroutines: done channel closed");
	rg_chan_free(chain_done);
}

static void bench_create_goroutines(struct rb_b *b)
{
	create_goroutines(b, 1);
}

static void bench_create_goroutines_parallel(struct rb_b *b)
{
	create_goroutines(b, rg_maxprocs(0));
}

/*
 * warmupScheduler: get an M running on every P before timing starts, by
 * spinning one goroutine per P until all of them run, then 1 ms more.
 */
static struct {
	_Atomic int32_t count;
	int32_t target;
	rg_wg wg;
} warm;

static void warm_spin(void *arg)
{
	int64_t start;

	(void)arg;
	atomic_fetch_add(&warm.count, 1);
	while (atomic_load_explicit(&warm.count, memory_order_relaxed) < warm.target)
		; /* as Go: busy, so each goroutine keeps its M and P */
	start = rb_now_ns();
	while (rb_now_ns() - start < 1000000)
		;
	rg_wg_done(&warm.wg);
}

static void warmup_scheduler(int threads)
{
	atomic_store(&warm.count, 0);
	warm.target = threads;
	rg_wg_add(&warm.wg, threads);
	for (int i = 0; i < threads; i++)
		rb_go(warm_spin, NULL);
	rg_wg_wait(&warm.wg);
}

/*
 * BenchmarkCreateGoroutinesSingle: one producer starts b.N goroutines that
 * only call Done, so the other Ps must steal from the producer's P.
 * op = one goroutine created, run and finished.
 */
static rg_wg single_wg;

static void single_done(void *arg)
{
	(void)arg;
	rg_wg_done(&single_wg);
}

static void bench_create_goroutines_single(struct rb_b *b)
{
	warmup_scheduler(rg_maxprocs(0));
	rb_reset_timer(b);

	rg_wg_add(&single_wg, (int)b->N);
	for (int64_t i = 0; i < b->N; i++)
		rb_go(single_done, NULL);
	rg_wg_wait(&single_wg);
}

/*
 * BenchmarkGoschedPingPong: two goroutines pass a turn flag back and forth,
 * each yielding while the turn is the other's. op = one hand-off; at
 * GOMAXPROCS=1 every hand-off is exactly one yield (the passer yields, the
 * waiter resumes and takes its turn). Player 0 makes ceil(N/2) hand-offs,
 * player 1 floor(N/2). bench/go/gosched_test.go is the identical Go code.
 */
static struct {
	_Atomic int32_t turn;
	int64_t n;
	rg_wg wg;
} pingpong;

static void pingpong_player(void *arg)
{
	int32_t me = (int32_t)(intptr_t)arg;
	int64_t turns = (pingpong.n + 1 - me) / 2;

	for (int64_t i = 0; i < turns; i++) {
		while (atomic_load(&pingpong.turn) != me)
			rg_yield();
		atomic_store(&pingpong.turn, 1 - me);
	}
	rg_wg_done(&pingpong.wg);
}

static void bench_gosched_pingpong(struct rb_b *b)
{
	atomic_store(&pingpong.turn, 0);
	pingpong.n = b->N;
	rg_wg_add(&pingpong.wg, 2);
	for (intptr_t me = 0; me < 2; me++)
		rb_go(pingpong_player, (void *)me);
	rg_wg_wait(&pingpong.wg);
}

/*
 * BenchmarkPingPongHog: at GOMAXPROCS=1 a CPU hog (a loop around a
 * non-blocking receive, Go's select with a default case) shares the P with
 * a ping-pong pair; op = one round trip. Without preemption the pair would
 * never run again once the hog has the P: sysmon preempts the hog after a
 * time slice, and ends the pair's slice, which its runnext hand-offs share.
 */
static struct {
	rg_chan *stop, *done, *ping, *pong;
	int64_t n;
} hog;

static void hog_loop(void *arg)
{
	const bool t = true;
	bool v;

	(void)arg;
	for (;;) {
		/* Go's case <-stop fires on the close, so does a closed receive here. */
		if (rg_chan_tryrecv(hog.stop, &v) != -EAGAIN) {
			rg_chan_send(hog.done, &t);
			return;
		}
	}
}

static void hog_pinger(void *arg)
{
	const bool t = true;
	bool v;

	(void)arg;
	for (int64_t j = 0; j < hog.n; j++) {
		rg_chan_recv(hog.ping, &v);
		rg_chan_send(hog.pong, &v);
	}
	rg_chan_close(hog.stop);
	rg_chan_send(hog.done, &t);
}

static void hog_ponger(void *arg)
{
	const bool t = true;
	bool v;

	(void)arg;
	for (int64_t i = 0; i < hog.n; i++) {
		rg_chan_recv(hog.pong, &v);
		rg_chan_send(hog.ping, &v);
	}
	rg_chan_send(hog.done, &t);
}

static void bench_pingpong_hog(struct rb_b *b)
{
	const bool t = true;
	bool v;

	if (b->N == 0)
		return;
	int procs = rg_maxprocs(1);
	hog.n = b->N;
	hog.stop = rg_chan_make(sizeof(bool), 0);
	hog.done = rg_chan_make(sizeof(bool), 0);
	hog.ping = rg_chan_make(sizeof(bool), 0);
	hog.pong = rg_chan_make(sizeof(bool), 0);
	if (!hog.stop || !hog.done || !hog.ping || !hog.pong)
		rb_fatal(b, "rg_chan_make failed");
	rb_go(hog_loop, NULL);
	rb_go(hog_pinger, NULL);
	rb_go(hog_ponger, NULL);
	rb_reset_timer(b);
	rg_chan_send(hog.ping, &t); /* start the ping-pong */
	rg_chan_recv(hog.stop, &v);
	rb_stop_timer(b);
	rg_chan_recv(hog.ping, &v); /* let the last ponger exit */
	for (int i = 0; i < 3; i++)
		rg_chan_recv(hog.done, &v);
	rg_chan_free(hog.stop);
	rg_chan_free(hog.done);
	rg_chan_free(hog.ping);
	rg_chan_free(hog.pong);
	rg_maxprocs(procs);
}

const struct rb_benchmark rb_proc_benchmarks[] = {
	{"BenchmarkCreateGoroutines", bench_create_goroutines},
	{"BenchmarkCreateGoroutinesParallel", bench_create_goroutines_parallel},
	{"BenchmarkCreateGoroutinesSingle", bench_create_goroutines_single},
	{"BenchmarkGoschedPingPong", bench_gosched_pingpong},
	{"BenchmarkPingPongHog", bench_pingpong_hog},
	{NULL, NULL},
};
