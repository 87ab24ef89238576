/* SPDX-License-Identifier: MIT */
/*
 * kernel.h - finding and describing the guest's Linux kernel from guest RAM
 * alone: no System.map, no debug info, no offsets file.
 *
 *   1. VMCOREINFO: the kernel's own crash-dump note, found by scanning guest
 *      RAM; gives OSRELEASE, BUILD-ID, KERNELOFFSET (KASLR), phys_base, the
 *      page-table root, 5-level paging, and (Linux >= 6.0) the kallsyms tables.
 *   2. kallsyms: the kernel's compressed symbol table, decoded from guest
 *      memory (or located by its structure in the kernel image when
 *      VMCOREINFO does not name it).
 *   3. BTF: the kernel's type information (__start_BTF..__stop_BTF), parsed
 *      with libbpf; every structure layout comes from it.
 *
 * Results are cached per guest kernel (BUILD-ID + KERNELOFFSET) on disk so a
 * re-attach is cheap; a cache entry is re-verified against guest RAM. BTF is
 * parsed on first need; the answers of member/size/enum queries and of
 * symbol lookups are memoized per BUILD-ID on disk too (written at detach or
 * vmw_kernel_trim), so a cached attach whose queries were all asked before
 * reads a few KiB of cache and neither parses BTF nor maps the symbol table.
 *
 * A vmw_kernel is not thread-safe: queries update the memo, and its xlat has
 * a translation cache. Use one per thread, or serialize.
 */
#pragma once

#include "mem/mem.h"
#include "xlat/xlat.h"

struct btf;  /* libbpf */
struct vmw_kernel;

struct vmw_kernel_opts {
	size_t sz;                 /* sizeof(struct vmw_kernel_opts) */
	bool ignore_vmcoreinfo_kallsyms; /* locate kallsyms by structure (fallback path) */
	bool no_cache;             /* neither read nor write the discovery cache */
	const char *cache_dir;     /* default ${XDG_CACHE_HOME:-~/.cache}/vmwatch/discovery */
};

/* Declare and initialise options with their size set, libbpf-style:
 *   VMW_KERNEL_OPTS(opts, .no_cache = true); vmw_kernel_attach(mem, &opts, ...); */
#define VMW_KERNEL_OPTS(name, ...) \
	struct vmw_kernel_opts name = { .sz = sizeof(struct vmw_kernel_opts), __VA_ARGS__ }

struct vmw_kernel_info {
	char release[65];          /* OSRELEASE */
	char build_id[41];         /* BUILD-ID, hex */
	uint64_t kaslr_offset;     /* KERNELOFFSET */
	uint64_t phys_base;
	int paging_levels;         /* 4 or 5 */
	uint64_t pgd_phys;         /* physical address of init_top_pgt / swapper_pg_dir */
	uint64_t page_offset_base; /* start of the direct map */
	uint64_t vmcoreinfo_phys;  /* where the VMCOREINFO text was found */
	uint64_t ram_bytes;        /* guest RAM seen by the memory source */
	unsigned nr_cpus;          /* possible CPUs with a per-CPU area (nr_cpu_ids) */
	const char *symbols_from;  /* "kallsyms via VMCOREINFO", "kallsyms located by structure",
	                              "discovery cache (kallsyms via VMCOREINFO)" */
	const char *types_from;    /* "BTF in guest RAM (N bytes)" */
	uint64_t attach_ns;        /* wall time of vmw_kernel_attach */
	bool from_cache;
	/* Why the discovery cache was not used although it was on (its directory
	 * is owned or writable by someone else: StrictModes), or NULL. Front ends
	 * show it as a warning. */
	const char *cache_warning;
	/* Breakdown of attach_ns (0 for steps that did not run). */
	uint64_t scan_ns;          /* VMCOREINFO scan of guest RAM */
	uint64_t kallsyms_ns;      /* kallsyms read + decode (or cache load + verify) */
	uint64_t btf_ns;           /* BTF read + parse */
	uint32_t nr_symbols;       /* kallsyms symbols */
};

/* Find the kernel in mem. On failure err says which step failed and what
 * would help, e.g. "no Linux kernel found in guest RAM: no VMCOREINFO note (is
 * the guest running Linux >= 3.x? is it booted?)" (-ENOENT) or "kernel X has
 * no BTF (CONFIG_DEBUG_INFO_BTF=n): vmwatch needs it" (-ENOTSUP); err->kind
 * says which (VMW_ERR_NOT_LINUX, VMW_ERR_NO_BTF, ...). Memory source errors
 * (-ESRCH: the QEMU process is gone) pass through. */
int vmw_kernel_attach(struct vmw_mem *mem, const struct vmw_kernel_opts *opts,
		      struct vmw_kernel **ret, struct vmw_error *err);
void vmw_kernel_detach(struct vmw_kernel *k);

