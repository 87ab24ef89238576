/* SPDX-License-Identifier: MIT */
/* render.c - the JSON documents of the agent's API (docs/API.md). */
#include "agent/agent_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static double secs(uint64_t ns)
{
	return vmw_report_seconds(ns);
}

json_t *agent_summary_json(struct agent_vm *vm, const struct agent_snap *s)
{
	char release[72];
	json_t *o = vmw_report_summary(s->summary, s->frame);

	pthread_mutex_lock(&vm->lock);
	memcpy(release, vm->kernel_release, sizeof(release));
	pthread_mutex_unlock(&vm->lock);
	json_object_update_new(o, json_pack("{s:f, s:I, s:o}", "time", secs(s->frame->wall_time_ns),
					    "seq", (json_int_t)s->seq, "kernel", vmw_report_string_or_null(release)));
	return o;
}

/* What vm's thread reports (status, counters, the last frame). */
struct vm_state {
	struct vmw_domain dom;
	enum agent_status status;
	const char *code;
	char reason[sizeof(((struct agent_vm *)0)->reason)], release[72], build_id[48];
	uint64_t frames, errors, attaches, since, crashes;
	double host_cpu;
	struct agent_snap *snap;       /* referenced */
};

static void vm_state(struct agent_vm *vm, struct vm_state *st)
{
	pthread_mutex_lock(&vm->lock);
	st->dom = vm->dom;
	st->status = vm->status;
	st->code = vm->reason_code;
	memcpy(st->reason, vm->reason, sizeof(st->reason));
	memcpy(st->release, vm->kernel_release, sizeof(st->release));
	memcpy(st->build_id, vm->kernel_build_id, sizeof(st->build_id));
	st->frames = vm->frames_total;
	st->errors = vm->frame_errors_total;
	st->attaches = vm->attaches_total;
	st->crashes = vm->sampler_crashes_total;
	st->host_cpu = vm->host_cpu_percent;
	st->since = vm->status_wall_ns;
	st->snap = agent_snap_ref(vm->snap);
	pthread_mutex_unlock(&vm->lock);
}

static json_t *monitoring_json(const struct vm_state *st)
{
	const struct agent_snap *s = st->snap;
	json_t *last = json_null();

	if (s)
		last = json_pack("{s:I, s:f, s:f, s:f, s:I, s:I, s:b, s:I, s:I}", "seq", (json_int_t)s->seq,
				 "time", secs(s->frame->wall_time_ns), "duration_seconds", secs(s->frame->frame_ns),
				 "interval_seconds", secs(s->frame->interval_ns),
				 "processes", (json_int_t)s->frame->nprocs, "bytes_read", (json_int_t)s->frame->bytes_read,
				 "complete", s->frame->complete, "skipped", (json_int_t)s->frame->skipped,
				 "incomplete", (json_int_t)s->frame->incomplete);
	return json_pack("{s:s, s:o, s:o, s:f, s:I, s:I, s:I, s:I, s:o, s:o}",
			 "status", agent_status_name(st->status),
			 "reason_code", st->code ? json_string(st->code) : json_null(),
			 "reason", vmw_report_string_or_null(st->reason), "since", secs(st->since),
			 "frames", (json_int_t)st->frames, "frame_errors", (json_int_t)st->errors,
			 "attaches", (json_int_t)st->attaches, "sampler_crashes", (json_int_t)st->crashes,
			 "last_frame", last,
			 "kernel", st->release[0] ? json_pack("{s:o, s:o}", "release", vmw_report_string(st->release),
							      "build_id", vmw_report_string(st->build_id))
						  : json_null());
}

int agent_parse_since(const char *s, uint64_t *ret_ns)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !(d >= 0) || d > 1e11)
		return -EINVAL;
	*ret_ns = (uint64_t)(d * 1e9);
	return 0;
}

json_t *agent_vm_json(struct agent_vm *vm, bool detail)
{
	return agent_vm_json_since(vm, detail, 0);
}

