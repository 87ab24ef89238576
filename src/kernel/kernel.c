/* SPDX-License-Identifier: MIT */
/*
 * kernel.c - attaching to the guest kernel: VMCOREINFO → which copy is live
 * → kallsyms → BTF → direct map, per-CPU areas → the kernel address space;
 * with the discovery cache in front.
 *
 * Every guest read here is physical: kernel-image symbols translate with
 * phys_base (vmw_image_phys), direct-map pointers with page_offset_base.
 */
#include "kernel/kernel_internal.h"

#include <bpf/btf.h>
#include <errno.h>
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

struct vmw_kernel {
	struct vmw_mem *mem;
	struct vmw_vmcoreinfo *vi;
	struct vmw_symtab *symtab;
	struct btf *btf;
	struct vmw_xlat *xlat;
	uint64_t *percpu;            /* __per_cpu_offset[0..nr_cpus) */
	struct vmw_kernel_info info;
	char symbols_from[160];
	char types_from[96];
	/* Kept for the cache entry. */
	uint64_t btf_vaddr, btf_len, tokens_vaddr;
	uint8_t tokens_head[64];
	const char *symbols_how;      /* "kallsyms via VMCOREINFO" / "... located by structure" */
	/* BTF is parsed on first need; answers are memoized (and cached). */
	int btf_err;                  /* parse failed: every later query gets this */
	const char *btf_why;
	struct vmw_memo memo;
	bool use_cache;
	char cache_dir[4096];
};

static const char SYMS_VMCOREINFO[] = "kallsyms via VMCOREINFO";
static const char SYMS_STRUCTURE[] = "kallsyms located by structure";

/* ---- helpers ------------------------------------------------------------ */

static int read_image(struct vmw_mem *mem, uint64_t phys_base, uint64_t vaddr, void *buf,
		      size_t len)
{
	if (vaddr < VMW_KERNEL_MAP_BASE || vaddr - VMW_KERNEL_MAP_BASE >= VMW_KERNEL_MAP_SIZE)
		return -EFAULT;
	return vmw_mem_read(mem, vmw_image_phys(phys_base, vaddr), buf, len);
}

static int read_image_u64(struct vmw_mem *mem, uint64_t phys_base, uint64_t vaddr, uint64_t *v)
{
	return read_image(mem, phys_base, vaddr, v, sizeof(*v));
}

