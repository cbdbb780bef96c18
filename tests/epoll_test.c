// SPDX-License-Identifier: BSD-2-Clause
/*
 * The epoll poller (RINGO_POLLER=epoll, forced for this whole program):
 * reads and writes that park on pipes and sockets, a TCP echo, a closed and
 * reused descriptor number, a reader and a writer parked on one descriptor,
 * cancellation and close of a parked read, regular files, and a blocking
 * poll woken early. Plus rg_io_syscall and the TCP helpers outside rg_run.
 *
 * "Is it parked yet?" is answered white-box from the goroutine's state.
 * Goroutines CHECK (they cannot ASSERT), and each TEST expects no failed check.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rg_test.h"
#include "rg_check.h"
#include "runtime.h"
#include "rg_await.h"
#include "poller.h"

#define AWAIT_NS (5 * 1000000000ull)
#define MS 1000000LL

__attribute__((constructor)) static void force_epoll(void)
{
	setenv("RINGO_POLLER", "epoll", 1);
}

/* The goroutines here park only in I/O, so "waiting" means parked on a descriptor. */
static bool parked(gslot *slot)
{
	struct rg_g *g = atomic_load(slot);

	return g && atomic_load(&g->status) == G_WAITING;
}

/* A reader goroutine: publish itself, read n bytes from fd, record the result. */
struct rd {
	int fd;
	size_t n;
	rg_ctx *ctx;
	char buf[256];
	_Atomic ssize_t res; /* also watched while the reader runs */
	gslot g;
	rg_wg *wg;
};

static void reader(void *arg)
{
	struct rd *r = arg;
	ssize_t n;

	publish_self(&r->g);
	n = r->ctx ? rg_read_ctx(r->ctx, r->fd, r->buf, r->n) : rg_read(r->fd, r->buf, r->n);
	atomic_store(&r->res, n);
	if (r->wg)
		rg_wg_done(r->wg);
}

/* A writer goroutine: write all n bytes of buf to fd (short writes continue). */
struct wr {
	int fd;
	const char *buf;
	size_t n;
	ssize_t total;
	gslot g;
	rg_wg *wg;
};

static void writer(void *arg)
{
	struct wr *w = arg;

	publish_self(&w->g);
	while (w->total < (ssize_t)w->n) {
		ssize_t k = rg_write(w->fd, w->buf + w->total, w->n - (size_t)w->total);

		if (k <= 0) {
			CHECK(0, "write %zd", k);
			break;
		}
		w->total += k;
	}
	rg_wg_done(w->wg);
}

/* ---- pipes: a read and a write that must park ---- */

static void pipe_main(void *arg)
{
	int p[2];
	rg_wg wg = {0};
	struct rd r = {.n = 5, .wg = &wg};
	static char big[1 << 20];
	ssize_t k;

	CHECK(strcmp(rg_poller_name(), "epoll") == 0, "poller %s", rg_poller_name());
	CHECK(pipe(p) == 0, "pipe");
	r.fd = p[0];
	rg_wg_add(&wg, 1);
	rg_go(reader, &r);
	CHECK(AWAIT(parked(&r.g)), "reader never parked");
	CHECK(rg_write(p[1], "hello", 5) == 5, "write");
	rg_wg_wait(&wg);
	CHECK(r.res == 5 && memcmp(r.buf, "hello", 5) == 0, "read %zd", r.res);

	/* A write bigger than the pipe parks until the reader drains it (a short write is fine). */
	rg_wg_add(&wg, 1);
	struct wr w = {.fd = p[1], .buf = big, .n = sizeof(big), .wg = &wg};

	rg_go(writer, &w);
	CHECK(AWAIT(parked(&w.g)), "writer never parked");
	for (ssize_t got = 0; got < (ssize_t)sizeof(big); got += k) {
		static char tmp[65536];

		k = rg_read(p[0], tmp, sizeof(tmp));
		if (k <= 0) {
			CHECK(0, "drain read %zd", k);
			break;
		}
	}
	rg_wg_wait(&wg);
	CHECK(w.total == (ssize_t)sizeof(big), "wrote %zd", w.total);
	close(p[0]);
	close(p[1]);
}

