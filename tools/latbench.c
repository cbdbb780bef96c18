// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-latbench - kernel-level latency benchmark: runs known workloads in
 * this very process and prints, for each measurement, a log2 histogram,
 * p50/p90/p99/p99.9 and the count, split into the kernel's share (measured
 * by BPF: the runtime's USDT probes for the user-space timestamps, the
 * scheduler and io_uring tracepoints for the kernel's, see
 * bpf/latbench.bpf.c) and the rest. Without root or BPF it prints what the
 * workloads measured themselves with rg_now() and says why the kernel split
 * is missing.
 *
 *   gsame   goroutine wake-up on one P: ready into runnext -> it starts
 *   gcross  a goroutine on one P readies a parked one, which starts on another
 *           P (the idle M woken, the goroutine stolen)
 *   mwake   an idle M woken by a futex wake (startm) or by the runtime's wake
 *           NOP (an earlier timer while an M sleeps in io_uring_enter)
 *           -> the M on a CPU
 *   timer   rg_sleep / rg_timer of 200 us: deadline -> the goroutine runs
 *   nop     an io_uring round trip of an IORING_OP_NOP (submitted, parked on,
 *           reaped, readied: rg_io_nop, internal)
 *   recv    rg_recv of a 1-byte echo over loopback TCP
 *
 * USAGE: ringo-latbench [-n N] [-w LIST] [-j] [-u] [--svg FILE] [-v]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#if defined(__has_include) && __has_include(<sys/sdt.h>)
#define STAP_SDT_ARG_CONSTRAINT nr
#include <sys/sdt.h>
/* The workload's own probes (provider latbench): which goroutine, which deadline. */
#define LB_WATCH(goid) STAP_PROBE1(latbench, watch, (long)(goid))
#define LB_DEADLINE(goid, when) STAP_PROBE2(latbench, deadline, (long)(goid), (long)(when))
#else
#define LB_WATCH(goid) ((void)0)
#define LB_DEADLINE(goid, when) ((void)0)
#endif

#include <bpf/bpf.h>

#include "common.h"
#include "latbench.h"
#include "latbench.skel.h"
#include "poller.h"
#include "ringo.h"
#include "runtime.h"

#define US 1000LL
#define MS 1000000LL
#define TIMER_NS (200 * US)
#define MAX_ITERS 100000

/* ---------------------------------------------------------------- samples */

struct series {
	int64_t *v;
	size_t n, cap;
};

static void add(struct series *s, int64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		int64_t *nv = realloc(s->v, cap * sizeof(*nv));
		if (!nv)
			return;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
}

static const struct meas {
	const char *name, *what, *userspace;
	int w;
} meas[LB_M_COUNT] = {
	[LB_M_GSAME] = {"gsame", "goroutine wake-up, same P: g_ready -> g_start",
			"send on a channel -> the receiver runs", LB_W_GSAME},
	[LB_M_GCROSS] = {"gcross", "goroutine wake-up across Ps: g_ready -> g_start on another P",
			 "send on a channel -> the receiver runs on another P", LB_W_GCROSS},
	[LB_M_MWAKE_FUTEX] = {"mwake_futex",
			      "idle M woken by futex: m_unpark -> its thread on a CPU",
			      "send -> the receiver runs on the woken M (an upper bound: "
			      "includes the steal)",
			      LB_W_MWAKE},
	[LB_M_MWAKE_RING] = {"mwake_ring",
			     "idle M asleep in io_uring_enter woken by the wake NOP: NOP "
			     "submitted -> its thread on a CPU",
			     NULL, LB_W_MWAKE},
	[LB_M_TIMER] = {"timer",
			"timer lateness (rg_sleep, rg_timer of 200 us): deadline -> g_start",
			"deadline -> the sleeper runs", LB_W_TIMER},
	[LB_M_NOP] = {"nop", "io_uring round trip of IORING_OP_NOP: io_submit -> io_complete",
		      "rg_io_nop call -> return", LB_W_NOP},
	[LB_M_RECV] = {"recv", "loopback TCP rg_recv of a 1-byte echo: io_submit -> io_complete",
		       "rg_recv call -> return", LB_W_RECV},
};

struct workload {
	const char *name;
	int w;
	void (*fn)(void);
};

static const struct workload *cur_workload;

