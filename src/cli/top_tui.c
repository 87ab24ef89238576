/* SPDX-License-Identifier: MIT */
/*
 * top_tui.c - the interactive screen of `vmwatch top` (ncurses): a header
 * with the guest's meters, the process table, a status line for prompts and
 * notices, and a key legend.
 *
 * One loop does everything: read keys, take a frame when its deadline has
 * come, redraw, then wait in ppoll() for a key or the next deadline. SIGINT
 * and SIGTERM are blocked except inside ppoll(), so a stop request always
 * wakes the wait and is never lost between checking the flag and sleeping;
 * the terminal is restored (endwin) by this loop, never in a signal handler.
 * Window size changes come from ncurses' own SIGWINCH handling as KEY_RESIZE.
 */
#include "cli/top_tui.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>

enum input { IN_NONE, IN_FILTER, IN_DELAY, IN_USER };


struct tui {
	struct top_source *src;
	const struct top_opts *o;
	struct top_view view;
	uint64_t interval_ns;
	struct vmw_frame *frame;
	struct top_header *h;
	struct top_rows rows;
	size_t sel, top;              /* selected row, first row shown */
	int32_t sel_id;               /* pid or tid of the selected row, followed across frames */
	bool sel_thread, have_sel;
	int hscroll;                  /* columns of the command scrolled off to the left */
	int table_h;                  /* rows the table showed at the last draw */
	enum input input;
	char delay_buf[TOP_USER_MAX + 1];
	char msg[256];
	uint64_t msg_until;
	uint64_t late, frames;
	bool help, colors;
	bool units;                   /* g: the units view (cgroups) instead of processes */
	size_t units_top;             /* its first row shown */
};

