// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-httpd: an HTTP/1.1 server on ringo, one goroutine per connection.
 *
 *   ringo-httpd --listen HOST:PORT [--root DIR] [--max-conns N]
 *               [--header-timeout MS] [--idle-timeout MS] [--shutdown-timeout MS]
 *
 * GET / answers 200 "hello, world\n" (the benchmark's page); GET /spin?us=N
 * burns N µs of CPU first (spin.c); with --root, other paths are static
 * files under DIR (see files.c); without, 404.
 * Keep-alive and pipelining: every complete request in a read is answered,
 * in order, and the answers go out in one rg_send. HTTP/1.0 closes unless
 * the client asks for keep-alive. Parsing is Node's http_parser (Debian's
 * libhttp-parser-dev).
 *
 * Defences: a request's line and headers must arrive within
 * --header-timeout (default 10 s; slowloris), counted for a new connection
 * from accept; headers over 8 KiB get 431, unparsable requests 400; an idle
 * keep-alive connection closes after --idle-timeout (default 60 s). At most
 * --max-conns connections are served at once (default: no cap but file
 * descriptors): the acceptor waits for a free slot, leaving new connections
 * in the kernel's backlog. When accept fails for want of descriptors or
 * memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) it retries after 5 ms, doubling
 * up to 1 s, as Go's net/http does. A peer that resets the connection makes
 * a send fail with -EPIPE or -ECONNRESET, not a SIGPIPE: ringo ignores
 * SIGPIPE, and sends carry MSG_NOSIGNAL.
 *
 * SIGTERM or SIGINT shuts down gracefully: the listener closes (new
 * connections are refused), idle keep-alive connections close at once,
 * requests in flight finish and their connections close after the
 * response ("Connection: close"). What is still running after
 * --shutdown-timeout (default 5 s), or at a second signal, is cut off.
 * Exit status 0.
 *
 * On start it prints one line, "ringo-httpd listening on HOST:PORT (...)",
 * with the port actually bound (so --listen 127.0.0.1:0 works), and on
 * shutdown "ringo-httpd: shutting down..." then "ringo-httpd: stopped...".
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../listen_addr.h"
#include "httpd.h"

#define ACCEPT_BACKOFF_MIN_NS MS_TO_NS(5)
#define ACCEPT_BACKOFF_MAX_NS MS_TO_NS(1000)

static struct options {
	const char *listen, *root;
	long max_conns;
	long header_timeout_ms, idle_timeout_ms, shutdown_timeout_ms;
} opt = {
	.listen = NULL,
	.header_timeout_ms = 10000,
	.idle_timeout_ms = 60000,
	.shutdown_timeout_ms = 5000,
};

static struct server srv = {.listen_fd = -1, .root_fd = -1};
static int exit_status;

static void usage(void)
{
	fprintf(stderr,
		"usage: " HTTPD_NAME " --listen HOST:PORT [--root DIR] [--max-conns N]\n"
		"       [--header-timeout MS] [--idle-timeout MS] [--shutdown-timeout MS]\n");
	exit(2);
}

static long parse_long(const char *s, long min)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < min) {
		fprintf(stderr, HTTPD_NAME ": bad number %s\n", s);
		usage();
	}
	return v;
}

static void parse_options(int argc, char **argv)
{
	enum {
		OPT_LISTEN = 1,
		OPT_ROOT,
		OPT_MAX_CONNS,
		OPT_HEADER,
		OPT_IDLE,
		OPT_SHUTDOWN
	};
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"root", required_argument, NULL, OPT_ROOT},
		{"max-conns", required_argument, NULL, OPT_MAX_CONNS},
		{"header-timeout", required_argument, NULL, OPT_HEADER},
		{"idle-timeout", required_argument, NULL, OPT_IDLE},
		{"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
		{NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_LISTEN:
			opt.listen = optarg;
			break;
		case OPT_ROOT:
			opt.root = optarg;
			break;
		case OPT_MAX_CONNS:
			opt.max_conns = parse_long(optarg, 0);
			break;
		case OPT_HEADER:
			opt.header_timeout_ms = parse_long(optarg, 1);
			break;
		case OPT_IDLE:
			opt.idle_timeout_ms = parse_long(optarg, 1);
			break;
		case OPT_SHUTDOWN:
			opt.shutdown_timeout_ms = parse_long(optarg, 0);
			break;
		default:
			usage();
		}
	}
	if (!opt.listen || optind != argc)
		usage();
}

