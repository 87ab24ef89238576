/* SPDX-License-Identifier: MIT */
/*
 * agent.h - the host agent: one daemon that samples every running guest of
 * this host and serves what it sees over HTTP (JSON API, Server-Sent Events,
 * Prometheus /metrics, the original VM Process Monitor's client API and a
 * small web page). See docs/API.md and vmwatch-agent(8).
 *
 * Processes (privsep.h): a privileged monitor, the unprivileged front that
 * runs everything below, and one sandboxed sampler process per VM that alone
 * reads guest memory. Threads of the front:
 *   - one thread per VM: asks the VM's sampler process for a frame every
 *     interval (it attaches, retrying with back-off while the guest cannot be
 *     introspected), publishes an immutable refcounted snapshot, updates the
 *     bounded history; restarts a crashed or hung sampler with back-off;
 *   - libmicrohttpd, one thread per connection: handlers only take references
 *     to published snapshots; they never read guest memory and never wait for
 *     a sampler (an SSE stream waits for the next publication, nothing else);
 *   - libvirt's event thread (src/virt): domain started/stopped → VM added or
 *     dropped;
 *   - the main thread: signals (SIGTERM/SIGINT stop, SIGHUP reload), libvirt
 *     reconnection and reconciliation, sd_notify watchdog, housekeeping.
 *
 * Configuration: `key = value` lines (`#` comments), every key also a
 * command-line flag (--key-with-dashes VALUE); flags override the file.
 */
#pragma once

#include "util/util.h"

/* Defaults. */
#ifndef VMW_AGENT_CONFIG_PATH           /* meson.build: SYSCONFDIR/vmwatch/agent.conf */
#define VMW_AGENT_CONFIG_PATH   "/etc/vmwatch/agent.conf"
#endif
#define VMW_AGENT_LISTEN        "127.0.0.1:9910"
/* TLS 1.2 and 1.3 only, forward secrecy only (no static-RSA key exchange), no
 * legacy ciphers; the server's order wins. */
#define VMW_AGENT_TLS_PRIORITIES \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-RSA:-DHE-DSS:-ARCFOUR-128:-3DES-CBC:-CAMELLIA-128-CBC:" \
	"-CAMELLIA-256-CBC:%SERVER_PRECEDENCE"
#define VMW_AGENT_INTERVAL_S    5.0
#define VMW_AGENT_HISTORY_S     900.0
#define VMW_AGENT_TOP_N         10u

enum vmw_log_level {
	VMW_LOG_ERR = 3,
	VMW_LOG_WARNING = 4,
	VMW_LOG_NOTICE = 5,
	VMW_LOG_INFO = 6,
	VMW_LOG_DEBUG = 7,
};

struct vmw_agent_config {
	char *listen;              /* ADDR:PORT, [ADDR6]:PORT; port 0 = any free port */
	double interval_s;         /* sampling interval */
	double history_s;          /* history kept per VM and per process */
	char *connect;             /* libvirt URI; NULL = qemu:///system; "none" = no libvirt */
	unsigned top_n;            /* per-process metrics: top N by CPU and by memory */
	unsigned max_groups;       /* process-name groups per VM in /metrics */
	unsigned max_events;       /* events kept per VM */
	unsigned max_history_procs;/* processes with a history per VM */
	unsigned max_connections;  /* concurrent HTTP connections */
	unsigned max_connections_per_ip; /* of them from one client address */
	double header_timeout_s;   /* request line + headers must arrive within this */
	double idle_timeout_s;     /* an idle keep-alive connection is closed after this */
	double sse_stall_timeout_s;/* an event stream whose client stops reading is dropped after this */
	double sampler_timeout_s;  /* a sampler process slower than this for a frame is killed */
	char *tls_priorities;      /* GnuTLS priority string (default VMW_AGENT_TLS_PRIORITIES) */
	unsigned max_clients;      /* compatibility API clients remembered */
	char *tls_cert, *tls_key;  /* PEM files; both or neither */
	char *tls_client_ca;       /* PEM CA: clients must present a certificate it signed (mTLS) */
	char **tls_client_names;   /* ... whose name (DNS SAN or CN) is one of these (none: any) */
	size_t ntls_client_names;
	char **tokens;             /* bearer tokens (any one admits) */
	size_t ntokens;
	char **token_files;        /* the token_file values read */
	size_t ntoken_files;
	char **targets;            /* explicit targets "[NAME=]qemu:PID" */
	size_t ntargets;
	bool cmdline;              /* read command lines from process memory */
	bool kernel_cache;         /* the kernel discovery cache */
	enum vmw_log_level log_level;
};

/* One configuration key: its name in the file (the flag is --name with '_'
 * replaced by '-'), its argument and a one-line description. */
struct vmw_agent_key {
	const char *name;
	const char *arg;           /* "SEC", "FILE", ... */
	const char *help;
	bool repeat;               /* may be given more than once (values add up) */
};
extern const struct vmw_agent_key vmw_agent_keys[];
extern const size_t vmw_agent_nkeys;

void vmw_agent_config_init(struct vmw_agent_config *c);
void vmw_agent_config_free(struct vmw_agent_config *c);
/* Set one key. err names the key and the expected value. */
int vmw_agent_config_set(struct vmw_agent_config *c, const char *key, const char *value,
			 struct vmw_error *err);
/* Read a file of `key = value` lines. -ENOENT (err set) when it does not
 * exist; err names file:line for bad lines. */
int vmw_agent_config_load(struct vmw_agent_config *c, const char *path, struct vmw_error *err);
/* Cross-key checks (TLS pair complete, files readable). */
int vmw_agent_config_check(const struct vmw_agent_config *c, struct vmw_error *err);
/* The effective configuration as a config file (tokens masked). */
void vmw_agent_config_print(const struct vmw_agent_config *c, FILE *f);

/*
 * Opening a file the configuration names (the configuration file,
 * token_file, tls_cert, tls_key): open(2) by default. The privilege-separated
 * front (src/agent/privsep.c) holds no privileges and asks the privileged
 * monitor, which opens only the files its own reading of the configuration
 * names. An fd or a negative errno; vmw_agent_fopen: NULL with errno set.
 */
typedef int (*vmw_agent_opener_fn)(const char *path);
void vmw_agent_set_opener(vmw_agent_opener_fn fn);
int vmw_agent_open_file(const char *path);
FILE *vmw_agent_fopen(const char *path);

/* Pure parsers, exposed for tests. */
int vmw_agent_parse_duration(const char *s, double *ret);   /* "5", "5s", "500ms", "15m", "1h" */
int vmw_agent_parse_bool(const char *s, bool *ret);         /* yes/no, true/false, on/off, 1/0 */

/*
 * Run the agent until SIGTERM or SIGINT. `reload` (may be NULL) is called on
 * SIGHUP to build a new configuration (re-reading the file and re-applying
 * the flags); interval, top_n, tokens, targets and log_level take effect at
 * once, the rest is logged as needing a restart. Returns the process exit
 * code: 0 after a clean shutdown, 1 when the agent could not start.
 */
typedef int (*vmw_agent_reload_fn)(void *opaque, struct vmw_agent_config *ret, struct vmw_error *err);
int vmw_agent_run(const struct vmw_agent_config *c, vmw_agent_reload_fn reload, void *opaque);

/* Logging: one line on stderr with a <N> syslog priority prefix (journald's
 * SyslogLevelPrefix); control characters in the message become spaces. */
void vmw_agent_log(enum vmw_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void vmw_agent_log_set_level(enum vmw_log_level level);
enum vmw_log_level vmw_agent_log_level(void);
