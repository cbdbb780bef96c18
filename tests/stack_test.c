// SPDX-License-Identifier: BSD-2-Clause
/*
 * Goroutine stacks and memory: a million parked goroutines and their RSS,
 * stack overflow as a clean fatal error, RINGO_STACK_SIZE, and -ENOMEM from
 * rg_go when the address space runs out.
 */
#include <sys/resource.h>

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

/*
 * Every parked goroutine owns at least one fresh stack page, and a first touch
 * of a page costs 20-50 us in the test VM (nested paging), so a million parked
 * goroutines take 30-60 s here whatever the runtime does. One test parks a
 * million (a quarter under ASan); the mutex variant parks 200,000 (100,000)
 * to keep the suite's time in check.
 */
static struct {
	long n;
	bool use_mutex;
	rg_wg started, gate, fin;
	rg_mutex m;
	long passed; /* plain in the mutex variant: guarded by m */
	atomic_long passed_wg;
	int go_err;
	long go_err_at;
	long live;
	long rss_before, rss_parked;
	uint64_t spawn_ns, release_ns;
} pk;

static void park_on_wg(void *arg)
{
	rg_wg_done(&pk.started);
	rg_wg_wait(&pk.gate);
	atomic_fetch_add_explicit(&pk.passed_wg, 1, memory_order_relaxed);
	rg_wg_done(&pk.fin);
}

static void park_on_mutex(void *arg)
{
	rg_wg_done(&pk.started);
	rg_mutex_lock(&pk.m);
	pk.passed++;
	rg_mutex_unlock(&pk.m);
	rg_wg_done(&pk.fin);
}

static void park_main(void *arg)
{
	uint64_t t0;

	pk.rss_before = rt_rss_bytes();
	rg_wg_add(&pk.started, (int)pk.n);
	rg_wg_add(&pk.fin, (int)pk.n);
	rg_wg_add(&pk.gate, 1);
	if (pk.use_mutex)
		rg_mutex_lock(&pk.m);
	t0 = rt_now_ns();
	for (long i = 0; i < pk.n; i++) {
		int rc = rg_go(pk.use_mutex ? park_on_mutex : park_on_wg, NULL);

		if (rc) {
			pk.go_err = rc;
			pk.go_err_at = i;
			/* Balance the counters so the ones already started can finish. */
			rg_wg_add(&pk.started, -(int)(pk.n - i));
			rg_wg_add(&pk.fin, -(int)(pk.n - i));
			break;
		}
	}
	rg_wg_wait(&pk.started);
	pk.spawn_ns = rt_now_ns() - t0;
	/* All exist at once now: each is parked or about to park on the gate. */
	pk.live = rg_num_goroutines();
	pk.rss_parked = rt_rss_bytes();

	t0 = rt_now_ns();
	if (pk.use_mutex)
		rg_mutex_unlock(&pk.m);
	else
		rg_wg_done(&pk.gate);
	rg_wg_wait(&pk.fin);
	pk.release_ns = rt_now_ns() - t0;
}

static void check_park(struct __test_metadata *_metadata, long n, bool use_mutex)
{
	double per_g;

	if (RT_TSAN)
		SKIP(return, "TSan supports only a few thousand live goroutines (fibers)");
	pk.n = n;
	pk.use_mutex = use_mutex;
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(park_main, NULL));
	ASSERT_EQ(0, pk.go_err)
		TH_LOG("rg_go failed (%d) with %ld goroutines parked", pk.go_err, pk.go_err_at);
	EXPECT_EQ(n + 1, pk.live);
	EXPECT_EQ(n, use_mutex ? pk.passed : atomic_load(&pk.passed_wg));
	ASSERT_GT(pk.rss_before, 0);
	ASSERT_GT(pk.rss_parked, 0);
	per_g = (double)(pk.rss_parked - pk.rss_before) / (double)n;
	TH_LOG("%ld parked on %s: RSS %.1f MiB -> %.1f MiB, %.0f bytes per goroutine; "
	       "spawn+park %.0f ns each, release %.0f ns each",
	       n, use_mutex ? "an rg_mutex" : "an rg_wg", pk.rss_before / 1048576.0,
	       pk.rss_parked / 1048576.0, per_g, (double)pk.spawn_ns / (double)n,
	       (double)pk.release_ns / (double)n);
	/* Stacks are committed lazily: a parked goroutine uses a few pages, not 64 KiB. */
	if (!RT_ASAN)
		EXPECT_LT(per_g, 32 * 1024.0);
}

