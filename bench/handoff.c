// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-handoff-bench: how soon the goroutines queued on a P run when its
 * goroutine blocks in a call ringo does not know of (a plain read() on an
 * empty pipe, no rg_syscall_enter), with GOMAXPROCS=1.
 *
 *   ringo-handoff-bench [trials]
 *
 * Each trial queues a goroutine (the P's runnext), then reads; the queued
 * goroutine notes when it starts and writes the pipe. Printed, in ns,
 * p50/p90/p99/max over the trials:
 *   from_read    read() called -> the queued goroutine starts
 *   from_switch  the kernel took the M off its CPU to block (the BPF
 *                program's timestamp: at schedule()'s entry on kernels
 *                with sched_entry_tp, 6.16+, else at the switch) -> the
 *                queued goroutine starts, split into notice (-> sysmon,
 *                woken, looks and lends) and start (-> an M with the lent
 *                P runs the goroutine)
 * and the BPF programs' own cost per context switch of the whole machine
 * (their run_time_ns over the switch program's run_cnt, with
 * BPF_ENABLE_STATS held during the run). RINGO_BPF=0 measures ringo
 * without the program (sysmon then lends a P only after refused
 * preemptions: two time slices); RINGO_BPF=tick keeps the program but not
 * its wake-ups (sysmon's own tick); RINGO_BPF=switch sees blocks at the
 * switch only, as on kernels before 6.16.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ringo.h>

#include "kblock.h"
#include "runtime.h"

#define SETTLE_DEADLINE_NS 2000000000LL

static int trials = 300;
static int pfd[2];
static _Atomic int64_t t_ran;
static int64_t *lat_read, *lat_switch, *lat_notice, *lat_start;
static int n_done, n_switch, n_unsettled;
static enum rg_kblock_state state;
static const char *why;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void queued(void *arg)
{
	atomic_store(&t_ran, now_ns());
	if (write(pfd[1], "x", 1) != 1)
		abort();
}

/* A P lent for the previous trial still alive (above GOMAXPROCS, not dead)? */
static bool lent_alive(struct rg_sched *s)
{
	int32_t g = atomic_load(&s->gomaxprocs), n = atomic_load(&s->nallp);

	for (int32_t i = g; i < n; i++)
		if (atomic_load(&s->allp[i]->status) != P_DEAD)
			return true;
	return false;
}

/* Start each trial alike: no lent P left, our M watched by the program. */
static bool settle(struct rg_sched *s)
{
	int64_t until = now_ns() + SETTLE_DEADLINE_NS;

	while (now_ns() < until) {
		if (!lent_alive(s) && (state != RG_KBLOCK_ON || rg_kblock_tracked(gettid())))
			return true;
		rg_sleep(50000);
	}
	return false;
}

static void bench_main(void *arg)
{
	struct rg_sched *s = rg_sched_current();
	int64_t until = now_ns() + 20 * 1000000000LL;
	char c;

	while (rg_kblock_state() == RG_KBLOCK_LOADING && now_ns() < until)
		rg_sleep(1000000);
	state = rg_kblock_state();
	why = rg_kblock_why();
	for (int i = 0; i < trials; i++) {
		if (!settle(s))
			n_unsettled++;
		rg_sleep(200000); /* the machine between trials, as a program between calls */
		atomic_store(&t_ran, 0);
		rg_go(queued, NULL);
		pid_t tid = gettid();
		int64_t t0 = now_ns();
		ssize_t r;
		do
			r = read(pfd[0], &c, 1);
		while (r < 0 && errno == EINTR);
		int64_t t1 = atomic_load(&t_ran);
		int64_t tb = rg_kblock_last_block(tid);
		struct rg_kblock_stats st;
		rg_kblock_get_stats(&st);
		lat_read[n_done++] = t1 - t0;
		if (tb >= t0 && tb <= t1 && st.last_lend >= tb && st.last_lend <= t1) {
			lat_notice[n_switch] = st.last_lend - tb;
			lat_start[n_switch] = t1 - st.last_lend;
			lat_switch[n_switch++] = t1 - tb;
		}
	}
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *name, int64_t *v, int n)
{
	if (n == 0) {
		printf("%-12s n=0\n", name);
		return;
	}
	qsort(v, n, sizeof(*v), cmp64);
	printf("%-12s n=%d p50=%" PRId64 " p90=%" PRId64 " p99=%" PRId64 " max=%" PRId64 " ns\n",
	       name, n, v[n / 2], v[n * 9 / 10], v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1],
	       v[n - 1]);
}

/* BPF_ENABLE_STATS: run_time_ns/run_cnt count while the returned fd is open. */
static int enable_bpf_stats(void)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.enable_stats.type = BPF_STATS_RUN_TIME;
	return (int)syscall(__NR_bpf, BPF_ENABLE_STATS, &attr, sizeof(attr));
}

int main(int argc, char **argv)
{
	uint64_t ns0 = 0, cnt0 = 0, ns1 = 0, cnt1 = 0;
	struct rusage ru;

	if (argc > 1)
		trials = atoi(argv[1]) > 0 ? atoi(argv[1]) : trials;
	lat_read = calloc(trials, sizeof(*lat_read));
	lat_switch = calloc(trials, sizeof(*lat_switch));
	lat_notice = calloc(trials, sizeof(*lat_notice));
	lat_start = calloc(trials, sizeof(*lat_start));
	if (!lat_read || !lat_switch || !lat_notice || !lat_start || pipe(pfd))
		return 1;
	int stats_fd = enable_bpf_stats();
	rg_maxprocs(1);
	if (rg_run(bench_main, NULL) != 0)
		return 1;
	const char *mode = getenv("RINGO_BPF");
	struct rg_kblock_stats st;
	rg_kblock_get_stats(&st);
	printf("mode: RINGO_BPF=%s, program %s (%s), blocks seen at %s; GOMAXPROCS=1, %d trials%s\n",
	       mode ? mode : "(unset)", state == RG_KBLOCK_ON ? "on" : "off", why,
	       st.at_entry ? "schedule()'s entry" : "the switch", trials,
	       n_unsettled ? " (some did not settle)" : "");
	report("from_read", lat_read, n_done);
	report("from_switch", lat_switch, n_switch);
	report("  notice", lat_notice, n_switch);
	report("  start", lat_start, n_switch);
	if (stats_fd >= 0 && rg_kblock_prog_stats(&ns1, &cnt1) && cnt1 > cnt0)
		printf("bpf: %" PRIu64 " runs, %.1f ns per context switch (machine-wide)\n",
		       cnt1 - cnt0, (double)(ns1 - ns0) / (double)(cnt1 - cnt0));
	getrusage(RUSAGE_SELF, &ru);
	printf("kblock: %" PRIu64 " records, %" PRIu64 " wake-ups, %" PRIu64 " lends (%" PRIu64
	       " ahead of the block's age, %" PRIu64 " of them given back); cpu %.3f s\n",
	       st.events, st.wakes, st.lends, st.early, st.withdrawn,
	       ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
		       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	return 0;
}
