/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Runtime semaphores keyed by address (Go's sema.go): the parking primitive
 * under rg_mutex, rg_wg and the rest of sync. Waiters live in a table of 251
 * locked roots hashed by address, so a sync object is only a word.
 */
#ifndef RINGO_SEMA_H
#define RINGO_SEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime.h"

/* Wait until *addr > 0, then decrement it. lifo queues at the front (a waiter that waited before). */
void rg_semacquire(uint32_t *addr, bool lifo, enum rg_wait_reason reason);

/* Increment *addr and wake one waiter. handoff passes the count straight to it and yields to it. */
void rg_semrelease(uint32_t *addr, bool handoff);

/* Active spinning for sync.Mutex: worth it only with idle CPUs and nothing else to run. */
bool rg_sync_canspin(int iter);
void rg_sync_dospin(void);

#endif /* RINGO_SEMA_H */
