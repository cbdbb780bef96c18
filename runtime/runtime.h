/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The runtime's core objects: G (goroutine), M (thread), P (logical
 * processor) and the scheduler that ties them together. Names and roles
 * follow Go's runtime2.go so that proc.go reads as a map of this code.
 * docs/design.md states who may touch which field, and with what ordering.
 */
#ifndef RINGO_RUNTIME_H
#define RINGO_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "lock.h"
#include "ringo.h"
#include "stack.h"

#define RG_CACHELINE 64
#define RG_MAXPROCS_LIMIT 1024

struct rg_g;
struct rg_m;
struct rg_p;
struct rg_sched;
struct rg_sudog;
struct rg_rtimer;
struct rg_tentry;
struct rg_poller;

/* Goroutine states (Go's _G* values, the ones ringo uses). */
enum rg_gstatus {
	G_IDLE = 0,	/* just allocated, not yet initialised */
	G_RUNNABLE = 1, /* on a run queue */
	G_RUNNING = 2,	/* owns an M and a P */
	G_SYSCALL = 3,	/* in a blocking system call, no P */
	G_WAITING = 4,	/* parked; wait_reason says why */
	G_DEAD = 6,	/* exited; on a free list */
};

/* Why a goroutine waits; printed in dumps and reported by the probes. */
enum rg_wait_reason {
	WAIT_NONE = 0,
	WAIT_SEMACQUIRE,
	WAIT_SYNC_MUTEX_LOCK,
	WAIT_WAITGROUP_WAIT,
	WAIT_PARK_TEST, /* runtime tests */
	WAIT_SYNC_RWMUTEX_RLOCK,
	WAIT_SYNC_RWMUTEX_LOCK,
	WAIT_SYNC_COND_WAIT,
	WAIT_SLEEP,
	WAIT_CHAN_SEND,
	WAIT_CHAN_RECV,
	WAIT_CHAN_SEND_NIL,
	WAIT_CHAN_RECV_NIL,
	WAIT_SELECT,
	WAIT_SELECT_NO_CASES,
	WAIT_IO,
	WAIT_REASON_COUNT,
};

const char *rg_wait_reason_string(enum rg_wait_reason r);

/* What a goroutine asks its M's scheduler loop (g0) to do once it is switched out. */
enum rg_switch_op {
	SWITCH_NONE = 0,
	SWITCH_PARK,  /* wait; run commit(g, arg) after the switch */
	SWITCH_YIELD, /* to the global queue (Go's Gosched) */
	SWITCH_YIELD_LOCAL, /* to the tail of the local ring (Go's goyield) */
	SWITCH_EXIT,  /* the goroutine returned */
	SWITCH_SYSCALL_EXIT, /* back from a system call with no P: to the global queue */
	SWITCH_PREEMPT, /* preempted (preempt.c): to the global queue, as a yield */
};

/* Semaphore wait record, embedded in the G (Go's sudog for sema.go). */
struct rg_semawait {
	uint32_t *addr;
	struct rg_g *next;	/* next waiter on the same address */
	struct rg_g *tail;	/* valid in the head waiter: last waiter on the address */
	struct rg_g *next_addr; /* valid in the head waiter: head of the next address */
	int64_t acquiretime;
	uint32_t ticket;	/* 1 when the releaser handed the count over directly */
};

struct rg_g {
	void *sp; /* saved stack pointer while switched out; arch layout */
	struct rg_stack stack;
	_Atomic uint32_t status;
	int saved_errno;
	uint64_t goid;
	uint64_t parent_goid;
	void (*fn)(void *);
	void *arg;
	struct rg_m *m;		 /* the M running it, or NULL */
	struct rg_sched *sched;
	/*
	 * A runtime helper (the signal delivery loop, iouring/signal.c), set by
	 * itself [sched->allg_lock]: rg_leakcheck skips it as goleak skips
	 * os/signal.loop. Go counts and dumps that goroutine, so
	 * rg_num_goroutines and dumps still do.
	 */
	bool system;

