/* SPDX-License-Identifier: BSD-2-Clause */
/* Benchmark driver mirroring Go's testing.B; see harness.h. */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t rb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rb_reset_timer(struct rb_b *b)
{
	if (b->timer_on)
		b->start_ns = rb_now_ns();
	b->duration_ns = 0;
}

void rb_start_timer(struct rb_b *b)
{
	if (!b->timer_on) {
		b->start_ns = rb_now_ns();
		b->timer_on = true;
	}
}

void rb_stop_timer(struct rb_b *b)
{
	if (b->timer_on) {
		b->duration_ns += rb_now_ns() - b->start_ns;
		b->timer_on = false;
	}
}

void rb_fatal(struct rb_b *b, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stdout, "\n--- FAIL: %s\n    ", b && b->name ? b->name : "ringo-bench");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputs("\nFAIL\n", stdout);
	fflush(stdout);
	exit(1);
}

void rb_go_failed(int err)
{
	rb_fatal(NULL, "rg_go: %s", strerror(-err));
}

void rb_set_parallelism(struct rb_b *b, int p)
{
	if (p >= 1)
		b->parallelism = p;
}

struct rb_parallel {
	struct rb_b *b;
	void (*body)(struct rb_pb *pb, void *arg);
	void *arg;
	uint64_t grain;
	_Atomic uint64_t n;
	rg_wg wg;
};

static void rb_parallel_worker(void *arg)
{
	struct rb_parallel *par = arg;
	struct rb_pb pb = {
		.global_n = &par->n,
		.grain = par->grain,
		.cache = 0,
		.bn = (uint64_t)par->b->N,
	};

	par->body(&pb, par->arg);
	rg_wg_done(&par->wg);
}

void rb_run_parallel(struct rb_b *b, void (*body)(struct rb_pb *pb, void *arg), void *arg)
{
	/* Static so a worker still returning from rg_wg_done never touches a dead frame. */
	static struct rb_parallel par;
	uint64_t grain = 0;
	int nprocs;

	if (b->N == 0)
		return;
	/* Grains of ~100 µs amortise the atomic add and still balance load. */
	if (b->previous_n > 0 && b->previous_duration_ns > 0)
		grain = (uint64_t)(1e5 * (double)b->previous_n / (double)b->previous_duration_ns);
	if (grain < 1)
		grain = 1;
	/* An iteration takes at least ~10 ns, so 1e4 is already 100 µs. */
	if (grain > 10000)
		grain = 10000;

	par.b = b;
	par.body = body;
	par.arg = arg;
	par.grain = grain;
	atomic_store(&par.n, 0);
	nprocs = b->parallelism * rg_maxprocs(0);
	rg_wg_add(&par.wg, nprocs);
	for (int i = 0; i < nprocs; i++)
		rb_go(rb_parallel_worker, &par);
	rg_wg_wait(&par.wg);
	if (atomic_load(&par.n) <= (uint64_t)b->N)
		rb_fatal(b, "RunParallel: body exited without rb_pb_next() == false");
}

/* With -pstats: per-P counters around the latest run, the one that is reported. */
static struct rg_pstats *stats_before, *stats_after;
static int stats_procs;

static void snapshot_pstats(struct rg_pstats *out, int nprocs)
{
	for (int p = 0; p < nprocs; p++) {
		if (rg_p_stats(p, &out[p]) != 0)
			memset(&out[p], 0, sizeof(out[p]));
	}
}

/* One timed run with b->N = n, as testing.(*B).runN. */
static void run_n(struct rb_b *b, rb_bench_fn fn, int64_t n)
{
	if (stats_before)
		snapshot_pstats(stats_before, stats_procs);
	b->N = n;
	b->parallelism = 1;
	b->timer_on = false;
	rb_reset_timer(b);
	rb_start_timer(b);
	fn(b);
	rb_stop_timer(b);
	b->previous_n = n;
	b->previous_duration_ns = b->duration_ns;
	if (stats_after)
		snapshot_pstats(stats_after, stats_procs);
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}
static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* Grow N until a run lasts the bench time, as testing.(*B).launch. */
static void launch(struct rb_b *b, rb_bench_fn fn, const struct rb_options *opts)
{
	if (opts->benchtime_n > 0) {
		/* N = 1 already ran; -benchtime 1x means use that run. */
		if (opts->benchtime_n > 1)
			run_n(b, fn, opts->benchtime_n);
		return;
	}
	for (int64_t n = 1; b->duration_ns < opts->benchtime_ns && n < 1000000000;) {
		int64_t last = n;
		int64_t prevns = b->duration_ns > 0 ? b->duration_ns : 1;

		/* Go's integer prediction, multiplying first; 128 bits so long -benchtime cannot overflow. */
		n = (int64_t)((__int128)opts->benchtime_ns * b->N / prevns);
		n += n / 5;
		n = min64(n, 100 * last);
		n = max64(n, last + 1);
		n = min64(n, 1000000000);
		run_n(b, fn, n);
	}
}

