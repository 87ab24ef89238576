/* SPDX-License-Identifier: MIT */
/*
 * mem_qemu.c - guest RAM of a running QEMU process, found from the outside:
 *   1. /proc/PID/cmdline: machine type, RAM size, memory backend;
 *   2. /proc/PID/maps: the mapping of exactly the RAM size that is the RAM
 *      block (shared file / memfd, or private anonymous memory);
 *   3. shared: open the very file QEMU maps (through /proc/PID/map_files, or
 *      its path, or QEMU's fd for a memfd; the inode is checked) and mmap it
 *      read-only; private: segments in QEMU's address space, read with
 *      process_vm_readv.
 */
#include "mem/mem_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static inline void closedirp_(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* Whole contents of an open file, NUL-terminated (fd is not closed). */
static int read_all(int fd, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	for (;;) {
		ssize_t n;
		if (cap - len < 4096) {
			char *b = realloc(buf, cap = cap ? cap * 2 : 16384);
			if (!b)
				return -ENOMEM;
			buf = b;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* Open /proc/PID/NAME: maps needs ptrace access to QEMU; cmdline is world-readable. */
static int open_proc(pid_t pid, const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = strcmp(name, "cmdline") ? vmw_mem_open_privileged(path, O_RDONLY) : open(path, O_RDONLY | O_CLOEXEC);
	return fd == -1 ? -errno : fd;
}

/* Whole contents of /proc/PID/NAME (NUL-terminated for convenience). */
static int read_proc(pid_t pid, const char *name, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open_proc(pid, name);

	if (fd < 0)
		return fd;
	return read_all(fd, ret, ret_len);
}

/* Split a NUL-separated /proc/PID/cmdline into an argv array (pointing into buf). */
static int split_cmdline(char *buf, size_t len, const char ***ret, size_t *ret_argc)
{
	size_t argc = 0, n = 0;
	const char **argv;

	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			argc++;
	if (len && buf[len - 1] != '\0')
		argc++;
	argv = calloc(argc + 1, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < len && n < argc; i += strlen(buf + i) + 1)
		argv[n++] = buf + i;
	*ret = argv;
	*ret_argc = n;
	return 0;
}

/* The command line for a message: args joined by spaces, shortened. */
static void cmdline_excerpt(const char *const *argv, size_t argc, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < argc && o + 1 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? " " : "", argv[i]);
	if (o >= outlen - 1 && outlen > 4)
		memcpy(out + outlen - 4, "...", 4);
}

static bool pid_is_emulator(pid_t pid, const char *argv0)
{
	char path[64], exe[PATH_MAX];
	ssize_t n;

	if (vmw_qemu_is_emulator(argv0))
		return true;
	/* argv[0] can be anything (libvirt and wrappers); the executable cannot. */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (vmw_mem_has_opener()) {
		/* The executable, opened (O_PATH) by whoever may; its name from our fd. */
		_cleanup_close_ int fd = vmw_mem_open_privileged(path, O_PATH);
		if (fd < 0)
			return false;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, exe, sizeof(exe) - 1);
	} else {
		n = readlink(path, exe, sizeof(exe) - 1);
	}
	if (n <= 0)
		return false;
	exe[n] = '\0';
	if (n > 10 && !strcmp(exe + n - 10, " (deleted)"))
		exe[n - 10] = '\0';
	return vmw_qemu_is_emulator(exe);
}

bool vmw_qemu_pid_is_emulator(pid_t pid)
{
	_cleanup_free_ char *cmd = NULL;
	size_t len = 0;

	if (pid <= 0 || read_proc(pid, "cmdline", &cmd, &len) < 0)
		return false;
	return pid_is_emulator(pid, cmd);
}

bool vmw_qemu_maps_path(pid_t pid, const char *path)
{
	struct vmw_rw_maps it;
	struct vmw_map m;
	int r;

	if (vmw_rw_maps_open(&it, pid, false) < 0)
		return false;
	while ((r = vmw_rw_maps_next(&it, 0, &m)) > 0 && strcmp(m.path, path))
		;
	vmw_rw_maps_close(&it);
	return r > 0;
}

int vmw_qemu_file_owner(const char *path, pid_t *ret_pid)
{
	struct vmw_qemu_config cfg;
	struct stat st;
	uint64_t off;

	if (stat(path, &st) < 0)
		return -ENOENT;
	return vmw_qemu_find_file_owner(st.st_dev, st.st_ino, NULL, ret_pid, &cfg, &off) == 0 ? 0 : -ENOENT;
}

/* Parse one maps line (up to its '\n'); false if it is not a rw mapping. */
bool vmw_maps_parse_line(const char *line, struct vmw_map *m)
{
	unsigned long long start, end, off, ino;
	char buf[PATH_MAX + 128], perms[5];
	size_t len = strcspn(line, "\n");
	int pos = 0;

	/* A NUL-terminated copy: sscanf's whitespace must not run on into the
	 * next line when this one (anonymous memory) has no path. */
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (sscanf(buf, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &off,
		   &m->major, &m->minor, &ino, &pos) < 7)
		return false;
	if (perms[0] != 'r' || perms[1] != 'w')
		return false;
	m->start = start;
	m->end = end;
	m->offset = off;
	m->inode = ino;
	m->shared = perms[3] == 's';
	snprintf(m->path, sizeof(m->path), "%s", buf + pos);
	return true;
}

/*
 * The size of the mapping on a maps line ("start-end ..."), read quickly: a
 * QEMU has hundreds of mappings and one of them is its RAM, so lines of
 * another size skip vmw_maps_parse_line (sscanf). false when the line does
 * not start with two hex numbers and a dash.
 */
static bool maps_line_size(const char *line, uint64_t *ret)
{
	uint64_t v[2] = { 0, 0 };
	const char *p = line;

	for (int i = 0; i < 2; i++) {
		const char *start = p;
		for (; p - start < 17; p++) {
			unsigned d;
			if (*p >= '0' && *p <= '9')
				d = (unsigned)(*p - '0');
			else if (*p >= 'a' && *p <= 'f')
				d = (unsigned)(*p - 'a' + 10);
			else
				break;
			v[i] = v[i] << 4 | d;
		}
		if (p == start || p - start > 16 || *p != (i ? ' ' : '-'))
			return false;
		p++;
	}
	*ret = v[1] - v[0];
	return v[1] >= v[0];
}

/*
 * PROCMAP_QUERY (Linux 6.11): an ioctl on /proc/PID/maps that answers with
 * the mapping at or after an address, its path only when asked. Reading the
 * text of a QEMU's maps formats the path of each of its ~300 mappings
 * (~0.3 ms, a twentieth of a `vmwatch ps`); asking for its ~90 read-write
 * ones and the path of the one or two of the RAM's size takes ~0.08 ms.
 * Debian 12's headers predate it: the ABI, fixed since (the struct may only
 * grow at its end, and the kernel takes its size from the first field), is
 * spelt here.
 */
struct procmap_query_abi {
	uint64_t size, query_flags, query_addr;
	uint64_t vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
	uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
	uint64_t vma_name_addr, build_id_addr;
};
_Static_assert(sizeof(struct procmap_query_abi) == 104, "struct procmap_query of Linux 6.11");
#define PMQ_IOCTL      _IOWR('f', 17, struct procmap_query_abi)
#define PMQ_READABLE   0x01u
#define PMQ_WRITABLE   0x02u
#define PMQ_SHARED     0x08u
#define PMQ_COVERING_OR_NEXT 0x10u
#define PMQ_MAX_ASKED  (1u << 20)   /* vm.max_map_count is 65,530 by default */

/* One query from addr; 0 or -errno (ENOENT: no mapping there or after). */
static int pmq(int fd, uint64_t addr, uint64_t flags, char *name, size_t name_size,
	       struct procmap_query_abi *q)
{
	*q = (struct procmap_query_abi){ .size = sizeof(*q), .query_flags = flags, .query_addr = addr,
					 .vma_name_addr = (uint64_t)(uintptr_t)name,
					 .vma_name_size = name ? (uint32_t)name_size : 0 };
	while (ioctl(fd, PMQ_IOCTL, q) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int vmw_rw_maps_open(struct vmw_rw_maps *it, pid_t pid, bool text_only)
{
	struct procmap_query_abi q;
	size_t len;
	int r;

	*it = (struct vmw_rw_maps){ .fd = open_proc(pid, "maps") };
	if (it->fd < 0)
		return it->fd;
	/* A kernel without it says ENOTTY (an unknown ioctl); anything but an
	 * answer or "no mapping" falls back to the text. */
	if (!text_only) {
		r = pmq(it->fd, 0, PMQ_COVERING_OR_NEXT | PMQ_READABLE | PMQ_WRITABLE, NULL, 0, &q);
		if (r == 0 || r == -ENOENT) {
			it->query = true;
			it->done = r == -ENOENT;
			return 0;
		}
		if (r == -ESRCH) {
			vmw_rw_maps_close(it);
			return r;
		}
	}
	if ((r = read_all(it->fd, &it->text, &len)) < 0) {
		vmw_rw_maps_close(it);
		return r;
	}
	it->line = it->text;
	return 0;
}

static int rw_maps_next_query(struct vmw_rw_maps *it, uint64_t size, struct vmw_map *m)
{
	struct procmap_query_abi q;
	int r;

	while (!it->done) {
		if (++it->asked > PMQ_MAX_ASKED)
			return -ELOOP;
		r = pmq(it->fd, it->next, PMQ_COVERING_OR_NEXT | PMQ_READABLE | PMQ_WRITABLE, NULL, 0, &q);
		if (r == -ENOENT) {
			it->done = true;
			break;
		}
		if (r < 0)
			return r;
		if (q.vma_end <= q.vma_start || q.vma_end <= it->next)
			return -EIO;    /* never: each answer lies after the last */
		it->next = q.vma_end;
		if (size && q.vma_end - q.vma_start != size)
			continue;
		/* Its path: ask again for the mapping at its start (still the same
		 * one unless QEMU remapped meanwhile; then the size decides again). */
		r = pmq(it->fd, q.vma_start, PMQ_READABLE | PMQ_WRITABLE, m->path, sizeof(m->path), &q);
		if (r == -ENOENT || r == -ENAMETOOLONG)
			continue;
		if (r < 0)
			return r;
		if (size && q.vma_end - q.vma_start != size)
			continue;
		if (!q.vma_name_size)
			m->path[0] = '\0';
		m->path[sizeof(m->path) - 1] = '\0';
		m->start = q.vma_start;
		m->end = q.vma_end;
		m->offset = q.vma_offset;
		m->major = q.dev_major;
		m->minor = q.dev_minor;
		m->inode = q.inode;
		m->shared = q.vma_flags & PMQ_SHARED;
		return 1;
	}
	return 0;
}

int vmw_rw_maps_next(struct vmw_rw_maps *it, uint64_t size, struct vmw_map *m)
{
	if (it->query)
		return rw_maps_next_query(it, size, m);
	while (it->line && *it->line) {
		char *line = it->line, *nl = strchr(line, '\n');
		uint64_t sz;

		it->line = nl ? nl + 1 : NULL;
		if (size && (!maps_line_size(line, &sz) || sz != size))
			continue;
		if (vmw_maps_parse_line(line, m) && (!size || m->end - m->start == size))
			return 1;
	}
	return 0;
}

void vmw_rw_maps_close(struct vmw_rw_maps *it)
{
	if (it->fd >= 0)
		close(it->fd);
	free(it->text);
	*it = (struct vmw_rw_maps){ .fd = -1 };
}

static bool path_is_deleted(const char *path)
{
	size_t n = strlen(path);
	return n > 10 && !strcmp(path + n - 10, " (deleted)");
}

/* Is this mapping the kind the command line announced? */
static bool map_expected(const struct vmw_map *m, const struct vmw_qemu_config *cfg)
{
	char path[PATH_MAX];
	size_t n;

	if (m->shared != cfg->share)
		return false;
	snprintf(path, sizeof(path), "%s", m->path);
	if (path_is_deleted(path))
		path[strlen(path) - 10] = '\0';
	switch (cfg->backend) {
	case VMW_BACKEND_FILE:
		/* mem-path is the file, or a directory QEMU made a temp file in. */
		n = strlen(cfg->mem_path);
		while (n > 1 && cfg->mem_path[n - 1] == '/')
			n--;
		return !strcmp(path, cfg->mem_path) ||
		       (!strncmp(path, cfg->mem_path, n) && path[n] == '/');
	case VMW_BACKEND_MEMFD:
		return !strncmp(path, "/memfd:", 7);
	case VMW_BACKEND_RAM:
	case VMW_BACKEND_DEFAULT:
		/* anonymous: no name; shared anonymous memory shows as /dev/zero */
		return cfg->share ? (!path[0] || !strcmp(path, "/dev/zero") || !strncmp(path, "/SYSV", 5))
				  : !path[0];
	}
	return false;
}

/* Open the file behind a shared mapping of QEMU and check it is that inode. */
static int open_mapped_file(pid_t pid, const struct vmw_map *m, int *ret_fd, struct vmw_error *err)
{
	char path[PATH_MAX];
	int fd, first_errno;
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	fd = vmw_mem_open_privileged(path, O_RDONLY);
	first_errno = fd < 0 ? -fd : 0;
	if (fd < 0 && m->path[0] == '/' && !path_is_deleted(m->path))
		fd = vmw_mem_open_privileged(m->path, O_RDONLY);
	if (fd < 0) {
		/* A memfd or deleted file: QEMU still holds an fd for it. */
		_cleanup_(closedirp_) DIR *d = NULL;
		struct dirent *de;

		int dfd;

		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
		dfd = vmw_mem_open_privileged(path, O_RDONLY | O_DIRECTORY);
		if (dfd >= 0 && !(d = fdopendir(dfd)))
			close(dfd);
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, de->d_name);
			fd = vmw_mem_open_privileged(path, O_RDONLY);
			if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_ino != m->inode ||
					major(st.st_dev) != m->major || minor(st.st_dev) != m->minor)) {
				close(fd);
				fd = -1;
			}
			if (fd >= 0)
				break;
		}
	}
	if (fd < 0) {
		if (first_errno == EPERM || first_errno == EACCES)
			return vmw_error_set(err, -EACCES,
				"cannot open QEMU's RAM file through /proc/%d/map_files: permission denied (run as root)",
				(int)pid);
		return vmw_error_set(err, -ENOENT, "cannot open the file QEMU %d maps as RAM (%s): %s",
				     (int)pid, m->path, strerror(first_errno));
	}
	if (fstat(fd, &st) < 0 || st.st_ino != m->inode || major(st.st_dev) != m->major ||
	    minor(st.st_dev) != m->minor) {
		close(fd);
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ESTALE, "the file at %s is no longer the one QEMU %d maps as RAM",
				     m->path, (int)pid);
	}
	*ret_fd = fd;
	return 0;
}

