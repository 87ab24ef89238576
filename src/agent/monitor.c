/* SPDX-License-Identifier: MIT */
/*
 * monitor.c - the VM registry and one sampler thread per VM.
 *
 * A VM comes from libvirt (domain started, or found when listing) or from an
 * explicit target. Its thread attaches (retrying with back-off while the
 * guest cannot be introspected: still booting, not Linux, no BTF, no
 * permission...), takes a frame every interval, and publishes an immutable
 * snapshot. A failure of one VM never touches the others.
 */
#include "agent/agent_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---------------------------------------------------------------- snapshots */

static uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

struct agent_snap *agent_snap_ref(struct agent_snap *s)
{
	if (s)
		atomic_fetch_add(&s->ref, 1);
	return s;
}

void agent_snap_unref(struct agent_snap *s)
{
	if (!s || atomic_fetch_sub(&s->ref, 1) != 1)
		return;
	vmw_frame_free(s->frame);
	free(s->pidmap);
	free(s->groups);
	free(s);
}

long agent_snap_find(const struct agent_snap *s, int32_t pid)
{
	if (!s || !s->pidcap)
		return -1;
	for (size_t i = hash32((uint32_t)pid) & (s->pidcap - 1);; i = (i + 1) & (s->pidcap - 1)) {
		uint32_t v = s->pidmap[i];
		if (!v)
			return -1;
		if (s->frame->procs[v - 1].proc.pid == pid)
			return (long)v - 1;
	}
}

static int task_class(char state)
{
	switch (state) {
	case 'R': return AGENT_TASK_RUNNING;
	case 'S': return AGENT_TASK_SLEEPING;
	case 'D': return AGENT_TASK_DISK;
	case 'T': case 't': return AGENT_TASK_STOPPED;
	case 'Z': return AGENT_TASK_ZOMBIE;
	case 'I': return AGENT_TASK_IDLE;
	default: return AGENT_TASK_OTHER;
	}
}

/* The group a process counts in: its name; all kernel threads together in
 * "[kernel]" (dozens of names per guest would multiply the series). */
static void group_name(const struct vmw_proc *p, char *buf, size_t size)
{
	if (p->kthread) {
		snprintf(buf, size, "[kernel]");
	} else {
		snprintf(buf, size, "%s", p->comm);
	}
}

struct gref {
	char name[72];
	size_t idx;
};

static int gref_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gref *)a)->name, ((const struct gref *)b)->name);
}

static int group_cmp(const void *a, const void *b)
{
	return strcmp(((const struct agent_group *)a)->name, ((const struct agent_group *)b)->name);
}

static int group_rss_cmp(const void *a, const void *b)
{
	const struct agent_group *x = a, *y = b;
	if (x->procs != y->procs)
		return !x->procs - !y->procs;      /* groups with processes first */
	return x->rss_bytes < y->rss_bytes ? 1 : x->rss_bytes > y->rss_bytes ? -1 : strcmp(x->name, y->name);
}

static const struct agent_group *group_find(const struct agent_snap *s, const char *name)
{
	struct agent_group key;
	if (!s || !s->ngroups)
		return NULL;
	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, s->groups, s->ngroups, sizeof(*s->groups), group_cmp);
}

static void group_merge(struct agent_group *into, const struct agent_group *g)
{
	into->procs += g->procs;
	into->threads += g->threads;
	into->rss_bytes += g->rss_bytes;
	into->vsz_bytes += g->vsz_bytes;
	into->swap_bytes += g->swap_bytes;
	into->user_ns += g->user_ns;
	into->system_ns += g->system_ns;
	into->cpu_percent += g->cpu_percent;
}

/* Groups of this frame, with CPU counters carried over from prev so that
 * they only ever grow (exited processes' CPU stays counted). */
