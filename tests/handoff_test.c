// SPDX-License-Identifier: BSD-2-Clause
/*
 * Kernel-fed P handoff (runtime/kblock.c, bpf/mblock.bpf.c): with one P,
 * a goroutine blocked in a read() that ringo does not know of must not keep
 * the goroutines queued on that P waiting. The pipe's writer is a plain
 * thread that writes only once the other goroutine has run (or at a
 * deadline, which fails the test). Time slices are made long, so that
 * sysmon's other remedy (lending a P after refused preemptions, two slices
 * at least) cannot rescue the queued goroutine within the deadline: only
 * the BPF program can. Without root or BPF the first test skips. A sleep
 * on a runtime lock is the exception: like Go, ringo lends no P for it.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "kblock.h"
#include "rg_test.h"

#define LOAD_DEADLINE_NS (20 * 1000000000LL) /* the verifier, on a loaded machine */
#define HANDOFF_DEADLINE_NS (2 * 1000000000LL)
#define OFF_DEADLINE_NS (300 * 1000000LL)

static struct {
	int pfd[2];
	int64_t deadline_ns;
	_Atomic int64_t before_read; /* when the goroutine called read() */
	_Atomic int64_t ran;	     /* when the queued goroutine ran */
	_Atomic int64_t written;     /* when the writer wrote */
	pid_t reader_tid;	     /* the blocked M's thread */
	int64_t age;		     /* its block's age when the queued goroutine ran */
	_Atomic bool by_deadline;    /* the writer gave up waiting */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum rg_kblock_state state;
	const char *why;
	ssize_t nread;
	struct rg_kblock_stats stats;
	struct rg_lock lk; /* a runtime lock a plain thread holds */
	bool held;	   /* [mu] */
	bool waiting;	   /* [mu] the writer waits for the queued goroutine */
} h;

