/* SPDX-License-Identifier: MIT */
/*
 * agentcli.c - requests to the host agents over libcurl: mutual TLS (the
 * agents' CA, the controller's client certificate), the agents' bearer token,
 * timeouts on every call. Answers are bounded (MAX_BODY) except event
 * streams, which are relayed through a pipe as they come.
 */
#include "controller/ctl.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#define MAX_BODY (64u << 20)

struct ctl_agentcli {
	const struct ctl_config *cfg;
	struct curl_slist *auth;       /* Authorization: Bearer ... */
	/* TLS sessions and DNS answers shared by every request (a new
	 * connection resumes a session); open connections are kept per thread
	 * (thread_handle) so that a tenant's keep-alive connection reuses the
	 * one to the agent instead of a new TLS handshake. */
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *opaque)
{
	struct ctl_agentcli *ac = opaque;
	(void)h;
	(void)access;
	pthread_mutex_lock(&ac->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *opaque)
{
	struct ctl_agentcli *ac = opaque;
	(void)h;
	pthread_mutex_unlock(&ac->locks[data]);
}

struct ctl_agentcli *ctl_agentcli_new(const struct ctl_config *c)
{
	struct ctl_agentcli *ac = calloc(1, sizeof(*ac));
	char line[1100];

	if (!ac)
		return NULL;
	ac->cfg = c;
	for (size_t i = 0; i < ARRAY_SIZE(ac->locks); i++)
		pthread_mutex_init(&ac->locks[i], NULL);
	if ((ac->share = curl_share_init())) {
		curl_share_setopt(ac->share, CURLSHOPT_LOCKFUNC, share_lock);
		curl_share_setopt(ac->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
		curl_share_setopt(ac->share, CURLSHOPT_USERDATA, ac);
		curl_share_setopt(ac->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
		curl_share_setopt(ac->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	}
	if (c->agent_token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", c->agent_token);
		ac->auth = curl_slist_append(NULL, line);
		explicit_bzero(line, sizeof(line));
	}
	return ac;
}

void ctl_agentcli_free(struct ctl_agentcli *ac)
{
	if (!ac)
		return;
	curl_slist_free_all(ac->auth);
	if (ac->share)
		curl_share_cleanup(ac->share);
	for (size_t i = 0; i < ARRAY_SIZE(ac->locks); i++)
		pthread_mutex_destroy(&ac->locks[i]);
	free(ac);
}

size_t ctl_fetch_write(char *p, size_t sz, size_t n, void *opaque)
{
	struct ctl_fetch *f = opaque;
	size_t len = sz * n;
	char *nb;

	if (f->len + len + 1 > MAX_BODY || !(nb = realloc(f->body, f->len + len + 1)))
		return 0;   /* curl fails the transfer */
	memcpy(nb + f->len, p, len);
	f->len += len;
	nb[f->len] = '\0';
	f->body = nb;
	return len;
}

void ctl_fetch_free(struct ctl_fetch *f)
{
	free(f->body);
	f->body = NULL;
	f->len = 0;
}

static void setup(struct ctl_agentcli *ac, CURL *h, const char *url, bool stream)
{
	const struct ctl_config *c = ac->cfg;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->agent_connect_timeout_s * 1000));
	if (ac->share)
		curl_easy_setopt(h, CURLOPT_SHARE, ac->share);
	if (!stream)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->agent_timeout_s * 1000));
	else   /* a stream lives long; a dead one is noticed by a stalled transfer */
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L),
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	if (c->agent_ca) {
		/* Only the private CA: without this, libcurl (GnuTLS) would also load
		 * the system's CA directory for every connection (~150 certificates,
		 * tens of ms each time: 32 parallel polls took seconds). */
		curl_easy_setopt(h, CURLOPT_CAINFO, c->agent_ca);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	if (c->client_cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->client_cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->client_key);
	}
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
}

