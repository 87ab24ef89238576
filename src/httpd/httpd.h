/* SPDX-License-Identifier: MIT */
/*
 * httpd.h - a libmicrohttpd server for a hostile network, shared by the front
 * ends that serve HTTP (the agent and the controller). It owns what both need
 * and neither should get wrong on its own:
 *
 *   - the listen address (ADDR:PORT, [ADDR6]:PORT, *:PORT), TLS from PEM text
 *     (with an optional client CA for mutual TLS);
 *   - limits: connections in all and per client address, an idle timeout,
 *     the file-descriptor limit raised to fit them;
 *   - a request deadline: the request line, headers and body must arrive
 *     within header_timeout of the accept, however slowly the bytes trickle
 *     in (libmicrohttpd's own timeout restarts with every byte; a sweeper
 *     thread shuts such sockets down); the next request on a kept-alive
 *     connection within idle_timeout + header_timeout of the previous one's
 *     end;
 *   - request bodies are counted and dropped, never more than max_body_bytes;
 *   - streams: a front end may attach a long-lived response (an event
 *     stream) to its connection; the sweeper offers it a tick every 100 ms
 *     (resume a suspended stream, drop a client that stopped reading) and
 *     says when the connection has gone.
 *
 * The front end answers requests; it never sees a request before its headers
 * are complete.
 */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmw_error;
struct vmw_httpd;
struct vmw_httpd_conn;

struct vmw_httpd_config {
	const char *listen;          /* ADDR:PORT, [ADDR6]:PORT, *:PORT */
	bool thread_per_connection;  /* else `threads` epoll threads serve every connection */
	unsigned threads;
	unsigned max_connections, max_connections_per_ip;
	double header_timeout_s;     /* request line, headers and body within this of the accept */
	double idle_timeout_s;       /* libmicrohttpd's inactivity timeout (whole seconds) */
	int send_buffer_bytes;       /* SO_SNDBUF of every connection, 0: the kernel's */
	size_t max_body_bytes;       /* a longer request body closes the connection */
	/* TLS (all PEM text, NULL: plain HTTP); the caller keeps them until stop. */
	const char *tls_cert, *tls_key;
	const char *tls_client_ca;   /* clients need a certificate this CA signed */
	const char *tls_priorities;  /* GnuTLS priority string, NULL: libmicrohttpd's */
};

struct vmw_httpd_ops {
	/* Answer a request (headers complete, body read and dropped). */
	enum MHD_Result (*request)(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				   void *req);
	/* Optional: state for one request, made when its headers are in (NULL:
	 * out of memory, the connection is closed); `done` frees it. */
	void *(*begin)(void *cls, struct MHD_Connection *c, const char *url, const char *method);
	void (*done)(void *cls, void *req);
	/* Optional, for attached streams, called under the server's lock: every
	 * sweeper tick (and once more with stopping set when the server stops);
	 * true shuts the connection down, and the stream at once gets a tick
	 * with stopping set: it must end (and be resumed if it was suspended),
	 * or the connection would stay suspended for ever. */
	bool (*tick)(void *cls, void *stream, uint64_t now_ns, bool stopping);
	/* Optional: the connection of an attached stream has closed (under the lock). */
	void (*gone)(void *cls, void *stream);
	/* Optional: libmicrohttpd's messages, with a syslog level (LOG_DEBUG for
	 * a client that closed its connection or stream: routine, not news). */
	void (*log)(void *cls, int level, const char *msg);
};

struct vmw_httpd_stats {
	uint64_t connections;        /* accepted */
	uint64_t header_timeouts;    /* shut down: headers too slow */
	uint64_t stream_drops;       /* shut down: a stream's tick asked for it */
};

/* Start serving; `ops` and `cls` stay the caller's until vmw_httpd_stop. */
int vmw_httpd_start(const struct vmw_httpd_config *cfg, const struct vmw_httpd_ops *ops, void *cls,
		    struct vmw_httpd **ret, struct vmw_error *err);
/* Tick every attached stream with stopping set, then stop (waits for every
 * connection's end). NULL is a no-op. */
void vmw_httpd_stop(struct vmw_httpd *h);

void vmw_httpd_stats(struct vmw_httpd *h, struct vmw_httpd_stats *ret);
/* "http://127.0.0.1:9000/" (the bound port), for the log. */
const char *vmw_httpd_url(const struct vmw_httpd *h);
/* Does it listen on a loopback address only? */
bool vmw_httpd_loopback(const struct vmw_httpd *h);

/* Streams. The server's lock also guards what the front end's ticks read
 * (a stream's "suspended" flag, say). */
void vmw_httpd_lock(struct vmw_httpd *h);
void vmw_httpd_unlock(struct vmw_httpd *h);
/* The connection a request arrived on (NULL if untracked: out of memory). */
struct vmw_httpd_conn *vmw_httpd_conn(struct MHD_Connection *c);
/* Attach stream (NULL: detach) to cn; under the lock. */
void vmw_httpd_set_stream(struct vmw_httpd_conn *cn, void *stream);

/* Resolve ADDR:PORT / [ADDR6]:PORT / *:PORT into ss (exposed for the unit
 * tests and for configuration checks). 0 or -EINVAL with err set. */
struct sockaddr_storage;
int vmw_httpd_parse_listen(const char *spec, struct sockaddr_storage *ss, bool *loopback, struct vmw_error *err);
