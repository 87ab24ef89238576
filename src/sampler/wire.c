/* SPDX-License-Identifier: MIT */
/*
 * wire.c - a frame as bytes, and back: how a privilege-separated sampler
 * process hands its frames to the process that serves them (src/agent).
 *
 * Both ends are the same build (the format starts with the sizes of the
 * structures it carries, and a mismatch is refused), so fixed parts are the
 * structures' own bytes with every pointer cleared. Whatever comes in is
 * treated like guest memory: the sender parsed a hostile guest and may be
 * under its control. The decoder never trusts a count beyond the bytes that
 * are actually there, terminates every string, turns every bool into 0/1,
 * every non-finite number into 0, and rebuilds the invariants the rest of
 * the agent relies on (argv NULL-terminated, thread and CPU arrays as long
 * as their counts say).
 */
#include "sampler/sampler.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define WIRE_MAGIC 0x464d5756u  /* "VMWF" */
#define WIRE_VERSION 5u   /* 3: job control (pgrp, session, tty_nr, tpgid); 4: the cgroup block;
			   * 5: each process's cgroup v1 lines */
#define NO_STRING UINT32_MAX

struct wire_header {
	uint32_t magic, version;
	uint32_t frame_size, sample_size, thread_size, event_size, cpu_stat_size, cpu_pct_size;
	uint32_t cgroup_size;
};

static const struct wire_header header = {
	.magic = WIRE_MAGIC, .version = WIRE_VERSION,
	.frame_size = sizeof(struct vmw_frame), .sample_size = sizeof(struct vmw_sample),
	.thread_size = sizeof(struct vmw_thread), .event_size = sizeof(struct vmw_event),
	.cpu_stat_size = sizeof(struct vmw_cpu_stat), .cpu_pct_size = sizeof(struct vmw_cpu_percent),
	.cgroup_size = sizeof(struct vmw_cgroup_stat),
};

/* ---------------------------------------------------------------- encoding */

/* Where encoded bytes go: a buffer that grows (vmw_frame_encode), a fixed
 * buffer flushed to a sink whenever it fills (vmw_frame_stream: the sampler
 * never holds a whole encoded frame), or nowhere, only counted (the size
 * the sampler announces before the bytes). The same put() calls drive all
 * three, so the bytes and the count cannot disagree. */
struct out {
	uint8_t *buf;
	size_t len, cap;
	bool oom;                  /* or the sink failed: err */
	int err;
	uint64_t total;            /* bytes put */
	bool count_only;
	vmw_frame_sink *sink;      /* NULL: buf grows */
	void *opaque;
};

static void flush(struct out *o)
{
	int r;

	if (o->oom || !o->len)
		return;
	if ((r = o->sink(o->opaque, o->buf, o->len)) < 0) {
		o->oom = true;
		o->err = r;
	}
	o->len = 0;
}

static void put(struct out *o, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (o->oom || !n)
		return;
	o->total += n;
	if (o->count_only)
		return;
	if (o->sink) {
		while (n && !o->oom) {
			size_t k = MIN(n, o->cap - o->len);
			memcpy(o->buf + o->len, b, k);
			o->len += k;
			b += k;
			n -= k;
			if (o->len == o->cap)
				flush(o);
		}
		return;
	}
	if (o->cap - o->len < n) {
		size_t cap = MAX(o->cap ? o->cap : 65536, o->len + n);
		uint8_t *nb;
		while (cap < o->len + n || cap < o->cap * 2)
			cap *= 2;
		if (!(nb = realloc(o->buf, cap))) {
			o->oom = true;
			o->err = -ENOMEM;
			return;
		}
		o->buf = nb;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, b, n);
	o->len += n;
}

static void put_u32(struct out *o, uint32_t v) { put(o, &v, sizeof(v)); }

/* A string as its length and bytes; NULL as NO_STRING. */
static void put_string(struct out *o, const char *str)
{
	if (!str) {
		put_u32(o, NO_STRING);
	} else {
		size_t n = MIN(strlen(str), (size_t)UINT32_MAX - 1);
		put_u32(o, (uint32_t)n);
		put(o, str, n);
	}
}

