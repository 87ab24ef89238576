/* SPDX-License-Identifier: MIT */
/*
 * query.h - the API's query strings (query.c): which parameters each route
 * takes (anything else is a 400 naming it), the process filters ?user=,
 * ?name=, ?state= of /v1/vms/{id}/processes and /stream, and VMs found by
 * their OpenStack Nova instance name.
 */
#pragma once

#include "agent/agent_int.h"

#include <microhttpd.h>

/* Every query parameter of c is one of allowed (NULL-terminated). Else
 * -EINVAL with err: "unknown query parameter 'x' (ROUTE takes a, b)". */
int agent_params_check(struct MHD_Connection *c, const char *route, const char *const *allowed,
		       char *err, size_t errsize);

/* ?user=UID[,UID] (effective uid), ?name=COMM[,COMM], ?state=R[,S...]:
 * a process is listed when it matches every given filter. */
struct agent_filter {
	bool any;
	uint32_t uids[16];
	size_t nuids;
	char names[16][64];
	size_t nnames;
	char states[16];
	/* ?match=TEXT (the web page's filter box): a number is a pid or uid;
	 * else TEXT in the name, user name or command line, any case. */
	char match[128];
	bool match_number;
	uint64_t match_value;
};
int agent_filter_parse(struct agent_filter *f, const char *user, const char *name, const char *state,
		       const char *match, char *err, size_t errsize);
bool agent_filter_match(const struct agent_filter *f, const struct vmw_proc *p);
/* o is agent_procs_json() or agent_frame_json() of s: its "processes" are
 * replaced by those of s that pass f, sorted, limited and with the fields of
 * q. Returns o. */
json_t *agent_filter_apply(json_t *o, struct agent_vm *vm, const struct agent_snap *s,
			   const struct agent_query *q, const struct agent_filter *f);

/* agent_procs_json() (frame false) or agent_frame_json() of s, its
 * processes filtered by f. */
json_t *agent_filtered_json(struct agent_vm *vm, const struct agent_snap *s, const struct agent_query *q,
			    const struct agent_filter *f, bool frame);

/* The query parameters the route of path segments seg takes (NULL-terminated)
 * and the route's name for messages; NULL when the path is no route. */
const char *const *agent_route_params(char **seg, size_t nseg, const char **route);

/* The VM whose Nova instance (display) name is name, referenced, when
 * exactly one VM has it; NULL otherwise (*ambiguous set when several). */
struct agent_vm *agent_vm_lookup_nova(struct agent *a, const char *name, bool *ambiguous);
