/* SPDX-License-Identifier: MIT */
/*
 * vmwatch ps - the guest's processes, like
 *   ps -eo pid,ppid,user,stat,nlwp,rss,vsz,time,cmd
 * run inside the guest, or one JSON object with --json.
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
		"Usage: vmwatch ps [--json] [--threads] [--no-cmdline] TARGET\n\n"
		"List the guest's processes with the values its own /proc shows.\n\n"
		"  -j, --json        one JSON object: {\"vm\", \"kernel\", \"processes\": [...]}\n"
		"  -L, --threads     list threads too (text: one row per thread; JSON: \"tasks\")\n"
		"      --no-cmdline  do not read command lines from process memory\n"
		"      --no-cache    do not use the kernel discovery cache\n"
		"      --ignore-vmcoreinfo-kallsyms\n"
		"                    find kallsyms by structure (as for kernels < 6.0)\n"
		"      --process-read  read a QEMU guest's RAM with process_vm_readv even\n"
		"                    when it is shared (for comparison)\n"
		"  -h, --help        this help\n\n"
		"TARGET: a libvirt domain name or UUID, qemu:PID or file:PATH (see 'vmwatch --help').\n");
}

static void fmt_time(char *buf, size_t size, uint64_t ns)
{
	uint64_t s = ns / 1000000000ull;
	if (s >= 86400)
		snprintf(buf, size, "%llu-%02llu:%02llu:%02llu", (unsigned long long)(s / 86400),
			 (unsigned long long)(s / 3600 % 24), (unsigned long long)(s / 60 % 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, size, "%02llu:%02llu:%02llu", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
}

static void fmt_stat(char *buf, char state, int nice, uint32_t threads)
{
	int n = 0;
	buf[n++] = state;
	if (nice < 0)
		buf[n++] = '<';
	else if (nice > 0)
		buf[n++] = 'N';
	if (threads > 1)
		buf[n++] = 'l';
	buf[n] = '\0';
}

static void print_cmd(const struct vmw_proc *p)
{
	/* Guest strings: never a control byte on the operator's terminal. */
	if (p->cmdline && p->cmdline[0]) {
		for (char **a = p->cmdline; *a; a++) {
			if (a != p->cmdline)
				putchar(' ');
			vmw_text_fputs(*a, stdout);
		}
	} else {
		putchar('[');
		vmw_text_fputs(p->comm, stdout);
		putchar(']');
	}
}

static void print_text(const struct vmw_walk *w, bool threads)
{
	char tbuf[32], sbuf[8], ubuf[16];

	if (threads)
		printf("%7s %7s %7s %-8s %-4s %4s %8s %9s %10s %s\n", "PID", "PPID", "TID", "USER", "STAT",
		       "NLWP", "RSS", "VSZ", "TIME", "CMD");
	else
		printf("%7s %7s %-8s %-4s %4s %8s %9s %10s %s\n", "PID", "PPID", "USER", "STAT", "NLWP",
		       "RSS", "VSZ", "TIME", "CMD");
	for (size_t i = 0; i < w->nprocs; i++) {
		const struct vmw_proc *p = &w->procs[i];
		fmt_time(tbuf, sizeof(tbuf), p->utime_ns + p->stime_ns);
		fmt_stat(sbuf, p->state, p->nice, p->nr_threads);
		if (!threads) {
			printf("%7d %7d %-8s %-4s %4u %8llu %9llu %10s ", p->pid, p->ppid,
			       cli_user_column(p, ubuf, sizeof(ubuf)), sbuf,
			       p->nr_threads, (unsigned long long)(vmw_proc_rss_bytes(p) >> 10),
			       (unsigned long long)(p->vsz_bytes >> 10), tbuf);
			print_cmd(p);
			putchar('\n');
			continue;
		}
		for (uint32_t j = 0; j < p->nthreads_listed; j++) {
			const struct vmw_thread *t = &p->threads[j];
			fmt_time(tbuf, sizeof(tbuf), t->utime_ns + t->stime_ns);
			fmt_stat(sbuf, t->state, t->nice, p->nr_threads);
			printf("%7d %7d %7d %-8s %-4s %4u %8llu %9llu %10s ", p->pid, p->ppid, t->tid,
			       cli_user_column(p, ubuf, sizeof(ubuf)),
			       sbuf, p->nr_threads, (unsigned long long)(vmw_proc_rss_bytes(p) >> 10),
			       (unsigned long long)(p->vsz_bytes >> 10), tbuf);
			if (t->tid == p->pid)
				print_cmd(p);
			else
				vmw_text_fputs(t->comm, stdout);
			putchar('\n');
		}
	}
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

int cmd_ps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "threads", no_argument, NULL, 'L' },
		{ "no-cmdline", no_argument, NULL, 'C' },
		CLI_TARGET_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false, threads = false, cmdline = true;
	struct cli_target t = { 0 };
	struct vmw_error err = { 0 };
	struct vmw_walk w;
	int c, r;

	while ((c = getopt_long(argc, argv, "jLh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'L': threads = true; break;
		case 'C': cmdline = false; break;
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

	r = vmw_linux_walk(t.lx, (threads ? VMW_WALK_THREADS : 0) | (cmdline ? VMW_WALK_CMDLINE : 0),
			   &w, &err);
	if (r < 0) {
		cli_error("%s: %s", argv[optind], vmw_error_msg(&err, r));
		cli_target_close(&t);
		return 1;
	}
	if (w.truncated)
		cli_error("%s: warning: process list incomplete: %s", argv[optind], w.truncated_why);
	if (w.skipped || w.incomplete)
		cli_error("%s: warning: %zu record(s) skipped, %zu process(es) incomplete (thread lists cut "
			  "or counts implausible): their values are lower bounds", argv[optind], w.skipped,
			  w.incomplete);

	if (json) {
		json_t *root = cli_target_json(&t);
		json_t *procs = json_array();
		for (size_t i = 0; i < w.nprocs; i++)
			json_array_append_new(procs, vmw_report_proc(&w.procs[i]));
		json_object_set_new(root, "processes", procs);
		json_object_set_new(root, "skipped", json_integer((json_int_t)w.skipped));
		json_object_set_new(root, "incomplete", json_integer((json_int_t)w.incomplete));
		json_object_set_new(root, "complete", json_boolean(vmw_walk_complete(&w)));
		json_dumpf(root, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(root);
	} else {
		print_text(&w, threads);
	}
	vmw_walk_free(&w);
	cli_target_close(&t);
	if (fflush(stdout) != 0) {
		cli_error("writing output: %s", strerror(errno));
		return 1;
	}
	return 0;
}
