// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-schedtrace - Go's GODEBUG=schedtrace for a running ringo program,
 * from its sched_* USDT probes alone (no restart, no flag):
 *
 *   SCHED 1000ms: gomaxprocs=2 idleprocs=0 threads=5 spinningthreads=0 idlethreads=0 runqueue=0 [0 0]
 *
 * USAGE: ringo-schedtrace [-d] [-T] [-v] (-p PID | -b BINARY) [interval_ms] [count]
 *
 * Attaching sets the probes' semaphore; the runtime's sysmon then takes a
 * snapshot every 10 ms, and every interval_ms (default 1000) the newest one
 * is printed. -d adds Go's scheddetail lines (P, M and G). The time is
 * milliseconds since tracing started. With -b, every process running BINARY
 * is traced and lines are prefixed with "[pid] ".
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "ringo_events.h"
#include "schedtrace.skel.h"

#define MAX_PROCS 64

struct pstate {
	__s64 p[8];
};
struct mstate {
	__s64 a[8];
};
struct gstate {
	__s64 a[8];
};

struct vec {
	void *v;
	size_t n, cap, elem;
};

struct proc {
	__u32 pid;
	bool have;	       /* a complete snapshot arrived */
	__s64 stats[8];	       /* newest sched_stats, + sched_detail's in [6], [7] */
	__s64 ndetail[2];      /* sched_detail of the snapshot being received */
	struct vec p, m, g;    /* newest snapshot's P, M (and G) records */
	struct vec np, nm, ng; /* the snapshot being received */
};

static struct proc procs[MAX_PROCS];
static int nprocs;
static bool detail, timestamps, multi;
static const char *reasons[] = RINGO_WAIT_REASON_STRINGS;

static void push(struct vec *v, size_t elem, const void *x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		void *nv = realloc(v->v, cap * elem);
		if (!nv)
			return;
		v->v = nv;
		v->cap = cap;
	}
	v->elem = elem;
	memcpy((char *)v->v + v->n++ * elem, x, elem);
}

static void swap(struct vec *a, struct vec *b)
{
	struct vec t = *a;
	*a = *b;
	*b = t;
	b->n = 0;
}

static struct proc *proc_of(__u32 pid)
{
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid == pid)
			return &procs[i];
	if (nprocs == MAX_PROCS)
		return NULL;
	procs[nprocs].pid = pid;
	return &procs[nprocs++];
}

static int on_event(void *ctx, void *data, size_t size)
{
	const struct ringo_sched_event *e = data;
	struct proc *pr;

	if (size < sizeof(*e) || !(pr = proc_of(e->pid)))
		return 0;
	switch (e->type) {
	case RINGO_EV_SCHED_P:
		push(&pr->np, sizeof(e->a), e->a);
		break;
	case RINGO_EV_SCHED_PDETAIL: {
		/* Right after its sched_p: the newest P record. */
		struct pstate *ps = pr->np.v;
		if (pr->np.n && ps[pr->np.n - 1].p[0] == e->a[0]) {
			ps[pr->np.n - 1].p[6] = e->a[1];
			ps[pr->np.n - 1].p[7] = e->a[2];
		}
		break;
	}
	case RINGO_EV_SCHED_DETAIL:
		pr->ndetail[0] = e->a[0];
		pr->ndetail[1] = e->a[1];
		break;
	case RINGO_EV_SCHED_M:
		push(&pr->nm, sizeof(e->a), e->a);
		break;
	case RINGO_EV_SCHED_G:
		push(&pr->ng, sizeof(e->a), e->a);
		break;
	case RINGO_EV_SCHED_STATS:
		memcpy(pr->stats, e->a, sizeof(pr->stats));
		pr->stats[6] = pr->ndetail[0];
		pr->stats[7] = pr->ndetail[1];
		swap(&pr->p, &pr->np);
		swap(&pr->m, &pr->nm);
		/* G records come with every 10th snapshot only: keep the newest set. */
		if (pr->ng.n)
			swap(&pr->g, &pr->ng);
		pr->have = true;
		break;
	}
	return 0;
}

