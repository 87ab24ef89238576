/* SPDX-License-Identifier: MIT */
/*
 * test_kallsyms.c - decoding kallsyms tables and locating them by structure
 * in a kernel image (src/kernel/kallsyms.c), on tables built here the way
 * scripts/kallsyms.c builds them: token compression, 1- and 2-byte lengths,
 * base-relative offsets with and without absolute per-CPU symbols, and the
 * table orders of Linux 6.1, 6.2-6.9 and 6.10+.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kernel/kernel_internal.h"

#define TEXT_BASE 0xffffffff81000000ull
#define NSYMS 1500

struct tsym {
	char name[320];
	char type;
	uint64_t addr;
	bool percpu;
};

/* A table: symbols sorted by address (per-CPU ones, at small addresses, first). */
struct table {
	struct tsym syms[NSYMS];
	uint32_t n;
	char tokens[256][32];
	uint8_t names[NSYMS * 320];
	size_t names_len;
	uint32_t markers[(NSYMS + 255) / 256];
	uint8_t token_table[256 * 32];
	size_t token_table_len;
	uint8_t token_index[512];
	uint8_t offsets[NSYMS * 4];
	uint64_t relative_base;
};

static const char *const MULTI[] = {
	"per_cpu_", "init_", "task", "sym_", "__", "_s", "te", "xt", "ar", "run", "queue",
	"fixed_", "data", "start", "end", "00", "01", "02", "03", "04", "05", "06", "07",
	"08", "09", "1", "2", "3", "4", "5",
};