static const char *family_name(enum vmw_machine_family f)
{
	return f == VMW_MACHINE_Q35 ? "q35" : "pc";
}

/* ", pc layout, 5 GiB RAM" (naming the machine type when it is not the alias). */
static void describe_layout(char *out, size_t outlen, const struct vmw_machine *mach,
			    const struct vmw_qemu_config *cfg)
{
	char sz[32];
	const char *fam = family_name(mach->family);

	if (strcmp(cfg->machine, fam))
		snprintf(out, outlen, ", %s layout (machine %s), %s RAM", fam, cfg->machine,
			 vmw_fmt_size(cfg->ram_size, sz));
	else
		snprintf(out, outlen, ", %s layout, %s RAM", fam, vmw_fmt_size(cfg->ram_size, sz));
}

static int find_ram_mapping(pid_t pid, const struct vmw_qemu_config *cfg, struct vmw_map *ret,
			    struct vmw_error *err)
{
	struct vmw_rw_maps it;
	size_t nexpected = 0, nall = 0;
	struct vmw_map m, expected = { 0 }, any = { 0 };
	char sz[32], list[256] = "";
	int r;

	r = vmw_rw_maps_open(&it, pid, false);
	while (r >= 0 && (r = vmw_rw_maps_next(&it, cfg->ram_size, &m)) > 0) {
		if (nall < 4)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%llx-%llx %.40s",
				 nall ? "; " : "", (unsigned long long)m.start, (unsigned long long)m.end,
				 m.path[0] ? m.path : "[anon]");
		if (!nall++)
			any = m;
		if (map_expected(&m, cfg) && !nexpected++)
			expected = m;
	}
	vmw_rw_maps_close(&it);
	if (r == -ENOENT || r == -ESRCH)
		return vmw_error_set(err, -ESRCH, "no process with PID %d (it exited)", (int)pid);
	if (r == -EACCES || r == -EPERM)
		return vmw_error_set(err, -EACCES,
			"cannot read /proc/%d/maps: permission denied (run as root or as the user running QEMU)",
			(int)pid);
	if (r < 0)
		return vmw_error_set(err, r, "cannot read /proc/%d/maps: %s", (int)pid, strerror(-r));
	/* Prefer what the command line announced; accept a lone candidate anyway. */
	if (nexpected == 1) {
		*ret = expected;
		return 0;
	}
	if (nexpected == 0 && nall == 1) {
		*ret = any;
		return 0;
	}
	if (nall == 0)
		return vmw_error_set(err, -ENOTSUP,
			"found no writable mapping of exactly the guest's RAM size (%s) in /proc/%d/maps: "
			"this QEMU's memory set-up is not supported", vmw_fmt_size(cfg->ram_size, sz), (int)pid);
	return vmw_error_set(err, -ENOTSUP,
		"%zu mappings of exactly the guest's RAM size (%s) in /proc/%d/maps and none stands out as "
		"guest RAM (%s): ambiguous, not supported", nall, vmw_fmt_size(cfg->ram_size, sz), (int)pid, list);
}

