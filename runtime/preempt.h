/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Preemption of long-running goroutines (preempt.c; sysmon.c asks for it).
 * docs/design.md, "Preemption", has the design and its pitfalls.
 */
#ifndef RINGO_PREEMPT_H
#define RINGO_PREEMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime.h"

/* Settings of the running rg_run, fixed by rg_preempt_init. */
struct rg_preempt_conf {
	bool async; /* signals: not RINGO_ASYNCPREEMPT=0, not TSan, a usable arch and text map */
	bool pin;   /* RINGO_PREEMPT_PIN=1: a preempted goroutine resumes on its M */
	int signo;  /* SIGURG */
	int64_t slice_ns; /* RINGO_TIMESLICE, default 10 ms, at least 50 us */
};
extern struct rg_preempt_conf rg_preempt_conf;

/* Read the environment, install the handler and map the text (first call). From rg_run. */
void rg_preempt_init(struct rg_sched *s);

/*
 * sysmon: m's goroutine and P are flagged; signal m unless a signal is
 * already on its way (or went missing long ago).
 */
void rg_preempt_signal(struct rg_m *m, int64_t now);

/*
 * Chaos mode for tests: sysmon preempts every running goroutine at random
 * intervals of up to max_ns, whether or not anything waits (0: off). Also
 * RINGO_PREEMPT_CHAOS=<max microseconds>.
 */
void rg_preempt_set_chaos(int64_t max_ns);
int64_t rg_preempt_chaos(void);

/*
 * A synchronous safe point for a runtime call made by the program: yields
 * when the caller's goroutine has a request, preemption is enabled and ra
 * (the call's return address) lies in the program's own text, so that no
 * runtime lock can be held.
 */
void rg_preempt_point(uintptr_t ra);

/* The calling thread's M (sched.c); see rg_getm for why most code calls that instead. */
extern __thread struct rg_m *rg_tls_m __attribute__((tls_model("initial-exec")));

/*
 * This thread's hint that its P may have a preemption request: sysmon sets
 * it (through m->preempt_hint) after the P's request, on the M that owns
 * the P. The P's word stays the request; the hint only saves a polling loop
 * the two dependent loads that reach it. The thread sets it itself when it
 * holds back a wake-up for its P's queue (sched.c, rg_help_poll).
 */
extern __thread _Atomic uint32_t rg_tls_preempt_hint __attribute__((tls_model("initial-exec")));

/* rg_preempt_poll's rare half: take the hint, act on the P's request (or its help request). */
void rg_preempt_poll_slow(uintptr_t ra);

/*
 * A safe point for a failing non-blocking call of the program (a polling
 * loop spends most of its time inside ringo, where no signal may stop it):
 * one thread-local load when no preemption is pending (three, through the M
 * and the P, cost a failing rg_chan_tryrecv 4.3 ns instead of 2.8). Must be
 * inlined into the public function the program called, for the return
 * address.
 */
__attribute__((always_inline)) static inline void rg_preempt_poll(void)
{
	if (__builtin_expect(atomic_load_explicit(&rg_tls_preempt_hint, memory_order_relaxed), 0))
		rg_preempt_poll_slow((uintptr_t)__builtin_return_address(0));
}

/*
 * Called by the arch trampoline with every register saved (general ones at
 * saved); pc is where the goroutine resumes.
 */
void rg_preempt_async(uintptr_t pc, void *saved);

/* True when pc lies in ringo's own (never preempted) code. */
bool rg_preempt_in_runtime(uintptr_t pc);

/* Counters since the process started (relaxed; for tests and benchmarks). */
struct rg_preempt_stats {
	uint64_t signals;	/* preemption signals taken by Ms with a goroutine */
	uint64_t async;		/* goroutines stopped through the trampoline */
	uint64_t sync;		/* ... at a synchronous safe point (rg_preempt_enable, rg_go) */
	uint64_t deferred;	/* refused: preemption disabled */
	uint64_t unsafe_pc;	/* refused: pc outside the program's own text */
	uint64_t foreign_frame; /* refused: a library frame or call in progress */
	uint64_t no_stack;	/* refused: not enough stack below sp */
	uint64_t masked;	/* refused: signals blocked (a handler is running) */
	uint64_t inherit;	/* runnext goroutines denied an expired slice */
	uint64_t lent;		/* Ps lent while a goroutine was stuck in unsafe code */
};
void rg_preempt_get_stats(struct rg_preempt_stats *out);

/* The pcs of the last (up to) n asynchronous preemptions, newest last; returns how many. */
#define RG_PREEMPT_PC_RING 256
size_t rg_preempt_recent_pcs(uintptr_t *out, size_t n);

/*
 * Tests: called by every asynchronous preemption on the goroutine's stack,
 * under the trampoline's frame, before it parks (preempt_test unwinds from
 * there through the trampoline's CFI).
 */
extern void (*_Atomic rg_preempt_async_hook)(void);

/* Count a runnext goroutine sent to the global queue for an expired slice (sched.c). */
void rg_preempt_count_inherit(void);
/* Count a P lent by sysmon (sysmon.c). */
void rg_preempt_count_lend(void);

#endif /* RINGO_PREEMPT_H */
