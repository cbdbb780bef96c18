// SPDX-License-Identifier: BSD-2-Clause
/*
 * Goroutines: creation (Go's newproc), exit, park/ready, yield, and the
 * runtime's lifetime (rg_run). The scheduler loop itself is in sched.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch.h"
#include "fatal.h"
#include "poller.h"
#include "preempt.h"
#include "probes.h"
#include "runq.h"
#include "runtime.h"
#include "sanitizer.h"
#include "timer.h"

#define GOID_CACHE_BATCH 16

/* The scheduler rg_run is running now, for calls from outside goroutines. */
static _Atomic(struct rg_sched *) current_sched;
static int maxprocs_preset; /* rg_maxprocs before rg_run; 0 = default */

int64_t rg_nanotime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t rg_coarse_slack;

int64_t rg_coarse_nanotime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Two ticks: the coarse clock lags by up to one, more only when a tick is late. */
static void coarse_clock_init(void)
{
	struct timespec res;

	if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0 &&
	    res.tv_nsec <= 10000000)
		rg_coarse_slack = 2 * res.tv_nsec;
}

uint32_t rg_fastrand(void)
{
	struct rg_m *m = rg_getm();
	static _Atomic uint64_t shared_seed = 0x2545f4914f6cdd1dull;

	if (m)
		return rg_fastrand_m(m);
	uint64_t s = atomic_fetch_add_explicit(&shared_seed, 0xa0761d6478bd642full,
					       memory_order_relaxed);
	/* wyrand: one multiply, good enough for victim choice and stack offsets. */
	__uint128_t t = (__uint128_t)s * (s ^ 0xe7037ed1a0b428dbull);
	return (uint32_t)((t >> 64) ^ t);
}

uint32_t rg_fastrandn(uint32_t n)
{
	/* Lemire's multiply-shift: no division, negligible bias for small n. */
	return (uint32_t)(((uint64_t)rg_fastrand() * n) >> 32);
}

__attribute__((noinline)) int *rg_errno_location(void)
{
	/* Not const, unlike glibc's: every use after a switch finds the new thread's errno. */
	__asm__ volatile("" ::: "memory");
	return __errno_location();
}

/* ---- free goroutines (a dead G keeps its stack) ---- */

void rg_gfput(struct rg_sched *s, struct rg_p *p, struct rg_g *g)
{
	p->gfree[p->gfreecnt++] = g;
	if (p->gfreecnt < RG_GFREE_LOCAL_MAX)
		return;
	/* Full: the older half goes to the shared list (pointers only, no G touched). */
	int half = RG_GFREE_LOCAL_MAX / 2;
	rg_lock(&s->gfree_lock);
	int32_t cnt = atomic_load_explicit(&s->gfreecnt, memory_order_relaxed);
	if (cnt + half > s->gfreecap) {
		int32_t cap = s->gfreecap ? s->gfreecap * 2 : 1024;
		struct rg_g **a = realloc(s->gfree, (size_t)cap * sizeof(*a));
		if (!a) {
			rg_unlock(&s->gfree_lock);
			/* Out of memory: forget g (it stays dead in allg) rather than overflow. */
			p->gfreecnt--;
			return;
		}
		s->gfree = a;
		s->gfreecap = cap;
	}
	memcpy(&s->gfree[cnt], &p->gfree[0], (size_t)half * sizeof(*p->gfree));
	atomic_store_explicit(&s->gfreecnt, cnt + half, memory_order_relaxed);
	rg_unlock(&s->gfree_lock);
	memmove(&p->gfree[0], &p->gfree[half], (size_t)(p->gfreecnt - half) * sizeof(*p->gfree));
	p->gfreecnt -= half;
}

static struct rg_g *gfget(struct rg_sched *s, struct rg_p *p)
{
	if (p->gfreecnt == 0 && atomic_load_explicit(&s->gfreecnt, memory_order_relaxed) > 0) {
		rg_lock(&s->gfree_lock);
		int32_t cnt = atomic_load_explicit(&s->gfreecnt, memory_order_relaxed);
		int n = cnt < RG_GFREE_LOCAL_MAX / 2 ? cnt : RG_GFREE_LOCAL_MAX / 2;
		memcpy(&p->gfree[0], &s->gfree[cnt - n], (size_t)n * sizeof(*p->gfree));
		atomic_store_explicit(&s->gfreecnt, cnt - n, memory_order_relaxed);
		rg_unlock(&s->gfree_lock);
		p->gfreecnt = n;
	}
	return p->gfreecnt ? p->gfree[--p->gfreecnt] : NULL;
}

