/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only) */
/*
 * Kernel-fed P handoff: what bpf/mblock.bpf.c and runtime/kblock.c share.
 * One slot per M, in a BPF_F_MMAPABLE array that sysmon reads with plain
 * loads; a hash from thread id to (M address, slot) that sysmon fills.
 */
#ifndef RINGO_MBLOCK_H
#define RINGO_MBLOCK_H

#define RG_KBLOCK_SLOTS 256

struct rg_kblock_slot {
	__u64 blocked_since; /* BPF: switch-out time of a block (CLOCK_MONOTONIC), 0 on CPU */
	__u64 last_block;    /* BPF: the same, never cleared (benchmarks) */
	__u32 seq;	     /* BPF: blocks recorded so far */
	__u32 want_wake;     /* sysmon: post an event when this block ends (a P was lent) */
	__u32 tid;	     /* sysmon: the M's thread, for dumps */
	__u32 on_cpu;	     /* BPF: 1 from its switch-in to its switch-out */
	__u32 pad[8];
};

/* Per CPU, by number, as of its last context switch or wake-up. */
#define RG_KBLOCK_CPUS 1024
struct rg_kblock_cpus {
	__u8 idle[RG_KBLOCK_CPUS];	 /* running its idle task */
	__u8 nr_running[RG_KBLOCK_CPUS]; /* tasks on its run queue, the running one included */
};

/* Value of the thread id -> M hash. */
struct rg_kblock_m {
	__u64 m_addr; /* struct rg_m *, read with bpf_probe_read_user */
	__u32 slot;
	__u32 pad;
};

/* Ring buffer record: only its arrival matters (it wakes sysmon). */
struct rg_kblock_event {
	__u64 ts;
	__u32 slot;
	__u32 blocked; /* 1 a block began, 0 a lent-for block ended */
};

#endif /* RINGO_MBLOCK_H */