TEST(pipe_read_and_write_park)
{
	ASSERT_EQ(0, rg_run(pipe_main, NULL));
	EXPECT_NO_ERRS();
}

/* ---- TCP echo: many clients, a server goroutine per connection ---- */

#define ECHO_CLIENTS 16
#define ECHO_ROUNDS 200

static void echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[512];
	ssize_t n;

	while ((n = rg_recv(fd, buf, sizeof(buf), 0)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t k = rg_send(fd, buf + off, (size_t)(n - off), 0);

			if (k <= 0) {
				CHECK(0, "server send %zd", k);
				goto out;
			}
			off += k;
		}
	}
	CHECK(n == 0, "server recv %zd", n);
out:
	rg_close(fd);
}

static struct {
	int lfd, port;
	rg_wg wg;
	const char *addr;
} echo;

static void echo_accept(void *arg)
{
	for (int i = 0; i < ECHO_CLIENTS; i++) {
		int c = rg_accept(echo.lfd, NULL, NULL);

		if (c < 0) {
			CHECK(0, "accept %d", c);
			return;
		}
		rg_go(echo_conn, (void *)(intptr_t)c);
	}
}

static void echo_client(void *arg)
{
	char addr[64], msg[64], back[64];
	int fd;

	snprintf(addr, sizeof(addr), echo.addr, echo.port);
	fd = rg_dial_tcp(addr);
	CHECK(fd >= 0, "dial %s: %d", addr, fd);
	for (int i = 0; fd >= 0 && i < ECHO_ROUNDS; i++) {
		int len = snprintf(msg, sizeof(msg), "client %ld round %d", (long)(intptr_t)arg, i);
		ssize_t got = 0, k;

		CHECK(rg_write(fd, msg, (size_t)len) == len, "client write");
		while (got < len && (k = rg_read(fd, back + got, (size_t)(len - got))) > 0)
			got += k;
		if (got != len || memcmp(msg, back, (size_t)len) != 0) {
			CHECK(0, "echo mismatch at round %d (%zd bytes)", i, got);
			break;
		}
	}
	if (fd >= 0)
		rg_close(fd);
	rg_wg_done(&echo.wg);
}

static void echo_main(void *arg)
{
	const char *listen_addr = arg;

	echo.lfd = rg_listen_tcp(listen_addr, 128);
	if (echo.lfd < 0) {
		CHECK(echo.lfd == -EAFNOSUPPORT || echo.lfd == -EADDRNOTAVAIL, "listen %s: %d",
		      listen_addr, echo.lfd);
		return;
	}
	echo.port = rg_local_port(echo.lfd);
	CHECK(echo.port > 0, "port %d", echo.port);
	rg_go(echo_accept, NULL);
	rg_wg_add(&echo.wg, ECHO_CLIENTS);
	for (long i = 0; i < ECHO_CLIENTS; i++)
		rg_go(echo_client, (void *)(intptr_t)i);
	rg_wg_wait(&echo.wg);
	rg_close(echo.lfd);
}

TEST(tcp_echo_ipv4)
{
	echo.addr = "127.0.0.1:%d";
	ASSERT_EQ(0, rg_run(echo_main, "127.0.0.1:0"));
	EXPECT_NO_ERRS();
}

TEST(tcp_echo_any_dual_stack)
{
	/* ":0" listens on every address; dialing IPv4 loopback reaches it. */
	echo.addr = "127.0.0.1:%d";
	ASSERT_EQ(0, rg_run(echo_main, ":0"));
	EXPECT_NO_ERRS();
}

