/* SPDX-License-Identifier: MIT */
/*
 * vmwatch-agent - the host daemon: samples every running guest and serves
 * the JSON API, SSE, /metrics, the compatibility API and a web page.
 * Every configuration key (src/agent/config.c) is also a flag; flags
 * override the file. See vmwatch-agent(8) and docs/API.md.
 * Its own executable (libmicrohttpd and GnuTLS stay out of vmwatch);
 * `vmwatch agent ARGS` execs it (src/cli/cmd_agent.c).
 */
#include "agent/agent.h"
#include "agent/privsep.h"
#include "version.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <string.h>
#include <sys/prctl.h>

/* Exit status of bad usage or configuration (as vmwatch's commands). */
#define EXIT_USAGE 2
/* malloc arenas of the front (see main). */
#define FRONT_ARENAS 1
#define FRONT_MMAP_THRESHOLD (256 * 1024)

enum { OPT_CONFIG = 1, OPT_CHECK, OPT_HELP, OPT_KEY = 1000 };

struct args {
	int argc;
	char **argv;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: vmwatch-agent [--config FILE] [OPTIONS]\n"
		   "   or: vmwatch agent [--config FILE] [OPTIONS]\n\n"
		   "Sample every running guest of this host and serve what it sees over HTTP:\n"
		   "JSON API (/v1/vms...), Server-Sent Events, Prometheus /metrics, the VM\n"
		   "Process Monitor client API (/v1/instances/...) and a web page at /.\n\n"
		   "  -c, --config FILE       configuration file (default " VMW_AGENT_CONFIG_PATH
		   " if it exists)\n"
		   "      --check-config      print the effective configuration and exit\n"
		   "  -h, --help              this help\n"
		   "      --version           print the version and exit\n\n"
		   "Every configuration key is also a flag (flags override the file):\n");
	for (size_t i = 0; i < vmw_agent_nkeys; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s", vmw_agent_keys[i].name);
		for (char *p = name; *p; p++)
			if (*p == '_')
				*p = '-';
		fprintf(f, "      --%s %s\n          %s\n", name, vmw_agent_keys[i].arg, vmw_agent_keys[i].help);
	}
	fprintf(f, "\nSignals: SIGTERM/SIGINT stop; SIGHUP reloads the file (and re-applies the flags).\n"
		   "Logs go to stderr, one line per event, with <N> syslog priority prefixes.\n");
}

/* Tokens from the environment (VMWATCH_AGENT_TOKEN: one or more, separated by
 * white space), e.g. from a systemd EnvironmentFile only root can read. */
static int add_env_tokens(struct vmw_agent_config *c, struct vmw_error *err)
{
	const char *env = getenv("VMWATCH_AGENT_TOKEN");
	_cleanup_free_ char *copy = env ? strdup(env) : NULL;
	char *save = NULL;
	int r;

	if (env && !copy)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	for (char *t = copy ? strtok_r(copy, " \t\n", &save) : NULL; t; t = strtok_r(NULL, " \t\n", &save))
		if ((r = vmw_agent_config_set(c, "token", t, err)) < 0)
			return vmw_error_prefix(err, "VMWATCH_AGENT_TOKEN: ");
	return 0;
}

/*
 * A token given as --token is visible to every user in /proc/PID/cmdline.
 * Warn, and overwrite it in our argv (which is what /proc shows) after
 * keeping a private copy of the arguments for SIGHUP reloads.
 */
static void strv_freep(char ***v)
{
	for (char **p = *v; p && *p; p++)
		free(*p);
	free(*v);
}

static int hide_token_args(struct args *args, char ***ret_copy)
{
	char **copy = calloc((size_t)args->argc + 1, sizeof(char *));
	bool warned = false;

	if (!(*ret_copy = copy))
		return -ENOMEM;
	for (int i = 0; i < args->argc; i++)
		if (!(copy[i] = strdup(args->argv[i])))
			return -ENOMEM;
	for (int i = 1; i < args->argc; i++) {
		char *v = NULL, *a = args->argv[i];
		if (!strcmp(a, "--token") && i + 1 < args->argc)
			v = args->argv[++i];
		else if (!strncmp(a, "--token=", 8))
			v = a + 8;
		if (!v)
			continue;
		memset(v, 'x', strlen(v));
		if (!warned)
			vmw_agent_log(VMW_LOG_WARNING, "WARNING: --token on the command line can be read by every "
				      "user of this host until it is hidden; use token_file (mode 600) or "
				      "VMWATCH_AGENT_TOKEN instead");
		warned = true;
	}
	args->argv = copy;
	return 0;
}

/* The configuration file build() read last (NULL: the default). */
static const char *config_used;

