// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_ctx (Go's context package) and rg_errgroup_with_ctx: cancellation
 * trees (down, never up, with the ancestor's error), deadlines (never early,
 * the sooner of the parent's and the child's, already past at creation, with
 * and without a running scheduler), values, the done channel in a select,
 * the runtime's cancellation hooks (exactly once, on the cancelling thread,
 * del racing cancel from goroutines and plain threads, one context's hooks
 * sharded across Ps), frees in any order,
 * and stress of cancel against free and creation on a shared parent.
 *
 * Leaks are checked with rg_ctx_live() (a pending deadline timer holds a
 * reference, so that also covers timers left behind); a stopped timer by
 * looking in the P heaps (white-box). Goroutines
 * cannot ASSERT (the harness longjmps out of the TEST body), so they CHECK
 * and the TEST expects that no check failed. Nothing sleeps to synchronise:
 * the only sleeps let a deadline pass where the deadline is under test.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#include "rg_test.h"
#include "rg_check.h"
#include "runtime.h"
#include "rg_await.h"
#include "context.h"
#include "timer.h"

#define MS 1000000LL
#define US 1000LL

/* A state that should come soon but does not is a failure, not a hang. */
#define AWAIT_NS (10ull * 1000000000ull)

static void run_main(struct __test_metadata *_metadata, void (*main_fn)(void *), void *arg,
		     int procs)
{
	rg_maxprocs(procs);
	ASSERT_EQ(0, rg_run(main_fn, arg));
	EXPECT_NO_ERRS();
	EXPECT_EQ(0, rg_ctx_live());
}

/* Closed (a receive returns 0 at once) or still open (-EAGAIN). */
static bool is_closed(rg_chan *c)
{
	return c && rg_chan_tryrecv(c, NULL) == 0;
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* Timers in the running scheduler's heaps whose argument is arg (a context's deadline). */
static int timers_for(const void *arg)
{
	struct rg_sched *s = rg_getg()->sched;
	int32_t n = atomic_load(&s->nallp);
	int found = 0;

	for (int32_t i = 0; i < n; i++) {
		struct rg_p *p = s->allp[i];
		RT_LOCK(&p->timers_lock);
		for (int32_t j = 0; j < p->ntimers; j++)
			found += p->timers[j].t->arg == arg;
		RT_UNLOCK(&p->timers_lock);
	}
	return found;
}

static bool is_parked(gslot *slot, enum rg_wait_reason why)
{
	struct rg_g *g = atomic_load(slot);

	return g && atomic_load_explicit(&g->status, memory_order_acquire) == G_WAITING &&
	       g->wait_reason == why;
}

/* A test hook: counts its calls and checks it never runs after del returned. */
struct thook {
	struct rg_ctx_hook h;
	atomic_int calls, err, running, deleted;
	_Atomic pid_t tid;
};

/* A hook runs under the context's lock: it must not be preempted in the middle. */
#ifndef RG_NOPREEMPT
#define RG_NOPREEMPT
#endif

static RG_NOPREEMPT void thook_fn(struct rg_ctx_hook *h, int err)
{
	struct thook *t = (struct thook *)((char *)h - offsetof(struct thook, h));

	CHECK(!atomic_load(&t->deleted), "hook ran after rg_ctx_hook_del returned");
	CHECK(atomic_fetch_add(&t->running, 1) == 0, "hook running twice at once");
	atomic_fetch_add(&t->calls, 1);
	atomic_store(&t->err, err);
	atomic_store(&t->tid, gettid_());
	for (volatile int i = 0; i < 100; i++)
		; /* a window for a del that does not wait for us */
	atomic_fetch_sub(&t->running, 1);
}

static void thook_init(struct thook *t)
{
	memset(t, 0, sizeof(*t));
	t->h.fn = thook_fn;
}

static void thook_del(struct thook *t)
{
	rg_ctx_hook_del(&t->h);
	CHECK(!atomic_load(&t->running), "hook still running when del returned");
	atomic_store(&t->deleted, 1);
}

/* ------------------------------------------------------------------------ */
/* Background, values, bad arguments (no runtime needed)                    */
/* ------------------------------------------------------------------------ */

static const char key1[] = "k", key2[] = "k"; /* same contents, different keys */

TEST(background_and_bad_arguments)
{
	rg_ctx *bg = rg_ctx_background();
	int64_t d = 7;
	struct thook t;

	ASSERT_NE(NULL, bg);
	EXPECT_EQ(bg, rg_ctx_background());
	EXPECT_EQ(NULL, rg_ctx_done(bg));
	EXPECT_EQ(0, rg_ctx_err(bg));
	EXPECT_FALSE(rg_ctx_deadline(bg, &d));
	EXPECT_EQ(7, d);
	EXPECT_EQ(NULL, rg_ctx_value(bg, key1));
	rg_ctx_cancel(bg);
	rg_ctx_free(bg);
	rg_ctx_cancel(NULL);
	rg_ctx_free(NULL);
	EXPECT_EQ(0, rg_ctx_err(bg));
	EXPECT_EQ(0, rg_ctx_err(NULL));
	EXPECT_EQ(NULL, rg_ctx_done(NULL));

	errno = 0;
	EXPECT_EQ(NULL, rg_ctx_with_cancel(NULL));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(NULL, rg_ctx_with_deadline(NULL, 0));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(NULL, rg_ctx_with_timeout(NULL, MS));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(NULL, rg_ctx_with_value(NULL, key1, NULL));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(NULL, rg_ctx_with_value(bg, NULL, NULL));
	EXPECT_EQ(EINVAL, errno);

	/* A value over background can never be cancelled either. */
	rg_ctx *v = rg_ctx_with_value(bg, key1, &d);
	ASSERT_NE(NULL, v);
	EXPECT_EQ(1, rg_ctx_live());
	EXPECT_EQ(NULL, rg_ctx_done(v));
	rg_ctx_cancel(v);
	EXPECT_EQ(0, rg_ctx_err(v));
	EXPECT_FALSE(rg_ctx_deadline(v, NULL));
	EXPECT_EQ(&d, rg_ctx_value(v, key1));
	EXPECT_EQ(NULL, rg_ctx_value(v, key2));

	/* Hooks on never-cancellable contexts register nothing; del is a no-op. */
	thook_init(&t);
	EXPECT_EQ(0, rg_ctx_hook_add(NULL, &t.h));
	EXPECT_EQ(NULL, t.h.owner);
	rg_ctx_hook_del(&t.h);
	EXPECT_EQ(0, rg_ctx_hook_add(bg, &t.h));
	EXPECT_EQ(NULL, t.h.owner);
	rg_ctx_hook_del(&t.h);
	EXPECT_EQ(0, rg_ctx_hook_add(v, &t.h));
	EXPECT_EQ(NULL, t.h.owner);
	rg_ctx_hook_del(&t.h);
	rg_ctx_free(v);
	EXPECT_EQ(0, atomic_load(&t.calls));
	EXPECT_EQ(0, rg_ctx_live());
	EXPECT_NO_ERRS();
}

