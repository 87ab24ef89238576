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
	/* Toggleable rate columns (top_col_shown): i shows the I/O ones, f the
	 * fault and context-switch ones. */
	TOP_COL_RCHAR_RATE,
	TOP_COL_WCHAR_RATE,
	TOP_COL_READ_RATE,
	TOP_COL_WRITE_RATE,
	TOP_COL_MINFLT_RATE,
	TOP_COL_MAJFLT_RATE,
	TOP_COL_CSW_RATE,
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
#define TOP_USER_MAX 32      /* VMW_USER_NAME_MAX: longer names are no guest's */

struct top_view {
	enum top_col sort;
	bool invert;               /* reverse the column's natural order */
	bool tree;                 /* processes under their parents */
	bool threads;              /* threads under their process */
	char filter[128];          /* case-insensitive substring of comm or command line */
	const int32_t *pids;       /* -p: only these pids (NULL: all) */
	size_t npids;
	bool uid_set;              /* -u, u: only processes of this (real) uid, the USER column */
	uint32_t uid;
	char user[TOP_USER_MAX + 1]; /* the name -u or u gave ("" for a number): shown; resolved
				      * through the guest's /etc/passwd (top_source_user) */
	bool hide_kthreads;        /* K: kernel threads hidden */
	bool cpu_total;            /* 1: one CPU meter for all vCPUs instead of one each */
	bool io_cols;              /* i, --io: the I/O rate columns */
	bool fault_cols;           /* f, --faults: the fault and context-switch rate columns */
	bool group_units;          /* G: processes grouped by systemd unit or container (not in the tree) */
};
/* Is column c on screen in view v (the rate columns only when toggled on)? */
bool top_col_shown(const struct top_view *v, enum top_col c);
/* The shown column next to c (dir +1 or -1), wrapping around: < and >. */
enum top_col top_col_step(const struct top_view *v, enum top_col c, int dir);
/* Show the column group of c if it is a rate column (sorting by it shows it). */
void top_col_show(struct top_view *v, enum top_col c);
/* What G groups process p by (top_cgroups.c): its container ("docker:0123456789ab"),
 * else its unit, else its slice, else its cgroup path ("-" when unknown);
 * made terminal-safe. */
void top_unit_of(const struct vmw_proc *p, char *buf, size_t size);
/* -u USER, u: a uid number. 0, or -EINVAL (a name: top_source_user). */
int top_parse_user(const char *s, uint32_t *ret);

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

/* Cells of a row, formatted (the columns v shows, without the command). */
void top_row_cells(const struct top_row *r, const struct top_view *v, char *buf, size_t size);
/* The column titles line without COMMAND's padding. */
void top_header_cells(const struct top_view *v, char *buf, size_t size);
/* A rate per second in 7 characters: "0", "512", "12.3K", "4.5M", "1.2G". */
void top_fmt_rate(char *buf, size_t size, double per_second);
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
/* -u USER, u: a uid number, or a name the guest's /etc/passwd gives (as its
 * page cache held it at the last frame; "root" is 0 when it is not read).
 * 0, -EINVAL (not a plausible name) or -ENOENT (no such user). */
int top_source_user(struct top_source *src, const char *s, uint32_t *ret);

/* Interactive view. Returns the exit code; *stop is set by SIGINT/SIGTERM. */
struct top_opts {
	const char *target;
	uint64_t interval_ns;
	uint64_t iterations;       /* 0: until quit */
	struct top_view view;
	bool cmdline;
	struct vmw_sampler_opts sopts;
	struct cli_target topts;   /* the target options (no_cache, process_read, ...) */
	bool back;                 /* drilled into from the host view: Esc/Backspace return */
};
/* top_tui_run's answer when the user went back to the host view (o->back). */
#define TOP_TUI_BACK 3
int top_tui_run(struct top_source *src, const struct top_opts *o, struct top_header *h,
		volatile sig_atomic_t *stop);

/* A first frame to compute rates against, so the first one shown has CPU%.
 * False if a stop was requested meanwhile. */
bool top_first_frame(struct top_source *src, uint64_t interval_ns);
/* "1", "0.5", "0.01" seconds → ns (at least 1 µs, at most a day). 0 or -EINVAL. */
int top_parse_seconds(const char *s, uint64_t *ret);
/* Shared by the loops: next deadline after a frame, skipping missed ones. */
uint64_t top_next_deadline(uint64_t deadline, uint64_t interval_ns, uint64_t now, uint64_t *late);

