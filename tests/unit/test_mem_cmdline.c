/* SPDX-License-Identifier: MIT */
/* What a QEMU command line says about guest RAM (machine, size, backend). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "mem/mem_internal.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define PARSE(cfg, ...) parse(&(cfg), (const char *const[]){ "qemu-system-x86_64", __VA_ARGS__, NULL })

static int parse_err(struct vmw_qemu_config *cfg, struct vmw_error *err, const char *const *args)
{
	size_t argc = 0;

	while (args[argc])
		argc++;
	return vmw_qemu_parse_cmdline(argc, args, cfg, err);
}

static void parse(struct vmw_qemu_config *cfg, const char *const *args)
{
	struct vmw_error err = { 0 };
	int r = parse_err(cfg, &err, args);
	if (r < 0)
		fail_msg("parse failed: %s", err.msg);
}

static void test_lab_command_line(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-accel", "tcg,thread=multi", "-smp", "1", "-m", "512M", "-cpu", "qemu64",
	      "-display", "none", "-no-reboot", "-kernel", "vmlinuz", "-append", "console=ttyS0 -m 64",
	      "-object", "memory-backend-file,id=mem,size=512M,mem-path=/dev/shm/NAME,share=on",
	      "-machine", "pc,memory-backend=mem");
	assert_string_equal(c.machine, "pc");
	assert_int_equal(c.ram_size, 512 * MiB);
	assert_int_equal(c.backend, VMW_BACKEND_FILE);
	assert_string_equal(c.backend_id, "mem");
	assert_string_equal(c.mem_path, "/dev/shm/NAME");
	assert_true(c.share);
	assert_int_equal(c.max_ram_below_4g, 0);
}

static void test_defaults(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-nographic");
	assert_string_equal(c.machine, "pc");
	assert_int_equal(c.ram_size, 128 * MiB);
	assert_int_equal(c.backend, VMW_BACKEND_DEFAULT);
	assert_false(c.share);
}

static void test_ram_sizes(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-m", "512");  /* bare number: MiB */
	assert_int_equal(c.ram_size, 512 * MiB);
	PARSE(c, "-m", "size=524288k,slots=2,maxmem=4G");
	assert_int_equal(c.ram_size, 512 * MiB);
	PARSE(c, "-m", "5G");
	assert_int_equal(c.ram_size, 5 * GiB);
	PARSE(c, "-m", "1.5G");
	assert_int_equal(c.ram_size, 1536 * MiB);
	PARSE(c, "-m", "1001k");  /* QEMU rounds up to 8 KiB */
	assert_int_equal(c.ram_size, 1032192);
	PARSE(c, "-m", "256M", "-m", "1G");  /* last one wins */
	assert_int_equal(c.ram_size, GiB);
}

static void test_bad_ram_size(void **state)
{
	struct vmw_qemu_config c;
	struct vmw_error err = { 0 };

	assert_int_equal(parse_err(&c, &err, (const char *const[]){ "qemu-system-x86_64", "-m", "lots", NULL }),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "lots"));
	/* QEMU accepted it: an unsupported set-up, not a usage error of vmwatch. */
	assert_int_equal(err.kind, VMW_ERR_UNSUPPORTED);
}

static void test_machine_forms(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-M", "q35");
	assert_string_equal(c.machine, "q35");
	PARSE(c, "-machine", "type=pc-q35-7.2,accel=tcg");
	assert_string_equal(c.machine, "pc-q35-7.2");
	PARSE(c, "--machine", "pc-i440fx-7.2");
	assert_string_equal(c.machine, "pc-i440fx-7.2");
	/* -machine options merge; accel alone does not change the type */
	PARSE(c, "-machine", "q35", "-machine", "accel=tcg,max-ram-below-4g=2G");
	assert_string_equal(c.machine, "q35");
	assert_int_equal(c.max_ram_below_4g, 2 * GiB);
	PARSE(c, "-machine", "pc,max-ram-below-4g=0xc0000000");
	assert_int_equal(c.max_ram_below_4g, 0xc0000000ULL);
}

