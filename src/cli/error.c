/* SPDX-License-Identifier: MIT */
#include "cli/cli.h"

#include <stdarg.h>

/* Messages can quote guest strings (a kernel release, a process name): they
 * reach the terminal sanitized like every other guest string. */
void cli_error(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fputs("vmwatch: ", stderr);
	vmw_text_fputs(msg, stderr);
	fputc('\n', stderr);
}
