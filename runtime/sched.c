// SPDX-License-Identifier: BSD-2-Clause
/*
 * The scheduler loop, findrunnable, and the M/P bookkeeping around it: Go's
 * proc.go schedule/findRunnable/stealWork/wakep/startm/stopm in C.
 *
 * Wake-up protocol (proc.go's header comment): whoever submits work calls
 * rg_wakep, which starts a spinning M only when there is an idle P and no M
 * is spinning already. A spinning M that finds work wakes a replacement, so
 * wake-ups chain instead of storming. The spinning -> idle transition
 * decrements nmspinning first and then rechecks every queue; the submitter
 * publishes work first and then checks nmspinning. Both sides are separated
 * by a full fence, so at least one of them sees the other.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "fatal.h"
#include "kblock.h"
#include "poller.h"
#include "preempt.h"
#include "probes.h"
#include "runq.h"
#include "runtime.h"
#include "sanitizer.h"
#include "timer.h"

#define STEAL_TRIES 4
#define GLOBAL_FAIRNESS_TICK 61
#define NETPOLL_BATCH 128

/* ---- Ps ---- */

void rg_acquirep(struct rg_m *m, struct rg_p *p)
{
	if (p->m || atomic_load_explicit(&p->status, memory_order_relaxed) != P_IDLE)
		rg_fatal("acquirep: P%d is not idle", p->id);
	m->p = p;
	p->m = m;
	atomic_store_explicit(&p->owner_tid, m->tid, memory_order_relaxed);
	atomic_store_explicit(&p->owner_kslot,
			      atomic_load_explicit(&m->kblock_slot, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&p->owner, m, memory_order_release);
	atomic_store_explicit(&p->status, P_RUNNING, memory_order_relaxed);
	/* A P runs again: sysmon must watch its time slices. */
	if (atomic_load_explicit(&m->sched->sysmon_sleeping, memory_order_seq_cst))
		rg_sysmon_wake(m->sched);
}

static struct rg_p *releasep(struct rg_m *m)
{
	struct rg_p *p = m->p;

	if (!p || p->m != m)
		rg_fatal("releasep: M%d does not hold its P", m->id);
	p->m = NULL;
	m->p = NULL;
	atomic_store_explicit(&p->owner, NULL, memory_order_relaxed);
	atomic_store_explicit(&p->status, P_IDLE, memory_order_relaxed);
	return p;
}

/*
 * A P leaves the set (above GOMAXPROCS, or lent and no longer needed).
 * Needs s->lock. Its timers go to P0 (Go's moveTimers): nobody looks at a
 * dead P's heap, and a goroutine sleeping on it would never wake.
 */
bool rg_pdead(struct rg_sched *s, struct rg_p *p)
{
	atomic_store_explicit(&p->lent, false, memory_order_relaxed);
	p->lent_for = NULL;
	p->lent_until = 0;
	atomic_store_explicit(&p->status, P_DEAD, memory_order_relaxed);
	return rg_timers_move(p, s->allp[0]) > 0;
}

/* Needs s->lock. */
void rg_pidleput(struct rg_sched *s, struct rg_p *p)
{
	if (!rg_runqempty(p))
		rg_fatal("pidleput: P%d has runnable goroutines", p->id);
	p->link = s->pidle;
	s->pidle = p;
	atomic_fetch_add_explicit(&s->npidle, 1, memory_order_seq_cst);
}

/* Needs s->lock. */
struct rg_p *rg_pidleget(struct rg_sched *s)
{
	struct rg_p *p = s->pidle;

	if (p) {
		s->pidle = p->link;
		p->link = NULL;
		atomic_fetch_sub_explicit(&s->npidle, 1, memory_order_seq_cst);
	}
	return p;
}

/* ---- Ms ---- */

/* Needs s->lock. */
static void mput(struct rg_sched *s, struct rg_m *m)
{
	m->schedlink = s->midle;
	s->midle = m;
	s->nmidle++;
}

/* Needs s->lock. */
static struct rg_m *mget(struct rg_sched *s)
{
	struct rg_m *m = s->midle;

	if (m) {
		s->midle = m->schedlink;
		m->schedlink = NULL;
		s->nmidle--;
	}
	return m;
}

/*
 * Start an M to run p (an idle P if NULL). With spinning, the caller already
 * counted the new M in nmspinning.
 */
void rg_startm(struct rg_sched *s, struct rg_p *p, bool spinning)
{
	rg_lock(&s->lock);
	if (!p) {
		p = rg_pidleget(s);
		if (!p) {
			rg_unlock(&s->lock);
			if (spinning)
				atomic_fetch_sub_explicit(&s->nmspinning, 1, memory_order_seq_cst);
			return;
		}
	}
	struct rg_m *m = mget(s);
	rg_unlock(&s->lock);
	atomic_fetch_add_explicit(&s->mstarts, 1, memory_order_relaxed);
	if (!m) {
		if (rg_newm(s, p, spinning) != 0) {
			/* No thread: give the P back; the running Ms will get to the work. */
			bool moved = false;
			rg_lock(&s->lock);
			if (p->id >= atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed))
				moved = rg_pdead(s, p);
			else
				rg_pidleput(s, p);
			rg_unlock(&s->lock);
			if (moved)
				rg_timer_kick(s); /* the timed sleeper recomputes its deadline */
			if (spinning)
				atomic_fetch_sub_explicit(&s->nmspinning, 1, memory_order_seq_cst);
		}
		return;
	}
	m->spinning = spinning;
	m->nextp = p;
	RG_PROBE(m_unpark, m->id);
	rg_note_wakeup(&m->park);
}

void rg_wakep(struct rg_sched *s, bool fence)
{
	/* StoreLoad: work published off our own P must be visible before we
	 * read the counters, or an M going idle and we could both miss it. */
	if (fence)
		atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->npidle, memory_order_relaxed) == 0)
		return;
	int32_t zero = 0;
	if (atomic_load_explicit(&s->nmspinning, memory_order_relaxed) != 0 ||
	    !atomic_compare_exchange_strong_explicit(&s->nmspinning, &zero, 1,
						     memory_order_seq_cst, memory_order_relaxed))
		return;
	rg_startm(s, NULL, true);
}

