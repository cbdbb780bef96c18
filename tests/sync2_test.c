// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_rwmutex, rg_cond, rg_sem, rg_atomic_value and rg_errgroup: Go's tests
 * for sync.RWMutex and sync.Cond ported to goroutines, the ordering promises
 * (writer preference, FIFO wake-ups, a heavy semaphore waiter that is not
 * overtaken), a configuration hot-reload through an atomic value, errgroup's
 * first error and limit, and the fatal misuse paths.
 *
 * "Is it parked yet?" is answered white-box, from the goroutine's state in
 * the runtime, never by sleeping. Goroutines cannot ASSERT (the harness
 * longjmps out of the TEST body), so they CHECK, and the TEST then expects
 * that no check failed. Shared data is plain where the primitive under test
 * is what orders it, so a broken primitive also shows up under TSan.
 */
#include "rg_test.h"
#include "rg_check.h"
#include "runtime.h"
#include "rg_await.h"

FIXTURE(slow) {
	int unused;
};
FIXTURE_SETUP(slow)
{
}
FIXTURE_TEARDOWN(slow)
{
}

/* ------------------------------------------------------------------------ */

/* A state that should come soon but does not is a failure, not a hang. */
#define AWAIT_NS (10ull * 1000000000ull)

/* Parked for `why`? wait_reason is written before the release store of G_WAITING. */
static bool is_parked(gslot *slot, enum rg_wait_reason why)
{
	struct rg_g *g = atomic_load(slot);

	return g && atomic_load_explicit(&g->status, memory_order_acquire) == G_WAITING &&
	       g->wait_reason == why;
}

/* Still parked: only the status, which a wrong wake-up changes at once. */
static bool still_parked(gslot *slot)
{
	struct rg_g *g = atomic_load(slot);

	return g && atomic_load_explicit(&g->status, memory_order_acquire) == G_WAITING;
}

/* Fatal misuse: run it in a child, expect the message on stderr and SIGABRT. */
static void fatal_child(void *arg)
{
	int rc = rg_run((void (*)(void *))arg, NULL);

	/* Reached only if the runtime did not abort. */
	fprintf(stderr, "test: rg_run returned %d\n", rc);
	_exit(3);
}

static void expect_fatal(struct __test_metadata *_metadata, void (*main_fn)(void *),
			 const char *reason)
{
	struct rt_child *c = malloc(sizeof(*c));
	char want[256], st[80];

	ASSERT_NE(NULL, c);
	snprintf(want, sizeof(want), "ringo: fatal: %s\n", reason);
	ASSERT_EQ(0, rt_run_child(fatal_child, (void *)main_fn, c));
	EXPECT_TRUE(rt_child_aborted(c))
		TH_LOG("child %s", rt_status_str(c->status, st, sizeof(st)));
	EXPECT_NE(NULL, strstr(c->out, want))
		TH_LOG("no \"%s\" in the child's stderr:\n%s", reason, c->out);
	/* The dump names the goroutine that broke the rule. */
	EXPECT_NE(NULL, strstr(c->out, "goroutine 1 ["))
		TH_LOG("no goroutine dump:\n%s", c->out);
	free(c);
}

static void run_main(struct __test_metadata *_metadata, void (*main_fn)(void *), void *arg,
		     int procs)
{
	rg_maxprocs(procs);
	ASSERT_EQ(0, rg_run(main_fn, arg));
	EXPECT_NO_ERRS();
}

/* ------------------------------------------------------------------------ */
/* RWMutex                                                                  */
/* ------------------------------------------------------------------------ */

/* The first half of Go's TestRWMutex, plus the zero value. */
static void rw_try_main(void *arg)
{
	rg_rwmutex m = RG_RWMUTEX_INIT, z;

	rg_rwmutex_lock(&m);
	CHECK(!rg_rwmutex_trylock(&m), "TryLock succeeded with mutex locked");
	CHECK(!rg_rwmutex_tryrlock(&m), "TryRLock succeeded with mutex locked");
	rg_rwmutex_unlock(&m);

	CHECK(rg_rwmutex_trylock(&m), "TryLock failed with mutex unlocked");
	rg_rwmutex_unlock(&m);

	CHECK(rg_rwmutex_tryrlock(&m), "TryRLock failed with mutex unlocked");
	CHECK(rg_rwmutex_tryrlock(&m), "TryRLock failed with mutex rlocked");
	CHECK(!rg_rwmutex_trylock(&m), "TryLock succeeded with mutex rlocked");
	rg_rwmutex_runlock(&m);
	CHECK(!rg_rwmutex_trylock(&m), "TryLock succeeded with one reader left");
	rg_rwmutex_runlock(&m);
	CHECK(rg_rwmutex_trylock(&m), "TryLock failed after the last RUnlock");
	rg_rwmutex_unlock(&m);

	memset(&z, 0, sizeof(z));
	CHECK(rg_rwmutex_tryrlock(&z), "TryRLock failed on a zeroed RWMutex");
	rg_rwmutex_runlock(&z);
	CHECK(rg_rwmutex_trylock(&z), "TryLock failed on a zeroed RWMutex");
	rg_rwmutex_unlock(&z);
}

TEST(rwmutex_try)
{
	run_main(_metadata, rw_try_main, NULL, 2);
}

/* Go's TestParallelReaders: every reader holds the lock at once, or this deadlocks. */
struct pr {
	rg_rwmutex m;
	rg_chan *clocked, *cunlock, *cdone;
};

static void pr_reader(void *arg)
{
	struct pr *p = arg;
	bool t = true;

	rg_rwmutex_rlock(&p->m);
	rg_chan_send(p->clocked, &t);
	rg_chan_recv(p->cunlock, NULL);
	rg_rwmutex_runlock(&p->m);
	rg_chan_send(p->cdone, &t);
}

static void pr_round(int readers, int procs)
{
	struct pr p = {.m = RG_RWMUTEX_INIT};
	bool t = true;

	rg_maxprocs(procs);
	p.clocked = rg_chan_make(sizeof(bool), 0);
	p.cunlock = rg_chan_make(sizeof(bool), 0);
	p.cdone = rg_chan_make(sizeof(bool), 0);
	for (int i = 0; i < readers; i++)
		rg_go(pr_reader, &p);
	/* Wait for all parallel RLocks to succeed. */
	for (int i = 0; i < readers; i++)
		rg_chan_recv(p.clocked, NULL);
	/* With every reader inside, one more gets in and a writer does not. */
	CHECK(rg_rwmutex_tryrlock(&p.m), "TryRLock failed among %d readers", readers);
	rg_rwmutex_runlock(&p.m);
	CHECK(!rg_rwmutex_trylock(&p.m), "TryLock succeeded among %d readers", readers);
	for (int i = 0; i < readers; i++)
		rg_chan_send(p.cunlock, &t);
	for (int i = 0; i < readers; i++)
		rg_chan_recv(p.cdone, NULL);
	rg_chan_free(p.clocked);
	rg_chan_free(p.cunlock);
	rg_chan_free(p.cdone);
}

static void pr_main(void *arg)
{
	pr_round(1, 4);
	pr_round(3, 4);
	pr_round(4, 2);
	pr_round(100, 2);
	pr_round(100, 1);
}

TEST(rwmutex_parallel_readers)
{
	run_main(_metadata, pr_main, NULL, 2);
}

/*
 * Go's HammerRWMutex. activity counts readers plus 10000 per writer, so a
 * reader beside a writer, or two writers, show up in the sum. ringo does not
 * preempt, so the critical sections yield now and then to let others in.
 */
#define HM_ITERS RT_TSAN_SCALE(1000, 5)

static struct {
	rg_rwmutex m;
	atomic_int activity;
	long shared; /* written by writers only: exclusion keeps it race-free */
	long writes;
	rg_wg wg;
} hm;

