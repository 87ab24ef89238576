/* SPDX-License-Identifier: MIT */
/*
 * httpd.c - the shared HTTP server (see httpd.h): libmicrohttpd with limits,
 * a header deadline and attached streams.
 */
#include "httpd/httpd.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>

#define SWEEP_NS 100000000ull          /* the sweeper's tick: latency of a resumed stream */

/* One open connection (socket context), from accept to close. */
struct vmw_httpd_conn {
	struct vmw_httpd_conn *prev, *next;
	int fd;
	/* The request being received must be in (line, headers and body) by
	 * this time: accept + header_timeout for the first one; for the next
	 * one on a kept-alive connection, the end of the previous request +
	 * idle_timeout + header_timeout (an idle connection is libmicrohttpd's
	 * to close; one that trickles its next request is ours). 0 while a
	 * request is being answered. */
	uint64_t deadline_ns;
	bool shut;                /* the sweeper has shut the socket down */
	void *stream;             /* attached by the front end */
	struct vmw_httpd *h;
};

/* One request (libmicrohttpd's con_cls). */
struct request {
	size_t body;              /* bytes of body read and dropped */
	void *user;               /* ops->begin's state */
};

struct vmw_httpd {
	struct MHD_Daemon *d;
	struct vmw_httpd_config cfg;
	struct vmw_httpd_ops ops;
	void *cls;
	pthread_mutex_t lock;     /* conns, counters, streams' state (vmw_httpd_lock) */
	pthread_cond_t cond;
	struct vmw_httpd_conn *conns;
	struct vmw_httpd_stats st;
	bool stop, sweeper_started, loopback;
	bool kick;                /* sweep_soon since the sweeper's last sweep */
	pthread_t sweeper;
	char url[96];
};

static void shut(struct vmw_httpd_conn *cn, uint64_t *counter)
{
	cn->shut = true;
	shutdown(cn->fd, SHUT_RDWR);   /* libmicrohttpd sees the error and closes the connection */
	(*counter)++;
}

/*
 * Shut connections whose headers are late, tick attached streams; returns
 * when the next sweep is due (UINT64_MAX: nothing to wait for). Under
 * h->lock; a connection in the list is not closed yet (the close
 * notification takes the same lock), so its fd is ours.
 */
static uint64_t sweep(struct vmw_httpd *h, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (struct vmw_httpd_conn *cn = h->conns; cn; cn = cn->next) {
		if (cn->shut)
			continue;
		if (cn->deadline_ns && now > cn->deadline_ns) {
			shut(cn, &h->st.header_timeouts);
		} else if (cn->stream && h->ops.tick && h->ops.tick(h->cls, cn->stream, now, h->stop)) {
			shut(cn, &h->st.stream_drops);
			/* Shut connections are not swept again, but the stream could
			 * still suspend (its reader running before libmicrohttpd
			 * sees the socket's error), and a suspended connection is
			 * neither closed nor allowed when the daemon stops (it
			 * aborts): told now to end, it ends. */
			h->ops.tick(h->cls, cn->stream, now, true);
		} else if (cn->stream)
			next = MIN(next, now + SWEEP_NS);
		else if (cn->deadline_ns)
			next = MIN(next, cn->deadline_ns + 1);
	}
	return next;
}

/* Something for the sweeper sooner than it may be waiting for: a header
 * deadline set, a stream attached. Under h->lock. The flag keeps it when
 * the sweeper is not waiting yet (a connection before its first wait was
 * otherwise never swept: its slow headers never cut). */
static void sweep_soon(struct vmw_httpd *h)
{
	h->kick = true;
	pthread_cond_signal(&h->cond);
}

/*
 * The sweeper: every SWEEP_NS while a stream is attached, at the next
 * header deadline otherwise, not at all while no connection needs it (an
 * agent nobody talks to does not wake ten times a second).
 */
