/* SPDX-License-Identifier: MIT */
/*
 * http.c - the tenant API (libmicrohttpd, one thread per connection: a
 * request may wait for Keystone or an agent, and an event stream holds its
 * connection). OpenStack conventions: X-Auth-Token, X-OpenStack-Request-ID
 * on every answer, Nova fault bodies ({"itemNotFound": {"code": 404,
 * "message": ...}}), WWW-Authenticate: Keystone uri=... on 401, another
 * project's instance is a 404. See docs/API.md ("The controller").
 *
 * Tokens are never logged (nor the query string of /process_list, which
 * carries one).
 */
#include "controller/ctl.h"
#include "httpd/httpd.h"

#include <curl/curl.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <jansson.h>
#include <microhttpd.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>

#define MAX_BODY_BYTES (64u << 10)

/* One request. */
struct req {
	struct ctl *c;
	struct MHD_Connection *conn;
	const char *method, *url;
	char id[48];                   /* req-UUID */
	uint64_t t0;
	unsigned status;
	size_t body;
	bool have_creds;
	struct ctl_creds creds;
};

/* ------------------------------------------------------------ replies */

static enum MHD_Result send_response(struct req *q, unsigned code, struct MHD_Response *r, const char *h1,
				     const char *v1)
{
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-OpenStack-Request-ID", q->id);
	if (h1)
		MHD_add_response_header(r, h1, v1);
	if (code >= 400)
		atomic_fetch_add(&q->c->errors_total, 1);
	q->status = code;
	ret = MHD_queue_response(q->conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_buf(struct req *q, unsigned code, const char *ctype, char *body, size_t len,
				 const char *h1, const char *v1)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	return send_response(q, code, r, h1, v1);
}

/* Takes the reference to j. */
static enum MHD_Result reply_json(struct req *q, unsigned code, json_t *j, const char *h1, const char *v1)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		return MHD_NO;
	return reply_buf(q, code, "application/json", s, strlen(s), h1, v1);
}

/* Nova's fault names (nova/api/openstack/wsgi.py). */
static const char *fault_name(unsigned code)
{
	switch (code) {
	case 400: return "badRequest";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "itemNotFound";
	case 405: return "badMethod";
	case 413: return "overLimit";
	case 503: return "serviceUnavailable";
	default: return "computeFault";
	}
}

