// SPDX-License-Identifier: BSD-2-Clause
/*
 * Scheduler behaviour: mass spawn and exit, every P doing work, work stealing
 * seen in the per-P counters, rg_yield fairness, errno kept per goroutine.
 */
#include "rg_test.h"

/* Heavy tests get a fixture only to raise the harness timeout (30 s by default). */
FIXTURE(heavy) {
	int unused;
};
FIXTURE_SETUP(heavy)
{
}
FIXTURE_TEARDOWN(heavy)
{
}

/* Seconds a scheduling property may take to show before the test gives up. */
#define DEADLINE_NS (10ull * 1000000000ull)

/* ------------------------------------------------------------------------ */

/* TSan keeps a few thousand live fibers at most, so fan out less there. */
#define FAN_N (RT_TSAN ? 4000 : 1000000)

static struct {
	unsigned char *hit; /* per goroutine: how often it ran */
	atomic_long ran;
	rg_wg wg;
	int go_err;
	long go_err_at;
	long live_after;
	uint64_t spawn_ns, total_ns;
} fan;

static void fan_child(void *arg)
{
	fan.hit[(uintptr_t)arg]++; /* one byte per goroutine: no two write the same */
	atomic_fetch_add_explicit(&fan.ran, 1, memory_order_relaxed);
	rg_wg_done(&fan.wg);
}

static void fan_main(void *arg)
{
	uint64_t t0 = rt_now_ns(), t1;

	rg_wg_add(&fan.wg, FAN_N);
	for (long i = 0; i < FAN_N; i++) {
		int rc = rg_go(fan_child, (void *)(uintptr_t)i);

		if (rc) {
			fan.go_err = rc;
			fan.go_err_at = i;
			rg_wg_add(&fan.wg, -(int)(FAN_N - i));
			break;
		}
	}
	fan.spawn_ns = rt_now_ns() - t0;
	rg_wg_wait(&fan.wg);
	fan.total_ns = rt_now_ns() - t0;

	/* rg_wg_done precedes each exit: give the exits a deadline to be counted. */
	t1 = rt_now_ns();
	while (rg_num_goroutines() > 1 && rt_now_ns() - t1 < DEADLINE_NS)
		rg_yield();
	fan.live_after = rg_num_goroutines();
}

TEST_F_TIMEOUT(heavy, spawn_fanout_1m, 120)
{
	long missed = 0, twice = 0;

	fan.hit = calloc(FAN_N, 1);
	ASSERT_NE(NULL, fan.hit);
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(fan_main, NULL));
	ASSERT_EQ(0, fan.go_err) TH_LOG("rg_go failed at goroutine %ld", fan.go_err_at);
	EXPECT_EQ(FAN_N, atomic_load(&fan.ran));
	for (long i = 0; i < FAN_N; i++) {
		missed += fan.hit[i] == 0;
		twice += fan.hit[i] > 1;
	}
	EXPECT_EQ(0, missed);
	EXPECT_EQ(0, twice);
	EXPECT_EQ(1, fan.live_after);
	TH_LOG("%d goroutines: spawn %.0f ns each, spawn+run+exit %.0f ns each", FAN_N,
	       (double)fan.spawn_ns / FAN_N, (double)fan.total_ns / FAN_N);
	free(fan.hit);
}

/* ------------------------------------------------------------------------ */

#define CHAIN_N (RT_TSAN ? 50000 : 1000000)

/*
 * Ids come from per-P batches (Go's goidcache), so they increase along the
 * chain only while the spawning P stays the same; they never repeat.
 */
#define CHAIN_ID_BITS (64ul * 1024 * 1024)

static struct {
	long links;         /* plain: each link runs after its parent's rg_go */
	uint64_t last_id;   /* plain, for the same reason */
	int last_alloc_p;   /* P whose batch gave last_id */
	int spawn_p;        /* P the next link's id comes from */
	uint64_t *id_seen;  /* bitmap of ids */
	long id_dup, id_out_of_range;
	long id_not_increasing;
	int go_err;
	long go_err_at;
	rg_wg wg;
	long live_after;
	uint64_t ns;
} chain;

