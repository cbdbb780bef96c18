/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * x86_64 goroutine context switch (System V ABI).
 *
 * A switched-out context is its stack: from the saved stack pointer up,
 *
 *	+0   MXCSR (4 bytes), x87 control word (2 bytes), padding
 *	+8   r15, r14, r13, r12, rbx, rbp
 *	+56  return address
 *
 * Only callee-saved state is kept: the switch is an ordinary call, so the
 * compiler already saved everything else. MXCSR and the x87 control word are
 * callee-saved too (rounding modes, exception masks) and travel with the
 * goroutine, not the thread.
 */
	.text

/*
 * Both directions share one frame layout and differ only in the FP control
 * state: a goroutine's MXCSR and x87 control word are saved when it switches
 * out to the scheduler and loaded when a goroutine switches in. The scheduler
 * (g0) does no floating-point arithmetic, so its own values need not survive;
 * this halves the cost of the slow stmxcsr/fnstcw/ldmxcsr/fldcw sequence.
 */
.macro SWITCH_PUSH
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	movq	%rsp, %rbp		/* keeps the frame chain walkable mid-switch */
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r15, 0
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
.endm

.macro SWITCH_POP
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	popq	%r14
	.cfi_adjust_cfa_offset -8
	popq	%r13
	.cfi_adjust_cfa_offset -8
	popq	%r12
	.cfi_adjust_cfa_offset -8
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
.endm

/*
 * void *rg_arch_switch_out(void **save_sp, void *load_sp): goroutine -> scheduler.
 * Returns, once the goroutine is resumed, what its resumer left in rax: NULL
 * from switch_in, the goroutine it came from from switch_direct.
 */
	.globl	rg_arch_switch_out
	.hidden	rg_arch_switch_out
	.type	rg_arch_switch_out, @function
	.p2align 4
rg_arch_switch_out:
	SWITCH_PUSH
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	SWITCH_POP
	.size	rg_arch_switch_out, .-rg_arch_switch_out

/* void rg_arch_switch_in(void **save_sp, void *load_sp): scheduler -> goroutine */
	.globl	rg_arch_switch_in
	.hidden	rg_arch_switch_in
	.type	rg_arch_switch_in, @function
	.p2align 4
rg_arch_switch_in:
	SWITCH_PUSH
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	xorl	%eax, %eax		/* the goroutine's switch returns NULL: nothing handed over */
	SWITCH_POP
	.size	rg_arch_switch_in, .-rg_arch_switch_in

/*
 * void *rg_arch_switch_direct(void **save_sp, void *load_sp, void *from):
 * goroutine -> goroutine. The resumed goroutine's switch returns from.
 */
	.globl	rg_arch_switch_direct
	.hidden	rg_arch_switch_direct
	.type	rg_arch_switch_direct, @function
	.p2align 4
rg_arch_switch_direct:
	SWITCH_PUSH
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	movq	%rdx, %rax
	SWITCH_POP
	.size	rg_arch_switch_direct, .-rg_arch_switch_direct

/*
 * First code a new goroutine runs: rg_arch_stack_init left entry in rbx and
 * its argument in r12, and the switch into it left its from in rax. The
 * return address is marked undefined so unwinders (gdb, perf, libgcc) stop
 * here instead of walking into garbage.
 */
	.globl	rg_arch_gstart
	.hidden	rg_arch_gstart
	.type	rg_arch_gstart, @function
	.p2align 4
rg_arch_gstart:
	.cfi_startproc
	.cfi_undefined %rip
	xorl	%ebp, %ebp
	movq	%r12, %rdi
	movq	%rax, %rsi
	callq	*%rbx
	ud2
	.cfi_endproc
	.size	rg_arch_gstart, .-rg_arch_gstart

	.section .note.GNU-stack,"",@progbits
