// SPDX-License-Identifier: BSD-2-Clause
/*
 * smoke - checks the test plumbing itself (kselftest harness, meson TAP,
 * sanitizer builds): that a test program links libringo and runs rg_run.
 */
#include <errno.h>

#include "kselftest_harness.h"
#include "ringo.h"

static void set_flag(void *arg)
{
	*(int *)arg = 1;
}

TEST(run_main_goroutine)
{
	int ran = 0;

	ASSERT_EQ(0, rg_run(set_flag, &ran));
	EXPECT_EQ(1, ran);
}

TEST(run_rejects_null)
{
	EXPECT_EQ(-EINVAL, rg_run(NULL, NULL));
}

TEST(outside_runtime)
{
	EXPECT_EQ(0, rg_goid());
	EXPECT_EQ(-1, rg_current_p());
}

TEST_HARNESS_MAIN
