/* SPDX-License-Identifier: MIT */
/*
 * vmwatch cat - a guest file as the guest's page cache holds it (see
 * linux/pagecache.h), never touching the guest. The bytes go to stdout
 * unchanged when it is a file or a pipe; to a terminal, a guest's control
 * bytes are shown as '?' as in every other text output (--raw: unchanged).
 * What is not cached is said on stderr and the exit code is 1.
 */
#include "cli/cli.h"
#include "linux/linux.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX (64ull << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch cat [--max-size BYTES] TARGET PATH\n\n"
		"Print the guest file PATH (absolute; symlinks followed) from the guest's page\n"
		"cache: only what the guest has cached can be read, and nothing is asked of\n"
		"the guest. Parts that are not cached are skipped and named on stderr, and the\n"
		"exit code is then 1; a file whose path is not in the guest's dentry cache is\n"
		"'not cached'. Mount points of PID 1's namespace are crossed.\n\n"
		"      --max-size BYTES  refuse files larger than this (default 64 MiB)\n"
		"      --raw             write control bytes to a terminal too (the file's bytes\n"
		"                        go out unchanged to a file or a pipe anyway)\n"
		CLI_TARGET_OPTIONS_HELP
		"  -h, --help        this help\n\n"
		"TARGET: a libvirt domain name or UUID, qemu:PID or file:PATH (see 'vmwatch --help').\n");
}

/* Guest bytes for a terminal: newlines, tabs and printable UTF-8 as they
 * are, every other byte (C0, DEL, C1, invalid UTF-8, NUL) as '?'. */
static size_t write_safe(const uint8_t *p, size_t n, FILE *out)
{
	for (size_t i = 0; i < n;) {
		char ch[5] = { 0 };
		size_t len;

		if (p[i] == '\n' || p[i] == '\t') {
			fputc(p[i++], out);
			continue;
		}
		memcpy(ch, p + i, MIN(n - i, (size_t)4));   /* terminated: vmw_utf8_len stops here */
		if (!(len = vmw_utf8_len(ch))) {
			fputc('?', out);
			i++;
		} else {
			fwrite(p + i, 1, len, out);
			i += len;
		}
	}
	return ferror(out) ? 0 : n;
}

/* The cached ranges to stdout, the holes to stderr; the exit code. */
static int print_file(const char *path, const struct vmw_file *file, bool raw)
{
	uint64_t at = 0;
	char safe[512];

	for (size_t i = 0; i <= file->nholes; i++) {
		uint64_t end = i < file->nholes ? file->holes[i].off : file->size;
		if (end > at && (raw ? fwrite(file->data + at, 1, end - at, stdout)
				     : write_safe((const uint8_t *)file->data + at, end - at, stdout)) != end - at) {
			cli_error("writing to stdout: %s", strerror(errno));
			return 1;
		}
		if (i < file->nholes)
			at = file->holes[i].off + file->holes[i].len;
	}
	if (fflush(stdout) != 0) {
		cli_error("writing to stdout: %s", strerror(errno));
		return 1;
	}
	if (!file->nholes)
		return 0;
	vmw_text_sanitize(safe, sizeof(safe), path);
	for (size_t i = 0; i < file->nholes; i++)
		cli_error("%s: bytes %" PRIu64 "-%" PRIu64 " of %" PRIu64 " are not cached%s (not printed)",
			  safe, file->holes[i].off, file->holes[i].off + file->holes[i].len - 1, file->size,
			  file->incomplete ? " or did not add up" : "");
	return 1;
}

int cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max-size", required_argument, NULL, 'm' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		CLI_TARGET_OPTIONS,
		{ 0 },
	};
	struct cli_target t = { 0 };
	uint64_t max = DEFAULT_MAX;
	bool raw = !isatty(STDOUT_FILENO);
	struct vmw_error err = { 0 };
	struct vmw_files *files = NULL;
	struct vmw_file file = { 0 };
	char *end;
	int c, r, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (cli_target_option(&t, c))
			continue;
		switch (c) {
		case 'm':
			errno = 0;
			max = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-') {
				cli_error("--max-size: '%s' is not a number of bytes", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'r': raw = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((rc = cli_target_open(&t, argv[optind], false)))
		return rc;
	if ((r = vmw_files_new(t.k, &files, &err)) < 0) {
		cli_error("%s: %s", t.name, vmw_error_msg(&err, r));
		cli_target_close(&t);
		return 1;
	}
	if ((r = vmw_files_read(files, argv[optind + 1], max, &file, &err)) < 0) {
		char safe[512];
		vmw_text_sanitize(safe, sizeof(safe), vmw_error_msg(&err, r));
		cli_error("%s", safe);
		rc = 1;
	} else {
		rc = print_file(argv[optind + 1], &file, raw);
	}
	vmw_file_release(&file);
	vmw_files_free(files);
	cli_target_close(&t);
	return rc;
}
