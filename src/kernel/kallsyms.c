/* SPDX-License-Identifier: MIT */
/*
 * kallsyms.c - decoding the kernel's compressed symbol table, and locating it
 * by structure when VMCOREINFO does not name it.
 *
 * Layout (scripts/kallsyms.c): every table starts 8-byte aligned.
 *   kallsyms_names        per symbol: length (ULEB128, 1 or 2 bytes) and that
 *                         many token bytes; expanded, the first char is the
 *                         symbol type, the rest its name
 *   kallsyms_markers      offset into names of every 256th symbol
 *   kallsyms_token_table  256 NUL-terminated strings
 *   kallsyms_token_index  256 u16: offset of each string in token_table
 *   kallsyms_offsets      s32 per symbol, see vmw_kallsyms_address()
 *   kallsyms_relative_base  u64
 *   kallsyms_num_syms     u32
 * Order in the image: Linux 6.1: offsets, relative_base, num_syms, names,
 * markers, token_table, token_index. 6.2+ adds seqs_of_names after markers.
 * 6.12: num_syms, names, markers, token_table, token_index, offsets,
 * relative_base, seqs_of_names. The locator below relies only on what every
 * version shares: num_syms immediately before names, token_index immediately
 * after token_table, relative_base immediately after offsets.
 */
#include "kernel/kernel_internal.h"

#include <errno.h>
#include <string.h>

#define KSYM_MAX 1024   /* expanded type+name; the kernel's limit is 512 */

static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static bool is_sym_char(uint8_t c) { return c > 0x20 && c < 0x7f; }
static bool is_type_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '?';
}

long vmw_kallsyms_check_tokens(const uint8_t *tt, size_t avail, const uint8_t *ti)
{
	unsigned nonempty = 0;
	size_t end = 0;

	if (le16(ti) != 0)
		return -EINVAL;
	for (unsigned i = 0; i < 256; i++) {
		size_t start = le16(ti + 2 * i);
		size_t next;
		if (i < 255) {
			next = le16(ti + 2 * (i + 1));
			if (next <= start || next > avail)
				return -EINVAL;
		} else {
			const uint8_t *nul;
			if (start >= avail)
				return -EINVAL;
			nul = memchr(tt + start, 0, avail - start);
			if (!nul || nul - (tt + start) > KSYM_MAX)
				return -EINVAL;
			next = (size_t)(nul - tt) + 1;
		}
		/* The string runs exactly up to the next one's start. */
		if (tt[next - 1] != 0)
			return -EINVAL;
		for (size_t j = start; j < next - 1; j++)
			if (!is_sym_char(tt[j]))
				return -EINVAL;
		if (next - 1 > start)
			nonempty++;
		end = next;
	}
	/* A real table uses (almost) every code; a run of small u16 values
	 * over zeros does not pass as one. */
	if (nonempty < 64)
		return -EINVAL;
	return (long)end;
}

#define TOKPAD 32

struct tokens {
	const uint8_t *str[256];
	uint8_t len[256];
	uint8_t first[256];              /* first character, 0 for an empty token */
	uint8_t pad[256][TOKPAD];        /* short tokens, zero-padded: fixed-size copies */
};

static int load_tokens(const struct vmw_kallsyms_tables *t, struct tokens *tok)
{
	if (vmw_kallsyms_check_tokens(t->token_table, t->token_table_len, t->token_index) < 0)
		return -EINVAL;
	for (unsigned i = 0; i < 256; i++) {
		tok->str[i] = t->token_table + le16(t->token_index + 2 * i);
		size_t l = strlen((const char *)tok->str[i]);
		if (l > 255)
			return -EINVAL;
		tok->len[i] = (uint8_t)l;
		tok->first[i] = tok->str[i][0];
		memset(tok->pad[i], 0, TOKPAD);
		memcpy(tok->pad[i], tok->str[i], MIN(l, (size_t)TOKPAD));
	}
	return 0;
}

/* Length of the symbol at names[*pos]: 1 or 2 bytes (ULEB128). */
static int read_len(const uint8_t *names, size_t avail, size_t *pos, size_t *ret)
{
	size_t p = *pos, len;

	if (p >= avail)
		return -EINVAL;
	len = names[p++];
	if (len & 0x80) {
		if (p >= avail)
			return -EINVAL;
		len = (len & 0x7f) | (size_t)names[p++] << 7;
		if (len < 0x80)   /* the long form is used only when needed */
			return -EINVAL;
	}
	/* Every token byte of a name stands for at least one character. */
	if (len == 0 || len > KSYM_MAX || len > avail - p)
		return -EINVAL;
	*pos = p;
	*ret = len;
	return 0;
}

