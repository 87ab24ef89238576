/* vmw-truth -- the vmwatch lab's ground-truth agent.
 *
 * Runs inside the guest (started by /init) and talks over a serial port
 * (default /dev/ttyS1), one command per line:
 *
 *   ping [TOKEN]          -> "PONG [TOKEN]"
 *   snap [tasks] [z]      -> "BEGIN <seq>", a JSON object (several lines),
 *                            "END <seq> <bytes>"  (bytes = length of the
 *                            text between the BEGIN and END lines, newlines
 *                            included). With "z": "BEGINZ <seq> <zlen>",
 *                            zlen bytes of zlib data (the same JSON text),
 *                            "END <seq> <bytes>".
 *   run PROG [ARGS...]    -> spawn PROG detached (double fork, setsid, stdio
 *                            on /dev/null; its parent becomes init);
 *                            "OK <pid>" or "ERR <reason>"
 *   kill PID [SIG]        -> kill(PID, SIG) (SIG defaults to 9; a negative
 *                            PID names a process group); "OK" or "ERR ..."
 *   sh CMD... | shz CMD.. -> /bin/sh -c CMD, stdout+stderr captured (60 s
 *                            limit): BEGIN/END framed {"rc":N,"out":"..."}
 *
 * Arguments are separated by spaces; "%XX" in an argument is decoded (so a
 * host can send spaces, '%' or control characters). A "READY" line is sent
 * at start. See lab/README.md for the snapshot format.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define AGENT_VERSION 1

/* ---------- growable output buffer ---------- */

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_reserve(struct sb *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 65536;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		fprintf(stderr, "vmw-truth: out of memory\n");
		_exit(1);
	}
	b->p = p;
	b->cap = cap;
}

static void sb_put(struct sb *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_puts(struct sb *b, const char *s) { sb_put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* JSON string; bytes >= 0x80 are passed through raw (the host decodes the
 * text as UTF-8 with surrogateescape, so invalid sequences survive). */
static void sb_json_str(struct sb *b, const char *s, size_t n)
{
	sb_reserve(b, n * 6 + 2);
	char *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c == '\t') {
			*o++ = '\\';
			*o++ = 't';
		} else if (c < 0x20 || c == 0x7f) {
			o += sprintf(o, "\\u%04x", c);
		} else {
			*o++ = (char)c;
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	b->p[b->len] = 0;
}

/* ---------- serial I/O ---------- */

static int tty_fd = -1;

static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(tty_fd, p, n);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return;   /* nothing sensible to do */
		}
		p += w;
		n -= (size_t)w;
	}
}

__attribute__((format(printf, 1, 2)))
static void reply(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	write_all(line, (size_t)n);
}

static unsigned long seq;


/* ---------- zlib stream (fixed-Huffman deflate + LZ77) ----------
 * Serial ports are slow (~100 KB/s under TCG); snapshots compress ~5x. */

struct bitw {
	struct sb *out;
	uint64_t acc;
	int n;
};

static void bw_put(struct bitw *w, uint32_t bits, int n)
{
	w->acc |= (uint64_t)bits << w->n;
	w->n += n;
	while (w->n >= 8) {
		char c = (char)(w->acc & 0xff);
		sb_put(w->out, &c, 1);
		w->acc >>= 8;
		w->n -= 8;
	}
}

static void bw_huff(struct bitw *w, uint32_t code, int n)
{
	uint32_t r = 0;   /* Huffman codes go most-significant bit first */
	for (int i = 0; i < n; i++)
		r |= ((code >> i) & 1u) << (n - 1 - i);
	bw_put(w, r, n);
}

static void put_litlen(struct bitw *w, int sym)
{
	if (sym < 144)
		bw_huff(w, 0x30u + (uint32_t)sym, 8);
	else if (sym < 256)
		bw_huff(w, 0x190u + (uint32_t)(sym - 144), 9);
	else if (sym < 280)
		bw_huff(w, (uint32_t)(sym - 256), 7);
	else
		bw_huff(w, 0xc0u + (uint32_t)(sym - 280), 8);
}

