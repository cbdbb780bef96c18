/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The poller: Go's netpoll, with io_uring in place of epoll.
 *
 * One poller per scheduler, created on the first blocking I/O call. Two
 * backends implement it: io_uring (uring.c, the default) and epoll (epoll.c,
 * when io_uring is unavailable or RINGO_POLLER=epoll). The scheduler sees
 * only rg_netpoll / rg_netpoll_wake; the public I/O calls (io.c) describe
 * each operation as a struct rg_io_req and hand it to the backend.
 *
 * Waiting: a goroutine that must wait parks on a struct rg_iowait on its own
 * stack. The backend completes the wait from whichever thread sees the
 * event, and returns the goroutine from rg_netpoll (or readies it directly,
 * from a context cancellation). The three-state word makes completion and
 * parking race-free: whoever comes second does the work.
 */
#ifndef RINGO_POLLER_H
#define RINGO_POLLER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ringo.h"

struct rg_sched;
struct rg_g;
struct rg_poller;

/* One operation, as the public call described it. */
enum rg_io_op {
	RG_IO_READ,	/* buf, len, off (-1: file position) */
	RG_IO_WRITE,	/* cbuf, len, off */
	RG_IO_READV,	/* iov, len = iovcnt, off */
	RG_IO_WRITEV,	/* iov, len = iovcnt, off */
	RG_IO_RECV,	/* buf, len, flags */
	RG_IO_SEND,	/* cbuf, len, flags (MSG_NOSIGNAL always added) */
	RG_IO_RECVMSG,	/* msg, flags */
	RG_IO_SENDMSG,	/* cmsg, flags (MSG_NOSIGNAL always added) */
	RG_IO_ACCEPT,	/* addr, addrlen (SOCK_CLOEXEC) */
	RG_IO_CONNECT,	/* caddr, len = addrlen */
	RG_IO_OPENAT,	/* fd = dirfd, path, flags, mode */
	RG_IO_CLOSE,	/* fd */
	RG_IO_FSYNC,	/* fd */
	RG_IO_POLL,	/* fd, flags = poll events; result = revents */
	RG_IO_NOP,	/* nothing: a round trip through the poller (rg_io_nop) */
	RG_IO_OP_COUNT,
};

struct rg_io_req {
	enum rg_io_op op;
	int fd;
	union {
		void *buf;
		const void *cbuf;
		const struct iovec *iov;
		struct msghdr *msg;
		const struct msghdr *cmsg;
		struct sockaddr *addr;
		const struct sockaddr *caddr;
		const char *path;
	};
	size_t len;
	off_t off;
	int flags;
	socklen_t *addrlen;
	mode_t mode;
};

/* A parked goroutine's wait (on its stack). */
enum { IOWAIT_PENDING = 0, IOWAIT_PARKED = 1, IOWAIT_DONE = 2 };

struct rg_iowait {
	struct rg_g *g;
	_Atomic uint32_t state;
};

/* Backend. Every function is called with the poller initialised. */
struct rg_poller_ops {
	const char *name;
	/* Returns 0 or -errno (the caller then tries the next backend). */
	int (*init)(struct rg_poller *pl);
	void (*destroy)(struct rg_poller *pl);
	/*
	 * Collect up to max goroutines whose waits completed. until: 0 polls
	 * without blocking, -1 blocks until something completes or a wake,
	 * else blocks until that rg_nanotime() deadline at the latest.
	 * Returns the number stored in out.
	 */
	int (*poll)(struct rg_poller *pl, int64_t until, struct rg_g **out, int max);
	/*
	 * End a blocking poll early (any thread, async-signal-unsafe). A wake
	 * with no poll blocked must make the next blocking poll return at once.
	 */
	void (*wake)(struct rg_poller *pl);
	/* Perform req from a goroutine, parking it meanwhile; result or -errno. */
	int64_t (*io)(struct rg_poller *pl, const struct rg_io_req *req, rg_ctx *ctx);
};

struct rg_poller {
	const struct rg_poller_ops *ops;
	struct rg_sched *sched;
	/* Goroutines parked on this poller (a hint for the scheduler: skip polls at 0). */
	_Atomic int32_t waiting;
	/* An M is blocked in ops->poll (Go's sched.lastpoll == 0). */
	_Atomic uint32_t blocked;
	void *backend; /* the backend's state */
};

extern const struct rg_poller_ops rg_uring_ops;
extern const struct rg_poller_ops rg_epoll_ops;

/* The scheduler's poller, creating it on first use; NULL only when no backend works. */
struct rg_poller *rg_poller_get(struct rg_sched *s);
/* Destroy s's poller, if any (the scheduler is going away). */
void rg_poller_destroy(struct rg_sched *s);

/*
 * Scheduler side (sched.c). rg_netpoll polls s's poller (if it exists and
 * has waiters or, blocking, always) and returns goroutines to run.
 * rg_netpoll_wake ends a blocking rg_netpoll, or the next one if none is
 * blocked yet.
 */
int rg_netpoll(struct rg_sched *s, int64_t until, struct rg_g **out, int max);
void rg_netpoll_wake(struct rg_sched *s);
bool rg_netpoll_active(struct rg_sched *s);

/*
 * Waits (both backends). begin counts the waiter (the deadlock detector sees
 * it as a pending wake-up); park parks unless the wait completed already;
 * complete returns the goroutine to make runnable, or NULL if it had not
 * parked yet (it will see IOWAIT_DONE and not park); end uncounts it, by the
 * waiter once it resumed.
 */
void rg_iowait_begin(struct rg_poller *pl, struct rg_iowait *w);
void rg_iowait_park(struct rg_iowait *w);
struct rg_g *rg_iowait_complete(struct rg_iowait *w);
void rg_iowait_end(struct rg_poller *pl, struct rg_iowait *w);

/* Perform req as a plain system call on this thread (no goroutine, or a regular file). */
int64_t rg_io_syscall(const struct rg_io_req *req);

/*
 * An operation that does nothing, through the poller: with io_uring an
 * IORING_OP_NOP (submitted, parked on, reaped, readied), ringo-latbench's
 * nop row; with epoll, nothing. Returns 0.
 */
int rg_io_nop(void);

#endif /* RINGO_POLLER_H */
