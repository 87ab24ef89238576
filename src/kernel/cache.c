/* SPDX-License-Identifier: MIT */
/*
 * cache.c - the on-disk discovery cache.
 *
 *   DIR/<BUILD-ID>-<KERNELOFFSET>   one guest kernel (boot): its VMCOREINFO
 *                                   text and address, the decoded symbol
 *                                   table, where BTF and the kallsyms token
 *                                   table are (with their first bytes, to
 *                                   re-check against guest RAM)
 *   DIR/targets/<hash>              per memory source: the physical address
 *                                   where VMCOREINFO was last found (the
 *                                   1024 most recently used are kept)
 *
 *   DIR/<BUILD-ID>.layout           the layout memo: answers of BTF queries and
 *                                   symbol lookups this build was asked (symbol
 *                                   addresses without the KASLR offset), i.e.
 *                                   all a warm attach and walk load
 *
 * Files are written to a temporary name and renamed (atomic). The cache is
 * input like guest RAM: every file is checksummed whole (a torn or edited
 * file is rejected), and, as ssh's StrictModes does, a directory or file
 * that someone other than us (or root) owns or could write is not used at
 * all (vmw_cache_dir_trusted says why). A checksum cannot stop a writer who
 * recomputes it; the ownership rule can. Readers still bounds-check what
 * they follow. The 32 most recently used entries are kept (a load refreshes
 * the mtime). The cache only saves work: kernel.c re-verifies an entry
 * against guest RAM before using it and falls back to full discovery
 * otherwise.
 */
#include "kernel/kernel_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <dirent.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MAGIC "VMWKC006"
#define KEEP_ENTRIES 32
#define KEEP_HINTS 1024     /* targets/: one per QEMU process (pid and start) ever attached */
#define MAX_SYMBOLS_FROM 256u
#define MAX_TEXT (2u * VMW_VMCOREINFO_MAX)

static uint64_t fnv64(const void *data, size_t len, uint64_t h)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/*
 * Checksum of a cache file: four independent multiply-xorshift lanes over
 * 64-bit words (so a warm attach checks a few MiB of symbols in well under a
 * millisecond), folded with the length. Against corruption, not forgery:
 * see the ownership rule above. A tail shorter than a word is zero-padded.
 */
static uint64_t sum64(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h[4] = { 14695981039346656037ull, 0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
			  0x165667b19e3779f9ull };
	size_t i = 0;

	for (; i + 32 <= len; i += 32)
		for (int l = 0; l < 4; l++) {
			uint64_t w;
			memcpy(&w, p + i + 8 * l, 8);
			h[l] = (h[l] ^ w) * 1099511628211ull;
			h[l] ^= h[l] >> 29;
		}
	for (int l = 0; i < len; i += 8, l = (l + 1) & 3) {
		uint64_t w = 0;
		memcpy(&w, p + i, MIN((size_t)8, len - i));
		h[l] = (h[l] ^ w) * 1099511628211ull;
		h[l] ^= h[l] >> 29;
	}
	uint64_t r = len;
	for (int l = 0; l < 4; l++)
		r = (r ^ h[l]) * 0xff51afd7ed558ccdull ^ (r >> 33);
	return r;
}

uint64_t vmw_kcache_sum(const void *data, size_t len)
{
	return sum64(data, len);
}

#define FNV64_INIT 14695981039346656037ull

