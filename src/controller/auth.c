/* SPDX-License-Identifier: MIT */
/*
 * auth.c - who a Keystone token belongs to, and the token cache.
 *
 * Tokens are validated online (Fernet tokens cannot be checked without
 * Keystone's keys, and roles are computed at validation). Like
 * keystonemiddleware, successes are cached by the token's SHA-256 for
 * min(token_cache_ttl, the token's expiry): a revoked token keeps working
 * until its entry expires, which is what token_cache_ttl bounds. Failures
 * are cached for negative_cache_ttl (a flood of garbage tokens costs one
 * Keystone call each per that time at most). Validation is single-flight:
 * requests with the same uncached token wait for one call. "Keystone
 * unavailable" is never cached.
 */
#include "controller/ctl.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------ token documents */

static void copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/* "2026-12-02T16:25:51.000000Z" -> ns since the epoch; 0 when unparsable. */
static uint64_t parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end;
	time_t t;

	if (!s || !(end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)))
		return 0;
	t = timegm(&tm);
	return t > 0 ? (uint64_t)t * 1000000000ull : 0;
}

int ctl_creds_parse(const json_t *body, struct ctl_creds *c, struct vmw_error *err)
{
	const json_t *tok = json_object_get(body, "token"), *roles, *proj, *user, *ac, *methods;
	size_t i;
	json_t *v;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(tok))
		return vmw_error_set(err, -EINVAL, "Keystone's answer has no token object");
	user = json_object_get(tok, "user");
	if (!json_is_string(json_object_get(user, "id")))
		return vmw_error_set(err, -EINVAL, "Keystone's token has no user id");
	copy(c->user_id, sizeof(c->user_id), json_string_value(json_object_get(user, "id")));
	if (!(c->expires_wall_ns = parse_time(json_string_value(json_object_get(tok, "expires_at")))))
		return vmw_error_set(err, -EINVAL, "Keystone's token has no readable expires_at");
	proj = json_object_get(tok, "project");
	if (json_is_string(json_object_get(proj, "id"))) {
		c->scope = CTL_SCOPE_PROJECT;
		copy(c->project_id, sizeof(c->project_id), json_string_value(json_object_get(proj, "id")));
	} else if (json_is_object(json_object_get(tok, "domain"))) {
		c->scope = CTL_SCOPE_DOMAIN;
	} else if (json_object_get(tok, "system")) {
		c->scope = CTL_SCOPE_SYSTEM;
	}
	roles = json_object_get(tok, "roles");
	json_array_foreach(roles, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		if (name && c->nroles < CTL_MAX_ROLES && strlen(name) < sizeof(c->roles[0]))
			copy(c->roles[c->nroles++], sizeof(c->roles[0]), name);
	}
	methods = json_object_get(tok, "methods");
	json_array_foreach(methods, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), "application_credential"))
			c->app_cred = true;
	ac = json_object_get(tok, "application_credential");
	if (ac) {
		const json_t *rules = json_object_get(ac, "access_rules");
		c->app_cred = true;
		c->access_rules = rules && !(json_is_array(rules) && json_array_size(rules) == 0) && !json_is_null(rules);
	}
	return 0;
}

bool ctl_creds_has_role(const struct ctl_creds *c, const char *role)
{
	for (unsigned i = 0; i < c->nroles; i++)
		if (!strcasecmp(c->roles[i], role))
			return true;
	return false;
}

const char *ctl_creds_refusal(const struct ctl_creds *c)
{
	switch (c->scope) {
	case CTL_SCOPE_PROJECT:
		break;
	case CTL_SCOPE_DOMAIN:
		return "a domain-scoped token cannot use this API: ask for a project-scoped token";
	case CTL_SCOPE_SYSTEM:
		return "a system-scoped token cannot use this API: ask for a project-scoped token";
	default:
		return "an unscoped token cannot use this API: ask for a project-scoped token";
	}
	if (c->access_rules)
		return "application credentials with access rules are not accepted by this service";
	if (!c->nroles)
		return "the token carries no role";
	return NULL;
}

/* ------------------------------------------------------------ the cache */

enum entry_state { E_PENDING, E_OK, E_INVALID, E_FAILED };

struct entry {
	struct entry *next;
	uint8_t key[32];              /* SHA-256 of the token */
	enum entry_state state;
	unsigned waiters;
	uint64_t until_ns;            /* wall clock */
	struct ctl_creds creds;
};

struct ctl_tokcache {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct entry **buckets;
	size_t nbuckets, n, capacity;
	uint64_t ttl_ns, negative_ttl_ns;
	struct ctl_tokcache_stats st;
};

struct ctl_tokcache *ctl_tokcache_new(unsigned capacity, double ttl_s, double negative_ttl_s)
{
	struct ctl_tokcache *tc = calloc(1, sizeof(*tc));

	if (!tc)
		return NULL;
	tc->capacity = capacity ? capacity : 1;
	tc->nbuckets = 64;
	while (tc->nbuckets < tc->capacity && tc->nbuckets < (1u << 22))
		tc->nbuckets <<= 1;
	if (!(tc->buckets = calloc(tc->nbuckets, sizeof(*tc->buckets)))) {
		free(tc);
		return NULL;
	}
	tc->ttl_ns = (uint64_t)(ttl_s * 1e9);
	tc->negative_ttl_ns = (uint64_t)(negative_ttl_s * 1e9);
	pthread_mutex_init(&tc->lock, NULL);
	pthread_cond_init(&tc->cond, NULL);
	return tc;
}

