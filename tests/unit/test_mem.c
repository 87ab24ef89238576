/* SPDX-License-Identifier: MIT */
/*
 * The segment core: bounds checks, reads across segments, holes, batched
 * reads. Remote segments point into this very process, which
 * process_vm_readv may always read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "mem/mem_internal.h"
#include "kernel/kernel_internal.h"

static uint8_t A[0x1000], B[0x1000], C[0x1000];

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 31 + (i >> 8));
}

static int setup(void **state)
{
	fill(A, sizeof(A), 1);
	fill(B, sizeof(B), 2);
	fill(C, sizeof(C), 3);
	return 0;
}

/* [0,0x1000) A  [0x1000,0x2000) B  hole  [0x3000,0x4000) C; remote or local. */
static struct vmw_mem *three_segments(bool remote)
{
	struct vmw_mem *mem;

	assert_int_equal(vmw_mem_new(&mem), 0);
	if (remote) {
		mem->pid = getpid();
		/* added out of order: finish sorts */
		assert_int_equal(vmw_mem_add_seg(mem, 0x3000, sizeof(C), NULL, (uintptr_t)C), 0);
		assert_int_equal(vmw_mem_add_seg(mem, 0, sizeof(A), NULL, (uintptr_t)A), 0);
		assert_int_equal(vmw_mem_add_seg(mem, 0x1000, sizeof(B), NULL, (uintptr_t)B), 0);
	} else {
		assert_int_equal(vmw_mem_add_seg(mem, 0x3000, sizeof(C), C, 0), 0);
		assert_int_equal(vmw_mem_add_seg(mem, 0, sizeof(A), A, 0), 0);
		assert_int_equal(vmw_mem_add_seg(mem, 0x1000, sizeof(B), B, 0), 0);
	}
	assert_int_equal(vmw_mem_finish(mem), 0);
	return mem;
}

static void test_buffer(void **state)
{
	struct vmw_mem *mem;
	uint8_t b[16];

	assert_int_equal(vmw_mem_open_buffer(A, sizeof(A), &mem), 0);
	assert_int_equal(vmw_mem_size(mem), sizeof(A));
	assert_int_equal(vmw_mem_read(mem, 0x10, b, 16), 0);
	assert_memory_equal(b, A + 0x10, 16);
	assert_int_equal(vmw_mem_read(mem, 0xff8, b, 8), 0);
	assert_int_equal(vmw_mem_read(mem, 0xff8, b, 9), -EFAULT);    /* one byte past the end */
	assert_int_equal(vmw_mem_read(mem, 0x1000, b, 1), -EFAULT);
	assert_int_equal(vmw_mem_read(mem, UINT64_MAX - 3, b, 8), -EFAULT);  /* wraps */
	assert_int_equal(vmw_mem_read(mem, 0x5000, b, 0), 0);         /* nothing asked */
	assert_non_null(strstr(vmw_mem_describe(mem), "4096"));
	vmw_mem_close(mem);
}

static void check_reads(bool remote)
{
	struct vmw_mem *mem = three_segments(remote);
	const struct vmw_mem_range *r;
	uint8_t b[0x40], sentinel[0x40];

	assert_int_equal(vmw_mem_ranges(mem, &r), 2);
	assert_int_equal(r[0].start, 0);
	assert_int_equal(r[0].size, 0x2000);  /* A and B merged */
	assert_int_equal(r[1].start, 0x3000);
	assert_int_equal(vmw_mem_size(mem), 0x3000);

	/* across the A|B boundary */
	assert_int_equal(vmw_mem_read(mem, 0xff0, b, 0x20), 0);
	assert_memory_equal(b, A + 0xff0, 0x10);
	assert_memory_equal(b + 0x10, B, 0x10);

	/* into the hole: fails, and copies nothing (no stale or partial bytes) */
	memset(b, 0xee, sizeof(b));
	memset(sentinel, 0xee, sizeof(sentinel));
	assert_int_equal(vmw_mem_read(mem, 0x1fe0, b, 0x40), -EFAULT);
	assert_memory_equal(b, sentinel, sizeof(b));
	assert_int_equal(vmw_mem_read(mem, 0x2ff0, b, 0x20), -EFAULT);
	assert_int_equal(vmw_mem_read(mem, 0x3ff0, b, 0x20), -EFAULT);  /* past the end */
	assert_int_equal(vmw_mem_read(mem, 0x3fe0, b, 0x20), 0);
	assert_memory_equal(b, C + 0xfe0, 0x20);
	/* the lookup cache must not answer for the wrong segment */
	assert_int_equal(vmw_mem_read(mem, 0x10, b, 4), 0);
	assert_memory_equal(b, A + 0x10, 4);
	vmw_mem_close(mem);
}

