/* SPDX-License-Identifier: MIT */
/*
 * vmwatch summary - the guest's /proc/uptime, /proc/loadavg, the main
 * /proc/meminfo lines and /proc/stat's CPU lines and counters, read from its
 * memory (see linux.h, "Guest summary"), or one JSON object with --json.
 */
#include "cli/cli.h"
#include "linux/linux.h"
#include "report/report.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch summary [--json] TARGET\n\n"
		"The guest's uptime, load average, memory and CPU times with the values its\n"
		"own /proc/uptime, /proc/loadavg, /proc/meminfo and /proc/stat show.\n"
		"Counters are exact; the guest's clock is known to its last tick or idle\n"
		"transition, so uptime and the idle time of sleeping CPUs can lag by as\n"
		"long as the guest has been idle since.\n\n"
		"  -j, --json        one JSON object: {\"vm\", \"kernel\", \"summary\"}\n"
		"      --no-cache    do not use the kernel discovery cache\n"
		"      --ignore-vmcoreinfo-kallsyms\n"
		"                    find kallsyms by structure (as for kernels < 6.0)\n"
		"      --process-read  read a QEMU guest's RAM with process_vm_readv even\n"
		"                    when it is shared\n"
		"  -h, --help        this help\n\n"
		CLI_TARGET_HELP);
}

static void times_ticks(const struct vmw_cpu_times *t, uint64_t v[10])
{
	const uint64_t ns[10] = { t->user, t->nice, t->system, t->idle, t->iowait, t->irq,
				  t->softirq, t->steal, t->guest, t->guest_nice };
	for (int i = 0; i < 10; i++)
		v[i] = vmw_summary_clock_t(ns[i]);
}

static void print_cpu_line(const char *name, const struct vmw_cpu_times *t)
{
	uint64_t v[10];
	times_ticks(t, v);
	printf("%s", name);
	for (int i = 0; i < 10; i++)
		printf(" %llu", (unsigned long long)v[i]);
	putchar('\n');
}

static const struct {
	const char *name;
	size_t off;
} meminfo_fields[] = {
	{ "MemTotal", offsetof(struct vmw_summary, mem_total_kb) },
	{ "MemFree", offsetof(struct vmw_summary, mem_free_kb) },
	{ "MemAvailable", offsetof(struct vmw_summary, mem_available_kb) },
	{ "Buffers", offsetof(struct vmw_summary, buffers_kb) },
	{ "Cached", offsetof(struct vmw_summary, cached_kb) },
	{ "SwapCached", offsetof(struct vmw_summary, swap_cached_kb) },
	{ "SwapTotal", offsetof(struct vmw_summary, swap_total_kb) },
	{ "SwapFree", offsetof(struct vmw_summary, swap_free_kb) },
	{ "Shmem", offsetof(struct vmw_summary, shmem_kb) },
};

static uint64_t meminfo_value(const struct vmw_summary *sm, size_t i)
{
	uint64_t v;
	memcpy(&v, (const char *)sm + meminfo_fields[i].off, sizeof(v));
	return v;
}

static void print_text(const struct vmw_summary *sm)
{
	char buf[96];

	vmw_summary_format_uptime(sm->uptime_ns, sm->idle_ns, buf, sizeof(buf));
	printf("uptime:  %s\n", buf);
	printf("loadavg: %s %u/%d %d\n", sm->loadavg, sm->nr_running, sm->nr_threads, sm->last_pid);
	for (size_t i = 0; i < ARRAY_SIZE(meminfo_fields); i++) {
		snprintf(buf, sizeof(buf), "%s:", meminfo_fields[i].name);
		printf("%-16s%8llu kB\n", buf, (unsigned long long)meminfo_value(sm, i));
	}
	print_cpu_line("cpu ", &sm->total);
	for (unsigned i = 0; i < sm->ncpus; i++) {
		snprintf(buf, sizeof(buf), "cpu%u", sm->cpu[i].cpu);
		print_cpu_line(buf, &sm->cpu[i].t);
	}
	printf("ctxt %llu\nbtime %llu\nprocesses %llu\nprocs_running %u\nprocs_blocked %u\n",
	       (unsigned long long)sm->ctxt, (unsigned long long)sm->boot_time_s,
	       (unsigned long long)sm->processes, sm->procs_running, sm->procs_blocked);
}

static json_t *summary_json(const struct cli_target *t, const struct vmw_summary *sm)
{
	json_t *root = cli_target_json(t);
	json_object_set_new(root, "summary", vmw_report_summary(sm, NULL));
	return root;
}

int cmd_summary(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		CLI_TARGET_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false;
	struct cli_target t = { 0 };
	struct vmw_error err = { 0 };
	struct vmw_summary_reader *rd = NULL;
	struct vmw_summary sm;
	int c, r;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default:
			if (cli_target_option(&t, c))
				break;
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if ((r = cli_target_arg(&t, argc, argv, false, usage)) != 0)
		return r;
	if ((r = vmw_summary_new(t.k, &rd, &err)) < 0) {
		cli_error("%s: %s", argv[optind], vmw_error_msg(&err, r));
		cli_target_close(&t);
		return EXIT_USAGE;
	}
	if ((r = vmw_summary_read(rd, &sm, &err)) < 0) {
		cli_error("%s: %s", argv[optind], vmw_error_msg(&err, r));
		vmw_summary_free(rd);
		cli_target_close(&t);
		return 1;
	}
	if (sm.missing)
		cli_error("%s: warning: %u guest variables were unreadable and count as 0",
			  argv[optind], sm.missing);
	if (sm.buffers_partial)
		cli_error("%s: warning: the block-device inode walk stopped early: Buffers is a lower bound",
			  argv[optind]);
	if (json) {
		json_t *root = summary_json(&t, &sm);
		json_dumpf(root, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(root);
	} else {
		print_text(&sm);
	}
	vmw_summary_free(rd);
	cli_target_close(&t);
	if (fflush(stdout) != 0) {
		cli_error("writing output: %s", strerror(errno));
		return 1;
	}
	return 0;
}
