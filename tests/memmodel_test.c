// SPDX-License-Identifier: BSD-2-Clause
/*
 * Memory-model litmus tests: plain (non-atomic) data written before a
 * synchronising operation must be seen after the operation it synchronises
 * with. Each rule of Go's memory model that ringo promises gets one:
 *
 *  - a send happens-before the matching receive completes;
 *  - the k-th receive on a channel of capacity C happens-before the
 *    (k+C)-th send completes (C = 0: the receive before the send completes);
 *  - a close happens-before a receive that returns because of it;
 *  - rg_mutex: unlock happens-before the next lock returns;
 *  - rg_wg: every done happens-before the wait it releases returns.
 *
 * The plain data is laid out so that the rules are the only thing that keeps
 * it race-free (slots are reused as soon as the rules allow): a runtime that
 * breaks one shows a stale value here, and a data race under TSan. Each runs
 * a million rounds or more at each of GOMAXPROCS 2 and 8 (a fifth under
 * ASan, a fiftieth under TSan).
 *
 * A rule is only really tested when the two sides run on different threads,
 * and ringo, like Go, readies a woken goroutine on its waker's P, so partners
 * tend to share one. Each test therefore has a free phase (fixed rounds, the
 * millions, mostly within a P) and a paced phase that keeps both sides busy
 * on two Ps by spinning (most rounds cross threads). Spinning is slow when
 * the machine is oversubscribed, so paced phases stop at a time budget; the
 * tests log how many rounds they did and how many crossed Ps.
 *
 * Last, a randomized stress test checks channels against a model: thousands
 * of goroutines send, receive, select and close at random, and every value
 * sent is received exactly once (or is still buffered), in FIFO order per
 * sender, and nothing is invented.
 */
#include <limits.h>

#include "chan_helpers.h"

FIXTURE(mm) {
	int unused;
};
FIXTURE_SETUP(mm)
{
}
FIXTURE_TEARDOWN(mm)
{
}

static struct rt_errs errs;

#define CHECK(cond, ...) RT_CHECK(&errs, cond, __VA_ARGS__)

/* Work is divided by this under sanitizers (TSan ~10x slower and tracking every access). */
#define MM_SCALE(n) (RT_TSAN ? (n) / 50 : RT_ASAN ? (n) / 5 : (n))

/*
 * Three words written one by one, so a torn or stale copy shows, and the P
 * of the writer: readers count the rounds that crossed to another P (only
 * those test the rule across threads), and the tests log that share.
 */
struct mp_payload {
	uint64_t a, b, c;
	int p;
};

static atomic_long mp_reads, mp_cross;

static inline void mp_put(struct mp_payload *p, uint64_t m)
{
	p->a = m;
	p->b = ~m;
	p->c = m * 0x9e3779b97f4a7c15ull;
	p->p = rg_current_p();
}

/* Also counts the read, and whether it crossed Ps, in the caller's tallies. */
static inline bool mp_ok_n(const struct mp_payload *p, uint64_t m, long *reads, long *cross)
{
	(*reads)++;
	*cross += p->p != rg_current_p();
	return p->a == m && p->b == ~m && p->c == m * 0x9e3779b97f4a7c15ull;
}

/* Add a goroutine's tallies to the totals (once, at its end). */
static inline void mp_tally(long reads, long cross)
{
	atomic_fetch_add(&mp_reads, reads);
	atomic_fetch_add(&mp_cross, cross);
}

static inline double mp_cross_pct(void)
{
	long r = atomic_load(&mp_reads);

	return r ? 100.0 * (double)atomic_load(&mp_cross) / (double)r : 0.0;
}

static const int mm_procs[] = {2, 8};
#define MM_NPROCS ((int)(sizeof(mm_procs) / sizeof(mm_procs[0])))

/* A paced phase's time budget per GOMAXPROCS setting, and its deadline while it runs. */
#define MM_PACED_NS (RT_SANITIZED ? 3000000000ull : 1000000000ull)
static uint64_t mm_deadline;

static bool mm_time_left(void)
{
	return rt_now_ns() < mm_deadline;
}

/* Cross-P share of the reads since the snapshot *r0 / *c0. */
static long mm_cross_since(long r0, long c0)
{
	long r = atomic_load(&mp_reads) - r0;

	return r ? 100 * (atomic_load(&mp_cross) - c0) / r : 0;
}

/* ------------------------------------------------------------------------ */
/*
 * Channels, for capacity C. The producer writes payload[m % RING] before send
 * m; the consumer writes ack[k % RING] before receive k. With RING = C + 2:
 *  - the consumer reads payload[k % RING] after receive k, and the producer
 *    rewrites that slot only after send k+C+1 completed, which needs receive
 *    k+1 (rule 2), which comes after the read;
 *  - the producer reads ack[(m-C) % RING] after send m completed (rule 2),
 *    and the consumer rewrites it only after receive m+1, which needs send
 *    m+1 (rule 1), which comes after the read.
 * Three styles of moving the messages:
 *  - MIXED: message m is sent blocking, by select (beside a nil case) or by
 *    a try that spins a little before falling back to blocking, and
 *    received in one of three ways too, all nine pairings in turn. Cheap,
 *    and covers every path, but most hand-offs stay on one P (a woken
 *    goroutine goes to its waker's P).
 *  - SPIN (buffered): both sides only try, spinning; both stay runnable, so
 *    they keep separate Ps and every message crosses threads.
 *  - PARKED (unbuffered): the receiver parks, the sender spins on try; the
 *    receiver is woken into the spinner's P and stolen by the idle one, so
 *    most messages cross threads through park and wake-up. Slow (a steal
 *    per message), so it gets fewer rounds.
 */
#define MC_RING_MAX 8
#define MC_TRY_SPINS 50 /* MIXED: about a microsecond of trying before blocking */

enum mc_style {
	MC_MIXED,
	MC_SPIN,
	MC_PARKED
};