static void put_proc_vars(struct out *o, const struct vmw_sample *s)
{
	const struct vmw_proc *p = &s->proc;
	uint32_t argc = 0;

	if (!p->cmdline) {
		put_u32(o, NO_STRING);
	} else {
		while (p->cmdline[argc])
			argc++;
		put_u32(o, argc);
		for (uint32_t i = 0; i < argc; i++) {
			size_t n = strlen(p->cmdline[i]);
			put_u32(o, (uint32_t)MIN(n, (size_t)UINT32_MAX - 1));
			put(o, p->cmdline[i], MIN(n, (size_t)UINT32_MAX - 1));
		}
	}
	put_string(o, p->cgroup);
	/* ---- version 5: the cgroup v1 lines (vmw_proc.cgroups_v1), a string */
	put_string(o, p->cgroups_v1);
	put_u32(o, p->threads ? p->nthreads_listed : 0);
	if (p->threads) {
		put(o, p->threads, (size_t)p->nthreads_listed * sizeof(*p->threads));
		put_u32(o, s->thread_cpu_percent ? 1 : 0);
		if (s->thread_cpu_percent)
			put(o, s->thread_cpu_percent, (size_t)p->nthreads_listed * sizeof(double));
	}
}

/* ---- the cgroup block: the tree (each cgroup's fixed part, its path) and
 * its %CPU, after the CPUs ---- */
static void put_cgroups(struct out *o, const struct vmw_frame *f)
{
	size_t n = f->cgroups_ok ? f->cgroups.n : 0;

	put_u32(o, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		struct vmw_cgroup_stat c = f->cgroups.cg[i];
		size_t len = MIN(strlen(c.path), (size_t)UINT32_MAX - 1);
		c.path = NULL;
		put(o, &c, sizeof(c));
		put_u32(o, (uint32_t)len);
		put(o, f->cgroups.cg[i].path, len);
	}
	put(o, f->cgroup_cpu_percent, n * sizeof(double));
}

/* Every byte of f, in order. Each process's fixed part is copied with its
 * pointers cleared (never the frame's own memory changed). */
static void put_frame(struct out *o, const struct vmw_frame *f)
{
	struct vmw_frame fx;
	struct vmw_sample sx;
	unsigned ncpus = f->summary.cpu ? f->summary.ncpus : 0;

	memcpy(&fx, f, sizeof(fx));
	fx.procs = NULL;
	fx.cmdlines_in_procs = false;
	fx.events = NULL;
	fx.cpu = NULL;
	fx.summary.cpu = NULL;
	fx.cgroups.cg = NULL;
	fx.cgroup_cpu_percent = NULL;
	put(o, &header, sizeof(header));
	put(o, &fx, sizeof(fx));
	for (size_t i = 0; i < f->nprocs; i++) {
		if (o->count_only) {       /* the fixed part's size, not a copy of it */
			put(o, &f->procs[i], sizeof(sx));
			put_proc_vars(o, &f->procs[i]);
			continue;
		}
		memcpy(&sx, &f->procs[i], sizeof(sx));
		sx.proc.cmdline = NULL;
		sx.proc.cgroup = NULL;
		sx.proc.cgroups_v1 = NULL;
		sx.proc.threads = NULL;
		sx.thread_cpu_percent = NULL;
		put(o, &sx, sizeof(sx));
		put_proc_vars(o, &f->procs[i]);
	}
	put(o, f->events, f->nevents * sizeof(*f->events));
	put_u32(o, ncpus);
	put(o, f->summary.cpu, (size_t)ncpus * sizeof(*f->summary.cpu));
	put_u32(o, f->cpu && ncpus ? 1 : 0);
	if (f->cpu && ncpus)
		put(o, f->cpu, (size_t)ncpus * sizeof(*f->cpu));
	put_cgroups(o, f);
}

int vmw_frame_encode(const struct vmw_frame *f, uint8_t **ret, size_t *ret_len)
{
	struct out o = { 0 };

	put_frame(&o, f);
	if (o.oom) {
		free(o.buf);
		return -ENOMEM;
	}
	*ret = o.buf;
	*ret_len = o.len;
	return 0;
}