TEST(values_nearest_ancestor_by_pointer)
{
	int a, b, c;
	rg_ctx *bg = rg_ctx_background();
	rg_ctx *v1 = rg_ctx_with_value(bg, key1, &a);
	rg_ctx *cc = rg_ctx_with_cancel(v1);
	rg_ctx *v2 = rg_ctx_with_value(cc, key2, &b);
	rg_ctx *v3 = rg_ctx_with_value(v2, key1, &c);
	rg_ctx *vn = rg_ctx_with_value(v3, key2, NULL);

	ASSERT_TRUE(v1 && cc && v2 && v3 && vn);
	EXPECT_EQ(&a, rg_ctx_value(v1, key1));
	EXPECT_EQ(&a, rg_ctx_value(cc, key1));
	EXPECT_EQ(NULL, rg_ctx_value(cc, key2));
	EXPECT_EQ(&b, rg_ctx_value(v2, key2));
	EXPECT_EQ(&a, rg_ctx_value(v2, key1));
	EXPECT_EQ(&c, rg_ctx_value(v3, key1)); /* the nearest wins */
	EXPECT_EQ(&b, rg_ctx_value(v3, key2));
	EXPECT_EQ(NULL, rg_ctx_value(vn, key2)); /* a NULL value shadows too */
	EXPECT_EQ(&c, rg_ctx_value(vn, key1));
	EXPECT_EQ(NULL, rg_ctx_value(vn, &a));

	/* Values share their cancellable ancestor's channel and error. */
	EXPECT_EQ(rg_ctx_done(cc), rg_ctx_done(v2));
	EXPECT_EQ(rg_ctx_done(cc), rg_ctx_done(vn));
	EXPECT_EQ(NULL, rg_ctx_done(v1));
	rg_ctx_cancel(vn); /* not cancellable itself: nothing happens */
	EXPECT_EQ(0, rg_ctx_err(cc));

	/* Parents first: every child keeps its chain alive and readable. */
	rg_ctx_free(v1);
	rg_ctx_free(cc);
	EXPECT_EQ(-ECANCELED, rg_ctx_err(vn));
	EXPECT_TRUE(is_closed(rg_ctx_done(v3)));
	EXPECT_EQ(&a, rg_ctx_value(v2, key1));
	rg_ctx_free(v3);
	EXPECT_EQ(&c, rg_ctx_value(vn, key1));
	rg_ctx_free(v2);
	EXPECT_EQ(5, rg_ctx_live()); /* vn holds the whole chain */
	rg_ctx_free(vn);
	EXPECT_EQ(0, rg_ctx_live());
}

/* ------------------------------------------------------------------------ */
/* Cancellation trees                                                       */
/* ------------------------------------------------------------------------ */

static struct {
	rg_ctx *p, *c, *v, *g, *s;
	gslot gw, sw;
	atomic_int g_woke, s_woke;
	rg_wg wg;
} tr;

static void tr_wait(void *arg)
{
	bool grand = arg != NULL;
	rg_case cs[] = {RG_RECV(rg_ctx_done(grand ? tr.g : tr.s), NULL)};

	publish_self(grand ? &tr.gw : &tr.sw);
	CHECK(rg_select(cs, 1, false) == 0 && cs[0].result == 0, "done not closed");
	atomic_store(grand ? &tr.g_woke : &tr.s_woke, 1);
	rg_wg_done(&tr.wg);
}

static void tree_main(void *arg)
{
	rg_ctx *bg = rg_ctx_background();

	/* p -> c -> v(value) -> g, and p -> s. */
	tr.p = rg_ctx_with_cancel(bg);
	tr.c = rg_ctx_with_cancel(tr.p);
	tr.v = rg_ctx_with_value(tr.c, key1, &tr);
	tr.g = rg_ctx_with_cancel(tr.v);
	tr.s = rg_ctx_with_cancel(tr.p);
	CHECK(tr.p && tr.c && tr.v && tr.g && tr.s, "create");
	CHECK(rg_ctx_done(tr.p) && rg_ctx_done(tr.p) == rg_ctx_done(tr.p), "one done channel");
	CHECK(rg_ctx_done(tr.c) != rg_ctx_done(tr.p), "each cancel context has its own");
	CHECK(rg_ctx_done(tr.v) == rg_ctx_done(tr.c), "a value's is its parent's");

	rg_wg_add(&tr.wg, 2);
	rg_go(tr_wait, (void *)1);
	rg_go(tr_wait, NULL);
	CHECK(AWAIT(is_parked(&tr.gw, WAIT_SELECT) && is_parked(&tr.sw, WAIT_SELECT)),
	      "waiters did not park");

	/* Cancelling c reaches its grandchild through the value, not up or sideways. */
	rg_ctx_cancel(tr.c);
	CHECK(rg_ctx_err(tr.c) == -ECANCELED, "c: %d", rg_ctx_err(tr.c));
	CHECK(rg_ctx_err(tr.v) == -ECANCELED, "v: %d", rg_ctx_err(tr.v));
	CHECK(rg_ctx_err(tr.g) == -ECANCELED, "g: %d", rg_ctx_err(tr.g));
	CHECK(is_closed(rg_ctx_done(tr.g)), "g's done open");
	CHECK(rg_ctx_err(tr.p) == 0 && !is_closed(rg_ctx_done(tr.p)), "parent cancelled by child");
	CHECK(rg_ctx_err(tr.s) == 0 && !is_closed(rg_ctx_done(tr.s)), "sibling cancelled");
	CHECK(AWAIT(atomic_load(&tr.g_woke)), "grandchild's waiter not woken");
	struct rg_g *sw = atomic_load(&tr.sw);
	CHECK(atomic_load_explicit(&sw->status, memory_order_acquire) == G_WAITING &&
		      !atomic_load(&tr.s_woke),
	      "sibling's waiter woken");

	/* Later calls do nothing; a new child of a cancelled context starts cancelled. */
	rg_ctx_cancel(tr.c);
	CHECK(rg_ctx_err(tr.c) == -ECANCELED, "second cancel");
	rg_ctx *late = rg_ctx_with_cancel(tr.v);
	CHECK(late && rg_ctx_err(late) == -ECANCELED && is_closed(rg_ctx_done(late)),
	      "child of a cancelled context is live");
	rg_ctx_free(late);

	rg_ctx_cancel(tr.p);
	rg_wg_wait(&tr.wg);
	CHECK(rg_ctx_err(tr.s) == -ECANCELED, "s: %d", rg_ctx_err(tr.s));
	CHECK(rg_ctx_err(tr.c) == -ECANCELED, "c changed");

	/* Parent first. */
	rg_ctx_free(tr.p);
	rg_ctx_free(tr.v);
	rg_ctx_free(tr.c);
	rg_ctx_free(tr.s);
	CHECK(rg_ctx_value(tr.g, key1) == &tr, "value through freed ancestors");
	rg_ctx_free(tr.g);
}

TEST(cancel_reaches_descendants_only)
{
	run_main(_metadata, tree_main, NULL, 2);
}

