/* SPDX-License-Identifier: MIT */
/*
 * ps_format.c - vmwatch ps's columns with procps' names, headers and
 * formulas (procps 4, ps/output.c):
 *   %CPU  lifetime CPU over elapsed time: (utime+stime in ticks) * 1000 / HZ
 *         / whole seconds since start, in tenths, "99.9" (no decimal above 99.9);
 *   %MEM  VmRSS * 1000 / MemTotal in tenths;
 *   ELAPSED [[DD-]hh:]mm:ss; TIME [DD-]hh:mm:ss; START hh:mm:ss when started
 *         within 24 h, else "Mmm dd"; STIME hh:mm today, Mmmdd this year, else YYYY.
 * Elapsed seconds are (/proc/uptime in centiseconds - starttime ticks) / 100,
 * truncated, exactly as ps computes them from the guest's /proc. Columns that
 * need the guest's clock or MemTotal print "-" when no summary was read.
 */
#include "cli/cli.h"
#include "cli/ps.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define HZ 100u                      /* USER_HZ: /proc's clock ticks */
#define NS_PER_TICK (1000000000ull / HZ)

struct ps_key {
	const char *name, *header;
	int width;
	bool left;
	bool guest_text;             /* guest strings: escaped when printed */
	bool tree;                   /* --forest / -H draw here */
	void (*fmt)(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size);
	double (*num)(const struct ps_ctx *c, const struct ps_row *r);  /* sort value; NULL: text */
};

/* snprintf(buf, size, "%lld", v) without printf: a listing formats some ten
 * numbers a row, and printf's machinery was a tenth of a whole `ps`. */
static void fmt_ll(char *buf, size_t size, long long v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	size_t n;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	n = MIN((size_t)(tmp + sizeof(tmp) - p), size - 1);
	memcpy(buf, p, n);
	buf[n] = '\0';
}

/* snprintf(buf, size, "%s", s) without printf. */
static void copy_text(char *buf, size_t size, const char *s)
{
	size_t n = strnlen(s, size - 1);
	memcpy(buf, s, n);
	buf[n] = '\0';
}

/* fprintf(out, left ? "%-*s" : "%*s", width, s) without printf. */
static void put_padded(FILE *out, const char *s, int width, bool left)
{
	static const char spaces[64] = "                                                               ";
	size_t len = strlen(s);
	size_t pad = width > 0 && (size_t)width > len ? (size_t)width - len : 0;

	if (left)
		fwrite(s, 1, len, out);
	for (size_t k; pad; pad -= k)
		fwrite(spaces, 1, k = MIN(pad, sizeof(spaces)), out);
	if (!left)
		fwrite(s, 1, len, out);
}

const char *ps_user_text(const struct vmw_proc *p, uint32_t uid, char *buf, size_t size)
{
	if (uid == p->euid && p->user[0])
		return cli_user_column(p, buf, size);
	fmt_ll(buf, size, uid);
	return buf;
}

static int32_t row_id(const struct ps_row *r) { return r->t ? r->t->tid : r->p->pid; }
static uint64_t row_start_ns(const struct ps_row *r) { return r->t ? r->t->start_time_ns : r->p->start_time_ns; }

/* utime + stime in ticks, each truncated as /proc/PID/stat prints them. */
static uint64_t row_ticks(const struct ps_row *r)
{
	uint64_t u = r->t ? r->t->utime_ns : r->p->utime_ns, s = r->t ? r->t->stime_ns : r->p->stime_ns;
	return u / NS_PER_TICK + s / NS_PER_TICK;
}

/* Whole seconds since the row started, as procps: uptime - starttime/HZ. */
static bool row_elapsed(const struct ps_ctx *c, const struct ps_row *r, uint64_t *secs)
{
	if (!c->sum)
		return false;
	uint64_t up = c->sum->uptime_ns / NS_PER_TICK, st = row_start_ns(r) / NS_PER_TICK;
	*secs = up > st ? (up - st) / HZ : 0;
	return true;
}

/* Scaled %CPU: 999 means 99.9 %. */
static bool row_pcpu(const struct ps_ctx *c, const struct ps_row *r, uint64_t *tenths)
{
	uint64_t secs;
	if (!row_elapsed(c, r, &secs))
		return false;
	*tenths = secs ? row_ticks(r) * 1000 / HZ / secs : 0;
	return true;
}

