/* SPDX-License-Identifier: MIT */
/* report.c - strings, derived values, processes, events, VMs and kernels. */
#include "report/report.h"
#include "report/report_internal.h"
#include "mem/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

void vmw_report_utf8_fallback(const char *s, char buf[VMW_REPORT_FALLBACK_MAX])
{
	size_t n = 0;

	/* Keep ASCII, replace every other byte with U+FFFD. */
	for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < VMW_REPORT_FALLBACK_MAX; p++) {
		if (*p < 0x80) {
			buf[n++] = (char)*p;
		} else {
			memcpy(buf + n, "\xef\xbf\xbd", 3);
			n += 3;
		}
	}
	buf[n] = '\0';
}

json_t *vmw_report_string(const char *s)
{
	json_t *j;
	char buf[VMW_REPORT_FALLBACK_MAX];

	if (!s)
		s = "";
	if ((j = json_string(s)))
		return j;
	vmw_report_utf8_fallback(s, buf);
	return json_string(buf);
}

json_t *vmw_report_string_or_null(const char *s)
{
	return s && *s ? vmw_report_string(s) : json_null();
}

double vmw_report_seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* ---- derived values ------------------------------------------------------ */

enum vmw_task_class vmw_report_task_class(char state)
{
	switch (state) {
	case 'R': return VMW_TASK_RUNNING;
	case 'S': return VMW_TASK_SLEEPING;
	case 'D': return VMW_TASK_DISK_SLEEP;
	case 'T': case 't': return VMW_TASK_STOPPED;
	case 'Z': return VMW_TASK_ZOMBIE;
	case 'I': return VMW_TASK_IDLE;
	default: return VMW_TASK_OTHER;
	}
}

const char *vmw_report_task_class_name(enum vmw_task_class c)
{
	static const char *const names[VMW_TASK_NCLASSES] = {
		"running", "sleeping", "disk_sleep", "stopped", "zombie", "idle", "other",
	};
	return (unsigned)c < VMW_TASK_NCLASSES ? names[c] : "other";
}

const char *vmw_report_state_name(char state)
{
	switch (state) {
	case 'R': return "running";
	case 'S': return "sleeping";
	case 'D': return "disk-sleep";
	case 'T': return "stopped";
	case 't': return "tracing-stop";
	case 'Z': return "zombie";
	case 'X': return "dead";
	case 'I': return "idle";
	case 'P': return "parked";
	case 'W': return "waking";
	case 'K': return "wake-kill";
	default: return "unknown";
	}
}

void vmw_report_tasks_count(const struct vmw_frame *f, struct vmw_report_tasks *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (size_t i = 0; f && i < f->nprocs; i++) {
		const struct vmw_proc *p = &f->procs[i].proc;
		ret->total++;
		ret->by_class[vmw_report_task_class(p->state)]++;
		ret->threads += p->nr_threads ? p->nr_threads : 1;
		ret->kernel_threads += p->kthread;
	}
}

json_t *vmw_report_tasks_json(const struct vmw_report_tasks *t)
{
	json_t *o = json_pack("{s:i}", "total", (int)t->total);
	for (int c = 0; c < VMW_TASK_NCLASSES; c++)
		json_object_set_new(o, vmw_report_task_class_name(c), json_integer(t->by_class[c]));
	json_object_set_new(o, "threads", json_integer((json_int_t)t->threads));
	json_object_set_new(o, "kernel_threads", json_integer(t->kernel_threads));
	return o;
}

void vmw_report_load(const struct vmw_summary *sm, double ret[3])
{
	for (int i = 0; i < 3; i++)
		ret[i] = (double)sm->load[i] / 2048.0;   /* FIXED_1: FSHIFT = 11 */
}

bool vmw_report_cpu_split_valid(const struct vmw_frame *f)
{
	const struct vmw_cpu_percent *p = &f->cpu_total;
	double sum = p->user + p->nice + p->system + p->idle + p->iowait + p->irq + p->softirq + p->steal;
	return !f->first && f->summary_ok && f->cpu && sum > 50;
}

/* ---- processes and events ------------------------------------------------ */

