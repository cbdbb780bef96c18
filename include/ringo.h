/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ringo: Go's concurrency model for C on Linux.
 *
 * Goroutines (G) run on OS threads (M) that hold logical processors (P). The
 * scheduler follows Go's runtime/proc.go: per-P lock-free run queues with a
 * runnext slot, a global queue, work stealing and spinning threads.
 *
 * Conventions:
 *  - Functions that can fail return 0 (or a non-negative value) on success and
 *    -errno on failure; they never set errno.
 *  - What Go panics on (a broken invariant, such as unlocking an unlocked
 *    mutex) prints "ringo: fatal: <reason>" with a goroutine dump and aborts.
 *  - Synchronisation objects are ready to use when zeroed, as in Go. They must
 *    not be copied after first use.
 *  - Unless stated otherwise, a function that may block must be called from a
 *    goroutine (inside rg_run); it parks the goroutine, never the thread.
 */
#ifndef RINGO_H
#define RINGO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; everything declared here is its ABI. */
#pragma GCC visibility push(default)

/*
 * errno belongs to the goroutine: ringo saves it when a goroutine switches
 * out and restores it into whichever thread resumes it. glibc declares
 * __errno_location() const, so a compiler may compute errno's address once
 * and reuse it after a call that switched threads, reading another thread's
 * errno. In files that include ringo.h, errno is therefore re-located after
 * every call. Define RINGO_NO_ERRNO_OVERRIDE before including ringo.h to
 * keep glibc's definition (then do not keep errno across blocking calls).
 */
int *rg_errno_location(void);
#ifndef RINGO_NO_ERRNO_OVERRIDE
#undef errno
#define errno (*rg_errno_location())
#endif

/* Default goroutine stack size; RINGO_STACK_SIZE in the environment overrides it. */
#define RG_STACK_SIZE_DEFAULT (64u * 1024u)

/* ---------------------------------------------------------------------------
 * Runtime and goroutines
 * ------------------------------------------------------------------------- */

/*
 * rg_run - start the runtime and run main_fn(arg) as the main goroutine.
 *
 * Goroutines run on threads the runtime starts; the calling thread waits, so
 * that rg_run can return 0 as soon as main_fn returns even while abandoned
 * goroutines (as when a Go main returns) still occupy threads. Their stacks
 * are reclaimed once no thread runs them. May be called again later in the
 * same process, but not from inside a goroutine.
 *
 * Returns -EINVAL if main_fn is NULL, -EBUSY if called from a goroutine or
 * while another rg_run is active, -ENOMEM or -EAGAIN if the runtime cannot get
 * memory or threads.
 *
 * Environment: RINGO_MAXPROCS (see rg_maxprocs), RINGO_STACK_SIZE (bytes,
 * rounded up to pages, at least 16 KiB).
 */
int rg_run(void (*main_fn)(void *arg), void *arg);

/*
 * rg_go - start fn(arg) in a new goroutine (Go's `go fn(arg)`).
 *
 * The new goroutine is placed in the current P's runnext slot, so it runs
 * soon and on the same P unless another P steals it. Returns 0, -EINVAL if
 * fn is NULL, -EPERM outside rg_run, or -ENOMEM when no stack can be had
 * (memory, address space or mappings exhausted); nothing is started then.
 */
int rg_go(void (*fn)(void *arg), void *arg);

/*
 * rg_yield - let other goroutines run (Go's runtime.Gosched). The caller goes
 * to the global run queue and resumes later. A no-op outside a goroutine.
 */
void rg_yield(void);

/* rg_goid - the calling goroutine's id (the main goroutine is 1), 0 outside a goroutine. */
uint64_t rg_goid(void);

/* rg_num_goroutines - goroutines that exist now (runnable, running or waiting); 0 outside rg_run. */
long rg_num_goroutines(void);

/*
 * rg_maxprocs - set GOMAXPROCS, the number of Ps, when n > 0; only read it
 * when n <= 0. Returns the previous value. Before rg_run the value set here is
 * used by the next rg_run; inside rg_run the change applies at once (Ps are
 * added or retired, their queued goroutines moved to the global queue).
 *
 * The default is the number of CPUs in the process's affinity mask, capped by
 * the cgroup v2 cpu.max quota (rounded up), as Go 1.25 does. RINGO_MAXPROCS in
 * the environment overrides the default. Values above 1024 are clamped.
 */
int rg_maxprocs(int n);

/* Per-P scheduler counters, for observation and tests. */
struct rg_pstats {
	uint64_t schedtick;  /* goroutines started on this P (runnext chains count once, as Go's) */
	uint64_t runs;       /* every goroutine start on this P, runnext included */
	uint64_t steals;     /* successful steals by this P from other Ps */
	uint64_t stolen;     /* goroutines this P took by stealing */
	uint64_t global_get; /* goroutines this P took from the global queue */
	uint32_t runq_len;   /* goroutines in the local ring now (runnext excluded) */
	uint64_t handoffs;   /* of runs: entered straight from a parking or exiting goroutine */
};

