/* SPDX-License-Identifier: MIT */
/* fuzz_util.h - small helpers the fuzz targets and seed makers share. */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole file at path (malloc'd; *len its size), or NULL if it cannot be opened. */
static inline void *fuzz_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (n == cap && !(buf = realloc(buf, cap = cap ? cap * 2 : 1 << 16)))
			exit(1);
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	*len = n;
	return buf;
}

/* xorshift64: a number below n (0 when n is 0) from the mutator's seed state. */
static inline uint32_t fuzz_rnd(uint64_t *rng, uint32_t n)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	return n ? (uint32_t)((*rng >> 16) % n) : 0;
}
