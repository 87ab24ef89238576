/* SPDX-License-Identifier: MIT */
/* The sampler's comparison of a frame with the previous one (pure):
 * CPU% over the host interval, MEM%, RSS deltas, new/exit/pid-reuse events,
 * thread rates; and the session's back-off policy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sampler/sampler.h"

#define MS 1000000ull
#define MiB (1ull << 20)

static struct vmw_proc proc(int32_t pid, const char *comm, uint64_t start, uint64_t runtime, uint64_t rss)
{
	struct vmw_proc p = { .pid = pid, .start_time_ns = start, .runtime_ns = runtime,
			      .rss_anon_bytes = rss, .vsz_bytes = 4 * rss };
	snprintf(p.comm, sizeof(p.comm), "%s", comm);
	return p;
}

static struct vmw_task_prev prev(int32_t id, const char *comm, uint64_t start, uint64_t runtime, uint64_t rss)
{
	struct vmw_task_prev q = { .id = id, .start_time_ns = start, .runtime_ns = runtime,
				   .rss_bytes = rss, .vsz_bytes = 4 * rss };
	snprintf(q.comm, sizeof(q.comm), "%s", comm);
	return q;
}

/* A frame of n processes over interval_ns, 1 GiB of guest RAM. */
static struct vmw_frame *frame(const struct vmw_proc *procs, size_t n, uint64_t interval_ns)
{
	struct vmw_frame *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->procs = calloc(n ? n : 1, sizeof(*f->procs));
	assert_non_null(f->procs);
	for (size_t i = 0; i < n; i++)
		f->procs[i].proc = procs[i];
	f->nprocs = n;
	f->interval_ns = interval_ns;
	f->mem_total_bytes = 1024 * MiB;
	return f;
}

/* The test owns the procs' threads (static arrays): free only what compare made. */
static void frame_done(struct vmw_frame *f)
{
	for (size_t i = 0; i < f->nprocs; i++)
		free(f->procs[i].thread_cpu_percent);
	free(f->procs);
	free(f->events);
	free(f);
}

/* The walk's records become samples in the walk's own array: every record
 * arrives whole (its pointers too), whatever the room the walk left, and
 * every sample's own part starts zeroed. */
static void test_samples_from_walk(void **state)
{
	const size_t counts[] = { 0, 1, 2, 147, 1046 };

	(void)state;
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		size_t n = counts[c];
		struct vmw_walk w = { .nprocs = n };
		struct vmw_proc *want = calloc(n ? n : 1, sizeof(*want));
		struct vmw_sample zero, *x;

		/* as the walk leaves it: room for more records than it found */
		w.procs = calloc(n + n / 8 + 16, sizeof(*w.procs));
		assert_non_null(want);
		assert_non_null(w.procs);
		for (size_t i = 0; i < n; i++) {
			struct vmw_proc *p = &w.procs[i];
			*p = proc((int32_t)(i + 1), "p", 1000 + i, 7 * i, 4096 * i);
			snprintf(p->comm, sizeof(p->comm), "kworker/%zu:1-events_power_efficient", i);
			memset(p->user, 'a' + (int)(i % 26), sizeof(p->user) - 1);
			p->cgroup = (char *)p + 1;           /* never dereferenced: compared */
			p->nvcsw = ~(uint64_t)i;
			p->incomplete = i % 3 == 0;
			want[i] = *p;
		}
		assert_non_null(x = vmw_samples_from_walk(&w));
		assert_null(w.procs);
		memset(&zero, 0, sizeof(zero));
		for (size_t i = 0; i < n; i++) {
			assert_memory_equal(&x[i].proc, &want[i], sizeof(want[i]));
			assert_memory_equal((uint8_t *)&x[i] + sizeof(x[i].proc), (uint8_t *)&zero + sizeof(zero.proc),
					    sizeof(zero) - sizeof(zero.proc));
		}
		free(x);
		free(want);
	}
}

