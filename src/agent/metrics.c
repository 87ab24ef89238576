/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - GET /metrics: Prometheus text exposition format 0.0.4.
 *
 * Every family is written once (HELP, TYPE, then its samples for every VM),
 * names follow Prometheus conventions (base units, _total counters, _info
 * metadata gauges of value 1). Per-process series are bounded: the top N
 * processes by CPU, the top N by resident memory and the top N by I/O rate
 * (read()+write() bytes/s) of each VM (their union), plus process-name
 * groups (at most max_groups per VM).
 *
 * Every per-VM series carries the labels vm (the agent's name for the VM),
 * domain (the same name, as libvirt-exporter calls it) and uuid, plus
 * nova_project and nova_project_id for an OpenStack instance: dashboards
 * and rules aggregate per VM or per project without a join.
 * Process names in labels are stable: a kernel worker's comm
 * ("kworker/0:1-events", "kworker/u8:2+flush-8:0") names the workqueue item
 * it ran last and changes with every job, so it is "kworker" (stable_name()).
 */
#include "agent/agent_int.h"
#include "httpd/httpd.h"
#include "version.h"

#include <errno.h>
#include <math.h>
#include <string.h>

struct mvm {
	struct agent_vm *vm;
	double *oldest;               /* per group: earliest start, Unix time (0: none) */
	struct agent_snap *snap;      /* NULL before the first frame */
	struct vmw_domain dom;
	enum agent_status status;
	char release[72];
	uint64_t frames, errors, crashes, events[3];
	size_t hist_bytes;
	char *labels;                 /* its labels, escaped (NULL: out of memory) */
	size_t labels_len;
	uint32_t *top;                /* indices of the top-N union, in pid order */
	size_t ntop;
	struct agent_buf plabels;     /* their labels (p NULL: out of memory) */
	size_t *plabel_off;           /* where each one's start in plabels, and the end */
};

/* pre, a space, v (as %.15g) and the end of the line. */
static void put_tail(struct agent_buf *f, const char *pre, double v)
{
	agent_buf_puts(f, pre);
	agent_buf_putc(f, ' ');
	agent_prom_number(f, v);
	agent_buf_putc(f, '\n');
}

static void family(struct agent_buf *f, const char *name, const char *type, const char *help)
{
	agent_buf_puts(f, "# HELP ");
	agent_buf_puts(f, name);
	agent_buf_putc(f, ' ');
	agent_buf_puts(f, help);
	agent_buf_puts(f, "\n# TYPE ");
	agent_buf_puts(f, name);
	agent_buf_putc(f, ' ');
	agent_buf_puts(f, type);
	agent_buf_putc(f, '\n');
}

struct label {
	const char *k, *v;
};

/* ,k="v" for each label with a value (an empty label is the same as none). */
static void put_labels(struct agent_buf *f, const struct label *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!l[i].v[0])
			continue;
		agent_buf_printf(f, ",%s=\"", l[i].k);
		agent_prom_label_value(f, l[i].v);
		agent_buf_putc(f, '"');
	}
}

/* vm="...",domain="...",uuid="..."[,nova_project=...]: the labels of every
 * per-VM series. */
static void write_vm_labels(struct agent_buf *f, const struct mvm *m)
{
	const struct label l[] = {
		{ "domain", m->vm->name }, { "uuid", m->dom.uuid },
		{ "nova_project", m->dom.nova.project_name }, { "nova_project_id", m->dom.nova.project_id },
	};
	agent_buf_puts(f, "vm=\"");
	agent_prom_label_value(f, m->vm->name);
	agent_buf_putc(f, '"');
	put_labels(f, l, ARRAY_SIZE(l));
}

/* name{<vm labels>: the brace left open. The labels are escaped once per
 * scrape (m->labels), not once per series. */
static void vm_labels(struct agent_buf *f, const char *name, const struct mvm *m)
{
	agent_buf_puts(f, name);
	agent_buf_putc(f, '{');
	if (m->labels)
		agent_buf_put(f, m->labels, m->labels_len);
	else
		write_vm_labels(f, m);
}

/* name{<vm labels>[,extra]} value */
static void vm_sample(struct agent_buf *f, const char *name, const struct mvm *m, const char *extra, double v)
{
	vm_labels(f, name, m);
	if (extra) {
		agent_buf_putc(f, ',');
		agent_buf_puts(f, extra);
	}
	put_tail(f, "}", v);
}

/* A process name that does not change while the process lives. */
static const char *stable_name(const struct vmw_proc *p)
{
	return p->kthread && !strncmp(p->comm, "kworker/", 8) ? "kworker" : p->comm;
}

/* ,pid="...",name="..." of process p. */
static void write_proc_labels(struct agent_buf *f, const struct vmw_proc *p)
{
	agent_buf_puts(f, ",pid=\"");
	agent_prom_number(f, p->pid);
	agent_buf_puts(f, "\",name=\"");
	agent_prom_label_value(f, stable_name(p));
	agent_buf_putc(f, '"');
}

/* name{<vm labels>,pid=...,name=...: the labels of the i-th top-N process,
 * written once per scrape (m->plabels), not once per series (~20). */
static void proc_labels(struct agent_buf *f, const char *name, const struct mvm *m, size_t i)
{
	vm_labels(f, name, m);
	if (m->plabels.p)
		agent_buf_put(f, m->plabels.p + m->plabel_off[i], m->plabel_off[i + 1] - m->plabel_off[i]);
	else
		write_proc_labels(f, &m->snap->frame->procs[m->top[i]].proc);
}

static void group_labels(struct agent_buf *f, const char *name, const struct mvm *m, const struct agent_group *g)
{
	vm_labels(f, name, m);
	agent_buf_puts(f, ",groupname=\"");
	agent_prom_label_value(f, g->name);
	agent_buf_putc(f, '"');
}

/* Orders of a frame's processes (its indices): negative when process a
 * comes before b; ties by pid, so that the order is total. */
typedef int proc_order(const struct vmw_frame *fr, uint32_t a, uint32_t b);

