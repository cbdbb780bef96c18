// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-preempt-bench: what asynchronous preemption costs and how fast it
 * acts, the figures in docs/design.md's "Preemption" section.
 *
 *   ringo-preempt-bench [signal] [latency] [overhead] [cost]   (default: all)
 *
 *   signal    one preemption signal to the calling thread and back: tgkill,
 *             delivery, ringo's handler, sigreturn (ns, median of 5 runs)
 *   latency   GOMAXPROCS=1, two goroutines in call-free loops: how long each
 *             turn lasts beyond the time slice, p50/p90/p99/max (slice
 *             expiry -> the other goroutine runs); RINGO_TIMESLICE applies
 *   overhead  GOMAXPROCS goroutines of pure arithmetic, nothing to preempt:
 *             wall time with preemption on and with RINGO_ASYNCPREEMPT=0,
 *             alternated, and sysmon's own CPU time
 *   cost      one asynchronous preemption as the victim sees it: signal,
 *             trampoline, switch to the scheduler and back
 *
 * bench/go/preempt_test.go's BenchmarkPreemptLatency measures Go's latency
 * the same way.
 */
#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <ringo.h>

#include "preempt.h"

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *sorted, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);

	return n ? sorted[i < n ? i : n - 1] : 0;
}

/* ---- signal: one preemption signal round trip on this thread ---- */

#define SIGNALS 20000

static int64_t signal_ns[5];

static void signal_main(void *arg)
{
	pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);

	(void)arg;
	for (int r = 0; r < 5; r++) {
		int64_t t0 = now_ns();
		for (int i = 0; i < SIGNALS; i++)
			syscall(SYS_tgkill, pid, tid, SIGURG); /* handled before tgkill returns */
		signal_ns[r] = (now_ns() - t0) / SIGNALS;
	}
}

static void bench_signal(void)
{
	rg_run(signal_main, NULL);
	qsort(signal_ns, 5, sizeof(signal_ns[0]), cmp_i64);
	printf("signal: tgkill + delivery + handler + sigreturn: %" PRId64
	       " ns (median of 5 x %d)\n",
	       signal_ns[2], SIGNALS);
}

/* ---- latency: how far past the slice a call-free loop keeps the P ---- */

#define MAX_TURNS 100000

static struct {
	_Atomic uint32_t stop;
	_Atomic int owner;		   /* the spinner that ran last */
	_Atomic int64_t starts[MAX_TURNS]; /* when each turn began */
	_Atomic int64_t cpu[MAX_TURNS];	   /* the CPU time it got, in TSC ticks */
	_Atomic uint32_t nstarts;
	uint64_t gap_ticks; /* 20 us */
	double ns_per_tick;
	rg_wg wg;
} lat;

/*
 * Two spinners on one P. A spinner that finds the other's mark in owner
 * has just begun a turn: it notes the time and marks owner. A turn lasts
 * from its start to the next one (the switch between them takes
 * microseconds). Its CPU time is the time stamp counter summed over steps
 * under 20 us: a longer step is the kernel running something else. The loop
 * has no call but at a turn's start.
 */
static void lat_spinner(void *arg)
{
	int me = (int)(intptr_t)arg + 1;
	uint32_t turn = MAX_TURNS;
	uint64_t last = __rdtsc(), cpu = 0;

	while (!atomic_load_explicit(&lat.stop, memory_order_relaxed)) {
		uint64_t t = __rdtsc();
		if (t - last < lat.gap_ticks)
			cpu += t - last;
		last = t;
		if (atomic_load_explicit(&lat.owner, memory_order_relaxed) != me) {
			if (turn < MAX_TURNS)
				atomic_store_explicit(&lat.cpu[turn], (int64_t)cpu,
						      memory_order_relaxed);
			turn = atomic_fetch_add_explicit(&lat.nstarts, 1, memory_order_relaxed);
			if (turn < MAX_TURNS)
				atomic_store_explicit(&lat.starts[turn], now_ns(),
						      memory_order_relaxed);
			atomic_store_explicit(&lat.owner, me, memory_order_relaxed);
			cpu = 0;
			last = __rdtsc();
		}
	}
	rg_wg_done(&lat.wg);
}

static void lat_main(void *arg)
{
	int64_t seconds = (intptr_t)arg;

	rg_wg_add(&lat.wg, 2);
	rg_go(lat_spinner, (void *)0);
	rg_go(lat_spinner, (void *)1);
	rg_sleep(seconds * 1000000000LL);
	atomic_store(&lat.stop, 1);
	rg_wg_wait(&lat.wg);
}