static int entry_path(const char *dir, const char *build_id, uint64_t kerneloffset, char *buf,
		      size_t size)
{
	int n = snprintf(buf, size, "%s/%s-%" PRIx64, dir, build_id, kerneloffset);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* A growable byte buffer for serialising. */
struct obuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void put(struct obuf *b, const void *data, size_t len)
{
	if (b->oom)
		return;
	if (b->len + len > b->cap) {
		size_t nc = MAX(b->cap * 2, b->len + len + 4096);
		uint8_t *n = realloc(b->p, nc);
		if (!n) {
			b->oom = true;
			return;
		}
		b->p = n;
		b->cap = nc;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

/*
 * Entry layout (host byte order; the cache is local to this machine):
 *   header (struct vmw_kcache_disk_header), symbols_from, VMCOREINFO text, padded to 8;
 *   syms[nsyms] (struct vmw_ksym), slots[nslots], names[names_len], padded to 8;
 *   u64 checksum of everything before it.
 * The head (header, symbols_from, text) has its own checksum (head_sum), so
 * a warm attach reads a few KiB (vmw_kcache_load_head) and never touches the
 * table: the symbols it needs come from the layout memo. A full load maps
 * the file and the symbol table uses it in place: O(1), no per-symbol work;
 * lookups bounds-check what they follow.
 */

static size_t pad8(size_t v) { return (v + 7) & ~(size_t)7; }

static void put_pad(struct obuf *b)
{
	static const uint8_t zero[8];
	put(b, zero, pad8(b->len) - b->len);
}

/* Is this directory entry a cache entry ("<build id>-<kerneloffset>")? */
static bool is_entry_name(const char *n)
{
	const char *dash = strchr(n, '-');
	if (!dash || dash == n || strchr(n, '.'))
		return false;
	for (const char *p = n; *p; p++)
		if (p != dash && !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

struct aged {
	char name[128];
	struct timespec mtime;
};

static int cmp_aged(const void *a, const void *b)
{
	const struct aged *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	return (x->mtime.tv_nsec > y->mtime.tv_nsec) - (x->mtime.tv_nsec < y->mtime.tv_nsec);
}

/* A hint file's name: 16 lowercase hex digits (hint_path). */
static bool is_hint_name(const char *n)
{
	size_t i = 0;

	for (; n[i]; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
			return false;
	return i == 16;
}

/* Keep the `keep` most recently used files whose names is_name accepts:
 * entries (every guest reboot with KASLR makes a new one) or hints (every
 * QEMU process); loads refresh an entry's or a hint's mtime. Files are
 * only stat'ed when there are more than `keep`. */
static void prune(const char *dir, size_t keep, bool (*is_name)(const char *n))
{
	_cleanup_free_ struct aged *v = NULL;
	size_t n = 0, cap = 0, count = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		count += is_name(de->d_name);
	if (count <= keep) {
		closedir(d);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		struct stat st;
		if (!is_name(de->d_name) || strlen(de->d_name) >= sizeof(v->name) ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct aged *p = realloc(v, nc * sizeof(*v));
			if (!p)
				break;
			v = p;
			cap = nc;
		}
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		v[n++].mtime = st.st_mtim;
	}
	if (n > keep) {
		qsort(v, n, sizeof(*v), cmp_aged);
		for (size_t i = 0; i < n - keep; i++)
			unlinkat(dirfd(d), v[i].name, 0);
	}
	closedir(d);
}

int vmw_kcache_save(const char *dir, const struct vmw_vmcoreinfo *vi, const struct vmw_kcache *c)
{
	const struct vmw_symtab *st = c->symtab;
	struct obuf b = { 0 };
	struct vmw_kcache_disk_header h = { 0 };
	char path[4096];
	uint64_t sum;
	int r;

	r = vmw_cache_mkdir_p(dir);
	if (r < 0)
		return r;
	r = entry_path(dir, vi->build_id, vi->kerneloffset, path, sizeof(path));
	if (r < 0)
		return r;

	memcpy(h.magic, MAGIC, 8);
	h.vmcoreinfo_phys = c->vmcoreinfo_phys;
	h.btf_vaddr = c->btf_vaddr;
	h.btf_len = c->btf_len;
	h.tokens_vaddr = c->tokens_vaddr;
	memcpy(h.tokens_head, c->tokens_head, sizeof(h.tokens_head));
	h.symbols_from_len = c->symbols_from ? (uint32_t)strlen(c->symbols_from) : 0;
	h.text_len = (uint32_t)strlen(vi->text);
	h.nsyms = st->nsyms;
	h.nslots = st->slot_mask + 1;
	h.names_len = st->names_len;
	put(&b, &h, sizeof(h));
	put(&b, c->symbols_from, h.symbols_from_len);
	put(&b, vi->text, h.text_len);
	if (!b.oom) {
		h.head_sum = sum64(b.p, b.len);
		memcpy(b.p + offsetof(struct vmw_kcache_disk_header, head_sum), &h.head_sum, 8);
	}
	put_pad(&b);
	put(&b, st->syms, (size_t)st->nsyms * sizeof(*st->syms));
	put(&b, st->slots, (size_t)h.nslots * sizeof(*st->slots));
	put(&b, st->names, st->names_len);
	put_pad(&b);
	if (!b.oom) {
		sum = sum64(b.p, b.len);
		put(&b, &sum, 8);
	}
	r = b.oom ? -ENOMEM : vmw_cache_write_atomic(path, b.p, b.len);
	free(b.p);
	if (r == 0)
		prune(dir, KEEP_ENTRIES, is_entry_name);
	return r;
}

void vmw_kcache_clear(struct vmw_kcache *c)
{
	free(c->vmcoreinfo_text);
	free((char *)c->symbols_from);
	vmw_symtab_free(c->symtab);
	memset(c, 0, sizeof(*c));
}

static void unmap_blob(void *blob, size_t len) { munmap(blob, len); }

/* Is the header consistent with a file of file_len bytes? The offsets of
 * the symbol arrays in *layout. */
struct entry_layout {
	size_t syms_off, slots_off, names_off;
};

static bool header_ok(const struct vmw_kcache_disk_header *h, size_t file_len, struct entry_layout *l)
{
	size_t len = file_len - 8, off = sizeof(*h);

	if (memcmp(h->magic, MAGIC, 8) || !h->nsyms || h->nsyms > (1u << 24) ||
	    h->nslots != vmw_symtab_nslots(h->nsyms) || h->names_len == 0 || h->names_len > (1u << 30) ||
	    h->symbols_from_len > MAX_SYMBOLS_FROM || h->text_len > MAX_TEXT)
		return false;
	if ((uint64_t)h->symbols_from_len + h->text_len > len - off)
		return false;
	off = pad8(off + h->symbols_from_len + h->text_len);
	l->syms_off = off;
	l->slots_off = l->syms_off + (size_t)h->nsyms * sizeof(struct vmw_ksym);
	l->names_off = l->slots_off + (size_t)h->nslots * sizeof(struct vmw_symtab_slot);
	return l->names_off <= len && h->names_len <= len - l->names_off &&
	       pad8(l->names_off + h->names_len) == len;
}

/* The head's checksum: header (head_sum as zero), symbols_from, text. */
static bool head_sum_ok(const uint8_t *head, size_t len)
{
	struct vmw_kcache_disk_header h;
	uint8_t *copy = malloc(len);
	bool ok;

	if (!copy)
		return false;
	memcpy(copy, head, len);
	memcpy(&h, head, sizeof(h));
	memset(copy + offsetof(struct vmw_kcache_disk_header, head_sum), 0, 8);
	ok = sum64(copy, len) == h.head_sum;
	free(copy);
	return ok;
}

/* Fill c's small fields from a checked head (header, symbols_from, text). */
static int take_head(const uint8_t *head, const struct vmw_kcache_disk_header *h, struct vmw_kcache *c)
{
	c->symbols_from = strndup((const char *)head + sizeof(*h), h->symbols_from_len);
	c->vmcoreinfo_text = strndup((const char *)head + sizeof(*h) + h->symbols_from_len, h->text_len);
	if (!c->symbols_from || !c->vmcoreinfo_text)
		return -ENOMEM;
	c->vmcoreinfo_phys = h->vmcoreinfo_phys;
	c->btf_vaddr = h->btf_vaddr;
	c->btf_len = h->btf_len;
	c->tokens_vaddr = h->tokens_vaddr;
	memcpy(c->tokens_head, h->tokens_head, sizeof(c->tokens_head));
	c->nsyms = h->nsyms;
	return 0;
}

static int open_entry(const char *dir, const char *build_id, uint64_t kerneloffset, struct stat *st)
{
	char path[4096];
	int r = entry_path(dir, build_id, kerneloffset, path, sizeof(path));
	if (r < 0)
		return r;
	int fd = vmw_cache_open_trusted(path, st);
	if (fd < 0)
		return fd;
	if (st->st_size < (off_t)sizeof(struct vmw_kcache_disk_header) + 8 || st->st_size > (1ll << 31) ||
	    st->st_size % 8) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int vmw_kcache_load_head(const char *dir, const char *build_id, uint64_t kerneloffset,
			 struct vmw_kcache *ret)
{
	struct vmw_kcache c = { 0 };
	struct vmw_kcache_disk_header h;
	struct entry_layout l;
	struct stat st;
	_cleanup_free_ uint8_t *head = NULL;
	size_t head_len;
	int r;

	_cleanup_close_ int fd = open_entry(dir, build_id, kerneloffset, &st);
	if (fd < 0)
		return fd;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || !header_ok(&h, (size_t)st.st_size, &l))
		return -EINVAL;
	head_len = sizeof(h) + h.symbols_from_len + h.text_len;
	if (!(head = malloc(head_len)))
		return -ENOMEM;
	if (pread(fd, head, head_len, 0) != (ssize_t)head_len || memcmp(head, &h, sizeof(h)) ||
	    !head_sum_ok(head, head_len))
		return -EINVAL;
	r = take_head(head, &h, &c);
	if (r < 0) {
		vmw_kcache_clear(&c);
		return r;
	}
	futimens(fd, NULL);   /* recently used: kept by prune() */
	*ret = c;
	return 0;
}

int vmw_kcache_load(const char *dir, const char *build_id, uint64_t kerneloffset,
		    struct vmw_kcache *ret)
{
	struct vmw_kcache c = { 0 };
	struct vmw_kcache_disk_header h;
	struct entry_layout l;
	struct stat st;
	uint8_t *data;
	size_t len;
	int r;

	_cleanup_close_ int fd = open_entry(dir, build_id, kerneloffset, &st);
	if (fd < 0)
		return fd;
	len = (size_t)st.st_size;
	/* Mapped, not read: a lookup touches a few pages of the table. */
	data = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (data == MAP_FAILED)
		return -errno;
	memcpy(&h, data, sizeof(h));
	r = -EINVAL;
	/* The whole file, symbols included: an edited name or address is as bad as a torn header. */
	if (sum64(data, len - 8) != *(const uint64_t *)(data + len - 8) || !header_ok(&h, len, &l) ||
	    !head_sum_ok(data, sizeof(h) + h.symbols_from_len + h.text_len))
		goto fail;
	if ((r = take_head(data, &h, &c)) < 0)
		goto fail;
	r = vmw_symtab_adopt(data, len, unmap_blob, (struct vmw_ksym *)(data + l.syms_off), h.nsyms,
			     (char *)data + l.names_off, h.names_len,
			     (struct vmw_symtab_slot *)(data + l.slots_off), h.nslots, &c.symtab);
	if (r < 0)
		goto fail;
	futimens(fd, NULL);
	*ret = c;
	return 0;
fail:
	vmw_kcache_clear(&c);
	munmap(data, len);
	return r;
}

static int hint_path(const char *dir, const char *target_id, char *buf, size_t size)
{
	uint64_t h = fnv64(target_id, strlen(target_id), FNV64_INIT);
	int n = snprintf(buf, size, "%s/targets/%016" PRIx64, dir, h);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* A hint file is "<phys> <jiffies> <realtime_ns> <target id>\n"; the id
 * guards against hash collisions. */
int vmw_kcache_hint_get(const char *dir, const char *target_id, struct vmw_kcache_hint *ret)
{
	char path[4200], line[1024];
	_cleanup_fclose_ FILE *f = NULL;
	unsigned long long phys, jiffies, realtime;
	int r, n = 0;
	size_t l;

	struct stat st;

	r = hint_path(dir, target_id, path, sizeof(path));
	if (r < 0)
		return r;
	_cleanup_close_ int fd = vmw_cache_open_trusted(path, &st);
	if (fd < 0)
		return fd;
	if (!(f = fdopen(fd, "r")))
		return -errno;
	fd = -1;
	if (!fgets(line, sizeof(line), f))
		return -EINVAL;
	l = strlen(line);
	if (!l || line[l - 1] != '\n')
		return -EINVAL;
	line[l - 1] = '\0';
	if (sscanf(line, "%llx %llx %llu %n", &phys, &jiffies, &realtime, &n) != 3 || !n)
		return -EINVAL;
	if (strcmp(line + n, target_id))
		return -ENOENT;
	futimens(fileno(f), NULL);   /* used: kept by prune */
	*ret = (struct vmw_kcache_hint){ .vmcoreinfo_phys = phys, .jiffies = jiffies,
					 .realtime_ns = realtime };
	return 0;
}

int vmw_kcache_hint_put(const char *dir, const char *target_id, const struct vmw_kcache_hint *h)
{
	char path[4200], sub[4200], line[1100];
	int r, n;

	if ((size_t)snprintf(sub, sizeof(sub), "%s/targets", dir) >= sizeof(sub))
		return -ENAMETOOLONG;
	r = vmw_cache_mkdir_p(sub);
	if (r < 0)
		return r;
	r = hint_path(dir, target_id, path, sizeof(path));
	if (r < 0)
		return r;
	n = snprintf(line, sizeof(line), "0x%" PRIx64 " 0x%" PRIx64 " %" PRIu64 " %s\n",
		     h->vmcoreinfo_phys, h->jiffies, h->realtime_ns, target_id);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENAMETOOLONG;
	/* A new target (a VM started, another file): the oldest hints go. */
	bool fresh = access(path, F_OK) < 0;
	if ((r = vmw_cache_write_atomic(path, line, (size_t)n)) == 0 && fresh)
		prune(sub, KEEP_HINTS, is_hint_name);
	return r;
}

/* ---- layout memo ------------------------------------------------------------ */

/* Entries carry their key's hash: a lookup compares integers, and strings
 * only on a hash match. */
const struct vmw_memo_entry *vmw_memo_find(const struct vmw_memo *m, const char *key)
{
	uint32_t h = vmw_symtab_hash(key);
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].hash == h && !strcmp(m->e[i].key, key))
			return &m->e[i];
	return NULL;
}

int vmw_memo_add(struct vmw_memo *m, const char *key, int rc, uint64_t a, uint64_t b)
{
	if (strchr(key, '\n') || vmw_memo_find(m, key))
		return 0;
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 64;
		struct vmw_memo_entry *e = realloc(m->e, nc * sizeof(*e));
		if (!e)
			return -ENOMEM;
		m->e = e;
		m->cap = nc;
	}
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	m->e[m->n++] = (struct vmw_memo_entry){ .key = k, .hash = vmw_symtab_hash(k), .rc = rc, .a = a,
						 .b = b };
	m->dirty = true;
	return 0;
}

void vmw_memo_clear(struct vmw_memo *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->e[i].key);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

static int memo_path(const char *dir, const char *build_id, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s.layout", dir, build_id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

#define MEMO_MAX_BYTES (4u << 20)
/* vmw_memo_add looks for duplicates linearly: loading n lines costs n^2/2
 * key comparisons (40,000 lines took minutes). The models ask a few hundred
 * distinct queries; a memo with more lines is refused whole. */
#define MEMO_MAX_ENTRIES 1024u
#define MEMO_SUM_TAG "# sum "

/*
 * The memo is text, one answer a line, ending in a line "# sum <hex>" over
 * all bytes before it: a file without a valid sum is ignored whole (its
 * answers only save BTF lookups). Values are re-validated where they are
 * used, like answers fresh from BTF.
 */
int vmw_memo_load(const char *dir, const char *build_id, struct vmw_memo *m)
{
	char path[4096];
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	bool was_dirty = m->dirty;
	int r;

	r = memo_path(dir, build_id, path, sizeof(path));
	if (r < 0)
		return r;
	_cleanup_close_ int fd = vmw_cache_open_trusted(path, &st);
	if (fd < 0)
		return fd;
	if (st.st_size <= 0 || st.st_size > MEMO_MAX_BYTES)
		return -EINVAL;
	size_t len = (size_t)st.st_size;
	if (!(buf = malloc(len + 1)))
		return -ENOMEM;
	ssize_t got = pread(fd, buf, len, 0);
	if (got != (ssize_t)len)
		return got < 0 ? -errno : -EINVAL;
	buf[len] = '\0';
	/* The last line carries the sum of everything before it. */
	if (len < 2 || buf[len - 1] != '\n')
		return -EINVAL;
	char *last = buf + len - 1;
	while (last > buf && last[-1] != '\n')
		last--;
	unsigned long long want;
	int n = 0;
	if (strncmp(last, MEMO_SUM_TAG, strlen(MEMO_SUM_TAG)) ||
	    sscanf(last + strlen(MEMO_SUM_TAG), "%llx%n", &want, &n) != 1 ||
	    last[strlen(MEMO_SUM_TAG) + (size_t)n] != '\n' || sum64(buf, (size_t)(last - buf)) != want)
		return -EINVAL;
	*last = '\0';
	size_t lines = 0;
	for (const char *p = buf; (p = strchr(p, '\n')); p++)
		if (++lines > MEMO_MAX_ENTRIES)
			return -EINVAL;
	for (char *line = buf, *nl; *line; line = nl + 1) {
		int rc;
		unsigned long long a, b;
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		n = 0;
		if (sscanf(line, "%d %llx %llx %n", &rc, &a, &b, &n) != 3 || !n || rc > 0)
			continue;
		r = vmw_memo_add(m, line + n, rc, a, b);
		if (r < 0)
			return r;
	}
	m->dirty = was_dirty;   /* answers added before the load still need saving */
	return 0;
}

int vmw_memo_save(const char *dir, const char *build_id, const struct vmw_memo *m)
{
	char path[4096];
	struct obuf b = { 0 };
	int r;

	r = vmw_cache_mkdir_p(dir);
	if (r < 0)
		return r;
	r = memo_path(dir, build_id, path, sizeof(path));
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n; i++) {
		char line[1100];
		int n = snprintf(line, sizeof(line), "%d %" PRIx64 " %" PRIx64 " %s\n", m->e[i].rc,
				 m->e[i].a, m->e[i].b, m->e[i].key);
		if (n > 0 && (size_t)n < sizeof(line))
			put(&b, line, (size_t)n);
	}
	if (!b.oom) {
		char tail[64];
		int n = snprintf(tail, sizeof(tail), MEMO_SUM_TAG "%016" PRIx64 "\n",
				 sum64(b.p ? (const void *)b.p : "", b.len));
		put(&b, tail, (size_t)n);
	}
	r = b.oom ? -ENOMEM : vmw_cache_write_atomic(path, b.p, b.len);
	free(b.p);
	return r;
}