static int by_pid(const struct vmw_frame *fr, uint32_t a, uint32_t b)
{
	return fr->procs[a].proc.pid - fr->procs[b].proc.pid;
}

static int by_cpu(const struct vmw_frame *fr, uint32_t a, uint32_t b)
{
	const struct vmw_sample *x = &fr->procs[a], *y = &fr->procs[b];
	if (x->cpu_percent != y->cpu_percent)
		return x->cpu_percent < y->cpu_percent ? 1 : -1;
	return x->proc.pid - y->proc.pid;
}

static int by_rss(const struct vmw_frame *fr, uint32_t a, uint32_t b)
{
	const struct vmw_sample *x = &fr->procs[a], *y = &fr->procs[b];
	uint64_t rx = vmw_proc_rss_bytes(&x->proc), ry = vmw_proc_rss_bytes(&y->proc);
	if (rx != ry)
		return rx < ry ? 1 : -1;
	return x->proc.pid - y->proc.pid;
}

/* I/O rate: bytes/s through read() and write() (rchar + wchar). */
static double io_rate(const struct vmw_sample *x)
{
	return x->proc.io_ok ? x->rate.rchar + x->rate.wchar : 0;
}

static int by_io(const struct vmw_frame *fr, uint32_t a, uint32_t b)
{
	const struct vmw_sample *x = &fr->procs[a], *y = &fr->procs[b];
	if (io_rate(x) != io_rate(y))
		return io_rate(x) < io_rate(y) ? 1 : -1;
	return x->proc.pid - y->proc.pid;
}

/* The first k processes in order, into best[] (sorted): one pass keeping
 * the k best so far, not a sort of all (k is small, n ~ 10^2..10^4). */
static size_t first_k(const struct vmw_frame *fr, size_t k, proc_order *order, uint32_t *best)
{
	size_t cnt = 0;

	for (uint32_t i = 0; i < fr->nprocs && k; i++) {
		size_t j;
		if (cnt == k && order(fr, i, best[k - 1]) >= 0)
			continue;
		j = cnt < k ? cnt++ : k - 1;
		for (; j > 0 && order(fr, i, best[j - 1]) < 0; j--)
			best[j] = best[j - 1];
		best[j] = i;
	}
	return cnt;
}

static void pick_top(struct mvm *m, unsigned n)
{
	const struct vmw_frame *fr = m->snap->frame;
	size_t k = MIN(n, fr->nprocs), got;
	uint32_t *best = malloc((k + 1) * sizeof(*best));
	bool *mark = calloc(fr->nprocs + 1, 1);

	if (!best || !mark || !(m->top = malloc((3 * k + 1) * sizeof(*m->top)))) {
		free(best);
		free(mark);
		return;
	}
	got = first_k(fr, k, by_cpu, best);
	for (size_t i = 0; i < got; i++)
		mark[best[i]] = true;
	got = first_k(fr, k, by_rss, best);
	for (size_t i = 0; i < got; i++)
		mark[best[i]] = true;
	got = first_k(fr, k, by_io, best);
	for (size_t i = 0; i < got && io_rate(&fr->procs[best[i]]) > 0; i++)
		mark[best[i]] = true;
	/* In pid order (the union is at most 3k). */
	for (uint32_t i = 0; i < fr->nprocs; i++) {
		size_t j;
		if (!mark[i])
			continue;
		for (j = m->ntop++; j > 0 && by_pid(fr, i, m->top[j - 1]) < 0; j--)
			m->top[j] = m->top[j - 1];
		m->top[j] = i;
	}
	free(best);
	free(mark);
}

#define FOR_UP(m, ms, n) for (struct mvm *m = ms; m < ms + n; m++) if (m->snap)
#define FOR_SUM(m, ms, n) for (struct mvm *m = ms; m < ms + n; m++) if (m->snap && m->snap->summary)

