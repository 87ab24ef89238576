/* SPDX-License-Identifier: MIT */
/* selfstat.c - the agent's own process_* metrics, from /proc/self. */
#include "agent/agent_int.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

int agent_selfstat(struct agent_selfstat *ret)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/stat", "re");
	char buf[1024], *p;
	unsigned long long utime, stime, starttime, vsize;
	long long rss, threads;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	double btime = 0;
	struct rlimit rl;
	DIR *d;

	memset(ret, 0, sizeof(*ret));
	if (!f || !fgets(buf, sizeof(buf), f))
		return -errno;
	/* Fields after "(comm) ": state is field 3; comm may hold ") ". */
	if (!(p = strrchr(buf, ')')))
		return -EINVAL;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %lld "
		   "%*d %llu %llu %lld", &utime, &stime, &threads, &starttime, &vsize, &rss) != 6)
		return -EINVAL;
	{
		_cleanup_fclose_ FILE *s = fopen("/proc/stat", "re");
		char line[256];
		while (s && fgets(line, sizeof(line), s))
			if (sscanf(line, "btime %lf", &btime) == 1)
				break;
	}
	ret->cpu_seconds = (double)(utime + stime) / (double)hz;
	ret->start_time_s = btime + (double)starttime / (double)hz;
	ret->vsz_bytes = vsize;
	ret->rss_bytes = (uint64_t)(rss > 0 ? rss : 0) * (uint64_t)page;
	ret->threads = (unsigned)threads;
	{
		/* The split of RSS: guest RAM the agent maps (shared with QEMU,
		 * no memory of its own) shows up as RssFile/RssShmem. */
		_cleanup_fclose_ FILE *s = fopen("/proc/self/status", "re");
		char line[256];
		unsigned long long kb;
		while (s && fgets(line, sizeof(line), s)) {
			if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
				ret->rss_anon_bytes = kb << 10;
			else if (sscanf(line, "RssFile: %llu kB", &kb) == 1)
				ret->rss_file_bytes = kb << 10;
			else if (sscanf(line, "RssShmem: %llu kB", &kb) == 1)
				ret->rss_shmem_bytes = kb << 10;
		}
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		ret->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (unsigned)rl.rlim_cur;
	if ((d = opendir("/proc/self/fd"))) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				ret->open_fds++;
		closedir(d);
		ret->open_fds--;   /* the directory's own fd */
	}
	return 0;
}
