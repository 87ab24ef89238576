/* SPDX-License-Identifier: MIT */
/*
 * linux.h - the Linux process model: the guest's processes and threads with
 * the values its own /proc shows, read from kernel structures whose layouts
 * come from the guest's BTF (never from version numbers).
 *
 * A walk reads the task list (init_task.tasks), each process's credentials,
 * mm_struct counters and signal_struct totals, and optionally its threads and
 * command line. Guest memory is hostile and changes under us:
 *   - every list walk has a cap and a cycle guard (Brent), and checks that
 *     next->prev points back;
 *   - a record that fails validation is re-read a bounded number of times,
 *     then counted in `skipped` — never invented;
 *   - a walk ends in bounded time whatever the memory holds.
 */
#pragma once

#include "kernel/kernel.h"

struct vmw_linux;

/* One thread (task). Times are nanoseconds, like the kernel keeps them. */
struct vmw_thread {
	int32_t tid;
	char comm[64];
	char state;               /* R S D T t X Z P I, as /proc shows */
	int32_t prio, nice;       /* /proc/PID/stat fields 18 and 19 */
	uint64_t utime_ns, stime_ns; /* adjusted like /proc (cputime_adjust) */
	uint64_t runtime_ns;      /* se.sum_exec_runtime */
	uint64_t start_time_ns;   /* since boot (start_boottime) */
	int32_t cpu;              /* last CPU it ran on, -1 if unknown */
};

/* One process (thread-group leader), kernel threads included. */
struct vmw_proc {
	int32_t pid, ppid;
	char comm[64];            /* as /proc/PID/stat shows it (kworker/0:1-events …) */
	char state;
	uint32_t uid, euid, gid, egid;
	uint32_t nr_threads;
	int32_t prio, nice;
	uint64_t utime_ns, stime_ns; /* whole process, incl. exited threads, adjusted */
	uint64_t runtime_ns;      /* sum_exec_runtime of all threads, incl. exited */
	uint64_t start_time_ns;
	uint64_t rss_anon_bytes, rss_file_bytes, rss_shmem_bytes, swap_bytes;
	uint64_t vsz_bytes;
	bool kthread;
	char **cmdline;           /* NULL-terminated argv, or NULL if not read/readable */
	struct vmw_thread *threads; /* with VMW_WALK_THREADS, else NULL */
	uint32_t nthreads_listed;
	uint64_t task_addr;       /* guest virtual address of the task_struct */
};

static inline uint64_t vmw_proc_rss_bytes(const struct vmw_proc *p)
{
	return p->rss_anon_bytes + p->rss_file_bytes + p->rss_shmem_bytes;
}

enum {
	VMW_WALK_THREADS = 1u << 0,  /* fill proc->threads */
	VMW_WALK_CMDLINE = 1u << 1,  /* fill proc->cmdline (reads user memory) */
};

struct vmw_walk {
	struct vmw_proc *procs;   /* in task-list order */
	size_t nprocs;
	size_t skipped;           /* records that failed validation after retries */
	size_t restarts;          /* task-list walks restarted after a torn link */
	bool truncated;           /* the walk stopped early (cap, cycle, unreadable link) */
	char truncated_why[160];
	uint64_t bytes_read;      /* guest bytes read for this walk */
	uint64_t walk_ns;         /* host time spent */
};

/* Resolve every layout the model needs from the kernel's BTF. err names the
 * missing type or member when this kernel lacks one. */
int vmw_linux_new(struct vmw_kernel *k, struct vmw_linux **ret, struct vmw_error *err);
void vmw_linux_free(struct vmw_linux *l);

/* Walk the guest's processes. On a hard failure (task list unreadable) returns
 * a negative errno with err set; a partial walk returns 0 with truncated set. */
int vmw_linux_walk(struct vmw_linux *l, unsigned flags, struct vmw_walk *ret,
		   struct vmw_error *err);
void vmw_walk_free(struct vmw_walk *w);
/* Free what one record owns (cmdline, threads), not the record itself. */
void vmw_proc_release(struct vmw_proc *p);

/* Pure helpers, exposed for unit tests. */
char vmw_linux_state_letter(uint32_t state, uint32_t exit_state);
/* cputime_adjust() of kernel/sched/cputime.c without updating prev. */
void vmw_linux_cputime_adjust(uint64_t rtime, uint64_t utime, uint64_t stime,
			      uint64_t prev_utime, uint64_t prev_stime,
			      uint64_t *ret_utime, uint64_t *ret_stime);

/* ======================================================================
 * Guest summary (src/linux/summary.c): the whole-system numbers the guest's
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
 * ====================================================================== */

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

/* Resolve symbols and BTF layouts once. err names what this kernel lacks. */
int vmw_summary_new(struct vmw_kernel *k, struct vmw_summary_reader **ret, struct vmw_error *err);
void vmw_summary_free(struct vmw_summary_reader *s);
/* Read the summary now (never pausing the guest). ret->cpu points into the
 * reader. A negative errno with err set when a needed variable is unreadable. */
int vmw_summary_read(struct vmw_summary_reader *s, struct vmw_summary *ret, struct vmw_error *err);
/* Only the clock, cheaply (tk_core alone): CLOCK_BOOTTIME of the timekeeper's
 * last update (at most a tick old while any CPU is busy; vmw_summary_read's
 * uptime also uses the CPUs' idle stamps) and the tick length. 0, -EAGAIN
 * (kept changing under the read), or a memory error. */
int vmw_summary_clock(struct vmw_summary_reader *s, uint64_t *ret_boottime_ns, uint64_t *ret_tick_ns);

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
/* ====================== end of guest summary ========================== */
