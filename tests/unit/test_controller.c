/* SPDX-License-Identifier: MIT */
/*
 * test_controller.c - vmwatch-controller's pure parts: Keystone token
 * documents (answers recorded from a real Keystone, data/keystone/), the
 * token cache (TTL, expiry, negative entries, single-flight, eviction), the
 * policy and the uuid -> host index (an agent's /v1/vms answer,
 * data/agent-vms.json).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "controller/ctl.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#define NS 1000000000ull

static json_t *load(const char *name)
{
	char path[512];
	json_error_t e;
	json_t *j;

	snprintf(path, sizeof(path), "%s/%s", CTL_TEST_DATA, name);
	j = json_load_file(path, 0, &e);
	if (!j)
		fail_msg("%s: %s", path, e.text);
	return j;
}

static void creds_of(const char *name, struct ctl_creds *c)
{
	json_t *j = load(name);
	struct vmw_error err = { 0 };
	assert_int_equal(ctl_creds_parse(j, c, &err), 0);
	json_decref(j);
}

/* ------------------------------------------------------------ token documents */

static void test_creds_project_member(void **state)
{
	struct ctl_creds c;
	(void)state;
	creds_of("keystone/member.json", &c);
	assert_int_equal(c.scope, CTL_SCOPE_PROJECT);
	assert_int_equal(strlen(c.project_id), 32);
	assert_true(ctl_creds_has_role(&c, "member"));
	assert_true(ctl_creds_has_role(&c, "reader"));      /* implied by member */
	assert_false(ctl_creds_has_role(&c, "admin"));
	assert_false(c.app_cred);
	assert_true(c.expires_wall_ns > 1700000000ull * NS);
	assert_null(ctl_creds_refusal(&c));
}

static void test_creds_scopes_refused(void **state)
{
	static const char *const files[] = { "keystone/domain.json", "keystone/system.json", "keystone/unscoped.json" };
	static const enum ctl_scope scopes[] = { CTL_SCOPE_DOMAIN, CTL_SCOPE_SYSTEM, CTL_SCOPE_NONE };
	struct ctl_creds c;
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		creds_of(files[i], &c);
		assert_int_equal(c.scope, scopes[i]);
		assert_string_equal(c.project_id, "");
		assert_non_null(strstr(ctl_creds_refusal(&c), "project-scoped"));
	}
}

static void test_creds_app_credentials(void **state)
{
	struct ctl_creds c;
	(void)state;
	creds_of("keystone/app_cred.json", &c);
	assert_true(c.app_cred);
	assert_false(c.access_rules);
	assert_null(ctl_creds_refusal(&c));
	/* Validated with OpenStack-Identity-Access-Rules (which this service never sends): refused anyway. */
	creds_of("keystone/app_cred_rules.json", &c);
	assert_true(c.app_cred && c.access_rules);
	assert_non_null(strstr(ctl_creds_refusal(&c), "access rules"));
}

static void test_creds_bad_documents(void **state)
{
	struct ctl_creds c;
	struct vmw_error err = { 0 };
	json_t *j = load("keystone/garbage_404.json");
	(void)state;
	assert_int_equal(ctl_creds_parse(j, &c, &err), -EINVAL);   /* Keystone's 404 error body */
	json_decref(j);
	j = json_pack("{s:{s:{s:s}, s:s}}", "token", "user", "id", "u", "expires_at", "yesterday");
	assert_int_equal(ctl_creds_parse(j, &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "expires_at"));
	json_decref(j);
}

/* ------------------------------------------------------------ policy */

static void test_policy_defaults(void **state)
{
	struct ctl_policy *p = ctl_policy_new(NULL, NULL);
	struct ctl_creds member, reader, admin;
	(void)state;
	creds_of("keystone/member.json", &member);
	creds_of("keystone/reader.json", &reader);
	creds_of("keystone/admin.json", &admin);
	assert_true(ctl_policy_check(p, CTL_RULE_SERVER_READ, &member, member.project_id));
	assert_true(ctl_policy_check(p, CTL_RULE_SERVER_READ, &reader, reader.project_id));
	assert_false(ctl_policy_check(p, CTL_RULE_SERVER_READ, &member, "another-project"));
	assert_false(ctl_policy_check(p, CTL_RULE_SERVER_READ, &member, ""));
	assert_false(ctl_policy_check(p, CTL_RULE_SERVER_READ, &member, NULL));
	/* The admin reads other projects' instances only through all_projects. */
	assert_false(ctl_policy_check(p, CTL_RULE_SERVER_READ, &admin, member.project_id));
	assert_true(ctl_policy_check(p, CTL_RULE_ALL_PROJECTS, &admin, NULL));
	assert_false(ctl_policy_check(p, CTL_RULE_ALL_PROJECTS, &member, NULL));
	assert_true(ctl_policy_check(p, CTL_RULE_HOST_ATTR, &admin, NULL));
	assert_false(ctl_policy_check(p, CTL_RULE_HOST_ATTR, &reader, NULL));
	assert_false(ctl_policy_check(p, "no:such:rule", &admin, NULL));
	assert_false(ctl_policy_check(p, CTL_RULE_SERVER_READ, NULL, member.project_id));
	ctl_policy_free(p);
}

