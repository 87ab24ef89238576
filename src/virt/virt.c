/* SPDX-License-Identifier: MIT */
/*
 * virt.c - libvirt domains: listing, lookup, lifecycle events, Nova metadata.
 *
 * libvirt's default event loop runs in one process-wide thread while any
 * struct vmw_virt is open (refcounted): it answers libvirtd's keepalive
 * pings (libvirtd drops idle clients that announced keepalive support and
 * do not answer) and notices a vanished libvirtd, for every connection.
 *
 * Two connections per struct vmw_virt: `conn` for queries (any thread, under
 * `lock`) and `wconn` for the watch, used only in the loop thread. The
 * watch's state (callbacks, reconnect, the `known` set of running domains
 * used to de-duplicate and to diff after a reconnect) lives in that thread
 * too; vmw_virt_close asks it to tear the watch down through `timer` and
 * waits. Library calls block SIGPIPE around libvirt RPCs: a write to a
 * libvirtd that just died must not kill the caller.
 *
 * libvirt and libxml2 are not linked: they (and the ~60 libraries they pull
 * in) would cost every vmwatch process tens of milliseconds in the dynamic
 * loader, and qemu:PID / file:PATH targets need neither. They are dlopen()ed
 * the first time the virt layer is used (a domain target, vmw_virt_open, XML
 * parsing); their headers give the types and constants, and the functions
 * used go through a table of pointers resolved with dlsym (see LV_FUNCS and
 * XML_FUNCS: every libvirt or libxml2 function called below must be listed).
 */
#include "virt/virt.h"
#include "mem/mem.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

/* ---------------------------------------------------------------------------
 * loading libvirt and libxml2 on demand
 */

#define LIBVIRT_SONAME "libvirt.so.0"
#define LIBXML_SONAME "libxml2.so.2"

#define LV_FUNCS(X)                                                                    \
	X(virConnectClose) X(virConnectDomainEventDeregisterAny)                         \
	X(virConnectDomainEventRegisterAny) X(virConnectIsAlive)                         \
	X(virConnectListAllDomains) X(virConnectOpenReadOnly) X(virConnectRef)           \
	X(virConnectRegisterCloseCallback) X(virConnectSetKeepAlive)                     \
	X(virConnectUnregisterCloseCallback) X(virDomainFree) X(virDomainGetInfo)        \
	X(virDomainGetName) X(virDomainGetUUIDString) X(virDomainGetXMLDesc)             \
	X(virDomainIsActive) X(virDomainLookupByName) X(virDomainLookupByUUIDString)     \
	X(virEventAddTimeout) X(virEventRegisterDefaultImpl) X(virEventRemoveTimeout)    \
	X(virEventRunDefaultImpl) X(virEventUpdateTimeout) X(virGetLastError)            \
	X(virGetLastErrorMessage) X(virInitialize) X(virSetErrorFunc)

#define XML_FUNCS(X)                                                                   \
	X(xmlDocGetRootElement) X(xmlFreeDoc) X(xmlInitParser) X(xmlReadMemory)          \
	X(xmlXPathEvalExpression) X(xmlXPathFreeContext) X(xmlXPathFreeObject)           \
	X(xmlXPathNewContext)

#define FN_FIELD(f) __typeof__(&f) f;
static struct { LV_FUNCS(FN_FIELD) } lv;
static struct { XML_FUNCS(FN_FIELD) } lx;
#undef FN_FIELD

/* Why a library could not be loaded ("" if it was). */
static char lv_load_err[256], lx_load_err[256];
static bool lv_loaded, lx_loaded;
static pthread_once_t lx_once = PTHREAD_ONCE_INIT;   /* libvirt: global_once */

#define FN_NAME(f) #f,
#define FN_SLOT(t, f) (void **)&t.f,
#define FN_SLOT_LV(f) FN_SLOT(lv, f)
#define FN_SLOT_LX(f) FN_SLOT(lx, f)

static void lx_load(void)
{
	static const char *const names[] = { XML_FUNCS(FN_NAME) };
	void **const slots[] = { XML_FUNCS(FN_SLOT_LX) };
	_Static_assert(ARRAY_SIZE(names) <= VMW_DL_MAX, "raise VMW_DL_MAX");

	if (!vmw_dl_load(LIBXML_SONAME, names, slots, ARRAY_SIZE(names), lx_load_err, sizeof(lx_load_err)))
		return;
	lx.xmlInitParser();
	lx_loaded = true;
}

static void lv_load(void)
{
	static const char *const names[] = { LV_FUNCS(FN_NAME) };
	void **const slots[] = { LV_FUNCS(FN_SLOT_LV) };
	_Static_assert(ARRAY_SIZE(names) <= VMW_DL_MAX, "raise VMW_DL_MAX");

	if (!vmw_dl_load(LIBVIRT_SONAME, names, slots, ARRAY_SIZE(names), lv_load_err, sizeof(lv_load_err)))
		return;
	lv_loaded = true;
}

/* libxml2 loaded (once, any thread)? */
static bool xml_available(void)
{
	pthread_once(&lx_once, lx_load);
	return lx_loaded;
}

static int libvirt_missing(struct vmw_error *err)
{
	return vmw_error_set(err, -ENOTSUP, "libvirt is not installed (libvirt0): %s", lv_load_err);
}

static void global_init(void);
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

/* libvirt loaded and initialized (once, any thread)? */
static bool libvirt_available(void)
{
	pthread_once(&global_once, global_init);
	return lv_loaded;
}

/* From here on, every call goes through the tables (one line per function of
 * LV_FUNCS and XML_FUNCS). */
