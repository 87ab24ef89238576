/* runas UID[:GID] PROG [ARGS...] -- drop to UID/GID (no supplementary
 * groups; GID defaults to UID) and exec PROG. */
#include "common.h"
#include <grp.h>

#define USAGE "runas UID[:GID] PROG [ARGS...]"

int main(int argc, char **argv)
{
	if (argc < 3)
		die_usage(USAGE);
	char *colon = strchr(argv[1], ':');
	if (colon)
		*colon = 0;
	long uid = parse_long(argv[1], 0, 0x7fffffff, USAGE);
	long gid = colon ? parse_long(colon + 1, 0, 0x7fffffff, USAGE) : uid;
	if (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0 || setuid((uid_t)uid) != 0) {
		perror("runas");
		return 126;
	}
	execvp(argv[2], argv + 2);
	perror("runas: exec");
	return 127;
}
