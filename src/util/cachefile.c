/* SPDX-License-Identifier: MIT */
/*
 * cachefile.c - the user's cache directory and its files, for every layer
 * that keeps something there (src/kernel: the discovery cache; src/mem: the
 * RAM owner hints). The rules are ssh's StrictModes: a directory or file
 * that someone other than us (or root) owns or could write is not used; files
 * are opened without following symlinks and written atomically (temporary
 * name, rename). What is read is still input: each reader validates it.
 */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

int vmw_cache_dir(const char *opt_dir, char *buf, size_t size)
{
	const char *x = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n;

	if (opt_dir && *opt_dir)
		n = snprintf(buf, size, "%s", opt_dir);
	else if (x && *x == '/')
		n = snprintf(buf, size, "%s/vmwatch/discovery", x);
	else if (home && *home)
		n = snprintf(buf, size, "%s/.cache/vmwatch/discovery", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int vmw_cache_mkdir_p(const char *path)
{
	char tmp[4096];
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * StrictModes for one file or directory: owned by us or root, and writable
 * by nobody else. The one exception is a root-owned sticky directory such
 * as /tmp on the way to the cache: others may add names there but not
 * replace ours.
 */
static bool trusted_stat(const struct stat *st, bool ancestor)
{
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return false;
	if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
		return true;
	return ancestor && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX) && st->st_uid == 0;
}

static int untrusted(const char *path, const struct stat *st, char *why, size_t n)
{
	if (why)
		snprintf(why, n, "%s is owned by uid %u with mode %04o: not trusted (it must belong to "
			 "uid %u or root and be writable by nobody else; fix its owner and mode or "
			 "remove it)", path, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777),
			 (unsigned)geteuid());
	return -EPERM;
}

int vmw_cache_dir_trusted(const char *dir, char *why, size_t n)
{
	char path[4096];
	struct stat st;
	size_t len = strlen(dir);

	if (len >= sizeof(path) || dir[0] != '/')
		return -EINVAL;
	memcpy(path, dir, len + 1);
	/* Judge the real directories, not symlinks to them: resolve the longest
	 * existing prefix (the rest is created by us, 0700). */
	for (;;) {
		char real[PATH_MAX];
		if (realpath(path, real)) {
			if (strlen(real) >= sizeof(path))
				return -ENAMETOOLONG;
			strcpy(path, real);
			break;
		}
		char *slash = strrchr(path, '/');
		if (errno != ENOENT || !slash || slash == path)
			return errno == ENOENT ? 0 : -errno;
		*slash = '\0';
	}
	/* The directory itself, then each ancestor up to /. */
	for (bool self = true;; self = false) {
		if (lstat(path, &st) < 0) {
			if (errno != ENOENT)
				return -errno;   /* not there yet: created 0700 on first save */
		} else if (!S_ISDIR(st.st_mode) || !trusted_stat(&st, !self)) {
			return untrusted(path, &st, why, n);
		}
		char *slash = strrchr(path, '/');
		if (!slash || slash == path)
			break;
		*slash = '\0';
	}
	return 0;
}

int vmw_cache_open_trusted(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st->st_mode) || !trusted_stat(st, false)) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

ssize_t vmw_read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = read(fd, (char *)buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

int vmw_cache_write_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4200];
	_cleanup_close_ int fd = -1;
	const uint8_t *p = data;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			unlink(tmp);
			return e;
		}
		p += w;
		len -= (size_t)w;
	}
	if (close(TAKE_FD(fd)) < 0 || rename(tmp, path) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return 0;
}