static void print_proc(struct proc *pr, long long ms)
{
	const __s64 *s = pr->stats;
	const char *pfx = "";
	char pbuf[32];

	if (multi) {
		snprintf(pbuf, sizeof(pbuf), "[%u] ", pr->pid);
		pfx = pbuf;
	}
	if (timestamps)
		ringo_print_time(stdout);
	printf("%sSCHED %lldms: gomaxprocs=%lld idleprocs=%lld threads=%lld spinningthreads=%lld "
	       "idlethreads=%lld runqueue=%lld",
	       pfx, ms, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3],
	       (long long)s[4], (long long)s[5]);
	const struct pstate *ps = pr->p.v;
	if (!detail) {
		printf(" [");
		for (size_t i = 0; i < pr->p.n; i++)
			printf("%s%lld", i ? " " : "", (long long)ps[i].p[2]);
		printf("]\n");
		return;
	}
	printf(" gcwaiting=0 nmidlelocked=%lld stopwait=0 sysmonwait=%lld\n", (long long)s[6],
	       (long long)s[7]);
	for (size_t i = 0; i < pr->p.n; i++) {
		const __s64 *p = ps[i].p;
		printf("%s  P%lld: status=%lld schedtick=%lld syscalltick=%lld m=%lld runqsize=%lld "
		       "gfreecnt=%lld timerslen=%lld\n",
		       pfx, (long long)p[0], (long long)p[1], (long long)p[3], (long long)p[4],
		       (long long)p[5], (long long)p[2], (long long)p[6], (long long)p[7]);
	}
	const struct mstate *mv = pr->m.v;
	for (size_t i = 0; i < pr->m.n; i++) {
		const __s64 *m = mv[i].a;
		printf("%s  M%lld: p=%lld curg=%lld mallocing=0 throwing=0 preemptoff= locks=0 "
		       "dying=0 spinning=%s blocked=%s lockedg=%lld\n",
		       pfx, (long long)m[0], (long long)m[1], (long long)m[2],
		       m[3] & RINGO_M_SPINNING ? "true" : "false",
		       m[3] & RINGO_M_BLOCKED ? "true" : "false", (long long)m[4]);
	}
	const struct gstate *gs = pr->g.v;
	for (size_t i = 0; i < pr->g.n; i++) {
		const __s64 *g = gs[i].a;
		const char *r = g[1] == RINGO_G_WAITING && g[2] >= 0 &&
						g[2] < RINGO_WAIT_REASON_COUNT ?
					reasons[g[2]] :
					"";
		printf("%s  G%lld: status=%lld(%s) m=%lld lockedm=%lld\n", pfx, (long long)g[0],
		       (long long)g[1], r, (long long)g[3], (long long)g[4]);
	}
}

static const char usage[] =
	"Usage: ringo-schedtrace [-d] [-T] [-v] (-p PID | -b BINARY) [interval_ms] [count]\n"
	"Print Go's schedtrace line for a running ringo program every interval_ms (1000).\n"
	"  -p PID     trace this process\n"
	"  -b BINARY  trace every process running BINARY (or a program using this libringo)\n"
	"  -d         scheddetail: P, M and G lines too\n"
	"  -T         timestamp each line\n"
	"  -v         libbpf's messages\n";

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	struct ringo_opts o = {.interval = 1000, .count = -1};
	char path[PATH_MAX + 64];
	int c, err;

	ringo_tool_init("ringo-schedtrace");
	while ((c = getopt(argc, argv, "p:b:dTvh")) != -1) {
		if (c == 'd')
			detail = true;
		else
			ringo_parse_opt(&o, c, optarg, usage);
	}
	if (ringo_parse_interval_count(&o, argc, argv) > 0)
		ringo_usage_exit(usage, 1);
	timestamps = o.timestamps;
	multi = o.pid <= 0;
	ringo_check_bpf(false);
	ringo_find_binary(o.pid, o.binary, path, sizeof(path));

	struct schedtrace_bpf *skel = schedtrace_bpf__open();
	if (!skel)
		ringo_load_failed(errno);
	if ((err = schedtrace_bpf__load(skel)))
		ringo_load_failed(err);
	/* G and M records only with -d: they cost a probe hit each. */
	ringo_attach(skel->progs.sched_p, o.pid, path, "sched_p", false);
	ringo_attach(skel->progs.sched_stats, o.pid, path, "sched_stats", false);
	if (detail) {
		ringo_attach(skel->progs.sched_m, o.pid, path, "sched_m", false);
		ringo_attach(skel->progs.sched_g, o.pid, path, "sched_g", false);
		ringo_attach(skel->progs.sched_pdetail, o.pid, path, "sched_pdetail", false);
		ringo_attach(skel->progs.sched_detail, o.pid, path, "sched_detail", false);
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL,
						  NULL);
	if (!rb) {
		fprintf(stderr, "%s: cannot open the ring buffer: %s\n", ringo_prog,
			strerror(errno));
		return 1;
	}
	if (o.pid > 0)
		printf("Tracing ringo scheduler of PID %d every %ld ms... Hit Ctrl-C to end.\n",
		       o.pid, o.interval);
	else
		printf("Tracing ringo scheduler of %s every %ld ms... Hit Ctrl-C to end.\n", path,
		       o.interval);

	long long start = now_ms(), next = start + o.interval;
	while (!ringo_exiting) {
		long long t = now_ms();
		if (t >= next) {
			for (int i = 0; i < nprocs; i++)
				if (procs[i].have)
					print_proc(&procs[i], next - start);
			if (o.count > 0 && --o.count == 0)
				break;
			while (next <= t)
				next += o.interval;
			if (o.pid > 0 && kill(o.pid, 0) != 0 && errno == ESRCH) {
				printf("process %d exited\n", o.pid);
				break;
			}
		}
		err = ring_buffer__poll(rb, (int)(next - t > 100 ? 100 : next - t));
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "%s: ring buffer: %s\n", ringo_prog, strerror(-err));
			break;
		}
	}
	ring_buffer__free(rb);
	ringo_detach();
	schedtrace_bpf__destroy(skel);
	return 0;
}
