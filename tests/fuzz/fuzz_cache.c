/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cache.c - libFuzzer target: the discovery cache's files
 * (src/kernel/cache.c) as a local attacker or a torn write could leave them.
 * The input (fuzz_cache.h) is written as a cache entry, a layout memo and a
 * target hint into a private directory (0700, files 0600, so the ownership
 * rules pass and the parsers run), then loaded the way kernel.c loads them:
 * vmw_kcache_load_head (a warm attach) and vmw_kcache_load, symbol lookups
 * on the table it maps (the names discovery asks for, and names taken from
 * the table itself), the VMCOREINFO text it holds parsed; vmw_memo_load,
 * lookups of every key it loaded, the symbol and tk_core answers decoded
 * the way a warm attach uses them (vmw_kernel_lookup, vmw_kernel_tk_core
 * with no table and no BTF behind the memo), and a save + load round trip;
 * vmw_kcache_hint_get. No crash, hang, leak or UB; a symbol found carries
 * the name asked for and lies in the table; the head agrees with the full
 * load; a memo symbol decodes to an image address only inside the image
 * mapping; a memo saved and loaded again holds the same answers.
 *
 * Files are checksummed whole, so mutated bytes would only test the
 * checksum: the custom mutator mutates one part (libFuzzer's byte
 * mutations, or for the entry aligned header/table words set to
 * interesting values) and then recomputes that part's checksum
 * (vmw_kcache_sum), except once in 16 mutations.
 *
 * FUZZ_VERBOSE=1: print what loaded.
 */
#include "fuzz_cache.h"
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static bool verbose;
static char dir[64];
static char entry_path[256], memo_path[256], hint_path[256], memo2_path[256];

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_cache: invariant broken: %s: ", #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} \
} while (0)

static void cleanup(void)
{
	unlink(entry_path);
	unlink(memo_path);
	unlink(memo2_path);
	unlink(hint_path);
	char *slash = strrchr(hint_path, '/');
	if (slash) {
		*slash = '\0';
		rmdir(hint_path);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *v = getenv("FUZZ_VERBOSE");
	struct vmw_kcache_hint h = { 0 };
	char sub[300];

	verbose = v && *v && strcmp(v, "0");
	umask(077);
	/* tmpfs if there is one: writing three files per input on a disk file
	 * system costs more than the parsing */
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/vmw-fuzz-cache-XXXXXX",
		 stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir)) {
		perror("fuzz_cache: mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	snprintf(entry_path, sizeof(entry_path), "%s/%s-%" PRIx64, dir, FUZZ_CACHE_BUILD_ID,
		 (uint64_t)FUZZ_CACHE_KERNELOFFSET);
	snprintf(memo_path, sizeof(memo_path), "%s/%s.layout", dir, FUZZ_CACHE_BUILD_ID);
	snprintf(memo2_path, sizeof(memo2_path), "%s/roundtrip.layout", dir);
	/* the hint's file name: let cache.c make it, then find it */
	if (vmw_kcache_hint_put(dir, FUZZ_CACHE_TARGET, &h) < 0) {
		fprintf(stderr, "fuzz_cache: cannot write a hint in %s\n", dir);
		exit(1);
	}
	snprintf(sub, sizeof(sub), "%s/targets", dir);
	DIR *d = opendir(sub);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			snprintf(hint_path, sizeof(hint_path), "%s/%s", sub, de->d_name);
	if (d)
		closedir(d);
	if (!hint_path[0]) {
		fprintf(stderr, "fuzz_cache: no hint file in %s\n", sub);
		exit(1);
	}
	return 0;
}

static void put_file(const char *path, const uint8_t *data, size_t len, bool present)
{
	if (!present) {
		unlink(path);
		return;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len)) {
		perror("fuzz_cache: write");
		abort();
	}
	close(fd);
}

/* What discovery (kernel.c) and the models look up in a cached table. */
static const char *const wanted[] = {
	"_stext", "_text", "_end", "init_top_pgt", "swapper_pg_dir", "init_task", "vmcoreinfo_data",
	"jiffies_64", "__start_BTF", "__stop_BTF", "nr_cpu_ids", "__per_cpu_offset",
	"page_offset_base", "__per_cpu_start", "__per_cpu_end", "format_worker_id", "avenrun",
	"tk_core", "runqueues", "kernel_cpustat", "", "x",
};

