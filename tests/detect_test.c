// SPDX-License-Identifier: BSD-2-Clause
/*
 * The bug detectors: the deadlock detector (every goroutine blocked on a
 * channel, mutex, WaitGroup... is fatal, with a dump naming what each one
 * waits for, exit 2; blocked goroutines beside one that still runs, computes
 * or sits in a system call are not; RINGO_DEADLOCK=0 turns it off), the
 * SIGQUIT dump, and rg_leakcheck.
 *
 * The fatal cases run in a forked child whose stderr is captured. Readiness
 * is a byte on a pipe or a goroutine's state in the runtime, never a sleep.
 */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>

#include "rg_test.h"
#include "runtime.h"
#include "rg_await.h"
#include "symbolize.h"

FIXTURE(slow) {
	int unused;
};
FIXTURE_SETUP(slow)
{
}
FIXTURE_TEARDOWN(slow)
{
}

static const char deadlock_msg[] = "ringo: fatal: all goroutines are asleep - deadlock!\n";

#define AWAIT_NS (10ull * 1000000000ull)

/* GOMAXPROCS values to try: 1, 2, 4, 8; under TSan (a second per child to start) 2 and 8. */
#define FOR_PROCS(procs) for (int procs = RT_TSAN ? 2 : 1; procs <= 8; procs *= RT_TSAN ? 4 : 2)


static bool is_parked(gslot *slot)
{
	struct rg_g *g = atomic_load(slot);

	return g && atomic_load_explicit(&g->status, memory_order_acquire) == G_WAITING;
}

/* Do dumps name static functions here (libdw present)? Only then are names checked. */
static void probe_fn(void)
{
}

static bool dumps_name_static_functions(void)
{
	char buf[768];

	rg_symbolize((uintptr_t)probe_fn, buf, sizeof(buf));
	return strstr(buf, "probe_fn") != NULL;
}

