/* SPDX-License-Identifier: MIT */
/*
 * reset.c - after libvirt reported a guest reset, does a held frame's clock
 * show a kernel that kept running? (monitor.c holds frames until then or
 * until the sampler finds the new kernel.)
 *
 * A kernel that did not go down advances its uptime in step with the host's
 * clock from frame to frame. The old kernel left in RAM is frozen, and while
 * the new one overwrites it a torn read can show any uptime (one showed 198
 * years): a step counts only if the guest's clock advanced, by at most twice
 * the host's time plus 0.5 s. Three such steps in a row, 2 s in all, and the
 * kernel is taken as running.
 */
#include "agent/agent_int.h"

#define SLACK_NS 500000000ull
#define RUN_NS 2000000000ull
#define RUN_STEPS 3

void agent_reset_clock_start(struct agent_reset_clock *c)
{
	*c = (struct agent_reset_clock){ 0 };
}

bool agent_reset_clock_runs(struct agent_reset_clock *c, uint64_t uptime_ns, uint64_t host_ns)
{
	uint64_t du = uptime_ns - c->uptime_ns, dh = host_ns - c->host_ns;

	if (c->host_ns && host_ns > c->host_ns && uptime_ns > c->uptime_ns &&
	    dh <= UINT64_MAX / 4 && du <= 2 * dh + SLACK_NS) {
		c->run_ns = c->run_ns + du < c->run_ns ? UINT64_MAX : c->run_ns + du;
		c->steps++;
	} else {
		c->run_ns = 0;
		c->steps = 0;
	}
	c->uptime_ns = uptime_ns;
	c->host_ns = host_ns;
	return c->steps >= RUN_STEPS && c->run_ns >= RUN_NS;
}
