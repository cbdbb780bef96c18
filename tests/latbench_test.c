// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-latbench (tools/latbench.c) run with a small -n and -j:
 *  - user_space: -u (no BPF, runs anywhere): every measurement user space
 *    can see has a non-zero count and ordered percentiles; --svg writes a plot;
 *  - kernel_split: as root, with BPF: every measurement, mwake_ring too, has
 *    samples, ordered percentiles, and a kernel share that is never larger
 *    than the traced total at any percentile (it is a part of every sample);
 *    every gsame, timer and (io_uring) nop iteration is one sample; with
 *    the epoll poller the io_uring measurements are left out; skips
 *    with the tool's reason when BPF cannot load;
 *  - bad_workload: an unknown -w name is an error.
 * Skips when the tool was not built (-Dbpf=disabled, no clang/bpftool/libbpf).
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "rg_test.h"

#define MS 1000000LL

static char tool[PATH_MAX + 64];

/* Every measurement the tool prints, in its order. */
static const char *const names[] = {
	"gsame", "gcross", "mwake_futex", "mwake_ring", "timer", "nop", "recv",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static bool have_tool(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return false;
	exe[n] = 0;
	/* meson: build/tests/latbench_test and build/tools/ringo-latbench. */
	snprintf(tool, sizeof(tool), "%s/../tools/ringo-latbench", dirname(exe));
	return access(tool, X_OK) == 0;
}

/* Run the tool; its stdout into out. Returns the exit status, -1 on a timeout. */
static int run(char *const argv[], char *out, size_t len, int timeout_s)
{
	int fds[2];
	size_t used = 0;
	int status;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	uint64_t end = rt_now_ns() + (uint64_t)timeout_s * 1000 * MS;
	for (;;) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		if (rt_now_ns() > end) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = read(fds[0], out + used, len - 1 - used);
		if (r <= 0)
			break;
		used += (size_t)r;
		if (used == len - 1)
			break;
	}
	out[used] = 0;
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return -1;
	return WEXITSTATUS(status);
}

struct pct {
	bool present;
	long long count, p50, p90, p99, p999, max;
};

/* The percentiles under key in one measurement's line, e.g. "total". */
static struct pct field(const char *line, const char *key)
{
	struct pct p = {0};
	char pat[32];
	const char *s;

	snprintf(pat, sizeof(pat), "\"%s\":{", key);
	s = strstr(line, pat);
	if (s && sscanf(s + strlen(pat),
			"\"count\":%lld,\"p50\":%lld,\"p90\":%lld,\"p99\":%lld,\"p999\":%lld,"
			"\"max\":%lld",
			&p.count, &p.p50, &p.p90, &p.p99, &p.p999, &p.max) == 6)
		p.present = true;
	return p;
}

/* The JSON line of measurement name (one per line), copied into line. */
static bool measurement(const char *json, const char *name, char *line, size_t len)
{
	char pat[64];
	const char *s;

	snprintf(pat, sizeof(pat), "{\"name\":\"%s\"", name);
	s = strstr(json, pat);
	if (!s)
		return false;
	snprintf(line, len, "%.*s", (int)strcspn(s, "\n"), s);
	return true;
}

static bool ordered(const struct pct *p)
{
	return p->present && p->count > 0 && p->p50 <= p->p90 && p->p90 <= p->p99 &&
	       p->p99 <= p->p999 && p->p999 <= p->max;
}

static char out[1 << 16];

/* A fixture only for TEST_F_TIMEOUT: the tool runs for seconds (minutes under ASan and load). */
FIXTURE(latbench){};
FIXTURE_SETUP(latbench)
{
}
FIXTURE_TEARDOWN(latbench)
{
}

