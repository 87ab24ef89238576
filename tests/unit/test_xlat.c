/* SPDX-License-Identifier: MIT */
/*
 * test_xlat.c - page-table walks over synthetic guest RAM with hand-made
 * page tables (src/xlat).
 *
 * Guest RAM is an 8 MiB buffer laid out as:
 *   0x000000-0x0fffff  data (4 KiB pages)
 *   0x100000-0x2fffff  page tables (bump allocated)
 *   0x300000-0x3fffff  data
 *   0x400000-0x5fffff  data (a 2 MiB page)
 *   0x600000-0x7fffff  data
 * Every data word holds its own physical address | 0xa5 << 56, so a value
 * read through a translation shows where it came from.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "xlat/xlat.h"
#include "mem/mem_internal.h"  /* only for the process_vm_readv test source */

#define RAM_SIZE     (8ull << 20)
#define TABLES_START 0x100000ull
#define TABLES_END   0x300000ull

#define P   (1ull << 0)
#define RW  (1ull << 1)
#define US  (1ull << 2)
#define ACC (1ull << 5)
#define PS  (1ull << 7)
#define PROTNONE (1ull << 8)  /* Linux _PAGE_PROTNONE (= _PAGE_GLOBAL, P clear) */
#define NX  (1ull << 63)
#define ADDR 0x000ffffffffff000ull

#define KB 1024ull
#define MB (1024ull * KB)
#define GB (1024ull * MB)

struct env {
	uint8_t *ram;
	struct vmw_mem *mem;
	uint64_t next;   /* next free page-table page */
};

static uint64_t pat(uint64_t pa) { return pa | 0xa5ull << 56; }

static uint64_t rd64(struct env *e, uint64_t pa)
{
	uint64_t v;
	memcpy(&v, e->ram + pa, 8);
	return le64toh(v);
}

static void wr64(struct env *e, uint64_t pa, uint64_t v)
{
	v = htole64(v);
	memcpy(e->ram + pa, &v, 8);
}

static uint64_t new_table(struct env *e)
{
	uint64_t pa = e->next;

	assert_true(pa + 4096 <= TABLES_END);
	e->next += 4096;
	memset(e->ram + pa, 0, 4096);
	return pa;
}

/* Physical address of the entry at `level` (1 = PTE .. 5) for va, creating
 * missing intermediate tables. */
static uint64_t slot(struct env *e, uint64_t root, int levels, uint64_t va, int level)
{
	uint64_t table = root & ADDR;

	for (int l = levels; l > level; l--) {
		uint64_t sp = table + ((va >> (12 + 9 * (l - 1))) & 511) * 8;
		uint64_t ent = rd64(e, sp);
		if (!(ent & P)) {
			ent = new_table(e) | P | RW | US | ACC;
			wr64(e, sp, ent);
		}
		assert_true(!(ent & PS));
		table = ent & ADDR;
	}
	return table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;
}

/* Map va → pa with a leaf at `level` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB). */
static void map(struct env *e, uint64_t root, int levels, uint64_t va, uint64_t pa, int level)
{
	wr64(e, slot(e, root, levels, va, level), pa | P | RW | US | ACC | (level > 1 ? PS : 0));
}

static uint64_t mem_reads(struct env *e)
{
	struct vmw_mem_stats st;
	vmw_mem_stats(e->mem, &st);
	return st.reads;
}

static struct vmw_xlat_stats xstats(struct vmw_xlat *x)
{
	struct vmw_xlat_stats st;
	vmw_xlat_stats(x, &st);
	return st;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	e->ram = aligned_alloc(4096, RAM_SIZE);
	if (!e->ram)
		return -1;
	for (uint64_t pa = 0; pa < RAM_SIZE; pa += 8)
		wr64(e, pa, pat(pa));
	e->next = TABLES_START;
	if (vmw_mem_open_buffer(e->ram, RAM_SIZE, &e->mem) < 0)
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	vmw_mem_close(e->mem);
	free(e->ram);
	free(e);
	return 0;
}

static struct vmw_xlat *xnew(struct env *e, uint64_t root, int levels)
{
	struct vmw_xlat *x = NULL;
	assert_int_equal(vmw_xlat_new(e->mem, root, levels, &x), 0);
	assert_non_null(x);
	return x;
}

/* v2p that must succeed; returns phys. */
static uint64_t v2p_ok(struct vmw_xlat *x, uint64_t va, uint64_t want_ps)
{
	uint64_t pa = 0, ps = 0;
	assert_int_equal(vmw_xlat_v2p(x, va, &pa, &ps), 0);
	if (want_ps)
		assert_int_equal(ps, want_ps);
	return pa;
}

static void v2p_fault(struct vmw_xlat *x, uint64_t va)
{
	uint64_t pa = 0xdead, ps = 0xdead;
	assert_int_equal(vmw_xlat_v2p(x, va, &pa, &ps), -EFAULT);
}

/* Read len bytes at va through x and compare with RAM at pa. */
static void read_ok(struct env *e, struct vmw_xlat *x, uint64_t va, uint64_t pa, size_t len)
{
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	memset(buf, 0xcc, len);
	assert_int_equal(vmw_xlat_read(x, va, buf, len), 0);
	assert_memory_equal(buf, e->ram + pa, len);
	free(buf);
}

static void test_new_invalid(void **state)
{
	struct env *e = *state;
	struct vmw_xlat *x = NULL;

	assert_int_equal(vmw_xlat_new(e->mem, 0x100000, 3, &x), -EINVAL);
	assert_int_equal(vmw_xlat_new(e->mem, 0x100000, 6, &x), -EINVAL);
	assert_int_equal(vmw_xlat_new(NULL, 0x100000, 4, &x), -EINVAL);
	assert_null(x);
	x = xnew(e, 0x100000, 5);
	assert_int_equal(vmw_xlat_levels(x), 5);
	assert_ptr_equal(vmw_xlat_mem(x), e->mem);
	vmw_xlat_free(x);
	vmw_xlat_free(NULL);
}

static void test_4k(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t uva = 0x00007f0000001000ull, kva = 0xffffc90000002000ull;
	struct vmw_xlat *x;
	uint64_t w;

	map(e, root, 4, uva, 0x3000, 1);
	map(e, root, 4, kva, 0x6000, 1);
	x = xnew(e, root, 4);

	assert_int_equal(v2p_ok(x, uva + 0x123, 4096), 0x3123);
	assert_int_equal(v2p_ok(x, uva, 4096), 0x3000);
	assert_int_equal(v2p_ok(x, uva + 0xfff, 4096), 0x3fff);
	assert_int_equal(v2p_ok(x, kva + 0x8, 4096), 0x6008);
	assert_int_equal(vmw_xlat_read(x, uva + 0x100, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x3100));
	read_ok(e, x, kva + 0x7, 0x6007, 100);
	/* Same page table, unmapped neighbours. */
	v2p_fault(x, uva + 0x1000);
	v2p_fault(x, uva - 0x1000);
	v2p_fault(x, kva + 0x200000);
	/* len 0 reads nothing, even unmapped. */
	assert_int_equal(vmw_xlat_read(x, 0x1000, &w, 0), 0);
	vmw_xlat_free(x);
}