static int build_groups(struct agent_snap *s, const struct agent_snap *prev, unsigned max_groups)
{
	const struct vmw_frame *f = s->frame;
	struct gref *refs = calloc(f->nprocs ? f->nprocs : 1, sizeof(*refs));
	struct agent_group *g;
	size_t ng = 0, cap;

	if (!refs)
		return -ENOMEM;
	for (size_t i = 0; i < f->nprocs; i++) {
		group_name(&f->procs[i].proc, refs[i].name, sizeof(refs[i].name));
		refs[i].idx = i;
	}
	qsort(refs, f->nprocs, sizeof(*refs), gref_cmp);
	cap = f->nprocs + (prev ? prev->ngroups : 0) + 1;
	if (!(g = calloc(cap, sizeof(*g)))) {
		free(refs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_sample *x = &f->procs[refs[i].idx];
		const struct vmw_proc *p = &x->proc;
		long j;
		uint64_t du, ds;

		if (!ng || strcmp(g[ng - 1].name, refs[i].name)) {
			const struct agent_group *old = group_find(prev, refs[i].name);
			memcpy(g[ng].name, refs[i].name, sizeof(g[ng].name));
			if (old) {
				g[ng].user_ns = old->user_ns;
				g[ng].system_ns = old->system_ns;
			}
			ng++;
		}
		struct agent_group *cur = &g[ng - 1];
		cur->procs++;
		cur->threads += p->nr_threads;
		cur->rss_bytes += vmw_proc_rss_bytes(p);
		cur->vsz_bytes += p->vsz_bytes;
		cur->swap_bytes += p->swap_bytes;
		cur->cpu_percent += x->cpu_percent;
		j = agent_snap_find(prev, p->pid);
		if (j >= 0 && prev->frame->procs[j].proc.start_time_ns == p->start_time_ns) {
			du = vmw_sat_sub(p->utime_ns, prev->frame->procs[j].proc.utime_ns);
			ds = vmw_sat_sub(p->stime_ns, prev->frame->procs[j].proc.stime_ns);
		} else {
			du = p->utime_ns;   /* started since, or the first frame: all of it */
			ds = p->stime_ns;
		}
		cur->user_ns += du;
		cur->system_ns += ds;
	}
	free(refs);
	/* Groups whose processes all exited keep their counters (0 processes). */
	for (size_t i = 0; prev && i < prev->ngroups; i++) {
		struct agent_group key;
		memcpy(key.name, prev->groups[i].name, sizeof(key.name));
		if (bsearch(&key, g, ng, sizeof(*g), group_cmp))
			continue;
		if (!prev->groups[i].procs && prev->ngroups > max_groups / 2)
			continue;          /* drop idle groups first when crowded */
		g[ng] = prev->groups[i];
		g[ng].procs = g[ng].threads = 0;
		g[ng].rss_bytes = g[ng].vsz_bytes = g[ng].swap_bytes = 0;
		g[ng].cpu_percent = 0;
		ng++;
	}
	qsort(g, ng, sizeof(*g), group_cmp);
	/* Bounded cardinality: the largest groups by memory, the rest in "[other]". */
	if (max_groups && ng > max_groups) {
		struct agent_group other = { .name = "[other]" };
		const struct agent_group *old = group_find(prev, "[other]");
		qsort(g, ng, sizeof(*g), group_rss_cmp);
		for (size_t i = max_groups - 1; i < ng; i++)
			if (strcmp(g[i].name, "[other]"))
				group_merge(&other, &g[i]);
		/* "[other]" may only grow, even as its members change. */
		if (old) {
			other.user_ns = MAX(other.user_ns, old->user_ns);
			other.system_ns = MAX(other.system_ns, old->system_ns);
		}
		ng = max_groups - 1;
		g[ng++] = other;
		qsort(g, ng, sizeof(*g), group_cmp);
	} else if (!max_groups) {
		ng = 0;
	}
	s->groups = g;
	s->ngroups = ng;
	return 0;
}

static struct agent_snap *snap_build(struct vmw_frame *f, const struct agent_snap *prev,
				     uint64_t seq, unsigned max_groups)
{
	struct agent_snap *s = calloc(1, sizeof(*s));
	size_t cap = 16;

	if (!s)
		return NULL;
	atomic_init(&s->ref, 1);
	s->seq = seq;
	s->frame = f;
	s->summary = f->summary_ok ? &f->summary : NULL;
	while (cap < f->nprocs * 2)
		cap <<= 1;
	if (!(s->pidmap = calloc(cap, sizeof(*s->pidmap)))) {
		free(s);
		return NULL;
	}
	s->pidcap = cap;
	s->bytes = sizeof(*s) + cap * sizeof(uint32_t) + sizeof(*f) + f->nprocs * sizeof(*f->procs) +
		   f->nevents * sizeof(*f->events);
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_proc *p = &f->procs[i].proc;
		size_t h = hash32((uint32_t)p->pid) & (cap - 1);
		while (s->pidmap[h])
			h = (h + 1) & (cap - 1);
		s->pidmap[h] = (uint32_t)i + 1;
		s->tasks[task_class(p->state)]++;
		s->threads_total += p->nr_threads;
		for (char **a = p->cmdline; a && *a; a++)
			s->bytes += strlen(*a) + 1 + sizeof(char *);
	}
	if (build_groups(s, prev, max_groups) < 0) {
		s->frame = NULL;
		agent_snap_unref(s);
		return NULL;
	}
	s->bytes += s->ngroups * sizeof(*s->groups);
	return s;
}