uint64_t vmw_frame_encoded_size(const struct vmw_frame *f)
{
	struct out o = { .count_only = true };

	put_frame(&o, f);
	return o.total;
}

int vmw_frame_stream(const struct vmw_frame *f, uint8_t *buf, size_t cap, size_t used, vmw_frame_sink *sink,
		     void *opaque)
{
	struct out o = { .buf = buf, .len = used, .cap = cap, .sink = sink, .opaque = opaque };

	if (!cap || used > cap)
		return -EINVAL;
	if (used == cap)
		flush(&o);
	put_frame(&o, f);
	flush(&o);
	return o.oom ? o.err : 0;
}

/* ---------------------------------------------------------------- decoding */

/* The strings of one kind a frame decoded as vmw_rcstr last used: processes
 * of one cgroup share its text as they do in the sampler (one allocation per
 * cgroup, not one per process; the frame's references all belong to it). */
#define SHARED_RECENT 8

struct shared_recent {
	char *s[SHARED_RECENT];        /* most recently used first; owned by the frame's processes */
	uint32_t len[SHARED_RECENT];
};

/* s (of len bytes) becomes the most recently used, from slot i (the last
 * slot: a new one, the least recently used dropped). */
static void recent_use(struct shared_recent *r, unsigned i, char *s, uint32_t len)
{
	memmove(&r->s[1], &r->s[0], i * sizeof(r->s[0]));
	memmove(&r->len[1], &r->len[0], i * sizeof(r->len[0]));
	r->s[0] = s;
	r->len[0] = len;
}

struct in {
	const uint8_t *p;
	size_t left;
	struct shared_recent cgroup, cgroups_v1;
	/* The rest of the frame's block (decode): where command lines go. */
	uint8_t *blk;
	size_t blk_left;
};

static bool take(struct in *in, void *dst, size_t n)
{
	if (n > in->left)
		return false;
	if (n)
		memcpy(dst, in->p, n);
	in->p += n;
	in->left -= n;
	return true;
}

static bool take_u32(struct in *in, uint32_t *v) { return take(in, v, sizeof(*v)); }

/* At most what the remaining bytes can hold of elements of size sz. */
static bool count_fits(const struct in *in, uint64_t n, size_t sz)
{
	return sz && n <= in->left / sz;
}

/* A bool whose byte may be anything: read it as a byte, store 0 or 1. */
#define FIX_BOOL(field)                                   \
	do {                                              \
		unsigned char b_;                         \
		memcpy(&b_, &(field), 1);                 \
		(field) = b_ != 0;                        \
	} while (0)

#define FIX_STR(arr) ((arr)[sizeof(arr) - 1] = '\0')

static double finite_or_zero(double v)
{
	return isfinite(v) ? v : 0.0;
}

static void fix_cpu_percent(struct vmw_cpu_percent *c)
{
	double *v[] = { &c->user, &c->nice, &c->system, &c->idle, &c->iowait, &c->irq, &c->softirq, &c->steal };
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		*v[i] = finite_or_zero(*v[i]);
}

static int bad(struct vmw_error *err, const char *what)
{
	return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG, "malformed frame from the sampler: %s", what);
}

static bool skip(struct in *in, size_t n)
{
	if (n > in->left)
		return false;
	in->p += n;
	in->left -= n;
	return true;
}

/* What a command line of argc arguments and bytes of text (each with its
 * NUL) takes in a frame's block: the pointers, the text, rounded up for the
 * next one's pointers. Both are bounded by the frame's length. */
static size_t argv_size(uint32_t argc, size_t bytes)
{
	return ((size_t)argc + 1) * sizeof(char *) + ((bytes + 7) & ~(size_t)7);
}

/* A command line: argc (NO_STRING: none), then each argument's length and
 * bytes. Its size in the block, with *in past it; false when malformed. */
