/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ringo-bench: ringo's ports of Go's runtime benchmarks, driven like go test.
 *
 *   ringo-bench [-bench REGEX] [-benchtime 1s|100x] [-count N] [-cpu 1,2,...]
 *               [-pstats] [-list REGEX]
 *
 * Flags may also be written -test.NAME or --NAME, and -flag=value.
 */
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct rb_benchmark *const rb_suites[] = {
	rb_proc_benchmarks, rb_chan_benchmarks,	 rb_sync_benchmarks,
	rb_time_benchmarks, rb_floor_benchmarks, NULL,
};

static void usage(FILE *f)
{
	fputs("usage: ringo-bench [-bench REGEX] [-benchtime 1s|100x] [-count N]\n"
	      "                   [-cpu 1,2,...] [-pstats] [-list REGEX]\n"
	      "\n"
	      "  -bench REGEX      run benchmarks whose name matches (POSIX ERE; default .)\n"
	      "  -benchtime T      run each benchmark for at least T (Go duration: 1s,\n"
	      "                    500ms, 1m30s) or exactly Nx iterations (default 1s)\n"
	      "  -count N          run each benchmark N times per -cpu value (default 1)\n"
	      "  -cpu LIST         GOMAXPROCS values to run at (default: rg_maxprocs default)\n"
	      "  -pstats           print per-P scheduler counters of each reported run\n"
	      "  -list REGEX       list matching benchmarks and exit\n",
	      f);
}

/* Go's time.ParseDuration, restricted to non-negative values. */
static int parse_duration(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {
		{"ns", 1},   {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
		{"ms", 1e6}, {"s", 1e9},  {"m", 60e9},	      {"h", 3600e9},
	};
	double total = 0;

	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		char *end;
		double v;
		size_t best = 0;
		double mul = 0;

		if (!isdigit((unsigned char)*s) && *s != '.')
			return -EINVAL;
		v = strtod(s, &end);
		if (end == s)
			return -EINVAL;
		s = end;
		/* Longest unit that matches, so "ms" is not read as "m". */
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t len = strlen(units[i].unit);

			if (len > best && strncmp(s, units[i].unit, len) == 0) {
				best = len;
				mul = units[i].ns;
			}
		}
		if (!best)
			return -EINVAL;
		s += best;
		total += v * mul;
	}
	if (total > 9.2e18)
		return -ERANGE;
	*out = (int64_t)total;
	return 0;
}

static int parse_benchtime(const char *s, struct rb_options *o)
{
	size_t len = strlen(s);

	if (len > 1 && s[len - 1] == 'x') {
		char *end;
		long long n = strtoll(s, &end, 10);

		if (end != s + len - 1 || n <= 0)
			return -EINVAL;
		o->benchtime_n = n;
		o->benchtime_ns = 0;
		return 0;
	}
	o->benchtime_n = 0;
	return parse_duration(s, &o->benchtime_ns);
}

static int parse_cpus(const char *s, struct rb_options *o)
{
	o->ncpus = 0;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);

		if (end == s || v <= 0 || v > 1024 || (*end && *end != ','))
			return -EINVAL;
		if (o->ncpus == (int)(sizeof(o->cpus) / sizeof(o->cpus[0])))
			return -E2BIG;
		o->cpus[o->ncpus++] = (int)v;
		s = *end ? end + 1 : end;
	}
	return o->ncpus ? 0 : -EINVAL;
}

static int list_benchmarks(const char *pattern)
{
	regex_t re;

	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		fprintf(stderr, "ringo-bench: invalid -list regexp %s\n", pattern);
		return 1;
	}
	for (int s = 0; rb_suites[s]; s++)
		for (const struct rb_benchmark *bm = rb_suites[s]; bm->name; bm++)
			if (regexec(&re, bm->name, 0, NULL, 0) == 0)
				puts(bm->name);
	regfree(&re);
	return 0;
}

struct main_ctx {
	struct rb_options *opts;
	int status;
};

static void bench_main(void *arg)
{
	struct main_ctx *ctx = arg;

	ctx->status = rb_run_all(rb_suites, ctx->opts);
}

int main(int argc, char **argv)
{
	struct rb_options opts = {
		.bench_re = ".",
		.benchtime_ns = 1000000000,
		.count = 1,
	};
	struct main_ctx ctx = {.opts = &opts};
	const char *list = NULL;
	int err;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL, *eq;
		char flag[64];
		size_t len;

		if (arg[0] != '-') {
			fprintf(stderr, "ringo-bench: unexpected argument %s\n", arg);
			usage(stderr);
			return 2;
		}
		arg += arg[1] == '-' ? 2 : 1;
		if (strncmp(arg, "test.", 5) == 0)
			arg += 5;
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		if (len >= sizeof(flag))
			len = sizeof(flag) - 1;
		memcpy(flag, arg, len);
		flag[len] = '\0';

		if (strcmp(flag, "h") == 0 || strcmp(flag, "help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(flag, "pstats") == 0) {
			opts.pstats = true;
			continue;
		}
		if (strcmp(flag, "bench") && strcmp(flag, "benchtime") && strcmp(flag, "count") &&
		    strcmp(flag, "cpu") && strcmp(flag, "list")) {
			fprintf(stderr, "ringo-bench: unknown flag -%s\n", flag);
			usage(stderr);
			return 2;
		}
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			fprintf(stderr, "ringo-bench: flag needs an argument: -%s\n", flag);
			return 2;
		}

		err = 0;
		if (strcmp(flag, "bench") == 0) {
			opts.bench_re = val;
		} else if (strcmp(flag, "benchtime") == 0) {
			err = parse_benchtime(val, &opts);
		} else if (strcmp(flag, "count") == 0) {
			char *end;
			long n = strtol(val, &end, 10);

			if (*end || n <= 0 || n > 1000000)
				err = -EINVAL;
			opts.count = (int)n;
		} else if (strcmp(flag, "cpu") == 0) {
			err = parse_cpus(val, &opts);
		} else {
			list = val;
		}
		if (err) {
			fprintf(stderr, "ringo-bench: invalid value \"%s\" for flag -%s\n", val,
				flag);
			return 2;
		}
	}

	if (list)
		return list_benchmarks(list);
	if (opts.ncpus == 0) {
		/* As go test: the default GOMAXPROCS, which RINGO_MAXPROCS may set. */
		opts.cpus[0] = rg_maxprocs(0);
		opts.ncpus = 1;
	}

	/* Start at the first -cpu value, so a single one never resizes a running scheduler. */
	rg_maxprocs(opts.cpus[0]);
	err = rg_run(bench_main, &ctx);
	if (err) {
		fprintf(stderr, "ringo-bench: rg_run: %s\n", strerror(-err));
		return 1;
	}
	return ctx.status;
}