static const uint16_t len_base[29] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
	35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const uint8_t len_extra[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
	3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const uint16_t dist_base[30] = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
	257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
static const uint8_t dist_extra[30] = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
	7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };

static void put_match(struct bitw *w, int len, int dist)
{
	int i = 28;
	while (len_base[i] > len)
		i--;
	put_litlen(w, 257 + i);
	if (len_extra[i])
		bw_put(w, (uint32_t)(len - len_base[i]), len_extra[i]);
	int d = 29;
	while (dist_base[d] > dist)
		d--;
	bw_huff(w, (uint32_t)d, 5);
	if (dist_extra[d])
		bw_put(w, (uint32_t)(dist - dist_base[d]), dist_extra[d]);
}

#define WSIZE 32768
#define HBITS 15
#define MAXCHAIN 48

static void zlib_compress(const unsigned char *in, size_t n, struct sb *out)
{
	static int32_t head[1 << HBITS];
	static int32_t *prev;
	static size_t prev_cap;
	if (prev_cap < n) {
		free(prev);
		prev = malloc((n ? n : 1) * sizeof *prev);
		prev_cap = prev ? n : 0;
		if (!prev) {
			fprintf(stderr, "vmw-truth: out of memory\n");
			_exit(1);
		}
	}
	for (size_t i = 0; i < (1u << HBITS); i++)
		head[i] = -1;

	out->len = 0;
	sb_put(out, "\x78\x01", 2);
	struct bitw w = { .out = out };
	bw_put(&w, 1, 1);   /* BFINAL */
	bw_put(&w, 1, 2);   /* BTYPE = fixed Huffman */
	size_t i = 0;
	while (i < n) {
		int best = 0, bdist = 0;
		if (i + 3 <= n) {
			uint32_t h = ((uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2]) * 2654435761u >> (32 - HBITS);
			int32_t cand = head[h];
			int chain = MAXCHAIN;
			size_t maxlen = n - i < 258 ? n - i : 258;
			while (cand >= 0 && i - (size_t)cand <= WSIZE && chain--) {
				const unsigned char *a = in + cand, *b = in + i;
				if (a[best] == b[best]) {
					size_t l = 0;
					while (l < maxlen && a[l] == b[l])
						l++;
					if ((int)l > best) {
						best = (int)l;
						bdist = (int)(i - (size_t)cand);
						if (l == maxlen)
							break;
					}
				}
				cand = prev[cand];
			}
			prev[i] = head[h];
			head[h] = (int32_t)i;
		}
		if (best >= 3) {
			put_match(&w, best, bdist);
			/* index the skipped positions too */
			for (size_t k = i + 1; k < i + (size_t)best && k + 3 <= n; k++) {
				uint32_t h = ((uint32_t)in[k] << 16 | (uint32_t)in[k + 1] << 8 | in[k + 2]) * 2654435761u >> (32 - HBITS);
				prev[k] = head[h];
				head[h] = (int32_t)k;
			}
			i += (size_t)best;
		} else {
			put_litlen(&w, in[i]);
			i++;
		}
	}
	put_litlen(&w, 256);   /* end of block */
	if (w.n)
		bw_put(&w, 0, 8 - w.n);
	uint32_t a = 1, b = 0;
	for (size_t k = 0; k < n; k++) {
		a = (a + in[k]) % 65521;
		b = (b + a) % 65521;
	}
	uint32_t ad = b << 16 | a;
	unsigned char tail[4] = { (unsigned char)(ad >> 24), (unsigned char)(ad >> 16),
				  (unsigned char)(ad >> 8), (unsigned char)ad };
	sb_put(out, (const char *)tail, 4);
}

