/* SPDX-License-Identifier: MIT */
/*
 * test_virt.c - src/virt: domain XML parsing (RAM backing, OpenStack Nova
 * metadata), target resolution, and list/lookup/watch against libvirt's
 * in-process test driver (test:///default; no libvirtd needed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>

#include "virt/virt.h"

/* The shape of a Nova (nova/1.1) guest as `virsh dumpxml` shows it on a
 * compute node; values invented. */
static const char NOVA_XML[] =
	"<domain type='kvm' id='7'>\n"
	"  <name>instance-0000002a</name>\n"
	"  <uuid>3f1c9a52-8d7e-4b0a-9c61-2e5d4f7a8b90</uuid>\n"
	"  <metadata>\n"
	"    <nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\">\n"
	"      <nova:package version=\"27.2.0\"/>\n"
	"      <nova:name>web-frontend-2</nova:name>\n"
	"      <nova:creationTime>2024-03-11 09:14:52</nova:creationTime>\n"
	"      <nova:flavor name=\"m1.medium\">\n"
	"        <nova:memory>4096</nova:memory>\n"
	"        <nova:disk>40</nova:disk>\n"
	"        <nova:swap>0</nova:swap>\n"
	"        <nova:ephemeral>0</nova:ephemeral>\n"
	"        <nova:vcpus>2</nova:vcpus>\n"
	"      </nova:flavor>\n"
	"      <nova:owner>\n"
	"        <nova:user uuid=\"b7e0c2d4a1f94e3c8d5b6a7f9e0d1c2b\">alice</nova:user>\n"
	"        <nova:project uuid=\"5a4c3b2d1e0f49a8b7c6d5e4f3a2b1c0\">shop-prod</nova:project>\n"
	"      </nova:owner>\n"
	"      <nova:root type=\"image\" uuid=\"0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a\"/>\n"
	"      <nova:ports>\n"
	"        <nova:port uuid=\"e1d2c3b4-a596-4877-8695-a4b3c2d1e0f9\">\n"
	"          <nova:ip type=\"fixed\" address=\"10.0.0.12\" ipVersion=\"4\"/>\n"
	"        </nova:port>\n"
	"      </nova:ports>\n"
	"    </nova:instance>\n"
	"  </metadata>\n"
	"  <memory unit='KiB'>4194304</memory>\n"
	"  <currentMemory unit='KiB'>4194304</currentMemory>\n"
	"  <memoryBacking>\n"
	"    <hugepages>\n"
	"      <page size='2048' unit='KiB'/>\n"
	"    </hugepages>\n"
	"    <source type='memfd'/>\n"
	"    <access mode='shared'/>\n"
	"  </memoryBacking>\n"
	"  <vcpu placement='static'>2</vcpu>\n"
	"  <sysinfo type='smbios'>\n"
	"    <system><entry name='manufacturer'>OpenStack Foundation</entry></system>\n"
	"  </sysinfo>\n"
	"  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>\n"
	"  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>\n"
	"</domain>\n";

static void test_nova_full(void **state)
{
	struct vmw_nova n;
	(void)state;

	assert_int_equal(vmw_virt_parse_nova(NOVA_XML, &n), 1);
	assert_true(n.present);
	assert_string_equal(n.instance_name, "web-frontend-2");
	assert_string_equal(n.flavor, "m1.medium");
	assert_int_equal(n.flavor_memory_mib, 4096);
	assert_int_equal(n.flavor_vcpus, 2);
	assert_string_equal(n.user_id, "b7e0c2d4a1f94e3c8d5b6a7f9e0d1c2b");
	assert_string_equal(n.user_name, "alice");
	assert_string_equal(n.project_id, "5a4c3b2d1e0f49a8b7c6d5e4f3a2b1c0");
	assert_string_equal(n.project_name, "shop-prod");
}