/*
 * Work was queued on p, the caller's own P, which its M runs anyway: wake
 * an M for an idle P only if a CPU is idle to run it (the kernel-fed
 * view, kblock.c). With every CPU busy, a woken M can only preempt a
 * running thread, as often as not one of ours holding a P, whose
 * goroutines then wait out the kernel's time slice (HTTP at two Ps beside
 * its load generator: p99 4 ms, against 0.4 ms at one P). A wake-up held
 * back becomes a request for help (help_since): the owner, between
 * goroutines, and sysmon, when the owner is stuck, wake a helper once the
 * work has waited RG_HELP_DELAY_NS and a CPU is idle (sysmon also when one
 * goroutine runs on with its M on a CPU: rg_help_late).
 */
void rg_wakep_local(struct rg_sched *s, struct rg_p *p)
{
	if (atomic_load_explicit(&s->npidle, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&s->nmspinning, memory_order_relaxed) != 0)
		return;
	if (!rg_kblock_cpu_idle()) {
		if (!atomic_load_explicit(&p->help_since, memory_order_relaxed))
			atomic_store_explicit(&p->help_since, rg_nanotime(), memory_order_relaxed);
		/* Should the caller poll instead of parking, its polls look (rg_help_poll). */
		atomic_store_explicit(&rg_tls_preempt_hint, 1, memory_order_relaxed);
		return;
	}
	rg_wakep(s, false);
}

/* Park the M until startm hands it a P, or the runtime stops (returns false). */
static bool stopm(struct rg_m *m)
{
	struct rg_sched *s = m->sched;

	rg_lock(&s->lock);
	if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
		rg_unlock(&s->lock);
		return false;
	}
	mput(s, m);
	if (s->nmidle + s->nmidlelocked == s->mcount)
		rg_checkdead(s); /* we were the last M awake */
	rg_unlock(&s->lock);

	RG_PROBE(m_park, m->id);
	rg_note_sleep(&m->park);
	rg_note_clear(&m->park);
	if (!m->nextp)
		return false; /* woken to exit */
	rg_acquirep(m, m->nextp);
	m->nextp = NULL;
	return true;
}

/* Wake every idle M so it exits (the runtime is stopping). */
void rg_sched_wake_all(struct rg_sched *s)
{
	rg_timer_kick(s);
	rg_sysmon_wake(s);
	rg_lock(&s->lock);
	struct rg_m *m;
	while ((m = mget(s)) != NULL) {
		m->nextp = NULL;
		rg_note_wakeup(&m->park);
	}
	/* Ms waiting for their locked goroutine are on no list but allm. */
	for (m = s->allm; m; m = m->alllink) {
		if (m->locked_sleeping) {
			m->locked_sleeping = false;
			s->nmidlelocked--;
			m->nextp = NULL;
			rg_note_wakeup(&m->park);
		}
	}
	rg_unlock(&s->lock);
}

static void resetspinning(struct rg_m *m)
{
	struct rg_sched *s = m->sched;

	m->spinning = false;
	if (atomic_fetch_sub_explicit(&s->nmspinning, 1, memory_order_seq_cst) <= 0)
		rg_fatal("resetspinning: negative nmspinning");
	/* We found work: someone else should look for more. */
	rg_wakep_local(s, m->p);
}

/* ---- system calls ---- */

void rg_handoffp(struct rg_sched *s, struct rg_p *p)
{
	/* Work queued on it, or anywhere: run it. */
	if (!rg_runqempty(p) || atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0) {
		rg_startm(s, p, false);
		return;
	}
	/* Nobody looks for work: this P's M should. */
	int32_t zero = 0;
	if (atomic_load_explicit(&s->nmspinning, memory_order_relaxed) +
			atomic_load_explicit(&s->npidle, memory_order_relaxed) ==
		    0 &&
	    atomic_compare_exchange_strong_explicit(&s->nmspinning, &zero, 1, memory_order_seq_cst,
						    memory_order_relaxed)) {
		rg_startm(s, p, true);
		return;
	}
	rg_lock(&s->lock);
	if (atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0) {
		rg_unlock(&s->lock);
		rg_startm(s, p, false);
		return;
	}
	bool moved = false;
	if (p->id >= atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed))
		moved = rg_pdead(s, p); /* shrunk meanwhile */
	else
		rg_pidleput(s, p);
	rg_unlock(&s->lock);
	/* Its timers are now an idle P's (or P0's): the timed sleeper must account for them. */
	if (moved || atomic_load_explicit(&p->timer0_when, memory_order_relaxed))
		rg_timer_kick(s);
}

/* ---- GOMAXPROCS changes at run time ---- */

/*
 * A P whose id is no longer below GOMAXPROCS retires at its owner's next
 * scheduling point: its queued goroutines move to the global queue.
 */
static bool retire_p(struct rg_m *m)
{
	struct rg_sched *s = m->sched;
	struct rg_p *p = m->p;

	rg_runqdrain(p, s); /* only the owner may take from its ring */
	rg_lock(&s->lock);
	/* Status changes happen under the lock, so procresize sees them whole. */
	if (p->id < atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed)) {
		rg_unlock(&s->lock); /* grown again meanwhile: keep it */
		return false;
	}
	releasep(m);
	bool moved = rg_pdead(s, p);
	rg_unlock(&s->lock);
	if (moved)
		rg_timer_kick(s);
	return true;
}

/* ---- goroutines from the poller ---- */

/* Does the poller have goroutines parked on it (worth a non-blocking poll)? */
static bool netpoll_waiters(struct rg_sched *s)
{
	struct rg_poller *pl = atomic_load_explicit(&s->poller, memory_order_acquire);

	return pl && atomic_load_explicit(&pl->waiting, memory_order_relaxed) > 0;
}

static void netpoll_ready(struct rg_g *g, struct rg_p *p)
{
	uint32_t st = G_WAITING;

	if (!atomic_compare_exchange_strong_explicit(&g->status, &st, G_RUNNABLE,
						     memory_order_acq_rel, memory_order_relaxed))
		rg_fatal("netpoll: goroutine %llu in status %u", (unsigned long long)g->goid, st);
	RG_PROBE(g_ready, g->goid, 0, p ? p->id : -1);
}