/*
 * Every workload runs twice: first with no probe attached (a USDT probe is a
 * nop then), for rg_now()'s undisturbed numbers; then traced, for BPF's.
 * Each probe hit traps into the kernel (a uprobe), which costs microseconds
 * in a VM: the traced totals include that cost, the kernel's share does not.
 */
enum {
	PLAIN,
	TRACED,
	NPASSES
};
static struct series us_lat[NPASSES][LB_M_COUNT], bpf_total[LB_M_COUNT], bpf_kernel[LB_M_COUNT];
static int pass;
static int64_t probe_ns = -1; /* the cost of one traced probe hit */
static long iters = 2000;
static struct latbench_bpf *skel;
static struct ring_buffer *rb;
static char bpf_why[512], exe_path[PATH_MAX];
static bool attach_failed;
static long bpf_other; /* samples of a measurement outside its workload */
static int run_procs;
static char run_poller[16];

static void set_workload(int w)
{
	if (skel)
		skel->bss->cur_w = (__u32)w;
}

static void drain(void)
{
	if (rb)
		ring_buffer__consume(rb);
}

static int on_sample(void *ctx, void *data, size_t len)
{
	const struct lb_sample *s = data;

	if (len < sizeof(*s) || s->m >= LB_M_COUNT)
		return 0;
	if ((int)s->w != meas[s->m].w) {
		bpf_other++;
		return 0;
	}
	add(&bpf_total[s->m], (int64_t)s->total_ns);
	add(&bpf_kernel[s->m], (int64_t)s->kernel_ns);
	return 0;
}

/* -------------------------------------------------------------- workloads */

static void relax_until(int64_t end)
{
	while (rg_now() < end)
		__builtin_ia32_pause();
}

/*
 * Wait (busy, keeping our P) until every other P is idle and no M spins, so
 * the next wake-up really wakes a sleeping M; with ring, until an M sleeps
 * in the poller too. Then a little more: the M may not be in the kernel yet.
 */
static void settle(bool ring)
{
	struct rg_sched *s = rg_sched_current();
	int64_t end = rg_now() + 20 * MS;

	while (rg_now() < end) {
		int32_t procs = atomic_load(&s->gomaxprocs);
		if (atomic_load(&s->npidle) == procs - 1 && atomic_load(&s->nmspinning) == 0 &&
		    (!ring || atomic_load(&s->timer_sleeping)))
			break;
		__builtin_ia32_pause();
	}
	relax_until(rg_now() + 50 * US);
}

struct reply {
	int64_t lat;
	int p;
};

static rg_chan *ping, *pong;
static _Atomic int started;

/* Parked on ping; woken with the waker's rg_now(), it answers with its latency and P. */
static void wakee(void *arg)
{
	int64_t t0;
	struct reply r = {0};

	LB_WATCH(rg_goid());
	rg_chan_send(pong, &r);
	while (rg_chan_recv(ping, &t0) == 1 && t0 >= 0) {
		r.lat = rg_now() - t0;
		r.p = rg_current_p();
		atomic_store(&started, 1);
		rg_chan_send(pong, &r);
	}
	rg_chan_send(pong, &r);
}

static void wakee_start(void)
{
	struct reply r;

	ping = rg_chan_make(sizeof(int64_t), 0);
	pong = rg_chan_make(sizeof(struct reply), 1);
	rg_go(wakee, NULL);
	rg_chan_recv(pong, &r);
}

static void wakee_stop(void)
{
	int64_t stop = -1;
	struct reply r;

	set_workload(LB_W_NONE); /* its last wake-up is not a sample */
	rg_chan_send(ping, &stop);
	rg_chan_recv(pong, &r);
	rg_chan_free(ping);
	rg_chan_free(pong);
}

/* Ready the wakee, then keep this P busy until it started elsewhere (or 50 ms). */
static void cross_once(int m)
{
	struct reply r;
	int me = rg_current_p();

	settle(false);
	atomic_store(&started, 0);
	int64_t t0 = rg_now();
	rg_chan_send(ping, &t0);
	for (int64_t end = t0 + 50 * MS; !atomic_load(&started) && rg_now() < end;)
		__builtin_ia32_pause();
	rg_chan_recv(pong, &r);
	if (r.p != me)
		add(&us_lat[pass][m], r.lat);
}

