// SPDX-License-Identifier: BSD-2-Clause
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/capability.h>

const char *ringo_prog = "ringo-tool";
bool ringo_verbose;
volatile int ringo_exiting;

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG && !ringo_verbose)
		return 0;
	if (level == LIBBPF_INFO && !ringo_verbose)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static void on_signal(int sig)
{
	ringo_exiting = 1;
}

void ringo_tool_init(const char *prog)
{
	struct sigaction sa = {.sa_handler = on_signal};

	ringo_prog = prog;
	libbpf_set_print(print_fn);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

bool ringo_have_bpf_caps(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return false;
	__u64 eff = d[0].effective | (__u64)d[1].effective << 32;
#ifndef CAP_BPF
#define CAP_PERFMON 38
#define CAP_BPF 39
#endif
	if (eff & (1ULL << CAP_SYS_ADMIN))
		return true;
	return (eff & (1ULL << CAP_BPF)) && (eff & (1ULL << CAP_PERFMON));
}

void ringo_check_bpf(bool need_btf)
{
	if (!ringo_have_bpf_caps()) {
		fprintf(stderr,
			"%s: BPF unavailable: needs root (or CAP_BPF and CAP_PERFMON); "
			"unprivileged BPF is disabled on most systems\n",
			ringo_prog);
		exit(1);
	}
	/* bpf(2) with a bad command: ENOSYS means no BPF in this kernel at all. */
	if (syscall(SYS_bpf, -1, NULL, 0) < 0 && errno == ENOSYS) {
		fprintf(stderr, "%s: BPF unavailable: this kernel has no bpf() system call\n",
			ringo_prog);
		exit(1);
	}
	if (need_btf && access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		fprintf(stderr,
			"%s: BPF unavailable: no kernel BTF (/sys/kernel/btf/vmlinux), "
			"needed for tp_btf programs\n",
			ringo_prog);
		exit(1);
	}
}

void ringo_need_tracefs(void)
{
	if (access("/sys/kernel/tracing/events", F_OK) == 0 ||
	    access("/sys/kernel/debug/tracing/events", F_OK) == 0)
		return;
	if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) != 0)
		fprintf(stderr, "%s: tracefs is not mounted and mounting it failed: %s\n",
			ringo_prog, strerror(errno));
}

void ringo_load_failed(int err)
{
	if (err < 0)
		err = -err;
	if (err == EPERM || err == EACCES)
		fprintf(stderr, "%s: BPF unavailable: loading BPF programs was refused (%s)\n",
			ringo_prog, strerror(err));
	else
		fprintf(stderr,
			"%s: failed to load BPF programs: %s (run with -v for libbpf's log)\n",
			ringo_prog, strerror(err));
	exit(1);
}

bool ringo_has_probes(const char *path)
{
	bool found = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	size_t shstrndx;
	if (!e || elf_kind(e) != ELF_K_ELF || elf_getshdrstrndx(e, &shstrndx) != 0)
		goto out;
	for (Elf_Scn *scn = NULL; !found && (scn = elf_nextscn(e, scn));) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		const char *name = elf_strptr(e, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ".note.stapsdt") != 0)
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		GElf_Nhdr nh;
		size_t off = 0, noff, doff;
		while (data && !found && (off = gelf_getnote(data, off, &nh, &noff, &doff)) > 0) {
			/* desc: pc, base, semaphore (3 addresses), then "provider\0name\0args\0". */
			if (nh.n_type != 3 || nh.n_descsz < 3 * 8 + 6)
				continue;
			const char *prov = (const char *)data->d_buf + doff + 3 * 8;
			if (strncmp(prov, "ringo", nh.n_descsz - 3 * 8) == 0)
				found = true;
		}
	}
out:
	if (e)
		elf_end(e);
	close(fd);
	return found;
}

void ringo_find_binary(pid_t pid, const char *binary, char *out, size_t len)
{
	char path[PATH_MAX + 32], line[PATH_MAX + 256];

	if (binary) {
		if (!ringo_has_probes(binary)) {
			fprintf(stderr, "%s: %s has no ringo USDT probes\n", ringo_prog, binary);
			exit(1);
		}
		snprintf(out, len, "%s", binary);
		return;
	}
	if (pid <= 0) {
		fprintf(stderr, "%s: say which process (-p PID) or binary (-b PATH) to trace\n",
			ringo_prog);
		exit(1);
	}
	if (kill(pid, 0) != 0 && errno == ESRCH) {
		fprintf(stderr, "%s: no process %d\n", ringo_prog, pid);
		exit(1);
	}
	/* /proc/PID/exe opens the executable even when it was replaced on disk. */
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	if (ringo_has_probes(path)) {
		snprintf(out, len, "%s", path);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	FILE *f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *p = strchr(line, '/');
			if (!p || !strstr(line, " r-xp ") || !strstr(p, "ringo"))
				continue;
			p[strcspn(p, "\n")] = 0;
			/* Through the process's root, so containers work too. */
			snprintf(path, sizeof(path), "/proc/%d/root%s", pid, p);
			if (ringo_has_probes(path)) {
				snprintf(out, len, "%s", path);
				fclose(f);
				return;
			}
		}
		fclose(f);
	}
	fprintf(stderr,
		"%s: process %d has no ringo USDT probes (not a ringo program, or "
		"built without <sys/sdt.h>)\n",
		ringo_prog, pid);
	exit(1);
}

/* Links ringo_attach made (the skeleton's destroy knows only its own), for ringo_detach. */
static struct bpf_link *attached[64];
static int nattached;

