// SPDX-License-Identifier: BSD-2-Clause
/*
 * The USDT probes' semaphores (probes.h): a tracer that attaches to a probe
 * raises its counter, and RG_PROBE fires only while it is non-zero. They
 * live in ".probes", where sys/sdt.h's tools look for them.
 */
#include "probes.h"

#define RG_PROBE_SEMAPHORE_DEF(name) \
	volatile unsigned short ringo_##name##_semaphore __attribute__((section(".probes"), used));
RG_PROBES(RG_PROBE_SEMAPHORE_DEF)
