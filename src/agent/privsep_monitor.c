/* SPDX-License-Identifier: MIT */
/*
 * privsep_monitor.c - the privileged process: starts the front, answers its
 * and the samplers' requests after checking them, reaps, forwards signals.
 * Single-threaded; the only process of the agent with capabilities.
 */
#include "agent/privsep.h"
#include "mem/mem.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SAMPLERS 4096

struct sampler_rec {
	pid_t pid;
	int opener;                 /* our end of its opener channel; -1 once closed */
	struct vmw_qemu_id qemu;    /* pid 0 for a file: target */
	char file[4160];            /* the file: target's path (as long as ps_req.path) */
	bool ended;
	int status;
	uint64_t ended_ns;
};

struct mon {
	int ctl;                    /* to the front */
	int sigfd;
	pid_t front;
	int front_status;
	bool front_ended;
	char **argv;                /* as main got it (tokens hidden), for the front */
	int argc;
	struct vmw_agent_config cfg;/* our own reading: which files and targets are allowed */
	vmw_agent_reload_fn reload;
	void *reload_opaque;
	const char *config_path;
	struct sampler_rec *s;
	size_t ns;
	int sampler_exe;            /* vmwatch-sampler, opened at start (-1: our own executable) */
};

/* ---------------------------------------------------------------- checks */

static bool target_is_configured_file(const struct mon *m, const char *path)
{
	for (size_t i = 0; i < m->cfg.ntargets; i++) {
		const char *t = m->cfg.targets[i], *eq = strchr(t, '=');
		const char *spec = eq ? eq + 1 : t;   /* as agent.c reads "[NAME=]TARGET" */
		if (!strncmp(spec, "file:", 5) && !strcmp(spec + 5, path))
			return true;
	}
	return false;
}

static bool is_config_file(const struct mon *m, const char *path)
{
	const struct vmw_agent_config *c = &m->cfg;

	if (!strcmp(path, m->config_path ? m->config_path : VMW_AGENT_CONFIG_PATH))
		return true;
	if ((c->tls_cert && !strcmp(path, c->tls_cert)) || (c->tls_key && !strcmp(path, c->tls_key)) ||
	    (c->tls_client_ca && !strcmp(path, c->tls_client_ca)))
		return true;
	for (size_t i = 0; i < c->ntoken_files; i++)
		if (!strcmp(path, c->token_files[i]))
			return true;
	return false;
}

/* Is pid a running QEMU system emulator with that start time? 0, -ESRCH
 * (no such process, or another one now), -EPERM (not a QEMU). */
static int check_qemu(pid_t pid, uint64_t start_ticks)
{
	struct vmw_qemu_id id;

	if (pid <= 0 || vmw_qemu_id_get(pid, &id) < 0 || (start_ticks && id.start_ticks != start_ticks))
		return -ESRCH;
	return vmw_qemu_pid_is_emulator(pid) ? 0 : -EPERM;
}

/* What a sampler may have opened for it (ps_guest_path): its own QEMU's
 * /proc files, a file that QEMU maps (checked in its maps here, and by
 * src/mem again: same inode), or its file: target. Read-only, always. */
static int guest_open_allowed(const struct sampler_rec *s, const char *path, int flags)
{
	int r = ps_guest_path(s->qemu.pid, s->file, path, flags);

	if (r < 0 || r == PS_PATH_TARGET)
		return r < 0 ? r : 0;
	if (!s->qemu.pid || vmw_qemu_id_alive(&s->qemu) < 0)
		return -ESRCH;
	return r == PS_PATH_PROC || vmw_qemu_maps_path(s->qemu.pid, path) ? 0 : -EACCES;
}

/* ---------------------------------------------------------------- samplers */

static struct sampler_rec *find_sampler(struct mon *m, pid_t pid)
{
	for (size_t i = 0; i < m->ns; i++)
		if (m->s[i].pid == pid)
			return &m->s[i];
	return NULL;
}

static void forget_old_samplers(struct mon *m)
{
	uint64_t now = vmw_now_ns();
	size_t j = 0;

	for (size_t i = 0; i < m->ns; i++) {
		if (m->s[i].ended && m->s[i].opener < 0 && now - m->s[i].ended_ns > 60000000000ull)
			continue;
		m->s[j++] = m->s[i];
	}
	m->ns = j;
}

