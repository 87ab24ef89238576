/* SPDX-License-Identifier: MIT */
/* The frame wire format (src/sampler/wire.c): what a privilege-separated
 * sampler sends is decoded as hostile input — round trip, every truncation,
 * corrupted counts, bools and numbers, other builds' bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "sampler/sampler.h"

static char *xrcstr(const char *s)
{
	char *r = vmw_rcstr_new(s, strlen(s));
	assert_non_null(r);
	return r;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	assert_non_null(d);
	return d;
}

/* Three processes: one with argv and two threads (with rates), one without
 * a command line, one with an empty argv; two events; two CPUs. */
static struct vmw_frame *sample_frame(void)
{
	struct vmw_frame *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->nprocs = 3;
	f->procs = calloc(3, sizeof(*f->procs));
	for (size_t i = 0; i < 3; i++) {
		struct vmw_proc *p = &f->procs[i].proc;
		p->pid = (int32_t)(i + 1);
		snprintf(p->comm, sizeof(p->comm), "proc%zu", i);
		p->state = 'S';
		p->rss_anon_bytes = 4096 * (i + 1);
		f->procs[i].cpu_percent = 12.5 * (double)i;
	}
	{
		static const char args[] = "/usr/sbin/sshd\0-D \x1b[2K";   /* with its final NUL */
		char *text;
		f->procs[0].proc.cmdline = vmw_argv_alloc(2, sizeof(args), &text);
		assert_non_null(f->procs[0].proc.cmdline);
		memcpy(text, args, sizeof(args));
		f->procs[0].proc.cmdline[0] = text;
		f->procs[0].proc.cmdline[1] = text + strlen(text) + 1;
	}
	f->procs[0].proc.cgroup = xrcstr("/system.slice/ssh.service");
	f->procs[0].proc.cgroups_v1 = xrcstr("3:cpu,cpuacct:/a\n2:name=systemd:/b");
	f->procs[1].proc.cgroups_v1 = xrcstr("");
	strcpy(f->procs[0].proc.user, "root");
	f->procs[0].proc.io_ok = true;
	f->procs[0].proc.threads = calloc(2, sizeof(struct vmw_thread));
	f->procs[0].proc.nthreads_listed = 2;
	f->procs[0].proc.threads[1].tid = 77;
	strcpy(f->procs[0].proc.threads[1].comm, "worker");
	f->procs[0].thread_cpu_percent = calloc(2, sizeof(double));
	f->procs[0].thread_cpu_percent[1] = 3.25;
	{
		char *text;
		f->procs[2].proc.cmdline = vmw_argv_alloc(0, 0, &text);   /* an empty argv */
		assert_non_null(f->procs[2].proc.cmdline);
	}
	f->nevents = 2;
	f->events = calloc(2, sizeof(*f->events));
	f->events[0] = (struct vmw_event){ .type = VMW_EVENT_NEW, .pid = 3, .comm = "proc2" };
	f->events[1] = (struct vmw_event){ .type = VMW_EVENT_EXIT, .pid = 9, .pid_reused = true };
	f->summary_ok = true;
	f->summary.ncpus = 2;
	f->summary.cpu = calloc(2, sizeof(*f->summary.cpu));
	f->summary.cpu[1].cpu = 1;
	f->cpu = calloc(2, sizeof(*f->cpu));
	f->cpu[1].user = 42.0;
	f->complete = true;
	strcpy(f->truncated_why, "none");
	/* the cgroup block: the root and one service */
	f->cgroups_ok = true;
	f->cgroups.n = 2;
	f->cgroups.cg = calloc(2, sizeof(*f->cgroups.cg));
	f->cgroups.cg[0].path = xstrdup("/");
	f->cgroups.cg[1].path = xstrdup("/system.slice/ssh.service");
	f->cgroups.cg[1].depth = 2;
	f->cgroups.cg[1].cpu_ok = true;
	f->cgroups.cg[1].usage_usec = 123456;
	f->cgroups.cg[1].memory_stat_ok = true;
	f->cgroups.cg[1].anon = 8192;
	f->cgroup_cpu_percent = calloc(2, sizeof(double));
	f->cgroup_cpu_percent[0] = NAN;
	f->cgroup_cpu_percent[1] = 1.5;
	return f;
}

