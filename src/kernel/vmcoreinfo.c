/* SPDX-License-Identifier: MIT */
/*
 * vmcoreinfo.c - the kernel's VMCOREINFO text: finding its copies in guest
 * RAM and parsing it.
 *
 * Linux keeps the text twice, both page-aligned (crash_save_vmcoreinfo_init):
 *   vmcoreinfo_data  get_zeroed_page(): "OSRELEASE=..." at a page start;
 *   vmcoreinfo_note  alloc_pages_exact(): Elf64_Nhdr {namesz 11, descsz,
 *                    type 0} + "VMCOREINFO\0\0" + the same text.
 * So the scan reads only the first 16 bytes of every page. Other matches of
 * "OSRELEASE=" exist (the format string "OSRELEASE=%s" in .rodata, copies
 * left by a previous boot, pages being written); the parser rejects what is
 * not complete text and kernel.c decides which valid copy is live.
 */
#include "kernel/kernel_internal.h"

#include <errno.h>
#include <string.h>

static const char OSREL[] = "OSRELEASE=";
#define OSREL_LEN (sizeof(OSREL) - 1)

/* ---- parsing ------------------------------------------------------------ */

void vmw_vmcoreinfo_free(struct vmw_vmcoreinfo *vi)
{
	if (!vi)
		return;
	free(vi->text);
	free(vi->buf);
	free(vi->entries);
	free(vi);
}

static void vmw_vmcoreinfo_freep(struct vmw_vmcoreinfo **p) { vmw_vmcoreinfo_free(*p); }

const char *vmw_vmcoreinfo_get(const struct vmw_vmcoreinfo *vi, const char *key)
{
	for (size_t i = 0; i < vi->nentries; i++)
		if (!strcmp(vi->entries[i].key, key))
			return vi->entries[i].value;
	return NULL;
}

