/* SPDX-License-Identifier: MIT */
/*
 * cgroups.c - the cgroup objects (docs/schemas/common.json#/$defs/cgroup):
 * what a cgroup path says (unit, slice, container) for processes and
 * cgroups alike, and a cgroup's figures (cgroups.h) for `vmwatch cgroups`
 * and the agent's /v1/vms/{id}/cgroups.
 */
#include "report/report.h"
#include "linux/cgroups.h"

#include <jansson.h>
#include <math.h>

void vmw_report_cgroup_class(json_t *o, const char *path)
{
	struct vmw_cgroup_info cg;

	json_object_set_new(o, "unit", json_null());
	json_object_set_new(o, "slice", json_null());
	json_object_set_new(o, "container", json_null());
	if (!path || !vmw_cgroup_classify(path, &cg))
		return;
	json_object_set_new(o, "unit", vmw_report_string_or_null(cg.unit));
	json_object_set_new(o, "slice", vmw_report_string_or_null(cg.slice));
	if (cg.container_id[0] || cg.pod_uid[0])
		json_object_set_new(o, "container", json_pack("{s:o, s:o, s:o}",
			"runtime", vmw_report_string_or_null(cg.runtime),
			"id", vmw_report_string_or_null(cg.container_id),
			"pod_uid", vmw_report_string_or_null(cg.pod_uid)));
}

static json_t *int_or_null(bool ok, uint64_t v)
{
	return ok ? json_integer((json_int_t)v) : json_null();
}

json_t *vmw_report_cgroup(const struct vmw_cgroup_stat *c, double cpu_percent)
{
	json_t *o = json_object();

	json_object_set_new(o, "path", vmw_report_string(c->path));
	json_object_set_new(o, "depth", json_integer(c->depth));
	vmw_report_cgroup_class(o, c->path);
	json_object_set_new(o, "procs", int_or_null(c->nr_procs_ok, c->nr_procs));
	json_object_set_new(o, "tasks", int_or_null(c->nr_procs_ok, c->nr_procs_tree));
	json_object_set_new(o, "cpu", !c->cpu_ok ? json_null() :
		json_pack("{s:I, s:I, s:I}", "usage_usec", (json_int_t)c->usage_usec,
			  "user_usec", (json_int_t)c->user_usec, "system_usec", (json_int_t)c->system_usec));
	json_object_set_new(o, "cpu_percent", isnan(cpu_percent) ? json_null() : json_real(cpu_percent));
	json_object_set_new(o, "memory_current", int_or_null(c->memory_ok, c->memory_current));
	json_object_set_new(o, "memory_stat", !c->memory_stat_ok ? json_null() :
		json_pack("{s:I, s:I}", "anon", (json_int_t)c->anon, "file", (json_int_t)c->file));
	json_object_set_new(o, "incomplete", json_boolean(c->incomplete));
	return o;
}

json_t *vmw_report_cgroups(const struct vmw_cgroups *c, const double *cpu_percent)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < c->n; i++)
		json_array_append_new(arr, vmw_report_cgroup(&c->cg[i], cpu_percent ? cpu_percent[i] : NAN));
	return json_pack("{s:o, s:b, s:o}", "cgroups", arr, "truncated", c->truncated,
			 "truncated_why", c->truncated ? vmw_report_string(c->truncated_why) : json_null());
}
