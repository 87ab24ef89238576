/* SPDX-License-Identifier: MIT */
/*
 * cmd_info.c - `vmwatch info`: what was found about a guest's kernel, where
 * it came from and how long attaching took.
 */
#include "cli/cli.h"
#include "kernel/kernel.h"
#include "linux/linux.h"
#include "report/report.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch info [OPTIONS] TARGET\n"
		"\n"
		"Find the Linux kernel in the guest's RAM and describe it: release, build id,\n"
		"KASLR offset, phys_base, paging levels, RAM, CPUs, where its symbols and types\n"
		"came from and how long attaching took. Nothing is needed but guest RAM: the\n"
		"kernel's VMCOREINFO note, its kallsyms table and its BTF are read from it.\n"
		"\n"
		CLI_TARGET_HELP
		"\n"
		"Options:\n"
		"  -j, --json                       print one JSON object: {\"vm\", \"kernel\"}\n"
		"      --no-cache                   neither use nor update the discovery cache\n"
		"                                   (${XDG_CACHE_HOME:-~/.cache}/vmwatch/discovery)\n"
		"      --ignore-vmcoreinfo-kallsyms locate the kallsyms tables by their structure in\n"
		"                                   the kernel image (what kernels < 6.0 need)\n"
		"                                   instead of VMCOREINFO; implies no cache use\n"
		"  -h, --help                       show this help\n"
		"\n"
		"Exit status: 0 success, 2 bad usage, the target cannot be opened or no usable\n"
		"Linux kernel was found in it.\n");
}

static const char *ms(uint64_t ns, char buf[static 32])
{
	snprintf(buf, 32, "%.1f ms", (double)ns / 1e6);
	return buf;
}

static json_t *hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_string(buf);
}

static json_t *symbols_json(struct vmw_kernel *k, char **names, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++) {
		struct vmw_kernel_sym s;
		if (vmw_kernel_lookup(k, names[i], &s) < 0) {
			json_object_set_new(o, names[i], json_null());
			continue;
		}
		char type[2] = { s.type, 0 };
		json_object_set_new(o, names[i], json_pack("{s:o, s:s, s:b}", "addr", hex(s.addr),
							    "type", type, "percpu", s.percpu));
	}
	return o;
}

/* The guest's OS from its cached /etc/os-release: 0, or why not (err). */
static int read_os(const struct cli_target *t, struct vmw_os_release *os, struct vmw_error *err)
{
	struct vmw_files *f = NULL;
	int r = vmw_files_new(t->k, &f, err);

	if (r == 0)
		r = vmw_os_release_read(f, os, err);
	vmw_files_free(f);
	return r;
}

static int print_json(const struct cli_target *t, char **syms, size_t nsyms)
{
	json_t *o = cli_target_json(t);
	struct vmw_os_release os;
	struct vmw_error err = { 0 };

	json_object_set_new(o, "os", vmw_report_os(read_os(t, &os, &err) == 0 ? &os : NULL));

	if (nsyms)
		json_object_set_new(o, "symbols", symbols_json(t->k, syms, nsyms));
	int r = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
	json_decref(o);
	if (r < 0)
		return 1;
	putchar('\n');
	return 0;
}

static void print_os(const struct cli_target *t)
{
	struct vmw_os_release os;
	struct vmw_error err = { 0 };
	int r = read_os(t, &os, &err);

	fputs("os:               ", stdout);
	if (r < 0) {
		fputs("unknown (", stdout);
		vmw_text_fputs(vmw_error_msg(&err, r), stdout);
		puts(")");
		return;
	}
	vmw_text_fputs(os.pretty_name[0] ? os.pretty_name : "?", stdout);   /* guest text */
	fputs(" (ID=", stdout);
	vmw_text_fputs(os.id, stdout);
	fputs(", VERSION_ID=", stdout);
	vmw_text_fputs(os.version_id, stdout);
	puts(")");
}

static void print_text(const struct cli_target *t, char **syms, size_t nsyms)
{
	const struct vmw_kernel_info *ki = vmw_kernel_info(t->k);
	char b1[32], b2[32], b3[32], b4[32];

	printf("target:           %s\n", t->name);
	printf("source:           %s\n", vmw_mem_describe(t->mem));
	printf("ram:              %.1f MiB (%" PRIu64 " bytes)\n", (double)ki->ram_bytes / (1 << 20),
	       ki->ram_bytes);
	fputs("kernel:           Linux ", stdout);
	vmw_text_fputs(ki->release, stdout);   /* from guest RAM */
	putchar('\n');
	printf("build id:         %s\n", ki->build_id);
	printf("kaslr offset:     0x%" PRIx64 "\n", ki->kaslr_offset);
	printf("phys_base:        0x%" PRIx64 "\n", ki->phys_base);
	printf("paging:           %d-level (pgd at phys 0x%" PRIx64 ")\n", ki->paging_levels,
	       ki->pgd_phys);
	printf("page_offset_base: 0x%" PRIx64 "\n", ki->page_offset_base);
	printf("vmcoreinfo:       phys 0x%" PRIx64 "\n", ki->vmcoreinfo_phys);
	printf("cpus:             %u\n", ki->nr_cpus);
	printf("symbols:          %u, %s\n", ki->nr_symbols, ki->symbols_from);
	printf("types:            %s\n", ki->types_from);
	printf("attach:           %s (%s; vmcoreinfo scan %s, kallsyms %s, btf %s)\n",
	       ms(ki->attach_ns, b1), ki->from_cache ? "cache hit" : "full discovery",
	       ms(ki->scan_ns, b2), ms(ki->kallsyms_ns, b3), ms(ki->btf_ns, b4));
	print_os(t);
	for (size_t i = 0; i < nsyms; i++) {
		struct vmw_kernel_sym s;
		if (vmw_kernel_lookup(t->k, syms[i], &s) < 0)
			printf("symbol %s: not found\n", syms[i]);
		else
			printf("symbol %s: 0x%" PRIx64 " %c%s\n", syms[i], s.addr, s.type,
			       s.percpu ? " (per-CPU offset)" : "");
	}
}

int cmd_info(int argc, char **argv)
{
	enum { OPT_NO_CACHE = 256, OPT_IGNORE_KALLSYMS, OPT_SYMBOL };
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "no-cache", no_argument, NULL, OPT_NO_CACHE },
		{ "ignore-vmcoreinfo-kallsyms", no_argument, NULL, OPT_IGNORE_KALLSYMS },
		{ "symbol", required_argument, NULL, OPT_SYMBOL },   /* hidden: for tests */
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cli_target t = { 0 };
	_cleanup_free_ char **syms = NULL;
	size_t nsyms = 0;
	bool json = false;
	int c, r;

	syms = calloc((size_t)argc + 1, sizeof(*syms));
	if (!syms) {
		cli_error("out of memory");
		return 1;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case OPT_NO_CACHE: t.no_cache = true; break;
		case OPT_IGNORE_KALLSYMS: t.ignore_vmcoreinfo_kallsyms = true; break;
		case OPT_SYMBOL: syms[nsyms++] = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		cli_error(argc - optind < 1 ? "info: missing TARGET" : "info: too many arguments");
		usage(stderr);
		return EXIT_USAGE;
	}
	r = cli_target_open(&t, argv[optind], false);
	if (r)
		return r;
	if (json)
		r = print_json(&t, syms, nsyms);
	else
		print_text(&t, syms, nsyms);
	cli_target_close(&t);
	if (fflush(stdout) != 0)
		r = 1;
	return r;
}