/*
 * rg_p_stats - copy P number p's counters into *out. Returns 0, -EINVAL for a
 * bad p or NULL out, -ESRCH outside rg_run. Counters survive until rg_run returns.
 */
int rg_p_stats(int p, struct rg_pstats *out);

/* rg_current_p - the number of the P running the caller, or -1 outside a goroutine. */
int rg_current_p(void);

/* ---------------------------------------------------------------------------
 * sync: Mutex, WaitGroup, Once (Go's sync package)
 * ------------------------------------------------------------------------- */

/*
 * rg_mutex - a mutual exclusion lock that parks goroutines, not threads.
 * Go's sync.Mutex: a short spin, then park; starvation mode hands the lock
 * directly to the oldest waiter after it waited more than 1 ms.
 * Zero value: unlocked.
 */
typedef struct rg_mutex {
	int32_t state;
	uint32_t sema;
} rg_mutex;

#define RG_MUTEX_INIT {0, 0}

/* rg_mutex_lock - lock m, parking the goroutine while another holds it. */
void rg_mutex_lock(rg_mutex *m);

/* rg_mutex_trylock - lock m if it is free right now; true when locked. Never blocks. */
bool rg_mutex_trylock(rg_mutex *m);

/*
 * rg_mutex_unlock - unlock m. Any goroutine may unlock (the lock is not tied to
 * its owner, as in Go). Fatal when m is not locked: "sync: unlock of unlocked mutex".
 */
void rg_mutex_unlock(rg_mutex *m);

/*
 * rg_wg - waits for a collection of goroutines to finish (Go's sync.WaitGroup).
 * Zero value: counter 0.
 */
typedef struct rg_wg {
	uint64_t state; /* high 32 bits: counter, low 32 bits: waiters */
	uint32_t sema;
} rg_wg;

#define RG_WG_INIT {0, 0}

/*
 * rg_wg_add - add delta (may be negative) to the counter; when it reaches zero
 * every waiter is released. Fatal when the counter goes negative ("sync:
 * negative WaitGroup counter") or when Add races with Wait as Go forbids.
 */
void rg_wg_add(rg_wg *wg, int delta);

/* rg_wg_done - rg_wg_add(wg, -1). */
void rg_wg_done(rg_wg *wg);

/* rg_wg_wait_slow - rg_wg_wait past its inline check; call rg_wg_wait. */
void rg_wg_wait_slow(rg_wg *wg);

/*
 * rg_wg_wait - park until the counter is zero. A zero counter is checked
 * inline (one load, with the ordering of Go's atomic load): a program that
 * waits on finished groups pays no call.
 */
static inline void rg_wg_wait(rg_wg *wg)
{
	if ((uint32_t)(__atomic_load_n(&wg->state, __ATOMIC_SEQ_CST) >> 32) != 0)
		rg_wg_wait_slow(wg);
}

/*
 * rg_once - runs a function exactly once (Go's sync.Once). Zero value: not yet run.
 */
typedef struct rg_once {
	uint32_t done;
	rg_mutex m;
} rg_once;

#define RG_ONCE_INIT {0, RG_MUTEX_INIT}

/*
 * rg_once_do - call fn(arg) if and only if this is the first rg_once_do on
 * once. Every caller returns only after that one call has returned, so its
 * effects are visible to all of them (Go's happens-before guarantee).
 * rg_once_do_slow is its out-of-line part: call rg_once_do.
 */
void rg_once_do_slow(rg_once *once, void (*fn)(void *arg), void *arg);

static inline void rg_once_do(rg_once *once, void (*fn)(void *arg), void *arg)
{
	/* Done: one acquire load, inline (Go outlines doSlow to inline this too). */
	if (!__atomic_load_n(&once->done, __ATOMIC_ACQUIRE))
		rg_once_do_slow(once, fn, arg);
}

/*
 * rg_rwmutex - a reader/writer lock (Go's sync.RWMutex). Any number of readers
 * or one writer. A blocked writer keeps new readers out (writer preference),
 * so readers cannot starve writers. Zero value: unlocked.
 */
typedef struct rg_rwmutex {
	rg_mutex w;		/* held by the writer, pending or active */
	uint32_t writer_sem;	/* the writer waits here for departing readers */
	uint32_t reader_sem;	/* readers wait here for the writer */
	int32_t reader_count;	/* readers; minus RG_RWMUTEX_MAX_READERS while a writer waits */
	int32_t reader_wait;	/* readers the writer still waits for */
} rg_rwmutex;

#define RG_RWMUTEX_INIT {RG_MUTEX_INIT, 0, 0, 0, 0}

void rg_rwmutex_rlock(rg_rwmutex *rw);
bool rg_rwmutex_tryrlock(rg_rwmutex *rw);
/* Fatal when not read-locked: "sync: RUnlock of unlocked RWMutex". */
void rg_rwmutex_runlock(rg_rwmutex *rw);
void rg_rwmutex_lock(rg_rwmutex *rw);
bool rg_rwmutex_trylock(rg_rwmutex *rw);
/* Fatal when not write-locked: "sync: Unlock of unlocked RWMutex". */
void rg_rwmutex_unlock(rg_rwmutex *rw);