/* The environment of a sampler: ours without secrets; as root, a cache
 * directory its user owns. */
static char **sampler_env(void)
{
	extern char **environ;
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	if (!(env = calloc(n + 2, sizeof(char *))))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(environ[i], "VMWATCH_AGENT_TOKEN=", 20) ||
		    (getuid() == 0 && !strncmp(environ[i], "XDG_CACHE_HOME=", 15)))
			continue;
		env[k++] = environ[i];
	}
	if (getuid() == 0)
		env[k++] = "XDG_CACHE_HOME=" PS_ROOT_CACHE;
	return env;
}

/* As root, the samplers' cache lives in a directory their user owns. */
static void prepare_root_cache(void)
{
	struct passwd *pw = getpwnam(PS_USER);
	struct stat st;

	if (getuid() != 0 || !pw)
		return;
	mkdir(PS_ROOT_CACHE_PARENT, 0755);
	if (mkdir(PS_ROOT_CACHE, 0700) < 0 && errno != EEXIST)
		return;
	if (lstat(PS_ROOT_CACHE, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid != pw->pw_uid &&
	    chown(PS_ROOT_CACHE, pw->pw_uid, pw->pw_gid) < 0)
		vmw_agent_log(VMW_LOG_WARNING, "cannot hand %s to user nobody: %s", PS_ROOT_CACHE, strerror(errno));
}

/*
 * The samplers' executable: vmwatch-sampler next to ours (a build tree, or
 * a package that installs both in one directory), else in the libexec
 * directory. It links the library only, not libmicrohttpd or GnuTLS, so each
 * sampler holds less (docs/PERFORMANCE.md). Opened once, at start: the
 * samplers run the binary that was there then. -1 (samplers run our own
 * executable, `--privsep-sampler`) when there is none.
 */
static int open_sampler_exe(void)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;
	int fd = -1;

	if (n > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/vmwatch-sampler", self);
			fd = open(path, O_RDONLY | O_CLOEXEC);
		}
	}
	if (fd < 0)
		fd = open(VMW_SAMPLER_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		vmw_agent_log(VMW_LOG_WARNING, "no vmwatch-sampler next to the agent nor at %s: samplers run the "
			      "agent's own executable (each holds ~0.4 MiB more)", VMW_SAMPLER_PATH);
	return fd;
}

/* exe: an executable's fd to run instead of our own (-1: /proc/self/exe). */
static void child_exec(int exe, char **argv, char **envp, const int *keep, size_t nkeep)
{
	struct vmw_error err = { 0 };
	int r;

	/* Only our channels, at fixed numbers, and stdio (stdin: nothing); the
	 * executable's fd after them, closed by the exec. It is moved out of the
	 * way first: the monitor opened it early, so it may sit at a channel's
	 * number. */
	if (exe >= 0) {
		int low = (int)(3 + nkeep) + 1;
		for (size_t i = 0; i < nkeep; i++)
			low = keep[i] >= low ? keep[i] + 1 : low;
		if ((exe = fcntl(exe, F_DUPFD_CLOEXEC, low)) < 0)
			_exit(127);
	}
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] != (int)(3 + i) && dup2(keep[i], (int)(3 + i)) < 0)
			_exit(127);
	if (exe >= 0) {
		if (dup2(exe, (int)(3 + nkeep)) < 0 || fcntl((int)(3 + nkeep), F_SETFD, FD_CLOEXEC) < 0)
			_exit(127);
		exe = (int)(3 + nkeep++);
	}
	close_range(3 + (unsigned)nkeep, ~0u, 0);
	{
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0 && devnull != 0) {
			dup2(devnull, 0);
			close(devnull);
		}
	}
	signal(SIGPIPE, SIG_DFL);
	if ((r = ps_drop_privileges(PS_USER, &err)) < 0) {
		vmw_agent_log(VMW_LOG_ERR, "%s", vmw_error_msg(&err, r));
		_exit(126);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (exe >= 0)
		syscall(SYS_execveat, exe, "", argv, envp, AT_EMPTY_PATH);
	else
		execve("/proc/self/exe", argv, envp);
	vmw_agent_log(VMW_LOG_ERR, "cannot exec %s: %s", exe >= 0 ? "vmwatch-sampler" : "/proc/self/exe",
		      strerror(errno));
	_exit(127);
}

