// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_mutex: Go's sync.Mutex. Normal mode: waiters queue FIFO, but a woken
 * waiter competes with newly arriving goroutines (which usually win, being on
 * CPU). A waiter that fails for more than 1 ms switches the mutex to
 * starvation mode, where unlock hands ownership straight to the queue's head.
 */
#include "ringo.h"

#include "fatal.h"
#include "runtime.h"
#include "sema.h"

#define MUTEX_LOCKED 1
#define MUTEX_WOKEN 2
#define MUTEX_STARVING 4
#define MUTEX_WAITER_SHIFT 3
#define STARVATION_THRESHOLD_NS 1000000

static inline int32_t load_state(rg_mutex *m)
{
	return __atomic_load_n(&m->state, __ATOMIC_RELAXED);
}

static inline bool cas_state(rg_mutex *m, int32_t old, int32_t new)
{
	return __atomic_compare_exchange_n(&m->state, &old, new, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED);
}

static void lock_slow(rg_mutex *m)
{
	int64_t wait_start = 0;
	bool starving = false, awoke = false;
	int iter = 0;
	int32_t old = load_state(m);

	for (;;) {
		/* Spin while the lock is held in normal mode and spinning may pay off. */
		if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED && rg_sync_canspin(iter)) {
			/* Set WOKEN so unlock doesn't wake another waiter meanwhile. */
			if (!awoke && !(old & MUTEX_WOKEN) && (old >> MUTEX_WAITER_SHIFT) != 0 &&
			    cas_state(m, old, old | MUTEX_WOKEN))
				awoke = true;
			rg_sync_dospin();
			iter++;
			old = load_state(m);
			continue;
		}
		int32_t new = old;
		if (!(old & MUTEX_STARVING))
			new |= MUTEX_LOCKED; /* don't grab a starving mutex: it's handed off */
		if (old & (MUTEX_LOCKED | MUTEX_STARVING))
			new += 1 << MUTEX_WAITER_SHIFT;
		if (starving && (old & MUTEX_LOCKED))
			new |= MUTEX_STARVING;
		if (awoke) {
			if (!(new & MUTEX_WOKEN))
				rg_fatal("sync: inconsistent mutex state");
			new &= ~MUTEX_WOKEN;
		}
		if (!cas_state(m, old, new)) {
			old = load_state(m);
			continue;
		}
		if (!(old & (MUTEX_LOCKED | MUTEX_STARVING)))
			return; /* locked it */

		/* A waiter that waited before goes to the front of the queue. */
		bool lifo = wait_start != 0;
		if (!wait_start)
			wait_start = rg_nanotime();
		rg_semacquire(&m->sema, lifo, WAIT_SYNC_MUTEX_LOCK);
		starving = starving || rg_nanotime() - wait_start > STARVATION_THRESHOLD_NS;
		old = load_state(m);
		if (old & MUTEX_STARVING) {
			/* Ownership was handed to us; the state still says otherwise. */
			if ((old & (MUTEX_LOCKED | MUTEX_WOKEN)) || (old >> MUTEX_WAITER_SHIFT) == 0)
				rg_fatal("sync: inconsistent mutex state");
			int32_t delta = MUTEX_LOCKED - (1 << MUTEX_WAITER_SHIFT);
			/* Leave starvation mode when we are the last waiter or waited briefly. */
			if (!starving || (old >> MUTEX_WAITER_SHIFT) == 1)
				delta -= MUTEX_STARVING;
			__atomic_fetch_add(&m->state, delta, __ATOMIC_ACQ_REL);
			return;
		}
		awoke = true;
		iter = 0;
	}
}

void rg_mutex_lock(rg_mutex *m)
{
	int32_t unlocked = 0;

	if (__atomic_compare_exchange_n(&m->state, &unlocked, MUTEX_LOCKED, false, __ATOMIC_ACQUIRE,
					__ATOMIC_RELAXED))
		return;
	lock_slow(m);
}

bool rg_mutex_trylock(rg_mutex *m)
{
	int32_t old = load_state(m);

	if (old & (MUTEX_LOCKED | MUTEX_STARVING))
		return false;
	return __atomic_compare_exchange_n(&m->state, &old, old | MUTEX_LOCKED, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void unlock_slow(rg_mutex *m, int32_t new)
{
	if (!((new + MUTEX_LOCKED) & MUTEX_LOCKED))
		rg_fatal("sync: unlock of unlocked mutex");
	if (new & MUTEX_STARVING) {
		/* Hand off to the first waiter, and yield so it runs now. */
		rg_semrelease(&m->sema, true);
		return;
	}
	int32_t old = new;
	for (;;) {
		/* Nobody to wake, or someone already woken or holding the lock. */
		if ((old >> MUTEX_WAITER_SHIFT) == 0 ||
		    (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)))
			return;
		new = (old - (1 << MUTEX_WAITER_SHIFT)) | MUTEX_WOKEN;
		if (cas_state(m, old, new)) {
			rg_semrelease(&m->sema, false);
			return;
		}
		old = load_state(m);
	}
}

void rg_mutex_unlock(rg_mutex *m)
{
	int32_t new = __atomic_sub_fetch(&m->state, MUTEX_LOCKED, __ATOMIC_RELEASE);

	if (new != 0)
		unlock_slow(m, new);
}
