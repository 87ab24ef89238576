/* SPDX-License-Identifier: MIT */
/*
 * index.c - which host runs an instance.
 *
 * Built by polling every agent's /v1/vms in parallel (libcurl multi, at most
 * index_concurrency transfers at once, each with the agent timeouts) every
 * index_interval, and again when a request names an unknown uuid (at most
 * every index_miss_interval). Polling was chosen over a change feed from the
 * agents: the agents' listing is already the authority (the agent reads the
 * libvirt domain XML that nova-compute writes), a poll is one small request
 * per host, it needs no new agent protocol or connection state, and a miss
 * refresh covers an instance created or migrated between polls.
 *
 * A host whose poll fails keeps its last list (its instances answer 503,
 * flagged in listings); after breaker_failures failures in a row its breaker
 * opens for breaker_open: no request and no poll go to it until then.
 */
#include "controller/ctl.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------ pure parts */

void ctl_vms_free(struct ctl_vm *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(v[i].obj);
	free(v);
}

static bool uuid_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return true;
}

int ctl_vms_parse(const json_t *body, struct ctl_vm **ret, size_t *n, struct vmw_error *err)
{
	const json_t *vms = json_object_get(body, "vms");
	struct ctl_vm *v;
	size_t i, k = 0;
	json_t *o;

	*ret = NULL;
	*n = 0;
	if (!json_is_array(vms))
		return vmw_error_set(err, -EINVAL, "the agent's /v1/vms answer has no 'vms' array");
	if (!(v = calloc(json_array_size(vms) + 1, sizeof(*v))))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	json_array_foreach(vms, i, o) {
		const char *uuid = json_string_value(json_object_get(o, "uuid"));
		const char *proj = json_string_value(json_object_get(json_object_get(o, "nova"), "project_id"));
		const char *st = json_string_value(json_object_get(json_object_get(o, "monitoring"), "status"));
		if (!uuid_ok(uuid))
			continue;   /* an explicit target without a UUID: not an instance */
		for (size_t j = 0; j < 36; j++)
			v[k].uuid[j] = (char)tolower((unsigned char)uuid[j]);
		snprintf(v[k].project_id, sizeof(v[k].project_id), "%s", proj && strlen(proj) < 72 ? proj : "");
		snprintf(v[k].status, sizeof(v[k].status), "%s", st ? st : "unknown");
		v[k].obj = json_incref(o);
		k++;
	}
	*ret = v;
	*n = k;
	return 0;
}

void ctl_host_poll_ok(struct ctl_host *h, struct ctl_vm *vms, size_t n, uint64_t now_ns)
{
	ctl_vms_free(h->vms, h->nvms);
	h->vms = vms;
	h->nvms = n;
	h->state = CTL_HOST_UP;
	h->error[0] = '\0';
	h->failures = 0;
	h->breaker_until_ns = 0;
	h->polled_ns = h->ok_ns = now_ns;
}

void ctl_host_poll_failed(struct ctl_host *h, const char *error, uint64_t now_ns, unsigned breaker_failures,
			  uint64_t breaker_open_ns)
{
	h->state = CTL_HOST_DOWN;
	snprintf(h->error, sizeof(h->error), "%s", error);
	h->polled_ns = now_ns;
	if (++h->failures >= breaker_failures)
		h->breaker_until_ns = now_ns + breaker_open_ns;
}

bool ctl_host_breaker_open(const struct ctl_host *h, uint64_t now_ns)
{
	return h->breaker_until_ns > now_ns;
}

/* Is candidate (host hb, vm b) a better home than (ha, a)? */
static bool better(const struct ctl_host *ha, const struct ctl_vm *a, const struct ctl_host *hb,
		   const struct ctl_vm *b)
{
	bool upa = ha->state == CTL_HOST_UP, upb = hb->state == CTL_HOST_UP;
	bool oka = !strcmp(a->status, "ok"), okb = !strcmp(b->status, "ok");
	if (upa != upb)
		return upb;
	if (oka != okb)
		return okb;
	return hb->ok_ns > ha->ok_ns;
}