/* A new G with a fresh stack, registered for dumps. */
static struct rg_g *malg(struct rg_sched *s)
{
	struct rg_stack st;
	struct rg_g *g;

	if (rg_stack_alloc(&s->stacks, sizeof(*g), &st, (void **)&g) != 0)
		return NULL;
	g->stack = st;
	g->sched = s;

	rg_lock(&s->allg_lock);
	if (s->nallg == s->capallg) {
		size_t cap = s->capallg ? s->capallg * 2 : 1024;
		struct rg_g **a = realloc(s->allg, cap * sizeof(*a));
		if (!a) {
			rg_unlock(&s->allg_lock);
			/* The slot stays carved but unused; memory is short anyway. */
			return NULL;
		}
		s->allg = a;
		s->capallg = cap;
	}
	s->allg[s->nallg++] = g;
	rg_unlock(&s->allg_lock);
	return g;
}

static uint64_t newgoid(struct rg_sched *s, struct rg_p *p)
{
	if (p->goidcache == p->goidcacheend) {
		p->goidcache = atomic_fetch_add_explicit(&s->goidgen, GOID_CACHE_BATCH,
							 memory_order_relaxed) + 1;
		p->goidcacheend = p->goidcache + GOID_CACHE_BATCH;
	}
	return p->goidcache++;
}

/* ---- switching between a goroutine and its M's g0 ---- */

/*
 * The calling thread's errno, found without a call: every switch saves and
 * restores it, and two calls to rg_errno_location (each through the PLT to
 * glibc's) were 6% of a channel ping-pong. errno is in libc's static TLS
 * block, the same offset from every thread's pointer (%fs:0, which the asm
 * reads anew each time, so the address is never the old thread's).
 */
#if defined(__x86_64__)
static _Atomic intptr_t errno_tpoff; /* 0 until a first switch computes it (any: same value) */

static __attribute__((noinline, cold)) int *thread_errno_first(uintptr_t tp)
{
	int *e = rg_errno_location();

	atomic_store_explicit(&errno_tpoff, (intptr_t)((uintptr_t)e - tp), memory_order_relaxed);
	return e;
}

static inline int *thread_errno(void)
{
	uintptr_t tp;
	intptr_t off = atomic_load_explicit(&errno_tpoff, memory_order_relaxed);

	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	if (__builtin_expect(off == 0, 0))
		return thread_errno_first(tp);
	return (int *)(tp + (uintptr_t)off);
}
#else
static inline int *thread_errno(void)
{
	return rg_errno_location();
}
#endif

/*
 * Complete what prev asked for when it switched straight into the goroutine
 * running now (rg_park_handoff, goexit, rg_yield), as execute does on g0
 * after an ordinary switch: with nothing on its stack any more, a parked
 * goroutine is waiting and its commit releases what lets a waker find it; a
 * dead one goes to the free list; a yielder to the global queue. Runs first
 * thing after the switch.
 */
static void handoff_finish(struct rg_g *prev)
{
	struct rg_m *m = prev->m;

	prev->m = NULL;
	if (m->op == SWITCH_EXIT) {
		rg_gdestroy(m, prev);
		return;
	}
	if (m->op == SWITCH_YIELD) {
		rg_yield_finish(m, prev);
		return;
	}
	if (!rg_park_commit(m, prev))
		rg_fatal("goroutine %llu: a hand-off park's commit failed",
			 (unsigned long long)prev->goid);
}

/* Hand the running goroutine to g0 with m->op set; returns when it runs again. */
static inline void gswitch_to_g0(struct rg_m *m, struct rg_g *g)
{
	g->saved_errno = *thread_errno();
	rg_asan_start_switch(m->op == SWITCH_EXIT ? NULL : (void **)&g->asan_fake_stack,
			     m->g0_stack_lo, m->g0_stack_size);
	rg_tsan_switch_to(m->tsan_g0_fiber);
	struct rg_g *from = rg_arch_switch_out(&g->sp, m->g0_sp);
	/* Resumed, perhaps on another M: m is stale from here on. */
	rg_asan_finish_switch((void *)g->asan_fake_stack);
	if (from)
		handoff_finish(from);
	*thread_errno() = g->saved_errno;
}

