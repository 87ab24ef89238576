/* SPDX-License-Identifier: MIT */
/*
 * test_kernel.c - the kernel layer's pure parts that are not kallsyms or
 * VMCOREINFO: the symbol index, BTF member lookups (on BTF built here with
 * libbpf), the discovery cache files (src/kernel/symtab.c, btf.c, cache.c), and
 * the error kinds the readers above set on such a kernel.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <bpf/btf.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "kernel/kernel_internal.h"
#include "linux/linux.h"

/* ---- symbol index -------------------------------------------------------- */

static struct vmw_symtab *make_symtab(uint32_t n)
{
	struct vmw_ksym *syms = calloc(n, sizeof(*syms));
	char *names = malloc((size_t)n * 16);
	size_t len = 0;
	struct vmw_symtab *st = NULL;

	assert_non_null(syms);
	assert_non_null(names);
	for (uint32_t i = 0; i < n; i++) {
		syms[i].addr = 0xffffffff81000000ull + i * 16ull;
		syms[i].type = 't';
		syms[i].name = (uint32_t)len;
		/* every 100th name repeats the previous one (static duplicates) */
		int w = sprintf(names + len, "f_%u", i % 100 == 99 ? i - 1 : i);
		len += (size_t)w + 1;
	}
	assert_int_equal(vmw_symtab_new(syms, n, names, len, &st), 0);
	return st;
}

static void test_symtab(void **state)
{
	struct vmw_symtab *st = make_symtab(5000);
	char name[32];

	for (uint32_t i = 0; i < 5000; i++) {
		if (i % 100 == 99)
			continue;
		snprintf(name, sizeof(name), "f_%u", i);
		const struct vmw_ksym *s = vmw_symtab_lookup(st, name);
		assert_non_null(s);
		assert_string_equal(vmw_ksym_name(st, s), name);
		/* duplicates: the first (lowest address) wins */
		assert_int_equal(s->addr, 0xffffffff81000000ull + i * 16ull);
	}
	assert_null(vmw_symtab_lookup(st, "f_99"));
	assert_null(vmw_symtab_lookup(st, ""));
	assert_int_equal(vmw_symtab_nslots(5000), 16384);
	vmw_symtab_free(st);
}

static void free_blob(void *blob, size_t len) { free(blob); }

static void test_symtab_adopt_hostile(void **state)
{
	/* A damaged index (from a file) must not crash lookups. */
	struct vmw_ksym *syms = calloc(2, sizeof(*syms));
	struct vmw_symtab_slot *slots = calloc(16, sizeof(*slots));
	char names[] = "a\0b";
	struct vmw_symtab *st = NULL;
	void *blob = malloc(1);

	syms[1].name = 1000;   /* outside names */
	for (int i = 0; i < 16; i++)   /* full table, no empty slot, wrong indices */
		slots[i] = (struct vmw_symtab_slot){ .hash = vmw_symtab_hash("b"), .idx = i % 2 ? 2 : 99 };
	assert_int_equal(vmw_symtab_adopt(blob, 1, free_blob, syms, 2, names, sizeof(names), slots, 15,
					  &st), -EINVAL);   /* slot count */
	assert_int_equal(vmw_symtab_adopt(blob, 1, free_blob, syms, 2, names, 3, slots, 16, &st),
			 -EINVAL);   /* names not NUL-terminated */
	assert_int_equal(vmw_symtab_adopt(blob, 1, free_blob, syms, 2, names, sizeof(names), slots, 16,
					  &st), 0);
	assert_null(vmw_symtab_lookup(st, "b"));
	assert_null(vmw_symtab_lookup(st, "zzz"));
	vmw_symtab_free(st);   /* frees blob */
	free(syms);
	free(slots);
}

/* ---- BTF ----------------------------------------------------------------- */

static struct btf *make_btf(void)
{
	struct btf *b = btf__new_empty();
	int u64, i32, u8, cputime, se, anon_s, anon_u, task, arr, ptr, td;

	assert_non_null(b);
	u64 = btf__add_int(b, "long long unsigned int", 8, 0);
	i32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
	u8 = btf__add_int(b, "unsigned char", 1, 0);

	/* struct prev_cputime { u64 utime; u64 stime; } */
	cputime = btf__add_struct(b, "prev_cputime", 16);
	btf__add_field(b, "utime", u64, 0, 0);
	btf__add_field(b, "stime", u64, 64, 0);
	/* struct sched_entity { int x; u64 sum_exec_runtime; } */
	se = btf__add_struct(b, "sched_entity", 16);
	btf__add_field(b, "x", i32, 0, 0);
	btf__add_field(b, "sum_exec_runtime", u64, 64, 0);
	/* anonymous struct { int tgid; unsigned char flags_bits:3; } */
	anon_s = btf__add_struct(b, NULL, 8);
	btf__add_field(b, "tgid", i32, 0, 0);
	btf__add_field(b, "in_execve", u8, 32, 1);
	btf__add_field(b, "in_iowait", u8, 33, 2);
	/* anonymous union { u64 a; struct {...}; } */
	anon_u = btf__add_union(b, NULL, 8);
	btf__add_field(b, "a", u64, 0, 0);
	btf__add_field(b, NULL, anon_s, 0, 0);
	arr = btf__add_array(b, i32, u8, 16);
	ptr = btf__add_ptr(b, 0);
	/* struct task_struct */
	task = btf__add_struct(b, "task_struct", 96);
	btf__add_field(b, "pid", i32, 0, 0);
	btf__add_field(b, NULL, anon_u, 64, 0);               /* bytes 8..15 */
	btf__add_field(b, "se", se, 128, 0);                  /* bytes 16..31 */
	btf__add_field(b, "prev_cputime", cputime, 256, 0);  /* bytes 32..47 */
	btf__add_field(b, "comm", arr, 384, 0);               /* bytes 48..63: u8[16] */
	btf__add_field(b, "mm", ptr, 512, 0);                 /* bytes 64..71 */
	/* typedef struct sched_entity se_t */
	td = btf__add_typedef(b, "se_t", se);
	(void)td;
	/* enum pid_type { PIDTYPE_PID, PIDTYPE_TGID = 7 } and a 64-bit enum */
	btf__add_enum(b, "pid_type", 4);
	btf__add_enum_value(b, "PIDTYPE_PID", 0);
	btf__add_enum_value(b, "PIDTYPE_TGID", 7);
	btf__add_enum64(b, "big", 8, false);
	btf__add_enum64_value(b, "BIG_ONE", 0x100000000ull);
	(void)task;
	return b;
}