bool ctl_index_find(const struct ctl_host *hosts, size_t nhosts, const char *uuid, struct ctl_where *ret)
{
	bool found = false;

	for (size_t h = 0; h < nhosts; h++)
		for (size_t i = 0; i < hosts[h].nvms; i++) {
			const struct ctl_vm *v = &hosts[h].vms[i];
			if (strcasecmp(v->uuid, uuid))
				continue;
			if (!found || better(&hosts[ret->host], ret->vm, &hosts[h], v)) {
				ret->host = h;
				ret->vm = v;
				ret->host_up = hosts[h].state == CTL_HOST_UP;
			}
			found = true;
		}
	return found;
}

/* ------------------------------------------------------------ polling */

struct ctl_index {
	const struct ctl_config *cfg;
	struct ctl_agentcli *ac;
	pthread_mutex_t lock;          /* hosts */
	pthread_mutex_t refresh_lock;  /* one refresh at a time */
	pthread_cond_t cond;
	struct ctl_host *hosts;
	size_t nhosts;
	bool stop, started;
	pthread_t thread;
	/* Kept across refreshes (under refresh_lock): its connection cache keeps
	 * the TLS connections to the agents open between polls. */
	CURLM *multi;
	uint64_t last_miss_ns;
	struct ctl_index_stats st;
};

struct ctl_index *ctl_index_new(const struct ctl_config *c)
{
	struct ctl_index *ix = calloc(1, sizeof(*ix));

	if (!ix || !(ix->ac = ctl_agentcli_new(c)) || ctl_index_set_agents(ix, c->agents, c->nagents) < 0) {
		if (ix)
			ctl_agentcli_free(ix->ac);
		free(ix);
		return NULL;
	}
	ix->cfg = c;
	pthread_mutex_init(&ix->lock, NULL);
	pthread_mutex_init(&ix->refresh_lock, NULL);
	pthread_cond_init(&ix->cond, NULL);
	return ix;
}

static void hosts_free(struct ctl_host *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ctl_vms_free(h[i].vms, h[i].nvms);
	free(h);
}

void ctl_index_free(struct ctl_index *ix)
{
	if (!ix)
		return;
	if (ix->started) {
		pthread_mutex_lock(&ix->lock);
		ix->stop = true;
		pthread_cond_broadcast(&ix->cond);
		pthread_mutex_unlock(&ix->lock);
		pthread_join(ix->thread, NULL);
	}
	hosts_free(ix->hosts, ix->nhosts);
	if (ix->multi)
		curl_multi_cleanup(ix->multi);
	ctl_agentcli_free(ix->ac);
	pthread_mutex_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->refresh_lock);
	pthread_cond_destroy(&ix->cond);
	free(ix);
}

int ctl_index_set_agents(struct ctl_index *ix, const struct ctl_agent_cfg *agents, size_t n)
{
	struct ctl_host *nh = calloc(n + 1, sizeof(*nh)), *old;
	size_t nold;

	if (!nh)
		return -ENOMEM;
	if (ix->cfg)
		pthread_mutex_lock(&ix->lock);
	for (size_t i = 0; i < n; i++) {
		nh[i].cfg = agents[i];
		for (size_t j = 0; j < ix->nhosts; j++)
			if (!strcmp(ix->hosts[j].cfg.name, agents[i].name) && !strcmp(ix->hosts[j].cfg.url, agents[i].url)) {
				nh[i] = ix->hosts[j];        /* keeps its list and breaker */
				ix->hosts[j].vms = NULL;
				ix->hosts[j].nvms = 0;
			}
	}
	old = ix->hosts;
	nold = ix->nhosts;
	ix->hosts = nh;
	ix->nhosts = n;
	if (ix->cfg)
		pthread_mutex_unlock(&ix->lock);
	hosts_free(old, nold);
	return 0;
}

struct poll {
	char name[64], url[300];
	CURL *h;
	struct ctl_fetch f;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode result;
	uint64_t t0, t1;
};

