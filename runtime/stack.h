/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Goroutine stacks: fixed-size slots carved from large MAP_NORESERVE
 * reservations, so a parked goroutine costs only the pages it touched.
 *
 * Slot layout (addresses grow upwards):
 *
 *	lo                                                              hi
 *	| guard page | canary | ... stack grows down ... | offset | G |
 *
 * The guard is a lightweight guard region (MADV_GUARD_INSTALL, Linux 6.13+,
 * costs no VMA), else an mprotect(PROT_NONE) page while the mapping budget
 * lasts, else nothing; the canary is checked at every switch either way.
 * The G descriptor lives at the slot's top, so it shares the stack's first
 * touched page. A random 64-byte-multiple offset spreads stack tops over
 * cache sets.
 */
#ifndef RINGO_STACK_H
#define RINGO_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"

struct rg_stack {
	uintptr_t lo;	 /* slot start (the guard page, if any) */
	uintptr_t hi;	 /* slot end */
	uintptr_t top;	 /* initial stack pointer bound (below the G) */
	uintptr_t limit; /* lowest usable address (above guard and canary) */
	bool guarded;	 /* a guard page protects lo; else a canary below limit */
};

struct rg_stack_chunk;

struct rg_stack_pool {
	struct rg_lock lock;
	size_t slot_size;
	struct rg_stack_chunk *chunks; /* every reservation, for teardown */
	uintptr_t cur, end;	       /* carving cursor in the newest chunk */
	int guard_mode;		       /* enum in stack.c */
	long mprotect_guards;	       /* guards that cost mappings */
	long mprotect_budget;
	int pidfd;		       /* ours, for batched process_madvise */
	int batch_left;		       /* slots left in the prepared batch */
	bool batch_guarded;
};

#define RG_STACK_CANARY 0x52494e474f5f5347ull /* "RINGO_SG" */

/* Configure the pool (slot size from RINGO_STACK_SIZE or the default). */
void rg_stack_pool_init(struct rg_stack_pool *pool);

/*
 * Carve a new slot. The G descriptor goes at the top: *g_out points to
 * g_size bytes of zeroed memory there. Returns 0 or -ENOMEM.
 */
int rg_stack_alloc(struct rg_stack_pool *pool, size_t g_size, struct rg_stack *st, void **g_out);

/* Unmap every chunk (the runtime is gone). */
void rg_stack_pool_destroy(struct rg_stack_pool *pool);

static inline bool rg_stack_canary_ok(const struct rg_stack *st)
{
	return st->guarded || *(const uint64_t *)(st->limit - sizeof(uint64_t)) == RG_STACK_CANARY;
}

/* True when addr lies in the guard page of some stack slot of this layout. */
bool rg_stack_in_guard(const struct rg_stack *st, uintptr_t addr);

#endif /* RINGO_STACK_H */
