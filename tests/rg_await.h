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

/* A goroutine's G, published by the goroutine itself so that others can watch it park. */
typedef struct rg_g *_Atomic gslot;

static inline void publish_self(gslot *slot)
{
	atomic_store(slot, rg_getg());
}

#endif /* RG_AWAIT_H */