static int sym_u64(struct vmw_mem *mem, const struct vmw_vmcoreinfo *vi,
		   const struct vmw_symtab *st, const char *name, uint64_t *v)
{
	const struct vmw_ksym *s = vmw_symtab_lookup(st, name);
	if (!s)
		return -ENOENT;
	return read_image_u64(mem, vi->phys_base, s->addr, v);
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

void vmw_kernel_detach(struct vmw_kernel *k)
{
	if (!k)
		return;
	/* Best effort: remember the layouts this run asked for. */
	if (k->use_cache && k->memo.dirty && k->vi)
		vmw_memo_save(k->cache_dir, k->vi->build_id, &k->memo);
	vmw_memo_clear(&k->memo);
	vmw_xlat_free(k->xlat);
	btf__free(k->btf);
	vmw_symtab_free(k->symtab);
	vmw_vmcoreinfo_free(k->vi);
	free(k->percpu);
	free(k);
}

static void vmw_kernel_detachp(struct vmw_kernel **k) { vmw_kernel_detach(*k); }
static void vmw_vmcoreinfo_freep(struct vmw_vmcoreinfo **p) { vmw_vmcoreinfo_free(*p); }
static void vmw_symtab_freep(struct vmw_symtab **p) { vmw_symtab_free(*p); }

const struct vmw_kernel_info *vmw_kernel_info(const struct vmw_kernel *k) { return &k->info; }
struct vmw_xlat *vmw_kernel_xlat(struct vmw_kernel *k) { return k->xlat; }

int vmw_kernel_lookup(struct vmw_kernel *k, const char *name, struct vmw_kernel_sym *ret)
{
	const struct vmw_ksym *s = vmw_symtab_lookup(k->symtab, name);
	if (!s)
		return -ENOENT;
	if (ret)
		*ret = (struct vmw_kernel_sym){ .addr = s->addr, .type = s->type, .percpu = s->percpu };
	return 0;
}

int vmw_kernel_symbol(struct vmw_kernel *k, const char *name, uint64_t *ret)
{
	const struct vmw_ksym *s = vmw_symtab_lookup(k->symtab, name);
	if (!s)
		return -ENOENT;
	*ret = s->addr;
	return 0;
}

int vmw_kernel_percpu_offset(struct vmw_kernel *k, unsigned cpu, uint64_t *ret)
{
	if (cpu >= k->info.nr_cpus)
		return -ENOENT;
	*ret = k->percpu[cpu];
	return 0;
}

int vmw_kernel_percpu_symbol(struct vmw_kernel *k, const char *name, unsigned cpu, uint64_t *ret)
{
	const struct vmw_ksym *s = vmw_symtab_lookup(k->symtab, name);
	uint64_t off;
	int r;

	if (!s)
		return -ENOENT;
	if (!s->percpu)
		return -EINVAL;
	r = vmw_kernel_percpu_offset(k, cpu, &off);
	if (r < 0)
		return r;
	*ret = s->addr + off;
	return 0;
}

const char *vmw_kernel_vmcoreinfo(const struct vmw_kernel *k, const char *key)
{
	return vmw_vmcoreinfo_get(k->vi, key);
}

/* Parse the BTF blob (at btf_vaddr, btf_len) if not done yet. */
static int ensure_btf(struct vmw_kernel *k)
{
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t t0;
	int r;

	if (k->btf)
		return 0;
	if (k->btf_err)
		return k->btf_err;
	t0 = vmw_now_ns();
	buf = malloc(k->btf_len);
	if (!buf)
		return -ENOMEM;
	r = read_image(k->mem, k->vi->phys_base, k->btf_vaddr, buf, k->btf_len);
	if (r < 0)
		k->btf_why = "not readable in guest RAM";
	else
		r = vmw_btf_parse(buf, k->btf_len, &k->btf, &k->btf_why);
	if (r < 0 && r != -ENOMEM)
		k->btf_err = r;
	k->info.btf_ns += vmw_now_ns() - t0;
	return r;
}

const struct btf *vmw_kernel_btf(const struct vmw_kernel *k)
{
	/* Lazily parsed: k is never a const object, only a const view. */
	struct vmw_kernel *mk = (struct vmw_kernel *)k;
	return ensure_btf(mk) == 0 ? mk->btf : NULL;
}

/* Answer a BTF query from the memo, else from BTF (and memoize it). */
enum query { Q_MEMBER, Q_BITS, Q_SIZE, Q_ENUM };

static int query(struct vmw_kernel *k, enum query q, const char *type, const char *member,
		 uint64_t *a, uint64_t *b)
{
	static const char tag[] = "MBSE";
	char key[600];
	const struct vmw_memo_entry *e;
	uint32_t x = 0, y = 0;
	int64_t v = 0;
	int r;

	if ((size_t)snprintf(key, sizeof(key), "%c %s%s%s", tag[q], type, member ? " " : "",
			     member ? member : "") >= sizeof(key))
		return -ENAMETOOLONG;
	e = vmw_memo_find(&k->memo, key);
	if (e) {
		*a = e->a;
		*b = e->b;
		return e->rc;
	}
	r = ensure_btf(k);
	if (r < 0)
		return r;
	switch (q) {
	case Q_MEMBER: r = vmw_btf_member(k->btf, type, member, &x, &y); break;
	case Q_BITS: r = vmw_btf_member_bits(k->btf, type, member, &x, &y); break;
	case Q_SIZE: r = vmw_btf_type_size(k->btf, type, &x); break;
	case Q_ENUM: r = vmw_btf_enum_value(k->btf, type, &v); break;
	}
	*a = q == Q_ENUM ? (uint64_t)v : x;
	*b = y;
	/* Answers (found or not) depend only on the kernel build: memoize them,
	 * but not transient failures. */
	if (r == 0 || r == -ENOENT || r == -ENOTSUP || r == -EINVAL) {
		int m = vmw_memo_add(&k->memo, key, r, *a, *b);
		if (m < 0)
			return m;
	}
	return r;
}

int vmw_kernel_member(struct vmw_kernel *k, const char *type, const char *member,
		      uint32_t *ret_offset, uint32_t *ret_size)
{
	uint64_t a, b;
	int r = query(k, Q_MEMBER, type, member, &a, &b);
	if (r < 0)
		return r;
	if (ret_offset)
		*ret_offset = (uint32_t)a;
	if (ret_size)
		*ret_size = (uint32_t)b;
	return 0;
}

int vmw_kernel_member_bits(struct vmw_kernel *k, const char *type, const char *member,
			   uint32_t *ret_bit_offset, uint32_t *ret_bit_size)
{
	uint64_t a, b;
	int r = query(k, Q_BITS, type, member, &a, &b);
	if (r < 0)
		return r;
	if (ret_bit_offset)
		*ret_bit_offset = (uint32_t)a;
	if (ret_bit_size)
		*ret_bit_size = (uint32_t)b;
	return 0;
}

int vmw_kernel_type_size(struct vmw_kernel *k, const char *type, uint32_t *ret)
{
	uint64_t a, b;
	int r = query(k, Q_SIZE, type, NULL, &a, &b);
	if (r < 0)
		return r;
	*ret = (uint32_t)a;
	return 0;
}

int vmw_kernel_enum_value(struct vmw_kernel *k, const char *name, int64_t *ret)
{
	uint64_t a, b;
	int r = query(k, Q_ENUM, name, NULL, &a, &b);
	if (r < 0)
		return r;
	*ret = (int64_t)a;
	return 0;
}

int vmw_kernel_read(struct vmw_kernel *k, uint64_t vaddr, void *buf, size_t len)
{
	return vmw_xlat_read(k->xlat, vaddr, buf, len);
}

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
	r = read_image(k->mem, k->vi->phys_base, a[NUM], &n, 4);
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
	r = read_image(k->mem, k->vi->phys_base, lo, buf, hi - lo);
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

/* Decode kallsyms and check it against VMCOREINFO's own symbols. */
static int load_kallsyms(struct vmw_kernel *k, bool ignore_vmcoreinfo, const char **why)
{
	_cleanup_(vmw_symtab_freep) struct vmw_symtab *st = NULL;
	const struct vmw_ksym *s;
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
	s = vmw_symtab_lookup(st, "_stext");
	if (!s || s->addr != k->vi->stext) {
		*why = "kallsyms disagrees with VMCOREINFO about _stext";
		return -EINVAL;
	}
	s = vmw_symtab_lookup(st, "init_top_pgt");
	if (!s)
		s = vmw_symtab_lookup(st, "swapper_pg_dir");
	if (!s || s->addr != k->vi->pgd) {
		*why = "kallsyms disagrees with VMCOREINFO about init_top_pgt";
		return -EINVAL;
	}
	if (!vmw_symtab_lookup(st, "init_task")) {
		*why = "kallsyms has no init_task";
		return -EINVAL;
	}
	k->symtab = TAKE_PTR(st);
	return 0;
}

/* ---- the live copy -------------------------------------------------------- */

/* page_offset_base: the kernel variable (randomized with KASLR), else the
 * fixed default. */
static uint64_t read_page_offset_base(struct vmw_mem *mem, const struct vmw_vmcoreinfo *vi,
				      const struct vmw_symtab *st)
{
	uint64_t v;
	if (sym_u64(mem, vi, st, "page_offset_base", &v) == 0 && v >= 0xff00000000000000ull &&
	    v % (1ull << 30) == 0)
		return v;
	return vi->paging_levels == 5 ? DIRECT_MAP_L5 : DIRECT_MAP_L4;
}

/* The physical page a kernel pointer variable (vmcoreinfo_data /
 * vmcoreinfo_note) points at through the direct map, or UINT64_MAX. */
static uint64_t pointer_target(struct vmw_mem *mem, const struct vmw_vmcoreinfo *vi,
			       const struct vmw_symtab *st, uint64_t pob, const char *name)
{
	uint64_t v;
	if (sym_u64(mem, vi, st, name, &v) < 0 || v < pob)
		return UINT64_MAX;
	return v - pob;
}

/* Which of the copies of one kernel's VMCOREINFO does the kernel itself
 * point at? Returns the address of the text, or UINT64_MAX. */
static uint64_t live_copy(struct vmw_mem *mem, const struct vmw_vmcoreinfo *vi,
			  const struct vmw_symtab *st, const uint64_t *phys, size_t n)
{
	uint64_t pob = read_page_offset_base(mem, vi, st);
	uint64_t data = pointer_target(mem, vi, st, pob, "vmcoreinfo_data");
	uint64_t note = pointer_target(mem, vi, st, pob, "vmcoreinfo_note");
	const struct vmw_ksym *s = vmw_symtab_lookup(st, "vmcoreinfo_data");

	for (size_t i = 0; i < n; i++)
		if (phys[i] == data)
			return phys[i];
	for (size_t i = 0; i < n; i++)
		if (note != UINT64_MAX && phys[i] == note + 24)
			return phys[i];
	/* Linux < 4.13: vmcoreinfo_data is an array in the image's .bss. */
	for (size_t i = 0; s && i < n; i++)
		if (phys[i] == vmw_image_phys(vi->phys_base, s->addr))
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
	const struct vmw_ksym *t = vmw_symtab_lookup(c->k->symtab, "_text");
	const struct vmw_ksym *e = vmw_symtab_lookup(c->k->symtab, "_end");
	if (!t || !e || e->addr <= t->addr)
		return false;
	uint64_t p0 = vmw_image_phys(c->vi->phys_base, t->addr);
	return phys >= p0 && phys - p0 < e->addr - t->addr;
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
		sym_u64(mem, c[idx[i]].vi, c[idx[i]].k->symtab, "jiffies_64", &c[idx[i]].jiffies);
	for (int round = 0; round < 20; round++) {
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
		for (size_t i = 0; i < left; i++) {
			uint64_t j;
			if (sym_u64(mem, c[idx[i]].vi, c[idx[i]].k->symtab, "jiffies_64", &j) == 0 &&
			    j != c[idx[i]].jiffies)
				return idx[i];
		}
	}
	return idx[0];
}

static int full_discovery(struct vmw_mem *mem, const struct vmw_kernel_opts *o,
			  struct vmw_kernel **ret, struct vmw_error *err)
{
	_cleanup_free_ struct vmw_vmcoreinfo_hit *hits = NULL;
	struct candidate *c = NULL;
	size_t nc = 0, nvalid = 0;
	_cleanup_free_ size_t *valid = NULL;
	const char *last_why = NULL;
	uint64_t last_phys = 0, scan_ns = 0, t0;
	int nhits, r;

	nhits = vmw_vmcoreinfo_scan(mem, &hits, &scan_ns);
	if (nhits < 0)
		return vmw_error_set(err, nhits, "no Linux kernel found: scanning guest RAM for "
				     "VMCOREINFO failed: %s", strerror(-nhits));
	if (nhits == 0)
		return vmw_error_set(err, -ENOENT, "no Linux kernel found in guest RAM: no VMCOREINFO "
				     "note (is the guest running Linux >= 3.x? is it booted?)");

	c = calloc((size_t)nhits, sizeof(*c));
	valid = calloc((size_t)nhits, sizeof(*valid));
	if (!c || !valid) {
		free(c);
		return -ENOMEM;
	}
	/* Parse every copy; group the valid ones by kernel identity. */
	for (int i = 0; i < nhits; i++) {
		_cleanup_(vmw_vmcoreinfo_freep) struct vmw_vmcoreinfo *vi = NULL;
		const char *why = NULL;
		size_t j;

		r = vmw_vmcoreinfo_read(mem, hits[i].phys, &vi, &why);
		if (r == -ENOMEM)
			goto out;
		if (r < 0) {
			last_why = why;
			last_phys = hits[i].phys;
			continue;
		}
		for (j = 0; j < nc; j++)
			if (same_kernel(c[j].vi, vi))
				break;
		if (j == nc) {
			c[nc++].vi = TAKE_PTR(vi);
		}
		uint64_t *p = realloc(c[j].phys, (c[j].nphys + 1) * sizeof(*p));
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		c[j].phys = p;
		/* Page-aligned data copies first: they are what vmcoreinfo_data
		 * points at. */
		if (hits[i].kind == VMW_VMCOREINFO_DATA) {
			memmove(p + 1, p, c[j].nphys * sizeof(*p));
			p[0] = hits[i].phys;
		} else {
			p[c[j].nphys] = hits[i].phys;
		}
		c[j].nphys++;
	}
	if (nc == 0) {
		r = vmw_error_set(err, -ENOENT, "no Linux kernel found in guest RAM: %d VMCOREINFO "
				  "candidate%s, none complete (at 0x%" PRIx64 ": %s); is the guest "
				  "still booting?", nhits, nhits == 1 ? "" : "s", last_phys,
				  last_why ? last_why : "?");
		goto out;
	}

	/* Validate each kernel: its page table maps its image, kallsyms decodes
	 * and agrees with VMCOREINFO, and it points back at one of the copies. */
	for (size_t i = 0; i < nc; i++) {
		struct vmw_kernel *k;
		const char *why = NULL;
		uint64_t live;

		if (!pgd_maps_image(mem, c[i].vi)) {
			c[i].why = "its page table (init_top_pgt) does not map its kernel image";
			continue;
		}
		r = new_kernel(mem, &k);
		if (r < 0)
			goto out;
		c[i].k = k;
		k->vi = c[i].vi;   /* borrowed until chosen */
		t0 = vmw_now_ns();
		r = load_kallsyms(k, o->ignore_vmcoreinfo_kallsyms, &why);
		k->info.kallsyms_ns = vmw_now_ns() - t0;
		if (r == -ENOMEM)
			goto out;
		if (r < 0) {
			c[i].why = why ? why : "kallsyms unreadable";
			k->vi = NULL;
			continue;
		}
		live = live_copy(mem, c[i].vi, k->symtab, c[i].phys, c[i].nphys);
		if (live == UINT64_MAX) {
			c[i].why = "the kernel's vmcoreinfo_data does not point at any copy found";
			k->vi = NULL;
			continue;
		}
		k->info.vmcoreinfo_phys = live;
		k->info.scan_ns = scan_ns;
		valid[nvalid++] = i;
	}
	if (nvalid == 0) {
		/* Report the most telling failure: the first kernel's. */
		r = vmw_error_set(err, -ENOENT, "Linux %s found in guest RAM (VMCOREINFO at 0x%" PRIx64
				  ") but %s%s", c[0].vi->release, c[0].phys[0], c[0].why,
				  o->ignore_vmcoreinfo_kallsyms ? "" :
				  "; is the guest still booting, or is this a copy from a previous boot?");
		goto out;
	}
	size_t pick = nvalid == 1 ? valid[0] : pick_live(mem, c, valid, nvalid);
	struct vmw_kernel *k = TAKE_PTR(c[pick].k);
	k->vi = TAKE_PTR(c[pick].vi);
	for (size_t i = 0; i < nc; i++)
		if (c[i].k)
			c[i].k->vi = NULL;   /* borrowed, freed with c[i].vi */
	*ret = k;
	r = 0;
out:
	for (size_t i = 0; i < nc; i++)
		if (c[i].k)
			c[i].k->vi = NULL;
	candidates_free(c, nc);
	return r;
}

/* Identity of a memory source for the hint file: the QEMU process (PID and
 * start time, so a reused PID is a new target) or the description. */
static void target_id(struct vmw_mem *mem, char *buf, size_t size)
{
	struct vmw_qemu_id id = { 0 };
	pid_t pid = vmw_mem_pid(mem);

	if (pid > 0) {
		vmw_qemu_id_get(pid, &id);   /* start time 0 if it cannot be read */
		snprintf(buf, size, "qemu:%d:%llu", (int)pid, (unsigned long long)id.start_ticks);
	} else {
		snprintf(buf, size, "%s", vmw_mem_describe(mem));
	}
}

/* Re-attach from the cache: the remembered VMCOREINFO copy must still be
 * there, byte for byte, and the kernel image must still hold the same
 * kallsyms tokens and point back at that copy. */
static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

static int cached_attach(struct vmw_mem *mem, const char *dir, const struct vmw_kcache_hint *hint,
			 struct vmw_kernel **ret)
{
	_cleanup_(vmw_kernel_detachp) struct vmw_kernel *k = NULL;
	struct vmw_kcache c = { 0 };
	uint8_t head[sizeof(c.tokens_head)];
	uint64_t t0 = vmw_now_ns(), phys = hint->vmcoreinfo_phys, jiffies;
	int r;

	r = new_kernel(mem, &k);
	if (r < 0)
		return r;
	r = vmw_vmcoreinfo_read(mem, phys, &k->vi, NULL);
	if (r < 0)
		return r;
	r = vmw_kcache_load(dir, k->vi->build_id, k->vi->kerneloffset, &c);
	if (r < 0)
		return r;
	r = -ESTALE;
	if (c.vmcoreinfo_phys != phys || strcmp(c.vmcoreinfo_text, k->vi->text))
		goto out;
	if (read_image(mem, k->vi->phys_base, c.tokens_vaddr, head, sizeof(head)) < 0 ||
	    memcmp(head, c.tokens_head, sizeof(head)))
		goto out;
	if (live_copy(mem, k->vi, c.symtab, &phys, 1) != phys)
		goto out;
	if (!pgd_maps_image(mem, k->vi))
		goto out;
	if (sym_u64(mem, k->vi, c.symtab, "jiffies_64", &jiffies) < 0 ||
	    !jiffies_kept_up(hint->jiffies, hint->realtime_ns, jiffies, realtime_ns()))
		goto out;
	k->symtab = TAKE_PTR(c.symtab);
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
	const struct vmw_ksym *s = vmw_symtab_lookup(k->symtab, "__start_BTF");
	const struct vmw_ksym *e = vmw_symtab_lookup(k->symtab, "__stop_BTF");
	uint8_t hdr[24];
	const char *why = NULL;
	uint64_t len;
	int r;

	if (!s || !e || e->addr <= s->addr)
		return vmw_error_set(err, -ENOTSUP, "kernel %s has no BTF (CONFIG_DEBUG_INFO_BTF=n): "
				     "vmwatch needs it", k->vi->release);
	len = e->addr - s->addr;
	if (len > MAX_BTF || len < sizeof(hdr))
		return vmw_error_set(err, -EINVAL, "kernel %s: BTF of %" PRIu64 " bytes is "
				     "implausible", k->vi->release, len);
	k->btf_vaddr = s->addr;
	k->btf_len = len;
	snprintf(k->types_from, sizeof(k->types_from), "BTF in guest RAM (%" PRIu64 " bytes)", len);
	r = read_image(k->mem, k->vi->phys_base, s->addr, hdr, sizeof(hdr));
	if (r < 0)
		return vmw_error_set(err, r, "kernel %s: its BTF (__start_BTF at 0x%" PRIx64
				     ") is not readable in guest RAM", k->vi->release, s->addr);
	if (!parse) {
		/* The header alone: magic, version, sections inside the blob. */
		struct btf_header h;
		memcpy(&h, hdr, sizeof(h));
		if (h.magic != 0xeb9f || h.version != 1 || h.hdr_len < sizeof(h) ||
		    (uint64_t)h.hdr_len + h.str_off + h.str_len > len)
			return vmw_error_set(err, -EINVAL, "kernel %s: no valid BTF header at "
					     "__start_BTF (0x%" PRIx64 ")", k->vi->release, s->addr);
		return 0;
	}
	r = ensure_btf(k);
	if (r < 0) {
		why = r == -ENOMEM ? NULL : k->btf_why;
		return vmw_error_set(err, r, "kernel %s: BTF at __start_BTF (0x%" PRIx64 ") is "
				     "unusable%s%s", k->vi->release, s->addr, why ? ": " : "",
				     why ? why : "");
	}
	return 0;
}

static int load_cpus(struct vmw_kernel *k, struct vmw_error *err)
{
	const struct vmw_ksym *n = vmw_symtab_lookup(k->symtab, "nr_cpu_ids");
	const struct vmw_ksym *o = vmw_symtab_lookup(k->symtab, "__per_cpu_offset");
	uint32_t nr;
	int r;

	if (!n || !o)
		return vmw_error_set(err, -ENOENT, "kernel %s: no nr_cpu_ids/__per_cpu_offset in "
				     "kallsyms (not an SMP kernel?)", k->vi->release);
	r = read_image(k->mem, k->vi->phys_base, n->addr, &nr, sizeof(nr));
	if (r < 0 || nr == 0 || nr > MAX_CPUS)
		return vmw_error_set(err, r < 0 ? r : -EINVAL, "kernel %s: nr_cpu_ids unreadable "
				     "or implausible", k->vi->release);
	k->percpu = calloc(nr, sizeof(*k->percpu));
	if (!k->percpu)
		return -ENOMEM;
	r = read_image(k->mem, k->vi->phys_base, o->addr, k->percpu, nr * sizeof(*k->percpu));
	if (r < 0)
		return vmw_error_set(err, r, "kernel %s: __per_cpu_offset unreadable", k->vi->release);
	k->info.nr_cpus = nr;
	return 0;
}

static void opts_copy(struct vmw_kernel_opts *dst, const struct vmw_kernel_opts *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src) {
		size_t n = src->sz ? MIN(src->sz, sizeof(*dst)) : sizeof(*dst);
		memcpy(dst, src, n);
	}
	dst->sz = sizeof(*dst);
}

