/* SPDX-License-Identifier: MIT */
/*
 * pagecache.c - guest files from the guest's dentry cache and page cache
 * (see pagecache.h). Layouts from BTF; the walks follow fs/dcache.c,
 * fs/namei.c (lookup, symlinks) and lib/xarray.c (xa_load).
 */
#include "linux/linux_internal.h"

#include <stdlib.h>

#define MAX_PATH        4096
#define MAX_NAME        255
#define MAX_LINKS       40          /* symlinks followed in one lookup (MAXSYMLINKS) */
#define MAX_CHILDREN    (1u << 16)  /* children of one directory visited */
#define MAX_STEPS       (1u << 17)  /* dentries and mounts visited in one lookup: a hostile
				     * guest cannot make a lookup cost more than ~0.5 M reads */
#define MAX_XA_DEPTH    11          /* ceil(64 / 6) levels of a 64-bit index */
#define XA_CHUNK        64
#define PAGE            4096u
#define DCACHE_MOUNTED  0x00010000u /* include/linux/dcache.h, 4.x .. 6.14 */
#define KNOWN_PATHS     4           /* paths whose dentries a lookup remembers */
#define KNOWN_DEPTH     4           /* ... of at most this many names */
#define KNOWN_LEN       64
#define KNOWN_LINKS     1           /* remembered symlinks followed in one lookup */
#define BATCH_MOUNTS    8           /* mount scans a batch keeps */
#define S_IFMT          0170000
#define S_IFDIR         0040000
#define S_IFREG         0100000
#define S_IFLNK         0120000

struct vmw_files {
	struct vmw_kernel *k;
	struct vmw_xlat *kx;
	uint64_t kernel_space, page_offset_base, vmemmap, init_task;
	uint32_t page_size;             /* sizeof(struct page) */
	int pg_uptodate;
	bool hlist_children;            /* d_children/d_sib (>= 6.8), else d_subdirs/d_child */
	struct { struct fld tasks, pid, fs; } t;
	struct fld fs_root, fs_root_mnt; /* fs_struct.root.dentry, .mnt */
	struct { struct fld mnt, root, mounts, child, mountpoint, parent; } m;   /* struct mount */
	struct { struct fld flags, parent, name_len, name, inode, children, sib, hash_pprev; } d;
	/* Paths looked up lately, by the dentry of each name on the way (no
	 * symlink, no mount crossed), from PID 1's root: known_lookup. link:
	 * the last one is a symlink (Debian's /etc/os-release), followed by
	 * reading its target again. */
	struct known_path {
		char path[KNOWN_LEN];
		uint64_t root_mnt, root;
		uint64_t d[KNOWN_DEPTH];
		unsigned n;
		bool link;
	} known[KNOWN_PATHS];
	unsigned known_next;
	/* Within a batch (vmw_files_batch): PID 1's root, and the mount on
	 * top of each directory scanned (cross_mounts), as first read. */
	bool batch, batch_root_ok;
	struct { uint64_t mnt, d; } batch_root;
	struct batch_mount { uint64_t mnt, d, top_mnt, top_d; } batch_mount[BATCH_MOUNTS];
	unsigned batch_nmounts;
	struct { struct fld mode, ino, size, mapping, link, mtime_sec, mtime_nsec; } i;
	struct { struct fld head, nrpages; } as;
	struct { struct fld shift, slots; } xa;
	struct { struct fld flags, mapping, index; } pg;
};

static bool kaddr(const struct vmw_files *f, uint64_t a)
{
	return a >= f->kernel_space && a < UINT64_MAX - (1u << 20);
}

/* A pointer or integer member (its first 8 bytes at most) as a u64. */
static int rd64(struct vmw_files *f, uint64_t addr, struct fld m, uint64_t *ret)
{
	uint8_t v[8] = { 0 };
	uint32_t n = MIN(m.size, (uint32_t)8);
	int r;

	*ret = 0;
	if (!m.ok)
		return -ENOENT;
	if ((r = vmw_xlat_read(f->kx, addr + m.off, v, n)) == 0)
		*ret = get_at(v, n);
	return r;
}

/*
 * Several members of one structure in one read: the bytes from the lowest
 * to the end of the highest (a dentry's parent, name, inode and list link
 * lie within its first ~150 bytes, its short name inline among them). A
 * member outside what was read, or a read that failed, is read alone.
 */
#define SPAN_MAX 256

struct span {
	uint64_t addr;
	uint64_t lo, hi;           /* b holds the bytes [addr + lo, addr + hi) */
	bool ok;
	uint8_t b[SPAN_MAX];
};

static void span_read(struct vmw_files *f, struct span *s, uint64_t addr, const struct fld *const *m, size_t n)
{
	/* 64-bit: member offsets come from the guest's BTF. */
	uint64_t lo = UINT64_MAX, hi = 0;

	s->addr = addr;
	s->ok = false;
	for (size_t i = 0; i < n; i++)
		if (m[i]->ok) {
			lo = MIN(lo, (uint64_t)m[i]->off);
			hi = MAX(hi, (uint64_t)m[i]->off + MIN(m[i]->size, (uint32_t)8));
		}
	if (lo < hi && hi - lo <= SPAN_MAX && vmw_xlat_read(f->kx, addr + lo, s->b, (size_t)(hi - lo)) == 0) {
		s->lo = lo;
		s->hi = hi;
		s->ok = true;
	}
}

