/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ports of Go 1.19's timer benchmarks (time/sleep_test.go) and of
 * BenchmarkWakeupParallelSyscall (runtime/proc_test.go), same workloads and
 * the same op. The one difference from Go, where C has no garbage
 * collector: a timer is freed explicitly (rg_timer_free). Go's
 * AfterFunc(Hour, nil) timers (the garbage, StartStop's) are
 * rg_after_func timers with a function that is never called.
 */
#include "harness.h"

#include <stdlib.h>
#include <time.h>

#include "ringo.h"

#define HOUR_NS (3600LL * 1000000000LL)
#define GARBAGE_PER_P (1 << 15)
#define OPS_PER_ITER 1000

/*
 * Go's benchmark(b, bench): 2^15 idle timers on every P, so the heaps are
 * deep, then RunParallel calling bench(1000) per iteration.
 */
struct garbage {
	rg_timer **timers;
	rg_wg *wg;
};

static void never_called(void *arg)
{
	(void)arg;
}

static void make_garbage(void *arg)
{
	struct garbage *g = arg;

	for (int j = 0; j < GARBAGE_PER_P; j++)
		if (!(g->timers[j] = rg_after_func(HOUR_NS, never_called, NULL)))
			rb_fatal(NULL, "rg_after_func: out of memory");
	rg_wg_done(g->wg);
}

struct timer_bench {
	void (*bench)(int n);
};

static void timer_body(struct rb_pb *pb, void *arg)
{
	struct timer_bench *tb = arg;

	while (rb_pb_next(pb))
		tb->bench(OPS_PER_ITER);
}

static void timer_benchmark(struct rb_b *b, void (*bench)(int n))
{
	int procs = rg_maxprocs(0);
	struct garbage *all = calloc((size_t)procs, sizeof(*all));
	rg_wg wg = {0};

	if (!all)
		rb_fatal(b, "out of memory");
	rb_stop_timer(b);
	for (int i = 0; i < procs; i++) {
		all[i].wg = &wg;
		all[i].timers = calloc(GARBAGE_PER_P, sizeof(rg_timer *));
		if (!all[i].timers)
			rb_fatal(b, "out of memory");
		rg_wg_add(&wg, 1);
		rb_go(make_garbage, &all[i]);
	}
	rg_wg_wait(&wg);

	struct timer_bench tb = {bench};
	rb_reset_timer(b);
	rb_start_timer(b);
	rb_run_parallel(b, timer_body, &tb);
	rb_stop_timer(b);

	for (int i = 0; i < procs; i++) {
		for (int j = 0; j < GARBAGE_PER_P; j++)
			rg_timer_free(all[i].timers[j]);
		free(all[i].timers);
	}
	free(all);
}

/* BenchmarkSleep: n goroutines each sleep 1 ns. */
static void sleep_1ns(void *arg)
{
	rg_sleep(1);
	rg_wg_done(arg);
}

static void sleep_bench(int n)
{
	rg_wg wg = {0};

	rg_wg_add(&wg, n);
	for (int i = 0; i < n; i++)
		rb_go(sleep_1ns, &wg);
	rg_wg_wait(&wg);
}

/* BenchmarkAfter: n times <-time.After(1). */
static void after_bench(int n)
{
	int64_t v;

	for (int i = 0; i < n; i++) {
		rg_chan *c = rg_after(1);
		if (!c || rg_chan_recv(c, &v) != 1)
			rb_fatal(NULL, "After: no tick");
		rg_chan_free(c);
	}
}

/* BenchmarkStop: n times NewTimer(1 * Second).Stop(). */
static void stop_bench(int n)
{
	for (int i = 0; i < n; i++) {
		rg_timer *t = rg_timer_new(1000000000LL);
		if (!t)
			rb_fatal(NULL, "Stop: out of memory");
		rg_timer_stop(t);
		rg_timer_free(t);
	}
}

/*
 * BenchmarkStartStop: start n hour-long timers, then stop them all. Go's
 * starts them with AfterFunc(Hour, nil): timers without a channel.
 */
static void start_stop_bench(int n)
{
	rg_timer *timers[OPS_PER_ITER];

	for (int i = 0; i < n; i++)
		if (!(timers[i] = rg_after_func(HOUR_NS, never_called, NULL)))
			rb_fatal(NULL, "StartStop: out of memory");
	for (int i = 0; i < n; i++) {
		rg_timer_stop(timers[i]);
		rg_timer_free(timers[i]);
	}
}

/* BenchmarkReset: one timer reset n times. */
static void reset_bench(int n)
{
	rg_timer *t = rg_timer_new(HOUR_NS);

	if (!t)
		rb_fatal(NULL, "Reset: out of memory");
	for (int i = 0; i < n; i++)
		rg_timer_reset(t, HOUR_NS);
	rg_timer_stop(t);
	rg_timer_free(t);
}

static void bench_sleep(struct rb_b *b)
{
	timer_benchmark(b, sleep_bench);
}

static void bench_after(struct rb_b *b)
{
	timer_benchmark(b, after_bench);
}

static void bench_stop(struct rb_b *b)
{
	timer_benchmark(b, stop_bench);
}

static void bench_start_stop(struct rb_b *b)
{
	timer_benchmark(b, start_stop_bench);
}

static void bench_reset(struct rb_b *b)
{
	timer_benchmark(b, reset_bench);
}

/*
 * BenchmarkWakeupParallelSyscall/<delay>: two goroutines alternate as
 * sender and receiver on unbuffered channels, "spinning" in a blocking
 * nanosleep system call (bracketed by rg_syscall_enter/exit, as Go's
 * syscall.Nanosleep is by entersyscall/exitsyscall) for delay (+5 µs for the
 * sender). It measures how well the scheduler keeps both running in
 * parallel across blocking system calls.
 */
#define WAKE_DELAY_NS 5000LL

struct wakeup {
	int64_t n, delay;
	rg_chan *ping, *pong, *start, *done;
};

static void sys_nanosleep(int64_t ns)
{
	struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};

	rg_syscall_enter();
	while (nanosleep(&ts, &ts) != 0)
		;
	rg_syscall_exit();
}

