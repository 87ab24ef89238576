/* SPDX-License-Identifier: MIT */
/* Pure logic of the guest summary: /proc/loadavg and /proc/uptime formatting,
 * nsec_to_clock_t, si_mem_available() and get_idle_time()'s NO_HZ rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "linux/linux.h"

#define FIXED_1 2048ul

static void check_loadavg(unsigned long a, unsigned long b, unsigned long c, const char *want)
{
	const unsigned long load[3] = { a, b, c };
	char buf[64];
	int n = vmw_summary_format_loadavg(load, buf, sizeof(buf));
	assert_string_equal(buf, want);
	assert_int_equal(n, (int)strlen(want));
}

static void test_loadavg_format(void **state)
{
	(void)state;
	check_loadavg(0, 0, 0, "0.00 0.00 0.00");
	/* Seen in a 6.12 guest: avenrun {839, 250, 74}. */
	check_loadavg(839, 250, 74, "0.41 0.12 0.04");
	check_loadavg(FIXED_1, 2 * FIXED_1, 10 * FIXED_1, "1.00 2.00 10.00");
	/* get_avenrun() adds FIXED_1/200 (= 10) before truncating: x.995 and up
	 * round to the next integer, just below stays. */
	check_loadavg(FIXED_1 + 2037, FIXED_1 + 2038, FIXED_1 + 2047, "1.99 2.00 2.00");
	/* 0.005 rounds to 0.01: (11 + 10) * 100 >> 11 = 1; 10 rounds to 0.00. */
	check_loadavg(11, 10, 0, "0.01 0.00 0.00");
	/* Large loads keep two decimals. */
	check_loadavg(1000 * FIXED_1 + FIXED_1 / 2, 0, 0, "1000.50 0.00 0.00");
}

static void test_clock_t(void **state)
{
	(void)state;
	assert_int_equal(vmw_summary_clock_t(0), 0);
	assert_int_equal(vmw_summary_clock_t(9999999), 0);
	assert_int_equal(vmw_summary_clock_t(10000000), 1);
	assert_int_equal(vmw_summary_clock_t(4000000ull * 250), 100);        /* 250 ticks of HZ=250 */
	assert_int_equal(vmw_summary_clock_t(715992475000ull), 71599);
	assert_true(vmw_summary_clock_t(UINT64_MAX) == UINT64_MAX / 10000000u);
}

static void test_uptime_format(void **state)
{
	char buf[64];
	(void)state;
	vmw_summary_format_uptime(381748744965ull, 715992475000ull, buf, sizeof(buf));
	assert_string_equal(buf, "381.74 715.99");
	vmw_summary_format_uptime(0, 0, buf, sizeof(buf));
	assert_string_equal(buf, "0.00 0.00");
	/* Hundredths are truncated, not rounded: tv_nsec / (NSEC_PER_SEC / 100). */
	vmw_summary_format_uptime(1999999999ull, 10000000ull, buf, sizeof(buf));
	assert_string_equal(buf, "1.99 0.01");
}

static void test_mem_available(void **state)
{
	struct vmw_mem_available_in in;
	(void)state;

	/* Half of the page cache and of reclaimable slab count, capped by wmark_low. */
	in = (struct vmw_mem_available_in){
		.free = 100000, .totalreserve = 1000, .active_file = 3000, .inactive_file = 5000,
		.slab_reclaimable = 800, .misc_reclaimable = 200, .wmark_low = 1500,
	};
	/* 99000 + (8000 - min(4000, 1500)) + (1000 - min(500, 1500)) = 99000 + 6500 + 500 */
	assert_int_equal(vmw_summary_mem_available(&in), 106000);

	/* A large low watermark keeps half of the cache. */
	in.wmark_low = 100000;
	assert_int_equal(vmw_summary_mem_available(&in), 99000 + 4000 + 500);

	/* Odd counts: pagecache / 2 truncates, so the larger half is available. */
	in = (struct vmw_mem_available_in){ .free = 10, .active_file = 3, .wmark_low = 1000 };
	assert_int_equal(vmw_summary_mem_available(&in), 10 + 2);

	/* No file cache at all (an initramfs guest): free - reserve + half the slab. */
	in = (struct vmw_mem_available_in){ .free = 109029, .totalreserve = 2793,
		.slab_reclaimable = 1444, .misc_reclaimable = 0, .wmark_low = 1003 };
	assert_int_equal(vmw_summary_mem_available(&in), 109029 - 2793 + 722);

	/* Reserve above free memory: clamped at 0, never a huge unsigned. */
	in = (struct vmw_mem_available_in){ .free = 100, .totalreserve = 5000 };
	assert_int_equal(vmw_summary_mem_available(&in), 0);
	in = (struct vmw_mem_available_in){ .free = 100, .totalreserve = 5000, .active_file = 6000,
		.wmark_low = 0 };
	assert_int_equal(vmw_summary_mem_available(&in), 1100);
}

static void test_sleep_time(void **state)
{
	const int64_t ms = 1000000;
	(void)state;

	/* Without NO_HZ (get_cpu_idle_time_us() == -1) or for an offline CPU: kcpustat. */
	assert_int_equal(vmw_summary_sleep_time(false, true, true, true, 5 * ms, 0, 9 * ms, 777), 777);
	assert_int_equal(vmw_summary_sleep_time(true, false, true, true, 5 * ms, 0, 9 * ms, 777), 777);
	/* Busy CPU: the accumulated sleep time. */
	assert_int_equal(vmw_summary_sleep_time(true, true, false, true, 5 * ms, 1 * ms, 9 * ms, 0), 5 * ms);
	/* Sleeping CPU: plus now - idle_entrytime... */
	assert_int_equal(vmw_summary_sleep_time(true, true, true, true, 5 * ms, 7 * ms, 9 * ms, 0), 7 * ms);
	/* ...but only into the counter the sleep belongs to (idle vs iowait). */
	assert_int_equal(vmw_summary_sleep_time(true, true, true, false, 5 * ms, 7 * ms, 9 * ms, 0), 5 * ms);
	/* "now" before the entry time (a stale clock) adds nothing. */
	assert_int_equal(vmw_summary_sleep_time(true, true, true, true, 5 * ms, 9 * ms, 7 * ms, 0), 5 * ms);
	/* ktime_to_us() truncation, then back to ns. */
	assert_int_equal(vmw_summary_sleep_time(true, true, true, true, 1999, 10, 1010, 0), 2000);
	assert_int_equal(vmw_summary_sleep_time(true, true, false, true, 1999, 0, 0, 0), 1000);
	/* Garbage (negative) sleep time reads 0. */
	assert_int_equal(vmw_summary_sleep_time(true, true, false, true, -5, 0, 0, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loadavg_format),
		cmocka_unit_test(test_clock_t),
		cmocka_unit_test(test_uptime_format),
		cmocka_unit_test(test_mem_available),
		cmocka_unit_test(test_sleep_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