/* Build the configuration from the file and the flags. Returns 0, or the exit code. */
static int build(const struct args *args, struct vmw_agent_config *c, bool *check, struct vmw_error *err)
{
	struct option *opts = calloc(vmw_agent_nkeys + 4, sizeof(*opts));
	char (*names)[64] = calloc(vmw_agent_nkeys, sizeof(*names));
	const char *config = NULL;
	bool explicit = false;
	int ch, r, rc = 0;

	vmw_agent_config_init(c);
	if (!opts || !names || !c->listen) {
		free(opts);
		free(names);
		vmw_error_set(err, -ENOMEM, "out of memory");
		return 1;
	}
	for (size_t i = 0; i < vmw_agent_nkeys; i++) {
		snprintf(names[i], sizeof(names[i]), "%s", vmw_agent_keys[i].name);
		for (char *p = names[i]; *p; p++)
			if (*p == '_')
				*p = '-';
		opts[i] = (struct option){ names[i], required_argument, NULL, OPT_KEY + (int)i };
	}
	opts[vmw_agent_nkeys] = (struct option){ "config", required_argument, NULL, OPT_CONFIG };
	opts[vmw_agent_nkeys + 1] = (struct option){ "check-config", no_argument, NULL, OPT_CHECK };
	opts[vmw_agent_nkeys + 2] = (struct option){ "help", no_argument, NULL, OPT_HELP };

	/* First pass: only --config, so that the file comes before the flags. */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(args->argc, args->argv, "c:h", opts, NULL)) != -1)
		if (ch == OPT_CONFIG || ch == 'c') {
			config = optarg;
			explicit = true;
		}
	config_used = config;
	if (!config)
		config = VMW_AGENT_CONFIG_PATH;
	r = vmw_agent_config_load(c, config, err);
	if (r == -ENOENT && !explicit) {
		err->code = 0;
	} else if (r < 0) {
		rc = EXIT_USAGE;
		goto out;
	}

	optind = 0;
	opterr = 1;
	while ((ch = getopt_long(args->argc, args->argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_CONFIG:
		case 'c':
			break;
		case OPT_CHECK:
			*check = true;
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			rc = -1;
			goto out;
		default:
			if (ch >= OPT_KEY && ch < OPT_KEY + (int)vmw_agent_nkeys) {
				if ((r = vmw_agent_config_set(c, vmw_agent_keys[ch - OPT_KEY].name, optarg, err)) < 0) {
					vmw_error_prefix(err, "--%s: ", names[ch - OPT_KEY]);
					rc = EXIT_USAGE;
					goto out;
				}
				break;
			}
			vmw_error_set(err, -EINVAL, "bad usage (try 'vmwatch-agent --help')");
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (optind < args->argc) {
		vmw_error_set(err, -EINVAL, "unexpected argument '%s' (the agent finds VMs through libvirt; "
			      "use --target for others)", args->argv[optind]);
		rc = EXIT_USAGE;
		goto out;
	}
	if ((r = add_env_tokens(c, err)) < 0 || (r = vmw_agent_config_check(c, err)) < 0)
		rc = EXIT_USAGE;
out:
	free(opts);
	free(names);
	if (rc)
		vmw_agent_config_free(c);
	return rc;
}

static int reload(void *opaque, struct vmw_agent_config *ret, struct vmw_error *err)
{
	bool check = false;
	int rc = build(opaque, ret, &check, err);
	if (rc == -1)
		return vmw_error_set(err, -EINVAL, "--help on the command line");
	return rc ? (err->code ? err->code : -EINVAL) : 0;
}

int main(int argc, char **argv)
{
	struct args args = { argc, argv };
	struct vmw_agent_config c;
	struct vmw_error err = { 0 };
	bool check = false, front = argc > 1 && !strcmp(argv[1], PS_ARG_FRONT);
	_cleanup_(strv_freep) char **argv_copy = NULL;
	int rc;

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("vmwatch-agent %s\n", VMWATCH_VERSION);
		return 0;
	}
	/* The processes the agent runs itself (privsep.h). */
	if (argc > 1 && !strcmp(argv[1], PS_ARG_SAMPLER))
		return ps_sampler_main(argc - 1, argv + 1);
	if (front) {
		prctl(PR_SET_NAME, "vmwatch-front", 0, 0, 0);
		/* One thread per VM: glibc would give them up to 8 malloc arenas
		 * per core, each keeping its own free memory (a third of the
		 * front's RSS at 100 VMs); they allocate once per interval, so
		 * one arena, its lock shared with the HTTP workers (a second one
		 * cost ~1 MiB at 100 VMs and saved no CPU; docs/PERFORMANCE.md). */
		mallopt(M_ARENA_MAX, FRONT_ARENAS);
		/* A fixed threshold: a /metrics page's buffer (its largest piece,
		 * ~0.4 MB at 100 VMs; metrics.c) is mapped and unmapped each
		 * scrape. glibc's sliding one would serve the next from the heap,
		 * which then keeps what it cannot return (~16 MB when the page was
		 * written whole). */
		mallopt(M_MMAP_THRESHOLD, FRONT_MMAP_THRESHOLD);
		ps_set_undumpable();
		ps_front_init();
		argv[1] = argv[0];
		args = (struct args){ argc - 1, argv + 1 };
	}
	if (hide_token_args(&args, &argv_copy) < 0) {
		fputs("vmwatch-agent: out of memory\n", stderr);
		return 1;
	}
	rc = build(&args, &c, &check, &err);
	if (rc == -1)
		return 0;
	if (rc) {
		fprintf(stderr, "vmwatch-agent: %s\n", vmw_error_msg(&err, err.code ? err.code : -EINVAL));
		return rc;
	}
	if (check) {
		vmw_agent_config_print(&c, stdout);
		vmw_agent_config_free(&c);
		return 0;
	}
	if (!front)   /* the monitor: starts the front, which runs the agent */
		return ps_monitor_main(args.argc, args.argv, &c, config_used, reload, &args);
	rc = vmw_agent_run(&c, reload, &args);
	vmw_agent_config_free(&c);
	return rc;
}
