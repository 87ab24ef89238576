/* SPDX-License-Identifier: MIT */
/* log.c - one line per event on stderr with a <N> syslog priority prefix,
 * and sd_notify(3) without libsystemd. */
#include "agent/agent_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

static atomic_int log_level = VMW_LOG_INFO;

void vmw_agent_log_set_level(enum vmw_log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum vmw_log_level vmw_agent_log_level(void)
{
	return (enum vmw_log_level)atomic_load(&log_level);
}

void vmw_agent_log(enum vmw_log_level level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	if ((int)level > atomic_load(&log_level))
		return;
	n = snprintf(buf, sizeof(buf), "<%d>", (int)level);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* One event, one line: guest-supplied names may hold control characters. */
	for (char *p = buf + n; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	n = (int)strlen(buf);
	buf[n++] = '\n';
	/* A single write(2) so that lines of concurrent threads never interleave. */
	for (size_t off = 0; off < (size_t)n;) {
		ssize_t w = write(STDERR_FILENO, buf + off, (size_t)n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

int agent_sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	socklen_t salen;
	int fd, r = 0;

	if (!path || !*path)
		return -ENOENT;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';   /* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		r = -errno;
	close(fd);
	return r;
}