static void w_gsame(void)
{
	int old = rg_maxprocs(1); /* one P: the wakee can only run here */
	struct reply r;

	wakee_start();
	for (long i = 0; i < iters; i++) {
		int64_t t0 = rg_now();
		rg_chan_send(ping, &t0); /* the wakee goes to our runnext */
		rg_chan_recv(pong, &r);	 /* we park: it runs */
		add(&us_lat[pass][LB_M_GSAME], r.lat);
	}
	wakee_stop();
	rg_maxprocs(old);
}

static int at_least_two_ps(void)
{
	int old = rg_maxprocs(0);

	if (old < 2)
		rg_maxprocs(2);
	return old;
}

static void w_gcross(void)
{
	int old = at_least_two_ps();

	wakee_start();
	for (long i = 0; i < iters; i++)
		cross_once(LB_M_GCROSS);
	wakee_stop();
	rg_maxprocs(old);
}

/*
 * A far timer keeps one idle M asleep in the poller; every other iteration
 * a 2 ms sleep (earlier than its deadline) makes the runtime send it the
 * wake NOP, the others ready a goroutine while this P stays busy (startm:
 * a futex wake of an M on the idle list).
 */
static void w_mwake(void)
{
	int old = at_least_two_ps();
	bool ring = strcmp(rg_poller_name(), "io_uring") == 0; /* also starts the poller */
	rg_timer *far = rg_timer_new(3600 * 1000 * MS);

	wakee_start();
	for (long i = 0; i < iters; i++) {
		if (i % 2 == 0 || !ring) {
			cross_once(LB_M_MWAKE_FUTEX);
		} else {
			settle(true);
			rg_sleep(2 * MS);
		}
	}
	wakee_stop();
	rg_timer_free(far);
	rg_maxprocs(old);
}

static void w_timer(void)
{
	int64_t v;

	for (long i = 0; i < iters; i++) {
		int64_t when = rg_now() + TIMER_NS;
		LB_DEADLINE(rg_goid(), when);
		if (i % 2) {
			rg_sleep(TIMER_NS);
		} else {
			rg_timer *t = rg_timer_new(TIMER_NS);
			if (!t)
				break;
			rg_chan_recv(rg_timer_chan(t), &v);
			rg_timer_free(t);
		}
		add(&us_lat[pass][LB_M_TIMER], rg_now() - when);
	}
}

static void w_nop(void)
{
	LB_WATCH(rg_goid());
	for (long i = 0; i < iters; i++) {
		int64_t t0 = rg_now();
		if (rg_io_nop() != 0)
			break;
		add(&us_lat[pass][LB_M_NOP], rg_now() - t0);
	}
}

static void echo(void *arg)
{
	int lfd = (int)(intptr_t)arg, one = 1;
	int fd = rg_accept(lfd, NULL, NULL);
	char c;

	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (rg_recv(fd, &c, 1, 0) == 1 && rg_send(fd, &c, 1, 0) == 1)
		;
	rg_close(fd);
}

static void w_recv(void)
{
	int lfd = rg_listen_tcp("127.0.0.1:0", 4);
	char addr[64], c = 'x';

	if (lfd < 0) {
		fprintf(stderr, "%s: recv: cannot listen on loopback: %s\n", ringo_prog,
			strerror(-lfd));
		return;
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", rg_local_port(lfd));
	rg_go(echo, (void *)(intptr_t)lfd);
	int fd = rg_dial_tcp(addr);
	if (fd < 0) {
		fprintf(stderr, "%s: recv: cannot connect: %s\n", ringo_prog, strerror(-fd));
		rg_close(lfd);
		return;
	}
	LB_WATCH(rg_goid());
	for (long i = 0; i < iters; i++) {
		if (rg_send(fd, &c, 1, 0) != 1)
			break;
		int64_t t0 = rg_now();
		if (rg_recv(fd, &c, 1, 0) != 1)
			break;
		add(&us_lat[pass][LB_M_RECV], rg_now() - t0);
	}
	rg_close(fd);
	rg_close(lfd);
}

static const struct workload workloads[] = {
	{"gsame", LB_W_GSAME, w_gsame}, {"gcross", LB_W_GCROSS, w_gcross},
	{"mwake", LB_W_MWAKE, w_mwake}, {"timer", LB_W_TIMER, w_timer},
	{"nop", LB_W_NOP, w_nop},	{"recv", LB_W_RECV, w_recv},
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))
static bool selected[NWORKLOADS];