/* QEMU's RAM configuration from its command line: -m, -machine, the backend. */
static int read_qemu_config(pid_t pid, struct vmw_qemu_config *cfg, struct vmw_machine *mach,
			    struct vmw_ram_layout *layout, struct vmw_error *err)
{
	_cleanup_free_ char *cmd = NULL;
	_cleanup_free_ const char **argv = NULL;
	size_t cmdlen, argc;
	int r;

	if (pid <= 0)
		return vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ESRCH, "no process with PID %d", (int)pid);
	r = read_proc(pid, "cmdline", &cmd, &cmdlen);
	if (r == -ENOENT || r == -ESRCH)
		return vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ESRCH, "no process with PID %d", (int)pid);
	if (r == -EACCES || r == -EPERM)
		return vmw_error_set(err, -EACCES, "cannot read /proc/%d/cmdline: permission denied (run as root)",
				     (int)pid);
	if (r < 0)
		return vmw_error_set(err, r, "cannot read /proc/%d/cmdline: %s", (int)pid, strerror(-r));
	if (cmdlen == 0)
		return vmw_error_set(err, -ENOEXEC,
			"PID %d is not a QEMU process (it has no command line: a kernel thread or a zombie)", (int)pid);
	if ((r = split_cmdline(cmd, cmdlen, &argv, &argc)) < 0)
		return r;
	if (!pid_is_emulator(pid, argv[0])) {
		char ex[160];
		cmdline_excerpt(argv, argc, ex, sizeof(ex));
		return vmw_error_set(err, -ENOEXEC, "PID %d is not a QEMU process (its command is '%s')",
				     (int)pid, ex);
	}
	if ((r = vmw_qemu_parse_cmdline(argc, argv, cfg, err)) < 0 ||
	    (r = vmw_machine_parse(cfg->machine, mach, err)) < 0 ||
	    (r = vmw_ram_layout(mach, cfg->ram_size, cfg->max_ram_below_4g, layout, err)) < 0) {
		vmw_error_prefix(err, "qemu:%d: ", (int)pid);
		return r;
	}
	return 0;
}