static struct btf *reparse(struct btf *b)
{
	uint32_t size;
	const void *raw = btf__raw_data(b, &size);
	struct btf *out = NULL;
	const char *why = NULL;

	assert_non_null(raw);
	assert_int_equal(vmw_btf_parse(raw, size, &out, &why), 0);
	return out;
}

/*
 * Hostile BTF (issue 9): a member at byte offset 1 MiB whose type is an array
 * of 0xFFF00008 bytes (both expressible in BTF) once wrapped a 32-bit sum and
 * sized a buffer too small. Members outside their structure are refused.
 */
static void test_btf_hostile_members(void **state)
{
	struct btf *b = btf__new_empty();
	int u8, u64, huge, small, evil;
	uint32_t off = 0, size = 0;

	assert_non_null(b);
	u8 = btf__add_int(b, "unsigned char", 1, 0);
	u64 = btf__add_int(b, "long long unsigned int", 8, 0);
	huge = btf__add_array(b, u64, u8, 0xFFF00008u);
	small = btf__add_array(b, u64, u8, 16);
	evil = btf__add_struct(b, "task_struct", 2u << 20);
	btf__add_field(b, "pid", u64, 0, 0);
	btf__add_field(b, "comm", huge, 8u << 20, 0);        /* byte offset 1 MiB, 4 GiB long */
	btf__add_field(b, "beyond", small, 64u << 20, 0);    /* starts past the struct's end */
	btf__add_field(b, "tail", small, (2u << 20) * 8 - 64, 0); /* ends 8 bytes past it */
	assert_true(u8 > 0 && u64 > 0 && huge > 0 && small > 0 && evil > 0);
	struct btf *btf = reparse(b);

	assert_int_equal(vmw_btf_member(btf, "task_struct", "pid", &off, &size), 0);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "comm", &off, &size), -EBADMSG);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "beyond", &off, &size), -EBADMSG);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "tail", &off, &size), -EBADMSG);
	uint32_t boff, bsize;
	assert_int_equal(vmw_btf_member_bits(btf, "task_struct", "comm", &boff, &bsize), -EBADMSG);
	btf__free(btf);
	btf__free(b);

	/* A structure holding itself twice as anonymous members: searching it for a
	 * member it lacks once took 2^32 steps (ps hung). The search is bounded. */
	b = btf__new_empty();
	assert_non_null(b);
	u64 = btf__add_int(b, "long long unsigned int", 8, 0);
	int self = btf__add_struct(b, "task_struct", 16);
	btf__add_field(b, "pid", u64, 0, 0);
	btf__add_field(b, NULL, self, 0, 0);
	btf__add_field(b, NULL, self, 0, 0);
	btf = reparse(b);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "pid", &off, &size), 0);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "cpu", &off, &size), -EBADMSG);
	btf__free(btf);
	btf__free(b);
}

/*
 * Members of huge structures (expressible in BTF): a bit offset or a bit size
 * beyond 32 bits used to be truncated by vmw_btf_member_bits (a wrong,
 * small answer); now such a query is refused, while the byte query, which
 * fits, still answers.
 */
static void test_btf_member_bits_wide(void **state)
{
	struct btf *b = btf__new_empty();
	int u64, u8, inner, bigarr, outer;
	uint32_t off = 0, size = 0, boff = 0, bsize = 0;

	assert_non_null(b);
	u64 = btf__add_int(b, "long long unsigned int", 8, 0);
	u8 = btf__add_int(b, "unsigned char", 1, 0);
	inner = btf__add_struct(b, "inner", 0x10000000);
	btf__add_field(b, "x", u64, 0x7FFFFFC0u, 0);          /* its last 8 bytes */
	bigarr = btf__add_array(b, u64, u8, 0x20000000);       /* 512 MiB: 2^32 bits */
	outer = btf__add_struct(b, "task_struct", 0x30000000);
	btf__add_field(b, "big", bigarr, 0, 0);
	btf__add_field(b, "b", inner, 0xF0000000u, 0);         /* byte 0x1E000000 */
	assert_true(u64 > 0 && u8 > 0 && inner > 0 && bigarr > 0 && outer > 0);
	struct btf *btf = reparse(b);

	assert_int_equal(vmw_btf_member(btf, "task_struct", "b.x", &off, &size), 0);
	assert_int_equal(off, 0x2DFFFFF8u);
	assert_int_equal(size, 8);
	assert_int_equal(vmw_btf_member_bits(btf, "task_struct", "b.x", &boff, &bsize), -EBADMSG);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "big", &off, &size), 0);
	assert_int_equal(size, 0x20000000u);
	assert_int_equal(vmw_btf_member_bits(btf, "task_struct", "big", &boff, &bsize), -EBADMSG);
	btf__free(btf);
	btf__free(b);
}

/*
 * Hostile BTF found by fuzz_btf: anonymous members of a struct's own type
 * (nothing in BTF forbids it) made the search for a member visit k^33
 * members (a hang). The search is bounded: -EBADMSG.
 */
static void test_btf_anonymous_cycle(void **state)
{
	struct btf *b = btf__new_empty();
	int u64, self;
	uint32_t off = 0, size = 0;

	assert_non_null(b);
	u64 = btf__add_int(b, "long long unsigned int", 8, 0);
	self = btf__add_struct(b, "task_struct", 8);
	for (int i = 0; i < 4; i++)
		assert_int_equal(btf__add_field(b, NULL, self, 0, 0), 0);
	btf__add_field(b, "tgid", u64, 0, 0);
	assert_true(u64 > 0 && self > 0);
	struct btf *btf = reparse(b);

	assert_int_equal(vmw_btf_member(btf, "task_struct", "pid", &off, &size), -EBADMSG);
	assert_int_equal(vmw_btf_member_bits(btf, "task_struct", "pid", &off, &size), -EBADMSG);
	btf__free(btf);
	btf__free(b);
}

