/* SPDX-License-Identifier: MIT */
/*
 * discover.c - finding the guest kernel: VMCOREINFO copies in guest RAM →
 * which copy is live → kallsyms → BTF → per-CPU areas → the kernel address
 * space; with the discovery cache in front (a cached attach re-verifies the
 * remembered copy against guest RAM instead of scanning).
 *
 * Every guest read here is physical: kernel-image symbols translate with
 * phys_base (vmw_image_phys), direct-map pointers with page_offset_base.
 */
#include "kernel/kernel_internal.h"

#include <linux/btf.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#define DIRECT_MAP_L4 0xffff888000000000ull
#define DIRECT_MAP_L5 0xff11000000000000ull
#define MAX_TABLES_SPAN (128u << 20)    /* kallsyms tables, VMCOREINFO path */
#define MAX_IMAGE_SCAN (96u << 20)      /* kernel image searched by the fallback */
#define MAX_BTF (64u << 20)
#define MAX_CPUS 8192

static const char SYMS_VMCOREINFO[] = "kallsyms via VMCOREINFO";
static const char SYMS_STRUCTURE[] = "kallsyms located by structure";

/* ---- helpers ------------------------------------------------------------ */

static int sym_u64(struct vmw_kernel *k, const char *name, uint64_t *v)
{
	uint64_t addr;
	int r = vmw_kernel_symbol(k, name, &addr);
	if (r < 0)
		return r;
	return vmw_read_image(k->mem, k->vi->phys_base, addr, v, sizeof(*v));
}

/* End of guest RAM (highest physical address + 1). */
static uint64_t ram_end(struct vmw_mem *mem)
{
	const struct vmw_mem_range *r;
	size_t n = vmw_mem_ranges(mem, &r);
	return n ? r[n - 1].start + r[n - 1].size : 0;
}

/* Bytes of RAM readable from phys on (within its range). */
static uint64_t ram_avail(struct vmw_mem *mem, uint64_t phys)
{
	const struct vmw_mem_range *r;
	size_t n = vmw_mem_ranges(mem, &r);
	for (size_t i = 0; i < n; i++)
		if (phys >= r[i].start && phys - r[i].start < r[i].size)
			return r[i].size - (phys - r[i].start);
	return 0;
}

/* Does the page table at vi's init_top_pgt map _stext where phys_base says? */
static bool pgd_maps_image(struct vmw_mem *mem, const struct vmw_vmcoreinfo *vi)
{
	struct vmw_xlat *x;
	uint64_t phys;
	int r;

	if (vmw_xlat_new(mem, vmw_image_phys(vi->phys_base, vi->pgd), vi->paging_levels, &x) < 0)
		return false;
	r = vmw_xlat_v2p(x, vi->stext, &phys, NULL);
	vmw_xlat_free(x);
	return r == 0 && phys == vmw_image_phys(vi->phys_base, vi->stext);
}

static void vmw_vmcoreinfo_freep(struct vmw_vmcoreinfo **p) { vmw_vmcoreinfo_free(*p); }
static void vmw_symtab_freep(struct vmw_symtab **p) { vmw_symtab_free(*p); }

/* ---- kallsyms ------------------------------------------------------------ */

static int kallsyms_from_vmcoreinfo(struct vmw_kernel *k, struct vmw_symtab **ret,
				    const char **why)
{
	static const char *const names[] = {
		"kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table",
		"kallsyms_token_index", "kallsyms_offsets", "kallsyms_relative_base",
	};
	uint64_t a[ARRAY_SIZE(names)], lo = UINT64_MAX, hi = 0;
	struct vmw_kallsyms_tables t = { 0 };
	_cleanup_free_ uint8_t *buf = NULL;
	uint32_t n;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		r = vmw_vmcoreinfo_symbol(k->vi, names[i] + strlen("kallsyms_"), &a[i]);
		if (r == -ENOENT)
			r = vmw_vmcoreinfo_symbol(k->vi, names[i], &a[i]);
		if (r < 0)
			return -ENOENT;
		lo = MIN(lo, a[i]);
		hi = MAX(hi, a[i]);
	}
	enum { NAMES, NUM, TT, TI, OFFS, BASE };
	/* One read covering all tables: from the lowest to past the highest
	 * (the last table is at most the token index, 512 bytes). */
	r = vmw_read_image(k->mem, k->vi->phys_base, a[NUM], &n, 4);
	if (r < 0) {
		*why = "kallsyms_num_syms unreadable";
		return r;
	}
	if (n == 0 || n > (1u << 24)) {
		*why = "implausible kallsyms_num_syms";
		return -EINVAL;
	}
	hi = MAX(hi + 512, a[OFFS] + 4ull * n);
	if (hi - lo > MAX_TABLES_SPAN) {
		*why = "kallsyms tables implausibly far apart";
		return -EINVAL;
	}
	buf = malloc(hi - lo);
	if (!buf)
		return -ENOMEM;
	r = vmw_read_image(k->mem, k->vi->phys_base, lo, buf, hi - lo);
	if (r < 0) {
		*why = "kallsyms tables unreadable";
		return r;
	}
	t.num_syms = n;
	t.names = buf + (a[NAMES] - lo);
	t.names_len = hi - a[NAMES];
	t.token_table = buf + (a[TT] - lo);
	t.token_table_len = a[TI] > a[TT] ? a[TI] - a[TT] : hi - a[TT];
	t.token_index = buf + (a[TI] - lo);
	t.offsets = buf + (a[OFFS] - lo);
	memcpy(&t.relative_base, buf + (a[BASE] - lo), 8);
	r = vmw_kallsyms_decode(&t, ret, NULL, why);
	if (r < 0)
		return r;
	k->tokens_vaddr = a[TT];
	memcpy(k->tokens_head, t.token_table, sizeof(k->tokens_head));
	return 0;
}

