/* SPDX-License-Identifier: MIT */
/* Opening a target for the introspection commands (ps, info, top, bench). */
#include "cli/cli.h"
#include "linux/linux.h"
#include "virt/virt.h"

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
