// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only)
/*
 * Kernel-fed P handoff (runtime/kblock.c loads it into the process itself).
 * When one of the process's Ms blocks in the kernel while running a
 * goroutine on a P, other than asleep on a runtime lock (m->in_g, m->p and
 * m->lock_wait read from the M itself: the runtime's own plain stores are
 * the published state), record when (at schedule()'s entry where the kernel
 * has sched_entry_tp, else at the switch) and when it runs again, in a
 * per-M slot of an mmapable array.
 * When work waits for that P (its ring, runnext, an expired timer, or the
 * global queue), post a ring buffer record too, so sysmon, waiting in
 * epoll, looks at once; work that comes later waits for sysmon's tick.
 * Also, machine-wide, which CPUs are idle and how many tasks each one's
 * run queue holds, so that the runtime wakes an M for a P only when a CPU
 * could run it and leaves a CPU others wait for (runtime/sched.c,
 * rg_wakep_local and cpu_wanted_elsewhere).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "mblock.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 targ_tgid = 0;
const volatile __u32 off_in_g = 0; /* offsetof(struct rg_m, in_g) */
const volatile __u32 off_lock_wait = 0; /* offsetof(struct rg_m, lock_wait) */
const volatile __u32 off_p = 0;	   /* offsetof(struct rg_m, p) */
const volatile __u32 off_sched = 0; /* offsetof(struct rg_m, sched) */
const volatile __u32 off_runqsize = 0; /* offsetof(struct rg_sched, runqsize) */
const volatile __u32 off_timer0 = 0;   /* offsetof(struct rg_p, timer0_when) */
/* struct rg_p starts with runqhead, runqtail, runnext (kblock.c checks). */
struct runq_head {
	__u32 head;
	__u32 tail;
	__u64 next;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, RG_KBLOCK_SLOTS);
	__type(key, __u32);
	__type(value, struct rg_kblock_slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rg_kblock_cpus);
} cpus SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RG_KBLOCK_SLOTS);
	__type(key, __u32); /* tid */
	__type(value, struct rg_kblock_m);
} ms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* Does work wait for the P at p (user address) of the M at m? */
static __always_inline bool work_waits(__u64 m, __u64 p, __u64 now)
{
	struct runq_head q;
	__s64 when = 0;
	__u64 s = 0;
	__s32 n = 0;

	if (!bpf_probe_read_user(&q, sizeof(q), (void *)p) && (q.next || q.head != q.tail))
		return true;
	if (!bpf_probe_read_user(&when, sizeof(when), (void *)(p + off_timer0)) && when > 0 &&
	    (__u64)when <= now)
		return true;
	return !bpf_probe_read_user(&s, sizeof(s), (void *)(m + off_sched)) && s &&
	       !bpf_probe_read_user(&n, sizeof(n), (void *)(s + off_runqsize)) && n > 0;
}

/* The run queue length of the CPU task t is on (0 for the idle task, which is on none). */
static __always_inline void note_nr_running(struct rg_kblock_cpus *c, __u32 cpu,
					    struct task_struct *t)
{
	unsigned int nr = 0;

	if (t->pid && bpf_core_field_exists(((struct cfs_rq *)0)->rq))
		nr = BPF_CORE_READ(t, se.cfs_rq, rq, nr_running);
	c->nr_running[cpu] = nr > 255 ? 255 : nr;
}

static __always_inline void post(__u64 ts, __u32 slot, __u32 blocked)
{
	struct rg_kblock_event ev = {.ts = ts, .slot = slot, .blocked = blocked};

	/* Adaptive wake-up: sysmon is woken when it had read everything. */
	bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
}

/*
 * M m (the current task, whose memory is ours to read) sleeps: is it running
 * a goroutine on a P, and not asleep on a runtime lock (its holder runs and
 * lets go soon)? Then stamp the block and, when work waits for that P, post.
 */
static __always_inline void block_begins(struct rg_kblock_m *m)
{
	__u8 in_g = 0, lock_wait = 1;
	__u64 p = 0;
	__u32 k = m->slot;
	struct rg_kblock_slot *s;

	if (bpf_probe_read_user(&in_g, 1, (void *)(m->m_addr + off_in_g)) || !in_g ||
	    bpf_probe_read_user(&p, 8, (void *)(m->m_addr + off_p)) || !p ||
	    bpf_probe_read_user(&lock_wait, 1, (void *)(m->m_addr + off_lock_wait)) || lock_wait)
		return;
	s = bpf_map_lookup_elem(&slots, &k);
	if (!s)
		return;
	__u64 now = bpf_ktime_get_ns();
	s->blocked_since = now;
	s->last_block = now;
	s->seq++;
	if (work_waits(m->m_addr, p, now))
		post(now, k, 1);
}