/* How many goroutine headers ("\ngoroutine N [") the dump has. */
static int count_headers(const char *out)
{
	int n = 0;

	for (const char *p = out; (p = strstr(p, "\ngoroutine ")) != NULL; p++)
		n++;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Deadlock detector: every scenario ends with all goroutines asleep        */
/* ------------------------------------------------------------------------ */

/* A WaitGroup with a count nobody ever brings down. */
static void wait_forever(void)
{
	static rg_wg never;

	rg_wg_add(&never, 1);
	rg_wg_wait(&never);
}

static void dl_chan_recv(void *arg)
{
	rg_chan *c = rg_chan_make(sizeof(int), 0);
	int v;

	rg_chan_recv(c, &v); /* no sender exists */
}

static void dl_chan_send(void *arg)
{
	rg_chan *c = rg_chan_make(sizeof(int), 1);
	int v = 1;

	rg_chan_send(c, &v); /* buffered: this one fits */
	rg_chan_send(c, &v); /* and this one never will */
}

static rg_mutex dl_m;

static void dl_mutex_locker(void *arg)
{
	rg_mutex_lock(&dl_m);
}

static void dl_mutex(void *arg)
{
	rg_mutex_lock(&dl_m);
	rg_go(dl_mutex_locker, NULL);
	wait_forever();
}

static void dl_wg_waiter(void *arg)
{
	rg_wg_wait(arg);
}

static void dl_wg(void *arg)
{
	static rg_wg pending;

	rg_wg_add(&pending, 1); /* the goroutine that should call Done was never started */
	for (int i = 0; i < 3; i++)
		rg_go(dl_wg_waiter, &pending);
	rg_wg_wait(&pending);
}

static void dl_nil_recv(void *arg)
{
	rg_chan_recv(NULL, NULL);
}

static void dl_nil_send(void *arg)
{
	int v = 0;

	rg_chan_send(NULL, &v);
}

static void dl_empty_select(void *arg)
{
	rg_select(NULL, 0, false);
}

static void dl_select(void *arg)
{
	rg_chan *a = rg_chan_make(sizeof(int), 0), *b = rg_chan_make(0, 0);
	int v;
	rg_case cs[] = {RG_RECV(a, &v), RG_RECV(b, NULL)};

	rg_go(dl_nil_recv, NULL);
	rg_go(dl_nil_send, NULL);
	rg_go(dl_empty_select, NULL);
	rg_select(cs, 2, false);
}

/* The rest of sync, each parked on its own object. */
static struct {
	rg_rwmutex rw, rw2;
	rg_mutex cm;
	rg_cond c;
	rg_sem s;
	rg_chan *hold, *reading;
} mix;

static void dl_mix_reader(void *arg)
{
	rg_rwmutex_rlock(&mix.rw); /* main holds the write lock */
}

static void dl_mix_reader_holding(void *arg)
{
	rg_rwmutex_rlock(&mix.rw2);
	rg_chan_send(mix.reading, NULL);
	rg_chan_recv(mix.hold, NULL); /* keeps the read lock */
}

static void dl_mix_writer(void *arg)
{
	rg_rwmutex_lock(&mix.rw2); /* waits for the reader above */
}

static void dl_mix_cond(void *arg)
{
	rg_mutex_lock(&mix.cm);
	rg_cond_wait(&mix.c);
}

static void dl_mix_sem(void *arg)
{
	rg_sem_acquire(&mix.s, 3); /* main holds 2 of 4 */
}

static void dl_sync_mix(void *arg)
{
	mix.c = (rg_cond)RG_COND_INIT(&mix.cm);
	rg_sem_init(&mix.s, 4);
	mix.hold = rg_chan_make(0, 0);
	mix.reading = rg_chan_make(0, 0);
	rg_sem_acquire(&mix.s, 2);
	rg_rwmutex_lock(&mix.rw);
	rg_go(dl_mix_reader, NULL);
	rg_go(dl_mix_reader_holding, NULL);
	rg_chan_recv(mix.reading, NULL); /* the writer must come after the reader */
	rg_go(dl_mix_writer, NULL);
	rg_go(dl_mix_cond, NULL);
	rg_go(dl_mix_sem, NULL);
	rg_chan_recv(mix.hold, NULL);
}

/* Lock-order inversion: each holds one mutex and wants the other's. */
static rg_mutex abba_a, abba_b;
static rg_wg abba_both;

static void dl_abba_1(void *arg)
{
	rg_mutex_lock(&abba_a);
	rg_wg_done(&abba_both);
	rg_wg_wait(&abba_both); /* both hold their first lock now */
	rg_mutex_lock(&abba_b);
}

static void dl_abba_2(void *arg)
{
	rg_mutex_lock(&abba_b);
	rg_wg_done(&abba_both);
	rg_wg_wait(&abba_both);
	rg_mutex_lock(&abba_a);
}

static void dl_abba(void *arg)
{
	rg_wg_add(&abba_both, 2);
	rg_go(dl_abba_1, NULL);
	rg_go(dl_abba_2, NULL);
	wait_forever();
}

/*
 * Go's documented RWMutex trap: a reader takes the read lock again while a
 * writer waits. The writer waits for the first read lock to go, and the
 * second RLock waits behind the writer: writer preference, deadlocked.
 */
static rg_rwmutex rr_mu;
static rg_chan *rr_writer_waits;

static void dl_rr_writer(void *arg)
{
	rg_rwmutex_lock(&rr_mu);
}

static void dl_rr_reader(void *arg)
{
	rg_rwmutex_rlock(&rr_mu);
	rg_go(dl_rr_writer, NULL);
	/* Until the writer has announced itself (white-box: readers count below 0). */
	while (__atomic_load_n(&rr_mu.reader_count, __ATOMIC_ACQUIRE) >= 0)
		rg_yield();
	rg_rwmutex_rlock(&rr_mu); /* recursive read lock: parks behind the writer */
	rg_chan_send(rr_writer_waits, NULL);
}

static void dl_recursive_rlock(void *arg)
{
	rr_writer_waits = rg_chan_make(0, 0);
	rg_go(dl_rr_reader, NULL);
	rg_chan_recv(rr_writer_waits, NULL);
}

/*
 * Deadlock at the end of a busy run: a token goes round a ring of goroutines
 * many times, then every member waits for a token that never comes.
 */
#define BUSY_N 30 /* the whole dump must fit in rt_child's buffer */
#define BUSY_LAPS RT_TSAN_SCALE(100, 10)

static rg_chan *busy_ring[BUSY_N + 1];

static void dl_busy_member(void *arg)
{
	int i = (int)(intptr_t)arg;
	long tok;

	while (rg_chan_recv(busy_ring[i], &tok) == 1)
		rg_chan_send(busy_ring[i + 1], &tok);
}

static void dl_busy(void *arg)
{
	long tok = 0;

	for (int i = 0; i <= BUSY_N; i++)
		busy_ring[i] = rg_chan_make(sizeof(long), 0);
	for (int i = 0; i < BUSY_N; i++)
		rg_go(dl_busy_member, (void *)(intptr_t)i);
	for (int lap = 0; lap < BUSY_LAPS; lap++) {
		rg_chan_send(busy_ring[0], &tok);
		rg_chan_recv(busy_ring[BUSY_N], &tok);
		tok++;
	}
	rg_chan_recv(busy_ring[BUSY_N], &tok); /* one lap too many: nobody sends */
}

/*
 * Main parks at once while the other goroutine computes: no deadlock yet.
 * It comes when the computer takes main's value and parks for good too.
 */
static rg_chan *late_c, *late_never;

static void dl_late_blocker(void *arg)
{
	rt_spin_ns(100 * 1000 * 1000);
	rg_chan_recv(late_c, NULL);
	rg_chan_recv(late_never, NULL);
}

static void dl_late(void *arg)
{
	late_c = rg_chan_make(0, 0);
	late_never = rg_chan_make(0, 0);
	rg_go(dl_late_blocker, NULL);
	rg_chan_send(late_c, NULL);
	rg_chan_recv(late_never, NULL);
}

struct run_case {
	void (*main_fn)(void *);
	int procs;
	bool detect_off;   /* RINGO_DEADLOCK=0 */
	const char *debug; /* RINGO_DEBUG, if set */
};

static void run_child(void *arg)
{
	const struct run_case *rc = arg;
	int err;

	if (rc->detect_off)
		setenv("RINGO_DEADLOCK", "0", 1);
	else
		unsetenv("RINGO_DEADLOCK");
	if (rc->debug)
		setenv("RINGO_DEBUG", rc->debug, 1);
	else
		unsetenv("RINGO_DEBUG");
	rg_maxprocs(rc->procs);
	err = rg_run(rc->main_fn, NULL);
	if (err) {
		fprintf(stderr, "test: rg_run returned %d\n", err);
		_exit(3);
	}
}

struct dl_expect {
	const char *want[8]; /* substrings of the dump */
	const char *fns[8];  /* function names, checked where dumps can name them */
	int goroutines;	     /* headers in the dump */
};

static void expect_deadlock(struct __test_metadata *_metadata, void (*main_fn)(void *), int procs,
			    const struct dl_expect *e)
{
	struct run_case rc = {main_fn, procs, false, NULL};
	struct rt_child *c = malloc(sizeof(*c));
	char st[80];

	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, rt_run_child(run_child, &rc, c));
	EXPECT_TRUE(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 2)
		TH_LOG("GOMAXPROCS %d: child %s, stderr:\n%s", procs,
		       rt_status_str(c->status, st, sizeof(st)), c->out);
	EXPECT_EQ(0, strncmp(c->out, deadlock_msg, strlen(deadlock_msg)))
		TH_LOG("stderr does not start with the deadlock message:\n%s", c->out);
	for (int i = 0; i < 8 && e->want[i]; i++) {
		EXPECT_NE(NULL, strstr(c->out, e->want[i]))
			TH_LOG("no \"%s\" in the dump:\n%s", e->want[i], c->out);
	}
	if (dumps_name_static_functions()) {
		for (int i = 0; i < 8 && e->fns[i]; i++) {
			EXPECT_NE(NULL, strstr(c->out, e->fns[i]))
				TH_LOG("function %s not named in the dump:\n%s", e->fns[i], c->out);
		}
	}
	EXPECT_EQ(e->goroutines, count_headers(c->out)) TH_LOG("dump:\n%s", c->out);
	free(c);
}

TEST(deadlock_chan_receive)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [chan receive]:\n"}, {"dl_chan_recv"}, 1};

	FOR_PROCS(procs)
		expect_deadlock(_metadata, dl_chan_recv, procs, &e);
}

/*
 * As Go's startpanic under GODEBUG=scheddetail=1: the scheduler's detailed
 * lines come between the fatal line and the goroutine dump, read under the
 * scheduler lock the detector holds (had they tried to take it, they would
 * hang, or print that a lock stayed held).
 */
TEST(deadlock_with_scheddetail_prints_the_scheduler_first)
{
	struct run_case rc = {dl_chan_recv, 2, false, "scheddetail=1"};
	struct rt_child *c = malloc(sizeof(*c));
	char st[80];

	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, rt_run_child(run_child, &rc, c));
	EXPECT_TRUE(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 2)
		TH_LOG("child %s, stderr:\n%s", rt_status_str(c->status, st, sizeof(st)), c->out);
	EXPECT_EQ(0, strncmp(c->out, deadlock_msg, strlen(deadlock_msg)))
		TH_LOG("stderr does not start with the deadlock message:\n%s", c->out);
	const char *sched = strstr(c->out, "\nSCHED ");
	const char *dump = strstr(c->out, "\ngoroutine 1 [chan receive]:\n");
	EXPECT_TRUE(sched && dump && sched < dump)
		TH_LOG("no SCHED line before the dump:\n%s", c->out);
	static const char *const want[] = {"gomaxprocs=2 idleprocs=2 ", " runqueue=0 gcwaiting=0 ",
					   "\n  P0: status=0 ", "\n  P1: status=0 ",
					   "\n  G1: status=4(chan receive) m=-1 lockedm=-1\n"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		EXPECT_NE(NULL, strstr(c->out, want[i]))
			TH_LOG("no \"%s\" in:\n%s", want[i], c->out);
	}
	EXPECT_EQ(NULL, strstr(c->out, "lock stayed held")) TH_LOG("%s", c->out);
	free(c);
}