/* Output room expand_one needs: KSYM_MAX + NUL + slack for fixed-size copies. */
#define EXPAND_ROOM (KSYM_MAX + 1 + TOKPAD)

/*
 * Expand the symbol at names[*pos] into out (EXPAND_ROOM bytes). Returns the
 * expanded length (type char included) with out NUL-terminated, or -EINVAL.
 * Advances *pos. The tokens' characters were checked by load_tokens, so only
 * the type character and the length need checking here.
 */
static int expand_one(const uint8_t *names, size_t avail, size_t *pos, const struct tokens *tok,
		      char *out)
{
	size_t p = *pos, len, o = 0;

	if (read_len(names, avail, &p, &len) < 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = names[p + i];
		size_t tl = tok->len[c];
		if (o + tl > KSYM_MAX)
			return -EINVAL;
		if (tl <= TOKPAD)
			memcpy(out + o, tok->pad[c], TOKPAD);   /* fixed size: inlined */
		else
			memcpy(out + o, tok->str[c], tl);
		o += tl;
	}
	out[o] = '\0';
	*pos = p + len;
	if (o < 2 || !is_type_char((uint8_t)out[0]))
		return -EINVAL;
	return (int)o;
}

/* Check the symbol at names[*pos] without expanding it: its length, its
 * expanded length and its type character. Advances *pos. */
static int skip_one(const uint8_t *names, size_t avail, size_t *pos, const struct tokens *tok)
{
	size_t p = *pos, len, o = 0;
	uint8_t type = 0;

	if (read_len(names, avail, &p, &len) < 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = names[p + i];
		if (!o)
			type = tok->first[c];
		o += tok->len[c];
		if (o > KSYM_MAX)
			return -EINVAL;
	}
	if (o < 2 || o > KSYM_MAX || !is_type_char(type))
		return -EINVAL;
	*pos = p + len;
	return 0;
}

/* Walk `n` names without building anything; returns bytes used or -EINVAL. */
static long walk_names(const uint8_t *names, size_t avail, uint32_t n, const struct tokens *tok)
{
	size_t pos = 0;

	for (uint32_t i = 0; i < n; i++)
		if (skip_one(names, avail, &pos, tok) < 0)
			return -EINVAL;
	return (long)pos;
}

int vmw_kallsyms_decode(const struct vmw_kallsyms_tables *t, struct vmw_symtab **ret,
			size_t *names_used, const char **why)
{
	struct tokens tok;
	_cleanup_free_ struct vmw_ksym *syms = NULL;
	_cleanup_free_ char *names = NULL;
	size_t names_cap, names_len = 0, pos = 0;
	bool absolute_percpu = false;
	int64_t pcpu_start = -1, pcpu_end = -1;
	const char *why_dummy;

	if (!why)
		why = &why_dummy;
	if (t->num_syms == 0 || t->num_syms > (1u << 24)) {
		*why = "implausible kallsyms_num_syms";
		return -EINVAL;
	}
	if (load_tokens(t, &tok) < 0) {
		*why = "kallsyms_token_table/kallsyms_token_index are inconsistent";
		return -EINVAL;
	}
	for (uint32_t i = 0; i < t->num_syms; i++)
		if ((int32_t)le32(t->offsets + 4 * (size_t)i) < 0) {
			absolute_percpu = true;
			break;
		}

	syms = calloc(t->num_syms, sizeof(*syms));
	names_cap = (size_t)t->num_syms * 24 + 4096;
	names = malloc(names_cap);
	if (!syms || !names)
		return -ENOMEM;

	for (uint32_t i = 0; i < t->num_syms; i++) {
		if (names_len + EXPAND_ROOM > names_cap) {
			size_t nc = names_cap * 2;
			char *p = realloc(names, nc);
			if (!p)
				return -ENOMEM;
			names = p;
			names_cap = nc;
		}
		/* Expand straight into the names buffer, then drop the type char. */
		char *out = names + names_len;
		int l = expand_one(t->names, t->names_len, &pos, &tok, out);
		if (l < 0) {
			*why = "kallsyms_names does not decode (corrupt or not a kallsyms table)";
			return -EINVAL;
		}
		int32_t off = (int32_t)le32(t->offsets + 4 * (size_t)i);
		syms[i].addr = vmw_kallsyms_address(off, t->relative_base, absolute_percpu);
		syms[i].type = out[0];
		syms[i].name = (uint32_t)names_len;
		syms[i].percpu = absolute_percpu && off >= 0;
		memmove(out, out + 1, (size_t)l);   /* drop the type char; keeps the NUL */
		if (out[0] == '_' && out[1] == '_') {
			if (!strcmp(out, "__per_cpu_start"))
				pcpu_start = i;
			else if (!strcmp(out, "__per_cpu_end"))
				pcpu_end = i;
		}
		names_len += (size_t)l;
	}
	/* Without absolute per-CPU symbols (Linux >= 6.15 on x86), per-CPU
	 * variables are the symbols inside [__per_cpu_start, __per_cpu_end). */
	if (!absolute_percpu && pcpu_start >= 0 && pcpu_end >= 0) {
		uint64_t s = syms[pcpu_start].addr, e = syms[pcpu_end].addr;
		for (uint32_t i = 0; i < t->num_syms; i++)
			syms[i].percpu = syms[i].addr >= s && syms[i].addr < e;
	}
	if (names_used)
		*names_used = pos;
	return vmw_symtab_new(TAKE_PTR(syms), t->num_syms, TAKE_PTR(names), names_len, ret);
}

