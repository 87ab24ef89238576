/* SPDX-License-Identifier: MIT */
/*
 * sampler.h - frames of a guest over time: per-process CPU% and memory, the
 * guest summary, and process events between frames.
 *
 A sampler reads one guest through a session (src/session: the target, its
 * stack, liveness, reboots and re-attach with back-off). Each call to
 * vmw_sampler_frame() walks the guest once — never pausing it — and
 * computes, against the previous frame:
 *   - CPU% of each process (and thread, on request) from the change in the
 *     scheduler's sum_exec_runtime over the interval; 100 % = one vCPU, like
 *     top, over the host's interval (a paused or starved guest accrues no
 *     runtime, so it shows no invented load);
 *   - MEM% of guest RAM and the change in RSS;
 *   - events: processes that appeared, exited (with their last values), and
 *     pid reuse (same pid, different start time = exit + new).
 * Counter deltas saturate at zero. When the session re-attached (the guest
 * rebooted: its VMCOREINFO changed or, seen here, its uptime went backwards;
 * or it was unreadable for a while) rates restart and the frame is marked
 * `rebooted`.
 */
#pragma once

#include "session/session.h"
#include "linux/cgroups.h"

struct vmw_sampler;

struct vmw_sampler_opts {
	size_t sz;                 /* sizeof(struct vmw_sampler_opts) */
	unsigned walk_flags;       /* VMW_WALK_THREADS, VMW_WALK_CMDLINE */
};

/* Per-second rates of a process's counters over a frame's interval, like
 * htop's IO_READ_RATE / IO_WRITE_RATE (sampler.c, beside CPU%): the change
 * of each counter divided by the interval, saturating at zero; a process new
 * since the previous frame did all of its counting within the interval. 0 on
 * a first frame. The I/O ones mean something only when proc.io_ok. */
struct vmw_proc_rates {
	double rchar, wchar;           /* bytes/s through read()/write() and the like (/proc/PID/io) */
	double syscr, syscw;           /* read and write system calls/s */
	double read_bytes, write_bytes;/* bytes/s fetched from / sent to storage */
	double min_flt, maj_flt;       /* page faults/s */
	double nvcsw, nivcsw;          /* voluntary and involuntary context switches/s (the leader's) */
};

/* One process in a frame. */
struct vmw_sample {
	struct vmw_proc proc;      /* values at this frame (owned by the frame) */
	double cpu_percent;        /* over the interval; 100 = one vCPU */
	double mem_percent;        /* RSS / guest MemTotal */
	int64_t rss_delta_bytes;   /* change since the previous frame */
	double *thread_cpu_percent;/* parallel to proc.threads when listed */
	bool is_new;               /* not in the previous frame */
	struct vmw_proc_rates rate;/* its counters' rates over the interval */
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
	/* The processes' command lines live in procs's allocation, after the
	 * samples (a decoded frame, vmw_frame_decode: one allocation for all of
	 * it), not one allocation each; vmw_frame_free knows. */
	bool cmdlines_in_procs;
	struct vmw_event *events;
	size_t nevents;
	size_t skipped;
	size_t incomplete;         /* processes marked incomplete (vmw_proc.incomplete) */
	bool truncated;
	char truncated_why[160];
	bool complete;             /* nothing skipped, cut or implausible (vmw_walk_complete) */
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
	/* The guest OS: its /etc/os-release as the page cache held it when last
	 * read (vmw_users_os: re-read when the file's inode changes); os_ok false
	 * when it is unknown (not cached, not there). */
	bool os_ok;
	struct vmw_os_release os;
	/* ---- cgroups (linux/cgroups.h) ----
	 * The guest's cgroup v2 tree at this frame, process counts from this
	 * frame's walk, and each cgroup's %CPU over the interval (NAN on the first
	 * frame and for a cgroup new since the last one). cgroups_ok is false when
	 * the kernel lacks the layouts or the walk failed. Owned by the frame. */
	bool cgroups_ok;
	struct vmw_cgroups cgroups;
	double *cgroup_cpu_percent; /* cgroups.n entries */
};

/* A sampler of session's guest. The session must have been opened with
 * want_linux (and want_summary for the summary and CPU split); the sampler
 * borrows it: close the sampler first. -ENOMEM only. */
int vmw_sampler_new(struct vmw_session *session, const struct vmw_sampler_opts *opts,
		    struct vmw_sampler **ret);