static void guest_metrics(struct agent_buf *f, struct mvm *ms, size_t n)
{
	static const struct { const char *name, *help; size_t off; } mem[] = {
#define M(n, field, h) { "vmwatch_guest_" n "_bytes", h, offsetof(struct vmw_summary, field) }
		M("memory_total", mem_total_kb, "MemTotal of the guest's /proc/meminfo."),
		M("memory_free", mem_free_kb, "MemFree of the guest's /proc/meminfo."),
		M("memory_available", mem_available_kb, "MemAvailable of the guest's /proc/meminfo."),
		M("memory_buffers", buffers_kb, "Buffers of the guest's /proc/meminfo."),
		M("memory_cached", cached_kb, "Cached of the guest's /proc/meminfo."),
		M("memory_shmem", shmem_kb, "Shmem of the guest's /proc/meminfo."),
		M("swap_total", swap_total_kb, "SwapTotal of the guest's /proc/meminfo."),
		M("swap_free", swap_free_kb, "SwapFree of the guest's /proc/meminfo."),
#undef M
	};
	static const char *load_names[3] = { "vmwatch_guest_load1", "vmwatch_guest_load5", "vmwatch_guest_load15" };
	static const char *load_help[3] = { "Guest load average over 1 minute.", "Guest load average over 5 minutes.",
					    "Guest load average over 15 minutes." };

	family(f, "vmwatch_guest_uptime_seconds", "gauge", "Time since the guest booted (its /proc/uptime).");
	FOR_SUM(m, ms, n)
		vm_sample(f, "vmwatch_guest_uptime_seconds", m, NULL, (double)m->snap->summary->uptime_ns / 1e9);
	family(f, "vmwatch_guest_boot_time_seconds", "gauge", "When the guest booted, Unix time (btime).");
	FOR_SUM(m, ms, n)
		vm_sample(f, "vmwatch_guest_boot_time_seconds", m, NULL, (double)m->snap->summary->boot_time_s);
	for (int i = 0; i < 3; i++) {
		family(f, load_names[i], "gauge", load_help[i]);
		FOR_SUM(m, ms, n) {
			double load[3];
			vmw_report_load(m->snap->summary, load);
			vm_sample(f, load_names[i], m, NULL, load[i]);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(mem); i++) {
		family(f, mem[i].name, "gauge", mem[i].help);
		FOR_SUM(m, ms, n) {
			uint64_t kb = *(const uint64_t *)((const char *)m->snap->summary + mem[i].off);
			vm_sample(f, mem[i].name, m, NULL, (double)kb * 1024.0);
		}
	}
	family(f, "vmwatch_guest_cpus", "gauge", "Online CPUs of the guest.");
	FOR_SUM(m, ms, n)
		vm_sample(f, "vmwatch_guest_cpus", m, NULL, m->snap->summary->ncpus);
	family(f, "vmwatch_guest_cpu_seconds_total", "counter",
	       "CPU time of all guest CPUs by mode (the guest's /proc/stat cpu line).");
	FOR_SUM(m, ms, n) {
		const struct vmw_cpu_times *t = &m->snap->summary->total;
		const struct { const char *mode; uint64_t v; } modes[] = {
			{ "user", t->user }, { "nice", t->nice }, { "system", t->system }, { "idle", t->idle },
			{ "iowait", t->iowait }, { "irq", t->irq }, { "softirq", t->softirq }, { "steal", t->steal },
		};
		for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
			char extra[32];
			snprintf(extra, sizeof(extra), "mode=\"%s\"", modes[i].mode);
			vm_sample(f, "vmwatch_guest_cpu_seconds_total", m, extra, (double)modes[i].v / 1e9);
		}
	}
	family(f, "vmwatch_guest_context_switches_total", "counter", "Context switches in the guest since boot.");
	FOR_SUM(m, ms, n)
		vm_sample(f, "vmwatch_guest_context_switches_total", m, NULL, (double)m->snap->summary->ctxt);
	family(f, "vmwatch_guest_forks_total", "counter", "Processes and threads created in the guest since boot.");
	FOR_SUM(m, ms, n)
		vm_sample(f, "vmwatch_guest_forks_total", m, NULL, (double)m->snap->summary->processes);
	family(f, "vmwatch_guest_procs_running", "gauge", "Runnable tasks in the guest (/proc/stat procs_running).");
	FOR_SUM(m, ms, n)
		vm_sample(f, "vmwatch_guest_procs_running", m, NULL, m->snap->summary->procs_running);
	family(f, "vmwatch_guest_procs_blocked", "gauge", "Tasks blocked on I/O in the guest (/proc/stat procs_blocked).");
	FOR_SUM(m, ms, n)
		vm_sample(f, "vmwatch_guest_procs_blocked", m, NULL, m->snap->summary->procs_blocked);

	family(f, "vmwatch_guest_processes", "gauge", "Processes in the guest (kernel threads included).");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_guest_processes", m, NULL, (double)m->snap->frame->nprocs);
	family(f, "vmwatch_guest_threads", "gauge", "Threads of all processes in the guest.");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_guest_threads", m, NULL, (double)m->snap->tasks.threads);
	family(f, "vmwatch_guest_tasks", "gauge", "Guest processes by state (top's Tasks line).");
	FOR_UP(m, ms, n) {
		for (int i = 0; i < VMW_TASK_NCLASSES; i++) {
			char extra[32];
			snprintf(extra, sizeof(extra), "state=\"%s\"", vmw_report_task_class_name(i));
			vm_sample(f, "vmwatch_guest_tasks", m, extra, m->snap->tasks.by_class[i]);
		}
	}
	family(f, "vmwatch_guest_process_events_total", "counter",
	       "Processes seen starting (new) and exiting (exit) since the agent began watching the VM.");
	for (struct mvm *m = ms; m < ms + n; m++) {
		vm_sample(f, "vmwatch_guest_process_events_total", m, "type=\"new\"", (double)m->events[VMW_EVENT_NEW]);
		vm_sample(f, "vmwatch_guest_process_events_total", m, "type=\"exit\"", (double)m->events[VMW_EVENT_EXIT]);
	}
}

static double cpu_ratio(const struct mvm *m, const struct vmw_sample *x) { return x->cpu_percent / 100.0; }
static double resident(const struct mvm *m, const struct vmw_sample *x) { return (double)vmw_proc_rss_bytes(&x->proc); }
static double virtual(const struct mvm *m, const struct vmw_sample *x) { return (double)x->proc.vsz_bytes; }
static double threads(const struct mvm *m, const struct vmw_sample *x) { return x->proc.nr_threads; }
static double start_time(const struct mvm *m, const struct vmw_sample *x)
{
	return (double)m->snap->summary->boot_time_s + (double)x->proc.start_time_ns / 1e9;
}

/* One value per top-N process. */
static const struct {
	const char *name, *help;
	double (*value)(const struct mvm *m, const struct vmw_sample *x);
	bool needs_summary;
} proc_gauges[] = {
	{ "vmwatch_process_cpu_ratio", "CPU used by a guest process over the last interval; 1 = one vCPU (top N).",
	  cpu_ratio, false },
	{ "vmwatch_process_resident_memory_bytes", "Resident memory of a guest process (top N).", resident, false },
	{ "vmwatch_process_virtual_memory_bytes", "Virtual memory size of a guest process (top N).", virtual, false },
	{ "vmwatch_process_threads", "Threads of a guest process (top N).", threads, false },
	{ "vmwatch_process_start_time_seconds", "When a guest process started, Unix time (top N).", start_time, true },
};

/* The names of the process-group families: vmwatch's own, or those of
 * process-exporter (github.com/ncabatoff/process-exporter), whose Grafana
 * dashboards then work on guest processes. */
struct group_names {
	const char *procs, *threads, *cpu, *memory, *oldest;
};
static const struct group_names vmwatch_names = {
	"vmwatch_group_procs", "vmwatch_group_threads", "vmwatch_group_cpu_seconds_total",
	"vmwatch_group_memory_bytes", "vmwatch_group_oldest_start_time_seconds",
};
static const struct group_names pe_names = {
	"namedprocess_namegroup_num_procs", "namedprocess_namegroup_num_threads",
	"namedprocess_namegroup_cpu_seconds_total", "namedprocess_namegroup_memory_bytes",
	"namedprocess_namegroup_oldest_start_time_seconds",
};

