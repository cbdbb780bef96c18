/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * x86_64 asynchronous preemption trampoline (Go's asyncPreempt, for C).
 *
 * The SIGURG handler found the goroutine at a safe point and rewrote the
 * signal context as if the goroutine had called us: it moved rsp down past
 * the System V red zone (128 bytes: leaf functions keep data there without
 * moving rsp) and pushed the interrupted rip. So on entry
 *
 *	rsp + 0		interrupted rip (our "return address")
 *	rsp + 8		the red zone, untouched
 *	rsp + 136	the interrupted rsp
 *
 * and every register still holds the interrupted code's value. Nothing here
 * may touch a vector register before the XSAVE: the interrupted code can be
 * anywhere, with DF set, any MXCSR, live upper YMM/ZMM halves and opmasks.
 *
 * Frame, from the frame record down (rbp = the record, so frame-pointer
 * walks go from the C callees through here into the interrupted frame):
 *
 *	rbp + 8		interrupted rip
 *	rbp + 0		interrupted rbp
 *	rbp - 8		rflags
 *	rbp - 16 ..	rax rbx rcx rdx rsi rdi r8 .. r15 (rbp - 120 = r15)
 *	rbp - 128	MXCSR (4 bytes)
 *	below		XSAVE area, 64-byte aligned, rg_arch_xsave_size bytes
 *
 * The vector state is saved whole with XSAVEC (compacted, init
 * optimisation) or XSAVE, with the enabled-feature mask from XCR0 minus AMX
 * tiles, so x87, SSE, AVX, AVX-512 (ZMM0-31, k0-7) and PKRU all travel with
 * the goroutine; FXSAVE on CPUs without OSXSAVE. preempt_arch.c sets the
 * mode, mask and size from CPUID at start-up.
 *
 * CFI: the frame is a signal frame (.cfi_signal_frame), so unwinders use the
 * saved rip as is instead of "return address - 1"; every register has a
 * rule, so gdb shows the interrupted values and perf/libgcc walk through.
 */
	.text

#define XMODE_FXSAVE	0
#define XMODE_XSAVE	1
#define XMODE_XSAVEC	2

/* Offsets from the CFA (the interrupted rsp). */
#define CFA_RIP		-136
#define CFA_RBP		-144

	.globl	rg_arch_preempt_trampoline
	.hidden	rg_arch_preempt_trampoline
	.type	rg_arch_preempt_trampoline, @function
	.p2align 4
rg_arch_preempt_trampoline:
	.cfi_startproc
	.cfi_signal_frame
	.cfi_def_cfa %rsp, 136
	.cfi_offset %rip, CFA_RIP
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_offset %rbp, CFA_RBP
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	pushfq
	pushq	%rax
	.cfi_offset %rax, -160
	pushq	%rbx
	.cfi_offset %rbx, -168
	pushq	%rcx
	.cfi_offset %rcx, -176
	pushq	%rdx
	.cfi_offset %rdx, -184
	pushq	%rsi
	.cfi_offset %rsi, -192
	pushq	%rdi
	.cfi_offset %rdi, -200
	pushq	%r8
	.cfi_offset %r8, -208
	pushq	%r9
	.cfi_offset %r9, -216
	pushq	%r10
	.cfi_offset %r10, -224
	pushq	%r11
	.cfi_offset %r11, -232
	pushq	%r12
	.cfi_offset %r12, -240
	pushq	%r13
	.cfi_offset %r13, -248
	pushq	%r14
	.cfi_offset %r14, -256
	pushq	%r15
	.cfi_offset %r15, -264
	subq	$8, %rsp
	stmxcsr	(%rsp)
	cld				/* the ABI's DF = 0 for the C below */

	/* The vector state, 64-byte aligned, with a zeroed XSAVE header. */
	subq	rg_arch_xsave_size(%rip), %rsp
	andq	$-64, %rsp
	xorl	%eax, %eax
	movq	%rax, 512(%rsp)
	movq	%rax, 520(%rsp)
	movq	%rax, 528(%rsp)
	movq	%rax, 536(%rsp)
	movq	%rax, 544(%rsp)
	movq	%rax, 552(%rsp)
	movq	%rax, 560(%rsp)
	movq	%rax, 568(%rsp)
	movl	rg_arch_xsave_mask(%rip), %eax
	movl	rg_arch_xsave_mask+4(%rip), %edx
	cmpl	$XMODE_XSAVEC, rg_arch_xsave_mode(%rip)
	jne	1f
	xsavec64 (%rsp)
	jmp	3f
1:	cmpl	$XMODE_XSAVE, rg_arch_xsave_mode(%rip)
	jne	2f
	xsave64	(%rsp)
	jmp	3f
2:	fxsave64 (%rsp)
3:
	/*
	 * Saved: now the ABI's clean state for the C code and for the next
	 * goroutine on this thread, which expects an empty x87 stack (XSAVE
	 * leaves the registers as they were; a goroutine interrupted with x87
	 * values pushed would make the next one's loads overflow).
	 */
	fninit
	cmpb	$0, rg_arch_have_avx(%rip)
	je	4f
	vzeroupper
4:	ldmxcsr	rg_arch_mxcsr_default(%rip)

	movq	8(%rbp), %rdi		/* the resume pc, for statistics */
	leaq	-120(%rbp), %rsi	/* the saved registers: r15 .. rax, rflags, rbp */
	call	rg_preempt_async	/* switch to the scheduler; back when rescheduled */

	movl	rg_arch_xsave_mask(%rip), %eax
	movl	rg_arch_xsave_mask+4(%rip), %edx
	cmpl	$XMODE_FXSAVE, rg_arch_xsave_mode(%rip)
	je	5f
	xrstor64 (%rsp)			/* takes either format (XCOMP_BV says which) */
	jmp	6f
5:	fxrstor64 (%rsp)
6:	leaq	-128(%rbp), %rsp
	ldmxcsr	(%rsp)			/* XRSTOR may leave MXCSR alone when SSE was in init state */
	addq	$8, %rsp
	popq	%r15
	.cfi_restore %r15
	popq	%r14
	.cfi_restore %r14
	popq	%r13
	.cfi_restore %r13
	popq	%r12
	.cfi_restore %r12
	popq	%r11
	.cfi_restore %r11
	popq	%r10
	.cfi_restore %r10
	popq	%r9
	.cfi_restore %r9
	popq	%r8
	.cfi_restore %r8
	popq	%rdi
	.cfi_restore %rdi
	popq	%rsi
	.cfi_restore %rsi
	popq	%rdx
	.cfi_restore %rdx
	popq	%rcx
	.cfi_restore %rcx
	popq	%rbx
	.cfi_restore %rbx
	popq	%rax
	.cfi_restore %rax
	popfq
	popq	%rbp
	.cfi_def_cfa %rsp, 136
	.cfi_restore %rbp
	ret	$128			/* pops rip, then skips the red zone: rsp as interrupted */
	.cfi_endproc
	.size	rg_arch_preempt_trampoline, .-rg_arch_preempt_trampoline

	.section .note.GNU-stack,"",@progbits