int vmw_kernel_attach(struct vmw_mem *mem, const struct vmw_kernel_opts *opts,
		      struct vmw_kernel **ret, struct vmw_error *err)
{
	_cleanup_(vmw_kernel_detachp) struct vmw_kernel *k = NULL;
	struct vmw_kernel_opts o;
	char dir[4096], tid[600];
	bool use_cache;
	uint64_t t0 = vmw_now_ns(), pob;
	struct vmw_kcache_hint hint = { 0 };
	struct vmw_kernel_info *info;
	int r;

	opts_copy(&o, opts);
	use_cache = !o.no_cache && vmw_kcache_dir(o.cache_dir, dir, sizeof(dir)) == 0;
	target_id(mem, tid, sizeof(tid));

	/* The cache answers only for the normal path: the fallback is asked for
	 * explicitly, to exercise it. */
	if (use_cache && !o.ignore_vmcoreinfo_kallsyms &&
	    vmw_kcache_hint_get(dir, tid, &hint) == 0) {
		r = cached_attach(mem, dir, &hint, &k);
		if (r == -ENOMEM || r == -ESRCH)
			return vmw_error_set(err, r, "reading guest RAM: %s", strerror(-r));
	}
	if (!k) {
		r = full_discovery(mem, &o, &k, err);
		if (r < 0)
			return r;
		snprintf(k->symbols_from, sizeof(k->symbols_from), "%s", k->symbols_how);
	}