static void hm_reader(void *arg)
{
	for (int i = 0; i < HM_ITERS; i++) {
		rg_rwmutex_rlock(&hm.m);
		int n = atomic_fetch_add(&hm.activity, 1) + 1;
		CHECK(n >= 1 && n < 10000, "reader saw activity %d", n);
		long before = hm.shared;
		if (i % 8 == 0)
			rg_yield();
		else
			rt_spin_ns(200);
		CHECK(hm.shared == before, "a writer ran inside a read lock");
		atomic_fetch_sub(&hm.activity, 1);
		rg_rwmutex_runlock(&hm.m);
	}
	rg_wg_done(&hm.wg);
}

static void hm_writer(void *arg)
{
	for (int i = 0; i < HM_ITERS; i++) {
		rg_rwmutex_lock(&hm.m);
		int n = atomic_fetch_add(&hm.activity, 10000) + 10000;
		CHECK(n == 10000, "writer saw activity %d", n);
		hm.shared++;
		if (i % 8 == 0)
			rg_yield();
		atomic_fetch_sub(&hm.activity, 10000);
		rg_rwmutex_unlock(&hm.m);
	}
	rg_wg_done(&hm.wg);
}

static void hm_main(void *arg)
{
	static const int procs[] = {1, 2, 4};
	static const int readers[] = {1, 3, 10};

	for (size_t p = 0; p < ARRAY_SIZE(procs); p++) {
		for (size_t r = 0; r < ARRAY_SIZE(readers); r++) {
			int i;

			rg_maxprocs(procs[p]);
			rg_wg_add(&hm.wg, 2 + readers[r]);
			rg_go(hm_writer, NULL);
			for (i = 0; i < readers[r] / 2; i++)
				rg_go(hm_reader, NULL);
			rg_go(hm_writer, NULL);
			for (; i < readers[r]; i++)
				rg_go(hm_reader, NULL);
			rg_wg_wait(&hm.wg);
			hm.writes += 2L * HM_ITERS;
		}
	}
}

TEST_F_TIMEOUT(slow, rwmutex_hammer, 120)
{
	run_main(_metadata, hm_main, NULL, 2);
	EXPECT_EQ(hm.writes, hm.shared);
}

/*
 * Writer preference, step by step. R1 reads; W asks for the lock and waits
 * for R1; readers arriving now queue behind W although only a reader holds
 * the lock; W2 queues behind W. When W unlocks, the readers that queued
 * while it held the lock go before W2 (Go's alternation), and W2 waits for
 * them to leave. The order log must read W, R2..., W2.
 */
#define WP_R2 5

enum { EV_W = 1, EV_R2, EV_W2 };

static struct {
	rg_rwmutex m;
	rg_chan *r1_in, *r1_out, *w_in, *w_out;
	gslot w, w2, r2[WP_R2];
	int order[WP_R2 + 2];
	atomic_int norder;
	rg_wg wg;
} wp;

static void wp_log(int ev)
{
	int i = atomic_fetch_add(&wp.norder, 1);

	if (i < (int)ARRAY_SIZE(wp.order))
		wp.order[i] = ev;
}

static void wp_r1(void *arg)
{
	rg_rwmutex_rlock(&wp.m);
	rg_chan_send(wp.r1_in, NULL);
	rg_chan_recv(wp.r1_out, NULL);
	rg_rwmutex_runlock(&wp.m);
	rg_wg_done(&wp.wg);
}

static void wp_w(void *arg)
{
	publish_self(&wp.w);
	rg_rwmutex_lock(&wp.m);
	wp_log(EV_W);
	rg_chan_send(wp.w_in, NULL);
	rg_chan_recv(wp.w_out, NULL); /* hold the lock until main has looked around */
	rg_rwmutex_unlock(&wp.m);
	rg_wg_done(&wp.wg);
}

static void wp_w2(void *arg)
{
	publish_self(&wp.w2);
	rg_rwmutex_lock(&wp.m);
	wp_log(EV_W2);
	rg_rwmutex_unlock(&wp.m);
	rg_wg_done(&wp.wg);
}

static void wp_r2(void *arg)
{
	publish_self(arg);
	rg_rwmutex_rlock(&wp.m);
	wp_log(EV_R2);
	rg_rwmutex_runlock(&wp.m);
	rg_wg_done(&wp.wg);
}

static void wp_main(void *arg)
{
	wp.r1_in = rg_chan_make(0, 0);
	wp.r1_out = rg_chan_make(0, 0);
	wp.w_in = rg_chan_make(0, 0);
	wp.w_out = rg_chan_make(0, 0);
	rg_wg_add(&wp.wg, 3 + WP_R2);

	rg_go(wp_r1, NULL);
	rg_chan_recv(wp.r1_in, NULL);
	rg_go(wp_w, NULL);
	CHECK(AWAIT(is_parked(&wp.w, WAIT_SYNC_RWMUTEX_LOCK)), "writer did not wait for the reader");
	CHECK(!rg_rwmutex_tryrlock(&wp.m), "TryRLock succeeded while a writer waits");

	for (int i = 0; i < WP_R2; i++) {
		rg_go(wp_r2, &wp.r2[i]);
		CHECK(AWAIT(is_parked(&wp.r2[i], WAIT_SYNC_RWMUTEX_RLOCK)),
		      "reader %d got past a waiting writer", i);
	}

	rg_chan_send(wp.r1_out, NULL); /* the last reader leaves: W gets in */
	rg_chan_recv(wp.w_in, NULL);
	for (int i = 0; i < WP_R2; i++)
		CHECK(still_parked(&wp.r2[i]), "reader %d woke while the writer holds the lock", i);
	CHECK(!rg_rwmutex_tryrlock(&wp.m), "TryRLock succeeded while a writer holds the lock");
	CHECK(!rg_rwmutex_trylock(&wp.m), "TryLock succeeded while a writer holds the lock");

	rg_go(wp_w2, NULL);
	CHECK(AWAIT(is_parked(&wp.w2, WAIT_SYNC_MUTEX_LOCK)),
	      "second writer did not queue on the writers' mutex");
	rg_chan_send(wp.w_out, NULL);
	rg_wg_wait(&wp.wg);
}

TEST(rwmutex_writer_preference)
{
	run_main(_metadata, wp_main, NULL, 2);
	ASSERT_EQ(WP_R2 + 2, atomic_load(&wp.norder));
	EXPECT_EQ(EV_W, wp.order[0]);
	for (int i = 1; i <= WP_R2; i++) {
		EXPECT_EQ(EV_R2, wp.order[i]) TH_LOG("order[%d]", i);
	}
	EXPECT_EQ(EV_W2, wp.order[WP_R2 + 1]);
}

static void rw_runlock_unlocked(void *arg)
{
	rg_rwmutex m = RG_RWMUTEX_INIT;

	rg_rwmutex_runlock(&m);
}

static void rw_unlock_unlocked(void *arg)
{
	rg_rwmutex m = RG_RWMUTEX_INIT;

	rg_rwmutex_unlock(&m);
}

static void rw_unlock_rlocked(void *arg)
{
	rg_rwmutex m = RG_RWMUTEX_INIT;

	rg_rwmutex_rlock(&m);
	rg_rwmutex_unlock(&m);
}

static void rw_runlock_locked(void *arg)
{
	rg_rwmutex m = RG_RWMUTEX_INIT;

	rg_rwmutex_lock(&m);
	rg_rwmutex_runlock(&m);
}

static void rw_runlock_twice(void *arg)
{
	rg_rwmutex m = RG_RWMUTEX_INIT;

	rg_rwmutex_rlock(&m);
	rg_rwmutex_runlock(&m);
	rg_rwmutex_runlock(&m);
}

