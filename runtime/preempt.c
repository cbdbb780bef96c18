// SPDX-License-Identifier: BSD-2-Clause
/*
 * Asynchronous preemption by signal, safe for C code (Go 1.14's
 * preempt.go and signal_unix.go's doSigPreempt, for a language without a
 * compiler's help).
 *
 * sysmon flags a goroutine that has run a whole time slice while other
 * work waits and sends its M a SIGURG. The handler never switches: when
 * the goroutine stands at an async-safe point it rewrites the signal
 * context so that the goroutine "calls" the arch trampoline, which saves
 * every register and switches to the scheduler like any yield. Otherwise
 * the request stays on the goroutine for the next synchronous safe point
 * (rg_preempt_enable, the scheduler, rg_go) and sysmon tries again.
 *
 * Async-safe means: the pc lies in the main executable's own text but not
 * in ringo's (nor in RG_NOPREEMPT functions), no frame of a library is in
 * progress as far as we can tell, the goroutine has preemption enabled,
 * the thread has no signal blocked (no handler is running), and the stack
 * has room for the trampoline. Never libc, the vDSO, another library:
 * they hold locks (malloc's arena, stdio's FILE lock, the loader's) that
 * the next goroutine on this thread would take again.
 *
 * ringo's own text is found at start-up: the runtime is compiled with
 * -fpatchable-function-entry=1, which lists every function's entry in
 * __patchable_function_entries, and the executable's .eh_frame_hdr gives
 * each function's extent.
 */
#include "preempt.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "fatal.h"
#include "probes.h"
#include "sanitizer.h"

struct rg_preempt_conf rg_preempt_conf = {.signo = SIGURG, .slice_ns = 10000000};

#define SLICE_MIN_NS 50000LL
/* A signal that got lost (say, to a handler the program installed over ours) is sent again. */
#define RESEND_NS 20000000LL

/* Stack the trampoline's C callees may use (the switch, sanitizer fiber calls). */
#ifdef RG_ASAN
#define CALLEE_STACK 16384
#else
#define CALLEE_STACK 4096
#endif

/* ---- statistics ---- */

static struct {
	_Atomic uint64_t signals, async, sync, deferred, unsafe_pc, foreign_frame, no_stack, masked,
		inherit, lent;
	_Atomic uint64_t pc_next;
	_Atomic uintptr_t pcs[RG_PREEMPT_PC_RING];
} stats;

#define STAT_INC(f) atomic_fetch_add_explicit(&stats.f, 1, memory_order_relaxed)

void rg_preempt_get_stats(struct rg_preempt_stats *o)
{
	o->signals = atomic_load_explicit(&stats.signals, memory_order_relaxed);
	o->async = atomic_load_explicit(&stats.async, memory_order_relaxed);
	o->sync = atomic_load_explicit(&stats.sync, memory_order_relaxed);
	o->deferred = atomic_load_explicit(&stats.deferred, memory_order_relaxed);
	o->unsafe_pc = atomic_load_explicit(&stats.unsafe_pc, memory_order_relaxed);
	o->foreign_frame = atomic_load_explicit(&stats.foreign_frame, memory_order_relaxed);
	o->no_stack = atomic_load_explicit(&stats.no_stack, memory_order_relaxed);
	o->masked = atomic_load_explicit(&stats.masked, memory_order_relaxed);
	o->inherit = atomic_load_explicit(&stats.inherit, memory_order_relaxed);
	o->lent = atomic_load_explicit(&stats.lent, memory_order_relaxed);
}

size_t rg_preempt_recent_pcs(uintptr_t *out, size_t n)
{
	uint64_t end = atomic_load_explicit(&stats.pc_next, memory_order_acquire);
	uint64_t have = end < RG_PREEMPT_PC_RING ? end : RG_PREEMPT_PC_RING;

	if (n > have)
		n = have;
	for (size_t i = 0; i < n; i++)
		out[i] = atomic_load_explicit(&stats.pcs[(end - n + i) % RG_PREEMPT_PC_RING],
					      memory_order_relaxed);
	return n;
}

void rg_preempt_count_inherit(void)
{
	STAT_INC(inherit);
}

