/* SPDX-License-Identifier: MIT */
/*
 * top_host.c - the host view's model: which VMs the host runs (libvirt
 * domains, QEMU processes in /proc, targets named on the command line), one
 * session + sampler per VM kept across frames, the QEMU process's own CPU
 * time from the host's /proc, and the rows as the view sorts and filters
 * them. No terminal I/O (top_host_tui.c draws, cmd_top.c prints batches).
 */
#include "cli/top_internal.h"
#include "mem/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const struct top_col_info host_cols[HOST_NCOLS] = {
	[HOST_COL_NAME] = { "NAME", -20, "name", false },
	[HOST_COL_STATUS] = { "STATUS", -8, "status", false },
	[HOST_COL_VCPU] = { "VCPU", 4, "vcpus", true },
	[HOST_COL_CPU] = { "%CPU", 5, "cpu", true },
	[HOST_COL_US] = { "us", 5, "us", true },
	[HOST_COL_SY] = { "sy", 5, "sy", true },
	[HOST_COL_WA] = { "wa", 5, "wa", true },
	[HOST_COL_ST] = { "st", 5, "st", true },
	[HOST_COL_HOST] = { "HOST%", 6, "host", true },
	[HOST_COL_MEM] = { "MEM USED/TOTAL", 15, "mem", true },
	[HOST_COL_MEMPCT] = { "%MEM", 5, "mempct", true },
	[HOST_COL_PROCS] = { "PROCS", 5, "procs", true },
	[HOST_COL_LOAD] = { "LOAD1", 6, "load", true },
	[HOST_COL_OS] = { "OS", -12, "os", false },
	[HOST_COL_TOP] = { "TOP PROCESS", -11, "top", true },
};

int host_col_parse(const char *s)
{
	for (int i = 0; i < HOST_NCOLS; i++)
		if (!strcasecmp(s, host_cols[i].name) || !strcasecmp(s, host_cols[i].title))
			return i;
	return -1;
}

/* ---- the VMs ----------------------------------------------------------- */

static const struct vmw_session_policy host_policy = {
	.min_ns = 500000000u,
	.max_ns = 5000000000u,
};

static void vm_free(struct host_vm *vm)
{
	if (!vm)
		return;
	vmw_frame_free(vm->frame);
	vmw_sampler_close(vm->s);
	vmw_session_close(vm->sess);
	free(vm);
}

void host_view_init(struct host_view *hv, const struct host_opts *o)
{
	*hv = (struct host_view){ .o = o };
}

void host_view_free(struct host_view *hv)
{
	for (size_t i = 0; i < hv->n; i++)
		vm_free(hv->vms[i]);
	free(hv->vms);
	if (hv->virt)
		vmw_virt_close(hv->virt);
	*hv = (struct host_view){ 0 };
}

static struct host_vm *find(struct host_view *hv, const char *key)
{
	for (size_t i = 0; i < hv->n; i++)
		if (!strcmp(hv->vms[i]->key, key))
			return hv->vms[i];
	return NULL;
}

/* Does the VM's name or target hold match, or one of its comma-separated
 * alternatives ("web,db")? Any case. */
