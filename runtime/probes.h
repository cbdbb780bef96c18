/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * USDT probes, provider "ringo". Every probe has a semaphore: one that
 * nobody traces is a load and a not-taken branch around a nop, and its
 * arguments are not even computed (they cost 2% of a channel hand-off
 * before). bpftrace, perf and libbpf attach to them by name (see tools/);
 * attaching raises the semaphore, in a running process too.
 * Integer arguments only: libbpf 1.1 cannot decode SIB operands, hence "nr".
 * At most 6 arguments: bpftrace 0.17 reads arg0..arg5 only. The codes some
 * of them carry (wait reasons, preemption kinds, statuses) are in
 * bpf/ringo_events.h, shared with the BPF programs and the bpftrace scripts.
 *
 *   g_create(goid, parent_goid, fn)     rg_go: a new goroutine, runnable
 *   g_start(goid, p, m)                 a goroutine starts running on p/m
 *   g_park(goid, reason, obj)           parks; reason: RINGO_WAIT_*, obj: what it waits on
 *   g_ready(goid, waker_goid, p)        runnable again (waker 0: the poller, a timer)
 *   g_yield(goid)                       yields (rg_yield, rg_goyield)
 *   g_preempt(goid, pc, kind)           preempted at pc; kind: RINGO_PREEMPT_*
 *   g_exit(goid)                        returned
 *   syscall_enter(goid, m)              rg_syscall_enter: the P is left behind
 *   syscall_exit(goid, m)               rg_syscall_exit
 *   p_handoff(p, from_m, to_m)          sysmon retook p from a system call (-1: unknown)
 *   m_start(m, tid)  m_exit(m)          a thread starts or ends: tid joins the kernel's view
 *   m_park(m)  m_unpark(m)  m_spin(m)   idle, woken, looking for work
 *   steal(thief_p, victim_p, n)         n goroutines stolen
 *   io_submit(goid, user_data, opcode)  io_complete(goid, user_data, res)
 *
 * Snapshots (runtime/schedstats.c, which looks at their semaphores itself):
 * while ringo:sched_stats is traced, sysmon fires every 10 ms, in this order,
 *   sched_p(p, status, runqsize, schedtick, syscalltick, m)   every P
 *   sched_pdetail(p, gfreecnt, timerslen)                     every P (if traced)
 *   sched_m(m, p, curg, flags, lockedg, tid)                  every M (if traced)
 *   sched_g(goid, status, wait_reason, m, lockedm)            every G, 1 snapshot in 10
 *   sched_detail(nmidlelocked, sysmonwait)                    (if traced)
 *   sched_stats(gomaxprocs, idleprocs, threads, spinningthreads, idlethreads, runqueue)
 * with Go's schedtrace meanings (docs/design.md, "Observability with eBPF").
 */
#ifndef RINGO_PROBES_H
#define RINGO_PROBES_H

/* Every probe's name, for the semaphores (defined in probes.c, also without probes). */
/* clang-format off */
#define RG_PROBES(X)                                                                             \
	X(g_create) X(g_start) X(g_park) X(g_ready) X(g_yield) X(g_preempt) X(g_exit)             \
	X(syscall_enter) X(syscall_exit) X(p_handoff) X(m_start) X(m_exit) X(m_park)              \
	X(m_unpark) X(m_spin) X(steal) X(io_submit) X(io_complete) X(sched_stats) X(sched_p)      \
	X(sched_pdetail) X(sched_m) X(sched_g) X(sched_detail)
/* clang-format on */
#define RG_PROBE_SEMAPHORE_DECL(name) extern volatile unsigned short ringo_##name##_semaphore;
RG_PROBES(RG_PROBE_SEMAPHORE_DECL)

#if defined(__has_include) && __has_include(<sys/sdt.h>) && !defined(RINGO_NO_PROBES)
#define STAP_SDT_ARG_CONSTRAINT nr
#define SDT_USE_VARIADIC 1
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#define RG_PROBE_ENABLED(name) __builtin_expect(ringo_##name##_semaphore != 0, 0)
#define RG_PROBE(name, ...)                                      \
	do {                                                     \
		if (RG_PROBE_ENABLED(name))                      \
			STAP_PROBEV(ringo, name, ##__VA_ARGS__); \
	} while (0)
#else
#define RG_PROBE(name, ...) ((void)0)
#endif

#endif /* RINGO_PROBES_H */
