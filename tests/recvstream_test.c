// SPDX-License-Identifier: BSD-2-Clause
/*
 * Receive streams (rg_recvstream_*; issue 4's multishot receive with a
 * provided buffer ring): bytes arrive whole and in order through the
 * stream's queue (past its bound, so the multishot is cancelled and
 * re-armed), through partial copies of a buffer and across many buffers; a
 * stream whose buffers ran out because others hold them all still
 * receives; end of stream is returned again, a reset once (then end of
 * stream, as recv(2) says); a context
 * ends a parked receive and loses no data; rg_close ends a parked receive;
 * bad arguments. tests/meson.build runs this program with both pollers
 * (under epoll a stream is plain rg_recv, and every test must pass there
 * too).
 *
 * Goroutines record failures with GCHECK and the test asserts after rg_run.
 * Readiness is a goroutine's parked state or a channel, never a sleep.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "rg_test.h"
#include "rg_check.h"

#define AWAIT_NS (10ull * 1000000000ull)
#include "rg_await.h"

/* A connected TCP pair on loopback: *cfd dialled, *sfd accepted. 0 or -errno. */
static int tcp_pair(int *cfd, int *sfd)
{
	char addr[64];
	int lfd = rg_listen_tcp("127.0.0.1:0", 128), r;

	if (lfd < 0)
		return lfd;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", rg_local_port(lfd));
	*cfd = rg_dial_tcp(addr);
	if (*cfd < 0) {
		r = *cfd;
		rg_close(lfd);
		return r;
	}
	*sfd = rg_accept(lfd, NULL, NULL);
	r = *sfd < 0 ? *sfd : 0;
	if (r)
		rg_close(*cfd);
	rg_close(lfd);
	return r;
}

static bool send_all(int fd, const void *buf, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t k = rg_send(fd, (const char *)buf + off, n - off, MSG_NOSIGNAL);

		if (k <= 0)
			return false;
		off += (size_t)k;
	}
	return true;
}

/* The byte at offset i of a stream seeded with seed. */
static uint8_t pattern(uint32_t seed, uint64_t i)
{
	return (uint8_t)((i * 2654435761u + seed) >> 7);
}

/* Receive exactly n bytes of the stream (checking the pattern from *pos on); false on error. */
static bool recv_expect(rg_recvstream *s, uint32_t seed, uint64_t *pos, uint64_t n, size_t chunk,
			const char *what)
{
	/* Not thread-local: a goroutine may resume on another thread after each receive. */
	uint8_t *buf = malloc(chunk);
	uint64_t end = *pos + n;
	bool ok = true;

	if (!GCHECK(buf, "malloc"))
		return false;
	while (ok && *pos < end) {
		size_t want = end - *pos < chunk ? (size_t)(end - *pos) : chunk;
		ssize_t k = rg_recvstream_recv(s, buf, want);
		if (!GCHECK(k > 0 && (size_t)k <= want, "%s: recv at %llu returned %zd", what,
			    (unsigned long long)*pos, k))
			break;
		for (ssize_t i = 0; ok && i < k; i++)
			ok = GCHECK(buf[i] == pattern(seed, *pos + (uint64_t)i),
				    "%s: byte %llu is wrong", what,
				    (unsigned long long)(*pos + (uint64_t)i));
		if (ok)
			*pos += (uint64_t)k;
	}
	free(buf);
	return ok && *pos == end;
}

/* Send bytes from..from+n of the pattern, in pieces of piece bytes (one send each). */
static bool send_pattern(int fd, uint32_t seed, uint64_t from, uint64_t n, size_t piece)
{
	uint8_t buf[4096];

	if (piece > sizeof(buf))
		piece = sizeof(buf);
	for (uint64_t off = from; off < from + n;) {
		size_t k = from + n - off < piece ? (size_t)(from + n - off) : piece;
		for (size_t i = 0; i < k; i++)
			buf[i] = pattern(seed, off + i);
		if (!send_all(fd, buf, k))
			return false;
		off += k;
	}
	return true;
}

/* ======================================================================== */
/* Order and integrity                                                      */
/* ======================================================================== */

#define SMALL_MSGS 200 /* 100-byte sends, read only once all were sent: past the queue's bound */
#define BULK_BYTES RT_TSAN_SCALE(8u << 20, 8) /* twice the buffer ring (TSan: a quarter) */

static struct {
	uint64_t small_read, bulk_read;
	rg_chan *sent;
} oi;

