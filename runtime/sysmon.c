// SPDX-License-Identifier: BSD-2-Clause
/*
 * sysmon: Go's system monitor, a thread that holds no P. It wakes every 20
 * µs while there is something to watch, backing off to 10 ms when idle, and
 *  - retakes a P whose M has been in a system call for a whole tick while
 *    other work waits (or for 10 ms regardless), handing it to another M;
 *  - polls the poller when no M has for 10 ms, so completions are not left
 *    behind Ms that always have work of their own, and after 1-2 ms when
 *    a P is idle and no M will poll soon;
 *  - preempts a goroutine that has run a whole time slice while other work
 *    waits (Go's retake for running Ps; preempt.c does the rest);
 *  - lends a P at once when the kernel reports (kblock.c) that the M of a
 *    P with work waiting blocked outside a system call the runtime knows of.
 * When every P is idle it sleeps until a P enters a system call. With the
 * BPF program loaded it sleeps in epoll, which the program's records end.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "arch.h"
#include "fatal.h"
#include "kblock.h"
#include "poller.h"
#include "preempt.h"
#include "probes.h"
#include "runq.h"
#include "runtime.h"
#include "schedstats.h"
#include "timer.h"

#define SYSMON_MIN_DELAY_NS 20000LL
#define SYSMON_MAX_DELAY_NS 10000000LL
#define SYSMON_IDLE_TICKS 50 /* ticks without work before backing off */
#define SYSCALL_RETAKE_NS 10000000LL
#define NETPOLL_STALE_NS 10000000LL
#define UNWATCHED_NS 1000000LL /* poll_unwatched */
#define DEEP_SLEEP_NS 100000000LL
#define PREEMPT_RETRY_MIN_NS 50000LL
#define LEND_AFTER_TRIES 4
#define LEND_MIN_NS 2000000LL
#define PREEMPT_RETRY_MAX_NS 1000000LL
#define KBLOCK_MAX_REPORTS 64
#define KBLOCK_RECHECK_NS 1000000LL /* while a P is lent for a block, should a record be lost */
#define KBLOCK_MIN_NS RG_KBLOCK_MIN_NS
/*
 * A wait this short for a block to come of age is spent on the CPU: a
 * timed sleep that short ends 40-60 us late on this VM (the timer's
 * interrupt and a halt exit), three times the wait itself.
 */
#define KBLOCK_SPIN_NS KBLOCK_MIN_NS
/*
 * Lend this much before a block comes of age: waking the lent P's M takes
 * 10-15 us here, and that M waits out the rest itself (sched.c, lent_hold).
 */
#define LEND_LEAD_NS 15000LL

/* Retake Ps stuck in system calls; returns how many. */
static int retake(struct rg_sched *s, int64_t now)
{
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);
	int taken = 0;

	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		if (atomic_load_explicit(&p->status, memory_order_acquire) != P_SYSCALL)
			continue;
		/* A new call since our last look: give it a full tick. */
		uint32_t t = atomic_load_explicit(&p->syscalltick, memory_order_relaxed);
		if (p->sysmon_syscalltick != t) {
			p->sysmon_syscalltick = t;
			p->sysmon_syscallwhen = now;
			continue;
		}
		/* Nothing waits for it and others can take new work: let it be a while. */
		if (rg_runqempty(p) &&
		    atomic_load_explicit(&s->nmspinning, memory_order_relaxed) +
				    atomic_load_explicit(&s->npidle, memory_order_relaxed) >
			    0 &&
		    now - p->sysmon_syscallwhen < SYSCALL_RETAKE_NS)
			continue;
		uint32_t st = P_SYSCALL;
		if (!atomic_compare_exchange_strong_explicit(&p->status, &st, P_IDLE,
							     memory_order_acq_rel,
							     memory_order_relaxed))
			continue; /* its M came back first */
		RG_PROBE(p_handoff, p->id, -1, -1);
		rg_handoffp(s, p);
		taken++;
	}
	return taken;
}

/* Poll without blocking; what completed joins the global queue, an idle P woken. Returns how many. */
static int collect(struct rg_sched *s)
{
	struct rg_g *gs[128];
	int n = rg_netpoll(s, 0, gs, 128);

	rg_netpoll_ready_global(s, gs, n);
	return n;
}