/* Send body (which must end in '\n') framed as BEGIN/END, or, compressed,
 * as "BEGINZ <seq> <zlen>\n" <zlen bytes of zlib data> "END <seq> <len>\n". */
static void send_framed(struct sb *body, bool z)
{
	seq++;
	char head[64];
	int n;
	if (z) {
		static struct sb zb;
		zlib_compress((const unsigned char *)body->p, body->len, &zb);
		n = snprintf(head, sizeof head, "BEGINZ %lu %zu\n", seq, zb.len);
		write_all(head, (size_t)n);
		write_all(zb.p, zb.len);
	} else {
		n = snprintf(head, sizeof head, "BEGIN %lu\n", seq);
		write_all(head, (size_t)n);
		write_all(body->p, body->len);
	}
	n = snprintf(head, sizeof head, "END %lu %zu\n", seq, body->len);
	write_all(head, (size_t)n);
}

/* ---------- /proc reading ---------- */

/* Read a whole (small) file into buf; returns length or -1. NUL-terminates. */
static ssize_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len < cap - 1) {
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	return (ssize_t)len;
}

/* Read a file of any size into a growable buffer (for /proc/stat etc). */
static bool read_text(const char *path, struct sb *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	out->len = 0;
	for (;;) {
		sb_reserve(out, 65536);
		ssize_t r = read(fd, out->p + out->len, 65536);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return false;
		}
		if (r == 0)
			break;
		out->len += (size_t)r;
	}
	out->p[out->len] = 0;
	close(fd);
	return true;
}

static void emit_text_field(struct sb *b, const char *key, const char *path)
{
	static struct sb tmp;
	sb_printf(b, ",\n\"%s\":", key);
	if (read_text(path, &tmp))
		sb_json_str(b, tmp.p, tmp.len);
	else
		sb_puts(b, "null");
}

struct statf {
	char comm[64];
	size_t comm_len;
	char state;
	long long f[64];   /* f[i] = field i+1 of proc(5) numbering, from 4 on */
	int nf;
};

/* Parse /proc/PID/stat: "pid (comm) S ppid ...". comm may contain spaces and
 * parentheses, so it ends at the LAST ')'. */
static bool parse_stat(char *buf, struct statf *st)
{
	char *lp = strchr(buf, '(');
	char *rp = strrchr(buf, ')');
	if (!lp || !rp || rp < lp)
		return false;
	size_t n = (size_t)(rp - lp - 1);
	if (n >= sizeof st->comm)
		n = sizeof st->comm - 1;
	memcpy(st->comm, lp + 1, n);
	st->comm[n] = 0;
	st->comm_len = n;
	char *p = rp + 1;
	while (*p == ' ')
		p++;
	st->state = *p ? *p : '?';
	if (*p)
		p++;
	memset(st->f, 0, sizeof st->f);
	st->nf = 3;
	while (*p && st->nf < 64) {
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			break;
		char *end;
		st->f[st->nf] = strtoll(p, &end, 10);
		if (end == p)
			break;
		st->nf++;
		p = end;
	}
	return st->nf > 23;
}

/* proc(5) field numbers (1-based) */
#define F(st, n) ((st)->f[(n) - 1])
enum {
	S_PPID = 4, S_PGRP = 5, S_SESSION = 6, S_TTY = 7, S_TPGID = 8, S_FLAGS = 9, S_MINFLT = 10,
	S_MAJFLT = 12, S_UTIME = 14, S_STIME = 15, S_CUTIME = 16, S_CSTIME = 17,
	S_PRIO = 18, S_NICE = 19, S_NTHREADS = 20, S_START = 22, S_VSIZE = 23,
	S_RSS = 24, S_PROCESSOR = 39, S_RTPRIO = 40, S_POLICY = 41,
};
#define PF_KTHREAD 0x00200000LL

