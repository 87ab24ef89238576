/* SPDX-License-Identifier: MIT */
/*
 * mem_identity.c - which QEMU process a target is: pid + start time from
 * /proc/PID/stat, and the VM's name, UUID and vCPU count from its command
 * line. The parsers are pure (unit-tested on literal lines); the readers
 * only fetch /proc files.
 */
#include "mem/mem_internal.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vmw_proc_stat_parse(const char *line, char *ret_state, uint64_t *ret_start_ticks)
{
	/* comm (field 2) is in parentheses and may hold anything: fields 3.. start
	 * after its last ')'. */
	const char *p = strrchr(line, ')');
	unsigned long long st;
	char *end;

	if (!p || p[1] != ' ' || !p[2] || p[3] != ' ')
		return -EINVAL;
	*ret_state = p[2];
	p += 3;   /* the space before field 4 */
	for (int field = 4; field < 22; field++)   /* to the space before field 22 */
		if (!(p = strchr(p + 1, ' ')))
			return -EINVAL;
	errno = 0;
	st = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1 || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -EINVAL;
	*ret_start_ticks = st;
	return 0;
}

/* Small /proc file into buf (NUL-terminated); its length or a negative errno. */
static ssize_t read_proc_file(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	buf[n] = '\0';
	return n;
}

int vmw_qemu_id_get(pid_t pid, struct vmw_qemu_id *ret)
{
	char buf[1024], state;
	uint64_t start;
	ssize_t n;

	if (pid <= 0)
		return -ESRCH;
	if ((n = read_proc_file(pid, "stat", buf, sizeof(buf))) < 0)
		return n == -ESRCH ? -ESRCH : -EIO;
	if (vmw_proc_stat_parse(buf, &state, &start) < 0)
		return -EIO;
	if (state == 'Z' || state == 'X')
		return -ESRCH;   /* exited, not yet reaped: its RAM is gone */
	*ret = (struct vmw_qemu_id){ .pid = pid, .start_ticks = start };
	return 0;
}

int vmw_qemu_id_alive(const struct vmw_qemu_id *id)
{
	struct vmw_qemu_id now;

	if (id->pid <= 0 || vmw_qemu_id_get(id->pid, &now) == -ESRCH)
		return -ESRCH;
	/* An unreadable stat (-EIO) says nothing: count the process as running. */
	if (now.pid && now.start_ticks != id->start_ticks)
		return -ESRCH;
	return 0;
}

void vmw_qemu_names_parse(size_t argc, const char *const *argv, struct vmw_qemu_names *ret)
{
	char v[256];

	memset(ret, 0, sizeof(*ret));
	for (size_t i = 1; i + 1 < argc; i++) {
		const char *opt = argv[i], *arg = argv[i + 1];

		if (opt[0] != '-')
			continue;
		opt += opt[1] == '-' ? 2 : 1;  /* QEMU takes -opt and --opt */
		if (!strcmp(opt, "name")) {
			/* -name [guest=]NAME[,debug-threads=on,...] */
			ret->has_name = true;
			if (!vmw_qemu_opt_get(arg, "guest", "guest", ret->name, sizeof(ret->name)))
				ret->name[0] = '\0';
			i++;
		} else if (!strcmp(opt, "uuid")) {
			if (strlen(arg) == 36 && strspn(arg, "0123456789abcdefABCDEF-") == 36)
				memcpy(ret->uuid, arg, 37);
			i++;
		} else if (!strcmp(opt, "smp")) {
			if (vmw_qemu_opt_get(arg, "cpus", "cpus", v, sizeof(v)))
				ret->vcpus = (unsigned)strtoul(v, NULL, 10);
			i++;
		}
	}
}

