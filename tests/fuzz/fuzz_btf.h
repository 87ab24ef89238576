/* SPDX-License-Identifier: MIT */
/*
 * fuzz_btf.h - the BTF queries the Linux model makes (src/linux/linux.c and
 * src/linux/summary.c), asked on one parsed BTF with the functions the
 * kernel layer answers them with (vmw_btf_member, vmw_btf_member_bits,
 * vmw_btf_type_size, vmw_btf_enum_value, vmw_btf_tk_core), and the invariants
 * their answers must keep. Shared by the libFuzzer target (fuzz_btf.c) and
 * the seed maker (make_btf_seed.c), which checks that a reduced BTF answers
 * exactly as the whole one does.
 */
#pragma once

#include "kernel/kernel_internal.h"

#include <bpf/btf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "type member" (dotted paths allowed) the models ask for. */
static const char *const fuzz_btf_members[][2] = {
	{ "task_struct", "tasks" }, { "task_struct", "pid" }, { "task_struct", "tgid" },
	{ "task_struct", "comm" }, { "task_struct", "__state" }, { "task_struct", "state" },
	{ "task_struct", "exit_state" }, { "task_struct", "flags" }, { "task_struct", "prio" },
	{ "task_struct", "static_prio" }, { "task_struct", "real_parent" },
	{ "task_struct", "real_cred" }, { "task_struct", "mm" }, { "task_struct", "signal" },
	{ "task_struct", "utime" }, { "task_struct", "stime" },
	{ "task_struct", "se.sum_exec_runtime" }, { "task_struct", "thread_node" },
	{ "task_struct", "start_boottime" }, { "task_struct", "real_start_time" },
	{ "task_struct", "prev_cputime.utime" }, { "task_struct", "prev_cputime.stime" },
	{ "task_struct", "cpu" }, { "task_struct", "thread_info.cpu" },
	{ "task_struct", "worker_private" }, { "task_struct", "set_child_tid" },
	{ "cred", "uid" }, { "cred", "euid" }, { "cred", "gid" }, { "cred", "egid" },
	{ "mm_struct", "rss_stat" }, { "mm_struct", "total_vm" }, { "mm_struct", "arg_start" },
	{ "mm_struct", "arg_end" }, { "mm_struct", "pgd" },
	{ "percpu_counter", "count" }, { "percpu_counter", "counters" },
	{ "signal_struct", "nr_threads" }, { "signal_struct", "utime" },
	{ "signal_struct", "stime" }, { "signal_struct", "sum_sched_runtime" },
	{ "signal_struct", "thread_head" }, { "signal_struct", "prev_cputime.utime" },
	{ "signal_struct", "prev_cputime.stime" },
	{ "kthread", "data" }, { "kthread", "full_name" },
	{ "worker", "pool" }, { "worker", "desc" }, { "worker", "current_work" },
	{ "worker", "rescue_wq" }, { "worker", "id" },
	{ "worker_pool", "cpu" }, { "worker_pool", "id" }, { "worker_pool", "attrs" },
	{ "workqueue_attrs", "nice" }, { "workqueue_struct", "name" },
	{ "pid_namespace", "idr" }, { "idr", "idr_next" },
	{ "kernel_cpustat", "cpustat" },
	{ "seqcount_raw_spinlock", "seqcount.sequence" },
	{ "timekeeper", "tkr_mono.base" }, { "timekeeper", "tkr_mono.xtime_nsec" },
	{ "timekeeper", "tkr_mono.shift" }, { "timekeeper", "offs_real" },
	{ "timekeeper", "offs_boot" }, { "timekeeper", "xtime_interval" },
	{ "tick_sched", "idle_sleeptime" }, { "tick_sched", "iowait_sleeptime" },
	{ "tick_sched", "idle_entrytime" }, { "tick_sched", "idle_exittime" },
	{ "tick_sched", "idle_waketime" }, { "tick_sched", "idle_sleeptime_seq.sequence" },
	{ "tick_sched", "flags" }, { "tick_sched", "idle_active" },
	{ "rq", "nr_running" }, { "rq", "nr_switches" }, { "rq", "nr_iowait" },
	{ "context_tracking", "active" },
	{ "zone", "watermark_boost" }, { "zone", "_watermark" }, { "pglist_data", "node_zones" },
	{ "super_block", "s_inodes" }, { "inode", "i_sb_list" }, { "inode", "i_mapping" },
	{ "inode", "i_data" }, { "address_space", "nrpages" },
	{ "swap_info_struct", "flags" }, { "swap_info_struct", "inuse_pages" },
	/* malformed paths the functions must refuse cleanly */
	{ "task_struct", "se." }, { "task_struct", ".pid" }, { "task_struct", "se..vruntime" },
	{ "task_struct", "comm.x" }, { "task_struct", "" },
};