/* Map the file QEMU maps as RAM (fd, opened by open_mapped_file), read-only. */
static int map_shared_ram(struct vmw_mem *mem, int fd, pid_t pid, const struct vmw_map *m,
			  const struct vmw_qemu_config *cfg, const struct vmw_ram_layout *layout,
			  struct vmw_error *err)
{
	struct stat st;
	void *map;

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < m->offset + cfg->ram_size)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EIO,
				      "QEMU %d's RAM file %s is smaller than its mapping", (int)pid, m->path);
	map = mmap(NULL, cfg->ram_size, PROT_READ, MAP_SHARED, fd, (off_t)m->offset);
	if (map == MAP_FAILED)
		return vmw_error_setk(err, VMW_ERR_IO, -errno, "cannot map QEMU %d's RAM file %s: %s",
				      (int)pid, m->path, strerror(errno));
	vmw_mem_own_map(mem, map, cfg->ram_size);
	vmw_mem_own_map_file(mem, fd, m->offset);
	return vmw_mem_add_layout(mem, layout, map, 0);
}

/* Prove now that we may read QEMU's memory, rather than on the first real read. */
static int probe_process_read(struct vmw_mem *mem, pid_t pid, struct vmw_error *err)
{
	uint64_t probe;
	int r;

	if (vmw_mem_has_opener()) {
		/* Without ptrace rights of our own: /proc/PID/mem, opened by the opener. */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
		if ((mem->proc_mem_fd = vmw_mem_open_privileged(path, O_RDONLY)) < 0) {
			r = mem->proc_mem_fd;
			mem->proc_mem_fd = -1;
			return vmw_error_set(err, r == -ENOENT ? -ESRCH : r,
					     "cannot open the memory of QEMU PID %d (%s): %s", (int)pid, path,
					     strerror(-r));
		}
	}
	r = vmw_mem_read(mem, mem->ranges[0].start, &probe, sizeof(probe));

	if (r == -EACCES)
		return vmw_error_set(err, -EACCES,
			"cannot read the memory of QEMU PID %d (process_vm_readv: permission denied): "
			"run as root or as the user running QEMU", (int)pid);
	if (r < 0)
		return vmw_error_set(err, r == -ESRCH ? -ESRCH : -EIO,
			r == -ESRCH ? "no process with PID %d (it exited)"
				    : "cannot read the memory of QEMU PID %d with process_vm_readv", (int)pid);
	memset(&mem->stats, 0, sizeof(mem->stats));
	return 0;
}

