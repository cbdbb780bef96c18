// SPDX-License-Identifier: BSD-2-Clause
/*
 * Signals delivered to channels (Go's os/signal over runtime/sigqueue.go).
 *
 * A notified signal runs a tiny async-signal-safe handler on whichever
 * thread the kernel picks: it records the signal in an atomic pending mask
 * and, when the bit was clear, writes to an eventfd. One goroutine per
 * rg_run (Go's os/signal.loop) waits for that eventfd through the poller
 * (rg_poll_fd, so it parks), takes the mask and sends each signal to every
 * channel registered for it, without blocking: a full channel drops it.
 *
 * Not a signalfd: one only sees a process-directed signal while every thread
 * blocks it, and ringo cannot set the mask of the program's own threads (nor
 * of threads it starts later); blocked signals would also be inherited by
 * every child the program execs. A handler works whatever the masks are.
 *
 * Registrations belong to the rg_run that made them: rg_run calls
 * rg_signal_run_end when its main goroutine returns, which stops every
 * channel (the original dispositions return). Should that call be missing,
 * the next rg_signal_notify or rg_signal_stop of a later run drops them.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chan.h"
#include "fatal.h"
#include "lock.h"
#include "poller.h"
#include "preempt.h"
#include "runtime.h"

#define SIG_MAX 64 /* SIGRTMAX on Linux: one bit each in a uint64_t */

/* A channel and the signals it wants (Go's handler). */
struct sig_entry {
	rg_chan *c;
	uint64_t mask;
	bool stopping; /* rg_signal_stop is delivering the last signals to it */
	struct sig_entry *next;
};

/* Registrations [reg_lock]; the handler reads only the atomics below. */
static struct rg_lock reg_lock;
static struct sig_entry *entries;
static uint32_t refs[SIG_MAX + 1];	   /* channels wanting each signal */
static struct sigaction orig[SIG_MAX + 1]; /* the disposition to restore */
/* The preemption handler (preempt.c), still called for its signal while notified. */
typedef void (*sa_fn)(int, siginfo_t *, void *);
static _Atomic(sa_fn) chain[SIG_MAX + 1];
static uint64_t reg_gen; /* bumped whenever every entry is dropped */
/* The run whose delivery goroutine is started: a sched and its start time (addresses recur). */
static struct rg_sched *run_sched;
static int64_t run_start;

/* Shared with the handler. */
static _Atomic uint64_t wanted;	   /* signals with a channel: the handler records them */
static _Atomic uint64_t pending;   /* recorded, not yet sent to the channels */
static _Atomic int32_t delivering; /* handlers running now (Go's sig.delivering) */
static _Atomic int wake_fd = -1;   /* the eventfd the delivery goroutine waits on */
static _Atomic pid_t wake_pid;	   /* the process wake_fd belongs to (fork) */

static inline uint64_t sigbit(int sig)
{
	return 1ull << (sig - 1);
}

/* Signals a channel may have: not SIGKILL/SIGSTOP, not glibc's (32, 33), not the runtime's. */
static bool notifiable(int sig)
{
	if (sig < 1 || sig > SIG_MAX)
		return false;
	if (sig >= 32 && sig < SIGRTMIN)
		return false;
	switch (sig) {
	case SIGKILL:
	case SIGSTOP:
	case SIGSEGV: /* stack overflow (fatal.c) */
	case SIGBUS:
		return false;
	}
	return true;
}

/* rg_signal_notify(c, NULL, 0): every notifiable signal but SIGPROF (Go leaves it alone). */
static uint64_t all_signals(void)
{
	uint64_t m = 0;

	for (int sig = 1; sig <= SIG_MAX; sig++)
		if (notifiable(sig) && sig != SIGPROF)
			m |= sigbit(sig);
	return m;
}

/* A fault the kernel raised (not kill/raise/sigqueue): returning would only fault again. */
static bool kernel_fault(int sig, const siginfo_t *si)
{
	return (sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS) && si &&
	       si->si_code > 0;
}

