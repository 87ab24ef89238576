/* SPDX-License-Identifier: MIT */
/*
 * agent_int.h - what the agent's files share: the VM registry, published
 * snapshots, history, events and the HTTP front.
 *
 * Locking (never held across a guest read):
 *   agent->lock    the registry (vms[]) and the libvirt status;
 *   vm->lock       one VM's status, metadata, published snapshot, events and
 *                  history; the sampler thread holds it only to publish;
 *   agent->live    read-mostly settings that SIGHUP may change (tokens, ...).
 * Order: agent->lock before vm->lock; nothing else nests.
 * Snapshots are immutable once published and refcounted: a handler takes a
 * reference under vm->lock and renders without any lock.
 */
#pragma once

#include "agent/agent.h"
#include "report/report.h"
#include "sampler/sampler.h"
#include "virt/virt.h"

#include <pthread.h>
#include <string.h>
#include <stdatomic.h>

typedef struct json_t json_t;

/* ---------------------------------------------------------------- snapshots */

/* Processes grouped by name (like process-exporter's namegroups). */
struct agent_group {
	char name[72];
	uint32_t procs, threads;
	uint64_t rss_bytes, vsz_bytes, swap_bytes;
	uint64_t user_ns, system_ns;   /* accumulated over the group's life: monotonic */
	double cpu_percent;            /* this interval */
	uint64_t oldest_start_ns;      /* its processes' earliest start after boot (UINT64_MAX: none) */
};

struct agent_snap {
	atomic_uint ref;
	uint64_t seq;                  /* publications for this VM, from 1 */
	uint64_t id;                   /* unique in the agent's life (any VM) */
	struct vmw_frame *frame;
	const struct vmw_summary *summary; /* &frame->summary, or NULL when the frame has none */
	struct vmw_pidmap pids;        /* pid -> index in frame->procs */
	struct agent_group *groups;    /* sorted by name */
	size_t ngroups;
	struct vmw_report_tasks tasks; /* by state class, threads */
	size_t bytes;                  /* approximate memory held */
};

/* snapshot.c. f is the new snapshot's; prev carries the groups' counters. */
struct agent_snap *agent_snap_build(struct vmw_frame *f, const struct agent_snap *prev,
				   uint64_t seq, unsigned max_groups);
struct agent_snap *agent_snap_ref(struct agent_snap *s);
void agent_snap_unref(struct agent_snap *s);
/* Index in s->frame->procs of pid, or -1. */
long agent_snap_find(const struct agent_snap *s, int32_t pid);

/* What the compat API keeps of a snapshot it may have to diff against (the
 * one before the latest, the one a client was last served): each process's
 * identity and its row's values, ~60 bytes a process instead of the whole
 * frame (compat.c). Immutable, refcounted. */
struct agent_base_proc {
	int32_t pid, prio;
	uint64_t start_time_ns;
	uint64_t rss_kib, vsz_kib;
	double cpu_percent, mem_percent;
	uint32_t comm;                 /* offset of its comm in the base's names */
	char state;
};

struct agent_base {
	atomic_uint ref;
	uint64_t snap_id;              /* the snapshot's id */
	size_t n;
	struct agent_base_proc *procs; /* sorted by pid */
	char *names;                   /* the comms, each terminated */
};

/* NULL when s is NULL or out of memory. */
struct agent_base *agent_base_build(const struct agent_snap *s);
struct agent_base *agent_base_ref(struct agent_base *b);
void agent_base_unref(struct agent_base *b);

/* ---------------------------------------------------------------- history */

/* A process's points, run-length encoded: n consecutive frames with the same
 * values (a sleeping process's CPU stays 0 and its RSS the same, so most
 * processes hold a few runs instead of cap points). */
struct agent_hist_run {
	float cpu_percent;
	uint32_t rss_kb;
	uint32_t n;                    /* frames, >= 1 */
};

struct agent_hist_proc {
	int32_t pid;
	uint64_t start_time_ns;
	uint64_t first;                /* frame count of its oldest point held */
	/* Its points of frames first .. count-1 (the ring's last cap at most),
	 * oldest first: a ring of rcap runs (grown on demand, never above cap). */
	struct agent_hist_run *runs;
	uint32_t rcap, rstart, rn;
};

struct agent_hist {
	size_t cap;                    /* points per series */
	uint64_t count;                /* frames recorded */
	uint64_t *time_ns;             /* wall clock of each point (ring) */
	float *cpu_total;
	uint32_t *nprocs;
	float *load1;
	uint64_t *mem_used_kb;
	/* The guest's CPU split over all vCPUs (NaN without a valid one) and
	 * page cache + buffers / free memory (history_split.c's series). */
	float *cpu_busy, *cpu_user, *cpu_system, *cpu_iowait, *cpu_steal;
	uint64_t *mem_cached_kb, *mem_free_kb;
	struct agent_hist_proc *procs; /* in the last frame's order */
	size_t nprocs_tracked;
	struct vmw_pidmap map;         /* pid -> index in procs */
	size_t bytes;
};