/* Go's prettyPrint: 10 digits before the point, four significant figures when small. */
static void print_ns_per_op(double x)
{
	double y = fabs(x);

	if (y == 0 || y >= 999.95)
		printf("%10.0f ns/op", x);
	else if (y >= 99.995)
		printf("%12.1f ns/op", x);
	else if (y >= 9.9995)
		printf("%13.2f ns/op", x);
	else if (y >= 0.99995)
		printf("%14.3f ns/op", x);
	else if (y >= 0.099995)
		printf("%15.4f ns/op", x);
	else if (y >= 0.0099995)
		printf("%16.5f ns/op", x);
	else if (y >= 0.00099995)
		printf("%17.6f ns/op", x);
	else
		printf("%18.7f ns/op", x);
}

static void bench_name(char *buf, size_t size, const char *name, int procs)
{
	if (procs != 1)
		snprintf(buf, size, "%s-%d", name, procs);
	else
		snprintf(buf, size, "%s", name);
}

static void print_pstats(const struct rg_pstats *before, const struct rg_pstats *after, int nprocs,
			 int64_t n)
{
	for (int p = 0; p < nprocs; p++) {
		uint64_t runs = after[p].runs - before[p].runs;

		printf("    P%-3d runs %12" PRIu64 " (%6.3f/op)  schedtick %12" PRIu64
		       "  steals %9" PRIu64 "  stolen %11" PRIu64 "  global_get %11" PRIu64 "\n",
		       p, runs, (double)runs / (double)n, after[p].schedtick - before[p].schedtick,
		       after[p].steals - before[p].steals, after[p].stolen - before[p].stolen,
		       after[p].global_get - before[p].global_get);
	}
}

static void print_header(void)
{
	char line[256], model[200] = "";
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');

			if (strncmp(line, "model name", 10) == 0 && colon) {
				snprintf(model, sizeof(model), "%s", colon + 2);
				model[strcspn(model, "\n")] = '\0';
				break;
			}
		}
		fclose(f);
	}
	printf("goos: linux\n");
#if defined(__x86_64__)
	printf("goarch: amd64\n");
#elif defined(__aarch64__)
	printf("goarch: arm64\n");
#endif
	printf("pkg: ringo\n");
	if (model[0])
		printf("cpu: %s\n", model);
}

int rb_run_all(const struct rb_benchmark *const *suites, const struct rb_options *opts)
{
	const struct rb_benchmark *matched[512];
	int nmatched = 0, maxprocs = 1, max_len = 0;
	char ext[32], name[256];
	regex_t re;
	int err;

	err = regcomp(&re, opts->bench_re, REG_EXTENDED | REG_NOSUB);
	if (err) {
		regerror(err, &re, name, sizeof(name));
		fprintf(stderr, "ringo-bench: invalid -bench regexp %s: %s\n", opts->bench_re,
			name);
		return 1;
	}
	for (int i = 0; i < opts->ncpus; i++)
		if (opts->cpus[i] > maxprocs)
			maxprocs = opts->cpus[i];
	bench_name(ext, sizeof(ext), "", maxprocs);
	for (int s = 0; suites[s]; s++) {
		for (const struct rb_benchmark *bm = suites[s]; bm->name; bm++) {
			int len;

			if (regexec(&re, bm->name, 0, NULL, 0) != 0)
				continue;
			if (nmatched == (int)(sizeof(matched) / sizeof(matched[0])))
				break;
			matched[nmatched++] = bm;
			len = (int)(strlen(bm->name) + 2 * strlen(ext) + 1);
			if (len > max_len)
				max_len = len;
		}
	}
	regfree(&re);
	if (nmatched == 0) {
		fprintf(stderr, "testing: warning: no benchmarks to run\n");
		printf("PASS\n");
		return 0;
	}

	print_header();
	for (int i = 0; i < nmatched; i++) {
		const struct rb_benchmark *bm = matched[i];

		for (int c = 0; c < opts->ncpus; c++) {
			int procs = opts->cpus[c];

			if (opts->pstats) {
				stats_procs = procs;
				stats_before = calloc((size_t)procs, sizeof(*stats_before));
				stats_after = calloc((size_t)procs, sizeof(*stats_after));
				if (!stats_before || !stats_after)
					rb_fatal(NULL, "out of memory");
			}
			for (int j = 0; j < opts->count; j++) {
				struct rb_b b = {.name = bm->name};

				rg_maxprocs(procs);
				bench_name(name, sizeof(name), bm->name, procs);
				printf("%-*s\t", max_len, name);
				fflush(stdout);
				b.name = name;

				run_n(&b, bm->fn, 1);
				if (b.skipped) {
					printf("\n    %s\n--- SKIP: %s\n", b.skipped, name);
					continue;
				}
				launch(&b, bm->fn, opts);
				printf("%8" PRId64 "\t", b.N);
				print_ns_per_op((double)b.duration_ns / (double)b.N);
				printf("\n");
				if (opts->pstats)
					print_pstats(stats_before, stats_after, procs, b.N);
				fflush(stdout);
				if (rg_maxprocs(0) != procs)
					fprintf(stderr, "testing: %s left GOMAXPROCS set to %d\n",
						name, rg_maxprocs(0));
			}
			free(stats_before);
			free(stats_after);
			stats_before = stats_after = NULL;
		}
	}
	printf("PASS\n");
	return 0;
}