TEST(fatal_rwmutex_runlock_of_unlocked)
{
	expect_fatal(_metadata, rw_runlock_unlocked, "sync: RUnlock of unlocked RWMutex");
	expect_fatal(_metadata, rw_runlock_twice, "sync: RUnlock of unlocked RWMutex");
	expect_fatal(_metadata, rw_runlock_locked, "sync: RUnlock of unlocked RWMutex");
}

TEST(fatal_rwmutex_unlock_of_unlocked)
{
	expect_fatal(_metadata, rw_unlock_unlocked, "sync: Unlock of unlocked RWMutex");
	expect_fatal(_metadata, rw_unlock_rlocked, "sync: Unlock of unlocked RWMutex");
}

/* ------------------------------------------------------------------------ */
/* Cond                                                                     */
/* ------------------------------------------------------------------------ */

/* Go's TestCondSignal: each Signal wakes exactly one waiter. */
static struct {
	rg_mutex m;
	rg_cond c;
	rg_chan *running, *awake;
} cs;

static void cs_waiter(void *arg)
{
	rg_mutex_lock(&cs.m);
	rg_chan_send(cs.running, NULL);
	rg_cond_wait(&cs.c);
	rg_chan_send(cs.awake, NULL);
	rg_mutex_unlock(&cs.m);
}

static void cs_main(void *arg)
{
	int n = (int)(intptr_t)arg;

	cs.c = (rg_cond)RG_COND_INIT(&cs.m);
	cs.running = rg_chan_make(0, (size_t)n);
	cs.awake = rg_chan_make(0, (size_t)n);
	for (int i = 0; i < n; i++)
		rg_go(cs_waiter, NULL);
	for (int i = 0; i < n; i++)
		rg_chan_recv(cs.running, NULL); /* wait for everyone to run */
	while (n > 0) {
		CHECK(rg_chan_tryrecv(cs.awake, NULL) == -EAGAIN, "goroutine not asleep");
		rg_mutex_lock(&cs.m);
		rg_cond_signal(&cs.c);
		rg_mutex_unlock(&cs.m);
		rg_chan_recv(cs.awake, NULL); /* deadlock (exit 2) if nobody wakes */
		CHECK(rg_chan_tryrecv(cs.awake, NULL) == -EAGAIN, "too many goroutines awake");
		n--;
	}
	rg_cond_signal(&cs.c); /* nobody waits: a no-op */
}

TEST(cond_signal)
{
	run_main(_metadata, cs_main, (void *)2, 2);
}

TEST(cond_signal_many)
{
	run_main(_metadata, cs_main, (void *)50, 2);
}

/* Go's TestCondSignalGenerations: Signal wakes the longest waiter (FIFO). */
#define SG_N 100

static struct {
	rg_mutex m;
	rg_cond c;
	rg_chan *running, *awake;
	int wrong;
} sg;

static void sg_waiter(void *arg)
{
	int i = (int)(intptr_t)arg;

	rg_mutex_lock(&sg.m);
	rg_chan_send(sg.running, NULL);
	rg_cond_wait(&sg.c);
	rg_chan_send(sg.awake, &i);
	rg_mutex_unlock(&sg.m);
}

static void sg_main(void *arg)
{
	sg.c = (rg_cond)RG_COND_INIT(&sg.m);
	sg.running = rg_chan_make(0, SG_N);
	sg.awake = rg_chan_make(sizeof(int), SG_N);
	for (int i = 0; i < SG_N; i++) {
		rg_go(sg_waiter, (void *)(intptr_t)i);
		if (i > 0) {
			int a = -1;

			rg_chan_recv(sg.awake, &a);
			CHECK(a == i - 1, "wrong goroutine woke up: want %d, got %d", i - 1, a);
		}
		rg_chan_recv(sg.running, NULL);
		rg_mutex_lock(&sg.m);
		rg_cond_signal(&sg.c);
		rg_mutex_unlock(&sg.m);
	}
	rg_chan_recv(sg.awake, NULL);
}

TEST(cond_signal_generations)
{
	run_main(_metadata, sg_main, NULL, 2);
}

/* FIFO among many parked waiters: k Signals wake the k oldest, in order. */
#define SF_N 40

static struct {
	rg_mutex m;
	rg_cond c;
	gslot g[SF_N];
	int woke[SF_N];
	atomic_int nwoke;
	rg_wg wg;
} sfo;

static void sfo_waiter(void *arg)
{
	int i = (int)(intptr_t)arg;

	rg_mutex_lock(&sfo.m);
	publish_self(&sfo.g[i]);
	rg_cond_wait(&sfo.c);
	sfo.woke[atomic_fetch_add(&sfo.nwoke, 1)] = i;
	rg_mutex_unlock(&sfo.m);
	rg_wg_done(&sfo.wg);
}

static void sfo_main(void *arg)
{
	sfo.c = (rg_cond)RG_COND_INIT(&sfo.m);
	rg_wg_add(&sfo.wg, SF_N);
	for (int i = 0; i < SF_N; i++) {
		rg_go(sfo_waiter, (void *)(intptr_t)i);
		CHECK(AWAIT(is_parked(&sfo.g[i], WAIT_SYNC_COND_WAIT)), "waiter %d did not park", i);
	}
	/* Wake them one at a time: the one woken must be the oldest still waiting. */
	for (int k = 0; k < SF_N; k++) {
		rg_cond_signal(&sfo.c);
		CHECK(AWAIT(atomic_load(&sfo.nwoke) == k + 1), "signal %d woke nobody", k);
		for (int j = k + 1; j < SF_N; j++)
			CHECK(still_parked(&sfo.g[j]), "signal %d also woke waiter %d", k, j);
	}
	rg_wg_wait(&sfo.wg);
}

TEST(cond_signal_fifo)
{
	run_main(_metadata, sfo_main, NULL, 2);
	for (int i = 0; i < SF_N; i++) {
		EXPECT_EQ(i, sfo.woke[i]) TH_LOG("wake-up %d", i);
	}
}

/* Go's TestCondBroadcast: Broadcast wakes every waiter, each exactly once. */
#define CB_N RT_TSAN_SCALE(200, 4)

static struct {
	rg_mutex m;
	rg_cond c;
	rg_chan *running, *awake;
	bool exit; /* guarded by m */
	rg_wg wg;
} cb;

static void cb_waiter(void *arg)
{
	int g = (int)(intptr_t)arg;

	rg_mutex_lock(&cb.m);
	while (!cb.exit) {
		rg_chan_send(cb.running, &g);
		rg_cond_wait(&cb.c);
		rg_chan_send(cb.awake, &g);
	}
	rg_mutex_unlock(&cb.m);
	rg_wg_done(&cb.wg);
}

static void cb_main(void *arg)
{
	bool *seen = calloc(CB_N, sizeof(bool));

	cb.c = (rg_cond)RG_COND_INIT(&cb.m);
	cb.running = rg_chan_make(sizeof(int), CB_N);
	cb.awake = rg_chan_make(sizeof(int), CB_N);
	rg_wg_add(&cb.wg, CB_N);
	for (int i = 0; i < CB_N; i++)
		rg_go(cb_waiter, (void *)(intptr_t)i);
	for (int i = 0; i < CB_N; i++) {
		for (int j = 0; j < CB_N; j++)
			rg_chan_recv(cb.running, NULL); /* deadlock unless all are running */
		if (i == CB_N - 1) {
			rg_mutex_lock(&cb.m);
			cb.exit = true;
			rg_mutex_unlock(&cb.m);
		}
		CHECK(rg_chan_tryrecv(cb.awake, NULL) == -EAGAIN, "goroutine not asleep");
		rg_mutex_lock(&cb.m);
		rg_cond_broadcast(&cb.c);
		rg_mutex_unlock(&cb.m);
		memset(seen, 0, CB_N * sizeof(bool));
		for (int j = 0; j < CB_N; j++) {
			int g = -1;

			rg_chan_recv(cb.awake, &g);
			CHECK(g >= 0 && g < CB_N && !seen[g], "goroutine %d woke up twice", g);
			if (g >= 0 && g < CB_N)
				seen[g] = true;
		}
	}
	rg_wg_wait(&cb.wg);
	CHECK(rg_chan_tryrecv(cb.running, NULL) == -EAGAIN, "goroutine did not exit");
	rg_cond_broadcast(&cb.c);
	free(seen);
}