/*
 * Go parks through g0 (mcall), and so did ringo: two switches, and a round
 * of the scheduling loop, per channel hand-off. When the goroutine that g
 * just readied (or, exiting, created) is in runnext and execute would run
 * it next anyway (rg_park_heir: nothing due first, the slice not over, no
 * locked thread), g switches straight into it, with m->op saying what the
 * other side must finish for g (handoff_finish). What execute does around
 * a switch is done here for next. Returns when g runs again.
 */
static void gswitch_direct(struct rg_m *m, struct rg_p *p, struct rg_g *g, struct rg_g *next)
{
	bool dying = m->op == SWITCH_EXIT;

	if (!rg_stack_canary_ok(&g->stack))
		rg_fatal("goroutine %llu stack overflow", (unsigned long long)g->goid);
	m->curg = next;
	next->m = m;
	atomic_store_explicit(&next->status, G_RUNNING, memory_order_relaxed);
	RG_COUNTER_ADD(p->runs, 1);
	RG_COUNTER_ADD(p->handoffs, 1);
	p->preempted = false;
	RG_PROBE(g_start, next->goid, p->id, m->id);

	g->saved_errno = *thread_errno();
	rg_asan_start_switch(dying ? NULL : (void **)&g->asan_fake_stack, (void *)next->stack.limit,
			     next->stack.hi - next->stack.limit);
	rg_tsan_switch_to(next->tsan_fiber);
	struct rg_g *from = rg_arch_switch_direct(&g->sp, next->sp, g);
	/* Resumed, perhaps on another M. */
	rg_asan_finish_switch((void *)g->asan_fake_stack);
	if (from)
		handoff_finish(from);
	*thread_errno() = g->saved_errno;
}

void rg_gswitch(struct rg_m *m, struct rg_g *g)
{
	gswitch_to_g0(m, g);
}

__attribute__((noreturn)) static void goexit(struct rg_g *g)
{
	struct rg_m *m = rg_getm();
	struct rg_g *next;

	m->op = SWITCH_EXIT;
	/* main's exit and a locked goroutine's are g0's business (rg_main_exited, the M's exit). */
	if (g->goid != 1 && !g->lockedm && (next = rg_park_heir(m, m->p)) != NULL)
		gswitch_direct(m, m->p, g, next);
	else
		gswitch_to_g0(m, g);
	rg_fatal("dead goroutine %llu resumed", (unsigned long long)g->goid);
}

static void gstart(void *arg, void *from)
{
	struct rg_g *g = arg;

	rg_asan_finish_switch(NULL);
	if (from)
		handoff_finish(from);
	*thread_errno() = 0;
	g->fn(g->arg);
	goexit(g);
}

/* Prepare g to run fn(arg) from the top of its stack. */
static void ginit(struct rg_sched *s, struct rg_p *p, struct rg_g *g, void (*fn)(void *), void *arg,
		  uint64_t parent)
{
	g->fn = fn;
	g->arg = arg;
	g->goid = newgoid(s, p);
	g->parent_goid = parent;
	g->saved_errno = 0;
	__atomic_store_n(&g->wait_reason, (uint8_t)WAIT_NONE, __ATOMIC_RELAXED);
	g->wait_obj = NULL;
	g->system = false;
	g->asan_fake_stack = NULL;
	atomic_store_explicit(&g->preempt_off, 0, memory_order_relaxed);
	g->lockedm = NULL;
	g->lock_count = 0;
	g->pinned = false;
	g->tsan_fiber = rg_tsan_create_fiber();
	g->sp = rg_arch_stack_init((void *)g->stack.top, gstart, g);
	atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
	RG_COUNTER_ADD(p->gcreated, 1);
}

int rg_go(void (*fn)(void *), void *arg)
{
	struct rg_m *m = rg_getm();

	if (!fn)
		return -EINVAL;
	if (!m || !m->p)
		return -EPERM;
	struct rg_sched *s = m->sched;
	struct rg_p *p = m->p;
	struct rg_g *g = gfget(s, p);
	if (!g) {
		g = malg(s);
		if (!g)
			return -ENOMEM;
	}
	uint64_t parent = m->curg ? m->curg->goid : 0;
	ginit(s, p, g, fn, arg, parent);
	RG_PROBE(g_create, g->goid, parent, (uintptr_t)fn);
	rg_runqput(p, g, true);
	rg_wakep_local(s, p);
	/* A synchronous safe point for a spawning loop, but only when a
	 * program calls (the runtime may call with its own locks held). */
	if (m->curg && atomic_load_explicit(&p->preempt, memory_order_relaxed))
		rg_preempt_point((uintptr_t)__builtin_return_address(0));
	return 0;
}

