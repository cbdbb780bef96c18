// SPDX-License-Identifier: BSD-2-Clause
/*
 * openloop: the open-loop HTTP load generator of bench/net/run's bimodal
 * benchmark (`--only bimodal`).
 *
 *   openloop --connect HOST:PORT --rate R [--duration S] [--warmup S]
 *            [--conns N] [--long-frac F] [--short-us U] [--long-us U]
 *            [--fixed] [--seed N]
 *
 * Requests arrive at R per second as a Poisson process (--fixed: evenly
 * spaced), whatever the server does: an arrival never waits for a response.
 * Each is GET /spin?us=U, a short one (default 4 µs) or, with probability F
 * (default 0.005), a long one (default 10,000 µs). It goes out at once on an
 * idle keep-alive connection of the N (default 256) opened at start; when
 * none is idle it waits in a FIFO for the next connection to free up. A
 * request's latency runs from its intended send time, the arrival, to its
 * response's last byte, so time spent queued here or unsent counts too
 * (no coordinated omission). One request per connection at a time: a short
 * request never waits behind a long one on the same connection, only for
 * the server's CPU.
 *
 * After the warm-up (default 1 s, not counted) it measures for S seconds
 * (default 10) the requests that arrive in that window, waits up to 5 s for
 * their responses (those that do not come are errors), and prints one line:
 *
 *   openloop rate=R seconds=S sent=N achieved_rps=A short_n=... short_p50_us=
 *            short_p99_us= short_p999_us= short_max_us= long_n= long_p50_us=
 *            long_p99_us= long_max_us= send_lag_p99_us= queued=Q errors=E
 *
 * achieved_rps counts the window's requests answered, per second;
 * send_lag is how late the generator itself sent requests that found an
 * idle connection (its own health: it should be a few µs); queued is how
 * many waited for a connection. One thread, one level-triggered epoll
 * instance, epoll_pwait2 for timeouts finer than a millisecond. Exit status
 * 0, 1 when nothing could be measured, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_NS (5 * 1000000000LL)
#define RBUF 4096

struct conn {
	int fd;
	bool busy;
	bool dead;
	bool long_req;
	int64_t intended; /* the request's arrival, ns */
	size_t rlen;
	char rbuf[RBUF];
};

struct arrival {
	int64_t at;
	bool long_req;
};

/* A growable array of int64_t: latencies and lags. */
struct samples {
	int64_t *v;
	size_t n, cap;
};

static struct {
	const char *connect;
	double rate, long_frac;
	double duration, warmup;
	int conns;
	long short_us, long_us;
	bool fixed;
	unsigned long seed;
} opt = {
	.long_frac = 0.005,
	.duration = 10,
	.warmup = 1,
	.conns = 256,
	.short_us = 4,
	.long_us = 10000,
	.seed = 1,
};

static struct conn *conns;
static int *idle; /* stack of idle connection indexes */
static int nidle;
static struct arrival *queue; /* FIFO of arrivals waiting for a connection (a ring) */
static size_t q_head, q_len, q_cap;
static struct samples lat_short, lat_long, send_lag;
static int64_t win_start, win_end; /* the measured window of arrivals */
static uint64_t sent, queued, errors, inflight_measured, answered;
static char req_short[128], req_long[128];
static size_t req_short_len, req_long_len;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "openloop: %s\n", what);
	exit(1);
}

static void push(struct samples *s, int64_t v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 4096;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			die("out of memory");
	}
	s->v[s->n++] = v;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile of sorted s, in µs. */
static double pct_us(const struct samples *s, double p)
{
	if (!s->n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);

	return (double)s->v[i < s->n ? i : s->n - 1] / 1e3;
}

/* xorshift64*: arrivals and classes, reproducible with --seed. */
static uint64_t rng_state;

static double rng_unit(void) /* in (0, 1] */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return ((double)((rng_state * 2685821657736338717ull) >> 11) + 1.0) / 9007199254740992.0;
}

static int64_t next_gap_ns(void)
{
	double mean = 1e9 / opt.rate;

	return (int64_t)(opt.fixed ? mean : -log(rng_unit()) * mean);
}

static bool in_window(int64_t t)
{
	return t >= win_start && t < win_end;
}

static void conn_fail(struct conn *c)
{
	if (c->busy && in_window(c->intended))
		errors++, inflight_measured--;
	c->busy = false;
	c->dead = true;
	close(c->fd);
}