/* A read within one page is one translation + one mem read; the caches make
 * repeated and neighbouring lookups cheap. */
static void test_read_costs(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f0000001000ull;
	struct vmw_xlat *x;
	uint64_t w, m0;
	struct vmw_xlat_stats s0, s1;

	map(e, root, 4, va, 0x3000, 1);
	map(e, root, 4, va + 0x1000, 0x5000, 1);
	map(e, root, 4, va + 0x200000, 0x7000, 1);  /* other PT, same PD */
	x = xnew(e, root, 4);

	/* Cold: 4 entry reads + 1 data read. */
	m0 = mem_reads(e);
	s0 = xstats(x);
	assert_int_equal(vmw_xlat_read(x, va + 8, &w, 8), 0);
	s1 = xstats(x);
	assert_int_equal(mem_reads(e) - m0, 5);
	assert_int_equal(s1.translations - s0.translations, 1);
	assert_int_equal(s1.walks - s0.walks, 1);
	assert_int_equal(s1.entry_reads - s0.entry_reads, 4);

	/* Warm: one mem read, no walk. */
	m0 = mem_reads(e);
	s0 = xstats(x);
	assert_int_equal(vmw_xlat_read(x, va + 16, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x3010));
	s1 = xstats(x);
	assert_int_equal(mem_reads(e) - m0, 1);
	assert_int_equal(s1.translations - s0.translations, 1);
	assert_int_equal(s1.tlb_hits - s0.tlb_hits, 1);
	assert_int_equal(s1.walks - s0.walks, 0);

	/* Next page, same PT: the paging-structure cache leaves 1 entry read. */
	m0 = mem_reads(e);
	assert_int_equal(vmw_xlat_read(x, va + 0x1008, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x5008));
	assert_int_equal(mem_reads(e) - m0, 2);

	/* Next 2 MiB region, same PD: 2 entry reads. */
	m0 = mem_reads(e);
	assert_int_equal(vmw_xlat_read(x, va + 0x200000, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x7000));
	assert_int_equal(mem_reads(e) - m0, 3);

	/* After a flush the walk is cold again. */
	vmw_xlat_flush(x);
	m0 = mem_reads(e);
	assert_int_equal(vmw_xlat_read(x, va + 0x1008, &w, 8), 0);
	assert_int_equal(mem_reads(e) - m0, 5);
	vmw_xlat_free(x);
}

static void test_2m(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0xffffc90000400000ull;
	struct vmw_xlat *x;
	uint64_t m0;
	struct vmw_xlat_stats s0, s1;

	map(e, root, 4, va, 0x400000, 2);
	x = xnew(e, root, 4);
	assert_int_equal(v2p_ok(x, va + 0x1ff123, 2 * MB), 0x5ff123);
	assert_int_equal(v2p_ok(x, va, 2 * MB), 0x400000);
	read_ok(e, x, va + 0xff0, 0x400ff0, 0x2000);
	read_ok(e, x, va + 0x1ffff8, 0x5ffff8, 8);
	v2p_fault(x, va + 2 * MB);
	v2p_fault(x, va - 1);

	/* One 2 MiB TLB entry covers the whole page. */
	vmw_xlat_flush(x);
	assert_int_equal(v2p_ok(x, va + 0x10, 2 * MB), 0x400010);
	m0 = mem_reads(e);
	s0 = xstats(x);
	assert_int_equal(v2p_ok(x, va + 0x1234f0, 2 * MB), 0x5234f0);
	assert_int_equal(v2p_ok(x, va + 0x1ffff0, 2 * MB), 0x5ffff0);
	s1 = xstats(x);
	assert_int_equal(mem_reads(e) - m0, 0);
	assert_int_equal(s1.tlb_hits - s0.tlb_hits, 2);
	vmw_xlat_free(x);
}

static void test_1g(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f8000000000ull;
	struct vmw_xlat *x;
	uint8_t buf[16];

	map(e, root, 4, va, 0, 3);
	x = xnew(e, root, 4);
	assert_int_equal(v2p_ok(x, va + 0x12345678, GB), 0x12345678);
	assert_int_equal(v2p_ok(x, va + GB - 1, GB), GB - 1);
	read_ok(e, x, va + 0x3004, 0x3004, 64);
	read_ok(e, x, va + RAM_SIZE - 16, RAM_SIZE - 16, 16);
	/* Mapped, but beyond guest RAM. */
	assert_int_equal(vmw_xlat_read(x, va + RAM_SIZE, buf, 8), -EFAULT);
	assert_int_equal(vmw_xlat_read(x, va + RAM_SIZE - 4, buf, 8), -EFAULT);
	assert_int_equal(vmw_xlat_read(x, va + 0x20000000, buf, 1), -EFAULT);
	v2p_fault(x, va + GB);
	vmw_xlat_free(x);
}

static void test_5level(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t u4k = 0x00abcdef12345000ull;    /* PML5 index 0xab */
	const uint64_t k2m = 0xff11223344400000ull;
	const uint64_t k1g = 0xff22000040000000ull;
	const uint64_t kc = 0xff00000000000000ull;     /* PML5 index 256 */
	struct vmw_xlat *x, *x4;

	map(e, root, 5, u4k, 0x7000, 1);
	map(e, root, 5, k2m, 0x400000, 2);
	map(e, root, 5, k1g, 0, 3);
	map(e, root, 5, kc, 0x8000, 1);
	x = xnew(e, root, 5);
	assert_int_equal(v2p_ok(x, u4k + 0x10, 4096), 0x7010);
	assert_int_equal(v2p_ok(x, k2m + 0x12345, 2 * MB), 0x412345);
	assert_int_equal(v2p_ok(x, k1g + 0x654321, GB), 0x654321);
	assert_int_equal(v2p_ok(x, kc + 0x20, 4096), 0x8020);
	read_ok(e, x, u4k + 0xff8, 0x7ff8, 8);
	read_ok(e, x, k2m + 0xffc, 0x400ffc, 8);
	read_ok(e, x, k1g + 0x100, 0x100, 256);
	/* Same low 57 bits as kc, but bits 63..57 differ from bit 56. */
	v2p_fault(x, 0x0100000000000000ull);
	v2p_fault(x, 0x7f00000000000000ull);
	/* An unmapped PML5 slot. */
	v2p_fault(x, 0x00ac000000000000ull);

	/* The same tables walked as 4-level: u4k is not canonical there. */
	x4 = xnew(e, root, 4);
	v2p_fault(x4, u4k);
	vmw_xlat_free(x4);
	vmw_xlat_free(x);
}