/* Older Nova writes the 1.0 namespace, and any prefix is legal XML. */
static void test_nova_1_0_and_other_prefix(void **state)
{
	static const char xml[] =
		"<domain type='kvm'><name>instance-00000001</name>"
		"<metadata>"
		"<other:thing xmlns:other='http://example.com/x'><other:name>not nova</other:name></other:thing>"
		"<n:instance xmlns:n='http://openstack.org/xmlns/libvirt/nova/1.0'>"
		"<n:name>db-0</n:name>"
		"<n:flavor name='tiny'><n:memory>512</n:memory><n:vcpus>1</n:vcpus></n:flavor>"
		"<n:owner><n:user uuid='u1'>bob</n:user><n:project uuid='p1'>lab</n:project></n:owner>"
		"</n:instance></metadata></domain>";
	struct vmw_nova n;
	(void)state;

	assert_int_equal(vmw_virt_parse_nova(xml, &n), 1);
	assert_string_equal(n.instance_name, "db-0");
	assert_string_equal(n.flavor, "tiny");
	assert_int_equal(n.flavor_memory_mib, 512);
	assert_int_equal(n.flavor_vcpus, 1);
	assert_string_equal(n.user_name, "bob");
	assert_string_equal(n.user_id, "u1");
	assert_string_equal(n.project_name, "lab");
	assert_string_equal(n.project_id, "p1");
}

static void test_nova_absent_or_partial(void **state)
{
	struct vmw_nova n;
	(void)state;

	memset(&n, 0xff, sizeof(n));
	assert_int_equal(vmw_virt_parse_nova("<domain><name>plain</name><metadata/></domain>", &n), 0);
	assert_false(n.present);
	assert_string_equal(n.instance_name, "");
	assert_int_equal(n.flavor_vcpus, 0);

	/* An element called instance in a foreign namespace is not Nova's. */
	assert_int_equal(vmw_virt_parse_nova("<domain><metadata><x:instance xmlns:x='urn:x'>"
					     "<x:name>n</x:name></x:instance></metadata></domain>", &n), 0);
	/* Nor is one without a namespace, or outside <metadata>. */
	assert_int_equal(vmw_virt_parse_nova("<domain><metadata><instance><name>n</name></instance>"
					     "</metadata></domain>", &n), 0);

	/* Only a name: the rest stays empty, numbers that are not numbers are 0. */
	assert_int_equal(vmw_virt_parse_nova(
		"<domain><metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
		"<nova:name>  spaced  </nova:name><nova:flavor name='f'><nova:memory>lots</nova:memory>"
		"<nova:vcpus>-3</nova:vcpus></nova:flavor></nova:instance></metadata></domain>", &n), 1);
	assert_string_equal(n.instance_name, "spaced");
	assert_string_equal(n.flavor, "f");
	assert_int_equal(n.flavor_memory_mib, 0);
	assert_int_equal(n.flavor_vcpus, 0);
	assert_string_equal(n.user_name, "");
	assert_string_equal(n.project_id, "");
}

static void test_nova_rejects_bad_xml(void **state)
{
	struct vmw_nova n;
	(void)state;

	assert_int_equal(vmw_virt_parse_nova("", &n), -EINVAL);
	assert_int_equal(vmw_virt_parse_nova(NULL, &n), -EINVAL);
	assert_int_equal(vmw_virt_parse_nova("<domain><metadata>", &n), -EINVAL);
	assert_int_equal(vmw_virt_parse_nova("not xml at all", &n), -EINVAL);
	assert_false(n.present);
}

/* Values longer than the fields are cut, never overflow; entities are not
 * expanded from the network and internal ones do not blow up. */
static void test_nova_long_and_hostile(void **state)
{
	char *xml = malloc(8192), big[1000];
	struct vmw_nova n;
	(void)state;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(xml, 8192,
		 "<domain><metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
		 "<nova:name>%s</nova:name><nova:flavor name='%s'/>"
		 "<nova:owner><nova:user uuid='%s'>%s</nova:user></nova:owner>"
		 "</nova:instance></metadata></domain>", big, big, big, big);
	assert_int_equal(vmw_virt_parse_nova(xml, &n), 1);
	assert_int_equal(strlen(n.instance_name), sizeof(n.instance_name) - 1);
	assert_int_equal(strlen(n.flavor), sizeof(n.flavor) - 1);
	assert_int_equal(strlen(n.user_id), sizeof(n.user_id) - 1);
	assert_int_equal(strlen(n.user_name), sizeof(n.user_name) - 1);
	free(xml);

	static const char ext[] =
		"<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY e SYSTEM 'http://127.0.0.1:1/x'>]>"
		"<domain><metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
		"<nova:name>&e;</nova:name></nova:instance></metadata></domain>";
	assert_true(vmw_virt_parse_nova(ext, &n) >= 0);
	assert_string_equal(n.instance_name, "");
}