/*
 * rg_cond - a condition variable (Go's sync.Cond) tied to a mutex L. Wait
 * unlocks L, parks until signalled, and locks L again. Waiters are woken in
 * the order they started waiting. Initialise with RG_COND_INIT(&mu) or set L.
 */
typedef struct rg_cond {
	rg_mutex *L;
	uint32_t wait;	 /* next ticket */
	uint32_t notify; /* next ticket to wake */
	uint32_t lock;
	void *head, *tail;
} rg_cond;

#define RG_COND_INIT(mutex) {(mutex), 0, 0, 0, NULL, NULL}

void rg_cond_wait(rg_cond *c);
void rg_cond_signal(rg_cond *c);
void rg_cond_broadcast(rg_cond *c);

/*
 * rg_sem - a weighted semaphore (golang.org/x/sync/semaphore): acquisitions
 * of different weights, served in FIFO order so a large request is not
 * starved by small ones. RG_SEM_INIT(n) or rg_sem_init sets the weight; a
 * zeroed rg_sem has weight 0.
 */
typedef struct rg_sem {
	int64_t size;
	int64_t cur;
	uint32_t lock;
	void *head, *tail;
} rg_sem;

#define RG_SEM_INIT(n) {(n), 0, 0, NULL, NULL}

/* rg_sem_init - set the total weight to n (before use). -EINVAL for n < 0. */
int rg_sem_init(rg_sem *s, int64_t n);
/* rg_sem_acquire - park until n can be taken; 0, or -EINVAL when n < 0 or n > the weight. */
int rg_sem_acquire(rg_sem *s, int64_t n);
/* rg_sem_tryacquire - take n if it is free now and nobody waits; true on success. */
bool rg_sem_tryacquire(rg_sem *s, int64_t n);
/* rg_sem_release - give back n. Fatal when more is released than held. */
void rg_sem_release(rg_sem *s, int64_t n);

/*
 * rg_atomic_value - publish a pointer for readers that must never block (Go's
 * atomic.Value, for configuration hot-reload). Load is one acquire load;
 * stores are release stores. The old value's memory is the caller's: free it
 * only when no reader can still hold it (for example after every reader
 * goroutine has acknowledged the new value). Zero value: holds NULL.
 */
typedef struct rg_atomic_value {
	void *v;
} rg_atomic_value;

void *rg_atomic_value_load(rg_atomic_value *av);
void rg_atomic_value_store(rg_atomic_value *av, void *v);
/* Store v, return the previous value. */
void *rg_atomic_value_swap(rg_atomic_value *av, void *v);
/* Store new if the value is old; true when it did. */
bool rg_atomic_value_cas(rg_atomic_value *av, void *old, void *new_v);

/*
 * rg_errgroup - run goroutines that may fail and wait for all of them; the
 * first error wins (golang.org/x/sync/errgroup). Zero value: no limit, no
 * context.
 */
typedef struct rg_errgroup {
	rg_wg wg;
	rg_once err_once;
	int err;
	int32_t limit;	/* 0: unlimited */
	rg_sem sem;	/* active goroutines when limited */
	uint32_t canceled;
	struct rg_ctx *ctx; /* rg_errgroup_with_ctx's, until wait returns */
} rg_errgroup;

/*
 * rg_errgroup_go - run fn(arg) in a new goroutine; a non-zero return is the
 * group's error if it is the first. With a limit, parks until a slot is free.
 * Returns 0 or the -errno of rg_go (then fn does not run).
 */
int rg_errgroup_go(rg_errgroup *g, int (*fn)(void *arg), void *arg);
/* rg_errgroup_trygo - as go, but -EAGAIN instead of waiting for a slot. */
int rg_errgroup_trygo(rg_errgroup *g, int (*fn)(void *arg), void *arg);
/* rg_errgroup_set_limit - at most n goroutines at once (n <= 0: no limit). -EBUSY while any run. */
int rg_errgroup_set_limit(rg_errgroup *g, int n);
/* rg_errgroup_wait - wait for every goroutine; the first error, or 0. */
int rg_errgroup_wait(rg_errgroup *g);
/* rg_errgroup_canceled - true once a goroutine of g failed: the others should stop. */
bool rg_errgroup_canceled(rg_errgroup *g);
/*
 * rg_errgroup_with_ctx - Go's errgroup.WithContext for a group that has no
 * goroutines yet: a new child of parent (see rg_ctx below), cancelled with
 * -ECANCELED when a goroutine of g first fails, when rg_errgroup_wait
 * returns, or when parent is. The caller owns it and rg_ctx_free's it,
 * normally after rg_errgroup_wait (freeing it earlier cancels it); the group
 * holds its own reference until rg_errgroup_wait returns, so its goroutines
 * may use it until then. NULL with errno EINVAL, EBUSY (g has a context
 * whose wait has not returned yet) or ENOMEM.
 */
struct rg_ctx *rg_errgroup_with_ctx(rg_errgroup *g, struct rg_ctx *parent);

/* ---------------------------------------------------------------------------
 * Bug detectors: leak check (deadlock detection and SIGQUIT dumps are automatic)
 * ------------------------------------------------------------------------- */

