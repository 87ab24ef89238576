/* SPDX-License-Identifier: MIT */
/*
 * fuzz_frame.c - libFuzzer target: the bytes a sampler process sends the
 * agent's front (vmw_frame_decode, src/sampler/wire.c). A taken-over sampler
 * controls every byte. Invariants of a decoded frame: every string
 * terminated within its array, argv NULL-terminated, thread and CPU arrays as
 * long as their counts, events of a known type, rates finite; encoding it
 * again gives bytes that decode to the same encoding (a fixed point).
 * Seeds: frames of the lab's guests (make_frame_seed).
 */
#include "sampler/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_frame: invariant broken: %s\n", #cond); \
		abort(); \
	} \
} while (0)

static void check(const struct vmw_frame *f)
{
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_sample *s = &f->procs[i];
		CHECK(memchr(s->proc.comm, 0, sizeof(s->proc.comm)));
		CHECK(memchr(s->proc.user, 0, sizeof(s->proc.user)));
		for (const char *u = s->proc.user; *u; u++)
			CHECK(*u > 0x20 && *u < 0x7f);   /* printed raw by ps and top */
		if (s->proc.cgroup)
			(void)strlen(s->proc.cgroup);
		CHECK(isfinite(s->cpu_percent) && isfinite(s->mem_percent));
		for (char **a = s->proc.cmdline; a && *a; a++)
			(void)strlen(*a);
		CHECK(!s->proc.nthreads_listed || s->proc.threads);
		for (uint32_t t = 0; t < s->proc.nthreads_listed; t++) {
			CHECK(memchr(s->proc.threads[t].comm, 0, sizeof(s->proc.threads[t].comm)));
			if (s->thread_cpu_percent)
				CHECK(isfinite(s->thread_cpu_percent[t]));
		}
	}
	for (size_t i = 0; i < f->nevents; i++)
		CHECK(f->events[i].type == VMW_EVENT_NEW || f->events[i].type == VMW_EVENT_EXIT);
	CHECK(!f->summary.ncpus || f->summary.cpu);
	for (unsigned c = 0; c < f->summary.ncpus; c++) {
		(void)f->summary.cpu[c].cpu;
		if (f->cpu)
			CHECK(isfinite(f->cpu[c].user));
	}
	CHECK(memchr(f->truncated_why, 0, sizeof(f->truncated_why)));
	CHECK(isfinite(f->cpu_percent_total));
	/* the cgroup block: every path there and absolute, %CPU a number or unknown */
	CHECK(!f->cgroups.n || (f->cgroups.cg && f->cgroup_cpu_percent && f->cgroups_ok));
	CHECK(memchr(f->cgroups.truncated_why, 0, sizeof(f->cgroups.truncated_why)));
	for (size_t i = 0; i < f->cgroups.n; i++) {
		CHECK(f->cgroups.cg[i].path && f->cgroups.cg[i].path[0] == '/');
		CHECK(isnan(f->cgroup_cpu_percent[i]) || (isfinite(f->cgroup_cpu_percent[i]) &&
							   f->cgroup_cpu_percent[i] >= 0));
		CHECK(f->cgroups.cg[i].cpu_ok == 0 || f->cgroups.cg[i].cpu_ok == 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmw_frame *f = NULL, *g = NULL;
	struct vmw_error err = { 0 };
	uint8_t *copy = malloc(size ? size : 1), *a = NULL, *b = NULL;
	size_t alen, blen;

	if (!copy)
		return 0;
	memcpy(copy, data, size);   /* exactly size bytes: reads past them are caught */
	if (vmw_frame_decode(copy, size, &f, &err) == 0) {
		check(f);
		CHECK(vmw_frame_encode(f, &a, &alen) == 0);
		CHECK(vmw_frame_decode(a, alen, &g, &err) == 0);
		CHECK(vmw_frame_encode(g, &b, &blen) == 0);
		CHECK(alen == blen && !memcmp(a, b, alen));
	} else {
		CHECK(err.msg[0]);
	}
	vmw_frame_free(f);
	vmw_frame_free(g);
	free(a);
	free(b);
	free(copy);
	return 0;
}