static void test_parse_xml_backing(void **state)
{
	struct vmw_domain d;
	(void)state;

	assert_int_equal(vmw_virt_parse_xml(NOVA_XML, &d), 0);
	assert_string_equal(d.name, "instance-0000002a");
	assert_string_equal(d.uuid, "3f1c9a52-8d7e-4b0a-9c61-2e5d4f7a8b90");
	assert_int_equal(d.vcpus, 2);
	assert_int_equal(d.memory_bytes, 4ull << 30);
	assert_string_equal(d.ram_backing, "memfd");
	assert_true(d.ram_shared);
	assert_true(d.ram_hugepages);
	assert_true(d.nova.present);
	assert_int_equal(d.state, VMW_DOM_UNKNOWN);
	assert_int_equal(d.qemu_pid, 0);

	/* No <memoryBacking>: private anonymous memory; memory in MiB. */
	assert_int_equal(vmw_virt_parse_xml("<domain type='qemu'><name>a</name>"
					    "<memory unit='MiB'>512</memory><vcpu>4</vcpu></domain>", &d), 0);
	assert_string_equal(d.ram_backing, "anonymous");
	assert_false(d.ram_shared);
	assert_false(d.ram_hugepages);
	assert_false(d.nova.present);
	assert_int_equal(d.memory_bytes, 512ull << 20);
	assert_int_equal(d.vcpus, 4);

	/* Hugepages alone; no unit means KiB. */
	assert_int_equal(vmw_virt_parse_xml("<domain><memory>1048576</memory><memoryBacking>"
					    "<hugepages/></memoryBacking></domain>", &d), 0);
	assert_string_equal(d.ram_backing, "hugepages");
	assert_int_equal(d.memory_bytes, 1ull << 30);

	/* File source, shared through a NUMA cell; G and GB units. */
	assert_int_equal(vmw_virt_parse_xml("<domain><memory unit='G'>2</memory><memoryBacking>"
					    "<source type='file'/></memoryBacking><cpu><numa>"
					    "<cell id='0' cpus='0' memory='2' unit='G' memAccess='shared'/>"
					    "</numa></cpu></domain>", &d), 0);
	assert_string_equal(d.ram_backing, "file");
	assert_true(d.ram_shared);
	assert_int_equal(d.memory_bytes, 2ull << 30);
	assert_int_equal(vmw_virt_parse_xml("<domain><memory unit='GB'>2</memory></domain>", &d), 0);
	assert_int_equal(d.memory_bytes, 2000000000ull);
	assert_int_equal(vmw_virt_parse_xml("<domain><memory unit='parsecs'>2</memory></domain>", &d), 0);
	assert_int_equal(d.memory_bytes, 0);

	/* memfd without shared access (private memfd). */
	assert_int_equal(vmw_virt_parse_xml("<domain><memoryBacking><source type='memfd'/>"
					    "</memoryBacking></domain>", &d), 0);
	assert_string_equal(d.ram_backing, "memfd");
	assert_false(d.ram_shared);

	assert_int_equal(vmw_virt_parse_xml("<network><name>default</name></network>", &d), -EINVAL);
	assert_int_equal(vmw_virt_parse_xml("<domain>", &d), -EINVAL);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(vmw_virt_event_name(VMW_VIRT_STARTED), "started");
	assert_string_equal(vmw_virt_event_name(VMW_VIRT_STOPPED), "stopped");
	assert_string_equal(vmw_virt_event_name(VMW_VIRT_REBOOTED), "rebooted");
	assert_string_equal(vmw_virt_event_name(VMW_VIRT_CHANGED), "changed");
	assert_string_equal(vmw_domain_state_name(VMW_DOM_RUNNING), "running");
	assert_string_equal(vmw_domain_state_name(VMW_DOM_SHUTOFF), "shutoff");
	assert_string_equal(vmw_domain_state_name((enum vmw_domain_state)99), "unknown");
}