int agent_hist_init(struct agent_hist *h, size_t cap);
void agent_hist_free(struct agent_hist *h);
int agent_hist_record(struct agent_hist *h, const struct agent_snap *s, size_t max_procs);
json_t *agent_hist_vm_json(const struct agent_hist *h);
/* Only the points after since_ns (wall clock; 0: all). */
json_t *agent_hist_vm_json_since(const struct agent_hist *h, uint64_t since_ns);
json_t *agent_hist_proc_json_since(const struct agent_hist *h, int32_t pid, uint64_t start_time_ns,
				   uint64_t since_ns);
/* NULL when the process has no history. */
json_t *agent_hist_proc_json(const struct agent_hist *h, int32_t pid, uint64_t start_time_ns);

/* ---------------------------------------------------------------- VMs */

enum agent_status {
	AGENT_VM_STARTING,             /* attaching for the first time */
	AGENT_VM_OK,                   /* frames are being taken */
	AGENT_VM_ERROR,                /* cannot be introspected (reason says why); retrying */
	AGENT_VM_GONE,                 /* its QEMU process exited */
	AGENT_VM_CRASHED,              /* its sampler process crashed or hung; restarting with back-off */
};

struct agent_event {
	uint64_t seq;                  /* per VM, from 1, never reused */
	uint64_t wall_ns;
	struct vmw_event e;
};

struct agent;

/* The clock of frames held after a reset: the last one's guest uptime and
 * host time, how long and for how many frames it has run in step (reset.c). */
struct agent_reset_clock {
	uint64_t uptime_ns, host_ns, run_ns;
	unsigned steps;
};

struct agent_vm {
	atomic_uint ref;
	struct agent *a;
	/* Fixed at creation. */
	char id[40];                   /* UUID, or an id made from the target */
	char name[256];
	char target[300];              /* qemu:PID or file:PATH */
	bool from_libvirt;
	pid_t qemu_pid;
	uint64_t qemu_start_ticks;     /* /proc/PID/stat starttime: detects PID reuse */
	uint64_t created_wall_ns;
	pthread_t thread;

	pthread_mutex_t lock;
	pthread_cond_t cond;           /* broadcast on publish, status change and stop */
	/* Under lock. */
	struct vmw_domain dom;
	bool stop, removed;
	enum agent_status status;
	/* libvirt reported a guest reset: the old kernel's structures stay in RAM
	 * until the new kernel overwrites them, so frames are held back until one
	 * shows the new kernel (the sampler marks it rebooted). */
	bool rebooting;
	uint64_t reboot_gen;           /* bumped by each reset: frames asked for before it are dropped */
	struct agent_reset_clock held; /* the clock of the frames held since */
	const char *reason_code;       /* static string: not_linux, no_btf, permission, ... */
	char reason[600];
	uint64_t status_wall_ns;
	struct agent_snap *snap;       /* latest published, NULL before the first frame */
	struct agent_base *prev;       /* what the compat API keeps of the one before */
	char kernel_release[72];
	char kernel_build_id[48];
	uint64_t frames_total, frame_errors_total, attaches_total;
	uint64_t sampler_crashes_total;  /* its sampler process crashed, hung or sent garbage */
	double host_cpu_percent;       /* its QEMU process on the host over the last interval, -1 unknown */
	uint64_t events_total[3];      /* by enum vmw_event_type */
	struct agent_event *ev;        /* ring of ev_cap, grown as events come up to max_events */
	size_t ev_cap, ev_start, ev_n;
	uint64_t ev_next_seq;
	struct agent_hist hist;
};

/* history.c: the frame's events into vm's ring (under vm->lock); the ring
 * grows as events come, up to max_events, then drops the oldest. */
void agent_events_push(struct agent_vm *vm, const struct vmw_frame *f, unsigned max_events);

struct agent_vm *agent_vm_ref(struct agent_vm *vm);
void agent_vm_unref(struct agent_vm *vm);

/* ---------------------------------------------------------------- the agent */

struct agent_live {
	pthread_rwlock_t lock;
	char **tokens;
	size_t ntokens;
	atomic_uint_fast64_t interval_ns;
	atomic_uint top_n;
};

struct agent_compat;

struct agent {
	struct vmw_agent_config cfg;   /* as started (live values in `live`) */
	struct agent_live live;
	atomic_bool stopping;
	uint64_t start_wall_ns;

	pthread_mutex_t lock;
	struct agent_vm **vms;
	size_t nvms;
	uint64_t next_anon_id;
	/* libvirt */
	struct vmw_virt *virt;
	bool virt_up;
	char virt_error[512];
	uint64_t virt_events_total;

