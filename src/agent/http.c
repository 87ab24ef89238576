/* SPDX-License-Identifier: MIT */
/*
 * http.c - the HTTP front (libmicrohttpd): routing, bearer tokens, TLS, JSON
 * replies, Server-Sent Events. Handlers read published snapshots only; see
 * docs/API.md.
 *
 * The network in front of the agent is hostile, and one client must not
 * lock out the others (issue 9). The server (src/httpd: limits, header
 * deadline, bounded bodies) runs here with:
 *   - a few epoll threads serving every connection (no thread per
 *     connection), so open connections cost a file descriptor and a small
 *     buffer, and the limits are counts (max_connections, per IP);
 *   - event streams attached to their connections: a stream waits suspended
 *     (no thread, no buffer beyond the frame in flight); the server's
 *     sweeper resumes it when there is something to send, and drops a client
 *     that stopped reading once a frame has waited sse_stall_timeout for it;
 *   - authentication before any work that costs more than a header lookup.
 */
#include "agent/agent_int.h"
#include "agent/query.h"
#include "httpd/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>

#define SSE_KEEPALIVE_NS 15000000000ull
#define MAX_SEGMENTS 8
#define HTTP_THREADS 4
#define MAX_BODY_BYTES (64u << 10)     /* request bodies are ignored; this many are read */
#define SEND_BUFFER_BYTES (256 << 10)

struct agent_http {
	struct vmw_httpd *srv;    /* its lock guards every sse's suspended flag and conn */
	char *cert, *key;
	char *client_ca;          /* mTLS: clients need a certificate this CA signed */
	atomic_size_t metrics_piece; /* the largest piece of a /metrics page yet: the next one's first buffer */
};

/* ---------------------------------------------------------------- replies */

