/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ringo-httpd's parts: main.c (options, listener, accept loop, signals,
 * shutdown), conn.c (one goroutine per connection: read, parse, answer),
 * response.c (status lines and headers), files.c (--root) and spin.c
 * (GET /spin, a CPU-bound request for benchmarks).
 */
#ifndef RINGO_HTTPD_H
#define RINGO_HTTPD_H

#include <http_parser.h>
#include <ringo.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HTTPD_NAME "ringo-httpd"

/* A request line plus headers larger than this is answered 431 (nginx's limit too; Go's is 1 MB). */
#define HTTPD_MAX_HEADER_BYTES (8 * 1024)
#define HTTPD_READ_BUF (8 * 1024)
/* Past this many bytes of batched responses, send before parsing further requests. */
#define HTTPD_FLUSH_AT (64 * 1024)
/* How long a closing connection waits for the peer to see our last response (Go's rstAvoidanceDelay). */
#define HTTPD_LINGER_NS (500 * 1000 * 1000LL)

#define MS_TO_NS(ms) ((int64_t)(ms)*1000000)

struct server {
	int listen_fd;
	int root_fd; /* --root, opened O_PATH; -1 without one */
	int64_t header_timeout, idle_timeout, shutdown_timeout; /* ns */
	long max_conns;						/* 0: no cap */

	/*
	 * Two cancellation scopes. graceful ends the accept loop and every
	 * wait for a request that has not started (idle keep-alive
	 * connections); hard, its parent, ends all connection I/O when the
	 * shutdown timeout runs out. A request in flight uses hard only, so
	 * a graceful shutdown lets it finish.
	 */
	rg_ctx *hard, *graceful;
	atomic_bool shutting_down;

	rg_chan *slots; /* --max-conns: a token per open connection; NULL without a cap */
	rg_wg running;	/* the accept loop and every connection goroutine */
	atomic_long open_conns;
	rg_chan *accept_done; /* closed when the accept loop ends */
	int accept_err;	      /* why it ended, if not shutdown: -errno */
	rg_chan *signals;     /* SIGTERM and SIGINT, from rg_signal_notify */
	rg_chan *all_done;    /* closed when every goroutine in running ended */
};

/* The request being parsed, filled in by http_parser's callbacks. */
struct request {
	char url[HTTPD_MAX_HEADER_BYTES + 1];
	size_t url_len;
	bool url_too_long;
	bool in_message;   /* a request has begun and is not complete */
	bool headers_done; /* ... and its headers are complete (its body may follow) */
	bool complete;	   /* on_message_complete fired; the parser is paused */
	bool keep_alive;
	bool head_only;	 /* a HEAD request: responses carry no body */
	int64_t started; /* rg_now() at its first byte (the first request: at accept) */
};

struct conn {
	struct server *srv;
	int fd;
	http_parser parser;
	struct request req;
	uint64_t requests; /* answered so far */

	/* Responses to every request parsed from one read, sent with one rg_send. */
	char *out;
	size_t out_len, out_cap;
	bool out_failed; /* out of memory or a send failed: drop the connection */

	time_t date_sec; /* the second date was formatted for */
	char date[40];	 /* "Thu, 27 Nov 2026 07:00:00 GMT" */

	char rbuf[HTTPD_READ_BUF];
};

/* conn.c */
void http_parser_setup(void);
void conn_serve(void *arg); /* goroutine; arg is a struct conn * from conn_new */
struct conn *conn_new(struct server *srv, int fd);
void conn_free(struct conn *c);
bool out_reserve(struct conn *c, size_t more);
void out_append(struct conn *c, const void *data, size_t len);
bool out_flush(struct conn *c);

/* response.c */
/* Headers of a response with this status and body length; close adds "Connection: close". */
void resp_head(struct conn *c, int status, const char *content_type, uint64_t length, bool close,
	       const char *extra_headers);
/* A complete response whose body is the status line's text, as Go sends for errors. */
void resp_error(struct conn *c, int status, bool close);
void resp_hello(struct conn *c, bool head_only, bool close);

/* spin.c: GET /spin?us=N burns N µs of CPU in a call-free loop (bench/net/run --only bimodal) */
void spin_calibrate(void);
void resp_spin(struct conn *c, const char *query, size_t query_len, bool head_only, bool close);

/* files.c */
/*
 * Clean an origin-form URL path for use under --root: percent-decoded, with
 * no "..", NUL or empty name; "" for "/". Returns 0 and the path relative to
 * the root in out, or the HTTP status to answer (400) when it is unsafe.
 * out may be path itself: the result is never longer.
 */
int files_resolve(const char *path, size_t len, char *out, size_t out_size);
/*
 * Answer GET or HEAD of rel (from files_resolve) under srv->root_fd:
 * headers, then the body through rg_pread in chunks. Returns false when the
 * connection must close (the body came short).
 */
bool files_serve(struct conn *c, const char *rel, bool head_only, bool close);

#endif /* RINGO_HTTPD_H */
