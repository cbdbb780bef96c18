// SPDX-License-Identifier: BSD-2-Clause
/*
 * Kernel-fed P handoff, the user-space half (bpf/mblock.bpf.c is the other):
 * loading the BPF program off the critical path, registering each M's
 * thread with it, reading its per-M slots with plain loads, and sysmon's
 * epoll sleep that its ring buffer ends. The decisions are sysmon's. The
 * same program keeps per-CPU facts (idle or not, run queue length) that
 * the scheduler reads with plain loads: CPU-aware wake-ups (sched.c),
 * RINGO_CPUAWARE=0 to wake and poll as Go does.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kblock.h"

static _Atomic int state = RG_KBLOCK_LOADING;
static const char *_Atomic why = "not started";
static _Atomic uint64_t st_events, st_lends, st_wakes, st_early, st_withdrawn;
static _Atomic int64_t st_last_lend;
static _Atomic bool st_at_entry;

void rg_kblock_count_withdrawn(void)
{
	atomic_fetch_add_explicit(&st_withdrawn, 1, memory_order_relaxed);
}

void rg_kblock_count_lend(int64_t now, bool early)
{
	atomic_fetch_add_explicit(&st_lends, 1, memory_order_relaxed);
	if (early)
		atomic_fetch_add_explicit(&st_early, 1, memory_order_relaxed);
	atomic_store_explicit(&st_last_lend, now, memory_order_relaxed);
}

void rg_kblock_get_stats(struct rg_kblock_stats *out)
{
	out->events = atomic_load_explicit(&st_events, memory_order_relaxed);
	out->lends = atomic_load_explicit(&st_lends, memory_order_relaxed);
	out->wakes = atomic_load_explicit(&st_wakes, memory_order_relaxed);
	out->early = atomic_load_explicit(&st_early, memory_order_relaxed);
	out->withdrawn = atomic_load_explicit(&st_withdrawn, memory_order_relaxed);
	out->last_lend = atomic_load_explicit(&st_last_lend, memory_order_relaxed);
	out->at_entry = atomic_load_explicit(&st_at_entry, memory_order_relaxed);
}

enum rg_kblock_state rg_kblock_state(void)
{
	return atomic_load_explicit(&state, memory_order_acquire);
}

const char *rg_kblock_why(void)
{
	return atomic_load_explicit(&why, memory_order_acquire);
}

#ifndef RINGO_HAVE_BPF

void rg_kblock_start(void)
{
	atomic_store_explicit(&why, "built without BPF (-Dbpf=disabled or no libbpf)",
			      memory_order_release);
	atomic_store_explicit(&state, RG_KBLOCK_OFF, memory_order_release);
}

int rg_kblock_scan(struct rg_sched *s, struct rg_kblock_report *out, int max)
{
	return 0;
}

bool rg_kblock_blocked(uint32_t slot, int64_t since)
{
	return false;
}

void rg_kblock_want_wake(uint32_t slot)
{
}

void rg_kblock_forget(struct rg_sched *s)
{
}

bool rg_kblock_sleep(int64_t ns)
{
	return false;
}

void rg_kblock_kick(void)
{
}

bool rg_kblock_cpu_idle(void)
{
	return true;
}

bool rg_kblock_cpu_contended(int cpu)
{
	return false;
}

bool rg_kblock_on_cpu(int32_t kslot, pid_t tid)
{
	return true;
}

bool rg_kblock_tracked(pid_t tid)
{
	return false;
}

bool rg_kblock_prog_stats(uint64_t *run_ns, uint64_t *run_cnt)
{
	return false;
}

int64_t rg_kblock_last_block(pid_t tid)
{
	return 0;
}

#else /* RINGO_HAVE_BPF */

#include <linux/types.h>
#include <stddef.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "lock.h"
#include "sanitizer.h"
#include "mblock.h"
#include "mblock.skel.h"

#define KICK_TAG (-1) /* epoll data of the kick eventfd; the ring is 0 */

