/* SPDX-License-Identifier: MIT */
/*
 * vmwatch top - the guest's processes over time: an interactive htop-like
 * screen (top_tui.c), plain-text frames for logs (-b, like top -b) or one
 * JSON object per frame (--json, JSON Lines).
 *
 * Frames come from the sampler at absolute deadlines on CLOCK_MONOTONIC
 * (clock_nanosleep TIMER_ABSTIME), so short intervals do not drift; a frame
 * that overruns its interval skips the deadlines it missed and counts them
 * as late. SIGINT and SIGTERM only set a flag: the current frame is written
 * out whole, then top exits 0.
 */
#include "cli/top_internal.h"
#include "linux/linux.h"
#include "linux/users.h"
#include "report/report.h"
#include "session/session.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS 1024

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmwatch top [OPTIONS] TARGET\n"
		"       vmwatch top [OPTIONS] [--all] [TARGET...]\n\n"
		"The guest's processes over time, like top/htop, read from the host: an\n"
		"interactive screen, plain-text frames (-b) or JSON Lines (--json).\n"
		"Without a TARGET (or with --all, or several TARGETs): every VM of the host\n"
		"(libvirt domains and QEMU processes), one row each like virt-top; Enter\n"
		"shows the selected VM's processes, Esc or Backspace come back.\n\n"
		"  -d, --delay SECONDS    interval between frames (default 1; fractions allowed,\n"
		"                         0.01 = 100 frames/s)\n"
		"  -n, --iterations N     stop after N frames (default: until q, Ctrl-C or SIGTERM)\n"
		"  -b, --batch            plain-text frames on stdout, like top -b\n"
		"  -j, --json             one JSON object per frame and line: seq, time, vm,\n"
		"                         kernel, summary, processes (with cpu_percent,\n"
		"                         mem_percent, rss_delta_bytes, new, io_rate and the\n"
		"                         fault and context-switch rates) and events\n"
		"  -o, --sort FIELD       cpu (default), mem, pid, time, virt, res, shr, user, pr,\n"
		"                         ni, state, command, rchar_rate, wchar_rate, read_rate,\n"
		"                         write_rate, minflt_rate, majflt_rate, csw_rate (shows\n"
		"                         its column); host view: name, status, vcpus,\n"
		"                         cpu, us, sy, wa, st, host, mem, mempct, procs, load, os,\n"
		"                         top\n"
		"  -p, --pid PID[,PID..]  only these processes (repeatable)\n"
		"  -u, --user USER        only processes of this (real) uid: a number, or a name\n"
		"                         the guest's /etc/passwd gives\n"
		"  -H, --threads          threads under their process (JSON: \"tasks\" with their\n"
		"                         own cpu_percent)\n"
		"  -t, --tree             processes under their parents (-b)\n"
		"      --io               the I/O rate columns (RCHAR/s WCHAR/s DREAD/s DWRIT/s; key i)\n"
		"      --faults           the fault and context-switch rate columns (MINFL/s\n"
		"                         MAJFL/s CSW/s; key f)\n"
		"      --cmdline          read command lines in --json mode (off there by default)\n"
		"      --no-cmdline       do not read command lines from process memory\n"
		"      --no-cache         do not use the kernel discovery cache\n"
		"      --ignore-vmcoreinfo-kallsyms\n"
		"                         find kallsyms by structure (as for kernels < 6.0)\n"
		"      --process-read     read a QEMU guest's RAM with process_vm_readv even when\n"
		"                         it is shared\n"
		"  -a, --all              the host view: every libvirt domain and QEMU process,\n"
		"                         plus the TARGETs given\n"
		"      --target TARGET    one more VM for the host view (repeatable)\n"
		"  -f, --filter TEXT      host view: only VMs whose name or target holds TEXT\n"
		"                         (or one of its comma-separated alternatives)\n"
		"      --connect URI      host view: libvirt URI (default $LIBVIRT_DEFAULT_URI\n"
		"                         or qemu:///system)\n"
		"  -h, --help             this help\n\n"
		"Keys (interactive): P M N T sort by CPU, memory, PID, time; < > move the sort\n"
		"column; I invert; / or F4 filter; u user; K kernel threads; 1 one CPU meter or\n"
		"one per vCPU; i I/O rates; f fault and context-switch rates; t tree; H threads;\n"
		"d or s interval; arrows, PgUp, PgDn, Home, End\n"
		"scroll; ? or F1 help; q or F10 quit. vmwatch is read-only: k and r (kill,\n"
		"renice) say so. Host view: Enter a VM's processes, Esc or Backspace back.\n\n"
		"TARGET: a libvirt domain name or UUID, domain:NAME, qemu:PID or file:PATH\n"
		"(see 'vmwatch --help').\n"
		"Exit status: 0 done (also after Ctrl-C/SIGTERM), 1 the guest went away or\n"
		"output failed, 2 bad usage or a target that cannot be opened.\n");
}