/* ASan doubles the pages per goroutine (shadow), and looks for bugs, not scale. */
TEST_F_TIMEOUT(heavy, park_1m_on_wg, 300)
{
	check_park(_metadata, RT_ASAN ? 250000 : 1000000, false);
}

TEST_F_TIMEOUT(heavy, park_many_on_mutex, 120)
{
	check_park(_metadata, RT_ASAN ? 100000 : 200000, true);
}

/* ------------------------------------------------------------------------ */

/* A goroutine can use most of its stack: a 32 KiB frame fits in the default 64 KiB. */
static struct {
	unsigned sum;
	rg_wg wg;
} big;

static __attribute__((noinline)) unsigned big_frame(void)
{
	volatile unsigned char buf[32 * 1024];
	unsigned sum = 0;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)i;
	for (size_t i = 0; i < sizeof(buf); i += 97)
		sum += buf[i];
	return sum;
}

static void big_goroutine(void *arg)
{
	big.sum = big_frame();
	rg_wg_done(&big.wg);
}

static void big_main(void *arg)
{
	rg_wg_add(&big.wg, 1);
	rg_go(big_goroutine, NULL);
	rg_wg_wait(&big.wg);
}

TEST(stack_32k_frame_fits)
{
	unsigned want = 0;

	unsetenv("RINGO_STACK_SIZE");
	for (size_t i = 0; i < 32 * 1024; i += 97)
		want += (unsigned char)i;
	ASSERT_EQ(0, rg_run(big_main, NULL));
	EXPECT_EQ(want, big.sum);
}

/* ------------------------------------------------------------------------ */

/* What the overflowing child reports back through shared memory. */
struct overflow_report {
	uint64_t goid;
	uintptr_t top;    /* address of the first frame's buffer */
	uintptr_t lowest; /* lowest frame buffer reached */
	unsigned long depth;
	const char *stack_size; /* RINGO_STACK_SIZE to set, or NULL to unset */
};

static struct overflow_report *ov;

static void recurse(unsigned long depth);
/* Called through a volatile pointer: no tail call, no infinite-recursion warning. */
static void (*volatile recurse_ptr)(unsigned long) = recurse;

static void recurse(unsigned long depth)
{
	volatile char pad[200];

	pad[0] = (char)depth;
	if (depth == 0)
		ov->top = (uintptr_t)pad;
	ov->lowest = (uintptr_t)pad;
	ov->depth = depth;
	recurse_ptr(depth + 1);
	pad[1] = pad[0];
}

static void overflow_goroutine(void *arg)
{
	ov->goid = rg_goid();
	recurse(0);
}

static void overflow_main(void *arg)
{
	rg_wg never = RG_WG_INIT;

	/* Not the main goroutine: its id is not the trivial 1. */
	rg_wg_add(&never, 1);
	rg_go(overflow_goroutine, NULL);
	rg_wg_wait(&never);
}

static void overflow_child(void *arg)
{
	int rc;

	if (ov->stack_size)
		setenv("RINGO_STACK_SIZE", ov->stack_size, 1);
	else
		unsetenv("RINGO_STACK_SIZE");
	rc = rg_run(overflow_main, NULL);
	fprintf(stderr, "test: rg_run returned %d\n", rc);
	_exit(3);
}

/* Overflow a goroutine's stack in a child; return the stack bytes it used. */
static long run_overflow(struct __test_metadata *_metadata, const char *stack_size)
{
	struct rt_child *c = malloc(sizeof(*c));
	char want[128], st[80];
	long used;

	ov = rt_shared(sizeof(*ov));
	if (!c || !ov) {
		free(c);
		return -1;
	}
	memset(ov, 0, sizeof(*ov));
	ov->stack_size = stack_size;
	if (rt_run_child(overflow_child, NULL, c)) {
		free(c);
		return -1;
	}
	snprintf(want, sizeof(want), "ringo: fatal: goroutine %llu stack overflow",
		 (unsigned long long)ov->goid);
	EXPECT_GT(ov->goid, 1u);
	EXPECT_TRUE(rt_child_aborted(c))
		TH_LOG("child %s; stderr:\n%s", rt_status_str(c->status, st, sizeof(st)), c->out);
	EXPECT_NE(NULL, strstr(c->out, want))
		TH_LOG("no \"%s\" in the child's stderr:\n%s", want, c->out);
	used = (long)(ov->top - ov->lowest);
	TH_LOG("RINGO_STACK_SIZE=%s: overflow at depth %lu after %ld bytes of stack",
	       stack_size ? stack_size : "(unset)", ov->depth, used);
	free(c);
	munmap(ov, sizeof(*ov));
	return used;
}

