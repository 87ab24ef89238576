/* SPDX-License-Identifier: MIT */
/*
 * top_host_tui.c - the interactive host view of `vmwatch top` (no TARGET,
 * --all, or several TARGETs): one row per VM, sorted and filtered like the
 * process view; Enter drills into the selected VM's process view (the same
 * screen as `vmwatch top TARGET`, on the VM's session), Esc or Backspace
 * there comes back.
 */
#include "cli/top_tui.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

struct htui {
	struct host_view *hv;
	const struct top_opts *o;
	struct host_sort *sort;
	struct host_vm **rows;
	size_t nrows, sel, top;
	char sel_key[80];           /* the selected VM, followed across frames and sorts */
	int table_h;
	bool filtering, help, colors;
	char msg[300];
	uint64_t msg_until, frames;
};

static void message(struct htui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void message(struct htui *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
	t->msg_until = vmw_now_ns() + 4000000000u;
}

static int color(const struct htui *t, int pair, int fallback)
{
	return t->colors ? (int)COLOR_PAIR(pair) : fallback;
}

/* Rows again (after a frame, a sort or a filter); the selection follows its VM. */
static int rebuild(struct htui *t)
{
	struct host_vm **nv = reallocarray(t->rows, t->hv->n ? t->hv->n : 1, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	t->rows = nv;
	t->nrows = host_rows(t->hv, t->sort, t->rows);
	for (size_t i = 0; t->sel_key[0] && i < t->nrows; i++)
		if (!strcmp(t->rows[i]->key, t->sel_key))
			t->sel = i;
	if (t->sel >= t->nrows)
		t->sel = t->nrows ? t->nrows - 1 : 0;
	return 0;
}

static void select_row(struct htui *t, size_t i)
{
	t->sel = i;
	if (i < t->nrows)
		snprintf(t->sel_key, sizeof(t->sel_key), "%s", t->rows[i]->key);
}

/* ---- drawing ------------------------------------------------------------- */

static void draw_title(struct htui *t)
{
	unsigned ok = 0, other = 0;
	char buf[300], clock[16] = "?";
	time_t sec = (time_t)(t->hv->wall_ns / 1000000000u);
	struct tm tm;
	int x;

	for (size_t i = 0; i < t->hv->n; i++)
		if (!strcmp(t->hv->vms[i]->status, "ok"))
			ok++;
		else
			other++;
	if (localtime_r(&sec, &tm))
		strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	x = tui_put(0, 0, "vmwatch top - host ", color(t, C_TITLE, A_BOLD) | A_BOLD);
	snprintf(buf, sizeof(buf), "%s  %zu VMs: %u readable, %u not", clock, t->hv->n, ok, other);
	tui_put(0, x, buf, A_BOLD);
	x = tui_put(1, 0, "libvirt: ", color(t, C_LABEL, A_BOLD));
	if (t->hv->virt_why[0]) {
		top_sanitize(buf, sizeof(buf), t->hv->virt_why);
		tui_put(1, x, buf, A_DIM);
	} else {
		tui_put(1, x, t->hv->virt ? vmw_virt_uri(t->hv->virt) : "not used (TARGETs given)", 0);
	}
}

static void draw_status(struct htui *t, int y)
{
	int x = 0;

	if (t->filtering) {
		x = tui_put(y, 0, "Filter: ", color(t, C_KEY, A_REVERSE));
		x = tui_put(y, x, t->sort->filter, A_BOLD);
		x = tui_put_ch(y, x, '_', A_BLINK);
		tui_put(y, x + 2, "(Enter: done, Esc: clear)", A_DIM);
		return;
	}
	if (t->msg[0] && vmw_now_ns() < t->msg_until)
		x = tui_put(y, 0, t->msg, color(t, C_NOTICE, A_BOLD) | A_BOLD) + 2;
	if (t->sort->filter[0]) {
		x = tui_put(y, x, "Filter: ", color(t, C_LABEL, A_BOLD));
		x = tui_put(y, x, t->sort->filter, A_BOLD);
		tui_put(y, x, " (Esc clears)", A_DIM);
	}
}

static void draw_table_header(struct htui *t, int y)
{
	char cells[256], title[32];
	int x = 0, attr = color(t, C_TABLEHDR, A_REVERSE);
	const struct top_col_info *c = &host_cols[t->sort->col];

	host_header_cells(cells, sizeof(cells));
	tui_fill_line(y, attr);
	tui_put(y, tui_put(y, 0, cells, attr), host_cols[HOST_COL_TOP].title, attr);
	for (int i = 0; i < (int)t->sort->col; i++)
		x += abs(host_cols[i].width) + 1;
	snprintf(title, sizeof(title), c->width < 0 ? "%-*s" : "%*s", abs(c->width), c->title);
	tui_put(y, x, title, color(t, C_SORTCOL, A_BOLD) | A_BOLD);
}

static void draw_row(struct htui *t, int y, const struct host_vm *vm, bool selected)
{
	char cells[256], tail[600];
	int base = selected ? color(t, C_SEL, A_REVERSE) : 0, x;
	bool bad = strcmp(vm->status, "ok") != 0;

	if (selected) {
		tui_fill_line(y, base);
	}
	host_row_cells(vm, cells, sizeof(cells));
	host_row_tail(vm, tail, sizeof(tail));
	x = tui_put(y, 0, cells, base | (bad && !selected ? color(t, C_BAD, 0) : 0));
	tui_put(y, x, tail, base | (bad && !selected ? A_DIM : 0));
}

static void draw_help(struct htui *t)
{
	static const char *const lines[] = {
		"vmwatch top - every VM of the host: libvirt domains and QEMU processes",
		"",
		"  Enter          the selected VM's processes (Esc or Backspace come back)",
		"  P  M  N  T     sort by guest %CPU, memory used, name, the busiest process",
		"  <  >           move the sort column left / right;  I  reverse the order",
		"  /              filter by name as you type (Enter keeps it, Esc clears it)",
		"  Up Down PgUp PgDn Home End   move;  Ctrl-L redraw;  q quit",
		"",
		"Columns: %CPU is the guest's busy time over all its vCPUs (us, sy, wa, st: its",
		"split, as the guest's /proc/stat counts it); HOST% is the QEMU process on the",
		"host (100 = one host CPU); MEM is used (total - available) of the guest's RAM;",
		"PROCS and LOAD1 as the guest counts them; OS is ID:VERSION_ID of the guest's",
		"cached /etc/os-release (- unknown); last, the busiest process and its %CPU,",
		"or why the VM cannot be read.",
		"",
		"Press any key to return.",
	};
	tui_lines(lines, ARRAY_SIZE(lines), color(t, C_TITLE, A_BOLD) | A_BOLD);
}

static void draw(struct htui *t)
{
	static const char *const keys[][2] = {
		{ "Enter", "Processes" }, { "/", "Filter" }, { "P", "CPU" }, { "M", "Mem" },
		{ "N", "Name" }, { "<>", "Sort" }, { "?", "Help" }, { "q", "Quit" },
	};
	int y = 3;

	erase();
	if (t->help) {
		draw_help(t);
		refresh();
		return;
	}
	draw_title(t);
	draw_status(t, 2);
	draw_table_header(t, y++);
	t->table_h = LINES - 1 - y;
	t->top = tui_scroll(t->sel, t->top, t->table_h);
	for (int i = 0; i < t->table_h && t->top + (size_t)i < t->nrows; i++)
		draw_row(t, y + i, t->rows[t->top + (size_t)i], t->top + (size_t)i == t->sel);
	if (!t->nrows)
		tui_put(y, 0, t->hv->n ? "(no VM matches the filter)" : "(no running VMs found)", A_DIM);
	tui_footer(keys, ARRAY_SIZE(keys), color(t, C_KEY, A_REVERSE));
	refresh();
}

/* ---- keys ---------------------------------------------------------------- */

static int filter_key(struct htui *t, int ch)
{
	size_t n = strlen(t->sort->filter);

	if (ch == 27) {
		t->sort->filter[0] = '\0';
		t->filtering = false;
	} else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
		t->filtering = false;
	} else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
		if (n)
			t->sort->filter[n - 1] = '\0';
	} else if (ch >= 0x20 && ch < 0x7f && n + 1 < sizeof(t->sort->filter)) {
		t->sort->filter[n] = (char)ch;
		t->sort->filter[n + 1] = '\0';
	}
	return rebuild(t);
}

