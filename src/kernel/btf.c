/* SPDX-License-Identifier: MIT */
/*
 * btf.c - the guest kernel's BTF (parsed by libbpf) and member lookups on it.
 *
 * libbpf (and the libelf and zlib it pulls in) is dlopen()ed the first time
 * a BTF blob is parsed, not linked: a warm attach answers from the cache's
 * layout memo and never parses BTF, so a sampler or a `vmwatch ps` with a
 * warm cache never maps or relocates the three libraries (~32 KiB of
 * private memory per process: ~3 MiB for an agent's 100 samplers). Its
 * header gives the types and the inline helpers; the functions called go
 * through the table below (every libbpf function used must be in it).
 * The libraries are unloaded again when the last parsed BTF is freed: a
 * sampler that attached cold gives them back with the BTF after its first
 * frame (vmw_kernel_trim), and is then as small as one that attached warm.
 */
#include "kernel/kernel_internal.h"

#include <bpf/btf.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/btf.h>
#include <pthread.h>
#include <string.h>

#define LIBBPF_SONAME "libbpf.so.1"

#define BPF_FUNCS(X)                                                                   \
	X(btf__new) X(btf__free) X(btf__find_by_name_kind) X(btf__name_by_offset)        \
	X(btf__resolve_size) X(btf__resolve_type) X(btf__type_by_id) X(btf__type_cnt)

#define FN_FIELD(f) __typeof__(&f) f;
static struct { BPF_FUNCS(FN_FIELD) } bpf;
#undef FN_FIELD
/* The table is filled while bpf_handle is set, and bpf_users counts the
 * parsed BTFs alive and the parses under way: lookups on a parsed BTF
 * need no lock. */
static pthread_mutex_t bpf_lock = PTHREAD_MUTEX_INITIALIZER;
static void *bpf_handle;
static size_t bpf_users;
static char bpf_load_err[300];   /* why it could not be loaded */

/* Under bpf_lock. */
static bool bpf_load(void)
{
#define FN_NAME(f) #f,
#define FN_SLOT(f) (void **)&bpf.f,
	static const char *const names[] = { BPF_FUNCS(FN_NAME) };
	void **const slots[] = { BPF_FUNCS(FN_SLOT) };
#undef FN_NAME
#undef FN_SLOT
	char e[240];

	_Static_assert(ARRAY_SIZE(names) <= VMW_DL_MAX, "raise VMW_DL_MAX");
	if (bpf_handle)
		return true;
	bpf_handle = vmw_dl_open(LIBBPF_SONAME, names, slots, ARRAY_SIZE(names), e, sizeof(e));
	if (!bpf_handle)
		snprintf(bpf_load_err, sizeof(bpf_load_err),
			 "cannot load libbpf to parse BTF (install libbpf1): %s", e);
	return bpf_handle != NULL;
}

/* Under bpf_lock: the last parsed BTF is gone. */
static void bpf_unload(void)
{
	if (bpf_users || !bpf_handle)
		return;
	memset(&bpf, 0, sizeof(bpf));
	dlclose(bpf_handle);
	bpf_handle = NULL;
}

/* From here on, every call goes through the table. A struct btf exists only
 * when the library was loaded (vmw_btf_parse made it). */
#define btf__new (*bpf.btf__new)
#define btf__free (*bpf.btf__free)
#define btf__find_by_name_kind (*bpf.btf__find_by_name_kind)
#define btf__name_by_offset (*bpf.btf__name_by_offset)
#define btf__resolve_size (*bpf.btf__resolve_size)
#define btf__resolve_type (*bpf.btf__resolve_type)
#define btf__type_by_id (*bpf.btf__type_by_id)
#define btf__type_cnt (*bpf.btf__type_cnt)

void vmw_btf_free(struct btf *btf)
{
	if (!btf)
		return;
	btf__free(btf);
	pthread_mutex_lock(&bpf_lock);
	bpf_users--;
	bpf_unload();
	pthread_mutex_unlock(&bpf_lock);
}

