// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/*
 * ringo-iolat: io_uring latency of the runtime's operations, split at the
 * kernel's tracepoints, joined by the SQE's user_data:
 *   queue  io_submit probe -> tp io_uring_submit_req (SQE waits for a batch)
 *   kernel io_uring_submit_req -> io_uring_complete (the operation itself)
 *   reap   io_uring_complete -> io_complete probe (CQE reaped, goroutine back)
 *   total  io_submit -> io_complete
 * tp/ rather than tp_btf/: the BTF signatures of io_uring's tracepoints change
 * between kernels, the trace_event_raw records are CO-RE relocated.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "ringo.bpf.h"
#include "ringo_tools.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile bool targ_ms = false;

struct op {
	__u64 submit, kstart, kdone;
	__s64 opcode;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* user_data */
	__type(value, struct op);
} ops SEC(".maps");

/* Per (opcode, phase): key.id = opcode << 8 | phase, or phase alone with -O off. */
const volatile bool targ_per_op = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ringo_hist_key);
	__type(value, struct ringo_hist);
} hists SEC(".maps");

static struct ringo_hist zero;

static __always_inline void add(__u32 pid, __s64 opcode, int phase, __u64 delta)
{
	struct ringo_hist_key k = {.pid = pid, .id = phase};

	if (targ_per_op)
		k.id = (int)(opcode << 8) | phase;
	struct ringo_hist *h = bpf_map_lookup_elem(&hists, &k);
	if (!h) {
		bpf_map_update_elem(&hists, &k, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &k);
		if (!h)
			return;
	}
	delta /= targ_ms ? 1000000U : 1000U;
	__u32 slot = ringo_slot(delta, RINGO_MAX_SLOTS);
	if (slot < RINGO_MAX_SLOTS)
		__sync_fetch_and_add(&h->slots[slot], 1);
}

SEC("usdt")
int BPF_USDT(io_submit, long goid, long user_data, long opcode)
{
	__u64 ud = user_data;
	struct op o = {.submit = bpf_ktime_get_ns(), .opcode = opcode};

	bpf_map_update_elem(&ops, &ud, &o, BPF_ANY);
	return 0;
}

SEC("tp/io_uring/io_uring_submit_req")
int submit_req(struct trace_event_raw_io_uring_submit_req *ctx)
{
	__u64 ud = BPF_CORE_READ(ctx, user_data);
	struct op *o = bpf_map_lookup_elem(&ops, &ud);

	if (o && !o->kstart)
		o->kstart = bpf_ktime_get_ns();
	return 0;
}

SEC("tp/io_uring/io_uring_complete")
int complete(struct trace_event_raw_io_uring_complete *ctx)
{
	__u64 ud = BPF_CORE_READ(ctx, user_data);
	struct op *o = bpf_map_lookup_elem(&ops, &ud);

	if (o && !o->kdone)
		o->kdone = bpf_ktime_get_ns();
	return 0;
}

SEC("usdt")
int BPF_USDT(io_complete, long goid, long user_data, long res)
{
	__u64 ud = user_data, now = bpf_ktime_get_ns();
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct op *o = bpf_map_lookup_elem(&ops, &ud);

	if (!o)
		return 0;
	struct op v = *o;
	bpf_map_delete_elem(&ops, &ud);
	add(pid, v.opcode, RINGO_IO_TOTAL, now - v.submit);
	if (v.kstart) {
		add(pid, v.opcode, RINGO_IO_QUEUE, v.kstart - v.submit);
		if (v.kdone) {
			add(pid, v.opcode, RINGO_IO_KERNEL, v.kdone - v.kstart);
			add(pid, v.opcode, RINGO_IO_REAP, now - v.kdone);
		}
	}
	return 0;
}