static struct {
	rg_chan *c;
	size_t cap, ring;
	enum mc_style style;
	long rounds;
	struct mp_payload payload[MC_RING_MAX];
	char pad1[64];
	struct mp_payload ack[MC_RING_MAX];
	long bad_payload, bad_ack, bad_value; /* written by one side each */
	rg_wg wg;
} mc;

/* Spin a while before yielding: a spinner that yields at once would give its P away. */
static void mc_yield_sometimes(unsigned *spins)
{
	rt_spin_wait(spins);
}

/* 0 blocking, 1 select, 2 try; both trying on an unbuffered channel would only meet by luck. */
static int mc_send_how(uint64_t m)
{
	if (mc.style != MC_MIXED)
		return 2;
	return (int)(m % 3);
}

static int mc_recv_how(uint64_t m)
{
	if (mc.style == MC_SPIN)
		return 2;
	if (mc.style == MC_PARKED)
		return (int)(m % 2);
	return (int)(m / 3 % 3);
}

static int mc_send(uint64_t *m)
{
	unsigned spins = 0;
	int rc;

	switch (mc_send_how(*m)) {
	case 0:
		return rg_chan_send(mc.c, m);
	case 1: {
		rg_case cs[2] = {RG_RECV(NULL, NULL), RG_SEND(mc.c, m)};

		return rg_select(cs, 2, false) == 1 ? cs[1].result : -100;
	}
	}
	while ((rc = rg_chan_trysend(mc.c, m)) == -EAGAIN) {
		if (mc.style != MC_MIXED)
			mc_yield_sometimes(&spins);
		else if (++spins < MC_TRY_SPINS)
			rt_cpu_relax();
		else
			return rg_chan_send(mc.c, m);
	}
	return rc;
}

static int mc_recv(uint64_t *v, uint64_t k)
{
	unsigned spins = 0;
	int rc;

	switch (mc_recv_how(k)) {
	case 0:
		return rg_chan_recv(mc.c, v);
	case 1: {
		rg_case cs[2] = {RG_RECV(mc.c, v), RG_SEND(NULL, NULL)};

		return rg_select(cs, 2, false) == 0 ? cs[0].result : -100;
	}
	}
	/* In MIXED, never try while the sender tries too on an unbuffered channel. */
	if (mc.style == MC_MIXED && mc.cap == 0 && mc_send_how(k) == 2)
		return rg_chan_recv(mc.c, v);
	while ((rc = rg_chan_tryrecv(mc.c, v)) == -EAGAIN) {
		if (mc.style != MC_MIXED)
			mc_yield_sometimes(&spins);
		else if (++spins < MC_TRY_SPINS)
			rt_cpu_relax();
		else
			return rg_chan_recv(mc.c, v);
	}
	return rc;
}

static void mc_producer(void *arg)
{
	long reads = 0, cross = 0;

	for (uint64_t m = 0; m < (uint64_t)mc.rounds; m++) {
		int rc;

		mp_put(&mc.payload[m % mc.ring], m);
		rc = mc_send(&m);
		if (rc != 0) {
			CHECK(0, "cap %zu: send %llu returned %d", mc.cap, (unsigned long long)m,
			      rc);
			break;
		}
		if (m >= mc.cap &&
		    !mp_ok_n(&mc.ack[(m - mc.cap) % mc.ring], m - mc.cap, &reads, &cross))
			mc.bad_ack++;
	}
	mp_tally(reads, cross);
	rg_wg_done(&mc.wg);
}

static void mc_consumer(void *arg)
{
	long reads = 0, cross = 0;

	for (uint64_t k = 0; k < (uint64_t)mc.rounds; k++) {
		uint64_t v = ~0ull;
		int rc;

		mp_put(&mc.ack[k % mc.ring], k);
		rc = mc_recv(&v, k);
		if (rc != 1) {
			CHECK(0, "cap %zu: receive %llu returned %d", mc.cap, (unsigned long long)k,
			      rc);
			break;
		}
		if (v != k)
			mc.bad_value++;
		if (!mp_ok_n(&mc.payload[k % mc.ring], k, &reads, &cross))
			mc.bad_payload++;
	}
	mp_tally(reads, cross);
	rg_wg_done(&mc.wg);
}

/* Runs chunks of mc.rounds messages until *chunks is done or, when paced, the budget is spent. */
static void mc_main(void *arg)
{
	long *chunks = arg, done = 0;

	for (; done < *chunks && (mc.style == MC_MIXED || done == 0 || mm_time_left()); done++) {
		mc.c = rg_chan_make(sizeof(uint64_t), mc.cap);
		mc.ring = mc.cap + 2;
		mc.bad_payload = mc.bad_ack = mc.bad_value = 0;
		rg_wg_add(&mc.wg, 2);
		rg_go(mc_producer, NULL);
		rg_go(mc_consumer, NULL);
		rg_wg_wait(&mc.wg);
		CHECK(mc.bad_payload == 0, "cap %zu style %d: %ld receives saw a stale payload",
		      mc.cap, mc.style, mc.bad_payload);
		CHECK(mc.bad_ack == 0,
		      "cap %zu style %d: %ld sends completed before the receive %zu earlier",
		      mc.cap, mc.style, mc.bad_ack, mc.cap);
		CHECK(mc.bad_value == 0, "cap %zu style %d: %ld values out of order", mc.cap,
		      mc.style, mc.bad_value);
		rg_chan_free(mc.c);
	}
	*chunks = done;
}

#define MC_CHUNK 10000L

/*
 * Each style and capacity at GOMAXPROCS 2 and 8, rounds[style] messages each
 * (the paced styles: at most, within their budget).
 */
