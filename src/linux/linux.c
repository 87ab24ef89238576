/* SPDX-License-Identifier: MIT */
/*
 * linux.c - the Linux process model. Layouts come from the guest's BTF via
 * kernel discovery; values are computed the way the guest's /proc computes
 * them (fs/proc/array.c, kernel/sched/cputime.c, include/linux/mm.h).
 *
 * A walk runs in stages so that a QEMU-process source needs few syscalls:
 *   1. the task list: each leader's task_struct fields (one batched read per
 *      task: the list link is a serial dependency);
 *   2. every leader's parent, cred, mm and signal_struct, batched across many
 *      processes per read;
 *   3. threads of multi-threaded processes (and all threads with --threads);
 *   4. kernel-thread names (/proc's kworker and long-name rules) and, on
 *      request, command lines read through each process's page tables.
 */
#include "linux/linux_internal.h"

#define PID_MAX_LIMIT   (4 * 1024 * 1024)
#define MAX_PROCS       (1u << 18)   /* cap on the task-list walk */
#define MAX_THREADS     (1u << 16)   /* cap on one thread-group walk */
#define MAX_THREAD_READS (1u << 20)  /* cap on thread records read in one walk: a hostile
				      * guest cannot make the walk take more than ~1 s */
#define MAX_RETRIES     3            /* re-reads of a torn record */
#define MAX_RESTARTS    3            /* restarts of a torn task-list walk */
#define MAX_CMDLINE     (32 * 1024)
#define BATCH           32           /* processes per batched read in stage 2 (at most) */

/* Stable since Linux 4.14 (include/linux/sched.h); not in BTF (macros). */
#define TASK_REPORT     0x7f
#define TASK_UNINTERRUPTIBLE 0x2
#define TASK_NOLOAD     0x400
#define TASK_IDLE       (TASK_UNINTERRUPTIBLE | TASK_NOLOAD)
#define TASK_RTLOCK_WAIT 0x1000
#define PF_WQ_WORKER    0x00000020
#define PF_KTHREAD      0x00200000

/* Per-task counters a process sums over its threads (and signal_struct):
 * /proc/PID/io (task_io_accounting) and the fault counts of /proc/PID/stat. */
#define NACC 9
static const char *const ACC_NAMES[NACC] = {
	"ioac.rchar", "ioac.wchar", "ioac.syscr", "ioac.syscw", "ioac.read_bytes",
	"ioac.write_bytes", "ioac.cancelled_write_bytes", "min_flt", "maj_flt",
};
enum { ACC_IO_FIRST = 0, ACC_IO_N = 7, ACC_MIN_FLT = 7, ACC_MAJ_FLT = 8 };

/* A set of byte ranges of one structure, merged so that nearby fields are read together. */
struct plan {
	uint32_t n;
	struct { uint32_t off, len; } r[48];
	uint32_t span;            /* bytes of image buffer needed */
};

struct vmw_linux {
	struct vmw_kernel *k;
	struct vmw_xlat *kx;
	uint64_t init_task;
	uint64_t page_offset_base;
	uint64_t kernel_space;         /* lowest kernel-half address */

	struct {
		struct fld tasks, pid, tgid, comm, state, exit_state, flags, prio,
			static_prio, real_parent, real_cred, mm, signal, utime, stime,
			sum_exec_runtime, start_time, worker_private, thread_node,
			prev_utime, prev_stime, cpu, nvcsw, nivcsw, cgroups, on_cpu;
		struct fld acc[NACC];      /* ioac.* and fault counters (see ACC_NAMES) */
	} t;
	struct { struct fld uid, euid, gid, egid; } cred;
	struct {
		struct fld rss, total_vm, arg_start, arg_end, pgd, users;
		uint32_t rss_stride, rss_count_off;
		bool rss_percpu;               /* sum percpu_counter deltas like /proc */
		uint32_t rss_counters_off, ncpus;
		uint64_t percpu_off[256];      /* __per_cpu_offset[] */
		int idx_file, idx_anon, idx_swap, idx_shmem;
	} mm;
	struct {
		struct fld nr_threads, utime, stime, sum_sched_runtime,
			prev_utime, prev_stime, thread_head;
		struct fld acc[NACC];      /* what exited threads left */
	} sig;
	struct { struct fld data, full_name; } kthread;
	struct { struct fld pool, desc, current_work, rescue_wq, id; } worker;
	struct { struct fld cpu, id, attrs; } pool;
	struct fld attrs_nice, wq_name;
	struct { struct fld dfl_cgrp, kn, kn_name, kn_parent, kn_id, subsys, mem_usage; int mem_id; bool ok, mem_ok; } cg;
	struct cg_known *cg_known;     /* the last walk's cgroup v2 paths (read_cgroups), */
	size_t ncg_known;              /* in one block kept between walks, then their text */
	size_t cg_known_size;          /* bytes allocated there */
	bool worker_ids;               /* /proc names workers by format_worker_id() (>= 6.10) */
	struct vmw_jobctl jc;          /* process group, session, terminal (jobctl.c) */
	struct vmw_cgv1 cgv1;          /* cgroup v1 lines of /proc/PID/cgroup (cgroup_v1.c) */

	struct plan task_plan, cred_plan, mm_plan, sig_plan;

	struct vmw_files *files;       /* NULL: this kernel lacks a layout they need */
	struct vmw_users *users;
	uint64_t users_checked_ns;     /* when /etc/passwd and /etc/group were last checked */
	size_t last_nprocs;            /* the last walk's processes: the next walk's first room */
	struct last *order;            /* the last walk's processes in list order (read-ahead, reuse) */
	size_t norder;
	struct last_cmd *order_cmd;    /* their command lines (norder of them), then the text */
	size_t order_cmd_size;         /* bytes allocated there */
	bool order_cmd_ok;             /* order_cmd is the last walk's (same order, same count) */
};

/*
 * What the last walk knew of a process that the next one may reuse instead
 * of reading it again. Only values that cannot change while the same task
 * keeps the same pointer: a task's credentials are never written in place
 * once installed (commit_creds() swaps in a new struct, and the old one
 * stays referenced until then, so the same address is the same struct), and
 * a parent's tgid is fixed while the child's real_parent still points at it
 * (an exiting parent's children are re-parented first). "The same task" is
 * its address and its start time.
 */
struct last {
	uint64_t task, start, parent, cred;
	int32_t ppid;
	uint32_t uid, euid, gid, egid;
	bool ppid_ok, cred_ok;
};

/*
 * The command line the last walk read of a process (the same index as its
 * struct last), and what says whether it can have changed since
 * (cmdline_unchanged): len bytes at off in the text after the records, its
 * arguments each ending in a NUL, then one more NUL. len is UINT32_MAX when
 * none was read. For a kernel thread (mm 0): its name as the walk made it
 * (kname_reuse), when every read it took succeeded.
 */
struct last_cmd {
	uint64_t mm, runtime;
	uint32_t off, len;
};

/*
 * A cgroup v2 path the last walk read, and what says it still holds: the
 * same css_set pointing at the same cgroup, whose kernfs node is the same
 * one (its id is never reused while the system runs). A cgroup on the
 * default hierarchy cannot be renamed or moved (cgroup v2 has no rename),
 * and its ancestors live as long as it does, so its path is the same for
 * as long as its node lives. The text is this model's own copy.
 */
struct cg_known {
	uint64_t css, cgrp, kn, id;
	uint32_t off, len;         /* the path: len bytes at off in the text after the records */
};

#define USERS_RECHECK_NS (5ull * 1000000000ull)

/* ---- pure helpers ------------------------------------------------------ */

char vmw_linux_state_letter(uint32_t state, uint32_t exit_state)
{
	static const char letters[] = "RSDTtXZPI";
	uint32_t s = (state | exit_state) & TASK_REPORT;
	int fls = 0;

	if ((state & TASK_IDLE) == TASK_IDLE)
		s = TASK_REPORT + 1;          /* TASK_REPORT_IDLE */
	if (state & TASK_RTLOCK_WAIT)
		s = TASK_UNINTERRUPTIBLE;
	while (s) {
		fls++;
		s >>= 1;
	}
	return fls < (int)sizeof(letters) - 1 ? letters[fls] : '?';
}

void vmw_linux_cputime_adjust(uint64_t rtime, uint64_t utime, uint64_t stime,
			      uint64_t prev_utime, uint64_t prev_stime,
			      uint64_t *ret_utime, uint64_t *ret_stime)
{
	/* kernel/sched/cputime.c cputime_adjust(), minus the write-back to prev. */
	if (prev_stime + prev_utime >= rtime)
		goto out;
	if (stime == 0) {
		utime = rtime;
		goto update;
	}
	if (utime == 0) {
		stime = rtime;
		goto update;
	}
	stime = (uint64_t)((unsigned __int128)stime * rtime / ((unsigned __int128)stime + utime));
update:
	if (stime < prev_stime)
		stime = prev_stime;
	utime = rtime - stime;
	if (utime < prev_utime) {
		utime = prev_utime;
		stime = rtime - utime;
	}
	prev_utime = utime;
	prev_stime = stime;
out:
	*ret_utime = prev_utime;
	*ret_stime = prev_stime;
}

static void plan_add(struct plan *p, struct fld f)
{
	if (f.ok && f.size && p->n < ARRAY_SIZE(p->r)) {
		p->r[p->n].off = f.off;
		p->r[p->n].len = f.size;
		p->n++;
	}
}