/* tk_core's anonymous struct { seq; struct timekeeper timekeeper; }: both
 * members inside it, or it is no candidate (a reader allocates its size). */
static void test_btf_tk_core(void **state)
{
	struct btf *b = btf__new_empty();
	uint32_t size = 0, tk = 0, seq = 0;
	int u32, tks, good, bad;

	assert_non_null(b);
	u32 = btf__add_int(b, "unsigned int", 4, 0);
	tks = btf__add_struct(b, "timekeeper", 64);
	btf__add_field(b, "cycle_last", u32, 0, 0);
	good = btf__add_struct(b, NULL, 128);
	btf__add_field(b, "seq", u32, 0, 0);
	btf__add_field(b, "timekeeper", tks, 64 * 8, 0);
	assert_true(u32 > 0 && tks > 0 && good > 0);
	struct btf *btf = reparse(b);
	assert_int_equal(vmw_btf_tk_core(btf, &size, &tk, &seq), 0);
	assert_int_equal(size, 128);
	assert_int_equal(tk, 64);
	assert_int_equal(seq, 0);
	btf__free(btf);

	/* a second candidate whose timekeeper ends past its end: ignored */
	bad = btf__add_struct(b, NULL, 96);
	btf__add_field(b, "seq", u32, 0, 0);
	btf__add_field(b, "timekeeper", tks, 64 * 8, 0);
	assert_true(bad > 0);
	btf = reparse(b);
	assert_int_equal(vmw_btf_tk_core(btf, &size, &tk, &seq), 0);
	assert_int_equal(size, 128);
	btf__free(btf);

	/* one whose seq lies past its end: ignored too; a disagreeing valid one: -ENOTSUP */
	bad = btf__add_struct(b, NULL, 256);
	btf__add_field(b, "seq", u32, 4096 * 8, 0);
	btf__add_field(b, "timekeeper", tks, 0, 0);
	btf = reparse(b);
	assert_int_equal(vmw_btf_tk_core(btf, &size, &tk, &seq), 0);
	assert_int_equal(tk, 64);
	btf__free(btf);
	bad = btf__add_struct(b, NULL, 256);
	btf__add_field(b, "seq", u32, 0, 0);
	btf__add_field(b, "timekeeper", tks, 128 * 8, 0);
	btf = reparse(b);
	assert_int_equal(vmw_btf_tk_core(btf, &size, &tk, &seq), -ENOTSUP);
	btf__free(btf);
	btf__free(b);

	/* Two structs named timekeeper (found by fuzz_btf): the readers ask the
	 * first one's members by name, so a tk_core holding the second, smaller
	 * one is no candidate (its size says nothing about their offsets). */
	b = btf__new_empty();
	assert_non_null(b);
	u32 = btf__add_int(b, "unsigned int", 4, 0);
	tks = btf__add_struct(b, "timekeeper", 4096);
	btf__add_field(b, "cycle_last", u32, 4000 * 8, 0);
	int small = btf__add_struct(b, "timekeeper", 16);
	btf__add_field(b, "cycle_last", u32, 0, 0);
	bad = btf__add_struct(b, NULL, 64);
	btf__add_field(b, "seq", u32, 0, 0);
	btf__add_field(b, "timekeeper", small, 8 * 8, 0);
	assert_true(tks > 0 && small > 0 && bad > 0);
	btf = reparse(b);
	assert_int_equal(vmw_btf_tk_core(btf, &size, &tk, &seq), -ENOENT);
	btf__free(btf);
	good = btf__add_struct(b, NULL, 4104);
	btf__add_field(b, "seq", u32, 0, 0);
	btf__add_field(b, "timekeeper", tks, 8 * 8, 0);
	btf = reparse(b);
	assert_int_equal(vmw_btf_tk_core(btf, &size, &tk, &seq), 0);
	assert_int_equal(size, 4104);
	assert_int_equal(tk, 8);
	btf__free(btf);
	btf__free(b);
}