static void describe_qemu_source(struct vmw_mem *mem, pid_t pid, const struct vmw_map *m, bool shared,
				 const struct vmw_machine *mach, const struct vmw_qemu_config *cfg)
{
	char tail[256];

	describe_layout(tail, sizeof(tail), mach, cfg);
	if (shared && !strncmp(m->path, "/memfd:", 7))
		snprintf(mem->desc, sizeof(mem->desc), "qemu:%d, memfd %.*s%s", (int)pid,
			 (int)(strlen(m->path) - 7 - (path_is_deleted(m->path) ? 10 : 0)), m->path + 7, tail);
	else if (shared)
		snprintf(mem->desc, sizeof(mem->desc), "qemu:%d, shared file %s%s", (int)pid, m->path, tail);
	else if (m->shared)
		snprintf(mem->desc, sizeof(mem->desc), "qemu:%d, shared %s read with process_vm_readv%s",
			 (int)pid, m->path[0] ? m->path : "memory", tail);
	else
		snprintf(mem->desc, sizeof(mem->desc), "qemu:%d, private memory read with %s%s",
			 (int)pid, mem->proc_mem_fd >= 0 ? "/proc/PID/mem" : "process_vm_readv", tail);
}

int vmw_mem_open_qemu(pid_t pid, const struct vmw_mem_opts *opts_in,
		      struct vmw_mem **ret, struct vmw_error *err)
{
	struct vmw_mem_opts opts;
	struct vmw_qemu_config cfg;
	struct vmw_machine mach;
	struct vmw_ram_layout layout;
	struct vmw_map m;
	struct vmw_mem *mem = NULL;
	bool shared;
	int r;

