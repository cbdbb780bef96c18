// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_cond: Go's sync.Cond over a notify list. A waiter takes a ticket before
 * unlocking L, so a Signal that comes between the unlock and the park is not
 * lost: the ticket is already below `notify` and the wait returns at once.
 */
#include "ringo.h"

#include "runtime.h"

struct cond_waiter {
	struct rg_g *g;
	uint32_t ticket;
	struct cond_waiter *next;
};

static struct rg_lock *cond_lock(rg_cond *c)
{
	return (struct rg_lock *)&c->lock;
}

/* a < b in ticket order, wrap-around safe. */
static bool less(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

void rg_cond_wait(rg_cond *c)
{
	uint32_t t = __atomic_fetch_add(&c->wait, 1, __ATOMIC_ACQ_REL);

	rg_mutex_unlock(c->L);
	rg_lock(cond_lock(c));
	if (less(t, __atomic_load_n(&c->notify, __ATOMIC_RELAXED))) {
		rg_unlock(cond_lock(c)); /* already signalled */
	} else {
		struct cond_waiter w = {.g = rg_getg(), .ticket = t};
		if (c->tail)
			((struct cond_waiter *)c->tail)->next = &w;
		else
			c->head = &w;
		c->tail = &w;
		rg_park_unlock(cond_lock(c), WAIT_SYNC_COND_WAIT, c);
	}
	rg_mutex_lock(c->L);
}

void rg_cond_signal(rg_cond *c)
{
	/* Nobody waiting since the last wake-up: no lock needed. */
	if (__atomic_load_n(&c->wait, __ATOMIC_ACQUIRE) == __atomic_load_n(&c->notify, __ATOMIC_RELAXED))
		return;
	rg_lock(cond_lock(c));
	uint32_t t = c->notify;
	if (t == __atomic_load_n(&c->wait, __ATOMIC_RELAXED)) {
		rg_unlock(cond_lock(c));
		return;
	}
	__atomic_store_n(&c->notify, t + 1, __ATOMIC_RELAXED);
	/* The waiter with ticket t may not be queued yet (it queues after taking
	 * its ticket); then it finds its ticket below notify and does not park. */
	struct cond_waiter *prev = NULL;
	for (struct cond_waiter *w = c->head; w; prev = w, w = w->next) {
		if (w->ticket != t)
			continue;
		if (prev)
			prev->next = w->next;
		else
			c->head = w->next;
		if (c->tail == w)
			c->tail = prev;
		w->next = NULL;
		rg_unlock(cond_lock(c));
		rg_ready(w->g);
		return;
	}
	rg_unlock(cond_lock(c));
}

void rg_cond_broadcast(rg_cond *c)
{
	if (__atomic_load_n(&c->wait, __ATOMIC_ACQUIRE) == __atomic_load_n(&c->notify, __ATOMIC_RELAXED))
		return;
	rg_lock(cond_lock(c));
	struct cond_waiter *w = c->head;
	c->head = c->tail = NULL;
	__atomic_store_n(&c->notify, __atomic_load_n(&c->wait, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	rg_unlock(cond_lock(c));
	while (w) {
		struct cond_waiter *next = w->next; /* w is gone once its goroutine runs */
		rg_ready(w->g);
		w = next;
	}
}
