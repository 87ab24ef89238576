/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.h - the sparse guest-memory image that the fuzz targets take as
 * input, and the one run (discovery + process walk) they do on it. Shared by
 * the libFuzzer target (fuzz_walk.c) and the seed maker (make_seed.c), so
 * that a seed is checked with exactly the code the fuzzer runs.
 *
 * Input format (little endian; every byte string is a valid input):
 *
 *   struct fuzz_hdr   16 bytes, see below
 *   u32 pfn[npages]   guest-physical page numbers (address >> 12), any order
 *   u8  data[npages][4096]  the pages, in pfn[] order
 *
 *   - npages is clamped to what the input holds: the TOC to (size-16)/4
 *     entries, then pages without a full 4096 bytes of data are dropped;
 *   - a pfn given twice: the first entry wins;
 *   - [zero_pfn, zero_pfn + zero_npages) is RAM that reads as zeros where no
 *     page is given (zero_npages capped at FUZZ_ZERO_MAX): lets a seed hold a
 *     whole kernel image's span with only the pages that matter in it;
 *   - every other address is a hole: reads fail with -EFAULT.
 * Pages with consecutive pfns become one segment, with an ASan-poisoned
 * guard page before and after it (reads past a segment's end are caught).
 */
#pragma once

#include "mem/mem_internal.h"
#include "linux/linux.h"
#include "linux/cgroups.h"

#define FUZZ_PAGE 4096u
#define FUZZ_ZERO_MAX (24576u)   /* 96 MiB: kernel.c's MAX_IMAGE_SCAN */

enum {
	FUZZ_F_FALLBACK = 1u << 0,   /* vmw_kernel_opts.ignore_vmcoreinfo_kallsyms */
	FUZZ_F_PAGE_SEGS = 1u << 1,  /* one segment per page (reads span segments), runs up to 8192 pages */
	FUZZ_F_REMOTE = 1u << 2,     /* remote segments read with process_vm_readv from ourselves */
	FUZZ_F_TWICE = 1u << 3,      /* walk twice (state kept across frames) */
};

struct fuzz_hdr {
	uint8_t flags;
	uint8_t reserved[3];
	uint32_t npages;
	uint32_t zero_pfn;
	uint32_t zero_npages;
};

/* A vmw_mem built from an input, with the buffers it points into. */
struct fuzz_image {
	struct vmw_mem *mem;
	uint8_t **bufs;          /* runs not in the arena (fuzz_image.c) */
	size_t nbufs;
	size_t arena_used;       /* bytes of the arena this image holds */
	unsigned flags;
	size_t npages;           /* distinct pages given (zero pages not counted) */
};

/* Build the memory of an input. 0, or -ENOMEM. */
int fuzz_image_load(const uint8_t *data, size_t size, struct fuzz_image *img);
void fuzz_image_free(struct fuzz_image *img);

struct fuzz_result {
	int attach_rc, linux_rc, walk_rc;   /* 0, or the error; 1 = not reached */
	char msg[512];                      /* message of the first error */
	size_t nprocs, nthreads, ncmdlines, skipped;
	size_t ncgroups;                    /* cgroups read (fuzz_cgroups_check) */
	bool truncated;
	char symbols_from[160];
	uint64_t phys_base, stext;          /* of the kernel found */
	uint64_t scan_ns, kallsyms_ns, btf_ns, attach_ns, walk_ns;
	uint64_t fingerprint;               /* hash of every process's pid, ppid and comm */
	size_t nfiles;                      /* guest files read whole by the files check */
};

/* If set, fuzz_run_mem writes "proc PID PPID NTHREADS COMM" per process found. */
extern FILE *fuzz_proc_log;

/* Attach (no cache), describe the Linux model, walk with threads and
 * command lines, check every string of the result, then read guest files
 * through the page cache (the dentry/mount walk, symlinks, the xarray) and
 * check what they say of themselves, the user names and the OS; free
 * everything. */
void fuzz_run_mem(struct vmw_mem *mem, unsigned flags, struct fuzz_result *res);
/* Its two halves. fuzz_attach: 0 with *ret_k and *ret_l set, or -1 (res says
 * why; nothing to free). fuzz_walk_check: the walk(s) and the checks. */
int fuzz_attach(struct vmw_mem *mem, unsigned flags, struct vmw_kernel **ret_k,
		struct vmw_linux **ret_l, struct fuzz_result *res);
void fuzz_walk_check(struct vmw_linux *l, unsigned flags, struct fuzz_result *res);
/* The cgroup walk (linux/cgroups.h) on k: every path a string starting with
 * '/', parents before children (depth at most one more than the row before),
 * %CPU against itself 0 or unknown. */
void fuzz_cgroups_check(struct vmw_kernel *k, struct fuzz_result *res);
/* Load + run + free: what the fuzz target does with one input. */
void fuzz_run(const uint8_t *data, size_t size, struct fuzz_result *res);
void fuzz_result_print(FILE *f, const struct fuzz_result *res);
