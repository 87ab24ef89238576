/* SPDX-License-Identifier: MIT */
/*
 * monitor.c - one thread per VM, driving that VM's sampler process.
 *
 * A VM comes from libvirt (domain started, or found when listing) or from an
 * explicit target (registry.c). Its thread has the monitor start a sampler
 * process for it (privsep.h), asks it for a frame every interval — the
 * sampler attaches, retrying with back-off while the guest cannot be
 * introspected: still booting, not Linux, no BTF, no permission... — and
 * publishes an immutable snapshot (snapshot.c). A failure of one VM, even a
 * crash or hang of its sampler, never touches the others.
 */
#include "agent/agent_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <time.h>

#define VM_THREAD_STACK (256 * 1024)

/* Under vm->lock. Logs only changes, so a VM retrying does not flood the log. */
static void set_status(struct agent_vm *vm, enum agent_status st, const char *code, const char *reason)
{
	bool changed = vm->status != st || strcmp(vm->reason, reason ? reason : "");

	vm->status = st;
	vm->reason_code = code;
	if (!changed)
		return;
	snprintf(vm->reason, sizeof(vm->reason), "%s", reason ? reason : "");
	vm->status_wall_ns = vmw_wall_ns();
	pthread_cond_broadcast(&vm->cond);
	if (st == AGENT_VM_OK)
		vmw_agent_log(VMW_LOG_NOTICE, "vm %s: monitoring (%s, Linux %s)", vm->name, vm->target,
			      vm->kernel_release);
	else if (st != AGENT_VM_STARTING)
		vmw_agent_log(st == AGENT_VM_GONE ? VMW_LOG_NOTICE : VMW_LOG_WARNING, "vm %s: %s: %s (%s)",
			      vm->name, agent_status_name(st), reason, code);
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

/* The sampler (re)attached: the kernel it found, for the API. */
static void vm_attached(struct agent_vm *vm, const struct agent_sampler *sp, uint64_t *seen)
{
	pthread_mutex_lock(&vm->lock);
	snprintf(vm->kernel_release, sizeof(vm->kernel_release), "%s", sp->release);
	snprintf(vm->kernel_build_id, sizeof(vm->kernel_build_id), "%s", sp->build_id);
	vm->attaches_total += sp->attaches - *seen;
	pthread_mutex_unlock(&vm->lock);
	*seen = sp->attaches;
	if (sp->cache_warning[0])
		vmw_agent_log(VMW_LOG_WARNING, "vm %s: %s", vm->name, sp->cache_warning);
}

/* A frame failed: report why (the API's reason code is the error's kind)
 * and sleep until the session's next attempt, or for good when the QEMU
 * process is gone (the registry drops the VM). */
static void vm_failed(struct agent_vm *vm, const struct agent_sampler *sp, int r, const struct vmw_error *err,
		      bool was_attached)
{
	bool gone = sp->state == VMW_SESSION_GONE;

	pthread_mutex_lock(&vm->lock);
	if (was_attached)
		vm->frame_errors_total++;
	set_status(vm, gone ? AGENT_VM_GONE : AGENT_VM_ERROR,
		   vmw_error_kind_name(vmw_error_kind_of(err, r)), vmw_error_msg(err, r));
	pthread_mutex_unlock(&vm->lock);
	vm_wait_until(vm, gone ? vmw_now_ns() + 3600000000000ull : sp->retry_at_ns);
}

/*
 * The VM's sampler process crashed, hung or sent garbage: say so, and wait
 * before starting another one, 1 s doubling to a minute while it keeps
 * crashing (the count forgets a crash after 5 minutes without one). The
 * last frames stay published; the other VMs never notice.
 */
static void vm_crashed(struct agent_vm *vm, const struct vmw_error *err, unsigned *crashes, uint64_t *last_crash)
{
	char reason[sizeof(vm->reason)];
	uint64_t now = vmw_now_ns(), delay;

	if (*last_crash && now - *last_crash > 300000000000ull)
		*crashes = 0;
	*last_crash = now;
	delay = 1000000000ull << MIN(*crashes, 6u);
	delay = MIN(delay, 60000000000ull);
	(*crashes)++;
	snprintf(reason, sizeof(reason), "%s; a new sampler starts in %gs", err->msg, (double)delay / 1e9);
	pthread_mutex_lock(&vm->lock);
	vm->sampler_crashes_total++;
	set_status(vm, AGENT_VM_CRASHED, vmw_error_kind_name(VMW_ERR_CRASHED), reason);
	pthread_mutex_unlock(&vm->lock);
	vm_wait_until(vm, now + delay);
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
	vm->reboot_gen++;
	agent_reset_clock_start(&vm->held);
	agent_base_unref(vm->prev);
	agent_snap_unref(vm->snap);
	vm->prev = NULL;
	vm->snap = NULL;
	set_status(vm, AGENT_VM_STARTING, "rebooting", "the guest was reset: waiting for its new kernel");
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

/*
 * After a reset, is f still the old kernel's (left in RAM, frozen)? The new
 * kernel shows as a frame the sampler marks rebooted (it re-attached: a new
 * VMCOREINFO, or uptime went back). A frame asked for before the reset was
 * reported may show the old kernel running: dropped (gen). A kernel that did
 * not go down after all shows a clock running in step with the host's
 * (reset.c); then holding stops.
 */
static bool hold_after_reset(struct agent_vm *vm, const struct vmw_frame *f, uint64_t gen)
{
	bool hold, runs = false;

	pthread_mutex_lock(&vm->lock);
	if (vm->rebooting && gen != vm->reboot_gen) {
		pthread_mutex_unlock(&vm->lock);
		return true;
	}
	if (vm->rebooting && !f->rebooted && f->summary_ok)
		runs = agent_reset_clock_runs(&vm->held, f->summary.uptime_ns, f->wall_time_ns);
	if (vm->rebooting && (f->rebooted || runs)) {
		vm->rebooting = false;
		vmw_agent_log(VMW_LOG_NOTICE, "vm %s: frames again after the reset%s", vm->name,
			      f->rebooted ? "" : " (the kernel kept running)");
	}
	hold = vm->rebooting;
	pthread_mutex_unlock(&vm->lock);
	return hold;
}

/* The QEMU process's CPU on the host (its /proc/PID/stat, world-readable)
 * since the last frame: percent of one host CPU, -1 unknown. */
static double host_cpu(struct agent_vm *vm, struct vmw_qemu_cpu_meter *m)
{
	struct vmw_qemu_id id = { .pid = vm->qemu_pid, .start_ticks = vm->qemu_start_ticks };
	double pct;

	return id.pid > 0 && vmw_qemu_cpu_meter_read(m, &id, &pct) == 0 ? pct : -1;
}

/* Publish f (taken) as the VM's latest snapshot. */
static void vm_publish(struct agent_vm *vm, struct vmw_frame *f, struct agent_snap **last, uint64_t *seq,
		       double host_pct, uint64_t gen)
{
	struct agent *a = vm->a;
	struct agent_snap *snap;
	struct agent_base *prev;

	if (hold_after_reset(vm, f, gen)) {
		vmw_frame_free(f);
		return;
	}
	if (!(snap = agent_snap_build(f, *last, *seq + 1, a->cfg.max_groups))) {
		vmw_frame_free(f);
		vmw_agent_log(VMW_LOG_ERR, "vm %s: out of memory building a snapshot", vm->name);
		return;
	}
	(*seq)++;
	/* The compat API's "previous interval": what it needs of the snapshot
	 * published so far (*last, unless a reset dropped it), not all of it. */
	prev = agent_base_build(*last);
	pthread_mutex_lock(&vm->lock);
	agent_base_unref(vm->prev);
	vm->prev = vm->snap == *last ? prev : NULL;
	if (vm->snap != *last)
		agent_base_unref(prev);
	agent_snap_unref(vm->snap);
	vm->snap = agent_snap_ref(snap);
	vm->frames_total++;
	vm->host_cpu_percent = host_pct;
	agent_events_push(vm, f, a->cfg.max_events);
	agent_hist_record(&vm->hist, snap, a->cfg.max_history_procs);
	set_status(vm, AGENT_VM_OK, NULL, NULL);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	agent_snap_unref(*last);
	*last = snap;
	vmw_agent_log(VMW_LOG_DEBUG, "vm %s: frame %llu: %zu processes, %.1f ms", vm->name,
		      (unsigned long long)*seq, f->nprocs, (double)f->frame_ns / 1e6);
}

/* A sampler process for the VM, if none runs. false: none could be started
 * (the status says why; waited already). */
static bool vm_sampler_up(struct agent_vm *vm, struct agent_sampler *sp, uint64_t *attaches)
{
	struct agent *a = vm->a;
	struct vmw_error err = { 0 };
	int r;

	if (sp->pid)
		return true;
	if ((r = agent_sampler_start(sp, vm, a->cfg.cmdline, !a->cfg.kernel_cache, &err)) < 0) {
		enum vmw_error_kind k = vmw_error_kind_of(&err, r);
		struct vmw_session_policy p = backoff_policy(a);
		/* Gone: the registry drops the VM; until then, nothing to retry. */
		vm_set_status(vm, k == VMW_ERR_GONE ? AGENT_VM_GONE : AGENT_VM_ERROR, vmw_error_kind_name(k),
			      vmw_error_msg(&err, r));
		vm_wait_until(vm, vmw_now_ns() + (k == VMW_ERR_GONE ? 3600000000000ull : p.min_ns));
		return false;
	}
	*attaches = 0;
	return true;
}

static void *vm_thread(void *arg)
{
	struct agent_vm *vm = arg;
	struct agent *a = vm->a;
	struct agent_sampler sp = { .fd = -1 };
	struct agent_snap *last = NULL;
	uint64_t seq = 0, next = vmw_now_ns(), attaches = 0, last_crash = 0;
	struct vmw_qemu_cpu_meter meter = { 0 };
	uint64_t timeout = (uint64_t)(a->cfg.sampler_timeout_s * 1e9);
	unsigned crashes = 0;

	if (!vm->target[0])
		vm_no_pid(vm);
	while (vm->target[0] && !vm_should_stop(vm)) {
		struct vmw_error err = { 0 };
		struct vmw_session_policy p = backoff_policy(a);   /* the interval can change at run time */
		struct vmw_frame *f = NULL;
		bool was_attached = sp.pid && sp.state == VMW_SESSION_ATTACHED;
		uint64_t gen;
		int r;

		if (!vm_sampler_up(vm, &sp, &attaches))
			continue;
		pthread_mutex_lock(&vm->lock);
		gen = vm->reboot_gen;
		pthread_mutex_unlock(&vm->lock);
		/* Attaching (kernel discovery without a cache) may take many times
		 * longer than a frame: four deadlines then. */
		if ((r = agent_sampler_frame(&sp, &p, was_attached ? timeout : 4 * timeout, &f, &err)) < 0) {
			if (vmw_error_kind_of(&err, r) == VMW_ERR_CRASHED) {
				vmw_agent_log(VMW_LOG_ERR, "vm %s: %s", vm->name, err.msg);
				vm_crashed(vm, &err, &crashes, &last_crash);
			} else {
				vm_failed(vm, &sp, r, &err, was_attached);
			}
			continue;
		}
		if (sp.attaches != attaches) {
			vm_attached(vm, &sp, &attaches);
			next = vmw_now_ns();
		}
		if (f->rebooted)
			vmw_agent_log(VMW_LOG_NOTICE, "vm %s: re-attached after a reboot or an interruption "
				      "(now Linux %s)", vm->name, vm->kernel_release);
		if (f->truncated)
			vmw_agent_log(VMW_LOG_DEBUG, "vm %s: process list incomplete: %s", vm->name, f->truncated_why);
		vm_publish(vm, f, &last, &seq, host_cpu(vm, &meter), gen);
		/* The next tick; after falling behind, start again from now. */
		next += interval_ns(a);
		if (next <= vmw_now_ns())
			next = vmw_now_ns() + interval_ns(a) / 4;
		vm_wait_until(vm, next);
	}
	agent_sampler_stop(&sp);
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
	/* Not glibc's 8 MiB of address space per VM: a VM thread touches 8-12
	 * KiB of its stack (/proc/PID/smaps of the front at 100 VMs, TLS
	 * included); 256 KiB leaves 20 times that, for ASan's larger frames too. */
	pthread_attr_setstacksize(&attr, MAX((size_t)VM_THREAD_STACK, (size_t)PTHREAD_STACK_MIN));
	r = pthread_create(&vm->thread, &attr, vm_thread, vm);
	pthread_attr_destroy(&attr);
	if (r) {
		agent_vm_unref(vm);
		thread_done(a);
		return -r;
	}
	return 0;
}
