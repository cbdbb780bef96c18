// SPDX-License-Identifier: BSD-2-Clause
/*
 * Default GOMAXPROCS: CPUs in the affinity mask, capped by the cgroup v2
 * cpu.max quota (rounded up, at least 2), as Go 1.25 does. Unlike Go we also
 * honour a tighter limit on a parent cgroup when it is visible.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static int affinity_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0)
			return n;
	}
	return 1;
}

/* The process's cgroup v2 path ("/a/b"), or false on cgroup v1 or no cgroup. */
static bool cgroup_path(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			snprintf(buf, len, "%s", line + 3);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

/* ceil(quota/period) from one cpu.max file, or 0 when unlimited or unreadable. */
static int cpu_max_limit(const char *dir)
{
	char path[4200], quota[32];
	long long period;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%31s %lld", quota, &period) == 2 && strcmp(quota, "max") != 0 &&
	    period > 0) {
		long long q = atoll(quota);
		if (q > 0)
			n = (int)((q + period - 1) / period);
	}
	fclose(f);
	return n;
}

int rg_default_maxprocs(void)
{
	int n = affinity_cpus();
	char dir[4096];

	if (cgroup_path(dir, sizeof(dir))) {
		int limit = 0;
		/* Walk from the leaf up to the root; the tightest limit wins. */
		for (;;) {
			int l = cpu_max_limit(dir);
			if (l > 0 && (limit == 0 || l < limit))
				limit = l;
			char *slash = strrchr(dir, '/');
			if (!slash || slash == dir)
				break;
			*slash = 0;
		}
		if (limit > 0) {
			if (limit < 2)
				limit = 2; /* Go's floor: one P for the program, one for the rest */
			if (limit < n)
				n = limit;
		}
	}
	if (n > RG_MAXPROCS_LIMIT)
		n = RG_MAXPROCS_LIMIT;
	return n;
}
