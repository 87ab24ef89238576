/* SPDX-License-Identifier: MIT */
/* sampler.c - frames over time: rates and events between frames. The guest
 * itself (opening, liveness, reboots, re-attach) is the session's. */
#include "sampler/sampler.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct vmw_sampler {
	struct vmw_session *sess;         /* borrowed */
	struct vmw_sampler_opts opts;
	struct vmw_cpu_times prev_total, *prev_cpu;
	unsigned prev_ncpus;
	uint64_t prev_uptime_ns;
	bool have_prev;
	uint64_t prev_host_ns;
	struct vmw_task_prev *procs, *threads;   /* the previous frame's tasks */
	size_t nprocs, nthreads;
	size_t procs_cap, threads_cap;           /* their room: reused, frame after frame */
	uint64_t seq;
	/* cgroups: the reader (of the kernel attached now) and the last frame's tree */
	struct vmw_cgroup_reader *cg;
	bool cg_failed;                   /* this kernel lacks the layouts: not retried */
	struct vmw_cgroups prev_cg;
	uint64_t prev_cg_ns;
};

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* Rates restart: after (re)attach there is no previous frame to compare with. */
static void forget(struct vmw_sampler *s)
{
	free(s->prev_cpu);
	free(s->procs);
	free(s->threads);
	s->prev_cpu = NULL;
	s->procs = s->threads = NULL;
	s->prev_ncpus = 0;
	s->nprocs = s->nthreads = 0;
	s->procs_cap = s->threads_cap = 0;
	s->have_prev = false;
	s->seq = 0;
	/* a re-attach may be another kernel */
	vmw_cgroups_reader_free(s->cg);
	s->cg = NULL;
	s->cg_failed = false;
	vmw_cgroups_free(&s->prev_cg);
}

/* The cgroup tree into the frame, with process counts from walk w and %CPU
 * against the previous frame's tree. Lost (cgroups_ok false) on failure. */
static void read_cgroups(struct vmw_sampler *s, struct vmw_frame *f, const struct vmw_walk *w)
{
	uint64_t now;

	if (!s->cg && !s->cg_failed && vmw_cgroups_new(vmw_session_kernel(s->sess), &s->cg, NULL) < 0)
		s->cg_failed = true;
	if (!s->cg || vmw_cgroups_read(s->cg, &f->cgroups, NULL) < 0)
		return;
	now = vmw_now_ns();
	vmw_cgroups_count_procs(&f->cgroups, w);
	if (!vmw_walk_complete(w))
		for (size_t i = 0; i < f->cgroups.n; i++)
			f->cgroups.cg[i].nr_procs_ok = false;
	if (!(f->cgroup_cpu_percent = calloc(f->cgroups.n ? f->cgroups.n : 1, sizeof(double))) ||
	    vmw_cgroups_cpu_percent(&s->prev_cg, &f->cgroups, s->prev_cg.n ? now - s->prev_cg_ns : 0,
				    f->cgroup_cpu_percent) < 0) {
		free(f->cgroup_cpu_percent);
		f->cgroup_cpu_percent = NULL;
		vmw_cgroups_free(&f->cgroups);
		return;
	}
	f->cgroups_ok = true;
	vmw_cgroups_free(&s->prev_cg);
	if (vmw_cgroups_copy(&f->cgroups, &s->prev_cg) == 0)
		s->prev_cg_ns = now;
}

int vmw_sampler_new(struct vmw_session *session, const struct vmw_sampler_opts *opts,
		    struct vmw_sampler **ret)
{
	struct vmw_sampler *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->sess = session;
	if (opts)
		memcpy(&s->opts, opts, MIN(opts->sz ? opts->sz : sizeof(*opts), sizeof(s->opts)));
	*ret = s;
	return 0;
}

void vmw_sampler_close(struct vmw_sampler *s)
{
	if (!s)
		return;
	forget(s);
	free(s);
}

struct vmw_session *vmw_sampler_session(struct vmw_sampler *s) { return s->sess; }
struct vmw_kernel *vmw_sampler_kernel(struct vmw_sampler *s) { return vmw_session_kernel(s->sess); }
struct vmw_mem *vmw_sampler_mem(struct vmw_sampler *s) { return vmw_session_mem(s->sess); }

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

/* ---- comparing with the previous frame (pure) ---------------------------- */

