// SPDX-License-Identifier: BSD-2-Clause
/*
 * Public API contract: bad input, calls outside the runtime, rg_run's life
 * cycle (twice per process, nested, concurrent), goroutine ids and counts,
 * rg_maxprocs and rg_p_stats.
 */
#include <limits.h>
#include <pthread.h>

#include "rg_test.h"

static void nop(void *arg)
{
}

/* ------------------------------------------------------------------------ */

TEST(run_null_is_einval)
{
	ASSERT_EQ(-EINVAL, rg_run(NULL, NULL));
	/* A refused rg_run leaves the runtime usable. */
	ASSERT_EQ(0, rg_run(nop, NULL));
}

static void outside_checks(struct __test_metadata *_metadata)
{
	struct rg_pstats st;

	EXPECT_EQ(-EPERM, rg_go(nop, NULL));
	EXPECT_EQ(0u, rg_goid());
	EXPECT_EQ(0, rg_num_goroutines());
	EXPECT_EQ(-1, rg_current_p());
	EXPECT_EQ(-ESRCH, rg_p_stats(0, &st));
	rg_yield(); /* documented no-op outside a goroutine */
}

TEST(outside_runtime)
{
	/* Before any rg_run, and again after one has returned. */
	outside_checks(_metadata);
	ASSERT_EQ(0, rg_run(nop, NULL));
	outside_checks(_metadata);
}

static struct {
	int rc_null;
	long live_before, live_after;
} bad;

static void bad_main(void *arg)
{
	bad.live_before = rg_num_goroutines();
	bad.rc_null = rg_go(NULL, NULL);
	bad.live_after = rg_num_goroutines();
}

TEST(go_null_is_einval)
{
	bad.rc_null = 1;
	ASSERT_EQ(0, rg_run(bad_main, NULL));
	EXPECT_EQ(-EINVAL, bad.rc_null);
	/* Nothing was started. */
	EXPECT_EQ(1, bad.live_before);
	EXPECT_EQ(1, bad.live_after);
}

/* ------------------------------------------------------------------------ */

static struct {
	int maxprocs;
	int rc[8];
	int rc_null;
	int rc_ok[4];
	struct rg_pstats st;
} ps;

static void pstats_main(void *arg)
{
	static const int bad_p[] = {-1, 2, 3, 1024, INT_MAX, INT_MIN};

	ps.maxprocs = rg_maxprocs(0);
	for (size_t i = 0; i < sizeof(bad_p) / sizeof(bad_p[0]); i++)
		ps.rc[i] = rg_p_stats(bad_p[i], &ps.st);
	ps.rc_null = rg_p_stats(0, NULL);
	ps.rc_ok[0] = rg_p_stats(0, &ps.st);
	ps.rc_ok[1] = rg_p_stats(1, &ps.st);
}

TEST(p_stats_bad_index)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(pstats_main, NULL));
	ASSERT_EQ(2, ps.maxprocs);
	for (int i = 0; i < 6; i++) {
		EXPECT_EQ(-EINVAL, ps.rc[i]) TH_LOG("bad p #%d accepted", i);
	}
	EXPECT_EQ(-EINVAL, ps.rc_null);
	EXPECT_EQ(0, ps.rc_ok[0]);
	EXPECT_EQ(0, ps.rc_ok[1]);
}

/* ------------------------------------------------------------------------ */

TEST(maxprocs_before_run)
{
	int def = rg_maxprocs(0);

	ASSERT_GE(def, 1);
	EXPECT_EQ(def, rg_maxprocs(-7)); /* n <= 0 only reads */
	EXPECT_EQ(def, rg_maxprocs(3));  /* returns the previous value */
	EXPECT_EQ(3, rg_maxprocs(0));
	EXPECT_EQ(3, rg_maxprocs(5000));
	EXPECT_EQ(1024, rg_maxprocs(0)); /* clamped */
	EXPECT_EQ(1024, rg_maxprocs(3));
	ASSERT_EQ(0, rg_run(pstats_main, NULL));
	EXPECT_EQ(3, ps.maxprocs); /* used by the next rg_run */
}

#define RESIZE_G 200

static struct {
	int prev_shrink, after_shrink, p_main_after_shrink;
	int rc_stats_retired;
	int bad_p_after_shrink; /* goroutines started after the shrink on P != 0 */
	int prev_grow, rc_stats_new;
	int bad_p_after_grow;
	long ran;
	rg_wg wg;
} rs;

static void resize_shrunk(void *arg)
{
	if (rg_current_p() != 0)
		__atomic_fetch_add(&rs.bad_p_after_shrink, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rs.ran, 1, __ATOMIC_RELAXED);
	rg_wg_done(&rs.wg);
}

