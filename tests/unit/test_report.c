/* SPDX-License-Identifier: MIT */
/* src/report: task-state classes, load averages, CPU-split validity, guest
 * strings, and the shapes of the summary, process and event objects. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "report/report.h"

static void test_task_classes(void **state)
{
	(void)state;
	assert_int_equal(vmw_report_task_class('R'), VMW_TASK_RUNNING);
	assert_int_equal(vmw_report_task_class('S'), VMW_TASK_SLEEPING);
	assert_int_equal(vmw_report_task_class('D'), VMW_TASK_DISK_SLEEP);
	assert_int_equal(vmw_report_task_class('T'), VMW_TASK_STOPPED);
	assert_int_equal(vmw_report_task_class('t'), VMW_TASK_STOPPED);
	assert_int_equal(vmw_report_task_class('Z'), VMW_TASK_ZOMBIE);
	assert_int_equal(vmw_report_task_class('I'), VMW_TASK_IDLE);
	assert_int_equal(vmw_report_task_class('X'), VMW_TASK_OTHER);
	assert_int_equal(vmw_report_task_class('?'), VMW_TASK_OTHER);
	assert_string_equal(vmw_report_task_class_name(VMW_TASK_DISK_SLEEP), "disk_sleep");
	assert_string_equal(vmw_report_state_name('D'), "disk-sleep");
	assert_string_equal(vmw_report_state_name('t'), "tracing-stop");
}

static void test_tasks_count(void **state)
{
	struct vmw_sample s[4];
	struct vmw_frame f = { .procs = s, .nprocs = 4 };
	struct vmw_report_tasks t;

	(void)state;
	memset(s, 0, sizeof(s));
	s[0].proc.state = 'R'; s[0].proc.nr_threads = 3;
	s[1].proc.state = 'S'; s[1].proc.nr_threads = 1;
	s[2].proc.state = 'I'; s[2].proc.kthread = true;   /* nr_threads 0 counts as 1 */
	s[3].proc.state = 'D'; s[3].proc.nr_threads = 2;
	vmw_report_tasks_count(&f, &t);
	assert_int_equal(t.total, 4);
	assert_int_equal(t.threads, 7);
	assert_int_equal(t.kernel_threads, 1);
	assert_int_equal(t.by_class[VMW_TASK_RUNNING], 1);
	assert_int_equal(t.by_class[VMW_TASK_SLEEPING], 1);
	assert_int_equal(t.by_class[VMW_TASK_IDLE], 1);
	assert_int_equal(t.by_class[VMW_TASK_DISK_SLEEP], 1);
}

static void test_load(void **state)
{
	struct vmw_summary sm = { .load = { 2048, 839, 1024 } };
	double l[3];

	(void)state;
	vmw_report_load(&sm, l);
	assert_true(l[0] == 1.0 && l[2] == 0.5);
	assert_true(l[1] > 0.409 && l[1] < 0.41);
}

/* The split is valid only when measured: not first, a summary, per-vCPU
 * values, and parts that add up (zeros after a vCPU change are not). */
static void test_cpu_split_valid(void **state)
{
	struct vmw_cpu_percent per[1] = { { .user = 30, .idle = 70 } };
	struct vmw_frame f = { .summary_ok = true, .cpu = per,
			       .cpu_total = { .user = 30, .idle = 70 } };

	(void)state;
	assert_true(vmw_report_cpu_split_valid(&f));
	f.first = true;
	assert_false(vmw_report_cpu_split_valid(&f));
	f.first = false;
	f.cpu_total = (struct vmw_cpu_percent){ 0 };     /* online vCPUs changed */
	assert_false(vmw_report_cpu_split_valid(&f));
	f.cpu_total.idle = 100;
	f.summary_ok = false;
	assert_false(vmw_report_cpu_split_valid(&f));
}

/* One VM's use: busy = 100 - idle - iowait, used = total - available, the
 * busiest process (none on a first frame), a thread count of 1 for a process
 * that reports 0. */