	/* Parking. */
	uint8_t wait_reason;
	const void *wait_obj;
	int64_t wait_since; /* ns, rg_nanotime() as of the park, within sysmon's tick (coarse_now) */
	int64_t queued_at;  /* ns, coarse_now when put on the global queue [sched lock] */
	struct rg_semawait sema;

	/* Channels: the sudog that woke us, and the select race's winner flag. */
	struct rg_sudog *param;
	_Atomic uint32_t select_done;

	/* Sanitizer fibers. */
	void *tsan_fiber;
	const void *asan_fake_stack;

	/*
	 * Preemption (preempt.c). preempt_off: rg_preempt_disable depth,
	 * written by the goroutine itself and read by its thread's signal
	 * handler. lockedm: rg_lock_thread's M (Go's g.lockedm), lock_count its
	 * nesting; pinned: locked only until a preempted goroutine runs again
	 * (RINGO_PREEMPT_PIN).
	 */
	_Atomic int32_t preempt_off;
	struct rg_m *lockedm;
	uint32_t lock_count;
	bool pinned;
};

/* Dead goroutines a P keeps for reuse before half go to the shared list. */
#define RG_GFREE_LOCAL_MAX 64

/* Per-P run queue ring size; a power of two (indices are free-running uint32). */
#define RG_RUNQ_SIZE 256u

enum rg_pstatus {
	P_IDLE = 0,
	P_RUNNING = 1,
	P_SYSCALL = 2, /* its M is in a system call; sysmon may hand it off */
	P_DEAD = 4,
};

struct rg_p {
	/* Touched by thieves: keep head, tail, ring and runnext together. */
	_Atomic uint32_t runqhead;
	_Atomic uint32_t runqtail;
	_Atomic(struct rg_g *) runnext;
	_Atomic(struct rg_g *) runq[RG_RUNQ_SIZE];

	/* Owner-only fields below (the M holding the P). */
	int id;
	_Atomic uint32_t status;
	struct rg_m *m;
	struct rg_p *link; /* idle list */
	uint64_t goidcache, goidcacheend;
	struct rg_g *gfree[RG_GFREE_LOCAL_MAX]; /* dead goroutines with their stacks */
	int gfreecnt;

	/* Goroutines created and exited on this P; their sum over Ps is the live count. */
	_Atomic int64_t gcreated, gexited;

	/* Timers started on this P [timers_lock]; timer0_when is read without it (0: none). */
	struct rg_spinlock timers_lock;
	struct rg_tentry *timers; /* a 4-ary heap by entry key (timer.c) */
	int32_t ntimers, captimers;
	_Atomic int64_t timer0_when;

	/* Bumped by each rg_syscall_enter; sysmon's snapshot tells a new call from a long one. */
	_Atomic uint32_t syscalltick;
	uint32_t sysmon_syscalltick; /* [sysmon] */
	int64_t sysmon_syscallwhen;  /* [sysmon] */

	/* Counters read by rg_p_stats from other threads (relaxed, written by the owner only). */
	_Atomic uint64_t schedtick;
	_Atomic uint64_t runs;
	_Atomic uint64_t steals;
	_Atomic uint64_t stolen;
	_Atomic uint64_t global_get;
	_Atomic uint64_t handoffs;