static void test_first_frame(void **state)
{
	(void)state;
	struct vmw_proc p[] = { proc(1, "init", 0, 500 * MS, 8 * MiB), proc(7, "sh", 10, 30 * MS, 2 * MiB) };
	struct vmw_prev_frame none = { .valid = false };
	struct vmw_frame *f = frame(p, 2, 0);

	assert_int_equal(vmw_sampler_compare(&none, f), 0);
	/* Nothing to compare with: no rates, nothing new, no events. */
	assert_int_equal(f->nevents, 0);
	for (size_t i = 0; i < 2; i++) {
		assert_false(f->procs[i].is_new);
		assert_true(f->procs[i].cpu_percent == 0.0);
		assert_int_equal(f->procs[i].rss_delta_bytes, 0);
	}
	assert_true(f->procs[0].mem_percent > 0.78 && f->procs[0].mem_percent < 0.79);   /* 8 / 1024 */
	assert_true(f->cpu_percent_total == 0.0);
	frame_done(f);
}

static void test_deltas_saturate(void **state)
{
	(void)state;
	/* init ran 250 ms of a 1 s interval; sh's counter went backwards (a torn
	 * or adjusted guest counter): 0, never negative. */
	struct vmw_task_prev q[] = { prev(1, "init", 0, 500 * MS, 8 * MiB), prev(7, "sh", 10, 40 * MS, 2 * MiB) };
	struct vmw_proc p[] = { proc(1, "init", 0, 750 * MS, 10 * MiB), proc(7, "sh", 10, 30 * MS, 1 * MiB) };
	struct vmw_prev_frame pv = { .valid = true, .procs = q, .nprocs = 2 };
	struct vmw_frame *f = frame(p, 2, 1000 * MS);

	assert_int_equal(vmw_sampler_compare(&pv, f), 0);
	assert_int_equal(f->nevents, 0);
	assert_true(f->procs[0].cpu_percent > 24.999 && f->procs[0].cpu_percent < 25.001);
	assert_int_equal(f->procs[0].rss_delta_bytes, 2 * MiB);
	assert_true(f->procs[1].cpu_percent == 0.0);
	assert_int_equal(f->procs[1].rss_delta_bytes, -(int64_t)MiB);
	assert_true(f->cpu_percent_total > 24.999 && f->cpu_percent_total < 25.001);
	frame_done(f);
}

/* Counter rates per second, beside CPU%: rchar grew 3 MiB in 500 ms (6 MiB/s);
 * a counter that went backwards gives 0; a new process counted everything
 * within the interval; a first frame has no rates. */
static void test_counter_rates(void **state)
{
	(void)state;
	struct vmw_task_prev q[] = { prev(1, "dd", 0, 0, MiB) };
	struct vmw_proc p[] = { proc(1, "dd", 0, 0, MiB), proc(5, "cat", 50, 0, MiB) };
	struct vmw_prev_frame pv = { .valid = true, .procs = q, .nprocs = 1 }, none = { .valid = false };
	struct vmw_frame *f;

	q[0].counters[0] = 10 * MiB;   /* rchar */
	q[0].counters[1] = 4 * MiB;    /* wchar: goes backwards below */
	q[0].counters[6] = 100;        /* min_flt */
	q[0].counters[9] = 7;          /* nivcsw */
	p[0].io_ok = true;
	p[0].io_rchar = 13 * MiB;
	p[0].io_wchar = 1 * MiB;
	p[0].min_flt = 150;
	p[0].nivcsw = 8;
	p[1].io_write_bytes = 4096;
	p[1].maj_flt = 3;
	f = frame(p, 2, 500 * MS);
	assert_int_equal(vmw_sampler_compare(&pv, f), 0);
	assert_true(f->procs[0].rate.rchar > 6.0 * MiB - 1 && f->procs[0].rate.rchar < 6.0 * MiB + 1);
	assert_true(f->procs[0].rate.wchar == 0.0);
	assert_true(f->procs[0].rate.min_flt > 99.99 && f->procs[0].rate.min_flt < 100.01);
	assert_true(f->procs[0].rate.nivcsw > 1.99 && f->procs[0].rate.nivcsw < 2.01);
	assert_true(f->procs[1].is_new);
	assert_true(f->procs[1].rate.write_bytes > 8191.9 && f->procs[1].rate.write_bytes < 8192.1);
	assert_true(f->procs[1].rate.maj_flt > 5.99 && f->procs[1].rate.maj_flt < 6.01);
	frame_done(f);

	f = frame(p, 2, 0);
	assert_int_equal(vmw_sampler_compare(&none, f), 0);
	assert_true(f->procs[0].rate.rchar == 0.0 && f->procs[1].rate.write_bytes == 0.0);
	frame_done(f);
}

