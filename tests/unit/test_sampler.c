/* SPDX-License-Identifier: MIT */
/* The sampler's choice of interval: host clock unless the guest disagrees. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sampler/sampler.h"

#define MS 1000000ull

static void test_interval(void **state)
{
	(void)state;
	/* Guest clock unknown: host interval. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 0, false, 4 * MS, 0), 1000 * MS);
	/* Guest clock agrees within two ticks, or ran ahead: the (precise) host interval. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 996 * MS, true, 4 * MS, 0), 1000 * MS);
	assert_int_equal(vmw_sampler_interval(1000 * MS, 1008 * MS, true, 4 * MS, 0), 1000 * MS);
	assert_int_equal(vmw_sampler_interval(1000 * MS, 9000 * MS, true, 4 * MS, 0), 1000 * MS);
	/* Guest was paused for 900 ms and busy 100 ms: its own 100 ms. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 100 * MS, true, 4 * MS, 100 * MS), 100 * MS);
	/* Guest clock stale (idle NO_HZ) but 300 ms of work happened: never below the work. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 50 * MS, true, 4 * MS, 300 * MS), 300 * MS);
	/* Paused the whole interval: no work, zero interval, so rates are 0, not invented. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 0, true, 4 * MS, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
