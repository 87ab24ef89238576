/* SPDX-License-Identifier: MIT */
/*
 * vmwatch bench - what monitoring a guest costs: attach time (cold and
 * cached), frame time (median, p99) over N frames, processes per frame,
 * microseconds per process, guest bytes read per frame, frames per second and
 * host CPU time per frame. The guest keeps running throughout.
 */
#include "cli/cli.h"
#include "linux/linux.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch bench [-n FRAMES] [-i SECONDS] [--threads] [--cmdline] [--json] TARGET\n\n"
		"Measure attach and frame costs on a live guest (the guest is not paused).\n\n"
		"  -n, --frames N   frames to time (default 1000)\n"
		"  -i, --interval S  pause S seconds before each frame, as a sampler does\n"
		"                   (its frames run with cold caches); default 0: back to back\n"
		"  -L, --threads    frames include every thread\n"
		"      --cmdline    frames include command lines\n"
		"  -j, --json       print one JSON object\n"
		"      --process-read  read a QEMU guest with process_vm_readv even if shared\n"
		"      --proc-mem  with --process-read: pread on /proc/PID/mem, as the agent's\n"
		"                  privilege-separated samplers read private RAM\n"
		"  -h, --help       this help\n\n"
		CLI_TARGET_HELP);
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Bytes malloc holds for us (arena and mapped chunks). */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* Time one attach (open + kernel discovery + model) in ms, and the heap it
 * holds once open (the kernel and Linux models: kallsyms and BTF after a
 * full discovery, the memo after a cached one); 0 or exit code. */
static int time_attach(const char *target, bool no_cache, bool process_read, double *ret_ms,
		       double *ret_kib, bool *ret_cached)
{
	struct cli_target t = { .no_cache = no_cache, .process_read = process_read };
	size_t h0 = heap_in_use();
	uint64_t t0 = vmw_now_ns();
	int r = cli_target_open(&t, target, true);
	if (r)
		return r;
	*ret_ms = (double)(vmw_now_ns() - t0) / 1e6;
	*ret_kib = (double)(heap_in_use() - h0) / 1024.0;
	*ret_cached = vmw_kernel_info(t.k)->from_cache;
	cli_target_close(&t);
	return 0;
}

/* What the timed frames measured. */
struct bench {
	const char *target;
	uint64_t frames;
	uint64_t interval_ns;          /* pause before each frame (0: back to back) */
	unsigned flags;
	double cold_ms, warm_ms, cold_kib, warm_kib;
	bool cached;
	uint64_t *ns;                  /* per frame, sorted after the run */
	uint64_t procs, bytes, wall, cpu, restarts, truncated, skipped;
	struct vmw_mem_stats s0, s1;
};

