// SPDX-License-Identifier: BSD-2-Clause
/*
 * The public goroutine-blocking I/O calls: each describes its operation as a
 * struct rg_io_req and hands it to the poller, or to the plain system call
 * outside a goroutine.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>

#include "poller.h"
#include "runtime.h"

/* Linux caps one read or write at MAX_RW_COUNT; a larger request is a short one. */
#define MAX_RW_COUNT ((size_t)INT_MAX & ~(size_t)4095)

static size_t rw_len(size_t n)
{
	return n > MAX_RW_COUNT ? MAX_RW_COUNT : n;
}

static int64_t io_do(const struct rg_io_req *req, rg_ctx *ctx)
{
	struct rg_g *g = rg_getg();

	if (!g)
		return rg_io_syscall(req);
	struct rg_poller *pl = rg_poller_get(g->sched);
	if (!pl) {
		/* No poller at all (no memory for one): block this thread, but let the P go. */
		rg_syscall_enter();
		int64_t r = rg_io_syscall(req);
		rg_syscall_exit();
		return r;
	}
	return pl->ops->io(pl, req, ctx);
}

ssize_t rg_read_ctx(rg_ctx *ctx, int fd, void *buf, size_t n)
{
	struct rg_io_req r = {.op = RG_IO_READ, .fd = fd, .buf = buf, .len = rw_len(n), .off = -1};

	return io_do(&r, ctx);
}

ssize_t rg_write_ctx(rg_ctx *ctx, int fd, const void *buf, size_t n)
{
	struct rg_io_req r = {.op = RG_IO_WRITE, .fd = fd, .cbuf = buf, .len = rw_len(n), .off = -1};

	return io_do(&r, ctx);
}

ssize_t rg_readv_ctx(rg_ctx *ctx, int fd, const struct iovec *iov, int iovcnt)
{
	struct rg_io_req r = {.op = RG_IO_READV, .fd = fd, .iov = iov, .len = (size_t)iovcnt, .off = -1};

	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	return io_do(&r, ctx);
}

ssize_t rg_writev_ctx(rg_ctx *ctx, int fd, const struct iovec *iov, int iovcnt)
{
	struct rg_io_req r = {.op = RG_IO_WRITEV, .fd = fd, .iov = iov, .len = (size_t)iovcnt, .off = -1};

	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	return io_do(&r, ctx);
}

ssize_t rg_pread_ctx(rg_ctx *ctx, int fd, void *buf, size_t n, off_t offset)
{
	struct rg_io_req r = {.op = RG_IO_READ, .fd = fd, .buf = buf, .len = rw_len(n), .off = offset};

	if (offset < 0)
		return -EINVAL;
	return io_do(&r, ctx);
}

ssize_t rg_pwrite_ctx(rg_ctx *ctx, int fd, const void *buf, size_t n, off_t offset)
{
	struct rg_io_req r = {.op = RG_IO_WRITE, .fd = fd, .cbuf = buf, .len = rw_len(n), .off = offset};

	if (offset < 0)
		return -EINVAL;
	return io_do(&r, ctx);
}

ssize_t rg_recv_ctx(rg_ctx *ctx, int fd, void *buf, size_t n, int flags)
{
	struct rg_io_req r = {.op = RG_IO_RECV, .fd = fd, .buf = buf, .len = rw_len(n), .flags = flags};

	return io_do(&r, ctx);
}

ssize_t rg_send_ctx(rg_ctx *ctx, int fd, const void *buf, size_t n, int flags)
{
	struct rg_io_req r = {.op = RG_IO_SEND, .fd = fd, .cbuf = buf, .len = rw_len(n), .flags = flags};

	return io_do(&r, ctx);
}

ssize_t rg_recvmsg_ctx(rg_ctx *ctx, int fd, struct msghdr *msg, int flags)
{
	struct rg_io_req r = {.op = RG_IO_RECVMSG, .fd = fd, .msg = msg, .flags = flags};

	if (!msg)
		return -EINVAL;
	return io_do(&r, ctx);
}

