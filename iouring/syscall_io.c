// SPDX-License-Identifier: BSD-2-Clause
/*
 * Any rg_io_req as the plain, blocking system call on the calling thread:
 * for callers outside goroutines, and for the epoll backend's regular files
 * (which epoll cannot wait for).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "poller.h"

static int64_t ret(ssize_t r)
{
	return r < 0 ? -errno : r;
}

/*
 * A connect interrupted by a signal goes on in the background; calling it
 * again would say EALREADY. Wait for it to finish instead, as Go does.
 */
static int64_t connect_finish(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	while (poll(&p, 1, -1) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return soerr == EISCONN ? 0 : -soerr;
}

static int64_t once(const struct rg_io_req *r)
{
	struct pollfd p;

	switch (r->op) {
	case RG_IO_READ:
		return ret(r->off == -1 ? read(r->fd, r->buf, r->len) :
					  pread(r->fd, r->buf, r->len, r->off));
	case RG_IO_WRITE:
		return ret(r->off == -1 ? write(r->fd, r->cbuf, r->len) :
					  pwrite(r->fd, r->cbuf, r->len, r->off));
	case RG_IO_READV:
		if (r->len > INT_MAX)
			return -EINVAL;
		return ret(r->off == -1 ? readv(r->fd, r->iov, (int)r->len) :
					  preadv(r->fd, r->iov, (int)r->len, r->off));
	case RG_IO_WRITEV:
		if (r->len > INT_MAX)
			return -EINVAL;
		return ret(r->off == -1 ? writev(r->fd, r->iov, (int)r->len) :
					  pwritev(r->fd, r->iov, (int)r->len, r->off));
	case RG_IO_RECV:
		return ret(recv(r->fd, r->buf, r->len, r->flags));
	case RG_IO_SEND:
		return ret(send(r->fd, r->cbuf, r->len, r->flags | MSG_NOSIGNAL));
	case RG_IO_RECVMSG:
		return ret(recvmsg(r->fd, r->msg, r->flags));
	case RG_IO_SENDMSG:
		return ret(sendmsg(r->fd, r->cmsg, r->flags | MSG_NOSIGNAL));
	case RG_IO_ACCEPT:
		return ret(accept4(r->fd, r->addr, r->addrlen, SOCK_CLOEXEC));
	case RG_IO_CONNECT:
		if (connect(r->fd, r->caddr, (socklen_t)r->len) == 0)
			return 0;
		return errno == EINTR ? connect_finish(r->fd) : -errno;
	case RG_IO_OPENAT:
		return ret(openat(r->fd, r->path, r->flags, r->mode));
	case RG_IO_CLOSE:
		/* Linux frees the descriptor even when close says EINTR: never retry it. */
		return close(r->fd) < 0 && errno != EINTR ? -errno : 0;
	case RG_IO_FSYNC:
		return ret(fsync(r->fd));
	case RG_IO_NOP:
		return 0;
	case RG_IO_POLL:
		p = (struct pollfd){.fd = r->fd, .events = (short)r->flags};
		if (poll(&p, 1, -1) < 0)
			return -errno;
		return p.revents;
	default:
		return -EINVAL;
	}
}

int64_t rg_io_syscall(const struct rg_io_req *req)
{
	int saved = errno;
	int64_t r;

	if (!req)
		return -EINVAL;
	do {
		r = once(req);
	} while (r == -EINTR);
	errno = saved;
	return r;
}