/* Completions nobody collected for a while (every M busy): hand them out. */
static void poll_stale(struct rg_sched *s, int64_t now, int64_t *last_poll)
{
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);

	if (!pl || atomic_load_explicit(&pl->waiting, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&pl->blocked, memory_order_relaxed)) {
		*last_poll = now;
		return;
	}
	if (now - *last_poll < NETPOLL_STALE_NS)
		return;
	*last_poll = now;
	collect(s);
}

/*
 * Completions nobody will collect soon: an M left its CPU to another task
 * (sched.c, cpu_wanted_elsewhere) trusting the Ms still running to poll,
 * and theirs are goroutines that run on (a 10 ms request) or Ms the kernel
 * keeps off their CPUs. While a P is idle, no M is spinning or asleep in
 * the ring and goroutines wait for I/O, look again UNWATCHED_NS after each
 * running P last moved to another goroutine; when none has since, collect
 * what completed for an M to run on the idle P. Returns when to look next
 * (0: nothing to watch). A P that keeps switching goroutines polls at each
 * round, so then this only wakes sysmon once per UNWATCHED_NS.
 */
static int64_t poll_unwatched(struct rg_sched *s, int64_t now)
{
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);
	int64_t next = 0;

	if (!pl || atomic_load_explicit(&pl->waiting, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&pl->blocked, memory_order_relaxed) ||
	    atomic_load_explicit(&s->npidle, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&s->nmspinning, memory_order_relaxed) != 0)
		return 0;
	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		if (atomic_load_explicit(&p->status, memory_order_relaxed) != P_RUNNING)
			continue;
		int64_t at = p->sysmon_runs_when + UNWATCHED_NS;
		if (at > now && (!next || at < next))
			next = at;
	}
	if (next)
		return next; /* a P switched goroutines lately: its M polls at its next round */
	if (collect(s) > 0)
		atomic_fetch_add_explicit(&s->unwatched_polls, 1, memory_order_relaxed);
	return now + UNWATCHED_NS;
}

/* Is anything waiting for p's M: its queue, the global queue, an expired timer, retirement? */
static bool work_waits(struct rg_sched *s, struct rg_p *p, int64_t now)
{
	if (!rg_runqempty(p) || atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0)
		return true;
	int64_t w = atomic_load_explicit(&p->timer0_when, memory_order_relaxed);
	if (w && w <= now)
		return true;
	return p->id >= atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
}

/*
 * Go's preemptone: flag p's slice as over and signal its M. Under s->lock,
 * which m_exit takes to unlink an M before freeing it, and only for an M
 * still on allm: the signal never reaches a dead or reused thread id.
 */
static uint32_t preemptone(struct rg_sched *s, struct rg_p *p, uint64_t tick, int64_t now)
{
	uint32_t refused = 0; /* the handler's refusals in a row so far */

	rg_lock(&s->lock);
	struct rg_m *m = atomic_load_explicit(&p->owner, memory_order_acquire);
	if (m && atomic_load_explicit(&p->status, memory_order_relaxed) == P_RUNNING) {
		atomic_store_explicit(&p->preempt, 1, memory_order_seq_cst);
		/*
		 * A slice that began meanwhile cleared the request before our store
		 * (schedtick moves first): it would end that new slice at once, and
		 * let no runnext goroutine run. Take it back. The fence orders our
		 * store before the load, as the P's two stores are ordered (TSO).
		 */
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&p->schedtick, memory_order_seq_cst) != tick) {
			uint32_t one = 1;
			atomic_compare_exchange_strong_explicit(&p->preempt, &one, 0,
								memory_order_relaxed,
								memory_order_relaxed);
			rg_unlock(&s->lock);
			return 0;
		}
		for (struct rg_m *x = s->allm; x; x = x->alllink) {
			if (x == m) {
				/* On allm, so its thread and thread-locals live (m_exit). */
				_Atomic uint32_t *hint = atomic_load_explicit(&m->preempt_hint,
									      memory_order_relaxed);
				if (hint)
					atomic_store_explicit(hint, 1, memory_order_release);
				refused = atomic_load_explicit(&m->preempt_refused,
							       memory_order_relaxed);
				if (atomic_load_explicit(&m->in_g, memory_order_relaxed))
					rg_preempt_signal(m, now);
				break;
			}
		}
	}
	rg_unlock(&s->lock);
	return refused;
}

