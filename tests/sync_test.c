// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_mutex, rg_wg and rg_once: exact results under contention, trylock
 * semantics, starvation hand-off, park/ready ping-pong across Ps (including a
 * wake that comes before the park), and the fatal misuse paths.
 *
 * Shared counters are plain (non-atomic) where the primitive under test is
 * what orders them: a broken primitive loses updates, and TSan flags the race.
 */
#include "rg_test.h"

FIXTURE(heavy) {
	int unused;
};
FIXTURE_SETUP(heavy)
{
}
FIXTURE_TEARDOWN(heavy)
{
}

/* ------------------------------------------------------------------------ */

#define MC_G 100
#define MC_ITER RT_TSAN_SCALE(10000, 10)

static struct {
	rg_mutex m;
	long counter; /* guarded by m only */
	rg_wg wg;
	uint64_t ns;
} mc;

static void mc_worker(void *arg)
{
	for (int i = 0; i < MC_ITER; i++) {
		rg_mutex_lock(&mc.m);
		mc.counter++;
		/* Now and then yield inside the critical section so waiters must park. */
		if (i % 1000 == 999)
			rg_yield();
		rg_mutex_unlock(&mc.m);
	}
	rg_wg_done(&mc.wg);
}

static void mc_main(void *arg)
{
	uint64_t t0 = rt_now_ns();

	rg_wg_add(&mc.wg, MC_G);
	for (int i = 0; i < MC_G; i++)
		rg_go(mc_worker, NULL);
	rg_wg_wait(&mc.wg);
	mc.ns = rt_now_ns() - t0;
}

TEST_F_TIMEOUT(heavy, mutex_contended_increments, 90)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(mc_main, NULL));
	EXPECT_EQ((long)MC_G * MC_ITER, mc.counter);
	TH_LOG("%ld guarded increments by %d goroutines: %.0f ns each", (long)MC_G * MC_ITER,
	       MC_G, (double)mc.ns / ((double)MC_G * MC_ITER));
}

/* ------------------------------------------------------------------------ */

static struct {
	bool zero_try, zero_try_again, after_unlock_try;
	bool other_try_held, other_try_free;
	bool parked_holder_try;
	bool unlock_by_other_then_try;
	rg_mutex m, m2;
	rg_wg wg, holder_has_it, release_holder;
} tl;

static void tl_try_held(void *arg)
{
	tl.other_try_held = rg_mutex_trylock(&tl.m);
	rg_wg_done(&tl.wg);
}

static void tl_try_free(void *arg)
{
	tl.other_try_free = rg_mutex_trylock(&tl.m);
	if (tl.other_try_free)
		rg_mutex_unlock(&tl.m);
	rg_wg_done(&tl.wg);
}

static void tl_holder(void *arg)
{
	rg_mutex_lock(&tl.m2);
	rg_wg_done(&tl.holder_has_it);
	rg_wg_wait(&tl.release_holder); /* parked while holding m2 */
	rg_mutex_unlock(&tl.m2);
	rg_wg_done(&tl.wg);
}

static void tl_unlocker(void *arg)
{
	rg_mutex_unlock(&tl.m); /* Go allows any goroutine to unlock */
	rg_wg_done(&tl.wg);
}

