/* SPDX-License-Identifier: MIT */
/*
 * report.h - the presentation layer: every JSON object that `vmwatch` and
 * vmwatch-agent print, and the values derived for display (task-state
 * classes, load average as numbers, whether a CPU split is valid).
 *
 * One vocabulary for both front ends; docs/schemas/ describes each object
 * (common.json's $defs) and CHANGELOG.md records renames. The module only
 * formats what the library returns: it never reads guest memory.
 *
 * Every function returns a new reference (NULL only when out of memory).
 */
#pragma once

#include "kernel/kernel.h"
#include "linux/linux.h"
#include "sampler/sampler.h"
#include "virt/virt.h"

typedef struct json_t json_t;
struct vmw_mem;

/* ---- strings and numbers ------------------------------------------------- */

/* A JSON string from guest bytes: invalid UTF-8 bytes become U+FFFD; NULL is "". */
json_t *vmw_report_string(const char *s);
/* As vmw_report_string, but NULL or "" is null. */
json_t *vmw_report_string_or_null(const char *s);
/* Nanoseconds as seconds (a JSON number). */
double vmw_report_seconds(uint64_t ns);

/* ---- derived values ------------------------------------------------------ */

/* The task-state classes of every task count ("tasks" in the summary):
 * R running, S sleeping, D disk_sleep, T/t stopped, Z zombie, I idle, the
 * rest (X, P, W, K, ...) other. */
enum vmw_task_class {
	VMW_TASK_RUNNING, VMW_TASK_SLEEPING, VMW_TASK_DISK_SLEEP, VMW_TASK_STOPPED,
	VMW_TASK_ZOMBIE, VMW_TASK_IDLE, VMW_TASK_OTHER, VMW_TASK_NCLASSES,
};
enum vmw_task_class vmw_report_task_class(char state);
/* Its JSON name: "running", "sleeping", "disk_sleep", ... */
const char *vmw_report_task_class_name(enum vmw_task_class c);
/* psutil's name of a process state ("running", "disk-sleep", "tracing-stop",
 * ...), which the VM Process Monitor clients know (compat API). */
const char *vmw_report_state_name(char state);

/* Task counts of a process list. */
struct vmw_report_tasks {
	unsigned total;                /* processes */
	unsigned by_class[VMW_TASK_NCLASSES];
	uint64_t threads;              /* sum of nr_threads (at least 1 per process) */
	unsigned kernel_threads;
};
void vmw_report_tasks_count(const struct vmw_frame *f, struct vmw_report_tasks *ret);
json_t *vmw_report_tasks_json(const struct vmw_report_tasks *t);

/* The 1, 5 and 15 minute load averages as numbers (avenrun / 2048). */
void vmw_report_load(const struct vmw_summary *sm, double ret[3]);

/* Whether f's CPU split (cpu_total, cpu[]) holds measured values: not on the
 * first frame after an attach, and not when the sampler left zeros because
 * the set of online vCPUs changed (a measured split adds up to ~100%). The
 * JSON shows null when it does not. */
bool vmw_report_cpu_split_valid(const struct vmw_frame *f);

/* ---- objects ------------------------------------------------------------- */

/* A process (common.json#/$defs/process); with "tasks" when its threads were listed. */
json_t *vmw_report_proc(const struct vmw_proc *p);
/* sep, then vmw_report_proc(p) written to f as json_dumpf(..., JSON_COMPACT)
 * prints it, byte for byte, without building it (stream.c; for listings of
 * thousands of processes). false, with nothing written, where
 * vmw_report_proc would give no object (a state byte that is not UTF-8) or
 * on an error. */
bool vmw_report_proc_stream(FILE *f, const char *sep, const struct vmw_proc *p);
/* unit, slice and container (null when the path says nothing) of a cgroup
 * path, set in o (report/cgroups.c). */
void vmw_report_cgroup_class(json_t *o, const char *path);
struct vmw_cgroup_stat;
struct vmw_cgroups;
/* A cgroup (#/$defs/cgroup); cpu_percent NAN for null. */
json_t *vmw_report_cgroup(const struct vmw_cgroup_stat *c, double cpu_percent);
/* {"cgroups": [...], "truncated", "truncated_why"}; cpu_percent NULL or one per cgroup. */
json_t *vmw_report_cgroups(const struct vmw_cgroups *c, const double *cpu_percent);
/* A process in a frame (#/$defs/sample): the process plus cpu_percent,
 * mem_percent, rss_delta_bytes, new, the rates of its counters (io_rate,
 * min_flt_rate, ...), and the threads' cpu_percent. */
json_t *vmw_report_sample(const struct vmw_sample *x);
/* sep, then vmw_report_sample(x) written to f as json_dumpf(...,
 * JSON_COMPACT) prints it, byte for byte, without building it (stream.c;
 * for top --json's thousands of processes per frame). false, with nothing
 * written, where vmw_report_sample would give no object or on an error. */
bool vmw_report_sample_stream(FILE *f, const char *sep, const struct vmw_sample *x);
/* A process event (#/$defs/event) without seq and time (the caller adds them). */
json_t *vmw_report_event(const struct vmw_event *e);
/* sep, then vmw_report_event(e) as json_dumpf(..., JSON_COMPACT) prints it
 * (stream.c). false, with nothing written, on an error. */