	/*
	 * Preemption (Go's p.preempt): sysmon sets preempt when the slice
	 * running here is over; the goroutine yields at its next safe point and
	 * no runnext goroutine inherits the slice; a fresh slice clears it.
	 * owner mirrors m for sysmon (set by acquirep, cleared by releasep),
	 * owner_tid its thread. The rest is sysmon's own snapshot of schedtick
	 * (Go's sysmontick) and of the thread's CPU clock at the slice start.
	 */
	_Atomic uint32_t preempt;
	_Atomic(struct rg_m *) owner;
	_Atomic pid_t owner_tid;
	_Atomic int32_t owner_kslot; /* the owner's kblock_slot */
	/* Owner-only: the last goroutine was preempted: take one global goroutine, not a batch. */
	bool preempted;
	uint64_t sysmon_schedtick;    /* [sysmon] */
	_Atomic uint64_t sysmon_runs; /* [sysmon] runs at its last look (rg_help_late); read by Ms */
	int64_t sysmon_runs_when;     /* [sysmon] when it last saw runs move */
	int64_t sysmon_schedwhen;  /* [sysmon] */
	int64_t sysmon_slice;	   /* [sysmon] this slice's length (jittered) */
	int64_t sysmon_cpu0;	   /* [sysmon] the thread's CPU time then, or -1 */
	pid_t sysmon_tid;	   /* [sysmon] the thread then */
	int32_t sysmon_tries;	   /* [sysmon] preemption requests this slice */
	struct rg_p *sysmon_lent;  /* [sysmon] the P lent while this one is stuck */
	bool sysmon_klent;	   /* [sysmon] lent because its M blocked in the kernel (kblock.c) */
	pid_t sysmon_ktid;	   /* [sysmon] that M's thread */
	/* Lent by sysmon (above GOMAXPROCS) while another P's goroutine is stuck in unsafe code. */
	_Atomic bool lent;
	struct rg_p *lent_for; /* that P: its runnext is stolen without the grace (runq.c) */
	/*
	 * Lent for a block in kblock slot lent_slot that began at lent_since
	 * and is not old enough yet: the M waits until lent_until, and gives
	 * the loan back if the block ends first [set by sysmon before the lend].
	 */
	int64_t lent_until;
	int64_t lent_since;
	uint32_t lent_slot;
	/*
	 * When completed I/O queued goroutines here without waking a helper M,
	 * or a wake-up was held back while no CPU was idle (rg_wakep_local);
	 * 0: none pending. The owner wakes one once they have waited
	 * RG_HELP_DELAY_NS, sysmon does when the owner is stuck in one of them
	 * (while a CPU is idle, or, for sysmon, when one goroutine runs on with
	 * its M on a CPU).
	 */
	_Atomic int64_t help_since;
} __attribute__((aligned(RG_CACHELINE)));

#define RG_DUMP_FRAMES 32 /* frames a dump shows per goroutine */

struct rg_m {
	int id;
	pid_t tid;
	pthread_t thread;
	struct rg_sched *sched;
	void *g0_sp;		/* the scheduler loop's saved stack pointer */
	struct rg_g *curg;	/* goroutine running now, NULL on g0 */
	struct rg_p *p;		/* attached P */
	struct rg_p *nextp;	/* P handed over by startm */
	struct rg_p *oldp;	/* P held before the system call in progress */
	bool spinning;
	struct rg_note park;
	struct rg_m *schedlink; /* idle M list */
	struct rg_m *alllink;	/* every live M [sched lock] */
	_Atomic bool in_g;	/* running a goroutine (read by rg_run at shutdown) */
	/* Asleep on a runtime lock: the kernel-fed handoff does not lend for that (kblock.c). */
	_Atomic bool lock_wait;
	/* Its slot with the kernel-fed program, plus one (0: never watched; a slot's tid says
	 * whether it is still this M's) [kblock.c]. */
	_Atomic int32_t kblock_slot;
	uint64_t rand;

	/* Request from the goroutine just switched out (read on g0). */
	enum rg_switch_op op;
	bool (*park_commit)(struct rg_g *g, void *arg);
	void *park_arg;

	/* g0's stack, for sanitizers and the overflow check. */
	void *g0_stack_lo;
	size_t g0_stack_size;
	void *tsan_g0_fiber;
	void *sigstack;

