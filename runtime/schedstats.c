// SPDX-License-Identifier: BSD-2-Clause
/*
 * Scheduler snapshots, Go's schedtrace (proc.go) for ringo, two ways:
 *  - the semaphore-gated USDT probes sched_p, sched_m, sched_g and
 *    sched_stats, fired by sysmon every RINGO_SCHEDSTATS_PERIOD_MS while a
 *    tracer (tools/ringo-schedtrace, tools/bpftrace/schedtrace.bt) is
 *    attached: the traced process needs no restart and no flag;
 *  - RINGO_DEBUG=schedtrace=MS[,scheddetail=1]: the same lines on stderr.
 * Field meanings are Go's (docs/design.md, "Observability with eBPF"):
 * threads counts the Ms plus sysmon (Go's mcount() counts sysmon, an M there);
 * a P's runqsize is its local ring without runnext.
 *
 * Everything here runs on the sysmon thread, but for the detailed lines a
 * dying (or, in the tests, hung) process prints once from whichever thread
 * (rg_schedtrace_now). Counts are read under the scheduler lock (Ms and the
 * global queue) like Go's, the Ps' rings and ticks without it; the probes
 * fire and the lines print after it is released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The snapshot is only taken when its probes are traced (their semaphores, probes.c). */
#include "probes.h"
#include "runtime.h"
#include "schedstats.h"
#include "../bpf/ringo_events.h"

int64_t rg_schedtrace_ns = -1;
_Atomic bool rg_schedtrace_forced;
static int scheddetail;

/* The codes the probes carry are the runtime's own. */
_Static_assert(RINGO_WAIT_IO == WAIT_IO && RINGO_WAIT_REASON_COUNT == WAIT_REASON_COUNT,
	       "bpf/ringo_events.h wait reasons out of date");
_Static_assert(RINGO_G_WAITING == G_WAITING && RINGO_G_DEAD == G_DEAD &&
		       RINGO_P_SYSCALL == P_SYSCALL && RINGO_P_DEAD == P_DEAD,
	       "bpf/ringo_events.h statuses out of date");

struct snap_p {
	int32_t status, runqsize, m, gfreecnt, timerslen;
	uint64_t schedtick, syscalltick;
};

struct snap_m {
	int32_t id, p, lockedg_set;
	int64_t curg, lockedg;
	pid_t tid;
	bool spinning, blocked;
};

struct snap_g {
	int64_t goid, m, lockedm;
	uint32_t status, reason;
};

struct snap {
	int32_t gomaxprocs, idleprocs, threads, spinning, idlethreads, runqueue;
	int32_t nmidlelocked, sysmonwait;
	bool unlocked; /* dying, a lock stayed held: the Ms or Gs are left out */
	struct snap_p *p;
	struct snap_m *m;
	int32_t nm;
	struct snap_g *g;
	size_t ng;
};

/* sysmon's own state (one sysmon thread per scheduler). */
static __thread struct rg_sched *cur_sched;
static __thread int64_t next_probe, next_print;
static __thread uint64_t nsnap;

/* No allocation: a dying thread may be the first to ask (rg_schedtrace_dying). */
static void parse_debug(void)
{
	const char *e = getenv("RINGO_DEBUG");
	int64_t ns = 0;

	for (const char *tok = e; tok && *tok;) {
		/* strtoll and atoi stop at the ',' that ends a token. */
		if (strncmp(tok, "schedtrace=", 11) == 0)
			ns = strtoll(tok + 11, NULL, 10) * 1000000LL;
		else if (strncmp(tok, "scheddetail=", 12) == 0)
			__atomic_store_n(&scheddetail, atoi(tok + 12) > 0, __ATOMIC_RELAXED);
		tok = strchr(tok, ',');
		if (tok)
			tok++;
	}
	__atomic_store_n(&rg_schedtrace_ns, ns > 0 ? ns : 0, __ATOMIC_RELAXED);
}

static int64_t goid_of(struct rg_g *g)
{
	return g ? (int64_t)g->goid : -1;
}

static bool m_is_idle(struct rg_sched *s, struct rg_m *m)
{
	for (struct rg_m *x = s->midle; x; x = x->schedlink)
		if (x == m)
			return true;
	return m->locked_sleeping;
}

