/* SPDX-License-Identifier: MIT */
/*
 * top_model.c - what `vmwatch top` shows of one sampler frame, without any
 * I/O: the header values and the table rows (filtered, sorted, as a tree,
 * with threads), and the text of their cells. The interactive screen and the
 * batch output both draw from here, so they always agree.
 *
 * Frames come from a hostile guest: ppid links may form cycles or point
 * anywhere, pids may repeat in a torn walk, names may hold any bytes. The
 * tree walk is iterative with a visited mark (cycles become roots, depth is
 * bounded by the number of processes), and guest text is made printable.
 */
#include "cli/top_internal.h"
#include "kernel/kernel.h"
#include "report/report.h"

#include <errno.h>
#include <string.h>

const struct top_col_info top_cols[TOP_NCOLS] = {
	[TOP_COL_PID]     = { "PID",     7, "pid",     false },
	[TOP_COL_USER]    = { "USER",   -8, "user",    false },
	[TOP_COL_PR]      = { "PR",      3, "pr",      false },
	[TOP_COL_NI]      = { "NI",      3, "ni",      false },
	[TOP_COL_VIRT]    = { "VIRT",    7, "virt",    true },
	[TOP_COL_RES]     = { "RES",     7, "res",     true },
	[TOP_COL_SHR]     = { "SHR",     7, "shr",     true },
	[TOP_COL_S]       = { "S",       1, "state",   false },
	[TOP_COL_CPU]     = { "%CPU",    5, "cpu",     true },
	[TOP_COL_MEM]     = { "%MEM",    5, "mem",     true },
	[TOP_COL_TIME]    = { "TIME+",   9, "time",    true },
	[TOP_COL_RCHAR_RATE]  = { "RCHAR/s",  7, "rchar_rate",  true },
	[TOP_COL_WCHAR_RATE]  = { "WCHAR/s",  7, "wchar_rate",  true },
	[TOP_COL_READ_RATE]   = { "DREAD/s",  7, "read_rate",   true },
	[TOP_COL_WRITE_RATE]  = { "DWRIT/s",  7, "write_rate",  true },
	[TOP_COL_MINFLT_RATE] = { "MINFL/s",  7, "minflt_rate", true },
	[TOP_COL_MAJFLT_RATE] = { "MAJFL/s",  7, "majflt_rate", true },
	[TOP_COL_CSW_RATE]    = { "CSW/s",    7, "csw_rate",    true },
	[TOP_COL_COMMAND] = { "COMMAND", 0, "command", false },
};

int top_col_parse(const char *s)
{
	static const struct { const char *alias; enum top_col col; } aliases[] = {
		{ "rss", TOP_COL_RES }, { "vsz", TOP_COL_VIRT }, { "uid", TOP_COL_USER },
		{ "s", TOP_COL_S }, { "comm", TOP_COL_COMMAND }, { "cmd", TOP_COL_COMMAND },
		{ "nice", TOP_COL_NI }, { "prio", TOP_COL_PR },
	};
	for (int i = 0; i < TOP_NCOLS; i++)
		if (!strcasecmp(s, top_cols[i].name) || !strcasecmp(s, top_cols[i].title))
			return i;
	for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
		if (!strcasecmp(s, aliases[i].alias))
			return (int)aliases[i].col;
	return -1;
}

/* ---- text ---------------------------------------------------------------- */

