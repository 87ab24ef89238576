/* SPDX-License-Identifier: MIT */
/*
 * Owner hints of RAM files (src/mem/mem_owner.c): the parser on hostile
 * contents (the file is input: anything malformed and none of it is used),
 * the updater's bounds, and the file's trust rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "mem/mem_internal.h"

#define H "vmwatch ram-owners 1\n"

static int find(const char *text, uint64_t dev, uint64_t ino, struct vmw_qemu_id *id)
{
	return vmw_owner_hints_find(text, strlen(text), dev, ino, id);
}

static void test_find(void **state)
{
	struct vmw_qemu_id id = { 0 };

	assert_int_equal(find(H "1b 639d6 3551 4340529\n", 0x1b, 0x639d6, &id), 0);
	assert_int_equal(id.pid, 3551);
	assert_int_equal(id.start_ticks, 4340529);
	assert_int_equal(find(H "1b 639d6 3551 4340529\n2a ff 7 0\n", 0x2a, 0xff, &id), 0);
	assert_int_equal(id.pid, 7);
	assert_int_equal(id.start_ticks, 0);
	assert_int_equal(find(H "1b 639d6 3551 4340529\n", 0x1b, 0x639d7, &id), -ENOENT);
	assert_int_equal(find(H, 1, 2, &id), -ENOENT);
	/* The largest values each field may hold. */
	assert_int_equal(find(H "ffffffffffffffff ffffffffffffffff 2147483647 18446744073709551615\n",
			      UINT64_MAX, UINT64_MAX, &id), 0);
	assert_int_equal(id.pid, INT32_MAX);
	assert_int_equal(id.start_ticks, UINT64_MAX);
}

static void test_hostile(void **state)
{
	static const char *const bad[] = {
		"",
		"vmwatch ram-owners 2\n1 2 3 4\n",          /* another version */
		"vmwatch ram-owners 1",                      /* header cut */
		H "1 2 3 4",                                 /* no final newline */
		H "1 2 3\n",                                 /* a field missing */
		H "1 2 3 4 5\n",                             /* one too many */
		H "1  2 3 4\n",                              /* two spaces */
		H " 1 2 3 4\n",
		H "1 2 3 4 \n",
		H "1\t2 3 4\n",
		H "1 2 3 4\r\n",
		H "0x1 2 3 4\n",                             /* prefixes, signs */
		H "1 2 +3 4\n",
		H "1 2 -3 4\n",
		H "1 2 3 -4\n",
		H "A 2 3 4\n",                               /* uppercase hex */
		H "1 2 3a 4\n",                              /* hex where decimal is */
		H "1 2 0 4\n",                               /* pid 0 */
		H "1 2 2147483648 4\n",                      /* pid > INT32_MAX */
		H "1 2 99999999999999999999999 4\n",
		H "10000000000000000 2 3 4\n",               /* 2^64 */
		H "1 2 3 18446744073709551616\n",
		H "1 2 3 000000000000000000004\n",           /* more than 20 digits */
		H "1 2 3 4\n1 2 5 6\n",                      /* the same file twice */
		H "\n",                                      /* empty line */
		H "1 2 3 4\n\n",
	};
	struct vmw_qemu_id id = { .pid = 42, .start_ticks = 43 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = find(bad[i], 1, 2, &id);
		if (r != -EINVAL)
			fail_msg("case %zu (%s): %d", i, bad[i], r);
		assert_int_equal(id.pid, 42);   /* nothing written on failure */
	}
	/* A NUL inside (strlen would stop there: pass the length). */
	static const char nul[] = H "1 2 3\0 4\n";
	assert_int_equal(vmw_owner_hints_find(nul, sizeof(nul) - 1, 1, 2, &id), -EINVAL);
	/* One bad line spoils the whole file, also the good lines before it. */
	assert_int_equal(find(H "1 2 3 4\nzz\n", 1, 2, &id), -EINVAL);
}

