// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_syscall_enter / rg_syscall_exit (Go's entersyscall / exitsyscall): with
 * one P, a goroutine blocked in a bracketed system call lets another run
 * (the P is handed off); errno survives the bracket, also when the P was
 * retaken and the goroutine resumes elsewhere; both are no-ops outside a
 * goroutine; 200 goroutines blocked at once all complete (no thread cap in
 * the way); and a goroutine in a system call is not a deadlock.
 *
 * Nothing sleeps to synchronise: the blocked calls are reads of pipes that
 * the test writes when it is ready. A watchdog thread writes them after a
 * generous bound instead, so a broken hand-off fails rather than hangs.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>

#include "rg_test.h"
#include "rg_check.h"

#define AWAIT_NS (10ull * 1000000000ull)
#include "rg_await.h"

#define MS 1000000LL

/* ---- watchdog: after timeout_ms, write n bytes to fd (unless stopped) ---- */

struct watchdog {
	pthread_t th;
	int stop[2];
	int fd, n, timeout_ms;
	_Atomic bool fired;
};

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	struct pollfd p = {.fd = w->stop[0], .events = POLLIN};
	int k;

	do {
		k = poll(&p, 1, w->timeout_ms);
	} while (k < 0 && errno == EINTR);
	if (k == 0) {
		atomic_store(&w->fired, true);
		for (int i = 0; i < w->n; i++) {
			if (write(w->fd, "w", 1) != 1)
				break;
		}
	}
	return NULL;
}

static int watchdog_start(struct watchdog *w, int fd, int n, int timeout_ms)
{
	w->fd = fd;
	w->n = n;
	w->timeout_ms = timeout_ms;
	atomic_store(&w->fired, false);
	if (pipe2(w->stop, O_CLOEXEC))
		return -errno;
	return -pthread_create(&w->th, NULL, watchdog_main, w);
}

