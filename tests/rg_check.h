// SPDX-License-Identifier: BSD-2-Clause
/*
 * Checks made by goroutines. They cannot ASSERT: that longjmps back into the
 * TEST body, which from a goroutine's stack (perhaps on another thread) would
 * wreck the runtime. They record failures here instead (the count, and the
 * first one described) and the TEST expects none once rg_run has returned.
 * Each TEST runs in its own process, so the record starts zeroed.
 */
#ifndef RG_CHECK_H
#define RG_CHECK_H

#include <stdarg.h>
#include <stdbool.h>

#include "rg_test.h"

static struct {
	_Atomic int n;
	char first[768];
} gfail __attribute__((unused));

static inline void __attribute__((format(printf, 3, 4)))
gfail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (atomic_fetch_add(&gfail.n, 1) != 0)
		return;
	k = snprintf(gfail.first, sizeof(gfail.first), "%s:%d: ", file, line);
	if (k < 0 || (size_t)k >= sizeof(gfail.first))
		return;
	va_start(ap, fmt);
	vsnprintf(gfail.first + k, sizeof(gfail.first) - (size_t)k, fmt, ap);
	va_end(ap);
}

/* Record a failure. */
#define GFAIL(...) gfail_at(__FILE__, __LINE__, __VA_ARGS__)

/* Record a failure when cond is false. */
#define CHECK(cond, ...)                                           \
	do {                                                       \
		if (!(cond))                                       \
			gfail_at(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

/* The same with the condition's text first, and cond as its value, to stop early on. */
#define GCHECK(cond, fmt, ...)                                                          \
	({                                                                              \
		bool ok_ = (cond);                                                      \
		if (!ok_)                                                               \
			gfail_at(__FILE__, __LINE__, "%s: " fmt, #cond, ##__VA_ARGS__); \
		ok_;                                                                    \
	})

/* In the TEST, after rg_run: no goroutine failed a check. */
#define EXPECT_NO_GFAIL()                                                                \
	EXPECT_EQ(0, atomic_load(&gfail.n))                                              \
	TH_LOG("%d check(s) failed in goroutines; the first: %s", atomic_load(&gfail.n), \
	       gfail.first)
#define EXPECT_NO_ERRS() EXPECT_NO_GFAIL()

#endif /* RG_CHECK_H */