static void unblock_signals_in_child(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int spawn_sampler(struct mon *m, const struct ps_req *q, struct ps_rep *a, int *ret_fd)
{
	char pid_s[16], ticks_s[24], flags_s[16], level_s[16];
	char target[sizeof(q->path)];
	int frames[2], opener[2];
	struct sampler_rec rec = { .opener = -1 };
	pid_t pid;

	memcpy(target, q->path, sizeof(target));
	target[sizeof(target) - 1] = '\0';
	if (!strncmp(target, "qemu:", 5)) {
		long p = strtol(target + 5, NULL, 10);
		int r = p == q->pid ? check_qemu(q->pid, q->start_ticks) : -EPERM;
		if (r == -ESRCH)
			return snprintf(a->msg, sizeof(a->msg), "the QEMU process (PID %d) exited: the guest is gone",
					(int)q->pid), r;
		if (r < 0)
			return snprintf(a->msg, sizeof(a->msg), "%s is not a QEMU system emulator", target), r;
		rec.qemu = (struct vmw_qemu_id){ .pid = q->pid };
		vmw_qemu_id_get(q->pid, &rec.qemu);
	} else if (!strncmp(target, "file:", 5) && target_is_configured_file(m, target + 5)) {
		pid_t owner = q->pid;
		snprintf(rec.file, sizeof(rec.file), "%s", target + 5);
		/* The QEMU whose RAM it is (its layout and liveness): the sampler may read its /proc files. */
		if (owner <= 0 && vmw_qemu_file_owner(rec.file, &owner) < 0)
			owner = 0;
		if (owner > 0 && !check_qemu(owner, owner == q->pid ? q->start_ticks : 0) &&
		    vmw_qemu_maps_path(owner, rec.file))
			vmw_qemu_id_get(owner, &rec.qemu);
	} else {
		return snprintf(a->msg, sizeof(a->msg), "%.200s: not a target the configuration allows", target),
		       -EPERM;
	}
	if (m->ns >= MAX_SAMPLERS)
		return snprintf(a->msg, sizeof(a->msg), "too many samplers"), -EAGAIN;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, frames) < 0)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, opener) < 0) {
		close(frames[0]);
		close(frames[1]);
		return -errno;
	}
	snprintf(pid_s, sizeof(pid_s), "%d", (int)rec.qemu.pid);
	snprintf(ticks_s, sizeof(ticks_s), "%llu", (unsigned long long)rec.qemu.start_ticks);
	snprintf(flags_s, sizeof(flags_s), "%u", q->flags);
	snprintf(level_s, sizeof(level_s), "%u", q->log_level);
	if ((pid = fork()) == 0) {
		char *argv[] = { "vmwatch-agent", PS_ARG_SAMPLER, target, pid_s, ticks_s, flags_s, level_s, NULL };
		char **env = sampler_env();
		int keep[] = { frames[1], opener[1] };
		unblock_signals_in_child();
		/* vmwatch-sampler takes the same arguments after its name. */
		if (m->sampler_exe >= 0)
			argv[1] = "vmwatch-sampler";
		child_exec(m->sampler_exe, m->sampler_exe >= 0 ? argv + 1 : argv, env ? env : (char *[]){ NULL },
			   keep, 2);
	}
	close(frames[1]);
	close(opener[1]);
	if (pid < 0) {
		int e = errno;
		close(frames[0]);
		close(opener[0]);
		return -e;
	}
	rec.pid = pid;
	rec.opener = opener[0];
	m->s[m->ns++] = rec;
	a->pid = pid;
	*ret_fd = frames[0];
	return 0;
}

/* ---------------------------------------------------------------- requests */

