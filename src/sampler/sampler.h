/* SPDX-License-Identifier: MIT */
/*
 * sampler.h - frames of a guest over time: per-process CPU% and memory, the
 * guest summary, and process events between frames.
 *
 * A sampler owns one guest (memory source + kernel + Linux model), given as
 * qemu:PID, file:PATH or a libvirt domain name/UUID (resolved again when its
 * QEMU process is replaced, e.g. after a restart). Each call
 * to vmw_sampler_frame() walks the guest once — never pausing it — and
 * computes, against the previous frame:
 *   - CPU% of each process (and thread, on request) from the change in the
 *     scheduler's sum_exec_runtime over the interval; 100 % = one vCPU, like
 *     top, over the host's interval (a paused or starved guest accrues no
 *     runtime, so it shows no invented load; see vmw_sampler_interval);
 *   - MEM% of guest RAM and the change in RSS;
 *   - events: processes that appeared, exited (with their last values), and
 *     pid reuse (same pid, different start time = exit + new).
 * Counter deltas saturate at zero. When the guest reboots (its VMCOREINFO
 * changes or its uptime goes backwards) the sampler re-attaches by itself and
 * marks the frame `rebooted`.
 */
#pragma once

#include "linux/linux.h"

struct vmw_sampler;

struct vmw_sampler_opts {
	size_t sz;                 /* sizeof(struct vmw_sampler_opts) */
	unsigned walk_flags;       /* VMW_WALK_THREADS, VMW_WALK_CMDLINE */
	bool no_cache;             /* kernel discovery cache off */
	bool process_read;         /* force process_vm_readv for qemu: targets */
};

/* One process in a frame. */
struct vmw_sample {
	struct vmw_proc proc;      /* values at this frame (owned by the frame) */
	double cpu_percent;        /* over the interval; 100 = one vCPU */
	double mem_percent;        /* RSS / guest MemTotal */
	int64_t rss_delta_bytes;   /* change since the previous frame */
	double *thread_cpu_percent;/* parallel to proc.threads when listed */
	bool is_new;               /* not in the previous frame */
};

enum vmw_event_type {
	VMW_EVENT_NEW = 1,
	VMW_EVENT_EXIT = 2,
};

struct vmw_event {
	enum vmw_event_type type;
	int32_t pid;
	uint64_t start_time_ns;
	char comm[64];
	/* For exits: the last values seen (previous frame). For new: current. */
	uint64_t runtime_ns, rss_bytes, vsz_bytes;
	bool pid_reused;           /* the pid now belongs to a newer process */
};

/* Share of one CPU's (or all CPUs') time over the interval, in percent. */
struct vmw_cpu_percent {
	double user, nice, system, idle, iowait, irq, softirq, steal;
};

struct vmw_frame {
	uint64_t seq;              /* 0 for the first frame after (re)attach */
	uint64_t wall_time_ns;     /* CLOCK_REALTIME when the frame was taken */
	uint64_t interval_ns;      /* what CPU% is computed over; 0 on the first frame */
	bool first;                /* no previous frame: rates are 0 */
	bool rebooted;             /* the guest rebooted; the sampler re-attached */
	struct vmw_sample *procs;
	size_t nprocs;
	struct vmw_event *events;
	size_t nevents;
	size_t skipped;
	bool truncated;
	char truncated_why[160];
	/* The guest summary at this frame (uptime, load, memory, CPU times), when
	 * the kernel has what it needs; summary.cpu is owned by the frame. */
	bool summary_ok;
	struct vmw_summary summary;
	/* CPU time split over the interval (zero on the first frame), like top's
	 * %Cpu line: total, and per online vCPU (summary.ncpus entries). */
	struct vmw_cpu_percent cpu_total;
	struct vmw_cpu_percent *cpu;
	uint64_t mem_total_bytes;  /* guest MemTotal used for MEM% (RAM size without a summary) */
	double cpu_percent_total;  /* sum over processes */
	uint64_t frame_ns;         /* host time spent taking the frame */
	uint64_t bytes_read;
};

int vmw_sampler_open(const char *target, const struct vmw_sampler_opts *opts,
		     struct vmw_sampler **ret, struct vmw_error *err);
void vmw_sampler_close(struct vmw_sampler *s);

/* Take a frame now. On a hard failure (QEMU gone, memory unreadable and
 * re-attach impossible) returns a negative errno with err set. */
int vmw_sampler_frame(struct vmw_sampler *s, struct vmw_frame **ret, struct vmw_error *err);
void vmw_frame_free(struct vmw_frame *f);

struct vmw_kernel *vmw_sampler_kernel(struct vmw_sampler *s);
struct vmw_mem *vmw_sampler_mem(struct vmw_sampler *s);
/* What the sampler watches, for display: "vm1 (qemu:1234)" or the target. */
const char *vmw_sampler_name(const struct vmw_sampler *s);

/* Pure helper, exposed for tests: the interval rates are computed over.
 * It is the host's interval. The guest's clock can only be read as of its
 * last tick or idle transition, so on an idle (NO_HZ) guest it is stale by
 * an unknown amount, and dividing by it would invent load. Runtime can never
 * exceed real time, so the host interval never invents load: a paused guest
 * accrues no runtime and shows 0 %. Returns 0 when no time passed. */
uint64_t vmw_sampler_interval(uint64_t host_delta_ns);
