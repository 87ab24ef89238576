/* SPDX-License-Identifier: MIT */
/*
 * history.c - bounded history per VM and per process: rings of `cap` points
 * (history / interval + 1). Memory is cap × 8 bytes per process, for at most
 * max_history_procs processes per VM, plus cap × 28 bytes per VM; it is
 * counted in h->bytes and reported in /metrics.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

int agent_hist_init(struct agent_hist *h, size_t cap)
{
	memset(h, 0, sizeof(*h));
	h->cap = cap < 2 ? 2 : cap;
	h->time_ns = calloc(h->cap, sizeof(*h->time_ns));
	h->cpu_total = calloc(h->cap, sizeof(*h->cpu_total));
	h->nprocs = calloc(h->cap, sizeof(*h->nprocs));
	h->load1 = calloc(h->cap, sizeof(*h->load1));
	h->mem_used_kb = calloc(h->cap, sizeof(*h->mem_used_kb));
	if (!h->time_ns || !h->cpu_total || !h->nprocs || !h->load1 || !h->mem_used_kb) {
		agent_hist_free(h);
		return -ENOMEM;
	}
	h->bytes = h->cap * (sizeof(uint64_t) * 2 + sizeof(float) * 2 + sizeof(uint32_t));
	return 0;
}

static void procs_free(struct agent_hist_proc *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].pts);
	free(p);
}

void agent_hist_free(struct agent_hist *h)
{
	free(h->time_ns);
	free(h->cpu_total);
	free(h->nprocs);
	free(h->load1);
	free(h->mem_used_kb);
	procs_free(h->procs, h->nprocs_tracked);
	vmw_pidmap_free(&h->map);
	memset(h, 0, sizeof(*h));
}

static long find(const struct agent_hist *h, int32_t pid)
{
	return (long)vmw_pidmap_get(&h->map, pid);
}

int agent_hist_record(struct agent_hist *h, const struct agent_snap *s, size_t max_procs)
{
	const struct vmw_frame *f = s->frame;
	size_t k = h->count % h->cap, n = MIN(f->nprocs, max_procs), tracked = 0;
	struct agent_hist_proc *np = NULL;
	struct vmw_pidmap map = { 0 };
	double load[3] = { 0 };

	h->time_ns[k] = f->wall_time_ns;
	h->cpu_total[k] = (float)f->cpu_percent_total;
	h->nprocs[k] = (uint32_t)f->nprocs;
	if (s->summary)
		vmw_report_load(s->summary, load);
	h->load1[k] = (float)load[0];
	h->mem_used_kb[k] = s->summary ? vmw_sat_sub(s->summary->mem_total_kb, s->summary->mem_available_kb)
				       : 0;

	/* Carry each process's ring over (same pid and start time), start new ones. */
	if (n && (!(np = calloc(n, sizeof(*np))) || vmw_pidmap_reset(&map, n) < 0)) {
		free(np);
		h->count++;
		return -ENOMEM;
	}
	for (size_t i = 0; i < f->nprocs && tracked < n; i++) {
		const struct vmw_sample *x = &f->procs[i];
		long j = find(h, x->proc.pid);
		struct agent_hist_proc *p = &np[tracked];

		if (j >= 0 && h->procs[j].pts && h->procs[j].start_time_ns == x->proc.start_time_ns) {
			*p = h->procs[j];
			h->procs[j].pts = NULL;
		} else {
			p->pid = x->proc.pid;
			p->start_time_ns = x->proc.start_time_ns;
			p->first = h->count;
			if (!(p->pts = calloc(h->cap, sizeof(*p->pts))))
				continue;
		}
		p->pts[k].cpu_percent = (float)x->cpu_percent;
		p->pts[k].rss_kb = (uint32_t)MIN(vmw_proc_rss_bytes(&x->proc) >> 10, UINT32_MAX);
		vmw_pidmap_put(&map, p->pid, tracked);
		tracked++;
	}
	procs_free(h->procs, h->nprocs_tracked);
	vmw_pidmap_free(&h->map);
	h->procs = np;
	h->nprocs_tracked = tracked;
	h->map = map;
	h->count++;
	h->bytes = h->cap * (sizeof(uint64_t) * 2 + sizeof(float) * 2 + sizeof(uint32_t)) +
		   tracked * (sizeof(*np) + h->cap * sizeof(struct agent_hist_point)) +
		   map.cap * sizeof(*map.slot);
	return 0;
}

static double secs(uint64_t ns)
{
	return vmw_report_seconds(ns);
}

json_t *agent_hist_vm_json(const struct agent_hist *h)
{
	json_t *t = json_array(), *cpu = json_array(), *np = json_array(), *load = json_array(),
	       *mem = json_array();
	uint64_t first = h->count > h->cap ? h->count - h->cap : 0;

	for (uint64_t c = first; c < h->count; c++) {
		size_t k = c % h->cap;
		json_array_append_new(t, json_real(secs(h->time_ns[k])));
		json_array_append_new(cpu, json_real((double)h->cpu_total[k]));
		json_array_append_new(np, json_integer(h->nprocs[k]));
		json_array_append_new(load, json_real((double)h->load1[k]));
		/* (saturated: a torn read of a rebooting guest can hold any value) */
		json_array_append_new(mem, json_integer((json_int_t)MIN(h->mem_used_kb[k], (uint64_t)INT64_MAX / 1024) * 1024));
	}
	return json_pack("{s:o, s:o, s:o, s:o, s:o}", "time", t, "cpu_percent", cpu, "processes", np,
			 "load1", load, "memory_used_bytes", mem);
}

json_t *agent_hist_proc_json(const struct agent_hist *h, int32_t pid, uint64_t start_time_ns)
{
	long j = find(h, pid);
	const struct agent_hist_proc *p;
	json_t *t, *cpu, *rss;
	uint64_t first;

	if (j < 0 || h->procs[j].start_time_ns != start_time_ns || !h->procs[j].pts)
		return NULL;
	p = &h->procs[j];
	first = h->count > h->cap ? h->count - h->cap : 0;
	first = MAX(first, p->first);
	t = json_array();
	cpu = json_array();
	rss = json_array();
	for (uint64_t c = first; c < h->count; c++) {
		size_t k = c % h->cap;
		json_array_append_new(t, json_real(secs(h->time_ns[k])));
		json_array_append_new(cpu, json_real((double)p->pts[k].cpu_percent));
		json_array_append_new(rss, json_integer((json_int_t)p->pts[k].rss_kb * 1024));
	}
	return json_pack("{s:o, s:o, s:o}", "time", t, "cpu_percent", cpu, "rss_bytes", rss);
}
