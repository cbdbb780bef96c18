// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-runqlat - goroutine scheduling latency: how long goroutines wait
 * runnable (created, readied, yielded, preempted, back from a system call)
 * before they run, as a log2 histogram (libbpf-tools' runqlat, for goroutines).
 *
 * USAGE: ringo-runqlat [-m] [-P | -L] [-T] [-v] (-p PID | -b BINARY) [interval] [count]
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
#include "runqlat.skel.h"

static bool per_p, per_m, msecs, timestamps;

static void print_hists(int fd, bool multi)
{
	struct ringo_hist_key keys[4096], k, *prev = NULL;
	struct ringo_hist h;
	int n = 0;

	while (n < 4096 && bpf_map_get_next_key(fd, prev, &k) == 0) {
		keys[n] = k;
		prev = &keys[n++];
	}
	/* Sorted by (pid, id) for stable output. */
	for (int i = 1; i < n; i++)
		for (int j = i;
		     j > 0 && (keys[j - 1].pid > keys[j].pid ||
			       (keys[j - 1].pid == keys[j].pid && keys[j - 1].id > keys[j].id));
		     j--) {
			k = keys[j];
			keys[j] = keys[j - 1];
			keys[j - 1] = k;
		}
	for (int i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &keys[i], &h) != 0)
			continue;
		if (multi)
			printf("\npid = %u\n", keys[i].pid);
		if (per_p)
			printf("\np = %d\n", keys[i].id);
		else if (per_m)
			printf("\nm = %d\n", keys[i].id);
		ringo_print_log2_hist(h.slots, RINGO_MAX_SLOTS, msecs ? "msecs" : "usecs");
		bpf_map_delete_elem(fd, &keys[i]);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ringo-runqlat [-m] [-P | -L] [-T] [-v] (-p PID | -b BINARY) [interval] "
		"[count]\n"
		"Summarize goroutine run queue (scheduling) latency as a histogram.\n"
		"  -p PID     trace this process          -b BINARY  every process running BINARY\n"
		"  -P         a histogram per P           -L         a histogram per M\n"
		"  -m         milliseconds                -T         timestamp each output\n"
		"  interval   seconds between outputs     count      number of outputs\n");
}

int main(int argc, char **argv)
{
	const char *binary = NULL;
	char path[PATH_MAX + 64];
	pid_t pid = 0;
	long interval = 99999999, count = -1;
	int c, err;

	ringo_tool_init("ringo-runqlat");
	while ((c = getopt(argc, argv, "p:b:PLmTvh")) != -1) {
		switch (c) {
		case 'p':
			pid = (pid_t)ringo_parse_long(optarg, "PID");
			break;
		case 'b':
			binary = optarg;
			break;
		case 'P':
			per_p = true;
			break;
		case 'L':
			per_m = true;
			break;
		case 'm':
			msecs = true;
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
	if (per_p && per_m) {
		fprintf(stderr, "%s: -P and -L are exclusive\n", ringo_prog);
		return 1;
	}
	if (optind < argc)
		interval = ringo_parse_long(argv[optind++], "interval");
	if (optind < argc)
		count = ringo_parse_long(argv[optind++], "count");
	ringo_check_bpf(false);
	ringo_find_binary(pid, binary, path, sizeof(path));

	struct runqlat_bpf *skel = runqlat_bpf__open();
	if (!skel)
		ringo_load_failed(errno);
	skel->rodata->targ_per_p = per_p;
	skel->rodata->targ_per_m = per_m;
	skel->rodata->targ_ms = msecs;
	if ((err = runqlat_bpf__load(skel)))
		ringo_load_failed(err);
	ringo_attach(skel->progs.g_create, pid, path, "g_create", false);
	ringo_attach(skel->progs.g_ready, pid, path, "g_ready", false);
	ringo_attach(skel->progs.g_start, pid, path, "g_start", false);
	ringo_attach(skel->progs.g_exit, pid, path, "g_exit", false);
	ringo_attach(skel->progs.g_yield, pid, path, "g_yield", true);
	ringo_attach(skel->progs.g_preempt, pid, path, "g_preempt", true);
	ringo_attach(skel->progs.syscall_exit, pid, path, "syscall_exit", true);

	printf("Tracing goroutine run queue latency... Hit Ctrl-C to end.\n");
	int fd = bpf_map__fd(skel->maps.hists);
	while (!ringo_exiting) {
		for (long s = 0; s < interval * 10 && !ringo_exiting; s++) {
			usleep(100000);
			if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
				ringo_exiting = 1;
				break;
			}
		}
		printf("\n");
		if (timestamps) {
			ringo_print_time(stdout);
			printf("\n");
		}
		print_hists(fd, pid <= 0);
		if (count > 0 && --count == 0)
			break;
	}
	runqlat_bpf__destroy(skel);
	return 0;
}