/* ---- signals and timing --------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SA_RESTART: an interrupted write of a frame resumes instead of losing bytes.
 * clock_nanosleep and ppoll are never restarted, so sleeps still end early. */
static void install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

uint64_t top_next_deadline(uint64_t deadline, uint64_t interval_ns, uint64_t now, uint64_t *late)
{
	uint64_t next = deadline + interval_ns;

	if (now >= next) {
		uint64_t missed = (now - next) / interval_ns + 1;
		*late += missed;
		next += missed * interval_ns;
	}
	return next;
}

/*
 * Sleep until the absolute monotonic time t; false if a stop was requested.
 * A signal interrupts the sleep, but one arriving between the check of the
 * flag and clock_nanosleep() would not: so long waits go in steps of at most
 * STOP_LATENCY_NS (each still to an absolute time), which bounds how late
 * such a stop is noticed without moving any deadline.
 */
#define STOP_LATENCY_NS 200000000u

static bool sleep_until(uint64_t t)
{
	while (!stop_requested) {
		uint64_t now = vmw_now_ns(), step;
		struct timespec ts;

		if (now >= t)
			return true;
		step = t - now > STOP_LATENCY_NS ? now + STOP_LATENCY_NS : t;
		ts = (struct timespec){ .tv_sec = (time_t)(step / 1000000000u),
					.tv_nsec = (long)(step % 1000000000u) };
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	return false;
}

/* ---- the guest ------------------------------------------------------------ */

/* Retry quickly (a rebooting guest is back within seconds), never less often
 * than every 5 s; a file: target that fails is not waited for. */
static const struct vmw_session_policy top_policy = {
	.min_ns = 500000000u,
	.max_ns = 5000000000u,
};

int top_source_open(struct top_source *src, const char *target, const struct cli_target *topts,
		    const struct vmw_sampler_opts *opts)
{
	struct vmw_session_opts so = cli_target_session_opts(topts);
	struct vmw_error err = { 0 };
	int r;

	*src = (struct top_source){ .target = target };
	so.want_linux = so.want_summary = true;
	so.policy = top_policy;
	if ((r = vmw_session_open(target, &so, &src->sess, &err)) < 0) {
		cli_error("%s", vmw_error_msg(&err, r));
		return EXIT_USAGE;
	}
	struct vmw_kernel *k = vmw_session_kernel(src->sess);
	if (k && vmw_kernel_info(k)->cache_warning)
		cli_error("warning: %s", vmw_kernel_info(k)->cache_warning);
	if (vmw_sampler_new(src->sess, opts, &src->s) < 0) {
		cli_error("out of memory");
		top_source_close(src);
		return 1;
	}
	return 0;
}

void top_source_close(struct top_source *src)
{
	vmw_sampler_close(src->s);
	src->s = NULL;
	vmw_session_close(src->sess);
	src->sess = NULL;
}

enum top_frame_status top_source_frame(struct top_source *src, struct vmw_frame **ret)
{
	struct vmw_error err = { 0 };
	int r;

	if ((r = vmw_sampler_frame(src->s, ret, &err)) == 0)
		return TOP_FRAME_OK;
	snprintf(src->why, sizeof(src->why), "%s", vmw_error_msg(&err, r));
	if (vmw_session_state(src->sess) == VMW_SESSION_GONE)
		return TOP_FRAME_GONE;
	src->retry_at = vmw_session_retry_at(src->sess);
	return TOP_FRAME_WAIT;
}

int top_source_user(struct top_source *src, const char *s, uint32_t *ret)
{
	struct vmw_linux *lx = src->sess ? vmw_session_linux(src->sess) : NULL;

	if (top_parse_user(s, ret) == 0)
		return 0;
	if (!*s || strlen(s) > TOP_USER_MAX)
		return -EINVAL;
	if (lx && vmw_users_uid(vmw_linux_users(lx), s, ret))
		return 0;
	if (!strcmp(s, "root") && !(lx && vmw_users_name(vmw_linux_users(lx), 0))) {
		*ret = 0;
		return 0;
	}
	return -ENOENT;
}

/* ---- batch text ---------------------------------------------------------- */

static void print_header(FILE *out, const struct top_header *h, const struct vmw_frame *f,
			 uint64_t late)
{
	time_t sec = (time_t)(h->wall_time_ns / 1000000000u);
	struct tm tm;
	char clock[16] = "?", up[48];

	if (localtime_r(&sec, &tm))
		strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	fprintf(out, "vmwatch top - %s", clock);
	if (h->uptime_ok) {
		top_fmt_uptime(up, sizeof(up), h->uptime_s);
		fprintf(out, " up %s", up);
	}
	if (h->load_ok) {
		/* The guest's /proc/loadavg text (its rounding), commas as top's. */
		fputs(", load average: ", out);
		for (const char *p = h->loadavg; *p; p++) {
			if (*p == ' ')
				fputs(", ", out);
			else
				fputc(*p, out);
		}
	}
	fputc('\n', out);
	fprintf(out, "Guest: %s, Linux %s, frame %llu, interval %.3f s", h->target, h->release,
		(unsigned long long)f->seq, (double)f->interval_ns / 1e9);
	if (late)
		fprintf(out, ", late %llu", (unsigned long long)late);
	fputc('\n', out);
	if (f->rebooted)
		fprintf(out, "*** the guest rebooted: re-attached, rates restart ***\n");
	if (f->truncated)
		fprintf(out, "*** process list incomplete: %s ***\n", f->truncated_why);
	else if (!f->complete)
		fprintf(out, "*** %zu record(s) skipped, %zu process(es) incomplete: values are lower bounds ***\n",
			f->skipped, f->incomplete);
	fprintf(out, "Tasks: %4u total, %3u running, %4u sleeping, %3u stopped, %3u zombie; %u threads\n",
		h->tasks, h->running, h->sleeping, h->stopped, h->zombie, h->threads);
	if (h->cpu_ok) {
		const struct top_cpu *t = &h->cpu_total;
		fprintf(out, "%%Cpu(s): %5.1f us, %5.1f sy, %5.1f ni, %5.1f id, %5.1f wa, %5.1f hi, "
			"%5.1f si, %5.1f st\n", t->user, t->system, t->nice, t->idle, t->iowait, t->irq,
			t->softirq, t->steal);
	} else {
		fprintf(out, "%%Cpu(s): %5.1f used by processes (100 = one vCPU; %u vCPU%s)\n",
			h->procs_cpu_percent, h->ncpus, h->ncpus == 1 ? "" : "s");
	}
	if (h->mem_ok) {
		uint64_t bc = h->mem_buffers + h->mem_cached;
		uint64_t used = vmw_sat_sub(vmw_sat_sub(h->mem_total, h->mem_free), bc);
		fprintf(out, "MiB Mem : %8.1f total, %8.1f free, %8.1f used, %8.1f buff/cache\n",
			(double)h->mem_total / 1048576, (double)h->mem_free / 1048576,
			(double)used / 1048576, (double)bc / 1048576);
	} else {
		fprintf(out, "MiB Mem : %8.1f total\n", (double)h->mem_total / 1048576);
	}
	if (h->swap_ok)
		fprintf(out, "MiB Swap: %8.1f total, %8.1f free, %8.1f used. %8.1f avail Mem\n",
			(double)h->swap_total / 1048576, (double)h->swap_free / 1048576,
			(double)vmw_sat_sub(h->swap_total, h->swap_free) / 1048576,
			(double)h->mem_available / 1048576);
}

static void print_batch(FILE *out, const struct top_header *h, const struct vmw_frame *f,
			const struct top_view *view, const struct top_rows *rows, uint64_t late, bool utf8)
{
	char cells[240], tree[512], cmd[4096];

	print_header(out, h, f, late);
	top_header_cells(view, cells, sizeof(cells));
	fprintf(out, "\n%sCOMMAND\n", cells);
	for (size_t i = 0; i < rows->n; i++) {
		top_row_cells(&rows->v[i], view, cells, sizeof(cells));
		top_tree_prefix(&rows->v[i], utf8, tree, sizeof(tree));
		top_row_command(&rows->v[i], cmd, sizeof(cmd));
		fprintf(out, "%s%s%s\n", cells, tree, cmd);
	}
	fputc('\n', out);
}

/* ---- JSON Lines ---------------------------------------------------------- */

static bool pid_listed(const int32_t *pids, size_t n, int32_t pid)
{
	if (!n)
		return true;
	for (size_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* The frame's fields before "processes": one small jansson dump, without
 * its closing brace (NULL when out of memory). */
static char *json_head(const struct top_header *h, const struct vmw_frame *f, uint64_t late,
		       size_t *len)
{
	json_t *root = json_object();
	char *head;

	json_object_update_new(root, vmw_report_frame_base(f, f->seq));
	json_object_set_new(root, "first", json_boolean(f->first));
	json_object_set_new(root, "rebooted", json_boolean(f->rebooted));
	json_object_set_new(root, "late_frames", json_integer((json_int_t)late));
	json_object_set_new(root, "vm", h->mem ? vmw_report_vm(h->target, h->mem)
					       : json_pack("{s:o}", "target", vmw_report_string(h->target)));
	json_object_set_new(root, "kernel", h->ki ? vmw_report_kernel(h->ki) : json_null());
	json_object_set_new(root, "summary", vmw_report_summary(f->summary_ok ? &f->summary : NULL, f));
	head = root ? json_dumps(root, JSON_COMPACT) : NULL;   /* full precision: time is Unix seconds */
	json_decref(root);
	if (head && (*len = strlen(head)) < 2) {
		free(head);
		return NULL;
	}
	if (head)
		(*len)--;      /* the closing brace */
	return head;
}

/*
 * One frame as one line, the bytes json_dumps of the frame as one jansson
 * tree printed: the head dumped, then each process and event streamed
 * (vmw_report_sample_stream, vmw_report_event_stream: ~1 MB per frame of a
 * thousand processes without a tree) into out's buffer (json_output), then
 * flushed.
 */
static int print_json(FILE *out, const struct top_header *h, const struct vmw_frame *f,
		      uint64_t late, const struct top_view *v)
{
	size_t hlen;
	char *head = json_head(h, f, late, &hlen);
	bool first = true, ok;

	if (!head)
		return -ENOMEM;
	ok = fwrite(head, 1, hlen, out) == hlen && fputs(",\"processes\":[", out) >= 0;
	free(head);
	for (size_t i = 0; ok && i < f->nprocs; i++)
		if (pid_listed(v->pids, v->npids, f->procs[i].proc.pid) &&
		    (!v->uid_set || f->procs[i].proc.uid == v->uid) &&
		    /* a process jansson could not pack was left out of the array */
		    vmw_report_sample_stream(out, first ? "" : ",", &f->procs[i]))
			first = false;
	ok = ok && fputs("],\"events\":[", out) >= 0;
	first = true;
	for (size_t i = 0; ok && i < f->nevents; i++)
		if (pid_listed(v->pids, v->npids, f->events[i].pid)) {
			ok = vmw_report_event_stream(out, first ? "" : ",", &f->events[i]);
			first = false;
		}
	ok = ok && fputs("]}\n", out) >= 0;
	if (fflush(out) != 0 || ferror(out))
		return errno ? -errno : -EIO;
	return ok ? 0 : -ENOMEM;
}

/* stdout's buffer for JSON Lines, set before anything is written: a frame
 * of a thousand processes (~1 MB) goes out in one or two writes, from the
 * same memory every frame (stdio's default: 4 KiB per write to a pipe). */
static void json_output(FILE *out)
{
	static char buf[1 << 20];

	setvbuf(out, buf, _IOFBF, sizeof(buf));
}

/* ---- options ------------------------------------------------------------- */

int top_parse_seconds(const char *s, uint64_t *ret)
{
	return vmw_parse_seconds(s, 86400, ret);
}

static int parse_pids(const char *s, int32_t *pids, size_t *n)
{
	char buf[4096], *save = NULL;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (vmw_parse_u64(tok, &v) < 0 || v == 0 || v > INT32_MAX || *n >= MAX_PIDS)
			return -EINVAL;
		pids[(*n)++] = (int32_t)v;
	}
	return 0;
}

enum mode { MODE_TUI, MODE_BATCH, MODE_JSON };

/* After a frame of a stream: false when -n is reached, a stop was requested
 * or came during the sleep to the next deadline. */
static bool next_tick(const struct top_opts *o, uint64_t *done, uint64_t *deadline, uint64_t *late)
{
	if ((o->iterations && ++*done >= o->iterations) || stop_requested)
		return false;
	*deadline = top_next_deadline(*deadline, o->interval_ns, vmw_now_ns(), late);
	return sleep_until(*deadline);
}

/* Writing a frame failed with r: say so; the exit code. */
static int output_failed(int r)
{
	cli_error("writing output: %s", strerror(-r));
	return 1;
}

/* A first frame to compute rates against, so the first one shown has CPU%
 * (if the guest cannot be read right now, the loops wait for it). False if a
 * stop was requested meanwhile. */
bool top_first_frame(struct top_source *src, uint64_t interval_ns)
{
	struct vmw_frame *f;

	if (top_source_frame(src, &f) != TOP_FRAME_OK)
		return true;
	vmw_frame_free(f);
	return sleep_until(vmw_now_ns() + MIN(interval_ns, 200000000u));
}

/* Batch and JSON: frames at deadlines until -n, a stop signal or an error.
 * While the guest cannot be read (rebooting) no frames are written; stderr
 * says so once. */
static int run_stream(struct top_source *src, const struct top_opts *o, enum mode mode,
		      struct top_header *h)
{
	struct top_rows rows = { 0 };
	uint64_t deadline = vmw_now_ns(), late = 0, done = 0;
	bool utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8"), waiting = false;
	int r, ret = 0;

	if (mode == MODE_JSON)
		json_output(stdout);

	for (;;) {
		struct vmw_frame *f;

		switch (top_source_frame(src, &f)) {
		case TOP_FRAME_OK:
			break;
		case TOP_FRAME_WAIT:
			if (!waiting)
				cli_error("%s; waiting for the guest while its QEMU process runs", src->why);
			waiting = true;
			if (!sleep_until(src->retry_at))
				goto out;
			deadline = vmw_now_ns();
			continue;
		case TOP_FRAME_GONE:
			cli_error("%s", src->why);
			ret = 1;
			goto out;
		}
		waiting = false;
		top_header_fill(h, src->s, o->target, f);
		if (mode == MODE_JSON) {
			r = print_json(stdout, h, f, late, &o->view);
		} else if ((r = top_rows_build(&rows, f, &o->view)) == 0) {
			print_batch(stdout, h, f, &o->view, &rows, late, utf8);
			r = fflush(stdout) == 0 ? 0 : -errno;
		}
		vmw_frame_free(f);
		if (r < 0) {
			ret = output_failed(r);
			break;
		}
		if (!next_tick(o, &done, &deadline, &late))
			break;
	}
out:
	top_rows_free(&rows);
	return ret;
}

/* ---- the host view in batch and JSON ----------------------------------------- */

static void print_host_batch(FILE *out, const struct host_view *hv, struct host_vm **rows, size_t n,
			     uint64_t late)
{
	char cells[256], tail[600], clock[16] = "?";
	time_t sec = (time_t)(hv->wall_ns / 1000000000u);
	struct tm tm;

	if (localtime_r(&sec, &tm))
		strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	fprintf(out, "vmwatch top - host %s, %zu VM%s, frame %llu", clock, hv->n, hv->n == 1 ? "" : "s",
		(unsigned long long)hv->seq);
	if (late)
		fprintf(out, ", late %llu", (unsigned long long)late);
	fputc('\n', out);
	if (hv->virt_why[0]) {
		fputs("libvirt: ", out);
		vmw_text_fputs(hv->virt_why, out);
		fputc('\n', out);
	}
	host_header_cells(cells, sizeof(cells));
	fprintf(out, "\n%s%s\n", cells, host_cols[HOST_COL_TOP].title);
	for (size_t i = 0; i < n; i++) {
		host_row_cells(rows[i], cells, sizeof(cells));
		host_row_tail(rows[i], tail, sizeof(tail));
		fprintf(out, "%s%s\n", cells, tail);
	}
	fputc('\n', out);
}

static int print_host_json(FILE *out, const struct host_view *hv, struct host_vm **rows, size_t n)
{
	json_t *root = host_view_json(hv, rows, n);
	char *line = root ? json_dumps(root, JSON_COMPACT) : NULL;
	int r = 0;

	json_decref(root);
	if (!line)
		return -ENOMEM;
	if (fputs(line, out) < 0 || fputc('\n', out) < 0 || fflush(out) != 0)
		r = -errno;
	free(line);
	return r;
}

/* Frames of every VM at deadlines; the first one after a priming frame, so
 * CPU% has an interval. */
static int run_host_stream(struct host_view *hv, const struct top_opts *o, enum mode mode,
			   const struct host_sort *sort)
{
	uint64_t deadline, late = 0, done = 0;
	struct host_vm **rows = NULL;
	int r = 0;

	/* A whole interval (at most 1 s): the guest's idle time of a tickless
	 * vCPU is only counted when it wakes, so a short one has no valid split. */
	if (host_view_update(hv) < 0 || !sleep_until(vmw_now_ns() + MIN(o->interval_ns, 1000000000u)))
		return stop_requested ? 0 : 1;
	deadline = vmw_now_ns();
	for (;;) {
		struct host_vm **nv;
		size_t n;

		if ((r = host_view_update(hv)) < 0 ||
		    !(nv = reallocarray(rows, hv->n ? hv->n : 1, sizeof(*rows)))) {
			cli_error("out of memory");
			r = 1;
			break;
		}
		rows = nv;
		n = host_rows(hv, sort, rows);
		if (mode == MODE_JSON) {
			r = print_host_json(stdout, hv, rows, n);
		} else {
			print_host_batch(stdout, hv, rows, n, late);
			r = fflush(stdout) == 0 ? 0 : -errno;
		}
		if (r < 0) {
			r = output_failed(r);
			break;
		}
		if (!next_tick(o, &done, &deadline, &late))
			break;
	}
	free(rows);
	return r;
}

/* ---- options ------------------------------------------------------------------ */

#define MAX_TARGETS 256

struct args {
	struct top_opts o;
	enum mode mode;
	int cmdline;               /* -1: the mode's default */
	const char *sort;          /* -o, parsed when the view is known */
	bool all;
	const char *match, *uri;
	char *targets[MAX_TARGETS];
	size_t ntargets;
	size_t nextra;             /* of which --target */
	int32_t pids[MAX_PIDS];
	size_t npids;
};

static int add_target(struct args *a, char *t)
{
	if (a->ntargets >= MAX_TARGETS) {
		cli_error("top: at most %d TARGETs", MAX_TARGETS);
		return -EINVAL;
	}
	a->targets[a->ntargets++] = t;
	return 0;
}

/* One option; 0, or the exit code. */
static int parse_opt(struct args *a, int c)
{
	switch (c) {
	case 'd':
		if (top_parse_seconds(optarg, &a->o.interval_ns) < 0) {
			cli_error("top: bad delay '%s' (seconds > 0, e.g. 1, 0.5, 0.01)", optarg);
			return EXIT_USAGE;
		}
		return 0;
	case 'n':
		if (vmw_parse_u64(optarg, &a->o.iterations) < 0 || !a->o.iterations) {
			cli_error("top: bad iteration count '%s' (a number >= 1)", optarg);
			return EXIT_USAGE;
		}
		return 0;
	case 'b': a->mode = MODE_BATCH; return 0;
	case 'j': a->mode = MODE_JSON; return 0;
	case 'o': a->sort = optarg; return 0;
	case 'p':
		if (parse_pids(optarg, a->pids, &a->npids) < 0) {
			cli_error("top: bad pid list '%s' (PID[,PID...], at most %d)", optarg, MAX_PIDS);
			return EXIT_USAGE;
		}
		return 0;
	case 'u':
		/* A name is resolved once the guest's /etc/passwd was read (run_one). */
		if (top_parse_user(optarg, &a->o.view.uid) == 0) {
			a->o.view.uid_set = true;
			a->o.view.user[0] = '\0';
		} else if (!*optarg || strlen(optarg) > TOP_USER_MAX) {
			cli_error("top: bad user '%s': a uid number or a user name (at most %d bytes)",
				  optarg, TOP_USER_MAX);
			return EXIT_USAGE;
		} else {
			a->o.view.uid_set = false;
			snprintf(a->o.view.user, sizeof(a->o.view.user), "%s", optarg);
		}
		return 0;
	case 'H': a->o.view.threads = true; return 0;
	case 't': a->o.view.tree = true; return 0;
	case 'I': a->o.view.io_cols = true; return 0;
	case 'F': a->o.view.fault_cols = true; return 0;
	case 'c': a->cmdline = 1; return 0;
	case 'C': a->cmdline = 0; return 0;
	case 'a': a->all = true; return 0;
	case 'T':
		a->nextra++;
		return add_target(a, optarg) < 0 ? EXIT_USAGE : 0;
	case 'f': a->match = optarg; return 0;
	case 'U': a->uri = optarg; return 0;
	case 'h': usage(stdout); return -1;
	default:
		if (cli_target_option(&a->o.topts, c))
			return 0;
		usage(stderr);
		return EXIT_USAGE;
	}
}

static int parse_args(struct args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "delay", required_argument, NULL, 'd' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "batch", no_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "sort", required_argument, NULL, 'o' },
		{ "pid", required_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'u' },
		{ "threads", no_argument, NULL, 'H' },
		{ "tree", no_argument, NULL, 't' },
		{ "io", no_argument, NULL, 'I' },
		{ "faults", no_argument, NULL, 'F' },
		{ "cmdline", no_argument, NULL, 'c' },
		{ "no-cmdline", no_argument, NULL, 'C' },
		{ "all", no_argument, NULL, 'a' },
		{ "target", required_argument, NULL, 'T' },
		{ "filter", required_argument, NULL, 'f' },
		{ "connect", required_argument, NULL, 'U' },
		CLI_TARGET_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "d:n:bjo:p:u:Htaf:h", opts, NULL)) != -1)
		if ((r = parse_opt(a, c)) != 0)
			return r;
	for (int i = optind; i < argc; i++)
		if (add_target(a, argv[i]) < 0)
			return EXIT_USAGE;
	if (a->mode == MODE_TUI && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))) {
		cli_error("top: the interactive view needs a terminal; use -b (text) or --json");
		return EXIT_USAGE;
	}
	return 0;
}