static void test_policy_file_overrides(void **state)
{
	struct vmw_error err = { 0 };
	struct ctl_creds member, reader;
	struct ctl_policy *p = ctl_policy_from_json(
		"{\"vmwatch:servers:read\": \"(role:member and project_id:%(project_id)s) or not role:reader\","
		" \"loop\": \"rule:loop\", \"empty\": \"\"}", &err);
	(void)state;
	assert_non_null(p);
	creds_of("keystone/member.json", &member);
	creds_of("keystone/reader.json", &reader);
	assert_true(ctl_policy_check(p, CTL_RULE_SERVER_READ, &member, member.project_id));
	assert_false(ctl_policy_check(p, CTL_RULE_SERVER_READ, &reader, reader.project_id));   /* readers out */
	assert_false(ctl_policy_check(p, "loop", &member, NULL));                              /* bounded */
	assert_true(ctl_policy_check(p, "empty", &reader, NULL));                              /* "" = always */
	ctl_policy_free(p);

	static const char *const bad[] = { "{\"r\": \"role:\"}", "{\"r\": \"(role:a\"}", "{\"r\": \"role:a and\"}",
					   "{\"r\": \"colour:blue\"}", "{\"r\": 1}", "[]", "{\"r\": \"role:a) or @\"}" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&err, 0, sizeof(err));
		p = ctl_policy_from_json(bad[i], &err);
		if (p)
			fail_msg("accepted %s", bad[i]);
		assert_true(err.msg[0]);
	}
}

/* ------------------------------------------------------------ token cache */

struct fake_ks {
	enum ctl_auth_result result;
	uint64_t expires_ns;
	atomic_uint calls;
	unsigned sleep_ms;
};

static enum ctl_auth_result fake_validate(void *opaque, const char *token, struct ctl_creds *creds)
{
	struct fake_ks *f = opaque;
	atomic_fetch_add(&f->calls, 1);
	if (f->sleep_ms)
		usleep(f->sleep_ms * 1000);
	if (f->result == CTL_AUTH_OK) {
		creds_of("keystone/member.json", creds);
		creds->expires_wall_ns = f->expires_ns;
		snprintf(creds->user_id, sizeof(creds->user_id), "%.60s", token);
	}
	return f->result;
}

static void test_cache_ttl_and_expiry(void **state)
{
	struct ctl_tokcache *tc = ctl_tokcache_new(100, 10.0, 2.0);
	struct fake_ks f = { .result = CTL_AUTH_OK, .expires_ns = 1000 * NS };
	struct ctl_creds c;
	(void)state;
	assert_int_equal(ctl_tokcache_get(tc, "tok-a", 100 * NS, fake_validate, &f, &c), CTL_AUTH_OK);
	assert_string_equal(c.user_id, "tok-a");
	assert_int_equal(ctl_tokcache_get(tc, "tok-a", 109 * NS, fake_validate, &f, &c), CTL_AUTH_OK);
	assert_int_equal(f.calls, 1);
	/* After the TTL, Keystone is asked again (a revoked token stops here). */
	f.result = CTL_AUTH_INVALID;
	assert_int_equal(ctl_tokcache_get(tc, "tok-a", 111 * NS, fake_validate, &f, &c), CTL_AUTH_INVALID);
	assert_int_equal(f.calls, 2);
	/* A token expiring before the TTL is trusted until its expiry only. */
	f.result = CTL_AUTH_OK;
	f.expires_ns = 203 * NS;
	assert_int_equal(ctl_tokcache_get(tc, "tok-b", 200 * NS, fake_validate, &f, &c), CTL_AUTH_OK);
	f.result = CTL_AUTH_INVALID;
	assert_int_equal(ctl_tokcache_get(tc, "tok-b", 202 * NS, fake_validate, &f, &c), CTL_AUTH_OK);
	assert_int_equal(ctl_tokcache_get(tc, "tok-b", 204 * NS, fake_validate, &f, &c), CTL_AUTH_INVALID);
	ctl_tokcache_free(tc);
}

