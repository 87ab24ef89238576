/* SPDX-License-Identifier: MIT */
/* The session's state machine on a target with no kernel and no QEMU
 * process (a sparse file of zeros): typed failures, WAITING with back-off or
 * GONE by policy, a QEMU identity that no longer exists, memory-only opens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "session/session.h"

#define MS 1000000ull

static char target[256];

static int make_zeros(void **state)
{
	char path[] = "/tmp/vmwatch-test-session-XXXXXX";
	int fd = mkstemp(path);

	(void)state;
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0)
		return -1;
	close(fd);
	snprintf(target, sizeof(target), "file:%s", path);
	return 0;
}

static int remove_zeros(void **state)
{
	(void)state;
	unlink(target + 5);
	return 0;
}

static void test_open_not_linux(void **state)
{
	struct vmw_session_opts o = { .sz = sizeof(o), .no_cache = true, .want_linux = true };
	struct vmw_session *s = NULL;
	struct vmw_error err = { 0 };
	int r;

	(void)state;
	r = vmw_session_open(target, &o, &s, &err);
	assert_true(r < 0);
	assert_null(s);
	assert_int_equal(vmw_error_kind_of(&err, r), VMW_ERR_NOT_LINUX);
	assert_string_equal(vmw_error_kind_name(vmw_error_kind_of(&err, r)), "not_linux");
	assert_non_null(strstr(err.msg, target));
}

static void test_no_process_gone_or_waiting(void **state)
{
	struct vmw_session_opts o = { .sz = sizeof(o), .no_cache = true,
				      .policy = { .min_ns = 10000 * MS, .max_ns = 20000 * MS } };
	struct vmw_session *s;
	struct vmw_error err = { 0 };
	bool reattached = true;

	(void)state;
	/* top's policy: nothing tells when a file would become readable. */
	assert_int_equal(vmw_session_new(target, &o, &s), 0);
	assert_int_equal(vmw_session_state(s), VMW_SESSION_WAITING);
	assert_int_equal(vmw_session_poll(s, &reattached, &err), VMW_SESSION_GONE);
	assert_false(reattached);
	assert_int_equal(vmw_error_kind_of(&err, err.code), VMW_ERR_NOT_LINUX);
	assert_null(vmw_session_kernel(s));
	vmw_session_close(s);

	/* The agent's: retry later, with the failure kept for the report. */
	o.policy.wait_without_process = true;
	assert_int_equal(vmw_session_new(target, &o, &s), 0);
	assert_int_equal(vmw_session_poll(s, NULL, &err), VMW_SESSION_WAITING);
	assert_true(vmw_session_retry_at(s) >= vmw_now_ns() + 9000 * MS);
	memset(&err, 0, sizeof(err));
	assert_int_equal(vmw_session_poll(s, NULL, &err), VMW_SESSION_WAITING);   /* not due: no attempt */
	assert_int_equal(err.kind, VMW_ERR_NOT_LINUX);
	assert_int_equal(vmw_session_attaches(s), 0);
	vmw_session_close(s);
}

static void test_expected_process_gone(void **state)
{
	struct vmw_session_opts o = { .sz = sizeof(o), .memory_only = true,
				      .expect = { .pid = 2147483646, .start_ticks = 1 } };
	struct vmw_session *s;
	struct vmw_error err = { 0 };

	(void)state;
	assert_int_equal(vmw_session_new(target, &o, &s), 0);
	assert_int_equal(vmw_session_poll(s, NULL, &err), VMW_SESSION_GONE);
	assert_int_equal(err.kind, VMW_ERR_GONE);
	assert_string_equal(vmw_error_kind_name(err.kind), "gone");
	assert_int_equal(vmw_session_poll(s, NULL, &err), VMW_SESSION_GONE);   /* final */
	vmw_session_close(s);
}

static void test_memory_only(void **state)
{
	struct vmw_session_opts o = { .sz = sizeof(o), .memory_only = true };
	struct vmw_session *s = NULL;
	struct vmw_error err = { 0 };
	bool reattached = true;

	(void)state;
	assert_int_equal(vmw_session_open(target, &o, &s, &err), 0);
	assert_int_equal(vmw_session_state(s), VMW_SESSION_ATTACHED);
	assert_non_null(vmw_session_mem(s));
	assert_int_equal(vmw_mem_size(vmw_session_mem(s)), 16 << 20);
	assert_null(vmw_session_kernel(s));
	assert_string_equal(vmw_session_name(s), target);
	assert_int_equal(vmw_session_qemu(s).pid, 0);
	assert_int_equal(vmw_session_poll(s, &reattached, &err), VMW_SESSION_ATTACHED);
	assert_false(reattached);
	/* A failed read with no process behind it and top's policy: final. */
	vmw_error_set(&err, -EIO, "reading guest RAM failed");
	assert_int_equal(vmw_session_fail(s, -EIO, &err), VMW_SESSION_GONE);
	assert_null(vmw_session_mem(s));
	assert_int_equal(err.kind, VMW_ERR_IO);
	vmw_session_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_not_linux),
		cmocka_unit_test(test_no_process_gone_or_waiting),
		cmocka_unit_test(test_expected_process_gone),
		cmocka_unit_test(test_memory_only),
	};
	return cmocka_run_group_tests(tests, make_zeros, remove_zeros);
}
