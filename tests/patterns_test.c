// SPDX-License-Identifier: BSD-2-Clause
/*
 * examples/patterns: each program's source is compiled into this test, its
 * main renamed, and run in a forked child with stdout and stderr captured;
 * the test checks the exit status and the key lines of output. This works
 * the same under meson and Kbuild. Where the meson build also has the real
 * binaries (examples/patterns/ beside tests/), one test runs those as well.
 */
#include <limits.h>
#include <poll.h>

#include "rg_test.h"
#include "symbolize.h"

/* The examples are programs, not tests: their rg_run is the real one (bugs leaks on purpose). */
#undef rg_run

#define main pipeline_main
#include "../examples/patterns/pipeline.c"
#undef main
#define main bounded_main
#include "../examples/patterns/bounded.c"
#undef main
#define main pubsub_main
#include "../examples/patterns/pubsub.c"
#undef main
#define main bugs_main
#include "../examples/patterns/bugs.c"
#undef main
#define main shutdown_main
#include "../examples/patterns/shutdown.c"
#undef main

struct prog_out {
	int status;
	char *out, *err; /* all of stdout and stderr, NUL-terminated */
};

struct prog_run {
	int (*prog_main)(int, char **); /* a program compiled in... */
	const char *path;		 /* ...or a binary to exec */
	char *argv[8];
	const int *sigs; /* sent in order once its stdout says "ready" */
	int nsigs;
};

static void prog_child(const struct prog_run *pr)
{
	int argc = 0;

	while (pr->argv[argc])
		argc++;
	if (pr->path) {
		execv(pr->path, pr->argv);
		_exit(127);
	}
	int rc = pr->prog_main(argc, (char **)pr->argv);
	fflush(NULL);
	_exit(rc);
}

/* Append what fd has now to *buf; false at EOF or error. */
static bool slurp(int fd, char **buf, size_t *len, size_t *cap)
{
	ssize_t n;

	if (*cap - *len < 4096) {
		char *bigger = realloc(*buf, *cap * 2);

		if (!bigger)
			return false;
		*buf = bigger;
		*cap *= 2;
	}
	do
		n = read(fd, *buf + *len, *cap - 1 - *len);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return false;
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return true;
}

