/* SPDX-License-Identifier: MIT */
/* Unit tests of the agent's pure parts: configuration parsing and the
 * bounded history rings. */
#include "agent/agent_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

static void test_durations(void **state)
{
	double d;
	(void)state;
	assert_int_equal(vmw_agent_parse_duration("5", &d), 0);
	assert_true(d == 5.0);
	assert_int_equal(vmw_agent_parse_duration("500ms", &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(vmw_agent_parse_duration("15m", &d), 0);
	assert_true(d == 900.0);
	assert_int_equal(vmw_agent_parse_duration("1h", &d), 0);
	assert_true(d == 3600.0);
	assert_int_equal(vmw_agent_parse_duration("2.5s", &d), 0);
	assert_true(d == 2.5);
	assert_int_equal(vmw_agent_parse_duration("", &d), -EINVAL);
	assert_int_equal(vmw_agent_parse_duration("-1", &d), -EINVAL);
	assert_int_equal(vmw_agent_parse_duration("5 s", &d), -EINVAL);
	assert_int_equal(vmw_agent_parse_duration("fast", &d), -EINVAL);
	assert_int_equal(vmw_agent_parse_duration("nan", &d), -EINVAL);
}

static void test_set_keys(void **state)
{
	struct vmw_agent_config c;
	struct vmw_error err = { 0 };
	bool b;
	(void)state;

	vmw_agent_config_init(&c);
	assert_string_equal(c.listen, "127.0.0.1:9910");
	assert_true(c.interval_s == 5.0 && c.history_s == 900.0 && c.top_n == 10);
	assert_int_equal(vmw_agent_config_set(&c, "interval", "250ms", &err), 0);
	assert_true(c.interval_s == 0.25);
	assert_int_equal(vmw_agent_config_set(&c, "interval", "10ms", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "interval"));
	assert_int_equal(vmw_agent_config_set(&c, "top_n", "3", &err), 0);
	assert_int_equal(c.top_n, 3);
	assert_int_equal(vmw_agent_config_set(&c, "top_n", "-3", &err), -EINVAL);
	assert_int_equal(vmw_agent_config_set(&c, "token", "short", &err), -EINVAL);
	assert_int_equal(vmw_agent_config_set(&c, "token", "has space in it", &err), -EINVAL);
	assert_int_equal(vmw_agent_config_set(&c, "token", "0123456789abcdef", &err), 0);
	assert_int_equal(vmw_agent_config_set(&c, "token", "fedcba9876543210", &err), 0);
	assert_int_equal(c.ntokens, 2);
	assert_int_equal(vmw_agent_config_set(&c, "target", "web=qemu:42", &err), 0);
	assert_int_equal(vmw_agent_config_set(&c, "target", "web=42", &err), -EINVAL);
	assert_int_equal(vmw_agent_config_set(&c, "listen", "9910", &err), -EINVAL);
	assert_int_equal(vmw_agent_config_set(&c, "cmdline", "off", &err), 0);
	assert_false(c.cmdline);
	assert_int_equal(vmw_agent_config_set(&c, "log_level", "debug", &err), 0);
	assert_int_equal(c.log_level, VMW_LOG_DEBUG);
	assert_int_equal(vmw_agent_config_set(&c, "nope", "1", &err), -ENOENT);
	assert_non_null(strstr(err.msg, "unknown key 'nope'"));
	assert_int_equal(vmw_agent_parse_bool("YES", &b), 0);
	assert_true(b);
	assert_int_equal(vmw_agent_parse_bool("maybe", &b), -EINVAL);
	/* Both TLS files or neither. */
	assert_int_equal(vmw_agent_config_set(&c, "tls_cert", "/etc/hostname", &err), 0);
	assert_int_equal(vmw_agent_config_check(&c, &err), -EINVAL);
	vmw_agent_config_free(&c);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/vmwatch-agent-conf-XXXXXX";
	int fd = mkstemp(path);
	struct vmw_agent_config c;
	struct vmw_error err = { 0 };
	FILE *f;
	(void)state;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("# comment\n\n  listen = 0.0.0.0:1234  \ninterval=2s\ntop-n = \"7\"\n; also a comment\n"
	      "target = a=qemu:1\ntarget = b=file:/x\n", f);
	fclose(f);
	vmw_agent_config_init(&c);
	assert_int_equal(vmw_agent_config_load(&c, path, &err), 0);
	assert_string_equal(c.listen, "0.0.0.0:1234");
	assert_true(c.interval_s == 2.0);
	assert_int_equal(c.top_n, 7);
	assert_int_equal(c.ntargets, 2);
	vmw_agent_config_free(&c);

	f = fopen(path, "w");
	fputs("interval = 1s\nlisten 1.2.3.4\n", f);
	fclose(f);
	vmw_agent_config_init(&c);
	assert_int_equal(vmw_agent_config_load(&c, path, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ":2: expected 'key = value'"));
	vmw_agent_config_free(&c);

	f = fopen(path, "w");
	fputs("history = forever\n", f);
	fclose(f);
	vmw_agent_config_init(&c);
	assert_int_equal(vmw_agent_config_load(&c, path, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ":1: history"));
	vmw_agent_config_free(&c);
	unlink(path);

	vmw_agent_config_init(&c);
	assert_int_equal(vmw_agent_config_load(&c, "/nonexistent/agent.conf", &err), -ENOENT);
	vmw_agent_config_free(&c);
}

/* A snapshot of processes (pid, start time, rss KiB). */
static struct agent_snap *snap(const int32_t *pids, const uint64_t *starts, size_t n, uint64_t t)
{
	struct agent_snap *s = calloc(1, sizeof(*s));
	s->frame = calloc(1, sizeof(*s->frame));
	s->frame->procs = calloc(n + 1, sizeof(*s->frame->procs));
	s->frame->nprocs = n;
	s->frame->wall_time_ns = t;
	for (size_t i = 0; i < n; i++) {
		s->frame->procs[i].proc.pid = pids[i];
		s->frame->procs[i].proc.start_time_ns = starts[i];
		s->frame->procs[i].proc.rss_anon_bytes = (uint64_t)pids[i] << 10;
		s->frame->procs[i].cpu_percent = (double)t / 1e9;
	}
	return s;
}

static void snap_free(struct agent_snap *s)
{
	free(s->frame->procs);
	free(s->frame);
	free(s);
}

static void test_history_ring(void **state)
{
	struct agent_hist h;
	int32_t pids[] = { 1, 2, 3 };
	uint64_t starts[] = { 10, 20, 30 }, reused[] = { 10, 20, 99 };
	json_t *j;
	(void)state;

	assert_int_equal(agent_hist_init(&h, 4), 0);
	for (uint64_t t = 1; t <= 6; t++) {
		struct agent_snap *s = snap(pids, t <= 5 ? starts : reused, 3, t * 1000000000ull);
		assert_int_equal(agent_hist_record(&h, s, 2), 0);   /* only 2 processes tracked */
		snap_free(s);
	}
	assert_int_equal(h.nprocs_tracked, 2);
	/* pid 1: tracked since t=1, ring of 4: t = 3..6. */
	j = agent_hist_proc_json(&h, 1, 10);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "time")), 4);
	assert_true(json_real_value(json_array_get(json_object_get(j, "time"), 0)) == 3.0);
	assert_true(json_real_value(json_array_get(json_object_get(j, "cpu_percent"), 3)) == 6.0);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "rss_bytes"), 0)), 1024);
	json_decref(j);
	/* Wrong start time (pid reused): no history. pid 3: beyond max_procs. */
	assert_null(agent_hist_proc_json(&h, 1, 11));
	assert_null(agent_hist_proc_json(&h, 3, 99));
	j = agent_hist_vm_json(&h);
	assert_int_equal(json_array_size(json_object_get(j, "time")), 4);
	json_decref(j);
	assert_true(h.bytes > 0);
	agent_hist_free(&h);
}

