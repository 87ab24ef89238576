/* SPDX-License-Identifier: MIT */
/* session.c - one guest: target → memory → kernel → Linux model, and the
 * state machine that keeps it attached over time (see session.h). */
#include "session/session.h"
#include "virt/virt.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define DEFAULT_MIN_NS 500000000ull
#define DEFAULT_MAX_NS 5000000000ull

struct vmw_session {
	char *target;                     /* as given */
	char mem_target[64 + 4096];       /* what src/mem opens: qemu:PID or file:PATH */
	char display[320];                /* "vm1 (qemu:1234)" or the target */
	bool is_domain;                   /* resolved through libvirt: re-resolve when QEMU is replaced */
	struct vmw_session_opts opts;
	enum vmw_session_state state;
	struct vmw_qemu_id qemu;          /* the QEMU process behind the target; pid 0 if none */
	bool qemu_fixed;                  /* given by the caller: never replaced */
	struct vmw_mem *mem;
	struct vmw_kernel *k;
	struct vmw_linux *lx;
	struct vmw_summary_reader *sum;
	uint8_t vmcoreinfo[256];          /* start of the VMCOREINFO text at attach */
	uint64_t vmcoreinfo_phys;         /* and where it was (valid once attaches > 0) */
	uint64_t created_ns, retry_at, attaches;
	unsigned failures;
	struct vmw_error last;            /* why WAITING or GONE */
};

uint64_t vmw_session_backoff(const struct vmw_session_policy *p, unsigned failures, uint64_t age_ns)
{
	uint64_t lo = p->min_ns ? p->min_ns : DEFAULT_MIN_NS;
	uint64_t hi = MAX(p->max_ns ? p->max_ns : DEFAULT_MAX_NS, lo), d = lo;

	if (age_ns < p->young_ns)
		return lo;
	for (unsigned i = 1; i < failures && d < hi; i++)
		d *= 2;
	return MIN(d, hi);
}

static void drop_stack(struct vmw_session *s)
{
	vmw_summary_free(s->sum);
	s->sum = NULL;
	vmw_linux_free(s->lx);
	s->lx = NULL;
	if (s->k)
		vmw_kernel_detach(s->k);
	s->k = NULL;
	vmw_mem_close(s->mem);
	s->mem = NULL;
}

/* Target → qemu:PID/file:PATH (libvirt domains through src/virt). */
static int resolve(struct vmw_session *s, struct vmw_error *err)
{
	int r = vmw_virt_resolve_target(s->target, s->mem_target, sizeof(s->mem_target), s->display,
					sizeof(s->display), err);
	if (r < 0)
		return r;
	s->is_domain = r == 1;
	return 0;
}

/*
 * Attaching again to the kernel attached before (same VMCOREINFO copy, same
 * text): after a walk failed or the guest was reset, that may be the old
 * kernel left frozen in RAM while the new one boots (a cached attach accepts
 * it for a few seconds, a full discovery when it is the only complete copy).
 * Its jiffies must be seen advancing; a guest paused meanwhile waits too.
 */
static int check_alive(struct vmw_session *s, struct vmw_error *err)
{
	const struct vmw_kernel_info *ki = vmw_kernel_info(s->k);
	uint8_t now[sizeof(s->vmcoreinfo)];
	int r;

	if (!s->attaches || ki->vmcoreinfo_phys != s->vmcoreinfo_phys ||
	    vmw_mem_read(s->mem, ki->vmcoreinfo_phys, now, sizeof(now)) < 0 ||
	    memcmp(now, s->vmcoreinfo, sizeof(now)))
		return 0;
	if ((r = vmw_kernel_running(s->k, 1500000000ull)) > 0)
		return 0;
	if (r < 0)
		return vmw_error_set(err, r, "reading the kernel's jiffies failed: %s", strerror(-r));
	return vmw_error_setk(err, VMW_ERR_NOT_LINUX, -ENOENT, "the kernel found (Linux %s, VMCOREINFO at 0x%"
			      PRIx64 ") is the one attached before and its clock has stopped: a copy left in "
			      "RAM by a reset while the new kernel boots, or a paused guest; waiting",
			      ki->release, ki->vmcoreinfo_phys);
}

