// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/*
 * ringo-latbench: the kernel's share of the latencies its own workloads
 * produce. Attached to the tool's own process only (targ_tgid), counting only
 * while user space names a workload (cur_w) and only for the goroutines the
 * workload named (latbench:watch). Every sample goes to user space whole
 * (ring buffer), which computes the percentiles.
 *
 * Per thread of the process, the scheduler tracepoints keep its last
 * NEPISODES off-CPU episodes: when it went off, when it became runnable
 * again (sched_wakeup; at once if it was preempted) and when it came back.
 * The kernel's share of a goroutine wake-up (g_ready -> g_start) is then the
 * time, within that interval, the thread that runs the goroutine spent
 * runnable but waiting for a CPU; of a timer (deadline -> g_start), all the
 * time after the deadline that thread spent off a CPU (hrtimer expiry and
 * slack, wake-up latency, preemption); of an M wake-up (m_unpark, or the
 * runtime's wake NOP entering the kernel -> the M on a CPU), sched_wakeup ->
 * sched_switch-in of that M's thread; of an io_uring operation,
 * io_uring_submit_req -> io_uring_complete (joined by user_data, as iolat).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "latbench.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 targ_tgid = 0;
const volatile __s32 op_nop = -1;  /* RG_IO_NOP: the nop workload's operation */
const volatile __s32 op_recv = -1;  /* RG_IO_RECV */

/* The running workload, written by user space through the mmapped .bss. */
volatile __u32 cur_w = 0;
__u64 lost = 0;
__u32 ring_sleeper = 0; /* the thread last seen waiting in io_uring_enter */

#define NEPISODES 8

struct episode {
	__u64 out, runnable, in;
};

struct tstate {
	__u64 last_in, last_out, runnable_at;
	__u32 head;
	__u32 pad;
	struct episode ep[NEPISODES];
};

/* What a watched goroutine waits for: readied at t0, or a timer due at t0. */
struct gwait {
	__u64 t0;
	__s64 p;
	__u32 deadline;
	__u32 pad;
};

struct pending {
	__u64 intent, wakeup;
	__u32 m; /* LB_M_MWAKE_* */
	__u32 pad;
};

struct op {
	__u64 submit, kstart, kdone;
	__s64 opcode;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tid */
	__type(value, struct tstate);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);   /* M id */
	__type(value, __u32); /* tid */
} mtid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64); /* goid */
	__type(value, __u32);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64); /* goid */
	__type(value, struct gwait);
} gwaits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tid of the M being woken */
	__type(value, struct pending);
} pendings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* user_data */
	__type(value, struct op);
} ops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} samples SEC(".maps");

static __always_inline bool ours(void)
{
	return (__u32)(bpf_get_current_pid_tgid() >> 32) == targ_tgid;
}

static __always_inline void emit(__u32 m, __u64 total, __u64 kernel)
{
	struct lb_sample *s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);

	if (!s) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	s->w = cur_w;
	s->m = m;
	s->total_ns = total;
	s->kernel_ns = kernel > total ? total : kernel;
	bpf_ringbuf_submit(s, 0);
}

static __always_inline struct tstate *tstate_of(__u32 tid)
{
	struct tstate *st = bpf_map_lookup_elem(&threads, &tid);

	if (!st) {
		struct tstate z = {};
		bpf_map_update_elem(&threads, &tid, &z, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&threads, &tid);
	}
	return st;
}

/* ---- the workload's own probes (provider latbench) ---- */

