/* SPDX-License-Identifier: MIT */
/*
 * summary.c - the guest's whole-system numbers, computed from the kernel
 * variables its /proc files print, the way those files compute them:
 *
 *   /proc/uptime   fs/proc/uptime.c: ktime_get_boottime_ts64(), and the sum
 *                  of get_idle_time() over possible CPUs
 *   /proc/loadavg  fs/proc/loadavg.c: get_avenrun(…, FIXED_1/200, 0),
 *                  nr_running(), nr_threads, idr_get_cursor(pid idr) - 1
 *   /proc/meminfo  fs/proc/meminfo.c: si_meminfo(), si_swapinfo(),
 *                  si_mem_available() (mm/page_alloc.c, mm/show_mem.c),
 *                  nr_blockdev_pages() (block/bdev.c)
 *   /proc/stat     fs/proc/stat.c: kcpustat_cpu_fetch(), get_idle_time() /
 *                  get_iowait_time() (tick-sched when NO_HZ is active),
 *                  nr_context_switches(), total_forks, nr_running(),
 *                  nr_iowait(), getboottime64()
 *
 * Symbols come from kallsyms, layouts and enum indexes from BTF. Nearly
 * everything lives at fixed kernel addresses (globals and per-CPU areas), so
 * one batched read (vmw_xlat_readv) per summary fetches it, plus a small
 * re-read of the seqcounts: the list of pieces is built in vmw_summary_new
 * (again only when NUMA nodes come or go). Only the block-device inode list
 * (Buffers:) is a walk, capped, cycle-guarded and checked link by link. With a
 * QEMU process read through process_vm_readv that is 3 system calls.
 *
 * The guest is never paused: the timekeeper and (when the kernel has one) each
 * tick_sched's idle_sleeptime_seq are seqcounts; a read that saw one odd or
 * changed is repeated a bounded number of times.
 */
#include "linux/linux_internal.h"

#include <bpf/btf.h>

#define NSEC_PER_SEC      1000000000ull
#define NSEC_PER_USEC     1000ull
#define FSHIFT            11                  /* include/linux/sched/loadavg.h */
#define FIXED_1           (1ul << FSHIFT)
#define LOAD_INT(x)       ((x) >> FSHIFT)
#define LOAD_FRAC(x)      LOAD_INT(((x) & (FIXED_1 - 1)) * 100)
/* kernel/time/tick-sched.h, since tick_sched.flags replaced its bitfields
 * (Linux 6.9): a #define, so not in BTF. Older kernels have the bitfield
 * tick_sched.idle_active, found in BTF. */
#define TS_FLAG_IDLE_ACTIVE_BIT 2

#define MAX_STAT_ITEMS    512                 /* cap on NR_VM_*_STAT_ITEMS */
#define MAX_STRUCT        8192                /* cap on a structure read whole */
#define MAX_NODES         1024
#define MAX_SWAPFILES     64
#define MAX_BDEV_INODES   (1u << 16)          /* cap on the blockdev inode walk */
#define MAX_RETRIES       3                   /* re-reads of torn records */
#define MAX_AHEAD_NS      (600ull * NSEC_PER_SEC) /* a CPU time stamp this far past the
						     timekeeper is garbage */

/* A piece of the read buffer. */
struct slot {
	uint32_t off, len;
};

struct vmw_summary_reader {
	struct vmw_kernel *k;
	struct vmw_xlat *kx;
	uint64_t kernel_space;
	unsigned page_shift;
	unsigned nr_cpus;              /* nr_cpu_ids: per-CPU areas read */
	uint64_t *pcpu;                /* __per_cpu_offset[0..nr_cpus) */

	/* Addresses of globals (0: not in this kernel). */
	uint64_t a_avenrun, a_totalram, a_totalreserve, a_nr_swap, a_total_swap, a_zone_stat,
		a_node_stat, a_nr_threads, a_total_forks, a_idr_next, a_nr_swapfiles, a_swap_info,
		a_nohz_active, a_tk_core, a_online, a_possible, a_node_states, a_node_data,
		a_contig_pgdat;
	uint64_t blockdev_sb;          /* the pointer's value (__ro_after_init) */
	/* Per-CPU symbols (offsets inside a per-CPU area). */
	uint64_t pc_kcs, pc_ts, pc_rq, pc_ct;
	bool have_ts, have_ct;

	/* Layouts. */
	uint32_t kcs_size, kcs_cpustat; /* struct kernel_cpustat, offset of cpustat[] */
	int cputime[10];               /* CPUTIME_USER … CPUTIME_GUEST_NICE */
	uint32_t zone_items, node_items;
	int i_free, i_file, i_afile, i_ifile, i_slab_r, i_misc_r, i_swapcache, i_shmem;
	uint32_t tk_size, tk_seq;      /* tk_core: whole size, offset of seq.sequence */
	struct fld mono_base, mono_xnsec, mono_shift, offs_real, offs_boot, xtime_interval;
	uint32_t ts_size;
	struct fld ts_sleep, ts_iowait, ts_entry, ts_exit, ts_wake, ts_seq;
	uint32_t ts_active_bit;        /* bit offset of "idle active" in tick_sched */
	struct fld rq_running, rq_switches, rq_iowait, ct_active;
	uint32_t mask_bytes;           /* bytes of a cpumask read (nr_cpus bits) */
	uint32_t nodemask_size, node_zones_off, zone_size, nr_zones, wmark_low_off, boost_off;
	struct fld sb_inodes, i_sb_list, i_mapping, i_data, as_nrpages, si_flags, si_inuse;
	uint64_t swp_used, swp_writeok;

	/* The batch: every piece at a fixed address, read together. */
	struct vmw_virt_iov *iov;
	const char **what;             /* per piece, for messages */
	bool *optional;                /* per piece: a failure only loses that value */
	size_t niov, iov_cap;
	uint8_t *buf;
	size_t buflen, buf_cap;
	struct slot s_avenrun, s_totalram, s_totalreserve, s_nr_swap, s_total_swap, s_zone_stat,
		s_node_stat, s_nr_threads, s_total_forks, s_idr_next, s_nr_swapfiles, s_nohz,
		s_tk, s_online, s_possible, s_nodes, s_bdev_head;
	struct slot *s_kcs, *s_ts, *s_rq_running, *s_rq_switches, *s_rq_iowait, *s_ct;
	struct slot *s_wmark, *s_boost;   /* per cached node × zone */

	/* Online nodes as last seen, and their pglist_data. */
	uint8_t nodemask[MAX_NODES / 8];
	unsigned nnodes;
	uint64_t *pgdat;

	struct vmw_cpu_stat *cpus;     /* result rows, nr_cpus entries */
};

/* ---- pure helpers -------------------------------------------------------- */

uint64_t vmw_summary_clock_t(uint64_t ns)
{
	/* nsec_to_clock_t() with USER_HZ = 100: NSEC_PER_SEC % USER_HZ == 0. */
	return ns / (NSEC_PER_SEC / 100);
}

int vmw_summary_format_loadavg(const unsigned long load[3], char *buf, size_t size)
{
	unsigned long a[3];

	for (int i = 0; i < 3; i++)
		a[i] = load[i] + FIXED_1 / 200;   /* get_avenrun(avnrun, FIXED_1/200, 0) */
	return snprintf(buf, size, "%lu.%02lu %lu.%02lu %lu.%02lu",
			LOAD_INT(a[0]), LOAD_FRAC(a[0]), LOAD_INT(a[1]), LOAD_FRAC(a[1]),
			LOAD_INT(a[2]), LOAD_FRAC(a[2]));
}

