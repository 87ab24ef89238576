/* swarm N -- fork N child processes that each just pause(); the parent
 * sleeps forever. Kill the whole swarm with kill(-PGID). */
#include "common.h"
#include <signal.h>

#define USAGE "swarm N"

int main(int argc, char **argv)
{
	if (argc != 2)
		die_usage(USAGE);
	long n = parse_long(argv[1], 0, 1000000, USAGE);
	signal(SIGCHLD, SIG_IGN);   /* children that get killed are reaped */
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			if (errno == EAGAIN || errno == ENOMEM) {
				usleep(10000);
				i--;
				continue;
			}
			perror("swarm: fork");
			return 1;
		}
		if (pid == 0)
			sleep_forever();
	}
	sleep_forever();
}
