/* SPDX-License-Identifier: MIT */
/*
 * make_seed.c - make a fuzz seed (fuzz_image.h format) from a real target:
 * the pages that kernel discovery and a process walk (threads, command lines)
 * read, and nothing else.
 *
 *   make_seed [--fallback] [--flags N] TARGET OUT
 *
 * TARGET is what vmwatch takes (qemu:PID, file:PATH). Pause a live guest
 * while this runs (QMP stop): the pages are read more than once.
 *
 *  1. A traced run on the target records every page asked for. Pages asked
 *     for only as the 16-byte head probe of the VMCOREINFO scan (which probes
 *     every page of RAM) are left out.
 *  2. The image of those pages is run (the fuzz target's own code), traced:
 *     pages it asked for that it lacks, and that the target has, are added;
 *     repeated until nothing is missing.
 *  3. The image's run must find the same processes (count, pids, parents,
 *     names) as the run on the target, else no seed is written (exit 1).
 * --fallback: the seed exercises the structural kallsyms locator instead
 * (header flag 1) and declares the 32 MiB (else 96 MiB) from the kernel
 * image's start as zero-filled RAM, so the locator can scan it: only the
 * pages the normal run read hold data.
 * --flags N: other header flags (fuzz_image.h FUZZ_F_*) for the seed.
 */
#include "fuzz_image.h"

#include <errno.h>
#include <string.h>

struct page {
	uint64_t pfn;
	uint8_t *data;
};

struct pageset {
	struct page *p;
	size_t n, cap;
};