static void test_btf_members(void **state)
{
	struct btf *built = make_btf();
	struct btf *btf = reparse(built);
	uint32_t off = 0, size = 0;

	assert_int_equal(vmw_btf_member(btf, "task_struct", "pid", &off, &size), 0);
	assert_int_equal(off, 0);
	assert_int_equal(size, 4);
	/* through an anonymous union and an anonymous struct inside it */
	assert_int_equal(vmw_btf_member(btf, "task_struct", "a", &off, &size), 0);
	assert_int_equal(off, 8);
	assert_int_equal(size, 8);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "tgid", &off, &size), 0);
	assert_int_equal(off, 8);
	assert_int_equal(size, 4);
	/* dotted paths */
	assert_int_equal(vmw_btf_member(btf, "task_struct", "se.sum_exec_runtime", &off, &size), 0);
	assert_int_equal(off, 24);
	assert_int_equal(size, 8);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "prev_cputime.stime", &off, &size), 0);
	assert_int_equal(off, 40);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "comm", &off, &size), 0);
	assert_int_equal(off, 48);
	assert_int_equal(size, 16);   /* the whole array */
	assert_int_equal(vmw_btf_member(btf, "task_struct", "mm", &off, &size), 0);
	assert_int_equal(off, 64);
	assert_int_equal(size, 8);
	/* through a typedef of a struct */
	assert_int_equal(vmw_btf_member(btf, "se_t", "sum_exec_runtime", &off, &size), 0);
	assert_int_equal(off, 8);
	/* bitfields: not as bytes, but as bits */
	assert_int_equal(vmw_btf_member(btf, "task_struct", "in_iowait", &off, &size), -ENOTSUP);
	uint32_t boff, bsize;
	assert_int_equal(vmw_btf_member_bits(btf, "task_struct", "in_iowait", &boff, &bsize), 0);
	assert_int_equal(boff, 64 + 33);
	assert_int_equal(bsize, 2);
	assert_int_equal(vmw_btf_member_bits(btf, "task_struct", "se.sum_exec_runtime", &boff, &bsize), 0);
	assert_int_equal(boff, 192);
	assert_int_equal(bsize, 64);
	/* misses */
	assert_int_equal(vmw_btf_member(btf, "task_struct", "nope", &off, &size), -ENOENT);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "se.nope", &off, &size), -ENOENT);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "pid.x", &off, &size), -ENOENT);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "se..x", &off, &size), -EINVAL);
	assert_int_equal(vmw_btf_member(btf, "no_struct", "pid", &off, &size), -ENOENT);
	assert_int_equal(vmw_btf_member(btf, "task_struct", "in_iowait.x", &off, &size), -EINVAL);

	assert_int_equal(vmw_btf_type_size(btf, "task_struct", &size), 0);
	assert_int_equal(size, 96);
	assert_int_equal(vmw_btf_type_size(btf, "se_t", &size), 0);
	assert_int_equal(size, 16);
	assert_int_equal(vmw_btf_type_size(btf, "int", &size), -ENOENT);

	int64_t v;
	assert_int_equal(vmw_btf_enum_value(btf, "PIDTYPE_TGID", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(vmw_btf_enum_value(btf, "BIG_ONE", &v), 0);
	assert_int_equal(v, 0x100000000ll);
	assert_int_equal(vmw_btf_enum_value(btf, "NOPE", &v), -ENOENT);
	btf__free(btf);
	btf__free(built);
}

/*
 * libbpf is loaded while a parsed BTF lives or a parse runs, and unloaded
 * with the last one (a cold sampler gives it back after its first frame).
 * Two threads parse, look up and free in turn, so the library is loaded
 * and unloaded again and again under one or the other: a lookup through
 * an unloaded table would call NULL. (This binary links libbpf itself, so
 * here dlclose unmaps nothing; the agent's test sees the mapping go.)
 */
struct reparse_job {
	const void *raw;
	uint32_t size;
	int failures;
};

static void *reparse_loop(void *arg)
{
	struct reparse_job *j = arg;

	for (int i = 0; i < 2000; i++) {
		struct btf *btf = NULL;
		const char *why = NULL;
		uint32_t off = 0, size = 0;

		if (vmw_btf_parse(j->raw, j->size, &btf, &why) != 0 ||
		    vmw_btf_member(btf, "task_struct", "comm", &off, &size) != 0 || off != 48 || size != 16)
			j->failures++;
		vmw_btf_free(btf);
	}
	return NULL;
}

static void test_btf_library_unloaded_and_reloaded(void **state)
{
	struct btf *built = make_btf();
	struct reparse_job a = { 0 }, b = { 0 };
	pthread_t ta, tb;
	uint32_t off = 0, size = 0;

	(void)state;
	a.raw = btf__raw_data(built, &a.size);
	assert_non_null(a.raw);
	b = a;
	/* one after the other: unloaded after the first free, loaded again */
	struct btf *one = reparse(built);
	vmw_btf_free(one);
	one = reparse(built);
	assert_int_equal(vmw_btf_member(one, "task_struct", "mm", &off, &size), 0);
	assert_int_equal(off, 64);
	vmw_btf_free(one);
	/* alongside each other */
	assert_int_equal(pthread_create(&ta, NULL, reparse_loop, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, reparse_loop, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.failures, 0);
	assert_int_equal(b.failures, 0);
	btf__free(built);
}

static void test_btf_parse_rejects(void **state)
{
	uint8_t junk[64] = { 0x9f, 0xeb, 1, 0, 24, 0, 0, 0 };
	struct btf *btf = NULL;
	const char *why = NULL;

	assert_int_equal(vmw_btf_parse(junk, 10, &btf, &why), -EINVAL);   /* too short */
	junk[0] = 0;
	assert_int_equal(vmw_btf_parse(junk, sizeof(junk), &btf, &why), -EINVAL);   /* magic */
	assert_non_null(strstr(why, "magic"));
	junk[0] = 0x9f;
	uint32_t big = 1000;   /* string section past the end */
	memcpy(junk + 20, &big, 4);
	assert_int_equal(vmw_btf_parse(junk, sizeof(junk), &btf, &why), -EINVAL);
}

/* ---- cache files ----------------------------------------------------------- */

static const char TEXT[] =
	"OSRELEASE=6.1.0-47-amd64\n"
	"BUILD-ID=12f1e1ca032e499318c5cc64e024d3e617624bf6\n"
	"PAGESIZE=4096\n"
	"SYMBOL(_stext)=ffffffffb6e00000\n"
	"NUMBER(phys_base)=-457179136\n"
	"SYMBOL(init_top_pgt)=ffffffffb8810000\n"
	"KERNELOFFSET=35e00000\n";

static char dir[] = "/tmp/vmw-test-kcache-XXXXXX";

static int setup_dir(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_cache_roundtrip(void **state)
{
	struct vmw_vmcoreinfo *vi = NULL;
	struct vmw_kcache c = { 0 }, l = { 0 };
	char sub[256], path[512];

	snprintf(sub, sizeof(sub), "%s/a/b", dir);   /* created on save */
	assert_int_equal(vmw_vmcoreinfo_parse(TEXT, strlen(TEXT), &vi, NULL), 0);
	c.vmcoreinfo_phys = 0x13b4000;
	c.btf_vaddr = 0xffffffffb82bf778ull;
	c.btf_len = 4350808;
	c.tokens_vaddr = 0xffffffffb812caf8ull;
	memset(c.tokens_head, 0x5a, sizeof(c.tokens_head));
	c.symbols_from = "kallsyms via VMCOREINFO";
	c.symtab = make_symtab(3000);
	assert_int_equal(vmw_kcache_save(sub, vi, &c), 0);

	assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), 0);
	assert_int_equal(l.vmcoreinfo_phys, 0x13b4000);
	assert_int_equal(l.btf_vaddr, c.btf_vaddr);
	assert_int_equal(l.btf_len, c.btf_len);
	assert_int_equal(l.tokens_vaddr, c.tokens_vaddr);
	assert_memory_equal(l.tokens_head, c.tokens_head, sizeof(c.tokens_head));
	assert_string_equal(l.symbols_from, "kallsyms via VMCOREINFO");
	assert_string_equal(l.vmcoreinfo_text, TEXT);
	assert_int_equal(l.symtab->nsyms, 3000);
	const struct vmw_ksym *s = vmw_symtab_lookup(l.symtab, "f_1234");
	assert_non_null(s);
	assert_int_equal(s->addr, 0xffffffff81000000ull + 1234 * 16);
	vmw_kcache_clear(&l);

	/* Another KASLR offset is another entry. */
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, 0x1000000, &l), -ENOENT);

	snprintf(path, sizeof(path), "%s/%s-35e00000", sub, vi->build_id);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);   /* guest kernel facts (KASLR) stay private */
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	/* The head alone (a warm attach): the same small fields, no table. */
	assert_int_equal(vmw_kcache_load_head(sub, vi->build_id, vi->kerneloffset, &l), 0);
	assert_null(l.symtab);
	assert_int_equal(l.nsyms, 3000);
	assert_int_equal(l.vmcoreinfo_phys, 0x13b4000);
	assert_int_equal(l.btf_vaddr, c.btf_vaddr);
	assert_int_equal(l.tokens_vaddr, c.tokens_vaddr);
	assert_memory_equal(l.tokens_head, c.tokens_head, sizeof(c.tokens_head));
	assert_string_equal(l.symbols_from, "kallsyms via VMCOREINFO");
	assert_string_equal(l.vmcoreinfo_text, TEXT);
	vmw_kcache_clear(&l);

	/* The whole file is checksummed: one byte of a symbol name, far from the header. */
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	char b;
	assert_int_equal(pread(fd, &b, 1, st.st_size - 100), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, st.st_size - 100), 1);
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), -EINVAL);
	/* ... which the head does not cover: a warm attach does not read it. */
	assert_int_equal(vmw_kcache_load_head(sub, vi->build_id, vi->kerneloffset, &l), 0);
	vmw_kcache_clear(&l);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, st.st_size - 100), 1);
	close(fd);
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), 0);
	vmw_kcache_clear(&l);

	/* A file others may write, or that another user owns, is not used (StrictModes). */
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), -EPERM);
	assert_int_equal(chmod(path, 0600), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), -EPERM);
		assert_int_equal(chown(path, 0, 0), 0);
	}
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), 0);
	vmw_kcache_clear(&l);

	/* The head has its own checksum: one byte of the VMCOREINFO text. */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	size_t text_at = sizeof(struct vmw_kcache_disk_header) + strlen(c.symbols_from) + 3;
	assert_int_equal(pread(fd, &b, 1, (off_t)text_at), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)text_at), 1);
	assert_int_equal(vmw_kcache_load_head(sub, vi->build_id, vi->kerneloffset, &l), -EINVAL);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)text_at), 1);
	close(fd);
	assert_int_equal(vmw_kcache_load_head(sub, vi->build_id, vi->kerneloffset, &l), 0);
	vmw_kcache_clear(&l);

	/* A damaged header is refused. */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 200), 1);
	close(fd);
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), -EINVAL);
	assert_int_equal(vmw_kcache_load_head(sub, vi->build_id, vi->kerneloffset, &l), -EINVAL);
	/* So is a truncated file. */
	assert_int_equal(truncate(path, 4096), 0);
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, vi->kerneloffset, &l), -EINVAL);

	vmw_symtab_free(c.symtab);
	vmw_vmcoreinfo_free(vi);
}

