// SPDX-License-Identifier: BSD-2-Clause
/*
 * echo-load: the load generator of bench/net/run's echo benchmark.
 *
 *   echo-load --connect HOST:PORT [--conns N] [--size BYTES] [--duration S]
 *             [--warmup S] [--threads T]
 *
 * Opens N connections (default 1); each is a closed loop: send one message
 * of BYTES (default 64), wait until all of it has come back (and check it),
 * send the next. After the warm-up (default 1 s) it counts, for S seconds
 * (default 5), the round trips that complete and their times, then prints
 * one line:
 *
 *   echo-load conns=N size=B threads=T seconds=S messages=M msgs_per_sec=R
 *             p50_us=X p99_us=Y p999_us=Z max_us=W errors=E
 *
 * Round-trip times go into a log-linear histogram (HDR-style: 64 linear
 * buckets per power of two, so a percentile is within 1.6%). Each of the T
 * threads (default 1) runs its share of the connections with its own
 * level-triggered epoll instance and its own histogram. Exit status 0, or 1
 * when no connection could be made or every connection failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Log-linear histogram of nanoseconds: values below 2^SUB_BITS exact, then 2^(SUB_BITS-1) per octave. */
#define SUB_BITS 7
#define SUB_HALF (1u << (SUB_BITS - 1))
#define HIST_BUCKETS ((64 - SUB_BITS + 1) * SUB_HALF + SUB_HALF)

struct histogram {
	uint64_t count[HIST_BUCKETS];
	uint64_t total, max;
};

static unsigned hist_index(uint64_t v)
{
	if (v < (1u << SUB_BITS))
		return (unsigned)v;
	unsigned msb = 63 - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - SUB_BITS + 1;

	return shift * SUB_HALF + (unsigned)(v >> shift);
}

/* The middle of bucket i's range of values. */
static double hist_value(unsigned i)
{
	if (i < (1u << SUB_BITS))
		return i;
	unsigned shift = i / SUB_HALF - 1;
	uint64_t sub = i % SUB_HALF + SUB_HALF;

	return ((double)(sub << shift) + (double)((sub + 1) << shift) - 1) / 2;
}

static void hist_record(struct histogram *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->total++;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct histogram *into, const struct histogram *h)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->count[i] += h->count[i];
	into->total += h->total;
	if (h->max > into->max)
		into->max = h->max;
}

/* The value below which a fraction q of the samples lie. */
static double hist_quantile(const struct histogram *h, double q)
{
	uint64_t rank = (uint64_t)(q * (double)h->total + 0.5), seen = 0;

	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= rank)
			return hist_value(i);
	}
	return (double)h->max;
}

struct conn {
	int fd;
	bool writing; /* EPOLLOUT armed: the message did not fit in one send */
	size_t sent, received;
	uint64_t started; /* when the current message's first byte was sent */
	unsigned char *rbuf;
};

struct worker {
	pthread_t thread;
	struct conn *conns;
	size_t nconns;
	int epfd;
	struct histogram hist;
	uint64_t errors;
};

static struct {
	size_t size; /* message bytes */
	unsigned char *message;
	uint64_t measure_from, measure_until; /* CLOCK_MONOTONIC ns */
} load;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: echo-load --connect HOST:PORT [--conns N] [--size BYTES] "
			"[--duration S] [--warmup S] [--threads T]\n");
	exit(2);
}

/* A connected, non-blocking TCP socket with TCP_NODELAY, or -1. */
static int dial(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void conn_fail(struct worker *w, struct conn *c, const char *why)
{
	if (c->fd < 0)
		return;
	if (w->errors++ < 3)
		fprintf(stderr, "echo-load: connection %d: %s\n", c->fd, why);
	close(c->fd);
	c->fd = -1;
}

static void set_interest(struct worker *w, struct conn *c, bool writing)
{
	/* Keep reading while writing: a large message echoes back before it is all sent. */
	struct epoll_event ev = {.events = EPOLLIN | (writing ? EPOLLOUT : 0), .data.ptr = c};

	if (c->writing != writing && !epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev))
		c->writing = writing;
}

/* Send what is left of the current message; false when the connection failed. */
static bool conn_send(struct worker *w, struct conn *c)
{
	while (c->sent < load.size) {
		ssize_t n = send(c->fd, load.message + c->sent, load.size - c->sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_interest(w, c, true);
				return true;
			}
			conn_fail(w, c, strerror(errno));
			return false;
		}
		c->sent += (size_t)n;
	}
	set_interest(w, c, false);
	return true;
}

static void conn_start_message(struct worker *w, struct conn *c)
{
	c->sent = c->received = 0;
	c->started = now_ns();
	conn_send(w, c);
}