#define virConnectClose (*lv.virConnectClose)
#define virConnectDomainEventDeregisterAny (*lv.virConnectDomainEventDeregisterAny)
#define virConnectDomainEventRegisterAny (*lv.virConnectDomainEventRegisterAny)
#define virConnectIsAlive (*lv.virConnectIsAlive)
#define virConnectListAllDomains (*lv.virConnectListAllDomains)
#define virConnectOpenReadOnly (*lv.virConnectOpenReadOnly)
#define virConnectRef (*lv.virConnectRef)
#define virConnectRegisterCloseCallback (*lv.virConnectRegisterCloseCallback)
#define virConnectSetKeepAlive (*lv.virConnectSetKeepAlive)
#define virConnectUnregisterCloseCallback (*lv.virConnectUnregisterCloseCallback)
#define virDomainFree (*lv.virDomainFree)
#define virDomainGetInfo (*lv.virDomainGetInfo)
#define virDomainGetName (*lv.virDomainGetName)
#define virDomainGetUUIDString (*lv.virDomainGetUUIDString)
#define virDomainGetXMLDesc (*lv.virDomainGetXMLDesc)
#define virDomainIsActive (*lv.virDomainIsActive)
#define virDomainLookupByName (*lv.virDomainLookupByName)
#define virDomainLookupByUUIDString (*lv.virDomainLookupByUUIDString)
#define virEventAddTimeout (*lv.virEventAddTimeout)
#define virEventRegisterDefaultImpl (*lv.virEventRegisterDefaultImpl)
#define virEventRemoveTimeout (*lv.virEventRemoveTimeout)
#define virEventRunDefaultImpl (*lv.virEventRunDefaultImpl)
#define virEventUpdateTimeout (*lv.virEventUpdateTimeout)
#define virGetLastError (*lv.virGetLastError)
#define virGetLastErrorMessage (*lv.virGetLastErrorMessage)
#define virInitialize (*lv.virInitialize)
#define virSetErrorFunc (*lv.virSetErrorFunc)
#define xmlDocGetRootElement (*lx.xmlDocGetRootElement)
#define xmlFreeDoc (*lx.xmlFreeDoc)
#define xmlInitParser (*lx.xmlInitParser)
#define xmlReadMemory (*lx.xmlReadMemory)
#define xmlXPathEvalExpression (*lx.xmlXPathEvalExpression)
#define xmlXPathFreeContext (*lx.xmlXPathFreeContext)
#define xmlXPathFreeObject (*lx.xmlXPathFreeObject)
#define xmlXPathNewContext (*lx.xmlXPathNewContext)

#define RECONNECT_MIN_MS 200
#define RECONNECT_MAX_MS 5000
#define NOVA_NS_PREFIX "http://openstack.org/xmlns/libvirt/nova/"

struct vmw_virt {
	char *uri;
	pthread_mutex_t lock;          /* protects conn */
	virConnectPtr conn;

	bool loop_ref;                 /* holds a reference on the loop thread */

	/* the watch (event-loop thread) */
	bool watching;
	atomic_bool quit;
	pthread_mutex_t wlock;         /* setup_done, torn_down: the caller waits on wcond */
	pthread_cond_t wcond;
	bool setup_done, torn_down;
	int setup_rc;
	struct vmw_error setup_err;
	int timer;
	vmw_virt_event_fn fn;
	void *opaque;
	virConnectPtr wconn;
	bool wconn_dead;
	int cb_lifecycle, cb_reboot, cb_metadata;
	bool close_cb_registered;
	unsigned backoff_ms;
	struct vmw_domain *known;
	size_t nknown, cap_known;
};

static bool event_impl_ok;

/* The process-wide event-loop thread. */
static pthread_mutex_t loop_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned loop_users;
static pthread_t loop_tid;
static int loop_timer = -1;        /* wakes the loop to stop it */
static atomic_bool loop_quit;
static bool loop_exit;             /* loop thread only */
static int loop_drain;             /* loop thread only */