/*
 * Symbols through the memo: the first lookup asks the table and memoizes
 * the answer without KERNELOFFSET; another boot of the build (another
 * KERNELOFFSET, no table at all) gets the address moved by its own offset,
 * per-CPU offsets unmoved, misses remembered, and a memo answer that does
 * not decode is not used.
 */
static void test_symbol_memo(void **state)
{
	struct vmw_vmcoreinfo *vi = NULL;
	struct vmw_ksym *syms = calloc(2, sizeof(*syms));
	char *names = malloc(32);
	struct vmw_symtab *st = NULL;
	struct vmw_kernel_sym s;

	assert_int_equal(vmw_vmcoreinfo_parse(TEXT, strlen(TEXT), &vi, NULL), 0);
	memcpy(names, "init_task\0runqueues\0", 20);
	syms[0] = (struct vmw_ksym){ .addr = 0xffffffffb8a1aa40ull, .name = 0, .type = 'D' };
	syms[1] = (struct vmw_ksym){ .addr = 0x2c9c0, .name = 10, .type = 'A', .percpu = true };
	assert_int_equal(vmw_symtab_new(syms, 2, names, 20, &st), 0);

	struct vmw_kernel a = { .vi = vi, .symtab = st };
	assert_int_equal(vmw_kernel_lookup(&a, "init_task", &s), 0);
	assert_int_equal(s.addr, 0xffffffffb8a1aa40ull);
	assert_int_equal(vmw_kernel_lookup(&a, "runqueues", &s), 0);
	assert_int_equal(vmw_kernel_lookup(&a, "nosuch", &s), -ENOENT);
	const struct vmw_memo_entry *e = vmw_memo_find(&a.memo, "Y init_task");
	assert_non_null(e);
	assert_int_equal(e->a, 0xffffffffb8a1aa40ull - 0x35e00000);   /* the link-time address */

	/* Another boot: the memo alone answers (no table: a miss would fail). */
	struct vmw_vmcoreinfo vi2 = *vi;
	vi2.kerneloffset = 0x10000000;
	struct vmw_kernel b = { .vi = &vi2, .memo = a.memo, .symtab_err = -EIO };
	assert_int_equal(vmw_kernel_lookup(&b, "init_task", &s), 0);
	assert_int_equal(s.addr, 0xffffffffb8a1aa40ull - 0x35e00000 + 0x10000000);
	assert_int_equal(s.type, 'D');
	assert_false(s.percpu);
	assert_int_equal(vmw_kernel_lookup(&b, "runqueues", &s), 0);
	assert_int_equal(s.addr, 0x2c9c0);
	assert_true(s.percpu);
	assert_int_equal(vmw_kernel_lookup(&b, "nosuch", &s), -ENOENT);
	assert_int_equal(vmw_kernel_lookup(&b, "other", &s), -EIO);
	/* A damaged answer (a stray flag bit; an image address that leaves the
	 * image mapping) is not used: the table is asked, which fails here. */
	struct vmw_memo_entry *w = (struct vmw_memo_entry *)vmw_memo_find(&b.memo, "Y init_task");
	w->b |= 1u << 12;
	assert_int_equal(vmw_kernel_lookup(&b, "init_task", &s), -EIO);
	w->b &= ~(1ull << 12);
	w->a = 0x7fffffff00000000ull;
	assert_int_equal(vmw_kernel_lookup(&b, "init_task", &s), -EIO);

	/* tk_core from the memo, without BTF: inside its struct, or refused. */
	uint32_t size, tk, seq;
	b.btf_err = -EIO;
	assert_int_equal(vmw_kernel_tk_core(&b, &size, &tk, &seq), -EIO);
	assert_int_equal(vmw_memo_add(&b.memo, "T tk_core", 0, 320, (64ull << 32) | 0), 0);
	assert_int_equal(vmw_kernel_tk_core(&b, &size, &tk, &seq), 0);
	assert_int_equal(size, 320);
	assert_int_equal(tk, 64);
	assert_int_equal(seq, 0);
	struct vmw_memo_entry *t = (struct vmw_memo_entry *)vmw_memo_find(&b.memo, "T tk_core");
	t->b = 320ull << 32;   /* timekeeper at the struct's end */
	assert_int_equal(vmw_kernel_tk_core(&b, &size, &tk, &seq), -EBADMSG);
	t->b = (64ull << 32) | 317;   /* seq's 4 bytes past the end */
	assert_int_equal(vmw_kernel_tk_core(&b, &size, &tk, &seq), -EBADMSG);
	assert_string_equal(vmw_kernel_bad_layout(&b), "tk_core");

	a.memo = b.memo;
	vmw_memo_clear(&a.memo);
	vmw_symtab_free(st);
	vmw_vmcoreinfo_free(vi);
}

