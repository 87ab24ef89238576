/* SPDX-License-Identifier: MIT */
/*
 * compat.c - the original VM Process Monitor's client API, served from the
 * live samplers (no 3-second wait, no guest pause):
 *
 *   GET /v1/instances/                     [{"instance_name": NAME}, ...]
 *   GET|POST /v1/instances/NAME/processes  [{"type", "state", "pid", "name",
 *       "priority", "cpu_usage", "physical_memory_usage",
 *       "virtual_memory_usage", "memory_percent"}, ...]
 *
 * "New Process" / "Ended Process" are relative to the snapshot this client
 * was last served for this instance; a client's first request (or one whose
 * state expired or was evicted) is relative to the previous interval's
 * snapshot. A client is its X-Client-Id header, else its ?client= parameter,
 * else its IP address. Ended processes carry their last values. At most
 * max_clients client states are kept (least recently used evicted), each
 * dropped after max(history, 10 min) without a request.
 *
 * NAME is a libvirt domain name (Nova's instance-XXXXXXXX), a UUID, or a Nova
 * display name (nova:name) when exactly one VM has it, as in /v1/vms/{id}.
 */
#include "agent/agent_int.h"
#include "agent/query.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

/* Bounded string copy (always terminated). */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

struct centry {
	char client[160];
	char vm_id[40];
	struct agent_base *base;      /* what the client was last served */
	uint64_t used_ns;             /* monotonic */
};

struct agent_compat {
	pthread_mutex_t lock;
	struct centry *e;
	size_t n, cap;
};

int agent_compat_init(struct agent *a)
{
	struct agent_compat *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->cap = a->cfg.max_clients;
	if (c->cap && !(c->e = calloc(c->cap, sizeof(*c->e)))) {
		free(c);
		return -ENOMEM;
	}
	a->compat = c;
	return 0;
}

void agent_compat_free(struct agent *a)
{
	struct agent_compat *c = a->compat;
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		agent_base_unref(c->e[i].base);
	free(c->e);
	pthread_mutex_destroy(&c->lock);
	free(c);
	a->compat = NULL;
}

void agent_compat_expire(struct agent *a)
{
	struct agent_compat *c = a->compat;
	uint64_t now = vmw_now_ns(), ttl = (uint64_t)(MAX(a->cfg.history_s, 600.0) * 1e9);

	pthread_mutex_lock(&c->lock);
	for (size_t i = c->n; i-- > 0;)
		if (now - c->e[i].used_ns > ttl) {
			agent_base_unref(c->e[i].base);
			c->e[i] = c->e[--c->n];
		}
	pthread_mutex_unlock(&c->lock);
}

json_t *agent_compat_instances(struct agent *a)
{
	struct agent_vm **vms;
	size_t n = agent_vms_get(a, &vms);
	json_t *arr = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:o}", "instance_name", vmw_report_string(vms[i]->name)));
	agent_vms_put(vms, n);
	return arr;
}

json_t *agent_compat_processes(struct agent *a, const char *instance, const char *client,
			       unsigned *code, char *msg, size_t msgsize)
{
	struct agent_compat *c = a->compat;
	struct agent_vm *vm = agent_vm_lookup(a, instance);
	struct agent_snap *snap;
	struct agent_base *prev, *base = NULL, *served;
	struct centry *e = NULL;
	bool ambiguous = false;
	json_t *out;

	if (!vm && !(vm = agent_vm_lookup_nova(a, instance, &ambiguous))) {
		*code = 404;
		if (ambiguous)
			snprintf(msg, msgsize, "several instances have the Nova name '%.200s': use the "
				 "instance name (instance-XXXXXXXX) or the UUID", instance);
		else
			snprintf(msg, msgsize, "no instance named '%.200s' on this host", instance);
		return NULL;
	}
	pthread_mutex_lock(&vm->lock);
	snap = agent_snap_ref(vm->snap);
	prev = agent_base_ref(vm->prev);
	if (!snap) {
		*code = 503;
		snprintf(msg, msgsize, "instance '%.200s' is not monitored yet: %s%.300s", instance,
			 agent_status_name(vm->status), vm->reason[0] ? ": " : "");
		if (vm->reason[0])
			snprintf(msg + strlen(msg), msgsize - strlen(msg), "%.300s", vm->reason);
	}
	pthread_mutex_unlock(&vm->lock);
	if (!snap) {
		agent_base_unref(prev);
		agent_vm_unref(vm);
		return NULL;
	}

	/* What this client is served now: its baseline next time. */
	served = c->cap ? agent_base_build(snap) : NULL;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n && !e; i++)
		if (!strcmp(c->e[i].client, client) && !strcmp(c->e[i].vm_id, vm->id))
			e = &c->e[i];
	if (e)
		base = agent_base_ref(e->base);
	else if (c->cap && c->e) {
		if (c->n == c->cap) {        /* evict the least recently used */
			size_t lru = 0;
			for (size_t i = 1; i < c->n; i++)
				if (c->e[i].used_ns < c->e[lru].used_ns)
					lru = i;
			agent_base_unref(c->e[lru].base);
			c->e[lru] = c->e[--c->n];
		}
		e = &c->e[c->n++];
		memset(e, 0, sizeof(*e));
		copy_str(e->client, sizeof(e->client), client);
		copy_str(e->vm_id, sizeof(e->vm_id), vm->id);
	}
	if (e) {
		agent_base_unref(e->base);
		e->base = served;
		served = NULL;
		e->used_ns = vmw_now_ns();
	}
	pthread_mutex_unlock(&c->lock);
	agent_base_unref(served);

	if (!base)
		base = agent_base_ref(prev);
	out = agent_compat_diff(snap, base);
	agent_base_unref(base);
	agent_base_unref(prev);
	agent_snap_unref(snap);
	agent_vm_unref(vm);
	return out;
}