TEST(deadlock_chan_send)
{
	static const struct dl_expect e = {{"\ngoroutine 1 [chan send]:\n"}, {"dl_chan_send"}, 1};

	expect_deadlock(_metadata, dl_chan_send, 2, &e);
}

TEST(deadlock_mutex)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [sync.WaitGroup.Wait]:\n", "\ngoroutine 2 [sync.Mutex.Lock]:\n",
		 "created by goroutine 1"},
		{"dl_mutex", "dl_mutex_locker", "rg_mutex_lock"},
		2};

	expect_deadlock(_metadata, dl_mutex, 2, &e);
}

TEST(deadlock_waitgroup)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [sync.WaitGroup.Wait]:\n", "\ngoroutine 2 [sync.WaitGroup.Wait]:\n",
		 "\ngoroutine 3 [sync.WaitGroup.Wait]:\n", "\ngoroutine 4 [sync.WaitGroup.Wait]:\n"},
		{"dl_wg", "dl_wg_waiter", "rg_wg_wait"},
		4};

	expect_deadlock(_metadata, dl_wg, 2, &e);
}

TEST(deadlock_select_and_nil_channels)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [select]:\n", "[chan receive (nil chan)]:\n",
		 "[chan send (nil chan)]:\n", "[select (no cases)]:\n"},
		{"dl_select", "dl_nil_recv", "dl_nil_send", "dl_empty_select"},
		4};

	expect_deadlock(_metadata, dl_select, 2, &e);
}

TEST(deadlock_rwmutex_cond_semaphore)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [chan receive]:\n", "[sync.RWMutex.RLock]:\n",
		 "[sync.RWMutex.Lock]:\n", "[sync.Cond.Wait]:\n", "[semacquire]:\n"},
		{"dl_mix_reader", "dl_mix_writer", "dl_mix_cond", "dl_mix_sem",
		 "dl_mix_reader_holding"},
		6};

	expect_deadlock(_metadata, dl_sync_mix, 2, &e);
}

TEST(deadlock_lock_order_inversion)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [sync.WaitGroup.Wait]:\n", "\ngoroutine 2 [sync.Mutex.Lock]:\n",
		 "\ngoroutine 3 [sync.Mutex.Lock]:\n"},
		{"dl_abba_1", "dl_abba_2"},
		3};

	expect_deadlock(_metadata, dl_abba, 2, &e);
}

TEST(deadlock_recursive_read_lock)
{
	static const struct dl_expect e = {
		/* The writer's id depends on the P its creator ran on: no id there. */
		{"\ngoroutine 1 [chan receive]:\n", "\ngoroutine 2 [sync.RWMutex.RLock]:\n",
		 " [sync.RWMutex.Lock]:\n"},
		{"dl_rr_reader", "dl_rr_writer"},
		3};

	expect_deadlock(_metadata, dl_recursive_rlock, 2, &e);
}

TEST_F_TIMEOUT(slow, deadlock_after_busy_run, 120)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [chan receive]:\n", "[chan receive]:\n"},
		{"dl_busy", "dl_busy_member"},
		1 + BUSY_N};

	expect_deadlock(_metadata, dl_busy, 2, &e);
	expect_deadlock(_metadata, dl_busy, 8, &e);
}

TEST(deadlock_when_the_last_busy_goroutine_blocks)
{
	static const struct dl_expect e = {
		{"\ngoroutine 1 [chan receive]:\n", "\ngoroutine 2 [chan receive]:\n"},
		{"dl_late", "dl_late_blocker"},
		2};

	expect_deadlock(_metadata, dl_late, 2, &e);
}

/* ------------------------------------------------------------------------ */
/* No false positives                                                       */
/* ------------------------------------------------------------------------ */

static void expect_clean_exit(struct __test_metadata *_metadata, void (*main_fn)(void *),
			      int procs, bool detect_off)
{
	struct run_case rc = {main_fn, procs, detect_off, NULL};
	struct rt_child *c = malloc(sizeof(*c));
	char st[80];

	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, rt_run_child(run_child, &rc, c));
	EXPECT_TRUE(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)
		TH_LOG("GOMAXPROCS %d: child %s, stderr:\n%s", procs,
		       rt_status_str(c->status, st, sizeof(st)), c->out);
	EXPECT_EQ(NULL, strstr(c->out, "deadlock")) TH_LOG("stderr:\n%s", c->out);
	free(c);
}

/* Everyone else is blocked while main computes, then main releases them. */
#define NF_WAITERS 50
#define NF_COMPUTE_NS (200ull * 1000 * 1000)

static struct {
	rg_chan *gate;
	rg_wg wg;
	atomic_int released;
} nf;

static void nf_waiter(void *arg)
{
	rg_chan_recv(nf.gate, NULL);
	atomic_fetch_add(&nf.released, 1);
	rg_wg_done(&nf.wg);
}

static void nf_check_released(void)
{
	if (atomic_load(&nf.released) != NF_WAITERS) {
		fprintf(stderr, "test: %d of %d waiters released\n", atomic_load(&nf.released),
			NF_WAITERS);
		_exit(4);
	}
}

static void nf_main_computes(void *arg)
{
	nf.gate = rg_chan_make(0, 0);
	rg_wg_add(&nf.wg, NF_WAITERS);
	for (int i = 0; i < NF_WAITERS; i++)
		rg_go(nf_waiter, NULL);
	rt_spin_ns(NF_COMPUTE_NS); /* every other goroutine is parked meanwhile */
	rg_chan_close(nf.gate);
	rg_wg_wait(&nf.wg);
	nf_check_released();
}

static void nf_computer(void *arg)
{
	rt_spin_ns(NF_COMPUTE_NS);
	rg_chan_close(nf.gate);
	rg_wg_done(&nf.wg);
}

static void nf_goroutine_computes(void *arg)
{
	nf.gate = rg_chan_make(0, 0);
	rg_wg_add(&nf.wg, NF_WAITERS + 1);
	for (int i = 0; i < NF_WAITERS; i++)
		rg_go(nf_waiter, NULL);
	rg_go(nf_computer, NULL);
	rg_wg_wait(&nf.wg); /* main parked too: only the computer runs */
	nf_check_released();
}

TEST(no_false_positive_while_one_computes)
{
	expect_clean_exit(_metadata, nf_main_computes, 2, false);
	expect_clean_exit(_metadata, nf_main_computes, 4, false);
	expect_clean_exit(_metadata, nf_goroutine_computes, 2, false);
	expect_clean_exit(_metadata, nf_goroutine_computes, 8, false);
}

/*
 * Long chains of hand-offs: at every step one goroutine wakes the next and
 * parks, so "all asleep but one just woken" happens constantly, with Ms
 * going idle and being woken all the time.
 */
#define CH_N RT_TSAN_SCALE(1000, 5)
#define CH_LAPS RT_TSAN_SCALE(20, 2)

