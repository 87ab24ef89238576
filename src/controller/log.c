/* SPDX-License-Identifier: MIT */
/* log.c - one line per message on stderr with a <N> syslog priority prefix
 * (journald's SyslogLevelPrefix); control characters become spaces. */
#include "controller/ctl.h"

#include <stdarg.h>
#include <string.h>

static atomic_int log_level = CTL_LOG_INFO;

void ctl_log_set_level(enum ctl_log_level level)
{
	atomic_store(&log_level, (int)level);
}

__attribute__((format(printf, 2, 0)))
static void vlog(enum ctl_log_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	if ((int)level > atomic_load(&log_level))
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	fprintf(stderr, "<%d>%s\n", (int)level, buf);
}

void ctl_log(enum ctl_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}
