/* SPDX-License-Identifier: MIT */
/*
 * use.c - one VM's use at a glance (common.json#/$defs/vm_use): what the host
 * view of `vmwatch top`, `vmwatch vms` and the agent's VM list show per VM.
 */
#include "report/report.h"

#include <jansson.h>
#include <string.h>

static double clamp_percent(double v)
{
	return v < 0 ? 0 : v > 100 ? 100 : v;
}

/* Counters from a guest that may be rebooting under us: saturate, never wrap. */
static uint64_t kib_bytes(uint64_t kb)
{
	uint64_t b;
	return __builtin_mul_overflow(kb, 1024u, &b) || b > INT64_MAX ? INT64_MAX : b;
}

static void use_summary(const struct vmw_frame *f, struct vmw_report_use *u)
{
	const struct vmw_summary *sm = &f->summary;

	u->mem_ok = sm->mem_total_kb > 0;
	u->mem_total = kib_bytes(sm->mem_total_kb);
	u->mem_available = kib_bytes(sm->mem_available_kb);
	u->mem_free = kib_bytes(sm->mem_free_kb);
	u->mem_cached = MIN(kib_bytes(sm->cached_kb) + kib_bytes(sm->buffers_kb), (uint64_t)INT64_MAX);
	u->mem_used = vmw_sat_sub(u->mem_total, u->mem_available);
	u->load_ok = true;
	vmw_report_load(sm, u->load);
	u->vcpus = sm->ncpus;
}

void vmw_report_use_of(const struct vmw_frame *f, struct vmw_report_use *u)
{
	*u = (struct vmw_report_use){ 0 };
	if (!f)
		return;
	if (f->summary_ok)
		use_summary(f, u);
	if ((u->cpu_ok = vmw_report_cpu_split_valid(f))) {
		u->cpu = f->cpu_total;
		u->busy = clamp_percent(100.0 - f->cpu_total.idle - f->cpu_total.iowait);
	}
	u->processes = f->nprocs;
	size_t top = 0;
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_sample *s = &f->procs[i];
		u->threads += s->proc.nr_threads ? s->proc.nr_threads : 1;
		if (!u->top_ok || s->cpu_percent > u->top_cpu) {
			u->top_ok = true;
			u->top_cpu = s->cpu_percent;
			top = i;
		}
	}
	if (u->top_ok) {
		u->top_pid = f->procs[top].proc.pid;
		snprintf(u->top_comm, sizeof(u->top_comm), "%s", f->procs[top].proc.comm);
	}
	/* On a first frame every rate is 0: no busiest process to name. */
	if (f->first)
		u->top_ok = false;
}

static json_t *use_cpu(const struct vmw_report_use *u)
{
	if (!u->cpu_ok)
		return json_null();
	json_t *o = vmw_report_cpu_split(&u->cpu);
	json_object_set_new(o, "busy", json_real(u->busy));
	return o;
}

static json_t *use_memory(const struct vmw_report_use *u, const struct vmw_frame *f)
{
	if (!u->mem_ok)
		return f ? json_pack("{s:I, s:n, s:n, s:n, s:n}", "total_bytes", (json_int_t)f->mem_total_bytes,
				     "used_bytes", "available_bytes", "cached_bytes", "free_bytes")
			 : json_null();
	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "total_bytes", (json_int_t)u->mem_total,
			 "used_bytes", (json_int_t)u->mem_used,
			 "available_bytes", (json_int_t)u->mem_available,
			 "cached_bytes", (json_int_t)u->mem_cached,
			 "free_bytes", (json_int_t)u->mem_free);
}

static json_t *use_top(const struct vmw_report_use *u)
{
	if (!u->top_ok)
		return json_null();
	return json_pack("{s:i, s:o, s:f}", "pid", (int)u->top_pid, "comm", vmw_report_string(u->top_comm),
			 "cpu_percent", u->top_cpu);
}

json_t *vmw_report_use(const struct vmw_frame *f)
{
	struct vmw_report_use u;
	json_t *o = json_object();

	vmw_report_use_of(f, &u);
	json_object_set_new(o, "time", f ? json_real((double)f->wall_time_ns / 1e9) : json_null());
	json_object_set_new(o, "complete", f ? json_boolean(f->complete) : json_null());
	json_object_set_new(o, "cpu", use_cpu(&u));
	json_object_set_new(o, "memory", use_memory(&u, f));
	json_object_set_new(o, "load", u.load_ok ? json_pack("[f, f, f]", u.load[0], u.load[1], u.load[2])
					      : json_null());
	json_object_set_new(o, "processes", f ? json_integer((json_int_t)u.processes) : json_null());
	json_object_set_new(o, "threads", f ? json_integer((json_int_t)u.threads) : json_null());
	json_object_set_new(o, "top_process", use_top(&u));
	return o;
}

json_t *vmw_report_vm_row(const struct vmw_report_vm_row *r)
{
	const struct vmw_frame *f = r->frame;
	unsigned vcpus = f && f->summary_ok && f->summary.ncpus ? f->summary.ncpus : r->vcpus;
	json_t *o;

	o = json_pack("{s:o, s:o, s:o, s:o, s:s, s:o, s:o}",
		      "name", vmw_report_string(r->name), "target", vmw_report_string(r->target),
		      "qemu_pid", r->qemu_pid > 0 ? json_integer(r->qemu_pid) : json_null(),
		      "domain", r->domain ? vmw_report_domain(r->domain) : json_null(),
		      "status", r->status, "reason_code", vmw_report_string_or_null(r->reason_code),
		      "reason", vmw_report_string_or_null(r->reason));
	json_object_set_new(o, "nova", r->domain ? vmw_report_nova(&r->domain->nova) : json_null());
	json_object_set_new(o, "vcpus", vcpus ? json_integer(vcpus) : json_null());
	json_object_set_new(o, "host_cpu_percent", r->host_cpu_ok ? json_real(r->host_cpu_percent) : json_null());
	json_object_set_new(o, "os", vmw_report_frame_os(f));
	json_object_update_new(o, vmw_report_use(f));
	return o;
}

json_t *vmw_report_host_frame(uint64_t seq, uint64_t wall_ns, const char *libvirt_uri,
			      const char *libvirt_error, json_t *vms)
{
	return json_pack("{s:I, s:f, s:{s:o, s:o}, s:o}", "seq", (json_int_t)seq,
			 "time", (double)wall_ns / 1e9, "libvirt",
			 "uri", vmw_report_string_or_null(libvirt_uri),
			 "error", vmw_report_string_or_null(libvirt_error), "vms", vms);
}
