/* SPDX-License-Identifier: MIT */
/*
 * vmwatch ps - the guest's processes, like procps' ps run inside the guest
 * (-o, --sort, -p, -u, -C, --forest with procps' names and formulas: ps.h),
 * or one JSON object with --json.
 */
#include "cli/cli.h"
#include "cli/ps.h"
#include "linux/linux.h"
#include "report/report.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch ps [OPTIONS] TARGET\n\n"
		"List the guest's processes with the values its own /proc shows, like procps'\n"
		"ps run inside the guest (default columns: pid,ppid,user,stat,nlwp,rss,vsz,time,cmd).\n\n"
		"  -e, -A              every process (the default)\n"
		"  -o, --format COLS   columns, procps names: pid ppid user uid ruser pcpu (%%cpu)\n"
		"                      pmem (%%mem) rss vsz stat s nlwp ni sid pgid tpgid tty\n"
		"                      etime etimes start\n"
		"                      stime lstart time args comm cmd tid ...; COL=HEADER renames\n"
		"      --sort KEYS     sort by columns: [+|-]KEY[,...] (- descending)\n"
		"  -p, --pid PIDS      only these processes (comma-separated list)\n"
		"  -u, --user USERS    only these effective users (names in the guest's\n"
		"                      cached /etc/passwd, or numeric uids)\n"
		"  -U USERS            only these real users\n"
		"  -C NAMES            only processes with these command names (comm)\n"
		"      --forest        ASCII-art process tree in the command column\n"
		"  -H                  process hierarchy: children indented\n"
		"      --no-headers    no header line\n"
		"  -j, --json          one JSON object: {\"vm\", \"kernel\", \"processes\": [...]}\n"
		"                      (selection and --sort apply; -o does not)\n"
		"  -L, --threads       list threads too (text: one row per thread; JSON: \"tasks\")\n"
		"      --no-cmdline    do not read command lines from process memory\n"
		"      --no-cache      do not use the kernel discovery cache\n"
		"      --ignore-vmcoreinfo-kallsyms\n"
		"                      find kallsyms by structure (as for kernels < 6.0)\n"
		"      --process-read  read a QEMU guest's RAM with process_vm_readv even\n"
		"                      when it is shared (for comparison)\n"
		"  -h, --help          this help\n\n"
		"Selections add up (a process matching any is listed). %%CPU is CPU time over\n"
		"the time since the process started, as procps computes it; USER is the name\n"
		"in the guest's cached /etc/passwd (the uid when it has none).\n\n"
		CLI_TARGET_HELP);
}

int cli_target_arg(struct cli_target *t, int argc, char **argv, bool want_linux, void (*print_usage)(FILE *))
{
	if (optind != argc - 1) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	return cli_target_open(t, argv[optind], want_linux);
}

json_t *cli_target_json(const struct cli_target *t)
{
	return vmw_report_target(t->name, t->mem, vmw_kernel_info(t->k));
}


enum { OPT_SORT = 1000, OPT_FOREST, OPT_NO_HEADERS, OPT_NO_CMDLINE };

struct ps_opts {
	bool json, threads, cmdline, no_headers;
	struct ps_format fmt;
	struct ps_sort sort;
	struct ps_select sel;
};

/* One option of ps_opts; false for an option that is not ps's own. */
static int ps_option(struct ps_opts *o, int c, const char *arg)
{
	char err[256] = "";
	int r = 0;

	switch (c) {
	case 'e': case 'A': break;
	case 'j': o->json = true; break;
	case 'L': o->threads = true; break;
	case OPT_NO_CMDLINE: o->cmdline = false; break;
	case OPT_NO_HEADERS: o->no_headers = true; break;
	case OPT_FOREST: o->fmt.forest = true; break;
	case 'H': o->fmt.indent = true; break;
	case 'o': r = ps_format_add(&o->fmt, arg, err, sizeof(err)); break;
	case OPT_SORT: r = ps_sort_add(&o->sort, arg, err, sizeof(err)); break;
	case 'p': r = ps_select_pids(&o->sel, arg, err, sizeof(err)); break;
	case 'u': r = ps_select_users(&o->sel, arg, false, err, sizeof(err)); break;
	case 'U': r = ps_select_users(&o->sel, arg, true, err, sizeof(err)); break;
	case 'C': r = ps_select_comms(&o->sel, arg, err, sizeof(err)); break;
	default: return 1;
	}
	if (r < 0) {
		cli_error("ps: %s", err[0] ? err : strerror(-r));
		return -1;
	}
	return 0;
}

