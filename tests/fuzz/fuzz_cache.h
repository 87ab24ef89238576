/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cache.h - the input of fuzz_cache: the three kinds of file the
 * discovery cache reads (src/kernel/cache.c), in one byte string.
 *
 *   struct fuzz_cache_hdr  12 bytes (little endian)
 *   u8 entry[entry_len]    written as DIR/<build id>-<kerneloffset>
 *   u8 memo[memo_len]      written as DIR/<build id>.layout
 *   u8 hint[rest]          written as DIR/targets/<hash of the target id>
 *
 * Lengths are clamped to what the input holds. Shared by the target and
 * the seed maker (make_cache_seed.c).
 */
#pragma once

#include "kernel/kernel_internal.h"

#include <stdint.h>
#include <string.h>

struct fuzz_cache_hdr {
	uint8_t flags;          /* bit 0: no entry file, bit 1: no memo, bit 2: no hint */
	uint8_t reserved[3];
	uint32_t entry_len;
	uint32_t memo_len;
};

/* The names the entry and the hint are filed under. */
#define FUZZ_CACHE_BUILD_ID "12f1e1ca032e499318c5cc64e024d3e617624bf6"
#define FUZZ_CACHE_KERNELOFFSET 0x2f400000ull
#define FUZZ_CACHE_TARGET "qemu:4242:0"

struct fuzz_cache_parts {
	const uint8_t *entry, *memo, *hint;
	size_t entry_len, memo_len, hint_len;
	uint8_t flags;
};

static inline void fuzz_cache_split(const uint8_t *data, size_t size, struct fuzz_cache_parts *p)
{
	struct fuzz_cache_hdr h = { 0 };
	size_t rest;

	memcpy(&h, data, size < sizeof(h) ? size : sizeof(h));
	rest = size < sizeof(h) ? 0 : size - sizeof(h);
	p->flags = h.flags;
	p->entry = data + (size < sizeof(h) ? size : sizeof(h));
	p->entry_len = h.entry_len < rest ? h.entry_len : rest;
	rest -= p->entry_len;
	p->memo = p->entry + p->entry_len;
	p->memo_len = h.memo_len < rest ? h.memo_len : rest;
	rest -= p->memo_len;
	p->hint = p->memo + p->memo_len;
	p->hint_len = rest;
}