static int kallsyms_by_structure(struct vmw_kernel *k, struct vmw_symtab **ret, const char **why)
{
	/* _text is 2 MiB aligned and _stext == _text on x86-64. */
	uint64_t vaddr = k->vi->stext & ~((2ull << 20) - 1);
	uint64_t phys = vmw_image_phys(k->vi->phys_base, vaddr);
	uint64_t avail = ram_avail(k->mem, phys);
	struct vmw_kallsyms_tables t;
	struct vmw_kallsyms_found found;
	int r = -ENOENT;

	if (avail < (1u << 20)) {
		*why = "kernel image not in guest RAM";
		return -EFAULT;
	}
	/* The tables sit in .rodata, some tens of MiB into the image: try the
	 * first 32 MiB, then up to MAX_IMAGE_SCAN. */
	for (uint64_t want = 32u << 20;; want = MAX_IMAGE_SCAN) {
		uint64_t len = MIN(avail, want);
		_cleanup_free_ uint8_t *img = malloc(len);
		if (!img)
			return -ENOMEM;
		r = vmw_mem_read(k->mem, phys, img, len);
		if (r < 0) {
			*why = "kernel image unreadable";
			return r;
		}
		r = vmw_kallsyms_locate(img, len, vaddr, k->vi->stext, &t, &found, why);
		if (r == 0) {
			r = vmw_kallsyms_decode(&t, ret, NULL, why);
			if (r < 0)
				return r;
			k->tokens_vaddr = found.token_table;
			memcpy(k->tokens_head, t.token_table, sizeof(k->tokens_head));
			return 0;
		}
		if (len == avail || want == MAX_IMAGE_SCAN)
			return r;
	}
}

/* Does a symbol table agree with VMCOREINFO's own symbols? */
static int check_symtab(const struct vmw_vmcoreinfo *vi, const struct vmw_symtab *st, const char **why)
{
	const struct vmw_ksym *s = vmw_symtab_lookup(st, "_stext");

	if (!s || s->addr != vi->stext) {
		*why = "kallsyms disagrees with VMCOREINFO about _stext";
		return -EINVAL;
	}
	s = vmw_symtab_lookup(st, "init_top_pgt");
	if (!s)
		s = vmw_symtab_lookup(st, "swapper_pg_dir");
	if (!s || s->addr != vi->pgd) {
		*why = "kallsyms disagrees with VMCOREINFO about init_top_pgt";
		return -EINVAL;
	}
	if (!vmw_symtab_lookup(st, "init_task")) {
		*why = "kallsyms has no init_task";
		return -EINVAL;
	}
	return 0;
}

/* Decode kallsyms and check it against VMCOREINFO's own symbols. */
static int load_kallsyms(struct vmw_kernel *k, bool ignore_vmcoreinfo, const char **why)
{
	_cleanup_(vmw_symtab_freep) struct vmw_symtab *st = NULL;
	int r = -ENOENT;

	if (!ignore_vmcoreinfo) {
		r = kallsyms_from_vmcoreinfo(k, &st, why);
		if (r == 0)
			k->symbols_how = SYMS_VMCOREINFO;
		else if (r == -ENOMEM)
			return r;
	}
	if (r < 0) {
		/* Kernels < 6.0 do not name the tables; a damaged table named by
		 * VMCOREINFO gets a second chance too. The first reason wins. */
		const char *first_why = r == -ENOENT ? NULL : *why;
		int r2 = kallsyms_by_structure(k, &st, why);
		if (r2 < 0) {
			if (first_why)
				*why = first_why;
			return first_why ? r : r2;
		}
		k->symbols_how = SYMS_STRUCTURE;
	}
	if ((r = check_symtab(k->vi, st, why)) < 0)
		return r;
	k->symtab = TAKE_PTR(st);
	k->nsyms = k->symtab->nsyms;
	return 0;
}

