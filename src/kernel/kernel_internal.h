/* SPDX-License-Identifier: MIT */
/*
 * kernel_internal.h - what the files of src/kernel share. Not part of the
 * layer's interface (that is kernel.h). The pure parts (VMCOREINFO parser,
 * kallsyms decoder and table locator, symbol table) work on byte buffers so
 * that unit tests and fuzzers can drive them without a guest.
 */
#pragma once

#include "kernel/kernel.h"

#include <errno.h>

/*
 * Kind of a failed read of guest data the kernel must have (its BTF, its
 * per-CPU table): the process being gone, memory or permission say so
 * themselves; anything else is what the caller knows the failure means.
 */
static inline enum vmw_error_kind vmw_read_failure_kind(int r, enum vmw_error_kind otherwise)
{
	if (r == -ESRCH || r == -ENOMEM || r == -EACCES || r == -EPERM)
		return vmw_error_kind_from_code(r);
	return otherwise;
}

/* ---- VMCOREINFO (vmcoreinfo.c) ------------------------------------------ */

#define VMW_VMCOREINFO_MAX 4096   /* the kernel's vmcoreinfo_data is one page */

struct vmw_vmcoreinfo_entry {
	const char *key;    /* "SYMBOL(_stext)", "OSRELEASE", ... (points into text) */
	const char *value;  /* raw text after '=' */
};

struct vmw_vmcoreinfo {
	char *text;                    /* NUL-terminated copy; keys/values point into `buf` */
	size_t len;                    /* strlen(text) */
	char *buf;                     /* text with '\n' and '=' replaced by NULs */
	struct vmw_vmcoreinfo_entry *entries;  /* in text order */
	size_t nentries;
	/* The fields every x86-64 kernel writes, checked by the parser. */
	char release[65];
	char build_id[41];
	uint64_t page_size;
	uint64_t kerneloffset;
	uint64_t phys_base;            /* NUMBER(phys_base), two's complement */
	uint64_t stext;                /* SYMBOL(_stext) */
	uint64_t pgd;                  /* SYMBOL(init_top_pgt), else SYMBOL(swapper_pg_dir) */
	int paging_levels;             /* 5 if NUMBER(pgtable_l5_enabled)=1, else 4 */
};

/*
 * Parse VMCOREINFO text (KEY=VALUE lines). `data` may hold trailing bytes
 * after a NUL, which are ignored; the text must end with '\n' before the NUL
 * or the end of data (a half-written page is rejected). Requires OSRELEASE,
 * BUILD-ID, PAGESIZE=4096, SYMBOL(_stext), NUMBER(phys_base), KERNELOFFSET and
 * SYMBOL(init_top_pgt) or SYMBOL(swapper_pg_dir). -EINVAL (with a reason in
 * *why, a static string) if the text is malformed or incomplete.
 */
int vmw_vmcoreinfo_parse(const void *data, size_t len, struct vmw_vmcoreinfo **ret,
			 const char **why);
void vmw_vmcoreinfo_free(struct vmw_vmcoreinfo *vi);

/* Raw value of KEY ("OSRELEASE", "SYMBOL(_stext)"), or NULL. */
const char *vmw_vmcoreinfo_get(const struct vmw_vmcoreinfo *vi, const char *key);
/* SYMBOL(name): hex address. 0, -ENOENT, or -EINVAL if malformed. */
int vmw_vmcoreinfo_symbol(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret);
/* NUMBER(name): signed decimal (or 0x hex) as 64-bit two's complement. */
int vmw_vmcoreinfo_number(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret);
/* OFFSET(name), SIZE(name), LENGTH(name): decimal. */
int vmw_vmcoreinfo_offset(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret);
int vmw_vmcoreinfo_size(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret);
int vmw_vmcoreinfo_length(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret);

/* Physical address of a kernel-image virtual address. */
static inline uint64_t vmw_image_phys(uint64_t phys_base, uint64_t vaddr)
{
	return vaddr - 0xffffffff80000000ull + phys_base;
}