/*
 * A goroutine stuck in code no signal may stop (a long qsort in libc) keeps
 * its P, and the goroutines queued there would wait for it. Go's answer for
 * a system call is to hand the P to another M; here the M still runs the
 * goroutine on that P, so sysmon lends a P instead, above GOMAXPROCS: a
 * spinning M takes it and steals the stuck P's queue (and runs its timers).
 * It retires at its next scheduling point once the stuck slice has ended.
 */
static void lend_p(struct rg_sched *s, struct rg_p *stuck, const struct rg_kblock_report *young,
		   int64_t kblock_at)
{
	struct rg_p *p = NULL;
	int32_t id;

	rg_lock(&s->lock);
	for (id = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
	     id < RG_MAXPROCS_LIMIT; id++) {
		if (!s->allp[id] && !(s->allp[id] = rg_palloc(id)))
			break;
		if (atomic_load_explicit(&s->allp[id]->status, memory_order_relaxed) == P_DEAD) {
			p = s->allp[id];
			break;
		}
	}
	if (!p) {
		rg_unlock(&s->lock);
		return;
	}
	atomic_store_explicit(&p->lent, true, memory_order_relaxed);
	p->lent_for = stuck; /* published to the lent P's M by rg_startm, as are: */
	p->lent_until = young ? young->since + KBLOCK_MIN_NS : 0;
	if (young) {
		p->lent_slot = young->slot;
		p->lent_since = young->since;
	}
	atomic_store_explicit(&p->status, P_IDLE, memory_order_relaxed);
	if (id + 1 > atomic_load_explicit(&s->nallp, memory_order_relaxed))
		atomic_store_explicit(&s->nallp, id + 1, memory_order_release);
	rg_unlock(&s->lock);
	stuck->sysmon_lent = p;
	rg_preempt_count_lend();
	RG_PROBE(p_handoff, stuck->id, p->id, -2);
	/* Counted before the M is woken: on sysmon's CPU it may run first. */
	if (kblock_at)
		rg_kblock_count_lend(kblock_at, young != NULL);
	atomic_fetch_add_explicit(&s->nmspinning, 1, memory_order_seq_cst);
	rg_startm(s, p, true);
}

/*
 * A P above GOMAXPROCS (a lent P whose loan ended, or one a shrink retired)
 * keeps its goroutine until its next scheduling point, and thieves look only
 * below GOMAXPROCS: lending does not help the goroutines queued behind a
 * goroutine stuck there. Take them to the global queue instead (sysmon
 * consumes the ring as a thief does). Returns how many.
 */
static int drain_retiring(struct rg_sched *s, struct rg_p *p)
{
	struct rg_g *g;
	bool inherit;
	int n = 0;

	while ((g = rg_runqget(p, &inherit)) != NULL) {
		rg_globrunqput(s, g);
		n++;
	}
	if (n)
		rg_wakep(s, true);
	return n;
}

/* Did the kernel report thread tid blocked (kblock.c)? */
static bool kblocked(const struct rg_kblock_report *r, int nr, pid_t tid)
{
	for (int i = 0; i < nr; i++)
		if (r[i].tid == tid)
			return true;
	return false;
}

