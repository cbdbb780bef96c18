/* SPDX-License-Identifier: BSD-2-Clause */
/* What the ringo-* tools share: finding the traced binary, attaching, histograms. */
#ifndef RINGO_TOOLS_COMMON_H
#define RINGO_TOOLS_COMMON_H

#include <bpf/libbpf.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include <linux/types.h>

#include "ringo_tools.h"

extern const char *ringo_prog; /* the tool's name, for messages */
extern bool ringo_verbose;
extern volatile int ringo_exiting; /* set by SIGINT/SIGTERM */

/* libbpf's messages only with -v; signal handlers; bump nothing (kernel >= 5.11). */
void ringo_tool_init(const char *prog);

/* Root, or CAP_BPF and CAP_PERFMON: what loading and attaching BPF programs needs. */
bool ringo_have_bpf_caps(void);

/*
 * Exit 1 with a clear reason when this process cannot load BPF programs
 * (not root and no CAP_BPF+CAP_PERFMON, or a kernel without BPF or BTF).
 * need_btf: the tool uses tp_btf.
 */
void ringo_check_bpf(bool need_btf);

/* tp/ programs need tracefs: mount it at /sys/kernel/tracing if it is not there. */
void ringo_need_tracefs(void);

/* Called on a failed skeleton load: print why (permission, verifier) and exit 1. */
void ringo_load_failed(int err);

/*
 * The file that carries ringo's probes for pid: its executable, or a mapped
 * libringo.so (any mapped file with "ringo" USDT notes). With pid <= 0, binary
 * must be given (-b). Exits with a message on failure.
 */
void ringo_find_binary(pid_t pid, const char *binary, char *out, size_t len);

/* Does path carry USDT notes of provider "ringo"? */
bool ringo_has_probes(const char *path);

/*
 * Attach prog to ringo:name in path for pid (-1: every process). optional:
 * a missing probe is only reported with -v. Returns the link or NULL.
 */
struct bpf_link *ringo_attach(struct bpf_program *prog, pid_t pid, const char *path,
			      const char *name, bool optional);
/* Destroy every link ringo_attach made: before the skeleton's destroy. */
void ringo_detach(void);

/* libbpf-tools' print_log2_hist format. */
void ringo_print_log2_hist(const __u32 *slots, int n, const char *unit);

/* "HH:MM:SS " for -T. */
void ringo_print_time(FILE *f);

/* Parse a positive integer argument or exit with a message. */
long ringo_parse_long(const char *s, const char *what);

/* What every tool's command line may have: -p PID, -b BINARY, -T, [interval] [count]. */
struct ringo_opts {
	pid_t pid;	    /* -p; 0: not given */
	const char *binary; /* -b */
	bool timestamps;    /* -T */
	long interval;	    /* preset to the tool's default (its unit) */
	long count;	    /* outputs; -1: until Ctrl-C */
};

/* usage on stdout (status 0) or stderr, then exit(status). */
void ringo_usage_exit(const char *usage, int status) __attribute__((noreturn));

/*
 * The options the tools share, for getopt's c: -p, -b, -T, -v, and -h (usage on
 * stdout, exit 0). Any other c is a usage error (usage on stderr, exit 1).
 */
void ringo_parse_opt(struct ringo_opts *o, int c, const char *arg, const char *usage);

/* [interval] [count] from argv[optind]; returns how many arguments are left over. */
int ringo_parse_interval_count(struct ringo_opts *o, int argc, char **argv);

/*
 * Every o->interval seconds, until o->count outputs, Ctrl-C or the exit of
 * process o->pid (> 0): with -T a blank line and the time (blank: the blank
 * line even without -T), then print(arg). Ctrl-C still gets its output.
 */
void ringo_run_intervals(struct ringo_opts *o, bool blank, void (*print)(void *), void *arg);

/*
 * Print and clear every histogram of a ringo_hist_key -> ringo_hist map, in
 * (pid, id) order for stable output; header(key, arg) prints what precedes each.
 */
void ringo_print_hist_map(int fd, const char *unit,
			  void (*header)(const struct ringo_hist_key *k, void *arg), void *arg);

#endif /* RINGO_TOOLS_COMMON_H */