static void encode(const struct vmw_frame *f, uint8_t **buf, size_t *len)
{
	assert_int_equal(vmw_frame_encode(f, buf, len), 0);
}

static void test_round_trip(void **state)
{
	struct vmw_frame *f = sample_frame(), *g = NULL;
	struct vmw_error err = { 0 };
	uint8_t *buf, *buf2;
	size_t len, len2;

	(void)state;
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	assert_int_equal(g->nprocs, 3);
	assert_string_equal(g->procs[0].proc.cmdline[1], "-D \x1b[2K");
	assert_null(g->procs[0].proc.cmdline[2]);
	assert_null(g->procs[1].proc.cmdline);
	assert_string_equal(g->procs[0].proc.cgroup, "/system.slice/ssh.service");
	assert_null(g->procs[1].proc.cgroup);
	assert_string_equal(g->procs[0].proc.cgroups_v1, "3:cpu,cpuacct:/a\n2:name=systemd:/b");
	assert_string_equal(g->procs[1].proc.cgroups_v1, "");
	assert_null(g->procs[2].proc.cgroups_v1);
	assert_string_equal(g->procs[0].proc.user, "root");
	assert_true(g->procs[0].proc.io_ok);
	assert_non_null(g->procs[2].proc.cmdline);
	assert_null(g->procs[2].proc.cmdline[0]);
	assert_int_equal(g->procs[0].proc.nthreads_listed, 2);
	assert_int_equal(g->procs[0].proc.threads[1].tid, 77);
	assert_string_equal(g->procs[0].proc.threads[1].comm, "worker");
	assert_true(g->procs[0].thread_cpu_percent[1] == 3.25);
	assert_null(g->procs[1].proc.threads);
	assert_true(g->procs[2].cpu_percent == 25.0);
	assert_int_equal(g->nevents, 2);
	assert_true(g->events[1].pid_reused);
	assert_int_equal(g->summary.ncpus, 2);
	assert_int_equal(g->summary.cpu[1].cpu, 1);
	assert_true(g->cpu[1].user == 42.0);
	assert_true(g->complete);
	assert_true(g->cgroups_ok);
	assert_int_equal(g->cgroups.n, 2);
	assert_string_equal(g->cgroups.cg[1].path, "/system.slice/ssh.service");
	assert_true(g->cgroups.cg[1].cpu_ok && g->cgroups.cg[1].memory_stat_ok && !g->cgroups.cg[1].memory_ok);
	assert_int_equal(g->cgroups.cg[1].usage_usec, 123456);
	assert_int_equal(g->cgroups.cg[1].anon, 8192);
	assert_true(isnan(g->cgroup_cpu_percent[0]) && g->cgroup_cpu_percent[1] == 1.5);
	/* Encoding the decoded frame gives the same bytes. */
	encode(g, &buf2, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf);
	free(buf2);
	vmw_frame_free(f);
	vmw_frame_free(g);
}

/* Processes whose cgroup texts are the same share one decoded string (as
 * in the sampler); other texts, a prefix of another included, are their
 * own; more distinct texts than the decoder remembers still decode right;
 * freeing the frame releases each shared string once (ASan). */
