/* SPDX-License-Identifier: MIT */
/*
 * top_internal.h - what the pieces of `vmwatch top` share:
 *   top_model.c  the view of one sampler frame: header values (guest summary,
 *                task counts) and the table rows (filter, sort, tree, threads)
 *                with their cells formatted; no I/O
 *   top_tui.c    the interactive ncurses screen
 *   cmd_top.c    options, frame timing, signals, batch text and JSON Lines
 */
#pragma once

#include "cli/cli.h"
#include "sampler/sampler.h"

#include <signal.h>

/* Table columns, in display order (`<` and `>` move the sort along it). */
enum top_col {
	TOP_COL_PID,
	TOP_COL_USER,
	TOP_COL_PR,
	TOP_COL_NI,
	TOP_COL_VIRT,
	TOP_COL_RES,
	TOP_COL_SHR,
	TOP_COL_S,
	TOP_COL_CPU,
	TOP_COL_MEM,
	TOP_COL_TIME,
	TOP_COL_COMMAND,
	TOP_NCOLS,
};

/* Column title, right-aligned width ("COMMAND" is last and takes the rest),
 * and the name -o/--sort accepts. */
struct top_col_info {
	const char *title;
	int width;
	const char *name;
	bool descending;           /* natural order: biggest first (CPU%, MEM%, ...) */
};
extern const struct top_col_info top_cols[TOP_NCOLS];
/* -o FIELD → column; -1 if unknown. Accepts names and titles (cpu, %CPU, mem, ...). */
int top_col_parse(const char *s);

/* What the user chose to see. */
struct top_view {
	enum top_col sort;
	bool invert;               /* reverse the column's natural order */
	bool tree;                 /* processes under their parents */
	bool threads;              /* threads under their process */
	char filter[128];          /* case-insensitive substring of comm or command line */
	const int32_t *pids;       /* -p: only these pids (NULL: all) */
	size_t npids;
};

/* One table row: a process, or one thread of a process. */
struct top_row {
	const struct vmw_sample *s;
	const struct vmw_thread *t;  /* NULL for a process row */
	double cpu_percent;          /* the process's, or the thread's own */
	uint32_t depth;              /* tree depth: 0 = no tree glyph */
	bool last;                   /* last among its siblings (└ rather than ├) */
	uint64_t more;               /* bit l: the ancestor at depth l+1 has later siblings (│) */
};

struct top_rows {
	struct top_row *v;
	size_t n, cap;
};

/* Build the rows of frame f as view v shows them. Rows point into f. */
int top_rows_build(struct top_rows *rows, const struct vmw_frame *f, const struct top_view *v);
void top_rows_free(struct top_rows *rows);
/* Does process p pass the name filter (empty filter: yes)? */
bool top_proc_matches(const struct vmw_proc *p, const char *filter);

/* Tree glyphs of a row as text: UTF-8 box drawing or ASCII ("|- ", "`- "). */
size_t top_tree_prefix(const struct top_row *r, bool utf8, char *buf, size_t size);

/* Cells of a row, formatted (fixed columns only; the command is separate). */
void top_row_cells(const struct top_row *r, char *buf, size_t size);
/* The column titles line without COMMAND's padding. */
void top_header_cells(char *buf, size_t size);
/* The command of a row: cmdline joined by spaces, [comm] for kernel threads
 * and processes without one, the thread's comm for thread rows. Guest bytes
 * that are not printable ASCII become '?'. */
void top_row_command(const struct top_row *r, char *buf, size_t size);
/* Guest text made printable (control and non-ASCII bytes → '?'). */
void top_sanitize(char *dst, size_t size, const char *src);

/* Sizes like top: KiB below 10^6 KiB, then "1234.5m", "12.3g". */
void top_fmt_kib(char *buf, size_t size, uint64_t bytes);
/* "12.3M", "1.2G": bytes with a binary unit, for the header meters. */
void top_fmt_bytes(char *buf, size_t size, uint64_t bytes);
/* TIME+ like top: minutes:seconds.hundredths. */
void top_fmt_time(char *buf, size_t size, uint64_t ns);
/* Uptime like "3 days, 01:02:03" or "01:02:03". */
void top_fmt_uptime(char *buf, size_t size, uint64_t seconds);

