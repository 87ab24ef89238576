/* SPDX-License-Identifier: MIT */
/*
 * mem_internal.h - what the memory sources share inside src/mem. Not part of
 * the layer's interface (that is mem.h).
 *
 * Every source builds a table of segments. A segment maps [gpa, gpa+len) of
 * guest-physical space onto local memory (`local`, from an mmap) or onto the
 * QEMU process's address space (`remote`, read with process_vm_readv).
 */
#pragma once

#include "mem/mem.h"

struct vmw_mem_seg {
	uint64_t gpa;
	uint64_t len;
	const uint8_t *local;   /* NULL for remote segments */
	uint64_t remote;        /* address in the QEMU process */
};

struct vmw_mem {
	struct vmw_mem_seg *segs;      /* sorted by gpa, non-overlapping */
	size_t nsegs;
	struct vmw_mem_range *ranges;  /* merged view of segs for callers */
	size_t nranges;
	uint64_t size;
	size_t last;                   /* index of the last segment hit */
	pid_t pid;                     /* QEMU process, for remote reads; 0 if none */
	int proc_mem_fd;               /* /proc/PID/mem for remote reads (an opener is set), or -1 */
	pid_t owner;                   /* the QEMU process behind a qemu: source, mapped or not */
	void *map;                     /* our mmap, unmapped on close */
	size_t map_len;
	int map_fd;                    /* the file behind map (closed on close), or -1 */
	uint64_t map_off;              /* file offset of map */
	uint64_t ext_lo, ext_hi;       /* a data extent of map_fd (file offsets), lo == hi: none */
	int pagemap_fd;                /* /proc/PID/pagemap: -1 not opened yet, -2 unusable */
	uint64_t *pagemap_buf;
	char desc[512];
	struct vmw_mem_stats stats;
	struct vmw_mem_trace *trace;   /* page tracing (fuzz seeds); NULL when off */
	struct remote_batch *batch;    /* vmw_mem_readv's remote batch (mem.c), taken at the first remote read */
};

int vmw_mem_new(struct vmw_mem **ret);
/* Is an opener other than open(2) set (vmw_mem_set_opener)? */
bool vmw_mem_has_opener(void);
/* Add a segment; local != NULL for mapped memory, else remote. */
int vmw_mem_add_seg(struct vmw_mem *mem, uint64_t gpa, uint64_t len,
		    const void *local, uint64_t remote);
/* Sort and validate the segments (no overlaps), build ranges. -EINVAL on overlap. */
int vmw_mem_finish(struct vmw_mem *mem);

/* The options a caller passed, copied up to their sz (older callers pass a
 * smaller struct; missing fields read as zero). */
void vmw_mem_opts_copy(struct vmw_mem_opts *dst, const struct vmw_mem_opts *src);

/* Take ownership of an mmap: unmapped by vmw_mem_close. */
void vmw_mem_own_map(struct vmw_mem *mem, void *map, size_t len);
/* Keep the file the map was made from (map = file bytes from offset off on),
 * for vmw_mem_populated: a dup of fd, closed by vmw_mem_close. Best effort:
 * without it every mapped page counts as populated. */
void vmw_mem_own_map_file(struct vmw_mem *mem, int fd, uint64_t off);

/*
 * Page tracing, for the fuzz tools (tests/fuzz: making seeds, reusing a
 * discovery across inputs): while on, every page that vmw_mem_read and
 * vmw_mem_readv are asked for is recorded, whether or not it is guest RAM,
 * with the hull [lo, hi) of the bytes asked for in it. Off by default; costs
 * one branch per call when off. A read of more than 256 MiB records its
 * first 256 MiB only.
 */
struct vmw_mem_trace_page {
	uint64_t pfn;       /* guest-physical address >> 12 */
	uint16_t lo, hi;    /* bytes [lo, hi) of the page were asked for; 1 <= hi <= 4096 */
};
/* Start (or restart, forgetting what was recorded). 0 or -ENOMEM. */
int vmw_mem_trace_start(struct vmw_mem *mem);
/* The pages recorded since the start, sorted by pfn, in a new array (*ret,
 * freed by the caller). -ENOMEM (also when a page could not be recorded),
 * -EINVAL if tracing is off. */
int vmw_mem_trace_pages(const struct vmw_mem *mem, struct vmw_mem_trace_page **ret, size_t *n);
/* Stop and forget (vmw_mem_close does it too). */
void vmw_mem_trace_stop(struct vmw_mem *mem);

/* "512 MiB", "5 GiB", "3.5 GiB", "1234 bytes": for descriptions and messages. */
const char *vmw_fmt_size(uint64_t size, char buf[static 32]);

