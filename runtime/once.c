// SPDX-License-Identifier: BSD-2-Clause
/* rg_once: Go's sync.Once. The fast path, one acquire load, is inline in ringo.h. */
#include "ringo.h"

void rg_once_do_slow(rg_once *once, void (*fn)(void *), void *arg)
{
	/* Slow path: every caller must wait until fn has returned, so a CAS
	 * on done would not do (the loser would return before fn finished). */
	rg_mutex_lock(&once->m);
	if (!once->done) {
		fn(arg);
		__atomic_store_n(&once->done, 1, __ATOMIC_RELEASE);
	}
	rg_mutex_unlock(&once->m);
}
