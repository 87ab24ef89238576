/* SPDX-License-Identifier: MIT */
/* agent.c - starting, running and stopping the agent; signals; reload. */
#include "agent/agent_int.h"
#include "version.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static char **strv_dup(char **v, size_t n)
{
	char **d = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; d && i < n; i++)
		if (!(d[i] = strdup(v[i]))) {
			for (size_t j = 0; j < i; j++)
				free(d[j]);
			free(d);
			return NULL;
		}
	return d;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static bool str_eq(const char *x, const char *y)
{
	return (!x && !y) || (x && y && !strcmp(x, y));
}

static const char *target_of(const char *spec)
{
	const char *eq = strchr(spec, '=');
	return eq ? eq + 1 : spec;
}

/* SIGHUP: apply what can change while running, say what cannot. */
static void reload(struct agent *a, vmw_agent_reload_fn fn, void *opaque)
{
	struct vmw_agent_config nc;
	struct vmw_error err = { 0 };
	char **tokens;
	int r;

	if (!fn) {
		vmw_agent_log(VMW_LOG_NOTICE, "SIGHUP: no configuration to reload");
		return;
	}
	agent_sd_notify("RELOADING=1");
	/* fn initializes *ret and frees it itself when it fails. */
	if ((r = fn(opaque, &nc, &err)) < 0) {
		vmw_agent_log(VMW_LOG_ERR, "reload failed, keeping the running configuration: %s",
			      vmw_error_msg(&err, r));
		agent_sd_notify("READY=1");
		return;
	}
	if ((r = vmw_agent_config_check(&nc, &err)) < 0) {
		vmw_agent_log(VMW_LOG_ERR, "reload failed, keeping the running configuration: %s",
			      vmw_error_msg(&err, r));
		vmw_agent_config_free(&nc);
		agent_sd_notify("READY=1");
		return;
	}
	if (!(tokens = strv_dup(nc.tokens, nc.ntokens))) {
		vmw_agent_log(VMW_LOG_ERR, "reload failed: out of memory");
		vmw_agent_config_free(&nc);
		agent_sd_notify("READY=1");
		return;
	}
	pthread_rwlock_wrlock(&a->live.lock);
	strv_free(a->live.tokens, a->live.ntokens);
	a->live.tokens = tokens;
	a->live.ntokens = nc.ntokens;
	pthread_rwlock_unlock(&a->live.lock);
	atomic_store(&a->live.interval_ns, (uint64_t)(nc.interval_s * 1e9));
	atomic_store(&a->live.top_n, nc.top_n);
	vmw_agent_log_set_level(nc.log_level);
	agent_wake_all(a);

	/* Targets: add the new ones, drop the ones no longer listed. */
	for (size_t i = 0; i < nc.ntargets; i++) {
		bool have = false;
		for (size_t j = 0; j < a->cfg.ntargets && !have; j++)
			have = !strcmp(target_of(nc.targets[i]), target_of(a->cfg.targets[j]));
		if (!have)
			agent_vm_add_target(a, nc.targets[i]);
	}
	{
		struct agent_vm **vms;
		size_t n = agent_vms_get(a, &vms);
		for (size_t i = 0; i < n; i++) {
			bool keep = vms[i]->from_libvirt;
			for (size_t j = 0; j < nc.ntargets && !keep; j++)
				keep = !strcmp(vms[i]->target, target_of(nc.targets[j]));
			if (!keep) {
				pthread_mutex_lock(&a->lock);
				for (size_t k = 0; k < a->nvms; k++)
					if (a->vms[k] == vms[i]) {
						memmove(&a->vms[k], &a->vms[k + 1], (a->nvms - k - 1) * sizeof(*a->vms));
						a->nvms--;
						pthread_mutex_lock(&vms[i]->lock);
						vms[i]->stop = vms[i]->removed = true;
						pthread_cond_broadcast(&vms[i]->cond);
						pthread_mutex_unlock(&vms[i]->lock);
						vmw_agent_log(VMW_LOG_INFO, "vm %s: dropped (target removed from the "
							      "configuration)", vms[i]->name);
						agent_vm_unref(vms[i]);
						break;
					}
				pthread_mutex_unlock(&a->lock);
			}
		}
		agent_vms_put(vms, n);
	}
	/* The running agent keeps its original target list for the next comparison. */
	strv_free(a->cfg.targets, a->cfg.ntargets);
	a->cfg.targets = nc.targets;
	a->cfg.ntargets = nc.ntargets;
	nc.targets = NULL;
	nc.ntargets = 0;

	if (!str_eq(nc.listen, a->cfg.listen) || !str_eq(nc.tls_cert, a->cfg.tls_cert) ||
	    !str_eq(nc.tls_key, a->cfg.tls_key) || !str_eq(nc.connect, a->cfg.connect) ||
	    nc.history_s != a->cfg.history_s || nc.cmdline != a->cfg.cmdline ||
	    nc.kernel_cache != a->cfg.kernel_cache || nc.max_events != a->cfg.max_events ||
	    nc.max_groups != a->cfg.max_groups || nc.max_history_procs != a->cfg.max_history_procs ||
	    nc.max_connections != a->cfg.max_connections || nc.max_clients != a->cfg.max_clients)
		vmw_agent_log(VMW_LOG_WARNING, "reload: listen, tls_*, connect, history, cmdline, kernel_cache "
			      "and max_* changes take effect after a restart");
	vmw_agent_log(VMW_LOG_NOTICE, "configuration reloaded: interval %gs, top_n %u, %zu token(s), %zu target(s)",
		      nc.interval_s, nc.top_n, nc.ntokens, a->cfg.ntargets);
	vmw_agent_config_free(&nc);
	agent_sd_notify("READY=1");
}

