// SPDX-License-Identifier: BSD-2-Clause
/* x86_64 half of the arch interface that needs no assembly. */
#include "arch.h"

void rg_arch_gstart(void);

enum {
	SLOT_CTL = 0, /* MXCSR | x87 control word << 32 */
	SLOT_R15,
	SLOT_R14,
	SLOT_R13,
	SLOT_R12,
	SLOT_RBX,
	SLOT_RBP,
	SLOT_RET,
	SLOT_COUNT,
};

#define MXCSR_DEFAULT 0x1f80u	/* all exceptions masked, round to nearest */
#define X87_CW_DEFAULT 0x037fu	/* extended precision, all exceptions masked */

void *rg_arch_stack_init(void *top, void (*entry)(void *, void *), void *arg)
{
	/* After the switch pops SLOT_COUNT words, rsp == top: 16-byte aligned
	 * before rg_arch_gstart's call, as the ABI wants. */
	uint64_t *sp = (uint64_t *)top - SLOT_COUNT;

	sp[SLOT_CTL] = MXCSR_DEFAULT | ((uint64_t)X87_CW_DEFAULT << 32);
	sp[SLOT_R15] = sp[SLOT_R14] = sp[SLOT_R13] = 0;
	sp[SLOT_R12] = (uint64_t)(uintptr_t)arg;
	sp[SLOT_RBX] = (uint64_t)(uintptr_t)entry;
	sp[SLOT_RBP] = 0;
	sp[SLOT_RET] = (uint64_t)(uintptr_t)rg_arch_gstart;
	return sp;
}

uintptr_t rg_arch_saved_fp(void *saved_sp)
{
	return ((uintptr_t *)saved_sp)[SLOT_RBP];
}

uintptr_t rg_arch_saved_pc(void *saved_sp)
{
	return ((uintptr_t *)saved_sp)[SLOT_RET];
}