static void test_cache_prune(void **state)
{
	struct vmw_vmcoreinfo *vi = NULL;
	struct vmw_kcache c = { .symbols_from = "x" }, l = { 0 };
	char sub[256];
	int n = 0;

	snprintf(sub, sizeof(sub), "%s/prune", dir);
	assert_int_equal(vmw_vmcoreinfo_parse(TEXT, strlen(TEXT), &vi, NULL), 0);
	c.symtab = make_symtab(10);
	for (int i = 0; i < 40; i++) {   /* 40 boots of one kernel */
		vi->kerneloffset = 0x1000000ull * (uint64_t)(i + 1);
		assert_int_equal(vmw_kcache_save(sub, vi, &c), 0);
		/* The first boot's entry stays in use (re-attaches load it). */
		assert_int_equal(vmw_kcache_load(sub, vi->build_id, 0x1000000, &l), 0);
		vmw_kcache_clear(&l);
	}
	/* entries: the 32 most recently used; the layout memo is not an entry */
	vmw_memo_save(sub, vi->build_id, &(struct vmw_memo){ 0 });
	for (int i = 0; i < 40; i++) {
		if (vmw_kcache_load(sub, vi->build_id, 0x1000000ull * (uint64_t)(i + 1), &l) == 0) {
			n++;
			vmw_kcache_clear(&l);
		}
	}
	assert_int_equal(n, 32);
	assert_int_equal(vmw_kcache_load(sub, vi->build_id, 0x1000000, &l), 0);   /* kept: used */
	vmw_kcache_clear(&l);
	vmw_symtab_free(c.symtab);
	vmw_vmcoreinfo_free(vi);
}

/* A memo of many lines (found by reasoning about fuzz_cache's profile: loads
 * compare every key with every earlier one): 40,000 lines took minutes, a
 * 4 MiB one hours. More than 1024 lines are refused whole, at once. */
static void test_memo_too_many_lines(void **state)
{
	struct vmw_memo m = { 0 }, n = { 0 };
	char key[32];

	for (int i = 0; i < 1025; i++) {
		snprintf(key, sizeof(key), "M t m%d", i);
		assert_int_equal(vmw_memo_add(&m, key, 0, (uint64_t)i, 8), 0);
	}
	assert_int_equal(vmw_memo_save(dir, "many", &m), 0);
	assert_int_equal(vmw_memo_load(dir, "many", &n), -EINVAL);
	assert_int_equal(n.n, 0);
	vmw_memo_clear(&n);
	m.n--;   /* 1024: still loads */
	free(m.e[m.n].key);
	assert_int_equal(vmw_memo_save(dir, "many", &m), 0);
	assert_int_equal(vmw_memo_load(dir, "many", &n), 0);
	assert_int_equal(n.n, 1024);
	vmw_memo_clear(&n);
	vmw_memo_clear(&m);
}

/* targets/ holds a hint per QEMU process ever attached (a VM's every
 * start): the 1024 most recently used are kept, a hint read counting as a
 * use. */
