/* SPDX-License-Identifier: MIT */
/*
 * stream.c - processes, frame samples and events as JSON text written
 * straight out, for listings of thousands of processes (ps --json, top
 * --json): the bytes json_dumpf(vmw_report_proc(p) / vmw_report_sample(x) /
 * vmw_report_event(e), JSON_COMPACT) prints, without building ~25-40
 * jansson values per process. Those functions stay the definition;
 * tests/unit/test_report.c checks that both print the same bytes for every
 * kind of value (invalid UTF-8, control characters, long arguments,
 * threads, containers, null and missing parts, NaN, infinities, huge and
 * tiny reals).
 *
 * jansson's compact form: no spaces; keys in insertion order (a key set
 * again keeps its place); integers as %lld of the json_int_t (int) the
 * object was packed with; strings as given when they are valid UTF-8, with
 * '"' '\\' and \b \f \n \r \t escaped and other bytes below 0x20 as \u00XX
 * (upper-case hex); vmw_report_string's fallback for invalid UTF-8; reals
 * as jsonp_dtostr prints them (put_real). json_real refuses NaN and the
 * infinities: a key set to one is left out, and a json_pack with one packs
 * nothing (the key it was for is left out).
 */
#include "report/report.h"
#include "report/report_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct out {
	char *p;
	size_t len, cap;
	bool oom;
	char stack[8192];
};

static void grow(struct out *o, size_t need)
{
	size_t nc = o->cap * 2 > o->len + need ? o->cap * 2 : o->len + need + 4096;
	char *n = o->p == o->stack ? malloc(nc) : realloc(o->p, nc);

	if (!n) {
		o->oom = true;
		return;
	}
	if (o->p == o->stack)
		memcpy(n, o->stack, o->len);
	o->p = n;
	o->cap = nc;
}

static inline void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap)
		grow(o, n);
	if (o->oom)
		return;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