static json_t *thread_json(const struct vmw_thread *t)
{
	return json_pack("{s:i, s:o, s:s#, s:I, s:I, s:I, s:I, s:i, s:i, s:i}",
			 "tid", t->tid, "comm", vmw_report_string(t->comm), "state", &t->state, 1,
			 "utime_ns", (json_int_t)t->utime_ns, "stime_ns", (json_int_t)t->stime_ns,
			 "runtime_ns", (json_int_t)t->runtime_ns,
			 "start_time_ns", (json_int_t)t->start_time_ns,
			 "nice", t->nice, "priority", t->prio, "cpu", t->cpu);
}

static json_t *cmdline_json(const struct vmw_proc *p)
{
	json_t *cmd;

	if (p->kthread)
		return json_array();   /* /proc/PID/cmdline of a kernel thread is empty */
	if (!p->cmdline)
		return json_null();    /* not read */
	cmd = json_array();
	for (char **a = p->cmdline; *a; a++)
		json_array_append_new(cmd, vmw_report_string(*a));
	return cmd;
}

/* cgroups_v1: [{hierarchy, controllers, path}], [] when none is mounted,
 * null when unknown (or not lines vmw_cgroup_v1_next reads). */
static json_t *cgroups_v1_json(const char *v1)
{
	struct vmw_cgroup_v1_line *l;
	json_t *a;

	if (!v1 || !vmw_cgroup_v1_valid(v1) || !(l = malloc(sizeof(*l))))
		return json_null();
	a = json_array();
	while (vmw_cgroup_v1_next(&v1, l))
		json_array_append_new(a, json_pack("{s:i, s:o, s:o}", "hierarchy", (json_int_t)l->id,
						   "controllers", vmw_report_string(l->controllers),
						   "path", vmw_report_string(l->path)));
	free(l);
	return a;
}

json_t *vmw_report_proc(const struct vmw_proc *p)
{
	json_t *o = json_pack("{s:i, s:i, s:o, s:s#, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I,"
			      " s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
			      "pid", p->pid, "ppid", p->ppid, "comm", vmw_report_string(p->comm),
			      "state", &p->state, 1,
			      "uid", (int)p->uid, "gid", (int)p->gid, "euid", (int)p->euid,
			      "egid", (int)p->egid, "threads", (int)p->nr_threads,
			      "utime_ns", (json_int_t)p->utime_ns, "stime_ns", (json_int_t)p->stime_ns,
			      "runtime_ns", (json_int_t)p->runtime_ns,
			      "start_time_ns", (json_int_t)p->start_time_ns,
			      "nice", p->nice, "priority", p->prio,
			      "rss_bytes", (json_int_t)vmw_proc_rss_bytes(p),
			      "rss_anon_bytes", (json_int_t)p->rss_anon_bytes,
			      "rss_file_bytes", (json_int_t)p->rss_file_bytes,
			      "rss_shmem_bytes", (json_int_t)p->rss_shmem_bytes,
			      "swap_bytes", (json_int_t)p->swap_bytes,
			      "vsz_bytes", (json_int_t)p->vsz_bytes, "kthread", p->kthread);

	json_object_set_new(o, "incomplete", json_boolean(p->incomplete));
	json_object_set_new(o, "user", vmw_report_string_or_null(p->user));
	json_object_set_new(o, "cgroup", p->cgroup ? vmw_report_string(p->cgroup) : json_null());
	json_object_set_new(o, "cgroups_v1", cgroups_v1_json(p->cgroups_v1));
	json_object_set_new(o, "cgroup_memory_bytes", p->cgroup_memory_ok ?
			    json_integer((json_int_t)p->cgroup_memory_bytes) : json_null());
	json_object_set_new(o, "pgrp", p->jobctl_ok ? json_integer(p->pgrp) : json_null());
	json_object_set_new(o, "session", p->jobctl_ok ? json_integer(p->session) : json_null());
	json_object_set_new(o, "tty_nr", p->tty_ok ? json_integer(p->tty_nr) : json_null());
	json_object_set_new(o, "tpgid", p->tty_ok ? json_integer(p->tpgid) : json_null());
	vmw_report_cgroup_class(o, p->cgroup);
	json_object_set_new(o, "min_flt", json_integer((json_int_t)p->min_flt));
	json_object_set_new(o, "maj_flt", json_integer((json_int_t)p->maj_flt));
	json_object_set_new(o, "voluntary_ctxt_switches", json_integer((json_int_t)p->nvcsw));
	json_object_set_new(o, "nonvoluntary_ctxt_switches", json_integer((json_int_t)p->nivcsw));
	json_object_set_new(o, "io", !p->io_ok ? json_null() :
		json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rchar", (json_int_t)p->io_rchar,
			  "wchar", (json_int_t)p->io_wchar, "syscr", (json_int_t)p->io_syscr,
			  "syscw", (json_int_t)p->io_syscw, "read_bytes", (json_int_t)p->io_read_bytes,
			  "write_bytes", (json_int_t)p->io_write_bytes,
			  "cancelled_write_bytes", (json_int_t)p->io_cancelled_write_bytes));

	json_object_set_new(o, "cmdline", cmdline_json(p));
	if (p->threads) {
		json_t *ts = json_array();
		for (uint32_t j = 0; j < p->nthreads_listed; j++)
			json_array_append_new(ts, thread_json(&p->threads[j]));
		json_object_set_new(o, "tasks", ts);
	}
	return o;
}

