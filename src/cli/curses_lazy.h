/* SPDX-License-Identifier: MIT */
/*
 * curses_lazy.h - ncurses, loaded when top's screen opens (cli_curses_load)
 * rather than linked: every other command (ps above all) starts without
 * loading libncursesw and libtinfo. Included by top_tui.h after curses.h:
 * the names top uses become calls through a table filled by dlsym, with the
 * types curses.h declares. A name added to the screens that is not in the
 * table fails the link (ncurses is not linked), so none is missed.
 */
#pragma once

#define CLI_CURSES_FUNCS(X) \
	X(cbreak) X(clearok) X(curs_set) X(delscreen) X(endwin) X(has_colors) X(init_pair) \
	X(keypad) X(newterm) X(nodelay) X(noecho) X(nonl) X(set_escdelay) X(start_color) \
	X(use_default_colors) X(waddch) X(waddnstr) X(wattr_off) X(wattr_on) X(werase) \
	X(wgetch) X(wmove) X(wrefresh)
#define CLI_CURSES_VARS(X) X(COLS) X(LINES) X(stdscr) X(curscr) X(acs_map)

struct cli_curses {
#define CLI_CURSES_FIELD(name) __typeof__(&name) name##_;
	CLI_CURSES_FUNCS(CLI_CURSES_FIELD)
	CLI_CURSES_VARS(CLI_CURSES_FIELD)
#undef CLI_CURSES_FIELD
};
extern struct cli_curses cli_curses;

/* dlopen libncursesw.so.6 and fill the table, once. 0, or -ENOENT with a
 * message in err (for top to print). */
int cli_curses_load(char *err, size_t errlen);

#ifndef CLI_CURSES_IMPL
#define cbreak (*cli_curses.cbreak_)
#define clearok (*cli_curses.clearok_)
#define curs_set (*cli_curses.curs_set_)
#define delscreen (*cli_curses.delscreen_)
#define endwin (*cli_curses.endwin_)
#define has_colors (*cli_curses.has_colors_)
#define init_pair (*cli_curses.init_pair_)
#define keypad (*cli_curses.keypad_)
#define newterm (*cli_curses.newterm_)
#define nodelay (*cli_curses.nodelay_)
#define noecho (*cli_curses.noecho_)
#define nonl (*cli_curses.nonl_)
#define set_escdelay (*cli_curses.set_escdelay_)
#define start_color (*cli_curses.start_color_)
#define use_default_colors (*cli_curses.use_default_colors_)
#define waddch (*cli_curses.waddch_)
#define waddnstr (*cli_curses.waddnstr_)
#define wattr_off (*cli_curses.wattr_off_)
#define wattr_on (*cli_curses.wattr_on_)
#define werase (*cli_curses.werase_)
#define wgetch (*cli_curses.wgetch_)
#define wmove (*cli_curses.wmove_)
#define wrefresh (*cli_curses.wrefresh_)
#define COLS (*cli_curses.COLS_)
#define LINES (*cli_curses.LINES_)
#define stdscr (*cli_curses.stdscr_)
#define curscr (*cli_curses.curscr_)
#define acs_map (*cli_curses.acs_map_)
#endif