/* "%lld" of v, without printf's machinery (tens of integers per process). */
static void put_ll(struct out *o, long long v)
{
	char buf[24], *e = buf + sizeof(buf), *s = e;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do {
		*--s = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--s = '-';
	put(o, s, (size_t)(e - s));
}

/*
 * A finite real as jansson 2.14's jsonp_dtostr writes it at the default
 * precision (json_dumps without JSON_REAL_PRECISION): "%.17g"; the
 * locale's decimal point back to '.'; ".0" appended when there is neither
 * a '.' nor an 'e'; the exponent without '+' and leading zeros
 * ("1e+300" -> "1e300", "1e-05" -> "1e-5"). Zero and small integers (most
 * rates of an idle process) skip printf: "%.17g" prints them as digits.
 */
static void put_real(struct out *o, double v)
{
	char buf[48], *e;
	size_t len;

	if (v == 0) {
		if (signbit(v))
			PUTS(o, "-0.0");
		else
			PUTS(o, "0.0");
		return;
	}
	if (fabs(v) < 1e15 && v == (double)(long long)v) {
		put_ll(o, (long long)v);
		PUTS(o, ".0");
		return;
	}
	len = (size_t)snprintf(buf, sizeof(buf), "%.17g", v);
	/* printf's output is digits, '-', '+', 'e' and the locale's decimal
	 * point: jansson puts a '.' where that point's first byte is. */
	for (char *c = buf; *c; c++)
		if (!((*c >= '0' && *c <= '9') || *c == '-' || *c == '+' || *c == 'e')) {
			*c = '.';
			break;
		}
	if (!strchr(buf, '.') && !strchr(buf, 'e')) {
		put(o, buf, len);
		PUTS(o, ".0");
		return;
	}
	if ((e = strchr(buf, 'e'))) {
		char *digits = e + 1, *p;
		if (*digits == '-' || *digits == '+')
			digits++;
		for (p = digits; *p == '0'; p++)   /* as jansson (glibc never prints "e+00") */
			;
		put(o, buf, (size_t)(e + 1 - buf));
		if (e[1] == '-')
			PUTS(o, "-");
		put(o, p, strlen(p));
		return;
	}
	put(o, buf, len);
}

/* A real where jansson's json_real would give no value (NaN, infinities):
 * the key is not set. */
static void put_real_key(struct out *o, const char *key_colon, size_t n, double v)
{
	if (!isfinite(v))
		return;
	put(o, key_colon, n);
	put_real(o, v);
}

#define REAL_KEY(o, lit, v) put_real_key((o), ",\"" lit "\":", sizeof(",\"" lit "\":") - 1, (v))

/* Length of the valid UTF-8 sequence at s (jansson's rules: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0], n, v;

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	v = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
	for (unsigned i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (n == 3 && v < 0x800) || (n == 4 && v < 0x10000))
		return 0;
	return n;
}

static bool utf8_valid(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = utf8_seq(p);
		if (!n)
			return false;
		p += n;
	}
	return true;
}

/* A valid UTF-8 string, quoted and escaped as jansson dumps it. */
static void put_escaped(struct out *o, const char *s)
{
	const char *run = s;

	PUTS(o, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		size_t n;

		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		put(o, run, (size_t)((const char *)p - run));
		switch (*p) {
		case '"': n = 2; memcpy(esc, "\\\"", 2); break;
		case '\\': n = 2; memcpy(esc, "\\\\", 2); break;
		case '\b': n = 2; memcpy(esc, "\\b", 2); break;
		case '\f': n = 2; memcpy(esc, "\\f", 2); break;
		case '\n': n = 2; memcpy(esc, "\\n", 2); break;
		case '\r': n = 2; memcpy(esc, "\\r", 2); break;
		case '\t': n = 2; memcpy(esc, "\\t", 2); break;
		default: n = (size_t)snprintf(esc, sizeof(esc), "\\u%04X", *p); break;
		}
		put(o, esc, n);
		run = (const char *)p + 1;
	}
	put(o, run, strlen(run));
	PUTS(o, "\"");
}

/* vmw_report_string: NULL is "", invalid UTF-8 keeps ASCII and replaces
 * every other byte with U+FFFD (at most ~1 KiB). */
static void put_string(struct out *o, const char *s)
{
	char buf[VMW_REPORT_FALLBACK_MAX];

	if (!s)
		s = "";
	if (utf8_valid(s)) {
		put_escaped(o, s);
		return;
	}
	vmw_report_utf8_fallback(s, buf);
	put_escaped(o, buf);
}

static void put_string_or_null(struct out *o, const char *s)
{
	if (s && *s)
		put_string(o, s);
	else
		PUTS(o, "null");
}

/* "s#" with length 1 of a state character: jansson refuses a byte that is
 * not UTF-8 by itself, and the whole object with it. */
static bool put_state(struct out *o, char state)
{
	char s[2] = { state, 0 };

	if ((unsigned char)state >= 0x80)
		return false;
	if (!state) {
		PUTS(o, "\"\\u0000\"");
		return true;
	}
	put_escaped(o, s);
	return true;
}

#define KEY(o, lit) PUTS(o, "\"" lit "\":")
#define INT(o, lit, v) do { KEY(o, lit); put_ll(o, (long long)(v)); PUTS(o, ","); } while (0)
#define INT_OR_NULL(o, lit, known, v) do { KEY(o, lit); \
		if (known) { put_ll(o, (long long)(v)); } else { PUTS(o, "null"); } \
		PUTS(o, ","); } while (0)
#define BOOL(o, lit, v) do { KEY(o, lit); if (v) PUTS(o, "true,"); else PUTS(o, "false,"); } while (0)

/* "comm":S,"state":C, of a process or thread; false where jansson packs
 * no object (the state byte). */
