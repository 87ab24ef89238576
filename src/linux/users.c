/* SPDX-License-Identifier: MIT */
/*
 * users.c - user/group names and the OS name from the guest's files (see
 * users.h).
 */
#include "linux/users.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE  (8u << 20)   /* passwd/group larger than this are not read */

struct entry {
	uint32_t id;
	char name[VMW_USER_NAME_MAX + 1];
};

struct table {
	struct entry *e;
	size_t n;
	/* The inode it was read from: re-read when any of this changes. */
	uint64_t inode, ino, size, nrpages;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	bool read;
};

struct vmw_users {
	struct table users, groups;
	struct table os_file;          /* the os-release inode read (no entries) */
	struct vmw_os_release os;
	bool os_ok;
};

int vmw_users_new(struct vmw_users **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

void vmw_users_free(struct vmw_users *u)
{
	if (!u)
		return;
	free(u->users.e);
	free(u->groups.e);
	free(u);
}

static bool name_ok(const char *s, size_t len)
{
	if (!len || len > VMW_USER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || c == ':')
			return false;
	}
	return true;
}

/* "name:x:id:..." -> entry; false for a line that is not one. */
static bool parse_line(const char *s, size_t len, struct entry *e)
{
	const char *c1 = memchr(s, ':', len), *c2, *p;
	uint64_t id = 0;
	size_t digits = 0;

	if (!c1 || !name_ok(s, (size_t)(c1 - s)))
		return false;
	c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s));
	if (!c2)
		return false;
	for (p = c2 + 1; p < s + len && *p >= '0' && *p <= '9'; p++, digits++) {
		id = id * 10 + (uint64_t)(*p - '0');
		if (id > UINT32_MAX)
			return false;
	}
	if (!digits || (p < s + len && *p != ':'))
		return false;
	e->id = (uint32_t)id;
	memcpy(e->name, s, (size_t)(c1 - s));
	e->name[c1 - s] = '\0';
	return true;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

size_t vmw_users_parse(struct vmw_users *u, bool groups, const char *text, size_t len)
{
	struct table *t = groups ? &u->groups : &u->users;
	struct entry *e = NULL;
	size_t n = 0, cap = 0, kept = 0;

	for (size_t at = 0; at < len && n < VMW_USERS_MAX;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t l = nl ? (size_t)(nl - (text + at)) : len - at;
		struct entry x;

		if (parse_line(text + at, l, &x)) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct entry *ne = realloc(e, nc * sizeof(*ne));
				if (!ne)
					break;
				e = ne;
				cap = nc;
			}
			e[n++] = x;
		}
		at += l + 1;
	}
	/* Sorted by id; of several entries with one id the first counts (getpwuid). */
	if (n)
		qsort(e, n, sizeof(*e), cmp_entry);
	for (size_t i = 0; i < n; i++)
		if (!kept || e[kept - 1].id != e[i].id)
			e[kept++] = e[i];
	free(t->e);
	t->e = e;
	t->n = kept;
	return kept;
}

static const char *lookup(const struct table *t, uint32_t id)
{
	struct entry key = { .id = id };
	const struct entry *e = t->n ? bsearch(&key, t->e, t->n, sizeof(*t->e), cmp_entry) : NULL;
	return e ? e->name : NULL;
}

const char *vmw_users_name(const struct vmw_users *u, uint32_t uid)
{
	return u ? lookup(&u->users, uid) : NULL;
}

const char *vmw_users_group(const struct vmw_users *u, uint32_t gid)
{
	return u ? lookup(&u->groups, gid) : NULL;
}

bool vmw_users_uid(const struct vmw_users *u, const char *name, uint32_t *ret)
{
	for (size_t i = 0; u && i < u->users.n; i++)
		if (!strcmp(u->users.e[i].name, name)) {
			*ret = u->users.e[i].id;
			return true;
		}
	return false;
}

static bool same_inode(const struct table *t, const struct vmw_file *s)
{
	return t->read && t->inode == s->inode && t->ino == s->ino && t->size == s->size &&
	       t->mtime_sec == s->mtime_sec && t->mtime_nsec == s->mtime_nsec && t->nrpages == s->nrpages;
}

static void remember_inode(struct table *t, const struct vmw_file *s)
{
	t->inode = s->inode;
	t->ino = s->ino;
	t->size = s->size;
	t->nrpages = s->nrpages;
	t->mtime_sec = s->mtime_sec;
	t->mtime_nsec = s->mtime_nsec;
	t->read = true;
}