/* ---- QEMU x86 RAM layout (mem_layout.c, pure) ----------------------------
 *
 * QEMU keeps all of a pc/q35 guest's RAM in one RAM block (the backend's
 * mapping) and shows it to the guest in two pieces: the low part up to
 * "lowmem" at guest-physical 0, and the rest at 4 GiB, starting at block
 * offset lowmem. The window 0xa0000-0xfffff inside the low part is left out
 * of our ranges on purpose: there the guest sees VGA memory and the
 * PAM-controlled BIOS/option-ROM shadows rather than (necessarily) the RAM
 * block, so the block's bytes are not what the guest reads. Linux reserves
 * that window and keeps nothing there that we need.
 */
enum vmw_machine_family {
	VMW_MACHINE_PC = 1,   /* i440fx: pc, pc-i440fx-X.Y, pc-X.Y */
	VMW_MACHINE_Q35,      /* q35, pc-q35-X.Y */
};

struct vmw_machine {
	enum vmw_machine_family family;
	bool gigabyte_align;  /* pc: split at 3 GiB rather than 3.5 GiB (pc >= 2.0) */
};

/* One piece of guest RAM: [gpa, gpa+len) is RAM-block bytes [offset, offset+len). */
struct vmw_ram_piece {
	uint64_t gpa;
	uint64_t offset;
	uint64_t len;
};

#define VMW_RAM_MAX_PIECES 3
struct vmw_ram_layout {
	uint64_t below_4g;    /* RAM below 4 GiB (including the legacy window) */
	uint64_t above_4g;    /* RAM at 4 GiB and up */
	size_t n;
	struct vmw_ram_piece piece[VMW_RAM_MAX_PIECES];
};

#define VMW_LEGACY_START 0xa0000ULL
#define VMW_LEGACY_END   0x100000ULL

/* Machine type name ("pc", "pc-i440fx-7.2", "q35", "pc-q35-7.2", ...) to
 * family. -ENOTSUP with a message naming the type for others (microvm, isapc). */
int vmw_machine_parse(const char *type, struct vmw_machine *ret, struct vmw_error *err);
/* Split of a RAM block of ram_size bytes, as QEMU's pc_init1/pc_q35_init do it.
 * max_ram_below_4g is the machine property (0 = not given). */
int vmw_ram_layout(const struct vmw_machine *m, uint64_t ram_size, uint64_t max_ram_below_4g,
		   struct vmw_ram_layout *ret, struct vmw_error *err);
/* Add the layout's segments to mem, the RAM block being at local `base` (an
 * mmap) or, when base is NULL, at `remote` in the QEMU process. */
int vmw_mem_add_layout(struct vmw_mem *mem, const struct vmw_ram_layout *l,
		       const void *base, uint64_t remote);

/* ---- QEMU command line (mem_cmdline.c, pure) ---------------------------- */
enum vmw_backend_kind {
	VMW_BACKEND_DEFAULT = 0,  /* no memory backend: private anonymous RAM (or -mem-path file) */
	VMW_BACKEND_RAM,          /* memory-backend-ram */
	VMW_BACKEND_FILE,         /* memory-backend-file */
	VMW_BACKEND_MEMFD,        /* memory-backend-memfd */
};

struct vmw_qemu_config {
	char machine[128];          /* machine type; "pc" when not given */
	uint64_t ram_size;          /* bytes, as QEMU computes it */
	uint64_t max_ram_below_4g;  /* 0 = not given */
	enum vmw_backend_kind backend;
	char backend_id[128];       /* "" for VMW_BACKEND_DEFAULT */
	char mem_path[4096];        /* memory-backend-file mem-path, or -mem-path */
	bool share;                 /* the backend maps its RAM shared */
};

/* Parse a QEMU system emulator's argv (argv[0], the program, is skipped:
 * callers check it with vmw_qemu_is_emulator). -EINVAL on options we cannot
 * parse, -ENOTSUP for set-ups we do not handle (several NUMA memory backends,
 * backend types other than file/memfd/ram). */
int vmw_qemu_parse_cmdline(size_t argc, const char *const *argv,
			   struct vmw_qemu_config *ret, struct vmw_error *err);
/* Is this program name (argv[0] or /proc/PID/exe) a QEMU system emulator? */
bool vmw_qemu_is_emulator(const char *prog);
/* QEMU's size syntax: "512M", "1.5G", "524288k"; a bare number is in
 * default_unit bytes (1 for object sizes, 1 MiB for -m). */
int vmw_qemu_parse_size(const char *s, uint64_t default_unit, uint64_t *ret);

/* ---- ELF cores (mem_elf.c) ---------------------------------------------- */
struct vmw_elf_load {
	uint64_t paddr;     /* guest-physical address */
	uint64_t offset;    /* file offset */
	uint64_t filesz;    /* bytes present in the file */
	uint64_t memsz;     /* bytes the guest had there (>= filesz) */
};

