// SPDX-License-Identifier: BSD-2-Clause
/*
 * GET /spin?us=N: burn N µs of CPU in a loop without calls, then answer
 * 200 "spun N us\n". It is the CPU-bound request of bench/net/run's bimodal
 * benchmark (`--only bimodal`), so it must be code a signal may stop: the
 * loop is the program's own text, with no call into libc, the vDSO or
 * ringo. bench/go/httpd has the same route and the same loop.
 *
 * The loop is a chain of dependent multiply-adds, one iteration about four
 * cycles on any x86_64 and with any compiler (the multiply's latency), and
 * its rate is measured once at start-up in thread CPU time: the fastest of
 * five 20 ms runs, the one least disturbed by other work on the machine.
 * So N µs means a fixed amount of work, the same in ringo and in Go.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

/* No request may keep a connection's goroutine busy for longer than this. */
#define SPIN_MAX_US 1000000

static double iters_per_us;
static volatile uint64_t spin_sink;

/* The loop: no call, and the asm keeps the compiler from shortening the chain. */
static uint64_t spin_iters(uint64_t n)
{
	uint64_t x = n;

	for (uint64_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void spin_calibrate(void)
{
	uint64_t n = 1000000;
	double best = 0;

	/* Grow n to about 20 ms, then keep the best of five runs. */
	for (int run = 0; run < 8; run++) {
		int64_t t0 = thread_cpu_ns();
		spin_sink = spin_iters(n);
		int64_t dt = thread_cpu_ns() - t0;
		double rate = dt > 0 ? (double)n * 1000.0 / (double)dt : 0;

		if (run >= 3 && rate > best)
			best = rate;
		if (run < 3 && dt > 0)
			n = (uint64_t)(rate * 20000.0);
	}
	iters_per_us = best > 0 ? best : 250.0;
	fprintf(stderr, HTTPD_NAME ": /spin: %.1f loop iterations per µs of CPU\n", iters_per_us);
}

/* The value of us= in a query string ("us=4", "a=b&us=4"); -1 if absent or malformed. */
static long query_us(const char *q, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (len - i > 3 && memcmp(q + i, "us=", 3) == 0) {
			long v = 0;
			size_t j = i + 3;

			if (j == len || q[j] < '0' || q[j] > '9')
				return -1;
			for (; j < len && q[j] >= '0' && q[j] <= '9'; j++) {
				v = v * 10 + (q[j] - '0');
				if (v > SPIN_MAX_US)
					return -1;
			}
			return j == len || q[j] == '&' ? v : -1;
		}
		while (i < len && q[i] != '&')
			i++;
		i++;
	}
	return -1;
}

void resp_spin(struct conn *c, const char *query, size_t query_len, bool head_only, bool close)
{
	long us = query_us(query, query_len);
	char body[48];
	int n;

	if (us < 0) {
		resp_error(c, 400, close);
		return;
	}
	spin_sink = spin_iters((uint64_t)((double)us * iters_per_us));
	n = snprintf(body, sizeof(body), "spun %ld us\n", us);
	resp_head(c, 200, "text/plain; charset=utf-8", (uint64_t)n, close, NULL);
	if (!head_only)
		out_append(c, body, (size_t)n);
}
