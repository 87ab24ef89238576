/* SPDX-License-Identifier: MIT */
/*
 * main.c - vmwatch-controller: flags, the configuration file, signals
 * (SIGTERM/SIGINT stop; SIGHUP re-reads the agent list), log lines.
 */
#include "controller/ctl.h"
#include "version.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>


static void usage(FILE *f)
{
	fprintf(f, "Usage: vmwatch-controller [--config FILE] [--check] [--version]\n"
		"The tenant API of a cloud of vmwatch agents (OpenStack Keystone tokens, Nova projects).\n"
		"  -c, --config FILE   configuration (default /etc/vmwatch/controller.conf)\n"
		"      --check         read the configuration and the policy, then exit\n"
		"See vmwatch-controller(8) and docs/API.md.\n");
}

static int load(const char *path, struct ctl_config *cfg, struct vmw_error *err)
{
	ctl_config_init(cfg);
	if (ctl_config_load(cfg, path, err) < 0 || ctl_config_check(cfg, err) < 0) {
		ctl_config_free(cfg);
		return -EINVAL;
	}
	return 0;
}

/* SIGHUP: a new agent list (other keys need a restart). */
static void reload(struct ctl *c, const char *path)
{
	struct ctl_config n;
	struct vmw_error err = { 0 };

	if (load(path, &n, &err) < 0) {
		ctl_log(CTL_LOG_ERR, "reload: %s (keeping the running configuration)", err.msg);
		return;
	}
	if (ctl_index_set_agents(c->index, n.agents, n.nagents) == 0) {
		ctl_log(CTL_LOG_NOTICE, "reload: %zu agents", n.nagents);
		ctl_index_refresh(c->index, true);
	}
	ctl_log_set_level(n.log_level);
	ctl_config_free(&n);
}

static int run(struct ctl *c, const char *path)
{
	struct vmw_error err = { 0 };
	sigset_t set;
	int sig;

	c->start_wall_ns = vmw_wall_ns();
	if (!(c->policy = ctl_policy_new(c->cfg.policy_file, &err)) ||
	    !(c->tokens = ctl_tokcache_new(c->cfg.token_cache_size, c->cfg.token_cache_ttl_s,
					   c->cfg.negative_cache_ttl_s)) ||
	    !(c->ks = ctl_keystone_new(&c->cfg)) || !(c->agents = ctl_agentcli_new(&c->cfg)) ||
	    !(c->index = ctl_index_new(&c->cfg))) {
		ctl_log(CTL_LOG_ERR, "%s", err.msg[0] ? err.msg : "out of memory");
		return 1;
	}
	ctl_index_start(c->index);
	if (ctl_http_start(c, &err) < 0) {
		ctl_log(CTL_LOG_ERR, "%s", err.msg);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		reload(c, path);
	}
	ctl_log(CTL_LOG_NOTICE, "stopping (signal %d)", sig);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "check", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	const char *path = "/etc/vmwatch/controller.conf";
	struct ctl c = { 0 };
	struct vmw_error err = { 0 };
	bool check = false;
	sigset_t set;
	int o, rc;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'C': check = true; break;
		case 'V': printf("vmwatch-controller %s\n", VMWATCH_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (load(path, &c.cfg, &err) < 0) {
		fprintf(stderr, "vmwatch-controller: %s\n", err.msg);
		return 2;
	}
	ctl_log_set_level(c.cfg.log_level);
	if (check) {
		struct ctl_policy *p = ctl_policy_new(c.cfg.policy_file, &err);
		rc = p ? 0 : 2;
		if (!p)
			fprintf(stderr, "vmwatch-controller: %s\n", err.msg);
		ctl_policy_free(p);
		ctl_config_free(&c.cfg);
		return rc;
	}
	/* Every thread inherits the mask; the main thread takes the signals with sigwait. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);   /* a tenant that leaves an event stream: EPIPE in the relay */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = run(&c, path);
	ctl_http_stop(&c);
	ctl_index_free(c.index);
	ctl_agentcli_free(c.agents);
	ctl_keystone_free(c.ks);
	ctl_tokcache_free(c.tokens);
	ctl_policy_free(c.policy);
	ctl_config_free(&c.cfg);
	curl_global_cleanup();
	return rc;
}