static void reset(int64_t deadline_ns)
{
	pthread_condattr_t ca;

	memset(&h, 0, sizeof(h));
	pthread_mutex_init(&h.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* as rt_now_ns */
	pthread_cond_init(&h.cv, &ca);
	pthread_condattr_destroy(&ca);
	h.deadline_ns = deadline_ns;
	h.pfd[0] = h.pfd[1] = -1;
}

/* A plain thread's wait until the queued goroutine ran, or the deadline (by_deadline then). */
static void await_queued(int64_t until)
{
	struct timespec ts = {.tv_sec = until / 1000000000LL, .tv_nsec = until % 1000000000LL};

	pthread_mutex_lock(&h.mu);
	h.waiting = true;
	pthread_cond_broadcast(&h.cv);
	while (!atomic_load(&h.ran)) {
		if (pthread_cond_timedwait(&h.cv, &h.mu, &ts) == ETIMEDOUT) {
			atomic_store(&h.by_deadline, !atomic_load(&h.ran));
			break;
		}
	}
	pthread_mutex_unlock(&h.mu);
	atomic_store(&h.written, (int64_t)rt_now_ns());
}

/* The test's side of the pipe: write once the queued goroutine ran, or at the deadline. */
static void *writer(void *arg)
{
	await_queued((int64_t)rt_now_ns() + h.deadline_ns);
	if (write(h.pfd[1], "x", 1) != 1)
		atomic_store(&h.by_deadline, true);
	return NULL;
}

static void queued(void *arg)
{
	int64_t now = (int64_t)rt_now_ns();

	h.age = now - rg_kblock_last_block(h.reader_tid); /* its M is still blocked */
	pthread_mutex_lock(&h.mu);
	atomic_store(&h.ran, now);
	pthread_cond_signal(&h.cv);
	pthread_mutex_unlock(&h.mu);
}

/* Block in a plain read(): no rg_syscall_enter, so the runtime does not know. */
static void block_with_queued_goroutine(void)
{
	pthread_t w;
	char c;

	h.waiting = false;
	if (pipe(h.pfd) || pthread_create(&w, NULL, writer, NULL)) {
		h.nread = -2;
		return;
	}
	/* The writer's start (a clone, its first run) is over before the block. */
	pthread_mutex_lock(&h.mu);
	while (!h.waiting)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	h.reader_tid = gettid();
	rg_go(queued, NULL); /* runnext of our only P */
	atomic_store(&h.before_read, (int64_t)rt_now_ns());
	do
		h.nread = read(h.pfd[0], &c, 1);
	while (h.nread < 0 && errno == EINTR);
	pthread_join(w, NULL);
	close(h.pfd[0]);
	close(h.pfd[1]);
}

/* Wait for the program and for sysmon to watch our M; false (h.state says why) if not. */
static bool await_tracking(void)
{
	int64_t until = (int64_t)rt_now_ns() + LOAD_DEADLINE_NS;

	while (rg_kblock_state() == RG_KBLOCK_LOADING && (int64_t)rt_now_ns() < until)
		rg_sleep(1000000);
	h.state = rg_kblock_state();
	h.why = rg_kblock_why();
	if (h.state != RG_KBLOCK_ON)
		return false;
	/* sysmon registers our M at its next look; no park from then to the read. */
	while (!rg_kblock_tracked(gettid()) && (int64_t)rt_now_ns() < until)
		rg_sleep(1000000);
	if (!rg_kblock_tracked(gettid())) {
		h.state = RG_KBLOCK_OFF;
		h.why = "sysmon never registered the M";
	}
	return h.state == RG_KBLOCK_ON;
}

static void on_main(void *arg)
{
	if (!await_tracking())
		return;
	block_with_queued_goroutine();
	rg_kblock_get_stats(&h.stats);
}

/*
 * One P, slices too long for sysmon's other remedy, the program allowed
 * (RINGO_BPF=bpf, NULL for the default): rg_run's result. The harness runs
 * each test in a process of its own, which loads the program afresh.
 */
static int run_one_p_bpf(void (*main_fn)(void *), int64_t deadline_ns, const char *bpf)
{
	rg_maxprocs(1);
	setenv("RINGO_TIMESLICE", "5s", 1);
	if (bpf)
		setenv("RINGO_BPF", bpf, 1);
	else
		unsetenv("RINGO_BPF");
	reset(deadline_ns);
	return rg_run(main_fn, NULL);
}

static int run_one_p(void (*main_fn)(void *), int64_t deadline_ns)
{
	return run_one_p_bpf(main_fn, deadline_ns, NULL);
}

/* The queued goroutine ran while the reader was blocked, on a lent P. */
static void check_handed_off(struct __test_metadata *_metadata)
{
	ASSERT_EQ(1, h.nread);
	int64_t lat = atomic_load(&h.ran) - atomic_load(&h.before_read);
	TH_LOG("queued goroutine ran %lld us after the read() began; lends %llu, records %llu; "
	       "blocks seen at %s",
	       (long long)lat / 1000, (unsigned long long)h.stats.lends,
	       (unsigned long long)h.stats.events,
	       h.stats.at_entry ? "schedule()'s entry" : "the switch");
	ASSERT_FALSE(atomic_load(&h.by_deadline))
	TH_LOG("the queued goroutine did not run within %lld ms of the block",
	       (long long)HANDOFF_DEADLINE_NS / 1000000);
	/* It ran while the reader was blocked: before the writer wrote. */
	ASSERT_NE(0, atomic_load(&h.ran));
	ASSERT_LE(atomic_load(&h.ran), atomic_load(&h.written));
	/* sysmon counts a lend before it wakes the lent P's M. */
	ASSERT_GE(h.stats.lends, 1);
}

/* Does vmlinux's BTF name this (a whole string of its string section)? */
static bool vmlinux_btf_names(const char *name)
{
	FILE *f = fopen("/sys/kernel/btf/vmlinux", "r");
	size_t cap = 1 << 20, len = 0, n;
	char *buf = malloc(cap), key[128];
	bool found = false;

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return false;
	}
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		char *bigger = len == cap ? realloc(buf, cap *= 2) : buf;
		if (!bigger)
			break;
		buf = bigger;
	}
	fclose(f);
	int k = snprintf(key, sizeof(key), "%c%s%c", 0, name, 0);
	found = memmem(buf, len, key, (size_t)k) != NULL;
	free(buf);
	return found;
}

