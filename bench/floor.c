/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Reference rows, not ringo operations: what some of Go's benchmarks cannot
 * cost less than, in either runtime, measured side by side with their Go
 * twins in bench/go/floor_test.go.
 *
 *   FloorCAS             one uncontended locked compare-and-swap. A Mutex
 *                        Lock+Unlock, a WaitGroup Add+Done, and a buffered
 *                        channel's send and receive each need such
 *                        instructions, in Go as in ringo.
 *   FloorMulDivWork100   100 rounds of foo *= 2; foo /= 2: the work a
 *                        ProdConsWork or SelectProdCons side does per item.
 *   FloorLocalWork100    Go's localWork(100), 100 dependent divisions: the
 *                        work a ChanSyncWork side does per operation.
 */
#include "harness.h"
#include "work.h"

#include <stdatomic.h>

static void bench_floor_cas(struct rb_b *b)
{
	_Atomic int64_t word = 0;

	for (int64_t i = 0; i < b->N; i++) {
		int64_t old = i;
		atomic_compare_exchange_strong(&word, &old, i + 1);
	}
	int64_t last = atomic_load_explicit(&word, memory_order_relaxed);
	RB_KEEP(last);
}

static void bench_floor_mul_div_work100(struct rb_b *b)
{
	int64_t foo = 0;

	for (int64_t i = 0; i < b->N; i++)
		foo = mul_div_work(foo, 100);
	RB_KEEP(foo);
}

static void bench_floor_local_work100(struct rb_b *b)
{
	for (int64_t i = 0; i < b->N; i++)
		local_work(100);
}

const struct rb_benchmark rb_floor_benchmarks[] = {
	{"BenchmarkFloorCAS", bench_floor_cas},
	{"BenchmarkFloorMulDivWork100", bench_floor_mul_div_work100},
	{"BenchmarkFloorLocalWork100", bench_floor_local_work100},
	{NULL, NULL},
};