/*
 * Goroutines to tolerate in rg_leakcheck (uber-go/goleak's options): by id,
 * or by entry function. Zero-initialised means "none".
 */
struct rg_leakcheck_opts {
	const uint64_t *ignore_ids;
	size_t n_ignore_ids;
	void (*const *ignore_fns)(void *);
	size_t n_ignore_fns;
	int64_t timeout_ns; /* how long runnable goroutines may take to finish; 0: 1 s */
};

/*
 * rg_leakcheck - report goroutines still alive other than the caller and the
 * ignored ones, each with its dump on stderr, and return how many (0: no
 * leak). Goroutines that are still runnable, in a system call, or waiting
 * for I/O or a timer get until the timeout to finish (the checker yields to
 * runnable ones and naps 100 us while only I/O and timers are left), and so,
 * meanwhile, do the ones they may wake; when only goroutines parked on
 * ringo objects are left, those are leaks at once. Returns -EPERM outside a
 * goroutine, -EINVAL for inconsistent opts.
 *
 * The deadlock detector needs no call: when every goroutine is parked and
 * nothing (timer, I/O, system call) can wake one, ringo prints "ringo: fatal:
 * all goroutines are asleep - deadlock!" with a dump and exits 2, as Go does
 * (RINGO_DEADLOCK=0 turns it off, for programs that wake goroutines from
 * plain threads). SIGQUIT dumps every goroutine and exits 2, as in Go.
 */
long rg_leakcheck(const struct rg_leakcheck_opts *opts);

/* ---------------------------------------------------------------------------
 * Channels and select (Go's chan and select)
 * ------------------------------------------------------------------------- */

/*
 * rg_chan - a typed-by-size channel. Elements are copied by value, as Go does.
 * An unbuffered channel (cap 0) completes a send only when a receiver takes
 * the value; a buffered one is FIFO. Waiters are served in arrival order.
 *
 * Memory model (Go's): a send happens-before the matching receive completes;
 * the k-th receive happens-before the (k+C)-th send completes (C = cap); a
 * close happens-before a receive that returns because the channel is closed.
 *
 * A NULL channel is Go's nil channel: sending or receiving on it blocks
 * forever, and a select case on it never proceeds.
 */
typedef struct rg_chan rg_chan;

/*
 * rg_chan_make - a channel of cap elements of elem_size bytes each (elem_size
 * may be 0, Go's chan struct{}). NULL with errno EINVAL when elem_size is
 * 64 KiB or more or the buffer would exceed 2^48 bytes (Go's limit), ENOMEM
 * when out of memory.
 */
rg_chan *rg_chan_make(size_t elem_size, size_t cap);

/* rg_chan_free - free c (NULL is a no-op). Fatal if goroutines still wait on it. */
void rg_chan_free(rg_chan *c);

/*
 * rg_chan_send - send *elem on c, parking until it is taken (unbuffered) or
 * buffered. Returns 0, or -EPIPE when c is closed (Go panics; ringo
 * returns), also when it was closed while the sender waited.
 */
int rg_chan_send(rg_chan *c, const void *elem);

/*
 * rg_chan_recv - receive into *out (out may be NULL to discard), parking
 * until a value arrives. Returns 1 with a value, 0 when c is closed and
 * drained (then *out is zeroed: Go's zero value).
 */
int rg_chan_recv(rg_chan *c, void *out);

/* rg_chan_trysend - as rg_chan_send, but -EAGAIN instead of blocking. */
int rg_chan_trysend(rg_chan *c, const void *elem);

/* rg_chan_tryrecv - as rg_chan_recv, but -EAGAIN instead of blocking. */
int rg_chan_tryrecv(rg_chan *c, void *out);

/*
 * rg_chan_close - close c: every parked receiver gets 0 (closed) and every
 * parked sender -EPIPE. Returns 0, -EPIPE when already closed, -EINVAL for NULL.
 */
int rg_chan_close(rg_chan *c);

/* rg_chan_len, rg_chan_cap - elements buffered now, and the capacity (0 for NULL). */
size_t rg_chan_len(rg_chan *c);
size_t rg_chan_cap(rg_chan *c);

/* One case of a select. Build it with RG_SEND / RG_RECV. */
typedef struct rg_case {
	rg_chan *chan; /* NULL: a nil channel, never ready */
	int dir;       /* RG_CASE_SEND or RG_CASE_RECV */
	void *elem;    /* send: the value to send; recv: where to store it (may be NULL) */
	int result;    /* out, for the chosen case: send 0 or -EPIPE; recv 1 (value) or 0 (closed) */
} rg_case;

enum { RG_CASE_SEND = 1, RG_CASE_RECV = 2 };

#define RG_SEND(ch, ptr) ((rg_case){.chan = (ch), .dir = RG_CASE_SEND, .elem = (void *)(ptr)})
#define RG_RECV(ch, ptr) ((rg_case){.chan = (ch), .dir = RG_CASE_RECV, .elem = (ptr)})