static void test_memfd(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-object", "memory-backend-memfd,id=m0,size=5G", "-machine", "q35,memory-backend=m0");
	assert_int_equal(c.backend, VMW_BACKEND_MEMFD);
	assert_true(c.share);  /* memfd is shared by default */
	assert_int_equal(c.ram_size, 5 * GiB);  /* -m defaults to the backend's size */
	PARSE(c, "-object", "memory-backend-memfd,id=m0,size=1G,share=off", "-M", "pc,memory-backend=m0");
	assert_false(c.share);
}

static void test_libvirt_json_objects(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-name", "guest=vm1,debug-threads=on",
	      "-machine", "pc-i440fx-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
	      "-accel", "tcg", "-m", "size=524288k",
	      "-object", "{\"qom-type\":\"memory-backend-ram\",\"id\":\"pc.ram\",\"size\":536870912}",
	      "-object", "{\"qom-type\":\"secret\",\"id\":\"masterKey0\",\"format\":\"raw\"}");
	assert_string_equal(c.machine, "pc-i440fx-7.2");
	assert_int_equal(c.backend, VMW_BACKEND_RAM);
	assert_string_equal(c.backend_id, "pc.ram");
	assert_int_equal(c.ram_size, 512 * MiB);
	assert_false(c.share);

	PARSE(c, "-machine", "pc-q35-7.2,memory-backend=pc.ram", "-m", "size=5242880k",
	      "-object", "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"pc.ram\",\"share\":true,"
			 "\"x-use-canonical-path-for-ramblock-id\":false,\"size\":5368709120}");
	assert_int_equal(c.backend, VMW_BACKEND_MEMFD);
	assert_true(c.share);
	assert_int_equal(c.ram_size, 5 * GiB);

	PARSE(c, "-machine", "q35,memory-backend=ram0",
	      "-object", "{\"qom-type\":\"memory-backend-file\",\"id\":\"ram0\",\"mem-path\":\"/dev/hugepages/x\","
			 "\"share\":true,\"size\":1073741824}");
	assert_int_equal(c.backend, VMW_BACKEND_FILE);
	assert_string_equal(c.mem_path, "/dev/hugepages/x");
	assert_true(c.share);
}

static void test_escaped_comma(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-object", "memory-backend-file,id=mem,size=64M,mem-path=/dev/shm/a,,b,share",
	      "-machine", "pc,memory-backend=mem");
	assert_string_equal(c.mem_path, "/dev/shm/a,b");
	assert_true(c.share);  /* a bare "share" means share=on */
}

static void test_backend_by_numa(void **state)
{
	struct vmw_qemu_config c;
	struct vmw_error err = { 0 };

	PARSE(c, "-m", "1G", "-object", "memory-backend-ram,id=n0,size=1G", "-numa", "node,memdev=n0");
	assert_string_equal(c.backend_id, "n0");
	assert_int_equal(c.backend, VMW_BACKEND_RAM);

	assert_int_equal(parse_err(&c, &err, (const char *const[]){ "qemu-system-x86_64", "-m", "2G",
		"-object", "memory-backend-ram,id=n0,size=1G", "-object", "memory-backend-ram,id=n1,size=1G",
		"-numa", "node,memdev=n0", "-numa", "node,memdev=n1", NULL }), -ENOTSUP);
	assert_non_null(strstr(err.msg, "NUMA"));
}

static void test_legacy_mem_path(void **state)
{
	struct vmw_qemu_config c;

	PARSE(c, "-m", "1G", "-mem-path", "/dev/hugepages", "-mem-prealloc");
	assert_int_equal(c.backend, VMW_BACKEND_FILE);
	assert_string_equal(c.mem_path, "/dev/hugepages");
	assert_false(c.share);
}

