/* SPDX-License-Identifier: MIT */
/*
 * xlat.c - x86-64 page-table walks (4- and 5-level; 4 KiB, 2 MiB, 1 GiB
 * pages), the direct-map and kernel-image fast paths, and two caches:
 *
 *   - a software TLB: three small direct-mapped arrays, one per page size, so
 *     that one 2 MiB or 1 GiB entry covers its whole page;
 *   - a paging-structure cache (like the CPU's PDE/PDPTE/PML4E caches): for
 *     each level below the root, the physical address of the table that the
 *     walk for a region reached, so that a walk for a neighbouring address
 *     starts at the deepest known table (one read for a new 4 KiB page in a
 *     2 MiB region already walked).
 *
 * Both are tagged with a generation number: flushing is O(1). The caches are
 * allocated on the first walk, so a clone that only uses the fast paths (or
 * is thrown away unused) costs one small allocation.
 *
 * Everything read from guest memory is untrusted: a walk is a loop over at
 * most `levels` levels, each one 8-byte bounds-checked read; entries only
 * ever become addresses that the memory layer checks.
 */
#include "xlat/xlat.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#define PTE_P     (1ull << 0)   /* present */
#define PTE_PS    (1ull << 7)   /* page size (PDE, PDPTE); reserved in PML4E/PML5E */
#define PTE_ADDR  0x000ffffffffff000ull  /* bits 12..51 */

#define PAGE_SHIFT 12
#define PAGE_SIZE  (1ull << PAGE_SHIFT)

/* Cache geometry (entries per array, as log2). */
#define TLB_4K_BITS 8   /* 256 x 4 KiB = 1 MiB of reach */
#define TLB_2M_BITS 5   /* 32 x 2 MiB */
#define TLB_1G_BITS 3   /* 8 x 1 GiB */
#define PWC_BITS    3   /* 8 tables per level */

/*
 * A cache tag is the key (vaddr >> page or region shift, at most 52 bits)
 * with the generation in bits 52..63. Generation 0 is never current, so a
 * zeroed entry never matches.
 */
#define GEN_SHIFT 52
#define GEN_MAX   0xfffull

struct cent {
	uint64_t tag;
	uint64_t phys;   /* page base (TLB) or table base (paging-structure cache) */
};

struct xlat_cache {
	struct cent t4k[1u << TLB_4K_BITS];
	struct cent t2m[1u << TLB_2M_BITS];
	struct cent t1g[1u << TLB_1G_BITS];
	/* pwc[l - 1]: tables of level l (1 = PT, 2 = PD, 3 = PDPT, 4 = PML4),
	 * keyed by vaddr >> (12 + 9 * l). */
	struct cent pwc[4][1u << PWC_BITS];
};

struct vmw_xlat {
	struct vmw_mem *mem;
	uint64_t root;
	int levels;
	unsigned va_bits;          /* 48 or 57 */
	uint64_t dm_base, dm_span; /* direct map; span 0 = off */
	uint64_t kimg_phys;        /* kernel image phys_base */
	bool kimg;                 /* kernel image fast path on */
	uint64_t gen;              /* current generation, already << GEN_SHIFT */
	struct xlat_cache *cache;  /* NULL until the first walk */
	struct vmw_xlat_stats stats;
};

static inline unsigned cidx(uint64_t key, unsigned bits)
{
	/* Fold higher bits in so that e.g. a stack and a heap page with equal low
	 * bits do not always collide; consecutive keys still get distinct slots. */
	return (unsigned)((key ^ (key >> bits) ^ (key >> (2 * bits))) & ((1u << bits) - 1));
}

static inline bool cache_get(const struct cent *arr, unsigned bits, uint64_t key,
			     uint64_t gen, uint64_t *phys)
{
	const struct cent *e = &arr[cidx(key, bits)];

	if (e->tag != (key | gen))
		return false;
	*phys = e->phys;
	return true;
}