static void add(struct table *t, const char *name, char type, uint64_t addr, bool percpu)
{
	struct tsym *s = &t->syms[t->n++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->type = type;
	s->addr = addr;
	s->percpu = percpu;
}

/* Greedy longest-token compression of "type+name". */
static size_t compress(const struct table *t, const char *s, uint8_t *out)
{
	size_t n = 0;
	while (*s) {
		int best = -1;
		size_t best_len = 0;
		for (int c = 0; c < 256; c++) {
			size_t l = strlen(t->tokens[c]);
			if (l > best_len && !strncmp(s, t->tokens[c], l)) {
				best = c;
				best_len = l;
			}
		}
		assert_true(best >= 0);
		out[n++] = (uint8_t)best;
		s += best_len;
	}
	return n;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void build(struct table *t, bool absolute_percpu)
{
	size_t m = 0;
	memset(t, 0, sizeof(*t));

	add(t, "fixed_percpu_data", 'A', 0, true);
	add(t, "__per_cpu_start", 'A', 0, true);
	add(t, "cpu_debug_store", 'A', 0x1000, true);
	add(t, "runqueues", 'A', 0x31ac0, true);
	add(t, "__per_cpu_end", 'A', 0x35000, true);
	if (!absolute_percpu)   /* then per-CPU symbols live in the image */
		for (uint32_t i = 0; i < t->n; i++)
			t->syms[i].addr += TEXT_BASE + 0x2000000, t->syms[i].type = 'D';
	uint32_t first = t->n;
	add(t, "_text", 'T', TEXT_BASE, false);
	add(t, "_stext", 'T', TEXT_BASE, false);
	add(t, "startup_64", 'T', TEXT_BASE + 0x40, false);
	char longname[300];
	memset(longname, 'Q', sizeof(longname));
	memcpy(longname, "long_", 5);
	longname[299] = '\0';
	add(t, longname, 't', TEXT_BASE + 0x100, false);   /* compresses to > 127 bytes */
	for (uint32_t i = 0; t->n < NSYMS - 2; i++) {
		char name[32];
		snprintf(name, sizeof(name), "sym_%05u", i);
		add(t, name, i % 3 ? 't' : 'T', TEXT_BASE + 0x1000 + i * 0x10ull, false);
	}
	add(t, "init_task", 'D', TEXT_BASE + 0x1a00000, false);
	add(t, "jiffies_64", 'D', TEXT_BASE + 0x1a10000, false);
	if (!absolute_percpu) {
		/* keep address order: move the per-CPU block to the end */
		struct tsym tmp[8];
		memcpy(tmp, t->syms, first * sizeof(*tmp));
		memmove(t->syms, t->syms + first, (t->n - first) * sizeof(*tmp));
		memcpy(t->syms + t->n - first, tmp, first * sizeof(*tmp));
	}

	/* Tokens: every printable char stands for itself; the other codes get
	 * multi-char strings (like the kernel's best_table). */
	size_t mi = 0;
	for (int c = 0; c < 256; c++) {
		if (c > 0x20 && c < 0x7f)
			snprintf(t->tokens[c], 32, "%c", c);
		else if (mi < ARRAY_SIZE(MULTI))
			snprintf(t->tokens[c], 32, "%s", MULTI[mi++]);
		else
			snprintf(t->tokens[c], 32, "%c%c", 'a' + c % 26, 'a' + (c / 26) % 26);
	}
	size_t off = 0;
	for (int c = 0; c < 256; c++) {
		uint16_t idx = (uint16_t)off;
		memcpy(t->token_index + 2 * c, &idx, 2);
		size_t l = strlen(t->tokens[c]) + 1;
		memcpy(t->token_table + off, t->tokens[c], l);
		off += l;
	}
	t->token_table_len = off;

	/* Names with ULEB128 lengths, markers every 256 symbols. */
	for (uint32_t i = 0; i < t->n; i++) {
		char full[330];
		uint8_t comp[330];
		if (i % 256 == 0)
			t->markers[i / 256] = (uint32_t)m;
		snprintf(full, sizeof(full), "%c%s", t->syms[i].type, t->syms[i].name);
		size_t l = compress(t, full, comp);
		if (l <= 0x7f) {
			t->names[m++] = (uint8_t)l;
		} else {
			t->names[m++] = (uint8_t)((l & 0x7f) | 0x80);
			t->names[m++] = (uint8_t)(l >> 7);
		}
		memcpy(t->names + m, comp, l);
		m += l;
	}
	t->names_len = m;

	/* Offsets: the lowest non-absolute address is the base. */
	t->relative_base = UINT64_MAX;
	for (uint32_t i = 0; i < t->n; i++)
		if (!(absolute_percpu && t->syms[i].percpu))
			t->relative_base = MIN(t->relative_base, t->syms[i].addr);
	for (uint32_t i = 0; i < t->n; i++) {
		int64_t o;
		if (!absolute_percpu)
			o = (int64_t)(t->syms[i].addr - t->relative_base);
		else if (t->syms[i].percpu)
			o = (int64_t)t->syms[i].addr;
		else
			o = (int64_t)(t->relative_base - t->syms[i].addr) - 1;
		put32(t->offsets + 4 * i, (uint32_t)o);
	}
}

static struct vmw_kallsyms_tables tables_of(const struct table *t)
{
	return (struct vmw_kallsyms_tables){
		.names = t->names, .names_len = t->names_len, .num_syms = t->n,
		.token_table = t->token_table, .token_table_len = t->token_table_len,
		.token_index = t->token_index, .offsets = t->offsets,
		.relative_base = t->relative_base,
	};
}

static void check_symtab(const struct table *t, const struct vmw_symtab *st, bool absolute_percpu)
{
	assert_int_equal(st->nsyms, t->n);
	for (uint32_t i = 0; i < t->n; i++) {
		const struct vmw_ksym *s = &st->syms[i];
		assert_string_equal(vmw_ksym_name(st, s), t->syms[i].name);
		assert_int_equal(s->type, t->syms[i].type);
		assert_int_equal(s->addr, t->syms[i].addr);
		/* __per_cpu_end itself is outside [start, end) without absolute
		 * per-CPU symbols; with them every 'A' symbol is per-CPU. */
		bool want = t->syms[i].percpu &&
			    (absolute_percpu || strcmp(t->syms[i].name, "__per_cpu_end"));
		assert_int_equal(s->percpu, want);
	}
	const struct vmw_ksym *s = vmw_symtab_lookup(st, "init_task");
	assert_non_null(s);
	assert_int_equal(s->addr, TEXT_BASE + 0x1a00000);
	assert_null(vmw_symtab_lookup(st, "no_such_symbol"));
}

static struct table T;

static void test_address_rules(void **state)
{
	uint64_t base = 0xffffffffb6e00000ull;
	/* absolute per-CPU: non-negative offsets are values ... */
	assert_int_equal(vmw_kallsyms_address(0x31ac0, base, true), 0x31ac0);
	/* ... negative ones count down from base - 1 */
	assert_int_equal(vmw_kallsyms_address(-1, base, true), base);
	assert_int_equal(vmw_kallsyms_address(-0x1000001, base, true), base + 0x1000000);
	/* plain base-relative: unsigned */
	assert_int_equal(vmw_kallsyms_address(0x10, base, false), base + 0x10);
	assert_int_equal(vmw_kallsyms_address((int32_t)0x90000000u, base, false), base + 0x90000000ull);
}

static void test_decode_absolute_percpu(void **state)
{
	struct vmw_symtab *st = NULL;
	size_t used = 0;
	const char *why = NULL;

	build(&T, true);
	struct vmw_kallsyms_tables tt = tables_of(&T);
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, &used, &why), 0);
	assert_int_equal(used, T.names_len);
	check_symtab(&T, st, true);
	/* The long name used the 2-byte length. */
	const struct vmw_ksym *s = vmw_symtab_lookup(st, T.syms[8].name);
	assert_non_null(s);
	assert_int_equal(strlen(vmw_ksym_name(st, s)), 299);
	vmw_symtab_free(st);
}

