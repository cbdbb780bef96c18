// SPDX-License-Identifier: BSD-2-Clause
/*
 * White-box tests of the internal park/ready protocol (runtime.h): rg_park's
 * commit callback, rg_park_unlock, rg_ready, and the wake-before-park race
 * that every blocking primitive built on them has to get right.
 */
#include "rg_await.h"
#include "rg_test.h"
#include "runtime.h"

/* ------------------------------------------------------------------------ */

static struct {
	int commits, resumed;
	bool commit_saw_self;
	struct rg_g *self;
	uint32_t status_in_commit, status_after;
} cf;

static bool commit_refuse(struct rg_g *g, void *arg)
{
	cf.commits++;
	cf.commit_saw_self = g == cf.self && arg == &cf;
	cf.status_in_commit = atomic_load(&g->status);
	return false;
}

static void cf_main(void *arg)
{
	cf.self = rg_getg();
	for (int i = 0; i < 1000; i++) {
		rg_park(commit_refuse, &cf, WAIT_PARK_TEST, &cf);
		cf.resumed++;
	}
	cf.status_after = atomic_load(&cf.self->status);
}

/* A commit that returns false cancels the park: the goroutine goes on at once. */
TEST(park_commit_false_resumes)
{
	ASSERT_EQ(0, rg_run(cf_main, NULL));
	EXPECT_EQ(1000, cf.commits);
	EXPECT_EQ(1000, cf.resumed);
	EXPECT_TRUE(cf.commit_saw_self);
	/* The commit runs once the goroutine is switched out and marked waiting. */
	EXPECT_EQ(G_WAITING, cf.status_in_commit);
	EXPECT_EQ(G_RUNNING, cf.status_after);
}

/* ------------------------------------------------------------------------ */

/*
 * A one-waiter event in the style of the runtime's own primitives: the waiter
 * registers under a lock and parks with rg_park_unlock; a signal that comes
 * first leaves a token instead (wake before park).
 */
struct event {
	struct rg_lock l;
	struct rg_g *waiter;
	bool token;
	long early, parked; /* which path each wait took */
};

static void event_wait(struct event *e)
{
	RT_LOCK(&e->l);
	if (e->token) {
		e->token = false;
		e->early++;
		RT_UNLOCK(&e->l);
		return;
	}
	e->waiter = rg_getg();
	e->parked++;
	rg_park_unlock(&e->l, WAIT_PARK_TEST, e); /* the commit unlocks, on the other side */
	rg_preempt_enable();
}

static void event_signal(struct event *e)
{
	struct rg_g *g;

	RT_LOCK(&e->l);
	g = e->waiter;
	e->waiter = NULL;
	if (!g)
		e->token = true;
	RT_UNLOCK(&e->l);
	if (g)
		rg_ready(g);
}

#define EV_ROUNDS RT_TSAN_SCALE(100000, 10)

static struct {
	struct event to_a, to_b;
	long seq; /* plain: ordered by the events */
	long bad;
	rg_wg wg;
	uint64_t ns;
} ev;

static void ev_a(void *arg)
{
	for (long i = 0; i < EV_ROUNDS; i++) {
		if (ev.seq != 2 * i)
			ev.bad++;
		ev.seq++;
		event_signal(&ev.to_b);
		event_wait(&ev.to_a);
	}
	rg_wg_done(&ev.wg);
}

static void ev_b(void *arg)
{
	for (long i = 0; i < EV_ROUNDS; i++) {
		event_wait(&ev.to_b);
		if (ev.seq != 2 * i + 1)
			ev.bad++;
		ev.seq++;
		event_signal(&ev.to_a);
	}
	rg_wg_done(&ev.wg);
}

static void ev_main(void *arg)
{
	uint64_t t0 = rt_now_ns();

	rg_wg_add(&ev.wg, 2);
	rg_go(ev_b, NULL);
	rg_go(ev_a, NULL);
	rg_wg_wait(&ev.wg);
	ev.ns = rt_now_ns() - t0;
}