static void test_noncanonical_4level(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t kc = 0xffff800000000000ull;  /* PML4 index 256 */
	struct vmw_xlat *x;
	uint64_t w;

	map(e, root, 4, kc, 0x3000, 1);
	x = xnew(e, root, 4);
	assert_int_equal(v2p_ok(x, kc + 8, 4096), 0x3008);
	/* Same low 48 bits as kc: a walker without the check would succeed. */
	v2p_fault(x, 0x0000800000000008ull);
	v2p_fault(x, 0x7fff800000000008ull);
	v2p_fault(x, 0xfeff800000000008ull);
	assert_int_equal(vmw_xlat_read(x, 0x0000800000000008ull, &w, 8), -EFAULT);
	/* A read that runs off the top of the lower half. */
	map(e, root, 4, 0x00007ffffffff000ull, 0x4000, 1);
	assert_int_equal(vmw_xlat_read(x, 0x00007ffffffffff8ull, &w, 8), 0);
	assert_int_equal(vmw_xlat_read(x, 0x00007ffffffffffcull, &w, 8), -EFAULT);
	/* A read that wraps around 2^64, from the mapped last page to the mapped
	 * page 0. */
	map(e, root, 4, 0xfffffffffffff000ull, 0x5000, 1);
	map(e, root, 4, 0, 0x6000, 1);
	assert_int_equal(vmw_xlat_read(x, 0xfffffffffffffff8ull, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x5ff8));
	assert_int_equal(vmw_xlat_read(x, 0xfffffffffffffffcull, &w, 8), -EFAULT);
	{
		struct vmw_virt_iov v = { 0xfffffffffffffffcull, &w, 8, 0 };
		assert_int_equal(vmw_xlat_readv(x, &v, 1), -EFAULT);
		assert_int_equal(v.err, -EFAULT);
	}
	vmw_xlat_free(x);
}

static void test_not_present(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f0000001000ull;
	struct vmw_xlat *x;
	uint64_t pte, pde, w;

	map(e, root, 4, va, 0x3000, 1);
	map(e, root, 4, va + 0x1000, 0x3000, 1);
	x = xnew(e, root, 4);
	pte = slot(e, root, 4, va, 1);
	pde = slot(e, root, 4, va, 2);
	assert_int_equal(v2p_ok(x, va, 4096), 0x3000);

	/* P clear, address bits intact: a walker ignoring P would succeed. */
	wr64(e, pte, 0x3000 | RW | US | ACC);
	vmw_xlat_flush(x);
	v2p_fault(x, va);
	assert_int_equal(vmw_xlat_read(x, va, &w, 8), -EFAULT);

	/* PROT_NONE: _PAGE_PROTNONE without P. */
	wr64(e, pte, 0x3000 | PROTNONE | ACC | NX);
	vmw_xlat_flush(x);
	v2p_fault(x, va);

	/* A swap entry (swap type/offset in the high bits, P clear). */
	wr64(e, pte, 0x7ffffffffffc3e40ull & ~P);
	vmw_xlat_flush(x);
	v2p_fault(x, va);

	/* The neighbour is still fine. */
	assert_int_equal(v2p_ok(x, va + 0x1000, 4096), 0x3000);

	/* Non-present PDE with a valid table address. */
	wr64(e, pde, rd64(e, pde) & ~P);
	vmw_xlat_flush(x);
	v2p_fault(x, va + 0x1000);
	wr64(e, pde, rd64(e, pde) | P);
	vmw_xlat_flush(x);
	assert_int_equal(v2p_ok(x, va + 0x1000, 4096), 0x3000);

	/* PS in a PML4E is reserved: fault, as the CPU does. */
	uint64_t pml4e = slot(e, root, 4, va, 4);
	wr64(e, pml4e, rd64(e, pml4e) | PS);
	vmw_xlat_flush(x);
	v2p_fault(x, va + 0x1000);
	vmw_xlat_free(x);
}

static void test_outside_ram(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f0000001000ull;
	struct vmw_xlat *x;
	uint64_t pde, pml4e, w;

	map(e, root, 4, va, 0x3000, 1);
	x = xnew(e, root, 4);
	pde = slot(e, root, 4, va, 2);
	pml4e = slot(e, root, 4, va, 4);

	/* PDE → a page table beyond RAM. */
	wr64(e, pde, 0x40000000 | P | RW);
	v2p_fault(x, va);
	wr64(e, pde, RAM_SIZE | P | RW);
	v2p_fault(x, va);
	/* PML4E → the top of the physical address space. */
	wr64(e, pml4e, 0x000ffffffffff000ull | P | RW);
	v2p_fault(x, va);
	vmw_xlat_free(x);

	/* A root beyond RAM. */
	x = xnew(e, 0x7ffff000000ull, 4);
	v2p_fault(x, va);
	vmw_xlat_free(x);

	/* Leaf → page beyond RAM: translates, but reading it fails. */
	root = new_table(e);
	map(e, root, 4, va, 0x10000000, 1);
	x = xnew(e, root, 4);
	assert_int_equal(v2p_ok(x, va + 0x10, 4096), 0x10000010);
	assert_int_equal(vmw_xlat_read(x, va + 0x10, &w, 8), -EFAULT);
	vmw_xlat_free(x);
}

static void test_read_cross(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f0000010000ull;     /* 2 pages, then a hole */
	const uint64_t vc = 0x00007f0000100000ull;     /* 3 physically contiguous pages */
	const uint64_t vbig = 0x00007f1000000000ull;   /* 128 scattered pages */
	struct vmw_xlat *x;
	uint8_t buf[64], want[64];
	uint64_t m0;
	struct vmw_xlat_stats s0, s1;

	map(e, root, 4, va, 0x6000, 1);
	map(e, root, 4, va + 0x1000, 0x3000, 1);
	for (int i = 0; i < 3; i++)
		map(e, root, 4, vc + i * 0x1000ull, 0x600000 + i * 0x1000ull, 1);
	for (int i = 0; i < 128; i++)
		map(e, root, 4, vbig + i * 0x1000ull, 0x600000 + ((i * 37) % 256) * 0x1000ull, 1);
	x = xnew(e, root, 4);

	/* Across two pages that are not physically adjacent. */
	memcpy(want, e->ram + 0x6ff0, 16);
	memcpy(want + 16, e->ram + 0x3000, 16);
	assert_int_equal(vmw_xlat_read(x, va + 0xff0, buf, 32), 0);
	assert_memory_equal(buf, want, 32);

	/* From a present into a non-present page, and the other way. */
	assert_int_equal(vmw_xlat_read(x, va + 0x2000 - 8, buf, 16), -EFAULT);
	assert_int_equal(vmw_xlat_read(x, va - 8, buf, 16), -EFAULT);
	{
		uint8_t *big = malloc(0x3000);
		assert_non_null(big);
		assert_int_equal(vmw_xlat_read(x, va, big, 0x3000), -EFAULT);
		assert_int_equal(vmw_xlat_read(x, va, big, 0x2000), 0);
		assert_memory_equal(big, e->ram + 0x6000, 0x1000);
		assert_memory_equal(big + 0x1000, e->ram + 0x3000, 0x1000);
		free(big);
	}

	/* Physically contiguous pages are read as one piece, in one call. */
	assert_int_equal(v2p_ok(x, vc, 4096), 0x600000);  /* warm the first */
	m0 = mem_reads(e);
	s0 = xstats(x);
	{
		uint8_t *big = malloc(0x2800);
		assert_non_null(big);
		assert_int_equal(vmw_xlat_read(x, vc + 0x400, big, 0x2800), 0);
		assert_memory_equal(big, e->ram + 0x600400, 0x2800);
		free(big);
	}
	s1 = xstats(x);
	/* 2 walks of 1 entry read (cached PT) + 1 data read. */
	assert_int_equal(mem_reads(e) - m0, 3);
	assert_int_equal(s1.data_calls - s0.data_calls, 1);
	assert_int_equal(s1.data_pieces - s0.data_pieces, 1);
	/* Not adjacent: one call, two pieces. */
	s0 = xstats(x);
	assert_int_equal(vmw_xlat_read(x, va + 0xff0, buf, 32), 0);
	s1 = xstats(x);
	assert_int_equal(s1.data_calls - s0.data_calls, 1);
	assert_int_equal(s1.data_pieces - s0.data_pieces, 2);

	/* A large read (more pieces than the stack batch). */
	{
		size_t len = 128 * 4096 - 0x300;
		uint8_t *big = malloc(128 * 4096);
		assert_non_null(big);
		assert_int_equal(vmw_xlat_read(x, vbig + 0x100, big, len), 0);
		for (int i = 0; i < 128; i++) {
			uint64_t pa = 0x600000 + ((i * 37) % 256) * 0x1000ull;
			size_t o = i ? (size_t)i * 4096 - 0x100 : 0;
			size_t n = MIN((size_t)(i ? 4096 : 4096 - 0x100), len - o);
			assert_memory_equal(big + o, e->ram + pa + (i ? 0 : 0x100), n);
		}
		/* ... and one that runs into the hole after them. */
		assert_int_equal(vmw_xlat_read(x, vbig + 0x100, big, 128 * 4096), -EFAULT);
		free(big);
	}
	vmw_xlat_free(x);
}

