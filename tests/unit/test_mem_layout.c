/* SPDX-License-Identifier: MIT */
/* Where QEMU pc/q35 machines put the RAM block in guest-physical space. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "mem/mem_internal.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static struct vmw_ram_layout layout_of(const char *machine, uint64_t ram, uint64_t max_below)
{
	struct vmw_machine m;
	struct vmw_ram_layout l;
	struct vmw_error err = { 0 };

	assert_int_equal(vmw_machine_parse(machine, &m, &err), 0);
	assert_int_equal(vmw_ram_layout(&m, ram, max_below, &l, &err), 0);
	assert_int_equal(l.below_4g + l.above_4g, ram);
	return l;
}

static void assert_piece(const struct vmw_ram_piece *p, uint64_t gpa, uint64_t offset, uint64_t len)
{
	assert_int_equal(p->gpa, gpa);
	assert_int_equal(p->offset, offset);
	assert_int_equal(p->len, len);
}

static void test_pc_512m(void **state)
{
	struct vmw_ram_layout l = layout_of("pc", 512 * MiB, 0);

	assert_int_equal(l.below_4g, 512 * MiB);
	assert_int_equal(l.above_4g, 0);
	assert_int_equal(l.n, 2);
	/* low RAM, then the legacy VGA/BIOS window is left out */
	assert_piece(&l.piece[0], 0, 0, 0xa0000);
	assert_piece(&l.piece[1], 0x100000, 0x100000, 512 * MiB - 0x100000);
}

static void test_pc_3_5g_splits_at_3g(void **state)
{
	/* RAM == the traditional 3.5 GiB split: gigabyte alignment moves it to 3 GiB */
	struct vmw_ram_layout l = layout_of("pc", 3584 * MiB, 0);

	assert_int_equal(l.below_4g, 3 * GiB);
	assert_int_equal(l.above_4g, 512 * MiB);
	assert_int_equal(l.n, 3);
	assert_piece(&l.piece[2], 4 * GiB, 3 * GiB, 512 * MiB);
}

static void test_pc_3_25g_stays_low(void **state)
{
	struct vmw_ram_layout l = layout_of("pc-i440fx-7.2", 3328 * MiB, 0);

	assert_int_equal(l.below_4g, 3328 * MiB);
	assert_int_equal(l.above_4g, 0);
	assert_int_equal(l.n, 2);
}

static void test_pc_5g(void **state)
{
	struct vmw_ram_layout l = layout_of("pc", 5 * GiB, 0);

	assert_int_equal(l.below_4g, 3 * GiB);
	assert_int_equal(l.above_4g, 2 * GiB);
	assert_int_equal(l.n, 3);
	assert_piece(&l.piece[0], 0, 0, 0xa0000);
	assert_piece(&l.piece[1], 0x100000, 0x100000, 3 * GiB - 0x100000);
	assert_piece(&l.piece[2], 4 * GiB, 3 * GiB, 2 * GiB);
}

static void test_pc_old_machine_keeps_3_5g(void **state)
{
	/* pc-i440fx-1.7 predates gigabyte_align: 4 GiB -> 3.5 GiB low, 512 MiB high */
	struct vmw_ram_layout l = layout_of("pc-i440fx-1.7", 4 * GiB, 0);

	assert_int_equal(l.below_4g, 3584 * MiB);
	assert_int_equal(l.above_4g, 512 * MiB);
	l = layout_of("pc-1.3", 5 * GiB, 0);
	assert_int_equal(l.below_4g, 3584 * MiB);
}

static void test_q35_5g(void **state)
{
	struct vmw_ram_layout l = layout_of("q35", 5 * GiB, 0);

	assert_int_equal(l.below_4g, 2 * GiB);
	assert_int_equal(l.above_4g, 3 * GiB);
	assert_piece(&l.piece[2], 4 * GiB, 2 * GiB, 3 * GiB);
}

static void test_q35_2_5g_stays_low(void **state)
{
	struct vmw_ram_layout l = layout_of("pc-q35-7.2", 2560 * MiB, 0);

	assert_int_equal(l.below_4g, 2560 * MiB);
	assert_int_equal(l.above_4g, 0);
}

static void test_q35_2_75g_splits_at_2g(void **state)
{
	struct vmw_ram_layout l = layout_of("q35", 0xb0000000ULL, 0);

	assert_int_equal(l.below_4g, 2 * GiB);
	assert_int_equal(l.above_4g, 0xb0000000ULL - 2 * GiB);
}