static void test_shared_strings(void **state)
{
	static const char *const paths[] = { "/", "/system.slice/a.service", "/system.slice/a.servic",
					     "/user.slice", "/system.slice/b.service" };
	enum { N = 60 };
	struct vmw_frame *f = calloc(1, sizeof(*f)), *g = NULL;
	struct vmw_error err = { 0 };
	uint8_t *buf;
	size_t len, distinct = 0, common = 0;
	char name[32];
	(void)state;

	assert_non_null(f);
	f->nprocs = N;
	f->procs = calloc(N, sizeof(*f->procs));
	assert_non_null(f->procs);
	for (size_t i = 0; i < N; i++) {
		struct vmw_proc *p = &f->procs[i].proc;
		p->pid = (int32_t)(i + 1);
		if (i % 3 == 2) {   /* a text of its own: more than the decoder remembers */
			snprintf(name, sizeof(name), "/scope-%zu", i);
			p->cgroup = xrcstr(name);
		} else {
			p->cgroup = xrcstr(paths[i % 5]);
		}
		p->cgroups_v1 = xrcstr(i % 2 ? "1:cpu:/x" : "1:cpu:/y");
	}
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	for (size_t i = 0; i < N; i++) {
		const struct vmw_proc *p = &g->procs[i].proc;
		bool seen = false;
		assert_string_equal(p->cgroup, f->procs[i].proc.cgroup);
		assert_string_equal(p->cgroups_v1, f->procs[i].proc.cgroups_v1);
		for (size_t j = 0; j < i; j++) {
			/* Shared only by the same text. */
			if (p->cgroup == g->procs[j].proc.cgroup) {
				assert_string_equal(f->procs[i].proc.cgroup, f->procs[j].proc.cgroup);
				seen = true;
			}
		}
		if (i % 3 != 2) {
			common++;
			distinct += !seen;
		}
	}
	/* 40 processes in 5 cgroups: 5 strings. */
	assert_int_equal(common, 40);
	assert_int_equal(distinct, 5);
	assert_ptr_equal(g->procs[0].proc.cgroups_v1, g->procs[N - 2].proc.cgroups_v1);
	assert_ptr_not_equal(g->procs[0].proc.cgroups_v1, g->procs[1].proc.cgroups_v1);
	free(buf);
	vmw_frame_free(f);
	vmw_frame_free(g);
}

/* Every prefix of a frame is refused, without reading past it (ASan). */
static void test_truncations(void **state)
{
	struct vmw_frame *f = sample_frame(), *g;
	struct vmw_error err = { 0 };
	uint8_t *buf;
	size_t len;

	(void)state;
	encode(f, &buf, &len);
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, buf, n);
		g = NULL;
		assert_true(vmw_frame_decode(copy, n, &g, &err) < 0);
		assert_null(g);
		assert_int_equal(vmw_error_kind_of(&err, -EBADMSG), VMW_ERR_INCONSISTENT);
		free(copy);
	}
	/* And a byte too many. */
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	assert_true(vmw_frame_decode(buf, len + 1, &g, &err) < 0);
	free(buf);
	vmw_frame_free(f);
}

/* Any byte of the encoding changed to any of a few values: decoded or
 * refused, never a bad read, a huge allocation or a broken invariant. */
static void test_corruption(void **state)
{
	static const uint8_t values[] = { 0x00, 0x01, 0x02, 0x7f, 0x80, 0xff };
	struct vmw_frame *f = sample_frame(), *g;
	struct vmw_error err = { 0 };
	uint8_t *buf;
	size_t len;

	(void)state;
	encode(f, &buf, &len);
	for (size_t i = 0; i < len; i++) {
		uint8_t keep = buf[i];
		for (size_t v = 0; v < ARRAY_SIZE(values); v++) {
			buf[i] = values[v];
			g = NULL;
			if (vmw_frame_decode(buf, len, &g, &err) < 0)
				continue;
			for (size_t p = 0; p < g->nprocs; p++) {
				struct vmw_proc *pr = &g->procs[p].proc;
				assert_true(strlen(pr->comm) < sizeof(pr->comm));
				assert_true(isfinite(g->procs[p].cpu_percent));
				for (char **a = pr->cmdline; a && *a; a++)
					(void)strlen(*a);
				for (uint32_t t = 0; t < pr->nthreads_listed; t++)
					(void)pr->threads[t].tid;
			}
			for (unsigned c = 0; c < g->summary.ncpus; c++)
				(void)g->summary.cpu[c].cpu;
			for (size_t c = 0; c < g->cgroups.n; c++) {
				assert_true(g->cgroups.cg[c].path[0] == '/');
				assert_true(isnan(g->cgroup_cpu_percent[c]) || g->cgroup_cpu_percent[c] >= 0);
			}
			vmw_frame_free(g);
		}
		buf[i] = keep;
	}
	free(buf);
	vmw_frame_free(f);
}

