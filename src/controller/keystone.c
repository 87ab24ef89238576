/* SPDX-License-Identifier: MIT */
/*
 * keystone.c - Keystone over libcurl: the controller's own service token
 * (password login scoped to the service project; the user needs the
 * `service` role, which Keystone's identity:validate_token allows), and
 * online validation `GET /v3/auth/tokens?nocatalog` with X-Subject-Token.
 * Keystone answers 404 for a garbage, expired or revoked token (and for an
 * application credential with access rules, which this service does not
 * enforce: it sends no OpenStack-Identity-Access-Rules header) and 401 when
 * the service token itself expired (then: log in again, once).
 */
#include "controller/ctl.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

struct ctl_keystone {
	const struct ctl_config *cfg;
	pthread_mutex_t lock;           /* the service token */
	char *service_token;
	uint64_t service_expires_ns;
	struct ctl_keystone_stats st;
};

struct ks_reply {
	long status;
	struct ctl_fetch body;
	char subject_token[1024];
	char error[CURL_ERROR_SIZE];
};

struct ctl_keystone *ctl_keystone_new(const struct ctl_config *c)
{
	struct ctl_keystone *ks = calloc(1, sizeof(*ks));
	if (!ks)
		return NULL;
	ks->cfg = c;
	pthread_mutex_init(&ks->lock, NULL);
	return ks;
}

void ctl_keystone_free(struct ctl_keystone *ks)
{
	if (!ks)
		return;
	if (ks->service_token)
		explicit_bzero(ks->service_token, strlen(ks->service_token));
	free(ks->service_token);
	pthread_mutex_destroy(&ks->lock);
	free(ks);
}

static size_t on_header(char *p, size_t sz, size_t n, void *opaque)
{
	struct ks_reply *r = opaque;
	size_t len = sz * n;
	static const char name[] = "x-subject-token:";

	if (len > sizeof(name) && !strncasecmp(p, name, sizeof(name) - 1)) {
		const char *v = p + sizeof(name) - 1;
		size_t vl = len - (sizeof(name) - 1);
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(r->subject_token))
			snprintf(r->subject_token, sizeof(r->subject_token), "%.*s", (int)vl, v);
	}
	return len;
}

/* One request to Keystone: path under keystone_url; body NULL = GET. */
static void ks_request(struct ctl_keystone *ks, const char *path, const char *body, const char *auth,
		       const char *subject, struct ks_reply *r)
{
	const struct ctl_config *c = ks->cfg;
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char url[1024], line[1200];
	uint64_t t0 = vmw_now_ns();

	memset(r, 0, sizeof(*r));
	if (!h) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		return;
	}
	snprintf(url, sizeof(url), "%s%s", c->keystone_url, path);
	hdr = curl_slist_append(hdr, "Accept: application/json");
	if (body)
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (auth) {
		snprintf(line, sizeof(line), "X-Auth-Token: %s", auth);
		hdr = curl_slist_append(hdr, line);
	}
	if (subject) {
		snprintf(line, sizeof(line), "X-Subject-Token: %s", subject);
		hdr = curl_slist_append(hdr, line);
	}
	explicit_bzero(line, sizeof(line));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->keystone_timeout_s * 1000));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(MIN(c->keystone_timeout_s, 2.0) * 1000));
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->error);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ctl_fetch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	if (c->keystone_ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->keystone_ca);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	pthread_mutex_lock(&ks->lock);
	ks->st.requests++;
	ks->st.failures += r->status == 0 || r->status >= 500;
	ks->st.last_seconds = (double)(vmw_now_ns() - t0) / 1e9;
	pthread_mutex_unlock(&ks->lock);
}