/* Where a VMCOREINFO copy was found. */
enum vmw_vmcoreinfo_kind {
	VMW_VMCOREINFO_DATA = 1,  /* vmcoreinfo_data: text at a page start */
	VMW_VMCOREINFO_NOTE,      /* vmcoreinfo_note: Elf64_Nhdr + "VMCOREINFO\0" + text */
	VMW_VMCOREINFO_LOOSE,     /* byte scan: text anywhere */
};

struct vmw_vmcoreinfo_hit {
	uint64_t phys;            /* address of the text (after the note header) */
	enum vmw_vmcoreinfo_kind kind;
};

/*
 * Find VMCOREINFO copies in guest RAM: the first 16 bytes of every page are
 * checked (batched vmw_mem_readv); if no page matches, a byte scan looks for
 * "OSRELEASE=" followed by something other than a format directive. Returns
 * the number of hits (an array the caller frees) or a negative errno.
 * *scan_ns receives the time spent.
 */
int vmw_vmcoreinfo_scan(struct vmw_mem *mem, struct vmw_vmcoreinfo_hit **ret,
			uint64_t *scan_ns);
/* Pure helpers of the scan, exposed for tests: does this page start (at
 * least 16 bytes) look like a VMCOREINFO data page / note page? */
bool vmw_vmcoreinfo_page_is_data(const uint8_t *p);
bool vmw_vmcoreinfo_page_is_note(const uint8_t *p);

/* Read and parse the copy at `phys` (up to the end of its page). */
int vmw_vmcoreinfo_read(struct vmw_mem *mem, uint64_t phys, struct vmw_vmcoreinfo **ret,
			const char **why);

/* ---- symbol table (symtab.c) ------------------------------------------- */

struct vmw_ksym {
	uint64_t addr;
	uint32_t name;            /* offset into symtab->names */
	char type;                /* kallsyms type character ('T', 'D', 'A', ...) */
	bool percpu;              /* inside [__per_cpu_start, __per_cpu_end): an offset */
};

struct vmw_symtab_slot {
	uint32_t hash;            /* of the name */
	uint32_t idx;             /* index + 1 into syms; 0 = empty slot */
};

struct vmw_symtab {
	struct vmw_ksym *syms;    /* in kallsyms (address) order */
	uint32_t nsyms;
	char *names;              /* NUL-separated names */
	size_t names_len;
	struct vmw_symtab_slot *slots;  /* open addressing, linear probing */
	uint32_t slot_mask;       /* number of slots - 1 (a power of two) */
	void *blob;               /* if set, the arrays above point into it (cache) */
	size_t blob_len;
	void (*blob_free)(void *blob, size_t len);
};

/* Hash of a symbol name, as the index uses. */
uint32_t vmw_symtab_hash(const char *name);
/* Number of slots the index has for n symbols. */
uint32_t vmw_symtab_nslots(uint32_t nsyms);

/* Take ownership of syms and names and index them. */
int vmw_symtab_new(struct vmw_ksym *syms, uint32_t nsyms, char *names, size_t names_len,
		   struct vmw_symtab **ret);
/* Adopt arrays that live inside `blob` (e.g. a mapped cache file; owned on
 * success, released with blob_free) with an index built earlier. O(1): the
 * contents are not scanned; lookups bounds-check every index they follow, so
 * a damaged index gives wrong answers or misses, never a crash. -EINVAL. */
int vmw_symtab_adopt(void *blob, size_t blob_len, void (*blob_free)(void *, size_t),
		     struct vmw_ksym *syms, uint32_t nsyms, char *names, size_t names_len,
		     struct vmw_symtab_slot *slots, uint32_t nslots, struct vmw_symtab **ret);
