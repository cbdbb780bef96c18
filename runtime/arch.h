/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The architecture interface: everything the scheduler needs from the CPU.
 * One implementation per arch under runtime/arch/<arch>/ (x86_64 now,
 * aarch64 later); nothing else in the runtime contains assembly.
 */
#ifndef RINGO_ARCH_H
#define RINGO_ARCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * Save the callee-saved registers on the current stack, store the stack
 * pointer in *save_sp, load load_sp and resume what was saved there; returns
 * when someone switches back. A goroutine's floating-point control state
 * (rounding mode, exception masks) travels with it: switch_out, from a
 * goroutine to its scheduler, saves it; switch_in, from the scheduler into a
 * goroutine, loads the goroutine's.
 */
void rg_arch_switch_out(void **save_sp, void *load_sp);
void rg_arch_switch_in(void **save_sp, void *load_sp);

/*
 * rg_arch_stack_init - prepare a fresh stack whose top is `top` (16-byte
 * aligned) so that switching to the returned stack pointer calls
 * entry(arg) with a terminated frame chain. entry must never return.
 */
void *rg_arch_stack_init(void *top, void (*entry)(void *), void *arg);

/* The frame pointer saved in a switched-out context (for backtraces of parked goroutines). */
uintptr_t rg_arch_saved_fp(void *saved_sp);

/* The return address a switched-out context will resume at. */
uintptr_t rg_arch_saved_pc(void *saved_sp);

/* Spin-wait hint (PAUSE on x86). */
static inline void rg_arch_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

#endif /* RINGO_ARCH_H */
