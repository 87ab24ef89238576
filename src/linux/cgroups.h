/* SPDX-License-Identifier: MIT */
/*
 * cgroups.h - per-cgroup figures of the guest's cgroup v2 hierarchy, equal to
 * its own /sys/fs/cgroup files, computed from the kernel structures the way
 * those files compute them (cgroups.c says how, kernel function by function):
 *
 *   cpu.stat        usage_usec, user_usec, system_usec: the cgroup's rstat base
 *                   stats after a flush (cgroup->bstat plus every per-CPU delta
 *                   and every descendant's not yet propagated), user/system
 *                   split by cputime_adjust() against cgroup->prev_cputime
 *   memory.current  page_counter_read(&memcg->memory) pages
 *   memory.stat     anon and file: memcg vmstats as the file shows them, i.e.
 *                   after the flush that reading it would do when the kernel's
 *                   threshold says so, else the stored values
 *
 * The walk goes down the default hierarchy (cgrp_dfl_root) through each css's
 * children list: capped in count and depth, cycle-guarded, each link checked
 * (next->prev, the child's parent and cgroup pointers). A cgroup being removed
 * (offline, not shown in /sys/fs/cgroup) is not listed but still counted into
 * its ancestors, as the kernel's flush does. Anything skipped is said:
 * `truncated` for the walk, `incomplete` for a cgroup whose subtree could not
 * all be read (its CPU and memory.stat figures are then lower bounds).
 */
#pragma once

#include "kernel/kernel.h"

struct vmw_cgroup_reader;
struct vmw_walk;

struct vmw_cgroup_stat {
	char *path;               /* as /proc/PID/cgroup shows it: "/", "/system.slice/ssh.service" */
	uint32_t depth;           /* 0 for the root */
	uint32_t nr_procs;        /* processes in it (not in its children): vmw_cgroups_count_procs */
	uint32_t nr_procs_tree;   /* processes in it and below (systemd-cgtop's Tasks) */
	bool nr_procs_ok;
	/* cpu.stat (the root's comes from the CPUs' totals: not computed here) */
	bool cpu_ok;
	uint64_t usage_usec, user_usec, system_usec;
	/* memory.current (bytes); not on the root, nor where the memory
	 * controller is not enabled */
	bool memory_ok;
	uint64_t memory_current;
	/* memory.stat anon and file (bytes) */
	bool memory_stat_ok;
	uint64_t anon, file;
	bool incomplete;          /* part of its subtree was unreadable: lower bounds */
};

struct vmw_cgroups {
	struct vmw_cgroup_stat *cg; /* parents before children, siblings in the kernel's order */
	size_t n;
	bool truncated;           /* the walk skipped something (see truncated_why) */
	char truncated_why[160];
	uint64_t bytes_read;
	uint64_t read_ns;         /* host time spent */
};

/* Resolve layouts and symbols once; err names what this kernel lacks
 * (VMW_ERR_MISSING_LAYOUT). CPU or memory figures whose layouts are missing
 * are left out (their _ok flags false), the paths are the minimum. */
int vmw_cgroups_new(struct vmw_kernel *k, struct vmw_cgroup_reader **ret, struct vmw_error *err);
void vmw_cgroups_reader_free(struct vmw_cgroup_reader *r);
/* Read every cgroup now. A negative errno with err set when not even the
 * root is readable; a partial walk returns 0 with truncated set. */
int vmw_cgroups_read(struct vmw_cgroup_reader *r, struct vmw_cgroups *ret, struct vmw_error *err);
void vmw_cgroups_free(struct vmw_cgroups *c);
/* Fill nr_procs from a process walk (vmw_proc.cgroup): exact only when that
 * walk was complete and taken at the same moment. */
void vmw_cgroups_count_procs(struct vmw_cgroups *c, const struct vmw_walk *w);
/* %CPU of each cgroup of cur over interval_ns since prev (100 = one CPU, like
 * systemd-cgtop), matched by path; NAN where unknown (new, no cpu.stat, or
 * gone backwards: removed and made again). 0 or -ENOMEM. */
int vmw_cgroups_cpu_percent(const struct vmw_cgroups *prev, const struct vmw_cgroups *cur,
			    uint64_t interval_ns, double *ret);
/* A deep copy (dst freed with vmw_cgroups_free). 0 or -ENOMEM. */
int vmw_cgroups_copy(const struct vmw_cgroups *src, struct vmw_cgroups *dst);