/* bpf/mblock.bpf.c reads these with one load (struct runq_head). */
_Static_assert(offsetof(struct rg_p, runqhead) == 0 && offsetof(struct rg_p, runqtail) == 4 &&
		       offsetof(struct rg_p, runnext) == 8 && sizeof(void *) == 8,
	       "struct rg_p's run queue head moved: update bpf/mblock.bpf.c");
_Static_assert(sizeof(((struct rg_p *)0)->timer0_when) == 8 &&
		       sizeof(((struct rg_sched *)0)->runqsize) == 4 &&
		       sizeof(((struct rg_m *)0)->in_g) == 1 &&
		       sizeof(((struct rg_m *)0)->lock_wait) == 1,
	       "field sizes bpf/mblock.bpf.c reads");

static struct mblock_bpf *obj;
static struct rg_kblock_slot *slots; /* the mmapped array */
static struct rg_kblock_cpus *cpus;  /* the mmapped per-CPU bytes */
static int ncpus;
static bool cpu_aware = true; /* RINGO_CPUAWARE=0: wake and poll as Go does */
static size_t slots_len;
static struct ring_buffer *rb;
static int ms_fd = -1, ep_fd = -1, kick_fd = -1;
static bool debug;
static bool tick_only; /* RINGO_BPF=tick: no epoll wake-ups, sysmon's tick only (to compare) */
static bool switch_only; /* RINGO_BPF=switch: blocks seen at the switch only (to compare) */
static char why_buf[200];
static _Atomic bool started;

/* Who holds each slot [ents_lock]; sysmon threads only. */
struct ent {
	struct rg_sched *s;
	struct rg_m *m;
	pid_t tid;
};
static struct ent ents[RG_KBLOCK_SLOTS];
static pthread_mutex_t ents_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t rb_lock = PTHREAD_MUTEX_INITIALIZER;

