/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - what a VM's thread publishes after each frame: the frame, a
 * pid index, task counts and the process groups (agent_int.h, "snapshots").
 * Immutable once built; handlers render them without a lock.
 */
#include "agent/agent_int.h"

#include <errno.h>
#include <string.h>

struct agent_snap *agent_snap_ref(struct agent_snap *s)
{
	if (s)
		atomic_fetch_add(&s->ref, 1);
	return s;
}

void agent_snap_unref(struct agent_snap *s)
{
	if (!s || atomic_fetch_sub(&s->ref, 1) != 1)
		return;
	vmw_frame_free(s->frame);
	vmw_pidmap_free(&s->pids);
	free(s->groups);
	free(s);
}

long agent_snap_find(const struct agent_snap *s, int32_t pid)
{
	return s ? (long)vmw_pidmap_get(&s->pids, pid) : -1;
}

/* The group a process counts in: its name; all kernel threads together in
 * "[kernel]" (dozens of names per guest would multiply the series). */
static const char *group_name(const struct vmw_proc *p)
{
	return p->kthread ? "[kernel]" : p->comm;
}

/* A process by its group's name (sorted: pointers, not copies of names),
 * with the name's first 8 bytes as a number that orders as strcmp does:
 * most comparisons end there. */
struct gref {
	uint64_t prefix;
	const char *name;
	size_t idx;
};

static uint64_t name_prefix(const char *name)
{
	uint64_t v = 0;
	size_t i = 0;

	for (; i < 8 && name[i]; i++)
		v = v << 8 | (unsigned char)name[i];
	return i ? v << (8 * (8 - i)) : 0;
}