static bool refresh_one(struct vmw_users *u, struct vmw_files *f, bool groups)
{
	struct table *t = groups ? &u->groups : &u->users;
	const char *path = groups ? "/etc/group" : "/etc/passwd";
	struct vmw_error err = { 0 };
	struct vmw_file s;

	if (vmw_files_stat(f, path, &s, &err) < 0 || same_inode(t, &s))
		return false;
	if (vmw_files_read(f, path, MAX_FILE, &s, &err) < 0)
		return false;
	bool ok = !s.nholes && !s.incomplete;
	/* A file with holes would lose names: keep what was known. */
	if (ok) {
		vmw_users_parse(u, groups, (const char *)s.data, s.size);
		remember_inode(t, &s);
	}
	vmw_file_release(&s);
	return ok;
}

/* /etc/os-release, else /usr/lib/os-release (os-release(5)), when its inode
 * changed; a file not wholly cached keeps what was known. */
static bool refresh_os(struct vmw_users *u, struct vmw_files *f)
{
	static const char *const paths[] = { "/etc/os-release", "/usr/lib/os-release" };
	struct vmw_error err = { 0 };
	struct vmw_file s;
	const char *path = NULL;
	bool ok;

	for (size_t i = 0; i < ARRAY_SIZE(paths) && !path; i++)
		if (vmw_files_stat(f, paths[i], &s, &err) == 0)
			path = paths[i];
	if (!path || same_inode(&u->os_file, &s) || vmw_files_read(f, path, 64 * 1024, &s, &err) < 0)
		return false;
	if ((ok = !s.nholes && !s.incomplete)) {
		vmw_os_release_parse((const char *)s.data, s.size, &u->os);
		remember_inode(&u->os_file, &s);
		u->os_ok = true;
	}
	vmw_file_release(&s);
	return ok;
}

const struct vmw_os_release *vmw_users_os(const struct vmw_users *u)
{
	return u && u->os_ok ? &u->os : NULL;
}

bool vmw_users_refresh(struct vmw_users *u, struct vmw_files *f)
{
	vmw_files_batch(f, true);
	bool a = refresh_one(u, f, false);
	bool b = refresh_one(u, f, true);
	bool c = refresh_os(u, f);
	vmw_files_batch(f, false);
	return a || b || c;
}

/* ---- os-release ------------------------------------------------------- */

/* value of a KEY=value line, unquoted ("..." or '...', \-escapes in "..."). */
static void take_value(const char *v, size_t len, char *out, size_t size)
{
	size_t o = 0;
	char q = 0;

	if (len && (v[0] == '"' || v[0] == '\'')) {
		q = v[0];
		v++;
		len--;
	}
	for (size_t i = 0; i < len && o + 1 < size; i++) {
		if (q && v[i] == q)
			break;
		if (q == '"' && v[i] == '\\' && i + 1 < len)
			i++;
		out[o++] = v[i];
	}
	out[o] = '\0';
}

void vmw_os_release_parse(const char *text, size_t len, struct vmw_os_release *ret)
{
	static const struct { const char *key; size_t off, size; } keys[] = {
		{ "PRETTY_NAME=", offsetof(struct vmw_os_release, pretty_name), sizeof(ret->pretty_name) },
		{ "ID=", offsetof(struct vmw_os_release, id), sizeof(ret->id) },
		{ "VERSION_ID=", offsetof(struct vmw_os_release, version_id), sizeof(ret->version_id) },
	};

	memset(ret, 0, sizeof(*ret));
	for (size_t at = 0; at < len;) {
		const char *line = text + at, *nl = memchr(line, '\n', len - at);
		size_t l = nl ? (size_t)(nl - line) : len - at;

		for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
			size_t kl = strlen(keys[k].key);
			if (l > kl && !memcmp(line, keys[k].key, kl))
				take_value(line + kl, l - kl, (char *)ret + keys[k].off, keys[k].size);
		}
		at += l + 1;
	}
}

int vmw_os_release_read(struct vmw_files *f, struct vmw_os_release *ret, struct vmw_error *err)
{
	struct vmw_file file;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = vmw_files_read(f, "/etc/os-release", 64 * 1024, &file, err);
	if (r == -ENOENT) {
		struct vmw_error e2 = { 0 };
		int r2 = vmw_files_read(f, "/usr/lib/os-release", 64 * 1024, &file, &e2);
		if (r2 == 0)
			r = 0;
	}
	if (r < 0)
		return r;
	vmw_os_release_parse((const char *)file.data, file.size, ret);
	if (file.nholes)
		r = vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ENOENT, "/etc/os-release is not wholly cached");
	vmw_file_release(&file);
	return r;
}