/* The sysmon thread's view of its scheduler's Ms (one sysmon per scheduler). */
static __thread int32_t seen_mnext = -1, seen_mcount = -1;
static __thread bool seen_all;

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (!debug || level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static void parse_debug(void)
{
	const char *e = getenv("RINGO_DEBUG");
	const char *c = getenv("RINGO_CPUAWARE");

	debug = e && (strstr(e, "bpf=1") || strstr(e, "kblock=1"));
	cpu_aware = !c || strcmp(c, "0") != 0;
}

static int on_event(void *ctx, void *data, size_t len)
{
	atomic_fetch_add_explicit(&st_events, 1, memory_order_relaxed);
	return 0;
}

/*
 * Run on every CPU we may use, once: each then switches with the program
 * attached (to us and back), so its bytes are true from the start. A CPU
 * running one task since before the load would otherwise keep "idle".
 */
static void visit_cpus(void)
{
	cpu_set_t all, one;

	if (sched_getaffinity(0, sizeof(all), &all))
		return;
	for (int i = 0; i < ncpus; i++) {
		if (!CPU_ISSET(i, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(i, &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	sched_setaffinity(0, sizeof(all), &all);
}

/* Does the running kernel have schedule()'s entry and exit tracepoints (6.16+)? */
static bool has_sched_entry_exit(void)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	bool found;

	if (!vmlinux)
		return false;
	found = btf__find_by_name_kind(vmlinux, "btf_trace_sched_entry_tp", BTF_KIND_TYPEDEF) > 0 &&
		btf__find_by_name_kind(vmlinux, "btf_trace_sched_exit_tp", BTF_KIND_TYPEDEF) > 0;
	btf__free(vmlinux);
	return found;
}

/* Open, load and attach: in the loader's own file table when it has one. */
static int load_bpf(const char **step)
{
	int err;

	*step = "open";
	obj = mblock_bpf__open();
	if (!obj)
		return -errno;
	obj->rodata->targ_tgid = (__u32)getpid();
	obj->rodata->off_in_g = offsetof(struct rg_m, in_g);
	obj->rodata->off_lock_wait = offsetof(struct rg_m, lock_wait);
	obj->rodata->off_p = offsetof(struct rg_m, p);
	obj->rodata->off_sched = offsetof(struct rg_m, sched);
	obj->rodata->off_runqsize = offsetof(struct rg_sched, runqsize);
	obj->rodata->off_timer0 = offsetof(struct rg_p, timer0_when);
	/* Before 6.16, the switch alone. */
	bool entry = !switch_only && has_sched_entry_exit();
	bpf_program__set_autoload(obj->progs.mblock_entry, entry);
	bpf_program__set_autoload(obj->progs.mblock_exit, entry);
	atomic_store_explicit(&st_at_entry, entry, memory_order_relaxed);
	*step = "load";
	if ((err = mblock_bpf__load(obj)))
		return err;
	*step = "attach";
	if ((err = mblock_bpf__attach(obj)))
		return err;
	*step = "mmap";
	long page = sysconf(_SC_PAGESIZE);
	slots_len = (sizeof(struct rg_kblock_slot) * RG_KBLOCK_SLOTS + page - 1) & ~(page - 1);
	void *a = mmap(NULL, slots_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(obj->maps.slots), 0);
	if (a == MAP_FAILED)
		return -errno;
	slots = a;
	*step = "mmap cpus";
	void *c = mmap(NULL, (sizeof(struct rg_kblock_cpus) + page - 1) & ~(page - 1),
		       PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(obj->maps.cpus), 0);
	if (c == MAP_FAILED)
		return -errno;
	cpus = c;
	ncpus = (int)sysconf(_SC_NPROCESSORS_CONF);
	if (ncpus > RG_KBLOCK_CPUS)
		ncpus = RG_KBLOCK_CPUS;
	/* Idle until seen busy: a busy CPU taken for idle only costs a wake-up, as before. */
	for (int i = 0; i < ncpus; i++)
		__atomic_store_n(&cpus->idle[i], 1, __ATOMIC_RELAXED);
	visit_cpus();
	return 0;
}

/* The descriptors sysmon uses, in the process's table: the ring buffer's epoll and a kick. */
static int finish(int events_fd, const char **step)
{
	*step = "ring buffer";
	rb = ring_buffer__new(events_fd, on_event, NULL, NULL);
	if (!rb)
		return -errno;
	ep_fd = ring_buffer__epoll_fd(rb);
	*step = "eventfd";
	kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (kick_fd < 0)
		return -errno;
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = KICK_TAG};
	if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, kick_fd, &ev) < 0)
		return -errno;
	return 0;
}

static void fail(const char *step, int err)
{
	snprintf(why_buf, sizeof(why_buf), "BPF %s: %s", step, strerror(-err));
	atomic_store_explicit(&why, why_buf, memory_order_release);
	atomic_store_explicit(&state, RG_KBLOCK_OFF, memory_order_release);
	if (debug)
		fprintf(stderr, "ringo: kernel-fed P handoff off: %s\n", why_buf);
}

static void on_now(void)
{
	atomic_store_explicit(&why, "on", memory_order_release);
	atomic_store_explicit(&state, RG_KBLOCK_ON, memory_order_release);
	if (debug)
		fprintf(stderr, "ringo: kernel-fed P handoff on\n");
}

/*
 * Hand-over from a loader with a private file table: sysmon copies the
 * descriptors it needs (pidfd_getfd) in one burst. libbpf opens and
 * closes dozens while loading; in the shared table those would take the
 * numbers the program's own close() just freed (a double close that should
 * say EBADF would close ours).
 */
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
enum { HANDOVER_NONE, HANDOVER_READY, HANDOVER_TAKING, HANDOVER_DONE };
static _Atomic uint32_t handover;
static pid_t loader_tid;
/* The descriptors sysmon takes over: numbers in the loader's table (-1: none). */
enum {
	FD_SWITCH_PROG,
	FD_ENTRY_PROG,
	FD_EXIT_PROG,
	FD_MS,
	FD_EVENTS,
	FD_SWITCH_LINK,
	FD_WAKEUP_LINK,
	FD_ENTRY_LINK,
	FD_EXIT_LINK,
	NR_PRIV_FD
};
static int priv_fd[NR_PRIV_FD];
/* The links are held, never read: a link lives as long as its descriptor. */
static int prog_fd[FD_EXIT_PROG + 1] = {-1, -1, -1}, link_fd[NR_PRIV_FD - FD_SWITCH_LINK];

static void take_over(void)
{
	int fd[NR_PRIV_FD], err = 0;
	const char *step = "pidfd_open";
	int pidfd = (int)syscall(SYS_pidfd_open, loader_tid, PIDFD_THREAD);

	for (int i = 0; i < NR_PRIV_FD; i++)
		fd[i] = -1;
	if (pidfd < 0) {
		err = -errno;
	} else {
		step = "pidfd_getfd";
		for (int i = 0; i < NR_PRIV_FD && !err; i++)
			if (priv_fd[i] >= 0 &&
			    (fd[i] = (int)syscall(SYS_pidfd_getfd, pidfd, priv_fd[i], 0)) < 0)
				err = -errno;
		close(pidfd);
	}
	if (!err)
		err = finish(fd[FD_EVENTS], &step);
	if (err) {
		for (int i = 0; i < NR_PRIV_FD; i++)
			if (fd[i] >= 0)
				close(fd[i]);
		fail(step, err); /* the loader's table goes, and the program with it */
	} else {
		for (int i = FD_SWITCH_PROG; i <= FD_EXIT_PROG; i++)
			prog_fd[i] = fd[i];
		ms_fd = fd[FD_MS];
		for (int i = FD_SWITCH_LINK; i < NR_PRIV_FD; i++)
			link_fd[i - FD_SWITCH_LINK] = fd[i];
		on_now();
	}
	atomic_store_explicit(&handover, HANDOVER_DONE, memory_order_release);
	rg_futex_wake(&handover, 1);
}

/* The verifier and CO-RE take tens of ms: not on sysmon's, nor rg_run's, time. */
static void *loader(void *arg)
{
	const char *step;
	bool priv = unshare(CLONE_FILES) == 0;
	libbpf_print_fn_t old = libbpf_set_print(print_fn);
	int err = load_bpf(&step);

	libbpf_set_print(old);
	if (!err && !priv) {
		/* Shared table (unshare refused): finish here. */
		ms_fd = bpf_map__fd(obj->maps.ms);
		prog_fd[FD_SWITCH_PROG] = bpf_program__fd(obj->progs.mblock_switch);
		prog_fd[FD_ENTRY_PROG] = bpf_program__fd(obj->progs.mblock_entry);
		prog_fd[FD_EXIT_PROG] = bpf_program__fd(obj->progs.mblock_exit);
		if (!(err = finish(bpf_map__fd(obj->maps.events), &step))) {
			on_now();
			return NULL;
		}
	}
	if (err) {
		fail(step, err);
		if (!priv)
			mblock_bpf__destroy(obj); /* else the private table closes it all */
		return NULL;
	}
	loader_tid = (pid_t)syscall(SYS_gettid);
	priv_fd[FD_SWITCH_PROG] = bpf_program__fd(obj->progs.mblock_switch);
	priv_fd[FD_ENTRY_PROG] = bpf_program__fd(obj->progs.mblock_entry); /* -1 unless loaded */
	priv_fd[FD_EXIT_PROG] = bpf_program__fd(obj->progs.mblock_exit);
	priv_fd[FD_MS] = bpf_map__fd(obj->maps.ms);
	priv_fd[FD_EVENTS] = bpf_map__fd(obj->maps.events);
	priv_fd[FD_SWITCH_LINK] = bpf_link__fd(obj->links.mblock_switch);
	priv_fd[FD_WAKEUP_LINK] = bpf_link__fd(obj->links.mblock_wakeup);
	priv_fd[FD_ENTRY_LINK] = obj->links.mblock_entry ? bpf_link__fd(obj->links.mblock_entry) :
							   -1;
	priv_fd[FD_EXIT_LINK] = obj->links.mblock_exit ? bpf_link__fd(obj->links.mblock_exit) : -1;
	atomic_store_explicit(&handover, HANDOVER_READY, memory_order_release);
	/*
	 * sysmon takes over at its next look; with no rg_run left running, give
	 * up. Until DONE, not merely until sysmon has begun (TAKING): our table,
	 * which it copies from, goes with this thread.
	 */
	int64_t until = rg_nanotime() + 60 * 1000000000LL;
	uint32_t h;
	while ((h = atomic_load_explicit(&handover, memory_order_acquire)) != HANDOVER_DONE) {
		int64_t left = until - rg_nanotime();
		if (left <= 0 && h == HANDOVER_READY) {
			uint32_t ready = HANDOVER_READY;
			if (atomic_compare_exchange_strong_explicit(&handover, &ready, HANDOVER_DONE,
								    memory_order_acq_rel,
								    memory_order_acquire)) {
				fail("hand-over", -ETIMEDOUT);
				break;
			}
			continue;
		}
		rg_futex_wait(&handover, h, left > 0 ? left : 1000000);
	}
	/* obj's descriptors are numbers in this thread's table, which goes now: never use them. */
	return NULL;
}

/* A child shares the parent's maps but not its threads: off there (no reload). */
static void atfork_child(void)
{
	atomic_store_explicit(&state, RG_KBLOCK_OFF, memory_order_relaxed);
	atomic_store_explicit(&why, "forked from the process that loaded it",
			      memory_order_relaxed);
}

void rg_kblock_start(void)
{
	const char *e = getenv("RINGO_BPF");
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;

	if (atomic_exchange_explicit(&started, true, memory_order_acq_rel))
		return;
	parse_debug();
	if (e && strcmp(e, "0") == 0) {
		atomic_store_explicit(&why, "RINGO_BPF=0", memory_order_release);
		atomic_store_explicit(&state, RG_KBLOCK_OFF, memory_order_release);
		return;
	}
#ifdef RG_TSAN
	/*
	 * TSan models one file table per process: the loader's closes in its
	 * private table look like races with the Ms' fds (and libbpf is not
	 * instrumented). Off under TSan, as asynchronous preemption is.
	 */
	atomic_store_explicit(&why, "built with ThreadSanitizer", memory_order_release);
	atomic_store_explicit(&state, RG_KBLOCK_OFF, memory_order_release);
	return;
#endif
	tick_only = e && strcmp(e, "tick") == 0;
	switch_only = e && strcmp(e, "switch") == 0;
	pthread_atfork(NULL, NULL, atfork_child);
	atomic_store_explicit(&why, "loading", memory_order_release);
	/* Signals are for the Ms (preemption), not for the loader. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&t, &attr, loader, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		atomic_store_explicit(&why, "no loader thread", memory_order_release);
		atomic_store_explicit(&state, RG_KBLOCK_OFF, memory_order_release);
		return;
	}
	pthread_setname_np(t, "ringo-bpfload");
}

static bool on(void)
{
	return atomic_load_explicit(&state, memory_order_acquire) == RG_KBLOCK_ON;
}

/* Needs ents_lock. */
static void release_slot(int i)
{
	/* Not a word to ents[i].m: the M may be gone (m_exit frees it). */
	bpf_map_delete_elem(ms_fd, &ents[i].tid);
	__atomic_store_n(&slots[i].want_wake, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slots[i].blocked_since, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slots[i].tid, 0, __ATOMIC_RELAXED);
	ents[i] = (struct ent){0};
}

/* Needs ents_lock. */
static void claim_slot(struct rg_sched *s, struct rg_m *m, pid_t tid)
{
	for (int i = 0; i < RG_KBLOCK_SLOTS; i++) {
		if (ents[i].s)
			continue;
		struct rg_kblock_m v = {.m_addr = (uintptr_t)m, .slot = (__u32)i};
		__atomic_store_n(&slots[i].blocked_since, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&slots[i].want_wake, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&slots[i].tid, (__u32)tid, __ATOMIC_RELAXED);
		__u32 key = (__u32)tid;
		__atomic_store_n(&slots[i].on_cpu, 1, __ATOMIC_RELAXED); /* until it switches */
		if (bpf_map_update_elem(ms_fd, &key, &v, BPF_ANY) == 0)
			ents[i] = (struct ent){.s = s, .m = m, .tid = tid};
		return;
	}
	/* More Ms than slots: the rest are not watched. */
}

/* Register Ms that came and forget those that went, when the counts moved. */
static void sync_ms(struct rg_sched *s)
{
	static __thread struct {
		struct rg_m *m;
		pid_t tid;
	} cur[RG_KBLOCK_SLOTS];
	int n = 0;

	rg_lock(&s->lock);
	if (seen_all && s->mnext == seen_mnext && s->mcount == seen_mcount) {
		rg_unlock(&s->lock);
		return;
	}
	seen_all = true;
	seen_mnext = s->mnext;
	seen_mcount = s->mcount;
	for (struct rg_m *m = s->allm; m && n < RG_KBLOCK_SLOTS; m = m->alllink) {
		/* A new M sets its tid itself: look again next time. */
		pid_t tid = __atomic_load_n(&m->tid, __ATOMIC_RELAXED);
		if (!tid) {
			seen_all = false;
			continue;
		}
		cur[n].m = m;
		cur[n].tid = tid;
		n++;
	}
	rg_unlock(&s->lock);

	pthread_mutex_lock(&ents_lock);
	for (int i = 0; i < RG_KBLOCK_SLOTS; i++) {
		if (ents[i].s != s)
			continue;
		bool live = false;
		for (int j = 0; j < n && !live; j++)
			live = cur[j].m == ents[i].m && cur[j].tid == ents[i].tid;
		if (!live)
			release_slot(i);
	}
	for (int j = 0; j < n; j++) {
		bool known = false;
		for (int i = 0; i < RG_KBLOCK_SLOTS && !known; i++)
			known = ents[i].s == s && ents[i].m == cur[j].m && ents[i].tid == cur[j].tid;
		if (!known)
			claim_slot(s, cur[j].m, cur[j].tid);
	}
	/* Tell each M its slot, under s->lock: an M on allm is not freed meanwhile. */
	rg_lock(&s->lock);
	for (struct rg_m *m = s->allm; m; m = m->alllink)
		for (int i = 0; i < RG_KBLOCK_SLOTS; i++)
			if (ents[i].s == s && ents[i].m == m &&
			    ents[i].tid == __atomic_load_n(&m->tid, __ATOMIC_RELAXED)) {
				atomic_store_explicit(&m->kblock_slot, i + 1, memory_order_relaxed);
				break;
			}
	rg_unlock(&s->lock);
	pthread_mutex_unlock(&ents_lock);
}

int rg_kblock_scan(struct rg_sched *s, struct rg_kblock_report *out, int max)
{
	int n = 0;
	uint32_t ready = HANDOVER_READY;

	if (atomic_load_explicit(&handover, memory_order_acquire) == HANDOVER_READY &&
	    atomic_compare_exchange_strong_explicit(&handover, &ready, HANDOVER_TAKING,
						    memory_order_acq_rel, memory_order_relaxed))
		take_over();
	if (!on())
		return 0;
	sync_ms(s);
	pthread_mutex_lock(&ents_lock);
	for (int i = 0; i < RG_KBLOCK_SLOTS && n < max; i++) {
		if (ents[i].s != s)
			continue;
		uint64_t since = __atomic_load_n(&slots[i].blocked_since, __ATOMIC_ACQUIRE);
		if (since)
			out[n++] = (struct rg_kblock_report){
				.tid = ents[i].tid, .slot = (uint32_t)i, .since = (int64_t)since};
	}
	pthread_mutex_unlock(&ents_lock);
	return n;
}

bool rg_kblock_blocked(uint32_t slot, int64_t since)
{
	/* The slots stay mapped once loaded; a slot reused since has another time. */
	return on() && slot < RG_KBLOCK_SLOTS &&
	       (int64_t)__atomic_load_n(&slots[slot].blocked_since, __ATOMIC_ACQUIRE) == since;
}

void rg_kblock_want_wake(uint32_t slot)
{
	if (on() && slot < RG_KBLOCK_SLOTS)
		__atomic_store_n(&slots[slot].want_wake, 1, __ATOMIC_RELEASE);
}

void rg_kblock_forget(struct rg_sched *s)
{
	if (!on())
		return;
	pthread_mutex_lock(&ents_lock);
	for (int i = 0; i < RG_KBLOCK_SLOTS; i++)
		if (ents[i].s == s)
			release_slot(i);
	pthread_mutex_unlock(&ents_lock);
}

bool rg_kblock_sleep(int64_t ns)
{
	struct epoll_event evs[4];
	struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};

	if (!on() || tick_only)
		return false;
	int n = epoll_pwait2(ep_fd, evs, 4, &ts, NULL);
	for (int i = 0; i < n; i++) {
		if (evs[i].data.fd == KICK_TAG) {
			uint64_t v;
			if (read(kick_fd, &v, sizeof(v)) < 0)
				continue; /* another sysmon took it */
		} else {
			atomic_fetch_add_explicit(&st_wakes, 1, memory_order_relaxed);
		}
	}
	/* Read the records: the next one wakes us only once we have caught up. */
	if (pthread_mutex_trylock(&rb_lock) == 0) {
		ring_buffer__consume(rb);
		pthread_mutex_unlock(&rb_lock);
	}
	return true;
}

bool rg_kblock_cpu_contended(int cpu)
{
	return on() && cpu_aware && cpu >= 0 && cpu < ncpus &&
	       __atomic_load_n(&cpus->nr_running[cpu], __ATOMIC_RELAXED) > 1;
}

bool rg_kblock_on_cpu(int32_t kslot, pid_t tid)
{
	/* A slot released since (and maybe another M's now) has another thread. */
	return !on() || kslot <= 0 || kslot > RG_KBLOCK_SLOTS ||
	       __atomic_load_n(&slots[kslot - 1].tid, __ATOMIC_RELAXED) != (__u32)tid ||
	       __atomic_load_n(&slots[kslot - 1].on_cpu, __ATOMIC_RELAXED);
}

bool rg_kblock_cpu_idle(void)
{
	if (!on() || !cpu_aware)
		return true;
	for (int i = 0; i < ncpus; i++)
		if (__atomic_load_n(&cpus->idle[i], __ATOMIC_RELAXED))
			return true;
	return false;
}

void rg_kblock_kick(void)
{
	uint64_t one = 1;

	if (on() && write(kick_fd, &one, sizeof(one)) < 0)
		return; /* counter full: a wake-up is pending anyway */
}

bool rg_kblock_tracked(pid_t tid)
{
	bool found = false;

	if (!on())
		return false;
	pthread_mutex_lock(&ents_lock);
	for (int i = 0; i < RG_KBLOCK_SLOTS && !found; i++)
		found = ents[i].s && ents[i].tid == tid;
	pthread_mutex_unlock(&ents_lock);
	return found;
}

bool rg_kblock_prog_stats(uint64_t *run_ns, uint64_t *run_cnt)
{
	if (!on())
		return false;
	*run_ns = 0;
	/* The switch program's runs count the switches; every program's time counts. */
	for (int i = FD_SWITCH_PROG; i <= FD_EXIT_PROG; i++) {
		struct bpf_prog_info info = {0};
		__u32 len = sizeof(info);
		if (prog_fd[i] < 0)
			continue;
		if (bpf_obj_get_info_by_fd(prog_fd[i], &info, &len))
			return false;
		*run_ns += info.run_time_ns;
		if (i == FD_SWITCH_PROG)
			*run_cnt = info.run_cnt;
	}
	return true;
}

int64_t rg_kblock_last_block(pid_t tid)
{
	int64_t t = 0;

	if (!on())
		return 0;
	pthread_mutex_lock(&ents_lock);
	for (int i = 0; i < RG_KBLOCK_SLOTS; i++)
		if (ents[i].s && ents[i].tid == tid)
			t = (int64_t)__atomic_load_n(&slots[i].last_block, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&ents_lock);
	return t;
}

#endif /* RINGO_HAVE_BPF */
