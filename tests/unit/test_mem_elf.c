/* SPDX-License-Identifier: MIT */
/* ELF cores and the file source: format detection, bounds, layouts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "mem/mem_internal.h"

struct seg {
	uint32_t type;
	uint64_t paddr, filesz, memsz;
	int64_t offset;  /* -1: placed after the headers, in order */
};

/* A core with the given program headers; data bytes are (offset * 13) & 0xff. */
static uint8_t *build_core(const struct seg *segs, size_t n, size_t *ret_len)
{
	size_t hdr = sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr), len = hdr;
	uint64_t off[16];
	uint8_t *buf;
	Elf64_Ehdr eh = {
		.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT },
		.e_type = ET_CORE, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
		.e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
		.e_phentsize = sizeof(Elf64_Phdr), .e_phnum = (uint16_t)n,
	};

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++) {
		off[i] = segs[i].offset >= 0 ? (uint64_t)segs[i].offset : len;
		if (segs[i].offset < 0)
			len += segs[i].filesz;
	}
	buf = calloc(1, len);
	memcpy(buf, &eh, sizeof(eh));
	for (size_t i = 0; i < n; i++) {
		Elf64_Phdr ph = {
			.p_type = segs[i].type, .p_offset = off[i], .p_paddr = segs[i].paddr,
			.p_filesz = segs[i].filesz, .p_memsz = segs[i].memsz,
		};
		memcpy(buf + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
	}
	for (size_t i = hdr; i < len; i++)
		buf[i] = (uint8_t)(i * 13);
	*ret_len = len;
	return buf;
}

static int parse(const uint8_t *buf, size_t len, struct vmw_elf_info *info, struct vmw_error *err)
{
	memset(err, 0, sizeof(*err));
	return vmw_elf_parse(buf, len, info, err);
}

static void test_valid_core(void **state)
{
	const struct seg segs[] = {
		{ PT_NOTE, 0, 0x40, 0x40, -1 },
		{ PT_LOAD, 0x100000, 0x2000, 0x2000, -1 },
		{ PT_LOAD, 0, 0x1000, 0x1000, -1 },        /* out of order on purpose */
		{ PT_LOAD, 0x100000000ULL, 0x1000, 0x1000, -1 },
		{ PT_LOAD, 0x200000, 0, 0x1000, -1 },      /* no bytes in the file: skipped */
	};
	size_t len;
	uint8_t *buf = build_core(segs, ARRAY_SIZE(segs), &len);
	struct vmw_elf_info info;
	struct vmw_error err;

	assert_int_equal(parse(buf, len, &info, &err), 0);
	assert_int_equal(info.nloads, 3);
	assert_int_equal(info.loads[0].paddr, 0);
	assert_int_equal(info.loads[1].paddr, 0x100000);
	assert_int_equal(info.loads[2].paddr, 0x100000000ULL);
	assert_int_equal(info.loads[1].filesz, 0x2000);
	assert_int_equal(info.note_size, 0x40);
	assert_int_equal(info.note_offset, sizeof(Elf64_Ehdr) + 5 * sizeof(Elf64_Phdr));
	vmw_elf_info_free(&info);
	free(buf);
}

/* A file that is not an x86-64 core is unsupported; a damaged one is inconsistent. */
static void expect_bad(const uint8_t *buf, size_t len, const char *what, enum vmw_error_kind kind)
{
	struct vmw_elf_info info;
	struct vmw_error err;

	assert_int_equal(parse(buf, len, &info, &err), -ENOEXEC);
	assert_string_equal(vmw_error_kind_name(err.kind), vmw_error_kind_name(kind));
	if (!strstr(err.msg, what))
		fail_msg("message '%s' does not say '%s'", err.msg, what);
}

static void test_truncated(void **state)
{
	const struct seg segs[] = {
		{ PT_LOAD, 0, 0x1000, 0x1000, -1 },
		{ PT_LOAD, 0x1000, 0x1000, 0x1000, -1 },
	};
	size_t len;
	uint8_t *buf = build_core(segs, ARRAY_SIZE(segs), &len);

	expect_bad(buf, len - 1, "past the end of the file", VMW_ERR_INCONSISTENT);   /* last segment cut short */
	expect_bad(buf, 100, "program headers", VMW_ERR_INCONSISTENT);                  /* headers cut */
	expect_bad(buf, 40, "truncated ELF header", VMW_ERR_INCONSISTENT);
	expect_bad(buf, 3, "not an ELF", VMW_ERR_UNSUPPORTED);
	free(buf);
}

