/* SPDX-License-Identifier: MIT */
/*
 * xlat_bench.c - micro-benchmark of src/xlat over a synthetic page table.
 *
 * Not built by default. Build against a configured build dir:
 *   ninja -C build-xlat && cc -O2 -D_GNU_SOURCE -Isrc bench/xlat_bench.c \
 *       build-xlat/libvmwatch.a $(pkg-config --libs libbpf jansson) -o /tmp/xlat_bench
 *   /tmp/xlat_bench
 *
 * Guest RAM is a 64 MiB buffer. 16384 4 KiB pages (64 MiB of virtual space)
 * are mapped onto random RAM pages, in a 4-level and a 5-level address space.
 * Each line gives ns per operation (best of 5 runs). The "remote" lines use
 * a process_vm_readv source over our own buffer, the cost model of a QEMU
 * with private (non-shared) RAM.
 */
#include "xlat/xlat.h"
#include "mem/mem_internal.h"  /* remote source over our own buffer */

#include <endian.h>
#include <errno.h>
#include <string.h>

#define RAM   (64ull << 20)
#define NPAGES 16384u
#define VBASE 0x00007f0000000000ull
#define POB   0xffff888000000000ull

static uint8_t *ram;
static uint64_t next_table = 32ull << 20;   /* tables live in 32..40 MiB */

static uint64_t rng_s = 88172645463325252ull;
static uint64_t rng(void)
{
	rng_s ^= rng_s << 13;
	rng_s ^= rng_s >> 7;
	rng_s ^= rng_s << 17;
	return rng_s;
}

static uint64_t rd(uint64_t pa) { uint64_t v; memcpy(&v, ram + pa, 8); return le64toh(v); }
static void wr(uint64_t pa, uint64_t v) { v = htole64(v); memcpy(ram + pa, &v, 8); }

static uint64_t new_table(void)
{
	uint64_t pa = next_table;
	next_table += 4096;
	memset(ram + pa, 0, 4096);
	return pa;
}

static void map4k(uint64_t root, int levels, uint64_t va, uint64_t pa)
{
	uint64_t table = root;
	for (int l = levels; l > 1; l--) {
		uint64_t sp = table + ((va >> (12 + 9 * (l - 1))) & 511) * 8, e = rd(sp);
		if (!(e & 1)) {
			e = new_table() | 0x67;
			wr(sp, e);
		}
		table = e & 0x000ffffffffff000ull;
	}
	wr(table + ((va >> 12) & 511) * 8, pa | 0x8000000000000067ull);
}

static volatile uint64_t sink;

#define BEST_OF 5
typedef void (*bench_fn)(struct vmw_xlat *x, size_t iters);

static double run(const char *name, struct vmw_xlat *x, bench_fn fn, size_t iters)
{
	double best = 1e30;
	for (int r = 0; r < BEST_OF; r++) {
		uint64_t t0 = vmw_now_ns();
		fn(x, iters);
		double ns = (double)(vmw_now_ns() - t0) / (double)iters;
		if (ns < best)
			best = ns;
	}
	printf("%-58s %9.1f ns  %8.2f M/s\n", name, best, 1e3 / best);
	return best;
}

static uint64_t *addrs;        /* random addresses in the mapped region */
#define NADDR (1u << 20)

static void b_cold(struct vmw_xlat *x, size_t n)
{
	uint64_t pa, s = 0;
	for (size_t i = 0; i < n; i++) {
		vmw_xlat_flush(x);
		if (vmw_xlat_v2p(x, addrs[i & (NADDR - 1)], &pa, NULL) == 0)
			s += pa;
	}
	sink = s;
}

static void b_hot(struct vmw_xlat *x, size_t n)   /* 64-page working set */
{
	uint64_t pa, s = 0;
	for (size_t i = 0; i < n; i++)
		if (vmw_xlat_v2p(x, VBASE + (addrs[i & (NADDR - 1)] & 0x3ffff), &pa, NULL) == 0)
			s += pa;
	sink = s;
}

static void b_seq(struct vmw_xlat *x, size_t n)   /* every page new, PT cached */
{
	uint64_t pa, s = 0;
	for (size_t i = 0; i < n; i++)
		if (vmw_xlat_v2p(x, VBASE + (i % NPAGES) * 4096 + 8, &pa, NULL) == 0)
			s += pa;
	sink = s;
}

