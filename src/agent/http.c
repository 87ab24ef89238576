/* SPDX-License-Identifier: MIT */
/*
 * http.c - the HTTP front (libmicrohttpd, one thread per connection):
 * routing, bearer tokens, TLS, JSON replies, Server-Sent Events.
 * Handlers read published snapshots only; see docs/API.md.
 */
#include "agent/agent_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define SSE_KEEPALIVE_NS 15000000000ull
#define MAX_SEGMENTS 8

struct agent_http {
	struct MHD_Daemon *d;
	char *cert, *key;
};

/* ---------------------------------------------------------------- replies */

static enum MHD_Result reply(struct agent *a, struct MHD_Connection *c, unsigned code, const char *ctype,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode,
			     const char *h1, const char *v1)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (h1)
		MHD_add_response_header(r, h1, v1);
	if (code >= 400)
		atomic_fetch_add(&a->http_errors_total, 1);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* Takes the reference to j. */
static enum MHD_Result reply_json(struct agent *a, struct MHD_Connection *c, unsigned code, json_t *j,
				  const char *h1, const char *v1)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	size_t len;

	json_decref(j);
	if (!s) {
		static const char oom[] = "{\"error\":\"out of memory\",\"code\":500}";
		return reply(a, c, 500, "application/json", (void *)oom, sizeof(oom) - 1, MHD_RESPMEM_PERSISTENT,
			     NULL, NULL);
	}
	len = strlen(s);
	return reply(a, c, code, "application/json", s, len, MHD_RESPMEM_MUST_FREE, h1, v1);
}

static enum MHD_Result reply_error_h(struct agent *a, struct MHD_Connection *c, unsigned code,
				     const char *h1, const char *v1, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static enum MHD_Result reply_error_h(struct agent *a, struct MHD_Connection *c, unsigned code,
				     const char *h1, const char *v1, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_json(a, c, code, json_pack("{s:o, s:i}", "error", vmw_report_string(msg), "code", (int)code),
			  h1, v1);
}

#define reply_error(a, c, code, ...) reply_error_h(a, c, code, NULL, NULL, __VA_ARGS__)

/* ---------------------------------------------------------------- auth */

static bool ct_equal(const char *x, size_t xl, const char *y, size_t yl)
{
	volatile unsigned char d = xl != yl;
	for (size_t i = 0; i < xl && yl; i++)
		d |= (unsigned char)(x[i] ^ y[i % yl]);
	return !d;
}

static bool authorized(struct agent *a, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	bool ok = false;

	pthread_rwlock_rdlock(&a->live.lock);
	if (!a->live.ntokens) {
		ok = true;
	} else if (h && !strncasecmp(h, "Bearer ", 7)) {
		const char *t = h + 7;
		size_t tl;
		while (*t == ' ')
			t++;
		tl = strlen(t);
		while (tl && t[tl - 1] == ' ')
			tl--;
		for (size_t i = 0; i < a->live.ntokens; i++)      /* no early exit: constant time */
			ok |= ct_equal(t, tl, a->live.tokens[i], strlen(a->live.tokens[i]));
	}
	pthread_rwlock_unlock(&a->live.lock);
	return ok;
}

static void client_id(struct MHD_Connection *c, char *buf, size_t size)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Client-Id");
	const union MHD_ConnectionInfo *ci;

	if (!h)
		h = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "client");
	if (h && *h) {
		snprintf(buf, size, "id:%.150s", h);
		return;
	}
	snprintf(buf, size, "addr:?");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		char host[NI_MAXHOST];
		socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
									 : sizeof(struct sockaddr_in);
		if (getnameinfo(ci->client_addr, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) == 0)
			snprintf(buf, size, "addr:%.150s", host);
	}
}

/* ---------------------------------------------------------------- SSE */

struct sse {
	struct agent *a;
	struct agent_vm *vm;
	struct agent_query q;
	uint64_t last_seq;
	char *buf;
	size_t len, off;
	bool hello, ended;
};