/* Queue r (taken) with the headers every answer has, and h1: v1. */
static enum MHD_Result queue(struct agent *a, struct MHD_Connection *c, unsigned code, struct MHD_Response *r,
			     const char *ctype, const char *h1, const char *v1)
{
	enum MHD_Result ret;

	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (h1)
		MHD_add_response_header(r, h1, v1);
	/* An unauthenticated client gets its answer and loses the connection: it
	 * must not keep a slot for idle_timeout by keep-alive. */
	if (code == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (code >= 400)
		atomic_fetch_add(&a->http_errors_total, 1);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply(struct agent *a, struct MHD_Connection *c, unsigned code, const char *ctype,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode,
			     const char *h1, const char *v1)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	return queue(a, c, code, r, ctype, h1, v1);
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
	struct MHD_Connection *c;
	struct vmw_httpd_conn *conn;  /* NULL once it closed (under the server's lock) */
	struct agent_query q;
	struct agent_filter f;        /* ?user, ?name, ?state (query.c) */
	uint64_t last_seq;
	uint64_t last_sent_ns;    /* for keep-alives */
	uint64_t last_pull_ns;    /* when libmicrohttpd last asked for bytes: a reading client */
	bool suspended;           /* waiting for a frame (under the server's lock) */
	bool end_now;             /* the server stops or shut its connection (under the lock) */
	char *buf;
	size_t len, off;
	bool hello, ended;
};

static void sse_free(void *cls)
{
	struct sse *s = cls;
	struct agent_http *h = s->a->http;

	vmw_httpd_lock(h->srv);
	vmw_httpd_set_stream(s->conn, NULL);
	vmw_httpd_unlock(h->srv);
	agent_query_free(&s->q);
	agent_vm_unref(s->vm);
	free(s->buf);
	free(s);
}

/* Is there something to send: a newer frame, the VM's end, the agent's end, a keep-alive? */
static bool sse_ready(struct sse *s, uint64_t now)
{
	struct agent_vm *vm = s->vm;
	bool ready;

	if (s->ended || atomic_load(&s->a->stopping) || now - s->last_sent_ns >= SSE_KEEPALIVE_NS)
		return true;
	pthread_mutex_lock(&vm->lock);
	ready = vm->removed || (vm->snap && vm->snap->seq > s->last_seq);
	pthread_mutex_unlock(&vm->lock);
	return ready;
}

/* The next event into s->buf: 1 when there is one, 0 when nothing is due, -1 on error. */
static int sse_next(struct sse *s, uint64_t now)
{
	struct agent_vm *vm = s->vm;
	struct agent_snap *snap = NULL;
	bool removed;
	int r;

	if (!s->hello) {
		s->hello = true;
		r = asprintf(&s->buf, "retry: 5000\n\n");
		goto out;
	}
	pthread_mutex_lock(&vm->lock);
	removed = vm->removed;
	if (!removed && vm->snap && vm->snap->seq > s->last_seq)
		snap = agent_snap_ref(vm->snap);
	pthread_mutex_unlock(&vm->lock);
	if (removed) {
		json_t *j = json_pack("{s:s, s:s}", "id", vm->id, "reason", "the VM stopped");
		char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		r = d ? asprintf(&s->buf, "event: gone\ndata: %s\n\n", d) : -1;
		free(d);
		s->ended = true;
	} else if (snap) {
		json_t *j = agent_filtered_json(vm, snap, &s->q, &s->f, true);
		char *d = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		r = d ? asprintf(&s->buf, "id: %llu\nevent: frame\ndata: %s\n\n",
				 (unsigned long long)snap->seq, d) : -1;
		free(d);
		s->last_seq = snap->seq;
		agent_snap_unref(snap);
	} else if (now - s->last_sent_ns >= SSE_KEEPALIVE_NS) {
		r = asprintf(&s->buf, ": keep-alive\n\n");
	} else {
		return 0;
	}
out:
	if (r < 0) {
		s->buf = NULL;
		return -1;
	}
	s->len = (size_t)r;
	s->off = 0;
	s->last_sent_ns = now;
	return 1;
}

/*
 * libmicrohttpd asks for bytes when the socket can take them. With nothing
 * to send, the connection is suspended (no polling, no thread) and the
 * sweeper resumes it when sse_ready() says so.
 */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse *s = cls;
	struct agent_http *h = s->a->http;
	uint64_t now = vmw_now_ns();
	size_t n;

	(void)pos;
	s->last_pull_ns = now;
	if (s->off == s->len) {
		free(s->buf);
		s->buf = NULL;
		s->len = s->off = 0;
		if (s->ended || atomic_load(&s->a->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		int r = sse_next(s, now);
		if (r < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (r == 0) {
			vmw_httpd_lock(h->srv);
			/* Stopping began after the check above (the sweeper's last
			 * pass, under this lock, may be over, and nothing would
			 * resume this stream before the daemon stops, which aborts
			 * on a suspended connection), or the sweeper shut this
			 * connection (suspended, it would never close): end it. */
			if (atomic_load(&s->a->stopping) || s->end_now) {
				vmw_httpd_unlock(h->srv);
				return MHD_CONTENT_READER_END_OF_STREAM;
			}
			s->suspended = true;
			MHD_suspend_connection(s->c);
			vmw_httpd_unlock(h->srv);
			return 0;
		}
	}
	n = MIN(max, s->len - s->off);
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static enum MHD_Result serve_stream(struct agent *a, struct MHD_Connection *c, struct agent_vm *vm,
				    struct agent_query *q, const struct agent_filter *f)
{
	struct sse *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	enum MHD_Result ret;

	if (!s)
		return reply_error(a, c, 500, "out of memory");
	s->a = a;
	s->vm = agent_vm_ref(vm);
	s->c = c;
	s->q = *q;
	s->f = *f;
	s->last_sent_ns = s->last_pull_ns = vmw_now_ns();
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
	vmw_httpd_lock(a->http->srv);
	s->conn = vmw_httpd_conn(c);
	vmw_httpd_set_stream(s->conn, s);
	vmw_httpd_unlock(a->http->srv);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * The server's sweeper ticks every stream (under its lock): resume a
 * suspended one that has something to send (or must end), drop one whose
 * client stopped reading.
 */
static bool sse_tick(void *cls, void *stream, uint64_t now, bool stopping)
{
	struct agent *a = cls;
	struct sse *s = stream;

	if (stopping)
		s->end_now = true;
	if (s->suspended) {
		if (s->end_now || sse_ready(s, now)) {
			s->suspended = false;
			MHD_resume_connection(s->c);
		}
		return false;
	}
	/* The server counts the drop (stream_drops). */
	return now - s->last_pull_ns > (uint64_t)(a->cfg.sse_stall_timeout_s * 1e9);
}

static void sse_gone(void *cls, void *stream)
{
	(void)cls;
	((struct sse *)stream)->conn = NULL;
}

/* ---------------------------------------------------------------- routes */

static const char *arg(struct MHD_Connection *c, const char *k)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

/* A /metrics page on its way out: the piece being sent (agent_metrics_next
 * writes the next one into the same buffer once it is all sent). */
struct metrics_out {
	struct agent *a;
	struct agent_metrics *m;
	struct agent_buf b;
	size_t off;
};

static void metrics_out_free(void *cls)
{
	struct metrics_out *o = cls;

	agent_metrics_end(o->m);
	free(o->b.p);
	free(o);
}

/* The next piece into o->b; 1, 0 at the end, -ENOMEM. The largest piece
 * sizes the next page's buffer from its start. */
static int next_piece(struct metrics_out *o)
{
	int r;

	o->b.len = o->off = 0;
	r = agent_metrics_next(o->m, &o->b);
	if (r > 0 && o->b.len > atomic_load(&o->a->http->metrics_piece))
		atomic_store(&o->a->http->metrics_piece, o->b.len);
	return r;
}

static ssize_t metrics_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct metrics_out *o = cls;
	size_t n;
	int r;

	(void)pos;
	while (o->off == o->b.len)
		if ((r = next_piece(o)) <= 0)
			return r == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
	n = MIN(max, o->b.len - o->off);
	memcpy(buf, o->b.p + o->off, n);
	o->off += n;
	return (ssize_t)n;
}

/* GET /metrics: sent as it is written (metrics.c), in chunks; memory that
 * fails before the first piece is a 500, later it cuts the page (the
 * scrape fails, as a 500 would make it). */
static enum MHD_Result serve_metrics(struct agent *a, struct MHD_Connection *c)
{
	const char *dialect = arg(c, "dialect");
	struct metrics_out *o;
	struct MHD_Response *r;

	if (dialect && strcmp(dialect, "vmwatch") && strcmp(dialect, "process-exporter"))
		return reply_error(a, c, 400, "bad parameter 'dialect': '%.64s' (vmwatch or process-exporter)", dialect);
	if (!(o = calloc(1, sizeof(*o))))
		return reply_error(a, c, 500, "out of memory");
	o->a = a;
	agent_buf_init(&o->b);
	if (!(o->m = agent_metrics_begin(a, dialect && !strcmp(dialect, "process-exporter"))) ||
	    !agent_buf_room(&o->b, MAX(atomic_load(&a->http->metrics_piece), (size_t)65536)) || next_piece(o) < 0) {
		metrics_out_free(o);
		return reply_error(a, c, 500, "out of memory");
	}
	if (!(r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, metrics_read, o, metrics_out_free))) {
		metrics_out_free(o);
		return MHD_NO;
	}
	return queue(a, c, 200, r, "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
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

/* GET /v1/vms/{id}/cgroups: the latest frame's cgroup tree (docs/API.md). */
static enum MHD_Result serve_cgroups(struct agent *a, struct MHD_Connection *c, struct agent_vm *vm)
{
	struct agent_snap *snap = agent_vm_snap(vm);
	const struct vmw_frame *f;
	json_t *o;
	enum MHD_Result ret;

	if (!snap)
		return not_monitored(a, c, vm);
	f = snap->frame;
	o = f->cgroups_ok ? vmw_report_cgroups(&f->cgroups, f->cgroup_cpu_percent)
			  : json_pack("{s:n, s:b, s:s}", "cgroups", "truncated", true, "truncated_why",
				      "this guest's cgroups could not be read (its kernel's layouts are missing)");
	json_object_set_new(o, "vm", json_pack("{s:s, s:o}", "id", vm->id, "name", vmw_report_string(vm->name)));
	json_object_set_new(o, "seq", json_integer((json_int_t)snap->seq));
	json_object_set_new(o, "time", json_real((double)f->wall_time_ns / 1e9));
	json_object_set_new(o, "interval_seconds", f->interval_ns && !f->first ? json_real((double)f->interval_ns / 1e9)
									       : json_null());
	ret = reply_json(a, c, 200, o, NULL, NULL);
	agent_snap_unref(snap);
	return ret;
}

static enum MHD_Result serve_vm(struct agent *a, struct MHD_Connection *c, char **seg, size_t nseg)
{
	struct agent_vm *vm = agent_vm_lookup(a, seg[2]);
	struct agent_snap *snap;
	struct agent_query q;
	struct agent_filter f;
	char err[1024];
	enum MHD_Result ret;
	uint64_t since_ns = 0;
	bool ambiguous = false;

	if (!vm && !(vm = agent_vm_lookup_nova(a, seg[2], &ambiguous)))
		return reply_error(a, c, 404, ambiguous ? "several VMs have the Nova name '%s': use the UUID"
					     : "no VM '%s' on this host (GET /v1/vms lists them)", seg[2]);
	if (nseg != 4 || strcmp(seg[3], "events")) {
		/* history points after ?since= (Unix seconds) only */
		const char *since = arg(c, "since");
		if (since && agent_parse_since(since, &since_ns) < 0) {
			agent_vm_unref(vm);
			return reply_error(a, c, 400, "bad parameter 'since': '%.64s' is not a time in Unix "
					   "seconds", since);
		}
	}
	if (nseg == 3) {
		ret = reply_json(a, c, 200, agent_vm_json_since(vm, true, since_ns), NULL, NULL);
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
	if (nseg == 4 && !strcmp(seg[3], "cgroups")) {
		ret = serve_cgroups(a, c, vm);
		agent_vm_unref(vm);
		return ret;
	}
	if ((nseg == 4 && (!strcmp(seg[3], "processes") || !strcmp(seg[3], "stream"))) ||
	    (nseg == 5 && !strcmp(seg[3], "processes"))) {
		if (nseg == 4 && (agent_filter_parse(&f, arg(c, "user"), arg(c, "name"), arg(c, "state"), arg(c, "match"),
						     err, sizeof(err)) < 0 ||
				  agent_query_parse(&q, arg(c, "sort"), arg(c, "limit"), arg(c, "fields"), err,
						    sizeof(err)) < 0)) {
			agent_vm_unref(vm);
			return reply_error(a, c, 400, "%s", err);
		}
		if (nseg == 4 && !strcmp(seg[3], "stream")) {
			ret = serve_stream(a, c, vm, &q, &f);
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
			ret = reply_json(a, c, 200, agent_filtered_json(vm, snap, &q, &f, false), NULL, NULL);
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
				h = agent_hist_proc_json_since(&vm->hist, x->proc.pid, x->proc.start_time_ns,
							       since_ns);
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

/*
 * Mutual TLS: libmicrohttpd only *requests* a client certificate (the
 * handshake succeeds without one), so the certificate is verified here:
 * signed by tls_client_ca, in its validity period, and, with
 * tls_client_name set, naming one of those (DNS SAN, else CN).
 */
static bool client_cert_ok(struct agent *a, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
	const gnutls_datum_t *chain;
	unsigned status = 1, n = 0;
	gnutls_x509_crt_t crt;
	bool ok = false;

	if (!s || gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0 ||
	    !(chain = gnutls_certificate_get_peers(s, &n)) || !n)
		return false;
	if (!a->cfg.ntls_client_names)
		return true;
	if (gnutls_x509_crt_init(&crt) < 0)
		return false;
	if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) >= 0)
		for (size_t i = 0; i < a->cfg.ntls_client_names && !ok; i++)
			ok = gnutls_x509_crt_check_hostname(crt, a->cfg.tls_client_names[i]) != 0;
	gnutls_x509_crt_deinit(crt);
	return ok;
}

static enum MHD_Result route(struct agent *a, struct MHD_Connection *c, const char *url, const char *method)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
	char path[1024], *seg[MAX_SEGMENTS], err[512];
	const char *const *params, *rname = url;
	size_t nseg;

	if (a->http->client_ca && !client_cert_ok(a, c))
		return reply_error_h(a, c, 403, MHD_HTTP_HEADER_CONNECTION, "close", "this agent serves only clients "
				     "with a certificate signed by its tls_client_ca%s",
				     a->cfg.ntls_client_names ? " and one of its tls_client_names" : "");
	if (!strcmp(url, "/healthz")) {
		if (!get)
			return reply_error_h(a, c, 405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD", "method %s not allowed", method);
		if (agent_params_check(c, "/healthz", (const char *const[]){ NULL }, err, sizeof(err)) < 0)
			return reply_error(a, c, 400, "%s", err);
		return reply_json(a, c, 200, json_pack("{s:s, s:f}", "status", "ok", "uptime_seconds",
						       (double)(vmw_wall_ns() - a->start_wall_ns) / 1e9), NULL, NULL);
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
	/* A parameter no route takes is a mistake to name, not to ignore. */
	if ((params = agent_route_params(seg, nseg, &rname)) && agent_params_check(c, rname, params, err, sizeof(err)) < 0)
		return reply_error(a, c, 400, "%s", err);

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
				  void *req)
{
	struct agent *a = cls;

	(void)req;
	atomic_fetch_add(&a->http_requests_total, 1);
	vmw_agent_log(VMW_LOG_DEBUG, "http: %s %s", method, url);
	return route(a, c, url, method);
}

/* ---------------------------------------------------------------- daemon */

static void http_log(void *cls, int level, const char *msg)
{
	(void)cls;
	vmw_agent_log(level == LOG_DEBUG ? VMW_LOG_DEBUG : level == LOG_WARNING ? VMW_LOG_WARNING : VMW_LOG_INFO,
		      "http: %s", msg);
}

/* A PEM file the configuration names, opened through the monitor (privsep.h). */
static int read_pem(const char *path, char **ret, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = vmw_agent_fopen(path);

	return vmw_read_pem_from(f, path, ret, err);
}

static void free_http(struct agent_http *h)
{
	free(h->cert);
	free(h->key);
	free(h->client_ca);
	free(h);
}

int agent_http_start(struct agent *a, struct vmw_error *err)
{
	const struct vmw_agent_config *c = &a->cfg;
	struct agent_http *h = calloc(1, sizeof(*h));
	static const struct vmw_httpd_ops ops = {
		.request = on_request, .tick = sse_tick, .gone = sse_gone, .log = http_log,
	};
	bool tls = c->tls_cert != NULL;
	int r;

	if (!h)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if (tls && ((r = read_pem(c->tls_cert, &h->cert, err)) < 0 || (r = read_pem(c->tls_key, &h->key, err)) < 0 ||
		    (c->tls_client_ca && (r = read_pem(c->tls_client_ca, &h->client_ca, err)) < 0))) {
		free_http(h);
		return r;
	}
	const struct vmw_httpd_config hc = {
		.listen = c->listen, .threads = HTTP_THREADS, .max_connections = c->max_connections,
		.max_connections_per_ip = c->max_connections_per_ip, .header_timeout_s = c->header_timeout_s,
		.idle_timeout_s = c->idle_timeout_s, .send_buffer_bytes = SEND_BUFFER_BYTES,
		.max_body_bytes = MAX_BODY_BYTES, .tls_cert = h->cert, .tls_key = h->key,
		.tls_client_ca = h->client_ca, .tls_priorities = c->tls_priorities,
	};
	a->http = h;   /* the streams find the server there */
	if ((r = vmw_httpd_start(&hc, &ops, a, &h->srv, err)) < 0) {
		a->http = NULL;
		free_http(h);
		return r;
	}
	vmw_agent_log(VMW_LOG_NOTICE, "listening on %s", vmw_httpd_url(h->srv));
	if (!vmw_httpd_loopback(h->srv) && !c->ntokens)
		vmw_agent_log(VMW_LOG_WARNING, "WARNING: %s is reachable beyond this host and no bearer token is "
			      "set: anyone who can connect can read every guest's process list. Set 'token' "
			      "(and tls_cert/tls_key), or listen on 127.0.0.1", c->listen);
	else if (!vmw_httpd_loopback(h->srv) && !tls)
		vmw_agent_log(VMW_LOG_WARNING, "WARNING: %s is reachable beyond this host without TLS: bearer "
			      "tokens and guest data travel in clear text. Set tls_cert and tls_key", c->listen);
	return 0;
}

void agent_http_counters(struct agent *a, struct vmw_httpd_stats *ret)
{
	*ret = (struct vmw_httpd_stats){ 0 };
	if (a->http)
		vmw_httpd_stats(a->http->srv, ret);
}

void agent_http_stop(struct agent *a)
{
	struct agent_http *h = a->http;
	if (!h)
		return;
	/* Suspended streams are resumed (they then end) before the server stops. */
	vmw_httpd_stop(h->srv);
	free_http(h);
	a->http = NULL;
}
