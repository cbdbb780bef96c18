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

/* sched_yield that leaves errno alone. */
void rg_osyield(void);

/* Raw futex wrappers, private to the process; errno is preserved. */
void rg_futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns);
void rg_futex_wake(_Atomic uint32_t *addr, int n);

#endif /* RINGO_LOCK_H */