static int push_task_event(struct vmw_frame *f, size_t *cap, enum vmw_event_type type,
			   const struct vmw_task_prev *q, bool pid_reused)
{
	struct vmw_event e = { .type = type, .pid = q->id, .start_time_ns = q->start_time_ns,
		.runtime_ns = q->runtime_ns, .rss_bytes = q->rss_bytes, .vsz_bytes = q->vsz_bytes,
		.pid_reused = pid_reused };
	memcpy(e.comm, q->comm, sizeof(e.comm));
	return push_event(f, cap, &e);
}

static int index_tasks(struct vmw_pidmap *m, const struct vmw_task_prev *v, size_t n)
{
	int r = vmw_pidmap_reset(m, n);
	for (size_t i = 0; r == 0 && i < n; i++)
		vmw_pidmap_put(m, v[i].id, i);
	return r;
}

/* The process's record in the previous frame, or NULL. */
static const struct vmw_task_prev *prev_task(const struct vmw_pidmap *m, const struct vmw_task_prev *v,
					     int32_t id)
{
	ptrdiff_t i = vmw_pidmap_get(m, id);
	return i < 0 ? NULL : &v[i];
}

/* CPU% of each listed thread; a thread new since the previous frame (or
 * with a reused tid) ran all its runtime in the interval. */
static int thread_rates(const struct vmw_prev_frame *prev, const struct vmw_pidmap *tmap,
			struct vmw_sample *x, uint64_t interval_ns)
{
	const struct vmw_proc *p = &x->proc;

	if (!p->nthreads_listed)
		return 0;
	if (!(x->thread_cpu_percent = calloc(p->nthreads_listed, sizeof(double))))
		return -ENOMEM;
	for (uint32_t j = 0; j < p->nthreads_listed; j++) {
		const struct vmw_thread *t = &p->threads[j];
		const struct vmw_task_prev *tq = prev->valid ? prev_task(tmap, prev->threads, t->tid) : NULL;
		uint64_t ran = 0;

		if (tq && tq->start_time_ns == t->start_time_ns)
			ran = vmw_sat_sub(t->runtime_ns, tq->runtime_ns);
		else if (prev->valid)
			ran = t->runtime_ns;
		x->thread_cpu_percent[j] = pct(ran, interval_ns);
	}
	return 0;
}

void vmw_proc_counters(const struct vmw_proc *p, uint64_t ret[VMW_PROC_NCOUNTERS])
{
	const uint64_t v[VMW_PROC_NCOUNTERS] = {
		p->io_rchar, p->io_wchar, p->io_syscr, p->io_syscw, p->io_read_bytes, p->io_write_bytes,
		p->min_flt, p->maj_flt, p->nvcsw, p->nivcsw,
	};
	memcpy(ret, v, sizeof(v));
}

/* Per-second rates of p's counters: their change since q (NULL: all of
 * them counted within the interval when the process is new, else none). */
static void counter_rates(const struct vmw_proc *p, const struct vmw_task_prev *q, bool is_new,
			  uint64_t interval_ns, struct vmw_proc_rates *ret)
{
	double *out[VMW_PROC_NCOUNTERS] = {
		&ret->rchar, &ret->wchar, &ret->syscr, &ret->syscw, &ret->read_bytes, &ret->write_bytes,
		&ret->min_flt, &ret->maj_flt, &ret->nvcsw, &ret->nivcsw,
	};
	uint64_t now[VMW_PROC_NCOUNTERS];

	*ret = (struct vmw_proc_rates){ 0 };
	if (!interval_ns || (!q && !is_new))
		return;
	vmw_proc_counters(p, now);
	for (size_t i = 0; i < VMW_PROC_NCOUNTERS; i++)
		*out[i] = (double)(q ? vmw_sat_sub(now[i], q->counters[i]) : now[i]) * 1e9 / (double)interval_ns;
}

/* One process against its previous record: rates, NEW and pid-reuse events. */
static int compare_proc(const struct vmw_prev_frame *prev, const struct vmw_pidmap *pmap,
			struct vmw_frame *f, struct vmw_sample *x, size_t *evcap)
{
	const struct vmw_proc *p = &x->proc;
	const struct vmw_task_prev *q = prev->valid ? prev_task(pmap, prev->procs, p->pid) : NULL;
	uint64_t rss = vmw_proc_rss_bytes(p), ran;
	int r;

