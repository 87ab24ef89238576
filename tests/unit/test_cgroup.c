/* SPDX-License-Identifier: MIT */
/* systemd units, slices and containers from cgroup v2 paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "linux/linux.h"

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_classify(void **state)
{
	struct vmw_cgroup_info c;
	(void)state;
	assert_true(vmw_cgroup_classify("/system.slice/ssh.service", &c));
	assert_string_equal(c.unit, "ssh.service");
	assert_string_equal(c.slice, "system.slice");
	assert_string_equal(c.container_id, "");
	assert_true(vmw_cgroup_classify("/user.slice/user-1001.slice/user@1001.service/init.scope", &c));
	assert_string_equal(c.unit, "user@1001.service");
	assert_string_equal(c.slice, "user-1001.slice");
	assert_true(vmw_cgroup_classify("/system.slice/docker-" ID64 ".scope", &c));
	assert_string_equal(c.runtime, "docker");
	assert_string_equal(c.container_id, ID64);
	assert_string_equal(c.unit, "docker-" ID64 ".scope");
	assert_true(vmw_cgroup_classify("/machine.slice/libpod-" ID64 ".scope/container", &c));
	assert_string_equal(c.runtime, "podman");
	assert_true(vmw_cgroup_classify("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
					"12345678_1234_1234_1234_123456789abc.slice/cri-containerd-" ID64 ".scope",
					&c));
	assert_string_equal(c.runtime, "containerd");
	assert_string_equal(c.pod_uid, "12345678-1234-1234-1234-123456789abc");
	assert_true(vmw_cgroup_classify("/kubepods/burstable/pod12345678-1234-1234-1234-123456789abc/" ID64, &c));
	assert_string_equal(c.runtime, "kubernetes");
	assert_string_equal(c.container_id, ID64);
	assert_string_equal(c.pod_uid, "12345678-1234-1234-1234-123456789abc");
	/* Nothing to say; hostile near-misses. */
	assert_false(vmw_cgroup_classify("/", &c));
	assert_false(vmw_cgroup_classify("", &c));
	assert_false(vmw_cgroup_classify("/docker-XYZ.scope.x", &c));
	assert_true(vmw_cgroup_classify("/docker-0123.scope", &c));   /* a unit, no container */
	assert_string_equal(c.container_id, "");
	assert_true(vmw_cgroup_classify("/kubepods/podNOTAUUID/x.service", &c));
	assert_string_equal(c.pod_uid, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