/* ---- park and ready ---- */

/* The running goroutine, about to park: what the goroutine dump shows of its wait. */
static inline struct rg_g *park_prepare(struct rg_m *m, enum rg_wait_reason reason, const void *obj)
{
	struct rg_g *g = m ? m->curg : NULL;

	if (!g)
		rg_fatal("park outside a goroutine");
	/* Relaxed atomics: leak checks and schedtrace read it while it changes. */
	__atomic_store_n(&g->wait_reason, (uint8_t)reason, __ATOMIC_RELAXED);
	g->wait_obj = obj;
	int64_t now = atomic_load_explicit(&m->sched->coarse_now, memory_order_relaxed);
	g->wait_since = now ? now : rg_nanotime(); /* 0: no sysmon (yet) */
	RG_PROBE(g_park, g->goid, (int)reason, (uintptr_t)obj);
	return g;
}

static void park_to_g0(struct rg_m *m, struct rg_g *g, bool (*commit)(struct rg_g *g, void *arg),
		       void *arg)
{
	m->op = SWITCH_PARK;
	m->park_commit = commit;
	m->park_arg = arg;
	gswitch_to_g0(m, g);
	__atomic_store_n(&g->wait_reason, (uint8_t)WAIT_NONE, __ATOMIC_RELAXED);
	g->wait_obj = NULL;
}

void rg_park(bool (*commit)(struct rg_g *g, void *arg), void *arg, enum rg_wait_reason reason,
	     const void *obj)
{
	struct rg_m *m = rg_getm();

	park_to_g0(m, park_prepare(m, reason, obj), commit, arg);
}

/* rg_park, switching straight into the partner the goroutine just readied when it can (gswitch_direct). */
void rg_park_handoff(bool (*commit)(struct rg_g *g, void *arg), void *arg,
		     enum rg_wait_reason reason, const void *obj)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = park_prepare(m, reason, obj);
	struct rg_p *p = m->p;
	struct rg_g *next = rg_park_heir(m, p);

	if (!next) {
		park_to_g0(m, g, commit, arg);
		return;
	}
	m->op = SWITCH_PARK;
	m->park_commit = commit;
	m->park_arg = arg;
	gswitch_direct(m, p, g, next);
	__atomic_store_n(&g->wait_reason, (uint8_t)WAIT_NONE, __ATOMIC_RELAXED);
	g->wait_obj = NULL;
}

static bool unlock_commit(struct rg_g *g, void *lock)
{
	(void)g;
	rg_unlock(lock);
	return true;
}

void rg_park_unlock(struct rg_lock *l, enum rg_wait_reason reason, const void *obj)
{
	rg_park_handoff(unlock_commit, l, reason, obj);
}

void rg_ready(struct rg_g *g)
{
	uint32_t st = G_WAITING;
	struct rg_m *m = rg_getm();
	struct rg_sched *s = g->sched;

	if (!atomic_compare_exchange_strong_explicit(&g->status, &st, G_RUNNABLE,
						     memory_order_acq_rel, memory_order_relaxed))
		rg_fatal("ready of goroutine %llu in status %u", (unsigned long long)g->goid, st);
	RG_PROBE(g_ready, g->goid, m && m->curg ? m->curg->goid : 0, m && m->p ? m->p->id : -1);
	if (m && m->p && m->sched == s) {
		rg_runqput(m->p, g, true); /* the waker's runnext: ping-pong stays on one P */
		rg_wakep_local(s, m->p);
	} else {
		rg_globrunqput_wakep(s, g);
	}
}

void rg_yield(void)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g)
		return;
	RG_PROBE(g_yield, g->goid);
	m->op = SWITCH_YIELD;
	/* Straight into the global queue's head when g0 would run it next. */
	struct rg_g *next = rg_yield_heir(m, m->p);
	if (next)
		gswitch_direct(m, m->p, g, next);
	else
		gswitch_to_g0(m, g);
}