TEST_F_TIMEOUT(slow, cond_broadcast, 120)
{
	run_main(_metadata, cb_main, NULL, 2);
}

/*
 * Signal and Broadcast wake those already waiting, not those that wait after
 * them (a waiter that did not park would time out in AWAIT).
 */
#define BL_N 16

static struct {
	rg_mutex m;
	rg_cond c;
	gslot g[BL_N], late;
	atomic_int woke, late_woke;
	rg_wg wg;
} bl;

static void bl_waiter(void *arg)
{
	rg_mutex_lock(&bl.m);
	publish_self(arg);
	rg_cond_wait(&bl.c);
	atomic_fetch_add((gslot *)arg == &bl.late ? &bl.late_woke : &bl.woke, 1);
	rg_mutex_unlock(&bl.m);
	rg_wg_done(&bl.wg);
}

static void bl_main(void *arg)
{
	bl.c = (rg_cond)RG_COND_INIT(&bl.m);
	/* Nobody waits yet: these are no-ops, not remembered for later waiters. */
	rg_cond_signal(&bl.c);
	rg_cond_broadcast(&bl.c);
	rg_wg_add(&bl.wg, BL_N + 1);
	for (int i = 0; i < BL_N; i++) {
		rg_go(bl_waiter, &bl.g[i]);
		CHECK(AWAIT(is_parked(&bl.g[i], WAIT_SYNC_COND_WAIT)), "waiter %d did not park", i);
	}
	rg_cond_broadcast(&bl.c);
	rg_go(bl_waiter, &bl.late);
	CHECK(AWAIT(is_parked(&bl.late, WAIT_SYNC_COND_WAIT)), "late waiter did not park");
	CHECK(AWAIT(atomic_load(&bl.woke) == BL_N), "broadcast woke %d of %d",
	      atomic_load(&bl.woke), BL_N);
	CHECK(still_parked(&bl.late) && atomic_load(&bl.late_woke) == 0,
	      "a broadcast woke a goroutine that waited after it");
	rg_cond_signal(&bl.c);
	rg_wg_wait(&bl.wg);
}

TEST(cond_wakes_current_waiters_only)
{
	run_main(_metadata, bl_main, NULL, 2);
	EXPECT_EQ(BL_N, atomic_load(&bl.woke));
	EXPECT_EQ(1, atomic_load(&bl.late_woke));
}

/*
 * Go's TestCondSignalStealing: a Broadcast racing with a new waiter may or
 * may not wake the new one, but must wake the one that was already waiting.
 */
#define SS_ITERS RT_TSAN_SCALE(1000, 5)

struct ss_iter {
	rg_mutex m;
	rg_cond c;
	rg_chan *ch;
	bool done; /* guarded by m */
};

static rg_wg ss_wg;

static void ss_first(void *arg)
{
	struct ss_iter *it = arg;

	rg_mutex_lock(&it->m);
	rg_chan_send(it->ch, NULL);
	rg_cond_wait(&it->c);
	rg_mutex_unlock(&it->m);
	rg_chan_send(it->ch, NULL);
	rg_wg_done(&ss_wg);
}

static void ss_broadcaster(void *arg)
{
	struct ss_iter *it = arg;

	rg_cond_broadcast(&it->c);
	rg_wg_done(&ss_wg);
}

static void ss_second(void *arg)
{
	struct ss_iter *it = arg;

	rg_mutex_lock(&it->m);
	while (!it->done)
		rg_cond_wait(&it->c);
	rg_mutex_unlock(&it->m);
	rg_wg_done(&ss_wg);
}

static void ss_main(void *arg)
{
	struct ss_iter *its = calloc(SS_ITERS, sizeof(*its));

	for (int i = 0; i < SS_ITERS; i++) {
		struct ss_iter *it = &its[i];

		it->c = (rg_cond)RG_COND_INIT(&it->m);
		it->ch = rg_chan_make(0, 0);
		rg_wg_add(&ss_wg, 3);
		rg_go(ss_first, it);
		rg_chan_recv(it->ch, NULL);
		/* The waiter sent while holding m; once we get m it is inside Wait. */
		rg_mutex_lock(&it->m);
		rg_mutex_unlock(&it->m);

		rg_go(ss_broadcaster, it);
		rg_go(ss_second, it);
		bool woke = AWAIT(rg_chan_tryrecv(it->ch, NULL) == 1);
		CHECK(woke, "iteration %d: first waiter didn't get broadcast", i);

		rg_mutex_lock(&it->m);
		it->done = true;
		rg_mutex_unlock(&it->m);
		rg_cond_broadcast(&it->c);
		if (!woke)
			break;
	}
	rg_wg_wait(&ss_wg);
	for (int i = 0; i < SS_ITERS; i++)
		rg_chan_free(its[i].ch);
	free(its);
}

TEST_F_TIMEOUT(slow, cond_signal_stealing, 120)
{
	run_main(_metadata, ss_main, NULL, 2);
}

/*
 * No lost wake-up between Wait's unlock and its park. A signaller goroutine
 * spins on its own P watching the round's ticket counter and signals the
 * moment the waiter has taken a ticket, so it often lands while the waiter,
 * on the other P, is still on its way to parking ("early"). ringo does not
 * preempt, so the spinner keeps its P; it yields only after a long spin, in
 * case the waiter got queued behind it. Main starts a round only once the
 * signaller is back to spinning, and each round has its own Cond. Half the
 * rounds signal without holding L, as Go allows.
 */
#define LW_ROUNDS RT_TSAN_SCALE(5000, 10)
#define LW_SPIN_NS 1000000

struct lw_round {
	rg_mutex m;
	rg_cond c;
	atomic_int flag;
	gslot waiter;
};

static struct {
	struct lw_round *rounds;
	atomic_long round;  /* main -> signaller: round n is set up */
	atomic_long acked;  /* signaller -> main: round n signalled */
	long early, rounds_done;
	rg_wg round_wg, wg;
} lw;

/* Spin until pred(r) in a plain loop, yielding every LW_SPIN_NS; false after AWAIT_NS. */
static bool lw_spin(bool (*pred)(long), long r)
{
	uint64_t start = rt_now_ns(), slice = start;

	while (!pred(r)) {
		uint64_t now = rt_now_ns();

		if (now - start > AWAIT_NS)
			return false;
		if (now - slice > LW_SPIN_NS) {
			rg_yield();
			slice = rt_now_ns();
		}
	}
	return true;
}

static bool lw_round_is(long r)
{
	return atomic_load(&lw.round) == r;
}

static bool lw_ticket_taken(long r)
{
	return __atomic_load_n(&lw.rounds[r].c.wait, __ATOMIC_ACQUIRE) != 0;
}