static void test_history_restart_on_pid_reuse(void **state)
{
	struct agent_hist h;
	int32_t pids[] = { 7 };
	uint64_t a[] = { 1 }, b[] = { 2 };
	json_t *j;
	(void)state;

	assert_int_equal(agent_hist_init(&h, 10), 0);
	for (int i = 0; i < 3; i++) {
		struct agent_snap *s = snap(pids, a, 1, (uint64_t)(i + 1) * 1000000000ull);
		agent_hist_record(&h, s, 100);
		snap_free(s);
	}
	struct agent_snap *s = snap(pids, b, 1, 4000000000ull);
	agent_hist_record(&h, s, 100);
	snap_free(s);
	assert_null(agent_hist_proc_json(&h, 7, 1));
	j = agent_hist_proc_json(&h, 7, 2);
	assert_int_equal(json_array_size(json_object_get(j, "time")), 1);
	json_decref(j);
	agent_hist_free(&h);
}

/* After a reset: a frozen clock, a torn one jumping around and a single step
 * never count as running; one in step with the host for 3 frames and 2 s does. */
static void test_reset_clock(void **state)
{
	const uint64_t S = 1000000000ull;
	struct agent_reset_clock c;
	(void)state;

	agent_reset_clock_start(&c);
	for (uint64_t i = 0; i < 20; i++)                       /* frozen */
		assert_false(agent_reset_clock_runs(&c, 60 * S, (100 + i) * S));
	agent_reset_clock_start(&c);
	const uint64_t torn[] = { 60 * S, 6259037573ull * S, 61 * S, 0, 62 * S, UINT64_MAX, 63 * S, 64 * S };
	for (size_t i = 0; i < sizeof(torn) / sizeof(*torn); i++)  /* jumps, backwards, then frozen */
		assert_false(agent_reset_clock_runs(&c, torn[i], (100 + i) * S));
	assert_false(agent_reset_clock_runs(&c, 64 * S, 108 * S));
	agent_reset_clock_start(&c);                            /* faster than the host: torn */
	for (uint64_t i = 0; i < 10; i++)
		assert_false(agent_reset_clock_runs(&c, 60 * S + i * 3 * S, (100 + i) * S));
	agent_reset_clock_start(&c);                            /* in step: the 3rd step, 3 s */
	assert_false(agent_reset_clock_runs(&c, 60 * S, 100 * S));
	assert_false(agent_reset_clock_runs(&c, 61 * S, 101 * S));
	assert_false(agent_reset_clock_runs(&c, 62 * S, 102 * S));
	assert_true(agent_reset_clock_runs(&c, 63 * S, 103 * S));
	agent_reset_clock_start(&c);                            /* 3 steps but 0.3 s: not yet */
	for (uint64_t i = 0; i < 4; i++)
		assert_false(agent_reset_clock_runs(&c, 60 * S + i * S / 10, 100 * S + i * S / 10));
	assert_false(agent_reset_clock_runs(&c, 60 * S + 4 * S / 10, 100 * S + 4 * S / 10));
	agent_reset_clock_start(&c);                            /* a stall in between restarts */
	assert_false(agent_reset_clock_runs(&c, 60 * S, 100 * S));
	assert_false(agent_reset_clock_runs(&c, 61 * S, 101 * S));
	assert_false(agent_reset_clock_runs(&c, 62 * S, 102 * S));
	assert_false(agent_reset_clock_runs(&c, 62 * S, 103 * S));
	assert_false(agent_reset_clock_runs(&c, 63 * S, 104 * S));
	assert_false(agent_reset_clock_runs(&c, 64 * S, 105 * S));
	assert_true(agent_reset_clock_runs(&c, 65 * S, 106 * S));
}