static void resize_grown(void *arg)
{
	int p = rg_current_p();

	if (p < 0 || p >= 4)
		__atomic_fetch_add(&rs.bad_p_after_grow, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rs.ran, 1, __ATOMIC_RELAXED);
	rg_wg_done(&rs.wg);
}

static void resize_main(void *arg)
{
	struct rg_pstats st;

	rs.prev_shrink = rg_maxprocs(1);
	rs.after_shrink = rg_maxprocs(0);
	rs.p_main_after_shrink = rg_current_p();
	rs.rc_stats_retired = rg_p_stats(2, &st);
	rg_wg_add(&rs.wg, RESIZE_G);
	for (int i = 0; i < RESIZE_G; i++)
		rg_go(resize_shrunk, NULL);
	rg_wg_wait(&rs.wg);

	rs.prev_grow = rg_maxprocs(4);
	rs.rc_stats_new = rg_p_stats(3, &st);
	rg_wg_add(&rs.wg, RESIZE_G);
	for (int i = 0; i < RESIZE_G; i++)
		rg_go(resize_grown, NULL);
	rg_wg_wait(&rs.wg);
}

TEST(maxprocs_resize_in_run)
{
	rg_maxprocs(3);
	ASSERT_EQ(0, rg_run(resize_main, NULL));
	EXPECT_EQ(3, rs.prev_shrink);
	EXPECT_EQ(1, rs.after_shrink);
	EXPECT_EQ(0, rs.p_main_after_shrink);
	EXPECT_EQ(-EINVAL, rs.rc_stats_retired);
	EXPECT_EQ(0, rs.bad_p_after_shrink);
	EXPECT_EQ(1, rs.prev_grow);
	EXPECT_EQ(0, rs.rc_stats_new);
	EXPECT_EQ(0, rs.bad_p_after_grow);
	EXPECT_EQ(2 * RESIZE_G, rs.ran);
}

/* ------------------------------------------------------------------------ */

static struct {
	int runs;
	uint64_t main_id[2];
	int procs[2];
	long live_at_start[2];
	long done[2];
	rg_wg wg;
} twice;

static void twice_child(void *arg)
{
	__atomic_fetch_add(&twice.done[(uintptr_t)arg], 1, __ATOMIC_RELAXED);
	rg_wg_done(&twice.wg);
}

static void twice_main(void *arg)
{
	int r = twice.runs++;

	twice.main_id[r] = rg_goid();
	twice.procs[r] = rg_maxprocs(0);
	twice.live_at_start[r] = rg_num_goroutines();
	rg_wg_add(&twice.wg, 1000);
	for (int i = 0; i < 1000; i++)
		rg_go(twice_child, (void *)(uintptr_t)r);
	rg_wg_wait(&twice.wg);
}

TEST(run_twice)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(twice_main, NULL));
	rg_maxprocs(3);
	ASSERT_EQ(0, rg_run(twice_main, NULL));
	ASSERT_EQ(2, twice.runs);
	for (int r = 0; r < 2; r++) {
		EXPECT_EQ(1u, twice.main_id[r]) TH_LOG("run %d", r);
		EXPECT_EQ(1, twice.live_at_start[r]) TH_LOG("run %d", r);
		EXPECT_EQ(1000, twice.done[r]) TH_LOG("run %d", r);
	}
	EXPECT_EQ(2, twice.procs[0]);
	EXPECT_EQ(3, twice.procs[1]);
}

/*
 * rg_run returns when main returns, abandoning goroutines that are blocked or
 * still runnable; none of them may resume in a later rg_run.
 */
#define ABANDON_BLOCKED 100
#define ABANDON_SPINNERS 8

static struct {
	rg_wg never;   /* its counter never reaches 0 */
	rg_wg started; /* every abandoned goroutine has begun */
	rg_mutex held; /* locked by main, never unlocked */
	atomic_long spins;
	atomic_int stop;
	long live_run1, live_run2;
	long spins_run2_start, spins_run2_end;
	int run2_ran;
} ab;

static void abandon_blocked_wg(void *arg)
{
	rg_wg_done(&ab.started);
	rg_wg_wait(&ab.never);
}

static void abandon_blocked_mutex(void *arg)
{
	rg_wg_done(&ab.started);
	rg_mutex_lock(&ab.held);
}

static void abandon_spinner(void *arg)
{
	rg_wg_done(&ab.started);
	while (!atomic_load(&ab.stop)) {
		atomic_fetch_add(&ab.spins, 1);
		rg_yield();
	}
}

