/* SPDX-License-Identifier: MIT */
/*
 * query.c - query parameters per route, process filters and lookup by Nova
 * instance name (query.h).
 */
#include "agent/query.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

struct params_check {
	const char *const *allowed;
	const char *bad;
};

static enum MHD_Result check_one(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct params_check *pc = cls;
	(void)kind;
	(void)value;
	for (const char *const *a = pc->allowed; *a; a++)
		if (!strcmp(key, *a))
			return MHD_YES;
	pc->bad = key;
	return MHD_NO;
}

int agent_params_check(struct MHD_Connection *c, const char *route, const char *const *allowed,
		       char *err, size_t errsize)
{
	struct params_check pc = { allowed, NULL };
	size_t n = 0;

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_one, &pc);
	if (!pc.bad)
		return 0;
	n = (size_t)snprintf(err, errsize, "unknown query parameter '%.64s' (%s takes ", pc.bad, route);
	if (!allowed[0])
		snprintf(err + MIN(n, errsize), errsize - MIN(n, errsize), "none)");
	for (const char *const *a = allowed; *a && n < errsize; a++)
		n += (size_t)snprintf(err + n, errsize - n, "%s%s", *a, a[1] ? ", " : ")");
	/* A key from the client: no control bytes into logs or answers. */
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -EINVAL;
}

/* Each comma-separated item of list (at most max, each < size bytes). */
static int items(const char *list, const char *param, size_t max, size_t size,
		 int (*fn)(void *arg, const char *item, size_t len), void *arg, char *err, size_t errsize)
{
	size_t n = 0;
	for (const char *s = list; ; s++) {
		size_t len = strcspn(s, ",");
		if (!len || len >= size || n == max) {
			snprintf(err, errsize, "bad parameter '%s': '%.64s' (a comma-separated list of at most "
				 "%zu non-empty items)", param, list, max);
			return -EINVAL;
		}
		if (fn(arg, s, len) < 0) {
			snprintf(err, errsize, "bad parameter '%s': '%.*s' %s", param, (int)MIN(len, 64), s,
				 !strcmp(param, "user") ? "is not a numeric uid"
							: "is not a process state letter (R S D T t X Z P I)");
			return -EINVAL;
		}
		n++;
		s += len;
		if (!*s)
			return 0;
	}
}

static int add_uid(void *arg, const char *s, size_t len)
{
	struct agent_filter *f = arg;
	char buf[16];
	uint64_t v;
	snprintf(buf, sizeof(buf), "%.*s", (int)len, s);
	if (vmw_parse_u64(buf, &v) < 0 || v > UINT32_MAX)
		return -EINVAL;
	f->uids[f->nuids++] = (uint32_t)v;
	return 0;
}

static int add_name(void *arg, const char *s, size_t len)
{
	struct agent_filter *f = arg;
	snprintf(f->names[f->nnames++], sizeof(f->names[0]), "%.*s", (int)len, s);
	return 0;
}

static int add_state(void *arg, const char *s, size_t len)
{
	struct agent_filter *f = arg;
	size_t n = strlen(f->states);
	if (len != 1 || !strchr("RSDTtXZPI", s[0]))
		return -EINVAL;
	f->states[n] = s[0];
	f->states[n + 1] = '\0';
	return 0;
}

int agent_filter_parse(struct agent_filter *f, const char *user, const char *name, const char *state,
		       const char *match, char *err, size_t errsize)
{
	memset(f, 0, sizeof(*f));
	if ((user && items(user, "user", ARRAY_SIZE(f->uids), 11, add_uid, f, err, errsize) < 0) ||
	    (name && items(name, "name", ARRAY_SIZE(f->names), sizeof(f->names[0]), add_name, f, err, errsize) < 0) ||
	    (state && items(state, "state", ARRAY_SIZE(f->states) - 1, 2, add_state, f, err, errsize) < 0))
		return -EINVAL;
	if (match && (!*match || strlen(match) >= sizeof(f->match))) {
		snprintf(err, errsize, "bad parameter 'match': 1 to %zu characters", sizeof(f->match) - 1);
		return -EINVAL;
	}
	if (match) {
		snprintf(f->match, sizeof(f->match), "%s", match);
		f->match_number = vmw_parse_u64(match, &f->match_value) == 0;
	}
	f->any = f->nuids || f->nnames || f->states[0] || f->match[0];
	return 0;
}

static bool text_has(const char *s, const char *needle)
{
	return s && strcasestr(s, needle);
}

/* ?match: the web page's filter box, on the server (so a filtered page of
 * rows stays a page). */
static bool match_text(const struct agent_filter *f, const struct vmw_proc *p)
{
	if (f->match_number)
		return (uint64_t)(uint32_t)p->pid == f->match_value || p->uid == f->match_value ||
		       p->euid == f->match_value;
	if (text_has(p->comm, f->match) || text_has(p->user, f->match))
		return true;
	for (char **a = p->cmdline; a && *a; a++)
		if (text_has(*a, f->match))
			return true;
	return false;
}

