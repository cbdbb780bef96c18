// SPDX-License-Identifier: BSD-2-Clause
#include "lock.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arch.h"
#include "fatal.h"
#include "preempt.h"
#include "runtime.h"

enum { UNLOCKED = 0, LOCKED = 1, SLEEPING = 2 };

/* Spin budget before sleeping, as Go's lock_futex.go: a few rounds of PAUSE, then one yield. */
enum { ACTIVE_SPIN = 4, ACTIVE_SPIN_CNT = 30 };

void rg_futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns)
{
	struct timespec ts, *tsp = NULL;

	if (ns >= 0) {
		ts.tv_sec = ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		tsp = &ts;
	}
	/* EINTR, EAGAIN and ETIMEDOUT all just mean "look again". The runtime
	 * runs these on goroutines' behalf: their errno must not change. */
	int saved = errno;
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
	errno = saved;
}

void rg_futex_wake(_Atomic uint32_t *addr, int n)
{
	int saved = errno;
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
	errno = saved;
}

void rg_osyield(void)
{
	int saved = errno;
	sched_yield();
	errno = saved;
}

void rg_backoff_wait(unsigned pauses)
{
	for (unsigned i = 0; i < pauses; i++)
		rg_arch_relax();
}

/* About 65 µs of back-off (3,456 PAUSEs) before a waiter starts yielding the CPU. */
#define SPIN_ROUNDS 8

void rg_spin_lock_slow(struct rg_spinlock *l)
{
	unsigned round = 0;

	for (;;) {
		/* Test before test-and-set: wait on a shared line, not on writes. */
		while (atomic_load_explicit(&l->v, memory_order_relaxed)) {
			if (round < SPIN_ROUNDS)
				rg_backoff(&round);
			else
				rg_osyield(); /* the holder may have lost its CPU */
		}
		uint32_t zero = 0;
		if (atomic_compare_exchange_weak_explicit(&l->v, &zero, 1, memory_order_acquire,
							  memory_order_relaxed))
			return;
	}
}

void rg_spin_wait_free_slow(struct rg_spinlock *l)
{
	unsigned round = 0;

	while (atomic_load_explicit(&l->v, memory_order_acquire)) {
		if (round < SPIN_ROUNDS)
			rg_backoff(&round);
		else
			rg_osyield();
	}
}

void rg_lock(struct rg_lock *l)
{
	uint32_t v = UNLOCKED;

	if (atomic_compare_exchange_strong_explicit(&l->key, &v, LOCKED, memory_order_acquire,
						    memory_order_relaxed))
		return;

	/* Remember whether someone sleeps, so unlock keeps waking them. */
	uint32_t wait = atomic_exchange_explicit(&l->key, LOCKED, memory_order_acquire);
	if (wait == UNLOCKED)
		return;

	for (;;) {
		for (int i = 0; i < ACTIVE_SPIN; i++) {
			while (atomic_load_explicit(&l->key, memory_order_relaxed) == UNLOCKED) {
				v = UNLOCKED;
				if (atomic_compare_exchange_weak_explicit(&l->key, &v, wait,
									  memory_order_acquire,
									  memory_order_relaxed))
					return;
			}
			for (int j = 0; j < ACTIVE_SPIN_CNT; j++)
				rg_arch_relax();
		}
		rg_osyield();
		while (atomic_load_explicit(&l->key, memory_order_relaxed) == UNLOCKED) {
			v = UNLOCKED;
			if (atomic_compare_exchange_weak_explicit(&l->key, &v, wait, memory_order_acquire,
								  memory_order_relaxed))
				return;
		}
		v = atomic_exchange_explicit(&l->key, SLEEPING, memory_order_acquire);
		if (v == UNLOCKED)
			return;
		wait = SLEEPING;
		/*
		 * The holder runs and lets go soon: as Go's sysmon leaves a P
		 * whose M waits on a runtime lock, the kernel-fed handoff
		 * lends no P for this sleep (on a busy server, sq_lock's
		 * waiters drew lends that only added threads and switches).
		 */
		struct rg_m *m = rg_tls_m;
		if (m)
			atomic_store_explicit(&m->lock_wait, true, memory_order_relaxed);
		rg_futex_wait(&l->key, SLEEPING, -1);
		if (m)
			atomic_store_explicit(&m->lock_wait, false, memory_order_relaxed);
	}
}

void rg_unlock(struct rg_lock *l)
{
	uint32_t v = atomic_exchange_explicit(&l->key, UNLOCKED, memory_order_release);

	if (v == UNLOCKED)
		rg_fatal("unlock of unlocked runtime lock");
	if (v == SLEEPING)
		rg_futex_wake(&l->key, 1);
}

void rg_note_wakeup(struct rg_note *n)
{
	uint32_t old = atomic_exchange_explicit(&n->key, 1, memory_order_release);

	if (old != 0)
		rg_fatal("note_wakeup: double wakeup");
	rg_futex_wake(&n->key, 1);
}

void rg_note_sleep(struct rg_note *n)
{
	while (atomic_load_explicit(&n->key, memory_order_acquire) == 0)
		rg_futex_wait(&n->key, 0, -1);
}

bool rg_note_sleep_ns(struct rg_note *n, int64_t ns)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t deadline = now.tv_sec * 1000000000LL + now.tv_nsec + ns;

	while (atomic_load_explicit(&n->key, memory_order_acquire) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t left = deadline - (now.tv_sec * 1000000000LL + now.tv_nsec);
		if (left <= 0)
			return false;
		rg_futex_wait(&n->key, 0, left);
	}
	return true;
}
