/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.c - sparse memory images (see fuzz_image.h) and the run the
 * fuzz target does on one.
 */
#include "fuzz_image.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#endif
#endif
#ifndef ASAN_POISON_MEMORY_REGION
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

struct ival {
	uint64_t start, end;     /* pfns, [start, end) */
};

struct toc {
	uint64_t pfn;
	size_t idx;              /* position in the input: first wins */
};

static int ival_cmp(const void *a, const void *b)
{
	const struct ival *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static int toc_cmp(const void *a, const void *b)
{
	const struct toc *x = a, *y = b;
	if (x->pfn != y->pfn)
		return x->pfn < y->pfn ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * RAM runs live in one arena, mapped once and kept: fresh allocations of a
 * few MiB per input cost more in page faults than the whole walk. Each run
 * has a poisoned 4 KiB guard before it and everything unused is poisoned,
 * so ASan still catches a read past a segment's end. An image loaded while
 * the arena is in use (not done by the targets) gets calloc'd runs.
 */
#define GUARD 4096u

static uint8_t *arena;
static size_t arena_cap;
static bool arena_busy;

static uint8_t *arena_get(size_t need)
{
	if (arena_busy)
		return NULL;
	if (need > arena_cap) {
		size_t cap = MAX(need, (size_t)256 << 20);
		void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		if (arena) {
			ASAN_UNPOISON_MEMORY_REGION(arena, arena_cap);
			munmap(arena, arena_cap);
		}
		arena = p;
		arena_cap = cap;
		ASAN_POISON_MEMORY_REGION(arena, arena_cap);
	}
	arena_busy = true;
	return arena;
}

void fuzz_image_free(struct fuzz_image *img)
{
	vmw_mem_close(img->mem);
	if (img->arena_used) {
		ASAN_POISON_MEMORY_REGION(arena, img->arena_used);
		arena_busy = false;
	}
	for (size_t i = 0; i < img->nbufs; i++)
		free(img->bufs[i]);
	free(img->bufs);
	memset(img, 0, sizeof(*img));
}

int fuzz_image_load(const uint8_t *data, size_t size, struct fuzz_image *img)
{
	struct fuzz_hdr h = { 0 };
	struct toc *toc = NULL;
	struct ival *iv = NULL;
	size_t n = 0, ntoc = 0, niv = 0, nruns = 0;
	int r = -ENOMEM;

	memset(img, 0, sizeof(*img));
	memcpy(&h, data, MIN(size, sizeof(h)));
	img->flags = h.flags;
	if (size > sizeof(h)) {
		size_t avail = size - sizeof(h);
		n = MIN((size_t)h.npages, avail / 4);
		n = MIN(n, (avail - 4 * n) / FUZZ_PAGE);   /* pages with full data */
	}
	if (h.zero_npages > FUZZ_ZERO_MAX)
		h.zero_npages = FUZZ_ZERO_MAX;

	toc = calloc(n + 1, sizeof(*toc));
	iv = calloc(n + 1, sizeof(*iv));
	if (!toc || !iv)
		goto out;
	for (size_t i = 0; i < n; i++)
		toc[i] = (struct toc){ rd32(data + sizeof(h) + 4 * i), i };
	qsort(toc, n, sizeof(*toc), toc_cmp);
	for (size_t i = 0; i < n; i++)   /* drop duplicates: the first given stays */
		if (!ntoc || toc[ntoc - 1].pfn != toc[i].pfn)
			toc[ntoc++] = toc[i];
	img->npages = ntoc;

	/* Runs of RAM: the pages given, merged with the zero range. */
	for (size_t i = 0; i < ntoc; i++)
		iv[niv++] = (struct ival){ toc[i].pfn, toc[i].pfn + 1 };
	if (h.zero_npages)
		iv[niv++] = (struct ival){ h.zero_pfn, (uint64_t)h.zero_pfn + h.zero_npages };
	qsort(iv, niv, sizeof(*iv), ival_cmp);
	for (size_t i = 0; i < niv; i++) {
		if (nruns && iv[i].start <= iv[nruns - 1].end)
			iv[nruns - 1].end = MAX(iv[nruns - 1].end, iv[i].end);
		else
			iv[nruns++] = iv[i];
	}

	if ((r = vmw_mem_new(&img->mem)) < 0)
		goto out;
	r = -ENOMEM;
	img->bufs = calloc(nruns + 1, sizeof(*img->bufs));
	if (!img->bufs)
		goto out;
	const uint8_t *pages = data + sizeof(h) + 4 * MIN((size_t)h.npages, size > sizeof(h) ?
							    (size - sizeof(h)) / 4 : 0);
	uint64_t need = GUARD;
	for (size_t ri = 0; ri < nruns; ri++)
		need += (iv[ri].end - iv[ri].start) * FUZZ_PAGE + GUARD;
	uint8_t *base = need <= SIZE_MAX ? arena_get((size_t)need) : NULL;
	if (base)
		img->arena_used = (size_t)need;
	for (size_t ri = 0, ti = 0, at = GUARD; ri < nruns; ri++) {
		uint64_t len = (iv[ri].end - iv[ri].start) * FUZZ_PAGE;
		uint8_t *buf;
		if (base) {
			buf = base + at;
			at += len + GUARD;
			ASAN_UNPOISON_MEMORY_REGION(buf, len);
			memset(buf, 0, len);
		} else {
			buf = calloc(1, len);
			if (!buf)
				goto out;
			img->bufs[img->nbufs++] = buf;
		}
		for (; ti < ntoc && toc[ti].pfn < iv[ri].end; ti++)
			memcpy(buf + (toc[ti].pfn - iv[ri].start) * FUZZ_PAGE,
			       pages + toc[ti].idx * FUZZ_PAGE, FUZZ_PAGE);
		/* Remote: the "QEMU process" is this one, its RAM our buffers. */
		const void *local = img->flags & FUZZ_F_REMOTE ? NULL : buf;
		uint64_t remote = (uint64_t)(uintptr_t)buf;
		/* Per page for at most 8192 pages in all (vmw_mem_add_seg
		 * grows its table one by one: quadratic under ASan's realloc). */
		if ((img->flags & FUZZ_F_PAGE_SEGS) && img->mem->nsegs + len / FUZZ_PAGE <= 8192) {
			for (uint64_t off = 0; off < len; off += FUZZ_PAGE)
				if ((r = vmw_mem_add_seg(img->mem, iv[ri].start * FUZZ_PAGE + off,
							 FUZZ_PAGE, local ? buf + off : NULL,
							 remote + off)) < 0)
					goto out;
		} else if ((r = vmw_mem_add_seg(img->mem, iv[ri].start * FUZZ_PAGE, len, local,
						remote)) < 0) {
			goto out;
		}
	}
	if (img->flags & FUZZ_F_REMOTE)
		img->mem->pid = getpid();
	if ((r = vmw_mem_finish(img->mem)) < 0)
		goto out;
	snprintf(img->mem->desc, sizeof(img->mem->desc), "fuzz image of %zu pages", ntoc);
	r = 0;
out:
	free(toc);
	free(iv);
	if (r < 0)
		fuzz_image_free(img);
	return r;
}

FILE *fuzz_proc_log;

/* FNV-1a */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* Every string the walk returns must be NUL-terminated inside its buffer
 * (ASan checks the reads). */
static size_t check_str(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (n == max)
		abort();
	return n;
}

int fuzz_attach(struct vmw_mem *mem, unsigned flags, struct vmw_kernel **ret_k,
		struct vmw_linux **ret_l, struct fuzz_result *res)
{
	VMW_KERNEL_OPTS(o, .no_cache = true,
			.ignore_vmcoreinfo_kallsyms = (flags & FUZZ_F_FALLBACK) != 0);
	struct vmw_error err = { 0 };
	struct vmw_kernel *k = NULL;
	struct vmw_linux *l = NULL;

	memset(res, 0, sizeof(*res));
	res->linux_rc = res->walk_rc = 1;
	*ret_k = NULL;
	*ret_l = NULL;
	res->attach_rc = vmw_kernel_attach(mem, &o, &k, &err);
	if (res->attach_rc < 0)
		goto fail;
	{
		const struct vmw_kernel_info *ki = vmw_kernel_info(k);
		check_str(ki->release, sizeof(ki->release));
		check_str(ki->build_id, sizeof(ki->build_id));
		snprintf(res->symbols_from, sizeof(res->symbols_from), "%s", ki->symbols_from);
		res->phys_base = ki->phys_base;
		res->scan_ns = ki->scan_ns;
		res->kallsyms_ns = ki->kallsyms_ns;
		res->btf_ns = ki->btf_ns;
		res->attach_ns = ki->attach_ns;
		vmw_kernel_symbol(k, "_stext", &res->stext);
	}
	res->linux_rc = vmw_linux_new(k, &l, &err);
	if (res->linux_rc < 0)
		goto fail;
	*ret_k = k;
	*ret_l = l;
	return 0;
fail:
	snprintf(res->msg, sizeof(res->msg), "%s", err.msg);
	vmw_kernel_detach(k);
	return -1;
}

/* ---- the guest's files: dentry/mount walk, page cache (xarray), names ---- */

/* Paths the files check reads: the files the process model reads (passwd,
 * group, os-release: a symlink on Debian), a path through "." and "..", a
 * directory, a file on another mount, one that is not cached. */
static const char *const file_paths[] = {
	"/etc/passwd", "/etc/group", "/etc/os-release", "/usr/lib/os-release", "/etc/../etc/./hostname",
	"/run", "/run/systemd/journal/../../utmp", "/nonexistent/file",
};
#define FILE_MAX (1u << 20)

/* What vmw_files_read returned must describe itself: the size bounded,
 * data there, holes in order inside the file, cached bytes inside it. */
static void check_file(int rc, const struct vmw_file *f)
{
	uint64_t end = 0;

	if (rc < 0)
		return;
	if (f->size > FILE_MAX || (f->size && !f->data) || f->cached_bytes > f->size ||
	    (f->nholes && !f->holes))
		abort();
	for (size_t i = 0; i < f->nholes; i++) {
		const struct vmw_file_hole *h = &f->holes[i];
		if (!h->len || h->off < end || h->off > f->size || h->len > f->size - h->off)
			abort();
		end = h->off + h->len;
	}
	if (f->size)
		(void)((volatile const uint8_t *)f->data)[f->size - 1];
}

/* Read every path (a stat first, then the data); check the user names and
 * the OS the walk read: plausible names, terminated strings. The number of
 * files read whole goes to res->nfiles. */
static void fuzz_files_check(struct vmw_linux *l, struct fuzz_result *res)
{
	struct vmw_files *fs = vmw_linux_files(l);
	const struct vmw_users *u = vmw_linux_users(l);
	const struct vmw_os_release *os = vmw_users_os(u);

	res->nfiles = 0;
	for (size_t i = 0; fs && i < sizeof(file_paths) / sizeof(file_paths[0]); i++) {
		struct vmw_error err = { 0 };
		struct vmw_file f;
		int rc = vmw_files_stat(fs, file_paths[i], &f, &err);
		check_str(err.msg, sizeof(err.msg));
		if (rc == 0 && (f.data || f.holes))
			abort();
		rc = vmw_files_read(fs, file_paths[i], FILE_MAX, &f, &err);
		check_str(err.msg, sizeof(err.msg));
		check_file(rc, &f);
		if (rc == 0) {
			res->nfiles += !f.nholes && !f.incomplete;
			vmw_file_release(&f);
		}
	}
	for (uint32_t id = 0; id < 2048; id++) {
		const char *names[2] = { vmw_users_name(u, id), vmw_users_group(u, id) };
		for (int k = 0; k < 2; k++) {
			size_t n = names[k] ? check_str(names[k], VMW_USER_NAME_MAX + 1) : 1;
			for (size_t j = 0; names[k] && j < n; j++)
				if ((unsigned char)names[k][j] <= ' ' || (unsigned char)names[k][j] >= 0x7f)
					abort();
			if (!n)
				abort();
		}
	}
	if (os) {
		check_str(os->pretty_name, sizeof(os->pretty_name));
		check_str(os->id, sizeof(os->id));
		check_str(os->version_id, sizeof(os->version_id));
	}
}

void fuzz_walk_check(struct vmw_linux *l, unsigned flags, struct fuzz_result *res)
{
	struct vmw_error err = { 0 };
	struct vmw_walk w;

	res->fingerprint = 0xcbf29ce484222325ull;
	for (int pass = 0; pass < (flags & FUZZ_F_TWICE ? 2 : 1); pass++) {
		res->walk_rc = vmw_linux_walk(l, VMW_WALK_THREADS | VMW_WALK_CMDLINE, &w, &err);
		if (res->walk_rc < 0) {
			snprintf(res->msg, sizeof(res->msg), "%s", err.msg);
			return;
		}
		res->walk_ns = w.walk_ns;
		res->nprocs = w.nprocs;
		res->skipped = w.skipped;
		res->truncated = w.truncated;
		res->nthreads = res->ncmdlines = 0;
		check_str(w.truncated_why, sizeof(w.truncated_why));
		for (size_t i = 0; i < w.nprocs; i++) {
			const struct vmw_proc *p = &w.procs[i];
			size_t len = check_str(p->comm, sizeof(p->comm));
			if (pass == 0) {
				res->fingerprint = mix(res->fingerprint, &p->pid, sizeof(p->pid));
				res->fingerprint = mix(res->fingerprint, &p->ppid, sizeof(p->ppid));
				res->fingerprint = mix(res->fingerprint, p->comm, len);
				if (fuzz_proc_log)
					fprintf(fuzz_proc_log, "proc %d %d %u %s\n", p->pid, p->ppid,
						p->nthreads_listed, p->comm);
			}
			for (uint32_t t = 0; p->threads && t < p->nthreads_listed; t++)
				check_str(p->threads[t].comm, sizeof(p->threads[t].comm));
			res->nthreads += p->nthreads_listed;
			if (p->cmdline) {
				res->ncmdlines++;
				for (char **a = p->cmdline; *a; a++)
					(void)strlen(*a);
			}
		}
		vmw_walk_free(&w);
	}
	fuzz_files_check(l, res);
}

void fuzz_cgroups_check(struct vmw_kernel *k, struct fuzz_result *res)
{
	struct vmw_cgroup_reader *r;
	struct vmw_cgroups c;
	double *pct;

	res->ncgroups = 0;
	if (vmw_cgroups_new(k, &r, NULL) < 0)
		return;
	if (vmw_cgroups_read(r, &c, NULL) == 0) {
		res->ncgroups = c.n;
		check_str(c.truncated_why, sizeof(c.truncated_why));
		for (size_t i = 0; i < c.n; i++) {
			if (!c.cg[i].path || c.cg[i].path[0] != '/' || (i && c.cg[i].depth > c.cg[i - 1].depth + 1) ||
			    (i == 0) != (c.cg[i].depth == 0))
				abort();
			(void)strlen(c.cg[i].path);
		}
		if ((pct = calloc(c.n + 1, sizeof(*pct))) && vmw_cgroups_cpu_percent(&c, &c, 1000000000ull, pct) == 0)
			for (size_t i = 0; i < c.n; i++)
				if (!(pct[i] == 0 || pct[i] != pct[i]))
					abort();
		free(pct);
		vmw_cgroups_free(&c);
	}
	vmw_cgroups_reader_free(r);
}

void fuzz_run_mem(struct vmw_mem *mem, unsigned flags, struct fuzz_result *res)
{
	struct vmw_kernel *k;
	struct vmw_linux *l;

	if (fuzz_attach(mem, flags, &k, &l, res) < 0)
		return;
	fuzz_walk_check(l, flags, res);
	fuzz_cgroups_check(k, res);
	vmw_linux_free(l);
	vmw_kernel_detach(k);
}

void fuzz_run(const uint8_t *data, size_t size, struct fuzz_result *res)
{
	struct fuzz_image img;

	memset(res, 0, sizeof(*res));
	if (fuzz_image_load(data, size, &img) < 0) {
		res->attach_rc = -ENOMEM;
		return;
	}
	fuzz_run_mem(img.mem, img.flags, res);
	fuzz_image_free(&img);
}

void fuzz_result_print(FILE *f, const struct fuzz_result *res)
{
	if (res->attach_rc < 0)
		fprintf(f, "attach: error %d: %s\n", res->attach_rc, res->msg);
	else if (res->linux_rc < 0)
		fprintf(f, "attach: ok (%s)\nlinux: error %d: %s\n", res->symbols_from,
			res->linux_rc, res->msg);
	else if (res->walk_rc < 0)
		fprintf(f, "attach: ok (%s)\nwalk: error %d: %s\n", res->symbols_from,
			res->walk_rc, res->msg);
	else
		fprintf(f, "attach: ok (%s)\nwalk: procs=%zu threads=%zu cmdlines=%zu skipped=%zu "
			"truncated=%d fingerprint=%016llx\n", res->symbols_from, res->nprocs,
			res->nthreads, res->ncmdlines, res->skipped, res->truncated,
			(unsigned long long)res->fingerprint);
	if (res->walk_rc == 0 && res->linux_rc == 0 && res->attach_rc == 0)
		fprintf(f, "files: %zu of %zu read whole\n", res->nfiles, sizeof(file_paths) / sizeof(file_paths[0]));
	if (res->attach_rc == 0 && res->linux_rc == 0 && res->walk_rc == 0)
		fprintf(f, "cgroups: %zu\n", res->ncgroups);
	if (res->attach_rc == 0)
		fprintf(f, "times: attach %.1f ms (scan %.1f, kallsyms %.1f, btf %.1f), walk %.1f ms\n",
			res->attach_ns / 1e6, res->scan_ns / 1e6, res->kallsyms_ns / 1e6,
			res->btf_ns / 1e6, res->walk_ns / 1e6);
}