/* Errors after which accepting again at once would only fail again. */
static bool out_of_resources(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

/* Sleep ns unless the shutdown starts first; false when it did. */
static bool sleep_unless_shutdown(int64_t ns)
{
	rg_chan *timer = rg_after(ns);
	rg_case cs[] = {RG_RECV(timer, NULL), RG_RECV(rg_ctx_done(srv.graceful), NULL)};
	int which;

	if (!timer) {
		rg_sleep(ns);
		return !rg_ctx_err(srv.graceful);
	}
	which = rg_select(cs, 2, false);
	rg_chan_free(timer);
	return which == 0;
}

/* Take a --max-conns slot, waiting while all are in use; false when the shutdown started. */
static bool take_slot(void)
{
	char token = 0;
	rg_case cs[] = {RG_SEND(srv.slots, &token), RG_RECV(rg_ctx_done(srv.graceful), NULL)};

	return rg_select(cs, 2, false) == 0;
}

static void give_slot(void)
{
	if (srv.slots)
		rg_chan_tryrecv(srv.slots, NULL);
}

static void accept_loop(void *arg)
{
	int64_t backoff = 0;
	bool warned = false;

	for (;;) {
		if (srv.slots && !take_slot())
			break;
		int fd = rg_accept_ctx(srv.graceful, srv.listen_fd, NULL, NULL);

		if (fd < 0) {
			give_slot();
			if (rg_ctx_err(srv.graceful))
				break;
			if (fd == -ECONNABORTED || fd == -EPROTO || fd == -EPERM || fd == -EINTR)
				continue; /* that connection died before we took it; the next may not */
			if (!out_of_resources(fd)) {
				srv.accept_err = fd;
				break;
			}
			backoff = backoff ? backoff * 2 : ACCEPT_BACKOFF_MIN_NS;
			if (backoff > ACCEPT_BACKOFF_MAX_NS)
				backoff = ACCEPT_BACKOFF_MAX_NS;
			if (!warned)
				fprintf(stderr, HTTPD_NAME ": accept: %s; retrying in %lld ms\n",
					strerror(-fd), (long long)(backoff / 1000000));
			warned = true;
			if (!sleep_unless_shutdown(backoff))
				break;
			continue;
		}
		backoff = 0;
		warned = false;

		int one = 1;

		/* As Go does for every TCP connection: a response is never held back waiting for an ACK. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = conn_new(&srv, fd);

		rg_wg_add(&srv.running, 1);
		atomic_fetch_add_explicit(&srv.open_conns, 1, memory_order_relaxed);
		if (!c || rg_go(conn_serve, c) < 0) {
			/* No memory for the connection: drop it, and back off as for EMFILE. */
			if (c)
				conn_free(c);
			rg_close(fd);
			atomic_fetch_sub_explicit(&srv.open_conns, 1, memory_order_relaxed);
			give_slot();
			rg_wg_done(&srv.running);
			backoff = ACCEPT_BACKOFF_MIN_NS;
			if (!sleep_unless_shutdown(backoff))
				break;
		}
	}
	/* Closing the listener is what makes the kernel refuse new connections. */
	rg_close(srv.listen_fd);
	srv.listen_fd = -1;
	rg_chan_close(srv.accept_done);
	rg_wg_done(&srv.running);
}

static void wait_running(void *arg)
{
	rg_wg_wait(&srv.running);
	rg_chan_close(srv.all_done);
}

/* Wait until every connection goroutine ended, at most ns, or (if signals) a signal; true if all did. */
static bool wait_for_conns(int64_t ns, bool signals)
{
	rg_chan *timer = rg_after(ns);
	int signo;
	rg_case cs[] = {RG_RECV(srv.all_done, NULL), RG_RECV(timer, NULL),
			RG_RECV(srv.signals, &signo)};
	int which = rg_select(cs, signals ? 3 : 2, false);

	rg_chan_free(timer);
	return which == 0;
}

static void print_listening(void)
{
	char host[LISTEN_HOST_LEN];
	int port = rg_local_port(srv.listen_fd);

	listen_host(srv.listen_fd, host);
	printf(HTTPD_NAME " listening on %s:%d (%s poller, %d Ps%s%s)\n", host, port,
	       rg_poller_name(), rg_maxprocs(0), opt.root ? ", root " : "",
	       opt.root ? opt.root : "");
	fflush(stdout);
}