/* The counters' rates per second (io_rate mirrors io: null when unknown). */
static void sample_rates(json_t *o, const struct vmw_sample *x)
{
	const struct vmw_proc_rates *r = &x->rate;

	json_object_set_new(o, "io_rate", !x->proc.io_ok ? json_null() :
		json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "rchar", r->rchar, "wchar", r->wchar,
			  "syscr", r->syscr, "syscw", r->syscw, "read_bytes", r->read_bytes,
			  "write_bytes", r->write_bytes));
	json_object_set_new(o, "min_flt_rate", json_real(r->min_flt));
	json_object_set_new(o, "maj_flt_rate", json_real(r->maj_flt));
	json_object_set_new(o, "voluntary_ctxt_switches_rate", json_real(r->nvcsw));
	json_object_set_new(o, "nonvoluntary_ctxt_switches_rate", json_real(r->nivcsw));
}

json_t *vmw_report_sample(const struct vmw_sample *x)
{
	json_t *o = vmw_report_proc(&x->proc);
	json_t *tasks = json_object_get(o, "tasks");

	json_object_set_new(o, "cpu_percent", json_real(x->cpu_percent));
	json_object_set_new(o, "mem_percent", json_real(x->mem_percent));
	json_object_set_new(o, "rss_delta_bytes", json_integer((json_int_t)x->rss_delta_bytes));
	json_object_set_new(o, "new", json_boolean(x->is_new));
	sample_rates(o, x);
	if (tasks && x->thread_cpu_percent)
		for (size_t j = 0; j < json_array_size(tasks); j++)
			json_object_set_new(json_array_get(tasks, j), "cpu_percent",
					    json_real(x->thread_cpu_percent[j]));
	return o;
}

json_t *vmw_report_event(const struct vmw_event *e)
{
	return json_pack("{s:s, s:i, s:o, s:I, s:I, s:I, s:I, s:b}",
			 "type", e->type == VMW_EVENT_NEW ? "new" : "exit", "pid", e->pid,
			 "comm", vmw_report_string(e->comm), "start_time_ns", (json_int_t)e->start_time_ns,
			 "runtime_ns", (json_int_t)e->runtime_ns, "rss_bytes", (json_int_t)e->rss_bytes,
			 "vsz_bytes", (json_int_t)e->vsz_bytes, "pid_reused", e->pid_reused);
}

json_t *vmw_report_frame_base(const struct vmw_frame *f, uint64_t seq)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:I, s:b, s:I, s:I, s:f, s:I}",
			 "seq", (json_int_t)seq, "time", vmw_report_seconds(f->wall_time_ns),
			 "interval_seconds", vmw_report_seconds(f->interval_ns),
			 "duration_seconds", vmw_report_seconds(f->frame_ns),
			 "total", (json_int_t)f->nprocs, "complete", f->complete,
			 "skipped", (json_int_t)f->skipped, "incomplete", (json_int_t)f->incomplete,
			 "cpu_percent_total", f->cpu_percent_total,
			 "mem_total_bytes", (json_int_t)f->mem_total_bytes);
}

/* ---- VMs and kernels ----------------------------------------------------- */

json_t *vmw_report_vm(const char *target, struct vmw_mem *mem)
{
	return json_pack("{s:o, s:o, s:I}", "target", vmw_report_string(target),
			 "source", vmw_report_string(vmw_mem_describe(mem)),
			 "ram_bytes", (json_int_t)vmw_mem_size(mem));
}

