/* SPDX-License-Identifier: MIT */
/*
 * mem_populated.c - which guest pages are populated (vmw_mem_populated in
 * mem.h), found without touching them: the data extents of the mapped file
 * (SEEK_DATA/SEEK_HOLE) for mapped sources, /proc/PID/pagemap for process
 * sources.
 *
 * Why not mincore() on our mapping: for a file it reports whether a page is
 * in the page cache. A tmpfs page that the host swapped out, or any block of
 * a dump on disk that is not cached, would look empty, and a scan would skip
 * it. SEEK_DATA asks the filesystem what is allocated: tmpfs (shmem) counts
 * swap entries as data, disk filesystems their blocks. Neither call faults
 * anything in.
 */
#include "mem/mem_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096ull

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ull << 63)
#define PM_SWAP    (1ull << 62)
#define PAGEMAP_BATCH 8192   /* entries per pread: 64 KiB, 32 MiB of address space */

/* Set the vec bytes of the guest pages that [lo, hi) ∩ [clip_lo, clip_hi)
 * touches; vec[0] is the page at base. */
static void mark(uint8_t *vec, uint64_t base, uint64_t lo, uint64_t hi, uint64_t clip_lo,
		 uint64_t clip_hi)
{
	uint64_t first, last;

	lo = MAX(lo, clip_lo);
	hi = MIN(hi, clip_hi);
	if (lo >= hi)
		return;
	first = (lo - base) / PAGE;
	last = (hi - 1 - base) / PAGE;
	memset(vec + first, 1, (size_t)(last - first + 1));
}

/*
 * The data extent of the mapped file that holds off, or else the first one
 * after it: [*lo, *hi) with *hi > off. 1 if found, 0 if the file holds no data
 * from off on, a negative errno if the filesystem cannot tell. The last extent
 * found is remembered: a scan in order asks for each extent once (SEEK_HOLE
 * on tmpfs walks the whole extent, so asking again per window would cost
 * windows x extent). Holes are not remembered (SEEK_DATA across one is
 * cheap), so a remembered extent can only be stale in the safe direction (a
 * hole punched since then still counts as data).
 */
static int file_data(struct vmw_mem *mem, uint64_t off, uint64_t *lo, uint64_t *hi)
{
	off_t d, h;

	if (mem->ext_lo <= off && off < mem->ext_hi) {
		*lo = mem->ext_lo;
		*hi = mem->ext_hi;
		return 1;
	}
	if (off > (uint64_t)INT64_MAX)
		return 0;
	d = lseek(mem->map_fd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO ? 0 : -errno;
	if ((uint64_t)d == mem->ext_lo && mem->ext_hi > mem->ext_lo) {
		/* the remembered extent again, seen from a window in the hole before it */
		*lo = mem->ext_lo;
		*hi = mem->ext_hi;
		return 1;
	}
	h = lseek(mem->map_fd, d, SEEK_HOLE);
	if (h < 0)
		return -errno;
	if (h <= d || (uint64_t)h <= off)
		return -EIO;   /* the file changed under us */
	mem->ext_lo = *lo = (uint64_t)d;
	mem->ext_hi = *hi = (uint64_t)h;
	return 1;
}

/* Guest [g0, g1) inside local segment s. */
static void local_populated(struct vmw_mem *mem, const struct vmw_mem_seg *s, uint64_t g0,
			    uint64_t g1, uint8_t *vec, uint64_t base)
{
	uintptr_t map = (uintptr_t)mem->map, loc = (uintptr_t)s->local;
	uint64_t foff, fend;

	if (mem->map_fd < 0 || loc < map || loc - map > mem->map_len ||
	    s->len > mem->map_len - (loc - map)) {
		mark(vec, base, g0, g1, g0, g1);   /* a buffer, or a map we cannot ask about */
		return;
	}
	foff = mem->map_off + (loc - map) + (g0 - s->gpa);   /* file offset of g0 */
	fend = foff + (g1 - g0);
	for (uint64_t o = foff; o < fend;) {
		uint64_t lo = 0, hi = 0;
		int r = file_data(mem, o, &lo, &hi);

		if (r < 0) {
			mark(vec, base, g0 + (o - foff), g1, g0, g1);   /* cannot tell: populated */
			return;
		}
		if (r == 0 || lo >= fend)
			return;
		lo = MAX(lo, o);
		mark(vec, base, g0 + (lo - foff), g0 + (MIN(hi, fend) - foff), g0, g1);
		o = hi;
	}
}

/* /proc/PID/pagemap, opened on first use; -1 if it cannot be read. */
static int pagemap_fd(struct vmw_mem *mem)
{
	if (mem->pagemap_fd == -1) {
		char path[64];
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)mem->pid);
		fd = vmw_mem_open_privileged(path, O_RDONLY);
		if (!mem->pagemap_buf)
			mem->pagemap_buf = malloc(PAGEMAP_BATCH * sizeof(*mem->pagemap_buf));
		if (fd < 0 || !mem->pagemap_buf) {
			if (fd >= 0)
				close(fd);
			mem->pagemap_fd = -2;
		} else {
			mem->pagemap_fd = fd;
		}
	}
	return mem->pagemap_fd >= 0 ? mem->pagemap_fd : -1;
}

