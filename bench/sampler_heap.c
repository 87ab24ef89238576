/* SPDX-License-Identifier: MIT */
/*
 * sampler_heap.c - where an agent sampler's heap goes, frame by frame.
 *
 * Takes frames of TARGET the way the agent's sampler does (src/agent/
 * sampler_proc.c: glibc's initial malloc thresholds while attaching, the
 * post-attach trim, high thresholds after it, the frame streamed through a
 * 16 KiB buffer to a sink) and follows the heap with a malloc wrapper
 * (glibc's __libc_* entry points: Debian's glibc). It prints
 *   - the bytes in use between frames and at the traced frame's peak;
 *   - the heap's size and its resident pages (mincore), one character a page;
 *   - the traced frame's blocks of 1 KiB or more, in order ("A" taken, "F"
 *     freed: size, address, caller), and each block in use after the last
 *     frame with its caller ("L"). Resolve callers with:
 *     addr2line -f -e sampler_heap ADDR
 *
 * Not built by default. Against a configured release build dir:
 *   ninja -C build && cc -std=c17 -O2 -g -D_GNU_SOURCE -no-pie -Isrc -Ibuild \
 *       bench/sampler_heap.c -Wl,--start-group build/libvmwatch.a -ljansson -ldl \
 *       -Wl,--end-group -pthread -o /tmp/sampler_heap
 *   /tmp/sampler_heap qemu:PID [FRAMES [TRACED [INTERVAL_S]]]
 * (defaults 8 frames, the 7th traced, 0.2 s apart). Method and figures:
 * docs/PERFORMANCE.md, "The frame's highest mark".
 */
#include "kernel/kernel.h"
#include "sampler/sampler.h"
#include "session/session.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

/* The sampler's own choices (src/agent/sampler_proc.c, same names there):
 * keep these in step with it. */
#define ATTACH_MMAP_THRESHOLD (128 * 1024)
#define FRAMES_MMAP_THRESHOLD (32 * 1024 * 1024)
#define OUT_SIZE              16384

#define BIG   1024          /* blocks followed one by one in the traced frame */
#define NREC  100000
#define SLOTS (1u << 20)    /* live blocks by address (open addressing) */
#define GONE  ((void *)1)

struct rec { char what; size_t size; void *p, *caller; };
struct slot { void *p, *caller; size_t size; };

static struct rec recs[NREC];
static size_t nrec;
static struct slot *live_tab;    /* mmap'ed: not itself on the heap */
static long live, peak;
static int tracing;

static unsigned slot_of(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;
	x ^= x >> 17;
	x *= 0x9E3779B97F4A7C15ull;
	return (unsigned)(x >> 44) & (SLOTS - 1);
}