static void wake_first(void *arg)
{
	struct wakeup *w = arg;
	char token = 0;

	rg_chan_recv(w->start, &token);
	for (int64_t i = 0; i < w->n; i++) {
		sys_nanosleep(w->delay + WAKE_DELAY_NS); /* sender */
		rg_chan_send(w->ping, &token);
		sys_nanosleep(w->delay); /* receiver */
		rg_chan_recv(w->pong, &token);
	}
	rg_chan_send(w->done, &token);
}

static void wake_second(void *arg)
{
	struct wakeup *w = arg;
	char token = 0;

	for (int64_t i = 0; i < w->n; i++) {
		sys_nanosleep(w->delay); /* receiver */
		rg_chan_recv(w->ping, &token);
		sys_nanosleep(w->delay + WAKE_DELAY_NS); /* sender */
		rg_chan_send(w->pong, &token);
	}
	rg_chan_send(w->done, &token);
}

static void wakeup_parallel_syscall(struct rb_b *b, int64_t delay)
{
	struct wakeup w = {.n = b->N, .delay = delay};
	char token = 0;

	if (rg_maxprocs(0) == 1) {
		rb_skip(b, "skipping: GOMAXPROCS=1");
		return;
	}
	w.ping = rg_chan_make(1, 0);
	w.pong = rg_chan_make(1, 0);
	w.start = rg_chan_make(1, 0);
	w.done = rg_chan_make(1, 0);
	if (!w.ping || !w.pong || !w.start || !w.done)
		rb_fatal(b, "rg_chan_make failed");
	rb_go(wake_first, &w);
	rb_go(wake_second, &w);
	rb_reset_timer(b);
	rg_chan_send(w.start, &token);
	rg_chan_recv(w.done, &token);
	rg_chan_recv(w.done, &token);
	rg_chan_free(w.ping);
	rg_chan_free(w.pong);
	rg_chan_free(w.start);
	rg_chan_free(w.done);
}

#define WAKEUP_BENCH(fn, ns)                                                                     \
	static void fn(struct rb_b *b)                                                           \
	{                                                                                        \
		wakeup_parallel_syscall(b, ns);                                                  \
	}
WAKEUP_BENCH(bench_wakeup_0s, 0)
WAKEUP_BENCH(bench_wakeup_1us, 1000)
WAKEUP_BENCH(bench_wakeup_2us, 2000)
WAKEUP_BENCH(bench_wakeup_5us, 5000)
WAKEUP_BENCH(bench_wakeup_10us, 10000)
WAKEUP_BENCH(bench_wakeup_20us, 20000)
WAKEUP_BENCH(bench_wakeup_50us, 50000)
WAKEUP_BENCH(bench_wakeup_100us, 100000)

const struct rb_benchmark rb_time_benchmarks[] = {
	{"BenchmarkSleep", bench_sleep},
	{"BenchmarkAfter", bench_after},
	{"BenchmarkStop", bench_stop},
	{"BenchmarkStartStop", bench_start_stop},
	{"BenchmarkReset", bench_reset},
	/* Go names sub-benchmarks by time.Duration.String(): "0s", "1µs"... */
	{"BenchmarkWakeupParallelSyscall/0s", bench_wakeup_0s},
	{"BenchmarkWakeupParallelSyscall/1\u00b5s", bench_wakeup_1us},
	{"BenchmarkWakeupParallelSyscall/2\u00b5s", bench_wakeup_2us},
	{"BenchmarkWakeupParallelSyscall/5\u00b5s", bench_wakeup_5us},
	{"BenchmarkWakeupParallelSyscall/10\u00b5s", bench_wakeup_10us},
	{"BenchmarkWakeupParallelSyscall/20\u00b5s", bench_wakeup_20us},
	{"BenchmarkWakeupParallelSyscall/50\u00b5s", bench_wakeup_50us},
	{"BenchmarkWakeupParallelSyscall/100\u00b5s", bench_wakeup_100us},
	{NULL, NULL},
};