/* Send arrival a on idle connection i. */
static void send_on(int i, const struct arrival *a)
{
	struct conn *c = &conns[i];
	const char *req = a->long_req ? req_long : req_short;
	size_t len = a->long_req ? req_long_len : req_short_len;
	ssize_t n = send(c->fd, req, len, MSG_NOSIGNAL);

	c->busy = true;
	c->long_req = a->long_req;
	c->intended = a->at;
	c->rlen = 0;
	sent++;
	if (n != (ssize_t)len) /* a 40-byte request on an idle connection always fits */
		conn_fail(c);
}

static void arrive(const struct arrival *a, int64_t now)
{
	if (in_window(a->at))
		inflight_measured++; /* answered, failed, or an error at the end */
	if (nidle) {
		if (in_window(a->at))
			push(&send_lag, now - a->at);
		send_on(idle[--nidle], a);
		return;
	}
	if (q_len == q_cap) {
		size_t cap = q_cap ? 2 * q_cap : 1024;
		struct arrival *bigger = malloc(cap * sizeof(*bigger));

		if (!bigger)
			die("out of memory");
		for (size_t k = 0; k < q_len; k++)
			bigger[k] = queue[(q_head + k) % q_cap];
		free(queue);
		queue = bigger;
		q_head = 0;
		q_cap = cap;
	}
	queue[(q_head + q_len++) % q_cap] = *a;
	queued++;
}

/* Connection i is free again: the oldest queued arrival takes it, or it goes idle. */
static void release(int i)
{
	if (q_len) {
		struct arrival a = queue[q_head];

		q_head = (q_head + 1) % q_cap;
		q_len--;
		send_on(i, &a);
	} else {
		idle[nidle++] = i;
	}
}

/* Is a whole response in c->rbuf? 1 yes (status checked), 0 not yet, -1 malformed. */
static int response_complete(struct conn *c)
{
	char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);

	if (!end)
		return c->rlen == RBUF ? -1 : 0;
	size_t head = (size_t)(end - c->rbuf) + 4;
	long clen = -1;

	for (char *p = c->rbuf; p < end;) {
		char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);

		if (eol - p > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtol(p + 15, NULL, 10);
		p = eol + 2;
	}
	if (clen < 0 || head + (size_t)clen > RBUF)
		return -1;
	if (c->rlen < head + (size_t)clen)
		return 0;
	if (c->rlen > head + (size_t)clen || strncmp(c->rbuf, "HTTP/1.1 200 ", 13) != 0)
		return -1;
	return 1;
}

static void on_readable(int i)
{
	struct conn *c = &conns[i];

	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 || !c->busy) { /* closed, failed, or talking out of turn */
			conn_fail(c);
			return;
		}
		c->rlen += (size_t)n;
		int done = response_complete(c);

		if (done < 0) {
			conn_fail(c);
			return;
		}
		if (done) {
			int64_t now = now_ns();

			if (in_window(c->intended)) {
				push(c->long_req ? &lat_long : &lat_short, now - c->intended);
				inflight_measured--;
				answered++;
			}
			c->busy = false;
			release(i);
			return;
		}
	}
}

static int connect_to(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	int one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: openloop --connect HOST:PORT --rate R [--duration S] [--warmup S]\n"
			"       [--conns N] [--long-frac F] [--short-us U] [--long-us U] [--fixed]\n"
			"       [--seed N]\n");
	exit(2);
}

static void parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"connect", required_argument, NULL, 'c'}, {"rate", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
		{"conns", required_argument, NULL, 'n'}, {"long-frac", required_argument, NULL, 'f'},
		{"short-us", required_argument, NULL, 's'}, {"long-us", required_argument, NULL, 'l'},
		{"fixed", no_argument, NULL, 'F'},	    {"seed", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			opt.connect = optarg;
			break;
		case 'r':
			opt.rate = atof(optarg);
			break;
		case 'd':
			opt.duration = atof(optarg);
			break;
		case 'w':
			opt.warmup = atof(optarg);
			break;
		case 'n':
			opt.conns = atoi(optarg);
			break;
		case 'f':
			opt.long_frac = atof(optarg);
			break;
		case 's':
			opt.short_us = atol(optarg);
			break;
		case 'l':
			opt.long_us = atol(optarg);
			break;
		case 'F':
			opt.fixed = true;
			break;
		case 'S':
			opt.seed = strtoul(optarg, NULL, 0);
			break;
		default:
			usage();
		}
	}
	if (!opt.connect || opt.rate <= 0 || opt.duration <= 0 || opt.warmup < 0 ||
	    opt.conns < 1 || opt.long_frac < 0 || opt.long_frac > 1 || opt.short_us < 0 ||
	    opt.long_us < 0 || optind != argc)
		usage();
}