	if (q && q->start_time_ns != p->start_time_ns) {
		/* Same pid, another process: the old one exited. */
		if ((r = push_task_event(f, evcap, VMW_EVENT_EXIT, q, true)) < 0)
			return r;
		q = NULL;
	}
	x->is_new = prev->valid && !q;
	x->mem_percent = pct(rss, f->mem_total_bytes);
	if (q) {
		ran = vmw_sat_sub(p->runtime_ns, q->runtime_ns);
		x->rss_delta_bytes = (int64_t)rss - (int64_t)q->rss_bytes;
	} else {
		/* New since the last frame: all its runtime fell in this interval. */
		ran = x->is_new ? p->runtime_ns : 0;
	}
	x->cpu_percent = pct(ran, f->interval_ns);
	f->cpu_percent_total += x->cpu_percent;
	counter_rates(p, q, x->is_new, f->interval_ns, &x->rate);
	if (x->is_new) {
		struct vmw_task_prev now = { .id = p->pid, .start_time_ns = p->start_time_ns,
			.runtime_ns = p->runtime_ns, .rss_bytes = rss, .vsz_bytes = p->vsz_bytes };
		memcpy(now.comm, p->comm, sizeof(now.comm));
		if ((r = push_task_event(f, evcap, VMW_EVENT_NEW, &now, false)) < 0)
			return r;
	}
	return 0;
}

/* Exits: in the previous frame, not in this one (pid reuse is handled by
 * compare_proc). Only a complete walk can tell that a process is gone. */
static int push_exits(const struct vmw_prev_frame *prev, struct vmw_frame *f, size_t *evcap)
{
	struct vmw_pidmap now = { 0 };
	int r;

	if (!prev->valid || f->truncated)
		return 0;
	if ((r = vmw_pidmap_reset(&now, f->nprocs)) < 0)
		return r;
	for (size_t i = 0; i < f->nprocs; i++)
		vmw_pidmap_put(&now, f->procs[i].proc.pid, i);
	for (size_t i = 0; r == 0 && i < prev->nprocs; i++)
		if (vmw_pidmap_get(&now, prev->procs[i].id) < 0)
			r = push_task_event(f, evcap, VMW_EVENT_EXIT, &prev->procs[i], false);
	vmw_pidmap_free(&now);
	return r;
}

int vmw_sampler_compare(const struct vmw_prev_frame *prev, struct vmw_frame *f)
{
	struct vmw_pidmap pmap = { 0 }, tmap = { 0 };
	size_t evcap = f->nevents;
	int r = 0;

	if (prev->valid && ((r = index_tasks(&pmap, prev->procs, prev->nprocs)) < 0 ||
			    (r = index_tasks(&tmap, prev->threads, prev->nthreads)) < 0))
		goto out;
	f->cpu_percent_total = 0;
	for (size_t i = 0; r == 0 && i < f->nprocs; i++) {
		if ((r = compare_proc(prev, &pmap, f, &f->procs[i], &evcap)) == 0)
			r = thread_rates(prev, &tmap, &f->procs[i], f->interval_ns);
	}
	if (r == 0)
		r = push_exits(prev, f, &evcap);
out:
	vmw_pidmap_free(&pmap);
	vmw_pidmap_free(&tmap);
	return r;
}

/* Room for n records in *v (capacity *cap), kept from frame to frame: the
 * previous frame's records are only needed until this frame was compared. */
static int prev_room(struct vmw_task_prev **v, size_t *cap, size_t n)
{
	struct vmw_task_prev *nv;

	if (n <= *cap && *v)
		return 0;
	n = MAX(n + n / 8, (size_t)16);
	if (!(nv = realloc(*v, n * sizeof(*nv))))
		return -ENOMEM;
	*v = nv;
	*cap = n;
	return 0;
}

/* Remember this frame's processes and threads for the next one (in the
 * previous frame's room: vmw_sampler_compare is done with it). */