/* Each workload in a goroutine of its own, so watched goroutine ids never carry over. */
static void run_one(void *arg)
{
	rg_chan *done = arg;
	int v = 0;

	set_workload(cur_workload->w);
	cur_workload->fn();
	set_workload(LB_W_NONE);
	rg_chan_send(done, &v);
}

static bool bpf_attach(void);

/* What one traced probe hit costs: a latbench probe in a loop, attached. */
static void calibrate(void)
{
	enum {
		N = 20000
	};
	int64_t t0 = rg_now();

	for (int i = 0; i < N; i++)
		LB_WATCH(0);
	probe_ns = (rg_now() - t0) / N;
}

static void bench_main(void *arg)
{
	rg_chan *done = rg_chan_make(sizeof(int), 0);
	int v;

	run_procs = rg_maxprocs(0);
	snprintf(run_poller, sizeof(run_poller), "%s", rg_poller_name());
	for (pass = PLAIN; pass < NPASSES; pass++) {
		if (pass == TRACED) {
			if (!skel || !bpf_attach())
				break;
			calibrate();
		}
		for (size_t i = 0; i < NWORKLOADS; i++) {
			if (!selected[i])
				continue;
			cur_workload = &workloads[i];
			rg_go(run_one, done);
			rg_chan_recv(done, &v);
			drain();
		}
	}
	rg_chan_free(done);
}

/* ---------------------------------------------------------------- BPF */

static bool have_caps(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return false;
	__u64 eff = d[0].effective | (__u64)d[1].effective << 32;
	if (eff & (1ULL << CAP_SYS_ADMIN))
		return true;
	return (eff & (1ULL << 39)) && (eff & (1ULL << 38)); /* CAP_BPF, CAP_PERFMON */
}

static bool attach(struct bpf_program *prog, struct bpf_link **link, const char *path,
		   const char *provider, const char *name)
{
	*link = bpf_program__attach_usdt(prog, getpid(), path, provider, name, NULL);
	if (*link)
		return true;
	snprintf(bpf_why, sizeof(bpf_why), "cannot attach to %s:%s: %s", provider, name,
		 strerror(errno));
	return false;
}

/* Load and attach everything; false with bpf_why set when BPF cannot be used. */
static bool bpf_setup(void)
{
	char path[PATH_MAX];
	ssize_t n;
	int err;

	if (!have_caps()) {
		snprintf(bpf_why, sizeof(bpf_why),
			 "needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs");
		return false;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		snprintf(bpf_why, sizeof(bpf_why), "no kernel BTF (/sys/kernel/btf/vmlinux)");
		return false;
	}
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0) {
		snprintf(bpf_why, sizeof(bpf_why), "cannot read /proc/self/exe");
		return false;
	}
	path[n] = 0;
	if (!ringo_has_probes(path)) {
		snprintf(bpf_why, sizeof(bpf_why), "%.400s has no ringo USDT probes", path);
		return false;
	}
	skel = latbench_bpf__open();
	if (!skel) {
		snprintf(bpf_why, sizeof(bpf_why), "cannot open the BPF object: %s",
			 strerror(errno));
		return false;
	}
	skel->rodata->targ_tgid = (__u32)getpid();
	skel->rodata->op_nop = RG_IO_NOP;
	skel->rodata->op_recv = RG_IO_RECV;
	if ((err = latbench_bpf__load(skel))) {
		snprintf(bpf_why, sizeof(bpf_why), "loading the BPF programs failed: %s",
			 strerror(-err));
		goto fail;
	}
	snprintf(exe_path, sizeof(exe_path), "%s", path);
	rb = ring_buffer__new(bpf_map__fd(skel->maps.samples), on_sample, NULL, NULL);
	if (!rb) {
		snprintf(bpf_why, sizeof(bpf_why), "cannot open the ring buffer: %s",
			 strerror(errno));
		goto fail;
	}
	return true;
fail:
	latbench_bpf__destroy(skel);
	skel = NULL;
	return false;
}

/*
 * Attach, from a goroutine, between the passes. The Ms started before that
 * are told to BPF from the runtime's list (m_start fired untraced).
 */