static void test_use(void **state)
{
	struct vmw_cpu_percent per[1] = { { .user = 30, .iowait = 10, .idle = 60 } };
	struct vmw_sample s[3] = { { .proc = { .pid = 1, .comm = "init", .nr_threads = 1 }, .cpu_percent = 1 },
				   { .proc = { .pid = 7, .comm = "burn", .nr_threads = 3 }, .cpu_percent = 55 },
				   { .proc = { .pid = 9, .comm = "z", .nr_threads = 0 }, .cpu_percent = 5 } };
	struct vmw_frame f = { .summary_ok = true, .cpu = per, .cpu_total = per[0], .procs = s, .nprocs = 3,
			       .summary = { .mem_total_kb = 1000, .mem_available_kb = 400, .mem_free_kb = 300,
					    .cached_kb = 50, .buffers_kb = 10, .ncpus = 1, .load = { 2048, 0, 0 } } };
	struct vmw_report_use u;
	json_t *j;

	(void)state;
	vmw_report_use_of(&f, &u);
	assert_true(u.cpu_ok && u.mem_ok && u.load_ok && u.top_ok);
	assert_true(u.busy > 29.99 && u.busy < 30.01);
	assert_int_equal(u.mem_used, 600 * 1024);
	assert_int_equal(u.mem_cached, 60 * 1024);
	assert_int_equal(u.threads, 5);
	assert_int_equal(u.top_pid, 7);
	assert_string_equal(u.top_comm, "burn");
	assert_true(u.load[0] > 0.99 && u.load[0] < 1.01);
	j = vmw_report_use(&f);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "memory"), "used_bytes")), 600 * 1024);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "top_process"), "pid")), 7);
	json_decref(j);
	f.first = true;
	vmw_report_use_of(&f, &u);
	assert_false(u.top_ok || u.cpu_ok);
	vmw_report_use_of(NULL, &u);
	assert_false(u.mem_ok || u.cpu_ok || u.processes);
	j = vmw_report_use(NULL);
	assert_true(json_is_null(json_object_get(j, "memory")) && json_is_null(json_object_get(j, "cpu")));
	json_decref(j);
}

static void test_string(void **state)
{
	json_t *j;

	(void)state;
	j = vmw_report_string("ok \xc3\xa9");
	assert_string_equal(json_string_value(j), "ok \xc3\xa9");
	json_decref(j);
	j = vmw_report_string("a\xff" "b");
	assert_string_equal(json_string_value(j), "a\xef\xbf\xbd" "b");
	json_decref(j);
	j = vmw_report_string(NULL);
	assert_string_equal(json_string_value(j), "");
	json_decref(j);
	j = vmw_report_string_or_null("");
	assert_true(json_is_null(j));
	json_decref(j);
}

/* Without a summary every summary key is there and null; the split is null
 * when not valid; tasks come from the frame. */
static void test_summary_shapes(void **state)
{
	struct vmw_sample s[1];
	struct vmw_cpu_stat cs[1] = { { .cpu = 0, .t = { .user = 1500000000ull } } };
	struct vmw_cpu_percent per[1] = { { 0 } };
	struct vmw_frame f = { .procs = s, .nprocs = 1, .mem_total_bytes = 1 << 20, .cpu = per };
	json_t *o, *cpu;

	(void)state;
	memset(s, 0, sizeof(s));
	s[0].proc.state = 'R';
	o = vmw_report_summary(NULL, &f);
	assert_true(json_is_false(json_object_get(o, "available")));
	assert_true(json_is_null(json_object_get(o, "uptime_seconds")));
	assert_true(json_is_null(json_object_get(o, "cpu")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "memory"), "total_bytes")), 1 << 20);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "tasks"), "running")), 1);
	json_decref(o);

	f.summary_ok = true;
	f.summary = (struct vmw_summary){ .load = { 1024, 0, 0 }, .ncpus = 1, .cpu = cs, .mem_total_kb = 1024,
					  .mem_available_kb = 256 };
	o = vmw_report_summary(&f.summary, &f);
	cpu = json_object_get(o, "cpu");
	assert_true(json_is_null(json_object_get(cpu, "percent")));          /* zeros: not valid */
	assert_true(json_is_null(json_object_get(json_array_get(json_object_get(cpu, "per_cpu"), 0), "percent")));
	assert_true(json_real_value(json_object_get(json_object_get(json_array_get(json_object_get(cpu, "per_cpu"), 0),
								     "seconds"), "user")) == 1.5);
	assert_true(json_real_value(json_array_get(json_object_get(o, "load"), 0)) == 0.5);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "memory"), "used_bytes")), 768 * 1024);
	json_decref(o);

	o = vmw_report_summary(&f.summary, NULL);                         /* summary --json */
	assert_true(json_is_null(json_object_get(o, "tasks")));
	json_decref(o);

	f.summary.mem_total_kb = 4324291225137196092ull;                  /* torn read while rebooting */
	o = vmw_report_summary(&f.summary, &f);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "memory"), "total_bytes")), INT64_MAX);
	json_decref(o);
}