void rg_netpoll_ready_global(struct rg_sched *s, struct rg_g **gs, int n)
{
	if (n <= 0)
		return;
	for (int i = 0; i < n; i++) {
		netpoll_ready(gs[i], NULL);
		rg_globrunqput(s, gs[i]);
	}
	rg_wakep(s, true);
}

/*
 * Goroutines whose I/O completed (Go's injectglist): with a P, the first is
 * returned to run now and the rest queue on the P; without one, all go to
 * the global queue and an idle P is woken for them.
 *
 * Unlike Go, a batch on our P does not wake a helper M at once. Such
 * goroutines mostly run a few microseconds each, parse, queue their next
 * I/O and park: the batch is often done before a woken M (a futex wake and
 * an IPI, 10-60 us on a VM) could steal from it, and the helper's spinning,
 * stealing and separate ring enters cost more CPU than they save (HTTP
 * under wrk at GOMAXPROCS 2 on 2 CPUs: 15 against 11.5 us of CPU per
 * request, the load generator starved). The helper comes once the queued
 * goroutines have waited RG_HELP_DELAY_NS: woken by this M between
 * goroutines (help_check), or by sysmon when this M is busy in a long one.
 */
static struct rg_g *netpoll_inject(struct rg_m *m, struct rg_g **gs, int n)
{
	struct rg_sched *s = m->sched;
	struct rg_p *p = m->p;

	if (!p) {
		rg_netpoll_ready_global(s, gs, n);
		return NULL;
	}
	for (int i = 0; i < n; i++)
		netpoll_ready(gs[i], p);
	for (int i = 1; i < n; i++)
		rg_runqput(p, gs[i], false);
	if (n > 1 && !atomic_load_explicit(&p->help_since, memory_order_relaxed))
		atomic_store_explicit(&p->help_since, rg_nanotime(), memory_order_relaxed);
	return gs[0];
}

/*
 * Has the work queued on p since its help request (since) waited long
 * enough for a helper? An empty queue ends the request.
 */
static bool help_waited(struct rg_p *p, int64_t since)
{
	if (rg_runqempty(p)) {
		atomic_store_explicit(&p->help_since, 0, memory_order_relaxed);
		return false;
	}
	return rg_nanotime() - since >= RG_HELP_DELAY_NS;
}

/* The owner, between goroutines: wake a helper for work that waited long enough. */
static void help_check_slow(struct rg_sched *s, struct rg_p *p, int64_t since)
{
	if (!help_waited(p, since))
		return;
	atomic_store_explicit(&p->help_since, 0, memory_order_relaxed);
	rg_wakep_local(s, p);
}

/* Inline: between goroutines, nothing is usually waiting for help. */
static inline void help_check(struct rg_sched *s, struct rg_p *p)
{
	int64_t since = atomic_load_explicit(&p->help_since, memory_order_relaxed);

	if (since)
		help_check_slow(s, p, since);
}

/* Is p's owner M on a CPU now (the kernel-fed view; true when unknown)? Reads no M. */
static inline bool owner_on_cpu(struct rg_p *p)
{
	return rg_kblock_on_cpu(atomic_load_explicit(&p->owner_kslot, memory_order_relaxed),
				atomic_load_explicit(&p->owner_tid, memory_order_relaxed));
}

/*
 * The goroutine running on p failed a non-blocking call (a safe point,
 * preempt.h) while a wake-up for p's queue was held back: it may be a
 * polling loop, which never gets to that queue (chan_test's ping-pong:
 * its main goroutine polls for the worker's reply, the worker waits in
 * main's runnext). Once the request is RG_HELP_DELAY_NS old, wake a helper
 * whatever the CPUs do, as sysmon would for a goroutine that runs on, but
 * without waiting for sysmon's tick (up to 10 ms when it idles). Until
 * then every failing call looks again.
 */
void rg_help_poll(struct rg_sched *s, struct rg_p *p)
{
	int64_t since = atomic_load_explicit(&p->help_since, memory_order_relaxed);

	if (!since)
		return;
	if (!help_waited(p, since)) {
		if (atomic_load_explicit(&p->help_since, memory_order_relaxed))
			atomic_store_explicit(&rg_tls_preempt_hint, 1, memory_order_relaxed);
		return;
	}
	if (atomic_compare_exchange_strong_explicit(&p->help_since, &since, 0, memory_order_relaxed,
						    memory_order_relaxed))
		rg_wakep(s, true);
}

void rg_help_late(struct rg_sched *s, int64_t now)
{
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);

	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		int64_t since = atomic_load_explicit(&p->help_since, memory_order_relaxed);
		/* Has the owner run a goroutine since our last look (a runnext chain too)? */
		uint64_t runs = atomic_load_explicit(&p->runs, memory_order_relaxed);
		bool cycling = runs != atomic_load_explicit(&p->sysmon_runs, memory_order_relaxed);

		atomic_store_explicit(&p->sysmon_runs, runs, memory_order_relaxed);
		if (cycling || !p->sysmon_runs_when)
			p->sysmon_runs_when = now;
		if (!since || now - since < RG_HELP_DELAY_NS || rg_runqempty(p))
			continue;
		/* No idle CPU: wait while the owner cycles through its goroutines, or
		 * waits for a CPU itself; help if one goroutine runs on, on its CPU. */
		if (!rg_kblock_cpu_idle() && (cycling || !owner_on_cpu(p)))
			continue;
		/* The owner may be clearing it, or a new batch setting it: one wake either way. */
		if (atomic_compare_exchange_strong_explicit(&p->help_since, &since, 0,
							    memory_order_relaxed,
							    memory_order_relaxed))
			rg_wakep(s, true);
	}
}

/*
 * A goroutine waits in the global queue while a P idles and nobody looks for
 * work: a yield wakes nobody (as Go's Gosched), so a yielder queued behind a
 * goroutine that does not yield is helped here, by sysmon, once the queue's
 * head has waited a whole sysmon interval (20 us and up): queued_at is
 * sysmon's clock as of the push, so older than its previous round means so.
 */
void rg_global_late(struct rg_sched *s, int64_t prev)
{
	if (atomic_load_explicit(&s->runqsize, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&s->npidle, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&s->nmspinning, memory_order_relaxed) != 0)
		return;
	rg_lock(&s->lock);
	bool late = atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0 &&
		    s->gq[s->gq_head]->queued_at < prev;
	rg_unlock(&s->lock);
	if (late)
		rg_wakep(s, true);
}

