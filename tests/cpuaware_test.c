// SPDX-License-Identifier: BSD-2-Clause
/*
 * CPU-aware wake-ups (runtime/sched.c, rg_wakep_local; bpf/mblock.bpf.c
 * keeps the per-CPU facts): with every CPU busy, goroutines queued on a P
 * whose M cycles through them wake no M for another P. Two Ps; the main
 * goroutine's M is pinned to CPU 0 and a plain "hog" thread spins on each
 * other CPU (up to 64 CPUs), so no CPU is idle. Without BPF, root or two CPUs the tests skip. Time
 * slices are long, so that no preemption moves the goroutines meanwhile.
 * And I/O that completes while the only running goroutine runs on, the
 * other M having left, is collected by sysmon well before Go's 10 ms.
 * (The other half, an M leaving a contended CPU, is measured by HTTP at two
 * Ps; chan_test's ping-pong with a busy-polling main checks that it still
 * steals from a P whose goroutine runs on.)
 */
#include <sys/socket.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "kblock.h"
#include "poller.h"
#include "rg_test.h"

#define LOAD_DEADLINE_NS (20 * 1000000000LL) /* the verifier, on a loaded machine */
#define SETTLE_DEADLINE_NS (2 * 1000000000LL)
#define HOLD_NS (50 * 1000000LL) /* how long main cycles */
#define BATCH 4			 /* goroutines queued per round */
#define MAX_HOGS 63		 /* other CPUs covered */

static struct {
	const char *skip; /* why the test cannot run here */
	pid_t main_tid;
	_Atomic int hog_stop;
	_Atomic int hog_running;
	_Atomic int ran;	     /* queued goroutines that ran */
	_Atomic int ran_elsewhere;   /* ... on another thread than main's */
	_Atomic int ran_during_hold; /* ... while main was cycling */
	_Atomic int holding;
	int spawned;
	rg_wg wg;
	uint64_t mstarts; /* Ms the runtime started during the hold, for idle Ps */
	uint64_t lends;	  /* ... and for Ps the kernel-fed handoff lent */
	/* leaving_m_strands_no_io */
	int sv[2];
	_Atomic int reader_done;
	pid_t reader_tid;
	ssize_t reader_res;
	int64_t reader_late_ns; /* from the write to the reader running */
	int64_t wrote_at;
	uint64_t unwatched_polls;
} t;

static bool pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) == 0;
}

static void *hog(void *arg)
{
	if (!pin_self((int)(intptr_t)arg))
		return NULL;
	atomic_fetch_add(&t.hog_running, 1);
	while (!atomic_load(&t.hog_stop))
		;
	return NULL;
}

static void queued(void *arg)
{
	if (gettid() != t.main_tid)
		atomic_fetch_add(&t.ran_elsewhere, 1);
	if (atomic_load(&t.holding))
		atomic_fetch_add(&t.ran_during_hold, 1);
	atomic_fetch_add(&t.ran, 1);
	rg_wg_done(&t.wg);
}

/* The program loaded and watching, two CPUs; NULL or why not. */
static const char *await_program(void)
{
	int64_t until = (int64_t)rt_now_ns() + LOAD_DEADLINE_NS;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return "needs two CPUs";
	while (rg_kblock_state() == RG_KBLOCK_LOADING && (int64_t)rt_now_ns() < until)
		rg_sleep(1000000);
	if (rg_kblock_state() != RG_KBLOCK_ON)
		return rg_kblock_why();
	return NULL;
}

/* Until the program has seen every CPU busy (ours and the hogs'), or the deadline. */
static bool await_no_idle_cpu(void)
{
	int64_t until = (int64_t)rt_now_ns() + SETTLE_DEADLINE_NS;

	while (rg_kblock_cpu_idle() && (int64_t)rt_now_ns() < until)
		;
	return !rg_kblock_cpu_idle();
}

/*
 * For HOLD_NS, cycle through goroutines on our P as a server's M does: queue
 * a batch and wait for it (parked: the global queue stays empty), again.
 */
static void cycle(void)
{
	struct rg_sched *s = rg_getm()->sched;
	uint64_t m0 = atomic_load(&s->mstarts);
	struct rg_kblock_stats k0, k1;
	int spawned = 0;

	rg_kblock_get_stats(&k0);

	atomic_store(&t.holding, 1);
	for (uint64_t end = rt_now_ns() + HOLD_NS; rt_now_ns() < end;) {
		rg_wg_add(&t.wg, BATCH);
		for (int i = 0; i < BATCH; i++)
			rg_go(queued, NULL);
		spawned += BATCH;
		rg_wg_wait(&t.wg);
	}
	atomic_store(&t.holding, 0);
	/* Not the kernel-fed handoff's: main's M may block (on mmap_lock, under ASan). */
	rg_kblock_get_stats(&k1);
	t.mstarts = atomic_load(&s->mstarts) - m0 - (k1.lends - k0.lends);
	t.lends = k1.lends - k0.lends;
	t.spawned = spawned;
}

static void reader(void *arg)
{
	char c;

	(void)arg;
	t.reader_res = rg_recv(t.sv[0], &c, 1, 0);
	t.reader_late_ns = (int64_t)rt_now_ns() - t.wrote_at;
	t.reader_tid = gettid();
	atomic_store(&t.reader_done, 1);
}

/*
 * A goroutine parks on a receive; main, the only goroutine left, runs on
 * without calls (as a 10 ms request does) after the data is sent. The idle
 * P's M is parked off the ring, so only sysmon can see the completion.
 */
