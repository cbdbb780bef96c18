// SPDX-License-Identifier: BSD-2-Clause
#include "sema.h"

#include "arch.h"
#include "fatal.h"
#include "runq.h"

#define SEMTAB_SIZE 251

/* One root per hash bucket: the waiters of every address that hashes here. */
struct semroot {
	struct rg_lock lock;
	struct rg_g *heads; /* first waiter of each address, linked by sema.next_addr */
	_Atomic uint32_t nwait;
} __attribute__((aligned(RG_CACHELINE)));

static struct semroot semtable[SEMTAB_SIZE];

static struct semroot *semroot(uint32_t *addr)
{
	return &semtable[((uintptr_t)addr >> 3) % SEMTAB_SIZE];
}

static bool cansemacquire(uint32_t *addr)
{
	uint32_t v = __atomic_load_n(addr, __ATOMIC_ACQUIRE);

	while (v > 0) {
		if (__atomic_compare_exchange_n(addr, &v, v - 1, true, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	}
	return false;
}

/* Needs root->lock. */
static void queue(struct semroot *root, uint32_t *addr, struct rg_g *g, bool lifo)
{
	struct rg_g **pp = &root->heads;

	g->sema.addr = addr;
	g->sema.next = NULL;
	g->sema.ticket = 0;
	for (; *pp; pp = &(*pp)->sema.next_addr) {
		struct rg_g *h = *pp;
		if (h->sema.addr != addr)
			continue;
		if (lifo) {
			/* g takes the head's place in the address list. */
			g->sema.next = h;
			g->sema.tail = h->sema.tail;
			g->sema.next_addr = h->sema.next_addr;
			*pp = g;
		} else {
			h->sema.tail->sema.next = g;
			h->sema.tail = g;
		}
		return;
	}
	g->sema.tail = g;
	g->sema.next_addr = root->heads;
	root->heads = g;
}

/* Needs root->lock. */
static struct rg_g *dequeue(struct semroot *root, uint32_t *addr)
{
	for (struct rg_g **pp = &root->heads; *pp; pp = &(*pp)->sema.next_addr) {
		struct rg_g *h = *pp;
		if (h->sema.addr != addr)
			continue;
		struct rg_g *n = h->sema.next;
		if (n) {
			n->sema.tail = h->sema.tail;
			n->sema.next_addr = h->sema.next_addr;
			*pp = n;
		} else {
			*pp = h->sema.next_addr;
		}
		h->sema.next = h->sema.next_addr = h->sema.tail = NULL;
		return h;
	}
	return NULL;
}

void rg_semacquire(uint32_t *addr, bool lifo, enum rg_wait_reason reason)
{
	if (cansemacquire(addr))
		return;

	struct rg_g *g = rg_getg();
	struct semroot *root = semroot(addr);
	if (!g)
		rg_fatal("blocking sync operation outside a goroutine");
	for (;;) {
		rg_lock(&root->lock);
		/* Count ourselves first, so a releaser knows to look for us. */
		atomic_fetch_add_explicit(&root->nwait, 1, memory_order_seq_cst);
		if (cansemacquire(addr)) {
			atomic_fetch_sub_explicit(&root->nwait, 1, memory_order_relaxed);
			rg_unlock(&root->lock);
			return;
		}
		queue(root, addr, g, lifo);
		rg_park_unlock(&root->lock, reason, addr);
		if (g->sema.ticket != 0 || cansemacquire(addr))
			return;
	}
}

void rg_semrelease(uint32_t *addr, bool handoff)
{
	struct semroot *root = semroot(addr);

	__atomic_fetch_add(addr, 1, __ATOMIC_SEQ_CST);
	/* Pairs with the waiter's nwait increment before its recheck. */
	if (atomic_load_explicit(&root->nwait, memory_order_seq_cst) == 0)
		return;
	rg_lock(&root->lock);
	if (atomic_load_explicit(&root->nwait, memory_order_relaxed) == 0) {
		rg_unlock(&root->lock);
		return;
	}
	struct rg_g *g = dequeue(root, addr);
	if (g)
		atomic_fetch_sub_explicit(&root->nwait, 1, memory_order_relaxed);
	rg_unlock(&root->lock);
	if (!g)
		return;
	bool handed = handoff && cansemacquire(addr);
	if (handed)
		g->sema.ticket = 1;
	rg_ready(g); /* g may run elsewhere from here on: don't touch it */
	if (handed && rg_getg())
		rg_goyield(); /* the waiter is in our runnext: let it have the lock now */
}

bool rg_sync_canspin(int iter)
{
	struct rg_m *m = rg_getm();

	if (iter >= 4 || !m || !m->p)
		return false;
	struct rg_sched *s = m->sched;
	int32_t procs = atomic_load_explicit(&s->gomaxprocs, memory_order_relaxed);
	if (procs <= atomic_load_explicit(&s->npidle, memory_order_relaxed) +
			     atomic_load_explicit(&s->nmspinning, memory_order_relaxed) + 1)
		return false;
	return rg_runqempty(m->p);
}

void rg_sync_dospin(void)
{
	for (int i = 0; i < 30; i++)
		rg_arch_relax();
}