static void main_goroutine(void *arg)
{
	static const int stop_signals[] = {SIGTERM, SIGINT};
	int signo = 0, rc;

	/* In srv, not on this stack: goroutines still running at exit may hold them. */
	srv.signals = rg_chan_make(sizeof(int), 2);
	srv.all_done = rg_chan_make(0, 0);

	srv.hard = rg_ctx_with_cancel(rg_ctx_background());
	srv.graceful = srv.hard ? rg_ctx_with_cancel(srv.hard) : NULL;
	srv.accept_done = rg_chan_make(0, 0);
	if (opt.max_conns > 0)
		srv.slots = rg_chan_make(1, (size_t)opt.max_conns);
	if (!srv.signals || !srv.all_done || !srv.graceful || !srv.accept_done ||
	    (opt.max_conns > 0 && !srv.slots)) {
		fprintf(stderr, HTTPD_NAME ": out of memory\n");
		exit_status = 1;
		return;
	}
	rc = rg_signal_notify(srv.signals, stop_signals, 2);
	if (rc < 0) {
		fprintf(stderr, HTTPD_NAME ": rg_signal_notify: %s\n", strerror(-rc));
		exit_status = 1;
		return;
	}
	srv.listen_fd = rg_listen_tcp(opt.listen, 4096);
	if (srv.listen_fd < 0) {
		fprintf(stderr, HTTPD_NAME ": listen on %s: %s\n", opt.listen,
			strerror(-srv.listen_fd));
		exit_status = 1;
		return;
	}
	print_listening();

	rg_wg_add(&srv.running,
		  1); /* the accept loop's; connections add theirs while it holds it */
	rc = rg_go(accept_loop, NULL);
	if (rc < 0) {
		fprintf(stderr, HTTPD_NAME ": cannot start the accept loop: %s\n", strerror(-rc));
		exit_status = 1;
		return;
	}

	rg_case cs[] = {RG_RECV(srv.signals, &signo), RG_RECV(srv.accept_done, NULL)};

	if (rg_select(cs, 2, false) == 0) {
		printf(HTTPD_NAME ": %s: shutting down, %ld connections open\n", strsignal(signo),
		       atomic_load(&srv.open_conns));
	} else {
		fprintf(stderr, HTTPD_NAME ": accept: %s; shutting down\n",
			strerror(-srv.accept_err));
		exit_status = 1;
	}
	fflush(stdout);

	/* Stop accepting and close idle connections; requests in flight go on. */
	atomic_store(&srv.shutting_down, true);
	rg_ctx_cancel(srv.graceful);
	rc = rg_go(wait_running, NULL);
	if (rc == 0 && wait_for_conns(MS_TO_NS(opt.shutdown_timeout_ms), true)) {
		printf(HTTPD_NAME ": stopped\n");
	} else {
		long left = atomic_load(&srv.open_conns);

		/* Cut off what is left; their sends and reads return -ECANCELED at once. */
		rg_ctx_cancel(srv.hard);
		if (rc == 0)
			wait_for_conns(MS_TO_NS(1000), false);
		printf(HTTPD_NAME ": stopped; %ld connections cut off after the shutdown timeout\n",
		       left);
	}
	fflush(stdout);
	rg_signal_stop(srv.signals);
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	int rc;

	parse_options(argc, argv);
	srv.header_timeout = MS_TO_NS(opt.header_timeout_ms);
	srv.idle_timeout = MS_TO_NS(opt.idle_timeout_ms);
	srv.shutdown_timeout = MS_TO_NS(opt.shutdown_timeout_ms);
	srv.max_conns = opt.max_conns;
	if (opt.root) {
		srv.root_fd = open(opt.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (srv.root_fd < 0) {
			fprintf(stderr, HTTPD_NAME ": --root %s: %s\n", opt.root, strerror(errno));
			return 2;
		}
	}
	/* One descriptor per connection: allow as many as the hard limit does (Go does the same). */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	http_parser_setup();
	spin_calibrate();

	rc = rg_run(main_goroutine, NULL);
	if (rc < 0) {
		fprintf(stderr, HTTPD_NAME ": rg_run: %s\n", strerror(-rc));
		return 1;
	}
	return exit_status;
}
