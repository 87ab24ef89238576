/* SPDX-License-Identifier: MIT */
/*
 * cgroup_v1.c - a process's cgroup v1 lines of /proc/PID/cgroup, as
 * kernel/cgroup/cgroup.c proc_cgroup_show() prints them: for each root on the
 * cgroup_roots list (list order; the default v2 root cgrp_dfl_root skipped:
 * its line is vmw_proc.cgroup), "ID:controllers:path" where ID is
 * root->hierarchy_id, controllers the legacy names (cgroup_subsys[i]->
 * legacy_name) of the bits of root->subsys_mask joined by ',' plus
 * "name=X" (root->name) for a named hierarchy, and path the kernfs path of
 * the task's cgroup in that hierarchy: the link on the css_set's cgrp_links
 * (cgrp_cset_link.cgrp_link, as task_cgroup_from_root() walks it) whose
 * cgrp->root is that root.
 *
 * Everything read is guest data: lists are walked at most
 * VMW_CGV1_MAX_ROOTS (+1 for the default root) steps and must come back to
 * their head, every pointer must be a kernel address, names are bounded and
 * checked; anything else leaves the lines unknown (NULL).
 */
#include "linux/linux_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define KN_MAX_DEPTH 64
#define KN_PATH_MAX  4096
#define SS_MAX       64     /* subsystems: CGROUP_SUBSYS_COUNT is ~14 */
#define NAME_MAX_    64     /* MAX_CGROUP_ROOT_NAMELEN */
#define LINES_MAX    (VMW_CGV1_MAX_ROOTS * (KN_PATH_MAX + 512))

/* ---- pure ------------------------------------------------------------- */

static bool printable_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s == ',' || *s == ':' || *s == '\n' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

int vmw_cgroup_v1_controllers(char *buf, size_t size, unsigned long long mask, const char *const *names,
			      size_t nnames, const char *name)
{
	size_t len = 0;
	int count = 0;

	if (!size)
		return -ENOSPC;
	buf[0] = '\0';
	for (size_t i = 0; i < nnames && i < 64; i++) {
		if (!(mask & (1ull << i)))
			continue;
		if (!names[i] || !printable_name(names[i]))
			return -EINVAL;
		int n = snprintf(buf + len, size - len, "%s%s", count++ ? "," : "", names[i]);
		if (n < 0 || (size_t)n >= size - len)
			return -ENOSPC;
		len += (size_t)n;
	}
	if (name && *name) {
		if (!printable_name(name))
			return -EINVAL;
		int n = snprintf(buf + len, size - len, "%sname=%s", count ? "," : "", name);
		if (n < 0 || (size_t)n >= size - len)
			return -ENOSPC;
	}
	return 0;
}

bool vmw_cgroup_v1_next(const char **s, struct vmw_cgroup_v1_line *ret)
{
	const char *p = *s, *end, *c1, *c2;
	unsigned long id = 0;

	if (!p || !*p)
		return false;
	end = strchr(p, '\n');
	if (!end)
		end = p + strlen(p);
	if (p == end || *p < '0' || *p > '9')
		return false;
	for (c1 = p; c1 < end && *c1 >= '0' && *c1 <= '9'; c1++) {
		id = id * 10 + (unsigned long)(*c1 - '0');
		if (id > 0xffffffffu)
			return false;
	}
	if (c1 == end || *c1 != ':')
		return false;
	c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
	if (!c2)
		return false;
	size_t cl = (size_t)(c2 - c1 - 1), pl = (size_t)(end - c2 - 1);
	if (cl >= sizeof(ret->controllers) || pl >= sizeof(ret->path))
		return false;
	ret->id = (unsigned)id;
	memcpy(ret->controllers, c1 + 1, cl);
	ret->controllers[cl] = '\0';
	memcpy(ret->path, c2 + 1, pl);
	ret->path[pl] = '\0';
	*s = *end ? end + 1 : end;
	return true;
}

bool vmw_cgroup_v1_valid(const char *s)
{
	struct vmw_cgroup_v1_line *l;
	bool ok;

	if (!s || !(l = malloc(sizeof(*l))))
		return false;
	while (vmw_cgroup_v1_next(&s, l))
		;
	ok = !*s;
	free(l);
	return ok;
}

/* ---- layouts ----------------------------------------------------------- */