static void watchdog_stop(struct watchdog *w)
{
	if (write(w->stop[1], "s", 1) != 1)
		abort();
	pthread_join(w->th, NULL);
	close(w->stop[0]);
	close(w->stop[1]);
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* ======================================================================== */
/* Hand-off: one P, one goroutine blocked in read, another runs             */
/* ======================================================================== */

#define HO_ROUNDS RT_TSAN_SCALE(2000, 10)

static struct {
	int p[2];
	rg_chan *ping, *pong;
	_Atomic bool a_in_syscall, a_read_returned, a_done;
	ssize_t a_n;
	char a_byte;
	int errno_after_exit;
	pid_t tid_before, tid_after;
	long b_rounds;
	bool b_saw_a_blocked, b_saw_read_return;
	rg_wg wg;
} ho;

/* A: read a pipe nobody has written yet, bracketed; then fail a call, for errno. */
static void ho_blocker(void *arg)
{
	char c = 0;
	ssize_t n;

	ho.tid_before = gettid_();
	errno = 4242;
	rg_syscall_enter();
	GCHECK(errno == 4242, "rg_syscall_enter changed errno to %d", errno);
	atomic_store(&ho.a_in_syscall, true);
	n = read(ho.p[0], &c, 1);
	atomic_store(&ho.a_read_returned, true);
	/* The call's own errno must survive the exit, also on the slow path. */
	GCHECK(read(-1, &c, 1) < 0 && errno == EBADF, "read(-1)");
	rg_syscall_exit();
	ho.errno_after_exit = errno;
	ho.tid_after = gettid_();
	ho.a_n = n;
	ho.a_byte = c;
	atomic_store(&ho.a_done, true);
	rg_wg_done(&ho.wg);
}

static void ho_echo(void *arg)
{
	long v;

	while (rg_chan_recv(ho.ping, &v) == 1)
		rg_chan_send(ho.pong, &v);
	rg_wg_done(&ho.wg);
}

/* B: a loop of scheduler work on the only P while A is blocked, then free A. */
static void ho_worker(void *arg)
{
	if (!GCHECK(AWAIT(atomic_load(&ho.a_in_syscall)), "A never entered its system call"))
		goto out;
	for (long i = 0; i < HO_ROUNDS; i++) {
		long v = -1;

		rg_chan_send(ho.ping, &i);
		rg_chan_recv(ho.pong, &v);
		if (!GCHECK(v == i, "round %ld echoed %ld", i, v))
			break;
		ho.b_rounds++;
	}
	ho.b_saw_a_blocked = !atomic_load(&ho.a_read_returned);
	GCHECK(write(ho.p[1], "k", 1) == 1, "write: %s", strerror(errno));
	/* Keep the P busy until A's read has returned: A must then wait for a P. */
	ho.b_saw_read_return = AWAIT(atomic_load(&ho.a_read_returned));
out:
	rg_chan_close(ho.ping);
	rg_wg_done(&ho.wg);
}

static void ho_main(void *arg)
{
	ho.ping = rg_chan_make(sizeof(long), 0);
	ho.pong = rg_chan_make(sizeof(long), 0);
	rg_wg_add(&ho.wg, 3);
	if (rg_go(ho_blocker, NULL) || rg_go(ho_worker, NULL) || rg_go(ho_echo, NULL)) {
		GFAIL("rg_go");
		return;
	}
	rg_wg_wait(&ho.wg);
}

TEST(blocked_syscall_hands_off_the_p)
{
	struct watchdog wd;

	ASSERT_EQ(0, pipe2(ho.p, O_CLOEXEC)); /* blocking: the read really blocks the thread */
	ASSERT_EQ(0, watchdog_start(&wd, ho.p[1], 1, 20000));
	rg_maxprocs(1);
	ASSERT_EQ(0, rg_run(ho_main, NULL));
	watchdog_stop(&wd);
	EXPECT_FALSE(atomic_load(&wd.fired))
	TH_LOG("the other goroutines never ran while A was blocked: no hand-off");
	EXPECT_NO_GFAIL();
	EXPECT_EQ(HO_ROUNDS, ho.b_rounds);
	EXPECT_TRUE(ho.b_saw_a_blocked) TH_LOG("A's read returned before B wrote");
	EXPECT_TRUE(ho.b_saw_read_return);
	EXPECT_TRUE(atomic_load(&ho.a_done));
	EXPECT_EQ(1, ho.a_n);
	EXPECT_EQ('k', ho.a_byte);
	EXPECT_EQ(EBADF, ho.errno_after_exit) TH_LOG("errno after rg_syscall_exit");
	TH_LOG("A blocked on thread %d, resumed on thread %d; B did %ld rounds meanwhile",
	       (int)ho.tid_before, (int)ho.tid_after, ho.b_rounds);
	close(ho.p[0]);
	close(ho.p[1]);
}

/* ======================================================================== */
/* errno across enter/exit on the fast path, and exit without enter         */
/* ======================================================================== */

static struct {
	int e1, e2, e3, e4;
	int p_before, p_after;
	bool done;
} en;

static void errno_main(void *arg)
{
	/* Fast path: nobody retakes the P of a call this short. */
	errno = ENOENT;
	rg_syscall_enter();
	en.e1 = errno;
	(void)getppid();
	rg_syscall_exit();
	en.e2 = errno;
	rg_syscall_enter();
	errno = ETXTBSY; /* set inside the bracket, as a failing call does */
	rg_syscall_exit();
	en.e3 = errno;
	/* exit without enter: nothing to undo. */
	en.p_before = rg_current_p();
	errno = EDOM;
	rg_syscall_exit();
	en.e4 = errno;
	en.p_after = rg_current_p();
	rg_yield(); /* still a goroutine the scheduler can switch */
	en.done = true;
}

TEST(errno_preserved_fast_path)
{
	ASSERT_EQ(0, rg_run(errno_main, NULL));
	EXPECT_TRUE(en.done);
	EXPECT_EQ(ENOENT, en.e1);
	EXPECT_EQ(ENOENT, en.e2);
	EXPECT_EQ(ETXTBSY, en.e3);
	EXPECT_EQ(EDOM, en.e4);
	EXPECT_LE(0, en.p_before);
	EXPECT_EQ(en.p_before, en.p_after);
}

/* ======================================================================== */
/* Outside a goroutine both are no-ops                                      */
/* ======================================================================== */

static struct {
	rg_chan *c;
	_Atomic bool thread_done;
	int thread_errno;
	long sum;
} out;

static void *plain_thread(void *arg)
{
	errno = EXDEV;
	rg_syscall_enter();
	rg_syscall_enter(); /* twice: still nothing */
	rg_syscall_exit();
	rg_syscall_exit();
	out.thread_errno = errno;
	atomic_store(&out.thread_done, true);
	return NULL;
}

static void out_producer(void *arg)
{
	for (long i = 1; i <= 100; i++)
		rg_chan_send(out.c, &i);
	rg_chan_close(out.c);
}

static void out_main(void *arg)
{
	pthread_t th;
	long v;

	out.c = rg_chan_make(sizeof(long), 0);
	/* A plain thread of the program, while rg_run is active. */
	if (!GCHECK(pthread_create(&th, NULL, plain_thread, NULL) == 0, "pthread_create"))
		return;
	rg_go(out_producer, NULL);
	while (rg_chan_recv(out.c, &v) == 1)
		out.sum += v;
	GCHECK(AWAIT(atomic_load(&out.thread_done)), "thread");
	pthread_join(th, NULL);
	rg_chan_free(out.c);
}

TEST(noop_outside_a_goroutine)
{
	errno = EXDEV;
	rg_syscall_enter();
	EXPECT_EQ(EXDEV, errno);
	rg_syscall_exit();
	EXPECT_EQ(EXDEV, errno);
	rg_syscall_exit(); /* unbalanced: still nothing */
	EXPECT_EQ(EXDEV, errno);

	/* The runtime is unaffected: a run afterwards works, with a plain thread bracketing too. */
	ASSERT_EQ(0, rg_run(out_main, NULL));
	EXPECT_NO_GFAIL();
	EXPECT_EQ(5050, out.sum);
	EXPECT_TRUE(atomic_load(&out.thread_done));
	EXPECT_EQ(EXDEV, out.thread_errno);

	errno = EXDEV;	    /* rg_run's own errno is another test's business */
	rg_syscall_enter(); /* and after rg_run returned */
	rg_syscall_exit();
	EXPECT_EQ(EXDEV, errno);
}

static void empty_main(void *arg)
{
}

/*
 * ringo.h: functions "never set errno". rg_run is called from a plain
 * thread, so its caller's errno must survive it too (it reads cgroup files
 * that may not exist).
 */
TEST(rg_run_leaves_callers_errno_alone)
{
	errno = EXDEV;
	ASSERT_EQ(0, rg_run(empty_main, NULL));
	EXPECT_EQ(EXDEV, errno) TH_LOG("rg_run left errno %d (%s)", errno, strerror(errno));
}

/* ======================================================================== */
/* 200 goroutines blocked in system calls at once                           */
/* ======================================================================== */

#define MANY 200

static struct {
	int p[2];
	_Atomic int entered, completed;
	bool all_in;
	long threads_at_peak;
	rg_wg wg;
} many;

static long thread_count(void)
{
	char line[128];
	long n = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	}
	fclose(f);
	return n;
}