static void test_readv_mixed(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f0000010000ull;
	const uint64_t v2m = 0xffffc90000400000ull;
	const uint64_t voutside = 0x00007f0000020000ull;
	struct vmw_xlat *x;
	uint8_t b[8][32];

	map(e, root, 4, va, 0x6000, 1);
	map(e, root, 4, va + 0x1000, 0x3000, 1);
	map(e, root, 4, v2m, 0x400000, 2);
	map(e, root, 4, voutside, 0x20000000, 1);
	x = xnew(e, root, 4);
	memset(b, 0xcc, sizeof(b));

	struct vmw_virt_iov iov[] = {
		{ va + 0x10, b[0], 8, 77 },                    /* good */
		{ va + 0x2010, b[1], 8, 77 },                  /* not present */
		{ va + 0xff0, b[2], 32, 77 },                  /* good, crosses pages */
		{ va + 0x1ff0, b[3], 32, 77 },                 /* crosses into not present */
		{ 0x1234, b[4], 0, 77 },                       /* empty */
		{ voutside + 8, b[5], 8, 77 },                 /* leaf outside RAM */
		{ 0x0000900000000000ull, b[6], 8, 77 },        /* non-canonical */
		{ v2m + 0x1ffff0, b[7], 16, 77 },              /* good, 2 MiB page */
	};
	assert_int_equal(vmw_xlat_readv(x, iov, ARRAY_SIZE(iov)), -EFAULT);
	assert_int_equal(iov[0].err, 0);
	assert_int_equal(iov[1].err, -EFAULT);
	assert_int_equal(iov[2].err, 0);
	assert_int_equal(iov[3].err, -EFAULT);
	assert_int_equal(iov[4].err, 0);
	assert_int_equal(iov[5].err, -EFAULT);
	assert_int_equal(iov[6].err, -EFAULT);
	assert_int_equal(iov[7].err, 0);
	assert_memory_equal(b[0], e->ram + 0x6010, 8);
	assert_memory_equal(b[2], e->ram + 0x6ff0, 16);
	assert_memory_equal(b[2] + 16, e->ram + 0x3000, 16);
	assert_memory_equal(b[7], e->ram + 0x5ffff0, 16);
	/* Not contract (buf is undefined on error) but intended: a piece that
	 * fails translation is not read at all, not even its good first page. */
	for (int i = 0; i < 32; i++)
		assert_int_equal(b[4][i], 0xcc);
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[3][i], 0xcc);

	/* All good: returns 0, errs reset. */
	struct vmw_virt_iov ok[] = {
		{ va, b[0], 8, 77 }, { va + 0x1000, b[1], 8, -5 },
	};
	assert_int_equal(vmw_xlat_readv(x, ok, 2), 0);
	assert_int_equal(ok[0].err, 0);
	assert_int_equal(ok[1].err, 0);
	assert_int_equal(vmw_xlat_readv(x, NULL, 0), 0);
	vmw_xlat_free(x);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* readv must agree with a loop of vmw_xlat_read, piece by piece, for batches
 * that fit on the stack, need the heap, and need several vmw_mem_readv. */
static void test_readv_many(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t base = 0x00007f2000000000ull;
	const size_t npages = 1024;
	const size_t counts[] = { 5, 60, 300, 3000 };
	struct vmw_xlat *x;

	/* 1024 pages, 1 in 4 missing, scattered over the data areas. */
	for (size_t i = 0; i < npages; i++)
		if (i % 4 != 3)
			map(e, root, 4, base + i * 4096, 0x600000 + ((i * 97) % 512) * 4096ull, 1);
	x = xnew(e, root, 4);

	for (size_t c = 0; c < ARRAY_SIZE(counts); c++) {
		size_t n = counts[c];
		struct vmw_virt_iov *iov = calloc(n, sizeof(*iov));
		uint8_t *bufs = calloc(n, 3 * 4096), *ref = calloc(1, 3 * 4096);
		int first = 0, r;

		assert_non_null(iov);
		assert_non_null(bufs);
		assert_non_null(ref);
		for (size_t i = 0; i < n; i++) {
			uint64_t page = rng() % (npages - 3);
			size_t len = rng() % 3 == 0 ? 1 + rng() % (2 * 4096) : 1 + rng() % 16;
			iov[i] = (struct vmw_virt_iov){ base + page * 4096 + rng() % 4096,
							bufs + i * 3 * 4096, len, 0 };
		}
		if (c & 1)
			vmw_xlat_flush(x);
		r = vmw_xlat_readv(x, iov, n);
		for (size_t i = 0; i < n; i++) {
			int want = vmw_xlat_read(x, iov[i].addr, ref, iov[i].len);
			assert_int_equal(iov[i].err, want);
			if (!want)
				assert_memory_equal(iov[i].buf, ref, iov[i].len);
			if (want && !first)
				first = want;
		}
		assert_int_equal(r, first);
		assert_int_not_equal(first, 0);  /* the mix has bad pieces */
		free(iov);
		free(bufs);
		free(ref);
	}
	vmw_xlat_free(x);
}

