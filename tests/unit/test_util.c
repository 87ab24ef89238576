/* SPDX-License-Identifier: MIT */
/* util: error kinds (set at the source, derived from errno otherwise) and the pid map. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "util/util.h"

static void test_error_kinds(void **state)
{
	(void)state;
	struct vmw_error err = { 0 };

	assert_int_equal(vmw_error_set(&err, -EACCES, "open %s", "x"), -EACCES);
	assert_int_equal(err.kind, VMW_ERR_PERMISSION);
	assert_string_equal(vmw_error_kind_name(vmw_error_kind_of(&err, -EACCES)), "permission");
	/* A message mentioning BTF does not make the error a no_btf one: kinds are set, not guessed. */
	vmw_error_set(&err, -ENOENT, "BTF has no task_struct.foo");
	assert_int_equal(vmw_error_kind_of(&err, err.code), VMW_ERR_NOT_FOUND);
	vmw_error_setk(&err, VMW_ERR_MISSING_LAYOUT, -ENOENT, "BTF has no task_struct.%s", "foo");
	assert_string_equal(vmw_error_kind_name(vmw_error_kind_of(&err, err.code)), "missing_layout");
	/* The kind survives added context. */
	vmw_error_prefix(&err, "vm1: ");
	assert_int_equal(err.kind, VMW_ERR_MISSING_LAYOUT);
	assert_string_equal(err.msg, "vm1: BTF has no task_struct.foo");
	/* Nothing recorded: the errno decides; unknown errnos are plain errors. */
	assert_int_equal(vmw_error_kind_of(NULL, -ESRCH), VMW_ERR_GONE);
	assert_int_equal(vmw_error_kind_of(NULL, -ENOMEM), VMW_ERR_INTERNAL);
	assert_int_equal(vmw_error_kind_of(NULL, 0), VMW_ERR_INTERNAL);
	assert_string_equal(vmw_error_kind_name((enum vmw_error_kind)999), "error");
	for (int k = VMW_ERR_NONE; k < VMW_ERR__MAX; k++)
		assert_non_null(vmw_error_kind_name((enum vmw_error_kind)k));
}

static void test_pidmap(void **state)
{
	(void)state;
	struct vmw_pidmap m = { 0 };

	assert_int_equal(vmw_pidmap_get(&m, 1), -1);
	assert_int_equal(vmw_pidmap_reset(&m, 1000), 0);
	for (int i = 0; i < 1000; i++)
		assert_true(vmw_pidmap_put(&m, i * 7 - 3, (size_t)i));
	for (int i = 0; i < 1000; i++)
		assert_int_equal(vmw_pidmap_get(&m, i * 7 - 3), i);
	assert_int_equal(vmw_pidmap_get(&m, 2), -1);
	/* Reuse with fewer entries: old keys are gone. */
	assert_int_equal(vmw_pidmap_reset(&m, 2), 0);
	assert_true(vmw_pidmap_put(&m, 42, 0));
	assert_true(vmw_pidmap_put(&m, 42, 1)); /* duplicate: first one wins */
	assert_int_equal(vmw_pidmap_get(&m, 42), 0);
	assert_int_equal(vmw_pidmap_get(&m, 4), -1);
	/* Never more than half full, so lookups of absent keys end. */
	size_t puts = 0;
	while (vmw_pidmap_put(&m, (int32_t)(100 + puts), 0))
		puts++;
	assert_true(m.n <= m.cap / 2);
	assert_int_equal(vmw_pidmap_get(&m, -100), -1);
	vmw_pidmap_free(&m);
	assert_int_equal(vmw_pidmap_get(&m, 42), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_kinds),
		cmocka_unit_test(test_pidmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
