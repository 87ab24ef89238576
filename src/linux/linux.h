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
	/* In order of size where the groups allow it: no holes (368 bytes; a
	 * frame holds one per process, the agent one per process per VM). */
	int32_t pid, ppid;
	char comm[64];            /* as /proc/PID/stat shows it (kworker/0:1-events …) */
	uint32_t uid, euid, gid, egid;
	uint32_t nr_threads;
	int32_t prio, nice;
	uint32_t nthreads_listed; /* entries of threads */
	uint64_t utime_ns, stime_ns; /* whole process, incl. exited threads, adjusted */
	uint64_t runtime_ns;      /* sum_exec_runtime of all threads, incl. exited */
	uint64_t start_time_ns;
	uint64_t rss_anon_bytes, rss_file_bytes, rss_shmem_bytes, swap_bytes;
	uint64_t vsz_bytes;
	char **cmdline;           /* NULL-terminated argv in one allocation (vmw_argv_alloc), or NULL if not read/readable */
	struct vmw_thread *threads; /* with VMW_WALK_THREADS, else NULL */
	uint64_t task_addr;       /* guest virtual address of the task_struct */
	/* Counters of the whole process as /proc shows them: /proc/PID/io and
	 * /proc/PID/stat's faults sum every live thread and the exited ones
	 * (signal_struct); the context switches are the leader's own, like
	 * /proc/PID/status. io_ok: this kernel keeps task_io_accounting. */
	uint64_t io_rchar, io_wchar, io_syscr, io_syscw, io_read_bytes, io_write_bytes,
		 io_cancelled_write_bytes;
	uint64_t min_flt, maj_flt;
	uint64_t nvcsw, nivcsw;
	/* The cgroup v2 path as /proc/PID/cgroup shows it after "0::", NULL if
	 * unreadable. This and cgroups_v1 are vmw_rcstr strings (util.h): the
	 * processes of one css_set share one; vmw_proc_release drops the
	 * record's reference. */
	char *cgroup;
	/* The cgroup v1 lines of /proc/PID/cgroup, "ID:controllers:path" joined
	 * by '\n' in the kernel's order ("" when no v1 hierarchy is mounted;
	 * a vmw_rcstr like cgroup; read with vmw_cgroup_v1_next), NULL
	 * if unknown. */
	char *cgroups_v1;
	/* Its cgroup's memory.current (bytes); cgroup_memory_ok when read. */
	uint64_t cgroup_memory_bytes;
	/* Job control as /proc/PID/stat fields 5-8 show it: process group and
	 * session (jobctl_ok: read; 0 for kernel threads), the controlling
	 * terminal as a device number (new_encode_dev; 0: none) and its
	 * foreground process group (-1: no terminal, 0: the terminal has none);
	 * tty_ok: those two read. Unknown on kernels without these layouts. */
	int32_t pgrp, session, tpgid;
	uint32_t tty_nr;
	char user[33];            /* name of euid in the guest's /etc/passwd (as ps shows USER), "" if unknown */
	char state;
	bool kthread;
	bool io_ok;
	bool cgroup_memory_ok;
	bool jobctl_ok, tty_ok;
	/* Some of it could not be read or did not add up (a thread list cut or
	 * looping, a thread count no kernel can have): its threads and totals are
	 * lower bounds. The walk counts such processes in vmw_walk.incomplete. */
	bool incomplete;
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
	size_t incomplete;        /* processes marked incomplete (see vmw_proc) */
	size_t restarts;          /* task-list walks restarted after a torn link */
	bool truncated;           /* the walk stopped early (cap, cycle, unreadable link) */
	char truncated_why[160];
	uint64_t bytes_read;      /* guest bytes read for this walk */
	uint64_t walk_ns;         /* host time spent */
};

/* Nothing was skipped, cut or implausible: the list is the guest's whole truth. */
static inline bool vmw_walk_complete(const struct vmw_walk *w)
{
	return !w->truncated && !w->skipped && !w->incomplete;
}

/* Resolve every layout the model needs from the kernel's BTF. err names the
 * missing type or member when this kernel lacks one (kind
 * VMW_ERR_MISSING_LAYOUT; a layout of an unknown shape is VMW_ERR_UNSUPPORTED). */
int vmw_linux_new(struct vmw_kernel *k, struct vmw_linux **ret, struct vmw_error *err);
void vmw_linux_free(struct vmw_linux *l);

/* Walk the guest's processes. On a hard failure (task list unreadable) returns
 * a negative errno with err set; a partial walk returns 0 with truncated set. */
int vmw_linux_walk(struct vmw_linux *l, unsigned flags, struct vmw_walk *ret,
		   struct vmw_error *err);
void vmw_walk_free(struct vmw_walk *w);
/* Free what one record owns (cmdline, threads), not the record itself. */
void vmw_proc_release(struct vmw_proc *p);
/* Room for a command line in one allocation: argc + 1 pointers (zeroed: the
 * last ends the list), then `bytes` bytes for the arguments' text and their
 * NULs, at *text. One free() frees it all. NULL when out of memory or the
 * size does not fit. */
char **vmw_argv_alloc(size_t argc, size_t bytes, char **text);

/* The guest's files (its page cache) and user/group names, owned by l; NULL
 * when this kernel's layouts for them are missing. Walks fill vmw_proc.user
 * from the names, re-checking /etc/passwd and /etc/group at most every 5 s
 * (re-read when their inode changed). */
struct vmw_files *vmw_linux_files(struct vmw_linux *l);
const struct vmw_users *vmw_linux_users(struct vmw_linux *l);

/* Pure helpers, exposed for unit tests. */
/* new_encode_dev(tty_devnum()): /proc/PID/stat's tty_nr of a terminal. */
uint32_t vmw_linux_tty_nr(uint32_t major, uint32_t minor_start, uint32_t index);
char vmw_linux_state_letter(uint32_t state, uint32_t exit_state);
/* cputime_adjust() of kernel/sched/cputime.c without updating prev. */
void vmw_linux_cputime_adjust(uint64_t rtime, uint64_t utime, uint64_t stime,
			      uint64_t prev_utime, uint64_t prev_stime,
			      uint64_t *ret_utime, uint64_t *ret_stime);

/* The guest summary (uptime, loadavg, meminfo, stat) has its own header. */
#include "linux/summary.h"
/* Guest files from its page cache (vmwatch cat, /etc/passwd for user names). */
#include "linux/pagecache.h"
#include "linux/users.h"
#include "linux/cgroup.h"