/* Slot k's M runs again (or never slept): its block is over; post if a P was lent for it. */
static __always_inline void block_ends(struct rg_kblock_slot *s, __u32 k)
{
	if (!s->blocked_since)
		return;
	s->blocked_since = 0;
	if (s->want_wake) {
		s->want_wake = 0;
		post(bpf_ktime_get_ns(), k, 0);
	}
}

/*
 * schedule() entered by an M that is going to sleep (kernel 6.16+: the RV
 * monitors' sched_entry_tp). Interrupts are still on here, so the ring
 * buffer's wake-up (an irq_work, a self-IPI) reaches sysmon at once; raised
 * from sched_switch it waits until the switch is over, 8-16 us on a VM.
 * sched_switch then finds the block stamped and leaves it.
 */
SEC("tp_btf/sched_entry_tp")
int BPF_PROG(mblock_entry, bool preempt)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__u32 tid;

	if (preempt || t->tgid != targ_tgid || BPF_CORE_READ(t, __state) == 0)
		return 0;
	tid = t->pid;
	struct rg_kblock_m *m = bpf_map_lookup_elem(&ms, &tid);
	if (m)
		block_begins(m);
	return 0;
}

/* Out of schedule() in the same task: a block stamped at entry that never slept is none. */
SEC("tp_btf/sched_exit_tp")
int BPF_PROG(mblock_exit, bool preempt)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__u32 tid;

	if (t->tgid != targ_tgid)
		return 0;
	tid = t->pid;
	struct rg_kblock_m *m = bpf_map_lookup_elem(&ms, &tid);
	if (!m)
		return 0;
	__u32 k = m->slot;
	struct rg_kblock_slot *s = bpf_map_lookup_elem(&slots, &k);
	if (s)
		block_ends(s, k);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(mblock_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u32 tid;

	/* This CPU: idle or not (its idle task is pid 0), and how many tasks want it. */
	{
		__u32 zero = 0, cpu = bpf_get_smp_processor_id();
		struct rg_kblock_cpus *c = bpf_map_lookup_elem(&cpus, &zero);
		if (c && cpu < RG_KBLOCK_CPUS) {
			c->idle[cpu] = next->pid == 0;
			note_nr_running(c, cpu, next);
		}
	}

	/* An M leaves its CPU; blocked (not preempted, not runnable), is it running a goroutine on a P? */
	if (prev->tgid == targ_tgid) {
		tid = prev->pid;
		struct rg_kblock_m *m = bpf_map_lookup_elem(&ms, &tid);
		if (m) {
			__u32 k = m->slot;
			struct rg_kblock_slot *s = bpf_map_lookup_elem(&slots, &k);
			bool blocks = prev_state != 0 && !preempt;
			if (s) {
				s->on_cpu = 0;
				/* Stamped at schedule()'s entry, it may still run (a signal came). */
				if (s->blocked_since && !blocks)
					s->blocked_since = 0;
				/* Not stamped at the entry: no sched_entry_tp (before 6.16). */
				if (blocks && !s->blocked_since)
					block_begins(m);
			}
		}
	}

	/* Running again: the block is over. */
	if (next->tgid == targ_tgid) {
		tid = next->pid;
		struct rg_kblock_m *m = bpf_map_lookup_elem(&ms, &tid);
		if (m) {
			__u32 k = m->slot;
			struct rg_kblock_slot *s = bpf_map_lookup_elem(&slots, &k);
			if (s) {
				s->on_cpu = 1;
				block_ends(s, k);
			}
		}
	}
	return 0;
}

/* A task queued on a CPU: that CPU's run queue grew without a switch. */
SEC("tp_btf/sched_wakeup")
int BPF_PROG(mblock_wakeup, struct task_struct *p)
{
	__u32 zero = 0, cpu = BPF_CORE_READ(p, thread_info.cpu);
	struct rg_kblock_cpus *c = bpf_map_lookup_elem(&cpus, &zero);

	if (c && cpu < RG_KBLOCK_CPUS)
		note_nr_running(c, cpu, p);
	return 0;
}
