// SPDX-License-Identifier: BSD-2-Clause
/*
 * Helpers shared by chan_test.c, select_test.c and memmodel_test.c: a failure
 * recorder usable from goroutines, white-box waits for "parked on this
 * channel" (so blocking is observed, not guessed with sleeps), a small PRNG,
 * chi-square bounds and the fork-and-expect-a-fatal-error pattern.
 */
#ifndef RT_CHAN_HELPERS_H
#define RT_CHAN_HELPERS_H

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>

#include "chan.h"
#include "rg_await.h"
#include "rg_test.h"

/* ------------------------------------------------------------------------ */
/*
 * Goroutines cannot ASSERT: it longjmps back into the TEST body, which from a
 * goroutine's stack (perhaps on another thread) would wreck the runtime. They
 * note failures here and the TEST asserts after rg_run returns. Only the
 * first message is kept; the count says how many.
 */
struct rt_errs {
	atomic_long n;
	char first[512];
};

static inline void __attribute__((format(printf, 4, 5)))
rt_err_note(struct rt_errs *e, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (atomic_fetch_add(&e->n, 1) != 0)
		return;
	k = snprintf(e->first, sizeof(e->first), "%s:%d: ", file, line);
	if (k < 0 || (size_t)k >= sizeof(e->first))
		return;
	va_start(ap, fmt);
	vsnprintf(e->first + k, sizeof(e->first) - (size_t)k, fmt, ap);
	va_end(ap);
}

