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

static void check_sanitize(const char *in, const char *want)
{
	char out[128];
	size_t n = vmw_text_sanitize(out, sizeof(out), in);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_text_sanitize(void **state)
{
	(void)state;
	check_sanitize("sshd -D", "sshd -D");
	/* The forged-row attack of issue 9: CR, CSI erase line, newline. */
	check_sanitize("\r\x1b[2Kx\n   1337 /usr/sbin/fake-sshd", "??[2Kx?   1337 /usr/sbin/fake-sshd");
	/* OSC 8 hyperlink / window title ending in BEL or ST. */
	check_sanitize("\x1b]0;pwned\x07", "?]0;pwned?");
	check_sanitize("\x7f", "?");
	/* C1 controls as UTF-8 (U+009B is a one-character CSI) and as raw bytes. */
	check_sanitize("a\xc2\x9b" "2Kb", "a??2Kb");
	check_sanitize("a\x9b" "2K", "a?2K");
	/* Printable UTF-8 stays: names in other scripts are not garbage. */
	check_sanitize("J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\xa7", "J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\xa7");
	/* Invalid, overlong, surrogate, truncated sequences: '?' per byte. */
	check_sanitize("\xc0\xaf", "??");
	check_sanitize("\xe0\x80\xaf", "???");
	check_sanitize("\xed\xa0\x80", "???");
	check_sanitize("x\xe6\x97", "x??");
	/* Output is always terminated and never splits a character. */
	char out[4];
	assert_int_equal(vmw_text_sanitize(out, sizeof(out), "ab\xc3\xbc"), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(vmw_utf8_len(""), 0);
}

static void test_parse_seconds(void **state)
{
	uint64_t ns = 7;
	(void)state;
	assert_int_equal(vmw_parse_seconds("1", 60, &ns), 0);
	assert_int_equal(ns, 1000000000u);
	assert_int_equal(vmw_parse_seconds("0.5", 60, &ns), 0);
	assert_int_equal(ns, 500000000u);
	assert_int_equal(vmw_parse_seconds("1e-9", 60, &ns), 0);
	assert_int_equal(ns, 1000u);             /* at least 1 us */
	assert_int_equal(vmw_parse_seconds("60", 60, &ns), 0);
	ns = 7;
	const char *bad[] = { "", "0", "-1", "61", "nan", "inf", "1s", " ", "0x", NULL };
	for (int i = 0; bad[i]; i++)
		assert_int_equal(vmw_parse_seconds(bad[i], 60, &ns), -EINVAL);
	assert_int_equal(vmw_parse_seconds(NULL, 60, &ns), -EINVAL);
	assert_int_equal(ns, 7);                 /* untouched on error */
}

static void test_rcstr(void **state)
{
	char *a, *b;
	(void)state;
	assert_null(vmw_rcstr_new(NULL, 0));
	assert_null(vmw_rcstr_ref(NULL));
	vmw_rcstr_unref(NULL);
	a = vmw_rcstr_new("/system.slice/x.service-tail", 21);
	assert_non_null(a);
	assert_string_equal(a, "/system.slice/x.servi");
	b = vmw_rcstr_ref(a);
	assert_ptr_equal(a, b);
	vmw_rcstr_unref(a);
	assert_string_equal(b, "/system.slice/x.servi");   /* still held (ASan: no use after free) */
	vmw_rcstr_unref(b);
	a = vmw_rcstr_new("", 0);
	assert_string_equal(a, "");
	vmw_rcstr_unref(a);
}

/* Libraries loaded on demand: all of a table or none of it, and why not. */
static void test_dl_load(void **state)
{
	static const char *const ok_names[] = { "strlen", "memchr" };
	static const char *const bad_names[] = { "strlen", "vmw_no_such_function_in_libc" };
	size_t (*len_fn)(const char *) = NULL;
	void *(*chr_fn)(const void *, int, size_t) = NULL;
	void **const slots[] = { (void **)&len_fn, (void **)&chr_fn };
	char e[200] = "";

	assert_false(vmw_dl_load("libvmwatch-no-such-library.so.9", ok_names, slots, 2, e, sizeof(e)));
	assert_non_null(strstr(e, "libvmwatch-no-such-library.so.9"));
	assert_null(len_fn);
	assert_false(vmw_dl_load("libc.so.6", bad_names, slots, 2, e, sizeof(e)));
	assert_string_equal(e, "libc.so.6 has no vmw_no_such_function_in_libc");
	assert_null(len_fn);   /* none of the table was set */
	assert_false(vmw_dl_load("libc.so.6", ok_names, slots, VMW_DL_MAX + 1, e, sizeof(e)));
	assert_true(vmw_dl_load("libc.so.6", ok_names, slots, 2, e, sizeof(e)));
	assert_int_equal(len_fn("four"), 4);
	static const char abc[] = "abc";
	assert_ptr_equal(chr_fn(abc, 'c', 3), abc + 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_kinds),
		cmocka_unit_test(test_pidmap),
		cmocka_unit_test(test_text_sanitize),
		cmocka_unit_test(test_parse_seconds),
		cmocka_unit_test(test_rcstr),
		cmocka_unit_test(test_dl_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
