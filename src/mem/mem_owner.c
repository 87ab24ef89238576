/* SPDX-License-Identifier: MIT */
/*
 * mem_owner.c - which QEMU maps a RAM file, remembered: the owner hints of
 * file: targets (DIR/ram-owners in the user's cache directory).
 *
 * Finding the QEMU that maps a RAM file means reading the command line of
 * every process on the host and the maps of every QEMU among them
 * (vmw_qemu_find_file_owner). The answer is remembered per file (device and
 * inode) as the owner's pid and start time, and the next open checks that one
 * process first, with exactly the test the scan applies to each process
 * (plus its start time); only when it fails does the scan run again. So a
 * hint saves work and never decides anything: a stale, damaged or forged
 * file costs one process's check before the scan.
 *
 * The file is input like guest RAM: it is used only when it and its
 * directory pass the cache's StrictModes rule (src/util/cachefile.c), its
 * size is bounded, and it is parsed strictly (any malformed line and the
 * whole file is ignored). Format, one entry per line after a header line:
 *
 *   vmwatch ram-owners 1
 *   <st_dev hex> <st_ino hex> <pid decimal> <start time decimal, clock ticks>
 *
 * at most VMW_OWNER_HINTS_MAX entries, most recently written first.
 */
#include "mem/mem_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#define HEADER "vmwatch ram-owners 1\n"
#define FILE_NAME "ram-owners"

/* One number of digits in base 10 or 16 (lowercase), ending at a space or
 * newline (*pp then points at it); at most max. No sign, no prefix. */
static int parse_num(const char **pp, const char *end, unsigned base, uint64_t max, uint64_t *ret)
{
	const char *p = *pp;
	uint64_t v = 0;
	size_t n = 0;

	for (; p < end && *p != ' ' && *p != '\n'; p++, n++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else
			return -EINVAL;
		if (v > (max - d) / base)
			return -EINVAL;
		v = v * base + d;
	}
	if (!n || n > 20 || p == end)
		return -EINVAL;
	*pp = p;
	*ret = v;
	return 0;
}

/* Walk the entries of a hints file: 0 and *n entries in e (up to cap), or
 * -EINVAL when anything in it is malformed. */
static int parse_all(const char *buf, size_t len, struct vmw_owner_hint *e, size_t cap, size_t *n)
{
	const char *p = buf, *end = buf + len;

	*n = 0;
	if (len > VMW_OWNER_HINTS_MAX_BYTES || len < sizeof(HEADER) - 1 ||
	    memcmp(buf, HEADER, sizeof(HEADER) - 1) || memchr(buf, '\0', len))
		return -EINVAL;
	p += sizeof(HEADER) - 1;
	while (p < end) {
		struct vmw_owner_hint h;
		uint64_t pid;

		if (*n == VMW_OWNER_HINTS_MAX ||
		    parse_num(&p, end, 16, UINT64_MAX, &h.dev) < 0 || *p++ != ' ' ||
		    parse_num(&p, end, 16, UINT64_MAX, &h.ino) < 0 || *p++ != ' ' ||
		    parse_num(&p, end, 10, INT32_MAX, &pid) < 0 || *p++ != ' ' || pid == 0 ||
		    parse_num(&p, end, 10, UINT64_MAX, &h.owner.start_ticks) < 0 || *p++ != '\n')
			return -EINVAL;
		h.owner.pid = (pid_t)pid;
		for (size_t i = 0; i < *n && i < cap; i++)
			if (e[i].dev == h.dev && e[i].ino == h.ino)
				return -EINVAL;   /* one file, two owners: not something we wrote */
		if (*n < cap)
			e[*n] = h;
		(*n)++;
	}
	return 0;
}