static void lw_signaller(void *arg)
{
	for (long r = 0; r < LW_ROUNDS; r++) {
		struct lw_round *x = &lw.rounds[r];

		if (!lw_spin(lw_round_is, r) || !lw_spin(lw_ticket_taken, r)) {
			CHECK(false, "round %ld: the waiter never called Wait", r);
			break;
		}
		if (!still_parked(&x->waiter))
			lw.early++;
		if (r & 1) {
			atomic_store(&x->flag, 1);
			rg_cond_signal(&x->c);
		} else {
			rg_mutex_lock(&x->m);
			atomic_store(&x->flag, 1);
			rg_cond_signal(&x->c);
			rg_mutex_unlock(&x->m);
		}
		atomic_store(&lw.acked, r);
	}
	rg_wg_done(&lw.wg);
}

static void lw_waiter(void *arg)
{
	struct lw_round *x = arg;

	rg_mutex_lock(&x->m);
	publish_self(&x->waiter);
	while (!atomic_load(&x->flag))
		rg_cond_wait(&x->c);
	rg_mutex_unlock(&x->m);
	rg_wg_done(&lw.round_wg);
}

static void lw_main(void *arg)
{
	lw.rounds = calloc(LW_ROUNDS, sizeof(*lw.rounds));
	if (!lw.rounds) {
		CHECK(false, "out of memory");
		return;
	}
	atomic_store(&lw.round, -1);
	atomic_store(&lw.acked, -1);
	rg_wg_add(&lw.wg, 1);
	rg_go(lw_signaller, NULL);
	for (long r = 0; r < LW_ROUNDS; r++) {
		lw.rounds[r].c = (rg_cond)RG_COND_INIT(&lw.rounds[r].m);
		rg_wg_add(&lw.round_wg, 1);
		atomic_store(&lw.round, r);
		rg_go(lw_waiter, &lw.rounds[r]);
		/* A lost wake-up leaves the waiter parked for good: the deadlock detector ends the test. */
		rg_wg_wait(&lw.round_wg);
		if (!AWAIT(atomic_load(&lw.acked) == r))
			break;
		lw.rounds_done++;
	}
	rg_wg_wait(&lw.wg);
	free(lw.rounds);
}

TEST_F_TIMEOUT(slow, cond_no_lost_wakeup, 120)
{
	run_main(_metadata, lw_main, NULL, 2);
	EXPECT_EQ(LW_ROUNDS, lw.rounds_done);
	TH_LOG("%ld of %d signals came before the waiter had parked", lw.early, LW_ROUNDS);
}

/* Wait unlocks L, so waiting without holding it is unlocking an unlocked mutex, as in Go. */
static void cond_wait_unlocked(void *arg)
{
	rg_mutex m = RG_MUTEX_INIT;
	rg_cond c = RG_COND_INIT(&m);

	rg_cond_wait(&c);
}

TEST(fatal_cond_wait_without_lock)
{
	expect_fatal(_metadata, cond_wait_unlocked, "sync: unlock of unlocked mutex");
}

/* ------------------------------------------------------------------------ */
/* Weighted semaphore                                                       */
/* ------------------------------------------------------------------------ */

static void sem_basic_main(void *arg)
{
	rg_sem s = RG_SEM_INIT(10), z;

	CHECK(rg_sem_tryacquire(&s, 0), "tryacquire(0) failed on an idle semaphore");
	CHECK(!rg_sem_tryacquire(&s, 11), "tryacquire above the size succeeded");
	CHECK(!rg_sem_tryacquire(&s, -1), "tryacquire(-1) succeeded");
	CHECK(rg_sem_acquire(&s, 3) == 0, "acquire(3)");
	CHECK(rg_sem_acquire(&s, 7) == 0, "acquire(7) with 7 free");
	CHECK(!rg_sem_tryacquire(&s, 1), "tryacquire(1) succeeded on a full semaphore");
	CHECK(rg_sem_tryacquire(&s, 0), "tryacquire(0) failed on a full semaphore");
	rg_sem_release(&s, 3);
	CHECK(!rg_sem_tryacquire(&s, 4), "tryacquire(4) succeeded with 3 free");
	CHECK(rg_sem_tryacquire(&s, 3), "tryacquire(3) failed with 3 free");
	rg_sem_release(&s, 10);
	CHECK(rg_sem_tryacquire(&s, 10), "tryacquire(10) failed after releasing everything");
	rg_sem_release(&s, 4);
	rg_sem_release(&s, 6);
	CHECK(rg_sem_acquire(&s, 10) == 0, "acquire of the whole weight");
	rg_sem_release(&s, 10);

	/* Requests that could never be met are refused, not waited on forever. */
	CHECK(rg_sem_acquire(&s, -1) == -EINVAL, "acquire(-1) did not fail with -EINVAL");
	CHECK(rg_sem_acquire(&s, 11) == -EINVAL, "acquire above the size did not fail");
	CHECK(rg_sem_tryacquire(&s, 10), "a refused acquire took weight");
	rg_sem_release(&s, 10);

	CHECK(rg_sem_init(&z, -1) == -EINVAL, "rg_sem_init(-1) accepted");
	memset(&z, 0, sizeof(z)); /* zero value: weight 0 */
	CHECK(rg_sem_acquire(&z, 1) == -EINVAL, "acquire(1) on a zero-weight semaphore");
	CHECK(rg_sem_acquire(&z, 0) == 0, "acquire(0) on a zero-weight semaphore");
	CHECK(!rg_sem_tryacquire(&z, 1), "tryacquire(1) on a zero-weight semaphore");
	CHECK(rg_sem_init(&z, 2) == 0, "rg_sem_init(2)");
	CHECK(rg_sem_acquire(&z, 2) == 0 && !rg_sem_tryacquire(&z, 1), "re-initialised size");
	rg_sem_release(&z, 2);
}

TEST(sem_weights_and_try)
{
	run_main(_metadata, sem_basic_main, NULL, 2);
}

/*
 * FIFO fairness. Main holds all 10; B wants 10, then S1 and S2 want 1 each.
 * Releasing one unit at a time frees room for S1 and S2 nine times over, but
 * they queue behind B and must not overtake it (nor may tryacquire). Then
 * four waiters of weight 6 must get in strictly in arrival order.
 */
#define SQ_MAX 6

struct sq_arg {
	int id;
	int64_t n;
};

static struct {
	rg_sem s;
	gslot g[SQ_MAX];
	int order[SQ_MAX];
	atomic_int norder;
	rg_wg wg;
} sq;

static void sq_waiter(void *arg)
{
	const struct sq_arg *a = arg;

	publish_self(&sq.g[a->id]);
	CHECK(rg_sem_acquire(&sq.s, a->n) == 0, "acquire(%lld)", (long long)a->n);
	sq.order[atomic_fetch_add(&sq.norder, 1)] = a->id;
	rg_sem_release(&sq.s, a->n);
	rg_wg_done(&sq.wg);
}

static void sq_queue(const struct sq_arg *a)
{
	atomic_store(&sq.g[a->id], NULL); /* not the G of an earlier round's waiter */
	rg_go(sq_waiter, (void *)a);
	CHECK(AWAIT(is_parked(&sq.g[a->id], WAIT_SEMACQUIRE)), "waiter %d did not queue", a->id);
}