	/*
	 * Preemption: sysmon sends a signal only when it wins signal_pending
	 * 0 -> 1 (one in flight per M); the handler clears it and bumps
	 * preempt_gen. lockedg: the goroutine locked to this thread
	 * (rg_lock_thread); locked_sleeping: waiting for it [sched lock];
	 * locked_exit: it exited locked, so the thread goes too (Go's rule).
	 */
	_Atomic uint32_t signal_pending;
	_Atomic uint32_t preempt_gen;
	_Atomic uint32_t preempt_refused; /* the handler's "unsafe here" answers in a row */
	/* The thread's rg_tls_preempt_hint (set by the thread; written by sysmon under s->lock). */
	_Atomic uint32_t *_Atomic preempt_hint;
	int64_t signal_sent; /* [sysmon] */
	struct rg_g *lockedg;
	bool locked_sleeping;
	bool locked_exit;

	/*
	 * A dump's look at the goroutine running here (fatal.c): the dumper
	 * sets dump_want and sends the preemption signal; the handler walks
	 * the frames it interrupted into dump_pcs and publishes dump_n
	 * (frames + 1) for dump_g.
	 */
	_Atomic uint32_t dump_want;
	_Atomic int32_t dump_n;
	struct rg_g *dump_g;
	uintptr_t dump_pcs[RG_DUMP_FRAMES];
};

/* Scheduler instance: one per rg_run. Ms hold a reference until they exit. */
struct rg_sched {
	struct rg_lock lock; /* guards the fields marked [lock] */

	/*
	 * Global run queue [lock]: a growable ring of G pointers, so moving a
	 * batch never touches the goroutines themselves (each G lives on its
	 * own stack page: chasing links through them costs a TLB miss each).
	 * runqsize is also read without the lock.
	 */
	struct rg_g **gq;
	uint32_t gq_cap, gq_head; /* cap is a power of two */
	_Atomic int32_t runqsize;

	/* Idle Ms and Ps [lock]; the counts are also read without it. */
	struct rg_m *midle;
	int32_t nmidle;
	int32_t mcount; /* Ms created and not exited [lock] */
	int32_t mnext;	/* next M id [lock] */
	struct rg_p *pidle;
	_Atomic int32_t npidle;
	_Atomic int32_t nmspinning;
	_Atomic uint64_t mstarts; /* Ms woken or created for a P by rg_startm (tests, dumps) */
	_Atomic uint64_t unwatched_polls; /* sysmon's rescues of I/O nobody polled (tests) */

	/*
	 * Ps never move or die before the sched. allp[i] is written before the
	 * release store of gomaxprocs (or nallp) that covers i: index allp only
	 * below a count loaded with acquire.
	 */
	struct rg_p *allp[RG_MAXPROCS_LIMIT];
	_Atomic int32_t gomaxprocs;
	_Atomic int32_t nallp; /* Ps ever allocated */
	_Atomic int32_t maxprocs_target; /* pending rg_maxprocs change */

	_Atomic uint64_t goidgen;

	/* Dead goroutines shared between Ps [gfree_lock]: a growable array (a stack). */
	struct rg_lock gfree_lock;
	struct rg_g **gfree;
	int32_t gfreecap;
	_Atomic int32_t gfreecnt; /* also peeked at without the lock */

	/* Every goroutine ever allocated, for dumps [allg_lock]. */
	struct rg_lock allg_lock;
	struct rg_g **allg;
	size_t nallg, capallg;

	struct rg_stack_pool stacks;

	/* Lifetime. */
	_Atomic bool stopping;	   /* main returned: every M exits at its next schedule */
	_Atomic int32_t refs;	   /* live Ms + the rg_run caller */
	struct rg_m *allm;	   /* [lock] */
	_Atomic uint32_t mexits;   /* bumped (and futex-woken) by every exiting M */
	struct rg_note main_done;  /* main goroutine returned */

	int64_t start_ns;

	/*
	 * Wake-up sources the deadlock detector cannot see in the run queues or
	 * the poller's count of I/O waiters: goroutines in blocking syscalls.
	 * Non-zero means "not a deadlock".
	 */
	_Atomic int32_t pending_wakeups;
	bool deadlock_check; /* RINGO_DEADLOCK=0 turns it off */

