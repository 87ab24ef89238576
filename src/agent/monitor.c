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

static struct agent_snap *snap_build(struct vmw_frame *f, const struct agent_snap *prev,
				     uint64_t seq, unsigned max_groups)
{
	return agent_snap_build(f, prev, seq, max_groups);
}

/* starttime (field 22) of /proc/PID/stat; 0 if the process is gone. */
static uint64_t proc_start_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	if ((n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return 0;
	buf[n] = '\0';
	if (!(p = strrchr(buf, ')')))
		return 0;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &st) != 1)
		return 0;
	return st;
}

/* What the library's error says, as a short code for programs. */
static const char *classify(int r, const char *msg)
{
	if (r == -EACCES || r == -EPERM)
		return "permission";
	if (r == -ESRCH)
		return "gone";
	if (strstr(msg, "no Linux kernel found") || strstr(msg, "VMCOREINFO"))
		return "not_linux";
	if (strstr(msg, "no BTF") || strstr(msg, "BTF"))
		return "no_btf";
	if (r == -ENOTSUP || r == -ENOEXEC)
		return "unsupported";
	return "error";
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

/* Retry delay after `failures` consecutive failures: every interval while
 * the VM is young (a booting guest shows its kernel within seconds), then
 * doubling up to a minute. */
static uint64_t backoff_ns(struct agent_vm *vm, unsigned failures)
{
	uint64_t iv = interval_ns(vm->a), d = iv, age = vmw_sat_sub(agent_wall_ns(), vm->created_wall_ns);
	if (age < 120000000000ull)
		return iv;
	for (unsigned i = 1; i < failures && d < 60000000000ull; i++)
		d *= 2;
	return MIN(d, MAX(60000000000ull, iv));
}

static void thread_done(struct agent *a)
{
	pthread_mutex_lock(&a->threads_lock);
	a->nthreads--;
	pthread_cond_broadcast(&a->threads_cond);
	pthread_mutex_unlock(&a->threads_lock);
}

static void *vm_thread(void *arg)
{
	struct agent_vm *vm = arg;
	struct agent *a = vm->a;
	struct vmw_sampler_opts opts = {
		.sz = sizeof(opts),
		.walk_flags = a->cfg.cmdline ? VMW_WALK_CMDLINE : 0,
		.no_cache = !a->cfg.kernel_cache,
	};
	struct vmw_sampler *s = NULL;
	struct agent_snap *last = NULL;
	uint64_t seq = 0, next = vmw_now_ns();
	unsigned failures = 0;
	char msg[600];

	while (!vm_should_stop(vm)) {
		struct vmw_error err = { 0 };
		struct vmw_frame *f = NULL;
		struct agent_snap *snap;
		int r;

		if (vm->qemu_pid && (!vm->qemu_start_ticks ||
				     proc_start_ticks(vm->qemu_pid) != vm->qemu_start_ticks)) {
			snprintf(msg, sizeof(msg), "QEMU process %d %s", (int)vm->qemu_pid,
				 vm->qemu_start_ticks ? "exited" : "does not exist");
			pthread_mutex_lock(&vm->lock);
			set_status(vm, AGENT_VM_GONE, "gone", msg);
			pthread_mutex_unlock(&vm->lock);
			vmw_sampler_close(s);
			s = NULL;
			vm_wait_until(vm, vmw_now_ns() + 3600000000000ull);
			continue;
		}
		if (!vm->target[0]) {
			pthread_mutex_lock(&vm->lock);
			set_status(vm, AGENT_VM_ERROR, "no_pid", "libvirt gave no QEMU process ID for this domain "
				   "(is the agent allowed to read /run/libvirt/qemu/*.pid?)");
			pthread_mutex_unlock(&vm->lock);
			vm_wait_until(vm, vmw_now_ns() + backoff_ns(vm, ++failures));
			continue;
		}
		if (!s) {
			r = vmw_sampler_open(vm->target, &opts, &s, &err);
			if (r < 0) {
				const char *m = vmw_error_msg(&err, r);
				pthread_mutex_lock(&vm->lock);
				set_status(vm, AGENT_VM_ERROR, classify(r, m), m);
				pthread_mutex_unlock(&vm->lock);
				s = NULL;
				vm_wait_until(vm, vmw_now_ns() + backoff_ns(vm, ++failures));
				continue;
			}
			const struct vmw_kernel_info *ki = vmw_kernel_info(vmw_sampler_kernel(s));
			pthread_mutex_lock(&vm->lock);
			snprintf(vm->kernel_release, sizeof(vm->kernel_release), "%s", ki->release);
			snprintf(vm->kernel_build_id, sizeof(vm->kernel_build_id), "%s", ki->build_id);
			vm->attaches_total++;
			pthread_mutex_unlock(&vm->lock);
			next = vmw_now_ns();
		}
		r = vmw_sampler_frame(s, &f, &err);
		if (r < 0) {
			const char *m = vmw_error_msg(&err, r);
			pthread_mutex_lock(&vm->lock);
			vm->frame_errors_total++;
			set_status(vm, AGENT_VM_ERROR, classify(r, m), m);
			pthread_mutex_unlock(&vm->lock);
			vmw_sampler_close(s);
			s = NULL;
			vm_wait_until(vm, vmw_now_ns() + backoff_ns(vm, ++failures));
			continue;
		}
		failures = 0;
		if (f->rebooted) {
			const struct vmw_kernel_info *ki = vmw_kernel_info(vmw_sampler_kernel(s));
			vmw_agent_log(VMW_LOG_NOTICE, "vm %s: guest rebooted (now Linux %s)", vm->name, ki->release);
			pthread_mutex_lock(&vm->lock);
			snprintf(vm->kernel_release, sizeof(vm->kernel_release), "%s", ki->release);
			snprintf(vm->kernel_build_id, sizeof(vm->kernel_build_id), "%s", ki->build_id);
			pthread_mutex_unlock(&vm->lock);
		}
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
	agent_snap_unref(last);
	thread_done(a);
	agent_vm_unref(vm);
	return NULL;
}

/* QEMU's own -name guest=X and -uuid U, for targets given without libvirt. */
static void qemu_identity(pid_t pid, char *name, size_t nsize, char *uuid, size_t usize,
			  unsigned *vcpus)
{
	char path[64], buf[16384];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return;
	buf[n] = '\0';
	for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
		char *v = a + strlen(a) + 1;
		if (v >= buf + n)
			break;
		if (!strcmp(a, "-name")) {
			char *g = strstr(v, "guest=");
			const char *s = g ? g + 6 : v;
			snprintf(name, nsize, "%.*s", (int)strcspn(s, ","), s);
		} else if (!strcmp(a, "-uuid") && strlen(v) == 36 && strspn(v, "0123456789abcdefABCDEF-") == 36) {
			snprintf(uuid, usize, "%s", v);
		} else if (!strcmp(a, "-smp")) {
			const char *c = strstr(v, "cpus=");
			*vcpus = (unsigned)strtoul(c ? c + 5 : v, NULL, 10);
		}
	}
}

void agent_vm_identify(struct agent_vm *vm, bool from_cmdline)
{
	vm->qemu_start_ticks = proc_start_ticks(vm->qemu_pid);
	if (from_cmdline)
		qemu_identity(vm->qemu_pid, vm->dom.name, sizeof(vm->dom.name), vm->dom.uuid,
			      sizeof(vm->dom.uuid), &vm->dom.vcpus);
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