/* Log in as the service user; under ks->lock. 0 or -errno. */
static int service_login(struct ctl_keystone *ks)
{
	const struct ctl_config *c = ks->cfg;
	struct ks_reply r;
	json_t *req = json_pack("{s:{s:{s:[s], s:{s:{s:s, s:{s:s}, s:s}}}, s:{s:{s:s, s:{s:s}}}}}",
		"auth", "identity", "methods", "password", "password", "user", "name", c->service_user,
		"domain", "name", c->service_user_domain, "password", c->service_password,
		"scope", "project", "name", c->service_project, "domain", "name", c->service_project_domain);
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_t *j;
	struct ctl_creds creds;

	json_decref(req);
	if (!body)
		return -ENOMEM;
	pthread_mutex_unlock(&ks->lock);
	ks_request(ks, "/auth/tokens?nocatalog", body, NULL, NULL, &r);
	pthread_mutex_lock(&ks->lock);
	explicit_bzero(body, strlen(body));
	free(body);
	ks->st.service_logins++;
	if (r.status != 201 || !r.subject_token[0]) {
		ctl_log(CTL_LOG_ERR, "keystone: the service user '%s' cannot log in (HTTP %ld%s%s): check "
			"service_user, service_password and that it has a role in project '%s'", c->service_user,
			r.status, r.error[0] ? ": " : "", r.error, c->service_project);
		ctl_fetch_free(&r.body);
		return r.status ? -EACCES : -EHOSTUNREACH;
	}
	j = json_loadb(r.body.body ? r.body.body : "", r.body.len, 0, NULL);
	ctl_fetch_free(&r.body);
	free(ks->service_token);
	ks->service_token = strdup(r.subject_token);
	explicit_bzero(r.subject_token, sizeof(r.subject_token));
	ks->service_expires_ns = j && ctl_creds_parse(j, &creds, NULL) == 0 ? creds.expires_wall_ns
									     : vmw_wall_ns() + 600000000000ull;
	json_decref(j);
	return ks->service_token ? 0 : -ENOMEM;
}

/* A copy of a service token valid for at least another minute (fresh: log in again). */
static char *service_token(struct ctl_keystone *ks, bool fresh)
{
	char *t = NULL;
	pthread_mutex_lock(&ks->lock);
	if (fresh || !ks->service_token || ks->service_expires_ns < vmw_wall_ns() + 60000000000ull)
		service_login(ks);
	if (ks->service_token)
		t = strdup(ks->service_token);
	pthread_mutex_unlock(&ks->lock);
	return t;
}

enum ctl_auth_result ctl_keystone_validate(void *opaque, const char *token, struct ctl_creds *creds)
{
	struct ctl_keystone *ks = opaque;
	struct ks_reply r = { 0 };
	struct vmw_error err = { 0 };
	json_t *j;

	if (!*token || strlen(token) > 1000 || strpbrk(token, "\r\n"))
		return CTL_AUTH_INVALID;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *st = service_token(ks, attempt > 0);
		if (!st)
			return CTL_AUTH_UNAVAILABLE;
		ks_request(ks, "/auth/tokens?nocatalog", NULL, st, token, &r);
		explicit_bzero(st, strlen(st));
		free(st);
		if (r.status != 401)
			break;
		ctl_fetch_free(&r.body);   /* our service token expired or was revoked */
	}
	if (r.status == 404) {
		ctl_fetch_free(&r.body);
		return CTL_AUTH_INVALID;
	}
	if (r.status != 200) {
		ctl_log(CTL_LOG_WARNING, "keystone: validating a token failed: %s%s(HTTP %ld)", r.error,
			r.error[0] ? " " : "", r.status);
		ctl_fetch_free(&r.body);
		return CTL_AUTH_UNAVAILABLE;
	}
	j = json_loadb(r.body.body ? r.body.body : "", r.body.len, 0, NULL);
	ctl_fetch_free(&r.body);
	if (!j || ctl_creds_parse(j, creds, &err) < 0) {
		ctl_log(CTL_LOG_WARNING, "keystone: %s", j ? err.msg : "validation answer is not JSON");
		json_decref(j);
		return CTL_AUTH_UNAVAILABLE;
	}
	json_decref(j);
	return CTL_AUTH_OK;
}

void ctl_keystone_stats(struct ctl_keystone *ks, struct ctl_keystone_stats *ret)
{
	pthread_mutex_lock(&ks->lock);
	*ret = ks->st;
	pthread_mutex_unlock(&ks->lock);
}
