/* SPDX-License-Identifier: MIT */
/*
 * make_btf_seed.c - a small BTF seed for fuzz_btf from a kernel's whole BTF
 * (4-5 MiB, too slow to parse thousands of times a second): the types the
 * Linux model asks about (fuzz_btf.h) with what their answers depend on.
 * Queried structs keep their members two levels deep (dotted paths), their
 * members' structs one level; deeper structs keep their name and size only;
 * pointers point to void. The seed is written only if it answers every
 * query exactly as the whole BTF does.
 *
 *   make_btf_seed WHOLE.btf SEED.btf
 *
 * WHOLE.btf: the kernel's .BTF section (e.g. extracted from the vmlinux
 * inside the Debian kernel package, or read from guest RAM between
 * __start_BTF and __stop_BTF).
 */
#include "fuzz_btf.h"
#include "fuzz_util.h"

#include <errno.h>
#include <linux/btf.h>

static const struct btf *src;
static struct btf *dst;
static int32_t *done;        /* src id * 4 + depth -> dst id of a non-struct, or stub */
static int32_t *full;        /* src id -> dst id of a struct with members */
static int *full_depth;

static int clone(uint32_t id, int depth);

static int check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "make_btf_seed: %s: %s\n", what, strerror(-r));
		exit(1);
	}
	return r;
}

static int clone_composite(uint32_t id, const struct btf_type *t, int depth)
{
	const char *name = btf__name_by_offset(src, t->name_off);
	const struct btf_member *m = btf_members(t);
	uint16_t vlen = btf_vlen(t);
	int32_t *mt;
	int r;

	if (depth <= 0) {
		if (done[id * 4])
			return done[id * 4];
		r = btf_is_struct(t) ? btf__add_struct(dst, name, t->size)
				     : btf__add_union(dst, name, t->size);
		return done[id * 4] = check(r, "add stub");
	}
	if (full[id] && full_depth[id] >= depth)
		return full[id];
	if (!(mt = calloc(vlen + 1u, sizeof(*mt))))
		exit(1);
	for (uint16_t i = 0; i < vlen; i++) {
		const char *mn = btf__name_by_offset(src, m[i].name_off);
		/* anonymous members are looked through: same depth */
		mt[i] = clone(m[i].type, mn && *mn ? depth - 1 : depth);
	}
	r = check(btf_is_struct(t) ? btf__add_struct(dst, name, t->size)
				   : btf__add_union(dst, name, t->size), "add struct");
	for (uint16_t i = 0; i < vlen; i++)
		check(btf__add_field(dst, btf__name_by_offset(src, m[i].name_off), mt[i],
				     btf_member_bit_offset(t, i), btf_member_bitfield_size(t, i)),
		      "add field");
	free(mt);
	full[id] = r;
	full_depth[id] = depth;
	return r;
}

static int clone(uint32_t id, int depth)
{
	const struct btf_type *t;
	const char *name;
	int r;

	if (!id)
		return 0;
	depth = depth < 0 ? 0 : depth > 3 ? 3 : depth;
	t = btf__type_by_id(src, id);
	if (btf_is_composite(t))
		return clone_composite(id, t, depth);
	if (done[id * 4 + depth])
		return done[id * 4 + depth];
	name = btf__name_by_offset(src, t->name_off);
	switch (btf_kind(t)) {
	case BTF_KIND_INT: case BTF_KIND_FLOAT: case BTF_KIND_ENUM: case BTF_KIND_ENUM64:
	case BTF_KIND_FWD:
		r = btf__add_type(dst, src, t);
		break;
	case BTF_KIND_TYPEDEF:
		r = clone(t->type, depth);
		r = btf__add_typedef(dst, name, r);
		break;
	case BTF_KIND_VOLATILE:
		r = btf__add_volatile(dst, clone(t->type, depth));
		break;
	case BTF_KIND_CONST:
		r = btf__add_const(dst, clone(t->type, depth));
		break;
	case BTF_KIND_RESTRICT:
		r = btf__add_restrict(dst, clone(t->type, depth));
		break;
	case BTF_KIND_TYPE_TAG:
		return clone(t->type, depth);
	case BTF_KIND_ARRAY: {
		const struct btf_array *a = btf_array(t);
		int e = clone(a->type, depth), ix = clone(a->index_type, 0);
		r = btf__add_array(dst, ix, e, a->nelems);
		break;
	}
	default:   /* pointers, functions: a pointer to void (8 bytes) */
		r = btf__add_ptr(dst, 0);
		break;
	}
	return done[id * 4 + depth] = check(r, "add type");
}

