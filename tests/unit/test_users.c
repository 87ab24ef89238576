/* SPDX-License-Identifier: MIT */
/* Parsing the guest's /etc/passwd, /etc/group and /etc/os-release text
 * (hostile: bad lines are skipped, names bounded, the first of an id counts). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "linux/linux.h"

static void test_passwd(void **state)
{
	struct vmw_users *u;
	const char *text =
		"root:x:0:0:root:/root:/bin/bash\n"
		"alice:x:1001:1001:Alice:/home/alice:/bin/bash\n"
		"dup:x:1001:1001::/:/bin/sh\n"                /* second entry of 1001: ignored */
		"bad line without colons\n"
		"neg:x:-5:0::/:/bin/sh\n"
		"big:x:4294967296:0::/:/bin/sh\n"             /* beyond 32 bits */
		"sp ace:x:7:7::/:/bin/sh\n"
		"esc\x1b[2J:x:8:8::/:/bin/sh\n"
		"waytoolongnamewaytoolongnamewaytoolong:x:9:9::/:\n"
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";  /* no final newline */
	(void)state;
	assert_int_equal(vmw_users_new(&u), 0);
	assert_int_equal(vmw_users_parse(u, false, text, strlen(text)), 3);
	assert_string_equal(vmw_users_name(u, 0), "root");
	assert_string_equal(vmw_users_name(u, 1001), "alice");
	assert_string_equal(vmw_users_name(u, 65534), "nobody");
	assert_null(vmw_users_name(u, 7));
	assert_null(vmw_users_name(u, 8));
	assert_null(vmw_users_name(u, 9));
	assert_null(vmw_users_name(u, 4));
	assert_null(vmw_users_group(u, 0));
	assert_int_equal(vmw_users_parse(u, true, "devs:x:1100:alice,bob\n", 22), 1);
	assert_string_equal(vmw_users_group(u, 1100), "devs");
	assert_string_equal(vmw_users_name(u, 0), "root");   /* users kept */
	/* Re-parsing replaces; an empty file forgets. */
	assert_int_equal(vmw_users_parse(u, false, "", 0), 0);
	assert_null(vmw_users_name(u, 0));
	vmw_users_free(u);
	assert_null(vmw_users_name(NULL, 0));
}

static void test_os_release(void **state)
{
	struct vmw_os_release os;
	const char *text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
			   "VERSION_ID=\"12\"\nID=debian\nID_LIKE=x\nX=\"a \\\"q\\\"\"\n";
	(void)state;
	vmw_os_release_parse(text, strlen(text), &os);
	assert_string_equal(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
	assert_string_equal(os.id, "debian");
	assert_string_equal(os.version_id, "12");
	const char *t2 = "PRETTY_NAME='single'\nVERSION_ID=\"unterminated";
	vmw_os_release_parse(t2, strlen(t2), &os);
	assert_string_equal(os.pretty_name, "single");
	assert_string_equal(os.version_id, "unterminated");
	assert_string_equal(os.id, "");
	/* Longer than the field: cut, terminated. */
	char big[400] = "ID=";
	memset(big + 3, 'a', 300);
	vmw_os_release_parse(big, strlen(big), &os);
	assert_int_equal(strlen(os.id), sizeof(os.id) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passwd),
		cmocka_unit_test(test_os_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
