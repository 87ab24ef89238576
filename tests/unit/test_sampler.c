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
	assert_int_equal(vmw_sampler_interval(1000 * MS, 0, false, 4 * MS), 1000 * MS);
	/* Guest clock agrees within two ticks: the (more precise) host interval. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 996 * MS, true, 4 * MS), 1000 * MS);
	assert_int_equal(vmw_sampler_interval(1000 * MS, 1008 * MS, true, 4 * MS), 1000 * MS);
	/* Guest was paused for most of the interval: its own clock. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 100 * MS, true, 4 * MS), 100 * MS);
	/* Guest clock did not move at all: a zero interval, so rates are 0, not invented. */
	assert_int_equal(vmw_sampler_interval(1000 * MS, 0, true, 4 * MS), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
