// SPDX-License-Identifier: BSD-2-Clause
/*
 * ringo-httpd (examples/httpd/) from the outside: each test starts the
 * binary on 127.0.0.1:0, finds its port in the line it prints on start, and
 * talks HTTP to it over loopback with plain blocking sockets.
 *
 * The binary is $RINGO_HTTPD (tests/meson.build sets it), else
 * ../examples/ringo-httpd beside this test's directory; without one (no
 * libhttp-parser-dev, or the Kbuild build) every test skips.
 *
 * Nothing waits by sleeping: the tests wait for the server's own lines on
 * its stdout, for bytes or EOF on a socket (poll with a generous limit), or
 * for the process to exit (a pidfd).
 */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "rg_test.h"

#define BIG_FILE_SIZE (8u << 20) /* larger than both sockets' buffers: a send must wait */
#define WAIT_MS 10000		 /* how long anything may take before the test fails */

static const char hello[] = "hello, world\n";
static const char file_a[] = "file a\n";

struct httpd {
	pid_t pid;
	int out_fd; /* the server's stdout */
	int port;
	char root[64];
	char out[8192];
	size_t out_len;
};

static const char *httpd_binary(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("RINGO_HTTPD");
	char self[PATH_MAX - 64];
	ssize_t n;

	if (env && *env)
		return access(env, X_OK) ? NULL : env;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	char *slash = strrchr(self, '/');

	if (!slash)
		return NULL;
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/../examples/ringo-httpd", self);
	return access(path, X_OK) ? NULL : path;
}

#define NEED_HTTPD()                                                                         \
	do {                                                                                 \
		if (!httpd_binary())                                                         \
			SKIP(return, "ringo-httpd not built (libhttp-parser-dev missing?)"); \
	} while (0)

/* Read the server's stdout until it contains want or WAIT_MS pass; true if it does. */
static bool httpd_wait_output(struct httpd *h, const char *want)
{
	uint64_t deadline = rt_now_ns() + (uint64_t)WAIT_MS * 1000000;

	while (!strstr(h->out, want)) {
		uint64_t now = rt_now_ns();
		struct pollfd pfd = {h->out_fd, POLLIN, 0};

		if (now >= deadline || h->out_len >= sizeof(h->out) - 1)
			return false;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		ssize_t n = read(h->out_fd, h->out + h->out_len, sizeof(h->out) - 1 - h->out_len);

		if (n <= 0)
			return false;
		h->out_len += (size_t)n;
		h->out[h->out_len] = '\0';
	}
	return true;
}

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
}

/* The byte at offset i of big.bin, so a test can check every byte it gets back. */
static char big_byte(size_t i)
{
	return (char)('A' + (i * 7 + i / 4096) % 26);
}

/*
 * Start ringo-httpd with a fresh --root (a.txt, big.bin) and extra options;
 * 0 with h->port set, or -1 (the reason logged).
 */
static int httpd_start(struct httpd *h, const char *header_timeout_ms)
{
	const char *bin = httpd_binary();
	int outp[2];

	memset(h, 0, sizeof(*h));
	h->pid = -1;
	snprintf(h->root, sizeof(h->root), "/tmp/httpd_test.XXXXXX");
	if (!mkdtemp(h->root))
		return -1;
	write_file(h->root, "a.txt", file_a, sizeof(file_a) - 1);
	char *big = malloc(BIG_FILE_SIZE);

	if (!big)
		return -1;
	for (size_t i = 0; i < BIG_FILE_SIZE; i++)
		big[i] = big_byte(i);
	write_file(h->root, "big.bin", big, BIG_FILE_SIZE);
	free(big);

	if (pipe2(outp, O_CLOEXEC))
		return -1;
	fflush(stdout);
	fflush(stderr);
	h->pid = fork();
	if (h->pid < 0)
		return -1;
	if (h->pid == 0) {
		/* Never outlive the test, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(outp[1], STDOUT_FILENO);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--root", h->root, "--header-timeout",
		      header_timeout_ms, "--shutdown-timeout", "8000", (char *)NULL);
		_exit(127);
	}
	close(outp[1]);
	h->out_fd = outp[0];
	if (!httpd_wait_output(h, "\n") || !strstr(h->out, "listening on ")) {
		fprintf(stderr, "# ringo-httpd printed no start line; stdout: %s\n", h->out);
		return -1;
	}
	const char *colon = strchr(strstr(h->out, "listening on "), ' ');

	colon = colon ? strchr(colon + 1, ' ') : NULL; /* "listening on HOST:PORT" */
	colon = colon ? strchr(colon, ':') : NULL;
	h->port = colon ? atoi(colon + 1) : 0;
	return h->port > 0 ? 0 : -1;
}

/* Wait for the server to exit (pidfd, no sleeping); its wait status, or -1 after WAIT_MS. */
static int httpd_wait_exit(struct httpd *h)
{
	int pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0), status = -1;
	struct pollfd pfd = {pidfd, POLLIN, 0};

	if (pidfd >= 0 && poll(&pfd, 1, WAIT_MS) == 1 && waitpid(h->pid, &status, 0) == h->pid)
		h->pid = -1;
	if (pidfd >= 0)
		close(pidfd);
	return h->pid < 0 ? status : -1;
}

