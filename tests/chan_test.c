// SPDX-License-Identifier: BSD-2-Clause
/*
 * Channels: the behaviours of Go 1.19's chan_test.go (TestChan for capacities
 * 0..N-1, TestNonblockRecvRace, TestMultiConsumer, and TestChanSendInterface
 * widened to elements of 0 to 65535 bytes copied by value), then ringo's own
 * contract: -EPIPE for sends on closed channels (also for parked senders),
 * zeroed receives once closed and drained, close twice, bad arguments to
 * rg_chan_make, nil channels, the fatal free of a channel with waiters, and
 * parked senders and receivers served in arrival order.
 *
 * "Blocks" is observed, never guessed with a sleep: the test waits until the
 * goroutine sits in the channel's wait queue (chan_helpers.h).
 */
#include "chan_helpers.h"

FIXTURE(chan) {
	int unused;
};
FIXTURE_SETUP(chan)
{
}
FIXTURE_TEARDOWN(chan)
{
}

static struct rt_errs errs;

#define CHECK(cond, ...) RT_CHECK(&errs, cond, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* TestChan: every capacity from 0 to TC_NCAP-1 (Go: 200, or 20 with -short). */

#define TC_NCAP (RT_TSAN ? 20 : RT_ASAN ? 100 : 200)

static struct {
	rg_wg wg;
	atomic_int finished;
} tc;

struct tc_recv {
	rg_chan *c;
	bool discard; /* Go's `<-c` (value dropped) versus `v := <-c` */
	int rc;
	long v;
};

static void tc_receiver(void *arg)
{
	struct tc_recv *r = arg;

	r->rc = rg_chan_recv(r->c, r->discard ? NULL : &r->v);
	atomic_fetch_add(&tc.finished, 1);
	rg_wg_done(&tc.wg);
}

struct tc_send {
	rg_chan *c;
	long v;
	int rc;
};

static void tc_sender(void *arg)
{
	struct tc_send *s = arg;

	s->rc = rg_chan_send(s->c, &s->v);
	atomic_fetch_add(&tc.finished, 1);
	rg_wg_done(&tc.wg);
}

/* After a failed check that leaves goroutines blocked: close wakes them all, so nothing hangs. */
static void tc_bail(rg_chan *c)
{
	rg_chan_close(c);
	rg_wg_wait(&tc.wg);
	rg_chan_free(c);
}

