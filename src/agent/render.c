/* SPDX-License-Identifier: MIT */
/* render.c - the JSON documents of the agent's API (docs/API.md). */
#include "agent/agent_int.h"
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

json_t *agent_json_string(const char *s)
{
	return cli_json_string(s ? s : "");
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? agent_json_string(s) : json_null();
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

const char *agent_state_name(char state)
{
	/* psutil's names, which the original VM Process Monitor clients know. */
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

static json_t *nova_json(const struct vmw_nova *n)
{
	if (!n->present)
		return json_null();
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:i}",
			 "instance_name", str_or_null(n->instance_name), "flavor", str_or_null(n->flavor),
			 "project_id", str_or_null(n->project_id), "project_name", str_or_null(n->project_name),
			 "user_id", str_or_null(n->user_id), "user_name", str_or_null(n->user_name),
			 "flavor_memory_mib", (json_int_t)n->flavor_memory_mib, "flavor_vcpus", (int)n->flavor_vcpus);
}

static json_t *tasks_json(const struct agent_snap *s)
{
	return json_pack("{s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I}",
			 "total", (json_int_t)s->frame->nprocs,
			 "running", s->tasks[AGENT_TASK_RUNNING], "sleeping", s->tasks[AGENT_TASK_SLEEPING],
			 "disk_sleep", s->tasks[AGENT_TASK_DISK], "stopped", s->tasks[AGENT_TASK_STOPPED],
			 "zombie", s->tasks[AGENT_TASK_ZOMBIE], "idle", s->tasks[AGENT_TASK_IDLE],
			 "other", s->tasks[AGENT_TASK_OTHER], "threads", (json_int_t)s->threads_total);
}

#define CPU_MODES(X) X(user) X(nice) X(system) X(idle) X(iowait) X(irq) X(softirq) X(steal) \
	X(guest) X(guest_nice)

static json_t *cpu_times_json(const struct vmw_cpu_times *t)
{
	json_t *o = json_object();
#define X(m) json_object_set_new(o, #m, json_real(secs(t->m)));
	CPU_MODES(X)
#undef X
	return o;
}

static json_t *cpu_percent_json(const struct vmw_cpu_percent *p)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "user", p->user, "nice", p->nice,
			 "system", p->system, "idle", p->idle, "iowait", p->iowait, "irq", p->irq,
			 "softirq", p->softirq, "steal", p->steal);
}

json_t *agent_summary_json(struct agent_vm *vm, const struct agent_snap *s)
{
	const struct vmw_summary *m = s->summary;
	char release[72];
	json_t *o;

	pthread_mutex_lock(&vm->lock);
	memcpy(release, vm->kernel_release, sizeof(release));
	pthread_mutex_unlock(&vm->lock);
	o = json_pack("{s:f, s:I, s:o, s:o}", "time", secs(s->frame->wall_time_ns), "seq", (json_int_t)s->seq,
		      "kernel", str_or_null(release), "tasks", tasks_json(s));
	if (!m) {
		json_object_set_new(o, "memory", json_pack("{s:I}", "total_bytes",
							   (json_int_t)s->frame->mem_total_bytes));
		return o;
	}
	json_object_set_new(o, "uptime_seconds", json_real(secs(m->uptime_ns)));
	json_object_set_new(o, "idle_seconds", json_real(secs(m->idle_ns)));
	json_object_set_new(o, "boot_time", json_integer((json_int_t)m->boot_time_s));
	json_object_set_new(o, "load", json_pack("[f, f, f]", (double)m->load[0] / 2048.0,
						 (double)m->load[1] / 2048.0, (double)m->load[2] / 2048.0));
	json_object_set_new(o, "loadavg", json_string(m->loadavg));
	json_object_set_new(o, "memory", json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"total_bytes", (json_int_t)m->mem_total_kb * 1024, "free_bytes", (json_int_t)m->mem_free_kb * 1024,
		"available_bytes", (json_int_t)m->mem_available_kb * 1024,
		"used_bytes", (json_int_t)vmw_sat_sub(m->mem_total_kb, m->mem_available_kb) * 1024,
		"buffers_bytes", (json_int_t)m->buffers_kb * 1024, "cached_bytes", (json_int_t)m->cached_kb * 1024,
		"shmem_bytes", (json_int_t)m->shmem_kb * 1024, "swap_total_bytes", (json_int_t)m->swap_total_kb * 1024,
		"swap_free_bytes", (json_int_t)m->swap_free_kb * 1024,
		"swap_cached_bytes", (json_int_t)m->swap_cached_kb * 1024));
	json_t *cpu = json_pack("{s:i, s:i, s:o}", "online", (int)m->ncpus, "possible", (int)m->ncpus_possible,
				"seconds", cpu_times_json(&m->total));
	/* top's %Cpu(s) line and its per-vCPU lines, over the last interval. */
	if (!s->frame->first) {
		json_t *per = json_array();
		json_object_set_new(cpu, "percent", cpu_percent_json(&s->frame->cpu_total));
		for (unsigned i = 0; s->frame->cpu && m->cpu && i < m->ncpus; i++) {
			json_t *c = cpu_percent_json(&s->frame->cpu[i]);
			json_object_set_new(c, "cpu", json_integer(m->cpu[i].cpu));
			json_array_append_new(per, c);
		}
		json_object_set_new(cpu, "per_cpu", per);
	} else {
		json_object_set_new(cpu, "percent", json_null());
		json_object_set_new(cpu, "per_cpu", json_null());
	}
	json_object_set_new(o, "cpu", cpu);
	json_object_set_new(o, "context_switches", json_integer((json_int_t)m->ctxt));
	json_object_set_new(o, "forks", json_integer((json_int_t)m->processes));
	json_object_set_new(o, "procs_running", json_integer(m->procs_running));
	json_object_set_new(o, "procs_blocked", json_integer(m->procs_blocked));
	json_object_set_new(o, "nr_threads", json_integer(m->nr_threads));
	return o;
}

