// SPDX-License-Identifier: BSD-2-Clause
/*
 * One goroutine per connection: read, parse every complete request in what
 * arrived (pipelining), answer them in order into one buffer, send it with
 * one rg_send, read again.
 *
 * Which context a read waits under says what may end it:
 *  - waiting for a request to begin (a new connection, or an idle
 *    keep-alive one): srv->graceful with a timeout (the header timeout for
 *    the first request, as Go's ReadHeaderTimeout; then the idle timeout),
 *    so a shutdown closes idle connections at once;
 *  - in the middle of a request: srv->hard with the header timeout counted
 *    from the request's first byte (slowloris), so a shutdown lets it finish.
 * Sends use srv->hard: cancelled only when the shutdown timeout runs out.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"

static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;

	c->req.in_message = true;
	c->req.headers_done = false;
	c->req.url_len = 0;
	c->req.url_too_long = false;
	c->req.head_only = false;
	/* The first request's clock started at accept (Go's too): a silent start earns no extra time. */
	if (c->requests)
		c->req.started = rg_now();
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct request *r = &((struct conn *)p->data)->req;

	/* The URL may come in pieces, split across reads. */
	if (len > sizeof(r->url) - 1 - r->url_len) {
		r->url_too_long = true;
		return 0;
	}
	memcpy(r->url + r->url_len, at, len);
	r->url_len += len;
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;

	c->req.headers_done = true;
	c->req.keep_alive = http_should_keep_alive(p);
	return 0;
}

/* Pause, so http_parser_execute returns and the request is answered before the next is parsed. */
static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;

	c->req.in_message = false;
	c->req.complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_headers_complete = on_headers_complete,
	.on_message_complete = on_message_complete,
};

void http_parser_setup(void)
{
	/* The parser counts the request line and the headers against this (HPE_HEADER_OVERFLOW). */
	http_parser_set_max_header_size(HTTPD_MAX_HEADER_BYTES);
}

struct conn *conn_new(struct server *srv, int fd)
{
	struct conn *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	c->srv = srv;
	c->fd = fd;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	/* Field by field: zeroing url too would touch 8 KiB per connection for nothing. */
	c->req.url_len = 0;
	c->req.url_too_long = c->req.in_message = c->req.headers_done = false;
	c->req.complete = c->req.keep_alive = c->req.head_only = false;
	c->req.started = rg_now();
	c->requests = 0;
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	c->out_failed = false;
	c->date_sec = 0;
	return c;
}

void conn_free(struct conn *c)
{
	free(c->out);
	free(c);
}

bool out_reserve(struct conn *c, size_t more)
{
	if (c->out_cap - c->out_len >= more)
		return true;
	size_t cap = c->out_cap ? c->out_cap : 4096;

	while (cap - c->out_len < more)
		cap *= 2;
	char *bigger = realloc(c->out, cap);

	if (!bigger) {
		c->out_failed = true;
		return false;
	}
	c->out = bigger;
	c->out_cap = cap;
	return true;
}

void out_append(struct conn *c, const void *data, size_t len)
{
	if (out_reserve(c, len)) {
		memcpy(c->out + c->out_len, data, len);
		c->out_len += len;
	}
}

/* Send everything batched so far; false when the peer is gone or the shutdown timed out. */
bool out_flush(struct conn *c)
{
	size_t off = 0;

	while (off < c->out_len && !c->out_failed) {
		ssize_t n = rg_send_ctx(c->srv->hard, c->fd, c->out + off, c->out_len - off,
					MSG_NOSIGNAL);

		if (n <= 0)
			c->out_failed = true;
		else
			off += (size_t)n;
	}
	c->out_len = 0;
	return !c->out_failed;
}

