/* SPDX-License-Identifier: MIT */
/*
 * history.c - bounded history per VM and per process: the last `cap` frames
 * (history / interval + 1). The VM's series are rings of cap points (cap × 48
 * bytes). A process's points are run-length encoded (agent_hist_run, 12
 * bytes): a sleeping process's CPU stays 0 and its RSS the same, so it holds
 * a run or a few, where a plain ring held cap × 8 bytes from its first frame
 * (1.4 KiB per process at 5 s, 7 KiB at 1 s, most of the agent's memory at
 * 100 VMs); a process whose values change every frame holds up to cap runs
 * (1.5 × the plain ring). At most max_history_procs processes per VM. What is
 * held is counted in h->bytes and reported in /metrics. The VM's event ring
 * (agent_events_push) grows as events come, up to max_events.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

/* ---- the guest's CPU split and memory beyond "used" ------------------------ */

#define SPLIT_FLOATS(X) X(cpu_busy) X(cpu_user) X(cpu_system) X(cpu_iowait) X(cpu_steal)
#define SPLIT_U64(X) X(mem_cached_kb) X(mem_free_kb)

static int split_init(struct agent_hist *h)
{
	int bad = 0;
#define X(f) bad |= !(h->f = calloc(h->cap, sizeof(*h->f)));
	SPLIT_FLOATS(X) SPLIT_U64(X)
#undef X
	return bad ? -ENOMEM : 0;
}

static void split_free(struct agent_hist *h)
{
#define X(f) free(h->f);
	SPLIT_FLOATS(X) SPLIT_U64(X)
#undef X
}

static size_t vm_bytes(const struct agent_hist *h)
{
	return h->cap * (sizeof(uint64_t) * 4 + sizeof(float) * 7 + sizeof(uint32_t));
}

static void split_record(struct agent_hist *h, size_t k, const struct agent_snap *s)
{
	struct vmw_report_use u;

	vmw_report_use_of(s->frame, &u);
	h->cpu_busy[k] = u.cpu_ok ? (float)u.busy : NAN;
	h->cpu_user[k] = u.cpu_ok ? (float)(u.cpu.user + u.cpu.nice) : NAN;
	h->cpu_system[k] = u.cpu_ok ? (float)(u.cpu.system + u.cpu.irq + u.cpu.softirq) : NAN;
	h->cpu_iowait[k] = u.cpu_ok ? (float)u.cpu.iowait : NAN;
	h->cpu_steal[k] = u.cpu_ok ? (float)u.cpu.steal : NAN;
	h->mem_cached_kb[k] = u.mem_ok ? u.mem_cached >> 10 : 0;
	h->mem_free_kb[k] = u.mem_ok ? u.mem_free >> 10 : 0;
}

/* A float series point: null when not measured. */
static json_t *maybe(float v)
{
	return isnan(v) ? json_null() : json_real((double)v);
}

static json_t *kb_json(uint64_t kb)
{
	return json_integer((json_int_t)MIN(kb, (uint64_t)INT64_MAX / 1024) * 1024);
}

int agent_hist_init(struct agent_hist *h, size_t cap)
{
	memset(h, 0, sizeof(*h));
	h->cap = cap < 2 ? 2 : cap;
	h->time_ns = calloc(h->cap, sizeof(*h->time_ns));
	h->cpu_total = calloc(h->cap, sizeof(*h->cpu_total));
	h->nprocs = calloc(h->cap, sizeof(*h->nprocs));
	h->load1 = calloc(h->cap, sizeof(*h->load1));
	h->mem_used_kb = calloc(h->cap, sizeof(*h->mem_used_kb));
	if (!h->time_ns || !h->cpu_total || !h->nprocs || !h->load1 || !h->mem_used_kb ||
	    split_init(h) < 0) {
		agent_hist_free(h);
		return -ENOMEM;
	}
	h->bytes = vm_bytes(h);
	return 0;
}

static void procs_free(struct agent_hist_proc *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].runs);
	free(p);
}

static struct agent_hist_run *run_at(const struct agent_hist_proc *p, size_t i)
{
	return &p->runs[(p->rstart + i) % p->rcap];
}

/* Append the point of frame count to p's runs, dropping points older than
 * the last cap frames. -ENOMEM leaves p as it was. */