/* How a snapshot gets the scheduler's lock. */
enum take_lock {
	TAKE_WAIT, /* sysmon's periodic snapshot */
	TAKE_TRY,  /* dying or hung: its holder may be what hangs, or this very thread */
	TAKE_HELD, /* the caller holds it (the deadlock report) */
};

/* Take l as `how` says; TAKE_TRY gives up after about a thousand yields. */
static bool lock_for(struct rg_lock *l, enum take_lock how)
{
	switch (how) {
	case TAKE_WAIT:
		rg_lock(l);
		return true;
	case TAKE_HELD:
		return true;
	case TAKE_TRY:
		break;
	}
	for (int i = 0; i < 1000; i++) {
		if (rg_trylock(l))
			return true;
		rg_osyield();
	}
	return false;
}

/*
 * Fill sn; the arrays are malloc'ed (NULL when not wanted or out of memory).
 * With TAKE_TRY, a part whose lock stays held is left out (sn->unlocked).
 */
static void take(struct rg_sched *s, struct snap *sn, bool want_m, bool want_g, enum take_lock how)
{
	memset(sn, 0, sizeof(*sn));
	int32_t n = atomic_load_explicit(&s->gomaxprocs, memory_order_acquire);
	sn->p = calloc(n > 0 ? n : 1, sizeof(*sn->p));
	sn->gomaxprocs = n;

	if (!lock_for(&s->lock, how)) {
		sn->unlocked = true;
		want_m = want_g = false;
		goto ps;
	}
	sn->idleprocs = atomic_load_explicit(&s->npidle, memory_order_relaxed);
	sn->threads = s->mcount + 1; /* and sysmon, which Go's mcount() counts as an M */
	sn->spinning = atomic_load_explicit(&s->nmspinning, memory_order_relaxed);
	sn->idlethreads = s->nmidle;
	sn->runqueue = atomic_load_explicit(&s->runqsize, memory_order_relaxed);
	sn->nmidlelocked = s->nmidlelocked;
	sn->sysmonwait = (int32_t)atomic_load_explicit(&s->sysmon_sleeping, memory_order_relaxed);
	for (int32_t i = 0; sn->p && i < n; i++)
		sn->p[i].m = -1;
	/* Ms on allm are alive while we hold the lock: a P's owner is found from the M side. */
	if (want_m)
		sn->m = calloc(s->mcount > 0 ? s->mcount : 1, sizeof(*sn->m));
	for (struct rg_m *m = s->allm; m; m = m->alllink) {
		struct rg_p *p = __atomic_load_n(&m->p, __ATOMIC_RELAXED);
		if (p && sn->p && p->id < n)
			sn->p[p->id].m = m->id;
		if (!sn->m || sn->nm >= s->mcount)
			continue;
		struct rg_g *curg = __atomic_load_n(&m->curg, __ATOMIC_RELAXED);
		struct rg_g *lockedg = __atomic_load_n(&m->lockedg, __ATOMIC_RELAXED);
		sn->m[sn->nm++] = (struct snap_m){
			.id = m->id,
			.p = p ? p->id : -1,
			.curg = goid_of(curg),
			.lockedg = goid_of(lockedg),
			.tid = m->tid,
			.spinning = __atomic_load_n(&m->spinning, __ATOMIC_RELAXED),
			.blocked = m_is_idle(s, m),
		};
	}
	if (how != TAKE_HELD)
		rg_unlock(&s->lock);
ps:
	for (int32_t i = 0; sn->p && i < n; i++) {
		struct rg_p *p = s->allp[i];
		uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
		uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_acquire);
		int32_t len = (int32_t)(t - h);
		sn->p[i].status = (int32_t)atomic_load_explicit(&p->status, memory_order_relaxed);
		sn->p[i].runqsize = len < 0			? 0 :
				    len > (int32_t)RG_RUNQ_SIZE ? (int32_t)RG_RUNQ_SIZE :
								  len;
		sn->p[i].schedtick = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
		sn->p[i].syscalltick = atomic_load_explicit(&p->syscalltick, memory_order_relaxed);
		sn->p[i].gfreecnt = __atomic_load_n(&p->gfreecnt, __ATOMIC_RELAXED);
		sn->p[i].timerslen = __atomic_load_n(&p->ntimers, __ATOMIC_RELAXED);
	}

	if (!want_g)
		return;
	if (!lock_for(&s->allg_lock, how == TAKE_WAIT ? TAKE_WAIT : TAKE_TRY)) {
		sn->unlocked = true;
		return;
	}
	sn->g = calloc(s->nallg ? s->nallg : 1, sizeof(*sn->g));
	for (size_t i = 0; sn->g && i < s->nallg; i++) {
		struct rg_g *g = s->allg[i];
		uint32_t st = atomic_load_explicit(&g->status, memory_order_relaxed);
		if (st == G_IDLE)
			continue;
		struct rg_m *m = __atomic_load_n(&g->m, __ATOMIC_RELAXED);
		struct rg_m *lm = __atomic_load_n(&g->lockedm, __ATOMIC_RELAXED);
		sn->g[sn->ng++] = (struct snap_g){
			.goid = (int64_t)g->goid,
			.status = st,
			.reason = st == G_WAITING ?
					  __atomic_load_n(&g->wait_reason, __ATOMIC_RELAXED) :
					  0,
			.m = m ? m->id : -1,
			.lockedm = lm ? lm->id : -1,
		};
	}
	rg_unlock(&s->allg_lock);
}