int vmw_btf_parse(const void *data, size_t len, struct btf **ret, const char **why)
{
	const struct btf_header *h = data;
	struct btf *btf;
	const char *why_dummy;

	if (!why)
		why = &why_dummy;
	if (len < sizeof(*h) || h->magic != BTF_MAGIC || h->version != BTF_VERSION) {
		*why = "no BTF magic (9f eb 01 00) at __start_BTF";
		return -EINVAL;
	}
	if (h->hdr_len < sizeof(*h) || (uint64_t)h->hdr_len + h->str_off + h->str_len > len ||
	    (uint64_t)h->hdr_len + h->type_off + h->type_len > len || len > UINT32_MAX) {
		*why = "BTF header does not fit __start_BTF..__stop_BTF";
		return -EINVAL;
	}
	/* Counted as a user from here: the library stays while it parses,
	 * and parses on other threads run alongside. */
	pthread_mutex_lock(&bpf_lock);
	if (!bpf_load()) {
		pthread_mutex_unlock(&bpf_lock);
		*why = bpf_load_err;
		return -ENOTSUP;
	}
	bpf_users++;
	pthread_mutex_unlock(&bpf_lock);
	errno = 0;
	btf = btf__new(data, (uint32_t)len);
	if (!btf) {
		int e = errno ? -errno : -EINVAL;
		pthread_mutex_lock(&bpf_lock);
		bpf_users--;
		bpf_unload();
		pthread_mutex_unlock(&bpf_lock);
		*why = "libbpf rejected the BTF blob";
		return e;
	}
	*ret = btf;
	return 0;
}