static void sq_main(void *arg)
{
	static const struct sq_arg big = {0, 10}, s1 = {1, 1}, s2 = {2, 1};
	static const struct sq_arg w[4] = {{0, 6}, {1, 6}, {2, 6}, {3, 6}};

	rg_sem_init(&sq.s, 10);
	CHECK(rg_sem_acquire(&sq.s, 10) == 0, "acquire(10)");
	rg_wg_add(&sq.wg, 3);
	sq_queue(&big);
	sq_queue(&s1);
	sq_queue(&s2);
	for (int k = 1; k < 10; k++) {
		rg_sem_release(&sq.s, 1);
		CHECK(!rg_sem_tryacquire(&sq.s, 1), "tryacquire(1) overtook the queue (%d free)", k);
		CHECK(atomic_load(&sq.norder) == 0, "a waiter got in with %d free", k);
		for (int i = 0; i < 3; i++)
			CHECK(still_parked(&sq.g[i]), "waiter %d woken with %d free", i, k);
	}
	rg_sem_release(&sq.s, 1);
	rg_wg_wait(&sq.wg);
	CHECK(atomic_load(&sq.norder) == 3, "%d of 3 waiters ran", atomic_load(&sq.norder));
	CHECK(sq.order[0] == 0, "a small waiter overtook the big one (order %d %d %d)",
	      sq.order[0], sq.order[1], sq.order[2]);

	/* Equal weights, only one fits at a time: strictly first come, first served. */
	atomic_store(&sq.norder, 0);
	memset(sq.order, 0, sizeof(sq.order));
	CHECK(rg_sem_acquire(&sq.s, 10) == 0, "acquire(10) again");
	rg_wg_add(&sq.wg, 4);
	for (int i = 0; i < 4; i++)
		sq_queue(&w[i]);
	rg_sem_release(&sq.s, 10);
	rg_wg_wait(&sq.wg);
	for (int i = 0; i < 4; i++)
		CHECK(sq.order[i] == i, "weight-6 waiters served out of order: %d at %d",
		      sq.order[i], i);
	CHECK(rg_sem_tryacquire(&sq.s, 10), "weight left over after the FIFO round");
}

TEST(sem_fifo_big_waiter_not_overtaken)
{
	run_main(_metadata, sq_main, NULL, 2);
}

/* Random weights from many goroutines: never more than the size in use. */
#define SH_G 16
#define SH_ITERS RT_TSAN_SCALE(2000, 10)
#define SH_SIZE 8

static struct {
	rg_sem s;
	atomic_long in_use, max_in_use, tries_ok;
	rg_wg wg;
} sh;

static void sh_worker(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;

	for (int i = 0; i < SH_ITERS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t n = 1 + (int64_t)(x % 4);
		if (i % 3 == 0 && rg_sem_tryacquire(&sh.s, n))
			atomic_fetch_add(&sh.tries_ok, 1);
		else
			CHECK(rg_sem_acquire(&sh.s, n) == 0, "acquire(%lld)", (long long)n);
		long v = atomic_fetch_add(&sh.in_use, n) + n;
		CHECK(v <= SH_SIZE, "%ld in use with a semaphore of %d", v, SH_SIZE);
		long m = atomic_load(&sh.max_in_use);
		while (v > m && !atomic_compare_exchange_weak(&sh.max_in_use, &m, v))
			;
		if (i % 4 == 0)
			rg_yield();
		atomic_fetch_sub(&sh.in_use, n);
		rg_sem_release(&sh.s, n);
	}
	rg_wg_done(&sh.wg);
}

static void sh_main(void *arg)
{
	rg_sem_init(&sh.s, SH_SIZE);
	rg_wg_add(&sh.wg, SH_G);
	for (int i = 0; i < SH_G; i++)
		rg_go(sh_worker, (void *)(uintptr_t)i);
	rg_wg_wait(&sh.wg);
	CHECK(rg_sem_tryacquire(&sh.s, SH_SIZE), "weight leaked: cur %lld", (long long)sh.s.cur);
}

TEST_F_TIMEOUT(slow, sem_hammer, 120)
{
	run_main(_metadata, sh_main, NULL, 2);
	EXPECT_LE(atomic_load(&sh.max_in_use), SH_SIZE);
	TH_LOG("most in use at once: %ld of %d; %ld tryacquires succeeded",
	       atomic_load(&sh.max_in_use), SH_SIZE, atomic_load(&sh.tries_ok));
}

static void sem_release_unheld(void *arg)
{
	rg_sem s = RG_SEM_INIT(4);

	rg_sem_release(&s, 1);
}

static void sem_release_more_than_held(void *arg)
{
	rg_sem s = RG_SEM_INIT(4);

	rg_sem_acquire(&s, 2);
	rg_sem_release(&s, 3);
}

static void sem_release_negative(void *arg)
{
	rg_sem s = RG_SEM_INIT(4);

	rg_sem_acquire(&s, 2);
	rg_sem_release(&s, -1);
}

TEST(fatal_sem_over_release)
{
	expect_fatal(_metadata, sem_release_unheld, "semaphore: released more than held");
	expect_fatal(_metadata, sem_release_more_than_held, "semaphore: released more than held");
	expect_fatal(_metadata, sem_release_negative, "semaphore: released more than held");
}

/* ------------------------------------------------------------------------ */
/* Atomic value                                                             */
/* ------------------------------------------------------------------------ */

static void av_basic_main(void *arg)
{
	static int x, y, z;
	rg_atomic_value av;

	memset(&av, 0, sizeof(av));
	CHECK(rg_atomic_value_load(&av) == NULL, "zero value does not hold NULL");
	rg_atomic_value_store(&av, &x);
	CHECK(rg_atomic_value_load(&av) == &x, "load after store");
	CHECK(rg_atomic_value_swap(&av, &y) == &x, "swap returned the wrong old value");
	CHECK(rg_atomic_value_load(&av) == &y, "load after swap");
	CHECK(!rg_atomic_value_cas(&av, &x, &z), "cas with a stale old value succeeded");
	CHECK(rg_atomic_value_load(&av) == &y, "failed cas changed the value");
	CHECK(rg_atomic_value_cas(&av, &y, &z), "cas with the current value failed");
	CHECK(rg_atomic_value_load(&av) == &z, "load after cas");
	CHECK(rg_atomic_value_cas(&av, &z, NULL) && rg_atomic_value_load(&av) == NULL,
	      "cas back to NULL");
}

TEST(atomic_value_semantics)
{
	run_main(_metadata, av_basic_main, NULL, 2);
}

/*
 * Hot reload: one writer publishes new configurations while readers, who
 * never block, use whichever is current. A reader must never see a torn or
 * half-built configuration, nor go back to an older one. Old versions are
 * freed once every reader has acknowledged a newer one, so a reader that
 * still used one would be a use-after-free under ASan and a race under TSan.
 */
#define HR_READERS 4
#define HR_VERSIONS RT_TSAN_SCALE(20000, 20)
#define HR_FIELDS 16
#define HR_MAGIC 0x5eedc0f1u

struct hr_config {
	uint64_t version;
	uint64_t field[HR_FIELDS]; /* field[k] = version * 31 + k */
	uint64_t sum;
	uint32_t magic;
};

static struct {
	rg_atomic_value av;
	_Atomic uint64_t ack[HR_READERS]; /* newest version each reader is done with */
	long loads[HR_READERS], torn, backwards;
	uint64_t freed;
	rg_wg wg;
} hr;

static bool hr_valid(const struct hr_config *c)
{
	uint64_t sum = 0;

	if (c->magic != HR_MAGIC)
		return false;
	for (int k = 0; k < HR_FIELDS; k++) {
		if (c->field[k] != c->version * 31 + (uint64_t)k)
			return false;
		sum += c->field[k];
	}
	return sum == c->sum;
}

static void hr_reader(void *arg)
{
	int me = (int)(intptr_t)arg;
	uint64_t last = 0;

	for (;;) {
		const struct hr_config *c = rg_atomic_value_load(&hr.av);

		if (!c) { /* nothing published yet */
			rg_yield();
			continue;
		}
		if (!hr_valid(c)) {
			__atomic_fetch_add(&hr.torn, 1, __ATOMIC_RELAXED);
			break;
		}
		if (c->version < last)
			__atomic_fetch_add(&hr.backwards, 1, __ATOMIC_RELAXED);
		last = c->version;
		/* Done with c: every older version may go. */
		atomic_store_explicit(&hr.ack[me], last, memory_order_release);
		hr.loads[me]++;
		if (last == HR_VERSIONS)
			break;
		if (hr.loads[me] % 4 == 0)
			rg_yield();
	}
	rg_wg_done(&hr.wg);
}

