// SPDX-License-Identifier: BSD-2-Clause
#include "stack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13: guard region without a new VMA */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

enum guard_mode {
	GUARD_MADVISE,	/* lightweight guard regions: free in mappings, batched */
	GUARD_MADVISE_EACH, /* the same, one madvise per slot */
	GUARD_MPROTECT, /* PROT_NONE page: two VMAs per stack, rationed */
	GUARD_NONE,	/* canary only */
};

/* Slots per reservation: 64 MiB at the default size, one VMA for 1,024 stacks. */
#define CHUNK_SLOTS 1024
#define STACK_MIN (16u * 1024u)
#define STACK_MAX (64u * 1024u * 1024u)
#define MAX_TOP_OFFSET 1024 /* random offset range below the G; keeps G and frames in one page */
/*
 * Slots are prepared in batches with one process_madvise per kind of advice:
 * guards for all of them, and the top page of each populated. On the test VM
 * a first-touch fault costs about 30 µs and a populated page far less, and one
 * system call replaces 64.
 */
#define PREP_BATCH 64

struct rg_stack_chunk {
	struct rg_stack_chunk *next;
	void *base;
	size_t len;
};

static size_t page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

static size_t stack_size_from_env(void)
{
	const char *s = getenv("RINGO_STACK_SIZE");
	size_t ps = page_size();
	size_t n = RG_STACK_SIZE_DEFAULT;

	if (s && *s) {
		char *end;
		unsigned long long v = strtoull(s, &end, 0);
		if (*end == 'k' || *end == 'K')
			v <<= 10;
		else if (*end == 'm' || *end == 'M')
			v <<= 20;
		if (v >= STACK_MIN && v <= STACK_MAX)
			n = (size_t)v;
	}
	return (n + ps - 1) & ~(ps - 1);
}

static long map_count_budget(void)
{
	/* Guards that split VMAs may use a quarter of vm.max_map_count. */
	long max = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%ld", &max) != 1)
			max = 65530;
		fclose(f);
	}
	return max / 8; /* each guard costs two mappings */
}

void rg_stack_pool_init(struct rg_stack_pool *pool)
{
	memset(pool, 0, sizeof(*pool));
	pool->slot_size = stack_size_from_env();
	pool->guard_mode = GUARD_MADVISE;
	pool->mprotect_budget = map_count_budget();
	pool->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
}

static int new_chunk(struct rg_stack_pool *pool)
{
	size_t slots = CHUNK_SLOTS;
	struct rg_stack_chunk *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	for (;;) {
		size_t len = slots * pool->slot_size;
		/* MAP_NORESERVE: only touched pages count, so 1M stacks fit default overcommit. */
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED) {
			c->base = p;
			c->len = len;
			break;
		}
		if (slots == 1) {
			free(c);
			return -ENOMEM;
		}
		slots = 1; /* address space is short: take what still fits */
	}
	c->next = pool->chunks;
	pool->chunks = c;
	pool->cur = (uintptr_t)c->base;
	pool->batch_left = 0;
	pool->end = pool->cur + c->len;
	return 0;
}

/* One advice over the same page of PREP_BATCH consecutive slots; false if the kernel refused. */
static bool advise_batch(struct rg_stack_pool *pool, uintptr_t first, size_t page_off, int advice)
{
	struct iovec iov[PREP_BATCH];
	size_t ps = page_size();

	if (pool->pidfd < 0)
		return false;
	for (int i = 0; i < PREP_BATCH; i++) {
		iov[i].iov_base = (void *)(first + (size_t)i * pool->slot_size + page_off);
		iov[i].iov_len = ps;
	}
	return syscall(SYS_process_madvise, pool->pidfd, iov, PREP_BATCH, advice, 0) ==
	       (long)(PREP_BATCH * ps);
}

