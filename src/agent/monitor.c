/* SPDX-License-Identifier: MIT */
/*
 * monitor.c - one sampler thread per VM.
 *
 * A VM comes from libvirt (domain started, or found when listing) or from an
 * explicit target (registry.c). Its thread attaches (retrying with back-off
 * while the guest cannot be introspected: still booting, not Linux, no BTF,
 * no permission...), takes a frame every interval, and publishes an
 * immutable snapshot (snapshot.c). A failure of one VM never touches the others.
 */
#include "agent/agent_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Under vm->lock. Logs only changes, so a VM retrying does not flood the log. */
static void set_status(struct agent_vm *vm, enum agent_status st, const char *code, const char *reason)
{
	bool changed = vm->status != st || strcmp(vm->reason, reason ? reason : "");

	vm->status = st;
	vm->reason_code = code;
	snprintf(vm->reason, sizeof(vm->reason), "%s", reason ? reason : "");
	if (!changed)
		return;
	vm->status_wall_ns = vmw_wall_ns();
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
			      vmw_sat_sub(vmw_wall_ns(), vm->created_wall_ns)));
	}
}

void agent_vm_rebooting(struct agent_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->rebooting = true;
	vm->reboot_uptime_ns = 0;
	agent_snap_unref(vm->prev);
	agent_snap_unref(vm->snap);
	vm->prev = vm->snap = NULL;
	set_status(vm, AGENT_VM_STARTING, "rebooting", "the guest was reset: waiting for its new kernel");
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

/*
 * After a reset, is f still the old kernel's (left in RAM, clock frozen)? The
 * new kernel shows as a frame the sampler marks rebooted (uptime went back,
 * or VMCOREINFO changed). A clock that runs on for 2 s past the first held
 * frame is a kernel that did not go down after all: stop holding.
 */
static bool hold_after_reset(struct agent_vm *vm, const struct vmw_frame *f)
{
	bool hold;

	pthread_mutex_lock(&vm->lock);
	if (vm->rebooting && !f->rebooted && f->summary_ok && !vm->reboot_uptime_ns)
		vm->reboot_uptime_ns = f->summary.uptime_ns ? f->summary.uptime_ns : 1;
	if (vm->rebooting && (f->rebooted || (f->summary_ok && vm->reboot_uptime_ns &&
					      f->summary.uptime_ns > vm->reboot_uptime_ns + 2000000000ull))) {
		vm->rebooting = false;
		vmw_agent_log(VMW_LOG_NOTICE, "vm %s: frames again after the reset", vm->name);
	}
	hold = vm->rebooting;
	pthread_mutex_unlock(&vm->lock);
	return hold;
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
		if (hold_after_reset(vm, f)) {
			vmw_frame_free(f);
		} else if (!(snap = agent_snap_build(f, last, seq + 1, a->cfg.max_groups))) {
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

/* The QEMU's start time (its identity with the pid) and, for targets given
 * without libvirt, its own -name guest=X, -uuid U and -smp N (src/mem parses
 * /proc/PID/stat and the command line). */
void agent_vm_identify(struct agent_vm *vm, bool from_cmdline)
{
	struct vmw_qemu_id id;
	struct vmw_qemu_names q;

	vm->qemu_start_ticks = vmw_qemu_id_get(vm->qemu_pid, &id) == 0 ? id.start_ticks : 0;
	if (!from_cmdline || vmw_qemu_names_get(vm->qemu_pid, &q) < 0)
		return;
	if (q.name[0])
		snprintf(vm->dom.name, sizeof(vm->dom.name), "%s", q.name);
	if (q.uuid[0])
		snprintf(vm->dom.uuid, sizeof(vm->dom.uuid), "%s", q.uuid);
	if (q.vcpus)
		vm->dom.vcpus = q.vcpus;
}

int agent_vm_thread_start(struct agent_vm *vm)
{
	struct agent *a = vm->a;
	pthread_attr_t attr;
	int r;

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
	return 0;
}