static bool skip_cmdline(struct in *in, size_t *size)
{
	uint32_t argc, len;
	size_t bytes = 0;

	*size = 0;
	if (!take_u32(in, &argc))
		return false;
	if (argc == NO_STRING)
		return true;
	/* Every argument takes at least its 4-byte length. */
	if (!count_fits(in, argc, sizeof(uint32_t)))
		return false;
	for (uint32_t i = 0; i < argc; i++) {
		if (!take_u32(in, &len) || !skip(in, len))
			return false;
		bytes += (size_t)len + 1;
	}
	*size = argv_size(argc, bytes);
	return true;
}

/* Decoded into the frame's block (its room counted by size_block): the
 * argument pointers, then their text, each piece checked against the room
 * left (a command line the block has no room for refuses the frame). */
static bool take_cmdline(struct in *in, struct vmw_proc *p)
{
	uint32_t argc, len;
	size_t ptrs, used;
	char *text;

	if (!take_u32(in, &argc))
		return false;
	if (argc == NO_STRING)
		return true;
	if (!count_fits(in, argc, sizeof(uint32_t)))
		return false;
	ptrs = ((size_t)argc + 1) * sizeof(char *);
	if (ptrs > in->blk_left)
		return false;
	p->cmdline = (char **)(void *)in->blk;
	text = (char *)in->blk + ptrs;
	used = ptrs;
	for (uint32_t i = 0; i < argc; i++) {
		if (!take_u32(in, &len) || len >= in->blk_left - used || !take(in, text, len)) {
			p->cmdline[i] = NULL;
			return false;
		}
		p->cmdline[i] = text;
		text[len] = '\0';
		text += (size_t)len + 1;
		used += (size_t)len + 1;
	}
	p->cmdline[argc] = NULL;
	used = ptrs + (((used - ptrs) + 7) & ~(size_t)7);
	if (used > in->blk_left)
		return false;
	in->blk += used;
	in->blk_left -= used;
	return true;
}

/* A string: a u32 length (NO_STRING: none, *ret untouched) and its bytes,
 * copied by make (malloc'd or a vmw_rcstr) with a NUL; with recent (make
 * is vmw_rcstr_new), another reference to the same bytes decoded lately.
 * A copy is refused unless valid() says yes (NULL: any text); a reference
 * to a recent one is not checked again: only valid ones were kept. */
static bool take_string_as(struct in *in, char **ret, char *(*make)(const char *s, size_t len),
			   struct shared_recent *recent, bool (*valid)(const char *s))
{
	bool shared = false;
	uint32_t len;

	if (!take_u32(in, &len))
		return false;
	if (len == NO_STRING)
		return true;
	if (len > in->left)
		return false;
	for (unsigned i = 0; recent && i < SHARED_RECENT && recent->s[i]; i++)
		if (recent->len[i] == len && !memcmp(recent->s[i], in->p, len)) {
			*ret = vmw_rcstr_ref(recent->s[i]);
			recent_use(recent, i, *ret, len);
			shared = true;
			break;
		}
	if (!shared) {
		char *copy = make((const char *)in->p, len);
		if (!copy)
			return false;
		if (valid && !valid(copy)) {
			/* The frame is refused here: nothing decodes after this. */
			if (recent)
				vmw_rcstr_unref(copy);
			else
				free(copy);
			return false;
		}
		*ret = copy;
		if (recent)
			recent_use(recent, SHARED_RECENT - 1, copy, len);
	}
	in->p += len;
	in->left -= len;
	return true;
}

static bool take_string(struct in *in, char **ret)
{
	return take_string_as(in, ret, strndup, NULL, NULL);
}

/* A string as a vmw_rcstr (a process's cgroup texts, see linux.h). */
static bool take_rcstring(struct in *in, char **ret, struct shared_recent *recent)
{
	return take_string_as(in, ret, vmw_rcstr_new, recent, NULL);
}

/* ---- version 5: the cgroup v1 lines; text that does not read as
 * "ID:controllers:path" lines refuses the frame (checked once per distinct
 * text: most processes share their lines with the one before). */