/* Answer the request the parser just completed. Returns false when the connection must close. */
static bool answer(struct conn *c)
{
	struct server *srv = c->srv;
	struct request *r = &c->req;
	enum http_method method = (enum http_method)c->parser.method;
	bool head_only = r->head_only = method == HTTP_HEAD;
	/* Upgrade (or CONNECT) leaves the rest of the stream not HTTP: answer, then close. */
	bool close = !r->keep_alive || c->parser.upgrade ||
		     atomic_load_explicit(&srv->shutting_down, memory_order_relaxed);
	struct http_parser_url u;
	int status;

	if (r->url_too_long) {
		resp_error(c, 414, true);
		return false;
	}
	if (method != HTTP_GET && method != HTTP_HEAD) {
		resp_head(c, 405, "text/plain; charset=utf-8",
			  sizeof("405 Method Not Allowed\n") - 1, close, "Allow: GET, HEAD\r\n");
		if (!head_only)
			out_append(c, "405 Method Not Allowed\n",
				   sizeof("405 Method Not Allowed\n") - 1);
		return !close;
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(r->url, r->url_len, 0, &u) || !(u.field_set & (1 << UF_PATH))) {
		resp_error(c, 400, true);
		return false;
	}
	char *path = r->url + u.field_data[UF_PATH].off;
	size_t path_len = u.field_data[UF_PATH].len;

	if (path_len == 1 && path[0] == '/') {
		resp_hello(c, head_only, close);
		return !close;
	}
	if (path_len == 5 && memcmp(path, "/spin", 5) == 0) {
		const char *q = u.field_set & (1 << UF_QUERY) ? r->url + u.field_data[UF_QUERY].off : "";
		size_t q_len = u.field_set & (1 << UF_QUERY) ? u.field_data[UF_QUERY].len : 0;

		resp_spin(c, q, q_len, head_only, close);
		return !close;
	}
	if (srv->root_fd < 0) {
		resp_error(c, 404, close);
		return !close;
	}
	/* Resolved in place: the clean path is never longer. */
	status = files_resolve(path, path_len, path, path_len + 1);
	if (status) {
		resp_error(c, status, true);
		return false;
	}
	return files_serve(c, path, head_only, close) && !close;
}

/*
 * Parse n bytes of rbuf, answering each complete request. Returns false
 * when the connection must close after the batched responses are sent.
 */
static bool parse_and_answer(struct conn *c, size_t n)
{
	size_t off = 0;

	while (off < n) {
		size_t parsed = http_parser_execute(&c->parser, &parser_settings, c->rbuf + off,
						    n - off);
		enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);

		off += parsed;
		if (c->req.complete) {
			c->req.complete = false;
			c->requests++;
			http_parser_pause(&c->parser, 0);
			if (!answer(c) || c->out_failed)
				return false;
			if (c->out_len >= HTTPD_FLUSH_AT && !out_flush(c))
				return false;
			continue;
		}
		if (err != HPE_OK) {
			/* Go answers a request whose headers are too large with 431, anything unparsable with 400. */
			resp_error(c, err == HPE_HEADER_OVERFLOW ? 431 : 400, true);
			return false;
		}
		if (parsed == 0)
			break; /* cannot happen without an error; never spin */
	}
	return true;
}

/*
 * After the last response: stop sending, and read (and drop) what the peer
 * still sends until it closes or a short time passes, so that closing with
 * unread data does not make the kernel reset the connection and destroy
 * the response before the peer read it.
 */
static void linger_close(struct conn *c)
{
	rg_ctx *ctx = rg_ctx_with_timeout(c->srv->hard, HTTPD_LINGER_NS);

	shutdown(c->fd, SHUT_WR);
	if (ctx) {
		while (rg_recv_ctx(ctx, c->fd, c->rbuf, sizeof(c->rbuf), 0) > 0)
			;
		rg_ctx_free(ctx);
	}
}

/* Wait for and read the next bytes under the context the connection's state calls for. */
static ssize_t read_more(struct conn *c, bool first)
{
	struct server *srv = c->srv;
	rg_ctx *ctx;
	ssize_t n;

	if (!c->req.in_message)
		ctx = rg_ctx_with_timeout(srv->graceful,
					  first ? srv->header_timeout : srv->idle_timeout);
	else if (!c->req.headers_done)
		ctx = rg_ctx_with_deadline(srv->hard, c->req.started + srv->header_timeout);
	else /* a body, read only to skip it: each read may take the idle timeout */
		ctx = rg_ctx_with_timeout(srv->hard, srv->idle_timeout);
	if (!ctx)
		return -ENOMEM;
	n = rg_recv_ctx(ctx, c->fd, c->rbuf, sizeof(c->rbuf), 0);
	rg_ctx_free(ctx);
	return n;
}

void conn_serve(void *arg)
{
	struct conn *c = arg;
	struct server *srv = c->srv;
	bool first = true, keep = true;

	while (keep) {
		ssize_t n = read_more(c, first);

		first = false;
		if (n <= 0)
			break; /* peer closed, reset, timed out, or shutdown */
		keep = parse_and_answer(c, (size_t)n);
		if (c->out_failed || (c->out_len && !out_flush(c)))
			break;
		if (!keep) {
			linger_close(c);
			break;
		}
	}
	rg_close(c->fd);
	conn_free(c);
	atomic_fetch_sub_explicit(&srv->open_conns, 1, memory_order_relaxed);
	if (srv->slots)
		rg_chan_tryrecv(srv->slots, NULL); /* give back the --max-conns slot */
	rg_wg_done(&srv->running);
}