/* Run the program in a child; 0, or -errno if it could not be started. */
static int run_prog(const struct prog_run *pr, struct prog_out *r)
{
	int outp[2], errp[2];
	size_t olen = 0, elen = 0, ocap = 65536, ecap = 65536;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->out = calloc(1, ocap);
	r->err = calloc(1, ecap);
	if (!r->out || !r->err || pipe(outp) || pipe(errp))
		return -ENOMEM;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(outp[1], STDOUT_FILENO);
		dup2(errp[1], STDERR_FILENO);
		close(outp[0]);
		close(outp[1]);
		close(errp[0]);
		close(errp[1]);
		prog_child(pr);
	}
	close(outp[1]);
	close(errp[1]);
	/* Read both until EOF, so the child never blocks on a full pipe. */
	struct pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
	bool signalled = false;
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents && !slurp(outp[0], &r->out, &olen, &ocap))
			fds[0].fd = -1;
		if (fds[1].revents && !slurp(errp[0], &r->err, &elen, &ecap))
			fds[1].fd = -1;
		if (pr->nsigs && !signalled && strstr(r->out, "ready\n")) {
			for (int i = 0; i < pr->nsigs; i++)
				kill(pid, pr->sigs[i]);
			signalled = true;
		}
	}
	close(outp[0]);
	close(errp[0]);
	while (waitpid(pid, &r->status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void prog_out_free(struct prog_out *r)
{
	free(r->out);
	free(r->err);
}

static bool exited_with(const struct prog_out *r, int code)
{
	return WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

#define RUN(r, fn, ...)                                                                          \
	do {                                                                                     \
		struct prog_run pr_ = {.prog_main = (fn), .argv = {__VA_ARGS__, NULL}};          \
		ASSERT_EQ(0, run_prog(&pr_, (r)));                                               \
	} while (0)

#define EXPECT_EXIT(r, code)                                                                     \
	EXPECT_TRUE(exited_with((r), (code)))                                                    \
	TH_LOG("want exit %d, got %s\nstdout:\n%s\nstderr:\n%s", (code),                         \
	       rt_status_str((r)->status, st_, sizeof(st_)), (r)->out, (r)->err)

#define EXPECT_HAS(text, want)                                                                   \
	EXPECT_NE(NULL, strstr((text), (want))) TH_LOG("no \"%s\" in:\n%s", (want), (text))

/* The number after `label` in text, or LONG_MIN. */
static long number_after(const char *text, const char *label)
{
	const char *p = strstr(text, label);

	return p ? strtol(p + strlen(label), NULL, 10) : LONG_MIN;
}

/* Do dumps name static functions here (libdw present)? Only then are names checked. */
static bool dumps_name_static_functions(void)
{
	char buf[768];

	rg_symbolize((uintptr_t)bug_replica, buf, sizeof(buf));
	return strstr(buf, "bug_replica") != NULL;
}

/* ------------------------------------------------------------------------ */
/* pipeline                                                                 */
/* ------------------------------------------------------------------------ */

TEST(pipeline_sums_squares)
{
	static const long ns[] = {0, 1, 20000};
	struct prog_out r;
	char st_[80], want[128], arg[32];

	for (size_t i = 0; i < ARRAY_SIZE(ns); i++) {
		long n = ns[i];

		snprintf(arg, sizeof(arg), "%ld", n);
		RUN(&r, pipeline_main, "pipeline", arg);
		EXPECT_EXIT(&r, 0);
		snprintf(want, sizeof(want), "sum of squares of 1..%ld: %ld\n", n,
			 n * (n + 1) * (2 * n + 1) / 6);
		EXPECT_HAS(r.out, want);
		EXPECT_HAS(r.out, "leaked goroutines: 0\n");
		EXPECT_STREQ("", r.err);
		prog_out_free(&r);
	}
}

/*
 * A stage fails: the error is the group's, and the cancel reaches every
 * stage: gen stops long before N, nobody is left blocked, and the leak
 * check (whose report would go to stderr) finds nothing.
 */
TEST(pipeline_error_cancels_every_stage)
{
	static const long n = 1000000, fail_at[] = {1, 100, 5000};
	struct prog_out r;
	char st_[80], want[128], arg[32];

	for (size_t i = 0; i < ARRAY_SIZE(fail_at); i++) {
		snprintf(arg, sizeof(arg), "%ld", fail_at[i]);
		RUN(&r, pipeline_main, "pipeline", "1000000", arg);
		EXPECT_EXIT(&r, 1);
		snprintf(want, sizeof(want), "error: square: item %ld: %s\n", fail_at[i],
			 strerror(ERANGE));
		EXPECT_HAS(r.out, want);
		long gen = number_after(r.out, "canceled after generating ");
		EXPECT_GE(gen, fail_at[i]) TH_LOG("%s", r.out);
		EXPECT_LT(gen, n / 2) TH_LOG("gen did not stop on cancel:\n%s", r.out);
		EXPECT_HAS(r.out, "leaked goroutines: 0\n");
		EXPECT_EQ(NULL, strstr(r.out, "sum of squares"));
		EXPECT_STREQ("", r.err);
		TH_LOG("failure at item %ld: generated %ld items", fail_at[i], gen);
		prog_out_free(&r);
	}
}

TEST(pipeline_fails_on_the_last_item)
{
	struct prog_out r;
	char st_[80];

	/* gen may be done by then: nothing left to cancel but the workers. */
	RUN(&r, pipeline_main, "pipeline", "500", "500");
	EXPECT_EXIT(&r, 1);
	EXPECT_HAS(r.out, "error: square: item 500: ");
	EXPECT_HAS(r.out, "leaked goroutines: 0\n");
	EXPECT_STREQ("", r.err);
	prog_out_free(&r);
}

/* ------------------------------------------------------------------------ */
/* bounded                                                                  */
/* ------------------------------------------------------------------------ */

static uint32_t ref_collatz(uint64_t n)
{
	uint32_t s = 0;

	for (; n != 1; s++)
		n = n & 1 ? 3 * n + 1 : n / 2;
	return s;
}

TEST(bounded_respects_the_limit)
{
	static const long limits[] = {1, 3, 8};
	const long jobs = 120;
	uint64_t best_n = 0;
	uint32_t best_s = 0;
	struct prog_out r;
	char st_[80], want[128], jarg[32], larg[32];

	for (uint64_t n = 1; n <= (uint64_t)jobs * BD_BLOCK; n++) {
		uint32_t s = ref_collatz(n);
		if (s > best_s) {
			best_s = s;
			best_n = n;
		}
	}
	snprintf(want, sizeof(want), "longest Collatz chain below %ld: n=%llu, %u steps\n",
		 jobs * BD_BLOCK + 1, (unsigned long long)best_n, best_s);
	snprintf(jarg, sizeof(jarg), "%ld", jobs);
	for (size_t i = 0; i < ARRAY_SIZE(limits); i++) {
		snprintf(larg, sizeof(larg), "%ld", limits[i]);
		RUN(&r, bounded_main, "bounded", jarg, larg);
		EXPECT_EXIT(&r, 0);
		EXPECT_HAS(r.out, want);
		long most = number_after(r.out, "most in flight ");
		EXPECT_LE(most, limits[i]) TH_LOG("%s", r.out);
		/* A job yields while it holds a token, and others are waiting to start. */
		EXPECT_GE(most, limits[i] > 1 ? 2 : 1) TH_LOG("%s", r.out);
		EXPECT_STREQ("", r.err);
		prog_out_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* pubsub                                                                   */
/* ------------------------------------------------------------------------ */

/* received + dropped == offered for subscriber `name`; returns its drops. */
static long check_sub(struct __test_metadata *_metadata, const char *out, const char *name,
		      long *offered, long *received)
{
	char label[64];
	const char *line;
	long o = -1, rcv = -1, d = -1;

	snprintf(label, sizeof(label), "%s: offered ", name);
	line = strstr(out, label);
	EXPECT_NE(NULL, line) TH_LOG("no line for %s:\n%s", name, out);
	if (!line)
		return 0;
	EXPECT_EQ(3, sscanf(line + strlen(label), "%ld, received %ld, dropped %ld", &o, &rcv, &d))
		TH_LOG("%s", line);
	EXPECT_EQ(o, rcv + d) TH_LOG("%s: messages neither received nor dropped", name);
	*offered = o;
	*received = rcv;
	return d;
}

TEST(pubsub_drops_for_slow_subscribers)
{
	static const long counts[] = {200, 10000};
	struct prog_out r;
	char st_[80], want[128], arg[32];

	for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
		long m = counts[i], o, rcv, drops = 0;

		snprintf(arg, sizeof(arg), "%ld", m);
		RUN(&r, pubsub_main, "pubsub", arg);
		EXPECT_EXIT(&r, 0);
		/* The slow subscriber reads nothing while publishing goes on: it keeps its buffer's worth. */
		snprintf(want, sizeof(want), "slow: offered %ld, received 8, dropped %ld\n", m, m - 8);
		EXPECT_HAS(r.out, want);
		drops += check_sub(_metadata, r.out, "slow", &o, &rcv);
		drops += check_sub(_metadata, r.out, "fast", &o, &rcv);
		EXPECT_EQ(m, o) TH_LOG("fast was subscribed throughout");
		drops += check_sub(_metadata, r.out, "leaver", &o, &rcv);
		/* Both publishers wait at their halfway mark until the leaver has left. */
		EXPECT_LE(o, m / 2) TH_LOG("leaver was offered second-half messages");
		EXPECT_GE(rcv, 4) TH_LOG("the leaver takes its buffer's worth before it leaves");
		snprintf(want, sizeof(want), "published %ld, dropped %ld, sends on closed channels 0\n",
			 m, drops);
		EXPECT_HAS(r.out, want);
		EXPECT_STREQ("", r.err);
		prog_out_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* bugs                                                                     */
/* ------------------------------------------------------------------------ */

static int count_substr(const char *text, const char *s)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, s)) != NULL; p += strlen(s))
		n++;
	return n;
}

TEST(bugs_leak)
{
	struct prog_out r;
	char st_[80];

	RUN(&r, bugs_main, "bugs", "leak");
	EXPECT_EXIT(&r, 1);
	EXPECT_HAS(r.out, "over a channel buffered for all: 0 leaked\n");
	EXPECT_HAS(r.out, "ringo caught it: rg_leakcheck found 2 leaked goroutines");
	EXPECT_HAS(r.err, "ringo: leakcheck: 2 goroutines still alive:\n");
	EXPECT_EQ(2, count_substr(r.err, " [chan send]:\n")) TH_LOG("%s", r.err);
	if (dumps_name_static_functions()) {
		EXPECT_HAS(r.err, "bug_replica");
	}
	prog_out_free(&r);
}

TEST(bugs_doubleclose)
{
	struct prog_out r;
	char st_[80], want[128];

	RUN(&r, bugs_main, "bugs", "doubleclose");
	EXPECT_EXIT(&r, 1);
	snprintf(want, sizeof(want), "rg_chan_close(done) = %d (%s)\n", -EPIPE, strerror(EPIPE));
	EXPECT_EQ(1, count_substr(r.out, want)) TH_LOG("%s", r.out);
	EXPECT_HAS(r.out, "ringo caught it: the second close returned -EPIPE");
	EXPECT_STREQ("", r.err);
	prog_out_free(&r);
}

TEST(bugs_wgmisuse)
{
	struct prog_out r;
	char st_[80];

	RUN(&r, bugs_main, "bugs", "wgmisuse");
	EXPECT_TRUE(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT)
		TH_LOG("child %s\nstderr:\n%s", rt_status_str(r.status, st_, sizeof(st_)), r.err);
	EXPECT_HAS(r.out, "wgmisuse: a worker calls rg_wg_done twice");
	EXPECT_EQ(NULL, strstr(r.out, "went unnoticed"));
	EXPECT_HAS(r.err, "ringo: fatal: sync: negative WaitGroup counter\n");
	EXPECT_HAS(r.err, "\ngoroutine 1 [chan receive]:\n");
	if (dumps_name_static_functions()) {
		EXPECT_HAS(r.err, "bug_sloppy_worker");
	}
	prog_out_free(&r);
}

TEST(bugs_deadlock)
{
	static const char msg[] = "ringo: fatal: all goroutines are asleep - deadlock!\n";
	struct prog_out r;
	char st_[80];

	RUN(&r, bugs_main, "bugs", "deadlock");
	EXPECT_EXIT(&r, 2);
	EXPECT_HAS(r.out, "deadlock: transfers a->b and b->a");
	EXPECT_EQ(NULL, strstr(r.out, "went unnoticed"));
	EXPECT_EQ(0, strncmp(r.err, msg, strlen(msg))) TH_LOG("%s", r.err);
	EXPECT_HAS(r.err, "\ngoroutine 1 [sync.WaitGroup.Wait]:\n");
	EXPECT_EQ(2, count_substr(r.err, " [sync.Mutex.Lock]:\n")) TH_LOG("%s", r.err);
	if (dumps_name_static_functions()) {
		EXPECT_HAS(r.err, "bug_a_to_b");
		EXPECT_HAS(r.err, "bug_b_to_a");
	}
	prog_out_free(&r);
}

TEST(bugs_ignorecancel)
{
	struct prog_out r;
	char st_[80];

	RUN(&r, bugs_main, "bugs", "ignorecancel");
	EXPECT_EXIT(&r, 1);
	EXPECT_HAS(r.out, "ringo caught it: rg_leakcheck found 1 goroutine still waiting");
	EXPECT_HAS(r.err, "ringo: leakcheck: 1 goroutine still alive:\n");
	EXPECT_EQ(1, count_substr(r.err, " [chan receive]:\n")) TH_LOG("%s", r.err);
	if (dumps_name_static_functions()) {
		EXPECT_HAS(r.err, "bug_deaf_worker");
		EXPECT_EQ(NULL, strstr(r.err, "bug_good_worker")) TH_LOG("%s", r.err);
	}
	prog_out_free(&r);
}

TEST(usage_errors)
{
	struct prog_out r;
	char st_[80];

	RUN(&r, bugs_main, "bugs");
	EXPECT_EXIT(&r, 64);
	EXPECT_HAS(r.err, "usage: bugs ");
	prog_out_free(&r);
	RUN(&r, bugs_main, "bugs", "racecondition");
	EXPECT_EXIT(&r, 64);
	prog_out_free(&r);
	RUN(&r, pipeline_main, "pipeline", "-5");
	EXPECT_EXIT(&r, 64);
	prog_out_free(&r);
	RUN(&r, bounded_main, "bounded", "10", "0");
	EXPECT_EXIT(&r, 64);
	prog_out_free(&r);
	RUN(&r, pubsub_main, "pubsub", "7");
	EXPECT_EXIT(&r, 64);
	prog_out_free(&r);
	RUN(&r, shutdown_main, "shutdown", "0");
	EXPECT_EXIT(&r, 64);
	prog_out_free(&r);
}

/* ------------------------------------------------------------------------ */
/* shutdown                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Run shutdown with argv, send it sigs once it is ready, expect exit code
 * and, in its output, want. TSan holds a signal until the thread enters a
 * call it intercepts, which ringo's raw futex waits are not: there the
 * signals came seconds late, or never.
 */
static void expect_shutdown(struct __test_metadata *_metadata, char *const argv[], const int *sigs,
			    int nsigs, int code, const char *want, struct prog_out *r)
{
	char st_[80];

	struct prog_run pr = {.prog_main = shutdown_main, .sigs = sigs, .nsigs = nsigs};

	if (RT_TSAN)
		SKIP(return, "TSan defers asynchronous signals past ringo's raw futex waits");
	for (int i = 0; i < 7 && argv[i]; i++)
		pr.argv[i] = argv[i];
	ASSERT_EQ(0, run_prog(&pr, r));
	ASSERT_NE(NULL, strstr(r->out, "ready\n")) TH_LOG("never ready; stderr:\n%s", r->err);
	EXPECT_EXIT(r, code);
	EXPECT_HAS(r->out, want);
}

TEST(shutdown_drains_every_accepted_job)
{
	char *argv[] = {"shutdown", "4", NULL};
	const int sigs[] = {SIGTERM};
	struct prog_out r = {0};

	expect_shutdown(_metadata, argv, sigs, 1, 0, "shutdown: accepted ", &r);
	if (r.out) {
		long accepted = number_after(r.out, "accepted "),
		     done = number_after(r.out, "done ");
		EXPECT_GE(accepted, 1) TH_LOG("%s", r.out);
		EXPECT_EQ(accepted, done) TH_LOG("%s", r.out);
	}
	prog_out_free(&r);
}

TEST(shutdown_second_signal_cuts_the_drain)
{
	/* One worker, 1 s jobs: the drain outlasts the second signal by far. */
	char *argv[] = {"shutdown", "1", "60000", "1000", NULL};
	const int sigs[] = {SIGTERM, SIGINT};
	struct prog_out r = {0};

	expect_shutdown(_metadata, argv, sigs, 2, 1, "shutdown: second signal", &r);
	prog_out_free(&r);
}

TEST(shutdown_drain_deadline)
{
	char *argv[] = {"shutdown", "1", "100", "1000", NULL};
	const int sigs[] = {SIGINT};
	struct prog_out r = {0};

	expect_shutdown(_metadata, argv, sigs, 1, 1, "shutdown: drain deadline passed", &r);
	prog_out_free(&r);
}

/* ------------------------------------------------------------------------ */
/* The built binaries, where this build has them                            */
/* ------------------------------------------------------------------------ */

TEST(built_binaries)
{
	static const struct {
		const char *name, *arg1, *arg2;
		int code;
	} runs[] = {
		{"pipeline", "2000", NULL, 0}, {"pipeline", "2000", "7", 1}, {"bounded", "20", "2", 0},
		{"pubsub", "200", NULL, 0},    {"bugs", "deadlock", NULL, 2}, {"bugs", "leak", NULL, 1},
	};
	char self[PATH_MAX], dir[PATH_MAX + 64], path[PATH_MAX + 128], st_[80];

	/* Paths longer than PATH_MAX are not ours to run: snprintf truncates, access fails. */
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	struct prog_out r;

	ASSERT_GT(n, 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	if (snprintf(dir, sizeof(dir), "%s/../examples/patterns", self) >= (int)sizeof(dir) ||
	    snprintf(path, sizeof(path), "%s/bugs", dir) >= (int)sizeof(path))
		SKIP(return, "path too long");
	if (access(path, X_OK) != 0) {
		TH_LOG("looked in %s", dir);
		SKIP(return, "no examples/patterns binaries beside this test");
	}
	for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
		struct prog_run pr = {.path = path};

		if (snprintf(path, sizeof(path), "%s/%s", dir, runs[i].name) >= (int)sizeof(path))
			SKIP(return, "path too long");
		pr.argv[0] = path;
		pr.argv[1] = (char *)runs[i].arg1;
		pr.argv[2] = (char *)runs[i].arg2;
		ASSERT_EQ(0, run_prog(&pr, &r));
		TH_LOG("%s %s %s", runs[i].name, runs[i].arg1, runs[i].arg2 ? runs[i].arg2 : "");
		EXPECT_EXIT(&r, runs[i].code);
		prog_out_free(&r);
	}
}

TEST_HARNESS_MAIN