static bool take_cgroups_v1(struct in *in, struct vmw_proc *p)
{
	return take_string_as(in, &p->cgroups_v1, vmw_rcstr_new, &in->cgroups_v1, vmw_cgroup_v1_valid);
}

/* A user name is printable ASCII (src/linux checks it when it parses the
 * guest's /etc/passwd, and text front ends print it as is): else none. */
static void fix_user(char *user, size_t size)
{
	user[size - 1] = '\0';
	for (const char *c = user; *c; c++)
		if (*c < 0x21 || *c > 0x7e) {
			user[0] = '\0';
			return;
		}
}

static bool take_threads(struct in *in, struct vmw_sample *s)
{
	struct vmw_proc *p = &s->proc;
	uint32_t n, has_pct;

	if (!take_u32(in, &n))
		return false;
	if (!n)
		return true;
	if (!count_fits(in, n, sizeof(*p->threads)) || !(p->threads = calloc(n, sizeof(*p->threads))))
		return false;
	take(in, p->threads, (size_t)n * sizeof(*p->threads));
	p->nthreads_listed = n;
	for (uint32_t i = 0; i < n; i++)
		FIX_STR(p->threads[i].comm);
	if (!take_u32(in, &has_pct))
		return false;
	if (!has_pct)
		return true;
	if (!count_fits(in, n, sizeof(double)) || !(s->thread_cpu_percent = calloc(n, sizeof(double))))
		return false;
	take(in, s->thread_cpu_percent, (size_t)n * sizeof(double));
	for (uint32_t i = 0; i < n; i++)
		s->thread_cpu_percent[i] = finite_or_zero(s->thread_cpu_percent[i]);
	return true;
}

/* The block a frame's nprocs process records take decoded: the samples,
 * then every command line (one allocation per frame: a process costs no
 * malloc or free of its own). A first pass over the records; false when
 * one does not parse. The size is bounded by the frame's length: a sample
 * takes its own size on the wire, a command line at most 2.25 times its. */
static bool size_block(struct in in, size_t nprocs, size_t *ret)
{
	size_t total = nprocs * sizeof(struct vmw_sample), size;
	uint32_t n, len, has_pct;

	for (size_t i = 0; i < nprocs; i++) {
		if (!skip(&in, sizeof(struct vmw_sample)) || !skip_cmdline(&in, &size))
			return false;
		total += size;
		for (int k = 0; k < 2; k++)     /* the cgroup v2 path, the v1 lines */
			if (!take_u32(&in, &len) || (len != NO_STRING && !skip(&in, len)))
				return false;
		if (!take_u32(&in, &n))
			return false;
		if (!n)
			continue;
		if (!count_fits(&in, n, sizeof(struct vmw_thread)) ||
		    !skip(&in, (size_t)n * sizeof(struct vmw_thread)) || !take_u32(&in, &has_pct) ||
		    (has_pct && (!count_fits(&in, n, sizeof(double)) || !skip(&in, (size_t)n * sizeof(double)))))
			return false;
	}
	*ret = total;
	return true;
}

/* Rates are finite and never negative. */
static void fix_rates(struct vmw_proc_rates *r)
{
	double *v[] = { &r->rchar, &r->wchar, &r->syscr, &r->syscw, &r->read_bytes, &r->write_bytes,
			&r->min_flt, &r->maj_flt, &r->nvcsw, &r->nivcsw };
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		*v[i] = *v[i] > 0 ? finite_or_zero(*v[i]) : 0.0;
}

static bool take_sample(struct in *in, struct vmw_sample *s)
{
	if (!take(in, s, sizeof(*s)))
		return false;
	s->proc.cmdline = NULL;
	s->proc.cgroup = NULL;
	s->proc.cgroups_v1 = NULL;
	s->proc.threads = NULL;
	s->proc.nthreads_listed = 0;
	s->thread_cpu_percent = NULL;
	FIX_STR(s->proc.comm);
	fix_user(s->proc.user, sizeof(s->proc.user));
	FIX_BOOL(s->proc.kthread);
	FIX_BOOL(s->proc.incomplete);
	FIX_BOOL(s->proc.io_ok);
	FIX_BOOL(s->proc.cgroup_memory_ok);
	FIX_BOOL(s->is_new);
	/* Job control (version 3): the numbers are plain; only their flags need fixing. */
	FIX_BOOL(s->proc.jobctl_ok);
	FIX_BOOL(s->proc.tty_ok);
	s->cpu_percent = finite_or_zero(s->cpu_percent);
	s->mem_percent = finite_or_zero(s->mem_percent);
	fix_rates(&s->rate);
	return take_cmdline(in, &s->proc) && take_rcstring(in, &s->proc.cgroup, &in->cgroup) &&
	       take_cgroups_v1(in, &s->proc) && take_threads(in, s);
}