TEST_F_TIMEOUT(latbench, user_space, 300)
{
	char line[4096], svg[64] = "/tmp/latbench_test-XXXXXX";
	int fd;

	if (!have_tool())
		SKIP(return, "ringo-latbench not built (meson -Dbpf: needs clang, bpftool, "
			     "libbpf and libelf)");
	fd = mkstemp(svg);
	ASSERT_LE(0, fd);
	close(fd);
	char *argv[] = {tool, "-u", "-j", "-n", "200", "--svg", svg, NULL};
	ASSERT_EQ(0, run(argv, out, sizeof(out), 240)) TH_LOG("output: %s", out);
	EXPECT_NE(NULL, strstr(out, "\"bpf\":false"));
	for (size_t i = 0; i < NNAMES; i++) {
		ASSERT_TRUE(measurement(out, names[i], line, sizeof(line)))
		TH_LOG("no %s in %s", names[i], out);
		struct pct total = field(line, "total");
		if (strcmp(names[i], "mwake_ring") == 0) {
			EXPECT_FALSE(total.present) TH_LOG("%s", line); /* only BPF sees it */
			continue;
		}
		EXPECT_TRUE(ordered(&total)) TH_LOG("%s", line);
		EXPECT_LT(0, total.p50) TH_LOG("%s", line);
		EXPECT_FALSE(field(line, "kernel").present) TH_LOG("%s", line);
	}
	/* Every iteration of these is a sample. */
	ASSERT_TRUE(measurement(out, "gsame", line, sizeof(line)));
	EXPECT_EQ(200, field(line, "total").count);
	ASSERT_TRUE(measurement(out, "timer", line, sizeof(line)));
	EXPECT_EQ(200, field(line, "total").count);

	FILE *f = fopen(svg, "r");
	ASSERT_NE(NULL, f);
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	line[n] = 0;
	fclose(f);
	unlink(svg);
	EXPECT_EQ(0, strncmp(line, "<svg ", 5)) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, ">gsame<"));
}

TEST_F_TIMEOUT(latbench, kernel_split, 300)
{
	char line[4096];

	if (!have_tool())
		SKIP(return, "ringo-latbench not built (meson -Dbpf: needs clang, bpftool, "
			     "libbpf and libelf)");
	if (geteuid() != 0)
		SKIP(return,
			   "not root: loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)");
	char *argv[] = {tool, "-j", "-n", "200", NULL};
	ASSERT_EQ(0, run(argv, out, sizeof(out), 240)) TH_LOG("output: %s", out);
	if (strstr(out, "\"bpf\":false")) {
		const char *why = strstr(out, "\"bpf_reason\":");
		SKIP(return, "BPF unavailable: %.200s", why ? why + 13 : out);
	}
	ASSERT_NE(NULL, strstr(out, "\"bpf\":true")) TH_LOG("%s", out);
	long long probe = -1;
	const char *s = strstr(out, "\"probe_ns\":");
	ASSERT_NE(NULL, s);
	sscanf(s + 11, "%lld", &probe);
	EXPECT_LT(0, probe);
	/* The io_uring tracepoints see nothing of the epoll poller (RINGO_POLLER=epoll). */
	bool uring = strstr(out, "\"poller\":\"io_uring\"") != NULL;
	for (size_t i = 0; i < NNAMES; i++) {
		ASSERT_TRUE(measurement(out, names[i], line, sizeof(line)))
		TH_LOG("no %s in %s", names[i], out);
		if (!uring && (!strcmp(names[i], "nop") || !strcmp(names[i], "recv") ||
			       !strcmp(names[i], "mwake_ring")))
			continue;
		struct pct total = field(line, "total"), traced = field(line, "traced"),
			   kernel = field(line, "kernel"), user = field(line, "user");
		EXPECT_TRUE(ordered(&total)) TH_LOG("%s", line);
		EXPECT_TRUE(ordered(&traced)) TH_LOG("%s", line);
		EXPECT_TRUE(ordered(&kernel)) TH_LOG("%s", line);
		EXPECT_TRUE(ordered(&user)) TH_LOG("%s", line);
		EXPECT_LT(0, traced.p50) TH_LOG("%s", line);
		/* kernel <= traced sample by sample, hence at every percentile. */
		EXPECT_EQ(traced.count, kernel.count);
		EXPECT_LE(kernel.p50, traced.p50) TH_LOG("%s", line);
		EXPECT_LE(kernel.p99, traced.p99) TH_LOG("%s", line);
		EXPECT_LE(kernel.max, traced.max) TH_LOG("%s", line);
	}
	/* Every iteration of these is one BPF sample; the io ones need the io_uring poller. */
	const char *every[] = {"gsame", "timer", "nop"};
	for (size_t i = 0; i < (uring ? 3 : 2); i++) {
		ASSERT_TRUE(measurement(out, every[i], line, sizeof(line)));
		EXPECT_EQ(200, field(line, "traced").count) TH_LOG("%s", line);
	}
}

TEST(bad_workload)
{
	if (!have_tool())
		SKIP(return, "ringo-latbench not built");
	char *argv[] = {tool, "-u", "-w", "gsame,bogus", NULL};
	EXPECT_EQ(1, run(argv, out, sizeof(out), 60));
}

TEST_HARNESS_MAIN