void ctl_tokcache_free(struct ctl_tokcache *tc)
{
	if (!tc)
		return;
	for (size_t b = 0; b < tc->nbuckets; b++)
		for (struct entry *e = tc->buckets[b], *nx; e; e = nx) {
			nx = e->next;
			explicit_bzero(e, sizeof(*e));
			free(e);
		}
	free(tc->buckets);
	pthread_mutex_destroy(&tc->lock);
	pthread_cond_destroy(&tc->cond);
	free(tc);
}

static size_t bucket_of(const struct ctl_tokcache *tc, const uint8_t *key)
{
	uint64_t h;
	memcpy(&h, key, sizeof(h));
	return (size_t)(h & (tc->nbuckets - 1));
}

static struct entry *find(struct ctl_tokcache *tc, const uint8_t *key)
{
	for (struct entry *e = tc->buckets[bucket_of(tc, key)]; e; e = e->next)
		if (!memcmp(e->key, key, sizeof(e->key)))
			return e;
	return NULL;
}

static bool removable(const struct entry *e)
{
	return e->state != E_PENDING && !e->waiters;
}

static void unlink_entry(struct ctl_tokcache *tc, struct entry *e)
{
	struct entry **pp = &tc->buckets[bucket_of(tc, e->key)];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	tc->n--;
	explicit_bzero(e, sizeof(*e));
	free(e);
}

/* Room for one more: drop expired entries, else the one expiring first. */
static void make_room(struct ctl_tokcache *tc, uint64_t now)
{
	struct entry *oldest = NULL;

	if (tc->n < tc->capacity)
		return;
	for (size_t b = 0; b < tc->nbuckets; b++)
		for (struct entry *e = tc->buckets[b], *nx; e; e = nx) {
			nx = e->next;
			if (!removable(e))
				continue;
			if (e->until_ns <= now)
				unlink_entry(tc, e);
			else if (!oldest || e->until_ns < oldest->until_ns)
				oldest = e;
		}
	if (tc->n >= tc->capacity && oldest)
		unlink_entry(tc, oldest);
}

static enum ctl_auth_result answer(const struct entry *e, struct ctl_creds *ret)
{
	if (e->state == E_OK) {
		*ret = e->creds;
		return CTL_AUTH_OK;
	}
	return e->state == E_INVALID ? CTL_AUTH_INVALID : CTL_AUTH_UNAVAILABLE;
}

/* The caller owns a pending entry: validate without the lock, publish. */
static enum ctl_auth_result fill(struct ctl_tokcache *tc, struct entry *e, const char *token, uint64_t now,
				 ctl_validate_fn validate, void *opaque, struct ctl_creds *ret)
{
	struct ctl_creds creds;
	enum ctl_auth_result r;

	tc->st.validations++;
	pthread_mutex_unlock(&tc->lock);
	memset(&creds, 0, sizeof(creds));
	r = validate(opaque, token, &creds);
	pthread_mutex_lock(&tc->lock);
	if (r == CTL_AUTH_OK) {
		uint64_t until = now + tc->ttl_ns;
		e->state = E_OK;
		e->creds = creds;
		e->until_ns = MIN(until, creds.expires_wall_ns);
	} else if (r == CTL_AUTH_INVALID) {
		e->state = E_INVALID;
		e->until_ns = now + tc->negative_ttl_ns;
	} else {
		e->state = E_FAILED;   /* for the waiters; the next request asks again */
		e->until_ns = 0;
	}
	pthread_cond_broadcast(&tc->cond);
	r = answer(e, ret);
	explicit_bzero(&creds, sizeof(creds));
	return r;
}

enum ctl_auth_result ctl_tokcache_get(struct ctl_tokcache *tc, const char *token, uint64_t now,
				      ctl_validate_fn validate, void *opaque, struct ctl_creds *ret)
{
	uint8_t key[32];
	struct entry *e;
	enum ctl_auth_result r;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), key) < 0)
		return CTL_AUTH_UNAVAILABLE;
	pthread_mutex_lock(&tc->lock);
	e = find(tc, key);
	if (e && e->state == E_PENDING) {
		tc->st.waits++;
		e->waiters++;
		while (e->state == E_PENDING)
			pthread_cond_wait(&tc->cond, &tc->lock);
		e->waiters--;
		r = answer(e, ret);
	} else if (e && e->until_ns > now) {
		e->state == E_OK ? tc->st.hits++ : tc->st.negative_hits++;
		r = answer(e, ret);
	} else {
		tc->st.misses++;
		if (!e) {
			make_room(tc, now);
			if (!(e = calloc(1, sizeof(*e)))) {
				pthread_mutex_unlock(&tc->lock);
				return CTL_AUTH_UNAVAILABLE;
			}
			memcpy(e->key, key, sizeof(key));
			e->next = tc->buckets[bucket_of(tc, key)];
			tc->buckets[bucket_of(tc, key)] = e;
			tc->n++;
		}
		e->state = E_PENDING;
		r = fill(tc, e, token, now, validate, opaque, ret);
	}
	pthread_mutex_unlock(&tc->lock);
	explicit_bzero(key, sizeof(key));
	return r;
}

void ctl_tokcache_stats(struct ctl_tokcache *tc, struct ctl_tokcache_stats *ret)
{
	pthread_mutex_lock(&tc->lock);
	*ret = tc->st;
	ret->entries = tc->n;
	pthread_mutex_unlock(&tc->lock);
}
