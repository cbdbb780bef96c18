/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Broken invariants (where Go panics or throws): print "ringo: fatal: <reason>"
 * and a goroutine dump to stderr, then abort. Async-signal-safe output only,
 * so it also works from the stack-overflow handler.
 */
#ifndef RINGO_FATAL_H
#define RINGO_FATAL_H

__attribute__((noreturn, format(printf, 1, 2), cold)) void rg_fatal(const char *fmt, ...);

/* Install the SIGSEGV/SIGBUS handler that reports goroutine stack overflows. */
void rg_fatal_install_handlers(void);

/* Give the calling thread an alternate signal stack; returns the mapping (or NULL). */
void *rg_sigstack_alloc(void);
void rg_sigstack_free(void *stack);

#endif /* RINGO_FATAL_H */