static bool bpf_attach(void)
{
	struct rg_sched *s = rg_sched_current();
	const char *path = exe_path;

	rg_lock(&s->lock);
	for (struct rg_m *m = s->allm; m; m = m->alllink) {
		__u32 id = (__u32)m->id, tid = (__u32)m->tid;
		if (id < 4096)
			bpf_map_update_elem(bpf_map__fd(skel->maps.mtid), &id, &tid, BPF_ANY);
	}
	rg_unlock(&s->lock);
	if (!attach(skel->progs.lb_watch, &skel->links.lb_watch, path, "latbench", "watch") ||
	    !attach(skel->progs.lb_deadline, &skel->links.lb_deadline, path, "latbench",
		    "deadline") ||
	    !attach(skel->progs.m_start, &skel->links.m_start, path, "ringo", "m_start") ||
	    !attach(skel->progs.m_unpark, &skel->links.m_unpark, path, "ringo", "m_unpark") ||
	    !attach(skel->progs.g_ready, &skel->links.g_ready, path, "ringo", "g_ready") ||
	    !attach(skel->progs.g_start, &skel->links.g_start, path, "ringo", "g_start") ||
	    !attach(skel->progs.io_submit, &skel->links.io_submit, path, "ringo", "io_submit") ||
	    !attach(skel->progs.io_complete, &skel->links.io_complete, path, "ringo",
		    "io_complete"))
		goto fail;
	ringo_need_tracefs();
	struct bpf_program *tps[] = {skel->progs.submit_req, skel->progs.complete,
				     skel->progs.cqring_wait, skel->progs.sched_wakeup,
				     skel->progs.sched_switch};
	struct bpf_link **links[] = {&skel->links.submit_req, &skel->links.complete,
				     &skel->links.cqring_wait, &skel->links.sched_wakeup,
				     &skel->links.sched_switch};
	for (size_t i = 0; i < sizeof(tps) / sizeof(tps[0]); i++) {
		if (!(*links[i] = bpf_program__attach(tps[i]))) {
			snprintf(bpf_why, sizeof(bpf_why), "cannot attach %s: %s",
				 bpf_program__name(tps[i]), strerror(errno));
			goto fail;
		}
	}
	return true;
fail:
	/* Links die with the skeleton, after rg_run: only the split is lost. */
	attach_failed = true;
	return false;
}

/* ---------------------------------------------------------------- output */

struct pct {
	size_t n;
	int64_t p50, p90, p99, p999, max;
};

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int64_t at(const int64_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n + 0.999999);

	return v[i == 0 ? 0 : (i > n ? n : i) - 1];
}

static struct pct percentiles(const int64_t *src, size_t n)
{
	struct pct p = {.n = n};
	int64_t *v;

	if (!n || !(v = malloc(n * sizeof(*v))))
		return p;
	memcpy(v, src, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp64);
	p.p50 = at(v, n, 0.50);
	p.p90 = at(v, n, 0.90);
	p.p99 = at(v, n, 0.99);
	p.p999 = at(v, n, 0.999);
	p.max = v[n - 1];
	free(v);
	return p;
}

#define NSLOTS 32

static void log2_hist(const int64_t *v, size_t n, __u32 *slots)
{
	memset(slots, 0, NSLOTS * sizeof(*slots));
	for (size_t i = 0; i < n; i++) {
		int s = v[i] > 0 ? 63 - __builtin_clzll((unsigned long long)v[i]) : 0;
		slots[s < NSLOTS ? s : NSLOTS - 1]++;
	}
}

/*
 * One measurement. total: rg_now() with no probe attached (BPF's traced
 * total for what only BPF sees); kernel: BPF's kernel share; traced: BPF's
 * own total (probes attached); user = traced - kernel, sample by sample.
 */
struct result {
	const struct meas *m;
	bool split;
	struct pct total, kernel, user, traced, rgnow_traced;
	__u32 hist[NSLOTS], thist[NSLOTS], khist[NSLOTS], kzero;
};

static bool have_split(void)
{
	return skel && !attach_failed;
}

static void compute(int i, struct result *r)
{
	struct series *t = &bpf_total[i], *k = &bpf_kernel[i], *plain = &us_lat[PLAIN][i];

	memset(r, 0, sizeof(*r));
	r->m = &meas[i];
	r->split = have_split();
	r->total = percentiles(plain->v, plain->n);
	log2_hist(plain->v, plain->n, r->hist);
	if (!r->split)
		return;
	int64_t *u = malloc((t->n ? t->n : 1) * sizeof(*u));
	for (size_t j = 0; u && j < t->n; j++)
		u[j] = t->v[j] - k->v[j];
	r->traced = percentiles(t->v, t->n);
	r->kernel = percentiles(k->v, k->n);
	if (u)
		r->user = percentiles(u, t->n);
	free(u);
	r->rgnow_traced = percentiles(us_lat[TRACED][i].v, us_lat[TRACED][i].n);
	log2_hist(t->v, t->n, r->thist);
	log2_hist(k->v, k->n, r->khist);
	r->kzero = r->khist[0]; /* zero (or 1 ns): no kernel share at all */
	r->khist[0] = 0;
	if (!r->m->userspace) { /* only BPF sees it: its total is the total */
		r->total = r->traced;
		log2_hist(t->v, t->n, r->hist);
	}
}

