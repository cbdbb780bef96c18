// SPDX-License-Identifier: BSD-2-Clause
/*
 * PC -> "function+off file:line" for goroutine dumps. elfutils' libdwfl reads
 * the symbol tables and DWARF of every module mapped in the process, so static
 * functions and source lines show up; dladdr (exported symbols only) is the
 * fallback, and the only option inside the stack-overflow signal handler.
 */
#include "symbolize.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lock.h"

#ifdef RINGO_HAVE_LIBDW
#include <elfutils/libdwfl.h>

static struct rg_lock dwfl_lock;
static Dwfl *dwfl;
static pid_t dwfl_owner_pid;

static char *debuginfo_path;
static const Dwfl_Callbacks callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

/* Needs dwfl_lock. Reports the modules once per process (again after fork). */
static Dwfl *get_dwfl(void)
{
	if (dwfl && dwfl_owner_pid == getpid())
		return dwfl;
	dwfl = dwfl_begin(&callbacks);
	if (!dwfl)
		return NULL;
	dwfl_owner_pid = getpid();
	if (dwfl_linux_proc_report(dwfl, dwfl_owner_pid) != 0 || dwfl_report_end(dwfl, NULL, NULL) != 0) {
		dwfl_end(dwfl);
		dwfl = NULL;
	}
	return dwfl;
}

static bool symbolize_dwfl(uintptr_t pc, char *buf, size_t len)
{
	bool ok = false;

	rg_lock(&dwfl_lock);
	Dwfl *d = get_dwfl();
	Dwfl_Module *mod = d ? dwfl_addrmodule(d, pc) : NULL;
	if (mod) {
		GElf_Off off = 0;
		GElf_Sym sym;
		const char *name = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
		/* Only trust a line from the compile unit that covers pc: code built
		 * without -g would otherwise borrow a neighbour's line table. */
		Dwarf_Addr bias;
		Dwfl_Line *line = dwfl_module_addrdie(mod, pc, &bias) ? dwfl_module_getsrc(mod, pc)
								      : NULL;
		int lineno = 0;
		Dwarf_Addr line_addr = 0;
		const char *file = line ? dwfl_lineinfo(line, &line_addr, &lineno, NULL, NULL, NULL)
					: NULL;
		/* A line record from before the function's start belongs to another
		 * function: pc's own code has no debug info. */
		if (file && name && line_addr < pc - off)
			file = NULL;
		if (name) {
			if (file)
				snprintf(buf, len, "%s+%#lx\n\t\t%s:%d", name, (unsigned long)off, file,
					 lineno);
			else
				snprintf(buf, len, "%s+%#lx", name, (unsigned long)off);
			ok = true;
		}
	}
	rg_unlock(&dwfl_lock);
	return ok;
}
#endif

void rg_symbolize_simple(uintptr_t pc, char *buf, size_t len)
{
	Dl_info info;

	if (dladdr((void *)pc, &info) && info.dli_fname) {
		const char *file = strrchr(info.dli_fname, '/');
		file = file ? file + 1 : info.dli_fname;
		/* The module offset feeds addr2line even where the symbol is static. */
		if (info.dli_sname)
			snprintf(buf, len, "%s+%#lx (%s+%#lx)", info.dli_sname,
				 (unsigned long)(pc - (uintptr_t)info.dli_saddr), file,
				 (unsigned long)(pc - (uintptr_t)info.dli_fbase));
		else
			snprintf(buf, len, "?? (%s+%#lx)", file,
				 (unsigned long)(pc - (uintptr_t)info.dli_fbase));
	} else {
		snprintf(buf, len, "%#lx", (unsigned long)pc);
	}
}

void rg_symbolize(uintptr_t pc, char *buf, size_t len)
{
#ifdef RINGO_HAVE_LIBDW
	if (symbolize_dwfl(pc, buf, len))
		return;
#endif
	rg_symbolize_simple(pc, buf, len);
}
