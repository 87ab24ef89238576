/* SPDX-License-Identifier: MIT */
/*
 * cgroups_view.h - the cgroup table as `vmwatch cgroups` prints it and top's
 * units view (g) draws it, like systemd-cgtop: the order and the cells.
 */
#pragma once

#include "linux/cgroup.h"
#include "linux/cgroups.h"

#include <stddef.h>

enum cgview_order { CGVIEW_CPU, CGVIEW_MEMORY, CGVIEW_TASKS, CGVIEW_PATH };

/* "cpu", "memory", "tasks", "path" → order; -1 if unknown. */
int cgview_order_parse(const char *s);
/* idx[0..n) = the cgroups of cg in order o (pct: %CPU per cgroup or NULL).
 * -ENOMEM or 0. */
int cgview_sort(const struct vmw_cgroups *cg, const double *pct, enum cgview_order o, size_t *idx);
/* The column titles, and one cgroup's row (guest text made terminal-safe). */
void cgview_header(char *buf, size_t size);
void cgview_row(const struct vmw_cgroup_stat *c, double pct, char *buf, size_t size);