static rg_chan **chain;

static void ch_member(void *arg)
{
	int i = (int)(intptr_t)arg;
	long tok;

	while (rg_chan_recv(chain[i], &tok) == 1)
		rg_chan_send(chain[i + 1], &tok);
	rg_chan_close(chain[i + 1]);
}

static void ch_main(void *arg)
{
	long tok;

	chain = calloc(CH_N + 1, sizeof(*chain));
	for (int i = 0; i <= CH_N; i++)
		chain[i] = rg_chan_make(sizeof(long), 0);
	for (int i = 0; i < CH_N; i++)
		rg_go(ch_member, (void *)(intptr_t)i);
	for (long lap = 0; lap < CH_LAPS; lap++) {
		tok = lap;
		rg_chan_send(chain[0], &tok);
		if (rg_chan_recv(chain[CH_N], &tok) != 1 || tok != lap) {
			fprintf(stderr, "test: lap %ld came back as %ld\n", lap, tok);
			_exit(4);
		}
	}
	rg_chan_close(chain[0]);
	while (rg_chan_recv(chain[CH_N], &tok) == 1) /* until the close has gone round */
		;
}

/* The same with mutexes: a token ring, each member parked on its own lock. */
#define MR_N RT_TSAN_SCALE(200, 4)
#define MR_LAPS RT_TSAN_SCALE(50, 5)

static struct {
	rg_mutex m[MR_N];
	long token; /* passed along by the mutexes */
	rg_wg wg;
} mr;

static void mr_member(void *arg)
{
	int me = (int)(intptr_t)arg;

	for (int lap = 0; lap < MR_LAPS; lap++) {
		rg_mutex_lock(&mr.m[me]);
		mr.token++;
		rg_mutex_unlock(&mr.m[(me + 1) % MR_N]);
	}
	rg_wg_done(&mr.wg);
}

static void mr_main(void *arg)
{
	for (int i = 0; i < MR_N; i++)
		rg_mutex_lock(&mr.m[i]);
	rg_wg_add(&mr.wg, MR_N);
	for (int i = 0; i < MR_N; i++)
		rg_go(mr_member, (void *)(intptr_t)i);
	rg_mutex_unlock(&mr.m[0]);
	rg_wg_wait(&mr.wg);
	if (mr.token != (long)MR_N * MR_LAPS) {
		fprintf(stderr, "test: token %ld\n", mr.token);
		_exit(4);
	}
}

TEST_F_TIMEOUT(slow, no_false_positive_after_long_handoff_chains, 120)
{
	FOR_PROCS(procs) {
		expect_clean_exit(_metadata, ch_main, procs, false);
		expect_clean_exit(_metadata, mr_main, procs, false);
	}
}

/*
 * A goroutine blocked in a system call holds its M: the others being parked
 * is no deadlock. A plain thread (invisible to ringo, touching no ringo
 * object) writes the byte the goroutine reads, once every other M is idle,
 * which is exactly when the detector looks.
 */
static struct {
	int fds[2];
	struct rg_sched *s;
	rg_chan *done;
	rg_wg wg;
	pthread_t thread;
} sc;

/* Every M idle except `busy` of them (white-box: the scheduler's own counts). */
static bool ms_idle_but(struct rg_sched *s, int busy)
{
	bool r;

	RT_LOCK(&s->lock);
	r = s->nmidle == s->mcount - busy;
	RT_UNLOCK(&s->lock);
	return r;
}

static bool poll_until_idle_but(struct rg_sched *s, int busy)
{
	uint64_t dl = rt_now_ns() + AWAIT_NS;

	while (!ms_idle_but(s, busy)) {
		if (rt_now_ns() > dl)
			return false;
		sched_yield();
	}
	return true;
}

static void *sc_writer(void *arg)
{
	char b = 'x';

	if (!poll_until_idle_but(sc.s, 1)) {
		fprintf(stderr, "test: the other Ms never went idle\n");
		_exit(4);
	}
	if (write(sc.fds[1], &b, 1) != 1)
		_exit(4);
	return NULL;
}

static void sc_reader(void *arg)
{
	char b;

	if (read(sc.fds[0], &b, 1) != 1) /* blocks this goroutine's M in the kernel */
		_exit(4);
	rg_chan_close(sc.done);
	rg_wg_done(&sc.wg);
}

static void sc_waiter(void *arg)
{
	rg_chan_recv(sc.done, NULL);
	rg_wg_done(&sc.wg);
}

/* Ten goroutines wait on the reader, which waits for the plain thread's byte. */
static void sc_run(void (*reader)(void *), void *(*writer)(void *))
{
	if (pipe(sc.fds))
		_exit(5);
	sc.s = rg_getm()->sched;
	sc.done = rg_chan_make(0, 0);
	rg_wg_add(&sc.wg, 11);
	for (int i = 0; i < 10; i++)
		rg_go(sc_waiter, NULL);
	rg_go(reader, NULL);
	if (pthread_create(&sc.thread, NULL, writer, NULL))
		_exit(5);
	rg_wg_wait(&sc.wg);
	pthread_join(sc.thread, NULL);
}

static void sc_main(void *arg)
{
	sc_run(sc_reader, sc_writer);
}

TEST(no_false_positive_with_a_goroutine_in_a_syscall)
{
	expect_clean_exit(_metadata, sc_main, 2, false);
	expect_clean_exit(_metadata, sc_main, 4, false);
}

/*
 * The same with the reader parked in the poller (rg_read: io_uring, or
 * epoll under RINGO_POLLER=epoll), not blocked in the kernel: a goroutine
 * waiting for I/O can be woken, so the rest waiting on it is no deadlock.
 * The plain thread writes once the Ms are idle (one may sleep in the ring).
 */
static void *io_writer(void *arg)
{
	uint64_t dl = rt_now_ns() + AWAIT_NS;
	char b = 'x';

	while (!ms_idle_but(sc.s, 0) && !ms_idle_but(sc.s, 1)) {
		if (rt_now_ns() > dl) {
			fprintf(stderr, "test: the Ms never went idle\n");
			_exit(4);
		}
		sched_yield();
	}
	if (write(sc.fds[1], &b, 1) != 1)
		_exit(4);
	return NULL;
}

static void io_reader(void *arg)
{
	char b;

	if (rg_read(sc.fds[0], &b, 1) != 1) /* parks in the poller */
		_exit(4);
	rg_chan_close(sc.done);
	rg_wg_done(&sc.wg);
}

static void io_main(void *arg)
{
	sc_run(io_reader, io_writer);
}

TEST(no_false_positive_with_a_goroutine_waiting_for_io)
{
	expect_clean_exit(_metadata, io_main, 1, false);
	expect_clean_exit(_metadata, io_main, 2, false);
}

/*
 * RINGO_DEADLOCK=0: a plain thread wakes the main goroutine through a
 * channel once every M is idle. With the detector on, the same program is
 * (rightly, for all ringo can see) reported as deadlocked.
 */