static void sse_free(void *cls)
{
	struct sse *s = cls;
	agent_query_free(&s->q);
	agent_vm_unref(s->vm);
	free(s->buf);
	free(s);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse *s = cls;
	struct agent_vm *vm = s->vm;
	size_t n;

	(void)pos;
	while (s->off == s->len) {
		struct agent_snap *snap = NULL;
		bool removed = false, stopping = false;
		uint64_t deadline = vmw_now_ns() + SSE_KEEPALIVE_NS;
		struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ull),
				       .tv_nsec = (long)(deadline % 1000000000ull) };
		int r;

		free(s->buf);
		s->buf = NULL;
		s->len = s->off = 0;
		if (s->ended || atomic_load(&s->a->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!s->hello) {
			s->hello = true;
			r = asprintf(&s->buf, "retry: 5000\n\n");
			if (r < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			s->len = (size_t)r;
			break;
		}
		/* Wait for a snapshot newer than the last one sent (or keep-alive). */
		pthread_mutex_lock(&vm->lock);
		while (!(stopping = atomic_load(&s->a->stopping)) && !(removed = vm->removed) &&
		       (!vm->snap || vm->snap->seq <= s->last_seq))
			if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT)
				break;
		if (!stopping && !removed && vm->snap && vm->snap->seq > s->last_seq)
			snap = agent_snap_ref(vm->snap);
		pthread_mutex_unlock(&vm->lock);
		if (stopping)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (removed) {
			json_t *j = json_pack("{s:s, s:s}", "id", vm->id, "reason", "the VM stopped");
			char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
			json_decref(j);
			r = d ? asprintf(&s->buf, "event: gone\ndata: %s\n\n", d) : -1;
			free(d);
			s->ended = true;
		} else if (snap) {
			json_t *j = agent_frame_json(vm, snap, &s->q);
			char *d = json_dumps(j, JSON_COMPACT);
			json_decref(j);
			r = d ? asprintf(&s->buf, "id: %llu\nevent: frame\ndata: %s\n\n",
					 (unsigned long long)snap->seq, d) : -1;
			free(d);
			s->last_seq = snap->seq;
			agent_snap_unref(snap);
		} else {
			r = asprintf(&s->buf, ": keep-alive\n\n");
		}
		if (r < 0) {
			s->buf = NULL;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		s->len = (size_t)r;
	}
	n = MIN(max, s->len - s->off);
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static enum MHD_Result serve_stream(struct agent *a, struct MHD_Connection *c, struct agent_vm *vm,
				    struct agent_query *q)
{
	struct sse *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	enum MHD_Result ret;

	if (!s)
		return reply_error(a, c, 500, "out of memory");
	s->a = a;
	s->vm = agent_vm_ref(vm);
	s->q = *q;
	memset(q, 0, sizeof(*q));
	if (last) {
		/* A reconnecting EventSource: skip what it has seen, unless the id
		 * is from another life of this VM or of the agent (ahead of us). */
		uint64_t v;
		pthread_mutex_lock(&vm->lock);
		if (vmw_parse_u64(last, &v) == 0 && vm->snap && v <= vm->snap->seq)
			s->last_seq = v;
		pthread_mutex_unlock(&vm->lock);
	}
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sse_read, s, sse_free);
	if (!r) {
		sse_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---------------------------------------------------------------- routes */

static const char *arg(struct MHD_Connection *c, const char *k)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

static enum MHD_Result serve_metrics(struct agent *a, struct MHD_Connection *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return reply_error(a, c, 500, "out of memory");
	agent_metrics_render(a, f);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return reply_error(a, c, 500, "out of memory");
	}
	return reply(a, c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len, MHD_RESPMEM_MUST_FREE,
		     NULL, NULL);
}

static enum MHD_Result not_monitored(struct agent *a, struct MHD_Connection *c, struct agent_vm *vm)
{
	char reason[sizeof(vm->reason)];
	enum agent_status st;

	pthread_mutex_lock(&vm->lock);
	st = vm->status;
	memcpy(reason, vm->reason, sizeof(reason));
	pthread_mutex_unlock(&vm->lock);
	return reply_error_h(a, c, 503, MHD_HTTP_HEADER_RETRY_AFTER, "5", "vm %s has no frame yet (%s%s%s)",
			     vm->name, agent_status_name(st), reason[0] ? ": " : "", reason);
}

static enum MHD_Result serve_vm(struct agent *a, struct MHD_Connection *c, char **seg, size_t nseg)
{
	struct agent_vm *vm = agent_vm_lookup(a, seg[2]);
	struct agent_snap *snap;
	struct agent_query q;
	char err[1024];
	enum MHD_Result ret;

	if (!vm)
		return reply_error(a, c, 404, "no VM '%s' on this host (GET /v1/vms lists them)", seg[2]);
	if (nseg == 3) {
		ret = reply_json(a, c, 200, agent_vm_json(vm, true), NULL, NULL);
		agent_vm_unref(vm);
		return ret;
	}
	if (nseg == 4 && !strcmp(seg[3], "events")) {
		const char *since = arg(c, "since"), *limit = arg(c, "limit");
		uint64_t sv = 0, lv = 0;
		if (since && vmw_parse_u64(since, &sv) < 0)
			ret = reply_error(a, c, 400, "bad parameter 'since': '%.64s' is not an event sequence number",
					  since);
		else if (limit && (vmw_parse_u64(limit, &lv) < 0 || !lv))
			ret = reply_error(a, c, 400, "bad parameter 'limit': '%.64s' is not a positive number", limit);
		else
			ret = reply_json(a, c, 200, agent_events_json(vm, sv, (size_t)lv), NULL, NULL);
		agent_vm_unref(vm);
		return ret;
	}
	if ((nseg == 4 && (!strcmp(seg[3], "processes") || !strcmp(seg[3], "stream"))) ||
	    (nseg == 5 && !strcmp(seg[3], "processes"))) {
		if (nseg == 4 && agent_query_parse(&q, arg(c, "sort"), arg(c, "limit"), arg(c, "fields"), err,
						   sizeof(err)) < 0) {
			agent_vm_unref(vm);
			return reply_error(a, c, 400, "%s", err);
		}
		if (nseg == 4 && !strcmp(seg[3], "stream")) {
			ret = serve_stream(a, c, vm, &q);
			agent_query_free(&q);
			agent_vm_unref(vm);
			return ret;
		}
		if (!(snap = agent_vm_snap(vm))) {
			if (nseg == 4)
				agent_query_free(&q);
			ret = not_monitored(a, c, vm);
			agent_vm_unref(vm);
			return ret;
		}
		if (nseg == 4) {
			ret = reply_json(a, c, 200, agent_procs_json(vm, snap, &q), NULL, NULL);
			agent_query_free(&q);
		} else {
			uint64_t pid;
			long j;
			if (vmw_parse_u64(seg[4], &pid) < 0 || pid > INT32_MAX) {
				ret = reply_error(a, c, 400, "bad parameter 'pid': '%.64s' is not a process ID", seg[4]);
			} else if ((j = agent_snap_find(snap, (int32_t)pid)) < 0) {
				ret = reply_error(a, c, 404, "no process %llu in VM %s", (unsigned long long)pid, vm->name);
			} else {
				const struct vmw_sample *x = &snap->frame->procs[j];
				json_t *h;
				pthread_mutex_lock(&vm->lock);
				h = agent_hist_proc_json(&vm->hist, x->proc.pid, x->proc.start_time_ns);
				pthread_mutex_unlock(&vm->lock);
				ret = reply_json(a, c, 200, json_pack("{s:{s:s, s:o}, s:I, s:f, s:o, s:o}",
					"vm", "id", vm->id, "name", vmw_report_string(vm->name),
					"seq", (json_int_t)snap->seq, "time", (double)snap->frame->wall_time_ns / 1e9,
					"process", vmw_report_sample(x), "history", h ? h : json_null()), NULL, NULL);
			}
		}
		agent_snap_unref(snap);
		agent_vm_unref(vm);
		return ret;
	}
	agent_vm_unref(vm);
	return reply_error(a, c, 404, "no such resource (see docs/API.md)");
}

static enum MHD_Result serve_vms(struct agent *a, struct MHD_Connection *c)
{
	struct agent_vm **vms;
	size_t n = agent_vms_get(a, &vms);
	json_t *arr = json_array(), *lv;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, agent_vm_json(vms[i], false));
	agent_vms_put(vms, n);
	pthread_mutex_lock(&a->lock);
	if (a->cfg.connect && !strcmp(a->cfg.connect, "none"))
		lv = json_null();
	else
		lv = json_pack("{s:s, s:b, s:o}", "uri", a->cfg.connect ? a->cfg.connect : "qemu:///system",
			       "connected", a->virt_up, "error",
			       a->virt_error[0] ? vmw_report_string(a->virt_error) : json_null());
	pthread_mutex_unlock(&a->lock);
	return reply_json(a, c, 200, json_pack("{s:o, s:f, s:o}", "vms", arr, "interval_seconds",
					       (double)atomic_load(&a->live.interval_ns) / 1e9, "libvirt", lv),
			  NULL, NULL);
}

