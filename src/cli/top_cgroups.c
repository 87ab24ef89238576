/* SPDX-License-Identifier: MIT */
/*
 * top_cgroups.c - top's units view (key g): the frame's cgroups like
 * systemd-cgtop, sorted by %CPU over the frame interval, the table of
 * `vmwatch cgroups` (cgroups_view.c).
 */
#include "cli/top_tui.h"
#include "cli/cgroups_view.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void top_cgroups_draw(const struct vmw_frame *f, int y, int h, int header_attr, size_t *first)
{
	char line[1024];
	size_t *idx;

	cgview_header(line, sizeof(line));
	tui_fill_line(y, header_attr);
	tui_put(y++, 0, line, header_attr);
	h--;
	if (!f || !f->cgroups_ok) {
		tui_put(y, 0, "this guest's cgroups cannot be read (its kernel lacks what the walk needs)", A_DIM);
		return;
	}
	if (!(idx = calloc(f->cgroups.n ? f->cgroups.n : 1, sizeof(*idx))))
		return;
	cgview_sort(&f->cgroups, f->cgroup_cpu_percent, CGVIEW_CPU, idx);
	if (*first + (size_t)(h > 0 ? h : 0) > f->cgroups.n)
		*first = f->cgroups.n > (size_t)(h > 0 ? h : 0) ? f->cgroups.n - (size_t)h : 0;
	for (int i = 0; i < h && *first + (size_t)i < f->cgroups.n; i++) {
		size_t k = idx[*first + (size_t)i];
		cgview_row(&f->cgroups.cg[k], f->cgroup_cpu_percent ? f->cgroup_cpu_percent[k] : NAN, line,
			   sizeof(line));
		tui_put(y + i, 0, line, A_NORMAL);
	}
	free(idx);
}

void top_unit_of(const struct vmw_proc *p, char *buf, size_t size)
{
	struct vmw_cgroup_info info;
	char raw[160];

	if (!p->cgroup) {
		snprintf(buf, size, "-");
		return;
	}
	if (!vmw_cgroup_classify(p->cgroup, &info))
		snprintf(raw, sizeof(raw), "%s", p->cgroup);
	else if (info.container_id[0])
		snprintf(raw, sizeof(raw), "%s:%.12s", info.runtime[0] ? info.runtime : "container", info.container_id);
	else
		snprintf(raw, sizeof(raw), "%s", info.unit[0] ? info.unit : info.slice[0] ? info.slice : p->cgroup);
	vmw_text_sanitize(buf, size, raw);
}