/* ---------------------------------------------------------------- VMs */

struct agent_vm *agent_vm_ref(struct agent_vm *vm)
{
	if (vm)
		atomic_fetch_add(&vm->ref, 1);
	return vm;
}

void agent_vm_unref(struct agent_vm *vm)
{
	if (!vm || atomic_fetch_sub(&vm->ref, 1) != 1)
		return;
	agent_snap_unref(vm->snap);
	agent_snap_unref(vm->prev);
	agent_hist_free(&vm->hist);
	free(vm->ev);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

const char *agent_status_name(enum agent_status s)
{
	switch (s) {
	case AGENT_VM_STARTING: return "starting";
	case AGENT_VM_OK: return "ok";
	case AGENT_VM_ERROR: return "error";
	case AGENT_VM_GONE: return "gone";
	}
	return "unknown";
}

struct agent_snap *agent_vm_snap(struct agent_vm *vm)
{
	struct agent_snap *s;
	pthread_mutex_lock(&vm->lock);
	s = agent_snap_ref(vm->snap);
	pthread_mutex_unlock(&vm->lock);
	return s;
}

/* starttime of the QEMU process (src/mem parses /proc/PID/stat); 0 if it is gone. */
static uint64_t proc_start_ticks(pid_t pid)
{
	struct vmw_qemu_id id;
	return vmw_qemu_id_get(pid, &id) == 0 ? id.start_ticks : 0;
}

/* Under vm->lock. Logs only changes, so a VM retrying does not flood the log. */
static void set_status(struct agent_vm *vm, enum agent_status st, const char *code, const char *reason)
{
	bool changed = vm->status != st || strcmp(vm->reason, reason ? reason : "");

	vm->status = st;
	vm->reason_code = code;
	snprintf(vm->reason, sizeof(vm->reason), "%s", reason ? reason : "");
	if (!changed)
		return;
	vm->status_wall_ns = agent_wall_ns();
	pthread_cond_broadcast(&vm->cond);
	if (st == AGENT_VM_OK)
		vmw_agent_log(VMW_LOG_NOTICE, "vm %s: monitoring (%s, Linux %s)", vm->name, vm->target,
			      vm->kernel_release);
	else if (st != AGENT_VM_STARTING)
		vmw_agent_log(st == AGENT_VM_GONE ? VMW_LOG_NOTICE : VMW_LOG_WARNING, "vm %s: %s: %s (%s)",
			      vm->name, agent_status_name(st), reason, code);
}

static void push_events(struct agent_vm *vm, const struct vmw_frame *f, unsigned max_events)
{
	if (!vm->ev) {
		vm->ev_cap = max_events;
		if (!(vm->ev = calloc(vm->ev_cap, sizeof(*vm->ev))))
			vm->ev_cap = 0;
	}
	for (size_t i = 0; i < f->nevents; i++) {
		struct agent_event *e;
		if ((unsigned)f->events[i].type < ARRAY_SIZE(vm->events_total))
			vm->events_total[f->events[i].type]++;
		if (!vm->ev_cap)
			continue;
		if (vm->ev_n == vm->ev_cap) {
			vm->ev_start = (vm->ev_start + 1) % vm->ev_cap;
			vm->ev_n--;
		}
		e = &vm->ev[(vm->ev_start + vm->ev_n++) % vm->ev_cap];
		e->seq = ++vm->ev_next_seq;
		e->wall_ns = f->wall_time_ns;
		e->e = f->events[i];
	}
}

static bool vm_should_stop(struct agent_vm *vm)
{
	bool stop;
	pthread_mutex_lock(&vm->lock);
	stop = vm->stop || atomic_load(&vm->a->stopping);
	pthread_mutex_unlock(&vm->lock);
	return stop;
}

/* Sleep until the monotonic deadline or stop. */
static void vm_wait_until(struct agent_vm *vm, uint64_t deadline_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000ull),
			       .tv_nsec = (long)(deadline_ns % 1000000000ull) };
	pthread_mutex_lock(&vm->lock);
	while (!vm->stop && !atomic_load(&vm->a->stopping) && vmw_now_ns() < deadline_ns)
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&vm->lock);
}

