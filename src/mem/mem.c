/* SPDX-License-Identifier: MIT */
/*
 * mem.c - the one bounds-checked accessor for guest physical memory: segment
 * table, read, batched read, and the generic open entry points.
 */
#include "mem/mem_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

static vmw_mem_opener_fn opener;
static void *opener_opaque;

void vmw_mem_set_opener(vmw_mem_opener_fn fn, void *opaque)
{
	opener = fn;
	opener_opaque = opaque;
}

bool vmw_mem_has_opener(void)
{
	return opener != NULL;
}

int vmw_mem_open_privileged(const char *path, int flags)
{
	int fd;

	if (opener)
		return opener(opener_opaque, path, flags | O_CLOEXEC);
	fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int vmw_mem_new(struct vmw_mem **ret)
{
	struct vmw_mem *mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	mem->map_fd = -1;
	mem->pagemap_fd = -1;
	mem->proc_mem_fd = -1;
	*ret = mem;
	return 0;
}

void vmw_mem_opts_copy(struct vmw_mem_opts *dst, const struct vmw_mem_opts *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src) {
		/* Callers built against an older mem.h pass a smaller struct; sz 0
		 * means "the current size" for callers that did not set it. */
		size_t n = src->sz ? MIN(src->sz, sizeof(*dst)) : sizeof(*dst);
		memcpy(dst, src, n);
	}
	dst->sz = sizeof(*dst);
}

void vmw_mem_own_map(struct vmw_mem *mem, void *map, size_t len)
{
	mem->map = map;
	mem->map_len = len;
}

void vmw_mem_own_map_file(struct vmw_mem *mem, int fd, uint64_t off)
{
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	if (nfd < 0)
		return;   /* best effort: every page then counts as populated */
	if (mem->map_fd >= 0)
		close(mem->map_fd);
	mem->map_fd = nfd;
	mem->map_off = off;
	mem->ext_lo = mem->ext_hi = 0;
}

const char *vmw_fmt_size(uint64_t size, char buf[static 32])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	int u = -1;
	uint64_t unit = 1;

	while (u + 1 < (int)ARRAY_SIZE(units) && size / unit >= 1024) {
		unit <<= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, 32, "%llu bytes", (unsigned long long)size);
	else if (size % unit == 0)
		snprintf(buf, 32, "%llu %s", (unsigned long long)(size / unit), units[u]);
	else  /* not a whole number of units: one decimal, rounded */
		snprintf(buf, 32, "%.1f %s", (double)size / (double)unit, units[u]);
	return buf;
}