static void test_new_and_exit(void **state)
{
	(void)state;
	/* sleep (pid 9) exited; cat (pid 12) started and ran 100 ms, all of it in
	 * this 500 ms interval. */
	struct vmw_task_prev q[] = { prev(1, "init", 0, 500 * MS, 8 * MiB), prev(9, "sleep", 20, 5 * MS, MiB) };
	struct vmw_proc p[] = { proc(1, "init", 0, 500 * MS, 8 * MiB), proc(12, "cat", 30, 100 * MS, MiB) };
	struct vmw_prev_frame pv = { .valid = true, .procs = q, .nprocs = 2 };
	struct vmw_frame *f = frame(p, 2, 500 * MS);

	assert_int_equal(vmw_sampler_compare(&pv, f), 0);
	assert_false(f->procs[0].is_new);
	assert_true(f->procs[1].is_new);
	assert_true(f->procs[1].cpu_percent > 19.999 && f->procs[1].cpu_percent < 20.001);
	assert_int_equal(f->nevents, 2);
	assert_int_equal(f->events[0].type, VMW_EVENT_NEW);
	assert_int_equal(f->events[0].pid, 12);
	assert_string_equal(f->events[0].comm, "cat");
	assert_int_equal(f->events[1].type, VMW_EVENT_EXIT);
	assert_int_equal(f->events[1].pid, 9);
	assert_false(f->events[1].pid_reused);
	/* An exit carries the last values seen. */
	assert_string_equal(f->events[1].comm, "sleep");
	assert_int_equal(f->events[1].runtime_ns, 5 * MS);
	assert_int_equal(f->events[1].rss_bytes, MiB);
	frame_done(f);

	/* An incomplete walk cannot tell that a process is gone: no exit. */
	f = frame(p, 2, 500 * MS);
	f->truncated = true;
	assert_int_equal(vmw_sampler_compare(&pv, f), 0);
	assert_int_equal(f->nevents, 1);
	assert_int_equal(f->events[0].type, VMW_EVENT_NEW);
	frame_done(f);
}

static void test_pid_reuse(void **state)
{
	(void)state;
	/* Pid 40 now has another start time: the old process exited and a new
	 * one took the pid. Its whole runtime is in this interval. */
	struct vmw_task_prev q[] = { prev(40, "old", 100, 900 * MS, 4 * MiB) };
	struct vmw_proc p[] = { proc(40, "new", 5000, 50 * MS, MiB) };
	struct vmw_prev_frame pv = { .valid = true, .procs = q, .nprocs = 1 };
	struct vmw_frame *f = frame(p, 1, 1000 * MS);

	assert_int_equal(vmw_sampler_compare(&pv, f), 0);
	assert_true(f->procs[0].is_new);
	assert_true(f->procs[0].cpu_percent > 4.999 && f->procs[0].cpu_percent < 5.001);
	assert_int_equal(f->procs[0].rss_delta_bytes, 0);
	assert_int_equal(f->nevents, 2);
	assert_int_equal(f->events[0].type, VMW_EVENT_EXIT);
	assert_true(f->events[0].pid_reused);
	assert_string_equal(f->events[0].comm, "old");
	assert_int_equal(f->events[0].start_time_ns, 100);
	assert_int_equal(f->events[1].type, VMW_EVENT_NEW);
	assert_int_equal(f->events[1].start_time_ns, 5000);
	assert_false(f->events[1].pid_reused);
	frame_done(f);
}