static int span_get(struct vmw_files *f, const struct span *s, struct fld m, uint64_t *ret)
{
	uint32_t n = MIN(m.size, (uint32_t)8);

	if (s->ok && m.ok && m.off >= s->lo && (uint64_t)m.off + n <= s->hi) {
		*ret = get_at(s->b + (m.off - s->lo), n);
		return 0;
	}
	return rd64(f, s->addr, m, ret);
}

/* ---- layouts ---------------------------------------------------------- */

static int any(struct vmw_kernel *k, const char *type, const char *a, const char *b, struct fld *f)
{
	return member(k, type, a, f) == 0 || (b && member(k, type, b, f) == 0) ? 0 : -ENOENT;
}

/* Members the reader cannot do without: all present, or the first missing named. */
struct need {
	const char *type, *name;
	struct fld *f;
};

static int need_all(struct vmw_kernel *k, const struct need *n, size_t count, struct vmw_error *err)
{
	for (size_t i = 0; i < count; i++)
		NEED(k, n[i].type, n[i].name, n[i].f);
	return 0;
}

static int resolve_dentry(struct vmw_files *f, struct vmw_error *err)
{
	const struct need n[] = {
		{ "dentry", "d_flags", &f->d.flags }, { "dentry", "d_parent", &f->d.parent },
		{ "dentry", "d_name.len", &f->d.name_len }, { "dentry", "d_name.name", &f->d.name },
		{ "dentry", "d_inode", &f->d.inode },
	};
	int r = need_all(f->k, n, ARRAY_SIZE(n), err);

	if (r < 0)
		return r;
	/* d_children/d_sib (hlist, >= 6.8), else d_subdirs/d_child (list). */
	f->hlist_children = member(f->k, "dentry", "d_children", &f->d.children) == 0;
	/* Optional: without it, every lookup walks the children lists. */
	if (member(f->k, "dentry", "d_hash.pprev", &f->d.hash_pprev) < 0)
		f->d.hash_pprev.ok = false;
	const struct need h[] = {
		{ "dentry", f->hlist_children ? "d_children" : "d_subdirs", &f->d.children },
		{ "dentry", f->hlist_children ? "d_sib" : "d_child", &f->d.sib },
	};
	return need_all(f->k, h, ARRAY_SIZE(h), err);
}

static int resolve_mount(struct vmw_files *f, struct vmw_error *err)
{
	struct fld root = { 0 };
	const struct need n[] = {
		{ "fs_struct", "root.mnt", &f->fs_root_mnt }, { "mount", "mnt", &f->m.mnt },
		{ "vfsmount", "mnt_root", &root }, { "mount", "mnt_mounts", &f->m.mounts },
		{ "mount", "mnt_child", &f->m.child }, { "mount", "mnt_mountpoint", &f->m.mountpoint },
		{ "mount", "mnt_parent", &f->m.parent },
	};
	int r = need_all(f->k, n, ARRAY_SIZE(n), err);

	f->m.root = (struct fld){ f->m.mnt.off + root.off, root.size, true };
	return r;
}

static int resolve_inode(struct vmw_files *f, struct vmw_error *err)
{
	const struct need n[] = {
		{ "inode", "i_mode", &f->i.mode }, { "inode", "i_ino", &f->i.ino },
		{ "inode", "i_size", &f->i.size }, { "inode", "i_mapping", &f->i.mapping },
		{ "address_space", "i_pages.xa_head", &f->as.head },
		{ "address_space", "nrpages", &f->as.nrpages },
		{ "xa_node", "shift", &f->xa.shift }, { "xa_node", "slots", &f->xa.slots },
	};
	int r = need_all(f->k, n, ARRAY_SIZE(n), err);

	if (r < 0)
		return r;
	member(f->k, "inode", "i_link", &f->i.link);
	/* i_mtime (timespec64) until 6.6, i_mtime_sec/_nsec since: optional. */
	if (any(f->k, "inode", "i_mtime.tv_sec", "i_mtime_sec", &f->i.mtime_sec) == 0)
		any(f->k, "inode", "i_mtime.tv_nsec", "i_mtime_nsec", &f->i.mtime_nsec);
	if (f->xa.slots.size != XA_CHUNK * 8)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOTSUP,
				      "kernel BTF: xa_node.slots is %u bytes, not %u slots", f->xa.slots.size,
				      XA_CHUNK);
	return 0;
}

static int resolve_page(struct vmw_files *f, struct vmw_error *err)
{
	struct vmw_kernel *k = f->k;
	int64_t v;
	uint64_t sym;

	NEED(k, "page", "flags", &f->pg.flags);
	NEED(k, "page", "mapping", &f->pg.mapping);
	if (any(k, "page", "index", "__folio_index", &f->pg.index) < 0)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT, "kernel BTF: page has no index");
	if (vmw_kernel_type_size(k, "page", &f->page_size) < 0 || f->page_size < 32 || f->page_size > 256)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel BTF: struct page has no plausible size");
	if (vmw_kernel_enum_value(k, "PG_uptodate", &v) < 0 || v < 0 || v > 63)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel BTF: no PG_uptodate page flag");
	f->pg_uptodate = (int)v;
	/* vmemmap_base is randomized with KASLR; the fixed base otherwise. */
	f->vmemmap = vmw_kernel_info(k)->paging_levels == 5 ? 0xffd4000000000000ull : 0xffffea0000000000ull;
	if (vmw_kernel_symbol(k, "vmemmap_base", &sym) == 0 &&
	    (vmw_xlat_read(f->kx, sym, &f->vmemmap, 8) < 0 || !kaddr(f, f->vmemmap)))
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG,
				      "vmemmap_base is unreadable or not a kernel address");
	return 0;
}