static void chain_link(void *arg)
{
	uintptr_t depth = (uintptr_t)arg;
	uint64_t id = rg_goid();
	int rc;

	if (chain.spawn_p == chain.last_alloc_p && id <= chain.last_id)
		chain.id_not_increasing++;
	if (id >= CHAIN_ID_BITS)
		chain.id_out_of_range++;
	else if (chain.id_seen[id / 64] & (1ull << (id % 64)))
		chain.id_dup++;
	else
		chain.id_seen[id / 64] |= 1ull << (id % 64);
	chain.last_id = id;
	chain.last_alloc_p = chain.spawn_p;
	chain.links++;
	if (depth + 1 == CHAIN_N) {
		rg_wg_done(&chain.wg);
		return;
	}
	/* Nothing after rg_go: the child may already be running on another P. */
	chain.spawn_p = rg_current_p();
	rc = rg_go(chain_link, (void *)(depth + 1));
	if (rc) {
		chain.go_err = rc;
		chain.go_err_at = (long)depth;
		rg_wg_done(&chain.wg);
	}
}

static void chain_main(void *arg)
{
	uint64_t t0 = rt_now_ns(), t1;

	chain.last_id = rg_goid();
	chain.last_alloc_p = -1;
	chain.spawn_p = rg_current_p();
	rg_wg_add(&chain.wg, 1);
	chain.go_err = rg_go(chain_link, (void *)0);
	if (chain.go_err)
		rg_wg_done(&chain.wg);
	rg_wg_wait(&chain.wg);
	chain.ns = rt_now_ns() - t0;
	t1 = rt_now_ns();
	while (rg_num_goroutines() > 1 && rt_now_ns() - t1 < DEADLINE_NS)
		rg_yield();
	chain.live_after = rg_num_goroutines();
}

TEST_F_TIMEOUT(heavy, spawn_chain_1m, 120)
{
	chain.id_seen = calloc(CHAIN_ID_BITS / 64, sizeof(uint64_t));
	ASSERT_NE(NULL, chain.id_seen);
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(chain_main, NULL));
	ASSERT_EQ(0, chain.go_err) TH_LOG("rg_go failed at link %ld", chain.go_err_at);
	EXPECT_EQ(CHAIN_N, chain.links);
	EXPECT_EQ(0, chain.id_dup);
	EXPECT_EQ(0, chain.id_out_of_range);
	EXPECT_EQ(0, chain.id_not_increasing);
	EXPECT_EQ(1, chain.live_after);
	TH_LOG("chain of %d: %.0f ns per link", CHAIN_N, (double)chain.ns / CHAIN_N);
	free(chain.id_seen);
}

/* ------------------------------------------------------------------------ */

#define MAXP 8

static struct {
	int nprocs, procs_seen_inside;
	atomic_uint mask;  /* bit p: some goroutine ran on P p */
	atomic_long bad_p; /* rg_current_p() out of range */
	rg_wg wg;
	int rc_stats[MAXP + 1];
	struct rg_pstats st[MAXP];
	uint64_t ns;
} ev;

static void everyp_worker(void *arg)
{
	unsigned full = (1u << ev.nprocs) - 1;
	uint64_t t0 = rt_now_ns();

	for (;;) {
		int p = rg_current_p();

		if (p < 0 || p >= ev.nprocs)
			atomic_fetch_add(&ev.bad_p, 1);
		else
			atomic_fetch_or(&ev.mask, 1u << p);
		if (atomic_load(&ev.mask) == full || rt_now_ns() - t0 > DEADLINE_NS)
			break;
		/* Some CPU time, so idle Ps are woken to take the queued work. */
		rt_spin_ns(20000);
		rg_yield();
	}
	rg_wg_done(&ev.wg);
}

static void everyp_main(void *arg)
{
	int workers = 4 * ev.nprocs;
	uint64_t t0 = rt_now_ns();
	struct rg_pstats scratch;

	ev.procs_seen_inside = rg_maxprocs(0);
	rg_wg_add(&ev.wg, workers);
	for (int i = 0; i < workers; i++)
		rg_go(everyp_worker, NULL);
	rg_wg_wait(&ev.wg);
	ev.ns = rt_now_ns() - t0;
	for (int p = 0; p < ev.nprocs; p++)
		ev.rc_stats[p] = rg_p_stats(p, &ev.st[p]);
	ev.rc_stats[ev.nprocs] = rg_p_stats(ev.nprocs, &scratch);
}