static void mc_run(struct __test_metadata *_metadata, const size_t *caps, int ncaps,
		   const long rounds[3])
{
	static const char *const names[] = {"free (mixed ways)", "paced (both spin)",
					    "paced (receiver parks)"};
	long total[3] = {0, 0, 0}, cross[3] = {0, 0, 0};
	uint64_t t0 = rt_now_ns(), ns[3] = {0, 0, 0};

	for (int st = 0; st < 3; st++) {
		long r0 = atomic_load(&mp_reads), c0 = atomic_load(&mp_cross);
		uint64_t t1 = rt_now_ns();

		for (int pi = 0; pi < MM_NPROCS && rounds[st]; pi++) {
			uint64_t end = rt_now_ns() + MM_PACED_NS;

			for (int ci = 0; ci < ncaps; ci++) {
				long chunks = (rounds[st] + MC_CHUNK - 1) / MC_CHUNK;
				uint64_t now = rt_now_ns();

				/* The capacities share the budget: each gets its part of what is left. */
				mm_deadline = now + (end > now ?
							     (end - now) / (uint64_t)(ncaps - ci) :
							     0);
				mc.cap = caps[ci];
				mc.style = (enum mc_style)st;
				mc.rounds = rounds[st] < MC_CHUNK ? rounds[st] : MC_CHUNK;
				rg_maxprocs(mm_procs[pi]);
				ASSERT_EQ(0, rg_run(mc_main, &chunks));
				total[st] += chunks * mc.rounds;
			}
		}
		ns[st] = rt_now_ns() - t1;
		cross[st] = mm_cross_since(r0, c0);
	}
	RT_EXPECT_NO_ERRS(&errs);
	for (int st = 0; st < 3; st++) {
		if (rounds[st])
			TH_LOG("%s: %ld messages in %.2f s, %ld%% of reads on another P", names[st],
			       total[st], ns[st] / 1e9, cross[st]);
	}
	TH_LOG("GOMAXPROCS 2 and 8: %.2f s", (rt_now_ns() - t0) / 1e9);
}

TEST_F_TIMEOUT(mm, mp_unbuffered_send_recv, 120)
{
	static const size_t caps[] = {0};
	static const long rounds[3] = {MM_SCALE(1000000L), 0, MM_SCALE(200000L)};

	mc_run(_metadata, caps, 1, rounds);
}

TEST_F_TIMEOUT(mm, mp_buffered_kth_recv_before_kplusc_send, 120)
{
	static const size_t caps[] = {1, 2, 6};
	static const long rounds[3] = {MM_SCALE(1000000L), MM_SCALE(1000000L), 0};

	mc_run(_metadata, caps, 3, rounds);
}

/*
 * Go's channel-as-semaphore idiom, at capacity 1 a lock: send to acquire,
 * receive to release. Rule 2 is what keeps the plain counter exact.
 */
#define SEM_G 8
#define SEM_ITER MM_SCALE(100000L)

static struct {
	rg_chan *sem;
	long counter; /* plain: guarded by the channel only */
	struct mp_payload guarded;
	long torn;
	rg_wg wg;
} sem;

static void sem_worker(void *arg)
{
	long id = (long)(uintptr_t)arg;
	long reads = 0, cross = 0;

	for (long i = 0; i < SEM_ITER; i++) {
		unsigned spins = 0;

		/* Spinning acquirers keep their Ps, so the lock also moves between threads. */
		if (i % 3 == 1) {
			rg_case cs[1] = {RG_SEND(sem.sem, NULL)};

			rg_select(cs, 1, false);
		} else if (i % 3 == 2) {
			rg_chan_send(sem.sem, NULL);
		} else {
			while (rg_chan_trysend(sem.sem, NULL) == -EAGAIN)
				mc_yield_sometimes(&spins);
		}
		if (!mp_ok_n(&sem.guarded, (uint64_t)sem.counter, &reads, &cross))
			sem.torn++;
		sem.counter++;
		/* Goroutines are not preempted: yield while holding, so others queue up behind. */
		if (i % 16 == 0)
			rg_yield();
		mp_put(&sem.guarded, (uint64_t)sem.counter);
		if ((i + id) % 3)
			CHECK(rg_chan_recv(sem.sem, NULL) == 1, "release");
		else
			CHECK(rg_chan_tryrecv(sem.sem, NULL) == 1,
			      "release"); /* held: cannot fail */
	}
	mp_tally(reads, cross);
	rg_wg_done(&sem.wg);
}

static void sem_main(void *arg)
{
	sem.sem = rg_chan_make(0, 1);
	sem.counter = 0;
	mp_put(&sem.guarded, 0);
	rg_wg_add(&sem.wg, SEM_G);
	for (long i = 0; i < SEM_G; i++)
		rg_go(sem_worker, (void *)(uintptr_t)i);
	rg_wg_wait(&sem.wg);
	rg_chan_free(sem.sem);
}

TEST_F_TIMEOUT(mm, mp_channel_as_lock, 120)
{
	uint64_t t0 = rt_now_ns();

	for (size_t pi = 0; pi < sizeof(mm_procs) / sizeof(mm_procs[0]); pi++) {
		rg_maxprocs(mm_procs[pi]);
		ASSERT_EQ(0, rg_run(sem_main, NULL));
		EXPECT_EQ((long)SEM_G * SEM_ITER, sem.counter)
		TH_LOG("GOMAXPROCS %d", mm_procs[pi]);
		EXPECT_EQ(0, sem.torn) TH_LOG("GOMAXPROCS %d", mm_procs[pi]);
	}
	RT_EXPECT_NO_ERRS(&errs);
	TH_LOG("%ld critical sections: %.2f s, %.0f%% entered on another P than the last",
	       2L * SEM_G * SEM_ITER, (rt_now_ns() - t0) / 1e9, mp_cross_pct());
}

/* ------------------------------------------------------------------------ */
/*
 * Close: the writer fills data[i] and closes ch[i] (after buffering one
 * value, every other time); the reader receives from ch[i] until it reports
 * closed (blocking, spinning on tryrecv's lock-free path, select, or select
 * with a default) and then reads data[i]. Channels come in batches, made and
 * freed by main between them. Paced, the writer stays at most CL_LEAD closes
 * ahead of the reader, so the reader meets each close as it happens.
 */
#define CL_PAIRS 2
#define CL_BATCH 1024
#define CL_ROUNDS MM_SCALE(2000000L)

struct cl_pair {
	rg_chan *ch[CL_BATCH];
	struct mp_payload data[CL_BATCH];
	uint64_t base;
	atomic_long done; /* channels the reader has finished */
	long bad_data, bad_zero, bad_value;
};