void vmw_symtab_free(struct vmw_symtab *st);
/* First symbol of that name (kallsyms order), or NULL. */
const struct vmw_ksym *vmw_symtab_lookup(const struct vmw_symtab *st, const char *name);
static inline const char *vmw_ksym_name(const struct vmw_symtab *st, const struct vmw_ksym *s)
{
	return st->names + s->name;
}

/* ---- kallsyms (kallsyms.c) --------------------------------------------- */

/*
 * The kernel's kallsyms tables as byte buffers (little endian), as
 * scripts/kallsyms.c lays them out:
 *   names:       num_syms entries; each a length (1 byte, or 2 when bit 7 of
 *                the first is set: (b0 & 0x7f) | b1 << 7) then that many
 *                token bytes; the expansion's first char is the type.
 *   token_table: 256 NUL-terminated strings; token_index: 256 u16 offsets.
 *   offsets:     num_syms s32, relative to relative_base (see
 *                vmw_kallsyms_address).
 */
struct vmw_kallsyms_tables {
	const uint8_t *names;
	size_t names_len;         /* bytes available at names (may exceed the table) */
	uint32_t num_syms;
	const uint8_t *token_table;
	size_t token_table_len;
	const uint8_t *token_index;   /* 512 bytes */
	const uint8_t *offsets;       /* 4 * num_syms bytes */
	uint64_t relative_base;
};

/* Address of a symbol from its kallsyms offset. With absolute per-CPU
 * symbols (CONFIG_KALLSYMS_ABSOLUTE_PERCPU) non-negative offsets are absolute
 * values and negative ones are relative_base - 1 - offset; otherwise offsets
 * are unsigned and relative: relative_base + (u32)offset. */
static inline uint64_t vmw_kallsyms_address(int32_t off, uint64_t relative_base,
					    bool absolute_percpu)
{
	if (!absolute_percpu)
		return relative_base + (uint32_t)off;
	if (off >= 0)
		return (uint64_t)off;
	return relative_base - 1 - (int64_t)off;
}

/*
 * Decode all symbols. Fails with -EINVAL (reason in *why) on any
 * inconsistency: a token index outside the token table, a name running past
 * names_len, an empty name, a non-printable character. *names_used receives
 * the bytes of `names` consumed (the table's size), if not NULL.
 */
int vmw_kallsyms_decode(const struct vmw_kallsyms_tables *t, struct vmw_symtab **ret,
			size_t *names_used, const char **why);

/* Check a token table + index pair: 256 strings at the indexed offsets, each
 * NUL-terminated exactly where the next begins, printable. Returns the token
 * table's size in bytes, or -EINVAL. */
long vmw_kallsyms_check_tokens(const uint8_t *token_table, size_t avail,
			       const uint8_t *token_index);

/*
 * Locate the kallsyms tables by their structure inside a kernel image in a
 * buffer (pure; no VMCOREINFO kallsyms lines needed). `img` holds guest
 * memory starting at the image's kernel virtual address `img_vaddr` (i.e.
 * img[0] is _text). `stext` is SYMBOL(_stext), used to check the result.
 * On success fills *t (pointers into img) and the virtual addresses found
 * (for messages and the cache). -ENOENT (with *why) if not found.
 */
struct vmw_kallsyms_found {
	uint64_t names, num_syms, token_table, token_index, offsets, relative_base;
};
int vmw_kallsyms_locate(const uint8_t *img, size_t img_len, uint64_t img_vaddr,
			uint64_t stext, struct vmw_kallsyms_tables *t,
			struct vmw_kallsyms_found *found, const char **why);

/* ---- BTF (btf.c) ------------------------------------------------------- */

/* Parse a raw BTF blob (checks magic 9f eb 01 00 and header). */
int vmw_btf_parse(const void *data, size_t len, struct btf **ret, const char **why);
void vmw_btf_free(struct btf *btf);   /* NULL: nothing */
/* Member lookup on a parsed BTF (see vmw_kernel_member). */
int vmw_btf_member(const struct btf *btf, const char *type, const char *member,
		   uint32_t *ret_offset, uint32_t *ret_size);
