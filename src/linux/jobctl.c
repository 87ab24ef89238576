/* SPDX-License-Identifier: MIT */
/*
 * jobctl.c - a process's job-control identity as /proc/PID/stat fields 5-8
 * show it (fs/proc/array.c do_task_stat): its process group and session
 * (signal->pids[PIDTYPE_PGID] and [PIDTYPE_SID], each a struct pid whose
 * number in the initial namespace is numbers[0].nr), its controlling
 * terminal (signal->tty: new_encode_dev(tty_devnum(tty))) and that
 * terminal's foreground process group (tty->ctrl.pgrp, before 5.17
 * tty->pgrp).
 *
 * Everything here is optional: a kernel whose BTF lacks a member leaves the
 * values unknown (jobctl_ok / tty_ok false), and so does a pointer that is
 * not a kernel address, a read that fails, or a number no kernel can hold.
 * The process groups and sessions of a batch are read in one batched read;
 * terminals are few and shared, each read once per walk.
 */
#include "linux/linux_internal.h"

#define PID_MAX_LIMIT (4 * 1024 * 1024)
#define MINORBITS 20
#define MINORMASK ((1u << MINORBITS) - 1)
#define TTY_CACHE 64   /* distinct terminals remembered in one walk */

void vmw_jobctl_resolve(struct vmw_kernel *k, struct vmw_jobctl *jc)
{
	struct fld numbers, nr;
	int64_t pgid, sid;

	memset(jc, 0, sizeof(*jc));
	jc->ok = member(k, "signal_struct", "pids", &jc->sig_pids) == 0 &&
		 member(k, "pid", "numbers", &numbers) == 0 && member(k, "upid", "nr", &nr) == 0 &&
		 nr.size == 4 && vmw_kernel_enum_value(k, "PIDTYPE_PGID", &pgid) == 0 &&
		 vmw_kernel_enum_value(k, "PIDTYPE_SID", &sid) == 0 && pgid >= 0 && sid >= 0 &&
		 (uint64_t)pgid * 8 + 8 <= jc->sig_pids.size && (uint64_t)sid * 8 + 8 <= jc->sig_pids.size;
	if (!jc->ok)
		return;
	/* Both offsets are bounded by the kernel layer (1 MiB): no wrap. */
	jc->pid_nr = (struct fld){ numbers.off + nr.off, 4, true };
	jc->pgid_off = jc->sig_pids.off + (uint32_t)pgid * 8;
	jc->sid_off = jc->sig_pids.off + (uint32_t)sid * 8;
	jc->tty_ok = member(k, "signal_struct", "tty", &jc->sig_tty) == 0 && jc->sig_tty.size == 8 &&
		     member(k, "tty_struct", "index", &jc->tty_index) == 0 && jc->tty_index.size == 4 &&
		     member(k, "tty_struct", "driver", &jc->tty_driver) == 0 && jc->tty_driver.size == 8 &&
		     (member(k, "tty_struct", "ctrl.pgrp", &jc->tty_pgrp) == 0 ||
		      member(k, "tty_struct", "pgrp", &jc->tty_pgrp) == 0) && jc->tty_pgrp.size == 8 &&
		     member(k, "tty_driver", "major", &jc->drv_major) == 0 && jc->drv_major.size == 4 &&
		     member(k, "tty_driver", "minor_start", &jc->drv_minor_start) == 0 &&
		     jc->drv_minor_start.size == 4;
}