static void print_row(const char *label, const struct pct *p, const char *note)
{
	if (!p->n) {
		printf("  %-8s %8s %s\n", label, "-", note);
		return;
	}
	printf("  %-8s %8zu %9.2f %9.2f %9.2f %9.2f %9.2f  %s\n", label, p->n, p->p50 / 1e3,
	       p->p90 / 1e3, p->p99 / 1e3, p->p999 / 1e3, p->max / 1e3, note);
}

static void print_text(const struct result *r)
{
	const struct meas *m = r->m;

	printf("\n%s: %s\n", m->name, m->what);
	if (m->userspace)
		printf("  untraced: %s (rg_now)\n", m->userspace);
	ringo_print_log2_hist(r->hist, NSLOTS, "nsecs");
	printf("  %-8s %8s %9s %9s %9s %9s %9s (usecs)\n", "", "count", "p50", "p90", "p99",
	       "p99.9", "max");
	if (m->userspace)
		print_row("total", &r->total, "rg_now, no probe attached");
	if (!r->split) {
		if (!m->userspace)
			printf("  (only BPF can see this one)\n");
		return;
	}
	print_row("traced", &r->traced, "BPF, probes attached");
	print_row("kernel", &r->kernel, "the kernel's share (BPF)");
	print_row("user", &r->user, "traced - kernel (includes the probes' cost)");
	if (m->userspace)
		print_row("rg_now'", &r->rgnow_traced, "rg_now, probes attached");
}

static void json_pct(const char *key, const struct pct *p)
{
	if (!p->n)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":{\"count\":%zu,\"p50\":%lld,\"p90\":%lld,\"p99\":%lld,"
		       "\"p999\":%lld,\"max\":%lld}",
		       key, p->n, (long long)p->p50, (long long)p->p90, (long long)p->p99,
		       (long long)p->p999, (long long)p->max);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s >= 0x20)
			putchar(*s);
	}
	putchar('"');
}

/* One measurement per line, so scripts and the test can read it line by line. */
static void print_json(const struct result *rs, int n)
{
	printf("{\"tool\":\"ringo-latbench\",\"iterations\":%ld,\"unit\":\"ns\",\"gomaxprocs\":%d,"
	       "\"poller\":",
	       iters, run_procs);
	json_str(run_poller);
	printf(",\"bpf\":%s,\"bpf_reason\":", have_split() ? "true" : "false");
	if (have_split())
		printf("null,\"probe_ns\":%lld", (long long)probe_ns);
	else
		json_str(bpf_why);
	printf(",\"measurements\":[\n");
	for (int i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		printf("{\"name\":\"%s\",\"what\":", r->m->name);
		json_str(r->m->what);
		printf(",\"count\":%zu", r->total.n);
		json_pct("total", &r->total);
		json_pct("kernel", &r->kernel);
		json_pct("user", &r->user);
		json_pct("traced", &r->traced);
		printf(",\"hist_log2_ns\":[");
		for (int s = 0; s < NSLOTS; s++)
			printf("%s%u", s ? "," : "", r->hist[s]);
		printf("]}%s\n", i + 1 < n ? "," : "");
	}
	printf("]}\n");
}

static void human(char *buf, size_t len, int64_t ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%lldns", (long long)ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.3gus", ns / 1e3);
	else
		snprintf(buf, len, "%.3gms", ns / 1e6);
}

/*
 * A bar chart per measurement over log2 buckets: the untraced total (blue),
 * the traced total (grey) and the kernel's share of it (orange, its zero
 * samples left out), each as the fraction of its own samples.
 */
