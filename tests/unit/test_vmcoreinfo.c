/* SPDX-License-Identifier: MIT */
/*
 * test_vmcoreinfo.c - the VMCOREINFO parser and the page/byte scans that find
 * the text in guest RAM (src/kernel/vmcoreinfo.c), on synthetic RAM.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kernel/kernel_internal.h"

/* An abridged copy of a Debian 6.12 guest's text (KASLR on). */
static const char TEXT[] =
	"OSRELEASE=6.12.117+deb12-amd64\n"
	"BUILD-ID=764949bbe8b7a9241512fbf3b0d66d0ba34686a8\n"
	"PAGESIZE=4096\n"
	"SYMBOL(init_uts_ns)=ffffffffa121f700\n"
	"OFFSET(uts_namespace.name)=0\n"
	"SYMBOL(swapper_pg_dir)=ffffffffa1022000\n"
	"SYMBOL(_stext)=ffffffff9f400000\n"
	"NUMBER(VMALLOC_START)=0xffffd09d00000000\n"
	"SYMBOL(mem_section)=ffff8e77dfeb1680\n"
	"LENGTH(mem_section)=4096\n"
	"SIZE(mem_section)=32\n"
	"NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456\n"
	"SYMBOL(kallsyms_names)=ffffffffa05961f0\n"
	"SYMBOL(kallsyms_num_syms)=ffffffffa05961e8\n"
	"NUMBER(phys_base)=-264241152\n"
	"SYMBOL(init_top_pgt)=ffffffffa1022000\n"
	"NUMBER(pgtable_l5_enabled)=0\n"
	"KERNELOFFSET=1e400000\n"
	"NUMBER(KERNEL_IMAGE_SIZE)=1073741824\n"
	"NUMBER(sme_mask)=0\n";

static struct vmw_vmcoreinfo *parse_ok(const char *text)
{
	struct vmw_vmcoreinfo *vi = NULL;
	const char *why = NULL;
	int r = vmw_vmcoreinfo_parse(text, strlen(text), &vi, &why);
	if (r)
		fail_msg("parse failed: %s", why);
	return vi;
}

/* Parse TEXT with one line replaced (or removed when `with` is ""). */
static int parse_edited(const char *line, const char *with, const char **why)
{
	char buf[4096];
	const char *p = strstr(TEXT, line);
	struct vmw_vmcoreinfo *vi = NULL;
	assert_non_null(p);
	size_t pre = (size_t)(p - TEXT);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)pre, TEXT, with, p + strlen(line));
	int r = vmw_vmcoreinfo_parse(buf, strlen(buf), &vi, why);
	vmw_vmcoreinfo_free(vi);
	return r;
}