static enum MHD_Result fault_h(struct req *q, unsigned code, const char *h1, const char *v1, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static enum MHD_Result fault_h(struct req *q, unsigned code, const char *h1, const char *v1, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_json(q, code, json_pack("{s:{s:i, s:s}}", fault_name(code), "code", (int)code, "message", msg),
			  h1, v1);
}

#define fault(q, code, ...) fault_h(q, code, NULL, NULL, __VA_ARGS__)
#define unavailable(q, ...) fault_h(q, 503, MHD_HTTP_HEADER_RETRY_AFTER, "5", __VA_ARGS__)

static void request_id(char *buf, size_t size)
{
	uint8_t b[16];
	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		memset(b, 0, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(buf, size, "req-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static const char *arg(struct req *q, const char *k)
{
	return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, k);
}

static bool arg_true(struct req *q, const char *k)
{
	const char *v = arg(q, k);
	return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"));
}

static void public_url(struct req *q, char *buf, size_t size)
{
	const struct ctl_config *cfg = &q->c->cfg;
	const char *host = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (cfg->public_url)
		snprintf(buf, size, "%s", cfg->public_url);
	else
		snprintf(buf, size, "%s://%s", cfg->tls_cert ? "https" : "http",
			 host && !strpbrk(host, "\"<> \\") ? host : cfg->listen);
}

/* ------------------------------------------------------------ authentication */

/* 0: q->creds valid for the tenant API; else the reply was queued into *ret. */
static int authenticate(struct req *q, const char *token, enum MHD_Result *ret)
{
	struct ctl *c = q->c;
	char www[600];
	const char *why;

	snprintf(www, sizeof(www), "Keystone uri=\"%s\"", c->cfg.keystone_public_url);
	if (!token || !*token) {
		*ret = fault_h(q, 401, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www,
			       "Authentication required: send a Keystone token in X-Auth-Token");
		return -1;
	}
	switch (ctl_tokcache_get(c->tokens, token, vmw_wall_ns(), ctl_keystone_validate, c->ks, &q->creds)) {
	case CTL_AUTH_OK:
		break;
	case CTL_AUTH_INVALID:
		*ret = fault_h(q, 401, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www,
			       "The request you have made requires authentication (the token is invalid, expired "
			       "or revoked).");
		return -1;
	default:
		atomic_fetch_add(&c->unavailable_total, 1);
		*ret = unavailable(q, "The identity service cannot validate the token now: try again later.");
		return -1;
	}
	if ((why = ctl_creds_refusal(&q->creds))) {
		atomic_fetch_add(&c->denied_total, 1);
		*ret = fault(q, 403, "%s", why);
		return -1;
	}
	q->have_creds = true;
	return 0;
}

/* May these credentials see an instance of project `owner`? */
static bool visible(struct req *q, const char *owner, bool all_projects)
{
	const struct ctl_policy *p = q->c->policy;
	if (all_projects && ctl_policy_check(p, CTL_RULE_ALL_PROJECTS, &q->creds, owner))
		return true;
	/* An instance without Nova metadata has no owner: never a tenant's. */
	return *owner && ctl_policy_check(p, CTL_RULE_SERVER_READ, &q->creds, owner);
}

/* ------------------------------------------------------------ version documents */

static json_t *version_json(struct req *q)
{
	char base[400], self[450];
	public_url(q, base, sizeof(base));
	snprintf(self, sizeof(self), "%s/v1/", base);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}", "id", "v1.0",
			 "status", "CURRENT", "version", "", "min_version", "", "updated", "2026-12-01T00:00:00Z",
			 "links", "rel", "self", "href", self, "media-types", "base", "application/json", "type",
			 "application/vnd.openstack.vm-process-monitor+json;version=1");
}

static enum MHD_Result serve_versions(struct req *q, bool v1)
{
	json_t *v = version_json(q);
	if (v1)
		return reply_json(q, 200, json_pack("{s:o}", "version", v), NULL, NULL);
	return reply_json(q, 200, json_pack("{s:[o]}", "versions", v), NULL, NULL);
}

static enum MHD_Result serve_healthz(struct req *q);
static enum MHD_Result serve_metrics(struct req *q);

/* ------------------------------------------------------------ servers */

/* What a tenant sees of an agent's VM object. */
static json_t *server_json(struct req *q, const char *uuid, const json_t *vm, const char *host, bool host_up)
{
	const json_t *nova = json_object_get(vm, "nova"), *mon = json_object_get(vm, "monitoring");
	char base[400], self[500];
	const char *status = host_up ? json_string_value(json_object_get(mon, "status")) : "unreachable";
	json_t *s;

	public_url(q, base, sizeof(base));
	snprintf(self, sizeof(self), "%s/v1/servers/%s", base, uuid);
	s = json_pack("{s:s, s:O, s:O, s:O, s:s, s:O, s:[{s:s, s:s}]}", "id", uuid,
		      "name", json_object_get(nova, "instance_name") ? json_object_get(nova, "instance_name") : json_null(),
		      "project_id", json_object_get(nova, "project_id") ? json_object_get(nova, "project_id") : json_null(),
		      "nova", nova ? nova : json_null(), "status", status ? status : "unknown",
		      "monitoring", mon ? mon : json_null(), "links", "rel", "self", "href", self);
	if (!s)
		return NULL;
	json_object_set_new(s, "host_reachable", json_boolean(host_up));
	if (ctl_policy_check(q->c->policy, CTL_RULE_HOST_ATTR, &q->creds, NULL)) {
		json_object_set_new(s, "OS-EXT-SRV-ATTR:host", json_string(host));
		json_object_set(s, "OS-EXT-SRV-ATTR:instance_name", json_object_get(vm, "name"));
	}
	return s;
}

struct list_ctx {
	struct req *q;
	bool all_projects;
	json_t *servers;
	json_t *hosts;                 /* admin only */
	unsigned unreachable;
};

static void list_fn(void *opaque, const struct ctl_host *hosts, size_t n, uint64_t now)
{
	struct list_ctx *l = opaque;

	for (size_t h = 0; h < n; h++) {
		bool up = hosts[h].state == CTL_HOST_UP;
		bool any = false;
		for (size_t i = 0; i < hosts[h].nvms; i++) {
			const struct ctl_vm *v = &hosts[h].vms[i];
			struct ctl_where w;
			if (!visible(l->q, v->project_id, l->all_projects))
				continue;
			/* An instance on two hosts (migration) is listed once, from its best host. */
			if (ctl_index_find(hosts, n, v->uuid, &w) && w.vm != v)
				continue;
			json_array_append_new(l->servers, server_json(l->q, v->uuid, v->obj, hosts[h].cfg.name, up));
			any = true;
		}
		if (!up && (any || hosts[h].state == CTL_HOST_DOWN))
			l->unreachable++;
		if (l->hosts)
			json_array_append_new(l->hosts, json_pack("{s:s, s:s, s:o, s:i, s:b, s:I}", "name",
				hosts[h].cfg.name, "state", up ? "up" : hosts[h].state == CTL_HOST_DOWN ? "down" : "unknown",
				"error", hosts[h].error[0] ? json_string(hosts[h].error) : json_null(),
				"failures", (int)hosts[h].failures, "breaker_open", ctl_host_breaker_open(&hosts[h], now),
				"instances", (json_int_t)hosts[h].nvms));
	}
}

static enum MHD_Result serve_list(struct req *q)
{
	struct list_ctx l = { .q = q, .all_projects = arg_true(q, "all_projects"), .servers = json_array() };
	bool admin_hosts = ctl_policy_check(q->c->policy, CTL_RULE_HOST_ATTR, &q->creds, NULL);

	if (!ctl_policy_check(q->c->policy, CTL_RULE_SERVER_LIST, &q->creds, q->creds.project_id)) {
		json_decref(l.servers);
		return fault(q, 403, "Policy doesn't allow %s to be performed.", CTL_RULE_SERVER_LIST);
	}
	if (l.all_projects && !ctl_policy_check(q->c->policy, CTL_RULE_ALL_PROJECTS, &q->creds, NULL)) {
		json_decref(l.servers);
		return fault(q, 403, "Policy doesn't allow %s to be performed.", CTL_RULE_ALL_PROJECTS);
	}
	if (admin_hosts)
		l.hosts = json_array();
	ctl_index_with(q->c->index, list_fn, &l);
	json_t *j = json_pack("{s:o, s:b, s:i}", "servers", l.servers, "incomplete", l.unreachable > 0,
			      "unreachable_hosts", (int)l.unreachable);
	if (l.hosts)
		json_object_set_new(j, "hosts", l.hosts);
	return reply_json(q, 200, j, NULL, NULL);
}

/* Where uuid is, copied out of the index. */
struct found {
	bool found, up, breaker;
	char host[64], url[256], project[72];
	json_t *vm;
	const char *uuid;
};

static void find_fn(void *opaque, const struct ctl_host *hosts, size_t n, uint64_t now)
{
	struct found *f = opaque;
	struct ctl_where w;

	if (!(f->found = ctl_index_find(hosts, n, f->uuid, &w)))
		return;
	f->up = w.host_up;
	f->breaker = ctl_host_breaker_open(&hosts[w.host], now);
	snprintf(f->host, sizeof(f->host), "%s", hosts[w.host].cfg.name);
	snprintf(f->url, sizeof(f->url), "%s", hosts[w.host].cfg.url);
	snprintf(f->project, sizeof(f->project), "%s", w.vm->project_id);
	f->vm = json_incref(w.vm->obj);
}

static bool uuid_like(const char *s)
{
	return strlen(s) == 36 && strspn(s, "0123456789abcdefABCDEF-") == 36;
}

/* Find and authorise; 0 with f filled, or the reply queued into *ret. */
static int locate(struct req *q, const char *uuid, bool all_projects, struct found *f, enum MHD_Result *ret)
{
	memset(f, 0, sizeof(*f));
	f->uuid = uuid;
	if (uuid_like(uuid)) {
		ctl_index_with(q->c->index, find_fn, f);
		if (!f->found) {
			ctl_index_refresh_miss(q->c->index);
			ctl_index_with(q->c->index, find_fn, f);
		}
	}
	if (!f->found || !visible(q, f->project, all_projects)) {
		json_decref(f->vm);
		f->vm = NULL;
		*ret = fault(q, 404, "Instance %.64s could not be found.", uuid);
		return -1;
	}
	if (!f->up || f->breaker) {
		json_decref(f->vm);
		f->vm = NULL;
		atomic_fetch_add(&q->c->unavailable_total, 1);
		*ret = unavailable(q, "The host of instance %s does not answer now: try again later.", uuid);
		return -1;
	}
	return 0;
}

/* Append ?k=v&... for the allowed parameters that are present. */
static void forward_args(struct req *q, const char *const *allowed, char *buf, size_t size)
{
	size_t n = strlen(buf);
	char sep = '?';

	for (size_t i = 0; allowed[i]; i++) {
		const char *v = arg(q, allowed[i]);
		char *e;
		if (!v || !(e = curl_easy_escape(NULL, v, 0)))
			continue;
		n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%c%s=%s", sep, allowed[i], e);
		sep = '&';
		curl_free(e);
	}
}

/* An agent's error answer as a fault, or a network failure as 503. */
static enum MHD_Result agent_failed(struct req *q, struct found *f, struct ctl_fetch *r)
{
	json_t *j;
	const char *msg;
	enum MHD_Result ret;

	if (r->status == 0 || r->status >= 500) {
		if (r->status == 0)
			ctl_index_report(q->c->index, f->host, false, r->error);
		atomic_fetch_add(&q->c->unavailable_total, 1);
		j = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
		msg = json_string_value(json_object_get(j, "error"));
		ret = fault_h(q, 503, MHD_HTTP_HEADER_RETRY_AFTER, r->retry_after[0] ? r->retry_after : "5",
			      "Instance %s cannot be read now: %s", f->uuid,
			      msg ? msg : r->status ? "its host's agent failed" : "its host does not answer");
		json_decref(j);
		return ret;
	}
	j = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	msg = json_string_value(json_object_get(j, "error"));
	if (r->status == 404)
		ret = fault(q, 404, "%s", msg ? msg : "Not found.");
	else
		ret = fault(q, r->status == 400 ? 400 : 502, "%s", msg ? msg : "The agent refused the request.");
	json_decref(j);
	return ret;
}

/*
 * The agent's document with its top-level "vm" object replaced by the
 * instance's identity, without parsing the rest (a process table is tens of
 * KiB: parsing and printing it again cost more than the request to the
 * agent). The scan knows strings and nesting; NULL when the document does
 * not have the expected shape.
 */
static char *splice_vm(const char *body, size_t len, struct found *f, size_t *outlen)
{
	static const char key[] = "\"vm\":{";
	const char *end = body + len, *k = NULL, *v = NULL, *p;
	const json_t *name = json_object_get(json_object_get(f->vm, "nova"), "instance_name");
	int depth = 0;
	bool str = false;
	char *id, *out;

	for (p = body; p < end; p++) {
		if (str) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				str = false;
		} else if (depth == 1 && !k && (size_t)(end - p) >= sizeof(key) - 1 && !memcmp(p, key, sizeof(key) - 1)) {
			k = p;
			p += sizeof(key) - 2;   /* at the '{' */
			depth++;
		} else if (*p == '"') {
			str = true;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if ((*p == '}' || *p == ']') && --depth == 1 && k && !v) {
			v = p + 1;      /* one past the vm object */
		}
	}
	if (!k || !v)
		return NULL;
	json_t *j = json_pack("{s:s, s:s}", "id", f->uuid, "name", json_is_string(name) ? json_string_value(name) : f->uuid);
	id = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!id)
		return NULL;
	*outlen = (size_t)(k - body) + 5 + strlen(id) + (size_t)(end - v);
	if ((out = malloc(*outlen + 1)))
		snprintf(out, *outlen + 1, "%.*s\"vm\":%s%.*s", (int)(k - body), body, id, (int)(end - v), v);
	free(id);
	return out;
}

