/* SPDX-License-Identifier: MIT */
/*
 * kernel.c - the attached kernel's queries: symbols, per-CPU offsets, and
 * the BTF layout questions, answered from the memo (on disk per BUILD-ID)
 * or from BTF parsed on first need. Finding the kernel is discover.c.
 */
#include "kernel/kernel_internal.h"

#include <bpf/btf.h>
#include <errno.h>
#include <string.h>

void vmw_kernel_detach(struct vmw_kernel *k)
{
	if (!k)
		return;
	/* Best effort: remember the layouts this run asked for. */
	if (k->use_cache && k->memo.dirty && k->vi)
		vmw_memo_save(k->cache_dir, k->vi->build_id, &k->memo);
	vmw_memo_clear(&k->memo);
	vmw_xlat_free(k->xlat);
	vmw_btf_free(k->btf);
	vmw_symtab_free(k->symtab);
	vmw_vmcoreinfo_free(k->vi);
	free(k->percpu);
	free(k);
}

const struct vmw_kernel_info *vmw_kernel_info(const struct vmw_kernel *k) { return &k->info; }
struct vmw_xlat *vmw_kernel_xlat(struct vmw_kernel *k) { return k->xlat; }

/*
 * Symbols are memoized like layouts ("Y name"), per BUILD-ID: a = the
 * address, b = the type character | percpu << 8 | image << 9. Addresses in
 * the kernel image mapping move with KASLR and are kept without
 * KERNELOFFSET (image set); per-CPU offsets and absolute values do not move.
 * A memo answer that does not decode to a plausible symbol is ignored and
 * asked again of the table.
 */
#define SYM_PERCPU (1u << 8)
#define SYM_IMAGE (1u << 9)

static bool in_image_map(uint64_t addr)
{
	return addr >= VMW_KERNEL_MAP_BASE && addr - VMW_KERNEL_MAP_BASE < VMW_KERNEL_MAP_SIZE;
}

static bool sym_from_memo(const struct vmw_kernel *k, const struct vmw_memo_entry *e,
			  struct vmw_kernel_sym *ret)
{
	uint64_t addr = e->a;
	char type = (char)(e->b & 0xff);

	if (e->b & ~(uint64_t)(0xff | SYM_PERCPU | SYM_IMAGE) || type <= 0x20 || type >= 0x7f)
		return false;
	if (e->b & SYM_IMAGE) {
		addr += k->vi->kerneloffset;
		if (!in_image_map(addr))
			return false;
	} else if (in_image_map(addr)) {
		return false;
	}
	*ret = (struct vmw_kernel_sym){ .addr = addr, .type = type, .percpu = e->b & SYM_PERCPU };
	return true;
}

int vmw_kernel_lookup(struct vmw_kernel *k, const char *name, struct vmw_kernel_sym *ret)
{
	char key[600];
	const struct vmw_memo_entry *e;
	const struct vmw_ksym *s;
	struct vmw_kernel_sym sym;
	int r;

	if ((size_t)snprintf(key, sizeof(key), "Y %s", name) >= sizeof(key))
		return -ENAMETOOLONG;
	e = vmw_memo_find(&k->memo, key);
	if (e && e->rc == -ENOENT)
		return -ENOENT;
	if (e && e->rc == 0 && sym_from_memo(k, e, &sym)) {
		if (ret)
			*ret = sym;
		return 0;
	}
	if ((r = vmw_kernel_ensure_symtab(k)) < 0)
		return r;
	s = vmw_symtab_lookup(k->symtab, name);
	if (!e) {
		bool image = s && in_image_map(s->addr);
		r = vmw_memo_add(&k->memo, key, s ? 0 : -ENOENT, s ? s->addr - (image ? k->vi->kerneloffset : 0) : 0,
				 s ? (uint8_t)s->type | (s->percpu ? SYM_PERCPU : 0) | (image ? SYM_IMAGE : 0) : 0);
		if (r < 0)
			return r;
	}
	if (!s)
		return -ENOENT;
	if (ret)
		*ret = (struct vmw_kernel_sym){ .addr = s->addr, .type = s->type, .percpu = s->percpu };
	return 0;
}

int vmw_kernel_symbol(struct vmw_kernel *k, const char *name, uint64_t *ret)
{
	struct vmw_kernel_sym s;
	int r = vmw_kernel_lookup(k, name, &s);
	if (r < 0)
		return r;
	*ret = s.addr;
	return 0;
}