static int range_cmp(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/*
 * Sort and merge ranges less than PLAN_GAP apart: fewer, larger reads. Each
 * piece costs a translation, a segment lookup and a copy call (and through
 * process_vm_readv an iovec), which outweighs copying the bytes between
 * fields: measured on a 1,051-process guest, a frame from mapped RAM took
 * 1.8 ms at a 64-byte gap, 1.1 ms at 1 KiB (2.5 MB copied instead of 0.6)
 * and 1.3-1.5 ms at 2 KiB and more (docs/PERFORMANCE.md).
 */
#define PLAN_GAP 1024
static void plan_build(struct plan *p)
{
	uint32_t n = 0;

	qsort(p->r, p->n, sizeof(p->r[0]), range_cmp);
	for (uint32_t i = 0; i < p->n; i++) {
		/* 64-bit sums: offsets and sizes are bounded by the kernel layer, but a wrap here
		 * would size a buffer too small for what is then read into it. */
		if (n) {
			uint64_t prev_end = (uint64_t)p->r[n - 1].off + p->r[n - 1].len;
			if (p->r[i].off <= prev_end + PLAN_GAP) {
				uint64_t end = MAX(prev_end, (uint64_t)p->r[i].off + p->r[i].len);
				p->r[n - 1].len = (uint32_t)(end - p->r[n - 1].off);
				continue;
			}
		}
		p->r[n++] = p->r[i];
	}
	p->n = n;
	p->span = n ? p->r[n - 1].off + p->r[n - 1].len : 0;
}

/* Append the iovs that read plan p of the structure at addr into img. */
static size_t plan_iov(const struct plan *p, uint64_t addr, uint8_t *img, struct vmw_virt_iov *iov)
{
	for (uint32_t i = 0; i < p->n; i++)
		iov[i] = (struct vmw_virt_iov){ addr + p->r[i].off, img + p->r[i].off, p->r[i].len, 0 };
	return p->n;
}

static int plan_read(struct vmw_linux *l, const struct plan *p, uint64_t addr, uint8_t *img)
{
	struct vmw_virt_iov iov[ARRAY_SIZE(p->r)];
	size_t n = plan_iov(p, addr, img, iov);
	return vmw_xlat_readv(l->kx, iov, n);
}

/* Anything below the kernel half of the guest's address space is not a
 * kernel pointer, whatever the guest memory says. */
static bool kaddr(const struct vmw_linux *l, uint64_t a)
{
	return a >= l->kernel_space;
}

/* ---- layouts from BTF -------------------------------------------------- */

/* First of several candidate member names that exists. */
static int member_any(struct vmw_linux *l, const char *type, const char *const *names, struct fld *f)
{
	for (; *names; names++)
		if (member(l->k, type, *names, f) == 0)
			return 0;
	return -ENOENT;
}

/* An enumerator's value (MM_ANONPAGES, ...) from BTF, as an int index. */
static int enum_value(struct vmw_linux *l, const char *name, int *ret)
{
	int64_t v;
	int r = vmw_kernel_enum_value(l->k, name, &v);
	if (r < 0)
		return r;
	if (v < 0 || v > 64)
		return -ERANGE;
	*ret = (int)v;
	return 0;
}

static int resolve_task(struct vmw_linux *l, struct vmw_error *err)
{
	NEED(l->k, "task_struct", "tasks", &l->t.tasks);
	NEED(l->k, "task_struct", "pid", &l->t.pid);
	NEED(l->k, "task_struct", "tgid", &l->t.tgid);
	NEED(l->k, "task_struct", "comm", &l->t.comm);
	if (member_any(l, "task_struct", (const char *[]){ "__state", "state", NULL }, &l->t.state) < 0)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel BTF: task_struct has neither __state nor state");
	NEED(l->k, "task_struct", "exit_state", &l->t.exit_state);
	NEED(l->k, "task_struct", "flags", &l->t.flags);
	NEED(l->k, "task_struct", "prio", &l->t.prio);
	NEED(l->k, "task_struct", "static_prio", &l->t.static_prio);
	NEED(l->k, "task_struct", "real_parent", &l->t.real_parent);
	NEED(l->k, "task_struct", "real_cred", &l->t.real_cred);
	NEED(l->k, "task_struct", "mm", &l->t.mm);
	NEED(l->k, "task_struct", "signal", &l->t.signal);
	NEED(l->k, "task_struct", "utime", &l->t.utime);
	NEED(l->k, "task_struct", "stime", &l->t.stime);
	NEED(l->k, "task_struct", "se.sum_exec_runtime", &l->t.sum_exec_runtime);
	NEED(l->k, "task_struct", "thread_node", &l->t.thread_node);
	if (member_any(l, "task_struct", (const char *[]){ "start_boottime", "real_start_time", NULL },
		       &l->t.start_time) < 0)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel BTF: task_struct has no start_boottime");
	/* Optional: per-thread adjustment state, last CPU, kthread private data. */
	member(l->k, "task_struct", "prev_cputime.utime", &l->t.prev_utime);
	member(l->k, "task_struct", "prev_cputime.stime", &l->t.prev_stime);
	member_any(l, "task_struct", (const char *[]){ "cpu", "thread_info.cpu", NULL }, &l->t.cpu);
	member(l->k, "task_struct", "on_cpu", &l->t.on_cpu);
	member_any(l, "task_struct", (const char *[]){ "worker_private", "set_child_tid", NULL },
		   &l->t.worker_private);
	/* Optional: the cgroup v2 path (css_set.dfl_cgrp -> cgroup.kn -> names). */
	l->cg.ok = member(l->k, "task_struct", "cgroups", &l->t.cgroups) == 0 &&
		   member(l->k, "css_set", "dfl_cgrp", &l->cg.dfl_cgrp) == 0 &&
		   member(l->k, "cgroup", "kn", &l->cg.kn) == 0 &&
		   member(l->k, "kernfs_node", "name", &l->cg.kn_name) == 0 &&
		   member_any(l, "kernfs_node", (const char *[]){ "parent", "__parent", NULL },
			      &l->cg.kn_parent) == 0;
	/* Optional: a kernfs node's id (unique while the system runs: its inode
	 * number and a generation), which says a path read before still holds. */
	if (member(l->k, "kernfs_node", "id", &l->cg.kn_id) == 0 && l->cg.kn_id.size != 8)
		l->cg.kn_id.ok = false;
	/* memory.current: cgroup->subsys[memory_cgrp_id] is the mem_cgroup's css
	 * (its first member); page_counter_read(&memcg->memory) pages. */
	int64_t id;
	l->cg.mem_ok = l->cg.ok && vmw_kernel_enum_value(l->k, "memory_cgrp_id", &id) == 0 && id >= 0 &&
		       member(l->k, "cgroup", "subsys", &l->cg.subsys) == 0 &&
		       (uint64_t)id * 8 + 8 <= l->cg.subsys.size &&
		       member(l->k, "mem_cgroup", "memory.usage", &l->cg.mem_usage) == 0 &&
		       l->cg.mem_usage.size == 8;
	l->cg.mem_id = l->cg.mem_ok ? (int)id : 0;
	/* Optional: I/O accounting, faults, context switches. */
	member(l->k, "task_struct", "nvcsw", &l->t.nvcsw);
	member(l->k, "task_struct", "nivcsw", &l->t.nivcsw);
	for (int i = 0; i < NACC; i++) {
		member(l->k, "task_struct", ACC_NAMES[i], &l->t.acc[i]);
		member(l->k, "signal_struct", ACC_NAMES[i], &l->sig.acc[i]);
		if (l->t.acc[i].ok != l->sig.acc[i].ok)
			l->t.acc[i].ok = l->sig.acc[i].ok = false;   /* only both add up */
	}
	return 0;
}

static int resolve_cred(struct vmw_linux *l, struct vmw_error *err)
{
	NEED(l->k, "cred", "uid", &l->cred.uid);
	NEED(l->k, "cred", "euid", &l->cred.euid);
	NEED(l->k, "cred", "gid", &l->cred.gid);
	NEED(l->k, "cred", "egid", &l->cred.egid);
	return 0;
}

/* rss_stat: struct mm_rss_stat { atomic_long_t count[N]; } (<= 6.1) or
 * struct percpu_counter rss_stat[N] (>= 6.2), where /proc reads only the
 * central count (percpu_counter_read_positive). Decide by sizes in BTF. */
static int resolve_rss_stat(struct vmw_linux *l, struct vmw_error *err)
{
	uint32_t rss_size = l->mm.rss.size, pcc_size = 0, old_size = 0;
	struct fld c;

	if (vmw_kernel_type_size(l->k, "mm_rss_stat", &old_size) == 0 && old_size == rss_size) {
		l->mm.rss_stride = 8;
		l->mm.rss_count_off = 0;
		return 0;
	}
	if (vmw_kernel_type_size(l->k, "percpu_counter", &pcc_size) < 0 || !pcc_size ||
	    rss_size % pcc_size != 0)
		return vmw_error_set(err, -ENOTSUP,
			"kernel BTF: mm_struct.rss_stat (%u bytes) is neither mm_rss_stat nor percpu_counter[]",
			rss_size);
	if (member(l->k, "percpu_counter", "count", &c) < 0)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel BTF: percpu_counter has no count");
	l->mm.rss_stride = pcc_size;
	l->mm.rss_count_off = c.off;
	/* /proc adds the per-CPU deltas (percpu_counter_sum) since the
	 * accurate-RSS fix (6.16, backported to 6.12.y); older 6.2+ kernels
	 * print only the central count, which lags by up to a batch. */
	if (member(l->k, "percpu_counter", "counters", &c) == 0 && c.size == 8) {
		const struct vmw_kernel_info *ki = vmw_kernel_info(l->k);
		l->mm.rss_counters_off = c.off;
		l->mm.ncpus = MIN(ki->nr_cpus, (unsigned)ARRAY_SIZE(l->mm.percpu_off));
		for (unsigned i = 0; i < l->mm.ncpus; i++)
			if (vmw_kernel_percpu_offset(l->k, i, &l->mm.percpu_off[i]) < 0)
				l->mm.ncpus = i;
		l->mm.rss_percpu = l->mm.ncpus > 0;
	}
	return 0;
}

static int resolve_mm(struct vmw_linux *l, struct vmw_error *err)
{
	int max, r;

	NEED(l->k, "mm_struct", "rss_stat", &l->mm.rss);
	NEED(l->k, "mm_struct", "total_vm", &l->mm.total_vm);
	NEED(l->k, "mm_struct", "arg_start", &l->mm.arg_start);
	NEED(l->k, "mm_struct", "arg_end", &l->mm.arg_end);
	NEED(l->k, "mm_struct", "pgd", &l->mm.pgd);
	member(l->k, "mm_struct", "mm_users", &l->mm.users);   /* optional: command lines reused */
	if ((r = resolve_rss_stat(l, err)) < 0)
		return r;
	if (enum_value(l, "MM_FILEPAGES", &l->mm.idx_file) < 0 ||
	    enum_value(l, "MM_ANONPAGES", &l->mm.idx_anon) < 0 ||
	    enum_value(l, "MM_SWAPENTS", &l->mm.idx_swap) < 0)
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT,
				      "kernel BTF: no MM_FILEPAGES/MM_ANONPAGES/MM_SWAPENTS enum");
	if (enum_value(l, "MM_SHMEMPAGES", &l->mm.idx_shmem) < 0)
		l->mm.idx_shmem = -1;
	max = MAX(MAX(l->mm.idx_file, l->mm.idx_anon), MAX(l->mm.idx_swap, l->mm.idx_shmem));
	if (max < 0 || (uint32_t)(max + 1) * l->mm.rss_stride > l->mm.rss.size)
		return vmw_error_set(err, -ENOTSUP, "kernel BTF: rss_stat too small for its counters");
	return 0;
}

static int resolve_signal(struct vmw_linux *l, struct vmw_error *err)
{
	NEED(l->k, "signal_struct", "nr_threads", &l->sig.nr_threads);
	NEED(l->k, "signal_struct", "utime", &l->sig.utime);
	NEED(l->k, "signal_struct", "stime", &l->sig.stime);
	NEED(l->k, "signal_struct", "sum_sched_runtime", &l->sig.sum_sched_runtime);
	NEED(l->k, "signal_struct", "thread_head", &l->sig.thread_head);
	member(l->k, "signal_struct", "prev_cputime.utime", &l->sig.prev_utime);
	member(l->k, "signal_struct", "prev_cputime.stime", &l->sig.prev_stime);
	return 0;
}

/* For /proc's names of kernel threads; optional. */
static void resolve_kthread_names(struct vmw_linux *l)
{
	uint64_t a;

	member(l->k, "kthread", "data", &l->kthread.data);
	member(l->k, "kthread", "full_name", &l->kthread.full_name);
	member(l->k, "worker", "pool", &l->worker.pool);
	member(l->k, "worker", "desc", &l->worker.desc);
	member(l->k, "worker", "current_work", &l->worker.current_work);
	/* Newer kernels name workers from their pool and id (format_worker_id) rather
	 * than task->comm, so rescuers show "kworker/R-<full workqueue name>". */
	l->worker_ids = vmw_kernel_symbol(l->k, "format_worker_id", &a) == 0 &&
			member(l->k, "worker", "rescue_wq", &l->worker.rescue_wq) == 0 &&
			member(l->k, "worker", "id", &l->worker.id) == 0 &&
			member(l->k, "worker_pool", "cpu", &l->pool.cpu) == 0 &&
			member(l->k, "worker_pool", "id", &l->pool.id) == 0 &&
			member(l->k, "worker_pool", "attrs", &l->pool.attrs) == 0 &&
			member(l->k, "workqueue_attrs", "nice", &l->attrs_nice) == 0 &&
			member(l->k, "workqueue_struct", "name", &l->wq_name) == 0;
}

static void plan_fields(struct plan *p, const struct fld *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		plan_add(p, f[i]);
	plan_build(p);
}