static void print_dist(const char *what, int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	printf("  %s beyond the slice: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n", what,
	       pct(v, n, 50) / 1e6, pct(v, n, 90) / 1e6, pct(v, n, 99) / 1e6,
	       n ? v[n - 1] / 1e6 : 0.0);
}

static void bench_latency(int seconds)
{
	/* The TSC's rate, against the monotonic clock. */
	int64_t t0 = now_ns();
	uint64_t c0 = __rdtsc();
	while (now_ns() - t0 < 50000000)
		;
	lat.ns_per_tick = (double)(now_ns() - t0) / (double)(__rdtsc() - c0);
	lat.gap_ticks = (uint64_t)(20000 / lat.ns_per_tick);

	int procs = rg_maxprocs(1);
	rg_run(lat_main, (void *)(intptr_t)seconds);
	rg_maxprocs(procs);

	int64_t slice = rg_preempt_conf.slice_ns;
	size_t n = 0, nstarts = atomic_load(&lat.nstarts);
	int64_t *wall = malloc(sizeof(int64_t) * MAX_TURNS),
		*cpu = malloc(sizeof(int64_t) * MAX_TURNS);
	double wsum = 0, csum = 0;
	if (nstarts > MAX_TURNS)
		nstarts = MAX_TURNS;
	/* The first two turns began with the spinners, not with a preemption. */
	for (size_t i = 2; i + 1 < nstarts; i++, n++) {
		wall[n] = atomic_load(&lat.starts[i + 1]) - atomic_load(&lat.starts[i]);
		cpu[n] = (int64_t)((double)atomic_load(&lat.cpu[i]) * lat.ns_per_tick);
		wsum += (double)wall[n];
		csum += (double)cpu[n];
		wall[n] -= slice;
		cpu[n] -= slice;
	}
	printf("latency: slice %.1f ms, %zu turns in %d s, the spinners had %.0f%% of a CPU\n",
	       slice / 1e6, n, seconds, wsum > 0 ? 100.0 * csum / wsum : 0.0);
	print_dist("CPU time of a turn", cpu, n);
	print_dist("wall time of a turn", wall, n);
	/* A histogram of the wall times in 250 us buckets, for the docs. */
	int64_t bucket = 250000;
	size_t i = 0;
	while (i < n) {
		int64_t lo = wall[i] < 0 ? -bucket * ((-wall[i] + bucket - 1) / bucket) :
					   bucket * (wall[i] / bucket);
		size_t c = 0;
		while (i < n && wall[i] < lo + bucket)
			i++, c++;
		printf("  %+7.2f .. %+7.2f ms  %6zu  %5.1f%%\n", lo / 1e6, (lo + bucket) / 1e6, c,
		       100.0 * (double)c / (double)n);
	}
	free(wall);
	free(cpu);
}

/* ---- overhead: nothing to preempt ---- */

static struct {
	int64_t iters;
	rg_wg wg;
	uint64_t sink[64];
} ov;

static void ov_worker(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	uint64_t x = i + 1;

	for (int64_t k = 0; k < ov.iters; k++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	ov.sink[i % 64] = x;
	rg_wg_done(&ov.wg);
}

static void ov_main(void *arg)
{
	int procs = rg_maxprocs(0);

	(void)arg;
	rg_wg_add(&ov.wg, procs);
	for (uintptr_t i = 0; i < (uintptr_t)procs; i++)
		rg_go(ov_worker, (void *)i);
	rg_wg_wait(&ov.wg);
}

/* CPU time of the thread called ringo-sysmon, from /proc (ns; -1 if none). */
static int64_t sysmon_cpu_ns;

/* The CPU time of this process's thread called name (its per-thread CPU clock), or -1. */
static int64_t thread_cpu_by_name(const char *name)
{
	char path[300], buf[64];
	int64_t cpu = -1;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		bool match = fgets(buf, sizeof(buf), f) && strncmp(buf, name, strlen(name)) == 0;
		fclose(f);
		struct timespec ts;
		pid_t tid = (pid_t)atoi(e->d_name);
		/* Linux's per-thread CPU clock id, as pthread_getcpuclockid makes it. */
		if (match && clock_gettime((clockid_t)((~(unsigned)tid << 3) | 6), &ts) == 0)
			cpu = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	}
	if (d)
		closedir(d);
	return cpu;
}