static void tl_main(void *arg)
{
	/* A zero mutex is unlocked; trylock does not nest. */
	tl.zero_try = rg_mutex_trylock(&tl.m);
	tl.zero_try_again = rg_mutex_trylock(&tl.m);
	rg_mutex_unlock(&tl.m);
	tl.after_unlock_try = rg_mutex_trylock(&tl.m);

	/* Held by main: another goroutine's trylock fails without blocking. */
	rg_wg_add(&tl.wg, 1);
	rg_go(tl_try_held, NULL);
	rg_wg_wait(&tl.wg);
	rg_mutex_unlock(&tl.m);

	rg_wg_add(&tl.wg, 1);
	rg_go(tl_try_free, NULL);
	rg_wg_wait(&tl.wg);

	/* Held by a parked goroutine. */
	rg_wg_add(&tl.holder_has_it, 1);
	rg_wg_add(&tl.release_holder, 1);
	rg_wg_add(&tl.wg, 1);
	rg_go(tl_holder, NULL);
	rg_wg_wait(&tl.holder_has_it);
	tl.parked_holder_try = rg_mutex_trylock(&tl.m2);
	rg_wg_done(&tl.release_holder);
	rg_wg_wait(&tl.wg);

	/* Locked here, unlocked by another goroutine: free again. */
	rg_mutex_lock(&tl.m);
	rg_wg_add(&tl.wg, 1);
	rg_go(tl_unlocker, NULL);
	rg_wg_wait(&tl.wg);
	tl.unlock_by_other_then_try = rg_mutex_trylock(&tl.m);
	rg_mutex_unlock(&tl.m);
}

TEST(mutex_trylock)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(tl_main, NULL));
	EXPECT_TRUE(tl.zero_try);
	EXPECT_FALSE(tl.zero_try_again);
	EXPECT_TRUE(tl.after_unlock_try);
	EXPECT_FALSE(tl.other_try_held);
	EXPECT_TRUE(tl.other_try_free);
	EXPECT_FALSE(tl.parked_holder_try);
	EXPECT_TRUE(tl.unlock_by_other_then_try);
}

/* ------------------------------------------------------------------------ */

/*
 * A goroutine that relocks at once would win every race against a woken
 * waiter; starvation mode (after 1 ms of waiting) must hand the lock over.
 */
static struct {
	rg_mutex m;
	atomic_int waiter_done;
	rg_wg hog_running, wg;
	long hog_rounds;
	uint64_t wait_ns;
} stv;

static void stv_hog(void *arg)
{
	uint64_t t0 = rt_now_ns();
	bool first = true;

	while (!atomic_load(&stv.waiter_done) && rt_now_ns() - t0 < 5000000000ull) {
		rg_mutex_lock(&stv.m);
		if (first) {
			rg_wg_done(&stv.hog_running);
			first = false;
		}
		rt_spin_ns(20000);
		rg_mutex_unlock(&stv.m);
		stv.hog_rounds++;
	}
	rg_wg_done(&stv.wg);
}

static void stv_waiter(void *arg)
{
	uint64_t t0 = rt_now_ns();

	rg_mutex_lock(&stv.m);
	stv.wait_ns = rt_now_ns() - t0;
	atomic_store(&stv.waiter_done, 1);
	rg_mutex_unlock(&stv.m);
	rg_wg_done(&stv.wg);
}

static void stv_main(void *arg)
{
	rg_wg_add(&stv.wg, 2);
	rg_wg_add(&stv.hog_running, 1);
	rg_go(stv_hog, NULL);
	rg_wg_wait(&stv.hog_running);
	rg_go(stv_waiter, NULL);
	rg_wg_wait(&stv.wg);
}

TEST(mutex_starvation_handoff)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(stv_main, NULL));
	EXPECT_EQ(1, atomic_load(&stv.waiter_done));
	EXPECT_LT(stv.wait_ns, 1000000000ull)
		TH_LOG("waiter starved for %.1f ms against %ld hog rounds", stv.wait_ns / 1e6,
		       stv.hog_rounds);
	TH_LOG("waiter got the lock after %.2f ms", stv.wait_ns / 1e6);
}

/* ------------------------------------------------------------------------ */

#define WW_G RT_TSAN_SCALE(1000, 4)

static struct {
	rg_wg gate, started, fin;
	atomic_long woke;
	long woke_before_release;
} ww;

static void ww_waiter(void *arg)
{
	rg_wg_done(&ww.started);
	rg_wg_wait(&ww.gate);
	atomic_fetch_add(&ww.woke, 1);
	rg_wg_done(&ww.fin);
}