	k->use_cache = use_cache;
	if (use_cache) {
		snprintf(k->cache_dir, sizeof(k->cache_dir), "%s", dir);
		vmw_memo_load(dir, k->vi->build_id, &k->memo);   /* optional */
	}
	r = load_btf(k, !k->info.from_cache, err);
	if (r < 0)
		return r;
	r = load_cpus(k, err);
	if (r < 0)
		return r;
	pob = read_page_offset_base(mem, k->vi, k->symtab);
	r = vmw_xlat_new(mem, vmw_image_phys(k->vi->phys_base, k->vi->pgd), k->vi->paging_levels,
			 &k->xlat);
	if (r < 0)
		return vmw_error_set(err, r, "kernel %s: cannot set up its address space: %s",
				     k->vi->release, strerror(-r));
	vmw_xlat_set_direct_map(k->xlat, pob, ram_end(mem));
	vmw_xlat_set_kernel_image(k->xlat, k->vi->phys_base);

	info = &k->info;
	snprintf(info->release, sizeof(info->release), "%s", k->vi->release);
	snprintf(info->build_id, sizeof(info->build_id), "%s", k->vi->build_id);
	info->kaslr_offset = k->vi->kerneloffset;
	info->phys_base = k->vi->phys_base;
	info->paging_levels = k->vi->paging_levels;
	info->pgd_phys = vmw_image_phys(k->vi->phys_base, k->vi->pgd);
	info->page_offset_base = pob;
	info->ram_bytes = vmw_mem_size(mem);
	info->nr_symbols = k->symtab->nsyms;
	info->symbols_from = k->symbols_from;
	info->types_from = k->types_from;

