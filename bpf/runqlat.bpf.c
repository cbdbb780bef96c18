// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/*
 * ringo-runqlat: goroutine scheduling latency, the time a goroutine is
 * runnable before it runs (Go's /sched/latencies): from g_create, g_ready,
 * g_yield, g_preempt or syscall_exit to the next g_start, as a log2
 * histogram in user space units, whole or per P (-P) or per M (-L).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "ringo.bpf.h"
#include "ringo_tools.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile bool targ_per_p = false;
const volatile bool targ_per_m = false;
const volatile bool targ_ms = false;

struct gkey {
	__u32 pid;
	__u32 pad;
	__u64 goid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct gkey);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ringo_hist_key);
	__type(value, struct ringo_hist);
} hists SEC(".maps");

static struct ringo_hist zero;

static __always_inline int runnable(long goid)
{
	struct gkey k = {.pid = bpf_get_current_pid_tgid() >> 32, .goid = goid};
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&start, &k, &now, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(g_create, long goid, long parent, long fn)
{
	return runnable(goid);
}

SEC("usdt")
int BPF_USDT(g_ready, long goid, long waker, long p)
{
	return runnable(goid);
}

SEC("usdt")
int BPF_USDT(g_yield, long goid)
{
	return runnable(goid);
}

SEC("usdt")
int BPF_USDT(g_preempt, long goid)
{
	return runnable(goid);
}

SEC("usdt")
int BPF_USDT(syscall_exit, long goid, long m)
{
	/* Runnable only on the slow path; a stale entry is overwritten by the next wake-up. */
	return runnable(goid);
}

SEC("usdt")
int BPF_USDT(g_start, long goid, long p, long m)
{
	struct gkey k = {.pid = bpf_get_current_pid_tgid() >> 32, .goid = goid};
	__u64 *tsp = bpf_map_lookup_elem(&start, &k), delta;

	if (!tsp)
		return 0;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&start, &k);
	if ((__s64)delta < 0)
		return 0;

	struct ringo_hist_key hk = {.pid = k.pid, .id = -1};
	if (targ_per_p)
		hk.id = p;
	else if (targ_per_m)
		hk.id = m;
	struct ringo_hist *h = bpf_map_lookup_elem(&hists, &hk);
	if (!h) {
		bpf_map_update_elem(&hists, &hk, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &hk);
		if (!h)
			return 0;
	}
	delta /= targ_ms ? 1000000U : 1000U;
	__u32 slot = ringo_slot(delta, RINGO_MAX_SLOTS);
	if (slot < RINGO_MAX_SLOTS)
		__sync_fetch_and_add(&h->slots[slot], 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(g_exit, long goid)
{
	struct gkey k = {.pid = bpf_get_current_pid_tgid() >> 32, .goid = goid};

	bpf_map_delete_elem(&start, &k);
	return 0;
}