bool agent_filter_match(const struct agent_filter *f, const struct vmw_proc *p)
{
	bool ok;

	if (f->match[0] && !match_text(f, p))
		return false;
	ok = !f->nuids && !f->nnames;
	for (size_t i = 0; i < f->nuids && !ok; i++)
		ok = f->uids[i] == p->euid;
	if (f->nuids && !ok)
		return false;
	ok = !f->nnames;
	for (size_t i = 0; i < f->nnames && !ok; i++)
		ok = !strcmp(f->names[i], p->comm);
	if (!ok)
		return false;
	return !f->states[0] || strchr(f->states, p->state);
}

json_t *agent_filter_apply(json_t *o, struct agent_vm *vm, const struct agent_snap *s,
			   const struct agent_query *q, const struct agent_filter *f)
{
	const struct vmw_frame *fr = s->frame;
	struct vmw_frame sub = *fr;
	struct agent_snap ss = *s;
	struct vmw_sample *keep;
	json_t *part;

	if (!o || !f->any)
		return o;
	/* A shallow copy of the frame with the matching samples only. */
	if (!(keep = malloc((fr->nprocs + 1) * sizeof(*keep))))
		return o;
	sub.nprocs = 0;
	for (size_t i = 0; i < fr->nprocs; i++)
		if (agent_filter_match(f, &fr->procs[i].proc))
			keep[sub.nprocs++] = fr->procs[i];
	sub.procs = keep;
	ss.frame = &sub;
	part = agent_procs_json(vm, &ss, q);
	json_object_set(o, "processes", json_object_get(part, "processes"));
	json_object_set_new(o, "matched", json_integer((json_int_t)sub.nprocs));
	json_decref(part);
	free(keep);
	return o;
}

struct agent_vm *agent_vm_lookup_nova(struct agent *a, const char *name, bool *ambiguous)
{
	struct agent_vm **vms, *found = NULL;
	size_t n = agent_vms_get(a, &vms), hits = 0;

	*ambiguous = false;
	for (size_t i = 0; i < n; i++) {
		bool same;
		pthread_mutex_lock(&vms[i]->lock);
		same = vms[i]->dom.nova.present && vms[i]->dom.nova.instance_name[0] &&
		       !strcmp(vms[i]->dom.nova.instance_name, name);
		pthread_mutex_unlock(&vms[i]->lock);
		if (same && hits++ == 0)
			found = vms[i];
	}
	if (hits == 1)
		agent_vm_ref(found);
	else
		found = NULL;
	*ambiguous = hits > 1;
	agent_vms_put(vms, n);
	return found;
}

json_t *agent_filtered_json(struct agent_vm *vm, const struct agent_snap *s, const struct agent_query *q,
			    const struct agent_filter *f, bool frame)
{
	struct agent_query base = *q;
	json_t *o;

	if (f->any)
		base.limit = 1;        /* the document around; its processes come below */
	o = frame ? agent_frame_json(vm, s, &base) : agent_procs_json(vm, s, &base);
	return agent_filter_apply(o, vm, s, q, f);
}

/* The query parameters of each route (docs/API.md). */
static const char *const none[] = { NULL };
static const char *const list_params[] = { "sort", "limit", "fields", "user", "name", "state", "match", NULL };
static const char *const event_params[] = { "since", "limit", NULL };
static const char *const compat_params[] = { "client", NULL };
static const char *const metrics_params[] = { "dialect", NULL };
static const char *const history_params[] = { "since", NULL };

const char *const *agent_route_params(char **seg, size_t nseg, const char **route)
{
	bool vms = nseg >= 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "vms");
	bool inst = nseg >= 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "instances");

	if (nseg == 1 && !strcmp(seg[0], "metrics"))
		return *route = "/metrics", metrics_params;
	if (vms && nseg == 2)
		return *route = "/v1/vms", none;
	if (vms && nseg == 3)
		return *route = "/v1/vms/{id}", history_params;
	if (vms && nseg == 4 && !strcmp(seg[3], "events"))
		return *route = "/v1/vms/{id}/events", event_params;
	if (vms && nseg == 4 && !strcmp(seg[3], "cgroups"))
		return *route = "/v1/vms/{id}/cgroups", none;
	if (vms && nseg == 4 && (!strcmp(seg[3], "processes") || !strcmp(seg[3], "stream")))
		return *route = !strcmp(seg[3], "stream") ? "/v1/vms/{id}/stream" : "/v1/vms/{id}/processes",
		       list_params;
	if (vms && nseg == 5)
		return *route = "/v1/vms/{id}/processes/{pid}", history_params;
	if (inst && nseg == 2)
		return *route = "/v1/instances", none;
	if (inst && nseg == 4)
		return *route = "/v1/instances/{id}/processes", compat_params;
	return NULL;               /* not a route: 404 */
}