/* Descendants get the error the ancestor got: a deadline's -ETIMEDOUT. */
static void deadline_tree_main(void *arg)
{
	rg_ctx *p = rg_ctx_with_timeout(rg_ctx_background(), 20 * MS);
	rg_ctx *c = rg_ctx_with_cancel(p);
	rg_ctx *v = rg_ctx_with_value(c, key1, NULL);
	rg_ctx *g = rg_ctx_with_cancel(v);
	int64_t dl = 0, dg = 0;

	CHECK(rg_ctx_deadline(p, &dl) && rg_ctx_deadline(g, &dg) && dl == dg,
	      "deadline not inherited");
	CHECK(rg_chan_recv(rg_ctx_done(g), NULL) == 0, "done");
	CHECK(rg_now() >= dl, "woken %lld ns before the deadline", (long long)(dl - rg_now()));
	CHECK(rg_ctx_err(g) == -ETIMEDOUT, "g: %d", rg_ctx_err(g));
	CHECK(rg_ctx_err(v) == -ETIMEDOUT, "v: %d", rg_ctx_err(v));
	CHECK(rg_ctx_err(c) == -ETIMEDOUT, "c: %d", rg_ctx_err(c));
	CHECK(rg_ctx_err(p) == -ETIMEDOUT, "p: %d", rg_ctx_err(p));
	rg_ctx *late = rg_ctx_with_cancel(c);
	CHECK(rg_ctx_err(late) == -ETIMEDOUT, "late child: %d", rg_ctx_err(late));
	rg_ctx_cancel(g);
	CHECK(rg_ctx_err(g) == -ETIMEDOUT, "cancel after the deadline changed the error");
	rg_ctx_free(g);
	rg_ctx_free(c);
	rg_ctx_free(late);
	rg_ctx_free(p);
	rg_ctx_free(v);
}

TEST(deadline_error_reaches_descendants)
{
	run_main(_metadata, deadline_tree_main, NULL, 2);
}

/* 20,000 nested contexts: cancel and free must not recurse on a 64 KiB stack. */
#define DEEP_N 20000

static void deep_main(void *arg)
{
	rg_ctx **c = malloc(DEEP_N * sizeof(*c));
	struct thook t;

	c[0] = rg_ctx_with_cancel(rg_ctx_background());
	for (int i = 1; i < DEEP_N; i++) {
		c[i] = i % 3 == 2 ? rg_ctx_with_value(c[i - 1], key1, NULL) :
				    rg_ctx_with_cancel(c[i - 1]);
		CHECK(c[i], "create %d", i);
	}
	thook_init(&t);
	CHECK(rg_ctx_hook_add(c[DEEP_N - 1], &t.h) == 0, "hook");
	rg_ctx_cancel(c[0]);
	CHECK(rg_ctx_err(c[DEEP_N - 1]) == -ECANCELED, "leaf not cancelled");
	CHECK(is_closed(rg_ctx_done(c[DEEP_N - 1])), "leaf's done open");
	CHECK(atomic_load(&t.calls) == 1, "leaf hook ran %d times", atomic_load(&t.calls));
	thook_del(&t);
	/* Root to leaf: the leaf's free unwinds the whole chain (a loop, not recursion). */
	for (int i = 0; i < DEEP_N - 1; i++)
		rg_ctx_free(c[i]);
	CHECK(rg_ctx_live() == DEEP_N, "%ld live, want %d", rg_ctx_live(), DEEP_N);
	rg_ctx_free(c[DEEP_N - 1]);
	free(c);
}

TEST(deep_chain_cancel_and_free)
{
	run_main(_metadata, deep_main, NULL, 1);
}

/* ------------------------------------------------------------------------ */
/* Deadlines                                                                */
/* ------------------------------------------------------------------------ */

#define NE_N 40

static struct {
	rg_wg wg;
} ne;

static void never_early(void *arg)
{
	int64_t ns = (int64_t)(intptr_t)arg, dl = 0;
	rg_ctx *c = rg_ctx_with_timeout(rg_ctx_background(), ns);

	CHECK(rg_ctx_deadline(c, &dl), "no deadline");
	for (int i = 0; i < 3; i++) {
		int e = rg_ctx_err(c);
		int64_t now = rg_now();
		CHECK(e == 0 || now >= dl, "err %d %lld ns before the deadline", e,
		      (long long)(dl - now));
		rg_yield();
	}
	rg_case cs[] = {RG_RECV(rg_ctx_done(c), NULL)};
	CHECK(rg_select(cs, 1, false) == 0 && cs[0].result == 0, "done");
	int64_t woke = rg_now();
	CHECK(woke >= dl, "woken %lld ns early", (long long)(dl - woke));
	CHECK(rg_ctx_err(c) == -ETIMEDOUT, "err %d", rg_ctx_err(c));
	rg_ctx_free(c);
	rg_wg_done(&ne.wg);
}

/* The main goroutine waits on nothing but deadlines: not a deadlock either. */
static void never_early_main(void *arg)
{
	rg_wg_add(&ne.wg, NE_N);
	for (int i = 0; i < NE_N; i++)
		CHECK(rg_go(never_early, (void *)(intptr_t)((1 + i % 20) * MS)) == 0, "go");
	rg_wg_wait(&ne.wg);
}

TEST(deadline_fires_with_etimedout_never_early)
{
	run_main(_metadata, never_early_main, NULL, 2);
}

static void min_deadline_main(void *arg)
{
	rg_ctx *bg = rg_ctx_background();
	rg_ctx *p = rg_ctx_with_timeout(bg, 40 * MS);
	int64_t dp = 0, d = 0;

	CHECK(rg_ctx_deadline(p, &dp), "parent deadline");
	/* Later than the parent's: the parent's applies. */
	rg_ctx *late = rg_ctx_with_deadline(p, dp + 3600000 * MS);
	CHECK(rg_ctx_deadline(late, &d) && d == dp, "late child's deadline %lld, want %lld",
	      (long long)d, (long long)dp);
	rg_ctx *lval = rg_ctx_with_value(late, key1, NULL);
	rg_ctx *lv = rg_ctx_with_timeout(lval, INT64_MAX);
	CHECK(rg_ctx_deadline(lv, &d) && d == dp, "INT64_MAX timeout: %lld", (long long)d);
	/* Sooner: its own. */
	int64_t ds = dp - 30 * MS;
	rg_ctx *soon = rg_ctx_with_deadline(p, ds);
	rg_ctx *sv = rg_ctx_with_value(soon, key2, NULL);
	CHECK(rg_ctx_deadline(sv, &d) && d == ds, "soon child's deadline");

	CHECK(rg_chan_recv(rg_ctx_done(sv), NULL) == 0, "soon's done");
	CHECK(rg_now() >= ds, "soon fired early");
	CHECK(rg_ctx_err(soon) == -ETIMEDOUT, "soon: %d", rg_ctx_err(soon));
	int e = rg_ctx_err(p);
	int64_t now = rg_now();
	CHECK(e == 0 || now >= dp, "the child's deadline cancelled the parent");

	CHECK(rg_chan_recv(rg_ctx_done(late), NULL) == 0, "late's done");
	CHECK(rg_now() >= dp, "late fired before the parent's deadline");
	CHECK(rg_ctx_err(late) == -ETIMEDOUT && rg_ctx_err(p) == -ETIMEDOUT &&
		      rg_ctx_err(lv) == -ETIMEDOUT,
	      "errors %d %d %d", rg_ctx_err(late), rg_ctx_err(p), rg_ctx_err(lv));
	rg_ctx_free(sv);
	rg_ctx_free(soon);
	rg_ctx_free(p);
	rg_ctx_free(late);
	rg_ctx_free(lv);
	rg_ctx_free(lval);
}