/* Read plans: which bytes of each structure a walk needs. */
static void build_plans(struct vmw_linux *l)
{
	struct fld tasks_prev = { l->t.tasks.off + 8, 8, true };
	struct fld node_next = { l->t.thread_node.off, 8, true };
	struct fld node_prev = { l->t.thread_node.off + 8, 8, true };
	const struct fld task_fields[] = {
		{ l->t.tasks.off, 8, true }, tasks_prev, l->t.pid, l->t.tgid, l->t.comm, l->t.state,
		l->t.exit_state, l->t.flags, l->t.prio, l->t.static_prio, l->t.real_parent,
		l->t.real_cred, l->t.mm, l->t.signal, l->t.utime, l->t.stime, l->t.sum_exec_runtime,
		l->t.start_time, l->t.worker_private, node_next, node_prev, l->t.prev_utime,
		l->t.prev_stime, l->t.cpu, l->t.on_cpu,
	};
	const struct fld cred_fields[] = { l->cred.uid, l->cred.euid, l->cred.gid, l->cred.egid };
	const struct fld mm_fields[] = {
		l->mm.rss, l->mm.total_vm, l->mm.arg_start, l->mm.arg_end, l->mm.pgd, l->mm.users,
	};
	const struct fld sig_fields[] = {
		l->sig.nr_threads, l->sig.utime, l->sig.stime, l->sig.sum_sched_runtime,
		l->sig.prev_utime, l->sig.prev_stime, { l->sig.thread_head.off, 8, true },
	};

	for (int i = 0; i < NACC; i++) {
		plan_add(&l->task_plan, l->t.acc[i]);
		plan_add(&l->sig_plan, l->sig.acc[i]);
	}
	plan_add(&l->task_plan, l->t.cgroups);
	if (l->jc.ok) {
		plan_add(&l->sig_plan, (struct fld){ l->jc.pgid_off, 8, true });
		plan_add(&l->sig_plan, (struct fld){ l->jc.sid_off, 8, true });
		if (l->jc.tty_ok)
			plan_add(&l->sig_plan, l->jc.sig_tty);
	}
	plan_add(&l->task_plan, l->t.nvcsw);
	plan_add(&l->task_plan, l->t.nivcsw);
	plan_fields(&l->task_plan, task_fields, ARRAY_SIZE(task_fields));
	plan_fields(&l->cred_plan, cred_fields, ARRAY_SIZE(cred_fields));
	plan_fields(&l->mm_plan, mm_fields, ARRAY_SIZE(mm_fields));
	plan_fields(&l->sig_plan, sig_fields, ARRAY_SIZE(sig_fields));
}

static int resolve_layouts(struct vmw_linux *l, struct vmw_error *err)
{
	int r;

	if ((r = resolve_task(l, err)) < 0 || (r = resolve_cred(l, err)) < 0 ||
	    (r = resolve_mm(l, err)) < 0 || (r = resolve_signal(l, err)) < 0)
		return r;
	resolve_kthread_names(l);
	vmw_jobctl_resolve(l->k, &l->jc);
	vmw_cgv1_resolve(l->k, &l->cgv1);
	build_plans(l);
	return 0;
}

int vmw_linux_new(struct vmw_kernel *k, struct vmw_linux **ret, struct vmw_error *err)
{
	struct vmw_linux *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	l->k = k;
	l->kx = vmw_kernel_xlat(k);
	l->page_offset_base = vmw_kernel_info(k)->page_offset_base;
	l->kernel_space = kernel_space_start(k);
	if (vmw_kernel_symbol(k, "init_task", &l->init_task) < 0) {
		free(l);
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOENT, "kernel symbols: no init_task in kallsyms");
	}
	if ((r = resolve_layouts(l, err)) < 0 || (r = check_bad_layout(k, err)) < 0) {
		free(l);
		return r;
	}
	/* Files and names are extras: a kernel without their layouts still has processes. */
	struct vmw_error ferr = { 0 };
	if (vmw_files_new(k, &l->files, &ferr) < 0)
		l->files = NULL;
	if (vmw_users_new(&l->users) < 0) {
		vmw_files_free(l->files);
		free(l);
		return vmw_error_set(err, -ENOMEM, "out of memory");
	}
	*ret = l;
	return 0;
}

void vmw_linux_free(struct vmw_linux *l)
{
	if (!l)
		return;
	vmw_files_free(l->files);
	vmw_users_free(l->users);
	free(l->order);
	free(l->order_cmd);
	free(l->cg_known);
	free(l);
}

struct vmw_files *vmw_linux_files(struct vmw_linux *l)
{
	return l->files;
}

const struct vmw_users *vmw_linux_users(struct vmw_linux *l)
{
	return l->users;
}

/* vmw_proc.user of every process, the names re-checked now and then. */
static void fill_users(struct vmw_linux *l, struct vmw_proc *procs, size_t n)
{
	uint64_t now = vmw_now_ns();

	if (!l->files)
		return;
	if (!l->users_checked_ns || now - l->users_checked_ns >= USERS_RECHECK_NS) {
		vmw_users_refresh(l->users, l->files);
		l->users_checked_ns = now;
	}
	/* Runs of one user are common (kernel threads, a service's workers):
	 * look a name up once per run, copy it without printf. */
	const char *name = NULL;
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || procs[i].euid != procs[i - 1].euid) {
			name = vmw_users_name(l->users, procs[i].euid);
			len = name ? strnlen(name, sizeof(procs[i].user) - 1) : 0;
		}
		memcpy(procs[i].user, name ? name : "", len);
		procs[i].user[len] = '\0';
	}
}

/* ---- the walk ----------------------------------------------------------- */

/* What stage 1 keeps of a leader for later stages. */
struct raw {
	uint64_t task, parent, cred, mm, signal;
	union {
		uint64_t kthread;    /* a kernel thread's worker_private (mm is 0) */
		struct {             /* a process's, from stage 2's read of its mm (mm is not 0) */
			uint64_t arg_start, arg_end, pgd;
		};
	};
	const struct last *last;     /* the last walk's record of this task, or NULL */
	bool ppid_ok, cred_ok;       /* p->ppid, p->uid.. known (reused or read) */
	bool alive;                  /* exit_state == 0 */
	bool on_cpu;                 /* task_struct.on_cpu (false when this kernel has none) */
	bool mm_alone;               /* mm_struct.mm_users is 1 (false when not known) */
	bool name_read;              /* a kernel thread's name: every read it took succeeded */
	uint32_t flags;
	uint64_t utime, stime, runtime, prev_utime, prev_stime;
	uint64_t thread_next;        /* leader's thread_node.next */
	uint64_t acc[NACC];          /* I/O and fault counters, summed over threads */
	uint64_t css_set;            /* task->cgroups */
	uint16_t cg;                 /* its css_set in read_cgroups' list; UINT16_MAX: past it */
};

static void add_acc(const struct vmw_linux *l, struct raw *rw, const uint8_t *img, const struct fld *f)
{
	for (int i = 0; i < NACC; i++)
		rw->acc[i] += get(img, f[i]);
}

/* The summed counters into the record. */
static void set_acc(const struct vmw_linux *l, struct vmw_proc *p, const struct raw *rw)
{
	uint64_t *io[ACC_IO_N] = { &p->io_rchar, &p->io_wchar, &p->io_syscr, &p->io_syscw,
				   &p->io_read_bytes, &p->io_write_bytes, &p->io_cancelled_write_bytes };

	p->io_ok = l->t.acc[ACC_IO_FIRST].ok;
	for (int i = 0; i < ACC_IO_N; i++)
		*io[i] = rw->acc[ACC_IO_FIRST + i];
	p->min_flt = rw->acc[ACC_MIN_FLT];
	p->maj_flt = rw->acc[ACC_MAJ_FLT];
}

static bool task_plausible(struct vmw_linux *l, const uint8_t *img, bool leader)
{
	uint64_t pid = get(img, l->t.pid), tgid = get(img, l->t.tgid);
	uint64_t prio = get(img, l->t.prio), sprio = get(img, l->t.static_prio);
	uint64_t exit_state = get(img, l->t.exit_state);

	if (pid == 0 || pid > PID_MAX_LIMIT || tgid == 0 || tgid > PID_MAX_LIMIT)
		return false;
	if (leader && pid != tgid)
		return false;
	if (prio >= 140 || sprio >= 140)
		return false;
	if (exit_state & ~0x30ull)
		return false;
	if (!kaddr(l, get(img, l->t.signal)) || !kaddr(l, get(img, l->t.real_parent)))
		return false;
	return true;
}

static void copy_comm(char *dst, size_t dstsz, const uint8_t *src, size_t n)
{
	size_t i;
	for (i = 0; i < n && i + 1 < dstsz && src[i]; i++)
		dst[i] = (char)src[i];
	dst[i] = '\0';
}

/* Fill a thread record from a task image; its CPU times too when times
 * (a process's leader takes its times from the whole group instead). */
static void fill_thread(struct vmw_linux *l, const uint8_t *img, struct vmw_thread *t, bool times)
{
	t->tid = (int32_t)get(img, l->t.pid);
	copy_comm(t->comm, sizeof(t->comm), img + l->t.comm.off, MIN(l->t.comm.size, 16u));
	t->state = vmw_linux_state_letter((uint32_t)get(img, l->t.state), (uint32_t)get(img, l->t.exit_state));
	t->prio = (int32_t)get(img, l->t.prio) - 100;
	t->nice = (int32_t)get(img, l->t.static_prio) - 120;
	t->start_time_ns = get(img, l->t.start_time);
	if (!times)
		return;
	t->runtime_ns = get(img, l->t.sum_exec_runtime);
	t->cpu = l->t.cpu.ok ? (int32_t)get(img, l->t.cpu) : -1;
	vmw_linux_cputime_adjust(t->runtime_ns, get(img, l->t.utime), get(img, l->t.stime),
				 get(img, l->t.prev_utime), get(img, l->t.prev_stime),
				 &t->utime_ns, &t->stime_ns);
}

/* Read a task image, re-reading when it does not look like a task. */
static int read_task(struct vmw_linux *l, uint64_t task, uint8_t *img, bool leader)
{
	int r = -EFAULT;
	for (int i = 0; i < MAX_RETRIES; i++) {
		r = plan_read(l, &l->task_plan, task, img);
		if (r == 0 && task_plausible(l, img, leader))
			return 0;
		if (r == 0)
			r = -EBADMSG;
	}
	return r;
}

struct walk_state {
	struct vmw_proc *procs;
	struct raw *raw;
	size_t n, cap;
	size_t zeroed;                 /* records [0, zeroed) were zeroed */
	size_t hint;                   /* processes expected (the last walk's), 0: unknown */
};

#define ZERO_CHUNK 32   /* records zeroed at a time */

/* Room for one more record, zeroed. The first room is for the last walk's
 * count and an eighth more: a frame of a 147-process guest held room for
 * 512 (300 KB), a 1,046-process guest's doubled twice to 2,048. Records
 * are zeroed ZERO_CHUNK at a time as they are taken, not one by one (a
 * small memset per record cost ~5 % of a frame) nor room by room: zeroing
 * the room never used (half of it after a doubling) cost a one-shot `ps`
 * ~10 % of its run in page faults. */