ssize_t rg_sendmsg_ctx(rg_ctx *ctx, int fd, const struct msghdr *msg, int flags)
{
	struct rg_io_req r = {.op = RG_IO_SENDMSG, .fd = fd, .cmsg = msg, .flags = flags};

	if (!msg)
		return -EINVAL;
	return io_do(&r, ctx);
}

int rg_accept_ctx(rg_ctx *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	struct rg_io_req r = {.op = RG_IO_ACCEPT, .fd = fd, .addr = addr, .addrlen = addrlen};

	if (!addr != !addrlen)
		return -EINVAL;
	return (int)io_do(&r, ctx);
}

int rg_connect_ctx(rg_ctx *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	struct rg_io_req r = {.op = RG_IO_CONNECT, .fd = fd, .caddr = addr, .len = addrlen};

	if (!addr)
		return -EINVAL;
	return (int)io_do(&r, ctx);
}

int rg_openat_ctx(rg_ctx *ctx, int dirfd, const char *path, int flags, mode_t mode)
{
	struct rg_io_req r = {
		.op = RG_IO_OPENAT, .fd = dirfd, .path = path, .flags = flags, .mode = mode};

	if (!path)
		return -EINVAL;
	return (int)io_do(&r, ctx);
}

int rg_fsync_ctx(rg_ctx *ctx, int fd)
{
	struct rg_io_req r = {.op = RG_IO_FSYNC, .fd = fd};

	return (int)io_do(&r, ctx);
}

int rg_io_nop(void)
{
	struct rg_io_req r = {.op = RG_IO_NOP, .fd = -1};

	return (int)io_do(&r, NULL);
}

int rg_poll_fd_ctx(rg_ctx *ctx, int fd, short events)
{
	struct rg_io_req r = {.op = RG_IO_POLL, .fd = fd, .flags = (unsigned short)events};

	if (fd < 0)
		return -EBADF;
	return (int)io_do(&r, ctx);
}

int rg_close(int fd)
{
	struct rg_io_req r = {.op = RG_IO_CLOSE, .fd = fd};

	/* No context: a close must not be abandoned half-way. */
	return (int)io_do(&r, NULL);
}

/* The context-free forms. */

ssize_t rg_read(int fd, void *buf, size_t n)
{
	return rg_read_ctx(NULL, fd, buf, n);
}

ssize_t rg_write(int fd, const void *buf, size_t n)
{
	return rg_write_ctx(NULL, fd, buf, n);
}

ssize_t rg_readv(int fd, const struct iovec *iov, int iovcnt)
{
	return rg_readv_ctx(NULL, fd, iov, iovcnt);
}

ssize_t rg_writev(int fd, const struct iovec *iov, int iovcnt)
{
	return rg_writev_ctx(NULL, fd, iov, iovcnt);
}

ssize_t rg_pread(int fd, void *buf, size_t n, off_t offset)
{
	return rg_pread_ctx(NULL, fd, buf, n, offset);
}

ssize_t rg_pwrite(int fd, const void *buf, size_t n, off_t offset)
{
	return rg_pwrite_ctx(NULL, fd, buf, n, offset);
}

ssize_t rg_recv(int fd, void *buf, size_t n, int flags)
{
	return rg_recv_ctx(NULL, fd, buf, n, flags);
}

ssize_t rg_send(int fd, const void *buf, size_t n, int flags)
{
	return rg_send_ctx(NULL, fd, buf, n, flags);
}

ssize_t rg_recvmsg(int fd, struct msghdr *msg, int flags)
{
	return rg_recvmsg_ctx(NULL, fd, msg, flags);
}

ssize_t rg_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return rg_sendmsg_ctx(NULL, fd, msg, flags);
}

int rg_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return rg_accept_ctx(NULL, fd, addr, addrlen);
}

int rg_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	return rg_connect_ctx(NULL, fd, addr, addrlen);
}

int rg_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return rg_openat_ctx(NULL, dirfd, path, flags, mode);
}

int rg_fsync(int fd)
{
	return rg_fsync_ctx(NULL, fd);
}

int rg_poll_fd(int fd, short events)
{
	return rg_poll_fd_ctx(NULL, fd, events);
}