/* ---- locating the tables by structure ----------------------------------- */

#define ALGN 8
static inline size_t align_up(size_t v) { return (v + ALGN - 1) & ~(size_t)(ALGN - 1); }

/* Quick test of a token_index candidate: starts at 0, increases in small steps. */
static bool maybe_token_index(const uint8_t *p)
{
	if (le16(p) != 0)
		return false;
	uint16_t prev = 0;
	for (unsigned i = 1; i < 16; i++) {
		uint16_t v = le16(p + 2 * i);
		if (v <= prev || v - prev > 64)
			return false;
		prev = v;
	}
	return true;
}

/* Find token_table/token_index: the index follows the table (8-aligned). */
static bool find_tokens(const uint8_t *img, size_t len, size_t *tt_off, size_t *tt_size,
			size_t *ti_off)
{
	for (size_t off = ALGN; off + 512 <= len; off += ALGN) {
		if (!maybe_token_index(img + off))
			continue;
		size_t last = le16(img + off + 2 * 255);
		if (last + 1 > off)
			continue;
		/* The table starts 8-aligned, its last string starts at `last`
		 * and ends (with padding < 8) right before the index. */
		for (size_t k = 0; k * ALGN <= KSYM_MAX + ALGN; k++) {
			size_t lo = off - last - 1;   /* table start if the last string were empty */
			if (lo < k * ALGN)
				break;
			size_t start = (lo - k * ALGN) & ~(size_t)(ALGN - 1);
			long size = vmw_kallsyms_check_tokens(img + start, off - start, img + off);
			if (size > 0 && align_up(start + (size_t)size) == off) {
				*tt_off = start;
				*tt_size = (size_t)size;
				*ti_off = off;
				return true;
			}
		}
	}
	return false;
}

/* Do the markers (u32 or, on old kernels, u64) follow the names? */
static bool markers_match(const uint8_t *img, size_t len, size_t names_off, size_t names_size,
			  uint32_t n, const struct tokens *tok)
{
	size_t m = align_up(names_off + names_size);
	if (n <= 256)
		return m + 8 <= len && le32(img + m) == 0;
	/* Offset of symbol 256 within names. */
	long off256 = walk_names(img + names_off, names_size, 256, tok);
	if (off256 < 0 || m + 16 > len)
		return false;
	if (le32(img + m) == 0 && le32(img + m + 4) == (uint32_t)off256)
		return true;
	return le64(img + m) == 0 && le64(img + m + 8) == (uint64_t)off256;
}

/* kallsyms_num_syms (u32, 8-aligned, zero padding) then kallsyms_names,
 * somewhere before the token table at tt_off. Tries the first 16 names
 * cheaply, then the whole table, then the markers after it. */
static bool find_names(const uint8_t *img, size_t img_len, size_t tt_off, const struct tokens *tok,
		       size_t *ret_off, size_t *ret_size, uint32_t *ret_n)
{
	for (size_t off = 0; off + 16 <= tt_off; off += ALGN) {
		uint32_t cand = le32(img + off);
		if (cand < 1000 || cand > (1u << 24) || le32(img + off + 4) != 0)
			continue;
		const uint8_t *nm = img + off + 8;
		size_t avail = tt_off - (off + 8);
		if (walk_names(nm, avail, MIN(cand, 16u), tok) < 0)
			continue;
		long used = walk_names(nm, avail, cand, tok);
		if (used < 0)
			continue;
		if (!markers_match(img, img_len, off + 8, (size_t)used, cand, tok))
			continue;
		*ret_n = cand;
		*ret_off = off + 8;
		*ret_size = (size_t)used;
		return true;
	}
	return false;
}