static void emit_stat_common(struct sb *b, const struct statf *st)
{
	sb_puts(b, ",\"comm\":");
	sb_json_str(b, st->comm, st->comm_len);
	sb_printf(b, ",\"state\":\"%c\",\"utime\":%lld,\"stime\":%lld"
		  ",\"priority\":%lld,\"nice\":%lld,\"starttime\":%lld"
		  ",\"processor\":%lld,\"rt_priority\":%lld,\"policy\":%lld"
		  ",\"minflt\":%lld,\"majflt\":%lld",
		  st->state, F(st, S_UTIME), F(st, S_STIME), F(st, S_PRIO), F(st, S_NICE),
		  F(st, S_START), F(st, S_PROCESSOR), F(st, S_RTPRIO), F(st, S_POLICY),
		  F(st, S_MINFLT), F(st, S_MAJFLT));
}

/* Emit "Key":value for /proc/PID/status lines we care about: all "<n> kB"
 * values (VmRSS, RssAnon, ...), Uid/Gid (as 4-element arrays) and the
 * context-switch counters. */
static void emit_status(struct sb *b, char *status)
{
	char *save = NULL;
	for (char *line = strtok_r(status, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			continue;
		*colon = 0;
		char *val = colon + 1;
		while (*val == ' ' || *val == '\t')
			val++;
		if (!strcmp(line, "Uid") || !strcmp(line, "Gid")) {
			long long v[4] = { 0, 0, 0, 0 };
			sscanf(val, "%lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3]);
			sb_printf(b, ",\"%s\":[%lld,%lld,%lld,%lld]", !strcmp(line, "Uid") ? "uid" : "gid",
				  v[0], v[1], v[2], v[3]);
			continue;
		}
		if (!strcmp(line, "voluntary_ctxt_switches") || !strcmp(line, "nonvoluntary_ctxt_switches")) {
			sb_printf(b, ",\"%s\":%lld", line, strtoll(val, NULL, 10));
			continue;
		}
		size_t vl = strlen(val);
		if (vl > 3 && !strcmp(val + vl - 3, " kB")) {
			bool ok = true;
			for (const char *k = line; *k; k++)
				if (!isalnum((unsigned char)*k) && *k != '_')
					ok = false;
			if (ok)
				sb_printf(b, ",\"%s\":%lld", line, strtoll(val, NULL, 10));
		}
	}
}

static void emit_cmdline(struct sb *b, const char *buf, ssize_t n)
{
	sb_puts(b, ",\"cmdline\":[");
	if (n > 0) {
		/* ignore one trailing NUL; split on the others */
		size_t len = (size_t)n;
		if (buf[len - 1] == 0)
			len--;
		size_t start = 0;
		bool first = true;
		for (size_t i = 0; i <= len; i++) {
			if (i == len || buf[i] == 0) {
				if (!first)
					sb_put(b, ",", 1);
				first = false;
				sb_json_str(b, buf + start, i - start);
				start = i + 1;
			}
		}
	}
	sb_puts(b, "]");
}

static char statbuf[4096], statusbuf[16384], cmdbuf[65536], iobuf[1024];

/* /proc/PID/io ("rchar: N" lines) as "io":{"rchar":N,...}; nothing when
 * unreadable (another user's process without ptrace rights, a kernel thread
 * of a kernel without it). */
/* /proc/PID/cgroup as "cgroup":"<its text>". */
static void emit_cgroup(struct sb *b, int pid)
{
	char path[96];

	snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
	if (read_file(path, iobuf, sizeof iobuf) <= 0)
		return;
	sb_puts(b, ",\"cgroup\":");
	sb_json_str(b, iobuf, strlen(iobuf));
}

static void emit_io(struct sb *b, int pid)
{
	char path[96], *save = NULL;
	bool first = true;

	snprintf(path, sizeof path, "/proc/%d/io", pid);
	if (read_file(path, iobuf, sizeof iobuf) <= 0)
		return;
	sb_puts(b, ",\"io\":{");
	for (char *line = strtok_r(iobuf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = 0;
		sb_printf(b, "%s\"%s\":%lld", first ? "" : ",", line, strtoll(colon + 1, NULL, 10));
		first = false;
	}
	sb_puts(b, "}");
}

/* A /proc directory entry that names a pid/tid; returns it or -1. */
static int dir_pid(const char *s)
{
	if (!*s || strlen(s) > 9)
		return -1;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	return atoi(s);
}

static void emit_tasks(struct sb *b, int pid)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	sb_puts(b, ",\"tasks\":[");
	if (!d) {
		sb_puts(b, "]");
		return;
	}
	bool first = true;
	struct dirent *de;
	while ((de = readdir(d))) {
		int tid = dir_pid(de->d_name);
		if (tid < 0)
			continue;
		char sp[128];
		snprintf(sp, sizeof sp, "/proc/%d/task/%d/stat", pid, tid);
		if (read_file(sp, statbuf, sizeof statbuf) <= 0)
			continue;
		struct statf st;
		if (!parse_stat(statbuf, &st))
			continue;
		sb_printf(b, "%s\n {\"tid\":%d", first ? "" : ",", tid);
		emit_stat_common(b, &st);
		sb_puts(b, "}");
		first = false;
	}
	closedir(d);
	sb_puts(b, "]");
}

static bool emit_proc(struct sb *b, int pid, bool tasks, bool first)
{
	char path[96];
	struct statf st;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (read_file(path, statbuf, sizeof statbuf) <= 0 || !parse_stat(statbuf, &st))
		return false;   /* gone (or a kernel we do not understand) */
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (read_file(path, statusbuf, sizeof statusbuf) <= 0)
		return false;
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	ssize_t cl = read_file(path, cmdbuf, sizeof cmdbuf);

	sb_printf(b, "%s\n{\"pid\":%d,\"ppid\":%lld,\"pgrp\":%lld,\"session\":%lld,\"tty_nr\":%lld"
		  ",\"tpgid\":%lld,\"flags\":%lld,\"kthread\":%s,\"num_threads\":%lld,\"vsize\":%lld"
		  ",\"rss\":%lld,\"cutime\":%lld,\"cstime\":%lld",
		  first ? "" : ",", pid, F(&st, S_PPID), F(&st, S_PGRP), F(&st, S_SESSION),
		  F(&st, S_TTY), F(&st, S_TPGID), F(&st, S_FLAGS), (F(&st, S_FLAGS) & PF_KTHREAD) ? "true" : "false",
		  F(&st, S_NTHREADS), F(&st, S_VSIZE), F(&st, S_RSS),
		  F(&st, S_CUTIME), F(&st, S_CSTIME));
	emit_stat_common(b, &st);
	emit_status(b, statusbuf);
	emit_cmdline(b, cmdbuf, cl);
	emit_io(b, pid);
	emit_cgroup(b, pid);
	if (tasks)
		emit_tasks(b, pid);
	sb_puts(b, "}");
	return true;
}

static long long clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void cmd_snap(bool tasks, bool z)
{
	static struct sb b;
	b.len = 0;
	sb_reserve(&b, 0);
	b.p[0] = 0;

	struct utsname u;
	uname(&u);
	sb_printf(&b, "{\"version\":%d,\"seq\":%lu,\"agent_pid\":%d,\"clk_tck\":%ld,\"page_size\":%ld"
		  ",\"tasks\":%s,\"t_start_ns\":%lld",
		  AGENT_VERSION, seq + 1, (int)getpid(), sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE),
		  tasks ? "true" : "false", clock_ns(CLOCK_BOOTTIME));
	sb_puts(&b, ",\"release\":");
	sb_json_str(&b, u.release, strlen(u.release));
	sb_puts(&b, ",\"kversion\":");
	sb_json_str(&b, u.version, strlen(u.version));
	sb_puts(&b, ",\"machine\":");
	sb_json_str(&b, u.machine, strlen(u.machine));
	emit_text_field(&b, "uptime", "/proc/uptime");
	emit_text_field(&b, "loadavg", "/proc/loadavg");
	emit_text_field(&b, "meminfo", "/proc/meminfo");
	emit_text_field(&b, "stat", "/proc/stat");
	emit_text_field(&b, "vmstat", "/proc/vmstat");

	sb_puts(&b, ",\n\"procs\":[");
	DIR *d = opendir("/proc");
	bool first = true;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			int pid = dir_pid(de->d_name);
			if (pid < 0)
				continue;
			if (emit_proc(&b, pid, tasks, first))
				first = false;
		}
		closedir(d);
	}
	sb_printf(&b, "],\n\"t_end_ns\":%lld}\n", clock_ns(CLOCK_BOOTTIME));
	send_framed(&b, z);
}

