/* SPDX-License-Identifier: MIT */
/*
 * privsep.h - the agent's processes, as OpenSSH separates privileges.
 *
 *   monitor (the process systemd starts; keeps the capabilities it was given:
 *   │        CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_CHECKPOINT_RESTORE, or root)
 *   │   Small and single-threaded. Parses the configuration, then only
 *   │   answers requests: open a file the configuration names; start a
 *   │   sampler for a QEMU process (checked: alive, same start time, an
 *   │   emulator) or a file: target the configuration names; open, for a
 *   │   sampler, what src/mem needs of *its* QEMU (/proc/PID/maps, mem,
 *   │   pagemap, exe, fd/N, map_files/A-B, or a file that QEMU maps);
 *   │   stop a sampler; say how one ended. Never parses guest memory, HTTP
 *   │   or TLS. Forwards SIGTERM/SIGINT/SIGHUP to the front.
 *   ├── front (exec'd; no capabilities, `nobody` when started as root,
 *   │        no_new_privs, not dumpable)
 *   │   HTTP, TLS, tokens, libvirt (read-only socket), the registry,
 *   │   snapshots, history, metrics. Never holds guest memory: it receives
 *   │   frames (src/sampler/wire.c) and decodes them as hostile input.
 *   └── sampler, one per VM (exec'd: vmwatch-sampler, the library only; no
 *            capabilities, no_new_privs, not dumpable, seccomp: no sockets,
 *            no exec, no ptrace, no signals to others)
 *       Opens its guest through the monitor (the fds come back over a
 *       socket), walks it on request and answers with a frame. A crash or
 *       hang costs that VM's sampler only: the front marks the VM crashed,
 *       keeps serving the others and starts a new sampler with back-off.
 *
 * Channels: front ⇄ monitor and sampler ⇄ monitor are SOCK_SEQPACKET
 * socketpairs (one fixed-size message per request and answer, fds by
 * SCM_RIGHTS); front ⇄ sampler is a SOCK_STREAM socketpair made by the
 * monitor (length-prefixed messages; frames can be megabytes).
 */
#pragma once

#include "agent/agent.h"
#include "sampler/sampler.h"

#include <sys/types.h>

/* The user the front and samplers become when the agent runs as root, and
 * the samplers' kernel discovery cache then (a directory that user owns). */
#define PS_USER "nobody"
#define PS_ROOT_CACHE_PARENT "/var/cache/vmwatch"
#define PS_ROOT_CACHE "/var/cache/vmwatch/agent"

/* argv[1] of the exec'd children. */
#define PS_ARG_FRONT   "--privsep-front"
#define PS_ARG_SAMPLER "--privsep-sampler"
/* Their channels' file descriptors after exec. */
#define PS_FD_CTL      3   /* front: to the monitor */
#define PS_FD_FRAMES   3   /* sampler: to the front */
#define PS_FD_OPENER   4   /* sampler: to the monitor */

enum ps_req_type {
	PS_OPEN_CONFIG_FILE = 1,  /* front: a file the configuration names */
	PS_SPAWN_SAMPLER,         /* front: start a sampler (fd of its frame channel back) */
	PS_KILL_SAMPLER,          /* front: SIGKILL a sampler (a hang) */
	PS_SAMPLER_STATUS,        /* front: how a sampler ended (or still running) */
	PS_OPEN_GUEST,            /* sampler: a privileged open for src/mem */
};

struct ps_req {
	uint32_t type;            /* enum ps_req_type */
	int32_t pid;              /* SPAWN: the QEMU (0: none); KILL/STATUS: the sampler */
	uint64_t start_ticks;     /* SPAWN: the QEMU's start time */
	uint32_t flags;           /* SPAWN: PS_SAMPLER_*; OPEN_GUEST: open(2) flags */
	uint32_t log_level;       /* SPAWN */
	char path[4160];          /* OPEN_*: the path; SPAWN: the target (qemu:PID or file:PATH) */
};

struct ps_rep {
	int32_t r;                /* 0 or a negative errno */
	int32_t pid;              /* SPAWN: the sampler's pid */
	int32_t status;           /* STATUS: wait(2) status, -1 while it runs */
	char msg[512];            /* why, when r < 0 */
};