static bool name_matches(const char *name, const char *target, const char *match)
{
	char alt[256];

	if (!match || !*match)
		return true;
	for (const char *p = match; *p;) {
		size_t n = strcspn(p, ",");
		snprintf(alt, sizeof(alt), "%.*s", (int)MIN(n, sizeof(alt) - 1), p);
		if (alt[0] && (strcasestr(name, alt) || strcasestr(target, alt)))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

/* The VM keyed key, added if new (NULL: out of memory, or filtered out). */
static struct host_vm *want(struct host_view *hv, const char *key, const char *name,
			    const char *target, bool extra, bool *oom)
{
	struct host_vm *vm = find(hv, key), **nv;

	if (vm) {
		vm->seen = true;
		return vm;
	}
	if (!extra && !name_matches(name, target, hv->o->match))
		return NULL;     /* TARGETs named on the command line are always listed */
	if (!(vm = calloc(1, sizeof(*vm))) ||
	    !(nv = reallocarray(hv->vms, hv->n + 1, sizeof(*nv)))) {
		free(vm);
		*oom = true;
		return NULL;
	}
	hv->vms = nv;
	hv->vms[hv->n++] = vm;
	snprintf(vm->key, sizeof(vm->key), "%s", key);
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->target, sizeof(vm->target), "%s", target);
	vm->status = "starting";
	vm->seen = true;
	return vm;
}

static void id_key(const struct vmw_qemu_id *id, char *buf, size_t size)
{
	snprintf(buf, size, "qemu:%d@%llu", (int)id->pid, (unsigned long long)id->start_ticks);
}

/* libvirt, connected lazily and again every 5 s while it cannot be. */
static struct vmw_virt *virt(struct host_view *hv)
{
	struct vmw_error err = { 0 };
	uint64_t now = vmw_now_ns();
	int r;

	if (hv->virt || now < hv->virt_retry_at)
		return hv->virt;
	if ((r = vmw_virt_open(hv->o->uri, &hv->virt, &err)) < 0) {
		snprintf(hv->virt_why, sizeof(hv->virt_why), "%s", vmw_error_msg(&err, r));
		hv->virt_retry_at = now + 5000000000ull;
		hv->virt = NULL;
		return NULL;
	}
	hv->virt_why[0] = '\0';
	return hv->virt;
}

static int discover_domains(struct host_view *hv, bool *oom)
{
	struct vmw_virt *v = virt(hv);
	struct vmw_error err = { 0 };
	_cleanup_free_ struct vmw_domain *doms = NULL;
	size_t n = 0;
	int r;

	if (!v)
		return 0;
	if ((r = vmw_virt_list(v, &doms, &n, &err)) < 0) {
		snprintf(hv->virt_why, sizeof(hv->virt_why), "%s", vmw_error_msg(&err, r));
		return 0;
	}
	hv->virt_why[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct vmw_domain *d = &doms[i];
		struct vmw_qemu_id id = { 0 };
		char key[80], target[64];
		struct host_vm *vm;

		if (d->qemu_pid <= 0 || vmw_qemu_id_get(d->qemu_pid, &id) < 0)
			continue;     /* not running here (or it just exited) */
		id_key(&id, key, sizeof(key));
		snprintf(target, sizeof(target), "qemu:%d", (int)d->qemu_pid);
		if (!(vm = want(hv, key, d->nova.present && d->nova.instance_name[0] ? d->nova.instance_name
										   : d->name, target, false, oom)))
			continue;
		vm->has_dom = true;
		vm->dom = *d;
		vm->qid = id;
		vm->vcpus = d->vcpus;
	}
	return 0;
}

static int discover_qemu(struct host_view *hv, bool *oom)
{
	_cleanup_free_ struct vmw_qemu_id *ids = NULL;
	size_t n = 0;
	int r;

	if ((r = vmw_qemu_list(&ids, &n)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct vmw_qemu_names q;
		char key[80], target[64];
		struct host_vm *vm;

		id_key(&ids[i], key, sizeof(key));
		if (find(hv, key) && find(hv, key)->seen)
			continue;     /* a libvirt domain, already listed */
		snprintf(target, sizeof(target), "qemu:%d", (int)ids[i].pid);
		if (vmw_qemu_names_get(ids[i].pid, &q) < 0)
			q = (struct vmw_qemu_names){ 0 };
		if (!(vm = want(hv, key, q.has_name && q.name[0] ? q.name : target, target, false, oom)))
			continue;
		vm->qid = ids[i];
		vm->vcpus = q.vcpus;
	}
	return 0;
}

static void discover_targets(struct host_view *hv, bool *oom)
{
	for (size_t i = 0; i < hv->o->ntargets; i++) {
		char key[80];
		struct host_vm *vm;

		snprintf(key, sizeof(key), "target:%.70s", hv->o->targets[i]);
		if ((vm = want(hv, key, hv->o->targets[i], hv->o->targets[i], true, oom)))
			vm->extra = true;
	}
}

/* Drop what was not seen (extras stay, gone or not). */
static void sweep(struct host_view *hv)
{
	size_t j = 0;

	for (size_t i = 0; i < hv->n; i++) {
		if (hv->vms[i]->seen || hv->vms[i]->extra)
			hv->vms[j++] = hv->vms[i];
		else
			vm_free(hv->vms[i]);
	}
	hv->n = j;
}

/* ---- sampling ------------------------------------------------------------ */

static void set_failure(struct host_vm *vm, const char *status, const struct vmw_error *err, int r)
{
	vm->status = status;
	snprintf(vm->reason_code, sizeof(vm->reason_code), "%s",
		 vmw_error_kind_name(vmw_error_kind_of(err, r)));
	snprintf(vm->reason, sizeof(vm->reason), "%s", vmw_error_msg(err, r));
	vmw_frame_free(vm->frame);
	vm->frame = NULL;
	vmw_report_use_of(NULL, &vm->use);
}

static int open_vm(struct host_view *hv, struct host_vm *vm)
{
	struct vmw_session_opts so = cli_target_session_opts(&hv->o->topts);

	so.want_linux = so.want_summary = true;
	so.policy = host_policy;
	so.expect = vm->qid;
	if (vmw_session_new(vm->target, &so, &vm->sess) < 0 ||
	    vmw_sampler_new(vm->sess, &hv->o->sopts, &vm->s) < 0)
		return -ENOMEM;
	return 0;
}

int host_vm_resample(struct host_vm *vm, const struct vmw_sampler_opts *opts)
{
	vmw_sampler_close(vm->s);
	vm->s = NULL;
	return vmw_sampler_new(vm->sess, opts, &vm->s);
}

/* The QEMU process's CPU% on the host since the last update. */
static void host_cpu(struct host_vm *vm)
{
	if (!vm->qid.pid && vm->sess)
		vm->qid = vmw_session_qemu(vm->sess);
	if (!vm->qid.pid) {
		vm->host_cpu_ok = false;
		return;
	}
	if (vmw_qemu_cpu_meter_read(&vm->host_meter, &vm->qid, &vm->host_cpu) == 0)
		vm->host_cpu_ok = true;
	else if (!vm->host_meter.primed)
		vm->host_cpu_ok = false;
}

static int sample_guest(struct host_view *hv, struct host_vm *vm)
{
	struct vmw_error err = { 0 };
	struct vmw_frame *f;
	int r;

	if (!vm->sess && open_vm(hv, vm) < 0)
		return -ENOMEM;
	if (vmw_session_state(vm->sess) == VMW_SESSION_GONE)
		return 0;
	if (vmw_session_state(vm->sess) == VMW_SESSION_WAITING &&
	    vmw_now_ns() < vmw_session_retry_at(vm->sess))
		return 0;     /* keeps its reason until the retry */
	if ((r = vmw_sampler_frame(vm->s, &f, &err)) < 0) {
		if (r == -ENOMEM)
			return r;
		set_failure(vm, vmw_session_state(vm->sess) == VMW_SESSION_GONE ? "gone" : "waiting", &err, r);
		return 0;
	}
	vmw_frame_free(vm->frame);
	vm->frame = f;
	vmw_report_use_of(f, &vm->use);
	vm->status = "ok";
	vm->reason[0] = vm->reason_code[0] = '\0';
	if (!vm->vcpus && vm->use.vcpus)
		vm->vcpus = vm->use.vcpus;
	return 0;
}

/* The guest's frame, then its QEMU process's CPU (known once attached). */
static int sample(struct host_view *hv, struct host_vm *vm)
{
	int r = sample_guest(hv, vm);

	host_cpu(vm);
	return r;
}

int host_view_update(struct host_view *hv)
{
	bool oom = false;
	int r;

	for (size_t i = 0; i < hv->n; i++)
		hv->vms[i]->seen = false;
	if (hv->o->all) {
		discover_domains(hv, &oom);
		if ((r = discover_qemu(hv, &oom)) == -ENOMEM)
			return r;
	}
	discover_targets(hv, &oom);
	if (oom)
		return -ENOMEM;
	sweep(hv);
	for (size_t i = 0; i < hv->n; i++)
		if ((r = sample(hv, hv->vms[i])) < 0)
			return r;
	hv->seq++;
	hv->wall_ns = vmw_wall_ns();
	return 0;
}

/* ---- rows ---------------------------------------------------------------- */

/* The value a numeric column sorts by; NAN when unknown (sorted last). */
static double col_value(const struct host_vm *vm, enum host_col c)
{
	const struct vmw_report_use *u = &vm->use;

	switch (c) {
	case HOST_COL_VCPU: return vm->vcpus ? vm->vcpus : NAN;
	case HOST_COL_CPU: return u->cpu_ok ? u->busy : NAN;
	case HOST_COL_US: return u->cpu_ok ? u->cpu.user + u->cpu.nice : NAN;
	case HOST_COL_SY: return u->cpu_ok ? u->cpu.system + u->cpu.irq + u->cpu.softirq : NAN;
	case HOST_COL_WA: return u->cpu_ok ? u->cpu.iowait : NAN;
	case HOST_COL_ST: return u->cpu_ok ? u->cpu.steal : NAN;
	case HOST_COL_HOST: return vm->host_cpu_ok ? vm->host_cpu : NAN;
	case HOST_COL_MEM: return u->mem_ok ? (double)u->mem_used : NAN;
	case HOST_COL_MEMPCT:
		return u->mem_ok && u->mem_total ? 100.0 * (double)u->mem_used / (double)u->mem_total : NAN;
	case HOST_COL_PROCS: return vm->frame ? (double)u->processes : NAN;
	case HOST_COL_LOAD: return u->load_ok ? u->load[0] : NAN;
	case HOST_COL_TOP: return u->top_ok ? u->top_cpu : NAN;
	default: return NAN;
	}
}

/* The OS column: "debian:12" (ID:VERSION_ID of the guest's os-release,
 * like an image tag), the ID alone without a version, "-" when unknown;
 * terminal-safe, one word. */
void host_os_text(const struct host_vm *vm, char *buf, size_t size)
{
	const struct vmw_frame *f = vm->frame;
	char raw[160];

	if (!f || !f->os_ok || !f->os.id[0]) {
		snprintf(buf, size, "-");
		return;
	}
	snprintf(raw, sizeof(raw), "%.63s%s%.63s", f->os.id, f->os.version_id[0] ? ":" : "", f->os.version_id);
	top_sanitize(buf, size, raw);
	for (char *c = buf; *c; c++)
		if (*c == ' ')
			*c = '_';
}

static int cmp_rows(const void *pa, const void *pb, void *arg)
{
	const struct host_vm *a = *(struct host_vm *const *)pa, *b = *(struct host_vm *const *)pb;
	const struct host_sort *cmp_sort = arg;
	enum host_col c = cmp_sort->col;
	int r = 0;

	if (c == HOST_COL_OS) {
		char x[64], y[64];
		host_os_text(a, x, sizeof(x));
		host_os_text(b, y, sizeof(y));
		r = strcmp(x, y);
	} else if (c == HOST_COL_NAME || c == HOST_COL_STATUS) {
		r = c == HOST_COL_STATUS ? strcmp(a->status, b->status) : 0;
	} else {
		double x = col_value(a, c), y = col_value(b, c);
		if (isnan(x) != isnan(y))
			return isnan(x) ? 1 : -1;     /* unknown last, in either order */
		r = isnan(x) || x == y ? 0 : x < y ? -1 : 1;
		if (host_cols[c].descending)
			r = -r;
	}
	if (cmp_sort->invert)
		r = -r;
	return r ? r : strcasecmp(a->name, b->name) ? strcasecmp(a->name, b->name) : strcmp(a->key, b->key);
}

size_t host_rows(const struct host_view *hv, const struct host_sort *s, struct host_vm **rows)
{
	size_t n = 0;

	for (size_t i = 0; i < hv->n; i++)
		if (name_matches(hv->vms[i]->name, hv->vms[i]->target, s->filter))
			rows[n++] = hv->vms[i];
	qsort_r(rows, n, sizeof(*rows), cmp_rows, (void *)s);
	return n;
}

static void cell(char *buf, size_t size, size_t *at, enum host_col c, const char *text)
{
	int w = host_cols[c].width;

	if (*at < size)
		*at += (size_t)snprintf(buf + *at, size - *at, w < 0 ? "%-*.*s " : "%*.*s ", abs(w), abs(w), text);
}

static void pct_text(char *buf, size_t size, double v)
{
	if (isnan(v))
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.1f", v);
}

static void mem_text(const struct host_vm *vm, char *buf, size_t size)
{
	char a[16], b[16];
	uint64_t total = vm->use.mem_ok ? vm->use.mem_total : vm->frame ? vm->frame->mem_total_bytes : 0;

	if (vm->use.mem_ok)
		top_fmt_bytes(a, sizeof(a), vm->use.mem_used);
	else
		snprintf(a, sizeof(a), "-");
	if (total)
		top_fmt_bytes(b, sizeof(b), total);
	else if (vm->has_dom && vm->dom.memory_bytes)
		top_fmt_bytes(b, sizeof(b), vm->dom.memory_bytes);
	else
		snprintf(b, sizeof(b), "-");
	snprintf(buf, size, "%s/%s", a, b);
}

void host_row_cells(const struct host_vm *vm, char *buf, size_t size)
{
	char t[64], name[256];
	size_t at = 0;

	buf[0] = '\0';
	top_sanitize(name, sizeof(name), vm->name);
	cell(buf, size, &at, HOST_COL_NAME, name);
	cell(buf, size, &at, HOST_COL_STATUS, vm->frame && !vm->frame->complete ? "partial" : vm->status);
	if (vm->vcpus)
		snprintf(t, sizeof(t), "%u", vm->vcpus);
	else
		snprintf(t, sizeof(t), "-");
	cell(buf, size, &at, HOST_COL_VCPU, t);
	for (enum host_col c = HOST_COL_CPU; c <= HOST_COL_HOST; c++) {
		pct_text(t, sizeof(t), col_value(vm, c));
		cell(buf, size, &at, c, t);
	}
	mem_text(vm, t, sizeof(t));
	cell(buf, size, &at, HOST_COL_MEM, t);
	pct_text(t, sizeof(t), col_value(vm, HOST_COL_MEMPCT));
	cell(buf, size, &at, HOST_COL_MEMPCT, t);
	if (vm->frame)
		snprintf(t, sizeof(t), "%zu", vm->use.processes);
	else
		snprintf(t, sizeof(t), "-");
	cell(buf, size, &at, HOST_COL_PROCS, t);
	if (vm->use.load_ok)
		snprintf(t, sizeof(t), "%.2f", vm->use.load[0]);
	else
		snprintf(t, sizeof(t), "-");
	cell(buf, size, &at, HOST_COL_LOAD, t);
	host_os_text(vm, t, sizeof(t));
	cell(buf, size, &at, HOST_COL_OS, t);
}

void host_header_cells(char *buf, size_t size)
{
	size_t at = 0;

	buf[0] = '\0';
	for (enum host_col c = 0; c < HOST_COL_TOP; c++)
		cell(buf, size, &at, c, host_cols[c].title);
}

void host_row_tail(const struct host_vm *vm, char *buf, size_t size)
{
	char comm[64];

	if (vm->use.top_ok) {
		top_sanitize(comm, sizeof(comm), vm->use.top_comm);
		snprintf(buf, size, "%5.1f %s (%d)", vm->use.top_cpu, comm, (int)vm->use.top_pid);
	} else if (vm->reason[0]) {
		top_sanitize(buf, size, vm->reason);
	} else {
		snprintf(buf, size, "%s", vm->frame ? "" : "-");
	}
}

json_t *host_view_json(const struct host_view *hv, struct host_vm **rows, size_t n)
{
	json_t *vms = json_array();

	for (size_t i = 0; i < n; i++) {
		const struct host_vm *vm = rows[i];
		struct vmw_report_vm_row r = {
			.name = vm->name, .target = vm->target, .domain = vm->has_dom ? &vm->dom : NULL,
			.qemu_pid = vm->qid.pid, .vcpus = vm->vcpus, .status = vm->status,
			.reason_code = vm->reason_code[0] ? vm->reason_code : NULL,
			.reason = vm->reason[0] ? vm->reason : NULL, .host_cpu_ok = vm->host_cpu_ok,
			.host_cpu_percent = vm->host_cpu, .frame = vm->frame,
		};
		json_array_append_new(vms, vmw_report_vm_row(&r));
	}
	return vmw_report_host_frame(hv->seq, hv->wall_ns, hv->virt ? vmw_virt_uri(hv->virt) : NULL,
				     hv->virt_why[0] ? hv->virt_why : NULL, vms);
}