/* A non-blocking poll from a running M: the first goroutine to run, or NULL. */
static struct rg_g *netpoll_nonblock(struct rg_m *m)
{
	struct rg_g *gs[NETPOLL_BATCH];
	int n = rg_netpoll(m->sched, 0, gs, NETPOLL_BATCH);

	return n > 0 ? netpoll_inject(m, gs, n) : NULL;
}

/* findrunnable's fairness tick: the poller's completions to the global queue's tail, then its head. */
static struct rg_g *fairness_turn(struct rg_m *m, struct rg_p *p)
{
	struct rg_sched *s = m->sched;
	struct rg_g *gs[NETPOLL_BATCH], *g;
	int n = netpoll_waiters(s) ? rg_netpoll(s, 0, gs, NETPOLL_BATCH) : 0;

	if (n <= 0 && !atomic_load_explicit(&s->runqsize, memory_order_relaxed))
		return NULL;
	for (int i = 0; i < n; i++)
		netpoll_ready(gs[i], p);
	rg_lock(&s->lock);
	for (int i = 0; i < n; i++)
		rg_globrunqput_locked(s, gs[i]);
	g = rg_globrunqget_locked(s, p, 1);
	rg_unlock(&s->lock);
	/* An idle P may take the rest (StoreLoad: the unlock's xchg). */
	if (n > 1)
		rg_wakep_local(s, p);
	return g;
}

/* ---- findrunnable ---- */

static unsigned gcd(unsigned a, unsigned b)
{
	while (b) {
		unsigned t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static struct rg_g *stealwork(struct rg_m *m)
{
	struct rg_sched *s = m->sched;
	struct rg_p *p = m->p;
	/* Acquire: the Ps below the count we read are allocated and initialised. */
	unsigned n = (unsigned)atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);
	int64_t now = 0;

	for (int i = 0; i < STEAL_TRIES; i++) {
		bool last = i == STEAL_TRIES - 1;
		/* Random start and a stride coprime with n visit every P once. */
		unsigned pos = rg_fastrandn(n);
		unsigned inc = 1 + rg_fastrandn(n);
		while (gcd(inc, n) != 1)
			inc = 1 + rg_fastrandn(n);
		for (unsigned k = 0; k < n; k++, pos = (pos + inc) % n) {
			struct rg_p *p2 = s->allp[pos];
			if (atomic_load_explicit(&s->stopping, memory_order_relaxed))
				return NULL;
			if (p2 == p)
				continue;
			/* Last round: run a victim's expired timers too (even an idle
			 * P's); the goroutines they ready land in our runnext. */
			if (last && atomic_load_explicit(&p2->timer0_when, memory_order_relaxed)) {
				if (!now)
					now = rg_nanotime();
				rg_check_timers(p2, now);
				bool inherit;
				struct rg_g *g = rg_runqget(p, &inherit);
				if (g)
					return g;
			}
			if (atomic_load_explicit(&p2->status, memory_order_relaxed) == P_IDLE)
				continue;
			struct rg_g *g = rg_runqsteal(p, p2, last);
			if (g)
				return g;
		}
	}
	return NULL;
}

/* After dropping the P: is there work anywhere that a P could run? */
static bool work_anywhere(struct rg_sched *s)
{
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);

	if (atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0)
		return true;
	for (int32_t i = 0; i < n; i++)
		if (!rg_runqempty(s->allp[i]))
			return true;
	return false;
}

/*
 * A P lent before the block it was lent for came of age (sysmon.c,
 * kblock_lend): the M's wake-up and the rest of that wait overlap. Wait
 * out the rest on the CPU (a timed sleep this short ends tens of
 * microseconds late here) and, if the block ends first, give the loan
 * back unused: the retire check after this parks the M again.
 */
static void lent_hold(struct rg_p *p)
{
	int64_t until = p->lent_until;

	p->lent_until = 0;
	while (rg_nanotime() < until) {
		if (!rg_kblock_blocked(p->lent_slot, p->lent_since)) {
			atomic_store_explicit(&p->lent, false, memory_order_relaxed);
			rg_kblock_count_withdrawn();
			return;
		}
		rg_arch_relax();
	}
}

/*
 * Our P has nothing queued: should its M leave the CPU to others instead
 * of polling the network and stealing? Yes when the kernel shows another
 * task waiting for this CPU, no CPU is idle, and another of our Ps is
 * running, whose M polls the network and gets to its queue. Otherwise the
 * runtime keeps one M per P busy wherever work appears, beside threads
 * that want the same CPUs (a load generator, another process), and the
 * kernel time-slices them: each M it preempts holds a P and its goroutines
 * for a slice (HTTP at two Ps: p99 4 ms, against 0.4 ms at one P). Not
 * when a P has work queued behind a goroutine that runs on, on its CPU,
 * since sysmon's last look (a busy poll for what we would steal: its owner
 * will not get to it): then we steal, as Go does.
 */
static bool cpu_wanted_elsewhere(struct rg_m *m)
{
	struct rg_sched *s = m->sched;
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);

	if (n - atomic_load_explicit(&s->npidle, memory_order_relaxed) <= 1 ||
	    !rg_kblock_cpu_contended(sched_getcpu()) || rg_kblock_cpu_idle())
		return false;
	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		if (p != m->p &&
		    atomic_load_explicit(&p->status, memory_order_relaxed) == P_RUNNING &&
		    !rg_runqempty(p) &&
		    atomic_load_explicit(&p->runs, memory_order_relaxed) ==
			    atomic_load_explicit(&p->sysmon_runs, memory_order_relaxed) &&
		    owner_on_cpu(p))
			return false;
	}
	/* What we leave queued is a request for help (rg_help_late), as a wake-up
	 * held back is: a spinning M was what its waker relied on. */
	int64_t now = 0;
	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		if (p != m->p && !rg_runqempty(p) &&
		    !atomic_load_explicit(&p->help_since, memory_order_relaxed))
			atomic_store_explicit(&p->help_since, now ? now : (now = rg_nanotime()),
					      memory_order_relaxed);
	}
	return true;
}

