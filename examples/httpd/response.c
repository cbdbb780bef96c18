// SPDX-License-Identifier: BSD-2-Clause
/*
 * Response heads, appended to the connection's output buffer: a status
 * line, Date (formatted once a second per connection), Content-Type,
 * Content-Length and, when the connection is about to close,
 * "Connection: close"; the same headers Go's net/http sends.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "httpd.h"

static const char hello_body[] = "hello, world\n";

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

/* The IMF-fixdate of now (RFC 9110), cached for the current second. */
static const char *http_date(struct conn *c)
{
	time_t now = time(NULL);

	if (now != c->date_sec) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(c->date, sizeof(c->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		c->date_sec = now;
	}
	return c->date;
}

void resp_head(struct conn *c, int status, const char *content_type, uint64_t length, bool close,
	       const char *extra_headers)
{
	/* A keep-alive HTTP/1.0 client needs to be told the connection stays open. */
	const char *conn_hdr = close ? "Connection: close\r\n" :
			       (c->parser.http_major == 1 && c->parser.http_minor == 0) ?
				       "Connection: keep-alive\r\n" :
				       "";
	int n;

	if (!out_reserve(c, 512))
		return;
	n = snprintf(c->out + c->out_len, c->out_cap - c->out_len,
		     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %" PRIu64
		     "\r\n%s%s\r\n",
		     status, reason(status), http_date(c), content_type, length, conn_hdr,
		     extra_headers ? extra_headers : "");
	if (n > 0 && (size_t)n < c->out_cap - c->out_len)
		c->out_len += (size_t)n;
	else
		c->out_failed = true; /* a head never comes near 512 bytes */
}

void resp_error(struct conn *c, int status, bool close)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));

	resp_head(c, status, "text/plain; charset=utf-8", (uint64_t)n, close, NULL);
	if (!c->req.head_only)
		out_append(c, body, (size_t)n);
}

void resp_hello(struct conn *c, bool head_only, bool close)
{
	resp_head(c, 200, "text/plain; charset=utf-8", sizeof(hello_body) - 1, close, NULL);
	if (!head_only)
		out_append(c, hello_body, sizeof(hello_body) - 1);
}
