/* SPDX-License-Identifier: MIT */
/* systemd units, slices and containers from cgroup v2 paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "linux/linux.h"
#include "linux/cgroups.h"

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

/* ---- the pure helpers of cgroups.h -------------------------------------- */

static struct vmw_cgroup_stat cg(const char *path, uint32_t depth, uint64_t usage, bool cpu_ok)
{
	return (struct vmw_cgroup_stat){ .path = (char *)path, .depth = depth, .usage_usec = usage, .cpu_ok = cpu_ok };
}

/* Processes in each cgroup itself and in its subtree (parents before children). */
static void test_count_procs(void **state)
{
	struct vmw_cgroup_stat v[] = { cg("/", 0, 0, false), cg("/system.slice", 1, 0, true),
		cg("/system.slice/a.service", 2, 0, true), cg("/system.slice/a.service/sub", 3, 0, true),
		cg("/system.slice/b.service", 2, 0, true), cg("/user.slice", 1, 0, true) };
	struct vmw_cgroups c = { .cg = v, .n = ARRAY_SIZE(v) };
	struct vmw_proc p[6] = { { .cgroup = (char *)"/" }, { .cgroup = (char *)"/" },
		{ .cgroup = (char *)"/system.slice/a.service" }, { .cgroup = (char *)"/system.slice/a.service/sub" },
		{ .cgroup = (char *)"/system.slice/b.service" }, { .cgroup = NULL } };
	struct vmw_walk w = { .procs = p, .nprocs = 6 };

	(void)state;
	vmw_cgroups_count_procs(&c, &w);
	const uint32_t own[] = { 2, 0, 1, 1, 1, 0 }, tree[] = { 5, 3, 2, 1, 1, 0 };
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		assert_true(v[i].nr_procs_ok);
		assert_int_equal(v[i].nr_procs, own[i]);
		assert_int_equal(v[i].nr_procs_tree, tree[i]);
	}
}

/* %CPU by path over the interval; unknown for a new cgroup, one without
 * cpu.stat, and one whose usage went backwards (removed and made again). */
static void test_cpu_percent(void **state)
{
	struct vmw_cgroup_stat a[] = { cg("/", 0, 0, false), cg("/x.service", 1, 1000000, true),
		cg("/y.service", 1, 5000000, true), cg("/gone.service", 1, 1, true) };
	struct vmw_cgroup_stat b[] = { cg("/", 0, 0, false), cg("/new.service", 1, 10, true),
		cg("/y.service", 1, 400000, true), cg("/x.service", 1, 1500000, true) };
	struct vmw_cgroups pa = { .cg = a, .n = 4 }, pb = { .cg = b, .n = 4 };
	double pct[4];

	(void)state;
	assert_int_equal(vmw_cgroups_cpu_percent(&pa, &pb, 2000000000ull, pct), 0);
	assert_true(isnan(pct[0]) && isnan(pct[1]) && isnan(pct[2]));
	assert_true(fabs(pct[3] - 25.0) < 1e-9);   /* 0.5 s of CPU in 2 s */
	/* no previous tree, or no interval: all unknown */
	assert_int_equal(vmw_cgroups_cpu_percent(&(struct vmw_cgroups){ 0 }, &pb, 1000, pct), 0);
	assert_true(isnan(pct[3]));
	assert_int_equal(vmw_cgroups_cpu_percent(&pa, &pb, 0, pct), 0);
	assert_true(isnan(pct[3]));
}

/* The controllers field of a v1 line, as proc_cgroup_show() prints it. */
static void test_v1_controllers(void **state)
{
	const char *names[] = { "cpuset", "cpu", "cpuacct", "io", "memory", "devices", "freezer", "net_cls" };
	char buf[128];

	(void)state;
	assert_int_equal(vmw_cgroup_v1_controllers(buf, sizeof(buf), 0x6, names, 8, ""), 0);
	assert_string_equal(buf, "cpu,cpuacct");
	assert_int_equal(vmw_cgroup_v1_controllers(buf, sizeof(buf), 0, names, 8, "systemd"), 0);
	assert_string_equal(buf, "name=systemd");
	assert_int_equal(vmw_cgroup_v1_controllers(buf, sizeof(buf), 0x81, names, 8, "x"), 0);
	assert_string_equal(buf, "cpuset,net_cls,name=x");
	/* bits beyond the known subsystems print nothing, as for_each_subsys */
	assert_int_equal(vmw_cgroup_v1_controllers(buf, sizeof(buf), 0x100, names, 8, NULL), 0);
	assert_string_equal(buf, "");
	assert_int_equal(vmw_cgroup_v1_controllers(buf, 8, 0x6, names, 8, ""), -ENOSPC);
	assert_int_equal(vmw_cgroup_v1_controllers(buf, sizeof(buf), 0, names, 8, "a:b"), -EINVAL);
	assert_int_equal(vmw_cgroup_v1_controllers(buf, sizeof(buf), 0, names, 8, "a\nb"), -EINVAL);
	names[1] = "c,pu";
	assert_int_equal(vmw_cgroup_v1_controllers(buf, sizeof(buf), 0x2, names, 8, ""), -EINVAL);
}

/* Reading the lines back: id, controllers, path (which may hold ':'). */
static void test_v1_lines(void **state)
{
	const char *s = "3:cpu,cpuacct:/a:b\n2:name=systemd:/\n12::/x";
	struct vmw_cgroup_v1_line l;

	(void)state;
	assert_true(vmw_cgroup_v1_valid(s));
	assert_true(vmw_cgroup_v1_next(&s, &l));
	assert_int_equal(l.id, 3);
	assert_string_equal(l.controllers, "cpu,cpuacct");
	assert_string_equal(l.path, "/a:b");
	assert_true(vmw_cgroup_v1_next(&s, &l));
	assert_int_equal(l.id, 2);
	assert_string_equal(l.controllers, "name=systemd");
	assert_string_equal(l.path, "/");
	assert_true(vmw_cgroup_v1_next(&s, &l));
	assert_int_equal(l.id, 12);
	assert_string_equal(l.controllers, "");
	assert_false(vmw_cgroup_v1_next(&s, &l));
	assert_true(vmw_cgroup_v1_valid(""));
	assert_false(vmw_cgroup_v1_valid("x:cpu:/"));
	assert_false(vmw_cgroup_v1_valid("3:cpu"));
	assert_false(vmw_cgroup_v1_valid("3:cpu:/\n\n"));
	assert_false(vmw_cgroup_v1_valid("99999999999:cpu:/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_v1_controllers),
		cmocka_unit_test(test_v1_lines),
		cmocka_unit_test(test_count_procs),
		cmocka_unit_test(test_cpu_percent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