static void test_sample_and_event(void **state)
{
	double tcpu[1] = { 12.5 };
	struct vmw_thread th[1] = { { .tid = 7, .state = 'S' } };
	struct vmw_sample x = { .cpu_percent = 50, .is_new = true, .thread_cpu_percent = tcpu };
	struct vmw_event e = { .type = VMW_EVENT_EXIT, .pid = 9, .comm = "x\xfe" };
	json_t *o;

	(void)state;
	x.proc.pid = 7;
	x.proc.state = 'S';
	x.proc.threads = th;
	x.proc.nthreads_listed = 1;
	o = vmw_report_sample(&x);
	assert_true(json_is_true(json_object_get(o, "new")));
	assert_null(json_object_get(o, "is_new"));
	assert_true(json_is_null(json_object_get(o, "cmdline")));
	assert_true(json_real_value(json_object_get(json_array_get(json_object_get(o, "tasks"), 0), "cpu_percent"))
		    == 12.5);
	json_decref(o);
	o = vmw_report_event(&e);
	assert_string_equal(json_string_value(json_object_get(o, "type")), "exit");
	assert_string_equal(json_string_value(json_object_get(o, "comm")), "x\xef\xbf\xbd");
	json_decref(o);
}

/* The streamed objects (ps --json, top --json) are byte for byte jansson's
 * dump of vmw_report_proc, vmw_report_sample and vmw_report_event, for
 * every kind of value; an object or thread jansson cannot pack (a state byte
 * that is not UTF-8) is left out the same way, and so is a key whose real
 * is NaN or infinite. */
typedef bool (*stream_fn)(FILE *f, const char *sep, const void *x);

static bool proc_stream(FILE *f, const char *sep, const void *x) { return vmw_report_proc_stream(f, sep, x); }
static bool sample_stream(FILE *f, const char *sep, const void *x) { return vmw_report_sample_stream(f, sep, x); }
static bool event_stream(FILE *f, const char *sep, const void *x) { return vmw_report_event_stream(f, sep, x); }

/* o: the jansson object (taken over), or NULL where jansson packs none. */
static void assert_same_bytes(json_t *o, stream_fn stream, const void *x)
{
	char *want = o ? json_dumps(o, JSON_COMPACT) : NULL;
	char *got = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&got, &len);

	assert_non_null(f);
	bool ok = stream(f, ",", x);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ok, want != NULL);
	if (want) {
		assert_int_equal(got[0], ',');
		assert_string_equal(got + 1, want);
	} else {
		assert_int_equal(len, 0);
	}
	free(want);
	free(got);
	json_decref(o);
}

static void assert_stream_same(const struct vmw_proc *p)
{
	assert_same_bytes(vmw_report_proc(p), proc_stream, p);
}

static void assert_sample_same(const struct vmw_sample *x)
{
	assert_same_bytes(vmw_report_sample(x), sample_stream, x);
}

static void assert_event_same(const struct vmw_event *e)
{
	assert_same_bytes(vmw_report_event(e), event_stream, e);
}

