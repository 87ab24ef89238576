/* SPDX-License-Identifier: MIT */
/*
 * vmwatch-sampler: the agent's per-VM sampler process (privsep.h) as an
 * executable of its own, which the agent's monitor starts. It links the
 * library only, not libmicrohttpd or GnuTLS and what they pull in, so each
 * sampler holds ~0.4 MiB less (docs/PERFORMANCE.md). Not for people: it
 * reads its channels at fixed descriptors.
 */
#include "agent/privsep.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("vmwatch-sampler %s\n", vmwatch_version);
		return 0;
	}
	return ps_sampler_main(argc, argv);
}