int vmw_btf_member_bits(const struct btf *btf, const char *type, const char *member,
			uint32_t *ret_bit_offset, uint32_t *ret_bit_size);
int vmw_btf_type_size(const struct btf *btf, const char *type, uint32_t *ret);
/* Value of the enumerator `name` in any enum (ENUM or ENUM64). */
int vmw_btf_enum_value(const struct btf *btf, const char *name, int64_t *ret);

/* ---- layout memo (cache.c) ---------------------------------------------- */

/* The checksum cache files carry (entries: a trailing u64 over all bytes
 * before it; layout memos: a last line "# sum <hex>"). For tests and fuzzers
 * that write valid files. */
uint64_t vmw_kcache_sum(const void *data, size_t len);

/*
 * Answers of BTF queries (member offsets, type sizes, enum values), kept per
 * BUILD-ID on disk so that a cached attach can serve them without parsing
 * BTF at all. Keys are "M type member", "B type member", "S type", "E name",
 * "T tk_core" (kernel.c: vmw_kernel_tk_core), and "Y name" for kallsyms
 * lookups (kernel.c: a symbol's address without KERNELOFFSET, so that one
 * memo serves every boot of the build).
 */
struct vmw_memo_entry {
	char *key;
	uint32_t hash;     /* vmw_symtab_hash(key) */
	int rc;            /* 0 or the negative errno the query returned */
	uint64_t a, b;     /* offset/size, bit offset/bit size, size, value */
};

struct vmw_memo {
	struct vmw_memo_entry *e;
	size_t n, cap;
	bool dirty;        /* entries added since load */
};

const struct vmw_memo_entry *vmw_memo_find(const struct vmw_memo *m, const char *key);
int vmw_memo_add(struct vmw_memo *m, const char *key, int rc, uint64_t a, uint64_t b);
void vmw_memo_clear(struct vmw_memo *m);
/* DIR/<build_id>.layout: one "rc a b key" line per entry. */
int vmw_memo_load(const char *dir, const char *build_id, struct vmw_memo *m);
int vmw_memo_save(const char *dir, const char *build_id, const struct vmw_memo *m);

/* ---- discovery cache (cache.c) ----------------------------------------- */

/* What an entry remembers about one guest kernel (BUILD-ID + KERNELOFFSET). */
struct vmw_kcache {
	uint64_t vmcoreinfo_phys;
	char *vmcoreinfo_text;        /* exact text, re-compared against guest RAM */
	uint64_t btf_vaddr, btf_len;
	uint64_t tokens_vaddr;        /* kallsyms_token_table: re-compared on load */
	uint8_t tokens_head[64];
	const char *symbols_from;     /* how the symbols were found originally */
	uint32_t nsyms;               /* symbols in the entry's table */
	struct vmw_symtab *symtab;    /* NULL after vmw_kcache_load_head */
};

/* A cache entry's header, as written (host byte order; see cache.c). */
struct vmw_kcache_disk_header {
	char magic[8];
	uint64_t vmcoreinfo_phys;
	uint64_t btf_vaddr, btf_len;
	uint64_t tokens_vaddr;
	uint8_t tokens_head[64];
	uint32_t symbols_from_len, text_len;
	uint32_t nsyms, nslots;
	uint64_t names_len;
	uint64_t head_sum;            /* over header (this field as 0), symbols_from, text */
};

/* The cache directory and its rules: vmw_cache_dir, vmw_cache_dir_trusted (util.h). */
int vmw_kcache_save(const char *dir, const struct vmw_vmcoreinfo *vi,
		    const struct vmw_kcache *c);
/* Load the entry for (build_id, kerneloffset). -ENOENT if none, -EINVAL if
 * corrupt. */
int vmw_kcache_load(const char *dir, const char *build_id, uint64_t kerneloffset,
		    struct vmw_kcache *ret);