/*
 * Find a goroutine to run, blocking until one exists. Returns NULL when the
 * runtime stops. *inherit: the G came from runnext and shares the time slice.
 */
static struct rg_g *findrunnable(struct rg_m *m, bool *inherit)
{
	struct rg_sched *s = m->sched;
	struct rg_g *g;
	bool yield_cpu = false;

top:
	*inherit = false;
	yield_cpu = false;
	if (atomic_load_explicit(&s->stopping, memory_order_acquire))
		return NULL;
	if (!m->p && !stopm(m))
		return NULL; /* back from a system call that lost its P */
	struct rg_p *p = m->p;
	if (p->lent_until)
		lent_hold(p);
	if (p->id >= atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed) &&
	    !atomic_load_explicit(&p->lent, memory_order_relaxed) && retire_p(m))
		goto no_p;

	/* Run our expired timers first: they may make goroutines runnable. */
	if (atomic_load_explicit(&p->timer0_when, memory_order_relaxed))
		rg_check_timers(p, rg_nanotime());

	/*
	 * Fairness: now and then look at the poller and the global queue
	 * first, so goroutines that keep the local queue (or, yielding, the
	 * global queue) busy cannot starve completed I/O or queued work.
	 * What completed joins the global queue's tail, behind what waits
	 * there (a sleeping M puts what it reaps there when every P is busy),
	 * and the head runs: first come, first served across both. Injected
	 * into the local ring instead, completions kept that ring full and the
	 * global queue waited (600 goroutines there, echo at 1,000
	 * connections: p99 55 ms against a median of 0.86).
	 */
	if (atomic_load_explicit(&p->schedtick, memory_order_relaxed) % GLOBAL_FAIRNESS_TICK == 0)
		if ((g = fairness_turn(m, p)) != NULL)
			return g;

	g = rg_runqget(p, inherit);
	if (g) {
		help_check(s, p);
		return g;
	}
	if (atomic_load_explicit(&p->help_since, memory_order_relaxed))
		atomic_store_explicit(&p->help_since, 0, memory_order_relaxed);

	if (atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0) {
		rg_lock(&s->lock);
		/* After a preemption one, not a batch: preempted goroutines then
		 * take turns through the global queue's FIFO, across all Ps, instead
		 * of sitting in this P's ring while another P's goroutine runs on. */
		g = rg_globrunqget_locked(s, p, p->preempted ? 1 : 0);
		rg_unlock(&s->lock);
		if (g)
			return g;
	}

	if ((yield_cpu = cpu_wanted_elsewhere(m)))
		goto give_up;
	/* I/O that completed (this also submits the I/O our goroutines queued). */
	if (netpoll_waiters(s) && (g = netpoll_nonblock(m)) != NULL)
		return g;

	/* Steal, but let at most half of the busy Ps have a spinning M. */
	int32_t procs = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
	if (m->spinning || 2 * atomic_load_explicit(&s->nmspinning, memory_order_relaxed) <
				   procs - atomic_load_explicit(&s->npidle, memory_order_relaxed)) {
		if (!m->spinning) {
			m->spinning = true;
			atomic_fetch_add_explicit(&s->nmspinning, 1, memory_order_seq_cst);
			RG_PROBE(m_spin, m->id);
		}
		g = stealwork(m);
		if (g)
			return g;
	}

	/* Nothing: give up the P. Recheck the global queue under the lock. */
give_up:
	rg_lock(&s->lock);
	if (atomic_load_explicit(&s->runqsize, memory_order_relaxed) > 0) {
		g = rg_globrunqget_locked(s, p, 0);
		rg_unlock(&s->lock);
		return g;
	}
	releasep(m);
	bool moved = false;
	if (p->id >= atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed))
		moved = rg_pdead(s, p); /* shrunk meanwhile */
	else
		rg_pidleput(s, p);
	rg_unlock(&s->lock);
	if (moved)
		rg_timer_kick(s);

no_p:
	/*
	 * The delicate dance: drop out of the spinning count first, then look
	 * at every queue again. Work submitted before our decrement is visible
	 * now; work submitted after it sees nmspinning == 0 and wakes an M.
	 */
	if (m->spinning) {
		m->spinning = false;
		if (atomic_fetch_sub_explicit(&s->nmspinning, 1, memory_order_seq_cst) <= 0)
			rg_fatal("findrunnable: negative nmspinning");
	}
	/* Yielded the CPU: park, unless every P went idle meanwhile (the poller needs a sleeper). */
	if (yield_cpu && atomic_load_explicit(&s->npidle, memory_order_seq_cst) <
				 atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed)) {
		if (!stopm(m))
			return NULL;
		goto top;
	}
	if (work_anywhere(s)) {
		rg_lock(&s->lock);
		p = rg_pidleget(s);
		rg_unlock(&s->lock);
		if (p) {
			rg_acquirep(m, p);
			m->spinning = true;
			atomic_fetch_add_explicit(&s->nmspinning, 1, memory_order_seq_cst);
			goto top;
		}
	}

	/*
	 * One idle M sleeps until the earliest timer: in the poller (Go's
	 * blocking netpoll) once there is one, so I/O completions, timers and
	 * wake-ups all end the same sleep; on a futex before. Woken, it takes
	 * an idle P to run what completed, or to run the expired timers (its
	 * steal rounds reach timers on any P).
	 */
	int64_t next = rg_timers_next(s);
	if (next || netpoll_waiters(s)) {
		struct rg_g *gs[NETPOLL_BATCH];
		int n = rg_timer_sleep(s, next, gs, NETPOLL_BATCH);
		if (n >= 0) {
			if (atomic_load_explicit(&s->stopping, memory_order_acquire))
				return NULL; /* abandoned with the rest */
			rg_lock(&s->lock);
			p = rg_pidleget(s);
			rg_unlock(&s->lock);
			if (p) {
				rg_acquirep(m, p);
				if (n > 0)
					return netpoll_inject(m, gs, n);
				m->spinning = true; /* it may steal: a timer can be on any P */
				atomic_fetch_add_explicit(&s->nmspinning, 1, memory_order_seq_cst);
				goto top;
			}
			/* Every P is busy: their owners run what completed and their timers. */
			if (n > 0)
				netpoll_inject(m, gs, n);
		}
	}

	if (!stopm(m))
		return NULL;
	goto top;
}