static struct {
	rg_chan *c;
	struct rg_sched *s;
	pthread_t thread;
	atomic_int sent;
} pt;

static void *pt_waker(void *arg)
{
	int v = 42;

	if (!poll_until_idle_but(pt.s, 0)) {
		fprintf(stderr, "test: the Ms never all went idle\n");
		_exit(4);
	}
	/* The receiver is parked, so a non-blocking send hands the value over. */
	if (rg_chan_trysend(pt.c, &v) != 0) {
		fprintf(stderr, "test: trysend from the plain thread failed\n");
		_exit(4);
	}
	atomic_store(&pt.sent, 1);
	return NULL;
}

static void pt_main(void *arg)
{
	int v = 0;

	pt.c = rg_chan_make(sizeof(int), 0);
	pt.s = rg_getm()->sched;
	if (pthread_create(&pt.thread, NULL, pt_waker, NULL))
		_exit(5);
	if (rg_chan_recv(pt.c, &v) != 1 || v != 42) {
		fprintf(stderr, "test: received %d\n", v);
		_exit(4);
	}
	pthread_join(pt.thread, NULL);
	if (!atomic_load(&pt.sent))
		_exit(4);
}

TEST(deadlock_detector_can_be_turned_off)
{
	static const struct dl_expect e = {{"\ngoroutine 1 [chan receive]:\n"}, {"pt_main"}, 1};

	expect_clean_exit(_metadata, pt_main, 2, true);
	expect_clean_exit(_metadata, pt_main, 1, true);
	expect_deadlock(_metadata, pt_main, 2, &e);
}

/* ------------------------------------------------------------------------ */
/* SIGQUIT                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A child with goroutines parked in many ways, main among them, and one
 * goroutine blocked in read() (so the deadlock detector stays out of it).
 * When they are all parked it writes a byte to the ready pipe; the parent
 * then sends SIGQUIT and expects Go's dump and exit status 2. Parks stamp
 * their start from sysmon's clock (coarse_now): the mutex waiter's stamp
 * must lie between the run's start and now, and, moved three minutes back,
 * shows as Go's "[sync.Mutex.Lock, 3 minutes]".
 */
enum { SQ_CHAN, SQ_MUTEX, SQ_COND, SQ_SELECT, SQ_RLOCK, SQ_SEM, SQ_MAIN, SQ_N };

static struct {
	int ready_fd, block_fd;
	gslot g[SQ_N];
	rg_mutex m, cm;
	rg_cond c;
	rg_rwmutex rw;
	rg_sem s;
	rg_chan *ch;
	int64_t t0; /* before any goroutine parked */
} sq;

static void sq_chan_waiter(void *arg)
{
	publish_self(&sq.g[SQ_CHAN]);
	rg_chan_recv(sq.ch, NULL);
}

static void sq_mutex_waiter(void *arg)
{
	publish_self(&sq.g[SQ_MUTEX]);
	rg_mutex_lock(&sq.m);
}

static void sq_cond_waiter(void *arg)
{
	rg_mutex_lock(&sq.cm);
	publish_self(&sq.g[SQ_COND]);
	rg_cond_wait(&sq.c);
}

static void sq_select_waiter(void *arg)
{
	rg_case cs[] = {RG_RECV(sq.ch, NULL), RG_RECV(NULL, NULL)};

	publish_self(&sq.g[SQ_SELECT]);
	rg_select(cs, 2, false);
}

static void sq_rlock_waiter(void *arg)
{
	publish_self(&sq.g[SQ_RLOCK]);
	rg_rwmutex_rlock(&sq.rw);
}

static void sq_sem_waiter(void *arg)
{
	publish_self(&sq.g[SQ_SEM]);
	rg_sem_acquire(&sq.s, 1);
}

static void sq_blocker(void *arg)
{
	char b = 'r';

	for (int i = 0; i < SQ_N; i++) {
		if (!AWAIT(is_parked(&sq.g[i]))) {
			fprintf(stderr, "test: goroutine %d never parked\n", i);
			_exit(5);
		}
	}
	struct rg_g *mw = atomic_load(&sq.g[SQ_MUTEX]);
	int64_t now = rg_nanotime();
	if (mw->wait_since < sq.t0 - 1000000000LL || mw->wait_since > now) {
		fprintf(stderr, "test: wait_since %lld not within [%lld - 1 s, %lld]\n",
			(long long)mw->wait_since, (long long)sq.t0, (long long)now);
		_exit(5);
	}
	mw->wait_since -= 3 * 60 * 1000000000LL;
	if (write(sq.ready_fd, &b, 1) != 1)
		_exit(5);
	if (read(sq.block_fd, &b, 1) >= 0) /* nobody writes: blocks until SIGQUIT */
		fprintf(stderr, "test: read returned\n");
	_exit(6);
}

static void sq_main(void *arg)
{
	static rg_wg never_done;

	sq.t0 = rg_nanotime();
	sq.c = (rg_cond)RG_COND_INIT(&sq.cm);
	sq.ch = rg_chan_make(0, 0);
	rg_sem_init(&sq.s, 1);
	rg_sem_acquire(&sq.s, 1);
	rg_mutex_lock(&sq.m);
	rg_rwmutex_lock(&sq.rw);
	rg_go(sq_chan_waiter, NULL);
	rg_go(sq_mutex_waiter, NULL);
	rg_go(sq_cond_waiter, NULL);
	rg_go(sq_select_waiter, NULL);
	rg_go(sq_rlock_waiter, NULL);
	rg_go(sq_sem_waiter, NULL);
	rg_go(sq_blocker, NULL);
	publish_self(&sq.g[SQ_MAIN]);
	rg_wg_add(&never_done, 1);
	rg_wg_wait(&never_done);
}

struct sq_result {
	int status;
	bool ready;
	char *out; /* all of stderr: sanitizer reports may come before the dump */
};

static void run_sigquit_child(struct sq_result *r, void (*main_fn)(void *))
{
	int errp[2], readyp[2], blockp[2];
	size_t len = 0, cap = 65536;
	char b = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->out = malloc(cap);
	if (!r->out || pipe(errp) || pipe(readyp) || pipe(blockp))
		return;
	r->out[0] = '\0';
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		close(errp[0]);
		close(readyp[0]);
		dup2(errp[1], STDERR_FILENO);
		close(errp[1]);
		sq.ready_fd = readyp[1];
		sq.block_fd = blockp[0]; /* blockp[1] stays open here: read() blocks */
		/* ringo installs its dump only over the default action; a shell may have ignored SIGQUIT. */
		signal(SIGQUIT, SIG_DFL);
		rg_maxprocs(2);
		(rg_run)(main_fn, NULL); /* the dump ends it */
		_exit(7);
	}
	close(errp[1]);
	close(readyp[1]);
	close(blockp[0]);
	close(blockp[1]);
	/* EOF instead of the byte: the child died before getting ready. */
	while (read(readyp[0], &b, 1) < 0 && errno == EINTR)
		;
	r->ready = b == 'r';
	kill(pid, r->ready ? SIGQUIT : SIGKILL);
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *bigger = realloc(r->out, cap * 2);

			if (!bigger)
				break;
			r->out = bigger;
			cap *= 2;
		}
		n = read(errp[0], r->out + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	r->out[len] = '\0';
	close(errp[0]);
	close(readyp[0]);
	while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
		;
}

