/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bugs: five classic concurrency bugs, and how ringo catches each one.
 *
 *   bugs leak|doubleclose|wgmisuse|deadlock|ignorecancel
 *
 * leak          first-answer-wins search: the losing replicas block forever
 *               sending on an unbuffered channel nobody reads; rg_leakcheck
 *               reports them (and finds none once the channel is buffered).
 * doubleclose   two workers each close the shared `done` channel; the second
 *               rg_chan_close returns -EPIPE (Go panics).
 * wgmisuse      a worker calls rg_wg_done on its error path and again at the
 *               end; ringo aborts: "sync: negative WaitGroup counter".
 * deadlock      two transfers lock the same two accounts in opposite order;
 *               ringo prints "all goroutines are asleep - deadlock!" with a
 *               dump of who waits for what, and exits 2.
 * ignorecancel  a worker waits for jobs but never watches `done`; after the
 *               producer cancels, rg_leakcheck finds it still parked.
 *
 * Each mode prints on stdout what it does and what ringo caught; goroutine
 * dumps go to stderr. Exit status: 1 when ringo caught the bug (leak,
 * doubleclose, ignorecancel), 0 if it went unnoticed; wgmisuse ends with
 * SIGABRT and deadlock with status 2, from ringo itself; 64 for bad usage.
 */
#include <ringo.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bug_status;

/* stdout may be a pipe, fully buffered: flush before ringo may abort the process. */
static void __attribute__((format(printf, 1, 2))) bug_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* ---- leak -------------------------------------------------------------- */

#define BUG_REPLICAS 3

static void bug_replica(void *arg)
{
	rg_chan *answers = arg;
	int answer = (int)rg_goid();

	/* With no room in the channel, blocks until someone receives: that happens once. */
	rg_chan_send(answers, &answer);
}

/* Ask every replica, return the first answer. The buffer size is the bug or its fix. */
static int bug_first_answer(size_t buffer)
{
	rg_chan *answers = rg_chan_make(sizeof(int), buffer);
	int answer = 0;

	for (int i = 0; i < BUG_REPLICAS; i++)
		rg_go(bug_replica, answers);
	rg_chan_recv(answers, &answer);
	return answer; /* the channel stays allocated: leaked goroutines still use it */
}

static void bug_leak(void)
{
	long n;

	/* The fix first, for contrast: room for every answer, so the losers never block. */
	bug_first_answer(BUG_REPLICAS);
	n = rg_leakcheck(NULL);
	bug_say("fixed: first answer from %d replicas over a channel buffered for all: "
		"%ld leaked\n", BUG_REPLICAS, n);

	bug_say("leak: first answer from %d replicas over an unbuffered channel\n", BUG_REPLICAS);
	bug_first_answer(0);
	n = rg_leakcheck(NULL);
	bug_say("ringo caught it: rg_leakcheck found %ld leaked goroutine%s (dumps on stderr)\n", n,
		n == 1 ? "" : "s");
	if (n > 0)
		bug_status = 1;
}

/* ---- doubleclose ------------------------------------------------------- */

static struct {
	rg_chan *done;
	rg_wg wg;
	atomic_int epipe;
} dc;

static void bug_closing_worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	int err;

	/* ... the work ... then "tell everyone we are done", as each worker thinks only it does. */
	err = rg_chan_close(dc.done);
	if (err) {
		atomic_fetch_add(&dc.epipe, 1);
		bug_say("worker %d: rg_chan_close(done) = %d (%s)\n", id, err, strerror(-err));
	}
	rg_wg_done(&dc.wg);
}

static void bug_doubleclose(void)
{
	dc.done = rg_chan_make(0, 0);
	bug_say("doubleclose: two workers both close the done channel\n");
	rg_wg_add(&dc.wg, 2);
	rg_go(bug_closing_worker, (void *)1);
	rg_go(bug_closing_worker, (void *)2);
	rg_wg_wait(&dc.wg);
	if (atomic_load(&dc.epipe)) {
		bug_say("ringo caught it: the second close returned -EPIPE (Go would panic: close of "
			"closed channel)\n");
		bug_status = 1;
	}
	rg_chan_free(dc.done);
}

/* ---- wgmisuse ---------------------------------------------------------- */

static struct {
	rg_wg wg;
	rg_chan *results;
} wm;

static void bug_sloppy_worker(void *arg)
{
	int err = -EIO; /* say the work failed */

	if (err)
		rg_wg_done(&wm.wg); /* the error path signals completion... */
	rg_wg_done(&wm.wg);	    /* ...and so does the normal end: counter -1 */
	rg_chan_send(wm.results, &err);
}