/* Thread tid's CPU time (Linux's per-thread CPU clock id, as pthread_getcpuclockid), or -1. */
static int64_t thread_cpu_ns(pid_t tid)
{
	struct timespec ts;

	if (!tid || clock_gettime((clockid_t)((~(unsigned)tid << 3) | 6), &ts) != 0)
		return -1;
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* sysmon sees P p at schedtick t for the first time: a new slice starts now. */
static void new_slice(struct rg_p *p, uint64_t t, int64_t now, bool chaos, uint64_t *rnd)
{
	int64_t slice = rg_preempt_conf.slice_ns;

	p->sysmon_schedtick = t;
	p->sysmon_schedwhen = now;
	p->sysmon_tries = 0;
	/*
	 * Up to 1/8 shorter, at random: Ps whose slices ended in lockstep
	 * would hand the global queue's goroutines out in a fixed pattern, so
	 * with K a multiple of P a goroutine would stay on one P and share its
	 * thread's luck with the kernel scheduler for good. (Shorter, not
	 * longer: a slice is a promise to the goroutines that wait.)
	 */
	*rnd ^= *rnd << 13, *rnd ^= *rnd >> 7, *rnd ^= *rnd << 17;
	p->sysmon_slice = slice - (int64_t)(*rnd % (uint64_t)(slice / 8 + 1));
	p->sysmon_tid = atomic_load_explicit(&p->owner_tid, memory_order_relaxed);
	p->sysmon_cpu0 = chaos ? -1 : thread_cpu_ns(p->sysmon_tid);
}

/*
 * Go's retake for running Ps. A P whose schedtick has not moved for a
 * whole slice while work waits gets its goroutine preempted; the request
 * is repeated every retry until the goroutine stops (the handler found it
 * at an unsafe point). In chaos mode every running goroutine is preempted
 * at every tick. Returns when sysmon must look again (0: no hurry).
 *
 * Unlike Go, a slice is measured in the CPU time of the P's thread (when
 * sysmon can read it), not in wall time: on a machine where other
 * processes take turns with our threads, every goroutine still gets the
 * same CPU per turn, which is what fair shares mean. On an idle machine
 * the two are the same; two slices of wall time is the limit.
 */
static int64_t preempt_long(struct rg_sched *s, int64_t now, bool chaos, uint64_t *rnd,
			    const struct rg_kblock_report *kr, int nkr)
{
	int32_t n = atomic_load_explicit(&s->nallp, memory_order_acquire);
	int64_t slice = rg_preempt_conf.slice_ns, next = 0;
	/* A tenth of a slice bounds how late sysmon sees a new slice start. */
	int64_t retry = slice / 10;

	if (retry < SYSMON_MIN_DELAY_NS)
		retry = SYSMON_MIN_DELAY_NS;
	else if (retry > PREEMPT_RETRY_MAX_NS)
		retry = PREEMPT_RETRY_MAX_NS;
	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		bool running = atomic_load_explicit(&p->status, memory_order_acquire) == P_RUNNING;
		uint64_t t = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
		if (p->sysmon_lent && (!running || t != p->sysmon_schedtick)) {
			/* Unstuck: the lent P retires at its next scheduling point. */
			atomic_store_explicit(&p->sysmon_lent->lent, false, memory_order_relaxed);
			p->sysmon_lent = NULL;
		}
		if (!running) {
			p->sysmon_schedtick = UINT64_MAX; /* running again means a new slice */
			continue;
		}
		if (t != p->sysmon_schedtick || !p->sysmon_schedwhen)
			new_slice(p, t, now, chaos, rnd);
		int64_t overrun = 0; /* how far past its deadline the slice is */
		if (!chaos) {
			int64_t at, deadline = p->sysmon_schedwhen + p->sysmon_slice;
			int64_t w = atomic_load_explicit(&p->timer0_when, memory_order_relaxed);
			if (!work_waits(s, p, now)) {
				/* A timer here will make work: look when it does. */
				at = w ? (w > deadline ? w : deadline) : 0;
				if (at && (!next || at < next))
					next = at;
				continue;
			}
			int64_t cpu;
			pid_t tid = atomic_load_explicit(&p->owner_tid, memory_order_relaxed);
			if (p->sysmon_cpu0 >= 0 && tid == p->sysmon_tid &&
			    (cpu = thread_cpu_ns(tid)) >= 0) {
				/* When the CPU time is used up if it keeps the CPU; at the
				 * latest two slices of wall time: a thread the kernel
				 * starves keeps the others waiting only so long. */
				int64_t by_cpu = now + p->sysmon_slice - (cpu - p->sysmon_cpu0);
				int64_t by_wall = p->sysmon_schedwhen + 2 * p->sysmon_slice;
				deadline = by_cpu < by_wall ? by_cpu : by_wall;
			}
			if (now < deadline) {
				/* Contended: by the deadline; soon enough to see a new slice. */
				at = deadline < now + retry ? deadline : now + retry;
				if (!next || at < next)
					next = at;
				continue;
			}
			/*
			 * Due. Should the goroutine be at an unsafe point (in ringo or
			 * libc), ask again soon, backing off from 50 us to the retry
			 * period: a loop around a runtime call is in the program's own
			 * code only part of the time.
			 */
			overrun = now - deadline;
			int shift = p->sysmon_tries < 5 ? p->sysmon_tries : 5;
			int64_t again = PREEMPT_RETRY_MIN_NS << shift;
			at = now + (again < retry ? again : retry);
			if (!next || at < next)
				next = at;
		}
		/* Blocked in the kernel: a signal cannot help; kblock_lend does. */
		if (nkr && kblocked(kr, nkr, atomic_load_explicit(&p->owner_tid, memory_order_relaxed)))
			continue;
		uint32_t refused = preemptone(s, p, t, now);
		if (p->sysmon_lent &&
		    atomic_load_explicit(&p->sysmon_lent->status, memory_order_relaxed) == P_DEAD)
			p->sysmon_lent = NULL; /* it ran out of work; lend again when work waits */
		/*
		 * Stuck for a whole slice more (at least 2 ms), not merely unlucky: a
		 * goroutine that makes system calls often is refused now and then,
		 * since a signal that races with one is taken at its exit, in libc.
		 */
		int64_t stuck = p->sysmon_slice > LEND_MIN_NS ? p->sysmon_slice : LEND_MIN_NS;
		if (++p->sysmon_tries >= LEND_AFTER_TRIES && !chaos && !p->sysmon_lent &&
		    overrun >= stuck && refused >= LEND_AFTER_TRIES &&
		    !atomic_load_explicit(&p->lent, memory_order_relaxed)) {
			if (p->id >= atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed))
				drain_retiring(s, p);
			else
				lend_p(s, p, NULL, 0);
		}
	}
	return next;
}

