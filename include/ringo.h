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

/* rg_wg_wait - park until the counter is zero. */
void rg_wg_wait(rg_wg *wg);

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
 */
void rg_once_do(rg_once *once, void (*fn)(void *arg), void *arg);

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
 * first error wins (golang.org/x/sync/errgroup). Zero value: no limit.
 */
typedef struct rg_errgroup {
	rg_wg wg;
	rg_once err_once;
	int err;
	int32_t limit;	/* 0: unlimited */
	rg_sem sem;	/* active goroutines when limited */
	uint32_t canceled;
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
 * leak). Goroutines that are still runnable get until the timeout to finish
 * (the checker yields to them, it does not sleep); parked ones are leaks at
 * once. Returns -EPERM outside a goroutine, -EINVAL for inconsistent opts.
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

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* RINGO_H */