static void lookup(const struct vmw_symtab *st, const char *name)
{
	const struct vmw_ksym *s = vmw_symtab_lookup(st, name);
	if (!s)
		return;
	CHECK(s >= st->syms && s < st->syms + st->nsyms, "symbol outside the table");
	CHECK(s->name < st->names_len && !strcmp(vmw_ksym_name(st, s), name), "%s", name);
}

static void try_entry(void)
{
	struct vmw_kcache c = { 0 }, h = { 0 };
	int rh = vmw_kcache_load_head(dir, FUZZ_CACHE_BUILD_ID, FUZZ_CACHE_KERNELOFFSET, &h);
	int r = vmw_kcache_load(dir, FUZZ_CACHE_BUILD_ID, FUZZ_CACHE_KERNELOFFSET, &c);

	if (verbose)
		fprintf(stderr, "head: %d\n", rh);
	if (rh == 0) {
		CHECK(!h.symtab && h.vmcoreinfo_text && h.symbols_from, "head incomplete");
		/* a whole file that loads has the same head */
		if (r == 0)
			CHECK(!strcmp(h.vmcoreinfo_text, c.vmcoreinfo_text) && h.nsyms == c.symtab->nsyms &&
			      h.vmcoreinfo_phys == c.vmcoreinfo_phys, "head and full load disagree");
	}
	vmw_kcache_clear(&h);

	if (verbose)
		fprintf(stderr, "entry: %d", r);
	if (r < 0) {
		if (verbose)
			fputc('\n', stderr);
		return;
	}
	const struct vmw_symtab *st = c.symtab;
	CHECK(st && c.vmcoreinfo_text && c.symbols_from, "loaded entry incomplete");
	if (verbose)
		fprintf(stderr, " %u symbols, %zu bytes of names, from \"%s\"\n", st->nsyms,
			st->names_len, c.symbols_from);
	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
		lookup(st, wanted[i]);
	/* names from the table itself: hash and probe paths with matches */
	for (uint32_t i = 0, step = st->nsyms / 16 + 1; i < st->nsyms; i += step) {
		uint32_t off = st->syms[i].name;
		if (off < st->names_len)
			lookup(st, st->names + off);
	}
	/* the VMCOREINFO text kernel.c compares with the guest's */
	struct vmw_vmcoreinfo *vi = NULL;
	const char *why = NULL;
	if (vmw_vmcoreinfo_parse(c.vmcoreinfo_text, strlen(c.vmcoreinfo_text), &vi, &why) == 0) {
		uint64_t v;
		vmw_vmcoreinfo_symbol(vi, "kallsyms_names", &v);
		vmw_vmcoreinfo_free(vi);
	}
	vmw_kcache_clear(&c);
}

static void try_memo(void)
{
	struct vmw_memo m = { 0 }, n = { 0 };
	int r = vmw_memo_load(dir, FUZZ_CACHE_BUILD_ID, &m);

	if (verbose)
		fprintf(stderr, "memo: %d, %zu answers\n", r, m.n);
	if (r == 0) {
		for (size_t i = 0; i < m.n; i++) {
			const struct vmw_memo_entry *e = vmw_memo_find(&m, m.e[i].key);
			CHECK(e && e <= &m.e[i] && e->rc <= 0, "memo key %zu", i);
		}
		vmw_memo_find(&m, "M task_struct pid");
		/* the answers as a warm attach decodes them: no table, no BTF behind */
		struct vmw_vmcoreinfo vi = { .kerneloffset = FUZZ_CACHE_KERNELOFFSET };
		struct vmw_kernel k = { .vi = &vi, .memo = m, .symtab_err = -EIO, .btf_err = -EIO };
		for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
			struct vmw_kernel_sym s;
			char key[64];
			snprintf(key, sizeof(key), "Y %s", wanted[i]);
			if (vmw_kernel_lookup(&k, wanted[i], &s) < 0)
				continue;
			/* found with no table: from the memo, and moved by KERNELOFFSET
			 * exactly when it lands in the image mapping */
			const struct vmw_memo_entry *e = vmw_memo_find(&m, key);
			bool image = s.addr >= VMW_KERNEL_MAP_BASE && s.addr - VMW_KERNEL_MAP_BASE < VMW_KERNEL_MAP_SIZE;
			CHECK(e && e->rc == 0 && s.type > 0x20 && s.type < 0x7f &&
			      s.addr == e->a + (image ? FUZZ_CACHE_KERNELOFFSET : 0), "symbol %s", wanted[i]);
		}
		uint32_t size, tk, seq;
		if (vmw_kernel_tk_core(&k, &size, &tk, &seq) == 0)
			CHECK(tk < size && (uint64_t)seq + 4 <= size, "tk_core %u %u %u", size, tk, seq);
		m = k.memo;   /* lookups never add with the table missing, but keep what it holds */
		/* what is saved loads again the same */
		if (vmw_memo_save(dir, "roundtrip", &m) == 0) {
			CHECK(vmw_memo_load(dir, "roundtrip", &n) == 0, "saved memo does not load");
			CHECK(n.n == m.n, "%zu answers saved, %zu loaded", m.n, n.n);
			for (size_t i = 0; i < m.n; i++)
				CHECK(!strcmp(n.e[i].key, m.e[i].key) && n.e[i].rc == m.e[i].rc &&
				      n.e[i].a == m.e[i].a && n.e[i].b == m.e[i].b, "answer %zu", i);
		}
	}
	vmw_memo_clear(&n);
	vmw_memo_clear(&m);
}