struct vmw_elf_info {
	struct vmw_elf_load *loads;   /* sorted by paddr, non-overlapping, filesz > 0 */
	size_t nloads;
	uint64_t note_offset, note_size;  /* first PT_NOTE, 0/0 if none */
};

/* Is this the start of an ELF file (magic only)? */
bool vmw_elf_is_elf(const void *buf, size_t len);
/* Parse an x86-64 ELF core held in buf[0..len) (the whole file). Every
 * PT_LOAD's file range is checked against len. -ENOEXEC with a message
 * (prefixed by the caller with the file name) on anything malformed. */
int vmw_elf_parse(const void *buf, size_t len, struct vmw_elf_info *ret, struct vmw_error *err);
void vmw_elf_info_free(struct vmw_elf_info *info);

/* ---- sources ------------------------------------------------------------ */
/* One line of /proc/PID/maps. */
struct vmw_map {
	uint64_t start, end, offset;
	unsigned major, minor;
	uint64_t inode;
	bool shared;
	char path[4096];   /* "" for anonymous memory; may end in " (deleted)" */
};

/* Parse the maps line starting at line (up to its '\n'). false if it is
 * malformed or not a read-write mapping. */
bool vmw_maps_parse_line(const char *line, struct vmw_map *m);

/*
 * The read-write mappings of a process, one at a time (mem_qemu.c). On
 * Linux 6.11 and later the kernel is asked for them (PROCMAP_QUERY), and for
 * the path of only those whose size is wanted; before, or when
 * text_only, /proc/PID/maps is read whole and parsed.
 */
struct vmw_rw_maps {
	int fd;                        /* /proc/PID/maps */
	bool query;                    /* the kernel answers PROCMAP_QUERY */
	bool done;
	uint64_t next;                 /* query: where the next search starts */
	unsigned asked;                /* query: mappings seen, bounded */
	char *text, *line;             /* text: all of it, and the next line */
};
/* 0, or -errno of opening or reading pid's maps (ENOENT, ESRCH: gone). */
int vmw_rw_maps_open(struct vmw_rw_maps *it, pid_t pid, bool text_only);
/* The next read-write mapping of exactly size bytes (0: any): 1 and *m,
 * 0 after the last, or -errno (ESRCH: the process exited meanwhile). */
int vmw_rw_maps_next(struct vmw_rw_maps *it, uint64_t size, struct vmw_map *m);
void vmw_rw_maps_close(struct vmw_rw_maps *it);

/* A QEMU process whose maps hold a shared mapping of the file (dev, ino)
 * that is its RAM block: its pid, the config, and the block's file offset.
 * 0 if found, -ENOENT if none. With hint_dir (vmw_owner_hint_dir), the
 * owner remembered there is checked first (the same test, and its start
 * time), and the owner a scan finds is remembered. */
int vmw_qemu_find_file_owner(dev_t dev, ino_t ino, const char *hint_dir, pid_t *ret_pid,
			     struct vmw_qemu_config *ret_cfg, uint64_t *ret_offset);

/* ---- owner hints of RAM files (mem_owner.c) ------------------------------ */
#define VMW_OWNER_HINTS_MAX 64
#define VMW_OWNER_HINTS_MAX_BYTES 8192
struct vmw_owner_hint {
	uint64_t dev, ino;          /* the RAM file's st_dev, st_ino */
	struct vmw_qemu_id owner;   /* the QEMU that mapped it */
};
/* Pure: the owner of (dev, ino) in a hints file's contents. 0, -ENOENT not
 * listed, -EINVAL anything in the file malformed (then none is used). */
int vmw_owner_hints_find(const char *buf, size_t len, uint64_t dev, uint64_t ino,
			 struct vmw_qemu_id *ret);
/* Pure: the contents with h first, then old's other entries (old NULL or
 * malformed: none), at most VMW_OWNER_HINTS_MAX. Its length, or -ENOBUFS. */
ssize_t vmw_owner_hints_update(const char *old, size_t oldlen, const struct vmw_owner_hint *h,
			       char *out, size_t size);
/* The directory of the hints for these options into buf: 0; -ENOENT none
 * (no_cache, no HOME); -EPERM not trusted (StrictModes). */
int vmw_owner_hint_dir(const struct vmw_mem_opts *opts, char *buf, size_t size);
/* Read / remember the owner of (dev, ino) in dir. 0 or -errno. */
int vmw_owner_hint_get(const char *dir, uint64_t dev, uint64_t ino, struct vmw_qemu_id *ret);
int vmw_owner_hint_put(const char *dir, uint64_t dev, uint64_t ino, const struct vmw_qemu_id *owner);

/* Value of key in one QEMU option argument (QemuOpts "a=b,c=d" with ",,"
 * escapes and an implied first key, or JSON); the last occurrence wins.
 * mem_cmdline.c; shared with mem_identity.c. */
bool vmw_qemu_opt_get(const char *arg, const char *implied, const char *key, char *out, size_t outlen);
