/* SPDX-License-Identifier: MIT */
/*
 * fuzz_btf.c - libFuzzer target: a raw BTF blob (as read from guest RAM at
 * __start_BTF), parsed with vmw_btf_parse, then every query the Linux model
 * makes (fuzz_btf.h) with the functions the kernel layer answers them with.
 * Whatever the blob holds: no crash, no hang, no leak, no UB, and every
 * answer keeps its invariants (a member found lies inside its structure, the
 * byte and bit queries agree, tk_core's members lie inside it).
 *
 * The custom mutator knows the format: it walks the type section and
 * mutates one record (kind, vlen, kflag, size or referenced type, a member's
 * type/offset/bitfield/name, an array's element type and count, an enum
 * value), splices records of equal length, points names at other strings,
 * edits the string section or the header; a fifth of the time it leaves the
 * work to libFuzzer's byte mutations.
 *
 * A member query walks a structure's members (task_struct has ~250) through
 * libbpf: asking all ~95 on every input costs ~6 ms under ASan. Each input
 * asks every eighth of them, which eighth chosen by a hash of the input (so
 * a finding reproduces on its input alone), and all type sizes, enumerators
 * and tk_core. FUZZ_BTF_ALL=1 asks every query on every input.
 *
 * FUZZ_VERBOSE=1: print the parse result and every answer.
 */
#include "fuzz_btf.h"
#include "fuzz_util.h"

#include <linux/btf.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static bool verbose, ask_all;
#define MEMBER_STRIDE 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *v = getenv("FUZZ_VERBOSE");
	verbose = v && *v && strcmp(v, "0");
	v = getenv("FUZZ_BTF_ALL");
	ask_all = v && *v && strcmp(v, "0");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct btf *btf = NULL;
	const char *why = NULL;
	struct fuzz_btf_answers a;
	/* vmw_btf_parse reads the header in place: give it an aligned copy, as
	 * kernel.c does (a malloc'ed buffer). */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	int r = vmw_btf_parse(copy, size, &btf, &why);
	free(copy);   /* libbpf keeps its own copy */
	if (verbose)
		fprintf(stderr, "parse: %d%s%s\n", r, why ? " " : "", why ? why : "");
	if (r < 0) {
		FUZZ_BTF_CHECK(!btf && why, "failed parse %d", r);
		return 0;
	}
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ull;
	if (ask_all || verbose)
		fuzz_btf_ask(btf, &a, 1, 0);
	else
		fuzz_btf_ask(btf, &a, MEMBER_STRIDE, (size_t)(h >> 32) % MEMBER_STRIDE);
	if (verbose)
		fuzz_btf_print(stderr, &a);
	btf__free(btf);
	return 0;
}

/* ---- the mutator ------------------------------------------------------------ */

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
	return fuzz_rnd(&rng, n);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Bytes after the 12-byte struct btf_type for this kind and vlen; -1 if the
 * kind is unknown. */
static long extra_len(uint32_t info)
{
	uint32_t vlen = info & 0xffff, kind = (info >> 24) & 0x1f;
	switch (kind) {
	case BTF_KIND_INT: case BTF_KIND_VAR: case BTF_KIND_DECL_TAG: return 4;
	case BTF_KIND_PTR: case BTF_KIND_FWD: case BTF_KIND_TYPEDEF: case BTF_KIND_VOLATILE:
	case BTF_KIND_CONST: case BTF_KIND_RESTRICT: case BTF_KIND_FUNC: case BTF_KIND_FLOAT:
	case BTF_KIND_TYPE_TAG: return 0;
	case BTF_KIND_ARRAY: return 12;
	case BTF_KIND_STRUCT: case BTF_KIND_UNION: case BTF_KIND_DATASEC:
	case BTF_KIND_ENUM64: return 12l * vlen;
	case BTF_KIND_ENUM: case BTF_KIND_FUNC_PROTO: return 8l * vlen;
	default: return -1;
	}
}

#define MAX_RECS 65536
static uint32_t rec_off[MAX_RECS];   /* offsets of records in the input */

