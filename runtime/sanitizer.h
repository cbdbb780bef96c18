/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fiber annotations so AddressSanitizer and ThreadSanitizer understand that a
 * thread's stack changes at every goroutine switch. Empty without sanitizers.
 */
#ifndef RINGO_SANITIZER_H
#define RINGO_SANITIZER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define RG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RG_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define RG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RG_TSAN 1
#endif
#endif

#ifdef RG_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
				     size_t *size_old);

/* Before switching to the stack [bottom, bottom+size); save NULL when the current fiber dies. */
static inline void rg_asan_start_switch(void **save, const void *bottom, size_t size)
{
	__sanitizer_start_switch_fiber(save, bottom, size);
}

static inline void rg_asan_finish_switch(void *save)
{
	__sanitizer_finish_switch_fiber(save, NULL, NULL);
}
#else
static inline void rg_asan_start_switch(void **save, const void *bottom, size_t size)
{
	(void)save, (void)bottom, (void)size;
}

static inline void rg_asan_finish_switch(void *save)
{
	(void)save;
}
#endif

#ifdef RG_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);

static inline void *rg_tsan_current_fiber(void)
{
	return __tsan_get_current_fiber();
}
static inline void *rg_tsan_create_fiber(void)
{
	return __tsan_create_fiber(0);
}
static inline void rg_tsan_destroy_fiber(void *f)
{
	__tsan_destroy_fiber(f);
}
static inline void rg_tsan_switch_to(void *f)
{
	__tsan_switch_to_fiber(f, 0);
}

/*
 * Happens-before edges TSan cannot see because the kernel carries them: an
 * io_uring SQE submitted by one thread completes on another.
 */
void __tsan_release(void *addr);
void __tsan_acquire(void *addr);

static inline void rg_tsan_release(void *addr)
{
	__tsan_release(addr);
}
static inline void rg_tsan_acquire(void *addr)
{
	__tsan_acquire(addr);
}
#else
static inline void *rg_tsan_current_fiber(void)
{
	return NULL;
}
static inline void *rg_tsan_create_fiber(void)
{
	return NULL;
}
static inline void rg_tsan_destroy_fiber(void *f)
{
	(void)f;
}
static inline void rg_tsan_switch_to(void *f)
{
	(void)f;
}
static inline void rg_tsan_release(void *addr)
{
	(void)addr;
}
static inline void rg_tsan_acquire(void *addr)
{
	(void)addr;
}
#endif

#endif /* RINGO_SANITIZER_H */