static void check_every_p(struct __test_metadata *_metadata, int nprocs)
{
	ev.nprocs = nprocs;
	rg_maxprocs(nprocs);
	ASSERT_EQ(0, rg_run(everyp_main, NULL));
	ASSERT_EQ(nprocs, ev.procs_seen_inside);
	EXPECT_EQ(0, atomic_load(&ev.bad_p));
	EXPECT_EQ((1u << nprocs) - 1, atomic_load(&ev.mask))
		TH_LOG("Ps that ran work: mask 0x%x after %.1f ms", atomic_load(&ev.mask),
		       ev.ns / 1e6);
	for (int p = 0; p < nprocs; p++) {
		EXPECT_EQ(0, ev.rc_stats[p]);
		/* The counters agree with rg_current_p(). */
		EXPECT_GT(ev.st[p].runs, 0u) TH_LOG("P%d never started a goroutine", p);
		TH_LOG("P%d: runs %llu schedtick %llu steals %llu stolen %llu global %llu", p,
		       (unsigned long long)ev.st[p].runs,
		       (unsigned long long)ev.st[p].schedtick,
		       (unsigned long long)ev.st[p].steals,
		       (unsigned long long)ev.st[p].stolen,
		       (unsigned long long)ev.st[p].global_get);
	}
	EXPECT_EQ(-EINVAL, ev.rc_stats[nprocs]);
}

TEST(every_p_runs_work_2procs)
{
	check_every_p(_metadata, 2);
}

/* More Ps than CPUs: Ps are logical, each still gets an M and runs work. */
TEST(every_p_runs_work_8procs_on_2cpus)
{
	check_every_p(_metadata, 8);
}

/* ------------------------------------------------------------------------ */

#define STEAL_G 64

static struct {
	int p_spawner, p_spawner_after;
	int ran_on[STEAL_G];
	rg_wg wg;
	int rc[2];
	struct rg_pstats st[2];
} stl;

static void steal_worker(void *arg)
{
	stl.ran_on[(uintptr_t)arg] = rg_current_p();
	rt_spin_ns(2000000); /* CPU-bound: 2 ms without a scheduling point */
	rg_wg_done(&stl.wg);
}

static void steal_main(void *arg)
{
	rg_wg_add(&stl.wg, STEAL_G);
	/* The spawner stays on its P (a slow spawn under TSan can outlast a time slice). */
	rg_preempt_disable();
	stl.p_spawner = rg_current_p();
	for (int i = 0; i < STEAL_G; i++)
		rg_go(steal_worker, (void *)(uintptr_t)i);
	stl.p_spawner_after = rg_current_p();
	rg_preempt_enable();
	rg_wg_wait(&stl.wg);
	for (int p = 0; p < 2; p++)
		stl.rc[p] = rg_p_stats(p, &stl.st[p]);
}

TEST(steal_seen_in_counters)
{
	uint64_t steals = 0, stolen = 0;
	int off_spawner = 0;

	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(steal_main, NULL));
	ASSERT_EQ(0, stl.rc[0]);
	ASSERT_EQ(0, stl.rc[1]);
	ASSERT_GE(stl.p_spawner, 0);
	ASSERT_LT(stl.p_spawner, 2);
	ASSERT_EQ(stl.p_spawner, stl.p_spawner_after);
	for (int i = 0; i < STEAL_G; i++)
		off_spawner += stl.ran_on[i] != stl.p_spawner;
	for (int p = 0; p < 2; p++) {
		steals += stl.st[p].steals;
		stolen += stl.st[p].stolen;
		TH_LOG("P%d: runs %llu steals %llu stolen %llu global %llu", p,
		       (unsigned long long)stl.st[p].runs,
		       (unsigned long long)stl.st[p].steals,
		       (unsigned long long)stl.st[p].stolen,
		       (unsigned long long)stl.st[p].global_get);
	}
	/* All work was queued on the spawner's P; the other P had to steal it. */
	EXPECT_GT(off_spawner, 0);
	EXPECT_GT(stl.st[1 - stl.p_spawner].steals, 0u);
	EXPECT_GT(stl.st[1 - stl.p_spawner].stolen, 0u);
	/* A steal takes at least one goroutine. */
	EXPECT_GE(stolen, steals);
	TH_LOG("%d of %d goroutines ran off the spawner's P%d", off_spawner, STEAL_G,
	       stl.p_spawner);
}