static void ww_main(void *arg)
{
	rg_wg_add(&ww.gate, 1);
	rg_wg_add(&ww.started, WW_G);
	rg_wg_add(&ww.fin, WW_G);
	for (int i = 0; i < WW_G; i++)
		rg_go(ww_waiter, NULL);
	rg_wg_wait(&ww.started);
	ww.woke_before_release = atomic_load(&ww.woke);
	rg_wg_done(&ww.gate);
	rg_wg_wait(&ww.fin);
}

TEST(wg_releases_all_waiters)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(ww_main, NULL));
	EXPECT_EQ(0, ww.woke_before_release);
	EXPECT_EQ(WW_G, atomic_load(&ww.woke));
}

/* One WaitGroup reused for many rounds; Wait must not return early or late. */
#define WR_ROUNDS RT_TSAN_SCALE(2000, 10)
#define WR_K 4

static struct {
	rg_wg wg;
	long done_in_round; /* plain: written before Done, read after Wait */
	long bad_rounds;
} wr;

static void wr_worker(void *arg)
{
	__atomic_fetch_add(&wr.done_in_round, 1, __ATOMIC_RELAXED);
	rg_wg_done(&wr.wg);
}

static void wr_main(void *arg)
{
	for (int r = 0; r < WR_ROUNDS; r++) {
		wr.done_in_round = 0;
		rg_wg_add(&wr.wg, WR_K);
		for (int i = 0; i < WR_K; i++)
			rg_go(wr_worker, NULL);
		rg_wg_wait(&wr.wg);
		if (__atomic_load_n(&wr.done_in_round, __ATOMIC_RELAXED) != WR_K)
			wr.bad_rounds++;
	}
}

TEST(wg_reused_rounds)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(wr_main, NULL));
	EXPECT_EQ(0, wr.bad_rounds);
}

/* Add from inside goroutines while the counter is positive: a spawn tree. */
#define TREE_DEPTH (RT_TSAN ? 11 : 15)

static struct {
	rg_wg wg;
	atomic_long nodes;
} tree;

static void tree_node(void *arg)
{
	uintptr_t depth = (uintptr_t)arg;

	atomic_fetch_add(&tree.nodes, 1);
	if (depth + 1 < TREE_DEPTH) {
		rg_wg_add(&tree.wg, 2);
		rg_go(tree_node, (void *)(depth + 1));
		rg_go(tree_node, (void *)(depth + 1));
	}
	rg_wg_done(&tree.wg);
}

static void tree_main(void *arg)
{
	rg_wg_add(&tree.wg, 1);
	rg_go(tree_node, (void *)0);
	rg_wg_wait(&tree.wg);
}

TEST(wg_add_from_goroutines)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(tree_main, NULL));
	EXPECT_EQ((1L << TREE_DEPTH) - 1, atomic_load(&tree.nodes));
}

/* ------------------------------------------------------------------------ */

#define ONCE_ROUNDS RT_TSAN_SCALE(200, 4)
#define ONCE_G 64

static struct {
	rg_once once[ONCE_ROUNDS];
	int value[ONCE_ROUNDS];        /* plain: written only inside the once */
	atomic_int calls[ONCE_ROUNDS];
	atomic_long saw_unset;
	atomic_int go;
	rg_wg wg;
} oc;

static void once_init(void *arg)
{
	int r = (int)(uintptr_t)arg;

	atomic_fetch_add(&oc.calls[r], 1);
	/* Widen the window: others must wait for this call, not skip past it. */
	rg_yield();
	rg_yield();
	oc.value[r] = r + 1;
}

static void once_worker(void *arg)
{
	while (!atomic_load(&oc.go))
		rg_yield();
	for (int r = 0; r < ONCE_ROUNDS; r++) {
		rg_once_do(&oc.once[r], once_init, (void *)(uintptr_t)r);
		if (oc.value[r] != r + 1)
			atomic_fetch_add(&oc.saw_unset, 1);
	}
	rg_wg_done(&oc.wg);
}