static void silent_error(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static void global_init(void)
{
	lv_load();
	if (!lv_loaded)
		return;
	virInitialize();
	virSetErrorFunc(NULL, silent_error);
	/* Must precede every connection that should deliver events. */
	event_impl_ok = virEventRegisterDefaultImpl() == 0;
}

static const char *lv_msg(void)
{
	const char *m = virGetLastErrorMessage();
	return m && *m ? m : "unknown libvirt error";
}

static int lv_code(void)
{
	virErrorPtr e = virGetLastError();
	return e ? e->code : VIR_ERR_OK;
}

/* SIGPIPE blocked for the calling thread around libvirt RPCs; one raised
 * meanwhile is consumed. */
struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t s, pend;

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	sigpending(&pend);
	g->was_pending = sigismember(&pend, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &s, &g->old);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
	struct timespec zero = { 0 };
	sigset_t s, pend;

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	if (!g->was_pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1)
		sigtimedwait(&s, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void loop_timer_cb(int timer, void *opaque)
{
	(void)opaque;
	if (!atomic_load(&loop_quit))
		return;
	/* Two more iterations so libvirt frees handles removed just before. */
	if (++loop_drain >= 3) {
		virEventRemoveTimeout(timer);
		loop_exit = true;
	}
}

static void *loop_thread(void *opaque)
{
	(void)opaque;
	while (!loop_exit)
		if (virEventRunDefaultImpl() < 0)
			usleep(10000);
	return NULL;
}

static int loop_ref(struct vmw_error *err)
{
	sigset_t all, old;
	int r = 0;

	if (!event_impl_ok)
		return vmw_error_set(err, -EIO, "cannot set up libvirt's event loop: %s", lv_msg());
	pthread_mutex_lock(&loop_lock);
	if (loop_users == 0) {
		atomic_store(&loop_quit, false);
		loop_exit = false;
		loop_drain = 0;
		if ((loop_timer = virEventAddTimeout(-1, loop_timer_cb, NULL, NULL)) < 0) {
			r = vmw_error_set(err, -EIO, "cannot add a libvirt event timer: %s", lv_msg());
			goto out;
		}
		/* The loop thread takes no signals: they stay with the caller's threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		r = -pthread_create(&loop_tid, NULL, loop_thread, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r < 0) {
			virEventRemoveTimeout(loop_timer);
			vmw_error_set(err, r, "cannot start the libvirt event thread: %s", strerror(-r));
			goto out;
		}
	}
	loop_users++;
out:
	pthread_mutex_unlock(&loop_lock);
	return r;
}

static void loop_unref(void)
{
	pthread_mutex_lock(&loop_lock);
	if (--loop_users == 0) {
		atomic_store(&loop_quit, true);
		virEventUpdateTimeout(loop_timer, 0);
		pthread_join(loop_tid, NULL);
		loop_timer = -1;
	}
	pthread_mutex_unlock(&loop_lock);
}

const char *vmw_domain_state_name(enum vmw_domain_state s)
{
	switch (s) {
	case VMW_DOM_RUNNING: return "running";
	case VMW_DOM_PAUSED: return "paused";
	case VMW_DOM_SHUTOFF: return "shutoff";
	case VMW_DOM_CRASHED: return "crashed";
	case VMW_DOM_OTHER: return "other";
	default: return "unknown";
	}
}

const char *vmw_virt_event_name(enum vmw_virt_event_type t)
{
	switch (t) {
	case VMW_VIRT_STARTED: return "started";
	case VMW_VIRT_STOPPED: return "stopped";
	case VMW_VIRT_REBOOTED: return "rebooted";
	case VMW_VIRT_CHANGED: return "changed";
	default: return "unknown";
	}
}

static void copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

/* ---------------------------------------------------------------------------
 * XML (pure)
 */

struct xp {
	xmlDocPtr doc;
	xmlXPathContextPtr ctx;
};

static void xp_free(struct xp *x)
{
	if (x->ctx)
		xmlXPathFreeContext(x->ctx);
	if (x->doc)
		xmlFreeDoc(x->doc);
	x->ctx = NULL;
	x->doc = NULL;
}

static int xp_parse(struct xp *x, const char *xml)
{
	size_t len;

	x->doc = NULL;
	x->ctx = NULL;
	if (!xml || (len = strlen(xml)) == 0 || len > INT_MAX)
		return -EINVAL;
	if (!xml_available())
		return -ENOTSUP;
	x->doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			       XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!x->doc || !xmlDocGetRootElement(x->doc)) {
		xp_free(x);
		return -EINVAL;
	}
	if (!(x->ctx = xmlXPathNewContext(x->doc))) {
		xp_free(x);
		return -ENOMEM;
	}
	return 0;
}

/* First node of expr evaluated at rel (NULL: the document). */
static xmlNodePtr xp_node(struct xp *x, const char *expr, xmlNodePtr rel)
{
	xmlXPathObjectPtr o;
	xmlNodePtr n = NULL;

	x->ctx->node = rel ? rel : (xmlNodePtr)x->doc;
	o = xmlXPathEvalExpression((const xmlChar *)expr, x->ctx);
	if (o && o->type == XPATH_NODESET && o->nodesetval && o->nodesetval->nodeNr > 0)
		n = o->nodesetval->nodeTab[0];
	xmlXPathFreeObject(o);
	return n;
}

/* string(expr) at rel into buf, whitespace-trimmed; "" if nothing. */
static void xp_str(struct xp *x, const char *expr, xmlNodePtr rel, char *buf, size_t n)
{
	char full[512];
	xmlXPathObjectPtr o;
	const char *s = "";
	size_t len;

	buf[0] = '\0';
	snprintf(full, sizeof(full), "string(%s)", expr);
	x->ctx->node = rel ? rel : (xmlNodePtr)x->doc;
	o = xmlXPathEvalExpression((const xmlChar *)full, x->ctx);
	if (o && o->type == XPATH_STRING && o->stringval)
		s = (const char *)o->stringval;
	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (n > 0) {
		len = MIN(len, n - 1);
		memcpy(buf, s, len);
		buf[len] = '\0';
	}
	xmlXPathFreeObject(o);
}

static uint64_t xp_u64(struct xp *x, const char *expr, xmlNodePtr rel)
{
	char buf[64];
	uint64_t v;

	xp_str(x, expr, rel, buf, sizeof(buf));
	if (!buf[0] || buf[0] == '-' || vmw_parse_u64(buf, &v) < 0)
		return 0;
	return v;
}

/* Children by local name, so that both nova/1.0 and nova/1.1 (and whatever
 * prefix the writer chose) match. */
#define NV(name) "*[local-name()='" name "']"

static void parse_nova(struct xp *x, struct vmw_nova *nova)
{
	xmlNodePtr inst;

	memset(nova, 0, sizeof(*nova));
	inst = xp_node(x, "/domain/metadata/*[local-name()='instance' and "
			  "starts-with(namespace-uri(), '" NOVA_NS_PREFIX "')]", NULL);
	if (!inst)
		return;
	nova->present = true;
	xp_str(x, NV("name"), inst, nova->instance_name, sizeof(nova->instance_name));
	xp_str(x, NV("flavor") "/@name", inst, nova->flavor, sizeof(nova->flavor));
	nova->flavor_memory_mib = xp_u64(x, NV("flavor") "/" NV("memory"), inst);
	nova->flavor_vcpus = (unsigned)MIN(xp_u64(x, NV("flavor") "/" NV("vcpus"), inst), UINT_MAX);
	xp_str(x, NV("owner") "/" NV("user") "/@uuid", inst, nova->user_id, sizeof(nova->user_id));
	xp_str(x, NV("owner") "/" NV("user"), inst, nova->user_name, sizeof(nova->user_name));
	xp_str(x, NV("owner") "/" NV("project") "/@uuid", inst, nova->project_id,
	       sizeof(nova->project_id));
	xp_str(x, NV("owner") "/" NV("project"), inst, nova->project_name,
	       sizeof(nova->project_name));
}

int vmw_virt_parse_nova(const char *domain_xml, struct vmw_nova *ret)
{
	struct xp x;
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = xp_parse(&x, domain_xml)) < 0)
		return r;
	parse_nova(&x, ret);
	xp_free(&x);
	return ret->present ? 1 : 0;
}

/* libvirt's memory units (docs: formatdomain.html#memory-allocation). */
static uint64_t mem_unit(const char *u)
{
	static const struct { const char *name; uint64_t mult; } units[] = {
		{ "", 1024 }, { "b", 1 }, { "bytes", 1 },
		{ "KB", 1000 }, { "k", 1024 }, { "KiB", 1024 },
		{ "MB", 1000000 }, { "M", 1ull << 20 }, { "MiB", 1ull << 20 },
		{ "GB", 1000000000 }, { "G", 1ull << 30 }, { "GiB", 1ull << 30 },
		{ "TB", 1000000000000ull }, { "T", 1ull << 40 }, { "TiB", 1ull << 40 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (!strcmp(u, units[i].name))
			return units[i].mult;
	return 0;
}

static void parse_backing(struct xp *x, struct vmw_domain *d)
{
	char source[32], access[32];

	xp_str(x, "/domain/memoryBacking/source/@type", NULL, source, sizeof(source));
	xp_str(x, "/domain/memoryBacking/access/@mode", NULL, access, sizeof(access));
	d->ram_hugepages = xp_node(x, "/domain/memoryBacking/hugepages", NULL) != NULL;
	d->ram_shared = !strcmp(access, "shared") ||
			xp_node(x, "/domain/cpu/numa/cell[@memAccess='shared']", NULL) != NULL;
	if (!strcmp(source, "memfd") || !strcmp(source, "file"))
		copy_str(d->ram_backing, sizeof(d->ram_backing), source);
	else if (d->ram_hugepages)
		copy_str(d->ram_backing, sizeof(d->ram_backing), "hugepages");
	else
		copy_str(d->ram_backing, sizeof(d->ram_backing), "anonymous");
}

static void parse_domain(struct xp *x, struct vmw_domain *d)
{
	char unit[16];
	uint64_t mem, mult;

	xp_str(x, "/domain/name", NULL, d->name, sizeof(d->name));
	xp_str(x, "/domain/uuid", NULL, d->uuid, sizeof(d->uuid));
	d->vcpus = (unsigned)MIN(xp_u64(x, "/domain/vcpu", NULL), UINT_MAX);
	mem = xp_u64(x, "/domain/memory", NULL);
	xp_str(x, "/domain/memory/@unit", NULL, unit, sizeof(unit));
	mult = mem_unit(unit);
	d->memory_bytes = mult && mem <= UINT64_MAX / mult ? mem * mult : 0;
	parse_backing(x, d);
	parse_nova(x, &d->nova);
}

int vmw_virt_parse_xml(const char *domain_xml, struct vmw_domain *ret)
{
	struct xp x;
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = xp_parse(&x, domain_xml)) < 0)
		return r;
	if (!xp_node(&x, "/domain", NULL)) {
		xp_free(&x);
		return -EINVAL;
	}
	parse_domain(&x, ret);
	xp_free(&x);
	return 0;
}

/* ---------------------------------------------------------------------------
 * the QEMU process
 */

/* libvirt's run-state directory for uri, "" if the PID cannot be known here. */
static void run_dir(const char *uri, char *buf, size_t n)
{
	const char *env = getenv("VMWATCH_LIBVIRT_RUNDIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	buf[0] = '\0';
	if (env && *env)
		copy_str(buf, n, env);
	else if (!strcmp(uri, "qemu:///system") || !strncmp(uri, "qemu:///system?", 15) ||
		 !strcmp(uri, "qemu+unix:///system") || !strncmp(uri, "qemu+unix:///system?", 20))
		copy_str(buf, n, "/run/libvirt/qemu");
	else if ((!strcmp(uri, "qemu:///session") || !strcmp(uri, "qemu+unix:///session")) && xdg)
		snprintf(buf, n, "%s/libvirt/qemu/run", xdg);
}

static ssize_t read_small(const char *path, char *buf, size_t n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return -errno;
	if ((got = vmw_read_full(fd, buf, n - 1)) < 0)
		return got;
	buf[got] = '\0';
	return got;
}

/* Is pid the QEMU of domain `name`? libvirt starts QEMU with
 * "-name guest=NAME,..." (commas in NAME doubled); src/mem parses it. */
static bool is_domain_qemu(pid_t pid, const char *name)
{
	struct vmw_qemu_names q;
	char path[64], exe[PATH_MAX];
	ssize_t len;

	if (vmw_qemu_names_get(pid, &q) < 0)
		return false;   /* gone, zombie or kernel thread */
	if (q.has_name)
		return !strcmp(q.name, name);
	/* No -name (not started by libvirt?): accept a qemu executable. */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	len = readlink(path, exe, sizeof(exe) - 1);
	if (len <= 0)
		return false;
	exe[len] = '\0';
	return strstr(strrchr(exe, '/') ? strrchr(exe, '/') : exe, "qemu") != NULL;
}

static pid_t qemu_pid(const char *uri, const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], buf[32];
	uint64_t pid;

	run_dir(uri, dir, sizeof(dir));
	if (!dir[0] || !name[0] || strchr(name, '/'))
		return 0;
	snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	buf[strcspn(buf, " \t\r\n")] = '\0';
	if (vmw_parse_u64(buf, &pid) < 0 || pid == 0 || pid > INT_MAX)
		return 0;
	return is_domain_qemu((pid_t)pid, name) ? (pid_t)pid : 0;
}

/* ---------------------------------------------------------------------------
 * domains
 */

static enum vmw_domain_state map_state(int st)
{
	switch (st) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
		return VMW_DOM_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return VMW_DOM_PAUSED;
	case VIR_DOMAIN_SHUTOFF:
		return VMW_DOM_SHUTOFF;
	case VIR_DOMAIN_CRASHED:
		return VMW_DOM_CRASHED;
	case VIR_DOMAIN_NOSTATE:
		return VMW_DOM_UNKNOWN;
	default:
		return VMW_DOM_OTHER;
	}
}

