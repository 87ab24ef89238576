/* SPDX-License-Identifier: MIT */
/*
 * privsep.c - the privileged monitor, the messages of its channels, and
 * dropping privileges for the front and the samplers (see privsep.h).
 */
#include "agent/privsep.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>


/* ---------------------------------------------------------------- messages */

int ps_send(int sock, const void *msg, size_t len, int fd)
{
	struct iovec iov = { (void *)msg, len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int ps_recv(int sock, void *msg, size_t len, int *fd)
{
	struct iovec iov = { msg, len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;

	if (fd)
		*fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		int got;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(sizeof(int)))
			continue;
		memcpy(&got, CMSG_DATA(c), sizeof(int));
		if (fd && *fd < 0)
			*fd = got;
		else
			close(got);   /* more than one: not ours to keep */
	}
	if (n == 0)
		return -EPIPE;
	if ((size_t)n != len || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (fd && *fd >= 0) {
			close(*fd);
			*fd = -1;
		}
		return -EBADMSG;
	}
	return 0;
}

/* Wait for fd to be readable until the monotonic deadline. 0, -ETIMEDOUT. */
static int wait_readable(int fd, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = vmw_now_ns();
		int ms, r;

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		ms = (int)MIN((deadline_ns - now + 999999) / 1000000, (uint64_t)INT32_MAX);
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int ps_read_full(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n;
		int r = deadline_ns ? wait_readable(fd, deadline_ns) : 0;
		if (r < 0)
			return r;
		n = read(fd, p, len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void ps_describe_status(int st, char *buf, size_t n)
{
	if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st),
			 sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
	else
		snprintf(buf, n, "exited with code %d", WEXITSTATUS(st));
}

/* ---------------------------------------------------------------- dropping privileges */

void ps_set_undumpable(void)
{
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer checks at exit from a helper that ptraces this process. */
static void redumpable(void)
{
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}
__attribute__((constructor)) static void redumpable_at_exit(void)
{
	atexit(redumpable);
}
#endif

int ps_drop_privileges(const char *as_root_user, struct vmw_error *err)
{
	if (geteuid() == 0 || getuid() == 0) {
		struct passwd *pw = getpwnam(as_root_user);
		if (!pw || !pw->pw_uid)
			return vmw_error_setk(err, VMW_ERR_PERMISSION, -ESRCH, "running as root, the agent's front "
					      "and samplers run as user '%s', which does not exist", as_root_user);
		if (setgroups(0, NULL) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
			return vmw_error_setk(err, VMW_ERR_PERMISSION, -errno, "cannot become user '%s': %s",
					      as_root_user, strerror(errno));
	}
	/* Capabilities held as a non-root user come from the ambient set (systemd's
	 * AmbientCapabilities): cleared, the exec that follows drops them all. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return vmw_error_set(err, -errno, "cannot clear the ambient capabilities: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return vmw_error_set(err, -errno, "cannot set no_new_privs: %s", strerror(errno));
	return 0;
}

/* ---------------------------------------------------------------- the front's requests */

static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;

static int ask(struct ps_req *q, struct ps_rep *a, int *fd)
{
	int r;

	pthread_mutex_lock(&ctl_lock);
	r = ps_send(PS_FD_CTL, q, sizeof(*q), -1);
	if (!r)
		r = ps_recv(PS_FD_CTL, a, sizeof(*a), fd);
	pthread_mutex_unlock(&ctl_lock);
	a->msg[sizeof(a->msg) - 1] = '\0';
	return r < 0 ? r : a->r;
}

static int front_open(const char *path)
{
	struct ps_req q = { .type = PS_OPEN_CONFIG_FILE };
	struct ps_rep a = { 0 };
	int fd = -1, r;

	if (strlen(path) >= sizeof(q.path))
		return -ENAMETOOLONG;
	strcpy(q.path, path);
	if ((r = ask(&q, &a, &fd)) < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd >= 0 ? fd : -EIO;
}

void ps_front_init(void)
{
	vmw_agent_set_opener(front_open);
}

int ps_spawn_sampler(const char *target, pid_t qemu_pid, uint64_t start_ticks, unsigned flags,
		     enum vmw_log_level level, pid_t *ret_pid, int *ret_fd, struct vmw_error *err)
{
	struct ps_req q = { .type = PS_SPAWN_SAMPLER, .pid = qemu_pid, .start_ticks = start_ticks,
			    .flags = flags, .log_level = (uint32_t)level };
	struct ps_rep a = { 0 };
	int fd = -1, r;

	if (strlen(target) >= sizeof(q.path))
		return vmw_error_set(err, -ENAMETOOLONG, "target too long");
	strcpy(q.path, target);
	if ((r = ask(&q, &a, &fd)) < 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		if (r == -ESRCH)
			return vmw_error_setk(err, VMW_ERR_GONE, r, "%s", a.msg[0] ? a.msg : strerror(-r));
		return vmw_error_setk(err, r == -EACCES || r == -EPERM ? VMW_ERR_PERMISSION : VMW_ERR_IO,
				      r < 0 ? r : -EIO, "cannot start a sampler: %s", a.msg[0] ? a.msg : strerror(-r));
	}
	*ret_pid = a.pid;
	*ret_fd = fd;
	return 0;
}

int ps_kill_sampler(pid_t pid)
{
	struct ps_req q = { .type = PS_KILL_SAMPLER, .pid = pid };
	struct ps_rep a = { 0 };
	return ask(&q, &a, NULL);
}

int ps_sampler_status(pid_t pid, int *status)
{
	struct ps_req q = { .type = PS_SAMPLER_STATUS, .pid = pid };
	struct ps_rep a = { 0 };
	int r = ask(&q, &a, NULL);

	if (r < 0)
		return r;
	if (a.status < 0)
		return -EAGAIN;
	*status = a.status;
	return 0;
}

/* ---------------------------------------------------------------- the monitor's path policy */

static bool all_hex_range(const char *s)
{
	const char *dash = strchr(s, '-');

	if (!dash || dash == s || !dash[1] || strchr(dash + 1, '-'))
		return false;
	for (const char *p = s; *p; p++)
		if (p != dash && !isxdigit((unsigned char)*p))
			return false;
	return true;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int ps_guest_path(pid_t qemu, const char *file, const char *path, int flags)
{
	char prefix[32];
	size_t pl;
	int kind = flags & (O_PATH | O_DIRECTORY);

	if ((flags & ~(O_CLOEXEC | O_PATH | O_DIRECTORY | O_NOFOLLOW)) || (flags & O_ACCMODE) != O_RDONLY)
		return -EPERM;
	if (file && file[0] && !strcmp(path, file) && !kind)
		return PS_PATH_TARGET;
	if (qemu <= 0)
		return -EACCES;
	pl = (size_t)snprintf(prefix, sizeof(prefix), "/proc/%d/", (int)qemu);
	if (strncmp(path, prefix, pl))
		return path[0] == '/' && !kind && !strstr(path, "/../") && !strstr(path, "/./") &&
		       strncmp(path, "/proc/", 6) && strncmp(path, "/sys/", 5) ? PS_PATH_MAPPED : -EACCES;
	path += pl;
	if ((!kind && (!strcmp(path, "maps") || !strcmp(path, "mem") || !strcmp(path, "pagemap"))) ||
	    (kind == O_PATH && !strcmp(path, "exe")) || (kind == O_DIRECTORY && !strcmp(path, "fd")) ||
	    (!kind && !strncmp(path, "fd/", 3) && all_digits(path + 3)) ||
	    (!kind && !strncmp(path, "map_files/", 10) && all_hex_range(path + 10)))
		return PS_PATH_PROC;
	return -EACCES;
}