int vmw_files_new(struct vmw_kernel *k, struct vmw_files **ret, struct vmw_error *err)
{
	struct vmw_files *f = calloc(1, sizeof(*f));
	int r;

	*ret = NULL;
	if (!f)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	f->k = k;
	f->kx = vmw_kernel_xlat(k);
	f->kernel_space = kernel_space_start(k);
	f->page_offset_base = vmw_kernel_info(k)->page_offset_base;
	if (vmw_kernel_symbol(k, "init_task", &f->init_task) < 0) {
		free(f);
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT, "kernel symbol init_task not found");
	}
	if ((r = member(k, "task_struct", "tasks", &f->t.tasks)) < 0 ||
	    (r = member(k, "task_struct", "pid", &f->t.pid)) < 0 ||
	    (r = member(k, "task_struct", "fs", &f->t.fs)) < 0 ||
	    (r = member(k, "fs_struct", "root.dentry", &f->fs_root)) < 0)
		r = vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				   "kernel BTF: no task_struct.tasks/pid/fs or fs_struct.root");
	if (r < 0 || (r = resolve_dentry(f, err)) < 0 || (r = resolve_mount(f, err)) < 0 ||
	    (r = resolve_inode(f, err)) < 0 ||
	    (r = resolve_page(f, err)) < 0 || (r = check_bad_layout(k, err)) < 0) {
		free(f);
		return r;
	}
	*ret = f;
	return 0;
}

void vmw_files_free(struct vmw_files *f)
{
	free(f);
}

/* ---- path lookup ------------------------------------------------------ */

/* A place in the guest's file tree: a mount (struct mount) and a dentry in it. */
struct where {
	uint64_t mnt, d;
};

/* PID 1's root directory (what its "/" is, after a switch_root too). */
static int root_dentry(struct vmw_files *f, struct where *ret, struct vmw_error *err)
{
	uint64_t head = f->init_task + f->t.tasks.off, cur, task = 0, fs, pid = 0, vfs;
	struct vmw_cycle cyc;

	if (f->batch && f->batch_root_ok) {
		ret->mnt = f->batch_root.mnt;
		ret->d = f->batch_root.d;
		return 0;
	}

	if (vmw_xlat_read(f->kx, head, &cur, 8) < 0)
		return vmw_error_setk(err, VMW_ERR_IO, -EIO, "cannot read the guest's task list");
	vmw_cycle_init(&cyc, head);
	for (unsigned n = 0; cur != head && n < 64; n++) {
		if (!kaddr(f, cur) || vmw_cycle_step(&cyc, cur))
			break;
		task = cur - f->t.tasks.off;
		if (rd64(f, task, f->t.pid, &pid) == 0 && pid == 1)
			break;
		if (vmw_xlat_read(f->kx, cur, &cur, 8) < 0)
			break;
	}
	if (pid != 1)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG,
				      "no PID 1 among the first tasks of the guest's task list");
	if (rd64(f, task, f->t.fs, &fs) < 0 || !kaddr(f, fs) || rd64(f, fs, f->fs_root, &ret->d) < 0 ||
	    !kaddr(f, ret->d) || rd64(f, fs, f->fs_root_mnt, &vfs) < 0 || !kaddr(f, vfs) ||
	    vfs - f->m.mnt.off < f->kernel_space)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG,
				      "PID 1's root directory (fs->root) is unreadable");
	ret->mnt = vfs - f->m.mnt.off;
	if (f->batch) {
		f->batch_root.mnt = ret->mnt;
		f->batch_root.d = ret->d;
		f->batch_root_ok = true;
	}
	return 0;
}

void vmw_files_batch(struct vmw_files *f, bool on)
{
	f->batch = on;
	f->batch_root_ok = false;
	f->batch_nmounts = 0;
}

/*
 * The mount on top of w.d, if w.d is a mount point of this namespace: a
 * child of w.mnt (its mnt_mounts list) mounted on w.d; stacked mounts are
 * followed up. Mounts of other namespaces (a service's private /etc) are
 * not children of PID 1's mounts, so they are not seen. -ELOOP/-EBADMSG:
 * lists that do not add up.
 */
static int cross_mounts_read(struct vmw_files *f, struct where *w, size_t *steps)
{
	for (unsigned depth = 0; depth < 64; depth++) {
		uint64_t head = w->mnt + f->m.mounts.off, cur, found = 0;
		struct vmw_cycle cyc;

		if (vmw_xlat_read(f->kx, head, &cur, 8) < 0)
			return -EBADMSG;
		vmw_cycle_init(&cyc, head);
		for (size_t n = 0; cur != head; n++) {
			uint64_t c = cur - f->m.child.off, mp = 0, parent = 0;
			const struct fld next = { .off = f->m.child.off, .size = 8, .ok = true };
			const struct fld *m[] = { &f->m.parent, &f->m.mountpoint, &next };
			struct span sp;

			if (!kaddr(f, cur) || vmw_cycle_step(&cyc, cur) || n >= MAX_CHILDREN || !*steps)
				return -ELOOP;
			(*steps)--;
			span_read(f, &sp, c, m, ARRAY_SIZE(m));
			if (span_get(f, &sp, f->m.parent, &parent) < 0 || parent != w->mnt ||
			    span_get(f, &sp, f->m.mountpoint, &mp) < 0)
				return -EBADMSG;
			if (mp == w->d)
				found = c;   /* the last one mounted there is on top */
			if (span_get(f, &sp, next, &cur) < 0)
				return -EBADMSG;
		}
		if (!found)
			return 0;
		w->mnt = found;
		if (rd64(f, found, f->m.root, &w->d) < 0 || !kaddr(f, w->d))
			return -EBADMSG;
	}
	return -ELOOP;
}