/* ---- the guest OS (frame.os): guest text, so terminated; front ends
 * escape it for terminals, JSON escapes it. */
static void fix_os(struct vmw_frame *f)
{
	FIX_BOOL(f->os_ok);
	FIX_STR(f->os.pretty_name);
	FIX_STR(f->os.id);
	FIX_STR(f->os.version_id);
	if (!f->os_ok)
		f->os = (struct vmw_os_release){ 0 };
}
/* ---- end of the guest OS block */

static void fix_frame(struct vmw_frame *f)
{
	FIX_BOOL(f->first);
	FIX_BOOL(f->rebooted);
	FIX_BOOL(f->truncated);
	FIX_BOOL(f->complete);
	FIX_BOOL(f->summary_ok);
	FIX_BOOL(f->summary.nohz);
	FIX_BOOL(f->summary.buffers_partial);
	FIX_STR(f->truncated_why);
	FIX_STR(f->summary.loadavg);
	f->cpu_percent_total = finite_or_zero(f->cpu_percent_total);
	fix_cpu_percent(&f->cpu_total);
	fix_os(f);
}

static int take_events(struct in *in, struct vmw_frame *f, size_t n, struct vmw_error *err)
{
	if (!count_fits(in, n, sizeof(*f->events)) && n)
		return bad(err, "event count");
	if (n && !(f->events = calloc(n, sizeof(*f->events))))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	take(in, f->events, n * sizeof(*f->events));
	f->nevents = n;
	for (size_t i = 0; i < n; i++) {
		FIX_STR(f->events[i].comm);
		FIX_BOOL(f->events[i].pid_reused);
		if (f->events[i].type != VMW_EVENT_NEW && f->events[i].type != VMW_EVENT_EXIT)
			return bad(err, "event type");
	}
	return 0;
}

static int take_cpus(struct in *in, struct vmw_frame *f, struct vmw_error *err)
{
	uint32_t n, has_pct;

	if (!take_u32(in, &n) || (n && !count_fits(in, n, sizeof(*f->summary.cpu))))
		return bad(err, "CPU count");
	f->summary.ncpus = n;
	if (n && !(f->summary.cpu = calloc(n, sizeof(*f->summary.cpu))))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	take(in, f->summary.cpu, (size_t)n * sizeof(*f->summary.cpu));
	if (!take_u32(in, &has_pct))
		return bad(err, "CPU split");
	if (has_pct && n) {
		if (!count_fits(in, n, sizeof(*f->cpu)))
			return bad(err, "CPU split");
		if (!(f->cpu = calloc(n, sizeof(*f->cpu))))
			return vmw_error_set(err, -ENOMEM, "out of memory");
		take(in, f->cpu, (size_t)n * sizeof(*f->cpu));
		for (uint32_t i = 0; i < n; i++)
			fix_cpu_percent(&f->cpu[i]);
	}
	return 0;
}

/* The cgroup block (see put_cgroups): every path present, bools 0/1, %CPU
 * finite or NAN (unknown), counts within the bytes there. */