/* ---- system calls (Go's entersyscall / exitsyscall) ---- */

void rg_syscall_enter(void)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g)
		return;
	int saved = errno;
	struct rg_sched *s = m->sched;
	struct rg_p *p = m->p;

	RG_PROBE(syscall_enter, g->goid, m->id);
	/* A thread in a system call may wake anyone: not a deadlock. */
	atomic_fetch_add_explicit(&s->pending_wakeups, 1, memory_order_relaxed);
	atomic_store_explicit(&g->status, G_SYSCALL, memory_order_relaxed);
	RG_COUNTER_ADD(p->syscalltick, 1);
	m->oldp = p;
	m->p = NULL;
	p->m = NULL;
	/* From here sysmon may retake p: release publishes the detach. */
	atomic_store_explicit(&p->status, P_SYSCALL, memory_order_release);
	if (atomic_load_explicit(&s->sysmon_sleeping, memory_order_relaxed))
		rg_sysmon_wake(s);
	errno = saved;
}

void rg_syscall_exit(void)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g || atomic_load_explicit(&g->status, memory_order_relaxed) != G_SYSCALL)
		return;
	int saved = errno;
	struct rg_sched *s = m->sched;
	struct rg_p *p = m->oldp;
	uint32_t st = P_SYSCALL;

	m->oldp = NULL;
	/* Fast path: nobody retook our P (Go's exitsyscallfast). */
	if (!atomic_compare_exchange_strong_explicit(&p->status, &st, P_IDLE, memory_order_acquire,
						     memory_order_relaxed)) {
		/* Retaken: any idle P will do. */
		rg_lock(&s->lock);
		p = rg_pidleget(s);
		rg_unlock(&s->lock);
	}
	if (p) {
		rg_acquirep(m, p);
		atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
		atomic_fetch_sub_explicit(&s->pending_wakeups, 1, memory_order_relaxed);
		RG_PROBE(syscall_exit, g->goid, m->id);
		errno = saved;
		return;
	}
	/* No P: queue the goroutine globally and let this M go idle (Go's exitsyscall0). */
	RG_PROBE(syscall_exit, g->goid, m->id);
	m->op = SWITCH_SYSCALL_EXIT;
	gswitch_to_g0(m, g);
	errno = saved;
}

void rg_goyield(void)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g)
		return;
	RG_PROBE(g_yield, g->goid);
	m->op = SWITCH_YIELD_LOCAL;
	gswitch_to_g0(m, g);
}

uint64_t rg_goid(void)
{
	struct rg_g *g = rg_getg();

	return g ? g->goid : 0;
}

static struct rg_sched *sched_of_caller(void)
{
	struct rg_m *m = rg_getm();

	return m ? m->sched : atomic_load_explicit(&current_sched, memory_order_acquire);
}

long rg_num_goroutines(void)
{
	struct rg_sched *s = sched_of_caller();

	long n = 0;

	if (!s)
		return 0;
	/* Go's gcount() is computed too, not counted: per-P counts summed (Ps never go away). */
	int32_t nallp = atomic_load_explicit(&s->nallp, memory_order_acquire);
	for (int i = 0; i < nallp; i++)
		n += atomic_load_explicit(&s->allp[i]->gcreated, memory_order_relaxed) -
		     atomic_load_explicit(&s->allp[i]->gexited, memory_order_relaxed);
	return n < 0 ? 0 : n;
}

int rg_current_p(void)
{
	struct rg_m *m = rg_getm();

	return m && m->curg && m->p ? m->p->id : -1;
}

int rg_p_stats(int id, struct rg_pstats *out)
{
	struct rg_sched *s = sched_of_caller();

	if (!out || id < 0 || id >= RG_MAXPROCS_LIMIT)
		return -EINVAL;
	if (!s)
		return -ESRCH;
	if (id >= atomic_load_explicit(&s->gomaxprocs, memory_order_acquire))
		return -EINVAL;
	struct rg_p *p = s->allp[id];
	out->schedtick = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
	out->runs = atomic_load_explicit(&p->runs, memory_order_relaxed);
	out->steals = atomic_load_explicit(&p->steals, memory_order_relaxed);
	out->stolen = atomic_load_explicit(&p->stolen, memory_order_relaxed);
	out->global_get = atomic_load_explicit(&p->global_get, memory_order_relaxed);
	out->runq_len = rg_runqlen(p);
	out->handoffs = atomic_load_explicit(&p->handoffs, memory_order_relaxed);
	return 0;
}