/* ---- executing goroutines ---- */

/*
 * May the M skip findrunnable for the goroutine it is about to pick from a
 * queue findrunnable would take it from too? Only when nothing findrunnable
 * checks first is due (a stop, this P's retirement, an expired timer, the
 * fairness tick with something for it to take) and the M is not locked to a
 * goroutine. A timer that is merely pending (a connection's deadline) used
 * to count too: a channel round trip with one pending cost 172 ns, 93 without.
 *
 * The fairness tick counts only when there is something it would take: a
 * runnext chain does not move schedtick, so one that started on a multiple
 * of 61 would otherwise never skip findrunnable.
 */
static inline bool timer_due(struct rg_p *p)
{
	int64_t when = atomic_load_explicit(&p->timer0_when, memory_order_relaxed);

	/*
	 * A daemon's P nearly always holds some deadline, seconds away: the
	 * coarse clock rules that out in 3 ns; the 27 ns clock read decides the
	 * last two ticks before it.
	 */
	if (!when || (rg_coarse_slack && when > rg_coarse_nanotime() + rg_coarse_slack))
		return false;
	return when <= rg_nanotime();
}

static inline bool nothing_due_first(struct rg_m *m, struct rg_p *p)
{
	struct rg_sched *s = m->sched;

	return !m->lockedg && !m->locked_exit && !timer_due(p) &&
	       (atomic_load_explicit(&p->schedtick, memory_order_relaxed) % GLOBAL_FAIRNESS_TICK !=
			0 ||
		(atomic_load_explicit(&s->runqsize, memory_order_relaxed) == 0 &&
		 !netpoll_waiters(s))) &&
	       p->id < atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed) &&
	       !atomic_load_explicit(&s->stopping, memory_order_acquire);
}

/*
 * After a park: the goroutine that the parked one readied last (a channel
 * partner, in the P's runnext) runs next without a round of findrunnable,
 * when findrunnable would take it anyway: nothing due before it (timers,
 * the fairness tick, a stop, a retirement) and neither this M nor that
 * goroutine locked to a thread. It shares the slice (runnext). NULL:
 * findrunnable decides.
 */
static struct rg_g *park_next(struct rg_m *m, struct rg_p *p)
{
	struct rg_sched *s = m->sched;
	struct rg_g *next = atomic_load_explicit(&p->runnext, memory_order_relaxed);

	if (!next || !nothing_due_first(m, p))
		return NULL;
	if (!atomic_compare_exchange_strong_explicit(&p->runnext, &next, NULL, memory_order_acquire,
						     memory_order_relaxed))
		return NULL; /* stolen */
	/* Ours only now (a thief may have run and recycled what we read before). */
	if (next->lockedm) {
		/* Back, for findrunnable's hand-over to its M (only the owner fills runnext). */
		atomic_store_explicit(&p->runnext, next, memory_order_release);
		return NULL;
	}
	help_check(s, p);
	return next;
}

struct rg_g *rg_park_heir(struct rg_m *m, struct rg_p *p)
{
	/* The slice a runnext chain shares is over: rg_schedule_loop queues the heir. */
	if (atomic_load_explicit(&p->preempt, memory_order_relaxed))
		return NULL;
	return park_next(m, p);
}

/* May a yield on m hand over the global queue's head at once (yield_to_global, rg_yield_heir)? */
static inline bool yield_takes_global_head(struct rg_m *m, struct rg_p *p)
{
	struct rg_sched *s = m->sched;

	return atomic_load_explicit(&s->npidle, memory_order_relaxed) ==
		       atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed) - 1 &&
	       rg_runqempty(p) && nothing_due_first(m, p);
}

/*
 * g yielded (Go's Gosched): to the global queue's tail. When findrunnable
 * would next take the lock again to get a goroutine from that queue (this
 * P has nothing local, no timer, no fairness tick due, a plain M, no stop
 * or retirement pending), get it in the same hold of the lock and return
 * it; else NULL, and findrunnable decides. Only while every other P is
 * idle: when other Ps yield too, the longer hold makes the lock contended
 * (GoschedPingPong at two Ps went from 290 to 1,500 ns).
 *
 * As Go's Gosched, a yield wakes no idle P: waking one kept two goroutines
 * that yield to each other on two Ps, contending for this lock (GoschedPingPong
 * at two Ps: 250-420 ns, 58-100 without). A yielder that waits behind a
 * goroutine that does not yield gets its P from sysmon (rg_global_late).
 */
static struct rg_g *yield_to_global(struct rg_m *m, struct rg_p *p, struct rg_g *g)
{
	struct rg_sched *s = m->sched;
	struct rg_g *next = NULL;
	bool fast = yield_takes_global_head(m, p);

	atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
	rg_lock(&s->lock);
	rg_globrunqput_locked(s, g);
	/* A goroutine locked to another M goes through findrunnable's hand-over. */
	if (fast && !s->gq[s->gq_head]->lockedm)
		next = rg_globrunqget_locked(s, p, p->preempted ? 1 : 0);
	rg_unlock(&s->lock);
	if (next && atomic_load_explicit(&p->help_since, memory_order_relaxed))
		atomic_store_explicit(&p->help_since, 0, memory_order_relaxed); /* as findrunnable */
	return next;
}

/*
 * rg_yield's direct path: when yield_to_global would hand over the global
 * queue's head in the same hold of the lock, take the head here instead and
 * keep holding the lock. The yielder switches straight into it, and the heir,
 * once the yielder's registers are saved, queues the yielder at the tail and
 * unlocks (rg_yield_finish): the yielder cannot be found before then. The
 * heir starts a slice of its own, as execute would give it. NULL (lock not
 * held): go through g0, which also decides for a lone yielder.
 */
struct rg_g *rg_yield_heir(struct rg_m *m, struct rg_p *p)
{
	struct rg_sched *s = m->sched;