/* Prepare the batch of slots starting at first. Needs pool->lock. */
static void prepare_batch(struct rg_stack_pool *pool, uintptr_t first)
{
	size_t ps = page_size();

	pool->batch_guarded = false;
	if (pool->guard_mode == GUARD_MADVISE) {
		if (advise_batch(pool, first, 0, MADV_GUARD_INSTALL))
			pool->batch_guarded = true;
		else if (madvise((void *)first, ps, MADV_GUARD_INSTALL) == 0)
			pool->guard_mode = GUARD_MADVISE_EACH; /* no process_madvise: one call a slot */
		else
			pool->guard_mode = errno == EINVAL ? GUARD_MPROTECT : GUARD_NONE;
	}
	/* Best effort: a failure only means the first touch faults. */
	advise_batch(pool, first, pool->slot_size - ps, MADV_POPULATE_WRITE);
}

static bool install_guard(struct rg_stack_pool *pool, uintptr_t lo)
{
	size_t ps = page_size();

	if (pool->batch_guarded)
		return true;
	if (pool->guard_mode == GUARD_MADVISE_EACH) {
		if (madvise((void *)lo, ps, MADV_GUARD_INSTALL) == 0)
			return true;
		pool->guard_mode = GUARD_NONE;
	}
	if (pool->guard_mode == GUARD_MPROTECT) {
		if (pool->mprotect_guards < pool->mprotect_budget &&
		    mprotect((void *)lo, ps, PROT_NONE) == 0) {
			pool->mprotect_guards++;
			return true;
		}
		/* Out of budget or mappings: later stacks rely on the canary. */
	}
	return false;
}

int rg_stack_alloc(struct rg_stack_pool *pool, size_t g_size, struct rg_stack *st, void **g_out)
{
	size_t ps = page_size();
	uintptr_t lo;
	bool guarded;
	int saved_errno = errno; /* mmap and madvise run on a goroutine's behalf */

	rg_lock(&pool->lock);
	if (pool->cur == pool->end) {
		int err = new_chunk(pool);
		if (err) {
			rg_unlock(&pool->lock);
			errno = saved_errno;
			return err;
		}
	}
	lo = pool->cur;
	if (pool->batch_left == 0) {
		if (pool->end - lo >= PREP_BATCH * pool->slot_size) {
			prepare_batch(pool, lo);
			pool->batch_left = PREP_BATCH;
		} else {
			pool->batch_guarded = false;
			pool->batch_left = 1; /* a short tail chunk: slot by slot */
			if (pool->guard_mode == GUARD_MADVISE)
				pool->guard_mode = GUARD_MADVISE_EACH;
		}
	}
	pool->batch_left--;
	pool->cur += pool->slot_size;
	guarded = install_guard(pool, lo);
	rg_unlock(&pool->lock);
	errno = saved_errno;

	st->lo = lo;
	st->hi = lo + pool->slot_size;
	st->limit = lo + ps;
	st->guarded = guarded;
	if (!guarded) {
		/* The canary sits in the guard's place; touching it costs one page. */
		st->limit = lo + 64;
		*(uint64_t *)(st->limit - sizeof(uint64_t)) = RG_STACK_CANARY;
	}

	uintptr_t g = (st->hi - g_size) & ~(uintptr_t)(RG_CACHELINE - 1);
	uintptr_t off = (uintptr_t)(rg_fastrandn(MAX_TOP_OFFSET / 64) * 64);
	st->top = (g - off) & ~(uintptr_t)15;
	memset((void *)g, 0, g_size);
	*g_out = (void *)g;
	return 0;
}

bool rg_stack_in_guard(const struct rg_stack *st, uintptr_t addr)
{
	return addr >= st->lo && addr < st->lo + page_size();
}

void rg_stack_pool_destroy(struct rg_stack_pool *pool)
{
	struct rg_stack_chunk *c = pool->chunks;

	while (c) {
		struct rg_stack_chunk *next = c->next;
		munmap(c->base, c->len);
		free(c);
		c = next;
	}
	pool->chunks = NULL;
	pool->cur = pool->end = 0;
	if (pool->pidfd >= 0)
		close(pool->pidfd);
	pool->pidfd = -1;
}