static int push(struct walk_state *ws)
{
	if (ws->n == ws->cap) {
		size_t cap = ws->cap ? ws->cap * 2 : ws->hint ? ws->hint + ws->hint / 8 + 16 : 512;
		struct vmw_proc *p = realloc(ws->procs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		ws->procs = p;
		struct raw *rw = realloc(ws->raw, cap * sizeof(*rw));
		if (!rw)
			return -ENOMEM;
		ws->raw = rw;
		ws->cap = cap;
	}
	if (ws->n == ws->zeroed) {
		size_t k = MIN((size_t)ZERO_CHUNK, ws->cap - ws->zeroed);
		memset(ws->procs + ws->zeroed, 0, k * sizeof(*ws->procs));
		memset(ws->raw + ws->zeroed, 0, k * sizeof(*ws->raw));
		ws->zeroed += k;
	}
	return 0;
}

/*
 * How many tasks a batched read of stage 1 or 2 takes: max when guest RAM is
 * read with system calls (process_vm_readv, /proc/PID/mem: fewer, larger
 * batches are fewer calls; halving both cost a 1,046-process frame through
 * process_vm_readv 40 %), half of it when it is mapped (a read is a copy: the
 * smaller batches cost no time, and are room the walk does not hold: an
 * agent sampler's heap keeps its frames' highest mark, where stage 1's
 * read-ahead and stage 2's buffers take turns in the same room).
 */
static size_t walk_batch(const struct vmw_linux *l, size_t max)
{
	return vmw_mem_is_mapped(vmw_xlat_mem(l->kx)) ? max / 2 : max;
}

/*
 * Read-ahead for stage 1. The task list is a chain of pointers: each task's
 * image says where the next one is, so a plain walk waits for one cache miss
 * (or one process_vm_readv) per task in turn. Between two walks the list
 * barely changes (new tasks join at its tail, exits leave a gap), so the last
 * walk's order predicts the next RA tasks: they are read in one batch (the
 * mem layer prefetches and joins them), and each image is used only when the
 * chain really leads to it (its address is the link just followed, it looks
 * like a task, its back link is the node we came from). A wrong guess costs a
 * batch read and falls back to the plain read; nothing read ahead is trusted
 * more than what the plain walk reads.
 */
#define RA        16    /* tasks read ahead in one batch (at most) */
#define RA_RESYNC 8     /* how far ahead in the last order a link is looked for */

struct readahead {
	uint8_t *imgs;                 /* cap images of l->task_plan.span + 8 bytes */
	struct vmw_virt_iov *iov;      /* cap * task_plan.n */
	size_t cap;                    /* tasks in a batch: walk_batch(l, RA) */
	uint64_t addr[RA];
	bool ok[RA];
	size_t n, pos;                 /* images in the batch, next one to use */
	size_t next;                   /* index in l->order after the batch */
	size_t stride;
};

static void ra_init(struct vmw_linux *l, struct readahead *ra)
{
	memset(ra, 0, sizeof(*ra));
	if (l->norder < 2)
		return;
	ra->stride = l->task_plan.span + 8;
	ra->cap = walk_batch(l, RA);
	ra->imgs = calloc(ra->cap, ra->stride);
	ra->iov = calloc(ra->cap * MAX(l->task_plan.n, 1u), sizeof(*ra->iov));
	if (!ra->imgs || !ra->iov) {
		free(ra->imgs);
		free(ra->iov);
		ra->imgs = NULL;
	}
}

static void ra_free(struct readahead *ra)
{
	free(ra->imgs);
	free(ra->iov);
}

/* The read-ahead image of task, or NULL: read it the plain way. */
static const uint8_t *ra_take(struct vmw_linux *l, struct readahead *ra, uint64_t task,
			      const struct last **last)
{
	size_t j, cnt, niov = 0;

	*last = NULL;
	if (!ra->imgs)
		return NULL;
	/* In the batch: a task that left the list leaves a gap, skip it. */
	for (j = ra->pos; j < ra->n && j < ra->pos + RA_RESYNC; j++)
		if (ra->addr[j] == task) {
			ra->pos = j + 1;
			*last = &l->order[ra->next - ra->n + j];
			return ra->ok[j] ? ra->imgs + j * ra->stride : NULL;
		}
	/* Past the batch: find the link in the last order, read the next RA from there. */
	for (j = ra->next; j < l->norder && j < ra->next + RA_RESYNC; j++)
		if (l->order[j].task == task)
			break;
	if (j >= l->norder || j >= ra->next + RA_RESYNC) {
		ra->pos = ra->n;
		return NULL;
	}
	cnt = MIN(ra->cap, l->norder - j);
	for (size_t i = 0; i < cnt; i++) {
		ra->addr[i] = l->order[j + i].task;
		niov += plan_iov(&l->task_plan, ra->addr[i], ra->imgs + i * ra->stride, ra->iov + niov);
	}
	vmw_xlat_readv(l->kx, ra->iov, niov);
	for (size_t i = 0, v = 0; i < cnt; i++) {
		ra->ok[i] = true;
		for (uint32_t k = 0; k < l->task_plan.n; k++, v++)
			if (ra->iov[v].err)
				ra->ok[i] = false;
	}
	ra->n = cnt;
	ra->pos = 1;
	ra->next = j + cnt;
	*last = &l->order[j];
	return ra->ok[0] ? ra->imgs : NULL;
}

/* Remember this walk's order and reusable values for the next walk (at the
 * end of a walk: the records of the last walk are no longer looked at). */
static void ra_remember(struct vmw_linux *l, const struct walk_state *ws)
{
	struct last *o = l->order;

	if (l->norder < ws->n || l->norder > 2 * ws->n + 64) {
		free(l->order);
		o = malloc(MAX(ws->n, (size_t)1) * sizeof(*o));
	}
	l->order = o;
	l->norder = o ? ws->n : 0;
	for (size_t i = 0; o && i < ws->n; i++) {
		const struct vmw_proc *p = &ws->procs[i];
		const struct raw *rw = &ws->raw[i];
		o[i] = (struct last){ rw->task, p->start_time_ns, rw->parent, rw->cred, p->ppid,
				      p->uid, p->euid, p->gid, p->egid, rw->ppid_ok, rw->cred_ok };
	}
}

/*
 * A block kept between walks for need bytes: block itself while it is large
 * enough and not four times too large, else a new one (an eighth to spare).
 * NULL (block freed, *size 0) without memory.
 */
static void *kept_block(void *block, size_t *size, size_t need)
{
	if (block && need <= *size && need >= *size / 4)
		return block;
	free(block);
	*size = need + need / 8;
	if (!(block = malloc(*size)))
		*size = 0;
	return block;
}

/* A command line's bytes as read: its arguments, each ending in a NUL. */
static size_t cmd_bytes(char *const *argv)
{
	size_t n = 0;

	for (size_t i = 0; argv && argv[i]; i++)
		n += strlen(argv[i]) + 1;
	return n;
}

/* The text after the order_cmd records of n processes. */
static char *cmd_text(const struct vmw_linux *l, size_t n)
{
	return (char *)(l->order_cmd + n);
}

/*
 * Remember this walk's command lines (and kernel threads' names read
 * whole) for the next walk, in one block kept
 * between walks (grown when needed, not allocated per walk): the frame's own
 * are freed with it, and records kept between frames would pin heap pages.
 * Without room, none is remembered.
 */
static void cmd_remember(struct vmw_linux *l, const struct walk_state *ws)
{
	size_t need = ws->n * sizeof(struct last_cmd), at;
	char *text;

	for (size_t i = 0; i < ws->n; i++)
		need += (ws->raw[i].name_read ? strnlen(ws->procs[i].comm, sizeof(ws->procs[i].comm)) :
			 cmd_bytes(ws->procs[i].cmdline)) + 1;   /* each is at most MAX_CMDLINE */
	if (need > UINT32_MAX || !l->order || l->norder != ws->n) {
		free(l->order_cmd);
		l->order_cmd = NULL;
		l->order_cmd_size = 0;
		return;
	}
	if (!(l->order_cmd = kept_block(l->order_cmd, &l->order_cmd_size, need)))
		return;
	l->order_cmd_ok = true;
	text = cmd_text(l, ws->n);
	at = 0;
	for (size_t i = 0; i < ws->n; i++) {
		const struct vmw_proc *p = &ws->procs[i];
		struct last_cmd *c = &l->order_cmd[i];
		size_t off = at;

		*c = (struct last_cmd){ ws->raw[i].mm, p->runtime_ns, 0, UINT32_MAX };
		if (ws->raw[i].name_read) {
			size_t len = strnlen(p->comm, sizeof(p->comm));
			memcpy(text + at, p->comm, len);
			text[at + len] = '\0';
			c->off = (uint32_t)at;
			c->len = (uint32_t)len;
			at += len + 1;
			continue;
		}
		if (!p->cmdline)
			continue;
		for (size_t k = 0; p->cmdline[k]; k++) {
			size_t len = strlen(p->cmdline[k]) + 1;
			memcpy(text + at, p->cmdline[k], len);
			at += len;
		}
		text[at++] = '\0';
		c->off = (uint32_t)off;
		c->len = (uint32_t)(at - off - 1);
	}
}

/* Stage 1: walk init_task.tasks. Returns 0, or -EAGAIN for a torn link
 * (caller restarts), or another negative errno when the list is unreadable. */
static int walk_tasks(struct vmw_linux *l, struct walk_state *ws, struct vmw_walk *w, uint8_t *img,
		      struct readahead *ra)
{
	uint64_t head = l->init_task + l->t.tasks.off;
	uint64_t prev = head, cur;
	struct vmw_cycle cyc;
	int r;

	if ((r = vmw_xlat_read(l->kx, head, &cur, 8)) < 0)
		return r;
	vmw_cycle_init(&cyc, head);
	while (cur != head) {
		uint64_t task = cur - l->t.tasks.off;
		uint64_t next, back;
		int tries;

		if (!kaddr(l, cur)) {
			snprintf(w->truncated_why, sizeof(w->truncated_why),
				 "task list link 0x%llx is not a kernel address", (unsigned long long)cur);
			w->truncated = true;
			return 0;
		}
		if (vmw_cycle_step(&cyc, cur)) {
			snprintf(w->truncated_why, sizeof(w->truncated_why), "task list loops");
			w->truncated = true;
			return 0;
		}
		if (ws->n >= MAX_PROCS) {
			snprintf(w->truncated_why, sizeof(w->truncated_why), "more than %u processes", MAX_PROCS);
			w->truncated = true;
			return 0;
		}
		/* A read-ahead image that is this task, whole, and linked back to where we came from. */
		const struct last *last;
		const uint8_t *ti = ra_take(l, ra, task, &last);
		r = 0;
		if (ti) {
			memcpy(&back, ti + l->t.tasks.off + 8, 8);
			if (!task_plausible(l, ti, true) || back != prev)
				ti = NULL;
		}
		/* The node must point back at where we came from (re-read a few times). */
		for (tries = 0; !ti && tries < MAX_RETRIES; tries++) {
			r = read_task(l, task, img, true);
			if (r == -EFAULT || r == -ESRCH)
				break;
			memcpy(&back, img + l->t.tasks.off + 8, 8);
			if (back == prev)
				break;
		}
		if (r == -EFAULT || r == -ESRCH) {
			if (r == -ESRCH)
				return r;
			snprintf(w->truncated_why, sizeof(w->truncated_why),
				 "task at 0x%llx is unreadable", (unsigned long long)task);
			w->truncated = true;
			return 0;
		}
		if (ti)
			r = 0;
		else if (tries == MAX_RETRIES)
			return -EAGAIN;
		else
			ti = img;
		memcpy(&next, ti + l->t.tasks.off, 8);
		if (r == 0) {
			struct vmw_proc *p;
			struct raw *rw;
			struct vmw_thread t;

			if ((r = push(ws)) < 0)
				return r;
			p = &ws->procs[ws->n];
			rw = &ws->raw[ws->n];
			ws->n++;
			fill_thread(l, ti, &t, false);
			p->pid = t.tid;
			memcpy(p->comm, t.comm, sizeof(p->comm));
			p->state = t.state;
			p->prio = t.prio;
			p->nice = t.nice;
			p->start_time_ns = t.start_time_ns;
			p->task_addr = task;
			rw->task = task;
			rw->flags = (uint32_t)get(ti, l->t.flags);
			p->kthread = rw->flags & PF_KTHREAD;
			rw->parent = get(ti, l->t.real_parent);
			rw->cred = get(ti, l->t.real_cred);
			rw->mm = p->kthread ? 0 : get(ti, l->t.mm);
			rw->signal = get(ti, l->t.signal);
			rw->kthread = get(ti, l->t.worker_private);
			rw->utime = get(ti, l->t.utime);
			rw->stime = get(ti, l->t.stime);
			rw->runtime = get(ti, l->t.sum_exec_runtime);
			rw->thread_next = get(ti, (struct fld){ l->t.thread_node.off, 8, true });
			rw->alive = get(ti, l->t.exit_state) == 0;
			rw->on_cpu = l->t.on_cpu.ok && get(ti, l->t.on_cpu);
			add_acc(l, rw, ti, l->t.acc);
			p->nvcsw = get(ti, l->t.nvcsw);
			rw->css_set = get(ti, l->t.cgroups);
			p->nivcsw = get(ti, l->t.nivcsw);
			if (ti != img && last && last->start == p->start_time_ns)
				rw->last = last;
		} else {
			w->skipped++;
		}
		prev = cur;
		cur = next;
	}
	return 0;
}

/* Add each RSS counter's per-CPU deltas (__percpu_counter_sum), one batched
 * read for a whole batch of processes. An unreadable delta counts as 0.
 * percpu_counter_init_many() (6.5+) gives an mm's counters one per-CPU
 * block, s32 each in enum order: when a process's counter pointers say so,
 * each CPU's block is read as one piece (the same bytes) rather than one
 * piece per counter. */
static void add_percpu_rss(struct vmw_linux *l, struct walk_state *ws, size_t base, size_t cnt,
			   uint64_t ctr[][4], int64_t rss[][4])
{
	const int idx[4] = { l->mm.idx_anon, l->mm.idx_file, l->mm.idx_shmem, l->mm.idx_swap };
	size_t k = 0, v = 0, max = cnt * 4 * l->mm.ncpus;
	struct vmw_virt_iov *iov = calloc(max ? max : 1, sizeof(*iov));
	int32_t *val = calloc(max ? max : 1, sizeof(*val));
	uint64_t *block = calloc(cnt ? cnt : 1, sizeof(*block));   /* its start, or 0 */
	int nr = 0;

	for (int j = 0; j < 4; j++)
		nr = MAX(nr, idx[j] + 1);
	if (!iov || !val || !block)
		goto out;
	for (size_t i = 0; i < cnt; i++) {
		if (!ws->raw[base + i].mm)
			continue;
		for (int j = 0; j < 4 && nr <= 4; j++) {
			uint64_t at;
			if (idx[j] < 0)
				continue;
			at = ctr[i][j] - 4 * (uint64_t)idx[j];
			if (!ctr[i][j] || (block[i] && at != block[i])) {
				block[i] = 0;
				break;
			}
			block[i] = at;
		}
		for (unsigned c = 0; c < l->mm.ncpus; c++) {
			if (block[i]) {
				iov[k++] = (struct vmw_virt_iov){ block[i] + l->mm.percpu_off[c], &val[v], 4 * (size_t)nr, 0 };
				v += (size_t)nr;
				continue;
			}
			for (int j = 0; j < 4; j++)
				if (ctr[i][j])
					iov[k++] = (struct vmw_virt_iov){ ctr[i][j] + l->mm.percpu_off[c], &val[v++], 4, 0 };
		}
	}
	vmw_xlat_readv(l->kx, iov, k);
	k = v = 0;
	for (size_t i = 0; i < cnt; i++) {
		if (!ws->raw[base + i].mm)
			continue;
		for (unsigned c = 0; c < l->mm.ncpus; c++) {
			if (block[i]) {
				if (!iov[k++].err)
					for (int j = 0; j < 4; j++)
						if (idx[j] >= 0)
							rss[i][j] += val[v + (size_t)idx[j]];
				v += (size_t)nr;
				continue;
			}
			for (int j = 0; j < 4; j++)
				if (ctr[i][j]) {
					if (!iov[k++].err)
						rss[i][j] += val[v];
					v++;
				}
		}
	}
out:
	free(iov);
	free(val);
	free(block);
}

/* Stage 2: parent tgid, credentials, memory counters, signal totals. */
/* Stage 2's buffers: one batch of up to BATCH processes' parent tgid, cred,
 * mm and signal_struct pieces. */
struct details {
	struct vmw_virt_iov *iov;
	uint8_t *cred, *mm, *sig;
	uint32_t *ptgid;
	/* Where each process's pieces start in iov, to attribute errors. */
	size_t first[BATCH][4], count[BATCH][4];
	/* RSS counters (anon, file, shmem, swap) and their per-CPU parts. */
	int64_t rss[BATCH][4];
	uint64_t ctr[BATCH][4];
};

/* Queue the pieces of processes base..base+cnt; returns the number of iovs. */
static size_t queue_details(struct vmw_linux *l, struct walk_state *ws, size_t base, size_t cnt,
			    struct details *d)
{
	size_t k = 0;

	for (size_t i = 0; i < cnt; i++) {
		struct raw *rw = &ws->raw[base + i];
		uint8_t *c = d->cred + i * (l->cred_plan.span + 8);
		uint8_t *m = d->mm + i * (l->mm_plan.span + 8);
		uint8_t *s = d->sig + i * (l->sig_plan.span + 8);

		const struct last *last = rw->last;

		d->first[i][0] = k;
		d->count[i][0] = 0;
		if (!(last && last->ppid_ok && last->parent == rw->parent)) {
			d->iov[k++] = (struct vmw_virt_iov){ rw->parent + l->t.tgid.off, &d->ptgid[i], 4, 0 };
			d->count[i][0] = 1;
		}
		d->first[i][1] = k;
		d->count[i][1] = 0;
		if (!(last && last->cred_ok && last->cred == rw->cred))
			d->count[i][1] = kaddr(l, rw->cred) ? plan_iov(&l->cred_plan, rw->cred, c, d->iov + k) : 0;
		k += d->count[i][1];
		d->first[i][2] = k;
		d->count[i][2] = kaddr(l, rw->mm) ? plan_iov(&l->mm_plan, rw->mm, m, d->iov + k) : 0;
		k += d->count[i][2];
		d->first[i][3] = k;
		d->count[i][3] = kaddr(l, rw->signal) ? plan_iov(&l->sig_plan, rw->signal, s, d->iov + k) : 0;
		k += d->count[i][3];
	}
	return k;
}

/* Did every piece j (parent, cred, mm, signal) of process i arrive? */
static bool details_ok(const struct details *d, size_t i, int j)
{
	if (d->count[i][j] == 0)
		return false;
	for (size_t q = 0; q < d->count[i][j]; q++)
		if (d->iov[d->first[i][j] + q].err)
			return false;
	return true;
}

static void take_rss_counters(const struct vmw_linux *l, const uint8_t *m, int64_t rss[4], uint64_t ctr[4])
{
	const int idx[4] = { l->mm.idx_anon, l->mm.idx_file, l->mm.idx_shmem, l->mm.idx_swap };

	for (int j = 0; j < 4; j++) {
		uint32_t at;
		rss[j] = 0;
		ctr[j] = 0;
		if (idx[j] < 0)
			continue;
		at = l->mm.rss.off + (uint32_t)idx[j] * l->mm.rss_stride;
		memcpy(&rss[j], m + at + l->mm.rss_count_off, 8);
		if (l->mm.rss_percpu)
			memcpy(&ctr[j], m + at + l->mm.rss_counters_off, 8);
	}
}

static void take_details(struct vmw_linux *l, struct walk_state *ws, size_t base, size_t cnt,
			 struct details *d, unsigned page_size)
{
	for (size_t i = 0; i < cnt; i++) {
		struct vmw_proc *p = &ws->procs[base + i];
		struct raw *rw = &ws->raw[base + i];
		const uint8_t *c = d->cred + i * (l->cred_plan.span + 8);
		const uint8_t *m = d->mm + i * (l->mm_plan.span + 8);
		const uint8_t *s = d->sig + i * (l->sig_plan.span + 8);

		const struct last *last = rw->last;

		/* pid 1 and kthreadd have init_task (pid 0) as parent. */
		if (last && last->ppid_ok && last->parent == rw->parent) {
			p->ppid = last->ppid;
			rw->ppid_ok = true;
		} else {
			rw->ppid_ok = details_ok(d, i, 0);
			p->ppid = rw->ppid_ok ? (int32_t)d->ptgid[i] : 0;
		}
		if (last && last->cred_ok && last->cred == rw->cred) {
			p->uid = last->uid;
			p->euid = last->euid;
			p->gid = last->gid;
			p->egid = last->egid;
			rw->cred_ok = true;
		} else if (details_ok(d, i, 1)) {
			p->uid = (uint32_t)get(c, l->cred.uid);
			p->euid = (uint32_t)get(c, l->cred.euid);
			p->gid = (uint32_t)get(c, l->cred.gid);
			p->egid = (uint32_t)get(c, l->cred.egid);
			rw->cred_ok = true;
		}
		if (details_ok(d, i, 2)) {
			take_rss_counters(l, m, d->rss[i], d->ctr[i]);
			p->vsz_bytes = get(m, l->mm.total_vm) * page_size;
			rw->arg_start = get(m, l->mm.arg_start);
			rw->arg_end = get(m, l->mm.arg_end);
			rw->pgd = get(m, l->mm.pgd);
			rw->mm_alone = l->mm.users.ok && get(m, l->mm.users) == 1;
		} else {
			rw->mm = 0;
		}
		if (details_ok(d, i, 3)) {
			p->nr_threads = (uint32_t)get(s, l->sig.nr_threads);
			/* Exited threads' share; live threads are added in stage 3. */
			rw->utime += get(s, l->sig.utime);
			rw->stime += get(s, l->sig.stime);
			rw->runtime += get(s, l->sig.sum_sched_runtime);
			rw->prev_utime = get(s, l->sig.prev_utime);
			rw->prev_stime = get(s, l->sig.prev_stime);
			add_acc(l, rw, s, l->sig.acc);
		} else {
			rw->signal = 0;
		}
	}
}

static void set_rss(struct walk_state *ws, size_t base, size_t cnt, int64_t rss[][4], unsigned page_size)
{
	for (size_t i = 0; i < cnt; i++) {
		struct vmw_proc *p = &ws->procs[base + i];
		if (!ws->raw[base + i].mm)
			continue;
		for (int j = 0; j < 4; j++)
			if (rss[i][j] < 0)
				rss[i][j] = 0;  /* get_mm_counter clamps */
		p->rss_anon_bytes = (uint64_t)rss[i][0] * page_size;
		p->rss_file_bytes = (uint64_t)rss[i][1] * page_size;
		p->rss_shmem_bytes = (uint64_t)rss[i][2] * page_size;
		p->swap_bytes = (uint64_t)rss[i][3] * page_size;
	}
}

/* Process groups, sessions and terminals from the signal_structs just read. */
static void read_jobctl(struct vmw_linux *l, struct walk_state *ws, size_t base, size_t cnt,
			const struct details *d)
{
	struct vmw_jobctl_raw jr[BATCH];

	if (!l->jc.ok)
		return;
	for (size_t i = 0; i < cnt; i++) {
		const uint8_t *s = d->sig + i * (l->sig_plan.span + 8);
		jr[i] = (struct vmw_jobctl_raw){ .valid = ws->raw[base + i].signal != 0 };
		if (!jr[i].valid)
			continue;
		memcpy(&jr[i].pid[0], s + l->jc.pgid_off, 8);
		memcpy(&jr[i].pid[1], s + l->jc.sid_off, 8);
		jr[i].tty = l->jc.tty_ok ? get(s, l->jc.sig_tty) : 0;
	}
	vmw_jobctl_read(&l->jc, l->kx, l->kernel_space, ws->procs + base, jr, cnt);
}

static void read_details(struct vmw_linux *l, struct walk_state *ws, unsigned page_size)
{
	size_t per = 1 + l->cred_plan.n + l->mm_plan.n + l->sig_plan.n;
	/* Buffers for as many processes as there are, up to a batch of 32
	 * (~50 KB of them, plus ~4 KB on the stack; 16 on mapped RAM, see
	 * walk_batch): a sampler's heap keeps its highest mark from frame to
	 * frame, and batches of 128 (~200 KB) were a third of it, for no
	 * measurable CPU per frame. */
	size_t batch = MIN(walk_batch(l, BATCH), MAX(ws->n, (size_t)1));
	struct details d = {
		.iov = calloc(batch * per, sizeof(*d.iov)),
		.cred = calloc(batch, l->cred_plan.span + 8),
		.mm = calloc(batch, l->mm_plan.span + 8),
		.sig = calloc(batch, l->sig_plan.span + 8),
		.ptgid = calloc(batch, sizeof(uint32_t)),
	};

	if (!d.iov || !d.cred || !d.mm || !d.sig || !d.ptgid)
		goto out;
	for (size_t base = 0; base < ws->n; base += batch) {
		size_t cnt = MIN(batch, ws->n - base);

		vmw_xlat_readv(l->kx, d.iov, queue_details(l, ws, base, cnt, &d));
		take_details(l, ws, base, cnt, &d, page_size);
		read_jobctl(l, ws, base, cnt, &d);
		if (l->mm.rss_percpu)
			add_percpu_rss(l, ws, base, cnt, d.ctr, d.rss);
		set_rss(ws, base, cnt, d.rss, page_size);
	}
out:
	free(d.iov);
	free(d.cred);
	free(d.mm);
	free(d.sig);
	free(d.ptgid);
}

/* Stage 3: walk signal->thread_head for one process: add live non-leader
 * threads' times, and list every thread when asked. */
static int walk_threads(struct vmw_linux *l, struct vmw_proc *p, struct raw *rw, bool list, uint8_t *img,
			size_t *budget, size_t *ret_n)
{
	uint64_t head = rw->signal + l->sig.thread_head.off;
	uint64_t cur = rw->thread_next, prev;
	struct vmw_cycle cyc;
	size_t n = 0, cap = 0;
	struct vmw_thread *threads = NULL;
	int r = 0;

	/* The leader's own times were counted in stage 1 (a zombie leader of a live
	 * group keeps them until it is reaped, like thread_group_cputime sees). */
	if ((r = vmw_xlat_read(l->kx, head, &cur, 8)) < 0)
		return r;
	prev = head;
	vmw_cycle_init(&cyc, head);
	while (cur != head) {
		uint64_t task = cur - l->t.thread_node.off, back, next;
		struct vmw_thread t;

		if (!kaddr(l, cur) || vmw_cycle_step(&cyc, cur) || n >= MAX_THREADS || !*budget) {
			r = -ELOOP;
			break;
		}
		(*budget)--;
		if ((r = read_task(l, task, img, false)) < 0)
			break;
		/* Every thread on the list belongs to this process. */
		if ((int32_t)get(img, l->t.tgid) != p->pid) {
			r = -EBADMSG;
			break;
		}
		memcpy(&back, img + l->t.thread_node.off + 8, 8);
		memcpy(&next, img + l->t.thread_node.off, 8);
		if (back != prev) {
			r = -EAGAIN;
			break;
		}
		if (task != rw->task) {
			rw->utime += get(img, l->t.utime);
			rw->stime += get(img, l->t.stime);
			rw->runtime += get(img, l->t.sum_exec_runtime);
			add_acc(l, rw, img, l->t.acc);
		}
		if (list) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				struct vmw_thread *nt = realloc(threads, nc * sizeof(*nt));
				if (!nt) {
					r = -ENOMEM;
					break;
				}
				threads = nt;
				cap = nc;
			}
			fill_thread(l, img, &t, true);
			threads[n] = t;
		}
		n++;
		prev = cur;
		cur = next;
	}
	if (list) {
		p->threads = threads;
		p->nthreads_listed = (uint32_t)n;
	}
	*ret_n = n;
	return r;
}