/*
 * Kernel-fed handoff: the M of a running P blocked in the kernel (a page
 * fault, a read() not wrapped in rg_syscall_enter, a futex in a library),
 * as bpf/mblock.bpf.c reports. When work waits for that P, lend one for
 * a block KBLOCK_MIN_NS old (the M may be anywhere, even inside the
 * runtime: its P stays its own; the lent P's M starts LEND_LEAD_NS ahead
 * and waits out the age itself), and retire the loan once the M runs again. Returns true while a
 * P is lent for a block; *recheck: when a block too young to lend for
 * will be old enough (0: none).
 */
static bool kblock_lend(struct rg_sched *s, int64_t now, const struct rg_kblock_report *kr, int nkr,
			int64_t *recheck, bool chaos, uint64_t *rnd, bool *lent_now)
{
	int32_t n = atomic_load_explicit(&s->nallp, memory_order_acquire);
	bool any = false;

	*recheck = 0;
	if (atomic_load_explicit(&s->stopping, memory_order_acquire))
		return false; /* no new Ms while the runtime winds down */

	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		if (!p->sysmon_klent)
			continue;
		if (p->sysmon_lent &&
		    atomic_load_explicit(&p->status, memory_order_acquire) == P_RUNNING &&
		    atomic_load_explicit(&p->owner_tid, memory_order_relaxed) == p->sysmon_ktid &&
		    kblocked(kr, nkr, p->sysmon_ktid)) {
			if (atomic_load_explicit(&p->sysmon_lent->status, memory_order_relaxed) !=
			    P_DEAD) {
				any = true;
				continue;
			}
			p->sysmon_lent = NULL; /* it ran out of work: lend again if work waits */
		} else if (p->sysmon_lent) {
			/* Running again: the lent P retires at its next scheduling point. */
			atomic_store_explicit(&p->sysmon_lent->lent, false, memory_order_relaxed);
			p->sysmon_lent = NULL;
		}
		p->sysmon_klent = false;
	}
	for (int j = 0; j < nkr; j++) {
		struct rg_p *p = NULL;
		for (int32_t i = 0; i < n && !p; i++) {
			struct rg_p *q = s->allp[i];
			if (atomic_load_explicit(&q->status, memory_order_acquire) == P_RUNNING &&
			    atomic_load_explicit(&q->owner_tid, memory_order_relaxed) == kr[j].tid)
				p = q;
		}
		if (!p || p->sysmon_lent || atomic_load_explicit(&p->lent, memory_order_relaxed) ||
		    !work_waits(s, p, now))
			continue;
		/* Lend ahead of the block's age (the M checks it): an M's wake-up is as long. */
		bool young = now - kr[j].since < KBLOCK_MIN_NS;
		bool retiring = p->id >= atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
		if (now - kr[j].since < KBLOCK_MIN_NS - (retiring ? 0 : LEND_LEAD_NS)) {
			int64_t at = kr[j].since + KBLOCK_MIN_NS - (retiring ? 0 : LEND_LEAD_NS);
			if (!*recheck || at < *recheck)
				*recheck = at;
			continue;
		}
		if (retiring) {
			if (drain_retiring(s, p))
				rg_kblock_count_lend(now, false);
			continue;
		}
		uint64_t t = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
		lend_p(s, p, young ? &kr[j] : NULL, now);
		if (!p->sysmon_lent)
			continue;
		/* The loan is for this slice: preempt_long retires it once the P moves on. */
		if (t != p->sysmon_schedtick)
			new_slice(p, t, now, chaos, rnd);
		p->sysmon_klent = true;
		p->sysmon_ktid = kr[j].tid;
		rg_kblock_want_wake(kr[j].slot);
		any = true;
		*lent_now = true;
	}
	return any;
}

