/* threads N -- create N idle threads (blocked in pause()) and sleep forever.
 * The process then has N + 1 threads. */
#include "common.h"
#include <pthread.h>

#define USAGE "threads N"

static void *idle_thread(void *arg)
{
	(void)arg;
	sleep_forever();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		die_usage(USAGE);
	long n = parse_long(argv[1], 0, 100000, USAGE);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (long i = 0; i < n; i++) {
		pthread_t t;
		int rc = pthread_create(&t, &attr, idle_thread, NULL);
		if (rc != 0) {
			fprintf(stderr, "threads: pthread_create #%ld: %s\n", i, strerror(rc));
			return 1;
		}
	}
	sleep_forever();
}
