/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The "local work" Go's channel benchmarks do between operations, as the
 * same instructions Go emits, for bench/chan.c and the reference rows of
 * bench/floor.c.
 */
#ifndef RINGO_BENCH_WORK_H
#define RINGO_BENCH_WORK_H

#include <stdint.h>

/* An empty asm that claims to change x: the compiler can neither fold nor drop the work on x. */
#define RB_OPAQUE(x) __asm__("" : "+r"(x))
/* An empty asm that claims to read x: x must be computed. */
#define RB_KEEP(x) __asm__ volatile("" : : "r"(x))

/*
 * Go's localWork(w): w dependent 64-bit divisions, kept alive in Go by a
 * conditional store to a global (alwaysFalse). gcc would see through a static
 * flag and that foo stays 0, so RB_OPAQUE hides foo's value and RB_KEEP
 * stands for the store. gcc emits idiv r64, as Go does; clang may divide in
 * 32 bits when the operands fit, which is cheaper: compare gcc builds.
 */
static inline void local_work(int w)
{
	int64_t foo = 0;

	for (int i = 0; i < w; i++) {
		RB_OPAQUE(foo);
		foo /= foo + 1;
	}
	RB_KEEP(foo);
}

/*
 * The ProdCons benchmarks' "local work": foo *= 2; foo /= 2, n times. Go keeps
 * both operations (a shift and a signed halving); without the barrier gcc
 * would cancel them (signed overflow being undefined) and drop the loop.
 */
static inline int64_t mul_div_work(int64_t foo, int n)
{
	for (int i = 0; i < n; i++) {
		foo *= 2;
		RB_OPAQUE(foo);
		foo /= 2;
		RB_OPAQUE(foo);
	}
	return foo;
}

/*
 * sync's WaitGroup*Work benchmarks do the same rounds, but drop foo (`_ =
 * foo`): Go's compiler deletes the arithmetic as dead and keeps the empty
 * counted loop (go tool objdump shows INCQ, CMPQ, JL and nothing else). This
 * is that loop, kept by the barrier as Go keeps it.
 */
static inline void dead_work_loop(int n)
{
	for (int i = 0; i < n; i++)
		RB_OPAQUE(i);
}

#endif /* RINGO_BENCH_WORK_H */
