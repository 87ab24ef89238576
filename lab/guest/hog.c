/* hog MIB [anon|shm] -- allocate and touch MIB MiB, then sleep forever.
 *   anon (default): private anonymous memory  -> RssAnon
 *   shm:            a MAP_SHARED file in /dev/shm (unlinked) -> RssShmem */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>

#define USAGE "hog MIB [anon|shm]"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		die_usage(USAGE);
	long mib = parse_long(argv[1], 0, 1L << 20, USAGE);
	int shm = argc == 3 && strcmp(argv[2], "shm") == 0;
	if (argc == 3 && !shm && strcmp(argv[2], "anon") != 0)
		die_usage(USAGE);
	size_t len = (size_t)mib << 20;
	if (len == 0)
		sleep_forever();

	unsigned char *p;
	if (shm) {
		char path[64];
		snprintf(path, sizeof path, "/dev/shm/hog-%d", (int)getpid());
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
			perror("hog: shm");
			return 1;
		}
		unlink(path);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
	} else {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (p == MAP_FAILED) {
		perror("hog: mmap");
		return 1;
	}
	/* Write a non-zero, page-distinct pattern into every page. */
	long pg = sysconf(_SC_PAGESIZE);
	for (size_t off = 0; off < len; off += (size_t)pg) {
		p[off] = (unsigned char)(0x5a ^ (off >> 12));
		p[off + (size_t)pg - 1] = 0xa5;
	}
	sleep_forever();
}