static void test_proc_stream(void **state)
{
	static char long_arg[3000];
	char *argv[] = { "/usr/bin/x", "", "tab\tnl\nq\"bs\\ctl\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
			 "bad\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80",
			 "\xc3", "\xe2\x82", long_arg, NULL };
	struct vmw_thread th[3] = {
		{ .tid = 7, .comm = "worker\x02", .state = 'S', .prio = 20, .nice = 0, .utime_ns = 1, .stime_ns = 2,
		  .runtime_ns = 3, .start_time_ns = 4, .cpu = -1 },
		{ .tid = 8, .comm = "w\xfe", .state = (char)0xc3, .cpu = 1 },
		{ .tid = 9, .comm = "z", .state = '\0', .cpu = 0 },
	};
	struct vmw_proc p = {
		.pid = 4242, .ppid = 1, .comm = "sshd: r\xe9", .state = 'R', .uid = 4294967295u, .euid = 1000,
		.gid = 7, .egid = 0x80000000u, .nr_threads = 3, .prio = -51, .nice = -20,
		.utime_ns = 0x8000000000000001ull, .stime_ns = 99, .runtime_ns = 1ull << 40, .start_time_ns = 5,
		.rss_anon_bytes = 4096, .rss_file_bytes = 8192, .rss_shmem_bytes = 1, .swap_bytes = 2, .vsz_bytes = 3,
		.cmdline = argv, .threads = th, .nthreads_listed = 3, .io_ok = true, .io_rchar = 1, .io_wchar = 2,
		.io_syscr = 3, .io_syscw = 4, .io_read_bytes = 5, .io_write_bytes = 6,
		.io_cancelled_write_bytes = UINT64_MAX, .min_flt = 10, .maj_flt = 11, .nvcsw = 12, .nivcsw = 13,
		.user = "root", .incomplete = true,
		.cgroup = "/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/"
			  "cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
		.cgroup_memory_ok = true, .cgroup_memory_bytes = 1ull << 30,
		.jobctl_ok = true, .pgrp = 4242, .session = -7, .tty_ok = true, .tty_nr = 136 << 8 | 3, .tpgid = -1,
		.cgroups_v1 = "12:cpu,cpuacct:/a:b/t\tq\"\n3:name=systemd:/caf\xc3\xa9\n2:net_cls,name=x:/bad\xff",
	};

	memset(long_arg, 'a', sizeof(long_arg) - 1);
	long_arg[100] = (char)0x80;   /* invalid: the fallback, cut at ~1 KiB */
	assert_stream_same(&p);
	p.cgroup = "/system.slice/ssh.service";
	p.cgroups_v1 = "";
	p.tty_ok = false;
	p.threads = NULL;
	p.user[0] = '\0';
	assert_stream_same(&p);
	p.cgroup = "/";
	p.cgroups_v1 = "1:cpu:/\nnot a line";
	p.cmdline = NULL;
	p.io_ok = false;
	p.cgroup_memory_ok = false;
	p.jobctl_ok = false;
	assert_stream_same(&p);
	p.cgroup = NULL;
	p.cgroups_v1 = NULL;
	p.kthread = true;
	p.comm[0] = '\0';
	assert_stream_same(&p);
	p.state = (char)0xe9;   /* jansson packs no object */
	assert_stream_same(&p);
}

/* Reals as jansson prints them ("%.17g", ".0" added, the exponent without
 * '+' and leading zeros), NaN and infinities left out (io_rate whole), the
 * threads' cpu_percent by their place in "tasks" (after a thread jansson
 * dropped too), the hostile process of test_proc_stream underneath. */
static void test_sample_stream(void **state)
{
	static const double reals[] = {
		0.0, -0.0, 1.0, -1.0, 100.0, 0.1, 1.0 / 3, 33.333333333333336, 99.99999999999999, 1e15, 1e15 + 1,
		999999999999999.0, 1e16, 12345678901234567.0, 1e17, 1e21, 1.5e300, DBL_MAX, -DBL_MAX, DBL_MIN,
		5e-324, 1e-5, 0.0001, 0.00012345, 123456.789, -2.5e-7, 9007199254740993.0, 4503599627370496.5,
		NAN, INFINITY, -INFINITY,
	};
	char *argv[] = { "/usr/bin/x", "caf\xc3\xa9", "bad\xff", "tab\t\x01", NULL };
	struct vmw_thread th[4] = {
		{ .tid = 7, .comm = "worker\x02", .state = 'S', .cpu = -1 },
		{ .tid = 8, .comm = "w\xfe", .state = (char)0xc3, .cpu = 1 },   /* jansson drops it */
		{ .tid = 9, .comm = "z", .state = '\0', .cpu = 0 },
		{ .tid = 10, .comm = "q\"", .state = 'R', .cpu = 3 },
	};
	double tcpu[4];
	struct vmw_sample x = {
		.proc = { .pid = 4242, .ppid = 1, .comm = "sshd: r\xe9", .state = 'R', .uid = 4294967295u,
			  .nr_threads = 4, .prio = -51, .nice = -20, .utime_ns = UINT64_MAX, .cmdline = argv,
			  .threads = th, .nthreads_listed = 4, .io_ok = true, .io_cancelled_write_bytes = UINT64_MAX,
			  .user = "root", .incomplete = true, .jobctl_ok = true, .tty_ok = true, .tpgid = -1,
			  .cgroup = "/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/"
				    "cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
			  .cgroups_v1 = "12:cpu,cpuacct:/a:b/t\tq\"\n3:name=systemd:/caf\xc3\xa9" },
		.cpu_percent = 12.5, .mem_percent = 0.34071404783659387, .rss_delta_bytes = INT64_MIN,
		.thread_cpu_percent = tcpu, .is_new = true,
		.rate = { .rchar = 4096.5, .wchar = 1e-5, .syscr = 3, .syscw = 0.1, .read_bytes = 1e300,
			  .write_bytes = -0.0, .min_flt = 2.5, .maj_flt = 1e16, .nvcsw = 0.0001, .nivcsw = 7 },
	};
	const size_t n = sizeof(reals) / sizeof(reals[0]);   /* 31: prime to 5 and 12 */

	(void)state;
	/* every real field in turn takes every value (the others finite) */
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < 12; k++) {
			struct vmw_sample y = x;
			double *fields[12] = { &y.cpu_percent, &y.mem_percent, &y.rate.rchar, &y.rate.wchar,
					       &y.rate.syscr, &y.rate.syscw, &y.rate.read_bytes, &y.rate.write_bytes,
					       &y.rate.min_flt, &y.rate.maj_flt, &y.rate.nvcsw, &y.rate.nivcsw };
			for (size_t j = 0; j < 12; j++) {
				double v = reals[(i + 5 * j) % n];
				*fields[j] = j == k ? reals[i] : isfinite(v) ? v : 2.5;
			}
			for (size_t j = 0; j < 4; j++)
				tcpu[j] = reals[(i + j) % n];
			assert_sample_same(&y);
		}
	x.proc.io_ok = false;          /* io_rate null, whatever its rates */
	x.rate.syscw = NAN;
	x.is_new = false;
	x.rss_delta_bytes = -4096;
	x.thread_cpu_percent = NULL;   /* threads listed, no rates yet */
	assert_sample_same(&x);
	x.proc.threads = NULL;
	x.proc.cmdline = NULL;
	x.proc.cgroup = NULL;
	x.proc.cgroups_v1 = NULL;
	x.proc.user[0] = '\0';
	x.proc.jobctl_ok = x.proc.tty_ok = false;
	assert_sample_same(&x);
	x.proc.kthread = true;
	assert_sample_same(&x);
	x.proc.state = (char)0xe9;     /* jansson packs no object */
	assert_sample_same(&x);
}