/* ------------------------------------------------------------------------ */

#define FAIR_G 8
#define FAIR_ITER (RT_TSAN ? 1000 : 5000)

static struct {
	atomic_int go;
	atomic_long iters[FAIR_G];
	atomic_int first_done;
	long snapshot[FAIR_G]; /* others' progress when the first finished */
	rg_wg wg;
} fair;

static void fair_worker(void *arg)
{
	int me = (int)(uintptr_t)arg;

	/* Start together, so no one gets a head start while others are spawned. */
	while (!atomic_load(&fair.go))
		rg_yield();
	for (int i = 0; i < FAIR_ITER; i++) {
		atomic_fetch_add_explicit(&fair.iters[me], 1, memory_order_relaxed);
		rg_yield();
	}
	if (atomic_exchange(&fair.first_done, 1) == 0) {
		for (int g = 0; g < FAIR_G; g++)
			fair.snapshot[g] = atomic_load(&fair.iters[g]);
	}
	rg_wg_done(&fair.wg);
}

static void fair_main(void *arg)
{
	rg_wg_add(&fair.wg, FAIR_G);
	for (int i = 0; i < FAIR_G; i++)
		rg_go(fair_worker, (void *)(uintptr_t)i);
	atomic_store(&fair.go, 1);
	rg_wg_wait(&fair.wg);
}

/*
 * rg_yield goes to the back of the global queue: when the first goroutine
 * finishes, every other one must have had a fair share of turns too.
 *
 * With one P that is exact. With two, the kernel may deschedule one M for
 * milliseconds on a busy machine; the goroutines in its P's local queue then
 * wait while the other P keeps finding work in the global queue (and so never
 * steals), as in Go. Such a run is repeated: an unfair scheduler fails every
 * attempt, OS noise does not.
 */
static long fairness_attempt(struct __test_metadata *_metadata, int nprocs)
{
	long min = FAIR_ITER;

	memset(&fair, 0, sizeof(fair));
	rg_maxprocs(nprocs);
	if (rg_run(fair_main, NULL) != 0)
		return -1;
	for (int g = 0; g < FAIR_G; g++) {
		if (atomic_load(&fair.iters[g]) != FAIR_ITER)
			return -1;
		if (fair.snapshot[g] < min)
			min = fair.snapshot[g];
	}
	TH_LOG("GOMAXPROCS=%d: slowest at %ld/%d when the first finished", nprocs, min,
	       FAIR_ITER);
	return min;
}

static void check_fairness(struct __test_metadata *_metadata, int nprocs, long want,
			   int attempts)
{
	long min = -1;

	for (int a = 0; a < attempts && min < want; a++) {
		min = fairness_attempt(_metadata, nprocs);
		ASSERT_GE(min, 0) TH_LOG("rg_run failed or a goroutine lost iterations");
	}
	EXPECT_GE(min, want);
}

TEST(yield_fairness_1proc)
{
	check_fairness(_metadata, 1, FAIR_ITER / 2, 1);
}

TEST(yield_fairness_2procs)
{
	check_fairness(_metadata, 2, FAIR_ITER / 4, 5);
}

/* ------------------------------------------------------------------------ */

#define ERRNO_G 16
#define ERRNO_ITER (RT_TSAN ? 300 : 2000)

static struct {
	rg_mutex m; /* contended, so goroutines park and wake, not only yield */
	long shared;
	atomic_long wrong_after_yield; /* the switch lost errno */
	atomic_long wrong_after_sync;  /* lock/unlock (and their parks) changed errno */
	atomic_long migrations;
	atomic_long lock_iters; /* counted outside the lock: checks the exact count in shared */
	int main_errno_after;
	rg_wg wg;
} en;