static bool put_comm_state(struct out *o, const char *comm, char state)
{
	KEY(o, "comm");
	put_string(o, comm);
	PUTS(o, ",");
	KEY(o, "state");
	if (!put_state(o, state))
		return false;
	PUTS(o, ",");
	return true;
}

/* The CPU times, nice and priority of a process or thread, in that order. */
static void put_times(struct out *o, uint64_t utime, uint64_t stime, uint64_t runtime, uint64_t start,
		      int32_t nice, int32_t prio)
{
	INT(o, "utime_ns", (long long)utime);
	INT(o, "stime_ns", (long long)stime);
	INT(o, "runtime_ns", (long long)runtime);
	INT(o, "start_time_ns", (long long)start);
	INT(o, "nice", (int)nice);
	INT(o, "priority", (int)prio);
}

/* A thread's object without its closing brace. */
static bool put_thread(struct out *o, const struct vmw_thread *t)
{
	PUTS(o, "{");
	INT(o, "tid", (int)t->tid);
	if (!put_comm_state(o, t->comm, t->state))
		return false;
	put_times(o, t->utime_ns, t->stime_ns, t->runtime_ns, t->start_time_ns, t->nice, t->prio);
	KEY(o, "cpu");
	put_ll(o, (int)t->cpu);
	return true;
}

/* As report.c's cgroups_v1_json. false: out of memory. */
static bool put_cgroups_v1(struct out *o, const char *v1)
{
	struct vmw_cgroup_v1_line *l;
	bool first = true;

	if (!v1 || !vmw_cgroup_v1_valid(v1)) {
		PUTS(o, "null");
		return true;
	}
	if (!(l = malloc(sizeof(*l))))
		return false;
	PUTS(o, "[");
	while (vmw_cgroup_v1_next(&v1, l)) {
		if (!first)
			PUTS(o, ",");
		PUTS(o, "{");
		first = false;
		INT(o, "hierarchy", l->id);
		KEY(o, "controllers");
		put_string(o, l->controllers);
		PUTS(o, ",");
		KEY(o, "path");
		put_string(o, l->path);
		PUTS(o, "}");
	}
	PUTS(o, "]");
	free(l);
	return true;
}

/*
 * vmw_report_proc's object without its closing brace. thread_cpu: NULL, or
 * vmw_report_sample's cpu_percent of each thread object in "tasks", by its
 * place in that array (a thread jansson could not pack takes none). false:
 * jansson would pack no object (or out of memory).
 */