/*
 * rg_select - Go's select over n cases. Chooses uniformly at random among the
 * ready cases and returns its index, with cases[i].result set. When none is
 * ready it blocks, or with has_default returns -EAGAIN (Go's default case).
 * A send case on a closed channel is ready and reports -EPIPE. With no
 * non-NULL channel and no default it blocks forever, like Go's `select {}`.
 * Returns -EINVAL for a bad case (dir) or more than 65536 cases, -ENOMEM when
 * more than 8 cases need bookkeeping memory that cannot be had.
 *
 *	rg_case cs[] = { RG_RECV(jobs, &job), RG_RECV(done, NULL) };
 *	switch (rg_select(cs, 2, false)) {
 *	case 0: if (cs[0].result) handle(job); break;
 *	case 1: return;
 *	}
 */
int rg_select(rg_case *cases, size_t n, bool has_default);

/* ---------------------------------------------------------------------------
 * Time: sleep, timers, tickers (Go's time package)
 * ------------------------------------------------------------------------- */

/* rg_now - CLOCK_MONOTONIC in nanoseconds. */
int64_t rg_now(void);

/*
 * rg_sleep - park the calling goroutine for at least ns nanoseconds (it never
 * wakes early). ns <= 0 returns at once. Outside a goroutine it sleeps the
 * thread.
 */
void rg_sleep(int64_t ns);

/*
 * rg_timer - fires once: sends rg_now() at expiry (an int64_t) on its channel,
 * which has capacity 1, so a late reader still finds the value.
 */
typedef struct rg_timer rg_timer;

/* rg_timer_new - a timer that fires after ns. NULL with errno ENOMEM. */
rg_timer *rg_timer_new(int64_t ns);
/*
 * rg_after_func - Go's time.AfterFunc: after ns, call fn(arg) in a goroutine
 * of its own. The timer has no channel (rg_timer_chan returns NULL); stop,
 * reset and free work as for any timer, and rg_timer_stop's true means fn
 * will not be called. NULL with errno EINVAL (fn NULL) or ENOMEM.
 */
rg_timer *rg_after_func(int64_t ns, void (*fn)(void *arg), void *arg);
/* rg_timer_chan - the channel the timer sends on (for rg_chan_recv or an RG_RECV case). */
rg_chan *rg_timer_chan(rg_timer *t);
/* rg_timer_stop - stop it; true if that prevented the send (false: already fired or stopped). */
bool rg_timer_stop(rg_timer *t);
/*
 * rg_timer_reset - fire again after ns (a stopped or fired timer restarts);
 * true if it was still pending. As in Go, drain the channel first if the
 * timer may have fired, or a stale value can be read.
 */
bool rg_timer_reset(rg_timer *t, int64_t ns);
/* rg_timer_free - stop and free t and its channel (NULL is a no-op). */
void rg_timer_free(rg_timer *t);

/*
 * rg_ticker - sends rg_now() every period on its capacity-1 channel; ticks a
 * slow reader misses are dropped, as in Go.
 */
typedef struct rg_ticker rg_ticker;

/* rg_ticker_new - NULL with errno EINVAL for period <= 0, ENOMEM when out of memory. */
rg_ticker *rg_ticker_new(int64_t period_ns);
rg_chan *rg_ticker_chan(rg_ticker *t);
void rg_ticker_stop(rg_ticker *t);
/* rg_ticker_reset - restart with a new period; -EINVAL for period <= 0. */
int rg_ticker_reset(rg_ticker *t, int64_t period_ns);
void rg_ticker_free(rg_ticker *t);

/*
 * rg_after - a channel that receives rg_now() once, after ns (Go's
 * time.After). The channel is the caller's: rg_chan_free it when done, which
 * also cancels the timer if it has not fired. NULL with errno ENOMEM.
 */
rg_chan *rg_after(int64_t ns);

/* ---------------------------------------------------------------------------
 * Context (Go's context package)
 * ------------------------------------------------------------------------- */

/*
 * rg_ctx - a cancellation scope with an optional deadline and values. A
 * context is cancelled explicitly, when its deadline passes, or when its
 * parent is; cancellation reaches every descendant (with the error the
 * ancestor got) and every blocking call waiting under one of them (I/O in
 * flight is cancelled in the kernel).
 *
 * Ownership: each rg_ctx_with_* result belongs to the caller, who must
 * rg_ctx_free it (Go's `defer cancel()`); that cancels it and its children
 * and drops the caller's reference. Children keep their parent alive, so the
 * frees may come in any order. Safe from any goroutine or thread. A context
 * must not be used after its owner freed it: a goroutine that may outlive
 * the owner's free should be handed a child of its own (made by the owner
 * with rg_ctx_with_cancel, freed by the goroutine), which keeps the chain
 * above it alive and is cancelled with it.
 *
 * Deadlines are enforced by a timer of the rg_run that made the context.
 * rg_ctx_err, rg_ctx_done and the creation of children also compare the
 * deadline with rg_now(), so a context made outside rg_run (or used after
 * its rg_run returned) is cancelled with -ETIMEDOUT as soon as one of them
 * is called after the deadline; without a timer, though, nothing closes the
 * done channel by itself. A deadline context keeps its rg_run's scheduler
 * memory until it is freed.
 */