#define CL_LEAD 2

static struct {
	struct cl_pair pair[CL_PAIRS];
	rg_wg wg;
	bool paced;
} cl;

static void cl_writer(void *arg)
{
	struct cl_pair *p = arg;

	for (int i = 0; i < CL_BATCH; i++) {
		if (cl.paced)
			rt_spin_until(&p->done, i - CL_LEAD);
		mp_put(&p->data[i], p->base + (uint64_t)i);
		if ((i / 4) % 2) {
			uint64_t v = p->base + (uint64_t)i;

			CHECK(rg_chan_send(p->ch[i], &v) == 0, "send before close");
		}
		CHECK(rg_chan_close(p->ch[i]) == 0, "close");
	}
	rg_wg_done(&cl.wg);
}

static void cl_reader(void *arg)
{
	struct cl_pair *p = arg;
	long reads = 0, cross = 0;

	for (int i = 0; i < CL_BATCH; i++) {
		rg_chan *c = p->ch[i];
		int rc, values = 0;

		do {
			uint64_t v = 0x5a5a;
			unsigned spins = 0;

			switch (i % 4) {
			case 0:
				rc = rg_chan_recv(c, &v);
				break;
			case 1:
				while ((rc = rg_chan_tryrecv(c, &v)) == -EAGAIN)
					mc_yield_sometimes(&spins);
				break;
			case 2: {
				rg_case cs[2] = {RG_RECV(NULL, NULL), RG_RECV(c, &v)};

				rc = rg_select(cs, 2, false) == 1 ? cs[1].result : -100;
				break;
			}
			default: {
				rg_case cs[1] = {RG_RECV(c, &v)};

				while (rg_select(cs, 1, true) == -EAGAIN)
					mc_yield_sometimes(&spins);
				rc = cs[0].result;
			}
			}
			if (rc == 1 && (v != p->base + (uint64_t)i || ++values > 1))
				p->bad_value++;
			if (rc == 0 && v != 0)
				p->bad_zero++;
		} while (rc == 1);
		CHECK(rc == 0, "receive returned %d", rc);
		/* A value sent before the close is received before "closed". */
		if (values != (i / 4) % 2)
			p->bad_value++;
		if (!mp_ok_n(&p->data[i], p->base + (uint64_t)i, &reads, &cross))
			p->bad_data++;
		atomic_store_explicit(&p->done, i + 1, memory_order_release);
	}
	mp_tally(reads, cross);
	rg_wg_done(&cl.wg);
}

/* Runs up to *batches batches (paced: within the budget, at least one) and stores how many ran. */
static void cl_main(void *arg)
{
	long *batches = arg, b;

	for (b = 0; b < *batches && (!cl.paced || b == 0 || mm_time_left()); b++) {
		rg_wg_add(&cl.wg, 2 * CL_PAIRS);
		for (int k = 0; k < CL_PAIRS; k++) {
			struct cl_pair *p = &cl.pair[k];

			for (int i = 0; i < CL_BATCH; i++)
				p->ch[i] = rg_chan_make(sizeof(uint64_t), 1);
			p->base = ((uint64_t)b * CL_PAIRS + (uint64_t)k) * CL_BATCH + 1;
			atomic_store(&p->done, 0);
			rg_go(cl_reader, p);
			rg_go(cl_writer, p);
		}
		rg_wg_wait(&cl.wg);
		for (int k = 0; k < CL_PAIRS; k++)
			for (int i = 0; i < CL_BATCH; i++)
				rg_chan_free(cl.pair[k].ch[i]);
	}
	*batches = b;
}