/* Pieces larger than one vmw_mem_readv batch (4096 physical pieces). */
static void test_readv_chunks(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t base = 0x00007f3000000000ull;
	const size_t np = 4100;                 /* mapped pages; page np is a hole */
	const size_t big = (np + 1) * 4096;
	uint8_t *b0 = malloc(8), *b1 = malloc(big), *b2 = malloc(8), *b3 = malloc(big);
	struct vmw_xlat *x;
	struct vmw_xlat_stats s0, s1;

	assert_non_null(b1);
	assert_non_null(b3);
	/* Consecutive pages never physically adjacent: one piece per page. */
	for (size_t i = 0; i < np; i++)
		map(e, root, 4, base + i * 4096, 0x600000 + ((i * 97) % 512) * 4096ull, 1);
	x = xnew(e, root, 4);
	memset(b1, 0xcc, big);
	memset(b3, 0xcc, big);

	struct vmw_virt_iov iov[] = {
		{ base + 8, b0, 8, 0 },                 /* good, first in the batch */
		{ base + 16, b1, big - 16, 0 },         /* 4100 good pages, then the hole */
		{ base + 4096 + 8, b2, 8, 0 },          /* good */
		{ base + 24, b3, np * 4096 - 24, 0 },   /* 4100 good pages */
	};
	s0 = xstats(x);
	assert_int_equal(vmw_xlat_readv(x, iov, ARRAY_SIZE(iov)), -EFAULT);
	s1 = xstats(x);
	assert_int_equal(iov[0].err, 0);
	assert_int_equal(iov[1].err, -EFAULT);
	assert_int_equal(iov[2].err, 0);
	assert_int_equal(iov[3].err, 0);
	assert_memory_equal(b0, e->ram + 0x600008, 8);
	assert_memory_equal(b2, e->ram + 0x600000 + 97 * 4096 + 8, 8);
	for (size_t i = 0; i < np; i++) {
		uint64_t pa = 0x600000 + ((i * 97) % 512) * 4096ull;
		size_t o = i ? i * 4096 - 24 : 0, n = i ? 4096 : 4096 - 24;
		assert_memory_equal(b3 + o, e->ram + pa + (i ? 0 : 24), n);
	}
	/* Piece 1 filled a batch with 4095 pieces, which were read; the rest of
	 * it was dropped when its last page failed (not contract, intended). */
	for (size_t o = 4095 * 4096 - 16; o < big - 16; o++)
		if (b1[o] != 0xcc)
			fail_msg("piece 1 byte %zu was read after its translation failed", o);
	/* 1 + 4095 + (dropped) + 1 + 4100 pieces: three batches. */
	assert_int_equal(s1.data_pieces - s0.data_pieces, 1 + 4095 + 1 + 4100);
	assert_int_equal(s1.data_calls - s0.data_calls, 3);

	/* The same through vmw_xlat_read. */
	memset(b3, 0xcc, big);
	assert_int_equal(vmw_xlat_read(x, base + 24, b3, np * 4096 - 24), 0);
	assert_memory_equal(b3 + 4099 * 4096 - 24, e->ram + 0x600000 + ((4099 * 97) % 512) * 4096ull, 4096);
	assert_int_equal(vmw_xlat_read(x, base + 24, b1, big - 24), -EFAULT);
	free(b0);
	free(b1);
	free(b2);
	free(b3);
	vmw_xlat_free(x);
}

static void test_cache_flush(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f0000001000ull;
	const uint64_t v2m = 0xffffc90000400000ull;
	struct vmw_xlat *x;
	uint64_t pte, pde2m, w;

	map(e, root, 4, va, 0x3000, 1);
	map(e, root, 4, v2m, 0x400000, 2);
	pte = slot(e, root, 4, va, 1);
	pde2m = slot(e, root, 4, v2m, 2);
	x = xnew(e, root, 4);

	assert_int_equal(v2p_ok(x, va + 8, 4096), 0x3008);
	wr64(e, pte, 0x5000 | P | RW);
	/* Stale: proves the translation came from the cache ... */
	assert_int_equal(v2p_ok(x, va + 8, 4096), 0x3008);
	assert_int_equal(vmw_xlat_read(x, va + 8, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x3008));
	/* ... and a flush drops it. */
	vmw_xlat_flush(x);
	assert_int_equal(v2p_ok(x, va + 8, 4096), 0x5008);
	assert_int_equal(vmw_xlat_read(x, va + 8, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x5008));

	/* A 2 MiB entry covers its page: another address in it is stale too. */
	assert_int_equal(v2p_ok(x, v2m + 0x10, 2 * MB), 0x400010);
	wr64(e, pde2m, 0x600000 | P | RW | PS);
	assert_int_equal(v2p_ok(x, v2m + 0x100000, 2 * MB), 0x500000);
	vmw_xlat_flush(x);
	assert_int_equal(v2p_ok(x, v2m + 0x100000, 2 * MB), 0x700000);

	/* The paging-structure cache is flushed too: move the PT. */
	{
		uint64_t pde = slot(e, root, 4, va, 2), npt = new_table(e);
		memcpy(e->ram + npt, e->ram + (rd64(e, pde) & ADDR), 4096);
		wr64(e, npt + ((va >> 12) & 511) * 8, 0x6000 | P | RW);
		map(e, root, 4, va + 0x1000, 0x7000, 1);
		assert_int_equal(v2p_ok(x, va + 0x1000, 4096), 0x7000);  /* caches the PT */
		wr64(e, pde, npt | P | RW);
		vmw_xlat_flush(x);
		assert_int_equal(v2p_ok(x, va, 4096), 0x6000);
	}

	/* Many flushes wrap the generation counter (12 bits): an entry cached at
	 * one generation must not come back when the counter returns to it. */
	pte = slot(e, root, 4, va, 1);
	for (int n = 4090; n <= 4100; n++) {
		wr64(e, pte, 0x3000 | P);
		vmw_xlat_flush(x);
		assert_int_equal(v2p_ok(x, va, 4096), 0x3000);   /* cached now */
		wr64(e, pte, 0x8000 | P);
		for (int i = 0; i < n; i++)
			vmw_xlat_flush(x);
		assert_int_equal(v2p_ok(x, va, 4096), 0x8000);
	}
	vmw_xlat_free(x);
}

