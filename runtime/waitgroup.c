// SPDX-License-Identifier: BSD-2-Clause
/* rg_wg: Go's sync.WaitGroup. One 64-bit word holds the counter and the number of waiters. */
#include "ringo.h"

#include "fatal.h"
#include "runtime.h"
#include "sema.h"

void rg_wg_add(rg_wg *wg, int delta)
{
	uint64_t state = __atomic_add_fetch(&wg->state, (uint64_t)(int64_t)delta << 32,
					    __ATOMIC_SEQ_CST);
	int32_t v = (int32_t)(state >> 32);
	uint32_t w = (uint32_t)state;

	if (v < 0)
		rg_fatal("sync: negative WaitGroup counter");
	if (w != 0 && delta > 0 && v == delta)
		rg_fatal("sync: WaitGroup misuse: Add called concurrently with Wait");
	if (v > 0 || w == 0)
		return;
	/* Counter is 0 with waiters: nobody may change the state now but us. */
	if (__atomic_load_n(&wg->state, __ATOMIC_SEQ_CST) != state)
		rg_fatal("sync: WaitGroup misuse: Add called concurrently with Wait");
	__atomic_store_n(&wg->state, 0, __ATOMIC_RELAXED);
	for (; w > 0; w--)
		rg_semrelease(&wg->sema, false);
}

void rg_wg_done(rg_wg *wg)
{
	rg_wg_add(wg, -1);
}

void rg_wg_wait_slow(rg_wg *wg)
{
	uint64_t state = __atomic_load_n(&wg->state, __ATOMIC_SEQ_CST);

	for (;;) {
		if ((int32_t)(state >> 32) == 0)
			return;
		if (__atomic_compare_exchange_n(&wg->state, &state, state + 1, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			rg_semacquire(&wg->sema, false, WAIT_WAITGROUP_WAIT);
			if (__atomic_load_n(&wg->state, __ATOMIC_SEQ_CST) != 0)
				rg_fatal("sync: WaitGroup is reused before previous Wait has returned");
			return;
		}
	}
}
