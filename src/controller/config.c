/* SPDX-License-Identifier: MIT */
/* config.c - the controller's configuration: defaults, `key = value` files. */
#include "controller/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void ctl_config_init(struct ctl_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = strdup(CTL_LISTEN);
	c->service_user_domain = strdup("Default");
	c->service_project = strdup("service");
	c->service_project_domain = strdup("Default");
	c->token_cache_ttl_s = 300;
	c->negative_cache_ttl_s = 5;
	c->token_cache_size = 10000;
	c->index_interval_s = 30;
	c->index_miss_interval_s = 2;
	c->index_concurrency = 32;
	c->agent_timeout_s = 5;
	c->agent_connect_timeout_s = 2;
	c->keystone_timeout_s = 5;
	c->breaker_failures = 3;
	c->breaker_open_s = 30;
	c->max_connections = 256;
	c->max_connections_per_ip = 32;
	c->header_timeout_s = 10;
	c->idle_timeout_s = 60;
	c->log_level = CTL_LOG_INFO;
}

void ctl_config_free(struct ctl_config *c)
{
	char **strs[] = { &c->listen, &c->tls_cert, &c->tls_key, &c->public_url, &c->agent_ca, &c->client_cert,
			  &c->client_key, &c->agent_token, &c->keystone_url, &c->keystone_public_url,
			  &c->keystone_ca, &c->service_user, &c->service_user_domain, &c->service_password,
			  &c->service_project, &c->service_project_domain, &c->policy_file };
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		free(*strs[i]);
	free(c->agents);
	memset(c, 0, sizeof(*c));
}

/* A URL without its trailing slashes. */
static int set_url(char **dst, const char *key, const char *value, struct vmw_error *err)
{
	size_t n = strlen(value);
	if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
		return vmw_error_set(err, -EINVAL, "%s: '%s' is not an http:// or https:// URL", key, value);
	while (n && value[n - 1] == '/')
		n--;
	free(*dst);
	return (*dst = strndup(value, n)) ? 0 : -ENOMEM;
}

/* agent = NAME=https://ADDR:PORT */
static int add_agent(struct ctl_config *c, const char *value, struct vmw_error *err)
{
	const char *eq = strchr(value, '=');
	struct ctl_agent_cfg *nv, a = { 0 };
	size_t ul;

	if (!eq || eq == value || (size_t)(eq - value) >= sizeof(a.name) ||
	    (strncmp(eq + 1, "https://", 8) && strncmp(eq + 1, "http://", 7)))
		return vmw_error_set(err, -EINVAL, "agent: '%s' is not NAME=https://ADDR:PORT", value);
	ul = strlen(eq + 1);
	while (ul && eq[ul] == '/')
		ul--;
	if (ul >= sizeof(a.url))
		return vmw_error_set(err, -EINVAL, "agent: URL too long in '%s'", value);
	snprintf(a.name, sizeof(a.name), "%.*s", (int)(eq - value), value);
	snprintf(a.url, sizeof(a.url), "%.*s", (int)ul, eq + 1);
	for (size_t i = 0; i < c->nagents; i++)
		if (!strcmp(c->agents[i].name, a.name))
			return vmw_error_set(err, -EEXIST, "agent: the name '%s' is given twice", a.name);
	if (c->nagents >= CTL_MAX_AGENTS)
		return vmw_error_set(err, -E2BIG, "agent: more than %d agents", CTL_MAX_AGENTS);
	if (!(nv = realloc(c->agents, (c->nagents + 1) * sizeof(*nv))))
		return -ENOMEM;
	c->agents = nv;
	c->agents[c->nagents++] = a;
	return 0;
}

static int read_secret_file(char **dst, const char *key, const char *path, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char buf[1024];
	size_t n;
	struct stat st;

	if (!f)
		return vmw_error_set(err, -errno, "%s %s: %s", key, path, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || (st.st_mode & 0077))
		return vmw_error_setk(err, VMW_ERR_PERMISSION, -EPERM, "%s %s is readable or writable by group "
				      "or others: chmod 600 it", key, path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0])
		return vmw_error_set(err, -EINVAL, "%s %s is empty", key, path);
	return vmw_set_str(dst, buf);
}

struct dur_key { const char *name; size_t off; double min, max; };
#define DK(n, field, lo, hi) { n, offsetof(struct ctl_config, field), lo, hi }
static const struct dur_key dur_keys[] = {
	DK("token_cache_ttl", token_cache_ttl_s, 0, 86400), DK("negative_cache_ttl", negative_cache_ttl_s, 0, 3600),
	DK("index_interval", index_interval_s, 0.1, 86400), DK("index_miss_interval", index_miss_interval_s, 0, 3600),
	DK("agent_timeout", agent_timeout_s, 0.1, 600), DK("agent_connect_timeout", agent_connect_timeout_s, 0.1, 600),
	DK("keystone_timeout", keystone_timeout_s, 0.1, 600), DK("breaker_open", breaker_open_s, 0, 3600),
	DK("header_timeout", header_timeout_s, 0.1, 3600), DK("idle_timeout", idle_timeout_s, 1, 86400),
};

struct uint_key { const char *name; size_t off; unsigned min, max; };
#define UK(n, field, lo, hi) { n, offsetof(struct ctl_config, field), lo, hi }
static const struct uint_key uint_keys[] = {
	UK("token_cache_size", token_cache_size, 1, 10000000), UK("index_concurrency", index_concurrency, 1, 1024),
	UK("breaker_failures", breaker_failures, 1, 1000), UK("max_connections", max_connections, 1, 100000),
	UK("max_connections_per_ip", max_connections_per_ip, 1, 100000),
};