TEST(child_deadline_is_min_of_parents)
{
	run_main(_metadata, min_deadline_main, NULL, 2);
}

static void past_main(void *arg)
{
	rg_ctx *bg = rg_ctx_background();
	int64_t now = rg_now(), d = 0;
	rg_ctx *cs[] = {
		rg_ctx_with_deadline(bg, now - 1),
		rg_ctx_with_deadline(bg, INT64_MIN),
		rg_ctx_with_timeout(bg, 0),
		rg_ctx_with_timeout(bg, -5 * MS),
	};
	struct thook t;

	thook_init(&t);
	for (size_t i = 0; i < ARRAY_SIZE(cs); i++) {
		CHECK(cs[i] && rg_ctx_err(cs[i]) == -ETIMEDOUT, "%zu: err %d", i,
		      rg_ctx_err(cs[i]));
		CHECK(is_closed(rg_ctx_done(cs[i])), "%zu: done open", i);
		CHECK(rg_ctx_deadline(cs[i], &d) && d <= rg_now(), "%zu: deadline", i);
		CHECK(rg_ctx_hook_add(cs[i], &t.h) == -ETIMEDOUT && !t.h.owner, "%zu: hook", i);
		rg_ctx_hook_del(&t.h);
		rg_ctx *ch = rg_ctx_with_cancel(cs[i]);
		CHECK(rg_ctx_err(ch) == -ETIMEDOUT, "%zu: child %d", i, rg_ctx_err(ch));
		rg_ctx_free(cs[i]);
		rg_ctx_free(ch);
	}
	CHECK(atomic_load(&t.calls) == 0, "hook called");
	/* A far deadline is live, and no overflow. */
	rg_ctx *far = rg_ctx_with_timeout(bg, INT64_MAX);
	CHECK(rg_ctx_err(far) == 0 && rg_ctx_deadline(far, &d) && d == INT64_MAX, "far");
	CHECK(timers_for(far) == 1, "far: no timer");
	rg_ctx_cancel(far);
	CHECK(timers_for(far) == 0, "far: timer not stopped");
	rg_ctx_free(far);
}

TEST(deadline_already_past)
{
	run_main(_metadata, past_main, NULL, 1);
}

/*
 * Cancel stops the timer (as Go's timerCtx does) and the deadline changes
 * nothing later. A loaded machine may let the deadline pass before the
 * cancel: then try again with a longer one.
 */
static void cancel_first_main(void *arg)
{
	for (int64_t timeout = 20 * MS;; timeout *= 4) {
		rg_ctx *c = rg_ctx_with_timeout(rg_ctx_background(), timeout);
		int64_t dl = 0;
		struct thook t;

		thook_init(&t);
		CHECK(rg_ctx_deadline(c, &dl), "deadline");
		int e = rg_ctx_hook_add(c, &t.h);
		int timers = timers_for(c);
		rg_ctx_cancel(c);
		if (rg_ctx_err(c) == -ETIMEDOUT && timeout < 5000 * MS) {
			thook_del(&t);
			rg_ctx_free(c);
			continue;
		}
		CHECK(e == 0 && t.h.owner, "hook: %d", e);
		CHECK(timers == 1, "%d timers before the cancel", timers);
		CHECK(timers_for(c) == 0, "timer not stopped");
		CHECK(rg_ctx_err(c) == -ECANCELED, "err %d", rg_ctx_err(c));
		CHECK(atomic_load(&t.calls) == 1 && atomic_load(&t.err) == -ECANCELED, "hook");
		rg_sleep(dl - rg_now() + 5 * MS); /* the deadline is what is under test */
		CHECK(rg_ctx_err(c) == -ECANCELED, "deadline replaced the error: %d",
		      rg_ctx_err(c));
		CHECK(atomic_load(&t.calls) == 1, "hook ran again");
		thook_del(&t);
		rg_ctx_free(c);
		return;
	}
}

TEST(cancel_before_deadline_stops_the_timer)
{
	run_main(_metadata, cancel_first_main, NULL, 2);
}

/* ---- without a running scheduler: the deadline is checked on use ---- */

TEST(deadline_outside_rg_run)
{
	rg_ctx *c = rg_ctx_with_timeout(rg_ctx_background(), 5 * MS);
	int64_t dl = 0;

	ASSERT_NE(NULL, c);
	ASSERT_TRUE(rg_ctx_deadline(c, &dl));
	int e = rg_ctx_err(c);
	EXPECT_TRUE(e == 0 || rg_now() >= dl);
	rg_chan *done = rg_ctx_done(c);
	rg_sleep(dl - rg_now() + MS); /* a thread sleep: the deadline is under test */
	EXPECT_EQ(-ETIMEDOUT, rg_ctx_err(c));
	EXPECT_TRUE(is_closed(done));
	EXPECT_EQ(done, rg_ctx_done(c));
	rg_ctx *ch = rg_ctx_with_cancel(c);
	EXPECT_EQ(-ETIMEDOUT, rg_ctx_err(ch));
	rg_ctx_free(c);
	rg_ctx_free(ch);
	EXPECT_EQ(0, rg_ctx_live());
}

/* Deadline contexts made in one rg_run and used and freed after it returned. */
static rg_ctx *outlive[2];

static void outlive_main(void *arg)
{
	outlive[0] = rg_ctx_with_timeout(rg_ctx_background(), 3600000 * MS);
	outlive[1] = rg_ctx_with_timeout(outlive[0], 20 * MS);
	int64_t dl = 0;
	rg_ctx_deadline(outlive[1], &dl);
	int e = rg_ctx_err(outlive[1]);
	CHECK(e == 0 || rg_now() >= dl, "cancelled early: %d", e);
}

static void second_main(void *arg)
{
	rg_ctx *c = rg_ctx_with_timeout(rg_ctx_background(), MS);

	CHECK(rg_chan_recv(rg_ctx_done(c), NULL) == 0, "done");
	CHECK(rg_ctx_err(c) == -ETIMEDOUT, "err");
	rg_ctx_free(c);
}

TEST(deadline_context_outlives_rg_run)
{
	int64_t dl = 0;

	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(outlive_main, NULL));
	ASSERT_TRUE(rg_ctx_deadline(outlive[1], &dl));
	EXPECT_EQ(0, rg_ctx_err(outlive[0]));
	rg_sleep(dl - rg_now() + MS);
	EXPECT_EQ(-ETIMEDOUT, rg_ctx_err(outlive[1])); /* noticed on use */
	EXPECT_EQ(0, rg_ctx_err(outlive[0]));
	ASSERT_EQ(0, rg_run(second_main, NULL));
	rg_ctx_free(outlive[0]); /* stops a timer of the first run's (kept) scheduler */
	rg_ctx_free(outlive[1]);
	EXPECT_EQ(0, rg_ctx_live());
	EXPECT_NO_ERRS();
}

/* ------------------------------------------------------------------------ */
/* The done channel in select                                               */
/* ------------------------------------------------------------------------ */

