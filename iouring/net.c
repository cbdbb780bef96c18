// SPDX-License-Identifier: BSD-2-Clause
/*
 * TCP conveniences over the public calls: listen on, and dial, a numeric
 * "host:port" (Go's net.Listen and net.Dial for "tcp"). Dialing goes
 * through rg_connect, so it parks the goroutine under either poller.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringo.h"

/* Long enough for any numeric IPv6 address with a %zone. */
#define HOST_MAX 128

/*
 * Split "host:port", "[v6]:port" or ":port" (Go's SplitHostPort); host is
 * empty for none. A bare IPv6 address must be bracketed. 0 or -EINVAL.
 */
static int split_host_port(const char *hp, char *host, char *port)
{
	const char *h, *hend, *p;
	size_t hl, pl;

	if (!hp)
		return -EINVAL;
	if (hp[0] == '[') {
		h = hp + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		p = hend + 2;
	} else {
		hend = strrchr(hp, ':');
		if (!hend)
			return -EINVAL;
		h = hp;
		p = hend + 1;
		if (memchr(h, ':', (size_t)(hend - h)))
			return -EINVAL;
	}
	hl = (size_t)(hend - h);
	pl = strlen(p);
	if (hl >= HOST_MAX || memchr(h, '[', hl) || memchr(h, ']', hl) || pl == 0 || pl > 5)
		return -EINVAL;
	for (size_t i = 0; i < pl; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
	}
	if (atoi(p) > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, p, pl + 1);
	return 0;
}

static int gai_errno(int r)
{
	switch (r) {
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return errno ? -errno : -EINVAL;
	default:
		return -EINVAL; /* not a numeric address, or a family we cannot use */
	}
}

static int resolve(const char *host_port, int flags, struct addrinfo **res, bool *any)
{
	char host[HOST_MAX], port[6];
	struct addrinfo hints = {
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | flags,
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_protocol = IPPROTO_TCP,
	};
	int r = split_host_port(host_port, host, port);

	if (r)
		return r;
	*any = !host[0];
	/* No host: the wildcard addresses to listen, the loopback ones to dial (as Go). */
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
	return r ? gai_errno(r) : 0;
}

static int listen_on(const struct addrinfo *ai, int backlog, bool dual_stack)
{
	int one = 1, zero = 0;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);

	if (fd < 0)
		return -errno;
	/* One socket for both families on ":port", when IPv6 is there at all. */
	if (dual_stack)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int rg_listen_tcp(const char *host_port, int backlog)
{
	struct addrinfo *res, *ai;
	int saved = errno, r;
	bool any;

	r = resolve(host_port, AI_PASSIVE, &res, &any);
	if (r) {
		errno = saved;
		return r;
	}
	r = -EADDRNOTAVAIL;
	/* For ":port" IPv6 (dual-stack) first, then IPv4 where IPv6 is missing. */
	for (int pass = any ? 0 : 1; pass < 2 && r < 0; pass++) {
		for (ai = res; ai && r < 0; ai = ai->ai_next) {
			if (pass == 0 && ai->ai_family != AF_INET6)
				continue;
			r = listen_on(ai, backlog, pass == 0);
		}
	}
	freeaddrinfo(res);
	errno = saved;
	return r;
}

/* Connect fd to ai; 0 or -errno. Outside a goroutine rg_connect is the plain call. */
static int connect_to(rg_ctx *ctx, int fd, const struct addrinfo *ai)
{
	int r = ctx ? rg_connect_ctx(ctx, fd, ai->ai_addr, ai->ai_addrlen) :
		      rg_connect(fd, ai->ai_addr, ai->ai_addrlen);
	int soerr;
	socklen_t len = sizeof(soerr);

	if (r != -EINPROGRESS)
		return r;
	/* Only a plain (non-goroutine) call says EINPROGRESS: wait for it here. */
	r = ctx ? rg_poll_fd_ctx(ctx, fd, POLLOUT) : rg_poll_fd(fd, POLLOUT);
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return -soerr;
}

int rg_dial_tcp_ctx(rg_ctx *ctx, const char *host_port)
{
	struct addrinfo *res, *ai;
	int saved = errno, one = 1, r;
	bool any;

	r = resolve(host_port, 0, &res, &any);
	if (r) {
		errno = saved;
		return r;
	}
	r = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);

		if (fd < 0) {
			r = -errno;
			continue;
		}
		r = connect_to(ctx, fd, ai);
		if (r == 0) {
			/* Small writes go out at once, as Go's default. */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			r = fd;
			break;
		}
		close(fd);
		/* A cancelled dial does not go on to the next address. */
		if (ctx && rg_ctx_err(ctx))
			break;
	}
	freeaddrinfo(res);
	errno = saved;
	return r;
}

int rg_dial_tcp(const char *host_port)
{
	return rg_dial_tcp_ctx(NULL, host_port);
}

int rg_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int saved = errno, r;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		r = -errno;
	else if (ss.ss_family == AF_INET)
		r = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		r = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		r = -EAFNOSUPPORT;
	errno = saved;
	return r;
}