/* cross_mounts_read, or what it found for the same place earlier in a batch. */
static int cross_mounts(struct vmw_files *f, struct where *w, size_t *steps)
{
	struct where in = *w;
	int r;

	for (unsigned i = 0; f->batch && i < f->batch_nmounts; i++)
		if (f->batch_mount[i].mnt == w->mnt && f->batch_mount[i].d == w->d) {
			w->mnt = f->batch_mount[i].top_mnt;
			w->d = f->batch_mount[i].top_d;
			return 0;
		}
	if ((r = cross_mounts_read(f, w, steps)) == 0 && f->batch && f->batch_nmounts < BATCH_MOUNTS)
		f->batch_mount[f->batch_nmounts++] = (struct batch_mount){ in.mnt, in.d, w->mnt, w->d };
	return r;
}

/* ".." (follow_dotdot): up through the mounts whose root w.d is, then to
 * the parent dentry; never above the root. */
static int dotdot(struct vmw_files *f, struct where *w, const struct where *root)
{
	for (unsigned depth = 0; depth < 64; depth++) {
		uint64_t mroot, parent;
		if (w->d == root->d && w->mnt == root->mnt)
			return 0;
		if (rd64(f, w->mnt, f->m.root, &mroot) < 0)
			return -EBADMSG;
		if (w->d != mroot)
			break;
		if (rd64(f, w->mnt, f->m.parent, &parent) < 0 || parent == w->mnt)
			return 0;   /* the namespace's root mount */
		if (!kaddr(f, parent) || rd64(f, w->mnt, f->m.mountpoint, &w->d) < 0 || !kaddr(f, w->d))
			return -EBADMSG;
		w->mnt = parent;
	}
	return rd64(f, w->d, f->d.parent, &w->d) < 0 || !kaddr(f, w->d) ? -EBADMSG : 0;
}

/* Does the dentry d carry this name? */
/* A dentry's members a lookup reads, in one span (dentry_span). */
static void dentry_span(struct vmw_files *f, struct span *s, uint64_t d)
{
	const struct fld *m[] = { &f->d.flags, &f->d.hash_pprev, &f->d.parent, &f->d.name_len, &f->d.name,
				  &f->d.inode, &f->d.sib };
	span_read(f, s, d, m, ARRAY_SIZE(m));
}

/* Is the dentry of span s named name? A short name is stored inline in
 * the dentry (d_iname), often within the span already. */
static bool name_is(struct vmw_files *f, const struct span *s, const char *name, size_t len)
{
	uint64_t nlen, nptr;
	char buf[MAX_NAME + 1];

	if (span_get(f, s, f->d.name_len, &nlen) < 0 || nlen != len || span_get(f, s, f->d.name, &nptr) < 0 ||
	    !kaddr(f, nptr))
		return false;
	if (s->ok && nptr >= s->addr + s->lo && nptr - (s->addr + s->lo) <= s->hi - s->lo &&
	    len <= s->hi - s->lo - (nptr - (s->addr + s->lo)))
		return memcmp(s->b + (nptr - (s->addr + s->lo)), name, len) == 0;
	if (vmw_xlat_read(f->kx, nptr, buf, len) < 0)
		return false;
	return memcmp(buf, name, len) == 0;
}

/* The child of dir named name (0: none in the dcache). *steps bounds the
 * whole lookup. -ELOOP/-EBADMSG when the children list does not add up. */
static int find_child(struct vmw_files *f, uint64_t dir, const char *name, size_t len, size_t *steps,
		      uint64_t *ret)
{
	uint64_t head = dir + f->d.children.off, cur, parent;
	struct vmw_cycle cyc;

	*ret = 0;
	if (vmw_xlat_read(f->kx, head, &cur, 8) < 0)
		return -EBADMSG;
	vmw_cycle_init(&cyc, head);
	for (size_t n = 0; f->hlist_children ? cur != 0 : cur != head; n++) {
		uint64_t d = cur - f->d.sib.off;
		struct span sp;

		if (!kaddr(f, cur) || vmw_cycle_step(&cyc, cur) || n >= MAX_CHILDREN || !*steps)
			return -ELOOP;
		(*steps)--;
		dentry_span(f, &sp, d);
		/* A child names its parent: a list that wandered off does not. */
		if (span_get(f, &sp, f->d.parent, &parent) < 0 || parent != dir)
			return -EBADMSG;
		if (name_is(f, &sp, name, len)) {
			*ret = d;
			return 0;
		}
		/* The list's next link: the first 8 bytes of d's own link. */
		if (span_get(f, &sp, (struct fld){ .off = f->d.sib.off, .size = 8, .ok = true }, &cur) < 0)
			return -EBADMSG;
	}
	return 0;
}

struct inode_info {
	uint64_t addr, mapping;
	uint32_t mode;
	uint64_t ino, size, mtime_sec, mtime_nsec;   /* 0 where unreadable or not in this kernel */
};