TEST(unannotated_read_does_not_stall_its_p)
{
	ASSERT_EQ(0, run_one_p(on_main, HANDOFF_DEADLINE_NS));
	if (h.state != RG_KBLOCK_ON)
		SKIP(return, "kernel-fed P handoff unavailable: %s", h.why);
	check_handed_off(_metadata);
	/* A kernel with schedule()'s entry tracepoints (6.16+) has blocks seen there. */
	if (vmlinux_btf_names("btf_trace_sched_entry_tp") &&
	    vmlinux_btf_names("btf_trace_sched_exit_tp"))
		ASSERT_TRUE(h.stats.at_entry);
}

/* Kernels before 6.16 (no sched_entry_tp) see a block at the switch only: the same lend. */
TEST(unannotated_read_seen_at_the_switch_only)
{
	ASSERT_EQ(0, run_one_p_bpf(on_main, HANDOFF_DEADLINE_NS, "switch"));
	if (h.state != RG_KBLOCK_ON)
		SKIP(return, "kernel-fed P handoff unavailable: %s", h.why);
	ASSERT_FALSE(h.stats.at_entry);
	check_handed_off(_metadata);
}

/*
 * sysmon lends ahead of a block's age (the lent P's M takes as long to
 * wake), and that M waits out the rest: the queued goroutine never runs
 * while the block is younger than RG_KBLOCK_MIN_NS.
 */
#define AGE_TRIALS 20
#define AGE_MAX_TRIALS 200 /* more, until one lend came ahead of the age */

static struct {
	int64_t age[AGE_MAX_TRIALS];
	int n;
} ages;

/* No P lent for the previous trial is left (one still lent would take the next goroutine). */
static bool no_loan_left(void)
{
	struct rg_sched *s = rg_getm()->sched;
	int32_t g = atomic_load(&s->gomaxprocs), n = atomic_load(&s->nallp);

	for (int32_t i = g; i < n; i++)
		if (atomic_load(&s->allp[i]->status) != P_DEAD)
			return false;
	return true;
}

static void age_main(void *arg)
{
	if (!await_tracking())
		return;
	ages.n = 0;
	while (ages.n < AGE_MAX_TRIALS && (ages.n < AGE_TRIALS || !h.stats.early)) {
		for (int64_t until = (int64_t)rt_now_ns() + HANDOFF_DEADLINE_NS;
		     !no_loan_left() && (int64_t)rt_now_ns() < until;)
			rg_sleep(100000);
		atomic_store(&h.ran, 0);
		atomic_store(&h.by_deadline, false);
		block_with_queued_goroutine();
		if (h.nread != 1 || atomic_load(&h.by_deadline))
			return;
		ages.age[ages.n++] = h.age;
		rg_kblock_get_stats(&h.stats);
	}
}

TEST(lent_p_waits_for_the_block_to_come_of_age)
{
	int64_t min = INT64_MAX;
	cpu_set_t one;

	/*
	 * Every thread on one CPU, so that a lend ahead of the age is the rule:
	 * sysmon then wakes on the CPU the block leaves idle. On a VM, waking
	 * it on another, halted vCPU costs 15 us or more, which can use up the
	 * lead in every trial of a process (bpftrace, 2026-11-28).
	 */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	ASSERT_EQ(0, run_one_p(age_main, HANDOFF_DEADLINE_NS));
	if (h.state != RG_KBLOCK_ON)
		SKIP(return, "kernel-fed P handoff unavailable: %s", h.why);
	ASSERT_FALSE(atomic_load(&h.by_deadline))
	TH_LOG("trial %d: the queued goroutine did not run within %lld ms of the block", ages.n,
	       (long long)HANDOFF_DEADLINE_NS / 1000000);
	ASSERT_GE(ages.n, AGE_TRIALS);
	for (int i = 0; i < ages.n; i++) {
		EXPECT_GE(ages.age[i], RG_KBLOCK_MIN_NS)
		TH_LOG("trial %d: ran when the block was %lld ns old", i, (long long)ages.age[i]);
		if (ages.age[i] < min)
			min = ages.age[i];
	}
	TH_LOG("%d trials; youngest block lent for: %lld ns; lends %llu, %llu ahead of the age, "
	       "%llu given back",
	       ages.n, (long long)min, (unsigned long long)h.stats.lends,
	       (unsigned long long)h.stats.early, (unsigned long long)h.stats.withdrawn);
	/* Without a lend ahead of the age, the M's wait was never put to the test. */
	EXPECT_GE(h.stats.early, 1);
}

