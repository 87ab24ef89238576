/* SPDX-License-Identifier: MIT */
/*
 * sampler_proc.c - the per-VM sampler process (privsep.h): opens its guest
 * through the monitor, walks it when the front asks, answers with a frame.
 * Runs without capabilities, not dumpable, under a seccomp filter.
 */
#include "agent/privsep.h"
#include "mem/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the sampler */

static int opener(void *opaque, const char *path, int flags)
{
	struct ps_req q = { .type = PS_OPEN_GUEST, .flags = (uint32_t)(flags & ~O_CLOEXEC) };
	struct ps_rep a = { 0 };
	int fd = -1, r;

	(void)opaque;
	if (strlen(path) >= sizeof(q.path))
		return -ENAMETOOLONG;
	strcpy(q.path, path);
	if ((r = ps_send(PS_FD_OPENER, &q, sizeof(q), -1)) < 0 || (r = ps_recv(PS_FD_OPENER, &a, sizeof(a), &fd)) < 0)
		return r;
	if (a.r < 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		return a.r < 0 ? a.r : -EIO;
	}
	return fd;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void describe(struct ps_frame_rep *a, struct vmw_session *sess, int r, const struct vmw_error *err)
{
	struct vmw_kernel *k = vmw_session_kernel(sess);

	a->r = r;
	a->kind = r < 0 ? (uint32_t)vmw_error_kind_of(err, r) : 0;
	if (r < 0)
		snprintf(a->msg, sizeof(a->msg), "%s", vmw_error_msg(err, r));
	a->state = (uint32_t)vmw_session_state(sess);
	a->retry_at_ns = vmw_session_retry_at(sess);
	a->attaches = vmw_session_attaches(sess);
	if (k) {
		const struct vmw_kernel_info *ki = vmw_kernel_info(k);
		snprintf(a->release, sizeof(a->release), "%s", ki->release);
		snprintf(a->build_id, sizeof(a->build_id), "%s", ki->build_id);
		if (ki->cache_warning)
			snprintf(a->cache_warning, sizeof(a->cache_warning), "%s", ki->cache_warning);
	}
}

/*
 * The attach (discovery, kallsyms, BTF) runs deeper than a frame: the stack
 * pages it touched stay resident, ~30 KiB that no frame uses again. Give back
 * the stack below this function's frame and STACK_KEEP more (the stack's
 * mapping from /proc/self/maps: nothing else is touched); the frames fault
 * in again only what they use.
 */
#define STACK_KEEP (8u << 10)

static void release_stack(void)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0), lo = 0, hi = 0, end;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "[stack]") && sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2)
			break;
	fclose(f);
	if (sp < STACK_KEEP || !lo)
		return;
	end = (sp - STACK_KEEP) & ~(page - 1);
	if (lo < end && end < hi)
		madvise((void *)lo, end - lo, MADV_DONTNEED);
}

/*
 * glibc's thresholds, fixed (its sliding ones follow the largest block
 * freed). While attaching, glibc's initial ones: a cold attach's large
 * blocks (parsing the BTF grows arrays over ~100,000 types) are mapped and
 * given back whole. With sliding thresholds the first large free raised
 * them, the next blocks came from the heap, and a sampler that attached
 * cold kept ~70 KiB more heap for life than one that attached warm.
 * Between frames, high ones: a frame's buffers (~0.5 MB for 1,000
 * processes) stay in the heap and are reused; mapped afresh each frame,
 * their page faults cost a 1,000-process frame 30 % more CPU.
 */
#define ATTACH_MMAP_THRESHOLD (128 * 1024)
#define FRAMES_MMAP_THRESHOLD (32 * 1024 * 1024)

static void heap_for_attach(void)
{
	mallopt(M_MMAP_THRESHOLD, ATTACH_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, 2 * ATTACH_MMAP_THRESHOLD);
}

static void heap_for_frames(void)
{
	mallopt(M_MMAP_THRESHOLD, FRAMES_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, 2 * FRAMES_MMAP_THRESHOLD);
}

/*
 * After the first frame of an attach the models have asked every layout and
 * symbol they need: the kernel model gives back the parsed BTF and the full
 * symbol table (the memo keeps the answers, and is saved to the cache for
 * the next sampler of the same build), and malloc returns the freed pages,
 * and the stack the attach's deeper calls touched.
 * What stays is this VM's own: tens of KiB of model, the frame buffers.
 */
static void trim_after_attach(struct vmw_session *sess, uint64_t *trimmed_attach)
{
	struct vmw_kernel *k = vmw_session_kernel(sess);
	uint64_t n = vmw_session_attaches(sess);

	if (!k || n == *trimmed_attach)
		return;
	*trimmed_attach = n;
	vmw_kernel_trim(k);
	malloc_trim(0);
	release_stack();
	heap_for_frames();
}

static int sink(void *opaque, const void *buf, size_t len)
{
	return write_full(*(const int *)opaque, buf, len);
}