static bool move_key(struct htui *t, int ch)
{
	size_t page = t->table_h > 1 ? (size_t)t->table_h - 1 : 1, last = t->nrows ? t->nrows - 1 : 0;

	switch (ch) {
	case KEY_UP: select_row(t, t->sel ? t->sel - 1 : 0); return true;
	case KEY_DOWN: select_row(t, MIN(t->sel + 1, last)); return true;
	case KEY_PPAGE: select_row(t, t->sel > page ? t->sel - page : 0); return true;
	case KEY_NPAGE: select_row(t, MIN(t->sel + page, last)); return true;
	case KEY_HOME: select_row(t, 0); return true;
	case KEY_END: select_row(t, last); return true;
	default: return false;
	}
}

static void set_sort(struct htui *t, enum host_col c)
{
	t->sort->col = c;
	t->sort->invert = false;
}

enum { KEY_DONE = 0, KEY_QUIT = 1, KEY_DRILL = 2 };

/* KEY_DONE, KEY_QUIT, KEY_DRILL, or a negative errno. */
static int handle_key(struct htui *t, int ch)
{
	if (ch == KEY_RESIZE)
		return KEY_DONE;
	if (t->help) {
		t->help = false;
		return KEY_DONE;
	}
	if (t->filtering)
		return filter_key(t, ch);
	if (move_key(t, ch))
		return KEY_DONE;
	switch (ch) {
	case 'q': case KEY_F(10): return KEY_QUIT;
	case '\n': case '\r': case KEY_ENTER: return t->nrows ? KEY_DRILL : KEY_DONE;
	case 'P': set_sort(t, HOST_COL_CPU); break;
	case 'M': set_sort(t, HOST_COL_MEM); break;
	case 'N': set_sort(t, HOST_COL_NAME); break;
	case 'T': set_sort(t, HOST_COL_TOP); break;
	case 'I': t->sort->invert = !t->sort->invert; break;
	case '<': case ',': set_sort(t, t->sort->col ? t->sort->col - 1 : HOST_NCOLS - 1); break;
	case '>': case '.': set_sort(t, (t->sort->col + 1) % HOST_NCOLS); break;
	case '/': case KEY_F(4): case KEY_F(3): t->filtering = true; return KEY_DONE;
	case 27: t->sort->filter[0] = '\0'; break;
	case '?': case 'h': case KEY_F(1): t->help = true; return KEY_DONE;
	case 12: clearok(curscr, TRUE); return KEY_DONE;
	case 'k': case 'r':
		message(t, "vmwatch is read-only: it cannot %s guest processes",
			ch == 'k' ? "signal" : "renice");
		return KEY_DONE;
	default:
		message(t, "Unknown command - try ? for help");
		return KEY_DONE;
	}
	return rebuild(t);
}