/* Build the stack on s->mem_target. Leaves nothing behind on failure. */
static int build_stack(struct vmw_session *s, struct vmw_error *err)
{
	VMW_MEM_OPTS(mopts, .layout = s->opts.layout, .force_process_read = s->opts.process_read,
		      .no_cache = s->opts.no_cache);
	VMW_KERNEL_OPTS(kopts, .no_cache = s->opts.no_cache,
			.ignore_vmcoreinfo_kallsyms = s->opts.ignore_vmcoreinfo_kallsyms);
	int r;

	if ((r = vmw_mem_open(s->mem_target, &mopts, &s->mem, err)) < 0)
		return r;
	if (!s->qemu_fixed && !s->qemu.pid && vmw_mem_pid(s->mem) > 0)
		vmw_qemu_id_get(vmw_mem_pid(s->mem), &s->qemu);
	if (s->opts.memory_only)
		goto attached;
	if ((r = vmw_kernel_attach(s->mem, &kopts, &s->k, err)) < 0 || (r = check_alive(s, err)) < 0)
		goto fail;
	if (s->opts.want_linux && (r = vmw_linux_new(s->k, &s->lx, err)) < 0)
		goto fail;
	/* The summary is optional: whoever asked works without it. */
	if (s->opts.want_summary && vmw_summary_new(s->k, &s->sum, NULL) < 0)
		s->sum = NULL;
	s->vmcoreinfo_phys = vmw_kernel_info(s->k)->vmcoreinfo_phys;
	vmw_mem_read(s->mem, s->vmcoreinfo_phys, s->vmcoreinfo, sizeof(s->vmcoreinfo));
attached:
	s->state = VMW_SESSION_ATTACHED;
	s->failures = 0;
	s->attaches++;
	return 0;
fail:
	vmw_error_prefix(err, "%s: ", s->display);
	drop_stack(s);
	return r;
}

/* Resolve (a domain's QEMU may have changed) and build the stack. */
static int attach(struct vmw_session *s, struct vmw_error *err)
{
	int r;

	if ((!s->mem_target[0] || s->is_domain) && (r = resolve(s, err)) < 0)
		return r;
	return build_stack(s, err);
}

static enum vmw_session_state set_gone(struct vmw_session *s, struct vmw_error *err)
{
	drop_stack(s);
	s->state = VMW_SESSION_GONE;
	if (s->qemu.pid > 0)
		vmw_error_setk(&s->last, VMW_ERR_GONE, -ESRCH, "%s: the QEMU process (PID %d) exited: "
			       "the guest is gone", s->target, (int)s->qemu.pid);
	if (err)
		*err = s->last;
	return s->state;
}

/* Is the QEMU process still the one we opened? If not: a libvirt domain is
 * looked up again and reopened on its new QEMU (true, *reopened), anything
 * else is GONE (false). */
static bool check_process(struct vmw_session *s, bool *reopened, struct vmw_error *err)
{
	char old[sizeof(s->mem_target)];
	struct vmw_error e = { 0 };

	if (!s->qemu.pid || vmw_qemu_id_alive(&s->qemu) == 0)
		return true;
	if (!s->is_domain || s->qemu_fixed) {
		set_gone(s, err);
		return false;
	}
	drop_stack(s);
	memcpy(old, s->mem_target, sizeof(old));
	if (resolve(s, &e) < 0 || !strcmp(old, s->mem_target)) {
		set_gone(s, err);
		return false;
	}
	s->qemu = (struct vmw_qemu_id){ 0 };
	if (build_stack(s, &e) < 0)
		vmw_session_fail(s, e.code, &e);   /* the new QEMU may still be starting its guest */
	*reopened = s->state == VMW_SESSION_ATTACHED;
	return true;
}

enum vmw_session_state vmw_session_fail(struct vmw_session *s, int r, struct vmw_error *err)
{
	bool reopened = false;
	uint64_t now = vmw_now_ns();

	drop_stack(s);
	s->last = err && err->code ? *err : (struct vmw_error){ 0 };
	if (!s->last.code)
		vmw_error_set(&s->last, r, "%s: %s", s->display, strerror(-r));
	if (!check_process(s, &reopened, err))
		return VMW_SESSION_GONE;
	if (reopened)
		return VMW_SESSION_ATTACHED;
	/* A read through the process found it gone before /proc shows it exited;
	 * or there is no process to tell whether waiting makes sense. */
	if ((r == -ESRCH && s->qemu.pid) || (!s->qemu.pid && !s->opts.policy.wait_without_process))
		return set_gone(s, err);
	s->failures++;
	s->retry_at = now + vmw_session_backoff(&s->opts.policy, s->failures, now - s->created_ns);
	s->state = VMW_SESSION_WAITING;
	if (err)
		*err = s->last;
	return s->state;
}

