/* SPDX-License-Identifier: MIT */
/* config.c - the agent's configuration: defaults, `key = value` files, flags. */
#include "agent/agent.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

const struct vmw_agent_key vmw_agent_keys[] = {
	{ "listen", "ADDR:PORT", "address to serve HTTP on (default " VMW_AGENT_LISTEN ")", false },
	{ "interval", "SEC", "sampling interval (default 5s; 500ms, 1m also accepted)", false },
	{ "history", "SEC", "history kept per VM and per process (default 15m)", false },
	{ "connect", "URI", "libvirt URI (default qemu:///system; 'none': no libvirt)", false },
	{ "top_n", "N", "per-process metrics for the top N by CPU, by memory and by I/O rate (default 10)", false },
	{ "max_groups", "N", "process-name groups per VM in /metrics (default 100)", false },
	{ "max_events", "N", "process events kept per VM (default 1000)", false },
	{ "max_history_procs", "N", "processes with a history per VM (default 4096)", false },
	{ "max_connections", "N", "concurrent HTTP connections (default 1024)", false },
	{ "max_connections_per_ip", "N", "of them from one client address (default 64)", false },
	{ "header_timeout", "SEC", "a request (line, headers, body) must arrive within SEC of connecting (default 10s)", false },
	{ "idle_timeout", "SEC", "close idle keep-alive connections after SEC (default 60s)", false },
	{ "sse_stall_timeout", "SEC", "drop an event stream whose client stops reading for SEC (default 30s)", false },
	{ "sampler_timeout", "SEC", "a VM's sampler process that takes longer than SEC for a frame is killed "
	  "and restarted (default 30s)", false },
	{ "tls_priorities", "STRING", "GnuTLS priority string (default: TLS 1.2+, forward secrecy only)", false },
	{ "max_clients", "N", "compatibility-API clients remembered (default 256)", false },
	{ "tls_cert", "FILE", "PEM certificate: serve HTTPS (with tls_key)", false },
	{ "tls_key", "FILE", "PEM private key of tls_cert", false },
	{ "tls_client_ca", "FILE", "PEM CA: require a client certificate it signed (mutual TLS)", false },
	{ "tls_client_name", "NAME", "accept only client certificates with this name (repeatable)", true },
	{ "token", "TOKEN", "accept 'Authorization: Bearer TOKEN' (repeatable; none: no auth)", true },
	{ "token_file", "FILE", "read bearer tokens from FILE, one per line (repeatable)", true },
	{ "target", "[NAME=]TARGET", "also monitor TARGET (qemu:PID or file:PATH), without libvirt (repeatable)", true },
	{ "cmdline", "BOOL", "read process command lines from guest user memory (default yes)", false },
	{ "kernel_cache", "BOOL", "use the kernel discovery cache (default yes)", false },
	{ "log_level", "LEVEL", "err, warning, notice, info (default) or debug", false },
};
const size_t vmw_agent_nkeys = ARRAY_SIZE(vmw_agent_keys);