TEST(tcp_echo_ipv6)
{
	int s = socket(AF_INET6, SOCK_STREAM, 0);

	if (s < 0)
		SKIP(return, "no IPv6");
	close(s);
	echo.addr = "[::1]:%d";
	ASSERT_EQ(0, rg_run(echo_main, "[::1]:0"));
	EXPECT_NO_ERRS();
}

/* ---- a descriptor number closed (plain close) and reused ---- */

static void reuse_main(void *arg)
{
	int a[2], b[2], num, dupfd;
	rg_wg wg = {0};
	struct rd r = {.n = 1, .wg = &wg};

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0, "socketpair");
	num = a[0];
	dupfd = dup(num); /* keeps the old file (and its epoll registration) alive */

	/* Park once so the number is registered with epoll. */
	r.fd = num;
	rg_wg_add(&wg, 1);
	rg_go(reader, &r);
	CHECK(AWAIT(parked(&r.g)), "first reader never parked");
	CHECK(write(a[1], "x", 1) == 1, "write");
	rg_wg_wait(&wg);
	CHECK(r.res == 1, "first read %zd", r.res);

	for (int round = 0; round < 2; round++) {
		/* Plain close, and a new file under the same number. */
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0, "socketpair 2");
		CHECK(close(num) == 0, "close");
		CHECK(dup2(b[0], num) == num, "dup2");
		close(b[0]);

		atomic_store(&r.g, NULL);
		rg_wg_add(&wg, 1);
		rg_go(reader, &r);
		CHECK(AWAIT(parked(&r.g)), "reader on the reused number never parked: %zd", r.res);
		/* The old file becoming ready must not confuse anything. */
		CHECK(write(a[1], "o", 1) == 1, "write old");
		CHECK(write(b[1], "n", 1) == 1, "write new");
		rg_wg_wait(&wg);
		CHECK(r.res == 1 && r.buf[0] == 'n', "reused read %zd '%c'", r.res, r.buf[0]);
		close(b[1]);
		/* Drain what the old file got through its duplicate. */
		CHECK(read(dupfd, r.buf, 1) == 1 && r.buf[0] == 'o', "old file data");
	}
	close(num);
	close(dupfd);
	close(a[1]);
}

TEST(closed_and_reused_fd)
{
	ASSERT_EQ(0, rg_run(reuse_main, NULL));
	EXPECT_NO_ERRS();
}

/* ---- a reader and a writer parked on the same descriptor ---- */

#define RW_TOTAL (4 << 20) /* far more than the socket buffer: the writer must park */

static void rw_main(void *arg)
{
	static char data[RW_TOTAL], tmp[65536];
	int sp[2], sz = 65536;
	rg_wg wg = {0};
	struct rd r = {.n = 3, .wg = &wg};
	struct wr w = {.buf = data, .n = sizeof(data), .wg = &wg};
	ssize_t drained = 0, k;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	r.fd = w.fd = sp[0];
	rg_wg_add(&wg, 2);
	rg_go(reader, &r);
	CHECK(AWAIT(parked(&r.g)), "reader never parked");
	rg_go(writer, &w);
	CHECK(AWAIT(parked(&w.g)), "writer never parked");
	CHECK(parked(&r.g), "reader no longer parked");

	/* Readable only: the reader goes, the writer stays. */
	CHECK(write(sp[1], "abc", 3) == 3, "write peer");
	CHECK(AWAIT(r.res == 3), "reader did not finish: %zd", r.res);
	CHECK(parked(&w.g), "writer woke on readability");

	/* Writable: drain everything the writer sends. */
	while (drained < (ssize_t)sizeof(data)) {
		k = rg_read(sp[1], tmp, sizeof(tmp));
		if (k <= 0) {
			CHECK(0, "drain %zd", k);
			break;
		}
		drained += k;
	}
	rg_wg_wait(&wg);
	CHECK(w.total == (ssize_t)sizeof(data), "wrote %zd", w.total);
	close(sp[0]);
	close(sp[1]);
}