static void test_local_reads(void **state) { check_reads(false); }
static void test_remote_reads(void **state) { check_reads(true); }

/* Mapped: every segment local (the walk then reads in smaller batches). */
static void test_is_mapped(void **state)
{
	struct vmw_mem *mem = three_segments(false);

	assert_true(vmw_mem_is_mapped(mem));
	vmw_mem_close(mem);
	mem = three_segments(true);
	assert_false(vmw_mem_is_mapped(mem));
	vmw_mem_close(mem);
	assert_int_equal(vmw_mem_new(&mem), 0);     /* a mix is not mapped */
	mem->pid = getpid();
	assert_int_equal(vmw_mem_add_seg(mem, 0, sizeof(A), A, 0), 0);
	assert_int_equal(vmw_mem_add_seg(mem, 0x3000, sizeof(C), NULL, (uintptr_t)C), 0);
	assert_int_equal(vmw_mem_finish(mem), 0);
	assert_false(vmw_mem_is_mapped(mem));
	vmw_mem_close(mem);
	assert_int_equal(vmw_mem_open_buffer(A, sizeof(A), &mem), 0);
	assert_true(vmw_mem_is_mapped(mem));
	vmw_mem_close(mem);
}

static void test_overlap_refused(void **state)
{
	struct vmw_mem *mem;

	assert_int_equal(vmw_mem_new(&mem), 0);
	assert_int_equal(vmw_mem_add_seg(mem, 0x1000, 0x1000, A, 0), 0);
	assert_int_equal(vmw_mem_add_seg(mem, 0x1800, 0x1000, B, 0), 0);
	assert_int_equal(vmw_mem_finish(mem), -EINVAL);
	assert_int_equal(vmw_mem_add_seg(mem, UINT64_MAX - 10, 0x100, A, 0), -EINVAL);
	vmw_mem_close(mem);
}

static void check_readv_errors(bool remote)
{
	struct vmw_mem *mem = three_segments(remote);
	uint8_t b[5][0x20];
	struct vmw_phys_iov iov[] = {
		{ 0x10, b[0], 0x10, 1 },
		{ 0x2800, b[1], 0x10, 1 },    /* hole */
		{ 0xff8, b[2], 0x10, 1 },     /* spans A|B */
		{ 0x3ff8, b[3], 0x10, 1 },    /* runs past the end */
		{ 0x3000, b[4], 0x20, 1 },
	};
	struct vmw_mem_stats st;

	assert_int_equal(vmw_mem_readv(mem, iov, ARRAY_SIZE(iov)), -EFAULT);
	assert_int_equal(iov[0].err, 0);
	assert_memory_equal(b[0], A + 0x10, 0x10);
	assert_int_equal(iov[1].err, -EFAULT);
	assert_int_equal(iov[2].err, 0);
	assert_memory_equal(b[2], A + 0xff8, 8);
	assert_memory_equal(b[2] + 8, B, 8);
	assert_int_equal(iov[3].err, -EFAULT);
	assert_int_equal(iov[4].err, 0);
	assert_memory_equal(b[4], C, 0x20);
	vmw_mem_stats(mem, &st);
	assert_int_equal(st.reads, 1);  /* one readv is one read */
	if (remote)
		/* one batched call for pieces 0 and 4, one for the spanning piece */
		assert_true(st.syscalls <= 3);
	vmw_mem_close(mem);
}

