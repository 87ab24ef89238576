/* SPDX-License-Identifier: MIT */
/*
 * make_cache_seed.c - a seed for fuzz_cache (fuzz_cache.h) from a real
 * discovery cache: an entry file, its layout memo, a hint line.
 *
 *   make_cache_seed DIR/<build id>-<kerneloffset> DIR/<build id>.layout OUT [NSYMS]
 *
 * A real entry holds 100-200k symbols (5-11 MiB): the seed's entry keeps
 * the symbols discovery looks up and the first NSYMS (default 256) others,
 * with the entry's own VMCOREINFO text, BTF and token-table fields, and is
 * written by cache.c itself (vmw_kcache_save). The memo is copied as is.
 * Copy the cache files somewhere private first: a load refreshes the
 * entry's mtime.
 */
#include "fuzz_cache.h"
#include "fuzz_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const keep[] = {
	"_stext", "_text", "_end", "init_top_pgt", "swapper_pg_dir", "init_task", "vmcoreinfo_data",
	"jiffies_64", "__start_BTF", "__stop_BTF", "nr_cpu_ids", "__per_cpu_offset",
	"page_offset_base", "__per_cpu_start", "__per_cpu_end", "avenrun", "tk_core", "runqueues",
	"kernel_cpustat",
};

static int fail(const char *what, int r)
{
	fprintf(stderr, "make_cache_seed: %s: %s\n", what, strerror(r < 0 ? -r : r));
	return 1;
}

int main(int argc, char **argv)
{
	char dir[4096], build_id[64], tmp[] = "/tmp/vmw-cache-seed-XXXXXX", path[4200];
	struct vmw_kcache c = { 0 };
	struct vmw_vmcoreinfo *vi = NULL;
	uint64_t koff;
	uint32_t nkeep = argc > 4 ? (uint32_t)atoi(argv[4]) : 256, n = 0;
	size_t names_len = 0, memo_len = 0, entry_len = 0;
	const char *base, *why = "";
	int r;

	if (argc < 4) {
		fprintf(stderr, "usage: make_cache_seed ENTRY MEMO OUT [NSYMS]\n");
		return 2;
	}
	base = strrchr(argv[1], '/');
	if (!base || base == argv[1] || (size_t)(base - argv[1]) >= sizeof(dir) ||
	    sscanf(base + 1, "%63[0-9a-f]-%" SCNx64, build_id, &koff) != 2)
		return fail("entry file name is not DIR/<build id>-<kerneloffset>", EINVAL);
	memcpy(dir, argv[1], (size_t)(base - argv[1]));
	dir[base - argv[1]] = '\0';
	if ((r = vmw_kcache_load(dir, build_id, koff, &c)) < 0)
		return fail(argv[1], r);
	if ((r = vmw_vmcoreinfo_parse(c.vmcoreinfo_text, strlen(c.vmcoreinfo_text), &vi, &why)) < 0) {
		fprintf(stderr, "make_cache_seed: VMCOREINFO in the entry: %s\n", why);
		return 1;
	}

	/* the kept symbols, in table order */
	const struct vmw_symtab *st = c.symtab;
	struct vmw_ksym *syms = calloc(st->nsyms, sizeof(*syms));
	char *names = malloc(st->names_len);
	if (!syms || !names)
		return fail("symbols", ENOMEM);
	for (uint32_t i = 0; i < st->nsyms; i++) {
		const char *name = vmw_ksym_name(st, &st->syms[i]);
		bool want = i < nkeep;
		for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]) && !want; k++)
			want = !strcmp(name, keep[k]);
		if (!want)
			continue;
		syms[n] = st->syms[i];
		syms[n].name = (uint32_t)names_len;
		memcpy(names + names_len, name, strlen(name) + 1);
		names_len += strlen(name) + 1;
		n++;
	}
	struct vmw_symtab *small = NULL;
	if ((r = vmw_symtab_new(syms, n, names, names_len, &small)) < 0)
		return fail("symbol table", r);
	struct vmw_kcache s = c;
	s.symtab = small;
	if (!mkdtemp(tmp) || (r = vmw_kcache_save(tmp, vi, &s)) < 0)
		return fail("save", r ? r : errno);
	snprintf(path, sizeof(path), "%s/%s-%" PRIx64, tmp, vi->build_id, vi->kerneloffset);
	uint8_t *entry = fuzz_slurp(path, &entry_len), *memo = fuzz_slurp(argv[2], &memo_len);
	unlink(path);
	rmdir(tmp);
	if (!entry || !memo)
		return fail("read back", errno);

	char hint[200];
	int hint_len = snprintf(hint, sizeof(hint), "0x%" PRIx64 " 0xfffedea6 1796213767936845043 %s\n",
				c.vmcoreinfo_phys, FUZZ_CACHE_TARGET);
	struct fuzz_cache_hdr h = { .entry_len = (uint32_t)entry_len, .memo_len = (uint32_t)memo_len };
	FILE *f = fopen(argv[3], "wb");
	if (!f || fwrite(&h, sizeof(h), 1, f) != 1 || fwrite(entry, 1, entry_len, f) != entry_len ||
	    fwrite(memo, 1, memo_len, f) != memo_len || fwrite(hint, 1, (size_t)hint_len, f) != (size_t)hint_len ||
	    fclose(f))
		return fail(argv[3], errno);
	fprintf(stderr, "make_cache_seed: %s %s: %u of %u symbols, entry %zu bytes, memo %zu bytes\n",
		vi->release, vi->build_id, n, st->nsyms, entry_len, memo_len);
	free(entry);
	free(memo);
	vmw_symtab_free(small);
	vmw_vmcoreinfo_free(vi);
	vmw_kcache_clear(&c);
	return 0;
}