struct str_key { const char *name; size_t off; bool url; };
#define SK(n, field, u) { n, offsetof(struct ctl_config, field), u }
static const struct str_key str_keys[] = {
	SK("listen", listen, false), SK("tls_cert", tls_cert, false), SK("tls_key", tls_key, false),
	SK("public_url", public_url, true), SK("agent_ca", agent_ca, false), SK("client_cert", client_cert, false),
	SK("client_key", client_key, false), SK("agent_token", agent_token, false),
	SK("keystone_url", keystone_url, true), SK("keystone_public_url", keystone_public_url, true),
	SK("keystone_ca", keystone_ca, false), SK("service_user", service_user, false),
	SK("service_user_domain", service_user_domain, false), SK("service_password", service_password, false),
	SK("service_project", service_project, false), SK("service_project_domain", service_project_domain, false),
	SK("policy_file", policy_file, false),
};

static int set_other(struct ctl_config *c, const char *key, const char *value, struct vmw_error *err)
{
	if (!strcmp(key, "agent"))
		return add_agent(c, value, err);
	if (!strcmp(key, "agent_token_file"))
		return read_secret_file(&c->agent_token, key, value, err);
	if (!strcmp(key, "service_password_file"))
		return read_secret_file(&c->service_password, key, value, err);
	if (!strcmp(key, "compat_process_list")) {
		if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1"))
			c->compat_process_list = true;
		else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0"))
			c->compat_process_list = false;
		else
			return vmw_error_set(err, -EINVAL, "compat_process_list: '%s' is not yes or no", value);
		return 0;
	}
	if (!strcmp(key, "log_level")) {
		static const char *names[] = { [3] = "err", [4] = "warning", [5] = "notice", [6] = "info", [7] = "debug" };
		for (int l = 3; l <= 7; l++)
			if (!strcasecmp(value, names[l])) {
				c->log_level = (enum ctl_log_level)l;
				return 0;
			}
		return vmw_error_set(err, -EINVAL, "log_level: '%s' is not err, warning, notice, info or debug", value);
	}
	return vmw_error_set(err, -ENOENT, "unknown key '%s' (see vmwatch-controller(8))", key);
}

int ctl_config_set(struct ctl_config *c, const char *key, const char *value, struct vmw_error *err)
{
	char *base = (char *)c;
	double d;
	uint64_t u;
	int r;

	if (!value)
		return vmw_error_set(err, -EINVAL, "%s needs a value", key);
	for (size_t i = 0; i < ARRAY_SIZE(dur_keys); i++) {
		const struct dur_key *k = &dur_keys[i];
		if (strcmp(key, k->name))
			continue;
		if (vmw_parse_duration(value, &d) < 0 || d < k->min || d > k->max)
			return vmw_error_set(err, -EINVAL, "%s: '%s' is not a duration from %gs to %gs", key, value,
					     k->min, k->max);
		*(double *)(base + k->off) = d;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(uint_keys); i++) {
		const struct uint_key *k = &uint_keys[i];
		if (strcmp(key, k->name))
			continue;
		if (vmw_parse_u64(value, &u) < 0 || u < k->min || u > k->max)
			return vmw_error_set(err, -EINVAL, "%s: '%s' is not a number from %u to %u", key, value,
					     k->min, k->max);
		*(unsigned *)(base + k->off) = (unsigned)u;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(str_keys); i++) {
		const struct str_key *k = &str_keys[i];
		if (strcmp(key, k->name))
			continue;
		r = k->url ? set_url((char **)(base + k->off), key, value, err)
			   : vmw_set_str((char **)(base + k->off), value);
		return r == -ENOMEM ? vmw_error_set(err, r, "out of memory") : r;
	}
	return set_other(c, key, value, err);
}

static int load_one(void *opaque, const char *key, const char *value, unsigned mode, struct vmw_error *err)
{
	int r = ctl_config_set(opaque, key, value, err);
	if (r < 0)
		return r;
	/* Like ssh with a private key: secrets in a file others can read are refused. */
	if ((!strcmp(key, "service_password") || !strcmp(key, "agent_token")) && (mode & 0077))
		return vmw_error_setk(err, VMW_ERR_PERMISSION, -EPERM, "holds %s but is readable or writable by "
				      "group or others (mode %04o): chmod 600 it, or use %s_file", key, mode, key);
	return 0;
}

int ctl_config_load(struct ctl_config *c, const char *path, struct vmw_error *err)
{
	return vmw_kv_load(path, load_one, c, err);
}

int ctl_config_check(struct ctl_config *c, struct vmw_error *err)
{
	const char *pw = getenv("VMWATCH_SERVICE_PASSWORD");

	if (pw && *pw && !c->service_password && !(c->service_password = strdup(pw)))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	if (!c->keystone_url)
		return vmw_error_set(err, -EINVAL, "keystone_url is not set (e.g. http://keystone:5000/v3)");
	if (!c->service_user || !c->service_password)
		return vmw_error_set(err, -EINVAL, "the service credentials are not set: service_user and "
				     "service_password_file (or $VMWATCH_SERVICE_PASSWORD)");
	if (!c->nagents)
		return vmw_error_set(err, -EINVAL, "no agent is configured (agent = NAME=https://ADDR:PORT)");
	if (!!c->tls_cert != !!c->tls_key)
		return vmw_error_set(err, -EINVAL, "TLS needs both tls_cert and tls_key");
	if (!!c->client_cert != !!c->client_key)
		return vmw_error_set(err, -EINVAL, "a client certificate needs both client_cert and client_key");
	if (!c->keystone_public_url && !(c->keystone_public_url = strdup(c->keystone_url)))
		return vmw_error_set(err, -ENOMEM, "out of memory");
	return 0;
}