static void try_hint(void)
{
	struct vmw_kcache_hint h;
	int r = vmw_kcache_hint_get(dir, FUZZ_CACHE_TARGET, &h);
	if (verbose)
		fprintf(stderr, "hint: %d phys %#" PRIx64 "\n", r, r == 0 ? h.vmcoreinfo_phys : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_cache_parts p;

	fuzz_cache_split(data, size, &p);
	put_file(entry_path, p.entry, p.entry_len, !(p.flags & 1));
	put_file(memo_path, p.memo, p.memo_len, !(p.flags & 2));
	put_file(hint_path, p.hint, p.hint_len, !(p.flags & 4));
	try_entry();
	try_memo();
	try_hint();
	return 0;
}

/* ---- the mutator ------------------------------------------------------------ */

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
	return fuzz_rnd(&rng, n);
}

static uint64_t interesting(uint64_t old)
{
	static const uint64_t v[] = { 0, 1, 2, 7, 8, 15, 16, 0xff, 0x100, 0xffff, 0x10000,
				      0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull,
				      1u << 24, (1u << 24) + 1, 1u << 30, (1u << 30) + 1,
				      0xffffffffffffffffull, 0x8000000000000000ull };
	switch (rnd(4)) {
	case 0: return v[rnd(sizeof(v) / sizeof(v[0]))];
	case 1: return old + rnd(17) - 8;
	case 2: return old ^ (1ull << rnd(64));
	default: return old * 2;
	}
}

/* Structured mutation of an entry in place: a header field, or a word of
 * the symbol/slot tables. */
static void mutate_entry(uint8_t *e, size_t len)
{
	struct vmw_kcache_disk_header h;

	if (len < sizeof(h) + 8)
		return;
	memcpy(&h, e, sizeof(h));
	switch (rnd(4)) {
	case 0: {   /* a count or a length */
		static const size_t offs[] = { offsetof(struct vmw_kcache_disk_header, symbols_from_len),
			offsetof(struct vmw_kcache_disk_header, text_len),
			offsetof(struct vmw_kcache_disk_header, nsyms),
			offsetof(struct vmw_kcache_disk_header, nslots) };
		size_t o = offs[rnd(4)];
		uint32_t v;
		memcpy(&v, e + o, 4);
		v = (uint32_t)interesting(v);
		memcpy(e + o, &v, 4);
		break;
	}
	case 1:
		h.names_len = interesting(h.names_len);
		memcpy(e + offsetof(struct vmw_kcache_disk_header, names_len), &h.names_len, 8);
		break;
	default: {  /* a 32-bit word after the header: names offsets, slot hashes/indices */
		size_t o = sizeof(h) + 4 * rnd((uint32_t)((len - sizeof(h) - 8) / 4));
		uint32_t v;
		memcpy(&v, e + o, 4);
		v = rnd(2) ? (uint32_t)interesting(v) : rnd(h.nsyms + 2);
		memcpy(e + o, &v, 4);
		break;
	}
	}
}