static void message(struct tui *t, uint64_t seconds, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void message(struct tui *t, uint64_t seconds, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
	t->msg_until = vmw_now_ns() + seconds * 1000000000u;
}

static int attr_color(struct tui *t, int pair, int fallback)
{
	return t->colors ? (int)COLOR_PAIR(pair) : fallback;
}

/* ---- drawing helpers ------------------------------------------------------ */

/* Text at (y, x) clipped to the screen width; returns the column after it. */
int tui_put(int y, int x, const char *s, int attr)
{
	int n = (int)strlen(s);

	if (y < 0 || y >= LINES || x >= COLS)
		return x;
	if (n > COLS - x)
		n = COLS - x;
	attron(attr);
	mvaddnstr(y, x, s, n);
	attroff(attr);
	return x + n;
}

void tui_fill_line(int y, int attr)
{
	move(y, 0);
	attron(attr);
	for (int i = 0; i < COLS; i++)
		addch(' ');
	attroff(attr);
}

void tui_lines(const char *const *lines, size_t n, int title_attr)
{
	for (size_t i = 0; i < n; i++)
		tui_put((int)i, 0, lines[i], i == 0 ? title_attr : 0);
}

void tui_footer(const char *const (*keys)[2], size_t n, int key_attr)
{
	int x = 0;

	for (size_t i = 0; i < n && x < COLS; i++) {
		x = tui_put(LINES - 1, x, keys[i][0], A_BOLD);
		x = tui_put(LINES - 1, x, keys[i][1], key_attr);
		x = tui_put(LINES - 1, x, " ", 0);
	}
}

size_t tui_scroll(size_t sel, size_t top, int height)
{
	if (height < 1)
		return top;
	if (sel < top)
		top = sel;
	if (sel >= top + (size_t)height)
		top = sel - (size_t)height + 1;
	return top;
}

int tui_put_ch(int y, int x, chtype ch, int attr)
{
	if (y < 0 || y >= LINES || x >= COLS)
		return x;
	mvaddch(y, x, ch | (chtype)attr);
	return x + 1;
}

struct seg {
	double percent;
	int pair;
};

/* label[|||||||     text] over width w; segments fill in order. */
static void draw_bar(struct tui *t, int y, int x, int w, const char *label, const struct seg *segs,
		     size_t nsegs, const char *text)
{
	int lw = (int)strlen(label), inner = w - lw - 2, tl = (int)strlen(text), pos = 0;

	if (inner < 1 || y >= LINES)
		return;
	x = tui_put(y, x, label, attr_color(t, C_LABEL, A_BOLD));
	x = tui_put_ch(y, x, '[', A_BOLD);
	int tstart = tl <= inner ? inner - tl : inner;
	double acc = 0;
	for (size_t i = 0; i < nsegs; i++) {
		acc += segs[i].percent;
		int end = (int)(MIN(MAX(acc, 0.0), 100.0) * inner / 100.0 + 0.5);
		for (; pos < end && pos < tstart; pos++)
			x = tui_put_ch(y, x, '|', attr_color(t, segs[i].pair, A_BOLD));
	}
	for (; pos < tstart; pos++)
		x = tui_put_ch(y, x, ' ', 0);
	for (int i = 0; pos < inner; pos++, i++)
		x = tui_put_ch(y, x, (chtype)(unsigned char)text[i], A_DIM);
	tui_put_ch(y, x, ']', A_BOLD);
}

static void cpu_bar(struct tui *t, int y, int x, int w, const char *label, const struct top_cpu *c)
{
	struct seg segs[] = {
		{ c->nice, C_NICE }, { c->user, C_USER }, { c->system, C_SYS },
		{ c->irq + c->softirq, C_IRQ }, { c->steal, C_STEAL }, { c->iowait, C_IOWAIT },
	};
	char text[16];
	snprintf(text, sizeof(text), "%.1f%%", c->busy);
	draw_bar(t, y, x, w, label, segs, ARRAY_SIZE(segs), text);
}

/* Header; returns the first free line. */
static int draw_header(struct tui *t)
{
	const struct top_header *h = t->h;
	char buf[512], up[48], a[16], b[16];
	int y = 0, x;

	/* Title: guest, kernel; uptime and load after it, or below when narrow. */
	x = tui_put(y, 0, "vmwatch top ", attr_color(t, C_TITLE, A_BOLD));
	x = tui_put(y, x, h->target, A_BOLD);
	snprintf(buf, sizeof(buf), "  Linux %s", h->release[0] ? h->release : "?");
	x = tui_put(y, x, buf, 0);
	if (h->uptime_ok || h->load_ok) {
		char load[64] = "";
		int need;
		up[0] = '\0';
		if (h->uptime_ok)
			top_fmt_uptime(up, sizeof(up), h->uptime_s);
		if (h->load_ok)
			snprintf(load, sizeof(load), "%s", h->loadavg);   /* the guest's rounding */
		need = (up[0] ? 10 + (int)strlen(up) : 0) + (load[0] ? 16 + (int)strlen(load) : 0);
		if (x + need > COLS) {
			y++;
			x = 0;
		} else {
			x = tui_put(y, x, "  ", 0);
		}
		if (up[0]) {
			x = tui_put(y, x, "Uptime: ", attr_color(t, C_LABEL, A_BOLD));
			x = tui_put(y, x, up, A_BOLD);
			x = tui_put(y, x, "  ", 0);
		}
		if (load[0]) {
			x = tui_put(y, x, "Load average: ", attr_color(t, C_LABEL, A_BOLD));
			tui_put(y, x, load, A_BOLD);
		}
	}
	y++;

	/* CPU meters: one per vCPU when the summary has them, else the processes' sum. */
	if (h->cpu_ok && h->ncpus && t->view.cpu_total) {
		cpu_bar(t, y++, 0, COLS - 1, "CPU", &h->cpu_total);
	} else if (h->cpu_ok && h->ncpus) {
		int ncol = COLS >= 160 && h->ncpus > 8 ? 4 : COLS >= 80 && h->ncpus > 1 ? 2 : 1;
		int w = COLS / ncol, per_col = (int)((h->ncpus + (unsigned)ncol - 1) / (unsigned)ncol);
		for (unsigned i = 0; i < h->ncpus; i++) {
			char label[8];
			snprintf(label, sizeof(label), "%3u", h->cpu_id[i]);
			cpu_bar(t, y + (int)i % per_col, (int)i / per_col * w, w - 1, label, &h->cpu[i]);
		}
		y += per_col;
	} else {
		double pct = h->ncpus ? h->procs_cpu_percent / h->ncpus : h->procs_cpu_percent;
		struct seg seg = { MIN(pct, 100.0), C_USER };
		snprintf(buf, sizeof(buf), "%.1f%% (processes)", pct);
		draw_bar(t, y++, 0, COLS - 1, "CPU", &seg, 1, buf);
	}

	/* Memory and swap, side by side when there is room. */
	{
		int half = COLS >= 80 ? COLS / 2 : COLS;
		int sy = COLS >= 80 ? y : y + 1, sx = COLS >= 80 ? half : 0;
		if (h->mem_ok && h->mem_total) {
			uint64_t used = vmw_sat_sub(vmw_sat_sub(vmw_sat_sub(h->mem_total, h->mem_free),
							      h->mem_buffers), h->mem_cached);
			double tot = (double)h->mem_total / 100;
			struct seg segs[] = { { (double)used / tot, C_MEMUSED },
					      { (double)h->mem_buffers / tot, C_BUFFERS },
					      { (double)h->mem_cached / tot, C_CACHED } };
			top_fmt_bytes(a, sizeof(a), used);
			top_fmt_bytes(b, sizeof(b), h->mem_total);
			snprintf(buf, sizeof(buf), "%s/%s", a, b);
			draw_bar(t, y, 0, half - 1, "Mem", segs, ARRAY_SIZE(segs), buf);
		} else {
			top_fmt_bytes(b, sizeof(b), h->mem_total);
			snprintf(buf, sizeof(buf), "?/%s", b);
			draw_bar(t, y, 0, half - 1, "Mem", NULL, 0, buf);
		}
		if (h->swap_ok) {
			uint64_t used = vmw_sat_sub(h->swap_total, h->swap_free);
			struct seg seg = { h->swap_total ? 100.0 * (double)used / (double)h->swap_total : 0,
					   C_SYS };
			top_fmt_bytes(a, sizeof(a), used);
			top_fmt_bytes(b, sizeof(b), h->swap_total);
			snprintf(buf, sizeof(buf), "%s/%s", a, b);
			draw_bar(t, sy, sx, COLS - sx - 1, "Swp", &seg, 1, buf);
		} else {
			draw_bar(t, sy, sx, COLS - sx - 1, "Swp", NULL, 0, "?");
		}
		y = sy + 1;
	}

	/* Tasks. */
	x = tui_put(y, 0, "Tasks: ", attr_color(t, C_LABEL, A_BOLD));
	snprintf(buf, sizeof(buf), "%u total, %u running, %u sleeping, %u stopped, %u zombie; "
		 "%u thr, %u kthr", h->tasks, h->running, h->sleeping, h->stopped, h->zombie,
		 h->threads, h->kthreads);
	tui_put(y, x, buf, A_BOLD);
	return y + 1;
}

/* Where each shown column starts (its title is right-aligned in it). */
static int col_x(const struct top_view *v, enum top_col c, int *width)
{
	int x = 0;
	for (int i = 0; i < (int)c; i++)
		if (top_col_shown(v, (enum top_col)i))
			x += abs(top_cols[i].width) + 1;
	*width = c == TOP_COL_COMMAND ? 7 : abs(top_cols[c].width);
	return x;
}

static void draw_table_header(struct tui *t, int y)
{
	char cells[240];
	int w, x;

	top_header_cells(&t->view, cells, sizeof(cells));
	tui_fill_line(y, attr_color(t, C_TABLEHDR, A_REVERSE));
	x = tui_put(y, 0, cells, attr_color(t, C_TABLEHDR, A_REVERSE));
	tui_put(y, x, "COMMAND", attr_color(t, C_TABLEHDR, A_REVERSE));
	x = col_x(&t->view, t->view.sort, &w);
	if (t->view.sort == TOP_COL_COMMAND)
		x = (int)strlen(cells);
	/* The sort column's title again, highlighted. */
	{
		char title[24];
		const struct top_col_info *c = &top_cols[t->view.sort];
		if (c->width < 0)
			snprintf(title, sizeof(title), "%-*s", w, c->title);
		else
			snprintf(title, sizeof(title), "%*s", w, c->title);
		tui_put(y, x, title, attr_color(t, C_SORTCOL, A_BOLD) | A_BOLD);
	}
}

static int draw_tree(int y, int x, const struct top_row *r, int attr)
{
	for (uint32_t l = 1; l <= r->depth && x < COLS; l++) {
		if (l < r->depth) {
			bool more = l - 1 < 64 && (r->more >> (l - 1) & 1);
			x = tui_put_ch(y, x, more ? ACS_VLINE : ' ', attr);
			x = tui_put_ch(y, x, ' ', attr);
			x = tui_put_ch(y, x, ' ', attr);
		} else {
			x = tui_put_ch(y, x, r->last ? ACS_LLCORNER : ACS_LTEE, attr);
			x = tui_put_ch(y, x, ACS_HLINE, attr);
			x = tui_put_ch(y, x, ' ', attr);
		}
	}
	return x;
}

/* G: the process's unit (or container) before its command. */
static int draw_unit(int y, int x, const struct top_row *r, int attr)
{
	char unit[160], cell[176];

	top_unit_of(&r->s->proc, unit, sizeof(unit));
	snprintf(cell, sizeof(cell), "%-24s ", unit);
	return tui_put(y, x, cell, attr | A_BOLD);
}

static void draw_row(struct tui *t, int y, const struct top_row *r, bool selected)
{
	char cells[240], cmd[4096];
	int base = selected ? attr_color(t, C_SEL, A_REVERSE) : 0, x;
	size_t skip;

	if (selected) {
		tui_fill_line(y, base);
	}
	top_row_cells(r, &t->view, cells, sizeof(cells));
	x = tui_put(y, 0, cells, base);
	x = draw_tree(y, x, r, base | (selected ? 0 : A_DIM));
	if (t->view.group_units && !t->view.tree && !r->t)
		x = draw_unit(y, x, r, base);
	top_row_command(r, cmd, sizeof(cmd));
	skip = MIN((size_t)t->hscroll, strlen(cmd));
	tui_put(y, x, cmd + skip, base | (!selected && r->t ? attr_color(t, C_THREAD, 0) : 0) |
			       (!selected && !r->t && r->s->proc.kthread ? A_DIM : 0));
}

static void draw_status(struct tui *t, int y)
{
	char buf[300];
	int x = 0;

	if (t->input == IN_FILTER) {
		x = tui_put(y, 0, "Filter: ", attr_color(t, C_KEY, A_REVERSE));
		x = tui_put(y, x, t->view.filter, A_BOLD);
		x = tui_put_ch(y, x, '_', A_BLINK);
		tui_put(y, x + 2, "(Enter: done, Esc: clear)", A_DIM);
		return;
	}
	if (t->input == IN_DELAY || t->input == IN_USER) {
		if (t->input == IN_DELAY)
			snprintf(buf, sizeof(buf), "Change delay from %.3f to: ", (double)t->interval_ns / 1e9);
		else
			snprintf(buf, sizeof(buf), "Which user (name or uid; blank for all): ");
		x = tui_put(y, 0, buf, attr_color(t, C_KEY, A_REVERSE));
		x = tui_put(y, x, t->delay_buf, A_BOLD);
		tui_put_ch(y, x, '_', A_BLINK);
		return;
	}
	if (t->msg[0] && vmw_now_ns() < t->msg_until) {
		x = tui_put(y, 0, t->msg, attr_color(t, C_NOTICE, A_BOLD) | A_BOLD);
		x += 2;
	}
	if (t->view.filter[0]) {
		x = tui_put(y, x, "Filter: ", attr_color(t, C_LABEL, A_BOLD));
		x = tui_put(y, x, t->view.filter, A_BOLD);
		x = tui_put(y, x, " (Esc clears)  ", A_DIM);
	}
	if (t->view.uid_set) {
		if (t->view.user[0])
			snprintf(buf, sizeof(buf), "%u (%s)", t->view.uid, t->view.user);
		else
			snprintf(buf, sizeof(buf), "%u", t->view.uid);
		x = tui_put(y, x, "User: ", attr_color(t, C_LABEL, A_BOLD));
		x = tui_put(y, x, buf, A_BOLD);
		x = tui_put(y, x, "  ", 0);
	}
	if (t->frame && !t->frame->complete) {
		if (t->frame->truncated)
			snprintf(buf, sizeof(buf), "incomplete walk: %s  ", t->frame->truncated_why);
		else
			snprintf(buf, sizeof(buf), "incomplete: %zu skipped, %zu processes  ", t->frame->skipped,
				 t->frame->incomplete);
		x = tui_put(y, x, buf, attr_color(t, C_BAD, A_BOLD));
	}
	/* Right side: interval, frame cost, late frames. */
	if (t->frame) {
		snprintf(buf, sizeof(buf), "%s%s%s%sdelay %.3gs  frame %.2f ms",
			 t->view.tree ? "tree  " : "", t->view.threads ? "threads  " : "",
			 t->view.hide_kthreads ? "no kthreads  " : "",
			 t->view.invert ? "reversed  " : "", (double)t->interval_ns / 1e9,
			 (double)t->frame->frame_ns / 1e6);
		if (t->late) {
			size_t n = strlen(buf);
			snprintf(buf + n, sizeof(buf) - n, "  late %llu", (unsigned long long)t->late);
		}
		int bx = COLS - (int)strlen(buf) - 1;
		if (bx > x)
			tui_put(y, bx, buf, A_DIM);
	}
}

static void draw_footer(struct tui *t)
{
	static const char *const keys[][2] = {
		{ "F1", "Help" }, { "/", "Filter" }, { "t", "Tree" }, { "H", "Threads" },
		{ "P", "CPU" }, { "M", "Mem" }, { "N", "PID" }, { "T", "Time" }, { "<>", "Sort" },
		{ "g", "Units" }, { "d", "Delay" }, { "q", "Quit" },
	};
	tui_footer(keys, ARRAY_SIZE(keys), attr_color(t, C_KEY, A_REVERSE));
}

static void draw_help(struct tui *t)
{
	static const char *const lines[] = {
		"vmwatch top - the guest's processes, read from its memory by the host",
		"",
		"  P  M  N  T     sort by %CPU, %MEM, PID, TIME+",
		"  <  >           move the sort column left / right",
		"  I              reverse the sort order",
		"  /  F4          filter by name as you type (Enter keeps it, Esc clears it)",
		"  Esc            clear the filter",
		"  t  F5          tree view: processes under their parents",
		"  H              threads under their process, with their own %CPU",
		"  d  s           change the interval (seconds, fractions allowed)",
		"  u              only one user's processes (name or uid; blank for all)",
		"  K              hide / show kernel threads",
		"  1              one CPU meter for all vCPUs / one per vCPU",
		"  i              I/O rate columns: RCHAR/s WCHAR/s (read()/write() bytes), DREAD/s",
		"                 DWRIT/s (bytes from/to storage), per second like htop's DISK READ",
		"  f              fault and context-switch rate columns: MINFL/s MAJFL/s CSW/s",
		"  g              units view: the cgroups like systemd-cgtop (%CPU, memory; g again:",
		"                 processes; Up Down scroll it)",
		"  G              processes grouped by systemd unit or container (its name before",
		"                 the command; not in the tree view)",
		"  Up Down PgUp PgDn Home End   move; Left Right scroll the command",
		"  Ctrl-L         redraw",
		"  ?  h  F1       this help",
		"  q  F10         quit (Ctrl-C too); from the host view Esc or Backspace return",
		"  k  r           (top's kill and renice: vmwatch is read-only, nothing is sent)",
		"",
		"Columns: PID, USER (name in the guest's /etc/passwd, else uid), PR and NI (priority,",
		"nice), VIRT, RES and SHR (resident file + shmem) in KiB, S (state), %CPU",
		"(100 = one vCPU, over the interval), %MEM (of guest RAM), TIME+ (user + system",
		"time), COMMAND (command line, or [name] for kernel threads). Rates are over the",
		"interval from the guest's /proc/PID/io, stat and status counters; '-' when unknown.",
		"",
		"Press any key to return.",
	};
	tui_lines(lines, ARRAY_SIZE(lines), attr_color(t, C_TITLE, A_BOLD) | A_BOLD);
}

static void keep_selection_visible(struct tui *t)
{
	if (!t->rows.n) {
		t->sel = t->top = 0;
		return;
	}
	if (t->sel >= t->rows.n)
		t->sel = t->rows.n - 1;
	if (t->table_h < 1)
		return;
	t->top = tui_scroll(t->sel, t->top, t->table_h);
	if (t->top + (size_t)t->table_h > t->rows.n)
		t->top = t->rows.n > (size_t)t->table_h ? t->rows.n - (size_t)t->table_h : 0;
}

static void draw(struct tui *t)
{
	int y;

	erase();
	if (t->help) {
		draw_help(t);
		refresh();
		return;
	}
	y = draw_header(t);
	draw_status(t, y++);
	if (t->units) {
		top_cgroups_draw(t->frame, y, LINES - 1 - y, attr_color(t, C_TABLEHDR, A_REVERSE), &t->units_top);
		draw_footer(t);
		refresh();
		return;
	}
	draw_table_header(t, y++);
	t->table_h = LINES - 1 - y;
	keep_selection_visible(t);
	for (int i = 0; i < t->table_h && t->top + (size_t)i < t->rows.n; i++)
		draw_row(t, y + i, &t->rows.v[t->top + (size_t)i], t->top + (size_t)i == t->sel);
	draw_footer(t);
	refresh();
}

/* ---- model ---------------------------------------------------------------- */

static void remember_selection(struct tui *t)
{
	if (t->sel < t->rows.n) {
		const struct top_row *r = &t->rows.v[t->sel];
		t->sel_id = r->t ? r->t->tid : r->s->proc.pid;
		t->sel_thread = r->t != NULL;
		t->have_sel = true;
	}
}

/* Rebuild the rows (new frame or new view) and find the selected pid again. */
static int rebuild(struct tui *t)
{
	int r;

	if (!t->frame)
		return 0;
	if ((r = top_rows_build(&t->rows, t->frame, &t->view)) < 0)
		return r;
	if (t->have_sel)
		for (size_t i = 0; i < t->rows.n; i++) {
			const struct top_row *row = &t->rows.v[i];
			if ((row->t != NULL) == t->sel_thread &&
			    (row->t ? row->t->tid : row->s->proc.pid) == t->sel_id) {
				t->sel = i;
				break;
			}
		}
	keep_selection_visible(t);
	return 0;
}

/* i / f: show or hide a group of rate columns; a hidden sort column gives
 * way to %CPU. */
static int toggle_rate_cols(struct tui *t, int ch)
{
	if (ch == 'i')
		t->view.io_cols = !t->view.io_cols;
	else
		t->view.fault_cols = !t->view.fault_cols;
	if (!top_col_shown(&t->view, t->view.sort)) {
		t->view.sort = TOP_COL_CPU;
		t->view.invert = false;
	}
	message(t, 2, "%s columns %s", ch == 'i' ? "I/O rate" : "Fault and context-switch rate",
		(ch == 'i' ? t->view.io_cols : t->view.fault_cols) ? "on" : "off");
	return rebuild(t);
}

/* Sort by c in its natural order (biggest first for sizes, rates and times). */
static void set_sort(struct tui *t, enum top_col c)
{
	t->view.sort = c;
	t->view.invert = false;
}

static bool is_enter(int ch) { return ch == '\n' || ch == '\r' || ch == KEY_ENTER; }
static bool is_backspace(int ch) { return ch == KEY_BACKSPACE || ch == 127 || ch == 8; }

/*
 * Movement keys (in any input mode). True if ch was one. Until the user
 * moves the selection it stays on the first row, so a new sort order shows
 * its top; once moved, it follows that process across frames and sorts
 * (Home returns to the first row and stops following).
 */
static bool navigate(struct tui *t, int ch)
{
	size_t page = t->table_h > 1 ? (size_t)t->table_h - 1 : 1;

	switch (ch) {
	case KEY_UP: if (t->sel) t->sel--; break;
	case KEY_DOWN: if (t->sel + 1 < t->rows.n) t->sel++; break;
	case KEY_PPAGE: t->sel = t->sel > page ? t->sel - page : 0; break;
	case KEY_NPAGE: t->sel = MIN(t->sel + page, t->rows.n ? t->rows.n - 1 : 0); break;
	case KEY_HOME:
		t->sel = t->top = 0;
		t->have_sel = false;
		return true;
	case KEY_END: t->sel = t->rows.n ? t->rows.n - 1 : 0; break;
	case KEY_LEFT: t->hscroll = MAX(t->hscroll - 8, 0); return true;
	case KEY_RIGHT: t->hscroll = MIN(t->hscroll + 8, 4000); return true;
	default: return false;
	}
	keep_selection_visible(t);
	remember_selection(t);
	return true;
}

/* Show only the processes of user s (a uid number or a name of the guest's
 * /etc/passwd; "" shows all). False, with a message, for an unknown user. */
static bool set_user(struct tui *t, const char *s)
{
	uint32_t uid;
	int r;

	if (!s[0]) {
		t->view.uid_set = false;
		t->view.user[0] = '\0';
		return true;
	}
	if ((r = top_source_user(t->src, s, &uid)) < 0) {
		message(t, 4, r == -ENOENT ? "Unknown user '%s': not in the guest's /etc/passwd (as its page "
			"cache holds it); a uid number works" : "Not a user: '%s'", s);
		return false;
	}
	t->view.uid_set = true;
	t->view.uid = uid;
	if (top_parse_user(s, &uid) < 0)
		snprintf(t->view.user, sizeof(t->view.user), "%s", s);
	else
		t->view.user[0] = '\0';
	return true;
}

/* The delay or user prompt got Enter: apply what was typed. */
static int prompt_done(struct tui *t, uint64_t *deadline)
{
	uint64_t ns;

	if (t->input == IN_USER) {
		t->input = IN_NONE;
		if (!set_user(t, t->delay_buf))
			return 0;
		t->sel = t->top = 0;
		t->have_sel = false;
		return rebuild(t);
	}
	t->input = IN_NONE;
	if (!t->delay_buf[0])
		return 0;
	if (top_parse_seconds(t->delay_buf, &ns) < 0) {
		message(t, 3, "Not a delay: '%s' (seconds > 0, e.g. 2, 0.5, 0.01)", t->delay_buf);
	} else {
		t->interval_ns = ns;
		*deadline = vmw_now_ns() + ns;
		message(t, 3, "Delay %.3g s", (double)ns / 1e9);
	}
	return 0;
}

/* A key while the delay or user prompt is open. */
static int prompt_key(struct tui *t, int ch, uint64_t *deadline)
{
	size_t n = strlen(t->delay_buf);
	bool ok = t->input == IN_USER ? ch >= 0x21 && ch < 0x7f : (ch >= '0' && ch <= '9') || ch == '.';

	if (ch == 27)
		t->input = IN_NONE;
	else if (is_enter(ch))
		return prompt_done(t, deadline);
	else if (is_backspace(ch) && n)
		t->delay_buf[n - 1] = '\0';
	else if (ok && n + 1 < sizeof(t->delay_buf)) {
		t->delay_buf[n] = (char)ch;
		t->delay_buf[n + 1] = '\0';
	}
	return 0;
}

/* Returns 1 to quit, a negative errno on failure, else 0. */
static int handle_key(struct tui *t, int ch, uint64_t *deadline)
{
	size_t n;

	if (ch == KEY_RESIZE)
		return 0;   /* ncurses has resized its screens; the next draw fits */
	if (t->help) {
		t->help = false;
		return 0;
	}
	if (t->input == IN_FILTER) {
		n = strlen(t->view.filter);
		if (ch == 27) {
			t->view.filter[0] = '\0';
			t->input = IN_NONE;
		} else if (is_enter(ch)) {
			t->input = IN_NONE;
			return 0;
		} else if (is_backspace(ch)) {
			if (n)
				t->view.filter[n - 1] = '\0';
		} else if (ch >= 0x20 && ch < 0x7f) {
			if (n + 1 < sizeof(t->view.filter)) {
				t->view.filter[n] = (char)ch;
				t->view.filter[n + 1] = '\0';
			}
		} else {
			navigate(t, ch);
			return 0;
		}
		t->sel = t->top = 0;
		t->have_sel = false;
		return rebuild(t);
	}
	if (t->input == IN_DELAY || t->input == IN_USER)
		return prompt_key(t, ch, deadline);
	if (t->units && (ch == KEY_UP || ch == KEY_DOWN)) {
		if (ch == KEY_DOWN)
			t->units_top++;
		else if (t->units_top)
			t->units_top--;
		return 0;
	}
	if (navigate(t, ch))
		return 0;
	switch (ch) {
	case 'g': t->units = !t->units; t->units_top = 0; return 0;
	case 'G': t->view.group_units = !t->view.group_units; break;
	case 'q': case KEY_F(10): return 1;
	case 'P': set_sort(t, TOP_COL_CPU); break;
	case 'M': set_sort(t, TOP_COL_MEM); break;
	case 'N': set_sort(t, TOP_COL_PID); break;
	case 'T': set_sort(t, TOP_COL_TIME); break;
	case 'I': t->view.invert = !t->view.invert; break;
	case '<': case ',': set_sort(t, top_col_step(&t->view, t->view.sort, -1)); break;
	case '>': case '.': set_sort(t, top_col_step(&t->view, t->view.sort, +1)); break;
	case 'i': case 'f': return toggle_rate_cols(t, ch);
	case '/': case KEY_F(4): case KEY_F(3): t->input = IN_FILTER; return 0;
	case 27:
		if (!t->view.filter[0])
			return t->o->back ? TOP_TUI_BACK : 0;
		t->view.filter[0] = '\0';
		break;
	case KEY_BACKSPACE: case 127: case 8:
		return t->o->back ? TOP_TUI_BACK : 0;
	case 't': case KEY_F(5): t->view.tree = !t->view.tree; break;
	case 'H': t->view.threads = !t->view.threads; break;
	case 'd': case 's':
		t->input = IN_DELAY;
		t->delay_buf[0] = '\0';
		return 0;
	case 'u': case 'U':
		t->input = IN_USER;
		t->delay_buf[0] = '\0';
		return 0;
	case 'K': t->view.hide_kthreads = !t->view.hide_kthreads; break;
	case '1': t->view.cpu_total = !t->view.cpu_total; return 0;
	case 'k': case 'r':
		message(t, 4, "vmwatch is read-only: it cannot %s guest processes",
			ch == 'k' ? "send signals to" : "renice");
		return 0;
	case '?': case 'h': case KEY_F(1): t->help = true; return 0;
	case 12: clearok(curscr, TRUE); return 0;
	default:
		message(t, 3, "Unknown command - try ? for help");
		return 0;
	}
	return rebuild(t);
}

bool tui_colors_init(void)
{
	if (!has_colors() || start_color() == ERR)
		return false;
	use_default_colors();
	init_pair(C_USER, COLOR_GREEN, -1);
	init_pair(C_NICE, COLOR_BLUE, -1);
	init_pair(C_SYS, COLOR_RED, -1);
	init_pair(C_IRQ, COLOR_MAGENTA, -1);
	init_pair(C_STEAL, COLOR_CYAN, -1);
	init_pair(C_IOWAIT, COLOR_WHITE, -1);
	init_pair(C_MEMUSED, COLOR_GREEN, -1);
	init_pair(C_BUFFERS, COLOR_BLUE, -1);
	init_pair(C_CACHED, COLOR_YELLOW, -1);
	init_pair(C_LABEL, COLOR_CYAN, -1);
	init_pair(C_TITLE, COLOR_CYAN, -1);
	init_pair(C_TABLEHDR, COLOR_BLACK, COLOR_GREEN);
	init_pair(C_SORTCOL, COLOR_BLACK, COLOR_CYAN);
	init_pair(C_SEL, COLOR_BLACK, COLOR_CYAN);
	init_pair(C_THREAD, COLOR_GREEN, -1);
	init_pair(C_NOTICE, COLOR_YELLOW, -1);
	init_pair(C_KEY, COLOR_BLACK, COLOR_CYAN);
	init_pair(C_BAD, COLOR_RED, -1);
	return true;
}

/* Take a frame and show it: TOP_FRAME_OK, or WAIT (the notice says so and
 * *deadline is when to try again), or GONE. */
static enum top_frame_status next_frame(struct tui *t, uint64_t *deadline)
{
	struct vmw_frame *f;
	enum top_frame_status st = top_source_frame(t->src, &f);
	int r;

	if (st == TOP_FRAME_WAIT) {
		message(t, 3600, "Cannot read the guest (rebooting?), retrying: %s", t->src->why);
		*deadline = t->src->retry_at;
		return st;
	}
	if (st != TOP_FRAME_OK)
		return st;
	if (t->msg_until && !strncmp(t->msg, "Cannot read the guest", 21))
		t->msg_until = 0;
	vmw_frame_free(t->frame);
	t->frame = f;
	top_header_fill(t->h, t->src->s, t->o->target, f);
	if ((r = rebuild(t)) < 0) {
		snprintf(t->src->why, sizeof(t->src->why), "%s", strerror(-r));
		return TOP_FRAME_GONE;
	}
	if (f->rebooted) {
		time_t sec = (time_t)(f->wall_time_ns / 1000000000u);
		struct tm tm;
		char clock[16] = "";
		if (localtime_r(&sec, &tm))
			strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
		message(t, 15, "The guest rebooted at %s: re-attached to Linux %s", clock, t->h->release);
	}
	t->frames++;
	return st;
}

SCREEN *tui_open(sigset_t *orig, bool *colors)
{
	sigset_t block;
	SCREEN *scr;
	char why[512];

	if (cli_curses_load(why, sizeof(why)) < 0) {
		cli_error("top: %s", why);
		return NULL;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, orig);
	if (!(scr = newterm(NULL, stdout, stdin))) {
		sigprocmask(SIG_SETMASK, orig, NULL);
		cli_error("top: cannot use the terminal (TERM=%s); try -b", getenv("TERM") ?: "");
		return NULL;
	}
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);
	set_escdelay(25);
	*colors = tui_colors_init();
	return scr;
}

