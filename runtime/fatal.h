/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Broken invariants (where Go panics or throws): print "ringo: fatal: <reason>"
 * and a goroutine dump to stderr, then abort. Async-signal-safe output only,
 * so it also works from the stack-overflow handler.
 */
#ifndef RINGO_FATAL_H
#define RINGO_FATAL_H

#include <stdbool.h>

__attribute__((noreturn, format(printf, 1, 2), cold)) void rg_fatal(const char *fmt, ...);

struct rg_m;
/*
 * In the preemption signal's handler: when a dump asked m for its running
 * goroutine's frames, walk them from the interrupted context uc (frame
 * pointers within that goroutine's stack) and publish them. True when it
 * did: the handler then leaves the goroutine alone.
 */
bool rg_dump_snapshot(struct rg_m *m, const void *uc);

/* Install the SIGSEGV/SIGBUS handler that reports goroutine stack overflows. */
void rg_fatal_install_handlers(void);

/* Give the calling thread an alternate signal stack; returns the mapping (or NULL). */
void *rg_sigstack_alloc(void);
void rg_sigstack_free(void *stack);

#endif /* RINGO_FATAL_H */
