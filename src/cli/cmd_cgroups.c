/* SPDX-License-Identifier: MIT */
/*
 * vmwatch cgroups - the guest's cgroups like systemd-cgtop shows them: path,
 * unit, processes, %CPU over an interval, memory.current, anon and file from
 * memory.stat; one table (or one JSON object with --json). The figures equal
 * the guest's own /sys/fs/cgroup files (linux/cgroups.h).
 */
#include "cli/cli.h"
#include "linux/linux.h"
#include "linux/cgroups.h"
#include "report/report.h"
#include "cli/cgroups_view.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch cgroups [--json] [-d SECONDS] [-o ORDER] TARGET\n\n"
		"The guest's cgroup v2 tree like systemd-cgtop shows it, one table: each cgroup's\n"
		"path, tasks (processes in it and below), %%CPU (100 = one CPU) over SECONDS\n"
		"between two reads, memory.current, and anon and file from memory.stat, equal to\n"
		"the guest's own /sys/fs/cgroup files; CPU-TIME is cpu.stat's usage_usec.\n"
		"UNIT is the systemd unit (or container) the path names.\n\n"
		"  -j, --json        one JSON object: {\"vm\", \"kernel\", \"cgroups\", ...}\n"
		"  -d, --delay SECONDS  the %%CPU interval (default 1; 0: one read, no %%CPU)\n"
		"  -o, --order ORDER cpu (default), memory, tasks or path\n"
		CLI_TARGET_OPTIONS_HELP
		"  -h, --help        this help\n\n"
		CLI_TARGET_HELP);
}

static void print_table(const struct vmw_cgroups *cg, const double *pct, enum cgview_order order)
{
	size_t *idx = calloc(cg->n ? cg->n : 1, sizeof(*idx));
	char line[1024];

	if (!idx) {
		cli_error("out of memory");
		return;
	}
	cgview_sort(cg, pct, order, idx);
	cgview_header(line, sizeof(line));
	puts(line);
	for (size_t i = 0; i < cg->n; i++) {
		cgview_row(&cg->cg[idx[i]], pct ? pct[idx[i]] : NAN, line, sizeof(line));
		puts(line);
	}
	free(idx);
}

/* One read: the cgroups and, for their process counts, a process walk. */
static int read_once(struct cli_target *t, struct vmw_cgroup_reader *rd, struct vmw_cgroups *cg,
		     uint64_t *ret_ns)
{
	struct vmw_error err = { 0 };
	struct vmw_walk w;
	int r;

	if ((r = vmw_linux_walk(t->lx, 0, &w, &err)) < 0) {
		cli_error("%s: %s", t->name, vmw_error_msg(&err, r));
		return r;
	}
	*ret_ns = vmw_now_ns();
	if ((r = vmw_cgroups_read(rd, cg, &err)) < 0) {
		cli_error("%s: %s", t->name, vmw_error_msg(&err, r));
		vmw_walk_free(&w);
		return r;
	}
	vmw_cgroups_count_procs(cg, &w);
	if (!vmw_walk_complete(&w))
		for (size_t i = 0; i < cg->n; i++)
			cg->cg[i].nr_procs_ok = false;   /* a count from a partial list is no count */
	vmw_walk_free(&w);
	return 0;
}

int cmd_cgroups(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "delay", required_argument, NULL, 'd' },
		{ "order", required_argument, NULL, 'o' },
		CLI_TARGET_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false;
	double delay = 1.0;
	int order = CGVIEW_CPU;
	struct cli_target t = { 0 };
	struct vmw_error err = { 0 };
	struct vmw_cgroup_reader *rd = NULL;
	struct vmw_cgroups a = { 0 }, b = { 0 };
	double *pct = NULL;
	uint64_t ta, tb;
	char *end;
	int c, r;

	while ((c = getopt_long(argc, argv, "jd:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'd':
			errno = 0;
			delay = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(delay >= 0 && delay <= 3600)) {
				cli_error("-d %s: give the %%CPU interval in seconds, 0 to 3600", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'o':
			if ((order = cgview_order_parse(optarg)) < 0) {
				cli_error("-o %s: the order is cpu, memory, tasks or path", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': usage(stdout); return 0;
		default:
			if (cli_target_option(&t, c))
				break;
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if ((r = cli_target_arg(&t, argc, argv, true, usage)) != 0)
		return r;
	if ((r = vmw_cgroups_new(t.k, &rd, &err)) < 0) {
		cli_error("%s: %s", t.name, vmw_error_msg(&err, r));
		cli_target_close(&t);
		return EXIT_USAGE;
	}
	r = 1;
	if (read_once(&t, rd, &a, &ta) < 0)
		goto out;
	struct vmw_cgroups *cur = &a;
	if (delay > 0) {
		struct timespec ts = { (time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (read_once(&t, rd, &b, &tb) < 0)
			goto out;
		cur = &b;
		if (!(pct = calloc(b.n ? b.n : 1, sizeof(*pct))) ||
		    vmw_cgroups_cpu_percent(&a, &b, tb - ta, pct) < 0) {
			cli_error("out of memory");
			goto out;
		}
	}
	if (cur->truncated)
		cli_error("%s: warning: the cgroup walk stopped early: %s", t.name, cur->truncated_why);
	if (json) {
		json_t *root = cli_target_json(&t), *o = vmw_report_cgroups(cur, pct);
		json_object_update(root, o);
		json_decref(o);
		json_object_set_new(root, "interval_seconds", delay > 0 ? json_real((double)(tb - ta) / 1e9) : json_null());
		json_dumpf(root, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(root);
	} else {
		print_table(cur, pct, (enum cgview_order)order);
	}
	r = 0;
out:
	free(pct);
	vmw_cgroups_free(&a);
	vmw_cgroups_free(&b);
	vmw_cgroups_reader_free(rd);
	cli_target_close(&t);
	if (!r && fflush(stdout) != 0) {
		cli_error("writing output: %s", strerror(errno));
		return 1;
	}
	return r;
}