static enum MHD_Result proxy_json(struct req *q, struct found *f, const char *path, bool detail)
{
	struct ctl_fetch r;
	json_t *j;

	ctl_agent_fetch(q->c->agents, f->url, path, q->id, NULL, &r);
	if (r.status != 200) {
		enum MHD_Result ret = agent_failed(q, f, &r);
		ctl_fetch_free(&r);
		return ret;
	}
	ctl_index_report(q->c->index, f->host, true, NULL);
	if (!detail) {
		size_t len;
		char *out = r.body ? splice_vm(r.body, r.len, f, &len) : NULL;
		ctl_fetch_free(&r);
		if (!out)
			return fault(q, 502, "The agent of instance %s sent an unreadable answer.", f->uuid);
		return reply_buf(q, 200, "application/json", out, len, NULL, NULL);
	}
	j = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
	ctl_fetch_free(&r);
	if (!j)
		return fault(q, 502, "The agent of instance %s sent an unreadable answer.", f->uuid);
	json_t *s = server_json(q, f->uuid, j, f->host, true);
	json_object_set(s, "summary", json_object_get(j, "summary"));
	json_object_set(s, "history", json_object_get(j, "history"));
	json_decref(j);
	return reply_json(q, 200, json_pack("{s:o}", "server", s), NULL, NULL);
}