static bool row_pmem(const struct ps_ctx *c, const struct ps_row *r, uint64_t *tenths)
{
	if (!c->sum || !c->sum->mem_total_kb)
		return false;
	*tenths = MIN((vmw_proc_rss_bytes(r->p) >> 10) * 1000 / c->sum->mem_total_kb, 999);
	return true;
}

static void put_tenths(char *buf, size_t size, bool ok, uint64_t v)
{
	if (!ok)
		snprintf(buf, size, "-");
	else if (v > 999)
		snprintf(buf, size, "%llu", (unsigned long long)(v / 10));
	else
		snprintf(buf, size, "%llu.%llu", (unsigned long long)(v / 10), (unsigned long long)(v % 10));
}

static void f_pcpu(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	uint64_t v = 0;
	bool ok = row_pcpu(c, r, &v);
	put_tenths(buf, size, ok, v);
}

static double n_pcpu(const struct ps_ctx *c, const struct ps_row *r)
{
	uint64_t v = 0;
	return row_pcpu(c, r, &v) ? (double)v : -1;
}

static void f_pmem(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	uint64_t v = 0;
	bool ok = row_pmem(c, r, &v);
	put_tenths(buf, size, ok, v);
}

static double n_pmem(const struct ps_ctx *c, const struct ps_row *r)
{
	return (double)vmw_proc_rss_bytes(r->p);
}

static void f_etime(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	uint64_t t;
	if (!row_elapsed(c, r, &t)) {
		snprintf(buf, size, "-");
		return;
	}
	unsigned ss = (unsigned)(t % 60), mm = (unsigned)(t / 60 % 60), hh = (unsigned)(t / 3600 % 24);
	unsigned long long dd = t / 86400;
	if (dd)
		snprintf(buf, size, "%llu-%02u:%02u:%02u", dd, hh, mm, ss);
	else if (hh)
		snprintf(buf, size, "%02u:%02u:%02u", hh, mm, ss);
	else
		snprintf(buf, size, "%02u:%02u", mm, ss);
}

static void f_etimes(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	uint64_t t;
	if (row_elapsed(c, r, &t))
		snprintf(buf, size, "%llu", (unsigned long long)t);
	else
		snprintf(buf, size, "-");
}

static double n_start(const struct ps_ctx *c, const struct ps_row *r) { return (double)row_start_ns(r); }
static double n_etime(const struct ps_ctx *c, const struct ps_row *r) { return -(double)row_start_ns(r); }

/* When the row started, Unix time: btime + starttime / HZ. */
static bool row_started(const struct ps_ctx *c, const struct ps_row *r, time_t *t, time_t *now)
{
	if (!c->sum || !c->sum->boot_time_s)
		return false;
	*t = (time_t)(c->sum->boot_time_s + row_start_ns(r) / NS_PER_TICK / HZ);
	*now = (time_t)(c->sum->boot_time_s + c->sum->uptime_ns / 1000000000ull);
	return true;
}

static void f_start(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	time_t t, now;
	struct tm tm;
	if (!row_started(c, r, &t, &now) || !localtime_r(&t, &tm)) {
		snprintf(buf, size, "-");
		return;
	}
	if (t + 24 * 3600 > now)
		strftime(buf, size, "%H:%M:%S", &tm);
	else
		strftime(buf, size, "%b %d", &tm);
}

static void f_stime(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	time_t t, now;
	struct tm tm, tn;
	if (!row_started(c, r, &t, &now) || !localtime_r(&t, &tm) || !localtime_r(&now, &tn)) {
		snprintf(buf, size, "-");
		return;
	}
	if (tm.tm_year != tn.tm_year)
		strftime(buf, size, "%Y", &tm);
	else if (tm.tm_yday != tn.tm_yday)
		strftime(buf, size, "%b%d", &tm);
	else
		strftime(buf, size, "%H:%M", &tm);
}

static void f_lstart(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	time_t t, now;
	struct tm tm;
	if (!row_started(c, r, &t, &now) || !localtime_r(&t, &tm))
		snprintf(buf, size, "-");
	else
		strftime(buf, size, "%a %b %e %H:%M:%S %Y", &tm);
}

static void f_time(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	uint64_t s = row_ticks(r) / HZ;
	unsigned long long dd = s / 86400;
	unsigned hh = (unsigned)(s / 3600 % 24), mm = (unsigned)(s / 60 % 60), ss = (unsigned)(s % 60);
	if (dd)
		snprintf(buf, size, "%llu-%02u:%02u:%02u", dd, hh, mm, ss);
	else
		snprintf(buf, size, "%02u:%02u:%02u", hh, mm, ss);
}