static void test_parse_fields(void **state)
{
	struct vmw_vmcoreinfo *vi = parse_ok(TEXT);
	uint64_t v;

	assert_string_equal(vi->release, "6.12.117+deb12-amd64");
	assert_string_equal(vi->build_id, "764949bbe8b7a9241512fbf3b0d66d0ba34686a8");
	assert_int_equal(vi->page_size, 4096);
	assert_int_equal(vi->kerneloffset, 0x1e400000);
	/* -264241152 as 64-bit two's complement */
	assert_int_equal(vi->phys_base, 0xfffffffff0400000ull);
	assert_int_equal(vi->stext, 0xffffffff9f400000ull);
	assert_int_equal(vi->pgd, 0xffffffffa1022000ull);
	assert_int_equal(vi->paging_levels, 4);
	assert_int_equal(vi->len, strlen(TEXT));
	assert_string_equal(vi->text, TEXT);

	assert_int_equal(vmw_vmcoreinfo_symbol(vi, "kallsyms_names", &v), 0);
	assert_int_equal(v, 0xffffffffa05961f0ull);
	assert_int_equal(vmw_vmcoreinfo_symbol(vi, "kallsyms_offsets", &v), -ENOENT);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "VMALLOC_START", &v), 0);   /* 0x form */
	assert_int_equal(v, 0xffffd09d00000000ull);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "PAGE_BUDDY_MAPCOUNT_VALUE", &v), 0);
	assert_int_equal((int64_t)v, -268435456);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "KERNEL_IMAGE_SIZE", &v), 0);
	assert_int_equal(v, 1073741824);
	assert_int_equal(vmw_vmcoreinfo_offset(vi, "uts_namespace.name", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(vmw_vmcoreinfo_size(vi, "mem_section", &v), 0);
	assert_int_equal(v, 32);
	assert_int_equal(vmw_vmcoreinfo_length(vi, "mem_section", &v), 0);
	assert_int_equal(v, 4096);
	assert_string_equal(vmw_vmcoreinfo_get(vi, "PAGESIZE"), "4096");
	assert_null(vmw_vmcoreinfo_get(vi, "CRASHTIME"));
	vmw_vmcoreinfo_free(vi);
}

static void test_parse_5level_and_swapper(void **state)
{
	const char *why;
	char buf[4096];
	struct vmw_vmcoreinfo *vi;

	/* pgtable_l5_enabled=1 → 5 levels */
	snprintf(buf, sizeof(buf), "%s", TEXT);
	char *p = strstr(buf, "NUMBER(pgtable_l5_enabled)=0");
	p[strlen("NUMBER(pgtable_l5_enabled)=")] = '1';
	vi = parse_ok(buf);
	assert_int_equal(vi->paging_levels, 5);
	vmw_vmcoreinfo_free(vi);

	/* Without init_top_pgt, swapper_pg_dir is the root. */
	assert_int_equal(parse_edited("SYMBOL(init_top_pgt)=ffffffffa1022000\n", "", &why), 0);
	/* A bad l5 value is not silently 4-level. */
	assert_int_equal(parse_edited("NUMBER(pgtable_l5_enabled)=0\n",
				      "NUMBER(pgtable_l5_enabled)=7\n", &why), -EINVAL);
}

static void test_parse_crashtime_and_trailing_bytes(void **state)
{
	char buf[4096];
	struct vmw_vmcoreinfo *vi = NULL;
	size_t n;

	/* After a crash the kernel appends CRASHTIME; a page holds junk after
	 * the NUL, which must be ignored. */
	n = (size_t)snprintf(buf, sizeof(buf), "%sCRASHTIME=1700000000\n", TEXT);
	memset(buf + n, 0, 16);
	memset(buf + n + 1, 'x', 100);
	assert_int_equal(vmw_vmcoreinfo_parse(buf, sizeof(buf), &vi, NULL), 0);
	assert_string_equal(vmw_vmcoreinfo_get(vi, "CRASHTIME"), "1700000000");
	vmw_vmcoreinfo_free(vi);
}

static void test_parse_rejects(void **state)
{
	struct vmw_vmcoreinfo *vi = NULL;
	const char *why = NULL;
	char buf[4096];

	/* The format string in the kernel image. */
	static const char fmt[] = "OSRELEASE=%s\n\0BUILD-ID=%20phN\n\0PAGESIZE=%ld\n";
	assert_int_equal(vmw_vmcoreinfo_parse(fmt, sizeof(fmt), &vi, &why), -EINVAL);
	assert_non_null(why);

	/* Half-written: the last line has no newline yet. */
	size_t cut = strlen(TEXT) - 10;
	assert_int_equal(vmw_vmcoreinfo_parse(TEXT, cut, &vi, &why), -EINVAL);
	assert_non_null(strstr(why, "newline"));

	/* Binary garbage after a plausible start. */
	snprintf(buf, sizeof(buf), "%s", TEXT);
	buf[40] = (char)0x90;
	assert_int_equal(vmw_vmcoreinfo_parse(buf, strlen(buf), &vi, &why), -EINVAL);

	/* Does not start with OSRELEASE. */
	assert_int_equal(vmw_vmcoreinfo_parse("PAGESIZE=4096\n", 14, &vi, &why), -EINVAL);
	assert_int_equal(vmw_vmcoreinfo_parse("", 0, &vi, &why), -EINVAL);

	/* Each required field. */
	assert_int_equal(parse_edited("BUILD-ID=764949bbe8b7a9241512fbf3b0d66d0ba34686a8\n", "", &why),
			 -EINVAL);
	assert_int_equal(parse_edited("BUILD-ID=764949bbe8b7a9241512fbf3b0d66d0ba34686a8\n",
				      "BUILD-ID=xyz\n", &why), -EINVAL);
	assert_int_equal(parse_edited("PAGESIZE=4096\n", "PAGESIZE=65536\n", &why), -EINVAL);
	assert_int_equal(parse_edited("KERNELOFFSET=1e400000\n", "", &why), -EINVAL);
	assert_int_equal(parse_edited("KERNELOFFSET=1e400000\n", "KERNELOFFSET=zz\n", &why), -EINVAL);
	assert_int_equal(parse_edited("SYMBOL(_stext)=ffffffff9f400000\n", "", &why), -EINVAL);
	assert_int_equal(parse_edited("NUMBER(phys_base)=-264241152\n", "", &why), -EINVAL);
	assert_int_equal(parse_edited("NUMBER(phys_base)=-264241152\n", "NUMBER(phys_base)=--1\n", &why),
			 -EINVAL);
	assert_int_equal(parse_edited("SYMBOL(init_top_pgt)=ffffffffa1022000\n"
				      "NUMBER(pgtable_l5_enabled)=0\n", "NUMBER(pgtable_l5_enabled)=0\n",
				      &why), 0);
	assert_int_equal(parse_edited("SYMBOL(swapper_pg_dir)=ffffffffa1022000\n", "", &why), 0);
	/* A line without '=' and a malformed key. */
	assert_int_equal(parse_edited("PAGESIZE=4096\n", "PAGESIZE=4096\nJUNK\n", &why), -EINVAL);
	assert_int_equal(parse_edited("PAGESIZE=4096\n", "PAGESIZE=4096\nSYMBOL(a b)=1\n", &why),
			 -EINVAL);
	/* Hex values too long for 64 bits. */
	assert_int_equal(parse_edited("SYMBOL(_stext)=ffffffff9f400000\n",
				      "SYMBOL(_stext)=1ffffffff9f400000\n", &why), -EINVAL);
}

static void test_number_edge_cases(void **state)
{
	char buf[4096];
	struct vmw_vmcoreinfo *vi;
	uint64_t v;

	snprintf(buf, sizeof(buf), "%sNUMBER(a)=-1\nNUMBER(b)=18446744073709551615\n"
		 "NUMBER(c)=18446744073709551616\nNUMBER(d)=-0x10\nNUMBER(e)=\nSIZE(f)=-3\n", TEXT);
	vi = parse_ok(buf);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "a", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "b", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "c", &v), -ERANGE);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "d", &v), 0);
	assert_int_equal(v, (uint64_t)-16);
	assert_int_equal(vmw_vmcoreinfo_number(vi, "e", &v), -EINVAL);
	assert_int_equal(vmw_vmcoreinfo_size(vi, "f", &v), -EINVAL);
	vmw_vmcoreinfo_free(vi);
}

