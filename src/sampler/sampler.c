/* SPDX-License-Identifier: MIT */
/* sampler.c - frames over time: rates, events, reboot handling. */
#include "sampler/sampler.h"
#include "virt/virt.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* What a frame remembers of a task for the next one. */
struct prev {
	int32_t id;                /* pid or tid */
	uint64_t start_time_ns;
	uint64_t runtime_ns;
	uint64_t rss_bytes, vsz_bytes;
	char comm[64];
};

/* pid → index in an array of struct prev; open addressing. */
struct idmap {
	uint32_t *slot;            /* index + 1, 0 = empty */
	size_t cap;                /* power of two */
};

struct table {
	struct prev *v;
	size_t n;
	struct idmap map;
};

struct vmw_sampler {
	char *target;                     /* as given: qemu:PID, file:PATH or a libvirt domain */
	char mem_target[64 + 4096];       /* what the memory layer opened */
	char display[320];                /* "vm1 (qemu:1234)" */
	bool is_domain;                   /* re-resolve when its QEMU goes away */
	struct vmw_sampler_opts opts;
	struct vmw_mem *mem;
	struct vmw_kernel *k;
	struct vmw_linux *lx;
	struct vmw_summary_reader *sum;   /* NULL if this kernel lacks what it needs */
	struct vmw_cpu_times prev_total, *prev_cpu;
	unsigned prev_ncpus;
	uint64_t prev_uptime_ns;
	uint8_t vmcoreinfo[256];   /* start of the VMCOREINFO text at attach */
	bool have_prev;
	uint64_t prev_host_ns, prev_guest_ns;
	struct table procs, threads;
	uint64_t seq;
};

static uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

static void table_free(struct table *t)
{
	free(t->v);
	free(t->map.slot);
	memset(t, 0, sizeof(*t));
}

static int table_index(struct table *t)
{
	size_t cap = 16;
	while (cap < t->n * 2)
		cap <<= 1;
	free(t->map.slot);
	t->map.slot = calloc(cap, sizeof(uint32_t));
	if (!t->map.slot)
		return -ENOMEM;
	t->map.cap = cap;
	for (size_t i = 0; i < t->n; i++) {
		size_t h = hash32((uint32_t)t->v[i].id) & (cap - 1);
		while (t->map.slot[h])
			h = (h + 1) & (cap - 1);
		t->map.slot[h] = (uint32_t)i + 1;
	}
	return 0;
}

static const struct prev *table_find(const struct table *t, int32_t id)
{
	if (!t->map.cap)
		return NULL;
	for (size_t h = hash32((uint32_t)id) & (t->map.cap - 1);; h = (h + 1) & (t->map.cap - 1)) {
		uint32_t s = t->map.slot[h];
		if (!s)
			return NULL;
		if (t->v[s - 1].id == id)
			return &t->v[s - 1];
	}
}