TEST(stack_overflow_is_fatal)
{
	long used = run_overflow(_metadata, NULL);

	/* Most of the default 64 KiB was usable, and nothing beyond it was touched. */
	EXPECT_GT(used, 32 * 1024);
	EXPECT_LE(used, (long)RG_STACK_SIZE_DEFAULT);
}

TEST(stack_size_from_env)
{
	long used = run_overflow(_metadata, "262144");

	EXPECT_GT(used, 200 * 1024);
	EXPECT_LE(used, 256 * 1024);
}

/* ------------------------------------------------------------------------ */

/* Reported by the ENOMEM child through shared memory. */
struct enomem_report {
	int rc_setrlimit, rc_run;
	int last_rc;     /* the error that ended spawning */
	long spawned;    /* goroutines started before it */
	long live_at_fail;
	long released;
	int rc_after;    /* rg_go once the others are gone */
	int after_ran;
	long limit_mib;
};

static struct enomem_report *er;

static struct {
	rg_wg gate, fin;
	atomic_long released;
} en;

/* Up to 128 GiB of 64 KiB stacks: far more than the limit allows. */
#define ENOMEM_MAX_TRIES (2L * 1024 * 1024)

static void en_blocker(void *arg)
{
	rg_wg_wait(&en.gate);
	atomic_fetch_add(&en.released, 1);
	rg_wg_done(&en.fin);
}

static void en_after(void *arg)
{
	er->after_ran = 1;
	rg_wg_done(&en.fin);
}

static void en_main(void *arg)
{
	long i;

	rg_wg_add(&en.gate, 1);
	for (i = 0; i < ENOMEM_MAX_TRIES; i++) {
		int rc;

		rg_wg_add(&en.fin, 1);
		rc = rg_go(en_blocker, NULL);
		if (rc) {
			rg_wg_add(&en.fin, -1);
			er->last_rc = rc;
			break;
		}
	}
	er->spawned = i;
	er->live_at_fail = rg_num_goroutines();
	rg_wg_done(&en.gate);
	rg_wg_wait(&en.fin);
	er->released = atomic_load(&en.released);

	/* Exited goroutines give their memory back for new ones. */
	rg_wg_add(&en.fin, 1);
	er->rc_after = rg_go(en_after, NULL);
	if (er->rc_after)
		rg_wg_done(&en.fin);
	rg_wg_wait(&en.fin);
}

static void enomem_child(void *arg)
{
	long vm = rt_vm_bytes();
	struct rlimit rl;

	/* Room for the runtime's threads and heap, not for a million stacks. */
	rl.rlim_cur = rl.rlim_max = (rlim_t)vm + 384ul * 1024 * 1024;
	er->limit_mib = (long)(rl.rlim_cur >> 20);
	er->rc_setrlimit = setrlimit(RLIMIT_AS, &rl) ? -errno : 0;
	if (er->rc_setrlimit)
		_exit(2);
	rg_maxprocs(2);
	er->rc_run = rg_run(en_main, NULL);
	_exit(0);
}

TEST_F_TIMEOUT(heavy, go_enomem_on_rlimit_as, 60)
{
	struct rt_child *c = malloc(sizeof(*c));
	char st[80];

	if (RT_SANITIZED)
		SKIP(free(c); return, "sanitizers reserve terabytes of shadow memory, RLIMIT_AS cannot apply");
	ASSERT_NE(NULL, c);
	er = rt_shared(sizeof(*er));
	ASSERT_NE(NULL, er);
	er->rc_run = 1;
	er->rc_after = 1;
	ASSERT_EQ(0, rt_run_child(enomem_child, NULL, c));
	EXPECT_TRUE(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)
		TH_LOG("child %s; stderr:\n%s", rt_status_str(c->status, st, sizeof(st)), c->out);
	ASSERT_EQ(0, er->rc_setrlimit);
	ASSERT_EQ(0, er->rc_run);
	EXPECT_EQ(-ENOMEM, er->last_rc) TH_LOG("no -ENOMEM after %ld goroutines", er->spawned);
	EXPECT_GT(er->spawned, 100);
	EXPECT_EQ(er->spawned + 1, er->live_at_fail);
	EXPECT_EQ(er->spawned, er->released);
	EXPECT_EQ(0, er->rc_after);
	EXPECT_EQ(1, er->after_ran);
	TH_LOG("RLIMIT_AS %ld MiB: -ENOMEM after %ld goroutines", er->limit_mib, er->spawned);
	munmap(er, sizeof(*er));
	free(c);
}

TEST_HARNESS_MAIN