TEST(reader_and_writer_on_one_fd)
{
	ASSERT_EQ(0, rg_run(rw_main, NULL));
	EXPECT_NO_ERRS();
}

/* ---- cancellation, deadline and close of a parked read ---- */

static void cancel_main(void *arg)
{
	int p[2];
	rg_wg wg = {0};
	struct rd r = {.n = 4, .wg = &wg};
	int64_t t0;

	CHECK(pipe(p) == 0, "pipe");
	r.fd = p[0];

	/* Cancel: the parked read returns -ECANCELED, and no data is lost. */
	r.ctx = rg_ctx_with_cancel(rg_ctx_background());
	rg_wg_add(&wg, 1);
	rg_go(reader, &r);
	CHECK(AWAIT(parked(&r.g)), "reader never parked");
	rg_ctx_cancel(r.ctx);
	rg_wg_wait(&wg);
	CHECK(r.res == -ECANCELED, "cancelled read %zd", r.res);
	CHECK(rg_read_ctx(r.ctx, p[0], r.buf, 1) == -ECANCELED, "read on a cancelled ctx");
	rg_ctx_free(r.ctx);
	CHECK(write(p[1], "data", 4) == 4, "write");
	CHECK(rg_read(p[0], r.buf, 4) == 4 && memcmp(r.buf, "data", 4) == 0, "data lost");

	/* Deadline: -ETIMEDOUT, not before it. */
	t0 = rg_now(); /* before the context: its deadline is at least t0 + 30 ms */
	r.ctx = rg_ctx_with_timeout(rg_ctx_background(), 30 * MS);
	rg_wg_add(&wg, 1);
	rg_go(reader, &r);
	rg_wg_wait(&wg);
	CHECK(r.res == -ETIMEDOUT, "timed-out read %zd", r.res);
	CHECK(rg_now() - t0 >= 30 * MS, "woke early: %lld ns", (long long)(rg_now() - t0));
	rg_ctx_free(r.ctx);

	/* Data first: the read wins even under a context. */
	r.ctx = rg_ctx_with_cancel(rg_ctx_background());
	atomic_store(&r.g, NULL);
	rg_wg_add(&wg, 1);
	rg_go(reader, &r);
	CHECK(AWAIT(parked(&r.g)), "reader never parked");
	CHECK(write(p[1], "ok", 2) == 2, "write");
	rg_wg_wait(&wg);
	rg_ctx_cancel(r.ctx);
	CHECK(r.res == 2, "read under ctx %zd", r.res);
	rg_ctx_free(r.ctx);
	r.ctx = NULL;

	/* rg_close evicts the parked reader (Go's Close), which returns -ECANCELED. */
	atomic_store(&r.g, NULL);
	rg_wg_add(&wg, 1);
	rg_go(reader, &r);
	CHECK(AWAIT(parked(&r.g)), "reader never parked");
	CHECK(rg_close(p[0]) == 0, "rg_close");
	rg_wg_wait(&wg);
	CHECK(r.res == -ECANCELED, "read on a closed fd %zd", r.res);
	close(p[1]);
}

TEST(cancel_timeout_close_of_parked_read)
{
	ASSERT_EQ(0, rg_run(cancel_main, NULL));
	EXPECT_NO_ERRS();
}

/* ---- regular files (epoll refuses them), rg_poll_fd, connect errors ---- */

struct pf {
	int fd;
	_Atomic int revents;
	gslot g;
};

static void poll_fn(void *arg)
{
	struct pf *pf = arg;

	publish_self(&pf->g);
	atomic_store(&pf->revents, rg_poll_fd(pf->fd, POLLIN));
}

