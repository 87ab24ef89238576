/* SPDX-License-Identifier: MIT */
/* Opening a target for the introspection commands (ps, info, summary, bench;
 * top through the same options): a thin wrapper of src/session. */
#include "cli/cli.h"
#include "session/session.h"

#include <string.h>

struct vmw_session_opts cli_target_session_opts(const struct cli_target *t)
{
	return (struct vmw_session_opts){
		.sz = sizeof(struct vmw_session_opts),
		.no_cache = t->no_cache,
		.ignore_vmcoreinfo_kallsyms = t->ignore_vmcoreinfo_kallsyms,
		.process_read = t->process_read,
	};
}

/* The session opens it (libvirt domains included); t keeps its stack. */
int cli_target_open(struct cli_target *t, const char *name, bool want_linux)
{
	struct vmw_session_opts o = cli_target_session_opts(t);
	struct vmw_error err = { 0 };
	int r;

	o.want_linux = want_linux;
	if ((r = vmw_session_open(name, &o, &t->session, &err)) < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return EXIT_USAGE;
	}
	snprintf(t->name_buf, sizeof(t->name_buf), "%s", vmw_session_name(t->session));
	t->name = t->name_buf;
	t->mem = vmw_session_mem(t->session);
	t->k = vmw_session_kernel(t->session);
	t->lx = vmw_session_linux(t->session);
	if (t->k && vmw_kernel_info(t->k)->cache_warning)
		cli_error("warning: %s", vmw_kernel_info(t->k)->cache_warning);
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
	vmw_session_close(t->session);
	t->session = NULL;
	t->mem = NULL;
	t->k = NULL;
	t->lx = NULL;
}
