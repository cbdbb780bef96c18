// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_select: the select behaviours of Go 1.19's chan_test.go
 * (TestNonblockSelectRace and ...Race2, TestSelfSelect, TestSelectFairness,
 * TestSelectDuplicateChannel, TestPseudoRandomSend, TestSelectStress), a
 * chi-square check of the uniform choice among ready cases, and ringo's
 * contract: nil cases never proceed, has_default gives -EAGAIN and leaves
 * every channel as it was, a send case on a closed channel is ready and
 * reports -EPIPE, bad arguments are -EINVAL, and a woken select leaves no
 * sudog behind on the channels it did not use.
 */
#include "chan_helpers.h"

FIXTURE(sel) {
	int unused;
};
FIXTURE_SETUP(sel)
{
}
FIXTURE_TEARDOWN(sel)
{
}

static struct rt_errs errs;

#define CHECK(cond, ...) RT_CHECK(&errs, cond, __VA_ARGS__)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/*
 * TestNonblockSelectRace: c1 is ready before the poller starts and c2 becomes
 * ready before c1 may stop being so; a non-blocking select over both must act
 * on one moment's state and so never take its default. Race2 makes c2 ready
 * by closing it.
 */
#define NSR_N (RT_TSAN ? 5000 : RT_ASAN ? 30000 : 100000)

static struct {
	rg_chan *done;
	long defaults;
	uint64_t ns;
} nsr;

static void nsr_poller(void *arg)
{
	rg_chan **c = arg;
	bool ok;
	rg_case cs[2] = {RG_RECV(c[0], NULL), RG_RECV(c[1], NULL)};

	ok = rg_select(cs, 2, true) != -EAGAIN;
	rg_chan_send(nsr.done, &ok);
}

static void nsr_main(void *arg)
{
	bool close_c2 = arg != NULL;
	uint64_t t0 = rt_now_ns();

	nsr.done = rg_chan_make(sizeof(bool), 1);
	for (int i = 0; i < NSR_N; i++) {
		rg_chan *c[2] = {rg_chan_make(sizeof(int), 1),
				 rg_chan_make(sizeof(int), !close_c2)};
		int one = 1;
		bool ok = false;

		rg_chan_send(c[0], &one);
		rg_go(nsr_poller, c);
		if (close_c2)
			rg_chan_close(c[1]);
		else
			rg_chan_send(c[1], &one);
		rg_chan_tryrecv(c[0], NULL);
		rg_chan_recv(nsr.done, &ok); /* the poller is done with c before the frees */
		if (!ok)
			nsr.defaults++;
		rg_chan_free(c[0]);
		rg_chan_free(c[1]);
	}
	rg_chan_free(nsr.done);
	nsr.ns = rt_now_ns() - t0;
}

TEST_F_TIMEOUT(sel, nonblock_select_race, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nsr_main, NULL));
	EXPECT_EQ(0, nsr.defaults) TH_LOG("select took its default with a channel ready");
	TH_LOG("%d rounds: %.2f s", NSR_N, nsr.ns / 1e9);
}

TEST_F_TIMEOUT(sel, nonblock_select_race2, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nsr_main, (void *)1));
	EXPECT_EQ(0, nsr.defaults) TH_LOG("select took its default with a channel ready");
	TH_LOG("%d rounds: %.2f s", NSR_N, nsr.ns / 1e9);
}

/* The same races with the poller kept on the other P (lock step), so they overlap for real. */
static struct {
	rg_chan *c[2];
	atomic_long round, acked;
	atomic_int main_p;
	long rounds, defaults, other_p;
	uint64_t ns;
} nsl;

static void nsl_poller(void *arg)
{
	for (long r = 1;; r++) {
		rt_spin_until(&nsl.round, r);
		if (atomic_load(&nsl.round) == RT_LOCKSTEP_END)
			break;

		rg_case cs[2] = {RG_RECV(nsl.c[0], NULL), RG_RECV(nsl.c[1], NULL)};

		if (rg_select(cs, 2, true) == -EAGAIN)
			nsl.defaults++;
		nsl.other_p += rg_current_p() != atomic_load(&nsl.main_p);
		atomic_store_explicit(&nsl.acked, r, memory_order_release);
	}
}

static void nsl_main(void *arg)
{
	bool close_c2 = arg != NULL;
	uint64_t t0 = rt_now_ns();
	long r;

	rg_go(nsl_poller, NULL);
	for (r = 1; rt_lockstep_more(r, NSR_N, t0); r++) {
		int one = 1;

		nsl.c[0] = rg_chan_make(sizeof(int), 1);
		nsl.c[1] = rg_chan_make(sizeof(int), !close_c2);
		rg_chan_send(nsl.c[0], &one);
		atomic_store(&nsl.main_p, rg_current_p());
		atomic_store_explicit(&nsl.round, r, memory_order_release);
		if (close_c2)
			rg_chan_close(nsl.c[1]);
		else
			rg_chan_send(nsl.c[1], &one);
		rg_chan_tryrecv(nsl.c[0], NULL);
		rt_spin_until(&nsl.acked, r);
		rg_chan_free(nsl.c[0]);
		rg_chan_free(nsl.c[1]);
	}
	nsl.rounds = r - 1;
	atomic_store_explicit(&nsl.round, RT_LOCKSTEP_END, memory_order_release);
	nsl.ns = rt_now_ns() - t0;
}

TEST_F_TIMEOUT(sel, nonblock_select_race_lockstep, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nsl_main, NULL));
	EXPECT_EQ(0, nsl.defaults) TH_LOG("select took its default with a channel ready");
	TH_LOG("%ld rounds, %ld polls on the other P: %.2f s", nsl.rounds, nsl.other_p,
	       nsl.ns / 1e9);
}