static enum MHD_Result proxy_stream(struct req *q, struct found *f, const char *path)
{
	struct ctl_fetch r;
	int fd;
	struct MHD_Response *resp;

	ctl_agent_stream(q->c->agents, f->url, path, q->id,
			 MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Last-Event-ID"), &r, &fd);
	if (r.status != 200) {
		enum MHD_Result ret = agent_failed(q, f, &r);
		ctl_fetch_free(&r);
		return ret;
	}
	if (!(resp = MHD_create_response_from_pipe(fd))) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return send_response(q, 200, resp, NULL, NULL);
}

static const char *const proc_args[] = { "sort", "limit", "fields", NULL };
static const char *const event_args[] = { "since", "limit", NULL };
static const char *const no_args[] = { NULL };

static enum MHD_Result serve_server(struct req *q, char **seg, size_t nseg)
{
	struct found f;
	enum MHD_Result ret;
	char path[600];
	const char *const *args = no_args;
	bool stream = false, detail = false;

	if (locate(q, seg[2], arg_true(q, "all_projects"), &f, &ret) < 0)
		return ret;
	snprintf(path, sizeof(path), "/v1/vms/%s", f.uuid);
	if (nseg == 3) {
		detail = true;
	} else if (nseg == 4 && !strcmp(seg[3], "processes")) {
		strcat(path, "/processes");
		args = proc_args;
	} else if (nseg == 5 && !strcmp(seg[3], "processes") && strspn(seg[4], "0123456789") == strlen(seg[4]) &&
		   strlen(seg[4]) <= 10) {
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "/processes/%s", seg[4]);
	} else if (nseg == 4 && !strcmp(seg[3], "events")) {
		strcat(path, "/events");
		args = event_args;
	} else if (nseg == 4 && !strcmp(seg[3], "stream")) {
		strcat(path, "/stream");
		args = proc_args;
		stream = true;
	} else {
		json_decref(f.vm);
		return fault(q, 404, "No such resource (see docs/API.md).");
	}
	forward_args(q, args, path, sizeof(path));
	ret = stream ? proxy_stream(q, &f, path) : proxy_json(q, &f, path, detail);
	json_decref(f.vm);
	return ret;
}