void rg_preempt_count_lend(void)
{
	STAT_INC(lent);
}

/* ---- the text map ---- */

struct range {
	uintptr_t lo, hi;
};

#define MAX_EXE_TEXT 8

static struct range exe_text[MAX_EXE_TEXT]; /* the main executable's executable segments */
static int nexe_text;
static struct range *rt_text; /* ringo's functions, sorted, merged */
static size_t nrt_text;
static struct range *lib_text; /* every other object's executable segments, sorted */
static size_t nlib_text;
static bool exe_static;	      /* no PT_INTERP: libc is linked into the executable */
static uintptr_t eh_hdr;      /* the executable's .eh_frame_hdr */
static bool text_ok;	      /* the map is complete: async preemption may use it */
static bool rt_in_exe;	      /* ringo is linked into the executable (else libringo.so) */
static struct range *so_text; /* libringo.so's executable segment, when that is ringo */
static size_t nso_text;

/* Program functions marked RG_NOPREEMPT; weak: the section exists only when one is. */
extern const char __start_rg_nopreempt[] __attribute__((weak, visibility("hidden")));
extern const char __stop_rg_nopreempt[] __attribute__((weak, visibility("hidden")));

/* ringo's function entries (-fpatchable-function-entry=1 in runtime/meson.build). */
extern const uintptr_t __start___patchable_function_entries[]
	__attribute__((weak, visibility("hidden")));
extern const uintptr_t __stop___patchable_function_entries[]
	__attribute__((weak, visibility("hidden")));