static void *sweeper_main(void *arg)
{
	struct vmw_httpd *h = arg;
	uint64_t next = UINT64_MAX;

	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		uint64_t now = vmw_now_ns();

		if (h->kick) {
			/* asked while not waiting: sweep now */
		} else if (next == UINT64_MAX) {
			pthread_cond_wait(&h->cond, &h->lock);
		} else if (next > now) {
			uint64_t wall = vmw_wall_ns(), wait = next - now;
			uint64_t deadline = wait > UINT64_MAX - wall ? UINT64_MAX : wall + wait;
			struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ull),
					       .tv_nsec = (long)(deadline % 1000000000ull) };
			pthread_cond_timedwait(&h->cond, &h->lock, &ts);
		}
		h->kick = false;
		next = sweep(h, vmw_now_ns());
	}
	sweep(h, vmw_now_ns());   /* streams learn that the server stops */
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct vmw_httpd *h = cls;
	struct vmw_httpd_conn *cn = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci || !(cn = calloc(1, sizeof(*cn))))
			return;   /* untracked: only libmicrohttpd's own idle timeout applies */
		cn->fd = ci->connect_fd;
		cn->h = h;
		cn->deadline_ns = vmw_now_ns() + (uint64_t)(h->cfg.header_timeout_s * 1e9);
		/* A fixed send buffer (no autotuning to megabytes): what a client that
		 * stops reading can make the host hold is bounded. */
		if (h->cfg.send_buffer_bytes > 0)
			setsockopt(cn->fd, SOL_SOCKET, SO_SNDBUF, &h->cfg.send_buffer_bytes,
				   sizeof(h->cfg.send_buffer_bytes));
		pthread_mutex_lock(&h->lock);
		cn->next = h->conns;
		if (h->conns)
			h->conns->prev = cn;
		h->conns = cn;
		h->st.connections++;
		sweep_soon(h);
		pthread_mutex_unlock(&h->lock);
		*socket_context = cn;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && cn) {
		pthread_mutex_lock(&h->lock);
		if (cn->prev)
			cn->prev->next = cn->next;
		else
			h->conns = cn->next;
		if (cn->next)
			cn->next->prev = cn->prev;
		if (cn->stream && h->ops.gone)
			h->ops.gone(h->cls, cn->stream);
		pthread_mutex_unlock(&h->lock);
		free(cn);
		*socket_context = NULL;
	}
}

struct vmw_httpd_conn *vmw_httpd_conn(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

void vmw_httpd_set_stream(struct vmw_httpd_conn *cn, void *stream)
{
	if (!cn)
		return;
	cn->stream = stream;
	if (stream)
		sweep_soon(cn->h);
}

void vmw_httpd_lock(struct vmw_httpd *h)
{
	pthread_mutex_lock(&h->lock);
}

void vmw_httpd_unlock(struct vmw_httpd *h)
{
	pthread_mutex_unlock(&h->lock);
}

static void set_deadline(struct vmw_httpd *h, struct MHD_Connection *c, uint64_t deadline_ns)
{
	struct vmw_httpd_conn *cn = vmw_httpd_conn(c);

	if (!cn)
		return;
	pthread_mutex_lock(&h->lock);
	cn->deadline_ns = deadline_ns;
	if (deadline_ns)
		sweep_soon(h);
	pthread_mutex_unlock(&h->lock);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct vmw_httpd *h = cls;
	struct request *q = *con_cls;

	(void)version;
	(void)upload_data;
	if (!q) {
		/* The headers are in; the body (if any) is still under the deadline. */
		if (!(q = calloc(1, sizeof(*q))))
			return MHD_NO;
		*con_cls = q;
		if (h->ops.begin && !(q->user = h->ops.begin(h->cls, c, url, method)))
			return MHD_NO;
		return MHD_YES;   /* the body (if any) comes next */
	}
	if (*upload_size) {
		/* Request bodies are ignored, but not read forever. */
		q->body += *upload_size;
		*upload_size = 0;
		return q->body > h->cfg.max_body_bytes ? MHD_NO : MHD_YES;
	}
	/* The whole request is in: no deadline while it is answered. */
	set_deadline(h, c, 0);
	return h->ops.request(h->cls, c, url, method, q->user);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct vmw_httpd *h = cls;
	struct request *q = *con_cls;

	(void)toe;
	if (!q)
		return;
	/* The next request on this connection, if it is kept alive. */
	set_deadline(h, c, vmw_now_ns() + (uint64_t)((h->cfg.idle_timeout_s + h->cfg.header_timeout_s) * 1e9));
	if (q->user && h->ops.done)
		h->ops.done(h->cls, q->user);
	free(q);
	*con_cls = NULL;
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct vmw_httpd *h = cls;
	char buf[512];
	size_t n;

	if (!h->ops.log)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	/* A client closing a stream or a connection is routine, not news. */
	h->ops.log(h->cls, strstr(buf, "Failed to send") || strstr(buf, "closed by the client") ? LOG_DEBUG : LOG_INFO,
		   buf);
}

int vmw_httpd_parse_listen(const char *spec, struct sockaddr_storage *ss, bool *loopback, struct vmw_error *err)
{
	char host[256], port[16];
	const char *colon;
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res;
	int r;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
			return vmw_error_set(err, -EINVAL, "listen: '%s' is not [ADDR]:PORT", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(close - spec - 1), spec + 1);
		colon = close + 1;
	} else {
		if (!(colon = strrchr(spec, ':')) || (size_t)(colon - spec) >= sizeof(host))
			return vmw_error_set(err, -EINVAL, "listen: '%s' is not ADDR:PORT", spec);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (!port[0] || strlen(colon + 1) > 5 || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
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

/* Every connection is a file descriptor: let the limit be the connection limit plus room. */
static void raise_fd_limit(struct vmw_httpd *h)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)h->cfg.max_connections + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if ((setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want) && h->ops.log) {
		char msg[200];
		snprintf(msg, sizeof(msg), "only %llu file descriptors (max_connections is %u): raise LimitNOFILE",
			 (unsigned long long)rl.rlim_cur, h->cfg.max_connections);
		h->ops.log(h->cls, LOG_WARNING, msg);
	}
}

static void free_httpd(struct vmw_httpd *h)
{
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h);
}