int vmw_summary_format_uptime(uint64_t uptime_ns, uint64_t idle_ns, char *buf, size_t size)
{
	return snprintf(buf, size, "%llu.%02llu %llu.%02llu",
			(unsigned long long)(uptime_ns / NSEC_PER_SEC),
			(unsigned long long)(uptime_ns % NSEC_PER_SEC / (NSEC_PER_SEC / 100)),
			(unsigned long long)(idle_ns / NSEC_PER_SEC),
			(unsigned long long)(idle_ns % NSEC_PER_SEC / (NSEC_PER_SEC / 100)));
}

/* Signed arithmetic wraps, as in the kernel (built with -fno-strict-overflow):
 * garbage counters and time stamps give garbage, never undefined behaviour. */
static int64_t kadd(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a + (uint64_t)b);
}

static int64_t ksub(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a - (uint64_t)b);
}

uint64_t vmw_summary_mem_available(const struct vmw_mem_available_in *in)
{
	/* si_mem_available(): long arithmetic, the unsigned parts wrap like the kernel's. */
	int64_t available = (int64_t)(in->free - in->totalreserve);
	uint64_t pagecache = in->active_file + in->inactive_file;
	uint64_t reclaimable = in->slab_reclaimable + in->misc_reclaimable;

	pagecache -= MIN(pagecache / 2, in->wmark_low);
	available = kadd(available, (int64_t)pagecache);
	reclaimable -= MIN(reclaimable / 2, in->wmark_low);
	available = kadd(available, (int64_t)reclaimable);
	return available < 0 ? 0 : (uint64_t)available;
}

uint64_t vmw_summary_sleep_time(bool nohz, bool online, bool idle_active, bool count_delta,
				int64_t sleeptime, int64_t entrytime, int64_t now,
				uint64_t kcpustat)
{
	int64_t t = sleeptime;

	/* get_cpu_{idle,iowait}_time_us() returns -1 without NO_HZ; offline CPUs
	 * are not asked: both fall back to kcpustat. */
	if (!nohz || !online)
		return kcpustat;
	if (idle_active && count_delta && now > entrytime)
		t = kadd(t, ksub(now, entrytime));
	if (t < 0)
		t = 0;
	return (uint64_t)(t / (int64_t)NSEC_PER_USEC) * NSEC_PER_USEC;  /* ktime_to_us() * NSEC_PER_USEC */
}

/* ---- reading values out of the buffer ----------------------------------- */

static int64_t sget_at(const uint8_t *p, uint32_t size)
{
	uint64_t v = get_at(p, size);
	switch (size) {
	case 1: return (int8_t)v;
	case 2: return (int16_t)v;
	case 4: return (int32_t)v;
	default: return (int64_t)v;
	}
}

static const uint8_t *at(const struct vmw_summary_reader *s, struct slot sl)
{
	return s->buf + sl.off;
}

static uint64_t slot_u64(const struct vmw_summary_reader *s, struct slot sl)
{
	return sl.len ? get_at(at(s, sl), MIN(sl.len, 8u)) : 0;
}

static int64_t fsget(const uint8_t *base, struct fld f)
{
	return f.ok ? sget_at(base + f.off, f.size) : 0;
}

/* global_{zone,node}_page_state(): atomic_long_t, clamped at 0 on SMP. */
static uint64_t stat_item(const struct vmw_summary_reader *s, struct slot sl, int idx)
{
	int64_t v;
	if (idx < 0 || (uint32_t)(idx + 1) * 8 > sl.len)
		return 0;
	memcpy(&v, at(s, sl) + (uint32_t)idx * 8, 8);
	return v < 0 ? 0 : (uint64_t)v;
}

static bool mask_test(const uint8_t *mask, uint32_t bytes, unsigned bit)
{
	return bit / 8 < bytes && (mask[bit / 8] >> (bit % 8)) & 1;
}

/* ---- layouts from BTF, symbols from kallsyms ------------------------------ */

static const char *release(const struct vmw_summary_reader *s)
{
	return vmw_kernel_info(s->k)->release;
}

static int sym(struct vmw_summary_reader *s, const char *name, uint64_t *ret, bool percpu)
{
	struct vmw_kernel_sym ks;
	*ret = 0;
	if (vmw_kernel_lookup(s->k, name, &ks) < 0 || ks.percpu != percpu)
		return -ENOENT;
	*ret = ks.addr;
	return 0;
}

#define NEED_SYM(name, ret, percpu) do { \
	if (sym(s, name, ret, percpu) < 0) \
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT, \
			"kernel %s: no %s%s in kallsyms, which the guest summary needs", \
			release(s), percpu ? "per-CPU " : "", name); \
} while (0)

static int enum_idx(struct vmw_summary_reader *s, const char *name, int *ret, struct vmw_error *err,
		    bool need)
{
	int64_t v;
	*ret = -1;
	if (vmw_kernel_enum_value(s->k, name, &v) < 0 || v < 0 || v >= MAX_STAT_ITEMS) {
		if (need)
			return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT, "kernel %s: BTF has no enumerator %s, which the "
					     "guest summary needs", release(s), name);
		return 0;
	}
	*ret = (int)v;
	return 0;
}

/* tk_core is `static struct { seqcount_raw_spinlock_t seq; struct timekeeper
 * timekeeper; ... } tk_core`: an anonymous struct, found in BTF by its
 * members (vmw_btf_tk_core, which keeps both inside the struct; memoized by
 * vmw_kernel_tk_core, so that a warm cache answers without parsing BTF). */
static int find_tk_core(struct vmw_summary_reader *s, uint32_t *ret_size, uint32_t *ret_tk,
			uint32_t *ret_seq, struct vmw_error *err)
{
	int r = vmw_kernel_tk_core(s->k, ret_size, ret_tk, ret_seq);

	if (r == -ENOTSUP)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOTSUP, "kernel %s: BTF has several candidate "
				      "types for tk_core", release(s));
	if (r < 0)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT, "kernel %s: BTF has no type for tk_core "
				     "({seq; struct timekeeper timekeeper;})", release(s));
	return 0;
}

static void resolve_page_shift(struct vmw_summary_reader *s)
{
	const char *vps = vmw_kernel_vmcoreinfo(s->k, "PAGESIZE");

	s->page_shift = 12;
	if (vps) {
		unsigned long ps = strtoul(vps, NULL, 10);
		if (ps >= 4096 && ps <= (1ul << 20) && !(ps & (ps - 1)))
			s->page_shift = (unsigned)__builtin_ctzl(ps);
	}
}