/* A process's run-length encoded points give what a plain ring of the last
 * cap points gave: values changing, repeating, and the ring wrapping. */
static void test_history_runs(void **state)
{
	/* cpu, rss KiB per frame: runs of 1, 3, 1, 4, 2, 1 frames. */
	static const float cpu[] = { 1, 2, 2, 2, 0, 0.5f, 0.5f, 0.5f, 0.5f, 3, 3, 0 };
	static const uint32_t rss[] = { 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8 };
	const size_t nf = sizeof(cpu) / sizeof(*cpu), cap = 5;
	int32_t pids[] = { 42 };
	uint64_t starts[] = { 7 };
	struct agent_hist h;
	(void)state;

	assert_int_equal(agent_hist_init(&h, cap), 0);
	for (size_t t = 0; t < nf; t++) {
		struct agent_snap *s = snap(pids, starts, 1, (t + 1) * 1000000000ull);
		size_t first = t + 1 > cap ? t + 1 - cap : 0;
		json_t *j, *tm, *c, *r;

		s->frame->procs[0].cpu_percent = cpu[t];
		s->frame->procs[0].proc.rss_anon_bytes = (uint64_t)rss[t] << 10;
		assert_int_equal(agent_hist_record(&h, s, 10), 0);
		snap_free(s);
		j = agent_hist_proc_json(&h, 42, 7);
		assert_non_null(j);
		tm = json_object_get(j, "time");
		c = json_object_get(j, "cpu_percent");
		r = json_object_get(j, "rss_bytes");
		assert_int_equal(json_array_size(tm), t + 1 - first);
		for (size_t i = first; i <= t; i++) {
			assert_true(json_real_value(json_array_get(tm, i - first)) == (double)(i + 1));
			assert_true(json_real_value(json_array_get(c, i - first)) == (double)cpu[i]);
			assert_int_equal(json_integer_value(json_array_get(r, i - first)), (json_int_t)rss[i] * 1024);
		}
		json_decref(j);
		/* ?since=: the points after frame t - 1's time only. */
		j = agent_hist_proc_json_since(&h, 42, 7, t * 1000000000ull);
		assert_int_equal(json_array_size(json_object_get(j, "time")), 1);
		assert_true(json_real_value(json_array_get(json_object_get(j, "cpu_percent"), 0)) == (double)cpu[t]);
		json_decref(j);
	}
	/* Never more runs than points held. */
	assert_true(h.procs[0].rn <= cap);
	agent_hist_free(&h);
}