void vmw_agent_config_init(struct vmw_agent_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = strdup(VMW_AGENT_LISTEN);
	c->interval_s = VMW_AGENT_INTERVAL_S;
	c->history_s = VMW_AGENT_HISTORY_S;
	c->top_n = VMW_AGENT_TOP_N;
	c->max_groups = 100;
	c->max_events = 1000;
	c->max_history_procs = 4096;
	c->max_connections = 1024;
	c->max_connections_per_ip = 64;
	c->header_timeout_s = 10;
	c->idle_timeout_s = 60;
	c->sse_stall_timeout_s = 30;
	c->sampler_timeout_s = 30;
	c->tls_priorities = strdup(VMW_AGENT_TLS_PRIORITIES);
	c->max_clients = 256;
	c->cmdline = true;
	c->kernel_cache = true;
	c->log_level = VMW_LOG_INFO;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void vmw_agent_config_free(struct vmw_agent_config *c)
{
	free(c->listen);
	free(c->connect);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_client_ca);
	strv_free(c->tls_client_names, c->ntls_client_names);
	free(c->tls_priorities);
	strv_free(c->tokens, c->ntokens);
	strv_free(c->token_files, c->ntoken_files);
	strv_free(c->targets, c->ntargets);
	memset(c, 0, sizeof(*c));
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

int vmw_agent_parse_duration(const char *s, double *ret)
{
	return vmw_parse_duration(s, ret);
}

int vmw_agent_parse_bool(const char *s, bool *ret)
{
	static const char *yes[] = { "1", "yes", "true", "on" }, *no[] = { "0", "no", "false", "off" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i])) {
			*ret = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	uint64_t v;
	if (vmw_parse_u64(s, &v) < 0 || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static int set_str(char **dst, const char *value)
{
	char *s = strdup(value);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int load_token_file(struct vmw_agent_config *c, const char *path, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = vmw_agent_fopen(path);
	char line[1024];
	size_t before = c->ntokens;
	struct stat st;

	if (!f)
		return vmw_error_set(err, -errno, "token_file %s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || (st.st_mode & 0077))
		return vmw_error_setk(err, VMW_ERR_PERMISSION, -EPERM, "token_file %s is readable or writable by "
				      "group or others (mode %04o): chmod 600 it", path,
				      (unsigned)(st.st_mode & 07777));
	while (fgets(line, sizeof(line), f)) {
		char *s = line, *e;
		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (!*s || *s == '#')
			continue;
		if (strv_add(&c->tokens, &c->ntokens, s) < 0)
			return vmw_error_set(err, -ENOMEM, "out of memory");
	}
	if (c->ntokens == before)
		return vmw_error_set(err, -EINVAL, "token_file %s holds no token", path);
	return 0;
}

static bool token_ok(const char *t)
{
	if (strlen(t) < 8)
		return false;
	for (const char *p = t; *p; p++)
		if (!isgraph((unsigned char)*p))
			return false;
	return true;
}

int vmw_agent_config_set(struct vmw_agent_config *c, const char *key, const char *value,
			 struct vmw_error *err)
{
	double d;
	int r = 0;

	if (!value)
		return vmw_error_set(err, -EINVAL, "%s needs a value", key);
	if (!strcmp(key, "listen")) {
		if (!strrchr(value, ':'))
			return vmw_error_set(err, -EINVAL, "listen: '%s' is not ADDR:PORT (e.g. 127.0.0.1:9910, "
					     "[::1]:9910, 0.0.0.0:9910)", value);
		r = set_str(&c->listen, value);
	} else if (!strcmp(key, "interval")) {
		if (vmw_agent_parse_duration(value, &d) < 0 || d < 0.1 || d > 3600)
			return vmw_error_set(err, -EINVAL, "interval: '%s' is not a duration between 100ms and 1h",
					     value);
		c->interval_s = d;
	} else if (!strcmp(key, "history")) {
		if (vmw_agent_parse_duration(value, &d) < 0 || d > 7 * 86400.0)
			return vmw_error_set(err, -EINVAL, "history: '%s' is not a duration up to 7 days", value);
		c->history_s = d;
	} else if (!strcmp(key, "connect")) {
		r = set_str(&c->connect, value);
	} else if (!strcmp(key, "top_n")) {
		if (parse_uint(value, 0, 10000, &c->top_n) < 0)
			return vmw_error_set(err, -EINVAL, "top_n: '%s' is not a number from 0 to 10000", value);
	} else if (!strcmp(key, "max_groups")) {
		if (parse_uint(value, 0, 100000, &c->max_groups) < 0)
			return vmw_error_set(err, -EINVAL, "max_groups: '%s' is not a number from 0 to 100000", value);
	} else if (!strcmp(key, "max_events")) {
		if (parse_uint(value, 1, 1000000, &c->max_events) < 0)
			return vmw_error_set(err, -EINVAL, "max_events: '%s' is not a number from 1 to 1000000", value);
	} else if (!strcmp(key, "max_history_procs")) {
		if (parse_uint(value, 0, 1000000, &c->max_history_procs) < 0)
			return vmw_error_set(err, -EINVAL, "max_history_procs: '%s' is not a number from 0 to 1000000",
					     value);
	} else if (!strcmp(key, "max_connections")) {
		if (parse_uint(value, 1, 10000, &c->max_connections) < 0)
			return vmw_error_set(err, -EINVAL, "max_connections: '%s' is not a number from 1 to 10000",
					     value);
	} else if (!strcmp(key, "max_connections_per_ip")) {
		if (parse_uint(value, 1, 10000, &c->max_connections_per_ip) < 0)
			return vmw_error_set(err, -EINVAL, "max_connections_per_ip: '%s' is not a number from 1 to "
					     "10000", value);
	} else if (!strcmp(key, "header_timeout") || !strcmp(key, "idle_timeout") ||
		   !strcmp(key, "sse_stall_timeout") || !strcmp(key, "sampler_timeout")) {
		if (vmw_agent_parse_duration(value, &d) < 0 || d < 1 || d > 3600)
			return vmw_error_set(err, -EINVAL, "%s: '%s' is not a duration from 1s to 1h", key, value);
		*(key[0] == 'h' ? &c->header_timeout_s : key[0] == 'i' ? &c->idle_timeout_s
			: key[1] == 's' ? &c->sse_stall_timeout_s : &c->sampler_timeout_s) = d;
	} else if (!strcmp(key, "tls_priorities")) {
		r = set_str(&c->tls_priorities, value);
	} else if (!strcmp(key, "max_clients")) {
		if (parse_uint(value, 0, 100000, &c->max_clients) < 0)
			return vmw_error_set(err, -EINVAL, "max_clients: '%s' is not a number from 0 to 100000", value);
	} else if (!strcmp(key, "tls_cert")) {
		r = set_str(&c->tls_cert, value);
	} else if (!strcmp(key, "tls_key")) {
		r = set_str(&c->tls_key, value);
	} else if (!strcmp(key, "tls_client_ca")) {
		r = set_str(&c->tls_client_ca, value);
	} else if (!strcmp(key, "tls_client_name")) {
		r = strv_add(&c->tls_client_names, &c->ntls_client_names, value);
	} else if (!strcmp(key, "token")) {
		if (!token_ok(value))
			return vmw_error_set(err, -EINVAL, "token: a token has at least 8 printable characters "
					     "and no spaces");
		r = strv_add(&c->tokens, &c->ntokens, value);
	} else if (!strcmp(key, "token_file")) {
		if (strv_add(&c->token_files, &c->ntoken_files, value) < 0)
			return vmw_error_set(err, -ENOMEM, "out of memory");
		if ((r = load_token_file(c, value, err)) < 0)
			return r;
		for (size_t i = 0; i < c->ntokens; i++)
			if (!token_ok(c->tokens[i]))
				return vmw_error_set(err, -EINVAL, "token_file %s: a token has at least 8 printable "
						     "characters and no spaces", value);
	} else if (!strcmp(key, "target")) {
		const char *t = strchr(value, '=') ? strchr(value, '=') + 1 : value;
		if (strncmp(t, "qemu:", 5) && strncmp(t, "file:", 5))
			return vmw_error_set(err, -EINVAL, "target: '%s' is not [NAME=]qemu:PID or [NAME=]file:PATH",
					     value);
		r = strv_add(&c->targets, &c->ntargets, value);
	} else if (!strcmp(key, "cmdline")) {
		if (vmw_agent_parse_bool(value, &c->cmdline) < 0)
			return vmw_error_set(err, -EINVAL, "cmdline: '%s' is not yes or no", value);
	} else if (!strcmp(key, "kernel_cache")) {
		if (vmw_agent_parse_bool(value, &c->kernel_cache) < 0)
			return vmw_error_set(err, -EINVAL, "kernel_cache: '%s' is not yes or no", value);
	} else if (!strcmp(key, "log_level")) {
		static const struct { const char *n; enum vmw_log_level l; } lv[] = {
			{ "err", VMW_LOG_ERR }, { "error", VMW_LOG_ERR }, { "warning", VMW_LOG_WARNING },
			{ "notice", VMW_LOG_NOTICE }, { "info", VMW_LOG_INFO }, { "debug", VMW_LOG_DEBUG },
		};
		size_t i;
		for (i = 0; i < ARRAY_SIZE(lv); i++)
			if (!strcasecmp(value, lv[i].n))
				break;
		if (i == ARRAY_SIZE(lv))
			return vmw_error_set(err, -EINVAL, "log_level: '%s' is not err, warning, notice, info "
					     "or debug", value);
		c->log_level = lv[i].l;
	} else {
		return vmw_error_set(err, -ENOENT, "unknown key '%s'", key);
	}
	if (r < 0)
		return vmw_error_set(err, r, "out of memory");
	return 0;
}

int vmw_agent_config_load(struct vmw_agent_config *c, const char *path, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = vmw_agent_fopen(path);
	char line[4096];
	unsigned lineno = 0;
	int r;

	size_t tokens_before = c->ntokens;
	struct stat st;

	if (!f)
		return vmw_error_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) < 0)
		return vmw_error_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *s = line, *eq, *k, *v, *e;
		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			return vmw_error_set(err, -EINVAL, "%s:%u: line too long", path, lineno);
		while (isspace((unsigned char)*s))
			s++;
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (!(eq = strchr(s, '=')))
			return vmw_error_set(err, -EINVAL, "%s:%u: expected 'key = value'", path, lineno);
		*eq = '\0';
		k = s;
		e = eq;
		while (e > k && isspace((unsigned char)e[-1]))
			*--e = '\0';
		v = eq + 1;
		while (isspace((unsigned char)*v))
			v++;
		e = v + strlen(v);
		while (e > v && isspace((unsigned char)e[-1]))
			*--e = '\0';
		/* Optional quotes around the value. */
		if (e - v >= 2 && ((*v == '"' && e[-1] == '"') || (*v == '\'' && e[-1] == '\''))) {
			e[-1] = '\0';
			v++;
		}
		for (char *p = k; *p; p++)
			if (*p == '-')
				*p = '_';
		if ((r = vmw_agent_config_set(c, k, v, err)) < 0)
			return vmw_error_prefix(err, "%s:%u: ", path, lineno);
		/* Like ssh with a private key: secrets in a file others can read are refused. */
		if (c->ntokens > tokens_before && !strcmp(k, "token") && (st.st_mode & 0077))
			return vmw_error_setk(err, VMW_ERR_PERMISSION, -EPERM, "%s:%u: holds a token but is "
					      "readable or writable by group or others (mode %04o): chmod 600 it",
					      path, lineno, (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

static vmw_agent_opener_fn opener;

void vmw_agent_set_opener(vmw_agent_opener_fn fn)
{
	opener = fn;
}

int vmw_agent_open_file(const char *path)
{
	int fd;

	if (opener)
		return opener(path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

FILE *vmw_agent_fopen(const char *path)
{
	int fd = vmw_agent_open_file(path);
	FILE *f;

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	if (!(f = fdopen(fd, "re")))
		close(fd);
	return f;
}

/* Can the file be opened (through the opener)? 0 or -errno. */
static int readable(const char *path)
{
	int fd = vmw_agent_open_file(path);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int vmw_agent_config_check(const struct vmw_agent_config *c, struct vmw_error *err)
{
	int r;

	if (!!c->tls_cert != !!c->tls_key)
		return vmw_error_set(err, -EINVAL, "TLS needs both tls_cert and tls_key");
	if (c->tls_cert && (r = readable(c->tls_cert)) < 0)
		return vmw_error_set(err, r, "tls_cert %s: %s", c->tls_cert, strerror(-r));
	if (c->tls_key && (r = readable(c->tls_key)) < 0)
		return vmw_error_set(err, r, "tls_key %s: %s", c->tls_key, strerror(-r));
	if (c->tls_client_ca && !c->tls_cert)
		return vmw_error_set(err, -EINVAL, "tls_client_ca needs TLS (tls_cert and tls_key)");
	if (c->tls_client_ca && (r = readable(c->tls_client_ca)) < 0)
		return vmw_error_set(err, r, "tls_client_ca %s: %s", c->tls_client_ca, strerror(-r));
	if (c->ntls_client_names && !c->tls_client_ca)
		return vmw_error_set(err, -EINVAL, "tls_client_name needs tls_client_ca");
	if (c->history_s < c->interval_s)
		return vmw_error_set(err, -EINVAL, "history (%gs) is shorter than interval (%gs)",
				     c->history_s, c->interval_s);
	return 0;
}

void vmw_agent_config_print(const struct vmw_agent_config *c, FILE *f)
{
	static const char *levels[] = { [3] = "err", [4] = "warning", [5] = "notice", [6] = "info",
					[7] = "debug" };
	fprintf(f, "listen = %s\ninterval = %gs\nhistory = %gs\nconnect = %s\ntop_n = %u\n"
		"max_groups = %u\nmax_events = %u\nmax_history_procs = %u\nmax_connections = %u\n"
		"max_connections_per_ip = %u\nheader_timeout = %gs\nidle_timeout = %gs\nsse_stall_timeout = %gs\n"
		"sampler_timeout = %gs\n"
		"max_clients = %u\ntls_priorities = %s\n",
		c->listen, c->interval_s, c->history_s, c->connect ? c->connect : "qemu:///system",
		c->top_n, c->max_groups, c->max_events, c->max_history_procs, c->max_connections,
		c->max_connections_per_ip, c->header_timeout_s, c->idle_timeout_s, c->sse_stall_timeout_s,
		c->sampler_timeout_s,
		c->max_clients, c->tls_priorities);
	if (c->tls_cert)
		fprintf(f, "tls_cert = %s\ntls_key = %s\n", c->tls_cert, c->tls_key ? c->tls_key : "");
	if (c->tls_client_ca)
		fprintf(f, "tls_client_ca = %s\n", c->tls_client_ca);
	for (size_t i = 0; i < c->ntls_client_names; i++)
		fprintf(f, "tls_client_name = %s\n", c->tls_client_names[i]);
	for (size_t i = 0; i < c->ntokens; i++)
		fprintf(f, "# token %zu: hidden (%zu characters)\n", i + 1, strlen(c->tokens[i]));
	for (size_t i = 0; i < c->ntargets; i++)
		fprintf(f, "target = %s\n", c->targets[i]);
	fprintf(f, "cmdline = %s\nkernel_cache = %s\nlog_level = %s\n", c->cmdline ? "yes" : "no",
		c->kernel_cache ? "yes" : "no", levels[c->log_level]);
}