/* Global and per-CPU variables in kallsyms. */
static int resolve_symbols(struct vmw_summary_reader *s, struct vmw_error *err)
{
	NEED_SYM("avenrun", &s->a_avenrun, false);
	NEED_SYM("_totalram_pages", &s->a_totalram, false);
	NEED_SYM("totalreserve_pages", &s->a_totalreserve, false);
	NEED_SYM("vm_zone_stat", &s->a_zone_stat, false);
	NEED_SYM("vm_node_stat", &s->a_node_stat, false);
	NEED_SYM("nr_threads", &s->a_nr_threads, false);
	NEED_SYM("total_forks", &s->a_total_forks, false);
	NEED_SYM("tk_core", &s->a_tk_core, false);
	NEED_SYM("__cpu_online_mask", &s->a_online, false);
	NEED_SYM("__cpu_possible_mask", &s->a_possible, false);
	NEED_SYM("kernel_cpustat", &s->pc_kcs, true);
	NEED_SYM("runqueues", &s->pc_rq, true);
	/* Optional: kernels without swap, NO_HZ, block layer or context tracking. */
	sym(s, "nr_swap_pages", &s->a_nr_swap, false);
	sym(s, "total_swap_pages", &s->a_total_swap, false);
	sym(s, "nr_swapfiles", &s->a_nr_swapfiles, false);
	sym(s, "swap_info", &s->a_swap_info, false);
	sym(s, "tick_nohz_active", &s->a_nohz_active, false);
	sym(s, "context_tracking", &s->pc_ct, true);
	s->have_ts = sym(s, "tick_cpu_sched", &s->pc_ts, true) == 0;
	if (sym(s, "init_pid_ns", &s->a_idr_next, false) == 0) {
		struct fld idr, next;
		NEED(s->k, "pid_namespace", "idr", &idr);
		NEED(s->k, "idr", "idr_next", &next);
		s->a_idr_next += idr.off + next.off;
	}
	return 0;
}

/* kernel_cpustat.cpustat[] indexed by enum cpu_usage_stat. */
static int resolve_cpustat(struct vmw_summary_reader *s, struct vmw_error *err)
{
	static const char *const cputime_names[10] = {
		"CPUTIME_USER", "CPUTIME_NICE", "CPUTIME_SYSTEM", "CPUTIME_IDLE", "CPUTIME_IOWAIT",
		"CPUTIME_IRQ", "CPUTIME_SOFTIRQ", "CPUTIME_STEAL", "CPUTIME_GUEST", "CPUTIME_GUEST_NICE",
	};
	struct fld f;
	int r;

	if ((r = vmw_kernel_type_size(s->k, "kernel_cpustat", &s->kcs_size)) < 0 || !s->kcs_size ||
	    s->kcs_size > MAX_STRUCT)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel %s: BTF has no struct kernel_cpustat", release(s));
	NEED(s->k, "kernel_cpustat", "cpustat", &f);
	s->kcs_cpustat = f.off;
	for (int i = 0; i < 10; i++) {
		if ((r = enum_idx(s, cputime_names[i], &s->cputime[i], err, true)) < 0)
			return r;
		if (s->kcs_cpustat + (uint32_t)(s->cputime[i] + 1) * 8 > s->kcs_size)
			return vmw_error_set(err, -ENOTSUP, "kernel %s: %s beyond kernel_cpustat",
					     release(s), cputime_names[i]);
	}
	return 0;
}

/* vm_zone_stat[NR_VM_ZONE_STAT_ITEMS], vm_node_stat[NR_VM_NODE_STAT_ITEMS]. */
static int resolve_vmstat(struct vmw_summary_reader *s, struct vmw_error *err)
{
	int idx, r;

	if ((r = enum_idx(s, "NR_VM_ZONE_STAT_ITEMS", &idx, err, true)) < 0)
		return r;
	s->zone_items = (uint32_t)idx;
	if ((r = enum_idx(s, "NR_VM_NODE_STAT_ITEMS", &idx, err, true)) < 0)
		return r;
	s->node_items = (uint32_t)idx;
	if ((r = enum_idx(s, "NR_FREE_PAGES", &s->i_free, err, true)) < 0 ||
	    (r = enum_idx(s, "NR_FILE_PAGES", &s->i_file, err, true)) < 0 ||
	    (r = enum_idx(s, "NR_ACTIVE_FILE", &s->i_afile, err, true)) < 0 ||
	    (r = enum_idx(s, "NR_INACTIVE_FILE", &s->i_ifile, err, true)) < 0 ||
	    (r = enum_idx(s, "NR_SHMEM", &s->i_shmem, err, true)) < 0)
		return r;
	/* NR_SLAB_RECLAIMABLE_B since 5.9 (before: NR_SLAB_RECLAIMABLE). */
	enum_idx(s, "NR_SLAB_RECLAIMABLE_B", &s->i_slab_r, err, false);
	if (s->i_slab_r < 0 && (r = enum_idx(s, "NR_SLAB_RECLAIMABLE", &s->i_slab_r, err, true)) < 0)
		return r;
	enum_idx(s, "NR_KERNEL_MISC_RECLAIMABLE", &s->i_misc_r, err, false);
	enum_idx(s, "NR_SWAPCACHE", &s->i_swapcache, err, false);
	if ((uint32_t)s->i_free >= s->zone_items || (uint32_t)s->i_file >= s->node_items ||
	    (uint32_t)s->i_afile >= s->node_items || (uint32_t)s->i_ifile >= s->node_items)
		return vmw_error_set(err, -ENOTSUP, "kernel %s: vmstat enums out of range", release(s));
	return 0;
}

static int resolve_timekeeper(struct vmw_summary_reader *s, struct vmw_error *err)
{
	uint32_t tk_off = 0, seq_in, sz;
	int r;

	if ((r = find_tk_core(s, &s->tk_size, &tk_off, &s->tk_seq, err)) < 0)
		return r;
	if (s->tk_size > MAX_STRUCT)
		return vmw_error_set(err, -ENOTSUP, "kernel %s: tk_core is %u bytes", release(s), s->tk_size);
	if (vmw_kernel_member(s->k, "seqcount_raw_spinlock", "seqcount.sequence", &seq_in, &sz) == 0)
		s->tk_seq += seq_in;
	NEED(s->k, "timekeeper", "tkr_mono.base", &s->mono_base);
	NEED(s->k, "timekeeper", "tkr_mono.xtime_nsec", &s->mono_xnsec);
	NEED(s->k, "timekeeper", "tkr_mono.shift", &s->mono_shift);
	NEED(s->k, "timekeeper", "offs_real", &s->offs_real);
	NEED(s->k, "timekeeper", "offs_boot", &s->offs_boot);
	member(s->k, "timekeeper", "xtime_interval", &s->xtime_interval);
	struct fld *tf[] = { &s->mono_base, &s->mono_xnsec, &s->mono_shift, &s->offs_real,
			     &s->offs_boot, &s->xtime_interval };
	for (size_t i = 0; i < ARRAY_SIZE(tf); i++) {
		tf[i]->off += tk_off;
		/* tk_core is read whole (tk_size bytes) and these are read from it */
		if (tf[i]->ok && (uint64_t)tf[i]->off + tf[i]->size > s->tk_size)
			return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOTSUP,
					      "kernel %s: timekeeper outside tk_core", release(s));
	}
	if ((uint64_t)s->tk_seq + 4 > s->tk_size)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOTSUP,
				      "kernel %s: tk_core.seq outside tk_core", release(s));
	return 0;
}