/* One guest's processes (`vmwatch top TARGET`). */
static int run_one(struct args *a, struct top_header *h)
{
	struct top_opts *o = &a->o;
	struct top_source src;
	int col, r;

	if (a->sort) {
		if ((col = top_col_parse(a->sort)) < 0) {
			cli_error("top: unknown sort field '%s' (cpu, mem, pid, time, virt, res, shr, "
				  "user, pr, ni, state, command, rchar_rate, wchar_rate, read_rate, "
				  "write_rate, minflt_rate, majflt_rate, csw_rate)", a->sort);
			return EXIT_USAGE;
		}
		o->view.sort = (enum top_col)col;
		top_col_show(&o->view, o->view.sort);
	}
	o->target = a->targets[0];
	o->view.pids = a->npids ? a->pids : NULL;
	o->view.npids = a->npids;
	/* Command lines cost reads of process memory: on where a person reads them. */
	o->cmdline = a->cmdline < 0 ? a->mode != MODE_JSON : a->cmdline;
	if (o->cmdline)
		o->sopts.walk_flags |= VMW_WALK_CMDLINE;
	/* The interactive view walks threads always, so H shows them at once with
	 * their own CPU% (rates need the previous frame to have them too). */
	if (o->view.threads || a->mode == MODE_TUI)
		o->sopts.walk_flags |= VMW_WALK_THREADS;
	if ((r = top_source_open(&src, o->target, &o->topts, &o->sopts)) != 0)
		return r;
	install_signals();
	if (!top_first_frame(&src, o->interval_ns)) {
		top_source_close(&src);
		return 0;
	}
	if (o->view.user[0] && !o->view.uid_set) {
		if (top_source_user(&src, o->view.user, &o->view.uid) < 0) {
			cli_error("top: user '%s' is not in the guest's /etc/passwd (as its page cache "
				  "holds it); give a numeric uid", o->view.user);
			top_source_close(&src);
			return EXIT_USAGE;
		}
		o->view.uid_set = true;
	}
	if (a->mode == MODE_TUI)
		r = top_tui_run(&src, o, h, &stop_requested);
	else
		r = run_stream(&src, o, a->mode, h);
	top_source_close(&src);
	return r;
}

