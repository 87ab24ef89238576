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

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum order { ORDER_CPU, ORDER_MEMORY, ORDER_TASKS, ORDER_PATH };

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

/* systemd-cgtop's sizes: 1023B, 1.5K, 12.3M, 4.0G. */
static void human(char *buf, size_t size, uint64_t v)
{
	static const char unit[] = "BKMGTPE";
	double x = (double)v;
	int u = 0;

	if (v < 1024) {
		snprintf(buf, size, "%lluB", (unsigned long long)v);
		return;
	}
	while (x >= 1024 && u < 6) {
		x /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f%c", x, unit[u]);
}

struct row {
	const struct vmw_cgroup_stat *c;
	double pct;
};

static enum order g_order;

static int cmp_rows(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	double px = isnan(x->pct) ? -1 : x->pct, py = isnan(y->pct) ? -1 : y->pct;

	switch (g_order) {
	case ORDER_CPU:
		if (px != py)
			return px < py ? 1 : -1;
		if (x->c->usage_usec != y->c->usage_usec)
			return x->c->usage_usec < y->c->usage_usec ? 1 : -1;
		break;
	case ORDER_MEMORY:
		if (x->c->memory_current != y->c->memory_current)
			return x->c->memory_current < y->c->memory_current ? 1 : -1;
		break;
	case ORDER_TASKS:
		if (x->c->nr_procs_tree != y->c->nr_procs_tree)
			return x->c->nr_procs_tree < y->c->nr_procs_tree ? 1 : -1;
		break;
	case ORDER_PATH:
		break;
	}
	return strcmp(x->c->path, y->c->path);
}

static void print_table(const struct vmw_cgroups *cg, const double *pct)
{
	struct row *rows = calloc(cg->n ? cg->n : 1, sizeof(*rows));

	if (!rows) {
		cli_error("out of memory");
		return;
	}
	for (size_t i = 0; i < cg->n; i++)
		rows[i] = (struct row){ &cg->cg[i], pct ? pct[i] : NAN };
	qsort(rows, cg->n, sizeof(*rows), cmp_rows);
	printf("%-50s %-24s %6s %6s %8s %8s %8s %12s\n", "CONTROL GROUP", "UNIT", "TASKS", "%CPU", "MEMORY",
	       "ANON", "FILE", "CPU-TIME");
	for (size_t i = 0; i < cg->n; i++) {
		const struct vmw_cgroup_stat *c = rows[i].c;
		char path[512], unit[128] = "", tasks[16] = "-", p[16] = "-", mem[16] = "-", anon[16] = "-",
		     file[16] = "-", cpu[32] = "-";
		struct vmw_cgroup_info info;

		vmw_text_sanitize(path, sizeof(path), c->path);
		if (vmw_cgroup_classify(c->path, &info)) {
			if (info.container_id[0])
				snprintf(unit, sizeof(unit), "%s:%.12s", info.runtime[0] ? info.runtime : "container",
					 info.container_id);
			else
				vmw_text_sanitize(unit, sizeof(unit), info.unit[0] ? info.unit : info.slice);
		}
		if (c->nr_procs_ok)
			snprintf(tasks, sizeof(tasks), "%u", c->nr_procs_tree);
		if (!isnan(rows[i].pct))
			snprintf(p, sizeof(p), "%.1f", rows[i].pct);
		if (c->memory_ok)
			human(mem, sizeof(mem), c->memory_current);
		if (c->memory_stat_ok) {
			human(anon, sizeof(anon), c->anon);
			human(file, sizeof(file), c->file);
		}
		if (c->cpu_ok)
			snprintf(cpu, sizeof(cpu), "%llu.%02llus", (unsigned long long)(c->usage_usec / 1000000),
				 (unsigned long long)(c->usage_usec % 1000000 / 10000));
		printf("%-50s %-24s %6s %6s %8s %8s %8s %12s%s\n", path, unit[0] ? unit : "-", tasks, p, mem, anon,
		       file, cpu, c->incomplete ? " (incomplete)" : "");
	}
	free(rows);
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
	struct cli_target t = { 0 };
	struct vmw_error err = { 0 };
	struct vmw_cgroup_reader *rd = NULL;
	struct vmw_cgroups a = { 0 }, b = { 0 };
	double *pct = NULL;
	uint64_t ta, tb;
	char *end;
	int c, r;

	g_order = ORDER_CPU;
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
			if (!strcmp(optarg, "cpu")) g_order = ORDER_CPU;
			else if (!strcmp(optarg, "memory")) g_order = ORDER_MEMORY;
			else if (!strcmp(optarg, "tasks")) g_order = ORDER_TASKS;
			else if (!strcmp(optarg, "path")) g_order = ORDER_PATH;
			else {
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
		print_table(cur, pct);
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