/* The inode at addr (a dentry's d_inode): its members in one span. */
static int read_inode_at(struct vmw_files *f, uint64_t addr, struct inode_info *ino)
{
	const struct fld *m[] = { &f->i.mode, &f->i.mapping, &f->i.ino, &f->i.size, &f->i.mtime_sec, &f->i.mtime_nsec };
	struct span sp;
	uint64_t mode;

	memset(ino, 0, sizeof(*ino));
	if (!addr)
		return -ENOENT;   /* a negative dentry: the guest has no such file */
	if (!kaddr(f, addr))
		return -EBADMSG;
	ino->addr = addr;
	span_read(f, &sp, addr, m, ARRAY_SIZE(m));
	if (span_get(f, &sp, f->i.mode, &mode) < 0 || span_get(f, &sp, f->i.mapping, &ino->mapping) < 0)
		return -EBADMSG;
	ino->mode = (uint32_t)mode;
	span_get(f, &sp, f->i.ino, &ino->ino);
	span_get(f, &sp, f->i.size, &ino->size);
	if (f->i.mtime_sec.ok)
		span_get(f, &sp, f->i.mtime_sec, &ino->mtime_sec);
	if (f->i.mtime_nsec.ok)
		span_get(f, &sp, f->i.mtime_nsec, &ino->mtime_nsec);
	return 0;
}

static int read_inode(struct vmw_files *f, uint64_t d, struct inode_info *ino)
{
	uint64_t addr;

	memset(ino, 0, sizeof(*ino));
	if (rd64(f, d, f->d.inode, &addr) < 0)
		return -EBADMSG;
	return read_inode_at(f, addr, ino);
}

static int read_pages(struct vmw_files *f, const struct inode_info *ino, uint64_t size, struct vmw_file *out);

/* The target of the symlink inode: i_link, else its first cached page. */
static int link_target(struct vmw_files *f, const struct inode_info *ino, char *buf, struct vmw_error *err)
{
	uint64_t p = 0, size = 0;
	size_t got = 0;

	if (f->i.link.ok && rd64(f, ino->addr, f->i.link, &p) == 0 && kaddr(f, p)) {
		while (got < MAX_PATH - 1) {
			size_t chunk = MIN((size_t)MAX_PATH - 1 - got, PAGE - ((p + got) & (PAGE - 1)));
			if (vmw_xlat_read(f->kx, p + got, buf + got, chunk) < 0)
				break;
			got += chunk;
			if (memchr(buf, 0, got))
				break;
		}
		buf[got] = '\0';
		return got ? 0 : vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG, "a symlink's target is unreadable");
	}
	if (rd64(f, ino->addr, f->i.size, &size) < 0 || size == 0 || size >= MAX_PATH)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG, "a symlink has no plausible size");
	struct vmw_file t = { 0 };
	int r = read_pages(f, ino, size, &t);
	if (r == 0 && t.nholes)
		r = vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ENOENT, "a symlink's target is not cached");
	if (r == 0) {
		memcpy(buf, t.data, size);
		buf[size] = '\0';
	}
	vmw_file_release(&t);
	return r;
}

struct lookup {
	char path[MAX_PATH * 2];   /* what is left to resolve (symlink targets prepended) */
	size_t pos;
	unsigned links;
	size_t steps;
};

/* Replace the walked part of the path by target (the rest stays after it). */
static int splice_link(struct lookup *lk, const char *target, struct vmw_error *err)
{
	char rest[MAX_PATH * 2];
	int n;

	if (++lk->links > MAX_LINKS)
		return vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ELOOP, "too many levels of symbolic links");
	snprintf(rest, sizeof(rest), "%s", lk->path + lk->pos);
	n = snprintf(lk->path, sizeof(lk->path), "%s/%s", target, rest);
	if (n < 0 || (size_t)n >= sizeof(lk->path))
		return vmw_error_setk(err, VMW_ERR_USAGE, -ENAMETOOLONG, "path too long after symlinks");
	lk->pos = 0;
	return 0;
}

/* The next component of lk (NULL at the end); *len its length. */
static const char *next_name(struct lookup *lk, size_t *len)
{
	while (lk->path[lk->pos] == '/')
		lk->pos++;
	if (!lk->path[lk->pos])
		return NULL;
	const char *s = lk->path + lk->pos;
	*len = strcspn(s, "/");
	lk->pos += *len;
	return s;
}

static int step_err(int r, const char *orig, const char *name, size_t len, struct vmw_error *err)
{
	if (r == -ELOOP || r == -EBADMSG)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, r,
				      "%s: the guest's dentries under '%.*s' do not add up (a cut or looping list)",
				      orig, (int)len, name);
	return vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ENOENT,
			      "%s: '%.*s' is not in the guest's dentry cache (not cached: the guest has not "
			      "looked it up lately)", orig, (int)len, name);
}

/* One step from w to its child name (".." and "." included). */
static int walk_step(struct vmw_files *f, struct lookup *lk, const char *orig, struct where *w,
		     const struct where *root, const char *name, size_t len, struct vmw_error *err)
{
	uint64_t child = 0, flags = 0;
	int r;

	if (len == 1 && name[0] == '.')
		return 0;
	if (len == 2 && name[0] == '.' && name[1] == '.')
		return dotdot(f, w, root) < 0 ? step_err(-EBADMSG, orig, name, len, err) : 0;
	if (len > MAX_NAME)
		return vmw_error_setk(err, VMW_ERR_USAGE, -ENAMETOOLONG, "%s: a name is too long", orig);
	if ((r = find_child(f, w->d, name, len, &lk->steps, &child)) < 0 || !child)
		return step_err(r, orig, name, len, err);
	w->d = child;
	/* Mounted on in some namespace: is it in PID 1's? */
	if (rd64(f, child, f->d.flags, &flags) == 0 && (flags & DCACHE_MOUNTED) &&
	    (r = cross_mounts(f, w, &lk->steps)) < 0)
		return step_err(r, orig, name, len, err);
	return 0;
}

