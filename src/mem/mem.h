/* SPDX-License-Identifier: MIT */
/*
 * mem.h - guest physical memory: the first layer of libvmwatch and the only
 * code that touches guest RAM.
 *
 * A `struct vmw_mem` is a read-only view of one guest's physical address
 * space, built from one of these sources:
 *   - a shared RAM file (QEMU memory-backend-file, e.g. /dev/shm/NAME),
 *     mapped read-only;
 *   - a running QEMU process by PID: its RAM mapping is found in
 *     /proc/PID/maps; a shared file or memfd is mapped read-only, private RAM
 *     is read with process_vm_readv (batched);
 *   - a memory dump: an ELF core (QEMU dump-guest-memory, virsh dump
 *     --memory-only; guest-physical addresses come from the program headers)
 *     or a raw image (file offset = guest-physical address, or a RAM file laid
 *     out like a QEMU machine when a layout is given);
 *   - a caller's buffer (tests, fuzzing).
 *
 * Internally every source is a sorted table of segments, each mapping a range
 * of guest-physical addresses onto either local memory (an mmap) or a range
 * of the QEMU process's address space. Every read is bounds-checked against
 * that table: a read that touches an address outside guest RAM (a hole, the
 * PCI window, past the end) fails with -EFAULT and never returns stale bytes.
 * The guest is never paused and its memory is never written.
 *
 * A vmw_mem is for one thread at a time: reads update a lookup cache and
 * the counters. Shared-file and dump sources are mmaps of the file, so a
 * file truncated under us would fault (SIGBUS); QEMU never shrinks its RAM.
 */
#pragma once

#include "util/util.h"

#include <sys/types.h>

struct vmw_mem;

/* How a raw RAM file maps onto guest-physical addresses. */
enum vmw_layout {
	VMW_LAYOUT_AUTO = 0,  /* detect: ELF core, file mapped by a live QEMU, else flat */
	VMW_LAYOUT_FLAT,      /* file offset == guest-physical address (pmemsave image) */
	VMW_LAYOUT_PC,        /* QEMU i440fx RAM block: split at 3 GiB when RAM >= 3.5 GiB */
	VMW_LAYOUT_Q35,       /* QEMU q35 RAM block: split at 2 GiB when RAM >= 2.75 GiB */
};

struct vmw_mem_opts {
	size_t sz;                 /* sizeof(struct vmw_mem_opts), for growth */
	enum vmw_layout layout;    /* for file: targets */
	bool force_process_read;   /* qemu: read through process_vm_readv even if RAM is shared */
	/* file: targets of a running QEMU remember which QEMU maps the file in
	 * the cache directory (ram-owners): cache_dir as the kernel layer's
	 * (NULL: the XDG default); no_cache neither reads nor writes it. */
	bool no_cache;
	const char *cache_dir;
};

/*
 * Privileged opens. What only a privileged process may open — QEMU's
 * /proc/PID/{maps,mem,exe,pagemap,fd,map_files/...} and the RAM files it
 * maps — goes through one function, open(2) by default. A process without
 * those rights (the agent's privilege-separated samplers) sets one that asks
 * its privileged parent, which checks the request and passes the fd back.
 * With an opener set, private QEMU memory is read with pread(2) on
 * /proc/PID/mem (the access check is made when it is opened) instead of
 * process_vm_readv (checked on every call). Process-wide; set it before
 * opening anything. Returns an fd or a negative errno.
 */
typedef int (*vmw_mem_opener_fn)(void *opaque, const char *path, int flags);
void vmw_mem_set_opener(vmw_mem_opener_fn fn, void *opaque);
/* open(2) through the opener (O_CLOEXEC added). An fd or -errno. */
int vmw_mem_open_privileged(const char *path, int flags);

/* Declare and initialise options with their size set, libbpf-style:
 *   VMW_MEM_OPTS(opts, .layout = VMW_LAYOUT_PC); vmw_mem_open(t, &opts, ...); */
#define VMW_MEM_OPTS(name, ...) \
	struct vmw_mem_opts name = { .sz = sizeof(struct vmw_mem_opts), __VA_ARGS__ }

/* "auto", "flat", "pc", "q35"; and back (0 or -EINVAL). */
const char *vmw_layout_name(enum vmw_layout layout);
int vmw_layout_parse(const char *name, enum vmw_layout *ret);

/* One piece of guest RAM, in guest-physical order. */
struct vmw_mem_range {
	uint64_t start;
	uint64_t size;
};