/*
 * ---- the host view (top_host.c, top_host_tui.c) ----------------------------
 *
 * Every VM of the host, one row each, like virt-top: libvirt domains and
 * QEMU processes (found in /proc), plus the targets named on the command
 * line. Each VM is one session and one sampler, kept across frames; a VM
 * that cannot be read stays listed with the reason.
 */
#include "report/report.h"
#include "virt/virt.h"

enum host_col {
	HOST_COL_NAME,
	HOST_COL_STATUS,
	HOST_COL_VCPU,
	HOST_COL_CPU,              /* guest busy % of all its vCPUs */
	HOST_COL_US,
	HOST_COL_SY,
	HOST_COL_WA,
	HOST_COL_ST,
	HOST_COL_HOST,             /* the QEMU process on the host, 100 = one host CPU */
	HOST_COL_MEM,              /* used bytes */
	HOST_COL_MEMPCT,
	HOST_COL_PROCS,
	HOST_COL_LOAD,
	HOST_COL_OS,               /* the guest OS as ID:VERSION_ID (debian:12), - unknown */
	HOST_COL_TOP,              /* the busiest process's CPU% */
	HOST_NCOLS,
};
extern const struct top_col_info host_cols[HOST_NCOLS];
/* --sort FIELD in the host view → column; -1 if unknown. */
int host_col_parse(const char *s);

struct host_vm {
	char key[80];              /* identity across updates: QEMU pid + start, or the target */
	char name[256];            /* shown: Nova instance name, domain, QEMU -name, target */
	char target[512];          /* what the session opens */
	bool extra;                /* named on the command line: listed even when gone */
	bool has_dom;
	struct vmw_domain dom;
	struct vmw_qemu_id qid;    /* pid 0: not known (yet) */
	unsigned vcpus;            /* configured (domain, -smp); 0 unknown */
	struct vmw_session *sess;
	struct vmw_sampler *s;
	struct vmw_frame *frame;   /* the last frame, NULL while not readable */
	struct vmw_report_use use; /* derived from frame */
	const char *status;        /* starting, ok, waiting, gone */
	char reason_code[32];
	char reason[600];
	bool host_cpu_ok;
	struct vmw_qemu_cpu_meter host_meter;  /* the QEMU process's host CPU */
	double host_cpu;
	bool seen;
};

struct host_opts {
	bool all;                  /* discover libvirt domains and QEMU processes */
	char **targets;            /* and these */
	size_t ntargets;
	const char *match;         /* only VMs whose name holds this (case-insensitive) */
	const char *uri;           /* libvirt URI (NULL: the default) */
	struct cli_target topts;
	struct vmw_sampler_opts sopts;
};

struct host_view {
	const struct host_opts *o;
	struct host_vm **vms;
	size_t n;
	struct vmw_virt *virt;
	uint64_t virt_retry_at;
	char virt_why[512];        /* libvirt is not usable: why ("" when it is) */
	uint64_t seq, wall_ns;
};

void host_view_init(struct host_view *hv, const struct host_opts *o);
void host_view_free(struct host_view *hv);
/* Find VMs that started, drop those that stopped, take a frame of each. 0 or -ENOMEM. */
int host_view_update(struct host_view *hv);
/* Swap a VM's sampler for one with other walk flags (drill-down and back). 0 or -ENOMEM. */
int host_vm_resample(struct host_vm *vm, const struct vmw_sampler_opts *opts);

struct host_sort {
	enum host_col col;
	bool invert;
	char filter[128];          /* case-insensitive substring of the name or target */
};
/* The VMs to show, sorted; rows holds hv->n entries. Returns how many. */
size_t host_rows(const struct host_view *hv, const struct host_sort *s, struct host_vm **rows);
/* The fixed cells of a row / the titles (the busiest process is last, separate). */
void host_row_cells(const struct host_vm *vm, char *buf, size_t size);
void host_header_cells(char *buf, size_t size);
/* The OS column of vm: "debian:12", "-" when unknown (one terminal-safe word). */
void host_os_text(const struct host_vm *vm, char *buf, size_t size);
/* The last column: the busiest process with its CPU%, or the reason it is not readable. */
void host_row_tail(const struct host_vm *vm, char *buf, size_t size);
/* The frame of every VM as JSON (report.h's vmw_report_host_frame). */
json_t *host_view_json(const struct host_view *hv, struct host_vm **rows, size_t n);

/* Interactive host view; drills into top_tui_run. */
int host_tui_run(struct host_view *hv, const struct top_opts *o, struct host_sort *sort,
		 volatile sig_atomic_t *stop);