	if (!atomic_load_explicit(&s->runqsize, memory_order_relaxed) ||
	    !yield_takes_global_head(m, p))
		return NULL;
	rg_lock(&s->lock);
	if (!atomic_load_explicit(&s->runqsize, memory_order_relaxed) ||
	    s->gq[s->gq_head]->lockedm) {
		rg_unlock(&s->lock);
		return NULL;
	}
	struct rg_g *next = rg_globrunqget_locked(s, p, p->preempted ? 1 : 0);
	/* As findrunnable. */
	if (atomic_load_explicit(&p->help_since, memory_order_relaxed))
		atomic_store_explicit(&p->help_since, 0, memory_order_relaxed);
	RG_COUNTER_ADD(p->schedtick, 1);
	atomic_store_explicit(&p->preempt, 0, memory_order_relaxed); /* a new slice */
	return next;
}

void rg_yield_finish(struct rg_m *m, struct rg_g *prev)
{
	struct rg_sched *s = m->sched;

	atomic_store_explicit(&prev->status, G_RUNNABLE, memory_order_relaxed);
	rg_globrunqput_locked(s, prev);
	rg_unlock(&s->lock);
}

/*
 * Switch from g0 to g and back. Runs the goroutine until it parks, yields
 * or exits; then carries out what it asked for.
 */
static struct rg_g *execute(struct rg_m *m, struct rg_g *g, bool inherit, bool *next_inherit)
{
	struct rg_p *p = m->p;
	void *g0_fake;

	m->curg = g;
	g->m = m;
	atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
	RG_COUNTER_ADD(p->runs, 1);
	p->preempted = false;
	if (!inherit) {
		RG_COUNTER_ADD(p->schedtick, 1);
		atomic_store_explicit(&p->preempt, 0, memory_order_relaxed); /* a new slice */
	}
	atomic_store_explicit(&m->in_g, true, memory_order_relaxed);
	RG_PROBE(g_start, g->goid, p->id, m->id);

	rg_asan_start_switch(&g0_fake, (void *)g->stack.limit, g->stack.hi - g->stack.limit);
	rg_tsan_switch_to(g->tsan_fiber);
	rg_arch_switch_in(&m->g0_sp, g->sp);
	rg_asan_finish_switch(g0_fake);
	/* Not necessarily g: it may have handed the M on (rg_park_handoff). */
	g = m->curg;

	atomic_store_explicit(&m->in_g, false, memory_order_relaxed);
	m->curg = NULL;
	g->m = NULL;
	if (!rg_stack_canary_ok(&g->stack))
		rg_fatal("goroutine %llu stack overflow", (unsigned long long)g->goid);

	switch (m->op) {
	case SWITCH_PARK: {
		*next_inherit = true;
		if (!rg_park_commit(m, g)) {
			/* Changed its mind: resume it at once on this P. */
			uint32_t st = G_WAITING;
			if (atomic_compare_exchange_strong_explicit(&g->status, &st, G_RUNNABLE,
								    memory_order_acq_rel,
								    memory_order_relaxed))
				return g;
		}
		return park_next(m, p);
	}
	case SWITCH_YIELD:
		*next_inherit = false;
		return yield_to_global(m, p, g);
	case SWITCH_YIELD_LOCAL:
		atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
		rg_runqput(m->p, g, false);
		return NULL;
	case SWITCH_PREEMPT:
		/* Go's gopreempt_m: a yield to the global queue (a locked M then waits, below). */
		atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
		p->preempted = true;
		/* The slice ended here: whoever runs next, a runnext goroutine a
		 * timer readied meanwhile too, starts a new one. */
		RG_COUNTER_ADD(p->schedtick, 1);
		atomic_store_explicit(&p->preempt, 0, memory_order_relaxed);
		rg_globrunqput_wakep(m->sched, g);
		return NULL;
	case SWITCH_EXIT:
		if (g->lockedm) {
			/* Exited locked: the thread may carry state the goroutine set up
			 * (setns, unshare, credentials), so it exits too, as in Go. */
			g->lockedm = NULL;
			g->lock_count = 0;
			m->lockedg = NULL;
			m->locked_exit = true;
		}
		rg_gdestroy(m, g);
		return NULL;
	case SWITCH_SYSCALL_EXIT: {
		struct rg_sched *s = m->sched;
		atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
		rg_lock(&s->lock);
		struct rg_p *idle = rg_pidleget(s); /* freed meanwhile? */
		rg_unlock(&s->lock);
		if (idle)
			rg_acquirep(m, idle);
		else
			rg_globrunqput(s, g);
		atomic_fetch_sub_explicit(&s->pending_wakeups, 1, memory_order_release);
		return idle ? g : NULL;
	}
	case SWITCH_NONE:
		break;
	}
	rg_fatal("goroutine %llu switched to the scheduler without a reason",
		 (unsigned long long)g->goid);
}

void rg_gdestroy(struct rg_m *m, struct rg_g *g)
{
	struct rg_sched *s = m->sched;
	bool is_main = g->goid == 1;

	atomic_store_explicit(&g->status, G_DEAD, memory_order_relaxed);
	RG_PROBE(g_exit, g->goid);
	rg_tsan_destroy_fiber(g->tsan_fiber);
	g->tsan_fiber = NULL;
	g->fn = NULL;
	g->arg = NULL;
	RG_COUNTER_ADD(m->p->gexited, 1);
	rg_gfput(s, m->p, g);
	if (is_main)
		rg_main_exited(s);
}

/*
 * A locked M whose goroutine is not running (Go's stoplockedm): give the P
 * away and sleep until whoever dequeues the goroutine hands a P back with
 * it. Returns the goroutine to run, or NULL when the runtime stops.
 */
static struct rg_g *stoplockedm(struct rg_m *m)
{
	struct rg_sched *s = m->sched;

	if (m->p)
		rg_handoffp(s, releasep(m));
	rg_lock(&s->lock);
	if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
		rg_unlock(&s->lock);
		return NULL;
	}
	if (!m->nextp) { /* not handed back already */
		s->nmidlelocked++;
		m->locked_sleeping = true;
		if (s->nmidle + s->nmidlelocked == s->mcount)
			rg_checkdead(s);
	}
	rg_unlock(&s->lock);

	RG_PROBE(m_park, m->id);
	rg_note_sleep(&m->park);
	rg_note_clear(&m->park);
	/* Whoever woke us took us off the idle count already (so that it may go
	 * idle itself without seeing every M asleep). */
	rg_lock(&s->lock);
	struct rg_p *p = m->nextp;
	m->nextp = NULL;
	if (m->locked_sleeping) {
		m->locked_sleeping = false;
		s->nmidlelocked--;
	}
	rg_unlock(&s->lock);
	if (!p)
		return NULL;
	rg_acquirep(m, p);
	return m->lockedg;
}