json_t *agent_vm_json_since(struct agent_vm *vm, bool detail, uint64_t since_ns)
{
	struct vm_state st;
	json_t *o;

	vm_state(vm, &st);
	o = vmw_report_domain(&st.dom);
	/* The domain as libvirt describes it, and what the agent knows better. */
	json_object_update_new(o, json_pack("{s:s, s:o, s:I, s:o, s:s}", "id", vm->id,
		"name", vmw_report_string(vm->name),
		"memory_bytes", (json_int_t)(st.dom.memory_bytes ? st.dom.memory_bytes
					     : st.snap ? st.snap->frame->mem_total_bytes : 0),
		"target", vmw_report_string_or_null(vm->target), "origin", vm->from_libvirt ? "libvirt" : "target"));
	json_object_set_new(o, "monitoring", monitoring_json(&st));
	json_object_set_new(o, "os", vmw_report_frame_os(st.snap ? st.snap->frame : NULL));
	if (st.snap) {
		json_t *use = vmw_report_use(st.snap->frame);
		json_object_set_new(use, "host_cpu_percent", st.host_cpu >= 0 ? json_real(st.host_cpu) : json_null());
		json_object_set_new(o, "use", use);
	} else {
		json_object_set_new(o, "use", json_null());
	}
	if (detail) {
		json_object_set_new(o, "summary", st.snap ? agent_summary_json(vm, st.snap) : json_null());
		pthread_mutex_lock(&vm->lock);
		json_object_set_new(o, "history", agent_hist_vm_json_since(&vm->hist, since_ns));
		pthread_mutex_unlock(&vm->lock);
	}
	agent_snap_unref(st.snap);
	return o;
}

static const char *const proc_fields[] = {
	"pid", "ppid", "comm", "state", "uid", "gid", "euid", "egid", "threads", "utime_ns", "stime_ns",
	"runtime_ns", "start_time_ns", "nice", "priority", "rss_bytes", "rss_anon_bytes", "rss_file_bytes",
	"rss_shmem_bytes", "swap_bytes", "vsz_bytes", "kthread", "cmdline", "cpu_percent", "mem_percent",
	"rss_delta_bytes", "new", "user", "incomplete", "cgroup", "cgroups_v1", "unit", "slice", "container",
	"cgroup_memory_bytes", "io", "min_flt", "maj_flt", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches",
	"io_rate", "min_flt_rate", "maj_flt_rate", "voluntary_ctxt_switches_rate", "nonvoluntary_ctxt_switches_rate",
};

void agent_query_free(struct agent_query *q)
{
	for (size_t i = 0; i < q->nfields; i++)
		free(q->fields[i]);
	free(q->fields);
	q->fields = NULL;
	q->nfields = 0;
}

int agent_query_parse(struct agent_query *q, const char *sort, const char *limit, const char *fields,
		      char *errbuf, size_t errsize)
{
	memset(q, 0, sizeof(*q));
	q->sort = AGENT_SORT_CPU;
	if (sort) {
		static const char *const names[] = {
			[AGENT_SORT_CPU] = "cpu", [AGENT_SORT_MEM] = "mem", [AGENT_SORT_PID] = "pid",
			[AGENT_SORT_VSZ] = "vsz", [AGENT_SORT_THREADS] = "threads", [AGENT_SORT_TIME] = "time",
			[AGENT_SORT_NAME] = "name", [AGENT_SORT_USER] = "user", [AGENT_SORT_STATE] = "state",
			[AGENT_SORT_NICE] = "nice", [AGENT_SORT_START] = "start",
			[AGENT_SORT_IO] = "io", [AGENT_SORT_FAULTS] = "faults",
		};
		size_t i = 0;
		while (i < ARRAY_SIZE(names) && strcmp(sort, names[i]))
			i++;
		if (i == ARRAY_SIZE(names)) {
			snprintf(errbuf, errsize, "bad parameter 'sort': '%.64s' is not cpu, mem, pid, vsz, threads, "
				 "time, name, user, state, nice, start, io or faults", sort);
			return -EINVAL;
		}
		q->sort = (int)i;
	}
	if (limit) {
		uint64_t v;
		if (vmw_parse_u64(limit, &v) < 0 || v < 1 || v > 1000000 || limit[0] == '0') {
			snprintf(errbuf, errsize, "bad parameter 'limit': '%.64s' is not a number from 1 to 1000000",
				 limit);
			return -EINVAL;
		}
		q->limit = (size_t)v;
	}
	if (fields) {
		const char *p = fields;
		while (*p) {
			size_t n = strcspn(p, ",");
			bool known = false;
			for (size_t i = 0; i < ARRAY_SIZE(proc_fields) && !known; i++)
				known = strlen(proc_fields[i]) == n && !strncmp(proc_fields[i], p, n);
			if (!known) {
				snprintf(errbuf, errsize, "bad parameter 'fields': unknown field '%.*s' (known: pid, ppid, "
					 "comm, state, uid, gid, euid, egid, threads, utime_ns, stime_ns, runtime_ns, "
					 "start_time_ns, nice, priority, rss_bytes, rss_anon_bytes, rss_file_bytes, "
					 "rss_shmem_bytes, swap_bytes, vsz_bytes, kthread, cmdline, cpu_percent, "
					 "mem_percent, rss_delta_bytes, new, user, incomplete, cgroup, cgroups_v1, unit, slice, "
					 "container, cgroup_memory_bytes, io, min_flt, maj_flt, voluntary_ctxt_switches, "
					 "nonvoluntary_ctxt_switches, io_rate, min_flt_rate, maj_flt_rate, "
					 "voluntary_ctxt_switches_rate, nonvoluntary_ctxt_switches_rate)", (int)MIN(n, 64), p);
				agent_query_free(q);
				return -EINVAL;
			}
			char **nf = realloc(q->fields, (q->nfields + 1) * sizeof(char *));
			if (!nf || !(nf[q->nfields] = strndup(p, n))) {
				if (nf)
					q->fields = nf;
				agent_query_free(q);
				snprintf(errbuf, errsize, "out of memory");
				return -ENOMEM;
			}
			q->fields = nf;
			q->nfields++;
			p += n;
			if (*p == ',')
				p++;
		}
		if (!q->nfields) {
			snprintf(errbuf, errsize, "bad parameter 'fields': empty");
			return -EINVAL;
		}
	}
	return 0;
}