static void handler(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;
	uint64_t b = sigbit(sig);
	sa_fn next = NULL;

	/* seq_cst: pairs with the store to wanted and the load of delivering in rg_signal_stop. */
	atomic_fetch_add(&delivering, 1);
	if (!(atomic_load(&wanted) & b)) {
		/*
		 * Stop restored the disposition while this signal was on its way
		 * here: take that action now, so the signal is either sent or
		 * acted on, never lost (Go's concern in signal.Stop).
		 */
		struct sigaction cur;

		if (sigaction(sig, NULL, &cur) == 0 &&
		    !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == handler))
			raise(sig);
	} else if (kernel_fault(sig, si)) {
		/* As in Go, only a sent SIGILL/SIGFPE/SIGTRAP/SIGSYS is deliverable: die as before. */
		sigaction(sig, &orig[sig], NULL);
		raise(sig);
	} else {
		next = atomic_load_explicit(&chain[sig], memory_order_relaxed);
		if (!(atomic_fetch_or(&pending, b) & b)) {
			/* A set bit already has its wake-up on the way. */
			int fd = atomic_load_explicit(&wake_fd, memory_order_relaxed);
			uint64_t one = 1;

			if (atomic_load_explicit(&wake_pid, memory_order_acquire) == getpid() &&
			    fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
				/* EAGAIN: the counter is near 2^64, the reader is awake anyway */
			}
		}
	}
	atomic_fetch_sub(&delivering, 1);
	errno = saved;
	/*
	 * Last, for it may redirect the return into the preemption trampoline.
	 * As in Go, channels of SIGURG also get the preemption signals.
	 */
	if (next)
		next(sig, si, uctx);
}

/* Route sig to the handler. [reg_lock] */
static void enable(int sig)
{
	struct sigaction sa;

	sa_fn next = NULL;

	sigaction(sig, NULL, &orig[sig]);
	if (sig == rg_preempt_conf.signo && rg_preempt_conf.async &&
	    (orig[sig].sa_flags & SA_SIGINFO))
		next = orig[sig].sa_sigaction; /* preempt.c's: installed when async is on */
	atomic_store_explicit(&chain[sig], next, memory_order_relaxed);
	atomic_fetch_or(&wanted, sigbit(sig)); /* before the handler can run */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

/* Give sig back its original disposition. [reg_lock] */
static void disable(int sig)
{
	sigaction(sig, &orig[sig], NULL);
	atomic_fetch_and(&wanted, ~sigbit(sig)); /* after: see the handler's !wanted case */
}

/* Send every pending signal to its channels (Go's process). [reg_lock] */
static void deliver(void)
{
	uint64_t bits = atomic_exchange(&pending, 0);

	while (bits) {
		int sig = __builtin_ctzll(bits) + 1;

		bits &= bits - 1;
		for (struct sig_entry *e = entries; e; e = e->next)
			if (e->mask & sigbit(sig))
				rg_chan_trysend(e->c, &sig); /* full (or closed): dropped, as Go */
	}
}

/* Forget every registration, restoring dispositions. [reg_lock] */
static void drop_all(void)
{
	for (int sig = 1; sig <= SIG_MAX; sig++) {
		if (refs[sig]) {
			disable(sig);
			refs[sig] = 0;
		}
	}
	while (entries) {
		struct sig_entry *e = entries;
		entries = e->next;
		free(e);
	}
	atomic_store(&pending, 0);
	reg_gen++;
	run_sched = NULL;
}

static bool is_current_run(struct rg_sched *s)
{
	return s && run_sched == s && run_start == s->start_ns;
}

/* The eventfd of this process (a forked child makes its own). [reg_lock] */
static int wake_fd_get(void)
{
	int old = atomic_load(&wake_fd);

	if (old >= 0 && atomic_load(&wake_pid) == getpid())
		return old;
	/* Non-blocking: the handler must never wait. */
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	atomic_store(&wake_fd, fd);
	atomic_store_explicit(&wake_pid, getpid(), memory_order_release);
	if (old >= 0)
		close(old); /* the parent's: shared with it, so never ours to read */
	return fd;
}

/* Go's os/signal.loop: wait in the poller, then fan out. Never returns. */
static void signal_loop(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct rg_g *g = rg_getg();

	rg_lock(&g->sched->allg_lock);
	g->system = true; /* before it first parks: rg_leakcheck waits for runnable goroutines */
	rg_unlock(&g->sched->allg_lock);
	for (;;) {
		uint64_t n;
		int r = rg_poll_fd(fd, POLLIN);

		if (r < 0 || (r & (POLLERR | POLLNVAL)))
			rg_fatal("signal: waiting on the signal eventfd: %s",
				 r < 0 ? strerror(-r) : "descriptor closed");
		/* Read before taking the mask: a signal after the read wakes us again. */
		if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			rg_fatal("signal: reading the signal eventfd: %s", strerror(errno));
		rg_lock(&reg_lock);
		deliver();
		rg_unlock(&reg_lock);
	}
}

/* Start this run's delivery goroutine unless it runs already. [reg_lock] */
static int start_locked(struct rg_sched *s, struct rg_g *self)
{
	if (is_current_run(s))
		return 0;
	if (run_sched)
		drop_all(); /* an earlier run's, left behind */
	if (!self)
		return -EPERM; /* rg_go needs a goroutine */
	int fd = wake_fd_get();
	if (fd < 0)
		return fd;
	int err = rg_go(signal_loop, (void *)(intptr_t)fd);
	if (err)
		return err;
	run_sched = s;
	run_start = s->start_ns;
	return 0;
}

int rg_signal_notify(rg_chan *c, const int *sigs, size_t n)
{
	uint64_t want = n ? 0 : all_signals();

	if (!c || c->elemsize != sizeof(int) || (n && !sigs))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!notifiable(sigs[i]))
			return -EINVAL;
		want |= sigbit(sigs[i]);
	}
	struct rg_sched *s = rg_sched_current();
	struct rg_g *self = rg_getg();
	/* Not after main returned: a goroutine left running must not start a new loop. */
	if (!s || atomic_load_explicit(&s->stopping, memory_order_acquire))
		return -EPERM;
	/* The poller ignores SIGPIPE when it is created: let that be the disposition we keep. */
	if (self)
		rg_poller_get(s);

	struct sig_entry *fresh = malloc(sizeof(*fresh));
	int err;

	rg_lock(&reg_lock);
	err = start_locked(s, self);
	if (err)
		goto out;
	struct sig_entry *e = entries;
	while (e && (e->c != c || e->stopping))
		e = e->next;
	if (!e) {
		if (!fresh) {
			err = -ENOMEM;
			goto out;
		}
		e = fresh;
		fresh = NULL;
		*e = (struct sig_entry){.c = c, .next = entries};
		entries = e;
	}
	uint64_t add = want & ~e->mask;
	e->mask |= add;
	while (add) {
		int sig = __builtin_ctzll(add) + 1;

		add &= add - 1;
		if (refs[sig]++ == 0)
			enable(sig);
	}