/* Guest [g0, g1) inside remote segment s: QEMU's pages, present or swapped. */
static void remote_populated(struct vmw_mem *mem, const struct vmw_mem_seg *s, uint64_t g0,
			     uint64_t g1, uint8_t *vec, uint64_t base)
{
	uint64_t va0 = s->remote + (g0 - s->gpa), va1 = va0 + (g1 - g0);
	uint64_t p = va0 / PAGE, pend = va1 / PAGE + (va1 % PAGE != 0);
	int fd = pagemap_fd(mem);

	while (p < pend) {
		size_t want = (size_t)MIN(pend - p, (uint64_t)PAGEMAP_BATCH), n;
		ssize_t got = -1;

		if (fd >= 0) {
			do
				got = pread(fd, mem->pagemap_buf, want * sizeof(uint64_t),
					    (off_t)(p * sizeof(uint64_t)));
			while (got < 0 && errno == EINTR);
		}
		n = got > 0 ? (size_t)got / sizeof(uint64_t) : 0;
		if (n == 0) {
			/* Unreadable (or the process is gone: reads will say so). */
			mark(vec, base, p * PAGE <= va0 ? g0 : g0 + (p * PAGE - va0), g1, g0, g1);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			uint64_t va = (p + i) * PAGE;

			if (!(mem->pagemap_buf[i] & (PM_PRESENT | PM_SWAP)))
				continue;
			/* va + PAGE > va0 always: p starts at va0's page. */
			mark(vec, base, va <= va0 ? g0 : g0 + (va - va0), g0 + (va + PAGE - va0), g0, g1);
		}
		p += n;
	}
}

int vmw_mem_populated(struct vmw_mem *mem, uint64_t addr, uint64_t len, uint8_t *vec)
{
	uint64_t last, base, qhi;
	size_t lo = 0, hi = mem->nsegs;

	if (!len)
		return 0;
	last = addr + (len - 1);
	if (last < addr)
		return -EINVAL;
	base = addr & ~(PAGE - 1);
	memset(vec, 0, (size_t)((last >> 12) - (addr >> 12) + 1));
	/* Whole pages: [base, qhi). No segment reaches 2^64 (vmw_mem_add_seg). */
	qhi = (last | (PAGE - 1)) == UINT64_MAX ? UINT64_MAX : (last | (PAGE - 1)) + 1;

	/* First segment ending after base. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mem->segs[mid].gpa + mem->segs[mid].len <= base)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < mem->nsegs && mem->segs[i].gpa < qhi; i++) {
		const struct vmw_mem_seg *s = &mem->segs[i];
		uint64_t g0 = MAX(base, s->gpa), g1 = MIN(qhi, s->gpa + s->len);

		if (g0 >= g1)
			continue;
		if (s->local)
			local_populated(mem, s, g0, g1, vec, base);
		else
			remote_populated(mem, s, g0, g1, vec, base);
	}
	return 0;
}