/* The entry's head only (header, VMCOREINFO text, where BTF and the token
 * table are): read and checked against its own checksum, the symbol table
 * neither mapped nor summed. What a warm attach needs; the table is loaded
 * (vmw_kcache_load) only when a symbol is asked that the memo lacks. */
int vmw_kcache_load_head(const char *dir, const char *build_id, uint64_t kerneloffset,
			 struct vmw_kcache *ret);
void vmw_kcache_clear(struct vmw_kcache *c);
/* Per-target hint: where VMCOREINFO was last found for this memory source,
 * and the guest's jiffies_64 at that wall-clock time (a running kernel's
 * jiffies keep up with the clock; a copy left by a previous boot's are frozen). */
struct vmw_kcache_hint {
	uint64_t vmcoreinfo_phys;
	uint64_t jiffies;
	uint64_t realtime_ns;     /* CLOCK_REALTIME */
};
int vmw_kcache_hint_get(const char *dir, const char *target_id, struct vmw_kcache_hint *ret);
int vmw_kcache_hint_put(const char *dir, const char *target_id, const struct vmw_kcache_hint *h);

/* ---- the attached kernel (kernel.c: queries; discover.c: finding it) ---- */

struct vmw_kernel {
	struct vmw_mem *mem;
	struct vmw_vmcoreinfo *vi;
	struct vmw_symtab *symtab;
	struct btf *btf;
	struct vmw_xlat *xlat;
	uint64_t *percpu;            /* __per_cpu_offset[0..nr_cpus) */
	struct vmw_kernel_info info;
	char symbols_from[160];
	char types_from[96];
	/* Kept for the cache entry. */
	uint64_t btf_vaddr, btf_len, tokens_vaddr;
	uint8_t tokens_head[64];
	const char *symbols_how;      /* "kallsyms via VMCOREINFO" / "... located by structure" */
	/* BTF is parsed on first need; answers are memoized (and cached). */
	int btf_err;                  /* parse failed: every later query gets this */
	const char *btf_why;
	struct vmw_memo memo;
	/* Symbols: the memo's "Y" answers first; the full table (symtab) is
	 * loaded on a miss (cache entry, else guest RAM) and can be dropped
	 * again (vmw_kernel_trim). */
	uint32_t nsyms;               /* of the full table, for info */
	int symtab_err;               /* loading the table failed: every later miss gets this */
	bool use_cache;
	char cache_dir[4096];
	char cache_warning[4096 + 300];   /* info.cache_warning points here */
	char bad_layout[256];             /* first "type.member" whose answer was inconsistent */
};

/* Free on all paths, with _cleanup_(vmw_kernel_detachp). */
VMW_DEFINE_CLEANUP(struct vmw_kernel, vmw_kernel_detach)

/* Parse the BTF blob (btf_vaddr, btf_len) unless done; a failure sticks. */
int vmw_kernel_ensure_btf(struct vmw_kernel *k);
/* Load the full symbol table unless loaded: from the cache entry (checked
 * against VMCOREINFO like a decoded one), else decoded from guest RAM
 * (discover.c). A failure sticks. */
int vmw_kernel_ensure_symtab(struct vmw_kernel *k);

/* Find the kernel in mem (cache first, then a full discovery) and set it
 * up: BTF, per-CPU offsets, address space, info. tid names the target for
 * the cache's hint file. */
int vmw_kernel_discover(struct vmw_mem *mem, const struct vmw_kernel_opts *o, const char *tid,
			struct vmw_kernel **ret, struct vmw_error *err);

/* Read kernel-image memory at a kernel virtual address (through phys_base). */
static inline int vmw_read_image(struct vmw_mem *mem, uint64_t phys_base, uint64_t vaddr, void *buf,
				 size_t len)
{
	if (vaddr < VMW_KERNEL_MAP_BASE || vaddr - VMW_KERNEL_MAP_BASE >= VMW_KERNEL_MAP_SIZE)
		return -EFAULT;
	return vmw_mem_read(mem, vmw_image_phys(phys_base, vaddr), buf, len);
}