/* Reals from random bit patterns (subnormals, NaNs with payloads, every
 * exponent) print as jansson prints them. */
static void test_sample_stream_reals(void **state)
{
	struct vmw_sample x = { .proc = { .pid = 1, .comm = "init", .state = 'S' } };
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		uint64_t bits;
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		bits = seed;
		if (i % 4 == 1)   /* exponents near 0: the percentages and rates top shows */
			bits = (bits & 0x800fffffffffffffull) | (uint64_t)(1013 + seed % 40) << 52;
		else if (i % 4 == 2)   /* integers and halves */
			bits = 0;
		memcpy(&x.cpu_percent, &bits, sizeof(bits));
		if (i % 4 == 2)
			x.cpu_percent = (double)(int64_t)(seed >> (seed % 64)) / (i % 8 == 2 ? 1 : 2);
		x.mem_percent = -x.cpu_percent;
		assert_sample_same(&x);
	}
}

static void test_event_stream(void **state)
{
	struct vmw_event e = { .type = VMW_EVENT_NEW, .pid = 77, .comm = "kworker/0:1-events", .start_time_ns = 5,
			       .runtime_ns = 6, .rss_bytes = 7, .vsz_bytes = 8 };

	(void)state;
	assert_event_same(&e);
	e.type = VMW_EVENT_EXIT;
	e.pid = -1;
	e.pid_reused = true;
	e.start_time_ns = e.runtime_ns = e.rss_bytes = e.vsz_bytes = UINT64_MAX;
	snprintf(e.comm, sizeof(e.comm), "%s", "q\"b\\\x01\x1f\xff\xc3\xa9\n");
	assert_event_same(&e);
	memset(e.comm, 'x', sizeof(e.comm) - 1);
	e.comm[sizeof(e.comm) - 1] = '\0';
	assert_event_same(&e);
	e.comm[0] = '\0';
	e.type = 0;                    /* not "new": "exit" */
	assert_event_same(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_task_classes),
		cmocka_unit_test(test_tasks_count),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_cpu_split_valid),
		cmocka_unit_test(test_string),
		cmocka_unit_test(test_use),
		cmocka_unit_test(test_summary_shapes),
		cmocka_unit_test(test_sample_and_event),
		cmocka_unit_test(test_proc_stream),
		cmocka_unit_test(test_sample_stream),
		cmocka_unit_test(test_sample_stream_reals),
		cmocka_unit_test(test_event_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
