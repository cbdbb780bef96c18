/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only) */
/*
 * Codes carried by ringo's USDT probes (provider "ringo"), shared by the
 * runtime (runtime/schedstats.c checks them against its enums at compile
 * time), the BPF programs (bpf/NAME.bpf.c), the tools (tools/) and the bpftrace
 * scripts (tools/bpftrace/, which #include this file). Plain macros only, so
 * it reads the same in C, in BPF C and in bpftrace.
 *
 * Probe argument lists (docs/design.md, "Observability with eBPF"):
 *   g_create(goid, parent_goid, fn)    g_start(goid, p, m)
 *   g_park(goid, reason, obj)          g_ready(goid, waker_goid, p)
 *   g_yield(goid)                      g_preempt(goid, pc, kind)
 *   g_exit(goid)
 *   syscall_enter(goid, m)             syscall_exit(goid, m)
 *   p_handoff(p, from_m, to_m)
 *   m_start(m, tid)  m_exit(m)  m_park(m)  m_unpark(m)  m_spin(m)
 *   steal(thief_p, victim_p, n)
 *   io_submit(goid, user_data, opcode) io_complete(goid, user_data, res)
 * Semaphore-gated, fired by sysmon every RINGO_SCHEDSTATS_PERIOD_MS while
 * traced, in this order (sched_stats last: it closes one snapshot). At most 6
 * arguments each: bpftrace 0.17 reads arg0..arg5 only.
 *   sched_p(p, status, runqsize, schedtick, syscalltick, m)      every P
 *   sched_pdetail(p, gfreecnt, timerslen)                        every P
 *   sched_m(m, p, curg, flags, lockedg, tid)                     every M
 *   sched_g(goid, status, wait_reason, m, lockedm)   every G, every 10th snapshot
 *   sched_detail(nmidlelocked, sysmonwait)
 *   sched_stats(gomaxprocs, idleprocs, threads, spinningthreads, idlethreads, runqueue)
 * Each fires only while it is traced itself (its own semaphore), and the
 * snapshot is only taken while sched_stats is traced.
 * -1 means "none" for p, m, curg, lockedg and lockedm.
 */
#ifndef RINGO_EVENTS_H
#define RINGO_EVENTS_H

/* How often sysmon fires the sched_* probes while one of them is traced. */
#define RINGO_SCHEDSTATS_PERIOD_MS 10
/* sched_g fires on every Nth snapshot only (goroutines may be many). */
#define RINGO_SCHEDSTATS_G_EVERY 10

/* g_park's reason: enum rg_wait_reason (runtime/runtime.h). */
#define RINGO_WAIT_NONE 0
#define RINGO_WAIT_SEMACQUIRE 1
#define RINGO_WAIT_SYNC_MUTEX_LOCK 2
#define RINGO_WAIT_WAITGROUP_WAIT 3
#define RINGO_WAIT_PARK_TEST 4
#define RINGO_WAIT_SYNC_RWMUTEX_RLOCK 5
#define RINGO_WAIT_SYNC_RWMUTEX_LOCK 6
#define RINGO_WAIT_SYNC_COND_WAIT 7
#define RINGO_WAIT_SLEEP 8
#define RINGO_WAIT_CHAN_SEND 9
#define RINGO_WAIT_CHAN_RECV 10
#define RINGO_WAIT_CHAN_SEND_NIL 11
#define RINGO_WAIT_CHAN_RECV_NIL 12
#define RINGO_WAIT_SELECT 13
#define RINGO_WAIT_SELECT_NO_CASES 14
#define RINGO_WAIT_IO 15
#define RINGO_WAIT_REASON_COUNT 16

/* Go's waitReason strings, indexed by the codes above. */
#define RINGO_WAIT_REASON_STRINGS                                                             \
	{                                                                                     \
		"", "semacquire", "sync.Mutex.Lock", "sync.WaitGroup.Wait", "park (test)",    \
			"sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.Cond.Wait", "sleep", \
			"chan send", "chan receive", "chan send (nil chan)",                  \
			"chan receive (nil chan)", "select", "select (no cases)", "IO wait"   \
	}

/* g_preempt's kind. */
#define RINGO_PREEMPT_SYNC 0  /* at a safe point: rg_preempt_enable, the scheduler */
#define RINGO_PREEMPT_ASYNC 1 /* by signal */

/* Goroutine status (sched_g): Go's _G* values. */
#define RINGO_G_IDLE 0
#define RINGO_G_RUNNABLE 1
#define RINGO_G_RUNNING 2
#define RINGO_G_SYSCALL 3
#define RINGO_G_WAITING 4
#define RINGO_G_DEAD 6

/* P status (sched_p): Go's _P* values. */
#define RINGO_P_IDLE 0
#define RINGO_P_RUNNING 1
#define RINGO_P_SYSCALL 2
#define RINGO_P_DEAD 4

/* sched_m's flags. */
#define RINGO_M_SPINNING 1
#define RINGO_M_BLOCKED 2 /* idle: parked on its note */

/* Event types the BPF programs send to the tools through their ring buffers. */
#define RINGO_EV_SCHED_P 1
#define RINGO_EV_SCHED_M 2
#define RINGO_EV_SCHED_G 3
#define RINGO_EV_SCHED_STATS 4
#define RINGO_EV_SCHED_PDETAIL 5
#define RINGO_EV_SCHED_DETAIL 6

#endif /* RINGO_EVENTS_H */
