/* churn RATE [LIFE_MS=0] -- fork RATE short-lived children per second,
 * forever. Each child exits at once (or after LIFE_MS ms of sleep). */
#include "common.h"
#include <signal.h>

#define USAGE "churn RATE [LIFE_MS=0]"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		die_usage(USAGE);
	long rate = parse_long(argv[1], 1, 1000000, USAGE);
	long life_ms = argc == 3 ? parse_long(argv[2], 0, 3600000, USAGE) : 0;
	long long interval = 1000000000LL / rate;
	signal(SIGCHLD, SIG_IGN);   /* auto-reap */

	long long next = now_ns();
	for (;;) {
		pid_t pid = fork();
		if (pid == 0) {
			if (life_ms)
				usleep((useconds_t)life_ms * 1000);
			_exit(0);
		}
		next += interval;
		long long now = now_ns();
		if (next < now - 1000000000LL)   /* more than 1 s behind: give up catching up */
			next = now;
		sleep_until_ns(next);
	}
}
