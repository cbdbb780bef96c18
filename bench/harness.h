/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A small benchmark harness for ringo that behaves like Go's testing.B, so
 * that a ringo benchmark and its Go original measure the same thing:
 *
 *  - A benchmark is a function of struct rb_b that runs its workload b->N
 *    times. The harness first runs it with N = 1, then predicts the N that
 *    fills the bench time (1.2x the estimate, at most 100x the previous N,
 *    at least one more, at most 1e9) and repeats until one run takes at
 *    least the bench time, exactly as testing.(*B).launch does.
 *  - The reported ns/op is the last run's timed duration divided by its N.
 *  - rb_run_parallel hands out iterations in grains of about 100 µs to one
 *    goroutine per P, as testing.(*B).RunParallel does.
 *
 * Output lines have go test's format, so benchstat reads them too.
 */
#ifndef RINGO_BENCH_HARNESS_H
#define RINGO_BENCH_HARNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ringo.h>

struct rb_b {
	int64_t N; /* iterations the benchmark must run */

	/* Harness state; benchmarks use the functions below. */
	const char *name;
	int64_t start_ns;
	int64_t duration_ns;
	bool timer_on;
	int parallelism;
	int64_t previous_n;
	int64_t previous_duration_ns;
	const char *skipped; /* rb_skip's reason */
};

typedef void (*rb_bench_fn)(struct rb_b *b);

struct rb_benchmark {
	const char *name; /* "BenchmarkX", the same name as the Go original */
	rb_bench_fn fn;
};

/*
 * Benchmark tables, one per source file, each ended by {NULL, NULL}. A new
 * file adds its table here and to rb_suites[] in main.c.
 */
extern const struct rb_benchmark rb_proc_benchmarks[];
extern const struct rb_benchmark rb_chan_benchmarks[];
extern const struct rb_benchmark rb_sync_benchmarks[];
extern const struct rb_benchmark rb_time_benchmarks[];
extern const struct rb_benchmark rb_floor_benchmarks[];

/* Timer control, as b.ResetTimer, b.StartTimer and b.StopTimer. */
void rb_reset_timer(struct rb_b *b);
void rb_start_timer(struct rb_b *b);
void rb_stop_timer(struct rb_b *b);

/* rb_fatal - report a failed benchmark and exit (Go's b.Fatalf). */
void rb_fatal(struct rb_b *b, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* rb_skip - Go's b.Skip: the benchmark returns at once and prints no result. */
static inline void rb_skip(struct rb_b *b, const char *reason)
{
	b->skipped = reason;
}

/* rb_now_ns - CLOCK_MONOTONIC in nanoseconds. */
int64_t rb_now_ns(void);

/*
 * rb_go - rg_go that exits on failure: a benchmark whose goroutines do not
 * start measures nothing. Inline because it is on every hot path.
 */
void rb_go_failed(int err) __attribute__((noreturn));

static inline void rb_go(void (*fn)(void *arg), void *arg)
{
	int err = rg_go(fn, arg);

	if (__builtin_expect(err != 0, 0))
		rb_go_failed(err);
}

/* RunParallel support: Go's testing.PB. */
struct rb_pb {
	_Atomic uint64_t *global_n; /* iterations handed out so far */
	uint64_t grain;		    /* iterations taken from global_n at once */
	uint64_t cache;		    /* iterations left in the current grain */
	uint64_t bn;		    /* b->N */
};

/* rb_pb_next - true while the calling goroutine has another iteration to run. */
static inline bool rb_pb_next(struct rb_pb *pb)
{
	if (pb->cache == 0) {
		uint64_t n = atomic_fetch_add_explicit(pb->global_n, pb->grain,
						       memory_order_relaxed);

		n += pb->grain; /* the new total, as Go's AddUint64 returns */
		if (n <= pb->bn)
			pb->cache = pb->grain;
		else if (n < pb->bn + pb->grain)
			pb->cache = pb->bn + pb->grain - n;
		else
			return false;
	}
	pb->cache--;
	return true;
}

/*
 * rb_run_parallel - run body(pb, arg) in parallelism * GOMAXPROCS goroutines
 * that share b->N iterations through rb_pb_next, and wait for them all.
 */
void rb_run_parallel(struct rb_b *b, void (*body)(struct rb_pb *pb, void *arg), void *arg);

/* rb_set_parallelism - Go's b.SetParallelism: goroutines per P in rb_run_parallel. */
void rb_set_parallelism(struct rb_b *b, int p);

/* Options of one ringo-bench invocation. */
struct rb_options {
	const char *bench_re; /* -bench: regular expression (POSIX ERE) */
	int64_t benchtime_ns; /* -benchtime as a duration, or 0 */
	int64_t benchtime_n;  /* -benchtime as Nx, or 0 */
	int cpus[64];	      /* -cpu list */
	int ncpus;
	int count;   /* -count */
	bool pstats; /* -pstats: print per-P scheduler counters per result */
};

/* rb_run_all - run every benchmark matching opts; inside rg_run. Returns 0 or 1 on failure. */
int rb_run_all(const struct rb_benchmark *const *suites, const struct rb_options *opts);

#endif /* RINGO_BENCH_HARNESS_H */