static void test_page_probes(void **state)
{
	uint8_t p[16] = { 0 };

	memcpy(p, "OSRELEASE=6.1.0", 15);
	assert_true(vmw_vmcoreinfo_page_is_data(p));
	memcpy(p, "OSRELEASE=%s\n\0B", 15);
	assert_false(vmw_vmcoreinfo_page_is_data(p));
	memcpy(p, "OSRELEASE=\n", 11);
	assert_false(vmw_vmcoreinfo_page_is_data(p));

	/* Elf64_Nhdr { namesz 11, descsz 3279, type 0 } "VMCO" */
	uint8_t n[16] = { 11, 0, 0, 0, 0xcf, 0x0c, 0, 0, 0, 0, 0, 0, 'V', 'M', 'C', 'O' };
	assert_true(vmw_vmcoreinfo_page_is_note(n));
	n[8] = 1;   /* type */
	assert_false(vmw_vmcoreinfo_page_is_note(n));
	n[8] = 0;
	n[5] = 0x10;   /* descsz 4303 > a page */
	assert_false(vmw_vmcoreinfo_page_is_note(n));
}

/* ---- scans over a buffer "guest" ---------------------------------------- */

#define RAM (4u << 20)

static int cmp_hit(const void *a, const void *b)
{
	const struct vmw_vmcoreinfo_hit *x = a, *y = b;
	return x->phys < y->phys ? -1 : x->phys > y->phys;
}