static struct {
	rg_ctx *c;
	rg_chan *data;
	long sum, got;
	int exit_case;
	rg_wg wg;
} sel;

static void sel_consumer(void *arg)
{
	for (;;) {
		long v;
		rg_case cs[] = {RG_RECV(sel.data, &v), RG_RECV(rg_ctx_done(sel.c), NULL)};
		int i = rg_select(cs, 2, false);
		if (i == 0) {
			sel.sum += v;
			sel.got++;
			continue;
		}
		sel.exit_case = i == 1 && cs[1].result == 0 ? 1 : -1;
		break;
	}
	rg_wg_done(&sel.wg);
}

static void select_main(void *arg)
{
	rg_ctx *bg = rg_ctx_background();

	sel.c = rg_ctx_with_cancel(bg);
	sel.data = rg_chan_make(sizeof(long), 0);
	rg_wg_add(&sel.wg, 1);
	rg_go(sel_consumer, NULL);
	for (long i = 1; i <= 100; i++)
		CHECK(rg_chan_send(sel.data, &i) == 0, "send");
	rg_ctx_cancel(sel.c);
	rg_wg_wait(&sel.wg);
	CHECK(sel.got == 100 && sel.sum == 5050, "got %ld sum %ld", sel.got, sel.sum);
	CHECK(sel.exit_case == 1, "left the loop by case %d", sel.exit_case);

	/* A cancelled context's done is always ready; a timer is not chosen over it. */
	rg_chan *after = rg_after(3600000 * MS);
	rg_case cs[] = {RG_RECV(after, NULL), RG_RECV(rg_ctx_done(sel.c), NULL)};
	CHECK(rg_select(cs, 2, false) == 1, "done not ready");
	rg_chan_free(after);

	/* Background's done is a nil channel: never ready. */
	long v = 7;
	rg_case nd[] = {RG_RECV(rg_ctx_done(bg), NULL), RG_SEND(sel.data, &v)};
	CHECK(rg_select(nd, 2, true) == -EAGAIN, "nil done case ready");
	rg_ctx_free(sel.c);
	rg_chan_free(sel.data);
}

TEST(done_in_select_with_other_cases)
{
	run_main(_metadata, select_main, NULL, 2);
}

/* Every caller gets the same channel, concurrently. */
#define SAME_N 16

static struct {
	rg_ctx *c, *v;
	rg_chan *seen[SAME_N];
	rg_wg wg;
} same;

static void same_get(void *arg)
{
	int i = (int)(intptr_t)arg;

	same.seen[i] = rg_ctx_done(i % 2 ? same.v : same.c);
	CHECK(rg_chan_recv(same.seen[i], NULL) == 0, "done");
	rg_wg_done(&same.wg);
}

static void same_main(void *arg)
{
	same.c = rg_ctx_with_cancel(rg_ctx_background());
	same.v = rg_ctx_with_value(same.c, key1, NULL);
	rg_wg_add(&same.wg, SAME_N);
	for (int i = 0; i < SAME_N; i++)
		rg_go(same_get, (void *)(intptr_t)i);
	rg_chan *mine = rg_ctx_done(same.c);
	rg_ctx_cancel(same.c);
	rg_wg_wait(&same.wg);
	for (int i = 0; i < SAME_N; i++)
		CHECK(same.seen[i] == mine, "goroutine %d got another channel", i);
	rg_ctx_free(same.c);
	rg_ctx_free(same.v);
}

TEST(done_is_one_channel_for_every_caller)
{
	run_main(_metadata, same_main, NULL, 4);
}

static void free_done_main(void *arg)
{
	rg_ctx *c = rg_ctx_with_cancel(rg_ctx_background());

	rg_chan_free(rg_ctx_done(c));
}

TEST(freeing_the_done_channel_is_fatal)
{
	rt_expect_fatal(_metadata, free_done_main, "rg_chan_free of a context's done channel");
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                    */
/* ------------------------------------------------------------------------ */

struct canceller {
	rg_ctx *c;
	pid_t tid;
};

static void *cancel_thread(void *arg)
{
	struct canceller *cn = arg;

	cn->tid = gettid_();
	rg_ctx_cancel(cn->c);
	return NULL;
}

static void hooks_main(void *arg)
{
	rg_ctx *bg = rg_ctx_background();
	struct thook a, b, cv, g, gone, late, dl;

	thook_init(&a);
	thook_init(&b);
	thook_init(&cv);
	thook_init(&g);
	thook_init(&gone);
	thook_init(&late);
	thook_init(&dl);

	rg_ctx *p = rg_ctx_with_cancel(bg);
	rg_ctx *v = rg_ctx_with_value(p, key1, NULL);
	rg_ctx *gc = rg_ctx_with_cancel(v);
	CHECK(rg_ctx_hook_add(p, &a.h) == 0 && a.h.owner, "add a");
	CHECK(rg_ctx_hook_add(p, &b.h) == 0, "add b");
	CHECK(rg_ctx_hook_add(v, &cv.h) == 0 && cv.h.owner, "a value's hook registers above");
	CHECK(rg_ctx_hook_add(gc, &g.h) == 0, "add g");
	CHECK(rg_ctx_hook_add(p, &gone.h) == 0, "add gone");
	thook_del(&gone); /* before the cancel: must never run */

	/* Cancel from a plain thread: the hooks run there, each once. */
	struct canceller cn = {p, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, cancel_thread, &cn) == 0, "pthread_create");
	pthread_join(th, NULL);
	struct thook *all[] = {&a, &b, &cv, &g};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		CHECK(atomic_load(&all[i]->calls) == 1, "hook %zu ran %d times", i,
		      atomic_load(&all[i]->calls));
		CHECK(atomic_load(&all[i]->err) == -ECANCELED, "hook %zu err", i);
		CHECK(atomic_load(&all[i]->tid) == cn.tid, "hook %zu not on the cancelling thread",
		      i);
	}
	CHECK(atomic_load(&gone.calls) == 0, "deleted hook ran");
	rg_ctx_cancel(p);
	rg_ctx_cancel(gc);
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		CHECK(atomic_load(&all[i]->calls) == 1, "hook %zu ran again", i);

	/* Too late: the error, nothing registered, nothing called. */
	CHECK(rg_ctx_hook_add(gc, &late.h) == -ECANCELED && !late.h.owner, "add after cancel");
	rg_ctx_hook_del(&late.h);
	CHECK(atomic_load(&late.calls) == 0, "late hook ran");

	/* A registration keeps its context alive past the owner's free. */
	long base = rg_ctx_live();
	rg_ctx *k = rg_ctx_with_cancel(bg);
	struct thook kh;
	thook_init(&kh);
	CHECK(rg_ctx_hook_add(k, &kh.h) == 0, "add kh");
	rg_ctx_free(k);
	CHECK(atomic_load(&kh.calls) == 1, "free did not cancel");
	CHECK(rg_ctx_live() == base + 1, "freed under a registered hook");
	thook_del(&kh);
	CHECK(rg_ctx_live() == base, "del did not drop the last reference");

	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		thook_del(all[i]);
	rg_ctx_hook_del(&a.h); /* twice: a no-op */

	/* A deadline runs the hook from the timer, with -ETIMEDOUT. */
	rg_ctx *d = rg_ctx_with_timeout(bg, 20 * MS);
	rg_ctx *dc = rg_ctx_with_cancel(d);
	rg_ctx *dv = rg_ctx_with_value(dc, key2, NULL);
	int e = rg_ctx_hook_add(dv, &dl.h);
	CHECK(e == 0 || e == -ETIMEDOUT, "add dl: %d", e); /* late on a loaded machine */
	CHECK(rg_chan_recv(rg_ctx_done(dv), NULL) == 0, "done");
	CHECK(atomic_load(&dl.calls) == (e == 0) && (e || atomic_load(&dl.err) == -ETIMEDOUT),
	      "deadline hook: %d calls, err %d", atomic_load(&dl.calls), atomic_load(&dl.err));
	thook_del(&dl);
	rg_ctx_free(d);
	rg_ctx_free(dv);
	rg_ctx_free(dc);

	rg_ctx_free(gc);
	rg_ctx_free(v);
	rg_ctx_free(p);
}