int vmw_agent_run(const struct vmw_agent_config *cfg, vmw_agent_reload_fn reload_fn, void *opaque)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct vmw_error err = { 0 };
	sigset_t set;
	uint64_t watchdog_ns = 0, last_watchdog = 0, last_reconcile, last_expire;
	const char *wd = getenv("WATCHDOG_USEC");
	pthread_condattr_t ca;
	int r, rc = 0;

	if (!a) {
		vmw_agent_log(VMW_LOG_ERR, "out of memory");
		return 1;
	}
	vmw_agent_log_set_level(cfg->log_level);
	a->cfg = *cfg;
	a->cfg.targets = strv_dup(cfg->targets, cfg->ntargets);
	a->start_wall_ns = vmw_wall_ns();
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->threads_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_REALTIME);
	pthread_cond_init(&a->threads_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_rwlock_init(&a->live.lock, NULL);
	a->live.tokens = strv_dup(cfg->tokens, cfg->ntokens);
	a->live.ntokens = cfg->ntokens;
	atomic_init(&a->live.interval_ns, (uint64_t)(cfg->interval_s * 1e9));
	atomic_init(&a->live.top_n, cfg->top_n);
	atomic_init(&a->stopping, false);
	if (!a->cfg.targets || !a->live.tokens || agent_compat_init(a) < 0) {
		vmw_agent_log(VMW_LOG_ERR, "out of memory");
		rc = 1;
		goto out;
	}

	/* Signals are taken synchronously by this thread; every other thread
	 * (samplers, HTTP, libvirt) inherits the blocked mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* VMs first: once the port answers, the VM list is complete. */
	agent_monitor_start(a);
	if ((r = agent_http_start(a, &err)) < 0) {
		vmw_agent_log(VMW_LOG_ERR, "%s", vmw_error_msg(&err, r));
		atomic_store(&a->stopping, true);
		agent_monitor_stop(a);
		rc = 1;
		goto out;
	}
	last_reconcile = last_expire = vmw_now_ns();
	if (wd && *wd) {
		uint64_t us = strtoull(wd, NULL, 10);
		watchdog_ns = us * 1000 / 2;
	}
	{
		char status[128];
		snprintf(status, sizeof(status), "READY=1\nSTATUS=serving %s, sampling every %gs", cfg->listen,
			 cfg->interval_s);
		agent_sd_notify(status);
	}
	vmw_agent_log(VMW_LOG_INFO, "agent started (vmwatch %s): interval %gs, history %gs, top_n %u, %s",
		      VMWATCH_VERSION, cfg->interval_s, cfg->history_s, cfg->top_n,
		      cfg->connect && !strcmp(cfg->connect, "none") ? "libvirt off" : "libvirt on");

	for (;;) {
		struct timespec to = { .tv_sec = 1 };
		siginfo_t si;
		int sig = sigtimedwait(&set, &si, &to);
		uint64_t now = vmw_now_ns();

		if (sig == SIGTERM || sig == SIGINT) {
			vmw_agent_log(VMW_LOG_NOTICE, "%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		}
		if (sig == SIGHUP) {
			vmw_agent_log(VMW_LOG_NOTICE, "SIGHUP: reloading the configuration");
			reload(a, reload_fn, opaque);
		}
		if (watchdog_ns && now - last_watchdog >= watchdog_ns) {
			agent_sd_notify("WATCHDOG=1");
			last_watchdog = now;
		}
		if (now - last_reconcile >= 30000000000ull) {
			agent_monitor_reconcile(a);
			last_reconcile = now;
		}
		if (now - last_expire >= 10000000000ull) {
			agent_compat_expire(a);
			last_expire = now;
		}
	}
	agent_sd_notify("STOPPING=1");
	atomic_store(&a->stopping, true);
	agent_wake_all(a);
	agent_http_stop(a);
	agent_monitor_stop(a);
	vmw_agent_log(VMW_LOG_INFO, "stopped");
out:
	agent_http_stop(a);
	agent_compat_free(a);
	strv_free(a->live.tokens, a->live.ntokens);
	strv_free(a->cfg.targets, a->cfg.ntargets);
	free(a->vms);
	pthread_rwlock_destroy(&a->live.lock);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->threads_lock);
	pthread_cond_destroy(&a->threads_cond);
	free(a);
	return rc;
}
