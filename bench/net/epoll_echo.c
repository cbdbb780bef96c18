// SPDX-License-Identifier: BSD-2-Clause
/*
 * epoll-echo: the hand-written C baseline for bench/net/run's echo benchmark.
 * One thread, one epoll instance, edge-triggered, non-blocking sockets: what
 * a C programmer writes when every cycle counts, and what ringo-echo's
 * goroutine-per-connection code is measured against.
 *
 *   epoll-echo [--listen HOST:PORT]      (default 127.0.0.1:0)
 *
 * Prints "epoll-echo listening on HOST:PORT" once bound; exits 0 on SIGTERM
 * or SIGINT (read from a signalfd in the same loop).
 *
 * Edge-triggered means an event is reported once per change, so every
 * handler must go on until the kernel says EAGAIN, on the read side or the
 * write side, or it would never hear about that socket again. A connection
 * whose peer does not read keeps its unsent bytes and stops reading (back
 * pressure) until EPOLLOUT says there is room.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)
#define MAX_EVENTS 256

struct conn {
	int fd;
	size_t pending_off, pending_len; /* bytes of buf read but not yet echoed */
	char buf[BUF_SIZE];
};

/* epoll_event.data.ptr for the listener and the signalfd; connections use their struct conn. */
static char listener_tag, signal_tag;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* Bind and listen on "host:port" ("[v6]:port" and ":port" too); the fd. */
static int listen_on(const char *host_port)
{
	char host[256];
	const char *colon = strrchr(host_port, ':');
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai;
	size_t host_len;
	int fd, one = 1, rc;

	if (!colon || (size_t)(colon - host_port) >= sizeof(host)) {
		fprintf(stderr, "epoll-echo: bad address %s (want HOST:PORT)\n", host_port);
		exit(2);
	}
	host_len = (size_t)(colon - host_port);
	memcpy(host, host_port, host_len);
	host[host_len] = '\0';
	if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
		memmove(host, host + 1, host_len - 2);
		host[host_len - 2] = '\0';
	}
	rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (rc) {
		fprintf(stderr, "epoll-echo: %s: %s\n", host_port, gai_strerror(rc));
		exit(2);
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, SOMAXCONN))
		die("bind/listen");
	freeaddrinfo(ai);
	return fd;
}

static void print_bound(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	int port;

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		die("getsockname");
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		printf("epoll-echo listening on [%s]:%d\n", host, port);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		printf("epoll-echo listening on %s:%d\n", host, port);
	}
	fflush(stdout);
}

static void conn_close(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
	free(c);
}

/*
 * Echo until the socket has nothing more to read (EAGAIN), or no room to
 * write (EAGAIN on send: wait for EPOLLOUT). Returns false when the
 * connection is finished (EOF or error) and must be closed.
 */
static bool conn_serve(struct conn *c)
{
	for (;;) {
		while (c->pending_len) {
			ssize_t n = send(c->fd, c->buf + c->pending_off, c->pending_len,
					 MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				return errno == EAGAIN; /* wait for EPOLLOUT, or a dead peer */
			}
			c->pending_off += (size_t)n;
			c->pending_len -= (size_t)n;
		}
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN;
		}
		if (n == 0)
			return false;
		c->pending_off = 0;
		c->pending_len = (size_t)n;
	}
}

static void accept_all(int epfd, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				perror("epoll-echo: accept"); /* EMFILE: retried at the next edge */
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = malloc(sizeof(*c));

		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->pending_off = c->pending_len = 0;
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
					 .data.ptr = c};

		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
			perror("epoll-echo: epoll_ctl");
			conn_close(c);
			continue;
		}
		/* Data may have arrived before the socket joined the set: no edge would report it. */
		if (!conn_serve(c))
			conn_close(c);
	}
}

int main(int argc, char **argv)
{
	const char *listen_addr = "127.0.0.1:0";
	struct epoll_event events[MAX_EVENTS];
	struct rlimit rl;
	sigset_t sigs;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
			listen_addr = argv[++i];
		} else {
			fprintf(stderr, "usage: epoll-echo [--listen HOST:PORT]\n");
			return 2;
		}
	}
	/* Thousands of connections need thousands of descriptors. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	int lfd = listen_on(listen_addr);
	int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (sfd < 0 || epfd < 0)
		die("signalfd/epoll_create1");
	struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
	struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &signal_tag};

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) || epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &sev))
		die("epoll_ctl");
	print_bound(lfd);

	for (;;) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			void *tag = events[i].data.ptr;

			if (tag == &listener_tag) {
				accept_all(epfd, lfd);
			} else if (tag == &signal_tag) {
				return 0; /* the kernel closes every connection */
			} else {
				struct conn *c = tag;

				if (!conn_serve(c))
					conn_close(c);
			}
		}
	}
}