static bool put_proc(struct out *o, const struct vmw_proc *p, const double *thread_cpu)
{
	struct vmw_cgroup_info cg;
	bool classified;

	PUTS(o, "{");
	INT(o, "pid", (int)p->pid);
	INT(o, "ppid", (int)p->ppid);
	if (!put_comm_state(o, p->comm, p->state))
		return false;
	INT(o, "uid", (int)p->uid);
	INT(o, "gid", (int)p->gid);
	INT(o, "euid", (int)p->euid);
	INT(o, "egid", (int)p->egid);
	INT(o, "threads", (int)p->nr_threads);
	put_times(o, p->utime_ns, p->stime_ns, p->runtime_ns, p->start_time_ns, p->nice, p->prio);
	INT(o, "rss_bytes", (long long)vmw_proc_rss_bytes(p));
	INT(o, "rss_anon_bytes", (long long)p->rss_anon_bytes);
	INT(o, "rss_file_bytes", (long long)p->rss_file_bytes);
	INT(o, "rss_shmem_bytes", (long long)p->rss_shmem_bytes);
	INT(o, "swap_bytes", (long long)p->swap_bytes);
	INT(o, "vsz_bytes", (long long)p->vsz_bytes);
	BOOL(o, "kthread", p->kthread);
	BOOL(o, "incomplete", p->incomplete);
	KEY(o, "user");
	put_string_or_null(o, p->user);
	PUTS(o, ",");
	KEY(o, "cgroup");
	if (p->cgroup)
		put_string(o, p->cgroup);
	else
		PUTS(o, "null");
	PUTS(o, ",");
	KEY(o, "cgroups_v1");
	if (!put_cgroups_v1(o, p->cgroups_v1))
		return false;
	PUTS(o, ",");
	KEY(o, "cgroup_memory_bytes");
	if (p->cgroup_memory_ok)
		put_ll(o, (long long)p->cgroup_memory_bytes);
	else
		PUTS(o, "null");
	PUTS(o, ",");
	INT_OR_NULL(o, "pgrp", p->jobctl_ok, p->pgrp);
	INT_OR_NULL(o, "session", p->jobctl_ok, p->session);
	INT_OR_NULL(o, "tty_nr", p->tty_ok, p->tty_nr);
	INT_OR_NULL(o, "tpgid", p->tty_ok, p->tpgid);
	classified = p->cgroup && vmw_cgroup_classify(p->cgroup, &cg);
	KEY(o, "unit");
	if (classified)
		put_string_or_null(o, cg.unit);
	else
		PUTS(o, "null");
	PUTS(o, ",");
	KEY(o, "slice");
	if (classified)
		put_string_or_null(o, cg.slice);
	else
		PUTS(o, "null");
	PUTS(o, ",");
	KEY(o, "container");
	if (classified && (cg.container_id[0] || cg.pod_uid[0])) {
		PUTS(o, "{\"runtime\":");
		put_string_or_null(o, cg.runtime);
		PUTS(o, ",\"id\":");
		put_string_or_null(o, cg.container_id);
		PUTS(o, ",\"pod_uid\":");
		put_string_or_null(o, cg.pod_uid);
		PUTS(o, "}");
	} else {
		PUTS(o, "null");
	}
	PUTS(o, ",");
	INT(o, "min_flt", (long long)p->min_flt);
	INT(o, "maj_flt", (long long)p->maj_flt);
	INT(o, "voluntary_ctxt_switches", (long long)p->nvcsw);
	INT(o, "nonvoluntary_ctxt_switches", (long long)p->nivcsw);
	KEY(o, "io");
	if (p->io_ok) {
		PUTS(o, "{");
		INT(o, "rchar", (long long)p->io_rchar);
		INT(o, "wchar", (long long)p->io_wchar);
		INT(o, "syscr", (long long)p->io_syscr);
		INT(o, "syscw", (long long)p->io_syscw);
		INT(o, "read_bytes", (long long)p->io_read_bytes);
		INT(o, "write_bytes", (long long)p->io_write_bytes);
		KEY(o, "cancelled_write_bytes");
		put_ll(o, (long long)p->io_cancelled_write_bytes);
		PUTS(o, "}");
	} else {
		PUTS(o, "null");
	}
	PUTS(o, ",");
	KEY(o, "cmdline");
	if (p->kthread) {
		PUTS(o, "[]");
	} else if (!p->cmdline) {
		PUTS(o, "null");
	} else {
		PUTS(o, "[");
		for (char **a = p->cmdline; *a; a++) {
			if (a != p->cmdline)
				PUTS(o, ",");
			put_string(o, *a);
		}
		PUTS(o, "]");
	}
	if (p->threads) {
		size_t k = 0;
		PUTS(o, ",\"tasks\":[");
		for (uint32_t j = 0; j < p->nthreads_listed; j++) {
			size_t mark = o->len;
			if (k)
				PUTS(o, ",");
			if (!put_thread(o, &p->threads[j])) {
				o->len = mark;   /* jansson drops a thread it cannot pack */
				continue;
			}
			if (thread_cpu)
				REAL_KEY(o, "cpu_percent", thread_cpu[k]);
			PUTS(o, "}");
			k++;
		}
		PUTS(o, "]");
	}
	return true;
}

