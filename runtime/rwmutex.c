// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_rwmutex: Go's sync.RWMutex. reader_count counts readers; a writer
 * subtracts MAX_READERS from it, which makes it negative so arriving readers
 * queue on reader_sem, and waits on writer_sem for the readers that were
 * already in (reader_wait). Writers exclude each other with w.
 */
#include "ringo.h"

#include "fatal.h"
#include "runtime.h"
#include "sema.h"

#define MAX_READERS (1 << 30)

void rg_rwmutex_rlock(rg_rwmutex *rw)
{
	if (__atomic_add_fetch(&rw->reader_count, 1, __ATOMIC_ACQ_REL) < 0)
		rg_semacquire(&rw->reader_sem, false, WAIT_SYNC_RWMUTEX_RLOCK); /* a writer is in */
}

bool rg_rwmutex_tryrlock(rg_rwmutex *rw)
{
	int32_t c = __atomic_load_n(&rw->reader_count, __ATOMIC_RELAXED);

	for (;;) {
		if (c < 0)
			return false;
		if (__atomic_compare_exchange_n(&rw->reader_count, &c, c + 1, true, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return true;
	}
}

void rg_rwmutex_runlock(rg_rwmutex *rw)
{
	int32_t r = __atomic_sub_fetch(&rw->reader_count, 1, __ATOMIC_ACQ_REL);

	if (r >= 0)
		return;
	if (r + 1 == 0 || r + 1 == -MAX_READERS)
		rg_fatal("sync: RUnlock of unlocked RWMutex");
	/* A writer waits: the last departing reader lets it in. */
	if (__atomic_sub_fetch(&rw->reader_wait, 1, __ATOMIC_ACQ_REL) == 0)
		rg_semrelease(&rw->writer_sem, false);
}

void rg_rwmutex_lock(rg_rwmutex *rw)
{
	rg_mutex_lock(&rw->w);
	/* Announce the writer; r is the number of readers still inside. */
	int32_t r = __atomic_add_fetch(&rw->reader_count, -MAX_READERS, __ATOMIC_ACQ_REL) +
		    MAX_READERS;
	if (r != 0 && __atomic_add_fetch(&rw->reader_wait, r, __ATOMIC_ACQ_REL) != 0)
		rg_semacquire(&rw->writer_sem, false, WAIT_SYNC_RWMUTEX_LOCK);
}

bool rg_rwmutex_trylock(rg_rwmutex *rw)
{
	if (!rg_mutex_trylock(&rw->w))
		return false;
	int32_t zero = 0;
	if (!__atomic_compare_exchange_n(&rw->reader_count, &zero, -MAX_READERS, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
		rg_mutex_unlock(&rw->w);
		return false;
	}
	return true;
}

void rg_rwmutex_unlock(rg_rwmutex *rw)
{
	/* Let readers in again, and wake the ones that queued meanwhile. */
	int32_t r = __atomic_add_fetch(&rw->reader_count, MAX_READERS, __ATOMIC_ACQ_REL);

	if (r >= MAX_READERS)
		rg_fatal("sync: Unlock of unlocked RWMutex");
	for (int32_t i = 0; i < r; i++)
		rg_semrelease(&rw->reader_sem, false);
	rg_mutex_unlock(&rw->w);
}
