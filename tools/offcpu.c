// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-offcpu - off-CPU time of a ringo program's threads (Ms) as the
 * kernel sees it (sched_switch), labelled with the goroutine that was
 * running and whether the M held a P: an M that sleeps in the kernel while
 * holding a P (a page fault, a libc call not wrapped in rg_syscall_enter, a
 * futex in a third-party library) stalls that P's goroutines.
 *
 * USAGE: ringo-offcpu [-m MIN_US] [-n TOP] [-T] [-v] -p PID [interval] [count]
 *
 * Prints two log2 histograms (M held a P / M without a P), then the top
 * (M, goroutine, held P, state) rows by total time. goid 0 is the M's
 * scheduler loop (g0); STATE is S (slept) or R (preempted, waiting for a CPU).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "offcpu.skel.h"

struct row {
	struct ringo_offcpu_key k;
	struct ringo_offcpu_val v;
};

static int by_total(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	return x->v.total_ns < y->v.total_ns ? 1 : x->v.total_ns > y->v.total_ns ? -1 : 0;
}

static long top = 20;

static void print_all(void *arg)
{
	struct offcpu_bpf *skel = arg;
	int hfd = bpf_map__fd(skel->maps.hists), tfd = bpf_map__fd(skel->maps.totals);
	static struct row rows[65536];
	struct ringo_offcpu_key k, *prev = NULL;
	struct ringo_hist h, zero = {};
	int n = 0;

	for (__u32 i = 0; i < 2; i++) {
		if (bpf_map_lookup_elem(hfd, &i, &h) != 0)
			continue;
		printf("\n%s\n", i ? "M held a P:" : "M without a P:");
		ringo_print_log2_hist(h.slots, RINGO_MAX_SLOTS, "usecs");
		bpf_map_update_elem(hfd, &i, &zero, BPF_ANY);
	}
	while (n < 65536 && bpf_map_get_next_key(tfd, prev, &k) == 0) {
		rows[n].k = k;
		prev = &rows[n].k;
		n++;
	}
	for (int i = 0; i < n; i++)
		bpf_map_lookup_elem(tfd, &rows[i].k, &rows[i].v);
	for (int i = 0; i < n; i++)
		bpf_map_delete_elem(tfd, &rows[i].k);
	qsort(rows, n, sizeof(rows[0]), by_total);
	printf("\n%-8s %-5s %-10s %-6s %-5s %8s %12s %10s\n", "PID", "M", "GOID", "HELD_P", "STATE",
	       "COUNT", "TOTAL_us", "MAX_us");
	for (int i = 0; i < n && i < top; i++)
		printf("%-8u %-5d %-10lld %-6s %-5s %8llu %12llu %10llu\n", rows[i].k.pid,
		       rows[i].k.m, (long long)rows[i].k.goid, rows[i].k.held_p ? "yes" : "no",
		       rows[i].k.blocked ? "S" : "R", (unsigned long long)rows[i].v.count,
		       (unsigned long long)rows[i].v.total_ns / 1000,
		       (unsigned long long)rows[i].v.max_ns / 1000);
}

static const char usage[] =
	"Usage: ringo-offcpu [-m MIN_US] [-n TOP] [-T] [-v] -p PID [interval] [count]\n"
	"Off-CPU time of a ringo program's Ms, by goroutine and held P.\n";

/* sysmon's snapshots name the Ms that run no goroutine while we trace: await the first. */
#define SNAPSHOT_WAIT_MS 5000

int main(int argc, char **argv)
{
	struct ringo_opts o = {.interval = 99999999, .count = -1};
	char path[PATH_MAX + 64];
	long min_us = 0;
	int c, err;

	ringo_tool_init("ringo-offcpu");
	while ((c = getopt(argc, argv, "p:m:n:Tvh")) != -1) {
		switch (c) {
		case 'm':
			min_us = ringo_parse_long(optarg, "MIN_US");
			break;
		case 'n':
			top = ringo_parse_long(optarg, "TOP");
			break;
		default:
			ringo_parse_opt(&o, c, optarg, usage);
		}
	}
	ringo_parse_interval_count(&o, argc, argv);
	if (o.pid <= 0)
		ringo_usage_exit(usage, 1);
	ringo_check_bpf(true);
	ringo_find_binary(o.pid, NULL, path, sizeof(path));

	struct offcpu_bpf *skel = offcpu_bpf__open();
	if (!skel)
		ringo_load_failed(errno);
	skel->rodata->targ_tgid = o.pid;
	skel->rodata->min_ns = (__u64)min_us * 1000;
	if ((err = offcpu_bpf__load(skel)))
		ringo_load_failed(err);
	static const char *const names[] = {"m_start",	     "m_exit",	     "g_start",
					    "g_park",	     "g_yield",	     "g_exit",
					    "syscall_enter", "syscall_exit", "m_park"};
	struct bpf_program *progs[] = {skel->progs.m_start,	  skel->progs.m_exit,
				       skel->progs.g_start,	  skel->progs.g_park,
				       skel->progs.g_yield,	  skel->progs.g_exit,
				       skel->progs.syscall_enter, skel->progs.syscall_exit,
				       skel->progs.m_park};
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++)
		ringo_attach(progs[i], o.pid, path, names[i], i >= 6);
	/* sched_m before sched_stats: a snapshot counted by sched_stats has named its Ms. */
	ringo_attach(skel->progs.sched_m, o.pid, path, "sched_m", true);
	ringo_attach(skel->progs.sched_stats, o.pid, path, "sched_stats", true);
	if (!(skel->links.sched_switch = bpf_program__attach(skel->progs.sched_switch))) {
		fprintf(stderr, "%s: cannot attach tp_btf/sched_switch: %s\n", ringo_prog,
			strerror(errno));
		return 1;
	}

	/* sysmon looks at the probes' semaphores at least every 100 ms. */
	for (int i = 0; i < SNAPSHOT_WAIT_MS / 10 && !skel->bss->snapshots && !ringo_exiting; i++)
		usleep(10000);
	if (!skel->bss->snapshots)
		fprintf(stderr,
			"%s: no scheduler snapshot from PID %d in %d ms: its Ms that run no "
			"goroutine are not seen until they run one\n",
			ringo_prog, o.pid, SNAPSHOT_WAIT_MS);
	printf("Tracing off-CPU time of PID %d's Ms... Hit Ctrl-C to end.\n", o.pid);
	ringo_run_intervals(&o, false, print_all, skel);
	ringo_detach();
	offcpu_bpf__destroy(skel);
	return 0;
}
