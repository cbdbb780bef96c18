// SPDX-License-Identifier: BSD-2-Clause
/*
 * Static files under --root.
 *
 * A URL path is percent-decoded and split into names; a ".." name is
 * refused (400, as Go's http.FileServer does) rather than resolved, so no
 * spelling of a path can climb out of the root, and NUL bytes are refused.
 * The clean path is opened relative to the root's descriptor with
 * rg_openat. As with nginx and Go, symbolic links inside the root are
 * followed: what the root holds is the operator's choice. Directories serve
 * their index.html; anything but a regular file is 404.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpd.h"

/* Bytes read from a file per rg_pread. */
#define FILE_CHUNK (64 * 1024)

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int files_resolve(const char *path, size_t len, char *out, size_t out_size)
{
	size_t decoded = 0, w = 0;

	if (len == 0 || path[0] != '/' || out_size < len + 1)
		return 400;
	/* Decode first (in place is safe: the writer never passes the reader). */
	for (size_t i = 0; i < len; i++) {
		char ch = path[i];

		if (ch == '%') {
			int hi = i + 2 < len ? hex_value(path[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(path[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return 400;
			ch = (char)(hi * 16 + lo);
			i += 2;
		}
		if (ch == '\0')
			return 400;
		out[decoded++] = ch;
	}
	/* Then drop empty and "." names and refuse "..", again in place. */
	for (size_t i = 0; i < decoded;) {
		size_t start, name_len;

		while (i < decoded && out[i] == '/')
			i++;
		start = i;
		while (i < decoded && out[i] != '/')
			i++;
		name_len = i - start;
		if (name_len == 0 || (name_len == 1 && out[start] == '.'))
			continue;
		if (name_len == 2 && out[start] == '.' && out[start + 1] == '.')
			return 400;
		if (w)
			out[w++] = '/';
		memmove(out + w, out + start, name_len);
		w += name_len;
	}
	out[w] = '\0';
	return 0;
}

static const char *content_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{"html", "text/html; charset=utf-8"},
		{"htm", "text/html; charset=utf-8"},
		{"txt", "text/plain; charset=utf-8"},
		{"css", "text/css; charset=utf-8"},
		{"js", "text/javascript; charset=utf-8"},
		{"json", "application/json"},
		{"xml", "text/xml; charset=utf-8"},
		{"svg", "image/svg+xml"},
		{"png", "image/png"},
		{"jpg", "image/jpeg"},
		{"jpeg", "image/jpeg"},
		{"gif", "image/gif"},
		{"webp", "image/webp"},
		{"ico", "image/x-icon"},
		{"wasm", "application/wasm"},
		{"pdf", "application/pdf"},
	};
	const char *slash = strrchr(name, '/');
	const char *dot = strrchr(slash ? slash : name, '.');

	if (dot) {
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			if (!strcasecmp(dot + 1, types[i].ext))
				return types[i].type;
		}
	}
	return "application/octet-stream";
}

static int open_status(int err)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
	case -ELOOP:
	case -ENAMETOOLONG:
	case -ENXIO:
		return 404;
	case -EACCES:
	case -EPERM:
		return 403;
	default:
		return 500;
	}
}

bool files_serve(struct conn *c, const char *rel, bool head_only, bool close)
{
	const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY |
			  O_NONBLOCK; /* a FIFO must not block open */
	const char *name = rel;
	struct stat st;
	int fd = rg_openat(c->srv->root_fd, rel[0] ? rel : ".", flags, 0);

	if (fd >= 0 && fstat(fd, &st)) {
		rg_close(fd);
		fd = -EIO;
	}
	if (fd >= 0 && S_ISDIR(st.st_mode)) {
		int index = rg_openat(fd, "index.html", flags, 0);

		rg_close(fd);
		fd = index;
		name = "index.html";
		if (fd >= 0 && fstat(fd, &st)) {
			rg_close(fd);
			fd = -EIO;
		}
	}
	if (fd < 0) {
		resp_error(c, open_status(fd), close);
		return true;
	}
	if (!S_ISREG(st.st_mode)) {
		rg_close(fd);
		resp_error(c, 404, close);
		return true;
	}
	resp_head(c, 200, content_type(name), (uint64_t)st.st_size, close, NULL);
	for (off_t off = 0; !head_only && off < st.st_size;) {
		size_t want = (size_t)(st.st_size - off) < FILE_CHUNK ? (size_t)(st.st_size - off) :
									FILE_CHUNK;
		ssize_t n;

		if (!out_reserve(c, want))
			break;
		n = rg_pread(fd, c->out + c->out_len, want, off);
		if (n <= 0) {
			/* The file shrank or failed: the promised length cannot be kept, so close. */
			rg_close(fd);
			return false;
		}
		c->out_len += (size_t)n;
		off += n;
		if (c->out_len >= HTTPD_FLUSH_AT && !out_flush(c))
			break;
	}
	rg_close(fd);
	return !c->out_failed;
}