/* GET /process_list?openstack_token=T&tenant_id=P&instance_id=U (the original controller's API). */
static enum MHD_Result serve_process_list(struct req *q)
{
	const char *tenant = arg(q, "tenant_id"), *instance = arg(q, "instance_id");
	struct found f;
	struct ctl_fetch r;
	enum MHD_Result ret;
	char path[200], client[160];
	uint8_t h[32];

	if (!q->c->cfg.compat_process_list)
		return fault(q, 404, "No such resource (compat_process_list is off).");
	if (authenticate(q, arg(q, "openstack_token"), &ret) < 0)
		return ret;
	if (!tenant || !instance)
		return fault(q, 400, "tenant_id and instance_id are required.");
	if (strcmp(tenant, q->creds.project_id))
		return fault(q, 403, "tenant_id is not the project of the token.");
	if (locate(q, instance, false, &f, &ret) < 0)
		return ret;
	/* The agent keeps New/Ended state per client: one per user and project. */
	snprintf(client, sizeof(client), "%s/%s", q->creds.user_id, q->creds.project_id);
	gnutls_hash_fast(GNUTLS_DIG_SHA256, client, strlen(client), h);
	snprintf(client, sizeof(client), "ctl-%02x%02x%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5],
		 h[6], h[7]);
	snprintf(path, sizeof(path), "/v1/instances/%s/processes", f.uuid);
	ctl_agent_fetch(q->c->agents, f.url, path, q->id, client, &r);
	if (r.status == 200) {
		ctl_index_report(q->c->index, f.host, true, NULL);
		ret = reply_buf(q, 200, "application/json", TAKE_PTR(r.body), r.len, NULL, NULL);
	} else {
		ret = agent_failed(q, &f, &r);
	}
	ctl_fetch_free(&r);
	json_decref(f.vm);
	return ret;
}