#define OUT_SIZE 16384   /* bench/sampler_heap.c mirrors it and the thresholds */

/*
 * One request, one answer. 0, or -EPIPE when the front is gone.
 *
 * The answer is streamed: its header and the frame's bytes go out through
 * one 16 KiB buffer (vmw_frame_stream), so the sampler never holds an
 * encoded frame (~80 KB for 147 processes, ~0.6 MB for 1,000, in a buffer
 * that doubled to 128 KiB and 1 MiB). The buffer is taken per frame: by
 * then the walk has freed its own buffers, whose room it reuses. At 64 KiB
 * it did not fit that room and the heap grew by its pages for good (28 to
 * 56 KiB more of every sampler, for 3 writes a frame fewer at 147
 * processes); taken once at start, 16 KiB stay resident beside the room.
 */
static int serve_one(struct vmw_sampler *s, struct vmw_session *sess, uint64_t *trimmed_attach)
{
	uint8_t *out = NULL;
	struct ps_frame_req q;
	struct ps_frame_rep a = { .magic = PS_FRAME_MAGIC };
	struct vmw_error err = { 0 };
	struct vmw_session_policy p;
	struct vmw_frame *f = NULL;
	int fd = PS_FD_FRAMES, r;

	if ((r = ps_read_full(PS_FD_FRAMES, &q, sizeof(q), 0)) < 0)
		return r;
	if (q.magic != PS_FRAME_MAGIC)
		return -EBADMSG;
	p = (struct vmw_session_policy){ .min_ns = q.min_ns, .max_ns = q.max_ns, .young_ns = q.young_ns,
					 .wait_without_process = true };
	vmw_session_set_policy(sess, &p);
	if (vmw_session_state(sess) != VMW_SESSION_ATTACHED)
		heap_for_attach();   /* this frame attaches (the first, or again) */
	r = vmw_sampler_frame(s, &f, &err);
	if (r == 0 && !(out = malloc(OUT_SIZE))) {
		vmw_frame_free(f);
		f = NULL;
		r = vmw_error_set(&err, -ENOMEM, "out of memory sending a frame");
	}
	describe(&a, sess, r, &err);
	a.frame_len = r == 0 ? vmw_frame_encoded_size(f) : 0;
	_Static_assert(sizeof(a) < OUT_SIZE, "the answer's header fits the stream buffer");
	if (r == 0) {
		memcpy(out, &a, sizeof(a));
		r = vmw_frame_stream(f, out, OUT_SIZE, sizeof(a), sink, &fd);
	} else {
		r = write_full(fd, &a, sizeof(a));
	}
	free(out);
	vmw_frame_free(f);
	if (!r && a.frame_len)
		trim_after_attach(sess, trimmed_attach);
	return r;
}

int ps_sampler_main(int argc, char **argv)
{
	struct vmw_session *sess = NULL;
	struct vmw_sampler *s = NULL;
	struct vmw_session_opts so = { .sz = sizeof(so), .want_linux = true, .want_summary = true };
	struct vmw_sampler_opts opts = { .sz = sizeof(opts) };
	unsigned long flags, level;
	int r;

	if (argc != 6) {
		fprintf(stderr, "vmwatch-agent: %s is started by the agent itself\n", PS_ARG_SAMPLER);
		return 2;
	}
	so.expect.pid = (pid_t)strtol(argv[2], NULL, 10);
	so.expect.start_ticks = strtoull(argv[3], NULL, 10);
	flags = strtoul(argv[4], NULL, 10);
	level = strtoul(argv[5], NULL, 10);
	so.no_cache = flags & PS_SAMPLER_NO_CACHE;
	opts.walk_flags = flags & PS_SAMPLER_CMDLINE ? VMW_WALK_CMDLINE : 0;
	vmw_agent_log_set_level(level >= VMW_LOG_ERR && level <= VMW_LOG_DEBUG ? (enum vmw_log_level)level
									       : VMW_LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_NAME, "vmwatch-sampler", 0, 0, 0);
	ps_set_undumpable();
	vmw_mem_set_opener(opener, NULL);
	if ((r = ps_sampler_seccomp()) < 0 && r != -ENOSYS) {
		vmw_agent_log(VMW_LOG_ERR, "sampler for %s: cannot install its seccomp filter: %s", argv[1],
			      strerror(-r));
		return 1;
	}
	if (vmw_session_new(argv[1], &so, &sess) < 0 || vmw_sampler_new(sess, &opts, &s) < 0) {
		vmw_agent_log(VMW_LOG_ERR, "sampler for %s: out of memory", argv[1]);
		vmw_session_close(sess);
		return 1;
	}
	uint64_t trimmed_attach = 0;
	while ((r = serve_one(s, sess, &trimmed_attach)) == 0)
		;
	vmw_sampler_close(s);
	vmw_session_close(sess);
	return r == -EPIPE ? 0 : 1;
}