static inline void cache_put(struct cent *arr, unsigned bits, uint64_t key,
			     uint64_t gen, uint64_t phys)
{
	struct cent *e = &arr[cidx(key, bits)];

	e->tag = key | gen;
	e->phys = phys;
}

static inline bool canonical(uint64_t va, unsigned bits)
{
	return (uint64_t)((int64_t)(va << (64 - bits)) >> (64 - bits)) == va;
}

static void xlat_init(struct vmw_xlat *x, struct vmw_mem *mem, uint64_t root, int levels)
{
	*x = (struct vmw_xlat){
		.mem = mem,
		.root = root & PTE_ADDR,
		.levels = levels,
		.va_bits = levels == 5 ? 57 : 48,
		.gen = 1ull << GEN_SHIFT,
	};
}

int vmw_xlat_new(struct vmw_mem *mem, uint64_t root, int levels, struct vmw_xlat **ret)
{
	struct vmw_xlat *x;

	if (!mem || !ret || (levels != 4 && levels != 5))
		return -EINVAL;
	x = malloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	xlat_init(x, mem, root, levels);
	*ret = x;
	return 0;
}

void vmw_xlat_free(struct vmw_xlat *x)
{
	if (!x)
		return;
	free(x->cache);
	free(x);
}

int vmw_xlat_clone(const struct vmw_xlat *x, uint64_t root, struct vmw_xlat **ret)
{
	struct vmw_xlat *c;

	if (!x || !ret)
		return -EINVAL;
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	xlat_init(c, x->mem, root, x->levels);
	c->dm_base = x->dm_base;
	c->dm_span = x->dm_span;
	c->kimg_phys = x->kimg_phys;
	c->kimg = x->kimg;
	*ret = c;
	return 0;
}

void vmw_xlat_set_direct_map(struct vmw_xlat *x, uint64_t page_offset_base, uint64_t span)
{
	x->dm_base = page_offset_base;
	x->dm_span = span;
}

void vmw_xlat_set_kernel_image(struct vmw_xlat *x, uint64_t phys_base)
{
	x->kimg_phys = phys_base;
	x->kimg = true;
}

void vmw_xlat_flush(struct vmw_xlat *x)
{
	uint64_t g = (x->gen >> GEN_SHIFT) + 1;

	if (g > GEN_MAX) {
		/* Wrapped: old tags could come back to life; wipe them. */
		if (x->cache)
			memset(x->cache, 0, sizeof(*x->cache));
		g = 1;
	}
	x->gen = g << GEN_SHIFT;
}

struct vmw_mem *vmw_xlat_mem(const struct vmw_xlat *x) { return x->mem; }
int vmw_xlat_levels(const struct vmw_xlat *x) { return x->levels; }
uint64_t vmw_xlat_root(const struct vmw_xlat *x) { return x->root; }
void vmw_xlat_stats(const struct vmw_xlat *x, struct vmw_xlat_stats *ret) { *ret = x->stats; }

/*
 * Walk the page tables for va. On success *base is the physical base of the
 * page and *shift its log2 size (12, 21 or 30). At most x->levels reads.
 */
static int walk(struct vmw_xlat *x, uint64_t va, uint64_t *base, unsigned *shift)
{
	struct xlat_cache *c = x->cache;
	uint64_t table = x->root;
	int l = x->levels;

	if (!c)
		c = x->cache = calloc(1, sizeof(*c));  /* on ENOMEM: walk uncached */
	x->stats.walks++;

	/* Start at the deepest table we know for this region. */
	if (c)
		for (int i = 1; i < x->levels; i++) {
			if (cache_get(c->pwc[i - 1], PWC_BITS, va >> (PAGE_SHIFT + 9 * i), x->gen, &table)) {
				l = i;
				break;
			}
		}

	for (; l >= 1; l--) {
		/* Bits [s, s + 9) index this table; s is also the page shift of a leaf here. */
		unsigned s = PAGE_SHIFT + 9 * (unsigned)(l - 1);
		uint64_t e;
		int r;

		x->stats.entry_reads++;
		r = vmw_mem_read(x->mem, table + ((va >> s) & 511) * 8, &e, sizeof(e));
		if (r < 0)
			return r;
		e = le64toh(e);
		if (!(e & PTE_P))
			return -EFAULT;
		if (l == 1 || ((l == 2 || l == 3) && (e & PTE_PS))) {
			/* Bit 12 of a large-page entry is PAT: the mask drops it. */
			*base = e & PTE_ADDR & ~((1ull << s) - 1);
			*shift = s;
			return 0;
		}
		if (e & PTE_PS)
			return -EFAULT;  /* reserved bit in a PML4E/PML5E: the CPU faults too */
		table = e & PTE_ADDR;
		if (c)
			cache_put(c->pwc[l - 2], PWC_BITS, va >> s, x->gen, table);
	}
	return -EFAULT;  /* not reached: level 1 always returns */
}