/* Split path into segments (empty ones dropped). */
static size_t split(char *path, char **seg)
{
	char *save = NULL;
	size_t n = 0;
	for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (n == MAX_SEGMENTS)
			return MAX_SEGMENTS + 1;
		seg[n++] = p;
	}
	return n;
}

static enum MHD_Result route(struct agent *a, struct MHD_Connection *c, const char *url, const char *method)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
	char path[1024], *seg[MAX_SEGMENTS];
	size_t nseg;

	if (!strcmp(url, "/healthz")) {
		if (!get)
			return reply_error_h(a, c, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", "method %s not allowed", method);
		return reply_json(a, c, 200, json_pack("{s:s, s:f}", "status", "ok", "uptime_seconds",
						       (double)(agent_wall_ns() - a->start_wall_ns) / 1e9), NULL, NULL);
	}
	if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
		/* The page is static and holds no data: it asks for a token itself when the API needs one. */
		if (!get)
			return reply_error_h(a, c, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", "method %s not allowed", method);
		return reply(a, c, 200, "text/html; charset=utf-8", (void *)agent_index_html, agent_index_html_len,
			     MHD_RESPMEM_PERSISTENT, "Content-Security-Policy",
			     "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
			     "connect-src 'self'; img-src data:; frame-ancestors 'none'");
	}
	if (!authorized(a, c))
		return reply_error_h(a, c, 401, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vmwatch\"",
				     "missing or wrong bearer token (send 'Authorization: Bearer TOKEN')");
	if (strlen(url) >= sizeof(path))
		return reply_error(a, c, 414, "URL too long");
	snprintf(path, sizeof(path), "%s", url);
	nseg = split(path, seg);
	if (nseg > MAX_SEGMENTS)
		return reply_error(a, c, 404, "no such resource (see docs/API.md)");

	if (nseg == 1 && !strcmp(seg[0], "metrics")) {
		if (!get)
			return reply_error_h(a, c, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", "method %s not allowed", method);
		return serve_metrics(a, c);
	}
	if (nseg >= 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "vms")) {
		if (!get)
			return reply_error_h(a, c, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", "method %s not allowed", method);
		return nseg == 2 ? serve_vms(a, c) : serve_vm(a, c, seg, nseg);
	}
	if (nseg >= 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "instances")) {
		if (nseg == 2) {
			if (!get)
				return reply_error_h(a, c, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", "method %s not allowed",
						     method);
			return reply_json(a, c, 200, agent_compat_instances(a), NULL, NULL);
		}
		if (nseg == 4 && !strcmp(seg[3], "processes")) {
			char client[160], msg[1024];
			unsigned code = 500;
			json_t *j;
			if (!get && !post)
				return reply_error_h(a, c, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST",
						     "method %s not allowed", method);
			client_id(c, client, sizeof(client));
			if (!(j = agent_compat_processes(a, seg[2], client, &code, msg, sizeof(msg))))
				return reply_error_h(a, c, code, code == 503 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "5",
						     "%s", msg);
			return reply_json(a, c, 200, j, NULL, NULL);
		}
	}
	return reply_error(a, c, 404, "no such resource '%s' (see docs/API.md)", url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	static int first_call;
	struct agent *a = cls;

	(void)version;
	(void)upload_data;
	if (!*con_cls) {
		*con_cls = &first_call;   /* headers seen; the body (if any) comes next */
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;         /* request bodies are accepted and ignored */
		return MHD_YES;
	}
	atomic_fetch_add(&a->http_requests_total, 1);
	vmw_agent_log(VMW_LOG_DEBUG, "http: %s %s", method, url);
	return route(a, c, url, method);
}

/* ---------------------------------------------------------------- daemon */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;
	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	vmw_agent_log(VMW_LOG_INFO, "http: %s", buf);
}

