/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - vmwatch-controller: the tenant-facing front end of a cloud of
 * vmwatch agents. It validates OpenStack (Keystone) tokens, decides with a
 * small oslo.policy-style policy, finds the host of an instance in an index
 * built from the agents' /v1/vms, and forwards the request to that host's
 * agent over mutual TLS. It never touches guest memory and shares no code
 * with src/agent (see docs/ARCHITECTURE.md).
 *
 * Pieces (one file each):
 *   config.c    key = value configuration
 *   auth.c      Keystone token documents -> credentials (pure), token cache
 *               (hash of the token -> credentials, single-flight, negative)
 *   keystone.c  Keystone over libcurl: the service token, online validation
 *   policy.c    rules "role:reader or role:member", "project_id:%(project_id)s"
 *   index.c     agents' /v1/vms -> uuid -> host (merge pure; polling with
 *               libcurl multi, circuit breaker)
 *   agentcli.c  one request to an agent (JSON or a Server-Sent Events pipe)
 *   http.c      libmicrohttpd: the tenant API (Nova-style)
 */
#pragma once

#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct json_t json_t;

#define CTL_LISTEN "127.0.0.1:9920"
#define CTL_MAX_AGENTS 4096
#define CTL_MAX_ROLES 32

enum ctl_log_level { CTL_LOG_ERR = 3, CTL_LOG_WARNING = 4, CTL_LOG_NOTICE = 5, CTL_LOG_INFO = 6, CTL_LOG_DEBUG = 7 };
void ctl_log(enum ctl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ctl_log_set_level(enum ctl_log_level level);
/* libmicrohttpd's messages (trailing newlines dropped). */

/* ------------------------------------------------------------ config.c */

struct ctl_agent_cfg {
	char name[64];                 /* host name (admin-only in answers) */
	char url[256];                 /* https://ADDR:PORT (no trailing slash) */
};

struct ctl_config {
	char *listen;
	char *tls_cert, *tls_key;      /* serve HTTPS to tenants (optional) */
	char *public_url;              /* for links; default http(s)://listen */
	struct ctl_agent_cfg *agents;
	size_t nagents;
	char *agent_ca;                /* CA of the agents' server certificates */
	char *client_cert, *client_key;/* the controller's client certificate (mTLS) */
	char *agent_token;             /* bearer token the agents accept */
	char *keystone_url;            /* e.g. http://keystone:5000/v3 (no trailing slash) */
	char *keystone_public_url;     /* for WWW-Authenticate; default keystone_url */
	char *keystone_ca;             /* CA for an https Keystone (default: system) */
	char *service_user, *service_user_domain, *service_password;
	char *service_project, *service_project_domain;
	double token_cache_ttl_s;      /* a validated token is trusted this long at most */
	double negative_cache_ttl_s;   /* an invalid token is refused without asking for this long */
	unsigned token_cache_size;
	double index_interval_s;       /* poll every agent's /v1/vms */
	double index_miss_interval_s;  /* a refresh on an unknown uuid, at most this often */
	unsigned index_concurrency;    /* agents polled at once */
	double agent_timeout_s, agent_connect_timeout_s, keystone_timeout_s;
	unsigned breaker_failures;     /* consecutive failures that open a host's breaker */
	double breaker_open_s;         /* ... for this long */
	char *policy_file;             /* JSON {"rule": "expression"}; overrides defaults */
	bool compat_process_list;      /* GET /process_list?openstack_token=... */
	unsigned max_connections;
	unsigned max_connections_per_ip;  /* of them from one client address */
	double header_timeout_s;       /* request line + headers within this of the accept */
	double idle_timeout_s;         /* a connection idle this long is closed */
	enum ctl_log_level log_level;
};

void ctl_config_init(struct ctl_config *c);
void ctl_config_free(struct ctl_config *c);
int ctl_config_set(struct ctl_config *c, const char *key, const char *value, struct vmw_error *err);
/* A file of key = value lines; one holding a secret must be mode 0600. */
int ctl_config_load(struct ctl_config *c, const char *path, struct vmw_error *err);
/* Cross-key checks and the environment (VMWATCH_SERVICE_PASSWORD). */
int ctl_config_check(struct ctl_config *c, struct vmw_error *err);

/* ------------------------------------------------------------ auth.c */

enum ctl_scope { CTL_SCOPE_NONE, CTL_SCOPE_PROJECT, CTL_SCOPE_DOMAIN, CTL_SCOPE_SYSTEM };

/* What a validated token says about its holder. */
struct ctl_creds {
	enum ctl_scope scope;
	char user_id[72];
	char project_id[72];           /* "" unless project-scoped */
	char roles[CTL_MAX_ROLES][64]; /* names, as Keystone gives them (implied roles included) */
	unsigned nroles;
	bool app_cred;                 /* authenticated with an application credential */
	bool access_rules;             /* ... that carries access rules (refused) */
	uint64_t expires_wall_ns;      /* token expiry */
};

/* A `GET /v3/auth/tokens` answer body into creds: 0, or -EINVAL (err says
 * what is missing). */
int ctl_creds_parse(const json_t *body, struct ctl_creds *c, struct vmw_error *err);
bool ctl_creds_has_role(const struct ctl_creds *c, const char *role);
/* Why this token may not use the tenant API (NULL: it may). */
const char *ctl_creds_refusal(const struct ctl_creds *c);

enum ctl_auth_result { CTL_AUTH_OK, CTL_AUTH_INVALID, CTL_AUTH_UNAVAILABLE };

/* Validate token (the cache's miss path): fill creds; INVALID for a token
 * Keystone does not know (or no longer), UNAVAILABLE when it cannot say. */
typedef enum ctl_auth_result (*ctl_validate_fn)(void *opaque, const char *token, struct ctl_creds *creds);

struct ctl_tokcache;
struct ctl_tokcache *ctl_tokcache_new(unsigned capacity, double ttl_s, double negative_ttl_s);
void ctl_tokcache_free(struct ctl_tokcache *tc);
/* The credentials of token: from the cache (keyed by its SHA-256, never the
 * token itself), else from validate — called once per token however many
 * requests wait for it (single-flight). now_wall_ns is the clock (tests). */
enum ctl_auth_result ctl_tokcache_get(struct ctl_tokcache *tc, const char *token, uint64_t now_wall_ns,
				      ctl_validate_fn validate, void *opaque, struct ctl_creds *ret);
struct ctl_tokcache_stats { uint64_t hits, misses, negative_hits, validations, waits; size_t entries; };
void ctl_tokcache_stats(struct ctl_tokcache *tc, struct ctl_tokcache_stats *ret);

/* ------------------------------------------------------------ keystone.c */

struct ctl_keystone;
struct ctl_keystone *ctl_keystone_new(const struct ctl_config *c);
void ctl_keystone_free(struct ctl_keystone *ks);
/* ctl_validate_fn over Keystone (opaque = the ctl_keystone). */
enum ctl_auth_result ctl_keystone_validate(void *opaque, const char *token, struct ctl_creds *creds);
struct ctl_keystone_stats { uint64_t requests, failures, service_logins; double last_seconds; };
void ctl_keystone_stats(struct ctl_keystone *ks, struct ctl_keystone_stats *ret);

/* ------------------------------------------------------------ policy.c */

struct ctl_policy;
/* The default rules, overridden by the JSON object in path (may be NULL). */
struct ctl_policy *ctl_policy_new(const char *path, struct vmw_error *err);
/* Parse rules from a JSON object text (tests, and ctl_policy_new). */
struct ctl_policy *ctl_policy_from_json(const char *text, struct vmw_error *err);
void ctl_policy_free(struct ctl_policy *p);
/* Does creds pass rule `name` for an instance of target_project (NULL: none)?
 * An unknown rule is false. */
bool ctl_policy_check(const struct ctl_policy *p, const char *name, const struct ctl_creds *creds,
		      const char *target_project);

/* The rules the controller asks. */
#define CTL_RULE_SERVER_READ   "vmwatch:servers:read"          /* one instance and its processes */
#define CTL_RULE_SERVER_LIST   "vmwatch:servers:list"          /* the project's instances */
#define CTL_RULE_ALL_PROJECTS  "vmwatch:servers:all_projects"  /* ?all_projects=1 */
#define CTL_RULE_HOST_ATTR     "vmwatch:servers:host"          /* host names in answers */
#define CTL_RULE_METRICS       "vmwatch:metrics"               /* the controller's /metrics */

/* ------------------------------------------------------------ index.c */

/* One instance as an agent lists it. */
struct ctl_vm {
	char uuid[40];                 /* lower case */
	char project_id[72];           /* Nova owner project ("" without Nova metadata) */
	char status[16];               /* the agent's monitoring.status */
	json_t *obj;                   /* the agent's VM object (a reference) */
};

enum ctl_host_state { CTL_HOST_UNKNOWN, CTL_HOST_UP, CTL_HOST_DOWN };

struct ctl_host {
	struct ctl_agent_cfg cfg;
	enum ctl_host_state state;
	char error[256];
	unsigned failures;             /* consecutive */
	uint64_t breaker_until_ns;     /* open until (monotonic), 0: closed */
	uint64_t polled_ns, ok_ns;     /* last poll, last success (monotonic) */
	double poll_seconds;
	struct ctl_vm *vms;
	size_t nvms;
};

/* Where an instance is: the host index and its VM object. */
struct ctl_where {
	size_t host;
	const struct ctl_vm *vm;
	bool host_up;
};

/* Parse an agent's /v1/vms answer into vms (owned; free with ctl_vms_free). */
int ctl_vms_parse(const json_t *body, struct ctl_vm **ret, size_t *n, struct vmw_error *err);
void ctl_vms_free(struct ctl_vm *v, size_t n);
/* Record a poll: success (vms taken) or failure (error), breaker bookkeeping. */
void ctl_host_poll_ok(struct ctl_host *h, struct ctl_vm *vms, size_t n, uint64_t now_ns);
void ctl_host_poll_failed(struct ctl_host *h, const char *error, uint64_t now_ns, unsigned breaker_failures,
			  uint64_t breaker_open_ns);
bool ctl_host_breaker_open(const struct ctl_host *h, uint64_t now_ns);
/*
 * Find uuid among hosts. An instance listed by two hosts (live migration:
 * source and destination for a while; evacuation: the dead source's stale
 * list) resolves to a reachable host first, then one whose monitoring is
 * "ok", then the most recently polled. false when no host lists it.
 */
bool ctl_index_find(const struct ctl_host *hosts, size_t nhosts, const char *uuid, struct ctl_where *ret);

struct ctl_index;
struct ctl_index *ctl_index_new(const struct ctl_config *c);
void ctl_index_free(struct ctl_index *ix);
/* Start the polling thread (first poll before returning). */
int ctl_index_start(struct ctl_index *ix);
/* Poll every host whose breaker allows it now (or all with force). */
void ctl_index_refresh(struct ctl_index *ix, bool force);
/* A refresh because uuid was not found (rate-limited). */
void ctl_index_refresh_miss(struct ctl_index *ix);
/* Run fn under the index lock (hosts stay valid during the call). */
void ctl_index_with(struct ctl_index *ix, void (*fn)(void *opaque, const struct ctl_host *hosts, size_t n,
						      uint64_t now_ns), void *opaque);
/* Replace the agent list (SIGHUP); hosts that stay keep their state. */
int ctl_index_set_agents(struct ctl_index *ix, const struct ctl_agent_cfg *agents, size_t n);
/* A request to host i failed for network reasons / succeeded. */
void ctl_index_report(struct ctl_index *ix, const char *host, bool ok, const char *error);
struct ctl_index_stats { uint64_t polls, poll_failures, refreshes, miss_refreshes; double last_refresh_seconds; };
void ctl_index_stats(struct ctl_index *ix, struct ctl_index_stats *ret);

/* ------------------------------------------------------------ agentcli.c */

struct ctl_agentcli;
struct ctl_agentcli *ctl_agentcli_new(const struct ctl_config *c);
void ctl_agentcli_free(struct ctl_agentcli *ac);
/* A curl easy handle set up for agent URL url (TLS, token, timeouts);
 * used by the index's multi poll too. */
void *ctl_agentcli_easy(struct ctl_agentcli *ac, const char *url, bool stream);

struct ctl_fetch {
	long status;                   /* HTTP status; 0: no answer (error says why) */
	char *body;
	size_t len;
	char content_type[96];
	char retry_after[16];
	char error[256];
};
/* GET base + path (path already escaped). */
void ctl_agent_fetch(struct ctl_agentcli *ac, const char *base, const char *path, const char *request_id,
		     const char *client_id, struct ctl_fetch *ret);
void ctl_fetch_free(struct ctl_fetch *f);
/* Grows a ctl_fetch's body (curl write callback, shared with index.c). */
size_t ctl_fetch_write(char *p, size_t sz, size_t n, void *opaque);

/*
 * An event stream from the agent, relayed through a pipe without buffering
 * (the pipe's 64 KiB is the only buffer: a slow tenant slows the relay).
 * Returns once the agent answered: status 200 and *fd the pipe's read end
 * (the relay thread ends when the reader closes it or the agent ends the
 * stream), or another status with its body in ret.
 */
void ctl_agent_stream(struct ctl_agentcli *ac, const char *base, const char *path, const char *request_id,
		      const char *last_event_id, struct ctl_fetch *ret, int *fd);

/* ------------------------------------------------------------ http.c */

struct ctl {
	struct ctl_config cfg;
	struct ctl_tokcache *tokens;
	struct ctl_keystone *ks;
	struct ctl_policy *policy;
	struct ctl_index *index;
	struct ctl_agentcli *agents;
	uint64_t start_wall_ns;
	atomic_uint_fast64_t requests_total, errors_total, denied_total, unavailable_total;
	struct vmw_httpd *srv;
	char *tls_cert_pem, *tls_key_pem;
};

int ctl_http_start(struct ctl *c, struct vmw_error *err);
void ctl_http_stop(struct ctl *c);