static int gref_cmp(const void *a, const void *b)
{
	const struct gref *x = a, *y = b;

	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int group_cmp(const void *a, const void *b)
{
	return strcmp(((const struct agent_group *)a)->name, ((const struct agent_group *)b)->name);
}

static int group_rss_cmp(const void *a, const void *b)
{
	const struct agent_group *x = a, *y = b;
	if (x->procs != y->procs)
		return !x->procs - !y->procs;      /* groups with processes first */
	return x->rss_bytes < y->rss_bytes ? 1 : x->rss_bytes > y->rss_bytes ? -1 : strcmp(x->name, y->name);
}

static int name_group_cmp(const void *name, const void *g)
{
	return strcmp(name, ((const struct agent_group *)g)->name);
}

/* name is shorter than a group's name field (a comm, "[kernel]", "[other]"). */
_Static_assert(sizeof(((struct agent_group *)0)->name) > sizeof(((struct vmw_proc *)0)->comm),
	       "a process's name fits a group's");
static const struct agent_group *group_find(const struct agent_snap *s, const char *name)
{
	if (!s || !s->ngroups)
		return NULL;
	return bsearch(name, s->groups, s->ngroups, sizeof(*s->groups), name_group_cmp);
}

static void group_merge(struct agent_group *into, const struct agent_group *g)
{
	into->procs += g->procs;
	into->threads += g->threads;
	into->rss_bytes += g->rss_bytes;
	into->vsz_bytes += g->vsz_bytes;
	into->swap_bytes += g->swap_bytes;
	into->user_ns += g->user_ns;
	into->system_ns += g->system_ns;
	into->cpu_percent += g->cpu_percent;
	into->oldest_start_ns = MIN(into->oldest_start_ns, g->oldest_start_ns);
}

/* Groups of this frame, with CPU counters carried over from prev so that
 * they only ever grow (exited processes' CPU stays counted). */
static int build_groups(struct agent_snap *s, const struct agent_snap *prev, unsigned max_groups)
{
	const struct vmw_frame *f = s->frame;
	struct gref *refs = calloc(f->nprocs ? f->nprocs : 1, sizeof(*refs));
	struct agent_group *g;
	size_t ng = 0, cap;

	if (!refs)
		return -ENOMEM;
	for (size_t i = 0; i < f->nprocs; i++) {
		refs[i].name = group_name(&f->procs[i].proc);
		refs[i].prefix = name_prefix(refs[i].name);
		refs[i].idx = i;
	}
	qsort(refs, f->nprocs, sizeof(*refs), gref_cmp);
	/* Room for this frame's names, prev's groups and "[other]". */
	cap = (prev ? prev->ngroups : 0) + 1;
	for (size_t i = 0; i < f->nprocs; i++)
		cap += !i || gref_cmp(&refs[i - 1], &refs[i]);
	if (!(g = calloc(cap, sizeof(*g)))) {
		free(refs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_sample *x = &f->procs[refs[i].idx];
		const struct vmw_proc *p = &x->proc;
		long j;
		uint64_t du, ds;

		if (!ng || strcmp(g[ng - 1].name, refs[i].name)) {
			const struct agent_group *old = group_find(prev, refs[i].name);
			snprintf(g[ng].name, sizeof(g[ng].name), "%s", refs[i].name);
			g[ng].oldest_start_ns = UINT64_MAX;
			if (old) {
				g[ng].user_ns = old->user_ns;
				g[ng].system_ns = old->system_ns;
			}
			ng++;
		}
		struct agent_group *cur = &g[ng - 1];
		cur->procs++;
		cur->threads += p->nr_threads;
		cur->rss_bytes += vmw_proc_rss_bytes(p);
		cur->vsz_bytes += p->vsz_bytes;
		cur->swap_bytes += p->swap_bytes;
		cur->cpu_percent += x->cpu_percent;
		cur->oldest_start_ns = MIN(cur->oldest_start_ns, p->start_time_ns);
		j = agent_snap_find(prev, p->pid);
		if (j >= 0 && prev->frame->procs[j].proc.start_time_ns == p->start_time_ns) {
			du = vmw_sat_sub(p->utime_ns, prev->frame->procs[j].proc.utime_ns);
			ds = vmw_sat_sub(p->stime_ns, prev->frame->procs[j].proc.stime_ns);
		} else {
			du = p->utime_ns;   /* started since, or the first frame: all of it */
			ds = p->stime_ns;
		}
		cur->user_ns += du;
		cur->system_ns += ds;
	}
	free(refs);
	/* Groups whose processes all exited keep their counters (0 processes).
	 * Looked up among this frame's groups only: those are sorted, the ones
	 * appended here are not (and prev's names are distinct). */
	size_t nfresh = ng;
	for (size_t i = 0; prev && i < prev->ngroups; i++) {
		if (bsearch(prev->groups[i].name, g, nfresh, sizeof(*g), name_group_cmp))
			continue;
		if (!prev->groups[i].procs && prev->ngroups > max_groups / 2)
			continue;          /* drop idle groups first when crowded */
		g[ng] = prev->groups[i];
		g[ng].procs = g[ng].threads = 0;
		g[ng].rss_bytes = g[ng].vsz_bytes = g[ng].swap_bytes = 0;
		g[ng].cpu_percent = 0;
		g[ng].oldest_start_ns = UINT64_MAX;
		ng++;
	}
	qsort(g, ng, sizeof(*g), group_cmp);
	/* Bounded cardinality: the largest groups by memory, the rest in "[other]". */
	if (max_groups && ng > max_groups) {
		struct agent_group other = { .name = "[other]", .oldest_start_ns = UINT64_MAX };
		const struct agent_group *old = group_find(prev, "[other]");
		qsort(g, ng, sizeof(*g), group_rss_cmp);
		for (size_t i = max_groups - 1; i < ng; i++)
			if (strcmp(g[i].name, "[other]"))
				group_merge(&other, &g[i]);
		/* "[other]" may only grow, even as its members change. */
		if (old) {
			other.user_ns = MAX(other.user_ns, old->user_ns);
			other.system_ns = MAX(other.system_ns, old->system_ns);
		}
		ng = max_groups - 1;
		g[ng++] = other;
		qsort(g, ng, sizeof(*g), group_cmp);
	} else if (!max_groups) {
		ng = 0;
	}
	s->groups = g;
	s->ngroups = ng;
	return 0;
}

static atomic_uint_fast64_t snap_ids;

struct agent_snap *agent_snap_build(struct vmw_frame *f, const struct agent_snap *prev,
				   uint64_t seq, unsigned max_groups)
{
	struct agent_snap *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	atomic_init(&s->ref, 1);
	s->seq = seq;
	s->id = atomic_fetch_add(&snap_ids, 1) + 1;
	s->frame = f;
	s->summary = f->summary_ok ? &f->summary : NULL;
	if (vmw_pidmap_reset(&s->pids, f->nprocs) < 0) {
		free(s);
		return NULL;
	}
	s->bytes = sizeof(*s) + s->pids.cap * sizeof(*s->pids.slot) + sizeof(*f) +
		   f->nprocs * sizeof(*f->procs) + f->nevents * sizeof(*f->events);
	vmw_report_tasks_count(f, &s->tasks);
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_proc *p = &f->procs[i].proc;
		vmw_pidmap_put(&s->pids, p->pid, i);
		for (char **a = p->cmdline; a && *a; a++)
			s->bytes += strlen(*a) + 1 + sizeof(char *);
	}
	if (build_groups(s, prev, max_groups) < 0) {
		s->frame = NULL;
		agent_snap_unref(s);
		return NULL;
	}
	s->bytes += s->ngroups * sizeof(*s->groups);
	return s;
}
