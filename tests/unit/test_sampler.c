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
	/* Always the host's interval: never shorter than real time, so no invented load. */
	assert_int_equal(vmw_sampler_interval(1000 * MS), 1000 * MS);
	assert_int_equal(vmw_sampler_interval(10 * MS), 10 * MS);
	assert_int_equal(vmw_sampler_interval(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