static void f_times(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	snprintf(buf, size, "%llu", (unsigned long long)(row_ticks(r) / HZ));
}

static double n_time(const struct ps_ctx *c, const struct ps_row *r) { return (double)row_ticks(r); }

/* procps' STAT (ps/output.c pr_stat): the state, then < (nice < 0) or N
 * (nice > 0), s (session leader: session == tgid), l (multi-threaded) and
 * + (in its terminal's foreground process group: pgrp == tpgid). Threads
 * (-L) show their own state and nice, their process's s, l and +. */
void ps_stat_text(char state, int nice, const struct vmw_proc *p, char *buf, size_t size)
{
	char s[8];
	int n = 0;
	s[n++] = state;
	if (nice < 0)
		s[n++] = '<';
	else if (nice > 0)
		s[n++] = 'N';
	if (p->jobctl_ok && p->session == p->pid)
		s[n++] = 's';
	if (p->nr_threads > 1)
		s[n++] = 'l';
	if (p->jobctl_ok && p->tty_ok && p->pgrp == p->tpgid)
		s[n++] = '+';
	s[n] = '\0';
	copy_text(buf, size, s);
}

static void f_stat(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	ps_stat_text(r->t ? r->t->state : r->p->state, r->t ? r->t->nice : r->p->nice, r->p, buf, size);
}

/* Job control: "-" when the process model could not read it. */
static void put_id(char *buf, size_t size, bool ok, int32_t v)
{
	if (ok)
		snprintf(buf, size, "%d", (int)v);
	else
		snprintf(buf, size, "-");
}

static void f_sess(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	put_id(buf, size, r->p->jobctl_ok, r->p->session);
}

static void f_pgid(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	put_id(buf, size, r->p->jobctl_ok, r->p->pgrp);
}

static void f_tpgid(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	put_id(buf, size, r->p->tty_ok, r->p->tpgid);
}

static void f_tty(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	if (r->p->tty_ok)
		ps_tty_name(r->p->tty_nr, buf, size);
	else
		snprintf(buf, size, "-");
}

/* Unknown values sort first. */
static double n_sess(const struct ps_ctx *c, const struct ps_row *r) { return r->p->jobctl_ok ? r->p->session : -2; }
static double n_pgid(const struct ps_ctx *c, const struct ps_row *r) { return r->p->jobctl_ok ? r->p->pgrp : -2; }
static double n_tpgid(const struct ps_ctx *c, const struct ps_row *r) { return r->p->tty_ok ? r->p->tpgid : -2; }
static double n_tty(const struct ps_ctx *c, const struct ps_row *r) { return r->p->tty_ok ? (double)r->p->tty_nr : -1.0; }

/* The terminal's name as procps' TT column shows it (its /dev name without
 * "/dev/") for the drivers Linux numbers statically (devices.txt): virtual
 * consoles, serial ports, pseudo-terminals, hypervisor consoles; "?" for
 * none; MAJOR,MINOR for a device without a fixed name. */
const char *ps_tty_name(uint32_t tty_nr, char *buf, size_t size)
{
	/* /proc/PID/stat's encoding (new_encode_dev): minor in bits 0-7 and 20-31. */
	uint32_t major = (tty_nr >> 8) & 0xfff, minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);

	if (!tty_nr)
		snprintf(buf, size, "?");
	else if (major == 4 && minor < 64)
		snprintf(buf, size, "tty%u", minor);
	else if (major == 4)
		snprintf(buf, size, "ttyS%u", minor - 64);
	else if (major == 5 && minor <= 2)
		snprintf(buf, size, "%s", minor == 0 ? "tty" : minor == 1 ? "console" : "ptmx");
	else if (major >= 136 && major <= 143)
		snprintf(buf, size, "pts/%u", (major - 136) * 256 + minor);
	else if (major == 188)
		snprintf(buf, size, "ttyUSB%u", minor);
	else if (major == 229)
		snprintf(buf, size, "hvc%u", minor);
	else
		snprintf(buf, size, "%u,%u", major, minor);
	return buf;
}

static void f_state(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	char st[2] = { r->t ? r->t->state : r->p->state, '\0' };
	copy_text(buf, size, st);
}