static bool all_idle(struct rg_sched *s)
{
	int32_t g = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
	int32_t n = atomic_load_explicit(&s->nallp, memory_order_acquire);

	if (atomic_load_explicit(&s->npidle, memory_order_relaxed) != g)
		return false;
	/*
	 * A P above GOMAXPROCS (lent, or retiring) may still run a goroutine
	 * until its next scheduling point, with work queued behind it: one that
	 * blocks there must still be seen.
	 */
	for (int32_t i = g; i < n; i++)
		if (atomic_load_explicit(&s->allp[i]->status, memory_order_relaxed) == P_RUNNING)
			return false;
	return true;
}

/*
 * Has a P run a goroutine in the last DEEP_QUIET_NS (as sysmon's looks saw
 * it, rg_help_late), or since the last look? All Ps idle at one instant is
 * the normal state of an I/O-bound program between requests: deep sleep
 * there made every request's acquirep wake sysmon, a futex wake and a
 * context switch on the request's path (one-connection echo 48k -> 39k
 * msg/s once poll_unwatched had sysmon look every millisecond). Deep sleep
 * waits for a program quiet that long; until then sysmon keeps its timed
 * sleep, which nobody ends early, as Go's sysmon does. Capping that sleep
 * at 1 ms cost the echo as much (36k msg/s: sysmon's wake-ups disturb the
 * two CPUs' round trip), so a slice that starts meanwhile is seen up to one
 * sleep late (bimodal short p99 10.1-10.9 -> 11.0-11.2 ms).
 */
#define DEEP_QUIET_NS 10000000LL
static bool ran_lately(struct rg_sched *s)
{
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);
	int64_t now = rg_nanotime();

	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		if (atomic_load_explicit(&p->runs, memory_order_relaxed) !=
			    atomic_load_explicit(&p->sysmon_runs, memory_order_relaxed) ||
		    now - p->sysmon_runs_when < DEEP_QUIET_NS)
			return true;
	}
	return false;
}

/*
 * Shutdown: rg_sched_wake_all kicks the timed sleeper once, and an M on its
 * way into the poller (it saw stopping clear) slept on when another M's
 * non-blocking poll reaped that wake-up; lent Ps (the kernel-fed handoff)
 * made it frequent. The io_uring poller now owes such a wake to the sleeper
 * (wake_reaped_elsewhere); the epoll poller has not been audited for it, so
 * sysmon still kicks while an M is in the scheduler (rg_run waits for them).
 */
#define STOP_KICK_NS 2000000000LL
static void stop_kick(struct rg_sched *s)
{
	int64_t until = rg_nanotime() + STOP_KICK_NS;

	while (rg_nanotime() < until) {
		int left = 0;
		rg_lock(&s->lock);
		for (struct rg_m *m = s->allm; m; m = m->alllink)
			left += !atomic_load_explicit(&m->in_g, memory_order_relaxed);
		rg_unlock(&s->lock);
		if (left == 0)
			return;
		if (atomic_load_explicit(&s->timer_sleeping, memory_order_acquire))
			rg_timer_kick(s);
		rg_futex_wait(&s->sysmon_note, 0, 1000000);
	}
}