static void tc_recv_blocks_main(void *arg)
{
	for (size_t cap = 0; cap < TC_NCAP; cap++) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);
		struct tc_recv r1 = {.c = c, .v = -1}, r2 = {.c = c, .discard = true};
		long v = -1, x;
		rg_case cs[1];

		atomic_store(&tc.finished, 0);
		rg_wg_add(&tc.wg, 2);
		rg_go(tc_receiver, &r1);
		rg_go(tc_receiver, &r2);
		if (!rt_chan_await(c, RG_CASE_RECV, 2, &tc.finished)) {
			CHECK(0,
			      "cap %zu: receive from an empty channel did not park (%d returned)",
			      cap, atomic_load(&tc.finished));
			tc_bail(c);
			return;
		}
		CHECK(atomic_load(&tc.finished) == 0, "cap %zu: receive from empty channel", cap);
		/* Non-blocking receives fail at once, through both APIs. */
		CHECK(rg_chan_tryrecv(c, &v) == -EAGAIN && v == -1, "cap %zu: tryrecv", cap);
		cs[0] = RG_RECV(c, &v);
		CHECK(rg_select(cs, 1, true) == -EAGAIN && v == -1, "cap %zu: select recv", cap);
		cs[0] = RG_RECV(c, NULL);
		CHECK(rg_select(cs, 1, true) == -EAGAIN, "cap %zu: select recv discard", cap);
		CHECK(rg_chan_len(c) == 0, "cap %zu: len %zu", cap, rg_chan_len(c));

		x = 7;
		CHECK(rg_chan_send(c, &x) == 0, "cap %zu: send", cap);
		x = 8;
		CHECK(rg_chan_send(c, &x) == 0, "cap %zu: send", cap);
		rg_wg_wait(&tc.wg);
		CHECK(r1.rc == 1 && r2.rc == 1, "cap %zu: rc %d %d", cap, r1.rc, r2.rc);
		CHECK(r1.v == 7 || r1.v == 8, "cap %zu: received %ld", cap, r1.v);
		CHECK(rg_chan_len(c) == 0, "cap %zu: len %zu after", cap, rg_chan_len(c));
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, chan_recv_from_empty_blocks, 120)
{
	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(tc_recv_blocks_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

static void tc_send_blocks_main(void *arg)
{
	for (size_t cap = 0; cap < TC_NCAP; cap++) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);
		struct tc_send s = {.c = c, .v = 1000, .rc = 99};
		long v, x = 2000;
		rg_case cs[2];

		for (size_t i = 0; i < cap; i++) {
			v = (long)i;
			CHECK(rg_chan_send(c, &v) == 0, "cap %zu: fill", cap);
		}
		atomic_store(&tc.finished, 0);
		rg_wg_add(&tc.wg, 1);
		rg_go(tc_sender, &s);
		if (!rt_chan_await(c, RG_CASE_SEND, 1, &tc.finished)) {
			CHECK(0, "cap %zu: send to a full channel did not park (rc %d)", cap, s.rc);
			tc_bail(c);
			return;
		}
		CHECK(atomic_load(&tc.finished) == 0, "cap %zu: send to full channel", cap);
		CHECK(rg_chan_len(c) == cap, "cap %zu: len %zu", cap, rg_chan_len(c));
		/* Non-blocking sends fail at once, and with a nil case beside them too. */
		CHECK(rg_chan_trysend(c, &x) == -EAGAIN, "cap %zu: trysend", cap);
		cs[0] = RG_SEND(c, &x);
		CHECK(rg_select(cs, 1, true) == -EAGAIN, "cap %zu: select send", cap);
		cs[1] = RG_RECV(NULL, &v);
		CHECK(rg_select(cs, 2, true) == -EAGAIN, "cap %zu: select send + nil", cap);

		/* The head comes out first; the parked sender's value joins at the tail. */
		v = -1;
		CHECK(rg_chan_recv(c, &v) == 1, "cap %zu: recv", cap);
		CHECK(v == (cap ? 0 : 1000), "cap %zu: received %ld", cap, v);
		rg_wg_wait(&tc.wg);
		CHECK(s.rc == 0, "cap %zu: parked sender got %d", cap, s.rc);
		CHECK(rg_chan_len(c) == cap, "cap %zu: len %zu after", cap, rg_chan_len(c));
		for (size_t i = 1; i <= cap; i++) {
			v = -1;
			CHECK(rg_chan_tryrecv(c, &v) == 1, "cap %zu: drain", cap);
			CHECK(v == (i < cap ? (long)i : 1000), "cap %zu: drained %ld at %zu", cap,
			      v, i);
		}
		CHECK(rg_chan_tryrecv(c, &v) == -EAGAIN, "cap %zu: not empty", cap);
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, chan_send_to_full_blocks, 120)
{
	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(tc_send_blocks_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

static void tc_closed_main(void *arg)
{
	for (size_t cap = 0; cap < TC_NCAP; cap++) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);
		long v;
		rg_case cs[2];

		for (size_t i = 0; i < cap; i++) {
			v = (long)i;
			CHECK(rg_chan_send(c, &v) == 0, "cap %zu: fill", cap);
		}
		CHECK(rg_chan_close(c) == 0, "cap %zu: close", cap);
		CHECK(rg_chan_len(c) == cap, "cap %zu: len %zu after close", cap, rg_chan_len(c));
		/* Buffered values survive the close, in order. */
		for (size_t i = 0; i < cap; i++) {
			v = -1;
			CHECK(rg_chan_recv(c, &v) == 1 && v == (long)i,
			      "cap %zu: received %ld, want %zu", cap, v, i);
			CHECK(rg_chan_len(c) == cap - i - 1, "cap %zu: len %zu", cap,
			      rg_chan_len(c));
		}
		/* Drained: every kind of receive says "closed" and stores the zero value. */
		v = 0x5a5a;
		CHECK(rg_chan_recv(c, &v) == 0 && v == 0, "cap %zu: recv got %ld", cap, v);
		v = 0x5a5a;
		CHECK(rg_chan_recv(c, &v) == 0 && v == 0, "cap %zu: recv again got %ld", cap, v);
		CHECK(rg_chan_recv(c, NULL) == 0, "cap %zu: recv discard", cap);
		v = 0x5a5a;
		CHECK(rg_chan_tryrecv(c, &v) == 0 && v == 0, "cap %zu: tryrecv got %ld", cap, v);
		CHECK(rg_chan_tryrecv(c, NULL) == 0, "cap %zu: tryrecv discard", cap);
		v = 0x5a5a;
		cs[0] = RG_RECV(NULL, NULL);
		cs[1] = RG_RECV(c, &v);
		cs[1].result = 99;
		CHECK(rg_select(cs, 2, false) == 1 && cs[1].result == 0 && v == 0,
		      "cap %zu: select result %d value %ld", cap, cs[1].result, v);
		v = 0x5a5a;
		cs[1].result = 99;
		CHECK(rg_select(cs, 2, true) == 1 && cs[1].result == 0 && v == 0,
		      "cap %zu: select+default result %d value %ld", cap, cs[1].result, v);
		CHECK(rg_chan_len(c) == 0 && rg_chan_cap(c) == cap, "cap %zu: len/cap", cap);
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, chan_closed_drains_then_zero, 120)
{
	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(tc_closed_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

static void tc_close_unblocks_main(void *arg)
{
	for (size_t cap = 0; cap < TC_NCAP; cap++) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);
		struct tc_recv r = {.c = c, .v = 0x5a5a, .rc = 99};

		atomic_store(&tc.finished, 0);
		rg_wg_add(&tc.wg, 1);
		rg_go(tc_receiver, &r);
		CHECK(rt_chan_await(c, RG_CASE_RECV, 1, &tc.finished),
		      "cap %zu: receiver did not park (rc %d)", cap, r.rc);
		CHECK(rg_chan_close(c) == 0, "cap %zu: close", cap);
		rg_wg_wait(&tc.wg);
		CHECK(r.rc == 0 && r.v == 0, "cap %zu: parked receiver got rc %d value %ld", cap,
		      r.rc, r.v);
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, chan_close_unblocks_recv, 120)
{
	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(tc_close_unblocks_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* 100 values from one sender arrive intact and in order; then P senders, P receivers. */
#define TC_SEQ 100
#define TC_P 4
#define TC_L 1000

struct tc_seq {
	rg_chan *c;
	size_t cap;
	bool use_select;
	int n;
};

static void tc_seq_sender(void *arg)
{
	struct tc_seq *s = arg;

	for (long i = 0; i < s->n; i++) {
		if (s->use_select) {
			rg_case cs[2] = {RG_RECV(NULL, NULL), RG_SEND(s->c, &i)};

			CHECK(rg_select(cs, 2, false) == 1 && cs[1].result == 0,
			      "cap %zu: select send %ld", s->cap, i);
		} else {
			CHECK(rg_chan_send(s->c, &i) == 0, "cap %zu: send %ld", s->cap, i);
		}
	}
	rg_wg_done(&tc.wg);
}

struct tc_counter {
	rg_chan *c, *done;
	size_t cap;
};

static void tc_counting_receiver(void *arg)
{
	struct tc_counter *r = arg;
	int *counts = calloc(TC_L, sizeof(int));

	for (int i = 0; i < TC_L; i++) {
		long v = -1;

		if (rg_chan_recv(r->c, &v) != 1 || v < 0 || v >= TC_L) {
			CHECK(0, "cap %zu: counting receiver got %ld", r->cap, v);
			continue;
		}
		if (counts)
			counts[v]++;
	}
	CHECK(rg_chan_send(r->done, &counts) == 0, "cap %zu: done send", r->cap);
}

static void tc_fifo_main(void *arg)
{
	rg_chan *done = rg_chan_make(sizeof(int *), 0);
	int *total = calloc(TC_L, sizeof(int));

	for (size_t cap = 0; cap < TC_NCAP; cap++) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);

		for (int mode = 0; mode < 2; mode++) {
			struct tc_seq s = {.c = c, .cap = cap, .use_select = mode, .n = TC_SEQ};

			rg_wg_add(&tc.wg, 1);
			rg_go(tc_seq_sender, &s);
			for (long i = 0; i < TC_SEQ; i++) {
				long v = -1;
				int rc;

				if (mode) {
					rg_case cs[1] = {RG_RECV(c, &v)};

					rc = rg_select(cs, 1, false) == 0 ? cs[0].result : -1;
				} else {
					rc = rg_chan_recv(c, &v);
				}
				CHECK(rc == 1 && v == i,
				      "cap %zu mode %d: received %ld (rc %d), want %ld", cap, mode,
				      v, rc, i);
			}
			rg_wg_wait(&tc.wg);
		}

		/* P senders of 0..L-1 each and P receivers: every value arrives exactly P times. */
		struct tc_seq senders[TC_P];
		struct tc_counter rcv = {.c = c, .done = done, .cap = cap};

		memset(total, 0, TC_L * sizeof(int));
		rg_wg_add(&tc.wg, TC_P);
		for (int p = 0; p < TC_P; p++) {
			senders[p] =
				(struct tc_seq){.c = c, .cap = cap, .use_select = p & 1, .n = TC_L};
			rg_go(tc_seq_sender, &senders[p]);
		}
		for (int p = 0; p < TC_P; p++)
			rg_go(tc_counting_receiver, &rcv);
		for (int p = 0; p < TC_P; p++) {
			int *counts = NULL;

			CHECK(rg_chan_recv(done, &counts) == 1 && counts, "cap %zu: done recv",
			      cap);
			for (int k = 0; counts && k < TC_L; k++)
				total[k] += counts[k];
			free(counts);
		}
		rg_wg_wait(&tc.wg);
		for (int k = 0; k < TC_L; k++)
			CHECK(total[k] == TC_P, "cap %zu: value %d received %d times", cap, k,
			      total[k]);
		rg_chan_free(c);
	}
	free(total);
	rg_chan_free(done);
}

TEST_F_TIMEOUT(chan, chan_fifo_and_exactly_once, 120)
{
	uint64_t t0 = rt_now_ns();

	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(tc_fifo_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	TH_LOG("capacities 0..%d: %.2f s", TC_NCAP - 1, (rt_now_ns() - t0) / 1e9);
}

static void tc_len_cap_main(void *arg)
{
	for (size_t cap = 0; cap < TC_NCAP; cap++) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);
		long v;

		CHECK(rg_chan_len(c) == 0 && rg_chan_cap(c) == cap, "cap %zu: new len %zu cap %zu",
		      cap, rg_chan_len(c), rg_chan_cap(c));
		for (size_t i = 0; i < cap; i++) {
			v = (long)i;
			CHECK(rg_chan_trysend(c, &v) == 0, "cap %zu: send %zu", cap, i);
			CHECK(rg_chan_len(c) == i + 1, "cap %zu: len %zu", cap, rg_chan_len(c));
		}
		CHECK(rg_chan_len(c) == cap && rg_chan_cap(c) == cap,
		      "cap %zu: full len %zu cap %zu", cap, rg_chan_len(c), rg_chan_cap(c));
		CHECK(rg_chan_trysend(c, &v) == -EAGAIN, "cap %zu: send beyond cap", cap);
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, chan_len_cap, 120)
{
	ASSERT_EQ(0, rg_run(tc_len_cap_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	/* len and cap need no goroutine, and a nil channel has neither. */
	EXPECT_EQ(0u, rg_chan_len(NULL));
	EXPECT_EQ(0u, rg_chan_cap(NULL));
}

/* ------------------------------------------------------------------------ */
/*
 * TestNonblockRecvRace: a channel holding a value is closed while another
 * goroutine polls it. From the poller's start to its end the channel is
 * always ready (a value, or closed), so a non-blocking receive must never
 * report -EAGAIN, whichever path it takes (tryrecv's lock-free fast path,
 * or select with a default).
 */
#define NBR_N RT_TSAN_SCALE(10000, 10)

static struct {
	rg_wg wg;
	long fast_fail, select_fail;
} nbr;

static void nbr_poller(void *arg)
{
	rg_chan *c = arg;
	long v;

	if (rg_chan_tryrecv(c, &v) == -EAGAIN)
		nbr.fast_fail++;
	rg_wg_done(&nbr.wg);
}

static void nbr_select_poller(void *arg)
{
	rg_chan *c = arg;
	rg_case cs[1] = {RG_RECV(c, NULL)};

	if (rg_select(cs, 1, true) == -EAGAIN)
		nbr.select_fail++;
	rg_wg_done(&nbr.wg);
}

static void nbr_main(void *arg)
{
	for (int i = 0; i < 2 * NBR_N; i++) {
		rg_chan *c = rg_chan_make(sizeof(long), 1);
		long one = 1;

		rg_chan_send(c, &one);
		rg_wg_add(&nbr.wg, 1);
		rg_go(i & 1 ? nbr_select_poller : nbr_poller, c);
		rg_chan_close(c);
		rg_chan_recv(c, NULL);
		rg_wg_wait(&nbr.wg); /* before the free */
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, nonblock_recv_race, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nbr_main, NULL));
	EXPECT_EQ(0, nbr.fast_fail) TH_LOG("tryrecv saw a ready channel as not ready");
	EXPECT_EQ(0, nbr.select_fail) TH_LOG("select saw a ready channel as not ready");
}

/*
 * The same race with the poller kept on the other P (lock step): the poll
 * overlaps the close and the receive instead of following them.
 */
#define NBL_N (RT_TSAN ? 5000 : 100000)

static struct {
	rg_chan *c;
	atomic_long round, acked;
	atomic_int main_p;
	long rounds, fast_fail, select_fail, other_p;
} nbl;

static void nbl_poller(void *arg)
{
	for (long r = 1;; r++) {
		rt_spin_until(&nbl.round, r);
		if (atomic_load(&nbl.round) == RT_LOCKSTEP_END)
			break;
		if (r & 1) {
			if (rg_chan_tryrecv(nbl.c, NULL) == -EAGAIN)
				nbl.fast_fail++;
		} else {
			rg_case cs[1] = {RG_RECV(nbl.c, NULL)};

			if (rg_select(cs, 1, true) == -EAGAIN)
				nbl.select_fail++;
		}
		nbl.other_p += rg_current_p() != atomic_load(&nbl.main_p);
		atomic_store_explicit(&nbl.acked, r, memory_order_release);
	}
}

static void nbl_main(void *arg)
{
	uint64_t t0 = rt_now_ns();
	long r;

	rg_go(nbl_poller, NULL);
	for (r = 1; rt_lockstep_more(r, NBL_N, t0); r++) {
		long one = 1;

		nbl.c = rg_chan_make(sizeof(long), 1);
		rg_chan_send(nbl.c, &one);
		atomic_store(&nbl.main_p, rg_current_p());
		atomic_store_explicit(&nbl.round, r, memory_order_release);
		rg_chan_close(nbl.c);
		rg_chan_recv(nbl.c, NULL);
		rt_spin_until(&nbl.acked, r);
		rg_chan_free(nbl.c);
	}
	nbl.rounds = r - 1;
	atomic_store_explicit(&nbl.round, RT_LOCKSTEP_END, memory_order_release);
}

TEST_F_TIMEOUT(chan, nonblock_recv_race_lockstep, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nbl_main, NULL));
	EXPECT_EQ(0, nbl.fast_fail) TH_LOG("tryrecv saw a ready channel as not ready");
	EXPECT_EQ(0, nbl.select_fail) TH_LOG("select saw a ready channel as not ready");
	TH_LOG("%ld rounds, %ld polls on the other P", nbl.rounds, nbl.other_p);
}

/* ------------------------------------------------------------------------ */
/*
 * TestMultiConsumer: 23 workers drain a work channel (some yield, to stir the
 * order) into a result channel; close ends both ranges. Every item arrives
 * exactly once (count and sum); the feeder's sum is read after close(r),
 * which the close orders.
 */
#define MC_NWORK 23
#define MC_NITER (RT_TSAN ? 27183 : 271828)

static const long mc_pn[] = {2, 3, 7, 11, 13, 17, 19, 23, 27, 31};
#define MC_NPN ((int)(sizeof(mc_pn) / sizeof(mc_pn[0])))

static struct {
	rg_chan *q, *r;
	rg_wg wg;
	long expect; /* written by the feeder only */
	long n, sum;
	uint64_t ns;
} mcon;

static void mcon_worker(void *arg)
{
	int w = (int)(uintptr_t)arg;
	long v;

	while (rg_chan_recv(mcon.q, &v) == 1) {
		if (mc_pn[w % MC_NPN] == v)
			rg_yield();
		CHECK(rg_chan_send(mcon.r, &v) == 0, "worker %d: send result", w);
	}
	CHECK(v == 0, "worker %d: closed receive left %ld", w, v);
	rg_wg_done(&mcon.wg);
}

static void mcon_feeder(void *arg)
{
	for (long i = 0; i < MC_NITER; i++) {
		long v = mc_pn[i % MC_NPN];

		mcon.expect += v;
		CHECK(rg_chan_send(mcon.q, &v) == 0, "feeder: send %ld", i);
	}
	CHECK(rg_chan_close(mcon.q) == 0, "close q");
	rg_wg_wait(&mcon.wg);
	CHECK(rg_chan_close(mcon.r) == 0, "close r");
}

static void mcon_main(void *arg)
{
	uint64_t t0 = rt_now_ns();
	long v;

	mcon.q = rg_chan_make(sizeof(long), MC_NWORK * 3);
	mcon.r = rg_chan_make(sizeof(long), MC_NWORK * 3);
	rg_wg_add(&mcon.wg, MC_NWORK);
	for (int i = 0; i < MC_NWORK; i++)
		rg_go(mcon_worker, (void *)(uintptr_t)i);
	rg_go(mcon_feeder, NULL);
	while (rg_chan_recv(mcon.r, &v) == 1) {
		mcon.n++;
		mcon.sum += v;
	}
	mcon.ns = rt_now_ns() - t0;
	rg_chan_free(mcon.q);
	rg_chan_free(mcon.r);
}

TEST_F_TIMEOUT(chan, multi_consumer, 120)
{
	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(mcon_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(MC_NITER, mcon.n);
	EXPECT_EQ(mcon.expect, mcon.sum);
	TH_LOG("%d items through %d workers: %.0f ns each", MC_NITER, MC_NWORK,
	       (double)mcon.ns / MC_NITER);
}

/* ------------------------------------------------------------------------ */
/*
 * Elements are copied by value, whatever their size (TestChanSendInterface,
 * widened): every path that moves an element (buffer in and out, hand-off to
 * a parked receiver, take from a parked sender, the full-buffer rotation,
 * select on each side, close's zeroing) must copy exactly elem_size bytes,
 * from the value as it was at the send, and not one byte more.
 */
#define ES_GUARD 64

static const size_t es_sizes[] = {0, 1, 8, 24, 1000, 60000, 65535};

static struct {
	size_t size;
	rg_wg wg;
	atomic_int finished;
} es;

static void es_fill(unsigned char *p, size_t size, unsigned seed)
{
	for (size_t k = 0; k < size; k++)
		p[k] = (unsigned char)(seed * 131u + k * 7u + (k >> 8) + 1u);
}

/* A destination: size bytes plus a guard, all 0xEE. */
static unsigned char *es_dst(void)
{
	unsigned char *d = malloc(es.size + ES_GUARD);

	if (d)
		memset(d, 0xEE, es.size + ES_GUARD);
	return d;
}

/* d holds exactly the element with this seed (or zeros for seed 0) and an untouched guard. */
static bool es_holds(const unsigned char *d, unsigned seed)
{
	for (size_t k = 0; k < es.size; k++) {
		unsigned char want = seed ? (unsigned char)(seed * 131u + k * 7u + (k >> 8) + 1u) :
					    0;

		if (d[k] != want)
			return false;
	}
	for (size_t k = es.size; k < es.size + ES_GUARD; k++)
		if (d[k] != 0xEE)
			return false;
	return true;
}

/* For size 0 nothing may be written at all. */
static bool es_untouched(const unsigned char *d)
{
	for (size_t k = 0; k < es.size + ES_GUARD; k++)
		if (d[k] != 0xEE)
			return false;
	return true;
}

static bool es_got(const unsigned char *d, unsigned seed)
{
	return es.size ? es_holds(d, seed) : es_untouched(d);
}

struct es_peer {
	rg_chan *c;
	unsigned char *buf;
	bool use_select;
	int rc;
};

static void es_receiver(void *arg)
{
	struct es_peer *p = arg;

	if (p->use_select) {
		rg_case cs[2] = {RG_RECV(NULL, NULL), RG_RECV(p->c, p->buf)};

		p->rc = rg_select(cs, 2, false) == 1 ? cs[1].result : -100;
	} else {
		p->rc = rg_chan_recv(p->c, p->buf);
	}
	atomic_fetch_add(&es.finished, 1);
	rg_wg_done(&es.wg);
}

static void es_sender(void *arg)
{
	struct es_peer *p = arg;

	if (p->use_select) {
		rg_case cs[2] = {RG_SEND(NULL, NULL), RG_SEND(p->c, p->buf)};

		p->rc = rg_select(cs, 2, false) == 1 ? cs[1].result : -100;
	} else {
		p->rc = rg_chan_send(p->c, p->buf);
	}
	atomic_fetch_add(&es.finished, 1);
	rg_wg_done(&es.wg);
}

static void es_one_size(void)
{
	size_t sz = es.size;
	unsigned char *src = malloc(sz + 1), *d = es_dst(), *d2 = es_dst();
	rg_chan *c;
	rg_case cs[3];

	if (!src || !d || !d2) {
		CHECK(0, "size %zu: out of memory", sz);
		goto out;
	}

	/* Buffered: the value is taken at the send; changing the source later changes nothing. */
	c = rg_chan_make(sz, 3);
	for (unsigned seed = 1; seed <= 3; seed++) {
		es_fill(src, sz, seed);
		CHECK(rg_chan_send(c, src) == 0, "size %zu: buffered send", sz);
	}
	es_fill(src, sz, 99);
	/* TestChanSendInterface's sends into a full channel beside a default. */
	CHECK(rg_chan_trysend(c, src) == -EAGAIN, "size %zu: trysend into full", sz);
	cs[0] = RG_SEND(c, src);
	cs[1] = RG_SEND(c, d2);
	CHECK(rg_select(cs, 2, true) == -EAGAIN, "size %zu: select send into full", sz);
	CHECK(rg_chan_recv(c, d) == 1 && es_got(d, 1), "size %zu: buffered recv 1", sz);
	memset(d, 0xEE, sz + ES_GUARD);
	CHECK(rg_chan_tryrecv(c, d) == 1 && es_got(d, 2), "size %zu: buffered tryrecv 2", sz);
	memset(d, 0xEE, sz + ES_GUARD);
	cs[0] = RG_RECV(c, d);
	CHECK(rg_select(cs, 1, false) == 0 && cs[0].result == 1 && es_got(d, 3),
	      "size %zu: buffered select recv 3", sz);

	/* Into a parked receiver (blocking recv, then select), from send and from select. */
	for (int mode = 0; mode < 4; mode++) {
		struct es_peer p = {.c = c, .buf = d2, .use_select = mode & 1, .rc = 99};

		memset(d2, 0xEE, sz + ES_GUARD);
		atomic_store(&es.finished, 0);
		rg_wg_add(&es.wg, 1);
		rg_go(es_receiver, &p);
		CHECK(rt_chan_await(c, RG_CASE_RECV, 1, &es.finished),
		      "size %zu mode %d: receiver did not park", sz, mode);
		es_fill(src, sz, 10u + (unsigned)mode);
		if (mode & 2) {
			cs[0] = RG_SEND(c, src);
			CHECK(rg_select(cs, 1, false) == 0 && cs[0].result == 0,
			      "size %zu mode %d: select send", sz, mode);
		} else {
			CHECK(rg_chan_send(c, src) == 0, "size %zu mode %d: send", sz, mode);
		}
		es_fill(src, sz, 98);
		rg_wg_wait(&es.wg);
		CHECK(p.rc == 1 && es_got(d2, 10u + (unsigned)mode),
		      "size %zu mode %d: parked receiver got rc %d / wrong bytes", sz, mode, p.rc);
	}
	rg_chan_free(c);

	/* From a parked sender: unbuffered, and the full-buffer rotation (cap 1). */
	for (size_t cap = 0; cap <= 1; cap++) {
		for (int mode = 0; mode < 4; mode++) {
			unsigned char *s2 = malloc(sz + 1);
			struct es_peer p = {.c = NULL, .buf = s2, .use_select = mode & 1, .rc = 99};
			unsigned first = 20u + (unsigned)mode, parked = 30u + (unsigned)mode;

			if (!s2) {
				CHECK(0, "size %zu: out of memory", sz);
				break;
			}
			c = rg_chan_make(sz, cap);
			p.c = c;
			if (cap) {
				es_fill(src, sz, first);
				CHECK(rg_chan_send(c, src) == 0, "size %zu: fill", sz);
				es_fill(src, sz, 97);
			}
			es_fill(s2, sz, parked);
			atomic_store(&es.finished, 0);
			rg_wg_add(&es.wg, 1);
			rg_go(es_sender, &p);
			CHECK(rt_chan_await(c, RG_CASE_SEND, 1, &es.finished),
			      "size %zu cap %zu mode %d: sender did not park", sz, cap, mode);
			for (unsigned want = cap ? first : parked;; want = parked) {
				memset(d, 0xEE, sz + ES_GUARD);
				if (mode & 2) {
					cs[0] = RG_RECV(c, d);
					CHECK(rg_select(cs, 1, false) == 0 && cs[0].result == 1,
					      "size %zu cap %zu mode %d: select recv", sz, cap,
					      mode);
				} else {
					CHECK(rg_chan_recv(c, d) == 1,
					      "size %zu cap %zu mode %d: recv", sz, cap, mode);
				}
				CHECK(es_got(d, want),
				      "size %zu cap %zu mode %d: wrong bytes for %u", sz, cap, mode,
				      want);
				if (want == parked)
					break;
				rg_wg_wait(&es.wg); /* the rotation completed the sender */
			}
			if (!cap)
				rg_wg_wait(&es.wg);
			CHECK(p.rc == 0, "size %zu cap %zu mode %d: sender rc %d", sz, cap, mode,
			      p.rc);
			rg_chan_free(c);
			free(s2);
		}
	}

	/* Closed: the zero value, exactly elem_size bytes of it, buffered and parked alike. */
	c = rg_chan_make(sz, 1);
	es_fill(src, sz, 5);
	CHECK(rg_chan_send(c, src) == 0, "size %zu: send", sz);
	CHECK(rg_chan_close(c) == 0, "size %zu: close", sz);
	memset(d, 0xEE, sz + ES_GUARD);
	CHECK(rg_chan_recv(c, d) == 1 && es_got(d, 5), "size %zu: buffered after close", sz);
	memset(d, 0xEE, sz + ES_GUARD);
	CHECK(rg_chan_recv(c, d) == 0 && es_holds(d, 0), "size %zu: closed recv", sz);
	memset(d, 0xEE, sz + ES_GUARD);
	CHECK(rg_chan_tryrecv(c, d) == 0 && es_holds(d, 0), "size %zu: closed tryrecv", sz);
	rg_chan_free(c);
	for (int mode = 0; mode < 2; mode++) {
		struct es_peer p = {.c = rg_chan_make(sz, 0),
				    .buf = d2,
				    .use_select = mode,
				    .rc = 99};

		memset(d2, 0xEE, sz + ES_GUARD);
		atomic_store(&es.finished, 0);
		rg_wg_add(&es.wg, 1);
		rg_go(es_receiver, &p);
		CHECK(rt_chan_await(p.c, RG_CASE_RECV, 1, &es.finished),
		      "size %zu: receiver did not park", sz);
		rg_chan_close(p.c);
		rg_wg_wait(&es.wg);
		CHECK(p.rc == 0 && es_holds(d2, 0), "size %zu mode %d: parked receiver after close",
		      sz, mode);
		rg_chan_free(p.c);
	}
out:
	free(src);
	free(d);
	free(d2);
}

static void es_main(void *arg)
{
	for (size_t i = 0; i < sizeof(es_sizes) / sizeof(es_sizes[0]); i++) {
		es.size = es_sizes[i];
		es_one_size();
	}
}

TEST_F_TIMEOUT(chan, chan_element_sizes_by_value, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(es_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* ------------------------------------------------------------------------ */
/* Closed channels: ringo returns -EPIPE where Go panics. */

#define CL_K 3 /* parked senders or receivers at once */

static struct {
	rg_wg wg;
	atomic_int finished;
} cl;

struct cl_peer {
	rg_chan *c;
	long v;
	int rc;
	bool use_select;
};

static void cl_sender(void *arg)
{
	struct cl_peer *p = arg;

	if (p->use_select) {
		rg_case cs[2] = {RG_SEND(p->c, &p->v), RG_RECV(NULL, NULL)};

		p->rc = rg_select(cs, 2, false) == 0 ? cs[0].result : -100;
	} else {
		p->rc = rg_chan_send(p->c, &p->v);
	}
	atomic_fetch_add(&cl.finished, 1);
	rg_wg_done(&cl.wg);
}

static void cl_receiver(void *arg)
{
	struct cl_peer *p = arg;

	if (p->use_select) {
		rg_case cs[2] = {RG_RECV(NULL, NULL), RG_RECV(p->c, &p->v)};

		p->rc = rg_select(cs, 2, false) == 1 ? cs[1].result : -100;
	} else {
		p->rc = rg_chan_recv(p->c, &p->v);
	}
	atomic_fetch_add(&cl.finished, 1);
	rg_wg_done(&cl.wg);
}

static void cl_send_main(void *arg)
{
	for (size_t cap = 0; cap <= 2; cap++) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);
		struct cl_peer p[CL_K];
		long v = 1;

		/* Parked senders, one of them in a select, all get -EPIPE from the close. */
		for (size_t i = 0; i < cap; i++) {
			v = 100 + (long)i;
			CHECK(rg_chan_send(c, &v) == 0, "cap %zu: fill", cap);
		}
		atomic_store(&cl.finished, 0);
		rg_wg_add(&cl.wg, CL_K);
		for (int i = 0; i < CL_K; i++) {
			p[i] = (struct cl_peer){.c = c, .v = i, .rc = 99, .use_select = i == 1};
			rg_go(cl_sender, &p[i]);
		}
		CHECK(rt_chan_await(c, RG_CASE_SEND, CL_K, &cl.finished),
		      "cap %zu: senders did not park", cap);
		CHECK(rg_chan_close(c) == 0, "cap %zu: close", cap);
		rg_wg_wait(&cl.wg);
		for (int i = 0; i < CL_K; i++)
			CHECK(p[i].rc == -EPIPE, "cap %zu: parked sender %d got %d", cap, i,
			      p[i].rc);
		CHECK(rt_chan_queued(c, RG_CASE_SEND) == 0, "cap %zu: sendq not empty", cap);

		/* Every later send fails the same way, blocking or not, full buffer or not. */
		v = 7;
		CHECK(rg_chan_send(c, &v) == -EPIPE, "cap %zu: send after close", cap);
		CHECK(rg_chan_trysend(c, &v) == -EPIPE, "cap %zu: trysend after close", cap);
		/* The values buffered before the close are still there, and nothing else. */
		CHECK(rg_chan_len(c) == cap, "cap %zu: len %zu", cap, rg_chan_len(c));
		for (size_t i = 0; i < cap; i++) {
			v = -1;
			CHECK(rg_chan_recv(c, &v) == 1 && v == 100 + (long)i, "cap %zu: got %ld",
			      cap, v);
		}
		CHECK(rg_chan_recv(c, &v) == 0 && v == 0, "cap %zu: drained", cap);
		CHECK(rg_chan_trysend(c, &v) == -EPIPE, "cap %zu: trysend after drain", cap);
		rg_chan_free(c);

		/* Parked receivers, one of them in a select, all get 0 and the zero value. */
		c = rg_chan_make(sizeof(long), cap);
		atomic_store(&cl.finished, 0);
		rg_wg_add(&cl.wg, CL_K);
		for (int i = 0; i < CL_K; i++) {
			p[i] = (struct cl_peer){.c = c, .v = 0x5a5a, .rc = 99, .use_select = i == 1};
			rg_go(cl_receiver, &p[i]);
		}
		CHECK(rt_chan_await(c, RG_CASE_RECV, CL_K, &cl.finished),
		      "cap %zu: receivers did not park", cap);
		CHECK(rg_chan_close(c) == 0, "cap %zu: close", cap);
		rg_wg_wait(&cl.wg);
		for (int i = 0; i < CL_K; i++)
			CHECK(p[i].rc == 0 && p[i].v == 0, "cap %zu: parked receiver %d got %d/%ld",
			      cap, i, p[i].rc, p[i].v);
		CHECK(rt_chan_queued(c, RG_CASE_RECV) == 0, "cap %zu: recvq not empty", cap);
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, send_on_closed_is_epipe, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(cl_send_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/*
 * One close wakes every waiter at once, far more than a run queue holds: all
 * parked receivers get 0, all parked senders -EPIPE, and each select parked
 * on both channels wakes exactly once, through one of them.
 */
#define CM_N RT_TSAN_SCALE(2000, 8)

static struct {
	rg_chan *r, *s;
	rg_wg wg;
	atomic_int finished;
	atomic_long recv_ok, send_ok, select_ok, bad;
} cm;

static void cm_receiver(void *arg)
{
	long v = 5;

	if (rg_chan_recv(cm.r, &v) == 0 && v == 0)
		atomic_fetch_add(&cm.recv_ok, 1);
	else
		atomic_fetch_add(&cm.bad, 1);
	atomic_fetch_add(&cm.finished, 1);
	rg_wg_done(&cm.wg);
}

static void cm_sender(void *arg)
{
	long v = 5;

	if (rg_chan_send(cm.s, &v) == -EPIPE)
		atomic_fetch_add(&cm.send_ok, 1);
	else
		atomic_fetch_add(&cm.bad, 1);
	atomic_fetch_add(&cm.finished, 1);
	rg_wg_done(&cm.wg);
}

static void cm_selector(void *arg)
{
	long v = 5, w = 6;
	rg_case cs[2] = {RG_RECV(cm.r, &v), RG_SEND(cm.s, &w)};
	int i = rg_select(cs, 2, false);

	if ((i == 0 && cs[0].result == 0 && v == 0) || (i == 1 && cs[1].result == -EPIPE))
		atomic_fetch_add(&cm.select_ok, 1);
	else
		atomic_fetch_add(&cm.bad, 1);
	atomic_fetch_add(&cm.finished, 1);
	rg_wg_done(&cm.wg);
}

static void cm_main(void *arg)
{
	cm.r = rg_chan_make(sizeof(long), 0);
	cm.s = rg_chan_make(sizeof(long), 0);
	rg_wg_add(&cm.wg, 3 * CM_N);
	for (int i = 0; i < CM_N; i++) {
		rg_go(cm_receiver, NULL);
		rg_go(cm_sender, NULL);
		rg_go(cm_selector, NULL);
	}
	CHECK(rt_chan_await(cm.r, RG_CASE_RECV, 2 * CM_N, &cm.finished) &&
		      rt_chan_await(cm.s, RG_CASE_SEND, 2 * CM_N, &cm.finished),
	      "waiters did not all park");
	CHECK(rg_chan_close(cm.r) == 0 && rg_chan_close(cm.s) == 0, "close");
	rg_wg_wait(&cm.wg);
	CHECK(rt_chan_queued(cm.r, RG_CASE_RECV) == 0 && rt_chan_queued(cm.s, RG_CASE_SEND) == 0,
	      "sudogs left after every waiter returned");
	rg_chan_free(cm.r);
	rg_chan_free(cm.s);
}

TEST_F_TIMEOUT(chan, close_wakes_every_waiter, 120)
{
	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(cm_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(CM_N, atomic_load(&cm.recv_ok));
	EXPECT_EQ(CM_N, atomic_load(&cm.send_ok));
	EXPECT_EQ(CM_N, atomic_load(&cm.select_ok));
	EXPECT_EQ(0, atomic_load(&cm.bad));
}

/* Close twice, close NULL, and a close race: exactly one closer wins. */
#define CR_K 8
#define CR_ROUNDS RT_TSAN_SCALE(2000, 10)

static struct {
	rg_chan *c;
	rg_wg wg;
	atomic_int wins, losses, other;
	int first, second, null_close;
} cr;

static void cr_closer(void *arg)
{
	int rc = rg_chan_close(cr.c);

	if (rc == 0)
		atomic_fetch_add(&cr.wins, 1);
	else if (rc == -EPIPE)
		atomic_fetch_add(&cr.losses, 1);
	else
		atomic_fetch_add(&cr.other, 1);
	rg_wg_done(&cr.wg);
}

static void cr_main(void *arg)
{
	rg_chan *c = rg_chan_make(0, 0);

	cr.first = rg_chan_close(c);
	cr.second = rg_chan_close(c);
	cr.null_close = rg_chan_close(NULL);
	rg_chan_free(c);
	for (int r = 0; r < CR_ROUNDS; r++) {
		cr.c = rg_chan_make(sizeof(int), (size_t)r % 3);
		rg_wg_add(&cr.wg, CR_K);
		for (int i = 0; i < CR_K; i++)
			rg_go(cr_closer, NULL);
		rg_wg_wait(&cr.wg);
		rg_chan_free(cr.c);
	}
}

TEST_F_TIMEOUT(chan, close_twice_is_epipe, 120)
{
	rg_maxprocs(4);
	ASSERT_EQ(0, rg_run(cr_main, NULL));
	EXPECT_EQ(0, cr.first);
	EXPECT_EQ(-EPIPE, cr.second);
	EXPECT_EQ(-EINVAL, cr.null_close);
	EXPECT_EQ(CR_ROUNDS, atomic_load(&cr.wins));
	EXPECT_EQ(CR_ROUNDS * (CR_K - 1), atomic_load(&cr.losses));
	EXPECT_EQ(0, atomic_load(&cr.other));
}

/* ------------------------------------------------------------------------ */
/* rg_chan_make's arguments: EINVAL for what cannot be, the rest works. */

struct mk_case {
	size_t elem, cap;
	int want_errno; /* 0: must succeed */
};

static const struct mk_case mk_cases[] = {
	{65536, 0, EINVAL}, /* element of 64 KiB */
	{65536, 1, EINVAL},
	{SIZE_MAX, 1, EINVAL},
	{8, SIZE_MAX, EINVAL}, /* elem * cap overflows */
	{2, SIZE_MAX / 2, EINVAL},
	{65535, SIZE_MAX / 1000, EINVAL},
	{65535, 1, 0}, /* the largest element */
	{0, 0, 0},
	{0, SIZE_MAX, 0}, /* chan struct{}: no buffer, any capacity (as Go) */
	{1, 0, 0},
	{24, 1000, 0},
};

static struct {
	int got_errno[sizeof(mk_cases) / sizeof(mk_cases[0])];
	bool got_null[sizeof(mk_cases) / sizeof(mk_cases[0])];
	size_t got_cap[sizeof(mk_cases) / sizeof(mk_cases[0])];
	int big_send_rc;
	size_t big_len;
} mk;

static void mk_try_all(void)
{
	for (size_t i = 0; i < sizeof(mk_cases) / sizeof(mk_cases[0]); i++) {
		rg_chan *c;

		errno = 0;
		c = rg_chan_make(mk_cases[i].elem, mk_cases[i].cap);
		mk.got_errno[i] = errno;
		mk.got_null[i] = c == NULL;
		mk.got_cap[i] = rg_chan_cap(c);
		if (c && mk_cases[i].elem == 0 && mk_cases[i].cap == SIZE_MAX) {
			/* A struct{} channel of huge capacity buffers without memory. */
			for (int k = 0; k < 1000; k++)
				mk.big_send_rc |= rg_chan_trysend(c, NULL);
			mk.big_len = rg_chan_len(c);
		}
		rg_chan_free(c);
	}
}

static void mk_main(void *arg)
{
	mk_try_all();
}

static void mk_check(struct __test_metadata *_metadata)
{
	for (size_t i = 0; i < sizeof(mk_cases) / sizeof(mk_cases[0]); i++) {
		const struct mk_case *m = &mk_cases[i];

		if (m->want_errno) {
			EXPECT_TRUE(mk.got_null[i])
			TH_LOG("make(%zu, %zu) succeeded", m->elem, m->cap);
			EXPECT_EQ(m->want_errno, mk.got_errno[i])
			TH_LOG("make(%zu, %zu)", m->elem, m->cap);
		} else {
			EXPECT_FALSE(mk.got_null[i])
			TH_LOG("make(%zu, %zu) failed, errno %d", m->elem, m->cap, mk.got_errno[i]);
			EXPECT_EQ(m->cap, mk.got_cap[i]) TH_LOG("make(%zu, %zu)", m->elem, m->cap);
		}
	}
	EXPECT_EQ(0, mk.big_send_rc);
	EXPECT_EQ(1000u, mk.big_len);
}

TEST_F_TIMEOUT(chan, make_bad_args, 120)
{
	/* Outside the runtime (errno is the thread's) and inside a goroutine (errno is the G's). */
	mk_try_all();
	mk_check(_metadata);
	memset(&mk, 0, sizeof(mk));
	ASSERT_EQ(0, rg_run(mk_main, NULL));
	mk_check(_metadata);
}

/*
 * A buffer no machine can hold is ENOMEM, not a crash. Not under sanitizers:
 * their allocators abort on such a request instead of returning NULL.
 */
TEST_F_TIMEOUT(chan, make_enomem, 120)
{
	rg_chan *c;

	if (RT_SANITIZED)
		SKIP(return, "sanitizer allocators abort on impossible allocations");
	errno = 0;
	c = rg_chan_make(60000, (size_t)1 << 31); /* 117 TiB: allowed, but no memory for it */
	EXPECT_EQ(NULL, c);
	EXPECT_EQ(ENOMEM, errno);
	rg_chan_free(c);
	errno = 0;
	c = rg_chan_make(60000, (size_t)1 << 44); /* beyond Go's 2^48-byte limit: bad input */
	EXPECT_EQ(NULL, c);
	EXPECT_EQ(EINVAL, errno);
}

/* ------------------------------------------------------------------------ */
/* Nil channels block forever; the goroutines are left parked when main returns, as in Go. */

static struct {
	struct rg_g *_Atomic g[3];
	bool parked[3];
	int tryrecv, trysend;
} nilc;

static void nil_recv(void *arg)
{
	atomic_store(&nilc.g[0], rt_self());
	rg_chan_recv(NULL, NULL);
	CHECK(0, "receive on a nil channel returned");
}

static void nil_send(void *arg)
{
	long v = 1;

	atomic_store(&nilc.g[1], rt_self());
	rg_chan_send(NULL, &v);
	CHECK(0, "send on a nil channel returned");
}

static void nil_select(void *arg)
{
	long v = 1;
	rg_case cs[2] = {RG_SEND(NULL, &v), RG_RECV(NULL, &v)};

	atomic_store(&nilc.g[2], rt_self());
	rg_select(cs, 2, false); /* only nil cases: Go's select {} */
	CHECK(0, "select on nil channels returned");
}

static void nil_main(void *arg)
{
	long v = 1;

	nilc.tryrecv = rg_chan_tryrecv(NULL, &v);
	nilc.trysend = rg_chan_trysend(NULL, &v);
	rg_go(nil_recv, NULL);
	rg_go(nil_send, NULL);
	rg_go(nil_select, NULL);
	nilc.parked[0] = rt_await_parked(&nilc.g[0], WAIT_CHAN_RECV_NIL);
	nilc.parked[1] = rt_await_parked(&nilc.g[1], WAIT_CHAN_SEND_NIL);
	nilc.parked[2] = rt_await_parked(&nilc.g[2], WAIT_SELECT_NO_CASES);
	/* Give them every chance to (wrongly) run again before main returns. */
	for (int i = 0; i < 100; i++)
		rg_yield();
	rg_chan_free(NULL); /* a no-op */
}

TEST_F_TIMEOUT(chan, nil_channel_blocks_forever, 120)
{
	rg_maxprocs(2);
	/* The three stay parked for good: leaked on purpose. */
	ASSERT_EQ(0, (rg_run)(nil_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(-EAGAIN, nilc.tryrecv);
	EXPECT_EQ(-EAGAIN, nilc.trysend);
	EXPECT_TRUE(nilc.parked[0]);
	EXPECT_TRUE(nilc.parked[1]);
	EXPECT_TRUE(nilc.parked[2]);
}

/* ------------------------------------------------------------------------ */
/* rg_chan_free of a channel that goroutines wait on is fatal (it would free their queue). */

static rg_chan *ff_chan;
static atomic_int ff_done;

static void ff_recv(void *arg)
{
	rg_chan_recv(ff_chan, NULL);
	atomic_store(&ff_done, 1);
}

static void ff_send(void *arg)
{
	long v = 1;

	rg_chan_send(ff_chan, &v);
	atomic_store(&ff_done, 1);
}

static void ff_select(void *arg)
{
	rg_chan *other = rg_chan_make(0, 0);
	long v = 1;
	rg_case cs[2] = {RG_RECV(other, NULL), RG_SEND(ff_chan, &v)};

	rg_select(cs, 2, false);
	atomic_store(&ff_done, 1);
}

static void ff_run(void (*fn)(void *), int dir, size_t cap)
{
	long v = 0;

	ff_chan = rg_chan_make(sizeof(long), cap);
	for (size_t i = 0; i < cap; i++)
		rg_chan_send(ff_chan, &v);
	rg_go(fn, NULL);
	if (!rt_chan_await(ff_chan, dir, 1, &ff_done)) {
		fprintf(stderr, "test: the goroutine never parked\n");
		_exit(4);
	}
	rg_chan_free(ff_chan);
}

static void ff_recv_main(void *arg)
{
	ff_run(ff_recv, RG_CASE_RECV, 0);
}

static void ff_send_main(void *arg)
{
	ff_run(ff_send, RG_CASE_SEND, 2);
}

static void ff_select_main(void *arg)
{
	ff_run(ff_select, RG_CASE_SEND, 0);
}

#define FF_REASON "free of a channel that goroutines wait on"

TEST_F_TIMEOUT(chan, fatal_free_with_parked_receiver, 120)
{
	rt_expect_fatal(_metadata, ff_recv_main, FF_REASON);
}

TEST_F_TIMEOUT(chan, fatal_free_with_parked_sender, 120)
{
	rt_expect_fatal(_metadata, ff_send_main, FF_REASON);
}

TEST_F_TIMEOUT(chan, fatal_free_with_parked_select, 120)
{
	rt_expect_fatal(_metadata, ff_select_main, FF_REASON);
}

/* ------------------------------------------------------------------------ */
/*
 * Waiters are served in arrival order. Each waiter is started only once the
 * previous one is parked, so arrival order is known; some wait in a select
 * (with a nil case beside), which must keep its place in the queue too.
 */
#define FO_K 16

static struct {
	rg_wg wg;
	atomic_int finished;
	long got[FO_K];
	int rc[FO_K];
} fo;

struct fo_waiter {
	rg_chan *c;
	int i;
};

static void fo_receiver(void *arg)
{
	struct fo_waiter *w = arg;
	long v = -1;

	if (w->i % 3 == 1) {
		rg_case cs[2] = {RG_RECV(NULL, NULL), RG_RECV(w->c, &v)};

		fo.rc[w->i] = rg_select(cs, 2, false) == 1 ? cs[1].result : -100;
	} else {
		fo.rc[w->i] = rg_chan_recv(w->c, &v);
	}
	fo.got[w->i] = v;
	atomic_fetch_add(&fo.finished, 1);
	rg_wg_done(&fo.wg);
}

static void fo_sender(void *arg)
{
	struct fo_waiter *w = arg;
	long v = w->i;

	if (w->i % 3 == 1) {
		rg_case cs[2] = {RG_SEND(w->c, &v), RG_RECV(NULL, NULL)};

		fo.rc[w->i] = rg_select(cs, 2, false) == 0 ? cs[0].result : -100;
	} else {
		fo.rc[w->i] = rg_chan_send(w->c, &v);
	}
	atomic_fetch_add(&fo.finished, 1);
	rg_wg_done(&fo.wg);
}

static bool fo_start_in_order(void (*fn)(void *), struct fo_waiter *w, rg_chan *c, int dir)
{
	atomic_store(&fo.finished, 0);
	rg_wg_add(&fo.wg, FO_K);
	for (int i = 0; i < FO_K; i++) {
		w[i] = (struct fo_waiter){.c = c, .i = i};
		rg_go(fn, &w[i]);
		if (!rt_chan_await(c, dir, (size_t)i + 1, &fo.finished)) {
			CHECK(0, "waiter %d did not park", i);
			rg_chan_close(c);
			rg_wg_wait(&fo.wg);
			return false;
		}
	}
	return true;
}

static void fo_main(void *arg)
{
	struct fo_waiter w[FO_K];

	for (size_t cap = 0; cap <= 4; cap += 4) {
		rg_chan *c = rg_chan_make(sizeof(long), cap);
		long v;

		/* Receivers: the i-th value sent goes to the i-th receiver to arrive. */
		if (!fo_start_in_order(fo_receiver, w, c, RG_CASE_RECV))
			return;
		for (long i = 0; i < FO_K; i++)
			CHECK(rg_chan_send(c, &i) == 0, "cap %zu: send %ld", cap, i);
		rg_wg_wait(&fo.wg);
		for (int i = 0; i < FO_K; i++)
			CHECK(fo.rc[i] == 1 && fo.got[i] == i,
			      "cap %zu: receiver %d (arrived %d-th) got %ld (rc %d)", cap, i, i,
			      fo.got[i], fo.rc[i]);

		/* Senders: after the buffer, values come out in the senders' arrival order. */
		for (size_t j = 0; j < cap; j++) {
			v = 100 + (long)j;
			CHECK(rg_chan_send(c, &v) == 0, "cap %zu: fill", cap);
		}
		if (!fo_start_in_order(fo_sender, w, c, RG_CASE_SEND))
			return;
		for (size_t j = 0; j < cap; j++) {
			v = -1;
			CHECK(rg_chan_recv(c, &v) == 1 && v == 100 + (long)j,
			      "cap %zu: buffered value %zu came out as %ld", cap, j, v);
		}
		for (long i = 0; i < FO_K; i++) {
			v = -1;
			CHECK(rg_chan_recv(c, &v) == 1 && v == i,
			      "cap %zu: %ld-th value is %ld, from a later sender", cap, i, v);
		}
		rg_wg_wait(&fo.wg);
		for (int i = 0; i < FO_K; i++)
			CHECK(fo.rc[i] == 0, "cap %zu: sender %d rc %d", cap, i, fo.rc[i]);
		CHECK(rg_chan_len(c) == 0, "cap %zu: len %zu", cap, rg_chan_len(c));
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, waiters_served_fifo, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(fo_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/*
 * The lock-free buffer against parked goroutines and close (docs/design.md
 * §9). Senders' fast paths claim slots while receivers park and a closer
 * races them: every send that returned 0 reaches exactly one receiver, no
 * receiver sees "closed" before the values sent ahead of the close, and no
 * send succeeds after it. Elements of 8 bytes (slots) and 0 bytes (counts).
 */
#define BC_ROUNDS RT_TSAN_SCALE(3000, 200)
#define BC_RECEIVERS 3
#define BC_SENDERS 2
#define BC_VALUES 4

static struct {
	rg_wg wg;
	atomic_long got, sent;
	atomic_int late; /* a value after "closed" */
} bc;

static void bc_receiver(void *arg)
{
	rg_chan *c = arg;
	long v;
	int rc;

	while ((rc = rg_chan_recv(c, &v)) == 1) {
		atomic_fetch_add(&bc.got, 1);
	}
	CHECK(rc == 0, "recv rc %d", rc);
	/* Closed and drained stays so. */
	if (rg_chan_tryrecv(c, &v) != 0)
		atomic_fetch_add(&bc.late, 1);
	rg_wg_done(&bc.wg);
}

static void bc_sender(void *arg)
{
	rg_chan *c = arg;

	for (long v = 1; v <= BC_VALUES; v++) {
		int rc = rg_chan_send(c, &v);
		if (rc == -EPIPE)
			break;
		CHECK(rc == 0, "send rc %d", rc);
		atomic_fetch_add(&bc.sent, 1);
	}
	rg_wg_done(&bc.wg);
}

static void bc_main(void *arg)
{
	for (int r = 0; r < BC_ROUNDS; r++) {
		size_t elem = r & 1 ? 0 : sizeof(long);
		rg_chan *c = rg_chan_make(elem, 1 + (size_t)r % 3);

		rg_wg_add(&bc.wg, BC_RECEIVERS + BC_SENDERS);
		for (int i = 0; i < BC_RECEIVERS; i++)
			rg_go(bc_receiver, c);
		/* Half the rounds wait until every receiver is parked first. */
		if (r & 2)
			CHECK(rt_chan_await(c, RG_CASE_RECV, BC_RECEIVERS, NULL), "receivers park");
		long sent0 = atomic_load(&bc.sent);
		for (int i = 0; i < BC_SENDERS; i++)
			rg_go(bc_sender, c);
		/* Close while the senders run: after a varying number of their sends. */
		while (atomic_load(&bc.sent) - sent0 < r % (BC_SENDERS * BC_VALUES))
			rg_yield();
		CHECK(rg_chan_close(c) == 0, "close");
		rg_wg_wait(&bc.wg);
		CHECK(rg_chan_len(c) == 0, "len %zu after drain", rg_chan_len(c));
		rg_chan_free(c);
	}
	CHECK(atomic_load(&bc.got) == atomic_load(&bc.sent), "received %ld of %ld sent",
	      atomic_load(&bc.got), atomic_load(&bc.sent));
}

TEST_F_TIMEOUT(chan, buffered_close_keeps_values_for_parked_receivers, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(bc_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(0, atomic_load(&bc.late));
}

/*
 * A parked receiver and a sender's fast path meet in the Dekker window
 * (the mark against the claim): a ping-pong over two one-slot channels on
 * two Ps. The main goroutine polls for the ack (it never parks, so the two
 * really run in parallel) and sends the next value while the worker, having
 * just acked, parks for it. A lost wake-up leaves the value in the ring and
 * the worker parked for good; the poll's deadline turns that into a failure.
 * Also with chan struct{}, whose two counts share one cache line.
 */
#define BP_ROUNDS RT_TSAN_SCALE(50000, 5000)

static struct {
	rg_chan *c, *ack;
	bool empty; /* chan struct{}: no values to check */
	long bad;
} bp;

static void bp_worker(void *arg)
{
	for (long i = 0; i < BP_ROUNDS; i++) {
		long v = bp.empty ? i : -1;
		if (rg_chan_recv(bp.c, bp.empty ? NULL : &v) != 1 || v != i) {
			bp.bad++;
			return;
		}
		rg_chan_send(bp.ack, &v);
	}
}

static void bp_main(void *arg)
{
	size_t size = bp.empty ? 0 : sizeof(long);

	bp.c = rg_chan_make(size, 1);
	bp.ack = rg_chan_make(size, 1);
	rg_go(bp_worker, NULL);
	for (long i = 0; i < BP_ROUNDS; i++) {
		uint64_t deadline = rt_now_ns() + RT_AWAIT_NS;
		long v = bp.empty ? i : -1;
		int rc;

		rg_chan_send(bp.c, &i);
		while ((rc = rg_chan_tryrecv(bp.ack, bp.empty ? NULL : &v)) == -EAGAIN &&
		       rt_now_ns() < deadline)
			;
		if (rc != 1 || v != i) {
			CHECK(0, "round %ld: ack rc %d value %ld (a lost wake-up?)", i, rc, v);
			rg_chan_close(bp.c); /* let the worker go */
			return;
		}
	}
	CHECK(bp.bad == 0, "%ld bad receives", bp.bad);
	rg_chan_free(bp.c);
	rg_chan_free(bp.ack);
}

TEST_F_TIMEOUT(chan, buffered_ping_pong_races_park, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(bp_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

TEST_F_TIMEOUT(chan, struct_ping_pong_races_park, 120)
{
	bp.empty = true;
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(bp_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* ------------------------------------------------------------------------ */
/*
 * Free at the first sight of the close: the receiver that sees a channel
 * closed and drained may free it at once, while the closer (or a sender on
 * an unbuffered channel) is still on its way out of the channel's critical
 * section. rg_chan_free must wait for that holder; without the wait TSan
 * reported the closer's last accesses racing with free (and ASan may see
 * them as uses after free) in every run of this test.
 */
#define FC_ROUNDS (RT_TSAN ? 20000 : 100000)

static struct {
	long received;
	atomic_long wrong;
} fc;

static void fc_closer(void *arg)
{
	rg_chan *c = arg;
	long v = 1;

	if (rg_chan_send(c, &v) != 0)
		atomic_fetch_add(&fc.wrong, 1);
	rg_chan_close(c);
}

static void fc_main(void *arg)
{
	for (long i = 0; i < FC_ROUNDS; i++) {
		rg_chan *c = rg_chan_make(sizeof(long), (size_t)(i % 3));
		long v;
		int r;

		if (!c) {
			CHECK(0, "round %ld: rg_chan_make failed", i);
			return;
		}
		rg_go(fc_closer, c);
		while ((r = rg_chan_recv(c, &v)) == 1)
			fc.received++;
		CHECK(r == 0 && v == 0, "round %ld: closed receive returned %d, %ld", i, r, v);
		rg_chan_free(c);
	}
}

TEST_F_TIMEOUT(chan, free_right_after_seeing_the_close, 120)
{
	memset(&fc, 0, sizeof(fc));
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(fc_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(FC_ROUNDS, fc.received);
	EXPECT_EQ(0, atomic_load(&fc.wrong));
}

/* ------------------------------------------------------------------------ */
/*
 * The lock-free fast paths, white-box: while a plain thread holds a
 * channel's lock, a buffered send with room and a receive with data still
 * complete, and a failing non-blocking operation (full, empty, or an
 * unbuffered channel with nobody on the other side) answers -EAGAIN without
 * writing a byte of the channel. An operation that took the lock would wait
 * for the holder, who lets go only at a deadline; the test then fails.
 */
#define NL_CAP 4

static struct {
	rg_chan *buf, *unbuf;
	struct rt_lock_holder holder;
} nl;

/* A failing operation leaves every byte of the channel (header and ring) as it was. */
static bool nl_fails_read_only(rg_chan *c, bool send)
{
	unsigned char hdr[sizeof(*c)], ring[NL_CAP * 64];
	size_t ring_len = c->cap * c->slotsize;
	long v = 0;

	if (ring_len > sizeof(ring))
		return false;
	memcpy(hdr, c, sizeof(hdr));
	memcpy(ring, c->buf, ring_len);
	int r = send ? rg_chan_trysend(c, &v) : rg_chan_tryrecv(c, &v);
	return r == -EAGAIN && memcmp(hdr, c, sizeof(hdr)) == 0 &&
	       memcmp(ring, c->buf, ring_len) == 0;
}

static void nl_main(void *arg)
{
	long v;

	(void)arg;
	nl.buf = rg_chan_make(sizeof(long), NL_CAP);
	nl.unbuf = rg_chan_make(sizeof(long), 0);
	nl.holder.locks[nl.holder.n++] = &nl.buf->lock;
	nl.holder.locks[nl.holder.n++] = &nl.unbuf->lock;
	CHECK(rt_hold_locks(&nl.holder), "pthread_create");
	CHECK(nl_fails_read_only(nl.buf, false),
	      "a receive from an empty ring wrote or did not fail");
	CHECK(nl_fails_read_only(nl.unbuf, true), "an unbuffered send with no receiver wrote");
	CHECK(nl_fails_read_only(nl.unbuf, false), "an unbuffered receive with no sender wrote");
	for (long i = 0; i < NL_CAP; i++) {
		if (i % 2)
			CHECK(rg_chan_trysend(nl.buf, &i) == 0, "trysend %ld with room", i);
		else
			CHECK(rg_chan_send(nl.buf, &i) == 0, "send %ld with room", i);
	}
	CHECK(nl_fails_read_only(nl.buf, true), "a send to a full ring wrote or did not fail");
	for (long i = 0; i < NL_CAP; i++) {
		v = -1;
		int r = i % 2 ? rg_chan_tryrecv(nl.buf, &v) : rg_chan_recv(nl.buf, &v);
		CHECK(r == 1 && v == i, "receive %ld with data: %d, %ld", i, r, v);
	}
	rt_release_locks(&nl.holder);
	rg_chan_free(nl.buf);
	rg_chan_free(nl.unbuf);
}

TEST_F_TIMEOUT(chan, fast_paths_take_no_lock_and_failures_only_read, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nl_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(0, atomic_load(&nl.holder.late)) TH_LOG("an operation waited for the lock");
}

TEST_HARNESS_MAIN