static void misc_main(void *arg)
{
	struct pf pf = {.revents = -1};
	char path[] = "/tmp/ringo-epoll-XXXXXX", buf[16];
	int fd = mkstemp(path), p[2], lfd, port, c;
	struct iovec iov[2] = {{buf, 3}, {buf + 3, 3}};

	CHECK(fd >= 0, "mkstemp");
	unlink(path);
	CHECK(rg_write(fd, "abcdef", 6) == 6, "file write");
	CHECK(rg_pread(fd, buf, 6, 0) == 6 && memcmp(buf, "abcdef", 6) == 0, "file pread");
	CHECK(rg_pwrite(fd, "XY", 2, 1) == 2, "file pwrite");
	CHECK(rg_readv(fd, iov, 2) == 0, "readv at EOF");
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek");
	CHECK(rg_readv(fd, iov, 2) == 6 && memcmp(buf, "aXYdef", 6) == 0, "file readv");
	CHECK(rg_fsync(fd) == 0, "fsync");
	CHECK(rg_poll_fd(fd, POLLIN) & POLLIN, "file poll");
	CHECK(rg_close(fd) == 0, "close");
	CHECK(rg_close(fd) == -EBADF, "double close");
	CHECK(rg_read(-1, buf, 1) == -EBADF, "read -1");

	c = rg_openat(AT_FDCWD, "/nonexistent/x", O_RDONLY, 0);
	CHECK(c == -ENOENT, "openat %d", c);

	CHECK(pipe(p) == 0, "pipe");
	CHECK(rg_poll_fd(p[1], POLLOUT) & POLLOUT, "pipe writable");
	pf.fd = p[0];
	rg_go(poll_fn, &pf);
	CHECK(AWAIT(parked(&pf.g)), "poll never parked");
	CHECK(write(p[1], "z", 1) == 1, "write");
	CHECK(AWAIT(atomic_load(&pf.revents) != -1), "poll never returned");
	CHECK(pf.revents == POLLIN, "revents %d", pf.revents);
	close(p[1]);
	CHECK(rg_read(p[0], buf, 1) == 1 && rg_read(p[0], buf, 1) == 0, "EOF");
	close(p[0]);

	/* Nothing listens on a closed listener's port. */
	lfd = rg_listen_tcp("127.0.0.1:0", 1);
	port = rg_local_port(lfd);
	rg_close(lfd);
	snprintf(buf, sizeof(buf), "127.0.0.1:%d", port);
	c = rg_dial_tcp(buf);
	CHECK(c == -ECONNREFUSED, "dial a closed port: %d", c);

	/* recv with the caller's own MSG_DONTWAIT says EAGAIN instead of parking. */
	int sp[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
	CHECK(rg_recv(sp[0], buf, 1, MSG_DONTWAIT) == -EAGAIN, "MSG_DONTWAIT");
	close(sp[0]);
	close(sp[1]);
}

TEST(files_poll_and_errors)
{
	ASSERT_EQ(0, rg_run(misc_main, NULL));
	EXPECT_NO_ERRS();
}

/*
 * ---- regular files: RWF_NOWAIT stops at the first uncached page ----
 * The backend must finish such a read with a blocking one: a file read is
 * short only at the end of the file, under either poller.
 */

#define BIGFILE (4 << 20)

static void uncache(int fd)
{
	char one[4096];

	CHECK(fdatasync(fd) == 0, "fdatasync");
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "fadvise");
	CHECK(pread(fd, one, sizeof(one), 0) == sizeof(one), "cache one page");
}