/* One piece of a batched read. `err` receives 0 or a negative errno. */
struct vmw_phys_iov {
	uint64_t addr;
	void *buf;
	size_t len;
	int err;
};

/*
 * Open TARGET: "qemu:PID" or "file:PATH" (format detected: ELF core, RAM file
 * of a running QEMU, raw image). opts may be NULL. On failure returns a
 * negative errno and fills err with a one-line message naming the target:
 *   -ESRCH  no such process          -EACCES permission denied
 *   -ENOENT no such file              -ENOEXEC not a QEMU process / unknown file format
 *   -ENOTSUP layout vQEMU uses we do not understand
 */
int vmw_mem_open(const char *target, const struct vmw_mem_opts *opts,
		 struct vmw_mem **ret, struct vmw_error *err);
int vmw_mem_open_qemu(pid_t pid, const struct vmw_mem_opts *opts,
		      struct vmw_mem **ret, struct vmw_error *err);
int vmw_mem_open_file(const char *path, const struct vmw_mem_opts *opts,
		      struct vmw_mem **ret, struct vmw_error *err);
/* A view of a caller-owned buffer as guest RAM starting at guest-physical 0
 * (flat). The buffer must outlive the vmw_mem. */
int vmw_mem_open_buffer(const void *buf, size_t size, struct vmw_mem **ret);

void vmw_mem_close(struct vmw_mem *mem);

/* Read len bytes at guest-physical addr. 0, or -EFAULT if any byte is not
 * guest RAM, -ESRCH if the QEMU process is gone, -EIO otherwise. */
int vmw_mem_read(struct vmw_mem *mem, uint64_t addr, void *buf, size_t len);

/* Read many pieces at once (one process_vm_readv for process sources). Each
 * iov gets its own err. Returns 0 if all succeeded, else the first error. */
int vmw_mem_readv(struct vmw_mem *mem, struct vmw_phys_iov *iov, size_t n);

/*
 * Which guest pages are populated: backed by memory, file blocks or swap that
 * the host has allocated, so that they may hold something other than zeros.
 * A page that is not populated reads as zeros, and reading it would make the
 * host allocate it (a page of a tmpfs RAM file or memfd: the file grows; the
 * zero page and page tables in QEMU for private RAM). Whole-RAM scans ask
 * first and skip such pages; nothing is read, faulted in or allocated here.
 *
 * vec gets one byte for each page that [addr, addr+len) touches: vec[i] is 1
 * if the page at (addr & ~4095) + i * 4096 is populated, 0 if it is not or is
 * not guest RAM (a page partly in RAM counts if its RAM part is populated).
 * How each source tells:
 *   - mapped files (shared RAM file, memfd, ELF core, raw image): the file's
 *     data and holes (lseek SEEK_DATA/SEEK_HOLE). tmpfs counts a swapped-out
 *     page as data, a disk file a block that is not in the page cache; not
 *     mincore(), which reports page-cache residency and so would call both
 *     of those empty. A filesystem without hole support reports all data;
 *   - process sources: /proc/PID/pagemap, present or swapped (readable by
 *     whoever may process_vm_readv; no privilege needed for these bits). For
 *     shared memory read this way it tells what QEMU has mapped;
 *   - buffers: every page.
 * Whatever cannot be told (pagemap not readable, lseek failing) is reported
 * populated: a false "populated" costs a read, a false "empty" a missed page.
 * The answer is a snapshot: the guest populates pages as it runs; and a data
 * extent found is remembered, so scan in order (cost is linear in the
 * extents and pages asked about). 0, or -EINVAL if the range wraps.
 */
int vmw_mem_populated(struct vmw_mem *mem, uint64_t addr, uint64_t len, uint8_t *vec);

/* Guest RAM ranges, sorted, non-overlapping (adjacent ranges are merged). */
size_t vmw_mem_ranges(const struct vmw_mem *mem, const struct vmw_mem_range **ret);
/* Total bytes of guest RAM. */
uint64_t vmw_mem_size(const struct vmw_mem *mem);
/* Human description: "qemu:1234 shared file /dev/shm/x, pc layout, 5 GiB". */
const char *vmw_mem_describe(const struct vmw_mem *mem);
/* Is all of guest RAM mapped (a read is a copy, no system call)? */
bool vmw_mem_is_mapped(const struct vmw_mem *mem);
/* PID of the QEMU process behind this source, or 0. */
pid_t vmw_mem_pid(const struct vmw_mem *mem);
/* Whether that process still runs: vmw_qemu_id_alive (a shared mapping stays
 * readable after QEMU exits, so readers must ask rather than wait for a read
 * to fail; src/session does). */