static int take_cgroups(struct in *in, struct vmw_frame *f, struct vmw_error *err)
{
	uint32_t n;

	if (!take_u32(in, &n) || (n && !count_fits(in, n, sizeof(*f->cgroups.cg))))
		return bad(err, "cgroup count");
	if (!n)
		return 0;
	if (!(f->cgroups.cg = calloc(n, sizeof(*f->cgroups.cg))) ||
	    !(f->cgroup_cpu_percent = calloc(n, sizeof(double))))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		struct vmw_cgroup_stat *c = &f->cgroups.cg[i];
		if (!take(in, c, sizeof(*c)))
			return bad(err, "cgroup record");
		c->path = NULL;
		f->cgroups.n = i + 1;   /* what vmw_frame_free must release */
		if (!take_string(in, &c->path) || !c->path || c->path[0] != '/')
			return bad(err, "cgroup path");
		FIX_BOOL(c->nr_procs_ok);
		FIX_BOOL(c->cpu_ok);
		FIX_BOOL(c->memory_ok);
		FIX_BOOL(c->memory_stat_ok);
		FIX_BOOL(c->incomplete);
	}
	if (!take(in, f->cgroup_cpu_percent, (size_t)n * sizeof(double)))
		return bad(err, "cgroup %CPU");
	for (uint32_t i = 0; i < n; i++)
		if (isinf(f->cgroup_cpu_percent[i]) || f->cgroup_cpu_percent[i] < 0)
			f->cgroup_cpu_percent[i] = NAN;
	f->cgroups_ok = true;
	return 0;
}

static int decode(struct in *in, struct vmw_frame *f, struct vmw_error *err)
{
	struct wire_header h;
	size_t nprocs, nevents;
	int r;

	if (!take(in, &h, sizeof(h)) || memcmp(&h, &header, sizeof(h)))
		return bad(err, "not this version's format");
	if (!take(in, f, sizeof(*f)))
		return bad(err, "short frame");
	nprocs = f->nprocs;
	nevents = f->nevents;
	f->procs = NULL;
	f->cmdlines_in_procs = false;
	f->events = NULL;
	f->cpu = NULL;
	f->summary.cpu = NULL;
	f->cgroups.cg = NULL;
	f->cgroups.n = 0;
	f->cgroup_cpu_percent = NULL;
	f->cgroups_ok = false;
	FIX_BOOL(f->cgroups.truncated);
	FIX_STR(f->cgroups.truncated_why);
	f->nprocs = f->nevents = 0;
	f->summary.ncpus = 0;
	fix_frame(f);
	/* Each process takes at least its fixed part. */
	if (nprocs && !count_fits(in, nprocs, sizeof(*f->procs)))
		return bad(err, "process count");
	if (nprocs) {
		size_t block;

		if (!size_block(*in, nprocs, &block))
			return bad(err, "process record");
		/* Not zeroed: each sample is written whole before it counts. */
		if (!(f->procs = malloc(block)))
			return vmw_error_set(err, -ENOMEM, "out of memory");
		f->cmdlines_in_procs = true;
		in->blk = (uint8_t *)(f->procs + nprocs);
		in->blk_left = block - nprocs * sizeof(*f->procs);
	}
	for (size_t i = 0; i < nprocs; i++) {
		struct vmw_sample *s = &f->procs[i];

		/* What vmw_frame_free releases, safe before the record is read
		 * (take_sample resets the wire's pointers as soon as it is). */
		s->proc.cmdline = NULL;
		s->proc.cgroup = s->proc.cgroups_v1 = NULL;
		s->proc.threads = NULL;
		s->proc.nthreads_listed = 0;
		s->thread_cpu_percent = NULL;
		f->nprocs = i + 1;
		if (!take_sample(in, s))
			return bad(err, "process record");
	}
	if ((r = take_events(in, f, nevents, err)) < 0 || (r = take_cpus(in, f, err)) < 0 ||
	    (r = take_cgroups(in, f, err)) < 0)
		return r;
	if (in->left)
		return bad(err, "trailing bytes");
	return 0;
}

int vmw_frame_decode(const void *buf, size_t len, struct vmw_frame **ret, struct vmw_error *err)
{
	struct vmw_frame *f = calloc(1, sizeof(*f));
	struct in in = { .p = buf, .left = len };
	int r;

	if (!f)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if ((r = decode(&in, f, err)) < 0) {
		vmw_frame_free(f);
		return r;
	}
	*ret = f;
	return 0;
}