/*
 * A symlink's target joined to the directory it is in (dir: an absolute
 * path of plain names, each a dentry known_lookup has just checked), as an
 * absolute path into out: leading ".." climb dir (never above "/"), "."
 * go; false when a "." or ".." comes after a name of the target (that
 * name may itself be a symlink: only a real lookup can tell) or the path
 * does not fit.
 */
static bool join_link(const char *dir, size_t dirlen, const char *target, char *out, size_t n)
{
	size_t len = target[0] == '/' ? 0 : dirlen;
	bool named = false;

	if (len >= n)
		return false;
	memcpy(out, dir, len);
	out[len] = '\0';
	for (const char *c = target; *c;) {
		size_t k;

		while (*c == '/')
			c++;
		if (!*c)
			break;
		k = strcspn(c, "/");
		if ((k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.')) {
			if (named)
				return false;
			if (k == 2)
				while (len && out[--len] != '/')
					;
			out[len] = '\0';
		} else {
			named = true;
			if (len + 1 + k >= n)
				return false;
			out[len++] = '/';
			memcpy(out + len, c, k);
			len += k;
			out[len] = '\0';
		}
		c += k;
	}
	if (!len) {
		if (n < 2)
			return false;
		out[len++] = '/';
		out[len] = '\0';
	}
	return true;
}

static int lookup_at(struct vmw_files *f, const char *path, struct inode_info *ino, unsigned links,
		     struct vmw_error *err);

/*
 * A path looked up lately, checked dentry by dentry instead of searched
 * for in each directory's children (hundreds of reads in a distribution's
 * /etc, on every recheck of /etc/passwd): each remembered dentry must still
 * be hashed (a file renamed over or deleted unhashes its dentry, which may
 * live on with the old inode), carry its name, have the one before it as
 * its parent, and have nothing mounted on it in PID 1's namespace. A path
 * whose last name is a symlink is then followed: its target is read again
 * and looked up (remembered in turn when it is a plain path). 0 with ino,
 * or -ENOENT: look it up the long way.
 */
static int known_lookup(struct vmw_files *f, const char *path, const struct where *root, unsigned links,
			struct inode_info *ino)
{
	for (unsigned i = 0; f->d.hash_pprev.ok && i < KNOWN_PATHS; i++) {
		const struct known_path *k = &f->known[i];
		const char *name = path;
		uint64_t parent = root->d, v;

		if (!k->n || strcmp(k->path, path) || k->root != root->d || k->root_mnt != root->mnt ||
		    (k->link && links >= KNOWN_LINKS))
			continue;
		struct span sp = { 0 };

		for (unsigned j = 0; j < k->n; j++) {
			size_t len;

			while (*name == '/')
				name++;
			len = strcspn(name, "/");
			dentry_span(f, &sp, k->d[j]);
			if (span_get(f, &sp, f->d.parent, &v) < 0 || v != parent ||
			    span_get(f, &sp, f->d.hash_pprev, &v) < 0 || !v ||
			    span_get(f, &sp, f->d.flags, &v) < 0 || !name_is(f, &sp, name, len))
				return -ENOENT;
			/* Mounted on in some namespace (a service's private view
			 * of /etc, say): still not in PID 1's, as walk_step asks. */
			if (v & DCACHE_MOUNTED) {
				struct where t = { root->mnt, k->d[j] };
				size_t steps = MAX_STEPS;
				if (cross_mounts(f, &t, &steps) < 0 || t.mnt != root->mnt || t.d != k->d[j])
					return -ENOENT;
			}
			parent = k->d[j];
			name += len;
		}
		if (span_get(f, &sp, f->d.inode, &v) < 0 || read_inode_at(f, v, ino) < 0)
			return -ENOENT;
		if (!k->link)
			return 0;
		/* The target as it is now, from the directory the link is in. */
		struct vmw_error e = { 0 };
		char *target = malloc(2 * MAX_PATH), *to = target + MAX_PATH;
		int r = -ENOENT;

		if (target && (ino->mode & S_IFMT) == S_IFLNK && link_target(f, ino, target, &e) == 0 &&
		    join_link(path, (size_t)(strrchr(path, '/') - path), target, to, MAX_PATH))
			r = lookup_at(f, to, ino, links + 1, &e) == 0 ? 0 : -ENOENT;
		free(target);
		return r;
	}
	return -ENOENT;
}

static void known_remember(struct vmw_files *f, const char *path, const struct where *root, const uint64_t *d,
			   unsigned n, bool link)
{
	struct known_path *k = NULL;

	if (!n || n > KNOWN_DEPTH || strlen(path) >= KNOWN_LEN)
		return;
	for (unsigned i = 0; i < KNOWN_PATHS && !k; i++)
		if (!strcmp(f->known[i].path, path))
			k = &f->known[i];
	if (!k) {
		k = &f->known[f->known_next];
		f->known_next = (f->known_next + 1) % KNOWN_PATHS;
	}
	snprintf(k->path, sizeof(k->path), "%s", path);
	k->root = root->d;
	k->root_mnt = root->mnt;
	memcpy(k->d, d, n * sizeof(*d));
	k->n = n;
	k->link = link;
}

/* Resolve path to an inode (symlinks followed); links: remembered
 * symlinks followed on the way here (known_lookup). */
static int lookup_at(struct vmw_files *f, const char *path, struct inode_info *ino, unsigned links,
		     struct vmw_error *err)
{
	uint64_t seen[KNOWN_DEPTH];
	unsigned nseen = 0;
	bool plain = true;          /* no symlink, mount, "." or ".." on the way */
	struct lookup *lk = calloc(1, sizeof(*lk));
	struct where root, w;
	const char *name;
	size_t len;
	int r;

	if (!lk)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if (path[0] != '/' || strlen(path) >= MAX_PATH) {
		free(lk);
		return vmw_error_setk(err, VMW_ERR_USAGE, -EINVAL, "%s: give an absolute path", path);
	}
	snprintf(lk->path, sizeof(lk->path), "%s", path);
	lk->steps = MAX_STEPS;
	if ((r = root_dentry(f, &root, err)) < 0)
		goto out;
	if (known_lookup(f, path, &root, links, ino) == 0) {
		r = 0;
		goto out;
	}
	w = root;
	if ((r = read_inode(f, w.d, ino)) < 0)
		goto bad;
	while ((name = next_name(lk, &len))) {
		struct where parent = w;
		if ((ino->mode & S_IFMT) != S_IFDIR) {
			r = vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ENOTDIR, "%s: not a directory on the way", path);
			goto out;
		}
		if ((r = walk_step(f, lk, path, &w, &root, name, len, err)) < 0)
			goto out;
		if (w.mnt != parent.mnt || name[0] == '.' || nseen == KNOWN_DEPTH)
			plain = false;
		else
			seen[nseen++] = w.d;
		if ((r = read_inode(f, w.d, ino)) == -ENOENT) {
			r = vmw_error_setk(err, VMW_ERR_NOT_FOUND, -ENOENT, "%s: no such file in the guest", path);
			goto out;
		}
		if (r < 0)
			goto bad;
		if ((ino->mode & S_IFMT) == S_IFLNK) {
			char target[MAX_PATH];
			/* The path's own last name, reached by plain names: remembered
			 * with its target read again each time. */
			if (plain && !lk->links && !links && !lk->path[lk->pos + strspn(lk->path + lk->pos, "/")])
				known_remember(f, path, &root, seen, nseen, true);
			if ((r = link_target(f, ino, target, err)) < 0 || (r = splice_link(lk, target, err)) < 0)
				goto out;
			w = target[0] == '/' ? root : parent;
			if ((r = read_inode(f, w.d, ino)) < 0)
				goto bad;
			plain = false;
		}
	}
	if (plain)
		known_remember(f, path, &root, seen, nseen, false);
	r = 0;
	goto out;
bad:
	r = vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG, "%s: an inode on the way is unreadable", path);