TEST(hooks_run_once_on_the_cancelling_thread)
{
	run_main(_metadata, hooks_main, NULL, 2);
}

/* ---- del racing cancel (and free), from goroutines ---- */

#define HR_PAIRS 8
#define HR_ROUNDS RT_TSAN_SCALE(400, 8)

static struct {
	rg_ctx *c[HR_PAIRS];
	struct thook t[HR_PAIRS];
	bool freed_by_canceller[HR_PAIRS];
	rg_wg wg;
	atomic_long fired, not_fired;
} hr;

static void hr_cancel(void *arg)
{
	int i = (int)(intptr_t)arg;

	if (hr.freed_by_canceller[i])
		rg_ctx_free(hr.c[i]); /* the hook's reference keeps it alive for del */
	else
		rg_ctx_cancel(hr.c[i]);
	rg_wg_done(&hr.wg);
}

static void hr_del(void *arg)
{
	int i = (int)(intptr_t)arg;

	thook_del(&hr.t[i]);
	rg_wg_done(&hr.wg);
}

static void hook_race_main(void *arg)
{
	uint32_t rnd = 0x9e3779b9;

	for (int r = 0; r < HR_ROUNDS; r++) {
		rg_wg_add(&hr.wg, 2 * HR_PAIRS);
		for (int i = 0; i < HR_PAIRS; i++) {
			uint32_t x = xorshift(&rnd);
			/* Some have deadlines that fire around now, from the timer. */
			hr.c[i] = x % 3 == 0 ? rg_ctx_with_timeout(rg_ctx_background(),
								   (int64_t)(x >> 8) % (20 * US)) :
					       rg_ctx_with_cancel(rg_ctx_background());
			hr.freed_by_canceller[i] = x & 8;
			thook_init(&hr.t[i]);
			int e = rg_ctx_hook_add(hr.c[i], &hr.t[i].h);
			CHECK(e == 0 || e == -ETIMEDOUT, "add: %d", e);
		}
		for (int i = 0; i < HR_PAIRS; i++) {
			/* Either order of start; the two run on different Ps when they can. */
			if (i & 1) {
				rg_go(hr_del, (void *)(intptr_t)i);
				rg_go(hr_cancel, (void *)(intptr_t)i);
			} else {
				rg_go(hr_cancel, (void *)(intptr_t)i);
				rg_go(hr_del, (void *)(intptr_t)i);
			}
		}
		rg_wg_wait(&hr.wg);
		for (int i = 0; i < HR_PAIRS; i++) {
			int n = atomic_load(&hr.t[i].calls);
			CHECK(n <= 1, "hook ran %d times", n);
			atomic_fetch_add(n ? &hr.fired : &hr.not_fired, 1);
			if (!hr.freed_by_canceller[i])
				rg_ctx_free(hr.c[i]);
			CHECK(atomic_load(&hr.t[i].calls) == n, "hook ran after del");
		}
	}
}

TEST(hook_del_races_cancel_goroutines)
{
	run_main(_metadata, hook_race_main, NULL, 4);
	TH_LOG("hooks fired %ld, deleted first %ld", atomic_load(&hr.fired),
	       atomic_load(&hr.not_fired));
}

/* ---- the same from plain threads, outside rg_run, in lock step ---- */

#define HT_ITERS RT_TSAN_SCALE(20000, 10)

static struct {
	rg_ctx *c;
	struct thook t;
	atomic_int gen, arrived;
	atomic_long fired;
} ht;

static void ht_step(int gen)
{
	while (atomic_load(&ht.gen) != gen)
		sched_yield(); /* the point is to start together; yield for small machines */
}

static void *ht_canceller(void *arg)
{
	for (int k = 1; k <= HT_ITERS; k++) {
		ht_step(k);
		rg_ctx_cancel(ht.c);
		atomic_fetch_add(&ht.arrived, 1);
	}
	return arg;
}

static void *ht_deleter(void *arg)
{
	for (int k = 1; k <= HT_ITERS; k++) {
		ht_step(k);
		thook_del(&ht.t);
		atomic_fetch_add(&ht.arrived, 1);
	}
	return arg;
}

TEST(hook_del_races_cancel_threads)
{
	pthread_t a, b;

	ASSERT_EQ(0, pthread_create(&a, NULL, ht_canceller, NULL));
	ASSERT_EQ(0, pthread_create(&b, NULL, ht_deleter, NULL));
	for (int k = 1; k <= HT_ITERS; k++) {
		ht.c = rg_ctx_with_cancel(rg_ctx_background());
		thook_init(&ht.t);
		CHECK(rg_ctx_hook_add(ht.c, &ht.t.h) == 0, "add");
		atomic_store(&ht.gen, k);
		while (atomic_load(&ht.arrived) != 2 * k)
			sched_yield();
		int n = atomic_load(&ht.t.calls);
		CHECK(n <= 1, "hook ran %d times", n);
		atomic_fetch_add(&ht.fired, n);
		rg_ctx_free(ht.c);
		CHECK(atomic_load(&ht.t.calls) == n, "hook ran after del");
	}
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	TH_LOG("hooks fired %ld of %d", atomic_load(&ht.fired), HT_ITERS);
	EXPECT_EQ(0, rg_ctx_live());
	EXPECT_NO_ERRS();
}

/* ---- one context shared by goroutines on every P (a server's) ---- */

#define SH_G 16

static struct {
	rg_ctx *c;
	atomic_int cancelled; /* rg_ctx_cancel has returned */
	atomic_long registered, refused, ran;
	rg_wg wg;
} sh;

/* Register, let the others run while registered, unregister; until the cancel. */
static void sh_worker(void *arg)
{
	bool last = false;

	while (!last) {
		struct thook t;
		thook_init(&t);
		last = atomic_load(&sh.cancelled);
		int e = rg_ctx_hook_add(sh.c, &t.h);
		CHECK(e == 0 || e == -ECANCELED, "add: %d", e);
		CHECK(!last || e == -ECANCELED, "add after the cancel returned: %d", e);
		atomic_fetch_add(e ? &sh.refused : &sh.registered, 1);
		rg_yield();
		bool after = atomic_load(&sh.cancelled);
		thook_del(&t);
		int n = atomic_load(&t.calls);
		CHECK(n <= 1, "hook ran %d times", n);
		CHECK(!e || !n, "a refused hook ran");
		/* Registered, and the cancel returned before the del: it must have run. */
		CHECK(e || !after || n == 1, "a hook registered before the cancel did not run");
		atomic_fetch_add(&sh.ran, n);
	}
	rg_wg_done(&sh.wg);
}