/* Describe d. -ENOENT if the domain vanished meanwhile. */
static int fill_domain(const char *uri, virDomainPtr d, struct vmw_domain *out)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	virDomainInfo info;
	char *xml;
	int active;

	memset(out, 0, sizeof(*out));
	/* The XML first (name, memory, backing, Nova); live values override. */
	if ((xml = virDomainGetXMLDesc(d, 0))) {
		struct xp x;
		if (xp_parse(&x, xml) == 0) {
			parse_domain(&x, out);
			xp_free(&x);
		}
		free(xml);
	} else if (lv_code() == VIR_ERR_NO_DOMAIN) {
		return -ENOENT;
	}
	copy_str(out->name, sizeof(out->name), virDomainGetName(d));
	if (virDomainGetUUIDString(d, uuid) == 0)
		copy_str(out->uuid, sizeof(out->uuid), uuid);
	if (virDomainGetInfo(d, &info) == 0) {
		out->state = map_state(info.state);
		out->vcpus = info.nrVirtCpu;
		out->memory_bytes = (uint64_t)info.maxMem * 1024;
	} else if (lv_code() == VIR_ERR_NO_DOMAIN) {
		return -ENOENT;
	}
	active = virDomainIsActive(d);
	if (active == 0)
		out->state = VMW_DOM_SHUTOFF;
	else if (active == 1)
		out->qemu_pid = qemu_pid(uri, out->name);
	if (!out->ram_backing[0])
		copy_str(out->ram_backing, sizeof(out->ram_backing), "anonymous");
	return 0;
}