/* The struct/union named `type` (directly, or through a typedef). */
static int find_composite(const struct btf *btf, const char *type, int32_t *ret)
{
	static const int kinds[] = { BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_TYPEDEF };

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		int32_t id = btf__find_by_name_kind(btf, type, (uint32_t)kinds[i]);
		if (id <= 0)
			continue;
		id = btf__resolve_type(btf, (uint32_t)id);
		if (id <= 0)
			continue;
		if (btf_is_composite(btf__type_by_id(btf, (uint32_t)id))) {
			*ret = id;
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * Members one lookup may visit. A real task_struct search visits a few
 * hundred; hostile BTF can nest anonymous members so that the search tree
 * doubles at every level (2^32 paths at depth 32), so the count, not only
 * the depth, is bounded.
 */
#define MAX_MEMBER_VISITS (1u << 16)

/* Find `name` among the members of composite `id`, looking inside anonymous
 * struct/union members. On success: bit offset from the start of `id`, the
 * member's type id and bitfield size (0 if not a bitfield). -EBADMSG when
 * the search ran out of its visit budget (inconsistent BTF). */
static int find_member(const struct btf *btf, int32_t id, const char *name, size_t name_len,
		       uint64_t *bit_off, int32_t *member_type, uint32_t *bitfield, int depth,
		       uint32_t *budget)
{
	const struct btf_type *t = btf__type_by_id(btf, (uint32_t)id);
	const struct btf_member *m;

	if (!t || !btf_is_composite(t) || depth > 32)
		return -ENOENT;
	m = btf_members(t);
	for (uint32_t i = 0; i < btf_vlen(t); i++, m++) {
		if (!*budget)
			return -EBADMSG;
		(*budget)--;
		const char *mn = btf__name_by_offset(btf, m->name_off);
		uint64_t off = btf_member_bit_offset(t, i);
		if (mn && *mn) {
			if (strlen(mn) == name_len && !memcmp(mn, name, name_len)) {
				*bit_off = off;
				*member_type = (int32_t)m->type;
				*bitfield = btf_member_bitfield_size(t, i);
				return 0;
			}
			continue;
		}
		/* Anonymous member: search inside it. */
		int32_t sub = btf__resolve_type(btf, m->type);
		uint64_t sub_off;
		int r = sub > 0 ? find_member(btf, sub, name, name_len, &sub_off, member_type, bitfield,
					      depth + 1, budget) : -ENOENT;
		if (r == 0) {
			*bit_off = off + sub_off;
			return 0;
		}
		if (r != -ENOENT)
			return r;
	}
	return -ENOENT;
}

/*
 * BTF from guest RAM is attacker-controlled: a member must lie inside its
 * structure (offset + size within the structure's size, in 64-bit
 * arithmetic), or every reader sized by these numbers could be pointed
 * outside its buffer. libbpf bounds type-resolution depth and checks type
 * ids; containment is ours. -EBADMSG: the BTF is inconsistent.
 */
static int member_inside(const struct btf *btf, int32_t container, uint64_t bit_off, int32_t mtype,
			 uint32_t bitfield)
{
	int64_t csize = btf__resolve_size(btf, (uint32_t)container);
	int64_t msize = bitfield ? 0 : btf__resolve_size(btf, (uint32_t)mtype);
	uint64_t mbits = bitfield ? bitfield : (uint64_t)msize * 8;

	if (csize < 0 || msize < 0)
		return -EBADMSG;
	if (bit_off > (uint64_t)csize * 8 || mbits > (uint64_t)csize * 8 - bit_off)
		return -EBADMSG;
	return 0;
}

static int btf_member_bits(const struct btf *btf, const char *type, const char *member,
			   uint64_t *ret_bit_off, uint32_t *ret_bitfield, int32_t *ret_type)
{
	int32_t id, mtype = 0;
	uint64_t total = 0;
	uint32_t bitfield = 0;
	const char *p = member;
	int r;

	r = find_composite(btf, type, &id);
	if (r < 0)
		return r;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		uint64_t off;
		if (!len)
			return -EINVAL;
		if (bitfield)
			return -EINVAL;   /* path through a bitfield */
		uint32_t budget = MAX_MEMBER_VISITS;
		r = find_member(btf, id, p, len, &off, &mtype, &bitfield, 0, &budget);
		if (r < 0)
			return r;
		r = member_inside(btf, id, off, mtype, bitfield);
		if (r < 0)
			return r;
		total += off;
		if (!dot)
			break;
		id = btf__resolve_type(btf, (uint32_t)mtype);
		if (id <= 0)
			return -ENOENT;
		p = dot + 1;
	}
	*ret_bit_off = total;
	*ret_bitfield = bitfield;
	*ret_type = mtype;
	return 0;
}

/* Where a member is: bit offset, width in bits (the bitfield's, else its
 * type's size * 8), and whether it is a bitfield. */
struct extent {
	uint64_t bits;
	uint64_t width;           /* in bits: a member may be up to 4 GiB, 2^35 bits */
	bool bitfield;
};

static int member_extent(const struct btf *btf, const char *type, const char *member,
			 struct extent *ret)
{
	uint32_t bitfield;
	int32_t mtype;
	int64_t size;
	int r;

	r = btf_member_bits(btf, type, member, &ret->bits, &bitfield, &mtype);
	if (r < 0)
		return r;
	ret->bitfield = bitfield != 0;
	ret->width = bitfield;
	if (!bitfield) {
		size = btf__resolve_size(btf, (uint32_t)mtype);
		if (size < 0)
			return (int)size;
		ret->width = (uint64_t)size * 8;
	}
	return 0;
}

int vmw_btf_member(const struct btf *btf, const char *type, const char *member,
		   uint32_t *ret_offset, uint32_t *ret_size)
{
	struct extent e;
	int r = member_extent(btf, type, member, &e);

	if (r < 0)
		return r;
	if (e.bitfield || e.bits % 8)
		return -ENOTSUP;   /* use vmw_kernel_member_bits */
	if (ret_offset)
		*ret_offset = (uint32_t)(e.bits / 8);
	if (ret_size)
		*ret_size = (uint32_t)(e.width / 8);
	return 0;
}

int vmw_btf_member_bits(const struct btf *btf, const char *type, const char *member,
			uint32_t *ret_bit_offset, uint32_t *ret_bit_size)
{
	struct extent e;
	int r = member_extent(btf, type, member, &e);

	/* A member of a structure of 512 MiB or more may end beyond 2^32 bits
	 * (vmw_btf_member can still answer it in bytes): not truncated, refused. */
	if (r == 0 && (e.bits > UINT32_MAX || e.width > UINT32_MAX - e.bits))
		r = -EBADMSG;
	if (r == 0 && ret_bit_offset)
		*ret_bit_offset = (uint32_t)e.bits;
	if (r == 0 && ret_bit_size)
		*ret_bit_size = (uint32_t)e.width;
	return r;
}

int vmw_btf_type_size(const struct btf *btf, const char *type, uint32_t *ret)
{
	int32_t id;
	int64_t size;
	int r = find_composite(btf, type, &id);
	if (r < 0)
		return r;
	size = btf__resolve_size(btf, (uint32_t)id);
	if (size < 0)
		return (int)size;
	*ret = (uint32_t)size;
	return 0;
}

int vmw_btf_enum_value(const struct btf *btf, const char *name, int64_t *ret)
{
	uint32_t n = btf__type_cnt(btf);

	for (uint32_t id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		if (btf_is_enum(t)) {
			const struct btf_enum *e = btf_enum(t);
			for (uint16_t i = 0; i < btf_vlen(t); i++, e++) {
				const char *en = btf__name_by_offset(btf, e->name_off);
				if (en && !strcmp(en, name)) {
					/* kflag: signed enum; else the s32 holds a u32. */
					*ret = btf_kflag(t) ? (int64_t)e->val : (int64_t)(uint32_t)e->val;
					return 0;
				}
			}
		} else if (btf_is_enum64(t)) {
			const struct btf_enum64 *e = btf_enum64(t);
			for (uint16_t i = 0; i < btf_vlen(t); i++, e++) {
				const char *en = btf__name_by_offset(btf, e->name_off);
				if (en && !strcmp(en, name)) {
					*ret = (int64_t)btf_enum64_value(e);
					return 0;
				}
			}
		}
	}
	return -ENOENT;
}

/*
 * tk_core is `static struct { seqcount_raw_spinlock_t seq; struct timekeeper
 * timekeeper; ... } tk_core`: an anonymous struct, found by its members
 * rather than by name. Both members must lie inside it (the struct's size is
 * what a reader allocates): a struct with a member outside it is no
 * candidate. -ENOENT: none; -ENOTSUP: several candidates that disagree.
 */
int vmw_btf_tk_core(const struct btf *btf, uint32_t *ret_size, uint32_t *ret_tk, uint32_t *ret_seq)
{
	uint32_t n = btf__type_cnt(btf), found = 0;
	int32_t tk_type;

	/* The member must be of the struct timekeeper its readers ask about by
	 * name (vmw_btf_member "timekeeper" ...): hostile BTF may hold another,
	 * smaller struct of that name, whose fitting would say nothing about
	 * where those readers' offsets land. */
	if (find_composite(btf, "timekeeper", &tk_type) < 0)
		return -ENOENT;
	for (uint32_t id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_member *m;
		int64_t tk = -1, seq = -1;

		if (!btf_is_struct(t) || t->name_off)
			continue;
		m = btf_members(t);
		for (uint16_t i = 0; i < btf_vlen(t); i++) {
			const char *name = btf__name_by_offset(btf, m[i].name_off);
			int32_t mid = btf__resolve_type(btf, m[i].type);
			const struct btf_type *mt = mid > 0 ? btf__type_by_id(btf, (uint32_t)mid) : NULL;
			const char *mname = mt ? btf__name_by_offset(btf, mt->name_off) : NULL;
			uint32_t bit_off = btf_member_bit_offset(t, i);

			if (!name || !mt || btf_member_bitfield_size(t, i) || bit_off % 8)
				continue;
			/* A member outside the struct makes it no candidate. */
			if (member_inside(btf, (int32_t)id, bit_off, m[i].type, 0) < 0)
				continue;
			if (!strcmp(name, "timekeeper") && mid == tk_type && btf_is_struct(mt) && mname &&
			    !strcmp(mname, "timekeeper"))
				tk = bit_off / 8;
			else if (!strcmp(name, "seq") && (uint64_t)bit_off / 8 + 4 <= t->size)
				seq = bit_off / 8;
		}
		if (tk < 0 || seq < 0)
			continue;
		if (found && ((uint32_t)tk != *ret_tk || (uint32_t)seq != *ret_seq))
			return -ENOTSUP;
		*ret_size = t->size;
		*ret_tk = (uint32_t)tk;
		*ret_seq = (uint32_t)seq;
		found++;
	}
	return found ? 0 : -ENOENT;
}
