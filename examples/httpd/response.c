// SPDX-License-Identifier: BSD-2-Clause
/*
 * Response heads, appended to the connection's output buffer: a status
 * line, Date (formatted once a second per connection), Content-Type,
 * Content-Length and, when the connection is about to close,
 * "Connection: close"; the same headers Go's net/http sends.
 */
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

/* Append s (n bytes) at p; the caller reserved the room. */
static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
	char digits[20];
	int n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		*p++ = digits[--n];
	return p;
}

#define PUT_LIT(p, lit) put(p, lit, sizeof(lit) - 1)

/*
 * Pieces, not snprintf: formatting the head with snprintf was 3% of the
 * server's CPU under wrk (vfprintf's machinery for a handful of strings).
 */
void resp_head(struct conn *c, int status, const char *content_type, uint64_t length, bool close,
	       const char *extra_headers)
{
	/* A keep-alive HTTP/1.0 client needs to be told the connection stays open. */
	const char *conn_hdr = close ? "Connection: close\r\n" :
			       (c->parser.http_major == 1 && c->parser.http_minor == 0) ?
				       "Connection: keep-alive\r\n" :
				       "";
	const char *why = reason(status), *date = http_date(c);
	const char *extra = extra_headers ? extra_headers : "";
	size_t why_len = strlen(why), date_len = strlen(date), type_len = strlen(content_type);
	size_t conn_len = strlen(conn_hdr), extra_len = strlen(extra);
	/* The literals below and two numbers, at most 3 and 20 digits. */
	size_t max = 64 + 23 + why_len + date_len + type_len + conn_len + extra_len;

	if (status < 100 || status > 999) {
		c->out_failed = true;
		return;
	}
	if (!out_reserve(c, max))
		return;
	char *p = c->out + c->out_len;
	p = PUT_LIT(p, "HTTP/1.1 ");
	p = put_u64(p, (uint64_t)status);
	*p++ = ' ';
	p = put(p, why, why_len);
	p = PUT_LIT(p, "\r\nDate: ");
	p = put(p, date, date_len);
	p = PUT_LIT(p, "\r\nContent-Type: ");
	p = put(p, content_type, type_len);
	p = PUT_LIT(p, "\r\nContent-Length: ");
	p = put_u64(p, length);
	p = PUT_LIT(p, "\r\n");
	p = put(p, conn_hdr, conn_len);
	p = put(p, extra, extra_len);
	p = PUT_LIT(p, "\r\n");
	c->out_len = (size_t)(p - c->out);
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