TEST_F_TIMEOUT(sel, nonblock_select_race2_lockstep, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nsl_main, (void *)1));
	EXPECT_EQ(0, nsl.defaults) TH_LOG("select took its default with a channel ready");
	TH_LOG("%ld rounds, %ld polls on the other P: %.2f s", nsl.rounds, nsl.other_p,
	       nsl.ns / 1e9);
}

/* ------------------------------------------------------------------------ */
/*
 * TestSelfSelect: two goroutines select between sending to and receiving from
 * the same channel. Nothing may crash or deadlock, and on an unbuffered
 * channel a goroutine must never receive its own value (its send and receive
 * sudogs sit in the same channel's queues).
 */
#define SS_ITER 1000
#define SS_ROUNDS RT_TSAN_SCALE(20, 4)

static struct {
	rg_chan *c;
	size_t cap;
	rg_wg wg;
	long self_recv;
	long picks[2]; /* sends, receives: this round's */
} ss;

static void ss_worker(void *arg)
{
	long p = (long)(uintptr_t)arg;
	long self_recv = 0, picks[2] = {0, 0};

	for (int i = 0; i < SS_ITER; i++) {
		long v = -1;
		rg_case cs[2];
		int k;

		/* Both case orders, as in Go's test. */
		if (p == 0 || i % 2 == 0) {
			cs[0] = RG_SEND(ss.c, &p);
			cs[1] = RG_RECV(ss.c, &v);
		} else {
			cs[0] = RG_RECV(ss.c, &v);
			cs[1] = RG_SEND(ss.c, &p);
		}
		k = rg_select(cs, 2, false);
		if (k < 0) {
			CHECK(0, "select returned %d", k);
			break;
		}
		picks[cs[k].dir == RG_CASE_RECV]++;
		if (cs[k].dir == RG_CASE_RECV && ss.cap == 0 && v == p)
			self_recv++;
	}
	__atomic_fetch_add(&ss.self_recv, self_recv, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ss.picks[0], picks[0], __ATOMIC_RELAXED);
	__atomic_fetch_add(&ss.picks[1], picks[1], __ATOMIC_RELAXED);
	rg_wg_done(&ss.wg);
}

static void ss_main(void *arg)
{
	for (int r = 0; r < SS_ROUNDS; r++) {
		for (ss.cap = 0; ss.cap <= 10; ss.cap += 10) {
			ss.c = rg_chan_make(sizeof(long), ss.cap);
			rg_wg_add(&ss.wg, 2);
			rg_go(ss_worker, (void *)0);
			rg_go(ss_worker, (void *)1);
			rg_wg_wait(&ss.wg);
			/* Every send was received, or is still buffered. */
			CHECK(ss.picks[0] + ss.picks[1] == 2 * SS_ITER &&
				      ss.picks[0] - ss.picks[1] == (long)rg_chan_len(ss.c),
			      "cap %zu: %ld sends, %ld receives, %zu buffered", ss.cap, ss.picks[0],
			      ss.picks[1], rg_chan_len(ss.c));
			ss.picks[0] = ss.picks[1] = 0;
			rg_chan_free(ss.c);
		}
	}
}