int main(int argc, char **argv)
{
	struct fuzz_btf_answers want, got;
	struct btf *whole, *seed;
	const char *why = "";
	size_t len;
	uint32_t n, raw_len, tk_size, tk_off, tk_seq;
	const void *raw;
	void *data;

	if (argc != 3) {
		fprintf(stderr, "usage: make_btf_seed WHOLE.btf SEED.btf\n");
		return 2;
	}
	if (!(data = fuzz_slurp(argv[1], &len)) || vmw_btf_parse(data, len, &whole, &why) < 0) {
		fprintf(stderr, "make_btf_seed: %s: %s\n", argv[1], why);
		return 1;
	}
	src = whole;
	n = btf__type_cnt(src);
	done = calloc((size_t)n * 4, sizeof(*done));
	full = calloc(n, sizeof(*full));
	full_depth = calloc(n, sizeof(*full_depth));
	dst = btf__new_empty();
	if (!done || !full || !full_depth || !dst)
		return 1;
	for (size_t i = 0; i < FUZZ_BTF_NT; i++)
		for (uint32_t k = BTF_KIND_STRUCT; k <= BTF_KIND_TYPEDEF; k++) {
			int32_t id = btf__find_by_name_kind(src, fuzz_btf_types[i], k);
			if (id > 0 && (k == BTF_KIND_STRUCT || k == BTF_KIND_UNION || k == BTF_KIND_TYPEDEF))
				clone((uint32_t)id, 2);
		}
	/* enums holding the enumerators asked for */
	for (uint32_t id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(src, id);
		bool want_it = false;
		if (!btf_is_any_enum(t))
			continue;
		for (uint16_t i = 0; i < btf_vlen(t) && !want_it; i++) {
			const char *en = btf__name_by_offset(src, btf_is_enum(t) ? btf_enum(t)[i].name_off
										  : btf_enum64(t)[i].name_off);
			for (size_t e = 0; e < FUZZ_BTF_NE; e++)
				want_it |= en && !strcmp(en, fuzz_btf_enums[e]);
		}
		if (want_it)
			clone(id, 0);
	}
	/* tk_core's anonymous struct */
	if (vmw_btf_tk_core(src, &tk_size, &tk_off, &tk_seq) == 0)
		for (uint32_t id = 1; id < n; id++) {
			const struct btf_type *t = btf__type_by_id(src, id);
			if (!btf_is_struct(t) || t->name_off || t->size != tk_size)
				continue;
			for (uint16_t i = 0; i < btf_vlen(t); i++)
				if (!strcmp(btf__name_by_offset(src, btf_members(t)[i].name_off), "timekeeper")) {
					clone(id, 2);
					break;
				}
		}
	raw = btf__raw_data(dst, &raw_len);
	if (!raw || vmw_btf_parse(raw, raw_len, &seed, &why) < 0) {
		fprintf(stderr, "make_btf_seed: the seed does not parse: %s\n", why);
		return 1;
	}
	fuzz_btf_ask(whole, &want, 1, 0);
	fuzz_btf_ask(seed, &got, 1, 0);
	if (memcmp(&want, &got, sizeof(want))) {
		fprintf(stderr, "make_btf_seed: the seed answers differently\n--- whole\n");
		fuzz_btf_print(stderr, &want);
		fprintf(stderr, "--- seed\n");
		fuzz_btf_print(stderr, &got);
		return 1;
	}
	FILE *f = fopen(argv[2], "wb");
	if (!f || fwrite(raw, 1, raw_len, f) != raw_len || fclose(f)) {
		fprintf(stderr, "make_btf_seed: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	fprintf(stderr, "make_btf_seed: %u of %u types, %u bytes (from %zu)\n", btf__type_cnt(dst) - 1,
		n - 1, raw_len, len);
	btf__free(seed);
	btf__free(dst);
	btf__free(whole);
	free(data);
	free(done);
	free(full);
	free(full_depth);
	return 0;
}
