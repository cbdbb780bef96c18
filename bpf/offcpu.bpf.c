// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/*
 * ringo-offcpu: the kernel's off-CPU time of the runtime's threads (Ms),
 * labelled with the goroutine that was running and whether the M held a P.
 * The probes keep a per-thread view (m_start maps a tid to an M; g_start,
 * g_park/g_yield/g_exit, syscall_enter/exit and m_park update the goroutine
 * and the P); tp_btf/sched_switch times each M from switch-out to switch-in.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "ringo.bpf.h"
#include "ringo_tools.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 targ_tgid = 0; /* 0: any process whose Ms fired a probe */
const volatile __u64 min_ns = 0;    /* ignore shorter off-CPU intervals */

struct mstate {
	__s64 goid;
	__s32 m;
	__s32 held_p;
};

struct offstart {
	__u64 ts;
	struct ringo_offcpu_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, struct mstate);
} ms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tid */
	__type(value, struct offstart);
} off SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ringo_offcpu_key);
	__type(value, struct ringo_offcpu_val);
} totals SEC(".maps");

/* Histogram per held_p (0, 1), in microseconds. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct ringo_hist);
} hists SEC(".maps");

static __always_inline struct mstate *self(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct mstate *s = bpf_map_lookup_elem(&ms, &tid);

	if (!s) {
		struct mstate init = {.goid = 0, .m = -1, .held_p = 0};
		bpf_map_update_elem(&ms, &tid, &init, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&ms, &tid);
	}
	return s;
}

SEC("usdt")
int BPF_USDT(m_start, long m, long tid)
{
	struct mstate *s = self();

	if (s)
		s->m = m;
	return 0;
}

SEC("usdt")
int BPF_USDT(m_exit, long m)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&ms, &tid);
	bpf_map_delete_elem(&off, &tid);
	return 0;
}

SEC("usdt")
int BPF_USDT(g_start, long goid, long p, long m)
{
	struct mstate *s = self();

	if (s) {
		s->goid = goid;
		s->m = m;
		s->held_p = 1;
	}
	return 0;
}

/* Back on g0 (the scheduler loop), still holding the P. */
static __always_inline int on_g0(void)
{
	struct mstate *s = self();

	if (s)
		s->goid = 0;
	return 0;
}

SEC("usdt")
int BPF_USDT(g_park, long goid)
{
	return on_g0();
}

SEC("usdt")
int BPF_USDT(g_yield, long goid)
{
	return on_g0();
}

SEC("usdt")
int BPF_USDT(g_exit, long goid)
{
	return on_g0();
}

SEC("usdt")
int BPF_USDT(syscall_enter, long goid, long m)
{
	struct mstate *s = self();

	if (s) {
		s->goid = goid;
		s->m = m;
		s->held_p = 0; /* rg_syscall_enter detaches the P */
	}
	return 0;
}

SEC("usdt")
int BPF_USDT(syscall_exit, long goid, long m)
{
	struct mstate *s = self();

	if (s)
		s->held_p = 1; /* the fast path; the slow path parks the M (m_park) */
	return 0;
}

SEC("usdt")
int BPF_USDT(m_park, long m)
{
	struct mstate *s = self();

	if (s) {
		s->goid = 0;
		s->held_p = 0;
	}
	return 0;
}

/*
 * Ms that started before the tool and have not run a goroutine since: sysmon's
 * snapshot (sched_m, fired while sched_stats is traced) names every M's thread,
 * goroutine and P. It only fills in threads the probes above have not seen.
 */
SEC("usdt")
int BPF_USDT(sched_m, long m, long p, long curg, long flags, long lockedg, long tid)
{
	__u32 t = tid;
	struct mstate init = {.goid = curg > 0 ? curg : 0, .m = m, .held_p = p >= 0};

	bpf_map_update_elem(&ms, &t, &init, BPF_NOEXIST);
	return 0;
}

__u64 snapshots = 0;

/* Attached to sched_stats to raise its semaphore (sysmon then fires sched_m). */
SEC("usdt")
int BPF_USDT(sched_stats)
{
	__sync_fetch_and_add(&snapshots, 1);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid = BPF_CORE_READ(prev, pid);
	__u32 tgid = BPF_CORE_READ(prev, tgid);

	if (!targ_tgid || tgid == targ_tgid) {
		struct mstate *s = bpf_map_lookup_elem(&ms, &tid);
		if (s) {
			struct offstart o = {
				.ts = now,
				.key = {.pid = tgid,
					.m = s->m,
					.goid = s->goid,
					.held_p = s->held_p,
					.blocked = prev_state != 0},
			};
			bpf_map_update_elem(&off, &tid, &o, BPF_ANY);
		}
	}

	tid = BPF_CORE_READ(next, pid);
	struct offstart *o = bpf_map_lookup_elem(&off, &tid);
	if (!o)
		return 0;
	__u64 delta = now - o->ts;
	struct ringo_offcpu_key key = o->key;
	bpf_map_delete_elem(&off, &tid);
	if (delta < min_ns)
		return 0;

	struct ringo_offcpu_val *v = bpf_map_lookup_elem(&totals, &key);
	if (!v) {
		struct ringo_offcpu_val z = {};
		bpf_map_update_elem(&totals, &key, &z, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&totals, &key);
		if (!v)
			return 0;
	}
	__sync_fetch_and_add(&v->count, 1);
	__sync_fetch_and_add(&v->total_ns, delta);
	if (delta > v->max_ns)
		v->max_ns = delta;

	__u32 hk = key.held_p ? 1 : 0;
	struct ringo_hist *h = bpf_map_lookup_elem(&hists, &hk);
	if (h) {
		__u32 slot = ringo_slot(delta / 1000, RINGO_MAX_SLOTS);
		if (slot < RINGO_MAX_SLOTS)
			__sync_fetch_and_add(&h->slots[slot], 1);
	}
	return 0;
}