/* Take b->frames walks of t; 0 or 1 after printing the error. */
static int run_frames(struct cli_target *t, struct bench *b)
{
	struct vmw_error err = { 0 };
	uint64_t c0, w0;

	vmw_mem_stats(t->mem, &b->s0);
	c0 = cpu_ns();
	w0 = vmw_now_ns();
	for (uint64_t i = 0; i < b->frames; i++) {
		struct vmw_walk w;
		uint64_t f0;

		if (b->interval_ns) {
			struct timespec ts = { (time_t)(b->interval_ns / 1000000000u),
					       (long)(b->interval_ns % 1000000000u) };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		f0 = vmw_now_ns();
		int r = vmw_linux_walk(t->lx, b->flags, &w, &err);
		b->ns[i] = vmw_now_ns() - f0;
		if (r < 0) {
			cli_error("%s: frame %llu: %s", b->target, (unsigned long long)i, vmw_error_msg(&err, r));
			return 1;
		}
		b->procs += w.nprocs;
		b->bytes += w.bytes_read;
		b->restarts += w.restarts;
		b->truncated += w.truncated;
		b->skipped += w.skipped;
		vmw_walk_free(&w);
	}
	b->wall = vmw_now_ns() - w0;
	b->cpu = cpu_ns() - c0;
	vmw_mem_stats(t->mem, &b->s1);
	qsort(b->ns, b->frames, sizeof(*b->ns), cmp_u64);
	return 0;
}

static void print_bench(const struct cli_target *t, const struct bench *b, bool json)
{
	double n = (double)b->frames;
	double med = (double)b->ns[b->frames / 2] / 1e3;
	double p99 = (double)b->ns[MIN(b->frames - 1, b->frames * 99 / 100)] / 1e3;
	double ppf = (double)b->procs / n;
	double syscalls = (double)(b->s1.syscalls - b->s0.syscalls) / n;
	double ranges = (double)(b->s1.ranges - b->s0.ranges) / n;

	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:b, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:f, s:f, s:f, s:I, s:I, s:I}",
			"target", b->target, "source", vmw_mem_describe(t->mem),
			"attach_cold_ms", b->cold_ms, "attach_cached_ms", b->warm_ms, "cache_hit", b->cached,
			"attach_cold_heap_kib", b->cold_kib, "attach_cached_heap_kib", b->warm_kib,
			"frames", (json_int_t)b->frames, "interval_s", (double)b->interval_ns / 1e9,
			"frame_median_us", med, "frame_p99_us", p99,
			"processes_per_frame", ppf, "us_per_process", ppf > 0 ? med / ppf : 0.0,
			"bytes_per_frame", (double)b->bytes / n,
			"frames_per_second", b->interval_ns ? json_null() : json_real(n / ((double)b->wall / 1e9)),
			"cpu_us_per_frame", (double)b->cpu / 1e3 / n,
			"syscalls_per_frame", syscalls, "remote_ranges_per_frame", ranges,
			"restarts", (json_int_t)b->restarts, "truncated_frames", (json_int_t)b->truncated,
			"skipped_records", (json_int_t)b->skipped);
		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
		return;
	}
	printf("target            %s (%s)\n", b->target, vmw_mem_describe(t->mem));
	printf("kernel            %s\n", vmw_kernel_info(t->k)->release);
	printf("attach cold       %.1f ms, %.0f KiB of heap held\n", b->cold_ms, b->cold_kib);
	printf("attach cached     %.1f ms, %.0f KiB of heap held%s\n", b->warm_ms, b->warm_kib,
	       b->cached ? "" : " (cache not used)");
	printf("frames            %llu%s%s", (unsigned long long)b->frames,
	       b->flags & VMW_WALK_THREADS ? " with threads" : "",
	       b->flags & VMW_WALK_CMDLINE ? " with cmdlines" : "");
	if (b->interval_ns)
		printf(", one every %g s (cold)", (double)b->interval_ns / 1e9);
	putchar('\n');
	printf("frame median      %.1f us\n", med);
	printf("frame p99         %.1f us\n", p99);
	printf("processes/frame   %.0f\n", ppf);
	printf("us per process    %.3f\n", ppf > 0 ? med / ppf : 0.0);
	printf("bytes read/frame  %.0f\n", (double)b->bytes / n);
	printf("syscalls/frame    %.1f\n", syscalls);
	printf("remote ranges/frame %.0f\n", ranges);
	if (!b->interval_ns)
		printf("frames/s          %.0f\n", n / ((double)b->wall / 1e9));
	printf("host CPU/frame    %.1f us\n", (double)b->cpu / 1e3 / n);
	printf("walk restarts     %llu (torn task-list links, all frames)\n", (unsigned long long)b->restarts);
	printf("truncated frames  %llu\n", (unsigned long long)b->truncated);
	printf("skipped records   %llu\n", (unsigned long long)b->skipped);
}

/* An opener that is open(2) itself: src/mem then reads private RAM as a
 * sampler does (pread on /proc/PID/mem), for comparing the two paths. */
static int plain_open(void *opaque, const char *path, int flags)
{
	int fd = open(path, flags);
	(void)opaque;
	return fd < 0 ? -errno : fd;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "frames", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "threads", no_argument, NULL, 'L' },
		{ "cmdline", no_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "process-read", no_argument, NULL, 'P' },
		{ "proc-mem", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct bench b = { .frames = 1000 };
	bool json = false, process_read = false;
	struct cli_target t = { 0 };
	int c, r;

	while ((c = getopt_long(argc, argv, "n:i:Ljh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (vmw_parse_u64(optarg, &b.frames) < 0 || b.frames == 0 || b.frames > 10000000) {
				cli_error("--frames: '%s' is not a number of frames (1..10000000)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'i':
			if (vmw_parse_seconds(optarg, 60, &b.interval_ns) < 0) {
				cli_error("--interval: '%s' is not a number of seconds (0 < S <= 60)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'L': b.flags |= VMW_WALK_THREADS; break;
		case 'C': b.flags |= VMW_WALK_CMDLINE; break;
		case 'j': json = true; break;
		case 'P': process_read = true; break;
		case 'M': vmw_mem_set_opener(plain_open, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	b.target = argv[optind];

	/* Cold: full discovery, no cache. Then one attach that fills the cache
	 * (if it was empty), then the timed cached attach. */
	if ((r = time_attach(b.target, true, process_read, &b.cold_ms, &b.cold_kib, &b.cached)) != 0)
		return r;
	if ((r = time_attach(b.target, false, process_read, &b.warm_ms, &b.warm_kib, &b.cached)) != 0)
		return r;
	if ((r = time_attach(b.target, false, process_read, &b.warm_ms, &b.warm_kib, &b.cached)) != 0)
		return r;
	t.process_read = process_read;
	if ((r = cli_target_open(&t, b.target, true)) != 0)
		return r;
	if (!(b.ns = calloc(b.frames, sizeof(*b.ns)))) {
		cli_target_close(&t);
		cli_error("out of memory");
		return 1;
	}
	if ((r = run_frames(&t, &b)) == 0)
		print_bench(&t, &b, json);
	free(b.ns);
	cli_target_close(&t);
	return r;
}