uint64_t vmw_sampler_interval(uint64_t host_delta_ns)
{
	return host_delta_ns;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static int attach(struct vmw_sampler *s, struct vmw_error *err)
{
	struct vmw_kernel_opts kopts = { .sz = sizeof(kopts), .no_cache = s->opts.no_cache };
	int r;

	if ((r = vmw_kernel_attach(s->mem, &kopts, &s->k, err)) < 0)
		return r;
	if ((r = vmw_linux_new(s->k, &s->lx, err)) < 0) {
		vmw_kernel_detach(s->k);
		s->k = NULL;
		return r;
	}
	/* The summary is optional: frames still work without it. */
	if (vmw_summary_new(s->k, &s->sum, NULL) < 0)
		s->sum = NULL;
	vmw_mem_read(s->mem, vmw_kernel_info(s->k)->vmcoreinfo_phys, s->vmcoreinfo, sizeof(s->vmcoreinfo));
	s->have_prev = false;
	s->seq = 0;
	table_free(&s->procs);
	table_free(&s->threads);
	return 0;
}

static void detach(struct vmw_sampler *s)
{
	vmw_summary_free(s->sum);
	s->sum = NULL;
	free(s->prev_cpu);
	s->prev_cpu = NULL;
	s->prev_ncpus = 0;
	vmw_linux_free(s->lx);
	s->lx = NULL;
	if (s->k)
		vmw_kernel_detach(s->k);
	s->k = NULL;
}

int vmw_sampler_open(const char *target, const struct vmw_sampler_opts *opts,
		     struct vmw_sampler **ret, struct vmw_error *err)
{
	struct vmw_sampler *s = calloc(1, sizeof(*s));
	struct vmw_mem_opts mopts = { .sz = sizeof(mopts) };
	int r;

	if (!s || !(s->target = strdup(target))) {
		free(s);
		return vmw_error_set(err, -ENOMEM, "out of memory");
	}
	if (opts)
		memcpy(&s->opts, opts, MIN(opts->sz ? opts->sz : sizeof(*opts), sizeof(s->opts)));
	mopts.force_process_read = s->opts.process_read;
	if ((r = vmw_virt_resolve_target(target, s->mem_target, sizeof(s->mem_target), s->display,
					 sizeof(s->display), err)) < 0)
		goto fail;
	s->is_domain = r == 1;
	if ((r = vmw_mem_open(s->mem_target, &mopts, &s->mem, err)) < 0)
		goto fail;
	if ((r = attach(s, err)) < 0) {
		vmw_error_prefix(err, "%s: ", target);
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	vmw_sampler_close(s);
	return r;
}

void vmw_sampler_close(struct vmw_sampler *s)
{
	if (!s)
		return;
	detach(s);
	vmw_mem_close(s->mem);
	table_free(&s->procs);
	table_free(&s->threads);
	free(s->target);
	free(s);
}

struct vmw_kernel *vmw_sampler_kernel(struct vmw_sampler *s) { return s->k; }
const char *vmw_sampler_name(const struct vmw_sampler *s) { return s->display; }

/* A libvirt domain whose QEMU went away may have been restarted under a new
 * PID: resolve it again and start over on the new process. */
static int reopen_domain(struct vmw_sampler *s, struct vmw_error *err)
{
	struct vmw_mem_opts mopts = { .sz = sizeof(mopts), .force_process_read = s->opts.process_read };
	char target[sizeof(s->mem_target)];
	struct vmw_mem *mem;
	int r;

	if ((r = vmw_virt_resolve_target(s->target, target, sizeof(target), s->display,
					 sizeof(s->display), err)) < 0)
		return r;
	if (!strcmp(target, s->mem_target))
		return vmw_error_set(err, -ESRCH, "%s: its QEMU process is gone", s->target);
	if ((r = vmw_mem_open(target, &mopts, &mem, err)) < 0)
		return r;
	detach(s);
	vmw_mem_close(s->mem);
	s->mem = mem;
	memcpy(s->mem_target, target, sizeof(target));
	return attach(s, err);
}
struct vmw_mem *vmw_sampler_mem(struct vmw_sampler *s) { return s->mem; }

/* Has the guest rebooted since attach? Its VMCOREINFO text moved or changed. */
static bool rebooted(struct vmw_sampler *s)
{
	uint8_t now[sizeof(s->vmcoreinfo)];
	if (vmw_mem_read(s->mem, vmw_kernel_info(s->k)->vmcoreinfo_phys, now, sizeof(now)) < 0)
		return true;
	return memcmp(now, s->vmcoreinfo, sizeof(now)) != 0;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int push_event(struct vmw_frame *f, size_t *cap, const struct vmw_event *e)
{
	if (f->nevents == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct vmw_event *ne = realloc(f->events, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		f->events = ne;
		*cap = nc;
	}
	f->events[f->nevents++] = *e;
	return 0;
}

/* Remember this frame's processes and threads for the next one. */
static int remember(struct vmw_sampler *s, const struct vmw_frame *f)
{
	struct table procs = { 0 }, threads = { 0 };
	size_t nthreads = 0;

	procs.v = calloc(f->nprocs ? f->nprocs : 1, sizeof(*procs.v));
	if (!procs.v)
		return -ENOMEM;
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_proc *p = &f->procs[i].proc;
		struct prev *q = &procs.v[procs.n++];
		q->id = p->pid;
		q->start_time_ns = p->start_time_ns;
		q->runtime_ns = p->runtime_ns;
		q->rss_bytes = vmw_proc_rss_bytes(p);
		q->vsz_bytes = p->vsz_bytes;
		memcpy(q->comm, p->comm, sizeof(q->comm));
		nthreads += p->nthreads_listed;
	}
	if (nthreads) {
		threads.v = calloc(nthreads, sizeof(*threads.v));
		if (!threads.v) {
			table_free(&procs);
			return -ENOMEM;
		}
		for (size_t i = 0; i < f->nprocs; i++) {
			const struct vmw_proc *p = &f->procs[i].proc;
			for (uint32_t j = 0; j < p->nthreads_listed; j++) {
				struct prev *q = &threads.v[threads.n++];
				q->id = p->threads[j].tid;
				q->start_time_ns = p->threads[j].start_time_ns;
				q->runtime_ns = p->threads[j].runtime_ns;
			}
		}
	}
	if (table_index(&procs) < 0 || table_index(&threads) < 0) {
		table_free(&procs);
		table_free(&threads);
		return -ENOMEM;
	}
	table_free(&s->procs);
	table_free(&s->threads);
	s->procs = procs;
	s->threads = threads;
	return 0;
}

static void cpu_split(const struct vmw_cpu_times *now, const struct vmw_cpu_times *prev,
		      struct vmw_cpu_percent *ret)
{
	uint64_t d[8] = {
		vmw_sat_sub(now->user, prev->user), vmw_sat_sub(now->nice, prev->nice),
		vmw_sat_sub(now->system, prev->system), vmw_sat_sub(now->idle, prev->idle),
		vmw_sat_sub(now->iowait, prev->iowait), vmw_sat_sub(now->irq, prev->irq),
		vmw_sat_sub(now->softirq, prev->softirq), vmw_sat_sub(now->steal, prev->steal),
	};
	uint64_t all = 0;
	for (int i = 0; i < 8; i++)
		all += d[i];
	*ret = (struct vmw_cpu_percent){
		pct(d[0], all), pct(d[1], all), pct(d[2], all), pct(d[3], all),
		pct(d[4], all), pct(d[5], all), pct(d[6], all), pct(d[7], all),
	};
}

/* Read the guest summary into the frame and compute the CPU split against
 * the previous frame. The frame gets its own copy of the per-CPU array. */
static void read_summary(struct vmw_sampler *s, struct vmw_frame *f)
{
	const struct vmw_cpu_stat *cpus;

	if (!s->sum || vmw_summary_read(s->sum, &f->summary, NULL) < 0)
		return;
	cpus = f->summary.cpu;
	f->summary.cpu = calloc(f->summary.ncpus ? f->summary.ncpus : 1, sizeof(*cpus));
	f->cpu = calloc(f->summary.ncpus ? f->summary.ncpus : 1, sizeof(*f->cpu));
	if (!f->summary.cpu || !f->cpu) {
		free(f->summary.cpu);
		free(f->cpu);
		f->summary.cpu = NULL;
		f->cpu = NULL;
		f->summary.ncpus = 0;
		return;
	}
	memcpy(f->summary.cpu, cpus, f->summary.ncpus * sizeof(*cpus));
	f->summary_ok = true;
	if (s->have_prev && s->prev_ncpus == f->summary.ncpus) {
		cpu_split(&f->summary.total, &s->prev_total, &f->cpu_total);
		for (unsigned i = 0; i < f->summary.ncpus; i++)
			cpu_split(&f->summary.cpu[i].t, &s->prev_cpu[i], &f->cpu[i]);
	}
	free(s->prev_cpu);
	s->prev_cpu = calloc(f->summary.ncpus ? f->summary.ncpus : 1, sizeof(*s->prev_cpu));
	s->prev_ncpus = s->prev_cpu ? f->summary.ncpus : 0;
	for (unsigned i = 0; i < s->prev_ncpus; i++)
		s->prev_cpu[i] = f->summary.cpu[i].t;
	s->prev_total = f->summary.total;
}

int vmw_sampler_frame(struct vmw_sampler *s, struct vmw_frame **ret, struct vmw_error *err)
{
	struct vmw_frame *f = calloc(1, sizeof(*f));
	struct vmw_walk w;
	uint64_t t0 = vmw_now_ns(), host_ns, guest_ns;
	size_t evcap = 0;
	bool was_rebooted = false, guest_known;
	int r;

	if (!f)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if (vmw_mem_alive(s->mem) == -ESRCH) {
		/* A shared mapping stays readable after QEMU exits: ask. */
		if (!s->is_domain || (r = reopen_domain(s, err)) < 0) {
			free(f);
			return vmw_error_set(err, -ESRCH, "%s: the QEMU process exited: the guest is gone",
					     s->target);
		}
		was_rebooted = true;
	}
	if (!s->k && (r = attach(s, err)) < 0) {
		/* An earlier re-attach failed; the guest may still be booting. */
		free(f);
		return vmw_error_prefix(err, "%s: ", s->target);
	}
	if (rebooted(s)) {
	reattach:
		detach(s);
		if ((r = attach(s, err)) < 0) {
			free(f);
			return vmw_error_prefix(err, "%s: guest rebooted and re-attaching failed: ", s->target);
		}
		was_rebooted = true;
	}
	r = vmw_linux_walk(s->lx, s->opts.walk_flags, &w, err);
	if (r == -ESRCH && s->is_domain && !was_rebooted) {
		if ((r = reopen_domain(s, err)) < 0) {
			free(f);
			return r;
		}
		was_rebooted = true;
		r = vmw_linux_walk(s->lx, s->opts.walk_flags, &w, err);
	}
	if (r < 0) {
		free(f);
		return vmw_error_prefix(err, "%s: ", s->target);
	}
	host_ns = vmw_now_ns();
	read_summary(s, f);
	guest_known = f->summary_ok;
	guest_ns = f->summary.uptime_ns;
	if (guest_known && s->have_prev && guest_ns + 1000000000ull < s->prev_uptime_ns && !was_rebooted) {
		/* Uptime went backwards: a reboot with an unchanged VMCOREINFO (no KASLR). */
		vmw_walk_free(&w);
		free(f->summary.cpu);
		free(f->cpu);
		memset(f, 0, sizeof(*f));
		goto reattach;
	}

	f->seq = s->seq++;
	f->wall_time_ns = wall_ns();
	f->first = !s->have_prev;
	f->rebooted = was_rebooted;
	f->skipped = w.skipped;
	f->truncated = w.truncated;
	memcpy(f->truncated_why, w.truncated_why, sizeof(f->truncated_why));
	f->bytes_read = w.bytes_read;
	f->mem_total_bytes = f->summary_ok && f->summary.mem_total_kb ? f->summary.mem_total_kb * 1024
								     : vmw_mem_size(s->mem);

	f->procs = calloc(w.nprocs ? w.nprocs : 1, sizeof(*f->procs));
	if (!f->procs) {
		vmw_walk_free(&w);
		free(f);
		return vmw_error_set(err, -ENOMEM, "out of memory");
	}
	/* The frame takes ownership of the walk's records (and their threads/cmdlines). */
	for (size_t i = 0; i < w.nprocs; i++)
		f->procs[i].proc = w.procs[i];
	f->nprocs = w.nprocs;
	free(w.procs);

	for (size_t i = 0; i < f->nprocs; i++) {
		struct vmw_sample *x = &f->procs[i];
		const struct vmw_proc *p = &x->proc;
		const struct prev *q = s->have_prev ? table_find(&s->procs, p->pid) : NULL;
		uint64_t rss = vmw_proc_rss_bytes(p), delta;

		if (q && q->start_time_ns != p->start_time_ns) {
			/* Same pid, another process: the old one exited. */
			struct vmw_event e = { .type = VMW_EVENT_EXIT, .pid = q->id,
				.start_time_ns = q->start_time_ns, .runtime_ns = q->runtime_ns,
				.rss_bytes = q->rss_bytes, .vsz_bytes = q->vsz_bytes, .pid_reused = true };
			memcpy(e.comm, q->comm, sizeof(e.comm));
			push_event(f, &evcap, &e);
			q = NULL;
		}
		x->is_new = s->have_prev && !q;
		x->mem_percent = pct(rss, f->mem_total_bytes);
		if (q) {
			delta = vmw_sat_sub(p->runtime_ns, q->runtime_ns);
			x->rss_delta_bytes = (int64_t)rss - (int64_t)q->rss_bytes;
		} else {
			/* New since the last frame: all its runtime fell in this interval. */
			delta = x->is_new ? p->runtime_ns : 0;
		}
		x->cpu_percent = (double)delta;   /* ns for now; a rate once the interval is known */
		if (x->is_new) {
			struct vmw_event e = { .type = VMW_EVENT_NEW, .pid = p->pid,
				.start_time_ns = p->start_time_ns, .runtime_ns = p->runtime_ns,
				.rss_bytes = rss, .vsz_bytes = p->vsz_bytes };
			memcpy(e.comm, p->comm, sizeof(e.comm));
			push_event(f, &evcap, &e);
		}
		if (p->nthreads_listed) {
			x->thread_cpu_percent = calloc(p->nthreads_listed, sizeof(double));
			for (uint32_t j = 0; x->thread_cpu_percent && j < p->nthreads_listed; j++) {
				const struct vmw_thread *t = &p->threads[j];
				const struct prev *tq = s->have_prev ? table_find(&s->threads, t->tid) : NULL;
				uint64_t td = 0;
				if (tq && tq->start_time_ns == t->start_time_ns)
					td = vmw_sat_sub(t->runtime_ns, tq->runtime_ns);
				else if (s->have_prev)
					td = t->runtime_ns;
				x->thread_cpu_percent[j] = (double)td;
			}
		}
	}

	/* The interval, then the rates. */
	if (s->have_prev)
		f->interval_ns = vmw_sampler_interval(host_ns - s->prev_host_ns);
	for (size_t i = 0; i < f->nprocs; i++) {
		struct vmw_sample *x = &f->procs[i];
		x->cpu_percent = pct((uint64_t)x->cpu_percent, f->interval_ns);
		f->cpu_percent_total += x->cpu_percent;
		for (uint32_t j = 0; x->thread_cpu_percent && j < x->proc.nthreads_listed; j++)
			x->thread_cpu_percent[j] = pct((uint64_t)x->thread_cpu_percent[j], f->interval_ns);
	}

	/* Exits: in the previous frame, not in this one (pid reuse handled above). */
	if (s->have_prev && !f->truncated) {
		struct table now = { .v = NULL };
		now.v = calloc(f->nprocs ? f->nprocs : 1, sizeof(*now.v));
		if (now.v) {
			for (size_t i = 0; i < f->nprocs; i++)
				now.v[now.n++].id = f->procs[i].proc.pid;
			if (table_index(&now) == 0) {
				for (size_t i = 0; i < s->procs.n; i++) {
					const struct prev *q = &s->procs.v[i];
					if (table_find(&now, q->id))
						continue;
					struct vmw_event e = { .type = VMW_EVENT_EXIT, .pid = q->id,
						.start_time_ns = q->start_time_ns, .runtime_ns = q->runtime_ns,
						.rss_bytes = q->rss_bytes, .vsz_bytes = q->vsz_bytes };
					memcpy(e.comm, q->comm, sizeof(e.comm));
					push_event(f, &evcap, &e);
				}
			}
			table_free(&now);
		}
	}

	if ((r = remember(s, f)) < 0) {
		vmw_frame_free(f);
		return vmw_error_set(err, r, "out of memory");
	}
	s->have_prev = true;
	s->prev_host_ns = host_ns;
	s->prev_guest_ns = guest_known ? guest_ns : 0;
	s->prev_uptime_ns = guest_ns;
	f->frame_ns = vmw_now_ns() - t0;
	*ret = f;
	return 0;
}

void vmw_frame_free(struct vmw_frame *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nprocs; i++) {
		free(f->procs[i].thread_cpu_percent);
		vmw_proc_release(&f->procs[i].proc);
	}
	free(f->procs);
	free(f->events);
	free(f->summary.cpu);
	free(f->cpu);
	free(f);
}