static int proc_append(struct agent_hist_proc *p, size_t cap, uint64_t count, float cpu, uint32_t rss_kb)
{
	struct agent_hist_run *last = p->rn ? run_at(p, p->rn - 1) : NULL;

	/* Bitwise: the same float as stored, so the output is the same. */
	if (last && !memcmp(&last->cpu_percent, &cpu, sizeof(cpu)) && last->rss_kb == rss_kb) {
		last->n++;
	} else {
		if (p->rn == p->rcap) {
			uint32_t ncap = (uint32_t)MIN((size_t)MAX(p->rcap * 2u, 2u), cap + 1);
			struct agent_hist_run *nr = malloc(ncap * sizeof(*nr));
			if (!nr)
				return -ENOMEM;
			for (uint32_t i = 0; i < p->rn; i++)
				nr[i] = *run_at(p, i);
			free(p->runs);
			p->runs = nr;
			p->rcap = ncap;
			p->rstart = 0;
		}
		*run_at(p, p->rn++) = (struct agent_hist_run){ .cpu_percent = cpu, .rss_kb = rss_kb, .n = 1 };
	}
	/* Frames first .. count now: keep the last cap. */
	while (count + 1 - p->first > cap) {
		struct agent_hist_run *r = run_at(p, 0);
		p->first++;
		if (!--r->n) {
			p->rstart = (p->rstart + 1) % p->rcap;
			p->rn--;
		}
	}
	return 0;
}

void agent_hist_free(struct agent_hist *h)
{
	free(h->time_ns);
	free(h->cpu_total);
	free(h->nprocs);
	free(h->load1);
	free(h->mem_used_kb);
	split_free(h);
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
	size_t k = h->count % h->cap, n = MIN(f->nprocs, max_procs), tracked = 0, runs = 0;
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
	split_record(h, k, s);

	/* Carry each process's runs over (same pid and start time), start new ones. */
	/* (every entry up to tracked is written before it is read: no zeroing) */
	if (n && (!(np = malloc(n * sizeof(*np))) || vmw_pidmap_reset(&map, n) < 0)) {
		free(np);
		h->count++;
		return -ENOMEM;
	}
	for (size_t i = 0; i < f->nprocs && tracked < n; i++) {
		const struct vmw_sample *x = &f->procs[i];
		long j = find(h, x->proc.pid);
		struct agent_hist_proc *p = &np[tracked];

		if (j >= 0 && h->procs[j].runs && h->procs[j].start_time_ns == x->proc.start_time_ns) {
			*p = h->procs[j];
			h->procs[j].runs = NULL;
		} else {
			*p = (struct agent_hist_proc){ .pid = x->proc.pid, .start_time_ns = x->proc.start_time_ns,
						       .first = h->count };
		}
		if (proc_append(p, h->cap, h->count, (float)x->cpu_percent,
				(uint32_t)MIN(vmw_proc_rss_bytes(&x->proc) >> 10, UINT32_MAX)) < 0 || !p->rn) {
			free(p->runs);     /* out of memory: this process's history ends */
			continue;
		}
		runs += p->rcap;
		vmw_pidmap_put(&map, p->pid, tracked);
		tracked++;
	}
	procs_free(h->procs, h->nprocs_tracked);
	vmw_pidmap_free(&h->map);
	h->procs = np;
	h->nprocs_tracked = tracked;
	h->map = map;
	h->count++;
	h->bytes = vm_bytes(h) + n * sizeof(*np) + runs * sizeof(struct agent_hist_run) +
		   map.cap * sizeof(*map.slot);
	return 0;
}

static double secs(uint64_t ns)
{
	return vmw_report_seconds(ns);
}

/* The first frame count to show: within the ring and after since_ns. A time
 * the client read from our JSON (seconds in a double, ~0.3 µs of precision
 * today) names its own point: within 1 µs counts as that point. */
static uint64_t first_after(const struct agent_hist *h, uint64_t first, uint64_t since_ns)
{
	while (since_ns && first < h->count && h->time_ns[first % h->cap] <= since_ns + 1000)
		first++;
	return first;
}

