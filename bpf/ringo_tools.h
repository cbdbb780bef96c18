/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only) */
/* Records shared by the BPF programs (bpf/) and the tools (tools/). Fixed-width types only. */
#ifndef RINGO_TOOLS_H
#define RINGO_TOOLS_H

#define RINGO_MAX_SLOTS 27 /* log2 slots: up to 2^26 units (67 s in us) */

/* schedtrace: one record per sched_* probe hit (type RINGO_EV_SCHED_*), args in probe order. */
struct ringo_sched_event {
	__u32 type;
	__u32 pid;
	__s64 a[8];
};

/* A histogram; runqlat keys it by P or M (or 0), iolat by phase, offcpu by held-P. */
struct ringo_hist {
	__u32 slots[RINGO_MAX_SLOTS];
};

struct ringo_hist_key {
	__u32 pid;
	__s32 id; /* P or M id, phase, ...; -1 when not split */
};

/* offcpu: total off-CPU time per (pid, M, goroutine, held P, blocked). */
struct ringo_offcpu_key {
	__u32 pid;
	__s32 m;
	__s64 goid;    /* 0: on g0 (the scheduler), no goroutine */
	__s32 held_p;  /* 1 if the M held a P when it left the CPU */
	__s32 blocked; /* 1 if it blocked (slept), 0 if preempted */
};

struct ringo_offcpu_val {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
};

/* iolat phases. */
#define RINGO_IO_QUEUE 0  /* io_submit probe -> kernel io_uring_submit_req */
#define RINGO_IO_KERNEL 1 /* io_uring_submit_req -> io_uring_complete */
#define RINGO_IO_REAP 2	  /* io_uring_complete -> io_complete probe (goroutine back) */
#define RINGO_IO_TOTAL 3  /* io_submit -> io_complete */
#define RINGO_IO_PHASES 4

#endif /* RINGO_TOOLS_H */
