/* SPDX-License-Identifier: MIT */
/*
 * cli.h - the vmwatch command's subcommands. Each takes the arguments after
 * its own name (argv[0] is the subcommand) and returns the process exit code:
 *   0 success, 1 failure while running, 2 bad usage or a target that cannot
 *   be opened (the message names the target and what to do).
 * Front ends never touch guest memory directly: they go through libvmwatch.
 * Every JSON object comes from src/report (report.h), shared with the agent.
 */
#pragma once

#include "util/util.h"

#define EXIT_USAGE 2

/* Every form of TARGET, for each command's --help. */
#define CLI_TARGET_HELP \
	"TARGET: the NAME or UUID of a running libvirt domain (or domain:NAME),\n" \
	"qemu:PID of a running QEMU process, or file:PATH (a shared RAM file, an ELF\n" \
	"core from dump-guest-memory / virsh dump --memory-only, or a raw image).\n"

int cmd_phys(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* Print "vmwatch: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A target opened for introspection: memory source, kernel, Linux model. */
struct vmw_mem;
struct vmw_kernel;
struct vmw_linux;
struct vmw_proc;
struct vmw_session;
struct vmw_session_opts;
typedef struct json_t json_t;

struct cli_target {
	const char *name;
	bool no_cache;
	bool ignore_vmcoreinfo_kallsyms;
	bool process_read;            /* force process_vm_readv for qemu: targets */
	struct vmw_mem *mem;
	struct vmw_kernel *k;
	struct vmw_linux *lx;
	struct vmw_session *session;  /* owns mem, k and lx */
	char name_buf[320];           /* name storage: "vm1 (qemu:1234)" for a libvirt domain */
};

/* Long options every introspection command takes; handle them with
 * cli_target_option(), which returns false for any other option. */
#define CLI_TARGET_OPTIONS \
	{ "no-cache", no_argument, NULL, 'N' }, \
	{ "ignore-vmcoreinfo-kallsyms", no_argument, NULL, 'K' }, \
	{ "process-read", no_argument, NULL, 'P' }
bool cli_target_option(struct cli_target *t, int c);
/* Their lines in a command's --help. */
#define CLI_TARGET_OPTIONS_HELP \
	"      --no-cache    do not use the kernel discovery cache\n" \
	"      --ignore-vmcoreinfo-kallsyms\n" \
	"                    find kallsyms by structure (as for kernels < 6.0)\n" \
	"      --process-read  read a QEMU guest's RAM with process_vm_readv even\n" \
	"                    when it is shared\n"
/* The session options these target options stand for. */
struct vmw_session_opts cli_target_session_opts(const struct cli_target *t);

/* Open name (a libvirt domain name or UUID, domain:NAME, qemu:PID or
 * file:PATH), attach to its kernel and (if want_linux) the process model.
 * Returns 0, or the exit code after printing a one-line error. */
int cli_target_open(struct cli_target *t, const char *name, bool want_linux);
void cli_target_close(struct cli_target *t);
/* After the options: exactly one TARGET (argv[optind]) left, opened with
 * cli_target_open. 0, or the exit code (usage(stderr) for a wrong count). */
int cli_target_arg(struct cli_target *t, int argc, char **argv, bool want_linux, void (*usage)(FILE *));
/* {"vm": {...}, "kernel": {...}} describing t (report.h's vmw_report_target). */
json_t *cli_target_json(const struct cli_target *t);

int cmd_ps(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_vms(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_cgroups(int argc, char **argv);

/* USER as ps and top show it: the name of p's euid from the guest's
 * /etc/passwd (cut to CLI_USER_WIDTH with a '+'), else the number. */
#define CLI_USER_WIDTH 8
const char *cli_user_column(const struct vmw_proc *p, char *buf, size_t size);