/* Record (do not abort) when cond is false. */
#define RT_CHECK(errs, cond, ...)                                             \
	do {                                                                  \
		if (!(cond))                                                  \
			rt_err_note((errs), __FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

/* After rg_run: fail the TEST if any goroutine noted a failure. */
#define RT_EXPECT_NO_ERRS(errs)               \
	EXPECT_EQ(0, atomic_load(&(errs)->n)) \
	TH_LOG("%ld failure(s), first: %s", atomic_load(&(errs)->n), (errs)->first)

/* ------------------------------------------------------------------------ */
/*
 * White-box view of a channel's wait queues (tests link the runtime's
 * internals). A sudog is counted while its goroutine still waits: a select
 * whose select_done is set has been claimed by a partner and is leaving.
 * The count is taken under the channel lock, and a waiter holds that lock
 * from enqueueing until its park has committed, so a counted waiter is
 * really parked (or already being woken by a partner).
 */
static inline size_t rt_chan_waiters(rg_chan *c, int dir)
{
	struct rg_waitq *q = dir == RG_CASE_SEND ? &c->sendq : &c->recvq;
	size_t n = 0;

	RT_LOCK(&c->lock);
	for (struct rg_sudog *sg = atomic_load_explicit(&q->first, memory_order_relaxed); sg;
	     sg = sg->next) {
		if (!sg->is_select ||
		    !atomic_load_explicit(&sg->g->select_done, memory_order_relaxed))
			n++;
	}
	RT_UNLOCK(&c->lock);
	return n;
}

/* Every sudog in the queue, live or not: 0 means the queue is really empty. */
static inline size_t rt_chan_queued(rg_chan *c, int dir)
{
	struct rg_waitq *q = dir == RG_CASE_SEND ? &c->sendq : &c->recvq;
	size_t n = 0;

	RT_LOCK(&c->lock);
	for (struct rg_sudog *sg = atomic_load_explicit(&q->first, memory_order_relaxed); sg;
	     sg = sg->next)
		n++;
	RT_UNLOCK(&c->lock);
	return n;
}

/* How long a wait for a state that should come soon may take before it counts as a failure. */
#define RT_AWAIT_NS (10ull * 1000000000ull)

/*
 * Yield until at least n goroutines wait on c in direction dir. False on
 * timeout or when *stop becomes non-zero (say, the goroutine expected to
 * block returned instead), so a broken runtime fails fast rather than hangs.
 */
static inline bool rt_chan_await(rg_chan *c, int dir, size_t n, atomic_int *stop)
{
	uint64_t deadline = rt_now_ns() + RT_AWAIT_NS;
	size_t have;

	while ((have = rt_chan_waiters(c, dir)) < n) {
		bool stopped = stop && atomic_load(stop);
		if (stopped || rt_now_ns() > deadline) {
			char why[128];
			snprintf(why, sizeof(why), "rt_chan_await: %zu of %zu waiters, %s", have, n,
				 stopped ? "and one that should wait returned" : "time is up");
			rt_sched_report(why);
			return false;
		}
		rg_yield();
	}
	return true;
}

/* A goroutine's own G, published so others can watch its state. */
static inline struct rg_g *rt_self(void)
{
	return rg_getg();
}

/* Yield until g is parked with the given wait reason; false after RT_AWAIT_NS. */
static inline bool rt_await_parked(struct rg_g *_Atomic *gp, enum rg_wait_reason reason)
{
	uint64_t deadline = rt_now_ns() + RT_AWAIT_NS;

	for (;;) {
		struct rg_g *g = atomic_load(gp);

		/* wait_reason is written before the release store of G_WAITING. */
		if (g && atomic_load_explicit(&g->status, memory_order_acquire) == G_WAITING &&
		    g->wait_reason == reason)
			return true;
		if (rt_now_ns() > deadline)
			return false;
		rg_yield();
	}
}

/* ------------------------------------------------------------------------ */
/*
 * Lock step for two goroutines meant to race on two Ps: one publishes round r
 * and acts at once, the other spins until it sees r and acts too, so their
 * actions overlap in time (a goroutine started per round mostly runs after
 * its parent parks, on the same P, and races with nothing). The spin yields
 * now and then, so it also ends when both share one P.
 */
static inline void rt_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/*
 * Spin, then let other goroutines run, then give the CPU away: when the
 * machine is oversubscribed the other side's thread may not be running at all.
 */
static inline void rt_spin_wait(unsigned *spins)
{
	++*spins;
	if (*spins % 1024 == 0)
		sched_yield();
	else if (*spins % 128 == 0)
		rg_yield();
	else
		rt_cpu_relax();
}

static inline void rt_spin_until(atomic_long *v, long want)
{
	unsigned spins = 0;

	while (atomic_load_explicit(v, memory_order_acquire) < want)
		rt_spin_wait(&spins);
}

/*
 * Lock-step rounds cost a cross-core handshake each, and far more when the
 * machine is oversubscribed: the publishing side stops after max rounds or
 * once the time budget is spent (but not before RT_LOCKSTEP_MIN rounds), then
 * publishes RT_LOCKSTEP_END so that the other side leaves its loop.
 */
#define RT_LOCKSTEP_END LONG_MAX
#define RT_LOCKSTEP_MIN 1000
#define RT_LOCKSTEP_NS (RT_SANITIZED ? 4000000000ull : 2000000000ull)

static inline bool rt_lockstep_more(long r, long max, uint64_t t0)
{
	if (r > max)
		return false;
	return r <= RT_LOCKSTEP_MIN || r % 256 || rt_now_ns() - t0 < RT_LOCKSTEP_NS;
}

/* ------------------------------------------------------------------------ */

/* splitmix64: a per-goroutine PRNG for choosing operations (the runtime's own is not exported). */
static inline uint64_t rt_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint32_t rt_randn(uint64_t *s, uint32_t n)
{
	return (uint32_t)(((rt_rand(s) >> 32) * (uint64_t)n) >> 32);
}

/* ------------------------------------------------------------------------ */
/*
 * Pearson's chi-square against the uniform distribution over k cells. The
 * bounds below are the chi-square quantiles at 1e-9 in each tail (computed
 * with mpmath: Q(df/2, x/2) = 1e-9 and P(df/2, x/2) = 1e-9): a fair select
 * fails a check with probability 2e-9, so the whole suite's false-failure
 * rate stays below 1e-7. The upper bound catches bias; the lower one catches
 * a choice that is too even to be random, such as round-robin.
 */
struct rt_chi2_bound {
	int df;
	double lo, hi;
};

static const struct rt_chi2_bound rt_chi2_bounds[] = {
	{1, 1.5707963e-18, 37.324893},
	{2, 2.0e-9, 41.446532},
	{3, 2.4179891e-6, 44.841275},
	{5, 0.00081228957, 50.692194},
	{7, 0.010829134, 55.874781},
	{8, 0.024955506, 58.307613},
	{15, 0.46324028, 73.63},
	{19, 1.0284493, 81.559358},
	{24, 2.0335783, 90.958073},
	{31, 3.9080934, 103.44102},
	{63, 16.917414, 155.07426},
	{99, 36.325313, 207.89752},
};

static inline const struct rt_chi2_bound *rt_chi2_bound_for(int df)
{
	for (size_t i = 0; i < sizeof(rt_chi2_bounds) / sizeof(rt_chi2_bounds[0]); i++)
		if (rt_chi2_bounds[i].df == df)
			return &rt_chi2_bounds[i];
	return NULL;
}

static inline double rt_chi2_uniform(const uint64_t *counts, int k)
{
	uint64_t total = 0;
	double e, x = 0;

	for (int i = 0; i < k; i++)
		total += counts[i];
	e = (double)total / k;
	for (int i = 0; i < k; i++) {
		double d = (double)counts[i] - e;

		x += d * d / e;
	}
	return x;
}

/* ------------------------------------------------------------------------ */
/*
 * A plain thread that holds channels' spinlocks until released, or until a
 * deadline (late is then set): a goroutine that needs one of those locks
 * waits for it, and the test sees late. White-box tests of the operations
 * that must take no lock, or only their own channel's.
 */
#define RT_HOLD_MAX 4

struct rt_lock_holder {
	struct rg_spinlock *locks[RT_HOLD_MAX];
	int n;
	pthread_t thread;
	atomic_int holding, done, late;
};

static void *rt_lock_holder_main(void *arg)
{
	struct rt_lock_holder *h = arg;
	uint64_t deadline = rt_now_ns() + RT_AWAIT_NS;

	for (int i = 0; i < h->n; i++)
		rg_spin_lock(h->locks[i]);
	atomic_store(&h->holding, 1);
	while (!atomic_load(&h->done)) {
		if (rt_now_ns() > deadline) {
			atomic_store(&h->late, 1);
			break;
		}
		sched_yield();
	}
	for (int i = h->n - 1; i >= 0; i--)
		rg_spin_unlock(h->locks[i]);
	return NULL;
}

/* From a goroutine: start the holder and yield until it holds every lock; false if no thread. */
static inline bool rt_hold_locks(struct rt_lock_holder *h)
{
	if (pthread_create(&h->thread, NULL, rt_lock_holder_main, h) != 0)
		return false;
	while (!atomic_load(&h->holding))
		rg_yield();
	return true;
}

static inline void rt_release_locks(struct rt_lock_holder *h)
{
	atomic_store(&h->done, 1);
	pthread_join(h->thread, NULL);
}

#endif /* RT_CHAN_HELPERS_H */
