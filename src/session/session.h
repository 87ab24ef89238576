/* SPDX-License-Identifier: MIT */
/*
 * session.h - one guest, opened the same way for every front end.
 *
 * A session turns a target string into the reading stack:
 *   "NAME", "UUID", "domain:NAME"  a libvirt domain (src/virt resolves it to
 *                                  its QEMU process; the session is the only
 *                                  library layer that calls src/virt)
 *   "qemu:PID", "file:PATH"        as src/mem opens them
 * → memory source → kernel attach → Linux model (+ summary reader when
 * asked). `ps`, `info`, `summary`, `bench`, `top`, the sampler and the agent
 * all open targets here.
 *
 * It is also the one state machine for a guest that is watched over time:
 *
 *   ATTACHED ──(a read fails, the guest is not readable)──▶ WAITING
 *      ▲  │                                                  │ retry at
 *      │  └─(guest rebooted: VMCOREINFO changed)─▶ re-attach │ back-off
 *      └──────────────(attach succeeds)──────────────────────┘
 *   any state ──(QEMU exited or its pid was reused)──▶ GONE (final), except
 *   for a libvirt domain whose QEMU was replaced: reopened on the new one.
 *
 * The QEMU process is known by pid + start time (src/mem), so a reused pid
 * is not mistaken for the guest. The back-off is a parameter: top retries
 * quickly with a short cap, the agent at its sampling interval while the VM
 * is young and then up to a minute. Failures carry error kinds
 * (vmw_error_kind_of) so callers never match message text.
 *
 * A session is for one thread at a time.
 */
#pragma once

#include "linux/linux.h"

struct vmw_session;

/* Re-attach back-off: the n-th consecutive failure waits
 * min_ns * 2^(n-1), at most max_ns; while the session is younger than
 * young_ns every retry waits min_ns (a booting guest shows its kernel within
 * seconds). */
struct vmw_session_policy {
	uint64_t min_ns;           /* 0: 500 ms */
	uint64_t max_ns;           /* 0: 5 s */
	uint64_t young_ns;         /* 0: no young phase */
	/* Wait for a target with no QEMU process behind it (file:PATH whose
	 * RAM file no QEMU maps)? Nothing tells when it would become readable:
	 * top gives up (GONE), the agent keeps retrying. */
	bool wait_without_process;
};

struct vmw_session_opts {
	size_t sz;                 /* sizeof(struct vmw_session_opts) */
	bool no_cache;             /* kernel discovery cache off */
	bool ignore_vmcoreinfo_kallsyms; /* locate kallsyms by structure (fallback path) */
	bool process_read;         /* qemu: targets read with process_vm_readv even if shared */
	enum vmw_layout layout;    /* file: targets: how a raw RAM file maps (src/mem) */
	bool memory_only;          /* stop at the memory source: no kernel (vmwatch phys) */
	bool want_linux;           /* build the Linux model (processes) */
	bool want_summary;         /* and the summary reader, when the kernel has what it needs */
	struct vmw_session_policy policy;
	/* The QEMU process the caller knows the target by (the agent learns it
	 * from libvirt or at start-up): any other process, or none, is GONE.
	 * Zero: the process the target resolves to when first opened. */
	struct vmw_qemu_id expect;
};

enum vmw_session_state {
	VMW_SESSION_ATTACHED,      /* mem, kernel (and Linux model, summary) usable */
	VMW_SESSION_WAITING,       /* not readable now; retried at vmw_session_retry_at */
	VMW_SESSION_GONE,          /* the QEMU process exited: final */
};

/* Open target and attach now. On failure nothing is kept: returns a negative
 * errno with err set (its kind tells why: not_found, permission, gone,
 * not_linux, no_btf, unsupported, ...). For one-shot commands and for
 * watchers that must fail early (top). */
int vmw_session_open(const char *target, const struct vmw_session_opts *opts,
		     struct vmw_session **ret, struct vmw_error *err);
/* A session in WAITING, first attached by vmw_session_poll: for watchers that
 * retry from the start (the agent). -ENOMEM only. */
int vmw_session_new(const char *target, const struct vmw_session_opts *opts,
		    struct vmw_session **ret);
void vmw_session_close(struct vmw_session *s);

/*
 * Bring the session up to date; callers that watch over time call it before
 * each read of the guest. It checks that the QEMU process is the same
 * (reopening a replaced libvirt domain), that the guest did not reboot
 * (re-attaching if it did) and, when WAITING and the retry time has come,
 * tries to attach. *reattached (may be NULL) is set when the stack was
 * (re)built by this call: what the caller remembers of processes is void.
 * Returns the state; for WAITING and GONE, err says why (the last failure).
 */
enum vmw_session_state vmw_session_poll(struct vmw_session *s, bool *reattached,
					struct vmw_error *err);
/* A read of the guest failed with r (err as it came): the stack is dropped
 * and the session WAITING with back-off; GONE if the QEMU process is (also
 * when r is -ESRCH: a read through the process found it gone) or if there is
 * no process and the policy does not wait without one; or ATTACHED again at
 * once for a libvirt domain reopened on its new QEMU (then retry the read).
 * Returns the new state; err keeps the failure. */
enum vmw_session_state vmw_session_fail(struct vmw_session *s, int r, struct vmw_error *err);
/* The caller saw the guest reboot where the session cannot (its uptime went
 * backwards with an unchanged VMCOREINFO): detach and attach again now.
 * Returns the new state (ATTACHED, or WAITING/GONE with err set). */
enum vmw_session_state vmw_session_reattach(struct vmw_session *s, struct vmw_error *err);
/* Replace the back-off policy (the agent's interval can change at run time). */
void vmw_session_set_policy(struct vmw_session *s, const struct vmw_session_policy *p);

enum vmw_session_state vmw_session_state(const struct vmw_session *s);
/* CLOCK_MONOTONIC ns of the next attach attempt (WAITING). */
uint64_t vmw_session_retry_at(const struct vmw_session *s);
/* Successful attaches so far (the first one included). */
uint64_t vmw_session_attaches(const struct vmw_session *s);
/* Pure: the delay after `failures` consecutive failures (>= 1) of a session
 * that is age_ns old. */
uint64_t vmw_session_backoff(const struct vmw_session_policy *p, unsigned failures, uint64_t age_ns);

/* The stack, while ATTACHED (NULL otherwise; the summary reader also when
 * not asked for or the kernel lacks what it needs). Owned by the session:
 * valid until the next poll, fail, reattach or close. */
struct vmw_mem *vmw_session_mem(const struct vmw_session *s);
struct vmw_kernel *vmw_session_kernel(const struct vmw_session *s);
struct vmw_linux *vmw_session_linux(const struct vmw_session *s);
struct vmw_summary_reader *vmw_session_summary(const struct vmw_session *s);
/* What the session watches, for display: "vm1 (qemu:1234)" for a libvirt
 * domain, else the target as given. */
const char *vmw_session_name(const struct vmw_session *s);
/* The QEMU process (pid 0: none, e.g. a dump file). */
struct vmw_qemu_id vmw_session_qemu(const struct vmw_session *s);