static void test_decode_relative(void **state)
{
	struct vmw_symtab *st = NULL;

	build(&T, false);
	struct vmw_kallsyms_tables tt = tables_of(&T);
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, NULL, NULL), 0);
	check_symtab(&T, st, false);
	vmw_symtab_free(st);
}

static void test_decode_rejects(void **state)
{
	struct vmw_symtab *st = NULL;
	const char *why = NULL;
	struct vmw_kallsyms_tables tt;

	build(&T, true);
	/* names cut short */
	tt = tables_of(&T);
	tt.names_len -= 3;
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, NULL, &why), -EINVAL);
	assert_non_null(why);
	/* more symbols than the names hold */
	tt = tables_of(&T);
	tt.num_syms += 1;
	uint8_t offs[sizeof(T.offsets) + 4] = { 0 };
	memcpy(offs, T.offsets, sizeof(T.offsets));
	tt.offsets = offs;
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, NULL, &why), -EINVAL);
	/* an index that does not point at the next string */
	tt = tables_of(&T);
	uint8_t idx[512];
	memcpy(idx, T.token_index, 512);
	idx[2 * 40] ^= 1;
	tt.token_index = idx;
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, NULL, &why), -EINVAL);
	/* zeros are not a token table */
	uint8_t zeros[2048] = { 0 };
	assert_true(vmw_kallsyms_check_tokens(zeros, sizeof(zeros), zeros) < 0);
	assert_int_equal(vmw_kallsyms_check_tokens(T.token_table, T.token_table_len, T.token_index),
			 (long)T.token_table_len);
	/* a symbol type that is not a letter */
	tt = tables_of(&T);
	uint8_t names[sizeof(T.names)];
	memcpy(names, T.names, sizeof(names));
	names[1] = ' ' + 1;   /* first token of the first symbol: '!' */
	tt.names = names;
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, NULL, &why), -EINVAL);
	/* zero symbols */
	tt = tables_of(&T);
	tt.num_syms = 0;
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, NULL, &why), -EINVAL);
}

/* ---- locating the tables in an image ------------------------------------- */

enum order { ORDER_6_1, ORDER_6_2, ORDER_6_12 };

#define IMG (4u << 20)

static size_t put_aligned(uint8_t *img, size_t at, const void *data, size_t len)
{
	at = (at + 7) & ~(size_t)7;
	memcpy(img + at, data, len);
	return at;
}

struct placed {
	size_t offsets, base, num, names, markers, tt, ti;
};