static void small_writer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint64_t one = 1;

	/* The first byte arms the reader's stream; the rest arrive while nobody reads. */
	GCHECK(send_pattern(fd, 7, 0, 1, 1), "send the first byte");
	GCHECK(rg_chan_recv(oi.sent, &one) == 1, "wait for the reader");
	for (int i = 0; i < SMALL_MSGS; i++)
		GCHECK(send_pattern(fd, 7, 1 + (uint64_t)i * 100, 100, 100), "send %d", i);
	GCHECK(rg_chan_send(oi.sent, &one) == 0, "report");
}

struct bulk_arg {
	int fd;
	rg_wg wg;
};

static void bulk_writer(void *arg)
{
	struct bulk_arg *b = arg;

	GCHECK(send_pattern(b->fd, 11, 0, BULK_BYTES, 4096), "bulk send");
	rg_wg_done(&b->wg);
}

static void order_main(void *arg)
{
	int cfd, sfd;
	uint64_t pos = 0, one = 1;

	if (!GCHECK(tcp_pair(&cfd, &sfd) == 0, "tcp_pair"))
		return;
	int on = 1;
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	oi.sent = rg_chan_make(sizeof(uint64_t), 0);
	rg_recvstream *s = rg_recvstream_open(sfd);
	if (!GCHECK(s && oi.sent, "open"))
		return;
	GCHECK(rg_go(small_writer, (void *)(intptr_t)cfd) == 0, "rg_go");
	GCHECK(recv_expect(s, 7, &pos, 1, 1, "first byte"), "first byte");
	GCHECK(rg_chan_send(oi.sent, &one) == 0, "go on");
	GCHECK(rg_chan_recv(oi.sent, &one) == 1, "all sent");
	/* Odd-sized reads: chunks are split and joined. */
	GCHECK(recv_expect(s, 7, &pos, (uint64_t)SMALL_MSGS * 100, 37, "small"), "small");
	oi.small_read = pos;

	/* Bulk: read in pieces across buffers. */
	pos = 0;
	rg_recvstream_close(s);
	s = rg_recvstream_open(cfd);
	if (!GCHECK(s, "open"))
		return;
	struct bulk_arg b = {.fd = sfd};
	rg_wg_add(&b.wg, 1);
	GCHECK(rg_go(bulk_writer, &b) == 0, "rg_go");
	GCHECK(recv_expect(s, 11, &pos, BULK_BYTES, 10000, "bulk"), "bulk");
	oi.bulk_read = pos;
	rg_wg_wait(&b.wg);
	rg_recvstream_close(s);
	rg_chan_free(oi.sent);
	rg_close(cfd);
	rg_close(sfd);
}

TEST(bytes_arrive_whole_and_in_order)
{
	ASSERT_EQ(0, rg_run(order_main, NULL));
	EXPECT_NO_GFAIL();
	EXPECT_EQ(1 + (uint64_t)SMALL_MSGS * 100, oi.small_read);
	EXPECT_EQ(BULK_BYTES, oi.bulk_read);
	TH_LOG("%s: %llu bytes in 100-byte sends, %llu in bulk", rg_poller_name(),
	       (unsigned long long)oi.small_read, (unsigned long long)oi.bulk_read);
}

/* ======================================================================== */
/* Buffers run out                                                          */
/* ======================================================================== */

/*
 * HOGS streams are armed and sent 80 KiB each that nobody reads: each takes
 * buffers until its queue's bound (16 and those already on their way), more
 * than the ring's 1,024 buffers between them. A live stream
 * must still carry a ping-pong meanwhile; then every hog's data is read
 * back whole.
 */
#define HOGS 72
#define HOG_BYTES (80u << 10)
#define PINGS 200

static struct {
	int hog_c[HOGS], hog_s[HOGS];
	rg_recvstream *hog[HOGS];
	int live_c, live_s;
	int pings;
	uint64_t hog_bytes;
} ro;

static void pong(void *arg)
{
	rg_wg *wg = arg;
	char b;

	for (int i = 0; i < PINGS; i++) {
		if (!GCHECK(rg_recv(ro.live_c, &b, 1, 0) == 1, "pong recv %d", i) ||
		    !GCHECK(rg_send(ro.live_c, &b, 1, MSG_NOSIGNAL) == 1, "pong send %d", i))
			break;
	}
	rg_wg_done(wg);
}