static void bug_wgmisuse(void)
{
	int err;

	wm.results = rg_chan_make(sizeof(int), 0);
	bug_say("wgmisuse: a worker calls rg_wg_done twice; ringo aborts:\n");
	rg_wg_add(&wm.wg, 1);
	rg_go(bug_sloppy_worker, NULL);
	/*
	 * Collect the result, then wait for the group. (Were main already in
	 * Wait, the first Done would wake it and its Wait would trip over the
	 * negative counter too: two fatal errors at once.)
	 */
	rg_chan_recv(wm.results, &err); /* not reached: the second Done is fatal */
	rg_wg_wait(&wm.wg);
	bug_say("the misuse went unnoticed\n");
}

/* ---- deadlock ---------------------------------------------------------- */

struct bug_account {
	rg_mutex mu;
	long balance;
};

static struct {
	struct bug_account a, b;
	rg_wg both_locked, done;
} dl;

/* Lock `from`, then `to`: two opposite transfers each wait for the other's lock. */
static void bug_transfer(struct bug_account *from, struct bug_account *to, long amount)
{
	rg_mutex_lock(&from->mu);
	/* The barrier makes the unlucky interleaving happen every time. */
	rg_wg_done(&dl.both_locked);
	rg_wg_wait(&dl.both_locked);
	rg_mutex_lock(&to->mu);
	from->balance -= amount;
	to->balance += amount;
	rg_mutex_unlock(&to->mu);
	rg_mutex_unlock(&from->mu);
}

static void bug_a_to_b(void *arg)
{
	bug_transfer(&dl.a, &dl.b, 10);
	rg_wg_done(&dl.done);
}

static void bug_b_to_a(void *arg)
{
	bug_transfer(&dl.b, &dl.a, 20);
	rg_wg_done(&dl.done);
}

static void bug_deadlock(void)
{
	bug_say("deadlock: transfers a->b and b->a lock the accounts in opposite order\n");
	dl.a.balance = dl.b.balance = 100;
	rg_wg_add(&dl.both_locked, 2);
	rg_wg_add(&dl.done, 2);
	rg_go(bug_a_to_b, NULL);
	rg_go(bug_b_to_a, NULL);
	rg_wg_wait(&dl.done); /* the detector ends the program here */
	bug_say("the deadlock went unnoticed\n");
}

/* ---- ignorecancel ------------------------------------------------------ */

static struct {
	rg_chan *jobs, *done;
	rg_wg good_exited;
	atomic_long handled;
} ic;

/* Right: stops on a job channel close or on cancel, whichever comes first. */
static void bug_good_worker(void *arg)
{
	int job;

	for (;;) {
		rg_case cs[] = {RG_RECV(ic.jobs, &job), RG_RECV(ic.done, NULL)};
		if (rg_select(cs, 2, false) == 1 || cs[0].result == 0)
			break;
		atomic_fetch_add(&ic.handled, 1);
	}
	rg_wg_done(&ic.good_exited);
}

/* Wrong: only ever waits for jobs, so a cancel never reaches it. */
static void bug_deaf_worker(void *arg)
{
	int job;

	while (rg_chan_recv(ic.jobs, &job) == 1)
		atomic_fetch_add(&ic.handled, 1);
}

static void bug_ignorecancel(void)
{
	long n;

	bug_say("ignorecancel: the producer cancels; one worker never looks at done\n");
	ic.jobs = rg_chan_make(sizeof(int), 0);
	ic.done = rg_chan_make(0, 0);
	rg_wg_add(&ic.good_exited, 1);
	rg_go(bug_good_worker, NULL);
	rg_go(bug_deaf_worker, NULL);
	for (int job = 0; job < 10; job++)
		rg_chan_send(ic.jobs, &job);
	/* Cancel instead of closing jobs (say the client went away). */
	rg_chan_close(ic.done);
	rg_wg_wait(&ic.good_exited);
	n = rg_leakcheck(NULL);
	bug_say("ringo caught it: rg_leakcheck found %ld goroutine%s still waiting after the "
		"cancel (dumps on stderr)\n",
		n, n == 1 ? "" : "s");
	if (n > 0)
		bug_status = 1;
}

/* ------------------------------------------------------------------------ */

static const struct {
	const char *name;
	void (*run)(void);
} bug_modes[] = {
	{"leak", bug_leak},
	{"doubleclose", bug_doubleclose},
	{"wgmisuse", bug_wgmisuse},
	{"deadlock", bug_deadlock},
	{"ignorecancel", bug_ignorecancel},
};

static void bug_main(void *arg)
{
	bug_modes[(size_t)(uintptr_t)arg].run();
}

int main(int argc, char **argv)
{
	for (size_t i = 0; argc == 2 && i < sizeof(bug_modes) / sizeof(bug_modes[0]); i++) {
		if (strcmp(argv[1], bug_modes[i].name) == 0) {
			int err = rg_run(bug_main, (void *)(uintptr_t)i);
			if (err) {
				fprintf(stderr, "bugs: rg_run: %s\n", strerror(-err));
				return 4;
			}
			return bug_status;
		}
	}
	fprintf(stderr, "usage: bugs leak|doubleclose|wgmisuse|deadlock|ignorecancel\n");
	return 64;
}
