/* SPDX-License-Identifier: MIT */
/*
 * vmwatch agent ARGS - runs the host agent, vmwatch-agent, with ARGS (same
 * process: exec). The agent is its own executable so that vmwatch does not
 * load libmicrohttpd and GnuTLS. It is looked for next to vmwatch itself
 * (/proc/self/exe: the build directory, or the installed bindir), then in
 * $PATH.
 */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AGENT_EXE "vmwatch-agent"

int cmd_agent(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + sizeof(AGENT_EXE) + 1];
	char **av = calloc((size_t)argc + 1, sizeof(*av));
	ssize_t n;
	char *slash;

	if (!av) {
		cli_error("agent: out of memory");
		return 1;
	}
	av[0] = AGENT_EXE;
	for (int i = 1; i < argc; i++)
		av[i] = argv[i];
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/" AGENT_EXE, self);
			execv(path, av);
			if (errno != ENOENT) {
				cli_error("agent: cannot run %s: %s", path, strerror(errno));
				free(av);
				return 1;
			}
		}
	}
	execvp(AGENT_EXE, av);
	if (errno == ENOENT)
		cli_error("agent: " AGENT_EXE " is not installed (looked next to %s and in $PATH); "
			  "install it with vmwatch, or run it directly",
			  n > 0 ? self : "vmwatch");
	else
		cli_error("agent: cannot run " AGENT_EXE ": %s", strerror(errno));
	free(av);
	return 1;
}