static void release(struct snap *sn)
{
	free(sn->p);
	free(sn->m);
	free(sn->g);
}

static void fire(struct snap *sn, bool with_g)
{
	for (int32_t i = 0; sn->p && i < sn->gomaxprocs; i++) {
		struct snap_p *p __attribute__((unused)) = &sn->p[i];
		RG_PROBE(sched_p, i, p->status, p->runqsize, p->schedtick, p->syscalltick, p->m);
		if (ringo_sched_pdetail_semaphore)
			RG_PROBE(sched_pdetail, i, p->gfreecnt, p->timerslen);
	}
	for (int32_t i = 0; sn->m && i < sn->nm; i++) {
		struct snap_m *m = &sn->m[i];
		int flags __attribute__((unused)) = (m->spinning ? RINGO_M_SPINNING : 0) |
						    (m->blocked ? RINGO_M_BLOCKED : 0);
		RG_PROBE(sched_m, m->id, m->p, m->curg, flags, m->lockedg, m->tid);
	}
	for (size_t i = 0; with_g && sn->g && i < sn->ng; i++) {
		struct snap_g *g __attribute__((unused)) = &sn->g[i];
		RG_PROBE(sched_g, g->goid, g->status, g->reason, g->m, g->lockedm);
	}
	if (ringo_sched_detail_semaphore)
		RG_PROBE(sched_detail, sn->nmidlelocked, sn->sysmonwait);
	RG_PROBE(sched_stats, sn->gomaxprocs, sn->idleprocs, sn->threads, sn->spinning,
		 sn->idlethreads, sn->runqueue);
}

