/* idle [COMM] -- set the process name (comm, max 15 bytes; may contain
 * spaces or parentheses) and sleep forever. */
#include "common.h"
#include <sys/prctl.h>

int main(int argc, char **argv)
{
	if (argc > 2)
		die_usage("idle [COMM]");
	if (argc == 2 && prctl(PR_SET_NAME, argv[1], 0, 0, 0) != 0) {
		perror("idle: prctl");
		return 1;
	}
	sleep_forever();
}