static void ps_opts_free(struct ps_opts *o)
{
	ps_format_free(&o->fmt);
	ps_select_free(&o->sel);
}

/* Parse argv; 0, or the exit code (-1 for --help: exit 0). */
static int parse_args(struct ps_opts *o, struct cli_target *t, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'o' },
		{ "sort", required_argument, NULL, OPT_SORT },
		{ "pid", required_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'u' },
		{ "forest", no_argument, NULL, OPT_FOREST },
		{ "no-headers", no_argument, NULL, OPT_NO_HEADERS },
		{ "no-heading", no_argument, NULL, OPT_NO_HEADERS },
		{ "json", no_argument, NULL, 'j' },
		{ "threads", no_argument, NULL, 'L' },
		{ "no-cmdline", no_argument, NULL, OPT_NO_CMDLINE },
		CLI_TARGET_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "eAo:p:u:U:C:HLjh", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if ((r = ps_option(o, c, optarg)) < 0)
			return EXIT_USAGE;
		if (r > 0 && !cli_target_option(t, c)) {
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (o->threads && (o->fmt.forest || o->fmt.indent)) {
		cli_error("ps: --forest and -H draw processes, not threads: drop -L");
		return EXIT_USAGE;
	}
	if (!o->fmt.ncols) {
		char err[128];
		ps_format_add(&o->fmt, o->threads ? "pid,ppid,tid,user,stat,nlwp,rss,vsz,time,cmd"
						  : "pid,ppid,user,stat,nlwp,rss,vsz,time,cmd", err, sizeof(err));
	}
	return 0;
}

/* The selected processes (or their threads) as rows, sorted, in tree order. */
static struct ps_row *make_rows(const struct ps_opts *o, const struct ps_ctx *ctx, const struct vmw_walk *w,
				size_t *nrows)
{
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < w->nprocs; i++)
		cap += o->threads ? MAX(w->procs[i].nthreads_listed, 1u) : 1;
	struct ps_row *rows = calloc(cap + 1, sizeof(*rows));
	if (!rows)
		return NULL;
	for (size_t i = 0; i < w->nprocs; i++) {
		const struct vmw_proc *p = &w->procs[i];
		if (!ps_selected(&o->sel, p))
			continue;
		if (!o->threads || !p->nthreads_listed) {
			rows[n] = (struct ps_row){ .p = p, .order = n };
			n++;
			continue;
		}
		for (uint32_t j = 0; j < p->nthreads_listed; j++, n++)
			rows[n] = (struct ps_row){ .p = p, .t = &p->threads[j], .order = n };
	}
	ps_sort_rows(&o->sort, ctx, rows, n);
	if ((o->fmt.forest || o->fmt.indent) && ps_forest(rows, n) < 0) {
		free(rows);
		return NULL;
	}
	*nrows = n;
	return rows;
}

/* Streamed: the head object's text without its closing brace, then one
 * process after the other (the same bytes as one jansson tree dumped). */
static void print_json(struct cli_target *t, const struct vmw_walk *w, const struct ps_row *rows, size_t n)
{
	json_t *root = cli_target_json(t);
	char *head = root ? json_dumps(root, JSON_COMPACT) : NULL;
	size_t len = head ? strlen(head) : 0;
	bool first = true;

	json_decref(root);
	if (len < 2) {
		free(head);
		cli_error("out of memory");
		return;
	}
	fwrite(head, 1, len - 1, stdout);
	free(head);
	fputs(",\"processes\":[", stdout);
	for (size_t i = 0; i < n; i++) {
		if (rows[i].t && rows[i].t != rows[i].p->threads)
			continue;
		/* a process jansson could not pack was left out of the array */
		if (vmw_report_proc_stream(stdout, first ? "" : ",", rows[i].p))
			first = false;
	}
	printf("],\"skipped\":%zu,\"incomplete\":%zu,\"complete\":%s}\n", w->skipped, w->incomplete,
	       vmw_walk_complete(w) ? "true" : "false");
}

