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
#include <signal.h>
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

static void print_all(struct offcpu_bpf *skel, int top)
{
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

static void usage(FILE *f)
{
	fprintf(f, "Usage: ringo-offcpu [-m MIN_US] [-n TOP] [-T] [-v] -p PID [interval] [count]\n"
		   "Off-CPU time of a ringo program's Ms, by goroutine and held P.\n");
}

int main(int argc, char **argv)
{
	char path[PATH_MAX + 64];
	pid_t pid = 0;
	long interval = 99999999, count = -1, min_us = 0, top = 20;
	bool timestamps = false;
	int c, err;

	ringo_tool_init("ringo-offcpu");
	while ((c = getopt(argc, argv, "p:m:n:Tvh")) != -1) {
		switch (c) {
		case 'p':
			pid = (pid_t)ringo_parse_long(optarg, "PID");
			break;
		case 'm':
			min_us = ringo_parse_long(optarg, "MIN_US");
			break;
		case 'n':
			top = ringo_parse_long(optarg, "TOP");
			break;
		case 'T':
			timestamps = true;
			break;
		case 'v':
			ringo_verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc)
		interval = ringo_parse_long(argv[optind++], "interval");
	if (optind < argc)
		count = ringo_parse_long(argv[optind++], "count");
	if (pid <= 0) {
		usage(stderr);
		return 1;
	}
	ringo_check_bpf(true);
	ringo_find_binary(pid, NULL, path, sizeof(path));

	struct offcpu_bpf *skel = offcpu_bpf__open();
	if (!skel)
		ringo_load_failed(errno);
	skel->rodata->targ_tgid = pid;
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
		ringo_attach(progs[i], pid, path, names[i], i >= 6);
	/* Ms that run no goroutine while we trace: learnt from sysmon's snapshots. */
	ringo_attach(skel->progs.sched_m, pid, path, "sched_m", true);
	ringo_attach(skel->progs.sched_stats, pid, path, "sched_stats", true);
	if (!bpf_program__attach(skel->progs.sched_switch)) {
		fprintf(stderr, "%s: cannot attach tp_btf/sched_switch: %s\n", ringo_prog,
			strerror(errno));
		return 1;
	}

	/* Up to 1 s for sysmon's first snapshot, which names the Ms running no goroutine. */
	for (int i = 0; i < 100 && !skel->bss->snapshots; i++)
		usleep(10000);
	printf("Tracing off-CPU time of PID %d's Ms... Hit Ctrl-C to end.\n", pid);
	while (!ringo_exiting) {
		for (long s = 0; s < interval * 10 && !ringo_exiting; s++) {
			usleep(100000);
			if (kill(pid, 0) != 0 && errno == ESRCH) {
				ringo_exiting = 1;
				break;
			}
		}
		if (timestamps) {
			printf("\n");
			ringo_print_time(stdout);
			printf("\n");
		}
		print_all(skel, (int)top);
		if (count > 0 && --count == 0)
			break;
	}
	offcpu_bpf__destroy(skel);
	return 0;
}