	/* The I/O poller, created by the first blocking I/O call [poller_lock]. */
	_Atomic(struct rg_poller *) poller;
	struct rg_lock poller_lock;

	/* sysmon: a thread without a P that retakes Ps from long system calls. */
	pthread_t sysmon;
	bool sysmon_started;
	_Atomic uint32_t sysmon_note; /* futex word: 1 = wake */
	_Atomic uint32_t sysmon_sleeping; /* deep sleep: every P idle */
	/*
	 * rg_nanotime() as sysmon last read it, at most a tick (10 ms) old; 0
	 * until sysmon runs. Parking stamps wait_since with it: a clock read
	 * there was 4% of a channel hand-off, for a dump that shows minutes.
	 */
	_Atomic int64_t coarse_now;
	int32_t maxmcount; /* thread cap (Go's 10000; RINGO_MAXTHREADS) */
	int32_t nmidlelocked; /* Ms waiting for their locked goroutine [lock] */

	/* The M sleeping until the earliest timer (at most one; not on midle). */
	_Atomic uint32_t timer_sleeping;
	_Atomic int64_t timer_sleep_until;
	_Atomic uint32_t timer_note; /* futex word: 1 = kicked */
};

/* The calling thread's M, or NULL. Not inlined: a goroutine may resume on another thread. */
struct rg_m *rg_getm(void);
void rg_setm(struct rg_m *m);

/* The running goroutine, or NULL on g0 or outside the runtime. */
struct rg_g *rg_getg(void);

/* Monotonic clock in ns (parks use sysmon's copy, coarse_now). */
int64_t rg_nanotime(void);
/*
 * CLOCK_MONOTONIC_COARSE in ns: the time at the last tick, 3 ns to read
 * where rg_nanotime takes 27 (this VM's vDSO). It trails the real time by
 * less than rg_coarse_slack (0: not available, do not use it).
 */
int64_t rg_coarse_nanotime(void);
extern int64_t rg_coarse_slack;

/* Bump an owner-written counter: a plain load and store, no locked instruction. */
#define RG_COUNTER_ADD(ctr, n)                                                                   \
	atomic_store_explicit(&(ctr), atomic_load_explicit(&(ctr), memory_order_relaxed) + (n),  \
			      memory_order_relaxed)

/*
 * Hide where p came from, so that gcc does not fold a malloc and the memset
 * zeroing it into calloc: glibc 2.36's calloc bypasses the per-thread cache
 * (tcache), and a make and free of a chan struct{} took 50 ns through it
 * against 28 through the cache.
 */
#define RG_HIDE_ALLOC(p) __asm__("" : "+r"(p))

/* calloc(1, n) through malloc's per-thread cache. */
static inline void *rg_zalloc(size_t n)
{
	void *p = malloc(n);

	if (p) {
		RG_HIDE_ALLOC(p);
		memset(p, 0, n);
	}
	return p;
}

/* Per-M fast random numbers (wyrand). */
uint32_t rg_fastrand(void);
uint32_t rg_fastrandn(uint32_t n);

/* rg_fastrand from m's own state (wyrand), for a caller that holds its M already. */
static inline uint32_t rg_fastrand_m(struct rg_m *m)
{
	uint64_t s = m->rand += 0xa0761d6478bd642full;
	__uint128_t t = (__uint128_t)s * (s ^ 0xe7037ed1a0b428dbull);

	return (uint32_t)((t >> 64) ^ t);
}

/* rg_fastrandn for the caller's M (NULL: the shared state); Lemire's multiply-shift. */
static inline uint32_t rg_fastrandn_m(struct rg_m *m, uint32_t n)
{
	return m ? (uint32_t)(((uint64_t)rg_fastrand_m(m) * n) >> 32) : rg_fastrandn(n);
}

