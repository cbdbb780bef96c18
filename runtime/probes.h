/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * USDT probes, provider "ringo". A probe that nobody traces is a single nop;
 * bpftrace, perf and libbpf attach to them by name (see tools/).
 * Integer arguments only: libbpf 1.1 cannot decode SIB operands, hence "nr".
 */
#ifndef RINGO_PROBES_H
#define RINGO_PROBES_H

#if defined(__has_include) && __has_include(<sys/sdt.h>) && !defined(RINGO_NO_PROBES)
#define STAP_SDT_ARG_CONSTRAINT nr
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>
#define RG_PROBE(name, ...) STAP_PROBEV(ringo, name, ##__VA_ARGS__)
#else
#define RG_PROBE(name, ...) ((void)0)
#endif

#endif /* RINGO_PROBES_H */
