/* SPDX-License-Identifier: MIT */
/*
 * mem_file.c - guest RAM from a file: an ELF core, a shared RAM file (laid
 * out like the QEMU machine that maps it, or as the caller says), or a raw
 * flat image. The whole file is mapped read-only; every segment lies inside
 * it.
 *
 * Format detection, in order: ELF core; kdump-compressed / flattened
 * makedumpfile / QEMU migration stream (refused with advice); anything else
 * is a raw image, by definition (a pmemsave image has no header).
 */
#include "mem/mem_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

static int open_elf(struct vmw_mem *mem, const char *path, const uint8_t *map, uint64_t size,
		    struct vmw_error *err)
{
	struct vmw_elf_info info;
	uint64_t have = 0, want = 0;
	char a[32], b[32];
	int r;

	if ((r = vmw_elf_parse(map, size, &info, err)) < 0) {
		vmw_error_prefix(err, "%s: ", path);
		return r;
	}
	for (size_t i = 0; i < info.nloads && r >= 0; i++) {
		const struct vmw_elf_load *l = &info.loads[i];
		r = vmw_mem_add_seg(mem, l->paddr, l->filesz, map + l->offset, 0);
		have += l->filesz;
		want += l->memsz;
	}
	if (r >= 0 && (r = vmw_mem_finish(mem)) < 0)
		vmw_error_setk(err, VMW_ERR_INCONSISTENT, r, "%s: bad segment table", path);
	if (r >= 0) {
		int n = snprintf(mem->desc, sizeof(mem->desc), "ELF core %s, %zu segment%s, %s", path,
				 info.nloads, info.nloads == 1 ? "" : "s", vmw_fmt_size(have, a));
		if (want > have && n > 0 && (size_t)n < sizeof(mem->desc))
			snprintf(mem->desc + n, sizeof(mem->desc) - (size_t)n, " (%s of guest RAM not in the dump)",
				 vmw_fmt_size(want - have, b));
	}
	vmw_elf_info_free(&info);
	return r;
}

static int open_raw(struct vmw_mem *mem, const char *path, const struct stat *st, const uint8_t *map,
		    uint64_t size, const struct vmw_mem_opts *opts, struct vmw_error *err)
{
	struct vmw_machine mach = { VMW_MACHINE_PC, true };
	struct vmw_ram_layout l;
	enum vmw_layout layout = opts->layout;
	char sz[32];
	int r;

	if (layout == VMW_LAYOUT_AUTO) {
		struct vmw_qemu_config cfg;
		char hint_dir[4096];
		uint64_t off;
		pid_t pid;

		layout = VMW_LAYOUT_FLAT;
		if (vmw_qemu_find_file_owner(st->st_dev, st->st_ino,
					     vmw_owner_hint_dir(opts, hint_dir, sizeof(hint_dir)) == 0 ? hint_dir : NULL,
					     &pid, &cfg, &off) == 0) {
			if ((r = vmw_machine_parse(cfg.machine, &mach, err)) < 0 ||
			    (r = vmw_ram_layout(&mach, cfg.ram_size, cfg.max_ram_below_4g, &l, err)) < 0)
			{
				vmw_error_prefix(err, "%s is the RAM of qemu:%d, but: ", path, (int)pid);
				return r;
			}
			if (off > size || cfg.ram_size > size - off)
				return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -EIO, "%s is the RAM of qemu:%d but smaller than its %s RAM",
						     path, (int)pid, vmw_fmt_size(cfg.ram_size, sz));
			if ((r = vmw_mem_add_layout(mem, &l, map + off, 0)) < 0 || (r = vmw_mem_finish(mem)) < 0)
				return r;
			snprintf(mem->desc, sizeof(mem->desc), "RAM file %s of qemu:%d, %s layout, %s RAM", path,
				 (int)pid, mach.family == VMW_MACHINE_Q35 ? "q35" : "pc",
				 vmw_fmt_size(cfg.ram_size, sz));
			return 0;
		}
	}

	if (layout == VMW_LAYOUT_FLAT) {
		if ((r = vmw_mem_add_seg(mem, 0, size, map, 0)) < 0 || (r = vmw_mem_finish(mem)) < 0)
			return r;
		snprintf(mem->desc, sizeof(mem->desc), "raw image %s, flat (file offset = guest-physical address), %s",
			 path, vmw_fmt_size(size, sz));
		return 0;
	}
	if (layout != VMW_LAYOUT_PC && layout != VMW_LAYOUT_Q35)
		return vmw_error_set(err, -EINVAL, "unknown layout %d", (int)layout);
	mach.family = layout == VMW_LAYOUT_Q35 ? VMW_MACHINE_Q35 : VMW_MACHINE_PC;
	if ((r = vmw_ram_layout(&mach, size, 0, &l, err)) < 0) {
		vmw_error_prefix(err, "%s: ", path);
		return r;
	}
	if ((r = vmw_mem_add_layout(mem, &l, map, 0)) < 0 || (r = vmw_mem_finish(mem)) < 0)
		return r;
	snprintf(mem->desc, sizeof(mem->desc), "RAM file %s, %s layout, %s RAM", path,
		 vmw_layout_name(layout), vmw_fmt_size(size, sz));
	return 0;
}