static int read_kstring(struct vmw_linux *l, uint64_t addr, char *buf, size_t size)
{
	return vmw_kstring(l->kx, addr, buf, size);
}

/* ---- cgroups ----------------------------------------------------------- */

#define CG_CACHE     256   /* css_sets remembered in one walk */

/* A process's cgroup v1 lines (owned); unknown on a kernel that has them
 * marks the process incomplete. */
static void set_cgroups_v1(struct vmw_linux *l, struct vmw_proc *p, char *v1)
{
	p->cgroups_v1 = v1;
	if (!v1 && l->cgv1.ok)
		p->incomplete = true;
}

/* A malloc'd string (or NULL) as a vmw_rcstr; the original is freed. */
static char *rcstr_take(char *s)
{
	char *r = s ? vmw_rcstr_new(s, strlen(s)) : NULL;
	free(s);
	return r;
}

/* What read_cgroups reads of one css_set. */
struct cg_seen {
	uint64_t css, cgrp, kn, id, mcss;
	int64_t pages;
	bool ok_cgrp, ok_kn, ok_id, ok_mcss, ok_pages;
	char *path, *v1;                /* vmw_rcstr strings */
};

/* The cgroup, its kernfs node and id, and memory.current of n css_sets:
 * three batched reads, each step's pointers from the one before. */