typedef struct rg_ctx rg_ctx;

/* rg_ctx_background - the root: never cancelled, no deadline, no values; free is a no-op. */
rg_ctx *rg_ctx_background(void);
/*
 * rg_ctx_with_cancel - a child cancelled by rg_ctx_cancel (or by its parent);
 * already cancelled, with the parent's error, if the parent is. NULL with
 * errno EINVAL (NULL parent) or ENOMEM.
 */
rg_ctx *rg_ctx_with_cancel(rg_ctx *parent);
/*
 * rg_ctx_with_deadline - a child cancelled with -ETIMEDOUT at deadline
 * (rg_now() clock; never earlier). Its deadline is the sooner of its own and
 * its parent's (a later one than the parent's makes it a plain
 * rg_ctx_with_cancel child). Already cancelled with -ETIMEDOUT when the
 * deadline has passed. NULL with errno EINVAL or ENOMEM.
 */
rg_ctx *rg_ctx_with_deadline(rg_ctx *parent, int64_t deadline);
/* rg_ctx_with_timeout - rg_ctx_with_deadline(parent, rg_now() + ns); ns <= 0 has passed. */
rg_ctx *rg_ctx_with_timeout(rg_ctx *parent, int64_t ns);
/*
 * rg_ctx_with_value - a child carrying key -> value (compared by pointer);
 * not cancellable itself: its done channel, error and deadline are its
 * parent's. NULL with errno EINVAL (NULL parent or key) or ENOMEM.
 */
rg_ctx *rg_ctx_with_value(rg_ctx *parent, const void *key, void *value);
/*
 * rg_ctx_cancel - cancel ctx and its descendants with -ECANCELED (later calls
 * do nothing; so does a background or value context, or NULL).
 */
void rg_ctx_cancel(rg_ctx *ctx);
/*
 * rg_ctx_free - drop the caller's reference, cancelling ctx first (for a
 * value context, only drop: it cannot be cancelled). NULL and background:
 * no-op.
 */
void rg_ctx_free(rg_ctx *ctx);
/*
 * rg_ctx_done - a channel closed when ctx is cancelled, for rg_select (the
 * same one on every call; it belongs to the context: never rg_chan_free it);
 * NULL (a nil channel: never ready) for a context that can never be
 * cancelled (background, values over it, or NULL).
 */
rg_chan *rg_ctx_done(rg_ctx *ctx);
/* rg_ctx_err - 0 while live; -ECANCELED after cancel; -ETIMEDOUT after the deadline. */
int rg_ctx_err(rg_ctx *ctx);
/* rg_ctx_deadline - true and *deadline set if ctx (or an ancestor) has a deadline. */
bool rg_ctx_deadline(rg_ctx *ctx, int64_t *deadline);
/* rg_ctx_value - the value of the nearest ancestor-or-self with key, or NULL. */
void *rg_ctx_value(rg_ctx *ctx, const void *key);

/* ---------------------------------------------------------------------------
 * Goroutine-blocking I/O (io_uring; epoll where io_uring is unavailable)
 *
 * Each call parks only the calling goroutine and returns what the system
 * call would, with -errno for failure (never EINTR, never EAGAIN for a
 * blocking descriptor's "would block": the goroutine waits instead). Outside
 * a goroutine they perform the plain system call. File descriptors may be
 * blocking or not. Each has an _ctx form: when ctx is cancelled first the
 * operation is cancelled in the kernel and the call returns rg_ctx_err(ctx)
 * (-ECANCELED or -ETIMEDOUT); when the operation completed first its result
 * is returned, so no data is lost to the race.
 *
 * ringo ignores SIGPIPE if its disposition is the default (as Go does): a
 * write to a reset connection returns -EPIPE instead of killing the process.
 *
 * Environment: RINGO_POLLER=epoll forces the epoll poller.
 * ------------------------------------------------------------------------- */

ssize_t rg_read(int fd, void *buf, size_t n);
ssize_t rg_write(int fd, const void *buf, size_t n);
ssize_t rg_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t rg_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t rg_pread(int fd, void *buf, size_t n, off_t offset);
ssize_t rg_pwrite(int fd, const void *buf, size_t n, off_t offset);
ssize_t rg_recv(int fd, void *buf, size_t n, int flags);
ssize_t rg_send(int fd, const void *buf, size_t n, int flags);
ssize_t rg_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t rg_sendmsg(int fd, const struct msghdr *msg, int flags);
/* rg_accept - the new connection's fd (close-on-exec) or -errno. */
int rg_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
int rg_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
int rg_openat(int dirfd, const char *path, int flags, mode_t mode);
int rg_close(int fd);
int rg_fsync(int fd);
/* rg_poll_fd - wait until fd has one of events (POLLIN, POLLOUT...); returns the revents. */
int rg_poll_fd(int fd, short events);