out:
	free(lk);
	return r;
}

/* ---- the page cache --------------------------------------------------- */

static bool xa_is_node(uint64_t e) { return (e & 3) == 2 && e > 4096; }
static bool xa_is_sibling(uint64_t e) { return (e & 3) == 2 && (e >> 2) < XA_CHUNK; }

/*
 * xa_load(): the entry at index (0: none, or not a page), and *ret_base, the
 * first index of the slot the tree stores it in: a large folio covering
 * several indexes is found through its sibling entries (or stored higher),
 * and its page says that first index (page_phys checks). -EBADMSG when the
 * tree does not add up (shifts that do not descend by 6, depth).
 */
static int xa_load(struct vmw_files *f, uint64_t head, uint64_t index, uint64_t *ret, uint64_t *ret_base)
{
	uint64_t e = head, shift, prev_shift = 64;

	*ret = 0;
	*ret_base = 0;
	if (!xa_is_node(e)) {
		*ret = index == 0 && (e & 3) == 0 ? e : 0;
		return 0;
	}
	for (int depth = 0; xa_is_node(e); depth++) {
		uint64_t node = e - 2;
		unsigned off;

		if (depth >= MAX_XA_DEPTH || !kaddr(f, node) || rd64(f, node, f->xa.shift, &shift) < 0 ||
		    shift % 6 || shift >= prev_shift || (depth > 0 && shift + 6 != prev_shift))
			return -EBADMSG;
		if (depth == 0 && shift + 6 < 64 && (index >> (shift + 6)))
			return 0;                     /* beyond the tree */
		off = (unsigned)((index >> shift) & (XA_CHUNK - 1));
		if (vmw_xlat_read(f->kx, node + f->xa.slots.off + off * 8ull, &e, 8) < 0)
			return -EBADMSG;
		if (xa_is_sibling(e)) {
			unsigned to = (unsigned)(e >> 2);
			if (to >= off || vmw_xlat_read(f->kx, node + f->xa.slots.off + to * 8ull, &e, 8) < 0 ||
			    xa_is_node(e))
				return -EBADMSG;
			off = to;
		}
		/* The slot's first index: index above this node's span, off below. */
		*ret_base = (shift + 6 < 64 ? index >> (shift + 6) << (shift + 6) : 0) | ((uint64_t)off << shift);
		prev_shift = shift;
	}
	/* Value entries (shadow, swap) and other internal entries: not a page. */
	*ret = (e & 3) == 0 ? e : 0;
	return 0;
}

/* The physical address of the page at index of the cached folio at pg (its
 * head page), stored in the slot whose first index is base (xa_load);
 * -ENOENT when it is not up to date, -EBADMSG when it is not this file's
 * (another mapping, an index it does not cover, or not the index the tree
 * stores it at: a page claiming an earlier index would have its neighbours
 * in physical memory read as the file's). */