static void test_scan_pages(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	struct vmw_mem *mem;
	struct vmw_vmcoreinfo_hit *hits = NULL;
	struct vmw_vmcoreinfo *vi = NULL;
	uint64_t ns;
	uint32_t nh[3] = { 11, (uint32_t)strlen(TEXT), 0 };

	assert_non_null(ram);
	/* data page, note page, and decoys: the format string mid-page and at
	 * a page start, a half-written page. */
	memcpy(ram + 0x123000, TEXT, strlen(TEXT));
	memcpy(ram + 0x200000, nh, 12);
	memcpy(ram + 0x200000 + 12, "VMCOREINFO\0\0", 12);
	memcpy(ram + 0x200000 + 24, TEXT, strlen(TEXT));
	memcpy(ram + 0x300123, "OSRELEASE=%s\n", 13);
	memcpy(ram + 0x301000, "OSRELEASE=%s\n", 13);
	memcpy(ram + 0x302000, TEXT, 100);

	assert_int_equal(vmw_mem_open_buffer(ram, RAM, &mem), 0);
	int n = vmw_vmcoreinfo_scan(mem, &hits, &ns);
	assert_int_equal(n, 3);
	qsort(hits, (size_t)n, sizeof(*hits), cmp_hit);
	assert_int_equal(hits[0].phys, 0x123000);
	assert_int_equal(hits[0].kind, VMW_VMCOREINFO_DATA);
	assert_int_equal(hits[1].phys, 0x200000 + 24);
	assert_int_equal(hits[1].kind, VMW_VMCOREINFO_NOTE);
	assert_int_equal(hits[2].phys, 0x302000);   /* found, rejected by the parser */

	assert_int_equal(vmw_vmcoreinfo_read(mem, hits[0].phys, &vi, NULL), 0);
	assert_string_equal(vi->build_id, "764949bbe8b7a9241512fbf3b0d66d0ba34686a8");
	vmw_vmcoreinfo_free(vi);
	assert_int_equal(vmw_vmcoreinfo_read(mem, hits[1].phys, &vi, NULL), 0);
	assert_int_equal(vi->kerneloffset, 0x1e400000);
	vmw_vmcoreinfo_free(vi);
	const char *why = NULL;
	assert_int_equal(vmw_vmcoreinfo_read(mem, hits[2].phys, &vi, &why), -EINVAL);
	assert_non_null(why);

	free(hits);
	vmw_mem_close(mem);
	free(ram);
}

static void test_scan_bytes_fallback(void **state)
{
	uint8_t *ram = calloc(1, 2 * RAM);
	struct vmw_mem *mem;
	struct vmw_vmcoreinfo_hit *hits = NULL;
	uint64_t ns;

	/* Old kernels (< 4.13) keep the text in .bss, not page-aligned; the
	 * format string must not count. One copy straddles the scan's chunks. */
	memcpy(ram + 0x1234, "OSRELEASE=%s\n", 13);
	memcpy(ram + 0x20010, TEXT, strlen(TEXT));
	memcpy(ram + RAM - 5, TEXT, strlen(TEXT));   /* across the 4 MiB chunk boundary */
	assert_int_equal(vmw_mem_open_buffer(ram, 2 * RAM, &mem), 0);
	int n = vmw_vmcoreinfo_scan(mem, &hits, &ns);
	assert_int_equal(n, 2);
	assert_int_equal(hits[0].phys, 0x20010);
	assert_int_equal(hits[0].kind, VMW_VMCOREINFO_LOOSE);
	assert_int_equal(hits[1].phys, RAM - 5);
	free(hits);
	vmw_mem_close(mem);

	/* Nothing at all. */
	memset(ram, 0, 2 * RAM);
	assert_int_equal(vmw_mem_open_buffer(ram, 2 * RAM, &mem), 0);
	assert_int_equal(vmw_vmcoreinfo_scan(mem, &hits, &ns), 0);
	free(hits);
	vmw_mem_close(mem);
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_5level_and_swapper),
		cmocka_unit_test(test_parse_crashtime_and_trailing_bytes),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_number_edge_cases),
		cmocka_unit_test(test_page_probes),
		cmocka_unit_test(test_scan_pages),
		cmocka_unit_test(test_scan_bytes_fallback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
