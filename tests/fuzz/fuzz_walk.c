/* SPDX-License-Identifier: MIT */
/*
 * fuzz_walk.c - libFuzzer target: kernel discovery and a process walk over a
 * sparse guest-memory image (format: fuzz_image.h). Whatever the image holds,
 * the run must end quickly with a result or an error: no crash, no hang, no
 * out-of-bounds read, no leak.
 *
 * FUZZ_VERBOSE=1 in the environment prints each input's result on stderr
 * (e.g. `FUZZ_VERBOSE=1 fuzz_walk seed.img` to check a seed); FUZZ_VERBOSE=2
 * also lists the processes found ("proc PID PPID NTHREADS COMM").
 *
 * The custom mutator knows the format: it mutates inside one page (a byte
 * window or an aligned 8-byte word: kernel structures are mostly pointers and
 * counters), splices pointers between pages, mutates the header and the
 * page list (which addresses exist), drops pages (holes) and duplicates
 * pages to new addresses.
 */
#include "fuzz_image.h"

#include <errno.h>
#include <string.h>

static bool verbose, no_reuse, check_reuse;
#define NCACHE_MAX 64
static int ncache = 8;   /* FUZZ_REUSE_ENTRIES */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static bool env_on(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *v = getenv("FUZZ_VERBOSE");
	verbose = env_on("FUZZ_VERBOSE");
	if (v && !strcmp(v, "2"))
		fuzz_proc_log = stderr;
	no_reuse = env_on("FUZZ_NO_REUSE");
	check_reuse = env_on("FUZZ_CHECK_REUSE");
	if ((v = getenv("FUZZ_REUSE_ENTRIES")) && atoi(v) > 0)
		ncache = MIN(atoi(v), NCACHE_MAX);
	return 0;
}

/* ---- reusing a discovery ----------------------------------------------------
 *
 * Discovery (kallsyms decoding, BTF parsing) is ~90% of a run, and most
 * mutations do not touch what it reads. Discovery is a function of the RAM
 * ranges and of the bytes it reads, so its result is reused for an input
 * with the same ranges and the same bytes in every page hull that it read
 * (traced with vmw_mem_trace_*): the walk then runs on exactly the state a
 * fresh discovery would have built, and a crash reproduces on its input
 * alone. FUZZ_NO_REUSE=1 turns this off; FUZZ_CHECK_REUSE=1 also runs every
 * reused input fresh and aborts if the results differ.
 *
 * FUZZ_REUSE_ENTRIES (default 8, at most 64) discoveries are kept, least
 * recently used out first; each holds some 50 MiB. All are bound to one
 * persistent vmw_mem, whose segment table is swapped to each input's (and
 * emptied between inputs).
 */

struct entry {
	struct vmw_kernel *k;
	struct vmw_linux *l;
	struct fuzz_result res;       /* of the discovery */
	unsigned flags;
	struct vmw_mem_range *ranges;
	size_t nranges;
	struct vmw_mem_trace_page *pages;
	bool *present;
	size_t npages;
	uint8_t *bytes;               /* bytes [lo, hi) of each present page, in order */
	uint64_t used;                /* LRU clock */
};

static struct vmw_mem *pmem;
static struct entry cache[NCACHE_MAX];
static uint64_t clock_now, nreused;

static void print_reuse(void)
{
	if (clock_now > 1)
		fprintf(stderr, "fuzz_walk: discovery reused for %llu of %llu inputs\n",
			(unsigned long long)nreused, (unsigned long long)clock_now);
}

static void entry_clear(struct entry *e)
{
	vmw_linux_free(e->l);
	vmw_kernel_detach(e->k);
	free(e->ranges);
	free(e->pages);
	free(e->present);
	free(e->bytes);
	memset(e, 0, sizeof(*e));
}

/* Take src's segment table into pmem. */
static void adopt(struct vmw_mem *src)
{
	free(pmem->segs);
	free(pmem->ranges);
	pmem->segs = src->segs;
	pmem->nsegs = src->nsegs;
	pmem->ranges = src->ranges;
	pmem->nranges = src->nranges;
	pmem->size = src->size;
	pmem->pid = src->pid;
	pmem->last = 0;
	memcpy(pmem->desc, src->desc, sizeof(pmem->desc));
	src->segs = NULL;
	src->ranges = NULL;
	src->nsegs = src->nranges = 0;
}