/* A process whose values do not change holds one run, not a ring. */
static void test_history_idle_is_small(void **state)
{
	int32_t pids[] = { 1, 2, 3, 4 };
	uint64_t starts[] = { 1, 2, 3, 4 };
	struct agent_hist h;
	const size_t cap = 1000;
	json_t *j;
	(void)state;

	assert_int_equal(agent_hist_init(&h, cap), 0);
	for (uint64_t t = 1; t <= 1500; t++) {
		struct agent_snap *s = snap(pids, starts, 4, t * 1000000000ull);
		for (size_t i = 0; i < 4; i++)
			s->frame->procs[i].cpu_percent = 0;
		assert_int_equal(agent_hist_record(&h, s, 10), 0);
		snap_free(s);
	}
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(h.procs[i].rn, 1);
	/* Per process: its record and a few runs, not cap points. */
	assert_true(h.bytes < cap * 64 + 4 * 256);   /* a plain ring: + 4 × cap × 8 */
	j = agent_hist_proc_json(&h, 3, 3);
	assert_int_equal(json_array_size(json_object_get(j, "rss_bytes")), cap);
	assert_true(json_real_value(json_array_get(json_object_get(j, "time"), 0)) == 501.0);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "rss_bytes"), cap - 1)), 3 * 1024);
	json_decref(j);
	agent_hist_free(&h);
}

/* The event ring grows as events come, up to max_events, then keeps the
 * newest max_events in order. */