static void args_text(const struct vmw_proc *p, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	if (!p->cmdline || !p->cmdline[0]) {
		snprintf(buf, size, "[%s]", p->comm);
		return;
	}
	for (char **a = p->cmdline; *a && n + 1 < size; a++) {
		int k = snprintf(buf + n, size - n, "%s%s", a == p->cmdline ? "" : " ", *a);
		if (k < 0)
			break;
		n += MIN((size_t)k, size - n - 1);
	}
}

static void f_args(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	args_text(r->p, buf, size);
}

static void f_comm(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	copy_text(buf, size, r->t ? r->t->comm : r->p->comm);
}

static void f_euser(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	ps_user_text(r->p, r->p->euid, buf, size);
}

static void f_ruser(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size)
{
	ps_user_text(r->p, r->p->uid, buf, size);
}

#define NUMBER(fn, expr) \
	static double n_##fn(const struct ps_ctx *c, const struct ps_row *r) { return (double)(expr); } \
	static void f_##fn(const struct ps_ctx *c, const struct ps_row *r, char *buf, size_t size) \
	{ fmt_ll(buf, size, (long long)(expr)); }
NUMBER(pid, r->p->pid)
NUMBER(ppid, r->p->ppid)
NUMBER(tid, row_id(r))
NUMBER(euid, r->p->euid)
NUMBER(ruid, r->p->uid)
NUMBER(egid, r->p->egid)
NUMBER(rgid, r->p->gid)
NUMBER(rss, vmw_proc_rss_bytes(r->p) >> 10)
NUMBER(vsz, r->p->vsz_bytes >> 10)
NUMBER(nlwp, r->p->nr_threads)
NUMBER(nice, r->t ? r->t->nice : r->p->nice)
NUMBER(prio, r->t ? r->t->prio : r->p->prio)
#undef NUMBER

static double n_euser(const struct ps_ctx *c, const struct ps_row *r) { return r->p->euid; }
static double n_ruser(const struct ps_ctx *c, const struct ps_row *r) { return r->p->uid; }

/* procps' names; several names of one column share its formatter. */
static const struct ps_key keys[] = {
	{ "pid", "PID", 7, false, false, false, f_pid, n_pid },
	{ "tgid", "TGID", 7, false, false, false, f_pid, n_pid },
	{ "ppid", "PPID", 7, false, false, false, f_ppid, n_ppid },
	{ "tid", "TID", 7, false, false, false, f_tid, n_tid },
	{ "lwp", "LWP", 7, false, false, false, f_tid, n_tid },
	{ "spid", "SPID", 7, false, false, false, f_tid, n_tid },
	{ "uid", "UID", 5, false, false, false, f_euid, n_euid },
	{ "euid", "EUID", 5, false, false, false, f_euid, n_euid },
	{ "ruid", "RUID", 5, false, false, false, f_ruid, n_ruid },
	{ "gid", "GID", 5, false, false, false, f_egid, n_egid },
	{ "egid", "EGID", 5, false, false, false, f_egid, n_egid },
	{ "rgid", "RGID", 5, false, false, false, f_rgid, n_rgid },
	{ "user", "USER", 8, true, false, false, f_euser, n_euser },
	{ "euser", "EUSER", 8, true, false, false, f_euser, n_euser },
	{ "uname", "USER", 8, true, false, false, f_euser, n_euser },
	{ "ruser", "RUSER", 8, true, false, false, f_ruser, n_ruser },
	{ "pcpu", "%CPU", 4, false, false, false, f_pcpu, n_pcpu },
	{ "%cpu", "%CPU", 4, false, false, false, f_pcpu, n_pcpu },
	{ "pmem", "%MEM", 4, false, false, false, f_pmem, n_pmem },
	{ "%mem", "%MEM", 4, false, false, false, f_pmem, n_pmem },
	{ "rss", "RSS", 8, false, false, false, f_rss, n_rss },
	{ "rssize", "RSS", 8, false, false, false, f_rss, n_rss },
	{ "rsz", "RSZ", 8, false, false, false, f_rss, n_rss },
	{ "vsz", "VSZ", 9, false, false, false, f_vsz, n_vsz },
	{ "vsize", "VSZ", 9, false, false, false, f_vsz, n_vsz },
	{ "stat", "STAT", 4, true, false, false, f_stat, NULL },
	{ "s", "S", 1, true, false, false, f_state, NULL },
	{ "sid", "SID", 7, false, false, false, f_sess, n_sess },
	{ "sess", "SESS", 7, false, false, false, f_sess, n_sess },
	{ "session", "SESS", 7, false, false, false, f_sess, n_sess },
	{ "pgid", "PGID", 7, false, false, false, f_pgid, n_pgid },
	{ "pgrp", "PGRP", 7, false, false, false, f_pgid, n_pgid },
	{ "tpgid", "TPGID", 7, false, false, false, f_tpgid, n_tpgid },
	{ "tty", "TT", 8, true, false, false, f_tty, n_tty },
	{ "tt", "TT", 8, true, false, false, f_tty, n_tty },
	{ "tname", "TTY", 8, true, false, false, f_tty, n_tty },
	{ "state", "S", 1, true, false, false, f_state, NULL },
	{ "nlwp", "NLWP", 4, false, false, false, f_nlwp, n_nlwp },
	{ "thcount", "THCNT", 5, false, false, false, f_nlwp, n_nlwp },
	{ "ni", "NI", 3, false, false, false, f_nice, n_nice },
	{ "nice", "NI", 3, false, false, false, f_nice, n_nice },
	{ "priority", "PRI", 3, false, false, false, f_prio, n_prio },
	{ "etime", "ELAPSED", 11, false, false, false, f_etime, n_etime },
	{ "etimes", "ELAPSED", 7, false, false, false, f_etimes, n_etime },
	{ "start", "STARTED", 8, false, false, false, f_start, n_start },
	{ "stime", "STIME", 5, false, false, false, f_stime, n_start },
	{ "start_time", "START", 5, false, false, false, f_stime, n_start },
	{ "lstart", "STARTED", 24, true, false, false, f_lstart, n_start },
	{ "time", "TIME", 10, false, false, false, f_time, n_time },
	{ "cputime", "TIME", 10, false, false, false, f_time, n_time },
	{ "cputimes", "TIME", 7, false, false, false, f_times, n_time },
	{ "times", "TIME", 7, false, false, false, f_times, n_time },
	{ "args", "COMMAND", 27, true, true, true, f_args, NULL },
	{ "command", "COMMAND", 27, true, true, true, f_args, NULL },
	{ "cmd", "CMD", 27, true, true, true, f_args, NULL },
	{ "comm", "COMMAND", 15, true, true, true, f_comm, NULL },
	{ "ucmd", "CMD", 15, true, true, true, f_comm, NULL },
	{ "ucomm", "COMMAND", 15, true, true, true, f_comm, NULL },
};

