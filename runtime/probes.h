/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * USDT probes, provider "ringo". A probe that nobody traces is a single nop;
 * bpftrace, perf and libbpf attach to them by name (see tools/).
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
 * Semaphore-gated (runtime/schedstats.c; each costs nothing until traced):
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

#if defined(__has_include) && __has_include(<sys/sdt.h>) && !defined(RINGO_NO_PROBES)
#define STAP_SDT_ARG_CONSTRAINT nr
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>
#define RG_PROBE(name, ...) STAP_PROBEV(ringo, name, ##__VA_ARGS__)
#else
#define RG_PROBE(name, ...) ((void)0)
#endif

#endif /* RINGO_PROBES_H */