static void test_events_ring(void **state)
{
	struct agent_vm *vm = calloc(1, sizeof(*vm));
	struct vmw_event evs[7] = { 0 };
	struct vmw_frame f = { .events = evs, .nevents = 7 };
	(void)state;

	assert_non_null(vm);
	f.nevents = 0;
	agent_events_push(vm, &f, 40);
	assert_int_equal(vm->ev_cap, 0);   /* no event, no ring */
	f.nevents = 7;
	for (int32_t round = 0; round < 10; round++) {
		for (size_t i = 0; i < 7; i++) {
			evs[i].type = VMW_EVENT_NEW;
			evs[i].pid = round * 7 + (int32_t)i + 1;
		}
		f.wall_time_ns = (uint64_t)round;
		agent_events_push(vm, &f, 40);
		assert_true(vm->ev_cap <= 40);
		assert_int_equal(vm->ev_n, MIN((size_t)(round + 1) * 7, 40));
	}
	assert_int_equal(vm->ev_cap, 40);
	assert_int_equal(vm->ev_next_seq, 70);
	assert_int_equal(vm->events_total[VMW_EVENT_NEW], 70);
	/* Oldest first: events 31 .. 70. */
	for (size_t i = 0; i < vm->ev_n; i++) {
		const struct agent_event *e = &vm->ev[(vm->ev_start + i) % vm->ev_cap];
		assert_int_equal(e->seq, 31 + i);
		assert_int_equal(e->e.pid, (int32_t)(31 + i));
	}
	free(vm->ev);
	free(vm);
}

/* What fn wrote into an agent_buf, NUL-terminated (free it). */
#define PROM_TEXT(ret, call)                                                   \
	do {                                                                   \
		struct agent_buf b_;                                           \
		agent_buf_init(&b_);                                           \
		{                                                              \
			struct agent_buf *b = &b_;                             \
			call;                                                  \
		}                                                              \
		agent_buf_putc(&b_, '\0');                                     \
		assert_false(b_.failed);                                       \
		ret = b_.p;                                                    \
	} while (0)

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* agent_prom_number writes what "%.15g" writes, for every kind of value. */
static void test_prom_number(void **state)
{
	double v[] = { 0, -0.0, 1, -1, 7, 42, 1024, 4096.0 * 1024 * 1024, 999999999999999.0, 1e15, -1e15,
		       -999999999999999.0, 1e15 + 2, 9007199254740992.0, 1e300, 0.5, -0.25, 1e-7,
		       1796268894.7635, 0.000354164, 123456789.123456789, NAN, INFINITY, -INFINITY,
		       4294967295.0, 2147483648.0, -2147483649.0 };
	uint64_t x = 88172645463325252ull;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(v) + 20000; i++) {
		double d;
		char want[64], *got;

		if (i < ARRAY_SIZE(v)) {
			d = v[i];
		} else {   /* integers of every size, and their halves */
			xorshift(&x);
			d = (double)(int64_t)(x >> (x % 64)) * ((x & 1) ? 1 : -1) / ((x & 2) ? 2 : 1);
		}
		PROM_TEXT(got, agent_prom_number(b, d));
		snprintf(want, sizeof(want), "%.15g", d);
		assert_string_equal(got, want);
		free(got);
	}
}

/* agent_prom_g15 writes what "%.15g" writes wherever it takes a value, and
 * takes every finite value whose rounded exponent is in [-4, 14]: edges of
 * that range, ties of the 16th digit (to even), carries into a new digit,
 * and a million random values: any bits, and the quotients and sums the
 * metrics print (ns / 1e9, boot time + start time, percent / 100). */
