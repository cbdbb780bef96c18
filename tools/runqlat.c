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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "runqlat.skel.h"

static bool per_p, per_m, msecs, multi;

static const char usage[] =
	"Usage: ringo-runqlat [-m] [-P | -L] [-T] [-v] (-p PID | -b BINARY) [interval] "
	"[count]\n"
	"Summarize goroutine run queue (scheduling) latency as a histogram.\n"
	"  -p PID     trace this process          -b BINARY  every process running BINARY\n"
	"  -P         a histogram per P           -L         a histogram per M\n"
	"  -m         milliseconds                -T         timestamp each output\n"
	"  interval   seconds between outputs     count      number of outputs\n";

static void print_header(const struct ringo_hist_key *k, void *arg)
{
	if (multi)
		printf("\npid = %u\n", k->pid);
	if (per_p)
		printf("\np = %d\n", k->id);
	else if (per_m)
		printf("\nm = %d\n", k->id);
}

static void print_hists(void *skel)
{
	ringo_print_hist_map(bpf_map__fd(((struct runqlat_bpf *)skel)->maps.hists),
			     msecs ? "msecs" : "usecs", print_header, NULL);
}

int main(int argc, char **argv)
{
	struct ringo_opts o = {.interval = 99999999, .count = -1};
	char path[PATH_MAX + 64];
	int c, err;

	ringo_tool_init("ringo-runqlat");
	while ((c = getopt(argc, argv, "p:b:PLmTvh")) != -1) {
		switch (c) {
		case 'P':
			per_p = true;
			break;
		case 'L':
			per_m = true;
			break;
		case 'm':
			msecs = true;
			break;
		default:
			ringo_parse_opt(&o, c, optarg, usage);
		}
	}
	if (per_p && per_m) {
		fprintf(stderr, "%s: -P and -L are exclusive\n", ringo_prog);
		return 1;
	}
	ringo_parse_interval_count(&o, argc, argv);
	multi = o.pid <= 0;
	ringo_check_bpf(false);
	ringo_find_binary(o.pid, o.binary, path, sizeof(path));

	struct runqlat_bpf *skel = runqlat_bpf__open();
	if (!skel)
		ringo_load_failed(errno);
	skel->rodata->targ_per_p = per_p;
	skel->rodata->targ_per_m = per_m;
	skel->rodata->targ_ms = msecs;
	if ((err = runqlat_bpf__load(skel)))
		ringo_load_failed(err);
	ringo_attach(skel->progs.g_create, o.pid, path, "g_create", false);
	ringo_attach(skel->progs.g_ready, o.pid, path, "g_ready", false);
	ringo_attach(skel->progs.g_start, o.pid, path, "g_start", false);
	ringo_attach(skel->progs.g_exit, o.pid, path, "g_exit", false);
	ringo_attach(skel->progs.g_yield, o.pid, path, "g_yield", true);
	ringo_attach(skel->progs.g_preempt, o.pid, path, "g_preempt", true);
	ringo_attach(skel->progs.syscall_exit, o.pid, path, "syscall_exit", true);

	printf("Tracing goroutine run queue latency... Hit Ctrl-C to end.\n");
	ringo_run_intervals(&o, true, print_hists, skel);
	ringo_detach();
	runqlat_bpf__destroy(skel);
	return 0;
}