void *ctl_agentcli_easy(struct ctl_agentcli *ac, const char *url, bool stream)
{
	CURL *h = curl_easy_init();
	if (h)
		setup(ac, h, url, stream);
	return h;
}

/* This thread's handle (its connection cache survives curl_easy_reset),
 * freed when the thread ends. Threads are the tenant connections'. */
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_handle_free(void *h)
{
	curl_easy_cleanup(h);
}

static void thread_key_init(void)
{
	pthread_key_create(&thread_key, thread_handle_free);
}

static CURL *thread_handle(struct ctl_agentcli *ac, const char *url)
{
	CURL *h;

	pthread_once(&thread_once, thread_key_init);
	if ((h = pthread_getspecific(thread_key))) {
		curl_easy_reset(h);
		setup(ac, h, url, false);
		return h;
	}
	if ((h = ctl_agentcli_easy(ac, url, false)))
		pthread_setspecific(thread_key, h);
	return h;
}

static size_t on_header(char *p, size_t sz, size_t n, void *opaque)
{
	struct ctl_fetch *f = opaque;
	size_t len = sz * n, vl;
	const char *v;
	static const struct { const char *name; size_t off, size; } keep[] = {
		{ "content-type:", offsetof(struct ctl_fetch, content_type), sizeof(((struct ctl_fetch *)0)->content_type) },
		{ "retry-after:", offsetof(struct ctl_fetch, retry_after), sizeof(((struct ctl_fetch *)0)->retry_after) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		size_t nl = strlen(keep[i].name);
		if (len <= nl || strncasecmp(p, keep[i].name, nl))
			continue;
		v = p + nl;
		vl = len - nl;
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < keep[i].size)
			snprintf((char *)f + keep[i].off, keep[i].size, "%.*s", (int)vl, v);
	}
	return len;
}

static struct curl_slist *headers(struct ctl_agentcli *ac, const char *request_id, const char *client_id,
				  const char *last_event_id)
{
	struct curl_slist *h = NULL;
	char line[300];

	for (const struct curl_slist *a = ac->auth; a; a = a->next)
		h = curl_slist_append(h, a->data);
	if (request_id) {
		snprintf(line, sizeof(line), "X-OpenStack-Request-ID: %.64s", request_id);
		h = curl_slist_append(h, line);
	}
	if (client_id) {
		snprintf(line, sizeof(line), "X-Client-Id: %.150s", client_id);
		h = curl_slist_append(h, line);
	}
	if (last_event_id) {
		snprintf(line, sizeof(line), "Last-Event-ID: %.32s", last_event_id);
		h = curl_slist_append(h, line);
	}
	return h;
}

void ctl_agent_fetch(struct ctl_agentcli *ac, const char *base, const char *path, const char *request_id,
		     const char *client_id, struct ctl_fetch *ret)
{
	char url[2048], errbuf[CURL_ERROR_SIZE] = "";
	CURL *h;
	struct curl_slist *hdr;
	CURLcode cr;

	memset(ret, 0, sizeof(*ret));
	snprintf(url, sizeof(url), "%s%s", base, path);
	if (!(h = thread_handle(ac, url))) {
		snprintf(ret->error, sizeof(ret->error), "out of memory");
		return;
	}
	hdr = headers(ac, request_id, client_id, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ctl_fetch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, ret);
	if ((cr = curl_easy_perform(h)) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ret->status);
	else
		snprintf(ret->error, sizeof(ret->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cr));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdr);
}

/* ------------------------------------------------------------ event streams */

struct relay {
	struct ctl_agentcli *ac;
	char url[2048];
	struct curl_slist *hdr;
	int wfd;                       /* the pipe's write end */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool answered;                 /* headers in (status known) or failed */
	bool detached;                 /* the requester went on: the relay frees itself */
	struct ctl_fetch head;         /* status, content type; the body when status != 200 */
};

