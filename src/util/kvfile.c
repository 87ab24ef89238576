/* SPDX-License-Identifier: MIT */
/* kvfile.c - files of `key = value` lines (the configuration files of the
 * daemons): comments (#, ;), optional quotes, '-' in keys read as '_'. */
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
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