static uint64_t interval_ns(struct agent *a)
{
	return atomic_load(&a->live.interval_ns);
}

/* The agent's re-attach back-off (the session applies it): every interval
 * while the VM is young (a booting guest shows its kernel within seconds),
 * then doubling up to a minute. A target with no QEMU process (a RAM file)
 * is retried too: the agent is long-running and reports the failure. */
static struct vmw_session_policy backoff_policy(struct agent *a)
{
	uint64_t iv = interval_ns(a);
	return (struct vmw_session_policy){ .min_ns = iv, .max_ns = MAX(60000000000ull, iv),
					    .young_ns = 120000000000ull, .wait_without_process = true };
}

static void thread_done(struct agent *a)
{
	pthread_mutex_lock(&a->threads_lock);
	a->nthreads--;
	pthread_cond_broadcast(&a->threads_cond);
	pthread_mutex_unlock(&a->threads_lock);
}

static void vm_set_status(struct agent_vm *vm, enum agent_status st, const char *code, const char *reason)
{
	pthread_mutex_lock(&vm->lock);
	set_status(vm, st, code, reason);
	pthread_mutex_unlock(&vm->lock);
}

/* The session (re)attached: the kernel it found, for the API. */
static void vm_attached(struct agent_vm *vm, struct vmw_session *sess, uint64_t *seen)
{
	const struct vmw_kernel_info *ki = vmw_kernel_info(vmw_session_kernel(sess));
	uint64_t n = vmw_session_attaches(sess);

	pthread_mutex_lock(&vm->lock);
	snprintf(vm->kernel_release, sizeof(vm->kernel_release), "%s", ki->release);
	snprintf(vm->kernel_build_id, sizeof(vm->kernel_build_id), "%s", ki->build_id);
	vm->attaches_total += n - *seen;
	pthread_mutex_unlock(&vm->lock);
	*seen = n;
	if (ki->cache_warning)
		vmw_agent_log(VMW_LOG_WARNING, "vm %s: %s", vm->name, ki->cache_warning);
}

/* A frame failed: report why (the API's reason code is the error's kind)
 * and sleep until the session's next attempt, or for good when the QEMU
 * process is gone (the registry drops the VM). */
static void vm_failed(struct agent_vm *vm, struct vmw_session *sess, int r, const struct vmw_error *err,
		      bool was_attached)
{
	bool gone = vmw_session_state(sess) == VMW_SESSION_GONE;

	pthread_mutex_lock(&vm->lock);
	if (was_attached)
		vm->frame_errors_total++;
	set_status(vm, gone ? AGENT_VM_GONE : AGENT_VM_ERROR,
		   vmw_error_kind_name(vmw_error_kind_of(err, r)), vmw_error_msg(err, r));
	pthread_mutex_unlock(&vm->lock);
	vm_wait_until(vm, gone ? vmw_now_ns() + 3600000000000ull : vmw_session_retry_at(sess));
}

/* libvirt gave no QEMU PID: nothing to open; say so until the VM is dropped. */
static void vm_no_pid(struct agent_vm *vm)
{
	struct vmw_session_policy p = backoff_policy(vm->a);
	unsigned failures = 0;

	while (!vm_should_stop(vm)) {
		vm_set_status(vm, AGENT_VM_ERROR, "no_pid", "libvirt gave no QEMU process ID for this domain "
			      "(is the agent allowed to read /run/libvirt/qemu/*.pid?)");
		vm_wait_until(vm, vmw_now_ns() + vmw_session_backoff(&p, ++failures,
			      vmw_sat_sub(agent_wall_ns(), vm->created_wall_ns)));
	}
}

