/* SPDX-License-Identifier: MIT */
/*
 * top_tui.h - what the two ncurses screens of `vmwatch top` share (the
 * process view in top_tui.c, the host view in top_host_tui.c): colours,
 * clipped text, the terminal's set-up and the wait for a key or a deadline.
 */
#pragma once

#include "cli/top_internal.h"

#if __has_include(<ncursesw/curses.h>)
#include <ncursesw/curses.h>
#else
#include <curses.h>
#endif
#include "cli/curses_lazy.h"
#include <signal.h>

enum {
	C_USER = 1, C_NICE, C_SYS, C_IRQ, C_STEAL, C_IOWAIT, C_MEMUSED, C_BUFFERS, C_CACHED,
	C_LABEL, C_TITLE, C_TABLEHDR, C_SORTCOL, C_SEL, C_THREAD, C_NOTICE, C_KEY, C_BAD,
};

/* Text at (y, x) clipped to the screen width; returns the column after it. */
int tui_put(int y, int x, const char *s, int attr);
/* top's units view (top_cgroups.c): the cgroup table of frame f from line y,
 * h lines, from the *first row (kept within the table). */
void top_cgroups_draw(const struct vmw_frame *f, int y, int h, int header_attr, size_t *first);
int tui_put_ch(int y, int x, chtype ch, int attr);
/* Line y blank in attr (a selected row, a table header). */
void tui_fill_line(int y, int attr);
/* A help screen: lines from the top, the first in title_attr. */
void tui_lines(const char *const *lines, size_t n, int title_attr);
/* The key legend on the last line: {key, what} pairs. */
void tui_footer(const char *const (*keys)[2], size_t n, int key_attr);
/* The first row to show so that row sel is within height rows from top. */
size_t tui_scroll(size_t sel, size_t top, int height);
/* The colour pairs above; false on a terminal without colours. */
bool tui_colors_init(void);
/* SIGINT/SIGTERM blocked (orig: the mask before), the terminal in cbreak,
 * no echo, keypad, non-blocking getch. NULL (message printed) if it cannot. */
SCREEN *tui_open(sigset_t *orig, bool *colors);
void tui_close(SCREEN *scr, const sigset_t *orig);
/* Wait for a key, the deadline or msg_until (stop signals wake it too).
 * False if the terminal went away. */
bool tui_wait(uint64_t deadline, uint64_t msg_until, const sigset_t *orig);