static void test_offsets_outside_file(void **state)
{
	const struct seg segs[] = {
		{ PT_LOAD, 0, 0x100, 0x100, (int64_t)(UINT64_MAX >> 1) },
	};
	size_t len;
	uint8_t *buf = build_core(segs, 1, &len);
	Elf64_Phdr ph;

	expect_bad(buf, len, "past the end of the file", VMW_ERR_INCONSISTENT);
	/* p_offset + p_filesz wrapping around must not pass the check */
	memcpy(&ph, buf + sizeof(Elf64_Ehdr), sizeof(ph));
	ph.p_offset = UINT64_MAX - 0x10;
	memcpy(buf + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
	expect_bad(buf, len, "past the end of the file", VMW_ERR_INCONSISTENT);
	free(buf);
}

static void test_overlap(void **state)
{
	const struct seg segs[] = {
		{ PT_LOAD, 0x1000, 0x2000, 0x2000, -1 },
		{ PT_LOAD, 0x2000, 0x1000, 0x1000, -1 },
	};
	size_t len;
	uint8_t *buf = build_core(segs, ARRAY_SIZE(segs), &len);

	expect_bad(buf, len, "overlap", VMW_ERR_INCONSISTENT);
	free(buf);
}

static void test_header_checks(void **state)
{
	const struct seg segs[] = { { PT_LOAD, 0, 0x10, 0x10, -1 } };
	size_t len;
	uint8_t *buf = build_core(segs, 1, &len);
	Elf64_Ehdr eh, orig;

	memcpy(&orig, buf, sizeof(orig));

	buf[EI_CLASS] = ELFCLASS32;
	expect_bad(buf, len, "32-bit", VMW_ERR_UNSUPPORTED);
	buf[EI_CLASS] = ELFCLASS64;
	buf[EI_DATA] = ELFDATA2MSB;
	expect_bad(buf, len, "big-endian", VMW_ERR_UNSUPPORTED);

	eh = orig;
	eh.e_type = ET_EXEC;
	memcpy(buf, &eh, sizeof(eh));
	expect_bad(buf, len, "not a core dump", VMW_ERR_UNSUPPORTED);

	eh = orig;
	eh.e_machine = EM_AARCH64;
	memcpy(buf, &eh, sizeof(eh));
	expect_bad(buf, len, "x86-64", VMW_ERR_UNSUPPORTED);

	eh = orig;
	eh.e_phentsize = 32;
	memcpy(buf, &eh, sizeof(eh));
	expect_bad(buf, len, "program header entry size", VMW_ERR_INCONSISTENT);

	eh = orig;
	eh.e_phnum = 0;
	memcpy(buf, &eh, sizeof(eh));
	expect_bad(buf, len, "no program headers", VMW_ERR_UNSUPPORTED);
	free(buf);
}

static void test_segment_checks(void **state)
{
	const struct seg bigger[] = { { PT_LOAD, 0, 0x20, 0x10, -1 } };
	const struct seg none[] = { { PT_NOTE, 0, 0x10, 0x10, -1 } };
	const struct seg wrap[] = { { PT_LOAD, UINT64_MAX - 0x10, 0x10, 0x100, -1 } };
	size_t len;
	uint8_t *buf;

	buf = build_core(bigger, 1, &len);
	expect_bad(buf, len, "larger than memory size", VMW_ERR_INCONSISTENT);
	free(buf);
	buf = build_core(none, 1, &len);
	expect_bad(buf, len, "no PT_LOAD", VMW_ERR_UNSUPPORTED);
	free(buf);
	buf = build_core(wrap, 1, &len);
	expect_bad(buf, len, "wraps", VMW_ERR_INCONSISTENT);
	free(buf);
}

static void test_pn_xnum(void **state)
{
	const struct seg segs[] = {
		{ PT_LOAD, 0, 0x10, 0x10, -1 },
		{ PT_LOAD, 0x1000, 0x10, 0x10, -1 },
	};
	size_t len;
	uint8_t *buf = build_core(segs, 2, &len), *big;
	Elf64_Ehdr eh;
	Elf64_Shdr sh = { .sh_info = 2 };
	struct vmw_elf_info info;
	struct vmw_error err;

	/* append a section header 0 holding the real count */
	big = realloc(buf, len + sizeof(sh));
	memcpy(big + len, &sh, sizeof(sh));
	memcpy(&eh, big, sizeof(eh));
	eh.e_phnum = PN_XNUM;
	eh.e_shoff = len;
	eh.e_shentsize = sizeof(sh);
	eh.e_shnum = 0;
	memcpy(big, &eh, sizeof(eh));
	assert_int_equal(parse(big, len + sizeof(sh), &info, &err), 0);
	assert_int_equal(info.nloads, 2);
	vmw_elf_info_free(&info);
	/* and without the section header */
	expect_bad(big, len, "PN_XNUM", VMW_ERR_INCONSISTENT);
	free(big);
}

/* ---- the file source ---- */

static char tmpdir[] = "/tmp/vmw-test-mem-XXXXXX";

static const char *write_file(const char *name, const void *buf, size_t len)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	return path;
}

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd);
}

