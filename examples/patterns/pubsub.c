/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pubsub: publish/subscribe with a subscriber table behind an RWMutex and
 * non-blocking sends that drop messages for slow subscribers.
 *
 *   pubsub [MESSAGES]
 *
 * Publishing only reads the table, so two publishers hold the read lock at
 * the same time; subscribing and unsubscribing write it. A publisher never
 * blocks on a subscriber: rg_chan_trysend either queues the message in the
 * subscriber's buffer or returns -EAGAIN, and the message is counted as
 * dropped for that subscriber. Unsubscribe closes the subscriber's channel
 * under the write lock, after removing it, so no publisher can ever send
 * on a closed channel (that would be -EPIPE, Go's panic).
 *
 * Subscribers: "fast" drains as it goes; "slow" does not read at all until
 * publishing is over, so it keeps exactly its buffer's worth; "leaver"
 * takes its buffer's worth (4) and unsubscribes itself while publishing goes
 * on. The publishers publish their second halves only once it has left, so
 * the leave always lands mid-stream: whether the leaver got a turn during
 * the first half is up to the scheduler, but its buffer fills either way.
 *
 * stdout, one line per subscriber and a summary:
 *   "NAME: offered O, received R, dropped D"    (R + D == O for each)
 *   "published P, dropped D, sends on closed channels C"
 * Exit status 0 when every count adds up and C is 0, else 1.
 */
#include <ringo.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PS_PUBLISHERS 2
#define PS_MAX_SUBS 8
#define PS_LEAVER_TAKES 4 /* the leaver's buffer: what it gets however late it runs */

struct ps_msg {
	int publisher;
	long seq;
};

struct ps_sub {
	const char *name;
	rg_chan *ch;
	atomic_long offered, dropped; /* by publishers, under the read lock */
	long received;		      /* by the subscriber alone */
};

static struct {
	rg_rwmutex mu; /* guards subs and n */
	struct ps_sub *subs[PS_MAX_SUBS];
	int n;
	atomic_long epipe, published;
	long messages;
	rg_chan *slow_go;     /* closed when the slow subscriber may start reading */
	rg_chan *leaver_gone; /* closed once the leaver has unsubscribed */
	rg_wg publishers, subscribers;
	int exit_status;
} ps;

static void ps_subscribe(struct ps_sub *s, size_t buffer)
{
	s->ch = rg_chan_make(sizeof(struct ps_msg), buffer);
	rg_rwmutex_lock(&ps.mu);
	ps.subs[ps.n++] = s;
	rg_rwmutex_unlock(&ps.mu);
}

/* Remove s and close its channel; false if it was not subscribed. */
static bool ps_unsubscribe(struct ps_sub *s)
{
	bool found = false;

	rg_rwmutex_lock(&ps.mu);
	for (int i = 0; i < ps.n; i++) {
		if (ps.subs[i] == s) {
			ps.subs[i] = ps.subs[--ps.n];
			found = true;
			break;
		}
	}
	/* Publishers send only under the read lock: none is sending to s now. */
	if (found)
		rg_chan_close(s->ch);
	rg_rwmutex_unlock(&ps.mu);
	return found;
}

static void ps_publish(const struct ps_msg *m)
{
	rg_rwmutex_rlock(&ps.mu);
	for (int i = 0; i < ps.n; i++) {
		struct ps_sub *s = ps.subs[i];
		int err = rg_chan_trysend(s->ch, m);

		atomic_fetch_add(&s->offered, 1);
		if (err == -EAGAIN)
			atomic_fetch_add(&s->dropped, 1); /* full: the subscriber is too slow */
		else if (err == -EPIPE)
			atomic_fetch_add(&ps.epipe, 1); /* would be a bug: see ps_unsubscribe */
	}
	rg_rwmutex_runlock(&ps.mu);
	atomic_fetch_add(&ps.published, 1);
}

static void ps_publisher(void *arg)
{
	int me = (int)(intptr_t)arg;

	long quota = ps.messages / PS_PUBLISHERS;

	for (long seq = 0; seq < quota; seq++) {
		if (seq == quota / 2)
			rg_chan_recv(ps.leaver_gone, NULL);
		ps_publish(&(struct ps_msg){me, seq});
		if (seq % 16 == 15)
			rg_yield(); /* a turn for the subscribers without waiting for a slice */
	}
	rg_wg_done(&ps.publishers);
}

/* Read until unsubscribed (channel closed and drained). */
static void ps_drain(struct ps_sub *s)
{
	struct ps_msg m;

	while (rg_chan_recv(s->ch, &m) == 1)
		s->received++;
}

static void ps_fast(void *arg)
{
	ps_drain(arg);
	rg_wg_done(&ps.subscribers);
}

static void ps_slow(void *arg)
{
	rg_chan_recv(ps.slow_go, NULL); /* stuck elsewhere while messages pile up */
	ps_drain(arg);
	rg_wg_done(&ps.subscribers);
}

static void ps_leaver(void *arg)
{
	struct ps_sub *s = arg;
	struct ps_msg m;

	while (s->received < PS_LEAVER_TAKES && rg_chan_recv(s->ch, &m) == 1)
		s->received++;
	ps_unsubscribe(s); /* takes the write lock while publishers hold read locks */
	rg_chan_close(ps.leaver_gone);
	ps_drain(s);	   /* what was queued before the close */
	rg_wg_done(&ps.subscribers);
}

static void ps_main(void *arg)
{
	static struct ps_sub fast = {.name = "fast"}, slow = {.name = "slow"},
			     leaver = {.name = "leaver"};
	struct ps_sub *all[] = {&fast, &slow, &leaver};
	long dropped = 0;

	ps.slow_go = rg_chan_make(0, 0);
	ps.leaver_gone = rg_chan_make(0, 0);
	ps_subscribe(&fast, 64);
	ps_subscribe(&slow, 8);
	ps_subscribe(&leaver, PS_LEAVER_TAKES);
	rg_wg_add(&ps.subscribers, 3);
	rg_go(ps_fast, &fast);
	rg_go(ps_slow, &slow);
	rg_go(ps_leaver, &leaver);

	rg_wg_add(&ps.publishers, PS_PUBLISHERS);
	for (int i = 0; i < PS_PUBLISHERS; i++)
		rg_go(ps_publisher, (void *)(intptr_t)i);
	rg_wg_wait(&ps.publishers);

	/* Shut down: let the slow one read, close every channel still subscribed. */
	rg_chan_close(ps.slow_go);
	ps_unsubscribe(&fast);
	ps_unsubscribe(&slow);
	ps_unsubscribe(&leaver); /* already gone: a no-op */
	rg_wg_wait(&ps.subscribers);

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct ps_sub *s = all[i];
		long o = atomic_load(&s->offered), d = atomic_load(&s->dropped);

		printf("%s: offered %ld, received %ld, dropped %ld\n", s->name, o, s->received, d);
		if (s->received + d != o)
			ps.exit_status = 1;
		dropped += d;
		rg_chan_free(s->ch);
	}
	printf("published %ld, dropped %ld, sends on closed channels %ld\n",
	       atomic_load(&ps.published), dropped, atomic_load(&ps.epipe));
	if (atomic_load(&ps.epipe) || atomic_load(&ps.published) != ps.messages)
		ps.exit_status = 1;
	rg_chan_free(ps.slow_go);
	rg_chan_free(ps.leaver_gone);
}

int main(int argc, char **argv)
{
	ps.messages = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
	if (argc > 2 || ps.messages < 100 || ps.messages > 10000000 ||
	    ps.messages % PS_PUBLISHERS) {
		fprintf(stderr, "usage: pubsub [MESSAGES]   (even, 100..10000000)\n");
		return 64;
	}
	int err = rg_run(ps_main, NULL);
	if (err) {
		fprintf(stderr, "pubsub: rg_run: %s\n", strerror(-err));
		return 4;
	}
	return ps.exit_status;
}