static void run_on_past_io(void)
{
	struct rg_sched *s = rg_getm()->sched;
	struct rg_poller *pl = rg_poller_get(s);

	if (!pl || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t.sv)) {
		t.skip = "no poller or socketpair";
		return;
	}
	uint64_t u0 = atomic_load(&s->unwatched_polls);
	rg_go(reader, NULL);
	while (atomic_load(&pl->waiting) == 0)
		rg_yield();
	t.wrote_at = (int64_t)rt_now_ns();
	if (write(t.sv[1], "x", 1) != 1) {
		t.skip = "write failed";
		return;
	}
	for (int64_t end = t.wrote_at + 10 * 1000000000LL;
	     !atomic_load(&t.reader_done) && (int64_t)rt_now_ns() < end;)
		;
	t.unwatched_polls = atomic_load(&s->unwatched_polls) - u0;
	/* Should the deadline have passed, main yields until the reader has finished. */
	while (!atomic_load(&t.reader_done))
		rg_yield();
	close(t.sv[0]);
	close(t.sv[1]);
}

static void no_wake_main(void *arg)
{
	pthread_t h[MAX_HOGS];

	if ((t.skip = await_program()))
		return;
	if (!pin_self(0)) {
		t.skip = "sched_setaffinity failed";
		return;
	}
	t.main_tid = gettid();
	/* A hog on every other CPU. */
	int n = 0, ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	for (; n + 1 < ncpu && n < MAX_HOGS; n++)
		if (pthread_create(&h[n], NULL, hog, (void *)(intptr_t)(n + 1)))
			break;
	if (n + 1 < ncpu)
		t.skip = "not a hog for every other CPU";
	while (!t.skip && atomic_load(&t.hog_running) < n)
		;
	/* arg: the body (cycle by default); with RINGO_CPUAWARE=0 the program's view is not consulted. */
	bool off = getenv("RINGO_CPUAWARE") != NULL;
	if (!t.skip && (off || await_no_idle_cpu()))
		(arg ? (void (*)(void))arg : cycle)();
	else if (!t.skip)
		t.skip = "a CPU stayed idle beside the hogs";
	atomic_store(&t.hog_stop, 1);
	while (n--)
		pthread_join(h[n], NULL);
}

static void setup(const char *timeslice)
{
	memset(&t, 0, sizeof(t)); /* a zero rg_wg is ready */
	rg_maxprocs(2);
	setenv("RINGO_TIMESLICE", timeslice, 1);
	unsetenv("RINGO_BPF");
	unsetenv("RINGO_CPUAWARE");
}

static void report(struct __test_metadata *_metadata)
{
	TH_LOG("%d goroutines queued, %d ran, %d while main was cycling, %d on another thread; "
	       "%llu Ms started meanwhile for idle Ps (%llu for lent ones)",
	       t.spawned, atomic_load(&t.ran), atomic_load(&t.ran_during_hold),
	       atomic_load(&t.ran_elsewhere), (unsigned long long)t.mstarts,
	       (unsigned long long)t.lends);
}

/* Every CPU busy: goroutines queued on a P whose M cycles through them wake no M. */
TEST(busy_cpus_wake_no_m)
{
	setup("5s");
	ASSERT_EQ(0, rg_run(no_wake_main, NULL));
	if (t.skip)
		SKIP(return, "%s", t.skip);
	report(_metadata);
	ASSERT_GT(t.spawned, 0);
	ASSERT_EQ(t.spawned, atomic_load(&t.ran));
	/*
	 * An M woken for the idle P would take a CPU from main or a hog: with
	 * the rule none is, nearly always; without it thousands are (8-10k
	 * with the idle rule removed, hundreds with RINGO_CPUAWARE=0). About
	 * one run in ten (more under ASan, and in CI) starts one M, whose
	 * cause is not known yet (main's M had not blocked: kblock's record);
	 * that M then shares the goroutines. Bounded here, not hidden.
	 */
	ASSERT_LE(t.mstarts, 1);
	if (t.mstarts == 0)
		ASSERT_EQ(0, atomic_load(&t.ran_elsewhere));
}

/* RINGO_CPUAWARE=0: Go's rule, an idle P gets an M whenever work is queued. */
TEST(cpuaware_0_wakes_as_go_does)
{
	setup("5s");
	setenv("RINGO_CPUAWARE", "0", 1);
	ASSERT_EQ(0, rg_run(no_wake_main, NULL));
	unsetenv("RINGO_CPUAWARE");
	if (t.skip)
		SKIP(return, "%s", t.skip);
	report(_metadata);
	ASSERT_EQ(t.spawned, atomic_load(&t.ran));
	ASSERT_GT(t.mstarts, 0);
	ASSERT_GT(atomic_load(&t.ran_elsewhere), 0);
}

/*
 * A receive completes while main, the only runnable goroutine, runs on
 * without calls, and the idle P's M is parked off the ring (every CPU busy:
 * nobody woke it). sysmon sees that the running P has not switched
 * goroutines for a millisecond and collects the completion for an M on the
 * idle P (sysmon.c, poll_unwatched), rather than after Go's 10 ms.
 */
TEST(leaving_m_strands_no_io)
{
	setup("5s");
	ASSERT_EQ(0, rg_run(no_wake_main, (void *)run_on_past_io));
	if (t.skip)
		SKIP(return, "%s", t.skip);
	TH_LOG("the reader ran %.2f ms after the write, on %s thread; %llu unwatched polls",
	       t.reader_late_ns / 1e6, t.reader_tid == t.main_tid ? "main's" : "another",
	       (unsigned long long)t.unwatched_polls);
	ASSERT_EQ(1, t.reader_res);
	/* Collected while main ran on: on the idle P's M, by sysmon's watch. */
	ASSERT_NE(t.main_tid, t.reader_tid);
	ASSERT_GE(t.unwatched_polls, 1);
}

TEST_HARNESS_MAIN