/* Values no honest sampler sends: non-finite rates, bools that are not
 * 0/1, unterminated strings, an unknown event type. */
static void test_hostile_values(void **state)
{
	struct vmw_frame *f = sample_frame(), *g = NULL;
	struct vmw_error err = { 0 };
	uint8_t *buf;
	size_t len;

	(void)state;
	f->procs[1].cpu_percent = NAN;
	f->procs[2].mem_percent = INFINITY;
	f->cpu[0].steal = -NAN;
	memset(f->procs[1].proc.comm, 'A', sizeof(f->procs[1].proc.comm));
	memset(&f->procs[1].is_new, 0x5a, 1);
	memset(&f->procs[1].proc.jobctl_ok, 0x7e, 1);    /* job control's flags: 0/1 after decoding */
	memset(&f->procs[1].proc.tty_ok, 0x02, 1);
	f->procs[1].proc.tpgid = -1;
	strcpy(f->procs[2].proc.user, "ro\x1b[2Jot");          /* printed raw by ps: refused */
	memset(f->procs[0].proc.user, 'u', sizeof(f->procs[0].proc.user));   /* unterminated */
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	assert_true(g->procs[1].cpu_percent == 0.0);
	assert_true(g->procs[2].mem_percent == 0.0);
	assert_true(g->cpu[0].steal == 0.0);
	assert_int_equal(strlen(g->procs[1].proc.comm), sizeof(g->procs[1].proc.comm) - 1);
	assert_true(g->procs[1].is_new);
	assert_int_equal(*(unsigned char *)&g->procs[1].proc.jobctl_ok, 1);
	assert_int_equal(*(unsigned char *)&g->procs[1].proc.tty_ok, 1);
	assert_int_equal(g->procs[1].proc.tpgid, -1);
	assert_string_equal(g->procs[2].proc.user, "");
	assert_int_equal(strlen(g->procs[0].proc.user), sizeof(g->procs[0].proc.user) - 1);
	vmw_frame_free(g);
	free(buf);

	/* A cgroup path that is not one: refused; a negative or infinite %CPU: unknown. */
	f->cgroup_cpu_percent[1] = -INFINITY;
	memset(&f->cgroups.cg[1].cpu_ok, 0x33, 1);
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	assert_true(isnan(g->cgroup_cpu_percent[1]));
	assert_int_equal(*(unsigned char *)&g->cgroups.cg[1].cpu_ok, 1);
	vmw_frame_free(g);
	free(buf);
	free(f->cgroups.cg[1].path);
	f->cgroups.cg[1].path = xstrdup("system.slice");
	encode(f, &buf, &len);
	assert_true(vmw_frame_decode(buf, len, &g, &err) < 0);
	assert_non_null(strstr(err.msg, "cgroup path"));
	free(buf);

	/* cgroup v1 text that is not "ID:controllers:path" lines: refused. */
	free(f->cgroups.cg[1].path);
	f->cgroups.cg[1].path = xstrdup("/system.slice");
	vmw_rcstr_unref(f->procs[0].proc.cgroups_v1);
	f->procs[0].proc.cgroups_v1 = xrcstr("3:cpu,cpuacct:/a\nno line");
	encode(f, &buf, &len);
	assert_true(vmw_frame_decode(buf, len, &g, &err) < 0);
	free(buf);
	vmw_rcstr_unref(f->procs[0].proc.cgroups_v1);
	f->procs[0].proc.cgroups_v1 = NULL;
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	vmw_frame_free(g);
	free(buf);

	f->events[0].type = (enum vmw_event_type)7;
	encode(f, &buf, &len);
	assert_true(vmw_frame_decode(buf, len, &g, &err) < 0);
	assert_non_null(strstr(err.msg, "event type"));
	/* Another build's structures: refused up front. */
	buf[8] ^= 1;
	assert_true(vmw_frame_decode(buf, len, &g, &err) < 0);
	assert_non_null(strstr(err.msg, "format"));
	free(buf);
	vmw_frame_free(f);
}