static int page_cmp(const void *a, const void *b)
{
	const struct page *x = a, *y = b;
	return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

static bool has(const struct pageset *s, uint64_t pfn)
{
	struct page key = { .pfn = pfn };
	return bsearch(&key, s->p, s->n, sizeof(*s->p), page_cmp) != NULL;
}

/* Add pfn with the target's bytes, unless it is not RAM there. 1 added, 0 not. */
static int add(struct pageset *s, struct vmw_mem *target, uint64_t pfn)
{
	uint8_t *d;

	if (pfn > UINT32_MAX)
		return 0;
	d = malloc(FUZZ_PAGE);
	if (!d) {
		fprintf(stderr, "make_seed: out of memory\n");
		exit(1);
	}
	if (vmw_mem_read(target, pfn * FUZZ_PAGE, d, FUZZ_PAGE) < 0) {
		free(d);
		return 0;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->p = realloc(s->p, s->cap * sizeof(*s->p));
		if (!s->p) {
			fprintf(stderr, "make_seed: out of memory\n");
			exit(1);
		}
	}
	s->p[s->n++] = (struct page){ pfn, d };
	return 1;
}

static uint8_t *build(const struct pageset *s, unsigned flags, uint32_t zero_pfn,
		      uint32_t zero_npages, size_t *size)
{
	struct fuzz_hdr h = {
		.flags = (uint8_t)flags, .npages = (uint32_t)s->n,
		.zero_pfn = zero_pfn, .zero_npages = zero_npages,
	};
	size_t len = sizeof(h) + s->n * (4 + FUZZ_PAGE);
	uint8_t *out = malloc(len), *toc, *pages;

	if (!out) {
		fprintf(stderr, "make_seed: out of memory\n");
		exit(1);
	}
	memcpy(out, &h, sizeof(h));
	toc = out + sizeof(h);
	pages = toc + 4 * s->n;
	for (size_t i = 0; i < s->n; i++) {
		uint32_t pfn = (uint32_t)s->p[i].pfn;
		memcpy(toc + 4 * i, &pfn, 4);
		memcpy(pages + i * FUZZ_PAGE, s->p[i].data, FUZZ_PAGE);
	}
	*size = len;
	return out;
}

/* Run an image, traced; the pages it asked for into *ret. */
static void run_image(const uint8_t *img, size_t size, struct fuzz_result *res,
		      struct vmw_mem_trace_page **ret, size_t *n)
{
	struct fuzz_image fi;
	int r = fuzz_image_load(img, size, &fi);

	if (r == 0)
		r = vmw_mem_trace_start(fi.mem);
	if (r < 0) {
		fprintf(stderr, "make_seed: loading the image: %s\n", strerror(-r));
		exit(1);
	}
	fuzz_run_mem(fi.mem, fi.flags, res);
	r = vmw_mem_trace_pages(fi.mem, ret, n);
	if (r < 0) {
		fprintf(stderr, "make_seed: tracing: %s\n", strerror(-r));
		exit(1);
	}
	fuzz_image_free(&fi);
}

static bool same(const struct fuzz_result *a, const struct fuzz_result *b)
{
	return a->walk_rc == 0 && b->walk_rc == 0 && a->nprocs == b->nprocs &&
	       a->fingerprint == b->fingerprint;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "make_seed: writing %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	if (rename(tmp, path) < 0) {
		fprintf(stderr, "make_seed: renaming %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: make_seed [--fallback] [--flags N] TARGET OUT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct vmw_mem *target = NULL;
	struct vmw_error err = { 0 };
	struct fuzz_result want, got;
	struct vmw_mem_trace_page *tp = NULL;
	struct pageset set = { 0 };
	bool fallback = false;
	unsigned flags = 0;
	uint32_t zero_pfn = 0, zero_npages = 0;
	size_t ntp = 0, size = 0, probes = 0;
	uint8_t *img = NULL;
	int i, r, iter;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--fallback"))
			fallback = true;
		else if (!strcmp(argv[i], "--flags") && i + 1 < argc)
			flags = (unsigned)strtoul(argv[++i], NULL, 0) & ~FUZZ_F_FALLBACK;
		else
			usage();
	}
	if (argc - i != 2)
		usage();

	r = vmw_mem_open(argv[i], NULL, &target, &err);
	if (r < 0) {
		fprintf(stderr, "make_seed: %s\n", vmw_error_msg(&err, r));
		return 1;
	}

	/* 1. The run on the target, traced. */
	if ((r = vmw_mem_trace_start(target)) < 0)
		goto oom;
	fuzz_run_mem(target, 0, &want);
	fprintf(stderr, "make_seed: on %s: ", vmw_mem_describe(target));
	fuzz_result_print(stderr, &want);
	if (want.walk_rc != 0 || want.nprocs == 0) {
		fprintf(stderr, "make_seed: the walk on the target failed: no seed\n");
		return 1;
	}
	if ((r = vmw_mem_trace_pages(target, &tp, &ntp)) < 0)
		goto oom;
	vmw_mem_trace_stop(target);
	for (size_t k = 0; k < ntp; k++) {
		if (tp[k].lo == 0 && tp[k].hi <= 16) {
			probes++;
			continue;
		}
		add(&set, target, tp[k].pfn);
	}
	free(tp);
	qsort(set.p, set.n, sizeof(*set.p), page_cmp);
	fprintf(stderr, "make_seed: %zu pages read, %zu only probed by the scan\n", set.n, probes);

	/* 2. Until the image has every page its run asks for. */
	for (iter = 1; iter <= 200; iter++) {
		size_t added = 0;

		img = build(&set, flags, 0, 0, &size);
		run_image(img, size, &got, &tp, &ntp);
		free(img);
		for (size_t k = 0; k < ntp; k++)
			if (!has(&set, tp[k].pfn))
				added += (size_t)add(&set, target, tp[k].pfn);
		free(tp);
		qsort(set.p, set.n, sizeof(*set.p), page_cmp);
		if (!added)
			break;
		fprintf(stderr, "make_seed: pass %d: %zu pages added\n", iter, added);
	}

	/* 3. Same processes, from the image alone. */
	fprintf(stderr, "make_seed: image of %zu pages (%zu KiB): ", set.n,
		set.n * (4 + FUZZ_PAGE) / 1024);
	fuzz_result_print(stderr, &got);
	if (!same(&want, &got)) {
		fprintf(stderr, "make_seed: the image does not reproduce the walk: no seed\n");
		return 1;
	}

	if (fallback) {
		/* _text is 2 MiB aligned, _stext == _text on x86-64 */
		uint64_t text = (want.stext & ~((2ull << 20) - 1)) - 0xffffffff80000000ull +
				want.phys_base;
		static const uint32_t spans[] = { (32u << 20) / FUZZ_PAGE, FUZZ_ZERO_MAX };

		flags |= FUZZ_F_FALLBACK;
		zero_pfn = (uint32_t)(text / FUZZ_PAGE);
		for (size_t k = 0; k < ARRAY_SIZE(spans); k++) {
			zero_npages = spans[k];
			img = build(&set, flags, zero_pfn, zero_npages, &size);
			fuzz_run(img, size, &got);
			free(img);
			fprintf(stderr, "make_seed: with --fallback and %u MiB zero-filled: ",
				zero_npages / 256);
			fuzz_result_print(stderr, &got);
			if (same(&want, &got))
				break;
		}
		if (!same(&want, &got)) {
			fprintf(stderr, "make_seed: the fallback image does not reproduce the walk: "
				"no seed\n");
			return 1;
		}
	}

	img = build(&set, flags, zero_pfn, zero_npages, &size);
	if (write_file(argv[i + 1], img, size) < 0)
		return 1;
	fprintf(stderr, "make_seed: wrote %s (%zu bytes, %zu pages, flags %#x, %d passes)\n",
		argv[i + 1], size, set.n, flags, iter);
	free(img);
	for (size_t k = 0; k < set.n; k++)
		free(set.p[k].data);
	free(set.p);
	vmw_mem_close(target);
	return 0;
oom:
	fprintf(stderr, "make_seed: %s\n", strerror(-r));
	return 1;
}