	/* VM threads still running (shutdown waits for them). */
	pthread_mutex_t threads_lock;
	pthread_cond_t threads_cond;
	unsigned nthreads;

	struct agent_compat *compat;
	struct agent_http *http;
	atomic_uint_fast64_t http_requests_total, http_errors_total;
};

/* sampler_client.c: the VM's sampler process (privsep.h), seen from the front. */
struct agent_sampler {
	pid_t pid;                     /* 0: not running */
	int fd;                        /* its frame channel */
	/* From its last answer: the session's state and the kernel it found. */
	enum vmw_session_state state;
	uint64_t retry_at_ns, attaches;
	char release[72], build_id[48], cache_warning[256];
};
int agent_sampler_start(struct agent_sampler *sp, const struct agent_vm *vm, bool cmdline, bool no_cache,
			struct vmw_error *err);
void agent_sampler_stop(struct agent_sampler *sp);
/* A frame within timeout_ns. A failure of the guest returns its errno with
 * err's kind saying why (sp->state: WAITING or GONE); a failure of the
 * sampler itself (crash, hang, malformed answer) returns -EPIPE with kind
 * VMW_ERR_CRASHED, and the sampler is gone (killed and reaped). */
int agent_sampler_frame(struct agent_sampler *sp, const struct vmw_session_policy *p, uint64_t timeout_ns,
			struct vmw_frame **ret, struct vmw_error *err);

/* monitor.c: the VM's sampler thread (holds a reference); 0 or -errno. */
int agent_vm_thread_start(struct agent_vm *vm);
/* vm->qemu_start_ticks of vm->qemu_pid; with from_cmdline also its name, uuid
 * and vCPUs from QEMU's command line (a target given without libvirt). */
void agent_vm_identify(struct agent_vm *vm, bool from_cmdline);
/* The guest was reset (libvirt's reboot event): drop its published frames and
 * hold new ones back until they come from the new kernel. Takes vm->lock. */
void agent_vm_rebooting(struct agent_vm *vm);
/* reset.c: does the held frames' clock (guest uptime against host time) run
 * in step with the host's, frame after frame? */
void agent_reset_clock_start(struct agent_reset_clock *c);
bool agent_reset_clock_runs(struct agent_reset_clock *c, uint64_t uptime_ns, uint64_t host_ns);

/* registry.c */
int agent_monitor_start(struct agent *a);
void agent_monitor_stop(struct agent *a);
/* Add a VM sampled from target (explicit --target) or from a libvirt domain. */
int agent_vm_add_target(struct agent *a, const char *spec);
void agent_vm_add_domain(struct agent *a, const struct vmw_domain *dom);
void agent_vm_remove_domain(struct agent *a, const char *uuid, const char *why);
/* Reconcile with libvirt's list (connects if needed). */
void agent_monitor_reconcile(struct agent *a);
/* A referenced VM by UUID (any case) or name; NULL if none. */
struct agent_vm *agent_vm_lookup(struct agent *a, const char *id);
/* All VMs, referenced, in the registry's order; free with agent_vms_put. */
size_t agent_vms_get(struct agent *a, struct agent_vm ***ret);
void agent_vms_put(struct agent_vm **v, size_t n);
/* The latest snapshot, referenced, or NULL. */
struct agent_snap *agent_vm_snap(struct agent_vm *vm);
const char *agent_status_name(enum agent_status s);
void agent_wake_all(struct agent *a);

/* render.c: the API's documents, from src/report's objects. */
json_t *agent_vm_json(struct agent_vm *vm, bool detail);
/* The same with history points after since_ns only (0: all). */
json_t *agent_vm_json_since(struct agent_vm *vm, bool detail, uint64_t since_ns);
/* ?since=SECONDS (Unix time, fractions allowed) → ns; -EINVAL if malformed. */
int agent_parse_since(const char *s, uint64_t *ret_ns);
/* Process list query: ?sort, ?limit, ?fields. err_param names the bad parameter. */
struct agent_query {
	enum { AGENT_SORT_CPU, AGENT_SORT_MEM, AGENT_SORT_PID, AGENT_SORT_VSZ, AGENT_SORT_THREADS, AGENT_SORT_TIME,
	       AGENT_SORT_NAME, AGENT_SORT_USER, AGENT_SORT_STATE, AGENT_SORT_NICE, AGENT_SORT_START,
	       AGENT_SORT_IO, AGENT_SORT_FAULTS } sort;
	size_t limit;                  /* 0: all */
	char **fields;                 /* NULL: all */
	size_t nfields;
};
int agent_query_parse(struct agent_query *q, const char *sort, const char *limit, const char *fields,
		      char *errbuf, size_t errsize);
