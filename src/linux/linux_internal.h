/* SPDX-License-Identifier: MIT */
/*
 * linux_internal.h - what the process model (linux.c) and the guest summary
 * (summary.c) share: a structure member as BTF describes it, and reading it
 * out of a copy of the structure. Not part of the layer's interface (that is
 * linux.h and summary.h).
 */
#pragma once

#include "linux/linux.h"

#include <errno.h>
#include <string.h>

/* A member of a kernel structure: offset and size from BTF; ok is false when
 * this kernel does not have it (its value then reads as 0). */
struct fld {
	uint32_t off, size;
	bool ok;
};

/* Lowest address of the kernel half of the guest's address space: a
 * "pointer" below it is not a kernel pointer, whatever guest memory says. */
static inline uint64_t kernel_space_start(const struct vmw_kernel *k)
{
	return vmw_kernel_info(k)->paging_levels == 5 ? 0xff00000000000000ull : 0xffff800000000000ull;
}

/* Look the member up in BTF; f->ok records whether it exists. 0 or -ENOENT. */
static inline int member(struct vmw_kernel *k, const char *type, const char *name, struct fld *f)
{
	int r = vmw_kernel_member(k, type, name, &f->off, &f->size);
	f->ok = r == 0;
	return r;
}

/* Unsigned little-endian value of 1, 2, 4 or 8 bytes at p (other sizes read 8). */
static inline uint64_t get_at(const uint8_t *p, uint32_t size)
{
	uint64_t v = 0;
	switch (size) {
	case 1: v = p[0]; break;
	case 2: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
	case 4: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
	case 8: memcpy(&v, p, 8); break;
	/* Other sizes come only from odd (or hostile) BTF: never read past the field. */
	default: memcpy(&v, p, MIN(size, (uint32_t)8)); break;
	}
	return v;
}

/* Member f of the structure copied at base; 0 when the kernel lacks it. */
static inline uint64_t get(const uint8_t *base, struct fld f)
{
	return f.ok ? get_at(base + f.off, f.size) : 0;
}

/* After resolving: refuse BTF one of whose answers was inconsistent, even for
 * a member the reader could do without (hostile types are not half used). */
static inline int check_bad_layout(struct vmw_kernel *k, struct vmw_error *err)
{
	const char *bad = vmw_kernel_bad_layout(k);
	if (!bad)
		return 0;
	return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG,
			      "kernel %s: its BTF gives %s an impossible layout (outside its structure, beyond "
			      "1 MiB, or a member search that does not end): these types are corrupt or "
			      "hostile, and are not used", vmw_kernel_info(k)->release, bad);
}

/* A member without which the reader cannot work: its absence is a missing
 * layout (an error kind of its own), named so that the kernel can be reported. */
#define NEED(k, type, name, f) do { \
	int need_r_ = member(k, type, name, f); \
	if (need_r_ == -EBADMSG) \
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EBADMSG, \
			"kernel %s: its BTF places %s.%s outside the structure (or beyond 1 MiB): " \
			"these types are corrupt or hostile, and are not used", \
			vmw_kernel_info(k)->release, type, name); \
	if (need_r_ < 0 && vmw_kernel_btf_why(k)) \
		return vmw_error_setk(err, VMW_ERR_NO_BTF, need_r_, \
			"kernel %s: its BTF is needed for %s.%s and cannot be used: %s", \
			vmw_kernel_info(k)->release, type, name, vmw_kernel_btf_why(k)); \
	if (need_r_ < 0) \
		return vmw_error_setk(err, VMW_ERR_MISSING_LAYOUT, -ENOENT, \
			"kernel %s: BTF has no %s.%s, which vmwatch needs; please report this kernel", \
			vmw_kernel_info(k)->release, type, name); \
} while (0)

/* ---- job control (jobctl.c): process group, session, controlling terminal */

/* Where a process's job-control identity lives; ok: process group and
 * session readable on this kernel, tty_ok: its terminal too. */
struct vmw_jobctl {
	struct fld sig_pids, sig_tty, pid_nr, tty_index, tty_driver, tty_pgrp, drv_major, drv_minor_start;
	uint32_t pgid_off, sid_off;   /* of signal->pids[PIDTYPE_PGID] and [PIDTYPE_SID] */
	bool ok, tty_ok;
};

/* What a walk read of one process's signal_struct for it. valid: that
 * signal_struct was read. */
struct vmw_jobctl_raw {
	uint64_t pid[2];              /* struct pid * of its process group, session */
	uint64_t tty;                 /* signal->tty */
	bool valid;
};

void vmw_jobctl_resolve(struct vmw_kernel *k, struct vmw_jobctl *jc);
/* Fill pgrp, session, tty_nr, tpgid, jobctl_ok and tty_ok of procs[0..n). */
void vmw_jobctl_read(const struct vmw_jobctl *jc, struct vmw_xlat *kx, uint64_t kspace,
		     struct vmw_proc *procs, const struct vmw_jobctl_raw *raw, size_t n);

/* ---- cgroup v1 hierarchies (cgroup_v1.c): /proc/PID/cgroup's other lines */

#define VMW_CGV1_MAX_ROOTS 16      /* hierarchies read; more: unknown */

/* Where the v1 lines live; ok: readable on this kernel. */
struct vmw_cgv1 {
	struct fld cset_links, link_cgrp, link_cgrp_link, cgrp_root, cgrp_kn, kn_name, kn_parent,
		   root_list, root_mask, root_id, root_name, ss_legacy_name;
	uint64_t a_roots, a_dfl_root, a_subsys;   /* cgroup_roots, cgrp_dfl_root, cgroup_subsys[] */
	uint32_t nsubsys;                         /* CGROUP_SUBSYS_COUNT */
	bool ok;
};

/* Resolve once; cg->ok false when this kernel lacks any of it. */
void vmw_cgv1_resolve(struct vmw_kernel *k, struct vmw_cgv1 *cg);
/* Up to size-1 bytes of a kernel string at addr, not crossing into an
 * unmapped page needlessly, NUL-terminated (possibly cut): 0, or -EFAULT when
 * nothing was readable. */
int vmw_kstring(struct vmw_xlat *kx, uint64_t addr, char *buf, size_t size);
/* The path of a cgroup's kernfs node as /proc/PID/cgroup shows it ("/" for
 * a root, never a name with '/' or '\n'): an owned string or NULL. */
char *vmw_cgv1_kn_path(struct vmw_xlat *kx, uint64_t kspace, struct fld kn_name, struct fld kn_parent,
		       uint64_t kn);
/* The hierarchies mounted now (cgroup_roots), read once per walk. */
struct vmw_cgv1_roots;
struct vmw_cgv1_roots *vmw_cgv1_roots_read(const struct vmw_cgv1 *cg, struct vmw_xlat *kx, uint64_t kspace);
void vmw_cgv1_roots_free(struct vmw_cgv1_roots *r);
/* The v1 lines of a css_set, "ID:controllers:path" joined by '\n' ("" when
 * no v1 hierarchy is mounted): an owned string, NULL when unknown. */
char *vmw_cgv1_lines(const struct vmw_cgv1 *cg, const struct vmw_cgv1_roots *r, struct vmw_xlat *kx,
		     uint64_t kspace, uint64_t css_set);