	vmw_mem_opts_copy(&opts, opts_in);
	if ((r = read_qemu_config(pid, &cfg, &mach, &layout, err)) < 0)
		return r;
	if ((r = find_ram_mapping(pid, &cfg, &m, err)) < 0)
		return r;
	if ((r = vmw_mem_new(&mem)) < 0)
		return r;
	shared = m.shared && !opts.force_process_read;
	if (shared) {
		_cleanup_close_ int fd = -1;

		r = open_mapped_file(pid, &m, &fd, err);
		if (r == -EACCES) {
			/* Without CAP_SYS_ADMIN map_files is closed, but ptrace access may
			 * still let us read QEMU's memory directly. */
			shared = false;
			if (err)
				*err = (struct vmw_error){ 0 };
		} else if (r < 0 || (r = map_shared_ram(mem, fd, pid, &m, &cfg, &layout, err)) < 0) {
			goto fail;
		}
	}
	if (!shared) {
		mem->pid = pid;
		r = vmw_mem_add_layout(mem, &layout, NULL, m.start);
	}
	/* Remember whose RAM this is (vmw_mem_pid), mapped or not. */
	mem->owner = pid;
	if (r < 0 || (r = vmw_mem_finish(mem)) < 0)
		goto fail;
	if (!shared && (r = probe_process_read(mem, pid, err)) < 0)
		goto fail;
	describe_qemu_source(mem, pid, &m, shared, &mach, &cfg);
	*ret = mem;
	return 0;

fail:
	vmw_mem_close(mem);
	return r;
}