void agent_query_free(struct agent_query *q);
json_t *agent_procs_json(struct agent_vm *vm, const struct agent_snap *s, const struct agent_query *q);
/* The SSE frame: procs_json plus summary and this frame's events. */
json_t *agent_frame_json(struct agent_vm *vm, const struct agent_snap *s, const struct agent_query *q);
/* The guest summary of s (what top shows in its header). */
json_t *agent_summary_json(struct agent_vm *vm, const struct agent_snap *s);
json_t *agent_events_json(struct agent_vm *vm, uint64_t since, size_t limit);
json_t *agent_event_json(const struct agent_event *ev);

/* promtext.c. Text appended to a growing buffer. After a failure (out of
 * memory) nothing more is appended. A buffer of megabytes (a piece of a
 * /metrics page at many VMs) asks for transparent huge pages: one fault per
 * 2 MiB, not per 4 KiB. */
struct agent_buf {
	char *p;
	size_t len, cap;
	bool failed;
};
static inline void agent_buf_init(struct agent_buf *b)
{
	*b = (struct agent_buf){ 0 };
}
bool agent_buf_room_slow(struct agent_buf *b, size_t n);
static inline bool agent_buf_room(struct agent_buf *b, size_t n)
{
	return (b->cap - b->len >= n && !b->failed) || agent_buf_room_slow(b, n);
}
static inline void agent_buf_put(struct agent_buf *b, const char *s, size_t n)
{
	if (agent_buf_room(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}
static inline void agent_buf_puts(struct agent_buf *b, const char *s)
{
	agent_buf_put(b, s, strlen(s));
}
static inline void agent_buf_putc(struct agent_buf *b, char c)
{
	if (agent_buf_room(b, 1))
		b->p[b->len++] = c;
}
void agent_buf_printf(struct agent_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A label value: \ " and newline escaped as the exposition format wants;
 * every other control byte and invalid UTF-8 become '?'. */
void agent_prom_label_value(struct agent_buf *b, const char *s);
/* v exactly as "%.15g" writes it (integers and most others without printf). */
void agent_prom_number(struct agent_buf *b, double v);
/* "%.15g" of v when it is finite, not 0 and its rounded exponent in
 * [-4, 14] (fixed notation): into out (>= 32 bytes), its length; else 0. */
size_t agent_prom_g15(char *out, double v);
/* u as "%llu" writes it. */
void agent_prom_u64(struct agent_buf *b, uint64_t u);

/* GET /metrics, written piece by piece (each a whole number of families)
 * from the VMs' snapshots as begin found them; process_exporter: process
 * groups named as process-exporter's namedprocess_namegroup_*
 * (?dialect=process-exporter). begin: NULL when out of memory. next
 * appends the next piece to out: 1, 0 when there is none left, or -ENOMEM
 * (out->failed). */
struct agent_metrics;
struct agent_metrics *agent_metrics_begin(struct agent *a, bool process_exporter);
int agent_metrics_next(struct agent_metrics *m, struct agent_buf *out);
void agent_metrics_end(struct agent_metrics *m);

/* compat.c: the VM Process Monitor client API. */
int agent_compat_init(struct agent *a);
void agent_compat_free(struct agent *a);
json_t *agent_compat_instances(struct agent *a);
/* compat_diff.c: the rows of snap against base, sorted by pid: "Existed
 * Process" or "New Process" (not in base: same pid and start time), then
 * base's processes not in snap as "Ended Process" with their last values.
 * base NULL or of snap itself: every process existed. */
json_t *agent_compat_diff(const struct agent_snap *snap, const struct agent_base *base);
/* The process list for client; NULL (with *code, msg) when not possible. */
json_t *agent_compat_processes(struct agent *a, const char *instance, const char *client,
			       unsigned *code, char *msg, size_t msgsize);
void agent_compat_expire(struct agent *a);

/* http.c */
int agent_http_start(struct agent *a, struct vmw_error *err);
void agent_http_stop(struct agent *a);
/* The server's counters (httpd.h): connections accepted, shut for slow
 * headers, event streams dropped for a client that stopped reading. */
struct vmw_httpd_stats;
void agent_http_counters(struct agent *a, struct vmw_httpd_stats *ret);

/* selfstat.c: the agent's own process_* metrics. */
struct agent_selfstat {
	double cpu_seconds, start_time_s;
	uint64_t rss_bytes, vsz_bytes;
	uint64_t rss_anon_bytes, rss_file_bytes, rss_shmem_bytes;  /* /proc/self/status */
	unsigned open_fds, max_fds, threads;
};
int agent_selfstat(struct agent_selfstat *ret);

/* log.c (besides vmw_agent_log in agent.h) */
/* sd_notify(3) without libsystemd: 0 if sent, -ENOENT without NOTIFY_SOCKET. */
int agent_sd_notify(const char *state);

/* The embedded web page (generated from index.html). */
extern const char agent_index_html[];
extern const size_t agent_index_html_len;