static int remember(struct vmw_sampler *s, const struct vmw_frame *f)
{
	size_t nthreads = 0, n = 0;

	for (size_t i = 0; i < f->nprocs; i++)
		nthreads += f->procs[i].proc.nthreads_listed;
	if (prev_room(&s->procs, &s->procs_cap, f->nprocs) < 0 ||
	    prev_room(&s->threads, &s->threads_cap, nthreads) < 0)
		return -ENOMEM;   /* the previous records stay as they were */
	for (size_t i = 0; i < f->nprocs; i++) {
		const struct vmw_proc *p = &f->procs[i].proc;
		struct vmw_task_prev *q = &s->procs[i];

		*q = (struct vmw_task_prev){ .id = p->pid, .start_time_ns = p->start_time_ns,
			.runtime_ns = p->runtime_ns, .rss_bytes = vmw_proc_rss_bytes(p), .vsz_bytes = p->vsz_bytes };
		memcpy(q->comm, p->comm, sizeof(q->comm));
		vmw_proc_counters(p, q->counters);
		for (uint32_t j = 0; j < p->nthreads_listed; j++)
			s->threads[n++] = (struct vmw_task_prev){ .id = p->threads[j].tid,
				.start_time_ns = p->threads[j].start_time_ns, .runtime_ns = p->threads[j].runtime_ns };
	}
	s->nprocs = f->nprocs;
	s->nthreads = nthreads;
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
	struct vmw_summary_reader *sum = vmw_session_summary(s->sess);
	const struct vmw_cpu_stat *cpus;

	if (!sum || vmw_summary_read(sum, &f->summary, NULL) < 0)
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

/* ---- taking a frame ------------------------------------------------------ */

/* Copy a failure into the caller's err; its code. */
static int failed(struct vmw_error *err, const struct vmw_error *e, int r)
{
	if (err)
		*err = *e;
	return e->code ? e->code : r;
}

/* The session attached and up to date; rates restart after a re-attach. */
static int session_ready(struct vmw_sampler *s, struct vmw_frame *f, struct vmw_error *err)
{
	struct vmw_error e = { 0 };
	bool reattached;

	if (vmw_session_poll(s->sess, &reattached, &e) != VMW_SESSION_ATTACHED)
		return failed(err, &e, -EAGAIN);
	if (!vmw_session_linux(s->sess))
		return vmw_error_setk(err, VMW_ERR_USAGE, -EINVAL, "%s: the sampler needs a session "
				      "opened with want_linux", vmw_session_name(s->sess));
	if (reattached) {
		forget(s);
		/* The first attach of a session is not a re-attach. */
		f->rebooted = vmw_session_attaches(s->sess) > 1;
	}
	return 0;
}

/* Walk the task list; when the session can recover at once (a libvirt domain
 * restarted under a new QEMU) walk the new guest instead. */
static int walk_once(struct vmw_sampler *s, struct vmw_frame *f, struct vmw_walk *w,
		     struct vmw_error *err)
{
	struct vmw_error e = { 0 };
	int r = vmw_linux_walk(vmw_session_linux(s->sess), s->opts.walk_flags, w, &e);

	if (r < 0) {
		vmw_error_prefix(&e, "%s: ", vmw_session_name(s->sess));
		if (vmw_session_fail(s->sess, r, &e) != VMW_SESSION_ATTACHED)
			return failed(err, &e, r);
		forget(s);
		f->rebooted = true;
		e = (struct vmw_error){ 0 };
		if ((r = vmw_linux_walk(vmw_session_linux(s->sess), s->opts.walk_flags, w, &e)) < 0) {
			vmw_error_prefix(&e, "%s: ", vmw_session_name(s->sess));
			vmw_session_fail(s->sess, r, &e);
			return failed(err, &e, r);
		}
	}
	return 0;
}

static void drop_summary(struct vmw_frame *f)
{
	free(f->summary.cpu);
	free(f->cpu);
	f->summary = (struct vmw_summary){ 0 };
	f->cpu = NULL;
	f->cpu_total = (struct vmw_cpu_percent){ 0 };
	f->summary_ok = false;
}

/* Walk and read the summary. The guest's uptime going backwards is a reboot
 * the session cannot see (VMCOREINFO unchanged, no KASLR): re-attach and
 * take the frame from the new boot. */
static int walk_guest(struct vmw_sampler *s, struct vmw_frame *f, struct vmw_walk *w,
		      uint64_t *host_ns, struct vmw_error *err)
{
	struct vmw_error e = { 0 };
	int r;

	if ((r = walk_once(s, f, w, err)) < 0)
		return r;
	*host_ns = vmw_now_ns();
	read_summary(s, f);
	if (!f->summary_ok || !s->have_prev || f->rebooted ||
	    f->summary.uptime_ns + 1000000000ull >= s->prev_uptime_ns)
		return 0;
	vmw_walk_free(w);
	drop_summary(f);
	if (vmw_session_reattach(s->sess, &e) != VMW_SESSION_ATTACHED)
		return failed(err, &e, -EAGAIN);
	forget(s);
	f->rebooted = true;
	if ((r = walk_once(s, f, w, err)) < 0)
		return r;
	*host_ns = vmw_now_ns();
	read_summary(s, f);
	return 0;
}

/* The guest OS as the process model last read it (users.c). */
static void take_os(struct vmw_sampler *s, struct vmw_frame *f)
{
	struct vmw_linux *l = vmw_session_linux(s->sess);
	const struct vmw_os_release *os = l ? vmw_users_os(vmw_linux_users(l)) : NULL;

	f->os_ok = os != NULL;
	if (os)
		f->os = *os;
}

/* The walk's records become the frame's samples in their own memory (no
 * second array, no copy of every record): the array is resized to n samples
 * and each record moved, last first, to where its sample begins, the rest of
 * the sample zeroed. A sample is its record followed by more, so a record
 * not yet moved (lower index) lies below where any sample being written
 * begins. NULL (w untouched) when out of memory. */
struct vmw_sample *vmw_samples_from_walk(struct vmw_walk *w)
{
	const size_t n = w->nprocs, rec = sizeof(struct vmw_proc), rest = sizeof(struct vmw_sample) - rec;
	struct vmw_sample *x;

	_Static_assert(offsetof(struct vmw_sample, proc) == 0, "a sample begins with its record");
	if (!(x = realloc(w->procs, (n ? n : 1) * sizeof(*x))))
		return NULL;
	w->procs = NULL;
	for (size_t i = n; i-- > 0;) {
		memmove(&x[i].proc, (uint8_t *)x + i * rec, rec);
		memset((uint8_t *)&x[i] + rec, 0, rest);
	}
	return x;
}

/* The frame takes the walk's records (and their threads and command lines). */
static int take_walk(struct vmw_sampler *s, struct vmw_frame *f, struct vmw_walk *w)
{
	f->seq = s->seq++;
	f->wall_time_ns = vmw_wall_ns();
	f->first = !s->have_prev;
	f->skipped = w->skipped;
	f->incomplete = w->incomplete;
	f->complete = vmw_walk_complete(w);
	f->truncated = w->truncated;
	memcpy(f->truncated_why, w->truncated_why, sizeof(f->truncated_why));
	f->bytes_read = w->bytes_read;
	take_os(s, f);
	f->mem_total_bytes = f->summary_ok && f->summary.mem_total_kb ? f->summary.mem_total_kb * 1024
								     : vmw_mem_size(vmw_session_mem(s->sess));
	if (!(f->procs = vmw_samples_from_walk(w))) {
		vmw_walk_free(w);
		return -ENOMEM;
	}
	f->nprocs = w->nprocs;
	return 0;
}

int vmw_sampler_frame(struct vmw_sampler *s, struct vmw_frame **ret, struct vmw_error *err)
{
	struct vmw_frame *f = calloc(1, sizeof(*f));
	struct vmw_prev_frame prev;
	struct vmw_walk w;
	uint64_t t0 = vmw_now_ns(), host_ns;
	int r;

	if (!f)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if ((r = session_ready(s, f, err)) < 0 || (r = walk_guest(s, f, &w, &host_ns, err)) < 0) {
		vmw_frame_free(f);
		return r;
	}
	read_cgroups(s, f, &w);
	if ((r = take_walk(s, f, &w)) < 0)
		goto oom;
	/* Rates are over the host's interval. The guest's clock can only be read
	 * as of its last tick or idle transition, so on an idle (NO_HZ) guest it
	 * is stale by an unknown amount, and dividing by it would invent load.
	 * Runtime can never exceed real time, so the host interval never invents
	 * load: a paused guest accrues no runtime and shows 0 %. */
	f->interval_ns = s->have_prev ? host_ns - s->prev_host_ns : 0;
	prev = (struct vmw_prev_frame){ .valid = s->have_prev, .procs = s->procs, .nprocs = s->nprocs,
					.threads = s->threads, .nthreads = s->nthreads };
	if ((r = vmw_sampler_compare(&prev, f)) < 0 || (r = remember(s, f)) < 0)
		goto oom;
	s->have_prev = true;
	s->prev_host_ns = host_ns;
	s->prev_uptime_ns = f->summary.uptime_ns;
	f->frame_ns = vmw_now_ns() - t0;
	*ret = f;
	return 0;
oom:
	vmw_frame_free(f);
	return vmw_error_set(err, -ENOMEM, "out of memory");
}

void vmw_frame_free(struct vmw_frame *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nprocs; i++) {
		free(f->procs[i].thread_cpu_percent);
		if (f->cmdlines_in_procs)
			f->procs[i].proc.cmdline = NULL;   /* freed with f->procs */
		vmw_proc_release(&f->procs[i].proc);
	}
	free(f->procs);
	free(f->events);
	free(f->summary.cpu);
	free(f->cpu);
	vmw_cgroups_free(&f->cgroups);
	free(f->cgroup_cpu_percent);
	free(f);
}
