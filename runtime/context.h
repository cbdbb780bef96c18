/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The runtime's side of rg_ctx: cancellation hooks, so a blocking call can
 * stop waiting (and cancel its kernel operation) when its context ends.
 */
#ifndef RINGO_CONTEXT_H
#define RINGO_CONTEXT_H

#include "ringo.h"

struct rg_ctx_hook {
	/*
	 * Runs once, on the thread that cancels the context (a goroutine, a
	 * timer on a scheduler thread, or any thread), with the context's locks
	 * held: it must not block, allocate, or call rg_ctx_* functions.
	 * err is the context's error (-ECANCELED or -ETIMEDOUT).
	 */
	void (*fn)(struct rg_ctx_hook *h, int err);
	/*
	 * Private to context.c: the context the hook is registered with (ctx
	 * or its nearest cancellable ancestor), kept alive from add to del;
	 * NULL when nothing is registered. shard: the list it is on.
	 */
	rg_ctx *owner;
	void *shard;
	struct rg_ctx_hook *next, *prev;
};

/*
 * rg_ctx_hook_add - run h->fn when ctx is cancelled. Returns 0 (registered,
 * or ctx can never be cancelled and nothing was registered), or ctx's error
 * when it is cancelled already (nothing registered, fn not called).
 * ctx may be NULL (never cancelled). A registration keeps the context alive
 * (it holds a reference), so call rg_ctx_hook_del once for every add, also
 * after fn ran; del is a no-op when add registered nothing.
 */
int rg_ctx_hook_add(rg_ctx *ctx, struct rg_ctx_hook *h);

/* rg_ctx_hook_del - unregister h; on return h->fn is not running and never will. */
void rg_ctx_hook_del(struct rg_ctx_hook *h);

/* Whether ctx's hooks have a shard per P (tests: a second P registered while one waited). */
bool rg_ctx_hooks_sharded(rg_ctx *ctx);

/* rg_ctx_ref - one more reference on ctx (dropped by rg_ctx_free); background and NULL: no-op. */
void rg_ctx_ref(rg_ctx *ctx);

/* rg_ctx_live - contexts allocated and not yet freed (for leak tests). */
long rg_ctx_live(void);

#endif /* RINGO_CONTEXT_H */