/* qemu: and file: targets never contact libvirt. */
static void test_resolve_passthrough(void **state)
{
	char t[64], d[64], tiny[8];
	struct vmw_error err = { 0 };
	(void)state;

	setenv("LIBVIRT_DEFAULT_URI", "test:///nonexistent-should-not-be-opened", 1);
	assert_int_equal(vmw_virt_resolve_target("qemu:1234", t, sizeof(t), d, sizeof(d), &err), 0);
	assert_string_equal(t, "qemu:1234");
	assert_string_equal(d, "qemu:1234");
	assert_int_equal(vmw_virt_resolve_target("file:/dev/shm/x", t, sizeof(t), NULL, 0, &err), 0);
	assert_string_equal(t, "file:/dev/shm/x");
	assert_int_equal(vmw_virt_resolve_target("file:/a/very/long/path", tiny, sizeof(tiny), NULL, 0,
						 &err), -ENAMETOOLONG);
	assert_int_equal(vmw_virt_resolve_target("", t, sizeof(t), d, sizeof(d), &err), -EINVAL);
	assert_int_equal(vmw_virt_resolve_target("domain:", t, sizeof(t), d, sizeof(d), &err), -EINVAL);
	assert_non_null(strstr(err.msg, "domain:NAME"));
	unsetenv("LIBVIRT_DEFAULT_URI");
}

/* libvirt's test driver: one running domain "test", shared by every
 * connection to test:///default in this process. */