int vmw_httpd_start(const struct vmw_httpd_config *cfg, const struct vmw_httpd_ops *ops, void *cls,
		    struct vmw_httpd **ret, struct vmw_error *err)
{
	struct vmw_httpd *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss = { 0 };
	bool tls = cfg->tls_cert != NULL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	char host[NI_MAXHOST] = "?";
	int r;

	*ret = NULL;
	if (!h)
		return vmw_error_set(err, -ENOMEM, "out of memory");
	h->cfg = *cfg;
	h->ops = *ops;
	h->cls = cls;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	if ((r = vmw_httpd_parse_listen(cfg->listen, &ss, &h->loopback, err)) < 0)
		goto fail;
	/* Streams are suspended while they wait: only in the epoll mode (a thread
	 * per connection simply waits). */
	flags |= cfg->thread_per_connection ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL
					    : MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	if (tls) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			r = vmw_error_set(err, -ENOTSUP, "this libmicrohttpd was built without TLS (GnuTLS)");
			goto fail;
		}
		flags |= MHD_USE_TLS;
	}
	if (ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		if (IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
			flags |= MHD_USE_DUAL_STACK;
	}
	raise_fd_limit(h);
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h },
		{ MHD_OPTION_SOCK_ADDR, 0, &ss },
		{ cfg->thread_per_connection ? MHD_OPTION_END : MHD_OPTION_THREAD_POOL_SIZE,
		  (intptr_t)MAX(cfg->threads, 1u), NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_connections, NULL },
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)cfg->max_connections_per_ip, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)(unsigned)cfg->idle_timeout_s, NULL },
		{ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h },
		{ MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL },
		{ tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)cfg->tls_key },
		{ tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)cfg->tls_cert },
		{ tls && cfg->tls_priorities ? MHD_OPTION_HTTPS_PRIORITIES : MHD_OPTION_END, 0,
		  (void *)cfg->tls_priorities },
		{ tls && cfg->tls_client_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, (void *)cfg->tls_client_ca },
		{ MHD_OPTION_END, 0, NULL },
	};
	/* An MHD_OPTION_END in the middle ends the array there: move the TLS
	 * options that do not apply out of the way. */
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		if (opts[i].option != MHD_OPTION_END)
			opts[n++] = opts[i];
	opts[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!h->d) {
		r = vmw_error_set(err, -EADDRINUSE, "cannot serve HTTP%s on %s (address in use, or not an address "
				  "of this host?)", tls ? "S" : "", cfg->listen);
		goto fail;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	getnameinfo((struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					    : sizeof(struct sockaddr_in), host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	snprintf(h->url, sizeof(h->url), "%s://%s%s%s:%u/", tls ? "https" : "http", ss.ss_family == AF_INET6 ? "[" : "",
		 host, ss.ss_family == AF_INET6 ? "]" : "", di ? (unsigned)di->port : 0);
	if ((r = -pthread_create(&h->sweeper, NULL, sweeper_main, h)) < 0) {
		MHD_stop_daemon(h->d);
		vmw_error_set(err, r, "cannot start the HTTP sweeper thread: %s", strerror(-r));
		goto fail;
	}
	h->sweeper_started = true;
	*ret = h;
	return 0;
fail:
	free_httpd(h);
	return r;
}

void vmw_httpd_stop(struct vmw_httpd *h)
{
	if (!h)
		return;
	/* Suspended streams must be resumed (they then end) before the daemon stops. */
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	if (h->sweeper_started)
		pthread_join(h->sweeper, NULL);
	MHD_stop_daemon(h->d);
	free_httpd(h);
}

void vmw_httpd_stats(struct vmw_httpd *h, struct vmw_httpd_stats *ret)
{
	pthread_mutex_lock(&h->lock);
	*ret = h->st;
	pthread_mutex_unlock(&h->lock);
}

const char *vmw_httpd_url(const struct vmw_httpd *h)
{
	return h->url;
}

bool vmw_httpd_loopback(const struct vmw_httpd *h)
{
	return h->loopback;
}