static void *vm_thread(void *arg)
{
	struct agent_vm *vm = arg;
	struct agent *a = vm->a;
	struct vmw_sampler_opts opts = {
		.sz = sizeof(opts),
		.walk_flags = a->cfg.cmdline ? VMW_WALK_CMDLINE : 0,
	};
	struct vmw_session_opts so = {
		.sz = sizeof(so), .no_cache = !a->cfg.kernel_cache, .want_linux = true, .want_summary = true,
		.policy = backoff_policy(a),
		/* The process the VM was added with: another one (or none) is gone. */
		.expect = { .pid = vm->qemu_pid, .start_ticks = vm->qemu_start_ticks },
	};
	struct vmw_session *sess = NULL;
	struct vmw_sampler *s = NULL;
	struct agent_snap *last = NULL;
	uint64_t seq = 0, next = vmw_now_ns(), attaches = 0;

	if (!vm->target[0])
		vm_no_pid(vm);
	else if (vmw_session_new(vm->target, &so, &sess) < 0 || vmw_sampler_new(sess, &opts, &s) < 0)
		vmw_agent_log(VMW_LOG_ERR, "vm %s: out of memory opening the guest", vm->name);
	while (s && !vm_should_stop(vm)) {
		struct vmw_error err = { 0 };
		struct vmw_frame *f = NULL;
		struct agent_snap *snap;
		bool was_attached = vmw_session_state(sess) == VMW_SESSION_ATTACHED;
		int r;

		so.policy = backoff_policy(a);   /* the interval can change at run time */
		vmw_session_set_policy(sess, &so.policy);
		if ((r = vmw_sampler_frame(s, &f, &err)) < 0) {
			vm_failed(vm, sess, r, &err, was_attached);
			continue;
		}
		if (vmw_session_attaches(sess) != attaches) {
			vm_attached(vm, sess, &attaches);
			next = vmw_now_ns();
		}
		if (f->rebooted)
			vmw_agent_log(VMW_LOG_NOTICE, "vm %s: re-attached after a reboot or an interruption "
				      "(now Linux %s)", vm->name, vm->kernel_release);
		if (f->truncated)
			vmw_agent_log(VMW_LOG_DEBUG, "vm %s: process list incomplete: %s", vm->name, f->truncated_why);
		if (!(snap = snap_build(f, last, seq + 1, a->cfg.max_groups))) {
			vmw_frame_free(f);
			vmw_agent_log(VMW_LOG_ERR, "vm %s: out of memory building a snapshot", vm->name);
		} else {
			seq++;
			pthread_mutex_lock(&vm->lock);
			agent_snap_unref(vm->prev);
			vm->prev = vm->snap;
			vm->snap = agent_snap_ref(snap);
			vm->frames_total++;
			push_events(vm, f, a->cfg.max_events);
			agent_hist_record(&vm->hist, snap, a->cfg.max_history_procs);
			set_status(vm, AGENT_VM_OK, NULL, NULL);
			pthread_cond_broadcast(&vm->cond);
			pthread_mutex_unlock(&vm->lock);
			agent_snap_unref(last);
			last = snap;
			vmw_agent_log(VMW_LOG_DEBUG, "vm %s: frame %llu: %zu processes, %.1f ms", vm->name,
				      (unsigned long long)seq, f->nprocs, (double)f->frame_ns / 1e6);
		}
		/* The next tick; after falling behind, start again from now. */
		next += interval_ns(a);
		if (next <= vmw_now_ns())
			next = vmw_now_ns() + interval_ns(a) / 4;
		vm_wait_until(vm, next);
	}
	vmw_sampler_close(s);
	vmw_session_close(sess);
	agent_snap_unref(last);
	thread_done(a);
	agent_vm_unref(vm);
	return NULL;
}

static struct agent_vm *vm_new(struct agent *a)
{
	struct agent_vm *vm = calloc(1, sizeof(*vm));
	pthread_condattr_t ca;
	size_t cap;

	if (!vm)
		return NULL;
	atomic_init(&vm->ref, 1);
	vm->a = a;
	vm->created_wall_ns = agent_wall_ns();
	vm->status_wall_ns = vm->created_wall_ns;
	vm->status = AGENT_VM_STARTING;
	vm->reason_code = NULL;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	cap = (size_t)(a->cfg.history_s / a->cfg.interval_s) + 1;
	if (agent_hist_init(&vm->hist, cap) < 0) {
		agent_vm_unref(vm);
		return NULL;
	}
	return vm;
}