static void b_random_warm(struct vmw_xlat *x, size_t n)  /* 64 MiB random, no flush */
{
	uint64_t pa, s = 0;
	for (size_t i = 0; i < n; i++)
		if (vmw_xlat_v2p(x, addrs[i & (NADDR - 1)], &pa, NULL) == 0)
			s += pa;
	sink = s;
}

static void b_direct(struct vmw_xlat *x, size_t n)
{
	uint64_t pa, s = 0;
	for (size_t i = 0; i < n; i++)
		if (vmw_xlat_v2p(x, POB + (addrs[i & (NADDR - 1)] & (RAM - 1)), &pa, NULL) == 0)
			s += pa;
	sink = s;
}

static void b_read8_hot(struct vmw_xlat *x, size_t n)
{
	uint64_t v, s = 0;
	for (size_t i = 0; i < n; i++)
		if (vmw_xlat_read(x, VBASE + (addrs[i & (NADDR - 1)] & 0x3fff8), &v, 8) == 0)
			s += v;
	sink = s;
}

static void b_mem_read8(struct vmw_xlat *x, size_t n)   /* baseline: no translation */
{
	uint64_t v, pa[64], s = 0;
	/* The physical pages behind b_read8_hot's 64 virtual pages. */
	for (int j = 0; j < 64; j++)
		if (vmw_xlat_v2p(x, VBASE + j * 4096ull, &pa[j], NULL) < 0)
			abort();
	for (size_t i = 0; i < n; i++) {
		uint64_t a = addrs[i & (NADDR - 1)];
		if (vmw_mem_read(vmw_xlat_mem(x), pa[(a >> 12) & 63] + (a & 0xff8), &v, 8) == 0)
			s += v;
	}
	sink = s;
}

static void b_read8x64_hot(struct vmw_xlat *x, size_t n)   /* per 64 reads */
{
	uint64_t v, s = 0;
	for (size_t i = 0; i < n; i++)
		for (int j = 0; j < 64; j++)
			if (vmw_xlat_read(x, VBASE + (addrs[(i * 64 + j) & (NADDR - 1)] & 0x3fff8), &v, 8) == 0)
				s += v;
	sink = s;
}

static void b_readv64(struct vmw_xlat *x, size_t n)     /* per call of 64 pieces */
{
	struct vmw_virt_iov iov[64];
	uint64_t v[64], s = 0;
	for (size_t i = 0; i < n; i++) {
		for (int j = 0; j < 64; j++)
			iov[j] = (struct vmw_virt_iov){ VBASE + (addrs[(i * 64 + j) & (NADDR - 1)] & 0x3fff8),
							&v[j], 8, 0 };
		if (vmw_xlat_readv(x, iov, 64) == 0)
			s += v[0];
	}
	sink = s;
}

static void b_clone(struct vmw_xlat *x, size_t n)   /* clone + 1 cold read + free */
{
	uint64_t v, s = 0;
	for (size_t i = 0; i < n; i++) {
		struct vmw_xlat *c;
		if (vmw_xlat_clone(x, vmw_xlat_root(x), &c) < 0)
			abort();
		if (vmw_xlat_read(c, addrs[i & (NADDR - 1)], &v, 8) == 0)
			s += v;
		vmw_xlat_free(c);
	}
	sink = s;
}

static void b_clone_only(struct vmw_xlat *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct vmw_xlat *c;
		if (vmw_xlat_clone(x, vmw_xlat_root(x), &c) < 0)
			abort();
		sink = (uintptr_t)c;
		vmw_xlat_free(c);
	}
}

static void b_cold_read8(struct vmw_xlat *x, size_t n)
{
	uint64_t v, s = 0;
	for (size_t i = 0; i < n; i++) {
		vmw_xlat_flush(x);
		if (vmw_xlat_read(x, addrs[i & (NADDR - 1)], &v, 8) == 0)
			s += v;
	}
	sink = s;
}

static void b_readv64_flush(struct vmw_xlat *x, size_t n)
{
	struct vmw_virt_iov iov[64];
	uint64_t v[64], s = 0;
	for (size_t i = 0; i < n; i++) {
		vmw_xlat_flush(x);
		for (int j = 0; j < 64; j++)
			iov[j] = (struct vmw_virt_iov){ VBASE + (addrs[(i * 64 + j) & (NADDR - 1)] & 0x3fff8),
							&v[j], 8, 0 };
		if (vmw_xlat_readv(x, iov, 64) == 0)
			s += v[0];
	}
	sink = s;
}

