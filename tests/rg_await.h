// SPDX-License-Identifier: BSD-2-Clause
/*
 * Waiting for another goroutine's state without sleeping: yield until a
 * condition holds (bounded), and let a goroutine publish its own G so that
 * others can watch it park (white-box: needs runtime.h).
 */
#ifndef RG_AWAIT_H
#define RG_AWAIT_H

#include "rg_test.h"
#include "runtime.h"

/* Yield until cond holds; false when it did not within AWAIT_NS (defined by the includer). */
#define AWAIT(cond)                                                                              \
	({                                                                                       \
		uint64_t dl_ = rt_now_ns() + AWAIT_NS;                                           \
		bool ok_;                                                                        \
		while (!(ok_ = (cond)) && rt_now_ns() < dl_)                                     \
			rg_yield();                                                              \
		ok_;                                                                             \
	})

/*
 * One of the runtime's own locks, taken by test code. Async preemption never
 * stops the runtime's text, but a test's text is the program's: a goroutine
 * preempted while it held a runtime lock would stall everyone who needs that
 * lock, and goroutines waiting for a spinlock (a channel's, a P's timers')
 * keep their Ms and Ps while they spin, so the holder may never run again
 * (close_wakes_every_waiter hung so once in CI and twice in ~240 loaded
 * runs). So tests hold such locks with preemption disabled, as the runtime
 * does.
 */
static inline void rt_lock(struct rg_lock *l)
{
	rg_preempt_disable();
	rg_lock(l);
}

static inline void rt_unlock(struct rg_lock *l)
{
	rg_unlock(l);
	rg_preempt_enable();
}

static inline void rt_spin_lock(struct rg_spinlock *l)
{
	rg_preempt_disable();
	rg_spin_lock(l);
}

static inline void rt_spin_unlock(struct rg_spinlock *l)
{
	rg_spin_unlock(l);
	rg_preempt_enable();
}

#define RT_LOCK(l) _Generic((l), struct rg_spinlock * : rt_spin_lock, default : rt_lock)(l)
#define RT_UNLOCK(l) _Generic((l), struct rg_spinlock * : rt_spin_unlock, default : rt_unlock)(l)

/* A goroutine's G, published by the goroutine itself so that others can watch it park. */
typedef struct rg_g *_Atomic gslot;

static inline void publish_self(gslot *slot)
{
	atomic_store(slot, rg_getg());
}

#endif /* RG_AWAIT_H */