/* Earliest start of each group's processes, Unix time (0: none; snapshot.c
 * keeps each group's earliest start after boot). A crash-looping group's
 * oldest start keeps moving. */
static void oldest_starts(struct mvm *m)
{
	const struct agent_snap *s = m->snap;

	if (!s->summary || !s->ngroups || !(m->oldest = calloc(s->ngroups, sizeof(*m->oldest))))
		return;
	for (size_t k = 0; k < s->ngroups; k++)
		if (s->groups[k].oldest_start_ns != UINT64_MAX)
			m->oldest[k] = (double)s->summary->boot_time_s + (double)s->groups[k].oldest_start_ns / 1e9;
}

static void group_metrics(struct agent_buf *f, struct mvm *ms, size_t n, const struct group_names *nm)
{
	family(f, nm->procs, "gauge", "Guest processes in a name group.");
	FOR_UP(m, ms, n)
		for (size_t i = 0; i < m->snap->ngroups; i++) {
			group_labels(f, nm->procs, m, &m->snap->groups[i]);
			put_tail(f, "}", m->snap->groups[i].procs);
		}
	family(f, nm->threads, "gauge", "Threads of the guest processes in a name group.");
	FOR_UP(m, ms, n)
		for (size_t i = 0; i < m->snap->ngroups; i++) {
			group_labels(f, nm->threads, m, &m->snap->groups[i]);
			put_tail(f, "}", m->snap->groups[i].threads);
		}
	family(f, nm->cpu, "counter", "CPU time of the guest processes in a name group, exited ones included.");
	FOR_UP(m, ms, n)
		for (size_t i = 0; i < m->snap->ngroups; i++) {
			const struct agent_group *g = &m->snap->groups[i];
			group_labels(f, nm->cpu, m, g);
			put_tail(f, ",mode=\"user\"}", (double)g->user_ns / 1e9);
			group_labels(f, nm->cpu, m, g);
			put_tail(f, ",mode=\"system\"}", (double)g->system_ns / 1e9);
		}
	family(f, nm->memory, "gauge", "Memory of the guest processes in a name group (resident, virtual, swapped).");
	FOR_UP(m, ms, n)
		for (size_t i = 0; i < m->snap->ngroups; i++) {
			const struct agent_group *g = &m->snap->groups[i];
			const struct { const char *type; uint64_t v; } mt[] = {
				{ "resident", g->rss_bytes }, { "virtual", g->vsz_bytes }, { "swapped", g->swap_bytes },
			};
			for (size_t k = 0; k < ARRAY_SIZE(mt); k++) {
				group_labels(f, nm->memory, m, g);
				agent_buf_puts(f, ",memtype=\"");
				agent_buf_puts(f, mt[k].type);
				agent_buf_puts(f, "\"} ");
				agent_prom_u64(f, mt[k].v);
				agent_buf_putc(f, '\n');
			}
		}
	family(f, nm->oldest, "gauge", "When the oldest process of a name group started, Unix time.");
	FOR_UP(m, ms, n)
		for (size_t i = 0; m->oldest && i < m->snap->ngroups; i++) {
			if (!m->oldest[i])
				continue;
			group_labels(f, nm->oldest, m, &m->snap->groups[i]);
			put_tail(f, "}", m->oldest[i]);
		}
}

/* ---- I/O, faults and context switches of the top-N processes ------------ */

/* A counter or rate of a sample; label is an extra label ("" none). */
struct proc_series {
	const char *name, *type, *help, *label;
	bool io;                      /* from /proc/PID/io: only where the kernel keeps it */
	size_t off;                   /* a uint64_t of struct vmw_proc, or a double of struct vmw_proc_rates */
};

#define PC(n, l, io, field, h) { n, "counter", h, l, io, offsetof(struct vmw_proc, field) }
#define PR(n, field, h) { n, "gauge", h, "", true, offsetof(struct vmw_proc_rates, field) }
static const struct proc_series proc_counters[] = {
	PC("vmwatch_process_syscall_read_bytes_total", "", true, io_rchar,
	   "Bytes a guest process read through read() and the like (rchar of /proc/PID/io; top N)."),
	PC("vmwatch_process_syscall_write_bytes_total", "", true, io_wchar,
	   "Bytes a guest process wrote through write() and the like (wchar of /proc/PID/io; top N)."),
	PC("vmwatch_process_read_syscalls_total", "", true, io_syscr, "Read system calls of a guest process (syscr; top N)."),
	PC("vmwatch_process_write_syscalls_total", "", true, io_syscw, "Write system calls of a guest process (syscw; top N)."),
	PC("vmwatch_process_read_bytes_total", "", true, io_read_bytes,
	   "Bytes a guest process caused to be fetched from storage (read_bytes of /proc/PID/io; top N)."),
	PC("vmwatch_process_write_bytes_total", "", true, io_write_bytes,
	   "Bytes a guest process caused to be sent to storage (write_bytes of /proc/PID/io; top N)."),
	PC("vmwatch_process_page_faults_total", "type=\"minor\"", false, min_flt,
	   "Page faults of a guest process by type (minor, major; /proc/PID/stat; top N)."),
	PC("vmwatch_process_page_faults_total", "type=\"major\"", false, maj_flt, NULL),
	PC("vmwatch_process_context_switches_total", "type=\"voluntary\"", false, nvcsw,
	   "Context switches of a guest process's main thread by type (voluntary, nonvoluntary; "
	   "/proc/PID/status; top N)."),
	PC("vmwatch_process_context_switches_total", "type=\"nonvoluntary\"", false, nivcsw, NULL),
};
static const struct proc_series proc_rates[] = {
	PR("vmwatch_process_syscall_read_bytes_per_second", rchar,
	   "Bytes/s a guest process read through read() and the like over the last interval (top N)."),
	PR("vmwatch_process_syscall_write_bytes_per_second", wchar,
	   "Bytes/s a guest process wrote through write() and the like over the last interval (top N)."),
	PR("vmwatch_process_read_bytes_per_second", read_bytes,
	   "Bytes/s a guest process caused to be fetched from storage over the last interval (top N)."),
	PR("vmwatch_process_write_bytes_per_second", write_bytes,
	   "Bytes/s a guest process caused to be sent to storage over the last interval (top N)."),
};
#undef PC
#undef PR

