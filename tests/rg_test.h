// SPDX-License-Identifier: BSD-2-Clause
/*
 * Shared helpers for ringo's kselftest programs: sanitizer detection, clocks,
 * busy work, RSS, and running code in a forked child whose stderr is captured.
 * Including it also arms the hang watchdog (rg_watchdog.h).
 */
#ifndef RG_TEST_H
#define RG_TEST_H

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rg_watchdog.h"
#include "ringo.h"

/* The 6.1 harness ends ASSERT_*() in a for loop, so "ASSERT_EQ(a, b);" has an empty body. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wempty-body"
#endif

/* gcc defines __SANITIZE_*__; clang answers __has_feature(). */
#if defined(__SANITIZE_ADDRESS__)
#define RT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define RT_TSAN 1
#endif
#ifdef __has_feature
#if __has_feature(address_sanitizer)
#undef RT_ASAN
#define RT_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#undef RT_TSAN
#define RT_TSAN 1
#endif
#endif
#ifndef RT_ASAN
#define RT_ASAN 0
#endif
#ifndef RT_TSAN
#define RT_TSAN 0
#endif
#define RT_SANITIZED (RT_ASAN || RT_TSAN)

/*
 * TSan tracks every goroutine as a fiber and supports only a few thousand live
 * ones, and is ~10x slower: loops that only repeat a pattern are scaled down.
 */
#define RT_TSAN_SCALE(n, div) (RT_TSAN ? (n) / (div) : (n))

/*
 * Every test's rg_run checks for leaked goroutines (goleak's VerifyNone at
 * each test's end): the main goroutine ends with rg_leakcheck, which dumps
 * what is left, and a leak fails the test by an abort, whether or not it
 * looks at rg_run's result. A test that leaves goroutines behind on purpose
 * calls (rg_run)(fn, arg): the parentheses keep this macro out.
 */
struct rt_checked_run {
	void (*fn)(void *);
	void *arg;
	long leaks;
};

static inline void rt_checked_main(void *p)
{
	struct rt_checked_run *c = p;

	c->fn(c->arg);
	c->leaks = rg_leakcheck(NULL);
}

static inline int rt_run_checked(void (*fn)(void *), void *arg, const char *file, int line)
{
	struct rt_checked_run c = {.fn = fn, .arg = arg};

	if (!fn)
		return (rg_run)(fn, arg);
	int r = (rg_run)(rt_checked_main, &c);
	if (r == 0 && c.leaks) {
		fprintf(stderr, "%s:%d: %ld goroutine(s) leaked by this rg_run (dumps above)\n",
			file, line, c.leaks);
		abort();
	}
	return r;
}

#define rg_run(fn, arg) rt_run_checked((fn), (arg), __FILE__, __LINE__)

static inline uint64_t rt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU-bound work that the compiler cannot remove; it never parks or yields. */
static inline void rt_spin_ns(uint64_t ns)
{
	uint64_t end = rt_now_ns() + ns;
	volatile unsigned sink = 0;

	while (rt_now_ns() < end) {
		for (int i = 0; i < 64; i++)
			sink = sink * 33 + (unsigned)i;
	}
	(void)sink;
}

/* Resident set size in bytes, from /proc/self/statm (second field, pages). */
static inline long rt_rss_bytes(void)
{
	long size = 0, resident = -1;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* Address-space size in bytes (first field of statm). */
static inline long rt_vm_bytes(void)
{
	long size = -1;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &size) != 1)
		size = -1;
	fclose(f);
	return size < 0 ? -1 : size * sysconf(_SC_PAGESIZE);
}

/* Memory shared with a forked child, so it can report values to the test. */
static inline void *rt_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

struct rt_child {
	int status;      /* from waitpid */
	size_t len;      /* bytes kept in out */
	char out[16384]; /* the child's stderr (the start of it) */
};

/*
 * Run fn(arg) in a forked child with stderr sent to a pipe; fill *res with
 * the exit status and what it printed. The child exits 0 if fn returns.
 * Returns 0, or -errno if the child could not be started.
 */
static inline int rt_run_child(void (*fn)(void *), void *arg, struct rt_child *res)
{
	int fds[2];
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe(fds))
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(fds[0]);
		close(fds[1]);
		return -e;
	}
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		fn(arg);
		fflush(stdout);
		fflush(stderr);
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		char scratch[4096];
		char *dst = scratch;
		size_t room = sizeof(scratch);
		ssize_t n;

		/* Keep the first bytes; drain the rest so the child never blocks. */
		if (res->len < sizeof(res->out) - 1) {
			dst = res->out + res->len;
			room = sizeof(res->out) - 1 - res->len;
		}
		n = read(fds[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst != scratch)
			res->len += (size_t)n;
	}
	res->out[res->len] = '\0';
	close(fds[0]);
	while (waitpid(pid, &res->status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* True when the child was killed by SIGABRT (what ringo's fatal errors do). */
static inline bool rt_child_aborted(const struct rt_child *c)
{
	return WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT;
}

/* Printable description of a wait status, for TH_LOG. */
static inline const char *rt_status_str(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, size, "status 0x%x", status);
	return buf;
}

/* Fatal misuse: run main_fn under rg_run in a child; expect the message on stderr and SIGABRT. */
struct rt_fatal_case {
	void (*main_fn)(void *);
};

static inline void rt_fatal_child(void *arg)
{
	const struct rt_fatal_case *fc = arg;
	int rc = rg_run(fc->main_fn, NULL);

	/* Reached only if the runtime did not abort. */
	fprintf(stderr, "test: rg_run returned %d\n", rc);
	_exit(3);
}

static inline void rt_expect_fatal(struct __test_metadata *_metadata, void (*main_fn)(void *),
				   const char *reason)
{
	struct rt_fatal_case fc = {main_fn};
	struct rt_child *c = malloc(sizeof(*c));
	char want[256], st[80];

	ASSERT_NE(NULL, c);
	snprintf(want, sizeof(want), "ringo: fatal: %s", reason);
	ASSERT_EQ(0, rt_run_child(rt_fatal_child, &fc, c));
	EXPECT_TRUE(rt_child_aborted(c))
	TH_LOG("child %s; stderr:\n%s", rt_status_str(c->status, st, sizeof(st)), c->out);
	EXPECT_NE(NULL, strstr(c->out, want))
	TH_LOG("no \"%s\" in the child's stderr:\n%s", want, c->out);
	free(c);
}

#endif /* RG_TEST_H */