void top_sanitize(char *dst, size_t size, const char *src)
{
	size_t n = 0;
	if (!size)
		return;
	for (const unsigned char *p = (const unsigned char *)src; *p && n + 1 < size; p++)
		dst[n++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
	dst[n] = '\0';
}

/* Append src (sanitized) to buf at *n, keeping it terminated. */
static void append(char *buf, size_t size, size_t *n, const char *src)
{
	if (*n + 1 >= size)
		return;
	top_sanitize(buf + *n, size - *n, src);
	*n += strlen(buf + *n);
}

static void proc_command(const struct vmw_proc *p, char *buf, size_t size)
{
	size_t n = 0;

	if (!size)
		return;
	buf[0] = '\0';
	if (!p->kthread && p->cmdline && p->cmdline[0] && p->cmdline[0][0]) {
		for (char **a = p->cmdline; *a; a++) {
			if (a != p->cmdline)
				append(buf, size, &n, " ");
			append(buf, size, &n, *a);
		}
		return;
	}
	append(buf, size, &n, "[");
	append(buf, size, &n, p->comm);
	append(buf, size, &n, "]");
}

void top_row_command(const struct top_row *r, char *buf, size_t size)
{
	if (r->t)
		top_sanitize(buf, size, r->t->comm);
	else
		proc_command(&r->s->proc, buf, size);
}

bool top_proc_matches(const struct vmw_proc *p, const char *filter)
{
	char cmd[4096];

	if (!filter || !filter[0])
		return true;
	if (strcasestr(p->comm, filter))
		return true;
	proc_command(p, cmd, sizeof(cmd));
	return strcasestr(cmd, filter) != NULL;
}

void top_fmt_kib(char *buf, size_t size, uint64_t bytes)
{
	uint64_t kib = bytes >> 10;

	if (kib < 1000000)
		snprintf(buf, size, "%llu", (unsigned long long)kib);
	else if (kib < 10000ull << 10)
		snprintf(buf, size, "%.1fm", (double)kib / 1024);
	else if (kib < 10000ull << 20)
		snprintf(buf, size, "%.1fg", (double)kib / (1024 * 1024));
	else
		snprintf(buf, size, "%.1ft", (double)kib / (1024.0 * 1024 * 1024));
}

void top_fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
	static const char units[] = "KMGTP";
	double v = (double)bytes / 1024;
	int u = 0;

	while (v >= 1000 && u < 4) {
		v /= 1024;
		u++;
	}
	if (v < 10 && u > 0)
		snprintf(buf, size, "%.2f%c", v, units[u]);
	else if (v < 100 && u > 0)
		snprintf(buf, size, "%.1f%c", v, units[u]);
	else
		snprintf(buf, size, "%.0f%c", v, units[u]);
}

void top_fmt_time(char *buf, size_t size, uint64_t ns)
{
	uint64_t cs = ns / 10000000ull;         /* hundredths */
	uint64_t min = cs / 6000;

	if (min < 10000)
		snprintf(buf, size, "%llu:%02llu.%02llu", (unsigned long long)min,
			 (unsigned long long)(cs / 100 % 60), (unsigned long long)(cs % 100));
	else
		snprintf(buf, size, "%lluh", (unsigned long long)(min / 60));
}

