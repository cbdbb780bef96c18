// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-iolat - io_uring latency of a ringo program's operations, split
 * where the kernel's io_uring tracepoints see them (joined by user_data):
 * queue (probe io_submit -> io_uring_submit_req), kernel (-> io_uring_complete),
 * reap (-> probe io_complete, the goroutine resumes), and the total.
 *
 * USAGE: ringo-iolat [-m] [-O] [-T] [-v] (-p PID | -b BINARY) [interval] [count]
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "iolat.skel.h"

static const char *const phases[RINGO_IO_PHASES] = {
	[RINGO_IO_QUEUE] = "queue: io_submit -> kernel submit",
	[RINGO_IO_KERNEL] = "kernel: submit -> complete",
	[RINGO_IO_REAP] = "reap: kernel complete -> goroutine",
	[RINGO_IO_TOTAL] = "total: io_submit -> io_complete",
};
static bool msecs, per_op, multi;

static const char usage[] =
	"Usage: ringo-iolat [-m] [-O] [-T] [-v] (-p PID | -b BINARY) [interval] [count]\n"
	"io_uring latency split at the kernel's tracepoints; -O per opcode.\n";

static void print_header(const struct ringo_hist_key *k, void *arg)
{
	int phase = k->id & 0xff;

	if (multi)
		printf("\npid = %u", k->pid);
	if (per_op)
		printf("\nopcode = %d", k->id >> 8);
	printf("\n%s\n", phase < RINGO_IO_PHASES ? phases[phase] : "?");
}

static void print_hists(void *skel)
{
	ringo_print_hist_map(bpf_map__fd(((struct iolat_bpf *)skel)->maps.hists),
			     msecs ? "msecs" : "usecs", print_header, NULL);
}

int main(int argc, char **argv)
{
	struct ringo_opts o = {.interval = 99999999, .count = -1};
	char path[PATH_MAX + 64];
	int c, err;

	ringo_tool_init("ringo-iolat");
	while ((c = getopt(argc, argv, "p:b:mOTvh")) != -1) {
		switch (c) {
		case 'm':
			msecs = true;
			break;
		case 'O':
			per_op = true;
			break;
		default:
			ringo_parse_opt(&o, c, optarg, usage);
		}
	}
	ringo_parse_interval_count(&o, argc, argv);
	multi = o.pid <= 0;
	ringo_check_bpf(false);
	ringo_find_binary(o.pid, o.binary, path, sizeof(path));

	struct iolat_bpf *skel = iolat_bpf__open();
	if (!skel)
		ringo_load_failed(errno);
	skel->rodata->targ_ms = msecs;
	skel->rodata->targ_per_op = per_op;
	if ((err = iolat_bpf__load(skel)))
		ringo_load_failed(err);
	ringo_attach(skel->progs.io_submit, o.pid, path, "io_submit", false);
	ringo_attach(skel->progs.io_complete, o.pid, path, "io_complete", false);
	ringo_need_tracefs();
	if (!(skel->links.submit_req = bpf_program__attach(skel->progs.submit_req)) ||
	    !(skel->links.complete = bpf_program__attach(skel->progs.complete))) {
		fprintf(stderr, "%s: cannot attach the io_uring tracepoints: %s\n", ringo_prog,
			strerror(errno));
		return 1;
	}

	printf("Tracing io_uring latency... Hit Ctrl-C to end.\n");
	ringo_run_intervals(&o, false, print_hists, skel);
	ringo_detach();
	iolat_bpf__destroy(skel);
	return 0;
}