#define WALK_CHUNK 64

void vmw_xlat_walk_many(struct vmw_xlat *x, struct vmw_xlat_walk *w, size_t n)
{
	for (size_t base = 0; base < n; base += WALK_CHUNK) {
		size_t cnt = MIN((size_t)WALK_CHUNK, n - base), live = 0;
		struct vmw_phys_iov iov[WALK_CHUNK];
		uint64_t table[WALK_CHUNK], e[WALK_CHUNK];
		size_t idx[WALK_CHUNK];

		for (size_t i = 0; i < cnt; i++) {
			struct vmw_xlat_walk *it = &w[base + i];
			it->phys = it->avail = 0;
			it->err = canonical(it->va, x->va_bits) ? 0 : -EFAULT;
			if (!it->err) {
				table[live] = it->root & PTE_ADDR;
				idx[live++] = base + i;
			}
		}
		x->stats.walks += live;
		for (int l = x->levels; l >= 1 && live; l--) {
			unsigned s = PAGE_SHIFT + 9 * (unsigned)(l - 1);
			size_t keep = 0;

			for (size_t j = 0; j < live; j++)
				iov[j] = (struct vmw_phys_iov){ table[j] + ((w[idx[j]].va >> s) & 511) * 8,
								&e[j], sizeof(e[j]), 0 };
			x->stats.entry_reads += live;
			(void)vmw_mem_readv(x->mem, iov, live);
			for (size_t j = 0; j < live; j++) {
				struct vmw_xlat_walk *it = &w[idx[j]];
				uint64_t v = le64toh(e[j]);

				if (iov[j].err || !(v & PTE_P)) {
					it->err = iov[j].err ? iov[j].err : -EFAULT;
				} else if (l == 1 || ((l == 2 || l == 3) && (v & PTE_PS))) {
					/* A leaf, decoded as walk() does. */
					uint64_t off = it->va & ((1ull << s) - 1);
					it->phys = (v & PTE_ADDR & ~((1ull << s) - 1)) + off;
					it->avail = (1ull << s) - off;
				} else if (v & PTE_PS) {
					it->err = -EFAULT;
				} else {
					table[keep] = v & PTE_ADDR;
					idx[keep++] = idx[j];
				}
			}
			live = keep;
		}
		for (size_t j = 0; j < live; j++)
			w[idx[j]].err = -EFAULT;   /* not reached: level 1 always ends a walk */
	}
}

/*
 * Translate one address. On success *phys is its physical address, *avail
 * how many bytes from va on map linearly (to the end of the page or fast-path
 * window, at least 1), *shift the page shift, or 0 for a fast path.
 */