#define CG_STACK 32     /* css_sets whose buffers are on the stack (see read_kthread_names) */
static void cg_read_nodes(struct vmw_linux *l, struct cg_seen *c, size_t n)
{
	struct vmw_virt_iov iov_s[2 * CG_STACK + 1];
	size_t at_s[2 * CG_STACK + 1];
	bool heap = n > CG_STACK;
	struct vmw_virt_iov *iov = heap ? calloc(2 * n + 1, sizeof(*iov)) : iov_s;
	size_t *at = heap ? calloc(2 * n + 1, sizeof(*at)) : at_s;
	size_t k = 0;

	if (!iov || !at)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (kaddr(l, c[i].css))
			iov[at[i] = k++] = (struct vmw_virt_iov){ c[i].css + l->cg.dfl_cgrp.off, &c[i].cgrp, 8, 0 };
	vmw_xlat_readv(l->kx, iov, k);
	for (size_t i = 0; i < n; i++)
		c[i].ok_cgrp = kaddr(l, c[i].css) && !iov[at[i]].err && kaddr(l, c[i].cgrp);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!c[i].ok_cgrp)
			continue;
		iov[at[2 * i] = k++] = (struct vmw_virt_iov){ c[i].cgrp + l->cg.kn.off, &c[i].kn, 8, 0 };
		if (l->cg.mem_ok)
			iov[at[2 * i + 1] = k++] = (struct vmw_virt_iov){
				c[i].cgrp + l->cg.subsys.off + (uint64_t)l->cg.mem_id * 8, &c[i].mcss, 8, 0 };
	}
	vmw_xlat_readv(l->kx, iov, k);
	for (size_t i = 0; i < n; i++) {
		if (!c[i].ok_cgrp)
			continue;
		c[i].ok_kn = !iov[at[2 * i]].err && kaddr(l, c[i].kn);
		c[i].ok_mcss = l->cg.mem_ok && !iov[at[2 * i + 1]].err && kaddr(l, c[i].mcss);
	}
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].ok_kn && l->cg.kn_id.ok)
			iov[at[2 * i] = k++] = (struct vmw_virt_iov){ c[i].kn + l->cg.kn_id.off, &c[i].id, 8, 0 };
		if (c[i].ok_kn && c[i].ok_mcss)
			iov[at[2 * i + 1] = k++] = (struct vmw_virt_iov){ c[i].mcss + l->cg.mem_usage.off,
									  &c[i].pages, 8, 0 };
	}
	vmw_xlat_readv(l->kx, iov, k);
	for (size_t i = 0; i < n; i++) {
		c[i].ok_id = c[i].ok_kn && l->cg.kn_id.ok && !iov[at[2 * i]].err;
		c[i].ok_pages = c[i].ok_kn && c[i].ok_mcss && !iov[at[2 * i + 1]].err && c[i].pages >= 0 &&
				(uint64_t)c[i].pages <= (1ull << 40);
	}
out:
	if (heap) {
		free(iov);
		free(at);
	}
}

/* The v2 path of c's cgroup, like cgroup_path_ns() for the init namespace
 * (the names from the root down, "/" for the root): the last walk's when its
 * node is the same one, else read. */
static char *cg_path(struct vmw_linux *l, const struct cg_seen *c)
{
	if (!c->ok_kn)
		return NULL;
	if (c->ok_id)
		for (size_t j = 0; j < l->ncg_known; j++) {
			const struct cg_known *k = &l->cg_known[j];
			if (k->css == c->css && k->cgrp == c->cgrp && k->kn == c->kn && k->id == c->id)
				return vmw_rcstr_new((const char *)(l->cg_known + l->ncg_known) + k->off, k->len);
		}
	return rcstr_take(vmw_cgv1_kn_path(l->kx, l->kernel_space, l->cg.kn_name, l->cg.kn_parent, c->kn));
}

/* Remember this walk's paths for the next (those with a node id), in the
 * block kept between walks: grown when needed, not allocated per walk (a
 * sampler's heap pages, once touched, stay resident). */
static void cg_remember(struct vmw_linux *l, const struct cg_seen *c, size_t n)
{
	size_t m = 0, need = 0, at = 0;
	char *text;

	for (size_t i = 0; i < n; i++)
		if (c[i].ok_id && c[i].path) {
			m++;
			need += strlen(c[i].path);   /* each at most KN_PATH_MAX */
		}
	need += m * sizeof(struct cg_known);
	l->ncg_known = 0;
	if (!m)
		return;
	if (!(l->cg_known = kept_block(l->cg_known, &l->cg_known_size, need)))
		return;
	text = (char *)(l->cg_known + m);
	for (size_t i = 0, j = 0; i < n; i++) {
		size_t len;
		if (!c[i].ok_id || !c[i].path)
			continue;
		len = strlen(c[i].path);
		memcpy(text + at, c[i].path, len);
		l->cg_known[j++] = (struct cg_known){ c[i].css, c[i].cgrp, c[i].kn, c[i].id,
						      (uint32_t)at, (uint32_t)len };
		at += len;
	}
	l->ncg_known = m;
}

/* c's path and v1 lines (vmw_rcstr strings, NULL when unknown). */
static void cg_strings(struct vmw_linux *l, const struct vmw_cgv1_roots *roots, struct cg_seen *c)
{
	c->path = cg_path(l, c);
	c->v1 = rcstr_take(vmw_cgv1_lines(&l->cgv1, roots, l->kx, l->kernel_space, c->css));
}

/* A process of c's css_set: its path, v1 lines and memory.current. */
static void cg_set(struct vmw_linux *l, struct vmw_proc *p, const struct cg_seen *c)
{
	p->cgroup = vmw_rcstr_ref(c->path);
	set_cgroups_v1(l, p, vmw_rcstr_ref(c->v1));
	p->cgroup_memory_ok = c->ok_pages;
	p->cgroup_memory_bytes = c->ok_pages ? (uint64_t)c->pages * 4096 : 0;
}

static void cg_unref(struct cg_seen *c)
{
	vmw_rcstr_unref(c->path);
	vmw_rcstr_unref(c->v1);
}

/* Each process's cgroup path; processes of one css_set share one read, and
 * one string (a process costs no allocation). The css_sets' cgroups, nodes
 * and memory.current are read in three batched steps (cg_read_nodes), and a
 * path the last walk read is not read again while its node lives. */
static void read_cgroups(struct vmw_linux *l, struct walk_state *ws)
{
	struct cg_seen c_s[CG_STACK], *c = c_s;
	size_t n = 0, cap = CG_STACK;
	struct vmw_cgv1_roots *roots = NULL;

	if (!l->cg.ok)
		return;
	if (l->cgv1.ok)
		roots = vmw_cgv1_roots_read(&l->cgv1, l->kx, l->kernel_space);
	/* The distinct css_sets, up to CG_CACHE (on the stack up to CG_STACK);
	 * a process of any further one: UINT16_MAX. */
	for (size_t i = 0; i < ws->n; i++) {
		uint64_t css = ws->raw[i].css_set;
		size_t j;
		for (j = 0; j < n && c[j].css != css; j++)
			;
		if (j == n && n < CG_CACHE) {
			if (n == cap) {
				size_t nc = MIN(2 * cap, (size_t)CG_CACHE);
				struct cg_seen *g = c == c_s ? malloc(nc * sizeof(*c)) : realloc(c, nc * sizeof(*c));
				if (!g)
					goto out;
				if (c == c_s)
					memcpy(g, c_s, sizeof(c_s));
				c = g;
				cap = nc;
			}
			c[n++] = (struct cg_seen){ .css = css };
		}
		ws->raw[i].cg = j < n ? (uint16_t)j : UINT16_MAX;
	}
	cg_read_nodes(l, c, n);
	for (size_t j = 0; j < n; j++)
		cg_strings(l, roots, &c[j]);
	for (size_t i = 0; i < ws->n; i++) {
		struct cg_seen one;
		if (ws->raw[i].cg != UINT16_MAX) {
			cg_set(l, &ws->procs[i], &c[ws->raw[i].cg]);
			continue;
		}
		/* Past CG_CACHE css_sets: read alone, the same way. */
		one = (struct cg_seen){ .css = ws->raw[i].css_set };
		cg_read_nodes(l, &one, 1);
		cg_strings(l, roots, &one);
		cg_set(l, &ws->procs[i], &one);
		cg_unref(&one);
	}
	cg_remember(l, c, n);
	for (size_t j = 0; j < n; j++)
		cg_unref(&c[j]);
out:
	if (c != c_s)
		free(c);
	vmw_cgv1_roots_free(roots);
}

/*
 * Stage 4a: kernel threads' names as /proc shows them (proc_task_name), read in steps batched over
 * KN_BATCH threads: each step's pointers come from the step before, and a
 * read one by one was a syscall each through QEMU process memory (~90 a
 * frame of a 147-process guest). A worker is named by wq_worker_comm(): its
 * name (format_worker_id() from its pool and id on Linux >= 6.10, its comm
 * before), then "+desc" while it runs a work item or "-desc" for the last
 * one it ran; another kernel thread by its kthread's full_name. Whatever
 * cannot be read leaves that part as it was, as a read one by one did.
 */