static void abandon_main(void *arg)
{
	rg_wg_add(&ab.never, 1);
	rg_mutex_lock(&ab.held);
	rg_wg_add(&ab.started, 2 * ABANDON_BLOCKED + ABANDON_SPINNERS);
	for (int i = 0; i < ABANDON_BLOCKED; i++) {
		rg_go(abandon_blocked_wg, NULL);
		rg_go(abandon_blocked_mutex, NULL);
	}
	for (int i = 0; i < ABANDON_SPINNERS; i++)
		rg_go(abandon_spinner, NULL);
	rg_wg_wait(&ab.started);
	ab.live_run1 = rg_num_goroutines();
}

static void abandon_main2(void *arg)
{
	ab.live_run2 = rg_num_goroutines();
	/* A leftover spinner of the first run would count while we yield. */
	ab.spins_run2_start = atomic_load(&ab.spins);
	for (int i = 0; i < 1000; i++)
		rg_yield();
	ab.spins_run2_end = atomic_load(&ab.spins);
	ab.run2_ran = 1;
}

TEST(run_abandons_goroutines)
{
	rg_maxprocs(2);
	/* Abandoned on purpose: what this test is about. */
	ASSERT_EQ(0, (rg_run)(abandon_main, NULL));
	EXPECT_EQ(1 + 2 * ABANDON_BLOCKED + ABANDON_SPINNERS, ab.live_run1);
	EXPECT_EQ(0, rg_num_goroutines());

	ASSERT_EQ(0, rg_run(abandon_main2, NULL));
	EXPECT_EQ(1, ab.run2_ran);
	/*
	 * The second run starts empty and never resumes the first run's
	 * goroutines. A spinner still on its M when the first run returned
	 * finishes the iteration in flight, at most one more count each (its
	 * next yield ends that M; seen once in a loaded loop), where a resumed
	 * one would count on every yield of ours.
	 */
	EXPECT_EQ(1, ab.live_run2);
	EXPECT_LE(ab.spins_run2_end - ab.spins_run2_start, ABANDON_SPINNERS);
}

/* ------------------------------------------------------------------------ */

static struct {
	int rc_main, rc_child, rc_thread;
	int inner_ran;
	rg_wg wg;
} nest;

static void nested_inner(void *arg)
{
	nest.inner_ran = 1;
}

static void nested_child(void *arg)
{
	nest.rc_child = rg_run(nested_inner, NULL);
	rg_wg_done(&nest.wg);
}

static void *nested_thread(void *arg)
{
	/* A plain thread, not a goroutine, while rg_run is active. */
	nest.rc_thread = rg_run(nested_inner, NULL);
	return NULL;
}

static void nested_main(void *arg)
{
	pthread_t t;

	nest.rc_main = rg_run(nested_inner, NULL);
	rg_wg_add(&nest.wg, 1);
	rg_go(nested_child, NULL);
	rg_wg_wait(&nest.wg);
	/* Blocking this M in pthread_join is brief and harmless. */
	if (pthread_create(&t, NULL, nested_thread, NULL) == 0)
		pthread_join(t, NULL);
	else
		nest.rc_thread = 1;
}

TEST(run_nested_is_ebusy)
{
	nest.rc_main = nest.rc_child = nest.rc_thread = 1;
	ASSERT_EQ(0, rg_run(nested_main, NULL));
	EXPECT_EQ(-EBUSY, nest.rc_main);
	EXPECT_EQ(-EBUSY, nest.rc_child);
	EXPECT_EQ(-EBUSY, nest.rc_thread);
	EXPECT_EQ(0, nest.inner_ran);
}

/* ------------------------------------------------------------------------ */

#define SEQ_G 1000
#define PAR_SPAWNERS 4
#define PAR_EACH 1000

static struct {
	uint64_t main_id;
	/* seq_ids then par_ids, contiguous so they can be sorted together */
	uint64_t seq_ids[SEQ_G];
	uint64_t par_ids[PAR_SPAWNERS * PAR_EACH];
	uint64_t id_changed; /* goroutines whose id changed across yields */
	rg_wg wg;
} ids;

static void id_record(void *arg)
{
	uint64_t *slot = arg;
	uint64_t id = rg_goid();

	*slot = id;
	/* The id belongs to the goroutine, not to the M or P it runs on. */
	for (int i = 0; i < 20; i++) {
		rg_yield();
		if (rg_goid() != id)
			__atomic_fetch_add(&ids.id_changed, 1, __ATOMIC_RELAXED);
	}
	rg_wg_done(&ids.wg);
}