static void test_open_elf_file(void **state)
{
	const struct seg segs[] = {
		{ PT_LOAD, 0x1000, 0x1000, 0x1000, -1 },
		{ PT_LOAD, 0x2000, 0x800, 0x1000, -1 },   /* half of it missing from the dump */
		{ PT_LOAD, 0x100000000ULL, 0x100, 0x100, -1 },
	};
	size_t len;
	uint8_t *buf = build_core(segs, ARRAY_SIZE(segs), &len), b[16];
	const char *path = write_file("core.elf", buf, len);
	size_t hdr = sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr);
	struct vmw_mem *mem;
	struct vmw_error err = { 0 };
	const struct vmw_mem_range *r;

	assert_int_equal(vmw_mem_open_file(path, NULL, &mem, &err), 0);
	assert_non_null(strstr(vmw_mem_describe(mem), "ELF core"));
	assert_non_null(strstr(vmw_mem_describe(mem), "3 segments"));
	assert_int_equal(vmw_mem_ranges(mem, &r), 2);  /* 0x1000-0x27ff merged, and 4 GiB */
	assert_int_equal(r[0].start, 0x1000);
	assert_int_equal(r[0].size, 0x1800);
	/* a read across the two adjacent segments */
	assert_int_equal(vmw_mem_read(mem, 0x1ff8, b, 16), 0);
	assert_memory_equal(b, buf + hdr + 0xff8, 16);
	/* bytes past p_filesz are not in the dump */
	assert_int_equal(vmw_mem_read(mem, 0x27f8, b, 16), -EFAULT);
	assert_int_equal(vmw_mem_read(mem, 0x100000000ULL, b, 16), 0);
	assert_memory_equal(b, buf + hdr + 0x1800, 16);
	assert_int_equal(vmw_mem_read(mem, 0x0, b, 16), -EFAULT);
	vmw_mem_close(mem);

	/* truncated on disk: the message names the file */
	path = write_file("short.elf", buf, len - 0x10);
	assert_int_equal(vmw_mem_open_file(path, NULL, &mem, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "truncated"));
	free(buf);
}

static void test_open_kdump_refused(void **state)
{
	char buf[4096] = "KDUMP   ";
	struct vmw_mem *mem;
	struct vmw_error err = { 0 };
	const char *path = write_file("vmcore.kdump", buf, sizeof(buf));

	assert_int_equal(vmw_mem_open_file(path, NULL, &mem, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "kdump-compressed"));
	assert_non_null(strstr(err.msg, "--format elf"));
	memcpy(buf, "makedumpfile", 12);
	path = write_file("vmcore.flat", buf, sizeof(buf));
	assert_int_equal(vmw_mem_open_file(path, NULL, &mem, &err), -ENOTSUP);
}

static void test_open_raw_layouts(void **state)
{
	size_t size = 2 << 20;
	uint8_t *buf = malloc(size), b[8];
	const char *path;
	struct vmw_mem *mem;
	struct vmw_error err = { 0 };
	const struct vmw_mem_range *r;

	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i ^ (i >> 9));
	path = write_file("ram.raw", buf, size);

	/* no QEMU maps this file: flat */
	assert_int_equal(vmw_mem_open_file(path, NULL, &mem, &err), 0);
	assert_int_equal(vmw_mem_ranges(mem, &r), 1);
	assert_int_equal(r[0].size, size);
	assert_non_null(strstr(vmw_mem_describe(mem), "flat"));
	assert_int_equal(vmw_mem_read(mem, 0xa0000, b, 8), 0);
	vmw_mem_close(mem);

	VMW_MEM_OPTS(pc, .layout = VMW_LAYOUT_PC);
	assert_int_equal(vmw_mem_open_file(path, &pc, &mem, &err), 0);
	assert_int_equal(vmw_mem_ranges(mem, &r), 2);
	assert_int_equal(r[1].start, 0x100000);
	assert_int_equal(vmw_mem_read(mem, 0xa0000, b, 8), -EFAULT);
	assert_int_equal(vmw_mem_read(mem, 0x1ffff8, b, 8), 0);
	assert_memory_equal(b, buf + 0x1ffff8, 8);
	assert_non_null(strstr(vmw_mem_describe(mem), "pc layout"));
	vmw_mem_close(mem);

	/* an old caller's smaller options struct reads as "auto" */
	struct vmw_mem_opts old = { .sz = offsetof(struct vmw_mem_opts, layout), .layout = VMW_LAYOUT_PC };
	assert_int_equal(vmw_mem_open_file(path, &old, &mem, &err), 0);
	assert_int_equal(vmw_mem_ranges(mem, &r), 1);
	vmw_mem_close(mem);
	free(buf);
}

static void test_open_file_errors(void **state)
{
	struct vmw_mem *mem;
	struct vmw_error err = { 0 };

	assert_int_equal(vmw_mem_open_file("/nonexistent/ram", NULL, &mem, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/ram"));
	assert_int_equal(vmw_mem_open_file(tmpdir, NULL, &mem, &err), -EISDIR);
	assert_int_equal(vmw_mem_open_file(write_file("empty", "", 0), NULL, &mem, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "empty"));
	assert_int_equal(vmw_mem_open("file:", NULL, &mem, &err), -EINVAL);
	assert_int_equal(vmw_mem_open("file:/nonexistent", NULL, &mem, &err), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_core),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_offsets_outside_file),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_header_checks),
		cmocka_unit_test(test_segment_checks),
		cmocka_unit_test(test_pn_xnum),
		cmocka_unit_test(test_open_elf_file),
		cmocka_unit_test(test_open_kdump_refused),
		cmocka_unit_test(test_open_raw_layouts),
		cmocka_unit_test(test_open_file_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