/* tick_sched: idle/iowait sleep times for NO_HZ. */
static int resolve_tick_sched(struct vmw_summary_reader *s, struct vmw_error *err)
{
	uint32_t bo, bs;
	struct fld f;
	int r;

	if (!s->have_ts)
		return 0;
	if ((r = vmw_kernel_type_size(s->k, "tick_sched", &s->ts_size)) < 0 || !s->ts_size ||
	    s->ts_size > MAX_STRUCT)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel %s: BTF has no struct tick_sched", release(s));
	NEED(s->k, "tick_sched", "idle_sleeptime", &s->ts_sleep);
	NEED(s->k, "tick_sched", "iowait_sleeptime", &s->ts_iowait);
	NEED(s->k, "tick_sched", "idle_entrytime", &s->ts_entry);
	member(s->k, "tick_sched", "idle_exittime", &s->ts_exit);
	member(s->k, "tick_sched", "idle_waketime", &s->ts_wake);
	member(s->k, "tick_sched", "idle_sleeptime_seq.sequence", &s->ts_seq);
	if (vmw_kernel_member_bits(s->k, "tick_sched", "idle_active", &bo, &bs) == 0 && bs == 1) {
		s->ts_active_bit = bo;
	} else if (member(s->k, "tick_sched", "flags", &f) == 0) {
		s->ts_active_bit = f.off * 8 + TS_FLAG_IDLE_ACTIVE_BIT;
	} else {
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel %s: BTF has neither tick_sched.idle_active "
				      "nor tick_sched.flags", release(s));
	}
	if (s->ts_active_bit / 8 >= s->ts_size)
		return vmw_error_set(err, -ENOTSUP, "kernel %s: tick_sched too small", release(s));
	return 0;
}

/* struct rq: nr_running(), nr_context_switches(), nr_iowait(). */
static int resolve_runqueues(struct vmw_summary_reader *s, struct vmw_error *err)
{
	NEED(s->k, "rq", "nr_running", &s->rq_running);
	NEED(s->k, "rq", "nr_switches", &s->rq_switches);
	NEED(s->k, "rq", "nr_iowait", &s->rq_iowait);
	if (s->pc_ct && member(s->k, "context_tracking", "active", &s->ct_active) == 0)
		s->have_ct = true;
	return 0;
}

/* Zones' low watermarks for si_mem_available(), and where the nodes are. */
static int resolve_zones(struct vmw_summary_reader *s, struct vmw_error *err)
{
	struct fld zones, wm, boost;
	int64_t wmark_low, nr_wmark, max_zones;

	NEED(s->k, "zone", "watermark_boost", &boost);
	if (vmw_kernel_member(s->k, "pglist_data", "node_zones", &zones.off, &zones.size) < 0 ||
	    vmw_kernel_member(s->k, "zone", "_watermark", &wm.off, &wm.size) < 0 ||
	    vmw_kernel_type_size(s->k, "zone", &s->zone_size) < 0 || !s->zone_size)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel %s: BTF has no pglist_data.node_zones or "
				      "zone._watermark", release(s));
	if (vmw_kernel_enum_value(s->k, "WMARK_LOW", &wmark_low) < 0 ||
	    vmw_kernel_enum_value(s->k, "NR_WMARK", &nr_wmark) < 0 || wmark_low < 0 ||
	    wmark_low >= nr_wmark || (uint64_t)nr_wmark * 8 != wm.size)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel %s: BTF has no usable WMARK_LOW", release(s));
	s->nr_zones = zones.size / s->zone_size;
	if (vmw_kernel_enum_value(s->k, "__MAX_NR_ZONES", &max_zones) == 0 &&
	    (uint64_t)max_zones != s->nr_zones)
		return vmw_error_set(err, -ENOTSUP, "kernel %s: pglist_data.node_zones holds %u zones, "
				     "__MAX_NR_ZONES is %lld", release(s), s->nr_zones,
				     (long long)max_zones);
	if (!s->nr_zones || s->nr_zones > 16)
		return vmw_error_set(err, -ENOTSUP, "kernel %s: %u zones per node", release(s), s->nr_zones);
	s->node_zones_off = zones.off;
	s->wmark_low_off = wm.off + (uint32_t)wmark_low * 8;
	s->boost_off = boost.off;

	if (sym(s, "node_data", &s->a_node_data, false) == 0) {
		int64_t n_online;
		NEED_SYM("node_states", &s->a_node_states, false);
		if (vmw_kernel_type_size(s->k, "nodemask_t", &s->nodemask_size) < 0 || !s->nodemask_size ||
		    s->nodemask_size > MAX_NODES / 8 ||
		    vmw_kernel_enum_value(s->k, "N_ONLINE", &n_online) < 0 || n_online < 0 || n_online > 16)
			return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
					      "kernel %s: BTF has no nodemask_t/N_ONLINE", release(s));
		s->a_node_states += (uint64_t)n_online * s->nodemask_size;
	} else if (sym(s, "contig_page_data", &s->a_contig_pgdat, false) < 0) {
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel %s: neither node_data nor contig_page_data in kallsyms",
				      release(s));
	}
	return 0;
}

/* nr_blockdev_pages(): blockdev_superblock->s_inodes. */
static int resolve_blockdev(struct vmw_summary_reader *s, struct vmw_error *err)
{
	uint64_t sb = 0;

	if (sym(s, "blockdev_superblock", &s->blockdev_sb, false) < 0)
		return 0;
	NEED(s->k, "super_block", "s_inodes", &s->sb_inodes);
	NEED(s->k, "inode", "i_sb_list", &s->i_sb_list);
	NEED(s->k, "inode", "i_mapping", &s->i_mapping);
	NEED(s->k, "address_space", "nrpages", &s->as_nrpages);
	member(s->k, "inode", "i_data", &s->i_data);
	if (vmw_xlat_read(s->kx, s->blockdev_sb, &sb, 8) < 0 || sb < s->kernel_space)
		sb = 0;   /* not yet set up, or unreadable: Buffers reads 0 */
	s->blockdev_sb = sb;
	return 0;
}

/* si_swapinfo(): swap areas being switched off. Optional as a whole. */
static void resolve_swap(struct vmw_summary_reader *s)
{
	int64_t used, writeok;

	if (!s->a_swap_info || !s->a_nr_swapfiles)
		return;
	if (member(s->k, "swap_info_struct", "flags", &s->si_flags) == 0 &&
	    member(s->k, "swap_info_struct", "inuse_pages", &s->si_inuse) == 0 &&
	    vmw_kernel_enum_value(s->k, "SWP_USED", &used) == 0 &&
	    vmw_kernel_enum_value(s->k, "SWP_WRITEOK", &writeok) == 0) {
		s->swp_used = (uint64_t)used;
		s->swp_writeok = (uint64_t)writeok;
	} else {
		s->a_swap_info = 0;
	}
}

static int resolve_layouts(struct vmw_summary_reader *s, struct vmw_error *err)
{
	int r;

	resolve_page_shift(s);
	if ((r = resolve_symbols(s, err)) < 0 || (r = resolve_cpustat(s, err)) < 0 ||
	    (r = resolve_vmstat(s, err)) < 0 || (r = resolve_timekeeper(s, err)) < 0 ||
	    (r = resolve_tick_sched(s, err)) < 0 || (r = resolve_runqueues(s, err)) < 0 ||
	    (r = resolve_zones(s, err)) < 0 || (r = resolve_blockdev(s, err)) < 0)
		return r;
	resolve_swap(s);
	return 0;
}

/* ---- the batch ---------------------------------------------------------- */

