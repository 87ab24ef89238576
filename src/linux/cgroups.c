/* SPDX-License-Identifier: MIT */
/*
 * cgroups.c - per-cgroup CPU and memory figures (see cgroups.h).
 *
 * cpu.stat (kernel/cgroup/rstat.c, 6.1 and 6.12): cgroup_base_stat_cputime_show()
 * flushes (cgroup_rstat_flush) and prints cgroup->bstat. The flush runs
 * cgroup_base_stat_flush() for every cgroup on the updated tree, per CPU:
 *     delta = rstatc->bstat - rstatc->last_bstat      (per-CPU, not yet taken)
 *     cgrp->bstat += delta; rstatc->last_bstat += delta
 *     if the parent is not the root:
 *         delta = cgrp->bstat - cgrp->last_bstat     (not yet given upwards)
 *         parent->bstat += delta; cgrp->last_bstat += delta
 * so after it, for a cgroup C (a cgroup with nothing pending adds 0):
 *     F(C) = C.bstat + sum over CPUs (rstatc.bstat - rstatc.last_bstat)
 *                    + sum over children K (F(K) - K.last_bstat)
 * usage_usec is F.sum_exec_runtime / 1000; user/system come from
 * cputime_adjust(&F.cputime, &cgrp->prev_cputime) (not updating prev here).
 *
 * memory.stat (mm/memcontrol.c): memory_stat_format() calls
 * mem_cgroup_flush_stats(), which flushes only past a threshold (6.1: the
 * global stats_flush_threshold > num_online_cpus(); 6.8+: the memcg's own
 * vmstats->stats_updates > MEMCG_CHARGE_BATCH * num_online_cpus()), then
 * prints memcg_page_state() (state[i], negative as 0) * PAGE_SIZE.
 * mem_cgroup_css_rstat_flush() has the same shape as the base stats:
 *     F(M)[i] = M.state[i] + M.state_pending[i]
 *             + sum over CPUs (statc.state[i] - statc.state_prev[i])
 *             + sum over child memcgs K (F(K)[i] - K.state[i])
 * The memcg tree is walked on its own (memcg css children lists): a memcg
 * outlives its cgroup's removal (a zombie) and keeps counting into its parent.
 * Since 6.10 state[] is indexed through mem_cgroup_stats_index[] (int8_t,
 * 1-based with 0 for none; later u8, 0-based with 0xff for none).
 */
#include "linux/cgroups.h"
#include "linux/linux_internal.h"

#include <math.h>
#include <stdlib.h>

#define CG_MAX_DEPTH     64
#define CG_MAX_NODES     8192        /* cgroups (and memcgs) visited in one read */
#define CG_NAME_MAX      256
#define CG_PATH_MAX      4096
#define MAX_STRUCT_SPAN  16384       /* a cgroup's fields read in one piece */
#define MEMCG_CHARGE_BATCH 64        /* include/linux/memcontrol.h (a #define) */
#define PAGE_SIZE_BYTES  4096ull
#define NSEC_PER_USEC    1000ull
#define MAX_STAT_INDEX   512

enum { U_SUM, U_UT, U_ST, NB };     /* task_cputime members */
enum { M_ANON, M_FILE, NM };

struct vmw_cgroup_reader {
	struct vmw_kernel *k;
	struct vmw_xlat *kx;
	uint64_t kernel_space;
	unsigned nr_cpus;
	uint64_t *pcpu;
	uint64_t root_cgrp;          /* &cgrp_dfl_root.cgrp */
	uint64_t css_online;         /* CSS_ONLINE */
	/* cgroup / css / kernfs */
	struct fld self, css_children, css_sibling, css_parent, css_flags, css_cgroup, kn, kn_name;
	/* base stats */
	bool cpu;
	struct fld bstat[NB], last_bstat[NB], prev_ut, prev_st, rstat_cpu, rc_bstat[NB], rc_last[NB];
	/* memory */
	bool mem, memstat;
	int mem_id;
	struct fld subsys, mem_css, mem_usage, vmstats, vm_state, vm_pending, vm_updates,
		percpu, pc_state, pc_prev;
	bool vmstats_ptr;            /* mem_cgroup.vmstats is a pointer (6.3+), not embedded */
	int64_t item[NM];            /* NR_ANON_MAPPED, NR_FILE_PAGES */
	uint64_t a_index;            /* mem_cgroup_stats_index (6.10+), 0 if none */
	uint32_t nr_index;           /* MEMCG_NR_STAT: its entries */
	uint64_t a_threshold;        /* 6.1: stats_flush_threshold */
	uint64_t a_online;           /* __num_online_cpus */
	/* Per-CPU reads batched (vmw_xlat_readv): the rstat fields' span in a
	 * cgroup_rstat_cpu, and room for every CPU's pieces. */
	uint32_t rc_lo, rc_len;
	struct vmw_virt_iov *iov;    /* NM * 2 * nr_cpus */
	uint8_t *pcbuf;              /* nr_cpus * MAX(rc_len, NM * 2 * 8) */
};