static void ov_sysmon_main(void *arg)
{
	ov_main(arg);
	sysmon_cpu_ns = thread_cpu_by_name("ringo-sysmon");
}

static void bench_overhead(void)
{
	double on[5], off[5];

	/* Calibrate: about 2 s per run. */
	ov.iters = 20000000;
	int64_t t0 = now_ns();
	rg_run(ov_main, NULL);
	ov.iters = (int64_t)((double)ov.iters * 2e9 / (double)(now_ns() - t0));
	for (int r = 0; r < 5; r++) {
		for (int mode = 0; mode < 2; mode++) {
			bool enabled = (r + mode) % 2 == 0; /* alternate which goes first */
			if (enabled)
				unsetenv("RINGO_ASYNCPREEMPT");
			else
				setenv("RINGO_ASYNCPREEMPT", "0", 1);
			t0 = now_ns();
			rg_run(ov_main, NULL);
			(enabled ? on : off)[r] = (double)(now_ns() - t0);
		}
	}
	unsetenv("RINGO_ASYNCPREEMPT");
	double son = 0, soff = 0;
	for (int r = 0; r < 5; r++)
		son += on[r], soff += off[r];
	t0 = now_ns();
	rg_run(ov_sysmon_main, NULL);
	int64_t wall = now_ns() - t0;
	printf("overhead: %d goroutines x %" PRId64
	       " iterations, nothing to preempt: preemption on "
	       "%.3f s, off %.3f s (mean of 5 each): %+.2f%%; sysmon CPU %.3f ms in %.2f s (%.4f%%)\n",
	       rg_maxprocs(0), ov.iters, son / 5e9, soff / 5e9, 100.0 * (son - soff) / soff,
	       sysmon_cpu_ns / 1e6, wall / 1e9, 100.0 * (double)sysmon_cpu_ns / (double)wall);
}

/* ---- cost: one asynchronous preemption, on the victim ---- */

/*
 * The goroutine asks for its own preemption (sets its P's request, as sysmon
 * would) and sends the signal with a raw syscall instruction, so the signal
 * arrives with the pc in program code and the handler takes it: delivery,
 * handler, trampoline (XSAVEC/XRSTOR with live AVX-512 state), the switch to
 * g0, the global queue and the switch back. Alone on one P, it comes
 * straight back. The plain signal round trip is the "signal" figure.
 */
static int64_t raw_tgkill(int64_t pid, int64_t tid, int64_t sig)
{
	int64_t ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"((int64_t)SYS_tgkill), "D"(pid), "S"(tid), "d"(sig)
			 : "rcx", "r11", "memory");
	return ret;
}

#define COSTS 20000

static struct {
	int64_t ns[5];
	uint64_t preempted;
} cost;

static void cost_main(void *arg)
{
	pid_t pid = getpid();
	struct rg_preempt_stats a, b;

	(void)arg;
	rg_preempt_get_stats(&a);
	for (int r = 0; r < 5; r++) {
		int64_t t0 = now_ns();
		for (int i = 0; i < COSTS; i++) {
			struct rg_m *m = rg_getm(); /* alone on one P: it stays on this M */
			atomic_store(&m->p->preempt, 1);
			raw_tgkill(pid, m->tid, SIGURG);
		}
		cost.ns[r] = (now_ns() - t0) / COSTS;
	}
	rg_preempt_get_stats(&b);
	cost.preempted = b.async - a.async;
}

static void bench_cost(void)
{
	int procs = rg_maxprocs(1);

	rg_run(cost_main, NULL);
	rg_maxprocs(procs);
	qsort(cost.ns, 5, sizeof(cost.ns[0]), cmp_i64);
	printf("cost: signal + trampoline + switch out and back, alone on a P: %.2f us (median of 5 "
	       "x %d; %" PRIu64 " of %d preempted)\n",
	       cost.ns[2] / 1e3, COSTS, cost.preempted, 5 * COSTS);
}

int main(int argc, char **argv)
{
	bool all = argc < 2;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "all") == 0)
			all = true;
	for (int i = 0; i < 4; i++) {
		static const char *const names[] = {"signal", "latency", "overhead", "cost"};
		bool want = all;
		for (int a = 1; a < argc; a++)
			want |= strcmp(argv[a], names[i]) == 0;
		if (!want)
			continue;
		switch (i) {
		case 0:
			bench_signal();
			break;
		case 1:
			bench_latency(10);
			break;
		case 2:
			bench_overhead();
			break;
		case 3:
			bench_cost();
			break;
		}
		fflush(stdout);
	}
	return 0;
}