static void test_direct_map(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);   /* empty: every walk fails */
	const uint64_t pob = 0xffff888000000000ull;
	struct vmw_xlat *x = xnew(e, root, 4);
	uint64_t w, m0;
	uint8_t *big;

	/* Unset by default. */
	v2p_fault(x, pob + 0x1234);

	vmw_xlat_set_direct_map(x, pob, RAM_SIZE);
	m0 = mem_reads(e);
	assert_int_equal(v2p_ok(x, pob + 0x1234, 2 * MB), 0x1234);
	assert_int_equal(v2p_ok(x, pob, 2 * MB), 0);
	assert_int_equal(v2p_ok(x, pob + RAM_SIZE - 1, 2 * MB), RAM_SIZE - 1);
	assert_int_equal(mem_reads(e) - m0, 0);
	assert_int_equal(vmw_xlat_read(x, pob + 0x3008, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x3008));
	/* Outside the window: a walk, which fails. */
	v2p_fault(x, pob + RAM_SIZE);
	v2p_fault(x, pob - 8);

	/* A 1 MiB read is one memory read. */
	big = malloc(MB);
	assert_non_null(big);
	m0 = mem_reads(e);
	assert_int_equal(vmw_xlat_read(x, pob + 0x345678, big, MB), 0);
	assert_memory_equal(big, e->ram + 0x345678, MB);
	assert_int_equal(mem_reads(e) - m0, 1);
	free(big);

	/* A window larger than RAM: translates, reads outside RAM fail. */
	vmw_xlat_set_direct_map(x, pob, 4 * GB);
	assert_int_equal(v2p_ok(x, pob + 12 * MB, GB), 12 * MB);
	assert_int_equal(vmw_xlat_read(x, pob + 12 * MB, &w, 8), -EFAULT);
	assert_int_equal(vmw_xlat_read(x, pob + RAM_SIZE - 4, &w, 8), -EFAULT);
	assert_int_equal(vmw_xlat_read(x, pob + RAM_SIZE - 8, &w, 8), 0);

	/* span 0 turns it off. */
	vmw_xlat_set_direct_map(x, pob, 0);
	v2p_fault(x, pob + 0x1234);
	vmw_xlat_free(x);
}

static void test_kernel_image(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t kva = VMW_KERNEL_MAP_BASE + 0x100000;
	struct vmw_xlat *x = xnew(e, root, 4);
	uint64_t w;

	v2p_fault(x, kva);  /* unset by default */
	vmw_xlat_set_kernel_image(x, 0x200000);
	assert_int_equal(v2p_ok(x, kva + 0x10, 2 * MB), 0x300010);
	assert_int_equal(v2p_ok(x, VMW_KERNEL_MAP_BASE, 2 * MB), 0x200000);
	assert_int_equal(v2p_ok(x, VMW_KERNEL_MAP_BASE + VMW_KERNEL_MAP_SIZE - 1, 2 * MB),
			 0x200000 + VMW_KERNEL_MAP_SIZE - 1);
	assert_int_equal(vmw_xlat_read(x, kva + 0x18, &w, 8), 0);
	assert_int_equal(le64toh(w), pat(0x300018));
	read_ok(e, x, kva + 0xff0, 0x300ff0, 0x3000);
	/* Module space and below the image: walks, which fail here. */
	v2p_fault(x, VMW_KERNEL_MAP_BASE + VMW_KERNEL_MAP_SIZE);
	v2p_fault(x, VMW_KERNEL_MAP_BASE - 8);

	/* phys_base not 2 MiB aligned: page size falls back to 4 KiB. */
	vmw_xlat_set_kernel_image(x, 0x1000);
	assert_int_equal(v2p_ok(x, kva + 0x10, 4096), 0x101010);
	vmw_xlat_free(x);
}

static void test_cr3_flags(void **state)
{
	struct env *e = *state;
	uint64_t root = new_table(e);
	const uint64_t va = 0x00007f0000001000ull;
	const uint64_t flags[] = { 0xfff, 0x018, 0x123, (1ull << 63) | 0x801, 0xfff0000000000fffull };
	uint64_t w;

	map(e, root, 4, va, 0x3000, 1);
	for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
		struct vmw_xlat *x = xnew(e, root | flags[i], 4);
		assert_int_equal(vmw_xlat_root(x), root);
		assert_int_equal(v2p_ok(x, va + 0x18, 4096), 0x3018);
		assert_int_equal(vmw_xlat_read(x, va + 0x18, &w, 8), 0);
		assert_int_equal(le64toh(w), pat(0x3018));
		vmw_xlat_free(x);
	}
}

/* NX, protection keys, software/AVL bits and (for large pages) PAT do not
 * leak into addresses. */
static void test_ignored_bits(void **state)
{
	struct env *e = *state;
	const uint64_t hi = NX | (0xfull << 59) | (0x7full << 52) | (0x7ull << 9) | (1ull << 8) |
			    (1ull << 6) | (1ull << 3) | (1ull << 4);
	const uint64_t v4k = 0x00007f0000001000ull, v2m = 0xffffc90000400000ull,
		       v1g = 0x00007f8000000000ull;
	const uint64_t vas[] = { v4k, v2m, v1g };
	const int leaf[] = { 1, 2, 3 };
	uint64_t root = new_table(e);
	struct vmw_xlat *x;

	map(e, root, 4, v4k, 0x3000, 1);
	map(e, root, 4, v2m, 0x400000, 2);
	map(e, root, 4, v1g, 0, 3);
	for (size_t i = 0; i < ARRAY_SIZE(vas); i++)
		for (int l = 4; l >= leaf[i]; l--) {
			uint64_t sp = slot(e, root, 4, vas[i], l);
			/* PAT: bit 12 in a large-page leaf, bit 7 in a PTE */
			uint64_t add = hi | (l == leaf[i] ? (l > 1 ? 1ull << 12 : PS) : 0);
			wr64(e, sp, rd64(e, sp) | add);
		}
	x = xnew(e, root, 4);
	assert_int_equal(v2p_ok(x, v4k + 0x20, 4096), 0x3020);
	assert_int_equal(v2p_ok(x, v2m + 0x20, 2 * MB), 0x400020);
	assert_int_equal(v2p_ok(x, v1g + 0x20, GB), 0x20);
	read_ok(e, x, v4k + 0x20, 0x3020, 8);
	read_ok(e, x, v2m + 0x1000, 0x401000, 8);
	read_ok(e, x, v1g + 0x5000, 0x5000, 8);
	vmw_xlat_free(x);
}

static void test_clone(void **state)
{
	struct env *e = *state;
	uint64_t kroot = new_table(e), uroot = new_table(e);
	const uint64_t va = 0x00007f0000001000ull, pob = 0xffff888000000000ull;
	struct vmw_xlat *k, *u, *u5;
	struct vmw_xlat_stats st;

	map(e, kroot, 4, va, 0x3000, 1);
	map(e, uroot, 4, va, 0x5000, 1);
	k = xnew(e, kroot, 4);
	vmw_xlat_set_direct_map(k, pob, RAM_SIZE);
	vmw_xlat_set_kernel_image(k, 0x200000);
	assert_int_equal(v2p_ok(k, va, 4096), 0x3000);

	assert_int_equal(vmw_xlat_clone(k, uroot | 0x5, &u), 0);
	assert_int_equal(vmw_xlat_root(u), uroot);
	assert_int_equal(vmw_xlat_levels(u), 4);
	assert_ptr_equal(vmw_xlat_mem(u), e->mem);
	vmw_xlat_stats(u, &st);
	assert_int_equal(st.translations, 0);
	assert_int_equal(v2p_ok(u, va, 4096), 0x5000);       /* its own root, own cache */
	assert_int_equal(v2p_ok(u, pob + 0x10, 0), 0x10);     /* fast paths shared */
	assert_int_equal(v2p_ok(u, VMW_KERNEL_MAP_BASE + 0x10, 0), 0x200010);
	assert_int_equal(v2p_ok(k, va, 4096), 0x3000);       /* parent unaffected */

	/* Fast paths are copied, not linked. */
	vmw_xlat_set_direct_map(u, 0, 0);
	assert_int_equal(v2p_ok(k, pob + 0x10, 0), 0x10);
	v2p_fault(u, pob + 0x10);
	vmw_xlat_free(u);

	/* A clone of a 5-level space is 5-level. */
	{
		struct vmw_xlat *k5 = xnew(e, kroot, 5);
		assert_int_equal(vmw_xlat_clone(k5, uroot, &u5), 0);
		assert_int_equal(vmw_xlat_levels(u5), 5);
		vmw_xlat_free(u5);
		vmw_xlat_free(k5);
	}
	vmw_xlat_free(k);
}