static void test_prom_g15(void **state)
{
	double v[] = { 0.0001, 0.00009999999999999999, 0.000099999999999999995, 0.00009999999999999, 1e-5,
		       0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, -2.0 / 3, 123.456, 9.999999999999995, 9.9999999999999995,
		       99999999999999.95, 99999999999999.94, 999999999999999.5, 999999999999999.4, 1e14 + 0.5,
		       1e14 + 1.5, 1e14 + 2.5, 123456789012345.5, 0.5, 1.5, 2.5, 1e14 - 0.5, 1796268894.7635,
		       0.000354164, 5e-5, 12345678.9012345678, 1e15 - 0.125, 562949953421311.5, 0.0625,
		       4503599627370495.5, 1e-4 * (1 + 1e-15), 1e-300, 5e-324, 1.7976931348623157e308 };
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t taken = 0, total = 0;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(v) + 1000000; i++) {
		double d;
		char want[64], got[40];
		size_t len;

		if (i < ARRAY_SIZE(v)) {
			d = v[i];
		} else {
			uint64_t r = xorshift(&x), bits;
			switch (i % 6) {
			case 0:   /* any bits, exponents around the range */
				bits = (r & 0x800fffffffffffffull) | ((uint64_t)(1023 - 20 + (r >> 52) % 75) << 52);
				memcpy(&d, &bits, sizeof(d));
				break;
			case 1:   /* ns / 1e9 */
				d = (double)(r >> (r % 40)) / 1e9;
				break;
			case 2:   /* boot time + start time */
				d = (double)(1700000000 + r % 100000000) + (double)(xorshift(&x) >> 14) / 1e9;
				break;
			case 3:   /* a percent / 100, a rate */
				d = (double)(r % 1000000) / 997.0 / 100.0;
				break;
			case 4:   /* 16 and 17 significant digits: ties and near-ties of the 16th */
				d = (double)(r % 100000000000000000ull) / (double)(1ull << (r % 60)) /
				    (double)(1ull << (xorshift(&x) % 64));
				break;
			default:  /* odd multiples of a half, quarter, ...: exact ties */
				d = (double)((r >> 20) | 1) / (double)(2ull << (r % 30));
				break;
			}
		}
		snprintf(want, sizeof(want), "%.15g", d);
		memset(got, 'x', sizeof(got));
		if ((len = agent_prom_g15(got, d))) {
			got[len] = '\0';
			assert_string_equal(got, want);
			taken++;
		} else {
			/* Not taken: only exponent notation, zero or non-finite. */
			assert_true(strchr(want, 'e') || d == 0 || !isfinite(d) || !strcmp(want, "inf"));
		}
		total++;
	}
	/* The range matters: most of those values go the fast way. */
	assert_true(taken > total / 2);
}

/* An agent_buf keeps everything, in order, across its growths (past the
 * 2 MiB from which it asks for huge pages). */
static void test_prom_buf_grows(void **state)
{
	char want[16];
	size_t off = 0;
	struct agent_buf b;
	(void)state;

	agent_buf_init(&b);
	for (unsigned i = 0; i < 400000; i++) {
		agent_prom_u64(&b, i);
		agent_buf_putc(&b, i % 7 ? ' ' : '\n');
		assert_true(b.len <= b.cap);
	}
	assert_false(b.failed);
	assert_true(b.len > (2u << 20));
	for (unsigned i = 0; i < 400000; i++) {
		int n = snprintf(want, sizeof(want), "%u%c", i, i % 7 ? ' ' : '\n');
		assert_memory_equal(b.p + off, want, (size_t)n);
		off += (size_t)n;
	}
	assert_int_equal(off, b.len);
	free(b.p);
}

/* agent_prom_u64 writes what "%llu" writes. */
static void test_prom_u64(void **state)
{
	uint64_t v[] = { 0, 1, 9, 10, 999999999999999ull, 1000000000000000ull, 9007199254740993ull, UINT64_MAX };
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char want[32], *got;

		PROM_TEXT(got, agent_prom_u64(b, v[i]));
		snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
		assert_string_equal(got, want);
		free(got);
	}
}

static void test_prom_label_value(void **state)
{
	char *got;
	(void)state;

	PROM_TEXT(got, agent_prom_label_value(b, "a \"b\" c\\d\ne\x1b[31m\x7f \xc3\xa9 \xff\xfe x"));
	assert_string_equal(got, "a \\\"b\\\" c\\\\d\\ne?[31m? \xc3\xa9 ?? x");
	free(got);
}

/* A frame of processes for the compat list: pid, start time, comm; the
 * row's values follow from the pid. */