static void relay_answered(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	if (!r->answered) {
		r->answered = true;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
}

static size_t relay_write(char *p, size_t sz, size_t n, void *opaque)
{
	struct relay *r = opaque;
	size_t len = sz * n, off = 0;

	if (r->head.status != 200)
		return ctl_fetch_write(p, sz, n, &r->head);   /* an error document: small, kept */
	relay_answered(r);
	while (off < len) {   /* blocks while the pipe is full: the tenant's pace */
		ssize_t k = write(r->wfd, p + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return 0;   /* the tenant went away (EPIPE): end the transfer */
		off += (size_t)k;
	}
	return len;
}

static size_t relay_header(char *p, size_t sz, size_t n, void *opaque)
{
	struct relay *r = opaque;
	if (sz * n >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* "HTTP/1.1 200 OK": the status of this (final) answer */
		const char *sp = memchr(p, ' ', sz * n);
		r->head.status = sp ? strtol(sp + 1, NULL, 10) : 0;
	}
	if (sz * n <= 2 && r->head.status == 200)
		relay_answered(r);   /* end of headers of a 200: the stream starts */
	return on_header(p, sz, n, &r->head);
}

static void relay_free(struct relay *r)
{
	curl_slist_free_all(r->hdr);
	ctl_fetch_free(&r->head);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = ctl_agentcli_easy(r->ac, r->url, true);
	CURLcode cr = CURLE_OUT_OF_MEMORY;
	bool detached;

	if (h) {
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdr);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, relay_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, relay_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 16384L);
		cr = curl_easy_perform(h);
		curl_easy_cleanup(h);
	}
	close(r->wfd);
	pthread_mutex_lock(&r->lock);
	if (!r->answered) {
		if (cr != CURLE_OK) {
			r->head.status = 0;
			snprintf(r->head.error, sizeof(r->head.error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cr));
		}
		r->answered = true;
		pthread_cond_broadcast(&r->cond);
	}
	detached = r->detached;
	r->detached = true;
	pthread_mutex_unlock(&r->lock);
	if (detached)
		relay_free(r);
	return NULL;
}

void ctl_agent_stream(struct ctl_agentcli *ac, const char *base, const char *path, const char *request_id,
		      const char *last_event_id, struct ctl_fetch *ret, int *fd)
{
	struct relay *r = calloc(1, sizeof(*r));
	int p[2] = { -1, -1 };
	pthread_t t;
	bool done;

	memset(ret, 0, sizeof(*ret));
	*fd = -1;
	if (!r || pipe2(p, O_CLOEXEC) < 0) {
		free(r);
		snprintf(ret->error, sizeof(ret->error), "out of memory or file descriptors");
		return;
	}
	r->ac = ac;
	r->wfd = p[1];
	snprintf(r->url, sizeof(r->url), "%s%s", base, path);
	r->hdr = headers(ac, request_id, NULL, last_event_id);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (pthread_create(&t, NULL, relay_main, r) != 0) {
		close(p[0]);
		close(p[1]);
		relay_free(r);
		snprintf(ret->error, sizeof(ret->error), "cannot start a relay thread");
		return;
	}
	pthread_detach(t);
	pthread_mutex_lock(&r->lock);
	while (!r->answered)
		pthread_cond_wait(&r->cond, &r->lock);
	ret->status = r->head.status;
	memcpy(ret->content_type, r->head.content_type, sizeof(ret->content_type));
	memcpy(ret->retry_after, r->head.retry_after, sizeof(ret->retry_after));
	memcpy(ret->error, r->head.error, sizeof(ret->error));
	if (ret->status != 200) {
		/* The relay has ended (an error answer is read whole first). */
		ret->body = TAKE_PTR(r->head.body);
		ret->len = r->head.len;
		r->head.len = 0;
	}
	done = r->detached;
	r->detached = true;
	pthread_mutex_unlock(&r->lock);
	if (done)
		relay_free(r);
	if (ret->status == 200)
		*fd = p[0];
	else
		close(p[0]);
}