static void poll_start(struct ctl_index *ix, CURLM *m, struct poll *p)
{
	p->t0 = vmw_now_ns();
	if (!(p->h = ctl_agentcli_easy(ix->ac, p->url, false))) {
		p->result = CURLE_OUT_OF_MEMORY;
		return;
	}
	curl_easy_setopt(p->h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(p->h, CURLOPT_WRITEFUNCTION, ctl_fetch_write);
	curl_easy_setopt(p->h, CURLOPT_WRITEDATA, &p->f);
	curl_easy_setopt(p->h, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(p->h, CURLOPT_PRIVATE, p);
	curl_multi_add_handle(m, p->h);
}

/* Run the polls, at most `concurrency` at once. */
static void poll_all(struct ctl_index *ix, struct poll *polls, size_t n, struct curl_slist *auth)
{
	CURLM *m = ix->multi ? ix->multi : (ix->multi = curl_multi_init());
	size_t next = 0, running = 0;
	int still;

	if (!m)
		return;
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)MAX(n, 16));
	while (next < n || running) {
		CURLMsg *msg;
		int left;
		while (next < n && running < ix->cfg->index_concurrency) {
			poll_start(ix, m, &polls[next]);
			if (polls[next].h) {
				curl_easy_setopt(polls[next].h, CURLOPT_HTTPHEADER, auth);
				running++;
			}
			next++;
		}
		curl_multi_perform(m, &still);
		while ((msg = curl_multi_info_read(m, &left))) {
			struct poll *p = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
			p->result = msg->data.result;
			p->t1 = vmw_now_ns();
			curl_multi_remove_handle(m, msg->easy_handle);
			running--;
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
}

/* A poll's answer: vms (0) or an error message. */
static int poll_result(struct poll *p, struct ctl_vm **vms, size_t *nvms, char *error, size_t size)
{
	long status = 0;
	struct vmw_error err = { 0 };
	json_t *j;

	if (p->result != CURLE_OK) {
		snprintf(error, size, "%s", p->errbuf[0] ? p->errbuf : curl_easy_strerror(p->result));
		return -1;
	}
	curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(error, size, "the agent answered HTTP %ld to /v1/vms", status);
		return -1;
	}
	if (!(j = json_loadb(p->f.body ? p->f.body : "", p->f.len, 0, NULL)) ||
	    ctl_vms_parse(j, vms, nvms, &err) < 0) {
		snprintf(error, size, "%.200s", j ? err.msg : "the agent's /v1/vms answer is not JSON");
		json_decref(j);
		return -1;
	}
	json_decref(j);
	return 0;
}

static void apply(struct ctl_index *ix, struct poll *polls, size_t n)
{
	uint64_t open_ns = (uint64_t)(ix->cfg->breaker_open_s * 1e9);

	for (size_t i = 0; i < n; i++) {
		struct poll *p = &polls[i];
		struct ctl_vm *vms = NULL;
		size_t nvms = 0;
		char error[256];
		int r = poll_result(p, &vms, &nvms, error, sizeof(error));

		pthread_mutex_lock(&ix->lock);
		for (size_t h = 0; h < ix->nhosts; h++) {
			struct ctl_host *host = &ix->hosts[h];
			if (strcmp(host->cfg.name, p->name))
				continue;
			if (r == 0) {
				ctl_host_poll_ok(host, TAKE_PTR(vms), nvms, p->t1);
			} else {
				if (host->state != CTL_HOST_DOWN)
					ctl_log(CTL_LOG_WARNING, "index: agent %s (%s) does not answer: %s", host->cfg.name,
						host->cfg.url, error);
				ctl_host_poll_failed(host, error, p->t1 ? p->t1 : vmw_now_ns(), ix->cfg->breaker_failures,
						     open_ns);
				ix->st.poll_failures++;
			}
			host->poll_seconds = (double)(p->t1 - p->t0) / 1e9;
		}
		ix->st.polls++;
		pthread_mutex_unlock(&ix->lock);
		ctl_vms_free(vms, vms ? nvms : 0);
		if (p->h)
			curl_easy_cleanup(p->h);
		ctl_fetch_free(&p->f);
	}
}

void ctl_index_refresh(struct ctl_index *ix, bool force)
{
	struct poll *polls;
	struct curl_slist *auth = NULL;
	size_t n = 0;
	uint64_t t0 = vmw_now_ns();

	pthread_mutex_lock(&ix->refresh_lock);
	pthread_mutex_lock(&ix->lock);
	polls = calloc(ix->nhosts + 1, sizeof(*polls));
	for (size_t h = 0; polls && h < ix->nhosts; h++) {
		if (!force && ctl_host_breaker_open(&ix->hosts[h], t0))
			continue;
		snprintf(polls[n].name, sizeof(polls[n].name), "%s", ix->hosts[h].cfg.name);
		snprintf(polls[n].url, sizeof(polls[n].url), "%s/v1/vms", ix->hosts[h].cfg.url);
		n++;
	}
	pthread_mutex_unlock(&ix->lock);
	if (ix->cfg->agent_token) {
		char line[1100];
		snprintf(line, sizeof(line), "Authorization: Bearer %s", ix->cfg->agent_token);
		auth = curl_slist_append(NULL, line);
		explicit_bzero(line, sizeof(line));
	}
	if (polls) {
		poll_all(ix, polls, n, auth);
		apply(ix, polls, n);
	}
	curl_slist_free_all(auth);
	free(polls);
	pthread_mutex_lock(&ix->lock);
	ix->st.refreshes++;
	ix->st.last_refresh_seconds = (double)(vmw_now_ns() - t0) / 1e9;
	pthread_mutex_unlock(&ix->lock);
	pthread_mutex_unlock(&ix->refresh_lock);
}

void ctl_index_refresh_miss(struct ctl_index *ix)
{
	uint64_t now = vmw_now_ns(), gap = (uint64_t)(ix->cfg->index_miss_interval_s * 1e9);
	bool go;

	pthread_mutex_lock(&ix->lock);
	go = now - ix->last_miss_ns >= gap || !ix->last_miss_ns;
	if (go) {
		ix->last_miss_ns = now;
		ix->st.miss_refreshes++;
	}
	pthread_mutex_unlock(&ix->lock);
	if (go)
		ctl_index_refresh(ix, false);
}

static void *index_main(void *arg)
{
	struct ctl_index *ix = arg;

	pthread_mutex_lock(&ix->lock);
	while (!ix->stop) {
		uint64_t deadline = vmw_wall_ns() + (uint64_t)(ix->cfg->index_interval_s * 1e9);
		struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ull),
				       .tv_nsec = (long)(deadline % 1000000000ull) };
		if (pthread_cond_timedwait(&ix->cond, &ix->lock, &ts) == 0 || ix->stop)
			continue;
		pthread_mutex_unlock(&ix->lock);
		ctl_index_refresh(ix, false);
		pthread_mutex_lock(&ix->lock);
	}
	pthread_mutex_unlock(&ix->lock);
	return NULL;
}