static void test_local_readv_errors(void **state) { check_readv_errors(false); }
static void test_remote_readv_errors(void **state) { check_readv_errors(true); }

/* Many small pieces: ceil(n / IOV_MAX) process_vm_readv calls, all correct. */
static void test_remote_readv_batches(void **state)
{
	enum { N = 2500 };
	struct vmw_mem *mem = three_segments(true);
	struct vmw_phys_iov *iov = calloc(N, sizeof(*iov));
	uint8_t (*b)[8] = calloc(N, 8);
	struct vmw_mem_stats st;

	for (size_t i = 0; i < N; i++) {
		uint64_t a = (i * 97) % 0x2ff8;
		if (a >= 0x1ff8 && a < 0x3000)
			a = 0x3000 + (a & 0xff0);
		iov[i] = (struct vmw_phys_iov){ a, b[i], 8, 1 };
	}
	assert_int_equal(vmw_mem_readv(mem, iov, N), 0);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(iov[i].err, 0);
		for (uint64_t a = iov[i].addr, k = 0; k < 8; k++, a++)  /* may span A|B */
			assert_int_equal(b[i][k], a < 0x1000 ? A[a] : a < 0x2000 ? B[a - 0x1000] : C[a - 0x3000]);
	}
	vmw_mem_stats(mem, &st);
	/* pieces within one segment are batched (a piece and its gap take up to
	 * two local iovecs); the few spanning A|B are read on their own (one call
	 * per segment) */
	size_t spanning = 0;
	for (size_t i = 0; i < N; i++)
		spanning += iov[i].addr > 0xff8 && iov[i].addr < 0x1000;
	assert_true(st.syscalls <= (N - spanning + IOV_MAX / 2 - 1) / (IOV_MAX / 2) + 2 * spanning);
	assert_true(st.ranges <= N && st.ranges >= st.syscalls);
	assert_int_equal(st.bytes_read, N * 8);
	vmw_mem_close(mem);
	free(iov);
	free(b);
}

/* Pieces given in any order are read in address order, and neighbours (gap
 * up to 2 KiB) share one remote range: one syscall, three ranges here. */
static void test_remote_readv_coalesces(void **state)
{
	enum { N = 64 };
	struct vmw_mem *mem = three_segments(true);
	struct vmw_phys_iov iov[N + 3];
	uint8_t b[N + 3][16];
	struct vmw_mem_stats st;

	for (size_t i = 0; i < N; i++)   /* A, every 64 bytes, backwards */
		iov[i] = (struct vmw_phys_iov){ (N - 1 - i) * 64, b[i], 16, 1 };
	iov[N] = (struct vmw_phys_iov){ 0x3000 + 0x10, b[N], 16, 1 };       /* C: another segment */
	iov[N + 1] = (struct vmw_phys_iov){ 0x3000 + 0xf00, b[N + 1], 16, 1 }; /* > 2 KiB further */
	iov[N + 2] = (struct vmw_phys_iov){ 0x3000 + 0x18, b[N + 2], 16, 1 }; /* overlaps C's first */
	assert_int_equal(vmw_mem_readv(mem, iov, N + 3), 0);
	for (size_t i = 0; i < N + 3; i++) {
		uint64_t a = iov[i].addr;
		assert_int_equal(iov[i].err, 0);
		assert_memory_equal(b[i], a < 0x1000 ? A + a : C + (a - 0x3000), 16);
	}
	vmw_mem_stats(mem, &st);
	assert_int_equal(st.syscalls, 1);
	assert_int_equal(st.ranges, 4);   /* A; C at 0x10; C at 0x18 (overlap); C at 0xf00 */
	assert_int_equal(st.bytes_read, (N + 3) * 16);
	vmw_mem_close(mem);
}

/* A remote segment whose QEMU-side memory vanished: that piece fails with
 * -EIO, the pieces after it in the same batch still succeed. */