/* Sort orders (?sort=): CPU, memory, VSZ, threads, CPU time, I/O rate
 * (read()+write() bytes/s) and fault rate descending, the rest ascending;
 * ties by pid. */
static int cmp_u64_desc(uint64_t x, uint64_t y) { return x == y ? 0 : x < y ? 1 : -1; }
static int cmp_double_desc(double x, double y) { return x == y ? 0 : x < y ? 1 : -1; }

static int cmp_rate(const struct vmw_sample *x, const struct vmw_sample *y, int how)
{
	if (how == AGENT_SORT_IO)
		return cmp_double_desc(x->proc.io_ok ? x->rate.rchar + x->rate.wchar : 0,
				       y->proc.io_ok ? y->rate.rchar + y->rate.wchar : 0);
	return cmp_double_desc(x->rate.min_flt + x->rate.maj_flt, y->rate.min_flt + y->rate.maj_flt);
}

static int cmp_key(const struct vmw_sample *x, const struct vmw_sample *y, int how)
{
	const struct vmw_proc *p = &x->proc, *q = &y->proc;

	switch (how) {
	case AGENT_SORT_CPU:
		return x->cpu_percent == y->cpu_percent ? 0 : x->cpu_percent < y->cpu_percent ? 1 : -1;
	case AGENT_SORT_MEM: return cmp_u64_desc(vmw_proc_rss_bytes(p), vmw_proc_rss_bytes(q));
	case AGENT_SORT_VSZ: return cmp_u64_desc(p->vsz_bytes, q->vsz_bytes);
	case AGENT_SORT_THREADS: return cmp_u64_desc(p->nr_threads, q->nr_threads);
	case AGENT_SORT_TIME: return cmp_u64_desc(p->utime_ns + p->stime_ns, q->utime_ns + q->stime_ns);
	case AGENT_SORT_NAME: return strcmp(p->comm, q->comm);
	case AGENT_SORT_USER:
		return p->user[0] && q->user[0] ? strcmp(p->user, q->user)
						: (p->euid > q->euid) - (p->euid < q->euid);
	case AGENT_SORT_STATE: return (p->state > q->state) - (p->state < q->state);
	case AGENT_SORT_NICE: return (p->nice > q->nice) - (p->nice < q->nice);
	case AGENT_SORT_START: return -cmp_u64_desc(p->start_time_ns, q->start_time_ns);
	case AGENT_SORT_IO: case AGENT_SORT_FAULTS: return cmp_rate(x, y, how);
	default: return 0;
	}
}

struct sort_ctx {
	const struct vmw_sample *base;
	int how;
};

static int cmp_idx(const void *a, const void *b, void *arg)
{
	const struct sort_ctx *c = arg;
	const struct vmw_sample *x = &c->base[*(const uint32_t *)a], *y = &c->base[*(const uint32_t *)b];
	int r = cmp_key(x, y, c->how);

	return r ? r : (x->proc.pid > y->proc.pid) - (x->proc.pid < y->proc.pid);
}