json_t *agent_vm_json(struct agent_vm *vm, bool detail)
{
	struct agent_snap *s;
	struct vmw_domain d;
	json_t *o, *mon, *last = json_null();
	char reason[sizeof(vm->reason)], release[72], build_id[48];
	const char *code;
	enum agent_status st;
	uint64_t frames, errors, attaches, since;

	pthread_mutex_lock(&vm->lock);
	d = vm->dom;
	st = vm->status;
	code = vm->reason_code;
	memcpy(reason, vm->reason, sizeof(reason));
	memcpy(release, vm->kernel_release, sizeof(release));
	memcpy(build_id, vm->kernel_build_id, sizeof(build_id));
	frames = vm->frames_total;
	errors = vm->frame_errors_total;
	attaches = vm->attaches_total;
	since = vm->status_wall_ns;
	s = agent_snap_ref(vm->snap);
	pthread_mutex_unlock(&vm->lock);

	o = json_pack("{s:s, s:o, s:o, s:s, s:i, s:I, s:i, s:o, s:o, s:s, s:o}",
		      "id", vm->id, "name", agent_json_string(vm->name), "uuid", str_or_null(d.uuid),
		      "state", vmw_domain_state_name(d.state), "vcpus", (int)d.vcpus,
		      "memory_bytes", (json_int_t)(d.memory_bytes ? d.memory_bytes
						   : s ? s->frame->mem_total_bytes : 0),
		      "qemu_pid", (int)d.qemu_pid, "ram_backing", str_or_null(d.ram_backing),
		      "target", str_or_null(vm->target), "source", vm->from_libvirt ? "libvirt" : "target",
		      "nova", nova_json(&d.nova));
	if (s)
		last = json_pack("{s:I, s:f, s:f, s:f, s:I, s:I, s:b, s:I}", "seq", (json_int_t)s->seq,
				 "time", secs(s->frame->wall_time_ns), "duration_seconds", secs(s->frame->frame_ns),
				 "interval_seconds", secs(s->frame->interval_ns),
				 "processes", (json_int_t)s->frame->nprocs, "bytes_read", (json_int_t)s->frame->bytes_read,
				 "complete", !s->frame->truncated, "skipped", (json_int_t)s->frame->skipped);
	mon = json_pack("{s:s, s:o, s:o, s:f, s:I, s:I, s:I, s:o, s:o}",
			"status", agent_status_name(st), "reason_code", code ? json_string(code) : json_null(),
			"reason", str_or_null(reason), "since", secs(since), "frames", (json_int_t)frames,
			"frame_errors", (json_int_t)errors, "attaches", (json_int_t)attaches, "last_frame", last,
			"kernel", release[0] ? json_pack("{s:o, s:o}", "release", agent_json_string(release),
							 "build_id", agent_json_string(build_id))
					     : json_null());
	json_object_set_new(o, "ram_shared", json_boolean(d.ram_shared));
	json_object_set_new(o, "ram_hugepages", json_boolean(d.ram_hugepages));
	json_object_set_new(o, "monitoring", mon);
	if (detail) {
		json_object_set_new(o, "summary", s ? agent_summary_json(vm, s) : json_null());
		pthread_mutex_lock(&vm->lock);
		json_object_set_new(o, "history", agent_hist_vm_json(&vm->hist));
		pthread_mutex_unlock(&vm->lock);
	}
	agent_snap_unref(s);
	return o;
}

json_t *agent_proc_json(const struct vmw_sample *x)
{
	json_t *o = cli_proc_json(&x->proc);
	json_object_set_new(o, "cpu_percent", json_real(x->cpu_percent));
	json_object_set_new(o, "mem_percent", json_real(x->mem_percent));
	json_object_set_new(o, "rss_delta_bytes", json_integer((json_int_t)x->rss_delta_bytes));
	json_object_set_new(o, "new", json_boolean(x->is_new));
	return o;
}