/* Types whose size is asked for (besides those above). */
static const char *const fuzz_btf_types[] = {
	"task_struct", "cred", "mm_struct", "mm_rss_stat", "percpu_counter", "signal_struct",
	"kthread", "worker", "worker_pool", "workqueue_attrs", "workqueue_struct",
	"pid_namespace", "idr", "kernel_cpustat", "seqcount_raw_spinlock", "timekeeper",
	"tick_sched", "rq", "context_tracking", "zone", "pglist_data", "nodemask_t",
	"super_block", "inode", "address_space", "swap_info_struct",
};

static const char *const fuzz_btf_enums[] = {
	"MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES",
	"CPUTIME_USER", "CPUTIME_NICE", "CPUTIME_SYSTEM", "CPUTIME_IDLE", "CPUTIME_IOWAIT",
	"CPUTIME_IRQ", "CPUTIME_SOFTIRQ", "CPUTIME_STEAL", "CPUTIME_GUEST", "CPUTIME_GUEST_NICE",
	"NR_VM_ZONE_STAT_ITEMS", "NR_VM_NODE_STAT_ITEMS", "NR_FREE_PAGES", "NR_FILE_PAGES",
	"NR_ACTIVE_FILE", "NR_INACTIVE_FILE", "NR_SHMEM", "NR_SLAB_RECLAIMABLE_B",
	"NR_SLAB_RECLAIMABLE", "NR_KERNEL_MISC_RECLAIMABLE", "NR_SWAPCACHE", "WMARK_LOW",
	"NR_WMARK", "__MAX_NR_ZONES", "N_ONLINE", "SWP_USED", "SWP_WRITEOK",
};

#define FUZZ_BTF_NM (sizeof(fuzz_btf_members) / sizeof(fuzz_btf_members[0]))
#define FUZZ_BTF_NT (sizeof(fuzz_btf_types) / sizeof(fuzz_btf_types[0]))
#define FUZZ_BTF_NE (sizeof(fuzz_btf_enums) / sizeof(fuzz_btf_enums[0]))

/* Every answer, to compare two BTFs (seed maker) and to print (FUZZ_VERBOSE). */
struct fuzz_btf_answers {
	int m_rc[FUZZ_BTF_NM], b_rc[FUZZ_BTF_NM], t_rc[FUZZ_BTF_NT], e_rc[FUZZ_BTF_NE], tk_rc;
	uint32_t m_off[FUZZ_BTF_NM], m_size[FUZZ_BTF_NM], b_off[FUZZ_BTF_NM], b_size[FUZZ_BTF_NM];
	uint32_t t_size[FUZZ_BTF_NT];
	int64_t e_val[FUZZ_BTF_NE];
	uint32_t tk_size, tk_off, tk_seq;
};

#define FUZZ_BTF_CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_btf: invariant broken: %s: ", #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} \
} while (0)

/* Ask the member queries i with i % stride == phase (all: stride 1), every
 * type size and enumerator, and tk_core; abort on a broken invariant. */