static void test_list_lookup_test_driver(void **state)
{
	struct vmw_error err = { 0 };
	struct vmw_virt *v;
	struct vmw_domain *doms, d;
	size_t n;
	(void)state;

	assert_int_equal(vmw_virt_open("test:///default", &v, &err), 0);
	assert_string_equal(vmw_virt_uri(v), "test:///default");
	assert_int_equal(vmw_virt_list(v, &doms, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(doms[0].name, "test");
	assert_int_equal(doms[0].state, VMW_DOM_RUNNING);
	assert_int_equal(doms[0].vcpus, 2);
	assert_int_equal(doms[0].memory_bytes, 8ull << 30);
	assert_int_equal(doms[0].qemu_pid, 0);   /* not a local QEMU */
	assert_string_equal(doms[0].ram_backing, "anonymous");
	assert_int_equal(strlen(doms[0].uuid), 36);

	assert_int_equal(vmw_virt_lookup(v, doms[0].uuid, &d, &err), 0);
	assert_string_equal(d.name, "test");
	assert_int_equal(vmw_virt_lookup(v, "test", &d, &err), 0);
	assert_string_equal(d.uuid, doms[0].uuid);
	assert_int_equal(vmw_virt_lookup(v, "no-such-vm", &d, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no-such-vm"));
	assert_int_equal(vmw_virt_lookup(v, "00000000-0000-0000-0000-000000000000", &d, &err), -ENOENT);
	free(doms);
	vmw_virt_close(v);
}

static void test_resolve_test_driver(void **state)
{
	char t[64], d[300];
	struct vmw_error err = { 0 };
	(void)state;

	setenv("LIBVIRT_DEFAULT_URI", "test:///default", 1);
	assert_int_equal(vmw_virt_resolve_target("no-such-vm", t, sizeof(t), d, sizeof(d), &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no libvirt domain named 'no-such-vm'"));
	assert_non_null(strstr(err.msg, "qemu:PID"));
	/* Running, but not a local QEMU: no PID to read memory from. */
	assert_int_equal(vmw_virt_resolve_target("domain:test", t, sizeof(t), d, sizeof(d), &err), -ESRCH);
	assert_non_null(strstr(err.msg, "QEMU process was not found"));
	setenv("LIBVIRT_DEFAULT_URI", "qemu+unix:///system?socket=/nonexistent/libvirt-sock", 1);
	err.msg[0] = '\0';
	assert_int_equal(vmw_virt_resolve_target("vm1", t, sizeof(t), d, sizeof(d), &err), -ECONNREFUSED);
	assert_non_null(strstr(err.msg, "cannot connect to libvirt at qemu+unix:///system"));
	assert_non_null(strstr(err.msg, "(is libvirtd running?)"));
	unsetenv("LIBVIRT_DEFAULT_URI");
}

struct events {
	pthread_mutex_t lock;
	int n;
	enum vmw_virt_event_type type[32];
	char name[32][256];
	enum vmw_domain_state state[32];
};

static void on_event(void *opaque, enum vmw_virt_event_type type, const struct vmw_domain *dom)
{
	struct events *e = opaque;
	pthread_mutex_lock(&e->lock);
	if (e->n < 32) {
		e->type[e->n] = type;
		snprintf(e->name[e->n], sizeof(e->name[0]), "%s", dom->name);
		e->state[e->n] = dom->state;
		e->n++;
	}
	pthread_mutex_unlock(&e->lock);
}

static int wait_events(struct events *e, int n)
{
	for (int i = 0; i < 500; i++) {
		int got;
		pthread_mutex_lock(&e->lock);
		got = e->n;
		pthread_mutex_unlock(&e->lock);
		if (got >= n)
			return got;
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	return e->n;
}

static void test_watch_test_driver(void **state)
{
	struct events ev = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct events ev2 = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct vmw_error err = { 0 };
	struct vmw_virt *v, *v2;
	virConnectPtr rw;
	virDomainPtr dom;
	(void)state;

	assert_int_equal(vmw_virt_open("test:///default", &v, &err), 0);
	assert_int_equal(vmw_virt_watch(v, on_event, &ev, &err), 0);
	assert_int_equal(vmw_virt_watch(v, on_event, &ev, &err), -EALREADY);
	/* A second watcher in the same process shares the event loop. */
	assert_int_equal(vmw_virt_open("test:///default", &v2, &err), 0);
	assert_int_equal(vmw_virt_watch(v2, on_event, &ev2, &err), 0);

	assert_non_null(rw = virConnectOpen("test:///default"));
	assert_non_null(dom = virDomainLookupByName(rw, "test"));
	assert_int_equal(virDomainSuspend(dom), 0);
	assert_int_equal(virDomainResume(dom), 0);
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_int_equal(virDomainCreate(dom), 0);
	assert_int_equal(wait_events(&ev, 4), 4);
	assert_int_equal(ev.type[0], VMW_VIRT_CHANGED);
	assert_int_equal(ev.state[0], VMW_DOM_PAUSED);
	assert_int_equal(ev.type[1], VMW_VIRT_CHANGED);
	assert_int_equal(ev.type[2], VMW_VIRT_STOPPED);
	assert_int_equal(ev.state[2], VMW_DOM_SHUTOFF);
	assert_string_equal(ev.name[2], "test");
	assert_int_equal(ev.type[3], VMW_VIRT_STARTED);
	assert_int_equal(ev.state[3], VMW_DOM_RUNNING);
	assert_int_equal(wait_events(&ev2, 4), 4);
	assert_memory_equal(ev2.type, ev.type, 4 * sizeof(ev.type[0]));
	vmw_virt_close(v2);

	/* Lists and lookups work while watching, from this thread. */
	{
		struct vmw_domain *doms;
		size_t n;
		assert_int_equal(vmw_virt_list(v, &doms, &n, &err), 0);
		assert_int_equal(n, 1);
		free(doms);
	}
	virDomainFree(dom);
	virConnectClose(rw);

	/* Close stops the thread; a new watch can start afterwards. */
	vmw_virt_close(v);
	assert_int_equal(vmw_virt_open("test:///default", &v, &err), 0);
	assert_int_equal(vmw_virt_watch(v, on_event, &ev, &err), 0);
	vmw_virt_close(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nova_full),
		cmocka_unit_test(test_nova_1_0_and_other_prefix),
		cmocka_unit_test(test_nova_absent_or_partial),
		cmocka_unit_test(test_nova_rejects_bad_xml),
		cmocka_unit_test(test_nova_long_and_hostile),
		cmocka_unit_test(test_parse_xml_backing),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_resolve_passthrough),
		cmocka_unit_test(test_list_lookup_test_driver),
		cmocka_unit_test(test_resolve_test_driver),
		cmocka_unit_test(test_watch_test_driver),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