static void test_cache_hints_pruned(void **state)
{
	struct vmw_kcache_hint h = { .vmcoreinfo_phys = 0x1000, .jiffies = 1, .realtime_ns = 2 }, g;
	char sub[256], tdir[300], id[64];
	size_t files = 0, gone = 0;
	struct dirent *de;
	DIR *d;

	snprintf(sub, sizeof(sub), "%s/hints", dir);
	for (int i = 0; i < 1024 + 40; i++) {
		snprintf(id, sizeof(id), "qemu:%d:7", 1000 + i);
		assert_int_equal(vmw_kcache_hint_put(sub, id, &h), 0);
		/* The first VM runs on: its hint is read at each attach. */
		assert_int_equal(vmw_kcache_hint_get(sub, "qemu:1000:7", &g), 0);
	}
	snprintf(tdir, sizeof(tdir), "%s/targets", sub);
	assert_non_null(d = opendir(tdir));
	while ((de = readdir(d)))
		files += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(files, 1024);
	assert_int_equal(vmw_kcache_hint_get(sub, "qemu:1000:7", &g), 0);
	assert_int_equal(g.vmcoreinfo_phys, 0x1000);
	assert_int_equal(vmw_kcache_hint_get(sub, "qemu:2063:7", &g), 0);   /* the newest */
	for (int i = 1; i < 1024 + 40; i++) {
		snprintf(id, sizeof(id), "qemu:%d:7", 1000 + i);
		gone += vmw_kcache_hint_get(sub, id, &g) == -ENOENT;
	}
	assert_int_equal(gone, 40);
	(void)state;
}