static int page_phys(struct vmw_files *f, uint64_t mapping, uint64_t pg, uint64_t index, uint64_t base,
		     uint64_t *phys)
{
	uint64_t m, idx, flags, pfn, sub;

	if (!kaddr(f, pg) || pg < f->vmemmap || rd64(f, pg, f->pg.mapping, &m) < 0 || m != mapping ||
	    rd64(f, pg, f->pg.index, &idx) < 0 || rd64(f, pg, f->pg.flags, &flags) < 0)
		return -EBADMSG;
	if (idx != base)
		return -EBADMSG;
	/* A folio covers at most 2^18 pages (a 1 GiB PUD folio). */
	if (index < idx || index - idx >= (1u << 18))
		return -EBADMSG;
	sub = index - idx;
	if (!(flags & (1ull << f->pg_uptodate)))
		return -ENOENT;
	if ((pg - f->vmemmap) % f->page_size)
		return -EBADMSG;
	pfn = (pg - f->vmemmap) / f->page_size + sub;
	if (pfn > (1ull << 40))
		return -EBADMSG;
	*phys = pfn * PAGE;
	return 0;
}

static int add_hole(struct vmw_file *out, uint64_t off, uint64_t len)
{
	if (out->nholes && out->holes[out->nholes - 1].off + out->holes[out->nholes - 1].len == off) {
		out->holes[out->nholes - 1].len += len;
		return 0;
	}
	struct vmw_file_hole *h = realloc(out->holes, (out->nholes + 1) * sizeof(*h));
	if (!h)
		return -ENOMEM;
	out->holes = h;
	out->holes[out->nholes++] = (struct vmw_file_hole){ off, len };
	return 0;
}

/* Read the cached pages of [0, size) into out->data (allocated here). */
static int read_pages(struct vmw_files *f, const struct inode_info *ino, uint64_t size, struct vmw_file *out)
{
	uint64_t head;

	if (!kaddr(f, ino->mapping) || rd64(f, ino->mapping, f->as.head, &head) < 0)
		return -EBADMSG;
	out->data = calloc(1, size + 1);
	if (!out->data)
		return -ENOMEM;
	for (uint64_t index = 0; index * PAGE < size; index++) {
		uint64_t pg, base, phys = 0, len = MIN((uint64_t)PAGE, size - index * PAGE);
		int r = xa_load(f, head, index, &pg, &base);

		if (r == 0 && pg)
			r = page_phys(f, ino->mapping, pg, index, base, &phys);
		if (r == 0 && pg &&
		    vmw_xlat_read(f->kx, f->page_offset_base + phys, out->data + index * PAGE, len) == 0) {
			out->cached_bytes += len;
			continue;
		}
		if (r == -EBADMSG)
			out->incomplete = true;
		memset(out->data + index * PAGE, 0, len);
		if (add_hole(out, index * PAGE, len) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void fill_stat(struct vmw_files *f, const struct inode_info *ino, struct vmw_file *out)
{
	memset(out, 0, sizeof(*out));
	out->inode = ino->addr;
	out->mode = ino->mode;
	out->ino = ino->ino;
	out->size = ino->size;
	out->mtime_sec = (int64_t)ino->mtime_sec;
	out->mtime_nsec = (uint32_t)ino->mtime_nsec;
	if (kaddr(f, ino->mapping))
		rd64(f, ino->mapping, f->as.nrpages, &out->nrpages);
}

static int stat_inode(struct vmw_files *f, const char *path, struct inode_info *ino, struct vmw_file *ret,
		      struct vmw_error *err)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = lookup_at(f, path, ino, 0, err)) < 0)
		return r;
	fill_stat(f, ino, ret);
	return 0;
}

int vmw_files_stat(struct vmw_files *f, const char *path, struct vmw_file *ret, struct vmw_error *err)
{
	struct inode_info ino;
	return stat_inode(f, path, &ino, ret, err);
}

int vmw_files_read(struct vmw_files *f, const char *path, uint64_t max_size, struct vmw_file *ret,
		   struct vmw_error *err)
{
	struct inode_info ino;
	int r;

	if ((r = stat_inode(f, path, &ino, ret, err)) < 0)
		return r;
	if ((ino.mode & S_IFMT) == S_IFDIR)
		return vmw_error_setk(err, VMW_ERR_USAGE, -EISDIR, "%s: a directory", path);
	if ((ino.mode & S_IFMT) != S_IFREG)
		return vmw_error_setk(err, VMW_ERR_USAGE, -EINVAL, "%s: not a regular file", path);
	if (ret->size > max_size)
		return vmw_error_setk(err, VMW_ERR_USAGE, -EFBIG, "%s: %llu bytes, more than the %llu asked for",
				      path, (unsigned long long)ret->size, (unsigned long long)max_size);
	r = read_pages(f, &ino, ret->size, ret);
	if (r == -ENOMEM)
		r = vmw_error_set(err, r, "out of memory");
	else if (r < 0)
		r = vmw_error_setk(err, VMW_ERR_INCONSISTENT, r, "%s: its address_space is unreadable", path);
	if (r < 0)
		vmw_file_release(ret);
	return r;
}

void vmw_file_release(struct vmw_file *file)
{
	free(file->data);
	free(file->holes);
	file->data = NULL;
	file->holes = NULL;
	file->nholes = 0;
}