int vmw_kernel_ensure_symtab(struct vmw_kernel *k)
{
	const char *why = NULL;
	int r;

	if (k->symtab)
		return 0;
	if (k->symtab_err)
		return k->symtab_err;
	if (k->use_cache) {
		struct vmw_kcache c = { 0 };
		if (vmw_kcache_load(k->cache_dir, k->vi->build_id, k->vi->kerneloffset, &c) == 0 &&
		    !strcmp(c.vmcoreinfo_text, k->vi->text) && check_symtab(k->vi, c.symtab, &why) == 0) {
			k->symtab = TAKE_PTR(c.symtab);
			k->nsyms = k->symtab->nsyms;
		}
		vmw_kcache_clear(&c);
		if (k->symtab)
			return 0;
	}
	r = load_kallsyms(k, k->symbols_how == SYMS_STRUCTURE, &why);
	if (r < 0 && r != -ENOMEM)
		k->symtab_err = r;
	return r;
}

/* ---- the live copy -------------------------------------------------------- */

/* page_offset_base: the kernel variable (randomized with KASLR), else the
 * fixed default. */
static uint64_t read_page_offset_base(struct vmw_kernel *k)
{
	uint64_t v;
	if (sym_u64(k, "page_offset_base", &v) == 0 && v >= 0xff00000000000000ull &&
	    v % (1ull << 30) == 0)
		return v;
	return k->vi->paging_levels == 5 ? DIRECT_MAP_L5 : DIRECT_MAP_L4;
}

/* The physical page a kernel pointer variable (vmcoreinfo_data /
 * vmcoreinfo_note) points at through the direct map, or UINT64_MAX. */
static uint64_t pointer_target(struct vmw_kernel *k, uint64_t pob, const char *name)
{
	uint64_t v;
	if (sym_u64(k, name, &v) < 0 || v < pob)
		return UINT64_MAX;
	return v - pob;
}

/* Which of the copies of one kernel's VMCOREINFO does the kernel itself
 * point at? Returns the address of the text, or UINT64_MAX. */
static uint64_t live_copy(struct vmw_kernel *k, const uint64_t *phys, size_t n)
{
	uint64_t pob = read_page_offset_base(k);
	uint64_t data = pointer_target(k, pob, "vmcoreinfo_data");
	uint64_t note = pointer_target(k, pob, "vmcoreinfo_note");
	struct vmw_kernel_sym sym;
	const struct vmw_kernel_sym *s = vmw_kernel_lookup(k, "vmcoreinfo_data", &sym) == 0 ? &sym : NULL;

	for (size_t i = 0; i < n; i++)
		if (phys[i] == data)
			return phys[i];
	for (size_t i = 0; i < n; i++)
		if (note != UINT64_MAX && phys[i] == note + 24)
			return phys[i];
	/* Linux < 4.13: vmcoreinfo_data is an array in the image's .bss. */
	for (size_t i = 0; s && i < n; i++)
		if (phys[i] == vmw_image_phys(k->vi->phys_base, s->addr))
			return phys[i];
	return UINT64_MAX;
}

/* ---- attach --------------------------------------------------------------- */

struct candidate {
	struct vmw_vmcoreinfo *vi;   /* first valid copy */
	uint64_t *phys;              /* all copies with the same kernel identity */
	size_t nphys;
	struct vmw_kernel *k;        /* after kallsyms */
	uint64_t jiffies;
	const char *why;
};

static void candidates_free(struct candidate *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		vmw_vmcoreinfo_free(c[i].vi);
		free(c[i].phys);
		vmw_kernel_detach(c[i].k);
	}
	free(c);
}

static bool same_kernel(const struct vmw_vmcoreinfo *a, const struct vmw_vmcoreinfo *b)
{
	return !strcmp(a->build_id, b->build_id) && a->kerneloffset == b->kerneloffset &&
	       a->phys_base == b->phys_base && a->pgd == b->pgd;
}

static int new_kernel(struct vmw_mem *mem, struct vmw_kernel **ret)
{
	struct vmw_kernel *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->mem = mem;
	*ret = k;
	return 0;
}

/* Is phys inside candidate c's kernel image [_text, _end)? */
static bool in_image(const struct candidate *c, uint64_t phys)
{
	uint64_t t, e;
	if (vmw_kernel_symbol(c->k, "_text", &t) < 0 || vmw_kernel_symbol(c->k, "_end", &e) < 0 || e <= t)
		return false;
	uint64_t p0 = vmw_image_phys(c->vi->phys_base, t);
	return phys >= p0 && phys - p0 < e - t;
}

