/* SPDX-License-Identifier: MIT */
/*
 * compat_diff.c - the compat API's process list (compat.c): a snapshot
 * against a baseline, what the client was served before or the interval
 * before. A baseline keeps what the list needs of a snapshot (struct
 * agent_base, agent_int.h): each process's pid and start time to tell new
 * and ended processes, and an ended process's last values.
 */
#include "agent/agent_int.h"

#include <jansson.h>
#include <string.h>

static int base_proc_cmp(const void *a, const void *b)
{
	const struct agent_base_proc *x = a, *y = b;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

struct agent_base *agent_base_build(const struct agent_snap *s)
{
	const struct vmw_frame *f = s ? s->frame : NULL;
	struct agent_base *b;
	size_t names = 0, at = 0;

	if (!f)
		return NULL;
	for (size_t i = 0; i < f->nprocs; i++)
		names += strnlen(f->procs[i].proc.comm, sizeof(f->procs[i].proc.comm) - 1) + 1;
	if (names > UINT32_MAX || !(b = calloc(1, sizeof(*b))))
		return NULL;
	atomic_init(&b->ref, 1);
	b->snap_id = s->id;
	b->n = f->nprocs;
	b->procs = malloc((b->n ? b->n : 1) * sizeof(*b->procs));
	b->names = malloc(names ? names : 1);
	if (!b->procs || !b->names) {
		agent_base_unref(b);
		return NULL;
	}
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_sample *x = &f->procs[i];
		const struct vmw_proc *p = &x->proc;
		size_t len = strnlen(p->comm, sizeof(p->comm) - 1);

		b->procs[i] = (struct agent_base_proc){
			.pid = p->pid, .prio = p->prio, .start_time_ns = p->start_time_ns,
			.rss_kib = vmw_proc_rss_bytes(p) >> 10, .vsz_kib = p->vsz_bytes >> 10,
			.cpu_percent = x->cpu_percent, .mem_percent = x->mem_percent,
			.comm = (uint32_t)at, .state = p->state,
		};
		memcpy(b->names + at, p->comm, len);
		b->names[at + len] = '\0';
		at += len + 1;
	}
	/* A frame lists processes in the task list's order: by pid, mostly. */
	for (size_t i = 1; i < b->n; i++)
		if (b->procs[i - 1].pid > b->procs[i].pid) {
			qsort(b->procs, b->n, sizeof(*b->procs), base_proc_cmp);
			break;
		}
	return b;
}

struct agent_base *agent_base_ref(struct agent_base *b)
{
	if (b)
		atomic_fetch_add(&b->ref, 1);
	return b;
}

void agent_base_unref(struct agent_base *b)
{
	if (!b || atomic_fetch_sub(&b->ref, 1) != 1)
		return;
	free(b->procs);
	free(b->names);
	free(b);
}

/* The process pid of b, or NULL. */
static const struct agent_base_proc *base_find(const struct agent_base *b, int32_t pid)
{
	struct agent_base_proc key = { .pid = pid };
	return b ? bsearch(&key, b->procs, b->n, sizeof(*b->procs), base_proc_cmp) : NULL;
}

static json_t *row(const char *type, char state, int32_t pid, const char *comm, int32_t prio,
		   double cpu_percent, uint64_t rss_kib, uint64_t vsz_kib, double mem_percent)
{
	return json_pack("{s:s, s:s, s:i, s:o, s:i, s:f, s:I, s:I, s:f}",
			 "type", type, "state", vmw_report_state_name(state), "pid", pid,
			 "name", vmw_report_string(comm), "priority", prio,
			 "cpu_usage", cpu_percent,
			 "physical_memory_usage", (json_int_t)rss_kib,
			 "virtual_memory_usage", (json_int_t)vsz_kib, "memory_percent", mem_percent);
}

static bool same_proc(const struct agent_snap *s, long j, uint64_t start_time_ns)
{
	return j >= 0 && s->frame->procs[j].proc.start_time_ns == start_time_ns;
}

static int cmp_pid(const void *a, const void *b)
{
	return (*(const struct vmw_sample *const *)a)->proc.pid - (*(const struct vmw_sample *const *)b)->proc.pid;
}

json_t *agent_compat_diff(const struct agent_snap *snap, const struct agent_base *base)
{
	const struct vmw_frame *f = snap->frame;
	const struct vmw_sample **v = calloc(f->nprocs ? f->nprocs : 1, sizeof(*v));
	json_t *arr = json_array();

	if (!v)
		return arr;
	for (size_t i = 0; i < f->nprocs; i++)
		v[i] = &f->procs[i];
	qsort(v, f->nprocs, sizeof(*v), cmp_pid);
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_proc *p = &v[i]->proc;
		const struct agent_base_proc *o;
		const char *type = "Existed Process";

		if (base && base->snap_id != snap->id &&
		    (!(o = base_find(base, p->pid)) || o->start_time_ns != p->start_time_ns))
			type = "New Process";
		json_array_append_new(arr, row(type, p->state, p->pid, p->comm, p->prio, v[i]->cpu_percent,
					       vmw_proc_rss_bytes(p) >> 10, p->vsz_bytes >> 10, v[i]->mem_percent));
	}
	/* Ended processes, with their last values, by pid (base is sorted). */
	for (size_t i = 0; base && i < base->n; i++) {
		const struct agent_base_proc *o = &base->procs[i];
		if (!same_proc(snap, agent_snap_find(snap, o->pid), o->start_time_ns))
			json_array_append_new(arr, row("Ended Process", o->state, o->pid, base->names + o->comm,
						       o->prio, o->cpu_percent, o->rss_kib, o->vsz_kib,
						       o->mem_percent));
	}
	free(v);
	return arr;
}