static struct hr_config *hr_build(uint64_t v)
{
	struct hr_config *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	memset(c, 0xa5, sizeof(*c)); /* what a reader of an unpublished config would see */
	c->version = v;
	c->sum = 0;
	for (int k = 0; k < HR_FIELDS; k++) {
		c->field[k] = v * 31 + (uint64_t)k;
		c->sum += c->field[k];
	}
	c->magic = HR_MAGIC;
	return c;
}

static void hr_main(void *arg)
{
	struct hr_config **retired = calloc(HR_VERSIONS + 1, sizeof(*retired));
	size_t nret = 0, nfree = 0;

	rg_wg_add(&hr.wg, HR_READERS);
	for (int i = 0; i < HR_READERS; i++)
		rg_go(hr_reader, (void *)(intptr_t)i);
	for (uint64_t v = 1; v <= HR_VERSIONS; v++) {
		struct hr_config *c = hr_build(v), *old;

		if (!c || !retired) {
			CHECK(false, "out of memory");
			return;
		}
		/* The sole writer may publish with store or swap; use both. */
		if (v & 1) {
			old = rg_atomic_value_load(&hr.av);
			rg_atomic_value_store(&hr.av, c);
		} else {
			old = rg_atomic_value_swap(&hr.av, c);
		}
		CHECK(old ? old->version == v - 1 : v == 1, "replaced the wrong config at v%llu",
		      (unsigned long long)v);
		if (old)
			retired[nret++] = old;

		/* Halfway, let every reader see this version: then the older ones are
		 * freed while the readers still run, on a machine too busy to interleave. */
		uint64_t min;
		do {
			min = UINT64_MAX;
			for (int i = 0; i < HR_READERS; i++) {
				uint64_t a = atomic_load_explicit(&hr.ack[i], memory_order_acquire);
				if (a < min)
					min = a;
			}
		} while (v == HR_VERSIONS / 2 && min < v && (rg_yield(), true));
		while (nfree < nret && retired[nfree]->version < min) {
			free(retired[nfree++]);
			hr.freed++;
		}
		if (v % 8 == 0)
			rg_yield();
	}
	rg_wg_wait(&hr.wg);
	while (nfree < nret)
		free(retired[nfree++]);
	free(rg_atomic_value_swap(&hr.av, NULL));
	free(retired);
}

TEST_F_TIMEOUT(slow, atomic_value_hot_reload, 120)
{
	long loads = 0;

	run_main(_metadata, hr_main, NULL, 2);
	EXPECT_EQ(0, hr.torn);
	EXPECT_EQ(0, hr.backwards);
	for (int i = 0; i < HR_READERS; i++) {
		EXPECT_GT(hr.loads[i], 0) TH_LOG("reader %d never read a config", i);
		EXPECT_EQ(HR_VERSIONS, atomic_load(&hr.ack[i]));
		loads += hr.loads[i];
	}
	EXPECT_GT(hr.freed, 0);
	TH_LOG("%d versions, %ld reads, %llu freed while the readers ran", HR_VERSIONS, loads,
	       (unsigned long long)hr.freed);
}

/*
 * Concurrent swaps hand every stored value back exactly once; concurrent
 * CASes that advance a pointer step by step succeed exactly once per step.
 */
#define AS_G 8
#define AS_K RT_TSAN_SCALE(5000, 10)

static struct {
	rg_atomic_value av;
	char vals[AS_G * AS_K + 1];
	atomic_uchar seen[AS_G * AS_K + 1];
	long cas_ok[AS_G];
	rg_wg wg;
} as;

static void as_swapper(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < AS_K; i++) {
		char *old = rg_atomic_value_swap(&as.av, &as.vals[1 + id * AS_K + i]);
		atomic_fetch_add(&as.seen[old - as.vals], 1);
		if (i % 16 == 0)
			rg_yield();
	}
	rg_wg_done(&as.wg);
}

static void as_caser(void *arg)
{
	int id = (int)(intptr_t)arg;
	char *end = &as.vals[AS_G * AS_K];

	for (long i = 0;; i++) {
		char *p = rg_atomic_value_load(&as.av);

		if (p == end)
			break;
		if (rg_atomic_value_cas(&as.av, p, p + 1))
			as.cas_ok[id]++;
		if (i % 16 == 0)
			rg_yield();
	}
	rg_wg_done(&as.wg);
}

static void as_main(void *arg)
{
	char *last;
	long total = 0;

	rg_atomic_value_store(&as.av, &as.vals[0]);
	rg_wg_add(&as.wg, AS_G);
	for (int i = 0; i < AS_G; i++)
		rg_go(as_swapper, (void *)(intptr_t)i);
	rg_wg_wait(&as.wg);
	last = rg_atomic_value_load(&as.av);
	atomic_fetch_add(&as.seen[last - as.vals], 1);
	for (int i = 0; i <= AS_G * AS_K; i++)
		CHECK(atomic_load(&as.seen[i]) == 1, "value %d came back %d times", i,
		      atomic_load(&as.seen[i]));

	rg_atomic_value_store(&as.av, &as.vals[0]);
	rg_wg_add(&as.wg, AS_G);
	for (int i = 0; i < AS_G; i++)
		rg_go(as_caser, (void *)(intptr_t)i);
	rg_wg_wait(&as.wg);
	for (int i = 0; i < AS_G; i++)
		total += as.cas_ok[i];
	CHECK(total == AS_G * AS_K, "%ld successful CASes for %d steps", total, AS_G * AS_K);
}

TEST(atomic_value_swap_cas_concurrent)
{
	run_main(_metadata, as_main, NULL, 2);
}

/* ------------------------------------------------------------------------ */
/* errgroup                                                                 */
/* ------------------------------------------------------------------------ */

static int eg_return(void *arg)
{
	return (int)(intptr_t)arg;
}

/* Go's TestZeroGroup: Wait after each Go returns the first error so far. */
static void eg_zero_main(void *arg)
{
	static const int cases[][4] = {
		{0},		      /* no goroutine */
		{1, 0},		      /* one nil */
		{1, -EIO},	      /* err1 */
		{2, -EIO, 0},	      /* err1, nil */
		{3, -EIO, 0, -ENOENT}, /* err1, nil, err2 */
		{3, 0, 7, -ENOENT},   /* any non-zero is an error, positive too */
	};

	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		rg_errgroup g;
		int first = 0;

		memset(&g, 0, sizeof(g));
		CHECK(rg_errgroup_wait(&g) == 0, "case %zu: Wait on an empty group", c);
		for (int i = 1; i <= cases[c][0]; i++) {
			int err = cases[c][i];

			CHECK(rg_errgroup_go(&g, eg_return, (void *)(intptr_t)err) == 0, "Go");
			if (!first)
				first = err;
			int got = rg_errgroup_wait(&g);
			CHECK(got == first, "case %zu after %d: Wait = %d, want %d", c, i, got, first);
			CHECK(rg_errgroup_canceled(&g) == (first != 0), "case %zu: canceled flag", c);
		}
	}
	CHECK(rg_errgroup_go(&(rg_errgroup){0}, NULL, NULL) == -EINVAL, "Go(NULL)");
	CHECK(rg_errgroup_trygo(&(rg_errgroup){0}, NULL, NULL) == -EINVAL, "TryGo(NULL)");
}

TEST(errgroup_zero_group)
{
	run_main(_metadata, eg_zero_main, NULL, 2);
}

/*
 * Many goroutines fail, one first: the late ones fail only once the group is
 * canceled, and keep running well after that. Wait returns the first error
 * and only after every goroutine has returned.
 */
#define EF_N 20