/* Start vm's thread and put it in the registry. Under a->lock. */
static int vm_register(struct agent *a, struct agent_vm *vm)
{
	struct agent_vm **nv = realloc(a->vms, (a->nvms + 1) * sizeof(*nv));
	pthread_attr_t attr;
	int r;

	if (!nv)
		return -ENOMEM;
	a->vms = nv;
	pthread_mutex_lock(&a->threads_lock);
	a->nthreads++;
	pthread_mutex_unlock(&a->threads_lock);
	agent_vm_ref(vm);                   /* the thread's */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&vm->thread, &attr, vm_thread, vm);
	pthread_attr_destroy(&attr);
	if (r) {
		agent_vm_unref(vm);
		thread_done(a);
		return -r;
	}
	a->vms[a->nvms++] = vm;             /* the registry's reference */
	vmw_agent_log(VMW_LOG_INFO, "vm %s: added (%s%s%s)", vm->name, vm->target[0] ? vm->target : "no target",
		      vm->from_libvirt ? ", libvirt domain " : "", vm->from_libvirt ? vm->id : "");
	return 0;
}

/* Take vm out of the registry and stop its thread. Under a->lock. */
static void vm_unregister(struct agent *a, size_t i, const char *why)
{
	struct agent_vm *vm = a->vms[i];

	memmove(&a->vms[i], &a->vms[i + 1], (a->nvms - i - 1) * sizeof(*a->vms));
	a->nvms--;
	pthread_mutex_lock(&vm->lock);
	vm->stop = vm->removed = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vmw_agent_log(VMW_LOG_INFO, "vm %s: dropped (%s)", vm->name, why);
	agent_vm_unref(vm);
}

/* QEMU's own -name guest=X, -uuid U and -smp N (src/mem parses them), for
 * targets given without libvirt. */
static void qemu_identity(pid_t pid, char *name, size_t nsize, char *uuid, size_t usize,
			  unsigned *vcpus)
{
	struct vmw_qemu_names q;

	if (vmw_qemu_names_get(pid, &q) < 0)
		return;
	if (q.name[0])
		snprintf(name, nsize, "%s", q.name);
	if (q.uuid[0])
		snprintf(uuid, usize, "%s", q.uuid);
	if (q.vcpus)
		*vcpus = q.vcpus;
}

int agent_vm_add_target(struct agent *a, const char *spec)
{
	const char *eq = strchr(spec, '='), *target = eq ? eq + 1 : spec;
	struct agent_vm *vm = vm_new(a);
	int r;

	if (!vm)
		return -ENOMEM;
	snprintf(vm->target, sizeof(vm->target), "%s", target);
	if (!strncmp(target, "qemu:", 5)) {
		uint64_t pid;
		if (vmw_parse_u64(target + 5, &pid) < 0 || !pid || pid > INT32_MAX) {
			agent_vm_unref(vm);
			return -EINVAL;
		}
		vm->qemu_pid = (pid_t)pid;
		vm->qemu_start_ticks = proc_start_ticks(vm->qemu_pid);
		vm->dom.qemu_pid = vm->qemu_pid;
		qemu_identity(vm->qemu_pid, vm->dom.name, sizeof(vm->dom.name), vm->dom.uuid,
			      sizeof(vm->dom.uuid), &vm->dom.vcpus);
		if (!vm->qemu_start_ticks)
			vmw_agent_log(VMW_LOG_WARNING, "target %s: no such process", target);
	}
	if (eq)
		snprintf(vm->dom.name, sizeof(vm->dom.name), "%.*s", (int)(eq - spec), spec);
	if (!vm->dom.name[0])
		snprintf(vm->dom.name, sizeof(vm->dom.name), "%s", target);
	snprintf(vm->name, sizeof(vm->name), "%s", vm->dom.name);
	vm->dom.state = VMW_DOM_RUNNING;
	pthread_mutex_lock(&a->lock);
	if (vm->dom.uuid[0])
		snprintf(vm->id, sizeof(vm->id), "%s", vm->dom.uuid);
	else
		snprintf(vm->id, sizeof(vm->id), "target-%llu", (unsigned long long)++a->next_anon_id);
	for (size_t i = 0; i < a->nvms; i++) {
		if (!strcmp(a->vms[i]->name, vm->name) || !strcasecmp(a->vms[i]->id, vm->id)) {
			pthread_mutex_unlock(&a->lock);
			vmw_agent_log(VMW_LOG_WARNING, "target %s: a VM named %s (%s) is already monitored", spec,
				      vm->name, a->vms[i]->target);
			agent_vm_unref(vm);
			return -EEXIST;
		}
	}
	r = vm_register(a, vm);
	pthread_mutex_unlock(&a->lock);
	if (r < 0)
		agent_vm_unref(vm);
	return r;
}