/* One memcg's memory.stat, found again by its css address. */
struct memrow {
	uint64_t css;
	uint64_t v[NM];
};

struct rd {
	struct vmw_cgroup_reader *r;
	struct vmw_cgroups *out;
	size_t cap;
	size_t nodes;                /* visited in this read (both walks) */
	int64_t slot[NM];            /* state[] index of each item */
	bool flush_all;              /* 6.1: the global threshold is past */
	uint32_t online;
	struct memrow *mem;
	size_t nmem, memcap;
	char path[CG_PATH_MAX];
	uint64_t bytes;
};

static bool kaddr(const struct vmw_cgroup_reader *r, uint64_t a)
{
	return a >= r->kernel_space;
}

static void cut(struct rd *d, const char *why, uint64_t at)
{
	if (!d->out->truncated)
		snprintf(d->out->truncated_why, sizeof(d->out->truncated_why), "%s (at 0x%llx)", why,
			 (unsigned long long)at);
	d->out->truncated = true;
}

static int rd(struct rd *d, uint64_t addr, void *buf, size_t len)
{
	int r = vmw_xlat_read(d->r->kx, addr, buf, len);
	if (r >= 0)
		d->bytes += len;
	return r;
}

static bool rd64(struct rd *d, uint64_t addr, uint64_t *v)
{
	return rd(d, addr, v, 8) >= 0;
}

/* ---- layouts ------------------------------------------------------------- */

static const char *const CPUTIME[NB] = { "sum_exec_runtime", "utime", "stime" };

static bool cputime_fields(struct vmw_kernel *k, const char *type, const char *prefix, struct fld *f)
{
	for (int i = 0; i < NB; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.cputime.%s", prefix, CPUTIME[i]);
		if (member(k, type, name, &f[i]) < 0 || f[i].size != 8)
			return false;
	}
	return true;
}

static void resolve_cpu(struct vmw_cgroup_reader *r)
{
	struct vmw_kernel *k = r->k;
	r->cpu = cputime_fields(k, "cgroup", "bstat", r->bstat) &&
		 cputime_fields(k, "cgroup", "last_bstat", r->last_bstat) &&
		 member(k, "cgroup", "prev_cputime.utime", &r->prev_ut) == 0 && r->prev_ut.size == 8 &&
		 member(k, "cgroup", "prev_cputime.stime", &r->prev_st) == 0 && r->prev_st.size == 8 &&
		 member(k, "cgroup", "rstat_cpu", &r->rstat_cpu) == 0 && r->rstat_cpu.size == 8 &&
		 cputime_fields(k, "cgroup_rstat_cpu", "bstat", r->rc_bstat) &&
		 cputime_fields(k, "cgroup_rstat_cpu", "last_bstat", r->rc_last);
}

static void resolve_mem(struct vmw_cgroup_reader *r)
{
	struct vmw_kernel *k = r->k;
	int64_t id, nr;

	r->mem = vmw_kernel_enum_value(k, "memory_cgrp_id", &id) == 0 && id >= 0 && id < 64 &&
		 member(k, "cgroup", "subsys", &r->subsys) == 0 &&
		 (uint64_t)id * 8 + 8 <= r->subsys.size &&
		 member(k, "mem_cgroup", "css", &r->mem_css) == 0 &&
		 member(k, "mem_cgroup", "memory.usage", &r->mem_usage) == 0 && r->mem_usage.size == 8;
	r->mem_id = r->mem ? (int)id : 0;
	if (!r->mem)
		return;
	/* memory.stat: vmstats embedded (6.1) or behind a pointer (6.3+). */
	struct fld emb;
	if (member(k, "mem_cgroup", "vmstats.state", &emb) == 0) {
		r->vmstats_ptr = false;
		member(k, "mem_cgroup", "vmstats", &r->vmstats);
	} else {
		r->vmstats_ptr = true;
		if (member(k, "mem_cgroup", "vmstats", &r->vmstats) < 0 || r->vmstats.size != 8)
			return;
	}
	bool ok = member(k, "memcg_vmstats", "state", &r->vm_state) == 0 &&
		  member(k, "memcg_vmstats", "state_pending", &r->vm_pending) == 0 &&
		  member(k, "mem_cgroup", "vmstats_percpu", &r->percpu) == 0 && r->percpu.size == 8 &&
		  member(k, "memcg_vmstats_percpu", "state", &r->pc_state) == 0 &&
		  member(k, "memcg_vmstats_percpu", "state_prev", &r->pc_prev) == 0 &&
		  vmw_kernel_enum_value(k, "NR_ANON_MAPPED", &r->item[M_ANON]) == 0 &&
		  vmw_kernel_enum_value(k, "NR_FILE_PAGES", &r->item[M_FILE]) == 0 &&
		  vmw_kernel_symbol(k, "__num_online_cpus", &r->a_online) == 0;
	if (!ok)
		return;
	/* The flush threshold: per memcg (6.8+) or global (6.1). */
	if (member(k, "memcg_vmstats", "stats_updates", &r->vm_updates) < 0 &&
	    vmw_kernel_symbol(k, "stats_flush_threshold", &r->a_threshold) < 0)
		return;
	/* Compact state[] indexes (6.10+). */
	if (vmw_kernel_symbol(k, "mem_cgroup_stats_index", &r->a_index) == 0) {
		if (vmw_kernel_enum_value(k, "MEMCG_NR_STAT", &nr) < 0 || nr <= 0 || nr > MAX_STAT_INDEX)
			return;
		r->nr_index = (uint32_t)nr;
	}
	r->memstat = true;
}