static void once_main(void *arg)
{
	rg_wg_add(&oc.wg, ONCE_G);
	for (int i = 0; i < ONCE_G; i++)
		rg_go(once_worker, NULL);
	atomic_store(&oc.go, 1);
	rg_wg_wait(&oc.wg);
}

TEST(once_under_race)
{
	int not_once = 0;

	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(once_main, NULL));
	for (int r = 0; r < ONCE_ROUNDS; r++) {
		if (atomic_load(&oc.calls[r]) != 1) {
			TH_LOG("once %d ran %d times", r, atomic_load(&oc.calls[r]));
			not_once++;
		}
	}
	EXPECT_EQ(0, not_once);
	EXPECT_EQ(0, atomic_load(&oc.saw_unset));
}

static int static_once_calls;
static rg_once static_once = RG_ONCE_INIT;

static void static_once_fn(void *arg)
{
	static_once_calls++;
}

static void static_once_main(void *arg)
{
	for (int i = 0; i < 3; i++)
		rg_once_do(&static_once, static_once_fn, NULL);
}

TEST(once_static_init)
{
	ASSERT_EQ(0, rg_run(static_once_main, NULL));
	EXPECT_EQ(1, static_once_calls);
}

/* ------------------------------------------------------------------------ */

/*
 * Mutexes as binary semaphores between two goroutines: each unlock wakes the
 * other side, which may not have parked yet (wake before park) or may be
 * parked already. seq must advance in strict alternation.
 */
#define PP_PAIRS 4
#define PP_ROUNDS RT_TSAN_SCALE(50000, 10)

struct pp_pair {
	rg_mutex a, b;
	long seq;
	long bad;
};

static struct {
	struct pp_pair pair[PP_PAIRS];
	rg_wg wg;
	uint64_t ns;
} pp;

static void pp_ping(void *arg)
{
	struct pp_pair *x = arg;

	for (long i = 0; i < PP_ROUNDS; i++) {
		rg_mutex_lock(&x->a);
		if (x->seq != 2 * i)
			x->bad++;
		x->seq++;
		rg_mutex_unlock(&x->b);
	}
	rg_wg_done(&pp.wg);
}

static void pp_pong(void *arg)
{
	struct pp_pair *x = arg;

	for (long i = 0; i < PP_ROUNDS; i++) {
		rg_mutex_lock(&x->b);
		if (x->seq != 2 * i + 1)
			x->bad++;
		x->seq++;
		rg_mutex_unlock(&x->a);
	}
	rg_wg_done(&pp.wg);
}

static void pp_main(void *arg)
{
	uint64_t t0 = rt_now_ns();

	rg_wg_add(&pp.wg, 2 * PP_PAIRS);
	for (int i = 0; i < PP_PAIRS; i++) {
		rg_mutex_lock(&pp.pair[i].a);
		rg_mutex_lock(&pp.pair[i].b);
		rg_go(pp_ping, &pp.pair[i]);
		rg_go(pp_pong, &pp.pair[i]);
	}
	for (int i = 0; i < PP_PAIRS; i++)
		rg_mutex_unlock(&pp.pair[i].a);
	rg_wg_wait(&pp.wg);
	pp.ns = rt_now_ns() - t0;
}

static void check_mutex_pingpong(struct __test_metadata *_metadata, int nprocs)
{
	rg_maxprocs(nprocs);
	ASSERT_EQ(0, rg_run(pp_main, NULL));
	for (int i = 0; i < PP_PAIRS; i++) {
		EXPECT_EQ(2L * PP_ROUNDS, pp.pair[i].seq) TH_LOG("pair %d", i);
		EXPECT_EQ(0, pp.pair[i].bad) TH_LOG("pair %d", i);
	}
	TH_LOG("GOMAXPROCS=%d: %.0f ns per hand-off", nprocs,
	       (double)pp.ns / (2.0 * PP_PAIRS * PP_ROUNDS));
}

