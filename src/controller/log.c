/* SPDX-License-Identifier: MIT */
/* log.c - one line per message on stderr with a <N> syslog priority prefix
 * (journald's SyslogLevelPrefix); control characters become spaces. */
#include "controller/ctl.h"

#include <stdarg.h>

static atomic_int log_level = CTL_LOG_INFO;

void ctl_log_set_level(enum ctl_log_level level)
{
	atomic_store(&log_level, (int)level);
}

void ctl_log(enum ctl_log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if ((int)level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	fprintf(stderr, "<%d>%s\n", (int)level, buf);
}