TEST(park_ready_pingpong)
{
	long early, parked;

	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(ev_main, NULL));
	EXPECT_EQ(2L * EV_ROUNDS, ev.seq);
	EXPECT_EQ(0, ev.bad);
	early = ev.to_a.early + ev.to_b.early;
	parked = ev.to_a.parked + ev.to_b.parked;
	EXPECT_EQ(2L * EV_ROUNDS, early + parked);
	/* Hand-offs stay on one P (runnext), so the early path is rare here: logged only. */
	EXPECT_GT(parked, 0);
	TH_LOG("%ld waits: %ld found the signal first, %ld parked; %.0f ns per round", 2L * EV_ROUNDS,
	       early, parked, (double)ev.ns / EV_ROUNDS);
}

/* The signal comes before the waiter exists: the wait must not park at all. */
static struct {
	struct event e;
	rg_wg wg;
} wbp;

static void wbp_waiter(void *arg)
{
	event_wait(&wbp.e);
	rg_wg_done(&wbp.wg);
}

static void wbp_main(void *arg)
{
	event_signal(&wbp.e);
	rg_wg_add(&wbp.wg, 1);
	rg_go(wbp_waiter, NULL);
	rg_wg_wait(&wbp.wg);
}

TEST(wake_before_park)
{
	ASSERT_EQ(0, rg_run(wbp_main, NULL));
	EXPECT_EQ(1, wbp.e.early);
	EXPECT_EQ(0, wbp.e.parked);
	EXPECT_FALSE(wbp.e.token);
}

/* ------------------------------------------------------------------------ */

/* Many goroutines parked at once, readied in bulk by another goroutine. */
#define BULK_G RT_TSAN_SCALE(10000, 10)

static struct {
	struct rg_lock l;
	struct rg_g **waiters;
	long nwaiting;
	unsigned char *resumed; /* per goroutine: times it came back */
	rg_wg fin;
	long not_waiting; /* readied goroutines that were not in G_WAITING */
} bulk;

/* Runs on g0: g is queued only once it is switched out, so main can ready it. */
static bool bulk_commit(struct rg_g *g, void *arg)
{
	rg_lock(&bulk.l);
	bulk.waiters[bulk.nwaiting] = g;
	__atomic_store_n(&bulk.nwaiting, bulk.nwaiting + 1, __ATOMIC_RELEASE);
	rg_unlock(&bulk.l);
	return true;
}

static void bulk_waiter(void *arg)
{
	rg_park(bulk_commit, NULL, WAIT_PARK_TEST, &bulk);
	bulk.resumed[(uintptr_t)arg]++;
	rg_wg_done(&bulk.fin);
}

static void bulk_main(void *arg)
{
	uint64_t t0;

	rg_wg_add(&bulk.fin, BULK_G);
	for (long i = 0; i < BULK_G; i++)
		rg_go(bulk_waiter, (void *)(uintptr_t)i);
	/* Commit callbacks run on g0, where blocking calls are not allowed: poll. */
	t0 = rt_now_ns();
	while (__atomic_load_n(&bulk.nwaiting, __ATOMIC_ACQUIRE) < BULK_G &&
	       rt_now_ns() - t0 < 10000000000ull)
		rg_yield();
	if (__atomic_load_n(&bulk.nwaiting, __ATOMIC_ACQUIRE) < BULK_G)
		return; /* the test reports nwaiting; the parked ones are abandoned */
	for (long i = 0; i < BULK_G; i++) {
		if (atomic_load(&bulk.waiters[i]->status) != G_WAITING)
			bulk.not_waiting++;
		rg_ready(bulk.waiters[i]);
	}
	rg_wg_wait(&bulk.fin);
}

TEST(park_many_ready_in_bulk)
{
	long missed = 0, twice = 0;

	bulk.waiters = calloc(BULK_G, sizeof(*bulk.waiters));
	bulk.resumed = calloc(BULK_G, 1);
	ASSERT_NE(NULL, bulk.waiters);
	ASSERT_NE(NULL, bulk.resumed);
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(bulk_main, NULL));
	EXPECT_EQ(BULK_G, bulk.nwaiting);
	EXPECT_EQ(0, bulk.not_waiting);
	for (long i = 0; i < BULK_G; i++) {
		missed += bulk.resumed[i] == 0;
		twice += bulk.resumed[i] > 1;
	}
	EXPECT_EQ(0, missed);
	EXPECT_EQ(0, twice);
	free(bulk.waiters);
	free(bulk.resumed);
}

TEST_HARNESS_MAIN
