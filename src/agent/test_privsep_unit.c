/* SPDX-License-Identifier: MIT */
/* Unit tests of the agent's privilege separation: the monitor's policy for
 * what a sampler may have opened, and the samplers' seccomp filter (installed
 * in a forked child, which then tries what a taken-over sampler would). */
#include "agent/privsep.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_guest_paths(void **state)
{
	(void)state;
	/* Its own QEMU's files, as src/mem opens them. */
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/maps", O_RDONLY), PS_PATH_PROC);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/mem", O_RDONLY | O_CLOEXEC), PS_PATH_PROC);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/pagemap", O_RDONLY), PS_PATH_PROC);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/exe", O_PATH), PS_PATH_PROC);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/fd", O_RDONLY | O_DIRECTORY), PS_PATH_PROC);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/fd/17", O_RDONLY), PS_PATH_PROC);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/map_files/7f00-7f80", O_RDONLY), PS_PATH_PROC);
	assert_int_equal(ps_guest_path(1234, NULL, "/dev/shm/vm", O_RDONLY), PS_PATH_MAPPED);
	assert_int_equal(ps_guest_path(0, "/srv/vm.img", "/srv/vm.img", O_RDONLY), PS_PATH_TARGET);
	/* Never for writing. */
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/mem", O_RDWR), -EPERM);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/mem", O_WRONLY), -EPERM);
	assert_int_equal(ps_guest_path(1234, NULL, "/dev/shm/vm", O_RDONLY | O_CREAT), -EPERM);
	assert_int_equal(ps_guest_path(1234, NULL, "/dev/shm/vm", O_RDONLY | O_TRUNC), -EPERM);
	/* Another process, the monitor itself, other /proc files, tricks. */
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1/mem", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/12345/mem", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/self/mem", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/sys/kernel/notes", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/environ", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/root/etc/shadow", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/cwd", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/fd/../../1/mem", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/map_files/7f00-7f80-1", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/map_files/../maps", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/exe", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/proc/1234/maps", O_PATH), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "/dev/shm/../../etc/shadow", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(1234, NULL, "relative/path", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(0, NULL, "/proc/1234/mem", O_RDONLY), -EACCES);
	assert_int_equal(ps_guest_path(0, "/srv/vm.img", "/srv/other.img", O_RDONLY), -EACCES);
}

/* In a child: install the filter, try each call, exit with the number of
 * the first check that failed (0: all as expected). */
static int filtered_child(void)
{
	int sv[2], fd;
	char *argv[] = { "/bin/true", NULL };
	char c = 'x';

	if (ps_sampler_seccomp() < 0)
		return 1;
	if (socket(AF_INET, SOCK_STREAM, 0) >= 0 || errno != EPERM)
		return 2;
	if (socket(AF_UNIX, SOCK_STREAM, 0) >= 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) >= 0)
		return 3;
	execve("/bin/true", argv, NULL);
	if (errno != EPERM)
		return 4;
	if (kill(1, 0) == 0 || errno != EPERM || kill(getppid(), SIGKILL) == 0)
		return 5;
	if (kill(getpid(), 0) != 0)          /* itself: allowed (abort) */
		return 6;
	if (syscall(SYS_tgkill, getppid(), getppid(), SIGKILL) == 0)
		return 7;
	if (ioctl(0, TIOCSTI, &c) == 0 || errno != EPERM)
		return 8;
	{
		struct iovec l = { &c, 1 }, r = { &c, 1 };
		if (process_vm_readv(getppid(), &l, 1, &r, 1, 0) >= 0 || errno != EPERM)
			return 9;
	}
	if (unshare(0) == 0 || setuid(0) == 0)
		return 10;
#if !defined(__SANITIZE_ADDRESS__)
	if (ptrace(PTRACE_ATTACH, getppid(), 0, 0) == 0 || errno != EPERM || fork() >= 0)
		return 11;
#endif
	/* What a sampler does: files, memory, time, its own channels. */
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || read(fd, &c, 1) != 0 || close(fd) < 0)
		return 12;
	if (!malloc(1 << 20))
		return 13;
	return 0;
}

static void test_seccomp_filter(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	if ((pid = fork()) == 0)
		_exit(filtered_child());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_paths),
		cmocka_unit_test(test_seccomp_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