int main(void)
{
	struct vmw_mem *mem, *rmem;
	struct vmw_xlat *x4, *x5, *r4;
	uint64_t root4, root5, pa;
	uint32_t *perm;

	ram = aligned_alloc(4096, RAM);
	addrs = malloc(NADDR * sizeof(*addrs));
	perm = malloc(8192 * sizeof(*perm));
	if (!ram || !addrs || !perm)
		return 1;
	memset(ram, 0x5a, RAM);
	/* Data pages: a random permutation of the 8192 pages in 0..32 MiB. */
	for (uint32_t i = 0; i < 8192; i++)
		perm[i] = i;
	for (uint32_t i = 8191; i > 0; i--) {
		uint32_t j = rng() % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	root4 = new_table();
	root5 = new_table();
	for (uint32_t i = 0; i < NPAGES; i++) {
		map4k(root4, 4, VBASE + i * 4096ull, perm[i % 8192] * 4096ull);
		map4k(root5, 5, VBASE + i * 4096ull, perm[i % 8192] * 4096ull);
	}
	for (uint32_t i = 0; i < NADDR; i++)
		addrs[i] = VBASE + (rng() % NPAGES) * 4096 + (rng() & 0xff8);

	if (vmw_mem_open_buffer(ram, RAM, &mem) < 0 ||
	    vmw_xlat_new(mem, root4, 4, &x4) < 0 || vmw_xlat_new(mem, root5, 5, &x5) < 0)
		return 1;
	vmw_xlat_set_direct_map(x4, POB, RAM);

	printf("xlat micro-benchmark: %u pages mapped, %llu MiB guest RAM (local buffer)\n",
	       NPAGES, (unsigned long long)(RAM >> 20));
	run("v2p cold walk, 4-level (flush before each)", x4, b_cold, 2000000);
	run("v2p cold walk, 5-level (flush before each)", x5, b_cold, 2000000);
	run("v2p TLB hit (64-page working set)", x4, b_hot, 20000000);
	run("v2p TLB miss, PT cached (sequential new pages)", x4, b_seq, 20000000);
	run("v2p random over 64 MiB, caches warm (mostly TLB miss)", x4, b_random_warm, 10000000);
	run("v2p direct-map fast path", x4, b_direct, 20000000);
	run("vmw_mem_read 8 B, same pages (baseline, no translation)", x4, b_mem_read8, 20000000);
	run("xlat_read 8 B, TLB hit", x4, b_read8_hot, 20000000);
	run("xlat_read 8 B, cold walk", x4, b_cold_read8, 2000000);
	run("xlat_readv 64 x 8 B, TLB hits (per call)", x4, b_readv64, 500000);
	run("xlat_readv 64 x 8 B, flush each call (per call)", x4, b_readv64_flush, 200000);
	run("64 x xlat_read 8 B, TLB hits (per 64)", x4, b_read8x64_hot, 500000);
	run("clone + free", x4, b_clone_only, 5000000);
	run("clone + 1 cold 8 B read + free", x4, b_clone, 2000000);

	/* A process_vm_readv source over our own buffer. */
	if (vmw_mem_new(&rmem) < 0)
		return 1;
	rmem->pid = getpid();
	if (vmw_mem_add_seg(rmem, 0, RAM, NULL, (uint64_t)(uintptr_t)ram) < 0 || vmw_mem_finish(rmem) < 0 ||
	    vmw_mem_read(rmem, 0, &pa, 8) < 0) {
		printf("(remote source unavailable: process_vm_readv not permitted)\n");
		return 0;
	}
	if (vmw_xlat_new(rmem, root4, 4, &r4) < 0)
		return 1;
	printf("\nremote source (process_vm_readv on ourselves, as for QEMU with private RAM)\n");
	run("vmw_mem_read 8 B, same pages (1 syscall)", r4, b_mem_read8, 500000);
	run("xlat_read 8 B, TLB hit (1 syscall)", r4, b_read8_hot, 500000);
	run("xlat_read 8 B, cold walk (4 + 1 syscalls)", r4, b_cold_read8, 200000);
	run("v2p TLB miss, PT cached (1 syscall)", r4, b_seq, 500000);
	run("xlat_readv 64 x 8 B, TLB hits (1 syscall, per call)", r4, b_readv64, 100000);
	run("64 x xlat_read 8 B, TLB hits (64 syscalls, per 64)", r4, b_read8x64_hot, 20000);
	vmw_xlat_free(r4);
	vmw_mem_close(rmem);
	vmw_xlat_free(x4);
	vmw_xlat_free(x5);
	vmw_mem_close(mem);
	free(perm);
	free(addrs);
	free(ram);
	return 0;
}