static int connect_error(struct vmw_error *err, const char *uri)
{
	virErrorPtr e = virGetLastError();
	const char *hint = "is libvirtd running?";
	int code = -ECONNREFUSED;

	if (e && (e->code == VIR_ERR_AUTH_FAILED || e->code == VIR_ERR_AUTH_CANCELLED ||
		  e->code == VIR_ERR_AUTH_UNAVAILABLE || e->code == VIR_ERR_ACCESS_DENIED ||
		  (e->code == VIR_ERR_SYSTEM_ERROR && e->int1 == EACCES))) {
		hint = "permission denied: run as root or as a member of group libvirt";
		code = -EACCES;
	} else if (geteuid() != 0 && e && !(e->code == VIR_ERR_SYSTEM_ERROR &&
					     (e->int1 == ENOENT || e->int1 == ECONNREFUSED))) {
		/* libvirtd answered but did not let a non-root user in: its polkit
		 * check failed (no polkit or no system bus) or the socket is
		 * restricted. Root skips those checks. */
		hint = "libvirtd refused a non-root user: run as root, or as a member of group libvirt "
		       "with polkit running";
		code = -EACCES;
	}
	return vmw_error_set(err, code, "cannot connect to libvirt at %s: %s (%s)", uri, lv_msg(),
			     hint);
}

static const char *default_uri(void)
{
	const char *u = getenv("LIBVIRT_DEFAULT_URI");
	return u && *u ? u : "qemu:///system";
}