static void answer_front(struct mon *m)
{
	struct ps_req q;
	struct ps_rep a = { 0 };
	int fd = -1, r = ps_recv(m->ctl, &q, sizeof(q), NULL);
	struct sampler_rec *s;

	if (r == -EPIPE || r == -ECONNRESET) {
		close(m->ctl);
		m->ctl = -1;
		return;
	}
	if (r < 0)
		return;
	q.path[sizeof(q.path) - 1] = '\0';
	switch (q.type) {
	case PS_OPEN_CONFIG_FILE:
		if (!is_config_file(m, q.path)) {
			r = -EACCES;
			snprintf(a.msg, sizeof(a.msg), "%.200s is not a file the configuration names", q.path);
		} else if ((fd = open(q.path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
			r = -errno;
		}
		break;
	case PS_SPAWN_SAMPLER:
		forget_old_samplers(m);
		r = spawn_sampler(m, &q, &a, &fd);
		break;
	case PS_KILL_SAMPLER:
		s = find_sampler(m, q.pid);
		r = s && !s->ended ? (kill(s->pid, SIGKILL) < 0 ? -errno : 0) : -ESRCH;
		break;
	case PS_SAMPLER_STATUS:
		s = find_sampler(m, q.pid);
		r = s ? 0 : -ESRCH;
		a.status = s && s->ended ? s->status : -1;
		break;
	default:
		r = -EINVAL;
	}
	a.r = r;
	ps_send(m->ctl, &a, sizeof(a), r < 0 ? -1 : fd);
	if (fd >= 0)
		close(fd);
}

static void answer_sampler(struct sampler_rec *s)
{
	struct ps_req q;
	struct ps_rep a = { 0 };
	int fd = -1, r = ps_recv(s->opener, &q, sizeof(q), NULL);

	if (r == -EPIPE || r == -ECONNRESET || (r < 0 && r != -EBADMSG)) {
		close(s->opener);
		s->opener = -1;
		return;
	}
	q.path[sizeof(q.path) - 1] = '\0';
	if (r < 0 || q.type != PS_OPEN_GUEST)
		r = -EINVAL;
	else if ((r = guest_open_allowed(s, q.path, (int)q.flags)) == 0 &&
		 (fd = open(q.path, (int)(q.flags | O_CLOEXEC | O_NOCTTY))) < 0)
		r = -errno;
	if (r == -EACCES || r == -EPERM)   /* not a warning: a sampler looking for its file's QEMU asks often */
		vmw_agent_log(VMW_LOG_DEBUG, "sampler %d asked to open %.300s: refused", (int)s->pid, q.path);
	a.r = r;
	ps_send(s->opener, &a, sizeof(a), fd);
	if (fd >= 0)
		close(fd);
}

static void reap(struct mon *m)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct sampler_rec *s = find_sampler(m, pid);
		char how[64];

		ps_describe_status(st, how, sizeof(how));
		if (pid == m->front) {
			m->front_ended = true;
			m->front_status = st;
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				vmw_agent_log(VMW_LOG_ERR, "the agent's front process (%d) ended: %s", (int)pid, how);
		} else if (s) {
			s->ended = true;
			s->status = st;
			s->ended_ns = vmw_now_ns();
			if (WIFSIGNALED(st) || WEXITSTATUS(st))
				vmw_agent_log(VMW_LOG_WARNING, "sampler %d (%s) ended: %s", (int)pid,
					      s->file[0] ? s->file : "qemu", how);
		}
	}
}

/* ---------------------------------------------------------------- the loop */

static void on_signal(struct mon *m)
{
	struct signalfd_siginfo si;

	while (read(m->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap(m);
		} else if (si.ssi_signo == SIGHUP) {
			struct vmw_agent_config nc;
			struct vmw_error err = { 0 };
			/* Our own reading first: the front's asks for files by the new names. */
			if (m->reload && m->reload(m->reload_opaque, &nc, &err) == 0) {
				vmw_agent_config_free(&m->cfg);
				m->cfg = nc;
			}
			kill(m->front, SIGHUP);
		} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			kill(m->front, (int)si.ssi_signo);
		}
	}
}

static void serve(struct mon *m)
{
	struct pollfd *pfd = calloc(MAX_SAMPLERS + 2, sizeof(*pfd));

	while (pfd && !m->front_ended) {
		size_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = m->sigfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = m->ctl, .events = POLLIN };
		for (size_t i = 0; i < m->ns; i++)
			pfd[n++] = (struct pollfd){ .fd = m->s[i].opener, .events = POLLIN };
		if (poll(pfd, n, -1) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			on_signal(m);
		if (pfd[1].revents && m->ctl >= 0)
			answer_front(m);
		for (size_t i = 2; i < n && i - 2 < m->ns; i++)
			if (pfd[i].revents && m->s[i - 2].opener == pfd[i].fd)
				answer_sampler(&m->s[i - 2]);
	}
	free(pfd);
}

/* The front's argv: ours with PS_ARG_FRONT first and --token values moved
 * to VMWATCH_AGENT_TOKEN (a command line is readable by every user). */