/*
 * Several kernels look valid: the live one and copies left in RAM by earlier
 * boots (a reboot does not clear RAM). Which one runs?
 *   1. Booting writes a kernel's whole image (text, data, zeroed bss), so a
 *      VMCOREINFO copy of kernel A found intact inside kernel B's image was
 *      written after B booted: B is older, not live.
 *   2. Among the rest, a running kernel advances jiffies; a dead copy's are
 *      frozen. Watched for up to ~1 s (a tickless idle guest updates jiffies
 *      only when a CPU wakes).
 * A paused guest with two intact kernels cannot be told apart: the first
 * remaining candidate is taken.
 */
static size_t pick_live(struct vmw_mem *mem, struct candidate *c, size_t *idx, size_t n)
{
	size_t left = 0;

	for (size_t j = 0; j < n; j++) {
		bool older = false;
		for (size_t i = 0; i < n && !older; i++)
			for (size_t h = 0; i != j && h < c[idx[i]].nphys && !older; h++)
				older = in_image(&c[idx[j]], c[idx[i]].phys[h]);
		if (!older)
			idx[left++] = idx[j];
	}
	if (left == 1)
		return idx[0];
	if (left == 0)   /* inconsistent (should not happen): keep everyone */
		left = n;
	for (size_t i = 0; i < left; i++)
		sym_u64(c[idx[i]].k, "jiffies_64", &c[idx[i]].jiffies);
	for (int round = 0; round < 20; round++) {
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
		for (size_t i = 0; i < left; i++) {
			uint64_t j;
			if (sym_u64(c[idx[i]].k, "jiffies_64", &j) == 0 &&
			    j != c[idx[i]].jiffies)
				return idx[i];
		}
	}
	return idx[0];
}

