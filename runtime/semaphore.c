// SPDX-License-Identifier: BSD-2-Clause
/*
 * rg_sem: golang.org/x/sync/semaphore. Waiters queue FIFO with their weight;
 * a release wakes waiters from the front while their weight fits, and stops
 * at the first that does not, so a heavy waiter is not overtaken forever.
 */
#include <errno.h>

#include "ringo.h"

#include "fatal.h"
#include "runtime.h"

struct sem_waiter {
	struct rg_g *g;
	int64_t n;
	struct sem_waiter *next;
};

static struct rg_lock *sem_lock(rg_sem *s)
{
	return (struct rg_lock *)&s->lock;
}

int rg_sem_init(rg_sem *s, int64_t n)
{
	if (n < 0)
		return -EINVAL;
	s->size = n;
	s->cur = 0;
	s->lock = 0;
	s->head = s->tail = NULL;
	return 0;
}

int rg_sem_acquire(rg_sem *s, int64_t n)
{
	if (n < 0 || n > s->size)
		return -EINVAL; /* x/sync would wait forever for n > size */
	rg_lock(sem_lock(s));
	if (s->size - s->cur >= n && !s->head) {
		s->cur += n;
		rg_unlock(sem_lock(s));
		return 0;
	}
	struct sem_waiter w = {.g = rg_getg(), .n = n};
	if (!w.g)
		rg_fatal("rg_sem_acquire would block outside a goroutine");
	if (s->tail)
		((struct sem_waiter *)s->tail)->next = &w;
	else
		s->head = &w;
	s->tail = &w;
	/* The releaser adds our weight to cur before it wakes us. */
	rg_park_unlock(sem_lock(s), WAIT_SEMACQUIRE, s);
	return 0;
}

bool rg_sem_tryacquire(rg_sem *s, int64_t n)
{
	if (n < 0)
		return false;
	rg_lock(sem_lock(s));
	bool ok = s->size - s->cur >= n && !s->head;
	if (ok)
		s->cur += n;
	rg_unlock(sem_lock(s));
	return ok;
}

void rg_sem_release(rg_sem *s, int64_t n)
{
	struct sem_waiter *wake = NULL, **tail = &wake;

	rg_lock(sem_lock(s));
	s->cur -= n;
	if (s->cur < 0 || n < 0) {
		rg_unlock(sem_lock(s));
		rg_fatal("semaphore: released more than held");
	}
	for (struct sem_waiter *w = s->head; w && s->size - s->cur >= w->n; w = s->head) {
		s->cur += w->n;
		s->head = w->next;
		if (!s->head)
			s->tail = NULL;
		w->next = NULL;
		*tail = w;
		tail = &w->next;
	}
	rg_unlock(sem_lock(s));
	while (wake) {
		struct sem_waiter *next = wake->next;
		rg_ready(wake->g);
		wake = next;
	}
}
