/* SPDX-License-Identifier: MIT */
/*
 * cmd_phys.c - `vmwatch phys`: dump guest physical memory (raw or hexdump),
 * or list a target's guest RAM ranges. Streams in 1 MiB chunks, so any
 * length works in constant memory.
 */
#include "cli/cli.h"
#include "session/session.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

#define CHUNK ((size_t)1 << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch phys [OPTIONS] TARGET ADDR LEN\n"
		"       vmwatch phys --ranges [OPTIONS] TARGET\n"
		"\n"
		"Write LEN bytes of guest physical memory starting at ADDR to standard output.\n"
		"ADDR and LEN are decimal or 0x-hex numbers with an optional K, M, G or T suffix\n"
		"(binary units). Every byte must be guest RAM: if the range touches a hole (the\n"
		"PCI window, the legacy VGA/BIOS window 0xa0000-0xfffff of a QEMU pc/q35 layout,\n"
		"past the end of RAM) nothing is written and the command fails.\n"
		"\n"
		CLI_TARGET_HELP
		"\n"
		"Options:\n"
		"  -x, --hex            hexdump like 'hexdump -C'; offsets are guest-physical\n"
		"                       addresses, repeated lines are shown as '*'\n"
		"  -r, --ranges         print the source description and its guest RAM ranges\n"
		"  -l, --layout=LAYOUT  how a raw file maps to guest-physical addresses: pc, q35\n"
		"                       (a QEMU RAM file of that machine) or flat (offset =\n"
		"                       address). Default: the layout of the running QEMU that\n"
		"                       maps the file as its RAM, else flat. ELF cores carry\n"
		"                       their own addresses.\n"
		"  -p, --process-read   qemu: read with process_vm_readv even when the guest's\n"
		"                       RAM is a shared file that could be mapped\n"
		"  -h, --help           show this help\n"
		"\n"
		"Exit status: 0 success, 1 the read failed, 2 bad usage or the target cannot be\n"
		"opened.\n");
}

/* "0x0-0x9ffff, 0x100000-0x1fffffff" (inclusive ends), shortened after a few. */
static void format_ranges(const struct vmw_mem_range *r, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && o < outlen; i++) {
		if (i == 6) {
			snprintf(out + o, outlen - o, ", ... (%zu ranges)", n);
			return;
		}
		o += (size_t)snprintf(out + o, outlen - o, "%s0x%llx-0x%llx", i ? ", " : "",
				      (unsigned long long)r[i].start,
				      (unsigned long long)(r[i].start + r[i].size - 1));
	}
	if (!n)
		snprintf(out, outlen, "none");
}

