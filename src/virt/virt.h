/* SPDX-License-Identifier: MIT */
/*
 * virt.h - finding VMs through libvirt (read-only connection).
 *
 * Lists the host's running QEMU domains and follows libvirt's domain
 * lifecycle events (started, stopped, rebooted, crashed, migrated) through
 * libvirt's event loop — no polling that misses short-lived VMs. For each
 * domain: name, UUID, state, vCPUs, memory, the QEMU PID (libvirt's run-state
 * file /run/libvirt/qemu/NAME.pid), how its RAM is backed, and OpenStack Nova
 * metadata when present (<nova:instance> in the nova/1.0 or 1.1 namespace).
 *
 * This layer only describes VMs; reading their memory is src/mem's job
 * (target "qemu:PID"). src/mem never links against libvirt: src/session turns
 * a domain name into "qemu:PID" with vmw_virt_resolve_target() (and again
 * when the domain's QEMU is replaced); front ends call this layer only to
 * list and watch domains (vmwatch vms, the agent's registry).
 *
 * URIs: NULL means $LIBVIRT_DEFAULT_URI, else "qemu:///system". The QEMU PID
 * is only known for local qemu:///system and qemu:///session connections
 * (override the run-state directory with $VMWATCH_LIBVIRT_RUNDIR).
 *
 * Threads: while any struct vmw_virt is open, one process-wide background
 * thread runs libvirt's default event loop (it answers libvirtd's keepalive
 * pings, notices a vanished libvirtd and delivers events); the last
 * vmw_virt_close joins it. vmw_virt_list/lookup may be called from several
 * threads at once, also while watching (they share one connection under a
 * lock and reconnect once if libvirtd was restarted); vmw_virt_watch and
 * vmw_virt_close are for the owner's thread. Event callbacks run in the
 * loop thread, one at a time, in event order, for every watching struct
 * vmw_virt. vmw_virt_close must not be called from an event callback.
 * Process-wide effects: libvirt's default error printing to stderr is
 * turned off (its messages come back in struct vmw_error), and libvirt's
 * default event implementation is registered, the first time vmw_virt_open
 * runs (also through vmw_virt_resolve_target for a domain). libvirt.so.0 and
 * libxml2.so.2 are dlopen()ed then (libxml2 also by the parse functions), not
 * linked; without libvirt these calls fail with -ENOTSUP ("libvirt is not
 * installed"). Library calls never die of SIGPIPE
 * from a dead libvirtd (it is blocked around libvirt calls).
 */
#pragma once

#include "util/util.h"

#include <sys/types.h>

struct vmw_virt;

struct vmw_nova {
	bool present;
	char instance_name[128];   /* nova:name (display name) */
	char flavor[128];          /* nova:flavor name= */
	char project_id[64], project_name[128];  /* nova:owner/nova:project uuid=, text */
	char user_id[64], user_name[128];        /* nova:owner/nova:user uuid=, text */
	uint64_t flavor_memory_mib;              /* nova:flavor/nova:memory */
	unsigned flavor_vcpus;                   /* nova:flavor/nova:vcpus */
};

enum vmw_domain_state {
	VMW_DOM_UNKNOWN = 0,
	VMW_DOM_RUNNING,
	VMW_DOM_PAUSED,
	VMW_DOM_SHUTOFF,
	VMW_DOM_CRASHED,
	VMW_DOM_OTHER,
};

struct vmw_domain {
	char name[256];
	char uuid[37];
	enum vmw_domain_state state;
	unsigned vcpus;
	uint64_t memory_bytes;     /* guest RAM size (<memory>, libvirt's maxMem) */
	pid_t qemu_pid;            /* 0 if not running / unknown; in a STOPPED event: the PID it had */
	char ram_backing[32];      /* "memfd", "file", "anonymous", "hugepages" */
	bool ram_shared;           /* <access mode='shared'/> (or a NUMA cell memAccess='shared') */
	bool ram_hugepages;        /* <hugepages/> (also with memfd/file) */
	struct vmw_nova nova;
};