static void out_init(struct out *o, const char *sep)
{
	o->p = o->stack;
	o->cap = sizeof(o->stack);
	o->len = 0;
	o->oom = false;
	put(o, sep, strlen(sep));
}

/* Write what o holds when ok and complete (nothing otherwise); frees it. */
static bool out_flush(struct out *o, bool ok, FILE *f)
{
	ok = ok && !o->oom && fwrite(o->p, 1, o->len, f) == o->len;
	if (o->p != o->stack)
		free(o->p);
	return ok;
}

bool vmw_report_proc_stream(FILE *f, const char *sep, const struct vmw_proc *p)
{
	struct out o;
	bool ok;

	out_init(&o, sep);
	if ((ok = put_proc(&o, p, NULL)))
		PUTS(&o, "}");
	return out_flush(&o, ok, f);
}

/* As report.c's sample_rates; io_rate is left out when a rate is not finite
 * (json_pack packs no object). */
static void put_rates(struct out *o, const struct vmw_sample *x)
{
	static const char *const io_keys[] = {
		",\"io_rate\":{\"rchar\":", ",\"wchar\":", ",\"syscr\":", ",\"syscw\":", ",\"read_bytes\":",
		",\"write_bytes\":",
	};
	const struct vmw_proc_rates *r = &x->rate;
	const double io[] = { r->rchar, r->wchar, r->syscr, r->syscw, r->read_bytes, r->write_bytes };
	size_t i;

	if (!x->proc.io_ok) {
		PUTS(o, ",\"io_rate\":null");
	} else {
		for (i = 0; i < 6 && isfinite(io[i]); i++)
			;
		for (size_t k = 0; i == 6 && k < 6; k++) {
			put(o, io_keys[k], strlen(io_keys[k]));
			put_real(o, io[k]);
		}
		if (i == 6)
			PUTS(o, "}");
	}
	REAL_KEY(o, "min_flt_rate", r->min_flt);
	REAL_KEY(o, "maj_flt_rate", r->maj_flt);
	REAL_KEY(o, "voluntary_ctxt_switches_rate", r->nvcsw);
	REAL_KEY(o, "nonvoluntary_ctxt_switches_rate", r->nivcsw);
}

bool vmw_report_sample_stream(FILE *f, const char *sep, const struct vmw_sample *x)
{
	struct out o;
	bool ok;

	out_init(&o, sep);
	if ((ok = put_proc(&o, &x->proc, x->thread_cpu_percent))) {
		REAL_KEY(&o, "cpu_percent", x->cpu_percent);
		REAL_KEY(&o, "mem_percent", x->mem_percent);
		PUTS(&o, ",\"rss_delta_bytes\":");
		put_ll(&o, (long long)x->rss_delta_bytes);
		if (x->is_new)
			PUTS(&o, ",\"new\":true");
		else
			PUTS(&o, ",\"new\":false");
		put_rates(&o, x);
		PUTS(&o, "}");
	}
	return out_flush(&o, ok, f);
}

bool vmw_report_event_stream(FILE *f, const char *sep, const struct vmw_event *e)
{
	struct out o;

	out_init(&o, sep);
	if (e->type == VMW_EVENT_NEW)
		PUTS(&o, "{\"type\":\"new\",");
	else
		PUTS(&o, "{\"type\":\"exit\",");
	INT(&o, "pid", (int)e->pid);
	KEY(&o, "comm");
	put_string(&o, e->comm);
	PUTS(&o, ",");
	INT(&o, "start_time_ns", (long long)e->start_time_ns);
	INT(&o, "runtime_ns", (long long)e->runtime_ns);
	INT(&o, "rss_bytes", (long long)e->rss_bytes);
	INT(&o, "vsz_bytes", (long long)e->vsz_bytes);
	KEY(&o, "pid_reused");
	if (e->pid_reused)
		PUTS(&o, "true}");
	else
		PUTS(&o, "false}");
	return out_flush(&o, true, f);
}