/* ---------- commands ---------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void pct_decode(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			*o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = 0;
}

#define MAXARGS 256

static int split_args(char *line, char **argv)
{
	int argc = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t", &save); t && argc < MAXARGS - 1; t = strtok_r(NULL, " \t", &save)) {
		pct_decode(t);
		argv[argc++] = t;
	}
	argv[argc] = NULL;
	return argc;
}

static void child_stdio_null(void)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

static void reset_signals(void)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
}

static void cmd_run(char **argv)
{
	int pidp[2], errp[2];
	if (pipe2(pidp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
		reply("ERR pipe: %s", strerror(errno));
		return;
	}
	pid_t mid = fork();
	if (mid < 0) {
		reply("ERR fork: %s", strerror(errno));
		close(pidp[0]); close(pidp[1]); close(errp[0]); close(errp[1]);
		return;
	}
	if (mid == 0) {
		close(pidp[0]);
		close(errp[0]);
		close(tty_fd);
		reset_signals();
		pid_t pid = fork();
		if (pid == 0) {
			setsid();   /* own session and process group: pgid == sid == pid */
			child_stdio_null();
			execvp(argv[0], argv);
			int e = errno;
			if (write(errp[1], &e, sizeof e) < 0)
				_exit(126);
			_exit(127);
		}
		if (write(pidp[1], &pid, sizeof pid) < 0)
			_exit(1);
		_exit(pid < 0 ? 1 : 0);
	}
	close(pidp[1]);
	close(errp[1]);
	pid_t pid = -1;
	ssize_t r;
	while ((r = read(pidp[0], &pid, sizeof pid)) < 0 && errno == EINTR)
		;
	if (r != sizeof pid)
		pid = -1;
	int e = 0;
	while ((r = read(errp[0], &e, sizeof e)) < 0 && errno == EINTR)
		;
	close(pidp[0]);
	close(errp[0]);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	if (pid <= 0)
		reply("ERR fork failed");
	else if (r == sizeof e)
		reply("ERR exec %s: %s", argv[0], strerror(e));
	else
		reply("OK %d", (int)pid);
}