/* First address of [addr, addr+len) that is not guest RAM; false if all is. */
static bool first_hole(const struct vmw_mem_range *r, size_t n, uint64_t addr, uint64_t len,
		       uint64_t *ret)
{
	uint64_t end = addr + len;

	for (size_t i = 0; i < n && addr < end; i++) {
		if (r[i].start + r[i].size <= addr)
			continue;
		if (r[i].start > addr)
			break;
		addr = r[i].start + r[i].size;
	}
	if (addr < end) {
		*ret = addr;
		return true;
	}
	return false;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* hexdump -C, with the squeeze state kept across chunks. */
struct hexdump {
	uint8_t prev[16];
	bool have_prev;
	bool squeezing;
};

static void hex_line(uint64_t addr, const uint8_t *p, size_t n)
{
	char line[128];
	int o = snprintf(line, sizeof(line), "%08llx ", (unsigned long long)addr);

	for (size_t i = 0; i < 16; i++) {
		if (i == 8)
			line[o++] = ' ';
		o += i < n ? snprintf(line + o, sizeof(line) - (size_t)o, " %02x", p[i])
			   : snprintf(line + o, sizeof(line) - (size_t)o, "   ");
	}
	o += snprintf(line + o, sizeof(line) - (size_t)o, "  |");
	for (size_t i = 0; i < n; i++)
		line[o++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
	line[o++] = '|';
	line[o++] = '\n';
	fwrite(line, 1, (size_t)o, stdout);
}

static void hex_chunk(struct hexdump *h, uint64_t addr, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 16) {
		size_t k = MIN((size_t)16, n - i);

		if (k == 16 && h->have_prev && !memcmp(h->prev, p + i, 16)) {
			if (!h->squeezing)
				fputs("*\n", stdout);
			h->squeezing = true;
			continue;
		}
		h->squeezing = false;
		hex_line(addr + i, p + i, k);
		if (k == 16) {
			memcpy(h->prev, p + i, 16);
			h->have_prev = true;
		}
	}
}

static int print_ranges(struct vmw_mem *mem)
{
	const struct vmw_mem_range *r;
	size_t n = vmw_mem_ranges(mem, &r);
	char sz[32];

	printf("source: %s\n", vmw_mem_describe(mem));
	printf("ram: %llu bytes in %zu range%s\n", (unsigned long long)vmw_mem_size(mem), n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		uint64_t s = r[i].size;
		/* the same units as vmw_mem_describe */
		if (s % (1ULL << 30) == 0)
			snprintf(sz, sizeof(sz), "%llu GiB", (unsigned long long)(s >> 30));
		else if (s % (1ULL << 20) == 0)
			snprintf(sz, sizeof(sz), "%llu MiB", (unsigned long long)(s >> 20));
		else if (s % (1ULL << 10) == 0)
			snprintf(sz, sizeof(sz), "%llu KiB", (unsigned long long)(s >> 10));
		else
			snprintf(sz, sizeof(sz), "%llu bytes", (unsigned long long)s);
		printf("0x%016llx-0x%016llx  %s\n", (unsigned long long)r[i].start,
		       (unsigned long long)(r[i].start + r[i].size - 1), sz);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static int dump(struct vmw_mem *mem, uint64_t addr, uint64_t len, bool hex)
{
	const struct vmw_mem_range *ranges;
	size_t nranges = vmw_mem_ranges(mem, &ranges);
	_cleanup_free_ uint8_t *buf = NULL;
	struct hexdump h = { 0 };
	uint64_t bad, done = 0;
	char list[512];

	if (len && addr + len - 1 < addr) {
		cli_error("0x%llx + 0x%llx runs past the end of the address space",
			  (unsigned long long)addr, (unsigned long long)len);
		return EXIT_USAGE;
	}
	/* Check the whole range up front so that nothing is written for a read
	 * that would fail on a hole half-way. */
	if (len && first_hole(ranges, nranges, addr, len, &bad)) {
		format_ranges(ranges, nranges, list, sizeof(list));
		cli_error("0x%llx is not guest RAM (RAM ranges: %s); nothing written",
			  (unsigned long long)bad, list);
		return 1;
	}
	buf = malloc(CHUNK);
	if (!buf) {
		cli_error("out of memory");
		return 1;
	}
	while (done < len) {
		size_t n = (size_t)MIN((uint64_t)CHUNK, len - done);
		int r = vmw_mem_read(mem, addr + done, buf, n);

		if (r < 0) {
			fflush(stdout);
			cli_error("reading guest-physical 0x%llx: %s; %llu bytes before it were written",
				  (unsigned long long)(addr + done),
				  r == -ESRCH ? "the QEMU process is gone" :
				  r == -EFAULT ? "not guest RAM" : strerror(-r),
				  (unsigned long long)done);
			return 1;
		}
		if (hex) {
			hex_chunk(&h, addr + done, buf, n);
		} else if ((r = write_all(STDOUT_FILENO, buf, n)) < 0) {
			cli_error("writing to standard output: %s", strerror(-r));
			return 1;
		}
		done += n;
	}
	if (hex) {
		if (len)
			printf("%08llx\n", (unsigned long long)(addr + len));
		if (fflush(stdout) != 0) {
			cli_error("writing to standard output: %s", strerror(errno));
			return 1;
		}
	}
	return 0;
}

int cmd_phys(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "hex", no_argument, NULL, 'x' },
		{ "ranges", no_argument, NULL, 'r' },
		{ "map", no_argument, NULL, 'r' },
		{ "layout", required_argument, NULL, 'l' },
		{ "process-read", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vmw_session_opts opts = { .sz = sizeof(opts), .memory_only = true };
	struct vmw_session *sess;
	struct vmw_error err = { 0 };
	struct vmw_mem *mem = NULL;
	bool hex = false, ranges = false;
	uint64_t addr = 0, len = 0;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "xrl:ph", longopts, NULL)) != -1) {
		switch (c) {
		case 'x':
			hex = true;
			break;
		case 'r':
			ranges = true;
			break;
		case 'l':
			if (vmw_layout_parse(optarg, &opts.layout) < 0) {
				cli_error("unknown layout '%s' (use pc, q35 or flat)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'p':
			opts.process_read = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'vmwatch phys --help'.\n");
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (ranges ? argc != 1 : argc != 3) {
		cli_error(ranges ? "phys --ranges takes one argument: TARGET"
				 : "phys takes three arguments: TARGET ADDR LEN (try 'vmwatch phys --help')");
		return EXIT_USAGE;
	}
	if (!ranges) {
		if (vmw_parse_size(argv[1], &addr) < 0) {
			cli_error("bad address '%s' (use a number like 0x100000 or 1M)", argv[1]);
			return EXIT_USAGE;
		}
		if (vmw_parse_size(argv[2], &len) < 0) {
			cli_error("bad length '%s' (use a number like 4096, 0x1000 or 512M)", argv[2]);
			return EXIT_USAGE;
		}
	}

	r = vmw_session_open(argv[0], &opts, &sess, &err);
	if (r < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return EXIT_USAGE;
	}
	mem = vmw_session_mem(sess);
	r = ranges ? print_ranges(mem) : dump(mem, addr, len, hex);
	vmw_session_close(sess);
	return r;
}