int vmw_qemu_names_get(pid_t pid, struct vmw_qemu_names *ret)
{
	_cleanup_free_ char *buf = malloc(65536);
	const char *argv[1024];
	size_t argc = 0;
	ssize_t n;

	memset(ret, 0, sizeof(*ret));
	if (!buf)
		return -ENOMEM;
	if (pid <= 0)
		return -ESRCH;
	if ((n = read_proc_file(pid, "cmdline", buf, 65536)) < 0)
		return n == -EPERM ? -EACCES : (int)n;
	if (n == 0)
		return -ENOEXEC;
	for (char *a = buf; a < buf + n && argc < ARRAY_SIZE(argv); a += strlen(a) + 1)
		argv[argc++] = a;
	vmw_qemu_names_parse(argc, argv, ret);
	return 0;
}

/* ---- the host's QEMU processes (the host view of `vmwatch top`) ---------- */

/* Field n (>= 3) of a /proc/PID/stat line as a number. 0 or -EINVAL. */
static int stat_field(const char *line, int n, uint64_t *ret)
{
	const char *p = strrchr(line, ')');
	unsigned long long v;
	char *end;

	if (!p || p[1] != ' ')
		return -EINVAL;
	p++;                       /* the space before field 3 */
	for (int field = 3; field < n; field++)
		if (!(p = strchr(p + 1, ' ')))
			return -EINVAL;
	errno = 0;
	v = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1 || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -EINVAL;
	*ret = v;
	return 0;
}

int vmw_proc_stat_cpu_parse(const char *line, uint64_t *ret_ticks)
{
	uint64_t ut, st;

	if (stat_field(line, 14, &ut) < 0 || stat_field(line, 15, &st) < 0 || ut > UINT64_MAX - st)
		return -EINVAL;
	*ret_ticks = ut + st;
	return 0;
}

int vmw_qemu_cpu_ticks(const struct vmw_qemu_id *id, uint64_t *ret)
{
	char buf[1024], state;
	uint64_t start;
	ssize_t n;

	if (id->pid <= 0)
		return -ESRCH;
	if ((n = read_proc_file(id->pid, "stat", buf, sizeof(buf))) < 0)
		return n == -ESRCH ? -ESRCH : -EIO;
	if (vmw_proc_stat_parse(buf, &state, &start) < 0 || vmw_proc_stat_cpu_parse(buf, ret) < 0)
		return -EIO;
	return start == id->start_ticks ? 0 : -ESRCH;
}

int vmw_qemu_cpu_meter_read(struct vmw_qemu_cpu_meter *m, const struct vmw_qemu_id *id, double *ret_percent)
{
	static long hz;
	uint64_t ticks, now = vmw_now_ns();
	bool had = m->primed && now > m->ns;
	int r;

	if (!hz && (hz = sysconf(_SC_CLK_TCK)) <= 0)
		hz = 100;
	if ((r = vmw_qemu_cpu_ticks(id, &ticks)) < 0) {
		m->primed = false;
		return r;
	}
	if (had)
		*ret_percent = (double)vmw_sat_sub(ticks, m->ticks) / (double)hz * 1e11 / (double)(now - m->ns);
	m->ticks = ticks;
	m->ns = now;
	m->primed = true;
	return had ? 0 : -EAGAIN;
}

bool vmw_qemu_program(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	return !strncmp(base, "qemu-system-", 12) || !strcmp(base, "qemu-kvm");
}

static bool is_qemu(pid_t pid)
{
	char buf[4096];

	return read_proc_file(pid, "cmdline", buf, sizeof(buf)) > 0 && vmw_qemu_program(buf);
}

int vmw_qemu_list(struct vmw_qemu_id **ret, size_t *ret_n)
{
	_cleanup_free_ struct vmw_qemu_id *v = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		uint64_t pid;
		struct vmw_qemu_id id;

		if (vmw_parse_u64(de->d_name, &pid) < 0 || pid == 0 || pid > INT32_MAX ||
		    !is_qemu((pid_t)pid) || vmw_qemu_id_get((pid_t)pid, &id) < 0)
			continue;
		if (n == cap) {
			struct vmw_qemu_id *nv = reallocarray(v, cap ? cap * 2 : 16, sizeof(*v));
			if (!nv) {
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		v[n++] = id;
	}
	closedir(d);
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}