TEST_F_TIMEOUT(heavy, mutex_pingpong_2procs, 90)
{
	check_mutex_pingpong(_metadata, 2);
}

TEST_F_TIMEOUT(heavy, mutex_pingpong_8procs, 90)
{
	check_mutex_pingpong(_metadata, 8);
}

/*
 * The same with WaitGroups as one-shot events: round i of a pair uses fresh
 * WaitGroups go[i] and back[i], so Done races with Wait in both orders.
 */
#define WP_ROUNDS RT_TSAN_SCALE(50000, 10)

struct wp_pair {
	rg_wg *go, *back;
	long d_count, w_count; /* plain: ordered by the WaitGroups */
	long bad;
};

static struct {
	struct wp_pair pair[PP_PAIRS];
	rg_wg wg;
	uint64_t ns;
} wp;

static void wp_waiter(void *arg)
{
	struct wp_pair *x = arg;

	for (long i = 0; i < WP_ROUNDS; i++) {
		rg_wg_wait(&x->go[i]);
		if (x->d_count != i + 1)
			x->bad++;
		x->w_count++;
		rg_wg_done(&x->back[i]);
	}
	rg_wg_done(&wp.wg);
}

static void wp_doer(void *arg)
{
	struct wp_pair *x = arg;

	for (long i = 0; i < WP_ROUNDS; i++) {
		x->d_count++;
		rg_wg_done(&x->go[i]);
		rg_wg_wait(&x->back[i]);
		if (x->w_count != i + 1)
			x->bad++;
	}
	rg_wg_done(&wp.wg);
}

static void wp_main(void *arg)
{
	uint64_t t0 = rt_now_ns();

	for (int i = 0; i < PP_PAIRS; i++) {
		for (long r = 0; r < WP_ROUNDS; r++) {
			rg_wg_add(&wp.pair[i].go[r], 1);
			rg_wg_add(&wp.pair[i].back[r], 1);
		}
	}
	rg_wg_add(&wp.wg, 2 * PP_PAIRS);
	for (int i = 0; i < PP_PAIRS; i++) {
		rg_go(wp_waiter, &wp.pair[i]);
		rg_go(wp_doer, &wp.pair[i]);
	}
	rg_wg_wait(&wp.wg);
	wp.ns = rt_now_ns() - t0;
}

static void check_wg_pingpong(struct __test_metadata *_metadata, int nprocs)
{
	for (int i = 0; i < PP_PAIRS; i++) {
		wp.pair[i].go = calloc(WP_ROUNDS, sizeof(rg_wg));
		wp.pair[i].back = calloc(WP_ROUNDS, sizeof(rg_wg));
		ASSERT_NE(NULL, wp.pair[i].go);
		ASSERT_NE(NULL, wp.pair[i].back);
	}
	rg_maxprocs(nprocs);
	ASSERT_EQ(0, rg_run(wp_main, NULL));
	for (int i = 0; i < PP_PAIRS; i++) {
		EXPECT_EQ(WP_ROUNDS, wp.pair[i].d_count) TH_LOG("pair %d", i);
		EXPECT_EQ(WP_ROUNDS, wp.pair[i].w_count) TH_LOG("pair %d", i);
		EXPECT_EQ(0, wp.pair[i].bad) TH_LOG("pair %d", i);
	}
	TH_LOG("GOMAXPROCS=%d: %.0f ns per hand-off", nprocs,
	       (double)wp.ns / (2.0 * PP_PAIRS * WP_ROUNDS));
}

TEST_F_TIMEOUT(heavy, wg_pingpong_2procs, 90)
{
	check_wg_pingpong(_metadata, 2);
}

TEST_F_TIMEOUT(heavy, wg_pingpong_8procs, 90)
{
	check_wg_pingpong(_metadata, 8);
}

/*
 * A token passed around a ring of goroutines, each parked on its own mutex:
 * long chains of park and ready, and the token's value proves the order.
 */