static inline void fuzz_btf_ask(const struct btf *btf, struct fuzz_btf_answers *a, size_t stride,
				size_t phase)
{
	memset(a, 0, sizeof(*a));
	for (size_t i = phase % stride; i < FUZZ_BTF_NM; i += stride) {
		const char *type = fuzz_btf_members[i][0], *name = fuzz_btf_members[i][1];
		uint32_t tsize = 0;
		int trc = vmw_btf_type_size(btf, type, &tsize);

		a->m_rc[i] = vmw_btf_member(btf, type, name, &a->m_off[i], &a->m_size[i]);
		a->b_rc[i] = vmw_btf_member_bits(btf, type, name, &a->b_off[i], &a->b_size[i]);
		if (a->m_rc[i] == 0) {
			/* the member lies inside its (outermost) structure */
			FUZZ_BTF_CHECK(trc == 0, "%s.%s found, type size rc %d", type, name, trc);
			FUZZ_BTF_CHECK((uint64_t)a->m_off[i] + a->m_size[i] <= tsize,
				       "%s.%s at %u size %u in %u bytes", type, name, a->m_off[i],
				       a->m_size[i], tsize);
			/* and the bit query agrees, or refuses what 32 bits cannot hold */
			bool wide = ((uint64_t)a->m_off[i] + a->m_size[i]) * 8 > UINT32_MAX;
			FUZZ_BTF_CHECK(wide ? a->b_rc[i] == -EBADMSG :
				       a->b_rc[i] == 0 && a->b_off[i] == (uint64_t)a->m_off[i] * 8 &&
				       a->b_size[i] == (uint64_t)a->m_size[i] * 8,
				       "%s.%s: member %u+%u, bits rc %d %u+%u", type, name, a->m_off[i],
				       a->m_size[i], a->b_rc[i], a->b_off[i], a->b_size[i]);
		}
		if (a->b_rc[i] == 0) {
			FUZZ_BTF_CHECK(trc == 0, "%s.%s bits found, type size rc %d", type, name, trc);
			FUZZ_BTF_CHECK((uint64_t)a->b_off[i] + a->b_size[i] <= (uint64_t)tsize * 8,
				       "%s.%s at bit %u size %u in %u bytes", type, name, a->b_off[i],
				       a->b_size[i], tsize);
		}
		FUZZ_BTF_CHECK(a->m_rc[i] <= 0 && a->b_rc[i] <= 0, "%s.%s", type, name);
	}
	for (size_t i = 0; i < FUZZ_BTF_NT; i++)
		a->t_rc[i] = vmw_btf_type_size(btf, fuzz_btf_types[i], &a->t_size[i]);
	for (size_t i = 0; i < FUZZ_BTF_NE; i++)
		a->e_rc[i] = vmw_btf_enum_value(btf, fuzz_btf_enums[i], &a->e_val[i]);
	a->tk_rc = vmw_btf_tk_core(btf, &a->tk_size, &a->tk_off, &a->tk_seq);
	if (a->tk_rc == 0) {
		uint32_t tks = 0;
		FUZZ_BTF_CHECK(vmw_btf_type_size(btf, "timekeeper", &tks) == 0 &&
			       (uint64_t)a->tk_off + tks <= a->tk_size && (uint64_t)a->tk_seq + 4 <= a->tk_size,
			       "tk_core of %u bytes: timekeeper (%u bytes) at %u, seq at %u",
			       a->tk_size, tks, a->tk_off, a->tk_seq);
	}
}

static inline void fuzz_btf_print(FILE *f, const struct fuzz_btf_answers *a)
{
	for (size_t i = 0; i < FUZZ_BTF_NM; i++)
		fprintf(f, "M %s %s: %d %u %u | %d %u %u\n", fuzz_btf_members[i][0],
			fuzz_btf_members[i][1], a->m_rc[i], a->m_off[i], a->m_size[i], a->b_rc[i],
			a->b_off[i], a->b_size[i]);
	for (size_t i = 0; i < FUZZ_BTF_NT; i++)
		fprintf(f, "S %s: %d %u\n", fuzz_btf_types[i], a->t_rc[i], a->t_size[i]);
	for (size_t i = 0; i < FUZZ_BTF_NE; i++)
		fprintf(f, "E %s: %d %" PRId64 "\n", fuzz_btf_enums[i], a->e_rc[i], a->e_val[i]);
	fprintf(f, "T tk_core: %d %u %u %u\n", a->tk_rc, a->tk_size, a->tk_off, a->tk_seq);
}