out:
	rg_unlock(&reg_lock);
	free(fresh);
	return err;
}

void rg_signal_stop(rg_chan *c)
{
	struct rg_sched *s = rg_sched_current();
	struct rg_g *self = rg_getg();
	struct sig_entry *e;
	uint64_t gen;

	if (!c)
		return;
	rg_lock(&reg_lock);
	if (!is_current_run(s)) {
		/* Left behind by an earlier run (unless the caller's run is the one that ended). */
		if (run_sched && !(s && atomic_load_explicit(&s->stopping, memory_order_acquire)))
			drop_all();
		rg_unlock(&reg_lock);
		return;
	}
	for (e = entries; e && (e->c != c || e->stopping); e = e->next)
		;
	if (!e) {
		rg_unlock(&reg_lock);
		return;
	}
	e->stopping = true;
	for (uint64_t m = e->mask; m; m &= m - 1) {
		int sig = __builtin_ctzll(m) + 1;

		if (--refs[sig] == 0)
			disable(sig);
	}
	gen = reg_gen;
	rg_unlock(&reg_lock);

	/*
	 * A signal caught before its disposition was restored must still reach
	 * c (Go's handlers.stopping): wait for the handlers in flight, then
	 * deliver what they recorded while c still counts.
	 */
	while (atomic_load(&delivering) != 0) {
		if (self)
			rg_yield();
		else
			rg_osyield();
	}
	rg_lock(&reg_lock);
	if (reg_gen == gen) { /* else the run ended meanwhile and freed e */
		deliver();
		struct sig_entry **pp = &entries;
		while (*pp != e)
			pp = &(*pp)->next;
		*pp = e->next;
		free(e);
	}
	rg_unlock(&reg_lock);
}

/* rg_run calls it once its main goroutine has returned: the run's registrations end with it. */
void rg_signal_run_end(struct rg_sched *s)
{
	rg_lock(&reg_lock);
	if (is_current_run(s))
		drop_all();
	rg_unlock(&reg_lock);
	/* A handler that saw a signal wanted finishes before rg_run returns. */
	while (atomic_load(&delivering) != 0)
		rg_osyield();
}