static int write_svg(const char *file, const struct result *rs, int n)
{
	const int pw = 460, ph = 250, cols = 2, rows = (n + cols - 1) / cols, top = 70;
	FILE *f = fopen(file, "w");

	if (!f)
		return -errno;
	fprintf(f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"font-family=\"sans-serif\" font-size=\"11\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		pw * cols, ph * rows + top);
	fprintf(f,
		"<text x=\"10\" y=\"18\" font-size=\"13\">ringo-latbench, %ld iterations: "
		"the fraction of each series' samples per log2 bucket</text>\n"
		"<text x=\"10\" y=\"36\">%s</text>\n",
		iters,
		have_split() ? "blue: total, no probe attached (rg_now); grey: total traced (BPF, "
			       "probes attached); orange: the kernel's share of the traced total" :
			       "rg_now only (no BPF)");
	for (int i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		int x0 = (i % cols) * pw + 40, y0 = (i / cols) * ph + top;
		int lo = NSLOTS, hi = -1;
		double max = 1e-9, tn = 0, gn = 0, kn = 0;
		char a[32], b[32];

		for (int s = 0; s < NSLOTS; s++) {
			tn += r->hist[s];
			gn += r->thist[s];
			kn += r->khist[s];
		}
		kn += r->kzero;
		for (int s = 0; s < NSLOTS; s++) {
			if (r->hist[s] || r->thist[s] || r->khist[s]) {
				lo = s < lo ? s : lo;
				hi = s;
			}
			if (tn && r->hist[s] / tn > max)
				max = r->hist[s] / tn;
			if (kn && r->khist[s] / kn > max)
				max = r->khist[s] / kn;
			if (gn && r->thist[s] / gn > max)
				max = r->thist[s] / gn;
		}
		human(a, sizeof(a), r->total.p50);
		human(b, sizeof(b), r->total.p99);
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>\n", x0, y0 - 14,
			r->m->name);
		fprintf(f,
			"<text x=\"%d\" y=\"%d\" fill=\"steelblue\">total n=%zu p50=%s p99=%s</text>\n",
			x0 + 90, y0 - 14, r->total.n, a, b);
		if (r->kernel.n) {
			human(a, sizeof(a), r->kernel.p50);
			human(b, sizeof(b), r->kernel.p99);
			fprintf(f,
				"<text x=\"%d\" y=\"%d\" fill=\"darkorange\">kernel p50=%s p99=%s, "
				"zero in %.0f%%</text>\n",
				x0 + 90, y0, a, b, 100.0 * r->kzero / kn);
			human(a, sizeof(a), r->traced.p50);
			human(b, sizeof(b), r->traced.p99);
			if (r->m->userspace)
				fprintf(f,
					"<text x=\"%d\" y=\"%d\" fill=\"gray\">traced p50=%s "
					"p99=%s</text>\n",
					x0 + 90, y0 + 14, a, b);
		}
		const int cw = pw - 70, ch = ph - 105, by = y0 + 22 + ch;
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", x0,
			by, x0 + cw, by);
		if (hi < 0)
			continue;
		int nb = hi - lo + 1, bw = cw / nb;
		for (int s = lo; s <= hi; s++) {
			int x = x0 + (s - lo) * bw;
			int h = tn ? (int)(r->hist[s] / tn / max * ch) : 0;
			int kh = kn ? (int)(r->khist[s] / kn / max * ch) : 0;
			int gh = gn && r->m->userspace ? (int)(r->thist[s] / gn / max * ch) : 0;
			int w3 = bw / 3;
			if (h)
				fprintf(f,
					"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
					"fill=\"steelblue\"><title>%u</title></rect>\n",
					x + 1, by - h, w3, h, r->hist[s]);
			if (gh)
				fprintf(f,
					"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
					"fill=\"silver\"><title>%u</title></rect>\n",
					x + 1 + w3, by - gh, w3, gh, r->thist[s]);
			if (kh)
				fprintf(f,
					"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
					"fill=\"darkorange\"><title>%u</title></rect>\n",
					x + 1 + 2 * w3, by - kh, w3, kh, r->khist[s]);
			if ((s - lo) % (nb > 12 ? 2 : 1) == 0) {
				human(a, sizeof(a), 1LL << s);
				fprintf(f,
					"<text x=\"%d\" y=\"%d\" font-size=\"9\" "
					"transform=\"rotate(45 %d %d)\">%s</text>\n",
					x + 2, by + 12, x + 2, by + 12, a);
			}
		}
	}
	fprintf(f, "</svg>\n");
	return fclose(f) ? -errno : 0;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f, "Usage: ringo-latbench [-n N] [-w LIST] [-j] [-u] [--svg FILE] [-v]\n"
		   "Run known workloads in-process and measure their latency, split into the\n"
		   "kernel's share (BPF: the runtime's probes and the kernel's tracepoints).\n"
		   "  -n N        iterations per workload (default 2000)\n"
		   "  -w LIST     workloads, comma-separated: gsame,gcross,mwake,timer,nop,recv\n"
		   "  -j          JSON output (one measurement per line)\n"
		   "  -u          user-space numbers only (no BPF)\n"
		   "  --svg FILE  write the histograms as an SVG plot\n"
		   "Without root or BPF it prints rg_now()'s numbers and says why.\n");
}