/* Index of _stext in the names (to check offsets candidates with), or -1. */
static int64_t stext_index(const struct vmw_kallsyms_tables *t, const struct tokens *tok)
{
	char buf[EXPAND_ROOM];
	size_t pos = 0;

	for (uint32_t i = 0; i < t->num_syms; i++) {
		expand_one(t->names, t->names_len, &pos, tok, buf);
		if (!strcmp(buf + 1, "_stext"))
			return i;
	}
	return -1;
}

/* Do the n offsets at offs, with relative base `base`, put symbol stext_idx
 * at stext and come in address order (absolute per-CPU offsets first)? */
static bool offsets_fit(const uint8_t *offs, uint32_t n, uint64_t base, int64_t stext_idx,
			uint64_t stext)
{
	bool abs_pcpu = false;
	uint64_t prev = 0;

	for (uint32_t i = 0; i < n && !abs_pcpu; i++)
		abs_pcpu = (int32_t)le32(offs + 4 * (size_t)i) < 0;
	if (vmw_kallsyms_address((int32_t)le32(offs + 4 * (size_t)stext_idx), base,
				 abs_pcpu) != stext)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = vmw_kallsyms_address((int32_t)le32(offs + 4 * (size_t)i), base, abs_pcpu);
		if (a < prev)
			return false;
		prev = a;
	}
	return true;
}

/* kallsyms_relative_base (u64 = the lowest non-absolute symbol, i.e. _text,
 * at most _stext) right after kallsyms_offsets. Its image offset, or 0. */
static size_t find_relative_base(const uint8_t *img, size_t img_len, uint32_t n, int64_t stext_idx,
				 uint64_t stext)
{
	size_t offs_size = align_up((size_t)n * 4);

	for (size_t off = offs_size; off + 8 <= img_len; off += ALGN) {
		uint64_t base = le64(img + off);
		if (base > stext || stext - base > (64u << 20) || base < 0xffffffff80000000ull)
			continue;
		if (offsets_fit(img + off - offs_size, n, base, stext_idx, stext))
			return off;
	}
	return 0;
}

int vmw_kallsyms_locate(const uint8_t *img, size_t img_len, uint64_t img_vaddr,
			uint64_t stext, struct vmw_kallsyms_tables *t,
			struct vmw_kallsyms_found *found, const char **why)
{
	size_t tt_off, tt_size, ti_off, names_off = 0, names_size = 0, base_off;
	uint32_t n = 0;
	int64_t stext_idx;
	struct tokens tok;
	const char *why_dummy;

	if (!why)
		why = &why_dummy;
	memset(t, 0, sizeof(*t));
	if (!find_tokens(img, img_len, &tt_off, &tt_size, &ti_off)) {
		*why = "no kallsyms_token_table/kallsyms_token_index in the kernel image";
		return -ENOENT;
	}
	t->token_table = img + tt_off;
	t->token_table_len = tt_size;
	t->token_index = img + ti_off;
	if (load_tokens(t, &tok) < 0) {
		*why = "kallsyms token table inconsistent";
		return -ENOENT;
	}
	if (!find_names(img, img_len, tt_off, &tok, &names_off, &names_size, &n)) {
		*why = "no kallsyms_names/kallsyms_num_syms before the token table";
		return -ENOENT;
	}
	t->names = img + names_off;
	t->names_len = names_size;
	t->num_syms = n;
	if ((stext_idx = stext_index(t, &tok)) < 0) {
		*why = "kallsyms has no _stext";
		return -ENOENT;
	}
	if (!(base_off = find_relative_base(img, img_len, n, stext_idx, stext))) {
		*why = "no kallsyms_offsets/kallsyms_relative_base consistent with _stext";
		return -ENOENT;
	}
	t->offsets = img + base_off - align_up((size_t)n * 4);
	t->relative_base = le64(img + base_off);
	if (found) {
		found->names = img_vaddr + names_off;
		found->num_syms = img_vaddr + names_off - 8;
		found->token_table = img_vaddr + tt_off;
		found->token_index = img_vaddr + ti_off;
		found->offsets = img_vaddr + (size_t)(t->offsets - img);
		found->relative_base = img_vaddr + base_off;
	}
	return 0;
}