json_t *agent_hist_vm_json_since(const struct agent_hist *h, uint64_t since_ns)
{
	json_t *t = json_array(), *cpu = json_array(), *np = json_array(), *load = json_array(),
	       *mem = json_array(), *o;
	json_t *busy = json_array(), *user = json_array(), *sys = json_array(), *wa = json_array(),
	       *st = json_array(), *cached = json_array(), *mfree = json_array();
	uint64_t first = first_after(h, h->count > h->cap ? h->count - h->cap : 0, since_ns);

	for (uint64_t c = first; c < h->count; c++) {
		size_t k = c % h->cap;
		json_array_append_new(t, json_real(secs(h->time_ns[k])));
		json_array_append_new(cpu, json_real((double)h->cpu_total[k]));
		json_array_append_new(np, json_integer(h->nprocs[k]));
		json_array_append_new(load, json_real((double)h->load1[k]));
		/* (saturated: a torn read of a rebooting guest can hold any value) */
		json_array_append_new(mem, kb_json(h->mem_used_kb[k]));
		json_array_append_new(busy, maybe(h->cpu_busy[k]));
		json_array_append_new(user, maybe(h->cpu_user[k]));
		json_array_append_new(sys, maybe(h->cpu_system[k]));
		json_array_append_new(wa, maybe(h->cpu_iowait[k]));
		json_array_append_new(st, maybe(h->cpu_steal[k]));
		json_array_append_new(cached, kb_json(h->mem_cached_kb[k]));
		json_array_append_new(mfree, kb_json(h->mem_free_kb[k]));
	}
	o = json_pack("{s:o, s:o, s:o, s:o, s:o}", "time", t, "cpu_percent", cpu, "processes", np,
		      "load1", load, "memory_used_bytes", mem);
	json_object_update_new(o, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "cpu_busy", busy,
					    "cpu_user", user, "cpu_system", sys, "cpu_iowait", wa,
					    "cpu_steal", st, "memory_cached_bytes", cached,
					    "memory_free_bytes", mfree));
	return o;
}

json_t *agent_hist_vm_json(const struct agent_hist *h)
{
	return agent_hist_vm_json_since(h, 0);
}

json_t *agent_hist_proc_json(const struct agent_hist *h, int32_t pid, uint64_t start_time_ns)
{
	return agent_hist_proc_json_since(h, pid, start_time_ns, 0);
}

json_t *agent_hist_proc_json_since(const struct agent_hist *h, int32_t pid, uint64_t start_time_ns,
				   uint64_t since_ns)
{
	long j = find(h, pid);
	const struct agent_hist_proc *p;
	json_t *t, *cpu, *rss;
	uint64_t first, c;

	if (j < 0 || h->procs[j].start_time_ns != start_time_ns || !h->procs[j].runs)
		return NULL;
	p = &h->procs[j];
	first = h->count > h->cap ? h->count - h->cap : 0;
	first = first_after(h, MAX(first, p->first), since_ns);
	t = json_array();
	cpu = json_array();
	rss = json_array();
	/* Run i holds frames c .. c + n - 1, from p->first on. */
	c = p->first;
	for (uint32_t i = 0; i < p->rn && c < h->count; i++) {
		const struct agent_hist_run *r = run_at(p, i);
		for (uint64_t end = MIN(c + r->n, h->count); c < end; c++) {
			if (c < first)
				continue;
			json_array_append_new(t, json_real(secs(h->time_ns[c % h->cap])));
			json_array_append_new(cpu, json_real((double)r->cpu_percent));
			json_array_append_new(rss, json_integer((json_int_t)r->rss_kb * 1024));
		}
	}
	return json_pack("{s:o, s:o, s:o}", "time", t, "cpu_percent", cpu, "rss_bytes", rss);
}

/* ---- the VM's process events ------------------------------------------------ */

/* Make room for one more event in vm's ring: the ring grows (doubling) up to
 * max_events as events come, so a quiet VM holds none; once full, the oldest
 * goes. false: no room (out of memory before the first event). */
static bool event_room(struct agent_vm *vm, unsigned max_events)
{
	if (vm->ev_n == vm->ev_cap && vm->ev_cap < max_events) {
		size_t ncap = MIN(MAX(vm->ev_cap * 2, (size_t)16), (size_t)max_events);
		struct agent_event *nev = malloc(ncap * sizeof(*nev));
		if (nev) {
			for (size_t i = 0; i < vm->ev_n; i++)
				nev[i] = vm->ev[(vm->ev_start + i) % vm->ev_cap];
			free(vm->ev);
			vm->ev = nev;
			vm->ev_cap = ncap;
			vm->ev_start = 0;
		}
	}
	if (!vm->ev_cap)
		return false;
	if (vm->ev_n == vm->ev_cap) {
		vm->ev_start = (vm->ev_start + 1) % vm->ev_cap;
		vm->ev_n--;
	}
	return true;
}

void agent_events_push(struct agent_vm *vm, const struct vmw_frame *f, unsigned max_events)
{
	for (size_t i = 0; i < f->nevents; i++) {
		struct agent_event *e;
		if ((unsigned)f->events[i].type < ARRAY_SIZE(vm->events_total))
			vm->events_total[f->events[i].type]++;
		if (!event_room(vm, max_events))
			continue;
		e = &vm->ev[(vm->ev_start + vm->ev_n++) % vm->ev_cap];
		e->seq = ++vm->ev_next_seq;
		e->wall_ns = f->wall_time_ns;
		e->e = f->events[i];
	}
}