static void many_blocker(void *arg)
{
	char c = 0;
	ssize_t n;

	rg_syscall_enter();
	atomic_fetch_add(&many.entered, 1);
	n = read(many.p[0], &c, 1);
	rg_syscall_exit();
	if (GCHECK(n == 1 && c == 'm', "read returned %zd, byte %#x", n, c))
		atomic_fetch_add(&many.completed, 1);
	rg_wg_done(&many.wg);
}

static void many_main(void *arg)
{
	char buf[MANY];

	rg_wg_add(&many.wg, MANY);
	for (int i = 0; i < MANY; i++) {
		int err = rg_go(many_blocker, NULL);

		if (err) {
			GFAIL("rg_go %d: %s", i, strerror(-err));
			rg_wg_done(&many.wg);
		}
	}
	/* Every one is in read(2) now, and none can leave it before the write below. */
	many.all_in = AWAIT(atomic_load(&many.entered) == MANY);
	many.threads_at_peak = thread_count();
	memset(buf, 'm', sizeof(buf));
	for (size_t off = 0; off < sizeof(buf);) {
		ssize_t n = write(many.p[1], buf + off, sizeof(buf) - off);

		if (!GCHECK(n > 0, "write: %s", strerror(errno)))
			break;
		off += (size_t)n;
	}
	rg_wg_wait(&many.wg);
}

