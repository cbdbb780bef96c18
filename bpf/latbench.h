/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only) */
/*
 * ringo-latbench: what bpf/latbench.bpf.c and tools/latbench.c share.
 * Fixed-width types only (read by BPF C and by user space).
 */
#ifndef RINGO_LATBENCH_H
#define RINGO_LATBENCH_H

/* Workloads (the BPF side only counts samples while one of them runs). */
enum {
	LB_W_NONE,
	LB_W_GSAME,
	LB_W_GCROSS,
	LB_W_MWAKE,
	LB_W_TIMER,
	LB_W_NOP,
	LB_W_RECV,
	LB_W_COUNT,
};

/* Measurements (several per workload at most). */
enum {
	LB_M_GSAME,	  /* g_ready -> g_start, same P */
	LB_M_GCROSS,	  /* g_ready -> g_start, another P */
	LB_M_MWAKE_FUTEX, /* m_unpark (futex wake) -> the M on a CPU */
	LB_M_MWAKE_RING,  /* wake NOP submitted -> the ring sleeper on a CPU */
	LB_M_TIMER,	  /* deadline -> g_start */
	LB_M_NOP,	  /* io_submit -> io_complete, an inline-completing op */
	LB_M_RECV,	  /* io_submit -> io_complete, loopback TCP recv */
	LB_M_COUNT,
};

/* One sample, through the ring buffer. kernel: the kernel's share (see the BPF program). */
struct lb_sample {
	__u32 w;
	__u32 m;
	__u64 total_ns;
	__u64 kernel_ns;
};

/* The io_uring user_data of the runtime's wake NOP (iouring/uring.c, TAG_WAKE). */
#define LB_TAG_WAKE 1

#endif /* RINGO_LATBENCH_H */