static int translate(struct vmw_xlat *x, uint64_t va, uint64_t *phys, uint64_t *avail,
		     unsigned *shift)
{
	struct xlat_cache *c = x->cache;
	uint64_t off, base;
	unsigned s;
	int r;

	x->stats.translations++;
	if (!canonical(va, x->va_bits)) {
		x->stats.faults++;
		return -EFAULT;
	}
	if ((off = va - x->dm_base) < x->dm_span) {
		x->stats.fast_path++;
		*phys = off;
		*avail = x->dm_span - off;
		*shift = 0;
		return 0;
	}
	if (x->kimg && (off = va - VMW_KERNEL_MAP_BASE) < VMW_KERNEL_MAP_SIZE) {
		x->stats.fast_path++;
		*phys = off + x->kimg_phys;
		*avail = VMW_KERNEL_MAP_SIZE - off;
		*shift = 0;
		return 0;
	}
	if (c && (cache_get(c->t4k, TLB_4K_BITS, va >> (s = 12), x->gen, &base) ||
		  cache_get(c->t2m, TLB_2M_BITS, va >> (s = 21), x->gen, &base) ||
		  cache_get(c->t1g, TLB_1G_BITS, va >> (s = 30), x->gen, &base))) {
		x->stats.tlb_hits++;
	} else {
		r = walk(x, va, &base, &s);
		if (r < 0) {
			x->stats.faults++;
			return r;
		}
		if ((c = x->cache)) {
			if (s == 12)
				cache_put(c->t4k, TLB_4K_BITS, va >> 12, x->gen, base);
			else if (s == 21)
				cache_put(c->t2m, TLB_2M_BITS, va >> 21, x->gen, base);
			else
				cache_put(c->t1g, TLB_1G_BITS, va >> 30, x->gen, base);
		}
	}
	off = va & ((1ull << s) - 1);
	*phys = base + off;
	*avail = (1ull << s) - off;
	*shift = s;
	return 0;
}

/* Page size to report for a fast-path address: see xlat.h. */
static uint64_t fast_page_size(const struct vmw_xlat *x, uint64_t va)
{
	static const uint64_t sizes[] = { 1ull << 30, 1ull << 21 };
	uint64_t wbase, wspan, delta;  /* window, and vaddr - phys in it */

	if (va - x->dm_base < x->dm_span) {
		wbase = x->dm_base;
		wspan = x->dm_span;
		delta = x->dm_base;
	} else {
		wbase = VMW_KERNEL_MAP_BASE;
		wspan = VMW_KERNEL_MAP_SIZE;
		delta = VMW_KERNEL_MAP_BASE - x->kimg_phys;
	}
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		uint64_t sz = sizes[i], page = va & ~(sz - 1);

		if (!(delta & (sz - 1)) && page >= wbase && wspan >= sz && page - wbase <= wspan - sz)
			return sz;
	}
	return PAGE_SIZE;
}

int vmw_xlat_v2p(struct vmw_xlat *x, uint64_t vaddr, uint64_t *phys, uint64_t *page_size)
{
	uint64_t pa, avail;
	unsigned s;
	int r = translate(x, vaddr, &pa, &avail, &s);

	if (r < 0)
		return r;
	*phys = pa;
	if (page_size)
		*page_size = s ? 1ull << s : fast_page_size(x, vaddr);
	return 0;
}

/* Number of 4 KiB pages [addr, addr + len) touches (len > 0, no wrap). */
static inline uint64_t pages_spanned(uint64_t addr, size_t len)
{
	return ((addr + (len - 1)) >> PAGE_SHIFT) - (addr >> PAGE_SHIFT) + 1;
}

#define READV_STACK 64
#define READV_MAX   4096  /* physical pieces per vmw_mem_readv */

struct batch {
	struct vmw_phys_iov *p;
	size_t *owner;         /* index of the virtual piece each p[] belongs to */
	size_t k, cap;
};

static void batch_flush(struct vmw_xlat *x, struct batch *b, struct vmw_virt_iov *iov)
{
	if (!b->k)
		return;
	x->stats.data_calls++;
	x->stats.data_pieces += b->k;
	(void)vmw_mem_readv(x->mem, b->p, b->k);
	for (size_t j = 0; j < b->k; j++) {
		struct vmw_virt_iov *v = &iov[b->owner[j]];
		if (b->p[j].err && !v->err)
			v->err = b->p[j].err;
	}
	b->k = 0;
}

/*
 * Append the physical pieces of iov[i] to b, flushing b when full. If the
 * caller already translated the first page, first_avail is non-zero and
 * first_pa its result. On a translation failure iov[i].err is set and the
 * piece's entries still in b are dropped.
 */
