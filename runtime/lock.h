/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Runtime-internal locks and notes, built on futexes. They block the thread,
 * so they guard only short critical sections of the scheduler itself; user
 * code uses rg_mutex, which parks goroutines.
 */
#ifndef RINGO_LOCK_H
#define RINGO_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* A three-state futex mutex (unlocked, locked, locked with sleepers) with a short spin. */
struct rg_lock {
	_Atomic uint32_t key;
};

void rg_lock(struct rg_lock *l);
void rg_unlock(struct rg_lock *l);

/* Take l only if it is free; true when taken. */
static inline bool rg_trylock(struct rg_lock *l)
{
	uint32_t zero = 0;

	return atomic_compare_exchange_strong_explicit(&l->key, &zero, 1, memory_order_acquire,
						       memory_order_relaxed);
}

/*
 * A one-shot wake-up for one sleeping thread (Go's note). note_wakeup before
 * note_sleep makes the sleep return at once; note_clear rearms it.
 */
struct rg_note {
	_Atomic uint32_t key;
};

void rg_note_sleep(struct rg_note *n);
/* Sleeps at most ns nanoseconds; true when woken, false on timeout. */
bool rg_note_sleep_ns(struct rg_note *n, int64_t ns);
void rg_note_wakeup(struct rg_note *n);

static inline void rg_note_clear(struct rg_note *n)
{
	atomic_store_explicit(&n->key, 0, memory_order_relaxed);
}

/*
 * Back-off after losing a race for a contended word (a spinlock found held,
 * a lost CAS): 128 PAUSEs, doubling to 512; a PAUSE is 19 ns on this VM's
 * EPYC. The winner owns the line and is about to use it again; retrying at
 * once takes the line back, and two CPUs then trade it on every operation.
 * Waiting lets the winner make a run of operations from its own cache. The
 * first wait is about the window a contended Go lock2 spins (4 x 30 PAUSEs)
 * before it gives up the CPU. Measured at GOMAXPROCS 2 (docs/design.md §9):
 * starting at 1, 8 or 16 PAUSEs left the contended channel benchmarks
 * 1.5-4x slower; longer waits measured faster still, and were not taken:
 * each is paid in latency by whoever lost the race.
 */
#define RG_BACKOFF_MIN 7 /* log2 of the first wait's PAUSEs */
#define RG_BACKOFF_MAX 9

void rg_backoff_wait(unsigned pauses);

static inline void rg_backoff(unsigned *round)
{
	unsigned shift = RG_BACKOFF_MIN + *round;

	rg_backoff_wait(1u << (shift < RG_BACKOFF_MAX ? shift : RG_BACKOFF_MAX));
	(*round)++;
}

/*
 * A spinlock for critical sections of a few dozen instructions (a channel's
 * queue and ring): unlock is a plain release store, so an uncontended
 * lock/unlock costs one locked instruction instead of rg_lock's two. Waiters
 * back off (rg_backoff), then yield the CPU; they never sleep, which is fine
 * only because no holder ever blocks while holding it.
 */
struct rg_spinlock {
	_Atomic uint32_t v;
};

void rg_spin_lock_slow(struct rg_spinlock *l);

static inline void rg_spin_lock(struct rg_spinlock *l)
{
	uint32_t zero = 0;

	if (__builtin_expect(atomic_compare_exchange_weak_explicit(&l->v, &zero, 1,
								   memory_order_acquire,
								   memory_order_relaxed), 1))
		return;
	rg_spin_lock_slow(l);
}

static inline void rg_spin_unlock(struct rg_spinlock *l)
{
	atomic_store_explicit(&l->v, 0, memory_order_release);
}

void rg_spin_wait_free_slow(struct rg_spinlock *l);

/*
 * Return once l is free, without taking it: the acquire load that finds it
 * free reads the last holder's unlock, so that holder's critical section
 * happens before whatever follows. For a caller that only needs the last
 * holder gone (freeing the object), it spares the locked instruction.
 */
static inline void rg_spin_wait_free(struct rg_spinlock *l)
{
	if (__builtin_expect(!atomic_load_explicit(&l->v, memory_order_acquire), 1))
		return;
	rg_spin_wait_free_slow(l);
}

/* sched_yield that leaves errno alone. */
void rg_osyield(void);

/* Raw futex wrappers, private to the process; errno is preserved. */
void rg_futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns);
void rg_futex_wake(_Atomic uint32_t *addr, int n);

#endif /* RINGO_LOCK_H */
