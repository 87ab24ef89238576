/* SPDX-License-Identifier: MIT */
/*
 * summary.h - the guest summary (summary.c): the whole-system numbers the guest's
 * own tools show — /proc/uptime, /proc/loadavg, the main /proc/meminfo lines
 * and /proc/stat — computed from the same kernel variables the same way
 * (fs/proc/{uptime,loadavg,meminfo,stat}.c, si_mem_available(),
 * nr_blockdev_pages(), get_cpu_idle_time_us()).
 *
 * The guest's clock: only the timekeeper's last update (a tick, or the last
 * clock event on a CPU with its tick stopped) can be read from memory; the
 * cycles the clocksource counted since cannot. "Now" is therefore the latest
 * guest time stamp found: the timekeeper's last update and every CPU's last
 * idle entry/exit (tick_sched). While a CPU is busy that is at most one tick
 * (1/HZ, tick_ns below) behind the guest's real clock; when every CPU is
 * idle with its tick stopped (NO_HZ) it is the moment the last CPU went
 * idle, so uptime and the idle time of idle CPUs lag by how long the guest
 * has been idle since its last event. Counters (user/system/irq/… ticks,
 * memory, loadavg, fork/context-switch counts) are exact.
 */
#pragma once

#include "kernel/kernel.h"

struct vmw_summary_reader;

/* CPU time of one CPU (or all) in nanoseconds, the kernel's unit; /proc/stat
 * prints vmw_summary_clock_t() of each (USER_HZ ticks). */
struct vmw_cpu_times {
	uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
};

struct vmw_cpu_stat {
	unsigned cpu;                  /* CPU number, as in /proc/stat's "cpuN" */
	struct vmw_cpu_times t;
};

struct vmw_summary {
	/* /proc/uptime */
	uint64_t uptime_ns;            /* CLOCK_BOOTTIME at "now" (see above) */
	uint64_t idle_ns;              /* sum of every CPU's idle time (second field) */
	/* The guest's clock. */
	uint64_t now_mono_ns;          /* "now" on CLOCK_MONOTONIC */
	uint64_t tk_mono_ns;           /* the timekeeper's last update, CLOCK_MONOTONIC */
	uint64_t tick_ns;              /* tick length (1/HZ) from the timekeeper, 0 if unknown */
	/* /proc/loadavg */
	unsigned long load[3];         /* avenrun[], fixed point FSHIFT = 11 */
	char loadavg[64];              /* its first three fields, as printed: "0.52 0.58 0.59" */
	unsigned nr_running;           /* field 4 before '/': runnable tasks on online CPUs */
	int nr_threads;                /* field 4 after '/' */
	int last_pid;                  /* field 5 (the initial pid namespace) */
	/* /proc/meminfo, kB */
	uint64_t mem_total_kb, mem_free_kb, mem_available_kb, buffers_kb, cached_kb,
		swap_cached_kb, swap_total_kb, swap_free_kb, shmem_kb;
	/* /proc/stat */
	struct vmw_cpu_times total;    /* the "cpu" line: all possible CPUs */
	unsigned ncpus;                /* online CPUs: entries in cpu[] */
	struct vmw_cpu_stat *cpu;      /* "cpuN" lines; owned by the reader, valid until
					* its next read or free */
	unsigned ncpus_possible;
	uint64_t boot_time_s;          /* btime */
	uint64_t ctxt;                 /* context switches */
	uint64_t processes;            /* forks since boot */
	unsigned procs_running, procs_blocked;
	/* How far to trust it. */
	bool nohz;                     /* idle/iowait from tick_sched (NO_HZ active) */
	unsigned vtime_cpus;           /* CPUs with full-dynticks vtime accounting: their
					* user/system lack the slice in progress */
	bool buffers_partial;          /* the block-device inode walk stopped early */
	unsigned retries;              /* re-reads of records torn by a concurrent update */
	unsigned missing;              /* optional variables that were unreadable and count
					* as 0 (swap, last pid, zone watermarks, ...) */
	uint64_t read_ns;              /* host time spent */
	uint64_t bytes_read;
};

/* Resolve symbols and BTF layouts once. err names what this kernel lacks
 * (kind VMW_ERR_MISSING_LAYOUT, or VMW_ERR_UNSUPPORTED for a layout of an
 * unknown shape). */
int vmw_summary_new(struct vmw_kernel *k, struct vmw_summary_reader **ret, struct vmw_error *err);
void vmw_summary_free(struct vmw_summary_reader *s);
/* Read the summary now (never pausing the guest). ret->cpu points into the
 * reader. A negative errno with err set when a needed variable is unreadable. */
int vmw_summary_read(struct vmw_summary_reader *s, struct vmw_summary *ret, struct vmw_error *err);

/* Pure helpers, exposed for unit tests and front ends. */
/* nsec_to_clock_t(): nanoseconds to USER_HZ (100) ticks, as /proc prints them. */
uint64_t vmw_summary_clock_t(uint64_t ns);
/* /proc/loadavg's first three fields from avenrun[] (get_avenrun(…, FIXED_1/200, 0),
 * LOAD_INT, LOAD_FRAC). Returns snprintf's count. */
int vmw_summary_format_loadavg(const unsigned long load[3], char *buf, size_t size);
/* /proc/uptime's line ("%lu.%02lu %lu.%02lu", no newline). */
int vmw_summary_format_uptime(uint64_t uptime_ns, uint64_t idle_ns, char *buf, size_t size);
/* si_mem_available() from its inputs, all in pages. */
struct vmw_mem_available_in {
	uint64_t free, totalreserve, active_file, inactive_file, slab_reclaimable,
		misc_reclaimable, wmark_low;
};
uint64_t vmw_summary_mem_available(const struct vmw_mem_available_in *in);
/* get_idle_time()/get_iowait_time() of fs/proc/stat.c for one CPU, in ns:
 * tick_sched's sleeptime (plus now - entrytime while that CPU sleeps and the
 * delta belongs to this counter), truncated to microseconds, when NO_HZ is
 * active and the CPU online; else the kcpustat counter. */
uint64_t vmw_summary_sleep_time(bool nohz, bool online, bool idle_active, bool count_delta,
				int64_t sleeptime, int64_t entrytime, int64_t now,
				uint64_t kcpustat);