static void series_family(struct agent_buf *f, struct mvm *ms, size_t n, const struct proc_series *s, bool rate)
{
	if (s->help)
		family(f, s->name, s->type, s->help);
	FOR_UP(m, ms, n)
		for (size_t i = 0; i < m->ntop; i++) {
			const struct vmw_sample *x = &m->snap->frame->procs[m->top[i]];
			double v = rate ? *(const double *)((const char *)&x->rate + s->off)
					: (double)*(const uint64_t *)((const char *)&x->proc + s->off);
			if (s->io && !x->proc.io_ok)
				continue;
			proc_labels(f, s->name, m, i);
			if (s->label[0]) {
				agent_buf_putc(f, ',');
				agent_buf_puts(f, s->label);
			}
			put_tail(f, "}", v);
		}
}

static void proc_cpu(struct agent_buf *f, struct mvm *ms, size_t n)
{
	family(f, "vmwatch_process_cpu_seconds_total", "counter",
	       "CPU time of a guest process (top N by CPU and by memory per VM).");
	FOR_UP(m, ms, n)
		for (size_t i = 0; i < m->ntop; i++) {
			const struct vmw_proc *p = &m->snap->frame->procs[m->top[i]].proc;
			proc_labels(f, "vmwatch_process_cpu_seconds_total", m, i);
			put_tail(f, ",mode=\"user\"}", (double)p->utime_ns / 1e9);
			proc_labels(f, "vmwatch_process_cpu_seconds_total", m, i);
			put_tail(f, ",mode=\"system\"}", (double)p->stime_ns / 1e9);
		}
}

static void proc_gauge(struct agent_buf *f, struct mvm *ms, size_t n, size_t k)
{
	family(f, proc_gauges[k].name, "gauge", proc_gauges[k].help);
	for (struct mvm *m = ms; m < ms + n; m++) {
		if (!m->snap || (proc_gauges[k].needs_summary && !m->snap->summary))
			continue;
		for (size_t i = 0; i < m->ntop; i++) {
			const struct vmw_sample *x = &m->snap->frame->procs[m->top[i]];
			proc_labels(f, proc_gauges[k].name, m, i);
			put_tail(f, "}", proc_gauges[k].value(m, x));
		}
	}
}

/* ,os_id="debian",os_version="12",os_name="Debian GNU/Linux 12 (bookworm)":
 * the guest's /etc/os-release (ID, VERSION_ID, PRETTY_NAME) as its last
 * frame carried it; none when unknown. */
static void os_labels(struct agent_buf *f, const struct mvm *m)
{
	const struct vmw_frame *fr = m->snap ? m->snap->frame : NULL;

	if (!fr || !fr->os_ok)
		return;
	const struct label l[] = {
		{ "os_id", fr->os.id }, { "os_version", fr->os.version_id }, { "os_name", fr->os.pretty_name },
	};
	put_labels(f, l, ARRAY_SIZE(l));
}

/* ---- cgroups: systemd units and containers ------------------------------
 * The cgroups that are a unit (their last path component is the unit the
 * path names) or a container; per VM the top N by %CPU and the top N by
 * memory.current (their union), N = top_n like the processes. */
struct mcg {
	const struct vmw_frame *fr;
	uint32_t *idx;
	size_t n;
};

static bool cg_is_unit(const struct vmw_cgroup_stat *c, struct vmw_cgroup_info *info)
{
	const char *base = strrchr(c->path, '/');

	if (!base || !vmw_cgroup_classify(c->path, info))
		return false;
	base++;
	return (info->unit[0] && !strcmp(base, info->unit)) || (info->container_id[0] && strstr(base, info->container_id));
}

static double cg_pct(const struct vmw_frame *fr, uint32_t i)
{
	double v = fr->cgroup_cpu_percent ? fr->cgroup_cpu_percent[i] : 0;
	return v == v ? v : -1;   /* unknown last */
}

static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct vmw_frame *cg_sort_frame;

static int cg_by_cpu(const void *a, const void *b)
{
	double x = cg_pct(cg_sort_frame, *(const uint32_t *)a), y = cg_pct(cg_sort_frame, *(const uint32_t *)b);
	return x != y ? (x < y ? 1 : -1) : (int)(*(const uint32_t *)a - *(const uint32_t *)b);
}

static int cg_by_mem(const void *a, const void *b)
{
	uint64_t x = cg_sort_frame->cgroups.cg[*(const uint32_t *)a].memory_current,
		 y = cg_sort_frame->cgroups.cg[*(const uint32_t *)b].memory_current;
	return x != y ? (x < y ? 1 : -1) : (int)(*(const uint32_t *)a - *(const uint32_t *)b);
}

static int cg_by_index(const void *a, const void *b)
{
	return (int)(*(const uint32_t *)a - *(const uint32_t *)b);
}

static void pick_cgroups(const struct vmw_frame *fr, unsigned top_n, struct mcg *ret)
{
	size_t nc = fr->cgroups_ok ? fr->cgroups.n : 0, k = 0, kk;
	uint32_t *cand = malloc((nc + 1) * sizeof(*cand));
	bool *mark = calloc(nc + 1, 1);
	struct vmw_cgroup_info info;

	*ret = (struct mcg){ .fr = fr };
	if (!cand || !mark || !(ret->idx = malloc((nc + 1) * sizeof(*ret->idx)))) {
		free(cand);
		free(mark);
		return;
	}
	for (size_t i = 0; i < nc; i++)
		if (cg_is_unit(&fr->cgroups.cg[i], &info))
			cand[k++] = (uint32_t)i;
	kk = MIN((size_t)top_n, k);
	pthread_mutex_lock(&sort_lock);
	cg_sort_frame = fr;
	qsort(cand, k, sizeof(*cand), cg_by_cpu);
	for (size_t i = 0; i < kk; i++)
		mark[cand[i]] = true;
	qsort(cand, k, sizeof(*cand), cg_by_mem);
	for (size_t i = 0; i < kk; i++)
		mark[cand[i]] = true;
	pthread_mutex_unlock(&sort_lock);
	for (size_t i = 0; i < nc; i++)
		if (mark[i])
			ret->idx[ret->n++] = (uint32_t)i;
	qsort(ret->idx, ret->n, sizeof(*ret->idx), cg_by_index);
	free(cand);
	free(mark);
}

