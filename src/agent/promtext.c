/* SPDX-License-Identifier: MIT */
/*
 * promtext.c - the pieces of Prometheus text format 0.0.4 metrics.c writes
 * ~50,000 times a scrape at 100 VMs: label values and sample values, into
 * an agent_buf (no stdio per piece, no printf per number).
 */
#include "agent/agent_int.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>

/* A buffer of megabytes (a piece of a /metrics page at many hundreds of
 * VMs: a fresh mapping per scrape, the front's fixed mmap threshold) takes
 * a page fault per 4 KiB on its first touch. Where the kernel gives transparent
 * huge pages on request, its 2 MiB-aligned inside asks for them. Advice
 * only: without THP nothing changes. */
#define HUGE_PAGE ((size_t)2 << 20)
static void advise_huge(const struct agent_buf *b)
{
	uintptr_t lo = ((uintptr_t)b->p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	uintptr_t hi = ((uintptr_t)b->p + b->cap) & ~(uintptr_t)(HUGE_PAGE - 1);

	if (b->cap >= HUGE_PAGE && hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
}

/* Room for n more bytes: the buffer grows. false (b->failed) when memory
 * failed. */
bool agent_buf_room_slow(struct agent_buf *b, size_t n)
{
	size_t ncap;
	char *np;

	if (b->failed)
		return false;
	ncap = MAX(MAX(b->cap * 2, b->len + n), (size_t)4096);
	if (!(np = realloc(b->p, ncap))) {
		b->failed = true;
		return false;
	}
	b->p = np;
	b->cap = ncap;
	advise_huge(b);
	return true;
}

void agent_buf_printf(struct agent_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !agent_buf_room(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A label value: \ " and newline escaped as the exposition format wants;
 * every other control byte (a guest's comm can hold ESC sequences) and
 * invalid UTF-8 become '?', as in vmwatch ps, so that reading /metrics in a
 * terminal is as safe as reading ps. */
void agent_prom_label_value(struct agent_buf *b, const char *s)
{
	while (*s) {
		size_t len, run = 0;
		/* Printable ASCII but \ and ": as it is, in one copy. */
		while (s[run] >= 0x20 && s[run] < 0x7f && s[run] != '\\' && s[run] != '"')
			run++;
		if (run) {
			agent_buf_put(b, s, run);
			s += run;
			continue;
		}
		len = vmw_utf8_len(s);
		if (*s == '\\' || *s == '"') {
			agent_buf_putc(b, '\\');
			agent_buf_putc(b, *s);
		} else if (*s == '\n') {
			agent_buf_put(b, "\\n", 2);
		} else if (!len) {
			agent_buf_putc(b, '?');
		} else {
			agent_buf_put(b, s, len);
		}
		s += len ? len : 1;
	}
}

/* The digits of u, and a '-' before them when neg, ending at end: their start. */
static char *digits(char *end, uint64_t u, bool neg)
{
	char *p = end;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		*--p = '-';
	return p;
}

void agent_prom_u64(struct agent_buf *b, uint64_t u)
{
	char buf[24], *p = digits(buf + sizeof(buf), u, false);

	agent_buf_put(b, p, (size_t)(buf + sizeof(buf) - p));
}

static const uint64_t pow10_u64[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull, 100000000ull,
	1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
	1000000000000000000ull, 10000000000000000000ull,
};

/* v rounded to 15 significant digits, exactly: n (10^14 <= n < 10^15) and
 * the decimal exponent x, v ~ n * 10^(x - 14). v = m * 2^-s (m < 2^53, s
 * >= 1) is multiplied by 10^(14 - e) in 128-bit integers and shifted right,
 * the bits shifted out deciding the rounding (to nearest, ties to even, as
 * glibc's printf rounds). false outside 1e-5 < |v| < 1e15 (e out of
 * [-5, 14], the caller's printf then). */
static bool round15(uint64_t m, int s, double a, uint64_t *n, int *x)
{
	static const double p10[] = { 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
				      1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14 };
	int e = 14;

	if (!(a > 1e-5 && a < 1e15) || s < 1 || s > 120)
		return false;
	while (e > -5 && a < p10[e + 5])
		e--;
	/* The guess from doubles may be one off: the exact floor says. */
	for (int tries = 0; tries < 3; tries++) {
		unsigned __int128 t, rem, half;
		uint64_t q;

		if (e < -5 || e > 14)
			return false;
		t = (unsigned __int128)m * pow10_u64[14 - e];
		q = (uint64_t)(t >> s);
		if (q >= pow10_u64[15]) {
			e++;
			continue;
		}
		if (q < pow10_u64[14]) {
			e--;
			continue;
		}
		rem = t & (((unsigned __int128)1 << s) - 1);
		half = (unsigned __int128)1 << (s - 1);
		if (rem > half || (rem == half && (q & 1)))
			q++;
		if (q == pow10_u64[15]) {
			q = pow10_u64[14];
			e++;
		}
		*n = q;
		*x = e;
		return true;
	}
	return false;
}

/* "%.15g" of a finite, non-integer v with 1e-4 <= |v| < 1e15 as printf
 * writes it: 15 significant digits, fixed notation (the exponent of the
 * rounded value is in [-4, 14]), trailing zeros and a bare point dropped.
 * Into out (32 bytes); its length, or 0 when v is outside that (printf then). */
size_t agent_prom_g15(char *out, double v)
{
	uint64_t bits, m, n;
	int bexp, x, nd = 15;
	char d[16], *o = out;

	memcpy(&bits, &v, sizeof(bits));
	bexp = (int)((bits >> 52) & 0x7ff);
	if (bexp == 0 || bexp == 0x7ff)
		return 0;   /* zero, subnormal, infinite, NaN */
	m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
	if (!round15(m, 1075 - bexp, fabs(v), &n, &x) || x < -4 || x > 14)
		return 0;
	digits(d + 15, n, false);
	while (d[nd - 1] == '0')
		nd--;
	if (bits >> 63)
		*o++ = '-';
	if (x >= 0) {
		memcpy(o, d, (size_t)x + 1);
		o += x + 1;
		if (nd > x + 1) {
			*o++ = '.';
			memcpy(o, d + x + 1, (size_t)(nd - x - 1));
			o += nd - x - 1;
		}
	} else {
		*o++ = '0';
		*o++ = '.';
		for (int i = 0; i < -x - 1; i++)
			*o++ = '0';
		memcpy(o, d, (size_t)nd);
		o += nd;
	}
	return (size_t)(o - out);
}

void agent_prom_number(struct agent_buf *b, double v)
{
	char buf[40];
	size_t len;

	/* Integers below 10^15 (counts, bytes: most samples) print as %.15g
	 * prints them, all digits; most others through agent_prom_g15; -0,
	 * tiny, huge and non-finite values through printf. */
	if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v && (v != 0 || !signbit(v))) {
		int64_t i = (int64_t)v;
		char *p = digits(buf + sizeof(buf), i < 0 ? 0 - (uint64_t)i : (uint64_t)i, i < 0);
		agent_buf_put(b, p, (size_t)(buf + sizeof(buf) - p));
		return;
	}
	if (!(len = agent_prom_g15(buf, v)))
		len = (size_t)snprintf(buf, sizeof(buf), "%.15g", v);
	agent_buf_put(b, buf, len);
}
