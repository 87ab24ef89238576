/* SPDX-License-Identifier: MIT */
/* Opening a target for the introspection commands (ps, info, top, bench). */
#include "cli/cli.h"
#include "linux/linux.h"
#include "virt/virt.h"

#include <jansson.h>
#include <string.h>

int cli_target_open(struct cli_target *t, const char *name, bool want_linux)
{
	struct vmw_error err = { 0 };
	struct vmw_kernel_opts kopts = {
		.sz = sizeof(kopts),
		.no_cache = t->no_cache,
		.ignore_vmcoreinfo_kallsyms = t->ignore_vmcoreinfo_kallsyms,
	};
	struct vmw_mem_opts mopts = { .sz = sizeof(mopts), .force_process_read = t->process_read };
	char target[300];
	int r;

	/* A libvirt domain name or UUID becomes qemu:PID (src/mem knows no libvirt). */
	if ((r = vmw_virt_resolve_target(name, target, sizeof(target), t->name_buf,
					 sizeof(t->name_buf), &err)) < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return EXIT_USAGE;
	}
	t->name = name = t->name_buf;
	if ((r = vmw_mem_open(target, &mopts, &t->mem, &err)) < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return EXIT_USAGE;
	}
	if ((r = vmw_kernel_attach(t->mem, &kopts, &t->k, &err)) < 0) {
		cli_error("%s: %s", name, vmw_error_msg(&err, r));
		cli_target_close(t);
		return EXIT_USAGE;
	}
	if (want_linux && (r = vmw_linux_new(t->k, &t->lx, &err)) < 0) {
		cli_error("%s: %s", name, vmw_error_msg(&err, r));
		cli_target_close(t);
		return EXIT_USAGE;
	}
	return 0;
}

bool cli_target_option(struct cli_target *t, int c)
{
	switch (c) {
	case 'N': t->no_cache = true; return true;
	case 'K': t->ignore_vmcoreinfo_kallsyms = true; return true;
	case 'P': t->process_read = true; return true;
	default: return false;
	}
}

void cli_target_close(struct cli_target *t)
{
	vmw_linux_free(t->lx);
	t->lx = NULL;
	if (t->k)
		vmw_kernel_detach(t->k);
	t->k = NULL;
	vmw_mem_close(t->mem);
	t->mem = NULL;
}

json_t *cli_json_string(const char *s)
{
	json_t *j = json_string(s);
	char buf[4 * 256];
	size_t n = 0;

	if (j)
		return j;
	/* Not valid UTF-8: keep ASCII, replace every other byte with U+FFFD. */
	for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < sizeof(buf); p++) {
		if (*p < 0x80) {
			buf[n++] = (char)*p;
		} else {
			memcpy(buf + n, "\xef\xbf\xbd", 3);
			n += 3;
		}
	}
	buf[n] = '\0';
	return json_string(buf);
}

json_t *cli_target_json(const struct cli_target *t)
{
	const struct vmw_kernel_info *ki = vmw_kernel_info(t->k);
	return json_pack("{s:{s:s, s:s, s:I}, s:{s:s, s:s, s:I, s:i}}",
			 "vm", "target", t->name, "source", vmw_mem_describe(t->mem),
			 "ram_bytes", (json_int_t)vmw_mem_size(t->mem),
			 "kernel", "release", ki->release, "build_id", ki->build_id,
			 "kaslr_offset", (json_int_t)ki->kaslr_offset, "paging_levels", ki->paging_levels);
}