int vmw_kernel_percpu_offset(struct vmw_kernel *k, unsigned cpu, uint64_t *ret)
{
	if (cpu >= k->info.nr_cpus)
		return -ENOENT;
	*ret = k->percpu[cpu];
	return 0;
}

const char *vmw_kernel_vmcoreinfo(const struct vmw_kernel *k, const char *key)
{
	return vmw_vmcoreinfo_get(k->vi, key);
}

int vmw_kernel_ensure_btf(struct vmw_kernel *k)
{
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t t0;
	int r;

	if (k->btf)
		return 0;
	if (k->btf_err)
		return k->btf_err;
	t0 = vmw_now_ns();
	buf = malloc(k->btf_len);
	if (!buf)
		return -ENOMEM;
	r = vmw_read_image(k->mem, k->vi->phys_base, k->btf_vaddr, buf, k->btf_len);
	if (r < 0)
		k->btf_why = "not readable in guest RAM";
	else
		r = vmw_btf_parse(buf, k->btf_len, &k->btf, &k->btf_why);
	if (r < 0 && r != -ENOMEM)
		k->btf_err = r;
	k->info.btf_ns += vmw_now_ns() - t0;
	return r;
}

const struct btf *vmw_kernel_btf(const struct vmw_kernel *k)
{
	/* Lazily parsed: k is never a const object, only a const view. */
	struct vmw_kernel *mk = (struct vmw_kernel *)k;
	return vmw_kernel_ensure_btf(mk) == 0 ? mk->btf : NULL;
}

const char *vmw_kernel_btf_why(const struct vmw_kernel *k)
{
	return k->btf_err ? k->btf_why : NULL;
}

/* Answer a BTF query from the memo, else from BTF (and memoize it). */
enum query { Q_MEMBER, Q_BITS, Q_SIZE, Q_ENUM, Q_TK_CORE };

static int query(struct vmw_kernel *k, enum query q, const char *type, const char *member,
		 uint64_t *a, uint64_t *b)
{
	static const char tag[] = "MBSET";
	char key[600];
	const struct vmw_memo_entry *e;
	uint32_t x = 0, y = 0;
	int64_t v = 0;
	int r;

	if ((size_t)snprintf(key, sizeof(key), "%c %s%s%s", tag[q], type, member ? " " : "",
			     member ? member : "") >= sizeof(key))
		return -ENAMETOOLONG;
	e = vmw_memo_find(&k->memo, key);
	if (e) {
		*a = e->a;
		*b = e->b;
		return e->rc;
	}
	r = vmw_kernel_ensure_btf(k);
	if (r < 0)
		return r;
	switch (q) {
	case Q_MEMBER: r = vmw_btf_member(k->btf, type, member, &x, &y); break;
	case Q_BITS: r = vmw_btf_member_bits(k->btf, type, member, &x, &y); break;
	case Q_SIZE: r = vmw_btf_type_size(k->btf, type, &x); break;
	case Q_ENUM: r = vmw_btf_enum_value(k->btf, type, &v); break;
	case Q_TK_CORE: {
		uint32_t tk = 0, seq = 0;
		r = vmw_btf_tk_core(k->btf, &x, &tk, &seq);
		y = 0;
		v = (int64_t)((uint64_t)tk << 32 | seq);
		break;
	}
	}
	*a = q == Q_ENUM ? (uint64_t)v : x;
	*b = q == Q_TK_CORE ? (uint64_t)v : y;
	/* Answers (found or not) depend only on the kernel build: memoize them,
	 * but not transient failures. */
	if (r == 0 || r == -ENOENT || r == -ENOTSUP || r == -EINVAL) {
		int m = vmw_memo_add(&k->memo, key, r, *a, *b);
		if (m < 0)
			return m;
	}
	return r;
}

/*
 * Layout answers come from guest BTF or from the cache's memo: both are
 * untrusted, and callers size buffers with them. No structure vmwatch reads
 * comes near 1 MiB (the largest, pglist_data, is ~180 KiB with 1,024 NUMA
 * nodes configured); an answer beyond that is refused as inconsistent.
 */
#define MAX_MEMBER_END (1ull << 20)