static uint32_t interesting(uint32_t old)
{
	static const uint32_t v[] = { 0, 1, 2, 4, 7, 8, 16, 63, 64, 0x7f, 0x80, 0xff, 0x100,
				      0xffff, 0x10000, 0xffffff, 0x1000000, 0x7fffffff, 0x80000000,
				      0xfffffff8, 0xffffffff, 0x20000000, 0x1fffffff };
	switch (rnd(4)) {
	case 0: return v[rnd(sizeof(v) / sizeof(v[0]))];
	case 1: return old + rnd(17) - 8;
	case 2: return old ^ (1u << rnd(32));
	default: return old * 2 + rnd(2);
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	const struct btf_header *h = (const void *)data;
	uint32_t nrec = 0, types, type_end, str, str_len;

	rng = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
	if (size < sizeof(*h) || rnd(5) == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	if (rd32(data + 4) < sizeof(*h) || rd32(data + 4) > size)
		return LLVMFuzzerMutate(data, size, max_size);
	types = rd32(data + 4) + rd32(data + 8);
	type_end = types + rd32(data + 12);
	str = rd32(data + 4) + rd32(data + 16);
	str_len = rd32(data + 20);
	if (types > size || type_end > size || type_end < types || str > size || str_len > size - str)
		return LLVMFuzzerMutate(data, size, max_size);
	for (uint32_t off = types; off + 12 <= type_end && nrec < MAX_RECS;) {
		long x = extra_len(rd32(data + off + 4));
		if (x < 0 || off + 12 + (uint64_t)x > type_end)
			break;
		rec_off[nrec++] = off;
		off += 12 + (uint32_t)x;
	}
	if (!nrec)
		return LLVMFuzzerMutate(data, size, max_size);

	int times = 1 + (int)rnd(3);
	for (int n = 0; n < times; n++) {
		uint32_t ri = rnd(nrec), off = rec_off[ri];
		uint8_t *t = data + off;
		uint32_t info = rd32(t + 4), vlen = info & 0xffff, kind = (info >> 24) & 0x1f;
		uint32_t some_type = rnd(8) ? rnd(nrec + 2) : interesting(rnd(nrec + 1));
		uint32_t some_str = 0;

		/* a string offset: the start of some name */
		if (str_len) {
			uint32_t s = rnd(str_len);
			while (s > 0 && data[str + s - 1])
				s--;
			some_str = s;
		}
		switch (rnd(12)) {
		case 0:   /* name */
			wr32(t, rnd(16) ? some_str : interesting(rd32(t)));
			break;
		case 1: { /* kind, vlen, kflag */
			uint32_t w = rnd(3);
			if (w == 0)
				info = (info & ~(0x1fu << 24)) | (rnd(21) << 24);
			else if (w == 1)
				info = (info & ~0xffffu) | ((vlen + rnd(5) - 2) & 0xffff);
			else
				info ^= 1u << 31;
			wr32(t + 4, info);
			break;
		}
		case 2: case 3:   /* size, or the type referred to */
			if (kind == BTF_KIND_STRUCT || kind == BTF_KIND_UNION || kind == BTF_KIND_INT ||
			    kind == BTF_KIND_ENUM || kind == BTF_KIND_ENUM64 || kind == BTF_KIND_DATASEC ||
			    kind == BTF_KIND_FLOAT)
				wr32(t + 8, interesting(rd32(t + 8)));
			else
				wr32(t + 8, some_type);
			break;
		case 4: case 5: case 6: case 7: { /* an entry after the record */
			long x = extra_len(info);
			if (x <= 0)
				break;
			if (kind == BTF_KIND_ARRAY) {
				uint32_t f = rnd(3);
				wr32(t + 12 + 4 * f, f == 2 ? interesting(rd32(t + 20)) : some_type);
				break;
			}
			uint32_t esz = kind == BTF_KIND_ENUM || kind == BTF_KIND_FUNC_PROTO ? 8 : 12;
			if (x < esz) {   /* INT, VAR, DECL_TAG */
				wr32(t + 12, interesting(rd32(t + 12)));
				break;
			}
			uint8_t *e = t + 12 + esz * rnd((uint32_t)(x / esz));
			uint32_t f = rnd(esz / 4);
			if (kind == BTF_KIND_STRUCT || kind == BTF_KIND_UNION) {
				if (f == 0) {
					wr32(e, rnd(4) ? some_str : 0);   /* anonymous */
				} else if (f == 1) {
					wr32(e + 4, some_type);
				} else {
					uint32_t o = rd32(e + 8), sz = rd32(t + 8);
					switch (rnd(5)) {
					case 0: o = sz * 8; break;
					case 1: o = sz * 8 - 8 * rnd(9); break;
					case 2: o = (rnd(33) << 24) | (o & 0xffffff); break;  /* bitfield (kflag) */
					default: o = interesting(o); break;
					}
					wr32(e + 8, o);
				}
			} else if (f == 0 && kind != BTF_KIND_DATASEC) {
				wr32(e, some_str);
			} else {
				wr32(e + 4 * f, kind == BTF_KIND_FUNC_PROTO || kind == BTF_KIND_DATASEC ?
					 some_type : interesting(rd32(e + 4 * f)));
			}
			break;
		}
		case 8: { /* splice: copy another record of the same length over this one */
			uint32_t oi = rnd(nrec), o = rec_off[oi];
			long a = extra_len(info), b = extra_len(rd32(data + o + 4));
			if (a == b && o != off)
				memmove(t, data + o, 12 + (size_t)a);
			break;
		}
		case 9:   /* strings: cut a name, or make a dotted one */
			if (str_len) {
				static const char c[] = { 0, '.', 'a', '_', 0x7f, ' ' };
				data[str + rnd(str_len)] = (uint8_t)c[rnd(sizeof(c))];
			}
			break;
		case 10: { /* header */
			uint32_t f = 1 + rnd(5);
			if (rnd(4) == 0)
				wr32(data + 4 * f, interesting(rd32(data + 4 * f)));
			break;
		}
		default:  /* a member's offset, more often: what containment checks guard */
			if ((kind == BTF_KIND_STRUCT || kind == BTF_KIND_UNION) && vlen &&
			    extra_len(info) >= 12l * vlen) {
				uint8_t *e = t + 12 + 12 * rnd(vlen);
				wr32(e + 8, rnd(2) ? interesting(rd32(e + 8)) : rd32(t + 8) * 8 + rnd(64));
			}
			break;
		}
	}
	return size;
}