struct bpf_link *ringo_attach(struct bpf_program *prog, pid_t pid, const char *path,
			      const char *name, bool optional)
{
	struct bpf_link *l = bpf_program__attach_usdt(prog, pid > 0 ? pid : -1, path, "ringo", name,
						      NULL);
	if (l && nattached < (int)(sizeof(attached) / sizeof(attached[0])))
		attached[nattached++] = l;
	if (!l) {
		int err = errno;
		if (!optional || ringo_verbose)
			fprintf(stderr, "%s: cannot attach to ringo:%s in %s: %s\n", ringo_prog,
				name, path, strerror(err));
		if (!optional)
			exit(1);
	}
	return l;
}

void ringo_detach(void)
{
	while (nattached)
		bpf_link__destroy(attached[--nattached]);
}

static void stars(unsigned int val, unsigned int max, int width)
{
	int n = max ? (int)((unsigned long long)val * width / max) : 0;
	bool more = n > width;

	if (more)
		n = width;
	for (int i = 0; i < n; i++)
		putchar('*');
	for (int i = n; i < width; i++)
		putchar(' ');
	if (more)
		putchar('+');
}

void ringo_print_log2_hist(const __u32 *slots, int n, const char *unit)
{
	int idx_max = -1, stars_max = 40, width = 10;
	unsigned int val_max = 0;

	for (int i = 0; i < n; i++) {
		if (slots[i] > 0)
			idx_max = i;
		if (slots[i] > val_max)
			val_max = slots[i];
	}
	if (idx_max < 0)
		return;
	if (idx_max > 32) {
		stars_max = 20;
		width = 20;
	}
	printf("%*s%-*s : count    distribution\n", idx_max <= 32 ? 5 : 15, "",
	       idx_max <= 32 ? 19 : 29, unit);
	for (int i = 0; i <= idx_max; i++) {
		unsigned long long low = (1ULL << (i + 1)) >> 1, high = (1ULL << (i + 1)) - 1;
		if (low == high)
			low -= 1;
		printf("%*llu -> %-*llu : %-8u |", width, low, width, high, slots[i]);
		stars(slots[i], val_max, stars_max);
		printf("|\n");
	}
}

void ringo_print_time(FILE *f)
{
	time_t t = time(NULL);
	struct tm tm;
	char buf[16];

	localtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
	fprintf(f, "%-8s ", buf);
}

long ringo_parse_long(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);

	if (errno || end == s || *end || v <= 0) {
		fprintf(stderr, "%s: invalid %s: %s\n", ringo_prog, what, s);
		exit(1);
	}
	return v;
}

void ringo_usage_exit(const char *usage, int status)
{
	fputs(usage, status ? stderr : stdout);
	exit(status);
}

void ringo_parse_opt(struct ringo_opts *o, int c, const char *arg, const char *usage)
{
	switch (c) {
	case 'p':
		o->pid = (pid_t)ringo_parse_long(arg, "PID");
		break;
	case 'b':
		o->binary = arg;
		break;
	case 'T':
		o->timestamps = true;
		break;
	case 'v':
		ringo_verbose = true;
		break;
	case 'h':
		ringo_usage_exit(usage, 0);
	default:
		ringo_usage_exit(usage, 1);
	}
}

int ringo_parse_interval_count(struct ringo_opts *o, int argc, char **argv)
{
	if (optind < argc)
		o->interval = ringo_parse_long(argv[optind++], "interval");
	if (optind < argc)
		o->count = ringo_parse_long(argv[optind++], "count");
	return argc - optind;
}

/* One interval, in 100 ms steps: Ctrl-C and the traced process's exit end it early. */
static void sleep_interval(const struct ringo_opts *o)
{
	for (long s = 0; s < o->interval * 10 && !ringo_exiting; s++) {
		usleep(100000);
		if (o->pid > 0 && kill(o->pid, 0) != 0 && errno == ESRCH) {
			ringo_exiting = 1;
			break;
		}
	}
}

void ringo_run_intervals(struct ringo_opts *o, bool blank, void (*print)(void *), void *arg)
{
	while (!ringo_exiting) {
		sleep_interval(o);
		if (blank || o->timestamps)
			printf("\n");
		if (o->timestamps) {
			ringo_print_time(stdout);
			printf("\n");
		}
		print(arg);
		if (o->count > 0 && --o->count == 0)
			break;
	}
}

#define HIST_KEYS_MAX 4096

static bool key_before(const struct ringo_hist_key *a, const struct ringo_hist_key *b)
{
	return a->pid < b->pid || (a->pid == b->pid && a->id < b->id);
}

void ringo_print_hist_map(int fd, const char *unit,
			  void (*header)(const struct ringo_hist_key *k, void *arg), void *arg)
{
	static struct ringo_hist_key keys[HIST_KEYS_MAX];
	struct ringo_hist_key k, *prev = NULL;
	struct ringo_hist h;
	int n = 0;

	while (n < HIST_KEYS_MAX && bpf_map_get_next_key(fd, prev, &k) == 0) {
		keys[n] = k;
		prev = &keys[n++];
	}
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && key_before(&keys[j], &keys[j - 1]); j--) {
			k = keys[j];
			keys[j] = keys[j - 1];
			keys[j - 1] = k;
		}
	for (int i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &keys[i], &h) != 0)
			continue;
		header(&keys[i], arg);
		ringo_print_log2_hist(h.slots, RINGO_MAX_SLOTS, unit);
		bpf_map_delete_elem(fd, &keys[i]);
	}
}