static void test_cache_negative_and_unavailable(void **state)
{
	struct ctl_tokcache *tc = ctl_tokcache_new(100, 10.0, 2.0);
	struct fake_ks f = { .result = CTL_AUTH_INVALID };
	struct ctl_tokcache_stats st;
	struct ctl_creds c;
	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(ctl_tokcache_get(tc, "garbage", 100 * NS, fake_validate, &f, &c), CTL_AUTH_INVALID);
	assert_int_equal(f.calls, 1);
	f.result = CTL_AUTH_OK;
	f.expires_ns = 1000 * NS;
	assert_int_equal(ctl_tokcache_get(tc, "garbage", 103 * NS, fake_validate, &f, &c), CTL_AUTH_OK);
	/* Keystone down: not cached, every request asks again. */
	f.result = CTL_AUTH_UNAVAILABLE;
	assert_int_equal(ctl_tokcache_get(tc, "new", 104 * NS, fake_validate, &f, &c), CTL_AUTH_UNAVAILABLE);
	assert_int_equal(ctl_tokcache_get(tc, "new", 104 * NS, fake_validate, &f, &c), CTL_AUTH_UNAVAILABLE);
	assert_int_equal(f.calls, 4);
	/* ... while a cached token keeps working. */
	assert_int_equal(ctl_tokcache_get(tc, "garbage", 105 * NS, fake_validate, &f, &c), CTL_AUTH_OK);
	ctl_tokcache_stats(tc, &st);
	assert_int_equal(st.negative_hits, 4);
	assert_int_equal(st.hits, 1);
	ctl_tokcache_free(tc);
}

struct racer {
	struct ctl_tokcache *tc;
	struct fake_ks *f;
	enum ctl_auth_result r;
};

static void *race(void *arg)
{
	struct racer *x = arg;
	struct ctl_creds c;
	x->r = ctl_tokcache_get(x->tc, "same-token", 100 * NS, fake_validate, x->f, &c);
	return NULL;
}

static void test_cache_single_flight(void **state)
{
	struct ctl_tokcache *tc = ctl_tokcache_new(100, 10.0, 2.0);
	struct fake_ks f = { .result = CTL_AUTH_OK, .expires_ns = 1000 * NS, .sleep_ms = 200 };
	struct racer x[8];
	pthread_t t[8];
	struct ctl_tokcache_stats st;
	(void)state;
	for (int i = 0; i < 8; i++) {
		x[i] = (struct racer){ .tc = tc, .f = &f };
		assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(x[i].r, CTL_AUTH_OK);
	}
	assert_int_equal(f.calls, 1);
	ctl_tokcache_stats(tc, &st);
	assert_int_equal(st.validations, 1);
	assert_int_equal(st.waits + st.hits, 7);
	ctl_tokcache_free(tc);
}

static void test_cache_capacity(void **state)
{
	struct ctl_tokcache *tc = ctl_tokcache_new(4, 10.0, 2.0);
	struct fake_ks f = { .result = CTL_AUTH_INVALID };
	struct ctl_tokcache_stats st;
	struct ctl_creds c;
	char tok[32];
	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(tok, sizeof(tok), "flood-%d", i);
		ctl_tokcache_get(tc, tok, (100 + (uint64_t)i) * NS / 10, fake_validate, &f, &c);
	}
	ctl_tokcache_stats(tc, &st);
	assert_true(st.entries <= 4);
	assert_int_equal(f.calls, 100);
	ctl_tokcache_free(tc);
}

/* ------------------------------------------------------------ index */

static void host_with(struct ctl_host *h, const char *name, const char *status)
{
	json_t *j = load("agent-vms.json");
	struct ctl_vm *v;
	size_t n;

	memset(h, 0, sizeof(*h));
	snprintf(h->cfg.name, sizeof(h->cfg.name), "%s", name);
	assert_int_equal(ctl_vms_parse(j, &v, &n, NULL), 0);
	json_decref(j);
	snprintf(v[0].status, sizeof(v[0].status), "%s", status);
	ctl_host_poll_ok(h, v, n, 1 * NS);
}

static void test_index_parse(void **state)
{
	struct ctl_host h;
	struct vmw_error err = { 0 };
	struct ctl_vm *v;
	size_t n;
	json_t *bad = json_pack("{s:i}", "vms", 3);
	(void)state;
	host_with(&h, "h1", "ok");
	assert_int_equal(h.nvms, 2);                 /* the explicit target without a UUID is no instance */
	assert_string_equal(h.vms[0].uuid, "10dd139c-d791-42b1-aa8e-0ea335c0973a");
	assert_string_equal(h.vms[0].project_id, "7606124327c0441eac3971797d33460e");
	assert_string_equal(h.vms[1].project_id, "");  /* no Nova metadata: nobody's */
	assert_string_equal(h.vms[1].status, "starting");
	assert_int_equal(ctl_vms_parse(bad, &v, &n, &err), -EINVAL);
	json_decref(bad);
	ctl_vms_free(h.vms, h.nvms);
}