int vmw_owner_hints_find(const char *buf, size_t len, uint64_t dev, uint64_t ino,
			 struct vmw_qemu_id *ret)
{
	struct vmw_owner_hint e[VMW_OWNER_HINTS_MAX];
	size_t n;
	int r = parse_all(buf, len, e, ARRAY_SIZE(e), &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (e[i].dev == dev && e[i].ino == ino) {
			*ret = e[i].owner;
			return 0;
		}
	return -ENOENT;
}

ssize_t vmw_owner_hints_update(const char *old, size_t oldlen, const struct vmw_owner_hint *h,
			       char *out, size_t size)
{
	struct vmw_owner_hint e[VMW_OWNER_HINTS_MAX];
	size_t n = 0, o;
	int k;

	/* A malformed old file is replaced. */
	if (!old || parse_all(old, oldlen, e, ARRAY_SIZE(e), &n) < 0)
		n = 0;
	if (size < sizeof(HEADER))
		return -ENOBUFS;
	memcpy(out, HEADER, sizeof(HEADER) - 1);
	o = sizeof(HEADER) - 1;
	for (size_t i = 0, written = 0; i <= n && written < VMW_OWNER_HINTS_MAX; i++) {
		const struct vmw_owner_hint *x = i == 0 ? h : &e[i - 1];
		if (i > 0 && x->dev == h->dev && x->ino == h->ino)
			continue;
		if (x->owner.pid <= 0)
			return -EINVAL;
		k = snprintf(out + o, size - o, "%" PRIx64 " %" PRIx64 " %d %" PRIu64 "\n", x->dev, x->ino,
			     (int)x->owner.pid, x->owner.start_ticks);
		if (k < 0 || (size_t)k >= size - o)
			return -ENOBUFS;
		o += (size_t)k;
		written++;
	}
	return (ssize_t)o;
}

/* DIR/ram-owners whole into buf (at most VMW_OWNER_HINTS_MAX_BYTES); its
 * length, or -errno (-EPERM: not trusted, -EFBIG: too large). */
static ssize_t read_hints(const char *dir, char *buf, size_t size)
{
	char path[4200];
	struct stat st;
	ssize_t len;
	_cleanup_close_ int fd = -1;

	if ((size_t)snprintf(path, sizeof(path), "%s/" FILE_NAME, dir) >= sizeof(path))
		return -ENAMETOOLONG;
	if ((fd = vmw_cache_open_trusted(path, &st)) < 0)
		return fd;
	if ((uint64_t)st.st_size >= size)
		return -EFBIG;
	if ((len = vmw_read_full(fd, buf, size)) < 0)
		return len;
	return (size_t)len >= size ? -EFBIG : len;
}

int vmw_owner_hint_get(const char *dir, uint64_t dev, uint64_t ino, struct vmw_qemu_id *ret)
{
	char buf[VMW_OWNER_HINTS_MAX_BYTES + 1];
	ssize_t len = read_hints(dir, buf, sizeof(buf));

	if (len < 0)
		return (int)len;
	return vmw_owner_hints_find(buf, (size_t)len, dev, ino, ret);
}

int vmw_owner_hint_put(const char *dir, uint64_t dev, uint64_t ino, const struct vmw_qemu_id *owner)
{
	char old[VMW_OWNER_HINTS_MAX_BYTES + 1], out[VMW_OWNER_HINTS_MAX_BYTES], path[4200];
	struct vmw_owner_hint h = { .dev = dev, .ino = ino, .owner = *owner };
	ssize_t oldlen, len;
	int r;

	if ((r = vmw_cache_mkdir_p(dir)) < 0)
		return r;
	oldlen = read_hints(dir, old, sizeof(old));
	len = vmw_owner_hints_update(oldlen >= 0 ? old : NULL, oldlen >= 0 ? (size_t)oldlen : 0, &h,
				     out, sizeof(out));
	if (len < 0)
		return (int)len;
	if ((size_t)snprintf(path, sizeof(path), "%s/" FILE_NAME, dir) >= sizeof(path))
		return -ENAMETOOLONG;
	return vmw_cache_write_atomic(path, out, (size_t)len);
}

int vmw_owner_hint_dir(const struct vmw_mem_opts *opts, char *buf, size_t size)
{
	if (opts->no_cache || vmw_cache_dir(opts->cache_dir, buf, size) < 0)
		return -ENOENT;
	return vmw_cache_dir_trusted(buf, NULL, 0) == -EPERM ? -EPERM : 0;
}