int vmw_mem_add_seg(struct vmw_mem *mem, uint64_t gpa, uint64_t len,
		    const void *local, uint64_t remote)
{
	struct vmw_mem_seg *segs;

	if (len == 0)
		return 0;
	if (gpa + len < gpa || (!local && remote + len < remote))
		return -EINVAL;
	segs = realloc(mem->segs, (mem->nsegs + 1) * sizeof(*segs));
	if (!segs)
		return -ENOMEM;
	mem->segs = segs;
	segs[mem->nsegs++] = (struct vmw_mem_seg){
		.gpa = gpa, .len = len, .local = local, .remote = remote,
	};
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct vmw_mem_seg *x = a, *y = b;
	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

int vmw_mem_finish(struct vmw_mem *mem)
{
	if (mem->nsegs)   /* qsort(NULL, 0, ...) is undefined */
		qsort(mem->segs, mem->nsegs, sizeof(*mem->segs), seg_cmp);
	free(mem->ranges);
	mem->ranges = calloc(mem->nsegs ? mem->nsegs : 1, sizeof(*mem->ranges));
	if (!mem->ranges)
		return -ENOMEM;
	mem->nranges = 0;
	mem->size = 0;
	mem->last = 0;
	for (size_t i = 0; i < mem->nsegs; i++) {
		const struct vmw_mem_seg *s = &mem->segs[i];
		struct vmw_mem_range *r = mem->nranges ? &mem->ranges[mem->nranges - 1] : NULL;

		if (i && s->gpa < mem->segs[i - 1].gpa + mem->segs[i - 1].len)
			return -EINVAL;
		if (r && r->start + r->size == s->gpa)
			r->size += s->len;
		else
			mem->ranges[mem->nranges++] = (struct vmw_mem_range){ s->gpa, s->len };
		mem->size += s->len;
	}
	return 0;
}

/* Segment containing addr, or NULL. Remembers the last hit: reads cluster. */
static const struct vmw_mem_seg *find_seg(struct vmw_mem *mem, uint64_t addr)
{
	size_t lo = 0, hi = mem->nsegs;
	const struct vmw_mem_seg *s;

	if (mem->last < mem->nsegs) {
		s = &mem->segs[mem->last];
		if (addr - s->gpa < s->len)
			return s;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		s = &mem->segs[mid];
		if (addr < s->gpa)
			hi = mid;
		else if (addr - s->gpa >= s->len)
			lo = mid + 1;
		else {
			mem->last = mid;
			return s;
		}
	}
	return NULL;
}

/*
 * The kernel caps one process_vm_readv at MAX_RW_COUNT (2 GiB - 4 KiB) in
 * total and silently returns a short count beyond it, so larger reads (and
 * batches) go in pieces of at most this much.
 */
#define REMOTE_CHUNK ((size_t)1 << 30)

static int remote_errno(int e)
{
	return e == ESRCH ? -ESRCH : e == EPERM ? -EACCES : -EIO;
}

static int remote_read(struct vmw_mem *mem, void *buf, uint64_t remote, size_t len)
{
	uint8_t *out = buf;

	while (len) {
		size_t want = MIN(len, REMOTE_CHUNK);
		struct iovec l = { out, want }, r = { (void *)(uintptr_t)remote, want };
		ssize_t n;

		mem->stats.syscalls++;
		mem->stats.ranges++;
		if (mem->proc_mem_fd >= 0) {
			if (remote > (uint64_t)INT64_MAX)
				return -EIO;
			n = pread(mem->proc_mem_fd, out, want, (off_t)remote);
		} else {
			n = process_vm_readv(mem->pid, &l, 1, &r, 1, 0);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return remote_errno(errno);
		if (n == 0)
			return -EIO;  /* QEMU no longer maps this address */
		out += n;
		remote += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* vmw_mem_read without the call counter (vmw_mem_readv uses it too). */
static int read_one(struct vmw_mem *mem, uint64_t addr, void *buf, size_t len)
{
	uint8_t *out = buf;

	if (addr + len < addr)
		return -EFAULT;
	/* A read may span adjacent segments; every byte must be inside one.
	 * Check the whole range first so that a read into a hole copies nothing. */
	for (uint64_t a = addr, left = len; left;) {
		const struct vmw_mem_seg *s = find_seg(mem, a);
		uint64_t n;

		if (!s)
			return -EFAULT;
		n = MIN(left, s->len - (a - s->gpa));
		a += n;
		left -= n;
	}
	while (len) {
		const struct vmw_mem_seg *s = find_seg(mem, addr);
		uint64_t off = addr - s->gpa, n = MIN(len, s->len - off);
		int r;

		if (s->local)
			memcpy(out, s->local + off, n);
		else if ((r = remote_read(mem, out, s->remote + off, n)) < 0)
			return r;
		mem->stats.bytes_read += n;
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

/* ---- page tracing --------------------------------------------------------- */

struct vmw_mem_trace {
	struct vmw_mem_trace_page *slot;   /* open addressing; hi == 0: empty */
	size_t mask, n;
	int err;
};

#define TRACE_MAX_READ ((uint64_t)256 << 20)

static struct vmw_mem_trace_page *trace_slot(struct vmw_mem_trace_page *slot, size_t mask,
					     uint64_t pfn)
{
	size_t i = (size_t)((pfn * 0x9e3779b97f4a7c15ull) >> 20) & mask;
	while (slot[i].hi && slot[i].pfn != pfn)
		i = (i + 1) & mask;
	return &slot[i];
}

static void trace_page(struct vmw_mem_trace *t, uint64_t pfn, uint16_t lo, uint16_t hi)
{
	struct vmw_mem_trace_page *e;

	if (2 * (t->n + 1) > t->mask + 1) {
		size_t nmask = 2 * t->mask + 1;
		struct vmw_mem_trace_page *ns = calloc(nmask + 1, sizeof(*ns));
		if (!ns) {
			t->err = -ENOMEM;
			return;
		}
		for (size_t i = 0; i <= t->mask; i++)
			if (t->slot[i].hi)
				*trace_slot(ns, nmask, t->slot[i].pfn) = t->slot[i];
		free(t->slot);
		t->slot = ns;
		t->mask = nmask;
	}
	e = trace_slot(t->slot, t->mask, pfn);
	if (!e->hi) {
		*e = (struct vmw_mem_trace_page){ .pfn = pfn, .lo = lo, .hi = hi };
		t->n++;
	} else {
		e->lo = MIN(e->lo, lo);
		e->hi = MAX(e->hi, hi);
	}
}

static void trace_range(struct vmw_mem_trace *t, uint64_t addr, uint64_t len)
{
	uint64_t end;

	if (!len)
		return;
	len = MIN(len, TRACE_MAX_READ);
	end = addr + len < addr ? UINT64_MAX : addr + len;   /* exclusive; clipped at 2^64-1 */
	for (uint64_t a = addr; a < end;) {
		uint64_t page_end = (a | 4095) + 1;   /* 0 after the last page */
		uint64_t e = page_end && page_end < end ? page_end : end;
		trace_page(t, a >> 12, (uint16_t)(a & 4095), (uint16_t)(e - (a & ~4095ull)));
		a = e;
	}
}

int vmw_mem_trace_start(struct vmw_mem *mem)
{
	struct vmw_mem_trace *t = calloc(1, sizeof(*t));

	if (!t || !(t->slot = calloc(1024, sizeof(*t->slot)))) {
		free(t);
		return -ENOMEM;
	}
	t->mask = 1023;
	vmw_mem_trace_stop(mem);
	mem->trace = t;
	return 0;
}

static int trace_page_cmp(const void *a, const void *b)
{
	const struct vmw_mem_trace_page *x = a, *y = b;
	return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

int vmw_mem_trace_pages(const struct vmw_mem *mem, struct vmw_mem_trace_page **ret, size_t *n)
{
	const struct vmw_mem_trace *t = mem->trace;
	struct vmw_mem_trace_page *out;
	size_t k = 0;

	if (!t)
		return -EINVAL;
	if (t->err)
		return t->err;
	out = malloc((t->n ? t->n : 1) * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i <= t->mask; i++)
		if (t->slot[i].hi)
			out[k++] = t->slot[i];
	qsort(out, k, sizeof(*out), trace_page_cmp);
	*ret = out;
	*n = k;
	return 0;
}

void vmw_mem_trace_stop(struct vmw_mem *mem)
{
	if (mem->trace)
		free(mem->trace->slot);
	free(mem->trace);
	mem->trace = NULL;
}

int vmw_mem_read(struct vmw_mem *mem, uint64_t addr, void *buf, size_t len)
{
	mem->stats.reads++;
	if (mem->trace)
		trace_range(mem->trace, addr, len);
	return read_one(mem, addr, buf, len);
}

/*
 * The kernel pins the remote pages of every remote iovec separately (mmap
 * lock, page walk, pin, unpin), and that — not the syscall — is most of the
 * cost of a small piece. So a piece that starts at most REMOTE_GAP bytes after
 * the previous one ends (the fields of one kernel structure, say) extends
 * the same remote iovec; the bytes in between land in a scratch buffer.
 */
#define REMOTE_GAP 2048

/*
 * /proc/PID/mem is read one remote range per preadv, so its batch holds one
 * range at a time (flushed as soon as a piece does not join it): room for
 * that range's pieces is all it needs. A process_vm_readv batch is one call
 * for up to IOV_MAX pieces. The room is part of a sampler's resident memory
 * for its whole life: ~60 KB for IOV_MAX, ~16 KB for PROC_MEM_PIECES.
 */
#define PROC_MEM_PIECES 256

struct remote_batch {
	size_t cap;                    /* pieces and iovecs it has room for */
	struct iovec *liov, *riov;     /* local and remote iovecs (cap each) */
	struct vmw_phys_iov **piece;   /* the pieces (cap) */
	uint64_t *remote;              /* each piece's remote address */
	size_t *at;                    /* each piece's offset in the copied stream */
	size_t k, nl, nr;              /* pieces, local iovecs, remote iovecs */
	size_t bytes;
	uint64_t end;                  /* where the last remote iovec ends */
	const struct vmw_mem_seg *seg; /* and its segment */
	uint8_t gap[REMOTE_GAP];
};

static struct remote_batch *batch_new(bool proc_mem)
{
	size_t cap = proc_mem ? PROC_MEM_PIECES : IOV_MAX;
	size_t each = 2 * sizeof(struct iovec) + sizeof(struct vmw_phys_iov *) + sizeof(uint64_t) + sizeof(size_t);
	struct remote_batch *b = malloc(sizeof(*b) + cap * each);
	char *p;

	if (!b)
		return NULL;
	*b = (struct remote_batch){ .cap = cap };
	p = (char *)(b + 1);
	b->liov = (struct iovec *)(void *)p;
	b->riov = b->liov + cap;
	b->piece = (struct vmw_phys_iov **)(void *)(b->riov + cap);
	b->remote = (uint64_t *)(void *)(b->piece + cap);
	b->at = (size_t *)(void *)(b->remote + cap);
	return b;
}

/*
 * /proc/PID/mem: one preadv per remote range of the batch (a contiguous
 * stretch of QEMU's memory into the pieces' buffers and the gap filler);
 * pieces of a range that came back short are retried alone.
 */
static void batch_flush_proc_mem(struct vmw_mem *mem, struct remote_batch *b)
{
	size_t li = 0, j = 0, start = 0;

	for (size_t r = 0; r < b->nr; r++) {
		size_t want = b->riov[r].iov_len, sum = 0, cnt = 0;
		uint64_t remote = (uint64_t)(uintptr_t)b->riov[r].iov_base;
		ssize_t got = -1;

		while (li + cnt < b->nl && sum < want)
			sum += b->liov[li + cnt++].iov_len;
		mem->stats.syscalls++;
		mem->stats.ranges++;
		if (sum == want && remote <= (uint64_t)INT64_MAX)
			do
				got = preadv(mem->proc_mem_fd, &b->liov[li], (int)cnt, (off_t)remote);
			while (got < 0 && errno == EINTR);
		for (; j < b->k && b->at[j] < start + want; j++) {
			struct vmw_phys_iov *v = b->piece[j];
			if (got >= 0 && b->at[j] + v->len <= start + (size_t)got)
				v->err = 0;
			else
				v->err = remote_read(mem, v->buf, b->remote[j], v->len);
			if (!v->err)
				mem->stats.bytes_read += v->len;
		}
		li += cnt;
		start += want;
	}
	b->k = b->nl = b->nr = 0;
	b->bytes = 0;
	b->seg = NULL;
}

/*
 * One process_vm_readv for the whole batch. The kernel copies the pieces in
 * order and stops at the first fault, possibly inside a piece; the pieces
 * wholly inside the returned count are done, the rest are retried alone so
 * that each gets its own error and good pieces after a bad one still succeed.
 */
static void batch_flush(struct vmw_mem *mem, struct remote_batch *b)
{
	ssize_t got;
	int e = 0;

	if (!b->k)
		return;
	if (mem->proc_mem_fd >= 0) {
		batch_flush_proc_mem(mem, b);
		return;
	}
	mem->stats.syscalls++;
	mem->stats.ranges += b->nr;
	got = process_vm_readv(mem->pid, b->liov, b->nl, b->riov, b->nr, 0);
	if (got < 0) {
		e = errno;
		got = 0;
	}
	for (size_t j = 0; j < b->k; j++) {
		struct vmw_phys_iov *v = b->piece[j];

		if (b->at[j] + v->len <= (size_t)got)
			v->err = 0;
		else if (e == ESRCH || e == EPERM)
			v->err = remote_errno(e);  /* no point retrying: the process is gone/closed */
		else
			v->err = remote_read(mem, v->buf, b->remote[j], v->len);
		if (!v->err)
			mem->stats.bytes_read += v->len;
	}
	b->k = b->nl = b->nr = 0;
	b->bytes = 0;
	b->seg = NULL;
}

/* Queue piece v (remote address `remote` in segment s) into batch b. */
static void batch_add(struct vmw_mem *mem, struct remote_batch *b, struct vmw_phys_iov *v,
		      const struct vmw_mem_seg *s, uint64_t remote)
{
	bool join = b->nr && s == b->seg && remote >= b->end && remote - b->end <= REMOTE_GAP;
	size_t gap = join ? remote - b->end : 0;

	if (b->k && (b->k == b->cap || b->nl + 2 > b->cap || b->bytes + gap + v->len > REMOTE_CHUNK ||
		     (!join && mem->proc_mem_fd >= 0))) {
		batch_flush(mem, b);
		join = false;
		gap = 0;
	}
	if (join) {
		if (gap)
			b->liov[b->nl++] = (struct iovec){ b->gap, gap };
		b->riov[b->nr - 1].iov_len += gap + v->len;
	} else {
		b->riov[b->nr++] = (struct iovec){ (void *)(uintptr_t)remote, v->len };
	}
	b->bytes += gap;
	b->at[b->k] = b->bytes;
	b->remote[b->k] = remote;
	b->piece[b->k++] = v;
	b->liov[b->nl++] = (struct iovec){ v->buf, v->len };
	b->bytes += v->len;
	b->end = remote + v->len;
	b->seg = s;
}

/*
 * Batched read. Local pieces are copied directly; remote pieces are gathered
 * into as few process_vm_readv calls as IOV_MAX and the kernel's per-call
 * byte limit allow. A piece that spans segments or is a hole goes through
 * read_one (which fails a hole with -EFAULT without touching QEMU).
 */
/*
 * Mapped RAM: a batch's pieces are scattered over guest memory, so almost
 * every one is a cache miss. Copying them one by one waits for each miss in
 * turn; prefetching PREFETCH_AHEAD pieces ahead keeps several in flight.
 */
#define PREFETCH_AHEAD 8
#define PREFETCH_MAX   1024   /* bytes of one piece prefetched */

static void prefetch_piece(struct vmw_mem *mem, const struct vmw_phys_iov *v)
{
	const struct vmw_mem_seg *s = find_seg(mem, v->addr);
	const uint8_t *p;
	size_t len = MIN(v->len, (size_t)PREFETCH_MAX);

	if (!s || !s->local || !v->len || v->len > s->len - (v->addr - s->gpa))
		return;
	p = s->local + (v->addr - s->gpa);
	for (size_t o = 0; o < len; o += 64)
		__builtin_prefetch(p + o);
	__builtin_prefetch(p + len - 1);
}

/* Remote pieces are put in order by their indexes (4 bytes a piece: a
 * batch of a few thousand pieces is part of a sampler's peak memory), by
 * guest address: within a segment the same order as QEMU's, and pieces
 * only join within a segment. */
static int piece_addr_cmp(const void *a, const void *b, void *arg)
{
	const struct vmw_phys_iov *iov = arg;
	uint64_t x = iov[*(const uint32_t *)a].addr, y = iov[*(const uint32_t *)b].addr;
	return x < y ? -1 : x > y;
}

int vmw_mem_readv(struct vmw_mem *mem, struct vmw_phys_iov *iov, size_t n)
{
	struct remote_batch *b = NULL;
	uint32_t *rp = NULL;
	size_t nrp = 0;
	bool order = n > 1 && n <= UINT32_MAX;  /* sort remote pieces (off if that memory is not to be had) */

	mem->stats.reads++;
	if (mem->trace)
		for (size_t i = 0; i < n; i++)
			trace_range(mem->trace, iov[i].addr, iov[i].len);
	/* The batch (batch_new) is the source's, taken at its first remote read:
	 * on the stack it made every reader's stack that deep, mapped RAM too.
	 * Without it (no memory), pieces are read one by one. */
	if (mem->pid && !mem->batch)
		mem->batch = batch_new(mem->proc_mem_fd >= 0);
	if (mem->pid && (b = mem->batch)) {
		b->k = b->nl = b->nr = 0;
		b->bytes = 0;
		b->seg = NULL;
	}
	for (size_t i = 0; i < MIN(n, (size_t)PREFETCH_AHEAD); i++)
		prefetch_piece(mem, &iov[i]);
	for (size_t i = 0; i < n; i++) {
		struct vmw_phys_iov *v = &iov[i];
		const struct vmw_mem_seg *s = NULL;
		uint64_t remote;

		if (i + PREFETCH_AHEAD < n)
			prefetch_piece(mem, &iov[i + PREFETCH_AHEAD]);
		if (!b) {
			/* Mapped RAM: a piece inside one segment is one copy (read_one
			 * would look its segment up twice more). */
			const struct vmw_mem_seg *ls = find_seg(mem, v->addr);
			if (ls && ls->local && v->len <= ls->len - (v->addr - ls->gpa)) {
				memcpy(v->buf, ls->local + (v->addr - ls->gpa), v->len);
				mem->stats.bytes_read += v->len;
				v->err = 0;
				continue;
			}
		}
		if (b && v->len && v->len <= REMOTE_CHUNK && v->addr + v->len > v->addr)
			s = find_seg(mem, v->addr);
		if (!s || s->local || v->len > s->len - (v->addr - s->gpa)) {
			v->err = read_one(mem, v->addr, v->buf, v->len);
			continue;
		}
		remote = s->remote + (v->addr - s->gpa);
		if (order && !rp && !(rp = malloc(n * sizeof(*rp))))
			order = false;
		if (rp)
			rp[nrp++] = (uint32_t)i;
		else
			batch_add(mem, b, v, s, remote);
	}
	/* In address order, neighbours (fields of one structure, objects of one
	 * slab page) join into one remote range. */
	if (nrp > 1)
		qsort_r(rp, nrp, sizeof(*rp), piece_addr_cmp, iov);
	for (size_t i = 0; i < nrp; i++) {
		struct vmw_phys_iov *v = &iov[rp[i]];
		const struct vmw_mem_seg *s = find_seg(mem, v->addr);   /* found above */

		batch_add(mem, b, v, s, s->remote + (v->addr - s->gpa));
	}
	free(rp);
	if (b)
		batch_flush(mem, b);
	for (size_t i = 0; i < n; i++)
		if (iov[i].err)
			return iov[i].err;
	return 0;
}

size_t vmw_mem_ranges(const struct vmw_mem *mem, const struct vmw_mem_range **ret)
{
	*ret = mem->ranges;
	return mem->nranges;
}

uint64_t vmw_mem_size(const struct vmw_mem *mem) { return mem->size; }
const char *vmw_mem_describe(const struct vmw_mem *mem) { return mem->desc; }
pid_t vmw_mem_pid(const struct vmw_mem *mem) { return mem->owner ? mem->owner : mem->pid; }

bool vmw_mem_is_mapped(const struct vmw_mem *mem)
{
	for (size_t i = 0; i < mem->nsegs; i++)
		if (!mem->segs[i].local)
			return false;
	return mem->nsegs > 0;
}

void vmw_mem_stats(const struct vmw_mem *mem, struct vmw_mem_stats *ret) { *ret = mem->stats; }

void vmw_mem_close(struct vmw_mem *mem)
{
	if (!mem)
		return;
	if (mem->map)
		munmap(mem->map, mem->map_len);
	if (mem->map_fd >= 0)
		close(mem->map_fd);
	if (mem->pagemap_fd >= 0)
		close(mem->pagemap_fd);
	if (mem->proc_mem_fd >= 0)
		close(mem->proc_mem_fd);
	free(mem->pagemap_buf);
	free(mem->batch);
	vmw_mem_trace_stop(mem);
	free(mem->segs);
	free(mem->ranges);
	free(mem);
}

int vmw_mem_open_buffer(const void *buf, size_t size, struct vmw_mem **ret)
{
	struct vmw_mem *mem;
	int r = vmw_mem_new(&mem);

	if (r < 0)
		return r;
	if ((r = vmw_mem_add_seg(mem, 0, size, buf, 0)) < 0 || (r = vmw_mem_finish(mem)) < 0) {
		vmw_mem_close(mem);
		return r;
	}
	snprintf(mem->desc, sizeof(mem->desc), "buffer of %zu bytes", size);
	*ret = mem;
	return 0;
}

int vmw_mem_open(const char *target, const struct vmw_mem_opts *opts,
		 struct vmw_mem **ret, struct vmw_error *err)
{
	if (!strncmp(target, "qemu:", 5)) {
		uint64_t pid;
		if (vmw_parse_u64(target + 5, &pid) < 0 || pid == 0 || pid > INT_MAX)
			return vmw_error_set(err, -EINVAL,
				"%s: not a process id (use qemu:PID, e.g. qemu:$(pgrep -f qemu-system))", target);
		return vmw_mem_open_qemu((pid_t)pid, opts, ret, err);
	}
	if (!strncmp(target, "file:", 5)) {
		if (!target[5])
			return vmw_error_set(err, -EINVAL, "%s: no file name (use file:PATH)", target);
		return vmw_mem_open_file(target + 5, opts, ret, err);
	}
	return vmw_error_set(err, -EINVAL,
		"%s: unknown target (use qemu:PID for a running QEMU or file:PATH for a RAM file or dump)",
		target);
}

static const char *const layout_names[] = {
	[VMW_LAYOUT_AUTO] = "auto",
	[VMW_LAYOUT_FLAT] = "flat",
	[VMW_LAYOUT_PC] = "pc",
	[VMW_LAYOUT_Q35] = "q35",
};

const char *vmw_layout_name(enum vmw_layout layout)
{
	return (unsigned)layout < ARRAY_SIZE(layout_names) ? layout_names[layout] : "?";
}

int vmw_layout_parse(const char *name, enum vmw_layout *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(layout_names); i++)
		if (!strcmp(name, layout_names[i])) {
			*ret = (enum vmw_layout)i;
			return 0;
		}
	return -EINVAL;
}