static void test_remote_readv_unmapped(void **state)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *gone = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmw_mem *mem;
	uint8_t b[3][16];
	struct vmw_phys_iov iov[] = {
		{ 0x10, b[0], 16, 1 },
		{ 0x10000, b[1], 16, 1 },
		{ 0x20, b[2], 16, 1 },
	};

	assert_true(gone != MAP_FAILED);
	munmap(gone, (size_t)pg);
	assert_int_equal(vmw_mem_new(&mem), 0);
	mem->pid = getpid();
	assert_int_equal(vmw_mem_add_seg(mem, 0, sizeof(A), NULL, (uintptr_t)A), 0);
	assert_int_equal(vmw_mem_add_seg(mem, 0x10000, (uint64_t)pg, NULL, (uintptr_t)gone), 0);
	assert_int_equal(vmw_mem_finish(mem), 0);

	assert_int_equal(vmw_mem_readv(mem, iov, 3), -EIO);
	assert_int_equal(iov[0].err, 0);
	assert_memory_equal(b[0], A + 0x10, 16);
	assert_int_equal(iov[1].err, -EIO);
	assert_int_equal(iov[2].err, 0);
	assert_memory_equal(b[2], A + 0x20, 16);
	assert_int_equal(vmw_mem_read(mem, 0x10000, b[1], 16), -EIO);
	vmw_mem_close(mem);
}

/* The QEMU process exited: -ESRCH from reads and readv. */
static void test_remote_process_gone(void **state)
{
	struct vmw_mem *mem = three_segments(true);
	struct vmw_phys_iov iov[2];
	uint8_t b[2][8];
	pid_t child = fork();

	if (child == 0)
		_exit(0);
	assert_true(child > 0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	mem->pid = child;
	assert_int_equal(vmw_mem_read(mem, 0, b[0], 8), -ESRCH);
	iov[0] = (struct vmw_phys_iov){ 0, b[0], 8, 1 };
	iov[1] = (struct vmw_phys_iov){ 0x3000, b[1], 8, 1 };
	assert_int_equal(vmw_mem_readv(mem, iov, 2), -ESRCH);
	assert_int_equal(iov[1].err, -ESRCH);
	vmw_mem_close(mem);
}

static void test_open_targets(void **state)
{
	struct vmw_mem *mem;
	struct vmw_error err = { 0 };
	char self[32];

	assert_int_equal(vmw_mem_open("qemu:abc", NULL, &mem, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "qemu:abc"));
	assert_int_equal(err.kind, VMW_ERR_USAGE);
	assert_int_equal(vmw_mem_open("vm1", NULL, &mem, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown target"));
	/* A PID that does not exist is not found; "gone" is for a QEMU that was there. */
	assert_int_equal(vmw_mem_open("qemu:2147483647", NULL, &mem, &err), -ESRCH);
	assert_non_null(strstr(err.msg, "no process with PID 2147483647"));
	assert_int_equal(err.kind, VMW_ERR_NOT_FOUND);
	assert_int_equal(vmw_mem_open("file:/nonexistent/ram", NULL, &mem, &err), -ENOENT);
	assert_int_equal(err.kind, VMW_ERR_NOT_FOUND);
	assert_int_equal(vmw_mem_open("file:/", NULL, &mem, &err), -EISDIR);
	assert_int_equal(err.kind, VMW_ERR_UNSUPPORTED);
	/* this test program is not QEMU */
	snprintf(self, sizeof(self), "qemu:%d", (int)getpid());
	assert_int_equal(vmw_mem_open(self, NULL, &mem, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "is not a QEMU process"));
	assert_non_null(strstr(err.msg, "test_mem"));
	assert_int_equal(err.kind, VMW_ERR_UNSUPPORTED);
}

static void test_helpers(void **state)
{
	char buf[32];
	enum vmw_layout l;

	assert_string_equal(vmw_fmt_size(512ULL << 20, buf), "512 MiB");
	assert_string_equal(vmw_fmt_size(5ULL << 30, buf), "5 GiB");
	assert_string_equal(vmw_fmt_size(3584ULL << 20, buf), "3.5 GiB");
	assert_string_equal(vmw_fmt_size(100, buf), "100 bytes");
	assert_string_equal(vmw_fmt_size(640 << 10, buf), "640 KiB");
	assert_int_equal(vmw_layout_parse("q35", &l), 0);
	assert_int_equal(l, VMW_LAYOUT_Q35);
	assert_string_equal(vmw_layout_name(VMW_LAYOUT_FLAT), "flat");
	assert_int_equal(vmw_layout_parse("isapc", &l), -EINVAL);
}

/* ---- a process's read-write mappings ------------------------------------- */

/* Every read-write mapping of this process of size (0: any), through the
 * kernel's PROCMAP_QUERY or the text of /proc/self/maps. */
static size_t rw_maps(bool text_only, uint64_t size, struct vmw_map *out, size_t cap, bool *query)
{
	struct vmw_rw_maps it;
	struct vmw_map m;
	size_t n = 0;
	int r;

	assert_int_equal(vmw_rw_maps_open(&it, getpid(), text_only), 0);
	*query = it.query;
	while ((r = vmw_rw_maps_next(&it, size, &m)) > 0)
		if (n < cap)
			out[n++] = m;
	assert_int_equal(r, 0);
	vmw_rw_maps_close(&it);
	return n;
}

/* The mapping of list that starts at p, or NULL. */
static const struct vmw_map *map_at(const struct vmw_map *list, size_t n, const void *p)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].start == (uintptr_t)p)
			return &list[i];
	return NULL;
}