static bool in_ranges(const struct range *r, size_t n, uintptr_t pc)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pc < r[mid].lo)
			hi = mid;
		else if (pc >= r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static bool in_exe(uintptr_t pc)
{
	for (int i = 0; i < nexe_text; i++)
		if (pc >= exe_text[i].lo && pc < exe_text[i].hi)
			return true;
	return false;
}

bool rg_preempt_in_runtime(uintptr_t pc)
{
	return in_ranges(rt_text, nrt_text, pc);
}

/* The program's own code: where a goroutine may be stopped at any instruction. */
static bool program_pc(uintptr_t pc)
{
	if (!in_exe(pc) || in_ranges(rt_text, nrt_text, pc))
		return false;
	if (__start_rg_nopreempt && pc >= (uintptr_t)__start_rg_nopreempt &&
	    pc < (uintptr_t)__stop_rg_nopreempt)
		return false;
	return true;
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	int *index = data;
	bool main_exe = (*index)++ == 0; /* glibc lists the program first */

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (main_exe && ph->p_type == PT_INTERP)
			exe_static = false;
		if (main_exe && ph->p_type == PT_GNU_EH_FRAME)
			eh_hdr = lo;
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		struct range r = {lo, lo + ph->p_memsz};
		if (main_exe) {
			if (nexe_text < MAX_EXE_TEXT)
				exe_text[nexe_text++] = r;
			else
				text_ok = false;
			continue;
		}
		struct range *a = realloc(lib_text, (nlib_text + 1) * sizeof(*a));
		if (!a) {
			text_ok = false;
			continue;
		}
		lib_text = a;
		lib_text[nlib_text++] = r;
		/* libringo.so: its text is ringo's, whatever the executable does. */
		uintptr_t self = (uintptr_t)rg_preempt_init;
		if (self >= r.lo && self < r.hi &&
		    (a = realloc(so_text, (nso_text + 1) * sizeof(*a)))) {
			so_text = a;
			so_text[nso_text++] = r;
		}
	}
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int uptr_cmp(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/* DWARF pointer encodings, as far as linkers use them in .eh_frame(_hdr). */
static bool read_enc(const uint8_t **pp, uint8_t enc, uintptr_t datarel, uintptr_t *out)
{
	const uint8_t *p = *pp;
	uintptr_t base = 0;
	int64_t v;

	if (enc == 0xff)
		return false; /* DW_EH_PE_omit */
	switch (enc & 0x70) {
	case 0x00:
		break;
	case 0x10: /* pcrel */
		base = (uintptr_t)p;
		break;
	case 0x30: /* datarel */
		base = datarel;
		break;
	default:
		return false;
	}
	switch (enc & 0x0f) {
	case 0x00: /* absptr */
	case 0x04: /* udata8 */
	case 0x0c: /* sdata8 */
		memcpy(&v, p, 8);
		p += 8;
		break;
	case 0x03: { /* udata4 */
		uint32_t u;
		memcpy(&u, p, 4);
		v = u;
		p += 4;
		break;
	}
	case 0x0b: { /* sdata4 */
		int32_t s;
		memcpy(&s, p, 4);
		v = s;
		p += 4;
		break;
	}
	default:
		return false;
	}
	*pp = p;
	*out = base + (uintptr_t)v;
	return true;
}

static uint64_t uleb(const uint8_t **pp)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	unsigned shift = 0;

	do {
		v |= (uint64_t)(*p & 0x7f) << shift;
		shift += 7;
	} while (*p++ & 0x80);
	*pp = p;
	return v;
}

/* The FDE pointer encoding of a CIE (its 'R' augmentation), or -1. */
static int cie_fde_encoding(const uint8_t *cie)
{
	const uint8_t *p = cie;
	uint32_t len;

	memcpy(&len, p, 4);
	p += 4;
	if (len == 0xffffffff)
		p += 8;
	p += 4; /* CIE id */
	uint8_t version = *p++;
	const char *aug = (const char *)p;
	p += strlen(aug) + 1;
	if (aug[0] == 'e' && aug[1] == 'h')
		p += sizeof(void *);
	uleb(&p); /* code alignment */
	uleb(&p); /* data alignment (sleb, same length) */
	if (version == 1)
		p++;
	else
		uleb(&p); /* return address register */
	if (aug[0] != 'z')
		return 0x00; /* absptr */
	uleb(&p);	     /* augmentation data length */
	for (const char *a = aug + 1; *a; a++) {
		switch (*a) {
		case 'R':
			return *p;
		case 'L':
			p++;
			break;
		case 'P': {
			uint8_t penc = *p++;
			uintptr_t ignored;
			if (!read_enc(&p, penc & 0x7f, 0, &ignored))
				return -1;
			break;
		}
		case 'S':
		case 'B':
			break;
		default:
			return -1;
		}
	}
	return 0x00;
}

/* The length of the function an FDE covers, or 0. */
static uintptr_t fde_pc_range(const uint8_t *fde)
{
	const uint8_t *p = fde;
	uint32_t len, cie_off;

	memcpy(&len, p, 4);
	p += 4;
	if (len == 0xffffffff)
		p += 8;
	memcpy(&cie_off, p, 4);
	const uint8_t *cie = p - cie_off;
	p += 4;
	int enc = cie_fde_encoding(cie);
	uintptr_t begin, range;
	if (enc < 0 || !read_enc(&p, (uint8_t)enc, 0, &begin) ||
	    !read_enc(&p, (uint8_t)(enc & 0x0f), 0, &range))
		return 0;
	return range;
}

/*
 * ringo's functions: every recorded entry inside the executable must start
 * an FDE; runs of consecutive ringo FDEs merge into one range (what lies
 * between them is padding). Returns false when something is missing.
 */
static bool map_runtime(void)
{
	const uintptr_t *b = __start___patchable_function_entries;
	const uintptr_t *e = __stop___patchable_function_entries;
	const uintptr_t asm_fns[] = {
		(uintptr_t)rg_arch_switch_out,
		(uintptr_t)rg_arch_switch_in,
		(uintptr_t)rg_arch_switch_direct,
		(uintptr_t)rg_arch_gstart,
		(uintptr_t)rg_arch_preempt_trampoline,
	};
	size_t n = 0,
	       cap = (b && e > b ? (size_t)(e - b) : 0) + sizeof(asm_fns) / sizeof(asm_fns[0]);
	uintptr_t *starts = malloc(cap * sizeof(*starts));

	if (!starts)
		return false;
	for (const uintptr_t *q = b; q && q < e; q++)
		if (in_exe(*q))
			starts[n++] = *q;
	for (size_t i = 0; i < sizeof(asm_fns) / sizeof(asm_fns[0]); i++)
		if (in_exe(asm_fns[i]))
			starts[n++] = asm_fns[i];
	rt_in_exe = in_exe((uintptr_t)rg_preempt_init);
	if (!rt_in_exe) {
		/* libringo.so: nothing of ours is in the executable; its text is ringo's. */
		free(starts);
		rt_text = so_text;
		nrt_text = nso_text;
		return nso_text > 0;
	}
	/* Our own entry must be listed, or the build lost the flag. */
	bool found_self = false;
	for (size_t i = 0; i < n; i++)
		found_self |= starts[i] == (uintptr_t)rg_preempt_init;
	if (!found_self || !eh_hdr) {
		free(starts);
		return false;
	}
	qsort(starts, n, sizeof(*starts), uptr_cmp);

	const uint8_t *h = (const uint8_t *)eh_hdr;
	if (h[0] != 1 || h[3] != 0x3b) { /* version 1, table datarel|sdata4 */
		free(starts);
		return false;
	}
	const uint8_t *p = h + 4;
	uintptr_t eh_frame, count;
	if (!read_enc(&p, h[1], eh_hdr, &eh_frame) || !read_enc(&p, h[2], eh_hdr, &count)) {
		free(starts);
		return false;
	}
	const int32_t *table = (const int32_t *)p;
	struct range *out = NULL;
	size_t nout = 0, matched = 0, k = 0;
	bool prev_rt = false;

	for (uintptr_t i = 0; i < count; i++) {
		uintptr_t loc = eh_hdr + (intptr_t)table[2 * i];
		while (k < n && starts[k] < loc)
			k++; /* an entry without an FDE: caught by matched below */
		bool is_rt = k < n && starts[k] == loc;
		if (!is_rt) {
			prev_rt = false;
			continue;
		}
		while (k < n && starts[k] == loc)
			k++, matched++;
		uintptr_t len = fde_pc_range(
			(const uint8_t *)(eh_hdr + (intptr_t)table[2 * i + 1]));
		if (!len)
			break;
		if (prev_rt && loc >= out[nout - 1].lo) {
			if (loc + len > out[nout - 1].hi)
				out[nout - 1].hi = loc + len;
		} else {
			struct range *a = realloc(out, (nout + 1) * sizeof(*a));
			if (!a)
				break;
			out = a;
			out[nout++] = (struct range){loc, loc + len};
		}
		prev_rt = true;
	}
	free(starts);
	if (matched != n) {
		free(out);
		return false;
	}
	rt_text = out;
	nrt_text = nout;
	return true;
}

/* Build the map once per process: the executable's text never moves. */
static void map_text(void)
{
	static bool done;
	int index = 0;

	if (done)
		return;
	done = true;
	text_ok = true;
	exe_static = true;
	dl_iterate_phdr(phdr_cb, &index);
	qsort(lib_text, nlib_text, sizeof(*lib_text), range_cmp);
	if (nexe_text == 0 || exe_static)
		text_ok = false; /* a static executable carries libc's locks in its own text */
	if (text_ok && !map_runtime())
		text_ok = false;
}

/* ---- the signal handler ---- */

static struct sigaction prev_action; /* the program's handler, if any: chained */
static long arch_frame;		     /* what the trampoline needs below sp (rg_arch_preempt_init) */
static pid_t self_pid;

/*
 * Is w the return address of a call that ringo or a library has in
 * progress, seen from code in the executable? ringo reaches the executable
 * only through a PLT stub on its way to a library (call rel32, or call
 * *GOT(%rip) with -fno-plt); a program function it calls through a pointer
 * (a goroutine's entry, rg_once's) is fair game. Any library return address
 * means a program callback run by a library (a qsort comparator).
 */
static bool foreign_call(uintptr_t w)
{
	if (in_ranges(rt_text, nrt_text, w)) {
		const uint8_t *c = (const uint8_t *)w;
		return c[-5] == 0xe8 || (c[-6] == 0xff && c[-5] == 0x15);
	}
	return in_ranges(lib_text, nlib_text, w);
}

/*
 * Is a library (or ringo) call in progress below the interrupted code? The
 * top words of the stack catch a PLT stub on its way from ringo to libc (the
 * return address is at most two pushes down: PLT0 pushes two words) and the
 * first instructions of a program callback a library called; the
 * frame-pointer chain catches the rest of such a callback (a qsort
 * comparator, a dl_iterate_phdr callback under the loader's lock) when the
 * frames keep frame pointers. Best effort: code without frame pointers
 * breaks the chain, and the walk stops at anything that does not look like
 * a frame. False alarms only postpone a preemption. Not instrumented: the
 * top words of an interrupted frame may be redzones that ASan has poisoned.
 */
__attribute__((no_sanitize_address)) static bool foreign_frames(const struct rg_g *g, uintptr_t sp,
								uintptr_t fp)
{
	uintptr_t hi = g->stack.hi;

	for (int i = 0; i < 3; i++) {
		uintptr_t w = sp + (uintptr_t)i * 8;
		if (w + 8 > hi)
			break;
		if (foreign_call(*(const uintptr_t *)w))
			return true;
	}
	for (int depth = 0; depth < 32; depth++) {
		if (fp < sp || fp + 16 > hi || (fp & 7))
			return false;
		uintptr_t ra = ((const uintptr_t *)fp)[1];
		if (in_ranges(rt_text, nrt_text, ra))
			return false; /* the goroutine's entry (or rg_once and kin): done */
		if (in_ranges(lib_text, nlib_text, ra))
			return true;
		if (!in_exe(ra))
			return false; /* not a return address: the chain ends here */
		uintptr_t next = ((const uintptr_t *)fp)[0];
		if (next <= fp)
			return false;
		fp = next;
	}
	return false;
}

static void record_pc(uintptr_t pc)
{
	uint64_t i = atomic_fetch_add_explicit(&stats.pc_next, 1, memory_order_relaxed);

	atomic_store_explicit(&stats.pcs[i % RG_PREEMPT_PC_RING], pc, memory_order_release);
}

/* Go's wantAsyncPreempt && isAsyncSafePoint, then pushCall. */
static void try_preempt(struct rg_m *m, void *uc)
{
	struct rg_g *g = m->curg;
	struct rg_p *p = m->p; /* NULL in a system call */

	if (!g || !p || !atomic_load_explicit(&p->preempt, memory_order_relaxed))
		return; /* nothing asked (a stale or foreign signal) */
	STAT_INC(signals);
	if (atomic_load_explicit(&g->status, memory_order_relaxed) != G_RUNNING)
		return;
	if (atomic_load_explicit(&g->preempt_off, memory_order_relaxed) > 0) {
		STAT_INC(deferred); /* rg_preempt_enable acts on the request */
		atomic_store_explicit(&m->preempt_refused, 0, memory_order_relaxed);
		return;
	}
	/* Until proven safe, one more refusal in a row (sysmon may lend a P). */
	RG_COUNTER_ADD(m->preempt_refused, 1);
	/* A blocked signal means a handler (or the program) is running here:
	 * its sigreturn must happen on this thread. Ms run with none blocked. */
	const sigset_t *mask = &((const ucontext_t *)uc)->uc_sigmask;
	if (((const uint64_t *)mask)[0] != 0) {
		STAT_INC(masked);
		return;
	}
	uintptr_t pc = rg_arch_uc_pc(uc), sp = rg_arch_uc_sp(uc);
	if (!program_pc(pc)) {
		STAT_INC(unsafe_pc);
		return;
	}
	if (sp > g->stack.hi || sp < g->stack.limit + (uintptr_t)arch_frame + CALLEE_STACK) {
		STAT_INC(no_stack);
		return;
	}
	if (foreign_frames(g, sp, rg_arch_uc_fp(uc))) {
		STAT_INC(foreign_frame);
		return;
	}
	atomic_store_explicit(&m->preempt_refused, 0, memory_order_relaxed);
	record_pc(pc);
	rg_arch_preempt_inject(uc);
}

static void forward(int sig, siginfo_t *si, void *uc)
{
	struct sigaction pa = prev_action;
	sigset_t old;

	/* Every preemption signal goes on, ours too: one of the program's may
	 * have been coalesced with ours (Go forwards them to os/signal for that
	 * reason). Under the mask its handler asked for; once for SA_RESETHAND. */
	if (!(pa.sa_flags & SA_SIGINFO) && (pa.sa_handler == SIG_DFL || pa.sa_handler == SIG_IGN))
		return;
	if (pa.sa_flags & SA_RESETHAND) {
		prev_action.sa_handler = SIG_DFL;
		prev_action.sa_flags = 0;
	}
	pthread_sigmask(SIG_BLOCK, &pa.sa_mask, &old);
	if (pa.sa_flags & SA_SIGINFO)
		pa.sa_sigaction(sig, si, uc);
	else
		pa.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void preempt_handler(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct rg_m *m = rg_getm();

	/* The program's handler first: it sees the context as interrupted. */
	forward(sig, si, uc);
	errno = saved;
	if (m) {
		/* A dump's look at this goroutine: its frames, and it runs on. */
		if (!rg_dump_snapshot(m, uc) && rg_preempt_conf.async)
			try_preempt(m, uc);
		/* The ack, as Go's: sysmon may send again. */
		atomic_fetch_add_explicit(&m->preempt_gen, 1, memory_order_relaxed);
		atomic_store_explicit(&m->signal_pending, 0, memory_order_release);
	}
	errno = saved;
}

void rg_preempt_signal(struct rg_m *m, int64_t now)
{
	uint32_t zero = 0;

	if (!rg_preempt_conf.async)
		return;
	if (!atomic_compare_exchange_strong_explicit(&m->signal_pending, &zero, 1,
						     memory_order_acq_rel, memory_order_relaxed) &&
	    now - m->signal_sent < RESEND_NS)
		return; /* one in flight is enough */
	m->signal_sent = now;
	syscall(SYS_tgkill, self_pid, m->tid, rg_preempt_conf.signo);
}

/* ---- fork: no preemption signal may restart fork() forever ---- */

static void atfork_prepare(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, rg_preempt_conf.signo);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static void atfork_parent(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, rg_preempt_conf.signo);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

static void atfork_child(void)
{
	/* The child has no sysmon; a runtime it starts installs what it needs. */
	rg_preempt_conf.async = false;
	self_pid = getpid();
	atfork_parent();
}

/* ---- configuration ---- */

/* "10ms", "500us", "2s", "250000ns"; a bare number is microseconds. */
static int64_t parse_duration(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (!*end || strcmp(end, "us") == 0 || strcmp(end, "\xc2\xb5s") == 0)
		return (int64_t)(v * 1e3);
	if (strcmp(end, "ns") == 0)
		return (int64_t)v;
	if (strcmp(end, "ms") == 0)
		return (int64_t)(v * 1e6);
	if (strcmp(end, "s") == 0)
		return (int64_t)(v * 1e9);
	return -1;
}

static _Atomic int64_t chaos_ns;

void rg_preempt_set_chaos(int64_t max_ns)
{
	atomic_store_explicit(&chaos_ns, max_ns > 0 ? max_ns : 0, memory_order_relaxed);
}

int64_t rg_preempt_chaos(void)
{
	return atomic_load_explicit(&chaos_ns, memory_order_relaxed);
}

/*
 * RINGO_PREEMPT_SIGNAL: "SIGURG", "URG", "SIGRTMIN+3" or a number; 0 when
 * it names no signal ringo can take: not SIGKILL or SIGSTOP, not one the
 * kernel raises for a fault (the program would never see its own), not
 * glibc's internal 32 and 33.
 */
static int parse_signal(const char *s)
{
	static const int refused[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE,
				      SIGILL,  SIGTRAP, SIGABRT, SIGSYS, SIGCHLD};
	const char *name = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
	char *end;
	long sig = 0;

	if (*s >= '0' && *s <= '9') {
		sig = strtol(s, &end, 10);
		if (*end)
			return 0;
	} else if (strncmp(name, "RTMIN", 5) == 0) {
		long k = name[5] == '+' ? strtol(name + 6, &end, 10) : 0;
		if (name[5] && (name[5] != '+' || !name[6] || *end))
			return 0;
		sig = SIGRTMIN + k;
	} else {
		for (int i = 1; i < SIGRTMIN && !sig; i++) {
			const char *abbrev = sigabbrev_np(i);
			if (abbrev && strcmp(abbrev, name) == 0)
				sig = i;
		}
	}
	if (sig < 1 || sig > SIGRTMAX || (sig > 31 && sig < SIGRTMIN))
		return 0;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (sig == refused[i])
			return 0;
	return (int)sig;
}

/*
 * Install the handler for signo, chaining what the program installed there
 * (before this rg_run, or since the last one), and give a signal ringo used
 * before its own disposition back.
 */
static bool install_handler(int signo)
{
	static int installed_sig;
	struct sigaction sa, cur;

	if (installed_sig && installed_sig != signo) {
		sigaction(installed_sig, &prev_action, NULL);
		installed_sig = 0;
	}
	if (sigaction(signo, NULL, &cur) != 0)
		return false;
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == preempt_handler) {
		installed_sig = signo;
		return true;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = preempt_handler;
	/* SA_RESTART: ringo's calls never see EINTR from it (those the kernel
	 * does not restart, the runtime's wrappers retry). */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	prev_action = cur; /* before ours runs: it reads this */
	if (sigaction(signo, &sa, NULL) != 0)
		return false;
	installed_sig = signo;
	return true;
}

void rg_preempt_init(struct rg_sched *s)
{
	static bool once;
	const char *e;
	int saved = errno; /* rg_run leaves the caller's errno alone */

	(void)s;
	if (!once) {
		once = true;
		arch_frame = rg_arch_preempt_init();
		map_text();
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	}
	self_pid = getpid();

	struct rg_preempt_conf c = {.async = true, .signo = SIGURG, .slice_ns = 10000000};
	if ((e = getenv("RINGO_TIMESLICE")) && *e) {
		int64_t ns = parse_duration(e);
		if (ns > 0)
			c.slice_ns = ns < SLICE_MIN_NS ? SLICE_MIN_NS : ns;
	}
	if ((e = getenv("RINGO_ASYNCPREEMPT")) && strcmp(e, "0") == 0)
		c.async = false;
	if ((e = getenv("RINGO_PREEMPT_PIN")) && strcmp(e, "1") == 0)
		c.pin = true;
	if ((e = getenv("RINGO_PREEMPT_SIGNAL")) && *e) {
		int sig = parse_signal(e);
		if (sig)
			c.signo = sig;
		else
			fprintf(stderr,
				"ringo: RINGO_PREEMPT_SIGNAL=%s is no signal ringo can use; "
				"preempting with SIGURG\n",
				e);
	}
	if ((e = getenv("RINGO_PREEMPT_CHAOS")) && *e) {
		int64_t ns = parse_duration(e);
		rg_preempt_set_chaos(ns > 0 ? ns : 0);
	}
#ifdef RG_TSAN
	/* TSan defers asynchronous signals to its next interceptor, so the
	 * context a handler sees is no longer the interrupted one. */
	c.async = false;
#endif
	if (arch_frame < 0 || !text_ok)
		c.async = false;
	if (c.async && !install_handler(c.signo))
		c.async = false;
	/*
	 * The previous run's sysmon may still be reading the configuration on
	 * its way out: store only what changed (a process rarely changes it).
	 */
	if (rg_preempt_conf.async != c.async || rg_preempt_conf.pin != c.pin ||
	    rg_preempt_conf.signo != c.signo || rg_preempt_conf.slice_ns != c.slice_ns)
		rg_preempt_conf = c;
	errno = saved;
}

/* ---- switching out ---- */

/*
 * Off to the global queue (SWITCH_PREEMPT); back when the scheduler runs g
 * again. The P's request stays set until a new slice starts, so no runnext
 * goroutine inherits the one that just ended.
 */
static void preempt_park(struct rg_m *m, struct rg_g *g, uintptr_t pc, int async)
{
	RG_PROBE(g_preempt, g->goid, pc, async);
	if (rg_preempt_conf.pin && !g->lockedm) {
		/* Resume on this M: its thread-local addresses in registers stay right. */
		g->lockedm = m;
		m->lockedg = g;
		g->pinned = true;
	}
	m->op = SWITCH_PREEMPT;
	rg_gswitch(m, g);
	if (g->pinned) {
		m = rg_getm();
		g->pinned = false;
		g->lockedm = NULL;
		m->lockedg = NULL;
	}
}

void (*_Atomic rg_preempt_async_hook)(void);

void rg_preempt_async(uintptr_t pc, void *saved)
{
	struct rg_m *m = rg_getm();
	/* rg_errno_location, not glibc's const __errno_location: the compiler would merge the two. */
	uintptr_t errno_was = (uintptr_t)rg_errno_location();

	STAT_INC(async);
	void (*hook)(void) = atomic_load_explicit(&rg_preempt_async_hook, memory_order_relaxed);
	if (hook)
		hook();
	preempt_park(m, m->curg, pc, 1);
	/*
	 * The goroutine may have been stopped between computing errno's address
	 * (a call) and using it. On another thread that register would name the
	 * old thread's errno, which another goroutine now owns: point it at
	 * ours. (Any other thread-local address has the same hazard; there
	 * rg_lock_thread is the cure.)
	 */
	uintptr_t errno_now = (uintptr_t)rg_errno_location();
	if (errno_now != errno_was)
		rg_arch_preempt_relocate(saved, errno_was, errno_now, sizeof(int));
}

/* Is a request pending, and may the goroutine stop for it here? */
static bool want_yield(struct rg_m *m, struct rg_g *g)
{
	return m->p && atomic_load_explicit(&m->p->preempt, memory_order_relaxed) &&
	       atomic_load_explicit(&g->status, memory_order_relaxed) == G_RUNNING &&
	       atomic_load_explicit(&g->preempt_off, memory_order_relaxed) == 0;
}

__thread _Atomic uint32_t rg_tls_preempt_hint __attribute__((tls_model("initial-exec")));

void rg_preempt_poll_slow(uintptr_t ra)
{
	/* Acquire: a hint taken sees the request stored before it (sysmon's release). */
	if (!atomic_exchange_explicit(&rg_tls_preempt_hint, 0, memory_order_acquire))
		return;
	struct rg_m *m = rg_tls_m;
	if (!m || !m->p)
		return;
	if (atomic_load_explicit(&m->p->preempt, memory_order_relaxed))
		rg_preempt_point(ra);
	else
		rg_help_poll(m->sched, m->p); /* a held-back wake-up's hint (sched.c) */
}

void rg_preempt_point(uintptr_t ra)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g || !want_yield(m, g))
		return;
	/* Only for the program's own calls: the runtime may hold locks. */
	if (!text_ok || !program_pc(ra))
		return;
	STAT_INC(sync);
	preempt_park(m, g, ra, 0);
}

/* ---- the public calls ---- */

void rg_preempt_disable(void)
{
	struct rg_g *g = rg_getg();

	if (g)
		RG_COUNTER_ADD(g->preempt_off, 1);
}

void rg_preempt_enable(void)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g)
		return;
	int32_t n = atomic_load_explicit(&g->preempt_off, memory_order_relaxed) - 1;
	if (n < 0)
		rg_fatal("rg_preempt_enable without rg_preempt_disable");
	atomic_store_explicit(&g->preempt_off, n, memory_order_relaxed);
	if (n == 0 && want_yield(m, g)) {
		STAT_INC(sync);
		preempt_park(m, g, (uintptr_t)__builtin_return_address(0), 0);
	}
}

void rg_lock_thread(void)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g)
		return;
	if (g->lock_count == UINT32_MAX)
		rg_fatal("rg_lock_thread: too many nested locks");
	if (g->lock_count++ == 0) {
		g->lockedm = m;
		m->lockedg = g;
	}
}

void rg_unlock_thread(void)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (!g || g->lock_count == 0)
		return; /* as Go's UnlockOSThread: no-op when not locked */
	if (--g->lock_count == 0) {
		g->lockedm = NULL;
		m->lockedg = NULL;
	}
}
