/* SPDX-License-Identifier: MIT */
/* The USER column of ps and top. */
#include "cli/cli.h"
#include "linux/linux.h"

#include <string.h>

const char *cli_user_column(const struct vmw_proc *p, char *buf, size_t size)
{
	size_t n = strlen(p->user);

	/* Names are printable ASCII (checked when /etc/passwd was parsed). Like
	 * procps, a name longer than the column is cut with a '+'. */
	if (!n)
		snprintf(buf, size, "%u", p->euid);
	else if (n > CLI_USER_WIDTH)
		snprintf(buf, size, "%.*s+", CLI_USER_WIDTH - 1, p->user);
	else
		snprintf(buf, size, "%s", p->user);
	return buf;
}