static void shared_main(void *arg)
{
	sh.c = rg_ctx_with_cancel(rg_ctx_background());
	rg_wg_add(&sh.wg, SH_G);
	for (int i = 0; i < SH_G; i++)
		rg_go(sh_worker, NULL);
	/* Registrations from a second P while the first P's wait: one shard per P. */
	CHECK(AWAIT(rg_ctx_hooks_sharded(sh.c) && atomic_load(&sh.registered) >= 1000),
	      "no shards after %ld registrations", atomic_load(&sh.registered));
	rg_ctx_cancel(sh.c);
	atomic_store(&sh.cancelled, 1);
	rg_wg_wait(&sh.wg);
	CHECK(atomic_load(&sh.ran) > 0 && atomic_load(&sh.refused) >= SH_G, "ran %ld, refused %ld",
	      atomic_load(&sh.ran), atomic_load(&sh.refused));
	rg_ctx_free(sh.c);
}

TEST(shared_context_hooks_from_every_p)
{
	run_main(_metadata, shared_main, NULL, 2);
	TH_LOG("registered %ld, ran %ld, refused %ld", atomic_load(&sh.registered),
	       atomic_load(&sh.ran), atomic_load(&sh.refused));
}

/* ------------------------------------------------------------------------ */
/* Frees in any order; deadline timers racing frees                         */
/* ------------------------------------------------------------------------ */

#define TREE_N 200