/* The guest's uptime, btime and MemTotal, when a column or key needs them. */
static struct vmw_summary_reader *read_summary(const struct ps_opts *o, struct cli_target *t,
					       struct vmw_summary *sum, struct ps_ctx *ctx)
{
	struct vmw_summary_reader *rd = NULL;
	struct vmw_error err = { 0 };
	int r;

	if (o->json || !ps_needs_summary(&o->fmt, &o->sort))
		return NULL;
	if ((r = vmw_summary_new(t->k, &rd, &err)) < 0 || (r = vmw_summary_read(rd, sum, &err)) < 0) {
		cli_error("%s: warning: the guest's clock and memory are unreadable (%s): %%CPU, %%MEM, "
			  "ELAPSED and START print -", t->name, vmw_error_msg(&err, r));
		return rd;
	}
	ctx->sum = sum;
	return rd;
}

static void warn_incomplete(const struct vmw_walk *w, const char *target)
{
	if (w->truncated)
		cli_error("%s: warning: process list incomplete: %s", target, w->truncated_why);
	if (w->skipped || w->incomplete)
		cli_error("%s: warning: %zu record(s) skipped, %zu process(es) incomplete (thread lists cut "
			  "or counts implausible): their values are lower bounds", target, w->skipped,
			  w->incomplete);
}

int cmd_ps(int argc, char **argv)
{
	struct ps_opts o = { .cmdline = true };
	struct cli_target t = { 0 };
	struct vmw_error err = { 0 };
	struct vmw_summary sum;
	struct vmw_summary_reader *rd;
	struct ps_ctx ctx = { 0 };
	struct ps_row *rows;
	struct vmw_walk w;
	size_t nrows = 0;
	char errbuf[256];
	int r;

	if ((r = parse_args(&o, &t, argc, argv)) != 0 || (r = cli_target_arg(&t, argc, argv, true, usage)) != 0) {
		ps_opts_free(&o);
		return r < 0 ? 0 : r;
	}
	r = vmw_linux_walk(t.lx, (o.threads ? VMW_WALK_THREADS : 0) | (o.cmdline ? VMW_WALK_CMDLINE : 0), &w, &err);
	if (r < 0) {
		cli_error("%s: %s", argv[optind], vmw_error_msg(&err, r));
		cli_target_close(&t);
		ps_opts_free(&o);
		return 1;
	}
	warn_incomplete(&w, argv[optind]);
	/* -u/-U names: the guest's passwd was read by the walk. */
	if (ps_select_resolve_users(&o.sel, vmw_linux_users(t.lx), errbuf, sizeof(errbuf)) < 0) {
		cli_error("ps: %s", errbuf);
		vmw_walk_free(&w);
		cli_target_close(&t);
		ps_opts_free(&o);
		return EXIT_USAGE;
	}
	rd = read_summary(&o, &t, &sum, &ctx);
	if (!(rows = make_rows(&o, &ctx, &w, &nrows))) {
		cli_error("out of memory");
		r = 1;
	} else if (o.json) {
		print_json(&t, &w, rows, nrows);
	} else {
		if (!o.no_headers)
			ps_print_header(&o.fmt, stdout);
		for (size_t i = 0; i < nrows; i++)
			ps_print_row(&o.fmt, &ctx, &rows[i], stdout);
	}
	free(rows);
	vmw_summary_free(rd);
	vmw_walk_free(&w);
	cli_target_close(&t);
	ps_opts_free(&o);
	if (!r && fflush(stdout) != 0) {
		cli_error("writing output: %s", strerror(errno));
		return 1;
	}
	return r;
}