TEST(many_goroutines_in_blocking_syscalls)
{
	struct watchdog wd;

	ASSERT_EQ(0, pipe2(many.p, O_CLOEXEC));
	ASSERT_EQ(0, watchdog_start(&wd, many.p[1], MANY, 30000));
	ASSERT_EQ(0, rg_run(many_main, NULL));
	watchdog_stop(&wd);
	EXPECT_FALSE(atomic_load(&wd.fired)) TH_LOG("the watchdog had to release the readers");
	EXPECT_NO_GFAIL();
	EXPECT_TRUE(many.all_in)
	TH_LOG("only %d of %d got into their system call at once", atomic_load(&many.entered),
	       MANY);
	EXPECT_EQ(MANY, atomic_load(&many.completed));
	/* Each blocked read holds a thread of its own. */
	EXPECT_LE(MANY, many.threads_at_peak);
	TH_LOG("%d goroutines blocked at once on %ld threads", MANY, many.threads_at_peak);
	close(many.p[0]);
	close(many.p[1]);
}

/* ======================================================================== */
/* A goroutine in a system call is not a deadlock                           */
/* ======================================================================== */

#define DL_SLEEP_MS 200

static struct {
	rg_chan *c;
	bool send;
} dls;

static void dl_sleeper(void *arg)
{
	struct timespec ts = {0, DL_SLEEP_MS * MS};
	int v = 7;

	rg_syscall_enter();
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	rg_syscall_exit();
	if (dls.send)
		rg_chan_send(dls.c, &v);
}

static void dl_main(void *arg)
{
	int v = 0;

	dls.c = rg_chan_make(sizeof(int), 0);
	rg_go(dl_sleeper, NULL);
	/* Parks: the only other goroutine is in its system call for a while. */
	rg_chan_recv(dls.c, &v);
	if (v != 7)
		_exit(5);
}

struct dl_case {
	int procs;
	bool send;
};

static void dl_child(void *arg)
{
	const struct dl_case *dc = arg;
	int err;

	unsetenv("RINGO_DEADLOCK");
	dls.send = dc->send;
	rg_maxprocs(dc->procs);
	err = rg_run(dl_main, NULL);
	if (err) {
		fprintf(stderr, "test: rg_run returned %d\n", err);
		_exit(3);
	}
}

TEST(no_deadlock_report_during_syscall)
{
	struct rt_child *c = malloc(sizeof(*c));
	char st[80];

	ASSERT_NE(NULL, c);
	for (int procs = 1; procs <= 2; procs++) {
		struct dl_case ok = {procs, true}, dead = {procs, false};
		uint64_t t0;

		/* The sleeper sends when its call returns: exit 0, nothing reported. */
		ASSERT_EQ(0, rt_run_child(dl_child, &ok, c));
		EXPECT_TRUE(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)
		TH_LOG("GOMAXPROCS %d: child %s, stderr:\n%s", procs,
		       rt_status_str(c->status, st, sizeof(st)), c->out);
		EXPECT_EQ(NULL, strstr(c->out, "deadlock")) TH_LOG("%s", c->out);

		/* Control: it does not send. The detector is on, and reports only after the call. */
		t0 = rt_now_ns();
		ASSERT_EQ(0, rt_run_child(dl_child, &dead, c));
		EXPECT_TRUE(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 2)
		TH_LOG("GOMAXPROCS %d: control child %s, stderr:\n%s", procs,
		       rt_status_str(c->status, st, sizeof(st)), c->out);
		EXPECT_NE(NULL, strstr(c->out, "all goroutines are asleep - deadlock!"))
		TH_LOG("%s", c->out);
		EXPECT_LE((uint64_t)DL_SLEEP_MS * MS, rt_now_ns() - t0)
		TH_LOG("deadlock reported while the goroutine was still in its system call");
	}
	free(c);
}

TEST_HARNESS_MAIN