static void id_spawner(void *arg)
{
	uint64_t *base = arg;

	for (int i = 0; i < PAR_EACH; i++)
		rg_go(id_record, &base[i]);
	rg_wg_done(&ids.wg);
}

static void ids_main(void *arg)
{
	ids.main_id = rg_goid();
	rg_wg_add(&ids.wg, SEQ_G);
	rg_preempt_disable(); /* "stays on its P": a preemption could move it */
	for (int i = 0; i < SEQ_G; i++)
		rg_go(id_record, &ids.seq_ids[i]);
	rg_preempt_enable();
	rg_wg_wait(&ids.wg);

	rg_wg_add(&ids.wg, PAR_SPAWNERS * (PAR_EACH + 1));
	for (int s = 0; s < PAR_SPAWNERS; s++)
		rg_go(id_spawner, &ids.par_ids[s * PAR_EACH]);
	rg_wg_wait(&ids.wg);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

TEST(goroutine_ids)
{
	size_t n = SEQ_G + PAR_SPAWNERS * PAR_EACH;
	uint64_t *all = malloc(n * sizeof(uint64_t));
	int dup = 0, nonincreasing = 0, main_id_reused = 0;

	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(ids_main, NULL));
	EXPECT_EQ(1u, ids.main_id);
	EXPECT_EQ(0u, ids.id_changed);

	/*
	 * Sequential spawns from one goroutine that stays on its P get increasing
	 * ids (ids come from per-P batches, as Go's goidcache).
	 */
	EXPECT_GT(ids.seq_ids[0], 1u);
	for (int i = 1; i < SEQ_G; i++)
		nonincreasing += ids.seq_ids[i] <= ids.seq_ids[i - 1];
	EXPECT_EQ(0, nonincreasing);

	/* Concurrent spawners on several Ps still never share an id, nor take 1. */
	ASSERT_NE(NULL, all);
	memcpy(all, ids.seq_ids, SEQ_G * sizeof(uint64_t));
	memcpy(all + SEQ_G, ids.par_ids, sizeof(ids.par_ids));
	qsort(all, n, sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		main_id_reused += all[i] <= 1;
		dup += i > 0 && all[i] == all[i - 1];
	}
	EXPECT_EQ(0, main_id_reused);
	EXPECT_EQ(0, dup);
	free(all);
}

/* ------------------------------------------------------------------------ */

#define COUNT_G 500

static struct {
	rg_wg gate, started, fin, observed;
	long at_start, after_spawn, inside, after_release;
	uint64_t settle_ns;
} cnt;

static void counted(void *arg)
{
	rg_wg_done(&cnt.started);
	rg_wg_wait(&cnt.gate);
	rg_wg_done(&cnt.fin);
}

static void count_observer(void *arg)
{
	cnt.inside = rg_num_goroutines();
	rg_wg_done(&cnt.observed);
}

static void count_main(void *arg)
{
	uint64_t t0;

	cnt.at_start = rg_num_goroutines();
	rg_wg_add(&cnt.gate, 1);
	rg_wg_add(&cnt.started, COUNT_G);
	rg_wg_add(&cnt.fin, COUNT_G);
	for (int i = 0; i < COUNT_G; i++)
		rg_go(counted, NULL);
	/* Counted from rg_go's return, before they run. */
	cnt.after_spawn = rg_num_goroutines();
	rg_wg_wait(&cnt.started);

	/* Seen the same from another goroutine while all are parked. */
	rg_wg_add(&cnt.observed, 1);
	rg_go(count_observer, NULL);
	rg_wg_wait(&cnt.observed);
	rg_wg_done(&cnt.gate);
	rg_wg_wait(&cnt.fin);

	/* Exited goroutines leave the count; done precedes exit, so poll with a deadline. */
	t0 = rt_now_ns();
	while (rg_num_goroutines() > 1 && rt_now_ns() - t0 < 5000000000ull)
		rg_yield();
	cnt.settle_ns = rt_now_ns() - t0;
	cnt.after_release = rg_num_goroutines();
}

TEST(num_goroutines)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(count_main, NULL));
	EXPECT_EQ(1, cnt.at_start);
	EXPECT_EQ(1 + COUNT_G, cnt.after_spawn);
	EXPECT_EQ(2 + COUNT_G, cnt.inside);
	EXPECT_EQ(1, cnt.after_release) TH_LOG("still counted after %llu ns",
					      (unsigned long long)cnt.settle_ns);
	EXPECT_EQ(0, rg_num_goroutines());
}

TEST_HARNESS_MAIN