/* Go's schedtrace(detailed), built in memory and written at once. */
static void print_trace(struct rg_sched *s, struct snap *sn, int64_t now, bool detail)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	fprintf(f,
		"SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%d spinningthreads=%d "
		"idlethreads=%d runqueue=%d",
		(long long)((now - s->start_ns) / 1000000), sn->gomaxprocs, sn->idleprocs,
		sn->threads, sn->spinning, sn->idlethreads, sn->runqueue);
	if (detail)
		fprintf(f, " gcwaiting=0 nmidlelocked=%d stopwait=0 sysmonwait=%d\n",
			sn->nmidlelocked, sn->sysmonwait);
	if (sn->unlocked)
		fprintf(f, "  (a scheduler lock stayed held: what it guards is left out)\n");
	for (int32_t i = 0; sn->p && i < sn->gomaxprocs; i++) {
		struct snap_p *p = &sn->p[i];
		if (detail)
			fprintf(f,
				"  P%d: status=%d schedtick=%llu syscalltick=%llu m=%d runqsize=%d "
				"gfreecnt=%d timerslen=%d\n",
				i, p->status, (unsigned long long)p->schedtick,
				(unsigned long long)p->syscalltick, p->m, p->runqsize, p->gfreecnt,
				p->timerslen);
		else
			fprintf(f, "%s%d%s", i == 0 ? " [" : " ", p->runqsize,
				i == sn->gomaxprocs - 1 ? "]\n" : "");
	}
	if (!detail && (!sn->p || sn->gomaxprocs == 0))
		fprintf(f, " []\n");
	for (int32_t i = 0; detail && sn->m && i < sn->nm; i++) {
		struct snap_m *m = &sn->m[i];
		fprintf(f,
			"  M%d: p=%d curg=%lld mallocing=0 throwing=0 preemptoff= locks=0 dying=0 "
			"spinning=%s blocked=%s lockedg=%lld\n",
			m->id, m->p, (long long)m->curg, m->spinning ? "true" : "false",
			m->blocked ? "true" : "false", (long long)m->lockedg);
	}
	for (size_t i = 0; detail && sn->g && i < sn->ng; i++) {
		struct snap_g *g = &sn->g[i];
		fprintf(f, "  G%lld: status=%u(%s) m=%lld lockedm=%lld\n", (long long)g->goid,
			g->status,
			g->status == G_WAITING ?
				rg_wait_reason_string((enum rg_wait_reason)g->reason) :
				"",
			(long long)g->m, (long long)g->lockedm);
	}
	fclose(f);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(STDERR_FILENO, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(buf);
}

int64_t rg_schedstats_tick(struct rg_sched *s, int64_t sleep_ns)
{
	if (__atomic_load_n(&rg_schedtrace_ns, __ATOMIC_RELAXED) < 0)
		parse_debug();
	int64_t trace_ns = __atomic_load_n(&rg_schedtrace_ns, __ATOMIC_RELAXED);
	bool detail = __atomic_load_n(&scheddetail, __ATOMIC_RELAXED);
	bool probing = ringo_sched_stats_semaphore != 0;
	int64_t now = rg_nanotime();

	if (cur_sched != s) {
		cur_sched = s;
		next_probe = now;
		next_print = s->start_ns + trace_ns;
		nsnap = 0;
	}
	bool do_probe = probing && now >= next_probe;
	bool do_print = trace_ns > 0 && now >= next_print;
	if (do_probe || do_print) {
		struct snap sn;
		bool with_g = do_probe && ringo_sched_g_semaphore &&
			      nsnap % RINGO_SCHEDSTATS_G_EVERY == 0;
		take(s, &sn, (do_probe && ringo_sched_m_semaphore) || (do_print && detail),
		     with_g || (do_print && detail), TAKE_WAIT);
		if (do_probe) {
			fire(&sn, with_g);
			nsnap++;
			next_probe = now + RINGO_SCHEDSTATS_PERIOD_MS * 1000000LL;
		}
		if (do_print) {
			print_trace(s, &sn, now, detail);
			/* Keep the multiples of the period, as Go's lines do (roughly). */
			while (next_print <= now)
				next_print += trace_ns;
		}
		release(&sn);
	}
	if (probing && next_probe - now < sleep_ns)
		sleep_ns = next_probe - now;
	if (trace_ns > 0 && next_print - now < sleep_ns)
		sleep_ns = next_print - now;
	return sleep_ns > 0 ? sleep_ns : 1;
}

static void trace_now(struct rg_sched *s, enum take_lock how)
{
	struct snap sn;

	take(s, &sn, true, true, how);
	print_trace(s, &sn, rg_nanotime(), true);
	release(&sn);
}

void rg_schedtrace_now(struct rg_sched *s)
{
	trace_now(s, TAKE_TRY);
}

void rg_schedtrace_dying(struct rg_sched *s, bool have_sched_lock)
{
	if (!s)
		return;
	if (__atomic_load_n(&rg_schedtrace_ns, __ATOMIC_RELAXED) < 0)
		parse_debug();
	if (atomic_load_explicit(&rg_schedtrace_forced, memory_order_relaxed) ||
	    __atomic_load_n(&rg_schedtrace_ns, __ATOMIC_RELAXED) > 0 ||
	    __atomic_load_n(&scheddetail, __ATOMIC_RELAXED))
		trace_now(s, have_sched_lock ? TAKE_HELD : TAKE_TRY);
}
