/* SPDX-License-Identifier: MIT */
/*
 * summary.c - the guest summary object (docs/schemas/common.json#/$defs/summary),
 * the same in `vmwatch summary --json`, `top --json` frames and the agent.
 */
#include "report/report.h"

#include <jansson.h>
#include <stdint.h>

json_t *vmw_report_cpu_split(const struct vmw_cpu_percent *p)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "user", p->user, "nice", p->nice,
			 "system", p->system, "idle", p->idle, "iowait", p->iowait, "irq", p->irq,
			 "softirq", p->softirq, "steal", p->steal);
}

#define CPU_MODES(X) X(user) X(nice) X(system) X(idle) X(iowait) X(irq) X(softirq) X(steal) \
	X(guest) X(guest_nice)

static json_t *cpu_seconds(const struct vmw_cpu_times *t)
{
	json_t *o = json_object();
#define X(m) json_object_set_new(o, #m, json_real(vmw_report_seconds(t->m)));
	CPU_MODES(X)
#undef X
	return o;
}

/* cpu: online and possible vCPUs, times since boot, and the split over the
 * frame's interval (null without a valid one). */
static json_t *cpu_json(const struct vmw_summary *sm, const struct vmw_frame *f)
{
	bool split = f && vmw_report_cpu_split_valid(f);
	json_t *per = json_array();

	for (unsigned i = 0; sm->cpu && i < sm->ncpus; i++)
		json_array_append_new(per, json_pack("{s:i, s:o, s:o}", "cpu", (int)sm->cpu[i].cpu,
						     "seconds", cpu_seconds(&sm->cpu[i].t),
						     "percent", split ? vmw_report_cpu_split(&f->cpu[i])
								      : json_null()));
	return json_pack("{s:i, s:i, s:o, s:o, s:o}", "online", (int)sm->ncpus,
			 "possible", (int)sm->ncpus_possible, "seconds", cpu_seconds(&sm->total),
			 "percent", split ? vmw_report_cpu_split(&f->cpu_total) : json_null(), "per_cpu", per);
}

/* kB as bytes; a torn read (a guest rebooting under us) can hold any value:
 * saturate rather than overflow. */
static json_int_t kb_bytes(uint64_t kb)
{
	return kb > (uint64_t)INT64_MAX / 1024 ? (json_int_t)INT64_MAX : (json_int_t)(kb * 1024);
}

static json_t *memory_json(const struct vmw_summary *sm)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"total_bytes", kb_bytes(sm->mem_total_kb), "free_bytes", kb_bytes(sm->mem_free_kb),
		"available_bytes", kb_bytes(sm->mem_available_kb),
		"used_bytes", kb_bytes(vmw_sat_sub(sm->mem_total_kb, sm->mem_available_kb)),
		"buffers_bytes", kb_bytes(sm->buffers_kb), "cached_bytes", kb_bytes(sm->cached_kb),
		"shmem_bytes", kb_bytes(sm->shmem_kb), "swap_total_bytes", kb_bytes(sm->swap_total_kb),
		"swap_free_bytes", kb_bytes(sm->swap_free_kb), "swap_cached_bytes", kb_bytes(sm->swap_cached_kb));
}

static void set_counters(json_t *o, const struct vmw_summary *sm)
{
	double load[3];

	vmw_report_load(sm, load);
	json_object_set_new(o, "uptime_seconds", json_real(vmw_report_seconds(sm->uptime_ns)));
	json_object_set_new(o, "idle_seconds", json_real(vmw_report_seconds(sm->idle_ns)));
	json_object_set_new(o, "boot_time", json_integer((json_int_t)sm->boot_time_s));
	json_object_set_new(o, "load", json_pack("[f, f, f]", load[0], load[1], load[2]));
	json_object_set_new(o, "loadavg", vmw_report_string(sm->loadavg));
	json_object_set_new(o, "nr_running", json_integer(sm->nr_running));
	json_object_set_new(o, "nr_threads", json_integer(sm->nr_threads));
	json_object_set_new(o, "last_pid", json_integer(sm->last_pid));
	json_object_set_new(o, "context_switches", json_integer((json_int_t)sm->ctxt));
	json_object_set_new(o, "forks", json_integer((json_int_t)sm->processes));
	json_object_set_new(o, "procs_running", json_integer(sm->procs_running));
	json_object_set_new(o, "procs_blocked", json_integer(sm->procs_blocked));
	json_object_set_new(o, "clock", json_pack("{s:I, s:I, s:I}", "now_mono_ns", (json_int_t)sm->now_mono_ns,
						  "tk_mono_ns", (json_int_t)sm->tk_mono_ns,
						  "tick_ns", (json_int_t)sm->tick_ns));
	json_object_set_new(o, "quality", json_pack("{s:b, s:i, s:b, s:i, s:i, s:I, s:I}",
		"nohz", sm->nohz, "vtime_cpus", (int)sm->vtime_cpus, "buffers_partial", sm->buffers_partial,
		"retries", (int)sm->retries, "missing", (int)sm->missing, "read_ns", (json_int_t)sm->read_ns,
		"bytes_read", (json_int_t)sm->bytes_read));
}

static const char *const counter_names[] = {
	"uptime_seconds", "idle_seconds", "boot_time", "load", "loadavg", "nr_running", "nr_threads",
	"last_pid", "context_switches", "forks", "procs_running", "procs_blocked", "clock", "quality",
};

json_t *vmw_report_summary(const struct vmw_summary *sm, const struct vmw_frame *f)
{
	json_t *o = json_pack("{s:b}", "available", sm != NULL);

	if (sm) {
		set_counters(o, sm);
		json_object_set_new(o, "memory", memory_json(sm));
		json_object_set_new(o, "cpu", cpu_json(sm, f));
	} else {
		/* The same keys, null; RAM size from the frame when there is one. */
		for (size_t i = 0; i < ARRAY_SIZE(counter_names); i++)
			json_object_set_new(o, counter_names[i], json_null());
		json_object_set_new(o, "memory", f ? json_pack("{s:I}", "total_bytes",
							       (json_int_t)f->mem_total_bytes)
						   : json_null());
		json_object_set_new(o, "cpu", json_null());
	}
	if (f) {
		struct vmw_report_tasks t;
		vmw_report_tasks_count(f, &t);
		json_object_set_new(o, "tasks", vmw_report_tasks_json(&t));
	} else {
		json_object_set_new(o, "tasks", json_null());
	}
	return o;
}