ssize_t rg_read_ctx(rg_ctx *ctx, int fd, void *buf, size_t n);
ssize_t rg_write_ctx(rg_ctx *ctx, int fd, const void *buf, size_t n);
ssize_t rg_readv_ctx(rg_ctx *ctx, int fd, const struct iovec *iov, int iovcnt);
ssize_t rg_writev_ctx(rg_ctx *ctx, int fd, const struct iovec *iov, int iovcnt);
ssize_t rg_pread_ctx(rg_ctx *ctx, int fd, void *buf, size_t n, off_t offset);
ssize_t rg_pwrite_ctx(rg_ctx *ctx, int fd, const void *buf, size_t n, off_t offset);
ssize_t rg_recv_ctx(rg_ctx *ctx, int fd, void *buf, size_t n, int flags);
ssize_t rg_send_ctx(rg_ctx *ctx, int fd, const void *buf, size_t n, int flags);
ssize_t rg_recvmsg_ctx(rg_ctx *ctx, int fd, struct msghdr *msg, int flags);
ssize_t rg_sendmsg_ctx(rg_ctx *ctx, int fd, const struct msghdr *msg, int flags);
int rg_accept_ctx(rg_ctx *ctx, int fd, struct sockaddr *addr, socklen_t *addrlen);
int rg_connect_ctx(rg_ctx *ctx, int fd, const struct sockaddr *addr, socklen_t addrlen);
int rg_openat_ctx(rg_ctx *ctx, int dirfd, const char *path, int flags, mode_t mode);
int rg_fsync_ctx(rg_ctx *ctx, int fd);
int rg_poll_fd_ctx(rg_ctx *ctx, int fd, short events);

/*
 * rg_listen_tcp - a listening TCP socket on "host:port" ("127.0.0.1:8080",
 * "[::1]:0", ":8080" for every address; port 0 picks a free one), with
 * SO_REUSEADDR, non-blocking and close-on-exec. The fd or -errno.
 */
int rg_listen_tcp(const char *host_port, int backlog);
/* rg_dial_tcp - a connected TCP socket to a numeric "host:port" (TCP_NODELAY set); fd or -errno. */
int rg_dial_tcp(const char *host_port);
int rg_dial_tcp_ctx(rg_ctx *ctx, const char *host_port);
/* rg_local_port - the local port of a bound socket, or -errno (for listeners on port 0). */
int rg_local_port(int fd);

/* rg_poller_name - "io_uring" or "epoll": the poller this process uses. */
const char *rg_poller_name(void);

/* ---------------------------------------------------------------------------
 * Signals (Go's os/signal)
 *
 * A notified signal is caught by a small handler on whichever thread the
 * kernel picks (ringo's or the program's own: no signal mask needs to
 * change) and sent as an int, the signal number, to every channel
 * registered for it, by a goroutine that waits in the poller. The send
 * never blocks: a full channel drops the signal, as in Go, so give the
 * channel a buffer (1 is enough for one kind of signal). Like the kernel,
 * ringo coalesces signals of one number that arrive before the first was
 * sent. Graceful shutdown is a select:
 *
 *	rg_chan *sigc = rg_chan_make(sizeof(int), 1);
 *	int sig, sigs[] = { SIGINT, SIGTERM };
 *	rg_signal_notify(sigc, sigs, 2);
 *	rg_case cs[] = { RG_RECV(sigc, &sig), RG_RECV(jobs, &job) };
 *	while (rg_select(cs, 2, false) == 1)
 *		handle(job);
 *	drain_and_exit();
 *
 * As in Go, SIGQUIT may be notified (the channel gets it instead of the
 * goroutine dump); so may SIGURG (preemption keeps working, and the channel
 * also gets the preemption signals); and a SIGILL, SIGFPE, SIGTRAP or
 * SIGSYS the kernel raises for a fault still kills the program: only a
 * sent one is delivered.
 *
 * The delivery goroutine (one per rg_run, started by its first
 * rg_signal_notify; Go's os/signal.loop) is counted by rg_num_goroutines
 * and shown in dumps, but rg_leakcheck skips it, as goleak skips Go's. And
 * as in Go, whose signal loop keeps a thread blocked, the deadlock detector
 * stays silent in that rg_run from the first rg_signal_notify on, even
 * after rg_signal_stop: a signal may always come.
 *
 * Registrations belong to the rg_run that made them: when its main
 * goroutine returns, every channel is stopped and every signal has its
 * original disposition back. A registered channel must not be freed: stop
 * it first.
 * ------------------------------------------------------------------------- */

/*
 * rg_signal_notify - send each of the n signals in sigs to c, a channel of
 * ints; n == 0 means every signal that may be notified except SIGPROF
 * (Go's Notify(c)). Calling it again for the same channel adds signals;
 * every channel registered for a signal gets it. The first registration of
 * a signal saves its disposition and installs ringo's handler (a signal the
 * program ignored is caught from then on, as in Go).
 *
 * Returns 0, or with nothing changed: -EINVAL for a NULL c, elements that
 * are not int-sized, NULL sigs with n > 0, or a signal that cannot be
 * notified (outside 1..64, SIGKILL, SIGSTOP, glibc's internal 32 and 33,
 * and SIGSEGV and SIGBUS, which report stack overflows); -EPERM outside
 * rg_run or after its main goroutine returned, or when the first call of
 * an rg_run is not made by a goroutine; -ENOMEM, -EMFILE or -ENFILE.
 */