/* Has the guest rebooted since attach? Its VMCOREINFO text moved or changed. */
static bool rebooted(struct vmw_session *s)
{
	uint8_t now[sizeof(s->vmcoreinfo)];

	if (!s->k)
		return false;   /* memory only: no kernel to have rebooted */
	if (vmw_mem_read(s->mem, vmw_kernel_info(s->k)->vmcoreinfo_phys, now, sizeof(now)) < 0)
		return true;
	return memcmp(now, s->vmcoreinfo, sizeof(now)) != 0;
}

enum vmw_session_state vmw_session_reattach(struct vmw_session *s, struct vmw_error *err)
{
	struct vmw_error e = { 0 };
	int r;

	drop_stack(s);
	if ((r = attach(s, &e)) < 0) {
		vmw_error_prefix(&e, "guest rebooted and re-attaching failed: ");
		if (err)
			*err = e;
		return vmw_session_fail(s, r, err ? err : &e);
	}
	return s->state;
}

enum vmw_session_state vmw_session_poll(struct vmw_session *s, bool *reattached, struct vmw_error *err)
{
	bool reopened = false;
	struct vmw_error e = { 0 };
	int r;

	if (reattached)
		*reattached = false;
	if (s->state == VMW_SESSION_GONE)
		return set_gone(s, err);
	if (!check_process(s, &reopened, err))
		return VMW_SESSION_GONE;
	if (reopened || s->state == VMW_SESSION_WAITING) {
		if (s->state == VMW_SESSION_WAITING && vmw_now_ns() < s->retry_at) {
			if (err)
				*err = s->last;
			return s->state;
		}
		if (!reopened && (r = attach(s, &e)) < 0) {
			if (err)
				*err = e;
			return vmw_session_fail(s, r, err ? err : &e);
		}
		if (reattached)
			*reattached = true;
		return s->state;
	}
	if (rebooted(s)) {
		if (reattached)
			*reattached = true;
		return vmw_session_reattach(s, err);
	}
	return s->state;
}

static int session_alloc(const char *target, const struct vmw_session_opts *opts, struct vmw_session **ret)
{
	struct vmw_session *s = calloc(1, sizeof(*s));

	if (!s || !(s->target = strdup(target))) {
		free(s);
		return -ENOMEM;
	}
	if (opts)
		memcpy(&s->opts, opts, MIN(opts->sz ? opts->sz : sizeof(*opts), sizeof(s->opts)));
	s->opts.sz = sizeof(s->opts);
	snprintf(s->display, sizeof(s->display), "%s", target);
	if (s->opts.expect.pid) {
		s->qemu = s->opts.expect;
		s->qemu_fixed = true;
	}
	s->created_ns = vmw_now_ns();
	s->state = VMW_SESSION_WAITING;
	*ret = s;
	return 0;
}

int vmw_session_new(const char *target, const struct vmw_session_opts *opts, struct vmw_session **ret)
{
	return session_alloc(target, opts, ret);
}

int vmw_session_open(const char *target, const struct vmw_session_opts *opts,
		     struct vmw_session **ret, struct vmw_error *err)
{
	struct vmw_session *s;
	int r;

	if (session_alloc(target, opts, &s) < 0)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if ((r = attach(s, err)) < 0) {
		vmw_session_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

void vmw_session_close(struct vmw_session *s)
{
	if (!s)
		return;
	drop_stack(s);
	free(s->target);
	free(s);
}

void vmw_session_set_policy(struct vmw_session *s, const struct vmw_session_policy *p) { s->opts.policy = *p; }
enum vmw_session_state vmw_session_state(const struct vmw_session *s) { return s->state; }
uint64_t vmw_session_retry_at(const struct vmw_session *s) { return s->retry_at; }
uint64_t vmw_session_attaches(const struct vmw_session *s) { return s->attaches; }
struct vmw_mem *vmw_session_mem(const struct vmw_session *s) { return s->mem; }
struct vmw_kernel *vmw_session_kernel(const struct vmw_session *s) { return s->k; }
struct vmw_linux *vmw_session_linux(const struct vmw_session *s) { return s->lx; }
struct vmw_summary_reader *vmw_session_summary(const struct vmw_session *s) { return s->sum; }
const char *vmw_session_name(const struct vmw_session *s) { return s->display; }
struct vmw_qemu_id vmw_session_qemu(const struct vmw_session *s) { return s->qemu; }