static void test_max_ram_below_4g(void **state)
{
	struct vmw_ram_layout l;

	/* QEMU's own examples (pc_init1 comment) */
	l = layout_of("pc", 4 * GiB, 2 * GiB);
	assert_int_equal(l.below_4g, 2 * GiB);
	assert_int_equal(l.above_4g, 2 * GiB);
	l = layout_of("pc", 3968 * MiB, 4 * GiB);
	assert_int_equal(l.below_4g, 3968 * MiB);
	assert_int_equal(l.above_4g, 0);
	/* raised above 3 GiB on a large pc machine: still capped by gigabyte alignment */
	l = layout_of("pc", 5 * GiB, 0xe0000000ULL);
	assert_int_equal(l.below_4g, 3 * GiB);
	/* q35: min(rule, max-ram-below-4g) */
	l = layout_of("q35", 2 * GiB, 1 * GiB);
	assert_int_equal(l.below_4g, 1 * GiB);
	assert_int_equal(l.above_4g, 1 * GiB);
	l = layout_of("q35", 5 * GiB, 3 * GiB);
	assert_int_equal(l.below_4g, 2 * GiB);
}

static void test_max_ram_below_4g_over_4g_refused(void **state)
{
	struct vmw_machine m = { VMW_MACHINE_PC, true };
	struct vmw_ram_layout l;
	struct vmw_error err = { 0 };

	assert_int_equal(vmw_ram_layout(&m, GiB, 5 * GiB, &l, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "max-ram-below-4g"));
	assert_int_equal(vmw_ram_layout(&m, 0, 0, &l, &err), -EINVAL);
}

static void test_tiny_ram(void **state)
{
	struct vmw_ram_layout l = layout_of("pc", 512 * 1024, 0);

	assert_int_equal(l.n, 1);
	assert_piece(&l.piece[0], 0, 0, 512 * 1024);
}

static void test_unknown_machines(void **state)
{
	static const char *const bad[] = { "microvm", "isapc", "none", "virt", "x-remote" };
	struct vmw_machine m;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vmw_error err = { 0 };
		assert_int_equal(vmw_machine_parse(bad[i], &m, &err), -ENOTSUP);
		assert_non_null(strstr(err.msg, bad[i]));
	}
	assert_int_equal(vmw_machine_parse("pc-i440fx-rhel7.6.0", &m, NULL), 0);
	assert_int_equal(m.family, VMW_MACHINE_PC);
	assert_true(m.gigabyte_align);
	assert_int_equal(vmw_machine_parse("pc-q35-rhel9.2.0", &m, NULL), 0);
	assert_int_equal(m.family, VMW_MACHINE_Q35);
}

/* The layout applied to a local RAM block: reads land at the right offsets. */
static void test_layout_segments(void **state)
{
	struct vmw_machine m = { VMW_MACHINE_PC, true };
	struct vmw_ram_layout l;
	struct vmw_mem *mem;
	const struct vmw_mem_range *r;
	size_t size = 2 * MiB;
	uint8_t *block = malloc(size), b[4];

	for (size_t i = 0; i < size; i++)
		block[i] = (uint8_t)(i * 7 + (i >> 12));
	assert_int_equal(vmw_ram_layout(&m, size, 0, &l, NULL), 0);
	assert_int_equal(vmw_mem_new(&mem), 0);
	assert_int_equal(vmw_mem_add_layout(mem, &l, block, 0), 0);
	assert_int_equal(vmw_mem_finish(mem), 0);
	assert_int_equal(vmw_mem_ranges(mem, &r), 2);
	assert_int_equal(r[1].start, 0x100000);
	assert_int_equal(vmw_mem_size(mem), size - 0x60000);

	assert_int_equal(vmw_mem_read(mem, 0x9fffe, b, 2), 0);
	assert_memory_equal(b, block + 0x9fffe, 2);
	assert_int_equal(vmw_mem_read(mem, 0x9fffe, b, 4), -EFAULT);
	assert_int_equal(vmw_mem_read(mem, 0xc0000, b, 4), -EFAULT);
	assert_int_equal(vmw_mem_read(mem, 0x123456, b, 4), 0);
	assert_memory_equal(b, block + 0x123456, 4);
	assert_int_equal(vmw_mem_read(mem, size - 2, b, 4), -EFAULT);
	vmw_mem_close(mem);
	free(block);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pc_512m),
		cmocka_unit_test(test_pc_3_5g_splits_at_3g),
		cmocka_unit_test(test_pc_3_25g_stays_low),
		cmocka_unit_test(test_pc_5g),
		cmocka_unit_test(test_pc_old_machine_keeps_3_5g),
		cmocka_unit_test(test_q35_5g),
		cmocka_unit_test(test_q35_2_5g_stays_low),
		cmocka_unit_test(test_q35_2_75g_splits_at_2g),
		cmocka_unit_test(test_max_ram_below_4g),
		cmocka_unit_test(test_max_ram_below_4g_over_4g_refused),
		cmocka_unit_test(test_tiny_ram),
		cmocka_unit_test(test_unknown_machines),
		cmocka_unit_test(test_layout_segments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