static json_t *hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
	return json_string(buf);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

json_t *vmw_report_kernel(const struct vmw_kernel_info *ki)
{
	json_t *o = json_pack("{s:o, s:o, s:I, s:o, s:i, s:o, s:o, s:o, s:i, s:i}",
			      "release", vmw_report_string(ki->release),
			      "build_id", vmw_report_string(ki->build_id),
			      "kaslr_offset", (json_int_t)ki->kaslr_offset, "phys_base", hex(ki->phys_base),
			      "paging_levels", ki->paging_levels, "pgd_phys", hex(ki->pgd_phys),
			      "page_offset_base", hex(ki->page_offset_base),
			      "vmcoreinfo_phys", hex(ki->vmcoreinfo_phys), "nr_cpus", (int)ki->nr_cpus,
			      "nr_symbols", (int)ki->nr_symbols);
	json_object_set_new(o, "symbols_from", vmw_report_string(ki->symbols_from));
	json_object_set_new(o, "types_from", vmw_report_string(ki->types_from));
	json_object_set_new(o, "from_cache", json_boolean(ki->from_cache));
	json_object_set_new(o, "attach_ms", json_real(ms(ki->attach_ns)));
	json_object_set_new(o, "timings_ms", json_pack("{s:f, s:f, s:f}", "vmcoreinfo_scan", ms(ki->scan_ns),
						       "kallsyms", ms(ki->kallsyms_ns), "btf", ms(ki->btf_ns)));
	return o;
}

json_t *vmw_report_os(const struct vmw_os_release *os)
{
	if (!os)
		return json_null();
	return json_pack("{s:o, s:o, s:o}", "pretty_name", vmw_report_string_or_null(os->pretty_name),
			 "id", vmw_report_string_or_null(os->id),
			 "version_id", vmw_report_string_or_null(os->version_id));
}

json_t *vmw_report_frame_os(const struct vmw_frame *f)
{
	return vmw_report_os(f && f->os_ok ? &f->os : NULL);
}

void vmw_report_os_text(const struct vmw_frame *f, char *buf, size_t size)
{
	const char *name = "unknown";

	if (f && f->os_ok)
		name = f->os.pretty_name[0] ? f->os.pretty_name : f->os.id[0] ? f->os.id : "unknown";
	vmw_text_sanitize(buf, size, name);
}

json_t *vmw_report_nova(const struct vmw_nova *n)
{
	if (!n->present)
		return json_null();
	return json_pack("{s:o, s:o, s:I, s:i, s:o, s:o, s:o, s:o}",
			 "instance_name", vmw_report_string_or_null(n->instance_name),
			 "flavor", vmw_report_string_or_null(n->flavor),
			 "flavor_memory_mib", (json_int_t)n->flavor_memory_mib,
			 "flavor_vcpus", (int)n->flavor_vcpus,
			 "project_id", vmw_report_string_or_null(n->project_id),
			 "project_name", vmw_report_string_or_null(n->project_name),
			 "user_id", vmw_report_string_or_null(n->user_id),
			 "user_name", vmw_report_string_or_null(n->user_name));
}

json_t *vmw_report_domain(const struct vmw_domain *d)
{
	char target[32];

	snprintf(target, sizeof(target), "qemu:%d", (int)d->qemu_pid);
	return json_pack("{s:o, s:o, s:s, s:i, s:I, s:i, s:o, s:o, s:b, s:b, s:o}",
			 "name", vmw_report_string(d->name), "uuid", vmw_report_string_or_null(d->uuid),
			 "state", vmw_domain_state_name(d->state), "vcpus", (int)d->vcpus,
			 "memory_bytes", (json_int_t)d->memory_bytes, "qemu_pid", (int)d->qemu_pid,
			 "target", d->qemu_pid > 0 ? json_string(target) : json_null(),
			 "ram_backing", vmw_report_string_or_null(d->ram_backing),
			 "ram_shared", d->ram_shared, "ram_hugepages", d->ram_hugepages,
			 "nova", vmw_report_nova(&d->nova));
}

json_t *vmw_report_target(const char *target, struct vmw_mem *mem, const struct vmw_kernel_info *ki)
{
	return json_pack("{s:o, s:o}", "vm", vmw_report_vm(target, mem), "kernel", vmw_report_kernel(ki));
}