void tui_close(SCREEN *scr, const sigset_t *orig)
{
	endwin();
	delscreen(scr);
	sigprocmask(SIG_SETMASK, orig, NULL);
}

bool tui_wait(uint64_t deadline, uint64_t msg_until, const sigset_t *orig)
{
	uint64_t now = vmw_now_ns(), wait;
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	struct timespec ts;

	if (deadline <= now)
		return true;
	wait = deadline - now;
	/* Wake up for the status line's notice to expire, too. */
	if (msg_until > now && msg_until - now < wait)
		wait = msg_until - now + 1000000;
	ts = (struct timespec){ .tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u) };
	return !(ppoll(&p, 1, &ts, orig) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)));
}

/* A frame when its deadline has come; false (why set) when the guest is gone. */
static bool tick(struct tui *t, uint64_t *deadline, char *why, size_t size)
{
	if (vmw_now_ns() < *deadline)
		return true;
	switch (next_frame(t, deadline)) {
	case TOP_FRAME_OK:
		*deadline = top_next_deadline(*deadline, t->interval_ns, vmw_now_ns(), &t->late);
		break;
	case TOP_FRAME_WAIT:
		break;    /* deadline: when to try again */
	case TOP_FRAME_GONE:
		snprintf(why, size, "%s", t->src->why);
		return false;
	}
	return true;
}