static struct {
	rg_errgroup g;
	bool finished[EF_N]; /* plain: Wait must order these before its return */
} ef;

static int ef_first(void *arg)
{
	return -EIO;
}

static int ef_late(void *arg)
{
	int i = (int)(intptr_t)arg;

	while (!rg_errgroup_canceled(&ef.g))
		rg_yield();
	for (int k = 0; k < 50; k++)
		rg_yield();
	ef.finished[i] = true;
	return -(100 + i);
}

static void ef_main(void *arg)
{
	for (int i = 0; i < EF_N; i++)
		CHECK(rg_errgroup_go(&ef.g, ef_late, (void *)(intptr_t)i) == 0, "Go");
	CHECK(!rg_errgroup_canceled(&ef.g), "canceled before any error");
	CHECK(rg_errgroup_go(&ef.g, ef_first, NULL) == 0, "Go");
	int err = rg_errgroup_wait(&ef.g);
	CHECK(err == -EIO, "Wait returned %d, want the first error %d", err, -EIO);
	for (int i = 0; i < EF_N; i++)
		CHECK(ef.finished[i], "Wait returned before goroutine %d did", i);
	CHECK(rg_errgroup_canceled(&ef.g), "not canceled after an error");
}

TEST(errgroup_first_error_wins_and_wait_waits_for_all)
{
	run_main(_metadata, ef_main, NULL, 2);
}

/*
 * The limit. Three goroutines fill a limit of 3 and block; then TryGo says
 * -EAGAIN, SetLimit -EBUSY, and Go parks. Once they are released, 60 more
 * run through: never more than 3 at once. After Wait the limit can change.
 */
static struct {
	rg_errgroup g;
	atomic_int active, max_active, ran;
	gslot helper;
	rg_wg wg;
} el;

static void el_enter(void)
{
	int a = atomic_fetch_add(&el.active, 1) + 1;
	int m = atomic_load(&el.max_active);

	while (a > m && !atomic_compare_exchange_weak(&el.max_active, &m, a))
		;
}

static int el_block(void *arg)
{
	el_enter();
	rg_chan_recv(arg, NULL); /* until the gate closes */
	atomic_fetch_sub(&el.active, 1);
	return 0;
}

static int el_work(void *arg)
{
	el_enter();
	for (int k = 0; k < 3; k++)
		rg_yield();
	atomic_fetch_sub(&el.active, 1);
	atomic_fetch_add(&el.ran, 1);
	return 0;
}

static void el_blocked_go(void *arg)
{
	publish_self(&el.helper);
	CHECK(rg_errgroup_go(&el.g, el_work, NULL) == 0, "Go from the helper");
	rg_wg_done(&el.wg);
}

static void el_main(void *arg)
{
	rg_chan *gate = rg_chan_make(0, 0), *gate2 = rg_chan_make(0, 0);

	CHECK(rg_errgroup_set_limit(&el.g, 3) == 0, "SetLimit(3)");
	for (int i = 0; i < 3; i++)
		CHECK(rg_errgroup_go(&el.g, el_block, gate) == 0, "Go");
	CHECK(AWAIT(atomic_load(&el.active) == 3), "3 goroutines never ran at once");
	CHECK(rg_errgroup_trygo(&el.g, el_work, NULL) == -EAGAIN, "TryGo with the group full");
	CHECK(rg_errgroup_set_limit(&el.g, 5) == -EBUSY, "SetLimit while goroutines run");
	CHECK(!rg_errgroup_canceled(&el.g), "canceled without an error");

	rg_wg_add(&el.wg, 1);
	rg_go(el_blocked_go, NULL);
	CHECK(AWAIT(is_parked(&el.helper, WAIT_SEMACQUIRE)), "Go did not wait for a free slot");
	CHECK(atomic_load(&el.active) == 3, "%d active with a limit of 3", atomic_load(&el.active));

	rg_chan_close(gate);
	for (int i = 0; i < 60; i++)
		CHECK(rg_errgroup_go(&el.g, el_work, NULL) == 0, "Go");
	/* The helper's Go first: until it returns, its goroutine is not in the
	 * group (Go's errgroup adds it only once it has a slot), and Wait may
	 * return without it. */
	rg_wg_wait(&el.wg);
	CHECK(rg_errgroup_wait(&el.g) == 0, "Wait");
	CHECK(atomic_load(&el.ran) == 61, "%d of 61 ran", atomic_load(&el.ran));
	CHECK(atomic_load(&el.max_active) == 3, "at most %d ran at once, limit 3",
	      atomic_load(&el.max_active));

	/* Idle again: the limit may change. No limit: TryGo never refuses. */
	CHECK(rg_errgroup_set_limit(&el.g, 0) == 0, "SetLimit(0) after Wait");
	atomic_store(&el.max_active, 0);
	for (int i = 0; i < 10; i++)
		CHECK(rg_errgroup_trygo(&el.g, el_block, gate2) == 0, "TryGo without a limit");
	CHECK(AWAIT(atomic_load(&el.active) == 10), "unlimited group held back goroutines");
	rg_chan_close(gate2);
	CHECK(rg_errgroup_wait(&el.g) == 0, "Wait");
	CHECK(atomic_load(&el.max_active) == 10, "max %d", atomic_load(&el.max_active));

	/* A limit of 1 with TryGo: one in, the next refused until it is done. */
	rg_chan *gate3 = rg_chan_make(0, 0);
	CHECK(rg_errgroup_set_limit(&el.g, 1) == 0, "SetLimit(1)");
	CHECK(rg_errgroup_trygo(&el.g, el_block, gate3) == 0, "TryGo into an empty group");
	CHECK(rg_errgroup_trygo(&el.g, el_work, NULL) == -EAGAIN, "second TryGo with limit 1");
	rg_chan_close(gate3);
	CHECK(rg_errgroup_wait(&el.g) == 0, "Wait");
	CHECK(rg_errgroup_trygo(&el.g, el_work, NULL) == 0, "TryGo once the slot is free");
	CHECK(rg_errgroup_wait(&el.g) == 0, "Wait");
	rg_chan_free(gate);
	rg_chan_free(gate2);
	rg_chan_free(gate3);
}

TEST(errgroup_limit)
{
	run_main(_metadata, el_main, NULL, 2);
}

/* Goroutines that poll the canceled flag stop once one of them fails. */
#define EC_N 8

static struct {
	rg_errgroup g;
	atomic_int stopped;
} ec;

static int ec_poller(void *arg)
{
	while (!rg_errgroup_canceled(&ec.g))
		rg_yield();
	atomic_fetch_add(&ec.stopped, 1);
	return 0;
}

static int ec_fail(void *arg)
{
	return -ECONNRESET;
}

static void ec_main(void *arg)
{
	CHECK(!rg_errgroup_canceled(&ec.g), "a new group is canceled");
	for (int i = 0; i < EC_N; i++)
		CHECK(rg_errgroup_go(&ec.g, ec_poller, NULL) == 0, "Go");
	for (int i = 0; i < 100; i++)
		rg_yield();
	CHECK(!rg_errgroup_canceled(&ec.g) && atomic_load(&ec.stopped) == 0,
	      "canceled although nothing failed");
	CHECK(rg_errgroup_go(&ec.g, ec_fail, NULL) == 0, "Go");
	CHECK(rg_errgroup_wait(&ec.g) == -ECONNRESET, "Wait did not return the error");
	CHECK(atomic_load(&ec.stopped) == EC_N, "%d of %d stopped", atomic_load(&ec.stopped),
	      EC_N);
	CHECK(rg_errgroup_canceled(&ec.g), "not canceled after Wait");
}

TEST(errgroup_canceled)
{
	run_main(_metadata, ec_main, NULL, 2);
}

TEST_HARNESS_MAIN
