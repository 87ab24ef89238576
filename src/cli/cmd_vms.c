/* SPDX-License-Identifier: MIT */
/*
 * cmd_vms.c - `vmwatch vms` (hidden): the host's running libvirt domains with
 * their QEMU PID, RAM backing and OpenStack Nova metadata; with --watch, one
 * line per lifecycle event until SIGINT/SIGTERM or -n N events.
 */
#include "cli/cli.h"
#include "cli/top_internal.h"
#include "report/report.h"
#include "virt/virt.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch vms [--json] [-d SECONDS] [--watch [-n N]] [--connect URI]\n"
		"\n"
		"List the running libvirt domains: name, UUID, state, vCPUs, memory, QEMU PID\n"
		"(the target qemu:PID), how guest RAM is backed, their use (guest CPU busy, the\n"
		"QEMU process's host CPU, memory used, processes, load, and the guest OS from\n"
		"its cached /etc/os-release (\"unknown\" when not cached): read from guest RAM\n"
		"over -d seconds) and OpenStack Nova metadata.\n"
		"\n"
		"  -j, --json         JSON: {\"uri\", \"domains\": [...]}; with --watch one JSON\n"
		"                     object per line: {\"event\", \"time\", \"domain\"}\n"
		"  -w, --watch        follow lifecycle events (started, stopped, rebooted,\n"
		"                     changed) until interrupted; reconnects if libvirtd restarts\n"
		"  -n, --count N      with --watch: exit after N events\n"
		"  -d, --delay SEC    measure use over SEC seconds (default 1; 0: no use columns)\n"
		"  -c, --connect URI  libvirt URI (default $LIBVIRT_DEFAULT_URI or qemu:///system)\n"
		"  -h, --help         this help\n");
}

static void print_json(json_t *j)
{
	if (j) {
		json_dumpf(j, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		json_decref(j);
	}
}

static void ram_text(const struct vmw_domain *d, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s", d->ram_backing, d->ram_shared ? ",shared" : "",
		 d->ram_hugepages && strcmp(d->ram_backing, "hugepages") ? ",hugepages" : "");
}

/* Each domain's use over delay_ns: one session per domain, two frames. */
static int sample_use(const struct vmw_domain *doms, size_t n, uint64_t delay_ns, struct host_view *hv,
		      struct host_opts *ho, char **targets)
{
	for (size_t i = 0; i < n; i++) {
		if (!doms[i].qemu_pid)
			continue;
		if (asprintf(&targets[ho->ntargets], "qemu:%d", (int)doms[i].qemu_pid) < 0)
			return -ENOMEM;
		ho->ntargets++;
	}
	ho->targets = targets;
	host_view_init(hv, ho);
	if (!ho->ntargets)
		return 0;
	if (host_view_update(hv) < 0)
		return -ENOMEM;
	struct timespec ts = { .tv_sec = (time_t)(delay_ns / 1000000000u), .tv_nsec = (long)(delay_ns % 1000000000u) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return host_view_update(hv);
}

/* The host view's VM of domain d (NULL: not sampled). */
static struct host_vm *use_of(const struct host_view *hv, const struct vmw_domain *d)
{
	char target[32];

