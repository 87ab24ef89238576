/* SPDX-License-Identifier: MIT */
/*
 * registry.c - the agent's VMs: explicit targets and libvirt domains (listed,
 * then followed through domain events), added and dropped under a->lock.
 * Each VM's sampler thread lives in monitor.c.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
	agent_base_unref(vm->prev);
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
	case AGENT_VM_CRASHED: return "crashed";
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

static struct agent_vm *vm_new(struct agent *a)
{
	struct agent_vm *vm = calloc(1, sizeof(*vm));
	pthread_condattr_t ca;
	size_t cap;

	if (!vm)
		return NULL;
	atomic_init(&vm->ref, 1);
	vm->a = a;
	vm->created_wall_ns = vmw_wall_ns();
	vm->status_wall_ns = vm->created_wall_ns;
	vm->status = AGENT_VM_STARTING;
	vm->reason_code = NULL;
	vm->host_cpu_percent = -1;
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
	int r;

	if (!nv)
		return -ENOMEM;
	a->vms = nv;
	if ((r = agent_vm_thread_start(vm)) < 0)
		return r;
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
		vm->dom.qemu_pid = vm->qemu_pid;
		agent_vm_identify(vm, true);
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
		agent_vm_identify(vm, false);
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
		for (size_t i = 0; i < a->nvms; i++)
			if (a->vms[i]->from_libvirt && !strcasecmp(a->vms[i]->id, dom->uuid))
				agent_vm_rebooting(a->vms[i]);
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