static bool entry_matches(const struct entry *e, unsigned flags)
{
	uint8_t buf[FUZZ_PAGE];
	size_t off = 0;

	if (!e->k || e->flags != flags || e->nranges != pmem->nranges ||
	    memcmp(e->ranges, pmem->ranges, e->nranges * sizeof(*e->ranges)))
		return false;
	for (size_t i = 0; i < e->npages; i++) {
		size_t len = e->pages[i].hi - e->pages[i].lo;
		if (!e->present[i])
			continue;   /* the same ranges: still not RAM */
		if (vmw_mem_read(pmem, e->pages[i].pfn * FUZZ_PAGE + e->pages[i].lo, buf, len) < 0 ||
		    memcmp(buf, e->bytes + off, len))
			return false;
		off += len;
	}
	return true;
}

/* Record what the discovery just made on pmem (traced) read. */
static int entry_record(struct entry *e, unsigned flags)
{
	size_t total = 0, off = 0;
	int r;

	e->flags = flags;
	e->nranges = pmem->nranges;
	e->ranges = malloc((e->nranges + 1) * sizeof(*e->ranges));
	if (!e->ranges)
		return -1;
	memcpy(e->ranges, pmem->ranges, e->nranges * sizeof(*e->ranges));
	r = vmw_mem_trace_pages(pmem, &e->pages, &e->npages);
	if (r < 0)
		return -1;
	e->present = calloc(e->npages + 1, sizeof(*e->present));
	for (size_t i = 0; i < e->npages; i++)
		total += e->pages[i].hi - e->pages[i].lo;
	e->bytes = malloc(total + 1);
	if (!e->present || !e->bytes)
		return -1;
	for (size_t i = 0; i < e->npages; i++) {
		size_t len = e->pages[i].hi - e->pages[i].lo;
		if (vmw_mem_read(pmem, e->pages[i].pfn * FUZZ_PAGE + e->pages[i].lo,
				 e->bytes + off, len) < 0)
			continue;
		e->present[i] = true;
		off += len;
	}
	return 0;
}

static void run_reusing(const uint8_t *data, size_t size, struct fuzz_result *res)
{
	struct fuzz_image img;
	struct entry *e = NULL, *victim = &cache[0];
	struct vmw_kernel *k;
	struct vmw_linux *l;

	if (!pmem) {
		if (vmw_mem_new(&pmem) < 0)
			abort();
		atexit(print_reuse);
	}
	if (fuzz_image_load(data, size, &img) < 0) {
		memset(res, 0, sizeof(*res));
		res->attach_rc = -ENOMEM;
		return;
	}
	adopt(img.mem);
	clock_now++;
	for (int i = 0; i < ncache && !e; i++)
		if (entry_matches(&cache[i], img.flags))
			e = &cache[i];
	if (e) {
		nreused++;
	} else {
		if (vmw_mem_trace_start(pmem) < 0)
			abort();
		int r = fuzz_attach(pmem, img.flags, &k, &l, res);
		if (r == 0) {
			for (int i = 0; i < ncache; i++)
				if (cache[i].used < victim->used)
					victim = &cache[i];
			entry_clear(victim);
			victim->k = k;
			victim->l = l;
			victim->res = *res;
			if (entry_record(victim, img.flags) < 0) {
				entry_clear(victim);   /* frees k and l */
				abort();
			}
			e = victim;
		}
		vmw_mem_trace_stop(pmem);
	}
	if (e) {
		e->used = clock_now;
		*res = e->res;
		fuzz_walk_check(e->l, img.flags, res);
		fuzz_cgroups_check(e->k, res);
	}
	pmem->nsegs = pmem->nranges = 0;   /* the buffers go with img */
	fuzz_image_free(&img);
}

static bool same_result(const struct fuzz_result *a, const struct fuzz_result *b)
{
	return a->attach_rc == b->attach_rc && a->linux_rc == b->linux_rc &&
	       a->walk_rc == b->walk_rc && a->nprocs == b->nprocs && a->nthreads == b->nthreads &&
	       a->ncmdlines == b->ncmdlines && a->skipped == b->skipped &&
	       a->truncated == b->truncated && a->fingerprint == b->fingerprint;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_result res, fresh;

	if (no_reuse) {
		fuzz_run(data, size, &res);
	} else {
		run_reusing(data, size, &res);
		if (check_reuse) {
			fuzz_run(data, size, &fresh);
			if (!same_result(&res, &fresh)) {
				fprintf(stderr, "fuzz_walk: reused discovery gave:\n");
				fuzz_result_print(stderr, &res);
				fprintf(stderr, "fresh discovery gave:\n");
				fuzz_result_print(stderr, &fresh);
				abort();
			}
		}
	}
	if (verbose)
		fuzz_result_print(stderr, &res);
	return 0;
}