	snprintf(target, sizeof(target), "qemu:%d", (int)d->qemu_pid);
	for (size_t i = 0; d->qemu_pid && i < hv->n; i++)
		if (!strcmp(hv->vms[i]->target, target))
			return hv->vms[i];
	return NULL;
}

static json_t *domain_json(const struct vmw_domain *d, const struct host_view *hv, bool with_use)
{
	json_t *o = vmw_report_domain(d);
	struct host_vm *vm = use_of(hv, d);

	if (with_use) {
		json_t *u = vm ? host_view_json(hv, &vm, 1) : NULL;
		json_object_set(o, "use", u ? json_array_get(json_object_get(u, "vms"), 0) : json_null());
		json_decref(u);
	}
	return o;
}

static void use_text(const struct host_view *hv, const struct vmw_domain *d, char *buf, size_t size)
{
	struct host_vm *vm = use_of(hv, d);
	char cpu[16] = "-", host[16] = "-", mem[16] = "-", procs[16] = "-", load[16] = "-", os[128];

	if (!vm) {
		snprintf(buf, size, " %-8s %5s %6s %7s %5s %6s %-24s", "-", "-", "-", "-", "-", "-", "-");
		return;
	}
	vmw_report_os_text(vm->frame, os, sizeof(os));
	if (vm->use.cpu_ok)
		snprintf(cpu, sizeof(cpu), "%.1f", vm->use.busy);
	if (vm->host_cpu_ok)
		snprintf(host, sizeof(host), "%.1f", vm->host_cpu);
	if (vm->use.mem_ok)
		top_fmt_bytes(mem, sizeof(mem), vm->use.mem_used);
	if (vm->frame)
		snprintf(procs, sizeof(procs), "%zu", vm->use.processes);
	if (vm->use.load_ok)
		snprintf(load, sizeof(load), "%.2f", vm->use.load[0]);
	snprintf(buf, size, " %-8s %5s %6s %7s %5s %6s %-24.24s", vm->status, cpu, host, mem, procs, load, os);
}

static int list(struct vmw_virt *v, bool json, uint64_t delay_ns)
{
	struct host_opts ho = { .sopts = { .sz = sizeof(struct vmw_sampler_opts) } };
	struct host_view hv = { 0 };
	_cleanup_free_ char **targets = NULL;
	struct vmw_error err = { 0 };
	struct vmw_domain *doms;
	size_t n;
	int r;

	if ((r = vmw_virt_list(v, &doms, &n, &err)) < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return 1;
	}
	if (delay_ns && (!(targets = calloc(n + 1, sizeof(*targets))) ||
			 sample_use(doms, n, delay_ns, &hv, &ho, targets) < 0)) {
		cli_error("out of memory");
		r = 1;
		goto out;
	}
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, domain_json(&doms[i], &hv, delay_ns != 0));
		print_json(json_pack("{s:s, s:o}", "uri", vmw_virt_uri(v), "domains", a));
	} else {
		printf("%-24s %-36s %-8s %5s %9s %8s %-16s", "NAME", "UUID", "STATE", "VCPUS",
		       "MEMORY", "PID", "RAM");
		if (delay_ns)
			printf(" %-8s %5s %6s %7s %5s %6s %-24s", "STATUS", "%CPU", "HOST%", "MEMUSED", "PROCS",
			       "LOAD1", "OS");
		printf(" %s\n", "NOVA");
		for (size_t i = 0; i < n; i++) {
			const struct vmw_domain *d = &doms[i];
			char ram[64], pid[16] = "-";
			if (d->qemu_pid)
				snprintf(pid, sizeof(pid), "%d", (int)d->qemu_pid);
			char line[2048], nova[1024] = " -", use[256] = "";
			ram_text(d, ram, sizeof(ram));
			if (delay_ns)
				use_text(&hv, d, use, sizeof(use));
			if (d->nova.present)
				snprintf(nova, sizeof(nova), " %s (flavor %s, project %s, user %s)",
					 d->nova.instance_name, d->nova.flavor, d->nova.project_name,
					 d->nova.user_name);
			snprintf(line, sizeof(line), "%-24s %-36s %-8s %5u %5llu MiB %8s %-16s%s%s", d->name,
				 d->uuid, vmw_domain_state_name(d->state), d->vcpus,
				 (unsigned long long)(d->memory_bytes >> 20), pid, ram, use, nova);
			/* Names and Nova metadata are set by tenants: no control bytes on the terminal. */
			vmw_text_fputs(line, stdout);
			putchar('\n');
		}
	}
	r = fflush(stdout) == 0 ? 0 : 1;