enum vmw_virt_event_type {
	VMW_VIRT_STARTED = 1,      /* booted, restored, migrated in (new on this host) */
	VMW_VIRT_STOPPED,          /* shut down, destroyed, crashed, migrated away */
	VMW_VIRT_REBOOTED,         /* guest reset, same QEMU process */
	VMW_VIRT_CHANGED,          /* paused, resumed, guest panicked, metadata changed */
};

/* "running", "paused", "shutoff", "crashed", "other", "unknown". */
const char *vmw_domain_state_name(enum vmw_domain_state s);
/* "started", "stopped", "rebooted", "changed". */
const char *vmw_virt_event_name(enum vmw_virt_event_type t);

/* Called from the virt event thread; must not block for long. dom is only
 * valid during the call. */
typedef void (*vmw_virt_event_fn)(void *opaque, enum vmw_virt_event_type type,
				  const struct vmw_domain *dom);

/* Connect read-only to uri (NULL: $LIBVIRT_DEFAULT_URI or "qemu:///system").
 * err says what failed and what would help, e.g. "cannot connect to libvirt
 * at qemu:///system: <libvirt's message> (is libvirtd running?)". */
int vmw_virt_open(const char *uri, struct vmw_virt **ret, struct vmw_error *err);
void vmw_virt_close(struct vmw_virt *v);
/* The URI connected to. */
const char *vmw_virt_uri(const struct vmw_virt *v);

/* Running (and paused) domains now, sorted by name. *ret is malloc'd; free() it. */
int vmw_virt_list(struct vmw_virt *v, struct vmw_domain **ret, size_t *ret_n, struct vmw_error *err);

/* Look up a domain (running or not) by name or UUID. -ENOENT if none. */
int vmw_virt_lookup(struct vmw_virt *v, const char *name_or_uuid, struct vmw_domain *ret,
		    struct vmw_error *err);

/* Start following lifecycle events (on a connection of its own, in the
 * event-loop thread); fn is called for each. Domains already running are not
 * reported: call vmw_virt_list after this returns to get them without a gap.
 * STARTED and STOPPED alternate per domain (duplicates are dropped). If
 * libvirtd goes away, reconnects with backoff (0.2 s doubling to 5 s) and
 * then reports STARTED/STOPPED for what changed meanwhile (a domain whose
 * QEMU PID changed is reported STOPPED then STARTED). -EALREADY if v
 * already watches. */
int vmw_virt_watch(struct vmw_virt *v, vmw_virt_event_fn fn, void *opaque, struct vmw_error *err);

/* Pure helper (unit-tested): parse Nova metadata out of a domain XML
 * document. Returns 1 and ret->present = true if there is a <nova:instance>,
 * 0 if there is none (ret zeroed), -EINVAL if the XML does not parse. */
int vmw_virt_parse_nova(const char *domain_xml, struct vmw_nova *ret);

/* Pure helper (unit-tested): name, uuid, vcpus (<vcpu>), memory_bytes
 * (<memory unit=...>), RAM backing and Nova metadata from a domain XML
 * document; state and qemu_pid are left 0. 0 or -EINVAL. */
int vmw_virt_parse_xml(const char *domain_xml, struct vmw_domain *ret);

/*
 * Turn a user's target into one src/mem can open:
 *   "qemu:PID", "file:PATH"   returned unchanged (libvirt is not contacted);
 *   "domain:NAME", "NAME", "UUID"
 *                             looked up in libvirt ($LIBVIRT_DEFAULT_URI or
 *                             qemu:///system) and turned into "qemu:PID".
 * ret_target gets what to pass to vmw_mem_open, ret_display what to show
 * ("vm1 (qemu:1234)" for a domain, else the target itself); either may be
 * NULL. Returns 1 if resolved through libvirt, 0 if passed through, or
 *   -ENOENT  no such domain (the message says what targets look like)
 *   -ESRCH   the domain is not running (or its QEMU process is not found)
 *   -ECONNREFUSED/-EACCES  libvirt could not be reached
 *   -EINVAL, -ENAMETOOLONG.
 */
int vmw_virt_resolve_target(const char *target, char *ret_target, size_t n,
			    char *ret_display, size_t dn, struct vmw_error *err);