/*
 * Is pid a QEMU system emulator whose maps hold a shared mapping of the file
 * (dev, ino) of exactly its RAM size (its RAM block)? 0 with its config and
 * the block's file offset, or -ENOENT.
 */
static int check_file_owner(pid_t pid, dev_t dev, ino_t ino, struct vmw_qemu_config *ret_cfg,
			    uint64_t *ret_offset)
{
	_cleanup_free_ char *cmd = NULL;
	_cleanup_free_ const char **argv = NULL;
	size_t cmdlen, argc;
	struct vmw_qemu_config cfg;
	struct vmw_rw_maps it;
	struct vmw_map m;
	int r;

	if (pid <= 0 || pid == getpid())
		return -ENOENT;
	if (read_proc(pid, "cmdline", &cmd, &cmdlen) < 0 || !cmdlen ||
	    split_cmdline(cmd, cmdlen, &argv, &argc) < 0 || !pid_is_emulator(pid, argv[0]) ||
	    vmw_qemu_parse_cmdline(argc, argv, &cfg, NULL) < 0 || vmw_rw_maps_open(&it, pid, false) < 0)
		return -ENOENT;
	while ((r = vmw_rw_maps_next(&it, cfg.ram_size, &m)) > 0)
		if (m.shared && m.inode == (uint64_t)ino && m.major == major(dev) && m.minor == minor(dev))
			break;
	vmw_rw_maps_close(&it);
	if (r <= 0)
		return -ENOENT;
	*ret_cfg = cfg;
	*ret_offset = m.offset;
	return 0;
}

/*
 * Which running QEMU maps this file (dev, ino) shared as its RAM block?
 * Looks only at processes that are QEMU system emulators; a few hundred
 * small /proc reads on a busy host, so the owner found is remembered in
 * hint_dir (mem_owner.c) and checked first next time.
 */
int vmw_qemu_find_file_owner(dev_t dev, ino_t ino, const char *hint_dir, pid_t *ret_pid,
			     struct vmw_qemu_config *ret_cfg, uint64_t *ret_offset)
{
	_cleanup_(closedirp_) DIR *d = NULL;
	struct vmw_qemu_id hint = { 0 }, now;
	struct dirent *de;

	if (hint_dir && vmw_owner_hint_get(hint_dir, (uint64_t)dev, (uint64_t)ino, &hint) == 0 &&
	    vmw_qemu_id_get(hint.pid, &now) == 0 && now.start_ticks == hint.start_ticks &&
	    check_file_owner(hint.pid, dev, ino, ret_cfg, ret_offset) == 0) {
		*ret_pid = hint.pid;
		return 0;
	}
	if (!(d = opendir("/proc")))
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid > INT32_MAX ||
		    check_file_owner((pid_t)pid, dev, ino, ret_cfg, ret_offset) < 0)
			continue;
		*ret_pid = (pid_t)pid;
		/* Remember it (best effort: an unwritable cache only costs the scan). */
		if (hint_dir && vmw_qemu_id_get((pid_t)pid, &now) == 0)
			vmw_owner_hint_put(hint_dir, (uint64_t)dev, (uint64_t)ino, &now);
		return 0;
	}
	return -ENOENT;
}