static void errno_worker(void *arg)
{
	int mine = 1000 + (int)(uintptr_t)arg;
	int p = rg_current_p();

	errno = mine;
	/* The test needs goroutines to change threads: on a busy host the other
	 * P's M may not run for a while, so go on (bounded) until one moved. */
	for (int i = 0; i < ERRNO_ITER || (atomic_load(&en.migrations) == 0 && i < 50 * ERRNO_ITER);
	     i++) {
		rg_yield();
		if (errno != mine)
			atomic_fetch_add(&en.wrong_after_yield, 1);
		errno = mine; /* keep checking even after a failure */
		rg_mutex_lock(&en.m);
		en.shared++;
		atomic_fetch_add(&en.lock_iters, 1);
		if ((i & 15) == 0)
			rg_yield(); /* holding the lock: the others park on it */
		rg_mutex_unlock(&en.m);
		if (errno != mine)
			atomic_fetch_add(&en.wrong_after_sync, 1);
		errno = mine;
		if (rg_current_p() != p) {
			atomic_fetch_add(&en.migrations, 1);
			p = rg_current_p();
		}
	}
	rg_wg_done(&en.wg);
}

static void errno_main(void *arg)
{
	rg_wg_add(&en.wg, ERRNO_G);
	for (int i = 0; i < ERRNO_G; i++)
		rg_go(errno_worker, (void *)(uintptr_t)i);
	errno = 4242;
	rg_wg_wait(&en.wg); /* main parks too */
	en.main_errno_after = errno;
}

TEST(errno_kept_across_switches)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(errno_main, NULL));
	EXPECT_EQ(0, atomic_load(&en.wrong_after_yield));
	/* The API never sets errno, so it must not leak the runtime's own syscalls' errno. */
	EXPECT_EQ(0, atomic_load(&en.wrong_after_sync));
	EXPECT_EQ(4242, en.main_errno_after);
	EXPECT_LE((long)ERRNO_G * ERRNO_ITER, en.shared);
	EXPECT_EQ(atomic_load(&en.lock_iters), en.shared);
	/* errno is per thread: the test means something only if goroutines changed Ms. */
	EXPECT_GT(atomic_load(&en.migrations), 0);
	TH_LOG("%ld P changes seen", atomic_load(&en.migrations));
}

/* ------------------------------------------------------------------------ */

/*
 * A channel ping-pong on one P: each goroutine parks by switching straight
 * into its partner (rg_park_handoff), which must carry everything a switch
 * through g0 carries: errno, the SSE and x87 rounding modes (callee-saved
 * control state), and the partner's park completed before it runs on.
 */
#define HANDOFF_ITER (RT_TSAN ? 2000 : 20000)

static struct {
	rg_chan *ping, *pong;
	atomic_long wrong_errno, wrong_mxcsr, wrong_fcw, wrong_value;
	struct rg_pstats st;
	int rc;
	rg_wg wg;
} ho;

