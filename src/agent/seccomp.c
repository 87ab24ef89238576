/* SPDX-License-Identifier: MIT */
/*
 * seccomp.c - the samplers' system-call filter (privsep.h): a deny list, so
 * that what glibc, libbpf and the sanitizers call keeps working, of what a
 * sampler never needs and a guest that took one over would want.
 */
#include "agent/privsep.h"

#include <errno.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#endif

#if defined(__x86_64__)
#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARG0 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]))
#define LD_ARG1 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define EPERM_ SECCOMP_RET_ERRNO | EPERM
/* nr == n: deny (the next instruction); else skip it. */
#define DENY(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), RET(EPERM_)

/* System calls a sampler never makes, unless its guest has taken it over:
 * reaching the network or another process, running programs, changing who
 * it is, kernel interfaces with a history of holes. */
static const unsigned denied[] = {
	__NR_socket, __NR_socketpair, __NR_connect, __NR_bind, __NR_listen, __NR_accept, __NR_accept4,
	__NR_execve, __NR_execveat, __NR_fork, __NR_vfork,
#if !defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer checks at exit by cloning a tracer that ptraces us. */
	__NR_clone, __NR_ptrace,
#endif
	__NR_process_vm_readv, __NR_process_vm_writev, __NR_pidfd_open, __NR_pidfd_send_signal,
	__NR_pidfd_getfd, __NR_setns, __NR_unshare, __NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot,
	__NR_bpf, __NR_perf_event_open, __NR_userfaultfd, __NR_io_uring_setup, __NR_io_uring_enter,
	__NR_io_uring_register, __NR_keyctl, __NR_add_key, __NR_request_key, __NR_init_module,
	__NR_finit_module, __NR_delete_module, __NR_kexec_load, __NR_kexec_file_load, __NR_reboot,
	__NR_swapon, __NR_swapoff, __NR_settimeofday, __NR_clock_settime, __NR_clock_adjtime, __NR_adjtimex,
	__NR_setuid, __NR_setgid, __NR_setreuid, __NR_setregid, __NR_setresuid, __NR_setresgid,
	__NR_setfsuid, __NR_setfsgid, __NR_setgroups, __NR_capset, __NR_personality, __NR_mknod,
	__NR_mknodat, __NR_open_by_handle_at, __NR_name_to_handle_at, __NR_fanotify_init,
	__NR_process_madvise, __NR_move_pages, __NR_migrate_pages, __NR_kcmp, __NR_ioperm, __NR_iopl,
	__NR_memfd_create, __NR_link, __NR_linkat, __NR_symlink, __NR_symlinkat, __NR_chown, __NR_fchown,
	__NR_lchown, __NR_fchownat, __NR_sendto,
};

int ps_sampler_seccomp(void)
{
	enum { MAXI = 2 * ARRAY_SIZE(denied) + 64 };
	struct sock_filter f[MAXI];
	unsigned n = 0, self = (unsigned)getpid();
	struct sock_fprog prog;

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = (struct sock_filter)RET(SECCOMP_RET_KILL_PROCESS);
	f[n++] = (struct sock_filter)LD_NR;
	/* x32 system calls: none. */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
	f[n++] = (struct sock_filter)RET(EPERM_);
	/* clone3: "not implemented", so that threads (if any) fall back to clone. */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
	f[n++] = (struct sock_filter)RET(SECCOMP_RET_ERRNO | ENOSYS);
	for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
		struct sock_filter d[] = { DENY(denied[i]) };
		f[n++] = d[0];
		f[n++] = d[1];
	}
	/* Signals to ourselves only (abort() raises SIGABRT): kill, tkill, tgkill. */
	{
		static const unsigned sig[] = { __NR_kill, __NR_tkill, __NR_tgkill, __NR_rt_sigqueueinfo,
						__NR_rt_tgsigqueueinfo };
		for (size_t i = 0; i < ARRAY_SIZE(sig); i++) {
			f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, sig[i], 0, 4);
			f[n++] = (struct sock_filter)LD_ARG0;
			f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, self, 0, 1);
			f[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);
			f[n++] = (struct sock_filter)RET(EPERM_);
		}
	}
	/* ioctl: never push input into a terminal we may share (TIOCSTI, TIOCLINUX). */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 4);
	f[n++] = (struct sock_filter)LD_ARG1;
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 1, 0);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 0, 1);
	f[n++] = (struct sock_filter)RET(EPERM_);
	f[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);
	prog = (struct sock_fprog){ .len = (unsigned short)n, .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return -errno;
	return 0;
}
#else
int ps_sampler_seccomp(void)
{
	return -ENOSYS;   /* the filter is written for x86-64 system call numbers */
}
#endif