static void test_threads(void **state)
{
	(void)state;
	/* Thread 51 ran 300 ms; 52's tid was reused (new start: all its 20 ms
	 * count); 53 is new (10 ms); 50's counter went backwards (0). */
	static struct vmw_thread th[] = {
		{ .tid = 50, .start_time_ns = 1, .runtime_ns = 90 * MS },
		{ .tid = 51, .start_time_ns = 2, .runtime_ns = 400 * MS },
		{ .tid = 52, .start_time_ns = 9, .runtime_ns = 20 * MS },
		{ .tid = 53, .start_time_ns = 10, .runtime_ns = 10 * MS },
	};
	struct vmw_task_prev qp[] = { prev(50, "app", 1, 500 * MS, MiB) };
	struct vmw_task_prev qt[] = {
		{ .id = 50, .start_time_ns = 1, .runtime_ns = 100 * MS },
		{ .id = 51, .start_time_ns = 2, .runtime_ns = 100 * MS },
		{ .id = 52, .start_time_ns = 3, .runtime_ns = 70 * MS },
	};
	struct vmw_proc p[] = { proc(50, "app", 1, 820 * MS, MiB) };
	struct vmw_prev_frame pv = { .valid = true, .procs = qp, .nprocs = 1, .threads = qt, .nthreads = 3 };
	struct vmw_frame *f;

	p[0].threads = th;
	p[0].nthreads_listed = 4;
	f = frame(p, 1, 1000 * MS);
	assert_int_equal(vmw_sampler_compare(&pv, f), 0);
	assert_non_null(f->procs[0].thread_cpu_percent);
	assert_true(f->procs[0].thread_cpu_percent[0] == 0.0);
	assert_true(f->procs[0].thread_cpu_percent[1] > 29.999 && f->procs[0].thread_cpu_percent[1] < 30.001);
	assert_true(f->procs[0].thread_cpu_percent[2] > 1.999 && f->procs[0].thread_cpu_percent[2] < 2.001);
	assert_true(f->procs[0].thread_cpu_percent[3] > 0.999 && f->procs[0].thread_cpu_percent[3] < 1.001);
	assert_true(f->procs[0].cpu_percent > 31.999 && f->procs[0].cpu_percent < 32.001);
	assert_int_equal(f->nevents, 0);
	frame_done(f);
}

static void test_backoff(void **state)
{
	(void)state;
	struct vmw_session_policy top = { .min_ns = 500 * MS, .max_ns = 5000 * MS };
	struct vmw_session_policy agent = { .min_ns = 1000 * MS, .max_ns = 60000 * MS, .young_ns = 120000 * MS };
	struct vmw_session_policy dflt = { 0 };

	assert_int_equal(vmw_session_backoff(&top, 1, 0), 500 * MS);
	assert_int_equal(vmw_session_backoff(&top, 2, 0), 1000 * MS);
	assert_int_equal(vmw_session_backoff(&top, 4, 0), 4000 * MS);
	assert_int_equal(vmw_session_backoff(&top, 5, 0), 5000 * MS);
	assert_int_equal(vmw_session_backoff(&top, 1000, 0), 5000 * MS);
	/* Young: every interval; then doubling up to a minute. */
	assert_int_equal(vmw_session_backoff(&agent, 10, 60000 * MS), 1000 * MS);
	assert_int_equal(vmw_session_backoff(&agent, 3, 200000 * MS), 4000 * MS);
	assert_int_equal(vmw_session_backoff(&agent, 40, 200000 * MS), 60000 * MS);
	assert_int_equal(vmw_session_backoff(&dflt, 1, 0), 500 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples_from_walk),
		cmocka_unit_test(test_first_frame),
		cmocka_unit_test(test_deltas_saturate),
		cmocka_unit_test(test_counter_rates),
		cmocka_unit_test(test_new_and_exit),
		cmocka_unit_test(test_pid_reuse),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