static void test_cache_hint_and_memo(void **state)
{
	struct vmw_kcache_hint h = { .vmcoreinfo_phys = 0x1f4c1000, .jiffies = 0xfffffffffffb6c20ull,
				     .realtime_ns = 1700000000123456789ull };
	struct vmw_kcache_hint g;
	struct vmw_memo m = { 0 }, n = { 0 };
	const struct vmw_memo_entry *e;

	assert_int_equal(vmw_kcache_hint_get(dir, "qemu:1:2", &g), -ENOENT);
	assert_int_equal(vmw_kcache_hint_put(dir, "qemu:1:2", &h), 0);
	assert_int_equal(vmw_kcache_hint_get(dir, "qemu:1:2", &g), 0);
	assert_int_equal(g.vmcoreinfo_phys, h.vmcoreinfo_phys);
	assert_int_equal(g.jiffies, h.jiffies);
	assert_int_equal(g.realtime_ns, h.realtime_ns);
	assert_int_equal(vmw_kcache_hint_get(dir, "qemu:1:3", &g), -ENOENT);

	assert_int_equal(vmw_memo_add(&m, "M task_struct se.sum_exec_runtime", 0, 0x120, 8), 0);
	assert_int_equal(vmw_memo_add(&m, "M task_struct nope", -ENOENT, 0, 0), 0);
	assert_int_equal(vmw_memo_add(&m, "E PIDTYPE_MAX", 0, (uint64_t)-5, 0), 0);
	assert_int_equal(vmw_memo_add(&m, "bad\nkey", 0, 0, 0), 0);   /* ignored */
	assert_int_equal(m.n, 3);
	assert_true(m.dirty);
	assert_int_equal(vmw_memo_save(dir, "abcd", &m), 0);
	assert_int_equal(vmw_memo_load(dir, "abcd", &n), 0);
	assert_false(n.dirty);
	assert_int_equal(n.n, 3);
	e = vmw_memo_find(&n, "M task_struct se.sum_exec_runtime");
	assert_non_null(e);
	assert_int_equal(e->rc, 0);
	assert_int_equal(e->a, 0x120);
	assert_int_equal(e->b, 8);
	e = vmw_memo_find(&n, "M task_struct nope");
	assert_non_null(e);
	assert_int_equal(e->rc, -ENOENT);
	e = vmw_memo_find(&n, "E PIDTYPE_MAX");
	assert_int_equal((int64_t)e->a, -5);
	assert_null(vmw_memo_find(&n, "M task_struct pid"));
	vmw_memo_clear(&n);

	/* An edited answer (say a member moved past its structure) fails the sum: nothing is loaded. */
	char path[512], text[4096];
	snprintf(path, sizeof(path), "%s/abcd.layout", dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = '\0';
	char *at = strstr(text, "120");
	assert_non_null(at);
	at[0] = 'f';
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(text, 1, len, f);
	fclose(f);
	assert_int_equal(vmw_memo_load(dir, "abcd", &n), -EINVAL);
	assert_int_equal(n.n, 0);
	/* So is a memo without its sum line (truncated, or written by an older vmwatch). */
	assert_int_equal(truncate(path, 20), 0);
	assert_int_equal(vmw_memo_load(dir, "abcd", &n), -EINVAL);
	assert_int_equal(n.n, 0);
	/* A file others may write is not read at all. */
	assert_int_equal(vmw_memo_save(dir, "abcd", &m), 0);
	assert_int_equal(chmod(path, 0622), 0);
	assert_int_equal(vmw_memo_load(dir, "abcd", &n), -EPERM);
	vmw_memo_clear(&m);
	vmw_memo_clear(&n);
	assert_int_equal(vmw_memo_load(dir, "none", &n), -ENOENT);
}

static void test_cache_dir_trusted(void **state)
{
	char sub[256], why[512] = "";

	/* Not there yet: fine (created 0700 on first save). /tmp on the way is root's and sticky. */
	snprintf(sub, sizeof(sub), "%s/strict/x", dir);
	assert_int_equal(vmw_cache_dir_trusted(sub, why, sizeof(why)), 0);
	snprintf(sub, sizeof(sub), "%s/strict", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(vmw_cache_dir_trusted(sub, why, sizeof(why)), 0);
	/* Group- or world-writable: refused, and the message names it. */
	assert_int_equal(chmod(sub, 0777), 0);
	assert_int_equal(vmw_cache_dir_trusted(sub, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, sub));
	assert_non_null(strstr(why, "0777"));
	/* An ancestor others may write makes everything below it untrusted. */
	snprintf(sub, sizeof(sub), "%s/strict/x", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(vmw_cache_dir_trusted(sub, why, sizeof(why)), -EPERM);
	snprintf(sub, sizeof(sub), "%s/strict", dir);
	assert_int_equal(chmod(sub, 0755), 0);
	snprintf(sub, sizeof(sub), "%s/strict/x", dir);
	assert_int_equal(vmw_cache_dir_trusted(sub, why, sizeof(why)), 0);
	/* Owned by another user (as root we can arrange it). */
	if (geteuid() == 0) {
		assert_int_equal(chown(sub, 65534, 65534), 0);
		assert_int_equal(vmw_cache_dir_trusted(sub, why, sizeof(why)), -EPERM);
		assert_non_null(strstr(why, "uid 65534"));
	}
}

static void test_cache_dir(void **state)
{
	char buf[256];
	assert_int_equal(vmw_cache_dir("/x/y", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/x/y");
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	assert_int_equal(vmw_cache_dir(NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/xdg/vmwatch/discovery");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(vmw_cache_dir(NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/u/.cache/vmwatch/discovery");
	assert_int_equal(vmw_cache_dir(NULL, buf, 8), -ENAMETOOLONG);
}

/* ---- error kinds of the readers above the kernel ---------------------------- */

/* A kernel as discovery leaves it, minus guest RAM: kallsyms with the given
 * names, the BTF built above, no CPUs yet. */
static struct vmw_kernel *fake_kernel(const char *const *names, size_t n)
{
	struct vmw_kernel *k = calloc(1, sizeof(*k));
	struct vmw_ksym *syms = calloc(n, sizeof(*syms));
	char *buf = malloc(256);
	struct btf *built = make_btf();
	size_t len = 0;

	assert_non_null(k);
	assert_non_null(syms);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		syms[i] = (struct vmw_ksym){ .addr = 0xffffffff82000000ull + i * 64, .type = 'D',
					     .name = (uint32_t)len };
		len += (size_t)sprintf(buf + len, "%s", names[i]) + 1;
	}
	assert_int_equal(vmw_symtab_new(syms, (uint32_t)n, buf, len, &k->symtab), 0);
	k->btf = reparse(built);
	btf__free(built);
	static const char vmcoreinfo[] =
		"OSRELEASE=6.99-test\nBUILD-ID=abcd\nPAGESIZE=4096\nKERNELOFFSET=0\n"
		"SYMBOL(_stext)=ffffffff81000000\nNUMBER(phys_base)=0\n"
		"SYMBOL(init_top_pgt)=ffffffff82000000\n";
	assert_int_equal(vmw_vmcoreinfo_parse(vmcoreinfo, sizeof(vmcoreinfo), &k->vi, NULL), 0);
	snprintf(k->info.release, sizeof(k->info.release), "6.99-test");
	k->info.paging_levels = 4;
	return k;
}

/* BTF without a member the process model needs is a missing layout, whatever
 * the message says about BTF (the agent's reason code comes from the kind). */
static void test_missing_layout_kinds(void **state)
{
	struct vmw_kernel *k = fake_kernel((const char *[]){ "init_task" }, 1);
	struct vmw_summary_reader *s = NULL;
	struct vmw_linux *l = NULL;
	struct vmw_error err = { 0 };

	assert_int_equal(vmw_linux_new(k, &l, &err), -ENOENT);
	assert_int_equal(err.kind, VMW_ERR_MISSING_LAYOUT);
	assert_non_null(strstr(err.msg, "task_struct.tasks"));
	assert_string_equal(vmw_error_kind_name(vmw_error_kind_of(&err, -ENOENT)), "missing_layout");

	/* No CPUs: inconsistent discovery results, not a missing layout. */
	err = (struct vmw_error){ 0 };
	assert_int_equal(vmw_summary_new(k, &s, &err), -ENOENT);
	assert_int_equal(err.kind, VMW_ERR_INCONSISTENT);
	/* With a CPU, the first variable kallsyms lacks is the missing layout. */
	k->info.nr_cpus = 1;
	err = (struct vmw_error){ 0 };
	assert_int_equal(vmw_summary_new(k, &s, &err), -ENOENT);
	assert_int_equal(err.kind, VMW_ERR_MISSING_LAYOUT);
	assert_non_null(strstr(err.msg, "avenrun"));
	vmw_kernel_detach(k);

	k = fake_kernel((const char *[]){ "_text" }, 1);
	err = (struct vmw_error){ 0 };
	assert_int_equal(vmw_linux_new(k, &l, &err), -ENOENT);
	assert_int_equal(err.kind, VMW_ERR_INCONSISTENT);
	vmw_kernel_detach(k);

	/* A layout answer that would size a buffer past 1 MiB (here from a tampered memo,
	 * which is consulted before BTF) is refused as inconsistent, never used. */
	k = fake_kernel((const char *[]){ "init_task" }, 1);
	assert_int_equal(vmw_memo_add(&k->memo, "M task_struct tasks", 0, 0xfffff000u, 0x2000), 0);
	err = (struct vmw_error){ 0 };
	assert_int_equal(vmw_linux_new(k, &l, &err), -EBADMSG);
	assert_int_equal(err.kind, VMW_ERR_INCONSISTENT);
	assert_non_null(strstr(err.msg, "task_struct.tasks"));
	uint32_t off, size;
	assert_int_equal(vmw_kernel_member(k, "task_struct", "tasks", &off, &size), -EBADMSG);
	assert_int_equal(vmw_memo_add(&k->memo, "S task_struct", 0, 64u << 20, 0), 0);
	assert_int_equal(vmw_kernel_type_size(k, "task_struct", &size), -EBADMSG);
	vmw_kernel_detach(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_symtab),
		cmocka_unit_test(test_symtab_adopt_hostile),
		cmocka_unit_test(test_btf_members),
		cmocka_unit_test(test_btf_hostile_members),
		cmocka_unit_test(test_btf_anonymous_cycle),
		cmocka_unit_test(test_btf_member_bits_wide),
		cmocka_unit_test(test_btf_tk_core),
		cmocka_unit_test(test_btf_parse_rejects),
		cmocka_unit_test(test_btf_library_unloaded_and_reloaded),
		cmocka_unit_test(test_cache_roundtrip),
		cmocka_unit_test(test_symbol_memo),
		cmocka_unit_test(test_cache_prune),
		cmocka_unit_test(test_cache_hint_and_memo),
		cmocka_unit_test(test_cache_hints_pruned),
		cmocka_unit_test(test_memo_too_many_lines),
		cmocka_unit_test(test_cache_dir),
		cmocka_unit_test(test_cache_dir_trusted),
		cmocka_unit_test(test_missing_layout_kinds),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