/* Garbage page tables: no crash, every walk ends after at most `levels`
 * reads, results are either -EFAULT or an address. */
/* RAM of random page-table entries; 3 in 4 point inside RAM, so walks get deep. */
static void fill_hostile(struct env *e)
{
	for (uint64_t pa = 0; pa < RAM_SIZE; pa += 8) {
		uint64_t v = rng();
		if (v & 3)
			v = (v & ~0x000ffffffffff000ull) | (v & (RAM_SIZE - 1) & ~0xfffull);
		wr64(e, pa, v);
	}
}

static void test_hostile(void **state)
{
	struct env *e = *state;

	fill_hostile(e);
	for (int levels = 4; levels <= 5; levels++) {
		struct vmw_xlat *x = xnew(e, rng() & (RAM_SIZE - 1), levels);
		uint64_t deep = 0, ok = 0;
		uint8_t buf[3 * 4096];

		for (int i = 0; i < 20000; i++) {
			uint64_t va = rng(), pa, ps, m0;
			struct vmw_xlat_stats s0, s1;
			int r;

			if (i % 3)   /* mostly canonical */
				va = (uint64_t)((int64_t)(va << (levels == 5 ? 7 : 16)) >> (levels == 5 ? 7 : 16));
			if (i % 5 == 0)
				vmw_xlat_flush(x);
			m0 = mem_reads(e);
			vmw_xlat_stats(x, &s0);
			r = vmw_xlat_v2p(x, va, &pa, &ps);
			vmw_xlat_stats(x, &s1);
			assert_true(mem_reads(e) - m0 <= (uint64_t)levels);
			assert_true(s1.entry_reads - s0.entry_reads <= (uint64_t)levels);
			assert_true(r == 0 || r == -EFAULT);
			if (r == 0) {
				ok++;
				assert_true(ps == 4096 || ps == 2 * MB || ps == GB);
				assert_true(pa <= 0x000fffffffffffffull);
			}
			if (s1.entry_reads - s0.entry_reads == (uint64_t)levels)
				deep++;
			r = vmw_xlat_read(x, va, buf, 1 + rng() % sizeof(buf));
			assert_true(r == 0 || r == -EFAULT);
		}
		assert_true(deep > 0);
		assert_true(ok > 0);
		vmw_xlat_free(x);
	}

	/* A self-referencing root (recursive mapping): bounded, no loop. */
	{
		uint64_t root = TABLES_START, m0, pa;
		struct vmw_xlat *x;

		memset(e->ram + root, 0, 4096);
		wr64(e, root, root | P | RW);
		x = xnew(e, root, 4);
		m0 = mem_reads(e);
		assert_int_equal(vmw_xlat_v2p(x, 0x10, &pa, NULL), 0);
		assert_int_equal(pa, root + 0x10);
		assert_int_equal(mem_reads(e) - m0, 4);
		vmw_xlat_free(x);
	}
}

/* vmw_xlat_walk_many agrees with one v2p per item, on hostile tables, across
 * chunks, 4 and 5 levels, with non-canonical and unmapped addresses. */
static void test_walk_many(void **state)
{
	struct env *e = *state;
	enum { N = 3000 };
	struct vmw_xlat_walk *w = calloc(N, sizeof(*w));

	assert_non_null(w);
	fill_hostile(e);
	for (int levels = 4; levels <= 5; levels++) {
		struct vmw_xlat *x = xnew(e, 0, levels);
		size_t ok = 0, bad = 0;

		for (size_t i = 0; i < N; i++) {
			w[i].root = (rng() & (RAM_SIZE - 1)) | (i % 7 == 0 ? 0x18 : 0);  /* some with CR3 flags */
			w[i].va = rng();
			if (i % 3)
				w[i].va = (uint64_t)((int64_t)(w[i].va << (levels == 5 ? 7 : 16)) >> (levels == 5 ? 7 : 16));
			w[i].err = 12345;
		}
		vmw_xlat_walk_many(x, w, N);
		for (size_t i = 0; i < N; i++) {
			struct vmw_xlat *one = xnew(e, w[i].root, levels);
			uint64_t pa = 0, ps = 0;
			int r = vmw_xlat_v2p(one, w[i].va, &pa, &ps);

			assert_int_equal(w[i].err, r);
			if (r == 0) {
				ok++;
				assert_int_equal(w[i].phys, pa);
				assert_int_equal(w[i].avail, ps - (w[i].va & (ps - 1)));
			} else {
				bad++;
			}
			vmw_xlat_free(one);
		}
		assert_true(ok > 20 && bad > 100);
		vmw_xlat_free(x);
	}
	/* A real mapping of each page size. */
	{
		uint64_t root = TABLES_START;
		struct vmw_xlat *x;

		e->next = TABLES_START;
		new_table(e);
		map(e, root, 4, 0x400000, 0x3000, 1);
		map(e, root, 4, 0x40000000ull * 3, 0, 3);
		map(e, root, 4, 0x600000, 2 * MB, 2);
		x = xnew(e, 0, 4);
		struct vmw_xlat_walk v[4] = {
			{ root, 0x400123, 0, 0, 0 }, { root, 0xc0000000ull + 5, 0, 0, 0 },
			{ root, 0x600000 + 7, 0, 0, 0 }, { root, 0x800000, 0, 0, 0 },
		};
		vmw_xlat_walk_many(x, v, 4);
		assert_int_equal(v[0].err, 0);
		assert_int_equal(v[0].phys, 0x3123);
		assert_int_equal(v[0].avail, 4096 - 0x123);
		assert_int_equal(v[1].err, 0);
		assert_int_equal(v[1].phys, 5);
		assert_int_equal(v[1].avail, GB - 5);
		assert_int_equal(v[2].err, 0);
		assert_int_equal(v[2].phys, 2 * MB + 7);
		assert_int_equal(v[2].avail, 2 * MB - 7);
		assert_int_equal(v[3].err, -EFAULT);
		vmw_xlat_free(x);
	}
	free(w);
}

/*
 * With a process memory source (process_vm_readv, here on ourselves) a readv
 * of many pieces across pages is one syscall, and a read crossing pages too.
 * Needs mem_internal.h to build such a source over our own buffer.
 */