int ctl_index_start(struct ctl_index *ix)
{
	int r;
	ctl_index_refresh(ix, true);
	if ((r = -pthread_create(&ix->thread, NULL, index_main, ix)) == 0)
		ix->started = true;
	return r;
}

void ctl_index_with(struct ctl_index *ix, void (*fn)(void *opaque, const struct ctl_host *hosts, size_t n,
						      uint64_t now_ns), void *opaque)
{
	pthread_mutex_lock(&ix->lock);
	fn(opaque, ix->hosts, ix->nhosts, vmw_now_ns());
	pthread_mutex_unlock(&ix->lock);
}

void ctl_index_report(struct ctl_index *ix, const char *host, bool ok, const char *error)
{
	uint64_t now = vmw_now_ns();

	pthread_mutex_lock(&ix->lock);
	for (size_t h = 0; h < ix->nhosts; h++) {
		struct ctl_host *x = &ix->hosts[h];
		if (strcmp(x->cfg.name, host))
			continue;
		if (ok) {
			x->failures = 0;
			x->breaker_until_ns = 0;
		} else {
			if (x->state != CTL_HOST_DOWN)
				ctl_log(CTL_LOG_WARNING, "agent %s (%s) failed: %s", x->cfg.name, x->cfg.url, error);
			ctl_host_poll_failed(x, error, now, ix->cfg->breaker_failures,
					     (uint64_t)(ix->cfg->breaker_open_s * 1e9));
		}
	}
	pthread_mutex_unlock(&ix->lock);
}

void ctl_index_stats(struct ctl_index *ix, struct ctl_index_stats *ret)
{
	pthread_mutex_lock(&ix->lock);
	*ret = ix->st;
	pthread_mutex_unlock(&ix->lock);
}