int main(int argc, char **argv)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	struct epoll_event evs[256];
	struct rlimit rl;
	char host[256];

	parse_options(argc, argv);
	rng_state = opt.seed * 0x9E3779B97F4A7C15ull + 1;
	const char *colon = strrchr(opt.connect, ':');

	if (!colon || (size_t)(colon - opt.connect) >= sizeof(host))
		usage();
	memcpy(host, opt.connect, (size_t)(colon - opt.connect));
	host[colon - opt.connect] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		die("cannot resolve --connect");
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	req_short_len = (size_t)snprintf(req_short, sizeof(req_short),
					 "GET /spin?us=%ld HTTP/1.1\r\nHost: %s\r\n\r\n", opt.short_us,
					 host);
	req_long_len = (size_t)snprintf(req_long, sizeof(req_long),
					"GET /spin?us=%ld HTTP/1.1\r\nHost: %s\r\n\r\n", opt.long_us,
					host);

	int ep = epoll_create1(EPOLL_CLOEXEC);

	conns = calloc((size_t)opt.conns, sizeof(*conns));
	idle = calloc((size_t)opt.conns, sizeof(*idle));
	if (ep < 0 || !conns || !idle)
		die("out of memory");
	for (int i = 0; i < opt.conns; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

		conns[i].fd = connect_to(ai);
		if (conns[i].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
			die("cannot connect");
		idle[nidle++] = i;
	}
	freeaddrinfo(ai);

	int64_t start = now_ns();

	win_start = start + (int64_t)(opt.warmup * 1e9);
	win_end = win_start + (int64_t)(opt.duration * 1e9);
	int64_t next = start + next_gap_ns(), give_up = win_end + DRAIN_NS;

	for (;;) {
		int64_t now = now_ns();

		while (next <= now && next < win_end) {
			struct arrival a = {.at = next, .long_req = rng_unit() <= opt.long_frac};

			arrive(&a, now);
			next += next_gap_ns();
		}
		if ((next >= win_end && inflight_measured == 0) || now >= give_up)
			break;
		int64_t wake = next < win_end ? next : give_up;
		struct timespec ts = {.tv_sec = (wake - now) / 1000000000LL,
				      .tv_nsec = (wake - now) % 1000000000LL};
		int n = epoll_pwait2(ep, evs, 256, &ts, NULL);

		if (n < 0 && errno != EINTR)
			die("epoll_pwait2 failed");
		for (int k = 0; k < n; k++) {
			struct conn *c = &conns[evs[k].data.u32];

			if (!c->dead)
				on_readable((int)evs[k].data.u32);
		}
	}
	errors += inflight_measured; /* never answered */

	if (!lat_short.n && !lat_long.n)
		die("no request answered in the measured window");
	qsort(lat_short.v, lat_short.n, sizeof(int64_t), cmp_i64);
	qsort(lat_long.v, lat_long.n, sizeof(int64_t), cmp_i64);
	qsort(send_lag.v, send_lag.n, sizeof(int64_t), cmp_i64);
	printf("openloop rate=%.0f seconds=%g sent=%llu achieved_rps=%.0f short_n=%zu "
	       "short_p50_us=%.1f short_p99_us=%.1f short_p999_us=%.1f short_max_us=%.1f "
	       "long_n=%zu long_p50_us=%.1f long_p99_us=%.1f long_max_us=%.1f "
	       "send_lag_p99_us=%.1f queued=%llu errors=%llu\n",
	       opt.rate, opt.duration, (unsigned long long)sent, (double)answered / opt.duration,
	       lat_short.n, pct_us(&lat_short, 50), pct_us(&lat_short, 99),
	       pct_us(&lat_short, 99.9), pct_us(&lat_short, 100), lat_long.n,
	       pct_us(&lat_long, 50), pct_us(&lat_long, 99), pct_us(&lat_long, 100),
	       pct_us(&send_lag, 99), (unsigned long long)queued, (unsigned long long)errors);
	return 0;
}
