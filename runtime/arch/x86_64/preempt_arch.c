// SPDX-License-Identifier: BSD-2-Clause
/*
 * x86_64 half of asynchronous preemption that needs no assembly: how much
 * vector state the trampoline (preempt.S) saves and how, and the ucontext
 * edits of the signal handler.
 */
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include "arch.h"

#define XMODE_FXSAVE 0
#define XMODE_XSAVE 1
#define XMODE_XSAVEC 2

#define REDZONE 128

/*
 * AMX tile state (XCR0 bits 17, 18) is left out: about 8 KiB, and its
 * component is armed by XFD until the program asks the kernel for it.
 * Code using AMX must run with preemption disabled.
 */
#define XFEATURE_AMX ((1ull << 17) | (1ull << 18))

/* Read by preempt.S. */
uint32_t rg_arch_xsave_mode;
uint64_t rg_arch_xsave_size = 512;
uint64_t rg_arch_xsave_mask;
bool rg_arch_have_avx;
uint32_t rg_arch_mxcsr_default = 0x1f80;

static uint64_t xgetbv(uint32_t idx)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(idx));
	return ((uint64_t)hi << 32) | lo;
}

/* The size of a compacted (XSAVEC) area holding exactly the components in mask. */
static uint64_t xsavec_size(uint64_t mask)
{
	uint64_t size = 576; /* legacy region + header */

	for (unsigned i = 2; i < 63; i++) {
		unsigned a, b, c, d;

		if (!(mask & (1ull << i)))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);
		if (c & 2) /* this component starts 64-byte aligned */
			size = (size + 63) & ~63ull;
		size += a;
	}
	return size;
}

/* The standard-format (XSAVE) size: components live at fixed offsets. */
static uint64_t xsave_size(uint64_t mask)
{
	uint64_t size = 576;

	for (unsigned i = 2; i < 63; i++) {
		unsigned a, b, c, d;

		if (!(mask & (1ull << i)))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);
		if ((uint64_t)b + a > size)
			size = (uint64_t)b + a;
	}
	return size;
}

/* Is a CET shadow stack on? The injected "call" has no shadow entry, so the ret would fault. */
static bool shadow_stack_on(void)
{
#ifndef ARCH_SHSTK_STATUS
#define ARCH_SHSTK_STATUS 0x5005
#endif
	unsigned long features = 0;

	if (syscall(SYS_arch_prctl, ARCH_SHSTK_STATUS, &features) != 0)
		return false; /* kernel without user shadow stacks */
	return features & 1;  /* ARCH_SHSTK_SHSTK */
}

long rg_arch_preempt_init(void)
{
	unsigned a, b, c, d;

	if (shadow_stack_on())
		return -ENOTSUP;
	__cpuid(1, a, b, c, d);
	bool osxsave = c & bit_OSXSAVE;
	if (!osxsave) {
		rg_arch_xsave_mode = XMODE_FXSAVE;
		rg_arch_xsave_size = 512;
		rg_arch_xsave_mask = 0;
		rg_arch_have_avx = false;
	} else {
		uint64_t xcr0 = xgetbv(0);
		rg_arch_xsave_mask = xcr0 & ~XFEATURE_AMX;
		rg_arch_have_avx = (c & bit_AVX) && (xcr0 & 6) == 6;
		__cpuid_count(0xd, 1, a, b, c, d);
		if (a & 2) { /* XSAVEC */
			rg_arch_xsave_mode = XMODE_XSAVEC;
			rg_arch_xsave_size = xsavec_size(rg_arch_xsave_mask);
		} else {
			rg_arch_xsave_mode = XMODE_XSAVE;
			rg_arch_xsave_size = xsave_size(rg_arch_xsave_mask);
		}
	}
	/*
	 * Below the interrupted rsp: the red zone and the pushed rip (136), the
	 * frame record, flags and 14 registers (128), MXCSR (8), the area and
	 * its alignment (64). The C callees' frames are the caller's to add.
	 */
	return (long)(REDZONE + 8 + 128 + 8 + rg_arch_xsave_size + 64);
}

uintptr_t rg_arch_uc_pc(const void *uc)
{
	return (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
}

uintptr_t rg_arch_uc_sp(const void *uc)
{
	return (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RSP];
}

uintptr_t rg_arch_uc_fp(const void *uc)
{
	return (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RBP];
}

/*
 * saved is the trampoline's rbp - 120: r15 r14 r13 r12 r11 r10 r9 r8 rdi
 * rsi rdx rcx rbx rax, rflags, then the interrupted rbp (the frame record).
 */
void rg_arch_preempt_relocate(void *saved, uintptr_t from, uintptr_t to, size_t len)
{
	uintptr_t *r = saved;

	for (int i = 0; i < 16; i++)
		if (i != 14 && r[i] - from < len)
			r[i] += to - from;
}

/*
 * Go's pushCall, plus the red zone: the goroutine resumes in the trampoline
 * with the interrupted rip as its return address. Not instrumented: the
 * store lands below the goroutine's stack pointer, where ASan's shadow of
 * dead frames is clean anyway but a fake-stack check would be noise.
 */
__attribute__((no_sanitize_address)) void rg_arch_preempt_inject(void *ucp)
{
	ucontext_t *uc = ucp;
	greg_t *r = uc->uc_mcontext.gregs;
	uintptr_t sp = (uintptr_t)r[REG_RSP] - REDZONE - 8;

	*(uintptr_t *)sp = (uintptr_t)r[REG_RIP];
	r[REG_RSP] = (greg_t)sp;
	r[REG_RIP] = (greg_t)(uintptr_t)rg_arch_preempt_trampoline;
}