static void test_bounds(void **state)
{
	char big[VMW_OWNER_HINTS_MAX_BYTES + 64];
	struct vmw_qemu_id id;
	size_t o = 0;

	/* More entries than are ever written. */
	o += (size_t)snprintf(big + o, sizeof(big) - o, H);
	for (int i = 0; i <= VMW_OWNER_HINTS_MAX; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "1 %x 3 4\n", i);
	assert_int_equal(vmw_owner_hints_find(big, o, 1, 0, &id), -EINVAL);
	/* Longer than the size bound, even if well formed. */
	o = (size_t)snprintf(big, sizeof(big), H "1 2 3 4\n");
	memset(big + o, '\n', sizeof(big) - o);
	assert_int_equal(vmw_owner_hints_find(big, sizeof(big), 1, 2, &id), -EINVAL);
}

static void test_update(void **state)
{
	char out[VMW_OWNER_HINTS_MAX_BYTES], prev[VMW_OWNER_HINTS_MAX_BYTES];
	struct vmw_owner_hint h = { .dev = 0x1b, .ino = 0x10, .owner = { .pid = 100, .start_ticks = 5 } };
	struct vmw_qemu_id id;
	ssize_t n;

	n = vmw_owner_hints_update(NULL, 0, &h, out, sizeof(out));
	assert_true(n > 0);
	assert_memory_equal(out, H "1b 10 100 5\n", (size_t)n);
	/* A new owner of the same file replaces the old entry, first. */
	memcpy(prev, out, (size_t)n);
	h.ino = 0x11;
	n = vmw_owner_hints_update(prev, (size_t)n, &h, out, sizeof(out));
	memcpy(prev, out, (size_t)n);
	h.ino = 0x10;
	h.owner.pid = 200;
	n = vmw_owner_hints_update(prev, (size_t)n, &h, out, sizeof(out));
	assert_memory_equal(out, H "1b 10 200 5\n1b 11 100 5\n", (size_t)n);
	/* A malformed old file is replaced. */
	n = vmw_owner_hints_update("garbage", 7, &h, out, sizeof(out));
	assert_memory_equal(out, H "1b 10 200 5\n", (size_t)n);
	/* At most VMW_OWNER_HINTS_MAX entries: the oldest go. */
	for (unsigned i = 0; i < 2 * VMW_OWNER_HINTS_MAX; i++) {
		memcpy(prev, out, (size_t)n);
		h.ino = 0x1000 + i;
		n = vmw_owner_hints_update(prev, (size_t)n, &h, out, sizeof(out));
		assert_true(n > 0);
	}
	assert_int_equal(vmw_owner_hints_find(out, (size_t)n, 0x1b, 0x1000 + 2 * VMW_OWNER_HINTS_MAX - 1, &id), 0);
	assert_int_equal(vmw_owner_hints_find(out, (size_t)n, 0x1b, 0x1000 + VMW_OWNER_HINTS_MAX, &id), 0);
	assert_int_equal(vmw_owner_hints_find(out, (size_t)n, 0x1b, 0x1000 + VMW_OWNER_HINTS_MAX - 1, &id),
			 -ENOENT);
	/* A buffer too small, and an owner that is no process. */
	assert_int_equal(vmw_owner_hints_update(NULL, 0, &h, out, 10), -ENOBUFS);
	h.owner.pid = 0;
	assert_int_equal(vmw_owner_hints_update(NULL, 0, &h, out, sizeof(out)), -EINVAL);
}

/* The file on disk: written and read back; not used when others may write it
 * or when it is a symlink. */
static void test_file(void **state)
{
	char dir[] = "/tmp/vmw-owner-XXXXXX", path[256], link[256];
	struct vmw_qemu_id id = { .pid = 9, .start_ticks = 8 }, got;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ram-owners", dir);
	assert_int_equal(vmw_owner_hint_get(dir, 1, 2, &got), -ENOENT);
	assert_int_equal(vmw_owner_hint_put(dir, 1, 2, &id), 0);
	assert_int_equal(vmw_owner_hint_get(dir, 1, 2, &got), 0);
	assert_int_equal(got.pid, 9);
	assert_int_equal(got.start_ticks, 8);
	assert_int_equal(chmod(path, 0622), 0);
	assert_int_equal(vmw_owner_hint_get(dir, 1, 2, &got), -EPERM);
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(link, sizeof(link), "%s/target", dir);
	assert_int_equal(rename(path, link), 0);
	assert_int_equal(symlink(link, path), 0);
	assert_int_equal(vmw_owner_hint_get(dir, 1, 2, &got), -ELOOP);
	unlink(path);
	unlink(link);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