uint32_t vmw_linux_tty_nr(uint32_t major, uint32_t minor_start, uint32_t index)
{
	/* tty_devnum(): MKDEV(major, minor_start) + index, then new_encode_dev(). */
	uint32_t dev = ((major << MINORBITS) | (minor_start & MINORMASK)) + index;
	uint32_t ma = dev >> MINORBITS, mi = dev & MINORMASK;

	return (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
}

/* numbers[0].nr of a struct pid (0 for none, like pid_nr_ns(NULL)); false
 * when it cannot be read or is no pid number. */
static bool pid_number(const struct vmw_jobctl *jc, struct vmw_xlat *kx, uint64_t kspace, uint64_t pid,
		       int32_t *ret)
{
	int32_t nr;

	if (!pid) {
		*ret = 0;
		return true;
	}
	if (pid < kspace || vmw_xlat_read(kx, pid + jc->pid_nr.off, &nr, 4) < 0 || nr < 0 ||
	    nr > PID_MAX_LIMIT)
		return false;
	*ret = nr;
	return true;
}

/* One terminal's tty_nr and foreground group; false when unreadable. */
static bool read_tty(const struct vmw_jobctl *jc, struct vmw_xlat *kx, uint64_t kspace, uint64_t tty,
		     uint32_t *tty_nr, int32_t *tpgid)
{
	uint64_t driver, pgrp;
	int32_t index, major, minor_start;

	if (tty < kspace || vmw_xlat_read(kx, tty + jc->tty_index.off, &index, 4) < 0 ||
	    vmw_xlat_read(kx, tty + jc->tty_driver.off, &driver, 8) < 0 ||
	    vmw_xlat_read(kx, tty + jc->tty_pgrp.off, &pgrp, 8) < 0 || driver < kspace ||
	    vmw_xlat_read(kx, driver + jc->drv_major.off, &major, 4) < 0 ||
	    vmw_xlat_read(kx, driver + jc->drv_minor_start.off, &minor_start, 4) < 0)
		return false;
	/* dev_t has 12 bits of major and 20 of minor. */
	if (index < 0 || (uint32_t)index > MINORMASK || major < 0 || major > 0xfff || minor_start < 0 ||
	    (uint32_t)minor_start > MINORMASK)
		return false;
	*tty_nr = vmw_linux_tty_nr((uint32_t)major, (uint32_t)minor_start, (uint32_t)index);
	return pid_number(jc, kx, kspace, pgrp, tpgid);
}

struct tty_seen {
	uint64_t tty;
	uint32_t tty_nr;
	int32_t tpgid;
	bool ok;
};

void vmw_jobctl_read(const struct vmw_jobctl *jc, struct vmw_xlat *kx, uint64_t kspace,
		     struct vmw_proc *procs, const struct vmw_jobctl_raw *raw, size_t n)
{
	struct tty_seen cache[TTY_CACHE];
	struct vmw_virt_iov *iov;
	int32_t *nr;
	size_t *slot, k = 0, ncache = 0;

	if (!jc->ok || !n)
		return;
	iov = calloc(2 * n, sizeof(*iov));
	nr = calloc(2 * n, sizeof(*nr));
	slot = calloc(2 * n, sizeof(*slot));
	if (!iov || !nr || !slot)
		goto out;
	/* The struct pids of every process's group and session, in one batched
	 * read, each once: processes share them (a session's, a group's, and
	 * every kernel thread's init_struct_pid), and each piece read costs a
	 * translation and a copy call. NULL reads as 0 (pid_nr_ns(NULL)); a
	 * non-kernel address is not read (SIZE_MAX). */
	for (size_t i = 0; i < 2 * n; i++) {
		uint64_t pid = raw[i / 2].pid[i % 2], at = pid + jc->pid_nr.off;
		size_t q;

		slot[i] = SIZE_MAX;
		if (!pid || pid < kspace)
			continue;
		for (q = 0; q < k && iov[q].addr != at; q++)
			;
		if (q == k)
			iov[k++] = (struct vmw_virt_iov){ at, &nr[q], 4, 0 };
		slot[i] = q;
	}
	vmw_xlat_readv(kx, iov, k);
	for (size_t i = 0; i < n; i++) {
		struct vmw_proc *p = &procs[i];
		bool ok = raw[i].valid;
		int32_t v[2] = { 0, 0 };

		for (int j = 0; j < 2; j++) {
			size_t q = slot[2 * i + j];
			if (!raw[i].pid[j])
				continue;
			ok = ok && q != SIZE_MAX && !iov[q].err && nr[q] >= 0 && nr[q] <= PID_MAX_LIMIT;
			v[j] = ok ? nr[q] : 0;
		}
		if (!ok)
			continue;
		p->pgrp = v[0];
		p->session = v[1];
		p->jobctl_ok = true;
		if (!jc->tty_ok)
			continue;
		p->tty_nr = 0;
		p->tpgid = -1;
		if (raw[i].tty) {
			size_t c;
			for (c = 0; c < ncache && cache[c].tty != raw[i].tty; c++)
				;
			if (c == ncache) {
				uint32_t tty_nr = 0;
				int32_t tpgid = -1;
				bool tok = read_tty(jc, kx, kspace, raw[i].tty, &tty_nr, &tpgid);
				if (ncache == TTY_CACHE) {   /* full: this one uncached */
					p->tty_nr = tty_nr;
					p->tpgid = tpgid;
					p->tty_ok = tok;
					continue;
				}
				cache[ncache++] = (struct tty_seen){ raw[i].tty, tty_nr, tpgid, tok };
			}
			p->tty_nr = cache[c].tty_nr;
			p->tpgid = cache[c].tpgid;
			p->tty_ok = cache[c].ok;
		} else {
			p->tty_ok = true;
		}
	}
out:
	free(iov);
	free(nr);
	free(slot);
}