bool vmw_report_event_stream(FILE *f, const char *sep, const struct vmw_event *e);
/* The VM an introspection command looked at (#/$defs/vm): target, source, ram_bytes. */
json_t *vmw_report_vm(const char *target, struct vmw_mem *mem);
/* The guest kernel (#/$defs/kernel). */
json_t *vmw_report_kernel(const struct vmw_kernel_info *ki);
/* {"pretty_name", "id", "version_id"} of the guest's /etc/os-release (each
 * null when absent), or null when os is NULL (not read: not cached). */
struct vmw_os_release;
json_t *vmw_report_os(const struct vmw_os_release *os);
/* The frame's guest OS (vmw_report_os of frame.os; null when f is NULL or
 * the OS is unknown). */
json_t *vmw_report_frame_os(const struct vmw_frame *f);
/* The frame's guest OS for a text column: PRETTY_NAME, else ID, else
 * "unknown", terminal-safe (vmw_text_sanitize). */
void vmw_report_os_text(const struct vmw_frame *f, char *buf, size_t size);
/* OpenStack Nova metadata (#/$defs/nova), null when the domain has none. */
json_t *vmw_report_nova(const struct vmw_nova *n);
/* A libvirt domain (#/$defs/domain). */
json_t *vmw_report_domain(const struct vmw_domain *d);
/* One CPU split in percent (#/$defs/cpu_split). */
json_t *vmw_report_cpu_split(const struct vmw_cpu_percent *p);
/* The guest summary (#/$defs/summary). sm may be NULL (the kernel lacks what
 * it needs: its fields are then null), f may be NULL (no process list: no
 * tasks, no CPU split). */
json_t *vmw_report_summary(const struct vmw_summary *sm, const struct vmw_frame *f);
/* The frame fields common to `top --json` and the agent's frames
 * (#/$defs/frame_base): seq, time, interval_seconds, duration_seconds, total,
 * complete, skipped, cpu_percent_total, mem_total_bytes. */
json_t *vmw_report_frame_base(const struct vmw_frame *f, uint64_t seq);
/* {"vm": vmw_report_vm, "kernel": vmw_report_kernel}: the head of every
 * introspection command's JSON (ps, info, summary). */
json_t *vmw_report_target(const char *target, struct vmw_mem *mem, const struct vmw_kernel_info *ki);

/* ---- one VM's use at a glance (the host view: `top` without a target,
 * `vms`; common.json#/$defs/vm_use) ------------------------------------------ */

/* What a frame says about the whole guest, derived once for every view. */
struct vmw_report_use {
	bool cpu_ok;                   /* a measured split (vmw_report_cpu_split_valid) */
	double busy;                   /* 100 - idle - iowait, clamped to [0, 100] */
	struct vmw_cpu_percent cpu;    /* the split of all vCPUs */
	bool mem_ok;                   /* the summary's meminfo */
	uint64_t mem_total, mem_used, mem_available, mem_cached, mem_free;   /* bytes */
	bool load_ok;
	double load[3];
	unsigned vcpus;                /* online vCPUs (summary), else 0 */
	size_t processes;
	uint64_t threads;
	bool top_ok;                   /* the busiest process (by CPU%) */
	int32_t top_pid;
	char top_comm[64];
	double top_cpu;
};
/* f may be NULL (nothing known yet). */
void vmw_report_use_of(const struct vmw_frame *f, struct vmw_report_use *ret);

/* A VM as the host view lists it. */
struct vmw_report_vm_row {
	const char *name;              /* Nova instance name, domain name, QEMU -name or target */
	const char *target;            /* what the session opens ("qemu:PID", "file:PATH") */
	const struct vmw_domain *domain;   /* NULL: not a libvirt domain */
	pid_t qemu_pid;                /* 0: none */
	unsigned vcpus;                /* configured (domain, -smp), 0 unknown */
	const char *status;            /* "starting", "ok", "waiting", "gone" */
	const char *reason_code;       /* vmw_error_kind_name, NULL when ok */
	const char *reason;            /* NULL when ok */
	bool host_cpu_ok;
	double host_cpu_percent;       /* the QEMU process on the host (100 = one host CPU) */
	const struct vmw_frame *frame; /* the last frame taken, NULL before the first */
};
json_t *vmw_report_vm_row(const struct vmw_report_vm_row *r);
/* What a frame says about the whole guest (#/$defs/use_fields): time,
 * complete, cpu (split + busy), memory, load, processes, threads,
 * top_process; f may be NULL (all null). Part of vm_row; the agent's VMs
 * carry it as "use". */
json_t *vmw_report_use(const struct vmw_frame *f);
/* One frame of the host view (top-host-frame.json): seq, time, libvirt (its
 * URI and, when it cannot be used, why) and vms (an array of
 * vmw_report_vm_row, taken over). */
json_t *vmw_report_host_frame(uint64_t seq, uint64_t wall_ns, const char *libvirt_uri,
			      const char *libvirt_error, json_t *vms);
