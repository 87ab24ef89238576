/* burn PERCENT [PERIOD_MS=100] -- busy-loop PERCENT % of every period and
 * sleep for the rest (a duty cycle on one CPU), forever. */
#include "common.h"

#define USAGE "burn PERCENT [PERIOD_MS=100]"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		die_usage(USAGE);
	long pct = parse_long(argv[1], 0, 100, USAGE);
	long period_ms = argc == 3 ? parse_long(argv[2], 1, 3600000, USAGE) : 100;
	long long period = period_ms * 1000000LL;
	long long busy = period * pct / 100;
	volatile unsigned long sink = 0;

	long long start = now_ns();
	for (;;) {
		long long stop = start + busy;
		while (now_ns() < stop)
			for (int i = 0; i < 1000; i++)
				sink += (unsigned long)i;
		start += period;
		long long now = now_ns();
		if (start < now)   /* fell behind (preempted): resynchronise */
			start = now;
		if (busy < period)
			sleep_until_ns(start);
	}
}