/* ---- proc.c: goroutines ---- */

/*
 * rg_park - park the running goroutine (Go's gopark). After it is switched
 * out, commit(g, arg) runs on g0; if it returns false the goroutine resumes
 * at once. commit typically releases the lock under which g was queued, so
 * a waker can only find g once it is fully switched out.
 */
void rg_park(bool (*commit)(struct rg_g *g, void *arg), void *arg, enum rg_wait_reason reason,
	     const void *obj);

/*
 * rg_park_handoff - rg_park for a commit that cannot fail. When the P's
 * runnext goroutine would run next anyway (a channel partner just readied),
 * the goroutine switches straight into it, without the round trip through
 * g0, and commit runs first thing on the partner's stack.
 */
void rg_park_handoff(bool (*commit)(struct rg_g *g, void *arg), void *arg,
		     enum rg_wait_reason reason, const void *obj);

/* rg_gdestroy - a goroutine that exited on m goes to m's P's free list (sched.c). */
void rg_gdestroy(struct rg_m *m, struct rg_g *g);

/*
 * rg_park_heir - the runnext goroutine that a park or an exit on m may
 * switch to directly, taken from the P (NULL: let findrunnable decide). sched.c.
 */
struct rg_g *rg_park_heir(struct rg_m *m, struct rg_p *p);

/*
 * rg_yield_heir - the global queue's head, for a yield on m to switch to
 * directly, returned with the scheduler lock held (NULL, not held: go
 * through g0). rg_yield_finish - on the heir's stack, the yielder prev to
 * the global queue's tail, and the lock released. sched.c.
 */
struct rg_g *rg_yield_heir(struct rg_m *m, struct rg_p *p);
void rg_yield_finish(struct rg_m *m, struct rg_g *prev);

/*
 * rg_park_commit - complete the park m's last goroutine g asked for, once
 * nothing runs on g's stack (execute on g0, or the goroutine g handed the M
 * to): g is waiting from now on, then its commit runs (a waker may ready g
 * as soon as that unlocks). Returns the commit's answer; true without one.
 */
static inline bool rg_park_commit(struct rg_m *m, struct rg_g *g)
{
	bool (*commit)(struct rg_g *, void *) = m->park_commit;
	void *arg = m->park_arg;

	m->park_commit = NULL;
	m->park_arg = NULL;
	atomic_store_explicit(&g->status, G_WAITING, memory_order_release);
	return !commit || commit(g, arg);
}

/* rg_park_unlock - park and release l after the switch (Go's goparkunlock). */
void rg_park_unlock(struct rg_lock *l, enum rg_wait_reason reason, const void *obj);

/*
 * rg_ready - make a parked goroutine runnable (Go's goready): into the
 * current P's runnext, waking an idle P if one exists. From a thread without
 * a P it goes to the global queue.
 */
void rg_ready(struct rg_g *g);

/* rg_goyield - the running goroutine goes to the tail of its P's ring (Go's goyield). */
void rg_goyield(void);

/* ---- sched.c: run queues and the scheduler loop ---- */

void rg_runqput(struct rg_p *p, struct rg_g *g, bool next);
bool rg_runqempty(struct rg_p *p);
void rg_globrunqput(struct rg_sched *s, struct rg_g *g);
/* rg_globrunqput, then rg_wakep for g (the queue's unlock is the fence on x86). */
void rg_globrunqput_wakep(struct rg_sched *s, struct rg_g *g);
/* Free the global queue's storage (the scheduler is gone). */
void rg_globrunq_destroy(struct rg_sched *s);
/*
 * Start a spinning M if there is an idle P and no spinner. Work published on
 * the caller's own P needs no fence before it (the owner runs it anyway if
 * the wake-up is missed); work published elsewhere calls with fence = true.
 */
