/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ringo-fanout: start a million goroutines, wait for all of them, and show
 * how the scheduler spread them over the Ps.
 *
 *   ringo-fanout [-n GOROUTINES] [-rounds R] [-spawners S] [-yield K]
 *
 * Fan-out: one spawner goroutine per P starts its share of the workers and
 * calls rg_yield after every K starts. ringo never preempts, so without the
 * yield a spawner would keep its P until it had started every worker, and
 * all of them would wait, alive, each holding a stack. Yielding lets the
 * workers just started run at once on the spawner's own P (their stacks
 * recycled while still in cache) while the other Ps steal the rest; Go's
 * sysmon does the same by preempting after 10 ms, far more coarsely.
 * `-spawners 0 -yield 0` is the plain Go loop, main starting every worker.
 *
 * Each worker does a little work, stores its result in its own slot and
 * calls rg_wg_done; main waits on the WaitGroup (the fan-in) and checks that
 * every worker ran exactly once. All this R times: the first round also pays
 * for fresh stacks, later ones reuse them, as a long-running program would.
 * GOMAXPROCS is ringo's default; set RINGO_MAXPROCS to change it.
 */
#include <ringo.h>

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	long n;		    /* workers */
	long spawners;	    /* goroutines that start the workers; 0: main does */
	long yield_every;   /* a spawner yields after this many starts; 0: never */
	long rounds;	    /* fan-outs to run and time */
	uint64_t *result;   /* one slot per worker */
	rg_wg wg;	    /* counts unfinished workers */
	_Atomic long peak;  /* most goroutines alive that a spawner saw */
	_Atomic int go_err; /* an rg_go failure */
	int status;
} fan;

/* The "tiny amount of work": a splitmix64 round of the worker's index. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void worker(void *arg)
{
	uintptr_t i = (uintptr_t)arg;

	/* += rather than =, so a worker that ran twice shows up in the check. */
	fan.result[i] += mix(i) | 1;
	rg_wg_done(&fan.wg);
}