static void any_order_main(void *arg)
{
	static rg_ctx *c[TREE_N];
	static int parent[TREE_N], kind[TREE_N], order[TREE_N];
	static bool freed[TREE_N];
	uint32_t rnd = 12345;

	for (int seed = 0; seed < RT_TSAN_SCALE(20, 4); seed++) {
		for (int i = 0; i < TREE_N; i++) {
			uint32_t x = xorshift(&rnd);
			parent[i] = i == 0 ? -1 : (int)(x % (uint32_t)i);
			rg_ctx *p = i == 0 ? rg_ctx_background() : c[parent[i]];
			switch ((kind[i] = x >> 24 & 3)) {
			case 0:
				c[i] = rg_ctx_with_value(p, key1, &c[i]);
				break;
			case 1:
				c[i] = rg_ctx_with_timeout(p, 3600000 * MS);
				break;
			default:
				c[i] = rg_ctx_with_cancel(p);
			}
			CHECK(c[i], "create");
			order[i] = i;
			freed[i] = false;
		}
		for (int i = TREE_N - 1; i > 0; i--) {
			int j = (int)(xorshift(&rnd) % (uint32_t)(i + 1));
			int t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		for (int k = 0; k < TREE_N; k++) {
			int i = order[k];
			rg_ctx_free(c[i]);
			freed[i] = true;
			/* Live ones below a freed cancellable ancestor are cancelled; values still read. */
			for (int j = 0; j < TREE_N; j++) {
				if (freed[j])
					continue;
				/* Cancelled iff itself or an ancestor is a freed cancel context. */
				bool want = false;
				void *val = NULL;
				for (int a = j; a >= 0; a = parent[a]) {
					want |= freed[a] && kind[a] != 0;
					if (!val && kind[a] == 0)
						val = &c[a];
				}
				int e = rg_ctx_err(c[j]);
				CHECK(e == (want ? -ECANCELED : 0), "node %d: err %d", j, e);
				CHECK(rg_ctx_value(c[j], key1) == val, "node %d: wrong value", j);
			}
		}
		CHECK(rg_ctx_live() == 0, "seed %d: %ld contexts leaked", seed, rg_ctx_live());
	}
}

TEST(free_in_any_order)
{
	run_main(_metadata, any_order_main, NULL, 1);
}

#define TR_W 8
#define TR_ITERS RT_TSAN_SCALE(400, 8)

static struct {
	rg_ctx *shared;
	rg_wg wg;
} trf;

static void timer_race_worker(void *arg)
{
	uint32_t rnd = 0x1234567u * (uint32_t)(intptr_t)arg + 1;

	for (int k = 0; k < TR_ITERS; k++) {
		uint32_t x = xorshift(&rnd);
		rg_ctx *p = x & 1 ? trf.shared : rg_ctx_background();
		rg_ctx *c = rg_ctx_with_timeout(p, (int64_t)(x >> 8) % (50 * US));
		rg_ctx *ch = x & 2 ? rg_ctx_with_timeout(c, (int64_t)(x >> 12) % (50 * US)) : NULL;
		struct thook t;
		thook_init(&t);
		int e = rg_ctx_hook_add(ch ? ch : c, &t.h);
		CHECK(e == 0 || e == -ETIMEDOUT, "add %d", e);
		if (x & 4)
			rt_spin_ns((x >> 16) % (60 * US));
		else
			rg_yield();
		if (x & 8) {
			rg_ctx_free(c);
			rg_ctx_free(ch);
		} else {
			rg_ctx_free(ch);
			rg_ctx_free(c);
		}
		thook_del(&t);
		CHECK(atomic_load(&t.calls) == (e == 0), "hook ran %d times (add said %d)",
		      atomic_load(&t.calls), e);
	}
	rg_wg_done(&trf.wg);
}

static void timer_race_main(void *arg)
{
	trf.shared = rg_ctx_with_timeout(rg_ctx_background(), 3600000 * MS);
	rg_wg_add(&trf.wg, TR_W);
	for (int i = 0; i < TR_W; i++)
		rg_go(timer_race_worker, (void *)(intptr_t)(i + 1));
	rg_wg_wait(&trf.wg);
	rg_ctx_free(trf.shared);
}

TEST(deadline_timers_race_frees)
{
	run_main(_metadata, timer_race_main, NULL, 4);
}

/* ------------------------------------------------------------------------ */
/* Stress: cancel vs free vs creation on one parent                         */
/* ------------------------------------------------------------------------ */

#define ST_W 8
#define ST_ITERS RT_TSAN_SCALE(2000, 10)

static struct {
	rg_ctx *p;
	rg_ctx *own[ST_W]; /* each worker's child of p, which it frees mid-way */
	atomic_int cancelled, iters;
	rg_wg wg;
} st;

static void stress_worker(void *arg)
{
	int w = (int)(intptr_t)arg;
	uint32_t rnd = 0xdeadbeefu ^ (uint32_t)w * 2654435761u;
	int free_own_at = (int)(xorshift(&rnd) % ST_ITERS);

	for (int k = 0; k < ST_ITERS; k++) {
		uint32_t x = xorshift(&rnd);
		/* st.p is kept alive by our own child until we free it. */
		rg_ctx *base = st.own[w] ? (x & 1 ? st.p : st.own[w]) : rg_ctx_background();
		bool was_cancelled = st.own[w] && (x & 1) && atomic_load(&st.cancelled);
		rg_ctx *c;
		switch (x >> 8 & 3) {
		case 0:
			c = rg_ctx_with_value(base, key1, NULL);
			break;
		case 1:
			c = rg_ctx_with_timeout(base, (int64_t)(x >> 12) % (100 * US));
			break;
		default:
			c = rg_ctx_with_cancel(base);
		}
		CHECK(c, "create");
		if (was_cancelled)
			CHECK(rg_ctx_err(c) == -ECANCELED || rg_ctx_err(c) == -ETIMEDOUT,
			      "child of a cancelled parent is live: %d", rg_ctx_err(c));
		rg_ctx *g = rg_ctx_with_cancel(c);
		struct thook t;
		thook_init(&t);
		int e = rg_ctx_hook_add(g, &t.h);
		if (x & 0x10000)
			rg_yield();
		if (x & 0x20000) {
			rg_ctx_free(c);
			rg_ctx_free(g);
		} else {
			rg_ctx_free(g);
			rg_ctx_free(c);
		}
		thook_del(&t);
		CHECK(atomic_load(&t.calls) == (e == 0), "hook ran %d times",
		      atomic_load(&t.calls));
		if (k == free_own_at) {
			rg_ctx_free(st.own[w]);
			st.own[w] = NULL;
		}
		atomic_fetch_add(&st.iters, 1);
	}
	rg_wg_done(&st.wg);
}

static void stress_main(void *arg)
{
	bool free_parent = arg != NULL;

	st.p = rg_ctx_with_cancel(rg_ctx_background());
	for (int w = 0; w < ST_W; w++)
		st.own[w] = rg_ctx_with_cancel(st.p);
	rg_wg_add(&st.wg, ST_W);
	for (int w = 0; w < ST_W; w++)
		rg_go(stress_worker, (void *)(intptr_t)w);
	/* Mid-way through the workers' loops, cancel (or free) the shared parent. */
	CHECK(AWAIT(atomic_load(&st.iters) >= ST_W * ST_ITERS / 3), "workers stuck");
	if (free_parent) {
		rg_ctx_free(st.p); /* the workers' own children keep it alive */
		atomic_store(&st.cancelled, 1);
	} else {
		rg_ctx_cancel(st.p);
		atomic_store(&st.cancelled, 1);
	}
	rg_wg_wait(&st.wg);
	if (!free_parent)
		rg_ctx_free(st.p);
}

TEST(stress_cancel_vs_free_vs_create_on_one_parent)
{
	run_main(_metadata, stress_main, NULL, 4);
}

TEST(stress_parent_freed_while_children_work)
{
	run_main(_metadata, stress_main, (void *)1, 4);
}

/* ------------------------------------------------------------------------ */
/* errgroup with a context                                                  */
/* ------------------------------------------------------------------------ */

#define EG_N 8

static struct {
	rg_errgroup g;
	rg_ctx *ctx;
	atomic_int saw_cancel;
} eg;

static int eg_waiter(void *arg)
{
	CHECK(rg_chan_recv(rg_ctx_done(eg.ctx), NULL) == 0, "done");
	if (rg_ctx_err(eg.ctx) == -ECANCELED)
		atomic_fetch_add(&eg.saw_cancel, 1);
	return 0;
}

static int eg_fail(void *arg)
{
	return -EIO;
}

static int eg_live(void *arg)
{
	CHECK(rg_ctx_err(eg.ctx) == 0, "cancelled while the group runs: %d", rg_ctx_err(eg.ctx));
	return 0;
}

static void eg_main(void *arg)
{
	rg_ctx *bg = rg_ctx_background();

	/* The first failure cancels the context for the others. */
	memset(&eg, 0, sizeof(eg));
	eg.ctx = rg_errgroup_with_ctx(&eg.g, bg);
	CHECK(eg.ctx && rg_ctx_err(eg.ctx) == 0, "with_ctx");
	errno = 0;
	CHECK(!rg_errgroup_with_ctx(&eg.g, bg) && errno == EBUSY, "second with_ctx");
	for (int i = 0; i < EG_N; i++)
		CHECK(rg_errgroup_go(&eg.g, eg_waiter, NULL) == 0, "go");
	CHECK(rg_errgroup_go(&eg.g, eg_fail, NULL) == 0, "go");
	CHECK(rg_errgroup_wait(&eg.g) == -EIO, "wait");
	CHECK(atomic_load(&eg.saw_cancel) == EG_N, "%d saw the cancel",
	      atomic_load(&eg.saw_cancel));
	CHECK(rg_errgroup_canceled(&eg.g), "canceled flag");
	rg_ctx_free(eg.ctx);

	/* No failure: live until wait returns, cancelled after. */
	memset(&eg, 0, sizeof(eg));
	eg.ctx = rg_errgroup_with_ctx(&eg.g, bg);
	for (int i = 0; i < EG_N; i++)
		CHECK(rg_errgroup_go(&eg.g, eg_live, NULL) == 0, "go");
	CHECK(rg_errgroup_wait(&eg.g) == 0, "wait");
	CHECK(rg_ctx_err(eg.ctx) == -ECANCELED, "not cancelled by wait");
	CHECK(!rg_errgroup_canceled(&eg.g), "canceled without an error");
	/* The group is done with it: it may take a new one. */
	rg_ctx *again = rg_errgroup_with_ctx(&eg.g, bg);
	CHECK(again, "with_ctx after wait");
	CHECK(rg_errgroup_wait(&eg.g) == 0 && rg_ctx_err(again) == -ECANCELED, "again");
	rg_ctx_free(again);
	rg_ctx_free(eg.ctx);

	/* The parent's cancel reaches it; the caller may free its reference early. */
	memset(&eg, 0, sizeof(eg));
	rg_ctx *parent = rg_ctx_with_cancel(bg);
	eg.ctx = rg_errgroup_with_ctx(&eg.g, parent);
	for (int i = 0; i < EG_N; i++)
		CHECK(rg_errgroup_go(&eg.g, eg_waiter, NULL) == 0, "go");
	rg_ctx_cancel(parent);
	CHECK(rg_errgroup_wait(&eg.g) == 0, "wait");
	CHECK(atomic_load(&eg.saw_cancel) == EG_N, "parent's cancel not seen");
	rg_ctx_free(eg.ctx);
	rg_ctx_free(parent);

	memset(&eg, 0, sizeof(eg));
	eg.ctx = rg_errgroup_with_ctx(&eg.g, bg);
	rg_ctx_free(eg.ctx); /* cancels it; the group's reference keeps it valid */
	for (int i = 0; i < EG_N; i++)
		CHECK(rg_errgroup_go(&eg.g, eg_waiter, NULL) == 0, "go");
	CHECK(rg_errgroup_wait(&eg.g) == 0, "wait");
	CHECK(atomic_load(&eg.saw_cancel) == EG_N, "early free not seen as a cancel");

	errno = 0;
	CHECK(!rg_errgroup_with_ctx(&eg.g, NULL) && errno == EINVAL, "NULL parent");
}

TEST(errgroup_with_ctx)
{
	run_main(_metadata, eg_main, NULL, 2);
}

TEST_HARNESS_MAIN