static void cg_labels(struct agent_buf *f, const char *name, const struct mvm *m, const struct vmw_cgroup_stat *c)
{
	struct vmw_cgroup_info info = { 0 };
	const struct label l[] = { { "unit", info.unit }, { "runtime", info.runtime },
				   { "container_id", info.container_id } };

	vmw_cgroup_classify(c->path, &info);
	vm_labels(f, name, m);
	agent_buf_puts(f, ",cgroup=\"");
	agent_prom_label_value(f, c->path);
	agent_buf_putc(f, '"');
	put_labels(f, l, ARRAY_SIZE(l));
}

static void cgroup_metrics(struct agent_buf *f, struct mvm *ms, size_t n, unsigned top_n)
{
	struct mcg *sel = calloc(n ? n : 1, sizeof(*sel));
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "vmwatch_cgroup_cpu_seconds_total", "counter",
		  "CPU time of a unit's or container's cgroup, its cpu.stat usage (top N by CPU and by memory per VM)." },
		{ "vmwatch_cgroup_memory_bytes", "gauge", "memory.current of a unit's or container's cgroup." },
		{ "vmwatch_cgroup_memory_stat_bytes", "gauge", "anon and file of a unit's or container's memory.stat." },
		{ "vmwatch_cgroup_tasks", "gauge", "Processes in a unit's or container's cgroup and below." },
	};

	if (!sel)
		return;
	FOR_UP(m, ms, n)
		if (top_n)
			pick_cgroups(m->snap->frame, top_n, &sel[m - ms]);
	for (size_t k = 0; k < ARRAY_SIZE(fam); k++) {
		family(f, fam[k].name, fam[k].type, fam[k].help);
		FOR_UP(m, ms, n)
			for (size_t i = 0; i < sel[m - ms].n; i++) {
				const struct vmw_cgroup_stat *c = &m->snap->frame->cgroups.cg[sel[m - ms].idx[i]];
				if (k == 0 && c->cpu_ok) {
					cg_labels(f, fam[k].name, m, c);
					put_tail(f, "}", (double)c->usage_usec / 1e6);
				} else if (k == 1 && c->memory_ok) {
					cg_labels(f, fam[k].name, m, c);
					put_tail(f, "}", (double)c->memory_current);
				} else if (k == 2 && c->memory_stat_ok) {
					cg_labels(f, fam[k].name, m, c);
					put_tail(f, ",type=\"anon\"}", (double)c->anon);
					cg_labels(f, fam[k].name, m, c);
					put_tail(f, ",type=\"file\"}", (double)c->file);
				} else if (k == 3 && c->nr_procs_ok) {
					cg_labels(f, fam[k].name, m, c);
					put_tail(f, "}", (double)c->nr_procs_tree);
				}
			}
	}
	for (size_t i = 0; i < n; i++)
		free(sel[i].idx);
	free(sel);
}