	if (use_cache && !info->from_cache && !o.ignore_vmcoreinfo_kallsyms) {
		struct vmw_kcache c = {
			.vmcoreinfo_phys = info->vmcoreinfo_phys,
			.btf_vaddr = k->btf_vaddr, .btf_len = k->btf_len,
			.tokens_vaddr = k->tokens_vaddr, .symbols_from = k->symbols_how,
			.symtab = k->symtab,
		};
		memcpy(c.tokens_head, k->tokens_head, sizeof(c.tokens_head));
		/* Best effort: a read-only cache directory only costs time. */
		vmw_kcache_save(dir, k->vi, &c);
	}
	/* Refresh the hint after a full discovery and then once a minute: its
	 * jiffies are the reference the next cached attach checks liveness
	 * against (a file write costs about as much as a cached attach). */
	if (use_cache && !o.ignore_vmcoreinfo_kallsyms &&
	    (!info->from_cache || realtime_ns() - hint.realtime_ns > 60000000000ull)) {
		hint = (struct vmw_kcache_hint){ .vmcoreinfo_phys = info->vmcoreinfo_phys,
						 .realtime_ns = realtime_ns() };
		if (sym_u64(mem, k->vi, k->symtab, "jiffies_64", &hint.jiffies) == 0)
			vmw_kcache_hint_put(dir, tid, &hint);
	}
	info->attach_ns = vmw_now_ns() - t0;
	*ret = TAKE_PTR(k);
	return 0;
}