static const char *get_fn(const struct vmw_vmcoreinfo *vi, const char *fn, const char *name)
{
	char key[256];
	if ((size_t)snprintf(key, sizeof(key), "%s(%s)", fn, name) >= sizeof(key))
		return NULL;
	return vmw_vmcoreinfo_get(vi, key);
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

/* Unsigned hex, optional 0x, at most 16 digits. */
static int parse_hex(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	size_t n = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (; *s; s++, n++) {
		if (!is_hex(*s) || n >= 16)
			return -EINVAL;
		v = v << 4 | (uint64_t)hexval(*s);
	}
	if (!n)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Unsigned decimal without overflow. */
static int parse_dec(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		uint64_t d = (uint64_t)(*s - '0');
		if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

/* NUMBER(): "%ld" (negative for phys_base when the image sits below its link
 * address) or, for a few, "0x%lx". Two's complement into 64 bits. */
static int parse_number(const char *s, uint64_t *ret)
{
	bool neg = false;
	uint64_t v;
	int r;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		r = parse_hex(s, &v);
	else
		r = parse_dec(s, &v);
	if (r < 0)
		return r;
	*ret = neg ? (uint64_t)0 - v : v;
	return 0;
}

int vmw_vmcoreinfo_symbol(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret)
{
	const char *v = get_fn(vi, "SYMBOL", name);
	return v ? parse_hex(v, ret) : -ENOENT;
}

int vmw_vmcoreinfo_number(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret)
{
	const char *v = get_fn(vi, "NUMBER", name);
	return v ? parse_number(v, ret) : -ENOENT;
}

/* FN(name) with a decimal value (OFFSET, SIZE, LENGTH). */
static int get_fn_dec(const struct vmw_vmcoreinfo *vi, const char *fn, const char *name, uint64_t *ret)
{
	const char *v = get_fn(vi, fn, name);
	return v ? parse_dec(v, ret) : -ENOENT;
}

int vmw_vmcoreinfo_offset(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret)
{
	return get_fn_dec(vi, "OFFSET", name, ret);
}

int vmw_vmcoreinfo_size(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret)
{
	return get_fn_dec(vi, "SIZE", name, ret);
}

int vmw_vmcoreinfo_length(const struct vmw_vmcoreinfo *vi, const char *name, uint64_t *ret)
{
	return get_fn_dec(vi, "LENGTH", name, ret);
}

/* A key is NAME or FN(NAME) with NAME made of identifier characters (and
 * '-' for BUILD-ID, '.' for OFFSET(struct.member)). */
static bool valid_key(const char *k)
{
	const char *p = k;
	if (!*p)
		return false;
	while ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
		p++;
	if (p == k)
		return false;
	if (!*p)
		return true;
	if (*p++ != '(')
		return false;
	const char *n = p;
	while (*p && *p != ')') {
		char c = *p++;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.'))
			return false;
	}
	return p > n && p[0] == ')' && p[1] == '\0';
}

/* The text up to its NUL (or len): starts with OSRELEASE=, printable lines,
 * ends with a newline. Its length, or -EINVAL with *why. */
static long check_text(const char *s, size_t len, size_t *ret_lines, const char **why)
{
	size_t n = 0, lines = 0;

	while (n < len && s[n])
		n++;
	if (n < OSREL_LEN || memcmp(s, OSREL, OSREL_LEN)) {
		*why = "does not start with OSRELEASE=";
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			lines++;
		else if (c < 0x20 || c > 0x7e) {
			*why = "non-text byte";
			return -EINVAL;
		}
	}
	if (s[n - 1] != '\n') {
		*why = "text does not end with a newline (truncated or being written)";
		return -EINVAL;
	}
	*ret_lines = lines;
	return (long)n;
}

/* Split vi->buf into KEY=VALUE entries in place. */
static int split_entries(struct vmw_vmcoreinfo *vi, const char **why)
{
	for (char *line = vi->buf, *next; *line; line = next) {
		char *nl = strchr(line, '\n');   /* always found: the text ends with '\n' */
		*nl = '\0';
		next = nl + 1;
		if (!*line)
			continue;   /* tolerate empty lines */
		char *eq = strchr(line, '=');
		if (!eq) {
			*why = "line without '='";
			return -EINVAL;
		}
		*eq = '\0';
		if (!valid_key(line)) {
			*why = "malformed key";
			return -EINVAL;
		}
		vi->entries[vi->nentries].key = line;
		vi->entries[vi->nentries].value = eq + 1;
		vi->nentries++;
	}
	return 0;
}

static int take_identity(struct vmw_vmcoreinfo *vi, const char **why)
{
	const char *v = vmw_vmcoreinfo_get(vi, "OSRELEASE");

	if (!v || !*v || strlen(v) >= sizeof(vi->release) || v[0] == '%') {
		*why = "bad OSRELEASE";
		return -EINVAL;
	}
	strcpy(vi->release, v);

	v = vmw_vmcoreinfo_get(vi, "BUILD-ID");
	if (!v || !*v || strlen(v) >= sizeof(vi->build_id) || strlen(v) % 2) {
		*why = "missing or bad BUILD-ID";
		return -EINVAL;
	}
	for (const char *p = v; *p; p++)
		if (!is_hex(*p)) {
			*why = "missing or bad BUILD-ID";
			return -EINVAL;
		}
	strcpy(vi->build_id, v);
	return 0;
}

/* The x86-64 facts every kernel writes: page size, KASLR offset, _stext,
 * phys_base, the page-table root and 5-level paging. */
static int take_layout(struct vmw_vmcoreinfo *vi, const char **why)
{
	const char *v = vmw_vmcoreinfo_get(vi, "PAGESIZE");
	uint64_t l5 = 0;
	int r;

	if (!v || parse_dec(v, &vi->page_size) < 0 || vi->page_size != 4096) {
		*why = "missing PAGESIZE or not 4096 (not an x86-64 kernel?)";
		return -EINVAL;
	}
	v = vmw_vmcoreinfo_get(vi, "KERNELOFFSET");
	if (!v || parse_hex(v, &vi->kerneloffset) < 0) {
		*why = "missing KERNELOFFSET (not an x86-64 kernel?)";
		return -EINVAL;
	}
	if (vmw_vmcoreinfo_symbol(vi, "_stext", &vi->stext) < 0 ||
	    vi->stext < 0xffffffff80000000ull) {
		*why = "missing or bad SYMBOL(_stext)";
		return -EINVAL;
	}
	if (vmw_vmcoreinfo_number(vi, "phys_base", &vi->phys_base) < 0) {
		*why = "missing NUMBER(phys_base)";
		return -EINVAL;
	}
	r = vmw_vmcoreinfo_symbol(vi, "init_top_pgt", &vi->pgd);
	if (r == -ENOENT)
		r = vmw_vmcoreinfo_symbol(vi, "swapper_pg_dir", &vi->pgd);
	if (r < 0 || vi->pgd < 0xffffffff80000000ull || vi->pgd % 4096) {
		*why = "missing or bad SYMBOL(init_top_pgt)";
		return -EINVAL;
	}
	vi->paging_levels = 4;
	r = vmw_vmcoreinfo_number(vi, "pgtable_l5_enabled", &l5);
	if (r == 0 && l5 == 1)
		vi->paging_levels = 5;
	else if (r == 0 && l5 != 0) {
		*why = "bad NUMBER(pgtable_l5_enabled)";
		return -EINVAL;
	}
	return 0;
}

int vmw_vmcoreinfo_parse(const void *data, size_t len, struct vmw_vmcoreinfo **ret,
			 const char **why)
{
	_cleanup_(vmw_vmcoreinfo_freep) struct vmw_vmcoreinfo *vi = NULL;
	const char *why_dummy;
	const char *s = data;
	size_t n, lines = 0;
	long tl;
	int r;

	if (!why)
		why = &why_dummy;
	*why = NULL;

	if ((tl = check_text(s, len, &lines, why)) < 0)
		return (int)tl;
	n = (size_t)tl;
	vi = calloc(1, sizeof(*vi));
	if (!vi)
		return -ENOMEM;
	vi->text = strndup(s, n);
	vi->buf = strndup(s, n);
	vi->entries = calloc(lines ? lines : 1, sizeof(*vi->entries));
	if (!vi->text || !vi->buf || !vi->entries)
		return -ENOMEM;
	vi->len = n;
	if ((r = split_entries(vi, why)) < 0 || (r = take_identity(vi, why)) < 0 ||
	    (r = take_layout(vi, why)) < 0)
		return r;
	*ret = TAKE_PTR(vi);
	return 0;
}

/* ---- finding copies in guest RAM ---------------------------------------- */

bool vmw_vmcoreinfo_page_is_data(const uint8_t *p)
{
	/* "OSRELEASE=" then a release, not the "%s" of the format string. */
	return !memcmp(p, OSREL, OSREL_LEN) && p[OSREL_LEN] > ' ' && p[OSREL_LEN] < 0x7f &&
	       p[OSREL_LEN] != '%';
}

bool vmw_vmcoreinfo_page_is_note(const uint8_t *p)
{
	uint32_t namesz, descsz, type;
	memcpy(&namesz, p, 4);
	memcpy(&descsz, p + 4, 4);
	memcpy(&type, p + 8, 4);
	return namesz == 11 && type == 0 && descsz > OSREL_LEN && descsz <= 4096 - 24 &&
	       !memcmp(p + 12, "VMCO", 4);
}

int vmw_vmcoreinfo_read(struct vmw_mem *mem, uint64_t phys, struct vmw_vmcoreinfo **ret,
			const char **why)
{
	uint8_t buf[VMW_VMCOREINFO_MAX];
	size_t len = VMW_VMCOREINFO_MAX - (phys & (VMW_VMCOREINFO_MAX - 1));
	int r;

	r = vmw_mem_read(mem, phys, buf, len);
	if (r < 0) {
		if (why)
			*why = "unreadable";
		return r;
	}
	return vmw_vmcoreinfo_parse(buf, len, ret, why);
}

/*
 * Both scans look only at populated pages (vmw_mem_populated): the copies
 * are in pages the guest kernel wrote, and reading a page nobody ever
 * touched would make the host allocate it (a 5 GiB tmpfs RAM file would grow
 * to 5 GiB just to be searched). The populated map is asked for one window
 * at a time.
 */
#define SCAN_BATCH 8192                          /* pages per window: 32 MiB */
#define SCAN_WINDOW ((uint64_t)SCAN_BATCH * 4096)
#define PROBE 16

static int add_hit(struct vmw_vmcoreinfo_hit **hits, size_t *n, size_t *cap, uint64_t phys,
		   enum vmw_vmcoreinfo_kind kind)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		void *p = realloc(*hits, nc * sizeof(**hits));
		if (!p)
			return -ENOMEM;
		*hits = p;
		*cap = nc;
	}
	(*hits)[*n].phys = phys;
	(*hits)[*n].kind = kind;
	(*n)++;
	return 0;
}

static int scan_pages(struct vmw_mem *mem, struct vmw_vmcoreinfo_hit **hits, size_t *nhits,
		      size_t *cap)
{
	const struct vmw_mem_range *ranges;
	size_t nranges = vmw_mem_ranges(mem, &ranges);
	_cleanup_free_ struct vmw_phys_iov *iov = calloc(SCAN_BATCH, sizeof(*iov));
	_cleanup_free_ uint8_t *buf = malloc(SCAN_BATCH * PROBE);
	_cleanup_free_ uint8_t *pop = malloc(SCAN_BATCH);
	int r;

	if (!iov || !buf || !pop)
		return -ENOMEM;
	for (size_t i = 0; i < SCAN_BATCH; i++) {
		iov[i].buf = buf + i * PROBE;
		iov[i].len = PROBE;
	}
	for (size_t ri = 0; ri < nranges; ri++) {
		uint64_t w = (ranges[ri].start + 4095) & ~4095ull;
		uint64_t end = ranges[ri].start + ranges[ri].size;

		/* Windows of SCAN_BATCH pages, each page probed if PROBE bytes fit. */
		for (; w < end && end - w >= PROBE; w += SCAN_WINDOW) {
			uint64_t wlen = MIN(end - w, SCAN_WINDOW);
			size_t n = 0;

			r = vmw_mem_populated(mem, w, wlen, pop);
			if (r < 0)
				return r;
			for (size_t k = 0; k < SCAN_BATCH && k * 4096 < wlen; k++)
				if (pop[k] && wlen - k * 4096 >= PROBE)
					iov[n++].addr = w + k * 4096;
			if (n == 0)
				continue;
			r = vmw_mem_readv(mem, iov, n);
			if (r < 0 && r != -EFAULT)
				return r;   /* process gone etc.; -EFAULT pieces are skipped */
			for (size_t i = 0; i < n; i++) {
				const uint8_t *p = iov[i].buf;
				if (iov[i].err)
					continue;
				/* Cheap first-byte filter: 'O' or 11 (namesz). */
				if (p[0] == 'O' && vmw_vmcoreinfo_page_is_data(p))
					r = add_hit(hits, nhits, cap, iov[i].addr, VMW_VMCOREINFO_DATA);
				else if (p[0] == 11 && vmw_vmcoreinfo_page_is_note(p))
					r = add_hit(hits, nhits, cap, iov[i].addr + 24, VMW_VMCOREINFO_NOTE);
				else
					r = 0;
				if (r < 0)
					return r;
			}
			if (end - w <= SCAN_WINDOW)
				break;
		}
	}
	return 0;
}

#define BYTE_CHUNK (4u << 20)

/* Every "OSRELEASE=" not at a page start in guest [start, end). */
static int scan_bytes_run(struct vmw_mem *mem, uint64_t start, uint64_t end, uint8_t *buf,
			  struct vmw_vmcoreinfo_hit **hits, size_t *nhits, size_t *cap)
{
	int r;

	for (uint64_t a = start; a < end;) {
		size_t len = (size_t)MIN((uint64_t)BYTE_CHUNK, end - a);
		r = vmw_mem_read(mem, a, buf, len);
		if (r < 0)
			return r;
		for (const uint8_t *p = buf; (p = memmem(p, len - (size_t)(p - buf), OSREL,
							 OSREL_LEN)); p++) {
			size_t off = (size_t)(p - buf);
			/* Need the byte after the key; at a chunk end, the
			 * overlap below re-finds it in the next chunk. */
			if (off + OSREL_LEN >= len)
				break;
			if (vmw_vmcoreinfo_page_is_data(p) && (a + off) % 4096 != 0) {
				r = add_hit(hits, nhits, cap, a + off, VMW_VMCOREINFO_LOOSE);
				if (r < 0)
					return r;
			}
		}
		if (a + len >= end)
			break;
		a += len - OSREL_LEN;   /* overlap so a match across chunks is seen */
	}
	return 0;
}

/* The byte scan, over runs of populated pages (a page that is not populated
 * reads as zeros, so no match can reach into it). */
static int scan_bytes(struct vmw_mem *mem, struct vmw_vmcoreinfo_hit **hits, size_t *nhits,
		      size_t *cap)
{
	const struct vmw_mem_range *ranges;
	size_t nranges = vmw_mem_ranges(mem, &ranges);
	_cleanup_free_ uint8_t *buf = malloc(BYTE_CHUNK);
	_cleanup_free_ uint8_t *pop = malloc(SCAN_BATCH + 1);
	int r;

	if (!buf || !pop)
		return -ENOMEM;
	for (size_t ri = 0; ri < nranges; ri++) {
		uint64_t start = ranges[ri].start, end = start + ranges[ri].size;
		uint64_t run = UINT64_MAX;   /* start of the open run of populated pages */

		for (uint64_t w = start & ~4095ull; w < end; w += SCAN_WINDOW) {
			uint64_t wlen = MIN(end - w, SCAN_WINDOW);

			r = vmw_mem_populated(mem, w, wlen, pop);
			if (r < 0)
				return r;
			for (size_t k = 0; k * 4096 < wlen; k++) {
				uint64_t pg = MAX(w + k * 4096, start);
				if (pop[k] && run == UINT64_MAX)
					run = pg;
				else if (!pop[k] && run != UINT64_MAX) {
					r = scan_bytes_run(mem, run, pg, buf, hits, nhits, cap);
					if (r < 0)
						return r;
					run = UINT64_MAX;
				}
			}
			if (end - w <= SCAN_WINDOW)
				break;
		}
		if (run != UINT64_MAX && (r = scan_bytes_run(mem, run, end, buf, hits, nhits, cap)) < 0)
			return r;
	}
	return 0;
}

int vmw_vmcoreinfo_scan(struct vmw_mem *mem, struct vmw_vmcoreinfo_hit **ret, uint64_t *scan_ns)
{
	_cleanup_free_ struct vmw_vmcoreinfo_hit *hits = NULL;
	size_t n = 0, cap = 0;
	uint64_t t0 = vmw_now_ns();
	int r;

	r = scan_pages(mem, &hits, &n, &cap);
	if (r == 0 && n == 0)
		r = scan_bytes(mem, &hits, &n, &cap);
	if (scan_ns)
		*scan_ns = vmw_now_ns() - t0;
	if (r < 0)
		return r;
	*ret = TAKE_PTR(hits);
	return (int)n;
}