/* g is locked to another M (Go's startlockedm): hand it our P; we go idle. */
static void startlockedm(struct rg_m *m, struct rg_g *g)
{
	struct rg_sched *s = m->sched;
	struct rg_m *lm = g->lockedm;
	struct rg_p *p = releasep(m);

	rg_lock(&s->lock);
	lm->nextp = p;
	if (lm->locked_sleeping) {
		lm->locked_sleeping = false;
		s->nmidlelocked--; /* Go's incidlelocked(-1): it runs from now */
	}
	rg_unlock(&s->lock);
	RG_PROBE(m_unpark, lm->id);
	rg_note_wakeup(&lm->park);
}

void rg_schedule_loop(struct rg_m *m)
{
	struct rg_g *g;
	bool inherit;

	for (;;) {
		if (m->locked_exit) {
			/* Its locked goroutine exited: the thread goes (m_exit). */
			rg_handoffp(m->sched, releasep(m));
			return;
		}
		if (m->lockedg) {
			g = stoplockedm(m);
			if (!g)
				return;
			inherit = false;
		} else {
			g = findrunnable(m, &inherit);
			if (!g)
				return;
			if (m->spinning)
				resetspinning(m);
			if (g->lockedm) {
				/* findrunnable parks us: we have no P from here. */
				startlockedm(m, g);
				continue;
			}
		}
		/* A goroutine that parks and un-parks in its commit runs again at
		 * once; a yield may hand over the next G directly. */
		while (g) {
			if (inherit && atomic_load_explicit(&m->p->preempt, memory_order_relaxed)) {
				/* The slice a runnext chain shares is over (Go preempts
				 * the heir at its next prologue): queue it behind the rest. */
				atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
				rg_globrunqput_wakep(m->sched, g); /* an idle P may take it */
				rg_preempt_count_inherit();
				break;
			}
			g = execute(m, g, inherit, &inherit);
		}
	}
}

/* ---- starting and ending Ms ---- */

/*
 * initial-exec: one %fs-relative load, also in libringo.so and in signal
 * handlers. Read directly only where no switch can intervene (rg_preempt_poll).
 */
__thread struct rg_m *rg_tls_m __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) struct rg_m *rg_getm(void)
{
	/* The asm keeps the compiler from treating this as pure: a goroutine
	 * that called it before a switch may be on another thread after. */
	__asm__ volatile("" ::: "memory");
	return rg_tls_m;
}

void rg_setm(struct rg_m *m)
{
	rg_tls_m = m;
}

__attribute__((noinline)) struct rg_g *rg_getg(void)
{
	__asm__ volatile("" ::: "memory");
	struct rg_m *m = rg_tls_m;
	return m ? m->curg : NULL;
}

static void m_init_thread(struct rg_m *m)
{
	pthread_attr_t attr;
	void *lo;
	size_t size;

	/* Atomic: sysmon's kernel-fed handoff (kblock.c) reads it from allm. */
	__atomic_store_n(&m->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
	m->rand = ((uint64_t)m->tid << 32) ^ (uint64_t)rg_nanotime() ^ (uintptr_t)m;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
			m->g0_stack_lo = lo;
			m->g0_stack_size = size;
		}
		pthread_attr_destroy(&attr);
	}
	m->tsan_g0_fiber = rg_tsan_current_fiber();
	m->sigstack = rg_sigstack_alloc();
	atomic_store_explicit(&m->preempt_hint, &rg_tls_preempt_hint, memory_order_relaxed);
	rg_setm(m);
	RG_PROBE(m_start, m->id, m->tid);
}

static void m_exit(struct rg_m *m)
{
	struct rg_sched *s = m->sched;

	RG_PROBE(m_exit, m->id);
	if (m->p)
		releasep(m);
	rg_setm(NULL);
	rg_sigstack_free(m->sigstack);
	rg_lock(&s->lock);
	s->mcount--;
	for (struct rg_m **pp = &s->allm; *pp; pp = &(*pp)->alllink) {
		if (*pp == m) {
			*pp = m->alllink;
			break;
		}
	}
	rg_unlock(&s->lock);
	/* rg_run may be waiting for the Ms to leave the scheduler. */
	atomic_fetch_add_explicit(&s->mexits, 1, memory_order_release);
	rg_futex_wake(&s->mexits, 1);
	free(m);
	rg_sched_put(s);
}

static void *mstart(void *arg)
{
	struct rg_m *m = arg;
	sigset_t none;

	/* Ms inherit the creator's mask; runtime threads take every signal. */
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	/* And its name: an M that sysmon started would be "ringo-sysmon" to
	 * perf and bpftrace. Ms carry the program's name, as Go's threads do. */
	char name[16];
	snprintf(name, sizeof(name), "%s", program_invocation_short_name);
	pthread_setname_np(pthread_self(), name);
	m_init_thread(m);
	rg_acquirep(m, m->nextp);
	m->nextp = NULL;
	rg_schedule_loop(m);
	m_exit(m);
	return NULL;
}

int rg_newm(struct rg_sched *s, struct rg_p *p, bool spinning)
{
	struct rg_m *m = calloc(1, sizeof(*m));
	pthread_attr_t attr;
	int err;

	if (!m)
		return -ENOMEM;
	m->sched = s;
	m->nextp = p;
	m->spinning = spinning;
	rg_lock(&s->lock);
	if (s->mcount >= s->maxmcount) {
		/* Go dies here ("thread exhaustion"); ringo leaves the work to the running Ms. */
		rg_unlock(&s->lock);
		free(m);
		return -EAGAIN;
	}
	m->id = s->mnext++;
	s->mcount++;
	m->alllink = s->allm;
	s->allm = m;
	rg_unlock(&s->lock);
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&m->thread, &attr, mstart, m);
	pthread_attr_destroy(&attr);
	if (err) {
		rg_lock(&s->lock);
		s->mcount--;
		s->allm = m->alllink; /* still first: nobody else adds without the lock */
		rg_unlock(&s->lock);
		atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
		free(m);
		return -err;
	}
	return 0;
}