/* ------------------------------------------------------------ routing */

static size_t split(char *path, char **seg, size_t max)
{
	char *save = NULL;
	size_t n = 0;
	for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return max + 1;
		seg[n++] = p;
	}
	return n;
}

static enum MHD_Result route(struct req *q)
{
	char path[1024], *seg[6];
	size_t nseg;
	enum MHD_Result ret;
	bool get = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");

	if (!get)
		return fault_h(q, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", "Method %.16s is not allowed.", q->method);
	if (strlen(q->url) >= sizeof(path))
		return fault(q, 400, "URL too long.");
	snprintf(path, sizeof(path), "%s", q->url);
	nseg = split(path, seg, ARRAY_SIZE(seg));
	if (nseg == 0)
		return serve_versions(q, false);
	if (nseg == 1 && !strcmp(seg[0], "v1"))
		return serve_versions(q, true);
	if (nseg == 1 && !strcmp(seg[0], "healthz"))
		return serve_healthz(q);
	if (nseg == 1 && !strcmp(seg[0], "process_list"))
		return serve_process_list(q);
	if (authenticate(q, MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "X-Auth-Token"), &ret) < 0)
		return ret;
	if (nseg == 1 && !strcmp(seg[0], "metrics"))
		return serve_metrics(q);
	if (nseg >= 2 && nseg <= 5 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "servers"))
		return nseg == 2 ? serve_list(q) : serve_server(q, seg, nseg);
	return fault(q, 404, "No such resource (see docs/API.md).");
}