void rg_wakep(struct rg_sched *s, bool fence);
/* rg_wakep for work on p, the caller's own P: only while some CPU is idle, else help_since (sched.c). */
void rg_wakep_local(struct rg_sched *s, struct rg_p *p);
/* How long goroutines readied by I/O wait on a P before a helper M is woken (netpoll_inject). */
#define RG_HELP_DELAY_NS 50000LL
/* Goroutines whose I/O completed, with no P at hand: runnable in the global queue, an idle P woken. */
void rg_netpoll_ready_global(struct rg_sched *s, struct rg_g **gs, int n);
/* Sysmon: wake helpers for Ps whose owner is busy while their I/O work waits. */
void rg_help_late(struct rg_sched *s, int64_t now);
/* A failing non-blocking call of the goroutine running on p (preempt.c): a polling loop? */
void rg_help_poll(struct rg_sched *s, struct rg_p *p);
/*
 * sysmon: wake an idle P for the global queue's head if it was queued before
 * sysmon's previous round (prev), i.e. waited one of sysmon's intervals.
 */
void rg_global_late(struct rg_sched *s, int64_t prev);

/* P and M hand-offs (sched.c); pidleget/pidleput/pdead need s->lock. */
/* p leaves the set; its timers go to P0. True if any did: rg_timer_kick after unlocking. */
bool rg_pdead(struct rg_sched *s, struct rg_p *p);
void rg_acquirep(struct rg_m *m, struct rg_p *p);
struct rg_p *rg_pidleget(struct rg_sched *s);
void rg_pidleput(struct rg_sched *s, struct rg_p *p);
void rg_startm(struct rg_sched *s, struct rg_p *p, bool spinning);
/* Find an M for p, whose system call sysmon retook (Go's handoffp). */
void rg_handoffp(struct rg_sched *s, struct rg_p *p);

/* ---- sysmon.c ---- */
int rg_sysmon_start(struct rg_sched *s);
/* Wake sysmon from its deep sleep (a P entered a system call, or shutdown). */
void rg_sysmon_wake(struct rg_sched *s);

/* Switch the running goroutine g out to m's g0, m->op already set (proc.c). */
void rg_gswitch(struct rg_m *m, struct rg_g *g);
/* A new, dead P with this id (proc.c). */
struct rg_p *rg_palloc(int id);

/* Runs the scheduler loop on the calling thread's g0 until the runtime stops. */
void rg_schedule_loop(struct rg_m *m);

/* Start a new M (thread) holding p. Returns 0 or -errno. */
int rg_newm(struct rg_sched *s, struct rg_p *p, bool spinning);

/* Drop a reference to the scheduler; the last one frees it. */
void rg_sched_put(struct rg_sched *s);

/* Wake every idle M (and the timer sleeper) so it sees the runtime stopping. */
void rg_sched_wake_all(struct rg_sched *s);

/* The scheduler of the calling M, else the one rg_run is running (for dumps). */
struct rg_sched *rg_sched_current(void);

/* ---- proc.c: called by the scheduler loop ---- */

/* A dead goroutine (and its stack) to p's free list. */
void rg_gfput(struct rg_sched *s, struct rg_p *p, struct rg_g *g);
/* The main goroutine returned: stop the runtime. */
void rg_main_exited(struct rg_sched *s);

/* ---- deadlock.c ---- */

/* Called by the last M to go idle, with s->lock held: all asleep means deadlock. */
void rg_checkdead(struct rg_sched *s);

/* Print every goroutine, or one (fatal.c); self is the caller, dumped from its live frames. */
void rg_dump_goroutines(struct rg_sched *s, struct rg_g *self);
void rg_dump_goroutine(struct rg_g *g, struct rg_g *self);

/* ---- iouring/signal.c ---- */
/* rg_run's main goroutine returned: stop every rg_signal_notify channel of s's run. */
void rg_signal_run_end(struct rg_sched *s);

/* ---- maxprocs.c ---- */
int rg_default_maxprocs(void);

#endif /* RINGO_RUNTIME_H */