/* A query with two 32-bit answers (offset and size, in bytes or bits). */
static int query_u32(struct vmw_kernel *k, enum query q, const char *type, const char *member,
		     uint32_t *ret_a, uint32_t *ret_b)
{
	uint64_t a, b, end = q == Q_BITS ? MAX_MEMBER_END * 8 : MAX_MEMBER_END;
	int r = query(k, q, type, member, &a, &b);
	if (r == 0 && (a > end || (q != Q_SIZE && b > end - a)))
		r = -EBADMSG;
	if (r == -EBADMSG && !k->bad_layout[0])
		snprintf(k->bad_layout, sizeof(k->bad_layout), "%s%s%s", type, member ? "." : "",
			 member ? member : "");
	if (r < 0)
		return r;
	if (ret_a)
		*ret_a = (uint32_t)a;
	if (ret_b)
		*ret_b = (uint32_t)b;
	return 0;
}

int vmw_kernel_member(struct vmw_kernel *k, const char *type, const char *member,
		      uint32_t *ret_offset, uint32_t *ret_size)
{
	return query_u32(k, Q_MEMBER, type, member, ret_offset, ret_size);
}

int vmw_kernel_member_bits(struct vmw_kernel *k, const char *type, const char *member,
			   uint32_t *ret_bit_offset, uint32_t *ret_bit_size)
{
	return query_u32(k, Q_BITS, type, member, ret_bit_offset, ret_bit_size);
}

int vmw_kernel_type_size(struct vmw_kernel *k, const char *type, uint32_t *ret)
{
	return query_u32(k, Q_SIZE, type, NULL, ret, NULL);
}

int vmw_kernel_enum_value(struct vmw_kernel *k, const char *name, int64_t *ret)
{
	uint64_t a, b;
	int r = query(k, Q_ENUM, name, NULL, &a, &b);
	if (r < 0)
		return r;
	*ret = (int64_t)a;
	return 0;
}

int vmw_kernel_tk_core(struct vmw_kernel *k, uint32_t *ret_size, uint32_t *ret_tk, uint32_t *ret_seq)
{
	uint64_t size, b;
	int r = query(k, Q_TK_CORE, "tk_core", NULL, &size, &b);
	uint32_t tk = (uint32_t)(b >> 32), seq = (uint32_t)b;

	if (r < 0)
		return r;
	/* As vmw_btf_tk_core promises: both inside the struct. */
	if (size > MAX_MEMBER_END || tk >= size || (uint64_t)seq + 4 > size) {
		if (!k->bad_layout[0])
			snprintf(k->bad_layout, sizeof(k->bad_layout), "tk_core");
		return -EBADMSG;
	}
	*ret_size = (uint32_t)size;
	*ret_tk = tk;
	*ret_seq = seq;
	return 0;
}

void vmw_kernel_trim(struct vmw_kernel *k)
{
	if (k->use_cache && k->memo.dirty && k->vi && vmw_memo_save(k->cache_dir, k->vi->build_id, &k->memo) == 0)
		k->memo.dirty = false;
	vmw_btf_free(k->btf);
	k->btf = NULL;
	vmw_symtab_free(k->symtab);
	k->symtab = NULL;
}

/* Identity of a memory source for the hint file: the QEMU process (PID and
 * start time, so a reused PID is a new target) or the description. */
static void target_id(struct vmw_mem *mem, char *buf, size_t size)
{
	struct vmw_qemu_id id = { 0 };
	pid_t pid = vmw_mem_pid(mem);

	if (pid > 0) {
		vmw_qemu_id_get(pid, &id);   /* start time 0 if it cannot be read */
		snprintf(buf, size, "qemu:%d:%llu", (int)pid, (unsigned long long)id.start_ticks);
	} else {
		snprintf(buf, size, "%s", vmw_mem_describe(mem));
	}
}

static void opts_copy(struct vmw_kernel_opts *dst, const struct vmw_kernel_opts *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src) {
		size_t n = src->sz ? MIN(src->sz, sizeof(*dst)) : sizeof(*dst);
		memcpy(dst, src, n);
	}
	dst->sz = sizeof(*dst);
}

int vmw_kernel_attach(struct vmw_mem *mem, const struct vmw_kernel_opts *opts,
		      struct vmw_kernel **ret, struct vmw_error *err)
{
	struct vmw_kernel_opts o;
	struct vmw_kernel *k;
	char tid[600];
	uint64_t t0 = vmw_now_ns();
	int r;

	opts_copy(&o, opts);
	target_id(mem, tid, sizeof(tid));
	r = vmw_kernel_discover(mem, &o, tid, &k, err);
	if (r < 0)
		return r;
	k->info.attach_ns = vmw_now_ns() - t0;
	*ret = k;
	return 0;
}

const char *vmw_kernel_bad_layout(const struct vmw_kernel *k)
{
	return k->bad_layout[0] ? k->bad_layout : NULL;
}