static void vm_metrics(struct agent_buf *f, struct mvm *ms, size_t n)
{
	family(f, "vmwatch_vm_info", "gauge", "A VM on this host, with its libvirt and OpenStack Nova metadata "
	       "and the guest's OS (os_id, os_version, os_name from its /etc/os-release).");
	for (struct mvm *m = ms; m < ms + n; m++) {
		const struct vmw_nova *nv = &m->dom.nova;
		const struct label l[] = {
			{ "name", m->vm->name }, { "origin", m->vm->from_libvirt ? "libvirt" : "target" },
			{ "kernel", m->release }, { "nova_instance", nv->instance_name }, { "nova_flavor", nv->flavor },
			{ "nova_user", nv->user_name }, { "nova_user_id", nv->user_id },
		};
		vm_labels(f, "vmwatch_vm_info", m);
		put_labels(f, l, ARRAY_SIZE(l));
		os_labels(f, m);
		agent_buf_puts(f, "} 1\n");
	}
	family(f, "vmwatch_vm_up", "gauge", "1 when the VM's last frame succeeded, 0 when it cannot be introspected.");
	for (struct mvm *m = ms; m < ms + n; m++)
		vm_sample(f, "vmwatch_vm_up", m, NULL, m->status == AGENT_VM_OK);
	family(f, "vmwatch_vm_vcpus", "gauge", "vCPUs of the VM.");
	for (struct mvm *m = ms; m < ms + n; m++)
		if (m->dom.vcpus)
			vm_sample(f, "vmwatch_vm_vcpus", m, NULL, m->dom.vcpus);
	family(f, "vmwatch_vm_memory_bytes", "gauge", "Memory of the VM (libvirt's current memory, else guest RAM).");
	for (struct mvm *m = ms; m < ms + n; m++) {
		uint64_t b = m->dom.memory_bytes ? m->dom.memory_bytes : m->snap ? m->snap->frame->mem_total_bytes : 0;
		if (b)
			vm_sample(f, "vmwatch_vm_memory_bytes", m, NULL, (double)b);
	}
	family(f, "vmwatch_vm_frame_duration_seconds", "gauge", "Host time the VM's last frame took to read.");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_vm_frame_duration_seconds", m, NULL, (double)m->snap->frame->frame_ns / 1e9);
	/* Deprecated names (they read like Prometheus' own scrape_duration_seconds):
	 * kept for one release, see CHANGELOG.md. */
	family(f, "vmwatch_scrape_duration_seconds", "gauge",
	       "Deprecated: use vmwatch_vm_frame_duration_seconds (removed in the next release).");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_scrape_duration_seconds", m, NULL, (double)m->snap->frame->frame_ns / 1e9);
	family(f, "vmwatch_vm_complete", "gauge",
	       "1 when the VM's last frame read every process whole; 0 when records were skipped, the "
	       "task list was cut, or a process was incomplete (its values are lower bounds).");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_vm_complete", m, NULL, m->snap->frame->complete);
	family(f, "vmwatch_vm_skipped_records", "gauge", "Guest records the VM's last frame skipped as invalid.");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_vm_skipped_records", m, NULL, (double)m->snap->frame->skipped);
	family(f, "vmwatch_vm_incomplete_processes", "gauge",
	       "Processes of the VM's last frame with a cut thread list or an implausible count.");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_vm_incomplete_processes", m, NULL, (double)m->snap->frame->incomplete);
	family(f, "vmwatch_vm_frame_read_bytes", "gauge", "Guest memory read for the VM's last frame.");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_vm_frame_read_bytes", m, NULL, (double)m->snap->frame->bytes_read);
	family(f, "vmwatch_scrape_read_bytes", "gauge",
	       "Deprecated: use vmwatch_vm_frame_read_bytes (removed in the next release).");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_scrape_read_bytes", m, NULL, (double)m->snap->frame->bytes_read);
	family(f, "vmwatch_last_frame_timestamp_seconds", "gauge", "When the VM's last frame was taken, Unix time.");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_last_frame_timestamp_seconds", m, NULL, (double)m->snap->frame->wall_time_ns / 1e9);
	family(f, "vmwatch_frames_total", "counter", "Frames taken of the VM.");
	for (struct mvm *m = ms; m < ms + n; m++)
		vm_sample(f, "vmwatch_frames_total", m, NULL, (double)m->frames);
	family(f, "vmwatch_frame_errors_total", "counter", "Frames of the VM that failed.");
	for (struct mvm *m = ms; m < ms + n; m++)
		vm_sample(f, "vmwatch_frame_errors_total", m, NULL, (double)m->errors);
	family(f, "vmwatch_sampler_crashes_total", "counter",
	       "Times the VM's sampler process crashed, hung or sent a malformed frame (it is restarted).");
	for (struct mvm *m = ms; m < ms + n; m++)
		vm_sample(f, "vmwatch_sampler_crashes_total", m, NULL, (double)m->crashes);
	family(f, "vmwatch_history_bytes", "gauge", "Memory the agent holds for the VM's history.");
	for (struct mvm *m = ms; m < ms + n; m++)
		vm_sample(f, "vmwatch_history_bytes", m, NULL, (double)m->hist_bytes);
	family(f, "vmwatch_snapshot_bytes", "gauge", "Memory the agent holds for the VM's latest snapshot.");
	FOR_UP(m, ms, n)
		vm_sample(f, "vmwatch_snapshot_bytes", m, NULL, (double)m->snap->bytes);
}

