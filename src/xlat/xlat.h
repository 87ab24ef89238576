/* SPDX-License-Identifier: MIT */
/*
 * xlat.h - x86-64 virtual → guest-physical address translation.
 *
 * A `struct vmw_xlat` is one address space: a page-table root (the physical
 * address of a PGD, as in CR3 or mm->pgd translated to physical) plus the
 * paging mode (4- or 5-level). It walks the guest's page tables through the
 * memory layer (vmw_mem_read/readv only), understands 4 KiB, 2 MiB and 1 GiB
 * pages, and keeps a small translation cache.
 *
 * Fast paths that skip the walk (set by kernel discovery):
 *   - the direct map: [page_offset_base, page_offset_base + span) → phys 0..
 *   - the kernel image: [0xffffffff80000000, +1 GiB) → vaddr - 0xffffffff80000000 + phys_base
 * A fast path trusts its window: an address inside it always translates, and
 * only the memory read can fail (-EFAULT when the result is not guest RAM).
 *
 * Pages that are not present (swapped out, never touched, PROT_NONE, garbage
 * entries) give -EFAULT ("not available"), never garbage bytes. Guest page
 * tables change under us: call vmw_xlat_flush() at the start of every frame.
 *
 * Guest memory is hostile: entries may be garbage or point anywhere; a walk
 * makes at most `levels` 8-byte reads and never loops.
 *
 * Error codes (all functions): -EFAULT for a non-canonical address, a
 * non-present entry, a reserved PS bit in a PML4E/PML5E, or a table or page
 * outside guest RAM; errors of the memory layer other than -EFAULT (-ESRCH:
 * the QEMU process is gone, -EIO) are passed through unchanged.
 *
 * A vmw_xlat is not thread-safe (its cache is updated by every lookup); use
 * one per thread (vmw_xlat_clone is cheap) over a memory source that allows it.
 */
#pragma once

#include "mem/mem.h"

#define VMW_KERNEL_MAP_BASE 0xffffffff80000000ull  /* __START_KERNEL_map */
#define VMW_KERNEL_MAP_SIZE 0x40000000ull          /* KERNEL_IMAGE_SIZE with KASLR: 1 GiB */

struct vmw_xlat;

/* levels is 4 or 5 (else -EINVAL). root is the physical address of the
 * top-level table; low flag bits (CR3 PCD/PWT/PCID, bits 0-11) and bits
 * 52-63 (CR3 NOFLUSH, LAM) are ignored. Fast paths are unset. */
int vmw_xlat_new(struct vmw_mem *mem, uint64_t root, int levels, struct vmw_xlat **ret);
void vmw_xlat_free(struct vmw_xlat *x);

/* A second address space sharing mem, levels and fast paths, with another root
 * (e.g. a process's mm->pgd). Cheap: one small allocation; the clone's cache
 * is allocated on its first page-table walk. The fast paths are copied: later
 * vmw_xlat_set_* calls on either one do not affect the other. */
int vmw_xlat_clone(const struct vmw_xlat *x, uint64_t root, struct vmw_xlat **ret);

/* span 0 disables the direct-map fast path. */
void vmw_xlat_set_direct_map(struct vmw_xlat *x, uint64_t page_offset_base, uint64_t span);
void vmw_xlat_set_kernel_image(struct vmw_xlat *x, uint64_t phys_base);

/* Translate. On success *phys is the physical address and, if page_size is
 * non-NULL, *page_size the size of the page that maps it (4096, 2 MiB or
 * 1 GiB). For a fast-path address, *page_size is the largest of those sizes
 * whose aligned page around vaddr lies inside the window and maps linearly
 * (e.g. 1 GiB in a 1 GiB-aligned direct map), else 4096. -EFAULT if not
 * mapped/present or a table entry points outside guest RAM. A leaf pointing
 * outside guest RAM still translates; reading it fails. */
int vmw_xlat_v2p(struct vmw_xlat *x, uint64_t vaddr, uint64_t *phys, uint64_t *page_size);

/* Read len bytes at vaddr (may cross pages; every page must be present, else
 * -EFAULT). On error the content of buf is undefined (it may be partly
 * written): never use it. len 0 reads nothing and returns 0. A read within one
 * page is one translation and one vmw_mem_read. */
int vmw_xlat_read(struct vmw_xlat *x, uint64_t vaddr, void *buf, size_t len);

/* Batched read of many virtual pieces (one vmw_mem_readv underneath for up to
 * 4096 physical pieces; more are read in chunks of 4096). Each piece gets its
 * own err; a piece may cross pages, and fails as a whole like vmw_xlat_read
 * (its buf is undefined when its err is set). Returns 0 if all succeeded, else
 * the error of the first failed piece (in array order). */
struct vmw_virt_iov {
	uint64_t addr;
	void *buf;
	size_t len;
	int err;
};
int vmw_xlat_readv(struct vmw_xlat *x, struct vmw_virt_iov *iov, size_t n);

/*
 * Translate addresses of many address spaces at once (e.g. one user address
 * per guest process): item i's page tables are rooted at w[i].root (a
 * physical address), and the walk goes level by level over all items, each
 * level one batched vmw_mem_readv, instead of one dependent read after
 * another per item. Uses x's memory and paging mode only (no caches, no fast
 * paths). Each item gets phys and avail (bytes from va to the end of its
 * page), or err < 0 (-EFAULT: not mapped or not canonical; a read error).
 */
struct vmw_xlat_walk {
	uint64_t root, va;
	uint64_t phys, avail;
	int err;
};
void vmw_xlat_walk_many(struct vmw_xlat *x, struct vmw_xlat_walk *w, size_t n);

/* Forget cached translations (call when guest page tables may have changed).
 * O(1). */
void vmw_xlat_flush(struct vmw_xlat *x);

struct vmw_mem *vmw_xlat_mem(const struct vmw_xlat *x);
int vmw_xlat_levels(const struct vmw_xlat *x);
/* The root as used (flag bits masked off). */
uint64_t vmw_xlat_root(const struct vmw_xlat *x);

/* Counters for benchmarks and tests, since creation (a clone starts at 0).
 * Every page looked up by v2p/read/readv counts once in `translations` and
 * in exactly one of fast_path, tlb_hits or walks. */
struct vmw_xlat_stats {
	uint64_t translations;
	uint64_t fast_path;    /* served by the direct map or the kernel image */
	uint64_t tlb_hits;     /* served by the translation cache */
	uint64_t walks;        /* page-table walks (partial ones included) */
	uint64_t entry_reads;  /* page-table entries read from guest memory */
	uint64_t faults;       /* translations that failed */
	uint64_t data_calls;   /* vmw_mem_read/readv calls for data (walks not included) */
	uint64_t data_pieces;  /* physical pieces in them (contiguous pages merged) */
};
void vmw_xlat_stats(const struct vmw_xlat *x, struct vmw_xlat_stats *ret);