static struct agent_snap *compat_snap(const int32_t *pids, const uint64_t *starts, const char *const *comms,
				      size_t n, uint64_t seq)
{
	struct vmw_frame *f = calloc(1, sizeof(*f));
	struct agent_snap *s;

	f->procs = calloc(n, sizeof(*f->procs));
	f->nprocs = n;
	for (size_t i = 0; i < n; i++) {
		struct vmw_sample *x = &f->procs[i];
		x->proc.pid = pids[i];
		x->proc.start_time_ns = starts[i];
		snprintf(x->proc.comm, sizeof(x->proc.comm), "%s", comms[i]);
		x->proc.state = pids[i] % 2 ? 'S' : 'R';
		x->proc.prio = 100 + pids[i];
		x->proc.rss_anon_bytes = (uint64_t)pids[i] << 20;
		x->proc.rss_file_bytes = 4096;
		x->proc.vsz_bytes = (uint64_t)pids[i] << 30;
		x->cpu_percent = 0.5 * pids[i] + (double)seq;
		x->mem_percent = 0.125 * pids[i];
	}
	s = agent_snap_build(f, NULL, seq, 16);
	assert_non_null(s);
	return s;
}

/* One row as the compat API printed it: type, then its values. */
static void assert_row(json_t *r, const char *type, const char *state, int pid, const char *name, int prio,
		       double cpu, int64_t rss_kib, int64_t vsz_kib, double mem)
{
	assert_string_equal(json_string_value(json_object_get(r, "type")), type);
	assert_string_equal(json_string_value(json_object_get(r, "state")), state);
	assert_int_equal(json_integer_value(json_object_get(r, "pid")), pid);
	assert_string_equal(json_string_value(json_object_get(r, "name")), name);
	assert_int_equal(json_integer_value(json_object_get(r, "priority")), prio);
	assert_true(json_real_value(json_object_get(r, "cpu_usage")) == cpu);
	assert_int_equal(json_integer_value(json_object_get(r, "physical_memory_usage")), rss_kib);
	assert_int_equal(json_integer_value(json_object_get(r, "virtual_memory_usage")), vsz_kib);
	assert_true(json_real_value(json_object_get(r, "memory_percent")) == mem);
	assert_int_equal(json_object_size(r), 9);
}

/* The compat list against a baseline that outlives its snapshot: new (pid
 * not there, or reused), existed, ended with their last values, by pid. */
static void test_compat_diff(void **state)
{
	int32_t pa[] = { 3, 1, 2 }, pb[] = { 4, 2, 1 };
	uint64_t sa[] = { 30, 10, 20 }, sb[] = { 40, 21, 10 };
	const char *ca[] = { "sh", "init", "old" }, *cb[] = { "cron", "new", "init" };
	struct agent_snap *a = compat_snap(pa, sa, ca, 3, 1), *b;
	struct agent_base *base = agent_base_build(a), *self;
	json_t *rows;
	(void)state;

	assert_non_null(base);
	agent_snap_unref(a);           /* the baseline keeps what it needs */
	b = compat_snap(pb, sb, cb, 3, 2);
	rows = agent_compat_diff(b, base);
	assert_int_equal(json_array_size(rows), 5);
	assert_row(json_array_get(rows, 0), "Existed Process", vmw_report_state_name('S'), 1, "init", 101,
		   2.5, 1028, 1 << 20, 0.125);
	assert_row(json_array_get(rows, 1), "New Process", vmw_report_state_name('R'), 2, "new", 102,
		   3.0, 2052, 2 << 20, 0.25);
	assert_row(json_array_get(rows, 2), "New Process", vmw_report_state_name('R'), 4, "cron", 104,
		   4.0, 4100, 4 << 20, 0.5);
	/* Ended: the values of the baseline's frame (seq 1), not the new one's. */
	assert_row(json_array_get(rows, 3), "Ended Process", vmw_report_state_name('R'), 2, "old", 102,
		   2.0, 2052, 2 << 20, 0.25);
	assert_row(json_array_get(rows, 4), "Ended Process", vmw_report_state_name('S'), 3, "sh", 103,
		   2.5, 3076, 3 << 20, 0.375);
	json_decref(rows);
	/* No baseline, or the snapshot's own: every process existed. */
	self = agent_base_build(b);
	for (int k = 0; k < 2; k++) {
		rows = agent_compat_diff(b, k ? self : NULL);
		assert_int_equal(json_array_size(rows), 3);
		for (size_t i = 0; i < 3; i++)
			assert_string_equal(json_string_value(json_object_get(json_array_get(rows, i), "type")),
					    "Existed Process");
		assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 2), "pid")), 4);
		json_decref(rows);
	}
	assert_null(agent_base_build(NULL));
	agent_base_unref(self);
	agent_base_unref(base);
	agent_snap_unref(b);
}