static bool dom_monitorable(const struct vmw_domain *d)
{
	return d->state == VMW_DOM_RUNNING || d->state == VMW_DOM_PAUSED || d->state == VMW_DOM_OTHER;
}

/* Add or update. Under a->lock. */
static void add_domain_locked(struct agent *a, const struct vmw_domain *dom)
{
	struct agent_vm *vm;

	for (size_t i = 0; i < a->nvms; i++) {
		struct agent_vm *o = a->vms[i];
		if (!o->from_libvirt || strcasecmp(o->id, dom->uuid))
			continue;
		if (o->qemu_pid == dom->qemu_pid) {
			pthread_mutex_lock(&o->lock);
			o->dom = *dom;
			pthread_mutex_unlock(&o->lock);
			return;
		}
		vm_unregister(a, i, "its QEMU process changed");
		break;
	}
	if (!dom_monitorable(dom))
		return;
	if (!(vm = vm_new(a)))
		return;
	vm->from_libvirt = true;
	vm->dom = *dom;
	snprintf(vm->id, sizeof(vm->id), "%s", dom->uuid);
	snprintf(vm->name, sizeof(vm->name), "%s", dom->name);
	if (dom->qemu_pid > 0) {
		vm->qemu_pid = dom->qemu_pid;
		vm->qemu_start_ticks = proc_start_ticks(dom->qemu_pid);
		snprintf(vm->target, sizeof(vm->target), "qemu:%d", (int)dom->qemu_pid);
	}
	if (vm_register(a, vm) < 0)
		agent_vm_unref(vm);
}

void agent_vm_add_domain(struct agent *a, const struct vmw_domain *dom)
{
	pthread_mutex_lock(&a->lock);
	add_domain_locked(a, dom);
	pthread_mutex_unlock(&a->lock);
}

void agent_vm_remove_domain(struct agent *a, const char *uuid, const char *why)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->nvms; i++)
		if (a->vms[i]->from_libvirt && !strcasecmp(a->vms[i]->id, uuid)) {
			vm_unregister(a, i, why);
			break;
		}
	pthread_mutex_unlock(&a->lock);
}

struct agent_vm *agent_vm_lookup(struct agent *a, const char *id)
{
	struct agent_vm *vm = NULL;

	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->nvms && !vm; i++)
		if (!strcasecmp(a->vms[i]->id, id))
			vm = agent_vm_ref(a->vms[i]);
	for (size_t i = 0; i < a->nvms && !vm; i++)
		if (!strcmp(a->vms[i]->name, id))
			vm = agent_vm_ref(a->vms[i]);
	pthread_mutex_unlock(&a->lock);
	return vm;
}

size_t agent_vms_get(struct agent *a, struct agent_vm ***ret)
{
	size_t n;

	pthread_mutex_lock(&a->lock);
	*ret = calloc(a->nvms ? a->nvms : 1, sizeof(**ret));
	n = *ret ? a->nvms : 0;
	for (size_t i = 0; i < n; i++)
		(*ret)[i] = agent_vm_ref(a->vms[i]);
	pthread_mutex_unlock(&a->lock);
	return n;
}

void agent_vms_put(struct agent_vm **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		agent_vm_unref(v[i]);
	free(v);
}

void agent_wake_all(struct agent *a)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->nvms; i++) {
		pthread_mutex_lock(&a->vms[i]->lock);
		pthread_cond_broadcast(&a->vms[i]->cond);
		pthread_mutex_unlock(&a->vms[i]->lock);
	}
	pthread_mutex_unlock(&a->lock);
}

/* ---------------------------------------------------------------- libvirt */

static void virt_event(void *opaque, enum vmw_virt_event_type type, const struct vmw_domain *dom)
{
	struct agent *a = opaque;

	pthread_mutex_lock(&a->lock);
	a->virt_events_total++;
	switch (type) {
	case VMW_VIRT_STARTED:
	case VMW_VIRT_CHANGED:
		add_domain_locked(a, dom);
		break;
	case VMW_VIRT_STOPPED:
		for (size_t i = 0; i < a->nvms; i++)
			if (a->vms[i]->from_libvirt && !strcasecmp(a->vms[i]->id, dom->uuid)) {
				vm_unregister(a, i, "domain stopped");
				break;
			}
		break;
	case VMW_VIRT_REBOOTED:
		vmw_agent_log(VMW_LOG_INFO, "vm %s: libvirt reports a reboot", dom->name);
		add_domain_locked(a, dom);
		break;
	}
	pthread_mutex_unlock(&a->lock);
}