int top_tui_run(struct top_source *src, const struct top_opts *o, struct top_header *h,
		volatile sig_atomic_t *stop)
{
	struct tui t = { .src = src, .o = o, .view = o->view, .interval_ns = o->interval_ns, .h = h };
	sigset_t orig;
	uint64_t deadline = vmw_now_ns();
	char why[600] = "";
	int ret = 0;
	SCREEN *scr;

	if (!(scr = tui_open(&orig, &t.colors)))
		return EXIT_USAGE;
	/* -u NAME from the host view: resolved on this guest's /etc/passwd. */
	if (t.view.user[0] && !t.view.uid_set) {
		char name[sizeof(t.view.user)];
		snprintf(name, sizeof(name), "%s", t.view.user);
		if (!set_user(&t, name))
			t.view.user[0] = '\0';
	}
	for (;;) {
		int ch;

		while (!*stop && (ch = getch()) != ERR) {
			int r = handle_key(&t, ch, &deadline);
			if (r == 1 || r == TOP_TUI_BACK) {
				ret = r == 1 ? 0 : r;
				goto done;
			}
			if (r < 0) {
				snprintf(why, sizeof(why), "%s", strerror(-r));
				ret = 1;
				goto done;
			}
		}
		if (*stop)
			break;
		if (!tick(&t, &deadline, why, sizeof(why))) {
			ret = o->back ? TOP_TUI_BACK : 1;
			break;
		}
		draw(&t);
		if (o->iterations && t.frames >= o->iterations)
			break;
		if (!tui_wait(deadline, t.msg_until, &orig)) {
			snprintf(why, sizeof(why), "top: the terminal went away");
			ret = 1;
			break;
		}
		if (t.msg_until && vmw_now_ns() >= t.msg_until)
			t.msg_until = 0;
	}
done:
	tui_close(scr, &orig);
	if (why[0])
		cli_error("%s", why);
	vmw_frame_free(t.frame);
	top_rows_free(&t.rows);
	return ret;
}
