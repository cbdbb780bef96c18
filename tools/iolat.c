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
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "iolat.skel.h"

static const char *const phases[RINGO_IO_PHASES] = {
	[RINGO_IO_QUEUE] = "queue: io_submit -> kernel submit",
	[RINGO_IO_KERNEL] = "kernel: submit -> complete",
	[RINGO_IO_REAP] = "reap: kernel complete -> goroutine",
	[RINGO_IO_TOTAL] = "total: io_submit -> io_complete",
};
static bool msecs, per_op;

static void print_hists(int fd, bool multi)
{
	struct ringo_hist_key keys[1024], k, *prev = NULL;
	struct ringo_hist h;
	int n = 0;

	while (n < 1024 && bpf_map_get_next_key(fd, prev, &k) == 0) {
		keys[n] = k;
		prev = &keys[n++];
	}
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
		int phase = keys[i].id & 0xff;
		if (multi)
			printf("\npid = %u", keys[i].pid);
		if (per_op)
			printf("\nopcode = %d", keys[i].id >> 8);
		printf("\n%s\n", phase < RINGO_IO_PHASES ? phases[phase] : "?");
		ringo_print_log2_hist(h.slots, RINGO_MAX_SLOTS, msecs ? "msecs" : "usecs");
		bpf_map_delete_elem(fd, &keys[i]);
	}
}

int main(int argc, char **argv)
{
	const char *binary = NULL;
	char path[PATH_MAX + 64];
	pid_t pid = 0;
	long interval = 99999999, count = -1;
	bool timestamps = false;
	int c, err;

	ringo_tool_init("ringo-iolat");
	while ((c = getopt(argc, argv, "p:b:mOTvh")) != -1) {
		switch (c) {
		case 'p':
			pid = (pid_t)ringo_parse_long(optarg, "PID");
			break;
		case 'b':
			binary = optarg;
			break;
		case 'm':
			msecs = true;
			break;
		case 'O':
			per_op = true;
			break;
		case 'T':
			timestamps = true;
			break;
		case 'v':
			ringo_verbose = true;
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"Usage: ringo-iolat [-m] [-O] [-T] [-v] (-p PID | -b BINARY) "
				"[interval] [count]\n"
				"io_uring latency split at the kernel's tracepoints; -O per opcode.\n");
			return c == 'h' ? 0 : 1;
		}
	}
	if (optind < argc)
		interval = ringo_parse_long(argv[optind++], "interval");
	if (optind < argc)
		count = ringo_parse_long(argv[optind++], "count");
	ringo_check_bpf(false);
	ringo_find_binary(pid, binary, path, sizeof(path));

	struct iolat_bpf *skel = iolat_bpf__open();
	if (!skel)
		ringo_load_failed(errno);
	skel->rodata->targ_ms = msecs;
	skel->rodata->targ_per_op = per_op;
	if ((err = iolat_bpf__load(skel)))
		ringo_load_failed(err);
	ringo_attach(skel->progs.io_submit, pid, path, "io_submit", false);
	ringo_attach(skel->progs.io_complete, pid, path, "io_complete", false);
	ringo_need_tracefs();
	if (!bpf_program__attach(skel->progs.submit_req) ||
	    !bpf_program__attach(skel->progs.complete)) {
		fprintf(stderr, "%s: cannot attach the io_uring tracepoints: %s\n", ringo_prog,
			strerror(errno));
		return 1;
	}

	printf("Tracing io_uring latency... Hit Ctrl-C to end.\n");
	int fd = bpf_map__fd(skel->maps.hists);
	while (!ringo_exiting) {
		for (long s = 0; s < interval * 10 && !ringo_exiting; s++) {
			usleep(100000);
			if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
				ringo_exiting = 1;
				break;
			}
		}
		if (timestamps) {
			printf("\n");
			ringo_print_time(stdout);
			printf("\n");
		}
		print_hists(fd, pid <= 0);
		if (count > 0 && --count == 0)
			break;
	}
	iolat_bpf__destroy(skel);
	return 0;
}
