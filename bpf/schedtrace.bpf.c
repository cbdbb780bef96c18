// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/*
 * ringo-schedtrace: forwards the semaphore-gated sched_* probes (fired by the
 * runtime's sysmon every RINGO_SCHEDSTATS_PERIOD_MS while attached) to user
 * space, one ring buffer record per probe hit; sched_stats closes a snapshot.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "ringo_events.h"
#include "ringo_tools.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

__u64 lost = 0;

static __always_inline int emit(__u32 type, long a0, long a1, long a2, long a3, long a4, long a5,
				long a6, long a7)
{
	struct ringo_sched_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&lost, 1);
		return 0;
	}
	e->type = type;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->a[0] = a0;
	e->a[1] = a1;
	e->a[2] = a2;
	e->a[3] = a3;
	e->a[4] = a4;
	e->a[5] = a5;
	e->a[6] = a6;
	e->a[7] = a7;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(sched_p, long p, long status, long runqsize, long schedtick, long syscalltick, long m)
{
	return emit(RINGO_EV_SCHED_P, p, status, runqsize, schedtick, syscalltick, m, 0, 0);
}

SEC("usdt")
int BPF_USDT(sched_pdetail, long p, long gfreecnt, long timerslen)
{
	return emit(RINGO_EV_SCHED_PDETAIL, p, gfreecnt, timerslen, 0, 0, 0, 0, 0);
}

SEC("usdt")
int BPF_USDT(sched_m, long m, long p, long curg, long flags, long lockedg, long tid)
{
	return emit(RINGO_EV_SCHED_M, m, p, curg, flags, lockedg, tid, 0, 0);
}

SEC("usdt")
int BPF_USDT(sched_g, long goid, long status, long reason, long m, long lockedm)
{
	return emit(RINGO_EV_SCHED_G, goid, status, reason, m, lockedm, 0, 0, 0);
}

SEC("usdt")
int BPF_USDT(sched_detail, long nmidlelocked, long sysmonwait)
{
	return emit(RINGO_EV_SCHED_DETAIL, nmidlelocked, sysmonwait, 0, 0, 0, 0, 0, 0);
}

SEC("usdt")
int BPF_USDT(sched_stats, long gomaxprocs, long idleprocs, long threads, long spinning,
	     long idlethreads, long runqueue)
{
	return emit(RINGO_EV_SCHED_STATS, gomaxprocs, idleprocs, threads, spinning, idlethreads,
		    runqueue, 0, 0);
}