static void *sysmon_main(void *arg)
{
	struct rg_sched *s = arg;
	int64_t delay = SYSMON_MIN_DELAY_NS, last_poll = rg_nanotime(), next_preempt = 0;
	int idle = 0;
	uint64_t rnd = (uint64_t)rg_nanotime() | 1;
	struct rg_kblock_report kr[KBLOCK_MAX_REPORTS];
	bool klent = false;
	int64_t krecheck = 0;

	/* Wake on time: a preemption is due at a precise instant. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	while (!atomic_load_explicit(&s->stopping, memory_order_acquire)) {
		if (idle == 0)
			delay = SYSMON_MIN_DELAY_NS;
		else if (idle > SYSMON_IDLE_TICKS && delay < SYSMON_MAX_DELAY_NS)
			delay = delay * 2 > SYSMON_MAX_DELAY_NS ? SYSMON_MAX_DELAY_NS : delay * 2;
		int64_t sleep = delay;
		int64_t chaos = rg_preempt_chaos();
		if (chaos) {
			/* xorshift: a random interval in [chaos/8, chaos]. */
			rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
			sleep = chaos / 8 + (int64_t)(rnd % (uint64_t)(chaos - chaos / 8 + 1));
			if (sleep < 5000)
				sleep = 5000;
		} else if (next_preempt) {
			int64_t until = next_preempt - rg_nanotime();
			if (until < sleep)
				sleep = until < SYSMON_MIN_DELAY_NS ? SYSMON_MIN_DELAY_NS : until;
		}
		if (all_idle(s) && !ran_lately(s)) {
			/* Nothing runs, nor ran lately: sleep until a system call (or shutdown) wakes us. */
			atomic_store_explicit(&s->sysmon_sleeping, 1, memory_order_seq_cst);
			if (all_idle(s))
				sleep = DEEP_SLEEP_NS;
		}
		if (klent && sleep > KBLOCK_RECHECK_NS)
			sleep = KBLOCK_RECHECK_NS;
		if (krecheck) {
			int64_t until = krecheck - rg_nanotime();
			if (until < sleep)
				sleep = until < 1000 ? 1000 : until;
		}
		sleep = rg_schedstats(s, sleep); /* schedtrace probes, RINGO_DEBUG */
		bool deep = atomic_load_explicit(&s->sysmon_sleeping, memory_order_relaxed);
		if (!deep && krecheck && sleep <= KBLOCK_SPIN_NS) {
			/* A blocked M comes of age within microseconds: wait for it here. */
			int64_t end = rg_nanotime() + sleep;
			while (rg_nanotime() < end)
				rg_arch_relax();
		} else if (deep || !rg_kblock_sleep(sleep)) {
			/* Deep sleep is on the futex, which acquirep wakes. */
			rg_futex_wait(&s->sysmon_note, 0, sleep);
		}
		atomic_store_explicit(&s->sysmon_note, 0, memory_order_relaxed);
		atomic_store_explicit(&s->sysmon_sleeping, 0, memory_order_relaxed);

		int64_t now = rg_nanotime();
		int64_t prev = atomic_exchange_explicit(&s->coarse_now, now, memory_order_relaxed);
		int nkr = rg_kblock_scan(s, kr, KBLOCK_MAX_REPORTS);
		/* First: the lent P's M's wake-up is the queued goroutines' wait. */
		bool lent_now = false;
		klent = kblock_lend(s, now, kr, nkr, &krecheck, chaos != 0, &rnd, &lent_now);
		if (lent_now)
			sched_yield();
		idle = retake(s, now) ? 0 : idle + 1;
		rg_help_late(s, now);
		rg_global_late(s, prev);
		/* With a P idle, the sooner watch replaces the 10 ms one. */
		int64_t unwatched = poll_unwatched(s, now);
		if (unwatched)
			last_poll = now;
		else
			poll_stale(s, now, &last_poll);
		next_preempt = preempt_long(s, now, chaos != 0, &rnd, kr, nkr);
		if (unwatched && (!next_preempt || unwatched < next_preempt))
			next_preempt = unwatched;
	}
	rg_kblock_forget(s);
	stop_kick(s);
	rg_sched_put(s);
	return NULL;
}

void rg_sysmon_wake(struct rg_sched *s)
{
	/* Out of a deep sleep its clock is old: the goroutines about to run may park. */
	if (atomic_load_explicit(&s->coarse_now, memory_order_relaxed))
		atomic_store_explicit(&s->coarse_now, rg_nanotime(), memory_order_relaxed);
	atomic_store_explicit(&s->sysmon_note, 1, memory_order_release);
	rg_futex_wake(&s->sysmon_note, 1);
	/* Outside deep sleep sysmon may be in epoll (kblock.c); only shutdown must end it. */
	if (atomic_load_explicit(&s->stopping, memory_order_relaxed))
		rg_kblock_kick();
}

int rg_sysmon_start(struct rg_sched *s)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	/* The BPF program loads on a thread of its own: nobody waits for the verifier. */
	rg_kblock_start();
	/* Signals are for the Ms and the program's own threads, not for sysmon. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	err = pthread_create(&s->sysmon, &attr, sysmon_main, s);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
		return -err;
	}
	pthread_setname_np(s->sysmon, "ringo-sysmon");
	s->sysmon_started = true;
	return 0;
}
