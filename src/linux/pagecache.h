/* SPDX-License-Identifier: MIT */
/*
 * pagecache.h - the guest's files as its page cache holds them, read without
 * touching the guest: a path is looked up in the dentry cache from the root
 * of PID 1 (task->fs->root), following symbolic links; the file's inode gives
 * its address_space, whose xarray (i_pages) gives the cached pages, which are
 * read through the direct map.
 *
 * Only what the guest has cached can be read: a path whose dentries are not
 * in the dcache is "not cached" (-ENOENT with that said), a negative dentry
 * is "no such file", and pages missing from the page cache (never read,
 * evicted, swapped out) are holes the result lists. Guest memory is hostile:
 * every walk (a directory's children, the xarray, symlinks) is bounded and
 * cycle-guarded, sizes and indexes are checked, every page must name the
 * file's own address_space and be up to date; what did not add up is a hole
 * and marks the result incomplete.
 *
 * Mount points of PID 1's mount namespace are crossed (a mount's children,
 * mnt_mounts); mounts of other namespaces are not seen.
 */
#pragma once

#include "kernel/kernel.h"

struct vmw_files;

/* A range of the file that is not in the page cache (or was refused). */
struct vmw_file_hole {
	uint64_t off, len;
};

struct vmw_file {
	uint64_t inode;           /* guest address of the inode: its identity */
	uint64_t ino;             /* i_ino */
	uint32_t mode;            /* i_mode (S_IFREG | 0644 ...) */
	uint64_t size;            /* i_size */
	int64_t mtime_sec;        /* i_mtime (0 if this kernel's layout is unknown) */
	uint32_t mtime_nsec;
	uint64_t nrpages;         /* address_space.nrpages */
	uint8_t *data;            /* size bytes (holes read as zeros); NULL from vmw_files_stat */
	uint64_t cached_bytes;    /* bytes of data that came from the page cache */
	struct vmw_file_hole *holes; /* ranges not cached, in order */
	size_t nholes;
	bool incomplete;          /* something did not add up: a hole may hide data */
};

/* Resolve the layouts (dentry, inode, address_space, xa_node, page) from
 * BTF. VMW_ERR_MISSING_LAYOUT names what this kernel lacks. */
int vmw_files_new(struct vmw_kernel *k, struct vmw_files **ret, struct vmw_error *err);
void vmw_files_free(struct vmw_files *f);

/* Look path up (absolute; symlinks followed, also the last one) and fill
 * ret's inode fields, without data. -ENOENT (not cached, or no such file:
 * err says which), -ENOTDIR, -ELOOP,
 * -EBADMSG (guest structures that do not add up), -EINVAL (a bad path). */
int vmw_files_stat(struct vmw_files *f, const char *path, struct vmw_file *ret,
		   struct vmw_error *err);
/* Like vmw_files_stat, then read the cached pages of a regular file of at
 * most max_size bytes (-EFBIG beyond, -EISDIR for a directory, -EINVAL for
 * another kind of file). Uncached parts are holes (zeros in data). */
int vmw_files_read(struct vmw_files *f, const char *path, uint64_t max_size,
		   struct vmw_file *ret, struct vmw_error *err);
void vmw_file_release(struct vmw_file *file);

/* Lookups that follow within one batch (a few files read together, e.g.
 * /etc/passwd, /etc/group and os-release) read PID 1's root directory and
 * the mounts on a directory once, not once per lookup: what they find is
 * kept from vmw_files_batch(f, true) to vmw_files_batch(f, false). */
void vmw_files_batch(struct vmw_files *f, bool on);