static int add(struct vmw_summary_reader *s, uint64_t addr, uint32_t len, const char *what,
	       bool optional, struct slot *ret)
{
	*ret = (struct slot){ 0, 0 };
	if (!addr || !len)
		return 0;
	if (s->niov == s->iov_cap) {
		size_t cap = s->iov_cap ? s->iov_cap * 2 : 64;
		struct vmw_virt_iov *iov = realloc(s->iov, cap * sizeof(*iov));
		if (!iov)
			return -ENOMEM;
		s->iov = iov;
		const char **w = realloc(s->what, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		s->what = w;
		bool *o = realloc(s->optional, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		s->optional = o;
		s->iov_cap = cap;
	}
	/* 8-byte aligned pieces: values are read with memcpy, but keep it tidy. */
	ret->off = (uint32_t)((s->buflen + 7) & ~(size_t)7);
	ret->len = len;
	s->buflen = ret->off + len;
	s->iov[s->niov] = (struct vmw_virt_iov){ addr, NULL, len, 0 };
	s->what[s->niov] = what;
	s->optional[s->niov] = optional;
	s->niov++;
	return 0;
}

static int add_fld(struct vmw_summary_reader *s, uint64_t base, struct fld f, const char *what,
		   bool optional, struct slot *ret)
{
	*ret = (struct slot){ 0, 0 };
	return f.ok ? add(s, base + f.off, f.size, what, optional, ret) : 0;
}

/* (Re)build the list of pieces: globals, per-CPU areas, cached nodes' zones. */
static int build_batch(struct vmw_summary_reader *s)
{
	unsigned n = s->nr_cpus;
	int r = 0;

	s->niov = 0;
	s->buflen = 0;
	free(s->s_wmark);
	free(s->s_boost);
	s->s_wmark = calloc((size_t)s->nnodes * s->nr_zones + 1, sizeof(struct slot));
	s->s_boost = calloc((size_t)s->nnodes * s->nr_zones + 1, sizeof(struct slot));
	if (!s->s_wmark || !s->s_boost)
		return -ENOMEM;

	r |= add(s, s->a_tk_core, s->tk_size, "tk_core", false, &s->s_tk);
	r |= add(s, s->a_avenrun, 3 * 8, "avenrun", false, &s->s_avenrun);
	r |= add(s, s->a_totalram, 8, "_totalram_pages", false, &s->s_totalram);
	r |= add(s, s->a_totalreserve, 8, "totalreserve_pages", false, &s->s_totalreserve);
	r |= add(s, s->a_zone_stat, s->zone_items * 8, "vm_zone_stat", false, &s->s_zone_stat);
	r |= add(s, s->a_node_stat, s->node_items * 8, "vm_node_stat", false, &s->s_node_stat);
	r |= add(s, s->a_nr_threads, 4, "nr_threads", false, &s->s_nr_threads);
	r |= add(s, s->a_total_forks, 8, "total_forks", false, &s->s_total_forks);
	r |= add(s, s->a_online, s->mask_bytes, "__cpu_online_mask", false, &s->s_online);
	r |= add(s, s->a_possible, s->mask_bytes, "__cpu_possible_mask", false, &s->s_possible);
	r |= add(s, s->a_nr_swap, 8, "nr_swap_pages", true, &s->s_nr_swap);
	r |= add(s, s->a_total_swap, 8, "total_swap_pages", true, &s->s_total_swap);
	r |= add(s, s->a_idr_next, 4, "init_pid_ns.idr.idr_next", true, &s->s_idr_next);
	r |= add(s, s->a_swap_info ? s->a_nr_swapfiles : 0, 4, "nr_swapfiles", true, &s->s_nr_swapfiles);
	r |= add(s, s->a_nohz_active, 1, "tick_nohz_active", false, &s->s_nohz);
	r |= add(s, s->a_node_states, s->nodemask_size, "node_states[N_ONLINE]", false, &s->s_nodes);
	r |= add(s, s->blockdev_sb ? s->blockdev_sb + s->sb_inodes.off : 0, 8,
		 "blockdev_superblock->s_inodes", true, &s->s_bdev_head);
	for (unsigned c = 0; c < n; c++) {
		uint64_t base = s->pcpu[c];
		r |= add(s, base + s->pc_kcs, s->kcs_size, "kernel_cpustat", false, &s->s_kcs[c]);
		if (s->have_ts)
			r |= add(s, base + s->pc_ts, s->ts_size, "tick_cpu_sched", false, &s->s_ts[c]);
		r |= add_fld(s, base + s->pc_rq, s->rq_running, "rq.nr_running", false, &s->s_rq_running[c]);
		r |= add_fld(s, base + s->pc_rq, s->rq_switches, "rq.nr_switches", false, &s->s_rq_switches[c]);
		r |= add_fld(s, base + s->pc_rq, s->rq_iowait, "rq.nr_iowait", false, &s->s_rq_iowait[c]);
		if (s->have_ct)
			r |= add_fld(s, base + s->pc_ct, s->ct_active, "context_tracking.active", true,
				     &s->s_ct[c]);
	}
	for (unsigned i = 0; i < s->nnodes; i++)
		for (unsigned z = 0; z < s->nr_zones; z++) {
			uint64_t zone = s->pgdat[i] + s->node_zones_off + (uint64_t)z * s->zone_size;
			r |= add(s, zone + s->wmark_low_off, 8, "zone._watermark", true,
				 &s->s_wmark[i * s->nr_zones + z]);
			r |= add(s, zone + s->boost_off, 8, "zone.watermark_boost", true,
				 &s->s_boost[i * s->nr_zones + z]);
		}
	if (r)
		return -ENOMEM;
	if (s->buflen > s->buf_cap) {
		uint8_t *b = realloc(s->buf, s->buflen);
		if (!b)
			return -ENOMEM;
		s->buf = b;
		s->buf_cap = s->buflen;
	}
	/* Pointers last, once the buffer has its final place: add() handed out
	 * the slots in iov order with this same alignment rule. */
	for (size_t k = 0, off = 0; k < s->niov; k++) {
		off = (off + 7) & ~(size_t)7;
		s->iov[k].buf = s->buf + off;
		off += s->iov[k].len;
	}
	return 0;
}

/* Online nodes and their pglist_data (node_data[nid]); contig_page_data
 * without NUMA. */
static int read_nodes(struct vmw_summary_reader *s, const uint8_t *mask)
{
	unsigned nodes = s->nodemask_size * 8, n = 0;
	uint64_t *pg;

	if (!s->a_node_data) {
		memset(s->nodemask, 0, sizeof(s->nodemask));
		pg = realloc(s->pgdat, sizeof(*pg));
		if (!pg)
			return -ENOMEM;
		s->pgdat = pg;
		s->pgdat[0] = s->a_contig_pgdat;
		s->nnodes = 1;
		return 0;
	}
	pg = calloc(nodes ? nodes : 1, sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	/* node_data[MAX_NUMNODES]: one read of the whole array (at most 8 KiB). */
	if (vmw_xlat_read(s->kx, s->a_node_data, pg, (size_t)nodes * 8) < 0)
		nodes = 0;
	for (unsigned nid = 0; nid < nodes; nid++) {
		/* An online node without a pglist_data: for_each_online_pgdat would
		 * crash on it; we skip it. */
		if (mask_test(mask, s->nodemask_size, nid) && pg[nid] >= s->kernel_space)
			pg[n++] = pg[nid];
	}
	free(s->pgdat);
	s->pgdat = pg;
	s->nnodes = n;
	memcpy(s->nodemask, mask, s->nodemask_size);
	return 0;
}

int vmw_summary_new(struct vmw_kernel *k, struct vmw_summary_reader **ret, struct vmw_error *err)
{
	struct vmw_summary_reader *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	s->k = k;
	s->kx = vmw_kernel_xlat(k);
	s->kernel_space = kernel_space_start(k);
	s->nr_cpus = vmw_kernel_info(k)->nr_cpus;
	if (!s->nr_cpus) {
		free(s);
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOENT, "kernel %s: no CPUs known", vmw_kernel_info(k)->release);
	}
	s->mask_bytes = (s->nr_cpus + 63) / 64 * 8;
	if ((r = resolve_layouts(s, err)) < 0 || (r = check_bad_layout(k, err)) < 0)
		goto fail;
	r = -ENOMEM;
	s->pcpu = calloc(s->nr_cpus, sizeof(*s->pcpu));
	s->s_kcs = calloc(s->nr_cpus, sizeof(struct slot));
	s->s_ts = calloc(s->nr_cpus, sizeof(struct slot));
	s->s_rq_running = calloc(s->nr_cpus, sizeof(struct slot));
	s->s_rq_switches = calloc(s->nr_cpus, sizeof(struct slot));
	s->s_rq_iowait = calloc(s->nr_cpus, sizeof(struct slot));
	s->s_ct = calloc(s->nr_cpus, sizeof(struct slot));
	s->cpus = calloc(s->nr_cpus, sizeof(*s->cpus));
	if (!s->pcpu || !s->s_kcs || !s->s_ts || !s->s_rq_running || !s->s_rq_switches ||
	    !s->s_rq_iowait || !s->s_ct || !s->cpus) {
		vmw_error_set(err, r, "out of memory");
		goto fail;
	}
	for (unsigned c = 0; c < s->nr_cpus; c++)
		if ((r = vmw_kernel_percpu_offset(k, c, &s->pcpu[c])) < 0) {
			vmw_error_setk(err, VMW_ERR_INCONSISTENT, r, "kernel %s: no per-CPU offset for CPU %u", release(s), c);
			goto fail;
		}
	if (s->a_node_data) {
		uint8_t mask[MAX_NODES / 8] = { 0 };
		if ((r = vmw_xlat_read(s->kx, s->a_node_states, mask, s->nodemask_size)) < 0) {
			vmw_error_set(err, r, "kernel %s: node_states unreadable", release(s));
			goto fail;
		}
		r = read_nodes(s, mask);
	} else {
		r = read_nodes(s, NULL);
	}
	if (r < 0 || (r = build_batch(s)) < 0) {
		vmw_error_set(err, r, "out of memory");
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	vmw_summary_free(s);
	return r;
}

void vmw_summary_free(struct vmw_summary_reader *s)
{
	if (!s)
		return;
	free(s->pcpu);
	free(s->iov);
	free(s->what);
	free(s->optional);
	free(s->buf);
	free(s->s_kcs);
	free(s->s_ts);
	free(s->s_rq_running);
	free(s->s_rq_switches);
	free(s->s_rq_iowait);
	free(s->s_ct);
	free(s->s_wmark);
	free(s->s_boost);
	free(s->pgdat);
	free(s->cpus);
	free(s);
}

/* ---- reading ------------------------------------------------------------ */

static uint32_t seq_at(const uint8_t *p, uint32_t off)
{
	uint32_t v;
	memcpy(&v, p + off, 4);
	return v;
}

/* Read the batch; re-read while a seqcount in it shows a concurrent update.
 * The seqcounts are read again in a second, small batch right after. */
static int read_batch(struct vmw_summary_reader *s, struct vmw_error *err, unsigned *retries,
		      unsigned *missing)
{
	unsigned n = s->nr_cpus;
	struct vmw_virt_iov *v = calloc(1 + n, sizeof(*v));
	uint32_t *seq = calloc(1 + n, sizeof(*seq));
	int r = 0;

	if (!v || !seq) {
		r = vmw_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		size_t nv = 0;
		bool torn = false;

		for (size_t i = 0; i < s->niov; i++)
			s->iov[i].err = 0;
		vmw_xlat_readv(s->kx, s->iov, s->niov);
		for (size_t i = 0; i < s->niov; i++) {
			if (!s->iov[i].err)
				continue;
			if (s->optional[i]) {
				memset(s->iov[i].buf, 0, s->iov[i].len);   /* that value reads 0 */
				(*missing)++;
				continue;
			}
			if (s->iov[i].err == -ESRCH) {
				r = vmw_error_set(err, -ESRCH, "the QEMU process is gone");
				goto out;
			}
			r = vmw_error_set(err, s->iov[i].err, "cannot read the guest's %s at 0x%llx",
					  s->what[i], (unsigned long long)s->iov[i].addr);
			goto out;
		}
		/* Seqcounts: odd means a writer is inside. */
		v[nv++] = (struct vmw_virt_iov){ s->a_tk_core + s->tk_seq, &seq[0], 4, 0 };
		if (s->have_ts && s->ts_seq.ok)
			for (unsigned c = 0; c < n; c++)
				v[nv++] = (struct vmw_virt_iov){ s->pcpu[c] + s->pc_ts + s->ts_seq.off,
								 &seq[1 + c], 4, 0 };
		vmw_xlat_readv(s->kx, v, nv);
		{
			uint32_t a = seq_at(at(s, s->s_tk), s->tk_seq);
			if (v[0].err || a != seq[0] || (a & 1))
				torn = true;
		}
		for (size_t i = 1; i < nv; i++) {
			uint32_t a = seq_at(at(s, s->s_ts[i - 1]), s->ts_seq.off);
			if (v[i].err || a != seq[i] || (a & 1))
				torn = true;
		}
		if (!torn || attempt + 1 >= MAX_RETRIES)
			break;   /* after the last retry keep what was read: a tick's worth of error at most */
		(*retries)++;
	}
out:
	free(v);
	free(seq);
	return r;
}

/* nr_blockdev_pages(): sum of i_mapping->nrpages over the block-device
 * pseudo-filesystem's inodes. Returns pages; *partial when the walk stopped
 * early (cap, loop, torn link, unreadable node). A block device's i_mapping
 * is its own i_data, so each node's nrpages is read with its link, in one
 * batch; a mapping elsewhere is read afterwards. The list head's first link
 * came with the main batch. */
static uint64_t blockdev_pages(struct vmw_summary_reader *s, bool *partial, unsigned *retries)
{
	uint64_t head, first = slot_u64(s, s->s_bdev_head), total = 0;
	uint32_t nr = MIN(s->as_nrpages.size, 8u);

	*partial = false;
	if (!s->blockdev_sb)
		return 0;
	head = s->blockdev_sb + s->sb_inodes.off;
	for (int attempt = 0; attempt < MAX_RETRIES; attempt++) {
		uint64_t prev = head, cur = first, *maps = NULL;
		size_t nmaps = 0, cap = 0, nodes = 0;
		struct vmw_cycle cyc;
		bool torn = false, stop = false;

		total = 0;
		if (attempt > 0 && vmw_xlat_read(s->kx, head, &cur, 8) < 0) {
			*partial = true;
			return 0;
		}
		vmw_cycle_init(&cyc, head);
		while (cur != head) {
			uint64_t inode = cur - s->i_sb_list.off, link[2], mapping = 0, pages = 0;
			uint64_t own = inode + s->i_data.off;
			struct vmw_virt_iov iov[3] = {
				{ cur, link, 16, 0 },
				{ inode + s->i_mapping.off, &mapping, 8, 0 },
				{ own + s->as_nrpages.off, &pages, nr, 0 },
			};
			if (cur < s->kernel_space || vmw_cycle_step(&cyc, cur) || nodes >= MAX_BDEV_INODES ||
			    vmw_xlat_readv(s->kx, iov, s->i_data.ok ? 3 : 2) < 0) {
				stop = true;
				break;
			}
			nodes++;
			if (link[1] != prev) {
				torn = true;
				break;
			}
			if (s->i_data.ok && mapping == own) {
				total += pages;
			} else if (mapping >= s->kernel_space) {
				if (nmaps == cap) {
					size_t nc = cap ? cap * 2 : 16;
					uint64_t *m = realloc(maps, nc * sizeof(*m));
					if (!m) {
						stop = true;
						break;
					}
					maps = m;
					cap = nc;
				}
				maps[nmaps++] = mapping;
			}
			prev = cur;
			cur = link[0];
		}
		if (!torn && nmaps) {
			struct vmw_virt_iov *iov = calloc(nmaps, sizeof(*iov));
			uint64_t *pages = calloc(nmaps, sizeof(*pages));
			if (iov && pages) {
				for (size_t i = 0; i < nmaps; i++)
					iov[i] = (struct vmw_virt_iov){ maps[i] + s->as_nrpages.off, &pages[i], nr, 0 };
				vmw_xlat_readv(s->kx, iov, nmaps);
				for (size_t i = 0; i < nmaps; i++) {
					if (iov[i].err)
						stop = true;
					else
						total += pages[i];
				}
			} else {
				stop = true;
			}
			free(iov);
			free(pages);
		}
		free(maps);
		if (!torn) {
			*partial = stop;
			return total;
		}
		(*retries)++;
	}
	*partial = true;
	return total;
}

/* si_swapinfo()'s pages of swap areas being switched off (SWP_USED but not
 * SWP_WRITEOK): counted as both total and free while swapoff runs. */
static uint64_t swap_to_be_unused(struct vmw_summary_reader *s)
{
	uint32_t n = (uint32_t)slot_u64(s, s->s_nr_swapfiles);
	uint64_t ptr[MAX_SWAPFILES], sum = 0;
	struct vmw_virt_iov iov[2 * MAX_SWAPFILES];
	uint64_t flags[MAX_SWAPFILES];
	uint32_t inuse[MAX_SWAPFILES];
	size_t k = 0;

	if (!s->a_swap_info || !n || !s->s_nr_swapfiles.len)
		return 0;
	n = MIN(n, (uint32_t)MAX_SWAPFILES);
	if (vmw_xlat_read(s->kx, s->a_swap_info, ptr, n * 8) < 0)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		if (ptr[i] < s->kernel_space)
			continue;
		flags[k / 2] = 0;
		inuse[k / 2] = 0;
		iov[k] = (struct vmw_virt_iov){ ptr[i] + s->si_flags.off, &flags[k / 2], s->si_flags.size, 0 };
		iov[k + 1] = (struct vmw_virt_iov){ ptr[i] + s->si_inuse.off, &inuse[k / 2],
						    MIN(s->si_inuse.size, 4u), 0 };
		k += 2;
	}
	vmw_xlat_readv(s->kx, iov, k);
	for (size_t i = 0; i < k; i += 2) {
		if (iov[i].err || iov[i + 1].err)
			continue;
		if ((flags[i / 2] & s->swp_used) && !(flags[i / 2] & s->swp_writeok))
			sum += inuse[i / 2];
	}
	return sum;
}

static bool ts_idle_active(const struct vmw_summary_reader *s, const uint8_t *ts)
{
	return (ts[s->ts_active_bit / 8] >> (s->ts_active_bit % 8)) & 1;
}

/* The timekeeper's last update on CLOCK_MONOTONIC: tkr_mono.base plus the
 * nanoseconds accumulated in xtime_nsec (timekeeping_get_ns() with no cycles
 * since the update). */
static int64_t tk_mono(const struct vmw_summary_reader *s, const uint8_t *tk)
{
	uint64_t shift = get(tk, s->mono_shift);
	return kadd(fsget(tk, s->mono_base), (int64_t)(shift < 64 ? get(tk, s->mono_xnsec) >> shift : 0));
}

/* The batch, read again when nodes came online or went away (re-resolved first). */
static int read_all(struct vmw_summary_reader *s, struct vmw_error *err, unsigned *retries,
		    unsigned *missing)
{
	int r;

	if ((r = read_batch(s, err, retries, missing)) < 0)
		return r;
	if (s->a_node_data && memcmp(at(s, s->s_nodes), s->nodemask, s->nodemask_size)) {
		if ((r = read_nodes(s, at(s, s->s_nodes))) < 0 || (r = build_batch(s)) < 0)
			return vmw_error_set(err, r, "out of memory");
		*missing = 0;
		if ((r = read_batch(s, err, retries, missing)) < 0)
			return r;
	}
	return 0;
}

/* The clock: the latest guest time stamp we can see (see summary.h). Returns
 * "now" on CLOCK_MONOTONIC. */
static int64_t summarize_clock(const struct vmw_summary_reader *s, struct vmw_summary *ret)
{
	const uint8_t *tk = at(s, s->s_tk), *online = at(s, s->s_online);
	int64_t tkm = tk_mono(s, tk), now = tkm;

	for (unsigned c = 0; c < s->nr_cpus && s->have_ts; c++) {
		const uint8_t *ts = at(s, s->s_ts[c]);
		int64_t cand[3] = { fsget(ts, s->ts_entry), fsget(ts, s->ts_exit), fsget(ts, s->ts_wake) };
		if (!mask_test(online, s->mask_bytes, c))
			continue;
		for (int i = 0; i < 3; i++)
			if (cand[i] > now && (uint64_t)ksub(cand[i], tkm) < MAX_AHEAD_NS)
				now = cand[i];
	}
	ret->tk_mono_ns = tkm > 0 ? (uint64_t)tkm : 0;
	ret->now_mono_ns = now > 0 ? (uint64_t)now : 0;

	int64_t boot = kadd(now, fsget(tk, s->offs_boot));
	int64_t btime = ksub(fsget(tk, s->offs_real), fsget(tk, s->offs_boot));
	uint64_t shift = get(tk, s->mono_shift);
	ret->uptime_ns = boot > 0 ? (uint64_t)boot : 0;
	ret->boot_time_s = btime > 0 ? (uint64_t)btime / NSEC_PER_SEC : 0;  /* getboottime64() */
	if (s->xtime_interval.ok && shift < 64)
		ret->tick_ns = get(tk, s->xtime_interval) >> shift;
	return now;
}

/* One CPU's /proc/stat line: kcpustat, with idle and iowait from tick_sched under NO_HZ. */
static struct vmw_cpu_times cpu_times(const struct vmw_summary_reader *s, unsigned c, bool nohz,
				      bool is_online, int64_t now)
{
	const uint8_t *kcs = at(s, s->s_kcs[c]);
	const uint8_t *ts = s->have_ts ? at(s, s->s_ts[c]) : NULL;
	uint32_t iowait_nr = (uint32_t)slot_u64(s, s->s_rq_iowait[c]);
	bool active = ts && ts_idle_active(s, ts);
	struct vmw_cpu_times t;
	uint64_t cs[10];

	for (int i = 0; i < 10; i++)
		memcpy(&cs[i], kcs + s->kcs_cpustat + (uint32_t)s->cputime[i] * 8, 8);
	t = (struct vmw_cpu_times){
		.user = cs[0], .nice = cs[1], .system = cs[2], .irq = cs[5], .softirq = cs[6],
		.steal = cs[7], .guest = cs[8], .guest_nice = cs[9],
	};
	t.idle = vmw_summary_sleep_time(nohz, is_online, active, iowait_nr == 0,
					ts ? fsget(ts, s->ts_sleep) : 0,
					ts ? fsget(ts, s->ts_entry) : 0, now, cs[3]);
	t.iowait = vmw_summary_sleep_time(nohz, is_online, active, iowait_nr != 0,
					  ts ? fsget(ts, s->ts_iowait) : 0,
					  ts ? fsget(ts, s->ts_entry) : 0, now, cs[4]);
	return t;
}

static void add_times(struct vmw_cpu_times *sum, const struct vmw_cpu_times *t)
{
	sum->user += t->user;
	sum->nice += t->nice;
	sum->system += t->system;
	sum->idle += t->idle;
	sum->iowait += t->iowait;
	sum->irq += t->irq;
	sum->softirq += t->softirq;
	sum->steal += t->steal;
	sum->guest += t->guest;
	sum->guest_nice += t->guest_nice;
}

/* /proc/stat and /proc/uptime: per CPU. */
static void summarize_cpus(struct vmw_summary_reader *s, struct vmw_summary *ret, int64_t now)
{
	const uint8_t *online = at(s, s->s_online), *possible = at(s, s->s_possible);
	bool nohz = s->have_ts && slot_u64(s, s->s_nohz) != 0;

	ret->nohz = nohz;
	for (unsigned c = 0; c < s->nr_cpus; c++) {
		bool is_online = mask_test(online, s->mask_bytes, c);
		struct vmw_cpu_times t;

		if (!mask_test(possible, s->mask_bytes, c))
			continue;
		ret->ncpus_possible++;
		t = cpu_times(s, c, nohz, is_online, now);
		add_times(&ret->total, &t);
		ret->ctxt += slot_u64(s, s->s_rq_switches[c]);
		ret->procs_blocked += (uint32_t)slot_u64(s, s->s_rq_iowait[c]);  /* nr_iowait(): possible CPUs */
		if (s->have_ct && s->s_ct[c].len && slot_u64(s, s->s_ct[c]))
			ret->vtime_cpus++;
		if (is_online) {
			ret->nr_running += (uint32_t)slot_u64(s, s->s_rq_running[c]);  /* online CPUs */
			s->cpus[ret->ncpus].cpu = c;
			s->cpus[ret->ncpus].t = t;
			ret->ncpus++;
		}
	}
	ret->cpu = s->cpus;
	ret->idle_ns = ret->total.idle;
	ret->procs_running = ret->nr_running;
	ret->processes = slot_u64(s, s->s_total_forks);
}

static void summarize_loadavg(const struct vmw_summary_reader *s, struct vmw_summary *ret)
{
	memcpy(ret->load, at(s, s->s_avenrun), sizeof(ret->load));
	vmw_summary_format_loadavg(ret->load, ret->loadavg, sizeof(ret->loadavg));
	ret->nr_threads = (int)(int32_t)slot_u64(s, s->s_nr_threads);
	ret->last_pid = s->s_idr_next.len ? (int)((uint32_t)slot_u64(s, s->s_idr_next) - 1) : -1;
}

static void summarize_meminfo(struct vmw_summary_reader *s, struct vmw_summary *ret, unsigned *retries)
{
	uint64_t page_kb = 1ull << (s->page_shift - 10);
	uint64_t buffers, unused = swap_to_be_unused(s), wmark_low = 0;
	int64_t cached, totalram, nr_swap;
	struct vmw_mem_available_in in;
	bool partial;

	memcpy(&totalram, at(s, s->s_totalram), 8);
	buffers = blockdev_pages(s, &partial, retries);
	ret->buffers_partial = partial;
	for (unsigned i = 0; i < s->nnodes * s->nr_zones; i++)
		wmark_low += slot_u64(s, s->s_wmark[i]) + slot_u64(s, s->s_boost[i]);
	in = (struct vmw_mem_available_in){
		.free = stat_item(s, s->s_zone_stat, s->i_free),
		.totalreserve = slot_u64(s, s->s_totalreserve),
		.active_file = stat_item(s, s->s_node_stat, s->i_afile),
		.inactive_file = stat_item(s, s->s_node_stat, s->i_ifile),
		.slab_reclaimable = stat_item(s, s->s_node_stat, s->i_slab_r),
		.misc_reclaimable = stat_item(s, s->s_node_stat, s->i_misc_r),
		.wmark_low = wmark_low,
	};
	cached = ksub(ksub((int64_t)stat_item(s, s->s_node_stat, s->i_file),
			   (int64_t)stat_item(s, s->s_node_stat, s->i_swapcache)), (int64_t)buffers);
	nr_swap = (int64_t)slot_u64(s, s->s_nr_swap);   /* atomic_long_t */
	ret->mem_total_kb = (uint64_t)totalram * page_kb;
	ret->mem_free_kb = in.free * page_kb;
	ret->mem_available_kb = vmw_summary_mem_available(&in) * page_kb;
	ret->buffers_kb = buffers * page_kb;
	ret->cached_kb = (cached < 0 ? 0 : (uint64_t)cached) * page_kb;
	ret->swap_cached_kb = stat_item(s, s->s_node_stat, s->i_swapcache) * page_kb;
	ret->shmem_kb = stat_item(s, s->s_node_stat, s->i_shmem) * page_kb;
	ret->swap_total_kb = (slot_u64(s, s->s_total_swap) + unused) * page_kb;
	ret->swap_free_kb = (uint64_t)kadd(nr_swap, (int64_t)unused) * page_kb;
}

int vmw_summary_read(struct vmw_summary_reader *s, struct vmw_summary *ret, struct vmw_error *err)
{
	uint64_t t0 = vmw_now_ns();
	struct vmw_mem_stats m0, m1;
	unsigned retries = 0, missing = 0;
	int64_t now;
	int r;

	memset(ret, 0, sizeof(*ret));
	vmw_mem_stats(vmw_xlat_mem(s->kx), &m0);
	vmw_xlat_flush(s->kx);
	if ((r = read_all(s, err, &retries, &missing)) < 0)
		return r;
	now = summarize_clock(s, ret);
	summarize_cpus(s, ret, now);
	summarize_loadavg(s, ret);
	summarize_meminfo(s, ret, &retries);
	ret->retries = retries;
	ret->missing = missing;
	vmw_mem_stats(vmw_xlat_mem(s->kx), &m1);
	ret->bytes_read = m1.bytes_read - m0.bytes_read;
	ret->read_ns = vmw_now_ns() - t0;
	return 0;
}