static void self_metrics(struct agent_buf *f, struct agent *a, size_t nvms)
{
	struct agent_selfstat st;
	bool virt_up;
	uint64_t virt_events;
	struct vmw_httpd_stats hs;

	pthread_mutex_lock(&a->lock);
	virt_up = a->virt_up;
	virt_events = a->virt_events_total;
	pthread_mutex_unlock(&a->lock);

	family(f, "vmwatch_agent_info", "gauge", "The vmwatch agent.");
	agent_buf_printf(f, "vmwatch_agent_info{version=\"%s\"} 1\n", VMWATCH_VERSION);
	family(f, "vmwatch_vms", "gauge", "VMs the agent knows.");
	agent_buf_printf(f, "vmwatch_vms %zu\n", nvms);
	family(f, "vmwatch_libvirt_up", "gauge", "1 when the agent is connected to libvirt.");
	agent_buf_printf(f, "vmwatch_libvirt_up %d\n", virt_up);
	family(f, "vmwatch_libvirt_events_total", "counter", "Domain lifecycle events received from libvirt.");
	agent_buf_printf(f, "vmwatch_libvirt_events_total %llu\n", (unsigned long long)virt_events);
	family(f, "vmwatch_http_requests_total", "counter", "HTTP requests served.");
	agent_buf_printf(f, "vmwatch_http_requests_total %llu\n", (unsigned long long)atomic_load(&a->http_requests_total));
	family(f, "vmwatch_http_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status.");
	agent_buf_printf(f, "vmwatch_http_errors_total %llu\n", (unsigned long long)atomic_load(&a->http_errors_total));
	agent_http_counters(a, &hs);
	family(f, "vmwatch_http_connections_total", "counter", "HTTP connections accepted.");
	agent_buf_printf(f, "vmwatch_http_connections_total %llu\n", (unsigned long long)hs.connections);
	family(f, "vmwatch_http_dropped_connections_total", "counter",
	       "HTTP connections the agent closed: headers too slow (header_timeout), or an event-stream "
	       "client that stopped reading (sse_stall_timeout).");
	agent_buf_printf(f, "vmwatch_http_dropped_connections_total{reason=\"header_timeout\"} %llu\n",
		(unsigned long long)hs.header_timeouts);
	agent_buf_printf(f, "vmwatch_http_dropped_connections_total{reason=\"stalled_stream\"} %llu\n",
		(unsigned long long)hs.stream_drops);
	if (agent_selfstat(&st) < 0)
		return;
	family(f, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
	put_tail(f, "process_cpu_seconds_total", st.cpu_seconds);
	family(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	agent_buf_printf(f, "process_resident_memory_bytes %llu\n", (unsigned long long)st.rss_bytes);
	family(f, "vmwatch_agent_resident_memory_bytes", "gauge",
	       "The agent's resident memory by kind: anon is its own; file and shmem are mostly guest RAM "
	       "it maps read-only, shared with QEMU.");
	agent_buf_printf(f, "vmwatch_agent_resident_memory_bytes{type=\"anon\"} %llu\n", (unsigned long long)st.rss_anon_bytes);
	agent_buf_printf(f, "vmwatch_agent_resident_memory_bytes{type=\"file\"} %llu\n", (unsigned long long)st.rss_file_bytes);
	agent_buf_printf(f, "vmwatch_agent_resident_memory_bytes{type=\"shmem\"} %llu\n", (unsigned long long)st.rss_shmem_bytes);
	family(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	agent_buf_printf(f, "process_virtual_memory_bytes %llu\n", (unsigned long long)st.vsz_bytes);
	family(f, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
	put_tail(f, "process_start_time_seconds", st.start_time_s);
	family(f, "process_open_fds", "gauge", "Number of open file descriptors.");
	agent_buf_printf(f, "process_open_fds %u\n", st.open_fds);
	if (st.max_fds) {
		family(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		agent_buf_printf(f, "process_max_fds %u\n", st.max_fds);
	}
	family(f, "process_threads", "gauge", "Number of OS threads in the process.");
	agent_buf_printf(f, "process_threads %u\n", st.threads);
}

static void vm_labels_cache(struct mvm *m)
{
	struct agent_buf b;

	agent_buf_init(&b);
	write_vm_labels(&b, m);
	if (!b.failed) {
		m->labels = b.p;
		m->labels_len = b.len;
	} else {
		free(b.p);
	}
}

static void proc_labels_cache(struct mvm *m)
{
	agent_buf_init(&m->plabels);
	if (!(m->plabel_off = malloc((m->ntop + 1) * sizeof(*m->plabel_off))))
		return;
	for (size_t i = 0; i < m->ntop; i++) {
		m->plabel_off[i] = m->plabels.len;
		write_proc_labels(&m->plabels, &m->snap->frame->procs[m->top[i]].proc);
	}
	m->plabel_off[m->ntop] = m->plabels.len;
	if (m->plabels.failed) {
		free(m->plabels.p);
		m->plabels.p = NULL;
	}
}

/*
 * A scrape as a sequence of pieces, each a whole number of families: the
 * page is sent while it is written (http.c), through one buffer as large as
 * the largest piece (~0.4 MB at 100 VMs), not the whole page (4.4 MB, a
 * fresh mapping each time: its page faults and zeroing were a third of a
 * scrape's CPU), and the memory no longer grows with the VMs times the
 * series. Every piece is written from the picture taken at the start.
 */
struct agent_metrics {
	struct agent *a;
	struct agent_vm **vms;
	struct mvm *ms;
	size_t n;
	unsigned top_n;
	bool process_exporter;
	size_t step;
};

struct agent_metrics *agent_metrics_begin(struct agent *a, bool process_exporter)
{
	struct agent_metrics *mt = calloc(1, sizeof(*mt));

	if (!mt)
		return NULL;
	mt->a = a;
	mt->process_exporter = process_exporter;
	mt->top_n = atomic_load(&a->live.top_n);
	mt->n = agent_vms_get(a, &mt->vms);
	if (!(mt->ms = calloc(mt->n ? mt->n : 1, sizeof(*mt->ms)))) {
		agent_vms_put(mt->vms, mt->n);
		free(mt);
		return NULL;
	}
	/* One consistent picture: each VM's metadata and latest snapshot, referenced. */
	for (size_t i = 0; i < mt->n; i++) {
		struct mvm *m = &mt->ms[i];
		m->vm = mt->vms[i];
		pthread_mutex_lock(&m->vm->lock);
		m->dom = m->vm->dom;
		m->status = m->vm->status;
		memcpy(m->release, m->vm->kernel_release, sizeof(m->release));
		m->frames = m->vm->frames_total;
		m->errors = m->vm->frame_errors_total;
		m->crashes = m->vm->sampler_crashes_total;
		memcpy(m->events, m->vm->events_total, sizeof(m->events));
		m->hist_bytes = m->vm->hist.bytes;
		m->snap = agent_snap_ref(m->vm->snap);
		pthread_mutex_unlock(&m->vm->lock);
		vm_labels_cache(m);
		if (m->snap && mt->top_n)
			pick_top(m, mt->top_n);
		if (m->ntop)
			proc_labels_cache(m);
		if (m->snap)
			oldest_starts(m);
	}
	return mt;
}

int agent_metrics_next(struct agent_metrics *mt, struct agent_buf *f)
{
	const size_t ng = ARRAY_SIZE(proc_gauges), nc = ARRAY_SIZE(proc_counters), nr = ARRAY_SIZE(proc_rates);
	struct mvm *ms = mt->ms;
	size_t n = mt->n, s = mt->step;

	if (f->failed)
		return -ENOMEM;
	if (s == 0) {
		vm_metrics(f, ms, n);
	} else if (s == 1) {
		guest_metrics(f, ms, n);
	} else if (s == 2) {
		proc_cpu(f, ms, n);
	} else if ((s -= 3) < ng) {
		proc_gauge(f, ms, n, s);
	} else if ((s -= ng) < nc) {
		series_family(f, ms, n, &proc_counters[s], false);
	} else if ((s -= nc) < nr) {
		series_family(f, ms, n, &proc_rates[s], true);
	} else if ((s -= nr) == 0) {
		group_metrics(f, ms, n, mt->process_exporter ? &pe_names : &vmwatch_names);
	} else if (s == 1) {
		if (!mt->process_exporter)
			cgroup_metrics(f, ms, n, mt->top_n);
	} else if (s == 2) {
		self_metrics(f, mt->a, n);
	} else {
		return 0;
	}
	mt->step++;
	return f->failed ? -ENOMEM : 1;
}

void agent_metrics_end(struct agent_metrics *mt)
{
	if (!mt)
		return;
	for (size_t i = 0; i < mt->n; i++) {
		agent_snap_unref(mt->ms[i].snap);
		free(mt->ms[i].top);
		free(mt->ms[i].plabels.p);
		free(mt->ms[i].plabel_off);
		free(mt->ms[i].oldest);
		free(mt->ms[i].labels);
	}
	free(mt->ms);
	agent_vms_put(mt->vms, mt->n);
	free(mt);
}