TEST(sigquit_dumps_every_goroutine)
{
	/* TSan holds an asynchronous signal until the thread enters a call it
	 * intercepts; ringo's idle threads wait in raw futex system calls, so
	 * the SIGQUIT would wait until the deadlock detector ends the child. */
	if (RT_TSAN)
		SKIP(return, "TSan defers asynchronous signals past ringo's raw futex waits");
	static const char *const want[] = {
		"SIGQUIT: quit\n",
		"\ngoroutine 1 [sync.WaitGroup.Wait]:\n",
		"[chan receive]:\n",
		"[sync.Mutex.Lock, 3 minutes]:\n",
		"[sync.Cond.Wait]:\n",
		"[select]:\n",
		"[sync.RWMutex.RLock]:\n",
		"[semacquire]:\n",
		"[running]:\n", /* the goroutine in read() */
	};
	static const char *const fns[] = {
		"sq_main",	    "sq_chan_waiter",  "sq_mutex_waiter", "sq_cond_waiter",
		"sq_select_waiter", "sq_rlock_waiter", "sq_sem_waiter",	  "sq_blocker",
		"rg_wg_wait",	    "rg_cond_wait",
	};
	struct sq_result *r = malloc(sizeof(*r));
	char st[80];

	ASSERT_NE(NULL, r);
	run_sigquit_child(r, sq_main);
	ASSERT_NE(NULL, r->out);
	ASSERT_TRUE(r->ready) TH_LOG("child never got ready; stderr:\n%s", r->out);
	EXPECT_TRUE(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 2)
		TH_LOG("child %s", rt_status_str(r->status, st, sizeof(st)));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		EXPECT_NE(NULL, strstr(r->out, want[i]))
			TH_LOG("no \"%s\" in the dump:\n%s", want[i], r->out);
	}
	if (dumps_name_static_functions()) {
		for (size_t i = 0; i < ARRAY_SIZE(fns); i++) {
			EXPECT_NE(NULL, strstr(r->out, fns[i]))
				TH_LOG("function %s not named in the dump:\n%s", fns[i], r->out);
		}
	}
	EXPECT_EQ(SQ_N + 1, count_headers(r->out)) TH_LOG("dump:\n%s", r->out);
	EXPECT_EQ(NULL, strstr(r->out, "deadlock"));
	free(r->out);
	free(r);
}

/* ------------------------------------------------------------------------ */
/* Leak check                                                               */
/* ------------------------------------------------------------------------ */

/* What a child's goroutines report back to the test, in memory shared with it. */
struct lk_report {
	long ret[8];
	uint64_t ids[8];
	long alive[8];
	uint64_t ns[8];
	int done;
};

static struct lk_report *lkr;

static struct {
	rg_chan *never;
	rg_mutex m;
	rg_wg wg_never;
	gslot g[8];
	atomic_int stop;
} lk;

static void lk_chan_leaker(void *arg)
{
	lkr->ids[0] = rg_goid();
	publish_self(&lk.g[0]);
	rg_chan_recv(lk.never, NULL);
}

static void lk_mutex_leaker(void *arg)
{
	lkr->ids[1] = rg_goid();
	publish_self(&lk.g[1]);
	rg_mutex_lock(&lk.m);
}

static void lk_wg_leaker(void *arg)
{
	lkr->ids[2] = rg_goid();
	publish_self(&lk.g[2]);
	rg_wg_wait(&lk.wg_never);
}

static void lk_await_parked(int n)
{
	for (int i = 0; i < n; i++) {
		if (!AWAIT(is_parked(&lk.g[i]))) {
			fprintf(stderr, "test: goroutine %d never parked\n", i);
			_exit(5);
		}
	}
}

static void lk_reports_main(void *arg)
{
	lk.never = rg_chan_make(0, 0);
	rg_wg_add(&lk.wg_never, 1);
	rg_mutex_lock(&lk.m);
	rg_go(lk_chan_leaker, NULL);
	rg_go(lk_mutex_leaker, NULL);
	rg_go(lk_wg_leaker, NULL);
	lk_await_parked(3);
	lkr->ret[0] = rg_leakcheck(NULL);
	fprintf(stderr, "== again\n");
	lkr->ret[1] = rg_leakcheck(&(struct rg_leakcheck_opts){.timeout_ns = 1000000});
	lkr->done = 1;
}

static void run_lk_child(void *arg)
{
	rg_maxprocs(2);
	/* These mains leak on purpose, to see rg_leakcheck report it. */
	if ((rg_run)((void (*)(void *))arg, NULL))
		_exit(3);
}

static struct rt_child *lk_run(struct __test_metadata *_metadata, void (*main_fn)(void *))
{
	struct rt_child *c = malloc(sizeof(*c));
	char st[80];

	lkr = rt_shared(sizeof(*lkr));
	if (!c || !lkr)
		return NULL;
	memset(lkr, 0, sizeof(*lkr));
	if (rt_run_child(run_lk_child, (void *)main_fn, c)) {
		free(c);
		return NULL;
	}
	EXPECT_TRUE(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)
		TH_LOG("child %s, stderr:\n%s", rt_status_str(c->status, st, sizeof(st)), c->out);
	EXPECT_EQ(1, lkr->done) TH_LOG("stderr:\n%s", c->out);
	return c;
}

/* The dump header of goroutine id, with its wait reason. */
static bool has_goroutine(const char *out, uint64_t id, const char *reason)
{
	char want[128];

	snprintf(want, sizeof(want), "\ngoroutine %llu [%s]:\n", (unsigned long long)id, reason);
	return strstr(out, want) != NULL;
}

TEST(leakcheck_reports_parked_goroutines)
{
	struct rt_child *c = lk_run(_metadata, lk_reports_main);
	const char *again;

	ASSERT_NE(NULL, c);
	EXPECT_EQ(3, lkr->ret[0]);
	EXPECT_EQ(3, lkr->ret[1]) TH_LOG("a second check does not see the same leaks");
	EXPECT_NE(NULL, strstr(c->out, "ringo: leakcheck: 3 goroutines still alive:\n"))
		TH_LOG("stderr:\n%s", c->out);
	EXPECT_TRUE(has_goroutine(c->out, lkr->ids[0], "chan receive")) TH_LOG("%s", c->out);
	EXPECT_TRUE(has_goroutine(c->out, lkr->ids[1], "sync.Mutex.Lock")) TH_LOG("%s", c->out);
	EXPECT_TRUE(has_goroutine(c->out, lkr->ids[2], "sync.WaitGroup.Wait")) TH_LOG("%s", c->out);
	/* The caller is not a leak. */
	EXPECT_EQ(NULL, strstr(c->out, "\ngoroutine 1 [")) TH_LOG("%s", c->out);
	again = strstr(c->out, "== again\n");
	ASSERT_NE(NULL, again);
	EXPECT_EQ(6, count_headers(c->out));
	EXPECT_EQ(3, count_headers(again));
	if (dumps_name_static_functions()) {
		EXPECT_NE(NULL, strstr(c->out, "lk_chan_leaker"));
		EXPECT_NE(NULL, strstr(c->out, "lk_mutex_leaker"));
		EXPECT_NE(NULL, strstr(c->out, "lk_wg_leaker"));
	}
	free(c);
}