static void cmd_kill(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		reply("ERR usage: kill PID [SIG]");
		return;
	}
	long pid = strtol(argv[1], NULL, 10);
	int sig = argc == 3 ? atoi(argv[2]) : SIGKILL;
	if (pid == 0 || pid == 1 || pid == -1 || pid == getpid()) {
		reply("ERR refusing to signal %ld", pid);
		return;
	}
	if (kill((pid_t)pid, sig) != 0)
		reply("ERR kill: %s", strerror(errno));
	else
		reply("OK");
}

static void cmd_sh(const char *cmd, bool z)
{
	int pp[2];
	if (pipe2(pp, O_CLOEXEC)) {
		reply("ERR pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		reply("ERR fork: %s", strerror(errno));
		close(pp[0]);
		close(pp[1]);
		return;
	}
	if (pid == 0) {
		close(tty_fd);
		reset_signals();
		setsid();
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		dup2(pp[1], 1);
		dup2(pp[1], 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pp[1]);
	static struct sb out;
	out.len = 0;
	sb_reserve(&out, 0);
	long long deadline = clock_ns(CLOCK_MONOTONIC) + 60LL * 1000000000LL;
	bool killed = false;
	for (;;) {
		long long left = (deadline - clock_ns(CLOCK_MONOTONIC)) / 1000000;
		if (left <= 0) {
			kill(-pid, SIGKILL);
			killed = true;
			break;
		}
		struct pollfd pfd = { .fd = pp[0], .events = POLLIN };
		int pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		char buf[4096];
		ssize_t r = read(pp[0], buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (out.len < (1u << 20))
			sb_put(&out, buf, (size_t)r);
	}
	close(pp[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	static struct sb b;
	b.len = 0;
	sb_printf(&b, "{\"rc\":%d,\"timeout\":%s,\"out\":", rc, killed ? "true" : "false");
	sb_json_str(&b, out.p, out.len);
	sb_puts(&b, "}\n");
	send_framed(&b, z);
}

static void handle_line(char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = 0;
	while (*line == ' ' || *line == '\t' || *line == '\r')
		line++;
	if (!*line)
		return;

	if (!strncmp(line, "sh ", 3) || !strncmp(line, "shz ", 4)) {
		bool z = line[2] == 'z';
		char *cmd = line + (z ? 4 : 3);
		pct_decode(cmd);
		cmd_sh(cmd, z);
		return;
	}
	char *argv[MAXARGS];
	int argc = split_args(line, argv);
	if (argc == 0)
		return;
	if (!strcmp(argv[0], "ping")) {
		if (argc > 1)
			reply("PONG %s", argv[1]);
		else
			reply("PONG");
	} else if (!strcmp(argv[0], "snap")) {
		bool tasks = false, z = false;
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "tasks"))
				tasks = true;
			else if (!strcmp(argv[i], "z"))
				z = true;
		}
		cmd_snap(tasks, z);
	} else if (!strcmp(argv[0], "run")) {
		if (argc < 2)
			reply("ERR usage: run PROG [ARGS...]");
		else
			cmd_run(argv + 1);
	} else if (!strcmp(argv[0], "kill")) {
		cmd_kill(argc, argv);
	} else {
		reply("ERR unknown command");
	}
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/ttyS1";
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	tty_fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty_fd < 0) {
		fprintf(stderr, "vmw-truth: open %s: %s\n", dev, strerror(errno));
		return 1;
	}
	struct termios t;
	if (tcgetattr(tty_fd, &t) == 0) {
		cfmakeraw(&t);
		cfsetispeed(&t, B115200);
		cfsetospeed(&t, B115200);
		t.c_cflag |= CLOCAL | CREAD;
		t.c_cflag &= ~(tcflag_t)CRTSCTS;
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		tcsetattr(tty_fd, TCSANOW, &t);
	}
	tcflush(tty_fd, TCIFLUSH);

	reply("READY vmw-truth %d pid=%d", AGENT_VERSION, (int)getpid());

	static char line[65536];
	size_t len = 0;
	bool overflow = false;
	for (;;) {
		char buf[4096];
		ssize_t r = read(tty_fd, buf, sizeof buf);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "vmw-truth: read: %s\n", strerror(errno));
			sleep(1);
			continue;
		}
		if (r == 0) {
			usleep(100000);   /* hangup: keep going */
			continue;
		}
		for (ssize_t i = 0; i < r; i++) {
			char c = buf[i];
			if (c == '\n' || c == '\r') {
				line[len] = 0;
				if (overflow)
					reply("ERR line too long");
				else
					handle_line(line);
				len = 0;
				overflow = false;
			} else if (len < sizeof line - 1) {
				line[len++] = c;
			} else {
				overflow = true;
			}
		}
	}
}