static void fix_entry_sum(uint8_t *e, size_t len)
{
	struct vmw_kcache_disk_header h;

	if (len < 8 || len % 8)
		return;
	/* the head's own sum first (it is inside the whole file's) */
	if (len >= sizeof(h) + 8) {
		memcpy(&h, e, sizeof(h));
		size_t head = sizeof(h) + (size_t)h.symbols_from_len + h.text_len;
		if (h.symbols_from_len <= len && h.text_len <= len && head <= len - 8) {
			uint8_t *copy = malloc(head);
			if (copy) {
				memcpy(copy, e, head);
				memset(copy + offsetof(struct vmw_kcache_disk_header, head_sum), 0, 8);
				h.head_sum = vmw_kcache_sum(copy, head);
				memcpy(e + offsetof(struct vmw_kcache_disk_header, head_sum), &h.head_sum, 8);
				free(copy);
			}
		}
	}
	uint64_t s = vmw_kcache_sum(e, len - 8);
	memcpy(e + len - 8, &s, 8);
}

/* Replace the memo's "# sum" line (if any) by one over what precedes it. */
static size_t fix_memo_sum(uint8_t *m, size_t len, size_t cap)
{
	size_t end = len;
	char tail[40];
	int n;

	/* drop a last line that starts with "# sum" */
	if (end && m[end - 1] == '\n') {
		size_t b = end - 1;
		while (b > 0 && m[b - 1] != '\n')
			b--;
		if (end - b >= 6 && !memcmp(m + b, "# sum ", 6))
			end = b;
	}
	if (end && m[end - 1] != '\n' && end < cap)
		m[end++] = '\n';
	n = snprintf(tail, sizeof(tail), "# sum %016" PRIx64 "\n", vmw_kcache_sum(m, end));
	if (end + (size_t)n > cap)
		return len;
	memcpy(m + end, tail, (size_t)n);
	return end + (size_t)n;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	struct fuzz_cache_parts p;
	struct fuzz_cache_hdr h = { 0 };
	uint8_t *part[3];
	size_t len[3], room, total;
	uint8_t *out;
	int which;

	rng = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
	if (size < sizeof(h) || rnd(32) == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	fuzz_cache_split(data, size, &p);
	memcpy(&h, data, sizeof(h));
	/* work on copies of the three parts, with room to grow one */
	room = max_size > size ? max_size - size : 0;
	const uint8_t *src[3] = { p.entry, p.memo, p.hint };
	size_t slen[3] = { p.entry_len, p.memo_len, p.hint_len };
	which = (int)rnd(8);
	which = which < 4 ? 0 : which < 7 ? 1 : 2;   /* entry 1/2, memo 3/8, hint 1/8 */
	for (int i = 0; i < 3; i++) {
		size_t cap = slen[i] + (i == which ? room : 0);
		part[i] = malloc(cap ? cap : 1);
		if (!part[i])
			return size;
		memcpy(part[i], src[i], slen[i]);
		len[i] = slen[i];
	}
	size_t cap = slen[which] + room;
	if (which == 0 && rnd(2))
		mutate_entry(part[0], len[0]);
	else if (rnd(16) == 0)
		h.flags ^= (uint8_t)(1u << rnd(3));
	else
		len[which] = LLVMFuzzerMutate(part[which], len[which], cap);
	if (rnd(16)) {   /* valid checksums, mostly */
		if (which == 0) {
			if (len[0] % 8 && rnd(8))
				len[0] &= ~(size_t)7;   /* entries are a multiple of 8 bytes */
			fix_entry_sum(part[0], len[0]);
		} else if (which == 1) {
			len[1] = fix_memo_sum(part[1], len[1], cap);
		}
	}
	h.entry_len = (uint32_t)len[0];
	h.memo_len = (uint32_t)len[1];
	total = sizeof(h) + len[0] + len[1] + len[2];
	if (total > max_size) {
		for (int i = 0; i < 3; i++)
			free(part[i]);
		return size;
	}
	out = data;
	memcpy(out, &h, sizeof(h));
	out += sizeof(h);
	for (int i = 0; i < 3; i++) {
		memcpy(out, part[i], len[i]);
		out += len[i];
		free(part[i]);
	}
	return total;
}