/* Leaks by two functions; some tolerated by id, some by function. */
static void lk_leak_a(void *arg)
{
	int i = (int)(intptr_t)arg;

	lkr->ids[i] = rg_goid();
	publish_self(&lk.g[i]);
	rg_chan_recv(lk.never, NULL);
}

static void lk_leak_b(void *arg)
{
	lk_leak_a(arg);
}

static void lk_ignore_main(void *arg)
{
	void (*const fn_a[])(void *) = {lk_leak_a};
	uint64_t id_b;

	lk.never = rg_chan_make(0, 0);
	rg_go(lk_leak_a, (void *)0);
	rg_go(lk_leak_b, (void *)1);
	rg_go(lk_leak_a, (void *)2);
	lk_await_parked(3);
	id_b = lkr->ids[1];

	fprintf(stderr, "== ids\n");
	lkr->ret[0] = rg_leakcheck(&(struct rg_leakcheck_opts){.ignore_ids = &id_b, .n_ignore_ids = 1});
	fprintf(stderr, "== fns\n");
	lkr->ret[1] = rg_leakcheck(&(struct rg_leakcheck_opts){.ignore_fns = fn_a, .n_ignore_fns = 1});
	fprintf(stderr, "== both\n");
	lkr->ret[2] = rg_leakcheck(&(struct rg_leakcheck_opts){
		.ignore_ids = &id_b, .n_ignore_ids = 1, .ignore_fns = fn_a, .n_ignore_fns = 1});
	fprintf(stderr, "== none\n");
	lkr->ret[3] = rg_leakcheck(NULL);
	lkr->done = 1;
}

/* The part of out between marker a and marker b (or the end), copied into buf. */
static const char *section(const char *out, const char *a, const char *b, char *buf, size_t size)
{
	const char *s = strstr(out, a), *e;
	size_t n;

	if (!s)
		return "";
	s += strlen(a);
	e = b ? strstr(s, b) : NULL;
	n = e ? (size_t)(e - s) : strlen(s);
	if (n >= size)
		n = size - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return buf;
}

TEST(leakcheck_ignore_by_id_and_function)
{
	struct rt_child *c = lk_run(_metadata, lk_ignore_main);
	char *buf = malloc(16384);
	const char *s;

	ASSERT_NE(NULL, c);
	ASSERT_NE(NULL, buf);
	EXPECT_EQ(2, lkr->ret[0]);
	EXPECT_EQ(1, lkr->ret[1]);
	EXPECT_EQ(0, lkr->ret[2]);
	EXPECT_EQ(3, lkr->ret[3]);

	s = section(c->out, "== ids\n", "== fns\n", buf, 16384);
	EXPECT_NE(NULL, strstr(s, "ringo: leakcheck: 2 goroutines still alive:\n")) TH_LOG("%s", s);
	EXPECT_TRUE(has_goroutine(s, lkr->ids[0], "chan receive")) TH_LOG("%s", s);
	EXPECT_TRUE(has_goroutine(s, lkr->ids[2], "chan receive")) TH_LOG("%s", s);
	EXPECT_FALSE(has_goroutine(s, lkr->ids[1], "chan receive")) TH_LOG("%s", s);

	s = section(c->out, "== fns\n", "== both\n", buf, 16384);
	EXPECT_NE(NULL, strstr(s, "ringo: leakcheck: 1 goroutine still alive:\n")) TH_LOG("%s", s);
	EXPECT_TRUE(has_goroutine(s, lkr->ids[1], "chan receive")) TH_LOG("%s", s);
	EXPECT_EQ(1, count_headers(s)) TH_LOG("%s", s);
	if (dumps_name_static_functions()) {
		EXPECT_NE(NULL, strstr(s, "lk_leak_b")) TH_LOG("%s", s);
	}

	s = section(c->out, "== both\n", "== none\n", buf, 16384);
	EXPECT_STREQ("", s);

	s = section(c->out, "== none\n", NULL, buf, 16384);
	EXPECT_EQ(3, count_headers(s)) TH_LOG("%s", s);
	free(buf);
	free(c);
}

/*
 * Goroutines that are merely on their way out are not leaks: ones still
 * yielding, ones just woken by a close, one computing on the other P, and
 * one parked but about to be woken by a runnable one. The check lets them
 * run (it yields, it does not sleep) and finds nobody left.
 */
#define FIN_GATED 20

static struct {
	rg_chan *gate, *relay;
	gslot gated[FIN_GATED], computer, relay_waiter;
	atomic_int computing, checking;
} fin;

static void fin_yielder(void *arg)
{
	for (int i = 0; i < 50; i++)
		rg_yield();
}

static void fin_gated(void *arg)
{
	publish_self(arg);
	rg_chan_recv(fin.gate, NULL);
}

static void fin_computer(void *arg)
{
	publish_self(&fin.computer);
	rg_preempt_disable(); /* stays running on its P: a preemption would queue it */
	atomic_store(&fin.computing, 1);
	/* Until the check has begun, however late the main goroutine gets a P
	 * under load, and 50 ms into it: the check must wait for this one. */
	while (!atomic_load(&fin.checking))
		;
	rt_spin_ns(50 * 1000 * 1000);
	rg_preempt_enable();
}

static void fin_relay_waiter(void *arg)
{
	publish_self(&fin.relay_waiter);
	rg_chan_recv(fin.relay, NULL);
}

static void fin_relay_sender(void *arg)
{
	rg_chan_send(fin.relay, NULL);
}

/*
 * Goroutines alive once the counts settle: a goroutine is dead for the leak
 * check a moment before rg_num_goroutines stops counting it.
 */
static long settled_count(void)
{
	AWAIT(rg_num_goroutines() == 1);
	return rg_num_goroutines();
}

static bool running_now(gslot *slot)
{
	struct rg_g *g = atomic_load(slot);

	return g && atomic_load_explicit(&g->status, memory_order_acquire) == G_RUNNING;
}