void top_fmt_uptime(char *buf, size_t size, uint64_t s)
{
	uint64_t days = s / 86400;

	if (days)
		snprintf(buf, size, "%llu day%s, %02llu:%02llu:%02llu", (unsigned long long)days,
			 days == 1 ? "" : "s", (unsigned long long)(s / 3600 % 24),
			 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
	else
		snprintf(buf, size, "%02llu:%02llu:%02llu", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
}

/* ---- the rate columns (I/O, faults, context switches) --------------------- */

bool top_col_shown(const struct top_view *v, enum top_col c)
{
	if (c >= TOP_COL_RCHAR_RATE && c <= TOP_COL_WRITE_RATE)
		return v && v->io_cols;
	if (c >= TOP_COL_MINFLT_RATE && c <= TOP_COL_CSW_RATE)
		return v && v->fault_cols;
	return c < TOP_NCOLS;
}

enum top_col top_col_step(const struct top_view *v, enum top_col c, int dir)
{
	int i = (int)c;

	for (int k = 0; k < TOP_NCOLS; k++) {
		i = (i + (dir < 0 ? TOP_NCOLS - 1 : 1)) % TOP_NCOLS;
		if (top_col_shown(v, (enum top_col)i))
			return (enum top_col)i;
	}
	return c;
}

void top_col_show(struct top_view *v, enum top_col c)
{
	if (c >= TOP_COL_RCHAR_RATE && c <= TOP_COL_WRITE_RATE)
		v->io_cols = true;
	else if (c >= TOP_COL_MINFLT_RATE && c <= TOP_COL_CSW_RATE)
		v->fault_cols = true;
}

void top_fmt_rate(char *buf, size_t size, double v)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	if (!(v > 0)) {
		snprintf(buf, size, "0");
		return;
	}
	if (v < 9999.5) {
		snprintf(buf, size, "%.0f", v);
		return;
	}
	while (v >= 999.95 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, v < 99.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* A process's rate for column c (a thread row has none of its own: -1). */
static double row_rate(const struct vmw_sample *s, bool thread, enum top_col c)
{
	const struct vmw_proc_rates *r = &s->rate;
	bool io = s->proc.io_ok;

	if (thread)
		return -1;
	switch (c) {
	case TOP_COL_RCHAR_RATE: return io ? r->rchar : -1;
	case TOP_COL_WCHAR_RATE: return io ? r->wchar : -1;
	case TOP_COL_READ_RATE: return io ? r->read_bytes : -1;
	case TOP_COL_WRITE_RATE: return io ? r->write_bytes : -1;
	case TOP_COL_MINFLT_RATE: return r->min_flt;
	case TOP_COL_MAJFLT_RATE: return r->maj_flt;
	case TOP_COL_CSW_RATE: return r->nvcsw + r->nivcsw;
	default: return -1;
	}
}

/* Append the shown rate columns of row r (NULL: their titles) to buf. */
static void rate_cells(const struct top_row *r, const struct top_view *v, char *buf, size_t size)
{
	size_t n = strlen(buf);

	for (int c = TOP_COL_RCHAR_RATE; c <= TOP_COL_CSW_RATE && n < size; c++) {
		char cell[16];
		double x;
		if (!top_col_shown(v, (enum top_col)c))
			continue;
		if (!r)
			snprintf(cell, sizeof(cell), "%s", top_cols[c].title);
		else if ((x = row_rate(r->s, r->t != NULL, (enum top_col)c)) < 0)
			snprintf(cell, sizeof(cell), "-");
		else
			top_fmt_rate(cell, sizeof(cell), x);
		n += (size_t)snprintf(buf + n, size - n, "%*s ", top_cols[c].width, cell);
	}
}

#define CELLS_FMT "%7s %-8s %3s %3s %7s %7s %7s %1s %5s %5s %9s "

void top_header_cells(const struct top_view *v, char *buf, size_t size)
{
	snprintf(buf, size, CELLS_FMT, "PID", "USER", "PR", "NI", "VIRT", "RES", "SHR", "S", "%CPU",
		 "%MEM", "TIME+");
	rate_cells(NULL, v, buf, size);
}

void top_row_cells(const struct top_row *r, const struct top_view *v, char *buf, size_t size)
{
	const struct vmw_proc *p = &r->s->proc;
	char pid[16], user[16], pr[16], ni[16], virt[16], res[16], shr[16], st[2], cpu[16], mem[16],
		tm[24];
	int32_t prio = r->t ? r->t->prio : p->prio;

	snprintf(pid, sizeof(pid), "%d", r->t ? r->t->tid : p->pid);
	cli_user_column(p, user, sizeof(user));
	if (prio <= -100)
		snprintf(pr, sizeof(pr), "rt");
	else
		snprintf(pr, sizeof(pr), "%d", prio);
	snprintf(ni, sizeof(ni), "%d", r->t ? r->t->nice : p->nice);
	top_fmt_kib(virt, sizeof(virt), p->vsz_bytes);
	top_fmt_kib(res, sizeof(res), vmw_proc_rss_bytes(p));
	top_fmt_kib(shr, sizeof(shr), p->rss_file_bytes + p->rss_shmem_bytes);
	st[0] = r->t ? r->t->state : p->state;
	if ((unsigned char)st[0] < 0x20 || (unsigned char)st[0] >= 0x7f)
		st[0] = '?';
	st[1] = '\0';
	snprintf(cpu, sizeof(cpu), "%.1f", r->cpu_percent);
	snprintf(mem, sizeof(mem), "%.1f", r->s->mem_percent);
	top_fmt_time(tm, sizeof(tm), r->t ? r->t->utime_ns + r->t->stime_ns : p->utime_ns + p->stime_ns);
	snprintf(buf, size, CELLS_FMT, pid, user, pr, ni, virt, res, shr, st, cpu, mem, tm);
	rate_cells(r, v, buf, size);
}

size_t top_tree_prefix(const struct top_row *r, bool utf8, char *buf, size_t size)
{
	const char *bar = utf8 ? "\u2502  " : "|  ", *tee = utf8 ? "\u251c\u2500 " : "|- ",
		   *corner = utf8 ? "\u2514\u2500 " : "`- ";
	size_t n = 0;

	if (!size)
		return 0;
	buf[0] = '\0';
	for (uint32_t l = 1; l <= r->depth; l++) {
		const char *piece;
		if (l < r->depth)
			piece = (l - 1 < 64 && (r->more >> (l - 1) & 1)) ? bar : "   ";
		else
			piece = r->last ? corner : tee;
		size_t len = strlen(piece);
		if (n + len + 1 > size)
			break;
		memcpy(buf + n, piece, len + 1);
		n += len;
	}
	return n;
}

/* ---- rows ---------------------------------------------------------------- */

/* A process (thread == -1) or one of its threads, as the sort sees it. */
struct item {
	const struct vmw_sample *s;
	int32_t thread;
};

static double item_cpu(const struct item *it)
{
	if (it->thread >= 0)
		return it->s->thread_cpu_percent ? it->s->thread_cpu_percent[it->thread] : 0;
	return it->s->cpu_percent;
}

static int32_t item_id(const struct item *it)
{
	return it->thread >= 0 ? it->s->proc.threads[it->thread].tid : it->s->proc.pid;
}

static const char *item_name(const struct item *it)
{
	const struct vmw_proc *p = &it->s->proc;
	if (it->thread >= 0)
		return p->threads[it->thread].comm;
	if (!p->kthread && p->cmdline && p->cmdline[0])
		return p->cmdline[0];
	return p->comm;
}

#define CMP(a, b) ((a) < (b) ? -1 : (a) > (b))

/* Natural order of the column (ascending); the caller flips descending ones. */
static int item_cmp_col(const struct item *a, const struct item *b, enum top_col col)
{
	const struct vmw_proc *p = &a->s->proc, *q = &b->s->proc;
	const struct vmw_thread *ta = a->thread >= 0 ? &p->threads[a->thread] : NULL;
	const struct vmw_thread *tb = b->thread >= 0 ? &q->threads[b->thread] : NULL;

	switch (col) {
	case TOP_COL_PID: return CMP(item_id(a), item_id(b));
	case TOP_COL_USER: return CMP(p->uid, q->uid);
	case TOP_COL_PR: return CMP(ta ? ta->prio : p->prio, tb ? tb->prio : q->prio);
	case TOP_COL_NI: return CMP(ta ? ta->nice : p->nice, tb ? tb->nice : q->nice);
	case TOP_COL_VIRT: return CMP(p->vsz_bytes, q->vsz_bytes);
	case TOP_COL_RES: return CMP(vmw_proc_rss_bytes(p), vmw_proc_rss_bytes(q));
	case TOP_COL_SHR:
		return CMP(p->rss_file_bytes + p->rss_shmem_bytes, q->rss_file_bytes + q->rss_shmem_bytes);
	case TOP_COL_S: return CMP(ta ? ta->state : p->state, tb ? tb->state : q->state);
	case TOP_COL_CPU: return CMP(item_cpu(a), item_cpu(b));
	case TOP_COL_MEM: return CMP(vmw_proc_rss_bytes(p), vmw_proc_rss_bytes(q));
	case TOP_COL_TIME:
		return CMP(ta ? ta->utime_ns + ta->stime_ns : p->utime_ns + p->stime_ns,
			   tb ? tb->utime_ns + tb->stime_ns : q->utime_ns + q->stime_ns);
	case TOP_COL_RCHAR_RATE: case TOP_COL_WCHAR_RATE: case TOP_COL_READ_RATE: case TOP_COL_WRITE_RATE:
	case TOP_COL_MINFLT_RATE: case TOP_COL_MAJFLT_RATE: case TOP_COL_CSW_RATE:
		return CMP(row_rate(a->s, a->thread >= 0, col), row_rate(b->s, b->thread >= 0, col));
	case TOP_COL_COMMAND: return strcmp(item_name(a), item_name(b));
	case TOP_NCOLS: break;
	}
	return 0;
}

static int item_cmp(const void *x, const void *y, void *arg)
{
	const struct item *a = x, *b = y;
	const struct top_view *v = arg;
	enum top_col col = v->sort < TOP_NCOLS ? v->sort : TOP_COL_CPU;
	int c;

	if (v->group_units && !v->tree) {
		char ua[160], ub[160];
		top_unit_of(&a->s->proc, ua, sizeof(ua));
		top_unit_of(&b->s->proc, ub, sizeof(ub));
		if ((c = strcmp(ua, ub)))
			return c;
	}
	c = item_cmp_col(a, b, col);

	if (top_cols[col].descending)
		c = -c;
	if (v->invert)
		c = -c;
	return c ? c : CMP(item_id(a), item_id(b));
}

static int push(struct top_rows *rows, const struct top_row *r)
{
	if (rows->n == rows->cap) {
		size_t nc = rows->cap ? rows->cap * 2 : 256;
		struct top_row *nv = realloc(rows->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		rows->v = nv;
		rows->cap = nc;
	}
	rows->v[rows->n++] = *r;
	return 0;
}

/* Children's `more` mask: the parent's, plus whether the parent itself has later siblings. */
static uint64_t child_more(const struct top_row *parent)
{
	uint64_t m = parent->more;
	if (parent->depth >= 1 && parent->depth - 1 < 64 && !parent->last)
		m |= 1ull << (parent->depth - 1);
	return m;
}

/* Thread rows of process row pr (only for processes with more than one thread).
 * has_children: process rows follow them at the same depth (so no thread is last). */
static int push_threads(struct top_rows *rows, const struct top_row *pr, const struct top_view *v,
			struct item *tmp, bool has_children)
{
	const struct vmw_sample *s = pr->s;
	uint32_t n = s->proc.threads ? s->proc.nthreads_listed : 0;
	int r;

	if (n < 2)
		return 0;
	for (uint32_t j = 0; j < n; j++)
		tmp[j] = (struct item){ .s = s, .thread = (int32_t)j };
	qsort_r(tmp, n, sizeof(*tmp), item_cmp, (void *)v);
	for (uint32_t j = 0; j < n; j++) {
		struct top_row row = {
			.s = s, .t = &s->proc.threads[tmp[j].thread], .cpu_percent = item_cpu(&tmp[j]),
			.depth = pr->depth + 1, .last = j == n - 1 && !has_children, .more = child_more(pr),
		};
		if ((r = push(rows, &row)) < 0)
			return r;
	}
	return 0;
}

static bool pid_wanted(const struct top_view *v, int32_t pid)
{
	if (!v->pids)
		return true;
	for (size_t i = 0; i < v->npids; i++)
		if (v->pids[i] == pid)
			return true;
	return false;
}

struct pid_index {
	int32_t pid;
	uint32_t idx;
};

static int pid_index_cmp(const void *x, const void *y)
{
	const struct pid_index *a = x, *b = y;
	return a->pid != b->pid ? CMP(a->pid, b->pid) : CMP(a->idx, b->idx);
}

static int64_t pid_lookup(const struct pid_index *ix, size_t n, int32_t pid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ix[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && ix[lo].pid == pid ? (int64_t)ix[lo].idx : -1;
}

struct tree_entry {
	uint32_t idx;
	uint32_t depth;
	bool last;
	uint64_t more;
};

/*
 * Processes under their parents. items[] is sorted; children lists are built
 * in that order, so siblings come out sorted too. A ppid that is not listed
 * (filtered out, exited, pid 0) makes a root; processes caught in a ppid
 * cycle are never reached from a root and become roots themselves.
 */
static int build_tree(struct top_rows *rows, const struct item *items, size_t n,
		      const struct top_view *v, struct item *tmp)
{
	struct pid_index *ix = calloc(n ? n : 1, sizeof(*ix));
	uint32_t *first = malloc((n ? n : 1) * sizeof(uint32_t));
	uint32_t *lastc = malloc((n ? n : 1) * sizeof(uint32_t));
	uint32_t *next = malloc((n ? n : 1) * sizeof(uint32_t));
	int64_t *parent = malloc((n ? n : 1) * sizeof(int64_t));
	uint8_t *seen = calloc(n ? n : 1, 1);
	struct tree_entry *stack = malloc((n ? n : 1) * sizeof(*stack));
	uint32_t *kids = malloc((n ? n : 1) * sizeof(uint32_t));
	const uint32_t none = UINT32_MAX;
	int r = 0;

	if (!ix || !first || !lastc || !next || !parent || !seen || !stack || !kids) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ix[i] = (struct pid_index){ items[i].s->proc.pid, (uint32_t)i };
	qsort(ix, n, sizeof(*ix), pid_index_cmp);
	for (size_t i = 0; i < n; i++)
		first[i] = lastc[i] = next[i] = none;
	for (size_t i = 0; i < n; i++) {
		const struct vmw_proc *p = &items[i].s->proc;
		int64_t pi = p->ppid > 0 && p->ppid != p->pid ? pid_lookup(ix, n, p->ppid) : -1;
		parent[i] = pi;
		if (pi < 0 || (size_t)pi == i)
			continue;
		if (lastc[pi] == none)
			first[pi] = (uint32_t)i;
		else
			next[lastc[pi]] = (uint32_t)i;
		lastc[pi] = (uint32_t)i;
	}

	/* Two passes over the roots: true roots, then whatever a cycle hid. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t root = 0; root < n; root++) {
			size_t sp = 0;
			if (seen[root] || (pass == 0 && parent[root] >= 0 && (size_t)parent[root] != root))
				continue;
			seen[root] = 1;
			stack[sp++] = (struct tree_entry){ (uint32_t)root, 0, false, 0 };
			while (sp) {
				struct tree_entry e = stack[--sp];
				struct top_row row = { .s = items[e.idx].s, .cpu_percent = items[e.idx].s->cpu_percent,
						       .depth = e.depth, .last = e.last, .more = e.more };
				size_t nk = 0;

				if ((r = push(rows, &row)) < 0)
					goto out;
				for (uint32_t c = first[e.idx]; c != none; c = next[c])
					if (!seen[c])
						kids[nk++] = c;
				if (v->threads && (r = push_threads(rows, &row, v, tmp, nk > 0)) < 0)
					goto out;
				/* Push in reverse so the first child is drawn first. */
				for (size_t k = nk; k-- > 0;) {
					seen[kids[k]] = 1;
					stack[sp++] = (struct tree_entry){ kids[k], e.depth + 1, k == nk - 1,
									   child_more(&row) };
				}
			}
		}
	}
out:
	free(ix);
	free(first);
	free(lastc);
	free(next);
	free(parent);
	free(seen);
	free(stack);
	free(kids);
	return r;
}

int top_rows_build(struct top_rows *rows, const struct vmw_frame *f, const struct top_view *v)
{
	struct item *items = NULL, *tmp = NULL;
	uint32_t maxthreads = 1;
	size_t n = 0;
	int r = 0;

	rows->n = 0;
	items = malloc((f->nprocs ? f->nprocs : 1) * sizeof(*items));
	if (!items)
		return -ENOMEM;
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_proc *p = &f->procs[i].proc;
		if (!pid_wanted(v, p->pid) || !top_proc_matches(p, v->filter) ||
		    (v->uid_set && p->uid != v->uid) || (v->hide_kthreads && p->kthread))
			continue;
		items[n++] = (struct item){ .s = &f->procs[i], .thread = -1 };
		if (p->threads && p->nthreads_listed > maxthreads)
			maxthreads = p->nthreads_listed;
	}
	qsort_r(items, n, sizeof(*items), item_cmp, (void *)v);
	if (v->threads && !(tmp = malloc(maxthreads * sizeof(*tmp)))) {
		r = -ENOMEM;
		goto out;
	}
	if (v->tree) {
		r = build_tree(rows, items, n, v, tmp);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct top_row row = { .s = items[i].s, .cpu_percent = items[i].s->cpu_percent };
		if ((r = push(rows, &row)) < 0)
			goto out;
		if (v->threads && (r = push_threads(rows, &row, v, tmp, false)) < 0)
			goto out;
	}
out:
	free(items);
	free(tmp);
	return r;
}

void top_rows_free(struct top_rows *rows)
{
	free(rows->v);
	memset(rows, 0, sizeof(*rows));
}

/* ---- header -------------------------------------------------------------- */

static void cpu_from(struct top_cpu *c, const struct vmw_cpu_percent *p)
{
	*c = (struct top_cpu){ .user = p->user, .nice = p->nice, .system = p->system, .idle = p->idle,
			       .iowait = p->iowait, .irq = p->irq, .softirq = p->softirq,
			       .steal = p->steal };
	c->busy = MIN(MAX(100 - c->idle - c->iowait, 0.0), 100.0);
}

/* What the frame's guest summary adds to the header. */
static void header_summary(struct top_header *h, const struct vmw_frame *f)
{
	const struct vmw_summary *sm = &f->summary;

	h->summary_ok = true;
	h->uptime_ok = sm->uptime_ns > 0;
	h->uptime_s = sm->uptime_ns / 1000000000u;
	top_sanitize(h->loadavg, sizeof(h->loadavg), sm->loadavg);
	if (!h->loadavg[0])
		vmw_summary_format_loadavg(sm->load, h->loadavg, sizeof(h->loadavg));
	h->load_ok = h->loadavg[0] != '\0';
	h->nr_running = sm->nr_running;

	if (sm->mem_total_kb) {
		h->mem_ok = h->swap_ok = true;
		h->mem_total = sm->mem_total_kb << 10;
		h->mem_free = sm->mem_free_kb << 10;
		h->mem_available = sm->mem_available_kb << 10;
		h->mem_buffers = sm->buffers_kb << 10;
		h->mem_cached = sm->cached_kb << 10;
		h->swap_total = sm->swap_total_kb << 10;
		h->swap_free = sm->swap_free_kb << 10;
	}

	/* Per-vCPU splits, parallel to summary.cpu (online vCPUs). */
	if (sm->cpu && sm->ncpus && vmw_report_cpu_split_valid(f)) {
		unsigned n = MIN(sm->ncpus, TOP_MAX_CPUS);
		cpu_from(&h->cpu_total, &f->cpu_total);
		for (unsigned i = 0; i < n; i++) {
			h->cpu_id[i] = sm->cpu[i].cpu;
			cpu_from(&h->cpu[i], &f->cpu[i]);
		}
		h->ncpus = n;
		h->cpu_ok = true;
	}
}

void top_header_fill(struct top_header *h, struct vmw_sampler *s, const char *target,
		     const struct vmw_frame *f)
{
	struct vmw_kernel *k = vmw_sampler_kernel(s);
	const struct vmw_kernel_info *ki = k ? vmw_kernel_info(k) : NULL;
	struct vmw_report_tasks t;

	memset(h, 0, sizeof(*h));
	h->target = target;
	h->ki = ki;
	h->mem = vmw_sampler_mem(s);
	if (ki)
		top_sanitize(h->release, sizeof(h->release), ki->release);
	h->wall_time_ns = f->wall_time_ns;
	h->procs_cpu_percent = f->cpu_percent_total;
	h->ncpus = f->summary_ok && f->summary.ncpus ? MIN(f->summary.ncpus, TOP_MAX_CPUS)
		 : ki && ki->nr_cpus ? MIN(ki->nr_cpus, TOP_MAX_CPUS) : 1;
	h->mem_total = f->mem_total_bytes;

	vmw_report_tasks_count(f, &t);
	h->tasks = t.total;
	h->threads = (unsigned)t.threads;
	h->kthreads = t.kernel_threads;
	h->running = t.by_class[VMW_TASK_RUNNING];
	h->sleeping = t.by_class[VMW_TASK_SLEEPING] + t.by_class[VMW_TASK_DISK_SLEEP] + t.by_class[VMW_TASK_IDLE];
	h->stopped = t.by_class[VMW_TASK_STOPPED];
	h->zombie = t.by_class[VMW_TASK_ZOMBIE];
	if (f->summary_ok)
		header_summary(h, f);
}

int top_parse_user(const char *s, uint32_t *ret)
{
	uint64_t v;

	if (vmw_parse_u64(s, &v) < 0 || v > UINT32_MAX - 1)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}