/* CPU time split of one vCPU (or all), in percent of the interval (the
 * sampler's struct vmw_cpu_percent plus what the meters draw). */
struct top_cpu {
	double user, nice, system, idle, iowait, irq, softirq, steal;
	double busy;               /* 100 - idle - iowait, clamped to [0, 100] */
};

#define TOP_MAX_CPUS 256

/* The header: what the guest summary provides, or what can be derived from
 * the processes when it does not (fields marked by their *_ok flags). */
struct top_header {
	const char *target;
	const struct vmw_kernel_info *ki;  /* for JSON (NULL if not attached) */
	struct vmw_mem *mem;
	char release[65];
	uint64_t wall_time_ns;

	bool summary_ok;           /* the frame carried the guest summary */
	bool uptime_ok;
	uint64_t uptime_s;
	bool load_ok;
	char loadavg[64];          /* as /proc/loadavg prints them (JSON: report.h's load) */
	unsigned nr_running;       /* runnable tasks (/proc/loadavg field 4) */

	/* Per-vCPU and total CPU splits (summary); else cpu_ok is false and only
	 * procs_cpu_percent (sum over processes, 100 = one vCPU) is known. */
	bool cpu_ok;
	unsigned ncpus;            /* vCPUs the bars show (summary), else nr_cpus of the kernel */
	unsigned cpu_id[TOP_MAX_CPUS];
	struct top_cpu cpu[TOP_MAX_CPUS];
	struct top_cpu cpu_total;
	double procs_cpu_percent;

	/* Memory in bytes (summary); else only mem_total (the frame's MemTotal / RAM size). */
	bool mem_ok;
	uint64_t mem_total, mem_free, mem_available, mem_buffers, mem_cached;
	bool swap_ok;
	uint64_t swap_total, swap_free;

	/* Counted from the frame's processes (report.h's classes; sleeping is
	 * top's: S, D and I). */
	unsigned tasks, running, sleeping, stopped, zombie, threads;
	unsigned kthreads;
};

/* Fill h from frame f (sampler s gives the kernel release). Without the
 * frame's guest summary (summary_ok false: this kernel lacks something the
 * summary needs) the header keeps to what the processes tell. */
void top_header_fill(struct top_header *h, struct vmw_sampler *s, const char *target,
		     const struct vmw_frame *f);

/*
 * The guest as top reads it: a sampler, and the QEMU process behind it.
 *
 * The guest is a session (src/session): liveness of the QEMU process,
 * reboots and re-attach with back-off are its state machine; top's policy
 * retries after 0.5 s, doubling up to 5 s, while the QEMU process lives. A
 * file: target has no process: any failure is final.
 */
struct top_source {
	const char *target;
	struct vmw_session *sess;
	struct vmw_sampler *s;
	uint64_t retry_at;           /* while waiting: when the session tries again */
	char why[600];               /* the last failure, for messages */
};

enum top_frame_status {
	TOP_FRAME_OK,                /* *ret is a frame */
	TOP_FRAME_WAIT,              /* not readable now (why); try again at retry_at */
	TOP_FRAME_GONE,              /* never again (why) */
};

/* Open target; 0, or EXIT_USAGE after printing why it cannot be opened. */
int top_source_open(struct top_source *src, const char *target, const struct cli_target *topts,
		    const struct vmw_sampler_opts *opts);
void top_source_close(struct top_source *src);
enum top_frame_status top_source_frame(struct top_source *src, struct vmw_frame **ret);

/* Interactive view. Returns the exit code; *stop is set by SIGINT/SIGTERM. */
struct top_opts {
	const char *target;
	uint64_t interval_ns;
	uint64_t iterations;       /* 0: until quit */
	struct top_view view;
	bool cmdline;
	struct vmw_sampler_opts sopts;
	struct cli_target topts;   /* the target options (no_cache, process_read, ...) */
};
int top_tui_run(struct top_source *src, const struct top_opts *o, struct top_header *h,
		volatile sig_atomic_t *stop);

/* "1", "0.5", "0.01" seconds → ns (at least 1 µs, at most a day). 0 or -EINVAL. */
int top_parse_seconds(const char *s, uint64_t *ret);
/* Shared by the loops: next deadline after a frame, skipping missed ones. */
uint64_t top_next_deadline(uint64_t deadline, uint64_t interval_ns, uint64_t now, uint64_t *late);