/* Indices of f's processes in the query's order. */
static uint32_t *sorted(const struct vmw_frame *f, int how)
{
	uint32_t *idx = malloc((f->nprocs ? f->nprocs : 1) * sizeof(*idx));
	struct sort_ctx c = { f->procs, how };

	if (!idx)
		return NULL;
	for (size_t i = 0; i < f->nprocs; i++)
		idx[i] = (uint32_t)i;
	qsort_r(idx, f->nprocs, sizeof(*idx), cmp_idx, &c);
	return idx;
}

static json_t *select_fields(json_t *o, const struct agent_query *q)
{
	json_t *n;
	if (!q->fields)
		return o;
	n = json_object();
	for (size_t i = 0; i < q->nfields; i++) {
		json_t *v = json_object_get(o, q->fields[i]);
		if (v)
			json_object_set(n, q->fields[i], v);
	}
	json_decref(o);
	return n;
}

json_t *agent_procs_json(struct agent_vm *vm, const struct agent_snap *s, const struct agent_query *q)
{
	const struct vmw_frame *f = s->frame;
	uint32_t *idx = sorted(f, q->sort);
	size_t n = q->limit ? MIN(q->limit, f->nprocs) : f->nprocs;
	json_t *procs = json_array();

	for (size_t i = 0; idx && i < n; i++)
		json_array_append_new(procs, select_fields(vmw_report_sample(&f->procs[idx[i]]), q));
	free(idx);
	json_t *o = vmw_report_frame_base(f, s->seq);
	json_object_set_new(o, "vm", json_pack("{s:s, s:o}", "id", vm->id, "name", vmw_report_string(vm->name)));
	json_object_set_new(o, "processes", procs);
	return o;
}

json_t *agent_event_json(const struct agent_event *ev)
{
	json_t *o = json_pack("{s:I, s:f}", "seq", (json_int_t)ev->seq, "time", secs(ev->wall_ns));
	json_object_update_new(o, vmw_report_event(&ev->e));
	return o;
}

json_t *agent_frame_json(struct agent_vm *vm, const struct agent_snap *s, const struct agent_query *q)
{
	json_t *o = agent_procs_json(vm, s, q), *evs = json_array();
	uint64_t first_seq = 0;

	pthread_mutex_lock(&vm->lock);
	/* This frame's events are the last f->nevents of the ring (if still there). */
	if (vm->snap == s && vm->ev_n >= s->frame->nevents) {
		first_seq = vm->ev_next_seq - s->frame->nevents + 1;
		for (size_t i = vm->ev_n - s->frame->nevents; i < vm->ev_n; i++)
			json_array_append_new(evs, agent_event_json(&vm->ev[(vm->ev_start + i) % vm->ev_cap]));
	}
	pthread_mutex_unlock(&vm->lock);
	if (!first_seq) {
		/* Not the latest any more, or the ring is smaller: events without a sequence number. */
		for (size_t i = 0; i < s->frame->nevents; i++) {
			struct agent_event ev = { .seq = 0, .wall_ns = s->frame->wall_time_ns, .e = s->frame->events[i] };
			json_array_append_new(evs, agent_event_json(&ev));
		}
	}
	json_object_set_new(o, "summary", agent_summary_json(vm, s));
	json_object_set_new(o, "events", evs);
	return o;
}

json_t *agent_events_json(struct agent_vm *vm, uint64_t since, size_t limit)
{
	json_t *evs = json_array();
	uint64_t oldest, next;
	size_t count = 0;

	pthread_mutex_lock(&vm->lock);
	oldest = vm->ev_n ? vm->ev[vm->ev_start].seq : vm->ev_next_seq + 1;
	next = vm->ev_next_seq;
	for (size_t i = 0; i < vm->ev_n && (!limit || count < limit); i++) {
		const struct agent_event *ev = &vm->ev[(vm->ev_start + i) % vm->ev_cap];
		if (ev->seq <= since)
			continue;
		json_array_append_new(evs, agent_event_json(ev));
		next = ev->seq;
		count++;
	}
	if (!count)
		next = MIN(since, vm->ev_next_seq);   /* a client ahead of us (agent restarted) catches up */
	pthread_mutex_unlock(&vm->lock);
	return json_pack("{s:{s:s, s:o}, s:o, s:I, s:I, s:b}", "vm", "id", vm->id, "name",
			 vmw_report_string(vm->name), "events", evs, "next_since", (json_int_t)next,
			 "oldest_seq", (json_int_t)oldest, "lost", since + 1 < oldest);
}