/* The headers are in: a request begins. */
static void *on_begin(void *cls, struct MHD_Connection *conn, const char *url, const char *method)
{
	struct req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->c = cls;
	q->conn = conn;
	q->method = method;
	q->url = url;
	q->t0 = vmw_now_ns();
	request_id(q->id, sizeof(q->id));
	return q;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  void *req)
{
	struct req *q = req;

	(void)conn;
	(void)url;
	(void)method;
	atomic_fetch_add(&q->c->requests_total, 1);
	return route(q);
}

static void on_done(void *cls, void *req)
{
	struct req *q = req;

	(void)cls;
	/* The path only: a query string may hold a token (/process_list). */
	ctl_log(CTL_LOG_INFO, "%s %s %u %.1fms %s%s%s", q->method, q->url, q->status,
		(double)(vmw_now_ns() - q->t0) / 1e6, q->id, q->have_creds ? " project=" : "",
		q->have_creds ? q->creds.project_id : "");
	explicit_bzero(&q->creds, sizeof(q->creds));
	free(q);
}

/* ------------------------------------------------------------ health and metrics */

struct health {
	unsigned up, total;
};

static void health_fn(void *opaque, const struct ctl_host *hosts, size_t n, uint64_t now)
{
	struct health *h = opaque;
	(void)now;
	h->total = (unsigned)n;
	for (size_t i = 0; i < n; i++)
		h->up += hosts[i].state == CTL_HOST_UP;
}

static enum MHD_Result serve_healthz(struct req *q)
{
	struct health h = { 0 };
	ctl_index_with(q->c->index, health_fn, &h);
	return reply_json(q, 200, json_pack("{s:s, s:f, s:{s:i, s:i}}", "status", "ok", "uptime_seconds",
					    (double)(vmw_wall_ns() - q->c->start_wall_ns) / 1e9, "agents", "total",
					    (int)h.total, "up", (int)h.up), NULL, NULL);
}

static void metrics_hosts(void *opaque, const struct ctl_host *hosts, size_t n, uint64_t now)
{
	FILE *f = opaque;
	static const char *names[] = { "up", "instances", "poll_seconds", "breaker_open" };
	for (size_t m = 0; m < ARRAY_SIZE(names); m++) {
		fprintf(f, "# TYPE vmwatch_controller_agent_%s gauge\n", names[m]);
		for (size_t i = 0; i < n; i++) {
			double v = m == 0 ? hosts[i].state == CTL_HOST_UP : m == 1 ? (double)hosts[i].nvms
				 : m == 2 ? hosts[i].poll_seconds : ctl_host_breaker_open(&hosts[i], now);
			fprintf(f, "vmwatch_controller_agent_%s{host=\"%s\"} %g\n", names[m], hosts[i].cfg.name, v);
		}
	}
}

static void metric(FILE *f, const char *name, const char *type, double v)
{
	fprintf(f, "# TYPE vmwatch_controller_%s %s\nvmwatch_controller_%s %.17g\n", name, type, name, v);
}