static void test_backend_errors(void **state)
{
	struct vmw_qemu_config c;
	struct vmw_error err = { 0 };

	assert_int_equal(parse_err(&c, &err, (const char *const[]){ "qemu-system-x86_64",
		"-machine", "pc,memory-backend=nope", NULL }), -EINVAL);
	assert_non_null(strstr(err.msg, "nope"));
	assert_int_equal(err.kind, VMW_ERR_UNSUPPORTED);
	assert_int_equal(parse_err(&c, &err, (const char *const[]){ "qemu-system-x86_64",
		"-object", "memory-backend-epc,id=m,size=1G", "-machine", "q35,memory-backend=m", NULL }), -ENOTSUP);
	assert_non_null(strstr(err.msg, "memory-backend-epc"));
	assert_int_equal(parse_err(&c, &err, (const char *const[]){ "qemu-system-x86_64",
		"-object", "memory-backend-ram,id=m", "-machine", "q35,memory-backend=m", NULL }), -EINVAL);
	assert_int_equal(parse_err(&c, &err, (const char *const[]){ "qemu-system-x86_64",
		"-machine", "pc,max-ram-below-4g=much", NULL }), -EINVAL);
	/* a trailing option without its argument is ignored, not read past argv */
	assert_int_equal(parse_err(&c, &err, (const char *const[]){ "qemu-system-x86_64", "-m", NULL }), 0);
}

static void test_is_emulator(void **state)
{
	assert_true(vmw_qemu_is_emulator("/usr/bin/qemu-system-x86_64"));
	assert_true(vmw_qemu_is_emulator("qemu-system-i386"));
	assert_true(vmw_qemu_is_emulator("/usr/libexec/qemu-kvm"));
	assert_false(vmw_qemu_is_emulator("/usr/bin/python3"));
	assert_false(vmw_qemu_is_emulator("qemu-img"));
	assert_false(vmw_qemu_is_emulator(""));
	assert_false(vmw_qemu_is_emulator(NULL));
}

