/* SPDX-License-Identifier: MIT */
/*
 * ps_select.c - which processes vmwatch ps lists (-p, -u, -U, -C: any match,
 * as procps) and the tree order of --forest / -H.
 */
#include "cli/ps.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LIST_SEP ", \t"

static int append(void **arr, size_t *n, size_t elem, const void *v)
{
	void *a = realloc(*arr, (*n + 1) * elem);
	if (!a)
		return -ENOMEM;
	memcpy((char *)a + *n * elem, v, elem);
	*arr = a;
	(*n)++;
	return 0;
}

/* Each item of a comma/blank-separated list, NUL-terminated in a copy. */
static int each(const char *list, int (*fn)(void *arg, const char *item), void *arg)
{
	char *copy = strdup(list), *save = NULL;
	int r = copy ? 0 : -ENOMEM, items = 0;
	for (char *it = copy ? strtok_r(copy, LIST_SEP, &save) : NULL; it && !r;
	     it = strtok_r(NULL, LIST_SEP, &save), items++)
		r = fn(arg, it);
	free(copy);
	return r ? r : items ? 0 : -EINVAL;
}

struct sel_arg {
	struct ps_select *s;
	bool real;
	char *err;
	size_t errsize;
};

static int number(const char *it, long long max, long long *v, const struct sel_arg *a, const char *what)
{
	char *end;
	errno = 0;
	*v = strtoll(it, &end, 10);
	if (errno || *end || end == it || *v < 0 || *v > max) {
		snprintf(a->err, a->errsize, "bad %s '%s'", what, it);
		return -EINVAL;
	}
	return 0;
}

static int add_pid(void *arg, const char *it)
{
	struct sel_arg *a = arg;
	long long v;
	int r = number(it, INT32_MAX, &v, a, "process ID");
	int32_t pid = (int32_t)v;
	return r ? r : append((void **)&a->s->pids, &a->s->npids, sizeof(pid), &pid);
}

/* ---- -u/-U: numeric uids, or names the guest's /etc/passwd resolves later */

static bool all_digits(const char *s)
{
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int add_user_name(struct sel_arg *a, const char *it)
{
	struct ps_user_name u = { .name = strdup(it), .real = a->real };

	if (!u.name || append((void **)&a->s->unames, &a->s->nunames, sizeof(u), &u) < 0) {
		free(u.name);
		return -ENOMEM;
	}
	return 0;
}

int ps_select_resolve_users(struct ps_select *s, const struct vmw_users *u, char *err, size_t errsize)
{
	for (size_t i = 0; i < s->nunames; i++) {
		uint32_t uid;
		int r;
		if (!vmw_users_uid(u, s->unames[i].name, &uid)) {
			char name[80];
			vmw_text_sanitize(name, sizeof(name), s->unames[i].name);
			snprintf(err, errsize, "user '%s' is not in the guest's /etc/passwd (as its page cache "
				 "holds it); give a numeric uid", name);
			return -ENOENT;
		}
		if (s->unames[i].real)
			r = append((void **)&s->ruids, &s->nruids, sizeof(uid), &uid);
		else
			r = append((void **)&s->euids, &s->neuids, sizeof(uid), &uid);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_user(void *arg, const char *it)
{
	struct sel_arg *a = arg;
	long long v;
	int r;
	uint32_t uid;

	if (!all_digits(it))
		return add_user_name(a, it);
	if ((r = number(it, UINT32_MAX, &v, a, "user (a numeric uid)")))
		return r;
	uid = (uint32_t)v;
	if (a->real)
		return append((void **)&a->s->ruids, &a->s->nruids, sizeof(uid), &uid);
	return append((void **)&a->s->euids, &a->s->neuids, sizeof(uid), &uid);
}

static int add_comm(void *arg, const char *it)
{
	struct sel_arg *a = arg;
	char *c = strdup(it);
	if (!c || append((void **)&a->s->comms, &a->s->ncomms, sizeof(c), &c) < 0) {
		free(c);
		return -ENOMEM;
	}
	return 0;
}

static int parse(struct ps_select *s, const char *list, bool real, int (*fn)(void *, const char *),
		 const char *what, char *err, size_t errsize)
{
	struct sel_arg a = { s, real, err, errsize };
	err[0] = '\0';
	int r = each(list, fn, &a);
	if (r == -EINVAL && !err[0])
		snprintf(err, errsize, "empty %s list", what);
	return r;
}

int ps_select_pids(struct ps_select *s, const char *list, char *err, size_t errsize)
{
	return parse(s, list, false, add_pid, "process ID", err, errsize);
}

int ps_select_users(struct ps_select *s, const char *list, bool real, char *err, size_t errsize)
{
	return parse(s, list, real, add_user, "user", err, errsize);
}

int ps_select_comms(struct ps_select *s, const char *list, char *err, size_t errsize)
{
	return parse(s, list, false, add_comm, "command name", err, errsize);
}

bool ps_selected(const struct ps_select *s, const struct vmw_proc *p)
{
	if (!s->npids && !s->neuids && !s->nruids && !s->ncomms && !s->nunames)
		return true;
	for (size_t i = 0; i < s->npids; i++)
		if (s->pids[i] == p->pid)
			return true;
	for (size_t i = 0; i < s->neuids; i++)
		if (s->euids[i] == p->euid)
			return true;
	for (size_t i = 0; i < s->nruids; i++)
		if (s->ruids[i] == p->uid)
			return true;
	for (size_t i = 0; i < s->ncomms; i++)
		if (!strcmp(s->comms[i], p->comm))
			return true;
	return false;
}

void ps_select_free(struct ps_select *s)
{
	for (size_t i = 0; i < s->ncomms; i++)
		free(s->comms[i]);
	for (size_t i = 0; i < s->nunames; i++)
		free(s->unames[i].name);
	free(s->unames);
	free(s->pids);
	free(s->euids);
	free(s->ruids);
	free(s->comms);
	memset(s, 0, sizeof(*s));
}

/* Depth-first from each root, children in their current order. The guest
 * chose the ppids: a loop (no root) is cut where it is entered. */
static void visit(const struct ps_row *in, size_t n, size_t i, int depth, bool *done,
		  struct ps_row *out, size_t *k)
{
	done[i] = true;
	out[*k] = in[i];
	out[(*k)++].depth = depth;
	for (size_t j = 0; j < n; j++)
		if (!done[j] && !in[j].t && in[j].p->ppid == in[i].p->pid && j != i)
			visit(in, n, j, depth + 1, done, out, k);
	/* Threads (-L) stay under their process, unindented. */
}

int ps_forest(struct ps_row *rows, size_t n)
{
	struct ps_row *out = malloc((n + 1) * sizeof(*out));
	bool *done = calloc(n + 1, 1), *has_parent = calloc(n + 1, 1);
	size_t k = 0;

	if (!out || !done || !has_parent) {
		free(out);
		free(done);
		free(has_parent);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n && !rows[i].t; j++)
			if (j != i && !rows[j].t && rows[j].p->pid == rows[i].p->ppid && rows[i].p->pid != rows[i].p->ppid)
				has_parent[i] = true;
	for (size_t i = 0; i < n; i++)
		if (!done[i] && !rows[i].t && !has_parent[i])
			visit(rows, n, i, 0, done, out, &k);
	for (size_t i = 0; i < n; i++)     /* cycles, and thread rows */
		if (!done[i])
			visit(rows, n, i, 0, done, out, &k);
	memcpy(rows, out, n * sizeof(*rows));
	free(out);
	free(done);
	free(has_parent);
	return 0;
}