/* ---- GOMAXPROCS ---- */

static struct rg_p *palloc(int id)
{
	struct rg_p *p = aligned_alloc(RG_CACHELINE, sizeof(*p));

	if (!p)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->id = id;
	atomic_store_explicit(&p->status, P_DEAD, memory_order_relaxed); /* until listed idle */
	return p;
}

struct rg_p *rg_palloc(int id)
{
	return palloc(id);
}

/* Grow or shrink the P set of a running scheduler (the stop-the-world-free variant). */
static int procresize(struct rg_sched *s, int n)
{
	bool moved = false;

	rg_lock(&s->lock);
	int old = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
	for (int i = old; i < n; i++) {
		if (!s->allp[i] && !(s->allp[i] = palloc(i))) {
			rg_unlock(&s->lock);
			return -ENOMEM;
		}
	}
	if (n > atomic_load_explicit(&s->nallp, memory_order_relaxed))
		atomic_store_explicit(&s->nallp, n, memory_order_release);
	if (n < old) {
		/* Idle Ps above the new count leave the idle list now; running
		 * ones retire at their owner's next scheduling point. */
		struct rg_p **pp = &s->pidle;
		while (*pp) {
			struct rg_p *p = *pp;
			if (p->id >= n) {
				*pp = p->link;
				p->link = NULL;
				moved |= rg_pdead(s, p);
				atomic_fetch_sub_explicit(&s->npidle, 1, memory_order_seq_cst);
			} else {
				pp = &p->link;
			}
		}
	}
	/*
	 * Only dead Ps come back. A P above the old count that is not dead still
	 * has an M that has not retired it yet; it simply stays. (An idle P in
	 * the middle of a startm hand-off is never above the count: Ps out of
	 * range are kept off the idle list.)
	 */
	for (int i = old; i < n; i++) {
		struct rg_p *p = s->allp[i];
		if (atomic_load_explicit(&p->status, memory_order_relaxed) != P_DEAD)
			continue;
		atomic_store_explicit(&p->status, P_IDLE, memory_order_relaxed);
		p->link = s->pidle;
		s->pidle = p;
		atomic_fetch_add_explicit(&s->npidle, 1, memory_order_seq_cst);
	}
	atomic_store_explicit(&s->gomaxprocs, n, memory_order_release);
	rg_unlock(&s->lock);
	if (moved)
		rg_timer_kick(s); /* timers of dead Ps moved to P0 */
	rg_wakep(s, true);
	return 0;
}

static int maxprocs_from_env(void)
{
	const char *e = getenv("RINGO_MAXPROCS");

	if (e && *e) {
		char *end;
		long v = strtol(e, &end, 10);
		if (*end == 0 && v > 0)
			return v > RG_MAXPROCS_LIMIT ? RG_MAXPROCS_LIMIT : (int)v;
	}
	return 0;
}

static int initial_maxprocs(void)
{
	if (maxprocs_preset > 0)
		return maxprocs_preset;
	int n = maxprocs_from_env();
	return n > 0 ? n : rg_default_maxprocs();
}

int rg_maxprocs(int n)
{
	struct rg_sched *s = sched_of_caller();

	if (n > RG_MAXPROCS_LIMIT)
		n = RG_MAXPROCS_LIMIT;
	if (!s) {
		int old = initial_maxprocs();
		if (n > 0)
			maxprocs_preset = n;
		return old;
	}
	int old = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
	if (n > 0 && n != old) {
		maxprocs_preset = n;
		if (procresize(s, n) != 0)
			return old; /* out of memory: unchanged */
	}
	return old;
}

/* ---- the runtime's lifetime ---- */

static void sched_free(struct rg_sched *s)
{
	rg_poller_destroy(s); /* first: abandoned I/O may still target stacks */
	rg_stack_pool_destroy(&s->stacks);
	for (int i = 0; i < RG_MAXPROCS_LIMIT; i++) {
		if (s->allp[i])
			rg_timers_destroy(s->allp[i]);
		free(s->allp[i]);
	}
	free(s->allg);
	free(s->gfree);
	rg_globrunq_destroy(s);
	free(s);
}