void vmw_cgv1_resolve(struct vmw_kernel *k, struct vmw_cgv1 *cg)
{
	int64_t count;

	memset(cg, 0, sizeof(*cg));
	cg->ok = member(k, "css_set", "cgrp_links", &cg->cset_links) == 0 &&
		 member(k, "cgrp_cset_link", "cgrp", &cg->link_cgrp) == 0 &&
		 member(k, "cgrp_cset_link", "cgrp_link", &cg->link_cgrp_link) == 0 &&
		 member(k, "cgroup", "root", &cg->cgrp_root) == 0 &&
		 member(k, "cgroup", "kn", &cg->cgrp_kn) == 0 &&
		 member(k, "kernfs_node", "name", &cg->kn_name) == 0 &&
		 (member(k, "kernfs_node", "parent", &cg->kn_parent) == 0 ||
		  member(k, "kernfs_node", "__parent", &cg->kn_parent) == 0) &&
		 member(k, "cgroup_root", "root_list", &cg->root_list) == 0 &&
		 member(k, "cgroup_root", "subsys_mask", &cg->root_mask) == 0 &&
		 member(k, "cgroup_root", "hierarchy_id", &cg->root_id) == 0 &&
		 member(k, "cgroup_root", "name", &cg->root_name) == 0 &&
		 member(k, "cgroup_subsys", "legacy_name", &cg->ss_legacy_name) == 0 &&
		 cg->root_mask.size <= 8 && cg->root_id.size == 4 && cg->root_name.size >= 1 &&
		 vmw_kernel_enum_value(k, "CGROUP_SUBSYS_COUNT", &count) == 0 && count >= 0 && count <= SS_MAX &&
		 vmw_kernel_symbol(k, "cgroup_roots", &cg->a_roots) == 0 &&
		 vmw_kernel_symbol(k, "cgrp_dfl_root", &cg->a_dfl_root) == 0 &&
		 vmw_kernel_symbol(k, "cgroup_subsys", &cg->a_subsys) == 0;
	cg->nsubsys = cg->ok ? (uint32_t)count : 0;
}

/* ---- reading ----------------------------------------------------------- */

static bool rd8(struct vmw_xlat *kx, uint64_t a, uint64_t *v)
{
	return vmw_xlat_read(kx, a, v, 8) >= 0;
}

int vmw_kstring(struct vmw_xlat *kx, uint64_t addr, char *buf, size_t size)
{
	size_t got = 0;
	while (got + 1 < size) {
		size_t chunk = MIN(size - 1 - got, 4096 - ((addr + got) & 4095));
		if (vmw_xlat_read(kx, addr + got, buf + got, chunk) < 0)
			break;
		got += chunk;
		if (memchr(buf, 0, got))
			break;
	}
	buf[got] = '\0';
	return got ? 0 : -EFAULT;
}

/* A whole NUL-terminated string that fits buf, or -EFAULT. */
static int kstring(struct vmw_xlat *kx, uint64_t addr, char *buf, size_t size)
{
	return vmw_kstring(kx, addr, buf, size) == 0 && strlen(buf) < size - 1 ? 0 : -EFAULT;
}

char *vmw_cgv1_kn_path(struct vmw_xlat *kx, uint64_t kspace, struct fld kn_name, struct fld kn_parent,
		       uint64_t kn)
{
	uint64_t names[KN_MAX_DEPTH];
	char buf[KN_PATH_MAX];
	size_t depth = 0, len = 0;

	if (kn < kspace)
		return NULL;
	/* Up to the root (no parent); the root's own name is not shown. */
	for (;;) {
		uint64_t parent, name;
		if (!rd8(kx, kn + kn_parent.off, &parent))
			return NULL;
		if (!parent)
			break;
		if (parent < kspace || depth >= KN_MAX_DEPTH || !rd8(kx, kn + kn_name.off, &name) ||
		    name < kspace)
			return NULL;
		names[depth++] = name;
		kn = parent;
	}
	buf[0] = '\0';
	while (depth--) {
		char part[256];
		if (kstring(kx, names[depth], part, sizeof(part)) < 0 || !part[0] || strchr(part, '/') ||
		    strchr(part, '\n'))
			return NULL;
		int n = snprintf(buf + len, sizeof(buf) - len, "/%s", part);
		if (n < 0 || (size_t)n >= sizeof(buf) - len)
			return NULL;
		len += (size_t)n;
	}
	return strdup(len ? buf : "/");
}

struct vmw_cgv1_roots {
	size_t n;
	struct { uint64_t addr; uint32_t id; char controllers[SS_MAX * 16 + NAME_MAX_ + 8]; } root[VMW_CGV1_MAX_ROOTS];
	bool ok;
};

struct vmw_cgv1_roots *vmw_cgv1_roots_read(const struct vmw_cgv1 *cg, struct vmw_xlat *kx, uint64_t kspace)
{
	char ssname[SS_MAX][32];
	const char *names[SS_MAX];
	uint64_t mask[VMW_CGV1_MAX_ROOTS], ss[SS_MAX];
	char rname[VMW_CGV1_MAX_ROOTS][NAME_MAX_ + 1];
	struct vmw_cgv1_roots *r;
	uint64_t pos;