/* Kill what is left and remove the root. */
static void httpd_cleanup(struct httpd *h)
{
	char cmd[128];

	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		h->pid = -1;
	}
	if (h->out_fd > 0)
		close(h->out_fd);
	if (h->root[0]) {
		snprintf(cmd, sizeof(cmd), "%s/a.txt", h->root);
		unlink(cmd);
		snprintf(cmd, sizeof(cmd), "%s/big.bin", h->root);
		unlink(cmd);
		rmdir(h->root);
	}
}

static int dial(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {WAIT_MS / 1000, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return -1;
	}
	/* A hung server fails the test instead of stalling it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static bool send_str(int fd, const char *s, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		off += (size_t)n;
	}
	return true;
}

#define SEND(fd, s) send_str((fd), (s), strlen(s))

/* A connection's bytes, so pipelined responses can be read one at a time. */
struct reader {
	int fd;
	char *buf;
	size_t len, cap;
};

struct response {
	int status;
	char head[4096];
	char *body;
	size_t body_len;
};

/* More bytes into r; 0 at EOF, -1 on error or timeout. */
static ssize_t reader_fill(struct reader *r)
{
	if (r->cap - r->len < 65536) {
		size_t cap = r->cap ? r->cap * 2 : 1 << 20;
		char *bigger = realloc(r->buf, cap);

		if (!bigger)
			return -1;
		r->buf = bigger;
		r->cap = cap;
	}
	ssize_t n = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);

	if (n > 0)
		r->len += (size_t)n;
	return n;
}

static void reader_consume(struct reader *r, size_t n)
{
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
}

/* One response (head and Content-Length body); false at EOF or error first. */
static bool read_response(struct reader *r, struct response *resp)
{
	char *end;

	memset(resp, 0, sizeof(*resp));
	while (!(r->len && (end = memmem(r->buf, r->len, "\r\n\r\n", 4)))) {
		if (reader_fill(r) <= 0)
			return false;
	}
	size_t head_len = (size_t)(end - r->buf) + 4;

	if (head_len >= sizeof(resp->head))
		return false;
	memcpy(resp->head, r->buf, head_len);
	resp->head[head_len] = '\0';
	reader_consume(r, head_len);
	if (sscanf(resp->head, "HTTP/1.%*d %d", &resp->status) != 1)
		return false;
	const char *cl = strcasestr(resp->head, "\r\ncontent-length:");
	size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;

	while (r->len < want) {
		if (reader_fill(r) <= 0)
			return false;
	}
	resp->body = malloc(want + 1);
	if (!resp->body)
		return false;
	memcpy(resp->body, r->buf, want);
	resp->body[want] = '\0';
	resp->body_len = want;
	reader_consume(r, want);
	return true;
}

/* True when the server closes the connection (EOF or reset) within WAIT_MS. */
static bool closed_by_server(int fd)
{
	char scratch[4096];

	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};

		if (poll(&pfd, 1, WAIT_MS) != 1)
			return false;
		ssize_t n = recv(fd, scratch, sizeof(scratch), 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0)
			return false;
	}
}

