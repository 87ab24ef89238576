/* Shared helpers for the vmwatch lab's guest programs (static, libc only). */
#ifndef VMLAB_GUEST_COMMON_H
#define VMLAB_GUEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline void die_usage(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	exit(2);
}

/* Parse a non-negative decimal integer in [lo, hi]; exits on error. */
static inline long parse_long(const char *s, long lo, long hi, const char *usage)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die_usage(usage);
	return v;
}

static inline long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void sleep_until_ns(long long t)
{
	struct timespec ts = { .tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static inline void sleep_forever(void)
{
	for (;;)
		pause();
}

#endif