static const struct ps_key *key_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strlen(keys[i].name) == len && !strncasecmp(keys[i].name, name, len))
			return &keys[i];
	return NULL;
}

static int unknown(const char *what, const char *name, size_t len, char *err, size_t errsize)
{
	snprintf(err, errsize, "unknown %s '%.*s' (procps names: pid, ppid, user, uid, pcpu, pmem, rss, "
		 "vsz, stat, nlwp, sid, pgid, tpgid, tty, etime, start, stime, time, args, comm, cmd, ...; "
		 "see vmwatch(1))",
		 what, (int)MIN(len, 64), name);
	return -EINVAL;
}

/* "pid,user=WHO,args": a header after '=' runs to the next comma. */
int ps_format_add(struct ps_format *f, const char *spec, char *err, size_t errsize)
{
	const char *s = spec;
	while (*s) {
		size_t len = strcspn(s, ",= \t");
		const struct ps_key *k = key_find(s, len);
		struct ps_col *cols;
		if (!len || !k)
			return unknown("column", s, len, err, errsize);
		if (!(cols = realloc(f->cols, (f->ncols + 1) * sizeof(*cols))))
			return -ENOMEM;
		f->cols = cols;
		cols[f->ncols].key = k;
		snprintf(cols[f->ncols].header, sizeof(cols[f->ncols].header), "%s", k->header);
		s += len;
		if (*s == '=') {
			size_t hl = strcspn(s + 1, ",");
			snprintf(cols[f->ncols].header, sizeof(cols[f->ncols].header), "%.*s", (int)MIN(hl, 63), s + 1);
			s += 1 + hl;
		}
		f->ncols++;
		s += strspn(s, ", \t");
	}
	return 0;
}

void ps_format_free(struct ps_format *f)
{
	free(f->cols);
	f->cols = NULL;
	f->ncols = 0;
}

static bool key_needs_summary(const struct ps_key *k)
{
	return k->fmt == f_pcpu || k->fmt == f_pmem || k->fmt == f_etime || k->fmt == f_etimes ||
	       k->fmt == f_start || k->fmt == f_stime || k->fmt == f_lstart;
}

