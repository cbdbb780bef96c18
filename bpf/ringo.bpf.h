/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0-only) */
/* Helpers shared by ringo's BPF programs. */
#ifndef RINGO_BPF_H
#define RINGO_BPF_H

/* floor(log2(v)) for v > 0, 0 for 0: the slot of v in a log2 histogram. */
static __always_inline __u32 ringo_log2(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFFULL) << 5;
	v >>= shift;
	r |= shift;
	shift = (v > 0xFFFF) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 ringo_slot(__u64 v, __u32 max_slots)
{
	__u32 s = ringo_log2(v);

	return s < max_slots ? s : max_slots - 1;
}

#endif /* RINGO_BPF_H */