static void file_main(void *arg)
{
	static char data[BIGFILE], back[BIGFILE];
	char path[] = "/var/tmp/ringo-epoll-XXXXXX";
	int fd = mkstemp(path);
	struct iovec iov[3] = {{back, 5}, {back + 5, BIGFILE / 2}, {back + 5 + BIGFILE / 2, 0}};
	ssize_t n;

	iov[2].iov_len = BIGFILE - iov[0].iov_len - iov[1].iov_len;
	CHECK(fd >= 0, "mkstemp");
	unlink(path);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + i / 4096);
	CHECK(rg_write(fd, data, sizeof(data)) == (ssize_t)sizeof(data), "write");

	uncache(fd);
	n = rg_pread(fd, back, sizeof(back), 0);
	CHECK(n == (ssize_t)sizeof(back) && memcmp(data, back, sizeof(back)) == 0, "pread %zd", n);

	uncache(fd);
	memset(back, 0, sizeof(back));
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek");
	n = rg_readv(fd, iov, 3);
	CHECK(n == (ssize_t)sizeof(back) && memcmp(data, back, sizeof(back)) == 0, "readv %zd", n);
	CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)sizeof(back), "file position");

	uncache(fd);
	memset(back, 0, sizeof(back));
	CHECK(lseek(fd, 3, SEEK_SET) == 3, "lseek");
	n = rg_read(fd, back, sizeof(back));
	CHECK(n == (ssize_t)sizeof(back) - 3 && memcmp(data + 3, back, (size_t)n) == 0, "read %zd",
	      n);
	CHECK(rg_read(fd, back, 1) == 0, "EOF");
	close(fd);
}

TEST(regular_file_reads_are_never_short)
{
	ASSERT_EQ(0, rg_run(file_main, NULL));
	EXPECT_NO_ERRS();
}

/* ---- many goroutines on many pipes, all ready at once ---- */

#define FAN 200

static void fan_main(void *arg)
{
	static int p[FAN][2];
	static struct rd r[FAN];
	rg_wg wg = {0};

	rg_wg_add(&wg, FAN);
	for (int i = 0; i < FAN; i++) {
		CHECK(pipe(p[i]) == 0, "pipe");
		r[i] = (struct rd){.fd = p[i][0], .n = 1, .wg = &wg};
		rg_go(reader, &r[i]);
	}
	for (int i = 0; i < FAN; i++)
		CHECK(AWAIT(parked(&r[i].g)), "reader %d never parked", i);
	for (int i = 0; i < FAN; i++)
		CHECK(write(p[i][1], "q", 1) == 1, "write");
	rg_wg_wait(&wg);
	for (int i = 0; i < FAN; i++) {
		CHECK(r[i].res == 1, "reader %d: %zd", i, r[i].res);
		close(p[i][0]);
		close(p[i][1]);
	}
}

TEST(many_readers_ready_at_once)
{
	ASSERT_EQ(0, rg_run(fan_main, NULL));
	EXPECT_NO_ERRS();
}

/* ---- the backend alone: a blocking poll woken early, and deadlines ---- */

static _Atomic pid_t blocking_tid;

static void *blocking_poll(void *arg)
{
	struct rg_poller *pl = arg;
	struct rg_g *out[4];

	atomic_store(&blocking_tid, (pid_t)syscall(SYS_gettid));
	return (void *)(intptr_t)pl->ops->poll(pl, -1, out, 4);
}

/* Until thread tid sits in epoll_wait or epoll_pwait2 (/proc's syscall file); false after 10 s. */
static bool await_in_epoll_wait(pid_t tid)
{
	char path[64];
	int64_t deadline = rg_now() + 10000 * MS;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	while (rg_now() < deadline) {
		FILE *f = fopen(path, "r");
		long nr = -1;
		if (f) {
			if (fscanf(f, "%ld", &nr) != 1)
				nr = -1;
			fclose(f);
		}
		if (nr == SYS_epoll_wait || nr == SYS_epoll_pwait2)
			return true;
		sched_yield();
	}
	return false;
}

