/* SPDX-License-Identifier: BSD-2-Clause */
/* Program counters to names for goroutine dumps. */
#ifndef RINGO_SYMBOLIZE_H
#define RINGO_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

/* "function+off" and, with debug info, "file:line" (libdwfl), else what dladdr knows. */
void rg_symbolize(uintptr_t pc, char *buf, size_t len);

/* dladdr only: no allocation, usable from a signal handler on a small stack. */
void rg_symbolize_simple(uintptr_t pc, char *buf, size_t len);

#endif /* RINGO_SYMBOLIZE_H */