/* Read what has arrived; at a full echo, record it and send the next message. */
static void conn_receive(struct worker *w, struct conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf + c->received, load.size - c->received, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_fail(w, c, strerror(errno));
			return;
		}
		if (n == 0) {
			conn_fail(w, c, "closed by the server");
			return;
		}
		c->received += (size_t)n;
		if (c->received < load.size)
			continue;
		uint64_t done = now_ns();

		if (memcmp(c->rbuf, load.message, load.size)) {
			conn_fail(w, c, "echo differs from what was sent");
			return;
		}
		if (done >= load.measure_from && done < load.measure_until)
			hist_record(&w->hist, done - c->started);
		conn_start_message(w, c);
		return; /* level-triggered: the next reply is the next event */
	}
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event events[256];
	size_t alive = 0;

	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0) {
		perror("echo-load: epoll_create1");
		exit(1);
	}
	for (size_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev)) {
			conn_fail(w, c, strerror(errno));
			continue;
		}
		conn_start_message(w, c);
	}
	for (;;) {
		uint64_t now = now_ns();

		if (now >= load.measure_until)
			break;
		int timeout_ms = (int)((load.measure_until - now) / 1000000u) + 1;
		int n = epoll_wait(w->epfd, events, 256, timeout_ms);

		for (int i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;

			if (c->fd < 0)
				continue;
			if ((events[i].events & EPOLLOUT) && c->writing)
				conn_send(w, c);
			if (c->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				conn_receive(w, c);
		}
	}
	for (size_t i = 0; i < w->nconns; i++) {
		if (w->conns[i].fd >= 0) {
			alive++;
			close(w->conns[i].fd);
		}
	}
	close(w->epfd);
	return (void *)(uintptr_t)alive;
}

static double parse_seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v < 0)
		usage();
	return v;
}

static long parse_count(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v <= 0)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	const char *target = NULL;
	long nconns = 1, nthreads = 1;
	double duration = 5, warmup = 1;
	struct rlimit rl;

	load.size = 64;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			usage();
		i++;
		if (!strcmp(opt, "--connect"))
			target = val;
		else if (!strcmp(opt, "--conns"))
			nconns = parse_count(val);
		else if (!strcmp(opt, "--size"))
			load.size = (size_t)parse_count(val);
		else if (!strcmp(opt, "--duration"))
			duration = parse_seconds(val);
		else if (!strcmp(opt, "--warmup"))
			warmup = parse_seconds(val);
		else if (!strcmp(opt, "--threads"))
			nthreads = parse_count(val);
		else
			usage();
	}
	if (!target || duration <= 0)
		usage();
	if (nthreads > nconns)
		nthreads = nconns;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);

	char host[256];
	const char *colon = strrchr(target, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai;

	if (!colon || colon == target || (size_t)(colon - target) >= sizeof(host))
		usage();
	size_t host_len = (size_t)(colon - target);

	memcpy(host, target, host_len);
	host[host_len] = '\0';
	if (host[0] == '[' && host[host_len - 1] == ']') {
		memmove(host, host + 1, host_len - 2);
		host[host_len - 2] = '\0';
	}
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);

	if (rc) {
		fprintf(stderr, "echo-load: %s: %s\n", target, gai_strerror(rc));
		return 1;
	}

	load.message = malloc(load.size);
	struct conn *conns = calloc((size_t)nconns, sizeof(*conns));
	struct worker *workers = calloc((size_t)nthreads, sizeof(*workers));
	unsigned char *rbufs = malloc(load.size * (size_t)nconns);

	if (!load.message || !conns || !workers || !rbufs) {
		fprintf(stderr, "echo-load: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < load.size; i++)
		load.message[i] = (unsigned char)('a' + i % 26);
	for (long i = 0; i < nconns; i++) {
		conns[i].fd = dial(ai);
		if (conns[i].fd < 0) {
			fprintf(stderr, "echo-load: connection %ld of %ld to %s: %s\n", i + 1,
				nconns, target, strerror(errno));
			return 1;
		}
		conns[i].rbuf = rbufs + (size_t)i * load.size;
	}
	freeaddrinfo(ai);

	uint64_t start = now_ns();

	load.measure_from = start + (uint64_t)(warmup * 1e9);
	load.measure_until = load.measure_from + (uint64_t)(duration * 1e9);
	/* Contiguous shares: thread t gets connections [t*N/T, (t+1)*N/T). */
	for (long t = 0; t < nthreads; t++) {
		size_t lo = (size_t)(t * nconns / nthreads),
		       hi = (size_t)((t + 1) * nconns / nthreads);

		workers[t].conns = conns + lo;
		workers[t].nconns = hi - lo;
		if (pthread_create(&workers[t].thread, NULL, worker_run, &workers[t])) {
			fprintf(stderr, "echo-load: cannot start thread %ld\n", t);
			return 1;
		}
	}

	struct histogram *all = calloc(1, sizeof(*all));
	uint64_t errors = 0, alive = 0;

	for (long t = 0; t < nthreads; t++) {
		void *ret;

		pthread_join(workers[t].thread, &ret);
		alive += (uintptr_t)ret;
		hist_merge(all, &workers[t].hist);
		errors += workers[t].errors;
	}
	printf("echo-load conns=%ld size=%zu threads=%ld seconds=%.2f messages=%llu "
	       "msgs_per_sec=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu\n",
	       nconns, load.size, nthreads, duration, (unsigned long long)all->total,
	       (double)all->total / duration, hist_quantile(all, 0.50) / 1e3,
	       hist_quantile(all, 0.99) / 1e3, hist_quantile(all, 0.999) / 1e3,
	       (double)all->max / 1e3, (unsigned long long)errors);
	return alive ? 0 : 1;
}