/* Counters for benchmarks: bytes and calls since open. */
struct vmw_mem_stats {
	uint64_t bytes_read;
	uint64_t reads;      /* vmw_mem_read + vmw_mem_readv calls */
	uint64_t syscalls;   /* process_vm_readv calls made */
	uint64_t ranges;     /* remote ranges they read (the kernel pins each one's
			      * pages separately: the main cost of a small read) */
};
void vmw_mem_stats(const struct vmw_mem *mem, struct vmw_mem_stats *ret);

/* ---- the QEMU process (mem_identity.c) -----------------------------------
 * A process is known by its pid and its start time: a pid alone may be
 * reused by another process after QEMU exits. One parser of /proc/PID/stat
 * and of the QEMU command line serves every layer above (kernel cache keys,
 * the session's liveness checks, libvirt's PID check, the agent's VM names). */
struct vmw_qemu_id {
	pid_t pid;                 /* 0: no process */
	uint64_t start_ticks;      /* /proc/PID/stat field 22 (starttime, clock ticks since boot) */
};

/* pid's identity now. 0, -ESRCH no such process (or a zombie: it has exited),
 * -EIO /proc/PID/stat unreadable or malformed. */
int vmw_qemu_id_get(pid_t pid, struct vmw_qemu_id *ret);
/* Is the process id names still running? 0 yes; -ESRCH it exited, is a
 * zombie, or its pid now belongs to another process. */
int vmw_qemu_id_alive(const struct vmw_qemu_id *id);
/* Is pid a QEMU system emulator (its executable, or argv[0] for wrappers)? */
bool vmw_qemu_pid_is_emulator(pid_t pid);
/* The running QEMU that maps the file at path as its RAM: 0 and *ret_pid,
 * or -ENOENT (none, or not allowed to look). */
int vmw_qemu_file_owner(const char *path, pid_t *ret_pid);
/* Does QEMU pid map the file at path (as a read-write mapping: its RAM)? */
bool vmw_qemu_maps_path(pid_t pid, const char *path);
/* Parse one /proc/PID/stat line (pure): state (field 3) and starttime
 * (field 22). The command name may hold spaces and ')'. 0 or -EINVAL. */
int vmw_proc_stat_parse(const char *line, char *ret_state, uint64_t *ret_start_ticks);

/* What QEMU's command line says about the VM itself (not its RAM). */
struct vmw_qemu_names {
	bool has_name;             /* a -name option was given */
	char name[256];            /* -name [guest=]NAME (",," unescaped) */
	char uuid[37];             /* -uuid U, when it is a well-formed UUID */
	unsigned vcpus;            /* -smp [cpus=]N, 0 when not given */
};
/* Pure: from argv (argv[0], the program, skipped). */
void vmw_qemu_names_parse(size_t argc, const char *const *argv, struct vmw_qemu_names *ret);
/* From /proc/PID/cmdline. 0, -ESRCH no such process, -EACCES, -ENOEXEC empty
 * command line (a kernel thread or a zombie). */
int vmw_qemu_names_get(pid_t pid, struct vmw_qemu_names *ret);

/* The host's QEMU processes (argv[0] named qemu-system-* or qemu-kvm; zombies
 * left out), in /proc order, for the host view. *ret is malloc'd. 0 or -errno. */
int vmw_qemu_list(struct vmw_qemu_id **ret, size_t *ret_n);
/* Pure: is argv0 a QEMU system emulator (qemu-system-*, qemu-kvm)? */
bool vmw_qemu_program(const char *argv0);
/* CPU time the host spent in that process (utime + stime, clock ticks). 0,
 * -ESRCH it exited or the pid is another process's now, -EIO. */
int vmw_qemu_cpu_ticks(const struct vmw_qemu_id *id, uint64_t *ret);
/* The host CPU a QEMU process used between two reads of the meter, in
 * percent of one host CPU: 0 and *ret_percent; -EAGAIN on the first read
 * (or the first after a failure); -ESRCH/-EIO as vmw_qemu_cpu_ticks (the
 * meter starts again). Zero-initialise it. */
struct vmw_qemu_cpu_meter {
	uint64_t ticks, ns;
	bool primed;
};
int vmw_qemu_cpu_meter_read(struct vmw_qemu_cpu_meter *m, const struct vmw_qemu_id *id, double *ret_percent);
/* Pure: utime + stime (fields 14, 15) of a /proc/PID/stat line. 0 or -EINVAL. */
int vmw_proc_stat_cpu_parse(const char *line, uint64_t *ret_ticks);
