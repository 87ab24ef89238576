/* SPDX-License-Identifier: MIT */
#include "cli/cli.h"

#include <stdarg.h>

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("vmwatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