TEST(wake_ends_blocking_poll)
{
	struct rg_poller pl = {.ops = &rg_epoll_ops};
	struct rg_g *out[4];
	pthread_t t;
	void *res;
	int64_t t0;

	ASSERT_EQ(0, pl.ops->init(&pl));

	/* Woken while blocked. */
	atomic_store(&blocking_tid, 0);
	ASSERT_EQ(0, pthread_create(&t, NULL, blocking_poll, &pl));
	while (!atomic_load(&blocking_tid))
		sched_yield();
	EXPECT_TRUE(await_in_epoll_wait(atomic_load(&blocking_tid)));
	t0 = rg_now();
	pl.ops->wake(&pl);
	ASSERT_EQ(0, pthread_join(t, &res));
	EXPECT_EQ(0, (int)(intptr_t)res);
	EXPECT_LT(rg_now() - t0, 1000 * MS);

	/* A wake before the poll: a non-blocking poll leaves it, the blocking one takes it. */
	pl.ops->wake(&pl);
	pl.ops->wake(&pl); /* at most one in flight */
	EXPECT_EQ(0, pl.ops->poll(&pl, 0, out, 4));
	t0 = rg_now();
	EXPECT_EQ(0, pl.ops->poll(&pl, -1, out, 4));
	EXPECT_LT(rg_now() - t0, 1000 * MS);

	/* Deadlines: nanosecond timeouts, never early. */
	for (int64_t d = 1000; d <= 20 * MS; d *= 20) {
		t0 = rg_now();
		EXPECT_EQ(0, pl.ops->poll(&pl, t0 + d, out, 4));
		EXPECT_GE(rg_now() - t0, d);
	}
	pl.ops->destroy(&pl);
}

/* ---- outside rg_run: the plain calls ---- */

TEST(outside_goroutines)
{
	int p[2], lfd, c, a;
	char buf[8], addr[64];
	struct rg_io_req req = {.op = RG_IO_WRITE, .fd = -1, .cbuf = "x", .len = 1, .off = -1};

	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(3, rg_write(p[1], "abc", 3));
	EXPECT_EQ(3, rg_read(p[0], buf, sizeof(buf)));
	EXPECT_EQ(POLLOUT, rg_poll_fd(p[1], POLLOUT));
	EXPECT_EQ(-EBADF, rg_io_syscall(&req));
	EXPECT_EQ(-EINVAL, rg_io_syscall(NULL));
	errno = 1234;
	req.op = RG_IO_OP_COUNT;
	EXPECT_EQ(-EINVAL, rg_io_syscall(&req));
	EXPECT_EQ(1234, errno);
	close(p[0]);
	close(p[1]);

	/* A dial outside a goroutine waits for its non-blocking connect itself. */
	lfd = rg_listen_tcp("127.0.0.1:0", 4);
	ASSERT_LE(0, lfd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", rg_local_port(lfd));
	c = rg_dial_tcp(addr);
	ASSERT_LE(0, c);
	struct pollfd pf = {.fd = lfd, .events = POLLIN};
	ASSERT_EQ(1, poll(&pf, 1, 5000));
	a = rg_accept(lfd, NULL, NULL);
	ASSERT_LE(0, a);
	EXPECT_TRUE(fcntl(a, F_GETFD) & FD_CLOEXEC);
	EXPECT_TRUE(fcntl(lfd, F_GETFL) & O_NONBLOCK);
	EXPECT_EQ(2, rg_send(c, "hi", 2, 0));
	EXPECT_EQ(2, rg_recv(a, buf, sizeof(buf), 0));
	close(a);
	close(c);
	close(lfd);
}

TEST(host_port_parsing)
{
	EXPECT_EQ(-EINVAL, rg_listen_tcp(NULL, 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("127.0.0.1", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("127.0.0.1:", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("127.0.0.1:http", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("127.0.0.1:65536", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("127.0.0.1:-1", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("localhost:0", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("::1:0", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("[::1:0", 1));
	EXPECT_EQ(-EINVAL, rg_listen_tcp("[::1]0", 1));
	EXPECT_EQ(-EINVAL, rg_dial_tcp(NULL));
	EXPECT_EQ(-EINVAL, rg_dial_tcp("300.1.1.1:80"));
	EXPECT_EQ(-EBADF, rg_local_port(-1));

	int fd = rg_listen_tcp("127.0.0.1:0", 1);

	ASSERT_LE(0, fd);
	EXPECT_LT(0, rg_local_port(fd));
	close(fd);
}

TEST_HARNESS_MAIN