int vmw_mem_open_file(const char *path, const struct vmw_mem_opts *opts_in,
		      struct vmw_mem **ret, struct vmw_error *err)
{
	struct vmw_mem_opts opts;
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint64_t size;
	const uint8_t *map;
	struct vmw_mem *mem = NULL;
	int r;

	vmw_mem_opts_copy(&opts, opts_in);
	fd = vmw_mem_open_privileged(path, O_RDONLY);
	if (fd < 0) {
		r = fd;
		if (r == -ENOENT)
			return vmw_error_set(err, r, "%s: no such file", path);
		if (r == -EACCES || r == -EPERM)
			return vmw_error_set(err, -EACCES, "%s: permission denied (run as root?)", path);
		return vmw_error_set(err, r, "%s: %s", path, strerror(-r));
	}
	if (fstat(fd, &st) < 0)
		return vmw_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EISDIR, "%s: is a directory, not a memory dump or RAM file", path);
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return vmw_error_setk(err, VMW_ERR_IO, -errno, "%s: cannot get the size of the block device: %s",
					     path, strerror(errno));
	} else {
		return vmw_error_set(err, -ENOEXEC, "%s: not a regular file (a pipe or device cannot be mapped)", path);
	}
	if (size == 0)
		return vmw_error_set(err, -ENOEXEC, "%s: empty file, not a memory dump or RAM file", path);

	map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return vmw_error_setk(err, VMW_ERR_IO, -errno, "%s: cannot map: %s", path, strerror(errno));
	if ((r = vmw_mem_new(&mem)) < 0) {
		munmap((void *)map, (size_t)size);
		return r;
	}
	vmw_mem_own_map(mem, (void *)map, (size_t)size);
	vmw_mem_own_map_file(mem, fd, 0);

	if (vmw_elf_is_elf(map, size)) {
		r = open_elf(mem, path, map, size, err);
	} else if (size >= 8 && (!memcmp(map, "KDUMP   ", 8) || !memcmp(map, "DISKDUMP", 8))) {
		r = vmw_error_set(err, -ENOTSUP,
			"%s is a kdump-compressed dump, which vmwatch cannot read: make an ELF dump instead "
			"(virsh dump --memory-only --format elf, or QMP dump-guest-memory without -z/-l/-s)", path);
	} else if (size >= 12 && !memcmp(map, "makedumpfile", 12)) {
		r = vmw_error_set(err, -ENOTSUP,
			"%s is a kdump-compressed dump in makedumpfile's flattened format, which vmwatch cannot read: make an ELF dump instead "
			"(virsh dump --memory-only --format elf, or QMP dump-guest-memory without -z/-l/-s)", path);
	} else if (size >= 4 && !memcmp(map, "QEVM", 4)) {
		r = vmw_error_set(err, -ENOTSUP,
			"%s is a QEMU migration/savevm stream, not a memory dump: use "
			"virsh dump --memory-only --format elf or QMP dump-guest-memory", path);
	} else {
		r = open_raw(mem, path, &st, map, size, &opts, err);
	}
	if (r < 0) {
		vmw_mem_close(mem);
		return r;
	}
	*ret = mem;
	return 0;
}
