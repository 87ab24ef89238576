/* SPDX-License-Identifier: MIT */
#include "util/util.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

__attribute__((format(printf, 4, 0)))
static void error_vset(struct vmw_error *err, enum vmw_error_kind kind, int code, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	err->code = code;
	err->kind = kind;
}

int vmw_error_set(struct vmw_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		error_vset(err, vmw_error_kind_from_code(code), code, fmt, ap);
		va_end(ap);
	}
	return code;
}

int vmw_error_setk(struct vmw_error *err, enum vmw_error_kind kind, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		error_vset(err, kind, code, fmt, ap);
		va_end(ap);
	}
	return code;
}

enum vmw_error_kind vmw_error_kind_from_code(int code)
{
	switch (code < 0 ? -code : code) {
	case 0:
		return VMW_ERR_NONE;
	case EACCES:
	case EPERM:
		return VMW_ERR_PERMISSION;
	case ESRCH:
		return VMW_ERR_GONE;
	case ENOENT:
		return VMW_ERR_NOT_FOUND;
	case EINVAL:
		return VMW_ERR_USAGE;
	case ENOTSUP:
	case ENOEXEC:
		return VMW_ERR_UNSUPPORTED;
	case EIO:
	case EFAULT:
		return VMW_ERR_IO;
	default:
		return VMW_ERR_INTERNAL;
	}
}

enum vmw_error_kind vmw_error_kind_of(const struct vmw_error *err, int code)
{
	if (err && err->code && err->kind != VMW_ERR_NONE)
		return err->kind;
	enum vmw_error_kind k = vmw_error_kind_from_code(code);
	return k == VMW_ERR_NONE ? VMW_ERR_INTERNAL : k;
}

const char *vmw_error_kind_name(enum vmw_error_kind kind)
{
	static const char *const names[VMW_ERR__MAX] = {
		[VMW_ERR_NONE] = "none",
		[VMW_ERR_INTERNAL] = "error",
		[VMW_ERR_USAGE] = "usage",
		[VMW_ERR_NOT_FOUND] = "not_found",
		[VMW_ERR_PERMISSION] = "permission",
		[VMW_ERR_GONE] = "gone",
		[VMW_ERR_NOT_LINUX] = "not_linux",
		[VMW_ERR_NO_BTF] = "no_btf",
		[VMW_ERR_MISSING_LAYOUT] = "missing_layout",
		[VMW_ERR_UNSUPPORTED] = "unsupported",
		[VMW_ERR_INCONSISTENT] = "inconsistent",
		[VMW_ERR_IO] = "io",
		[VMW_ERR_CRASHED] = "crashed",
	};
	return (unsigned)kind < VMW_ERR__MAX ? names[kind] : "error";
}

int vmw_error_prefix(struct vmw_error *err, const char *fmt, ...)
{
	char prefix[256], old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return 0;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation of a long message is acceptable; keep the compiler quiet about it. */
	size_t n = strnlen(prefix, sizeof(prefix));
	memcpy(err->msg, prefix, n);
	size_t m = strnlen(old, sizeof(old) - 1);
	if (m > sizeof(err->msg) - 1 - n)
		m = sizeof(err->msg) - 1 - n;
	memcpy(err->msg + n, old, m);
	err->msg[n + m] = '\0';
	return err->code;
}

const char *vmw_error_msg(const struct vmw_error *err, int code)
{
	if (err && err->code && err->msg[0])
		return err->msg;
	return strerror(code < 0 ? -code : code);
}

int vmw_parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

struct rcstr {
	size_t refs;
	char s[];
};

static struct rcstr *rcstr_of(char *s)
{
	return (struct rcstr *)(void *)(s - offsetof(struct rcstr, s));
}

char *vmw_rcstr_new(const char *s, size_t len)
{
	struct rcstr *r;

	if (!s || len > SIZE_MAX - sizeof(*r) - 1 || !(r = malloc(sizeof(*r) + len + 1)))
		return NULL;
	r->refs = 1;
	memcpy(r->s, s, len);
	r->s[len] = '\0';
	return r->s;
}

char *vmw_rcstr_ref(char *s)
{
	if (s)
		rcstr_of(s)->refs++;
	return s;
}