int vmw_kernel_running(struct vmw_kernel *k, uint64_t timeout_ns)
{
	uint64_t j0, j, deadline = vmw_now_ns() + timeout_ns;
	int r;

	if ((r = sym_u64(k, "jiffies_64", &j0)) < 0)
		return r;
	for (;;) {
		if ((r = sym_u64(k, "jiffies_64", &j)) < 0)
			return r;
		if (j != j0)
			return 1;
		if (vmw_now_ns() >= deadline)
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
}

/* Add a copy's address to its kernel's list. Page-aligned data copies go
 * first: they are what vmcoreinfo_data points at. */
static int add_copy(struct candidate *c, const struct vmw_vmcoreinfo_hit *hit)
{
	uint64_t *p = realloc(c->phys, (c->nphys + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	c->phys = p;
	if (hit->kind == VMW_VMCOREINFO_DATA) {
		memmove(p + 1, p, c->nphys * sizeof(*p));
		p[0] = hit->phys;
	} else {
		p[c->nphys] = hit->phys;
	}
	c->nphys++;
	return 0;
}

/* Parse every copy; group the valid ones by kernel identity into c[0..*nc). */
static int group_copies(struct vmw_mem *mem, const struct vmw_vmcoreinfo_hit *hits, int nhits,
			struct candidate *c, size_t *nc, struct vmw_error *err)
{
	const char *last_why = NULL;
	uint64_t last_phys = 0;
	int r;

	for (int i = 0; i < nhits; i++) {
		_cleanup_(vmw_vmcoreinfo_freep) struct vmw_vmcoreinfo *vi = NULL;
		const char *why = NULL;
		size_t j;

		r = vmw_vmcoreinfo_read(mem, hits[i].phys, &vi, &why);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			last_why = why;
			last_phys = hits[i].phys;
			continue;
		}
		for (j = 0; j < *nc; j++)
			if (same_kernel(c[j].vi, vi))
				break;
		if (j == *nc)
			c[(*nc)++].vi = TAKE_PTR(vi);
		if ((r = add_copy(&c[j], &hits[i])) < 0)
			return r;
	}
	if (*nc == 0)
		return vmw_error_setk(err, VMW_ERR_NOT_LINUX, -ENOENT,
				      "no Linux kernel found in guest RAM: %d VMCOREINFO "
				      "candidate%s, none complete (at 0x%" PRIx64 ": %s); is the guest "
				      "still booting?", nhits, nhits == 1 ? "" : "s", last_phys,
				      last_why ? last_why : "?");
	return 0;
}

/* Is candidate c a live kernel: its page table maps its image, kallsyms
 * decodes and agrees with VMCOREINFO, and it points back at one of the
 * copies? 1 yes, 0 no (c->why says why), or a negative errno. */
static int validate(struct vmw_mem *mem, const struct vmw_kernel_opts *o, struct candidate *c,
		    uint64_t scan_ns)
{
	struct vmw_kernel *k;
	const char *why = NULL;
	uint64_t live, t0;
	int r;

	if (!pgd_maps_image(mem, c->vi)) {
		c->why = "its page table (init_top_pgt) does not map its kernel image";
		return 0;
	}
	r = new_kernel(mem, &k);
	if (r < 0)
		return r;
	c->k = k;
	k->vi = c->vi;   /* borrowed until chosen */
	t0 = vmw_now_ns();
	r = load_kallsyms(k, o->ignore_vmcoreinfo_kallsyms, &why);
	k->info.kallsyms_ns = vmw_now_ns() - t0;
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		c->why = why ? why : "kallsyms unreadable";
		k->vi = NULL;
		return 0;
	}
	live = live_copy(k, c->phys, c->nphys);
	if (live == UINT64_MAX) {
		c->why = "the kernel's vmcoreinfo_data does not point at any copy found";
		k->vi = NULL;
		return 0;
	}
	k->info.vmcoreinfo_phys = live;
	k->info.scan_ns = scan_ns;
	return 1;
}

static int full_discovery(struct vmw_mem *mem, const struct vmw_kernel_opts *o,
			  struct vmw_kernel **ret, struct vmw_error *err)
{
	_cleanup_free_ struct vmw_vmcoreinfo_hit *hits = NULL;
	struct candidate *c = NULL;
	size_t nc = 0, nvalid = 0;
	_cleanup_free_ size_t *valid = NULL;
	uint64_t scan_ns = 0;
	int nhits, r;

	nhits = vmw_vmcoreinfo_scan(mem, &hits, &scan_ns);
	if (nhits < 0)
		return vmw_error_set(err, nhits, "no Linux kernel found: scanning guest RAM for "
				     "VMCOREINFO failed: %s", strerror(-nhits));
	if (nhits == 0)
		return vmw_error_setk(err, VMW_ERR_NOT_LINUX, -ENOENT, "no Linux kernel found in guest RAM: "
				      "no VMCOREINFO note (is the guest running Linux >= 3.x? is it booted?)");

	c = calloc((size_t)nhits, sizeof(*c));
	valid = calloc((size_t)nhits, sizeof(*valid));
	if (!c || !valid) {
		free(c);
		return -ENOMEM;
	}
	if ((r = group_copies(mem, hits, nhits, c, &nc, err)) < 0)
		goto out;
	for (size_t i = 0; i < nc; i++) {
		if ((r = validate(mem, o, &c[i], scan_ns)) < 0)
			goto out;
		if (r)
			valid[nvalid++] = i;
	}
	if (nvalid == 0) {
		/* Report the most telling failure: the first kernel's. A copy from
		 * a previous boot or a kernel still booting is not (yet) a Linux
		 * guest vmwatch can read. */
		r = vmw_error_setk(err, VMW_ERR_NOT_LINUX, -ENOENT, "Linux %s found in guest RAM "
				   "(VMCOREINFO at 0x%" PRIx64 ") but %s%s", c[0].vi->release, c[0].phys[0],
				   c[0].why, o->ignore_vmcoreinfo_kallsyms ? "" :
				   "; is the guest still booting, or is this a copy from a previous boot?");
		goto out;
	}
	size_t pick = nvalid == 1 ? valid[0] : pick_live(mem, c, valid, nvalid);
	struct vmw_kernel *k = TAKE_PTR(c[pick].k);
	k->vi = TAKE_PTR(c[pick].vi);
	*ret = k;
	r = 0;
out:
	for (size_t i = 0; i < nc; i++)
		if (c[i].k)
			c[i].k->vi = NULL;   /* borrowed, freed with c[i].vi */
	candidates_free(c, nc);
	return r;
}

/*
 * Has this kernel been running since the hint was written? Its jiffies must
 * have advanced with the wall clock: by at least 50 per second (HZ >= 100,
 * with half of it to spare for a tickless idle guest) after a 10 s grace.
 * A copy left in RAM by a previous boot has frozen jiffies. A guest paused
 * for a while fails too, which only costs a full discovery.
 */
static bool jiffies_kept_up(uint64_t then_jiffies, uint64_t then_ns, uint64_t now_jiffies,
			    uint64_t now_ns)
{
	int64_t dj = (int64_t)(now_jiffies - then_jiffies);   /* wraps 5 min after boot */
	if (dj < 0)
		return false;
	if (now_ns <= then_ns + 10000000000ull)
		return true;
	return (uint64_t)dj >= (now_ns - then_ns - 10000000000ull) / 1000000000u * 50;
}

/* Re-attach from the cache: the remembered VMCOREINFO copy must still be
 * there, byte for byte, the kernel image must still hold the same kallsyms
 * tokens and point back at that copy, its page table must map the image, and
 * its jiffies must have kept up since the hint was written. Any mismatch is
 * -ESTALE (the caller then runs a full discovery). Only the entry's head is
 * read: symbols come from the layout memo (loaded here), and the entry's
 * full table only for a symbol the memo lacks. The memo's symbols must agree
 * with VMCOREINFO's own (_stext, init_top_pgt), as a decoded table must. */
static int cached_attach(struct vmw_mem *mem, const char *dir, const struct vmw_kcache_hint *hint,
			 struct vmw_kernel **ret)
{
	_cleanup_(vmw_kernel_detachp) struct vmw_kernel *k = NULL;
	struct vmw_kcache c = { 0 };
	uint8_t head[sizeof(c.tokens_head)];
	uint64_t t0 = vmw_now_ns(), phys = hint->vmcoreinfo_phys, jiffies, stext, pgd;
	int r;

	r = new_kernel(mem, &k);
	if (r < 0)
		return r;
	r = vmw_vmcoreinfo_read(mem, phys, &k->vi, NULL);
	if (r < 0)
		return r;
	r = vmw_kcache_load_head(dir, k->vi->build_id, k->vi->kerneloffset, &c);
	if (r < 0)
		return r;
	k->use_cache = true;
	snprintf(k->cache_dir, sizeof(k->cache_dir), "%s", dir);
	k->symbols_how = c.symbols_from && !strcmp(c.symbols_from, SYMS_STRUCTURE) ? SYMS_STRUCTURE
										  : SYMS_VMCOREINFO;
	k->nsyms = c.nsyms;
	vmw_memo_load(dir, k->vi->build_id, &k->memo);   /* optional */
	r = -ESTALE;
	if (c.vmcoreinfo_phys != phys || strcmp(c.vmcoreinfo_text, k->vi->text))
		goto out;
	if (vmw_read_image(mem, k->vi->phys_base, c.tokens_vaddr, head, sizeof(head)) < 0 ||
	    memcmp(head, c.tokens_head, sizeof(head)))
		goto out;
	if (vmw_kernel_symbol(k, "_stext", &stext) < 0 || stext != k->vi->stext ||
	    ((vmw_kernel_symbol(k, "init_top_pgt", &pgd) < 0 &&
	      vmw_kernel_symbol(k, "swapper_pg_dir", &pgd) < 0) || pgd != k->vi->pgd))
		goto out;
	if (live_copy(k, &phys, 1) != phys)
		goto out;
	if (!pgd_maps_image(mem, k->vi))
		goto out;
	if (sym_u64(k, "jiffies_64", &jiffies) < 0 ||
	    !jiffies_kept_up(hint->jiffies, hint->realtime_ns, jiffies, vmw_wall_ns()))
		goto out;
	k->tokens_vaddr = c.tokens_vaddr;
	memcpy(k->tokens_head, c.tokens_head, sizeof(k->tokens_head));
	snprintf(k->symbols_from, sizeof(k->symbols_from), "discovery cache (%s)",
		 c.symbols_from ? c.symbols_from : "?");
	k->info.vmcoreinfo_phys = phys;
	k->info.kallsyms_ns = vmw_now_ns() - t0;
	k->info.from_cache = true;
	*ret = TAKE_PTR(k);
	r = 0;
out:
	vmw_kcache_clear(&c);
	return r;
}

/* Find the BTF blob (__start_BTF..__stop_BTF) and check its header. With
 * `parse`, parse it now (cold attach: a broken blob is reported at attach);
 * otherwise it is parsed on the first query the layout memo cannot answer. */
static int load_btf(struct vmw_kernel *k, bool parse, struct vmw_error *err)
{
	struct vmw_kernel_sym start, stop;
	const struct vmw_kernel_sym *s = vmw_kernel_lookup(k, "__start_BTF", &start) == 0 ? &start : NULL;
	const struct vmw_kernel_sym *e = vmw_kernel_lookup(k, "__stop_BTF", &stop) == 0 ? &stop : NULL;
	uint8_t hdr[24];
	const char *why = NULL;
	uint64_t len;
	int r;

	if (!s || !e || e->addr <= s->addr)
		return vmw_error_setk(err, VMW_ERR_NO_BTF, -ENOTSUP, "kernel %s has no BTF (CONFIG_DEBUG_INFO_BTF=n): "
				     "vmwatch needs it", k->vi->release);
	len = e->addr - s->addr;
	if (len > MAX_BTF || len < sizeof(hdr))
		return vmw_error_setk(err, VMW_ERR_NO_BTF, -EINVAL, "kernel %s: BTF of %" PRIu64 " bytes is "
				     "implausible", k->vi->release, len);
	k->btf_vaddr = s->addr;
	k->btf_len = len;
	snprintf(k->types_from, sizeof(k->types_from), "BTF in guest RAM (%" PRIu64 " bytes)", len);
	r = vmw_read_image(k->mem, k->vi->phys_base, s->addr, hdr, sizeof(hdr));
	if (r < 0)
		return vmw_error_setk(err, vmw_read_failure_kind(r, VMW_ERR_NO_BTF), r,
				      "kernel %s: its BTF (__start_BTF at 0x%" PRIx64
				      ") is not readable in guest RAM", k->vi->release, s->addr);
	if (!parse) {
		/* The header alone: magic, version, sections inside the blob. */
		struct btf_header h;
		memcpy(&h, hdr, sizeof(h));
		if (h.magic != 0xeb9f || h.version != 1 || h.hdr_len < sizeof(h) ||
		    (uint64_t)h.hdr_len + h.str_off + h.str_len > len)
			return vmw_error_setk(err, VMW_ERR_NO_BTF, -EINVAL, "kernel %s: no valid BTF header at "
					     "__start_BTF (0x%" PRIx64 ")", k->vi->release, s->addr);
		return 0;
	}
	r = vmw_kernel_ensure_btf(k);
	if (r < 0) {
		why = r == -ENOMEM ? NULL : k->btf_why;
		return vmw_error_setk(err, vmw_read_failure_kind(r, VMW_ERR_NO_BTF), r,
				      "kernel %s: BTF at __start_BTF (0x%" PRIx64 ") is "
				     "unusable%s%s", k->vi->release, s->addr, why ? ": " : "",
				     why ? why : "");
	}
	return 0;
}

static int load_cpus(struct vmw_kernel *k, struct vmw_error *err)
{
	struct vmw_kernel_sym nsym, osym;
	const struct vmw_kernel_sym *n = vmw_kernel_lookup(k, "nr_cpu_ids", &nsym) == 0 ? &nsym : NULL;
	const struct vmw_kernel_sym *o = vmw_kernel_lookup(k, "__per_cpu_offset", &osym) == 0 ? &osym : NULL;
	uint32_t nr;
	int r;

	if (!n || !o)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOENT, "kernel %s: no nr_cpu_ids/__per_cpu_offset in "
				     "kallsyms (not an SMP kernel?)", k->vi->release);
	r = vmw_read_image(k->mem, k->vi->phys_base, n->addr, &nr, sizeof(nr));
	if (r < 0 || nr == 0 || nr > MAX_CPUS)
		return vmw_error_setk(err, vmw_read_failure_kind(r, VMW_ERR_INCONSISTENT), r < 0 ? r : -EINVAL,
				      "kernel %s: nr_cpu_ids unreadable "
				     "or implausible", k->vi->release);
	k->percpu = calloc(nr, sizeof(*k->percpu));
	if (!k->percpu)
		return -ENOMEM;
	r = vmw_read_image(k->mem, k->vi->phys_base, o->addr, k->percpu, nr * sizeof(*k->percpu));
	if (r < 0)
		return vmw_error_setk(err, vmw_read_failure_kind(r, VMW_ERR_INCONSISTENT), r,
				      "kernel %s: __per_cpu_offset unreadable", k->vi->release);
	k->info.nr_cpus = nr;
	return 0;
}