/* ---- drill-down ------------------------------------------------------------ */

/* The selected VM's process view on its session (its sampler swapped for one
 * that walks threads and command lines, and back). TOP_TUI_BACK, 0 (quit)
 * or an exit code. */
static int drill(struct htui *t, struct host_vm *vm, volatile sig_atomic_t *stop)
{
	struct top_opts o = *t->o;
	struct top_source src;
	_cleanup_free_ struct top_header *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return 1;
	o.target = vm->name;
	o.back = true;
	o.iterations = 0;
	o.sopts.walk_flags = VMW_WALK_THREADS | (o.cmdline ? VMW_WALK_CMDLINE : 0);
	if (host_vm_resample(vm, &o.sopts) < 0)
		return 1;
	src = (struct top_source){ .target = vm->name, .sess = vm->sess, .s = vm->s };
	top_first_frame(&src, o.interval_ns);
	r = top_tui_run(&src, &o, h, stop);
	if (host_vm_resample(vm, &t->hv->o->sopts) < 0)
		return 1;
	return r;
}

/* Enter on a row: the VM's view if it can be read now. False to quit. */
static bool enter(struct htui *t, SCREEN **scr, sigset_t *orig, volatile sig_atomic_t *stop, int *ret)
{
	struct host_vm *vm = t->rows[t->sel];
	int r;

	if (!vm->sess || vmw_session_state(vm->sess) != VMW_SESSION_ATTACHED) {
		message(t, "%s cannot be read now: %s", vm->name, vm->reason[0] ? vm->reason : vm->status);
		return true;
	}
	tui_close(*scr, orig);
	r = drill(t, vm, stop);
	if (r != TOP_TUI_BACK || *stop) {
		*scr = NULL;
		*ret = r == TOP_TUI_BACK ? 0 : r;
		return false;
	}
	if (!(*scr = tui_open(orig, &t->colors))) {
		*ret = EXIT_USAGE;
		return false;
	}
	return true;
}

/* Keys until none is waiting. False to leave (ret set). */
static bool keys(struct htui *t, SCREEN **scr, sigset_t *orig, volatile sig_atomic_t *stop, int *ret)
{
	int ch;

	while (!*stop && (ch = getch()) != ERR) {
		int r = handle_key(t, ch);
		if (r == KEY_QUIT || r < 0) {
			*ret = r < 0 ? 1 : 0;
			return false;
		}
		if (r == KEY_DRILL && !enter(t, scr, orig, stop, ret))
			return false;
	}
	return !*stop;
}

int host_tui_run(struct host_view *hv, const struct top_opts *o, struct host_sort *sort,
		 volatile sig_atomic_t *stop)
{
	struct htui t = { .hv = hv, .o = o, .sort = sort };
	uint64_t deadline = vmw_now_ns(), late = 0;
	sigset_t orig;
	SCREEN *scr;
	int ret = 0;

	if (!(scr = tui_open(&orig, &t.colors)))
		return EXIT_USAGE;
	while (keys(&t, &scr, &orig, stop, &ret)) {
		if (vmw_now_ns() >= deadline) {
			if (host_view_update(hv) < 0 || rebuild(&t) < 0) {
				ret = 1;
				break;
			}
			t.frames++;
			deadline = top_next_deadline(deadline, o->interval_ns, vmw_now_ns(), &late);
		}
		draw(&t);
		if (o->iterations && t.frames >= o->iterations)
			break;
		if (!tui_wait(deadline, t.msg_until, &orig)) {
			ret = 1;
			break;
		}
	}
	if (scr)
		tui_close(scr, &orig);
	free(t.rows);
	return ret;
}