static uint32_t get_mxcsr(void)
{
	uint32_t v;

	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static void set_mxcsr(uint32_t v)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static uint16_t get_fcw(void)
{
	uint16_t v;

	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}

static void set_fcw(uint16_t v)
{
	__asm__ volatile("fldcw %0" : : "m"(v));
}

/*
 * A player's own thread state, which every switch must carry: errno and the
 * rounding modes, toward +inf for player 1 and -inf for player 0 (RC bits).
 */
struct player_state {
	int err;
	uint32_t mxcsr;
	uint16_t fcw;
};

static struct player_state player_set(int me, int err)
{
	struct player_state st = {
		.err = err,
		.mxcsr = (get_mxcsr() & ~0x6000u) | (me ? 0x4000u : 0x2000u),
		.fcw = (uint16_t)((get_fcw() & ~0x0c00u) | (me ? 0x0800u : 0x0400u)),
	};

	set_mxcsr(st.mxcsr);
	set_fcw(st.fcw);
	errno = err;
	return st;
}

/* Count what a switch lost into the three counters. */
static void player_check(const struct player_state *st, atomic_long *wrong_errno,
			 atomic_long *wrong_mxcsr, atomic_long *wrong_fcw)
{
	if (errno != st->err)
		atomic_fetch_add(wrong_errno, 1);
	if (get_mxcsr() != st->mxcsr)
		atomic_fetch_add(wrong_mxcsr, 1);
	if (get_fcw() != st->fcw)
		atomic_fetch_add(wrong_fcw, 1);
}

/* The defaults again, for the thread the player ends on. */
static void player_reset(void)
{
	set_mxcsr(0x1f80);
	set_fcw(0x037f);
}

static void handoff_player(void *arg)
{
	int me = (int)(uintptr_t)arg;
	rg_chan *in = me ? ho.pong : ho.ping, *out = me ? ho.ping : ho.pong;
	struct player_state st = player_set(me, 7000 + me);

	for (long i = 0; i < HANDOFF_ITER; i++) {
		long v = i;
		errno = st.err;
		if (me == 0 && rg_chan_send(out, &v) != 0)
			atomic_fetch_add(&ho.wrong_value, 1);
		if (rg_chan_recv(in, &v) != 1 || v != i)
			atomic_fetch_add(&ho.wrong_value, 1);
		if (me == 1 && rg_chan_send(out, &v) != 0)
			atomic_fetch_add(&ho.wrong_value, 1);
		player_check(&st, &ho.wrong_errno, &ho.wrong_mxcsr, &ho.wrong_fcw);
	}
	player_reset();
	rg_wg_done(&ho.wg);
}

static void handoff_main(void *arg)
{
	/* A pending timer, as a daemon's deadline: not due, so no reason to stop a chain. */
	rg_timer *deadline = arg ? rg_timer_new(3600 * 1000000000LL) : NULL;

	ho.ping = rg_chan_make(sizeof(long), 0);
	ho.pong = rg_chan_make(sizeof(long), 0);
	rg_wg_add(&ho.wg, 2);
	rg_go(handoff_player, (void *)0);
	rg_go(handoff_player, (void *)1);
	rg_wg_wait(&ho.wg);
	ho.rc = rg_p_stats(0, &ho.st);
	rg_chan_free(ho.ping);
	rg_chan_free(ho.pong);
	rg_timer_free(deadline);
}

static void handoff_check(struct __test_metadata *_metadata, bool with_timer)
{
	memset(&ho, 0, sizeof(ho));
	rg_maxprocs(1);
	ASSERT_EQ(0, rg_run(handoff_main, with_timer ? &ho : NULL));
	ASSERT_EQ(0, ho.rc);
	EXPECT_EQ(0, atomic_load(&ho.wrong_value));
	EXPECT_EQ(0, atomic_load(&ho.wrong_errno));
	EXPECT_EQ(0, atomic_load(&ho.wrong_mxcsr));
	EXPECT_EQ(0, atomic_load(&ho.wrong_fcw));
	/* Two parks per round trip; all but those near a slice's end or a fairness
	 * tick (1 in 61 goroutine starts through the scheduler) switch directly. */
	EXPECT_GE(ho.st.handoffs, (uint64_t)HANDOFF_ITER * 2 * 9 / 10);
	EXPECT_LE(ho.st.handoffs, ho.st.runs);
	TH_LOG("%llu of %llu goroutine starts were direct hand-offs%s",
	       (unsigned long long)ho.st.handoffs, (unsigned long long)ho.st.runs,
	       with_timer ? " (a timer pending)" : "");
}

TEST(channel_handoff_switches_directly_and_keeps_state)
{
	handoff_check(_metadata, false);
}

TEST(channel_handoff_switches_directly_with_a_timer_pending)
{
	handoff_check(_metadata, true);
}

/*
 * rg_yield on one P switches straight into the global queue's head, and the
 * heir queues the yielder and releases the scheduler lock before it runs on.
 * Two goroutines pass a turn by yielding (GoschedPingPong): each yield must
 * land on the other player, with errno and the rounding modes each player's
 * own. A heir that kept the lock would hang the next yield; a yielder queued
 * before its registers were saved could be run twice at once.
 */
#define YIELD_ITER (RT_TSAN ? 2000 : 20000)

static struct {
	_Atomic int turn;
	atomic_long waits; /* yields that found the turn still the other's */
	atomic_long wrong_errno, wrong_mxcsr, wrong_fcw;
	struct rg_pstats st;
	int rc;
	rg_wg wg;
} yh;

static void yield_player(void *arg)
{
	int me = (int)(uintptr_t)arg;
	struct player_state st = player_set(me, 8000 + me);

	for (long i = 0; i < YIELD_ITER; i++) {
		while (atomic_load(&yh.turn) != me) {
			atomic_fetch_add(&yh.waits, 1);
			rg_yield();
		}
		atomic_store(&yh.turn, 1 - me);
		rg_yield();
		player_check(&st, &yh.wrong_errno, &yh.wrong_mxcsr, &yh.wrong_fcw);
	}
	player_reset();
	rg_wg_done(&yh.wg);
}

static void yield_main(void *arg)
{
	(void)arg;
	rg_wg_add(&yh.wg, 2);
	rg_go(yield_player, (void *)0);
	rg_go(yield_player, (void *)1);
	rg_wg_wait(&yh.wg);
	yh.rc = rg_p_stats(0, &yh.st);
}

TEST(yield_switches_into_the_global_queue_head)
{
	memset(&yh, 0, sizeof(yh));
	rg_maxprocs(1);
	ASSERT_EQ(0, rg_run(yield_main, NULL));
	ASSERT_EQ(0, yh.rc);
	EXPECT_EQ(0, atomic_load(&yh.wrong_errno));
	EXPECT_EQ(0, atomic_load(&yh.wrong_mxcsr));
	EXPECT_EQ(0, atomic_load(&yh.wrong_fcw));
	/* Player 1 may start first and wait (twice when its yield meets the fairness
	 * tick, which takes the global queue first); after that each yield is a turn. */
	EXPECT_LE(atomic_load(&yh.waits), 2);
	/* One yield per turn; all but a few (the start, the last turns, a
	 * fairness tick's trip through findrunnable) switch directly. */
	EXPECT_GE(yh.st.handoffs, (uint64_t)YIELD_ITER * 2 * 9 / 10);
	EXPECT_LE(yh.st.handoffs, yh.st.runs);
	TH_LOG("%llu of %llu goroutine starts were direct hand-offs, %ld waiting yields",
	       (unsigned long long)yh.st.handoffs, (unsigned long long)yh.st.runs,
	       atomic_load(&yh.waits));
}

/*
 * A goroutine that exits right after creating its successor (which waits in
 * runnext) switches straight into it: its stack and G are freed on the
 * successor's side. Each link starts with errno 0 although its creator
 * left errno set, and the chain ends with every link run once.
 */
#define EXIT_CHAIN (RT_TSAN ? 2000 : 20000)

static struct {
	long ran, bad_errno;
	struct rg_pstats st;
	int rc;
	rg_chan *done;
} ec;

static void exit_link(void *arg)
{
	uintptr_t left = (uintptr_t)arg;

	if (errno != 0)
		ec.bad_errno++;
	ec.ran++; /* one P: the links run one after the other */
	if (left == 0) {
		const bool t = true;
		rg_chan_send(ec.done, &t);
		return;
	}
	rg_go(exit_link, (void *)(left - 1));
	errno = 4321;
}

static void exit_main(void *arg)
{
	bool v;

	(void)arg;
	ec.done = rg_chan_make(sizeof(bool), 0);
	rg_go(exit_link, (void *)(uintptr_t)(EXIT_CHAIN - 1));
	rg_chan_recv(ec.done, &v);
	ec.rc = rg_p_stats(0, &ec.st);
	rg_chan_free(ec.done);
}

TEST(exiting_goroutine_switches_into_its_successor)
{
	rg_maxprocs(1);
	ASSERT_EQ(0, rg_run(exit_main, NULL));
	ASSERT_EQ(0, ec.rc);
	EXPECT_EQ(EXIT_CHAIN, ec.ran);
	EXPECT_EQ(0, ec.bad_errno);
	EXPECT_GE(ec.st.handoffs, (uint64_t)EXIT_CHAIN * 9 / 10);
	TH_LOG("%llu of %llu goroutine starts were direct hand-offs",
	       (unsigned long long)ec.st.handoffs, (unsigned long long)ec.st.runs);
}

TEST_HARNESS_MAIN