/* Every VM (`vmwatch top`, `--all`, several TARGETs). */
static int run_host(struct args *a)
{
	struct host_opts ho = { .all = a->all || a->ntargets == a->nextra, .targets = a->targets,
				.ntargets = a->ntargets, .match = a->match, .uri = a->uri,
				.topts = a->o.topts, .sopts = { .sz = sizeof(struct vmw_sampler_opts) } };
	struct host_sort sort = { .col = HOST_COL_CPU };
	struct host_view hv;
	int col, r;

	if (a->sort) {
		if ((col = host_col_parse(a->sort)) < 0) {
			cli_error("top: unknown sort field '%s' for the host view (name, status, vcpus, "
				  "cpu, us, sy, wa, st, host, mem, mempct, procs, load, os, top)", a->sort);
			return EXIT_USAGE;
		}
		sort.col = (enum host_col)col;
	}
	if (a->npids || a->o.view.threads || a->o.view.tree) {
		cli_error("top: -p, -H and -t are for one guest's processes (give one TARGET, or "
			  "press Enter on a VM in the interactive host view)");
		return EXIT_USAGE;
	}
	a->o.cmdline = a->cmdline < 0 ? true : a->cmdline;
	host_view_init(&hv, &ho);
	install_signals();
	if (a->mode == MODE_TUI)
		r = host_tui_run(&hv, &a->o, &sort, &stop_requested);
	else
		r = run_host_stream(&hv, &a->o, a->mode, &sort);
	host_view_free(&hv);
	return r;
}

int cmd_top(int argc, char **argv)
{
	_cleanup_free_ struct args *a = calloc(1, sizeof(*a));
	_cleanup_free_ struct top_header *h = calloc(1, sizeof(*h));
	int r;

	if (!a || !h) {
		cli_error("out of memory");
		return 1;
	}
	a->o = (struct top_opts){
		.interval_ns = 1000000000u,
		.view = { .sort = TOP_COL_CPU },
		.sopts = { .sz = sizeof(struct vmw_sampler_opts) },
	};
	a->cmdline = -1;
	if ((r = parse_args(a, argc, argv)) != 0)
		return r < 0 ? 0 : r;
	setlocale(LC_CTYPE, "");
	if (a->ntargets == 1 && !a->nextra && !a->all)
		return run_one(a, h);
	return run_host(a);
}