static void test_qemu_sizes(void **state)
{
	uint64_t v;

	assert_int_equal(vmw_qemu_parse_size("512M", 1, &v), 0);
	assert_int_equal(v, 512 * MiB);
	assert_int_equal(vmw_qemu_parse_size("0x1000", 1, &v), 0);
	assert_int_equal(v, 0x1000);
	assert_int_equal(vmw_qemu_parse_size("2", MiB, &v), 0);
	assert_int_equal(v, 2 * MiB);
	assert_int_equal(vmw_qemu_parse_size("4096B", MiB, &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(vmw_qemu_parse_size("0.5G", 1, &v), 0);
	assert_int_equal(v, 512 * MiB);
	assert_int_equal(vmw_qemu_parse_size("1.5", 1, &v), -EINVAL);
	assert_int_equal(vmw_qemu_parse_size("5X", 1, &v), -EINVAL);
	assert_int_equal(vmw_qemu_parse_size("", 1, &v), -EINVAL);
	assert_int_equal(vmw_qemu_parse_size("-1", 1, &v), -EINVAL);
	assert_int_equal(vmw_qemu_parse_size("99999999999E", 1, &v), -ERANGE);
}

/* /proc/PID/maps lines: anonymous lines have no path and must not swallow the next line. */
static void test_maps_lines(void **state)
{
	const char *maps =
		"7f17d6c00000-7f17d7c00000 rw-p 00000000 00:00 0\n"
		"7f17d7fff000-7f17f7fff000 rw-s 00000000 00:1b 4                          /dev/shm/vmw a\n"
		"7f1800000000-7f1820000000 rw-s 00001000 00:01 2050                       /memfd:memory-backend-memfd (deleted)\n"
		"55fa989e9000-55fa99b99000 r-xp 00000000 fd:01 123                        /usr/bin/qemu-system-x86_64\n";
	struct vmw_map m;
	const char *l2 = strchr(maps, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;

	assert_true(vmw_maps_parse_line(maps, &m));
	assert_int_equal(m.start, 0x7f17d6c00000ULL);
	assert_int_equal(m.end, 0x7f17d7c00000ULL);
	assert_false(m.shared);
	assert_string_equal(m.path, "");

	assert_true(vmw_maps_parse_line(l2, &m));
	assert_true(m.shared);
	assert_int_equal(m.major, 0);
	assert_int_equal(m.minor, 0x1b);
	assert_int_equal(m.inode, 4);
	assert_string_equal(m.path, "/dev/shm/vmw a");

	assert_true(vmw_maps_parse_line(l3, &m));
	assert_int_equal(m.offset, 0x1000);
	assert_int_equal(m.inode, 2050);
	assert_string_equal(m.path, "/memfd:memory-backend-memfd (deleted)");

	assert_false(vmw_maps_parse_line(l4, &m));  /* not writable */
	assert_false(vmw_maps_parse_line("garbage\n", &m));
	assert_false(vmw_maps_parse_line("", &m));
}

/* The QEMU identity: /proc/PID/stat's state and starttime, -name/-uuid/-smp. */
static void test_proc_stat(void **state)
{
	(void)state;
	char st;
	uint64_t start;
	/* A command name with spaces and a ')': fields count from the last ')'. */
	const char *line = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
			   "50 20 0 0 20 0 5 0 987654 1234567 100 18446744073709551615\n";
	assert_int_equal(vmw_proc_stat_parse(line, &st, &start), 0);
	assert_int_equal(st, 'S');
	assert_int_equal(start, 987654);
	assert_int_equal(vmw_proc_stat_parse("1 (x) Z 0 0", &st, &start), -EINVAL);
	assert_int_equal(vmw_proc_stat_parse("garbage", &st, &start), -EINVAL);
}

/* utime + stime (fields 14, 15) of the host's QEMU process; the program names
 * the host view takes for QEMU. */
static void test_proc_stat_cpu_and_program(void **state)
{
	(void)state;
	uint64_t ticks;
	const char *line = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
			   "50 20 0 0 20 0 5 0 987654 1234567 100 18446744073709551615\n";
	assert_int_equal(vmw_proc_stat_cpu_parse(line, &ticks), 0);
	assert_int_equal(ticks, 70);
	assert_int_equal(vmw_proc_stat_cpu_parse("1 (x) S 0 0 0", &ticks), -EINVAL);
	assert_int_equal(vmw_proc_stat_cpu_parse("1 (x) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 1 0",
						 &ticks), -EINVAL);   /* would wrap */
	assert_true(vmw_qemu_program("/usr/bin/qemu-system-x86_64"));
	assert_true(vmw_qemu_program("qemu-system-aarch64"));
	assert_true(vmw_qemu_program("/usr/libexec/qemu-kvm"));
	assert_false(vmw_qemu_program("/usr/bin/qemu-img"));
	assert_false(vmw_qemu_program("/bin/sh"));
	assert_false(vmw_qemu_program(""));
}

static void test_qemu_names(void **state)
{
	(void)state;
	const char *argv[] = { "qemu-system-x86_64", "-name", "guest=web,,1,debug-threads=on",
			       "-uuid", "0b1e3c2a-1111-2222-3333-444455556666", "-smp", "4,sockets=1",
			       "-m", "512" };
	const char *bare[] = { "qemu-system-x86_64", "-name", "vm2", "-uuid", "not-a-uuid",
			       "-smp", "cpus=2" };
	struct vmw_qemu_names q;

	vmw_qemu_names_parse(ARRAY_SIZE(argv), argv, &q);
	assert_true(q.has_name);
	assert_string_equal(q.name, "web,1");
	assert_string_equal(q.uuid, "0b1e3c2a-1111-2222-3333-444455556666");
	assert_int_equal(q.vcpus, 4);
	vmw_qemu_names_parse(ARRAY_SIZE(bare), bare, &q);
	assert_string_equal(q.name, "vm2");
	assert_string_equal(q.uuid, "");
	assert_int_equal(q.vcpus, 2);
	vmw_qemu_names_parse(1, argv, &q);
	assert_false(q.has_name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lab_command_line),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_ram_sizes),
		cmocka_unit_test(test_bad_ram_size),
		cmocka_unit_test(test_machine_forms),
		cmocka_unit_test(test_memfd),
		cmocka_unit_test(test_libvirt_json_objects),
		cmocka_unit_test(test_escaped_comma),
		cmocka_unit_test(test_backend_by_numa),
		cmocka_unit_test(test_legacy_mem_path),
		cmocka_unit_test(test_backend_errors),
		cmocka_unit_test(test_is_emulator),
		cmocka_unit_test(test_qemu_sizes),
		cmocka_unit_test(test_maps_lines),
		cmocka_unit_test(test_proc_stat),
		cmocka_unit_test(test_qemu_names),
		cmocka_unit_test(test_proc_stat_cpu_and_program),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