#define KN_BATCH 16     /* on the stack: ~6 KB */
#define KN_PIECES 5     /* reads of one thread in one step, at most */

struct kname {
	size_t idx;                   /* its record */
	bool worker;
	uint64_t ptr;                 /* the worker, or the full name's address */
	uint64_t pool, cur_work, rescue_wq, attrs;
	int32_t id, cpu, pool_id, nice;
	union {
		struct { char desc[32], wq[64]; };   /* a worker's */
		char name[64];                      /* another kernel thread's */
	};
	/* which reads arrived: ptr, pool, desc, current_work, rescue_wq+id, wq, cpu+id+attrs, nice, name */
	bool ok_ptr, ok_pool, ok_desc, ok_cur, ok_rid, ok_wq, ok_cpi, ok_nice, ok_name;
	bool failed;                  /* a read failed */
};

struct kqueue {
	struct vmw_virt_iov iov[KN_BATCH * KN_PIECES];
	struct kname *of[KN_BATCH * KN_PIECES];
	size_t n;
};

static size_t kq_add(struct kqueue *q, struct kname *x, uint64_t addr, void *buf, size_t len)
{
	q->iov[q->n] = (struct vmw_virt_iov){ addr, buf, len, 0 };
	q->of[q->n] = x;
	return q->n++;
}

/* The step's reads; a thread with one that failed is not remembered. */
static void kq_read(struct vmw_linux *l, struct kqueue *q)
{
	vmw_xlat_readv(l->kx, q->iov, q->n);
	for (size_t j = 0; j < q->n; j++)
		if (q->iov[j].err)
			q->of[j]->failed = true;
}

static bool kq_ok(const struct kqueue *q, size_t a, size_t b)
{
	return !q->iov[a].err && !q->iov[b].err;
}

/* format_worker_id() into base, from what the steps read; base stays the comm
 * when something is unreadable. */
static void worker_id_name(const struct kname *x, char *base, size_t size)
{
	if (!x->ok_rid)
		return;
	if (x->rescue_wq) {
		if (x->ok_wq)
			snprintf(base, size, "kworker/R-%s", x->wq);
	} else if (x->pool) {
		if (!x->ok_cpi)
			return;
		if (x->cpu >= 0) {
			if (x->ok_nice)
				snprintf(base, size, "kworker/%d:%d%s", x->cpu, x->id, x->nice < 0 ? "H" : "");
		} else {
			snprintf(base, size, "kworker/u%d:%d", x->pool_id, x->id);
		}
	} else {
		snprintf(base, size, "kworker/dying");
	}
}

static void kthread_names_batch(struct vmw_linux *l, struct walk_state *ws, struct kname *kn, size_t k,
				struct kqueue *q)
{
	size_t at[KN_BATCH][KN_PIECES];

	/* 1: the worker, or the full name's address. */
	q->n = 0;
	for (size_t i = 0; i < k; i++) {
		const struct raw *rw = &ws->raw[kn[i].idx];
		uint32_t off = kn[i].worker ? l->kthread.data.off : l->kthread.full_name.off;
		at[i][0] = kq_add(q, &kn[i], rw->kthread + off, &kn[i].ptr, 8);
	}
	kq_read(l, q);
	for (size_t i = 0; i < k; i++)
		kn[i].ok_ptr = !q->iov[at[i][0]].err && kaddr(l, kn[i].ptr);
	/* 2: the worker's pool, desc, current work (rescuer and id); the full name's text. */
	q->n = 0;
	for (size_t i = 0; i < k; i++) {
		struct kname *x = &kn[i];
		if (!x->ok_ptr)
			continue;
		if (!x->worker) {
			/* The first piece up to the end of its page, as vmw_kstring reads it. */
			size_t len = MIN(sizeof(x->name) - 1, 4096 - (x->ptr & 4095));
			at[i][0] = kq_add(q, x, x->ptr, x->name, len);
			continue;
		}
		at[i][0] = kq_add(q, x, x->ptr + l->worker.pool.off, &x->pool, 8);
		at[i][1] = kq_add(q, x, x->ptr + l->worker.desc.off, x->desc,
				  MIN(sizeof(x->desc) - 1, (size_t)l->worker.desc.size));
		at[i][2] = l->worker.current_work.ok ?
			kq_add(q, x, x->ptr + l->worker.current_work.off, &x->cur_work, 8) : SIZE_MAX;
		if (l->worker_ids) {
			at[i][3] = kq_add(q, x, x->ptr + l->worker.rescue_wq.off, &x->rescue_wq, 8);
			at[i][4] = kq_add(q, x, x->ptr + l->worker.id.off, &x->id, 4);
		}
	}
	kq_read(l, q);
	for (size_t i = 0; i < k; i++) {
		struct kname *x = &kn[i];
		if (!x->ok_ptr)
			continue;
		if (!x->worker) {
			size_t len = q->iov[at[i][0]].len;
			if (q->iov[at[i][0]].err)
				continue;
			x->name[len] = '\0';
			/* No NUL before the page ended: the rest the slow way. */
			if (len < sizeof(x->name) - 1 && !memchr(x->name, 0, len)) {
				x->ok_name = read_kstring(l, x->ptr, x->name, sizeof(x->name)) == 0;
				x->failed |= !x->ok_name;
			} else
				x->ok_name = true;
			continue;
		}
		x->ok_pool = !q->iov[at[i][0]].err;
		x->ok_desc = !q->iov[at[i][1]].err;
		x->desc[sizeof(x->desc) - 1] = '\0';
		x->ok_cur = at[i][2] != SIZE_MAX && !q->iov[at[i][2]].err;
		x->ok_rid = l->worker_ids && kq_ok(q, at[i][3], at[i][4]);
	}
	if (l->worker_ids) {
		/* 3: a rescuer's workqueue name; a pool's CPU, id and attributes. */
		q->n = 0;
		for (size_t i = 0; i < k; i++) {
			struct kname *x = &kn[i];
			if (!x->worker || !x->ok_ptr || !x->ok_pool || !x->ok_rid)
				continue;
			if (x->rescue_wq) {
				if (kaddr(l, x->rescue_wq))
					at[i][0] = kq_add(q, x, x->rescue_wq + l->wq_name.off, x->wq,
							  MIN(sizeof(x->wq) - 1, (size_t)l->wq_name.size));
			} else if (x->pool && kaddr(l, x->pool)) {
				at[i][0] = kq_add(q, x, x->pool + l->pool.cpu.off, &x->cpu, 4);
				at[i][1] = kq_add(q, x, x->pool + l->pool.id.off, &x->pool_id, 4);
				at[i][2] = kq_add(q, x, x->pool + l->pool.attrs.off, &x->attrs, 8);
			}
		}
		kq_read(l, q);
		for (size_t i = 0; i < k; i++) {
			struct kname *x = &kn[i];
			if (!x->worker || !x->ok_ptr || !x->ok_pool || !x->ok_rid)
				continue;
			if (x->rescue_wq) {
				x->ok_wq = kaddr(l, x->rescue_wq) && !q->iov[at[i][0]].err;
				x->wq[sizeof(x->wq) - 1] = '\0';
			} else if (x->pool && kaddr(l, x->pool)) {
				x->ok_cpi = kq_ok(q, at[i][0], at[i][1]);
				if (x->ok_cpi && x->cpu >= 0 && (q->iov[at[i][2]].err || !kaddr(l, x->attrs)))
					x->ok_cpi = false;
			}
		}
		/* 4: the nice value of a per-CPU pool's attributes. */
		q->n = 0;
		for (size_t i = 0; i < k; i++) {
			struct kname *x = &kn[i];
			if (x->worker && x->ok_cpi && x->cpu >= 0)
				at[i][0] = kq_add(q, x, x->attrs + l->attrs_nice.off, &x->nice, 4);
		}
		kq_read(l, q);
		for (size_t i = 0; i < k; i++) {
			struct kname *x = &kn[i];
			if (x->worker && x->ok_cpi && x->cpu >= 0)
				x->ok_nice = !q->iov[at[i][0]].err;
		}
	}
	for (size_t i = 0; i < k; i++) {
		struct kname *x = &kn[i];
		struct vmw_proc *p = &ws->procs[x->idx];
		char buf[64], base[64];
		int off;

		ws->raw[x->idx].name_read = !x->failed;
		if (!x->worker) {
			if (x->ok_name && x->name[0])
				memcpy(p->comm, x->name, sizeof(p->comm));
			continue;
		}
		if (!x->ok_ptr || !x->ok_pool)
			continue;
		snprintf(base, sizeof(base), "%s", p->comm);
		if (l->worker_ids)
			worker_id_name(x, base, sizeof(base));
		off = snprintf(buf, sizeof(buf), "%s", base);
		if (x->pool && kaddr(l, x->pool) && x->ok_desc && x->desc[0] && off >= 0 &&
		    (size_t)off < sizeof(buf))
			snprintf(buf + off, sizeof(buf) - (size_t)off, "%c%s", x->ok_cur && x->cur_work ? '+' : '-',
				 x->desc);
		memcpy(p->comm, buf, sizeof(p->comm));
	}
}

/*
 * A kernel thread that has not run since the last walk has the name that
 * walk made (when all its reads succeeded): the same task, not running or
 * runnable, its runtime the same. Only the thread itself changes what its
 * name is made of (its comm, its worker's description and current work;
 * its kthread's full name, its worker's pool, id and rescuer's workqueue
 * are set when it is created), and a kernel thread has no /proc/PID/comm
 * that another process may write. Then the name is copied, not read.
 */
static bool kname_reuse(struct vmw_linux *l, struct vmw_proc *p, struct raw *rw)
{
	const struct last_cmd *c;

	if (!rw->last || !l->order_cmd_ok)
		return false;
	c = &l->order_cmd[rw->last - l->order];
	if (c->mm || c->len == UINT32_MAX || c->len >= sizeof(p->comm) || c->runtime != p->runtime_ns ||
	    !rw->alive || rw->on_cpu || p->state == 'R')
		return false;
	memcpy(p->comm, cmd_text(l, l->norder) + c->off, c->len);
	p->comm[c->len] = '\0';
	rw->name_read = true;
	return true;
}

/* The batch's buffers are on the stack: a heap block allocated per walk
 * lands in a different free chunk from walk to walk, and a sampler's heap
 * pages, once touched, stay resident (measured: +70 KiB a sampler). */
static void read_kthread_names(struct vmw_linux *l, struct walk_state *ws)
{
	struct kqueue q;
	struct kname kn[KN_BATCH];

	if (!l->kthread.data.ok)
		return;
	for (size_t next = 0; next < ws->n;) {
		size_t k = 0;

		for (; next < ws->n && k < KN_BATCH; next++) {
			const struct vmw_proc *p = &ws->procs[next];
			const struct raw *rw = &ws->raw[next];
			bool worker = rw->flags & PF_WQ_WORKER;

			if (!p->kthread || !kaddr(l, rw->kthread))
				continue;
			if (worker ? !l->worker.pool.ok || !l->worker.desc.ok : !l->kthread.full_name.ok)
				continue;
			if (kname_reuse(l, &ws->procs[next], &ws->raw[next]))
				continue;
			kn[k] = (struct kname){ .idx = next, .worker = worker };
			k++;
		}
		if (k)
			kthread_names_batch(l, ws, kn, k, &q);
	}
}

/* Up to size bytes from addr, page by page, stopping at the first unreadable
 * page (like access_remote_vm); returns the bytes read. */
static size_t read_user_upto(struct vmw_xlat *ux, uint64_t addr, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size) {
		size_t chunk = MIN(size - got, 4096 - ((addr + got) & 4095));
		if (vmw_xlat_read(ux, addr + got, buf + got, chunk) < 0)
			break;
		got += chunk;
	}
	return got;
}

char **vmw_argv_alloc(size_t argc, size_t bytes, char **text)
{
	size_t ptrs, total;
	char **argv;

	if (argc > SIZE_MAX / sizeof(char *) - 1)
		return NULL;
	ptrs = (argc + 1) * sizeof(char *);
	if (bytes > SIZE_MAX - ptrs)
		return NULL;
	total = ptrs + bytes;
	if (!(argv = malloc(total ? total : 1)))
		return NULL;
	memset(argv, 0, ptrs);
	*text = (char *)argv + ptrs;
	return argv;
}