out:
	host_view_free(&hv);
	for (size_t i = 0; targets && targets[i]; i++)
		free(targets[i]);
	free(doms);
	return r;
}

struct watch_state {
	pthread_mutex_t lock;
	bool json;
	long limit;
	atomic_long seen;
	atomic_int out_rc;         /* -1 while stdout works, else the exit code */
};

static void on_event(void *opaque, enum vmw_virt_event_type type, const struct vmw_domain *d)
{
	struct watch_state *w = opaque;
	struct timespec ts;
	double now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	pthread_mutex_lock(&w->lock);
	if (w->limit > 0 && atomic_load(&w->seen) >= w->limit) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	if (w->json) {
		print_json(json_pack("{s:s, s:f, s:o}", "event", vmw_virt_event_name(type), "time", now,
				     "domain", vmw_report_domain(d)));
	} else {
		char stamp[32], pid[24] = "";
		struct tm tm;
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		if (d->qemu_pid)
			snprintf(pid, sizeof(pid), " (qemu:%d)", (int)d->qemu_pid);
		char line[512];
		snprintf(line, sizeof(line), "%s %-8s %s%s %s", stamp, vmw_virt_event_name(type), d->name,
			 pid, vmw_domain_state_name(d->state));
		vmw_text_fputs(line, stdout);
		putchar('\n');
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		atomic_store(&w->out_rc, errno == EPIPE ? 0 : 1);   /* reader gone: stop */
	atomic_fetch_add(&w->seen, 1);
	pthread_mutex_unlock(&w->lock);
}

static int watch(struct vmw_virt *v, bool json, long limit, const sigset_t *sigs)
{
	struct watch_state w = { .lock = PTHREAD_MUTEX_INITIALIZER, .json = json, .limit = limit,
				 .out_rc = -1 };
	struct vmw_error err = { 0 };
	struct timespec tick = { .tv_nsec = 100 * 1000 * 1000 };
	int r;

	if ((r = vmw_virt_watch(v, on_event, &w, &err)) < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return 1;
	}
	fprintf(stderr, "vmwatch: watching libvirt at %s\n", vmw_virt_uri(v));
	for (;;) {
		int s = sigtimedwait(sigs, NULL, &tick);
		if (s > 0)
			break;
		if (limit > 0 && atomic_load(&w.seen) >= limit)
			break;
		if (atomic_load(&w.out_rc) >= 0)
			return atomic_load(&w.out_rc);
	}
	/* vmw_virt_close (by the caller) joins the event thread. */
	return 0;
}

int cmd_vms(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", no_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "delay", required_argument, NULL, 'd' },
		{ "connect", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vmw_error err = { 0 };
	struct vmw_virt *v;
	const char *uri = NULL;
	bool json = false, do_watch = false;
	long limit = 0;
	uint64_t delay_ns = 1000000000u;
	sigset_t sigs;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jwn:d:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'w':
			do_watch = true;
			break;
		case 'n': {
			char *end;
			errno = 0;
			limit = strtol(optarg, &end, 10);
			if (errno || *end || limit <= 0) {
				cli_error("vms: -n wants a positive number of events, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'c':
			uri = optarg;
			break;
		case 'd':
			if (!strcmp(optarg, "0"))
				delay_ns = 0;
			else if (top_parse_seconds(optarg, &delay_ns) < 0) {
				cli_error("vms: bad delay '%s' (seconds >= 0, e.g. 1, 0.5; 0: no use columns)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("vms: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (limit && !do_watch) {
		cli_error("vms: -n only goes with --watch");
		return EXIT_USAGE;
	}
	/* Signals are taken synchronously by the main thread (every thread
	 * started from here on inherits the blocked mask). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	if (do_watch)
		pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if ((r = vmw_virt_open(uri, &v, &err)) < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return EXIT_USAGE;
	}
	r = do_watch ? watch(v, json, limit, &sigs) : list(v, json, delay_ns);
	vmw_virt_close(v);
	return r;
}
