/* SPDX-License-Identifier: MIT */
#include "cli/cli.h"
#include "version.h"

#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "info", cmd_info, "info [--json] TARGET   describe the guest's kernel and how it was found" },
	{ "ps", cmd_ps, "ps [--json] [--threads] TARGET   list the guest's processes" },
	{ "top", cmd_top, "top [-b|--json] [-d SECONDS] [-n N] TARGET   the guest's processes over time, like top/htop" },
	{ "summary", cmd_summary, "summary [--json] TARGET   uptime, load, memory and CPU times as the guest's /proc shows them" },
	{ "cgroups", cmd_cgroups, "cgroups [--json] [-d SECONDS] TARGET   cgroups like systemd-cgtop: tasks, %CPU, memory" },
	{ "agent", cmd_agent, "agent [--config FILE] [--listen ADDR:PORT] ...   serve every guest over HTTP (JSON, SSE, /metrics)" },
	{ "bench", cmd_bench, "bench [-n FRAMES] TARGET   measure attach and frame costs" },
	{ "cat", cmd_cat, "cat TARGET PATH   a guest file as the guest's page cache holds it" },
	{ "phys", cmd_phys, "phys TARGET ADDR LEN   dump guest physical memory" },
	{ "vms", cmd_vms, "vms [--json] [--watch [-n N]] [--connect URI]   libvirt domains and their lifecycle events" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: vmwatch COMMAND [OPTIONS] TARGET ...\n\n"
		   "Agentless process monitoring of Linux virtual machines from the host.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (commands[i].summary)
			fprintf(f, "  %s\n", commands[i].summary);
	fprintf(f, "\n" CLI_TARGET_HELP "Run 'vmwatch COMMAND --help' for a command's options, "
		   "'vmwatch --version' for the version.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vmwatch %s\n", VMWATCH_VERSION);
		return 0;
	}
	/* ps prints its table at once, at the end: in blocks, also to a terminal
	 * (line buffering made one write per process). */
	if (!strcmp(argv[1], "ps"))
		setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	cli_error("unknown command '%s' (try 'vmwatch --help')", argv[1]);
	return EXIT_USAGE;
}