/* GET path on a fresh connection; the response in *resp. */
static bool get_once(int port, const char *path, struct response *resp)
{
	char req[512];
	struct reader r = {.fd = dial(port)};
	bool ok;

	if (r.fd < 0)
		return false;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
	ok = SEND(r.fd, req) && read_response(&r, resp);
	close(r.fd);
	free(r.buf);
	return ok;
}

TEST(get_root_says_hello)
{
	struct httpd h;
	struct response resp;

	NEED_HTTPD();
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	ASSERT_TRUE(get_once(h.port, "/", &resp));
	EXPECT_EQ(200, resp.status) TH_LOG("head:\n%s", resp.head);
	EXPECT_STREQ(hello, resp.body);
	EXPECT_NE(NULL, strcasestr(resp.head, "\r\nDate: "));
	free(resp.body);

	ASSERT_TRUE(get_once(h.port, "/a.txt", &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ(file_a, resp.body);
	free(resp.body);
	httpd_cleanup(&h);
}

/* Three requests in one write: three answers, in order, and the connection stays open. */
TEST(keep_alive_pipelined_in_order)
{
	struct httpd h;
	struct response resp;
	struct reader r;

	NEED_HTTPD();
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	r = (struct reader){.fd = dial(h.port)};
	ASSERT_LE(0, r.fd);
	ASSERT_TRUE(SEND(r.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
			       "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
			       "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"));
	ASSERT_TRUE(read_response(&r, &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ(hello, resp.body);
	free(resp.body);
	ASSERT_TRUE(read_response(&r, &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ(file_a, resp.body);
	free(resp.body);
	ASSERT_TRUE(read_response(&r, &resp));
	EXPECT_EQ(404, resp.status);
	free(resp.body);

	/* Still open: a fourth request on the same connection. */
	ASSERT_TRUE(SEND(r.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	ASSERT_TRUE(read_response(&r, &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_EQ(NULL, strcasestr(resp.head, "Connection: close"));
	free(resp.body);
	close(r.fd);
	free(r.buf);
	httpd_cleanup(&h);
}

TEST(http10_without_keep_alive_closes)
{
	struct httpd h;
	struct response resp;
	struct reader r;

	NEED_HTTPD();
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	r = (struct reader){.fd = dial(h.port)};
	ASSERT_LE(0, r.fd);
	ASSERT_TRUE(SEND(r.fd, "GET / HTTP/1.0\r\n\r\n"));
	ASSERT_TRUE(read_response(&r, &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ(hello, resp.body);
	free(resp.body);
	EXPECT_TRUE(closed_by_server(r.fd));
	close(r.fd);
	free(r.buf);
	httpd_cleanup(&h);
}

static void expect_status_then_close(struct __test_metadata *_metadata, int port, const char *req,
				     size_t len, int want)
{
	struct response resp;
	struct reader r = {.fd = dial(port)};

	ASSERT_LE(0, r.fd);
	ASSERT_TRUE(send_str(r.fd, req, len));
	ASSERT_TRUE(read_response(&r, &resp));
	EXPECT_EQ(want, resp.status) TH_LOG("request %.40s...: head:\n%s", req, resp.head);
	EXPECT_NE(NULL, strcasestr(resp.head, "Connection: close"));
	EXPECT_TRUE(closed_by_server(r.fd));
	free(resp.body);
	close(r.fd);
	free(r.buf);
}

TEST(malformed_gets_400)
{
	static const char *const bad[] = {
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost x\r\n\r\n", /* a header without a colon */
		"GET / HTTP/9.9.9\r\n\r\n",
		"GET /../etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", /* out of --root */
		"GET /a/%2e%2e/%2E%2E/etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	struct httpd h;

	NEED_HTTPD();
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_status_then_close(_metadata, h.port, bad[i], strlen(bad[i]), 400);
	httpd_cleanup(&h);
}

TEST(oversized_headers_get_431)
{
	struct httpd h;
	char req[16384];
	int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");

	NEED_HTTPD();
	memset(req + n, 'a', 10000);
	memcpy(req + n + 10000, "\r\n\r\n", 4);
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	expect_status_then_close(_metadata, h.port, req, (size_t)n + 10004, 431);
	httpd_cleanup(&h);
}

/* A request that never finishes its headers is dropped after --header-timeout (200 ms here). */
TEST(slowloris_closed_after_header_timeout)
{
	struct httpd h;
	struct response resp;
	uint64_t t0;
	int fd;

	NEED_HTTPD();
	ASSERT_EQ(0, httpd_start(&h, "200"));
	fd = dial(h.port);
	ASSERT_LE(0, fd);
	t0 = rt_now_ns();
	ASSERT_TRUE(SEND(fd, "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "));
	EXPECT_TRUE(closed_by_server(fd));
	TH_LOG("closed after %.0f ms", (double)(rt_now_ns() - t0) / 1e6);
	close(fd);

	/* So is a connection that sends nothing at all. */
	fd = dial(h.port);
	ASSERT_LE(0, fd);
	EXPECT_TRUE(closed_by_server(fd));
	close(fd);

	/* And the server serves on. */
	ASSERT_TRUE(get_once(h.port, "/", &resp));
	EXPECT_EQ(200, resp.status);
	free(resp.body);
	httpd_cleanup(&h);
}

/* Reset a connection in the middle of a large response, several times: the server lives on. */
TEST(peer_reset_mid_response)
{
	struct httpd h;
	struct response resp;
	struct linger abort_close = {1, 0};
	char scratch[4096];

	NEED_HTTPD();
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	for (int i = 0; i < 5; i++) {
		int fd = dial(h.port);

		ASSERT_LE(0, fd);
		ASSERT_TRUE(SEND(fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
				     "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
		/* Some of the response arrived: the server is sending the rest. */
		ASSERT_LT(0, recv(fd, scratch, sizeof(scratch), 0));
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
		close(fd); /* unread data and linger 0: an RST */
	}
	EXPECT_EQ(0, waitpid(h.pid, NULL, WNOHANG)) TH_LOG("ringo-httpd died");
	ASSERT_TRUE(get_once(h.port, "/", &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ(hello, resp.body);
	free(resp.body);
	httpd_cleanup(&h);
}

/* The server's user CPU time so far, in clock ticks (all its threads); -1 if unreadable. */
static long server_utime(pid_t pid)
{
	char path[64], buf[1024], *p;
	long utime = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* After "(comm)": state is field 3, utime field 14. */
	p = strrchr(buf, ')');
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld", &utime) != 1)
		utime = -1;
	return utime;
}

/*
 * GET /spin?us=N burns N us of CPU in a loop without calls (the bimodal
 * benchmark's long request). With one P, a request on another connection is
 * answered while a 600 ms spin runs: only asynchronous preemption can take
 * the P from that loop. Bad queries get 400.
 */
TEST(spin_is_preempted_for_other_connections)
{
	static const char *const bad[] = {
		"GET /spin HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /spin?us=abc HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /spin?us=2000000 HTTP/1.1\r\nHost: t\r\n\r\n", /* above the 1 s cap */
	};
	struct httpd h;
	struct response resp;
	struct reader a, b;
	struct pollfd pa;
	long t0, t;

	NEED_HTTPD();
	setenv("RINGO_MAXPROCS", "1", 1);
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	unsetenv("RINGO_MAXPROCS");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct reader r = {.fd = dial(h.port)};

		ASSERT_LE(0, r.fd);
		ASSERT_TRUE(SEND(r.fd, bad[i]));
		ASSERT_TRUE(read_response(&r, &resp));
		EXPECT_EQ(400, resp.status) TH_LOG("%.30s", bad[i]);
		free(resp.body);
		close(r.fd);
		free(r.buf);
	}

	/* Both connections served once, so both goroutines are parked in a read. */
	a = (struct reader){.fd = dial(h.port)};
	b = (struct reader){.fd = dial(h.port)};
	ASSERT_LE(0, a.fd);
	ASSERT_LE(0, b.fd);
	ASSERT_TRUE(SEND(a.fd, "GET /spin?us=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
	ASSERT_TRUE(read_response(&a, &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ("spun 1 us\n", resp.body);
	free(resp.body);
	ASSERT_TRUE(SEND(b.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	ASSERT_TRUE(read_response(&b, &resp));
	free(resp.body);

	/* The long spin, and proof that it runs: the server's CPU time grows. */
	t0 = server_utime(h.pid);
	ASSERT_LE(0, t0);
	ASSERT_TRUE(SEND(a.fd, "GET /spin?us=600000 HTTP/1.1\r\nHost: t\r\n\r\n"));
	uint64_t deadline = rt_now_ns() + (uint64_t)WAIT_MS * 1000000;
	while ((t = server_utime(h.pid)) >= 0 && t < t0 + 3 && rt_now_ns() < deadline)
		sched_yield();
	ASSERT_LE(t0 + 3, t) TH_LOG("the server did not start spinning");

	/* The other connection is answered meanwhile, and the spin is still on. */
	ASSERT_TRUE(SEND(b.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	ASSERT_TRUE(read_response(&b, &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ(hello, resp.body);
	free(resp.body);
	pa = (struct pollfd){a.fd, POLLIN, 0};
	EXPECT_EQ(0, poll(&pa, 1, 0))
	TH_LOG("the spin ended before the other request was answered");

	ASSERT_TRUE(read_response(&a, &resp));
	EXPECT_EQ(200, resp.status);
	EXPECT_STREQ("spun 600000 us\n", resp.body);
	free(resp.body);
	close(a.fd);
	close(b.fd);
	free(a.buf);
	free(b.buf);
	httpd_cleanup(&h);
}

/*
 * SIGTERM while a large response is on its way and another connection is
 * idle: the idle one is closed, the response arrives whole, then that
 * connection closes and the server exits 0.
 */
TEST(sigterm_finishes_in_flight_then_exits_0)
{
	struct httpd h;
	struct response resp;
	struct reader busy, idle;
	char st[80];
	int status;

	NEED_HTTPD();
	ASSERT_EQ(0, httpd_start(&h, "10000"));
	idle = (struct reader){.fd = dial(h.port)};
	ASSERT_LE(0, idle.fd);
	ASSERT_TRUE(SEND(idle.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
	ASSERT_TRUE(read_response(&idle, &resp));
	EXPECT_EQ(200, resp.status);
	free(resp.body);

	busy = (struct reader){.fd = dial(h.port)};
	ASSERT_LE(0, busy.fd);
	ASSERT_TRUE(SEND(busy.fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
	/* The head arrived, and 8 MiB cannot fit in the sockets: the server is mid-response. */
	ASSERT_LT(0, reader_fill(&busy));

	ASSERT_EQ(0, kill(h.pid, SIGTERM));
	ASSERT_TRUE(httpd_wait_output(&h, "shutting down")) TH_LOG("stdout: %s", h.out);
	EXPECT_TRUE(closed_by_server(idle.fd)) TH_LOG("the idle connection stayed open");

	ASSERT_TRUE(read_response(&busy, &resp));
	EXPECT_EQ(200, resp.status);
	ASSERT_EQ(BIG_FILE_SIZE, resp.body_len);
	size_t bad = 0;

	for (size_t i = 0; i < resp.body_len; i++)
		bad += resp.body[i] != big_byte(i);
	EXPECT_EQ(0, bad);
	free(resp.body);
	EXPECT_TRUE(closed_by_server(busy.fd));

	status = httpd_wait_exit(&h);
	EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
	TH_LOG("ringo-httpd %s; stdout: %s",
	       status == -1 ? "did not exit" : rt_status_str(status, st, sizeof(st)), h.out);
	httpd_wait_output(&h, "stopped");
	EXPECT_NE(NULL, strstr(h.out, "ringo-httpd: stopped\n")) TH_LOG("stdout: %s", h.out);
	close(idle.fd);
	close(busy.fd);
	free(idle.buf);
	free(busy.buf);
	httpd_cleanup(&h);
}

TEST_HARNESS_MAIN