	if (!cg->ok || !(r = calloc(1, sizeof(*r))))
		return NULL;
	/* for_each_root: the cgroup_roots list, at most the default root plus
	 * VMW_CGV1_MAX_ROOTS, back to its head. */
	if (!rd8(kx, cg->a_roots, &pos))
		goto bad;
	for (size_t steps = 0; pos != cg->a_roots; steps++) {
		uint64_t root;
		uint32_t id;
		if (steps > VMW_CGV1_MAX_ROOTS || pos < kspace || pos < cg->root_list.off)
			goto bad;
		root = pos - cg->root_list.off;
		if (root != cg->a_dfl_root) {
			size_t nl = MIN((size_t)cg->root_name.size, (size_t)NAME_MAX_);
			char *name;
			if (r->n == VMW_CGV1_MAX_ROOTS)
				goto bad;
			name = rname[r->n];
			mask[r->n] = 0;
			if (vmw_xlat_read(kx, root + cg->root_mask.off, &mask[r->n], cg->root_mask.size) < 0 ||
			    vmw_xlat_read(kx, root + cg->root_id.off, &id, 4) < 0 ||
			    vmw_xlat_read(kx, root + cg->root_name.off, name, nl) < 0)
				goto bad;
			name[nl] = '\0';
			if (strlen(name) == nl && nl == (size_t)cg->root_name.size)
				goto bad;   /* not terminated within the array */
			if (id > 0x7fffffff)
				goto bad;
			r->root[r->n].addr = root;
			r->root[r->n++].id = id;
		}
		if (!rd8(kx, pos, &pos))   /* list_head.next is its first member */
			goto bad;
	}
	/* The controllers' names, for the hierarchies' lines: none without a v1
	 * hierarchy (a cgroup v2 guest's walk then reads two words here, not
	 * three reads per controller). cgroup_subsys[] is one read. */
	if (r->n) {
		if (vmw_xlat_read(kx, cg->a_subsys, ss, (size_t)cg->nsubsys * 8) < 0)
			goto bad;
		for (uint32_t i = 0; i < cg->nsubsys; i++) {
			uint64_t name;
			names[i] = NULL;
			if (ss[i] < kspace || !rd8(kx, ss[i] + cg->ss_legacy_name.off, &name) || name < kspace ||
			    kstring(kx, name, ssname[i], sizeof(ssname[i])) < 0)
				goto bad;
			names[i] = ssname[i];
		}
	}
	for (size_t i = 0; i < r->n; i++)
		if (vmw_cgroup_v1_controllers(r->root[i].controllers, sizeof(r->root[i].controllers), mask[i],
					      names, cg->nsubsys, rname[i]) < 0)
			goto bad;
	r->ok = true;
	return r;
bad:
	r->ok = false;
	return r;
}

void vmw_cgv1_roots_free(struct vmw_cgv1_roots *r)
{
	free(r);
}

char *vmw_cgv1_lines(const struct vmw_cgv1 *cg, const struct vmw_cgv1_roots *r, struct vmw_xlat *kx,
		     uint64_t kspace, uint64_t css_set)
{
	uint64_t cgrp_of[VMW_CGV1_MAX_ROOTS] = { 0 };
	uint64_t head, pos;
	char *out;
	size_t len = 0;

	if (!cg->ok || !r || !r->ok || css_set < kspace)
		return NULL;
	if (!r->n)
		return strdup("");
	/* The css_set's links: one per hierarchy (the default one too). */
	head = css_set + cg->cset_links.off;
	if (!rd8(kx, head, &pos))
		return NULL;
	for (size_t steps = 0; pos != head; steps++) {
		uint64_t link, cgrp, root;
		if (steps > VMW_CGV1_MAX_ROOTS + 1 || pos < kspace || pos < cg->link_cgrp_link.off)
			return NULL;
		link = pos - cg->link_cgrp_link.off;
		if (!rd8(kx, link + cg->link_cgrp.off, &cgrp) || cgrp < kspace ||
		    !rd8(kx, cgrp + cg->cgrp_root.off, &root))
			return NULL;
		for (size_t i = 0; i < r->n; i++)
			if (r->root[i].addr == root)
				cgrp_of[i] = cgrp;
		if (!rd8(kx, pos, &pos))
			return NULL;
	}
	if (!(out = malloc(LINES_MAX)))
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		uint64_t kn;
		char *path;
		if (!cgrp_of[i] || !rd8(kx, cgrp_of[i] + cg->cgrp_kn.off, &kn) ||
		    !(path = vmw_cgv1_kn_path(kx, kspace, cg->kn_name, cg->kn_parent, kn)))
			goto bad;
		int n = snprintf(out + len, LINES_MAX - len, "%s%u:%s:%s", i ? "\n" : "", r->root[i].id,
				 r->root[i].controllers, path);
		free(path);
		if (n < 0 || (size_t)n >= LINES_MAX - len)
			goto bad;
		len += (size_t)n;
	}
	char *shrunk = realloc(out, len + 1);
	return shrunk ? shrunk : out;
bad:
	free(out);
	return NULL;
}