static void lk_finishing_main(void *arg)
{
	uint64_t t0;

	for (int i = 0; i < 20; i++)
		rg_go(fin_yielder, NULL);
	lkr->ret[0] = rg_leakcheck(NULL);
	lkr->alive[0] = settled_count();

	fin.gate = rg_chan_make(0, 0);
	for (int i = 0; i < FIN_GATED; i++)
		rg_go(fin_gated, &fin.gated[i]);
	for (int i = 0; i < FIN_GATED; i++)
		if (!AWAIT(is_parked(&fin.gated[i])))
			_exit(5);
	rg_chan_close(fin.gate); /* all runnable now, none has run yet */
	lkr->ret[1] = rg_leakcheck(NULL);
	lkr->alive[1] = settled_count();

	rg_go(fin_computer, NULL);
	if (!AWAIT(atomic_load(&fin.computing) && running_now(&fin.computer)))
		_exit(5);
	atomic_store(&fin.checking, 1);
	t0 = rt_now_ns();
	lkr->ret[2] = rg_leakcheck(NULL);
	lkr->ns[2] = rt_now_ns() - t0;
	lkr->alive[2] = settled_count();

	fin.relay = rg_chan_make(0, 0);
	rg_go(fin_relay_waiter, NULL);
	if (!AWAIT(is_parked(&fin.relay_waiter)))
		_exit(5);
	rg_go(fin_relay_sender, NULL); /* runnable; the parked one depends on it */
	lkr->ret[3] = rg_leakcheck(NULL);
	lkr->alive[3] = settled_count();
	lkr->done = 1;
}

TEST(leakcheck_ignores_finishing_goroutines)
{
	struct rt_child *c = lk_run(_metadata, lk_finishing_main);

	ASSERT_NE(NULL, c);
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(0, lkr->ret[i]) TH_LOG("case %d", i);
		EXPECT_EQ(1, lkr->alive[i]) TH_LOG("case %d: goroutines left", i);
	}
	EXPECT_EQ(0, c->len) TH_LOG("stderr:\n%s", c->out);
	TH_LOG("the check waited %.1f ms for the computing goroutine", lkr->ns[2] / 1e6);
	free(c);
}

/* A goroutine that keeps running past the timeout is reported, as runnable or running. */
static void lk_spinner(void *arg)
{
	lkr->ids[0] = rg_goid();
	publish_self(&lk.g[0]);
	while (!atomic_load(&lk.stop))
		rg_yield();
}

static void lk_timeout_main(void *arg)
{
	uint64_t t0;

	rg_go(lk_spinner, NULL);
	if (!AWAIT(atomic_load(&lk.g[0]) != NULL))
		_exit(5);
	t0 = rt_now_ns();
	lkr->ret[0] = rg_leakcheck(&(struct rg_leakcheck_opts){.timeout_ns = 20 * 1000 * 1000});
	lkr->ns[0] = rt_now_ns() - t0;
	atomic_store(&lk.stop, 1);
	lkr->done = 1;
}

TEST(leakcheck_timeout_for_runnable_goroutines)
{
	struct rt_child *c = lk_run(_metadata, lk_timeout_main);

	ASSERT_NE(NULL, c);
	EXPECT_EQ(1, lkr->ret[0]) TH_LOG("%s", c->out);
	EXPECT_GE(lkr->ns[0], 20 * 1000 * 1000);
	EXPECT_LT(lkr->ns[0], AWAIT_NS);
	EXPECT_TRUE(has_goroutine(c->out, lkr->ids[0], "runnable") ||
		    has_goroutine(c->out, lkr->ids[0], "running"))
		TH_LOG("%s", c->out);
	if (dumps_name_static_functions()) {
		EXPECT_NE(NULL, strstr(c->out, "lk_spinner")) TH_LOG("%s", c->out);
	}
	free(c);
}

/* -EPERM outside a goroutine (before rg_run, or on a plain thread during it); -EINVAL for bad opts. */
static atomic_long lk_thread_ret;

static void *lk_plain_thread(void *arg)
{
	atomic_store(&lk_thread_ret, rg_leakcheck(NULL));
	return NULL;
}

static struct {
	long thread, bad_ids, bad_fns, bad_timeout, ok;
} lke;

static void lk_errors_main(void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, lk_plain_thread, NULL) == 0)
		pthread_join(t, NULL);
	lke.thread = atomic_load(&lk_thread_ret);
	lke.bad_ids = rg_leakcheck(&(struct rg_leakcheck_opts){.n_ignore_ids = 1});
	lke.bad_fns = rg_leakcheck(&(struct rg_leakcheck_opts){.n_ignore_fns = 1});
	lke.bad_timeout = rg_leakcheck(&(struct rg_leakcheck_opts){.timeout_ns = -1});
	lke.ok = rg_leakcheck(&(struct rg_leakcheck_opts){0});
}

TEST(leakcheck_errors)
{
	EXPECT_EQ(-EPERM, rg_leakcheck(NULL));
	ASSERT_EQ(0, rg_run(lk_errors_main, NULL));
	EXPECT_EQ(-EPERM, lke.thread);
	EXPECT_EQ(-EINVAL, lke.bad_ids);
	EXPECT_EQ(-EINVAL, lke.bad_fns);
	EXPECT_EQ(-EINVAL, lke.bad_timeout);
	EXPECT_EQ(0, lke.ok);
	EXPECT_EQ(-EPERM, rg_leakcheck(NULL));
}

/*
 * A goroutine running on another thread shows its frames too (Go prints
 * "stack unavailable" there): the dump asks that thread with the preemption
 * signal, whose handler walks the interrupted frames.
 */
static _Atomic bool sr_spinning;

__attribute__((noinline)) void sr_spin_frame(void)
{
	atomic_store(&sr_spinning, true);
	for (;;)
		__asm__ volatile("" ::: "memory");
}

static void sr_spinner(void *arg)
{
	sr_spin_frame();
}

static void sr_main(void *arg)
{
	static rg_wg never_done;
	char b = 'r';

	rg_go(sr_spinner, NULL);
	if (!AWAIT(atomic_load(&sr_spinning))) {
		fprintf(stderr, "test: the spinner never ran\n");
		_exit(5);
	}
	if (write(sq.ready_fd, &b, 1) != 1)
		_exit(5);
	rg_wg_add(&never_done, 1);
	rg_wg_wait(&never_done);
}

TEST(sigquit_shows_the_frames_of_a_goroutine_running_elsewhere)
{
	if (RT_TSAN)
		SKIP(return,
			   "no preemption signal under TSan (and SIGQUIT waits past raw futexes)");
	struct sq_result *r = malloc(sizeof(*r));
	char st[80];

	ASSERT_NE(NULL, r);
	run_sigquit_child(r, sr_main);
	ASSERT_NE(NULL, r->out);
	ASSERT_TRUE(r->ready) TH_LOG("child never got ready; stderr:\n%s", r->out);
	EXPECT_TRUE(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 2)
	TH_LOG("child %s", rt_status_str(r->status, st, sizeof(st)));
	const char *running = strstr(r->out, "[running]:\n");
	ASSERT_NE(NULL, running) TH_LOG("dump:\n%s", r->out);
	const char *created = strstr(running, "created by");
	ASSERT_NE(NULL, created) TH_LOG("dump:\n%s", r->out);
	/* Frames between the header and "created by": the spinner's own. */
	EXPECT_EQ(NULL, strstr(running, "frames are unavailable")) TH_LOG("dump:\n%s", r->out);
	const char *frame = strstr(running, "sr_spin_frame");
	EXPECT_TRUE(frame && frame < created) TH_LOG("dump:\n%s", r->out);
	free(r->out);
	free(r);
}

TEST_HARNESS_MAIN