enum {
	PS_SAMPLER_CMDLINE = 1u << 0,   /* read command lines */
	PS_SAMPLER_NO_CACHE = 1u << 1,  /* kernel discovery cache off */
};

/* front ⇄ sampler: the front asks for a frame; the sampler answers with a
 * ps_frame_rep and, when r == 0, frame_len bytes of vmw_frame_encode. */
struct ps_frame_req {
	uint32_t magic;
	uint64_t min_ns, max_ns, young_ns;   /* the session's back-off policy */
};

struct ps_frame_rep {
	uint32_t magic;
	int32_t r;                /* 0: a frame follows; else the failure's errno */
	uint32_t kind;            /* enum vmw_error_kind of the failure */
	uint32_t state;           /* enum vmw_session_state after the call */
	uint64_t retry_at_ns;     /* CLOCK_MONOTONIC (the host's: same clock in both) */
	uint64_t attaches;
	char msg[512];
	char release[72], build_id[48];
	char cache_warning[256];
	uint64_t frame_len;
};

#define PS_FRAME_MAGIC 0x53504d56u        /* "VMPS" */
#define PS_FRAME_MAX ((uint64_t)256 << 20)  /* a frame bigger than this is refused */

/* One message with an optional fd (SEQPACKET channels). 0 or -errno;
 * recv: -EPIPE at end of file, *fd -1 when none came. */
int ps_send(int sock, const void *msg, size_t len, int fd);
int ps_recv(int sock, void *msg, size_t len, int *fd);
/* len bytes from a stream (the frame channel), by the monotonic deadline
 * (0: none). 0, -ETIMEDOUT, -EPIPE at end of file, or -errno. */
int ps_read_full(int fd, void *buf, size_t len, uint64_t deadline_ns);

/* main.c's entry points. The monitor: argv as main got it (a private copy,
 * tokens included), cfg as built from it (taken over: freed by the
 * monitor), config_path the file it read (NULL: the default), reload to
 * read the configuration again on SIGHUP. Returns the exit code. */
int ps_monitor_main(int argc, char **argv, struct vmw_agent_config *cfg, const char *config_path,
		    vmw_agent_reload_fn reload, void *opaque);
/* In the front: from now on, files are opened by the monitor. */
void ps_front_init(void);
/* The sampler process (argv after PS_ARG_SAMPLER). Returns the exit code. */
int ps_sampler_main(int argc, char **argv);

/* The front's requests to the monitor (thread-safe). */
int ps_spawn_sampler(const char *target, pid_t qemu_pid, uint64_t start_ticks, unsigned flags,
		     enum vmw_log_level level, pid_t *ret_pid, int *ret_fd, struct vmw_error *err);
int ps_kill_sampler(pid_t pid);
/* A wait(2) status in words: "killed by signal 11 (SEGV)", "exited with code 1". */
void ps_describe_status(int st, char *buf, size_t n);
/* 0 and *status (wait status) once ended; -EAGAIN while it runs. */
int ps_sampler_status(pid_t pid, int *status);

/* Dropping privileges before exec (the front and samplers). Returns 0 or
 * -errno with err set. as_root_user: the user to become when running as root. */
int ps_drop_privileges(const char *as_root_user, struct vmw_error *err);
/* Not dumpable: other processes of the same user cannot ptrace it or read
 * its memory and environment. Undone at exit in sanitizer builds, whose leak
 * checker must ptrace the process itself. */
void ps_set_undumpable(void);
/* The monitor's policy for a sampler's open request (pure): the sampler
 * reads QEMU pid `qemu` (0: none) or the file: target `file` (NULL: none).
 * PS_PATH_TARGET: its file target; PS_PATH_PROC: one of its QEMU's /proc
 * files that src/mem opens (maps, mem, pagemap, exe as O_PATH, fd as a
 * directory, fd/N, map_files/A-B); PS_PATH_MAPPED: allowed only if that QEMU
 * maps the file (the monitor then checks its maps); -EPERM: not read-only;
 * -EACCES: anything else. */
enum { PS_PATH_TARGET = 1, PS_PATH_PROC, PS_PATH_MAPPED };
int ps_guest_path(pid_t qemu, const char *file, const char *path, int flags);

/* Install the sampler's seccomp filter (seccomp.c). 0 or -errno. */
int ps_sampler_seccomp(void);