void vmw_rcstr_unref(char *s)
{
	if (s && !--rcstr_of(s)->refs)
		free(rcstr_of(s));
}

int vmw_parse_seconds(const char *s, double max_s, uint64_t *ret_ns)
{
	char *end;
	double d;

	if (!s)
		return -EINVAL;
	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d) || d <= 0 || d > max_s)
		return -EINVAL;
	*ret_ns = MAX((uint64_t)(d * 1e9 + 0.5), 1000u);
	return 0;
}

int vmw_parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

uint64_t vmw_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t vmw_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int vmw_pidmap_reset(struct vmw_pidmap *m, size_t n)
{
	size_t cap = 16;

	/* Load factor <= 1/2 keeps probes short; the loop in get always finds an empty slot. */
	while (cap < n * 2 && cap < ((size_t)1 << 40))
		cap <<= 1;
	if (cap != m->cap) {
		free(m->slot);
		m->slot = calloc(cap, sizeof(*m->slot));
		m->cap = m->slot ? cap : 0;
		m->n = 0;
		if (!m->slot)
			return -ENOMEM;
	} else {
		memset(m->slot, 0, cap * sizeof(*m->slot));
	}
	m->n = 0;
	return 0;
}

bool vmw_pidmap_put(struct vmw_pidmap *m, int32_t pid, size_t index)
{
	if (!m->cap || (m->n + 1) * 2 > m->cap || index >= UINT32_MAX)
		return false;
	size_t h = vmw_hash32((uint32_t)pid) & (m->cap - 1);
	while (m->slot[h].idx1)
		h = (h + 1) & (m->cap - 1);
	m->slot[h].pid = pid;
	m->slot[h].idx1 = (uint32_t)index + 1;
	m->n++;
	return true;
}

void vmw_pidmap_free(struct vmw_pidmap *m)
{
	free(m->slot);
	m->slot = NULL;
	m->cap = m->n = 0;
}

size_t vmw_utf8_len(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned c = p[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return c >= 0x20 && c != 0x7f ? 1 : 0;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;   /* overlong or beyond Unicode */
	if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;   /* surrogates; C1 controls (CSI, OSC as one character) */
	return len;
}

size_t vmw_text_sanitize(char *dst, size_t size, const char *src)
{
	size_t n = 0;

	if (!size)
		return 0;
	for (const char *p = src; *p;) {
		size_t len = vmw_utf8_len(p);
		if (!len) {
			if (n + 1 >= size)
				break;
			dst[n++] = '?';
			p++;
			continue;
		}
		if (n + len >= size)
			break;
		memcpy(dst + n, p, len);
		n += len;
		p += len;
	}
	dst[n] = '\0';
	return n;
}

void vmw_text_fputs(const char *s, FILE *f)
{
	while (*s) {
		size_t run = 0, len;
		while ((len = vmw_utf8_len(s + run)))
			run += len;
		if (run)
			fwrite(s, 1, run, f);
		s += run;
		if (*s) {
			putc('?', f);
			s++;
		}
	}
}

void *vmw_dl_open(const char *soname, const char *const *names, void **const *slots, size_t n,
		  char *errbuf, size_t en)
{
	void *h, *tmp[VMW_DL_MAX];

	if (n > VMW_DL_MAX) {
		snprintf(errbuf, en, "%s: too many functions to load", soname);
		return NULL;
	}
	if (!(h = dlopen(soname, RTLD_NOW | RTLD_LOCAL))) {
		const char *e = dlerror();
		snprintf(errbuf, en, "%s", e ? e : soname);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!(tmp[i] = dlsym(h, names[i]))) {
			snprintf(errbuf, en, "%s has no %s", soname, names[i]);
			dlclose(h);
			return NULL;
		}
	}
	for (size_t i = 0; i < n; i++)
		memcpy(slots[i], &tmp[i], sizeof(tmp[i]));
	return h;
}

bool vmw_dl_load(const char *soname, const char *const *names, void **const *slots, size_t n,
		 char *errbuf, size_t en)
{
	return vmw_dl_open(soname, names, slots, n, errbuf, en) != NULL;   /* kept for good */
}