static const char *const proc_fields[] = {
	"pid", "ppid", "comm", "state", "uid", "gid", "euid", "egid", "threads", "utime_ns", "stime_ns",
	"runtime_ns", "start_time_ns", "nice", "priority", "rss_bytes", "rss_anon_bytes", "rss_file_bytes",
	"rss_shmem_bytes", "swap_bytes", "vsz_bytes", "kthread", "cmdline", "cpu_percent", "mem_percent",
	"rss_delta_bytes", "new",
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
		if (!strcmp(sort, "cpu"))
			q->sort = AGENT_SORT_CPU;
		else if (!strcmp(sort, "mem"))
			q->sort = AGENT_SORT_MEM;
		else if (!strcmp(sort, "pid"))
			q->sort = AGENT_SORT_PID;
		else {
			snprintf(errbuf, errsize, "bad parameter 'sort': '%.64s' is not cpu, mem or pid", sort);
			return -EINVAL;
		}
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
					 "mem_percent, rss_delta_bytes, new)", (int)MIN(n, 64), p);
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

static const struct vmw_sample *sort_base;

static int cmp_cpu(const void *a, const void *b)
{
	const struct vmw_sample *x = &sort_base[*(const uint32_t *)a], *y = &sort_base[*(const uint32_t *)b];
	if (x->cpu_percent != y->cpu_percent)
		return x->cpu_percent < y->cpu_percent ? 1 : -1;
	return x->proc.pid - y->proc.pid;
}

static int cmp_mem(const void *a, const void *b)
{
	const struct vmw_sample *x = &sort_base[*(const uint32_t *)a], *y = &sort_base[*(const uint32_t *)b];
	uint64_t rx = vmw_proc_rss_bytes(&x->proc), ry = vmw_proc_rss_bytes(&y->proc);
	if (rx != ry)
		return rx < ry ? 1 : -1;
	return x->proc.pid - y->proc.pid;
}

static int cmp_pid(const void *a, const void *b)
{
	return sort_base[*(const uint32_t *)a].proc.pid - sort_base[*(const uint32_t *)b].proc.pid;
}

static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

/* Indices of f's processes in the query's order. */
static uint32_t *sorted(const struct vmw_frame *f, int how)
{
	uint32_t *idx = malloc((f->nprocs ? f->nprocs : 1) * sizeof(*idx));
	if (!idx)
		return NULL;
	for (size_t i = 0; i < f->nprocs; i++)
		idx[i] = (uint32_t)i;
	/* qsort has no context argument in C17; the base is shared under a lock. */
	pthread_mutex_lock(&sort_lock);
	sort_base = f->procs;
	qsort(idx, f->nprocs, sizeof(*idx), how == AGENT_SORT_CPU ? cmp_cpu : how == AGENT_SORT_MEM ? cmp_mem
											      : cmp_pid);
	pthread_mutex_unlock(&sort_lock);
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
		json_array_append_new(procs, select_fields(agent_proc_json(&f->procs[idx[i]]), q));
	free(idx);
	return json_pack("{s:{s:s, s:o}, s:I, s:f, s:f, s:I, s:b, s:I, s:f, s:I, s:o}",
			 "vm", "id", vm->id, "name", agent_json_string(vm->name), "seq", (json_int_t)s->seq,
			 "time", secs(f->wall_time_ns), "interval_seconds", secs(f->interval_ns),
			 "total", (json_int_t)f->nprocs, "complete", !f->truncated, "skipped", (json_int_t)f->skipped,
			 "cpu_percent_total", f->cpu_percent_total, "mem_total_bytes", (json_int_t)f->mem_total_bytes,
			 "processes", procs);
}

json_t *agent_event_json(const struct agent_event *ev)
{
	const struct vmw_event *e = &ev->e;
	return json_pack("{s:I, s:f, s:s, s:i, s:o, s:I, s:I, s:I, s:I, s:b}",
			 "seq", (json_int_t)ev->seq, "time", secs(ev->wall_ns),
			 "type", e->type == VMW_EVENT_NEW ? "new" : "exit", "pid", e->pid,
			 "comm", agent_json_string(e->comm), "start_time_ns", (json_int_t)e->start_time_ns,
			 "runtime_ns", (json_int_t)e->runtime_ns, "rss_bytes", (json_int_t)e->rss_bytes,
			 "vsz_bytes", (json_int_t)e->vsz_bytes, "pid_reused", e->pid_reused);
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
			 agent_json_string(vm->name), "events", evs, "next_since", (json_int_t)next,
			 "oldest_seq", (json_int_t)oldest, "lost", since + 1 < oldest);
}