/* The rates and the guest OS block: round trip, and hostile bytes fixed. */
static void test_rates_and_os(void **state)
{
	struct vmw_frame *f = sample_frame(), *g = NULL;
	struct vmw_error err = { 0 };
	uint8_t *buf;
	size_t len;

	(void)state;
	f->procs[0].rate.wchar = 4096.5;
	f->procs[0].rate.nivcsw = 3;
	f->procs[1].rate.rchar = NAN;
	f->procs[1].rate.maj_flt = -5;
	f->os_ok = true;
	strcpy(f->os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
	strcpy(f->os.id, "debian");
	strcpy(f->os.version_id, "12");
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	assert_true(g->procs[0].rate.wchar == 4096.5 && g->procs[0].rate.nivcsw == 3);
	assert_true(g->procs[1].rate.rchar == 0.0 && g->procs[1].rate.maj_flt == 0.0);
	assert_true(g->os_ok);
	assert_string_equal(g->os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
	assert_string_equal(g->os.version_id, "12");
	vmw_frame_free(g);
	free(buf);

	memset(f->os.id, 'x', sizeof(f->os.id));           /* unterminated */
	memset(&f->os_ok, 0x7f, 1);
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	assert_true(g->os_ok);
	assert_int_equal(strlen(g->os.id), sizeof(g->os.id) - 1);
	vmw_frame_free(g);
	free(buf);

	f->os_ok = false;                                   /* not known: nothing carried */
	encode(f, &buf, &len);
	assert_int_equal(vmw_frame_decode(buf, len, &g, &err), 0);
	assert_false(g->os_ok);
	assert_string_equal(g->os.pretty_name, "");
	vmw_frame_free(g);
	free(buf);
	vmw_frame_free(f);
}

/* What a sink received, for test_stream. */
struct sunk {
	uint8_t *buf;
	size_t len, calls, fail_at;   /* fail_at: the call that fails (0: none) */
	size_t max_piece;
};

static int sink(void *opaque, const void *buf, size_t len)
{
	struct sunk *k = opaque;

	assert_true(len > 0);
	if (++k->calls == k->fail_at)
		return -EPIPE;
	assert_non_null(k->buf = realloc(k->buf, k->len + len));
	memcpy(k->buf + k->len, buf, len);
	k->len += len;
	k->max_piece = len > k->max_piece ? len : k->max_piece;
	return 0;
}

/* The streamed bytes are vmw_frame_encode's, after the caller's prefix,
 * whatever the buffer's size; the size is announced right; a failing sink
 * stops the stream with its error. */
static void test_stream(void **state)
{
	const size_t caps[] = { 1, 7, 64, 100, 4096, 1 << 20 };
	struct vmw_frame *f = sample_frame();
	uint8_t *want, buf[1 << 20];
	size_t len;

	(void)state;
	encode(f, &want, &len);
	assert_int_equal(vmw_frame_encoded_size(f), len);
	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		for (size_t used = 0; used <= 5 && used <= caps[c]; used += 5) {
			struct sunk k = { 0 };

			memset(buf, 0xab, used);
			assert_int_equal(vmw_frame_stream(f, buf, caps[c], used, sink, &k), 0);
			assert_int_equal(k.len, used + len);
			assert_true(k.max_piece <= caps[c]);
			assert_int_equal(k.calls, (used + len + caps[c] - 1) / caps[c]);
			for (size_t i = 0; i < used; i++)
				assert_int_equal(k.buf[i], 0xab);
			assert_memory_equal(k.buf + used, want, len);
			free(k.buf);
		}
	}
	{
		struct sunk k = { .fail_at = 2 };
		assert_int_equal(vmw_frame_stream(f, buf, 64, 0, sink, &k), -EPIPE);
		assert_int_equal(k.calls, 2);
		assert_int_equal(k.len, 64);
		free(k.buf);
	}
	free(want);
	vmw_frame_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_shared_strings),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_hostile_values),
		cmocka_unit_test(test_rates_and_os),
		cmocka_unit_test(test_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