static int read_pem(const char *path, char **ret, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	struct stat st;
	char *buf;
	size_t n;

	if (!f)
		return vmw_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 20))
		return vmw_error_set(err, -EINVAL, "%s: not a PEM file of a sane size", path);
	if (!(buf = calloc(1, (size_t)st.st_size + 1)))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	n = fread(buf, 1, (size_t)st.st_size, f);
	buf[n] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		free(buf);
		return vmw_error_set(err, -EINVAL, "%s: not PEM (no -----BEGIN line)", path);
	}
	*ret = buf;
	return 0;
}

/* Resolve ADDR:PORT (or [ADDR6]:PORT; "*" or empty ADDR: every IPv4 address). */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, bool *loopback, struct vmw_error *err)
{
	char host[256], port[16];
	const char *colon;
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res;
	int r;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':')
			return vmw_error_set(err, -EINVAL, "listen: '%s' is not [ADDR]:PORT", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(close - spec - 1), spec + 1);
		colon = close + 1;
	} else {
		if (!(colon = strrchr(spec, ':')))
			return vmw_error_set(err, -EINVAL, "listen: '%s' is not ADDR:PORT", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (!port[0] || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
		return vmw_error_set(err, -EINVAL, "listen: bad port in '%s'", spec);
	if (!host[0] || !strcmp(host, "*"))
		snprintf(host, sizeof(host), "0.0.0.0");
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0)
		return vmw_error_set(err, -EINVAL, "listen: cannot resolve '%s': %s", host, gai_strerror(r));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		*loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

int agent_http_start(struct agent *a, struct vmw_error *err)
{
	struct agent_http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss = { 0 };
	bool loopback = false, tls = a->cfg.tls_cert != NULL;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	char host[NI_MAXHOST] = "?";
	int r;

	if (!h)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if ((r = parse_listen(a->cfg.listen, &ss, &loopback, err)) < 0)
		goto fail;
	if (tls) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			r = vmw_error_set(err, -ENOTSUP, "this libmicrohttpd was built without TLS (GnuTLS)");
			goto fail;
		}
		if ((r = read_pem(a->cfg.tls_cert, &h->cert, err)) < 0 || (r = read_pem(a->cfg.tls_key, &h->key, err)) < 0)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	if (ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		if (IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
			flags |= MHD_USE_DUAL_STACK;
	}
	if (tls)
		h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
					MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
					MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->cfg.max_connections,
					MHD_OPTION_CONNECTION_TIMEOUT, 120u,
					MHD_OPTION_HTTPS_MEM_KEY, h->key, MHD_OPTION_HTTPS_MEM_CERT, h->cert,
					MHD_OPTION_END);
	else
		h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
					MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
					MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->cfg.max_connections,
					MHD_OPTION_CONNECTION_TIMEOUT, 120u,
					MHD_OPTION_END);
	if (!h->d) {
		r = vmw_error_set(err, -EADDRINUSE, "cannot serve HTTP%s on %s (address in use, or not "
				  "an address of this host?)", tls ? "S" : "", a->cfg.listen);
		goto fail;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	getnameinfo((struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					    : sizeof(struct sockaddr_in), host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	vmw_agent_log(VMW_LOG_NOTICE, "listening on %s://%s%s%s:%u/", tls ? "https" : "http",
		      ss.ss_family == AF_INET6 ? "[" : "", host, ss.ss_family == AF_INET6 ? "]" : "",
		      di ? (unsigned)di->port : 0);
	if (!loopback && !a->cfg.ntokens)
		vmw_agent_log(VMW_LOG_WARNING, "WARNING: %s is reachable beyond this host and no bearer token is "
			      "set: anyone who can connect can read every guest's process list. Set 'token' "
			      "(and tls_cert/tls_key), or listen on 127.0.0.1", a->cfg.listen);
	else if (!loopback && !tls)
		vmw_agent_log(VMW_LOG_WARNING, "WARNING: %s is reachable beyond this host without TLS: bearer "
			      "tokens and guest data travel in clear text. Set tls_cert and tls_key", a->cfg.listen);
	a->http = h;
	return 0;
fail:
	free(h->cert);
	free(h->key);
	free(h);
	return r;
}

void agent_http_stop(struct agent *a)
{
	struct agent_http *h = a->http;
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	free(h->cert);
	free(h->key);
	free(h);
	a->http = NULL;
}
