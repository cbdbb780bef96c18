// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_ctx: Go's context package (src/context/context.go, Go 1.19).
 *
 * Three kinds: the background root; value contexts, which only carry a
 * key/value and answer everything else from their parent; and cancel
 * contexts (WithCancel, and WithDeadline's timerCtx), which have a lock, an
 * error, a done channel, children and hooks. A cancel context registers with
 * its nearest cancellable ancestor (its cparent), as Go's propagateCancel
 * does with parentCancelCtx.
 *
 * Lifetime: references. The owner holds one (rg_ctx_free drops it), every
 * child holds one on its parent, a hook shard with hooks one on its context, and
 * an armed deadline timer one on its context. A cancel context is linked in
 * its cparent's children only while its owner's reference exists: owners
 * unlink (under the cparent's lock) before they drop it. So a canceller that
 * holds a context's lock can touch every linked child.
 *
 * Locks are taken parent before child only: cancel holds the lock of every
 * context on the path from the one it cancels down to the one it marks, as
 * Go's recursive cancel does, but walks iteratively (walk_up) so a deep
 * chain cannot overflow a goroutine's stack. Unlinking takes the parent's
 * lock with the child's released.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "context.h"
#include "fatal.h"
#include "lock.h"
#include "runtime.h"
#include "timer.h"

enum ctx_kind {
	K_BACKGROUND,
	K_VALUE,
	K_CANCEL
};

struct cctx;

/*
 * Hooks live in shards: a context shared by many goroutines (a server's,
 * waited on by every connection's I/O) took one lock and one reference
 * count per operation from every P, and that cache line bouncing between
 * CPUs was 5% of an echo server's CPU. A shard holds one reference on its
 * context while it has hooks, so add and del touch only their shard.
 * Every context has one shard inline, which serves while one P registers
 * at a time (a request's own context); the first add that finds it in use
 * by another P gives the context a shard per P (CTX_SHARDS, by P id).
 */
#define CTX_SHARDS 8

struct hook_shard {
	struct rg_lock lock;
	bool cancelled;		   /* the hooks ran: add refuses, del leaves the list [lock] */
	int last_p;		   /* the P of the latest add [lock] */
	uint32_t n;		   /* hooks added and not yet deleted [lock] */
	struct rg_ctx_hook *hooks; /* [lock] */
};

/* One P's shard on a line of its own (the array is cache-line aligned). */
union padded_shard {
	struct hook_shard s;
	char line[RG_CACHELINE];
};

struct rg_ctx {
	struct rg_ctx *parent; /* a reference is held on it; NULL for background */
	struct cctx *cparent;  /* nearest cancellable ancestor, or NULL (no reference) */
	struct cctx *dl;       /* the ancestor-or-self whose deadline applies, or NULL */
	int64_t deadline;      /* effective deadline (rg_nanotime clock), when dl */
	_Atomic int32_t refs;
	uint8_t kind;
	const void *key; /* K_VALUE */
	void *val;
};

struct cctx {
	struct rg_ctx base;
	struct rg_lock lock;
	_Atomic int err;	   /* 0 until cancelled; written once under lock */
	struct cctx *children;	   /* linked children [lock] */
	struct cctx *next, *prev;  /* in cparent->children [cparent->lock] */
	bool linked;		   /* [cparent->lock] */
	bool timer_armed;	   /* timer is (or may be) in a heap [lock] */
	struct cctx *walk_up;	   /* cancel's path back up [lock] */
	struct hook_shard hook0;   /* hooks while one P at a time registers */
	/* CTX_SHARDS more, by P id, once a second P registered; set once [lock] */
	union padded_shard *_Atomic shards;
	struct rg_rtimer timer;	   /* the deadline (only when dl == this) */
	struct rg_sched *tsched;   /* the scheduler the timer runs on (a reference) */
	struct rg_chan done;	   /* closed on cancel; lives as long as the context */
};

static struct rg_ctx background = {.kind = K_BACKGROUND};

/* Live contexts, for tests' leak checks. */
static _Atomic long live;

long rg_ctx_live(void)
{
	return atomic_load_explicit(&live, memory_order_relaxed);
}

rg_ctx *rg_ctx_background(void)
{
	return &background;
}

/* The context that cancels on ctx's behalf: itself, or its nearest cancellable ancestor. */
static struct cctx *target(rg_ctx *ctx)
{
	return ctx->kind == K_CANCEL ? (struct cctx *)ctx : ctx->cparent;
}

static void ctx_get(rg_ctx *c)
{
	if (c->kind != K_BACKGROUND)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void rg_ctx_ref(rg_ctx *ctx)
{
	if (ctx)
		ctx_get(ctx);
}

/* Drop one reference; the last frees the context and drops its parent's. */
static void ctx_put(rg_ctx *c)
{
	while (c && c->kind != K_BACKGROUND) {
		if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
			return;
		rg_ctx *parent = c->parent;
		if (c->kind == K_CANCEL) {
			/* Not linked (the owner unlinked), no timer (it holds a
			 * reference), no hooks (they do too): just memory. */
			struct cctx *cc = (struct cctx *)c;
			if (cc->tsched)
				rg_sched_put(cc->tsched);
			free(atomic_load_explicit(&cc->shards, memory_order_relaxed));
		}
		free(c);
		atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
		c = parent; /* a loop, not recursion: chains can be long */
	}
}

/* A cancelled context's hooks, each run once; later adds to the shard are refused. */
static void run_hooks(struct hook_shard *sh, int err)
{
	rg_lock(&sh->lock);
	sh->cancelled = true;
	for (struct rg_ctx_hook *h = sh->hooks, *next; h; h = next) {
		next = h->next;
		h->fn(h, err);
	}
	sh->hooks = NULL;
	rg_unlock(&sh->lock);
}

/*
 * Cancel c itself, with c->lock held and c live: publish the error, stop the
 * timer, close done, run the hooks. Every caller holds another reference on
 * c (or its cparent's lock with c linked), so the timer's cannot be the last.
 */
static void mark(struct cctx *c, int err)
{
	atomic_store_explicit(&c->err, err, memory_order_release);
	if (c->timer_armed) {
		c->timer_armed = false;
		/* Non-sync del: true means the timer never ran and its reference is
		 * ours; false means the callback has it (we may be that callback). */
		if (rg_rtimer_del(&c->timer) &&
		    atomic_fetch_sub_explicit(&c->base.refs, 1, memory_order_acq_rel) == 1)
			rg_fatal("context: a cancelled timer held the last reference");
	}
	rg_chan_close(&c->done);
	run_hooks(&c->hook0, err);
	union padded_shard *sh = atomic_load_explicit(&c->shards, memory_order_relaxed);
	for (int i = 0; sh && i < CTX_SHARDS; i++)
		run_hooks(&sh[i].s, err);
}

/*
 * Cancel root and every descendant with err (Go's cancelCtx.cancel). Returns
 * false if root was cancelled already. Once this returns, root's whole
 * subtree is cancelled, also if another thread's cancel got there first: its
 * walk held root's lock until it was done.
 */
static bool cancel_tree(struct cctx *root, int err)
{
	rg_lock(&root->lock);
	if (atomic_load_explicit(&root->err, memory_order_relaxed)) {
		rg_unlock(&root->lock);
		return false;
	}
	mark(root, err);
	root->walk_up = NULL;
	struct cctx *cur = root; /* locked, as is every context on its walk_up path */
	for (;;) {
		struct cctx *ch = cur->children;
		if (ch) {
			/* Detach it: its owner's unlink needs our lock, so it is alive. */
			cur->children = ch->next;
			if (ch->next)
				ch->next->prev = NULL;
			ch->linked = false;
			rg_lock(&ch->lock);
			if (atomic_load_explicit(&ch->err, memory_order_relaxed)) {
				rg_unlock(&ch->lock);
				continue;
			}
			mark(ch, err);
			ch->walk_up = cur;
			cur = ch;
			continue;
		}
		struct cctx *up = cur->walk_up;
		rg_unlock(&cur->lock);
		if (!up)
			return true;
		cur = up;
	}
}

/* Unlink c from its cparent's children, if it is still there (Go's removeChild). */
static void unlink_child(struct cctx *c)
{
	struct cctx *p = c->base.cparent;

	if (!p)
		return;
	rg_lock(&p->lock);
	if (c->linked) {
		if (c->prev)
			c->prev->next = c->next;
		else
			p->children = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->linked = false;
	}
	rg_unlock(&p->lock);
}

static void cancel(struct cctx *c, int err)
{
	if (cancel_tree(c, err))
		unlink_child(c);
}

/*
 * c's error; if it has none but its deadline has passed, cancel the context
 * that owns the deadline first. The timer does that at the deadline; this
 * makes the answer exact in between, and correct where no timer runs.
 */
static int check_err(struct cctx *c)
{
	int err = atomic_load_explicit(&c->err, memory_order_acquire);

	if (err || !c->base.dl || rg_nanotime() < c->base.deadline)
		return err;
	/* c is in dl's subtree (it is live), so this reaches it before returning. */
	cancel(c->base.dl, -ETIMEDOUT);
	return atomic_load_explicit(&c->err, memory_order_acquire);
}

/* ---- creation ---- */

static void done_release(struct rg_chan *c)
{
	(void)c;
	rg_fatal("rg_chan_free of a context's done channel (it belongs to the context)");
}

/* A new cancel context under parent, inheriting its deadline, not yet registered. */
static struct cctx *cctx_new(rg_ctx *parent)
{
	struct cctx *c = rg_zalloc(sizeof(*c));

	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
	c->base.kind = K_CANCEL;
	c->base.parent = parent;
	c->base.cparent = target(parent);
	c->base.dl = parent->dl;
	c->base.deadline = parent->deadline;
	atomic_store_explicit(&c->base.refs, 1, memory_order_relaxed);
	ctx_get(parent);
	/* Built as rg_chan_make(0, 0) would (keep in step with chan.c): chan struct{}, ours. */
	c->done.cap = 0;
	c->done.elemsize = 0;
	c->done.buf = NULL;
	c->done.owner = c;
	c->done.release = done_release;
	return c;
}

/* Register c with its cparent, or cancel it at once if the cparent is cancelled (propagateCancel). */
static void propagate(struct cctx *c)
{
	struct cctx *p = c->base.cparent;

	if (!p)
		return;
	check_err(p); /* a parent past its deadline is cancelled, not joined */
	rg_lock(&p->lock);
	int err = atomic_load_explicit(&p->err, memory_order_relaxed);
	if (!err) {
		c->prev = NULL;
		c->next = p->children;
		if (p->children)
			p->children->prev = c;
		p->children = c;
		c->linked = true;
	}
	rg_unlock(&p->lock);
	if (err)
		cancel_tree(c, err); /* nobody else can see c yet */
}

rg_ctx *rg_ctx_with_cancel(rg_ctx *parent)
{
	if (!parent) {
		errno = EINVAL;
		return NULL;
	}
	struct cctx *c = cctx_new(parent);
	if (!c)
		return NULL;
	propagate(c);
	return &c->base;
}

static void timer_fire(void *arg, int64_t now)
{
	struct cctx *c = arg;

	(void)now;
	cancel(c, -ETIMEDOUT);
	ctx_put(&c->base); /* the timer's reference: it was ours since the heap let go */
}

/* Start c's deadline timer on the caller's scheduler, if there is one. Needs c->lock. */
static void arm_timer(struct cctx *c)
{
	struct rg_sched *s = rg_sched_current();

	/* Without a running scheduler no timer fires: check_err sees the deadline. */
	if (!s || atomic_load_explicit(&s->stopping, memory_order_acquire))
		return;
	/* The timer's P heap must outlive the timer, also past rg_run's return. */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	c->tsched = s;
	ctx_get(&c->base);
	c->timer.when = c->base.deadline;
	c->timer.period = 0;
	c->timer.f = timer_fire;
	c->timer.arg = c;
	c->timer.sync = false;
	c->timer_armed = true;
	rg_rtimer_add(s, &c->timer);
}

rg_ctx *rg_ctx_with_deadline(rg_ctx *parent, int64_t deadline)
{
	if (!parent) {
		errno = EINVAL;
		return NULL;
	}
	/* The parent's deadline is sooner: this one would never fire (Go does the same). */
	if (parent->dl && parent->deadline <= deadline)
		return rg_ctx_with_cancel(parent);
	struct cctx *c = cctx_new(parent);
	if (!c)
		return NULL;
	c->base.dl = c;
	c->base.deadline = deadline;
	propagate(c);
	if (deadline <= rg_nanotime()) {
		cancel(c, -ETIMEDOUT);
		return &c->base;
	}
	rg_lock(&c->lock);
	if (!atomic_load_explicit(&c->err, memory_order_relaxed))
		arm_timer(c);
	rg_unlock(&c->lock);
	return &c->base;
}

rg_ctx *rg_ctx_with_timeout(rg_ctx *parent, int64_t ns)
{
	int64_t now = rg_nanotime();

	return rg_ctx_with_deadline(parent, ns > INT64_MAX - now ? INT64_MAX : now + ns);
}

rg_ctx *rg_ctx_with_value(rg_ctx *parent, const void *key, void *value)
{
	if (!parent || !key) {
		errno = EINVAL;
		return NULL;
	}
	rg_ctx *c = rg_zalloc(sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
	c->kind = K_VALUE;
	c->parent = parent;
	c->cparent = target(parent);
	c->dl = parent->dl;
	c->deadline = parent->deadline;
	c->key = key;
	c->val = value;
	atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
	ctx_get(parent);
	return c;
}

/* ---- use ---- */

void rg_ctx_cancel(rg_ctx *ctx)
{
	if (ctx && ctx->kind == K_CANCEL)
		cancel((struct cctx *)ctx, -ECANCELED);
}

void rg_ctx_free(rg_ctx *ctx)
{
	if (!ctx || ctx->kind == K_BACKGROUND)
		return;
	if (ctx->kind == K_CANCEL) {
		struct cctx *c = (struct cctx *)ctx;
		cancel_tree(c, -ECANCELED);
		/* Even if someone else cancelled it: linked must imply an owner reference. */
		unlink_child(c);
	}
	ctx_put(ctx);
}

rg_chan *rg_ctx_done(rg_ctx *ctx)
{
	struct cctx *c = ctx ? target(ctx) : NULL;

	if (!c)
		return NULL;
	check_err(c);
	return &c->done;
}

int rg_ctx_err(rg_ctx *ctx)
{
	struct cctx *c = ctx ? target(ctx) : NULL;

	return c ? check_err(c) : 0;
}

bool rg_ctx_deadline(rg_ctx *ctx, int64_t *deadline)
{
	if (!ctx || !ctx->dl)
		return false;
	if (deadline)
		*deadline = ctx->deadline;
	return true;
}

void *rg_ctx_value(rg_ctx *ctx, const void *key)
{
	for (rg_ctx *c = ctx; c; c = c->parent) {
		if (c->kind == K_VALUE && c->key == key)
			return c->val;
	}
	return NULL;
}

/* ---- hooks ---- */

/* The P the calling goroutine runs on (0 on a thread outside the scheduler). */
static int current_p(void)
{
	struct rg_m *m = rg_getm();

	return m && m->p ? m->p->id : 0;
}

/* Give c a shard per P (with c->lock held, c not cancelled); NULL without memory. */
static union padded_shard *shards_make(struct cctx *c)
{
	union padded_shard *sh = atomic_load_explicit(&c->shards, memory_order_relaxed);

	if (sh)
		return sh;
	sh = aligned_alloc(RG_CACHELINE, CTX_SHARDS * sizeof(*sh));
	if (!sh)
		return NULL;
	memset(sh, 0, CTX_SHARDS * sizeof(*sh));
	atomic_store_explicit(&c->shards, sh, memory_order_release);
	return sh;
}

/* The shard an add from P pid uses. */
static struct hook_shard *shard_for(struct cctx *c, int pid)
{
	union padded_shard *sh = atomic_load_explicit(&c->shards, memory_order_acquire);

	if (sh)
		return &sh[pid % CTX_SHARDS].s;
	/* Racy peek: a wrong guess costs an allocation or a shared line, not correctness. */
	if (__atomic_load_n(&c->hook0.n, __ATOMIC_RELAXED) == 0 ||
	    __atomic_load_n(&c->hook0.last_p, __ATOMIC_RELAXED) == pid)
		return &c->hook0;
	rg_lock(&c->lock);
	if (!atomic_load_explicit(&c->err, memory_order_relaxed))
		sh = shards_make(c);
	rg_unlock(&c->lock);
	return sh ? &sh[pid % CTX_SHARDS].s : &c->hook0;
}

int rg_ctx_hook_add(rg_ctx *ctx, struct rg_ctx_hook *h)
{
	struct cctx *c = ctx ? target(ctx) : NULL;
	int err, pid;

	h->owner = NULL;
	if (!c)
		return 0;
	if ((err = check_err(c)) != 0)
		return err;
	pid = current_p();
	struct hook_shard *sh = shard_for(c, pid);
	rg_lock(&sh->lock);
	/* A shard not cancelled yet may still get h: the canceller runs it when it gets there. */
	if (sh->cancelled) {
		err = atomic_load_explicit(&c->err, memory_order_relaxed);
	} else {
		h->prev = NULL;
		h->next = sh->hooks;
		if (sh->hooks)
			sh->hooks->prev = h;
		sh->hooks = h;
		h->owner = &c->base;
		h->shard = sh;
		/* Atomic stores: shard_for peeks at these without the lock. */
		__atomic_store_n(&sh->n, sh->n + 1, __ATOMIC_RELAXED);
		__atomic_store_n(&sh->last_p, pid, __ATOMIC_RELAXED);
		if (sh->n == 1)
			ctx_get(&c->base); /* the shard's reference */
	}
	rg_unlock(&sh->lock);
	return err;
}

void rg_ctx_hook_del(struct rg_ctx_hook *h)
{
	rg_ctx *owner = h->owner;

	if (!owner)
		return;
	struct hook_shard *sh = h->shard;
	/* fn runs under the shard's lock: once we hold it, fn has returned or never will run. */
	rg_lock(&sh->lock);
	if (!sh->cancelled) {
		if (h->prev)
			h->prev->next = h->next;
		else
			sh->hooks = h->next;
		if (h->next)
			h->next->prev = h->prev;
	}
	__atomic_store_n(&sh->n, sh->n - 1, __ATOMIC_RELAXED);
	bool last = sh->n == 0;
	rg_unlock(&sh->lock);
	h->owner = NULL;
	if (last) /* after the unlock: this may free the context, shards and all */
		ctx_put(owner);
}

bool rg_ctx_hooks_sharded(rg_ctx *ctx)
{
	struct cctx *c = ctx ? target(ctx) : NULL;

	return c && atomic_load_explicit(&c->shards, memory_order_acquire);
}