TEST_F_TIMEOUT(mm, mp_close_before_closed_recv, 120)
{
	long total[2] = {0, 0}, cross[2];
	uint64_t t0 = rt_now_ns();

	for (int paced = 0; paced < 2; paced++) {
		long r0 = atomic_load(&mp_reads), c0 = atomic_load(&mp_cross);

		for (int pi = 0; pi < MM_NPROCS; pi++) {
			long batches = paced ? LONG_MAX :
					       CL_ROUNDS / MM_NPROCS / (CL_PAIRS * CL_BATCH) + 1;

			cl.paced = paced;
			mm_deadline = rt_now_ns() + MM_PACED_NS;
			rg_maxprocs(mm_procs[pi]);
			ASSERT_EQ(0, rg_run(cl_main, &batches));
			total[paced] += batches * CL_PAIRS * CL_BATCH;
		}
		cross[paced] = mm_cross_since(r0, c0);
	}
	RT_EXPECT_NO_ERRS(&errs);
	for (int k = 0; k < CL_PAIRS; k++) {
		EXPECT_EQ(0, cl.pair[k].bad_data) TH_LOG("stale data after a closed receive");
		EXPECT_EQ(0, cl.pair[k].bad_zero) TH_LOG("closed receive did not zero");
		EXPECT_EQ(0, cl.pair[k].bad_value) TH_LOG("wrong or extra value before close");
	}
	TH_LOG("free: %ld closes, %ld%% of reads on another P", total[0], cross[0]);
	TH_LOG("paced: %ld closes, %ld%% of reads on another P", total[1], cross[1]);
	TH_LOG("GOMAXPROCS 2 and 8: %.2f s", (rt_now_ns() - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */
/*
 * rg_mutex: a bounded queue whose slots are plain data written and read
 * outside the lock; only the published / consumed indices are read under
 * it. The writer fills slot n only after seeing consumed > n - RING, and the
 * reader reads slots only below the published index, so unlock -> lock is
 * all that orders the slot accesses. The pairs share one mutex, so it is
 * contended and hands over through its semaphore too. Paced, a side with
 * nothing to do spins instead of yielding, keeping its P.
 */
#define MX_PAIRS 3
#define MX_RING 16
#define MX_ROUNDS MM_SCALE(2000000L)

struct mx_queue {
	struct mp_payload data[MX_RING];
	long published, consumed, limit; /* guarded by mx.m; limit: rounds, cut by the budget */
	long bad;
	char pad[64];
};

static struct {
	rg_mutex m;
	struct mx_queue q[MX_PAIRS];
	rg_wg wg;
	bool paced;
} mx;

static void mx_idle(unsigned *spins)
{
	if (mx.paced)
		rt_spin_wait(spins);
	else
		rg_yield();
}

static void mx_writer(void *arg)
{
	struct mx_queue *q = arg;
	long rounds;

	rg_mutex_lock(&mx.m);
	rounds = q->limit;
	rg_mutex_unlock(&mx.m);
	for (long n = 0; n < rounds; n++) {
		unsigned spins = 0;

		if (mx.paced && n % 1024 == 0 && n && !mm_time_left()) {
			rg_mutex_lock(&mx.m);
			q->limit = n;
			rg_mutex_unlock(&mx.m);
			break;
		}
		for (;;) {
			long cons;

			rg_mutex_lock(&mx.m);
			cons = q->consumed;
			rg_mutex_unlock(&mx.m);
			if (n - cons < MX_RING)
				break;
			mx_idle(&spins);
		}
		mp_put(&q->data[n % MX_RING], (uint64_t)n);
		rg_mutex_lock(&mx.m);
		q->published = n + 1;
		rg_mutex_unlock(&mx.m);
	}
	rg_wg_done(&mx.wg);
}

static void mx_reader(void *arg)
{
	struct mx_queue *q = arg;
	long seen = 0, reads = 0, cross = 0, limit = 1;
	unsigned spins = 0;

	while (seen < limit) {
		long pub;

		rg_mutex_lock(&mx.m);
		pub = q->published;
		limit = q->limit;
		rg_mutex_unlock(&mx.m);
		if (pub == seen) {
			if (seen < limit)
				mx_idle(&spins);
			continue;
		}
		for (long k = seen; k < pub; k++)
			if (!mp_ok_n(&q->data[k % MX_RING], (uint64_t)k, &reads, &cross))
				q->bad++;
		seen = pub;
		rg_mutex_lock(&mx.m);
		q->consumed = seen;
		rg_mutex_unlock(&mx.m);
	}
	mp_tally(reads, cross);
	rg_wg_done(&mx.wg);
}

/* *rounds per queue in, the rounds done by every queue out. */
static void mx_main(void *arg)
{
	long *rounds = arg, done = 0;

	rg_wg_add(&mx.wg, 2 * MX_PAIRS);
	for (int i = 0; i < MX_PAIRS; i++) {
		memset(&mx.q[i], 0, sizeof(mx.q[i]));
		mx.q[i].limit = *rounds;
		rg_go(mx_reader, &mx.q[i]);
		rg_go(mx_writer, &mx.q[i]);
	}
	rg_wg_wait(&mx.wg);
	for (int i = 0; i < MX_PAIRS; i++)
		done += mx.q[i].limit;
	*rounds = done;
}

TEST_F_TIMEOUT(mm, mp_mutex_unlock_before_lock, 120)
{
	long total[2] = {0, 0}, cross[2];
	uint64_t t0 = rt_now_ns();

	for (int paced = 0; paced < 2; paced++) {
		long r0 = atomic_load(&mp_reads), c0 = atomic_load(&mp_cross);

		for (int pi = 0; pi < MM_NPROCS; pi++) {
			long rounds = MX_ROUNDS / MM_NPROCS / MX_PAIRS;

			mx.paced = paced;
			mm_deadline = rt_now_ns() + MM_PACED_NS;
			rg_maxprocs(mm_procs[pi]);
			ASSERT_EQ(0, rg_run(mx_main, &rounds));
			total[paced] += rounds;
			for (int i = 0; i < MX_PAIRS; i++) {
				EXPECT_EQ(0, mx.q[i].bad)
				TH_LOG("GOMAXPROCS %d, queue %d%s: stale slots", mm_procs[pi], i,
				       paced ? ", paced" : "");
			}
		}
		cross[paced] = mm_cross_since(r0, c0);
	}
	TH_LOG("free: %ld slots, %ld%% of reads on another P", total[0], cross[0]);
	TH_LOG("paced: %ld slots, %ld%% of reads on another P", total[1], cross[1]);
	TH_LOG("GOMAXPROCS 2 and 8: %.2f s", (rt_now_ns() - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */
/*
 * rg_wg: for round i, each of WG_W writers fills its slot and calls done on
 * wg[i]; WG_R readers wait on wg[i] and read every slot. The WaitGroups are
 * reused batch after batch (Add again once the Wait of the previous use has
 * returned, as Go allows). Paced, the writers stay at most WG_LEAD rounds
 * ahead of reader 0.
 */
#define WG_W 2
#define WG_R 2
#define WG_BATCH 2048
#define WG_ROUNDS MM_SCALE(2000000L)

static struct {
	rg_wg wg[WG_BATCH];
	struct mp_payload slot[WG_BATCH][WG_W];
	rg_wg batch;
	uint64_t base;
	atomic_long done; /* rounds reader 0 has finished */
	bool paced;
	long bad[WG_R];
} wgl;

#define WG_LEAD 2

static void wgl_writer(void *arg)
{
	int w = (int)(uintptr_t)arg;

	for (int i = 0; i < WG_BATCH; i++) {
		if (wgl.paced)
			rt_spin_until(&wgl.done, i - WG_LEAD);
		mp_put(&wgl.slot[i][w], wgl.base + (uint64_t)(i * WG_W + w));
		rg_wg_done(&wgl.wg[i]);
	}
	rg_wg_done(&wgl.batch);
}

static void wgl_reader(void *arg)
{
	int r = (int)(uintptr_t)arg;
	long reads = 0, cross = 0;

	for (int i = 0; i < WG_BATCH; i++) {
		rg_wg_wait(&wgl.wg[i]);
		for (int w = 0; w < WG_W; w++)
			if (!mp_ok_n(&wgl.slot[i][w], wgl.base + (uint64_t)(i * WG_W + w), &reads,
				     &cross))
				wgl.bad[r]++;
		if (r == 0)
			atomic_store_explicit(&wgl.done, i + 1, memory_order_release);
	}
	mp_tally(reads, cross);
	rg_wg_done(&wgl.batch);
}

/* Runs up to *batches batches (paced: within the budget, at least one) and stores how many ran. */
static void wgl_main(void *arg)
{
	long *batches = arg, b;

	for (b = 0; b < *batches && (!wgl.paced || b == 0 || mm_time_left()); b++) {
		wgl.base = (uint64_t)b * WG_BATCH * WG_W + 1;
		atomic_store(&wgl.done, 0);
		for (int i = 0; i < WG_BATCH; i++)
			rg_wg_add(&wgl.wg[i], WG_W);
		rg_wg_add(&wgl.batch, WG_W + WG_R);
		/* Readers first, alternately: some waits park, some find the count at zero. */
		for (int r = 0; r < WG_R; r++)
			rg_go(wgl_reader, (void *)(uintptr_t)r);
		for (int w = 0; w < WG_W; w++)
			rg_go(wgl_writer, (void *)(uintptr_t)w);
		rg_wg_wait(&wgl.batch);
	}
	*batches = b;
}

TEST_F_TIMEOUT(mm, mp_wg_done_before_wait, 120)
{
	long total[2] = {0, 0}, cross[2];
	uint64_t t0 = rt_now_ns();

	for (int paced = 0; paced < 2; paced++) {
		long r0 = atomic_load(&mp_reads), c0 = atomic_load(&mp_cross);

		for (int pi = 0; pi < MM_NPROCS; pi++) {
			long batches = paced ? LONG_MAX : WG_ROUNDS / MM_NPROCS / WG_BATCH + 1;

			wgl.paced = paced;
			mm_deadline = rt_now_ns() + MM_PACED_NS;
			rg_maxprocs(mm_procs[pi]);
			ASSERT_EQ(0, rg_run(wgl_main, &batches));
			total[paced] += batches * WG_BATCH;
			for (int r = 0; r < WG_R; r++) {
				EXPECT_EQ(0, wgl.bad[r])
				TH_LOG("GOMAXPROCS %d, reader %d%s: stale slots", mm_procs[pi], r,
				       paced ? ", paced" : "");
			}
		}
		cross[paced] = mm_cross_since(r0, c0);
	}
	TH_LOG("free: %ld rounds (%d dones, %d waits each), %ld%% of reads on another P", total[0],
	       WG_W, WG_R, cross[0]);
	TH_LOG("paced: %ld rounds, %ld%% of reads on another P", total[1], cross[1]);
	TH_LOG("GOMAXPROCS 2 and 8: %.2f s", (rt_now_ns() - t0) / 1e9);
}

/* ------------------------------------------------------------------------ */
/*
 * Randomized stress against a model. SX_G goroutines each do SX_OPS random
 * operations on SX_NCH channels of assorted capacities: blocking and
 * non-blocking sends and receives, selects of 1 to 5 cases (sends, receives,
 * nil cases, the same channel twice, with and without a default), and now
 * and then a close. Every value is unique (sender, channel, sequence number)
 * and every outcome is logged by its goroutine. When the live goroutines are
 * all blocked and nothing moves, main closes every channel, which ends every
 * wait (closing is always legal, so an early guess costs nothing), then
 * drains what is left. The model then requires:
 *  - every value whose send succeeded was received exactly once, or drained;
 *  - nothing else was received: no value whose send failed, no duplicate;
 *  - each value came out of the channel it went into;
 *  - per receiver, values of one sender on one channel arrive in send order;
 *  - -EPIPE and "closed" only from a channel being closed, exactly one
 *    successful close per channel, and a closed receive stores zero;
 *  - a select's other receive buffers are untouched, and a default only
 *    with has_default.
 */
#define SX_NCH 12
#define SX_G (RT_TSAN ? 400 : 2000)
#define SX_OPS (RT_TSAN ? 50 : 150)
#define SX_SEQ 1024 /* values a goroutine may try to send: at most 5 per operation */
#define SX_SENTINEL 0xdeadbeefcafef00dull
/* A log holds a goroutine's receives, or main's final drain of every buffer (99 values). */
#define SX_LOG_CAP (SX_OPS > 128 ? SX_OPS : 128)

static const size_t sx_caps[SX_NCH] = {0, 0, 0, 0, 1, 1, 2, 3, 4, 8, 16, 64};

struct sx_log {
	uint32_t nseq;	      /* sequence numbers used */
	uint8_t sent[SX_SEQ]; /* 1: that value's send succeeded */
	uint32_t nrecv;
	uint64_t recv[SX_LOG_CAP]; /* values received, in order */
	uint8_t recv_ch[SX_LOG_CAP];
};

static struct {
	rg_chan *ch[SX_NCH];
	struct sx_log *log; /* SX_G + 1 entries; the last is main's drain */
	atomic_int closing[SX_NCH];
	atomic_int close_ok[SX_NCH];
	atomic_long progress, blocked, finished;
	rg_wg wg;
	uint64_t seed;
	long delivered, closes_by_goroutines, stalls_closed, drained;
	long selects, defaults, epipes, closed_recvs;
} sx;

static uint64_t sx_value(int g, int c, uint32_t seq)
{
	return (uint64_t)(g + 1) << 32 | (uint64_t)c << 24 | seq;
}

static void sx_received(struct sx_log *l, int c, uint64_t v)
{
	if (l->nrecv < SX_LOG_CAP) {
		l->recv[l->nrecv] = v;
		l->recv_ch[l->nrecv] = (uint8_t)c;
		l->nrecv++;
	}
}

/* A receive that reported "closed": the channel must be closing, and the value zeroed. */
static void sx_closed_recv(int c, uint64_t v, long *closed_recvs)
{
	CHECK(atomic_load(&sx.closing[c]), "receive on channel %d said closed; nobody closed it",
	      c);
	CHECK(v == 0, "closed receive on channel %d left %#llx", c, (unsigned long long)v);
	(*closed_recvs)++;
}

static void sx_epipe(int c, long *epipes)
{
	CHECK(atomic_load(&sx.closing[c]), "send on channel %d got -EPIPE; nobody closed it", c);
	(*epipes)++;
}

static void sx_worker(void *arg)
{
	int g = (int)(uintptr_t)arg;
	struct sx_log *l = &sx.log[g];
	uint64_t rs = sx.seed ^ ((uint64_t)g * 0x9e3779b97f4a7c15ull);
	long selects = 0, defaults = 0, epipes = 0, closed_recvs = 0, closes = 0;
	/* About SX_NCH / 4 close attempts over the whole run: most channels close at the end. */
	uint32_t close_ppm = (uint32_t)(1000000ull * SX_NCH / (4ull * SX_G * SX_OPS)) + 1;

	for (int op = 0; op < SX_OPS; op++) {
		uint32_t r = rt_randn(&rs, 1000000);
		int c = (int)rt_randn(&rs, SX_NCH);
		uint64_t v = SX_SENTINEL;
		int rc;

		if (r < close_ppm) {
			/* The flag first: anyone who sees the close's effects sees the flag. */
			atomic_store(&sx.closing[c], 1);
			rc = rg_chan_close(sx.ch[c]);
			CHECK(rc == 0 || rc == -EPIPE, "close returned %d", rc);
			if (rc == 0) {
				atomic_fetch_add(&sx.close_ok[c], 1);
				closes++;
			}
		} else if (r < 300000) { /* send, blocking or not */
			bool block = r < 220000;

			v = sx_value(g, c, l->nseq++);
			if (block)
				atomic_fetch_add(&sx.blocked, 1);
			rc = block ? rg_chan_send(sx.ch[c], &v) : rg_chan_trysend(sx.ch[c], &v);
			if (block)
				atomic_fetch_sub(&sx.blocked, 1);
			if (rc == 0)
				l->sent[v & 0xffffff] = 1;
			else if (rc == -EPIPE)
				sx_epipe(c, &epipes);
			else
				CHECK(rc == -EAGAIN && !block, "send returned %d", rc);
		} else if (r < 600000) { /* receive, blocking or not */
			bool block = r < 520000;

			if (block)
				atomic_fetch_add(&sx.blocked, 1);
			rc = block ? rg_chan_recv(sx.ch[c], &v) : rg_chan_tryrecv(sx.ch[c], &v);
			if (block)
				atomic_fetch_sub(&sx.blocked, 1);
			if (rc == 1)
				sx_received(l, c, v);
			else if (rc == 0)
				sx_closed_recv(c, v, &closed_recvs);
			else
				CHECK(rc == -EAGAIN && !block && v == SX_SENTINEL,
				      "receive returned %d", rc);
		} else { /* select */
			rg_case cs[5];
			uint64_t val[5];
			int chan_of[5];
			int n = 1 + (int)rt_randn(&rs, 5);
			bool dflt = rt_randn(&rs, 2);

			for (int i = 0; i < n; i++) {
				int k = (int)rt_randn(&rs, SX_NCH + 1); /* SX_NCH: a nil case */
				bool send = rt_randn(&rs, 2);

				/* Now and then the same channel as the previous case. */
				if (i && rt_randn(&rs, 4) == 0)
					k = chan_of[i - 1];
				chan_of[i] = k;
				if (send) {
					val[i] = sx_value(g, k == SX_NCH ? 0 : k, l->nseq++);
					cs[i] = RG_SEND(k == SX_NCH ? NULL : sx.ch[k], &val[i]);
				} else {
					val[i] = SX_SENTINEL;
					cs[i] = RG_RECV(k == SX_NCH ? NULL : sx.ch[k], &val[i]);
				}
			}
			/* Only nil cases and no default would be Go's select {}: forever. */
			bool all_nil = true;

			for (int i = 0; i < n; i++)
				all_nil &= chan_of[i] == SX_NCH;
			dflt |= all_nil;
			selects++;
			if (!dflt)
				atomic_fetch_add(&sx.blocked, 1);
			rc = rg_select(cs, (size_t)n, dflt);
			if (!dflt)
				atomic_fetch_sub(&sx.blocked, 1);
			if (rc == -EAGAIN) {
				CHECK(dflt, "select without default returned -EAGAIN");
				defaults++;
			} else if (rc < 0 || rc >= n || chan_of[rc] == SX_NCH) {
				CHECK(0, "select returned %d of %d (nil: %d)", rc, n,
				      rc >= 0 && rc < n && chan_of[rc] == SX_NCH);
				rc = -1;
			} else if (cs[rc].dir == RG_CASE_SEND) {
				if (cs[rc].result == 0)
					l->sent[val[rc] & 0xffffff] = 1;
				else if (cs[rc].result == -EPIPE)
					sx_epipe(chan_of[rc], &epipes);
				else
					CHECK(0, "select send result %d", cs[rc].result);
			} else {
				if (cs[rc].result == 1)
					sx_received(l, chan_of[rc], val[rc]);
				else if (cs[rc].result == 0)
					sx_closed_recv(chan_of[rc], val[rc], &closed_recvs);
				else
					CHECK(0, "select recv result %d", cs[rc].result);
			}
			for (int i = 0; i < n; i++)
				if (i != rc && cs[i].dir == RG_CASE_RECV)
					CHECK(val[i] == SX_SENTINEL,
					      "select case %d not chosen, but wrote", i);
		}
		atomic_fetch_add(&sx.progress, 1);
	}
	__atomic_fetch_add(&sx.selects, selects, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sx.defaults, defaults, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sx.epipes, epipes, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sx.closed_recvs, closed_recvs, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sx.closes_by_goroutines, closes, __ATOMIC_RELAXED);
	atomic_fetch_add(&sx.finished, 1);
	rg_wg_done(&sx.wg);
}

/* The checks, on the logs, once every goroutine is done and every channel drained. */
static void sx_check(void)
{
	uint8_t *seen = calloc((size_t)SX_G * SX_SEQ, 1);
	long sent = 0, received = 0;

	if (!seen) {
		CHECK(0, "out of memory");
		return;
	}
	for (int r = 0; r <= SX_G; r++) {
		const struct sx_log *l = &sx.log[r];

		for (uint32_t i = 0; i < l->nrecv; i++) {
			uint64_t v = l->recv[i];
			int g = (int)(v >> 32) - 1, c = (int)(v >> 24 & 0xff);
			uint32_t seq = (uint32_t)(v & 0xffffff);

			received++;
			if (g < 0 || g >= SX_G || seq >= SX_SEQ || seq >= sx.log[g].nseq) {
				CHECK(0, "receiver %d got %#llx, which nobody sent", r,
				      (unsigned long long)v);
				continue;
			}
			CHECK(c == l->recv_ch[i], "value %#llx sent on channel %d came out of %d",
			      (unsigned long long)v, c, l->recv_ch[i]);
			CHECK(sx.log[g].sent[seq], "receiver %d got %#llx, whose send failed", r,
			      (unsigned long long)v);
			CHECK(seen[(size_t)g * SX_SEQ + seq]++ == 0, "value %#llx received twice",
			      (unsigned long long)v);
			/* FIFO: an earlier value from the same sender on the same channel has a lower seq. */
			for (uint32_t j = 0; j < i; j++) {
				uint64_t w = l->recv[j];

				if (w >> 24 == v >> 24 && l->recv_ch[j] == l->recv_ch[i])
					CHECK((w & 0xffffff) < seq,
					      "receiver %d got %#llx after %#llx: out of order", r,
					      (unsigned long long)v, (unsigned long long)w);
			}
		}
	}
	for (int g = 0; g < SX_G; g++) {
		for (uint32_t q = 0; q < sx.log[g].nseq && q < SX_SEQ; q++) {
			if (!sx.log[g].sent[q])
				continue;
			sent++;
			CHECK(seen[(size_t)g * SX_SEQ + q],
			      "value %#llx was sent but never received",
			      (unsigned long long)sx_value(g, 0, q));
		}
	}
	CHECK(sent == received, "%ld values sent, %ld received", sent, received);
	for (int c = 0; c < SX_NCH; c++)
		CHECK(atomic_load(&sx.close_ok[c]) == 1, "channel %d closed %d times", c,
		      atomic_load(&sx.close_ok[c]));
	sx.delivered = received;
	free(seen);
}

static void sx_main(void *arg)
{
	struct sx_log *drain = &sx.log[SX_G];
	long last = -1;
	int quiet = 0;

	for (int c = 0; c < SX_NCH; c++) {
		sx.ch[c] = rg_chan_make(sizeof(uint64_t), sx_caps[c]);
		atomic_store(&sx.closing[c], 0);
		atomic_store(&sx.close_ok[c], 0);
	}
	atomic_store(&sx.progress, 0);
	atomic_store(&sx.blocked, 0);
	atomic_store(&sx.finished, 0);
	rg_wg_add(&sx.wg, SX_G);
	for (int g = 0; g < SX_G; g++)
		rg_go(sx_worker, (void *)(uintptr_t)g);
	/* Until everyone is done, or every live goroutine is blocked and nothing moves. */
	while (atomic_load(&sx.finished) < SX_G) {
		long p = atomic_load(&sx.progress);

		rg_yield();
		if (p != last || atomic_load(&sx.finished) + atomic_load(&sx.blocked) < SX_G) {
			last = p;
			quiet = 0;
		} else if (++quiet == 1000) {
			sx.stalls_closed = SX_G - atomic_load(&sx.finished);
			break;
		}
	}
	for (int c = 0; c < SX_NCH; c++) {
		atomic_store(&sx.closing[c], 1);
		if (rg_chan_close(sx.ch[c]) == 0)
			atomic_fetch_add(&sx.close_ok[c], 1);
	}
	rg_wg_wait(&sx.wg);
	/* What is still buffered counts as delivered; a closed, drained channel says 0. */
	for (int c = 0; c < SX_NCH; c++) {
		uint64_t v;
		size_t n = 0;
		int rc;

		while ((rc = rg_chan_tryrecv(sx.ch[c], &v)) == 1) {
			n++;
			if (drain->nrecv < SX_LOG_CAP) {
				sx_received(drain, c, v);
			} else {
				CHECK(0, "drain log full");
				break;
			}
		}
		CHECK(n <= sx_caps[c], "channel %d held %zu values, cap %zu", c, n, sx_caps[c]);
		CHECK(rc == 0 || rc == 1, "drain of channel %d ended with %d", c, rc);
		sx.drained += (long)n;
		rg_chan_free(sx.ch[c]);
	}
	sx_check();
}

TEST_F_TIMEOUT(mm, chan_stress_against_model, 120)
{
	uint64_t t0 = rt_now_ns();

	/* One log per goroutine plus the drain's; SX_LOG_CAP covers both (caps sum to 99). */
	sx.log = calloc(SX_G + 1, sizeof(*sx.log));
	ASSERT_NE(NULL, sx.log);
	for (int pi = 0; pi < MM_NPROCS; pi++) {
		memset(sx.log, 0, (SX_G + 1) * sizeof(*sx.log));
		sx.seed = rt_now_ns();
		sx.stalls_closed = sx.drained = 0;
		sx.selects = sx.defaults = sx.epipes = sx.closed_recvs = sx.closes_by_goroutines = 0;
		rg_maxprocs(mm_procs[pi]);
		ASSERT_EQ(0, rg_run(sx_main, NULL));
		RT_EXPECT_NO_ERRS(&errs);
		TH_LOG("GOMAXPROCS %d, seed %#llx: %d goroutines x %d ops, %ld values delivered "
		       "(%ld drained), %ld selects (%ld defaults), %ld EPIPE, %ld closed receives, "
		       "%ld closes by goroutines, %ld goroutines still blocked at the final close",
		       mm_procs[pi], (unsigned long long)sx.seed, SX_G, SX_OPS, sx.delivered,
		       sx.drained, sx.selects, sx.defaults, sx.epipes, sx.closed_recvs,
		       sx.closes_by_goroutines, sx.stalls_closed);
	}
	free(sx.log);
	TH_LOG("%.2f s", (rt_now_ns() - t0) / 1e9);
}

TEST_HARNESS_MAIN