void vmw_sampler_close(struct vmw_sampler *s);

/* Take a frame now. When the guest cannot be read, returns the failure's
 * negative errno with err set (its kind says why) and the session tells
 * what comes next: WAITING (retry at vmw_session_retry_at) or GONE. */
int vmw_sampler_frame(struct vmw_sampler *s, struct vmw_frame **ret, struct vmw_error *err);
void vmw_frame_free(struct vmw_frame *f);

/*
 * A frame as bytes and back (wire.c), for a sampler running in another
 * process of the same build. encode: a new buffer (*ret, freed by the
 * caller); -ENOMEM only. decode treats the bytes as hostile: it never
 * trusts a count beyond the bytes there, terminates strings, normalizes
 * bools and non-finite numbers, and rebuilds the frame's invariants; bytes
 * from another build or that do not add up are refused (kind inconsistent).
 */
int vmw_frame_encode(const struct vmw_frame *f, uint8_t **ret, size_t *ret_len);
/*
 * The same bytes without holding them all (the agent's sampler: a frame of a
 * 1,000-process guest is ~0.6 MB): vmw_frame_encoded_size says how many
 * there will be, vmw_frame_stream fills buf (cap bytes, its first used bytes
 * already taken, e.g. by a reply header sent with them) and hands it to
 * sink each time it is full, and once at the end. A sink returns 0 or a
 * negative errno, which stops the stream and is returned.
 */
typedef int vmw_frame_sink(void *opaque, const void *buf, size_t len);
uint64_t vmw_frame_encoded_size(const struct vmw_frame *f);
int vmw_frame_stream(const struct vmw_frame *f, uint8_t *buf, size_t cap, size_t used, vmw_frame_sink *sink,
		     void *opaque);
int vmw_frame_decode(const void *buf, size_t len, struct vmw_frame **ret, struct vmw_error *err);

struct vmw_session *vmw_sampler_session(struct vmw_sampler *s);
/* The session's kernel and memory source (NULL while it is not attached). */
struct vmw_kernel *vmw_sampler_kernel(struct vmw_sampler *s);
struct vmw_mem *vmw_sampler_mem(struct vmw_sampler *s);

/* ---- the pure part of a frame, exposed for tests ------------------------ */

/* The walk's records as samples, in the walk's own array (resized; each
 * record moved to the start of its sample, the rest of the sample zeroed):
 * the sampler keeps no second copy of a frame's processes. The array is
 * the caller's, to free with free(); w->procs is NULL after. NULL, w
 * untouched, when out of memory. */
struct vmw_sample *vmw_samples_from_walk(struct vmw_walk *w);

/* The counters behind struct vmw_proc_rates, in its order. */
#define VMW_PROC_NCOUNTERS 10
void vmw_proc_counters(const struct vmw_proc *p, uint64_t ret[VMW_PROC_NCOUNTERS]);

/* What a frame remembers of a task (process or thread) for the next one. */
struct vmw_task_prev {
	int32_t id;                /* pid or tid */
	uint64_t start_time_ns;
	uint64_t runtime_ns;
	uint64_t rss_bytes, vsz_bytes;   /* processes only */
	char comm[64];
	/* Counters the rates are computed from (processes only), in the order
	 * of struct vmw_proc_rates. */
	uint64_t counters[VMW_PROC_NCOUNTERS];
};

/* The previous frame's tasks; valid false on a first frame (after attach). */
struct vmw_prev_frame {
	bool valid;
	const struct vmw_task_prev *procs;
	size_t nprocs;
	const struct vmw_task_prev *threads;
	size_t nthreads;
};

/*
 * Compare f's processes (f->procs[i].proc, f->nprocs) with the previous frame,
 * given f->interval_ns, f->mem_total_bytes and f->truncated: fills each
 * sample's cpu_percent, rate, mem_percent, rss_delta_bytes, is_new and
 * thread_cpu_percent (when threads are listed), f->cpu_percent_total and
 * f->events: NEW for a process not seen before, EXIT for one gone (only when
 * the walk was complete) and EXIT with pid_reused followed by NEW when a pid
 * now has another start time. A task new since the previous frame ran all
 * its runtime within the interval. 0 or -ENOMEM.
 */
int vmw_sampler_compare(const struct vmw_prev_frame *prev, struct vmw_frame *f);