void rg_sched_put(struct rg_sched *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		sched_free(s);
}

void rg_main_exited(struct rg_sched *s)
{
	atomic_store_explicit(&s->stopping, true, memory_order_release);
	rg_sched_wake_all(s);
	rg_note_wakeup(&s->main_done);
}

static int run(void (*main_fn)(void *), void *arg)
{
	static _Atomic bool active;
	bool no = false;
	int err;

	if (!main_fn)
		return -EINVAL;
	if (rg_getm())
		return -EBUSY;
	if (!atomic_compare_exchange_strong(&active, &no, true))
		return -EBUSY;

	struct rg_sched *s = calloc(1, sizeof(*s));
	if (!s) {
		atomic_store(&active, false);
		return -ENOMEM;
	}
	rg_fatal_install_handlers();
	rg_preempt_init(s);
	coarse_clock_init();
	rg_stack_pool_init(&s->stacks);
	s->start_ns = rg_nanotime();
	const char *mt = getenv("RINGO_MAXTHREADS");
	s->maxmcount = mt && atoi(mt) > 0 ? atoi(mt) : 10000;
	const char *dl = getenv("RINGO_DEADLOCK");
	s->deadlock_check = !(dl && strcmp(dl, "0") == 0);
	atomic_store_explicit(&s->refs, 1, memory_order_relaxed);

	int n = initial_maxprocs();
	for (int i = 0; i < n; i++) {
		if (!(s->allp[i] = palloc(i))) {
			err = -ENOMEM;
			goto fail;
		}
	}
	atomic_store_explicit(&s->gomaxprocs, n, memory_order_relaxed);
	atomic_store_explicit(&s->nallp, n, memory_order_relaxed);
	atomic_store_explicit(&s->allp[0]->status, P_IDLE, memory_order_relaxed);
	for (int i = n - 1; i >= 1; i--) {
		atomic_store_explicit(&s->allp[i]->status, P_IDLE, memory_order_relaxed);
		s->allp[i]->link = s->pidle;
		s->pidle = s->allp[i];
		atomic_fetch_add_explicit(&s->npidle, 1, memory_order_relaxed);
	}

	/* The main goroutine (id 1) on P0; the first M picks it up. */
	struct rg_g *g = malg(s);
	if (!g) {
		err = -ENOMEM;
		goto fail;
	}
	ginit(s, s->allp[0], g, main_fn, arg, 0);
	rg_runqput(s->allp[0], g, true);

	atomic_store_explicit(&current_sched, s, memory_order_release);
	err = rg_newm(s, s->allp[0], false);
	if (err) {
		atomic_store_explicit(&current_sched, NULL, memory_order_release);
		goto fail;
	}
	/* Without sysmon a long system call keeps its P: degraded, not broken. */
	rg_sysmon_start(s);

	/* The calling thread only waits: goroutines run on Ms, so rg_run can
	 * return even while abandoned goroutines keep their threads busy. */
	rg_note_sleep(&s->main_done);
	/* Signal registrations belong to this run: channels may be freed from now on. */
	rg_signal_run_end(s);

	/*
	 * Wait until every M has exited or is running an abandoned goroutine.
	 * Exits wake us; the 1 ms re-scan covers an M that was about to enter a
	 * goroutine when stopping was set (keeping a fence off the switch path).
	 */
	for (;;) {
		uint32_t seq = atomic_load_explicit(&s->mexits, memory_order_acquire);
		int in_sched = 0;
		rg_lock(&s->lock);
		for (struct rg_m *m = s->allm; m; m = m->alllink)
			in_sched += !atomic_load_explicit(&m->in_g, memory_order_relaxed);
		rg_unlock(&s->lock);
		if (in_sched == 0)
			break;
		rg_futex_wait(&s->mexits, seq, 1000000);
	}
	atomic_store_explicit(&current_sched, NULL, memory_order_release);
	rg_sched_put(s);
	atomic_store(&active, false);
	return 0;

fail:
	sched_free(s);
	atomic_store(&active, false);
	return err;
}

int rg_run(void (*main_fn)(void *), void *arg)
{
	/* Setting up reads files that may be missing (cgroup limits): not the caller's errno. */
	int saved = errno;
	int err = run(main_fn, arg);

	errno = saved;
	return err;
}

struct rg_sched *rg_sched_current(void)
{
	return sched_of_caller();
}