static uint8_t *make_image(const struct table *t, enum order order, struct placed *p)
{
	uint8_t *img = malloc(IMG);
	uint32_t x = 12345;
	size_t at = 0x180004;   /* tables in ".rodata", after junk */
	uint64_t num = t->n;    /* .long + padding to the next 8 */
	uint8_t seqs[NSYMS * 3];

	assert_non_null(img);
	for (size_t i = 0; i < IMG; i++) {   /* junk that is not all zeros */
		x = x * 1103515245 + 12345;
		img[i] = (uint8_t)(x >> 16);
	}
	/* Decoys: a run of small increasing u16 values, pointers to _stext. */
	for (unsigned i = 0; i < 256; i++) {
		uint16_t v = (uint16_t)(i * 3);
		memcpy(img + 0x10000 + 2 * i, &v, 2);
	}
	uint64_t stext = TEXT_BASE;
	memcpy(img + 0x20000, &stext, 8);
	memset(seqs, 0x11, sizeof(seqs));

	size_t markers_len = sizeof(uint32_t) * ((t->n + 255) / 256);
#define PUT(field, data, len) (p->field = put_aligned(img, at, data, len), at = p->field + (len))
	if (order != ORDER_6_12) {
		PUT(offsets, t->offsets, 4 * (size_t)t->n);
		PUT(base, &t->relative_base, 8);
	}
	PUT(num, &num, 8);
	PUT(names, t->names, t->names_len);
	PUT(markers, t->markers, markers_len);
	if (order == ORDER_6_2)
		at = put_aligned(img, at, seqs, 3 * (size_t)t->n) + 3 * (size_t)t->n;
	PUT(tt, t->token_table, t->token_table_len);
	PUT(ti, t->token_index, 512);
	if (order == ORDER_6_12) {
		PUT(offsets, t->offsets, 4 * (size_t)t->n);
		PUT(base, &t->relative_base, 8);
		at = put_aligned(img, at, seqs, 3 * (size_t)t->n);
	}
#undef PUT
	/* Zero padding where the assembler's .balign puts it. */
	return img;
}

static void locate_order(enum order order, bool absolute_percpu)
{
	struct vmw_kallsyms_tables tt;
	struct vmw_kallsyms_found f;
	struct placed p;
	struct vmw_symtab *st = NULL;
	const char *why = NULL;

	build(&T, absolute_percpu);
	uint8_t *img = make_image(&T, order, &p);
	int r = vmw_kallsyms_locate(img, IMG, TEXT_BASE, TEXT_BASE, &tt, &f, &why);
	if (r)
		fail_msg("order %d: %s", order, why);
	assert_int_equal(f.names, TEXT_BASE + p.names);
	assert_int_equal(f.num_syms, TEXT_BASE + p.num);
	assert_int_equal(f.token_table, TEXT_BASE + p.tt);
	assert_int_equal(f.token_index, TEXT_BASE + p.ti);
	assert_int_equal(f.offsets, TEXT_BASE + p.offsets);
	assert_int_equal(f.relative_base, TEXT_BASE + p.base);
	assert_int_equal(tt.num_syms, T.n);
	assert_int_equal(tt.relative_base, T.relative_base);
	assert_int_equal(vmw_kallsyms_decode(&tt, &st, NULL, &why), 0);
	check_symtab(&T, st, absolute_percpu);
	vmw_symtab_free(st);

	/* _stext elsewhere than VMCOREINFO says: no consistent offsets. */
	assert_int_equal(vmw_kallsyms_locate(img, IMG, TEXT_BASE, TEXT_BASE + 0x200000, &tt, &f,
					     &why), -ENOENT);
	/* No token table at all. */
	memset(img + p.ti, 0xee, 512);
	assert_int_equal(vmw_kallsyms_locate(img, IMG, TEXT_BASE, TEXT_BASE, &tt, &f, &why), -ENOENT);
	assert_non_null(strstr(why, "token"));
	free(img);
}

static void test_locate_6_1(void **state) { locate_order(ORDER_6_1, true); }
static void test_locate_6_2(void **state) { locate_order(ORDER_6_2, true); }
static void test_locate_6_12(void **state) { locate_order(ORDER_6_12, true); }
static void test_locate_relative(void **state) { locate_order(ORDER_6_12, false); }

static void test_locate_junk(void **state)
{
	uint8_t *img = calloc(1, IMG);
	struct vmw_kallsyms_tables tt;
	struct vmw_kallsyms_found f;
	const char *why = NULL;

	assert_int_equal(vmw_kallsyms_locate(img, IMG, TEXT_BASE, TEXT_BASE, &tt, &f, &why), -ENOENT);
	assert_int_equal(vmw_kallsyms_locate(img, 100, TEXT_BASE, TEXT_BASE, &tt, &f, &why), -ENOENT);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_rules),
		cmocka_unit_test(test_decode_absolute_percpu),
		cmocka_unit_test(test_decode_relative),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_locate_6_1),
		cmocka_unit_test(test_locate_6_2),
		cmocka_unit_test(test_locate_6_12),
		cmocka_unit_test(test_locate_relative),
		cmocka_unit_test(test_locate_junk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