static void batch_add_piece(struct vmw_xlat *x, struct batch *b, struct vmw_virt_iov *iov,
			    size_t i, uint64_t first_pa, uint64_t first_avail)
{
	struct vmw_virt_iov *v = &iov[i];
	size_t off = 0, start = b->k;  /* v's pieces in the current batch begin at start */

	if (!v->len)
		return;
	if (v->addr + (v->len - 1) < v->addr) {
		v->err = -EFAULT;
		return;
	}
	while (off < v->len) {
		uint64_t pa = first_pa, avail = first_avail;
		unsigned s;
		size_t chunk;

		if (off || !first_avail) {
			int r = translate(x, v->addr + off, &pa, &avail, &s);
			if (r < 0) {
				v->err = r;
				b->k = start;  /* do not read the rest of a failed piece */
				return;
			}
		}
		chunk = (size_t)MIN((uint64_t)(v->len - off), avail);
		if (b->k > start && b->p[b->k - 1].addr + b->p[b->k - 1].len == pa) {
			/* Physically contiguous with the previous page: extend. */
			b->p[b->k - 1].len += chunk;
		} else {
			if (b->k == b->cap) {
				batch_flush(x, b, iov);
				start = 0;
			}
			b->p[b->k] = (struct vmw_phys_iov){ pa, (uint8_t *)v->buf + off, chunk, 0 };
			b->owner[b->k++] = i;
		}
		off += chunk;
	}
}

static int readv_impl(struct vmw_xlat *x, struct vmw_virt_iov *iov, size_t n,
		      uint64_t first_pa, uint64_t first_avail)
{
	struct vmw_phys_iov stack_p[READV_STACK];
	size_t stack_o[READV_STACK];
	_cleanup_free_ struct vmw_phys_iov *heap_p = NULL;
	_cleanup_free_ size_t *heap_o = NULL;
	struct batch b = { stack_p, stack_o, 0, READV_STACK };
	uint64_t need = 0;

	/* Upper bound of physical pieces: one per 4 KiB page touched. */
	for (size_t i = 0; i < n; i++) {
		iov[i].err = 0;
		if (iov[i].len && iov[i].addr + (iov[i].len - 1) >= iov[i].addr)
			need += MIN(pages_spanned(iov[i].addr, iov[i].len), (uint64_t)READV_MAX);
	}
	if (need > READV_STACK) {
		size_t cap = (size_t)MIN(need, (uint64_t)READV_MAX);
		heap_p = malloc(cap * sizeof(*heap_p));
		heap_o = malloc(cap * sizeof(*heap_o));
		if (heap_p && heap_o)
			b = (struct batch){ heap_p, heap_o, 0, cap };
		/* else: chunks of READV_STACK */
	}

	for (size_t i = 0; i < n; i++)
		batch_add_piece(x, &b, iov, i, first_pa, i == 0 ? first_avail : 0);
	batch_flush(x, &b, iov);

	for (size_t i = 0; i < n; i++)
		if (iov[i].err)
			return iov[i].err;
	return 0;
}

int vmw_xlat_readv(struct vmw_xlat *x, struct vmw_virt_iov *iov, size_t n)
{
	return readv_impl(x, iov, n, 0, 0);
}

int vmw_xlat_read(struct vmw_xlat *x, uint64_t vaddr, void *buf, size_t len)
{
	struct vmw_virt_iov v = { vaddr, buf, len, 0 };
	uint64_t pa, avail;
	unsigned s;
	int r;

	if (!len)
		return 0;
	if (vaddr + (len - 1) < vaddr)
		return -EFAULT;
	r = translate(x, vaddr, &pa, &avail, &s);
	if (r < 0)
		return r;
	if (len <= avail) {
		x->stats.data_calls++;
		x->stats.data_pieces++;
		return vmw_mem_read(x->mem, pa, buf, len);
	}
	/* Crosses pages: translate the others, then one vmw_mem_readv. */
	return readv_impl(x, &v, 1, pa, avail);
}