/* A snapshot's groups: one per name, sorted as strcmp sorts them (names
 * that differ after their 8th byte, bytes above 0x7f), kernel threads
 * together, CPU carried over from the previous snapshot and kept for a
 * name whose processes all exited. */
static struct vmw_frame *groups_frame(const char *const *comms, size_t n, uint64_t utime_ns)
{
	struct vmw_frame *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(f->procs = calloc(n, sizeof(*f->procs)));
	f->nprocs = n;
	for (size_t i = 0; i < n; i++) {
		struct vmw_proc *p = &f->procs[i].proc;
		p->pid = (int32_t)i + 1;
		p->start_time_ns = 1000;
		p->kthread = comms[i][0] == 'k';
		snprintf(p->comm, sizeof(p->comm), "%s", comms[i]);
		p->nr_threads = 1;
		p->utime_ns = utime_ns;
	}
	return f;
}

static void test_snapshot_groups(void **state)
{
	static const char *const a[] = { "abcdefgh1", "\xc3\xa9t\xc3\xa9", "abcdefgh0", "abc", "kworker/0:1",
					 "abd", "abcdefgh1", "ksoftirqd/0", "abcdefgh", "", "z" };
	static const char *const b[] = { "abc", "abcdefgh1" };
	static const char *const want[] = { "", "[kernel]", "abc", "abcdefgh", "abcdefgh0", "abcdefgh1",
					    "abd", "z", "\xc3\xa9t\xc3\xa9" };
	struct agent_snap *s1, *s2;
	(void)state;

	s1 = agent_snap_build(groups_frame(a, ARRAY_SIZE(a), 5), NULL, 1, 64);
	assert_non_null(s1);
	assert_int_equal(s1->ngroups, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_string_equal(s1->groups[i].name, want[i]);
	assert_int_equal(s1->groups[1].procs, 2);        /* [kernel] */
	assert_int_equal(s1->groups[5].procs, 2);        /* abcdefgh1 */
	assert_int_equal(s1->groups[5].user_ns, 10);
	s2 = agent_snap_build(groups_frame(b, ARRAY_SIZE(b), 7), s1, 2, 64);
	assert_non_null(s2);
	assert_int_equal(s2->ngroups, ARRAY_SIZE(want));  /* the exited ones stay */
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_string_equal(s2->groups[i].name, want[i]);
	assert_int_equal(s2->groups[2].procs, 1);        /* abc: pid 1 now, started at 1000 as before */
	assert_int_equal(s2->groups[5].procs, 1);        /* abcdefgh1: pid 2, "été" before */
	assert_int_equal(s2->groups[3].procs, 0);
	assert_int_equal(s2->groups[3].user_ns, 5);      /* abcdefgh: kept */
	agent_snap_unref(s1);
	agent_snap_unref(s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_set_keys),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_history_ring),
		cmocka_unit_test(test_history_restart_on_pid_reuse),
		cmocka_unit_test(test_reset_clock),
		cmocka_unit_test(test_history_runs),
		cmocka_unit_test(test_history_idle_is_small),
		cmocka_unit_test(test_events_ring),
		cmocka_unit_test(test_prom_number),
		cmocka_unit_test(test_prom_g15),
		cmocka_unit_test(test_prom_buf_grows),
		cmocka_unit_test(test_prom_u64),
		cmocka_unit_test(test_prom_label_value),
		cmocka_unit_test(test_compat_diff),
		cmocka_unit_test(test_snapshot_groups),
	};
	vmw_agent_log_set_level(VMW_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