void agent_monitor_reconcile(struct agent *a)
{
	struct vmw_error err = { 0 };
	struct vmw_domain *doms = NULL;
	size_t n = 0;
	int r;

	if (a->cfg.connect && !strcmp(a->cfg.connect, "none"))
		return;
	if (!a->virt) {
		struct vmw_virt *v = NULL;
		r = vmw_virt_open(a->cfg.connect, &v, &err);
		if (r < 0) {
			pthread_mutex_lock(&a->lock);
			if (strcmp(a->virt_error, vmw_error_msg(&err, r)))
				vmw_agent_log(VMW_LOG_WARNING, "libvirt %s: %s (retrying every 30s; explicit targets "
					      "are monitored meanwhile)", a->cfg.connect ? a->cfg.connect : "qemu:///system",
					      vmw_error_msg(&err, r));
			snprintf(a->virt_error, sizeof(a->virt_error), "%s", vmw_error_msg(&err, r));
			a->virt_up = false;
			pthread_mutex_unlock(&a->lock);
			return;
		}
		if ((r = vmw_virt_watch(v, virt_event, a, &err)) < 0) {
			vmw_agent_log(VMW_LOG_WARNING, "libvirt: cannot follow domain events: %s (listing every 30s "
				      "instead)", vmw_error_msg(&err, r));
			err.code = 0;
		}
		vmw_agent_log(VMW_LOG_INFO, "libvirt %s: connected", a->cfg.connect ? a->cfg.connect : "qemu:///system");
		a->virt = v;
	}
	r = vmw_virt_list(a->virt, &doms, &n, &err);
	pthread_mutex_lock(&a->lock);
	if (r < 0) {
		if (a->virt_up || strcmp(a->virt_error, vmw_error_msg(&err, r)))
			vmw_agent_log(VMW_LOG_WARNING, "libvirt: listing domains failed: %s", vmw_error_msg(&err, r));
		snprintf(a->virt_error, sizeof(a->virt_error), "%s", vmw_error_msg(&err, r));
		a->virt_up = false;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	a->virt_up = true;
	a->virt_error[0] = '\0';
	for (size_t i = 0; i < n; i++)
		add_domain_locked(a, &doms[i]);
	for (size_t i = a->nvms; i-- > 0;) {
		bool found = false;
		if (!a->vms[i]->from_libvirt)
			continue;
		for (size_t j = 0; j < n && !found; j++)
			found = !strcasecmp(doms[j].uuid, a->vms[i]->id) && dom_monitorable(&doms[j]);
		if (!found)
			vm_unregister(a, i, "no longer running");
	}
	pthread_mutex_unlock(&a->lock);
	free(doms);
}

int agent_monitor_start(struct agent *a)
{
	for (size_t i = 0; i < a->cfg.ntargets; i++) {
		int r = agent_vm_add_target(a, a->cfg.targets[i]);
		if (r < 0 && r != -EEXIST)
			vmw_agent_log(VMW_LOG_ERR, "target %s: %s", a->cfg.targets[i], strerror(-r));
	}
	agent_monitor_reconcile(a);
	return 0;
}

void agent_monitor_stop(struct agent *a)
{
	struct timespec ts;

	pthread_mutex_lock(&a->lock);
	while (a->nvms)
		vm_unregister(a, a->nvms - 1, "shutting down");
	pthread_mutex_unlock(&a->lock);
	if (a->virt) {
		vmw_virt_close(a->virt);
		a->virt = NULL;
	}
	/* Sampler threads finish their frame (a guest read never blocks for long). */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&a->threads_lock);
	while (a->nthreads)
		if (pthread_cond_timedwait(&a->threads_cond, &a->threads_lock, &ts) == ETIMEDOUT) {
			vmw_agent_log(VMW_LOG_WARNING, "%u sampler threads still busy at exit", a->nthreads);
			break;
		}
	pthread_mutex_unlock(&a->threads_lock);
}
