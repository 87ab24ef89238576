/* SPDX-License-Identifier: MIT */
/* curses_lazy.c - the ncurses table of curses_lazy.h, filled by dlopen/dlsym. */
#define CLI_CURSES_IMPL
#include "cli/top_tui.h"

#include <dlfcn.h>
#include <errno.h>

struct cli_curses cli_curses;

int cli_curses_load(char *err, size_t errlen)
{
	static void *lib;
	void *h;

	if (lib)
		return 0;
	if (!(h = dlopen("libncursesw.so.6", RTLD_NOW | RTLD_LOCAL))) {
		snprintf(err, errlen, "cannot load the ncurses library (libncursesw.so.6) for top's screen: %s "
			 "(install libncursesw6, or use top -b)", dlerror());
		return -ENOENT;
	}
#define CLI_CURSES_SYM(name)                                                                  \
	if (!(cli_curses.name##_ = (__typeof__(cli_curses.name##_))dlsym(h, #name))) {          \
		snprintf(err, errlen, "the ncurses library (libncursesw.so.6) lacks %s", #name); \
		dlclose(h);                                                                     \
		return -ENOENT;                                                                 \
	}
	CLI_CURSES_FUNCS(CLI_CURSES_SYM)
	CLI_CURSES_VARS(CLI_CURSES_SYM)
#undef CLI_CURSES_SYM
	lib = h;
	return 0;
}
