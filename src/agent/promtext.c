/* SPDX-License-Identifier: MIT */
/*
 * promtext.c - the pieces of Prometheus text format 0.0.4 metrics.c writes
 * ~50,000 times a scrape at 100 VMs: label values and sample values.
 */
#include "agent/agent_int.h"

#include <math.h>

/* A label value: \ " and newline escaped as the exposition format wants;
 * every other control byte (a guest's comm can hold ESC sequences) and
 * invalid UTF-8 become '?', as in vmwatch ps, so that reading /metrics in a
 * terminal is as safe as reading ps. */
void agent_prom_label_value(FILE *f, const char *s)
{
	while (*s) {
		size_t len, run = 0;
		/* Printable ASCII but \ and ": as it is, in one write. */
		while (s[run] >= 0x20 && s[run] < 0x7f && s[run] != '\\' && s[run] != '"')
			run++;
		if (run) {
			fwrite(s, 1, run, f);
			s += run;
			continue;
		}
		len = vmw_utf8_len(s);
		if (*s == '\\' || *s == '"') {
			fputc('\\', f);
			fputc(*s, f);
		} else if (*s == '\n') {
			fputs("\\n", f);
		} else if (!len) {
			putc('?', f);
		} else {
			fwrite(s, 1, len, f);
		}
		s += len ? len : 1;
	}
}

/* The digits of u, and a '-' before them when neg. */
static void put_digits(FILE *f, uint64_t u, bool neg)
{
	char buf[24], *p = buf + sizeof(buf);

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		*--p = '-';
	fwrite(p, 1, (size_t)(buf + sizeof(buf) - p), f);
}

void agent_prom_u64(FILE *f, uint64_t u)
{
	put_digits(f, u, false);
}

void agent_prom_number(FILE *f, double v)
{
	/* Integers below 10^15 (counts, bytes: most samples) print as %.15g
	 * prints them, all digits, without its floating-point conversion (the
	 * scrape's main cost at 100 VMs). -0 and the rest go through printf. */
	if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v && (v != 0 || !signbit(v))) {
		int64_t n = (int64_t)v;
		put_digits(f, n < 0 ? 0 - (uint64_t)n : (uint64_t)n, n < 0);
	} else {
		fprintf(f, "%.15g", v);
	}
}