/* The kernel's own address space (init_mm), with the direct-map and
 * kernel-image fast paths. */
static int set_up_xlat(struct vmw_kernel *k, uint64_t pob, struct vmw_error *err)
{
	int r = vmw_xlat_new(k->mem, vmw_image_phys(k->vi->phys_base, k->vi->pgd),
			     k->vi->paging_levels, &k->xlat);
	/* -EINVAL: a paging mode other than 4 or 5 levels, which xlat cannot walk. */
	if (r < 0)
		return vmw_error_setk(err, r == -EINVAL ? VMW_ERR_UNSUPPORTED : vmw_error_kind_from_code(r), r,
				      "kernel %s: cannot set up its address space: %s",
				      k->vi->release, strerror(-r));
	vmw_xlat_set_direct_map(k->xlat, pob, ram_end(k->mem));
	vmw_xlat_set_kernel_image(k->xlat, k->vi->phys_base);
	return 0;
}

static void fill_info(struct vmw_kernel *k, uint64_t pob)
{
	struct vmw_kernel_info *info = &k->info;

	snprintf(info->release, sizeof(info->release), "%s", k->vi->release);
	snprintf(info->build_id, sizeof(info->build_id), "%s", k->vi->build_id);
	info->kaslr_offset = k->vi->kerneloffset;
	info->phys_base = k->vi->phys_base;
	info->paging_levels = k->vi->paging_levels;
	info->pgd_phys = vmw_image_phys(k->vi->phys_base, k->vi->pgd);
	info->page_offset_base = pob;
	info->ram_bytes = vmw_mem_size(k->mem);
	info->nr_symbols = k->nsyms;
	info->symbols_from = k->symbols_from;
	info->types_from = k->types_from;
}