/* Hold h.lk until the queued goroutine has run (the failure) or the deadline. */
static void *lock_holder(void *arg)
{
	int64_t until = (int64_t)rt_now_ns() + h.deadline_ns;

	rg_lock(&h.lk);
	pthread_mutex_lock(&h.mu);
	h.held = true;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.mu);
	await_queued(until);
	rg_unlock(&h.lk);
	return NULL;
}

static void lock_main(void *arg)
{
	pthread_t t;

	if (!await_tracking())
		return;
	if (pthread_create(&t, NULL, lock_holder, NULL)) {
		h.nread = -2;
		return;
	}
	pthread_mutex_lock(&h.mu); /* nothing is queued yet: a block with no work waiting */
	while (!h.held)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	rg_go(queued, NULL); /* runnext of our only P */
	rg_preempt_disable();
	rg_lock(&h.lk); /* spins a little, then sleeps on the lock's futex */
	rg_unlock(&h.lk);
	rg_preempt_enable();
	/* Before anything else blocks with the goroutine queued (the join would). */
	rg_kblock_get_stats(&h.stats);
	h.nread = 1;
	for (int64_t until = (int64_t)rt_now_ns() + LOAD_DEADLINE_NS;
	     !atomic_load(&h.ran) && (int64_t)rt_now_ns() < until;)
		rg_yield();
	pthread_join(t, NULL);
}

/* A sleep on a runtime lock is not a block to lend for: its holder lets go soon. */
TEST(runtime_lock_sleep_lends_no_p)
{
	ASSERT_EQ(0, run_one_p(lock_main, OFF_DEADLINE_NS));
	if (h.state != RG_KBLOCK_ON)
		SKIP(return, "kernel-fed P handoff unavailable: %s", h.why);
	ASSERT_EQ(1, h.nread);
	TH_LOG("lends %llu, records %llu", (unsigned long long)h.stats.lends,
	       (unsigned long long)h.stats.events);
	/* The P stayed with the lock's waiter until the holder let go. */
	ASSERT_TRUE(atomic_load(&h.by_deadline));
	ASSERT_GE(atomic_load(&h.ran), atomic_load(&h.written));
	ASSERT_EQ(0, h.stats.lends);
}

static void off_main(void *arg)
{
	for (int64_t until = (int64_t)rt_now_ns() + LOAD_DEADLINE_NS;
	     rg_kblock_state() == RG_KBLOCK_LOADING && (int64_t)rt_now_ns() < until;)
		rg_sleep(1000000);
	h.state = rg_kblock_state();
	h.why = rg_kblock_why();
	block_with_queued_goroutine();
	rg_kblock_get_stats(&h.stats);
	/* Let the queued goroutine run before rg_run ends. */
	for (int64_t until = (int64_t)rt_now_ns() + LOAD_DEADLINE_NS;
	     !atomic_load(&h.ran) && (int64_t)rt_now_ns() < until;)
		rg_sleep(1000000);
}

/* RINGO_BPF=0: nothing loads, and the queued goroutine waits for the read. */
TEST(ringo_bpf_0_keeps_it_off)
{
	rg_maxprocs(1);
	setenv("RINGO_TIMESLICE", "5s", 1);
	setenv("RINGO_BPF", "0", 1);
	reset(OFF_DEADLINE_NS);
	ASSERT_EQ(0, rg_run(off_main, NULL));
	unsetenv("RINGO_BPF");
	ASSERT_EQ(RG_KBLOCK_OFF, h.state);
	ASSERT_EQ(RG_KBLOCK_OFF, rg_kblock_state());
	EXPECT_TRUE(strstr(h.why, "RINGO_BPF=0") || strstr(h.why, "without BPF"))
	TH_LOG("why: %s", h.why);
	ASSERT_EQ(1, h.nread);
	ASSERT_EQ(0, h.stats.lends);
	/* The only P stayed with the blocked goroutine until the write. */
	ASSERT_TRUE(atomic_load(&h.by_deadline));
	ASSERT_GE(atomic_load(&h.ran), atomic_load(&h.written));
}

TEST_HARNESS_MAIN