int rg_signal_notify(rg_chan *c, const int *sigs, size_t n);

/*
 * rg_signal_stop - stop sending signals to c (Go's signal.Stop). A signal
 * no channel wants any more gets its original disposition back: the default
 * action, ignored, the program's handler, or for SIGQUIT ringo's dump. When
 * it returns, c gets no more signals and has been sent every signal caught
 * before: a signal is sent or meets its restored disposition, never lost.
 * NULL or a channel that is not registered: nothing. Callable from any thread.
 */
void rg_signal_stop(rg_chan *c);

/* ---------------------------------------------------------------------------
 * Blocking system calls that cannot go through the poller
 * ------------------------------------------------------------------------- */

/*
 * rg_syscall_enter / rg_syscall_exit - bracket a call that may block the
 * thread (Go's entersyscall / exitsyscall). Meanwhile the goroutine's P may
 * be handed to another thread so other goroutines keep running; exit takes
 * a P back, parking the goroutine if none is free. Errno is preserved.
 * Outside a goroutine both do nothing.
 */
void rg_syscall_enter(void);
void rg_syscall_exit(void);

/* ---------------------------------------------------------------------------
 * Preemption and thread locking
 *
 * As in Go 1.14+, a goroutine that runs for a whole time slice (10 ms,
 * RINGO_TIMESLICE=500us etc., at least 50 us) while other goroutines wait
 * is preempted, even in a loop without calls: sysmon sends its thread a
 * SIGURG (RINGO_PREEMPT_SIGNAL=SIGRTMIN+3, a name or a number, picks
 * another; one the kernel raises for faults, SIGKILL, SIGSTOP, SIGCHLD and
 * glibc's 32 and 33 are refused with a warning) and the goroutine yields
 * to the global queue, to resume later,
 * perhaps on another thread. It is stopped only in the program's own code
 * (never inside ringo, libc or any other shared library, nor in a function
 * marked RG_NOPREEMPT), with its registers, vector state and errno intact;
 * elsewhere the request waits for the next safe point. RINGO_ASYNCPREEMPT=0
 * turns the signals off (the scheduler still honours requests at its own
 * safe points); under ThreadSanitizer they are always off.
 *
 * What this means for C code:
 *  - __thread variables belong to the thread, and a compiler may keep a
 *    thread-local address in a register across a loop; after a preemption
 *    that moved the goroutine, it names the old thread's variable. Wrap such
 *    loops in rg_lock_thread / rg_unlock_thread (or set RINGO_PREEMPT_PIN=1
 *    for the whole program: preempted goroutines then resume on their own
 *    thread, at the price of a thread hand-off per preemption).
 *  - A pthread mutex (or spinlock) held across preemptible code can stall
 *    another goroutine's thread in the kernel while the holder waits in a
 *    run queue: use rg_mutex, or disable preemption around the section.
 *    Code linked statically into the executable (a static allocator,
 *    clang's static sanitizer runtimes) is the program's own to ringo, and
 *    its locks are such locks: call it with preemption disabled, or link
 *    it as a shared library (code in those is never stopped).
 *  - Program code that a library calls back while holding its own lock (a
 *    comparator under a library's mutex, a dl_iterate_phdr callback) must
 *    disable preemption; ringo notices such frames only where they keep
 *    frame pointers.
 *  - A SIGURG handler the program installed before rg_run (or between two
 *    rg_runs) keeps running, first, with the mask it asked for and the
 *    context as interrupted, and sees ringo's SIGURGs too (treat SIGURG as
 *    a hint, as Go's signal.Notify users do). One installed during an
 *    rg_run replaces ringo's until the next.
 *  - ringo's own calls never return EINTR. The program's own calls that
 *    SA_RESTART does not restart (nanosleep, poll, epoll_wait, sem_timedwait
 *    ...) may, as in Go: retry them, or wrap them in rg_syscall_enter/exit
 *    and still retry.
 * ------------------------------------------------------------------------- */

/*
 * rg_preempt_disable / rg_preempt_enable - keep the calling goroutine from
 * being preempted asynchronously in between. They nest; the last enable
 * yields at once if a preemption was requested meanwhile. Per goroutine,
 * cheap (a call and an increment); no-ops outside goroutines. An enable
 * without a disable is a fatal error.
 */
void rg_preempt_disable(void);
void rg_preempt_enable(void);

/*
 * rg_lock_thread / rg_unlock_thread - Go's LockOSThread / UnlockOSThread:
 * the calling goroutine runs only on its current thread, and that thread
 * runs no other goroutine, until as many unlocks as locks. When it blocks,
 * the thread hands its P to another thread and sleeps; a goroutine that
 * exits locked takes its thread with it. Unlock without lock does nothing.
 */
void rg_lock_thread(void);
void rg_unlock_thread(void);

/*
 * RG_NOPREEMPT - mark a function of the program that must never be stopped
 * in the middle (it takes a lock the next goroutine on the thread would
 * take, say). Calls it makes are not covered: disable preemption there.
 */
#define RG_NOPREEMPT __attribute__((section("rg_nopreempt"), noinline))

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* RINGO_H */
