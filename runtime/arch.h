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
 * goroutine, loads the goroutine's; switch_direct, from one goroutine
 * straight into another, does both.
 *
 * A resumed goroutine's switch returns what its resumer handed over: NULL
 * after switch_in, switch_direct's from (the goroutine that switched into
 * it, whose park is still to be completed, rg_park_handoff).
 */
void *rg_arch_switch_out(void **save_sp, void *load_sp);
void rg_arch_switch_in(void **save_sp, void *load_sp);
void *rg_arch_switch_direct(void **save_sp, void *load_sp, void *from);

/*
 * rg_arch_stack_init - prepare a fresh stack whose top is `top` (16-byte
 * aligned) so that switching to the returned stack pointer calls
 * entry(arg, from) with a terminated frame chain, from being what the switch
 * handed over (above). entry must never return.
 */
void *rg_arch_stack_init(void *top, void (*entry)(void *, void *), void *arg);

/* The frame pointer saved in a switched-out context (for backtraces of parked goroutines). */
uintptr_t rg_arch_saved_fp(void *saved_sp);

/* The return address a switched-out context will resume at. */
uintptr_t rg_arch_saved_pc(void *saved_sp);

/*
 * Asynchronous preemption (runtime/preempt.c). The signal handler never
 * switches: it makes the interrupted goroutine "call" a trampoline that
 * saves every register (general, flags, the whole vector state), calls
 * rg_preempt_async(resume_pc, saved) - an ordinary switch to the scheduler -
 * and restores everything when the goroutine runs again. saved is the
 * saved general registers, for rg_arch_preempt_relocate.
 *
 * rg_arch_preempt_init probes the CPU and returns the stack bytes the
 * trampoline and its callees need below the interrupted stack pointer, or
 * -errno when the arch cannot preempt here (e.g. a shadow stack is active).
 * The uc_* accessors read a signal's ucontext; inject edits it so that the
 * return from the handler enters the trampoline (only from a handler, and
 * only when the stack has the room init reported).
 */
long rg_arch_preempt_init(void);
uintptr_t rg_arch_uc_pc(const void *uc);
uintptr_t rg_arch_uc_sp(const void *uc);
uintptr_t rg_arch_uc_fp(const void *uc);
void rg_arch_preempt_inject(void *uc);

/* In the trampoline's saved general registers, move values in [from, from+len) to to. */
void rg_arch_preempt_relocate(void *saved, uintptr_t from, uintptr_t to, size_t len);

/* The trampoline and the other assembly entry points (runtime text, never preempted). */
void rg_arch_preempt_trampoline(void);
void rg_arch_gstart(void);

/*
 * StoreLoad ordering right after a locked read-modify-write (a lock's
 * release by exchange, say): on x86 that instruction was a full barrier
 * already, elsewhere it takes a fence. An MFENCE costs ~10 ns here.
 */
static inline void rg_arch_fence_after_rmw(void)
{
#if defined(__x86_64__)
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

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
