// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-echo: a TCP echo server, one goroutine per connection, written the
 * way a Go programmer writes one: accept in a loop, `go serve(conn)`, and
 * each connection a plain read/write loop that parks its goroutine, never a
 * thread.
 *
 *   ringo-echo [--listen HOST:PORT]          (default 127.0.0.1:0)
 *
 * Prints "ringo-echo listening on HOST:PORT (...)" once bound (port 0 picks
 * a free port and prints it). SIGTERM or SIGINT, delivered as a channel
 * value (rg_signal_notify) next to the accept loop's in an rg_select, shuts
 * it down: one context cancellation ends the accept and every connection's
 * pending read, the main goroutine waits for the connections to close (at
 * most 5 s) and the process exits 0.
 */
#include <ringo.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "listen_addr.h"

#define ECHO_BUF (16 * 1024)
#define SHUTDOWN_WAIT_NS (5000 * 1000000LL)

static struct {
	const char *listen;
	int listen_fd;
	rg_ctx *ctx;	      /* cancelled at shutdown: the accept and every read */
	rg_wg running;	      /* the accept loop and the connections */
	rg_chan *accept_done; /* closed when the accept loop ends */
	rg_chan *signals;     /* SIGTERM and SIGINT */
	rg_chan *all_done;    /* closed when everything in running ended */
	int accept_err;
	atomic_long open_conns;
	int status;
} echo = {.listen = "127.0.0.1:0", .listen_fd = -1};

/* Send all of buf; false when the peer is gone (or the shutdown came). */
static bool send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = rg_send_ctx(echo.ctx, fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static void serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	/* On the heap, not the goroutine's stack: RINGO_STACK_SIZE may be as small as 16 KiB. */
	char *buf = malloc(ECHO_BUF);

	while (buf) {
		ssize_t n = rg_recv_ctx(echo.ctx, fd, buf, ECHO_BUF, 0);

		if (n <= 0 || !send_all(fd, buf, (size_t)n))
			break; /* EOF, reset, or shutdown */
	}
	free(buf);
	rg_close(fd);
	atomic_fetch_sub(&echo.open_conns, 1);
	rg_wg_done(&echo.running);
}

static void accept_loop(void *arg)
{
	for (;;) {
		int fd = rg_accept_ctx(echo.ctx, echo.listen_fd, NULL, NULL), one = 1;

		if (fd < 0) {
			if (rg_ctx_err(echo.ctx))
				break;
			if (fd == -ECONNABORTED || fd == -EPROTO)
				continue;
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				rg_sleep(10 * 1000000); /* wait for descriptors to be freed */
				continue;
			}
			echo.accept_err = fd;
			break;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		rg_wg_add(&echo.running, 1);
		atomic_fetch_add(&echo.open_conns, 1);
		if (rg_go(serve_conn, (void *)(intptr_t)fd) < 0) {
			rg_close(fd);
			atomic_fetch_sub(&echo.open_conns, 1);
			rg_wg_done(&echo.running);
		}
	}
	rg_close(echo.listen_fd);
	rg_chan_close(echo.accept_done);
	rg_wg_done(&echo.running);
}

static void wait_running(void *arg)
{
	rg_wg_wait(&echo.running);
	rg_chan_close(echo.all_done);
}

static void print_listening(void)
{
	char host[LISTEN_HOST_LEN];

	listen_host(echo.listen_fd, host);
	printf("ringo-echo listening on %s:%d (%s poller, %d Ps)\n", host,
	       rg_local_port(echo.listen_fd), rg_poller_name(), rg_maxprocs(0));
	fflush(stdout);
}

static void main_goroutine(void *arg)
{
	static const int stop_signals[] = {SIGTERM, SIGINT};
	int signo = 0, rc;

	/* Globals, not locals: goroutines still running at exit may hold them. */
	echo.signals = rg_chan_make(sizeof(int), 2);
	echo.all_done = rg_chan_make(0, 0);
	echo.ctx = rg_ctx_with_cancel(rg_ctx_background());
	echo.accept_done = rg_chan_make(0, 0);
	if (!echo.signals || !echo.all_done || !echo.ctx || !echo.accept_done) {
		fprintf(stderr, "ringo-echo: out of memory\n");
		echo.status = 1;
		return;
	}
	rc = rg_signal_notify(echo.signals, stop_signals, 2);
	if (rc < 0) {
		fprintf(stderr, "ringo-echo: rg_signal_notify: %s\n", strerror(-rc));
		echo.status = 1;
		return;
	}
	echo.listen_fd = rg_listen_tcp(echo.listen, 4096);
	if (echo.listen_fd < 0) {
		fprintf(stderr, "ringo-echo: listen on %s: %s\n", echo.listen,
			strerror(-echo.listen_fd));
		echo.status = 1;
		return;
	}
	print_listening();
	rg_wg_add(&echo.running, 1);
	if (rg_go(accept_loop, NULL) < 0) {
		fprintf(stderr, "ringo-echo: cannot start the accept loop\n");
		echo.status = 1;
		return;
	}

	rg_case stop[] = {RG_RECV(echo.signals, &signo), RG_RECV(echo.accept_done, NULL)};

	if (rg_select(stop, 2, false) == 0) {
		printf("ringo-echo: %s: shutting down, %ld connections open\n", strsignal(signo),
		       atomic_load(&echo.open_conns));
	} else {
		fprintf(stderr, "ringo-echo: accept: %s\n", strerror(-echo.accept_err));
		echo.status = 1;
	}
	fflush(stdout);
	rg_ctx_cancel(echo.ctx);

	rg_chan *timer = rg_after(SHUTDOWN_WAIT_NS);
	rg_case wait[] = {RG_RECV(echo.all_done, NULL), RG_RECV(timer, NULL)};

	if (rg_go(wait_running, NULL) == 0 && rg_select(wait, 2, false) == 0)
		printf("ringo-echo: stopped\n");
	else
		printf("ringo-echo: stopped; connections still closing after 5 s\n");
	fflush(stdout);
	rg_chan_free(timer);
	rg_signal_stop(echo.signals);
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
			echo.listen = argv[++i];
		} else {
			fprintf(stderr, "usage: ringo-echo [--listen HOST:PORT]\n");
			return 2;
		}
	}
	/* A descriptor per connection: allow as many as the hard limit does, as Go does. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	rc = rg_run(main_goroutine, NULL);
	if (rc < 0) {
		fprintf(stderr, "ringo-echo: rg_run: %s\n", strerror(-rc));
		return 1;
	}
	return echo.status;
}