#define RING_N RT_TSAN_SCALE(1000, 5)
#define RING_LAPS RT_TSAN_SCALE(100, 5)

static struct {
	rg_mutex *m;
	long token; /* plain: passed along by the mutexes */
	long bad;
	rg_wg wg;
} ring;

static void ring_member(void *arg)
{
	long me = (long)(uintptr_t)arg;

	for (long lap = 0; lap < RING_LAPS; lap++) {
		rg_mutex_lock(&ring.m[me]);
		if (ring.token != lap * RING_N + me)
			ring.bad++;
		ring.token++;
		rg_mutex_unlock(&ring.m[(me + 1) % RING_N]);
	}
	rg_wg_done(&ring.wg);
}

static void ring_main(void *arg)
{
	for (long i = 0; i < RING_N; i++)
		rg_mutex_lock(&ring.m[i]);
	rg_wg_add(&ring.wg, RING_N);
	for (long i = 0; i < RING_N; i++)
		rg_go(ring_member, (void *)(uintptr_t)i);
	rg_mutex_unlock(&ring.m[0]);
	rg_wg_wait(&ring.wg);
}

TEST_F_TIMEOUT(heavy, token_ring, 90)
{
	ring.m = calloc(RING_N, sizeof(rg_mutex));
	ASSERT_NE(NULL, ring.m);
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(ring_main, NULL));
	EXPECT_EQ((long)RING_N * RING_LAPS, ring.token);
	EXPECT_EQ(0, ring.bad);
	free(ring.m);
}

/* ------------------------------------------------------------------------ */

static void unlock_unlocked_main(void *arg)
{
	rg_mutex m = RG_MUTEX_INIT;

	rg_mutex_unlock(&m);
}

TEST(fatal_unlock_of_unlocked_mutex)
{
	rt_expect_fatal(_metadata, unlock_unlocked_main, "sync: unlock of unlocked mutex");
}

static void double_unlock_main(void *arg)
{
	rg_mutex m = RG_MUTEX_INIT;

	rg_mutex_lock(&m);
	rg_mutex_unlock(&m);
	rg_mutex_unlock(&m);
}

TEST(fatal_double_unlock)
{
	rt_expect_fatal(_metadata, double_unlock_main, "sync: unlock of unlocked mutex");
}

static rg_mutex fatal_m;
static rg_wg fatal_wg;

static void unlock_in_goroutine(void *arg)
{
	rg_mutex_unlock(&fatal_m);
}

static void unlock_other_main(void *arg)
{
	/* The fatal error comes from a goroutine, possibly on another M, while main is parked. */
	rg_wg_add(&fatal_wg, 1);
	rg_go(unlock_in_goroutine, NULL);
	rg_wg_wait(&fatal_wg);
}

TEST(fatal_unlock_of_unlocked_mutex_in_goroutine)
{
	rt_expect_fatal(_metadata, unlock_other_main, "sync: unlock of unlocked mutex");
}

static void wg_negative_main(void *arg)
{
	rg_wg wg = RG_WG_INIT;

	rg_wg_add(&wg, -1);
}

TEST(fatal_negative_wg_counter)
{
	rt_expect_fatal(_metadata, wg_negative_main, "sync: negative WaitGroup counter");
}

static void done_twice(void *arg)
{
	rg_wg_done(&fatal_wg);
	rg_wg_done(&fatal_wg);
}

static void wg_done_twice_main(void *arg)
{
	rg_wg never = RG_WG_INIT;

	rg_wg_add(&fatal_wg, 1);
	rg_wg_add(&never, 1);
	rg_go(done_twice, NULL);
	rg_wg_wait(&never); /* parked for good: the second Done must be fatal */
}

TEST(fatal_wg_done_too_often)
{
	rt_expect_fatal(_metadata, wg_done_twice_main, "sync: negative WaitGroup counter");
}

TEST_HARNESS_MAIN