/* argv[] from the NUL-separated bytes buf[0..len) (buf[len] is a NUL), in
 * one allocation. */
static char **split_args(const char *buf, size_t len)
{
	size_t argc = 0, i = 0, k = 0;
	char **argv, *text;

	for (size_t j = 0; j < len; j++)
		argc += buf[j] == '\0';
	if (len && buf[len - 1] != '\0')
		argc++;  /* unterminated last argument: keep what is there */
	if (!(argv = vmw_argv_alloc(argc, len + 1, &text)))
		return NULL;
	memcpy(text, buf, len + 1);
	while (i < len && k < argc) {
		argv[k++] = text + i;
		i += strlen(text + i) + 1;
	}
	return argv;
}

/*
 * Stage 4b: argv from the process's own memory, through its page tables, the
 * way get_mm_cmdline() of fs/proc/base.c shows it: the bytes of
 * [arg_start, arg_end), unless the last of them is not a NUL. Then the
 * process rewrote its arguments (setproctitle, as sshd does) and /proc shows
 * one string: up to a page from arg_start, cut at its first NUL
 * (get_mm_proctitle).
 */
static void read_cmdline(struct vmw_linux *l, struct vmw_proc *p, const struct raw *rw)
{
	const uint64_t start = rw->arg_start, end = rw->arg_end;
	uint64_t pgd_phys;
	struct vmw_xlat *ux = NULL;
	char *buf = NULL;
	size_t len;

	if (!rw->mm)
		return;
	if (end <= start || kaddr(l, start))
		return;
	if (vmw_xlat_v2p(l->kx, rw->pgd, &pgd_phys, NULL) < 0)
		return;
	len = MIN(end - start, (uint64_t)MAX_CMDLINE);
	if (vmw_xlat_clone(l->kx, pgd_phys, &ux) < 0)
		return;
	buf = malloc(MAX(len, (size_t)4096) + 1);
	if (!buf || vmw_xlat_read(ux, start, buf, len) < 0)
		goto out;
	if (end - start > len || buf[len - 1] != '\0') {
		char last = 1;
		if (end - start > len && vmw_xlat_read(ux, end - 1, &last, 1) < 0)
			goto out;
		if (last) {
			/* The proctitle case: one string of at most a page. */
			len = read_user_upto(ux, start, buf, 4096);
			if (!len)
				goto out;  /* nothing readable at arg_start: /proc shows nothing */
			len = strnlen(buf, len);
			buf[len++] = '\0';
		}
	}
	buf[len] = '\0';
	p->cmdline = split_args(buf, len);
out:
	free(buf);
	vmw_xlat_free(ux);
}

/*
 * Command lines of many processes at once. Reading one is a chain of
 * dependent reads (four page-table levels, then the page; arg_start, arg_end
 * and the page-table root came with stage 2's read of the mm), and a walk
 * reads one per process: here each step is one batched read for CMD_BATCH
 * processes (vmw_xlat_walk_many), so the misses of different processes
 * overlap. The common case only: the
 * arguments within one page, NUL-terminated, at most a page long. Anything
 * else (a proctitle, arguments across pages, a failed read) is read again
 * by read_cmdline, which decides what /proc would show.
 */
#define CMD_BATCH 64

/*
 * Can the process's command line have changed since the last walk read it?
 * Only the process itself writes its arguments (they are in its own stack;
 * exec gives it another mm; prctl moves their bounds), so not while it has
 * not run: the same task with the same mm, the mm its alone (mm_users 1: one
 * thread, no other process sharing it through CLONE_VM or vfork), not
 * running or runnable now, and its runtime (its exited threads' too) the
 * same. A task that runs adds to its runtime when it is switched out, and
 * one seen asleep has been switched out. What does not hold: another
 * process writing into its memory (a debugger, process_vm_writev) while it
 * sleeps shows when it next runs (docs/ARCHITECTURE.md).
 */
static const struct last_cmd *cmdline_unchanged(const struct vmw_linux *l, const struct vmw_proc *p,
						 const struct raw *rw)
{
	const struct last_cmd *c;

	if (!rw->last || !l->order_cmd_ok)
		return NULL;
	c = &l->order_cmd[rw->last - l->order];
	return c->len != UINT32_MAX && rw->mm_alone && p->nr_threads == 1 && c->mm == rw->mm &&
	       c->runtime == p->runtime_ns && rw->alive && !rw->on_cpu && p->state != 'R' ? c : NULL;
}

static void read_cmdlines(struct vmw_linux *l, struct walk_state *ws)
{
	struct vmw_xlat_walk xw[CMD_BATCH];
	struct vmw_phys_iov piov[CMD_BATCH];
	size_t len[CMD_BATCH];         /* 0: not batched */
	size_t step[CMD_BATCH];        /* 1 + its walk, then 1 + its data read */
	char *buf[CMD_BATCH];
	size_t who[CMD_BATCH];

	for (size_t next = 0; next < ws->n;) {
		size_t k = 0, nw = 0, np = 0;

		for (; next < ws->n && k < CMD_BATCH; next++) {
			struct vmw_proc *p = &ws->procs[next];
			const struct raw *rw = &ws->raw[next];
			const struct last_cmd *c;

			if (!rw->mm)
				continue;
			if ((c = cmdline_unchanged(l, p, rw)))
				p->cmdline = split_args(cmd_text(l, l->norder) + c->off, c->len);
			else
				who[k++] = next;
		}
		for (size_t i = 0; i < k; i++) {
			const struct raw *rw = &ws->raw[who[i]];
			uint64_t root;

			len[i] = 0;
			buf[i] = NULL;
			/* What read_cmdline takes as "no command line" is left to it. */
			if (rw->arg_end <= rw->arg_start || kaddr(l, rw->arg_start) || rw->arg_end - rw->arg_start > 4096 ||
			    vmw_xlat_v2p(l->kx, rw->pgd, &root, NULL) < 0)
				continue;
			len[i] = (size_t)(rw->arg_end - rw->arg_start);
			xw[nw++] = (struct vmw_xlat_walk){ .root = root, .va = rw->arg_start };
			step[i] = nw;
		}
		vmw_xlat_walk_many(l->kx, xw, nw);
		for (size_t i = 0; i < k; i++) {
			struct vmw_xlat_walk *x;

			if (!len[i])
				continue;
			x = &xw[step[i] - 1];
			if (x->err || len[i] > x->avail || !(buf[i] = malloc(len[i] + 1)))
				continue;
			piov[np++] = (struct vmw_phys_iov){ x->phys, buf[i], len[i], 0 };
			step[i] = np;
		}
		(void)vmw_mem_readv(vmw_xlat_mem(l->kx), piov, np);
		for (size_t i = 0; i < k; i++) {
			struct vmw_proc *p = &ws->procs[who[i]];

			if (buf[i] && !piov[step[i] - 1].err && buf[i][len[i] - 1] == '\0') {
				buf[i][len[i]] = '\0';
				p->cmdline = split_args(buf[i], len[i]);
			} else {
				read_cmdline(l, p, &ws->raw[who[i]]);
			}
			free(buf[i]);
		}
	}
}

void vmw_proc_release(struct vmw_proc *p)
{
	free(p->cmdline);
	free(p->threads);
	vmw_rcstr_unref(p->cgroup);
	p->cgroup = NULL;
	vmw_rcstr_unref(p->cgroups_v1);
	p->cgroups_v1 = NULL;
	p->cmdline = NULL;
	p->threads = NULL;
	p->nthreads_listed = 0;
}

static void free_procs(struct vmw_proc *procs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vmw_proc_release(&procs[i]);
	free(procs);
}

int vmw_linux_walk(struct vmw_linux *l, unsigned flags, struct vmw_walk *w, struct vmw_error *err)
{
	struct walk_state ws = { .hint = MIN(l->last_nprocs, (size_t)MAX_PROCS) };
	uint64_t t0 = vmw_now_ns();
	struct vmw_mem_stats s0, s1;
	struct readahead ra;
	uint8_t *img;
	int r;

	memset(w, 0, sizeof(*w));
	vmw_mem_stats(vmw_xlat_mem(l->kx), &s0);
	vmw_xlat_flush(l->kx);
	img = calloc(1, l->task_plan.span + 8);
	if (!img)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	ra_init(l, &ra);

	for (;;) {
		r = walk_tasks(l, &ws, w, img, &ra);
		if (r != -EAGAIN || w->restarts >= MAX_RESTARTS)
			break;
		w->restarts++;
		/* Stage 1 holds nothing allocated in a record: zero them for the new try. */
		if (ws.n) {
			memset(ws.procs, 0, ws.n * sizeof(*ws.procs));
			memset(ws.raw, 0, ws.n * sizeof(*ws.raw));
		}
		ws.n = 0;
		w->skipped = 0;
		ra.pos = ra.n = ra.next = 0;
	}
	ra_free(&ra);
	if (r == -EAGAIN) {
		w->truncated = true;
		snprintf(w->truncated_why, sizeof(w->truncated_why),
			 "task list kept changing under the walk (%zu restarts)", w->restarts);
		r = 0;
	}
	if (r < 0) {
		free(img);
		free_procs(ws.procs, ws.n);
		free(ws.raw);
		if (r == -ESRCH)
			return vmw_error_set(err, r, "the QEMU process is gone");
		return vmw_error_set(err, r, "cannot read the guest's task list (init_task at 0x%llx)",
				     (unsigned long long)l->init_task);
	}

	read_details(l, &ws, 4096);
	size_t budget = MAX_THREAD_READS;

	for (size_t i = 0; i < ws.n; i++) {
		struct vmw_proc *p = &ws.procs[i];
		struct raw *rw = &ws.raw[i];
		bool list = flags & VMW_WALK_THREADS;

		if (rw->signal && (list || p->nr_threads > 1 || !rw->alive)) {
			/* Stage 3 adds non-leader threads; the leader was counted in stage 1. */
			size_t n = 0;
			if (walk_threads(l, p, rw, list, img, &budget, &n) < 0) {
				/* A cut or looping thread list: what was read stays, flagged. */
				w->skipped++;
				p->incomplete = true;
			}
			if (p->nr_threads > PID_MAX_LIMIT) {
				/* No kernel has more threads than pids: show what the list holds. */
				p->nr_threads = (uint32_t)n;
				p->incomplete = true;
			}
			if (!budget && !w->truncated) {
				w->truncated = true;
				snprintf(w->truncated_why, sizeof(w->truncated_why),
					 "more than %u thread records in one walk", MAX_THREAD_READS);
			}
		}
		p->runtime_ns = rw->runtime;
		set_acc(l, p, rw);
		vmw_linux_cputime_adjust(rw->runtime, rw->utime, rw->stime, rw->prev_utime,
					 rw->prev_stime, &p->utime_ns, &p->stime_ns);
	}
	read_kthread_names(l, &ws);
	if (flags & VMW_WALK_CMDLINE)
		read_cmdlines(l, &ws);
	read_cgroups(l, &ws);
	/* Command lines and names are not kept from a model's first walk (no order yet):
	 * it runs amid the attach's transient memory (symbols, BTF), and a
	 * block kept from then would sit above it and keep the heap from
	 * shrinking when that is freed (the agent's samplers trim after their
	 * first frame: +28 KiB each, measured). */
	bool first = !l->order;
	ra_remember(l, &ws);
	l->order_cmd_ok = false;
	if (!first)
		cmd_remember(l, &ws);
	free(img);
	free(ws.raw);
	for (size_t i = 0; i < ws.n; i++)
		w->incomplete += ws.procs[i].incomplete;
	fill_users(l, ws.procs, ws.n);
	w->procs = ws.procs;
	w->nprocs = ws.n;
	l->last_nprocs = ws.n;
	vmw_mem_stats(vmw_xlat_mem(l->kx), &s1);
	w->bytes_read = s1.bytes_read - s0.bytes_read;
	w->walk_ns = vmw_now_ns() - t0;
	return 0;
}

void vmw_walk_free(struct vmw_walk *w)
{
	free_procs(w->procs, w->nprocs);
	memset(w, 0, sizeof(*w));
}
