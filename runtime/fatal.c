// SPDX-License-Identifier: BSD-2-Clause
/*
 * Fatal errors, the goroutine dump that goes with them, and the handler that
 * turns a fault in a stack's guard page into "goroutine N stack overflow".
 */
#include "fatal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "lock.h"
#include "preempt.h"
#include "runtime.h"
#include "schedstats.h"
#include "symbolize.h"

#define SIGSTACK_SIZE (64 * 1024)
#define MAX_FRAMES RG_DUMP_FRAMES
/* How long a dump waits for the frames of goroutines running on other threads. */
#define SNAPSHOT_WAIT_NS 200000000LL

static void out(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

__attribute__((format(printf, 1, 2))) static void outf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		out(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static const char *const wait_reasons[WAIT_REASON_COUNT] = {
	[WAIT_NONE] = "",
	[WAIT_SEMACQUIRE] = "semacquire",
	[WAIT_SYNC_MUTEX_LOCK] = "sync.Mutex.Lock",
	[WAIT_WAITGROUP_WAIT] = "sync.WaitGroup.Wait",
	[WAIT_PARK_TEST] = "test park",
	[WAIT_SYNC_RWMUTEX_RLOCK] = "sync.RWMutex.RLock",
	[WAIT_SYNC_RWMUTEX_LOCK] = "sync.RWMutex.Lock",
	[WAIT_SYNC_COND_WAIT] = "sync.Cond.Wait",
	[WAIT_SLEEP] = "sleep",
	[WAIT_CHAN_SEND] = "chan send",
	[WAIT_CHAN_RECV] = "chan receive",
	[WAIT_CHAN_SEND_NIL] = "chan send (nil chan)",
	[WAIT_CHAN_RECV_NIL] = "chan receive (nil chan)",
	[WAIT_SELECT] = "select",
	[WAIT_SELECT_NO_CASES] = "select (no cases)",
	[WAIT_IO] = "IO wait",
};

const char *rg_wait_reason_string(enum rg_wait_reason r)
{
	return r < WAIT_REASON_COUNT && wait_reasons[r] ? wait_reasons[r] : "?";
}

/* In the overflow handler, only what dladdr knows: no allocation on the signal stack. */
static bool simple_symbols;

static void print_pc(uintptr_t pc)
{
	char buf[768];

	if (simple_symbols)
		rg_symbolize_simple(pc, buf, sizeof(buf));
	else
		rg_symbolize(pc, buf, sizeof(buf));
	outf("\t%s\n", buf);
}

/* Walk a frame-pointer chain that must stay within [lo, hi). */
static void walk_frames(uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi)
{
	print_pc(pc);
	for (int i = 0; i < MAX_FRAMES; i++) {
		if (fp < lo || fp + 2 * sizeof(uintptr_t) > hi || (fp & 7))
			return;
		uintptr_t next = ((uintptr_t *)fp)[0];
		uintptr_t ret = ((uintptr_t *)fp)[1];
		Dl_info info;
		/* Code built without frame pointers breaks the chain: stop at the
		 * first "return address" that is not in any loaded module. */
		if (!ret || !dladdr((void *)ret, &info))
			return;
		print_pc(ret - 1);
		if (next <= fp)
			return;
		fp = next;
	}
}

/* Print a running goroutine's frames as its M's handler saw them, up to the first outside every module. */
static void print_snapshot(const uintptr_t *pcs, int n)
{
	Dl_info info;

	for (int i = 0; i < n; i++) {
		if (i > 0 && !dladdr((void *)pcs[i], &info))
			return;
		print_pc(pcs[i]);
	}
}

bool rg_dump_snapshot(struct rg_m *m, const void *uc)
{
	if (!atomic_exchange_explicit(&m->dump_want, 0, memory_order_acquire))
		return false;
	struct rg_g *g = m->curg;
	int n = 0;

	if (g && atomic_load_explicit(&g->status, memory_order_relaxed) == G_RUNNING) {
		uintptr_t fp = rg_arch_uc_fp(uc), lo = g->stack.limit, hi = g->stack.hi;

		m->dump_pcs[n++] = rg_arch_uc_pc(uc);
		/* Only loads within the goroutine's own stack: nothing here can fault. */
		while (n < RG_DUMP_FRAMES && fp >= lo && fp + 2 * sizeof(uintptr_t) <= hi &&
		       !(fp & 7)) {
			uintptr_t next = ((uintptr_t *)fp)[0], ret = ((uintptr_t *)fp)[1];
			if (!ret)
				break;
			m->dump_pcs[n++] = ret - 1;
			if (next <= fp)
				break;
			fp = next;
		}
	}
	m->dump_g = g;
	atomic_store_explicit(&m->dump_n, n + 1, memory_order_release);
	return true;
}

/*
 * Ask every other M that runs a goroutine for its frames (Go prints "stack
 * unavailable" there; a signal gets them), and wait for the answers. Under
 * the scheduler lock, as sysmon signals (an M unlinks itself under it
 * before it is freed), and only if it is free: the fatal error may have
 * come with it held.
 */
static bool snapshot_running(struct rg_sched *s)
{
	pid_t self = (pid_t)syscall(SYS_gettid), pid = getpid();
	bool waiting = false;

	if (!s || !rg_preempt_conf.async || !rg_trylock(&s->lock))
		return false;
	for (struct rg_m *m = s->allm; m; m = m->alllink) {
		struct rg_g *g = m->curg;
		atomic_store_explicit(&m->dump_n, 0, memory_order_relaxed);
		if (m->tid == self || !g ||
		    atomic_load_explicit(&g->status, memory_order_relaxed) != G_RUNNING)
			continue;
		atomic_store_explicit(&m->dump_want, 1, memory_order_release);
		syscall(SYS_tgkill, pid, m->tid, rg_preempt_conf.signo);
		waiting = true;
	}
	for (int64_t until = rg_nanotime() + SNAPSHOT_WAIT_NS; waiting && rg_nanotime() < until;) {
		waiting = false;
		for (struct rg_m *m = s->allm; m && !waiting; m = m->alllink)
			waiting = atomic_load_explicit(&m->dump_want, memory_order_acquire);
		if (waiting)
			sched_yield();
	}
	for (struct rg_m *m = s->allm; m; m = m->alllink)
		atomic_store_explicit(&m->dump_want, 0, memory_order_relaxed);
	rg_unlock(&s->lock);
	return true;
}

static const char *status_string(uint32_t st)
{
	switch (st) {
	case G_RUNNABLE:
		return "runnable";
	case G_RUNNING:
		return "running";
	case G_SYSCALL:
		return "syscall";
	case G_WAITING:
		return "waiting";
	case G_DEAD:
		return "dead";
	default:
		return "idle";
	}
}

/*
 * Where the dumping goroutine's own walk starts (its live frames, not a
 * saved context), and whether the other running goroutines were asked for
 * theirs (snapshot_running).
 */
struct self_frame {
	struct rg_g *g;
	uintptr_t pc, fp;
	bool snapshots;
};

static void dump_one(struct rg_g *g, const struct self_frame *self)
{
	uint32_t st = atomic_load_explicit(&g->status, memory_order_relaxed);

	if (st == G_DEAD || st == G_IDLE)
		return;
	if (st == G_WAITING) {
		/* As Go: the wait's length once it passes a minute. */
		int64_t mins = (rg_nanotime() - g->wait_since) / 60000000000LL;
		const char *why = rg_wait_reason_string(
			(enum rg_wait_reason)__atomic_load_n(&g->wait_reason, __ATOMIC_RELAXED));
		if (mins >= 1)
			outf("\ngoroutine %llu [%s, %lld minutes]:\n", (unsigned long long)g->goid,
			     why, (long long)mins);
		else
			outf("\ngoroutine %llu [%s]:\n", (unsigned long long)g->goid, why);
	} else {
		outf("\ngoroutine %llu [%s]:\n", (unsigned long long)g->goid, status_string(st));
	}
	if (self && g == self->g) {
		walk_frames(self->pc, self->fp, g->stack.limit, g->stack.hi);
	} else if (st != G_RUNNING && g->sp) {
		walk_frames(rg_arch_saved_pc(g->sp), rg_arch_saved_fp(g->sp), g->stack.limit,
			    g->stack.hi);
	} else if (st == G_RUNNING) {
		struct rg_m *m = self && self->snapshots ?
					 __atomic_load_n(&g->m, __ATOMIC_RELAXED) :
					 NULL;
		int n = m ? atomic_load_explicit(&m->dump_n, memory_order_acquire) : 0;
		if (n > 1 && m->dump_g == g)
			print_snapshot(m->dump_pcs, n - 1);
		else
			outf("\t(running on another thread; its frames are unavailable)\n");
	}
	if (g->fn) {
		outf("created by goroutine %llu, entry\n", (unsigned long long)g->parent_goid);
		print_pc((uintptr_t)g->fn);
	}
}

struct dump_req {
	struct rg_sched *s; /* every goroutine of s ... */
	struct rg_g *only;  /* ... or just this one */
	struct self_frame self;
};

static void dump_req_run(struct dump_req *r)
{
	if (r->only) {
		dump_one(r->only, &r->self);
		return;
	}
	if (!r->s)
		return;
	if (!simple_symbols)
		r->self.snapshots = snapshot_running(r->s);
	if (r->self.g)
		dump_one(r->self.g, &r->self);
	/* No lock: the process may be dying with the lock held by this thread. */
	for (size_t i = 0; i < r->s->nallg; i++)
		if (r->s->allg[i] != r->self.g)
			dump_one(r->s->allg[i], &r->self);
}

static void *dump_thread(void *arg)
{
	dump_req_run(arg);
	return NULL;
}

/*
 * Symbolizing with libdwfl needs far more stack than a goroutine has, so the
 * dump runs on a thread of its own (default 8 MiB stack) while we wait.
 */
__attribute__((noinline)) static void dump(struct rg_sched *s, struct rg_g *only, struct rg_g *self)
{
	struct dump_req r = {.s = s, .only = only, .self = {.g = self}};
	pthread_t t;

	if (self) {
		r.self.pc = (uintptr_t)__builtin_return_address(0);
		r.self.fp = (uintptr_t)__builtin_frame_address(0);
	}
	if (simple_symbols || pthread_create(&t, NULL, dump_thread, &r) != 0) {
		simple_symbols = true;
		dump_req_run(&r);
		return;
	}
	pthread_join(t, NULL);
}

void rg_dump_goroutines(struct rg_sched *s, struct rg_g *self)
{
	dump(s, NULL, self);
}

void rg_dump_goroutine(struct rg_g *g, struct rg_g *self)
{
	dump(NULL, g, self);
}

static void dump_all(void)
{
	dump(rg_sched_current(), NULL, rg_getg());
}

/* Only the first fatal error prints (as Go's first panic); later ones wait for the abort. */
static _Atomic bool dying;

static void wait_for_death(void)
{
	for (;;)
		pause();
}

void rg_fatal(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (atomic_exchange(&dying, true))
		wait_for_death();

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	out("ringo: fatal: ", 14);
	if (n > 0)
		out(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	out("\n", 1);
	rg_schedtrace_dying(rg_sched_current(), false);
	dump_all();
	abort();
}

static struct sigaction old_segv, old_bus;

static void overflow_handler(int sig, siginfo_t *si, void *uctx)
{
	struct rg_m *m = rg_getm();
	struct rg_g *g = m ? m->curg : NULL;

	if (g && rg_stack_in_guard(&g->stack, (uintptr_t)si->si_addr)) {
		if (atomic_exchange(&dying, true))
			wait_for_death();
		/* We are on the signal stack: the goroutine's stack is exhausted,
		 * so report from here and do not walk it. */
		simple_symbols = true;
		outf("ringo: fatal: goroutine %llu stack overflow\n", (unsigned long long)g->goid);
		outf("\ngoroutine %llu [running]:\ncreated by goroutine %llu, entry\n",
		     (unsigned long long)g->goid, (unsigned long long)g->parent_goid);
		print_pc((uintptr_t)g->fn);
		struct rg_sched *s = m->sched;
		for (size_t i = 0; i < s->nallg; i++)
			if (s->allg[i] != g)
				dump_one(s->allg[i], NULL);
		signal(SIGABRT, SIG_DFL);
		abort();
	}

	/* Not ours: hand the fault to whoever had it before. */
	struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_sigaction) {
			old->sa_sigaction(sig, si, uctx);
			return;
		}
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	/* Default action: reinstall it and let the faulting instruction retry. */
	signal(sig, SIG_DFL);
}

/*
 * SIGQUIT, as in Go: dump every goroutine and exit 2. The handler itself only
 * wakes a thread kept for this (a futex wake is async-signal-safe) and
 * returns, so a thread the signal caught inside malloc can finish and the
 * dumper may allocate and symbolize fully. Without that thread (a forked
 * child before its first rg_run) the handler dumps in place, dladdr only.
 */
static _Atomic uint32_t quit_word;
static _Atomic pid_t quit_thread_pid;

static void *quit_thread(void *arg)
{
	(void)arg;
	while (atomic_load_explicit(&quit_word, memory_order_acquire) == 0)
		rg_futex_wait(&quit_word, 0, -1);
	if (atomic_exchange(&dying, true))
		wait_for_death();
	outf("SIGQUIT: quit\n");
	struct dump_req r = {.s = rg_sched_current()};
	rg_schedtrace_dying(r.s, false);
	dump_req_run(&r);
	_exit(2);
}

static void start_quit_thread(void)
{
	pthread_t t;
	pthread_attr_t attr;
	sigset_t all, old;

	if (atomic_load(&quit_thread_pid) == getpid())
		return;
	/* The dumper must never take a signal meant for the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, quit_thread, NULL) == 0)
		atomic_store(&quit_thread_pid, getpid());
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void sigquit_handler(int sig)
{
	(void)sig;
	if (atomic_load(&quit_thread_pid) == getpid()) {
		atomic_store_explicit(&quit_word, 1, memory_order_release);
		rg_futex_wake(&quit_word, 1);
		return;
	}
	if (atomic_exchange(&dying, true))
		wait_for_death();
	simple_symbols = true;
	outf("SIGQUIT: quit\n");
	dump_all();
	_exit(2);
}

void rg_fatal_install_handlers(void)
{
	static _Atomic bool installed;
	struct sigaction sa, old;

	static bool own_sigquit;

	if (atomic_exchange(&installed, true)) {
		if (own_sigquit)
			start_quit_thread(); /* again in a forked child */
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = overflow_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	/* Only where the program left SIGQUIT at its default (core dump). */
	if (sigaction(SIGQUIT, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
	    old.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = sigquit_handler;
		sa.sa_flags = SA_ONSTACK | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGQUIT, &sa, NULL);
		own_sigquit = true;
		start_quit_thread();
	}
}

void *rg_sigstack_alloc(void)
{
	stack_t ss;
	void *p = mmap(NULL, SIGSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	ss.ss_sp = p;
	ss.ss_size = SIGSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0) {
		munmap(p, SIGSTACK_SIZE);
		return NULL;
	}
	return p;
}

void rg_sigstack_free(void *stack)
{
	stack_t ss = {.ss_flags = SS_DISABLE};

	if (!stack)
		return;
	sigaltstack(&ss, NULL);
	munmap(stack, SIGSTACK_SIZE);
}