TEST_F_TIMEOUT(sel, self_select, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(ss_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(0, ss.self_recv);
}

/* ------------------------------------------------------------------------ */
/*
 * Fairness. rg_select chooses uniformly among the ready cases; every check
 * below is Pearson's chi-square of the choice counts against uniform, with
 * bounds at the 1e-9 quantiles (chan_helpers.h): a correct runtime crosses
 * each with probability 1e-9, and with the 14 bounds checked here the test's
 * false-failure rate is about 1.4e-8 (the chi-square approximation is good:
 * every cell expects 200 or more picks). The lower bound, used where the
 * statistic has 7 or more degrees of freedom, catches a choice too even to
 * be random (round-robin); the serial test on non-overlapping pairs catches
 * a choice that depends on the previous one. With 100,000 trials, one case
 * favoured by 10% over its share fails the 8-case checks almost surely (the
 * 2-case check: by 3%).
 */
#define FAIR_TRIALS RT_TSAN_SCALE(100000, 5)

static struct {
	struct {
		char what[64];
		int df;
		double x2;
		bool lo_checked;
	} res[16];
	int nres;
} fair;

static void fair_record(const char *what, const uint64_t *counts, int k, bool check_lo)
{
	if (fair.nres >= (int)NELEM(fair.res))
		return;
	snprintf(fair.res[fair.nres].what, sizeof(fair.res[0].what), "%s", what);
	fair.res[fair.nres].df = k - 1;
	fair.res[fair.nres].x2 = rt_chi2_uniform(counts, k);
	fair.res[fair.nres].lo_checked = check_lo;
	fair.nres++;
}

/* TestSelectFairness as Go writes it: 2 ready of 4 receive cases, through a goroutine. */
#define GF_TRIALS RT_TSAN_SCALE(100000, 10)

static struct {
	rg_chan *c1, *c2, *c3, *c4, *out, *done;
	rg_wg wg;
	long bad_value;
} gf;

static void gf_chooser(void *arg)
{
	for (;;) {
		unsigned char b = 0;
		rg_case pick[4] = {RG_RECV(gf.c3, &b), RG_RECV(gf.c4, &b), RG_RECV(gf.c1, &b),
				   RG_RECV(gf.c2, &b)};
		rg_case fwd[2] = {RG_SEND(gf.out, &b), RG_RECV(gf.done, NULL)};

		rg_select(pick, 4, false);
		if (rg_select(fwd, 2, false) == 1)
			break;
	}
	rg_wg_done(&gf.wg);
}

static void gf_main(void *arg)
{
	uint64_t counts[2] = {0, 0};
	unsigned char one = 1, two = 2;

	gf.c1 = rg_chan_make(1, GF_TRIALS + 1);
	gf.c2 = rg_chan_make(1, GF_TRIALS + 1);
	for (int i = 0; i < GF_TRIALS + 1; i++) {
		rg_chan_send(gf.c1, &one);
		rg_chan_send(gf.c2, &two);
	}
	gf.c3 = rg_chan_make(1, 0);
	gf.c4 = rg_chan_make(1, 0);
	gf.out = rg_chan_make(1, 0);
	gf.done = rg_chan_make(0, 0);
	rg_wg_add(&gf.wg, 1);
	rg_go(gf_chooser, NULL);
	for (int i = 0; i < GF_TRIALS; i++) {
		unsigned char b = 0;

		rg_chan_recv(gf.out, &b);
		if (b == 1 || b == 2)
			counts[b - 1]++;
		else
			gf.bad_value++;
	}
	rg_chan_close(gf.done);
	rg_wg_wait(&gf.wg);
	fair_record("Go's TestSelectFairness (2 of 4 ready)", counts, 2, false);
	rg_chan_free(gf.c1);
	rg_chan_free(gf.c2);
	rg_chan_free(gf.c3);
	rg_chan_free(gf.c4);
	rg_chan_free(gf.out);
	rg_chan_free(gf.done);
}

/*
 * k cases, those with ready[i] on a channel kept non-empty (elem 0, cap 1,
 * refilled after each pick), the others on an empty channel or nil. dup puts
 * every ready case on one channel. send turns the ready cases into sends on a
 * channel kept empty. Counts the picks among the ready cases.
 */
static void fair_run(const char *what, int k, const bool *ready, bool dup, bool send, bool check_lo,
		     bool pairs)
{
	rg_chan **ch = calloc((size_t)k, sizeof(*ch));
	rg_case *cs = calloc((size_t)k, sizeof(*cs));
	uint64_t counts[128] = {0};
	int idx[128], nready = 0, prev = -1;
	rg_chan *shared = rg_chan_make(0, 1);

	if (!ch || !cs || k > 128)
		goto out;
	for (int i = 0; i < k; i++) {
		idx[i] = -1;
		if (ready[i]) {
			idx[i] = nready++;
			ch[i] = dup ? shared : rg_chan_make(0, 1);
			if (!send && (!dup || nready == 1))
				rg_chan_trysend(ch[i], NULL);
		} else if (i % 2) {
			ch[i] = rg_chan_make(0, 0); /* open, nobody waits: never ready */
		}
		cs[i] = send && ready[i] ? RG_SEND(ch[i], NULL) : RG_RECV(ch[i], NULL);
	}
	for (int t = 0; t < FAIR_TRIALS; t++) {
		int i = rg_select(cs, (size_t)k, false);

		if (i < 0 || i >= k || idx[i] < 0) {
			CHECK(0, "%s: chose case %d, which is not ready", what, i);
			break;
		}
		/* Restore readiness: refill the receive's channel, drain the send's. */
		if (send)
			rg_chan_tryrecv(ch[i], NULL);
		else
			rg_chan_trysend(ch[i], NULL);
		if (!pairs)
			counts[idx[i]]++;
		else if (prev < 0)
			prev = idx[i];
		else {
			counts[prev * nready + idx[i]]++;
			prev = -1;
		}
	}
	fair_record(what, counts, pairs ? nready * nready : nready, check_lo);
out:
	for (int i = 0; ch && i < k; i++)
		if (ch[i] != shared)
			rg_chan_free(ch[i]);
	rg_chan_free(shared);
	free(ch);
	free(cs);
}

/*
 * A ready unbuffered case (a parked sender) beside a ready buffered one.
 * rg_select first tries buffered channels' lock-free claims in poll order;
 * it must stop at the unbuffered case, or the buffered one would win every
 * time it is polled second.
 */
static struct {
	rg_chan *u;
	struct rg_g *_Atomic g;
	rg_wg done;
} mix;

static void mix_sender(void *arg)
{
	unsigned char b = 0;

	atomic_store(&mix.g, rt_self());
	while (rg_chan_send(mix.u, &b) == 0) /* -EPIPE once closed */
		;
	rg_wg_done(&mix.done);
}

static void fair_mixed(void)
{
	rg_chan *buf = rg_chan_make(1, 1);
	uint64_t counts[2] = {0, 0};
	unsigned char x = 0, b;

	mix.u = rg_chan_make(1, 0);
	rg_wg_add(&mix.done, 1);
	if (!buf || !mix.u || rg_go(mix_sender, NULL) != 0 || rg_chan_trysend(buf, &x) != 0) {
		CHECK(0, "mixed fairness: set-up failed");
		return;
	}
	for (int t = 0; t < FAIR_TRIALS; t++) {
		if (!rt_await_parked(&mix.g, WAIT_CHAN_SEND)) {
			CHECK(0, "mixed fairness: the sender did not park again");
			break;
		}
		rg_case cs[2] = {RG_RECV(mix.u, &b), RG_RECV(buf, &b)};
		int i = rg_select(cs, 2, false);
		if (i != 0 && i != 1) {
			CHECK(0, "mixed fairness: rg_select returned %d", i);
			break;
		}
		counts[i]++;
		if (i == 1)
			rg_chan_trysend(buf, &x);
	}
	rg_chan_close(mix.u);
	rg_wg_wait(&mix.done);
	fair_record("a ready unbuffered case beside a ready buffered one", counts, 2, false);
	rg_chan_free(mix.u);
	rg_chan_free(buf);
}

static void fair_main(void *arg)
{
	bool r[100];

	gf_main(NULL);
	fair_mixed();
	for (int i = 0; i < 100; i++)
		r[i] = true;
	fair_run("8 ready receive cases (on-stack bookkeeping)", 8, r, false, false, true, false);
	fair_run("20 ready receive cases (heap bookkeeping)", 20, r, false, false, true, false);
	fair_run("100 ready receive cases", 100, r, false, false, true, false);
	fair_run("4 ready send cases", 4, r, false, true, false, false);
	fair_run("3 receive cases on one channel", 3, r, true, false, false, false);
	fair_run("pairs of picks among 3 ready cases", 3, r, false, false, true, true);
	/* 8 ready among 16, the rest on empty channels and nil. */
	for (int i = 0; i < 16; i++)
		r[i] = (i * 5) % 16 < 8;
	fair_run("8 ready of 16 cases", 16, r, false, false, true, false);
}

TEST_F_TIMEOUT(sel, select_fairness, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(fair_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(0, gf.bad_value);
	EXPECT_EQ(9, fair.nres);
	for (int i = 0; i < fair.nres; i++) {
		const struct rt_chi2_bound *b = rt_chi2_bound_for(fair.res[i].df);

		ASSERT_NE(NULL, b) TH_LOG("no chi-square bound for df %d", fair.res[i].df);
		EXPECT_LT(fair.res[i].x2, b->hi)
		TH_LOG("%s: chi-square %.2f, df %d: biased", fair.res[i].what, fair.res[i].x2,
		       fair.res[i].df);
		if (fair.res[i].lo_checked) {
			EXPECT_GT(fair.res[i].x2, b->lo)
			TH_LOG("%s: chi-square %.4f, df %d: too even to be random",
			       fair.res[i].what, fair.res[i].x2, fair.res[i].df);
		}
		TH_LOG("%s: chi-square %.2f (df %d, bounds %g..%g)", fair.res[i].what,
		       fair.res[i].x2, fair.res[i].df, fair.res[i].lo_checked ? b->lo : 0.0, b->hi);
	}
}

/* ------------------------------------------------------------------------ */
/*
 * TestSelectDuplicateChannel: A's select waits twice on c and once on d, B
 * waits on c behind it. Waking A through d must take both of A's sudogs off
 * c, so that the next send on c reaches B, not A's stale entry. The variant
 * wakes A through c instead.
 */
static struct {
	rg_chan *c, *d, *e;
	rg_wg wg;
	atomic_int finished;
	int a_index;
	long a_val, b_val;
	int b_rc;
} sd;

static void sd_a(void *arg)
{
	long v = -1, nine = 9;
	rg_case cs[3] = {RG_RECV(sd.c, &v), RG_RECV(sd.c, &v), RG_RECV(sd.d, &v)};

	sd.a_index = rg_select(cs, 3, false);
	sd.a_val = v;
	atomic_fetch_add(&sd.finished, 1);
	rg_chan_send(sd.e, &nine);
	rg_wg_done(&sd.wg);
}

static void sd_b(void *arg)
{
	long v = -1;

	sd.b_rc = rg_chan_recv(sd.c, &v);
	sd.b_val = v;
	atomic_fetch_add(&sd.finished, 1);
	rg_wg_done(&sd.wg);
}

static void sd_main(void *arg)
{
	for (int via_c = 0; via_c < 2; via_c++) {
		long v, seven = 7, eight = 8;

		sd.c = rg_chan_make(sizeof(long), 0);
		sd.d = rg_chan_make(sizeof(long), 0);
		sd.e = rg_chan_make(sizeof(long), 0);
		sd.a_index = -1;
		sd.a_val = sd.b_val = -1;
		atomic_store(&sd.finished, 0);
		rg_wg_add(&sd.wg, 2);
		rg_go(sd_a, NULL);
		/* A is queued first on c (twice), then B behind it. */
		CHECK(rt_chan_await(sd.c, RG_CASE_RECV, 2, &sd.finished), "A did not park");
		rg_go(sd_b, NULL);
		CHECK(rt_chan_await(sd.c, RG_CASE_RECV, 3, &sd.finished), "B did not park");
		CHECK(rg_chan_send(via_c ? sd.c : sd.d, &seven) == 0, "wake A");
		v = -1;
		CHECK(rg_chan_recv(sd.e, &v) == 1 && v == 9, "A's report %ld", v);
		if (via_c)
			CHECK(sd.a_index == 0 || sd.a_index == 1, "A woke through case %d",
			      sd.a_index);
		else
			CHECK(sd.a_index == 2, "A woke through case %d", sd.a_index);
		CHECK(sd.a_val == 7, "A got %ld", sd.a_val);
		/* A is gone from c entirely: only B is left, and the next send is its. */
		CHECK(rt_chan_queued(sd.c, RG_CASE_RECV) == 1, "c has %zu waiters, want B only",
		      rt_chan_queued(sd.c, RG_CASE_RECV));
		CHECK(rt_chan_queued(sd.d, RG_CASE_RECV) == 0, "d still has a waiter");
		CHECK(rg_chan_send(sd.c, &eight) == 0, "wake B");
		rg_wg_wait(&sd.wg);
		CHECK(sd.b_rc == 1 && sd.b_val == 8, "B got %ld (rc %d)", sd.b_val, sd.b_rc);
		CHECK(rt_chan_queued(sd.c, RG_CASE_RECV) == 0, "c not empty at the end");
		rg_chan_free(sd.c);
		rg_chan_free(sd.d);
		rg_chan_free(sd.e);
	}
}

TEST_F_TIMEOUT(sel, select_duplicate_channel, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(sd_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* ------------------------------------------------------------------------ */
/*
 * TestPseudoRandomSend: a select of two sends (1 and 0) on the same channel
 * must pick both kinds. With n = 100 fair picks, either kind at most n/10
 * times has probability 2 * P(Bin(100, 1/2) <= 10), about 3e-17.
 */
#define PRS_N 100

static struct {
	rg_chan *c;
	long l[PRS_N];
	rg_mutex m;
	int n0[2], n1[2];
} prs;

static void prs_receiver(void *arg)
{
	for (int i = 0; i < PRS_N; i++) {
		rg_yield();
		rg_chan_recv(prs.c, &prs.l[i]);
	}
	rg_mutex_unlock(&prs.m);
}

static void prs_main(void *arg)
{
	for (int k = 0; k < 2; k++) {
		long one = 1, zero = 0;

		prs.c = rg_chan_make(sizeof(long), k ? PRS_N : 0);
		memset(prs.l, 0xff, sizeof(prs.l));
		rg_mutex_lock(&prs.m);
		rg_go(prs_receiver, NULL);
		for (int i = 0; i < PRS_N; i++) {
			rg_case cs[2] = {RG_SEND(prs.c, &one), RG_SEND(prs.c, &zero)};

			CHECK(rg_select(cs, 2, false) >= 0, "select");
		}
		rg_mutex_lock(&prs.m); /* the receiver is done */
		rg_mutex_unlock(&prs.m);
		for (int i = 0; i < PRS_N; i++) {
			CHECK(prs.l[i] == 0 || prs.l[i] == 1, "received %ld", prs.l[i]);
			prs.n0[k] += prs.l[i] == 0;
			prs.n1[k] += prs.l[i] == 1;
		}
		rg_chan_free(prs.c);
	}
}

TEST_F_TIMEOUT(sel, pseudo_random_send, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(prs_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	for (int k = 0; k < 2; k++) {
		EXPECT_GT(prs.n0[k], PRS_N / 10)
		TH_LOG("cap %d: %d zeros", k ? PRS_N : 0, prs.n0[k]);
		EXPECT_GT(prs.n1[k], PRS_N / 10)
		TH_LOG("cap %d: %d ones", k ? PRS_N : 0, prs.n1[k]);
	}
}

/* ------------------------------------------------------------------------ */
/*
 * TestSelectStress: on 4 channels (caps 0, 0, 2, 3), a plain sender and a
 * plain receiver each, plus one goroutine sending N on each through one
 * select and one receiving N from each through one select, nil-ing a case out
 * when its channel is done. It must not deadlock; beyond Go's test, every
 * value must arrive on its channel exactly once (count and sum).
 */
#define ST_N (RT_TSAN ? 2000 : RT_ASAN ? 20000 : 100000)

static struct {
	rg_chan *c[4];
	rg_wg wg;
	uint64_t sum[4]; /* received per channel; added under the wg's ordering */
	uint64_t n[4];
	rg_mutex m;
	uint64_t ns;
} st;

static void st_account(int k, uint64_t sum, uint64_t n)
{
	rg_mutex_lock(&st.m);
	st.sum[k] += sum;
	st.n[k] += n;
	rg_mutex_unlock(&st.m);
}

static void st_sender(void *arg)
{
	int k = (int)(uintptr_t)arg;

	for (uint64_t i = 0; i < ST_N; i++) {
		uint64_t v = i << 2 | (uint64_t)k;

		CHECK(rg_chan_send(st.c[k], &v) == 0, "send");
	}
	rg_wg_done(&st.wg);
}

static void st_receiver(void *arg)
{
	int k = (int)(uintptr_t)arg;
	uint64_t sum = 0;

	for (int i = 0; i < ST_N; i++) {
		uint64_t v = 0;

		CHECK(rg_chan_recv(st.c[k], &v) == 1, "recv");
		CHECK((v & 3) == (uint64_t)k, "value %llu on channel %d", (unsigned long long)v, k);
		sum += v;
	}
	st_account(k, sum, ST_N);
	rg_wg_done(&st.wg);
}

static void st_select_sender(void *arg)
{
	uint64_t n[4] = {0}, v[4];
	rg_case cs[4];

	/* Go's case order: 3, 2, 0, 1. */
	static const int order[4] = {3, 2, 0, 1};
	for (int j = 0; j < 4; j++)
		cs[j] = RG_SEND(st.c[order[j]], &v[j]);
	for (int i = 0; i < 4 * ST_N; i++) {
		int j;

		for (int q = 0; q < 4; q++)
			v[q] = (ST_N + n[q]) << 2 | (uint64_t)order[q];
		j = rg_select(cs, 4, false);
		if (j < 0 || cs[j].result != 0) {
			CHECK(0, "select send: %d", j);
			break;
		}
		if (++n[j] == ST_N)
			cs[j].chan = NULL;
	}
	rg_wg_done(&st.wg);
}

static void st_select_receiver(void *arg)
{
	uint64_t n[4] = {0}, sum[4] = {0}, v;
	rg_case cs[4];

	for (int k = 0; k < 4; k++)
		cs[k] = RG_RECV(st.c[k], &v);
	for (int i = 0; i < 4 * ST_N; i++) {
		int k = rg_select(cs, 4, false);

		if (k < 0 || cs[k].result != 1) {
			CHECK(0, "select recv: %d", k);
			break;
		}
		CHECK((v & 3) == (uint64_t)k, "value %llu on channel %d", (unsigned long long)v, k);
		sum[k] += v;
		if (++n[k] == ST_N)
			cs[k].chan = NULL;
	}
	for (int k = 0; k < 4; k++)
		st_account(k, sum[k], n[k]);
	rg_wg_done(&st.wg);
}

static void st_main(void *arg)
{
	static const size_t caps[4] = {0, 0, 2, 3};
	uint64_t t0 = rt_now_ns();

	for (int k = 0; k < 4; k++)
		st.c[k] = rg_chan_make(sizeof(uint64_t), caps[k]);
	rg_wg_add(&st.wg, 10);
	for (int k = 0; k < 4; k++) {
		rg_go(st_sender, (void *)(uintptr_t)k);
		rg_go(st_receiver, (void *)(uintptr_t)k);
	}
	rg_go(st_select_sender, NULL);
	rg_go(st_select_receiver, NULL);
	rg_wg_wait(&st.wg);
	st.ns = rt_now_ns() - t0;
	for (int k = 0; k < 4; k++)
		rg_chan_free(st.c[k]);
}

TEST_F_TIMEOUT(sel, select_stress, 120)
{
	rg_maxprocs(10);
	ASSERT_EQ(0, rg_run(st_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	for (int k = 0; k < 4; k++) {
		/* Values i<<2|k for i in 0..2N-1. */
		uint64_t m = 2 * (uint64_t)ST_N;
		uint64_t want = 4 * (m * (m - 1) / 2) + m * (uint64_t)k;

		EXPECT_EQ(m, st.n[k]) TH_LOG("channel %d", k);
		EXPECT_EQ(want, st.sum[k]) TH_LOG("channel %d: values lost or duplicated", k);
	}
	TH_LOG("%d values per channel and side: %.2f s", ST_N, st.ns / 1e9);
}

/* ------------------------------------------------------------------------ */
/* Nil cases never proceed, whatever else is in the select. */
#define NIL_TRIALS RT_TSAN_SCALE(10000, 10)

static struct {
	rg_chan *c;
	rg_wg wg;
	atomic_int finished;
	int idx, result;
	long v;
} nc;

static void nc_parked(void *arg)
{
	long x = 5;
	rg_case cs[4] = {RG_RECV(NULL, &nc.v), RG_SEND(NULL, &x), RG_RECV(nc.c, &nc.v),
			 RG_SEND(NULL, &x)};

	nc.idx = rg_select(cs, 4, false);
	nc.result = cs[nc.idx < 0 ? 0 : nc.idx].result;
	atomic_fetch_add(&nc.finished, 1);
	rg_wg_done(&nc.wg);
}

static void nc_main(void *arg)
{
	rg_chan *c = rg_chan_make(sizeof(long), 1);
	long v = 0, x = 3;
	rg_case cs[5];

	/* Only nil cases: with a default, the default. */
	cs[0] = RG_RECV(NULL, &v);
	cs[1] = RG_SEND(NULL, &x);
	CHECK(rg_select(cs, 2, true) == -EAGAIN, "nil cases + default");
	CHECK(rg_select(NULL, 0, true) == -EAGAIN, "no cases + default");

	/* One real case among nils: always it, whether ready already or not. */
	for (int t = 0; t < NIL_TRIALS; t++) {
		int i;

		cs[0] = RG_SEND(NULL, &x);
		cs[1] = RG_RECV(NULL, &v);
		cs[2] = RG_SEND(c, &x);
		cs[3] = RG_RECV(NULL, &v);
		cs[4] = RG_SEND(NULL, &x);
		i = rg_select(cs, 5, t & 1);
		CHECK(i == 2 && cs[2].result == 0, "trial %d: send picked %d", t, i);
		cs[2] = RG_RECV(c, &v);
		v = -1;
		i = rg_select(cs, 5, t & 1);
		CHECK(i == 2 && cs[2].result == 1 && v == 3, "trial %d: recv picked %d", t, i);
	}
	rg_chan_free(c);

	/* Parked with nil cases beside: woken through the real one only. */
	nc.c = rg_chan_make(sizeof(long), 0);
	rg_wg_add(&nc.wg, 1);
	rg_go(nc_parked, NULL);
	CHECK(rt_chan_await(nc.c, RG_CASE_RECV, 1, &nc.finished), "select did not park");
	x = 42;
	CHECK(rg_chan_send(nc.c, &x) == 0, "send");
	rg_wg_wait(&nc.wg);
	CHECK(nc.idx == 2 && nc.result == 1 && nc.v == 42, "woke as case %d result %d value %ld",
	      nc.idx, nc.result, nc.v);
	rg_chan_free(nc.c);
}

TEST_F_TIMEOUT(sel, select_nil_cases_never_proceed, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(nc_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* ------------------------------------------------------------------------ */
/* has_default: -EAGAIN when nothing is ready, and nothing is sent, received or left queued. */
static void dflt_main(void *arg)
{
	rg_chan *full = rg_chan_make(sizeof(long), 2), *empty = rg_chan_make(sizeof(long), 2);
	rg_chan *unbuf = rg_chan_make(sizeof(long), 0);
	long a = 1, b = 2, got = -7, x = 99;

	rg_chan_send(full, &a);
	rg_chan_send(full, &b);
	for (int t = 0; t < 1000; t++) {
		rg_case cs[5] = {RG_SEND(full, &x), RG_RECV(empty, &got), RG_SEND(unbuf, &x),
				 RG_RECV(unbuf, &got), RG_RECV(NULL, &got)};

		CHECK(rg_select(cs, 5, true) == -EAGAIN, "default not taken");
		CHECK(got == -7, "a receive that did not happen wrote %ld", got);
	}
	CHECK(rg_chan_len(full) == 2 && rg_chan_len(empty) == 0, "lengths changed");
	CHECK(rt_chan_queued(full, RG_CASE_SEND) == 0 && rt_chan_queued(empty, RG_CASE_RECV) == 0 &&
		      rt_chan_queued(unbuf, RG_CASE_SEND) == 0 &&
		      rt_chan_queued(unbuf, RG_CASE_RECV) == 0,
	      "a default select left a sudog queued");
	got = -1;
	CHECK(rg_chan_recv(full, &got) == 1 && got == 1, "full[0] = %ld", got);
	CHECK(rg_chan_recv(full, &got) == 1 && got == 2, "full[1] = %ld", got);
	/* Something ready: the default is not taken. */
	{
		rg_case cs[2] = {RG_SEND(full, &x), RG_RECV(empty, &got)};

		CHECK(rg_select(cs, 2, true) == 0 && cs[0].result == 0, "ready send not taken");
	}
	rg_chan_free(full);
	rg_chan_free(empty);
	rg_chan_free(unbuf);
}

TEST_F_TIMEOUT(sel, select_default_when_none_ready, 120)
{
	ASSERT_EQ(0, rg_run(dflt_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* ------------------------------------------------------------------------ */
/* A send case on a closed channel is ready (it would panic in Go) and reports -EPIPE. */
static void sc_main(void *arg)
{
	rg_chan *closed = rg_chan_make(sizeof(long), 0), *open = rg_chan_make(sizeof(long), 0);
	rg_chan *closed_full = rg_chan_make(sizeof(long), 1);
	long x = 1, v;
	int seen[2] = {0, 0};

	rg_chan_send(closed_full, &x);
	rg_chan_close(closed);
	rg_chan_close(closed_full);
	for (int t = 0; t < 200; t++) {
		rg_case cs[3] = {RG_RECV(open, &v), RG_SEND(closed, &x), RG_RECV(NULL, NULL)};
		int i = rg_select(cs, 3, t & 1);

		CHECK(i == 1 && cs[1].result == -EPIPE, "picked %d result %d", i, cs[1].result);
	}
	for (int t = 0; t < 200; t++) {
		/* Full and closed: still ready, still -EPIPE, and the buffered value stays. */
		rg_case cs[2] = {RG_SEND(closed_full, &x), RG_RECV(open, &v)};
		int i = rg_select(cs, 2, false);

		CHECK(i == 0 && cs[0].result == -EPIPE, "full: picked %d result %d", i,
		      cs[0].result);
	}
	CHECK(rg_chan_len(closed_full) == 1, "len %zu", rg_chan_len(closed_full));
	/* Beside a receive on a closed channel both are ready: both get picked. */
	for (int t = 0; t < 200; t++) {
		rg_case cs[2] = {RG_SEND(closed, &x), RG_RECV(closed, &v)};
		int i = rg_select(cs, 2, false);

		if (i == 0)
			CHECK(cs[0].result == -EPIPE, "send result %d", cs[0].result);
		else if (i == 1)
			CHECK(cs[1].result == 0 && v == 0, "recv result %d", cs[1].result);
		else
			CHECK(0, "picked %d", i);
		if (i == 0 || i == 1)
			seen[i]++;
	}
	/* 200 fair picks: one side never picked has probability 2^-199. */
	CHECK(seen[0] > 0 && seen[1] > 0, "picks %d/%d", seen[0], seen[1]);
	rg_chan_free(closed);
	rg_chan_free(open);
	rg_chan_free(closed_full);
}

TEST_F_TIMEOUT(sel, select_send_on_closed_is_epipe, 120)
{
	ASSERT_EQ(0, rg_run(sc_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* ------------------------------------------------------------------------ */
/* Bad arguments: -EINVAL, and no case runs. */
static struct {
	int bad_dir[4], too_many, max_ok, null_cases, zero_dir_nil;
	size_t len_after;
} ba;

static void ba_main(void *arg)
{
	rg_chan *c = rg_chan_make(sizeof(long), 1);
	long v = 5;
	rg_case cs[2];
	rg_case *many = calloc(65537, sizeof(*many));
	static const int dirs[4] = {0, 3, -1, 100};

	rg_chan_send(c, &v);
	for (int i = 0; i < 4; i++) {
		cs[0] = RG_RECV(c, &v); /* ready: must not run */
		cs[1] = RG_RECV(c, &v);
		cs[1].dir = dirs[i];
		ba.bad_dir[i] = rg_select(cs, 2, i & 1);
	}
	cs[0] = RG_RECV(NULL, NULL);
	cs[0].dir = 0;
	ba.zero_dir_nil = rg_select(cs, 1, true);
	ba.null_cases = rg_select(NULL, 1, true);
	ba.len_after = rg_chan_len(c);
	if (many) {
		for (int i = 0; i < 65537; i++)
			many[i] = RG_RECV(NULL, NULL);
		ba.too_many = rg_select(many, 65537, true);
		ba.max_ok = rg_select(many, 65536, true);
	}
	free(many);
	rg_chan_free(c);
}

TEST_F_TIMEOUT(sel, select_bad_args, 120)
{
	ASSERT_EQ(0, rg_run(ba_main, NULL));
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(-EINVAL, ba.bad_dir[i]) TH_LOG("dir variant %d", i);
	}
	EXPECT_EQ(-EINVAL, ba.zero_dir_nil);
	EXPECT_EQ(-EINVAL, ba.null_cases);
	EXPECT_EQ(1u, ba.len_after);
	EXPECT_EQ(-EINVAL, ba.too_many);
	EXPECT_EQ(-EAGAIN, ba.max_ok); /* 65536 cases are allowed */
}

/* ------------------------------------------------------------------------ */
/*
 * A select parked on many channels, woken through each one in turn (by a
 * send, a receive, or a close): it reports that case and its result, and
 * leaves no sudog queued on any of the others. Sizes straddle the 8 cases
 * whose bookkeeping lives on the stack; some channels appear twice.
 */
static struct {
	rg_chan **ch;
	rg_case *cs;
	size_t n;
	rg_wg wg;
	atomic_int finished;
	int idx;
	long vals[64];
} wk;

static void wk_selector(void *arg)
{
	wk.idx = rg_select(wk.cs, wk.n, false);
	atomic_fetch_add(&wk.finished, 1);
	rg_wg_done(&wk.wg);
}

static void wk_main(void *arg)
{
	static const size_t sizes[] = {2, 8, 9, 40};

	for (size_t si = 0; si < NELEM(sizes); si++) {
		size_t n = sizes[si];

		wk.n = n;
		wk.ch = calloc(n, sizeof(*wk.ch));
		wk.cs = calloc(n, sizeof(*wk.cs));
		if (!wk.ch || !wk.cs) {
			CHECK(0, "out of memory");
			return;
		}
		for (size_t target = 0; target < n; target++) {
			/* 0: the partner sends, 1: it receives, 2: it closes. */
			int how = (int)(target % 3);

			/* Even cases receive, odd ones send; case 2j+1 reuses case j's channel (n >= 9). */
			for (size_t i = 0; i < n; i++) {
				wk.ch[i] = n >= 9 && i % 4 == 3 ? wk.ch[i / 4] :
								  rg_chan_make(sizeof(long), 0);
				wk.vals[i] = 1000 + (long)i;
				wk.cs[i] = i % 2 ? RG_SEND(wk.ch[i], &wk.vals[i]) :
						   RG_RECV(wk.ch[i], &wk.vals[i]);
			}
			/* The target's case must be of the kind the partner can complete. */
			if (how == 0 && wk.cs[target].dir != RG_CASE_RECV)
				how = 1;
			else if (how == 1 && wk.cs[target].dir != RG_CASE_SEND)
				how = 0;
			atomic_store(&wk.finished, 0);
			rg_wg_add(&wk.wg, 1);
			rg_go(wk_selector, NULL);
			/* Parked once every case's sudog is queued on its channel. */
			for (size_t i = 0; i < n; i++) {
				size_t want = 0;

				for (size_t j = 0; j < n; j++)
					want += wk.ch[j] == wk.ch[i] &&
						wk.cs[j].dir == wk.cs[i].dir;
				CHECK(rt_chan_await(wk.ch[i], wk.cs[i].dir, want, &wk.finished),
				      "n %zu: select did not park on case %zu", n, i);
			}
			long x = 555 + (long)target, got = -1;
			int rc = -100;

			if (how == 0)
				rc = rg_chan_send(wk.ch[target], &x);
			else if (how == 1)
				rc = rg_chan_recv(wk.ch[target], &got);
			else
				rc = rg_chan_close(wk.ch[target]);
			rg_wg_wait(&wk.wg);
			/* With a duplicate channel the partner may have completed its twin case. */
			int idx = wk.idx;
			bool twin = idx >= 0 && (size_t)idx < n && wk.ch[idx] == wk.ch[target] &&
				    (how == 2 || wk.cs[idx].dir == wk.cs[target].dir);
			CHECK(idx == (int)target || twin, "n %zu how %d: woke as %d, want %zu", n,
			      how, idx, target);
			if (idx >= 0 && (size_t)idx < n) {
				const rg_case *k = &wk.cs[idx];

				if (how == 0)
					CHECK(rc == 0 && k->result == 1 && wk.vals[idx] == x,
					      "n %zu: recv case got %ld result %d", n, wk.vals[idx],
					      k->result);
				else if (how == 1)
					CHECK(rc == 1 && k->result == 0 && got == 1000 + idx,
					      "n %zu: send case delivered %ld result %d", n, got,
					      k->result);
				else
					CHECK(k->result == (k->dir == RG_CASE_SEND ? -EPIPE : 0) &&
						      (k->dir == RG_CASE_SEND || wk.vals[idx] == 0),
					      "n %zu: closed case result %d", n, k->result);
			}
			/* No sudog is left on any channel, and no other receive wrote its value. */
			for (size_t i = 0; i < n; i++) {
				if ((int)i != idx && wk.cs[i].dir == RG_CASE_RECV)
					CHECK(wk.vals[i] == 1000 + (long)i,
					      "n %zu: case %zu, not chosen, received %ld", n, i,
					      wk.vals[i]);
				CHECK(rt_chan_queued(wk.ch[i], RG_CASE_SEND) == 0 &&
					      rt_chan_queued(wk.ch[i], RG_CASE_RECV) == 0,
				      "n %zu target %zu: sudog left on case %zu's channel", n,
				      target, i);
			}
			for (size_t i = 0; i < n; i++)
				if (!(n >= 9 && i % 4 == 3))
					rg_chan_free(wk.ch[i]);
		}
		free(wk.ch);
		free(wk.cs);
	}
}

TEST_F_TIMEOUT(sel, select_wakeup_leaves_no_sudog, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(wk_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
}

/* ------------------------------------------------------------------------ */
/*
 * A select whose partner already waits completes on that channel's lock
 * alone (pass 0): a plain thread holds the other case's channel lock for
 * the whole test, and every select must still take the waiting sender's
 * value, whichever case its random poll order tries first. A select that
 * locked every channel would wait for the thread, which lets go only at its
 * deadline, and the test then fails.
 */
#define ONELOCK_N 200

static struct {
	rg_chan *ready, *busy;
	struct rt_lock_holder holder;
	long got[ONELOCK_N];
} ol;

static void ol_sender(void *arg)
{
	(void)arg;
	for (long i = 0; i < ONELOCK_N; i++)
		rg_chan_send(ol.ready, &i);
}

static void ol_main(void *arg)
{
	(void)arg;
	ol.ready = rg_chan_make(sizeof(long), 0);
	ol.busy = rg_chan_make(sizeof(long), 0);
	ol.holder.locks[ol.holder.n++] = &ol.busy->lock;
	CHECK(rt_hold_locks(&ol.holder), "pthread_create");
	rg_go(ol_sender, NULL);
	for (long i = 0; i < ONELOCK_N; i++) {
		long v = -1, w = -1;
		rg_case cs[2] = {RG_RECV(ol.busy, &w), RG_RECV(ol.ready, &v)};

		CHECK(rt_chan_await(ol.ready, RG_CASE_SEND, 1, NULL), "the sender did not park");
		CHECK(rg_select(cs, 2, false) == 1, "select chose the busy channel");
		ol.got[i] = v;
	}
	rt_release_locks(&ol.holder);
	rg_chan_free(ol.ready);
	rg_chan_free(ol.busy);
}

TEST_F_TIMEOUT(sel, ready_case_takes_only_its_own_lock, 120)
{
	rg_maxprocs(2);
	ASSERT_EQ(0, rg_run(ol_main, NULL));
	RT_EXPECT_NO_ERRS(&errs);
	EXPECT_EQ(0, atomic_load(&ol.holder.late)) TH_LOG("a select waited for the busy lock");
	for (long i = 0; i < ONELOCK_N; i++)
		EXPECT_EQ(i, ol.got[i]);
}

TEST_HARNESS_MAIN
