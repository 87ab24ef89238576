/* SPDX-License-Identifier: MIT */
/*
 * fuzz_vmcoreinfo.c - libFuzzer target: VMCOREINFO text as a guest page
 * holds it (vmw_vmcoreinfo_parse), then every lookup discovery makes on it
 * (vmw_vmcoreinfo_get/_symbol/_number/_offset/_size/_length) and the page
 * classifiers of the scan (vmw_vmcoreinfo_page_is_data/_note). Invariants:
 * a parsed result has the fields the parser promises (release and build id
 * terminated, PAGESIZE 4096, 4 or 5 paging levels), every entry's key and
 * value lie inside the parser's buffer. Seeds: the VMCOREINFO text of the
 * lab's 6.1 and 6.12 guests (from their discovery-cache entries). libFuzzer's
 * own mutations suffice here (with -dict=tests/fuzz/vmcoreinfo.dict).
 */
#include "kernel/kernel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_vmcoreinfo: invariant broken: %s\n", #cond); \
		abort(); \
	} \
} while (0)

static const char *const syms[] = {
	"_stext", "init_top_pgt", "swapper_pg_dir", "kallsyms_names", "kallsyms_num_syms",
	"kallsyms_token_table", "kallsyms_token_index", "kallsyms_offsets",
	"kallsyms_relative_base", "vmcoreinfo_data", "init_task", "", "(",
};
static const char *const nums[] = { "phys_base", "pgtable_l5_enabled", "KERNEL_IMAGE_SIZE", "x" };
static const char *const fields[] = { "page.flags", "list_head.next", "free_area", "" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmw_vmcoreinfo *vi = NULL;
	const char *why = NULL;
	uint64_t v;

	if (size >= 16) {
		vmw_vmcoreinfo_page_is_data(data);
		vmw_vmcoreinfo_page_is_note(data);
	}
	/* a copy of exactly `size` bytes: reads past it are caught */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	int r = vmw_vmcoreinfo_parse(copy, size, &vi, &why);
	free(copy);
	if (r < 0) {
		CHECK(!vi && why);
		return 0;
	}
	CHECK(memchr(vi->release, 0, sizeof(vi->release)) && memchr(vi->build_id, 0, sizeof(vi->build_id)));
	CHECK(vi->page_size == 4096 && (vi->paging_levels == 4 || vi->paging_levels == 5));
	CHECK(strlen(vi->text) == vi->len);
	for (size_t i = 0; i < vi->nentries; i++) {
		const struct vmw_vmcoreinfo_entry *e = &vi->entries[i];
		CHECK(e->key >= vi->buf && e->key <= vi->buf + vi->len);
		CHECK(e->value >= vi->buf && e->value <= vi->buf + vi->len);
		CHECK(vmw_vmcoreinfo_get(vi, e->key) != NULL);
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		vmw_vmcoreinfo_symbol(vi, syms[i], &v);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		vmw_vmcoreinfo_number(vi, nums[i], &v);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		vmw_vmcoreinfo_offset(vi, fields[i], &v);
		vmw_vmcoreinfo_size(vi, fields[i], &v);
		vmw_vmcoreinfo_length(vi, fields[i], &v);
	}
	vmw_vmcoreinfo_get(vi, "OSRELEASE");
	vmw_vmcoreinfo_get(vi, "CRASHTIME");
	vmw_vmcoreinfo_free(vi);
	return 0;
}