/* Sampled, not exact: rg_num_goroutines reads every P's counters. */
static void note_alive(void)
{
	long now = rg_num_goroutines();
	long seen = atomic_load_explicit(&fan.peak, memory_order_relaxed);

	while (now > seen &&
	       !atomic_compare_exchange_weak_explicit(&fan.peak, &seen, now, memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/* Start workers lo..hi-1. */
static void spawn_range(long lo, long hi)
{
	long every = fan.yield_every ? fan.yield_every : 1024;
	long left = every;

	for (long i = lo; i < hi; i++) {
		int err = rg_go(worker, (void *)(uintptr_t)i);

		if (err) {
			/* Keep the fan-in balanced so main still wakes up and reports. */
			atomic_store(&fan.go_err, err);
			rg_wg_add(&fan.wg, -(int)(hi - i));
			return;
		}
		if (--left == 0) {
			left = every;
			note_alive();
			if (fan.yield_every)
				rg_yield();
		}
	}
	note_alive();
}

static long range_start(long k)
{
	return (long)((__int128)fan.n * k / fan.spawners);
}

static void spawner(void *arg)
{
	long k = (long)(uintptr_t)arg;

	spawn_range(range_start(k), range_start(k + 1));
}

/* ---- output ------------------------------------------------------------ */

static bool utf8, color;

static const char *sgr(const char *code)
{
	return color ? code : "";
}

#define BOLD sgr("\033[1m")
#define DIM sgr("\033[2m")
#define GREEN sgr("\033[32m")
#define RED sgr("\033[31m")
#define CYAN sgr("\033[36m")
#define RESET sgr("\033[0m")

/* 1234567 -> "1,234,567" (no locale: thousands grouping must not depend on it). */
static const char *group(char *buf, size_t size, uint64_t v)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	size_t o = 0;

	for (int i = 0; i < len && o + 2 < size; i++) {
		if (i && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

static void bar(double frac, int width)
{
	static const char *const eighths[] = {
		"", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589",
	};
	int units = (int)(frac * width * 8 + 0.5);
	int cells = 0;

	if (units > width * 8)
		units = width * 8;
	fputs(CYAN, stdout);
	for (; units >= 8; units -= 8, cells++)
		fputs(utf8 ? "\u2588" : "#", stdout);
	if (units && utf8) {
		fputs(eighths[units], stdout);
		cells++;
	}
	fputs(RESET, stdout);
	for (; cells < width; cells++)
		putchar(' ');
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "15.87 M" or "402.67 k" goroutines per second. */
static void print_rate(double per_s)
{
	if (per_s >= 1e6)
		printf("%6.2f M goroutines/s", per_s / 1e6);
	else
		printf("%6.2f k goroutines/s", per_s / 1e3);
}

/* One fan-out and fan-in of fan.n workers; returns the seconds it took. */
static double run_round(uint64_t *bad)
{
	double t0 = now_s(), t1;

	atomic_store(&fan.peak, 0);
	rg_wg_add(&fan.wg, (int)fan.n);
	if (fan.spawners == 0) {
		spawn_range(0, fan.n);
	} else {
		for (long k = 0; k < fan.spawners; k++) {
			int err = rg_go(spawner, (void *)(uintptr_t)k);

			if (err) {
				atomic_store(&fan.go_err, err);
				rg_wg_add(&fan.wg, -(int)(range_start(k + 1) - range_start(k)));
			}
		}
	}
	rg_wg_wait(&fan.wg); /* the fan-in */
	t1 = now_s();

	/* Every slot must hold exactly its worker's value; clear it for the next round. */
	*bad = 0;
	for (long i = 0; i < fan.n; i++) {
		*bad += fan.result[i] != (mix((uint64_t)i) | 1);
		fan.result[i] = 0;
	}
	return t1 - t0;
}

static void fanout_main(void *arg)
{
	int nprocs = rg_maxprocs(0);
	struct rg_pstats *before = calloc((size_t)nprocs, sizeof(*before));
	struct rg_pstats *after = calloc((size_t)nprocs, sizeof(*after));
	uint64_t total_runs = 0, bad_total = 0;
	double best = 0;
	char a[32], b[32], c[32], d[32];

	(void)arg;
	if (!before || !after) {
		fprintf(stderr, "ringo-fanout: out of memory\n");
		fan.status = 1;
		return;
	}
	if (fan.spawners < 0)
		fan.spawners = nprocs;

	printf("\n%sringo-fanout%s %s %s goroutines %s %ld round%s on %d P%s "
	       "%s(GOMAXPROCS default)%s\n\n",
	       BOLD, RESET, utf8 ? "\u00b7" : "-", group(a, sizeof(a), (uint64_t)fan.n),
	       utf8 ? "\u00d7" : "x", fan.rounds, fan.rounds == 1 ? "" : "s", nprocs,
	       nprocs == 1 ? "" : "s", DIM, RESET);
	if (fan.spawners)
		printf("  %-11s%ld spawner goroutine%s start the workers", "fan-out", fan.spawners,
		       fan.spawners == 1 ? "" : "s");
	else
		printf("  %-11smain starts the workers", "fan-out");
	if (fan.yield_every)
		printf(", yielding every %ld\n", fan.yield_every);
	else
		printf(", never yielding\n");
	printf("  %-11srg_wg_wait until every worker has called rg_wg_done\n\n", "fan-in");
	fflush(stdout);

	for (int p = 0; p < nprocs; p++)
		rg_p_stats(p, &before[p]);
	for (long r = 0; r < fan.rounds; r++) {
		uint64_t bad;
		double s = run_round(&bad);

		if (r == 0 || s < best)
			best = s;
		bad_total += bad;
		printf("  round %-4ld%s%8.1f ms%s   ", r + 1, BOLD, s * 1e3, RESET);
		print_rate((double)fan.n / s);
		printf("   peak alive %-8s", group(a, sizeof(a), (uint64_t)atomic_load(&fan.peak)));
		if (bad)
			printf("%s%s %s of the workers did not run exactly once%s\n", RED,
			       utf8 ? "\u2717" : "FAILED:", group(b, sizeof(b), bad), RESET);
		else
			printf("%s%s%s each ran exactly once\n", GREEN, utf8 ? "\u2713" : "ok",
			       RESET);
		fflush(stdout);
	}
	for (int p = 0; p < nprocs; p++)
		rg_p_stats(p, &after[p]);

	printf("\n  %-11s%s%s", "best", BOLD, GREEN);
	print_rate((double)fan.n / best);
	printf("%s  %s(%.1f ms; %.0f ns per goroutine, all Ps together)%s\n", RESET, DIM,
	       best * 1e3, best * 1e9 / (double)fan.n, RESET);
	if (atomic_load(&fan.go_err))
		printf("  %-11s%srg_go failed: %s%s\n", "error", RED,
		       strerror(-atomic_load(&fan.go_err)), RESET);

	for (int p = 0; p < nprocs; p++)
		total_runs += after[p].runs - before[p].runs;
	printf("\n  %s%-4s %12s  %-30s %7s %10s %10s %12s%s\n", BOLD, "P", "runs", "share", "",
	       "steals", "stolen", "from global", RESET);
	for (int p = 0; p < nprocs; p++) {
		uint64_t runs = after[p].runs - before[p].runs;
		double share = total_runs ? (double)runs / (double)total_runs : 0;

		printf("  %-4d %12s  ", p, group(a, sizeof(a), runs));
		bar(share, 30);
		printf(" %6.1f%% %10s %10s %12s\n", share * 100,
		       group(b, sizeof(b), after[p].steals - before[p].steals),
		       group(c, sizeof(c), after[p].stolen - before[p].stolen),
		       group(d, sizeof(d), after[p].global_get - before[p].global_get));
	}
	printf("  %s%-4s %12s%s  %s(goroutine starts on each P over all rounds, spawners included)%s\n\n",
	       BOLD, "all", group(a, sizeof(a), total_runs), RESET, DIM, RESET);

	fan.status = bad_total || atomic_load(&fan.go_err) ? 1 : 0;
	free(before);
	free(after);
}

static void usage(FILE *f)
{
	fputs("usage: ringo-fanout [-n GOROUTINES] [-rounds R] [-spawners S] [-yield K]\n"
	      "  -n N          worker goroutines to start (default 1000000)\n"
	      "  -rounds R     fan-outs to run, each timed (default 3)\n"
	      "  -spawners S   goroutines that start them (default GOMAXPROCS; 0: main does)\n"
	      "  -yield K      a spawner yields after every K starts (default 64; 0: never)\n"
	      "`-spawners 0 -yield 0` is the plain Go loop `for ... { go worker(i) }`.\n"
	      "GOMAXPROCS is ringo's default; RINGO_MAXPROCS overrides it.\n",
	      f);
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* -name or --name. */
static bool is_flag(const char *arg, const char *name)
{
	if (arg[0] != '-')
		return false;
	arg += arg[1] == '-' ? 2 : 1;
	return strcmp(arg, name) == 0;
}

int main(int argc, char **argv)
{
	const char *codeset;
	int err;

	fan.n = 1000000;
	fan.spawners = -1; /* one per P, known once rg_run has started */
	fan.yield_every = 64;
	fan.rounds = 3;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];

		if (is_flag(opt, "n") && i + 1 < argc) {
			if (!parse_long(argv[++i], 1, 1L << 30, &fan.n))
				goto bad;
		} else if (is_flag(opt, "spawners") && i + 1 < argc) {
			if (!parse_long(argv[++i], 0, 1L << 20, &fan.spawners))
				goto bad;
		} else if (is_flag(opt, "rounds") && i + 1 < argc) {
			if (!parse_long(argv[++i], 1, 1000, &fan.rounds))
				goto bad;
		} else if (is_flag(opt, "yield") && i + 1 < argc) {
			if (!parse_long(argv[++i], 0, 1L << 30, &fan.yield_every))
				goto bad;
		} else if (is_flag(opt, "h") || is_flag(opt, "help")) {
			usage(stdout);
			return 0;
		} else {
			goto bad;
		}
	}

	setlocale(LC_CTYPE, "");
	codeset = nl_langinfo(CODESET);
	utf8 = codeset && strcmp(codeset, "UTF-8") == 0;
	color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");

	fan.result = calloc((size_t)fan.n, sizeof(*fan.result));
	if (!fan.result) {
		fprintf(stderr, "ringo-fanout: cannot allocate %ld results\n", fan.n);
		return 1;
	}
	/*
	 * Fault the pages in now so the workers don't: a first touch can cost
	 * tens of µs in a VM and is not what this measures. Volatile, because
	 * compilers turn a plain zeroing of calloc'd memory into nothing.
	 */
	for (size_t i = 0; i < (size_t)fan.n; i += 4096 / sizeof(*fan.result))
		((volatile uint64_t *)fan.result)[i] = 0;
	err = rg_run(fanout_main, NULL);
	free(fan.result);
	if (err) {
		fprintf(stderr, "ringo-fanout: rg_run: %s\n", strerror(-err));
		return 1;
	}
	return fan.status;

bad:
	usage(stderr);
	return 2;
}