static void runout_main(void *arg)
{
	rg_wg wg = {0};
	int on = 1;

	for (int i = 0; i < HOGS; i++) {
		uint64_t pos = 0;
		if (!GCHECK(tcp_pair(&ro.hog_c[i], &ro.hog_s[i]) == 0, "tcp_pair %d", i))
			return;
		setsockopt(ro.hog_c[i], IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		ro.hog[i] = rg_recvstream_open(ro.hog_s[i]);
		if (!GCHECK(ro.hog[i], "open %d", i))
			return;
		/* Armed by a first receive. */
		GCHECK(send_pattern(ro.hog_c[i], (uint32_t)i, 0, 1, 1), "hog send");
		GCHECK(recv_expect(ro.hog[i], (uint32_t)i, &pos, 1, 1, "hog arm"), "hog arm");
	}
	for (int i = 0; i < HOGS; i++)
		GCHECK(send_pattern(ro.hog_c[i], (uint32_t)i, 1, HOG_BYTES, 4096), "hog fill %d",
		       i);

	if (!GCHECK(tcp_pair(&ro.live_c, &ro.live_s) == 0, "live pair"))
		return;
	setsockopt(ro.live_c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	setsockopt(ro.live_s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	rg_recvstream *live = rg_recvstream_open(ro.live_s);
	if (!GCHECK(live, "open live"))
		return;
	rg_wg_add(&wg, 1);
	GCHECK(rg_go(pong, &wg) == 0, "rg_go");
	for (int i = 0; i < PINGS; i++) {
		char b = (char)i, r;
		if (!GCHECK(rg_send(ro.live_s, &b, 1, MSG_NOSIGNAL) == 1, "ping send %d", i) ||
		    !GCHECK(rg_recvstream_recv(live, &r, 1) == 1 && r == b, "ping %d came back", i))
			break;
		ro.pings++;
	}
	rg_wg_wait(&wg);
	rg_recvstream_close(live);
	rg_close(ro.live_c);
	rg_close(ro.live_s);

	for (int i = 0; i < HOGS; i++) {
		uint64_t pos = 1;
		if (recv_expect(ro.hog[i], (uint32_t)i, &pos, HOG_BYTES, 4096, "hog"))
			ro.hog_bytes += pos - 1;
		rg_recvstream_close(ro.hog[i]);
		rg_close(ro.hog_c[i]);
		rg_close(ro.hog_s[i]);
	}
}

TEST(a_stream_receives_while_others_hold_every_buffer)
{
	ASSERT_EQ(0, rg_run(runout_main, NULL));
	EXPECT_NO_GFAIL();
	EXPECT_EQ(PINGS, ro.pings);
	EXPECT_EQ((uint64_t)HOGS * HOG_BYTES, ro.hog_bytes);
}

/* ======================================================================== */
/* Ends: EOF, reset, context, rg_close                                      */
/* ======================================================================== */

static struct {
	ssize_t data, eof, eof_again;
	ssize_t reset, reset_again;
	ssize_t cancelled, after_cancel;
	ssize_t closed;
	char buf[8];
} en;

static void eof_main(void *arg)
{
	int cfd, sfd;

	if (!GCHECK(tcp_pair(&cfd, &sfd) == 0, "tcp_pair"))
		return;
	rg_recvstream *s = rg_recvstream_open(sfd);
	if (!GCHECK(s, "open"))
		return;
	GCHECK(send_all(cfd, "abc", 3), "send");
	GCHECK(shutdown(cfd, SHUT_WR) == 0, "shutdown");
	en.data = rg_recvstream_recv(s, en.buf, sizeof(en.buf));
	if (en.data == 2) /* "ab" may come first on its own */
		en.data += rg_recvstream_recv(s, en.buf + 2, sizeof(en.buf) - 2);
	en.eof = rg_recvstream_recv(s, en.buf, sizeof(en.buf));
	en.eof_again = rg_recvstream_recv(s, en.buf, sizeof(en.buf));
	rg_recvstream_close(s);
	rg_close(cfd);
	rg_close(sfd);

	/* Reset: the peer closes with unread data and a zero linger. */
	if (!GCHECK(tcp_pair(&cfd, &sfd) == 0, "tcp_pair"))
		return;
	s = rg_recvstream_open(sfd);
	if (!GCHECK(s, "open"))
		return;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	GCHECK(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0, "linger");
	GCHECK(rg_close(cfd) == 0, "close");
	en.reset = rg_recvstream_recv(s, en.buf, sizeof(en.buf));
	en.reset_again = rg_recvstream_recv(s, en.buf, sizeof(en.buf));
	rg_recvstream_close(s);
	rg_close(sfd);
}

TEST(end_of_stream_stays_a_reset_is_returned_once)
{
	ASSERT_EQ(0, rg_run(eof_main, NULL));
	EXPECT_NO_GFAIL();
	EXPECT_EQ(3, en.data);
	EXPECT_EQ(0, en.eof);
	EXPECT_EQ(0, en.eof_again);
	EXPECT_EQ(-ECONNRESET, en.reset);
	EXPECT_EQ(0, en.reset_again);
}

static struct {
	gslot g;
	rg_recvstream *s;
	rg_ctx *ctx;
	int fd;
	ssize_t r;
	char buf[8];
	rg_chan *done;
} cw;

static void ctx_reader(void *arg)
{
	publish_self(&cw.g);
	cw.r = rg_recvstream_recv_ctx(cw.ctx, cw.s, cw.buf, sizeof(cw.buf));
	rg_chan_close(cw.done);
}

static void ctx_main(void *arg)
{
	int cfd, sfd;

	if (!GCHECK(tcp_pair(&cfd, &sfd) == 0, "tcp_pair"))
		return;
	cw.s = rg_recvstream_open(sfd);
	cw.ctx = rg_ctx_with_cancel(rg_ctx_background());
	cw.done = rg_chan_make(0, 0);
	if (!GCHECK(cw.s && cw.ctx && cw.done, "set up"))
		return;
	GCHECK(rg_go(ctx_reader, NULL) == 0, "rg_go");
	GCHECK(AWAIT(atomic_load(&cw.g) && atomic_load(&cw.g)->status == G_WAITING &&
		     atomic_load(&cw.g)->wait_reason == WAIT_IO),
	       "the reader parks");
	rg_ctx_cancel(cw.ctx);
	GCHECK(rg_chan_recv(cw.done, NULL) == 0, "reader done");
	en.cancelled = cw.r;
	/* The multishot may stay armed: what comes now is the next receive's. */
	GCHECK(send_all(cfd, "xyz", 3), "send");
	en.after_cancel = rg_recvstream_recv(cw.s, en.buf, 3);
	if (en.after_cancel > 0 && en.after_cancel < 3)
		en.after_cancel += rg_recvstream_recv(cw.s, en.buf + en.after_cancel,
						      3 - (size_t)en.after_cancel);
	GCHECK(memcmp(en.buf, "xyz", 3) == 0, "the data after the cancel");
	rg_ctx_free(cw.ctx);
	rg_chan_free(cw.done);

	/* rg_close of the fd ends a parked receive. */
	atomic_store(&cw.g, NULL);
	cw.ctx = NULL;
	cw.done = rg_chan_make(0, 0);
	GCHECK(rg_go(ctx_reader, NULL) == 0, "rg_go");
	GCHECK(AWAIT(atomic_load(&cw.g) && atomic_load(&cw.g)->status == G_WAITING &&
		     atomic_load(&cw.g)->wait_reason == WAIT_IO),
	       "the reader parks");
	rg_close(sfd);
	GCHECK(rg_chan_recv(cw.done, NULL) == 0, "reader done");
	en.closed = cw.r;
	rg_recvstream_close(cw.s);
	rg_chan_free(cw.done);
	rg_close(cfd);
}

TEST(context_and_rg_close_end_a_parked_receive)
{
	ASSERT_EQ(0, rg_run(ctx_main, NULL));
	EXPECT_NO_GFAIL();
	EXPECT_EQ(-ECANCELED, en.cancelled);
	EXPECT_EQ(3, en.after_cancel);
	EXPECT_LT(en.closed, 0);
	TH_LOG("%s: a receive parked across rg_close returned %zd", rg_poller_name(), en.closed);
}

/* ======================================================================== */
/* Bad arguments                                                            */
/* ======================================================================== */

static struct {
	rg_recvstream *bad_fd;
	int bad_fd_errno;
	ssize_t null_stream;
	ssize_t zero_len;
} ba;

static void bad_main(void *arg)
{
	int cfd, sfd;
	char b;

	errno = 0;
	ba.bad_fd = rg_recvstream_open(-1);
	ba.bad_fd_errno = errno;
	ba.null_stream = rg_recvstream_recv(NULL, &b, 1);
	if (!GCHECK(tcp_pair(&cfd, &sfd) == 0, "tcp_pair"))
		return;
	rg_recvstream *s = rg_recvstream_open(sfd);
	ba.zero_len = rg_recvstream_recv(s, &b, 0);
	rg_recvstream_close(s);
	rg_recvstream_close(NULL);
	rg_close(cfd);
	rg_close(sfd);
}

TEST(bad_arguments)
{
	errno = 0;
	EXPECT_EQ(NULL, rg_recvstream_open(0)); /* outside rg_run */
	EXPECT_EQ(EPERM, errno);
	ASSERT_EQ(0, rg_run(bad_main, NULL));
	EXPECT_NO_GFAIL();
	EXPECT_EQ(NULL, ba.bad_fd);
	EXPECT_EQ(EINVAL, ba.bad_fd_errno);
	EXPECT_EQ(-EINVAL, ba.null_stream);
	EXPECT_EQ(0, ba.zero_len);
}

TEST_HARNESS_MAIN