bool ps_needs_summary(const struct ps_format *f, const struct ps_sort *s)
{
	for (size_t i = 0; i < f->ncols; i++)
		if (key_needs_summary(f->cols[i].key))
			return true;
	for (size_t i = 0; i < s->n; i++)
		if (key_needs_summary(s->k[i].key))
			return true;
	return false;
}

static int col_width(const struct ps_col *c)
{
	int w = (int)strlen(c->header);
	return w > c->key->width ? w : c->key->width;
}

void ps_print_header(const struct ps_format *f, FILE *out)
{
	bool any = false;
	for (size_t i = 0; i < f->ncols; i++)
		any |= f->cols[i].header[0] != '\0';
	if (!any)
		return;                 /* every header empty (-o pid=): none, as procps */
	for (size_t i = 0; i < f->ncols; i++) {
		const struct ps_col *c = &f->cols[i];
		bool last = i + 1 == f->ncols;
		if (i)
			putc(' ', out);
		if (c->key->left && last)
			fputs(c->header, out);
		else
			put_padded(out, c->header, col_width(c), c->key->left);
	}
	putc('\n', out);
}

/* procps' tree: "    " per generation above the parent, then " \\_ ". */
static void put_tree(const struct ps_format *f, const struct ps_row *r, FILE *out, int *used)
{
	if (!f->forest && !f->indent)
		return;
	for (int d = 0; d < r->depth; d++) {
		fputs(!f->forest ? "  " : d + 1 == r->depth ? " \\_ " : "    ", out);
		*used += f->forest ? 4 : 2;
	}
}

void ps_print_row(const struct ps_format *f, const struct ps_ctx *ctx, const struct ps_row *r, FILE *out)
{
	static char buf[65536];
	for (size_t i = 0; i < f->ncols; i++) {
		const struct ps_col *c = &f->cols[i];
		bool last = i + 1 == f->ncols;
		int used = 0;
		if (i)
			putc(' ', out);
		c->key->fmt(ctx, r, buf, sizeof(buf));
		if (!c->key->guest_text) {
			if (c->key->left && last)
				fputs(buf, out);
			else
				put_padded(out, buf, col_width(c), c->key->left);
			continue;
		}
		/* Guest strings never reach the terminal unescaped. */
		if (c->key->tree)
			put_tree(f, r, out, &used);
		vmw_text_fputs(buf, out);
		used += (int)strlen(buf);
		for (; !last && used < col_width(c); used++)
			putc(' ', out);
	}
	putc('\n', out);
}

int ps_sort_add(struct ps_sort *s, const char *spec, char *err, size_t errsize)
{
	while (*spec) {
		bool desc = *spec == '-';
		if (*spec == '-' || *spec == '+')
			spec++;
		size_t len = strcspn(spec, ", ");
		const struct ps_key *k = key_find(spec, len);
		if (!len || !k)
			return unknown("sort key", spec, len, err, errsize);
		if (s->n == ARRAY_SIZE(s->k)) {
			snprintf(err, errsize, "too many sort keys (at most %zu)", ARRAY_SIZE(s->k));
			return -EINVAL;
		}
		s->k[s->n].key = k;
		s->k[s->n++].desc = desc;
		spec += len;
		spec += strspn(spec, ", ");
	}
	return 0;
}

static const struct ps_sort *sort_by;
static const struct ps_ctx *sort_ctx;

static int row_cmp(const void *a, const void *b)
{
	const struct ps_row *x = a, *y = b;
	static char bx[4096], by[4096];
	for (size_t i = 0; i < sort_by->n; i++) {
		const struct ps_key *k = sort_by->k[i].key;
		int r;
		if (k->num) {
			double vx = k->num(sort_ctx, x), vy = k->num(sort_ctx, y);
			r = vx < vy ? -1 : vx > vy;
		} else {
			k->fmt(sort_ctx, x, bx, sizeof(bx));
			k->fmt(sort_ctx, y, by, sizeof(by));
			r = strcmp(bx, by);
		}
		if (r)
			return sort_by->k[i].desc ? -r : r;
	}
	/* Ties keep the task list's order (qsort is not stable). */
	return x->order < y->order ? -1 : x->order > y->order;
}

void ps_sort_rows(const struct ps_sort *s, const struct ps_ctx *c, struct ps_row *rows, size_t n)
{
	if (!s->n)
		return;
	sort_by = s;
	sort_ctx = c;
	qsort(rows, n, sizeof(*rows), row_cmp);
}