/* ---- structure-aware mutator --------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

struct layout {
	size_t ntoc;     /* TOC entries present */
	size_t npages;   /* pages with full data */
	uint8_t *toc, *pages;
};

static bool layout_of(uint8_t *data, size_t size, struct layout *l)
{
	struct fuzz_hdr h;

	if (size < sizeof(h) + 4 + FUZZ_PAGE)
		return false;
	memcpy(&h, data, sizeof(h));
	l->ntoc = MIN((size_t)h.npages, (size - sizeof(h)) / 4);
	l->npages = MIN(l->ntoc, (size - sizeof(h) - 4 * l->ntoc) / FUZZ_PAGE);
	l->toc = data + sizeof(h);
	l->pages = l->toc + 4 * l->ntoc;
	return l->npages > 0;
}

static uint32_t toc_get(const struct layout *l, size_t i)
{
	uint32_t v;
	memcpy(&v, l->toc + 4 * i, 4);
	return v;
}

/* Did the discovery of the most recent cache entry read more of this page
 * than the scan's 16-byte head probe? Then changing it means a new discovery. */
static bool discovery_reads(uint32_t pfn)
{
	const struct entry *e = NULL;
	size_t lo = 0, hi;

	for (int i = 0; i < ncache; i++)
		if (cache[i].k && (!e || cache[i].used > e->used))
			e = &cache[i];
	if (!e)
		return false;
	hi = e->npages;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (e->pages[mid].pfn < pfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < e->npages && e->pages[lo].pfn == pfn && e->pages[lo].hi > 16;
}

/*
 * A page to mutate, and the lowest offset to mutate it at. Most of the time
 * (85%, walk-only) a page that the last discovery did not read, above its
 * first 16 bytes: the discovery is then reused and the walk gets the time.
 * Else any page (8%) or a page that stands alone in the list (7%: page
 * tables, task_structs, rather than the big contiguous BTF and kallsyms
 * tables).
 */
static size_t pick_page(const struct layout *l, size_t *min_off)
{
	size_t i = below(l->npages);
	uint64_t dice = below(100);

	*min_off = 0;
	if (dice < 85) {
		for (int tries = 0; tries < 64; tries++, i = below(l->npages))
			if (!discovery_reads(toc_get(l, i))) {
				*min_off = 16;
				return i;
			}
		return i;
	}
	if (dice < 93)
		return i;
	for (size_t k = 0; k < l->npages; k++) {
		size_t j = (i + k) % l->npages;
		uint32_t p = toc_get(l, j);
		bool before = j > 0 && toc_get(l, j - 1) + 1 == p;
		bool after = j + 1 < l->npages && toc_get(l, j + 1) == p + 1;
		if (!before && !after)
			return j;
	}
	return i;
}

/* libFuzzer's mutations on a window, keeping its size. */
static void mutate_window(uint8_t *p, size_t len)
{
	uint8_t tmp[FUZZ_PAGE + 64];
	size_t n;

	if (len > FUZZ_PAGE + 64 || !len)
		return;
	memcpy(tmp, p, len);
	n = LLVMFuzzerMutate(tmp, len, len);
	memcpy(p, tmp, MIN(n, len));
}

static void mutate_word(const struct layout *l)
{
	size_t min_off;
	uint8_t *page = l->pages + pick_page(l, &min_off) * FUZZ_PAGE;
	uint8_t *w = page + min_off + 8 * below((FUZZ_PAGE - min_off) / 8);
	uint64_t v;

	memcpy(&v, w, 8);
	switch (below(6)) {
	case 0: {  /* splice: a word from elsewhere (often a pointer) */
		const uint8_t *src = l->pages + below(l->npages) * FUZZ_PAGE + 8 * below(FUZZ_PAGE / 8);
		memcpy(&v, src, 8);
		break;
	}
	case 1:  /* point at another word of the same 4 KiB (list heads, self-pointers) */
		v = (v & ~4095ull) | (8 * below(FUZZ_PAGE / 8));
		break;
	case 2:
		v += (int64_t)(below(33) - 16) * 8;
		break;
	case 3:
		v ^= 1ull << below(64);
		break;
	case 4: {
		static const uint64_t special[] = {
			0, 1, ~0ull, 0x7fffffff, 0x80000000, 0xffffffff, 4096, 1ull << 32,
			0xffff888000000000ull, 0xffffffff80000000ull, 0xff11000000000000ull,
			0x8000000000000000ull, 0x000ffffffffff000ull, 0x1e3ull, 0x67ull,
		};
		v = special[below(ARRAY_SIZE(special))];
		break;
	}
	default:  /* narrower fields: a u32 or u16 */
		if (rnd() & 1)
			v = (v & ~0xffffffffull) | (uint32_t)rnd();
		else
			v = (v & ~0xffffull) | (uint16_t)rnd();
		break;
	}
	memcpy(w, &v, 8);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	struct layout l;
	unsigned op;

	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
	if (!layout_of(data, size, &l))
		return LLVMFuzzerMutate(data, size, max_size);
	op = (unsigned)below(100);
	if (op < 45) {
		/* a window of one page */
		size_t min_off, i = pick_page(&l, &min_off);
		size_t len = (size_t[]){ 8, 16, 64, 256, 4096 }[below(5)];
		size_t off;
		if (len > FUZZ_PAGE - min_off)
			len = FUZZ_PAGE - min_off;
		off = min_off + below((FUZZ_PAGE - min_off) / len) * len;
		mutate_window(l.pages + i * FUZZ_PAGE + off, len);
	} else if (op < 90) {
		int k = 1 + (int)below(3);
		while (k--)
			mutate_word(&l);
	} else if (op < 93) {
		/* the header, or a window of the TOC */
		if (rnd() & 1) {
			mutate_window(data, sizeof(struct fuzz_hdr));
		} else {
			size_t i = below(l.ntoc);
			mutate_window(l.toc + 4 * i, 4 * MIN((size_t)4, l.ntoc - i));
		}
	} else if (op < 95) {
		/* move one page to another address (near: off by one, or anywhere) */
		size_t i = below(l.ntoc);
		uint32_t p = toc_get(&l, i);
		p = rnd() & 1 ? p + (uint32_t)below(5) - 2 : (uint32_t)below(1u << 20);
		memcpy(l.toc + 4 * i, &p, 4);
	} else if (op < 98) {
		/* drop a page: a hole */
		size_t min_off, i = pick_page(&l, &min_off);
		uint32_t n = (uint32_t)l.ntoc - 1;
		uint8_t *end = data + size;
		uint8_t *pg = l.pages + i * FUZZ_PAGE;
		memmove(pg, pg + FUZZ_PAGE, (size_t)(end - pg - FUZZ_PAGE));       /* page data */
		memmove(l.toc + 4 * i, l.toc + 4 * i + 4, (size_t)(end - FUZZ_PAGE - (l.toc + 4 * i + 4)));
		memcpy(data + offsetof(struct fuzz_hdr, npages), &n, 4);
		size -= FUZZ_PAGE + 4;
	} else {
		/* copy a page to a new address next to an existing one */
		size_t min_off, i = pick_page(&l, &min_off), j = below(l.ntoc);
		uint32_t n = (uint32_t)l.ntoc + 1, p = toc_get(&l, j) + (rnd() & 1 ? 1 : (uint32_t)-1);
		uint8_t *end = data + size;
		if (size + FUZZ_PAGE + 4 > max_size || l.npages != l.ntoc)
			return LLVMFuzzerMutate(data, size, max_size);
		/* new TOC entry at the end of the TOC, new page at the end of the pages */
		size_t pages_end = (size_t)(l.pages - data) + l.npages * FUZZ_PAGE;
		memmove(l.pages + 4, l.pages, (size_t)(end - l.pages));
		memcpy(l.pages, &p, 4);
		size += 4;
		memmove(data + pages_end + 4 + FUZZ_PAGE, data + pages_end + 4, size - (pages_end + 4));
		memcpy(data + pages_end + 4, l.pages + 4 + i * FUZZ_PAGE, FUZZ_PAGE);
		size += FUZZ_PAGE;
		memcpy(data + offsetof(struct fuzz_hdr, npages), &n, 4);
	}
	return size;
}