/* Linux 6.11 or later: the kernel must have answered the queries. */
static bool kernel_has_procmap_query(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	assert_int_equal(uname(&u), 0);
	if (sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 11);
}

static void test_rw_maps_query_and_text_agree(void **state)
{
	enum { SHARED_SIZE = 0x13000, PRIVATE_SIZE = 0x17000, RO_SIZE = 0x1b000, GUARD = 4096, CAP = 512 };
	static struct vmw_map q[CAP], t[CAP];
	int fd = memfd_create("vmw-test-rw-maps", MFD_CLOEXEC);
	struct stat st;
	bool used_query, used_text;
	size_t nq, nt;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SHARED_SIZE), 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *shared = mmap(NULL, SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	/* Anonymous memory between two inaccessible pages: the kernel merges
	 * neighbouring anonymous mappings of the same protection into one. */
	uint8_t *guard = mmap(NULL, PRIVATE_SIZE + 2 * GUARD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *priv = guard + GUARD;
	uint8_t *ro = mmap(NULL, RO_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(shared != MAP_FAILED && guard != MAP_FAILED && ro != MAP_FAILED);
	assert_int_equal(mprotect(priv, PRIVATE_SIZE, PROT_READ | PROT_WRITE), 0);

	/* Each mapping, among those of its size (other memory of this process,
	 * ASan's for one, may have the same size): where, which file, shared. */
	for (int mode = 0; mode < 2; mode++) {
		const struct vmw_map *x;
		nq = rw_maps(mode, SHARED_SIZE, q, CAP, &used_query);
		assert_non_null(x = map_at(q, nq, shared));
		assert_int_equal(x->end, (uintptr_t)shared + SHARED_SIZE);
		assert_int_equal(x->offset, 0);
		assert_int_equal(x->inode, st.st_ino);
		assert_int_equal(x->major, major(st.st_dev));
		assert_int_equal(x->minor, minor(st.st_dev));
		assert_true(x->shared);
		assert_string_equal(x->path, "/memfd:vmw-test-rw-maps (deleted)");
		if (!mode)
			assert_true(used_query == kernel_has_procmap_query());
		/* Private anonymous memory: no path, not shared. */
		nq = rw_maps(mode, PRIVATE_SIZE, q, CAP, &used_query);
		assert_non_null(x = map_at(q, nq, priv));
		assert_false(x->shared);
		assert_string_equal(x->path, "");
		/* Read-only memory is not listed. */
		nq = rw_maps(mode, RO_SIZE, q, CAP, &used_query);
		assert_null(map_at(q, nq, ro));
	}
	/* All of them: the kernel's answers are the text's lines. The text is
	 * read (into memory it allocates, which may map more) before the
	 * kernel is asked, and nothing is allocated between the two. */
	struct vmw_rw_maps itq, itt;
	struct vmw_map m;
	int r;
	nq = nt = 0;
	assert_int_equal(vmw_rw_maps_open(&itt, getpid(), true), 0);
	assert_int_equal(vmw_rw_maps_open(&itq, getpid(), false), 0);
	used_query = itq.query;
	used_text = itt.query;
	while ((r = vmw_rw_maps_next(&itq, 0, &m)) > 0 && nq < CAP)
		q[nq++] = m;
	assert_int_equal(r, 0);
	while ((r = vmw_rw_maps_next(&itt, 0, &m)) > 0 && nt < CAP)
		t[nt++] = m;
	assert_int_equal(r, 0);
	vmw_rw_maps_close(&itq);
	vmw_rw_maps_close(&itt);
	assert_false(used_text);
	assert_true(nq >= 3 && nq < CAP);
	assert_int_equal(nq, nt);
	for (size_t i = 0; i < nq; i++) {
		assert_int_equal(q[i].start, t[i].start);
		assert_int_equal(q[i].end, t[i].end);
		assert_int_equal(q[i].offset, t[i].offset);
		assert_int_equal(q[i].inode, t[i].inode);
		assert_int_equal(q[i].major, t[i].major);
		assert_int_equal(q[i].minor, t[i].minor);
		assert_int_equal(q[i].shared, t[i].shared);
		assert_string_equal(q[i].path, t[i].path);
	}
	munmap(shared, SHARED_SIZE);
	munmap(guard, PRIVATE_SIZE + 2 * GUARD);
	munmap(ro, RO_SIZE);
	close(fd);
}

/* A process that is gone: ENOENT when opening, in both ways. */
static void test_rw_maps_gone(void **state)
{
	struct vmw_rw_maps it;
	pid_t pid = fork();
	int st;

	(void)state;
	assert_true(pid >= 0);
	if (!pid)
		_exit(0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(vmw_rw_maps_open(&it, pid, false), -ENOENT);
	assert_int_equal(vmw_rw_maps_open(&it, pid, true), -ENOENT);
}

/* ---- vmw_mem_populated --------------------------------------------------- */

#define PG 4096

static long file_blocks(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return (long)st.st_blocks;
}

/* Pages of fd in page cache, through a mapping of our own (mincore). */
static void cached_pages(int fd, size_t npages, unsigned char *vec)
{
	void *m = mmap(NULL, npages * PG, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mincore(m, npages * PG, vec), 0);
	munmap(m, npages * PG);
}

/* A sparse file of npages pages with data in the pages listed (byte 0xa5 at
 * their start). tmpfs (memfd) or a disk file in $TMPDIR. */
static int sparse_file(bool tmpfs, size_t npages, const size_t *data, size_t ndata, char path[64])
{
	int fd;
	uint8_t page[PG];

	if (tmpfs) {
		fd = memfd_create("vmw-test-populated", MFD_CLOEXEC);
		assert_true(fd >= 0);
		snprintf(path, 64, "/proc/self/fd/%d", fd);
	} else {
		const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(path, 64, "%.40s/vmw-test-XXXXXX", dir);
		fd = mkstemp(path);
		assert_true(fd >= 0);
	}
	assert_int_equal(ftruncate(fd, (off_t)(npages * PG)), 0);
	memset(page, 0xa5, sizeof(page));
	for (size_t i = 0; i < ndata; i++)
		assert_int_equal(pwrite(fd, page, PG, (off_t)(data[i] * PG)), PG);
	return fd;
}

static void check_sparse_file(bool tmpfs)
{
	static const size_t data[] = { 0, 3, 10, 11, 12, 63 };
	enum { N = 64 };
	VMW_MEM_OPTS(opts, .layout = VMW_LAYOUT_FLAT);
	struct vmw_mem *mem;
	struct vmw_error err = { 0 };
	char path[64];
	uint8_t vec[N + 1];
	unsigned char cached[N];
	int fd = sparse_file(tmpfs, N, data, ARRAY_SIZE(data), path);
	long blocks = file_blocks(fd);
	uint8_t b[8];

	assert_int_equal(vmw_mem_open_file(path, &opts, &mem, &err), 0);
	if (!tmpfs)
		unlink(path);
	assert_int_equal(vmw_mem_size(mem), N * PG);

	memset(vec, 0xee, sizeof(vec));
	assert_int_equal(vmw_mem_populated(mem, 0, N * PG, vec), 0);
	for (size_t i = 0, k = 0; i < N; i++) {
		bool want = k < ARRAY_SIZE(data) && data[k] == i;
		assert_int_equal(vec[i], want);
		k += want;
	}
	assert_int_equal(vec[N], 0xee);   /* one byte per page, no more */

	/* Unaligned: [3*PG+100, 4*PG+100) touches pages 3 and 4. */
	assert_int_equal(vmw_mem_populated(mem, 3 * PG + 100, PG, vec), 0);
	assert_int_equal(vec[0], 1);
	assert_int_equal(vec[1], 0);
	/* Past the end of RAM: not RAM, so 0. */
	assert_int_equal(vmw_mem_populated(mem, 62 * PG, 4 * PG, vec), 0);
	assert_memory_equal(vec, ((uint8_t[]){ 0, 1, 0, 0 }), 4);
	/* Asking again for a remembered extent from a window inside it. */
	assert_int_equal(vmw_mem_populated(mem, 11 * PG, 3 * PG, vec), 0);
	assert_memory_equal(vec, ((uint8_t[]){ 1, 1, 0 }), 3);
	/* Wraps. */
	assert_int_equal(vmw_mem_populated(mem, UINT64_MAX - 10, 20, vec), -EINVAL);
	assert_int_equal(vmw_mem_populated(mem, 0, 0, vec), 0);

	/* Nothing was allocated or read in: same blocks, holes not cached. */
	assert_int_equal(file_blocks(fd), blocks);
	cached_pages(fd, N, cached);
	for (size_t i = 0, k = 0; i < N; i++) {
		bool is_data = k < ARRAY_SIZE(data) && data[k] == i;
		if (!is_data)
			assert_int_equal(cached[i] & 1, 0);
		k += is_data;
	}
	if (tmpfs) {
		/* The problem this avoids: reading a hole of a tmpfs file through
		 * our read-only shared mapping allocates the page. */
		assert_int_equal(vmw_mem_read(mem, 20 * PG, b, sizeof(b)), 0);
		assert_true(file_blocks(fd) > blocks);
		assert_int_equal(vmw_mem_populated(mem, 20 * PG, PG, vec), 0);
		assert_int_equal(vec[0], 1);
	}
	vmw_mem_close(mem);
	close(fd);
}

static void test_populated_memfd(void **state) { check_sparse_file(true); }
static void test_populated_disk_file(void **state) { check_sparse_file(false); }

static void test_populated_buffer(void **state)
{
	struct vmw_mem *mem = three_segments(false);   /* hole at [0x2000, 0x3000) */
	uint8_t vec[6];

	assert_int_equal(vmw_mem_populated(mem, 0, 6 * PG, vec), 0);
	assert_memory_equal(vec, ((uint8_t[]){ 1, 1, 0, 1, 0, 0 }), 6);
	vmw_mem_close(mem);
}

/* Remote segments into our own anonymous memory: pagemap. */
static void test_populated_remote(void **state)
{
	enum { N = 16 };
	uint8_t *m = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmw_mem *mem;
	uint8_t vec[N + 2], b[8];

	assert_true(m != MAP_FAILED);
	madvise(m, N * PG, MADV_NOHUGEPAGE);   /* a huge page would populate all of it */
	m[2 * PG] = 1;
	m[5 * PG + 100] = 1;
	m[15 * PG + 4095] = 1;
	assert_int_equal(vmw_mem_new(&mem), 0);
	mem->pid = getpid();
	/* guest [0, 8 pages) -> m, hole of one page, [9, 17) -> m + 8 pages */
	assert_int_equal(vmw_mem_add_seg(mem, 0, 8 * PG, NULL, (uintptr_t)m), 0);
	assert_int_equal(vmw_mem_add_seg(mem, 9 * PG, 8 * PG, NULL, (uintptr_t)m + 8 * PG), 0);
	assert_int_equal(vmw_mem_finish(mem), 0);

	assert_int_equal(vmw_mem_populated(mem, 0, (N + 2) * PG, vec), 0);
	for (size_t i = 0; i < N + 2; i++)
		assert_int_equal(vec[i], i == 2 || i == 5 || i == 16);
	/* Nothing faulted in by asking: page 7 is still not present. */
	assert_int_equal(vmw_mem_populated(mem, 7 * PG, PG, vec), 0);
	assert_int_equal(vec[0], 0);
	/* A read does populate (the zero page): what whole-RAM scans avoid. */
	assert_int_equal(vmw_mem_read(mem, 7 * PG, b, sizeof(b)), 0);
	assert_int_equal(vmw_mem_populated(mem, 7 * PG, PG, vec), 0);
	assert_int_equal(vec[0], 1);

	/* Without pagemap (say, no permission) everything counts as populated. */
	mem->pid = 0x7ffffff0;   /* no such process */
	mem->pagemap_fd = -1;
	assert_int_equal(vmw_mem_populated(mem, 10 * PG, 2 * PG, vec), 0);
	assert_memory_equal(vec, ((uint8_t[]){ 1, 1 }), 2);
	vmw_mem_close(mem);
	munmap(m, N * PG);
}

/* The VMCOREINFO scan over a tmpfs RAM file reads no page it would allocate. */
static void check_scan(bool aligned)
{
	enum { N = 4096 };   /* 16 MiB */
	static const char text[] = "OSRELEASE=6.1.0-test\nPAGESIZE=4096\n";
	static const size_t data[] = { 0, 1000, 3000 };
	VMW_MEM_OPTS(opts, .layout = VMW_LAYOUT_FLAT);
	struct vmw_mem *mem;
	struct vmw_vmcoreinfo_hit *hits = NULL;
	uint64_t where = aligned ? 3000ull * PG : 3000ull * PG + 200;
	char path[64];
	int fd = sparse_file(true, N, data, ARRAY_SIZE(data), path);
	long blocks;
	int n;

	assert_int_equal(pwrite(fd, text, sizeof(text), (off_t)where), (ssize_t)sizeof(text));
	blocks = file_blocks(fd);
	assert_int_equal(vmw_mem_open_file(path, &opts, &mem, NULL), 0);
	n = vmw_vmcoreinfo_scan(mem, &hits, NULL);
	assert_int_equal(n, 1);
	assert_int_equal(hits[0].phys, where);
	assert_int_equal(hits[0].kind, aligned ? VMW_VMCOREINFO_DATA : VMW_VMCOREINFO_LOOSE);
	assert_int_equal(file_blocks(fd), blocks);
	free(hits);
	vmw_mem_close(mem);
	close(fd);
}

static void test_scan_skips_holes(void **state) { check_scan(true); }
static void test_byte_scan_skips_holes(void **state) { check_scan(false); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buffer),
		cmocka_unit_test(test_local_reads),
		cmocka_unit_test(test_remote_reads),
		cmocka_unit_test(test_is_mapped),
		cmocka_unit_test(test_overlap_refused),
		cmocka_unit_test(test_local_readv_errors),
		cmocka_unit_test(test_remote_readv_errors),
		cmocka_unit_test(test_remote_readv_batches),
		cmocka_unit_test(test_remote_readv_coalesces),
		cmocka_unit_test(test_remote_readv_unmapped),
		cmocka_unit_test(test_remote_process_gone),
		cmocka_unit_test(test_open_targets),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_rw_maps_query_and_text_agree),
		cmocka_unit_test(test_rw_maps_gone),
		cmocka_unit_test(test_populated_memfd),
		cmocka_unit_test(test_populated_disk_file),
		cmocka_unit_test(test_populated_buffer),
		cmocka_unit_test(test_populated_remote),
		cmocka_unit_test(test_scan_skips_holes),
		cmocka_unit_test(test_byte_scan_skips_holes),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