int vmw_virt_open(const char *uri, struct vmw_virt **ret, struct vmw_error *err)
{
	struct sigpipe_guard g;
	struct vmw_virt *v;
	int r;

	if (!libvirt_available())
		return libvirt_missing(err);
	if (!uri || !*uri)
		uri = default_uri();
	if (!(v = calloc(1, sizeof(*v))) || !(v->uri = strdup(uri))) {
		free(v);
		return vmw_error_set(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->wlock, NULL);
	pthread_cond_init(&v->wcond, NULL);
	v->timer = -1;
	v->cb_lifecycle = v->cb_reboot = v->cb_metadata = -1;
	if ((r = loop_ref(err)) < 0) {
		vmw_virt_close(v);
		return r;
	}
	v->loop_ref = true;
	sigpipe_block(&g);
	v->conn = virConnectOpenReadOnly(v->uri);
	sigpipe_restore(&g);
	if (!v->conn) {
		r = connect_error(err, v->uri);
		vmw_virt_close(v);
		return r;
	}
	*ret = v;
	return 0;
}

const char *vmw_virt_uri(const struct vmw_virt *v)
{
	return v->uri;
}

/* A reference to the query connection in *ret (reopened if it died, or if
 * reopen); virConnectClose it after use. */
static int get_conn(struct vmw_virt *v, bool reopen, virConnectPtr *ret, struct vmw_error *err)
{
	int r = 0;

	pthread_mutex_lock(&v->lock);
	if (v->conn && (reopen || virConnectIsAlive(v->conn) != 1)) {
		virConnectClose(v->conn);
		v->conn = NULL;
	}
	if (!v->conn && !(v->conn = virConnectOpenReadOnly(v->uri)))
		r = connect_error(err, v->uri);
	else if (virConnectRef(v->conn) < 0)
		r = vmw_error_set(err, -EIO, "libvirt at %s: %s", v->uri, lv_msg());
	else
		*ret = v->conn;
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* Did the call that just failed on c fail because the connection is gone? */
static bool conn_lost(virConnectPtr c)
{
	int code = lv_code();
	return virConnectIsAlive(c) != 1 || code == VIR_ERR_SYSTEM_ERROR || code == VIR_ERR_RPC ||
	       code == VIR_ERR_NO_CONNECT;
}

static int cmp_domain(const void *a, const void *b)
{
	return strcmp(((const struct vmw_domain *)a)->name, ((const struct vmw_domain *)b)->name);
}

static int list_on(virConnectPtr c, const char *uri, struct vmw_domain **ret, size_t *ret_n)
{
	virDomainPtr *doms = NULL;
	struct vmw_domain *out;
	size_t k = 0;
	int n;

	n = virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (n < 0)
		return -EIO;
	out = calloc(n > 0 ? (size_t)n : 1, sizeof(*out));
	for (int i = 0; i < n; i++) {
		if (out && fill_domain(uri, doms[i], &out[k]) == 0)
			k++;
		virDomainFree(doms[i]);
	}
	free(doms);
	if (!out)
		return -ENOMEM;
	qsort(out, k, sizeof(*out), cmp_domain);
	*ret = out;
	*ret_n = k;
	return 0;
}

static int list_locked(struct vmw_virt *v, struct vmw_domain **ret, size_t *ret_n,
		       struct vmw_error *err)
{
	for (int attempt = 0;; attempt++) {
		virConnectPtr c;
		int r;

		if ((r = get_conn(v, attempt > 0, &c, err)) < 0)
			return r;
		r = list_on(c, v->uri, ret, ret_n);
		if (r == -EIO && attempt == 0 && conn_lost(c)) {
			virConnectClose(c);
			continue;   /* libvirtd restarted: reconnect once */
		}
		if (r == -EIO)
			vmw_error_set(err, r, "listing libvirt domains at %s: %s", v->uri, lv_msg());
		else if (r < 0)
			vmw_error_set(err, r, "out of memory");
		virConnectClose(c);
		return r;
	}
}

static bool looks_like_uuid(const char *s)
{
	size_t hex = 0;
	for (; *s; s++) {
		if (isxdigit((unsigned char)*s))
			hex++;
		else if (*s != '-')
			return false;
	}
	return hex == 32;
}

int vmw_virt_list(struct vmw_virt *v, struct vmw_domain **ret, size_t *ret_n, struct vmw_error *err)
{
	struct sigpipe_guard g;
	int r;

	sigpipe_block(&g);
	r = list_locked(v, ret, ret_n, err);
	sigpipe_restore(&g);
	return r;
}

static int lookup_locked(struct vmw_virt *v, const char *name_or_uuid, struct vmw_domain *ret,
			 struct vmw_error *err)
{
	for (int attempt = 0;; attempt++) {
		virConnectPtr c;
		virDomainPtr d = NULL;
		int r;

		if ((r = get_conn(v, attempt > 0, &c, err)) < 0)
			return r;
		if (looks_like_uuid(name_or_uuid))
			d = virDomainLookupByUUIDString(c, name_or_uuid);
		if (!d)
			d = virDomainLookupByName(c, name_or_uuid);
		if (!d) {
			if (lv_code() == VIR_ERR_NO_DOMAIN) {
				r = vmw_error_set(err, -ENOENT, "no libvirt domain named '%s' at %s",
						  name_or_uuid, v->uri);
			} else if (attempt == 0 && conn_lost(c)) {
				virConnectClose(c);
				continue;
			} else {
				r = vmw_error_set(err, -EIO, "looking up domain '%s' at %s: %s",
						  name_or_uuid, v->uri, lv_msg());
			}
			virConnectClose(c);
			return r;
		}
		r = fill_domain(v->uri, d, ret);
		if (r == -ENOENT)
			vmw_error_set(err, r, "domain '%s' disappeared while being looked up",
				      name_or_uuid);
		virDomainFree(d);
		virConnectClose(c);
		return r;
	}
}

int vmw_virt_lookup(struct vmw_virt *v, const char *name_or_uuid, struct vmw_domain *ret,
		    struct vmw_error *err)
{
	struct sigpipe_guard g;
	int r;

	sigpipe_block(&g);
	r = lookup_locked(v, name_or_uuid, ret, err);
	sigpipe_restore(&g);
	return r;
}

/* ---------------------------------------------------------------------------
 * the watch (everything below runs in the event-loop thread, except
 * vmw_virt_watch's setup and vmw_virt_close's wait)
 */

static struct vmw_domain *known_find(struct vmw_virt *v, const char *uuid)
{
	for (size_t i = 0; i < v->nknown; i++)
		if (!strcmp(v->known[i].uuid, uuid))
			return &v->known[i];
	return NULL;
}

static void known_remove(struct vmw_virt *v, struct vmw_domain *d)
{
	size_t i = (size_t)(d - v->known);
	memmove(&v->known[i], &v->known[i + 1], (v->nknown - i - 1) * sizeof(*d));
	v->nknown--;
}

static void known_put(struct vmw_virt *v, const struct vmw_domain *d)
{
	struct vmw_domain *k = known_find(v, d->uuid);

	if (k) {
		*k = *d;
		return;
	}
	if (v->nknown == v->cap_known) {
		size_t cap = v->cap_known ? v->cap_known * 2 : 16;
		struct vmw_domain *nk = realloc(v->known, cap * sizeof(*nk));
		if (!nk)
			return;   /* best effort: only de-duplication suffers */
		v->known = nk;
		v->cap_known = cap;
	}
	v->known[v->nknown++] = *d;
}

static void emit(struct vmw_virt *v, enum vmw_virt_event_type type, const struct vmw_domain *d)
{
	if (v->fn && !atomic_load(&v->quit))
		v->fn(v->opaque, type, d);
}

/* One event for dom. `implied` is the state the event itself says the
 * domain went to (VMW_DOM_UNKNOWN: ask libvirt). Events are dispatched a
 * little after they happen, so the domain may have moved on (or be gone):
 * the event's own state wins, and a vanished domain keeps what was known. */
static void handle(struct vmw_virt *v, virDomainPtr dom, enum vmw_virt_event_type type,
		   enum vmw_domain_state implied)
{
	struct vmw_domain d, *k;
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	int r;

	virDomainGetUUIDString(dom, uuid);
	k = known_find(v, uuid);
	if (type == VMW_VIRT_STOPPED) {
		if (!k)
			return;   /* already reported (e.g. by a resync) */
		d = *k;
		known_remove(v, k);
		d.state = VMW_DOM_SHUTOFF;
		emit(v, type, &d);
		return;
	}
	r = fill_domain(v->uri, dom, &d);
	if (r < 0 || d.state == VMW_DOM_SHUTOFF) {
		/* Gone by now (its STOPPED event follows): as it was. */
		if (k && type != VMW_VIRT_STARTED) {
			d = *k;
		} else if (r < 0) {
			memset(&d, 0, sizeof(d));
			copy_str(d.name, sizeof(d.name), virDomainGetName(dom));
			copy_str(d.uuid, sizeof(d.uuid), uuid);
			copy_str(d.ram_backing, sizeof(d.ram_backing), "anonymous");
		}
		d.state = VMW_DOM_RUNNING;
	}
	if (implied != VMW_DOM_UNKNOWN)
		d.state = implied;
	if (!d.qemu_pid && k && type != VMW_VIRT_STARTED)
		d.qemu_pid = k->qemu_pid;   /* pid file already gone: going down */
	if (type == VMW_VIRT_STARTED && k && k->qemu_pid == d.qemu_pid) {
		*k = d;
		return;   /* already reported (by a resync) */
	}
	if (type == VMW_VIRT_STARTED && k) {
		struct vmw_domain old = *k;
		old.state = VMW_DOM_SHUTOFF;
		emit(v, VMW_VIRT_STOPPED, &old);   /* its stop was missed */
	}
	if (!k && type != VMW_VIRT_STARTED)
		type = VMW_VIRT_STARTED;   /* first sight of a running domain */
	known_put(v, &d);
	emit(v, type, &d);
}

static int lifecycle_cb(virConnectPtr c, virDomainPtr dom, int event, int detail, void *opaque)
{
	(void)c;
	(void)detail;
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
		handle(opaque, dom, VMW_VIRT_STARTED, VMW_DOM_UNKNOWN);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		handle(opaque, dom, VMW_VIRT_STOPPED, VMW_DOM_SHUTOFF);
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
	case VIR_DOMAIN_EVENT_PMSUSPENDED:
		handle(opaque, dom, VMW_VIRT_CHANGED, VMW_DOM_PAUSED);
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		handle(opaque, dom, VMW_VIRT_CHANGED, VMW_DOM_RUNNING);
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		handle(opaque, dom, VMW_VIRT_CHANGED, VMW_DOM_CRASHED);
		break;
	default:
		/* DEFINED, UNDEFINED: configuration only. SHUTDOWN: the domain
		 * is going down (QEMU got a power-off or a signal); its STOPPED
		 * follows. */
		break;
	}
	return 0;
}

static void reboot_cb(virConnectPtr c, virDomainPtr dom, void *opaque)
{
	(void)c;
	handle(opaque, dom, VMW_VIRT_REBOOTED, VMW_DOM_UNKNOWN);
}

static void metadata_cb(virConnectPtr c, virDomainPtr dom, int type, const char *nsuri,
			void *opaque)
{
	struct vmw_virt *v = opaque;
	(void)c;
	(void)type;
	(void)nsuri;
	if (virDomainIsActive(dom) == 1)
		handle(v, dom, VMW_VIRT_CHANGED, VMW_DOM_UNKNOWN);
}

static void close_cb(virConnectPtr c, int reason, void *opaque)
{
	struct vmw_virt *v = opaque;
	(void)c;
	(void)reason;
	v->wconn_dead = true;
	v->backoff_ms = 0;
	if (v->timer >= 0)
		virEventUpdateTimeout(v->timer, 0);
}

/* libvirt's callback types differ per event id; cast through void (*)(void). */
#define EVENT_CB(f) ((virConnectDomainEventGenericCallback)(void (*)(void))(f))

static void watch_disconnect(struct vmw_virt *v)
{
	if (!v->wconn)
		return;
	if (v->close_cb_registered)
		virConnectUnregisterCloseCallback(v->wconn, close_cb);
	v->close_cb_registered = false;
	if (v->cb_lifecycle >= 0)
		virConnectDomainEventDeregisterAny(v->wconn, v->cb_lifecycle);
	if (v->cb_reboot >= 0)
		virConnectDomainEventDeregisterAny(v->wconn, v->cb_reboot);
	if (v->cb_metadata >= 0)
		virConnectDomainEventDeregisterAny(v->wconn, v->cb_metadata);
	v->cb_lifecycle = v->cb_reboot = v->cb_metadata = -1;
	virConnectClose(v->wconn);
	v->wconn = NULL;
}

static int watch_connect(struct vmw_virt *v, struct vmw_error *err)
{
	if (!(v->wconn = virConnectOpenReadOnly(v->uri)))
		return connect_error(err, v->uri);
	v->wconn_dead = false;
	if (virConnectRegisterCloseCallback(v->wconn, close_cb, v, NULL) == 0)
		v->close_cb_registered = true;
	/* Notice a hung libvirtd too (not only a closed socket). */
	virConnectSetKeepAlive(v->wconn, 5, 3);
	v->cb_lifecycle = virConnectDomainEventRegisterAny(v->wconn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
							   EVENT_CB(lifecycle_cb), v, NULL);
	v->cb_reboot = virConnectDomainEventRegisterAny(v->wconn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
							EVENT_CB(reboot_cb), v, NULL);
	v->cb_metadata = virConnectDomainEventRegisterAny(v->wconn, NULL,
							  VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
							  EVENT_CB(metadata_cb), v, NULL);
	if (v->cb_lifecycle < 0 || v->cb_reboot < 0) {
		int r = vmw_error_set(err, -EIO, "cannot follow libvirt domain events at %s: %s", v->uri,
				      lv_msg());
		watch_disconnect(v);
		return r;
	}
	return 0;
}

/* After a reconnect: report what changed while we were away. */
static void resync(struct vmw_virt *v)
{
	struct vmw_domain *now = NULL, *old = v->known;
	size_t nnow = 0, nold = v->nknown;

	if (list_on(v->wconn, v->uri, &now, &nnow) < 0)
		return;   /* keep the old set; events will correct it */
	v->known = NULL;
	v->nknown = v->cap_known = 0;
	for (size_t i = 0; i < nold; i++) {
		bool still = false;
		for (size_t j = 0; j < nnow && !still; j++)
			still = !strcmp(old[i].uuid, now[j].uuid) && old[i].qemu_pid == now[j].qemu_pid;
		if (!still) {
			old[i].state = VMW_DOM_SHUTOFF;
			emit(v, VMW_VIRT_STOPPED, &old[i]);
		}
	}
	for (size_t j = 0; j < nnow; j++) {
		const struct vmw_domain *o = NULL;
		for (size_t i = 0; i < nold && !o; i++)
			if (!strcmp(old[i].uuid, now[j].uuid) && old[i].qemu_pid == now[j].qemu_pid)
				o = &old[i];
		known_put(v, &now[j]);
		if (!o)
			emit(v, VMW_VIRT_STARTED, &now[j]);
		else if (o->state != now[j].state)
			emit(v, VMW_VIRT_CHANGED, &now[j]);
	}
	free(old);
	free(now);
}

static void watch_signal(struct vmw_virt *v, bool *flag)
{
	pthread_mutex_lock(&v->wlock);
	*flag = true;
	pthread_cond_broadcast(&v->wcond);
	pthread_mutex_unlock(&v->wlock);
}

/* v's timer: set up the watch, tear it down, or reconnect (loop thread). */
static void timer_cb(int timer, void *opaque)
{
	struct vmw_virt *v = opaque;
	struct vmw_error e = { 0 };

	if (!v->setup_done) {
		/* Callbacks first, then the list: no event falls in between. */
		struct vmw_domain *now = NULL;
		size_t nnow = 0;
		v->setup_rc = watch_connect(v, &v->setup_err);
		if (v->setup_rc == 0 && list_on(v->wconn, v->uri, &now, &nnow) == 0) {
			for (size_t i = 0; i < nnow; i++)
				known_put(v, &now[i]);
			free(now);
		}
		if (v->setup_rc < 0) {
			virEventRemoveTimeout(timer);
			v->timer = -1;
		} else {
			virEventUpdateTimeout(timer, -1);
		}
		watch_signal(v, &v->setup_done);
		return;
	}
	if (atomic_load(&v->quit)) {
		watch_disconnect(v);
		virEventRemoveTimeout(timer);
		v->timer = -1;
		watch_signal(v, &v->torn_down);
		return;
	}
	if (!v->wconn_dead) {
		virEventUpdateTimeout(timer, -1);
		return;
	}
	watch_disconnect(v);
	if (watch_connect(v, &e) == 0) {
		v->backoff_ms = 0;
		virEventUpdateTimeout(timer, -1);
		resync(v);
		return;
	}
	v->wconn_dead = true;
	v->backoff_ms = v->backoff_ms ? MIN(v->backoff_ms * 2, RECONNECT_MAX_MS) : RECONNECT_MIN_MS;
	virEventUpdateTimeout(timer, (int)v->backoff_ms);
}

int vmw_virt_watch(struct vmw_virt *v, vmw_virt_event_fn fn, void *opaque, struct vmw_error *err)
{
	if (v->watching)
		return vmw_error_set(err, -EALREADY, "already watching libvirt at %s", v->uri);
	v->fn = fn;
	v->opaque = opaque;
	atomic_store(&v->quit, false);
	v->setup_done = v->torn_down = false;
	v->setup_rc = 0;
	memset(&v->setup_err, 0, sizeof(v->setup_err));
	/* Everything of the watch happens in the loop thread: a timer that
	 * fires at once sets it up, and we wait for it. */
	if ((v->timer = virEventAddTimeout(0, timer_cb, v, NULL)) < 0)
		return vmw_error_set(err, -EIO, "cannot add a libvirt event timer: %s", lv_msg());
	pthread_mutex_lock(&v->wlock);
	while (!v->setup_done)
		pthread_cond_wait(&v->wcond, &v->wlock);
	pthread_mutex_unlock(&v->wlock);
	if (v->setup_rc < 0) {
		if (err)
			*err = v->setup_err;
		free(v->known);
		v->known = NULL;
		v->nknown = v->cap_known = 0;
		return v->setup_rc;
	}
	v->watching = true;
	return 0;
}

void vmw_virt_close(struct vmw_virt *v)
{
	struct sigpipe_guard g;

	if (!v)
		return;
	if (v->watching) {
		/* The loop thread tears the watch down; wait for it. */
		pthread_mutex_lock(&v->wlock);
		atomic_store(&v->quit, true);
		virEventUpdateTimeout(v->timer, 0);
		while (!v->torn_down)
			pthread_cond_wait(&v->wcond, &v->wlock);
		pthread_mutex_unlock(&v->wlock);
		v->watching = false;
	}
	free(v->known);
	if (v->conn) {
		sigpipe_block(&g);
		virConnectClose(v->conn);
		sigpipe_restore(&g);
	}
	if (v->loop_ref)
		loop_unref();
	pthread_cond_destroy(&v->wcond);
	pthread_mutex_destroy(&v->wlock);
	pthread_mutex_destroy(&v->lock);
	free(v->uri);
	free(v);
}

/* ---------------------------------------------------------------------------
 * targets
 */

#define TARGET_HELP "a target is a running libvirt domain's name or UUID, domain:NAME, " \
		    "qemu:PID or file:PATH"

int vmw_virt_resolve_target(const char *target, char *ret_target, size_t n,
			    char *ret_display, size_t dn, struct vmw_error *err)
{
	struct vmw_virt *v = NULL;
	struct vmw_domain d;
	const char *name = target;
	bool explicit = false;
	char tbuf[32];
	int r;

	if (!target || !*target)
		return vmw_error_set(err, -EINVAL, "no target given (%s)", TARGET_HELP);
	if (!strncmp(target, "qemu:", 5) || !strncmp(target, "file:", 5)) {
		if ((ret_target && (size_t)snprintf(ret_target, n, "%s", target) >= n) ||
		    (ret_display && (size_t)snprintf(ret_display, dn, "%s", target) >= dn))
			return vmw_error_set(err, -ENAMETOOLONG, "%s: target too long", target);
		return 0;
	}
	if (!strncmp(target, "domain:", 7)) {
		name = target + 7;
		explicit = true;
		if (!*name)
			return vmw_error_set(err, -EINVAL, "%s: no domain name (use domain:NAME)", target);
	}
	if (!libvirt_available())
		return vmw_error_set(err, -ENOTSUP, "libvirt is not installed (libvirt0): cannot resolve "
				     "domain %s; use qemu:PID", name);
	if ((r = vmw_virt_open(NULL, &v, err)) < 0) {
		if (explicit)
			return vmw_error_prefix(err, "domain %s: ", name);
		return vmw_error_prefix(err, "%s is not qemu:PID or file:PATH, and looking it up as "
					"a libvirt domain failed: ", target);
	}
	r = vmw_virt_lookup(v, name, &d, err);
	if (r == -ENOENT)
		vmw_error_set(err, r, "no libvirt domain named '%s' at %s (%s)", name, v->uri,
			      TARGET_HELP);
	else if (r == 0 && d.state != VMW_DOM_RUNNING && d.state != VMW_DOM_PAUSED &&
		 d.state != VMW_DOM_CRASHED && !d.qemu_pid)
		r = vmw_error_set(err, -ESRCH, "domain %s is not running (state %s; start it with "
				  "'virsh start %s')", d.name, vmw_domain_state_name(d.state), d.name);
	else if (r == 0 && !d.qemu_pid)
		r = vmw_error_set(err, -ESRCH, "domain %s is %s but its QEMU process was not found "
				  "(libvirt at %s; vmwatch must run on the domain's host, as root)",
				  d.name, vmw_domain_state_name(d.state), v->uri);
	vmw_virt_close(v);
	if (r < 0)
		return r;
	snprintf(tbuf, sizeof(tbuf), "qemu:%d", (int)d.qemu_pid);
	if ((ret_target && (size_t)snprintf(ret_target, n, "%s", tbuf) >= n) ||
	    (ret_display && (size_t)snprintf(ret_display, dn, "%s (%s)", d.name, tbuf) >= dn))
		return vmw_error_set(err, -ENAMETOOLONG, "%s: target too long", target);
	return 1;
}