const struct vmw_kernel_info *vmw_kernel_info(const struct vmw_kernel *k);
/* Is k running: does its jiffies_64 advance within timeout_ns (watched every
 * 10 ms)? 1 yes, 0 frozen (a copy left in RAM by an earlier boot, or a paused
 * guest), or a negative errno from reading it. */
int vmw_kernel_running(struct vmw_kernel *k, uint64_t timeout_ns);

/* Address of a kernel symbol (kallsyms). For per-CPU symbols the address is
 * the offset inside the per-CPU area. 0 or -ENOENT. */
int vmw_kernel_symbol(struct vmw_kernel *k, const char *name, uint64_t *ret);
/* Per-CPU base of CPU cpu (__per_cpu_offset[cpu]); -ENOENT if cpu >= nr_cpus. */
int vmw_kernel_percpu_offset(struct vmw_kernel *k, unsigned cpu, uint64_t *ret);

/* A symbol with its kallsyms type character and whether it is per-CPU (its
 * address is then an offset inside the per-CPU area). 0 or -ENOENT. */
struct vmw_kernel_sym {
	uint64_t addr;
	char type;                 /* 'T', 'D', 'B', 'R', 'A' (absolute per-CPU) ... */
	bool percpu;
};
int vmw_kernel_lookup(struct vmw_kernel *k, const char *name, struct vmw_kernel_sym *ret);

/* Value of the enumerator `name` (any enum in BTF). 0 or -ENOENT. */
int vmw_kernel_enum_value(struct vmw_kernel *k, const char *name, int64_t *ret);

/* Raw VMCOREINFO value of KEY ("OSRELEASE", "OFFSET(page.flags)"), or NULL. */
const char *vmw_kernel_vmcoreinfo(const struct vmw_kernel *k, const char *key);

/* The kernel's BTF (owned by k), parsed now if not yet (a few ms to tens of
 * ms: prefer the memoized queries below, which a warm cache answers without
 * BTF). NULL if it cannot be read or parsed. */
const struct btf *vmw_kernel_btf(const struct vmw_kernel *k);
/* Why the BTF blob could not be parsed (libbpf missing, rejected, unreadable),
 * once a query needed it and failed; NULL otherwise. */
const char *vmw_kernel_btf_why(const struct vmw_kernel *k);
/* In such a BTF, the anonymous struct of tk_core ({ seq; struct timekeeper
 * timekeeper; }): its size and the offsets of both members, each inside it
 * (seq for 4 bytes at least). 0, -ENOENT, or -ENOTSUP (several candidates
 * that disagree). */
int vmw_btf_tk_core(const struct btf *btf, uint32_t *ret_size, uint32_t *ret_tk, uint32_t *ret_seq);
/* Byte offset of a member in a struct, following dotted paths through nested
 * and anonymous members ("signal_struct", "cputime_atomic.utime"). 0 or -ENOENT.
 * `type` names a struct or union (or a typedef of one), without "struct ".
 * ret_size is the member's size in bytes (arrays: the whole array). A
 * bitfield (or a member not at a byte boundary) gives -ENOTSUP: use
 * vmw_kernel_member_bits. A path that goes through a bitfield: -EINVAL. */
/* The first "type.member" (or type) whose layout answer was refused as
 * inconsistent (-EBADMSG: outside its structure, beyond 1 MiB, a search that
 * did not end), or NULL. Readers that treat a member as optional check this
 * after resolving, so that hostile BTF is refused rather than half used. */
const char *vmw_kernel_bad_layout(const struct vmw_kernel *k);

int vmw_kernel_member(struct vmw_kernel *k, const char *type, const char *member,
		      uint32_t *ret_offset, uint32_t *ret_size);
/* Like vmw_kernel_member in bits: works for bitfields too (bit offset from
 * the start of the struct, bitfield width; for ordinary members size * 8). */
int vmw_kernel_member_bits(struct vmw_kernel *k, const char *type, const char *member,
			   uint32_t *ret_bit_offset, uint32_t *ret_bit_size);
/* Size of a struct/union (or typedef of one) by name. 0 or -ENOENT. */
int vmw_kernel_type_size(struct vmw_kernel *k, const char *type, uint32_t *ret);

/* The anonymous struct of tk_core as vmw_btf_tk_core finds it, memoized
 * like the layout queries (a warm cache answers without BTF). 0, -ENOENT,
 * -ENOTSUP (several candidates), -EBADMSG (an answer outside the struct). */
int vmw_kernel_tk_core(struct vmw_kernel *k, uint32_t *ret_size, uint32_t *ret_tk, uint32_t *ret_seq);

/* Give back what the memo makes unnecessary once the models have resolved
 * their layouts (e.g. after a first frame): the parsed BTF and the full
 * symbol table, after saving new memo answers to the cache. A later query
 * the memo cannot answer loads them again. A long-running sampler keeps
 * tens of KiB per guest instead of ~14 MiB. */
void vmw_kernel_trim(struct vmw_kernel *k);

/* The kernel's address space (init_mm); translation fast paths are set. */
struct vmw_xlat *vmw_kernel_xlat(struct vmw_kernel *k);