static enum MHD_Result serve_metrics(struct req *q)
{
	struct ctl *c = q->c;
	struct ctl_tokcache_stats ts;
	struct ctl_keystone_stats ks;
	struct ctl_index_stats is;
	struct vmw_httpd_stats hs;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (!ctl_policy_check(c->policy, CTL_RULE_METRICS, &q->creds, NULL))
		return fault(q, 403, "Policy doesn't allow %s to be performed.", CTL_RULE_METRICS);
	if (!(f = open_memstream(&buf, &len)))
		return MHD_NO;
	ctl_tokcache_stats(c->tokens, &ts);
	ctl_keystone_stats(c->ks, &ks);
	ctl_index_stats(c->index, &is);
	metric(f, "requests_total", "counter", (double)atomic_load(&c->requests_total));
	metric(f, "errors_total", "counter", (double)atomic_load(&c->errors_total));
	metric(f, "denied_total", "counter", (double)atomic_load(&c->denied_total));
	metric(f, "unavailable_total", "counter", (double)atomic_load(&c->unavailable_total));
	vmw_httpd_stats(c->srv, &hs);
	metric(f, "http_connections_total", "counter", (double)hs.connections);
	fprintf(f, "# TYPE vmwatch_controller_http_dropped_connections_total counter\n"
		"vmwatch_controller_http_dropped_connections_total{reason=\"header_timeout\"} %llu\n",
		(unsigned long long)hs.header_timeouts);
	metric(f, "token_cache_hits_total", "counter", (double)ts.hits);
	metric(f, "token_cache_negative_hits_total", "counter", (double)ts.negative_hits);
	metric(f, "token_cache_misses_total", "counter", (double)ts.misses);
	metric(f, "token_cache_waits_total", "counter", (double)ts.waits);
	metric(f, "token_cache_entries", "gauge", (double)ts.entries);
	metric(f, "token_validations_total", "counter", (double)ts.validations);
	metric(f, "keystone_requests_total", "counter", (double)ks.requests);
	metric(f, "keystone_failures_total", "counter", (double)ks.failures);
	metric(f, "keystone_service_logins_total", "counter", (double)ks.service_logins);
	metric(f, "keystone_last_request_seconds", "gauge", ks.last_seconds);
	metric(f, "index_polls_total", "counter", (double)is.polls);
	metric(f, "index_poll_failures_total", "counter", (double)is.poll_failures);
	metric(f, "index_refreshes_total", "counter", (double)is.refreshes);
	metric(f, "index_miss_refreshes_total", "counter", (double)is.miss_refreshes);
	metric(f, "index_last_refresh_seconds", "gauge", is.last_refresh_seconds);
	ctl_index_with(c->index, metrics_hosts, f);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return MHD_NO;
	}
	return reply_buf(q, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len, NULL, NULL);
}

/* ------------------------------------------------------------ the daemon */

static void http_log(void *cls, int level, const char *msg)
{
	(void)cls;
	ctl_log(level == LOG_DEBUG ? CTL_LOG_DEBUG : level == LOG_WARNING ? CTL_LOG_WARNING : CTL_LOG_INFO,
		"http: %s", msg);
}

int ctl_http_start(struct ctl *c, struct vmw_error *err)
{
	static const struct vmw_httpd_ops ops = {
		.begin = on_begin, .request = on_request, .done = on_done, .log = http_log,
	};
	bool tls = c->cfg.tls_cert != NULL;
	int r;

	if (tls && ((r = vmw_read_pem(c->cfg.tls_cert, &c->tls_cert_pem, err)) < 0 ||
		    (r = vmw_read_pem(c->cfg.tls_key, &c->tls_key_pem, err)) < 0))
		return r;
	/* A thread per connection: a request may wait for Keystone or an agent,
	 * and an event stream holds its connection. One client cannot take every
	 * connection (and thread) before it is authenticated: the per-address
	 * limit and the header deadline keep the others reachable. */
	const struct vmw_httpd_config hc = {
		.listen = c->cfg.listen, .thread_per_connection = true, .max_connections = c->cfg.max_connections,
		.max_connections_per_ip = c->cfg.max_connections_per_ip, .header_timeout_s = c->cfg.header_timeout_s,
		.idle_timeout_s = c->cfg.idle_timeout_s, .max_body_bytes = MAX_BODY_BYTES,
		.tls_cert = c->tls_cert_pem, .tls_key = c->tls_key_pem,
	};
	if ((r = vmw_httpd_start(&hc, &ops, c, &c->srv, err)) < 0)
		return r;
	ctl_log(CTL_LOG_NOTICE, "listening on %s", vmw_httpd_url(c->srv));
	return 0;
}

void ctl_http_stop(struct ctl *c)
{
	vmw_httpd_stop(c->srv);
	c->srv = NULL;
	free(c->tls_cert_pem);
	free(c->tls_key_pem);
	c->tls_cert_pem = c->tls_key_pem = NULL;
}