static void test_index_migration_and_breaker(void **state)
{
	struct ctl_host h[2];
	struct ctl_where w;
	const char *uuid = "10DD139C-d791-42b1-aa8e-0ea335c0973a";
	(void)state;
	/* Live migration: both hosts list it; the one where monitoring is ok wins. */
	host_with(&h[0], "src", "starting");
	host_with(&h[1], "dst", "ok");
	assert_true(ctl_index_find(h, 2, uuid, &w));
	assert_int_equal(w.host, 1);
	assert_true(w.host_up);
	assert_false(ctl_index_find(h, 2, "00000000-0000-4000-8000-000000000000", &w));
	/* Evacuation: the destination's host dies, the source's list is stale... */
	ctl_host_poll_failed(&h[1], "connection refused", 2 * NS, 2, 5 * NS);
	assert_false(ctl_host_breaker_open(&h[1], 2 * NS));      /* one failure: still closed */
	assert_true(ctl_index_find(h, 2, uuid, &w));
	assert_int_equal(w.host, 0);                               /* a reachable host first */
	ctl_host_poll_failed(&h[1], "connection refused", 3 * NS, 2, 5 * NS);
	assert_true(ctl_host_breaker_open(&h[1], 4 * NS));
	assert_false(ctl_host_breaker_open(&h[1], 9 * NS));        /* half-open after breaker_open */
	/* Both down: still found (answered 503 by the caller), not forgotten. */
	ctl_host_poll_failed(&h[0], "timeout", 3 * NS, 2, 5 * NS);
	assert_true(ctl_index_find(h, 2, uuid, &w));
	assert_false(w.host_up);
	/* A success closes the breaker. */
	struct ctl_vm *v = NULL;
	size_t n = 0;
	ctl_host_poll_ok(&h[1], v, n, 10 * NS);
	assert_false(ctl_host_breaker_open(&h[1], 10 * NS));
	assert_int_equal(h[1].failures, 0);
	assert_true(ctl_index_find(h, 2, uuid, &w));
	assert_int_equal(w.host, 0);                               /* dst no longer lists it */
	for (int i = 0; i < 2; i++)
		ctl_vms_free(h[i].vms, h[i].nvms);
}

/* ------------------------------------------------------------ config */

static void test_config_keys(void **state)
{
	struct ctl_config c;
	struct vmw_error err = { 0 };
	(void)state;
	ctl_config_init(&c);
	assert_int_equal(ctl_config_set(&c, "agent", "h1=https://127.0.0.21:9910/", &err), 0);
	assert_string_equal(c.agents[0].url, "https://127.0.0.21:9910");
	assert_int_equal(ctl_config_set(&c, "agent", "h1=https://127.0.0.22:9910", &err), -EEXIST);
	assert_int_equal(ctl_config_set(&c, "agent", "noname", &err), -EINVAL);
	assert_int_equal(ctl_config_set(&c, "token_cache_ttl", "2m", &err), 0);
	assert_true(c.token_cache_ttl_s == 120.0);
	assert_int_equal(ctl_config_set(&c, "token_cache_ttl", "2d", &err), -EINVAL);
	assert_int_equal(ctl_config_set(&c, "keystone_url", "ftp://x", &err), -EINVAL);
	assert_int_equal(ctl_config_set(&c, "keystone_url", "http://ks:5000/v3/", &err), 0);
	assert_string_equal(c.keystone_url, "http://ks:5000/v3");
	assert_int_equal(ctl_config_set(&c, "bogus", "1", &err), -ENOENT);
	/* Without service credentials the controller cannot validate anything. */
	assert_int_equal(ctl_config_check(&c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "service"));
	ctl_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_creds_project_member),
		cmocka_unit_test(test_creds_scopes_refused),
		cmocka_unit_test(test_creds_app_credentials),
		cmocka_unit_test(test_creds_bad_documents),
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test(test_policy_file_overrides),
		cmocka_unit_test(test_cache_ttl_and_expiry),
		cmocka_unit_test(test_cache_negative_and_unavailable),
		cmocka_unit_test(test_cache_single_flight),
		cmocka_unit_test(test_cache_capacity),
		cmocka_unit_test(test_index_parse),
		cmocka_unit_test(test_index_migration_and_breaker),
		cmocka_unit_test(test_config_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