static void remember(void *p, size_t size, void *caller)
{
	unsigned i;

	if (!live_tab && (live_tab = mmap(NULL, SLOTS * sizeof(*live_tab), PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		abort();
	for (i = slot_of(p); live_tab[i].p && live_tab[i].p != GONE && live_tab[i].p != p; i = (i + 1) & (SLOTS - 1))
		;
	live_tab[i] = (struct slot){ p, caller, size };
	live += (long)size;
	if (live > peak)
		peak = live;
}

static void forget_block(void *p)
{
	if (!live_tab)
		return;
	for (unsigned i = slot_of(p); live_tab[i].p; i = (i + 1) & (SLOTS - 1))
		if (live_tab[i].p == p) {
			live -= (long)live_tab[i].size;
			live_tab[i].p = GONE;
			return;
		}
}

static void record(char what, void *p, size_t size, void *caller)
{
	if (tracing && size >= BIG && nrec < NREC)
		recs[nrec++] = (struct rec){ what, size, p, caller };
}

void *malloc(size_t n)
{
	void *p = __libc_malloc(n);
	if (p) {
		remember(p, malloc_usable_size(p), __builtin_return_address(0));
		record('A', p, n, __builtin_return_address(0));
	}
	return p;
}

void *calloc(size_t n, size_t size)
{
	void *p = __libc_calloc(n, size);
	if (p) {
		remember(p, malloc_usable_size(p), __builtin_return_address(0));
		record('A', p, n * size, __builtin_return_address(0));
	}
	return p;
}

void *realloc(void *old, size_t n)
{
	void *p = __libc_realloc(old, n);
	if (p) {
		if (old)
			forget_block(old);
		remember(p, malloc_usable_size(p), __builtin_return_address(0));
		record('A', p, n, __builtin_return_address(0));
	}
	return p;
}

void free(void *p)
{
	if (p) {
		record('F', p, malloc_usable_size(p), __builtin_return_address(0));
		forget_block(p);
	}
	__libc_free(p);
}

static int sink(void *opaque, const void *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
	return 0;
}

static void heap_map(void)
{
	unsigned long lo = 0, hi = 0;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned char *vec;
	size_t pages, resident = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			break;
	fclose(f);
	if (!hi)
		return;
	pages = (hi - lo) / 4096;
	if (!(vec = __libc_malloc(pages)) || mincore((void *)lo, hi - lo, vec) < 0)
		return;
	printf("heap %lu KiB: ", (hi - lo) >> 10);
	for (size_t i = 0; i < pages; i++) {
		putchar(vec[i] & 1 ? '#' : '.');
		resident += vec[i] & 1;
	}
	printf("\nheap resident %zu KiB\n", resident * 4);
	__libc_free(vec);
}

int main(int argc, char **argv)
{
	struct vmw_session_opts so = { .sz = sizeof(so), .want_linux = true, .want_summary = true };
	struct vmw_sampler_opts opts = { .sz = sizeof(opts), .walk_flags = VMW_WALK_CMDLINE };
	struct vmw_session *sess = NULL;
	struct vmw_sampler *s = NULL;
	int frames = argc > 2 ? atoi(argv[2]) : 8, traced = argc > 3 ? atoi(argv[3]) : 6;
	double interval = argc > 4 ? atof(argv[4]) : 0.2;
	long base = 0, frame_peak = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s TARGET [FRAMES [TRACED [INTERVAL_S]]]\n", argv[0]);
		return 2;
	}
	if (vmw_session_new(argv[1], &so, &sess) < 0 || vmw_sampler_new(sess, &opts, &s) < 0) {
		fprintf(stderr, "%s: cannot open\n", argv[1]);
		return 1;
	}
	for (int i = 0; i < frames; i++) {
		struct vmw_error err = { 0 };
		struct vmw_frame *f = NULL;
		struct timespec ts = { (time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9) };
		uint8_t *out;
		int r;

		if (vmw_session_state(sess) != VMW_SESSION_ATTACHED) {
			mallopt(M_MMAP_THRESHOLD, ATTACH_MMAP_THRESHOLD);
			mallopt(M_TRIM_THRESHOLD, 2 * ATTACH_MMAP_THRESHOLD);
		}
		if (i == traced) {
			tracing = 1;
			base = peak = live;
		}
		if ((r = vmw_sampler_frame(s, &f, &err)) < 0) {
			fprintf(stderr, "frame %d: %s\n", i, vmw_error_msg(&err, r));
			return 1;
		}
		if ((out = malloc(OUT_SIZE))) {   /* after a header, as the answer's */
			vmw_frame_stream(f, out, OUT_SIZE, 64, sink, NULL);
			free(out);
		}
		vmw_frame_free(f);
		if (i == traced) {
			tracing = 0;
			frame_peak = peak;
		}
		if (i == 0) {
			vmw_kernel_trim(vmw_session_kernel(sess));
			malloc_trim(0);
			mallopt(M_MMAP_THRESHOLD, FRAMES_MMAP_THRESHOLD);
			mallopt(M_TRIM_THRESHOLD, 2 * FRAMES_MMAP_THRESHOLD);
		}
		nanosleep(&ts, NULL);
	}
	printf("in use between frames %ld B; traced frame (%d) peak %ld B (+%ld)\n", live, traced, frame_peak,
	       frame_peak - base);
	heap_map();
	for (size_t i = 0; i < nrec; i++)
		printf("%c %zu %p %p\n", recs[i].what, recs[i].size, recs[i].p, recs[i].caller);
	for (unsigned i = 0; i < SLOTS; i++)
		if (live_tab && live_tab[i].p && live_tab[i].p != GONE)
			printf("L %zu %p %p\n", live_tab[i].size, live_tab[i].p, live_tab[i].caller);
	vmw_sampler_close(s);
	vmw_session_close(sess);
	return 0;
}