int vmw_cgroups_new(struct vmw_kernel *k, struct vmw_cgroup_reader **ret, struct vmw_error *err)
{
	struct vmw_cgroup_reader *r = calloc(1, sizeof(*r));
	struct fld root;
	uint64_t sym;
	int64_t online;
	int rc;

	if (!r)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	r->k = k;
	r->kx = vmw_kernel_xlat(k);
	r->kernel_space = kernel_space_start(k);
	r->nr_cpus = vmw_kernel_info(k)->nr_cpus;
	if ((rc = vmw_kernel_symbol(k, "cgrp_dfl_root", &sym)) < 0) {
		vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, rc, "kernel %s: no symbol cgrp_dfl_root (cgroup v2 root)",
			       vmw_kernel_info(k)->release);
		goto fail;
	}
	{
		struct { const char *type, *name; struct fld *f; } need_list[] = {
			{ "cgroup_root", "cgrp", &root },
			{ "cgroup", "self", &r->self },
			{ "cgroup", "kn", &r->kn },
			{ "cgroup_subsys_state", "children", &r->css_children },
			{ "cgroup_subsys_state", "sibling", &r->css_sibling },
			{ "cgroup_subsys_state", "parent", &r->css_parent },
			{ "cgroup_subsys_state", "flags", &r->css_flags },
			{ "cgroup_subsys_state", "cgroup", &r->css_cgroup },
			{ "kernfs_node", "name", &r->kn_name },
		};
		for (size_t i = 0; i < ARRAY_SIZE(need_list); i++) {
			rc = member(k, need_list[i].type, need_list[i].name, need_list[i].f);
			if (rc < 0) {
				vmw_error_setk(err, rc == -EBADMSG ? VMW_ERR_INCONSISTENT : VMW_ERR_MISSING_LAYOUT, rc,
					       "kernel %s: BTF has no usable %s.%s, which the cgroup walk needs",
					       vmw_kernel_info(k)->release, need_list[i].type, need_list[i].name);
				goto fail;
			}
		}
	}
	/* pointers are 8 bytes, the flags at most */
	if (r->css_parent.size != 8 || r->css_cgroup.size != 8 || r->kn.size != 8 || r->kn_name.size != 8 ||
	    r->css_flags.size > 8 || r->css_children.size < 16 || r->css_sibling.size < 16) {
		rc = vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG,
				    "kernel %s: BTF gives the cgroup structures sizes no kernel has",
				    vmw_kernel_info(k)->release);
		goto fail;
	}
	if (vmw_kernel_enum_value(k, "CSS_ONLINE", &online) < 0 || online <= 0 || online > (1ll << 31)) {
		rc = vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT, "kernel %s: BTF has no CSS_ONLINE",
				    vmw_kernel_info(k)->release);
		goto fail;
	}
	r->css_online = (uint64_t)online;
	r->root_cgrp = sym + root.off;
	resolve_cpu(r);
	resolve_mem(r);
	if ((rc = check_bad_layout(k, err)) < 0)
		goto fail;
	if (r->nr_cpus && (r->cpu || r->memstat)) {
		r->pcpu = calloc(r->nr_cpus, sizeof(*r->pcpu));
		if (!r->pcpu) {
			rc = vmw_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		for (unsigned c = 0; c < r->nr_cpus; c++)
			if (vmw_kernel_percpu_offset(k, c, &r->pcpu[c]) < 0)
				r->cpu = r->memstat = false;
		if (r->cpu) {
			uint32_t lo = UINT32_MAX, hi = 0;
			for (int i = 0; i < NB; i++) {
				lo = MIN(lo, MIN(r->rc_bstat[i].off, r->rc_last[i].off));
				hi = MAX(hi, MAX(r->rc_bstat[i].off + 8, r->rc_last[i].off + 8));
			}
			r->rc_lo = lo;
			r->rc_len = hi - lo;
			if (r->rc_len > 512)
				r->cpu = false;
		}
		r->iov = calloc((size_t)r->nr_cpus * NM * 2, sizeof(*r->iov));
		r->pcbuf = calloc(r->nr_cpus, MAX(r->rc_len, NM * 2 * 8u));
		if (!r->iov || !r->pcbuf) {
			rc = vmw_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	} else {
		r->cpu = r->memstat = false;
	}
	*ret = r;
	return 0;
fail:
	vmw_cgroups_reader_free(r);
	return rc;
}

void vmw_cgroups_reader_free(struct vmw_cgroup_reader *r)
{
	if (!r)
		return;
	free(r->pcpu);
	free(r->iov);
	free(r->pcbuf);
	free(r);
}

/* The batch in r->iov[0..n): all read, or false. */
static bool rd_batch(struct rd *d, size_t n)
{
	if (vmw_xlat_readv(d->r->kx, d->r->iov, n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		d->bytes += d->r->iov[i].len;
	return true;
}

/* ---- the walks ------------------------------------------------------------- */

/* Walk the children list of the css at `css`: call fn for each child css
 * (list checked link by link, capped, cycle-guarded). False when the list
 * was cut (the caller's figures are then lower bounds). */
typedef bool (*child_fn)(struct rd *d, uint64_t child_css, uint64_t parent_css, unsigned depth,
			 void *acc);

static bool for_children(struct rd *d, uint64_t css, unsigned depth, child_fn fn, void *acc)
{
	struct vmw_cgroup_reader *r = d->r;
	uint64_t head = css + r->css_children.off, prev = head, cur;
	struct vmw_cycle cyc;
	bool ok = true;

	if (!rd64(d, head, &cur)) {
		cut(d, "a cgroup's children list is unreadable", head);
		return false;
	}
	vmw_cycle_init(&cyc, head);
	while (cur != head) {
		uint64_t back;
		if (!kaddr(r, cur) || vmw_cycle_step(&cyc, cur) || d->nodes >= CG_MAX_NODES) {
			cut(d, d->nodes >= CG_MAX_NODES ? "more cgroups than the cap (8192)"
							: "a cgroup children list loops or leaves the kernel", cur);
			return false;
		}
		if (!rd64(d, cur + 8, &back) || back != prev) {
			cut(d, "a cgroup sibling link does not point back", cur);
			return false;
		}
		if (!fn(d, cur - r->css_sibling.off, css, depth + 1, acc))
			ok = false;
		prev = cur;
		if (!rd64(d, cur, &cur)) {
			cut(d, "a cgroup sibling link is unreadable", prev);
			return false;
		}
	}
	return ok;
}

/* Read [lo, hi) of a structure whose fields fs span it. */
static bool read_span(struct rd *d, uint64_t base, const struct fld *fs, size_t n, uint8_t *buf,
		      uint32_t *ret_lo)
{
	uint32_t lo = UINT32_MAX, hi = 0;
	for (size_t i = 0; i < n; i++) {
		if (!fs[i].ok)
			continue;
		lo = MIN(lo, fs[i].off);
		hi = MAX(hi, fs[i].off + fs[i].size);
	}
	if (lo >= hi || hi - lo > MAX_STRUCT_SPAN)
		return false;
	*ret_lo = lo;
	return rd(d, base + lo, buf, hi - lo) >= 0;
}

static uint64_t at(const uint8_t *buf, uint32_t lo, struct fld f)
{
	return f.ok ? get_at(buf + (f.off - lo), f.size) : 0;
}

/* -- memory.stat: the memcg tree -- */

struct memacc {
	uint64_t contrib[NM];        /* sum over children of F(K) - K.state */
};

static bool slot_addr(struct rd *d, uint64_t base, struct fld arr, int i, uint64_t *ret)
{
	uint64_t off = (uint64_t)d->slot[i] * 8;
	if (d->slot[i] < 0 || off + 8 > arr.size)
		return false;
	*ret = base + arr.off + off;
	return true;
}

static bool visit_memcg(struct rd *d, uint64_t css, uint64_t parent_css, unsigned depth, void *acc)
{
	struct vmw_cgroup_reader *r = d->r;
	struct memacc *up = acc, mine = { { 0 } };
	uint64_t memcg = css - r->mem_css.off, vm, pc, parent, state[NM], f[NM];
	bool ok = true;

	d->nodes++;
	if (depth > CG_MAX_DEPTH) {
		cut(d, "memory cgroups nested deeper than 64", css);
		return false;
	}
	if (!rd64(d, css + r->css_parent.off, &parent) || parent != parent_css) {
		cut(d, "a memory cgroup's parent does not match its list", css);
		return false;
	}
	if (r->vmstats_ptr) {
		if (!rd64(d, memcg + r->vmstats.off, &vm) || !kaddr(r, vm)) {
			cut(d, "a memory cgroup's vmstats pointer is bad", css);
			return false;
		}
	} else {
		vm = memcg + r->vmstats.off;
	}
	/* a __percpu pointer: an offset, a kernel address only with a CPU's base added */
	if (!rd64(d, memcg + r->percpu.off, &pc)) {
		cut(d, "a memory cgroup's per-CPU stats pointer is bad", css);
		return false;
	}
	for (int i = 0; i < NM; i++) {
		uint64_t a, pend;
		if (!slot_addr(d, vm, r->vm_state, i, &a) || !rd64(d, a, &state[i]) ||
		    !slot_addr(d, vm, r->vm_pending, i, &a) || !rd64(d, a, &pend)) {
			cut(d, "a memory cgroup's stats are unreadable", css);
			return false;
		}
		f[i] = state[i] + pend;    /* unsigned: wraps like the kernel's longs */
	}
	/* Every CPU's state[] and state_prev[] of both items, in one batch. */
	uint64_t *pv = (uint64_t *)(void *)r->pcbuf;
	size_t k = 0;
	for (unsigned c = 0; c < r->nr_cpus; c++)
		for (int i = 0; i < NM; i++, k += 2) {
			uint64_t base = pc + r->pcpu[c];
			if (!kaddr(r, base) || !slot_addr(d, base, r->pc_state, i, &r->iov[k].addr) ||
			    !slot_addr(d, base, r->pc_prev, i, &r->iov[k + 1].addr)) {
				cut(d, "a memory cgroup's per-CPU stats are unreadable", css);
				return false;
			}
			r->iov[k] = (struct vmw_virt_iov){ r->iov[k].addr, &pv[k], 8, 0 };
			r->iov[k + 1] = (struct vmw_virt_iov){ r->iov[k + 1].addr, &pv[k + 1], 8, 0 };
		}
	if (!rd_batch(d, k)) {
		cut(d, "a memory cgroup's per-CPU stats are unreadable", css);
		return false;
	}
	k = 0;
	for (unsigned c = 0; c < r->nr_cpus; c++)
		for (int i = 0; i < NM; i++, k += 2)
			f[i] += pv[k] - pv[k + 1];
	if (!for_children(d, css, depth, visit_memcg, &mine))
		ok = false;
	/* As memory.stat would show it now: flushed when the threshold is past. */
	bool flush = d->flush_all;
	if (r->vm_updates.ok) {
		uint64_t upd = 0;
		if (rd(d, vm + r->vm_updates.off, &upd, MIN(r->vm_updates.size, 8u)) < 0) {
			cut(d, "a memory cgroup's stats_updates is unreadable", css);
			return false;
		}
		/* atomic_t or atomic64_t: a signed count */
		int64_t u = r->vm_updates.size == 4 ? (int64_t)(int32_t)upd : (int64_t)upd;
		flush = u > (int64_t)MEMCG_CHARGE_BATCH * d->online;
	}
	struct memrow row = { .css = css };
	for (int i = 0; i < NM; i++) {
		f[i] += mine.contrib[i];
		up->contrib[i] += f[i] - state[i];
		int64_t shown = (int64_t)(flush ? f[i] : state[i]);
		row.v[i] = shown < 0 ? 0 : (uint64_t)shown * PAGE_SIZE_BYTES;
	}
	if (ok) {   /* only exact rows are used */
		if (d->nmem == d->memcap) {
			size_t cap = d->memcap ? d->memcap * 2 : 64;
			struct memrow *m = realloc(d->mem, cap * sizeof(*m));
			if (!m)
				return false;
			d->mem = m;
			d->memcap = cap;
		}
		d->mem[d->nmem++] = row;
	}
	return ok;
}

static int cmp_memrow(const void *a, const void *b)
{
	uint64_t x = ((const struct memrow *)a)->css, y = ((const struct memrow *)b)->css;
	return x < y ? -1 : x > y;
}

/* The stats index of each item, and the flush state. */
static bool memstat_setup(struct rd *d)
{
	struct vmw_cgroup_reader *r = d->r;
	uint32_t online = 0;

	if (vmw_xlat_read(r->kx, r->a_online, &online, 4) < 0 || !online || online > r->nr_cpus)
		return false;
	d->online = online;
	if (r->a_threshold) {
		int32_t thr;
		if (vmw_xlat_read(r->kx, r->a_threshold, &thr, 4) < 0)
			return false;
		d->flush_all = thr > (int32_t)online;
	}
	for (int i = 0; i < NM; i++)
		d->slot[i] = r->item[i];
	if (r->a_index) {
		uint8_t idx[MAX_STAT_INDEX];
		bool any_ff = false;
		if (vmw_xlat_read(r->kx, r->a_index, idx, r->nr_index) < 0)
			return false;
		for (uint32_t i = 0; i < r->nr_index; i++)
			any_ff |= idx[i] == 0xff;
		for (int i = 0; i < NM; i++) {
			if (r->item[i] < 0 || r->item[i] >= (int64_t)r->nr_index)
				return false;
			uint8_t v = idx[r->item[i]];
			/* u8 with 0xff for "none", or int8_t one-based with 0 for "none" */
			d->slot[i] = any_ff ? (v == 0xff ? -1 : v) : (int64_t)v - 1;
			if (d->slot[i] < 0)
				return false;
		}
	}
	return true;
}

/* -- the cgroup tree (paths, cpu.stat, memory.current) -- */

struct baseacc {
	uint64_t contrib[NB];        /* sum over children of F(K) - K.last_bstat */
	bool cut;
};

static const struct memrow *find_mem(const struct rd *d, uint64_t css)
{
	struct memrow key = { .css = css };
	return d->nmem ? bsearch(&key, d->mem, d->nmem, sizeof(key), cmp_memrow) : NULL;
}

static bool add_row(struct rd *d, size_t *ret)
{
	if (d->out->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct vmw_cgroup_stat *c = realloc(d->out->cg, cap * sizeof(*c));
		if (!c)
			return false;
		d->out->cg = c;
		d->cap = cap;
	}
	*ret = d->out->n++;
	memset(&d->out->cg[*ret], 0, sizeof(d->out->cg[*ret]));
	return true;
}

static bool visit_cgroup(struct rd *d, uint64_t css, uint64_t parent_css, unsigned depth, void *acc)
{
	struct vmw_cgroup_reader *r = d->r;
	struct baseacc *up = acc, mine = { { 0 }, false };
	uint64_t cgrp = css - r->self.off, f[NB] = { 0 };
	const struct fld span[] = { r->css_parent, r->css_flags, r->css_cgroup, r->kn, r->bstat[0], r->bstat[1],
		r->bstat[2], r->last_bstat[0], r->last_bstat[1], r->last_bstat[2], r->prev_ut, r->prev_st,
		r->rstat_cpu, r->subsys };
	struct fld sp[ARRAY_SIZE(span)];
	uint8_t *buf = NULL;
	uint32_t lo;
	size_t plen = strlen(d->path), row = SIZE_MAX;
	bool ok = true, online;

	d->nodes++;
	if (depth > CG_MAX_DEPTH) {
		cut(d, "cgroups nested deeper than 64", css);
		return false;
	}
	/* the css members are relative to the css, the others to the cgroup */
	for (size_t i = 0; i < ARRAY_SIZE(span); i++) {
		sp[i] = span[i];
		if (i < 3)
			sp[i].off += r->self.off;
	}
	if (!(buf = malloc(MAX_STRUCT_SPAN)) || !read_span(d, cgrp, sp, ARRAY_SIZE(sp), buf, &lo)) {
		free(buf);
		cut(d, "a cgroup is unreadable", cgrp);
		return false;
	}
	if (at(buf, lo, sp[0]) != parent_css || at(buf, lo, sp[2]) != cgrp) {
		free(buf);
		cut(d, "a cgroup's parent or self pointer does not match its list", cgrp);
		return false;
	}
	online = !parent_css || (at(buf, lo, sp[1]) & r->css_online);
	/* Its name (the root's is not shown). */
	if (parent_css) {
		uint64_t kn = at(buf, lo, r->kn), name;
		char part[CG_NAME_MAX];
		size_t got = 0;
		if (!kaddr(r, kn) || !rd64(d, kn + r->kn_name.off, &name) || !kaddr(r, name)) {
			free(buf);
			cut(d, "a cgroup's kernfs node is unreadable", cgrp);
			return false;
		}
		while (got + 1 < sizeof(part)) {   /* up to the page end, then on */
			size_t chunk = MIN(sizeof(part) - 1 - got, 4096 - ((name + got) & 4095));
			if (rd(d, name + got, part + got, chunk) < 0)
				break;
			got += chunk;
			if (memchr(part, 0, got))
				break;
		}
		part[got] = '\0';
		if (!part[0] || strchr(part, '/') || !strcmp(part, ".") || !strcmp(part, "..") ||
		    strlen(part) + 1 >= sizeof(d->path) - plen) {
			free(buf);
			cut(d, "a cgroup's name is empty, too long or not a name", cgrp);
			return false;
		}
		d->path[plen] = '/';
		strcpy(d->path + plen + 1, part);
	}
	if (online) {
		if (!add_row(d, &row)) {
			free(buf);
			d->path[plen] = '\0';
			cut(d, "out of memory", cgrp);
			return false;
		}
		struct vmw_cgroup_stat *c = &d->out->cg[row];
		c->path = strdup(parent_css ? d->path : "/");
		c->depth = depth;
		if (!c->path) {
			d->out->n--;
			row = SIZE_MAX;
		}
	}
	/* Own per-CPU deltas not yet taken. */
	bool cpu_ok = r->cpu;
	if (cpu_ok) {
		uint64_t rc = at(buf, lo, r->rstat_cpu);
		for (int i = 0; i < NB; i++)
			f[i] = at(buf, lo, r->bstat[i]);
		/* Every CPU's bstat and last_bstat, in one batch. */
		for (unsigned c = 0; c < r->nr_cpus && cpu_ok; c++) {
			r->iov[c] = (struct vmw_virt_iov){ rc + r->pcpu[c] + r->rc_lo, r->pcbuf + (size_t)c * r->rc_len,
							   r->rc_len, 0 };
			cpu_ok = kaddr(r, r->iov[c].addr);
		}
		cpu_ok = cpu_ok && rd_batch(d, r->nr_cpus);
		for (unsigned c = 0; c < r->nr_cpus && cpu_ok; c++) {
			const uint8_t *pb = r->pcbuf + (size_t)c * r->rc_len;
			for (int i = 0; i < NB; i++)
				f[i] += at(pb, r->rc_lo, r->rc_bstat[i]) - at(pb, r->rc_lo, r->rc_last[i]);
		}
	}
	uint64_t memcss = r->mem ? get_at(buf + (r->subsys.off - lo) + (uint32_t)r->mem_id * 8, 8) : 0;
	uint64_t last[NB], prev_ut = at(buf, lo, r->prev_ut), prev_st = at(buf, lo, r->prev_st);
	for (int i = 0; i < NB; i++)
		last[i] = at(buf, lo, r->last_bstat[i]);
	free(buf);

	if (!for_children(d, css, depth, visit_cgroup, &mine))
		ok = false;
	if (mine.cut)
		ok = false;
	d->path[plen] = '\0';
	for (int i = 0; i < NB; i++) {
		f[i] += mine.contrib[i];
		up->contrib[i] += f[i] - last[i];
	}
	/* (a kernel without the rstat layouts has no CPU figures at all: not a cut) */
	if (!ok || (r->cpu && !cpu_ok))
		up->cut = true;
	if (row == SIZE_MAX)
		return ok;
	struct vmw_cgroup_stat *c = &d->out->cg[row];
	c->incomplete = !ok;
	if (cpu_ok && parent_css) {
		uint64_t ut, st;
		vmw_linux_cputime_adjust(f[U_SUM], f[U_UT], f[U_ST], prev_ut, prev_st, &ut, &st);
		c->cpu_ok = true;
		c->usage_usec = f[U_SUM] / NSEC_PER_USEC;
		c->user_usec = ut / NSEC_PER_USEC;
		c->system_usec = st / NSEC_PER_USEC;
	}
	if (kaddr(r, memcss)) {
		int64_t pages;
		uint64_t memcg = memcss - r->mem_css.off;
		if (parent_css && rd(d, memcg + r->mem_usage.off, &pages, 8) >= 0 && pages >= 0 &&
		    (uint64_t)pages <= (1ull << 40)) {
			c->memory_ok = true;
			c->memory_current = (uint64_t)pages * PAGE_SIZE_BYTES;
		}
		const struct memrow *m = find_mem(d, memcss);
		if (m) {
			c->memory_stat_ok = true;
			c->anon = m->v[M_ANON];
			c->file = m->v[M_FILE];
		}
	}
	return ok;
}

int vmw_cgroups_read(struct vmw_cgroup_reader *r, struct vmw_cgroups *ret, struct vmw_error *err)
{
	struct rd d = { .r = r, .out = ret };
	uint64_t t0 = vmw_now_ns(), root_css = r->root_cgrp + r->self.off;

	memset(ret, 0, sizeof(*ret));
	/* memory.stat first: the cgroup walk looks its memcgs up. */
	if (r->memstat && memstat_setup(&d)) {
		uint64_t memcss;
		struct memacc top = { { 0 } };
		if (rd64(&d, r->root_cgrp + r->subsys.off + (uint64_t)r->mem_id * 8, &memcss) && kaddr(r, memcss))
			visit_memcg(&d, memcss, 0, 0, &top);
		if (d.nmem)
			qsort(d.mem, d.nmem, sizeof(*d.mem), cmp_memrow);
	}
	struct baseacc top = { { 0 }, false };
	d.path[0] = '\0';
	visit_cgroup(&d, root_css, 0, 0, &top);
	free(d.mem);
	ret->bytes_read = d.bytes;
	ret->read_ns = vmw_now_ns() - t0;
	if (!ret->n) {
		char why[160];
		snprintf(why, sizeof(why), "%s", ret->truncated_why);
		vmw_cgroups_free(ret);
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EFAULT,
				      "kernel %s: the root cgroup is unreadable: %s", vmw_kernel_info(r->k)->release,
				      why[0] ? why : "no cgroups");
	}
	return 0;
}

void vmw_cgroups_free(struct vmw_cgroups *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->cg[i].path);
	free(c->cg);
	memset(c, 0, sizeof(*c));
}

static int cmp_path_idx(const void *a, const void *b, void *ctx)
{
	const struct vmw_cgroup_stat *cg = ctx;
	return strcmp(cg[*(const size_t *)a].path, cg[*(const size_t *)b].path);
}

/* The row whose path is p (n chars of it), or SIZE_MAX. */
static size_t find_path(const struct vmw_cgroups *c, const size_t *idx, const char *p, size_t n)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *q = c->cg[idx[mid]].path;
		int s = strncmp(q, p, n);
		if (!s && q[n])
			s = 1;
		if (!s)
			return idx[mid];
		if (s < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

void vmw_cgroups_count_procs(struct vmw_cgroups *c, const struct vmw_walk *w)
{
	size_t *idx = c->n ? calloc(c->n, sizeof(*idx)) : NULL;

	if (!idx)
		return;
	for (size_t i = 0; i < c->n; i++) {
		idx[i] = i;
		c->cg[i].nr_procs = c->cg[i].nr_procs_tree = 0;
		c->cg[i].nr_procs_ok = true;
	}
	qsort_r(idx, c->n, sizeof(*idx), cmp_path_idx, c->cg);
	for (size_t i = 0; i < w->nprocs; i++) {
		const char *p = w->procs[i].cgroup;
		size_t j = p ? find_path(c, idx, p, strlen(p)) : SIZE_MAX;
		if (j != SIZE_MAX)
			c->cg[j].nr_procs++;
	}
	/* Children come after their parents: add each subtree into its parent. */
	for (size_t i = c->n; i-- > 0;) {
		struct vmw_cgroup_stat *x = &c->cg[i];
		x->nr_procs_tree += x->nr_procs;
		if (!x->depth)
			continue;
		const char *slash = strrchr(x->path, '/');
		size_t j = slash == x->path ? find_path(c, idx, "/", 1) : find_path(c, idx, x->path, (size_t)(slash - x->path));
		if (j != SIZE_MAX)
			c->cg[j].nr_procs_tree += x->nr_procs_tree;
	}
	free(idx);
}

int vmw_cgroups_cpu_percent(const struct vmw_cgroups *prev, const struct vmw_cgroups *cur,
				   uint64_t interval_ns, double *ret)
{
	size_t *idx = prev->n ? calloc(prev->n, sizeof(*idx)) : NULL;

	for (size_t i = 0; i < cur->n; i++)
		ret[i] = NAN;
	if (prev->n && !idx)
		return -ENOMEM;
	if (!interval_ns || !prev->n)
		goto out;
	for (size_t i = 0; i < prev->n; i++)
		idx[i] = i;
	qsort_r(idx, prev->n, sizeof(*idx), cmp_path_idx, prev->cg);
	for (size_t i = 0; i < cur->n; i++) {
		const struct vmw_cgroup_stat *c = &cur->cg[i];
		size_t lo = 0, hi = prev->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const struct vmw_cgroup_stat *p = &prev->cg[idx[mid]];
			int s = strcmp(p->path, c->path);
			if (!s) {
				/* a cgroup removed and made again starts from 0: no rate */
				if (c->cpu_ok && p->cpu_ok && c->usage_usec >= p->usage_usec)
					ret[i] = (double)(c->usage_usec - p->usage_usec) * 1000.0 * 100.0 /
						 (double)interval_ns;
				break;
			}
			if (s < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
out:
	free(idx);
	return 0;
}

int vmw_cgroups_copy(const struct vmw_cgroups *src, struct vmw_cgroups *dst)
{
	*dst = *src;
	dst->cg = NULL;
	dst->n = 0;
	if (!src->n)
		return 0;
	if (!(dst->cg = calloc(src->n, sizeof(*dst->cg))))
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++, dst->n++) {
		dst->cg[i] = src->cg[i];
		if (!(dst->cg[i].path = strdup(src->cg[i].path))) {
			vmw_cgroups_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}
