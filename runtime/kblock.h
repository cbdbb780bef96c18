/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Kernel-fed P handoff (docs/design.md, "Kernel-fed P handoff"): a BPF
 * program on sched_switch (bpf/mblock.bpf.c) tells sysmon, without a system
 * call, which Ms blocked in the kernel while running a goroutine on a P;
 * sysmon lends a P so the goroutines queued there run meanwhile. Loaded by
 * a thread of its own on the first sysmon start, when the process may load
 * BPF; RINGO_BPF=0 keeps it off. Without -Dbpf every call is a stub.
 */
#ifndef RINGO_KBLOCK_H
#define RINGO_KBLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

enum rg_kblock_state {
	RG_KBLOCK_OFF = 0,  /* disabled, unavailable, or failed to load */
	RG_KBLOCK_LOADING,  /* undecided: not started yet, or the loader is at work */
	RG_KBLOCK_ON,
};

/*
 * A block is lent for once this old (Go's sysmon wants a syscall to last a
 * 20 us tick): a contended lock or a short fault ends before a lent P's M
 * could even start.
 */
#define RG_KBLOCK_MIN_NS 20000LL

/* An M of the caller's scheduler blocked in the kernel. */
struct rg_kblock_report {
	pid_t tid;
	uint32_t slot;
	int64_t since; /* CLOCK_MONOTONIC ns, as rg_nanotime */
};

/* rg_sysmon_start: begin loading (once per process) unless disabled. */
void rg_kblock_start(void);
enum rg_kblock_state rg_kblock_state(void);
/* Why it is off ("RINGO_BPF=0", "built without BPF", libbpf's error...). */
const char *rg_kblock_why(void);

/*
 * sysmon: register s's Ms with the BPF program (a walk of allm under
 * s->lock only when Ms came or went), then list those blocked now.
 * Returns how many reports were written (at most max).
 */
int rg_kblock_scan(struct rg_sched *s, struct rg_kblock_report *out, int max);
/* Is the block report (slot, since) still current: that M not back on a CPU? */
bool rg_kblock_blocked(uint32_t slot, int64_t since);
/* sysmon: post a ring buffer record when the M in slot runs again. */
void rg_kblock_want_wake(uint32_t slot);
/* sysmon's exit: forget s's Ms. */
void rg_kblock_forget(struct rg_sched *s);

/*
 * sysmon's sleep while the program is on (not in deep sleep): wait in epoll
 * for a BPF record or rg_kblock_kick, at most ns. False when off (the
 * caller sleeps as usual).
 */
bool rg_kblock_sleep(int64_t ns);
/* End such a sleep (rg_sysmon_wake). */
void rg_kblock_kick(void);
/*
 * Does some CPU run its idle task now (machine-wide, as the program last
 * saw it; true when the program is off)? sched.c wakes an M for work its
 * running Ms will get to only then (rg_wakep_local).
 */
bool rg_kblock_cpu_idle(void);
/* Does another task wait for CPU cpu (its run queue, as the program last saw it)? */
bool rg_kblock_cpu_contended(int cpu);
/* Is the M with this kblock_slot and thread on a CPU now, not switched out (true when unknown)? */
bool rg_kblock_on_cpu(int32_t kslot, pid_t tid);

/* Tests and benchmarks. */
struct rg_kblock_stats {
	uint64_t events; /* ring buffer records read by sysmon */
	uint64_t lends;	 /* Ps lent for a blocked M */
	uint64_t early;	 /* of those, lent before the block came of age (the M waited) */
	uint64_t withdrawn; /* of those, given back unused: the block ended first */
	uint64_t wakes;	 /* sysmon woken from epoll by a record */
	int64_t last_lend; /* when sysmon looked, woken, before its last lend (rg_nanotime) */
	bool at_entry;	   /* blocks seen at schedule()'s entry (kernel 6.16+), not at the switch */
};
void rg_kblock_get_stats(struct rg_kblock_stats *out);
void rg_kblock_count_lend(int64_t now, bool early);
void rg_kblock_count_withdrawn(void);
/* The program's run time and count (kernel.bpf_stats_enabled); false when off. */
bool rg_kblock_prog_stats(uint64_t *run_ns, uint64_t *run_cnt);
/* Is thread tid registered with the BPF program? */
bool rg_kblock_tracked(pid_t tid);
/* When thread tid last blocked running a goroutine on a P (0: never, or untracked). */
int64_t rg_kblock_last_block(pid_t tid);

#endif /* RINGO_KBLOCK_H */
