/* SPDX-License-Identifier: MIT */
/* kvfile.c - what the daemons' configurations share: files of `key = value`
 * lines (comments #, ;, optional quotes, '-' in keys read as '_'),
 * durations, PEM files. */
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

static char *trim(char *s)
{
	char *e;
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int vmw_kv_load(const char *path, vmw_kv_fn fn, void *opaque, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[4096];
	unsigned lineno = 0;
	struct stat st;
	int r;

	if (!f)
		return vmw_error_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) < 0)
		return vmw_error_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *s, *eq, *k, *v;
		size_t vl;
		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			return vmw_error_set(err, -EINVAL, "%s:%u: line too long", path, lineno);
		s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (!(eq = strchr(s, '=')))
			return vmw_error_set(err, -EINVAL, "%s:%u: expected 'key = value'", path, lineno);
		*eq = '\0';
		k = trim(s);
		v = trim(eq + 1);
		vl = strlen(v);
		if (vl >= 2 && ((*v == '"' && v[vl - 1] == '"') || (*v == '\'' && v[vl - 1] == '\''))) {
			v[vl - 1] = '\0';
			v++;
		}
		for (char *p = k; *p; p++)
			if (*p == '-')
				*p = '_';
		if ((r = fn(opaque, k, v, (unsigned)(st.st_mode & 07777), err)) < 0)
			return vmw_error_prefix(err, "%s:%u: ", path, lineno);
	}
	return 0;
}

int vmw_parse_duration(const char *s, double *ret)
{
	char *end;
	double v, mul;

	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mul = 1.0;
	else if (!strcmp(end, "ms"))
		mul = 1e-3;
	else if (!strcmp(end, "m") || !strcmp(end, "min"))
		mul = 60.0;
	else if (!strcmp(end, "h"))
		mul = 3600.0;
	else
		return -EINVAL;
	*ret = v * mul;
	return 0;
}

int vmw_read_pem(const char *path, char **ret, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");

	return vmw_read_pem_from(f, path, ret, err);
}

int vmw_read_pem_from(FILE *f, const char *path, char **ret, struct vmw_error *err)
{
	struct stat st;
	char *buf;
	size_t n;

	if (!f)
		return vmw_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 20))
		return vmw_error_set(err, -EINVAL, "%s: not a PEM file of a sane size", path);
	if (!(buf = calloc(1, (size_t)st.st_size + 1)))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	n = fread(buf, 1, (size_t)st.st_size, f);
	buf[n] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		free(buf);
		return vmw_error_set(err, -EINVAL, "%s: not PEM (no -----BEGIN line)", path);
	}
	*ret = buf;
	return 0;
}

int vmw_set_str(char **dst, const char *value)
{
	char *s = strdup(value);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}
