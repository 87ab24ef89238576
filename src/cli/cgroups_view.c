/* SPDX-License-Identifier: MIT */
/* cgroups_view.c - the cgroup table's order and cells (cgroups_view.h). */
#include "cli/cgroups_view.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROW_FMT "%-50s %-24s %6s %6s %8s %8s %8s %12s"

int cgview_order_parse(const char *s)
{
	static const char *const names[] = { "cpu", "memory", "tasks", "path" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -1;
}

struct sort_ctx {
	const struct vmw_cgroups *cg;
	const double *pct;
	enum cgview_order o;
};

static int cmp(const void *a, const void *b, void *p)
{
	const struct sort_ctx *s = p;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct vmw_cgroup_stat *x = &s->cg->cg[i], *y = &s->cg->cg[j];
	double px = s->pct && !isnan(s->pct[i]) ? s->pct[i] : -1, py = s->pct && !isnan(s->pct[j]) ? s->pct[j] : -1;

	switch (s->o) {
	case CGVIEW_CPU:
		if (px != py)
			return px < py ? 1 : -1;
		if (x->usage_usec != y->usage_usec)
			return x->usage_usec < y->usage_usec ? 1 : -1;
		break;
	case CGVIEW_MEMORY:
		if (x->memory_current != y->memory_current)
			return x->memory_current < y->memory_current ? 1 : -1;
		break;
	case CGVIEW_TASKS:
		if (x->nr_procs_tree != y->nr_procs_tree)
			return x->nr_procs_tree < y->nr_procs_tree ? 1 : -1;
		break;
	case CGVIEW_PATH:
		break;
	}
	return strcmp(x->path, y->path);
}

int cgview_sort(const struct vmw_cgroups *cg, const double *pct, enum cgview_order o, size_t *idx)
{
	struct sort_ctx s = { cg, pct, o };

	for (size_t i = 0; i < cg->n; i++)
		idx[i] = i;
	qsort_r(idx, cg->n, sizeof(*idx), cmp, &s);
	return 0;
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

void cgview_header(char *buf, size_t size)
{
	snprintf(buf, size, ROW_FMT, "CONTROL GROUP", "UNIT", "TASKS", "%CPU", "MEMORY", "ANON", "FILE", "CPU-TIME");
}

void cgview_row(const struct vmw_cgroup_stat *c, double pct, char *buf, size_t size)
{
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
	if (!isnan(pct))
		snprintf(p, sizeof(p), "%.1f", pct);
	if (c->memory_ok)
		human(mem, sizeof(mem), c->memory_current);
	if (c->memory_stat_ok) {
		human(anon, sizeof(anon), c->anon);
		human(file, sizeof(file), c->file);
	}
	if (c->cpu_ok)
		snprintf(cpu, sizeof(cpu), "%llu.%02llus", (unsigned long long)(c->usage_usec / 1000000),
			 (unsigned long long)(c->usage_usec % 1000000 / 10000));
	snprintf(buf, size, ROW_FMT "%s", path, unit[0] ? unit : "-", tasks, p, mem, anon, file, cpu,
		 c->incomplete ? " (incomplete)" : "");
}
