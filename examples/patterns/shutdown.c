/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * shutdown: graceful shutdown on SIGINT or SIGTERM.
 *
 *   shutdown [WORKERS [DRAIN_MS [JOB_MS]]]
 *
 * A job server in miniature: an acceptor takes jobs (numbered, one every
 * 200 us, standing in for requests) onto a buffered queue, and WORKERS
 * goroutines (default 4) serve them, JOB_MS (default 1) of waiting each
 * (standing in for I/O). The first SIGINT or SIGTERM cancels the server's context (Go's
 * signal.NotifyContext): the acceptor stops taking jobs and closes the
 * queue, the workers finish every job already accepted, and main waits for
 * them for at most DRAIN_MS (default 5000). A second signal during the
 * drain gives up at once, as a second Ctrl-C does in most Go servers.
 *
 * stdout:  "ready" (flushed, once the workers are up and a job was accepted)
 *          "shutdown: accepted A, done D"
 * Exit status 0 when every accepted job was done; 1 when the drain ran out
 * of time or a second signal cut it short; 64 for bad arguments.
 */
#include <ringo.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_QUEUE 64
#define SD_ACCEPT_EVERY_NS 200000LL

static struct {
	long workers;
	long drain_ms, job_ms;
	rg_ctx *ctx;   /* cancelled by the first signal */
	rg_chan *jobs; /* the accepted jobs, closed by the acceptor when it stops */
	rg_chan *sigs; /* SIGINT and SIGTERM */
	rg_chan *first; /* closed by the acceptor once it took a job */
	rg_wg wg;      /* the workers */
	long accepted; /* the acceptor's alone until it has closed jobs */
	atomic_long done;
	int status;
} sd;

/* Take jobs until the context is cancelled; then close the queue: the workers drain it. */
static void sd_acceptor(void *arg)
{
	(void)arg;
	for (long id = 1;; id++) {
		rg_case cs[] = {RG_SEND(sd.jobs, &id), RG_RECV(rg_ctx_done(sd.ctx), NULL)};
		if (rg_select(cs, 2, false) == 1)
			break;
		if (sd.accepted++ == 0)
			rg_chan_close(sd.first);
		rg_sleep(SD_ACCEPT_EVERY_NS);
	}
	rg_chan_close(sd.jobs);
}

/* Serve jobs until the queue is closed and empty: an accepted job is never dropped. */
static void sd_worker(void *arg)
{
	long id;

	(void)arg;
	while (rg_chan_recv(sd.jobs, &id) == 1) {
		rg_sleep(sd.job_ms * 1000000LL);
		atomic_fetch_add(&sd.done, 1);
	}
	rg_wg_done(&sd.wg);
}

static void sd_wait_workers(void *arg)
{
	rg_chan *drained = arg;

	rg_wg_wait(&sd.wg);
	rg_chan_close(drained);
}

static void sd_main(void *arg)
{
	static const int signals[] = {SIGINT, SIGTERM};
	int sig;

	(void)arg;
	sd.ctx = rg_ctx_with_cancel(rg_ctx_background());
	sd.jobs = rg_chan_make(sizeof(long), SD_QUEUE);
	sd.sigs = rg_chan_make(sizeof(int), 1);
	sd.first = rg_chan_make(0, 0);
	rg_chan *drained = rg_chan_make(0, 0);
	if (!sd.ctx || !sd.jobs || !sd.sigs || !sd.first || !drained ||
	    rg_signal_notify(sd.sigs, signals, 2) != 0) {
		fprintf(stderr, "shutdown: out of memory\n");
		sd.status = 1;
		return;
	}
	rg_wg_add(&sd.wg, (int)sd.workers);
	for (long i = 0; i < sd.workers; i++)
		rg_go(sd_worker, NULL);
	rg_go(sd_acceptor, NULL);
	rg_chan_recv(sd.first, NULL);
	printf("ready\n");
	fflush(stdout);

	/* Serve until the first signal, then stop accepting. */
	rg_chan_recv(sd.sigs, &sig);
	rg_ctx_cancel(sd.ctx);

	/* Drain: every worker done, or the deadline, or a second signal. */
	rg_go(sd_wait_workers, drained);
	rg_chan *deadline = rg_after(sd.drain_ms * 1000000LL);
	rg_case cs[] = {RG_RECV(drained, NULL), RG_RECV(sd.sigs, &sig), RG_RECV(deadline, NULL)};
	int which = rg_select(cs, 3, false);
	rg_signal_stop(sd.sigs);
	if (which == 0) {
		printf("shutdown: accepted %ld, done %ld\n", sd.accepted, atomic_load(&sd.done));
		sd.status = atomic_load(&sd.done) == sd.accepted ? 0 : 1;
		rg_chan_free(drained);
		rg_chan_free(sd.jobs);
	} else {
		/* The workers are abandoned mid-drain, as the process is about to exit. */
		printf("shutdown: %s, done %ld of the accepted jobs\n",
		       which == 1 ? "second signal" : "drain deadline passed",
		       atomic_load(&sd.done));
		sd.status = 1;
	}
	rg_chan_free(deadline);
	rg_chan_free(sd.first);
	rg_chan_free(sd.sigs);
	rg_ctx_free(sd.ctx);
}

int main(int argc, char **argv)
{
	char *end;

	sd.workers = 4;
	sd.drain_ms = 5000;
	sd.job_ms = 1;
	if (argc > 4)
		goto usage;
	if (argc > 1) {
		sd.workers = strtol(argv[1], &end, 10);
		if (*end || sd.workers < 1 || sd.workers > 10000)
			goto usage;
	}
	if (argc > 2) {
		sd.drain_ms = strtol(argv[2], &end, 10);
		if (*end || sd.drain_ms < 1)
			goto usage;
	}
	if (argc > 3) {
		sd.job_ms = strtol(argv[3], &end, 10);
		if (*end || sd.job_ms < 0 || sd.job_ms > 60000)
			goto usage;
	}
	if (rg_run(sd_main, NULL) != 0) {
		fprintf(stderr, "shutdown: rg_run failed\n");
		return 1;
	}
	return sd.status;
usage:
	fprintf(stderr, "usage: shutdown [WORKERS (1-10000) [DRAIN_MS (>= 1) [JOB_MS (0-60000)]]]\n");
	return 64;
}