static bool select_workloads(const char *list)
{
	char *copy = strdup(list), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < NWORKLOADS && strcmp(t, workloads[i].name); i++)
			;
		if (i == NWORKLOADS) {
			fprintf(stderr, "%s: unknown workload %s\n", ringo_prog, t);
			free(copy);
			return false;
		}
		selected[i] = true;
	}
	free(copy);
	return true;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"svg", required_argument, NULL, 'S'},
						 {"help", no_argument, NULL, 'h'},
						 {0}};
	const char *svg = NULL;
	bool json = false, no_bpf = false, any = false;
	int c;

	ringo_tool_init("ringo-latbench");
	while ((c = getopt_long(argc, argv, "n:w:juvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			iters = ringo_parse_long(optarg, "iteration count");
			if (iters > MAX_ITERS)
				iters = MAX_ITERS;
			break;
		case 'w':
			if (!select_workloads(optarg))
				return 1;
			break;
		case 'j':
			json = true;
			break;
		case 'u':
			no_bpf = true;
			break;
		case 'S':
			svg = optarg;
			break;
		case 'v':
			ringo_verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 1;
	}
	for (size_t i = 0; i < NWORKLOADS; i++)
		any |= selected[i];
	if (!any)
		for (size_t i = 0; i < NWORKLOADS; i++)
			selected[i] = true;

	if (no_bpf)
		snprintf(bpf_why, sizeof(bpf_why), "disabled with -u");
	else if (!bpf_setup() && !json)
		fprintf(stderr, "%s: BPF unavailable: %s; printing user-space numbers only\n",
			ringo_prog, bpf_why);
	if (!json)
		printf("Running %ld iterations per workload%s...\n", iters,
		       skel ? ", untraced then traced" : " (kernel split unavailable)");

	int err = rg_run(bench_main, NULL);
	if (err) {
		fprintf(stderr, "%s: rg_run: %s\n", ringo_prog, strerror(-err));
		return 1;
	}
	drain();
	if (attach_failed && !json)
		fprintf(stderr, "%s: BPF unavailable: %s; printing user-space numbers only\n",
			ringo_prog, bpf_why);
	if (ringo_verbose && have_split())
		fprintf(stderr, "%s: %ld samples of one workload's kind seen in another\n",
			ringo_prog, bpf_other);

	struct result rs[LB_M_COUNT];
	int n = 0;
	for (int i = 0; i < LB_M_COUNT; i++) {
		size_t w;
		for (w = 0; w < NWORKLOADS && workloads[w].w != meas[i].w; w++)
			;
		if (w < NWORKLOADS && selected[w])
			compute(i, &rs[n++]);
	}
	if (json) {
		print_json(rs, n);
	} else {
		for (int i = 0; i < n; i++)
			print_text(&rs[i]);
		if (!have_split())
			printf("\nkernel split unavailable: %s\n", bpf_why);
		else
			printf("\none traced probe hit costs %.2f us here (a uprobe trap); "
			       "%llu samples lost\n",
			       probe_ns / 1e3, (unsigned long long)skel->bss->lost);
	}
	if (svg && (err = write_svg(svg, rs, n)) != 0) {
		fprintf(stderr, "%s: %s: %s\n", ringo_prog, svg, strerror(-err));
		return 1;
	}
	for (int i = 0; i < LB_M_COUNT; i++) {
		free(us_lat[PLAIN][i].v);
		free(us_lat[TRACED][i].v);
		free(bpf_total[i].v);
		free(bpf_kernel[i].v);
	}
	ring_buffer__free(rb);
	latbench_bpf__destroy(skel);
	return 0;
}