/* Best effort throughout: a read-only cache directory only costs time. */
static void remember(struct vmw_kernel *k, const char *dir, const char *tid,
		     const struct vmw_kcache_hint *old_hint)
{
	const struct vmw_kernel_info *info = &k->info;

	if (!info->from_cache) {
		struct vmw_kcache c = {
			.vmcoreinfo_phys = info->vmcoreinfo_phys,
			.btf_vaddr = k->btf_vaddr, .btf_len = k->btf_len,
			.tokens_vaddr = k->tokens_vaddr, .symbols_from = k->symbols_how,
			.symtab = k->symtab,
		};
		memcpy(c.tokens_head, k->tokens_head, sizeof(c.tokens_head));
		vmw_kcache_save(dir, k->vi, &c);
	}
	/* Refresh the hint after a full discovery and then once a minute: its
	 * jiffies are the reference the next cached attach checks liveness
	 * against (a file write costs about as much as a cached attach). */
	if (!info->from_cache || vmw_wall_ns() - old_hint->realtime_ns > 60000000000ull) {
		struct vmw_kcache_hint hint = { .vmcoreinfo_phys = info->vmcoreinfo_phys,
						.realtime_ns = vmw_wall_ns() };
		if (sym_u64(k, "jiffies_64", &hint.jiffies) == 0)
			vmw_kcache_hint_put(dir, tid, &hint);
	}
}