static int front_exec_args(struct mon *m, char ***ret_argv)
{
	char **argv = calloc((size_t)m->argc + 2, sizeof(char *));
	const char *env = getenv("VMWATCH_AGENT_TOKEN");
	size_t k = 0, tl = env ? strlen(env) : 0;
	char *tokens;

	if (!argv)
		return -ENOMEM;
	for (int i = 0; i < m->argc; i++)
		tl += strlen(m->argv[i]) + 1;
	if (!(tokens = calloc(1, tl + 1))) {
		free(argv);
		return -ENOMEM;
	}
	if (env)
		strcpy(tokens, env);
	argv[k++] = m->argv[0];
	argv[k++] = PS_ARG_FRONT;
	for (int i = 1; i < m->argc; i++) {
		const char *v = NULL;
		if (!strcmp(m->argv[i], "--token") && i + 1 < m->argc)
			v = m->argv[++i];
		else if (!strncmp(m->argv[i], "--token=", 8))
			v = m->argv[i] + 8;
		if (!v) {
			argv[k++] = m->argv[i];
			continue;
		}
		if (*tokens)
			strcat(tokens, " ");
		strcat(tokens, v);
	}
	if (*tokens)
		setenv("VMWATCH_AGENT_TOKEN", tokens, 1);
	free(tokens);
	*ret_argv = argv;
	return 0;
}

static int start_front(struct mon *m)
{
	extern char **environ;
	int ctl[2];
	char **argv;
	pid_t pid;

	if (front_exec_args(m, &argv) < 0)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		free(argv);
		return -errno;
	}
	if ((pid = fork()) == 0) {
		int keep[] = { ctl[1] };
		unblock_signals_in_child();
		child_exec(-1, argv, environ, keep, 1);
	}
	free(argv);
	close(ctl[1]);
	unsetenv("VMWATCH_AGENT_TOKEN");   /* the samplers' environment never had it */
	if (pid < 0) {
		close(ctl[0]);
		return -errno;
	}
	m->front = pid;
	m->ctl = ctl[0];
	return 0;
}

static void stop_samplers(struct mon *m)
{
	uint64_t deadline = vmw_now_ns() + 3000000000ull;
	bool left = true;

	/* They exit when the front's end of their channel closes; a hung one is killed. */
	while (left && vmw_now_ns() < deadline) {
		reap(m);
		left = false;
		for (size_t i = 0; i < m->ns; i++)
			left |= !m->s[i].ended;
		if (left)
			usleep(20000);
	}
	for (size_t i = 0; i < m->ns; i++)
		if (!m->s[i].ended)
			kill(m->s[i].pid, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
	for (size_t i = 0; i < m->ns; i++)
		if (m->s[i].opener >= 0)
			close(m->s[i].opener);
}

int ps_monitor_main(int argc, char **argv, struct vmw_agent_config *cfg, const char *config_path,
		    vmw_agent_reload_fn reload, void *opaque)
{
	struct mon m = { .ctl = -1, .argc = argc, .argv = argv, .reload = reload, .reload_opaque = opaque,
			 .config_path = config_path, .cfg = *cfg, .sampler_exe = open_sampler_exe() };
	sigset_t set;
	int rc;

	*cfg = (struct vmw_agent_config){ 0 };   /* ours now */
	if (!(m.s = calloc(MAX_SAMPLERS, sizeof(*m.s)))) {
		vmw_agent_log(VMW_LOG_ERR, "out of memory");
		vmw_agent_config_free(&m.cfg);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((m.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 || start_front(&m) < 0) {
		vmw_agent_log(VMW_LOG_ERR, "cannot start the agent's processes: %s", strerror(errno));
		free(m.s);
		vmw_agent_config_free(&m.cfg);
		return 1;
	}
	prepare_root_cache();
	serve(&m);
	if (!m.front_ended) {
		kill(m.front, SIGTERM);
		waitpid(m.front, &m.front_status, 0);
	}
	stop_samplers(&m);
	rc = WIFEXITED(m.front_status) ? WEXITSTATUS(m.front_status) : 1;
	if (m.ctl >= 0)
		close(m.ctl);
	close(m.sigfd);
	if (m.sampler_exe >= 0)
		close(m.sampler_exe);
	free(m.s);
	vmw_agent_config_free(&m.cfg);
	return rc;
}