SEC("usdt")
int BPF_USDT(lb_watch, long goid)
{
	__u64 g = goid;
	__u32 one = 1;

	bpf_map_update_elem(&watched, &g, &one, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(lb_deadline, long goid, long when)
{
	__u64 g = goid;
	struct gwait w = {.t0 = when, .p = -1, .deadline = 1};

	if (cur_w)
		bpf_map_update_elem(&gwaits, &g, &w, BPF_ANY);
	return 0;
}

/* ---- the runtime's probes (provider ringo) ---- */

SEC("usdt")
int BPF_USDT(m_start, long m, long tid)
{
	__u32 k = m, t = tid;

	if (k < 4096)
		bpf_map_update_elem(&mtid, &k, &t, BPF_ANY);
	return 0;
}

/* Is tid off its CPU (asleep or preempted) right now? */
static __always_inline bool off_cpu(__u32 tid)
{
	struct tstate *st = bpf_map_lookup_elem(&threads, &tid);

	return st && st->last_out > st->last_in;
}

static __always_inline void intend_wake(__u32 tid, __u32 m)
{
	struct pending p = {.intent = bpf_ktime_get_ns(), .m = m};

	if (tid && off_cpu(tid))
		bpf_map_update_elem(&pendings, &tid, &p, BPF_ANY);
}

SEC("usdt")
int BPF_USDT(m_unpark, long m)
{
	__u32 k = m;
	__u32 *tid;

	if (cur_w != LB_W_MWAKE || k >= 4096)
		return 0;
	tid = bpf_map_lookup_elem(&mtid, &k);
	if (tid)
		intend_wake(*tid, LB_M_MWAKE_FUTEX);
	return 0;
}

SEC("usdt")
int BPF_USDT(g_ready, long goid, long waker, long p)
{
	__u64 g = goid;
	struct gwait w = {.t0 = bpf_ktime_get_ns(), .p = p};
	struct gwait *old;

	if (!cur_w || !bpf_map_lookup_elem(&watched, &g))
		return 0;
	old = bpf_map_lookup_elem(&gwaits, &g);
	if (old && old->deadline)
		return 0; /* a timer readied it: lateness counts from the deadline */
	bpf_map_update_elem(&gwaits, &g, &w, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(g_start, long goid, long p, long m)
{
	__u64 g = goid, now = bpf_ktime_get_ns(), from, kernel = 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct gwait *w = bpf_map_lookup_elem(&gwaits, &g);
	struct gwait v;
	struct tstate *st;

	if (!w || now < w->t0)
		return 0; /* before its deadline: resumed after a preemption, not the timer */
	v = *w;
	bpf_map_delete_elem(&gwaits, &g);
	if (!cur_w)
		return 0;
	st = bpf_map_lookup_elem(&threads, &tid);
	if (st) {
		for (int i = 0; i < NEPISODES; i++) {
			struct episode *e = &st->ep[i];
			from = v.deadline ? e->out : e->runnable;
			if (from < v.t0)
				from = v.t0;
			if (e->in > from)
				kernel += e->in - from;
		}
	}
	if (v.deadline)
		emit(LB_M_TIMER, now - v.t0, kernel);
	else
		emit(v.p == p ? LB_M_GSAME : LB_M_GCROSS, now - v.t0, kernel);
	return 0;
}

SEC("usdt")
int BPF_USDT(io_submit, long goid, long user_data, long opcode)
{
	__u64 g = goid, ud = user_data;
	struct op o = {.submit = bpf_ktime_get_ns(), .opcode = opcode};

	if (!((cur_w == LB_W_NOP && opcode == op_nop) ||
	      (cur_w == LB_W_RECV && opcode == op_recv)))
		return 0;
	if (bpf_map_lookup_elem(&watched, &g))
		bpf_map_update_elem(&ops, &ud, &o, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(io_complete, long goid, long user_data, long res)
{
	__u64 ud = user_data, now = bpf_ktime_get_ns(), kernel = 0;
	struct op *o = bpf_map_lookup_elem(&ops, &ud);
	struct op v;

	if (!o)
		return 0;
	v = *o;
	bpf_map_delete_elem(&ops, &ud);
	if (v.kstart && v.kdone >= v.kstart)
		kernel = v.kdone - v.kstart;
	emit(v.opcode == op_recv ? LB_M_RECV : LB_M_NOP, now - v.submit, kernel);
	return 0;
}

/* ---- the kernel's tracepoints ---- */

SEC("tp/io_uring/io_uring_submit_req")
int submit_req(struct trace_event_raw_io_uring_submit_req *ctx)
{
	__u64 ud = BPF_CORE_READ(ctx, user_data);
	struct op *o;

	if (!ours())
		return 0;
	if (ud == LB_TAG_WAKE) {
		/* The runtime's wake NOP: it will wake the M asleep in the ring. */
		if (cur_w == LB_W_MWAKE)
			intend_wake(ring_sleeper, LB_M_MWAKE_RING);
		return 0;
	}
	o = bpf_map_lookup_elem(&ops, &ud);
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

SEC("tp/io_uring/io_uring_cqring_wait")
int cqring_wait(void *ctx)
{
	if (ours())
		ring_sleeper = (__u32)bpf_get_current_pid_tgid();
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	__u32 tid = BPF_CORE_READ(p, pid);
	__u64 now = bpf_ktime_get_ns();
	struct tstate *st;
	struct pending *pd;

	if (BPF_CORE_READ(p, tgid) != targ_tgid)
		return 0;
	st = tstate_of(tid);
	if (st)
		st->runnable_at = now;
	pd = bpf_map_lookup_elem(&pendings, &tid);
	if (pd && !pd->wakeup)
		pd->wakeup = now;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	struct tstate *st;
	struct pending *pd;
	__u32 tid;

	if (BPF_CORE_READ(prev, tgid) == targ_tgid) {
		tid = BPF_CORE_READ(prev, pid);
		st = tstate_of(tid);
		if (st) {
			st->last_out = now;
			if (prev_state == 0) /* preempted: still runnable */
				st->runnable_at = now;
		}
	}
	if (BPF_CORE_READ(next, tgid) != targ_tgid)
		return 0;
	tid = BPF_CORE_READ(next, pid);
	st = tstate_of(tid);
	if (st) {
		st->last_in = now;
		if (st->last_out) {
			struct episode *e = &st->ep[st->head++ % NEPISODES];
			e->out = st->last_out;
			e->runnable = st->runnable_at > st->last_out ? st->runnable_at :
								       st->last_out;
			e->in = now;
		}
	}
	pd = bpf_map_lookup_elem(&pendings, &tid);
	if (!pd)
		return 0;
	struct pending v = *pd;
	bpf_map_delete_elem(&pendings, &tid);
	/* Back without a wake-up: it was preempted, not asleep; no sample. */
	if (v.wakeup && cur_w == LB_W_MWAKE)
		emit(v.m, now - v.intent, now - v.wakeup);
	return 0;
}