int vmw_kernel_discover(struct vmw_mem *mem, const struct vmw_kernel_opts *o, const char *tid,
			struct vmw_kernel **ret, struct vmw_error *err)
{
	_cleanup_(vmw_kernel_detachp) struct vmw_kernel *k = NULL;
	char dir[4096];
	bool use_cache;
	uint64_t pob;
	struct vmw_kcache_hint hint = { 0 };
	bool memo_known = false;   /* the build's layout memo was in the cache */
	int r;

	char why[sizeof(k->cache_warning) - 40] = "";

	/* StrictModes: a cache directory others own or may write is not used at all. */
	use_cache = !o->no_cache && vmw_cache_dir(o->cache_dir, dir, sizeof(dir)) == 0 &&
		    vmw_cache_dir_trusted(dir, why, sizeof(why)) != -EPERM;
	/* The cache answers only for the normal path: the fallback is asked for
	 * explicitly, to exercise it. */
	if (use_cache && !o->ignore_vmcoreinfo_kallsyms) {
		r = vmw_kcache_hint_get(dir, tid, &hint);
		if (r == 0)
			r = cached_attach(mem, dir, &hint, &k);
		if (r == -ENOMEM || r == -ESRCH)
			return vmw_error_set(err, r, "reading guest RAM: %s", strerror(-r));
		if (r == -EPERM)
			snprintf(why, sizeof(why), "a file in %s belongs to another user or is writable by "
				 "others: ignored (remove it, or fix its owner and mode)", dir);
	}
	if (!k) {
		r = full_discovery(mem, o, &k, err);
		if (r < 0)
			return r;
		snprintf(k->symbols_from, sizeof(k->symbols_from), "%s", k->symbols_how);
	}

	k->use_cache = use_cache;
	if (why[0]) {
		snprintf(k->cache_warning, sizeof(k->cache_warning), "discovery cache not used: %s", why);
		k->info.cache_warning = k->cache_warning;
	}
	if (use_cache && !k->info.from_cache) {
		snprintf(k->cache_dir, sizeof(k->cache_dir), "%s", dir);
		memo_known = vmw_memo_load(dir, k->vi->build_id, &k->memo) == 0;   /* optional */
	}
	/* A full discovery parses the BTF blob now, unless the build's layout
	 * memo is there: then, as on a warm attach, only a question the memo
	 * cannot answer parses it (a further VM of a known build never does,
	 * nor loads libbpf: ~4 MB of parsed types at its peak). */
	if ((r = load_btf(k, !k->info.from_cache && !memo_known, err)) < 0 || (r = load_cpus(k, err)) < 0)
		return r;
	pob = read_page_offset_base(k);
	if ((r = set_up_xlat(k, pob, err)) < 0)
		return r;
	fill_info(k, pob);
	if (use_cache && !o->ignore_vmcoreinfo_kallsyms)
		remember(k, dir, tid, &hint);
	*ret = TAKE_PTR(k);
	return 0;
}
