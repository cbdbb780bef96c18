/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bounded: bounded parallelism with a semaphore channel.
 *
 *   bounded [JOBS [LIMIT]]
 *
 * Every job gets its own goroutine, but a buffered channel of capacity
 * LIMIT works as a counting semaphore: a goroutine sends a token before it
 * starts working and receives one back when it is done, so at most LIMIT
 * jobs run at once however many goroutines exist. (Go code writes the same
 * thing as `sem <- struct{}{}` ... `<-sem`.) Taking the token in main,
 * before rg_go, would bound the number of goroutines too; here the
 * goroutines are cheap and the work is what must be bounded.
 *
 * Job i finds the longest Collatz chain among the numbers of block i. The
 * work yields now and then, as long computations may: ringo would preempt
 * it after a 10 ms time slice anyway, but a yield lets the goroutines
 * sharing its P in sooner.
 *
 * stdout:  "jobs J, limit L, most in flight M"
 *          "longest Collatz chain below X: n=N, S steps"
 * Exit status 0; 1 if more than LIMIT jobs ever ran at once.
 */
#include <ringo.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BD_BLOCK 1000 /* numbers per job */

struct bd_result {
	uint64_t n;
	uint32_t steps;
};

static struct {
	long jobs, limit;
	rg_chan *sem; /* the tokens: capacity = limit */
	rg_wg wg;
	atomic_long in_flight, max_in_flight;
	struct bd_result *results; /* one slot per job: no lock needed */
} bd;

static uint32_t bd_collatz_steps(uint64_t n)
{
	uint32_t steps = 0;

	while (n != 1) {
		n = n & 1 ? 3 * n + 1 : n / 2;
		steps++;
	}
	return steps;
}

static void bd_job(void *arg)
{
	long i = (long)(intptr_t)arg;
	struct bd_result best = {0, 0};

	rg_chan_send(bd.sem, NULL); /* acquire: blocks while LIMIT jobs run */

	long now = atomic_fetch_add(&bd.in_flight, 1) + 1;
	long max = atomic_load(&bd.max_in_flight);
	while (now > max && !atomic_compare_exchange_weak(&bd.max_in_flight, &max, now))
		;

	for (uint64_t n = (uint64_t)i * BD_BLOCK + 1; n <= (uint64_t)(i + 1) * BD_BLOCK; n++) {
		uint32_t s = bd_collatz_steps(n);
		if (s > best.steps)
			best = (struct bd_result){n, s};
		if (n % 250 == 0)
			rg_yield(); /* the goroutines sharing our P need not wait for a slice's end */
	}
	bd.results[i] = best;

	atomic_fetch_sub(&bd.in_flight, 1);
	rg_chan_recv(bd.sem, NULL); /* release */
	rg_wg_done(&bd.wg);
}

static void bd_main(void *arg)
{
	struct bd_result best = {0, 0};

	bd.sem = rg_chan_make(0, (size_t)bd.limit);
	bd.results = calloc((size_t)bd.jobs, sizeof(*bd.results));
	if (!bd.sem || !bd.results) {
		fprintf(stderr, "bounded: out of memory\n");
		exit(4);
	}
	for (long i = 0; i < bd.jobs; i++) {
		rg_wg_add(&bd.wg, 1);
		int err = rg_go(bd_job, (void *)(intptr_t)i);
		if (err) {
			fprintf(stderr, "bounded: rg_go: %s\n", strerror(-err));
			exit(4);
		}
	}
	rg_wg_wait(&bd.wg);

	for (long i = 0; i < bd.jobs; i++)
		if (bd.results[i].steps > best.steps)
			best = bd.results[i];
	printf("jobs %ld, limit %ld, most in flight %ld\n", bd.jobs, bd.limit,
	       atomic_load(&bd.max_in_flight));
	printf("longest Collatz chain below %ld: n=%llu, %u steps\n", bd.jobs * BD_BLOCK + 1,
	       (unsigned long long)best.n, best.steps);
	rg_chan_free(bd.sem);
	free(bd.results);
}

int main(int argc, char **argv)
{
	bd.jobs = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
	bd.limit = argc > 2 ? strtol(argv[2], NULL, 10) : 4;
	if (argc > 3 || bd.jobs < 1 || bd.jobs > 100000 || bd.limit < 1 || bd.limit > 1000) {
		fprintf(stderr, "usage: bounded [JOBS [LIMIT]]   (1..100000 jobs, limit 1..1000)\n");
		return 64;
	}
	int err = rg_run(bd_main, NULL);
	if (err) {
		fprintf(stderr, "bounded: rg_run: %s\n", strerror(-err));
		return 4;
	}
	return atomic_load(&bd.max_in_flight) <= bd.limit ? 0 : 1;
}