static void test_remote_one_syscall(void **state)
{
	struct env *e = *state;
	struct vmw_mem *m = NULL;
	struct vmw_mem_stats s0, s1;
	struct vmw_xlat *x;
	uint64_t root, w;
	const uint64_t va = 0x00007f0000010000ull;
	uint8_t b[10][24];
	struct vmw_virt_iov iov[10];

	assert_int_equal(vmw_mem_new(&m), 0);
	m->pid = getpid();
	assert_int_equal(vmw_mem_add_seg(m, 0, RAM_SIZE, NULL, (uint64_t)(uintptr_t)e->ram), 0);
	assert_int_equal(vmw_mem_finish(m), 0);
	if (vmw_mem_read(m, 0, &w, 8) < 0) {
		vmw_mem_close(m);
		skip();  /* process_vm_readv not allowed here (seccomp) */
	}
	root = new_table(e);
	for (int i = 0; i < 4; i++)
		map(e, root, 4, va + i * 0x1000ull, 0x600000 + (3 - i) * 0x1000ull, 1);
	assert_int_equal(vmw_xlat_new(m, root, 4, &x), 0);
	for (int i = 0; i < 4; i++)   /* warm the TLB */
		assert_int_equal(v2p_ok(x, va + i * 0x1000ull, 4096), 0x600000 + (3 - i) * 0x1000ull);

	for (int i = 0; i < 10; i++)
		iov[i] = (struct vmw_virt_iov){ va + 0xff0 + i * 0x4d3ull % 0x2000, b[i], sizeof(b[i]), 0 };
	vmw_mem_stats(m, &s0);
	assert_int_equal(vmw_xlat_readv(x, iov, 10), 0);
	vmw_mem_stats(m, &s1);
	assert_int_equal(s1.syscalls - s0.syscalls, 1);
	assert_int_equal(s1.reads - s0.reads, 1);
	for (int i = 0; i < 10; i++) {
		uint8_t want[24];
		for (int j = 0; j < 24; j++) {
			uint64_t a = iov[i].addr + j, pg = (a - va) >> 12;
			want[j] = e->ram[0x600000 + (3 - pg) * 0x1000 + (a & 0xfff)];
		}
		assert_memory_equal(b[i], want, 24);
	}

	/* A read across 4 pages. */
	{
		uint8_t big[0x2100];
		vmw_mem_stats(m, &s0);
		assert_int_equal(vmw_xlat_read(x, va + 0xf80, big, sizeof(big)), 0);
		vmw_mem_stats(m, &s1);
		assert_int_equal(s1.syscalls - s0.syscalls, 1);
		assert_memory_equal(big, e->ram + 0x603f80, 0x80);
		assert_memory_equal(big + 0x80, e->ram + 0x602000, 0x1000);
		assert_memory_equal(big + 0x1080, e->ram + 0x601000, 0x1000);
		assert_memory_equal(big + 0x2080, e->ram + 0x600000, 0x80);
	}
	vmw_xlat_free(x);
	vmw_mem_close(m);
}

/*
 * A /proc/PID/mem source (here /proc/self/mem) reads one remote range per
 * preadv, its batch holding one range at a time: pieces that join (fields of
 * one structure) are one call whatever order they come in, separate ranges
 * one call each, and a range of more pieces than the batch has room for is
 * cut into a few calls, every byte where it belongs.
 */
static void test_proc_mem_ranges(void **state)
{
	struct env *e = *state;
	struct vmw_mem *m = NULL;
	struct vmw_mem_stats s0, s1;
	enum { NSMALL = 25, NMANY = 1000 };
	struct vmw_phys_iov iov[NMANY];
	static uint8_t b[NMANY][8];
	int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	uint64_t w;

	if (fd < 0)
		skip();
	for (size_t i = 0; i < RAM_SIZE; i += 4096)   /* something to tell bytes apart */
		for (size_t j = 0; j < 4096; j += 8)
			wr64(e, i + j, (i + j) * 0x9e3779b97f4a7c15ull);
	assert_int_equal(vmw_mem_new(&m), 0);
	m->pid = getpid();
	m->proc_mem_fd = fd;
	assert_int_equal(vmw_mem_add_seg(m, 0, RAM_SIZE, NULL, (uint64_t)(uintptr_t)e->ram), 0);
	assert_int_equal(vmw_mem_finish(m), 0);
	if (vmw_mem_read(m, 0, &w, 8) < 0) {
		vmw_mem_close(m);
		skip();
	}

	/* Three ranges (10, 10 and 5 pieces 100 bytes apart), interleaved. */
	for (int i = 0; i < NSMALL; i++) {
		uint64_t base = i % 3 == 0 ? 0x100000 : i % 3 == 1 ? 0x300000 : 0x500000;
		iov[i] = (struct vmw_phys_iov){ base + 0x40 + (uint64_t)(i / 3) * 100, b[i], 8, -1 };
	}
	vmw_mem_stats(m, &s0);
	assert_int_equal(vmw_mem_readv(m, iov, NSMALL), 0);
	vmw_mem_stats(m, &s1);
	assert_int_equal(s1.syscalls - s0.syscalls, 3);
	for (int i = 0; i < NSMALL; i++) {
		assert_int_equal(iov[i].err, 0);
		assert_memory_equal(b[i], e->ram + iov[i].addr, 8);
	}

	/* One range of 1000 pieces 16 bytes apart, last first. */
	memset(b, 0, sizeof(b));
	for (int i = 0; i < NMANY; i++)
		iov[i] = (struct vmw_phys_iov){ 0x200008 + (uint64_t)(NMANY - 1 - i) * 16, b[i], 8, -1 };
	vmw_mem_stats(m, &s0);
	assert_int_equal(vmw_mem_readv(m, iov, NMANY), 0);
	vmw_mem_stats(m, &s1);
	assert_true(s1.syscalls - s0.syscalls > 1);
	assert_true(s1.syscalls - s0.syscalls <= 2 * NMANY / 128 + 1);
	assert_int_equal(s1.bytes_read - s0.bytes_read, 8 * NMANY);
	for (int i = 0; i < NMANY; i++) {
		assert_int_equal(iov[i].err, 0);
		assert_memory_equal(b[i], e->ram + iov[i].addr, 8);
	}
	vmw_mem_close(m);   /* closes fd */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_new_invalid),
		T(test_4k),
		T(test_read_costs),
		T(test_2m),
		T(test_1g),
		T(test_5level),
		T(test_noncanonical_4level),
		T(test_not_present),
		T(test_outside_ram),
		T(test_read_cross),
		T(test_readv_mixed),
		T(test_readv_many),
		T(test_readv_chunks),
		T(test_cache_flush),
		T(test_direct_map),
		T(test_kernel_image),
		T(test_cr3_flags),
		T(test_ignored_bits),
		T(test_clone),
		T(test_hostile),
		T(test_remote_one_syscall),
		T(test_proc_mem_ranges),
		T(test_walk_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
